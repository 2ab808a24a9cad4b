// Spawning (posix_spawn + pidfd_open), waiting (IORING_OP_WAITID or a poll on the pidfd) and
// reaping (by wait, by returncode, or in the background for a Process destroyed first).
#include <ringloop/coro/process/process.hpp>

#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>

#include <ringloop/coro/detail/owned_fd.hpp>
#include <ringloop/coro/io/io.hpp>
#include <ringloop/coro/task/gather.hpp>

extern char** environ;

// pidfd_open and pidfd_send_signal through syscall(2): glibc 2.36's <sys/pidfd.h> declares them
// without extern "C", so C++ cannot link against them.
namespace ringloop {
namespace detail {

// liburing 2.3 predates IORING_OP_WAITID (Linux 6.7): its number in the kernel's enum
// io_uring_op, after IORING_OP_READ_MULTISHOT (49).
inline constexpr unsigned char kOpWaitid = 50;

struct ProcessState {
  pid_t pid = -1;
  OwnedFd pidfd;
  // Written by the kernel when an IORING_OP_WAITID reaps the child (it lives here, not in the
  // awaiter, so that a wait cancelled as the kernel reaped still leaves the status behind).
  // si_pid != 0 once it has been written.
  siginfo_t exit_info{};
  std::optional<int> returncode;
  bool waitid_in_flight = false;
  unsigned waits_in_flight = 0;  // wait() coroutines suspended on the pidfd
  Stream stdin_pipe;
  Stream stdout_pipe;
  Stream stderr_pipe;
  std::string program;  // for messages

  ProcessState() = default;
  ProcessState(const ProcessState&) = delete;
  ~ProcessState();

  bool collect();
  void record(const siginfo_t& info) noexcept {
    // WEXITED only: the child exited (its status) or was killed (minus the signal), as asyncio.
    returncode = info.si_code == CLD_EXITED ? info.si_status : -info.si_status;
  }
};

namespace {

std::atomic<ChildWaitPath> g_forced_path{ChildWaitPath::automatic};

// Probed once per process: every ring of a process runs on the same kernel.
bool kernel_has_waitid() noexcept {
  static const bool has = [] {
    const char* forced = std::getenv("RINGLOOP_CHILD_WAIT");
    if (forced != nullptr && std::strcmp(forced, "poll") == 0) return false;
    io_uring_probe* probe = io_uring_get_probe();
    if (probe == nullptr) return false;
    bool supported = io_uring_opcode_supported(probe, kOpWaitid) != 0;
    io_uring_free_probe(probe);
    return supported;
  }();
  return has;
}

// Python ignores SIGPIPE at start-up; we do it when the first child is made, since only then do
// pipes appear (a socket write uses MSG_NOSIGNAL and needs nothing). A handler the program set
// is left alone.
void ignore_sigpipe_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction old {};
    if (::sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL &&
        (old.sa_flags & SA_SIGINFO) == 0)
      ::signal(SIGPIPE, SIG_IGN);
  });
}

// A close-on-exec pipe whose ends are both >= 3, so that dup2 onto 0, 1 or 2 in the child never
// overwrites another of its ends.
std::pair<OwnedFd, OwnedFd> make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    throw std::system_error(errno, std::system_category(), "create_subprocess: pipe2");
  OwnedFd ends[2] = {OwnedFd(fds[0]), OwnedFd(fds[1])};
  for (OwnedFd& end : ends) {
    if (end.fd() >= 3) continue;
    int moved = ::fcntl(end.fd(), F_DUPFD_CLOEXEC, 3);
    if (moved < 0)
      throw std::system_error(errno, std::system_category(), "create_subprocess: fcntl");
    end = OwnedFd(moved);
  }
  return {std::move(ends[0]), std::move(ends[1])};
}

void check(int error, const char* what) {
  if (error != 0) throw std::system_error(error, std::system_category(), what);
}

// posix_spawn's attribute and file-action objects, destroyed on every path.
struct SpawnSetup {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attributes;
  SpawnSetup() {
    check(::posix_spawn_file_actions_init(&actions),
          "create_subprocess: posix_spawn_file_actions_init");
    if (int error = ::posix_spawnattr_init(&attributes); error != 0) {
      ::posix_spawn_file_actions_destroy(&actions);
      check(error, "create_subprocess: posix_spawnattr_init");
    }
  }
  ~SpawnSetup() {
    ::posix_spawnattr_destroy(&attributes);
    ::posix_spawn_file_actions_destroy(&actions);
  }
  SpawnSetup(const SpawnSetup&) = delete;
};

// Sets up child descriptor target_fd (0, 1, 2) as redirect says; for a pipe, child_end is the
// child's end and parent_end the Stream's.
void redirect_fd(SpawnSetup& setup, int target_fd, Redirect redirect, OwnedFd& child_end,
                 Stream& parent_stream) {
  switch (redirect) {
    case Redirect::inherit:
      return;
    case Redirect::devnull:
      check(::posix_spawn_file_actions_addopen(&setup.actions, target_fd, "/dev/null",
                                               target_fd == 0 ? O_RDONLY : O_WRONLY, 0),
            "create_subprocess: posix_spawn_file_actions_addopen");
      return;
    case Redirect::to_stdout:
      if (target_fd != 2)
        throw std::invalid_argument("create_subprocess: Redirect::to_stdout is for stderr only");
      check(::posix_spawn_file_actions_adddup2(&setup.actions, 1, 2),
            "create_subprocess: posix_spawn_file_actions_adddup2");
      return;
    case Redirect::pipe: {
      auto [read_end, write_end] = make_pipe();
      bool child_reads = target_fd == 0;
      child_end = std::move(child_reads ? read_end : write_end);
      parent_stream =
          Stream(Socket((child_reads ? write_end : read_end).release()), StreamKind::pipe);
      // dup2 clears FD_CLOEXEC on the copy: the child keeps exactly 0, 1 and 2.
      check(::posix_spawn_file_actions_adddup2(&setup.actions, child_end.fd(), target_fd),
            "create_subprocess: posix_spawn_file_actions_adddup2");
      return;
    }
  }
}

void refuse_nul(const std::string& text, const char* what) {
  if (text.find('\0') != std::string::npos)
    throw std::invalid_argument(std::string("create_subprocess: ") + what + " holds a NUL byte");
}

[[noreturn]] void cannot_run(int error, const std::string& program,
                             const SubprocessOptions& options) {
  std::string what = "create_subprocess: cannot run '" + program + "'";
  if (!options.cwd.empty()) what += " in '" + options.cwd + "'";
  throw std::system_error(error, std::system_category(), what);
}

// The file to exec: program itself when it holds a '/', else the first executable file named
// program in a directory of PATH (the child's PATH when env has one, as Python's
// os.get_exec_path(env), else the parent's; glibc's default without either). A relative
// path is taken from cwd, as the child will after its chdir.
std::string resolve_program(const std::string& program, const SubprocessOptions& options) {
  if (!options.cwd.empty() && ::access(options.cwd.c_str(), X_OK) != 0)
    cannot_run(errno, program, options);
  auto from_cwd = [&options](const std::string& path) {
    return path.front() == '/' || options.cwd.empty() ? path : options.cwd + "/" + path;
  };
  auto executable_file = [&](const std::string& path, int& error) {
    struct stat info {};
    std::string where = from_cwd(path);
    if (::stat(where.c_str(), &info) != 0) {
      error = errno;
      return false;
    }
    if (!S_ISREG(info.st_mode) || ::access(where.c_str(), X_OK) != 0) {
      error = EACCES;
      return false;
    }
    return true;
  };
  int error = ENOENT;
  if (program.empty()) cannot_run(ENOENT, program, options);
  if (program.find('/') != std::string::npos) {
    if (!executable_file(program, error)) cannot_run(error, program, options);
    return program;
  }
  std::string search = "/bin:/usr/bin";
  if (const char* parent_path = std::getenv("PATH")) search = parent_path;
  if (options.env) {
    auto child_path = options.env->find("PATH");
    if (child_path != options.env->end()) search = child_path->second;
  }
  bool denied = false;
  for (std::size_t start = 0; start <= search.size();) {
    std::size_t end = std::min(search.find(':', start), search.size());
    std::string directory = search.substr(start, end - start);
    std::string candidate = (directory.empty() ? std::string(".") : directory) + "/" + program;
    if (executable_file(candidate, error)) return candidate;
    denied = denied || error == EACCES;
    start = end + 1;
  }
  cannot_run(denied ? EACCES : ENOENT, program, options);
}

std::unique_ptr<ProcessState> spawn(std::vector<std::string> argv,
                                    const SubprocessOptions& options) {
  for (const std::string& arg : argv) refuse_nul(arg, "an argument");
  refuse_nul(options.cwd, "cwd");
  ignore_sigpipe_once();
  auto state = std::make_unique<ProcessState>();
  state->program = argv.front();

  SpawnSetup setup;
  OwnedFd child_ends[3];
  redirect_fd(setup, 0, options.stdin, child_ends[0], state->stdin_pipe);
  redirect_fd(setup, 1, options.stdout, child_ends[1], state->stdout_pipe);
  redirect_fd(setup, 2, options.stderr, child_ends[2], state->stderr_pipe);
  // Every other descriptor is closed in the child, also one a library opened without
  // O_CLOEXEC (asyncio's close_fds=True).
  check(::posix_spawn_file_actions_addclosefrom_np(&setup.actions, 3),
        "create_subprocess: posix_spawn_file_actions_addclosefrom_np");
  if (!options.cwd.empty())
    check(::posix_spawn_file_actions_addchdir_np(&setup.actions, options.cwd.c_str()),
          "create_subprocess: posix_spawn_file_actions_addchdir_np");
  // The child starts with no signal blocked (the loop may block some for its signalfd) and
  // SIGPIPE and SIGXFSZ at their default (Python's restore_signals).
  sigset_t empty_mask, defaults;
  sigemptyset(&empty_mask);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGXFSZ);
  check(::posix_spawnattr_setsigmask(&setup.attributes, &empty_mask),
        "create_subprocess: posix_spawnattr_setsigmask");
  check(::posix_spawnattr_setsigdefault(&setup.attributes, &defaults),
        "create_subprocess: posix_spawnattr_setsigdefault");
  check(
      ::posix_spawnattr_setflags(&setup.attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF),
      "create_subprocess: posix_spawnattr_setflags");

  std::vector<char*> argv_pointers;
  for (std::string& arg : argv) argv_pointers.push_back(arg.data());
  argv_pointers.push_back(nullptr);
  std::vector<std::string> env_strings;
  std::vector<char*> env_pointers;
  char** envp = environ;
  if (options.env) {
    for (const auto& [name, value] : *options.env) {
      refuse_nul(name, "an environment variable's name");
      refuse_nul(value, "an environment variable's value");
      if (name.empty() || name.find('=') != std::string::npos)
        throw std::invalid_argument("create_subprocess: environment variable name '" + name +
                                    "' is empty or holds '='");
      env_strings.push_back(name + "=" + value);
    }
    for (std::string& entry : env_strings) env_pointers.push_back(entry.data());
    env_pointers.push_back(nullptr);
    envp = env_pointers.data();
  }

  // glibc's posix_spawn (CLONE_VM | CLONE_VFORK) returns the exec's errno when the exec fails
  // (2.24+): a missing program is an error here, not a child that exits 127. The program is
  // found first all the same (resolve_program): under valgrind, which turns the vfork into a
  // fork, posix_spawn cannot see the exec fail.
  pid_t pid = -1;
  std::string path = resolve_program(state->program, options);
  int error = ::posix_spawn(&pid, path.c_str(), &setup.actions, &setup.attributes,
                            argv_pointers.data(), envp);
  if (error != 0) cannot_run(error, state->program, options);
  state->pid = pid;
  // No pid-reuse race: the child cannot be reaped before this, since only its pidfd reaps it.
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    int open_error = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    throw std::system_error(open_error, std::system_category(),
                            "create_subprocess: pidfd_open (Linux 5.3+)");
  }
  state->pidfd = OwnedFd(pidfd);
  // The parent's copies of the child's ends are closed now, not through the ring: a CLOSE SQE
  // would take effect only after the SQEs submitted with it (the kernel defers the file's
  // release to task work), so a write in that batch would still find a reader.
  for (OwnedFd& end : child_ends)
    if (end.valid()) ::close(end.release());
  return state;
}

}  // namespace

void set_child_wait_path(ChildWaitPath path) noexcept { g_forced_path.store(path); }

ChildWaitPath child_wait_path() noexcept {
  ChildWaitPath forced = g_forced_path.load();
  if (forced != ChildWaitPath::automatic) return forced;
  return kernel_has_waitid() ? ChildWaitPath::waitid : ChildWaitPath::pidfd_poll;
}

// Whether the child has been reaped (by an IORING_OP_WAITID, or now, without blocking).
bool ProcessState::collect() {
  if (returncode) return true;
  if (exit_info.si_pid != 0) {
    record(exit_info);
    return true;
  }
  siginfo_t info{};
  if (::waitid(P_PIDFD, static_cast<id_t>(pidfd.fd()), &info, WEXITED | WNOHANG) == 0) {
    if (info.si_pid == 0) return false;  // still running
    record(info);
    return true;
  }
  if (errno != ECHILD) throw std::system_error(errno, std::system_category(), "wait: waitid");
  // An IORING_OP_WAITID reaped it in this thread's task work, which wrote exit_info before.
  if (exit_info.si_pid != 0) {
    record(exit_info);
    return true;
  }
  // Someone else reaped our child (a waitpid(-1) elsewhere in the program): asyncio reports 255.
  returncode = 255;
  return true;
}

ProcessState::~ProcessState() {
  RINGLOOP_ASSERT(waits_in_flight == 0,
                  "a Process was destroyed while a wait() on it was in flight");
  if (!pidfd.valid()) return;
  bool reaped = false;
  try {
    reaped = collect();
  } catch (...) {
  }
  if (reaped) return;
  // Still running: a thread waits for it (asyncio's ThreadedChildWatcher), so that it never
  // stays a zombie, whatever the loop does meanwhile (it may be closed long before).
  int fd = pidfd.release();
  try {
    std::thread([fd] {
      siginfo_t info{};
      while (::waitid(P_PIDFD, static_cast<id_t>(fd), &info, WEXITED) != 0 && errno == EINTR) {
      }
      ::close(fd);
    }).detach();
  } catch (...) {
    std::fprintf(stderr, "ringloop: cannot start a thread to reap child %d; it stays a zombie\n",
                 static_cast<int>(pid));
    ::close(fd);
  }
}

}  // namespace detail

Process::Process(std::unique_ptr<detail::ProcessState> state) noexcept : state_(std::move(state)) {}
Process::Process(Process&&) noexcept = default;
Process& Process::operator=(Process&&) noexcept = default;
Process::~Process() = default;

pid_t Process::pid() const noexcept { return state_ ? state_->pid : -1; }

detail::ProcessState& Process::state() const {
  if (!state_) throw std::logic_error("Process: used after it was moved from");
  return *state_;
}

std::optional<int> Process::returncode() {
  state().collect();
  return state().returncode;
}

namespace {
Stream& piped(Stream& stream, const char* name) {
  if (!stream.has_descriptor())
    throw std::logic_error(std::string("Process::") + name + "(): the child's " + name +
                           " is not a pipe (SubprocessOptions::" + name + " = Redirect::pipe)");
  return stream;
}
}  // namespace

Stream& Process::stdin() { return piped(state().stdin_pipe, "stdin"); }
Stream& Process::stdout() { return piped(state().stdout_pipe, "stdout"); }
Stream& Process::stderr() { return piped(state().stderr_pipe, "stderr"); }

Coro<int> Process::wait() {
  detail::ProcessState& state = this->state();
  struct InFlight {
    unsigned& count;
    explicit InFlight(unsigned& c) noexcept : count(++c) {}
    ~InFlight() { --count; }
  } in_flight(state.waits_in_flight);
  for (;;) {
    if (state.collect()) co_return *state.returncode;
    // One IORING_OP_WAITID at a time; a second waiter polls, and finds the status the first
    // one's waitid left in exit_info.
    if (detail::child_wait_path() == detail::ChildWaitPath::waitid && !state.waitid_in_flight) {
      state.waitid_in_flight = true;
      std::int32_t result = 0;
      try {
        result = co_await io::submit([&state](io_uring_sqe& sqe) {
          io_uring_prep_rw(detail::kOpWaitid, &sqe, state.pidfd.fd(), nullptr,
                           static_cast<unsigned>(P_PIDFD), 0);
          sqe.file_index = WEXITED;  // waitid's options
          sqe.addr2 = reinterpret_cast<std::uint64_t>(&state.exit_info);
        });
      } catch (...) {
        state.waitid_in_flight = false;
        throw;
      }
      state.waitid_in_flight = false;
      if (result < 0 && result != -ECHILD)
        throw std::system_error(-result, std::system_category(), "wait: IORING_OP_WAITID");
    } else {
      // The pidfd is readable once the child has exited (Linux 5.3).
      co_await io::poll(state.pidfd.fd(), POLLIN);
    }
  }
}

namespace {
Coro<std::string> read_to_end(Stream& stream) {
  std::string all;
  if (!stream.has_descriptor()) co_return all;
  for (;;) {
    std::string chunk = co_await stream.read();
    if (chunk.empty()) break;
    all += chunk;
  }
  co_await stream.close();
  co_return all;
}

Coro<> feed(Stream& stream, std::optional<std::string> input) {
  if (!input) co_return;
  try {
    co_await stream.write(*input);
  } catch (const std::system_error& error) {
    // The child exited without reading it all (asyncio ignores BrokenPipeError here).
    if (error.code() != std::errc::broken_pipe && error.code() != std::errc::connection_reset)
      throw;
  }
  co_await stream.close();
}
}  // namespace

Coro<std::pair<std::string, std::string>> Process::communicate(std::optional<std::string> input) {
  detail::ProcessState& state = this->state();
  if (input && !state.stdin_pipe.has_descriptor())
    throw std::logic_error(
        "Process::communicate: input given, but stdin is not a pipe (SubprocessOptions::stdin = "
        "Redirect::pipe)");
  auto [fed, out, err] =
      co_await gather(feed(state.stdin_pipe, std::move(input)), read_to_end(state.stdout_pipe),
                      read_to_end(state.stderr_pipe));
  (void)fed;
  co_await wait();
  co_return std::pair<std::string, std::string>(std::move(out), std::move(err));
}

void Process::send_signal(int signal) {
  detail::ProcessState& state = this->state();
  if (state.collect()) return;
  if (::syscall(SYS_pidfd_send_signal, state.pidfd.fd(), signal, nullptr, 0) != 0 && errno != ESRCH)
    throw std::system_error(
        errno, std::system_category(),
        "send_signal " + std::to_string(signal) + " to child " + std::to_string(state.pid));
}
void Process::terminate() { send_signal(SIGTERM); }
void Process::kill() { send_signal(SIGKILL); }

Coro<Process> create_subprocess_exec(std::string program, std::vector<std::string> args,
                                     SubprocessOptions options) {
  args.insert(args.begin(), std::move(program));
  co_return Process(detail::spawn(std::move(args), options));
}

Coro<Process> create_subprocess_shell(std::string command, SubprocessOptions options) {
  co_return Process(detail::spawn({"/bin/sh", "-c", std::move(command)}, options));
}

}  // namespace ringloop
