// sendfile over TLS: splice through a pipe on kTLS, read + write through OpenSSL otherwise.
#include <ringloop/coro/tls/sendfile.hpp>

#include <fcntl.h>
#include <liburing.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <system_error>

#include <ringloop/coro/detail/owned_fd.hpp>

namespace ringloop {

namespace {

// One splice SQE: up to size bytes from in (at in_offset, -1 for a pipe) to out.
Coro<std::size_t> splice(int in, std::int64_t in_offset, int out, std::size_t size) {
  std::int32_t result = co_await io::submit([&](io_uring_sqe& sqe) {
    io_uring_prep_splice(&sqe, in, in_offset, out, -1, static_cast<unsigned>(size), SPLICE_F_MOVE);
  });
  if (result < 0) throw std::system_error(-result, std::system_category(), "sendfile: splice");
  co_return static_cast<std::size_t>(result);
}

// The kernel path: file -> pipe -> socket, a pipe's worth at a time.
Coro<std::size_t> splice_file(int socket_fd, int file_fd, std::uint64_t offset, std::size_t count) {
  constexpr std::size_t kPipeBytes = 1 << 20;  // F_SETPIPE_SZ's default maximum
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    throw std::system_error(errno, std::system_category(), "sendfile: pipe2");
  detail::OwnedFd pipe_out(fds[0]);
  detail::OwnedFd pipe_in(fds[1]);
  int capacity = ::fcntl(pipe_in.fd(), F_SETPIPE_SZ, static_cast<int>(kPipeBytes));
  std::size_t chunk = capacity > 0 ? static_cast<std::size_t>(capacity) : 64 * 1024;
  std::size_t sent = 0;
  while (sent < count) {
    std::size_t in_pipe = co_await splice(file_fd, static_cast<std::int64_t>(offset + sent),
                                          pipe_in.fd(), std::min(chunk, count - sent));
    if (in_pipe == 0) break;  // the end of the file
    while (in_pipe > 0) {
      std::size_t out = co_await splice(pipe_out.fd(), -1, socket_fd, in_pipe);
      in_pipe -= out;
      sent += out;
    }
  }
  co_return sent;
}

}  // namespace

Coro<std::size_t> sendfile(TlsStream& stream, const File& file, std::uint64_t offset,
                           std::size_t count) {
  if (stream.kernel_tls_send()) {
    std::size_t sent =
        co_await splice_file(stream.stream().socket().fd(), file.fd(), offset, count);
    co_return sent;
  }
  constexpr std::size_t kChunkBytes = 256 * 1024;
  std::string buffer;
  std::size_t sent = 0;
  while (sent < count) {
    buffer.resize(std::min(kChunkBytes, count - sent));
    std::size_t got = co_await file.read(buffer.data(), buffer.size(), offset + sent);
    if (got == 0) break;
    co_await stream.write(std::string_view(buffer.data(), got));
    sent += got;
  }
  co_return sent;
}

}  // namespace ringloop
