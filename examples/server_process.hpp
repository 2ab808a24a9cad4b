// What the example servers (echo_server, http_server) do first, in the main thread before any
// other thread or loop starts: raise the open-file limit, and take SIGINT and SIGTERM away from
// their default action so that a loop reads them from a signalfd through the ring.
#pragma once

#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>

namespace examples {

// One fd per connection: a thousand clients need more than the usual soft limit of 1024, so the
// soft limit is raised to the hard one (left as it is when that fails).
inline void raise_open_file_limit() noexcept {
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &files);
  }
}

// Blocks SIGINT and SIGTERM and returns a signalfd that reads them (-1, with errno, when it
// cannot be made). Blocked before any other thread starts, so that every thread inherits the
// mask: the signals wait in the signalfd for the ring's read instead of killing the process, and
// stay blocked until it exits, so a second Ctrl-C cannot cut the clean shutdown short. Ctrl-C is
// then the program's own: run() installs no SIGINT watch of its own, so no KeyboardInterrupt
// comes, and SIGINT ends the server as cleanly as SIGTERM (exit 0). A program that leaves SIGINT
// alone catches KeyboardInterrupt and returns 130 (README).
inline int stop_signal_fd() noexcept {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return ::signalfd(-1, &signals, SFD_CLOEXEC);
}

}  // namespace examples
