// DatagramSocket: a UDP socket shaped as tokio's UdpSocket (bind, connect, send_to/recv_from,
// send/recv, broadcast and multicast options), and create_datagram_endpoint (asyncio's) that
// resolves, binds and connects one. Each send or receive is one SQE (sendmsg, recvmsg, send).
// A datagram longer than the caller's buffer is never cut silently: recvmsg runs with MSG_TRUNC,
// so the kernel reports the datagram's real size, and the result says `truncated` with that size
// (the bytes that did not fit are gone: a datagram is read whole or not at all).
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <ringloop/coro/detail/io_awaiter.hpp>
#include <ringloop/coro/net/address.hpp>
#include <ringloop/coro/net/resolve.hpp>
#include <ringloop/coro/net/socket.hpp>
#include <ringloop/coro/task/coro.hpp>

namespace ringloop {

// What one receive brought. bytes were copied into the buffer; datagram_bytes is the size the
// datagram had on the wire; truncated when it did not fit (datagram_bytes > bytes). sender is
// the peer that sent it (recv_from; for recv, the connected peer).
struct [[nodiscard]] ReceivedDatagram {
  std::size_t bytes = 0;
  std::size_t datagram_bytes = 0;
  bool truncated = false;
  SocketAddress sender;
};

namespace detail {

// sendmsg to an address. The msghdr and iovec are rebuilt at prepare time from the prep's own
// fields (the prep is copied into its awaiter, in the coroutine's frame, before the SQE is
// filled, so pointers into it taken earlier would dangle).
struct SendToPrep {
  using Result = ByteCountResult;
  static constexpr const char* name = "sendmsg";
  int fd;
  const void* data;
  std::size_t size;
  SocketAddress to;
  mutable iovec iov{};
  mutable msghdr message{};
  void operator()(io_uring_sqe& sqe) const noexcept {
    iov = {const_cast<void*>(data), size};
    message = {};
    message.msg_name = const_cast<sockaddr_storage*>(&to.storage);
    message.msg_namelen = to.length;
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    io_uring_prep_sendmsg(&sqe, fd, &message, MSG_NOSIGNAL);
  }
};

// recvmsg with MSG_TRUNC: its result is the datagram's real size, and the kernel writes the
// sender into msg_name at completion (so the msghdr lives in the awaiter, in the frame).
class [[nodiscard]] RecvMsgAwaiter : IoAwaiterBase {
 public:
  RecvMsgAwaiter(int fd, std::span<std::byte> buffer) noexcept
      : IoAwaiterBase(&prepare), fd_(fd), buffer_(buffer) {}
  RecvMsgAwaiter(RecvMsgAwaiter&& other) noexcept
      : IoAwaiterBase(&prepare), fd_(other.fd_), buffer_(other.buffer_) {
    RINGLOOP_ASSERT(other.state == OpState::idle, "a receive was moved while in flight");
  }

  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> awaiting) {
    return start(awaiting, "recvmsg");
  }
  ReceivedDatagram await_resume() {
    std::size_t size = 0;
    try {
      size = resume_with<ByteCountResult>("recvmsg");
    } catch (const std::system_error& error) {
      if (error.code() != std::errc::connection_refused) throw;
      throw std::system_error(error.code(), refused_message());
    }
    ReceivedDatagram received;
    received.datagram_bytes = size;
    received.bytes = std::min(size, buffer_.size());
    received.truncated = (message_.msg_flags & MSG_TRUNC) != 0 || size > buffer_.size();
    received.sender.storage = sender_;
    received.sender.length = message_.msg_namelen;
    return received;
  }

 private:
  static void prepare(Operation& operation, io_uring_sqe& sqe) noexcept {
    auto& self = static_cast<RecvMsgAwaiter&>(static_cast<IoAwaiterBase&>(operation));
    self.iov_ = {self.buffer_.data(), self.buffer_.size()};
    self.message_ = {};
    self.message_.msg_name = &self.sender_;
    self.message_.msg_namelen = sizeof(self.sender_);
    self.message_.msg_iov = &self.iov_;
    self.message_.msg_iovlen = 1;
    io_uring_prep_recvmsg(&sqe, self.fd_, &self.message_, MSG_TRUNC);
  }

  // A connected socket learns from an ICMP port unreachable that nothing listens at its peer;
  // the kernel reports it on the next receive (or send).
  std::string refused_message() const {
    SocketAddress peer;
    peer.length = sizeof(peer.storage);
    if (::getpeername(fd_, reinterpret_cast<sockaddr*>(&peer.storage), &peer.length) != 0)
      return "recvmsg: the peer refused an earlier datagram (ICMP port unreachable)";
    return "recvmsg: " + to_string(peer) +
           " refused an earlier datagram (ICMP port unreachable: nothing is bound to that port)";
  }

  int fd_;
  std::span<std::byte> buffer_;
  iovec iov_{};
  msghdr message_{};
  sockaddr_storage sender_{};
};

inline std::string family_name(int family) {
  return family == AF_INET    ? "IPv4"
         : family == AF_INET6 ? "IPv6"
                              : "family " + std::to_string(family);
}

}  // namespace detail

// A UDP socket. Move-only; closed on destruction (or with co_await close()). One receive and
// one send may run at a time each; more are allowed (each is its own SQE), and datagrams then
// go to the receives in the kernel's order.
class DatagramSocket {
 public:
  DatagramSocket() = default;
  // Owns fd, a datagram socket of `family` (AF_INET or AF_INET6).
  DatagramSocket(Socket socket, int family) noexcept
      : socket_(std::move(socket)), family_(family) {}

  // A new, unbound socket of the family (AF_INET or AF_INET6).
  static DatagramSocket open(int family) {
    if (family != AF_INET && family != AF_INET6)
      throw std::invalid_argument("DatagramSocket::open: the family must be AF_INET or AF_INET6");
    int fd = ::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
    if (fd < 0) throw std::system_error(errno, std::system_category(), "socket(SOCK_DGRAM)");
    return DatagramSocket(Socket(fd), family);
  }
  // A socket bound to address (tokio's UdpSocket::bind); port 0 lets the kernel choose.
  static DatagramSocket bind(const SocketAddress& address) {
    DatagramSocket socket = open(address.family());
    socket.bind_to(address);
    return socket;
  }

  // bind and connect are synchronous: neither blocks for a datagram socket (connect only
  // records the peer), so an SQE would buy nothing.
  void bind_to(const SocketAddress& address) {
    check_family(address, "bind");
    if (::bind(fd(), address.get(), address.length) != 0)
      throw std::system_error(errno, std::system_category(), "bind to " + to_string(address));
  }
  // Sets the peer: send and recv then go to and come from it alone.
  void connect(const SocketAddress& address) {
    check_family(address, "connect");
    if (::connect(fd(), address.get(), address.length) != 0)
      throw std::system_error(errno, std::system_category(), "connect to " + to_string(address));
  }

  // Sends one datagram to `to`; returns the bytes sent (all of them: a datagram goes whole).
  Op<detail::SendToPrep> send_to(std::span<const std::byte> data, const SocketAddress& to) const {
    check_family(to, "send_to");
    return Op<detail::SendToPrep>({fd(), data.data(), data.size(), to});
  }
  Op<detail::SendToPrep> send_to(std::string_view data, const SocketAddress& to) const {
    return send_to(std::as_bytes(std::span(data.data(), data.size())), to);
  }
  // Receives one datagram and its sender; see ReceivedDatagram for a datagram that did not fit.
  detail::RecvMsgAwaiter recv_from(std::span<std::byte> buffer) const noexcept {
    return detail::RecvMsgAwaiter(fd(), buffer);
  }

  // On a connected socket: one datagram to the peer. One send SQE.
  auto send(std::span<const std::byte> data) const noexcept {
    return ringloop::io::send(fd(), data.data(), data.size());
  }
  auto send(std::string_view data) const noexcept {
    return ringloop::io::send(fd(), data.data(), data.size());
  }
  // On a connected socket: one datagram from the peer. ECONNREFUSED (a std::system_error naming
  // the peer) when an earlier datagram found nothing bound at the peer's port.
  detail::RecvMsgAwaiter recv(std::span<std::byte> buffer) const noexcept {
    return detail::RecvMsgAwaiter(fd(), buffer);
  }

  SocketAddress local_address() const { return name_of(&::getsockname, "getsockname"); }
  SocketAddress peer_address() const { return name_of(&::getpeername, "getpeername"); }

  // SO_BROADCAST: may send to a broadcast address (asyncio's allow_broadcast).
  void set_broadcast(bool on) { set_option(SOL_SOCKET, SO_BROADCAST, on ? 1 : 0, "SO_BROADCAST"); }
  // SO_REUSEPORT: several sockets bind the same port (before bind).
  void set_reuse_port(bool on) { set_option(SOL_SOCKET, SO_REUSEPORT, on ? 1 : 0, "SO_REUSEPORT"); }
  // The unicast TTL (IPv4) or hop limit (IPv6).
  void set_ttl(std::uint32_t ttl) {
    if (family_ == AF_INET6)
      set_option(IPPROTO_IPV6, IPV6_UNICAST_HOPS, static_cast<int>(ttl), "IPV6_UNICAST_HOPS");
    else
      set_option(IPPROTO_IP, IP_TTL, static_cast<int>(ttl), "IP_TTL");
  }

  // IPv4 multicast: joins or leaves `group` ("239.1.2.3") on the interface with that address
  // ("0.0.0.0": the kernel's choice).
  void join_multicast_v4(std::string_view group, std::string_view interface = "0.0.0.0") {
    set_membership_v4(IP_ADD_MEMBERSHIP, group, interface, "IP_ADD_MEMBERSHIP");
  }
  void leave_multicast_v4(std::string_view group, std::string_view interface = "0.0.0.0") {
    set_membership_v4(IP_DROP_MEMBERSHIP, group, interface, "IP_DROP_MEMBERSHIP");
  }
  void set_multicast_loop_v4(bool on) {
    set_option(IPPROTO_IP, IP_MULTICAST_LOOP, on ? 1 : 0, "IP_MULTICAST_LOOP");
  }
  // The interface multicast datagrams leave by, named by its IPv4 address ("127.0.0.1").
  void set_multicast_interface_v4(std::string_view interface) {
    in_addr address{};
    if (::inet_pton(AF_INET, std::string(interface).c_str(), &address) != 1)
      throw std::invalid_argument("IP_MULTICAST_IF: '" + std::string(interface) +
                                  "' is not an IPv4 address");
    if (::setsockopt(fd(), IPPROTO_IP, IP_MULTICAST_IF, &address, sizeof(address)) != 0)
      throw std::system_error(errno, std::system_category(), "setsockopt IP_MULTICAST_IF");
  }
  void set_multicast_ttl_v4(std::uint32_t ttl) {
    set_option(IPPROTO_IP, IP_MULTICAST_TTL, static_cast<int>(ttl), "IP_MULTICAST_TTL");
  }
  // IPv6 multicast: joins or leaves `group` ("ff02::1:2") on the interface of that index (0:
  // the kernel's choice).
  void join_multicast_v6(std::string_view group, unsigned interface_index = 0) {
    set_membership_v6(IPV6_ADD_MEMBERSHIP, group, interface_index, "IPV6_ADD_MEMBERSHIP");
  }
  void leave_multicast_v6(std::string_view group, unsigned interface_index = 0) {
    set_membership_v6(IPV6_DROP_MEMBERSHIP, group, interface_index, "IPV6_DROP_MEMBERSHIP");
  }
  void set_multicast_loop_v6(bool on) {
    set_option(IPPROTO_IPV6, IPV6_MULTICAST_LOOP, on ? 1 : 0, "IPV6_MULTICAST_LOOP");
  }

  int fd() const noexcept { return socket_.fd(); }
  int family() const noexcept { return family_; }
  Socket& socket() noexcept { return socket_; }
  auto close() noexcept { return socket_.close(); }

 private:
  // The kernel would take an IPv4 address on a dual-stack IPv6 socket and refuse the converse
  // with a bare EAFNOSUPPORT; one rule, said plainly, is clearer: the socket's family only.
  void check_family(const SocketAddress& address, const char* what) const {
    if (address.family() != family_)
      throw std::invalid_argument(std::string(what) + ": " + to_string(address) + " is an " +
                                  detail::family_name(address.family()) +
                                  " address and this is an " + detail::family_name(family_) +
                                  " socket (an IPv4 peer of an IPv6 socket is ::ffff:a.b.c.d)");
  }
  void set_option(int level, int name, int value, const char* what) {
    if (::setsockopt(fd(), level, name, &value, sizeof(value)) != 0)
      throw std::system_error(errno, std::system_category(), std::string("setsockopt ") + what);
  }
  void set_membership_v4(int name, std::string_view group, std::string_view interface,
                         const char* what) {
    ip_mreq request{};
    if (::inet_pton(AF_INET, std::string(group).c_str(), &request.imr_multiaddr) != 1 ||
        ::inet_pton(AF_INET, std::string(interface).c_str(), &request.imr_interface) != 1)
      throw std::invalid_argument(std::string(what) + ": '" + std::string(group) + "' or '" +
                                  std::string(interface) + "' is not an IPv4 address");
    if (::setsockopt(fd(), IPPROTO_IP, name, &request, sizeof(request)) != 0)
      throw std::system_error(errno, std::system_category(),
                              std::string("setsockopt ") + what + " " + std::string(group));
  }
  void set_membership_v6(int name, std::string_view group, unsigned interface_index,
                         const char* what) {
    ipv6_mreq request{};
    request.ipv6mr_interface = interface_index;
    if (::inet_pton(AF_INET6, std::string(group).c_str(), &request.ipv6mr_multiaddr) != 1)
      throw std::invalid_argument(std::string(what) + ": '" + std::string(group) +
                                  "' is not an IPv6 address");
    if (::setsockopt(fd(), IPPROTO_IPV6, name, &request, sizeof(request)) != 0)
      throw std::system_error(errno, std::system_category(),
                              std::string("setsockopt ") + what + " " + std::string(group));
  }
  SocketAddress name_of(int (*call)(int, sockaddr*, socklen_t*), const char* what) const {
    SocketAddress address;
    address.length = sizeof(address.storage);
    if (call(fd(), reinterpret_cast<sockaddr*>(&address.storage), &address.length) != 0)
      throw std::system_error(errno, std::system_category(), what);
    return address;
  }

  Socket socket_;
  int family_ = AF_UNSPEC;
};

// A host and port, for create_datagram_endpoint's local_addr and remote_addr (asyncio's tuples).
struct HostPort {
  std::string host;
  std::uint16_t port = 0;
};

// create_datagram_endpoint's options (asyncio's keyword arguments of the same names).
struct DatagramEndpointOptions {
  std::optional<HostPort> local_addr;   // bound to (port 0: the kernel chooses)
  std::optional<HostPort> remote_addr;  // connected to: send and recv then work
  int family = AF_UNSPEC;               // AF_INET or AF_INET6 to resolve only that family
  bool reuse_port = false;              // SO_REUSEPORT before bind
  bool allow_broadcast = false;         // SO_BROADCAST
};

// A DatagramSocket bound to local_addr and connected to remote_addr, both resolved (asyncio's
// create_datagram_endpoint, with the socket as what it returns). The first local/remote pair
// of one family that binds and connects wins; GaiError when a name does not resolve, the last
// failure when no pair works.
inline Coro<DatagramSocket> create_datagram_endpoint(DatagramEndpointOptions options) {
  if (!options.local_addr && !options.remote_addr && options.family == AF_UNSPEC)
    throw std::invalid_argument(
        "create_datagram_endpoint: give local_addr, remote_addr or family (AF_INET, AF_INET6)");
  std::vector<AddrInfo> locals;
  std::vector<AddrInfo> remotes;
  if (options.local_addr)
    locals = co_await getaddrinfo(options.local_addr->host, options.local_addr->port,
                                  options.family, SOCK_DGRAM, IPPROTO_UDP, AI_PASSIVE);
  if (options.remote_addr)
    remotes = co_await getaddrinfo(options.remote_addr->host, options.remote_addr->port,
                                   options.family, SOCK_DGRAM, IPPROTO_UDP);
  std::vector<int> families;
  for (const auto& list : {locals, remotes})
    for (const AddrInfo& info : list)
      if (std::find(families.begin(), families.end(), info.family) == families.end())
        families.push_back(info.family);
  if (families.empty()) families.push_back(options.family);
  std::exception_ptr last_error;
  for (int family : families) {
    std::vector<std::optional<SocketAddress>> local_choices;
    for (const AddrInfo& info : locals)
      if (info.family == family) local_choices.emplace_back(info.address);
    if (!options.local_addr) local_choices.emplace_back(std::nullopt);
    std::vector<std::optional<SocketAddress>> remote_choices;
    for (const AddrInfo& info : remotes)
      if (info.family == family) remote_choices.emplace_back(info.address);
    if (!options.remote_addr) remote_choices.emplace_back(std::nullopt);
    for (const auto& local : local_choices) {
      for (const auto& remote : remote_choices) {
        try {
          DatagramSocket socket = DatagramSocket::open(family);
          if (options.reuse_port) socket.set_reuse_port(true);
          if (options.allow_broadcast) socket.set_broadcast(true);
          if (local) socket.bind_to(*local);
          if (remote) socket.connect(*remote);
          co_return socket;
        } catch (const std::exception&) {
          last_error = std::current_exception();
        }
      }
    }
  }
  if (last_error) std::rethrow_exception(last_error);
  throw std::invalid_argument(
      "create_datagram_endpoint: local_addr and remote_addr resolve to no common family");
}

}  // namespace ringloop
