#include <cxxabi.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <typeinfo>

#include <ringloop/coro/detail/promise.hpp>

namespace ringloop::detail {
namespace {

// The type as the reader wrote it (std::runtime_error), not as the ABI spells it
// (St13runtime_error).
std::string type_name(const std::type_info& type) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(
      abi::__cxa_demangle(type.name(), nullptr, nullptr, &status), &std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(type.name());
}

}  // namespace

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
                 type_name(typeid(e)).c_str(), e.what());
  } catch (const BaseException& e) {
    std::fprintf(stderr, "ringloop: Task exception was never retrieved%s: %s: %s\n", where,
                 type_name(typeid(e)).c_str(), e.what());
  } catch (...) {
    std::fprintf(stderr, "ringloop: Task exception was never retrieved%s (not a std::exception)\n",
                 where);
  }
}

}  // namespace ringloop::detail
