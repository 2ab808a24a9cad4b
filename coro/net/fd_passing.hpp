// send_fds and recv_fds: file descriptors passed over a Unix socket with SCM_RIGHTS (Python's
// socket.send_fds and socket.recv_fds), each one sendmsg or recvmsg SQE. A received descriptor
// is owned from the moment it arrives (close-on-exec, as a File), so no path leaks one: not a
// truncated control message (MSG_CTRUNC), not a cancel that lost the race with the completion.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <liburing.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <ringloop/coro/errors.hpp>
#include <ringloop/coro/io/file.hpp>
#include <ringloop/coro/io/io.hpp>
#include <ringloop/coro/net/socket.hpp>
#include <ringloop/coro/net/stream.hpp>
#include <ringloop/coro/task/coro.hpp>

namespace ringloop {

// The most descriptors one message carries (the kernel's SCM_MAX_FD).
inline constexpr std::size_t kMaxFdsPerMessage = 253;

// What recv_fds received: the bytes, and the descriptors that came with them.
struct ReceivedFds {
  std::string data;
  std::vector<File> fds;  // File only owns them: they may be of any kind (sockets, pipes...)
};

// More descriptors came than recv_fds had room for (MSG_CTRUNC): the kernel closed the ones
// that did not fit, and recv_fds closed the ones that did. data holds the bytes received.
class FdsTruncatedError : public std::runtime_error {
 public:
  FdsTruncatedError(std::string received, std::size_t room)
      : std::runtime_error("recv_fds: more descriptors came than max_fds (" + std::to_string(room) +
                           ") has room for (MSG_CTRUNC); all of them were closed"),
        data(std::move(received)) {}
  std::string data;
};

namespace detail {

// Room for a control message with n descriptors, aligned as cmsghdr wants.
inline std::vector<std::byte> control_buffer(std::size_t n) {
  return std::vector<std::byte>(CMSG_SPACE(n * sizeof(int)), std::byte{0});
}

// Takes ownership of every SCM_RIGHTS descriptor in message's control data. The buffer starts
// zeroed: if the kernel wrote nothing (the operation was cancelled), nothing is found.
inline std::vector<File> take_fds(msghdr& message) {
  std::vector<File> fds;
  if (message.msg_controllen < sizeof(cmsghdr)) return fds;
  for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr;
       header = CMSG_NXTHDR(&message, header)) {
    if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
    std::size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof(int));
      fds.emplace_back(fd);
    }
  }
  return fds;
}

}  // namespace detail

// Sends data (at least one byte: the descriptors ride on it) and the descriptors fds, which stay
// open here (the peer gets duplicates). Returns the bytes sent, which may be fewer than data's:
// send the rest with socket.send; the descriptors went with the first.
inline Coro<std::size_t> send_fds(const Socket& socket, std::string_view data,
                                  std::span<const int> fds) {
  if (data.empty())
    throw std::invalid_argument("send_fds: data is empty; descriptors need a byte to ride on");
  if (fds.size() > kMaxFdsPerMessage)
    throw std::invalid_argument("send_fds: " + std::to_string(fds.size()) +
                                " descriptors; one message carries at most 253 (SCM_MAX_FD)");
  // The kernel reads all of this while the SQE runs: it lives in this frame until the CQE.
  iovec vector{const_cast<char*>(data.data()), data.size()};
  std::vector<std::byte> control = detail::control_buffer(fds.size());
  msghdr message{};
  message.msg_iov = &vector;
  message.msg_iovlen = 1;
  if (!fds.empty()) {
    message.msg_control = control.data();
    message.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
    cmsghdr* header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
    std::memcpy(CMSG_DATA(header), fds.data(), fds.size() * sizeof(int));
  }
  int fd = socket.fd();
  std::int32_t result = co_await io::submit(
      [&](io_uring_sqe& sqe) { io_uring_prep_sendmsg(&sqe, fd, &message, MSG_NOSIGNAL); });
  if (result < 0) throw std::system_error(-result, std::system_category(), "send_fds: sendmsg");
  co_return static_cast<std::size_t>(result);
}

// Receives up to max_bytes and up to max_fds descriptors (close-on-exec). Empty data and no
// descriptors: the peer closed. FdsTruncatedError when more descriptors came than max_fds.
inline Coro<ReceivedFds> recv_fds(const Socket& socket, std::size_t max_bytes,
                                  std::size_t max_fds) {
  if (max_bytes == 0) throw std::invalid_argument("recv_fds: max_bytes is 0");
  if (max_fds > kMaxFdsPerMessage)
    throw std::invalid_argument("recv_fds: max_fds is more than 253 (SCM_MAX_FD)");
  ReceivedFds received;
  received.data.resize(max_bytes);
  iovec vector{received.data.data(), max_bytes};
  std::vector<std::byte> control = detail::control_buffer(std::max<std::size_t>(max_fds, 1));
  msghdr message{};
  message.msg_iov = &vector;
  message.msg_iovlen = 1;
  message.msg_control = control.data();
  // max_fds 0 still gets room for one header: descriptors sent anyway then show as MSG_CTRUNC.
  message.msg_controllen = max_fds == 0 ? CMSG_SPACE(0) : control.size();
  int fd = socket.fd();
  std::int32_t result = 0;
  try {
    result = co_await io::submit(
        [&](io_uring_sqe& sqe) { io_uring_prep_recvmsg(&sqe, fd, &message, MSG_CMSG_CLOEXEC); });
  } catch (const CancelledError&) {
    // Cancelled, but the receive may have completed first: its descriptors are ours to close.
    detail::take_fds(message);
    throw;
  }
  if (result < 0) throw std::system_error(-result, std::system_category(), "recv_fds: recvmsg");
  received.fds = detail::take_fds(message);
  received.data.resize(static_cast<std::size_t>(result));
  if ((message.msg_flags & MSG_CTRUNC) != 0)
    throw FdsTruncatedError(std::move(received.data), max_fds);  // received.fds close here
  co_return received;
}

// The same on a Stream's socket. recv_fds reads the socket directly, past the Stream's buffer:
// use it where the protocol says descriptors come, before the Stream has read ahead.
inline Coro<std::size_t> send_fds(Stream& stream, std::string_view data, std::span<const int> fds) {
  return send_fds(stream.socket(), data, fds);
}
inline Coro<ReceivedFds> recv_fds(Stream& stream, std::size_t max_bytes, std::size_t max_fds) {
  return recv_fds(stream.socket(), max_bytes, max_fds);
}

}  // namespace ringloop
