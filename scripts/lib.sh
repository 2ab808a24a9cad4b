# Shared by scripts/demo, scripts/test and scripts/bench: install what is missing, build.
# Sourced, not run.

# Installs the Debian packages named that are not installed yet (apt-get through sudo when not
# root). Quiet when everything is there already.
ensure_packages() {
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
      echo "ringloop: missing packages (${missing[*]}); run as root or install sudo" >&2
      return 1
    fi
    as_root=(sudo)
  fi
  echo "ringloop: installing ${missing[*]}" >&2
  local log
  log=$(mktemp /tmp/ringloop-apt.XXXXXX)
  if ! { "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "ringloop: apt-get failed (log above)" >&2
    return 1
  fi
  rm -f "$log"
}

# The packages every build needs.
BUILD_PACKAGES=(g++ meson ninja-build pkg-config liburing-dev libssl-dev ca-certificates)

# configure_build DIR SOURCE [meson options...]: sets up a build directory, or brings an
# existing one to the options given. The compiler comes from CXX in the environment (it only
# counts at setup).
configure_build() {
  local dir=$1 source=$2
  shift 2
  if [ -f "$dir/build.ninja" ]; then
    meson configure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$source" "$@" >/dev/null
  fi
}
