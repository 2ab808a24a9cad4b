#!/usr/bin/env bash
# TLS handshakes/s, side by side: `openssl s_time -new` (a full TLS 1.3 handshake per
# connection, then close) against ringloop's examples/tls_echo_server, Node's tls and
# asyncio/uvloop with ssl, A B C D A B C D. The client is the same program for every server:
# compare ratios, not absolute figures (it does its own half of the arithmetic).
#   bench/tls/handshakes.sh TLS_ECHO_SERVER_BINARY [rounds (3)] [seconds (3)]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
server_bin=$1 rounds=${2:-3} seconds=${3:-3}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/key.pem" \
  -out "$work/cert.pem" -subj /CN=localhost -addext subjectAltName=DNS:localhost -days 2 2>/dev/null
"$server_bin" "$work/cert.pem" "$work/key.pem" 17443 >/dev/null &
node "$here/node_tls_echo.js" "$work/cert.pem" "$work/key.pem" 17444 >/dev/null &
/usr/bin/python3 "$here/python_tls_echo.py" "$work/cert.pem" "$work/key.pem" 17445 >/dev/null &
/usr/bin/python3 "$here/python_tls_echo.py" "$work/cert.pem" "$work/key.pem" 17446 --uvloop >/dev/null &
sleep 2
for round in $(seq "$rounds"); do
  for peer in ringloop:17443 node:17444 asyncio:17445 uvloop:17446; do
    rate=$(openssl s_time -connect "127.0.0.1:${peer#*:}" -new -time "$seconds" 2>/dev/null |
      sed -n 's/^\([0-9]*\) connections in \([0-9.]*\) real.*/\1 \2/p' | head -n 1 |
      awk '{ printf "%.0f", $1 / $2 }')
    echo "peer=${peer%%:*} scenario=tls_handshake round=$round handshakes_per_s=$rate"
  done
done
