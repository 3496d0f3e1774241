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

// nft's datatypes (TYPE_* ids, which `nft list` uses to print keys and data). Sizes in a key:
// ipv4_addr 4, inet_proto 1, inet_service 2, mark 4, integer 4 (each padded to 4 bytes in a
// concatenation). kVerdict only as map data.
enum class SetType : uint32_t {
  kVerdict = 1,
  kInteger = 4,
  kIpv4Addr = 7,
  kInetProto = 12,
  kInetService = 13,
  kMark = 19
};
// "ipv4_addr", "inet_proto", ...
const char* set_type_name(SetType t);
// Bytes of one value of the type (verdict: 0, it is not a register value).
uint32_t set_type_len(SetType t);

// ---- Expressions: one nftables VM instruction each (see `nft --debug=netlink`). ----

using Bytes = std::vector<uint8_t>;

// The 16-byte data registers 1..4, the verdict register (NFT_REG_*), and the 4-byte registers
// NFT_REG32_00..15 (8..23; reg32(0) overlaps k1). Concatenations load each part into consecutive
// 4-byte registers: `ip daddr . meta l4proto . th dport` is k1 (= reg32(0)), reg32(1), reg32(2).
enum class Reg : uint32_t { kVerdict = 0, k1 = 1, k2 = 2, k3 = 3, k4 = 4 };
constexpr Reg reg32(int i) { return static_cast<Reg>(8 + i); }
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
// Conntrack keys (NFT_CT_*).
enum class CtKey : uint32_t { kState = 0, kDirection = 1, kStatus = 2, kMark = 3 };
// ct state bits (NF_CT_STATE_*_BIT as nft uses them).
inline constexpr uint32_t kCtStateInvalid = 1;
inline constexpr uint32_t kCtStateEstablished = 2;
inline constexpr uint32_t kCtStateRelated = 4;
inline constexpr uint32_t kCtStateNew = 8;
inline constexpr uint32_t kCtStateUntracked = 64;
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
// fully_random: NF_NAT_RANGE_PROTO_RANDOM_FULLY (`masquerade fully-random`).
struct Masquerade {
  bool fully_random = false;
};
struct Counter {};
// Sets the verdict register: accept, drop, return, or jump/goto `chain`.
struct Verdict {
  VerdictCode code = VerdictCode::kAccept;
  std::string chain;
  bool operator==(const Verdict&) const = default;
};
// dreg = data (1..16 bytes, packet byte order; a mark is host byte order like the kernel's).
struct Immediate {
  Reg dreg = Reg::k1;
  Bytes data;
};
// Looks the key in sreg (as many registers as the set's key spans) up in the named set.
// Without dreg: a match (or, with invert, a non-match) continues the rule, else it ends.
// With dreg: a map; dreg = the element's data (Reg::kVerdict for a verdict map: `vmap @set`).
struct Lookup {
  std::string set;
  Reg sreg = Reg::k1;
  std::optional<Reg> dreg;
  bool invert = false;
};
// dreg = random number mod modulus, plus offset (`numgen random mod N`).
struct Numgen {
  uint32_t modulus = 1;
  uint32_t offset = 0;
  Reg dreg = Reg::k1;
};
// `<key> vmap { 0 : goto a, 1 : goto b }` with the key in sreg: an anonymous constant verdict
// map written inline in the rule. At commit the encoder creates it (NFT_SET_ANONYMOUS |
// NFT_SET_CONSTANT | NFT_SET_MAP, name "__map%d", a batch-unique set id) with its elements in
// the same batch just before the rule, as nft does; the kernel deletes it with the rule.
// key_type is one SetType; every key has set_type_len(key_type) bytes in that type's order
// (numgen's result is an integer, host byte order: u32_key(i)).
struct InlineVmap {
  Reg sreg = Reg::k1;
  SetType key_type = SetType::kInteger;
  std::vector<std::pair<Bytes, Verdict>> entries;
};
// NAT to the address in reg_addr and, optionally, the port in reg_proto (family ip).
enum class NatType : uint32_t { kSnat = 0, kDnat = 1 };
struct Nat {
  NatType type = NatType::kDnat;
  Reg reg_addr = Reg::k1;
  std::optional<Reg> reg_proto;  // absent: keep the port
  // The registers hold a map's data (`dnat ip to <key> map @m`): encoded as nft does, with the
  // same register as min and max and flags MAP_IPS|PROTO_SPECIFIED.
  bool from_map = false;
};
// NFT_REJECT_*: kIcmpUnreach with an ICMP code (3 = port unreachable: plain `reject`),
// kTcpRst (`reject with tcp reset`; only for TCP: put match_l4proto(kTcp) first), kIcmpxUnreach
// (inet/bridge/netdev only; the kernel refuses it in an ip table, so does validation).
enum class RejectType : uint32_t { kIcmpUnreach = 0, kTcpRst = 1, kIcmpxUnreach = 2 };
struct Reject {
  RejectType type = RejectType::kIcmpUnreach;
  uint8_t code = 3;  // ICMP_PORT_UNREACH
};
// dreg = a conntrack key (state: 4 bytes of kCtState* bits, host byte order).
struct CtLoad {
  CtKey key = CtKey::kState;
  Reg dreg = Reg::k1;
};
// fib lookup; skiff uses `fib daddr type` (flags kFibDaddr, result kFibAddrType) => dreg holds
// the RTN_* address type (host byte order u32; RTN_LOCAL = 2).
inline constexpr uint32_t kFibSaddr = 1, kFibDaddr = 2, kFibMark = 4, kFibIif = 8, kFibOif = 16;
enum class FibResult : uint32_t { kOif = 1, kOifName = 2, kAddrType = 3 };
struct Fib {
  uint32_t flags = kFibDaddr;
  FibResult result = FibResult::kAddrType;
  Reg dreg = Reg::k1;
};
// meta <key> set sreg (`meta mark set ...`).
struct MetaSet {
  MetaKey key = MetaKey::kMark;
  Reg sreg = Reg::k1;
};
// Adds/updates the key in sreg_key to a dynamic set from the packet path:
// `update @set { ip saddr }` (timeout_ms 0: the set's default timeout).
enum class DynsetOp : uint32_t { kAdd = 0, kUpdate = 1, kDelete = 2 };
struct Dynset {
  std::string set;
  DynsetOp op = DynsetOp::kUpdate;
  Reg sreg_key = Reg::k1;
  uint64_t timeout_ms = 0;
};

using Expr =
    std::variant<PayloadLoad, Bitwise, Cmp, MetaLoad, Masquerade, Counter, Verdict, Immediate,
                 Lookup, Numgen, InlineVmap, Nat, Reject, CtLoad, Fib, MetaSet, Dynset>;

// One instruction in nft's debug notation, e.g. "[ cmp neq reg 1 0x0000f40a ]"; for tests and
// error messages.
std::string to_string(const Expr& e);

enum class IpField { kSaddr, kDaddr };
// `ip saddr|daddr [!=] <prefix>` as expressions (payload load, a mask unless /32, cmp) in reg 1.
std::vector<Expr> match_ipv4(IpField field, const Ipv4Prefix& prefix, bool negate = false);

// IP protocol numbers for meta l4proto / inet_proto keys.
inline constexpr uint8_t kTcp = 6, kUdp = 17, kSctp = 132;

// Byte encodings of values in registers and set keys (packet byte order unless noted).
Bytes ipv4_bytes(uint32_t addr_host_order);  // 4 bytes, network order
Bytes port_bytes(uint16_t port);             // 2 bytes, network order (inet_service)
Bytes proto_bytes(uint8_t proto);            // 1 byte (inet_proto)
Bytes u32_key(uint32_t v);                   // 4 bytes, host order (integer/mark/numgen value)
// Parses a dotted quad ("10.96.0.1") to host byte order.
[[nodiscard]] Result<uint32_t> parse_ipv4(std::string_view text);

// Expression helpers (each is what nft generates for the quoted syntax; reg 1 unless noted).
// `ip saddr|daddr` loaded into `dreg`.
PayloadLoad load_ipv4(IpField field, Reg dreg = Reg::k1);
// `th dport` (2 bytes at transport header + 2) into dreg.
PayloadLoad load_th_dport(Reg dreg = Reg::k1);
// `meta l4proto tcp`.
std::vector<Expr> match_l4proto(uint8_t proto);
// `th dport 80`.
std::vector<Expr> match_th_dport(uint16_t port);
// `ct state new` / `ct state established,related` (any of the bits).
std::vector<Expr> match_ct_state(uint32_t bits);
// `ct status dnat`: the connection's destination was NATed (IPS_DST_NAT), e.g. by a Service's
// DNAT; matching it in postrouting restricts a rule to Service traffic.
inline constexpr uint32_t kCtStatusDnat = 0x20;
std::vector<Expr> match_ct_status(uint32_t bits);
// `fib daddr type local`.
std::vector<Expr> match_fib_daddr_local();
// `meta mark & bits == bits`.
std::vector<Expr> match_mark_bits(uint32_t bits);
// `meta mark set meta mark | bits`.
std::vector<Expr> set_mark_bits(uint32_t bits);
// `meta mark set meta mark ^ bits` (clears bits already known to be set).
std::vector<Expr> xor_mark_bits(uint32_t bits);
// `ip daddr . meta l4proto . th dport vmap @set` (key ipv4_addr . inet_proto . inet_service).
std::vector<Expr> vmap_daddr_proto_port(std::string set);
// `meta l4proto . th dport vmap @set` (key inet_proto . inet_service).
std::vector<Expr> vmap_proto_port(std::string set);
// `ip saddr @set` (saddr in the set: continue, else the rule ends).
std::vector<Expr> match_saddr_in_set(std::string set);
// `update @set { ip saddr }` (timeout_ms 0: the set's default).
std::vector<Expr> update_set_saddr(std::string set, uint64_t timeout_ms = 0);
// `numgen random mod N vmap { 0 : goto chains[0], 1 : goto chains[1], ... }` (N = size).
std::vector<Expr> numgen_vmap_goto(const std::vector<std::string>& chains);
// `[meta l4proto <proto>] dnat to <addr>[:<port>]` (port 0: keep the destination port; the
// l4proto match is emitted when proto != 0 and is required by the kernel for a port).
std::vector<Expr> dnat_to(uint32_t addr_host_order, uint16_t port, uint8_t proto);
// `ip daddr . meta l4proto . th dport @set` / `meta l4proto . th dport @set` /
// `ip saddr . ip daddr @set` (membership; the rule ends when absent).
std::vector<Expr> match_daddr_proto_port_in(std::string set);
std::vector<Expr> match_proto_port_in(std::string set);
std::vector<Expr> match_saddr_daddr_in(std::string set);
// `fib saddr type local` / `fib saddr type != local`: the packet comes from this node.
std::vector<Expr> match_fib_saddr_local(bool negate = false);
// `meta l4proto <proto> dnat ip to [ip daddr .] meta l4proto . th dport . numgen random mod N
// [offset O] map @map`: DNAT to the (address . port) data of the map element keyed by the
// packet's (service address,) protocol, port and a random slot offset..offset+N-1 (the map is
// typeof [ip daddr .] meta l4proto . th dport . numgen : ip daddr . th dport).
std::vector<Expr> dnat_numgen_map(std::string map, bool with_daddr, uint8_t proto, uint32_t modulus,
                                  uint32_t offset);
// `reject` (ICMP port unreachable) / `reject with tcp reset` (adds `meta l4proto tcp` first).
std::vector<Expr> reject_icmp_port_unreachable();
std::vector<Expr> reject_tcp_reset();

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

// ---- Sets and maps ----

// An expression named in a `typeof` set/map declaration (nft stores them in the set's user data
// so `nft list` prints keys and data by them). numgen's key type is an integer, which a plain
// `type` declaration cannot name: maps keyed by a random slot need typeof.
enum class TypeofExpr : uint8_t { kIpSaddr, kIpDaddr, kMetaL4proto, kThDport, kNumgen };
// "ip daddr", "meta l4proto", "th dport", "numgen random mod 1" (the template nft prints).
const char* typeof_text(TypeofExpr e);
// The datatype of the expression's value (kIpv4Addr, kInetProto, kInetService, kInteger).
SetType typeof_type(TypeofExpr e);

// A named set or map in the table (`nft add set|map`).
struct Set {
  std::string name;
  std::vector<SetType> key;     // one type or a concatenation (padded parts <= 16 bytes)
  std::optional<SetType> data;  // present: a map (kVerdict: a verdict map)
  // Non-empty: a map whose data is this concatenation (e.g. ipv4_addr . inet_service, what
  // `dnat ip to ... map` reads); `data` stays unset. Element data = concat_bytes of the parts.
  std::vector<SetType> data_concat;
  // Non-empty: declared with `typeof` (each concatenation of 2+ parts; key and, for a map with
  // data_concat, data). The types must agree with key / data_concat (typeof_map fills all).
  std::vector<TypeofExpr> typeof_key;
  std::vector<TypeofExpr> typeof_data;
  bool interval = false;    // NFT_SET_INTERVAL: refused for now (no range elements yet)
  bool timeout = false;     // NFT_SET_TIMEOUT: elements may expire
  bool dynamic = false;     // NFT_SET_EVAL: updated from the packet path (dynset)
  bool constant = false;    // NFT_SET_CONSTANT
  uint64_t timeout_ms = 0;  // default element timeout (needs timeout = true); 0: none
  uint32_t size = 0;        // max elements; 0: unbounded (nft lists `size N` when set)
  std::string comment;      // at most 127 bytes

  bool is_map() const { return data.has_value() || !data_concat.empty(); }
};

// `map <name> { typeof <key exprs> : <data exprs> }` (data empty: a set), types filled in.
Set typeof_map(std::string name, std::vector<TypeofExpr> key, std::vector<TypeofExpr> data);
// Parts padded to 4 bytes each, as the kernel stores a concatenation (concatenated map data).
Bytes concat_bytes(const std::vector<Bytes>& parts);

// One element: its key (one Bytes per key part, in the byte order of set_type_len's types),
// and for a map its data: a Verdict for a verdict map, Bytes for a value map.
struct Element {
  std::vector<Bytes> key;
  std::variant<std::monostate, Verdict, Bytes> data;
  uint64_t timeout_ms = 0;  // per-element timeout (set needs timeout = true); 0: the default
  std::string comment;      // at most 127 bytes
};
// Key of `ipv4_addr . inet_proto . inet_service` (service-ips).
std::vector<Bytes> service_key(uint32_t addr_host_order, uint8_t proto, uint16_t port);
// Key of `inet_proto . inet_service` (service-nodeports).
std::vector<Bytes> proto_port_key(uint8_t proto, uint16_t port);

// ---- Batch ----

// An ordered list of operations on one table. Nothing happens until NftTables::commit.
class Batch {
 public:
  enum class Kind {
    kAddTable,
    kDeleteTable,
    kAddChain,
    kFlushChain,
    kDeleteChain,
    kAddRule,
    kAddSet,
    kDeleteSet,
    kFlushSet,
    kAddElements,
    kDeleteElements
  };
  struct Op {
    Kind kind;
    Chain chain;  // chain.name for the chain operations and add_rule
    Rule rule;    // kAddRule only
    Set set;      // set.name for the set operations; the whole definition for kAddSet
    std::vector<Element> elements;  // kAddElements / kDeleteElements
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
  // Appends the rule to the end of the chain. Jump/goto targets, sets named by Lookup/Dynset
  // must exist (ENOENT), possibly created earlier in the same batch.
  Batch& add_rule(std::string chain, Rule rule);

  // Creates the set/map if absent; an existing one with the same definition is kept with its
  // elements (a different key/data type or flags is refused by the kernel).
  Batch& add_set(Set set);
  // Deletes the set and its elements: ENOENT if absent, EBUSY while a rule refers to it.
  Batch& delete_set(std::string set);
  // Deletes every element of the set.
  Batch& flush_set(std::string set);
  // Adds elements (the set must exist). An element whose key is present with the same data is
  // kept (no error); with different data the kernel refuses (EEXIST): to change an element's
  // verdict or value, delete_elements then add_elements in the same batch. A verdict that
  // jumps to a missing chain is ENOENT. Encoded in as many messages as the netlink attribute
  // limit needs (one op, any number of elements).
  Batch& add_elements(std::string set, std::vector<Element> elements);
  // Deletes elements by key (data is ignored): ENOENT if one is absent.
  Batch& delete_elements(std::string set, std::vector<Element> elements);

  Family family() const { return family_; }
  const std::string& table() const { return table_; }
  const std::vector<Op>& ops() const { return ops_; }
  bool empty() const { return ops_.empty(); }
  // "add rule ip skiff postrouting": what op i does, to what (used in error messages).
  std::string describe(size_t i) const;

  // The netlink messages: NFNL_MSG_BATCH_BEGIN (seq first_seq), then each op's messages with
  // consecutive sequence numbers (each with NLM_F_ACK; usually one per op, several for a large
  // add/delete_elements and three for a rule with an InlineVmap: new set, its elements, the
  // rule), NFNL_MSG_BATCH_END. op_of_message (if given) receives, for each message between
  // BEGIN and END, the index of the op it belongs to. Fails (kInvalid) on an operation the
  // kernel would refuse anyway: empty or over-long names, bad register data, a jump without a
  // chain, element keys that do not fit the set's key (when the set is defined in this batch).
  [[nodiscard]] Result<std::vector<uint8_t>> encode(
      uint32_t first_seq, std::vector<size_t>* op_of_message = nullptr) const;
  // Only the checks encode() makes before encoding (what the fake uses).
  [[nodiscard]] Status validate() const;

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
  Status read_acks(const Batch& batch, uint32_t first_seq, const std::vector<size_t>& op_of_msg);

  mnl_socket* nl_;
  uint32_t portid_;
  uint32_t next_seq_;
  int sndbuf_ = 0;
  int rcvbuf_ = 0;
};

}  // namespace skiff::nft
