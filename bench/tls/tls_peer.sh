#!/usr/bin/env bash
# One run of a tls_* scenario against one system's TLS echo server, for scripts/bench (which
# calls it as it calls a peer): starts SYSTEM's server on a free port with the certificate of
# RINGLOOP_TLS_CERT_DIR, waits until it listens, runs the one client program
# (tls_bench_client, the same for every server) with the server's pid (its CPU time is read from
# /proc), stops the server and prints the client's key=value line with peer=SYSTEM in front.
# Anything missing or failing (a peer not installed, a server that does not start, a client
# error) is a message on stderr and exit status 1: never a line with zeros.
#
#   tls_peer.sh SYSTEM tls_echo      CONNS CONNS SECS BYTES
#   tls_peer.sh SYSTEM tls_handshake CONNS CONNS SECS
#   tls_peer.sh SYSTEM tls_bulk      MIB   1
#
# SYSTEM: ringloop, asio, tokio, node, asyncio or uvloop. Environment:
#   RINGLOOP_TLS_CLIENT           the tls_bench_client binary (build/bench/bench/)
#   RINGLOOP_TLS_SERVER_RINGLOOP  ringloop_tls_echo_server (build/bench/bench/)
#   RINGLOOP_TLS_SERVER_ASIO      asio_tls_echo (bench/peers/build.sh)
#   RINGLOOP_TLS_SERVER_TOKIO     tokio_tls_echo (bench/peers/build.sh)
#   RINGLOOP_TLS_CERT_DIR         cert.pem and key.pem (EC P-256, CN and SAN localhost); made
#                                 in a temporary directory when unset
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fail() {
  echo "tls_peer.sh: $*" >&2
  exit 1
}
[ $# -ge 3 ] || fail "usage: tls_peer.sh SYSTEM SCENARIO N [CONNS [SECS [BYTES]]]"
system=$1 scenario=$2 n=$3 conns=${4:-$3} secs=${5:-2} bytes=${6:-64}

# shellcheck source=bench/server_harness.sh
. "$here/../server_harness.sh" tls-peer  # work, server_pid, the cleanup

client=${RINGLOOP_TLS_CLIENT:-}
[ -x "$client" ] || fail "RINGLOOP_TLS_CLIENT ('$client') is not an executable tls_bench_client"

cert_dir=${RINGLOOP_TLS_CERT_DIR:-}
if [ -z "$cert_dir" ]; then
  cert_dir=$work
  "$here/make_cert.sh" "$cert_dir"
fi
[ -r "$cert_dir/cert.pem" ] && [ -r "$cert_dir/key.pem" ] || fail "no cert.pem/key.pem in $cert_dir"

case $system in
  ringloop)
    [ -x "${RINGLOOP_TLS_SERVER_RINGLOOP:-}" ] ||
      fail "RINGLOOP_TLS_SERVER_RINGLOOP ('${RINGLOOP_TLS_SERVER_RINGLOOP:-}') is not executable"
    server=("$RINGLOOP_TLS_SERVER_RINGLOOP" "$cert_dir/cert.pem" "$cert_dir/key.pem" 0)
    ;;
  asio)
    [ -x "${RINGLOOP_TLS_SERVER_ASIO:-}" ] ||
      fail "RINGLOOP_TLS_SERVER_ASIO ('${RINGLOOP_TLS_SERVER_ASIO:-}') is not executable (bench/peers/build.sh builds it)"
    server=("$RINGLOOP_TLS_SERVER_ASIO" "$cert_dir/cert.pem" "$cert_dir/key.pem" 0)
    ;;
  tokio)
    [ -x "${RINGLOOP_TLS_SERVER_TOKIO:-}" ] ||
      fail "RINGLOOP_TLS_SERVER_TOKIO ('${RINGLOOP_TLS_SERVER_TOKIO:-}') is not executable (bench/peers/build.sh builds it)"
    server=("$RINGLOOP_TLS_SERVER_TOKIO" "$cert_dir/cert.pem" "$cert_dir/key.pem" 0)
    ;;
  node)
    command -v node >/dev/null || fail "no node in PATH"
    server=(node "$here/node_tls_echo.js" "$cert_dir/cert.pem" "$cert_dir/key.pem" 0)
    ;;
  asyncio)
    server=(/usr/bin/python3 "$here/python_tls_echo.py" "$cert_dir/cert.pem" "$cert_dir/key.pem" 0)
    ;;
  uvloop)
    /usr/bin/python3 -c 'import uvloop' 2>/dev/null ||
      fail "uvloop is not importable by /usr/bin/python3 (apt-get install python3-uvloop)"
    server=(/usr/bin/python3 "$here/python_tls_echo.py" "$cert_dir/cert.pem" "$cert_dir/key.pem"
      0 --uvloop)
    ;;
  *) fail "unknown system $system (ringloop, asio, tokio, node, asyncio, uvloop)" ;;
esac

case $scenario in
  tls_echo) args=(echo "$conns" "$secs" "$bytes") ;;
  tls_handshake) args=(handshake "$conns" "$secs" 1) ;;
  tls_bulk) args=(bulk 1 0 $((n * 1024 * 1024))) ;;
  *) fail "unknown scenario $scenario (tls_echo, tls_handshake, tls_bulk)" ;;
esac

# Made before the server starts: the background job opens its redirections asynchronously.
: >"$work/server.out"
: >"$work/server.err"
"${server[@]}" >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
port=""
for _ in $(seq 150); do  # 15 s: Node and Python start in well under a second
  port=$(sed -n 's/^listening on port \([0-9][0-9]*\)$/\1/p' "$work/server.out" | head -n 1)
  [ -n "$port" ] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    cat "$work/server.err" >&2
    fail "$system's server (${server[*]}) exited before listening"
  fi
  sleep 0.1
done
if [ -z "$port" ]; then
  cat "$work/server.err" >&2
  fail "$system's server (${server[*]}) did not say it listens within 15 s"
fi

rc=0
line=$("$client" "${args[0]}" "$port" "${args[@]:1}" "$cert_dir/cert.pem" "$server_pid") || rc=$?
if [ $rc -ne 0 ] || [[ $line != scenario=$scenario* ]]; then
  echo "--- $system's server stderr:" >&2
  cat "$work/server.err" >&2
  fail "the client failed against $system (exit $rc): '$line'"
fi
kill -0 "$server_pid" 2>/dev/null || fail "$system's server died during the run"
# Which path the records took: ringloop's server says it (user space on a kernel without kTLS);
# the peers have no kTLS path.
records=user_space
if [ "$system" = ringloop ] && grep -q 'records in the kernel' "$work/server.err"; then
  records=ktls
fi
echo "peer=$system $line records=$records"
