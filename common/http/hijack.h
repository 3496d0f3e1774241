// HijackedConn: a server connection handed over by the transport (Response::hijack), for
// protocol switches: the kubelet's WebSocket exec endpoint and the API server's log/exec proxy.
//
// Includes Asio and Beast: only for .cc files that already use them.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <memory>
#include <string>

namespace skiff::web {

struct HijackedConn {
  using Tcp = boost::asio::ip::tcp::socket;
  using Tls = boost::asio::ssl::stream<Tcp>;
  // Exactly one is set: `tls` for an HTTPS connection (handshake done), `plain` for plain HTTP.
  std::unique_ptr<Tls> tls;
  std::unique_ptr<Tcp> plain;
  // Bytes the client sent after the request (normally none before a 101).
  boost::beast::flat_buffer buffer;
  // The request as received; its body was moved into Request::body.
  boost::beast::http::request<boost::beast::http::string_body> request;
  std::string remote;  // peer address, for logs

  boost::asio::any_io_executor executor() const {
    return tls ? tls->get_executor() : plain->get_executor();
  }
  // Calls f(stream) with the connection's stream, whichever kind it is.
  template <class F>
  decltype(auto) visit(F&& f) {
    if (tls) return f(*tls);
    return f(*plain);
  }
};

}  // namespace skiff::web
