// A minimal coroutine type written without ringloop's headers, as other libraries' are: eager,
// detached, it frees its own frame at the end and tells a flag. Tests drive it on the loop.
#pragma once

#include <atomic>
#include <coroutine>
#include <exception>

namespace test_support {

struct Detached {
  struct promise_type {
    std::atomic<bool>* finished = nullptr;
    Detached get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
};

}  // namespace test_support
