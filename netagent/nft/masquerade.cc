#include "netagent/nft/masquerade.h"

#include <cerrno>

#include "netagent/nft/skiff_table.h"

namespace skiff::nft {

Rule masquerade_rule(const Ipv4Prefix& cluster) {
  Rule r;
  r.exprs = match_ipv4(IpField::kSaddr, cluster);
  std::vector<Expr> daddr = match_ipv4(IpField::kDaddr, cluster, /*negate=*/true);
  r.exprs.insert(r.exprs.end(), daddr.begin(), daddr.end());
  r.exprs.emplace_back(std::in_place_type<Masquerade>);
  r.comment = kMasqueradeComment;
  return r;
}

Rule marked_masquerade_rule() {
  Rule r;
  r.exprs = match_mark_bits(kMasqueradeMark);
  // Clear the bit so a packet that is masqueraded and then re-enters (e.g. routed back in
  // through another namespace on this host) is not marked twice.
  std::vector<Expr> clear = xor_mark_bits(kMasqueradeMark);
  r.exprs.insert(r.exprs.end(), clear.begin(), clear.end());
  r.exprs.push_back(Masquerade{.fully_random = true});
  r.comment = kMarkedMasqueradeComment;
  return r;
}

Batch masquerade_batch(const Ipv4Prefix& cluster) {
  Batch b(kSkiffFamily, kSkiffTable);
  b.add_table();
  // Re-creating the base chain inside the transaction repairs what an update cannot: the
  // kernel refuses to change an existing chain's type, hook or priority (EOPNOTSUPP/EEXIST).
  // Packets see the old chain or the new one, never neither; conntrack keeps existing NAT.
  b.add_chain(Chain{kPostroutingChain, std::nullopt});
  b.delete_chain(kPostroutingChain);
  b.add_chain(Chain{kPostroutingChain,
                    BaseChain{"nat", Hook::kPostrouting, kPrioritySrcNat, VerdictCode::kAccept}});
  b.add_rule(kPostroutingChain, marked_masquerade_rule());
  b.add_rule(kPostroutingChain, masquerade_rule(cluster));
  return b;
}

Status sync_masquerade(NftTables& tables, std::string_view cluster_cidr) {
  Result<Ipv4Prefix> cluster = parse_ipv4_prefix(cluster_cidr);
  if (!cluster) return cluster.status().with_context("sync nftables masquerade");
  return tables.commit(masquerade_batch(cluster.value()))
      .with_context("sync nftables masquerade for " + cluster.value().to_string());
}

Status delete_skiff_table(NftTables& tables) {
  Batch b(kSkiffFamily, kSkiffTable);
  b.delete_table();
  Status s = tables.commit(b);
  if (!s && s.os_errno() == ENOENT) return Status::ok();  // already gone
  return s;
}

namespace {

Result<std::unique_ptr<NftnlTables>> open_tables(const char* what) {
  auto t = NftnlTables::open();
  if (!t) return t.status().with_context(what);
  return t;
}

}  // namespace

Status sync_masquerade(std::string_view cluster_cidr) {
  // Parse first so bad input is reported as such even where netlink is unavailable.
  if (Result<Ipv4Prefix> p = parse_ipv4_prefix(cluster_cidr); !p) {
    return p.status().with_context("sync nftables masquerade");
  }
  auto t = open_tables("sync nftables masquerade");
  if (!t) return t.status();
  return sync_masquerade(*t.value(), cluster_cidr);
}

Status delete_skiff_table() {
  auto t = open_tables("delete nftables table ip skiff");
  if (!t) return t.status();
  return delete_skiff_table(*t.value());
}

}  // namespace skiff::nft
