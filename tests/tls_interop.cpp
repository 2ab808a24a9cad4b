// TLS against peers nobody here wrote: `openssl s_client` and Python's asyncio with ssl= as
// clients of a ringloop TLS echo server; ringloop's client against `openssl s_server` and a
// Python ssl server. Each verifies the other against the test CA (tests/tls_certs.hpp). Where
// the peer program is missing (the 6.1 guest has neither), the case says so and passes.
#include <catch2/catch.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <ringloop/ringloop.hpp>
#include "tests/support.hpp"
#include "tests/tls_certs.hpp"

extern char** environ;

using namespace std::chrono_literals;
using ringloop::Coro;
using ringloop::Socket;
using ringloop::Stream;
using ringloop::TlsContext;
using ringloop::TlsStream;

namespace {

bool have_program(const char* name) {
  std::string command = std::string("command -v ") + name + " >/dev/null 2>&1";
  return std::system(command.c_str()) == 0;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

// Echoes one line over TLS, then closes with close_notify.
Coro<> echo_one_line(Stream stream, TlsContext context) {
  TlsStream tls = co_await ringloop::tls_accept(std::move(stream), context);
  std::string line = co_await tls.read_until("\n");
  co_await tls.write(line);
  co_await tls.close();
}

// Runs a shell command on a worker thread while the loop serves; its exit status.
Coro<int> run_command(std::string command) {
  // A named local: g++ 12 frees a lambda's captures twice when the lambda is a temporary inside
  // the co_await expression (PITFALLS.md).
  auto call = [command] { return std::system(command.c_str()); };
  int status = co_await ringloop::to_thread(call);
  co_return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Serves one connection with echo_one_line while command runs; the command's exit status.
int serve_while(const std::string& command_template, std::string* output) {
  const auto& certs = test_tls::certificates();
  return ringloop::run([&]() -> Coro<int> {
    Socket listener = ringloop::listen_tcp("127.0.0.1", 0);
    TlsContext context = TlsContext::server();
    context.load_cert_chain_pem(certs.server.cert_pem, certs.server.key_pem);
    auto server = ringloop::create_task(ringloop::serve(
        listener, [context](Stream s) { return echo_one_line(std::move(s), context); }));
    std::string command = command_template;
    std::string port = std::to_string(ringloop::local_port(listener));
    command.replace(command.find("PORT"), 4, port);
    int status = co_await run_command(command);
    *output = read_file(certs.dir + "/peer.out");
    server.cancel();
    try {
      co_await server;
    } catch (const ringloop::CancelledError&) {
    }
    co_return status;
  }());
}

// A peer server started in the background; its port is the number after `marker` in what it
// prints.
struct PeerServer {
  pid_t pid = -1;
  std::uint16_t port = 0;
  explicit PeerServer(const std::string& command, const std::string& marker = "PORT ") {
    const auto& certs = test_tls::certificates();
    std::string out = certs.dir + "/server.out";
    std::remove(out.c_str());
    std::string shell = "exec >" + out + " 2>&1; " + command;
    const char* argv[] = {"sh", "-c", shell.c_str(), nullptr};
    posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ);
    for (int i = 0; i < 200 && port == 0; ++i) {  // up to 10 s
      ::usleep(50'000);
      std::string text = read_file(out);
      std::size_t at = text.find(marker);
      if (at != std::string::npos && text.find('\n', at) != std::string::npos)
        port = static_cast<std::uint16_t>(std::stoi(text.substr(at + marker.size())));
    }
  }
  ~PeerServer() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

// A free port for a peer that cannot report the one it bound (s_server): bound and let go.
std::uint16_t free_port() {
  Socket probe = ringloop::listen_tcp("127.0.0.1", 0);
  return ringloop::local_port(probe);
}

Coro<std::string> ask_over_tls(std::uint16_t port, std::string line) {
  TlsContext context = TlsContext::client();
  context.load_verify_pem(test_tls::certificates().ca.cert_pem);
  Stream stream;
  // The peer may still be starting: s_server prints nothing when it listens, and on a loaded
  // machine (four builds beside it) it was once still refusing after 5 s; 20 s here.
  for (int attempt = 0;; ++attempt) {
    try {
      stream = co_await ringloop::open_connection("127.0.0.1", port);
      break;
    } catch (const std::system_error&) {
      if (attempt == 400) throw;
    }
    co_await ringloop::sleep(50ms);
  }
  TlsStream tls = co_await ringloop::tls_connect(std::move(stream), context, "localhost");
  co_await tls.write(line);
  std::string answer = co_await tls.read_until("\n");
  co_await tls.close();
  co_return answer;
}

}  // namespace

TEST_CASE("openssl s_client verifies ringloop's TLS server and gets its line echoed",
          "[tls][interop]") {
  if (!have_program("openssl")) {
    WARN("no openssl command here: skipped");
    return;
  }
  const auto& certs = test_tls::certificates();
  std::string output;
  int status = serve_while(
      "printf 'hello from s_client\\n' | openssl s_client -connect "
      "127.0.0.1:PORT -servername localhost -CAfile " +
          certs.dir + "/ca.pem -verify_return_error -quiet -ign_eof >" + certs.dir +
          "/peer.out 2>&1",
      &output);
  CHECK(status == 0);
  CHECK_THAT(output, Catch::Contains("hello from s_client"));
}

namespace {

// The asyncio client: connects with ssl= verifying against the test CA, echoes a line, reads
// the server's close_notify, prints "echoed <line> <version>".
void write_python_client() {
  const auto& certs = test_tls::certificates();
  write_file(certs.dir + "/client.py", R"(
import asyncio, ssl, sys
async def main(port, ca):
    context = ssl.create_default_context(cafile=ca)
    reader, writer = await asyncio.open_connection('localhost', port, ssl=context)
    writer.write(b'hello from asyncio\n')
    await writer.drain()
    line = await reader.readline()
    assert line == b'hello from asyncio\n', line
    assert await reader.read() == b''
    version = writer.get_extra_info('ssl_object').version()
    writer.close()
    await writer.wait_closed()
    print('echoed', line.decode().strip(), version)
asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
)");
}

}  // namespace

TEST_CASE("a Python asyncio client with ssl= verifies ringloop's TLS server and echoes",
          "[tls][interop]") {
  if (!have_program("python3")) {
    WARN("no python3 here: skipped");
    return;
  }
  const auto& certs = test_tls::certificates();
  write_python_client();
  std::string output;
  int status = serve_while("python3 " + certs.dir + "/client.py PORT " + certs.dir + "/ca.pem >" +
                               certs.dir + "/peer.out 2>&1",
                           &output);
  CHECK(status == 0);
  CHECK_THAT(output, Catch::Contains("echoed hello from asyncio TLSv1.3"));
}

TEST_CASE("ringloop's TLS client verifies openssl s_server and exchanges a line",
          "[tls][interop]") {
  if (!have_program("openssl")) {
    WARN("no openssl command here: skipped");
    return;
  }
  const auto& certs = test_tls::certificates();
  std::uint16_t port = free_port();
  // -rev: s_server answers each line reversed.
  PeerServer peer("echo PORT " + std::to_string(port) + "; exec openssl s_server -accept " +
                  std::to_string(port) + " -cert " + certs.dir + "/server.pem -key " + certs.dir +
                  "/server.key -naccept 1 -rev");
  REQUIRE(peer.port == port);
  std::string answer = ringloop::run(ask_over_tls(port, "hello s_server\n"));
  CHECK(answer == "revres_s olleh\n");
}

TEST_CASE("ringloop's TLS client verifies a Python ssl server and exchanges a line",
          "[tls][interop]") {
  if (!have_program("python3")) {
    WARN("no python3 here: skipped");
    return;
  }
  const auto& certs = test_tls::certificates();
  write_file(certs.dir + "/server.py", R"(
import asyncio, ssl, sys
async def main(cert, key):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    done = asyncio.Event()
    async def handle(reader, writer):
        line = await reader.readline()
        writer.write(b'python says ' + line)
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        done.set()
    server = await asyncio.start_server(handle, '127.0.0.1', 0, ssl=context)
    print('PORT', server.sockets[0].getsockname()[1], flush=True)
    await done.wait()
asyncio.run(main(sys.argv[1], sys.argv[2]))
)");
  PeerServer peer("exec python3 " + certs.dir + "/server.py " + certs.dir + "/server.pem " +
                  certs.dir + "/server.key");
  REQUIRE(peer.port != 0);
  std::string answer = ringloop::run(ask_over_tls(peer.port, "hello python\n"));
  CHECK(answer == "python says hello python\n");
}

namespace {

// An example TLS echo server (built next to the tests: build/<config>/examples/NAME), started
// with arguments made from the certificate directory, serves a Python asyncio client that
// verifies it, and openssl s_client.
void check_tls_echo_example(const std::string& name, const std::string& arguments_with_dir) {
  std::string example = test_support::example_path(name);
  if (!have_program("python3") || !have_program("openssl") ||
      ::access(example.c_str(), X_OK) != 0) {
    WARN("python3, openssl or " << example << " missing: skipped");
    return;
  }
  const auto& certs = test_tls::certificates();
  write_python_client();
  std::string arguments = arguments_with_dir;
  for (std::size_t at = arguments.find("DIR"); at != std::string::npos; at = arguments.find("DIR"))
    arguments.replace(at, 3, certs.dir);
  PeerServer server("exec " + example + " " + arguments, " port ");
  REQUIRE(server.port != 0);
  std::string port = std::to_string(server.port);
  std::string out = certs.dir + "/example-client.out";
  // The echo server ends a connection at the client's close_notify: the client closes first.
  write_file(certs.dir + "/client_closes.py", R"(
import asyncio, ssl, sys
async def main(port, ca):
    context = ssl.create_default_context(cafile=ca)
    reader, writer = await asyncio.open_connection('localhost', port, ssl=context)
    for i in range(100):
        line = b'line %d from asyncio\n' % i
        writer.write(line)
        await writer.drain()
        assert await reader.readline() == line
    writer.close()
    await writer.wait_closed()
    print('echoed 100 lines')
asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
)");
  int status = std::system(("python3 " + certs.dir + "/client_closes.py " + port + " " + certs.dir +
                            "/ca.pem >" + out + " 2>&1")
                               .c_str());
  CHECK(status == 0);
  CHECK_THAT(read_file(out), Catch::Contains("echoed 100 lines"));
  // -no_ign_eof after -quiet: at the end of its input (a second after the line) s_client sends
  // close_notify and exits.
  status = std::system(("(printf 'hello from s_client\\n'; sleep 1) | timeout 10 openssl s_client "
                        "-connect 127.0.0.1:" +
                        port + " -servername localhost -CAfile " + certs.dir +
                        "/ca.pem -verify_return_error -quiet -no_ign_eof >" + out + " 2>&1")
                           .c_str());
  CHECK(status == 0);
  CHECK_THAT(read_file(out), Catch::Contains("hello from s_client"));
}

}  // namespace

TEST_CASE(
    "examples/tls_echo_server serves a Python asyncio client that verifies it, and "
    "openssl s_client",
    "[tls][interop]") {
  check_tls_echo_example("tls_echo_server", "DIR/server.pem DIR/server.key 0");
}

TEST_CASE(
    "examples/echo_server --tls serves a Python asyncio client that verifies it, and "
    "openssl s_client",
    "[tls][interop]") {
  check_tls_echo_example("echo_server", "0 10 127.0.0.1 --tls DIR/server.pem DIR/server.key");
}
