// examples/echo_server as a user runs it: started with --unix, talked to by a Python asyncio
// client (asyncio.open_unix_connection and asyncio.open_connection), stopped by SIGTERM, after
// which its socket file is gone. Needs python3 and the examples built (tag [python]: the kernel
// guest has neither).
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include <thread>
#include "tests/support.hpp"

namespace {

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, read back, released).
int free_tcp_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  int port = 0;
  if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0)
    port = ntohs(address.sin_port);
  if (fd >= 0) ::close(fd);
  return port;
}

const char* kClient = R"(
import asyncio, sys
async def main(path, port):
    reader, writer = await asyncio.open_unix_connection(path)
    for line in (b'hello over unix\n', b'x' * 100000 + b'\n'):
        writer.write(line)
        await writer.drain()
        echoed = await reader.readexactly(len(line))
        assert echoed == line, echoed[:40]
    writer.close()
    await writer.wait_closed()
    reader, writer = await asyncio.open_connection('127.0.0.1', port)
    writer.write(b'and over tcp\n')
    assert await reader.readline() == b'and over tcp\n'
    writer.close()
    print('ok')
asyncio.run(main(sys.argv[1], int(sys.argv[2])))
)";

}  // namespace

TEST_CASE("an asyncio client echoes through examples/echo_server --unix",
          "[echo_example][python]") {
  std::string server = test_support::example_path("echo_server");
  REQUIRE(::access(server.c_str(), X_OK) == 0);
  std::string path = "/tmp/ringloop-echo-" + std::to_string(::getpid()) + ".sock";
  // A port the kernel just had free (a fixed one could be any connection's ephemeral port: seen
  // "Address already in use"); should another take it meanwhile, the server exits and the next
  // attempt takes another.
  std::string port;
  pid_t child = -1;
  struct stat status {};
  bool exited = false;
  for (int attempt = 0; attempt < 5 && !S_ISSOCK(status.st_mode); ++attempt) {
    port = std::to_string(free_tcp_port());
    std::fflush(nullptr);
    child = ::fork();
    if (child == 0) {
      ::execl(server.c_str(), server.c_str(), port.c_str(), "10", "127.0.0.1", "--unix",
              path.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    // Up to 30 s: this machine's cores are shared, and a loaded one starts programs slowly.
    int early_status = 0;
    exited = false;
    for (int i = 0; i < 3000 && ::stat(path.c_str(), &status) != 0 && !exited; ++i) {
      exited = ::waitpid(child, &early_status, WNOHANG) == child;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  INFO("echo_server " << (exited ? "exited early" : "still running"));
  REQUIRE(S_ISSOCK(status.st_mode));
  std::string script = "/tmp/ringloop-echo-client-" + std::to_string(::getpid()) + ".py";
  FILE* file = std::fopen(script.c_str(), "w");
  std::fputs(kClient, file);
  std::fclose(file);
  std::string out = test_support::output_of("python3 " + script + " " + path + " " + port);
  ::unlink(script.c_str());
  CHECK(out == "ok\n");
  ::kill(child, SIGTERM);
  int wait_status = 0;
  ::waitpid(child, &wait_status, 0);
  CHECK(WIFEXITED(wait_status));
  CHECK(WEXITSTATUS(wait_status) == 0);
  CHECK(::stat(path.c_str(), &status) != 0);  // the server removed its socket file
}
