#!/usr/bin/env bash
# Builds every peer benchmark program into BUILD_DIR (default
# /tmp/peers-build), installing the Debian packages they need when missing.
# Nothing is written inside the repository.
#
# Usage: bench/peers/build.sh [BUILD_DIR]
#
# stdout: one line per runnable peer, "<peer> <command>", where <command> is
# a wrapper in BUILD_DIR/bin that takes `<scenario> <n> [conns] [secs]`; and
# "asio_tls_server <binary>" and "tokio_tls_server <binary>", the Asio and tokio TLS echo
# servers bench/tls/tls_peer.sh starts.
# BUILD_DIR also gets tokio_c100k_server and asio_c100k_server, the c100k servers that
# bench/c100k.sh starts (RINGLOOP_PEERS_DIR=BUILD_DIR).
# Progress and warnings go to stderr.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILD_DIR="${1:-/tmp/peers-build}"
mkdir -p "$BUILD_DIR/bin"
BUILD_DIR="$(cd "$BUILD_DIR" && pwd)"
log() { echo "build.sh: $*" >&2; }

# ------------------------------------------------------------ packages
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
# gcc/g++ (C, C++20 coroutines), liburing 2.3, standalone Asio 1.22, Debian's
# Rust toolchain + tokio 1.24 source crates, uvloop for Debian's python3; OpenSSL 3 for
# Asio's ssl::stream; tokio-rustls 0.23 (rustls 0.20, ring) and rustls-pemfile 1.0 source
# crates for tokio's TLS echo server.
PKGS="gcc g++ fio liburing-dev libasio-dev libssl-dev cargo rustc librust-tokio-dev librust-tokio-rustls-dev librust-rustls-pemfile-dev python3 python3-uvloop"
missing=""
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
# Node.js: the machine's node is used when there is one (v20 here);
# otherwise Debian's nodejs.
if ! command -v node >/dev/null 2>&1; then missing="$missing nodejs"; fi
if [ -n "$missing" ]; then
  log "installing:$missing"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >&2
fi

# ------------------------------------------------------------ floor (C, liburing)
log "floor"
gcc -O2 -Wall -Wextra -o "$BUILD_DIR/floor" "$HERE/floor/floor.c" -luring

# ------------------------------------------------------------ asio (io_uring backend)
log "asio"
g++ -std=c++20 -O2 -Wall -DASIO_HAS_IO_URING -DASIO_DISABLE_EPOLL \
  -o "$BUILD_DIR/asio_peer" "$HERE/asio/asio_peer.cpp" -luring -pthread

# The TLS echo server of the tls_* scenarios (bench/tls/tls_peer.sh): ssl::stream over
# OpenSSL 3 on the same io_uring backend.
g++ -std=c++20 -O2 -Wall -DASIO_HAS_IO_URING -DASIO_DISABLE_EPOLL \
  -o "$BUILD_DIR/asio_tls_echo" "$HERE/asio/asio_tls_echo.cpp" -luring -lssl -lcrypto -pthread

# c100k's server (bench/c100k.sh starts it): idle connections on the same io_uring backend.
g++ -std=c++20 -O2 -Wall -DASIO_HAS_IO_URING -DASIO_DISABLE_EPOLL \
  -o "$BUILD_DIR/asio_c100k_server" "$HERE/asio/asio_c100k_server.cpp" -luring -pthread

# ------------------------------------------------------------ tokio (Rust, offline)
# Debian's cargo and rustc explicitly (a rustup toolchain may be first in
# PATH), a private CARGO_HOME (no user config leaks in), and a copy of the
# crate so that Cargo.lock is written to BUILD_DIR, not into the repo.  The
# crate's .cargo/config.toml points crates-io at /usr/share/cargo/registry.
log "tokio (first build takes ~1 min)"
mkdir -p "$BUILD_DIR/tokio-src"
# -p keeps mtimes, so an unchanged crate is not rebuilt.
cp -rp "$HERE/tokio/Cargo.toml" "$HERE/tokio/src" "$HERE/tokio/.cargo" "$BUILD_DIR/tokio-src/"
(
  cd "$BUILD_DIR/tokio-src"
  CARGO_HOME="$BUILD_DIR/cargo-home" RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
    CARGO_TARGET_DIR="$BUILD_DIR/tokio-target" \
    /usr/bin/cargo build --release --offline --quiet >&2
)
cp "$BUILD_DIR/tokio-target/release/tokio_peer" "$BUILD_DIR/tokio_peer"
# c100k's server (src/bin/c100k_server.rs; bench/c100k.sh starts it).
cp "$BUILD_DIR/tokio-target/release/c100k_server" "$BUILD_DIR/tokio_c100k_server"

# The TLS echo server of the tls_* scenarios: a crate of its own (tokio_tls/), so that the
# crate above builds without rustls and ring. Built the same way, with its own target dir.
# Cargo's "no matching package" says which crate is missing, not which Debian package has it:
# this does.
for crate in tokio-rustls-0.23:librust-tokio-rustls-dev rustls-pemfile-1.:librust-rustls-pemfile-dev; do
  if ! compgen -G "/usr/share/cargo/registry/${crate%%:*}*" >/dev/null; then
    log "error: no ${crate%%:*}* crate in /usr/share/cargo/registry (apt-get install ${crate#*:})"
    exit 1
  fi
done
log "tokio_tls (first build takes ~1 min: ring's C and assembly)"
mkdir -p "$BUILD_DIR/tokio-tls-src"
cp -rp "$HERE/tokio_tls/Cargo.toml" "$HERE/tokio_tls/src" "$HERE/tokio_tls/.cargo" \
  "$BUILD_DIR/tokio-tls-src/"
(
  cd "$BUILD_DIR/tokio-tls-src"
  CARGO_HOME="$BUILD_DIR/cargo-home" RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
    CARGO_TARGET_DIR="$BUILD_DIR/tokio-tls-target" \
    /usr/bin/cargo build --release --offline --quiet >&2
) || { log "error: tokio_tls_echo did not build (needs librust-tokio-rustls-dev and librust-rustls-pemfile-dev)"; exit 1; }
cp "$BUILD_DIR/tokio-tls-target/release/tokio_tls_echo" "$BUILD_DIR/tokio_tls_echo"

# ------------------------------------------------------------ scripts
cp "$HERE/node/peer.js" "$BUILD_DIR/peer.js"
cp "$HERE/python/peer.py" "$BUILD_DIR/peer.py"
NODE="$(command -v node)"

# ------------------------------------------------------------ wrappers
wrap() {  # wrap NAME COMMAND...
  local name="$1"; shift
  printf '#!/bin/sh\nexec %s "$@"\n' "$*" >"$BUILD_DIR/bin/$name"
  chmod +x "$BUILD_DIR/bin/$name"
  echo "$name $BUILD_DIR/bin/$name"
}
wrap floor "$BUILD_DIR/floor"
wrap asio "$BUILD_DIR/asio_peer"
# Not a peer of the scenario command line: a server that tls_peer.sh starts (CERT KEY PORT).
echo "asio_tls_server $BUILD_DIR/asio_tls_echo"
echo "tokio_tls_server $BUILD_DIR/tokio_tls_echo"
wrap tokio_ct "$BUILD_DIR/tokio_peer --ct"
wrap tokio_mt "$BUILD_DIR/tokio_peer --mt"
wrap node "$NODE $BUILD_DIR/peer.js"
wrap asyncio "/usr/bin/python3 $BUILD_DIR/peer.py"
# file_read's floor (issue #18): Debian's fio, io_uring engine.
if command -v fio >/dev/null 2>&1; then
  wrap fio "$HERE/fio/fio_peer.sh"
else
  log "warning: no fio (apt-get install fio); no file_read floor"
fi
if /usr/bin/python3 -c 'import uvloop' 2>/dev/null; then
  wrap uvloop "/usr/bin/python3 $BUILD_DIR/peer.py --uvloop"
else
  log "warning: uvloop not importable by /usr/bin/python3; no uvloop peer"
fi
