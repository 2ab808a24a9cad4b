#include <cstdio>
#include <exception>
#include <typeinfo>

#include <ringloop/coro/detail/promise.hpp>

namespace ringloop::detail {

void report_unretrieved_exception(const std::exception_ptr& error,
                                  const CreatedAt& created_at) noexcept {
  // asyncio names the task; a C++ task has no name, but where it was created tells which.
  char where[512] = "";
  if (created_at.line != 0)
    std::snprintf(where, sizeof(where), " (task created at %s:%u in %s)", created_at.file,
                  created_at.line, created_at.function);
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ringloop: Task exception was never retrieved%s: %s: %s\n", where,
                 typeid(e).name(), e.what());
  } catch (...) {
    std::fprintf(stderr, "ringloop: Task exception was never retrieved%s (not a std::exception)\n",
                 where);
  }
}

void report_callback_exception(const std::exception_ptr& error) noexcept {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ringloop: exception in callback: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "ringloop: exception in callback (not a std::exception)\n");
  }
}

}  // namespace ringloop::detail
