// Stream: a connected byte stream (a TCP or Unix socket, or a pipe) with a receive buffer, in
// the spirit of asyncio's StreamReader/StreamWriter pair: read, read_exactly and read_until from
// the buffer, write sends all of what it is given.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <ringloop/coro/net/socket.hpp>
#include <ringloop/coro/task/coro.hpp>

namespace ringloop {

// read_exactly or read_until met the end of the stream first; partial holds what had come.
class IncompleteReadError : public std::runtime_error {
 public:
  IncompleteReadError(std::string partial_bytes, std::size_t expected_bytes)
      : std::runtime_error("the stream ended after " + std::to_string(partial_bytes.size()) +
                           " bytes, before " +
                           (expected_bytes == 0 ? std::string("the separator")
                                                : std::to_string(expected_bytes) + " bytes")),
        partial(std::move(partial_bytes)),
        expected(expected_bytes) {}
  std::string partial;
  std::size_t expected;  // 0 for read_until
};

// read_until found no separator within its limit.
class LimitOverrunError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What a Stream's descriptor is. A socket moves bytes with recv/send (send with MSG_NOSIGNAL: a
// peer that closed is EPIPE, not SIGPIPE); a pipe (a subprocess's stdin/stdout) with read/write,
// since recv/send on a pipe fail with ENOTSOCK.
enum class StreamKind : std::uint8_t { socket, pipe };

// A connected byte stream with a receive buffer. Its coroutines use the Stream, which must
// outlive them; one reader and one writer at a time.
class Stream {
 public:
  static constexpr std::size_t kReadChunkBytes = 16 * 1024;
  static constexpr std::size_t kDefaultLineLimit = 64 * 1024;

  Stream() = default;
  explicit Stream(Socket socket, StreamKind kind = StreamKind::socket) noexcept
      : socket_(std::move(socket)), kind_(kind) {}

  // The descriptor (for a pipe too: Socket is only its owner here).
  Socket& socket() noexcept { return socket_; }
  StreamKind kind() const noexcept { return kind_; }

  // Up to max_bytes: what is buffered, else what one recv brings. Empty at end of stream.
  Coro<std::string> read(std::size_t max_bytes = kReadChunkBytes) {
    if (buffered() == 0 && max_bytes != 0) co_await fill();
    co_return take(std::min(max_bytes, buffered()));
  }

  // Exactly n bytes; IncompleteReadError (holding what came) when the stream ends first.
  Coro<std::string> read_exactly(std::size_t n) {
    while (buffered() < n) {
      // Awaited into a variable: g++ 12 miscompiles a co_await inside an if's condition.
      bool more = co_await fill();
      if (!more) throw IncompleteReadError(take(buffered()), n);
    }
    co_return take(n);
  }

  // Up to and including separator ("\n": a line). IncompleteReadError when the stream ends
  // first; LimitOverrunError when limit bytes come without one.
  Coro<std::string> read_until(std::string_view separator = "\n",
                               std::size_t limit = kDefaultLineLimit) {
    if (separator.empty()) throw std::invalid_argument("read_until: empty separator");
    std::size_t searched = 0;
    for (;;) {
      std::string_view data(buffer_.data() + start_, buffered());
      std::size_t found = data.find(separator, searched);
      if (found != std::string_view::npos) co_return take(found + separator.size());
      if (data.size() >= limit)
        throw LimitOverrunError("read_until: no separator in the first " + std::to_string(limit) +
                                " bytes");
      searched = data.size() >= separator.size() ? data.size() - separator.size() + 1 : 0;
      bool more = co_await fill();
      if (!more) throw IncompleteReadError(take(buffered()), 0);
    }
  }

  // Sends all of data, in as many sends as it takes.
  Coro<> write(std::string_view data) {
    while (!data.empty()) {
      std::size_t sent = 0;
      if (kind_ == StreamKind::socket)
        sent = co_await socket_.send(data.data(), data.size());
      else
        sent = co_await ringloop::io::write(socket_.fd(), data.data(), data.size());
      data.remove_prefix(sent);
    }
  }

  // Shuts down the sending side (the peer reads end of stream); receiving goes on.
  auto write_eof() noexcept { return socket_.shutdown(SHUT_WR); }
  auto close() noexcept { return socket_.close(); }

 private:
  std::size_t buffered() const noexcept { return buffer_.size() - start_; }

  std::string take(std::size_t n) {
    std::string out(buffer_, start_, n);
    start_ += n;
    if (start_ == buffer_.size()) {
      buffer_.clear();
      start_ = 0;
    }
    return out;
  }

  // One recv appended to the buffer; false at end of stream.
  Coro<bool> fill() {
    if (start_ > 0) {
      buffer_.erase(0, start_);
      start_ = 0;
    }
    std::size_t old_size = buffer_.size();
    buffer_.resize(old_size + kReadChunkBytes);
    std::size_t received = 0;
    try {
      if (kind_ == StreamKind::socket)
        received = co_await socket_.recv(buffer_.data() + old_size, kReadChunkBytes);
      else
        received =
            co_await ringloop::io::read(socket_.fd(), buffer_.data() + old_size, kReadChunkBytes);
    } catch (...) {
      buffer_.resize(old_size);
      throw;
    }
    buffer_.resize(old_size + received);
    co_return received != 0;
  }

  Socket socket_;
  StreamKind kind_ = StreamKind::socket;
  std::string buffer_;
  std::size_t start_ = 0;  // buffer_[start_, size) is received and not yet read
};

}  // namespace ringloop
