// Host names: getaddrinfo and getnameinfo as awaitables (asyncio's loop.getaddrinfo and
// loop.getnameinfo). libc's resolver blocks (files, DNS), so it runs in the default executor
// (coro/thread/to_thread.hpp), as asyncio does; a numeric host with a numeric port takes a fast
// path on the loop's thread (AI_NUMERICHOST first, never a thread). A cancelled await returns at
// once: the resolver's thread finishes on its own, with everything it touches owned by its job.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <netdb.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <ringloop/coro/net/address.hpp>
#include <ringloop/coro/task/coro.hpp>
#include <ringloop/coro/thread/to_thread.hpp>

namespace ringloop {

// The category of getaddrinfo's and getnameinfo's EAI_ codes (negative numbers in glibc).
inline const std::error_category& gai_category() noexcept {
  struct Category : std::error_category {
    const char* name() const noexcept override { return "getaddrinfo"; }
    std::string message(int code) const override { return ::gai_strerror(code); }
  };
  static const Category category;
  return category;
}

// A name that did not resolve, or an address that has no name (Python's socket.gaierror).
// code().value() and eai_code() are the EAI_ code (EAI_NONAME, EAI_AGAIN, EAI_ADDRFAMILY...);
// what() names the host and port: "getaddrinfo nonexistent.invalid port 80: Name or service not
// known". EAI_SYSTEM carries errno's text as well.
class GaiError : public std::system_error {
 public:
  GaiError(int eai_code, const std::string& what_failed)
      : std::system_error(eai_code, gai_category(), what_failed) {}
  int eai_code() const noexcept { return code().value(); }
};

// One of the addresses a name resolves to (an entry of getaddrinfo's list).
struct AddrInfo {
  int family = AF_UNSPEC;  // AF_INET, AF_INET6
  int type = 0;            // SOCK_STREAM, SOCK_DGRAM...
  int protocol = 0;        // IPPROTO_TCP, IPPROTO_UDP...
  std::string canonname;   // the first entry's, when AI_CANONNAME was asked for; else empty
  SocketAddress address;   // with the port
};

// A host and service of getnameinfo.
struct NameInfo {
  std::string host;
  std::string service;
};

namespace detail {

// The result of one libc call, made on whichever thread: the addresses, or the EAI_ code (with
// errno for EAI_SYSTEM).
struct GaiOutcome {
  int code = 0;
  int system_errno = 0;
  std::vector<AddrInfo> infos;
};

inline GaiOutcome call_getaddrinfo(const std::string& host, const std::string& service, int family,
                                   int type, int protocol, int flags) {
  addrinfo hints{};
  hints.ai_family = family;
  hints.ai_socktype = type;
  hints.ai_protocol = protocol;
  hints.ai_flags = flags;
  addrinfo* list = nullptr;
  GaiOutcome outcome;
  outcome.code = ::getaddrinfo(host.empty() ? nullptr : host.c_str(),
                               service.empty() ? nullptr : service.c_str(), &hints, &list);
  if (outcome.code != 0) {
    outcome.system_errno = errno;
    return outcome;
  }
  for (const addrinfo* entry = list; entry != nullptr; entry = entry->ai_next) {
    AddrInfo info;
    info.family = entry->ai_family;
    info.type = entry->ai_socktype;
    info.protocol = entry->ai_protocol;
    if (entry->ai_canonname != nullptr) info.canonname = entry->ai_canonname;
    if (entry->ai_addrlen <= sizeof(info.address.storage)) {
      std::memcpy(&info.address.storage, entry->ai_addr, entry->ai_addrlen);
      info.address.length = entry->ai_addrlen;
      outcome.infos.push_back(std::move(info));
    }
  }
  ::freeaddrinfo(list);
  return outcome;
}

inline std::vector<AddrInfo> gai_result(GaiOutcome outcome, const std::string& host,
                                        const std::string& service) {
  if (outcome.code == 0) return std::move(outcome.infos);
  std::string what = "getaddrinfo " + (host.empty() ? std::string("(no host)") : host) + " port " +
                     (service.empty() ? std::string("(none)") : service);
  if (outcome.code == EAI_SYSTEM)
    what += ": " + std::system_category().message(outcome.system_errno) + ";";
  throw GaiError(outcome.code, what);
}

inline bool all_digits(const std::string& text) noexcept {
  if (text.empty()) return false;
  for (char c : text)
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace detail

// The addresses host:service resolves to, in the resolver's order (asyncio's getaddrinfo:
// family, type, protocol and flags are the hints; AF_UNSPEC and 0 mean any). host may be a name
// or a numeric IPv4/IPv6 address; service a port number or a name ("http"). An empty host is
// libc's NULL (the wildcard with AI_PASSIVE, loopback without). Throws GaiError when the name
// does not resolve (or not in the family asked for: EAI_ADDRFAMILY, EAI_NONAME).
inline Coro<std::vector<AddrInfo>> getaddrinfo(std::string host, std::string service,
                                               int family = AF_UNSPEC, int type = 0,
                                               int protocol = 0, int flags = 0) {
  // A numeric host needs no resolver: libc answers AI_NUMERICHOST at once. EAI_NONAME says it
  // is a name; any other failure (the wrong family for the literal, say) is the answer.
  if (!host.empty() && (service.empty() || detail::all_digits(service))) {
    detail::GaiOutcome numeric = detail::call_getaddrinfo(host, service, family, type, protocol,
                                                          flags | AI_NUMERICHOST | AI_NUMERICSERV);
    if (numeric.code != EAI_NONAME) co_return detail::gai_result(std::move(numeric), host, service);
  }
  if ((flags & AI_NUMERICHOST) != 0) {  // the caller asked for no lookup
    co_return detail::gai_result(
        detail::call_getaddrinfo(host, service, family, type, protocol, flags), host, service);
  }
  detail::GaiOutcome outcome =
      co_await to_thread(&detail::call_getaddrinfo, host, service, family, type, protocol, flags);
  co_return detail::gai_result(std::move(outcome), host, service);
}

inline Coro<std::vector<AddrInfo>> getaddrinfo(std::string host, std::uint16_t port,
                                               int family = AF_UNSPEC, int type = 0,
                                               int protocol = 0, int flags = 0) {
  return getaddrinfo(std::move(host), std::to_string(port), family, type, protocol, flags);
}

namespace detail {

struct NameInfoOutcome {
  int code = 0;
  int system_errno = 0;
  NameInfo names;
};

inline NameInfoOutcome call_getnameinfo(const SocketAddress& address, int flags) {
  char host[NI_MAXHOST];
  char service[NI_MAXSERV];
  NameInfoOutcome outcome;
  outcome.code = ::getnameinfo(address.get(), address.length, host, sizeof host, service,
                               sizeof service, flags);
  if (outcome.code != 0) {
    outcome.system_errno = errno;
    return outcome;
  }
  outcome.names.host = host;
  outcome.names.service = service;
  return outcome;
}

inline NameInfo nameinfo_result(NameInfoOutcome outcome, const SocketAddress& address) {
  if (outcome.code == 0) return std::move(outcome.names);
  std::string what = "getnameinfo " + to_string(address);
  if (outcome.code == EAI_SYSTEM)
    what += ": " + std::system_category().message(outcome.system_errno) + ";";
  throw GaiError(outcome.code, what);
}

}  // namespace detail

// The host name and service of an address (asyncio's getnameinfo; flags are NI_NAMEREQD,
// NI_NUMERICHOST, NI_NUMERICSERV, NI_DGRAM...). With NI_NUMERICHOST and NI_NUMERICSERV both
// there is nothing to look up and it answers on the loop's thread; otherwise libc's resolver
// runs in the default executor. Throws GaiError (EAI_NONAME with NI_NAMEREQD and no name).
inline Coro<NameInfo> getnameinfo(SocketAddress address, int flags = 0) {
  if ((flags & (NI_NUMERICHOST | NI_NUMERICSERV)) == (NI_NUMERICHOST | NI_NUMERICSERV))
    co_return detail::nameinfo_result(detail::call_getnameinfo(address, flags), address);
  detail::NameInfoOutcome outcome = co_await to_thread(&detail::call_getnameinfo, address, flags);
  co_return detail::nameinfo_result(std::move(outcome), address);
}

}  // namespace ringloop
