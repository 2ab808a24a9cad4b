// ringloop_echo_loops_server LOOPS: the ringloop server of the echo_loops scenario (issue #19;
// bench/echo_loops.sh runs the one client program against it and against tokio's multi-thread
// runtime). A LoopGroup of LOOPS loops, each with its own start_server listener on 127.0.0.1 and
// the same port (ServerOptions::reuse_port: the kernel spreads the connections over the loops),
// each connection served by echo's server loop (bench/scenario_io.hpp: recv, send back).
// With --handoff, loop 0 alone listens (ServerOptions::hand_off_to_group) and runs each
// connection on the loop with the fewest open, the socket moved there by a cross-loop submit.
//
// Prints "listening on port P" once every loop listens; on SIGTERM or SIGINT closes every
// loop's server on its own loop, prints "connections per loop: a,b,..." on stderr and exits 0.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include <ringloop/ringloop.hpp>
#include "bench/scenario_io.hpp"

namespace {

using ringloop::Coro;

// One loop's server and what it counted; touched only on that loop's thread while the group
// runs (the main thread reads the counts after run() returns).
struct LoopServer {
  std::optional<ringloop::Server> server;
  long connections = 0;
};

Coro<> start_on_this_loop(std::vector<LoopServer>& servers, std::uint16_t port, bool handoff) {
  LoopServer& slot = servers[ringloop::LoopGroup::current_index("echo_loops_server")];
  // Counted on the loop the handler runs on (with --handoff, not always the listener's).
  auto handler = [&servers](ringloop::Stream stream) -> Coro<> {
    ++servers[ringloop::LoopGroup::current_index("echo_loops_server")].connections;
    co_await ringloop_bench::echo_detail::serve_echo(
        ringloop_bench::echo_detail::PlainEnd{stream.socket().fd()});
  };
  // A deep accept queue: the client connects its 100 connections at once.
  ringloop::ServerOptions options{.backlog = 4096, .reuse_port = !handoff};
  options.hand_off_to_group = handoff;
  ringloop::Server server = co_await ringloop::start_server(handler, "127.0.0.1", port, options);
  slot.server.emplace(std::move(server));
}

Coro<> close_on_this_loop(LoopServer& slot) {
  slot.server->close();
  slot.server->close_clients();
  co_await slot.server->wait_closed();
}

}  // namespace

int main(int argc, char** argv) {
  long loops = argc >= 2 ? std::strtol(argv[1], nullptr, 10) : 0;
  bool handoff = argc == 3 && std::string(argv[2]) == "--handoff";
  if (loops < 1 || loops > 256 || argc > 3 || (argc == 3 && !handoff)) {
    std::fprintf(stderr, "usage: ringloop_echo_loops_server LOOPS [--handoff] (1 to 256 loops)\n");
    return 2;
  }
  // Blocked in every thread of the group (they inherit this mask), so that loop 0's signalfd
  // takes them rather than the default action killing the process mid-close.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  ringloop::LoopGroupOptions options;
  options.loops = static_cast<std::size_t>(loops);
  ringloop::LoopGroup group(options);
  std::vector<LoopServer> servers(static_cast<std::size_t>(loops));
  group.run([&](std::size_t i) -> Coro<> {
    if (i != 0) co_return;  // the other loops serve loop 0's calls until its main ends
    ringloop::Event stop;
    ringloop::add_signal_handler(SIGTERM, [&stop] { stop.set(); });
    ringloop::add_signal_handler(SIGINT, [&stop] { stop.set(); });
    // Loop 0 binds a free port first; every other loop then binds it too, on its own thread.
    co_await start_on_this_loop(servers, 0, handoff);
    std::uint16_t port = ringloop::local_port(servers[0].server->sockets()[0]);
    for (std::size_t k = 1; k < servers.size() && !handoff; ++k)
      co_await group.loop(k).submit(
          [&servers, port] { return start_on_this_loop(servers, port, false); });
    std::printf("listening on port %u\n", static_cast<unsigned>(port));
    std::fflush(stdout);
    co_await stop.wait();
    for (std::size_t k = 1; k < servers.size() && !handoff; ++k)
      co_await group.loop(k).submit([&servers, k] { return close_on_this_loop(servers[k]); });
    co_await close_on_this_loop(servers[0]);
  });
  std::string counts;
  for (const LoopServer& slot : servers) {
    if (!counts.empty()) counts += ',';
    counts += std::to_string(slot.connections);
  }
  std::fprintf(stderr, "connections per loop: %s\n", counts.c_str());
  return 0;
}
