// A program that uses ringloop from another project, as README "Use it in your project" shows:
// built by scripts/consumer-check against the installed library (pkg-config, CMake) and as a
// Meson subproject, each from a clean directory outside the repository.
#include <ringloop/ringloop.hpp>

#include <cstdio>
#include <string>

using namespace std::chrono_literals;
using ringloop::Coro;

Coro<std::string> fetch(int id) {
  co_await ringloop::sleep(10ms);
  co_return "data " + std::to_string(id);
}

Coro<int> main_coro() {
  auto [a, b] = co_await ringloop::gather(fetch(1), fetch(2));
  try {
    co_await ringloop::wait_for(fetch(3), 1ms);
  } catch (const ringloop::TimeoutError&) {
    b += ", 3 timed out";
  }
  std::printf("consumer: %s, %s\n", a.c_str(), b.c_str());
  co_return 0;
}

int main() {
  try {
    return ringloop::run(main_coro());
  } catch (const ringloop::KeyboardInterrupt&) {
    return 130;  // Ctrl-C: the shell's convention for a program ended by SIGINT
  }
}
