#!/usr/bin/env bash
# skiff lab: a real multi-node cluster on one machine, for people and for the e2e tests.
# (Namespace and cgroup names below are for the default SKIFF_LAB_NAME, skiff-lab.)
#
# NETWORK SAFETY — nothing in the lab can reach the host's network or the outside world:
#   * the lab LAN is a bridge `lab0` inside a network namespace of its own (`skiff-lab-lan`);
#     it has no address and that namespace has no route anywhere;
#   * every node (`skiff-lab-nodeI`) and the `outside` namespace (`skiff-lab-outside`) is a
#     network namespace whose only link is a veth into lab0 (created inside skiff-lab-lan and
#     moved straight into the node's namespace: no veth ever sits in the host's namespace);
#     the only routes are the LAN 10.250.0.0/24, what skiff itself adds for pod CIDRs and,
#     in nodes, the service CIDR 10.96.0.0/16 on the LAN (so ClusterIPs have a route, as a
#     real machine's default route gives them); there is no default route;
#   * so pods, nodes and `outside` can talk only to each other.
#
# Layout (N nodes, N >= 1):
#   LAN 10.250.0.0/24 on lab0; nodeI = 10.250.0.(10+I) on its eth0; outside = 10.250.0.100.
#   Each node's eth0 has a fixed MAC, 02:00 + its address's four bytes (a NIC keeps its MAC
#   across a reboot, so the others' ARP entries stay right).
#   Each node is a network + mount + UTS namespace (hostname nodeI; a fresh sysfs, so
#   /sys/class/net shows the node's own devices; the host's cgroup hierarchies bound back
#   under /sys/fs/cgroup; /etc/hosts naming node1..N and outside; a resolv.conf without a
#   DNS server). Mount and UTS namespaces are pinned by bind mounts in
#   $SKIFF_LAB_DIR/ns (a private bind mount, as unshare(1) documents), the network namespaces
#   by `ip netns`. Mounts made inside a node (container rootfs, volumes, sandboxes) stay in
#   that node's mount namespace and vanish with it.
#   Each node runs skiff-kubelet and skiff-netagent with its own dirs under
#   $SKIFF_LAB_DIR/nodeI/ (data, run, log, cni), cgroup parent `skiff-lab-nodeI`; node1 also
#   runs the control plane: skiff-apiserver (SQLite, 0.0.0.0:6443), skiff-controller-manager
#   (pod CIDRs from 10.244.0.0/16, /24 each) and skiff-scheduler when it is built. With N >= 2,
#   node2 runs a STANDBY skiff-controller-manager and skiff-scheduler (same flags, talking to
#   node1's API server): both pairs are leader-elected (Leases kube-system/skiff-controller-manager
#   and kube-system/skiff-scheduler, holder identity --id nodeI), so killing the active one
#   hands over to the other. A leader that loses its Lease exits 1 (by design); `revive NODE`
#   restarts it.
#   Services (issue 6): the API server hands out ClusterIPs from 10.96.0.0/16 (the `kubernetes`
#   Service 10.96.0.1 -> node1:6443) and NodePorts 30000-32767; the controller-manager assigns
#   LoadBalancer addresses from the pool 10.250.0.200-10.250.0.250 (on the lab LAN, so
#   `outside` reaches them on-link; one node answers ARP for each); every netagent programs the
#   Service dataplane (nftables table `ip skiff`) and serves cluster DNS on 10.96.0.10 (a dummy
#   link `skiff.dns` in the node), which the kubelet writes into pods' resolv.conf
#   (cluster.local). Each of these flags is passed only when the built binary knows it.
#   `join` adds node N+1 to a running lab the same way (LAN address 10.250.0.(11+N), its name
#   appended to the lab's /etc/hosts, a worker from node3 on); `down` removes it with the rest.
#   Daemon logs: $SKIFF_LAB_DIR/nodeI/<daemon>.log, pid files beside them.
#   Admin kubeconfig: $SKIFF_LAB_DIR/admin.kubeconfig (server https://10.250.0.11:6443).
#
# Usage:
#   deploy/lab.sh up N [--backend vxlan|host-gw]   (re)create the lab; waits for N Ready nodes
#                                                   with a pod CIDR and published netagent state
#   deploy/lab.sh join                             add node N+1 to the running lab (the same
#                                                   layout, daemons, flags and images as `up`
#                                                   gives a node); waits until it is Ready
#   deploy/lab.sh down                             remove everything the lab made (idempotent)
#   deploy/lab.sh status                           nodes, daemons, `kubectl get nodes -o wide`
#   deploy/lab.sh exec NODE CMD...                 run CMD in NODE's namespaces (NODE = nodeI,
#                                                   I or outside), build dir on PATH, KUBECONFIG
#   deploy/lab.sh kill NODE                        SIGKILL the node's daemons, cut its LAN link
#   deploy/lab.sh revive NODE                      link up, daemons restarted with the same flags
#   deploy/lab.sh reboot NODE                      as a machine reboot: every process of the
#                                                   node ends; its network, mount and UTS
#                                                   namespaces (links, routes, nftables,
#                                                   conntrack, mounts), pod cgroups and run dir
#                                                   are dropped; data and log dirs are kept;
#                                                   the node comes up again with its daemons
# Env:
#   SKIFF_LAB_NAME    (default skiff-lab)          prefix of the lab's namespaces and cgroups:
#                                                   labs with different names (and dirs) can
#                                                   run side by side (each has its own LAN)
#   SKIFF_LAB_DIR     (default /tmp/<name>)        state, logs, node dirs
#   SKIFF_BUILD_DIR   (default <repo>/build)       where the binaries are
#   SKIFF_LAB_NOBUILD=1                            `up` does not run deploy/build.sh
#   SKIFF_LAB_STORE   (default sqlite)             etcd: node1 also runs a one-member etcd on
#                                                   its loopback (127.0.0.1:2379; $SKIFF_ETCD,
#                                                   or Debian's via test/tools/deb_unpack.sh)
#                                                   and its API server stores objects there
#   SKIFF_LAB_TIMEOUT (default 120)                seconds `up`/`revive`/`join` wait for the
#                                                   nodes
#   SKIFF_LAB_ALLOW_MISSING=1                      start without skiff-controller-manager /
#                                                   skiff-netagent when they are not built
#   SKIFF_LAB_CM_FLAGS                             extra skiff-controller-manager flags (both
#                                                   instances; kept for `revive`), e.g.
#                                                   "--node-monitor-grace-period 20s
#                                                    --pod-eviction-timeout 10s"
#   SKIFF_LAB_IMAGES                               more image tarballs (space-separated paths)
#                                                   imported on every node at `up` (kept for
#                                                   `join`)
#   SKIFF_LAB_LB_POOL (default                     the controller-manager's --lb-pool
#     10.250.0.200-10.250.0.250)                    (LoadBalancer addresses; "" = no pool)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${SKIFF_BUILD_DIR:-$src/build}
labname=${SKIFF_LAB_NAME:-skiff-lab}
[[ "$labname" =~ ^[a-z][a-z0-9-]{0,19}$ ]] ||
  { echo "lab: SKIFF_LAB_NAME must be 1-20 of [a-z0-9-], starting with a letter" >&2; exit 2; }
dir=${SKIFF_LAB_DIR:-/tmp/$labname}
case "$dir" in /?*) dir=${dir%/} ;; *) echo "lab: SKIFF_LAB_DIR must be an absolute path" >&2; exit 2 ;; esac
[ "$dir" != / ] || { echo "lab: SKIFF_LAB_DIR must not be /" >&2; exit 2; }
timeout_s=${SKIFF_LAB_TIMEOUT:-120}
cluster_cidr=10.244.0.0/16
service_cidr=10.96.0.0/16
cluster_dns=10.96.0.10
cluster_domain=cluster.local
lb_pool=${SKIFF_LAB_LB_POOL-10.250.0.200-10.250.0.250}
lan_ns=$labname-lan
out_ns=$labname-outside
# Remembers where the running lab keeps its state, so `down` with another SKIFF_LAB_DIR (or
# after the dir was removed) still finds its mounts.
marker=/run/skiff-lab/$labname.dir

say() { printf '\033[1mlab:\033[0m %s\n' "$*" >&2; }
warn() { printf '\033[1;33mlab: WARNING:\033[0m %s\n' "$*" >&2; }
die() {
  printf '\033[1;31mlab: error:\033[0m %s\n' "$*" >&2
  exit 1
}

node_ip() { echo "10.250.0.$((10 + $1))"; }
netns_path() { echo "/run/netns/$labname-node$1"; }

# Normalizes NODE (nodeI, I or outside) to "I" or "outside".
node_index() {
  local n=$1
  case "$n" in
    outside) echo outside ;;
    node[1-9] | node[1-9][0-9]) echo "${n#node}" ;;
    [1-9] | [1-9][0-9]) echo "$n" ;;
    *) die "unknown node '$n' (nodeI, I or outside)" ;;
  esac
}

load_state() {
  [ -f "$dir/lab.env" ] || die "no lab in $dir (run: deploy/lab.sh up N)"
  # shellcheck disable=SC1091
  . "$dir/lab.env"
  [ "${LAB_NAME:-skiff-lab}" = "$labname" ] ||
    die "$dir holds the lab '$LAB_NAME', not '$labname': set SKIFF_LAB_NAME=$LAB_NAME"
}

# in_node I CMD...: CMD in node I's network, mount and UTS namespaces (exec'd by nsenter, so
# `$!` of a backgrounded in_node is CMD's own pid).
in_node() {
  local i=$1
  shift
  nsenter --net="$(netns_path "$i")" --mount="$dir/ns/node$i.mnt" --uts="$dir/ns/node$i.uts" \
    -- "$@"
}

# ---------------------------------------------------------------------------------------------
# down

# Every process that belongs to the lab: in a <name>-nodeI cgroup, in a lab namespace (network,
# mount or UTS), or with a lab dir on its command line (daemons, shims). Never by a broad name.
# lab_pids [--node I] DIR...: with --node, those of node I only (its cgroup and namespaces, and
# DIR/nodeI/run/ or DIR/nodeI/data/ on the command line: every kubelet names node1's token file).
lab_pids() {
  local node=""
  [ "${1:-}" = --node ] && { node=$2; shift 2; }
  python3 - "$$" "$labname" "$node" "$@" <<'EOF'
import glob, os, sys
me, name, node = int(sys.argv[1]), sys.argv[2], sys.argv[3]
dirs = [d.rstrip("/") + "/" for d in sys.argv[4:]]
inodes = set()
if node:
    pins = ["/run/netns/%s-node%s" % (name, node)]
    pins += [d + "ns/node%s.%s" % (node, k) for d in dirs for k in ("mnt", "uts")]
    dirs = [d + "node%s/%s/" % (node, k) for d in dirs for k in ("run", "data")]
else:
    pins = ["/run/netns/%s-%s" % (name, s) for s in ("lan", "outside")]
    pins += glob.glob("/run/netns/%s-node[0-9]*" % name)
    pins += [f for d in dirs for f in glob.glob(d + "ns/*")]
for f in pins:
    try:
        inodes.add(os.stat(f).st_ino)
    except OSError:
        pass
pids = set()
cg = "%s-node%s" % (name, node or "[0-9]*")
for c in glob.glob("/sys/fs/cgroup/" + cg) + glob.glob("/sys/fs/cgroup/*/" + cg):
    for root, _, files in os.walk(c):
        try:
            pids.update(int(p) for p in open(os.path.join(root, "cgroup.procs")).read().split())
        except (OSError, ValueError):
            pass
skip = {me, os.getpid(), os.getppid()}
for p in os.listdir("/proc"):
    if not p.isdigit() or int(p) in skip:
        continue
    try:
        for ns in ("net", "mnt", "uts"):
            if os.stat("/proc/%s/ns/%s" % (p, ns)).st_ino in inodes:
                pids.add(int(p))
        cmd = open("/proc/%s/cmdline" % p, "rb").read().replace(b"\0", b" ").decode(errors="replace")
        if any(d in cmd for d in dirs):
            pids.add(int(p))
    except OSError:
        pass
print(" ".join(str(p) for p in sorted(pids - skip)))
EOF
}

# kill_lab [--node I] DIR...: SIGKILLs what lab_pids finds, until nothing is left (bounded).
kill_lab() {
  local pids
  for _ in $(seq 1 50); do
    pids=$(lab_pids "$@")
    [ -z "$pids" ] && return 0
    # shellcheck disable=SC2086
    kill -9 $pids 2>/dev/null || true
    sleep 0.1
  done
  warn "processes still alive: $(lab_pids "$@" | xargs)"
}

# remove_cgroups NAME: every cgroup dir NAME (a glob) in every hierarchy, deepest first (bounded).
remove_cgroups() {
  local c m
  for _ in $(seq 1 20); do
    c=$(find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -type d -name "$1" 2>/dev/null)
    [ -z "$c" ] && return 0
    for m in $c; do find "$m" -depth -type d -exec rmdir {} + 2>/dev/null || true; done
    sleep 0.2
  done
  c=$(find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -type d -name "$1" 2>/dev/null)
  [ -z "$c" ] || warn "cgroups left: $c"
}

down() {
  local dirs=("$dir") other m
  if [ -f "$marker" ]; then
    other=$(cat "$marker")
    [ -n "$other" ] && [ "$other" != "$dir" ] && dirs+=("$other")
  fi
  # Processes first (daemons, shims, containers).
  kill_lab "${dirs[@]}"
  # Mounts in the host's namespace under the lab dirs (the ns pins and the private ns dir),
  # deepest first. Dropping the pins frees the nodes' mount namespaces and everything mounted
  # inside them.
  for d in "${dirs[@]}"; do
    awk -v d="$d/" 'index($5 "/", d) == 1 {print $5}' /proc/self/mountinfo | sort -r |
      while read -r m; do umount -l "$m" 2>/dev/null || true; done
  done
  # Network namespaces: every link, route, nft table and VXLAN device of the lab lives in them.
  for m in "/run/netns/$lan_ns" "/run/netns/$out_ns" /run/netns/"$labname"-node[0-9]*; do
    [ -e "$m" ] && ip netns del "$(basename "$m")" 2>/dev/null || true
  done
  # cgroups: every <name>-nodeI dir in every hierarchy.
  remove_cgroups "$labname-node[0-9]*"
  for d in "${dirs[@]}"; do
    # only what looks like a lab dir (a mistyped SKIFF_LAB_DIR must not lose anything)
    if [ -e "$d/lab.env" ] || [ -d "$d/ns" ] || [ -z "$(ls -A "$d" 2>/dev/null)" ]; then
      rm -rf "$d"
    else
      warn "not removing $d: it has no lab.env, so it may not be a lab dir"
    fi
  done
  rm -f "$marker"
  rmdir "$(dirname "$marker")" 2>/dev/null || true
}

# ---------------------------------------------------------------------------------------------
# up

need_bin() { [ -x "$build/$1" ] || die "$build/$1 is not built (run deploy/build.sh)"; }
# has_flag BINARY FLAG: BINARY's --help lists FLAG.
# The help text is read whole first: `grep -q` stops at the first match, and with pipefail the
# writer's SIGPIPE would make a present flag look absent.
has_flag() {
  local help
  help=$("$build/$1" --help 2>&1)
  grep -qE -- "(^|[ ,])$2([ =,{:]|\\[|\$)" <<<"$help"
}

make_lan() {
  ip netns add "$lan_ns"
  ip -n "$lan_ns" link set lo up
  ip -n "$lan_ns" link add lab0 type bridge
  ip -n "$lan_ns" link set lab0 up
}

# attach NAME NETNS ADDR: a veth NAME in the LAN namespace on lab0, its peer eth0 in NETNS.
# eth0's MAC is fixed by its address (02:00 + the four bytes), as a machine's NIC keeps its MAC
# across a reboot: the other nodes' ARP entries stay right.
attach() {
  local name=$1 ns=$2 addr=$3 mac
  # shellcheck disable=SC2086  # the four bytes, split on purpose
  mac=$(printf '02:00:%02x:%02x:%02x:%02x' ${addr//./ })
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip -n "$lan_ns" link add "$name" type veth peer name eth0 address "$mac" netns "$ns"
  ip -n "$lan_ns" link set "$name" master lab0 up
  ip -n "$ns" addr add "$addr/24" dev eth0
  ip -n "$ns" link set eth0 up
}

# What runs inside a new node mount namespace (sh -c; $1 = hostname, $2 = a scratch dir,
# $3 = the lab's hosts file, $4 = its resolv.conf).
node_setup=$(
  cat <<'EOF'
hostname "$1"
# Copies of the host's namespace pins (other netns, the lab's own pins) are of no use in a node
# and would keep those namespaces alive: drop them. This runs in the node's private mount
# namespace: the host's mounts are untouched.
awk '{for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i+1) == "nsfs") print $5; break }}' \
  /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
# A sysfs of this network namespace (the host's /sys detached, not just hidden), with the
# host's cgroup hierarchies bound back.
mount --rbind /sys/fs/cgroup "$2"
umount -l /sys
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mount --rbind "$2" /sys/fs/cgroup
umount -l "$2"
# The lab's names (node1.., outside) and no DNS server: the host's would be unreachable anyway.
mount --bind "$3" /etc/hosts
mount --bind "$4" /etc/resolv.conf
EOF
)

# The node's mount and UTS namespaces, pinned in $dir/ns, set up from inside its netns.
make_node_ns() {
  local i=$1 nd="$dir/node$1"
  touch "$dir/ns/node$i.mnt" "$dir/ns/node$i.uts"
  mkdir -p "$nd/.cgroup"
  nsenter --net="$(netns_path "$i")" unshare --mount="$dir/ns/node$i.mnt" \
    --uts="$dir/ns/node$i.uts" --propagation private -- sh -euc "$node_setup" sh "node$i" \
    "$nd/.cgroup" "$dir/hosts" "$dir/resolv.conf"
}

# Daemon command lines. start_daemon I NAME starts one daemon of node I in its namespaces.
daemon_args() {
  local i=$1 name=$2 nd="$dir/node$1" ip
  ip=$(node_ip "$i")
  case "$name" in
    apiserver)
      echo "$build/skiff-apiserver --listen 0.0.0.0:6443 --tls-san $ip --advertise-address $ip" \
        "--data-dir $nd/apiserver ${APISERVER_FLAGS:-}"
      ;;
    etcd)  # SKIFF_LAB_STORE=etcd: one member on node1's loopback, for its API server
      echo "$ETCD_EXE --name node$i --data-dir $nd/etcd" \
        "--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379" \
        "--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls" \
        "http://127.0.0.1:2380 --initial-cluster node$i=http://127.0.0.1:2380" \
        "--logger zap --log-level warn"
      ;;
    controller-manager)
      echo "$build/skiff-controller-manager --kubeconfig $dir/admin.kubeconfig" \
        "--cluster-cidr $cluster_cidr --node-cidr-mask-size 24 --id node$i ${CM_SVC_FLAGS:-}" \
        "${LAB_CM_FLAGS:-}"
      ;;
    scheduler)
      echo "$build/skiff-scheduler --kubeconfig $dir/admin.kubeconfig --id node$i"
      ;;
    kubelet)
      local extra=""
      [ "$KUBELET_HAS_BACKEND" = 1 ] && extra="--network-backend $BACKEND"
      echo "$build/skiff-kubelet --kubeconfig $dir/admin.kubeconfig --node-name node$i" \
        "--node-ip $ip --data-dir $nd/data --run-dir $nd/run --log-dir $nd/log" \
        "--cgroup-parent $labname-node$i --cgroup-root /sys/fs/cgroup" \
        "--cni-conf-dir $nd/cni/net.d --cni-bin-dir $build" \
        "--client-token-file $dir/node1/apiserver/pki/kubelet-client.token --v 1 $extra" \
        "${KUBELET_FLAGS:-}"
      ;;
    netagent)
      echo "$build/skiff-netagent --kubeconfig $dir/admin.kubeconfig --node-name node$i" \
        "--backend $BACKEND --cluster-cidr $cluster_cidr --node-ip $ip"
      ;;
  esac
}

node_daemons() {
  local i=$1
  [ "$i" = 1 ] && [ -n "${ETCD_EXE:-}" ] && echo etcd
  [ "$i" = 1 ] && echo apiserver
  # node1: the control plane; node2: the standby controller-manager and scheduler
  if [ "$i" = 1 ] || [ "$i" = 2 ]; then
    [ -x "$build/skiff-controller-manager" ] && echo controller-manager
    [ -x "$build/skiff-scheduler" ] && echo scheduler
  fi
  echo kubelet
  [ -x "$build/skiff-netagent" ] && echo netagent
  true
}

start_daemon() {
  local i=$1 name=$2 nd="$dir/node$1"
  local args
  args=$(daemon_args "$i" "$name")
  printf '\n==== %s start %s: %s\n' "$name" "$(date -u +%FT%TZ)" "$args" >>"$nd/$name.log"
  # (9>&-: `join`'s lock fd is not inherited: a daemon would hold the lock for its lifetime)
  # shellcheck disable=SC2086
  setsid nsenter --net="$(netns_path "$i")" --mount="$dir/ns/node$i.mnt" \
    --uts="$dir/ns/node$i.uts" -- $args >>"$nd/$name.log" 2>&1 </dev/null 9>&- &
  echo $! >"$nd/$name.pid"
  disown
}

pid_alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status"; }
daemon_pid() { cat "$dir/node$1/$2.pid" 2>/dev/null || true; }

kubectl_lab() { in_node 1 kubectl --kubeconfig "$dir/admin.kubeconfig" --request-timeout 5s "$@"; }

wait_etcd() {
  local end=$((SECONDS + timeout_s))
  until [[ $(in_node 1 curl -sf --max-time 2 http://127.0.0.1:2379/health 2>/dev/null) == *'"true"'* ]]; do
    pid_alive "$(daemon_pid 1 etcd)" ||
      { tail -20 "$dir/node1/etcd.log" >&2; die "etcd on node1 exited (log: $dir/node1/etcd.log)"; }
    [ $SECONDS -lt $end ] || die "etcd on node1 not healthy within ${timeout_s}s"
    sleep 0.2
  done
}

wait_apiserver() {
  local end=$((SECONDS + timeout_s))
  while [ $SECONDS -lt $end ]; do
    if ! pid_alive "$(daemon_pid 1 apiserver)"; then
      tail -20 "$dir/node1/apiserver.log" >&2
      die "skiff-apiserver on node1 exited during start-up (log: $dir/node1/apiserver.log)"
    fi
    if [ -f "$dir/node1/apiserver/admin.kubeconfig" ] &&
      in_node 1 curl -sfk --max-time 2 "https://$(node_ip 1):6443/readyz" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  tail -20 "$dir/node1/apiserver.log" >&2
  die "skiff-apiserver on node1 not ready within ${timeout_s}s (log: $dir/node1/apiserver.log)"
}

# One line per node: name|podCIDR|ready|backend-annotation.
node_table() {
  kubectl_lab get nodes -o jsonpath='{range .items[*]}{.metadata.name}|{.spec.podCIDR}|{.status.conditions[?(@.type=="Ready")].status}|{.metadata.annotations.skiff\.io/backend}{"\n"}{end}' 2>/dev/null
}

# wait_nodes I...: until each node is Ready with a pod CIDR (and its netagent's annotation when
# netagent runs). On timeout: which node lacks what, and the log of the daemon responsible.
wait_nodes() {
  local end=$((SECONDS + timeout_s)) table i missing why d daemon
  while :; do
    table=$(node_table || true)
    missing=""
    for i in "$@"; do
      local line cidr ready be
      line=$(echo "$table" | awk -F'|' -v n="node$i" '$1 == n')
      IFS='|' read -r _ cidr ready be <<<"$line" || true
      if [ -z "$line" ]; then
        why="node$i: no Node object (kubelet)"
        d="$i kubelet"
      elif [ "$ready" != True ]; then
        why="node$i: not Ready (kubelet)"
        d="$i kubelet"
      elif [ -z "$cidr" ]; then
        why="node$i: no spec.podCIDR (controller-manager)"
        d="1 controller-manager"
      elif [ -x "$build/skiff-netagent" ] && [ "$be" != "$BACKEND" ]; then
        why="node$i: annotation skiff.io/backend is '${be}', not '$BACKEND' (netagent)"
        d="$i netagent"
      else
        continue
      fi
      missing="$why"
      break
    done
    [ -z "$missing" ] && return 0
    # a dead daemon will not fix it: fail at once
    for i in "$@"; do
      for daemon in $(node_daemons "$i"); do
        if ! pid_alive "$(daemon_pid "$i" "$daemon")"; then
          tail -25 "$dir/node$i/$daemon.log" >&2
          die "skiff-$daemon on node$i exited (log: $dir/node$i/$daemon.log); waiting for: $missing"
        fi
      done
    done
    if [ $SECONDS -ge $end ]; then
      set -- $d
      tail -25 "$dir/node$1/$2.log" >&2
      echo "$table" >&2
      die "timed out after ${timeout_s}s: $missing (log: $dir/node$1/$2.log)"
    fi
    sleep 0.5
  done
}

# make_node I: node I's network namespace on the LAN, its mount and UTS namespaces, its dirs.
make_node() {
  local i=$1
  attach "node$i" "$labname-node$i" "$(node_ip "$i")"
  # A real machine reaches ClusterIPs through its default route (the address is rewritten
  # on the way out); a lab node has none, so the service CIDR gets a stand-in route on the
  # LAN (low priority: a route skiff adds wins; unanswered packets stay on the lab LAN).
  ip -n "$labname-node$i" route add "$service_cidr" dev eth0 metric 1000
  make_node_ns "$i"
  mkdir -p "$dir/node$i"/{data,run,log,cni/net.d}
}

# start_node I: the images imported into node I's kubelet data dir, then its daemons (node1's
# control plane is started by `up` before the nodes; node2's standby starts here).
start_node() {
  local i=$1 img name
  say "node$i: import busybox, start skiff-kubelet and skiff-netagent ($BACKEND)"
  for img in "$build/images/busybox.oci.tar" ${LAB_IMAGES:-}; do
    in_node "$i" "$build/skiff-kubelet" image import "$img" --data-dir "$dir/node$i/data" \
      >>"$dir/node$i/import.log" 2>&1 ||
      { tail "$dir/node$i/import.log" >&2; die "node$i: image import of $img failed"; }
  done
  for name in $(node_daemons "$i"); do
    [ "$name" = apiserver ] || [ "$name" = etcd ] || { [ "$i" = 1 ] && [ "$name" != kubelet ] &&
      [ "$name" != netagent ]; } || start_daemon "$i" "$name"
  done
}

up() {
  local n=$1 backend=$2 t0=$SECONDS i
  [ "$(id -u)" = 0 ] || die "the lab makes namespaces, mounts and cgroups: run it as root"
  case "$n" in '' | *[!0-9]*) die "up: N must be a number of nodes (1..50)" ;; esac
  [ "$n" -ge 1 ] && [ "$n" -le 50 ] || die "up: N must be 1..50"
  case "$backend" in vxlan | host-gw) ;; *) die "--backend must be vxlan or host-gw" ;; esac
  for t in ip nsenter unshare kubectl curl; do
    command -v "$t" >/dev/null || die "$t is not installed (deploy/deps.sh installs it)"
  done
  if [ "${SKIFF_LAB_NOBUILD:-}" != 1 ]; then
    say "building (deploy/build.sh; SKIFF_LAB_NOBUILD=1 skips this)"
    SKIFF_BUILD_DIR=$build bash "$src/deploy/build.sh" skiff-apiserver skiffctl skiff-kubelet \
      skiff-shim skiff-cni skiff-controller-manager skiff-netagent
    bash "$src/deploy/images/build.sh" "$build/images"
  fi
  for b in skiff-apiserver skiff-kubelet skiff-shim skiff; do need_bin "$b"; done
  for b in skiff-controller-manager skiff-netagent; do
    [ -x "$build/$b" ] && continue
    [ "${SKIFF_LAB_ALLOW_MISSING:-}" = 1 ] ||
      die "$build/$b is not built: the lab needs it (deploy/build.sh)"
    warn "$build/$b is NOT BUILT: starting the lab without it (SKIFF_LAB_ALLOW_MISSING=1)"
  done
  [ -f "$build/images/busybox.oci.tar" ] ||
    die "$build/images/busybox.oci.tar missing (deploy/images/build.sh $build/images)"
  local kb=0
  has_flag skiff-kubelet --network-backend && kb=1
  [ "$kb" = 1 ] || warn "this skiff-kubelet has no --network-backend: started without it"
  # Services (issue 6): each flag is passed only when the binary knows it (an unknown flag makes
  # a daemon exit), so the lab runs with whatever pieces are built; what is left out is said.
  local api_flags="" cm_flags="" kubelet_flags="" etcd_exe=""
  case "${SKIFF_LAB_STORE:-sqlite}" in
    sqlite) ;;
    etcd)
      etcd_exe=${SKIFF_ETCD:-$(command -v etcd || bash "$src/test/tools/deb_unpack.sh" etcd-server usr/bin/etcd)} ||
        die "SKIFF_LAB_STORE=etcd: no etcd (set SKIFF_ETCD; deb_unpack.sh etcd-server failed)"
      [ -x "$etcd_exe" ] || die "SKIFF_LAB_STORE=etcd: $etcd_exe is not executable"
      has_flag skiff-apiserver --etcd-servers || die "this skiff-apiserver has no --etcd-servers"
      api_flags="--store etcd --etcd-servers http://127.0.0.1:2379 "
      ;;
    *) die "SKIFF_LAB_STORE must be sqlite or etcd" ;;
  esac
  if has_flag skiff-apiserver --service-cluster-ip-range; then
    api_flags+="--service-cluster-ip-range $service_cidr"
  else
    warn "this skiff-apiserver has no --service-cluster-ip-range: no ClusterIPs (Services)"
  fi
  if [ -n "$lb_pool" ] && [ -x "$build/skiff-controller-manager" ]; then
    if has_flag skiff-controller-manager --lb-pool; then
      cm_flags="--lb-pool $lb_pool"
    else
      warn "this skiff-controller-manager has no --lb-pool: no LoadBalancer addresses"
    fi
  fi
  if has_flag skiff-kubelet --cluster-dns; then
    kubelet_flags="--cluster-dns $cluster_dns --cluster-domain $cluster_domain"
  fi
  # skiff-netagent's defaults are the lab's values (--services on, --service-cidr
  # 10.96.0.0/16, --cluster-dns 10.96.0.10): it gets no flag for them, only a word when absent.
  if [ -x "$build/skiff-netagent" ]; then
    has_flag skiff-netagent --services ||
      warn "this skiff-netagent has no --services: no Service dataplane (pod network only)"
    has_flag skiff-netagent --cluster-dns ||
      warn "this skiff-netagent has no --cluster-dns: no cluster DNS server on $cluster_dns"
  fi
  [ -x "$build/skiff-scheduler" ] || say "no skiff-scheduler built: pods must name their node"

  say "removing leftovers of an earlier lab"
  down
  mkdir -p "$dir/ns" "$(dirname "$marker")"
  echo "$dir" >"$marker"
  cat >"$dir/lab.env" <<EOF
LAB_NAME=$labname
NODES=$n
BACKEND=$backend
KUBELET_HAS_BACKEND=$kb
APISERVER_FLAGS=$(printf '%q' "$api_flags")
ETCD_EXE=$(printf '%q' "$etcd_exe")
CM_SVC_FLAGS=$(printf '%q' "$cm_flags")
KUBELET_FLAGS=$(printf '%q' "$kubelet_flags")
LAB_CM_FLAGS=$(printf '%q' "${SKIFF_LAB_CM_FLAGS:-}")
LAB_IMAGES=$(printf '%q' "${SKIFF_LAB_IMAGES:-}")
EOF
  load_state
  # unshare(1): the pins of mount namespaces must sit on a private mount.
  mount --bind "$dir/ns" "$dir/ns"
  mount --make-private "$dir/ns"

  {
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n'
    for i in $(seq 1 "$n"); do printf '%s\tnode%s\n' "$(node_ip "$i")" "$i"; done
    printf '10.250.0.100\toutside\n'
  } >"$dir/hosts"
  printf '# skiff lab: no DNS server (the lab has no route out); names are in /etc/hosts\n' \
    >"$dir/resolv.conf"
  say "LAN: bridge lab0 in netns $lan_ns (10.250.0.0/24, no route out)"
  make_lan
  attach outside "$out_ns" 10.250.0.100
  for i in $(seq 1 "$n"); do make_node "$i"; done

  if [ -n "${ETCD_EXE:-}" ]; then
    say "node1: etcd on its loopback 127.0.0.1:2379 ($ETCD_EXE)"
    start_daemon 1 etcd
    wait_etcd
  fi
  say "node1: skiff-apiserver on $(node_ip 1):6443"
  start_daemon 1 apiserver
  wait_apiserver
  sed "s#server: https://[^ ]*#server: https://$(node_ip 1):6443#" \
    "$dir/node1/apiserver/admin.kubeconfig" >"$dir/admin.kubeconfig"
  for name in $(node_daemons 1); do
    [ "$name" = etcd ] || [ "$name" = apiserver ] || [ "$name" = kubelet ] ||
      [ "$name" = netagent ] && continue
    say "node1: skiff-$name"
    start_daemon 1 "$name"
  done
  for i in $(seq 1 "$n"); do start_node "$i"; done
  say "waiting (up to ${timeout_s}s) for $n nodes Ready with a pod CIDR"
  wait_nodes $(seq 1 "$n")
  kubectl_lab get nodes -o wide
  say "lab up in $((SECONDS - t0))s: $n nodes, backend $backend, dir $dir"
  say "try: deploy/lab.sh exec node1 kubectl get pods -A"
}

# ---------------------------------------------------------------------------------------------
# join

# Adds node N+1 to the running lab, as `up` makes a node: a netns on the LAN (veth made in the
# LAN namespace, as `attach` does), mount + UTS namespaces, the images, skiff-kubelet and
# skiff-netagent with the lab's flags (from lab.env); a node3 or later is a worker, a node2
# gets the standby controller-manager and scheduler as `up` gives it. NODES in lab.env grows
# first, so status/exec/kill/revive know the node even when its start fails half-way (down
# removes every <name>-nodeI namespace anyway). Nodes cannot leave: `kill` stops one.
join() {
  [ "$(id -u)" = 0 ] || die "the lab makes namespaces, mounts and cgroups: run it as root"
  load_state
  # A lab from before `join` existed has no LAB_IMAGES: the caller's SKIFF_LAB_IMAGES then.
  : "${LAB_IMAGES=${SKIFF_LAB_IMAGES:-}}"
  local t0=$SECONDS i
  # one join at a time per lab (two would pick the same N)
  exec 9>"$dir/join.lock"
  flock -w "$timeout_s" 9 || die "join: another join of this lab holds $dir/join.lock"
  load_state
  i=$((NODES + 1))
  [ "$i" -le 50 ] || die "join: the lab has $NODES nodes already (at most 50)"
  [ ! -e "$(netns_path "$i")" ] || die "join: $(netns_path "$i") exists already (run: down)"
  ip netns list | grep -q "^$lan_ns\b" || die "join: no LAN namespace $lan_ns (is the lab up?)"
  pid_alive "$(daemon_pid 1 apiserver)" || die "join: skiff-apiserver on node1 is not running"
  for b in skiff-kubelet skiff-shim skiff; do need_bin "$b"; done
  sed -i "s/^NODES=.*/NODES=$i/" "$dir/lab.env"
  NODES=$i
  # The hosts file is bind-mounted into every node: append in place (same inode) so the
  # running nodes see the new name too.
  printf '%s\tnode%s\n' "$(node_ip "$i")" "$i" >>"$dir/hosts"
  say "node$i: joining lab $labname at $(node_ip "$i")"
  make_node "$i"
  start_node "$i"
  say "waiting (up to ${timeout_s}s) for node$i Ready with a pod CIDR"
  wait_nodes "$i"
  kubectl_lab get nodes -o wide
  say "node$i joined in $((SECONDS - t0))s: the lab has $i nodes"
}

# ---------------------------------------------------------------------------------------------
# status, exec, kill, revive

status() {
  load_state
  echo "lab dir $dir, $NODES nodes, backend $BACKEND, build $build"
  local i state link
  for i in $(seq 1 "$NODES"); do
    link=$(ip -n "$lan_ns" -br link show "node$i" 2>/dev/null | awk '{print $2}')
    state="node$i $(node_ip "$i") link=${link:-missing}"
    for name in $(node_daemons "$i"); do
      local p
      p=$(daemon_pid "$i" "$name")
      if pid_alive "$p"; then state+=" $name=$p"; else state+=" $name=DEAD"; fi
    done
    echo "$state"
  done
  echo "outside 10.250.0.100 ($out_ns)"
  kubectl_lab get nodes -o wide || echo "(API server not answering)"
}

exec_node() {
  load_state
  local i
  i=$(node_index "$1")
  shift
  [ $# -gt 0 ] || die "exec: no command"
  export PATH="$build:$PATH" KUBECONFIG="$dir/admin.kubeconfig"
  if [ "$i" = outside ]; then
    exec nsenter --net="/run/netns/$out_ns" -- "$@"
  fi
  [ "$i" -ge 1 ] && [ "$i" -le "$NODES" ] || die "no node$i in this lab ($NODES nodes)"
  exec nsenter --net="$(netns_path "$i")" --mount="$dir/ns/node$i.mnt" \
    --uts="$dir/ns/node$i.uts" -- "$@"
}

kill_node() {
  load_state
  local i p
  i=$(node_index "$1")
  [ "$i" != outside ] && [ "$i" -ge 1 ] && [ "$i" -le "$NODES" ] || die "kill: no node '$1'"
  for name in $(node_daemons "$i"); do
    p=$(daemon_pid "$i" "$name")
    pid_alive "$p" && kill -9 "$p" && say "node$i: killed skiff-$name ($p)"
  done
  ip -n "$lan_ns" link set "node$i" down
  say "node$i: LAN link down (containers keep running, unreachable)"
}

revive_node() {
  load_state
  local i
  i=$(node_index "$1")
  [ "$i" != outside ] && [ "$i" -ge 1 ] && [ "$i" -le "$NODES" ] || die "revive: no node '$1'"
  ip -n "$lan_ns" link set "node$i" up
  # The LAN link needs a moment (carrier, ARP) after `up`: a kubelet started at once may see
  # "No route to host" to node1's API server and exit. Wait (bounded) until it answers.
  if [ "$i" != 1 ]; then
    local end=$((SECONDS + 20))
    until in_node "$i" curl -sk --max-time 2 -o /dev/null "https://$(node_ip 1):6443/readyz"; do
      [ $SECONDS -lt $end ] || { warn "node$i: API server not reachable yet after 20s"; break; }
      sleep 0.2
    done
  fi
  for name in $(node_daemons "$i"); do
    pid_alive "$(daemon_pid "$i" "$name")" && continue
    start_daemon "$i" "$name"
    say "node$i: started skiff-$name ($(daemon_pid "$i" "$name"))"
    [ "$name" = etcd ] && wait_etcd
    [ "$name" = apiserver ] && wait_apiserver
  done
  wait_nodes "$i"
  say "node$i revived"
}

reboot_node() {
  load_state
  local i m t0=$SECONDS
  i=$(node_index "$1")
  [ "$i" != outside ] && [ "$i" -ge 1 ] && [ "$i" -le "$NODES" ] || die "reboot: no node '$1'"
  # Power off: every process of the node.
  kill_lab --node "$i" "$dir"
  # Its LAN cable first: the node's namespace is freed asynchronously once the last reference
  # goes, and until then its veth pair would still hold the LAN side's name. Then its
  # namespaces: dropping the pins frees the mount namespace (sandbox pins, rootfs mounts,
  # volumes) and then the network namespaces (the node's and its pods': links, routes,
  # nftables, conntrack, the VXLAN device). Then its cgroups.
  ip -n "$lan_ns" link del "node$i" 2>/dev/null || true
  for m in "$dir/ns/node$i.mnt" "$dir/ns/node$i.uts"; do umount -l "$m" 2>/dev/null || true; done
  ip netns del "$labname-node$i" 2>/dev/null || true
  remove_cgroups "$labname-node$i"
  # What lives in a tmpfs on a real machine (/run): the kubelet's run dir.
  rm -rf "$dir/node$i/run"
  say "node$i: powered off (processes, namespaces, pod cgroups and run dir gone; data kept)"
  # Power on: the same node, its daemons with the same flags.
  local klog="$dir/node$i/kubelet.log" runs end
  runs=$(grep -c "running: node node$i " "$klog" 2>/dev/null || true)
  make_node "$i"
  for name in $(node_daemons "$i"); do
    start_daemon "$i" "$name"
    [ "$name" = etcd ] && wait_etcd
    [ "$name" = apiserver ] && wait_apiserver
  done
  # The Node object still says Ready from before: wait for the new kubelet to be running.
  end=$((SECONDS + timeout_s))
  until [ "$(grep -c "running: node node$i " "$klog" 2>/dev/null || true)" -gt "${runs:-0}" ]; do
    pid_alive "$(daemon_pid "$i" kubelet)" || { tail -25 "$klog" >&2; die "node$i: skiff-kubelet exited"; }
    [ $SECONDS -lt $end ] || { tail -25 "$klog" >&2; die "node$i: kubelet not running after ${timeout_s}s"; }
    sleep 0.2
  done
  wait_nodes "$i"
  say "node$i rebooted in $((SECONDS - t0))s"
}

usage() {
  sed -n '/^# Usage:/,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

cmd=${1:-}
[ -n "$cmd" ] || usage
shift
case "$cmd" in
  up)
    n=${1:-}
    [ -n "$n" ] || usage
    shift
    backend=vxlan
    while [ $# -gt 0 ]; do
      case "$1" in
        --backend) backend=${2:-}; shift 2 || usage ;;
        --backend=*) backend=${1#--backend=}; shift ;;
        *) usage ;;
      esac
    done
    up "$n" "$backend"
    ;;
  join) [ $# = 0 ] || usage; join ;;
  down)
    [ "$(id -u)" = 0 ] || die "run as root"
    down
    say "lab removed"
    ;;
  status) status ;;
  exec)
    [ $# -ge 2 ] || usage
    exec_node "$@"
    ;;
  kill) [ $# = 1 ] || usage; kill_node "$1" ;;
  revive) [ $# = 1 ] || usage; revive_node "$1" ;;
  reboot) [ $# = 1 ] || usage; reboot_node "$1" ;;
  -h | --help | help) usage ;;
  *) usage ;;
esac
