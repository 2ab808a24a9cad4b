#include <ringloop/coro/signal/signals.hpp>

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include <ringloop/coro/exception_handler.hpp>
#include <ringloop/coro/io/io.hpp>
#include <ringloop/coro/task/task.hpp>

namespace ringloop {
namespace {

// What one loop watches: its signalfd, the handlers, and the task reading the fd.
struct SignalWatch {
  Loop* loop = nullptr;
  int fd = -1;
  sigset_t set{};
  std::map<int, std::function<void()>> handlers;
  // The task reading fd; not an owning Task handle (that and the task's hold on this watch
  // would keep each other alive). The task clears it as its frame goes.
  detail::TaskCore* reader = nullptr;
  // The read in flight, while there is one (it lives in the reader's frame).
  Operation* reading = nullptr;
  // handlers[SIGINT] is run()'s (InterruptMainOnSigint), not the program's.
  bool sigint_is_internal = false;

  // With only run()'s SIGINT watch installed, the reader is the loop's own machinery: it does
  // not keep the loop waiting (a main task waiting on nothing else is deadlocked) and is not
  // reported as pending.
  bool only_internal() const noexcept { return sigint_is_internal && handlers.size() == 1; }
  void update_daemon() noexcept {
    if (reader != nullptr) loop->set_daemon(*reader, only_internal());
    if (reading != nullptr) loop->set_daemon(*reading, only_internal());
  }

  ~SignalWatch() {
    if (fd >= 0) ::close(fd);
  }
};

// One per thread: a loop belongs to one thread.
thread_local std::shared_ptr<SignalWatch> watch;

void check_signal(int signal) {
  if (signal <= 0 || signal >= NSIG)
    throw std::invalid_argument("add_signal_handler: signal " + std::to_string(signal) +
                                " is out of range");
  if (signal == SIGKILL || signal == SIGSTOP)
    throw std::invalid_argument(std::string("add_signal_handler: ") + strsignal(signal) +
                                " cannot be caught");
}

// Takes a pending instance of signal, then unblocks it: its old disposition applies again.
void give_back(int signal) noexcept {
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, signal);
  timespec zero{};
  while (::sigtimedwait(&one, nullptr, &zero) == signal) {
  }
  pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
}

// The reader ends when its handlers are all removed (cancelled then) or its loop closes (every
// task is cancelled); in the second case the signals it still held are given back here.
Coro<void> read_each(const std::shared_ptr<SignalWatch>& self) {
  signalfd_siginfo info{};
  for (;;) {
    auto read = ringloop::io::read(self->fd, &info, sizeof(info));
    read.operation().daemon = self->only_internal();
    self->reading = &read.operation();
    std::size_t got = 0;
    try {
      got = co_await read;
    } catch (...) {
      self->reading = nullptr;
      throw;
    }
    self->reading = nullptr;
    if (got != sizeof(info)) continue;
    auto handler = self->handlers.find(static_cast<int>(info.ssi_signo));
    if (handler == self->handlers.end()) continue;  // removed meanwhile
    std::function<void()> fn = handler->second;     // the handler may remove itself
    try {
      fn();
    } catch (...) {
      detail::report_exception(self->loop, {std::string("exception in the handler of ") +
                                                strsignal(static_cast<int>(info.ssi_signo)),
                                            std::current_exception(), ""});
    }
  }
}

// Lives in the reading task's frame, so it runs however that task ends: cancelled while
// reading, or cancelled before it ever ran (a loop closing at once). When the watch is still
// the thread's (its loop closed with handlers installed), the signals are given back.
struct ReaderGuard {
  std::shared_ptr<SignalWatch> self;
  explicit ReaderGuard(std::shared_ptr<SignalWatch> s) noexcept : self(std::move(s)) {}
  ReaderGuard(ReaderGuard&& other) noexcept = default;
  ~ReaderGuard() {
    if (!self) return;
    self->reader = nullptr;
    if (watch == self) {
      for (const auto& [signal, fn] : self->handlers) give_back(signal);
      watch.reset();
    }
  }
};

Coro<void> read_signals(ReaderGuard guard) { co_await read_each(guard.self); }

}  // namespace

namespace {
void add_handler(Loop& loop, int signal, std::function<void()> fn, bool internal);
}  // namespace

void add_signal_handler(Loop& loop, int signal, std::function<void()> fn) {
  add_handler(loop, signal, std::move(fn), /*internal=*/false);
}

namespace {
void add_handler(Loop& loop, int signal, std::function<void()> fn, bool internal) {
  check_signal(signal);
  if (loop.is_closed()) throw std::logic_error("add_signal_handler: the event loop is closed");
  if (Loop::current() != nullptr && Loop::current() != &loop)
    throw std::logic_error("add_signal_handler: the loop is not the one running on this thread");
  if (watch && watch->loop != &loop) {
    if (watch->reader != nullptr)
      throw std::logic_error("add_signal_handler: another loop of this thread handles signals");
    watch.reset();  // left by a loop that has closed
  }
  bool fresh = !watch;
  if (fresh) {
    watch = std::make_shared<SignalWatch>();
    watch->loop = &loop;
    sigemptyset(&watch->set);
  }
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, signal);
  if (int error = pthread_sigmask(SIG_BLOCK, &one, nullptr); error != 0)
    throw std::system_error(error, std::system_category(), "add_signal_handler: pthread_sigmask");
  sigaddset(&watch->set, signal);
  int fd = ::signalfd(watch->fd, &watch->set, SFD_CLOEXEC);
  if (fd < 0)
    throw std::system_error(errno, std::system_category(), "add_signal_handler: signalfd");
  watch->fd = fd;
  watch->handlers[signal] = std::move(fn);
  if (signal == SIGINT) watch->sigint_is_internal = internal;
  if (fresh) watch->reader = &create_task(loop, read_signals(ReaderGuard(watch))).core();
  watch->update_daemon();
}
}  // namespace

void add_signal_handler(int signal, std::function<void()> fn) {
  add_signal_handler(Loop::running("add_signal_handler"), signal, std::move(fn));
}

bool remove_signal_handler(Loop& loop, int signal) {
  if (!watch || watch->loop != &loop || watch->handlers.erase(signal) == 0) return false;
  sigdelset(&watch->set, signal);
  if (watch->fd >= 0) (void)::signalfd(watch->fd, &watch->set, SFD_CLOEXEC);
  give_back(signal);
  if (signal == SIGINT) watch->sigint_is_internal = false;
  watch->update_daemon();
  if (watch->handlers.empty()) {
    if (watch->reader != nullptr) watch->reader->cancel();  // its frame keeps the fd to its CQE
    watch.reset();
  }
  return true;
}

bool remove_signal_handler(int signal) {
  return remove_signal_handler(Loop::running("remove_signal_handler"), signal);
}

namespace detail {

InterruptMainOnSigint::InterruptMainOnSigint(Loop& loop, TaskCore& main)
    : state_(std::make_shared<State>(State{&loop, &main, 0})) {
  // asyncio's rule: only in the main thread, and only if the program left SIGINT alone: its
  // default action, not blocked (a program that blocks it reads it itself, from a signalfd or
  // sigwait), no handler of its own on this loop.
  if (::gettid() != ::getpid()) return;
  struct sigaction current {};
  if (::sigaction(SIGINT, nullptr, &current) != 0 || current.sa_handler != SIG_DFL) return;
  sigset_t blocked;
  if (::pthread_sigmask(SIG_BLOCK, nullptr, &blocked) != 0 || sigismember(&blocked, SIGINT) == 1)
    return;
  if (watch && watch->handlers.count(SIGINT) != 0) return;
  // The handler holds the state, not this object: it may run while the loop closes, after
  // run() is done with the main task.
  add_handler(
      loop, SIGINT,
      [state = state_] {
        if (++state->interrupts == 1 && state->main != nullptr && !state->main->done) {
          state->main->cancel();
          return;
        }
        // A second Ctrl-C while the main task is still being cancelled (or one while the loop
        // closes): the default action now.
        remove_signal_handler(*state->loop, SIGINT);
        ::raise(SIGINT);
      },
      /*internal=*/true);
}

// The watch stays until the loop closes: close() cancels its reader (a daemon task, so not
// reported) and gives SIGINT its default action back.
InterruptMainOnSigint::~InterruptMainOnSigint() { state_->main = nullptr; }

}  // namespace detail

}  // namespace ringloop
