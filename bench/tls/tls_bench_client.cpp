// tls_bench_client: the one TLS client of the tls_* scenarios (bench/tls/tls_peer.sh runs it
// against every server), so the client's half of the crypto and of the system calls is the same
// for all of them. Plain OpenSSL 3 on non-blocking sockets and epoll, one thread (handshakes: one
// blocking thread per connection), not ringloop: the client must not favour one of the servers,
// and this is the cheapest client OpenSSL allows (read-ahead: one read(2) per record).
//
//   tls_bench_client echo      PORT CONNS SECS BYTES CA [SERVER_PID]
//   tls_bench_client handshake PORT CONNS SECS 1     CA [SERVER_PID]
//   tls_bench_client bulk      PORT 1     0    BYTES CA [SERVER_PID]
//
// echo: CONNS connections, each sends BYTES and reads the echo back, for SECS (round trips/s,
// p99). handshake: CONNS threads, each in a loop: connect, full TLS 1.3 handshake, one byte
// echoed (the server has finished its side), close_notify, close (handshakes/s, p99). bulk: one
// connection streams BYTES to the server and reads the echo concurrently (MB/s one way: the
// server decrypts and re-encrypts every byte). Every connection must negotiate TLS 1.3,
// TLS_AES_128_GCM_SHA256 and X25519 (the only ones offered) and verify the server's certificate
// against CA for "localhost"; anything else ends the run with a message and exit status 1.
// With SERVER_PID, the server's CPU time over the timed part is read from /proc.
// One key=value line on stdout (tls_peer.sh adds peer=).
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kVersion = "TLSv1.3";
constexpr const char* kCipher = "TLS_AES_128_GCM_SHA256";
constexpr const char* kGroup = "X25519";
constexpr const char* kServerName = "localhost";

[[noreturn]] __attribute__((format(printf, 1, 2))) void die(const char* format, ...) {
  std::va_list args;
  va_start(args, format);
  std::fputs("tls_bench_client: ", stderr);
  std::vfprintf(stderr, format, args);
  va_end(args);
  char reason[256];
  if (unsigned long code = ERR_get_error()) {
    ERR_error_string_n(code, reason, sizeof reason);
    std::fprintf(stderr, " (%s)", reason);
  }
  std::fputc('\n', stderr);
  std::exit(1);
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double cpu_s_self() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// utime + stime of a process (all its threads), from /proc/PID/stat; 0 without a pid.
double cpu_s_of(long pid) {
  if (pid <= 0) return 0;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  std::size_t after_name = text.rfind(')');  // the command name may hold spaces
  if (after_name == std::string::npos) die("cannot read /proc/%ld/stat: the server is gone", pid);
  // Fields from the third on (state) follow the name; utime and stime are fields 14 and 15.
  const char* cursor = text.c_str() + after_name + 2;
  for (int field = 3; field < 14; ++field) cursor = std::strchr(cursor, ' ') + 1;
  char* end = nullptr;
  unsigned long long utime = std::strtoull(cursor, &end, 10);
  unsigned long long stime = std::strtoull(end, nullptr, 10);
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// CPU of this process and of the server over the timed part.
struct CpuMeter {
  explicit CpuMeter(long pid) : server_pid(pid), server_start(cpu_s_of(pid)) {}

  long server_pid;
  double server_start;
  double self_start = cpu_s_self();
  Clock::time_point start = Clock::now();

  // " client_cpu_pct=.. server_cpu_pct=.. server_cpu_us_per_op=.."
  std::string keys(double elapsed_s, double ops) const {
    double self = cpu_s_self() - self_start;
    char text[160];
    int length = std::snprintf(text, sizeof text, " client_cpu_pct=%.0f", 100 * self / elapsed_s);
    if (server_pid > 0) {
      double server = cpu_s_of(server_pid) - server_start;
      std::snprintf(text + length, sizeof text - static_cast<std::size_t>(length),
                    " server_cpu_pct=%.0f server_cpu_us_per_op=%.2f", 100 * server / elapsed_s,
                    ops > 0 ? server * 1e6 / ops : 0.0);
    }
    return text;
  }
};

SSL_CTX* make_context(const char* ca_file) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) die("SSL_CTX_new");
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  if (SSL_CTX_set_ciphersuites(ctx, kCipher) != 1) die("cipher suite %s", kCipher);
  if (SSL_CTX_set1_groups_list(ctx, kGroup) != 1) die("group %s", kGroup);
  if (SSL_CTX_load_verify_locations(ctx, ca_file, nullptr) != 1) die("CA file %s", ca_file);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);  // every handshake is a full one
  SSL_CTX_set_read_ahead(ctx, 1);  // a record in one read(2), not a header and then a body
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  return ctx;
}

int connect_loopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket: %s", std::strerror(errno));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    die("connect to 127.0.0.1:%d: %s", port, std::strerror(errno));
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// What every connection must have negotiated; the first connection's names go in the output.
std::string negotiated(SSL* ssl) {
  std::string version = SSL_get_version(ssl);
  const char* cipher = SSL_get_cipher_name(ssl);
  const char* group = SSL_group_to_name(ssl, static_cast<int>(SSL_get_negotiated_group(ssl)));
  if (version != kVersion || cipher == nullptr || std::strcmp(cipher, kCipher) != 0 ||
      group == nullptr || ::strcasecmp(group, kGroup) != 0)  // OpenSSL says "x25519"
    die("negotiated %s %s %s, not %s %s %s", version.c_str(), cipher ? cipher : "?",
        group ? group : "?", kVersion, kCipher, kGroup);
  return std::string(" version=") + kVersion + " cipher=" + kCipher + " group=" + kGroup;
}

// A blocking TLS connection, its handshake done and checked.
SSL* connect_tls(SSL_CTX* ctx, int port) {
  int fd = connect_loopback(port);
  SSL* ssl = SSL_new(ctx);
  if (ssl == nullptr) die("SSL_new");
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, kServerName);
  SSL_set1_host(ssl, kServerName);
  if (SSL_connect(ssl) != 1) die("handshake with 127.0.0.1:%d failed", port);
  negotiated(ssl);
  return ssl;
}

void write_all_blocking(SSL* ssl, const char* data, std::size_t size) {
  for (std::size_t sent = 0, n = 0; sent < size; sent += n)
    if (SSL_write_ex(ssl, data + sent, size - sent, &n) != 1) die("write failed");
}

void read_exactly_blocking(SSL* ssl, char* data, std::size_t size) {
  for (std::size_t got = 0, n = 0; got < size; got += n)
    if (SSL_read_ex(ssl, data + got, size - got, &n) != 1)
      die("read failed after %zu of %zu bytes (did the server close?)", got, size);
}

void close_tls(SSL* ssl) {
  int fd = SSL_get_fd(ssl);
  SSL_shutdown(ssl);  // close_notify out; the server's is not waited for
  SSL_free(ssl);
  ::close(fd);
}

void set_nonblocking(int fd) {
  if (::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) die("O_NONBLOCK");
}

double p99_us(std::vector<std::uint32_t>& samples_ns) {
  if (samples_ns.empty()) return 0;
  std::sort(samples_ns.begin(), samples_ns.end());
  std::size_t rank = (samples_ns.size() * 99 + 99) / 100;  // nearest rank, as the echo peers
  return samples_ns[rank - 1] / 1e3;
}

std::uint32_t ns_since(Clock::time_point start) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
  return static_cast<std::uint32_t>(std::min<long long>(ns, UINT32_MAX));
}

// ------------------------------------------------------------------------------------- echo

struct EchoConnection {
  EchoConnection(SSL* tls, std::size_t bytes) : ssl(tls), fd(SSL_get_fd(tls)), echo(bytes) {}

  SSL* ssl;
  int fd;
  std::vector<char> echo;
  std::size_t sent = 0, got = 0;
  bool writing = true;
  bool wants_out = false;  // EPOLLOUT is in the interest set
  Clock::time_point started;
};

class EchoClient {
 public:
  EchoClient(std::vector<SSL*> ssls, std::size_t bytes, double secs)
      : message_(bytes),
        deadline_(Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(secs))) {
    for (std::size_t i = 0; i < bytes; ++i) message_[i] = static_cast<char>('a' + i % 26);
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) die("epoll_create1");
    connections_.reserve(ssls.size());
    for (SSL* ssl : ssls) {
      connections_.emplace_back(ssl, bytes);
      set_nonblocking(connections_.back().fd);
      interest(connections_.back(), false, EPOLL_CTL_ADD);
    }
    rtt_ns_.reserve(1 << 20);
  }

  // Runs until every connection's last round trip (begun before the deadline) is back.
  void run() {
    for (EchoConnection& c : connections_) {
      begin_round(c);
      step(c);
    }
    std::vector<epoll_event> events(256);
    while (active_ > 0) {
      int ready = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 10'000);
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) die("no echo for 10 s (%zu connections waiting)", active_);
      for (int i = 0; i < ready; ++i)
        step(*static_cast<EchoConnection*>(events[static_cast<std::size_t>(i)].data.ptr));
    }
  }

  std::vector<std::uint32_t>& rtt_ns() { return rtt_ns_; }

 private:
  void interest(EchoConnection& c, bool out, int op = EPOLL_CTL_MOD) {
    epoll_event event{};
    event.events = EPOLLIN | (out ? EPOLLOUT : 0u);
    event.data.ptr = &c;
    if (::epoll_ctl(epoll_, op, c.fd, &event) != 0) die("epoll_ctl: %s", std::strerror(errno));
    c.wants_out = out;
  }

  void begin_round(EchoConnection& c) {
    c.sent = c.got = 0;
    c.writing = true;
    c.started = Clock::now();
    ++active_;
  }

  // Moves c on as far as its socket allows: the message out, then its echo in, then the next
  // round (a loop, not a recursion, should an echo be back at once).
  void step(EchoConnection& c) {
    std::size_t bytes = message_.size();
    for (;;) {
      while (c.writing && c.sent < bytes) {
        std::size_t n = 0;
        if (SSL_write_ex(c.ssl, message_.data() + c.sent, bytes - c.sent, &n) != 1)
          return wait(c, SSL_get_error(c.ssl, 0), "write");
        c.sent += n;
      }
      if (c.writing) {
        c.writing = false;
        if (c.wants_out) interest(c, false);
        // The echo cannot be back yet: wait for EPOLLIN rather than spend a read(2) on EAGAIN.
        if (SSL_has_pending(c.ssl) == 0) return;
      }
      while (c.got < bytes) {
        std::size_t n = 0;
        if (SSL_read_ex(c.ssl, c.echo.data() + c.got, bytes - c.got, &n) != 1)
          return wait(c, SSL_get_error(c.ssl, 0), "read");
        c.got += n;
      }
      if (std::memcmp(c.echo.data(), message_.data(), bytes) != 0) die("the echo differs");
      rtt_ns_.push_back(ns_since(c.started));
      --active_;
      if (Clock::now() >= deadline_) {  // this connection is done: no more events for it
        if (::epoll_ctl(epoll_, EPOLL_CTL_DEL, c.fd, nullptr) != 0) die("epoll_ctl: DEL");
        return;
      }
      begin_round(c);
    }
  }

  void wait(EchoConnection& c, int error, const char* what) {
    if (error == SSL_ERROR_WANT_READ) return;  // EPOLLIN is always in the set
    if (error == SSL_ERROR_WANT_WRITE) {
      if (!c.wants_out) interest(c, true);
      return;
    }
    die("%s failed (SSL error %d; did the server close the connection?)", what, error);
  }

  std::vector<char> message_;
  Clock::time_point deadline_;
  int epoll_ = -1;
  std::vector<EchoConnection> connections_;
  std::size_t active_ = 0;
  std::vector<std::uint32_t> rtt_ns_;
};

std::string echo(SSL_CTX* ctx, int port, long conns, double secs, std::size_t bytes,
                 long server_pid) {
  std::vector<SSL*> ssls;
  std::string names;
  std::vector<char> message(bytes, 'w'), echo_buffer(bytes);
  for (long i = 0; i < conns; ++i) {  // untimed: handshakes and one round trip each (tickets)
    ssls.push_back(connect_tls(ctx, port));
    names = negotiated(ssls.back());
    write_all_blocking(ssls.back(), message.data(), bytes);
    read_exactly_blocking(ssls.back(), echo_buffer.data(), bytes);
  }
  EchoClient client(ssls, bytes, secs);
  CpuMeter cpu(server_pid);
  client.run();
  double elapsed_s = seconds_since(cpu.start);
  double round_trips = static_cast<double>(client.rtt_ns().size());
  std::string cpu_keys = cpu.keys(elapsed_s, round_trips);
  for (SSL* ssl : ssls) close_tls(ssl);
  char text[256];
  std::snprintf(text, sizeof text,
                "scenario=tls_echo n=%ld bytes=%zu secs=%g rtt_per_s=%.0f p99_us=%.1f", conns,
                bytes, secs, round_trips / elapsed_s, p99_us(client.rtt_ns()));
  return text + names + cpu_keys;
}

// -------------------------------------------------------------------------------- handshake

std::string handshakes(SSL_CTX* ctx, int port, long conns, double secs, long server_pid) {
  // One untimed connection first: the server is up and negotiates what it must.
  SSL* first = connect_tls(ctx, port);
  std::string names = negotiated(first);
  close_tls(first);
  CpuMeter cpu(server_pid);
  auto deadline =
      cpu.start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(secs));
  std::mutex mutex;
  std::vector<std::uint32_t> latency_ns;
  std::vector<std::thread> threads;
  for (long i = 0; i < conns; ++i)
    threads.emplace_back([&] {
      std::vector<std::uint32_t> mine;
      char byte = 'h';
      while (Clock::now() < deadline) {
        auto start = Clock::now();
        SSL* ssl = connect_tls(ctx, port);
        write_all_blocking(ssl, &byte, 1);
        read_exactly_blocking(ssl, &byte, 1);
        close_tls(ssl);
        mine.push_back(ns_since(start));
      }
      std::lock_guard lock(mutex);
      latency_ns.insert(latency_ns.end(), mine.begin(), mine.end());
    });
  for (std::thread& thread : threads) thread.join();
  double elapsed_s = seconds_since(cpu.start);
  double count = static_cast<double>(latency_ns.size());
  char text[256];
  std::snprintf(text, sizeof text,
                "scenario=tls_handshake n=%ld secs=%g handshakes_per_s=%.0f p99_us=%.1f", conns,
                secs, count / elapsed_s, p99_us(latency_ns));
  return text + names + cpu.keys(elapsed_s, count);
}

// ------------------------------------------------------------------------------------- bulk

// One connection: bytes out in 16 KiB records while the echo comes back, checked.
std::string bulk(SSL_CTX* ctx, int port, std::size_t bytes, long server_pid) {
  constexpr std::size_t kChunk = 16 * 1024;  // a record's plaintext
  SSL* ssl = connect_tls(ctx, port);
  std::string names = negotiated(ssl);
  std::vector<char> pattern(kChunk + 251), echo(4 * kChunk);
  for (std::size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<char>(i % 251);
  write_all_blocking(ssl, pattern.data(), 1);  // untimed: the tickets come in before the clock
  read_exactly_blocking(ssl, echo.data(), 1);
  int fd = SSL_get_fd(ssl);
  set_nonblocking(fd);
  int epoll = ::epoll_create1(EPOLL_CLOEXEC);
  epoll_event event{};
  event.events = EPOLLIN | EPOLLOUT;
  if (epoll < 0 || ::epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) != 0) die("epoll");
  bool wants_out = true;
  std::size_t sent = 0, got = 0;
  CpuMeter cpu(server_pid);
  while (got < bytes) {
    epoll_event ready{};
    int count = ::epoll_wait(epoll, &ready, 1, 10'000);
    if (count < 0 && errno == EINTR) continue;
    if (count <= 0) die("bulk: nothing moved for 10 s (%zu sent, %zu echoed)", sent, got);
    bool blocked_out = false;
    while (sent < bytes) {  // the offset into the pattern keeps byte i equal to i % 251
      std::size_t n = 0;
      std::size_t size = std::min(kChunk, bytes - sent);
      if (SSL_write_ex(ssl, pattern.data() + sent % 251, size, &n) == 1) {
        sent += n;
        continue;
      }
      int error = SSL_get_error(ssl, 0);
      if (error != SSL_ERROR_WANT_WRITE && error != SSL_ERROR_WANT_READ) die("bulk: write");
      blocked_out = error == SSL_ERROR_WANT_WRITE;
      break;
    }
    for (;;) {
      std::size_t n = 0;
      if (SSL_read_ex(ssl, echo.data(), echo.size(), &n) == 1) {
        for (std::size_t i = 0; i < n; ++i)
          if (echo[i] != static_cast<char>((got + i) % 251)) die("bulk: the echo differs");
        got += n;
        continue;
      }
      int error = SSL_get_error(ssl, 0);
      if (error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE)
        die("bulk: read failed after %zu bytes", got);
      break;
    }
    if (blocked_out != wants_out) {  // EPOLLOUT only while a write waits for room
      event.events = EPOLLIN | (blocked_out ? EPOLLOUT : 0u);
      if (::epoll_ctl(epoll, EPOLL_CTL_MOD, fd, &event) != 0) die("epoll_ctl");
      wants_out = blocked_out;
    }
  }
  double elapsed_s = seconds_since(cpu.start);
  std::string cpu_keys = cpu.keys(elapsed_s, static_cast<double>(bytes) / (1 << 20));
  close_tls(ssl);
  ::close(epoll);
  char text[256];
  std::snprintf(text, sizeof text, "scenario=tls_bulk n=%zu bytes=%zu wall_s=%.3f mb_per_s=%.1f",
                bytes >> 20, bytes, elapsed_s, static_cast<double>(bytes) / (1 << 20) / elapsed_s);
  return text + names + cpu_keys;  // server_cpu_us_per_op: per MiB here
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 7) {
    std::fprintf(stderr,
                 "usage: tls_bench_client echo|handshake|bulk PORT CONNS SECS BYTES CA "
                 "[SERVER_PID]\n");
    return 2;
  }
  std::string scenario = argv[1];
  int port = std::atoi(argv[2]);
  long conns = std::atol(argv[3]);
  double secs = std::atof(argv[4]);
  long long bytes = std::atoll(argv[5]);
  long server_pid = argc > 7 ? std::atol(argv[7]) : 0;
  if (port <= 0 || port > 65535 || conns <= 0 || bytes <= 0 || (scenario != "bulk" && secs <= 0)) {
    std::fprintf(stderr, "tls_bench_client: PORT, CONNS, BYTES (and SECS but for bulk) > 0\n");
    return 2;
  }
  SSL_CTX* ctx = make_context(argv[6]);
  auto size = static_cast<std::size_t>(bytes);
  std::string line;
  if (scenario == "echo")
    line = echo(ctx, port, conns, secs, size, server_pid);
  else if (scenario == "handshake")
    line = handshakes(ctx, port, conns, secs, server_pid);
  else if (scenario == "bulk")
    line = bulk(ctx, port, size, server_pid);
  else
    die("unknown scenario %s (echo, handshake or bulk)", scenario.c_str());
  std::printf("%s\n", line.c_str());
  SSL_CTX_free(ctx);
  return 0;
}
