// A child process for the tests that talk to programs nobody here wrote (python3's http.server
// and asyncio) or to the built examples: started with posix_spawnp, its stdout on a pipe the
// test reads lines from, killed and reaped when the test ends, whatever way it ends.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace test_support {

class ChildProcess {
 public:
  // Runs argv[0] (searched in PATH) with argv; its stdout (and stderr, if merge_stderr) on a
  // pipe.
  explicit ChildProcess(const std::vector<std::string>& argv, bool merge_stderr = false) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    // stderr: with stdout, or nowhere (http.server logs every request there).
    if (merge_stderr)
      ::posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
    else
      ::posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    std::vector<char*> args;
    for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    int error = ::posix_spawnp(&pid_, args[0], &actions, nullptr, args.data(), environ);
    ::posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (error != 0) {
      ::close(fds[0]);
      throw std::runtime_error("cannot run " + argv[0] + ": " + std::to_string(error));
    }
    out_ = fds[0];
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) ::close(out_);
  }

  pid_t pid() const noexcept { return pid_; }

  // The next line of its output (without the newline); empty at end of output or after
  // `timeout` without one.
  std::string read_line(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (auto end = buffer_.find('\n'); end != std::string::npos) {
        std::string line = buffer_.substr(0, end);
        buffer_.erase(0, end + 1);
        return line;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd ready{out_, POLLIN, 0};
      if (left.count() <= 0) return {};
      int polled = ::poll(&ready, 1, static_cast<int>(left.count()));
      // poll with a timeout returns EINTR after any interruption, also the test being stopped
      // and continued (signal(7)): wait again for what is left of the time.
      if (polled < 0 && errno == EINTR) continue;
      if (polled <= 0) return {};
      char chunk[512];
      ssize_t n = ::read(out_, chunk, sizeof chunk);
      if (n <= 0) return {};
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  // Sends sig and waits for the exit; returns the wait status.
  int stop(int sig = SIGTERM) {
    ::kill(pid_, sig);
    return wait();
  }
  int wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  std::string buffer_;
};

}  // namespace test_support
