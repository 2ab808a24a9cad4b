// The one header a user includes, compiled alone under tests/headers/meson.build's warnings.
#include <ringloop/ringloop.hpp>
