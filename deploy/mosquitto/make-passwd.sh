#!/bin/sh
# Create or update the Mosquitto password file for gatepass users.
#   ./make-passwd.sh PASSWD_FILE USER...       passwords read from $GP_SECRETS_DIR/USER
# Each password is a random secret kept outside the repo: the gate reads it through
# BrokerConfig.password_file (or password_env). Never commit the secrets or the file.
set -eu
[ $# -ge 2 ] || { echo "usage: $0 PASSWD_FILE USER..." >&2; exit 2; }
file=$1; shift
dir=${GP_SECRETS_DIR:-./secrets}
mkdir -p "$dir"; chmod 700 "$dir"
[ -f "$file" ] || { : > "$file"; chmod 600 "$file"; }
for user in "$@"; do
    secret="$dir/$user"
    if [ ! -s "$secret" ]; then
        (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=\n' > "$secret")
    fi
    mosquitto_passwd -b "$file" "$user" "$(cat "$secret")"
done
echo "wrote $file for: $*  (secrets in $dir)"
