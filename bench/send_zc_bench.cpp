// Zero-copy send against send (issue #18): 1 MiB sends over one loopback TCP connection for
// `secs` seconds each, A B A B, a plain thread draining the other end. Prints MB/s and the
// sending thread's CPU seconds per GB for each: `ringloop_send_zc_bench [secs] [rounds]`.
// Over loopback the kernel copies a SEND_ZC's pages anyway; on a real NIC it need not.
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include <ringloop/ringloop.hpp>

using ringloop::Coro;
using ringloop::Socket;

namespace {

double thread_cpu_s() {
  rusage usage{};
  ::getrusage(RUSAGE_THREAD, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

Coro<> measure(const Socket& socket, bool zero_copy, double secs, const std::vector<char>& data) {
  auto start = std::chrono::steady_clock::now();
  double cpu_start = thread_cpu_s();
  double bytes = 0;
  double elapsed = 0;
  while (
      (elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()) <
      secs) {
    std::size_t n = 0;
    if (zero_copy)
      n = co_await ringloop::send_zc(socket, data.data(), data.size());
    else
      n = co_await socket.send(data.data(), data.size());
    bytes += static_cast<double>(n);
  }
  double cpu = thread_cpu_s() - cpu_start;
  std::printf("peer=ringloop scenario=send_1mib mode=%s mb_s=%.0f cpu_s_per_gb=%.3f\n",
              zero_copy ? "send_zc" : "send", bytes / elapsed / 1e6, cpu / (bytes / 1e9));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  double secs = argc > 1 ? std::atof(argv[1]) : 2.0;
  int rounds = argc > 2 ? std::atoi(argv[2]) : 2;
  ringloop::run([](double s, int r) -> Coro<> {
    Socket listener = ringloop::listen_tcp("127.0.0.1", 0);
    Socket client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(ringloop::local_port(listener));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(client.fd(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
      throw std::runtime_error("connect failed");
    Socket server = co_await listener.accept();
    std::thread drain([fd = client.fd()] {
      std::vector<char> sink(1 << 20);
      while (::recv(fd, sink.data(), sink.size(), 0) > 0) {
      }
    });
    std::vector<char> data(1 << 20, 'x');
    for (int i = 0; i < r; ++i) {
      co_await measure(server, false, s, data);
      co_await measure(server, true, s, data);
    }
    ::shutdown(server.fd(), SHUT_WR);
    drain.join();
  }(secs, rounds));
  return 0;
}
