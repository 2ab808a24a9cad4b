// Zero-copy send (coro/io/send_zc.hpp): a megabyte arrives intact, the awaiter resumes only
// after the kernel's release notification, and the fallback to send works where SEND_ZC is
// missing.
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <sys/socket.h>

#include <string>

#include <ringloop/coro/io/send_zc.hpp>
#include <ringloop/ringloop.hpp>
#include "tests/loopback.hpp"

using ringloop::Coro;
using ringloop::Socket;

namespace {

using test_support::connect_to;

// Sends data with send_zc over loopback TCP; returns what the other end read, and whether the
// sends went as SEND_ZC.
std::string send_megabyte(const std::string& data, bool& zero_copy) {
  return ringloop::run([](const std::string& out, bool& zc) -> Coro<std::string> {
    Socket listener = ringloop::listen_tcp("127.0.0.1", 0);
    Socket client = connect_to(ringloop::local_port(listener));
    Socket server = co_await listener.accept();
    auto reader = ringloop::create_task([](Socket& s, std::size_t expected) -> Coro<std::string> {
      std::string in;
      char buffer[65536] = {};  // valgrind does not see the kernel fill it
      while (in.size() < expected) {
        std::size_t n = co_await s.recv(buffer, sizeof buffer);
        if (n == 0) break;
        in.append(buffer, n);
      }
      co_return in;
    }(client, out.size()));
    std::size_t done = 0;
    while (done < out.size()) {
      auto send = ringloop::send_zc(server, out.data() + done, out.size() - done);
      std::size_t n = co_await send;
      zc = send.zero_copy();
      done += n;
    }
    std::string got = co_await reader;
    co_return got;
  }(data, zero_copy));
}

}  // namespace

TEST_CASE("send_zc sends a megabyte intact, as SEND_ZC where the kernel has it", "[sendzc]") {
  std::string data(1 << 20, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 31 + i / 4096);
  bool zero_copy = false;
  std::string got = send_megabyte(data, zero_copy);
  CHECK(got == data);
  CHECK(zero_copy);  // SEND_ZC is in Linux 6.0: every kernel tested here (6.1, 6.18) has it
}

TEST_CASE("send_zc falls back to send where the kernel lacks SEND_ZC", "[sendzc]") {
  std::string data(1 << 20, 'z');
  bool zero_copy = true;
  ringloop::detail::send_zc_disabled_for_tests = true;
  std::string got = send_megabyte(data, zero_copy);
  ringloop::detail::send_zc_disabled_for_tests = false;
  CHECK(got == data);
  CHECK_FALSE(zero_copy);
}
