// Stream's buffered writer: write queues and a flush task sends, writelines is one SQE, drain and
// the high-water mark, deadlines on a peer that stops reading, a peer reset raised on the next
// write or drain (or by close), close flushing first, abort dropping the queue, write_eof after
// the queue, a Stream destroyed with a send in flight, and the same over a pipe (writev).
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <ringloop/ringloop.hpp>

using namespace std::chrono_literals;
using ringloop::Coro;
using ringloop::Socket;
using ringloop::Stream;

namespace {

struct Connected {
  Stream client;
  Stream server;
};

// A TCP connection over loopback; with small_buffers, both kernels hold little (so that a peer
// that does not read stops the sender soon).
Coro<Connected> connect_pair(bool small_buffers = false) {
  Socket listener = ringloop::listen_tcp("127.0.0.1", 0);
  if (small_buffers) {
    int size = 4096;  // the accepted socket inherits the listener's receive buffer
    ::setsockopt(listener.fd(), SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
  }
  Stream client = co_await ringloop::open_connection("127.0.0.1", ringloop::local_port(listener));
  Stream server(co_await listener.accept());
  if (small_buffers) {
    int size = 4096;
    ::setsockopt(client.socket().fd(), SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
  }
  co_return Connected{std::move(client), std::move(server)};
}

// A recognizable byte pattern, so that order and loss show.
std::string pattern(std::size_t size) {
  std::string data(size, '\0');
  for (std::size_t i = 0; i < size; ++i) data[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  return data;
}

std::uint64_t submitted() { return ringloop::Loop::current()->stats().operations_submitted; }

}  // namespace

TEST_CASE("write queues without being awaited; awaiting it waits until the kernel has the bytes",
          "[stream]") {
  ringloop::run([]() -> Coro<> {
    Connected c = co_await connect_pair();
    c.client.write("hello ");  // asyncio's StreamWriter.write: not awaited
    CHECK(c.client.get_write_buffer_size() == 6);
    co_await c.client.drain();  // far below the high-water mark: returns at once
    co_await c.client.write("world");
    CHECK(c.client.get_write_buffer_size() == 0);
    std::string got = co_await c.server.read_exactly(11);
    CHECK(got == "hello world");
  }());
}

TEST_CASE("writelines goes out as one sendmsg, and small writes are gathered", "[stream]") {
  ringloop::run([]() -> Coro<> {
    Connected c = co_await connect_pair();
    std::vector<std::string> lines;
    std::string joined;
    for (int i = 0; i < 100; ++i) {
      lines.push_back("line " + std::to_string(i) + "\n");
      joined += lines.back();
    }
    auto before = submitted();
    co_await c.client.writelines(lines);
    CHECK(submitted() - before == 1);
    std::string got = co_await c.server.read_exactly(joined.size());
    CHECK(got == joined);

    // 1,000 writes in one step: the first is sent alone, the others are appended to one chunk.
    before = submitted();
    std::string expected;
    for (int i = 0; i < 1000; ++i) {
      std::string piece = std::to_string(i) + ",";
      c.client.write(piece);
      expected += piece;
    }
    co_await c.client.write("");  // an empty write awaits everything before it
    CHECK(submitted() - before <= 3);
    got = co_await c.server.read_exactly(expected.size());
    CHECK(got == expected);
  }());
}

TEST_CASE("write of an rvalue std::string takes the string; small ones are still gathered",
          "[stream]") {
  ringloop::run([]() -> Coro<> {
    Connected c = co_await connect_pair();
    std::string big = pattern(100 * 1024);
    std::string expected = big;
    c.client.write(std::move(big));  // queued as it is: no copy of 100 KiB
    CHECK(big.empty());              // NOLINT(bugprone-use-after-move): it was taken
    CHECK(c.client.get_write_buffer_size() == expected.size());
    // Small rvalue strings behind it are appended to one chunk (lvalues and literals as before).
    std::string lvalue = "lvalue,";
    for (int i = 0; i < 100; ++i) {
      c.client.write(std::to_string(i) + ",");
      c.client.write(lvalue);
      expected += std::to_string(i) + "," + lvalue;
    }
    c.client.write("end");
    expected += "end";
    CHECK(c.client.get_write_buffer_size() == expected.size());
    co_await c.client.write("");
    std::string got = co_await c.server.read_exactly(expected.size());
    CHECK(got == expected);
  }());
}

TEST_CASE("set_write_buffer_limits follows asyncio's defaults and checks high >= low", "[stream]") {
  ringloop::run([]() -> Coro<> {
    Connected c = co_await connect_pair();
    using Limits = std::pair<std::size_t, std::size_t>;
    CHECK(c.client.get_write_buffer_limits() == Limits{65536, 16384});
    c.client.set_write_buffer_limits(1000);
    CHECK(c.client.get_write_buffer_limits() == Limits{1000, 250});
    c.client.set_write_buffer_limits(std::nullopt, 100);
    CHECK(c.client.get_write_buffer_limits() == Limits{400, 100});
    CHECK_THROWS_AS(c.client.set_write_buffer_limits(10, 20), std::invalid_argument);
    c.client.set_write_buffer_limits(10, 0);
    c.client.write(std::string(100, 'x'));
    co_await c.client.drain();  // above 10: waits down to 0
    CHECK(c.client.get_write_buffer_size() == 0);
  }());
}

TEST_CASE(
    "a peer that stops reading: wait_for(drain) and wait_for(write) time out, and the "
    "Stream stays usable with its queue in order",
    "[stream]") {
  ringloop::run([]() -> Coro<> {
    Connected c = co_await connect_pair(true);
    constexpr std::size_t kBytes = 2 << 20;
    std::string data = pattern(kBytes);
    c.client.write(data);
    CHECK(c.client.get_write_buffer_size() > 65536);
    CHECK_THROWS_AS(co_await ringloop::wait_for(c.client.drain(), 50ms), ringloop::TimeoutError);
    CHECK_THROWS_AS(co_await ringloop::wait_for(c.client.write("tail"), 20ms),
                    ringloop::TimeoutError);
    std::size_t left = c.client.get_write_buffer_size();
    CHECK(left > 0);
    CHECK(left <= kBytes + 4);
    CHECK_FALSE(c.client.is_closing());
    // The peer reads again: everything arrives, in order, and the writer's waits end.
    auto reader = ringloop::create_task(c.server.read_exactly(kBytes + 4));
    co_await ringloop::wait_for(c.client.drain(), 10s);
    co_await ringloop::wait_for(c.client.write(""), 10s);
    std::string got = co_await reader;
    CHECK(got.size() == kBytes + 4);
    CHECK((got == data + "tail"));
  }());
}

TEST_CASE("a peer reset during a background send is raised by the next drain and write",
          "[stream]") {
  ringloop::run([]() -> Coro<> {
    Connected c = co_await connect_pair();
    linger reset{1, 0};  // closing with SO_LINGER 0 sends an RST
    ::setsockopt(c.server.socket().fd(), SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
    c.server.abort();
    co_await ringloop::sleep(10ms);
    c.client.write("into the void");  // queued; the background send fails
    co_await ringloop::sleep(10ms);
    CHECK_THROWS_AS(co_await c.client.drain(), std::system_error);
    CHECK_THROWS_AS(c.client.write("again"), std::system_error);  // sticky
    CHECK(c.client.get_write_buffer_size() == 0);
    co_await c.client.close();  // reported already: close does not raise it again
  }());
}

TEST_CASE("a failed background send nobody asked about is raised by close", "[stream]") {
  ringloop::run([]() -> Coro<> {
    Connected c = co_await connect_pair();
    linger reset{1, 0};
    ::setsockopt(c.server.socket().fd(), SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
    c.server.abort();
    co_await ringloop::sleep(10ms);
    c.client.write("lost?");
    try {
      co_await c.client.close();
      FAIL("close hid the failed send");
    } catch (const std::system_error& error) {
      int code = error.code().value();
      CHECK((code == ECONNRESET || code == EPIPE));
    }
    CHECK(c.client.is_closing());
  }());
}

TEST_CASE("close sends what is queued before closing; write_eof comes after the queue too",
          "[stream]") {
  ringloop::run([]() -> Coro<> {
    Connected c = co_await connect_pair(true);
    std::string data = pattern(1 << 20);
    c.client.write(data);
    c.client.write_eof();  // not awaited: after the megabyte
    CHECK_THROWS_AS(c.client.write("late"), std::logic_error);
    std::string got = co_await c.server.read();
    CHECK((got == data));
    co_await c.server.write("bye");  // the client still reads after its write_eof
    std::string bye = co_await c.client.read(3);
    CHECK(bye == "bye");

    c.server.write(data);
    auto closing = c.server.close();  // not awaited yet
    CHECK(c.server.is_closing());
    std::string again = co_await c.client.read();
    CHECK((again == data));
    co_await closing;
    co_await c.server.close();  // a second close is a no-op
    CHECK_FALSE(c.server.socket().valid());
  }());
}

TEST_CASE("abort drops the queue at once; later writes raise ECONNABORTED", "[stream]") {
  ringloop::run([]() -> Coro<> {
    Connected c = co_await connect_pair(true);
    constexpr std::size_t kBytes = 2 << 20;
    c.client.write(pattern(kBytes));
    co_await ringloop::sleep(5ms);
    c.client.abort();
    co_await c.client.wait_closed();
    CHECK(c.client.get_write_buffer_size() == 0);
    try {
      c.client.write("x");
      FAIL("write after abort queued");
    } catch (const std::system_error& error) {
      CHECK(error.code().value() == ECONNABORTED);
    }
    std::size_t received = 0;
    try {
      std::string got = co_await c.server.read();
      received = got.size();
    } catch (const std::system_error&) {  // a reset is a fine way to learn of an abort
    }
    CHECK(received < kBytes);
  }());
}

TEST_CASE("abort ends a read waiting on the same Stream", "[stream]") {
  ringloop::run([]() -> Coro<> {
    Connected c = co_await connect_pair();
    auto reader = ringloop::create_task(c.client.read(100));
    co_await ringloop::sleep(5ms);
    c.client.abort();
    std::string got = co_await ringloop::wait_for(std::move(reader), 1s);
    CHECK(got.empty());
  }());
}

TEST_CASE("destroying a Stream with a send in flight aborts it: no crash, no leak", "[stream]") {
  ringloop::run([]() -> Coro<> {
    Connected c = co_await connect_pair(true);
    {
      Stream doomed = std::move(c.client);
      doomed.write(pattern(2 << 20));
      co_await ringloop::sleep(5ms);
    }
    std::size_t received = 0;
    try {
      std::string got = co_await ringloop::wait_for(c.server.read(), 5s);
      received = got.size();
    } catch (const std::system_error&) {
    }
    CHECK(received < (2u << 20));
  }());
}

TEST_CASE("a pipe Stream buffers too: writelines as one writev, write_eof closes the pipe",
          "[stream]") {
  ringloop::run([]() -> Coro<> {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    Stream reader(Socket{fds[0]}, ringloop::StreamKind::pipe);
    Stream writer(Socket{fds[1]}, ringloop::StreamKind::pipe);
    static constexpr std::string_view kPieces[] = {"one\n", "two\n", "three\n"};
    auto before = submitted();
    writer.writelines(kPieces);
    writer.write_eof();
    co_await writer.wait_closed();
    CHECK(submitted() - before == 2);  // one writev, one close
    CHECK_FALSE(writer.socket().valid());
    std::string line = co_await reader.readline();
    CHECK(line == "one\n");
    std::string rest = co_await reader.read();
    CHECK(rest == "two\nthree\n");
  }());
}
