#include <ringloop/coro/exception_handler.hpp>

#include <cxxabi.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <typeinfo>

#include <ringloop/coro/errors.hpp>

namespace ringloop {
namespace detail {
namespace {

// The type as the reader wrote it (std::runtime_error), not as the ABI spells it
// (St13runtime_error).
std::string type_name(const std::type_info& type) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(
      abi::__cxa_demangle(type.name(), nullptr, nullptr, &status), &std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(type.name());
}

template <class E>
std::string describe(const E& error, bool with_type) {
  return with_type ? type_name(typeid(error)) + ": " + error.what() : std::string(error.what());
}

}  // namespace

std::string describe_exception(const std::exception_ptr& error, bool with_type) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return describe(e, with_type);
  } catch (const BaseException& e) {
    return describe(e, with_type);
  } catch (...) {
    return "(not a std::exception)";
  }
}

void report_exception(Loop* loop, const ExceptionContext& context) noexcept {
  if (loop != nullptr)
    loop->call_exception_handler(context);
  else
    Loop::default_exception_handler(context);
}

}  // namespace detail

// As before the handler existed: "ringloop: message (task): type: what", the type only in a
// report about a task (as asyncio's traceback names it); "(not a std::exception)" without ": ".
void Loop::default_exception_handler(const ExceptionContext& context) noexcept {
  try {
    std::string line = "ringloop: " + context.message;
    if (!context.task.empty()) line += " (" + context.task + ")";
    if (context.exception) {
      std::string what = detail::describe_exception(context.exception, !context.task.empty());
      line += what == "(not a std::exception)" ? " " + what : ": " + what;
    }
    std::fprintf(stderr, "%s\n", line.c_str());
  } catch (...) {  // out of memory while formatting: say what can be said
    std::fprintf(stderr, "ringloop: %s\n", context.message.c_str());
  }
}

// asyncio: an exception from the handler is logged by the default handler, with the context
// it was given, and goes no further.
void Loop::call_exception_handler(const ExceptionContext& context) noexcept {
  if (!exception_handler_) {
    default_exception_handler(context);
    return;
  }
  try {
    exception_handler_(*this, context);
  } catch (...) {
    try {
      default_exception_handler(
          {"Unhandled error in exception handler", std::current_exception(), ""});
    } catch (...) {
    }
    default_exception_handler(context);
  }
}

// Defined here, with the context type, for loop/ (which knows nothing of coro/): a limit the
// loop reached (admission budget full, CQEs dropped), reported as asyncio reports a problem of
// the loop itself: a context with a message and no exception.
void Loop::report_limit(const std::string& message) noexcept {
  try {
    call_exception_handler({message, nullptr, ""});
  } catch (...) {  // out of memory while copying the message: LoopStats still counts it
  }
}

}  // namespace ringloop
