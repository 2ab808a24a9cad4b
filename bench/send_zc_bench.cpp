// Zero-copy send against send (issue #18): sends of one size over one loopback TCP connection
// for `secs` seconds each, A B A B, a plain thread draining the other end. Prints MB/s and the
// sending thread's CPU seconds per GB for each:
// `ringloop_send_zc_bench [secs] [rounds] [bytes...]` (default 1 MiB; several sizes measure
// where zero copy starts to pay, Stream's kZeroCopyThreshold), then the same sizes written
// through a Stream with its zero-copy threshold at the size or off.
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

// Wall seconds and this thread's CPU seconds since it was made, and the output line of a run.
struct Meter {
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  double cpu_start = thread_cpu_s();

  double elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  void print(const char* scenario, std::size_t size, bool zero_copy, double bytes) const {
    double seconds = elapsed();
    double cpu = thread_cpu_s() - cpu_start;
    std::printf("peer=ringloop scenario=%s bytes=%zu mode=%s mb_s=%.0f cpu_s_per_gb=%.3f\n",
                scenario, size, zero_copy ? "send_zc" : "send", bytes / seconds / 1e6,
                cpu / (bytes / 1e9));
    std::fflush(stdout);
  }
};

Coro<> measure(const Socket& socket, bool zero_copy, double secs, const std::vector<char>& data) {
  Meter meter;
  double bytes = 0;
  while (meter.elapsed() < secs) {
    std::size_t n = 0;
    if (zero_copy)
      n = co_await ringloop::send_zc(socket, data.data(), data.size());
    else
      n = co_await socket.send(data.data(), data.size());
    bytes += static_cast<double>(n);
  }
  meter.print("send", data.size(), zero_copy, bytes);
}

// The same through a Stream (what a server writes with): write() then drain(), with its zero-copy
// threshold at the size (each write one SEND_ZC chunk) or off (copies, as sendmsg).
Coro<> measure_stream(ringloop::Stream& stream, bool zero_copy, double secs,
                      const std::vector<char>& data) {
  stream.set_zero_copy_threshold(zero_copy ? data.size() : 0);
  std::string_view chunk(data.data(), data.size());
  Meter meter;
  double bytes = 0;
  while (meter.elapsed() < secs) {
    stream.write(chunk);
    co_await stream.drain();
    bytes += static_cast<double>(data.size());
  }
  co_await stream.write("");  // every byte handed to the kernel
  meter.print("stream_write", data.size(), zero_copy, bytes);
}

}  // namespace

int main(int argc, char** argv) {
  double secs = argc > 1 ? std::atof(argv[1]) : 2.0;
  int rounds = argc > 2 ? std::atoi(argv[2]) : 2;
  std::vector<std::size_t> sizes;
  for (int i = 3; i < argc; ++i) sizes.push_back(static_cast<std::size_t>(std::atol(argv[i])));
  if (sizes.empty()) sizes.push_back(1 << 20);
  ringloop::run([](double s, int r, std::vector<std::size_t> sizes) -> Coro<> {
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
    for (std::size_t size : sizes) {
      std::vector<char> data(size, 'x');
      for (int i = 0; i < r; ++i) {
        co_await measure(server, false, s, data);
        co_await measure(server, true, s, data);
      }
    }
    ringloop::Stream stream(std::move(server));
    for (std::size_t size : sizes) {
      std::vector<char> data(size, 'x');
      for (int i = 0; i < r; ++i) {
        co_await measure_stream(stream, false, s, data);
        co_await measure_stream(stream, true, s, data);
      }
    }
    co_await stream.write_eof();
    drain.join();
  }(secs, rounds, std::move(sizes)));
  return 0;
}
