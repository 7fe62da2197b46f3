#!/usr/bin/env bash
# Install the Debian packages gatepass needs, on Debian 12 or Raspberry Pi OS (Bookworm).
#
#   scripts/install-system-deps.sh            install what is missing (as root, or through sudo)
#   scripts/install-system-deps.sh --check    only say what is missing (exit 1 if anything is)
#   scripts/install-system-deps.sh --list     print the package names, one a line
#
# `make test`, `make demo` and `.ci/run` call it. It installs nothing that is already there
# and runs `apt-get update` only when something is missing. When it can neither run apt-get
# as root nor through a password-less sudo, it prints the exact command to run and exits 1;
# the tests then skip what needs the missing parts (under CI=true they fail instead).
#
# What each package is for:
#   libzbar0          the pyzbar decoder backend (a baseline in `gatepass bench decode|agent`)
#   mosquitto         the MQTT broker: tests, `gatepass demo`, a site or central broker
#   mosquitto-clients mosquitto_passwd's companions, used by the deploy recipes' checks
#   chromium          headless browser tests of the console and dashboard (never a downloaded one)
#   postgresql-15     the server binaries (initdb, postgres): the tests make a throwaway cluster
#   fonts-noto-core   glyphs for Urdu, Bengali and the other pilgrim languages on the console
#   openssl           certificates in deploy/mosquitto/make-certs.sh and the TLS tests
#   python3-venv      `make` creates .venv with it (Debian's python3 ships without ensurepip)
set -euo pipefail

mode=install
case "${1:-}" in
    "") ;;
    --check) mode=check ;;
    --list) mode=list ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "install-system-deps: unknown option $1 (see --help)" >&2; exit 2 ;;
esac

# Each requirement is one package or alternatives separated by "|": Raspberry Pi OS builds
# Chromium as chromium-browser on older Bookworm images; PostgreSQL's server is 15 on Debian 12
# and Bookworm, whatever major the archive has elsewhere.
requirements=(libzbar0 mosquitto mosquitto-clients "chromium|chromium-browser"
              "postgresql-15|postgresql" fonts-noto-core openssl)
# Only Debian's own python3 needs python3-venv; a python3 with ensurepip (pyenv, a build from
# source) makes venvs already.
if ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    requirements+=(python3-venv)
fi
# Extra requirements, space-separated (the tests use it to exercise the "missing" paths).
if [ -n "${GATEPASS_EXTRA_DEBS:-}" ]; then
    read -r -a extra <<<"$GATEPASS_EXTRA_DEBS"
    requirements+=("${extra[@]}")
fi

if [ "$mode" = list ]; then
    printf '%s\n' "${requirements[@]}"
    exit 0
fi

installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

missing=()
for req in "${requirements[@]}"; do
    ok=no
    IFS='|' read -r -a alts <<<"$req"
    for alt in "${alts[@]}"; do
        if installed "$alt"; then ok=yes; break; fi
    done
    [ "$ok" = yes ] || missing+=("$req")
done

if [ ${#missing[@]} -eq 0 ]; then
    [ "$mode" = check ] && echo "install-system-deps: all ${#requirements[@]} packages are installed"
    exit 0
fi

first_names() { local r; for r in "$@"; do printf '%s ' "${r%%|*}"; done; }
command_line="apt-get update && apt-get install -y --no-install-recommends $(first_names "${missing[@]}")"
if [ "$mode" = check ]; then
    echo "install-system-deps: missing: ${missing[*]}"
    echo "install-system-deps: to install them, run as root: $command_line"
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    run=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    run=(sudo -n)
else
    echo "install-system-deps: missing Debian packages: ${missing[*]}" >&2
    echo "install-system-deps: not root and no password-less sudo; run this once, then retry:" >&2
    echo "    sudo sh -c '$command_line'" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${run[@]}" apt-get update -qq
# Resolve alternatives against the fresh package lists: the first one the archive has.
names=()
for req in "${missing[@]}"; do
    IFS='|' read -r -a alts <<<"$req"
    pick=${alts[0]}
    for alt in "${alts[@]}"; do
        if [ -n "$(apt-cache policy "$alt" 2>/dev/null | sed -n 's/^ *Candidate: *//p' | grep -v '(none)')" ]; then
            pick=$alt; break
        fi
    done
    names+=("$pick")
done
echo "install-system-deps: installing ${names[*]}"
"${run[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${names[@]}"

# Debian's postgresql package starts a cluster of its own on port 5432; the tests never use
# it (they make their own), so leave it as the package set it up.
echo "install-system-deps: done"
