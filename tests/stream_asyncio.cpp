// A Stream against a program nobody here wrote: CPython's asyncio client (open_connection,
// write, drain, write_eof, read) talks to a ringloop server that reads with readline (the last
// line partial, at the end of the stream) and answers with buffered writes and drain; the
// client's output comes back through a pipe Stream. Skipped, with a warning, without python3
// (the Linux 6.1 guest has none).
#include <catch2/catch.hpp>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <string>

#include <ringloop/ringloop.hpp>

using ringloop::Coro;
using ringloop::Socket;
using ringloop::Stream;

extern char** environ;

namespace {

constexpr const char* kPython = "/usr/bin/python3";
constexpr std::size_t kBulkBytes = 1 << 20;

constexpr const char* kClient = R"(
import asyncio, sys
async def main(port):
    reader, writer = await asyncio.open_connection('127.0.0.1', port)
    writer.write(b'hello\nworld\npartial')
    await writer.drain()
    writer.write_eof()
    data = await reader.read()
    lines, bulk = data[:data.index(b'|')], data[data.index(b'|') + 1:]
    sys.stdout.write(lines.decode() + '|' + str(len(bulk)) + '|' + str(set(bulk) == {ord('x')}))
    writer.close()
    await writer.wait_closed()
asyncio.run(main(int(sys.argv[1])))
)";

// Upper-cases each line (the last one has no "\n"), then sends a megabyte in 4 KiB writes with
// drain, then closes.
Coro<> shout(Stream stream) {
  for (;;) {
    std::string line = co_await stream.readline();
    if (line.empty()) break;
    std::transform(line.begin(), line.end(), line.begin(),
                   [](char c) { return static_cast<char>(std::toupper(c)); });
    stream.write(line);
    co_await stream.drain();
  }
  stream.write("|");
  std::string block(4096, 'x');
  for (std::size_t sent = 0; sent < kBulkBytes; sent += block.size()) {
    stream.write(block);
    co_await stream.drain();
  }
  co_await stream.close();
}

}  // namespace

TEST_CASE("an asyncio client and a ringloop Stream server: readline, write, drain, write_eof",
          "[stream]") {
  if (::access(kPython, X_OK) != 0) {
    WARN("no " << kPython << ": the asyncio peer test is skipped");
    return;
  }
  std::string output = ringloop::run([]() -> Coro<std::string> {
    Socket listener = ringloop::listen_tcp("127.0.0.1", 0);
    std::string port = std::to_string(ringloop::local_port(listener));
    auto server = ringloop::create_task(ringloop::serve(listener, &shout));
    int out[2];
    REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    const char* argv[] = {kPython, "-c", kClient, port.c_str(), nullptr};
    pid_t pid = 0;
    int spawned = posix_spawn(&pid, kPython, &actions, nullptr, const_cast<char**>(argv), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    REQUIRE(spawned == 0);
    Stream from_child(Socket{out[0]}, ringloop::StreamKind::pipe);
    std::string printed = co_await ringloop::wait_for(from_child.read(), std::chrono::seconds(20));
    int status = 0;
    ::waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    server.cancel();
    CHECK_THROWS_AS(co_await server, ringloop::CancelledError);
    co_return printed;
  }());
  CHECK(output == "HELLO\nWORLD\nPARTIAL|" + std::to_string(kBulkBytes) + "|True");
}
