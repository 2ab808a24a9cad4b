// open_connection: a client's TCP connection to host:port, as a Stream (asyncio's
// open_connection). The host is resolved (getaddrinfo, coro/net/resolve.hpp) and its addresses
// are tried in order, one after another, or raced by RFC 8305's Happy Eyeballs when
// happy_eyeballs_delay is set (asyncio's staggered race): a new attempt starts when the delay
// passes or the previous attempt fails; the first connection wins and every other attempt is
// cancelled and its socket closed before open_connection returns.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <ringloop/coro/errors.hpp>
#include <ringloop/coro/net/address.hpp>
#include <ringloop/coro/net/resolve.hpp>
#include <ringloop/coro/net/stream.hpp>
#include <ringloop/coro/sync/event.hpp>
#include <ringloop/coro/task/coro.hpp>
#include <ringloop/coro/task/task.hpp>
#include <ringloop/coro/task/wait_for.hpp>

namespace ringloop {

// open_connection's options, asyncio's keyword arguments of the same names.
struct ConnectOptions {
  // AF_INET or AF_INET6 to use only that family's addresses; AF_UNSPEC for all.
  int family = AF_UNSPEC;
  // getaddrinfo's flags (AI_ADDRCONFIG, AI_NUMERICHOST...).
  int flags = 0;
  // Happy Eyeballs (RFC 8305): the delay before the next address is tried while an attempt is
  // still connecting; RFC 8305 recommends 250 ms. Unset: one address after another, each attempt
  // to its end (asyncio's default).
  std::optional<std::chrono::nanoseconds> happy_eyeballs_delay;
  // Reorders the addresses by family: the first `interleave` of the first family, then one of
  // each family in turn (asyncio's interleave; 0 leaves the resolver's order, except that with
  // happy_eyeballs_delay set it counts as 1, as in asyncio).
  int interleave = 0;
  // Binds the socket to this local address before connecting (asyncio's local_addr); addresses
  // of another family are skipped.
  std::optional<SocketAddress> local_addr;
};

// All the addresses failed, with different errors (asyncio's "Multiple exceptions: ..."). The
// code is the first failure's; errors holds each one, in the order the addresses were tried.
class ConnectError : public std::system_error {
 public:
  ConnectError(std::error_code code, std::string message, std::vector<std::exception_ptr> all)
      : std::system_error(code), message_(std::move(message)), errors(std::move(all)) {}
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string message_;

 public:
  std::vector<std::exception_ptr> errors;
};

namespace detail {

// asyncio's _interleave_addrinfos: the first `first_family_count` addresses of the first family,
// then the families in turn.
inline std::vector<SocketAddress> interleave_addresses(std::vector<SocketAddress> addresses,
                                                       int first_family_count) {
  std::vector<std::vector<SocketAddress>> by_family;
  std::vector<int> families;
  for (SocketAddress& address : addresses) {
    auto at = std::find(families.begin(), families.end(), address.family());
    if (at == families.end()) {
      families.push_back(address.family());
      by_family.emplace_back();
      at = families.end() - 1;
    }
    by_family[static_cast<std::size_t>(at - families.begin())].push_back(std::move(address));
  }
  std::vector<SocketAddress> order;
  std::vector<std::size_t> next(by_family.size(), 0);
  if (!by_family.empty() && first_family_count > 1) {
    auto count = std::min(by_family[0].size(), static_cast<std::size_t>(first_family_count - 1));
    for (; next[0] < count; ++next[0]) order.push_back(by_family[0][next[0]]);
  }
  for (bool more = true; more;) {
    more = false;
    for (std::size_t f = 0; f < by_family.size(); ++f) {
      if (next[f] < by_family[f].size()) {
        order.push_back(by_family[f][next[f]++]);
        more = true;
      }
    }
  }
  return order;
}

// One attempt: a socket, bound when asked, connected. A cancel (or a failure) closes it.
inline Coro<Socket> connect_one(SocketAddress address, std::optional<SocketAddress> local) {
  int fd = co_await ringloop::io::socket(address.family(), SOCK_STREAM);
  Socket socket(fd);
  // TCP_NODELAY, as a request/response peer wants (asyncio sets it on every TCP transport).
  int one = 1;
  ::setsockopt(socket.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (local && ::bind(socket.fd(), local->get(), local->length) != 0)
    throw std::system_error(errno, std::system_category(),
                            "bind to local address " + to_string(*local) + " failed");
  std::exception_ptr failure;
  try {
    co_await socket.connect(address.get(), address.length);
  } catch (const std::system_error& error) {
    // The address belongs in the message, as asyncio's "Connect call failed ('::1', 80)": a
    // bare "connect: Connection refused" does not say which of a program's peers refused.
    failure = std::make_exception_ptr(
        std::system_error(error.code(), "connect to " + host_text(address) + " port " +
                                            std::to_string(address.port()) + " failed"));
  } catch (...) {  // CancelledError: a Happy Eyeballs loser, or the caller's cancel
    failure = std::current_exception();
  }
  if (!failure) co_return socket;
  // Closed and awaited, not left to the destructor's detached close: when open_connection
  // returns, a loser's socket is gone.
  co_await socket.close();
  std::rethrow_exception(failure);
}

// asyncio's rule for the error of a connection that failed on every address: the one error, or
// the first when all read the same, or all of them.
[[noreturn]] inline void throw_connect_errors(std::vector<std::exception_ptr> errors) {
  RINGLOOP_ASSERT(!errors.empty(), "no address was tried, and none failed");
  std::vector<std::string> texts;
  std::error_code first_code;
  for (const auto& error : errors) {
    try {
      std::rethrow_exception(error);
    } catch (const std::system_error& e) {
      if (texts.empty()) first_code = e.code();
      texts.emplace_back(e.what());
    } catch (const std::exception& e) {
      texts.emplace_back(e.what());
    }
  }
  if (std::all_of(texts.begin(), texts.end(), [&](const auto& t) { return t == texts[0]; }))
    std::rethrow_exception(errors.front());
  std::string message = "Multiple exceptions: ";
  for (std::size_t i = 0; i < texts.size(); ++i) message += (i == 0 ? "" : ", ") + texts[i];
  throw ConnectError(first_code, std::move(message), std::move(errors));
}

// The staggered race's shared state, in connect_race's frame, which outlives every attempt.
struct ConnectRace {
  explicit ConnectRace(std::size_t n) : errors(n) {}
  std::optional<Socket> winner;
  std::vector<std::exception_ptr> errors;  // by attempt
  std::size_t finished = 0;
  bool failed_since_start = false;  // an attempt failed: the next one starts now (RFC 8305)
  Event changed;
};

inline Coro<> race_attempt(SocketAddress address, std::optional<SocketAddress> local,
                           ConnectRace& race, std::size_t index) {
  try {
    Socket socket = co_await connect_one(address, local);
    if (!race.winner) {
      race.winner.emplace(std::move(socket));
    } else {
      co_await socket.close();  // connected in the same pass as the winner: a loser
    }
  } catch (const std::exception&) {
    race.errors[index] = std::current_exception();
    race.failed_since_start = true;
  }
  ++race.finished;
  race.changed.set();
}

inline Coro<Socket> connect_race(std::vector<SocketAddress> addresses,
                                 std::optional<SocketAddress> local,
                                 std::chrono::nanoseconds delay) {
  ConnectRace race(addresses.size());
  std::vector<Task<void>> attempts;
  std::exception_ptr interrupted;
  try {
    bool start_next = true;
    while (!race.winner && race.finished < addresses.size()) {
      if (start_next && attempts.size() < addresses.size()) {
        start_next = race.failed_since_start = false;
        std::size_t index = attempts.size();
        attempts.push_back(create_task(race_attempt(addresses[index], local, race, index)));
        continue;
      }
      race.changed.clear();
      if (attempts.size() == addresses.size()) {
        co_await race.changed.wait();
      } else {
        try {
          co_await wait_for(race.changed.wait(), delay);
        } catch (const TimeoutError&) {
          start_next = true;
        }
      }
      if (race.failed_since_start) start_next = true;
    }
  } catch (...) {  // the caller's cancel: the attempts go too
    interrupted = std::current_exception();
  }
  // The losers are cancelled and awaited: each closes its socket before open_connection returns.
  for (Task<void>& attempt : attempts) attempt.cancel();
  for (Task<void>& attempt : attempts) {
    try {
      co_await attempt;
    } catch (const CancelledError&) {
    }
  }
  if (interrupted) std::rethrow_exception(interrupted);
  if (race.winner) co_return std::move(*race.winner);
  std::vector<std::exception_ptr> errors;
  for (auto& error : race.errors)
    if (error) errors.push_back(error);
  throw_connect_errors(std::move(errors));
}

}  // namespace detail

// A connected TCP socket to the first of `addresses` that accepts, under options (family,
// local_addr, happy_eyeballs_delay, interleave; flags is unused here). What open_connection
// does once the name is resolved.
inline Coro<Socket> connect_first(std::vector<SocketAddress> addresses, ConnectOptions options) {
  std::vector<SocketAddress> candidates;
  for (SocketAddress& address : addresses) {
    bool family_ok = options.family == AF_UNSPEC || address.family() == options.family;
    bool local_ok = !options.local_addr || options.local_addr->family() == address.family();
    if (family_ok && local_ok) candidates.push_back(std::move(address));
  }
  if (candidates.empty())
    throw std::invalid_argument(options.local_addr
                                    ? "open_connection: no address of the local address's family"
                                    : "open_connection: no address of the family asked for");
  int interleave = options.interleave;
  if (options.happy_eyeballs_delay && interleave == 0) interleave = 1;
  if (interleave > 0) candidates = detail::interleave_addresses(std::move(candidates), interleave);
  if (options.happy_eyeballs_delay)
    co_return co_await detail::connect_race(std::move(candidates), options.local_addr,
                                            *options.happy_eyeballs_delay);
  std::vector<std::exception_ptr> errors;
  for (const SocketAddress& address : candidates) {
    try {
      co_return co_await detail::connect_one(address, options.local_addr);
    } catch (const std::exception&) {
      errors.push_back(std::current_exception());
    }
  }
  detail::throw_connect_errors(std::move(errors));
}

// Connects to host:port: host is a name (resolved by getaddrinfo off the loop) or a numeric
// IPv4/IPv6 address; TCP_NODELAY is set. Throws GaiError when the name does not resolve, and
// std::system_error naming the address when the connection fails (ConnectError, listing each
// address's failure, when several failed differently).
inline Coro<Stream> open_connection(std::string host, std::uint16_t port,
                                    ConnectOptions options = {}) {
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  std::vector<AddrInfo> infos =
      co_await getaddrinfo(host, port, options.family, SOCK_STREAM, IPPROTO_TCP, options.flags);
  std::vector<SocketAddress> addresses;
  for (AddrInfo& info : infos) addresses.push_back(info.address);
  Socket socket = co_await connect_first(std::move(addresses), std::move(options));
  co_return Stream(std::move(socket));
}

}  // namespace ringloop
