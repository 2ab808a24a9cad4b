#!/usr/bin/env bash
# Smoke test of the peers: runs every peer built by build.sh on every
# scenario at small N and checks that each run prints exactly one well-formed
# line.  Not a benchmark (one run each, no A/B alternation).
#
# Usage: bench/peers/check.sh [BUILD_DIR] [PEER...]
#   (BUILD_DIR defaults to /tmp/peers-build; build.sh must have run.)
# Prints the lines, then "N passed, N failed".
set -uo pipefail

BUILD_DIR="${1:-/tmp/peers-build}"
shift || true
PEERS="${*:-floor asio tokio_ct tokio_mt node asyncio uvloop}"

RUNS=(
  "sleep_many 10000"
  "lateness 200"
  "lateness_loaded 200"
  "spawn_gather 100000"
  "wait_for_fast 100000"
  "wait_for_yield 100000"
  "wait_for_io 100000"
  "cancel_many 100000"
  "echo 1 1 1"
  "echo 100 100 1"
)

pass=0
fail=0
for peer in $PEERS; do
  cmd="$BUILD_DIR/bin/$peer"
  if [ ! -x "$cmd" ]; then
    echo "MISSING $cmd" >&2
    fail=$((fail + 1))
    continue
  fi
  for run in "${RUNS[@]}"; do
    out="$(timeout 120 "$cmd" $run 2>/tmp/peers-check.err)"
    rc=$?
    sc="${run%% *}"
    # exactly one line; peer=, scenario=, n= always; then skipped= or the
    # common figures plus the scenario's own.
    need="wall_s= cpu_s= rss_kb="
    case "$sc" in
      lateness*) need="$need p50_us= p99_us= max_us=" ;;
      spawn_gather|wait_for_*|cancel_many) need="$need ns_per_op=" ;;
      echo) need="$need conns= secs= rtt_per_s= p99_us=" ;;
    esac
    ok=1
    [ "$rc" -eq 0 ] || ok=0
    [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] || ok=0
    case " $out " in *" peer=$peer "*) ;; *) ok=0 ;; esac
    case " $out " in *" scenario=$sc "*) ;; *) ok=0 ;; esac
    case " $out " in *" n="*) ;; *) ok=0 ;; esac
    if [[ " $out " != *" skipped="* ]]; then
      for k in $need; do
        [[ " $out " =~ \ $k-?[0-9.]+\  ]] || ok=0
      done
    fi
    if [ "$ok" -eq 1 ]; then
      pass=$((pass + 1))
      echo "$out"
    else
      fail=$((fail + 1))
      echo "FAIL $peer $run (rc=$rc): $out $(head -c 500 /tmp/peers-check.err)" >&2
    fi
  done
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
