// Servers, as asyncio's: start_server() binds listening sockets and returns a Server that accepts
// connections, one task per connection running the handler, until close(); wait_closed() then
// waits for every handler to finish. Accept shortages (EMFILE...) back off and report once.
// listen_tcp() + serve() are the older, lower-level pair: a bare listening Socket, and one
// accepting coroutine that runs until cancelled.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <ringloop/coro/exception_handler.hpp>
#include <ringloop/coro/io/multishot.hpp>
#include <ringloop/coro/net/address.hpp>
#include <ringloop/coro/net/resolve.hpp>
#include <ringloop/coro/net/stream.hpp>
#include <ringloop/coro/sync/event.hpp>
#include <ringloop/coro/task/gather.hpp>
#include <ringloop/coro/task/task.hpp>
#include <ringloop/coro/thread/loop_group.hpp>
#include <ringloop/coro/time/sleep.hpp>

namespace ringloop {

// A listening TCP socket on host:port (port 0: the kernel picks one, see local_port). Made with
// plain system calls: setup, not I/O. SO_REUSEADDR, so a restarted server can bind at once.
inline Socket listen_tcp(std::string_view host, std::uint16_t port, int backlog = 4096) {
  SocketAddress address = make_address(host, port);
  Socket socket(::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!socket) throw std::system_error(errno, std::system_category(), "listen_tcp: socket");
  int one = 1;
  ::setsockopt(socket.fd(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(socket.fd(), address.get(), address.length) != 0)
    throw std::system_error(
        errno, std::system_category(),
        "listen_tcp: bind to " + std::string(host) + " port " + std::to_string(port));
  if (::listen(socket.fd(), backlog) != 0)
    throw std::system_error(errno, std::system_category(), "listen_tcp: listen");
  return socket;
}

namespace detail {

// asyncio logs what a connection handler throws rather than stopping the server: through the
// loop's exception handler. Called inside the catch block.
inline void report_server_error(const char* what) noexcept {
  try {
    report_exception(Loop::current(), {what, std::current_exception(), ""});
  } catch (...) {  // out of memory building the context
  }
}

template <class Handler>
Coro<> run_connection(Handler& handler, Stream stream) {
  try {
    co_await handler(std::move(stream));
  } catch (const std::exception&) {  // a CancelledError is no std::exception: it goes on
    report_server_error("a connection handler failed");
  }
}

// accept failures that concern one connection only: the next accept may well succeed.
inline bool accept_error_is_per_connection(int error) noexcept {
  return error == ECONNABORTED || error == EPERM || error == EPROTO || error == EINTR;
}

// accept failures from a shortage of descriptors or memory, which pass when something is
// freed: retrying at once would spin (98 failures a second went to stderr before this).
inline bool accept_error_is_shortage(int error) noexcept {
  return error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM;
}

// The back-off of an accept loop through a shortage: 10 ms doubling to 1 s between tries, one
// report when an episode starts and one when an accept succeeds again, never one per retry.
class AcceptBackoff {
 public:
  static constexpr std::chrono::milliseconds kFirstDelay{10};
  static constexpr std::chrono::milliseconds kMaxDelay{1000};
  static_assert(kFirstDelay <= kMaxDelay);

  // Called inside the catch block of a shortage; returns how long to wait before the next try.
  std::chrono::milliseconds failed() noexcept {
    ++failures_;
    if (failures_ == 1) {
      delay_ = kFirstDelay;
      report_server_error(
          "accept failed: retrying with a back-off from 10 ms up to 1 s, reported once until an "
          "accept succeeds");
    } else {
      delay_ = std::min(delay_ * 2, kMaxDelay);
    }
    return delay_;
  }

  // An accept succeeded: ends an episode, with its report.
  void succeeded() noexcept {
    if (failures_ == 0) return;
    try {
      report_exception(Loop::current(), {"accept succeeds again after " +
                                             std::to_string(failures_) + " failed attempts",
                                         nullptr, ""});
    } catch (...) {
    }
    failures_ = 0;
  }

  std::uint64_t failures() const noexcept { return failures_; }

 private:
  std::uint64_t failures_ = 0;  // in the current episode
  std::chrono::milliseconds delay_{0};
};

}  // namespace detail

// Accepts connections on listener and runs co_await handler(Stream) as one task per
// connection, until cancelled (asyncio's start_server + serve_forever, with a TaskGroup's
// rule): then it stops accepting, cancels the connection tasks, waits for them, and ends with
// CancelledError. The handler lives in serve's frame, which outlives every connection task, so
// a lambda handler may capture. What a handler throws goes to the loop's exception handler; an
// accept shortage (EMFILE...) backs off as Server's does.
template <class Handler>
Coro<> serve(const Socket& listener, Handler handler) {
  std::vector<Task<>> connections;
  std::size_t prune_at = 64;
  bool cancelled = false;
  detail::AcceptBackoff backoff;
  while (!cancelled) {
    std::chrono::milliseconds delay{0};
    try {
      Socket connection = co_await listener.accept();
      backoff.succeeded();
      connections.push_back(
          create_task(detail::run_connection(handler, Stream(std::move(connection)))));
    } catch (const CancelledError&) {
      cancelled = true;
      continue;
    } catch (const std::system_error& error) {
      int code = error.code().value();
      if (detail::accept_error_is_shortage(code))
        delay = backoff.failed();
      else if (!detail::accept_error_is_per_connection(code))
        throw;
    }
    if (connections.size() >= prune_at) {  // amortized: finished tasks go in batches
      std::erase_if(connections, [](const Task<>& task) { return task.done(); });
      prune_at = std::max<std::size_t>(64, 2 * connections.size());
    }
    if (delay.count() > 0) co_await sleep(delay);
  }
  for (Task<>& connection : connections) connection.cancel();
  co_await gather(return_exceptions, connections);
  throw CancelledError();
}

// start_server's options, with asyncio's defaults. The socket options are set on the listening
// socket, from which Linux copies them to every accepted one (and SO_RCVBUF must be set before
// listen() to take part in TCP's window scaling).
struct ServerOptions {
  int backlog = 100;             // listen()'s queue of connections not yet accepted
  bool reuse_address = true;     // SO_REUSEADDR: rebind at once after a restart (asyncio's default)
  bool reuse_port = false;       // SO_REUSEPORT: several sockets, maybe processes, share the port
  bool keep_alive = false;       // SO_KEEPALIVE on the connections
  bool nodelay = true;           // TCP_NODELAY on the connections (asyncio sets it too)
  int receive_buffer_bytes = 0;  // SO_RCVBUF; 0: the kernel's default
  int send_buffer_bytes = 0;     // SO_SNDBUF; 0: the kernel's default
  bool start_serving = true;     // false: accept only after start_serving() or serve_forever()
  // After close(), handlers still running this long after are cancelled (close_clients()).
  // Unset: wait_closed() waits for them as long as they run, as asyncio's does.
  std::optional<std::chrono::milliseconds> drain_timeout{};
  // In a running LoopGroup: accept on this loop only and run each connection's handler on the
  // group's loop with the fewest of this server's connections open (this one included; ties go
  // round robin), the socket passed along with a cross-loop call: Seastar's
  // connection_distribution, for kernels or workloads where SO_REUSEPORT (which hashes
  // connections, blind to load) balances badly. The handler is then called on every loop of the
  // group, from their threads: it must be safe to call concurrently. close_clients() cancels the
  // remote handlers, and wait_closed() waits for them. Outside a running group start_server
  // throws std::logic_error.
  bool hand_off_to_group = false;
  // Accept with one multishot SQE per listener (IORING_ACCEPT_MULTISHOT, Linux 5.19), re-armed
  // when the kernel ends it, instead of one accept SQE per connection: a burst of connections
  // is taken in one pass of the loop. false, or an older kernel: one SQE per connection.
  bool multishot_accept = true;
};

class Server;

namespace detail {

// A bound listening socket and, for a Unix socket file we created, what identifies the file, so
// that close() removes it only while it is still ours (asyncio 3.13's check).
struct Listener {
  Socket socket;
  std::string unix_path{};  // empty: not a socket file of ours to remove
  dev_t device = 0;
  ino_t inode = 0;
};

// One connection's task, and what identifies its socket for abort_clients: the fd number may
// have been closed by the handler and reused, so the socket's inode is checked first.
struct Connection {
  Task<> task;
  int fd = -1;
  ino_t inode = 0;
};

// What a Server and its tasks share. The tasks hold it through a shared_ptr taken into a local
// (not a parameter, which would live as long as the frame, held by the Task in connections: a
// cycle), so it lives until the Server and the last of its tasks are gone.
struct ServerState : std::enable_shared_from_this<ServerState> {
  std::function<Coro<>(Stream)> handler;
  ServerOptions options;
  std::vector<Socket> sockets;  // the listeners, in sockets() order; empty once closed
  std::vector<Listener> listeners;
  std::vector<Task<>> accept_tasks;
  // With multishot accept, listener i's stream of connections (empty otherwise). Here, not in
  // the accept task's frame, so that close() ends the SQE at once: the listening socket is
  // released in the same submit as its close, and a connect right after is refused.
  std::vector<std::optional<MultishotStream<MultishotAcceptOp>>> accept_streams;
  std::vector<Connection> connections;  // finished ones pruned in batches
  std::size_t prune_at = 64;
  std::size_t active_connections = 0;  // handlers not finished yet
  std::size_t active_acceptors = 0;    // accept loops not finished yet
  bool serving = false;
  bool closed = false;
  bool serving_forever = false;
  Event closed_and_idle;      // closed, no handler and no accept loop left: wait_closed returns
  Event serve_forever_ended;  // close() was called: serve_forever goes on to wait_closed
  Task<> drain_task;
  // hand_off_to_group: the group, this loop's index in it, and per loop how many of this
  // server's connections it runs now (this loop's thread only).
  LoopGroup* group = nullptr;
  std::size_t own_index = 0;
  std::vector<std::size_t> loads{};
  std::size_t next_loop = 0;

  void start_serving();
  void close();
  void close_clients();
  void abort_clients();
  void start_connection(Socket socket);
  std::size_t pick_loop() noexcept;
  void finished_one(std::size_t& counter) noexcept;
};

// Counts a handler or an accept loop from its creation to the end of its body (not of its frame,
// which the Task holding it may keep longer).
class ActiveToken {
 public:
  ActiveToken(ServerState& state, std::size_t& counter) noexcept
      : state_(&state), counter_(&counter) {
    ++counter;
  }
  ActiveToken(ActiveToken&& other) noexcept
      : state_(std::exchange(other.state_, nullptr)), counter_(other.counter_) {}
  ActiveToken& operator=(ActiveToken&&) = delete;
  ~ActiveToken() {
    if (state_ != nullptr) state_->finished_one(*counter_);
  }

 private:
  ServerState* state_;
  std::size_t* counter_;
};

// The server's tasks start eagerly, so that their bodies always run and move the shared_ptr out
// of the frame's parameters: a task cancelled before its first step (when the loop ends, say)
// would otherwise keep the state alive from its frame, held in turn by the state's Task list.
inline TaskOptions eager() { return TaskOptions{.eager = true}; }

inline Coro<> server_connection(std::shared_ptr<ServerState> state_param, ActiveToken token_param,
                                Stream stream) {
  std::shared_ptr<ServerState> state = std::move(state_param);
  ActiveToken token = std::move(token_param);  // released at the body's end
  try {
    co_await state->handler(std::move(stream));
  } catch (const std::exception&) {  // a CancelledError is no std::exception: it goes on
    report_server_error("a connection handler failed");
  }
}

// Counts a handed-off connection against its loop (ServerState::loads) while its task runs.
class LoadToken {
 public:
  explicit LoadToken(std::size_t& count) noexcept : count_(&count) { ++count; }
  LoadToken(const LoadToken&) = delete;
  LoadToken& operator=(const LoadToken&) = delete;
  ~LoadToken() { --*count_; }

 private:
  std::size_t* count_;
};

// A connection of a hand_off_to_group server: its handler runs on loop `target` (through a
// cross-loop call when that is another loop), and this task, on the server's loop, stands for it
// in the server's books (close_clients cancels it, which cancels the remote task, and waits).
inline Coro<> server_handed_off_connection(std::shared_ptr<ServerState> state_param,
                                           ActiveToken token_param, Socket socket_param,
                                           std::size_t target) {
  std::shared_ptr<ServerState> state = std::move(state_param);
  ActiveToken token = std::move(token_param);
  Socket socket = std::move(socket_param);
  LoadToken load(state->loads[target]);
  try {
    if (target == state->own_index) {
      co_await state->handler(Stream(std::move(socket)));
    } else {
      // The state outlives the call: this task holds it until the remote task has ended. The
      // socket travels in the work, so it is closed wherever the call ends, run or not.
      ServerState* shared = state.get();
      co_await state->group->loop(target).submit([shared, socket = std::move(socket)]() mutable {
        return shared->handler(Stream(std::move(socket)));
      });
    }
  } catch (const std::exception&) {  // a CancelledError is no std::exception: it goes on
    report_server_error("a connection handler failed");
  }
}

// Whether this kernel's accept takes IORING_ACCEPT_MULTISHOT (Linux 5.19; an older kernel
// fails the SQE with EINVAL, which a server would read as a broken listener).
inline bool kernel_has_multishot_accept() { return kernel_at_least(5, 19); }

inline Coro<> server_accept_loop(std::shared_ptr<ServerState> state_param, ActiveToken token_param,
                                 std::size_t index) {
  std::shared_ptr<ServerState> state = std::move(state_param);
  ActiveToken token = std::move(token_param);
  AcceptBackoff backoff;
  // One SQE for every connection where the kernel can (the stream start_serving made). close()
  // cancels the stream's SQE and this task before it closes the sockets, and a cancelled or
  // ended next() never re-arms; connections the stream queued are closed with it.
  std::optional<MultishotStream<MultishotAcceptOp>>& accepts = state->accept_streams.at(index);
  // close() cancels this loop and closes the sockets: past it, index names nothing. (The accept
  // SQE in flight holds its own reference to the socket, so the close cannot hurt it.)
  while (!state->closed) {
    std::chrono::milliseconds delay{0};
    try {
      Socket connection;
      if (accepts) {
        std::optional<Socket> next = co_await accepts->next();
        if (!next) break;  // ended: the loop is closing
        connection = std::move(*next);
      } else {
        connection = co_await state->sockets.at(index).accept();
      }
      backoff.succeeded();
      if (state->closed) break;  // accepted as close() ran: refused, as a later one would be
      state->start_connection(std::move(connection));
    } catch (const std::system_error& error) {
      int code = error.code().value();
      if (accept_error_is_shortage(code)) {
        delay = backoff.failed();
      } else if (!accept_error_is_per_connection(code)) {
        report_server_error("accept failed: this listening socket stops accepting");
        co_return;
      }
    }
    if (delay.count() > 0) co_await sleep(delay);
  }
}

inline Coro<> server_drain(std::shared_ptr<ServerState> state_param,
                           std::chrono::milliseconds timeout) {
  std::shared_ptr<ServerState> state = std::move(state_param);
  co_await sleep(timeout);
  state->close_clients();
}

inline void ServerState::start_serving() {
  if (closed) throw std::logic_error("start_serving: the server is closed");
  if (serving) return;
  for (Socket& socket : sockets)
    if (::listen(socket.fd(), options.backlog) != 0)
      throw std::system_error(errno, std::system_category(), "start_serving: listen");
  serving = true;
  bool multishot = options.multishot_accept && kernel_has_multishot_accept();
  for (Socket& socket : sockets) {
    accept_streams.emplace_back();
    if (multishot) accept_streams.back().emplace(multishot_accept(socket));
  }
  for (std::size_t i = 0; i < sockets.size(); ++i)
    accept_tasks.push_back(create_task(
        server_accept_loop(shared_from_this(), ActiveToken(*this, active_acceptors), i), eager()));
}

inline void ServerState::start_connection(Socket socket) {
  struct stat status {};
  ino_t inode = ::fstat(socket.fd(), &status) == 0 ? status.st_ino : 0;
  int fd = socket.fd();
  Task<> task = group == nullptr
                    ? create_task(server_connection(shared_from_this(),
                                                    ActiveToken(*this, active_connections),
                                                    Stream(std::move(socket))),
                                  eager())
                    : create_task(server_handed_off_connection(
                                      shared_from_this(), ActiveToken(*this, active_connections),
                                      std::move(socket), pick_loop()),
                                  eager());
  if (connections.size() >= prune_at) {  // amortized: finished tasks go in batches
    std::erase_if(connections, [](const Connection& c) { return c.task.done(); });
    prune_at = std::max<std::size_t>(64, 2 * connections.size());
  }
  connections.push_back({std::move(task), fd, inode});
}

// The loop with the fewest of this server's connections, the search starting after the last one
// chosen so that equal loads take turns.
inline std::size_t ServerState::pick_loop() noexcept {
  std::size_t n = loads.size();
  std::size_t best = next_loop % n;
  for (std::size_t k = 1; k < n; ++k) {
    std::size_t i = (next_loop + k) % n;
    if (loads[i] < loads[best]) best = i;
  }
  next_loop = best + 1;
  return best;
}

// asyncio's close(): stop accepting and close the listeners now; the handlers go on.
inline void ServerState::close() {
  if (closed) return;
  closed = true;
  serving = false;
  for (auto& accepts : accept_streams)
    if (accepts) accepts->cancel();
  for (Task<>& task : accept_tasks) task.cancel();
  // The accept SQEs hold their own reference to the socket: closing the fd now is safe, and
  // their cancel (above) is what ends them.
  for (Listener& listener : listeners) {
    struct stat status {};
    if (!listener.unix_path.empty() && ::stat(listener.unix_path.c_str(), &status) == 0 &&
        status.st_dev == listener.device && status.st_ino == listener.inode)
      ::unlink(listener.unix_path.c_str());
  }
  listeners.clear();
  sockets.clear();
  serve_forever_ended.set();
  if (options.drain_timeout && active_connections > 0)
    drain_task = create_task(server_drain(shared_from_this(), *options.drain_timeout), eager());
  if (active_connections == 0 && active_acceptors == 0) closed_and_idle.set();
}

inline void ServerState::close_clients() {
  for (Connection& connection : connections)
    if (!connection.task.done()) connection.task.cancel();
}

// Shuts the sockets down (a reset, by SO_LINGER 0, when the handler closes them): a handler's
// pending read sees the end of the stream, its writes fail. Only sockets whose fd still names the
// socket accepted (same inode): a handler may have closed its stream and the number been reused.
inline void ServerState::abort_clients() {
  for (Connection& connection : connections) {
    if (connection.task.done()) continue;
    struct stat status {};
    if (::fstat(connection.fd, &status) != 0 || status.st_ino != connection.inode ||
        !S_ISSOCK(status.st_mode))
      continue;
    linger reset{1, 0};
    ::setsockopt(connection.fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
    ::shutdown(connection.fd, SHUT_RDWR);
  }
}

inline void ServerState::finished_one(std::size_t& counter) noexcept {
  RINGLOOP_ASSERT(counter > 0, "a server's count of running tasks went below zero");
  --counter;
  if (!closed || active_connections > 0 || active_acceptors > 0) return;
  try {
    if (drain_task.valid() && !drain_task.done()) drain_task.cancel();
    closed_and_idle.set();
  } catch (...) {  // the loop is gone: nobody can be waiting
  }
}

// Binds one listening socket (without listen(): start_serving does that) with options set.
inline Socket bind_stream_socket(const SocketAddress& address, const ServerOptions& options,
                                 const std::string& description) {
  Socket socket(::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!socket)
    throw std::system_error(errno, std::system_category(),
                            "start_server: socket for " + description);
  auto set = [&](int level, int name, int value) {
    if (::setsockopt(socket.fd(), level, name, &value, sizeof(value)) != 0)
      throw std::system_error(errno, std::system_category(),
                              "start_server: setsockopt on " + description);
  };
  bool inet = address.family() == AF_INET || address.family() == AF_INET6;
  if (inet && options.reuse_address) set(SOL_SOCKET, SO_REUSEADDR, 1);
  if (options.reuse_port) set(SOL_SOCKET, SO_REUSEPORT, 1);
  // asyncio's rule: an IPv6 socket listens to IPv6 only (Linux's default is dual stack), so
  // that "" can bind 0.0.0.0 and :: side by side.
  if (address.family() == AF_INET6) set(IPPROTO_IPV6, IPV6_V6ONLY, 1);
  if (inet && options.nodelay) set(IPPROTO_TCP, TCP_NODELAY, 1);
  if (options.keep_alive) set(SOL_SOCKET, SO_KEEPALIVE, 1);
  if (options.receive_buffer_bytes > 0) set(SOL_SOCKET, SO_RCVBUF, options.receive_buffer_bytes);
  if (options.send_buffer_bytes > 0) set(SOL_SOCKET, SO_SNDBUF, options.send_buffer_bytes);
  if (::bind(socket.fd(), address.get(), address.length) != 0)
    throw std::system_error(errno, std::system_category(), "start_server: bind to " + description);
  return socket;
}

}  // namespace detail

// The addresses start_server binds for host and port: "" for every interface (0.0.0.0 and ::, as
// asyncio's host=None), else every address the host resolves to (getaddrinfo with AI_PASSIVE,
// off the loop for a name, at once for a numeric address; duplicates dropped), as asyncio binds
// each of them. A name that does not resolve is a GaiError naming it.
inline Coro<std::vector<SocketAddress>> addresses_to_bind(std::string host, std::uint16_t port) {
  if (host.empty())
    co_return std::vector<SocketAddress>{make_address("0.0.0.0", port), make_address("::", port)};
  if (host == "localhost")  // as make_address has it
    co_return std::vector<SocketAddress>{make_address("127.0.0.1", port)};
  std::vector<AddrInfo> infos =
      co_await getaddrinfo(std::move(host), port, AF_UNSPEC, SOCK_STREAM, 0, AI_PASSIVE);
  std::vector<SocketAddress> addresses;
  for (const AddrInfo& info : infos) {
    bool seen = false;
    for (const SocketAddress& address : addresses)
      seen = seen || (address.length == info.address.length &&
                      std::memcmp(&address.storage, &info.address.storage, address.length) == 0);
    if (!seen) addresses.push_back(info.address);
  }
  co_return addresses;
}

// asyncio's Server: listening sockets and the connections accepted on them, one task each
// running the handler. Moving a Server moves the handle; destroying it closes it (the handlers
// go on to their end). All of it runs on the loop that created it.
class Server {
 public:
  Server() = default;
  explicit Server(std::shared_ptr<detail::ServerState> state) noexcept : state_(std::move(state)) {}
  Server(Server&&) noexcept = default;
  Server& operator=(Server&& other) noexcept {
    if (this != &other) {
      close_quietly();
      state_ = std::move(other.state_);
    }
    return *this;
  }
  ~Server() { close_quietly(); }

  // Starts accepting (listen(), then one accept loop per socket); nothing if serving already.
  // asyncio's is a coroutine; this one has nothing to wait for.
  void start_serving() { state().start_serving(); }
  bool is_serving() const { return state().serving; }

  // Serves until close() (then returns once wait_closed() would) or until cancelled (then
  // closes, waits as wait_closed(), and throws CancelledError). asyncio's raises CancelledError
  // in both cases; returning normally when another task closed the server says what happened.
  Coro<> serve_forever() {
    std::shared_ptr<detail::ServerState> state = state_;
    if (!state) throw std::logic_error("serve_forever: empty Server (moved from?)");
    if (state->closed) throw std::logic_error("serve_forever: the server is closed");
    if (state->serving_forever) throw std::logic_error("serve_forever: already running");
    state->serving_forever = true;
    state->start_serving();
    bool cancelled = false;
    try {
      co_await state->serve_forever_ended.wait();
    } catch (const CancelledError&) {
      cancelled = true;
    }
    state->serving_forever = false;
    state->close();
    co_await state->closed_and_idle.wait();
    if (cancelled) throw CancelledError();
  }

  // Stops accepting and closes the listening sockets (and removes a Unix socket file the server
  // created, if it is still the one it created). Running handlers go on. Idempotent.
  void close() { state().close(); }

  // Returns once the server is closed and every handler has finished (asyncio 3.12.1's rule:
  // waits for the close too, in either order).
  Coro<> wait_closed() {
    std::shared_ptr<detail::ServerState> state = state_;
    if (!state) throw std::logic_error("wait_closed: empty Server (moved from?)");
    co_await state->closed_and_idle.wait();
  }

  // Cancels every running handler (asyncio 3.13's close_clients closes their transports; here a
  // handler unwinds from its await, and its Stream closes as it goes).
  void close_clients() { state().close_clients(); }
  // Shuts every connection down at once, with a reset (asyncio 3.13's abort_clients): a
  // handler's read sees the end of the stream, its writes fail, and it ends as it handles that.
  void abort_clients() { state().abort_clients(); }

  // The listening sockets; empty once closed.
  const std::vector<Socket>& sockets() const { return state().sockets; }
  // Handlers not finished yet.
  std::size_t active_connections() const { return state().active_connections; }

 private:
  detail::ServerState& state() const {
    if (!state_) throw std::logic_error("use of an empty Server (moved from?)");
    return *state_;
  }
  void close_quietly() noexcept {
    if (!state_ || state_->closed) return;
    try {
      state_->close();
    } catch (...) {  // the loop is gone: its tasks went with it
    }
  }

  std::shared_ptr<detail::ServerState> state_;
};

namespace detail {

// The handler as the server stores it. One that returns Coro<> is stored as it is; another
// (returning a Task, or any awaitable) is wrapped in a coroutine that awaits it.
template <class Handler>
std::function<Coro<>(Stream)> server_handler(Handler handler) {
  using Result = std::invoke_result_t<Handler&, Stream>;
  if constexpr (std::is_same_v<Result, Coro<>>) {
    return std::function<Coro<>(Stream)>(std::move(handler));
  } else {
    // The std::function lives in the server's state, which outlives every handler's frame.
    return [handler = std::move(handler)](Stream stream) mutable -> Coro<> {
      co_await handler(std::move(stream));
    };
  }
}

template <class Handler>
Server make_server(Handler handler, std::vector<Listener> listeners, ServerOptions options) {
  auto state = std::make_shared<ServerState>();
  state->handler = server_handler(std::move(handler));
  state->options = std::move(options);
  if (state->options.hand_off_to_group) {
    const char* who = "start_server with hand_off_to_group";
    state->group = &LoopGroup::current(who);
    state->own_index = LoopGroup::current_index(who);
    state->loads.assign(state->group->size(), 0);
  }
  for (Listener& listener : listeners) state->sockets.push_back(std::move(listener.socket));
  state->listeners = std::move(listeners);
  if (state->sockets.empty()) throw std::invalid_argument("start_server: no address to bind");
  bool start = state->options.start_serving;
  Server server(std::move(state));
  if (start) server.start_serving();
  return server;
}

}  // namespace detail

// Binds host:port (each of hosts, for the overload that takes several) and returns a Server
// that runs co_await handler(Stream) in a task of its own for each connection accepted. What a
// handler throws goes to the loop's exception handler; the server goes on. Binding is plain
// system calls; a coroutine as asyncio's, so that `co_await start_server(...)` reads the same.
template <class Handler>
Coro<Server> start_server(Handler handler, std::vector<std::string> hosts, std::uint16_t port,
                          ServerOptions options = {}) {
  std::vector<detail::Listener> listeners;
  for (const std::string& host : hosts) {
    std::vector<SocketAddress> addresses = co_await addresses_to_bind(host, port);
    for (const SocketAddress& address : addresses) {
      std::string description = "'" + host + "' port " + std::to_string(port);
      try {
        listeners.push_back({detail::bind_stream_socket(address, options, description)});
      } catch (const std::system_error& error) {
        // "" on a machine without IPv6: the IPv4 socket serves.
        if (host.empty() && address.family() == AF_INET6 &&
            (error.code().value() == EAFNOSUPPORT || error.code().value() == EADDRNOTAVAIL))
          continue;
        throw;
      }
    }
  }
  co_return detail::make_server(std::move(handler), std::move(listeners), std::move(options));
}

template <class Handler>
Coro<Server> start_server(Handler handler, std::string host, std::uint16_t port,
                          ServerOptions options = {}) {
  return start_server(std::move(handler), std::vector<std::string>{std::move(host)}, port,
                      std::move(options));
}

}  // namespace ringloop
