// The API server's connection proxy to kubelets (pods/log, pods/exec): the client's connection
// is taken over (Response::hijack), a TLS connection is opened to the kubelet, the request is
// sent with the kubelet bearer token, and the kubelet's answer is relayed as it is (status line
// and headers, including a WebSocket 101 with the subprotocol the kubelet chose), then bytes are
// spliced both ways (bounded buffers, one read and one write in flight per direction) until
// either side closes or the connection idles past the limit. No frame is parsed.
// The kubelet's certificate is not verified yet (a known gap, as with --kubelet-insecure-tls).
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "apiserver/http.h"

namespace skiff::apiserver {

struct KubeletRequest {
  std::string host;  // an IP address or a name
  int port = 10250;
  std::string target;  // "/containerLogs/ns/pod/c?follow=true"
  std::string token;   // the kubelet client bearer token
  // Headers passed on from the client (the WebSocket handshake ones).
  std::vector<std::pair<std::string, std::string>> headers;
  bool upgrade = false;  // a WebSocket exec: keep the connection after a 101
  std::chrono::milliseconds connect_timeout{10'000};     // TCP connect + TLS handshake + headers
  std::chrono::milliseconds idle_timeout{4 * 3600'000};  // no byte either way (Kubernetes: 4h)
};

// A Response whose hijack runs the proxy.
Response proxy_to_kubelet(KubeletRequest kr);

// Percent-encodes a query component.
std::string query_escape(const std::string& s);

}  // namespace skiff::apiserver
