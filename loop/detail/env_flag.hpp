// An on/off switch read from the environment (RINGLOOP_DEBUG, RINGLOOP_NO_TSC): set and neither
// empty nor "0". Included by the library's sources only, not installed.
#pragma once

#include <cstdlib>
#include <cstring>

namespace ringloop::detail {

inline bool env_flag(const char* name) noexcept {
  const char* value = std::getenv(name);
  return value != nullptr && value[0] != '\0' && std::strcmp(value, "0") != 0;
}

}  // namespace ringloop::detail
