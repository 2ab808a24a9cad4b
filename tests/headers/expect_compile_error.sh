#!/bin/sh
# expect_compile_error.sh STAMP MESSAGE SOURCE INCLUDE_ROOT -- COMPILER...
# Compiles SOURCE (a misuse that must not compile) and expects the compiler to stop with an
# error containing MESSAGE. Writes STAMP when it does.
set -eu
stamp=$1 message=$2 source=$3 include_root=$4
shift 4
[ "$1" = "--" ] && shift
if out=$("$@" -std=c++20 -fsyntax-only -I"$include_root" "$source" 2>&1); then
  echo "$source: compiled; expected an error saying: $message" >&2
  exit 1
fi
if ! printf '%s\n' "$out" | grep 'error' | grep -qF "$message"; then
  echo "$source: did not fail with the expected error ($message); the compiler said:" >&2
  printf '%s\n' "$out" | head -n 20 >&2
  exit 1
fi
touch "$stamp"
