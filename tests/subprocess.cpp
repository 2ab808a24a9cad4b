// Subprocesses: create_subprocess_exec/_shell, pipes as Streams, wait (IORING_OP_WAITID and the
// pidfd-poll fallback), communicate, signals, and the bad cases: a program that does not exist,
// a child killed by a signal, a cancelled wait, a Process dropped unwaited (no zombie left), a
// write to a child that has gone (EPIPE, not SIGPIPE), descriptors that must not leak.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <vector>

#include <ringloop/ringloop.hpp>
#include "tests/support.hpp"

using namespace std::chrono_literals;
using ringloop::CancelledError;
using ringloop::Coro;
using ringloop::Process;
using ringloop::Redirect;
using ringloop::SubprocessOptions;
using ringloop::detail::ChildWaitPath;

namespace {

// True once pid is no child of ours any more (reaped): waitid finds nothing to report.
bool reaped(pid_t pid) {
  siginfo_t info{};
  return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == -1 &&
         errno == ECHILD;
}

// No child of this process has exited without being reaped.
bool no_zombie_children() {
  siginfo_t info{};
  int result = ::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT);
  return (result == -1 && errno == ECHILD) || (result == 0 && info.si_pid == 0);
}

SubprocessOptions piped(Redirect in, Redirect out, Redirect err = Redirect::inherit) {
  SubprocessOptions options;
  options.stdin = in;
  options.stdout = out;
  options.stderr = err;
  return options;
}

// Runs the test body under each wait path this kernel has (WAITID needs Linux 6.7).
std::vector<ChildWaitPath> wait_paths() {
  ringloop::detail::set_child_wait_path(ChildWaitPath::automatic);
  std::vector<ChildWaitPath> paths{ChildWaitPath::pidfd_poll};
  if (ringloop::detail::child_wait_path() == ChildWaitPath::waitid)
    paths.push_back(ChildWaitPath::waitid);
  return paths;
}

struct WaitPathScope {
  explicit WaitPathScope(ChildWaitPath path) { ringloop::detail::set_child_wait_path(path); }
  ~WaitPathScope() { ringloop::detail::set_child_wait_path(ChildWaitPath::automatic); }
};

// g++ 12 rejects a braced list inside a co_await expression: the arguments come as one string,
// split on spaces.
Coro<Process> exec(std::string command_line, SubprocessOptions options = SubprocessOptions()) {
  std::vector<std::string> words;
  std::size_t start = 0;
  while (start < command_line.size()) {
    std::size_t end = command_line.find(' ', start);
    if (end == std::string::npos) end = command_line.size();
    words.push_back(command_line.substr(start, end - start));
    start = end + 1;
  }
  std::string program = words.front();
  words.erase(words.begin());
  co_return co_await ringloop::create_subprocess_exec(std::move(program), std::move(words),
                                                      std::move(options));
}

}  // namespace

TEST_CASE("cat echoes a line through the child's stdin and stdout pipes", "[subprocess]") {
  auto [line, code] = ringloop::run([]() -> Coro<std::pair<std::string, int>> {
    Process cat = co_await exec("cat", piped(Redirect::pipe, Redirect::pipe));
    co_await cat.stdin().write("hello\n");
    std::string got = co_await cat.stdout().read_until("\n");
    co_await cat.stdin().close();  // cat reads end of file and exits
    int status = co_await cat.wait();
    co_return std::pair(got, status);
  }());
  CHECK(line == "hello\n");
  CHECK(code == 0);
  CHECK(no_zombie_children());
}

TEST_CASE("communicate moves 1 MiB each way through cat without deadlock", "[subprocess]") {
  std::string input(1 << 20, '\0');
  for (std::size_t i = 0; i < input.size(); ++i) input[i] = static_cast<char>('a' + i % 26);
  auto [out, err, code] =
      ringloop::run([](std::string data) -> Coro<std::tuple<std::string, std::string, int>> {
        // cat writes as it reads: with 1 MiB each way, both pipes fill up unless stdin is written
        // while stdout is read.
        Process cat = co_await exec("cat", piped(Redirect::pipe, Redirect::pipe, Redirect::pipe));
        auto [o, e] = co_await cat.communicate(std::move(data));
        auto status = cat.returncode();
        co_return std::tuple(std::move(o), std::move(e), status.value_or(-1000));
      }(input));
  CHECK(out.size() == input.size());
  CHECK(out == input);
  CHECK(err.empty());
  CHECK(code == 0);
}

TEST_CASE("wait returns the child's exit code, under each wait path", "[subprocess]") {
  for (ChildWaitPath path : wait_paths()) {
    WaitPathScope scope(path);
    INFO("path " << static_cast<int>(path));
    auto codes = ringloop::run([]() -> Coro<std::vector<int>> {
      std::vector<int> results;
      for (const char* command : {"exit 0", "exit 3", "exit 255", "sleep 0.05; exit 7"}) {
        Process child = co_await ringloop::create_subprocess_shell(command);
        int code = co_await child.wait();
        results.push_back(code);
        auto again = child.returncode();  // known from now on, and wait() returns it again
        results.push_back(again.value_or(-1000));
        int second = co_await child.wait();
        results.push_back(second);
      }
      co_return results;
    }());
    CHECK(codes == std::vector<int>{0, 0, 0, 3, 3, 3, 255, 255, 255, 7, 7, 7});
    CHECK(no_zombie_children());
  }
}

TEST_CASE("a child killed by a signal has minus the signal number as returncode", "[subprocess]") {
  for (ChildWaitPath path : wait_paths()) {
    WaitPathScope scope(path);
    INFO("path " << static_cast<int>(path));
    auto codes = ringloop::run([]() -> Coro<std::vector<int>> {
      std::vector<int> results;
      Process a = co_await exec("sleep 10");
      std::optional<int> running = a.returncode();
      results.push_back(running.value_or(-1000));
      a.kill();
      results.push_back(co_await a.wait());
      a.kill();  // reaped already: nothing happens (subprocess.Popen's rule)
      Process b = co_await exec("sleep 10");
      b.terminate();
      results.push_back(co_await b.wait());
      Process c = co_await exec("sleep 10");
      c.send_signal(SIGINT);
      results.push_back(co_await c.wait());
      // The child's own signal mask and SIGPIPE are the defaults, whatever the parent's.
      Process d = co_await ringloop::create_subprocess_shell("kill -PIPE $$; sleep 1");
      results.push_back(co_await d.wait());
      co_return results;
    }());
    CHECK(codes == std::vector<int>{-1000, -SIGKILL, -SIGTERM, -SIGINT, -SIGPIPE});
  }
}

TEST_CASE("a program that does not exist is an ENOENT error naming it, not exit status 127",
          "[subprocess]") {
  ringloop::run([]() -> Coro<> {
    bool threw = false;
    try {
      Process p = co_await exec("ringloop-no-such-program x");
    } catch (const std::system_error& error) {
      threw = true;
      CHECK(error.code() == std::errc::no_such_file_or_directory);
      CHECK(std::string(error.what()).find("'ringloop-no-such-program'") != std::string::npos);
    }
    CHECK(threw);
    threw = false;
    try {
      Process p = co_await ringloop::create_subprocess_exec("/nonexistent/dir/program");
    } catch (const std::system_error& error) {
      threw = true;
      CHECK(error.code() == std::errc::no_such_file_or_directory);
    }
    CHECK(threw);
    threw = false;
    try {
      SubprocessOptions options;
      options.cwd = "/nonexistent-ringloop-dir";
      Process p = co_await exec("true", options);
    } catch (const std::system_error& error) {
      threw = true;
      CHECK(std::string(error.what()).find("/nonexistent-ringloop-dir") != std::string::npos);
    }
    CHECK(threw);
    // A file that is not executable: EACCES. A PATH in env is the one searched (Python's rule).
    std::string plain_file = "/tmp/ringloop-not-executable-" + std::to_string(::getpid());
    ::close(::open(plain_file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
    int denied = 0;
    try {
      Process p = co_await ringloop::create_subprocess_exec(plain_file);
    } catch (const std::system_error& error) {
      denied = error.code().value();
    }
    ::unlink(plain_file.c_str());
    CHECK(denied == EACCES);
    int not_on_path = 0;
    try {
      SubprocessOptions options;
      options.env = std::map<std::string, std::string>();
      (*options.env)["PATH"] = "/nonexistent-ringloop-dir";
      Process p = co_await exec("true", options);
    } catch (const std::system_error& error) {
      not_on_path = error.code().value();
    }
    CHECK(not_on_path == ENOENT);
    // Through the shell, the shell reports it: asyncio's 127.
    SubprocessOptions quiet;
    quiet.stderr = Redirect::devnull;
    Process shell = co_await ringloop::create_subprocess_shell("ringloop-no-such-program", quiet);
    int code = co_await shell.wait();
    CHECK(code == 127);
  }());
  CHECK(no_zombie_children());
}

TEST_CASE("cwd and env are the child's", "[subprocess]") {
  auto [pwd, env] = ringloop::run([]() -> Coro<std::pair<std::string, std::string>> {
    SubprocessOptions in_tmp = piped(Redirect::devnull, Redirect::pipe);
    in_tmp.cwd = "/";
    Process p = co_await exec("pwd", in_tmp);
    auto [where, ignored] = co_await p.communicate();
    SubprocessOptions with_env = piped(Redirect::devnull, Redirect::pipe);
    with_env.env =
        std::map<std::string, std::string>{{"RINGLOOP_A", "1"}, {"RINGLOOP_B", "two words"}};
    Process e = co_await exec("env", with_env);
    auto [listing, ignored2] = co_await e.communicate();
    co_return std::pair(where, listing);
  }());
  CHECK(pwd == "/\n");
  CHECK(env == "RINGLOOP_A=1\nRINGLOOP_B=two words\n");  // that environment and nothing else
}

TEST_CASE("stderr can go to stdout's pipe, to /dev/null or to its own pipe", "[subprocess]") {
  auto outputs = ringloop::run([]() -> Coro<std::vector<std::string>> {
    std::vector<std::string> results;
    const char* script = "echo out; echo err >&2";
    Process merged = co_await ringloop::create_subprocess_shell(
        script, piped(Redirect::devnull, Redirect::pipe, Redirect::to_stdout));
    auto [both, none] = co_await merged.communicate();
    results.push_back(both);
    results.push_back(none);
    Process dropped = co_await ringloop::create_subprocess_shell(
        script, piped(Redirect::devnull, Redirect::pipe, Redirect::devnull));
    auto [out_only, none2] = co_await dropped.communicate();
    results.push_back(out_only);
    Process split = co_await ringloop::create_subprocess_shell(
        script, piped(Redirect::devnull, Redirect::pipe, Redirect::pipe));
    auto [out, err] = co_await split.communicate();
    results.push_back(out);
    results.push_back(err);
    // A stdin from /dev/null reads end of file at once.
    Process cat = co_await exec("cat", piped(Redirect::devnull, Redirect::pipe));
    auto [nothing, none3] = co_await cat.communicate();
    results.push_back(nothing + "|" + std::to_string(cat.returncode().value_or(-1)));
    co_return results;
  }());
  CHECK(outputs == std::vector<std::string>{"out\nerr\n", "", "out\n", "out\n", "err\n", "|0"});
}

TEST_CASE(
    "a stream that is not a pipe, input to a stdin that is not, or a moved-from Process is a "
    "logic_error",
    "[subprocess]") {
  ringloop::run([]() -> Coro<> {
    Process p = co_await ringloop::create_subprocess_exec("true");
    CHECK_THROWS_AS(p.stdin(), std::logic_error);
    CHECK_THROWS_WITH(p.stdout(), Catch::Contains("Redirect::pipe"));
    bool threw = false;
    try {
      co_await p.communicate("input");
    } catch (const std::logic_error&) {
      threw = true;
    }
    CHECK(threw);
    Process moved = std::move(p);
    CHECK(p.pid() == -1);  // NOLINT(bugprone-use-after-move): the moved-from state is the test
    CHECK_THROWS_AS(p.returncode(), std::logic_error);
    co_await moved.wait();
    threw = false;
    try {
      std::vector<std::string> args{std::string("a\0b", 3)};
      Process nul = co_await ringloop::create_subprocess_exec("true", args);
    } catch (const std::invalid_argument&) {
      threw = true;
    }
    CHECK(threw);
  }());
}

TEST_CASE("a cancelled wait leaves the child running, and it is reaped all the same",
          "[subprocess]") {
  for (ChildWaitPath path : wait_paths()) {
    WaitPathScope scope(path);
    INFO("path " << static_cast<int>(path));
    pid_t dropped_pid = ringloop::run([]() -> Coro<pid_t> {
      // Awaited again after the cancel: the same child, still there.
      Process a = co_await exec("sleep 10");
      auto waiter = ringloop::create_task(a.wait());
      co_await ringloop::sleep(20ms);
      waiter.cancel();
      bool cancelled = false;
      try {
        co_await waiter;
      } catch (const CancelledError&) {
        cancelled = true;
      }
      CHECK(cancelled);
      CHECK(!a.returncode());
      CHECK(!reaped(a.pid()));
      a.kill();
      int code = co_await a.wait();
      CHECK(code == -SIGKILL);
      CHECK(reaped(a.pid()));
      // Dropped after the cancel, the child still running: reaped when it exits.
      Process b = co_await exec("sleep 0.2");
      pid_t pid = b.pid();
      {
        Process gone = std::move(b);
        auto task = ringloop::create_task(gone.wait());
        co_await ringloop::sleep(10ms);
        task.cancel();
        try {
          co_await task;
        } catch (const CancelledError&) {
        }
      }
      co_return pid;
    }());
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!reaped(dropped_pid) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(5ms);
    CHECK(reaped(dropped_pid));
  }
}

TEST_CASE("a Process destroyed without wait leaves no zombie", "[subprocess]") {
  auto pids = ringloop::run([]() -> Coro<std::vector<pid_t>> {
    std::vector<pid_t> result;
    {
      Process exited = co_await ringloop::create_subprocess_exec("true");
      result.push_back(exited.pid());
      co_await ringloop::sleep(100ms);  // it is a zombie by now, and the destructor reaps it
    }
    CHECK(reaped(result.back()));
    {
      Process running = co_await exec("sleep 0.1");
      result.push_back(running.pid());
    }
    co_return result;
  }());
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!reaped(pids.back()) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  CHECK(reaped(pids.back()));
  CHECK(no_zombie_children());
}

TEST_CASE("writing to a child that has exited is EPIPE, not a SIGPIPE that kills us",
          "[subprocess]") {
  int error = ringloop::run([]() -> Coro<int> {
    Process child = co_await exec("true", piped(Redirect::pipe, Redirect::inherit));
    co_await child.wait();
    int code = 0;
    try {
      co_await child.stdin().write("nobody reads this\n");
    } catch (const std::system_error& e) {
      code = e.code().value();
    }
    co_return code;
  }());
  CHECK(error == EPIPE);
}

TEST_CASE("100 children run and are waited concurrently, each with its own exit code",
          "[subprocess]") {
  constexpr int kChildren = 100;
  auto codes = ringloop::run([]() -> Coro<std::vector<int>> {
    std::vector<Coro<int>> runs;
    for (int i = 0; i < kChildren; ++i)
      runs.push_back([](int n) -> Coro<int> {
        Process child = co_await ringloop::create_subprocess_shell(
            "read line; exit $line", piped(Redirect::pipe, Redirect::inherit));
        co_await child.stdin().write(std::to_string(n) + "\n");
        co_await child.stdin().close();
        co_return co_await child.wait();
      }(i));
    co_return co_await ringloop::gather(std::move(runs));
  }());
  std::vector<int> expected;
  for (int i = 0; i < kChildren; ++i) expected.push_back(i);
  CHECK(codes == expected);
  CHECK(no_zombie_children());
}

TEST_CASE("no descriptor leaks into the parent after children, nor into a child", "[subprocess]") {
  // A descriptor opened without O_CLOEXEC, as a careless library would: the child must not get it.
  int careless = ::open("/dev/null", O_RDONLY);
  REQUIRE(careless >= 0);
  int before = test_support::open_fd_count();
  std::string listing = ringloop::run([]() -> Coro<std::string> {
    for (int i = 0; i < 20; ++i) {
      Process cat = co_await exec("cat", piped(Redirect::pipe, Redirect::pipe, Redirect::pipe));
      auto [out, err] = co_await cat.communicate("x");
      CHECK(out == "x");
    }
    Process ls = co_await exec("ls /proc/self/fd",
                               piped(Redirect::devnull, Redirect::pipe, Redirect::devnull));
    auto [out, err] = co_await ls.communicate();
    co_return out;
  }());
  CHECK(test_support::open_fd_count() == before);
  ::close(careless);
  // 0, 1, 2 and the descriptor ls opened to list the directory.
  CHECK(listing == "0\n1\n2\n3\n");
}
