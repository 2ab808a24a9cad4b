// start_server with TLS (asyncio's start_server(..., ssl=context)): a Server whose connections
// each run the server's handshake (tls_accept) and then co_await handler(TlsStream). A handshake
// that fails (a plain-text client, garbage, a client certificate refused, the handshake timeout)
// ends that connection only: the Server reports it through the loop's exception handler and
// goes on, as it does for anything a handler throws.
#pragma once
#include <ringloop/loop/detail/config.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ringloop/coro/net/server.hpp>
#include <ringloop/coro/net/stream.hpp>
#include <ringloop/coro/task/coro.hpp>
#include <ringloop/coro/tls/context.hpp>
#include <ringloop/coro/tls/tls_stream.hpp>

namespace ringloop {

namespace detail {

// One connection: the handshake, then the handler. Parameters by value: the frame owns them.
template <class Handler>
Coro<> serve_tls_connection(std::shared_ptr<Handler> handler, TlsContext context,
                            TlsOptions options, Stream stream) {
  TlsStream tls = co_await tls_accept(std::move(stream), std::move(context), options);
  co_await (*handler)(std::move(tls));
}

}  // namespace detail

// Binds hosts:port as start_server does and serves TLS with context (a TlsContext::server() with
// its certificate chain loaded): co_await handler(TlsStream) for each connection whose handshake
// succeeded. handler need not be copyable (it is shared by the connections).
template <class Handler>
Coro<Server> start_server(Handler handler, std::vector<std::string> hosts, std::uint16_t port,
                          TlsContext context, ServerOptions options = {},
                          TlsOptions tls_options = {}) {
  auto shared = std::make_shared<Handler>(std::move(handler));
  auto per_connection = [shared, context, tls_options](Stream stream) {
    return detail::serve_tls_connection(shared, context, tls_options, std::move(stream));
  };
  co_return co_await start_server(std::move(per_connection), std::move(hosts), port,
                                  std::move(options));
}

template <class Handler>
Coro<Server> start_server(Handler handler, std::string host, std::uint16_t port, TlsContext context,
                          ServerOptions options = {}, TlsOptions tls_options = {}) {
  return start_server(std::move(handler), std::vector<std::string>{std::move(host)}, port,
                      std::move(context), std::move(options), std::move(tls_options));
}

}  // namespace ringloop
