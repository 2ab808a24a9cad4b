#!/usr/bin/env bash
# One run of the http_plaintext scenario (shared/BENCH.md): Debian's wrk, one thread and C
# keep-alive connections for SECS seconds, against a "Hello, World!" server with LOOPS loops
# (ringloop's examples/http_server --loops LOOPS) or worker processes (Debian's nginx,
# worker_processes LOOPS), started here and stopped after.
#
#   bench/http_plaintext.sh ringloop PATH/TO/http_server http_plaintext LOOPS CONNS SECS
#   bench/http_plaintext.sh nginx - http_plaintext LOOPS CONNS SECS
#
# Prints one line: peer=ringloop|nginx scenario=http_plaintext n=LOOPS conns= secs= req_per_s=
# p99_us= cpu_s= (the server's user+system CPU over the wrk run, from /proc/PID/stat, every
# nginx process summed) req_per_cpu_s= wrk_cpu_s= requests=. Fails (exit 1, the reason on
# stderr) when a server or wrk does not start, when the body is not exactly "Hello, World!", or
# when wrk saw errors or non-2xx answers: never a line of zeros.
set -euo pipefail

system=${1:?system: ringloop or nginx}
server=${2:?path to http_server, or - for nginx}
scenario=${3:?scenario}
loops=${4:?loops}
conns=${5:-64}
secs=${6:-5}
[ "$scenario" = http_plaintext ] || { echo "http_plaintext.sh: unknown scenario $scenario" >&2; exit 2; }

fail() {
  echo "http_plaintext.sh ($system, $loops loops): $*" >&2
  exit 1
}
command -v wrk >/dev/null || fail "no wrk (apt-get install wrk)"
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

tmp=$(mktemp -d /tmp/ringloop-http-bench.XXXXXX)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# A free port for nginx, which cannot be given port 0 and tell which one it got.
free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits up to 10 s until 127.0.0.1:port accepts a connection.
wait_listening() {
  local port=$1
  for _ in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || return 1
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

case $system in
  ringloop)
    [ -x "$server" ] || fail "no http_server at $server"
    "$server" 0 --loops "$loops" >"$tmp/out" 2>"$tmp/err" &
    pid=$!
    port=""
    for _ in $(seq 1 200); do
      port=$(sed -n 's/^http_server: listening on .* port \([0-9]*\) .*/\1/p' "$tmp/out")
      [ -n "$port" ] && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    [ -n "$port" ] || fail "http_server did not start: $(cat "$tmp/err")"
    pids() { echo "$pid"; }
    ;;
  nginx)
    [ -x "$nginx_bin" ] || fail "no nginx (apt-get install nginx)"
    port=$(free_port)
    mkdir -p "$tmp/temp"
    # Run as the current user (as root, nginx would switch its workers to nobody); logs, pid
    # and temporary files in the temp directory. keepalive_requests is raised from its default
    # of 1,000 so that wrk's connections, like ringloop's, stay open for the whole run; each
    # worker has its own listening socket (reuseport), as each ringloop loop has.
    user_line=""
    [ "$(id -u)" -eq 0 ] && user_line="user $(id -un) $(id -gn);"
    cat >"$tmp/nginx.conf" <<EOF
$user_line
worker_processes $loops;
daemon off;
master_process on;
pid $tmp/nginx.pid;
error_log $tmp/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  default_type text/plain;
  keepalive_timeout 75s;
  keepalive_requests 1000000000;
  client_body_temp_path $tmp/temp/body;
  proxy_temp_path $tmp/temp/proxy;
  fastcgi_temp_path $tmp/temp/fastcgi;
  uwsgi_temp_path $tmp/temp/uwsgi;
  scgi_temp_path $tmp/temp/scgi;
  server {
    listen 127.0.0.1:$port reuseport backlog=4096;
    location / { return 200 "Hello, World!"; }
  }
}
EOF
    "$nginx_bin" -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/error.log" >"$tmp/out" 2>"$tmp/err" &
    pid=$!
    wait_listening "$port" ||
      fail "nginx did not start: $(cat "$tmp/err" "$tmp/error.log" 2>/dev/null)"
    # The master and its workers (the master is idle, but counted).
    pids() { echo "$pid"; pgrep -P "$pid" || true; }
    workers=$(pgrep -P "$pid" | wc -l)
    [ "$workers" -eq "$loops" ] || fail "nginx runs $workers workers, not $loops"
    ;;
  *) fail "unknown system (ringloop or nginx)" ;;
esac

# The body, exactly, and a 200 with text/plain, before measuring.
/usr/bin/python3 - "$port" <<'EOF' || fail "the server's answer is not the plaintext one"
import http.client, sys
c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]), timeout=5)
c.request('GET', '/')
r = c.getresponse()
body = r.read()
assert r.status == 200 and body == b'Hello, World!', (r.status, body)
assert r.getheader('Content-Type') == 'text/plain', r.getheader('Content-Type')
EOF

# utime + stime of the server's processes, in clock ticks (the fields after "pid (comm) ").
cpu_ticks() {
  local total=0 p
  for p in $(pids); do
    [ -r "/proc/$p/stat" ] || continue
    total=$((total + $(sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
  done
  echo "$total"
}
# wrk's own CPU: the shell's children's times (`times`' second line), which wrk's is alone in,
# since the server is not reaped yet. In this shell, not a subshell: a fork starts at zero.
children_s() { tail -n 1 "$1" | awk '{ split($1, u, "m"); split($2, s, "m"); printf "%.2f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }'; }

before=$(cpu_ticks)
times >"$tmp/times-before"
wrk -t1 -c"$conns" -d"${secs}s" --latency "http://127.0.0.1:$port/" >"$tmp/wrk" 2>&1 ||
  fail "wrk failed: $(cat "$tmp/wrk")"
times >"$tmp/times-after"
after=$(cpu_ticks)
wrk_cpu=$(awk -v a="$(children_s "$tmp/times-after")" -v b="$(children_s "$tmp/times-before")" \
  'BEGIN {printf "%.2f", a - b}')
kill -0 "$pid" 2>/dev/null || fail "the server died during the run"

grep -q '^ *Non-2xx or 3xx responses' "$tmp/wrk" && fail "non-2xx answers: $(cat "$tmp/wrk")"
grep -q '^ *Socket errors' "$tmp/wrk" && fail "socket errors: $(cat "$tmp/wrk")"
req_per_s=$(awk '/^Requests\/sec:/ {print $2}' "$tmp/wrk")
requests=$(awk '/ requests in / {print $1}' "$tmp/wrk")
# "     99%    1.23ms": to microseconds.
p99_us=$(awk '$1 == "99%" {
  v = $2; unit = v; gsub(/[0-9.]/, "", unit); sub(/[a-z]+$/, "", v);
  f = unit == "us" ? 1 : unit == "ms" ? 1000 : unit == "s" ? 1000000 : -1;
  if (f > 0) printf "%.0f", v * f }' "$tmp/wrk")
[ -n "$req_per_s" ] && [ -n "$p99_us" ] && [ "${requests:-0}" -gt 0 ] ||
  fail "could not read wrk's output: $(cat "$tmp/wrk")"

ticks_per_s=$(getconf CLK_TCK)
awk -v peer="$system" -v n="$loops" -v conns="$conns" -v secs="$secs" -v rps="$req_per_s" \
  -v p99="$p99_us" -v ticks=$((after - before)) -v hz="$ticks_per_s" -v requests="$requests" \
  -v wrk_cpu="$wrk_cpu" \
  'BEGIN {
    cpu = ticks / hz;
    printf "peer=%s scenario=http_plaintext n=%d conns=%d secs=%d req_per_s=%.0f p99_us=%d cpu_s=%.2f req_per_cpu_s=%.0f wrk_cpu_s=%s requests=%d\n",
      peer, n, conns, secs, rps, p99, cpu, (cpu > 0 ? requests / cpu : 0), wrk_cpu, requests
  }'
