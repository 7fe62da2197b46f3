#!/bin/sh
# Write the broker's users file (dynamic-security.json: users, password hashes, ACL roles)
# and one random secret per user. The same code the bulk provisioning calls
# (central.provisioning.broker), so both produce the same file.
#   ./make-passwd.sh OUT_DIR GATE[=SITE]...
#   GP_SECRETS_DIR  where the secrets go, one file per user (default ./secrets); secrets
#                   already there are kept, so re-running adds gates without new passwords
#   GP_WORKERS      aggregator workers gp-central-1..N (default 2)
#   GATEPASS_PYTHON a python with gatepass installed (default: python3)
# Copy each gate's secret to that gate only (BrokerConfig.password_file); never commit them.
set -eu
[ $# -ge 2 ] || { echo "usage: $0 OUT_DIR GATE[=SITE]..." >&2; exit 2; }
out=$1; shift
exec "${GATEPASS_PYTHON:-python3}" -m central.provisioning.broker "$out" \
    "${GP_SECRETS_DIR:-./secrets}" --workers "${GP_WORKERS:-2}" "$@"
