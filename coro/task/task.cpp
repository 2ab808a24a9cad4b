#include <cstdio>
#include <exception>

#include <ringloop/coro/detail/promise.hpp>
#include <ringloop/coro/exception_handler.hpp>

namespace ringloop::detail {

void report_unretrieved_exception(Loop* loop, const std::exception_ptr& error,
                                  const CreatedAt& created_at) noexcept {
  try {
    // asyncio names the task; a C++ task has no name, but where it was created tells which.
    char where[512] = "";
    if (created_at.line != 0)
      std::snprintf(where, sizeof(where), "task created at %s:%u in %s", created_at.file,
                    created_at.line, created_at.function);
    // The loop may be gone (a Task handle kept past it): then the default handler reports.
    report_exception(Loop::exists_on_this_thread(loop) ? loop : nullptr,
                     {"Task exception was never retrieved", error, where});
  } catch (...) {  // out of memory building the context
    std::fprintf(stderr, "ringloop: Task exception was never retrieved\n");
  }
}

// A done callback's failure goes where call_soon's callbacks report theirs: the running loop's
// exception handler.
void report_callback_exception(const std::exception_ptr& error) noexcept {
  report_exception(Loop::current(), {"exception in callback", error, ""});
}

}  // namespace ringloop::detail
