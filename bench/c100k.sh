#!/bin/sh
# c100k side by side (issue #18): N idle connections (default 19,000: this VM's hard limit is
# 20,000 fds per process) against ringloop with multishot accept + a buffer ring, ringloop on
# today's path (an accept SQE per connection, a 16 KiB recv buffer per connection), and Node.
# Usage: bench/c100k.sh BUILD_DIR [N] [runs]. One line per run (bench/c100k_driver.cpp).
set -eu
build=$1
n=${2:-19000}
runs=${3:-1}
here=$(dirname "$0")
run() {
  name=$1
  shift
  out=$(mktemp)
  "$@" >"$out" 2>&1 &
  pid=$!
  for _ in $(seq 100); do grep -q port= "$out" && break; sleep 0.1; done
  port=$(grep -o 'port=[0-9]*' "$out" | cut -d= -f2)
  "$build/bench/c100k_driver" "$name" "$pid" "$port" "$n" 3 || true
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  rm -f "$out"
}
for _ in $(seq "$runs"); do
  run ringloop-multishot "$build/bench/ringloop_c100k_server" multishot
  run ringloop-plain "$build/bench/ringloop_c100k_server" plain
  if command -v node >/dev/null; then run node node "$here/peers/node/c100k.js"; fi
done
