#include <cstdio>
#include <exception>
#include <typeinfo>

#include "coro/detail/promise.hpp"

namespace ringloop::detail {

void report_unretrieved_exception(const std::exception_ptr& error) noexcept {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ringloop: Task exception was never retrieved: %s: %s\n", typeid(e).name(),
                 e.what());
  } catch (...) {
    std::fprintf(stderr, "ringloop: Task exception was never retrieved (not a std::exception)\n");
  }
}

}  // namespace ringloop::detail
