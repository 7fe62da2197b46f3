#!/bin/sh
# Make a private CA, a broker certificate and (optionally) gate client certificates.
#   ./make-certs.sh OUT_DIR BROKER_HOSTNAME [GATE_ID...]
# The broker certificate names BROKER_HOSTNAME (and 127.0.0.1 / localhost for tests).
# A gate certificate's CN is the gate id: with use_identity_as_username it is the MQTT
# username the ACL patterns match. Keep ca.key offline after use.
set -eu
[ $# -ge 2 ] || { echo "usage: $0 OUT_DIR BROKER_HOSTNAME [GATE_ID...]" >&2; exit 2; }
out=$1; host=$2; shift 2
mkdir -p "$out"; cd "$out"
umask 077
if [ ! -f ca.key ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -keyout ca.key -out ca.crt -subj "/CN=gatepass broker CA" 2>/dev/null
fi
printf "subjectAltName=DNS:%s,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n" \
    "$host" > broker.ext
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout broker.key -out broker.csr -subj "/CN=$host" 2>/dev/null
openssl x509 -req -in broker.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 \
    -extfile broker.ext -out broker.crt 2>/dev/null
for gate in "$@"; do
    printf "extendedKeyUsage=clientAuth\n" > "$gate.ext"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$gate.key" -out "$gate.csr" -subj "/CN=$gate" 2>/dev/null
    openssl x509 -req -in "$gate.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 \
        -extfile "$gate.ext" -out "$gate.crt" 2>/dev/null
    rm -f "$gate.csr" "$gate.ext"
done
rm -f broker.csr broker.ext
chmod 644 ca.crt broker.crt
echo "certificates in $out"
