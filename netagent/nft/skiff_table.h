// The layout of skiff's own nftables table, `ip skiff`, and the batches that maintain it.
// masquerade.h is the small API the netagent calls; this header is for tests and for the code
// that will add the service chains and maps (issue 6) to the same table.
#pragma once

#include <string_view>

#include "common/status.h"
#include "netagent/nft/nft.h"

namespace skiff::nft {

inline constexpr Family kSkiffFamily = Family::kIp;
inline constexpr char kSkiffTable[] = "skiff";
// type nat hook postrouting priority srcnat; owned entirely by sync_masquerade.
inline constexpr char kPostroutingChain[] = "postrouting";
inline constexpr char kMasqueradeComment[] = "skiff: masquerade pod traffic leaving the cluster";
// Bit of the packet mark that asks postrouting to masquerade (kube-proxy's 0x4000): any chain
// sets it (`meta mark set meta mark | 0x00004000`, e.g. chain mark-for-masquerade);
// postrouting masquerades marked packets and clears the bit.
inline constexpr uint32_t kMasqueradeMark = 0x4000;
inline constexpr char kMarkedMasqueradeComment[] = "skiff: masquerade marked packets";

// `ip saddr <cluster> ip daddr != <cluster> masquerade`.
Rule masquerade_rule(const Ipv4Prefix& cluster);
// `meta mark & 0x00004000 == 0x00004000 meta mark set meta mark ^ 0x00004000 masquerade
// fully-random`: packets marked for masquerade (hairpin, NodePort to a remote endpoint).
Rule marked_masquerade_rule();

// The one-transaction sync: add table (kept if present), add chain postrouting as a regular
// chain and delete it (so the delete cannot fail on absence, and any drift — rules added by
// hand, another hook, priority, type or policy — goes with it), add the base chain afresh, add
// the marked-packet rule then the cluster rule. Nothing else in the table is touched.
Batch masquerade_batch(const Ipv4Prefix& cluster);

// sync_masquerade / delete_skiff_table (masquerade.h) against any NftTables (a fake in tests).
[[nodiscard]] Status sync_masquerade(NftTables& tables, std::string_view cluster_cidr);
[[nodiscard]] Status delete_skiff_table(NftTables& tables);

}  // namespace skiff::nft
