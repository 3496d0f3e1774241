#!/usr/bin/env bash
# bench/net.sh: how fast the pod network is. Not a test: it prints what it measured next to a
# reference measured in the same run, and the ratios.
#
# (1) CNI ADD/DEL latency of the skiff plugin, and of Debian's bridge + host-local
#     (/usr/lib/cni) in the same loop, interleaved, in throwaway network namespaces.
# (2) TCP throughput (iperf3, one stream) and request/response rate (bench_net_rr: 1 byte each
#     way over one connection) between:
#       node1 <-> node2 on the lab LAN (the floor),
#       two pods on node1,
#       a pod on node1 <-> a pod on node2,
#     in a 2-node lab (deploy/lab.sh) with the vxlan backend, then again with host-gw.
#     iperf3 and bench_net_rr are the host's binaries run inside the pods' network namespaces
#     (nsenter --net on the kubelet's pinned sandbox namespace, from the node's mount namespace).
#
# Usage: bench/net.sh [--quick] [--seconds S] [--only cni|lab|local] [--backends "vxlan host-gw"]
#                     [--cni-runs N] [--rounds R] [--rr PATH] [--force]
#   --quick       2 s per measurement, 1 round, 20 CNI runs
#   --rounds R    data-path rounds per lab, 1..10 (default 5). Printed: the median over rounds
#                 of each absolute figure, and per path the median of the per-round paired
#                 ratios (path / the same round's floor; floor / path for RTT p50) with their
#                 range over rounds, e.g. 0.88x (0.79-0.95); no range with 1 round
#   --only local  (2) between two network namespaces joined by a veth pair instead of the lab:
#                 checks the measuring itself
#   --rr PATH     bench_net_rr (default: BUILD/bench/bench_net_rr)
#   --force       replace a running lab of the same name (without it, the benchmark refuses)
# Env: SKIFF_BUILD_DIR (default <repo>/build; needs skiff, bench/bench_net_rr and what lab.sh
#      runs), SKIFF_LAB_NAME (default skiff-benchnet: a lab of its own beside others),
#      SKIFF_LAB_DIR (default /tmp/<name>), SKIFF_LAB_NOBUILD=1 (passed to lab.sh).
# Needs root, iperf3, nsenter, python3. Traffic stays inside namespaces this script or lab.sh
# made; every loop has a count and a time limit; everything is removed at the end (also on
# Ctrl-C): namespaces, the lab (when this script brought it up), temp files.
set -uo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
build=${SKIFF_BUILD_DIR:-$src/build}
export SKIFF_BUILD_DIR=$build
lab="$src/deploy/lab.sh"
# A lab of its own name (lab.sh's SKIFF_LAB_NAME), so it runs beside the e2e tests' labs.
export SKIFF_LAB_NAME=${SKIFF_LAB_NAME:-skiff-benchnet}
lab_dir=${SKIFF_LAB_DIR:-/tmp/$SKIFF_LAB_NAME}
export SKIFF_LAB_DIR=$lab_dir
lab_marker=/run/skiff-lab/$SKIFF_LAB_NAME.dir
secs=5
cni_runs=50
rounds=5
only=""
backends="vxlan host-gw"
force=0
rr_count=2000000  # the time limit (secs) ends a run first on any real machine
rr=$build/bench/bench_net_rr

usage() { sed -n '/^# Usage:/,/^# Needs root/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) secs=2; cni_runs=20; rounds=1; shift ;;
    --rounds) [[ ${2:-} =~ ^[0-9]+$ ]] && [ "$2" -ge 1 ] && [ "$2" -le 10 ] ||
      { echo "net.sh: --rounds needs 1..10" >&2; exit 2; }; rounds=$2; shift 2 ;;
    --seconds) [[ ${2:-} =~ ^[0-9]+$ ]] && [ "$2" -ge 1 ] && [ "$2" -le 60 ] ||
      { echo "net.sh: --seconds needs 1..60" >&2; exit 2; }; secs=$2; shift 2 ;;
    --cni-runs) [[ ${2:-} =~ ^[0-9]+$ ]] && [ "$2" -ge 2 ] && [ "$2" -le 500 ] ||
      { echo "net.sh: --cni-runs needs 2..500" >&2; exit 2; }; cni_runs=$2; shift 2 ;;
    --only) case "${2:-}" in cni | lab | local) only=$2 ;; *) echo "net.sh: --only cni|lab|local" >&2; exit 2 ;; esac; shift 2 ;;
    --backends) backends=${2:-}; shift 2 ;;
    --force) force=1; shift ;;
    --rr) rr=${2:-}; shift 2 ;;
    -h | --help) usage ;;
    *) echo "net.sh: unknown flag '$1'" >&2; usage ;;
  esac
done
for b in $backends; do
  case "$b" in vxlan | host-gw) ;; *) echo "net.sh: unknown backend '$b'" >&2; exit 2 ;; esac
done

[ "$(id -u)" = 0 ] || { echo "net.sh: needs root (network namespaces)" >&2; exit 1; }
for t in iperf3 nsenter python3 ip timeout; do
  command -v "$t" >/dev/null || { echo "net.sh: $t missing (apt-get install iperf3 util-linux iproute2)" >&2; exit 1; }
done
[ -x "$rr" ] || { echo "net.sh: $rr missing (ninja -C $build bench_net_rr)" >&2; exit 1; }

tag=$$
tmp=$(mktemp -d /tmp/skiff-bench-net.XXXXXX)
nss=()        # network namespaces we made
lab_up=0      # 1 while a lab we brought up runs
cleanup() {
  local n
  for n in "${nss[@]}"; do ip netns del "$n" 2>/dev/null; done
  if [ "$lab_up" = 1 ] && lab_is_mine; then bash "$lab" down >/dev/null 2>&1; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# Only ever take down the lab this script brought up (lab.sh records a running lab's dir in
# /run/skiff-lab/<name>.dir).
lab_is_mine() { [ "$(cat "$lab_marker" 2>/dev/null)" = "$lab_dir" ]; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
mkns() { ip netns add "$1" && nss+=("$1"); }

# ---------------------------------------------------------------------------------------------
# (1) CNI ADD latency

cni_lines=()
bench_cni() {
  [ -x "$build/skiff" ] || { log "skiff CNI plugin not built: (1) skipped"; return; }
  local node=skiff-benchtmp-cni-$tag i ref=""
  mkns "$node" || return
  ip -n "$node" link set lo up
  for i in $(seq 1 "$cni_runs"); do mkns "skiff-benchtmp-p$i-$tag" || return; done
  local conf="{\"cniVersion\":\"1.0.0\",\"name\":\"bench\",\"type\":\"skiff\",\"subnet\":\"10.250.20.0/24\",\"dataDir\":\"$tmp/ipam/skiff\"}"
  if [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ]; then
    ref="{\"cniVersion\":\"1.0.0\",\"name\":\"ref\",\"type\":\"bridge\",\"bridge\":\"skiffref0\",\"isGateway\":true,\"hairpinMode\":true,\"ipam\":{\"type\":\"host-local\",\"subnet\":\"10.250.21.0/24\",\"dataDir\":\"$tmp/ipam/ref\"}}"
  else
    log "Debian's CNI plugins missing (/usr/lib/cni; apt-get install containernetworking-plugins): no reference"
  fi
  log "CNI: $cni_runs ADDs then DELs per plugin, interleaved (skiff eth0, reference eth1 in the same pod netns)"
  # Each run: exec the plugin as a runtime does (CNI_* env, config on stdin) inside the node
  # netns; a pod netns gets skiff's eth0 and the reference's eth1, one after the other, so
  # machine noise hits both alike. The exec of /bin/true is the floor of any plugin.
  nsenter --net="/run/netns/$node" python3 - "$build/skiff" "$conf" "$ref" "$tag" "$cni_runs" \
    >"$tmp/cni.txt" 2>"$tmp/cni.err" <<'PY'
import os, subprocess, sys, time, math
plugin, conf, ref, tag, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
def run(binary, cfg, cmd, i, ifname):
    env = {"PATH": os.environ["PATH"], "CNI_COMMAND": cmd, "CNI_CONTAINERID": f"bench{i}",
           "CNI_NETNS": f"/run/netns/skiff-benchtmp-p{i}-{tag}", "CNI_IFNAME": ifname,
           "CNI_PATH": "/usr/lib/cni"}
    t = time.perf_counter()
    p = subprocess.run([binary], input=cfg.encode(), env=env, capture_output=True, timeout=30)
    dt = (time.perf_counter() - t) * 1000
    if p.returncode != 0 and binary != "/bin/true":
        sys.exit(f"{binary} {cmd} #{i} failed: {p.stdout.decode()} {p.stderr.decode()}")
    return dt
tools = [("skiff", plugin, conf, "eth0")]
if ref:
    tools.append(("bridge+host-local", "/usr/lib/cni/bridge", ref, "eth1"))
tools.append(("exec /bin/true", "/bin/true", "", "eth2"))
res = {}
deadline = time.monotonic() + 300
for cmd in ("ADD", "DEL"):
    for i in range(1, n + 1):
        if time.monotonic() > deadline:
            sys.exit("CNI loop over its 300 s limit")
        for name, b, cfg, ifn in tools:
            if cmd == "DEL" and b == "/bin/true":
                continue
            res.setdefault((name, cmd), []).append(run(b, cfg, cmd, i, ifn))
def pct(v, p):  # nearest rank
    v = sorted(v)
    return v[max(1, math.ceil(p * len(v))) - 1]
for (name, cmd), v in res.items():
    print(f"{name}\t{cmd}\t{len(v)}\t{pct(v, .5):.2f}\t{pct(v, .9):.2f}\t{max(v):.2f}")
PY
  local rc=$?
  for i in $(seq 1 "$cni_runs"); do ip netns del "skiff-benchtmp-p$i-$tag" 2>/dev/null; done
  ip netns del "$node" 2>/dev/null
  if [ $rc -ne 0 ]; then log "CNI measurement failed: $(cat "$tmp/cni.err")"; return; fi
  mapfile -t cni_lines <"$tmp/cni.txt"
}

# ---------------------------------------------------------------------------------------------
# (2) throughput and request/response between two endpoints

declare -A tput=() rate=() p50=() n_ok=()
declare -A x_tput=() x_rate=() x_p50=()  # per path: "median (lo-hi)" of the per-round ratios
port=5300

# measure KEY SERVER_IP "SERVER_PREFIX" "CLIENT_PREFIX": iperf3 then bench_net_rr, the server
# side run with SERVER_PREFIX (a command that enters its namespace), the client with
# CLIENT_PREFIX. Sets tput[KEY] (Gbit/s), rate[KEY] (round trips/s), p50[KEY] (us).
measure() {
  local key=$1 ip=$2 srv=$3 cli=$4 out
  port=$((port + 2))
  tput[$key]="" rate[$key]="" p50[$key]=""
  # The server serves one test (-1) and is bounded by timeout; the client retries while the
  # server is still starting.
  # shellcheck disable=SC2086
  timeout $((secs + 30)) $srv taskset -c 1 iperf3 -s -1 -B "$ip" -p "$port" >"$tmp/iperf-s.log" 2>&1 &
  local spid=$!
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    sleep 0.3
    # shellcheck disable=SC2086
    out=$(timeout $((secs + 20)) $cli taskset -c 0 iperf3 -c "$ip" -p "$port" -t "$secs" -J 2>&1) && break
    case "$out" in *"Connection refused"* | *"unable to connect"*) continue ;; *) break ;; esac
  done
  wait "$spid" 2>/dev/null
  tput[$key]=$(printf '%s' "$out" | python3 -c \
    'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))' \
    2>/dev/null) || { log "$key: iperf3 failed: $(printf '%s' "$out" | head -c 400)"; tput[$key]=""; }
  # shellcheck disable=SC2086
  timeout $((secs + 30)) $srv taskset -c 1 "$rr" server --listen "$ip:$((port + 1))" --timeout-s $((secs + 20)) \
    >"$tmp/rr-s.log" 2>&1 &
  spid=$!
  sleep 0.3
  # shellcheck disable=SC2086
  out=$(timeout $((secs + 20)) $cli taskset -c 0 "$rr" client --connect "$ip:$((port + 1))" --count "$rr_count" \
    --seconds "$secs" 2>&1)
  wait "$spid" 2>/dev/null
  if [[ $out =~ rate=([0-9]+).*p50_us=([0-9.]+) ]]; then
    rate[$key]=${BASH_REMATCH[1]} p50[$key]=${BASH_REMATCH[2]}
  else
    log "$key: bench_net_rr failed: $out $(cat "$tmp/rr-s.log")"
  fi
  log "$key: ${tput[$key]:-?} Gbit/s, ${rate[$key]:-?} round trips/s (p50 ${p50[$key]:-?} us)"
}

# median V...: the median of the numbers given (the lower middle one for an even count), "" if none.
median() {
  [ $# -gt 0 ] || { echo ""; return; }
  printf '%s\n' "$@" | sort -g | sed -n "$((($# + 1) / 2))p"
}

# div A B: A / B to 4 places, "" if either is empty or B is not > 0.
div() {
  [ -n "$1" ] && [ -n "$2" ] || return 0
  awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.4f", a / b }'
}

# pratio R...: the median (the lower middle one for an even count, like median) of the per-round
# ratios given and, with more than one, their range: "0.88x (0.79-0.95)"; "" if none.
pratio() {
  [ $# -gt 0 ] || { echo ""; return; }
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    s = sprintf("%.2fx", v[int((NR + 1) / 2)])
    if (NR > 1) s = s sprintf(" (%.2f-%.2f)", v[1], v[NR])
    print s }'
}

# Local: two namespaces and a veth pair (what any path below adds to).
bench_local() {
  local a=skiff-benchtmp-a-$tag b=skiff-benchtmp-b-$tag
  mkns "$a" && mkns "$b" || return
  ip -n "$a" link add eth0 type veth peer name eth0 netns "$b"
  ip -n "$a" addr add 10.250.30.1/24 dev eth0
  ip -n "$b" addr add 10.250.30.2/24 dev eth0
  for n in "$a" "$b"; do ip -n "$n" link set lo up; ip -n "$n" link set eth0 up; done
  measure local:veth 10.250.30.2 "nsenter --net=/run/netns/$b" "nsenter --net=/run/netns/$a"
  ip netns del "$a"; ip netns del "$b"
}

# ---- the lab
L() { bash "$lab" "$@"; }

pod_manifest() {  # pod_manifest NAME NODE
  cat <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $1
  namespace: default
  labels: {app: skiff-bench-net}
spec:
  nodeName: $2
  terminationGracePeriodSeconds: 0
  containers:
  - name: c
    image: busybox:1.35
    imagePullPolicy: Never
    command: ["sleep", "3600"]
EOF
}

# wait_pod NAME: prints "IP UID" once the pod runs with an IP (90 s at most).
wait_pod() {
  local end=$((SECONDS + 90)) s
  while [ $SECONDS -lt $end ]; do
    s=$(L exec node1 kubectl get pod "$1" -o 'jsonpath={.status.phase} {.status.podIP} {.metadata.uid}' 2>/dev/null)
    set -- "$1" $s
    if [ "${2:-}" = Running ] && [ -n "${3:-}" ]; then echo "$3 $4"; return 0; fi
    set -- "$1"
    sleep 1
  done
  log "pod $1 not Running with an IP after 90 s: $(L exec node1 kubectl get pod "$1" -o wide 2>&1 | tail -1)"
  return 1
}

bench_lab() {  # bench_lab BACKEND
  local be=$1 ipa ipb ipc uida uidb uidc
  log "lab: up 2 --backend $be"
  lab_up=1
  if ! L up 2 --backend "$be" >"$tmp/lab-up.log" 2>&1; then
    log "lab up failed: $(tail -5 "$tmp/lab-up.log")"
    return 1
  fi
  { pod_manifest bench-a node1; echo ---; pod_manifest bench-b node1; echo ---; pod_manifest bench-c node2; } |
    L exec node1 kubectl apply -f - >&2 || return 1
  read -r ipa uida < <(wait_pod bench-a) || return 1
  read -r ipb uidb < <(wait_pod bench-b) || return 1
  read -r ipc uidc < <(wait_pod bench-c) || return 1
  [ -n "$ipa" ] && [ -n "$ipb" ] && [ -n "$ipc" ] || return 1
  log "pods: bench-a $ipa (node1), bench-b $ipb (node1), bench-c $ipc (node2)"
  # Sandboxes pin their network namespace at <run-dir>/pods/<uid>/ns/net; that bind mount
  # lives in the node's mount namespace, which `lab.sh exec` enters first.
  local pa="$lab_dir/node1/run/pods/$uida/ns/net" pb="$lab_dir/node1/run/pods/$uidb/ns/net"
  local pc="$lab_dir/node2/run/pods/$uidc/ns/net"
  sleep 3  # let the kubelets finish their pod-start work before the floor is measured
  # Rounds interleave the paths, so load from the rest of the machine hits all alike; each
  # absolute figure printed is the median over the rounds. Each ratio is paired: a round's path
  # figure over the same round's floor (floor over path for RTT p50), so what moves a whole
  # round cancels; printed is the median of those per-round ratios and their range. A round
  # where the floor or the path failed gives that path no ratio.
  local r k f="$be:floor"
  declare -A all_t=() all_r=() all_p=() rat_t=() rat_r=() rat_p=()
  for r in $(seq 1 "$rounds"); do
    if ! lab_is_mine; then
      log "$be lab: gone or replaced ($lab_marker: $(cat "$lab_marker" 2>/dev/null || echo none)) during round $r: stopping"
      lab_up=0
      break
    fi
    log "$be lab: round $r of $rounds"
    measure "$be:floor" 10.250.0.12 "bash $lab exec node2" "bash $lab exec node1"
    measure "$be:same-node" "$ipb" "bash $lab exec node1 nsenter --net=$pb" "bash $lab exec node1 nsenter --net=$pa"
    measure "$be:cross-node" "$ipc" "bash $lab exec node2 nsenter --net=$pc" "bash $lab exec node1 nsenter --net=$pa"
    for k in "$f" "$be:same-node" "$be:cross-node"; do
      all_t[$k]+=" ${tput[$k]}" all_r[$k]+=" ${rate[$k]}" all_p[$k]+=" ${p50[$k]}"
      [ "$k" = "$f" ] && continue
      rat_t[$k]+=" $(div "${tput[$k]}" "${tput[$f]}")"
      rat_r[$k]+=" $(div "${rate[$k]}" "${rate[$f]}")"
      rat_p[$k]+=" $(div "${p50[$f]}" "${p50[$k]}")"
    done
  done
  local nt nr
  for k in "${!all_t[@]}"; do
    # shellcheck disable=SC2086  # word splitting of the lists is the point
    tput[$k]=$(median ${all_t[$k]}) rate[$k]=$(median ${all_r[$k]}) p50[$k]=$(median ${all_p[$k]})
    if [ "$k" = "$f" ]; then
      nt=$(wc -w <<<"${all_t[$k]}") nr=$(wc -w <<<"${all_r[$k]}")
    else
      # shellcheck disable=SC2086
      x_tput[$k]=$(pratio ${rat_t[$k]}) x_rate[$k]=$(pratio ${rat_r[$k]}) x_p50[$k]=$(pratio ${rat_p[$k]})
      nt=$(wc -w <<<"${rat_t[$k]}") nr=$(wc -w <<<"${rat_r[$k]}")
    fi
    # The rounds the row's figures rest on: the fewest of its columns.
    n_ok[$k]=$((nt < nr ? nt : nr))
  done
  [ "$lab_up" = 1 ] || return 1
  # The pod's MTU through netlink (`ip`): /sys in the node's mount namespace shows the node's
  # devices, not the pod's.
  L exec node1 nsenter --net="$pa" ip -o link show dev eth0 2>/dev/null |
    grep -o 'mtu [0-9]*' | head -1 | cut -d' ' -f2 >"$tmp/$be.podmtu" || true
  log "lab: down"
  lab_is_mine && L down >/dev/null 2>&1
  lab_up=0
}

# ---------------------------------------------------------------------------------------------
# run

started=$(date -u +%FT%TZ)
[ "$only" = "" ] || [ "$only" = cni ] && bench_cni
[ "$only" = local ] && bench_local
if [ "$only" = "" ] || [ "$only" = lab ]; then
  if [ ! -f "$lab" ]; then
    log "deploy/lab.sh missing: (2) skipped"
  elif [ -f "$lab_marker" ] && [ "$force" = 0 ]; then
    log "lab $SKIFF_LAB_NAME is running ($(cat "$lab_marker")); not replacing it (use --force): (2) skipped"
  else
    for be in $backends; do
      bench_lab "$be" && continue
      log "$be lab: measurement incomplete"
      [ "$lab_up" = 1 ] && lab_is_mine && L down >/dev/null 2>&1
      lab_up=0
    done
  fi
fi

# ---------------------------------------------------------------------------------------------
# report

ratio() { [ -n "$1" ] && [ -n "$2" ] && python3 -c "print('%.2fx' % ($1 / $2))" || echo "-"; }
echo
echo "bench/net  ($started; $(nproc) CPUs; $(uname -r); $secs s per measurement, $rounds round$([ "$rounds" = 1 ] || echo s))"
if [ ${#cni_lines[@]} -gt 0 ]; then
  echo
  echo "CNI plugin latency (ms, wall, exec included)        runs    p50     p90     max"
  for l in "${cni_lines[@]}"; do
    IFS=$'\t' read -r name cmd n a b m <<<"$l"
    printf '  %-48s %4s %7s %7s %7s\n' "$name $cmd" "$n" "$a" "$b" "$m"
  done
  sk=$(printf '%s\n' "${cni_lines[@]}" | awk -F'\t' '$1=="skiff" && $2=="ADD" {print $4}')
  rf=$(printf '%s\n' "${cni_lines[@]}" | awk -F'\t' '$1=="bridge+host-local" && $2=="ADD" {print $4}')
  echo "  skiff ADD p50 / reference ADD p50: $(ratio "$sk" "$rf")   (target: skiff ADD p50 <= 10 ms)"
fi
if [ ${#tput[@]} -gt 0 ]; then
  echo
  # Ratio columns: "0.88x (0.79-0.95)" with more than one round, "0.88x" with one.
  w=7 rh1="/floor" rh2="floor/"
  [ "$rounds" -gt 1 ] && w=17 rh1="/floor (range)" rh2="floor/ (range)"
  fmt="%-37s %10s %${w}s %12s %${w}s %8s %${w}s  %s\n"
  # shellcheck disable=SC2059  # the format is built above
  printf "$fmt" "path" "TCP Gbit/s" "$rh1" "round trip/s" "$rh1" "RTT p50" "$rh2" "target"
  row() {  # row LABEL KEY FLOORKEY TARGET
    local note="" rt rr rp
    [ -z "${n_ok[$2]:-}" ] || [ "${n_ok[$2]}" = "$rounds" ] || note="  (only ${n_ok[$2]} of $rounds rounds)"
    if [ "$2" = "$3" ]; then  # the floor itself (or the local check, measured once)
      rt=$(ratio "${tput[$2]:-}" "${tput[$3]:-}") rr=$(ratio "${rate[$2]:-}" "${rate[$3]:-}")
      rp=$(ratio "${p50[$3]:-}" "${p50[$2]:-}")
    else  # medians of the per-round paired ratios, with their range (bench_lab)
      rt=${x_tput[$2]:--} rr=${x_rate[$2]:--} rp=${x_p50[$2]:--}
    fi
    # Latency ratio floor/path, so that like the others higher is better.
    # shellcheck disable=SC2059
    printf "$fmt" "$1" "${tput[$2]:--}" "$rt" "${rate[$2]:--}" "$rr" "${p50[$2]:--}" "$rp" "$4$note"
  }
  [ -n "${tput[local:veth]+x}" ] && row "netns <-> netns, one veth pair" local:veth local:veth "(local check)"
  for be in $backends; do
    [ -n "${tput[$be:floor]+x}" ] || continue
    mtu=$(cat "$tmp/$be.podmtu" 2>/dev/null)
    echo "lab, $be backend (pod MTU ${mtu:-?}):"
    row "  node1 <-> node2 (LAN, the floor)" "$be:floor" "$be:floor" ""
    row "  pod <-> pod, same node" "$be:same-node" "$be:floor" ">= 0.9x"
    if [ "$be" = vxlan ]; then
      row "  pod <-> pod, across nodes (VXLAN)" "$be:cross-node" "$be:floor" ">= 0.7x"
    else
      row "  pod <-> pod, across nodes (host-gw)" "$be:cross-node" "$be:floor" ">= 0.9x"
    fi
  done
fi
if [ ${#tput[@]} -gt 0 ]; then
  echo
  echo "TCP: iperf3, 1 stream, $secs s, receiver's rate. Round trips: bench_net_rr, 1 byte each way,"
  echo "one connection, TCP_NODELAY, up to $rr_count or $secs s. Absolute figures are medians over the"
  echo "rounds. Ratios are paired: each round's path figure over the same round's floor; printed is"
  echo "the median of those per-round ratios and, in brackets, their range over the rounds. The LAN"
  echo "is a veth + bridge inside one kernel, so 'the floor' is what that kernel path costs, and"
  echo "every ratio is what skiff's path adds on top. RTT p50 in us; 'floor/' is floor RTT p50 /"
  echo "path RTT p50 (higher is better, like the other ratios): on a busy machine the p50 moves"
  echo "least, while throughput and round trips/s also carry scheduling noise."
  echo "Every client runs on CPU 0 and every server on CPU 1 (taskset), on every path alike:"
  echo "unpinned, a round trip took ~21 us or ~55 us depending on where the scheduler put the two."
fi
