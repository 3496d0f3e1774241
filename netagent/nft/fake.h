// FakeNftTables: an in-memory model of ONE nftables table that applies a Batch with the
// kernel's semantics, records every committed batch, and prints the table the way
// `nft list table ip skiff` does (for the subset of nftables this library encodes). Tests of
// the service proxy render the desired ruleset on it and compare text; the kernel tests compare
// the same text with the kernel's read-back (after normalize_listing on both sides).
//
// Semantics modelled (the kernel's, for what skiff sends):
//  - a batch applies all or nothing: the first refused op's error (kernel_error text and errno,
//    "<describe(i)>: <strerror>") is returned and the table is left as before;
//  - add table: kept if present; delete table: ENOENT if absent;
//  - add chain: created if absent; an existing base chain's policy is updated; a different
//    type/hook/priority, or base vs regular, is EEXIST; flush chain: ENOENT if absent;
//  - delete chain: ENOENT if absent; EBUSY while a rule (jump/goto) or a map element (verdict)
//    refers to it (rules of the chain itself are deleted with it, as the kernel does);
//  - add rule: ENOENT for a missing chain, jump/goto target, or set of a Lookup/Dynset;
//    EINVAL when a Lookup's key does not match the set or a vmap lookup uses a non-verdict map;
//    EOPNOTSUPP for a Dynset on a set without `dynamic`;
//  - add set: created if absent, kept if the same definition, EEXIST if different;
//    delete set: ENOENT / EBUSY while a rule refers to it; flush set: ENOENT if absent;
//  - add elements: ENOENT (set, or verdict chain), EINVAL (key/data do not fit the set),
//    same key + same data kept, same key + different data EEXIST;
//  - delete elements: ENOENT if one is absent.
//  - table validation as the kernel does it at commit: an expression reachable from a base
//    chain it cannot run in (dnat outside nat prerouting/output, snat outside nat
//    postrouting/input, masquerade outside nat postrouting, reject outside prerouting/input/
//    forward/output) is EOPNOTSUPP, a jump cycle EMLINK — through jumps, gotos, inline vmaps
//    and verdict-map elements — blamed on the first rule/element op that breaks it.
//  - Not modelled: element expiry, the jump depth limit, counters (always print 0).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "netagent/nft/nft.h"

namespace skiff::nft {

class FakeNftTables : public NftTables {
 public:
  // Models table `<family> <table>`; batches for another table are refused (kInvalid).
  explicit FakeNftTables(Family family = Family::kIp, std::string table = "skiff");

  // Applies the batch (all or nothing). An empty batch is a no-op and is not recorded.
  [[nodiscard]] Status commit(const Batch& batch) override;

  // Every batch that was applied successfully, in order.
  const std::vector<Batch>& committed() const { return committed_; }
  // The next commit fails with this status without applying anything (tests of error paths).
  void fail_next_commit(Status s) { fail_next_ = std::move(s); }

  bool table_exists() const;
  bool has_chain(const std::string& name) const;
  bool has_set(const std::string& name) const;
  // Set names in creation order; the rules of a chain; the elements of a set in insertion
  // order (both empty when absent).
  std::vector<std::string> sets() const;
  std::vector<Rule> rules(const std::string& chain) const;
  std::vector<Element> elements(const std::string& set) const;

  // The table in `nft list table <family> <table>` syntax ("" when it does not exist): sets
  // and maps first, then chains, each in creation order, with tabs as nft indents.
  std::string list() const;

  struct State;

 private:
  Family family_;
  std::string table_;
  std::shared_ptr<State> state_;  // replaced as a whole by a successful commit
  std::vector<Batch> committed_;
  Status fail_next_;
};

// One rule in nft syntax (`ip saddr 10.244.1.5 jump mark-for-masquerade`), as `nft list` prints
// it: dependencies nft elides (`meta l4proto tcp` before `reject with tcp reset`) are elided,
// the comment comes last. Expression sequences this library does not generate print as
// "<unknown: [ ... ]>".
std::string rule_to_nft(const Rule& rule);
// One set/map definition in `nft list` syntax (a `set x { ... }` / `map x { ... }` block,
// with its elements), indented by `indent` tabs.
std::string set_to_nft(const Set& set, const std::vector<Element>& elements, int indent = 1);

// The batch as an `nft -f` script that makes the same changes (the bench feeds it to nft):
// `add table ip skiff`, `add chain ip skiff x { type nat hook ... }`, `flush chain ...`,
// `add rule ip skiff x <rule>`, `add map ip skiff m { type ... ; }`,
// `add element ip skiff m { k : v, ... }`, `delete element ...`, `delete set/map/chain ...`.
// Sets defined in the batch are used for element syntax; for add/delete_elements on a set not
// defined in this batch, pass its definition in `known_sets` (else keys print as hex).
std::string batch_to_nft_script(const Batch& batch, const std::vector<Set>& known_sets = {});

// Normalises `nft list` text for comparison: whitespace runs become one space, the elements of
// each `elements = { ... }` are sorted (the kernel lists hash sets in hash order), counters'
// values and elements' `expires ...` are dropped.
std::string normalize_listing(std::string_view text);

}  // namespace skiff::nft
