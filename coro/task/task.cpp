#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>

#include <ringloop/coro/detail/promise.hpp>
#include <ringloop/coro/exception_handler.hpp>

namespace ringloop::detail {

void report_unretrieved_exception(Loop* loop, const std::exception_ptr& error,
                                  const CreatedAt& created_at) noexcept {
  try {
    // asyncio names the task; a C++ task has no name, but where it was created tells which.
    char where[512] = "";
    // The creating function is known in debug mode only (TaskCore::created_at).
    bool named = created_at.function != nullptr;
    if (created_at.line != 0)
      std::snprintf(where, sizeof(where), "task created at %s:%u%s%s", created_at.file,
                    created_at.line, named ? " in " : "", named ? created_at.function : "");
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

void throw_task_on_wrong_loop(const TaskCore& task, const char* caller) {
  Loop* here = Loop::current();
  std::string where = here != nullptr ? "on the thread of " + here->name()
                                      : std::string("on a thread that runs no loop");
  throw std::logic_error(std::string(caller) + ": a task of " + task.loop->name() +
                         " was resumed " + where +
                         "; a task stays on its own loop's thread: to run work on another loop, "
                         "await LoopGroup's call() or submit_to()");
}

// What the loop does to a task (loop/loop.hpp): a task is a TaskCore, the record in its root
// coroutine's promise.
void cancel_task(TaskHook& task) noexcept { static_cast<TaskCore&>(task).cancel(); }
void abandon_task(TaskHook& task) noexcept { static_cast<TaskCore&>(task).abandon(); }
void run_first_step(TaskHook& task) noexcept {
  PromiseBase::of<PromiseBase>(static_cast<TaskCore&>(task)).first_step();
}

}  // namespace ringloop::detail
