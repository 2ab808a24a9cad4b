// The loop's exception handler (asyncio's loop.set_exception_handler): every error that no
// awaiter can receive (a task exception never retrieved, a call_soon/call_later callback or a
// signal handler that threw, a failed connection handler or accept in serve) is reported as an
// ExceptionContext through Loop::call_exception_handler, which calls the handler set on the loop
// or else Loop::default_exception_handler (a line on stderr). A handler that throws is reported
// by the default handler; nothing it throws reaches the loop.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <exception>
#include <string>

#include <ringloop/loop/loop.hpp>

namespace ringloop {

// asyncio's context dict, with the keys ringloop knows.
struct ExceptionContext {
  std::string message;           // what happened: "Task exception was never retrieved"
  std::exception_ptr exception;  // what was thrown, or null
  std::string task;              // the task concerned ("task created at file:line in f"), or ""
};

namespace detail {

// "std::runtime_error: what" (with_type) or "what"; BaseExceptions too; another type is
// "(not a std::exception)".
std::string describe_exception(const std::exception_ptr& error, bool with_type);

// Reports context to loop's handler, or to the default one when no loop is given.
void report_exception(Loop* loop, const ExceptionContext& context) noexcept;

}  // namespace detail
}  // namespace ringloop
