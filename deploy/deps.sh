#!/usr/bin/env bash
# Installs every Debian package skiff needs to build, test and run its demo.
# Used by the README's commands, .ci/run and the tests. Idempotent; skips apt when all is present.
set -euo pipefail
pkgs=(
  build-essential cmake ninja-build ccache pkg-config git
  libboost1.81-dev libssl-dev nlohmann-json3-dev libspdlog-dev libfmt-dev catch2
  libsqlite3-dev libyaml-cpp-dev libcli11-dev zlib1g-dev
  openssl curl python3 python3-kubernetes python3-yaml procps tzdata
  # node agent: build libraries, the reference runtimes and registry tools its tests run against
  libarchive-dev libseccomp-dev
  crun runc busybox-static skopeo docker-registry containernetworking-plugins iproute2 util-linux
  libmnl-dev  # the skiff CNI plugin (cni/plugin) speaks netlink through libmnl
  # pod network (issue 4): netagent speaks nftables through libnftnl; the lab and bench/net use
  # nft (tests read back what netagent made) and iperf3 (bench/net)
  libnftnl-dev nftables iperf3
  fio  # bench/api: the reference tool for the disk's write+fdatasync floor
  e2fsprogs  # bench/api_fs.sh: mkfs.ext4 for the filesystems it measures on
  libjemalloc-dev  # skiff-netagent's allocator (netagent/main.cc says why)
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# kubectl: the machine image ships one (1.27-1.33); on a machine without one, install Debian's.
if ! command -v kubectl >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null || true
fi
