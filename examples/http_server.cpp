// http_server PORT [--loops N] [--pin] [--host HOST] [--idle SECONDS]: TechEmpower's
// "plaintext" server on ringloop. HTTP/1.1 with keep-alive and pipelining: every complete request
// in what one read brought is answered, and the answers go out in one send, before the next read.
// Every request gets "Hello, World!" (text/plain, with Content-Length, Server and a Date updated
// once a second; HEAD without the body, other methods than GET and HEAD a 405). "Connection:
// close" is honoured, HTTP/1.0 closes unless it asks for keep-alive. A bad request is answered 400
// (431 for a head over 8 KiB, 501 for a Transfer-Encoding, 505 for another HTTP version) and the
// connection closed. A connection with no complete request for SECONDS (default 30) is shut down.
//
// --loops N runs a LoopGroup of N loops, each on its own thread with its own ring; each loop's
// main starts its own Server on the same port (SO_REUSEPORT: every loop has its own listening
// socket, and the kernel spreads the connections). --pin pins loop i to the i-th CPU the process
// may use (run_per_core; more loops than CPUs is refused). Loop 0 listens first (with PORT 0 the
// kernel picks the port), then starts the others on its port one after the other, and reads
// SIGINT and SIGTERM from a signalfd through its ring; either one stops every loop cleanly (loop
// 0 sets each loop's stop Event with a cross-loop call; each closes its server and its
// connections), and the process exits 0. Listens on 127.0.0.1; prints
// "http_server: listening on HOST port P with N loop(s)" once every loop is serving.
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <ringloop/ringloop.hpp>

#include "examples/http/request_scanner.hpp"
#include "examples/server_process.hpp"

using ringloop::Coro;
using ringloop::Socket;
using ringloop::Stream;
using Clock = std::chrono::steady_clock;
namespace http = http_example;

namespace {

constexpr std::string_view kBody = "Hello, World!";
// A head is at most 8 KiB, so after a read that left an incomplete one there is room for 8 KiB
// more: a whole head always fits.
constexpr std::size_t kReadBufferBytes = 2 * http::kMaxHeadBytes;
static_assert(kReadBufferBytes >= 2 * http::kMaxHeadBytes);
// After the last response of a closing connection: how long and how much of what the client
// still sends is read and dropped before the close, so that the close sends a FIN and not a
// reset that could destroy the response in flight (nginx's lingering close).
constexpr std::chrono::milliseconds kLingerTime{1000};
constexpr std::size_t kLingerBytes = 64 * 1024;
// The Stream's default high-water mark: above it, drain() waits.
constexpr std::size_t kDrainAboveBytes = 64 * 1024;

// The Date field, and the whole keep-alive response (the one nearly every request gets), made
// again when the second changes: a loop checks the coarse clock once per read, a vDSO call.
class DateCache {
 public:
  void refresh() {
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME_COARSE, &now);
    if (now.tv_sec == second_) return;
    second_ = now.tv_sec;
    tm utc{};
    ::gmtime_r(&now.tv_sec, &utc);
    char date[64];
    std::size_t n = std::strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &utc);
    date_.assign(date, n);
    ok_keep_alive_ = head("200 OK", "Content-Type: text/plain\r\n", kBody.size(), "");
    ok_keep_alive_ += kBody;
  }
  const std::string& ok_keep_alive() const { return ok_keep_alive_; }

  // A response head: status line, the fields every response has, extra ones, the blank line.
  std::string head(std::string_view status, std::string_view fields, std::size_t content_length,
                   std::string_view connection) const {
    std::string out;
    out.reserve(192);
    out.append("HTTP/1.1 ").append(status).append("\r\nServer: ringloop\r\nDate: ");
    out.append(date_).append("\r\n").append(fields);
    out.append("Content-Length: ").append(std::to_string(content_length)).append("\r\n");
    if (!connection.empty()) out.append("Connection: ").append(connection).append("\r\n");
    out.append("\r\n");
    return out;
  }

 private:
  time_t second_ = -1;
  std::string date_;
  std::string ok_keep_alive_;
};

// A connection as the idle sweep sees it: in a list of the loop's connections while its handler
// runs, with the time of its last complete request.
struct Tracked {
  Tracked* previous = nullptr;
  Tracked* next = nullptr;
  int fd = -1;
  Clock::time_point last_request{};
};

// What one loop's connections share, and the loop's part in the group's start and stop: all used
// on that loop's thread only (loop 0 sets the Events through cross-loop calls that run there),
// so nothing here is locked. Owned by main(), it outlives the group: main() reads the counters.
struct LoopState {
  DateCache date;
  Tracked connections;  // the list's head (a sentinel)
  std::chrono::milliseconds idle{30000};
  unsigned long accepted = 0;
  unsigned long requests = 0;
  unsigned long refused = 0;  // answered 4xx/5xx and closed
  std::uint16_t port = 0;     // loops 1..N-1: where loop 0 listens, given with `start`
  ringloop::Event start;      // loops 1..N-1: loop 0 listens; listen on `port` too
  ringloop::Event serving;    // loops 1..N-1: this loop listens
  ringloop::Event stop;       // a signal came: close the server and the connections

  LoopState() { connections.previous = connections.next = &connections; }
};

// Registers a connection with the sweep for as long as its handler has it open.
class TrackedConnection {
 public:
  TrackedConnection(LoopState& loop, int fd) : head_(&loop.connections) {
    entry_.fd = fd;
    entry_.last_request = Clock::now();
    entry_.previous = head_;
    entry_.next = head_->next;
    head_->next->previous = &entry_;
    head_->next = &entry_;
  }
  TrackedConnection(const TrackedConnection&) = delete;
  TrackedConnection& operator=(const TrackedConnection&) = delete;
  ~TrackedConnection() { leave(); }

  void touch(Clock::time_point now) noexcept { entry_.last_request = now; }
  // Before the descriptor is closed: the sweep must never shut down a number reused since.
  void leave() noexcept {
    if (entry_.next == nullptr) return;
    entry_.previous->next = entry_.next;
    entry_.next->previous = entry_.previous;
    entry_.next = entry_.previous = nullptr;
  }

 private:
  Tracked* head_;
  Tracked entry_;
};

// Shuts down, once a second, every connection whose last complete request is older than idle: a
// receive waiting on it sees the end of the stream, a send stuck on it fails, and its handler
// ends. One timer for the whole loop instead of a linked timeout on every receive.
Coro<> sweep_idle(LoopState& loop) {
  for (;;) {
    co_await ringloop::sleep(
        std::min<std::chrono::milliseconds>(loop.idle, std::chrono::seconds(1)));
    Clock::time_point now = Clock::now();
    for (Tracked* t = loop.connections.next; t != &loop.connections; t = t->next)
      if (now - t->last_request > loop.idle) ::shutdown(t->fd, SHUT_RDWR);
  }
}

// The answer to a head the scanner refused; the connection closes after it.
std::string refusal(const LoopState& loop, http::ScanStatus status) {
  std::string_view line = "400 Bad Request";
  if (status == http::ScanStatus::too_large) line = "431 Request Header Fields Too Large";
  if (status == http::ScanStatus::not_implemented) line = "501 Not Implemented";
  if (status == http::ScanStatus::version_not_supported) line = "505 HTTP Version Not Supported";
  std::string body = std::string(line.substr(4)) + "\n";
  return loop.date.head(line, "Content-Type: text/plain\r\n", body.size(), "close") + body;
}

// Appends the response to one complete request.
void respond(const LoopState& loop, const http::Request& request, std::string& out) {
  bool head_only = request.method == "HEAD";
  if (request.method != "GET" && !head_only) {
    std::string_view body = "Method Not Allowed\n";
    out +=
        loop.date.head("405 Method Not Allowed", "Allow: GET, HEAD\r\nContent-Type: text/plain\r\n",
                       body.size(), request.keep_alive ? "" : "close");
    out += body;
    return;
  }
  if (request.keep_alive && request.minor_version == 1 && !head_only) {
    out += loop.date.ok_keep_alive();  // the fast path
    return;
  }
  std::string_view connection = !request.keep_alive          ? "close"
                                : request.minor_version == 0 ? "keep-alive"
                                                             : "";
  out += loop.date.head("200 OK", "Content-Type: text/plain\r\n", kBody.size(), connection);
  if (!head_only) out += kBody;
}

// After the last response: no more sending, and what the client still sends is read and dropped
// (bounded in time and bytes) until its end, so that closing does not reset the connection
// before the client has read the response.
Coro<> linger(const Socket& socket, std::span<char> buffer) {
  try {
    co_await socket.shutdown(SHUT_WR);
    std::size_t dropped = 0;
    Clock::time_point deadline = Clock::now() + kLingerTime;
    while (dropped < kLingerBytes) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) break;
      std::size_t received =
          co_await ringloop::wait_for(socket.recv(buffer.data(), buffer.size()), left);
      if (received == 0) break;
      dropped += received;
    }
  } catch (const std::exception&) {  // TimeoutError, a reset: close now
  }
}

// One connection: read, answer every complete request in the buffer, send the answers together,
// read again. Reads go to the socket directly into the connection's buffer (the scanner needs
// the bytes in one piece); writes go through the Stream, whose flush task sends in the
// background.
Coro<> serve_http(Stream stream, LoopState& loop) {
  ++loop.accepted;
  const Socket& socket = stream.socket();
  TrackedConnection tracked(loop, socket.fd());
  std::unique_ptr<char[]> buffer(new char[kReadBufferBytes]);
  std::size_t used = 0;
  std::size_t body_left = 0;  // of the last request's body, still to skip
  std::string out;
  bool open = true;
  bool closing = false;  // the last answer said "Connection: close"
  while (open) {
    std::size_t received = 0;
    try {
      received = co_await socket.recv(buffer.get() + used, kReadBufferBytes - used);
    } catch (const std::system_error&) {  // a reset: nobody to answer
      break;
    }
    if (received == 0) break;
    used += received;
    loop.date.refresh();
    std::size_t start = 0;
    for (;;) {
      std::size_t skip = std::min(body_left, used - start);
      start += skip;
      body_left -= skip;
      if (body_left > 0) break;
      http::ScanResult scan = http::scan_request({buffer.get() + start, used - start});
      if (scan.status == http::ScanStatus::incomplete) break;
      if (scan.status != http::ScanStatus::complete) {
        out += refusal(loop, scan.status);
        ++loop.refused;
        open = false;
        closing = true;
        break;
      }
      ++loop.requests;
      respond(loop, scan.request, out);
      start += scan.request.head_bytes;
      body_left = scan.request.content_length;
      if (!scan.request.keep_alive) {
        open = false;
        closing = true;
        break;
      }
    }
    if (start > 0) {
      std::memmove(buffer.get(), buffer.get() + start, used - start);
      used -= start;
      tracked.touch(Clock::now());
    }
    // Every answer of this read in one send, not awaited: the Stream's flush task prepares the
    // send at once, so it reaches the kernel in the same io_uring_enter as the next recv (one
    // enter per round instead of two). A client that does not read its answers lets them queue
    // up to the Stream's high-water mark, and then reading waits for the queue (drain()).
    try {
      if (out.empty()) {
      } else if (open) {
        stream.write(out);
        if (stream.get_write_buffer_size() > kDrainAboveBytes) co_await stream.drain();
      } else {
        co_await stream.write(out);  // the last answer, sent before the lingering close
      }
    } catch (const std::exception&) {  // a reset, or the idle sweep's shutdown
      open = false;
      closing = false;
    }
    out.clear();
  }
  tracked.leave();
  if (closing) co_await linger(socket, std::span<char>(buffer.get(), kReadBufferBytes));
  try {
    co_await stream.close();
  } catch (const std::exception&) {
  }
}

// Runs on loop i, submitted by loop 0: gives loop i's main the port and returns once it listens.
// (A function, not a lambda coroutine: its parameters live in its frame.)
Coro<> start_on(LoopState& loop, std::uint16_t port) {
  loop.port = port;
  loop.start.set();
  co_await loop.serving.wait();
}

// Loop 0's part, on the group's behalf, while its own server listens on port: starts the other
// loops on that port one after the other (each call returns once that loop listens), says so,
// then waits for SIGINT or SIGTERM and tells every other loop to stop.
Coro<> lead(std::vector<LoopState>& loops, const std::string& host, std::uint16_t port,
            int signal_fd) {
  ringloop::LoopGroup& group = ringloop::LoopGroup::current("http_server");
  for (std::size_t i = 1; i < loops.size(); ++i) {
    co_await group.loop(i).submit([&other = loops[i], port] { return start_on(other, port); });
  }
  std::printf("http_server: listening on %s port %u with %zu loop%s\n", host.c_str(),
              static_cast<unsigned>(port), loops.size(), loops.size() == 1 ? "" : "s");
  std::fflush(stdout);
  signalfd_siginfo signal{};
  co_await ringloop::io::read(signal_fd, &signal, sizeof(signal));
  std::printf("http_server: %s: closing the connections\n",
              strsignal(static_cast<int>(signal.ssi_signo)));
  std::fflush(stdout);
  for (std::size_t i = 1; i < loops.size(); ++i)
    co_await group.loop(i).call([&other = loops[i]] { other.stop.set(); });
}

// Loop index's main: a Server on host:port (SO_REUSEPORT, so that every loop has its own
// listening socket on the port; loops 1..N-1 take loop 0's port), serving until a signal stops
// the group, then closed with its connections. A failure (a port taken) ends this main with it,
// and the group cancels the others (LoopGroupOptions::on_error) and rethrows it from run().
Coro<> serve_loop(std::size_t index, std::vector<LoopState>& loops, std::string host,
                  std::uint16_t port, int signal_fd) {
  LoopState& loop = loops[index];
  if (index > 0) {
    co_await loop.start.wait();
    port = loop.port;
  }
  auto handler = [&loop](Stream s) { return serve_http(std::move(s), loop); };
  // A deep accept queue: wrk opens its connections all at once.
  ringloop::ServerOptions options{.backlog = 4096, .reuse_port = true};
  ringloop::Server server = co_await ringloop::start_server(handler, host, port, options);
  ringloop::Task<> sweep = ringloop::create_task(sweep_idle(loop));
  if (index == 0) {
    co_await lead(loops, host, ringloop::local_port(server.sockets()[0]), signal_fd);
  } else {
    loop.serving.set();
    co_await loop.stop.wait();
  }
  server.close();
  server.close_clients();
  co_await server.wait_closed();
  sweep.cancel();
  try {
    co_await sweep;
  } catch (const ringloop::CancelledError&) {
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  long port = -1, loops_wanted = 1;
  double idle_seconds = 30;
  bool pin = false;
  bool usage_error = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    bool has_value = i + 1 < argc;
    if (arg == "--loops" && has_value)
      loops_wanted = std::strtol(argv[++i], nullptr, 10);
    else if (arg == "--pin")
      pin = true;
    else if (arg == "--host" && has_value)
      host = argv[++i];
    else if (arg == "--idle" && has_value)
      idle_seconds = std::strtod(argv[++i], nullptr);
    else if (port < 0 && !arg.starts_with("-"))
      port = std::strtol(argv[i], nullptr, 10);
    else
      usage_error = true;
  }
  if (usage_error || port < 0 || port > 65535 || loops_wanted < 1 || loops_wanted > 256 ||
      !(idle_seconds > 0)) {
    std::fprintf(stderr,
                 "usage: http_server PORT [--loops N (1)] [--pin] [--host HOST (127.0.0.1)] "
                 "[--idle SECONDS (30)]\n");
    return 2;
  }
  examples::raise_open_file_limit();
  int signal_fd = examples::stop_signal_fd();
  if (signal_fd < 0) {
    std::perror("http_server: signalfd");
    return 1;
  }
  auto loop_count = static_cast<std::size_t>(loops_wanted);
  std::vector<LoopState> loops(loop_count);
  for (LoopState& loop : loops)
    loop.idle = std::chrono::milliseconds(static_cast<long>(idle_seconds * 1000));
  auto main_of = [&loops, host, bind_port = static_cast<std::uint16_t>(port),
                  signal_fd](std::size_t index) {
    return serve_loop(index, loops, host, bind_port, signal_fd);
  };
  try {
    if (pin) {
      ringloop::run_per_core(loop_count, main_of);
    } else {
      ringloop::LoopGroup group({.loops = loop_count});
      group.run(main_of);
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "http_server: %s\n", error.what());
    return 1;
  }
  unsigned long accepted = 0, requests = 0, refused = 0;
  for (const LoopState& loop : loops) {
    accepted += loop.accepted;
    requests += loop.requests;
    refused += loop.refused;
  }
  std::printf("http_server: answered %lu requests on %lu connections (%lu refused); bye\n",
              requests, accepted, refused);
  return 0;
}
