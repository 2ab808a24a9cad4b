// examples/http_server as a client nobody here wrote sees it: Python's http.client (keep-alive,
// HEAD) and raw sockets (pipelining, Connection: close, HTTP/1.0, bad and oversized requests)
// against the built example with two loops, then SIGTERM and a clean exit. Needs python3 and the
// examples built (tag [host]: the kernel guest has neither).
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

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

}  // namespace

TEST_CASE("python's http.client and raw sockets get examples/http_server's answers",
          "[http][host]") {
  std::string server = test_support::example_path("http_server");
  REQUIRE(::access(server.c_str(), X_OK) == 0);
  int out[2];
  REQUIRE(::pipe(out) == 0);
  std::fflush(nullptr);
  pid_t child = ::fork();
  if (child == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::close(out[0]);
    ::close(out[1]);
    ::execl(server.c_str(), server.c_str(), "0", "--loops", "2", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(out[1]);
  // The first line says the port: "http_server: listening on 127.0.0.1 port P with 2 loops".
  FILE* lines = ::fdopen(out[0], "r");
  char line[256] = {};
  bool got_line = std::fgets(line, sizeof(line), lines) != nullptr;
  INFO("first line: " << line);
  REQUIRE(got_line);
  unsigned port = 0;
  REQUIRE(std::sscanf(line, "http_server: listening on 127.0.0.1 port %u with 2 loops", &port) ==
          1);
  std::string script = "/tmp/ringloop-http-client-" + std::to_string(::getpid()) + ".py";
  FILE* file = std::fopen(script.c_str(), "w");
  std::fputs(kClient, file);
  std::fclose(file);
  std::string result =
      test_support::output_of("python3 " + script + " " + std::to_string(port) + " 2>&1");
  ::unlink(script.c_str());
  CHECK(result == "ok\n");
  ::kill(child, SIGTERM);
  int status = 0;
  ::waitpid(child, &status, 0);
  std::string rest;
  while (std::fgets(line, sizeof(line), lines) != nullptr) rest += line;
  std::fclose(lines);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  INFO(rest);
  CHECK(rest.find("refused); bye") != std::string::npos);
}
