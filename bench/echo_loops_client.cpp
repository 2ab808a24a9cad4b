// echo_loops_client: the one client of the echo_loops scenario (issue #19), which
// bench/echo_loops.sh runs against ringloop's LoopGroup server and tokio's multi-thread runtime
// alike, so that the client's work is the same for both. Plain non-blocking sockets and epoll in
// one thread, not ringloop: the client must not favour one of the servers, and it runs in its
// own process, so it shares no thread with the server (it does share this machine's CPUs: its
// CPU time and the server's are in the output line).
//
//   echo_loops_client PORT CONNS SECS SERVER_PID LOOPS
//
// CONNS connections to 127.0.0.1:PORT (TCP_NODELAY, connected before the clock starts), each
// sending a 64-byte message and reading its echo in full, again and again, until SECS have
// passed; every echo is checked byte for byte. One line on stdout (echo_loops.sh adds peer=):
//   scenario=echo_loops n=LOOPS conns= secs= rtt_per_s= p99_us= cpu_s= rtt_per_cpu_s=
//   client_cpu_s= server_thread_cpu_s=a,b,... rtts=
// cpu_s is the server's user+system time over the timed part (/proc/SERVER_PID/stat, every
// thread), server_thread_cpu_s the same per server thread (/proc/PID/task/*/stat, largest
// first, threads under 10 ms left out): it shows whether every loop or worker took a share.
// Anything going wrong is a message on stderr and exit status 1.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kMessageBytes = 64;  // the echo scenario's message

[[noreturn]] __attribute__((format(printf, 1, 2))) void die(const char* format, ...) {
  int error = errno;
  std::va_list args;
  va_start(args, format);
  std::fputs("echo_loops_client: ", stderr);
  std::vfprintf(stderr, format, args);
  va_end(args);
  if (error != 0) std::fprintf(stderr, " (%s)", std::strerror(error));
  std::fputc('\n', stderr);
  std::exit(1);
}

double cpu_s_self() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// utime + stime from a /proc stat file (a process: all its threads; a task: one thread), in
// seconds; -1 when the file is gone.
double cpu_s_of(const std::string& path) {
  std::ifstream stat(path);
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  std::size_t after_name = text.rfind(')');  // the command name may hold spaces
  if (after_name == std::string::npos) return -1;
  // Fields from the third on (state) follow the name; utime and stime are fields 14 and 15.
  const char* cursor = text.c_str() + after_name + 2;
  for (int field = 3; field < 14; ++field) {
    cursor = std::strchr(cursor, ' ');
    if (cursor == nullptr) return -1;
    ++cursor;
  }
  char* end = nullptr;
  unsigned long long utime = std::strtoull(cursor, &end, 10);
  unsigned long long stime = std::strtoull(end, nullptr, 10);
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// Each thread's CPU seconds, by thread id.
std::map<long, double> thread_cpu_s(long pid) {
  std::map<long, double> threads;
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* tasks = ::opendir(dir.c_str());
  if (tasks == nullptr) die("cannot read %s: the server is gone", dir.c_str());
  while (dirent* entry = ::readdir(tasks)) {
    if (entry->d_name[0] == '.') continue;
    double seconds = cpu_s_of(dir + "/" + entry->d_name + "/stat");
    if (seconds >= 0) threads[std::atol(entry->d_name)] = seconds;
  }
  ::closedir(tasks);
  return threads;
}

struct Connection {
  int fd = -1;
  std::size_t got = 0;
  Clock::time_point sent_at{};
  bool finished = false;
};

const char kMessage[kMessageBytes + 1] =
    "0123456789abcdef0123456789abcdef"
    "0123456789abcdef0123456789abcdef";

void send_message(Connection& c) {
  c.got = 0;
  c.sent_at = Clock::now();
  // One 64-byte message in flight on an otherwise empty connection: the socket buffer takes it
  // whole, so a short write would be a fault here, not back-pressure.
  ssize_t sent = ::send(c.fd, kMessage, kMessageBytes, MSG_NOSIGNAL);
  if (sent != static_cast<ssize_t>(kMessageBytes)) die("send wrote %zd of 64 bytes", sent);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: echo_loops_client PORT CONNS SECS SERVER_PID LOOPS\n");
    return 2;
  }
  long port = std::atol(argv[1]), conns = std::atol(argv[2]);
  double secs = std::atof(argv[3]);
  long server_pid = std::atol(argv[4]), loops = std::atol(argv[5]);
  if (port <= 0 || port > 65535 || conns <= 0 || secs <= 0 || server_pid <= 0 || loops <= 0)
    die("bad arguments (PORT CONNS SECS SERVER_PID LOOPS, all positive)");

  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  int epoll = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll < 0) die("epoll_create1");
  std::vector<Connection> connections(static_cast<std::size_t>(conns));
  for (std::size_t i = 0; i < connections.size(); ++i) {  // untimed
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
      die("connect to port %ld", port);
    int one = 1;
    if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) die("TCP_NODELAY");
    if (::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) die("O_NONBLOCK");
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = i;
    if (::epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) != 0) die("epoll_ctl");
    connections[i].fd = fd;
  }

  std::vector<std::uint32_t> rtt_ns;
  rtt_ns.reserve(1 << 22);
  double server_start = cpu_s_of("/proc/" + std::to_string(server_pid) + "/stat");
  if (server_start < 0) die("cannot read /proc/%ld/stat: the server is gone", server_pid);
  std::map<long, double> threads_start = thread_cpu_s(server_pid);
  double self_start = cpu_s_self();
  Clock::time_point start = Clock::now();
  Clock::time_point deadline =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(secs));
  for (Connection& c : connections) send_message(c);

  std::size_t running = connections.size();
  std::vector<epoll_event> events(256);
  char buffer[kMessageBytes];
  while (running > 0) {
    int ready = ::epoll_wait(epoll, events.data(), static_cast<int>(events.size()), 5000);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) die("epoll_wait");
    if (ready == 0) die("no echo for 5 s (%zu connections still waiting)", running);
    for (int e = 0; e < ready; ++e) {
      Connection& c = connections[events[static_cast<std::size_t>(e)].data.u64];
      if (c.finished) continue;
      for (;;) {
        ssize_t got = ::recv(c.fd, buffer + c.got, kMessageBytes - c.got, 0);
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (got < 0) die("recv");
        if (got == 0) die("the server closed a connection");
        c.got += static_cast<std::size_t>(got);
        if (c.got < kMessageBytes) continue;
        if (std::memcmp(buffer, kMessage, kMessageBytes) != 0) die("the echo differs");
        Clock::time_point now = Clock::now();
        rtt_ns.push_back(static_cast<std::uint32_t>(
            std::min<std::int64_t>(std::chrono::nanoseconds(now - c.sent_at).count(), UINT32_MAX)));
        if (now < deadline) {
          send_message(c);
        } else {
          c.finished = true;
          --running;
        }
        break;
      }
    }
  }
  double elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();
  double client_cpu_s = cpu_s_self() - self_start;
  double server_end = cpu_s_of("/proc/" + std::to_string(server_pid) + "/stat");
  if (server_end < 0) die("the server is gone");
  std::map<long, double> threads_end = thread_cpu_s(server_pid);
  for (Connection& c : connections) ::close(c.fd);
  ::close(epoll);

  std::vector<double> per_thread;
  for (const auto& [tid, seconds] : threads_end) {
    auto before = threads_start.find(tid);
    double used = seconds - (before == threads_start.end() ? 0.0 : before->second);
    if (used >= 0.01) per_thread.push_back(used);
  }
  std::sort(per_thread.begin(), per_thread.end(), std::greater<>());
  std::string threads;
  for (double used : per_thread) {
    char text[32];
    std::snprintf(text, sizeof text, "%s%.2f", threads.empty() ? "" : ",", used);
    threads += text;
  }
  if (threads.empty()) threads = "0";

  std::sort(rtt_ns.begin(), rtt_ns.end());
  std::size_t rank = (rtt_ns.size() * 99 + 99) / 100;  // nearest rank, as every peer
  double p99_us = rtt_ns.empty() ? 0 : rtt_ns[rank - 1] / 1e3;
  double server_cpu_s = server_end - server_start;
  double rtts = static_cast<double>(rtt_ns.size());
  std::printf(
      "scenario=echo_loops n=%ld conns=%ld secs=%g rtt_per_s=%.0f p99_us=%.1f cpu_s=%.2f "
      "rtt_per_cpu_s=%.0f client_cpu_s=%.2f server_thread_cpu_s=%s rtts=%zu\n",
      loops, conns, secs, rtts / elapsed_s, p99_us, server_cpu_s,
      server_cpu_s > 0 ? rtts / server_cpu_s : 0.0, client_cpu_s, threads.c_str(), rtt_ns.size());
  return 0;
}
