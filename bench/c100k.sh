#!/usr/bin/env bash
# One run of c100k (issue #18) against one system's server, for scripts/bench (which calls it as
# it calls a peer): raises the descriptor limit to the hard one, starts SYSTEM's server, waits
# for its `port=N`, runs the driver (bench/c100k_driver.cpp: N idle connections from PROCS
# child processes, each from its own 127.0.0.k address, a fresh client, then one echo on each),
# stops the server and prints the driver's line. A run that served fewer than N still prints
# its line (the report shows what was served); a harness that cannot run (a limit too low, a
# server that does not start, no line) is a message on stderr and exit status 1.
#
#   bench/c100k.sh SYSTEM c100k|c100k_plain N [PROCS]
#
# SYSTEM: ringloop (c100k: multishot accept + a buffer ring; c100k_plain: today's path, an
# accept SQE per connection and a 16 KiB recv buffer in each frame), tokio_ct, asio or node.
# Environment:
#   RINGLOOP_C100K_BUILD  ringloop's build directory (ringloop_c100k_server, c100k_driver under
#                         bench/); default build/bench
#   RINGLOOP_PEERS_DIR    where bench/peers/build.sh built the peers' servers; default
#                         /tmp/peers-build
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fail() {
  echo "c100k.sh: $*" >&2
  exit 1
}
[ $# -ge 3 ] || fail "usage: c100k.sh SYSTEM c100k|c100k_plain N [PROCS]"
system=$1 scenario=$2 n=$3 procs=${4:-3}
build=${RINGLOOP_C100K_BUILD:-$here/../build/bench}
peers=${RINGLOOP_PEERS_DIR:-/tmp/peers-build}
driver=$build/bench/c100k_driver
[ -x "$driver" ] || fail "no $driver (meson -Dbench=true; ninja)"

case $system:$scenario in
  ringloop:c100k) server=("$build/bench/ringloop_c100k_server" multishot) ;;
  ringloop:c100k_plain) server=("$build/bench/ringloop_c100k_server" plain) ;;
  tokio_ct:c100k) server=("$peers/tokio_c100k_server") ;;
  asio:c100k) server=("$peers/asio_c100k_server") ;;
  node:c100k)
    command -v node >/dev/null || fail "no node in PATH"
    server=(node "$here/peers/node/c100k.js")
    ;;
  *) fail "no $scenario server for $system (ringloop, tokio_ct, asio, node; c100k_plain: ringloop)" ;;
esac
[ "${server[0]}" = node ] || [ -x "${server[0]}" ] ||
  fail "no ${server[0]} (bench/peers/build.sh builds the peers' servers)"

# The limits, checked rather than discovered as a failed connect: the server holds N sockets
# and a few of its own, each child ceil(N / PROCS), and each child's source address has the
# ephemeral port range to itself. Every system runs under the same (hard) limit.
ulimit -n "$(ulimit -Hn)"
limit=$(ulimit -n)
per_child=$(((n + procs - 1) / procs))
read -r low high </proc/sys/net/ipv4/ip_local_port_range
[ "$limit" = unlimited ] || [ $((n + 64)) -le "$limit" ] ||
  fail "N = $n needs N + 64 descriptors in the server; the hard limit (ulimit -Hn) is $limit"
[ "$limit" = unlimited ] || [ $((per_child + 64)) -le "$limit" ] ||
  fail "each of $procs children holds $per_child sockets; the limit is $limit: more PROCS"
[ "$per_child" -lt $((high - low)) ] ||
  fail "each child's $per_child connections exceed its address's ports ($low-$high): more PROCS"
[ $((procs + 2)) -le 255 ] || fail "PROCS = $procs: the sources are 127.0.0.2 to 127.0.0.255"

# shellcheck source=bench/server_harness.sh
. "$here/server_harness.sh" c100k  # work, server_pid, the cleanup

: >"$work/server.out"
"${server[@]}" >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
port=""
for _ in $(seq 150); do  # 15 s: Node starts in well under a second
  port=$(sed -n 's/^port=\([0-9][0-9]*\)$/\1/p' "$work/server.out" | head -n 1)
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.err" >&2; fail "$system's server exited"; }
  sleep 0.1
done
[ -n "$port" ] || { cat "$work/server.err" >&2; fail "$system's server printed no port in 15 s"; }

rc=0
line=$("$driver" "$system" "$server_pid" "$port" "$n" "$procs" 2>"$work/driver.err") || rc=$?
cat "$work/driver.err" >&2
[[ $line == peer=* ]] || { cat "$work/server.err" >&2; fail "the driver printed no line (exit $rc)"; }
# The clients' own limits are the harness's failure, not the server's: no line for the report.
if grep -q -e 'Address already in use' -e 'Cannot assign requested address' \
  -e 'Too many open files' "$work/driver.err"; then
  fail "the clients ran out of source ports or descriptors (above): not $system's failure"
fi
if [ $rc -ne 0 ]; then
  echo "c100k.sh: $system did not serve every connection: $line" >&2
  head -n 20 "$work/server.err" >&2
fi
kill -0 "$server_pid" 2>/dev/null || line+=" server_died=yes"
echo "${line/ scenario=c100k / scenario=$scenario }"
