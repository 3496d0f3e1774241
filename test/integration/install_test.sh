# deploy/install.sh, without systemd: the sandbox has no systemd as PID 1, so the install is
# staged with --root into temp dirs (no systemctl runs) and checked there.
# - bad flags are refused with a clear message, before anything is written;
# - --dry-run writes nothing and says what it would do;
# - a control-plane install stages binaries, the CNI plugin, config and units; a second run
#   changes nothing and keeps the tokens;
# - every unit's ExecStart names an installed binary, and every flag it passes appears in that
#   binary's --help; systemd-analyze verify accepts the units;
# - the join works against a real skiff-apiserver run with the staged token file: the node
#   install run with the printed join command writes a kubeconfig with which skiffctl lists
#   namespaces (the node token authenticates, the CA verifies the server); a wrong token and a
#   wrong CA are refused.
# Traffic: 127.0.0.1 only.
. "$(dirname "$0")/lib.sh"

skiff_need_bin skiff-apiserver skiff-controller-manager skiff-kubelet skiff-shim skiff-netagent \
  skiffctl skiff
command -v openssl >/dev/null || skiff_skip "openssl missing (makes a second CA)"
skiff_init

INSTALL=$SKIFF_SRC/deploy/install.sh
CP=$SKIFF_TMP/cp    # staged control plane
NODE=$SKIFF_TMP/n2  # staged node
PREFIX=/opt/skifftest

# run_install OUTFILE ARGS...: prints nothing; the exit status is the script's.
run_install() {
  local out=$1
  shift
  bash "$INSTALL" --build-dir "$SKIFF_BIN" "$@" >"$out" 2>&1
}

# ---- bad flags
refused() {  # refused EXPECTED_TEXT ARGS...: exit 2, message names the problem, nothing written
  local want=$1 rc=0
  shift
  mkdir -p "$SKIFF_TMP/bad"
  run_install "$SKIFF_TMP/bad.out" --root "$SKIFF_TMP/bad" "$@" || rc=$?
  [ "$rc" = 2 ] || { echo "exit $rc, want 2"; cat "$SKIFF_TMP/bad.out"; return 1; }
  grep -qF -- "$want" "$SKIFF_TMP/bad.out" || { echo "no '$want' in:"; cat "$SKIFF_TMP/bad.out"; return 1; }
  [ -z "$(ls -A "$SKIFF_TMP/bad")" ] || { echo "files were written:"; find "$SKIFF_TMP/bad"; return 1; }
}
check "an unknown flag is refused" refused "unknown flag '--bogus'" --role node --bogus
check "a stray argument is refused" refused "unknown flag 'node'" --role control-plane node
check "no --role is refused" refused "--role is required" --node-ip 10.0.0.1
check "a bad role is refused" refused "--role must be control-plane or node, not 'worker'" --role worker
check "a flag without its value is refused" refused "--api-server needs a value" --role node --api-server
check "a bad backend is refused" refused "--backend must be vxlan or host-gw" \
  --role control-plane --node-ip 10.0.0.1 --backend flannel
check "a bad node IP is refused" refused "--node-ip '300.1.1.1' is not an IPv4 address" \
  --role control-plane --node-ip 300.1.1.1
check "a node without --api-server is refused" refused "--role node needs --api-server" \
  --role node --node-ip 10.0.0.2
check "an http:// API server is refused" refused "--api-server must look like https://HOST:6443" \
  --role node --node-ip 10.0.0.2 --api-server http://10.0.0.1:6443 --token 0123456789abcdef0123
check "a node without a CA is refused" refused "--role node needs --ca-data or --ca-file" \
  --role node --node-ip 10.0.0.2 --api-server https://10.0.0.1:6443 \
  --token 0123456789abcdef0123 --kubelet-client-token 0123456789abcdef0123
check "a CA that is not a certificate is refused" refused "is not a PEM certificate" \
  --role node --node-ip 10.0.0.2 --api-server https://10.0.0.1:6443 \
  --token 0123456789abcdef0123 --kubelet-client-token 0123456789abcdef0123 \
  --ca-data "$(echo hello | base64)"

# ---- --dry-run
mkdir -p "$SKIFF_TMP/dry"
check "--dry-run exits 0" run_install "$SKIFF_TMP/dry.out" --role control-plane --dry-run \
  --root "$SKIFF_TMP/dry" --prefix "$PREFIX" --node-ip 10.0.0.1 --node-name cp1
check "--dry-run writes nothing" test -z "$(ls -A "$SKIFF_TMP/dry")"
check "--dry-run names the binaries, units and systemctl calls" bash -c "
  grep -q 'would install $SKIFF_BIN/skiff-apiserver -> $PREFIX/bin/skiff-apiserver' $SKIFF_TMP/dry.out &&
  grep -q 'would install $SKIFF_BIN/skiff -> /opt/cni/bin/skiff' $SKIFF_TMP/dry.out &&
  grep -q 'would write /etc/systemd/system/skiff-kubelet.service' $SKIFF_TMP/dry.out &&
  grep -q 'would run: systemctl enable skiff-netagent.service' $SKIFF_TMP/dry.out &&
  grep -q 'install.sh --role node --api-server https://10.0.0.1:6443 --token ' $SKIFF_TMP/dry.out"
check "--dry-run does not print secrets' contents" bash -c "! grep -q 'token:' $SKIFF_TMP/dry.out"

# ---- control plane, staged
check "control-plane install into --root exits 0" run_install "$SKIFF_TMP/cp1.out" \
  --role control-plane --root "$CP" --prefix "$PREFIX" --node-ip 10.0.0.1 --node-name cp1
for b in skiff-apiserver skiff-controller-manager skiff-kubelet skiff-shim skiff-netagent skiffctl; do
  check "$PREFIX/bin/$b installed, executable, same as the build" \
    bash -c "[ -x $CP$PREFIX/bin/$b ] && cmp $SKIFF_BIN/$b $CP$PREFIX/bin/$b"
done
check "CNI plugin in /opt/cni/bin/skiff" cmp "$SKIFF_BIN/skiff" "$CP/opt/cni/bin/skiff"
for f in tokens.csv kubelet-client.token kubelet.kubeconfig join-command; do
  check "/etc/skiff/$f is 0600" test "$(stat -c %a "$CP/etc/skiff/$f")" = 600
done
check "the 4 control-plane units" bash -c "cd $CP/etc/systemd/system && ls skiff-apiserver.service \
  skiff-controller-manager.service skiff-kubelet.service skiff-netagent.service"
check "no placeholder left in the units" bash -c "! grep -n '@[A-Z_]*@' $CP/etc/systemd/system/*.service"
check "tokens.csv: token,user,uid,\"groups\"" \
  matches "$(cat "$CP/etc/skiff/tokens.csv")" '^[0-9a-f]{64},system:node-bootstrap,skiff-node-bootstrap,"system:nodes,system:bootstrappers"$'
check "the kubelet runs with the staged paths and the node token's kubeconfig" \
  matches "$(grep ^ExecStart= "$CP/etc/systemd/system/skiff-kubelet.service")" \
  "^ExecStart=$PREFIX/bin/skiff-kubelet --kubeconfig /etc/skiff/kubelet.kubeconfig --node-name cp1 --node-ip 10.0.0.1 .*--client-token-file /etc/skiff/kubelet-client.token"
check "the kubelet unit does not kill containers on restart" \
  grep -qx 'KillMode=process' "$CP/etc/systemd/system/skiff-kubelet.service"

cp -a "$CP" "$SKIFF_TMP/cp-before"
check "a second run exits 0" run_install "$SKIFF_TMP/cp2.out" \
  --role control-plane --root "$CP" --prefix "$PREFIX" --node-ip 10.0.0.1 --node-name cp1
check "... changes no file" grep -q '0 file(s) changed' "$SKIFF_TMP/cp2.out"
check "... tree identical (tokens kept)" diff -r "$SKIFF_TMP/cp-before" "$CP"
check "... restarts nothing" bash -c "! grep -q 'systemctl restart' $SKIFF_TMP/cp2.out"
check "... prints the same join command" \
  bash -c "grep -q \"\$(cat $CP/etc/skiff/join-command)\" $SKIFF_TMP/cp2.out"

# ---- the units name real binaries and real flags
for unit in "$CP"/etc/systemd/system/*.service; do
  name=$(basename "$unit")
  exec_line=$(sed -n 's/^ExecStart=//p' "$unit")
  bin=${exec_line%% *}
  check "$name: ExecStart names an installed binary ($bin)" test -x "$CP$bin"
  help=$("$CP$bin" --help 2>&1)
  for flag in $(printf '%s\n' "$exec_line" | tr ' ' '\n' | grep '^--' | sed 's/=.*//'); do
    check "$name: $flag is a flag of $(basename "$bin")" contains "$help" "$flag"
  done
done
if command -v systemd-analyze >/dev/null; then
  # verify resolves ExecStart on this machine: point it at the staged binaries.
  mkdir -p "$SKIFF_TMP/verify"
  for unit in "$CP"/etc/systemd/system/*.service; do
    sed "s|^ExecStart=$PREFIX/|ExecStart=$CP$PREFIX/|" "$unit" >"$SKIFF_TMP/verify/$(basename "$unit")"
  done
  check "systemd-analyze verify accepts the units" \
    bash -c "cd $SKIFF_TMP/verify && out=\$(timeout 60 systemd-analyze verify ./*.service 2>&1) && [ -z \"\$out\" ] || { echo \"\$out\"; exit 1; }"
else
  echo "note: systemd-analyze not installed; units not verified by systemd"
fi

# ---- the join, against a real API server using the staged token files
SKIFF_DATA=$CP/var/lib/skiff/apiserver
skiff_start_apiserver --token-auth-file "$CP/etc/skiff/tokens.csv" \
  --kubelet-client-token-file "$CP/etc/skiff/kubelet-client.token"
check "control-plane re-run with the API server up exits 0" run_install "$SKIFF_TMP/cp3.out" \
  --role control-plane --root "$CP" --prefix "$PREFIX" --node-ip 10.0.0.1 --node-name cp1 \
  --api-server "$SKIFF_URL"
check "... the apiserver unit gets the API server's host as a SAN" \
  grep -q -- "--tls-san 127.0.0.1" "$CP/etc/systemd/system/skiff-apiserver.service"
JOIN=$(cat "$CP/etc/skiff/join-command")
check "the join command carries the CA by value" \
  contains "$JOIN" "--ca-data $(base64 -w0 "$SKIFF_DATA/pki/ca.crt")"
check "the node install with the join command exits 0" bash -c "cd $SKIFF_SRC && \
  $JOIN --root $NODE --build-dir $SKIFF_BIN --node-ip 10.0.0.2 --node-name n2 >$SKIFF_TMP/n1.out 2>&1 \
  || { cat $SKIFF_TMP/n1.out; exit 1; }"
check "the node has kubelet + netagent units only" bash -c "cd $NODE/etc/systemd/system && \
  [ \"\$(ls | tr '\n' ' ')\" = 'skiff-kubelet.service skiff-netagent.service ' ]"
check "the node has no API server binary" test ! -e "$NODE/usr/local/bin/skiff-apiserver"
check "the node's kubelet client token is the control plane's" \
  cmp "$CP/etc/skiff/kubelet-client.token" "$NODE/etc/skiff/kubelet-client.token"
check "the node's CA is the API server's" cmp "$SKIFF_DATA/pki/ca.crt" "$NODE/etc/skiff/ca.crt"
out=$("$SKIFF_BIN/skiffctl" --kubeconfig "$NODE/etc/skiff/kubelet.kubeconfig" get namespaces 2>&1)
check "skiffctl with the node's kubeconfig lists namespaces (token accepted, server verified)" \
  contains "$out" default

sed "s/token: .*/token: 0000000000000000000000000000000000000000/" \
  "$NODE/etc/skiff/kubelet.kubeconfig" >"$SKIFF_TMP/badtoken.kubeconfig"
check "a wrong token is refused" \
  bash -c "! $SKIFF_BIN/skiffctl --kubeconfig $SKIFF_TMP/badtoken.kubeconfig get namespaces"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=other \
  -keyout "$SKIFF_TMP/other.key" -out "$SKIFF_TMP/other.crt" 2>/dev/null
check "a node install with another CA exits 0" bash -c "cd $SKIFF_SRC && \
  ${JOIN% --ca-data *} --ca-file $SKIFF_TMP/other.crt --root $SKIFF_TMP/n3 --build-dir $SKIFF_BIN \
  --node-ip 10.0.0.3 --node-name n3 >$SKIFF_TMP/n3.out 2>&1 || { cat $SKIFF_TMP/n3.out; exit 1; }"
check "... and its kubeconfig does not trust the server" \
  bash -c "! $SKIFF_BIN/skiffctl --kubeconfig $SKIFF_TMP/n3/etc/skiff/kubelet.kubeconfig get namespaces"

skiff_stop_apiserver
skiff_finish
