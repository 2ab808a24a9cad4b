// Helpers shared by the tests: a clock in seconds, stderr capture, and a child-process runner
// for checks that must abort.
//
// Never write co_await inside CHECK()/REQUIRE(): with g++ 12, Catch2 2.13's expression macros
// evaluated the await a second time (seen here: a Coro reported as "awaited twice"). Await into
// a variable, then check it. CHECK_THROWS* evaluate their expression once and are fine.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif

namespace test_support {

// Whether this process runs under valgrind, where a step costs tens of times its native time:
// for the few checks whose margin is a matter of milliseconds.
inline bool under_valgrind() {
#ifdef RUNNING_ON_VALGRIND
  return RUNNING_ON_VALGRIND != 0;
#else
  return false;
#endif
}

// Call first in a fork()ed child that will exit without exec. Under valgrind the child runs
// its leak check at exit, and blocks that only a parent's thread still points at (the default
// executor's jobs, getaddrinfo's resolver state) read as "definitely lost" there, since the
// threads were not forked: the child's exit code would be valgrind's error code for memory the
// parent holds. The parent's own leak check still covers that memory.
inline void in_forked_child() {
#ifdef VALGRIND_CLO_CHANGE
  if (RUNNING_ON_VALGRIND) VALGRIND_CLO_CHANGE("--leak-check=no");
#endif
}

// How many file descriptors this process has open (the entries of /proc/self/fd, less the one
// the listing itself holds). Tests compare it before and after to find leaks.
inline int open_fd_count() {
  int count = 0;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  while (dirent* entry = ::readdir(dir))
    if (entry->d_name[0] != '.') ++count;
  ::closedir(dir);
  return count - 1;
}

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Runs fn with a file descriptor (stderr, stdout) sent to a temporary file; returns what was
// written there.
inline std::string capture_fd(int fd, const std::function<void()>& fn) {
  std::fflush(nullptr);
  char path[] = "/tmp/ringloop-capture-XXXXXX";
  int file = ::mkstemp(path);
  int saved = ::dup(fd);
  ::dup2(file, fd);
  fn();
  std::fflush(nullptr);
  ::dup2(saved, fd);
  ::close(saved);
  ::close(file);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  ::unlink(path);
  return text.str();
}

inline std::string capture_stderr(const std::function<void()>& fn) { return capture_fd(2, fn); }
inline std::string capture_stdout(const std::function<void()>& fn) { return capture_fd(1, fn); }

// A built example, beside this binary's tests/ folder in the same build
// (build/<config>/examples/NAME).
inline std::string example_path(const std::string& name) {
  char self[PATH_MAX] = {};
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  std::string path(self, n > 0 ? static_cast<std::size_t>(n) : 0);
  path = path.substr(0, path.rfind('/'));  // .../tests
  return path.substr(0, path.rfind('/')) + "/examples/" + name;
}

// Runs command with sh; returns its standard output.
inline std::string output_of(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return out;
  char buffer[256];
  while (std::fgets(buffer, sizeof(buffer), pipe) != nullptr) out += buffer;
  ::pclose(pipe);
  return out;
}

// Runs fn in a child process; returns its wait status (for checks that must abort).
inline int run_in_child(const std::function<void()>& fn) {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    in_forked_child();
    ::signal(SIGABRT, SIG_DFL);  // the test runner's handler would report and carry on
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 2);
    fn();
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

}  // namespace test_support
