// File-system operations (issue #18): statx, readv/writev, READ_FIXED/WRITE_FIXED on
// RegisteredBuffers, fallocate, unlinkat, renameat, mkdirat, ftruncate (the SQE where the kernel
// has IORING_OP_FTRUNCATE, a worker thread where it does not), and errors that name the path.
// Buffers the kernel fills are zeroed first (valgrind cannot see io_uring's writes).
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>

#include <ringloop/ringloop.hpp>

using ringloop::Coro;
using ringloop::File;
using ringloop::Probe;
namespace io = ringloop::io;

namespace {

// A fresh directory under /tmp, removed with everything in it.
struct TempDir {
  std::string path;
  TempDir() {
    char name[] = "/tmp/ringloop-fs-XXXXXX";
    REQUIRE(::mkdtemp(name) != nullptr);
    path = name;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string operator/(const std::string& leaf) const { return path + "/" + leaf; }
};

struct MaskedOpcodes {
  MaskedOpcodes(std::initializer_list<unsigned> opcodes) { Probe::mask_opcodes_for_tests(opcodes); }
  ~MaskedOpcodes() { Probe::mask_opcodes_for_tests({}); }
};

// statx's size of path, through the ring.
Coro<std::uint64_t> size_of(std::string path) {
  struct statx info;
  std::memset(&info, 0, sizeof info);
  co_await io::statx(AT_FDCWD, path.c_str(), 0, STATX_SIZE, info);
  co_return info.stx_size;
}

Coro<File> create(std::string path) {
  File file = co_await File::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC);
  co_return file;
}

}  // namespace

TEST_CASE("statx reports a file's type and size; a missing path is an error naming it", "[fs]") {
  TempDir dir;
  std::string path = dir / "data";
  ringloop::run([](std::string p) -> Coro<> {
    File file = co_await create(p);
    std::size_t written = co_await file.write("0123456789", 10, 0);
    REQUIRE(written == 10);
    struct statx info;
    std::memset(&info, 0, sizeof info);
    co_await io::statx(AT_FDCWD, p.c_str(), 0, STATX_TYPE | STATX_SIZE, info);
    CHECK(S_ISREG(info.stx_mode));
    CHECK(info.stx_size == 10);
    // AT_EMPTY_PATH: the open fd itself.
    std::memset(&info, 0, sizeof info);
    co_await io::statx(file.fd(), "", AT_EMPTY_PATH, STATX_SIZE, info);
    CHECK(info.stx_size == 10);
    std::string missing = p + ".missing";
    try {
      co_await io::statx(AT_FDCWD, missing.c_str(), 0, STATX_SIZE, info);
      FAIL("statx of a missing path succeeded");
    } catch (const std::system_error& e) {
      CHECK(e.code().value() == ENOENT);
      CHECK_THAT(e.what(), Catch::StartsWith("statx " + missing + ": "));
    }
  }(path));
}

TEST_CASE("writev and readv move several buffers at an offset in one operation", "[fs]") {
  TempDir dir;
  ringloop::run([](std::string p) -> Coro<> {
    File file = co_await create(p);
    char a[] = "abc", b[] = "defgh", c[] = "ij";
    iovec out[] = {{a, 3}, {b, 5}, {c, 2}};
    std::size_t written = co_await io::writev(file.fd(), out, 100);
    CHECK(written == 10);
    char x[4] = {}, y[6] = {};
    iovec in[] = {{x, 4}, {y, 6}};
    std::size_t read = co_await io::readv(file.fd(), in, 100);
    CHECK(read == 10);
    CHECK(std::string(x, 4) == "abcd");
    CHECK(std::string(y, 6) == "efghij");
    std::uint64_t size = co_await size_of(p);
    CHECK(size == 110);  // a hole of 100 bytes, then the data
  }(dir / "v"));
}

TEST_CASE("registered buffers: write_fixed and read_fixed round-trip; misuse is refused", "[fs]") {
  TempDir dir;
  ringloop::run([](std::string p) -> Coro<> {
    ringloop::Loop& loop = *ringloop::Loop::current();
    ringloop::RegisteredBuffers buffers(loop, 2, 5000);
    CHECK(buffers.count() == 2);
    CHECK(buffers.buffer_size() == 8192);  // rounded to pages, fit for O_DIRECT
    File file = co_await create(p);
    std::memcpy(buffers.buffer(0).data(), "registered", 10);
    std::size_t written = co_await buffers.write(file.fd(), 0, 10, 0);
    CHECK(written == 10);
    std::size_t read = co_await buffers.read(file.fd(), 1, 10, 0);
    CHECK(read == 10);
    CHECK(std::memcmp(buffers.buffer(1).data(), "registered", 10) == 0);
    CHECK(buffers.in_use() == 0);
    CHECK_THROWS_AS(buffers.read(file.fd(), 2, 10, 0), std::out_of_range);
    CHECK_THROWS_AS(buffers.read(file.fd(), 0, 9000, 0), std::out_of_range);
    // One set per ring: the kernel answers EBUSY, and the message says so.
    try {
      ringloop::RegisteredBuffers second(loop, 1, 4096);
      FAIL("a second set of registered buffers was accepted");
    } catch (const std::system_error& e) {
      CHECK(e.code().value() == EBUSY);
      CHECK_THAT(e.what(), Catch::Contains("one set per loop"));
    }
  }(dir / "fixed"));
}

TEST_CASE("registered buffers refuse to unregister while a read into them is pending", "[fs]") {
  ringloop::run([]() -> Coro<> {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    ringloop::RegisteredBuffers buffers(*ringloop::Loop::current(), 1, 4096);
    auto reader =
        ringloop::create_task([](ringloop::RegisteredBuffers& b, int fd) -> Coro<std::size_t> {
          std::size_t n = co_await b.read(fd, 0, 4096);
          co_return n;
        }(buffers, fds[0]));
    co_await ringloop::sleep(std::chrono::milliseconds(1));
    CHECK(buffers.in_use() == 1);
    CHECK_THROWS_AS(buffers.unregister(), std::logic_error);
    REQUIRE(::write(fds[1], "pipe", 4) == 4);
    std::size_t n = co_await reader;
    CHECK(n == 4);
    CHECK(std::memcmp(buffers.buffer(0).data(), "pipe", 4) == 0);
    CHECK(buffers.in_use() == 0);
    buffers.unregister();
    CHECK(buffers.count() == 0);
    CHECK_THROWS_AS(buffers.buffer(0), std::logic_error);
    ::close(fds[0]);
    ::close(fds[1]);
  }());
}

TEST_CASE("fallocate grows a file; ftruncate shrinks it, by SQE or on a worker thread", "[fs]") {
  for (bool masked : {false, true}) {
    INFO("IORING_OP_FTRUNCATE masked: " << masked);
    std::optional<MaskedOpcodes> mask;
    if (masked) mask.emplace(std::initializer_list<unsigned>{ringloop::kOpFtruncate});
    TempDir dir;
    ringloop::run([](std::string p) -> Coro<> {
      File file = co_await create(p);
      co_await io::fallocate(file.fd(), 0, 0, 1 << 20);
      std::uint64_t grown = co_await size_of(p);
      CHECK(grown == (1u << 20));
      co_await io::ftruncate(file.fd(), 4096);
      std::uint64_t shrunk = co_await size_of(p);
      CHECK(shrunk == 4096);
      try {
        co_await io::ftruncate(-1, 0);
        FAIL("ftruncate of fd -1 succeeded");
      } catch (const std::system_error& e) {
        CHECK(e.code().value() == EBADF);
      }
    }(dir / "sized"));
  }
}

TEST_CASE(
    "mkdirat, renameat and unlinkat: a file moved into a new directory, then both "
    "removed; errors name the paths",
    "[fs]") {
  TempDir dir;
  ringloop::run([](std::string root) -> Coro<> {
    std::string sub = root + "/sub", from = root + "/a", to = root + "/sub/b";
    co_await io::mkdirat(AT_FDCWD, sub.c_str());
    {
      File file = co_await create(from);
      co_await file.close();
    }
    co_await io::renameat(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str());
    CHECK_FALSE(std::filesystem::exists(from));
    CHECK(std::filesystem::exists(to));
    try {
      co_await io::mkdirat(AT_FDCWD, sub.c_str());
      FAIL("mkdirat of an existing directory succeeded");
    } catch (const std::system_error& e) {
      CHECK(e.code().value() == EEXIST);
      CHECK_THAT(e.what(), Catch::StartsWith("mkdirat " + sub + ": "));
    }
    try {
      co_await io::renameat(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str());
      FAIL("renameat of a missing path succeeded");
    } catch (const std::system_error& e) {
      CHECK(e.code().value() == ENOENT);
      CHECK_THAT(e.what(), Catch::StartsWith("renameat " + from + " to " + to + ": "));
    }
    co_await io::unlinkat(AT_FDCWD, to.c_str());
    co_await io::unlinkat(AT_FDCWD, sub.c_str(), AT_REMOVEDIR);
    CHECK_FALSE(std::filesystem::exists(sub));
    try {
      co_await io::unlinkat(AT_FDCWD, to.c_str());
      FAIL("unlinkat of a missing path succeeded");
    } catch (const std::system_error& e) {
      CHECK(e.code().value() == ENOENT);
      CHECK_THAT(e.what(), Catch::StartsWith("unlinkat " + to + ": "));
    }
  }(dir.path));
}

TEST_CASE("on a kernel without IORING_OP_RENAMEAT, renameat fails naming the kernel that has it",
          "[fs][probe]") {
  MaskedOpcodes masked{IORING_OP_RENAMEAT};
  ringloop::run([]() -> Coro<> {
    try {
      co_await io::renameat(AT_FDCWD, "/nonexistent/a", AT_FDCWD, "/nonexistent/b");
      FAIL("renameat ran without IORING_OP_RENAMEAT");
    } catch (const std::system_error& e) {
      CHECK(e.code().value() == ENOSYS);
      CHECK_THAT(e.what(), Catch::StartsWith("renameat: IORING_OP_RENAMEAT needs Linux 5.11; this "
                                             "kernel is " +
                                             ringloop::kernel_version()));
    }
  }());
}
