// skiff's masquerade rule for pod traffic leaving the cluster, in the nftables table `ip skiff`.
#pragma once

#include <string_view>

#include "common/status.h"

namespace skiff::nft {

// Ensures table `ip skiff` with a chain `postrouting` (type nat, hook postrouting, priority srcnat
// = 100) that masquerades IPv4 traffic whose source is in `cluster_cidr` and whose destination is
// not in it (pod traffic leaving the cluster), leaving pod-to-pod traffic untouched. One netlink
// batch: the table and chain are created if absent and the chain's rules replaced, so it is
// idempotent and repairs drift. Only table `ip skiff` is ever touched.
[[nodiscard]] Status sync_masquerade(std::string_view cluster_cidr);

// Deletes table `ip skiff` and everything in it; absent is success.
[[nodiscard]] Status delete_skiff_table();

}  // namespace skiff::nft
