# skiff's nftables masquerade (netagent/nft) on real traffic. Four network namespaces this test
# creates, all named skiff-nfttest-*:
#
#   pod  10.244.5.2 --+                                   (cluster CIDR 10.244.0.0/16)
#                     +-- node (router, ip_forward=1) 10.244.5.1 / 10.244.6.1 / 10.250.9.1
#   pod2 10.244.6.2 --+                      |
#                                  outside 10.250.9.100 (no route back to 10.244.0.0/16)
#
# The library installs the masquerade in the node's namespace (the hidden Catch2 case
# "[masquerade-apply]" of skiff_nft_test, run there with nsenter). A python3 server prints the
# peer address it sees: pod -> outside must arrive from 10.250.9.1 (the node), pod -> pod2 from
# 10.244.5.2 (not masqueraded). Without the rule (before it, after delete_skiff_table) the
# outside cannot answer at all. Only addresses inside these namespaces are used.
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || skiff_skip "needs root for network namespaces and nftables"
skiff_need_bin skiff_nft_test
for c in ip nsenter python3 nft timeout; do
  command -v "$c" >/dev/null || skiff_skip "$c missing"
done

NODE=skiff-nfttest-node-$$
POD=skiff-nfttest-pod-$$
POD2=skiff-nfttest-pod2-$$
OUT=skiff-nfttest-out-$$
CLUSTER=10.244.0.0/16
PORT=8080
TMP=$(mktemp -d /tmp/skiff-nfttest.XXXXXX)
HOST_TABLES_BEFORE=$(nft list tables 2>&1)

cleanup() {
  local rc=$?
  local n
  for n in "$POD" "$POD2" "$OUT" "$NODE"; do
    # Servers still running in a namespace (a failed check) are ended by their own PIDs.
    ip netns pids "$n" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
    ip netns del "$n" 2>/dev/null
  done
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

for n in "$NODE" "$POD" "$POD2" "$OUT"; do
  ip netns add "$n" || skiff_die "ip netns add $n"
  ip -n "$n" link set lo up
done
# Veth pairs created from inside the namespaces: nothing appears in the caller's namespace.
ip -n "$NODE" link add n-pod type veth peer name eth0 netns "$POD" || skiff_die "veth pod"
ip -n "$NODE" link add n-pod2 type veth peer name eth0 netns "$POD2" || skiff_die "veth pod2"
ip -n "$NODE" link add n-out type veth peer name eth0 netns "$OUT" || skiff_die "veth out"
ip -n "$NODE" addr add 10.244.5.1/24 dev n-pod
ip -n "$NODE" addr add 10.244.6.1/24 dev n-pod2
ip -n "$NODE" addr add 10.250.9.1/24 dev n-out
ip -n "$POD" addr add 10.244.5.2/24 dev eth0
ip -n "$POD2" addr add 10.244.6.2/24 dev eth0
ip -n "$OUT" addr add 10.250.9.100/24 dev eth0
for l in n-pod n-pod2 n-out; do ip -n "$NODE" link set "$l" up; done
for n in "$POD" "$POD2" "$OUT"; do ip -n "$n" link set eth0 up; done
ip -n "$POD" route add default via 10.244.5.1
ip -n "$POD2" route add default via 10.244.6.1
# The outside has no route to the cluster: only a masqueraded connection can be answered.
ip netns exec "$NODE" sysctl -qw net.ipv4.ip_forward=1 || skiff_die "ip_forward in $NODE"

cat >"$TMP/server.py" <<'PY'
# Accepts one TCP connection, sends the peer's address to it and prints it; gives up after 60 s.
import socket, sys
port, ready = int(sys.argv[1]), sys.argv[2]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port))
s.listen(1)
s.settimeout(60)
open(ready, "w").close()
try:
    c, peer = s.accept()
except socket.timeout:
    print("no connection within 60s")
    sys.exit(2)
c.sendall((peer[0] + "\n").encode())
c.close()
print(peer[0])
PY
cat >"$TMP/client.py" <<'PY'
# Connects (timeout argv[3] s) and prints what the server says: the address it saw us come from.
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    print(s.recv(100).decode().strip())
except OSError as e:
    print("connect %s:%s: %s" % (sys.argv[1], sys.argv[2], e))
    sys.exit(1)
PY

# peer_seen FROM_NS TO_NS TO_IP [CONNECT_TIMEOUT]: connects FROM_NS -> TO_IP (a server in
# TO_NS); prints the address the server saw, or fails. 15 s by default: an expected connection
# must not fail for a slow machine; a connection expected to go unanswered is given 5 s.
peer_seen() {
  local from=$1 to=$2 ip=$3 tmo=${4:-15} i
  rm -f "$TMP/ready" "$TMP/server.out"
  timeout 90 ip netns exec "$to" python3 "$TMP/server.py" "$PORT" "$TMP/ready" >"$TMP/server.out" 2>&1 &
  local spid=$!
  for i in $(seq 1 600); do  # up to 60 s: a python start on 2 busy cores
    [ -e "$TMP/ready" ] && break
    sleep 0.1
  done
  local client
  client=$(timeout 60 ip netns exec "$from" python3 "$TMP/client.py" "$ip" "$PORT" "$tmo")
  local crc=$?
  if [ "$crc" -ne 0 ]; then
    kill "$spid" 2>/dev/null
    wait "$spid" 2>/dev/null
    echo "client: $client"
    return 1
  fi
  wait "$spid"
  local seen
  seen=$(cat "$TMP/server.out")
  [ "$seen" = "$client" ] || { echo "server saw '$seen', client was told '$client'"; return 1; }
  echo "$seen"
}

expect_peer() {  # expect_peer FROM_NS TO_NS TO_IP WANT
  local got
  got=$(peer_seen "$1" "$2" "$3") || { echo "$got"; return 1; }
  [ "$got" = "$4" ] || { echo "the server saw the connection from $got, expected $4"; return 1; }
}

expect_unanswered() {  # expect_unanswered FROM_NS TO_NS TO_IP
  local got
  if got=$(peer_seen "$1" "$2" "$3" 5); then
    echo "connected (server saw $got), but the outside has no route back without masquerade"
    return 1
  fi
}

nft_lib() {  # nft_lib VAR=VALUE: the library, run in the node's namespace
  env "$@" nsenter --net="/run/netns/$NODE" "$SKIFF_BIN/skiff_nft_test" "[masquerade-apply]"
}

check "without masquerade, pod -> outside is not answered (no route back)" \
  expect_unanswered "$POD" "$OUT" 10.250.9.100
check "pod -> pod2 works before masquerade, from 10.244.5.2" \
  expect_peer "$POD" "$POD2" 10.244.6.2 10.244.5.2

check "sync_masquerade($CLUSTER) in the node namespace" nft_lib SKIFF_NFT_APPLY=$CLUSTER
ip netns exec "$NODE" nft list table ip skiff | sed 's/^/  (node) /'
check "the node namespace has exactly table ip skiff" \
  bash -c "[ \"\$(ip netns exec $NODE nft list tables)\" = 'table ip skiff' ]"
check "pod -> outside arrives from the node's address 10.250.9.1" \
  expect_peer "$POD" "$OUT" 10.250.9.100 10.250.9.1
check "pod -> pod2 is not masqueraded (arrives from 10.244.5.2)" \
  expect_peer "$POD" "$POD2" 10.244.6.2 10.244.5.2
check "pod2 -> pod is not masqueraded (arrives from 10.244.6.2)" \
  expect_peer "$POD2" "$POD" 10.244.5.2 10.244.6.2
check "sync again (idempotent)" nft_lib SKIFF_NFT_APPLY=$CLUSTER
# Two rules: packets marked 0x4000 (services' hairpin/NodePort SNAT) and pod traffic leaving.
check "still the same two rules in chain postrouting" \
  bash -c "[ \"\$(ip netns exec $NODE nft list chain ip skiff postrouting | grep -c masquerade)\" = 2 ]"
check "pod2 -> outside arrives from 10.250.9.1" \
  expect_peer "$POD2" "$OUT" 10.250.9.100 10.250.9.1

check "delete_skiff_table in the node namespace" nft_lib SKIFF_NFT_DELETE=1
check "the node namespace has no nftables table left" \
  bash -c "[ -z \"\$(ip netns exec $NODE nft list tables)\" ]"
check "after delete, pod -> outside is not answered again" \
  expect_unanswered "$POD" "$OUT" 10.250.9.100
check "delete again (absent is success)" nft_lib SKIFF_NFT_DELETE=1
check "the caller's namespace's nftables tables are unchanged" \
  bash -c "[ \"\$(nft list tables 2>&1)\" = \"\$1\" ]" _ "$HOST_TABLES_BEFORE"
skiff_finish
