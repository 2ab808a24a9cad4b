// Probing (issue #18): the kernel's opcodes asked once per ring; an operation newer than the
// floor falls back to a system call, or fails with an error naming the kernel that has it; a
// kernel below the floor is refused with its version. Older kernels are played by a seam that
// masks probe bits (Probe::mask_opcodes_for_tests); Linux 6.1 plays itself (kernel-6.1).
#include <catch2/catch.hpp>

#include <sys/socket.h>

#include <cstdio>
#include <string>
#include <system_error>

#include <ringloop/ringloop.hpp>

using namespace std::chrono_literals;
using ringloop::Coro;
using ringloop::Loop;
using ringloop::Probe;
using ringloop::Socket;
using ringloop::Stream;

namespace {

// Masks opcodes for the rings set up in its scope.
struct MaskedOpcodes {
  MaskedOpcodes(std::initializer_list<unsigned> opcodes) { Probe::mask_opcodes_for_tests(opcodes); }
  ~MaskedOpcodes() { Probe::mask_opcodes_for_tests({}); }
};

Coro<> echo_once(Stream stream) {
  std::string line = co_await stream.read_until("\n");
  co_await stream.write(line);
  co_await stream.close();
}

}  // namespace

TEST_CASE("the ring probes its kernel once: the opcodes the loop relies on are there", "[probe]") {
  Loop loop;
  const Probe& probe = loop.ring().probe();
  REQUIRE(probe.available());
  for (unsigned op : {IORING_OP_TIMEOUT, IORING_OP_TIMEOUT_REMOVE, IORING_OP_ASYNC_CANCEL,
                      IORING_OP_LINK_TIMEOUT, IORING_OP_READ, IORING_OP_CLOSE}) {
    INFO(ringloop::opcode_name(op));
    CHECK(probe.has(op));
  }
  CHECK(probe.has_feature(IORING_FEAT_NODROP));
  CHECK_FALSE(probe.has(300));  // past any kernel's table
  CHECK(ringloop::opcode_name(IORING_OP_SOCKET) == "IORING_OP_SOCKET");
  CHECK(std::string(ringloop::opcode_since(IORING_OP_SOCKET)) == "5.19");
  CHECK(std::string(ringloop::opcode_since(ringloop::kOpFtruncate)) == "6.9");
}

TEST_CASE("kernel_at_least agrees with kernel_version", "[probe]") {
  std::string version = ringloop::kernel_version();
  unsigned major = 0, minor = 0;
  REQUIRE(std::sscanf(version.c_str(), "%u.%u", &major, &minor) == 2);
  CHECK(ringloop::kernel_at_least(major, minor));
  CHECK(ringloop::kernel_at_least(major, 0));
  CHECK(ringloop::kernel_at_least(0, 0));
  CHECK_FALSE(ringloop::kernel_at_least(major, minor + 1));
  CHECK_FALSE(ringloop::kernel_at_least(major + 1, 0));
}

TEST_CASE("a masked opcode reads as missing, and requiring it names the kernel that has it",
          "[probe]") {
  MaskedOpcodes masked{IORING_OP_SOCKET};
  Loop loop;
  CHECK_FALSE(loop.ring().probe().has(IORING_OP_SOCKET));
  CHECK(loop.ring().probe().has(IORING_OP_READ));
  try {
    loop.ring().probe().require(IORING_OP_SOCKET, "io::socket");
    FAIL("require did not throw");
  } catch (const std::system_error& e) {
    CHECK(e.code().value() == ENOSYS);
    CHECK_THAT(e.what(), Catch::Contains("io::socket: IORING_OP_SOCKET needs Linux 5.19; this "
                                         "kernel is " +
                                         ringloop::kernel_version()));
  }
}

TEST_CASE("a kernel without an opcode the loop needs is refused with both versions", "[probe]") {
  MaskedOpcodes masked{IORING_OP_LINK_TIMEOUT};
  try {
    Loop loop;
    FAIL("the loop was set up without IORING_OP_LINK_TIMEOUT");
  } catch (const std::system_error& e) {
    CHECK_THAT(e.what(), Catch::Contains("IORING_OP_LINK_TIMEOUT needs Linux 5.5; this kernel is"));
  }
}

TEST_CASE(
    "without IORING_OP_SOCKET and IORING_OP_SHUTDOWN, open_connection and write_eof fall "
    "back to the system calls",
    "[probe]") {
  MaskedOpcodes masked{IORING_OP_SOCKET, IORING_OP_SHUTDOWN};
  std::string reply = ringloop::run([]() -> Coro<std::string> {
    REQUIRE_FALSE(Loop::current()->ring().probe().has(IORING_OP_SOCKET));
    Socket listener = ringloop::listen_tcp("127.0.0.1", 0);
    auto server = ringloop::create_task(ringloop::serve(listener, &echo_once));
    Stream stream = co_await ringloop::open_connection("127.0.0.1", ringloop::local_port(listener));
    co_await stream.write("fallback\n");
    co_await stream.write_eof();  // shutdown(2): the server reads the line, then the end
    std::string line = co_await stream.read_until("\n");
    server.cancel();
    try {
      co_await server;
    } catch (const ringloop::CancelledError&) {
    }
    co_return line;
  }());
  CHECK(reply == "fallback\n");
}

TEST_CASE("a socket fallback in a task cancelled before it runs yields no fd", "[probe]") {
  MaskedOpcodes masked{IORING_OP_SOCKET};
  ringloop::run([]() -> Coro<> {
    auto task = ringloop::create_task(ringloop::io::socket(AF_INET, SOCK_STREAM));
    task.cancel();
    try {
      co_await task;
      FAIL("the cancelled socket() returned");
    } catch (const ringloop::CancelledError&) {
    }
  }());
}

TEST_CASE(
    "the ring fd is registered by default where the kernel has it, and the loop runs "
    "either way",
    "[probe]") {
  for (bool registered : {true, false}) {
    INFO(registered);
    ringloop::LoopOptions options;
    options.ring.register_ring_fd = registered;
    Loop loop(options);
    if (!registered) CHECK_FALSE(loop.ring().ring_fd_registered());
    // Linux 5.18 added IORING_REGISTER_RING_FDS; MSG_RING came in the same release.
    if (registered && loop.ring().probe().has(IORING_OP_MSG_RING))
      CHECK(loop.ring().ring_fd_registered());
    int value = loop.run_until_complete([]() -> Coro<int> {
      co_await ringloop::sleep(1ms);
      co_await ringloop::io::nop();
      co_return 7;
    }());
    CHECK(value == 7);
  }
}
