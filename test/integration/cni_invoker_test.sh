# CniInvoker with Debian's containernetworking-plugins (bridge + host-local + loopback, the list
# the kubelet writes for --pod-cidr) through skiff-cni-tool. Everything happens in network
# namespaces this test creates: a "node" netns where the bridge lives (the tool runs there via
# nsenter --net) and two "pod" namespaces. Traffic: one ping between the two pods, inside them.
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || skiff_skip "needs root for network namespaces"
skiff_need_bin skiff-cni-tool
PLUGINS=/usr/lib/cni
for p in bridge host-local loopback; do
  [ -x "$PLUGINS/$p" ] || skiff_skip "$PLUGINS/$p missing (apt-get install containernetworking-plugins)"
done
command -v ip >/dev/null || skiff_skip "iproute2 (ip) missing"
command -v nsenter >/dev/null || skiff_skip "nsenter missing"
if command -v ping >/dev/null; then PING=ping
elif command -v busybox >/dev/null; then PING="busybox ping"
else skiff_skip "no ping (iputils-ping or busybox-static)"; fi

NODE=skiff-cni-node-$$
POD1=skiff-cni-p1-$$
POD2=skiff-cni-p2-$$
TMP=$(mktemp -d /tmp/skiff-cni-test.XXXXXX)
SUBNET=10.250.7

cleanup() {
  local rc=$?
  local n
  for n in "$POD1" "$POD2" "$NODE"; do ip netns del "$n" 2>/dev/null; done
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

mkdir -p "$TMP/net.d" "$TMP/cache" "$TMP/ipam"
cat >"$TMP/net.d/10-skiff.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "skiff-test",
  "plugins": [
    {"type": "bridge", "bridge": "skiff0", "isGateway": true, "ipMasq": false,
     "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$SUBNET.0/24"}]],
              "dataDir": "$TMP/ipam"}},
    {"type": "loopback"}
  ]
}
JSON
# A second, lexically later file must be ignored.
echo '{"cniVersion":"1.0.0","name":"ignored","type":"nope"}' >"$TMP/net.d/99-ignored.conf"

for n in "$NODE" "$POD1" "$POD2"; do ip netns add "$n" || skiff_die "ip netns add $n"; done
ip -n "$NODE" link set lo up

cni() {  # cni CMD ID NETNS [ARGS]: the invoker, run inside the node's network namespace
  nsenter --net="/run/netns/$NODE" "$SKIFF_BIN/skiff-cni-tool" --conf-dir "$TMP/net.d" \
    --bin-dir "$PLUGINS" --cache-dir "$TMP/cache" --timeout 60 "$@"
}

ID1=pod1$$
ID2=pod2$$
check "ADD pod 1" cni add "$ID1" "/run/netns/$POD1" eth0 K8S_POD_NAMESPACE=default K8S_POD_NAME=p1
check "ADD pod 2" cni add "$ID2" "/run/netns/$POD2" eth0 K8S_POD_NAMESPACE=default K8S_POD_NAME=p2
# The cached results hold the IPs (the tool printed them too; the cache is what DEL uses).
ip_of() {
  sed -n "s/.*\"address\":\"\($SUBNET\.[0-9]*\)\/24\".*/\1/p" "$TMP/cache/results/skiff-test-$1-eth0"
}
IP1=$(ip_of "$ID1")
IP2=$(ip_of "$ID2")
echo "pod 1: $IP1  pod 2: $IP2"
check "pod 1 got an address in $SUBNET.0/24" test -n "$IP1"
check "pod 2 got a different address" bash -c "[ -n '$IP2' ] && [ '$IP1' != '$IP2' ]"
check "ADD again answers from the cache with the same IP" \
  bash -c "$(declare -f cni); NODE=$NODE TMP=$TMP PLUGINS=$PLUGINS SKIFF_BIN=$SKIFF_BIN; cni add $ID1 /run/netns/$POD1 2>&1 | grep -q 'ip $IP1\$'"
check "eth0 in pod 1 has $IP1" bash -c "ip -n $POD1 -4 addr show eth0 | grep -q 'inet $IP1/24'"
check "lo is up in pod 1 (loopback plugin)" bash -c "ip -n $POD1 link show lo | grep -q 'UP'"
check "the bridge exists in the node netns" ip -n "$NODE" link show skiff0
check "host-local recorded both addresses" test -f "$TMP/ipam/skiff-test/$IP1" -a -f "$TMP/ipam/skiff-test/$IP2"
check "ping pod 1 -> pod 2" ip netns exec "$POD1" $PING -c 1 -W 5 "$IP2"
check "ping pod 2 -> gateway on the bridge" ip netns exec "$POD2" $PING -c 1 -W 5 "$SUBNET.1"
check "CHECK pod 1" cni check "$ID1" "/run/netns/$POD1"
check "CHECK pod 2" cni check "$ID2" "/run/netns/$POD2"
check "CHECK fails once eth0 is gone from pod 2" \
  bash -c "ip -n $POD2 link set eth0 name eth9 && ! ( $(declare -f cni); NODE=$NODE TMP=$TMP PLUGINS=$PLUGINS SKIFF_BIN=$SKIFF_BIN; cni check $ID2 /run/netns/$POD2 ); rc=\$?; ip -n $POD2 link set eth9 name eth0; exit \$rc"

check "DEL pod 1" cni del "$ID1" "/run/netns/$POD1"
check "pod 1's address is released" test ! -e "$TMP/ipam/skiff-test/$IP1"
check "pod 1's eth0 is gone" bash -c "! ip -n $POD1 link show eth0 2>/dev/null"
check "pod 1's cache entry is gone" test ! -e "$TMP/cache/results/skiff-test-$ID1-eth0"
check "DEL pod 1 again is OK" cni del "$ID1" "/run/netns/$POD1"
ip netns del "$POD2"
check "DEL pod 2 after its netns was deleted is OK" cni del "$ID2" "/run/netns/$POD2"
check "pod 2's address is released" test ! -e "$TMP/ipam/skiff-test/$IP2"
check "the cache is empty" bash -c "[ -z \"\$(ls -A $TMP/cache/results)\" ]"
cni add bad1 /run/netns/does-not-exist 2>&1 | sed 's/^/  (expected error) /'
check "an error names plugin, command and container" bash -c \
  "$(declare -f cni); NODE=$NODE TMP=$TMP PLUGINS=$PLUGINS SKIFF_BIN=$SKIFF_BIN; out=\$(cni add bad1 /run/netns/does-not-exist 2>&1) && exit 1; echo \"\$out\"; echo \"\$out\" | grep -q 'CNI plugin bridge ADD for container bad1: code '"
check "the failed ADD left no address allocated" \
  bash -c "[ -z \"\$(ls $TMP/ipam/skiff-test | grep '^$SUBNET')\" ]"
skiff_finish
