#!/usr/bin/env bash
# Installs skiff on a real machine from a build dir: binaries, the CNI plugin, /etc/skiff config
# and systemd units, then enables and starts the units.
#
#   control plane:  deploy/install.sh --role control-plane [--node-ip IP]
#                   (runs skiff-apiserver, skiff-controller-manager, and a kubelet + netagent so
#                   the machine is also a node; prints the command to run on every other node)
#   other nodes:    deploy/install.sh --role node --api-server https://HOST:6443 --token TOKEN \
#                     --ca-data BASE64 --kubelet-client-token TOKEN [--node-ip IP]
#
# Join, in short: the control-plane install makes a node token (a line of the API server's
# --token-auth-file, /etc/skiff/tokens.csv) and the kubelet client token (what the API server
# presents to kubelets for logs/exec); the node install writes a kubeconfig with the server, the
# node token and the CA certificate (passed by value, so the node verifies the server from the
# first request), and the kubelet client token. Re-running either is harmless: existing tokens
# are kept, unchanged files are left alone, services restart only when something they use
# changed. `--dry-run` prints every action and changes nothing; `--root DIR` writes every file
# under DIR (like DESTDIR) and runs no systemctl (staging, packaging, tests).
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
prog=install.sh

usage() {
  cat <<EOF
usage: $prog --role control-plane|node [options]

  --role R                  control-plane (API server, controller manager, and node components)
                            or node (kubelet, shim, netagent)
  --api-server URL          https://HOST:6443. Required for node; for control-plane the URL
                            nodes use (default https://NODE_IP:6443; HOST is added to the
                            serving certificate)
  --token TOKEN             node: the node token printed by the control-plane install.
                            control-plane: use this node token instead of generating one
  --ca-data BASE64          node: the cluster CA certificate (base64 of the PEM), printed by the
                            control-plane install
  --ca-file FILE            node: the cluster CA certificate as a PEM file (instead of --ca-data)
  --kubelet-client-token T  node: the token the API server presents to kubelets (printed by the
                            control-plane install). control-plane: use this instead of generating
  --node-ip IP              this machine's address on the node network (default: the address of
                            the interface holding the default route)
  --node-name NAME          (default: hostname)
  --backend vxlan|host-gw   pod network between nodes (default vxlan; host-gw needs one L2 LAN)
  --cluster-cidr CIDR       pod network (default 10.244.0.0/16; same on every machine)
  --prefix DIR              binaries go to DIR/bin (default /usr/local)
  --build-dir DIR           where the built binaries are (default \$SKIFF_BUILD_DIR or $src/build)
  --root DIR                write every file under DIR; do not run systemctl
  --dry-run                 print what would be done; change nothing
  -h, --help                this text
EOF
}

die() { echo "$prog: $*" >&2; exit 1; }
bad_usage() { echo "$prog: $*" >&2; echo "run '$prog --help' for the flags" >&2; exit 2; }

role="" api_server="" token="" ca_data="" ca_file="" kubelet_token="" node_ip="" node_name=""
backend=vxlan cluster_cidr=10.244.0.0/16 prefix=/usr/local build="${SKIFF_BUILD_DIR:-$src/build}"
root="" dry_run=0

need_value() { [ $# -ge 2 ] && [ -n "$2" ] && [ "${2#--}" = "$2" ] || bad_usage "$1 needs a value"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --role | --api-server | --token | --ca-data | --ca-file | --kubelet-client-token | \
      --node-ip | --node-name | --backend | --cluster-cidr | --prefix | --build-dir | --root)
      need_value "$@"
      case "$1" in
        --role) role=$2 ;;
        --api-server) api_server=$2 ;;
        --token) token=$2 ;;
        --ca-data) ca_data=$2 ;;
        --ca-file) ca_file=$2 ;;
        --kubelet-client-token) kubelet_token=$2 ;;
        --node-ip) node_ip=$2 ;;
        --node-name) node_name=$2 ;;
        --backend) backend=$2 ;;
        --cluster-cidr) cluster_cidr=$2 ;;
        --prefix) prefix=$2 ;;
        --build-dir) build=$2 ;;
        --root) root=$2 ;;
      esac
      shift 2 ;;
    --*=*) set -- "${1%%=*}" "${1#*=}" "${@:2}" ;;  # --flag=value
    --dry-run) dry_run=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) bad_usage "unknown flag '$1'" ;;
  esac
done

# ---- validate the flags before touching anything
is_ipv4() {
  local IFS=. a
  [[ $1 =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || return 1
  for a in $1; do [ "$a" -le 255 ] || return 1; done
}
is_cidr() { [[ $1 == */* ]] && is_ipv4 "${1%/*}" && [[ ${1#*/} =~ ^[0-9]{1,2}$ ]] && [ "${1#*/}" -le 32 ]; }
is_token() { [[ $1 =~ ^[A-Za-z0-9._-]{16,128}$ ]]; }

case "$role" in
  control-plane | node) ;;
  "") bad_usage "--role is required (control-plane or node)" ;;
  *) bad_usage "--role must be control-plane or node, not '$role'" ;;
esac
case "$backend" in vxlan | host-gw) ;; *) bad_usage "--backend must be vxlan or host-gw, not '$backend'" ;; esac
is_cidr "$cluster_cidr" || bad_usage "--cluster-cidr '$cluster_cidr' is not an IPv4 CIDR"
[[ $prefix == /* ]] || bad_usage "--prefix must be an absolute path, not '$prefix'"
[ -z "$root" ] || [[ $root == /* ]] || root=$(pwd)/$root
if [ -n "$api_server" ]; then
  [[ $api_server =~ ^https://([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\])(:[0-9]+)?/?$ ]] ||
    bad_usage "--api-server must look like https://HOST:6443, not '$api_server'"
  api_server=${api_server%/}
  [[ $api_server =~ :[0-9]+$ ]] || api_server=$api_server:6443
fi
[ -z "$token" ] || is_token "$token" ||
  bad_usage "--token must be 16-128 characters of [A-Za-z0-9._-]"
[ -z "$kubelet_token" ] || is_token "$kubelet_token" ||
  bad_usage "--kubelet-client-token must be 16-128 characters of [A-Za-z0-9._-]"
if [ "$role" = node ]; then
  [ -n "$api_server" ] || bad_usage "--role node needs --api-server https://HOST:6443"
  [ -n "$token" ] || bad_usage "--role node needs --token (printed by the control-plane install)"
  [ -n "$kubelet_token" ] ||
    bad_usage "--role node needs --kubelet-client-token (printed by the control-plane install)"
  [ -n "$ca_data$ca_file" ] ||
    bad_usage "--role node needs --ca-data or --ca-file: the cluster CA, so the node verifies the API server"
  [ -z "$ca_data" ] || [ -z "$ca_file" ] || bad_usage "give --ca-data or --ca-file, not both"
  if [ -n "$ca_file" ]; then
    [ -r "$ca_file" ] || die "--ca-file $ca_file: not readable"
    ca_pem=$(cat "$ca_file")
  else
    ca_pem=$(printf '%s' "$ca_data" | base64 -d 2>/dev/null) || bad_usage "--ca-data is not base64"
  fi
  [[ $ca_pem == *"-----BEGIN CERTIFICATE-----"* ]] ||
    bad_usage "the CA given by --ca-data/--ca-file is not a PEM certificate"
  if command -v openssl >/dev/null &&
    ! printf '%s\n' "$ca_pem" | openssl x509 -noout 2>/dev/null; then
    bad_usage "the CA given by --ca-data/--ca-file does not parse as an X.509 certificate"
  fi
else
  [ -z "$ca_data$ca_file" ] ||
    bad_usage "--ca-data/--ca-file are for --role node (the control plane makes the CA)"
fi

if [ -z "$node_ip" ]; then
  # The address on the device of the default route: a routing-table lookup, nothing is sent.
  dev=$(ip -4 route show default 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "dev") {print $(i + 1); exit}}')
  [ -n "$dev" ] && node_ip=$(ip -4 -o addr show dev "$dev" 2>/dev/null | awk '{print $4; exit}')
  node_ip=${node_ip%/*}
  [ -n "$node_ip" ] || bad_usage "no default route to take the node address from: give --node-ip"
fi
is_ipv4 "$node_ip" || bad_usage "--node-ip '$node_ip' is not an IPv4 address"
[ -n "$node_name" ] || node_name=$(hostname)
[[ $node_name =~ ^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$ ]] ||
  bad_usage "node name '$node_name' is not a lowercase DNS name: give --node-name"
[ "$role" = node ] || api_server=${api_server:-https://$node_ip:6443}
api_host=${api_server#https://}
api_host=${api_host%:*}

# ---- what goes where
bin_dir=$prefix/bin
cni_bin=/opt/cni/bin
etc=/etc/skiff
unit_dir=/etc/systemd/system
if [ "$role" = control-plane ]; then
  binaries=(skiff-apiserver skiff-controller-manager skiff-kubelet skiff-shim skiff-netagent skiffctl)
  units=(skiff-apiserver skiff-controller-manager skiff-kubelet skiff-netagent)
else
  binaries=(skiff-kubelet skiff-shim skiff-netagent skiffctl)
  units=(skiff-kubelet skiff-netagent)
fi
missing=()
for b in "${binaries[@]}" skiff; do [ -x "$build/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -gt 0 ]; then
  msg="not in the build dir $build: ${missing[*]} (build them: ninja -C $build ${missing[*]}; or give --build-dir)"
  [ "$dry_run" = 1 ] && echo "$prog: warning: $msg" >&2 || die "$msg"
fi
if [ "$dry_run" = 0 ] && [ -z "$root" ]; then
  [ "$(id -u)" = 0 ] || die "installing into the system needs root (or use --root DIR / --dry-run)"
  command -v systemctl >/dev/null || die "systemctl not found: this script installs systemd units"
  [ "$(ps -p 1 -o comm= 2>/dev/null)" = systemd ] ||
    die "PID 1 is not systemd, so units cannot be started here (use --root DIR to stage files)"
fi

# ---- actions: each prints what it does; --dry-run prints and stops there
changed=0            # files written this run
declare -A touched=()  # unit name -> 1 when something it uses changed
say() { echo "$prog: $*"; }

# put_file DEST MODE CONTENT [UNITS...]: writes CONTENT to DEST (under --root) when it differs.
put_file() {
  local dest=$1 mode=$2 content=$3 path=$root$1 u
  shift 3
  if [ -f "$path" ] && [ "$(cat "$path"; echo x)" = "$content"$'\n'x ]; then
    say "unchanged $dest"
    return 0
  fi
  if [ "$dry_run" = 1 ]; then
    say "would write $dest (mode $mode):"
    if [ "$mode" = 0600 ]; then echo "    (secret, ${#content} bytes)"; else printf '%s\n' "$content" | sed 's/^/    | /'; fi
  else
    mkdir -p "$(dirname "$path")"
    # Write beside the target and rename, so a reader never sees half a file.
    (umask 077; printf '%s\n' "$content" >"$path.skiff-tmp")
    chmod "$mode" "$path.skiff-tmp"
    mv -f "$path.skiff-tmp" "$path"
    say "wrote $dest"
  fi
  changed=$((changed + 1))
  for u in "$@"; do touched[$u]=1; done
}

# put_binary NAME DEST_DIR [UNITS...]
put_binary() {
  local name=$1 dir=$2 from=$build/$1 u
  shift 2
  local path=$root$dir/$name
  if [ -f "$path" ] && [ -x "$from" ] && cmp -s "$from" "$path"; then
    say "unchanged $dir/$name"
    return 0
  fi
  if [ "$dry_run" = 1 ]; then
    say "would install $from -> $dir/$name (0755)"
  else
    mkdir -p "$root$dir"
    install -m 0755 "$from" "$path.skiff-tmp"
    mv -f "$path.skiff-tmp" "$path"  # rename: a running binary is not overwritten in place
    say "installed $dir/$name"
  fi
  changed=$((changed + 1))
  for u in "$@"; do touched[$u]=1; done
}

make_dir() {  # make_dir DIR MODE
  [ -d "$root$1" ] && return 0
  if [ "$dry_run" = 1 ]; then say "would create $1 ($2)"; else mkdir -p "$root$1" && chmod "$2" "$root$1"; say "created $1"; fi
}

run() {  # a system command: printed, run unless --dry-run or --root
  if [ "$dry_run" = 1 ] || [ -n "$root" ]; then say "would run: $*"; else say "run: $*"; "$@"; fi
}

new_token() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }

# read_existing FILE: prints the file's first line (under --root), or nothing.
read_existing() { [ -r "$root$1" ] && head -n1 "$root$1" | tr -d '\r\n' || true; }

# ---- binaries
for b in "${binaries[@]}"; do
  unit=$b
  [ "$b" = skiff-shim ] && unit=skiff-kubelet
  [ -x "$build/$b" ] || { say "skipping $b: not built"; continue; }
  put_binary "$b" "$bin_dir" "$unit"
done
[ -x "$build/skiff" ] && put_binary skiff "$cni_bin" skiff-kubelet || say "skipping skiff (CNI plugin): not built"
# The kubelet resolves missing shared libraries at start only: say so now, not in the journal.
if [ "$dry_run" = 0 ]; then
  for b in "${binaries[@]}"; do
    [ -x "$build/$b" ] || continue
    if ldd "$build/$b" 2>/dev/null | grep -q 'not found'; then
      echo "$prog: warning: $b misses shared libraries on this machine (run deploy/deps.sh):" >&2
      ldd "$build/$b" | grep 'not found' >&2
    fi
  done
fi

# ---- directories and config
make_dir "$etc" 0755
make_dir /var/lib/skiff 0700
make_dir /var/log/skiff 0755
make_dir /etc/cni/net.d 0755
put_file /etc/modules-load.d/skiff.conf 0644 $'# skiff: container root filesystems (overlayfs), the pod network between nodes (vxlan)\noverlay\nvxlan'

if [ "$role" = control-plane ]; then
  # Tokens: keep what an earlier run made, so nodes that joined stay joined.
  [ -n "$kubelet_token" ] || kubelet_token=$(read_existing "$etc/kubelet-client.token")
  [ -n "$kubelet_token" ] || kubelet_token=$(new_token)
  if [ -z "$token" ]; then
    token=$(grep -m1 ',system:node-bootstrap,' "$root$etc/tokens.csv" 2>/dev/null | cut -d, -f1 || true)
  fi
  [ -n "$token" ] || token=$(new_token)
  # Kubernetes' static token file: token,user,uid,"groups". The API server has no authorization
  # yet, so this token can do everything the admin can: keep it as secret as the admin token.
  put_file "$etc/tokens.csv" 0600 "$token,system:node-bootstrap,skiff-node-bootstrap,\"system:nodes,system:bootstrappers\"" skiff-apiserver
  ca_ref="certificate-authority: /var/lib/skiff/apiserver/pki/ca.crt"
  sans=""
  [ "$api_host" = "$node_ip" ] || sans="--tls-san $api_host"
else
  put_file "$etc/ca.crt" 0644 "$ca_pem" skiff-kubelet skiff-netagent
  ca_ref="certificate-authority-data: $(printf '%s\n' "$ca_pem" | base64 -w0)"
  sans=""
fi
put_file "$etc/kubelet-client.token" 0600 "$kubelet_token" skiff-kubelet skiff-apiserver

# The node components' kubeconfig: server, CA, node token.
put_file "$etc/kubelet.kubeconfig" 0600 "apiVersion: v1
kind: Config
clusters:
- name: skiff
  cluster:
    server: $api_server
    $ca_ref
users:
- name: node
  user:
    token: $token
contexts:
- name: skiff
  context:
    cluster: skiff
    user: node
current-context: skiff" skiff-kubelet skiff-netagent

# ---- systemd units, from deploy/systemd with this machine's values
kubelet_backend=""
# The kubelet learns --network-backend with the pod network (issue 4); older kubelets lack it.
if [ -x "$build/skiff-kubelet" ] && "$build/skiff-kubelet" --help 2>&1 | grep -q -- '--network-backend'; then
  kubelet_backend="--network-backend $backend"
fi
for u in "${units[@]}"; do
  tmpl=$src/deploy/systemd/$u.service
  [ -r "$tmpl" ] || die "unit template $tmpl missing"
  text=$(sed -e "s|@PREFIX@|$prefix|g" -e "s|@NODE_IP@|$node_ip|g" -e "s|@NODE_NAME@|$node_name|g" \
    -e "s|@BACKEND@|$backend|g" -e "s|@CLUSTER_CIDR@|$cluster_cidr|g" \
    -e "s|@EXTRA_SANS@|$sans|g" -e "s|@KUBELET_BACKEND@|$kubelet_backend|g" \
    -e 's/  */ /g' -e 's/ $//' "$tmpl")
  put_file "$unit_dir/$u.service" 0644 "$text" "$u"
done

# ---- enable and (re)start
if [ ${#touched[@]} -gt 0 ]; then run systemctl daemon-reload; fi
for u in "${units[@]}"; do
  run systemctl enable "$u.service"
  if [ -n "${touched[$u]:-}" ]; then
    run systemctl restart "$u.service"  # starts it too; restarts when something it uses changed
  else
    run systemctl start "$u.service"
  fi
done
say "$changed file(s) changed"

# ---- the join command for the other nodes
if [ "$role" = control-plane ]; then
  ca=/var/lib/skiff/apiserver/pki/ca.crt
  if [ "$dry_run" = 0 ] && [ -z "$root" ]; then
    # The API server makes its CA on first start.
    for _ in $(seq 1 300); do [ -s "$ca" ] && break; sleep 0.2; done
    [ -s "$ca" ] || die "skiff-apiserver made no CA at $ca within 60 s: journalctl -u skiff-apiserver"
  fi
  if [ -s "$root$ca" ]; then
    ca_arg=$(base64 -w0 "$root$ca")
  else
    ca_arg="\"\$(base64 -w0 $ca)\""  # not made yet (--root/--dry-run): evaluate after start
  fi
  cmd="deploy/install.sh --role node --api-server $api_server --token $token --kubelet-client-token $kubelet_token --ca-data $ca_arg"
  [ "$backend" = vxlan ] || cmd="$cmd --backend $backend"
  [ "$cluster_cidr" = 10.244.0.0/16 ] || cmd="$cmd --cluster-cidr $cluster_cidr"
  [ "$dry_run" = 1 ] || put_file "$etc/join-command" 0600 "$cmd"
  echo
  echo "Control plane installed. Admin kubeconfig: /var/lib/skiff/apiserver/admin.kubeconfig"
  echo "  (e.g. KUBECONFIG=/var/lib/skiff/apiserver/admin.kubeconfig kubectl get nodes)"
  echo "On every other node, from a checkout with the same build, run (keep it secret: the tokens"
  echo "grant full access to the cluster; it is also in $etc/join-command):"
  echo
  [ "$dry_run" = 0 ] || echo "  (dry run: tokens that did not exist yet were made up for this text and not saved)"
  echo "  $cmd"
fi
