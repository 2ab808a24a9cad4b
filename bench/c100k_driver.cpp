// The c100k client (issue #18), the same for every server: `c100k_driver <peer> <server-pid>
// <port> <n> [procs]` opens n idle connections to 127.0.0.1:port from `procs` child processes
// (each from its own 127.0.0.k source address: this VM allows 20,000 fds per process), waits
// until the server has accepted them all (its listener's accept queue, from /proc/net/tcp, is
// empty), checks that it serves a fresh client within 2 s while they idle, reads the server's
// RSS from /proc, then has every connection echo one byte and times it. One output line, as
// bench/peers/ print: peer=... scenario=c100k n=... accepted=... answered=... fresh_ms=...
// rss_per_conn_b=... echo_all_s=...; exit status 1 unless every connection was served.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace {

long rss_kb(long pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  return -1;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int connect_from(const char* source, int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  // The source port is chosen at connect(), for the whole 4-tuple, not at bind() for the
  // address alone: runs in a row then reuse ports that the last run's connections still hold
  // in TIME_WAIT (to another server port), where bind() would run out of them within a minute.
  int one = 1;
  ::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &local.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) return ::close(fd), -1;
  sockaddr_in remote{};
  remote.sin_family = AF_INET;
  remote.sin_port = htons(static_cast<std::uint16_t>(port));
  remote.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof remote) != 0)
    return ::close(fd), -1;
  return fd;
}

// The accept queue of the listener on 127.0.0.1:port (connections the kernel completed and the
// server has not accepted yet): /proc/net/tcp's rx_queue of a LISTEN socket is its
// sk_ack_backlog. Listeners come first in that file, so the read stops before the established
// sockets (two per connection here). -1 when the listener is not found.
long accept_queue(int port) {
  std::ifstream tcp("/proc/net/tcp");
  std::string line;
  std::getline(tcp, line);  // the header
  char wanted[32];
  std::snprintf(wanted, sizeof wanted, "0100007F:%04X", port);
  while (std::getline(tcp, line)) {
    char local[64] = {}, remote[64] = {};
    unsigned state = 0;
    unsigned long tx = 0, rx = 0;
    if (std::sscanf(line.c_str(), "%*d: %63s %63s %x %lx:%lx", local, remote, &state, &tx, &rx) !=
        5)
      continue;
    if (state != 0x0A) break;  // past the listeners
    if (std::strcmp(local, wanted) == 0) return static_cast<long>(rx);
  }
  return -1;
}

bool write_byte(int fd, char c) { return ::write(fd, &c, 1) == 1; }
char read_byte(int fd) {
  char c = 0;
  return ::read(fd, &c, 1) == 1 ? c : '\0';
}

// A child: connects `count` times, says 'c' (or 'f' on failure), waits for 'g', echoes one
// byte on every connection, says 'd' with the number answered, waits for 'q', exits.
[[noreturn]] void child(int index, int count, int port, int to_parent, int from_parent) {
  std::string source = "127.0.0." + std::to_string(2 + index);
  std::vector<int> fds;
  for (int i = 0; i < count; ++i) {
    int fd = connect_from(source.c_str(), port);
    if (fd < 0) {
      std::fprintf(stderr, "c100k_driver: child %d: connection %d: %s\n", index, i,
                   std::strerror(errno));
      write_byte(to_parent, 'f');
      _exit(1);
    }
    fds.push_back(fd);
  }
  write_byte(to_parent, 'c');
  if (read_byte(from_parent) != 'g') _exit(1);
  for (int fd : fds) ::send(fd, "x", 1, MSG_NOSIGNAL);
  int answered = 0;
  for (int fd : fds) {
    char c = 0;
    if (::recv(fd, &c, 1, 0) == 1 && c == 'x') ++answered;
  }
  write_byte(to_parent, 'd');
  (void)!::write(to_parent, &answered, sizeof answered);
  read_byte(from_parent);
  _exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s <peer> <server-pid> <port> <n> [procs]\n", argv[0]);
    return 2;
  }
  const char* peer = argv[1];
  long server_pid = std::strtol(argv[2], nullptr, 10);
  int port = std::atoi(argv[3]);
  int n = std::atoi(argv[4]);
  int procs = argc > 5 ? std::atoi(argv[5]) : 3;
  // A child that failed and exited must not kill the driver when it is told to go on.
  ::signal(SIGPIPE, SIG_IGN);
  long rss_before = rss_kb(server_pid);
  struct Child {
    pid_t pid;
    int to_child;
    int from_child;
  };
  std::vector<Child> children;
  auto start = std::chrono::steady_clock::now();
  for (int k = 0; k < procs; ++k) {
    int up[2], down[2];
    if (::pipe(up) != 0 || ::pipe(down) != 0) return 1;
    int count = n / procs + (k < n % procs ? 1 : 0);
    pid_t pid = ::fork();
    if (pid == 0) child(k, count, port, up[1], down[0]);
    ::close(up[1]);
    ::close(down[0]);
    children.push_back({pid, down[1], up[0]});
  }
  bool all_connected = true;
  for (Child& c : children) all_connected = read_byte(c.from_child) == 'c' && all_connected;
  double connect_s = seconds_since(start);
  // Every connect() has returned, so each connection is accepted or waits in the listener's
  // accept queue: give the server up to 60 s to empty it.
  long queued = accept_queue(port);
  for (int i = 0; i < 3000 && queued != 0; ++i) {
    ::usleep(20'000);
    queued = accept_queue(port);
  }
  double accept_s = seconds_since(start);
  long accepted = all_connected && queued >= 0 ? n - queued : -1;
  // Then until its RSS stops growing (what it allocates per connection may come just after
  // the accept) before reading it.
  long rss_idle = rss_kb(server_pid);
  for (int i = 0; i < 50; ++i) {
    ::usleep(100'000);
    long now = rss_kb(server_pid);
    if (now == rss_idle && i >= 5) break;
    rss_idle = now;
  }
  // A fresh client, served while the n idle.
  auto fresh_start = std::chrono::steady_clock::now();
  int fresh = connect_from("127.0.0.1", port);
  timeval two_s{2, 0};
  ::setsockopt(fresh, SOL_SOCKET, SO_RCVTIMEO, &two_s, sizeof two_s);
  char reply = 0;
  bool fresh_ok = fresh >= 0 && ::send(fresh, "f", 1, MSG_NOSIGNAL) == 1 &&
                  ::recv(fresh, &reply, 1, 0) == 1 && reply == 'f';
  double fresh_ms = seconds_since(fresh_start) * 1e3;
  if (fresh >= 0) ::close(fresh);
  // Every connection echoes once.
  auto echo_start = std::chrono::steady_clock::now();
  for (Child& c : children) write_byte(c.to_child, 'g');
  long answered = 0;
  for (Child& c : children) {
    int count = 0;
    if (read_byte(c.from_child) == 'd' &&
        ::read(c.from_child, &count, sizeof count) == sizeof count)
      answered += count;
  }
  double echo_s = seconds_since(echo_start);
  for (Child& c : children) write_byte(c.to_child, 'q');
  for (Child& c : children) ::waitpid(c.pid, nullptr, 0);
  std::printf(
      "peer=%s scenario=c100k n=%d connected=%s accepted=%ld answered=%ld fresh_ok=%s "
      "fresh_ms=%.1f connect_s=%.2f accept_s=%.2f echo_all_s=%.3f rss_before_kb=%ld "
      "rss_idle_kb=%ld rss_per_conn_b=%.0f\n",
      peer, n, all_connected ? "yes" : "no", accepted, answered, fresh_ok ? "yes" : "no", fresh_ms,
      connect_s, accept_s, echo_s, rss_before, rss_idle,
      n > 0 ? static_cast<double>(rss_idle - rss_before) * 1024.0 / n : 0.0);
  return all_connected && accepted == n && answered == n && fresh_ok ? 0 : 1;
}
