#!/usr/bin/env bash
# TLS handshakes/s with a client nobody here wrote: `openssl s_time -new` (a full TLS 1.3
# handshake per connection, then close; TLS_AES_128_GCM_SHA256 as in tls_bench_client) against
# the servers of the tls_* scenarios: ringloop's (bench/tls/ringloop_tls_echo_server.cpp), Asio's
# ssl::stream (bench/peers/asio/asio_tls_echo.cpp), Node's tls, asyncio and uvloop with ssl,
# A B C D E A B C D E. A cross-check of scripts/bench's tls_handshake (which uses
# tls_bench_client); compare ratios, not absolute figures: s_time does its own half of the
# arithmetic. A server that does not start, or a round that measures nothing, fails the script.
#   bench/tls/handshakes.sh RINGLOOP_TLS_ECHO_SERVER ASIO_TLS_ECHO [rounds (3)] [seconds (3)]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 2 ] || { sed -n '2,9p' "$0" >&2; exit 2; }
ringloop_server=$1 asio_server=$2 rounds=${3:-3} seconds=${4:-3}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
"$here/make_cert.sh" "$work"
cert=$work/cert.pem key=$work/key.pem

declare -A port=()
start() {  # start NAME COMMAND...: runs the server on a free port, waits for "listening on port N"
  local name=$1
  shift
  : >"$work/$name.out"  # before the job, which opens its redirections asynchronously
  "$@" "$cert" "$key" 0 >"$work/$name.out" 2>"$work/$name.err" &
  local pid=$! tries=0
  until port[$name]=$(sed -n 's/^listening on port \([0-9]*\)$/\1/p' "$work/$name.out") &&
    [ -n "${port[$name]}" ]; do
    tries=$((tries + 1))
    if ! kill -0 $pid 2>/dev/null || [ $tries -gt 150 ]; then
      cat "$work/$name.err" >&2
      echo "handshakes.sh: $name's server did not start" >&2
      exit 1
    fi
    sleep 0.1
  done
}
start ringloop "$ringloop_server"
start asio "$asio_server"
start node node "$here/node_tls_echo.js"
start asyncio /usr/bin/python3 "$here/python_tls_echo.py"
# python_tls_echo.py takes --uvloop after the port: a wrapper puts it there.
printf '#!/bin/sh\nexec /usr/bin/python3 %s "$@" --uvloop\n' "$here/python_tls_echo.py" >"$work/uvloop"
chmod +x "$work/uvloop"
start uvloop "$work/uvloop"

for round in $(seq "$rounds"); do
  for name in ringloop asio node asyncio uvloop; do
    rate=$(openssl s_time -connect "127.0.0.1:${port[$name]}" -new -time "$seconds" \
      -ciphersuites TLS_AES_128_GCM_SHA256 2>/dev/null |
      sed -n 's/^\([0-9]*\) connections in \([0-9.]*\) real.*/\1 \2/p' | head -n 1 |
      awk '$1 > 0 { printf "%.0f", $1 / $2 }')
    [ -n "$rate" ] || { echo "handshakes.sh: s_time measured nothing against $name" >&2; exit 1; }
    echo "peer=$name scenario=tls_handshake_s_time round=$round handshakes_per_s=$rate"
  done
done
