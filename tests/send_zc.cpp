// Zero-copy send (coro/io/send_zc.hpp): a megabyte arrives intact, the awaiter resumes only
// after the kernel's release notification, and the fallback to send works where SEND_ZC is
// missing; a Stream sends its large writes with it on TCP.
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

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

namespace {

// What one Stream write of data sends over a socket pair made by connect (TCP on loopback, or a
// Unix socket pair): the bytes the other end read, and the loop's SEND_ZC count.
struct StreamSent {
  std::string bytes;
  std::uint64_t zero_copy_sends = 0;
};

ringloop::Coro<std::string> read_all(Socket& socket) {
  std::string in;
  char buffer[65536] = {};  // valgrind does not see the kernel fill it
  for (;;) {
    std::size_t n = co_await socket.recv(buffer, sizeof buffer);
    if (n == 0) co_return in;
    in.append(buffer, n);
  }
}

StreamSent stream_write(const std::vector<std::string>& writes, bool unix_socket,
                        std::size_t threshold = ringloop::Stream::kZeroCopyThreshold) {
  return ringloop::run(
      [](const std::vector<std::string>& pieces, bool unix_pair,
         std::size_t min_bytes) -> Coro<StreamSent> {
        Socket reading, writing;
        if (unix_pair) {
          int fds[2];
          REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
          reading = Socket(fds[0]);
          writing = Socket(fds[1]);
        } else {
          Socket listener = ringloop::listen_tcp("127.0.0.1", 0);
          reading = connect_to(ringloop::local_port(listener));
          writing = co_await listener.accept();
        }
        auto reader = ringloop::create_task(read_all(reading));
        ringloop::Stream stream(std::move(writing));
        stream.set_zero_copy_threshold(min_bytes);
        for (const std::string& piece : pieces) stream.write(piece);
        co_await stream.close();  // flushes every byte first
        StreamSent sent;
        sent.bytes = co_await reader;
        sent.zero_copy_sends = ringloop::Loop::current()->stats().zero_copy_sends;
        co_return sent;
      }(writes, unix_socket, threshold));
}

std::string pattern(std::size_t size, unsigned seed) {
  std::string data(size, '\0');
  for (std::size_t i = 0; i < size; ++i) data[i] = static_cast<char>(i * seed + i / 4093);
  return data;
}

}  // namespace

TEST_CASE("a Stream sends a large write on TCP with SEND_ZC, small ones as copies, all in order",
          "[sendzc][stream]") {
  constexpr std::size_t big = ringloop::Stream::kZeroCopyThreshold;
  // Small writes around large ones: the small ones coalesce, each large one goes alone.
  std::vector<std::string> writes{pattern(100, 3),  pattern(4 * big, 5), pattern(big - 1, 7),
                                  pattern(200, 11), pattern(big, 13),    pattern(10, 17)};
  std::string expected;
  for (const std::string& w : writes) expected += w;
  StreamSent sent = stream_write(writes, false);
  CHECK(sent.bytes == expected);
  // At least one per large write (a partial send sends the rest again, with SEND_ZC while at
  // least the threshold is left). SEND_ZC is in Linux 6.0: every kernel tested here has it.
  CHECK(sent.zero_copy_sends >= 2);
}

TEST_CASE("a Stream sends no SEND_ZC unless asked: its threshold is 0 by default",
          "[sendzc][stream]") {
  ringloop::run([]() -> Coro<> {
    Socket listener = ringloop::listen_tcp("127.0.0.1", 0);
    Socket peer = connect_to(ringloop::local_port(listener));
    ringloop::Stream stream(co_await listener.accept());
    CHECK(stream.get_zero_copy_threshold() == 0);
    stream.set_zero_copy_threshold(4096);
    CHECK(stream.get_zero_copy_threshold() == 4096);
    co_await stream.close();
  }());
  std::string data = pattern(1 << 20, 3);
  StreamSent sent = stream_write({data}, false, 0);
  CHECK(sent.bytes == data);
  CHECK(sent.zero_copy_sends == 0);
}

// The flush task goes on at each send's result; the chunks stay pinned until their
// notifications. Many large writes in a row, each awaited only at the end, arrive in order.
TEST_CASE("a Stream's large writes follow one another without waiting for notifications",
          "[sendzc][stream]") {
  constexpr std::size_t big = ringloop::Stream::kZeroCopyThreshold;
  std::vector<std::string> writes;
  for (unsigned i = 0; i < 32; ++i) writes.push_back(pattern(big + i * 1000, i + 1));
  std::string expected;
  for (const std::string& w : writes) expected += w;
  StreamSent sent = stream_write(writes, false);
  CHECK(sent.bytes == expected);
  CHECK(sent.zero_copy_sends >= writes.size());
}

TEST_CASE("a Stream destroyed while SEND_ZC notifications are owed frees its chunks after them",
          "[sendzc][stream]") {
  // The awaited write resumes at the send's result; the Stream then goes at once, its chunk
  // still pinned by the kernel until the notification (ASan and valgrind would see the kernel
  // read freed memory otherwise); the loop closes only after that last CQE.
  std::string got = ringloop::run([]() -> Coro<std::string> {
    Socket listener = ringloop::listen_tcp("127.0.0.1", 0);
    Socket peer = connect_to(ringloop::local_port(listener));
    auto reader = ringloop::create_task(read_all(peer));
    {
      ringloop::Stream stream(co_await listener.accept());
      stream.set_zero_copy_threshold(ringloop::Stream::kZeroCopyThreshold);
      co_await stream.write(pattern(256 * 1024, 5));
    }
    co_return co_await reader;
  }());
  CHECK(got == pattern(256 * 1024, 5));
}

TEST_CASE("a Stream's small writes never go with SEND_ZC", "[sendzc][stream]") {
  constexpr std::size_t big = ringloop::Stream::kZeroCopyThreshold;
  std::vector<std::string> writes;
  for (unsigned i = 0; i < 64; ++i) writes.push_back(pattern(big / 16, i));
  std::string expected;
  for (const std::string& w : writes) expected += w;
  StreamSent sent = stream_write(writes, false);
  CHECK(sent.bytes == expected);
  CHECK(sent.zero_copy_sends == 0);
}

TEST_CASE("a Stream sends large writes as copies where zero copy does not apply",
          "[sendzc][stream]") {
  std::vector<std::string> writes{pattern(1 << 20, 7), pattern(300, 9)};
  std::string expected = writes[0] + writes[1];
  SECTION("a Unix socket (the kernel's SEND_ZC is TCP and UDP only)") {
    StreamSent sent = stream_write(writes, true);
    CHECK(sent.bytes == expected);
    CHECK(sent.zero_copy_sends == 0);
  }
  SECTION("a kernel without SEND_ZC (the test seam)") {
    ringloop::detail::send_zc_disabled_for_tests = true;
    StreamSent sent = stream_write(writes, false);
    ringloop::detail::send_zc_disabled_for_tests = false;
    CHECK(sent.bytes == expected);
    CHECK(sent.zero_copy_sends == 0);
  }
}

TEST_CASE("aborting a Stream while a SEND_ZC waits for its notification frees nothing early",
          "[sendzc][stream]") {
  // The peer never reads: the 8 MiB write fills the socket buffers and its SEND_ZC stays in
  // flight; abort() cancels it, and the chunk goes only after the SQE's last CQE (ASan and
  // valgrind would see a write into freed memory otherwise).
  ringloop::run([]() -> Coro<> {
    Socket listener = ringloop::listen_tcp("127.0.0.1", 0);
    Socket peer = connect_to(ringloop::local_port(listener));
    ringloop::Stream stream(co_await listener.accept());
    stream.set_zero_copy_threshold(ringloop::Stream::kZeroCopyThreshold);
    stream.write(pattern(8 << 20, 3));
    co_await ringloop::sleep(std::chrono::milliseconds(20));
    CHECK(ringloop::Loop::current()->stats().zero_copy_sends >= 1);
    stream.abort();
    co_await ringloop::sleep(std::chrono::milliseconds(1));
  }());
  SUCCEED("the loop closed with nothing in flight");
}
