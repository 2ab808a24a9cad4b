// file_read (issue #18): 4 KiB random reads with O_DIRECT (the page cache out of the picture) at
// a queue depth of `conns` (128 in scripts/bench), against `fio --ioengine=io_uring` with the
// same parameters (bench/peers/fio/fio_peer.sh). file_read_fixed reads into RegisteredBuffers
// (READ_FIXED), as fio's --fixedbufs. The file: RINGLOOP_BENCH_FILE (default
// /var/tmp/ringloop-file-read.dat, 1 GiB), written once and shared with fio.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include <ringloop/ringloop.hpp>
#include "bench/scenario_util.hpp"

namespace ringloop_bench {

inline constexpr std::size_t kFileReadBlock = 4096;
inline constexpr std::uint64_t kFileReadBytes = std::uint64_t{1} << 30;

inline std::string file_read_path() {
  const char* path = std::getenv("RINGLOOP_BENCH_FILE");
  return path != nullptr ? path : "/var/tmp/ringloop-file-read.dat";
}

// Writes the file once (1 GiB of non-zero bytes, so no file system can keep it sparse).
inline bool ensure_file_read_file(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0 &&
      static_cast<std::uint64_t>(info.st_size) >= kFileReadBytes)
    return true;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  std::vector<char> chunk(1 << 20, 'r');
  for (std::uint64_t done = 0; done < kFileReadBytes; done += chunk.size())
    if (::write(fd, chunk.data(), chunk.size()) != static_cast<ssize_t>(chunk.size())) {
      ::close(fd);
      return false;
    }
  ::fsync(fd);
  ::close(fd);
  return true;
}

// xorshift: each reader draws its own block numbers, uniform over the file.
inline std::uint64_t next_block(std::uint64_t& state) {
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return state % (kFileReadBytes / kFileReadBlock);
}

// One of `depth` readers: reads until the shared count of reads left reaches zero.
inline ringloop::Coro<> file_reader(int fd, std::byte* buffer, long* left, std::uint64_t seed) {
  std::uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  while (*left > 0) {
    --*left;
    std::uint64_t offset = next_block(state) * kFileReadBlock;
    std::size_t n = co_await ringloop::io::read(fd, buffer, kFileReadBlock, offset);
    if (n != kFileReadBlock) throw std::runtime_error("file_read: short read");
  }
}

inline ringloop::Coro<> fixed_file_reader(int fd, ringloop::RegisteredBuffers& buffers,
                                          unsigned index, long* left, std::uint64_t seed) {
  std::uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  while (*left > 0) {
    --*left;
    std::uint64_t offset = next_block(state) * kFileReadBlock;
    std::size_t n = co_await buffers.read(fd, index, kFileReadBlock, offset);
    if (n != kFileReadBlock) throw std::runtime_error("file_read_fixed: short read");
  }
}

inline ringloop::Coro<std::string> file_read(const char* scenario, long n, long depth, bool fixed) {
  std::string path = file_read_path();
  if (!ensure_file_read_file(path)) co_return skipped_line(scenario, n, "cannot_write_file");
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  if (fd < 0) co_return skipped_line(scenario, n, "no_o_direct");
  auto count = static_cast<unsigned>(depth);
  ringloop::RegisteredBuffers buffers(*ringloop::Loop::current(), count, kFileReadBlock);
  long left = n;
  std::vector<ringloop::Coro<>> readers;
  Meter meter;
  for (unsigned i = 0; i < count; ++i)
    readers.push_back(fixed ? fixed_file_reader(fd, buffers, i, &left, i)
                            : file_reader(fd, buffers.buffer(i).data(), &left, i));
  co_await ringloop::gather(std::move(readers));
  std::string line = meter.line(scenario, n);
  double wall_s = std::stod(line.substr(line.find("wall_s=") + 7));
  ::close(fd);
  char extra[128];
  std::snprintf(extra, sizeof extra, " iops=%.0f depth=%ld direct=1 bs=4096", n / wall_s, depth);
  co_return line + extra;
}

}  // namespace ringloop_bench
