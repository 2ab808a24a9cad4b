# Sourced (`. bench/server_harness.sh NAME`) by the scripts that start one system's server and run
# a client against it (tls/tls_peer.sh, echo_loops.sh, c100k.sh): a work directory
# /tmp/NAME.XXXXXX, and on every way out the server (whose pid the script puts in server_pid)
# stopped and the directory removed; scripts/bench's timeout (TERM) stops the server too.
work=$(mktemp -d "/tmp/$1.XXXXXX")
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM INT
