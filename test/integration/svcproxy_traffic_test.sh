# The service proxy (netagent/services) on real traffic. Network namespaces this test creates,
# all named skiff-svctest-*:
#
#   client 10.244.9.2 --+
#   srv1   10.244.1.2 --+-- node (router, ip_forward=1; runs the rules) 10.244.9.1 / 10.244.1.1 /
#   srv2   10.244.2.2 --+                                   10.244.2.1 / 10.250.9.1
#   outside 10.250.9.100 (default route via the node)
#
# The rules are installed in the node by the library itself (the hidden Catch2 case
# "[svcproxy-apply]" of skiff_svcproxy_test, run there with nsenter) from Services and Endpoints
# JSON, as node "node1" (srv1 is on node1, srv2 on node2). Each server answers an HTTP GET with
# "<its name> <the peer address it saw>". Only addresses inside these namespaces are used; every
# loop has a count and every command a time limit.
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || skiff_skip "needs root for network namespaces and nftables"
skiff_need_bin skiff_svcproxy_test
for c in ip nsenter python3 nft timeout; do
  command -v "$c" >/dev/null || skiff_skip "$c missing"
done

P=skiff-svctest
NODE=$P-node-$$
CLIENT=$P-client-$$
SRV1=$P-srv1-$$
SRV2=$P-srv2-$$
OUT=$P-out-$$
TMP=$(mktemp -d /tmp/skiff-svctest.XXXXXX)
HOST_TABLES_BEFORE=$(nft list tables 2>&1)

cleanup() {
  local rc=$?
  local n
  for n in "$CLIENT" "$SRV1" "$SRV2" "$OUT" "$NODE"; do
    ip netns pids "$n" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
    ip netns del "$n" 2>/dev/null
  done
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

for n in "$NODE" "$CLIENT" "$SRV1" "$SRV2" "$OUT"; do
  ip netns add "$n" || skiff_die "ip netns add $n"
  ip -n "$n" link set lo up
done
link() {  # link NS NODE_IF NODE_ADDR/LEN NS_ADDR/LEN
  ip -n "$NODE" link add "$2" type veth peer name eth0 netns "$1" || skiff_die "veth $1"
  ip -n "$NODE" addr add "$3" dev "$2"
  ip -n "$1" addr add "$4" dev eth0
  ip -n "$NODE" link set "$2" up
  ip -n "$1" link set eth0 up
  ip -n "$1" route add default via "${3%/*}"
}
link "$CLIENT" n-client 10.244.9.1/24 10.244.9.2/24
link "$SRV1" n-srv1 10.244.1.1/24 10.244.1.2/24
link "$SRV2" n-srv2 10.244.2.1/24 10.244.2.2/24
link "$OUT" n-out 10.250.9.1/24 10.250.9.100/24
ip netns exec "$NODE" sysctl -qw net.ipv4.ip_forward=1 || skiff_die "ip_forward in $NODE"
# As a real node has: a default route (else traffic to a ClusterIP without endpoints would be
# unroutable before the filter chains could reject it, and the node could not reach ClusterIPs).
ip -n "$NODE" route add default via 10.250.9.100
# The bridge-less veths need hairpin traffic (srv1 -> ClusterIP -> srv1) routed back out of the
# interface it came in on: that is plain forwarding, nothing to set.

cat >"$TMP/server.py" <<'PY'
# HTTP server: GET answers "<name> <peer address>"; exits after 300 s whatever happens.
import http.server, socketserver, sys, threading
name, port = sys.argv[1], int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("%s %s\n" % (name, self.client_address[0])).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
socketserver.ThreadingTCPServer.allow_reuse_address = True
srv = socketserver.ThreadingTCPServer(("0.0.0.0", port), H)
threading.Timer(300, srv.shutdown).start()
srv.serve_forever()
PY
cat >"$TMP/client.py" <<'PY'
# client.py URL COUNT: COUNT new connections (10 s timeout each: the python servers share 2
# busy cores in CI); prints one line per answer ("<server> <peer it saw>") or "ERR <reason>".
import sys, urllib.request
for _ in range(int(sys.argv[2])):
    try:
        print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode().strip())
    except Exception as e:
        print("ERR %s" % getattr(e, "reason", e))
PY
cat >"$TMP/refused.py" <<'PY'
# refused.py IP PORT: succeeds when the connection is refused (TCP reset); a dropped SYN would
# time out instead (10 s: long enough for a loaded machine, the time taken is printed).
import socket, sys, time
t = time.monotonic()
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
    print("connected"); sys.exit(1)
except ConnectionRefusedError:
    print("refused after %.3f s" % (time.monotonic() - t))
except OSError as e:
    print("not refused: %s" % e); sys.exit(1)
PY
timeout 310 ip netns exec "$SRV1" python3 "$TMP/server.py" srv1 8080 &
timeout 310 ip netns exec "$SRV2" python3 "$TMP/server.py" srv2 8080 &
disown -a  # the cleanup ends them (by namespace); no job notices

cat >"$TMP/services.json" <<'JSON'
{"services": [
  {"metadata": {"namespace": "default", "name": "web"},
   "spec": {"type": "NodePort", "clusterIP": "10.96.0.100",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]}},
  {"metadata": {"namespace": "default", "name": "local"},
   "spec": {"type": "NodePort", "clusterIP": "10.96.0.101", "externalTrafficPolicy": "Local",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30081}]}},
  {"metadata": {"namespace": "default", "name": "empty"},
   "spec": {"type": "NodePort", "clusterIP": "10.96.0.102",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30082}]}},
  {"metadata": {"namespace": "default", "name": "sticky"},
   "spec": {"clusterIP": "10.96.0.103", "sessionAffinity": "ClientIP",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}
 ],
 "endpoints": [
  {"metadata": {"namespace": "default", "name": "web"},
   "subsets": [{"addresses": [{"ip": "10.244.1.2", "nodeName": "node1"},
                              {"ip": "10.244.2.2", "nodeName": "node2"}],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]},
  {"metadata": {"namespace": "default", "name": "local"},
   "subsets": [{"addresses": [{"ip": "10.244.1.2", "nodeName": "node1"},
                              {"ip": "10.244.2.2", "nodeName": "node2"}],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]},
  {"metadata": {"namespace": "default", "name": "sticky"},
   "subsets": [{"addresses": [{"ip": "10.244.1.2", "nodeName": "node1"},
                              {"ip": "10.244.2.2", "nodeName": "node2"}],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]}
 ]}
JSON

apply() {
  SKIFF_SVCPROXY_APPLY="$TMP/services.json" SKIFF_SVCPROXY_NODE=node1 \
    nsenter --net="/run/netns/$NODE" "$SKIFF_BIN/skiff_svcproxy_test" "[svcproxy-apply]"
}
# fetch NS URL COUNT: the answers in $TMP/answers
fetch() { timeout 300 ip netns exec "$1" python3 "$TMP/client.py" "$2" "$3" >"$TMP/answers"; }

# spread FROM URL COUNT MIN PEER: every answer from srv1 or srv2 seeing PEER, each >= MIN.
spread() {
  fetch "$1" "$2" "$3"
  local a b other
  a=$(grep -c "^srv1 $5\$" "$TMP/answers")
  b=$(grep -c "^srv2 $5\$" "$TMP/answers")
  echo "srv1: $a, srv2: $b of $3 (peer $5)"
  other=$(grep -v -e "^srv1 $5\$" -e "^srv2 $5\$" "$TMP/answers" | head -3)
  [ -z "$other" ] || { echo "unexpected answers: $other"; return 1; }
  [ "$a" -ge "$4" ] && [ "$b" -ge "$4" ]
}
only() {  # only FROM URL COUNT WANT_LINE
  fetch "$1" "$2" "$3"
  local n
  n=$(grep -cx "$4" "$TMP/answers")
  echo "$n of $3 answers were '$4'"; sort "$TMP/answers" | uniq -c | head -5
  [ "$n" -eq "$3" ]
}
all_ok() {  # all_ok FROM URL COUNT: every request answered by srv1 or srv2
  fetch "$1" "$2" "$3"
  sort "$TMP/answers" | uniq -c | head -5
  [ "$(grep -c '^srv[12] ' "$TMP/answers")" -eq "$3" ]
}
sticky() {  # the same server for every request
  fetch "$1" "$2" "$3"
  sort "$TMP/answers" | uniq -c
  [ "$(sort -u "$TMP/answers" | wc -l)" -eq 1 ] && grep -q '^srv' "$TMP/answers"
}

listening() {
  local n
  for n in "$SRV1" "$SRV2"; do
    ip netns exec "$n" python3 -c 'import socket; socket.create_connection(("127.0.0.1", 8080), 1)' ||
      return 1
  done
}
skiff_wait_for 60 listening || skiff_die "the servers did not listen within 60 s"

check "the library installs the rules in the node namespace" apply
ip netns exec "$NODE" nft list table ip skiff | grep -c . | sed 's/^/  (node) table ip skiff: /;s/$/ lines/'
check "ClusterIP from a pod: 60 connections spread over both endpoints, pod address kept" \
  spread "$CLIENT" http://10.96.0.100/ 60 10 10.244.9.2
check "hairpin: srv1 -> ClusterIP -> both endpoints, all answered" \
  all_ok "$SRV1" http://10.96.0.100/ 30
check "hairpin to itself is masqueraded (srv1 sees the node's 10.244.1.1)" \
  bash -c "grep -q '^srv1 10.244.1.1\$' $TMP/answers"
check "ClusterIP from the node itself (nat output)" all_ok "$NODE" http://10.96.0.100/ 10
masqueraded() {  # FROM URL COUNT: both endpoints, each seeing the node's address on its link
  fetch "$1" "$2" "$3"
  sort "$TMP/answers" | uniq -c | head -5
  local a b
  a=$(grep -c '^srv1 10.244.1.1$' "$TMP/answers")
  b=$(grep -c '^srv2 10.244.2.1$' "$TMP/answers")
  [ "$a" -ge 5 ] && [ "$b" -ge 5 ] && [ $((a + b)) -eq "$3" ]
}
check "NodePort from outside, ETP Cluster: both endpoints, masqueraded to the node's address" \
  masqueraded "$OUT" http://10.250.9.1:30080/ 40
check "NodePort from outside, ETP Local: only the local endpoint, client address kept" \
  only "$OUT" http://10.250.9.1:30081/ 20 "srv1 10.250.9.100"
check "ClusterIP of an ETP Local Service from a pod still uses both endpoints" \
  spread "$CLIENT" http://10.96.0.101/ 40 5 10.244.9.2
check "no endpoints: the ClusterIP refuses at once (TCP reset)" \
  timeout 30 ip netns exec "$CLIENT" python3 "$TMP/refused.py" 10.96.0.102 80
check "no endpoints: the NodePort refuses at once (TCP reset)" \
  timeout 30 ip netns exec "$OUT" python3 "$TMP/refused.py" 10.250.9.1 30082
check "sessionAffinity ClientIP: 20 connections, one endpoint" \
  sticky "$CLIENT" http://10.96.0.103/ 20
check "apply again (a restarted agent: full re-assert) keeps working" apply
check "ClusterIP after the re-assert" all_ok "$CLIENT" http://10.96.0.100/ 10
check "the node namespace has exactly table ip skiff" \
  bash -c "[ \"\$(ip netns exec $NODE nft list tables)\" = 'table ip skiff' ]"
check "the caller's namespace's nftables tables are unchanged" \
  bash -c "[ \"\$(nft list tables 2>&1)\" = \"\$1\" ]" _ "$HOST_TABLES_BEFORE"
skiff_finish
