# The skiff CNI plugin driven exactly as the CNI spec says a runtime does: CNI_* environment,
# network config on stdin, result or error JSON on stdout. Everything happens in network
# namespaces this test creates: a "node" netns where the plugin runs (nsenter --net) and the
# bridge lives, and "pod" namespaces made with `ip netns add` (the test uses `ip` to look; the
# plugin never does). Traffic: pings between two pods, inside them. Also measures ADD latency.
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || skiff_skip "needs root for network namespaces"
skiff_need_bin skiff
command -v ip >/dev/null || skiff_skip "iproute2 (ip) missing"
command -v nsenter >/dev/null || skiff_skip "nsenter missing"
if command -v ping >/dev/null; then PING=ping
elif command -v busybox >/dev/null; then PING="busybox ping"
else skiff_skip "no ping (iputils-ping or busybox-static)"; fi

TAG=$$
NODE=skiff-cnip-node-$TAG
NSS=("$NODE")  # every namespace we make, for cleanup
TMP=$(mktemp -d /tmp/skiff-cni-plugin-test.XXXXXX)
PLUGIN=$SKIFF_BIN/skiff
SUBNET=10.250.8
N_MANY=${SKIFF_CNI_MANY:-50}

cleanup() {
  local rc=$?
  local n
  for n in "${NSS[@]}"; do ip netns del "$n" 2>/dev/null; done
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

mkns() { ip netns add "$1" || skiff_die "ip netns add $1"; NSS+=("$1"); }
mkns "$NODE"
ip -n "$NODE" link set lo up

conf() {  # conf NAME SUBNET [extra JSON fields]
  echo "{\"cniVersion\":\"1.0.0\",\"name\":\"$1\",\"type\":\"skiff\",\"subnet\":\"$2\",\"dataDir\":\"$TMP/ipam/$1\"${3:+,$3}}"
}
CONF=$(conf skiff-test "$SUBNET.0/24")

# plug CMD ID NETNS_PATH [CONF] [IFNAME]: one plugin run in the node netns; prints its stdout.
# An empty NETNS_PATH leaves CNI_NETNS out (DEL after the netns is gone).
plug() {
  local cmd=$1 id=$2 netns=$3 cf=${4:-$CONF} ifn=${5:-eth0}
  local -a env=(CNI_COMMAND="$cmd" CNI_CONTAINERID="$id" CNI_IFNAME="$ifn" CNI_PATH="$SKIFF_BIN")
  [ -n "$netns" ] && env+=(CNI_NETNS="$netns")
  printf '%s' "$cf" | timeout 30 nsenter --net="/run/netns/$NODE" env -i PATH="$PATH" "${env[@]}" \
    "$PLUGIN"
}
# py FILE EXPR: evaluates a Python expression over the JSON in FILE (as `j`).
py() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }
# expect_error FILE RC CODE: the run failed (rc != 0) and printed the spec's error JSON.
expect_error() {
  local f=$1 rc=$2 code=$3
  [ "$rc" -ne 0 ] || { echo "exit status 0"; cat "$f"; return 1; }
  python3 - "$f" "$code" <<'PY' || { cat "$f"; return 1; }
import json, sys
j = json.load(open(sys.argv[1]))
assert j["code"] == int(sys.argv[2]), f"code {j['code']} != {sys.argv[2]}"
assert isinstance(j["msg"], str) and j["msg"], "msg missing"
assert j["cniVersion"], "cniVersion missing"
PY
}

# ---- VERSION
plug VERSION x "" >"$TMP/version.json"
check "VERSION lists 0.3.0 0.3.1 0.4.0 1.0.0" \
  py "$TMP/version.json" '"ok" if all(v in j["supportedVersions"] for v in ["0.3.0","0.3.1","0.4.0","1.0.0"]) else sys.exit(1)'

# ---- ADD / result / kernel state
P1=skiff-cnip-p1-$TAG; P2=skiff-cnip-p2-$TAG
mkns "$P1"; mkns "$P2"
plug ADD pod1 "/run/netns/$P1" >"$TMP/add1.json"; rc=$?
check "ADD pod 1 exits 0" test "$rc" -eq 0
check "ADD result is the 1.0.0 shape" python3 - "$TMP/add1.json" "/run/netns/$P1" "$SUBNET" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); ns = sys.argv[2]; net = sys.argv[3]
assert j["cniVersion"] == "1.0.0", j
names = [i["name"] for i in j["interfaces"]]
assert names[0] == "skiff0" and names[1].startswith("veth") and names[2] == "eth0", names
assert j["interfaces"][2]["sandbox"] == ns, j["interfaces"][2]
assert all(len(i["mac"]) == 17 for i in j["interfaces"]), j["interfaces"]
assert "sandbox" not in j["interfaces"][0] and "sandbox" not in j["interfaces"][1]
ip = j["ips"][0]
assert ip["address"].startswith(net + ".") and ip["address"].endswith("/24"), ip
assert ip["gateway"] == net + ".1" and ip["interface"] == 2 and "version" not in ip, ip
assert {"dst": "0.0.0.0/0", "gw": net + ".1"} in j["routes"], j["routes"]
assert "dns" in j
PY
IP1=$(py "$TMP/add1.json" 'j["ips"][0]["address"].split("/")[0]')
VETH1=$(py "$TMP/add1.json" 'j["interfaces"][1]["name"]')
MAC1=$(py "$TMP/add1.json" 'j["interfaces"][2]["mac"]')
echo "pod 1: $IP1 on $VETH1"
check "eth0 in pod 1 has $IP1/24 and the result's MAC" \
  bash -c "ip -n $P1 addr show eth0 | grep -q 'inet $IP1/24' && ip -n $P1 link show eth0 | grep -q 'link/ether $MAC1'"
check "pod 1 default route via the gateway" \
  bash -c "ip -n $P1 route show default | grep -q 'via $SUBNET.1 dev eth0'"
check "bridge skiff0 is up with the gateway $SUBNET.1/24" \
  bash -c "ip -n $NODE addr show skiff0 | grep -q 'inet $SUBNET.1/24' && ip -n $NODE link show skiff0 | grep -q ',UP'"
check "host end $VETH1 is on skiff0, up, hairpin on" \
  bash -c "ip -n $NODE -d link show $VETH1 | grep -q 'master skiff0 state UP' && ip -n $NODE -d link show $VETH1 | grep -q 'hairpin on'"
check "IPAM file records the owner" bash -c "[ \"\$(cat $TMP/ipam/skiff-test/$IP1)\" = \"\$(printf 'pod1\neth0')\" ]"

plug ADD pod1 "/run/netns/$P1" >"$TMP/add1b.json"; rc=$?
check "ADD again exits 0 with the same result" bash -c "[ $rc -eq 0 ] && cmp $TMP/add1.json $TMP/add1b.json"
plug CHECK pod1 "/run/netns/$P1" >"$TMP/check1.out"; rc=$?
check "CHECK pod 1 passes (exit 0, no output)" bash -c "[ $rc -eq 0 ] && [ ! -s $TMP/check1.out ]"

plug ADD pod2 "/run/netns/$P2" >"$TMP/add2.json"; rc=$?
check "ADD pod 2 exits 0" test "$rc" -eq 0
IP2=$(py "$TMP/add2.json" 'j["ips"][0]["address"].split("/")[0]')
check "pod 2 got another address ($IP2)" bash -c "[ -n '$IP2' ] && [ '$IP1' != '$IP2' ]"
check "ping pod 1 -> pod 2" ip netns exec "$P1" $PING -c 1 -W 5 "$IP2"
check "ping pod 2 -> pod 1" ip netns exec "$P2" $PING -c 1 -W 5 "$IP1"
check "ping pod 2 -> gateway" ip netns exec "$P2" $PING -c 1 -W 5 "$SUBNET.1"

# CHECK notices a missing route; ADD repairs it (idempotent ensure).
ip -n "$P1" route del default
plug CHECK pod1 "/run/netns/$P1" >"$TMP/check1b.json"; rc=$?
check "CHECK without the default route fails with error JSON (code 103)" expect_error "$TMP/check1b.json" "$rc" 103
plug ADD pod1 "/run/netns/$P1" >/dev/null
check "ADD again restores the route; CHECK passes" plug CHECK pod1 "/run/netns/$P1"

# ---- DEL
plug DEL pod1 "/run/netns/$P1" >"$TMP/del1.out"; rc=$?
check "DEL pod 1 exits 0" test "$rc" -eq 0
check "eth0 is gone from pod 1" bash -c "! ip -n $P1 link show eth0 2>/dev/null"
check "the host end is gone" bash -c "! ip -n $NODE link show $VETH1 2>/dev/null"
check "the address is released" test ! -e "$TMP/ipam/skiff-test/$IP1"
check "DEL pod 1 again exits 0" plug DEL pod1 "/run/netns/$P1"
plug CHECK pod1 "/run/netns/$P1" >"$TMP/check1c.json"; rc=$?
check "CHECK after DEL fails (code 103)" expect_error "$TMP/check1c.json" "$rc" 103

P3=skiff-cnip-p3-$TAG
mkns "$P3"
plug ADD pod3 "/run/netns/$P3" >"$TMP/add3.json"
IP3=$(py "$TMP/add3.json" 'j["ips"][0]["address"].split("/")[0]')
VETH3=$(py "$TMP/add3.json" 'j["interfaces"][1]["name"]')
ip netns del "$P3"
check "DEL with the netns gone exits 0" plug DEL pod3 "/run/netns/$P3"
check "... and releases $IP3" test ! -e "$TMP/ipam/skiff-test/$IP3"
check "... and no host end is left" bash -c "! ip -n $NODE link show $VETH3 2>/dev/null"
check "DEL without CNI_NETNS exits 0" plug DEL pod3 ""
check "DEL of pod 2 exits 0" plug DEL pod2 "/run/netns/$P2"

# ---- errors: the spec's error JSON on stdout and a non-zero exit
plug ADD bad "/run/netns/$P1" "$(conf skiff-test '')" >"$TMP/e7.json"; rc=$?
check "config without subnet: code 7" expect_error "$TMP/e7.json" "$rc" 7
plug ADD bad "/run/netns/$P1" '{"cniVersion":"1.0.0", nope' >"$TMP/e6.json"; rc=$?
check "config that is not JSON: code 6" expect_error "$TMP/e6.json" "$rc" 6
plug ADD bad "/run/netns/$P1" '{"cniVersion":"0.2.0","name":"x","type":"skiff","subnet":"10.1.0.0/24"}' >"$TMP/e1.json"; rc=$?
check "unsupported cniVersion: code 1" expect_error "$TMP/e1.json" "$rc" 1
plug ADD 'bad/id' "/run/netns/$P1" >"$TMP/e4.json"; rc=$?
check "bad CNI_CONTAINERID: code 4" expect_error "$TMP/e4.json" "$rc" 4
plug ADD bad "/run/netns/skiff-cnip-none-$TAG" >"$TMP/e3.json"; rc=$?
check "ADD into a missing netns: code 3" expect_error "$TMP/e3.json" "$rc" 3
check "... and nothing was allocated" bash -c "[ -z \"\$(ls $TMP/ipam/skiff-test | grep -v -e lock -e last_reserved)\" ]"

# ---- an exhausted range: a /29 holds 5 pods (network, gateway and broadcast excluded)
SMALL=$(conf small 10.250.9.0/29 '"bridge":"skiff1"')
for i in 1 2 3 4 5 6; do mkns "skiff-cnip-s$i-$TAG"; done
ok=0
for i in 1 2 3 4 5; do plug ADD "s$i" "/run/netns/skiff-cnip-s$i-$TAG" "$SMALL" >/dev/null && ok=$((ok + 1)); done
check "5 ADDs fit in a /29" test "$ok" -eq 5
plug ADD s6 "/run/netns/skiff-cnip-s6-$TAG" "$SMALL" >"$TMP/e11.json"; rc=$?
check "the 6th ADD: code 11 (try again later) naming the range" \
  bash -c "$(declare -f expect_error); expect_error $TMP/e11.json $rc 11 && grep -q '10.250.9.0/29' $TMP/e11.json"
check "... and leaves no interface in its netns" bash -c "! ip -n skiff-cnip-s6-$TAG link show eth0 2>/dev/null"
plug DEL s3 "/run/netns/skiff-cnip-s3-$TAG" "$SMALL" >/dev/null
check "after one DEL the 6th ADD succeeds" plug ADD s6 "/run/netns/skiff-cnip-s6-$TAG" "$SMALL"
for i in 1 2 4 5 6; do plug DEL "s$i" "/run/netns/skiff-cnip-s$i-$TAG" "$SMALL" >/dev/null; done
check "all /29 addresses released" bash -c "[ -z \"\$(ls $TMP/ipam/small | grep -v -e lock -e last_reserved)\" ]"

# ---- versions before 1.0.0 and the MTU
V031=$(conf old 10.250.10.0/24 '"bridge":"skiff2"' | sed 's/"1.0.0"/"0.3.1"/')
mkns "skiff-cnip-v-$TAG"
plug ADD v1 "/run/netns/skiff-cnip-v-$TAG" "$V031" >"$TMP/v031.json"
check "cniVersion 0.3.1: result in 0.3.1 with ips[].version 4" \
  py "$TMP/v031.json" '"ok" if j["cniVersion"]=="0.3.1" and j["ips"][0]["version"]=="4" else sys.exit(1)'
plug DEL v1 "/run/netns/skiff-cnip-v-$TAG" "$V031" >/dev/null
# An "underlay": a (veth) device with MTU 9000 holding the node's default route.
ip -n "$NODE" link add skiff-under mtu 9000 type veth peer name skiff-under-p mtu 9000
ip -n "$NODE" link set skiff-under-p up
ip -n "$NODE" link set skiff-under up
ip -n "$NODE" addr add 192.0.2.10/24 dev skiff-under
ip -n "$NODE" route add default via 192.0.2.1 dev skiff-under
VX=$(conf vx 10.250.11.0/24 '"bridge":"skiff3","mode":"vxlan"')
plug ADD v2 "/run/netns/skiff-cnip-v-$TAG" "$VX" >/dev/null
check "vxlan mode: pod MTU = underlay 9000 - 50" bash -c "ip -n skiff-cnip-v-$TAG link show eth0 | grep -q 'mtu 8950'"
plug DEL v2 "/run/netns/skiff-cnip-v-$TAG" "$VX" >/dev/null
FIX=$(conf fix 10.250.12.0/24 '"bridge":"skiff4","mtu":1400')
plug ADD v3 "/run/netns/skiff-cnip-v-$TAG" "$FIX" >/dev/null
check "configured MTU 1400 on both ends" \
  bash -c "ip -n skiff-cnip-v-$TAG link show eth0 | grep -q 'mtu 1400' && ip -n $NODE link show master skiff4 | grep -q 'mtu 1400'"
plug DEL v3 "/run/netns/skiff-cnip-v-$TAG" "$FIX" >/dev/null

# ---- CNI 1.1: STATUS, and GC frees what the runtime no longer knows
G11=$(conf gc 10.250.15.0/24 '"bridge":"skiff6"' | sed 's/"1.0.0"/"1.1.0"/')
mkns "skiff-cnip-g1-$TAG"; mkns "skiff-cnip-g2-$TAG"
plug ADD g1 "/run/netns/skiff-cnip-g1-$TAG" "$G11" >"$TMP/g1.json"
plug ADD g2 "/run/netns/skiff-cnip-g2-$TAG" "$G11" >"$TMP/g2.json"
GIP2=$(py "$TMP/g2.json" 'j["ips"][0]["address"].split("/")[0]')
GVETH2=$(py "$TMP/g2.json" 'j["interfaces"][1]["name"]')
check "STATUS (1.1.0) exits 0" plug STATUS "" "" "$G11"
GCCONF=$(echo "$G11" | sed 's/}$/,"cni.dev\/valid-attachments":[{"containerID":"g1","ifname":"eth0"}]}/')
check "GC with only g1 valid exits 0" plug GC "" "" "$GCCONF"
check "GC freed g2's address and host end, kept g1" \
  bash -c "[ ! -e $TMP/ipam/gc/$GIP2 ] && ! ip -n $NODE link show $GVETH2 2>/dev/null && ls $TMP/ipam/gc | grep -q '^10.250.15'"
plug GC "" "" "$CONF" >"$TMP/gc10.json"; rc=$?
check "GC with a 1.0.0 config: code 1" expect_error "$TMP/gc10.json" "$rc" 1
plug DEL g1 "/run/netns/skiff-cnip-g1-$TAG" "$G11" >/dev/null

# ---- ADD latency (sequential, as a kubelet starting pods one by one) and 50 concurrent ADDs
for i in $(seq 1 "$N_MANY"); do mkns "skiff-cnip-m$i-$TAG"; done
# The same loop with Debian's bridge + host-local (the reference plugins) and with /bin/true (the
# cost of the exec alone) puts the figure in context on a shared, loaded machine.
REF=""
if [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ]; then
  REF="{\"cniVersion\":\"1.0.0\",\"name\":\"ref\",\"type\":\"bridge\",\"bridge\":\"skiffref0\",\"isGateway\":true,\"hairpinMode\":true,\"ipam\":{\"type\":\"host-local\",\"subnet\":\"10.250.14.0/24\",\"dataDir\":\"$TMP/ipam/ref\"}}"
fi
nsenter --net="/run/netns/$NODE" python3 - "$PLUGIN" "$CONF" "$TAG" "$N_MANY" "$REF" >"$TMP/latency.txt" <<'PY'
import os, resource, subprocess, sys, time
plugin, conf, tag, n, ref = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
def run(binary, cfg, cmd, i):
    env = {"PATH": os.environ["PATH"], "CNI_COMMAND": cmd, "CNI_CONTAINERID": f"lat{i}",
           "CNI_NETNS": f"/run/netns/skiff-cnip-m{i}-{tag}", "CNI_IFNAME": "eth0",
           "CNI_PATH": "/usr/lib/cni"}
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run([binary], input=cfg.encode(), env=env, capture_output=True, timeout=30)
    dt = (time.perf_counter() - t) * 1000
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) * 1000
    if p.returncode != 0 and binary != "/bin/true":
        print(f"FAILED {binary} {cmd} {i}: {p.stdout.decode()}")
        sys.exit(1)
    return dt, cpu
def measure(label, binary, cfg, cmds):
    for cmd in cmds:
        rs = [run(binary, cfg, cmd, i) for i in range(1, n + 1)]
        ts = sorted(r[0] for r in rs)
        cs = sorted(r[1] for r in rs)
        print(f"{label} {cmd} over {n} runs (ms): wall p50 {ts[n//2]:.2f}  p90 {ts[n*9//10]:.2f}  "
              f"max {ts[-1]:.2f}; cpu (user+sys) p50 {cs[n//2]:.2f}")
measure("skiff", plugin, conf, ["ADD", "DEL"])
if ref:
    measure("reference bridge+host-local", "/usr/lib/cni/bridge", ref, ["ADD", "DEL"])
measure("exec floor (/bin/true)", "/bin/true", "", ["ADD"])
print(f"load average: {open('/proc/loadavg').read().split()[0]}")
PY
rc=$?
cat "$TMP/latency.txt"
check "$N_MANY sequential ADDs and DELs succeed (latency measured)" test "$rc" -eq 0

pids=()
for i in $(seq 1 "$N_MANY"); do
  plug ADD "many$i" "/run/netns/skiff-cnip-m$i-$TAG" >"$TMP/many$i.json" 2>"$TMP/many$i.err" &
  pids+=($!)
done
fails=0
for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done  # each run is under `timeout 30`
check "$N_MANY concurrent ADDs all exit 0" test "$fails" -eq 0
distinct=$(for i in $(seq 1 "$N_MANY"); do py "$TMP/many$i.json" 'j["ips"][0]["address"]' 2>/dev/null; done | sort -u | wc -l)
check "$N_MANY concurrent ADDs got $N_MANY distinct addresses (got $distinct)" test "$distinct" -eq "$N_MANY"
check "pod m1 reaches pod m$N_MANY" ip netns exec "skiff-cnip-m1-$TAG" $PING -c 1 -W 5 \
  "$(py "$TMP/many$N_MANY.json" 'j["ips"][0]["address"].split("/")[0]')"
pids=()
for i in $(seq 1 "$N_MANY"); do plug DEL "many$i" "/run/netns/skiff-cnip-m$i-$TAG" >/dev/null & pids+=($!); done
fails=0
for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
check "$N_MANY concurrent DELs all exit 0" test "$fails" -eq 0
check "every address is released" bash -c "[ -z \"\$(ls $TMP/ipam/skiff-test | grep -v -e lock -e last_reserved)\" ]"
check "no veth is left on the node" bash -c "! ip -n $NODE link show type veth | grep -q veth"

# ---- the kubelet's path: CniInvoker (skiff-cni-tool) running `skiff` from a conflist
if [ -x "$SKIFF_BIN/skiff-cni-tool" ] && [ -x /usr/lib/cni/loopback ]; then
  mkdir -p "$TMP/net.d" "$TMP/cache"
  cat >"$TMP/net.d/10-skiff.conflist" <<JSON
{"cniVersion":"1.0.0","name":"skiff-inv","plugins":[
  {"type":"skiff","subnet":"10.250.13.0/24","bridge":"skiff5","dataDir":"$TMP/ipam/inv"},
  {"type":"loopback"}]}
JSON
  PI=skiff-cnip-inv-$TAG
  mkns "$PI"
  tool() {
    timeout 60 nsenter --net="/run/netns/$NODE" "$SKIFF_BIN/skiff-cni-tool" --conf-dir "$TMP/net.d" \
      --bin-dir "$SKIFF_BIN" --bin-dir /usr/lib/cni --cache-dir "$TMP/cache" "$@"
  }
  out=$(tool add inv1 "/run/netns/$PI" eth0 K8S_POD_NAMESPACE=default K8S_POD_NAME=p 2>&1)
  check "invoker ADD through skiff + loopback" matches "$out" '^ip 10\.250\.13\.[0-9]+$'
  check "invoker CHECK" tool check inv1 "/run/netns/$PI"
  check "ping pod -> gateway after the invoker's ADD" ip netns exec "$PI" $PING -c 1 -W 5 10.250.13.1
  check "invoker DEL" tool del inv1 "/run/netns/$PI"
  check "invoker DEL released the address" bash -c "[ -z \"\$(ls $TMP/ipam/inv | grep -v -e lock -e last_reserved)\" ]"
else
  echo "note: skiff-cni-tool not built or /usr/lib/cni/loopback missing; invoker case not run"
fi

skiff_finish
