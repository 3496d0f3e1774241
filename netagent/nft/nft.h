// skiff's nftables access: a Batch of operations on ONE table, committed to the kernel as one
// netlink transaction through libnftnl + libmnl (never by running the `nft` binary).
//
// The model is kube-proxy's nftables proxier: skiff owns a single table; its chains are static,
// the data that changes lives in sets and maps (issue 6), and every sync builds one Batch and
// commits it, so the kernel applies all of it or none of it. A Batch is bound to its table at
// construction, so code holding one cannot touch another table by mistake.
//
// Batch is a plain value (operations described as data, encoded only at commit time), so rule
// construction is unit-testable without root. NftTables is the kernel behind an interface;
// NftnlTables is the netlink implementation, a fake can record batches instead.
//
// Thread-safety: Batch is a value type; an NftnlTables must be used by one thread at a time.
// Its socket lives in the network namespace of the thread that opened it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/status.h"

struct mnl_socket;

namespace skiff::nft {

// Address families, NFPROTO_* values.
enum class Family : uint8_t { kInet = 1, kIp = 2, kIp6 = 10 };
// "ip", "ip6", "inet": how nft spells the family.
const char* family_name(Family f);

// An IPv4 prefix such as 10.244.0.0/16. network is in host byte order with the host bits clear.
struct Ipv4Prefix {
  uint32_t network = 0;
  int length = 0;  // 0..32

  uint32_t mask() const;  // host byte order: length leading one bits
  std::string to_string() const;
  bool contains(uint32_t addr) const { return (addr & mask()) == network; }
};

// Parses "a.b.c.d/len" (len 0..32). Host bits set ("10.244.1.0/16") are an error that names the
// network the caller probably meant, rather than a silent truncation.
[[nodiscard]] Result<Ipv4Prefix> parse_ipv4_prefix(std::string_view text);

// ---- Expressions: one nftables VM instruction each (see `nft --debug=netlink`). ----

using Bytes = std::vector<uint8_t>;

// The 16-byte data registers 1..4 and the verdict register (NFT_REG_*).
enum class Reg : uint32_t { kVerdict = 0, k1 = 1, k2 = 2, k3 = 3, k4 = 4 };
// Where a payload load starts (NFT_PAYLOAD_*_HEADER).
enum class PayloadBase : uint32_t { kLinkLayer = 0, kNetwork = 1, kTransport = 2 };
// NFT_CMP_*.
enum class CmpOp : uint32_t { kEq = 0, kNeq = 1, kLt = 2, kLte = 3, kGt = 4, kGte = 5 };
// The meta keys skiff uses (NFT_META_*); issue 6 needs l4proto for its service map key.
enum class MetaKey : uint32_t {
  kMark = 3,
  kIifName = 6,
  kOifName = 7,
  kNfProto = 15,
  kL4Proto = 16
};
// Verdicts (NF_ACCEPT/NF_DROP and NFT_*); kJump/kGoto need a chain.
enum class VerdictCode : int32_t {
  kDrop = 0,
  kAccept = 1,
  kContinue = -1,
  kReturn = -5,
  kJump = -3,
  kGoto = -4
};

// dreg = `len` bytes of the packet at base + offset.
struct PayloadLoad {
  PayloadBase base = PayloadBase::kNetwork;
  uint32_t offset = 0;
  uint32_t len = 0;
  Reg dreg = Reg::k1;
};
// dreg = (sreg & mask) ^ xor_bits; mask and xor_bits have the same length (1..16 bytes).
struct Bitwise {
  Reg sreg = Reg::k1;
  Reg dreg = Reg::k1;
  Bytes mask;
  Bytes xor_bits;
};
// Ends the rule unless `sreg op data` holds (data is 1..16 bytes, in packet byte order).
struct Cmp {
  CmpOp op = CmpOp::kEq;
  Reg sreg = Reg::k1;
  Bytes data;
};
struct MetaLoad {
  MetaKey key = MetaKey::kL4Proto;
  Reg dreg = Reg::k1;
};
// Source NAT to the address of the outgoing interface (only valid in a nat postrouting chain).
struct Masquerade {};
struct Counter {};
// Sets the verdict register: accept, drop, return, or jump/goto `chain`.
struct Verdict {
  VerdictCode code = VerdictCode::kAccept;
  std::string chain;
};

using Expr = std::variant<PayloadLoad, Bitwise, Cmp, MetaLoad, Masquerade, Counter, Verdict>;

// One instruction in nft's debug notation, e.g. "[ cmp neq reg 1 0x0000f40a ]"; for tests and
// error messages.
std::string to_string(const Expr& e);

enum class IpField { kSaddr, kDaddr };
// `ip saddr|daddr [!=] <prefix>` as expressions (payload load, a mask unless /32, cmp) in reg 1.
std::vector<Expr> match_ipv4(IpField field, const Ipv4Prefix& prefix, bool negate = false);

struct Rule {
  std::vector<Expr> exprs;
  std::string comment;  // shown by `nft list` (rule user data); at most 127 bytes
};

// ---- Chains ----

enum class Hook : uint32_t {  // NF_INET_*
  kPrerouting = 0,
  kInput = 1,
  kForward = 2,
  kOutput = 3,
  kPostrouting = 4
};
// Priorities nft names (srcnat = 100 etc.).
inline constexpr int32_t kPriorityDstNat = -100;
inline constexpr int32_t kPriorityFilter = 0;
inline constexpr int32_t kPrioritySrcNat = 100;

// What makes a chain a base chain: the kernel calls it from `hook` at `priority`.
struct BaseChain {
  std::string type;  // "filter", "nat" or "route"
  Hook hook = Hook::kPostrouting;
  int32_t priority = 0;
  VerdictCode policy = VerdictCode::kAccept;
};

struct Chain {
  std::string name;
  std::optional<BaseChain> base;  // absent: a regular chain, reached by jump/goto
};

// ---- Batch ----

// An ordered list of operations on one table. Nothing happens until NftTables::commit.
class Batch {
 public:
  enum class Kind { kAddTable, kDeleteTable, kAddChain, kFlushChain, kDeleteChain, kAddRule };
  struct Op {
    Kind kind;
    Chain chain;  // chain.name for the chain operations and add_rule
    Rule rule;    // kAddRule only
  };

  Batch(Family family, std::string table);

  // Creates the table if absent (an existing one is kept as is, with its contents).
  Batch& add_table();
  // Deletes the table and everything in it; fails with ENOENT if absent.
  Batch& delete_table();
  // Creates the chain if absent. For an existing chain, a base chain's policy is updated; a
  // different type, hook or priority is an error (EOPNOTSUPP or EEXIST), so delete it first.
  Batch& add_chain(Chain chain);
  // Deletes every rule in the chain.
  Batch& flush_chain(std::string chain);
  // Deletes the chain and its rules; fails with ENOENT if absent, EBUSY if a rule jumps to it.
  Batch& delete_chain(std::string chain);
  // Appends the rule to the end of the chain.
  Batch& add_rule(std::string chain, Rule rule);

  Family family() const { return family_; }
  const std::string& table() const { return table_; }
  const std::vector<Op>& ops() const { return ops_; }
  bool empty() const { return ops_.empty(); }
  // "add rule ip skiff postrouting": what op i does, to what (used in error messages).
  std::string describe(size_t i) const;

  // The netlink messages: NFNL_MSG_BATCH_BEGIN (seq first_seq), op i (seq first_seq + 1 + i,
  // each with NLM_F_ACK), NFNL_MSG_BATCH_END. Fails (kInvalid) on an operation the kernel would
  // refuse anyway: empty or over-long names, bad register data, a jump without a chain.
  [[nodiscard]] Result<std::vector<uint8_t>> encode(uint32_t first_seq) const;

 private:
  Family family_;
  std::string table_;
  std::vector<Op> ops_;
};

// The error for a batch the kernel refused: "<what op i did>: <strerror> [(<extack>)]", with
// the kernel's errno kept in Status::os_errno(). ENOENT maps to kNotFound, EEXIST to
// kAlreadyExists, EPERM to kForbidden, anything else to kIo.
Status kernel_error(const std::string& op_description, int err, const std::string& extack);

// The kernel's text (NLMSGERR_ATTR_MSG) in one received netlink ack of `len` bytes, or "" when
// it has none. Public for tests.
std::string ack_extack_text(const void* msg, size_t len);

// ---- The kernel ----

class NftTables {
 public:
  virtual ~NftTables() = default;
  // Applies the batch as one transaction and waits for the kernel's answer to every operation.
  // On failure the kernel applied none of it; the Status names the first operation refused
  // (see kernel_error), with os_errno() set. An empty batch is a no-op.
  [[nodiscard]] virtual Status commit(const Batch& batch) = 0;
};

// NftTables over a NETLINK_NETFILTER socket.
class NftnlTables : public NftTables {
 public:
  // Opens the socket in the calling thread's network namespace.
  [[nodiscard]] static Result<std::unique_ptr<NftnlTables>> open();
  ~NftnlTables() override;
  NftnlTables(const NftnlTables&) = delete;
  NftnlTables& operator=(const NftnlTables&) = delete;

  [[nodiscard]] Status commit(const Batch& batch) override;

 private:
  NftnlTables(mnl_socket* nl, uint32_t portid, uint32_t seq);
  Status ensure_buffers(size_t batch_bytes, size_t acks);
  Status read_acks(const Batch& batch, uint32_t first_seq);

  mnl_socket* nl_;
  uint32_t portid_;
  uint32_t next_seq_;
  int sndbuf_ = 0;
  int rcvbuf_ = 0;
};

}  // namespace skiff::nft
