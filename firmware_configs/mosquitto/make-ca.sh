#!/bin/sh
# Usage: make-ca.sh DIR BROKER_NAME [MORE_NAMES_OR_IPS...]
#   e.g. make-ca.sh /root/lastmile-ca broker.example.net 203.0.113.7
# Writes DIR/ca.crt, DIR/ca.key, DIR/server.crt, DIR/server.key: a CA for a small fleet and the
# broker's certificate, valid for the names and addresses devices dial (subjectAltName).
# Then copy ca.crt, server.crt, server.key to /etc/mosquitto/lastmile/ on the broker and keep
# ca.key OFFLINE (it can mint a certificate for any name your devices trust). A server certificate
# lasts 825 days: put its renewal in the calendar. A real fleet uses its own PKI instead.
# The same recipe in Python: cloud/pki.py (used by the tests).
set -eu
DIR=${1:?usage: make-ca.sh DIR BROKER_NAME [MORE_NAMES_OR_IPS...]}
: "${2:?usage: make-ca.sh DIR BROKER_NAME [MORE_NAMES_OR_IPS...]}"
shift
command -v openssl >/dev/null || { echo "make-ca.sh: install openssl (apt-get install openssl)" >&2; exit 1; }
SAN=""
for name in "$@"; do
    case "$name" in
        *[!0-9.]*) entry="DNS:$name" ;;   # anything but digits and dots is a host name
        *) entry="IP:$name" ;;
    esac
    SAN="${SAN:+$SAN,}$entry"
done
mkdir -p "$DIR"
cd "$DIR"
umask 077
if [ -e ca.key ]; then
    echo "make-ca.sh: $DIR/ca.key exists; reusing that CA" >&2
else
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj "/CN=lastmile-fleet-ca" -keyout ca.key -out ca.crt 2>/dev/null
fi
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
    -keyout server.key -out server.csr 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' \
    "$SAN" > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 \
    -extfile server.ext -out server.crt 2>/dev/null
rm -f server.csr server.ext ca.srl
chmod 644 ca.crt server.crt
echo "CA and server certificate for $SAN in $DIR; keep $DIR/ca.key offline." >&2
