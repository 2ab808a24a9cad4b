// examples/http_server as a client nobody here wrote sees it: Python's http.client (keep-alive,
// HEAD) and raw sockets (pipelining, Connection: close, HTTP/1.0, bad and oversized requests)
// against the built example with two loops, then SIGTERM and a clean exit; SIGINT on pinned loops
// with connections open on each; a port in use refused. Needs python3 and the examples built (tag
// [host]: the kernel guest has neither).
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "tests/support.hpp"

namespace {

// Prints "ok" when every check holds, else the failed assertion.
const char* kClient = R"(
import email.utils, http.client, socket, sys
port = int(sys.argv[1])

def raw(data, timeout=10):
    """Sends data on a new connection and reads until the server closes it."""
    with socket.create_connection(('127.0.0.1', port), timeout=timeout) as s:
        s.sendall(data)
        out = b''
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk

# http.client: keep-alive (the same socket for three requests), the plaintext response, HEAD.
c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
sock = None
for i in range(3):
    c.request('GET', '/plaintext')
    r = c.getresponse()
    assert r.status == 200, r.status
    assert r.read() == b'Hello, World!'
    assert r.getheader('Content-Type') == 'text/plain'
    assert r.getheader('Content-Length') == '13'
    assert r.getheader('Server') == 'ringloop'
    assert email.utils.parsedate_to_datetime(r.getheader('Date')).tzname() == 'UTC'
    assert not r.will_close
    sock = sock or c.sock
    assert c.sock is sock, 'the connection was not kept alive'
c.request('HEAD', '/')
r = c.getresponse()
assert r.status == 200 and r.getheader('Content-Length') == '13' and r.read() == b''
c.request('POST', '/', body=b'x' * 1000)
r = c.getresponse()
assert r.status == 405 and r.getheader('Allow') == 'GET, HEAD', r.status
r.read()
c.request('GET', '/')  # the POST's body was skipped: the next request is read right
assert c.getresponse().read() == b'Hello, World!'
c.close()

# Pipelining: three requests in one send, answered in order; the third's Connection: close
# ends the connection after its answer, and a fourth after it is never answered.
get = b'GET / HTTP/1.1\r\nHost: a\r\n\r\n'
out = raw(get + get + b'GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n' + get)
assert out.count(b'HTTP/1.1 200 OK\r\n') == 3, out
assert out.count(b'Hello, World!') == 3
assert out.endswith(b'Hello, World!') and b'Connection: close\r\n' in out

# Many pipelined requests, more than one read brings.
n = 2000
out = raw(get * (n - 1) + b'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', timeout=30)
assert out.count(b'Hello, World!') == n, out.count(b'Hello, World!')

# HTTP/1.0 without keep-alive closes after one answer; with it, the connection stays.
out = raw(b'GET / HTTP/1.0\r\n\r\n')
assert out.startswith(b'HTTP/1.1 200 OK\r\n') and out.count(b'Hello') == 1, out
assert b'Connection: close\r\n' in out
out = raw(b'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n' + b'GET / HTTP/1.0\r\n\r\n')
assert out.count(b'Hello, World!') == 2 and b'Connection: keep-alive\r\n' in out, out

# Bad requests: answered, then the connection is closed (the good one before is answered).
out = raw(get + b'BAD REQUEST LINE\r\n\r\n' + get)
assert out.count(b'Hello, World!') == 1 and b'HTTP/1.1 400 Bad Request\r\n' in out, out
assert raw(b'GET / HTTP/1.1\r\n\r\n').startswith(b'HTTP/1.1 400 '), 'no Host'
assert raw(b'\x16\x03\x01\x00\xa5\x01\x00').startswith(b'HTTP/1.1 400 '), 'TLS hello'
assert raw(b'GET / HTTP/1.1\r\nHost: a\r\nX: ' + b'y' * 9000 + b'\r\n\r\n').startswith(
    b'HTTP/1.1 431 '), 'head over 8 KiB'
assert raw(b'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n').startswith(
    b'HTTP/1.1 501 ')
assert raw(b'GET / HTTP/2.0\r\nHost: a\r\n\r\n').startswith(b'HTTP/1.1 505 ')
print('ok')
)";

// recv(2), again when interrupted. A socket with SO_RCVTIMEO never restarts: its recv returns
// EINTR after any interruption, also with no handler installed, such as the process being
// stopped and continued (signal(7), "Interruption of system calls and library functions by
// stop signals"). CI saw it once (2026-12-02, g++): a connection "failed" with errno 4 and 0
// bytes read while the server was fine.
ssize_t recv_retrying_eintr(int fd, char* buffer, std::size_t size) {
  ssize_t n;
  do n = ::recv(fd, buffer, size, 0);
  while (n < 0 && errno == EINTR);
  return n;
}

// The built example in a child process, its standard output on a pipe: the constructor returns
// once it has printed its first line ("http_server: listening on 127.0.0.1 port P with N
// loop(s)"), port 0 when that line did not come. The destructor kills a child still running.
struct HttpServer {
  pid_t pid = -1;
  FILE* lines = nullptr;
  std::string first_line;
  unsigned port = 0;
  int status = 0;

  explicit HttpServer(const std::vector<std::string>& args) {
    std::string path = test_support::example_path("http_server");
    REQUIRE(::access(path.c_str(), X_OK) == 0);
    int out[2];
    REQUIRE(::pipe(out) == 0);
    std::fflush(nullptr);
    pid = ::fork();
    if (pid == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      ::close(out[0]);
      ::close(out[1]);
      std::vector<char*> argv{path.data()};
      for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
      argv.push_back(nullptr);
      ::execv(path.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    lines = ::fdopen(out[0], "r");
    char line[256] = {};
    if (std::fgets(line, sizeof(line), lines) == nullptr) return;
    first_line = line;
    if (std::sscanf(line, "http_server: listening on 127.0.0.1 port %u with", &port) != 1) port = 0;
  }
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Sends signal (none when 0), waits for the exit (status) and returns the rest of the output.
  std::string stop(int signal) {
    if (signal != 0) ::kill(pid, signal);
    ::waitpid(pid, &status, 0);
    pid = -1;
    std::string rest;
    char line[256];
    while (std::fgets(line, sizeof(line), lines) != nullptr) rest += line;
    std::fclose(lines);
    lines = nullptr;
    return rest;
  }

  ~HttpServer() {
    if (pid > 0) stop(SIGKILL);
  }
};

}  // namespace

TEST_CASE("python's http.client and raw sockets get examples/http_server's answers",
          "[http][host]") {
  HttpServer server({"0", "--loops", "2"});
  INFO("first line: " << server.first_line);
  REQUIRE(server.port != 0);
  REQUIRE(server.first_line.find(" with 2 loops\n") != std::string::npos);
  unsigned port = server.port;
  std::string script = "/tmp/ringloop-http-client-" + std::to_string(::getpid()) + ".py";
  FILE* file = std::fopen(script.c_str(), "w");
  std::fputs(kClient, file);
  std::fclose(file);
  std::string result =
      test_support::output_of("python3 " + script + " " + std::to_string(port) + " 2>&1");
  ::unlink(script.c_str());
  CHECK(result == "ok\n");
  std::string rest = server.stop(SIGTERM);
  CHECK(WIFEXITED(server.status));
  CHECK(WEXITSTATUS(server.status) == 0);
  INFO(rest);
  CHECK(rest.find("refused); bye") != std::string::npos);
}

TEST_CASE("examples/http_server on pinned loops closes every connection on SIGINT and exits 0",
          "[http][host]") {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  REQUIRE(::sched_getaffinity(0, sizeof(allowed), &allowed) == 0);
  std::string loops = CPU_COUNT(&allowed) >= 2 ? "2" : "1";
  HttpServer server({"0", "--loops", loops, "--pin"});
  INFO("first line: " << server.first_line);
  REQUIRE(server.port != 0);
  // Connections enough that, spread by SO_REUSEPORT, each loop gets some; each answered once
  // and left open, so that the signal finds them all idle in a keep-alive read.
  constexpr int kConnections = 16;
  std::vector<int> clients;
  for (int i = 0; i < kConnections; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    clients.push_back(fd);
    timeval ten_seconds{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &ten_seconds, sizeof(ten_seconds));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(server.port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
    std::string request = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(request.size()));
    std::string answer;
    char buffer[1024];
    while (answer.find("Hello, World!") == std::string::npos) {
      ssize_t n = recv_retrying_eintr(fd, buffer, sizeof(buffer));
      if (n <= 0) {
        int error = errno;
        std::string rest = server.stop(SIGKILL);
        INFO("connection " << i << ": recv returned " << n << ", errno " << error << " ("
                           << std::strerror(error) << "), after " << answer.size()
                           << " bytes of the answer; the server had written:\n"
                           << rest);
        REQUIRE(n > 0);
      }
      answer.append(buffer, static_cast<std::size_t>(n));
    }
  }
  ::kill(server.pid, SIGINT);
  // Every connection ends (a FIN, or a reset from a handler cancelled mid-read), none times out.
  int ended = 0;
  for (int fd : clients) {
    char byte = 0;
    ssize_t n = recv_retrying_eintr(fd, &byte, 1);
    bool timed_out = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    if (n <= 0 && !timed_out) ++ended;
    ::close(fd);
  }
  CHECK(ended == kConnections);
  std::string rest = server.stop(0);
  INFO(rest);
  CHECK(WIFEXITED(server.status));
  CHECK(WEXITSTATUS(server.status) == 0);
  CHECK(rest.find("http_server: Interrupt: closing the connections\n") != std::string::npos);
  CHECK(rest.find("answered 16 requests on 16 connections (0 refused); bye") != std::string::npos);
}

TEST_CASE("examples/http_server refuses a port in use: the error on stderr, exit 1",
          "[http][host]") {
  int taken = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);  // no SO_REUSEPORT
  REQUIRE(taken >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(taken, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
  REQUIRE(::listen(taken, 1) == 0);
  socklen_t length = sizeof(address);
  REQUIRE(::getsockname(taken, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  // timeout(1): a server that hangs instead of failing ends the test all the same (rc=124).
  std::string command = "timeout 20 " + test_support::example_path("http_server") + " " +
                        std::to_string(ntohs(address.sin_port)) + " --loops 2 2>&1; echo rc=$?";
  std::string out = test_support::output_of(command);
  ::close(taken);
  INFO(out);
  CHECK(out.find("http_server: start_server: bind") != std::string::npos);
  CHECK(out.find("Address already in use") != std::string::npos);
  CHECK(out.find("listening") == std::string::npos);
  CHECK(out.find("rc=1\n") != std::string::npos);
}
