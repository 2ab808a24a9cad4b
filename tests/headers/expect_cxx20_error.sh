#!/bin/sh
# expect_cxx20_error.sh STAMP INCLUDE_ROOT SOURCE_ROOT HEADER... -- COMPILER...
# Compiles each public header (not detail/) alone with -std=c++17 and expects the build to stop
# at loop/detail/config.hpp's #error, naming -std=c++20, before any other error: one error and
# the fatal include that stops the compiler there. Writes STAMP when every header does.
set -eu
stamp=$1 include_root=$2 source_root=$(realpath "$3")
shift 3
headers=""
while [ "$1" != "--" ]; do headers="$headers $1"; shift; done
shift
status=0
for header in $headers; do
  case $header in */detail/*) continue ;; esac
  header=$(realpath "$header")
  name=ringloop/${header#"$source_root"/}
  [ "$name" = ringloop/coro/ringloop.hpp ] && name=ringloop/ringloop.hpp
  out=$(printf '#include <%s>\n' "$name" |
    "$@" -std=c++17 -fsyntax-only -I"$include_root" -x c++ - 2>&1) && {
    echo "$name: compiled with -std=c++17; expected config.hpp's #error" >&2
    status=1
    continue
  }
  errors=$(printf '%s\n' "$out" | grep 'error:' || true)
  first=$(printf '%s\n' "$errors" | head -n 1)
  count=$(printf '%s\n' "$errors" | wc -l)
  case $first in
    *"ringloop needs C++20: compile with -std=c++20"*) ;;
    *) echo "$name: without C++20, the first error is not config.hpp's:" >&2
      printf '%s\n' "$out" | head -n 20 >&2
      status=1 ;;
  esac
  if [ "$count" -ne 2 ]; then
    echo "$name: without C++20, $count errors instead of the #error and the stop:" >&2
    printf '%s\n' "$out" | head -n 20 >&2
    status=1
  fi
done
[ "$status" -eq 0 ] && touch "$stamp"
exit "$status"
