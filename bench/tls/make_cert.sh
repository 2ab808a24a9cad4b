#!/usr/bin/env bash
# make_cert.sh DIR: the certificate of the tls_* scenarios, made at run time: a self-signed EC
# P-256 key and certificate for "localhost" (CN and subjectAltName), valid two days, written to
# DIR/cert.pem and DIR/key.pem. The client trusts cert.pem itself as its CA.
set -euo pipefail
dir=${1:?usage: make_cert.sh DIR}
mkdir -p "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/key.pem" \
  -out "$dir/cert.pem" -subj /CN=localhost -addext subjectAltName=DNS:localhost -days 2 \
  2>"$dir/openssl.log" || { cat "$dir/openssl.log" >&2; exit 1; }
rm -f "$dir/openssl.log"
