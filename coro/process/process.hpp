// Subprocesses, as asyncio's: create_subprocess_exec and create_subprocess_shell start a child
// (posix_spawn, then a pidfd for it) and give a Process, whose stdin/stdout/stderr are Streams
// over pipes and whose wait() is awaited through the ring (IORING_OP_WAITID on the pidfd where
// the kernel has it, 6.7+, else a poll on the pidfd and waitid(WNOHANG)). Invariant: no child is
// left a zombie; a Process destroyed before its child was reaped hands the pidfd to a thread
// that reaps it (asyncio's ThreadedChildWatcher), and nothing else ever reaps our children.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ringloop/coro/net/stream.hpp>
#include <ringloop/coro/task/coro.hpp>

namespace ringloop {

// Where a child's stdin, stdout or stderr goes (asyncio: None, PIPE, DEVNULL, STDOUT).
enum class Redirect : std::uint8_t {
  inherit,    // the parent's own descriptor
  pipe,       // a pipe to the parent: Process::stdin()/stdout()/stderr() is its Stream
  devnull,    // /dev/null
  to_stdout,  // stderr only: wherever stdout goes (asyncio's subprocess.STDOUT)
};

struct SubprocessOptions {
  Redirect stdin = Redirect::inherit;
  Redirect stdout = Redirect::inherit;
  Redirect stderr = Redirect::inherit;
  // The child's working directory; empty: the parent's. A relative program is found from it.
  std::string cwd;
  // The child's whole environment; nullopt: the parent's. A program without '/' is searched
  // for on the PATH of env when it has one (Python's rule), else on the parent's.
  std::optional<std::map<std::string, std::string>> env;
};

namespace detail {
struct ProcessState;

// How wait() waits, for tests of both paths: automatic (probe for IORING_OP_WAITID once per
// process; the environment variable RINGLOOP_CHILD_WAIT=poll forces the poll path), or forced.
enum class ChildWaitPath : std::uint8_t { automatic, waitid, pidfd_poll };
void set_child_wait_path(ChildWaitPath path) noexcept;
// The path wait() takes now (automatic resolved by the probe).
ChildWaitPath child_wait_path() noexcept;
}  // namespace detail

// A running (or finished) child. Movable; its coroutines (wait, communicate, the streams' reads
// and writes) use state that moves with it, and the Process must outlive them. Destroying it
// does not kill the child (asyncio's rule): a child still running is reaped in the background
// when it exits. Not thread-safe: one loop's coroutines use it.
class Process {
 public:
  explicit Process(std::unique_ptr<detail::ProcessState> state) noexcept;
  Process(Process&&) noexcept;
  Process& operator=(Process&&) noexcept;
  ~Process();

  // -1 for a Process moved from; its other members throw std::logic_error.
  pid_t pid() const noexcept;
  // The exit status once the child has exited and been reaped (checked now, without
  // blocking): its exit code, or minus the signal number that killed it (-9 for SIGKILL).
  // nullopt while it runs.
  std::optional<int> returncode();

  // The parent's ends of the pipes; std::logic_error when that descriptor is not
  // Redirect::pipe (asyncio's attribute is None then).
  Stream& stdin();
  Stream& stdout();
  Stream& stderr();

  // Waits for the child to exit and reaps it; returns returncode. Cancelling it leaves the
  // child running and reapable (by a later wait, or in the background).
  Coro<int> wait();
  // Writes input to stdin and closes it (nullopt: stdin is left as it is, as asyncio's
  // input=None), reads stdout and stderr to their end concurrently (those that are pipes;
  // the others read as empty), then waits. Returns {stdout's bytes, stderr's bytes}. A child
  // that exits without reading all its input is not an error (asyncio ignores
  // BrokenPipeError there).
  Coro<std::pair<std::string, std::string>> communicate(
      std::optional<std::string> input = std::nullopt);

  // Sends signal to the child through its pidfd (no pid-reuse race); nothing once the child
  // has been reaped (subprocess.Popen's rule).
  void send_signal(int signal);
  void terminate();  // SIGTERM
  void kill();       // SIGKILL

 private:
  detail::ProcessState& state() const;

  std::unique_ptr<detail::ProcessState> state_;
};

// Starts program with args (argv[0] is program; a program without '/' is searched for on
// PATH). A program that cannot be started is a std::system_error with the exec's errno
// (ENOENT for one that does not exist: Python's FileNotFoundError) naming the program, thrown
// here, never a child that exits 127. The first subprocess ignores SIGPIPE in this process
// (where it was SIG_DFL), as Python does at start-up: writing to a pipe whose reader has gone
// is then an EPIPE error, not a signal that kills the parent; children get SIGPIPE back.
Coro<Process> create_subprocess_exec(std::string program,
                                     std::vector<std::string> args = std::vector<std::string>(),
                                     SubprocessOptions options = SubprocessOptions());
// Runs command with /bin/sh -c. A command that does not exist is the shell's exit status 127,
// as in asyncio.
Coro<Process> create_subprocess_shell(std::string command,
                                      SubprocessOptions options = SubprocessOptions());

}  // namespace ringloop
