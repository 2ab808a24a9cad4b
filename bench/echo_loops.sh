#!/usr/bin/env bash
# One run of the echo_loops scenario (issue #19) for scripts/bench, which calls it as it calls a
# peer: starts SYSTEM's echo server with LOOPS threads on a free port of 127.0.0.1, checks that
# it runs LOOPS threads besides its main one, runs the one client program (echo_loops_client:
# epoll, its own process, the same for both servers) with the server's pid (its CPU time is read
# from /proc), stops the server and prints the client's key=value line with peer=SYSTEM in front.
# Anything missing or failing is a message on stderr and exit status 1: never a line of zeros.
#
#   echo_loops.sh SYSTEM echo_loops LOOPS CONNS SECS
#
# SYSTEM: ringloop (ringloop_echo_loops_server LOOPS: a LoopGroup, one reuse_port listener per
# loop; its line gets conns_per_loop=, what the kernel gave each loop) or tokio_mt (tokio_peer
# --mt echo_server LOOPS: the multi-thread runtime with LOOPS worker threads). Environment:
#   RINGLOOP_ECHO_LOOPS_CLIENT           echo_loops_client (build/bench/bench/)
#   RINGLOOP_ECHO_LOOPS_SERVER_RINGLOOP  ringloop_echo_loops_server (build/bench/bench/)
#   RINGLOOP_ECHO_LOOPS_SERVER_TOKIO_MT  bench/peers/build.sh's tokio_mt command
set -euo pipefail
fail() {
  echo "echo_loops.sh: $*" >&2
  exit 1
}
[ $# -ge 3 ] || fail "usage: echo_loops.sh SYSTEM echo_loops LOOPS [CONNS [SECS]]"
system=$1 scenario=$2 loops=$3 conns=${4:-100} secs=${5:-2}
[ "$scenario" = echo_loops ] || fail "unknown scenario $scenario (echo_loops)"
[[ $loops =~ ^[1-9][0-9]*$ ]] || fail "LOOPS must be a positive number, not '$loops'"

# shellcheck source=bench/server_harness.sh
. "$(dirname "$0")/server_harness.sh" echo-loops  # work, server_pid, the cleanup

client=${RINGLOOP_ECHO_LOOPS_CLIENT:-}
[ -x "$client" ] || fail "RINGLOOP_ECHO_LOOPS_CLIENT ('$client') is not an executable echo_loops_client"
case $system in
  ringloop)
    [ -x "${RINGLOOP_ECHO_LOOPS_SERVER_RINGLOOP:-}" ] ||
      fail "RINGLOOP_ECHO_LOOPS_SERVER_RINGLOOP ('${RINGLOOP_ECHO_LOOPS_SERVER_RINGLOOP:-}') is not executable"
    server=("$RINGLOOP_ECHO_LOOPS_SERVER_RINGLOOP" "$loops")
    ;;
  tokio_mt)
    [ -x "${RINGLOOP_ECHO_LOOPS_SERVER_TOKIO_MT:-}" ] ||
      fail "RINGLOOP_ECHO_LOOPS_SERVER_TOKIO_MT ('${RINGLOOP_ECHO_LOOPS_SERVER_TOKIO_MT:-}') is not executable (bench/peers/build.sh builds it)"
    server=("$RINGLOOP_ECHO_LOOPS_SERVER_TOKIO_MT" echo_server "$loops")
    ;;
  *) fail "unknown system $system (ringloop, tokio_mt)" ;;
esac

# Made before the server starts: the background job opens its redirections asynchronously.
: >"$work/server.out"
: >"$work/server.err"
# exec: the wrapper of tokio_mt is a shell script that execs the binary, so $! is the server.
"${server[@]}" >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
port=""
for _ in $(seq 100); do
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
  fail "$system's server (${server[*]}) did not say it listens within 10 s"
fi
# LOOPS loops or workers, and the main thread that waits for them: no more, no fewer.
threads=$(awk '/^Threads:/ {print $2}' "/proc/$server_pid/status")
[ "$threads" = $((loops + 1)) ] ||
  fail "$system's server runs $threads threads, not $loops loops/workers + its main thread"

rc=0
line=$("$client" "$port" "$conns" "$secs" "$server_pid" "$loops") || rc=$?
if [ $rc -ne 0 ] || [[ $line != scenario=echo_loops* ]]; then
  echo "--- $system's server stderr:" >&2
  cat "$work/server.err" >&2
  fail "the client failed against $system (exit $rc): '$line'"
fi
kill -0 "$server_pid" 2>/dev/null || fail "$system's server died during the run"
# ringloop's server closes every loop's Server on SIGTERM and says how many connections each
# loop accepted (reuse_port's spread).
kill -TERM "$server_pid"
wait "$server_pid" || [ "$system" != ringloop ] || fail "ringloop's server did not stop cleanly"
server_pid=""
spread=""
if [ "$system" = ringloop ]; then
  spread=$(sed -n 's/^connections per loop: \([0-9,]*\)$/\1/p' "$work/server.err")
  [ -n "$spread" ] || fail "ringloop's server did not report its connections per loop"
  spread=" conns_per_loop=$spread"
fi
echo "peer=$system $line$spread"
