#include "netagent/nft/nft.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>

namespace skiff::nft {

// The header's enums mirror kernel constants so that it need not include kernel headers.
static_assert(static_cast<uint32_t>(Family::kIp) == NFPROTO_IPV4);
static_assert(static_cast<uint32_t>(Family::kIp6) == NFPROTO_IPV6);
static_assert(static_cast<uint32_t>(Family::kInet) == NFPROTO_INET);
static_assert(static_cast<uint32_t>(Reg::kVerdict) == NFT_REG_VERDICT);
static_assert(static_cast<uint32_t>(Reg::k1) == NFT_REG_1);
static_assert(static_cast<uint32_t>(Reg::k4) == NFT_REG_4);
static_assert(static_cast<uint32_t>(PayloadBase::kNetwork) == NFT_PAYLOAD_NETWORK_HEADER);
static_assert(static_cast<uint32_t>(PayloadBase::kTransport) == NFT_PAYLOAD_TRANSPORT_HEADER);
static_assert(static_cast<uint32_t>(CmpOp::kNeq) == NFT_CMP_NEQ);
static_assert(static_cast<uint32_t>(CmpOp::kGte) == NFT_CMP_GTE);
static_assert(static_cast<uint32_t>(MetaKey::kMark) == NFT_META_MARK);
static_assert(static_cast<uint32_t>(MetaKey::kIifName) == NFT_META_IIFNAME);
static_assert(static_cast<uint32_t>(MetaKey::kOifName) == NFT_META_OIFNAME);
static_assert(static_cast<uint32_t>(MetaKey::kNfProto) == NFT_META_NFPROTO);
static_assert(static_cast<uint32_t>(MetaKey::kL4Proto) == NFT_META_L4PROTO);
static_assert(static_cast<int32_t>(VerdictCode::kDrop) == NF_DROP);
static_assert(static_cast<int32_t>(VerdictCode::kAccept) == NF_ACCEPT);
static_assert(static_cast<int32_t>(VerdictCode::kJump) == NFT_JUMP);
static_assert(static_cast<int32_t>(VerdictCode::kGoto) == NFT_GOTO);
static_assert(static_cast<int32_t>(VerdictCode::kReturn) == NFT_RETURN);
static_assert(static_cast<int32_t>(VerdictCode::kContinue) == NFT_CONTINUE);
static_assert(static_cast<uint32_t>(Hook::kPostrouting) == NF_INET_POST_ROUTING);
static_assert(static_cast<uint32_t>(reg32(0)) == NFT_REG32_00);
static_assert(static_cast<uint32_t>(reg32(15)) == NFT_REG32_15);
static_assert(static_cast<uint32_t>(CtKey::kState) == NFT_CT_STATE);
static_assert(static_cast<uint32_t>(CtKey::kMark) == NFT_CT_MARK);
static_assert(static_cast<uint32_t>(NatType::kDnat) == NFT_NAT_DNAT);
static_assert(static_cast<uint32_t>(RejectType::kTcpRst) == NFT_REJECT_TCP_RST);
static_assert(static_cast<uint32_t>(RejectType::kIcmpxUnreach) == NFT_REJECT_ICMPX_UNREACH);
static_assert(static_cast<uint32_t>(FibResult::kAddrType) == NFT_FIB_RESULT_ADDRTYPE);
static_assert(kFibDaddr == NFTA_FIB_F_DADDR && kFibOif == NFTA_FIB_F_OIF);
static_assert(static_cast<uint32_t>(DynsetOp::kUpdate) == NFT_DYNSET_OP_UPDATE);

namespace {

// Upper bound on one encoded message. mnl_attr_put does not check bounds, so every message is
// built into at least this much free space; validate() keeps messages well below it (nested
// attributes have 16-bit lengths anyway, so no valid message exceeds 64 KiB).
constexpr size_t kMaxMessage = 128 * 1024;
constexpr size_t kMaxExprsPerRule = 128;
constexpr size_t kMaxNameLen = NFT_NAME_MAXLEN - 1;
constexpr size_t kMaxComment = NFTNL_UDATA_COMMENT_MAXLEN - 1;

std::string hex(const Bytes& b) {
  std::string s = "0x";
  char buf[3];
  for (uint8_t c : b) {
    std::snprintf(buf, sizeof buf, "%02x", c);
    s += buf;
  }
  return s;
}

const char* base_name(PayloadBase b) {
  switch (b) {
    case PayloadBase::kLinkLayer:
      return "link";
    case PayloadBase::kNetwork:
      return "network";
    case PayloadBase::kTransport:
      return "transport";
  }
  return "?";
}

const char* cmp_name(CmpOp op) {
  static const char* const kNames[] = {"eq", "neq", "lt", "lte", "gt", "gte"};
  auto i = static_cast<uint32_t>(op);
  return i < 6 ? kNames[i] : "?";
}

const char* verdict_name(VerdictCode v) {
  switch (v) {
    case VerdictCode::kDrop:
      return "drop";
    case VerdictCode::kAccept:
      return "accept";
    case VerdictCode::kContinue:
      return "continue";
    case VerdictCode::kReturn:
      return "return";
    case VerdictCode::kJump:
      return "jump";
    case VerdictCode::kGoto:
      return "goto";
  }
  return "?";
}

Bytes be32(uint32_t v) {
  return {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
          static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
}

// ---- validation ----

Status check_name(const char* what, const std::string& name) {
  if (name.empty()) return Status::invalid(std::string(what) + " name is empty");
  if (name.size() > kMaxNameLen) {
    return Status::invalid(std::string(what) + " name \"" + name.substr(0, 32) + "...\" is " +
                           std::to_string(name.size()) + " bytes; the kernel allows " +
                           std::to_string(kMaxNameLen));
  }
  return Status::ok();
}

bool data_reg(Reg r) {
  auto v = static_cast<uint32_t>(r);
  return (v >= NFT_REG_1 && v <= NFT_REG_4) || (v >= NFT_REG32_00 && v <= NFT_REG32_15);
}

Status check_data(const char* what, const Bytes& b) {
  if (b.empty() || b.size() > 16) {
    return Status::invalid(std::string(what) + " is " + std::to_string(b.size()) +
                           " bytes; a register holds 1..16");
  }
  return Status::ok();
}

Status check_verdict(const Verdict& v) {
  bool jumps = v.code == VerdictCode::kJump || v.code == VerdictCode::kGoto;
  if (jumps) return check_name("jump target chain", v.chain);
  if (!v.chain.empty()) return Status::invalid("a chain name on a verdict that does not jump");
  return Status::ok();
}

Status check_expr(const Expr& e, Family family) {
  if (const auto* p = std::get_if<PayloadLoad>(&e)) {
    if (!data_reg(p->dreg)) return Status::invalid("payload load into a non-data register");
    if (p->len == 0 || p->len > 16) return Status::invalid("payload load of 0 or >16 bytes");
  } else if (const auto* b = std::get_if<Bitwise>(&e)) {
    if (!data_reg(b->sreg) || !data_reg(b->dreg)) return Status::invalid("bitwise register");
    if (Status s = check_data("bitwise mask", b->mask); !s) return s;
    if (b->xor_bits.size() != b->mask.size()) {
      return Status::invalid("bitwise xor and mask differ in length");
    }
  } else if (const auto* c = std::get_if<Cmp>(&e)) {
    if (!data_reg(c->sreg)) return Status::invalid("cmp on a non-data register");
    if (Status s = check_data("cmp data", c->data); !s) return s;
  } else if (const auto* m = std::get_if<MetaLoad>(&e)) {
    if (!data_reg(m->dreg)) return Status::invalid("meta load into a non-data register");
  } else if (const auto* v = std::get_if<Verdict>(&e)) {
    return check_verdict(*v);
  } else if (const auto* i = std::get_if<Immediate>(&e)) {
    if (!data_reg(i->dreg)) return Status::invalid("immediate into a non-data register");
    return check_data("immediate data", i->data);
  } else if (const auto* l = std::get_if<Lookup>(&e)) {
    if (!data_reg(l->sreg)) return Status::invalid("lookup key from a non-data register");
    if (l->dreg && *l->dreg != Reg::kVerdict && !data_reg(*l->dreg)) {
      return Status::invalid("lookup result into a bad register");
    }
    if (l->dreg && l->invert) return Status::invalid("an inverted map lookup");
    return check_name("lookup set", l->set);
  } else if (const auto* n = std::get_if<Numgen>(&e)) {
    if (!data_reg(n->dreg)) return Status::invalid("numgen into a non-data register");
    if (n->modulus == 0) return Status::invalid("numgen modulus 0");
  } else if (const auto* iv = std::get_if<InlineVmap>(&e)) {
    if (!data_reg(iv->sreg)) return Status::invalid("vmap key from a non-data register");
    uint32_t len = set_type_len(iv->key_type);
    if (len == 0) return Status::invalid("inline vmap key type has no length");
    if (iv->entries.empty()) return Status::invalid("inline vmap without entries");
    for (const auto& [key, verdict] : iv->entries) {
      if (key.size() != len) {
        return Status::invalid("inline vmap key of " + std::to_string(key.size()) +
                               " bytes for type " + set_type_name(iv->key_type) + " (" +
                               std::to_string(len) + " bytes)");
      }
      if (Status s = check_verdict(verdict); !s) return s;
    }
  } else if (const auto* nat = std::get_if<Nat>(&e)) {
    if (family != Family::kIp) return Status::invalid("nat is only encoded for family ip");
    if (!data_reg(nat->reg_addr) || (nat->reg_proto && !data_reg(*nat->reg_proto))) {
      return Status::invalid("nat from a non-data register");
    }
  } else if (const auto* r = std::get_if<Reject>(&e)) {
    if (r->type == RejectType::kIcmpxUnreach && family == Family::kIp) {
      return Status::invalid("reject with icmpx is not supported in an ip table (use icmp)");
    }
  } else if (const auto* ct = std::get_if<CtLoad>(&e)) {
    if (!data_reg(ct->dreg)) return Status::invalid("ct load into a non-data register");
  } else if (const auto* f = std::get_if<Fib>(&e)) {
    if (!data_reg(f->dreg)) return Status::invalid("fib into a non-data register");
    if (!(f->flags & (kFibSaddr | kFibDaddr))) return Status::invalid("fib needs saddr or daddr");
  } else if (const auto* ms = std::get_if<MetaSet>(&e)) {
    if (!data_reg(ms->sreg)) return Status::invalid("meta set from a non-data register");
  } else if (const auto* d = std::get_if<Dynset>(&e)) {
    if (!data_reg(d->sreg_key)) return Status::invalid("dynset key from a non-data register");
    return check_name("dynset set", d->set);
  }
  return Status::ok();
}

uint32_t round4(uint32_t n) { return (n + 3) & ~3u; }

// The key length the kernel stores for a set: one type's length, or the 4-byte-aligned parts
// of a concatenation.
uint32_t key_len(const std::vector<SetType>& key) {
  if (key.size() == 1) return set_type_len(key[0]);
  uint32_t n = 0;
  for (SetType t : key) n += round4(set_type_len(t));
  return n;
}

// nft's concatenated type id: each part shifted in by TYPE_BITS (6).
uint32_t key_type_id(const std::vector<SetType>& key) {
  uint32_t id = 0;
  for (SetType t : key) id = (id << 6) | static_cast<uint32_t>(t);
  return id;
}

// NFTNL_UDATA_SET_*BYTEORDER as nft writes it: 0 (invalid) for concatenations, big endian (2)
// for addresses, protocols and ports, host (1) for marks and integers.
uint32_t byteorder(SetType t) {
  return t == SetType::kMark || t == SetType::kInteger ? 1 : t == SetType::kVerdict ? 0 : 2;
}

Status check_set(const Set& s) {
  if (Status st = check_name("set", s.name); !st) return st;
  if (s.key.empty()) return Status::invalid("set without a key type");
  for (SetType t : s.key) {
    if (set_type_len(t) == 0) return Status::invalid("set key part of type verdict");
  }
  if (s.key.size() > 1 && key_len(s.key) > 64) {
    return Status::invalid("concatenated key longer than 64 bytes");
  }
  if (s.interval) {
    // Interval elements need start/end pairs (NFT_SET_ELEM_INTERVAL_END), not encoded yet.
    return Status::invalid("interval sets are not supported by this library yet");
  }
  if (s.timeout_ms && !s.timeout) return Status::invalid("a default timeout without flag timeout");
  if (s.data && !s.data_concat.empty()) {
    return Status::invalid("map data is either one type or a concatenation, not both");
  }
  for (SetType t : s.data_concat) {
    if (set_type_len(t) == 0) return Status::invalid("map data part of type verdict");
  }
  if (s.data_concat.size() == 1) return Status::invalid("concatenated map data of one part");
  if (key_len(s.data_concat) > 16) return Status::invalid("map data longer than a register");
  auto typeof_fits = [](const std::vector<TypeofExpr>& exprs, const std::vector<SetType>& types) {
    if (exprs.size() != types.size()) return false;
    for (size_t i = 0; i < exprs.size(); ++i) {
      if (typeof_type(exprs[i]) != types[i]) return false;
    }
    return true;
  };
  if (!s.typeof_key.empty() || !s.typeof_data.empty()) {
    // nft's user data is only written for concatenations here (all skiff declares).
    if (s.typeof_key.size() < 2 || !typeof_fits(s.typeof_key, s.key)) {
      return Status::invalid("typeof key does not match the key types (a concatenation of 2+)");
    }
    if (s.data || (!s.data_concat.empty() && !typeof_fits(s.typeof_data, s.data_concat)) ||
        (s.data_concat.empty() && !s.typeof_data.empty())) {
      return Status::invalid("typeof data does not match the map's data");
    }
  }
  if (s.comment.size() > kMaxComment) {
    return Status::invalid("set comment longer than " + std::to_string(kMaxComment) + " bytes");
  }
  return Status::ok();
}

// Element checks that need no set definition, and, when `set` is known, the fit.
Status check_element(const Element& e, const Set* set) {
  if (e.key.empty()) return Status::invalid("element without a key");
  for (const Bytes& part : e.key) {
    if (part.empty() || part.size() > 16) return Status::invalid("element key part of bad size");
  }
  if (const auto* v = std::get_if<Verdict>(&e.data)) {
    if (Status s = check_verdict(*v); !s) return s;
  } else if (const auto* b = std::get_if<Bytes>(&e.data)) {
    if (b->empty() || b->size() > 64) return Status::invalid("element data of bad size");
  }
  if (e.comment.size() > kMaxComment) return Status::invalid("element comment too long");
  if (!set) return Status::ok();
  if (e.key.size() != set->key.size()) {
    return Status::invalid("element key has " + std::to_string(e.key.size()) +
                           " parts; the set's key has " + std::to_string(set->key.size()));
  }
  for (size_t i = 0; i < e.key.size(); ++i) {
    if (e.key[i].size() != set_type_len(set->key[i])) {
      return Status::invalid("element key part " + std::to_string(i) + " is " +
                             std::to_string(e.key[i].size()) + " bytes; " +
                             set_type_name(set->key[i]) + " is " +
                             std::to_string(set_type_len(set->key[i])));
    }
  }
  if (!set->data_concat.empty()) {
    const auto* b = std::get_if<Bytes>(&e.data);
    if (!b || b->size() != key_len(set->data_concat)) {
      return Status::invalid("element data must be " + std::to_string(key_len(set->data_concat)) +
                             " bytes (a concatenation)");
    }
  } else if (!set->data) {
    if (!std::holds_alternative<std::monostate>(e.data)) {
      return Status::invalid("element with data in a set (not a map)");
    }
  } else if (*set->data == SetType::kVerdict) {
    if (!std::holds_alternative<Verdict>(e.data)) {
      return Status::invalid("element of a verdict map without a verdict");
    }
  } else {
    const auto* b = std::get_if<Bytes>(&e.data);
    if (!b || b->size() != set_type_len(*set->data)) {
      return Status::invalid(std::string("element data must be ") +
                             std::to_string(set_type_len(*set->data)) + " bytes of " +
                             set_type_name(*set->data));
    }
  }
  if (e.timeout_ms && !set->timeout)
    return Status::invalid("element timeout in a set without timeout flag");
  return Status::ok();
}

Status check_op(const Batch::Op& op, Family family, const std::vector<const Set*>& defined) {
  switch (op.kind) {
    case Batch::Kind::kAddTable:
    case Batch::Kind::kDeleteTable:
      return Status::ok();
    case Batch::Kind::kAddChain:
      if (op.chain.base && op.chain.base->type.empty()) {
        return Status::invalid("base chain " + op.chain.name + " has no type");
      }
      [[fallthrough]];
    case Batch::Kind::kFlushChain:
    case Batch::Kind::kDeleteChain:
      return check_name("chain", op.chain.name);
    case Batch::Kind::kAddRule: {
      if (Status s = check_name("chain", op.chain.name); !s) return s;
      if (op.rule.exprs.empty()) return Status::invalid("rule without expressions");
      if (op.rule.exprs.size() > kMaxExprsPerRule) {
        return Status::invalid("rule with " + std::to_string(op.rule.exprs.size()) +
                               " expressions; at most " + std::to_string(kMaxExprsPerRule));
      }
      if (op.rule.comment.size() > kMaxComment) {
        return Status::invalid("rule comment longer than " + std::to_string(kMaxComment) +
                               " bytes");
      }
      for (const Expr& e : op.rule.exprs) {
        if (Status s = check_expr(e, family); !s) return s.with_context(to_string(e));
      }
      return Status::ok();
    }
    case Batch::Kind::kAddSet:
      return check_set(op.set);
    case Batch::Kind::kDeleteSet:
    case Batch::Kind::kFlushSet:
      return check_name("set", op.set.name);
    case Batch::Kind::kAddElements:
    case Batch::Kind::kDeleteElements: {
      if (Status s = check_name("set", op.set.name); !s) return s;
      const Set* set = nullptr;
      for (const Set* d : defined) {
        if (d->name == op.set.name) set = d;
      }
      for (size_t i = 0; i < op.elements.size(); ++i) {
        const Element& e = op.elements[i];
        // A delete names elements by key only.
        Element key_only;
        if (op.kind == Batch::Kind::kDeleteElements) key_only.key = e.key;
        const Element& checked = op.kind == Batch::Kind::kDeleteElements ? key_only : e;
        const Set* fit = set;
        Set keys_of_set;
        if (set && op.kind == Batch::Kind::kDeleteElements) {
          keys_of_set.key = set->key;  // data ignored on delete
          keys_of_set.data = std::nullopt;
          fit = &keys_of_set;
        }
        if (Status s = check_element(checked, fit); !s) {
          return s.with_context("element " + std::to_string(i));
        }
      }
      return Status::ok();
    }
  }
  return Status::internal("unknown batch operation");
}

// ---- encoding with libnftnl ----

struct TableDeleter {
  void operator()(nftnl_table* t) const { nftnl_table_free(t); }
};
struct ChainDeleter {
  void operator()(nftnl_chain* c) const { nftnl_chain_free(c); }
};
struct RuleDeleter {
  void operator()(nftnl_rule* r) const { nftnl_rule_free(r); }
};
struct ExprDeleter {
  void operator()(nftnl_expr* e) const { nftnl_expr_free(e); }
};
struct UdataDeleter {
  void operator()(nftnl_udata_buf* u) const { nftnl_udata_buf_free(u); }
};
struct SetDeleter {
  void operator()(nftnl_set* s) const { nftnl_set_free(s); }
};
struct ElemDeleter {
  void operator()(nftnl_set_elem* e) const { nftnl_set_elem_free(e); }
};
using ExprPtr = std::unique_ptr<nftnl_expr, ExprDeleter>;
using SetPtr = std::unique_ptr<nftnl_set, SetDeleter>;
using UdataPtr = std::unique_ptr<nftnl_udata_buf, UdataDeleter>;

constexpr char kAnonMapName[] = "__map%d";

// Returns null only when libnftnl is out of memory. anon_set_id: the set id of the anonymous
// map an InlineVmap refers to (created just before the rule).
ExprPtr build_expr(const Expr& e, uint32_t anon_set_id) {
  struct Visitor {
    uint32_t anon_set_id;
    ExprPtr alloc(const char* name) const { return ExprPtr(nftnl_expr_alloc(name)); }
    static uint32_t r(Reg reg) { return static_cast<uint32_t>(reg); }
    ExprPtr operator()(const PayloadLoad& p) const {
      ExprPtr x = alloc("payload");
      if (!x) return x;
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_PAYLOAD_DREG, r(p.dreg));
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_PAYLOAD_BASE, static_cast<uint32_t>(p.base));
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_PAYLOAD_OFFSET, p.offset);
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_PAYLOAD_LEN, p.len);
      return x;
    }
    ExprPtr operator()(const Bitwise& b) const {
      ExprPtr x = alloc("bitwise");
      if (!x) return x;
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_BITWISE_SREG, r(b.sreg));
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_BITWISE_DREG, r(b.dreg));
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_BITWISE_LEN, static_cast<uint32_t>(b.mask.size()));
      nftnl_expr_set(x.get(), NFTNL_EXPR_BITWISE_MASK, b.mask.data(),
                     static_cast<uint32_t>(b.mask.size()));
      nftnl_expr_set(x.get(), NFTNL_EXPR_BITWISE_XOR, b.xor_bits.data(),
                     static_cast<uint32_t>(b.xor_bits.size()));
      return x;
    }
    ExprPtr operator()(const Cmp& c) const {
      ExprPtr x = alloc("cmp");
      if (!x) return x;
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_CMP_SREG, r(c.sreg));
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_CMP_OP, static_cast<uint32_t>(c.op));
      nftnl_expr_set(x.get(), NFTNL_EXPR_CMP_DATA, c.data.data(),
                     static_cast<uint32_t>(c.data.size()));
      return x;
    }
    ExprPtr operator()(const MetaLoad& m) const {
      ExprPtr x = alloc("meta");
      if (!x) return x;
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_META_KEY, static_cast<uint32_t>(m.key));
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_META_DREG, r(m.dreg));
      return x;
    }
    ExprPtr operator()(const Masquerade& m) const {
      ExprPtr x = alloc("masq");
      if (x && m.fully_random) {
        nftnl_expr_set_u32(x.get(), NFTNL_EXPR_MASQ_FLAGS, NF_NAT_RANGE_PROTO_RANDOM_FULLY);
      }
      return x;
    }
    ExprPtr operator()(const Counter&) const { return alloc("counter"); }
    ExprPtr operator()(const Verdict& v) const {
      ExprPtr x = alloc("immediate");
      if (!x) return x;
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_IMM_VERDICT, static_cast<uint32_t>(v.code));
      if (!v.chain.empty()) nftnl_expr_set_str(x.get(), NFTNL_EXPR_IMM_CHAIN, v.chain.c_str());
      return x;
    }
    ExprPtr operator()(const Immediate& i) const {
      ExprPtr x = alloc("immediate");
      if (!x) return x;
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_IMM_DREG, r(i.dreg));
      nftnl_expr_set(x.get(), NFTNL_EXPR_IMM_DATA, i.data.data(),
                     static_cast<uint32_t>(i.data.size()));
      return x;
    }
    ExprPtr operator()(const Lookup& l) const {
      ExprPtr x = alloc("lookup");
      if (!x) return x;
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_LOOKUP_SREG, r(l.sreg));
      if (l.dreg) nftnl_expr_set_u32(x.get(), NFTNL_EXPR_LOOKUP_DREG, r(*l.dreg));
      nftnl_expr_set_str(x.get(), NFTNL_EXPR_LOOKUP_SET, l.set.c_str());
      if (l.invert) nftnl_expr_set_u32(x.get(), NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
      return x;
    }
    ExprPtr operator()(const Numgen& n) const {
      ExprPtr x = alloc("numgen");
      if (!x) return x;
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_NG_DREG, r(n.dreg));
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_NG_MODULUS, n.modulus);
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_NG_TYPE, NFT_NG_RANDOM);
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_NG_OFFSET, n.offset);
      return x;
    }
    ExprPtr operator()(const InlineVmap& v) const {
      ExprPtr x = alloc("lookup");
      if (!x) return x;
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_LOOKUP_SREG, r(v.sreg));
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_LOOKUP_DREG, NFT_REG_VERDICT);
      nftnl_expr_set_str(x.get(), NFTNL_EXPR_LOOKUP_SET, kAnonMapName);
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_LOOKUP_SET_ID, anon_set_id);
      return x;
    }
    ExprPtr operator()(const Nat& n) const {
      ExprPtr x = alloc("nat");
      if (!x) return x;
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_NAT_TYPE, static_cast<uint32_t>(n.type));
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_NAT_FAMILY, NFPROTO_IPV4);
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_NAT_REG_ADDR_MIN, r(n.reg_addr));
      uint32_t flags = 0;
      if (n.from_map) {
        nftnl_expr_set_u32(x.get(), NFTNL_EXPR_NAT_REG_ADDR_MAX, r(n.reg_addr));
        flags |= NF_NAT_RANGE_MAP_IPS;
      }
      if (n.reg_proto) {
        nftnl_expr_set_u32(x.get(), NFTNL_EXPR_NAT_REG_PROTO_MIN, r(*n.reg_proto));
        if (n.from_map) nftnl_expr_set_u32(x.get(), NFTNL_EXPR_NAT_REG_PROTO_MAX, r(*n.reg_proto));
        flags |= NF_NAT_RANGE_PROTO_SPECIFIED;
      }
      if (flags) nftnl_expr_set_u32(x.get(), NFTNL_EXPR_NAT_FLAGS, flags);
      return x;
    }
    ExprPtr operator()(const Reject& rj) const {
      ExprPtr x = alloc("reject");
      if (!x) return x;
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_REJECT_TYPE, static_cast<uint32_t>(rj.type));
      nftnl_expr_set_u8(x.get(), NFTNL_EXPR_REJECT_CODE, rj.code);
      return x;
    }
    ExprPtr operator()(const CtLoad& c) const {
      ExprPtr x = alloc("ct");
      if (!x) return x;
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_CT_KEY, static_cast<uint32_t>(c.key));
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_CT_DREG, r(c.dreg));
      return x;
    }
    ExprPtr operator()(const Fib& f) const {
      ExprPtr x = alloc("fib");
      if (!x) return x;
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_FIB_DREG, r(f.dreg));
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_FIB_RESULT, static_cast<uint32_t>(f.result));
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_FIB_FLAGS, f.flags);
      return x;
    }
    ExprPtr operator()(const MetaSet& m) const {
      ExprPtr x = alloc("meta");
      if (!x) return x;
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_META_KEY, static_cast<uint32_t>(m.key));
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_META_SREG, r(m.sreg));
      return x;
    }
    ExprPtr operator()(const Dynset& d) const {
      ExprPtr x = alloc("dynset");
      if (!x) return x;
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_DYNSET_SREG_KEY, r(d.sreg_key));
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_DYNSET_OP, static_cast<uint32_t>(d.op));
      nftnl_expr_set_str(x.get(), NFTNL_EXPR_DYNSET_SET_NAME, d.set.c_str());
      if (d.timeout_ms) nftnl_expr_set_u64(x.get(), NFTNL_EXPR_DYNSET_TIMEOUT, d.timeout_ms);
      return x;
    }
  };
  return std::visit(Visitor{anon_set_id}, e);
}

// The key as the kernel stores it: parts padded to 4 bytes in a concatenation.
Bytes flat_key(const std::vector<Bytes>& parts) {
  if (parts.size() == 1) return parts[0];
  Bytes out;
  for (const Bytes& p : parts) {
    out.insert(out.end(), p.begin(), p.end());
    out.resize(out.size() + (round4(static_cast<uint32_t>(p.size())) - p.size()), 0);
  }
  return out;
}

// Upper bound on the netlink bytes one element takes (key, data or verdict, timeout, comment,
// nesting), used to cut element lists into messages whose nested list stays below 64 KiB.
size_t element_cost(const Element& e) {
  size_t n = 64;
  for (const Bytes& p : e.key) n += round4(static_cast<uint32_t>(p.size()));
  if (const auto* v = std::get_if<Verdict>(&e.data)) n += 32 + v->chain.size();
  if (const auto* b = std::get_if<Bytes>(&e.data)) n += 8 + b->size();
  n += e.comment.size() + 8;
  return n;
}
constexpr size_t kMaxElementBytesPerMessage = 32 * 1024;

// Accumulates netlink messages with consecutive sequence numbers.
class Encoder {
 public:
  Encoder(const Batch& batch, uint32_t first_seq, std::vector<size_t>* op_of_message)
      : batch_(batch), seq_(first_seq), op_of_message_(op_of_message) {}

  // Free space for the next message (mnl_attr_put does not check bounds).
  char* room() {
    buf_.resize(used_ + kMaxMessage);
    return reinterpret_cast<char*>(buf_.data() + used_);
  }
  uint32_t seq() const { return seq_; }
  void put(const nlmsghdr* nlh, std::optional<size_t> op) {
    used_ += nlh->nlmsg_len;
    ++seq_;
    if (op && op_of_message_) op_of_message_->push_back(*op);
  }
  std::vector<uint8_t> take() {
    buf_.resize(used_);
    return std::move(buf_);
  }

  uint16_t family() const { return static_cast<uint16_t>(batch_.family()); }
  const char* table() const { return batch_.table().c_str(); }
  uint32_t next_set_id() { return ++set_id_; }

 private:
  const Batch& batch_;
  std::vector<uint8_t> buf_;
  size_t used_ = 0;
  uint32_t seq_;
  std::vector<size_t>* op_of_message_;
  uint32_t set_id_ = 0;
};

// False when libnftnl could not allocate.
bool put_udata_comment(const std::string& comment, uint8_t type,
                       const std::function<void(const void*, uint32_t)>& set) {
  if (comment.empty()) return true;
  UdataPtr ud(nftnl_udata_buf_alloc(NFTNL_UDATA_COMMENT_MAXLEN + 16));
  if (!ud) return false;
  nftnl_udata_put_strz(ud.get(), type, comment.c_str());
  set(nftnl_udata_buf_data(ud.get()), nftnl_udata_buf_len(ud.get()));
  return true;
}

SetPtr new_set_ref(Encoder& enc, const std::string& name, uint32_t set_id) {
  SetPtr s(nftnl_set_alloc());
  if (!s) return s;
  nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, enc.table());
  nftnl_set_set_str(s.get(), NFTNL_SET_NAME, name.c_str());
  nftnl_set_set_u32(s.get(), NFTNL_SET_FAMILY, enc.family());
  if (set_id) nftnl_set_set_u32(s.get(), NFTNL_SET_ID, set_id);
  return s;
}

// nft's typeof user data (src/*.c *_build_udata, nested nftnl_udata TLVs: type, length,
// value): a concatenation {0: EXPR_CONCAT, 1: {i: {0: expression type, 1: its fields}}}.
// Matched byte for byte against what nft 1.0.6 writes for the same declaration.
Bytes typeof_udata(const std::vector<TypeofExpr>& exprs) {
  auto tlv = [](uint8_t type, const Bytes& value) {
    Bytes out{type, static_cast<uint8_t>(value.size())};
    out.insert(out.end(), value.begin(), value.end());
    return out;
  };
  auto u32 = [&](uint8_t type, uint32_t v) { return tlv(type, u32_key(v)); };
  auto cat = [](Bytes a, const Bytes& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  constexpr uint32_t kExprPayload = 7, kExprMeta = 9, kExprNumgen = 23, kExprConcat = 13;
  constexpr uint32_t kProtoDescIp = 12, kProtoDescTh = 11, kIpSaddr = 11, kIpDaddr = 12,
                     kThDport = 2;
  Bytes parts;
  for (size_t i = 0; i < exprs.size(); ++i) {
    uint32_t type = 0;
    Bytes fields;
    switch (exprs[i]) {
      case TypeofExpr::kIpSaddr:
      case TypeofExpr::kIpDaddr:
        type = kExprPayload;
        fields = cat(u32(0, kProtoDescIp),
                     u32(1, exprs[i] == TypeofExpr::kIpSaddr ? kIpSaddr : kIpDaddr));
        break;
      case TypeofExpr::kThDport:
        type = kExprPayload;
        fields = cat(u32(0, kProtoDescTh), u32(1, kThDport));
        break;
      case TypeofExpr::kMetaL4proto:
        type = kExprMeta;
        fields = u32(0, static_cast<uint32_t>(MetaKey::kL4Proto));
        break;
      case TypeofExpr::kNumgen:
        type = kExprNumgen;  // type random, modulus 1, offset 0 (the template)
        fields = cat(cat(u32(0, NFT_NG_RANDOM), u32(1, 1)), u32(2, 0));
        break;
    }
    parts = cat(parts, tlv(static_cast<uint8_t>(i), cat(u32(0, type), tlv(1, fields))));
  }
  return cat(u32(0, kExprConcat), tlv(1, parts));
}

bool encode_new_set(Encoder& enc, const Set& def, uint32_t extra_flags, uint32_t set_id,
                    size_t op) {
  SetPtr s = new_set_ref(enc, def.name, set_id);
  if (!s) return false;
  uint32_t flags = extra_flags;
  if (def.is_map()) flags |= NFT_SET_MAP;
  if (def.interval) flags |= NFT_SET_INTERVAL;
  if (def.timeout) flags |= NFT_SET_TIMEOUT;
  if (def.dynamic) flags |= NFT_SET_EVAL;
  if (def.constant) flags |= NFT_SET_CONSTANT;
  nftnl_set_set_u32(s.get(), NFTNL_SET_FLAGS, flags);
  nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_TYPE, key_type_id(def.key));
  nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_LEN, key_len(def.key));
  if (def.data) {
    bool verdict = *def.data == SetType::kVerdict;
    nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_TYPE,
                      verdict ? NFT_DATA_VERDICT : static_cast<uint32_t>(*def.data));
    nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_LEN, verdict ? 0 : set_type_len(*def.data));
  } else if (!def.data_concat.empty()) {
    nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_TYPE, key_type_id(def.data_concat));
    nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_LEN, key_len(def.data_concat));
  }
  if (def.timeout_ms) nftnl_set_set_u64(s.get(), NFTNL_SET_TIMEOUT, def.timeout_ms);
  if (def.size) nftnl_set_set_u32(s.get(), NFTNL_SET_DESC_SIZE, def.size);
  // nft reads the byte orders back from the user data to print keys and data.
  UdataPtr ud(nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN));
  if (!ud) return false;
  nftnl_udata_put_u32(ud.get(), NFTNL_UDATA_SET_KEYBYTEORDER,
                      def.key.size() == 1 ? byteorder(def.key[0]) : 0);
  if (def.data) nftnl_udata_put_u32(ud.get(), NFTNL_UDATA_SET_DATABYTEORDER, byteorder(*def.data));
  if (!def.data_concat.empty()) nftnl_udata_put_u32(ud.get(), NFTNL_UDATA_SET_DATABYTEORDER, 0);
  if (!def.typeof_key.empty()) {
    Bytes k = typeof_udata(def.typeof_key);
    nftnl_udata_put(ud.get(), NFTNL_UDATA_SET_KEY_TYPEOF, static_cast<uint32_t>(k.size()),
                    k.data());
    if (!def.typeof_data.empty()) {
      Bytes d = typeof_udata(def.typeof_data);
      nftnl_udata_put(ud.get(), NFTNL_UDATA_SET_DATA_TYPEOF, static_cast<uint32_t>(d.size()),
                      d.data());
    }
  }
  // What nft writes for a map with concatenated data: its data is not an interval.
  if (!def.data_concat.empty()) nftnl_udata_put_u32(ud.get(), NFTNL_UDATA_SET_DATA_INTERVAL, 0);
  if (!def.comment.empty()) {
    nftnl_udata_put_strz(ud.get(), NFTNL_UDATA_SET_COMMENT, def.comment.c_str());
  }
  nftnl_set_set_data(s.get(), NFTNL_SET_USERDATA, nftnl_udata_buf_data(ud.get()),
                     nftnl_udata_buf_len(ud.get()));
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(enc.room(), NFT_MSG_NEWSET, enc.family(),
                                        NLM_F_CREATE | NLM_F_ACK, enc.seq());
  nftnl_set_nlmsg_build_payload(nlh, s.get());
  enc.put(nlh, op);
  return true;
}

// NEWSETELEM / DELSETELEM messages for `elements`, cut so each message's list stays small.
bool encode_elements(Encoder& enc, const std::string& set, uint32_t set_id, bool add,
                     const std::vector<Element>& elements, size_t op) {
  size_t i = 0;
  while (i < elements.size()) {
    SetPtr s = new_set_ref(enc, set, set_id);
    if (!s) return false;
    size_t bytes = 0;
    for (; i < elements.size() &&
           (bytes == 0 || bytes + element_cost(elements[i]) <= kMaxElementBytesPerMessage);
         ++i) {
      const Element& e = elements[i];
      bytes += element_cost(e);
      nftnl_set_elem* el = nftnl_set_elem_alloc();
      if (!el) return false;
      nftnl_set_elem_add(s.get(), el);  // the set owns it now
      Bytes key = flat_key(e.key);
      nftnl_set_elem_set(el, NFTNL_SET_ELEM_KEY, key.data(), static_cast<uint32_t>(key.size()));
      if (!add) continue;  // a delete names the key only
      if (const auto* v = std::get_if<Verdict>(&e.data)) {
        nftnl_set_elem_set_u32(el, NFTNL_SET_ELEM_VERDICT, static_cast<uint32_t>(v->code));
        if (!v->chain.empty()) nftnl_set_elem_set_str(el, NFTNL_SET_ELEM_CHAIN, v->chain.c_str());
      } else if (const auto* b = std::get_if<Bytes>(&e.data)) {
        nftnl_set_elem_set(el, NFTNL_SET_ELEM_DATA, b->data(), static_cast<uint32_t>(b->size()));
      }
      if (e.timeout_ms) nftnl_set_elem_set_u64(el, NFTNL_SET_ELEM_TIMEOUT, e.timeout_ms);
      if (!put_udata_comment(e.comment, NFTNL_UDATA_SET_ELEM_COMMENT,
                             [&](const void* d, uint32_t n) {
                               nftnl_set_elem_set(el, NFTNL_SET_ELEM_USERDATA, d, n);
                             })) {
        return false;
      }
    }
    nlmsghdr* nlh =
        nftnl_nlmsg_build_hdr(enc.room(), add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM,
                              enc.family(), (add ? NLM_F_CREATE : 0) | NLM_F_ACK, enc.seq());
    nftnl_set_elems_nlmsg_build_payload(nlh, s.get());
    enc.put(nlh, op);
  }
  return true;
}

bool encode_rule(Encoder& enc, const Batch::Op& op, size_t index) {
  // Anonymous maps first: each InlineVmap's set and elements precede the rule, as nft sends.
  std::vector<uint32_t> anon_ids;
  for (const Expr& e : op.rule.exprs) {
    const auto* v = std::get_if<InlineVmap>(&e);
    if (!v) continue;
    uint32_t id = enc.next_set_id();
    anon_ids.push_back(id);
    Set def;
    def.name = kAnonMapName;
    def.key = {v->key_type};
    def.data = SetType::kVerdict;
    def.size = static_cast<uint32_t>(v->entries.size());
    if (!encode_new_set(enc, def, NFT_SET_ANONYMOUS | NFT_SET_CONSTANT, id, index)) return false;
    std::vector<Element> elements;
    for (const auto& [key, verdict] : v->entries)
      elements.push_back(Element{{key}, verdict, 0, {}});
    if (!encode_elements(enc, kAnonMapName, id, true, elements, index)) return false;
  }
  std::unique_ptr<nftnl_rule, RuleDeleter> r(nftnl_rule_alloc());
  if (!r) return false;
  nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, enc.table());
  nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, op.chain.name.c_str());
  nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, enc.family());
  size_t anon = 0;
  for (const Expr& e : op.rule.exprs) {
    uint32_t id = std::holds_alternative<InlineVmap>(e) ? anon_ids[anon++] : 0;
    ExprPtr x = build_expr(e, id);
    if (!x) return false;
    nftnl_rule_add_expr(r.get(), x.release());  // the rule owns it now
  }
  if (!put_udata_comment(op.rule.comment, NFTNL_UDATA_RULE_COMMENT, [&](const void* d, uint32_t n) {
        nftnl_rule_set_data(r.get(), NFTNL_RULE_USERDATA, d, n);
      })) {
    return false;
  }
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(enc.room(), NFT_MSG_NEWRULE, enc.family(),
                                        NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK, enc.seq());
  nftnl_rule_nlmsg_build_payload(nlh, r.get());
  enc.put(nlh, index);
  return true;
}

// Appends op's messages; false when libnftnl could not allocate.
bool encode_op(Encoder& enc, const Batch::Op& op, size_t index) {
  const uint16_t family = enc.family();
  switch (op.kind) {
    case Batch::Kind::kAddTable:
    case Batch::Kind::kDeleteTable: {
      std::unique_ptr<nftnl_table, TableDeleter> t(nftnl_table_alloc());
      if (!t) return false;
      nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, enc.table());
      nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, family);
      bool add = op.kind == Batch::Kind::kAddTable;
      // NLM_F_CREATE without NLM_F_EXCL: an existing table is kept, like `nft add table`.
      nlmsghdr* nlh =
          nftnl_table_nlmsg_build_hdr(enc.room(), add ? NFT_MSG_NEWTABLE : NFT_MSG_DELTABLE, family,
                                      (add ? NLM_F_CREATE : 0) | NLM_F_ACK, enc.seq());
      nftnl_table_nlmsg_build_payload(nlh, t.get());
      enc.put(nlh, index);
      return true;
    }
    case Batch::Kind::kAddChain:
    case Batch::Kind::kDeleteChain: {
      std::unique_ptr<nftnl_chain, ChainDeleter> c(nftnl_chain_alloc());
      if (!c) return false;
      nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, enc.table());
      nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, op.chain.name.c_str());
      nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_FAMILY, family);
      bool add = op.kind == Batch::Kind::kAddChain;
      if (add && op.chain.base) {
        const BaseChain& b = *op.chain.base;
        nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_HOOKNUM, static_cast<uint32_t>(b.hook));
        nftnl_chain_set_s32(c.get(), NFTNL_CHAIN_PRIO, b.priority);
        nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TYPE, b.type.c_str());
        nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_POLICY, static_cast<uint32_t>(b.policy));
      }
      nlmsghdr* nlh =
          nftnl_chain_nlmsg_build_hdr(enc.room(), add ? NFT_MSG_NEWCHAIN : NFT_MSG_DELCHAIN, family,
                                      (add ? NLM_F_CREATE : 0) | NLM_F_ACK, enc.seq());
      nftnl_chain_nlmsg_build_payload(nlh, c.get());
      enc.put(nlh, index);
      return true;
    }
    case Batch::Kind::kFlushChain: {
      std::unique_ptr<nftnl_rule, RuleDeleter> r(nftnl_rule_alloc());
      if (!r) return false;
      nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, enc.table());
      nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, op.chain.name.c_str());
      nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, family);
      // DELRULE naming only the chain deletes all its rules (what `nft flush chain` sends).
      nlmsghdr* nlh =
          nftnl_rule_nlmsg_build_hdr(enc.room(), NFT_MSG_DELRULE, family, NLM_F_ACK, enc.seq());
      nftnl_rule_nlmsg_build_payload(nlh, r.get());
      enc.put(nlh, index);
      return true;
    }
    case Batch::Kind::kAddRule:
      return encode_rule(enc, op, index);
    case Batch::Kind::kAddSet:
      // The kernel requires NFTA_SET_ID on every new set (rules may refer to it by id).
      return encode_new_set(enc, op.set, 0, enc.next_set_id(), index);
    case Batch::Kind::kDeleteSet: {
      SetPtr s = new_set_ref(enc, op.set.name, 0);
      if (!s) return false;
      nlmsghdr* nlh =
          nftnl_nlmsg_build_hdr(enc.room(), NFT_MSG_DELSET, family, NLM_F_ACK, enc.seq());
      nftnl_set_nlmsg_build_payload(nlh, s.get());
      enc.put(nlh, index);
      return true;
    }
    case Batch::Kind::kFlushSet: {
      // DELSETELEM without an element list deletes them all (what `nft flush set` sends).
      SetPtr s = new_set_ref(enc, op.set.name, 0);
      if (!s) return false;
      nlmsghdr* nlh =
          nftnl_nlmsg_build_hdr(enc.room(), NFT_MSG_DELSETELEM, family, NLM_F_ACK, enc.seq());
      nftnl_set_elems_nlmsg_build_payload(nlh, s.get());
      enc.put(nlh, index);
      return true;
    }
    case Batch::Kind::kAddElements:
    case Batch::Kind::kDeleteElements:
      if (op.elements.empty()) return true;  // nothing to send
      return encode_elements(enc, op.set.name, 0, op.kind == Batch::Kind::kAddElements, op.elements,
                             index);
  }
  return false;
}

}  // namespace

// ---- Family, prefixes ----

const char* family_name(Family f) {
  switch (f) {
    case Family::kIp:
      return "ip";
    case Family::kIp6:
      return "ip6";
    case Family::kInet:
      return "inet";
  }
  return "?";
}

uint32_t Ipv4Prefix::mask() const {
  return length <= 0 ? 0 : length >= 32 ? 0xffffffffu : ~((1u << (32 - length)) - 1);
}

std::string Ipv4Prefix::to_string() const {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%u.%u.%u.%u/%d", network >> 24, (network >> 16) & 0xff,
                (network >> 8) & 0xff, network & 0xff, length);
  return buf;
}

Result<Ipv4Prefix> parse_ipv4_prefix(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return Status::invalid("parse IPv4 CIDR \"" + std::string(text) + "\": " + why);
  };
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) return bad("no /prefix-length (want e.g. 10.244.0.0/16)");
  std::string addr(text.substr(0, slash));
  std::string_view len_text = text.substr(slash + 1);
  in_addr a{};
  // inet_pton accepts only the four-part dotted-quad form, no octal or shorthand.
  if (inet_pton(AF_INET, addr.c_str(), &a) != 1) return bad("not an IPv4 address before the /");
  int len = -1;
  auto [end, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), len);
  if (ec != std::errc() || end != len_text.data() + len_text.size() || len_text.empty() ||
      len < 0 || len > 32) {
    return bad("prefix length must be a number 0..32");
  }
  Ipv4Prefix p;
  p.length = len;
  uint32_t host = ntohl(a.s_addr);
  p.network = host & p.mask();
  if (p.network != host) return bad("host bits are set; did you mean " + p.to_string() + "?");
  return p;
}

// ---- expressions ----

const char* set_type_name(SetType t) {
  switch (t) {
    case SetType::kVerdict:
      return "verdict";
    case SetType::kInteger:
      return "integer";
    case SetType::kIpv4Addr:
      return "ipv4_addr";
    case SetType::kInetProto:
      return "inet_proto";
    case SetType::kInetService:
      return "inet_service";
    case SetType::kMark:
      return "mark";
  }
  return "?";
}

uint32_t set_type_len(SetType t) {
  switch (t) {
    case SetType::kVerdict:
      return 0;
    case SetType::kInetProto:
      return 1;
    case SetType::kInetService:
      return 2;
    case SetType::kInteger:
    case SetType::kIpv4Addr:
    case SetType::kMark:
      return 4;
  }
  return 0;
}

std::string to_string(const Expr& e) {
  auto reg = [](Reg r) {
    return r == Reg::kVerdict ? std::string("verdict") : std::to_string(static_cast<int>(r));
  };
  if (const auto* p = std::get_if<PayloadLoad>(&e)) {
    return "[ payload load " + std::to_string(p->len) + "b @ " + base_name(p->base) + " header + " +
           std::to_string(p->offset) + " => reg " + reg(p->dreg) + " ]";
  }
  if (const auto* b = std::get_if<Bitwise>(&e)) {
    return "[ bitwise reg " + reg(b->dreg) + " = ( reg " + reg(b->sreg) + " & " + hex(b->mask) +
           " ) ^ " + hex(b->xor_bits) + " ]";
  }
  if (const auto* c = std::get_if<Cmp>(&e)) {
    return std::string("[ cmp ") + cmp_name(c->op) + " reg " + reg(c->sreg) + " " + hex(c->data) +
           " ]";
  }
  if (const auto* m = std::get_if<MetaLoad>(&e)) {
    return "[ meta load " + std::to_string(static_cast<uint32_t>(m->key)) + " => reg " +
           reg(m->dreg) + " ]";
  }
  if (const auto* m = std::get_if<Masquerade>(&e)) {
    return m->fully_random ? "[ masq flags 0x10 ]" : "[ masq ]";
  }
  if (std::holds_alternative<Counter>(e)) return "[ counter ]";
  if (const auto* v = std::get_if<Verdict>(&e)) {
    return std::string("[ immediate reg verdict ") + verdict_name(v->code) +
           (v->chain.empty() ? "" : " " + v->chain) + " ]";
  }
  if (const auto* i = std::get_if<Immediate>(&e)) {
    return "[ immediate reg " + reg(i->dreg) + " " + hex(i->data) + " ]";
  }
  if (const auto* l = std::get_if<Lookup>(&e)) {
    return "[ lookup reg " + reg(l->sreg) + " set " + l->set +
           (l->dreg ? " dreg " + reg(*l->dreg) : "") + (l->invert ? " 0x1" : "") + " ]";
  }
  if (const auto* n = std::get_if<Numgen>(&e)) {
    return "[ numgen reg " + reg(n->dreg) + " = random mod " + std::to_string(n->modulus) +
           (n->offset ? " offset " + std::to_string(n->offset) : "") + " ]";
  }
  if (const auto* iv = std::get_if<InlineVmap>(&e)) {
    std::string s = "[ lookup reg " + reg(iv->sreg) + " set __map%d dreg verdict {";
    for (size_t i = 0; i < iv->entries.size(); ++i) {
      const Verdict& v = iv->entries[i].second;
      s += (i ? ", " : " ") + hex(iv->entries[i].first) + " : " + verdict_name(v.code) +
           (v.chain.empty() ? "" : " " + v.chain);
    }
    return s + " } ]";
  }
  if (const auto* n = std::get_if<Nat>(&e)) {
    return std::string("[ nat ") + (n->type == NatType::kDnat ? "dnat" : "snat") +
           " ip addr_min reg " + reg(n->reg_addr) +
           (n->reg_proto ? " proto_min reg " + reg(*n->reg_proto) : "") + " ]";
  }
  if (const auto* r = std::get_if<Reject>(&e)) {
    return "[ reject type " + std::to_string(static_cast<uint32_t>(r->type)) + " code " +
           std::to_string(r->code) + " ]";
  }
  if (const auto* c = std::get_if<CtLoad>(&e)) {
    return "[ ct load " + std::to_string(static_cast<uint32_t>(c->key)) + " => reg " +
           reg(c->dreg) + " ]";
  }
  if (const auto* f = std::get_if<Fib>(&e)) {
    return "[ fib flags " + std::to_string(f->flags) + " result " +
           std::to_string(static_cast<uint32_t>(f->result)) + " => reg " + reg(f->dreg) + " ]";
  }
  if (const auto* m = std::get_if<MetaSet>(&e)) {
    return "[ meta set " + std::to_string(static_cast<uint32_t>(m->key)) + " with reg " +
           reg(m->sreg) + " ]";
  }
  const auto& d = std::get<Dynset>(e);
  static const char* const kOps[] = {"add", "update", "delete"};
  auto op = static_cast<uint32_t>(d.op);
  return std::string("[ dynset ") + (op < 3 ? kOps[op] : "?") + " reg_key " + reg(d.sreg_key) +
         " set " + d.set + (d.timeout_ms ? " timeout " + std::to_string(d.timeout_ms) + "ms" : "") +
         " ]";
}

std::vector<Expr> match_ipv4(IpField field, const Ipv4Prefix& prefix, bool negate) {
  // Offsets of saddr/daddr in the IPv4 header. The whole address is loaded and masked (nft
  // itself loads fewer bytes for byte-aligned prefixes; the result is the same).
  std::vector<Expr> out;
  out.push_back(load_ipv4(field));
  if (prefix.length < 32) out.push_back(Bitwise{Reg::k1, Reg::k1, be32(prefix.mask()), be32(0)});
  out.push_back(Cmp{negate ? CmpOp::kNeq : CmpOp::kEq, Reg::k1, be32(prefix.network)});
  return out;
}

Bytes ipv4_bytes(uint32_t addr) { return be32(addr); }
Bytes port_bytes(uint16_t port) {
  return {static_cast<uint8_t>(port >> 8), static_cast<uint8_t>(port)};
}
Bytes proto_bytes(uint8_t proto) { return {proto}; }
Bytes u32_key(uint32_t v) {
  Bytes b(4);
  std::memcpy(b.data(), &v, 4);
  return b;
}

Result<uint32_t> parse_ipv4(std::string_view text) {
  in_addr a{};
  std::string s(text);
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) {
    return Status::invalid("parse IPv4 address \"" + s + "\": not a dotted quad");
  }
  return ntohl(a.s_addr);
}

PayloadLoad load_ipv4(IpField field, Reg dreg) {
  return PayloadLoad{PayloadBase::kNetwork, field == IpField::kSaddr ? 12u : 16u, 4, dreg};
}

PayloadLoad load_th_dport(Reg dreg) { return PayloadLoad{PayloadBase::kTransport, 2, 2, dreg}; }

std::vector<Expr> match_l4proto(uint8_t proto) {
  return {MetaLoad{MetaKey::kL4Proto, Reg::k1}, Cmp{CmpOp::kEq, Reg::k1, proto_bytes(proto)}};
}

std::vector<Expr> match_th_dport(uint16_t port) {
  return {load_th_dport(), Cmp{CmpOp::kEq, Reg::k1, port_bytes(port)}};
}

std::vector<Expr> match_ct_state(uint32_t bits) {
  return {CtLoad{CtKey::kState, Reg::k1}, Bitwise{Reg::k1, Reg::k1, u32_key(bits), u32_key(0)},
          Cmp{CmpOp::kNeq, Reg::k1, u32_key(0)}};
}

std::vector<Expr> match_ct_status(uint32_t bits) {
  return {CtLoad{CtKey::kStatus, Reg::k1}, Bitwise{Reg::k1, Reg::k1, u32_key(bits), u32_key(0)},
          Cmp{CmpOp::kNeq, Reg::k1, u32_key(0)}};
}

std::vector<Expr> match_fib_daddr_local() {
  return {Fib{kFibDaddr, FibResult::kAddrType, Reg::k1},
          Cmp{CmpOp::kEq, Reg::k1, u32_key(2 /* RTN_LOCAL */)}};
}

std::vector<Expr> match_mark_bits(uint32_t bits) {
  return {MetaLoad{MetaKey::kMark, Reg::k1}, Bitwise{Reg::k1, Reg::k1, u32_key(bits), u32_key(0)},
          Cmp{CmpOp::kEq, Reg::k1, u32_key(bits)}};
}

std::vector<Expr> set_mark_bits(uint32_t bits) {
  return {MetaLoad{MetaKey::kMark, Reg::k1},
          Bitwise{Reg::k1, Reg::k1, u32_key(~bits), u32_key(bits)},
          MetaSet{MetaKey::kMark, Reg::k1}};
}

std::vector<Expr> xor_mark_bits(uint32_t bits) {
  return {MetaLoad{MetaKey::kMark, Reg::k1},
          Bitwise{Reg::k1, Reg::k1, u32_key(0xffffffffu), u32_key(bits)},
          MetaSet{MetaKey::kMark, Reg::k1}};
}

std::vector<Expr> vmap_daddr_proto_port(std::string set) {
  return {load_ipv4(IpField::kDaddr, Reg::k1), MetaLoad{MetaKey::kL4Proto, reg32(1)},
          load_th_dport(reg32(2)), Lookup{std::move(set), Reg::k1, Reg::kVerdict, false}};
}

std::vector<Expr> vmap_proto_port(std::string set) {
  return {MetaLoad{MetaKey::kL4Proto, Reg::k1}, load_th_dport(reg32(1)),
          Lookup{std::move(set), Reg::k1, Reg::kVerdict, false}};
}

std::vector<Expr> match_saddr_in_set(std::string set) {
  return {load_ipv4(IpField::kSaddr), Lookup{std::move(set), Reg::k1, std::nullopt, false}};
}

std::vector<Expr> update_set_saddr(std::string set, uint64_t timeout_ms) {
  return {load_ipv4(IpField::kSaddr),
          Dynset{std::move(set), DynsetOp::kUpdate, Reg::k1, timeout_ms}};
}

std::vector<Expr> numgen_vmap_goto(const std::vector<std::string>& chains) {
  InlineVmap v;
  v.sreg = Reg::k1;
  v.key_type = SetType::kInteger;
  for (size_t i = 0; i < chains.size(); ++i) {
    v.entries.emplace_back(u32_key(static_cast<uint32_t>(i)),
                           Verdict{VerdictCode::kGoto, chains[i]});
  }
  return {Numgen{static_cast<uint32_t>(chains.size()), 0, Reg::k1}, std::move(v)};
}

std::vector<Expr> dnat_to(uint32_t addr, uint16_t port, uint8_t proto) {
  std::vector<Expr> out;
  if (proto != 0) out = match_l4proto(proto);
  out.push_back(Immediate{Reg::k1, ipv4_bytes(addr)});
  if (port != 0) {
    out.push_back(Immediate{Reg::k2, port_bytes(port)});
    out.push_back(Nat{NatType::kDnat, Reg::k1, Reg::k2});
  } else {
    out.push_back(Nat{NatType::kDnat, Reg::k1, std::nullopt});
  }
  return out;
}

std::vector<Expr> match_daddr_proto_port_in(std::string set) {
  return {load_ipv4(IpField::kDaddr, Reg::k1), MetaLoad{MetaKey::kL4Proto, reg32(1)},
          load_th_dport(reg32(2)), Lookup{std::move(set), Reg::k1, std::nullopt, false}};
}

std::vector<Expr> match_proto_port_in(std::string set) {
  return {MetaLoad{MetaKey::kL4Proto, Reg::k1}, load_th_dport(reg32(1)),
          Lookup{std::move(set), Reg::k1, std::nullopt, false}};
}

std::vector<Expr> match_saddr_daddr_in(std::string set) {
  return {load_ipv4(IpField::kSaddr, Reg::k1), load_ipv4(IpField::kDaddr, reg32(1)),
          Lookup{std::move(set), Reg::k1, std::nullopt, false}};
}

std::vector<Expr> match_fib_saddr_local(bool negate) {
  return {Fib{kFibSaddr, FibResult::kAddrType, Reg::k1},
          Cmp{negate ? CmpOp::kNeq : CmpOp::kEq, Reg::k1, u32_key(2 /* RTN_LOCAL */)}};
}

std::vector<Expr> dnat_numgen_map(std::string map, bool with_daddr, uint8_t proto, uint32_t modulus,
                                  uint32_t offset) {
  // What nft generates: the key in 4-byte registers from reg 1 on, the map's data (address,
  // port) back into reg 1 and the next 4-byte register.
  std::vector<Expr> out = match_l4proto(proto);
  int r = 0;
  auto next = [&r] { return r++ == 0 ? Reg::k1 : reg32(r - 1); };
  if (with_daddr) out.push_back(load_ipv4(IpField::kDaddr, next()));
  out.push_back(MetaLoad{MetaKey::kL4Proto, next()});
  out.push_back(load_th_dport(next()));
  out.push_back(Numgen{modulus, offset, next()});
  out.push_back(Lookup{std::move(map), Reg::k1, Reg::k1, false});
  out.push_back(Nat{NatType::kDnat, Reg::k1, reg32(1), true});
  return out;
}

std::vector<Expr> reject_icmp_port_unreachable() { return {Reject{RejectType::kIcmpUnreach, 3}}; }

std::vector<Expr> reject_tcp_reset() {
  std::vector<Expr> out = match_l4proto(kTcp);
  out.push_back(Reject{RejectType::kTcpRst, 0});
  return out;
}

const char* typeof_text(TypeofExpr e) {
  switch (e) {
    case TypeofExpr::kIpSaddr:
      return "ip saddr";
    case TypeofExpr::kIpDaddr:
      return "ip daddr";
    case TypeofExpr::kMetaL4proto:
      return "meta l4proto";
    case TypeofExpr::kThDport:
      return "th dport";
    case TypeofExpr::kNumgen:
      return "numgen random mod 1";
  }
  return "?";
}

SetType typeof_type(TypeofExpr e) {
  switch (e) {
    case TypeofExpr::kIpSaddr:
    case TypeofExpr::kIpDaddr:
      return SetType::kIpv4Addr;
    case TypeofExpr::kMetaL4proto:
      return SetType::kInetProto;
    case TypeofExpr::kThDport:
      return SetType::kInetService;
    case TypeofExpr::kNumgen:
      return SetType::kInteger;
  }
  return SetType::kInteger;
}

Set typeof_map(std::string name, std::vector<TypeofExpr> key, std::vector<TypeofExpr> data) {
  Set s;
  s.name = std::move(name);
  for (TypeofExpr e : key) s.key.push_back(typeof_type(e));
  for (TypeofExpr e : data) s.data_concat.push_back(typeof_type(e));
  s.typeof_key = std::move(key);
  s.typeof_data = std::move(data);
  return s;
}

Bytes concat_bytes(const std::vector<Bytes>& parts) {
  Bytes out;
  for (const Bytes& p : parts) {
    out.insert(out.end(), p.begin(), p.end());
    out.resize(out.size() + (round4(static_cast<uint32_t>(p.size())) - p.size()), 0);
  }
  return out;
}

std::vector<Bytes> service_key(uint32_t addr, uint8_t proto, uint16_t port) {
  return {ipv4_bytes(addr), proto_bytes(proto), port_bytes(port)};
}

std::vector<Bytes> proto_port_key(uint8_t proto, uint16_t port) {
  return {proto_bytes(proto), port_bytes(port)};
}

// ---- Batch ----

Batch::Batch(Family family, std::string table) : family_(family), table_(std::move(table)) {}

Batch& Batch::add_table() {
  ops_.push_back(Op{Kind::kAddTable, {}, {}, {}, {}});
  return *this;
}

Batch& Batch::delete_table() {
  ops_.push_back(Op{Kind::kDeleteTable, {}, {}, {}, {}});
  return *this;
}

Batch& Batch::add_chain(Chain chain) {
  ops_.push_back(Op{Kind::kAddChain, std::move(chain), {}, {}, {}});
  return *this;
}

Batch& Batch::flush_chain(std::string chain) {
  ops_.push_back(Op{Kind::kFlushChain, Chain{std::move(chain), std::nullopt}, {}, {}, {}});
  return *this;
}

Batch& Batch::delete_chain(std::string chain) {
  ops_.push_back(Op{Kind::kDeleteChain, Chain{std::move(chain), std::nullopt}, {}, {}, {}});
  return *this;
}

Batch& Batch::add_rule(std::string chain, Rule rule) {
  ops_.push_back(
      Op{Kind::kAddRule, Chain{std::move(chain), std::nullopt}, std::move(rule), {}, {}});
  return *this;
}

Batch& Batch::add_set(Set set) {
  ops_.push_back(Op{Kind::kAddSet, {}, {}, std::move(set), {}});
  return *this;
}

Batch& Batch::delete_set(std::string set) {
  Set s;
  s.name = std::move(set);
  ops_.push_back(Op{Kind::kDeleteSet, {}, {}, std::move(s), {}});
  return *this;
}

Batch& Batch::flush_set(std::string set) {
  Set s;
  s.name = std::move(set);
  ops_.push_back(Op{Kind::kFlushSet, {}, {}, std::move(s), {}});
  return *this;
}

Batch& Batch::add_elements(std::string set, std::vector<Element> elements) {
  Set s;
  s.name = std::move(set);
  ops_.push_back(Op{Kind::kAddElements, {}, {}, std::move(s), std::move(elements)});
  return *this;
}

Batch& Batch::delete_elements(std::string set, std::vector<Element> elements) {
  Set s;
  s.name = std::move(set);
  ops_.push_back(Op{Kind::kDeleteElements, {}, {}, std::move(s), std::move(elements)});
  return *this;
}

std::string Batch::describe(size_t i) const {
  if (i >= ops_.size()) return "operation " + std::to_string(i) + " (out of range)";
  const Op& op = ops_[i];
  std::string t = std::string(family_name(family_)) + " " + table_;
  auto n_elements = [&](const char* verb, const char* prep) {
    size_t n = op.elements.size();
    return std::string(verb) + " " + std::to_string(n) + (n == 1 ? " element " : " elements ") +
           prep + " set " + t + " " + op.set.name;
  };
  switch (op.kind) {
    case Kind::kAddTable:
      return "add table " + t;
    case Kind::kDeleteTable:
      return "delete table " + t;
    case Kind::kAddChain:
      return "add chain " + t + " " + op.chain.name;
    case Kind::kFlushChain:
      return "flush chain " + t + " " + op.chain.name;
    case Kind::kDeleteChain:
      return "delete chain " + t + " " + op.chain.name;
    case Kind::kAddRule:
      return "add rule " + t + " " + op.chain.name;
    case Kind::kAddSet:
      return std::string("add ") + (op.set.is_map() ? "map " : "set ") + t + " " + op.set.name;
    case Kind::kDeleteSet:
      return "delete set " + t + " " + op.set.name;
    case Kind::kFlushSet:
      return "flush set " + t + " " + op.set.name;
    case Kind::kAddElements:
      return n_elements("add", "to");
    case Kind::kDeleteElements:
      return n_elements("delete", "from");
  }
  return "?";
}

Status Batch::validate() const {
  if (Status s = check_name("table", table_); !s) return s;
  std::vector<const Set*> defined;
  for (size_t i = 0; i < ops_.size(); ++i) {
    if (Status s = check_op(ops_[i], family_, defined); !s) return s.with_context(describe(i));
    if (ops_[i].kind == Kind::kAddSet) defined.push_back(&ops_[i].set);
  }
  return Status::ok();
}

Result<std::vector<uint8_t>> Batch::encode(uint32_t first_seq,
                                           std::vector<size_t>* op_of_message) const {
  if (Status s = validate(); !s) return s;
  if (op_of_message) op_of_message->clear();
  Encoder enc(*this, first_seq, op_of_message);
  enc.put(nftnl_batch_begin(enc.room(), enc.seq()), std::nullopt);
  for (size_t i = 0; i < ops_.size(); ++i) {
    if (!encode_op(enc, ops_[i], i)) {
      return Status::internal(describe(i) + ": libnftnl out of memory");
    }
  }
  enc.put(nftnl_batch_end(enc.room(), enc.seq()), std::nullopt);
  return enc.take();
}

Status kernel_error(const std::string& op_description, int err, const std::string& extack) {
  std::string m = op_description + ": " + std::strerror(err);
  if (!extack.empty()) m += " (" + extack + ")";
  Code c = err == ENOENT   ? Code::kNotFound
           : err == EEXIST ? Code::kAlreadyExists
           : err == EPERM  ? Code::kForbidden
                           : Code::kIo;
  return Status(c, std::move(m), err);
}

// ---- NftnlTables ----

NftnlTables::NftnlTables(mnl_socket* nl, uint32_t portid, uint32_t seq)
    : nl_(nl), portid_(portid), next_seq_(seq) {}

NftnlTables::~NftnlTables() { mnl_socket_close(nl_); }

Result<std::unique_ptr<NftnlTables>> NftnlTables::open() {
  mnl_socket* nl = mnl_socket_open(NETLINK_NETFILTER);
  if (!nl) return Status::io("open netlink socket (NETLINK_NETFILTER)");
  if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
    Status s = Status::io("bind netlink socket (NETLINK_NETFILTER)");
    mnl_socket_close(nl);
    return s;
  }
  // Best effort (old kernels lack them): the kernel's error text (EXT_ACK), and acks without a
  // copy of the request (CAP_ACK) so a large batch's acks fit the receive buffer.
  int one = 1;
  (void)mnl_socket_setsockopt(nl, NETLINK_EXT_ACK, &one, sizeof one);
  (void)mnl_socket_setsockopt(nl, NETLINK_CAP_ACK, &one, sizeof one);
  auto seq = static_cast<uint32_t>(std::time(nullptr));
  return std::unique_ptr<NftnlTables>(new NftnlTables(nl, mnl_socket_get_portid(nl), seq));
}

Status NftnlTables::ensure_buffers(size_t batch_bytes, size_t acks) {
  // The kernel refuses a netlink message larger than the send buffer (EMSGSIZE), and drops acks
  // that do not fit the receive buffer (ENOBUFS), so both grow with the batch. The *FORCE
  // variants exceed net.core.{w,r}mem_max but need CAP_NET_ADMIN, which nftables needs anyway.
  int fd = mnl_socket_get_fd(nl_);
  auto grow = [&](int opt, int force_opt, int want, int& have, const char* what) -> Status {
    if (want <= have) return Status::ok();
    if (setsockopt(fd, SOL_SOCKET, force_opt, &want, sizeof want) != 0 &&
        setsockopt(fd, SOL_SOCKET, opt, &want, sizeof want) != 0) {
      return Status::io(std::string("set netlink ") + what + " to " + std::to_string(want));
    }
    have = want;
    return Status::ok();
  };
  int snd = static_cast<int>(batch_bytes + 64 * 1024);
  if (Status s = grow(SO_SNDBUF, SO_SNDBUFFORCE, snd, sndbuf_, "send buffer"); !s) return s;
  // An ack is an nlmsgerr (36 bytes) plus extended-ack attributes, and each costs an skb.
  int rcv = static_cast<int>(acks * 1024 + 256 * 1024);
  return grow(SO_RCVBUF, SO_RCVBUFFORCE, rcv, rcvbuf_, "receive buffer");
}

Status NftnlTables::commit(const Batch& batch) {
  if (batch.empty()) return Status::ok();
  const uint32_t first_seq = next_seq_;
  std::vector<size_t> op_of_msg;
  Result<std::vector<uint8_t>> msg = batch.encode(first_seq, &op_of_msg);
  if (!msg) return msg.status();
  next_seq_ += static_cast<uint32_t>(op_of_msg.size() + 2);
  if (op_of_msg.empty()) return Status::ok();  // e.g. only empty element lists
  const std::string what = "nftables batch for table " + std::string(family_name(batch.family())) +
                           " " + batch.table() + " (" + std::to_string(batch.ops().size()) +
                           " operations)";
  // Only the last message asks for an ack: the kernel reports every refused message anyway,
  // and delivers all answers after the commit, so the last one's ack (0) with no error before
  // it confirms the whole transaction. An ack per message costs the kernel an skb each
  // (180,000 for a 10,000-service cold sync).
  {
    std::vector<uint8_t>& buf = msg.value();
    size_t off = 0, index = 0;
    while (off + sizeof(nlmsghdr) <= buf.size()) {
      auto* nlh = reinterpret_cast<nlmsghdr*>(buf.data() + off);
      if (index >= 1 && index < op_of_msg.size()) nlh->nlmsg_flags &= ~NLM_F_ACK;
      off += NLMSG_ALIGN(nlh->nlmsg_len);
      ++index;
    }
  }
  // Room for an error per message still: a batch may be refused in many places.
  if (Status s = ensure_buffers(msg.value().size(), op_of_msg.size()); !s) {
    return s.with_context(what);
  }
  if (mnl_socket_sendto(nl_, msg.value().data(), msg.value().size()) < 0) {
    return Status::io("send " + what);
  }
  return read_acks(batch, first_seq, op_of_msg);
}

std::string ack_extack_text(const void* msg, size_t len) {
  const auto* nlh = static_cast<const nlmsghdr*>(msg);
  if (len < sizeof(nlmsghdr) || nlh->nlmsg_len > len || nlh->nlmsg_type != NLMSG_ERROR ||
      !(nlh->nlmsg_flags & NLM_F_ACK_TLVS) || mnl_nlmsg_get_payload_len(nlh) < sizeof(nlmsgerr)) {
    return "";
  }
  const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
  // The attributes follow the nlmsgerr and, unless capped, the copy of the request.
  size_t payload = sizeof(nlmsgerr);
  if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) payload += err->msg.nlmsg_len - sizeof(nlmsghdr);
  size_t total = mnl_nlmsg_get_payload_len(nlh);
  if (MNL_ALIGN(payload) >= total) return "";
  const char* p = static_cast<const char*>(mnl_nlmsg_get_payload(nlh)) + MNL_ALIGN(payload);
  int left = static_cast<int>(total - MNL_ALIGN(payload));
  for (const auto* a = reinterpret_cast<const nlattr*>(p); mnl_attr_ok(a, left);
       a = mnl_attr_next(a)) {
    left -= static_cast<int>(MNL_ALIGN(a->nla_len));
    if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG &&
        mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0) {
      return mnl_attr_get_str(a);
    }
  }
  return "";
}

Status NftnlTables::read_acks(const Batch& batch, uint32_t first_seq,
                              const std::vector<size_t>& op_of_msg) {
  // The kernel processes the whole batch inside sendmsg and then queues an error for each
  // refused message, the ack of the last one (the only one with NLM_F_ACK) and, when the
  // commit itself fails, an error for the BATCH_BEGIN message. After an error the rest is
  // drained without waiting.
  struct Failure {
    size_t index;  // the op; ops().size() for the batch as a whole
    int err;
    std::string extack;
  };
  const size_t n = batch.ops().size();
  const size_t msgs = op_of_msg.size();
  bool last_acked = false;
  std::vector<Failure> failures;
  std::vector<char> buf(256 * 1024);  // without CAP_ACK an ack copies the request (<= 64 KiB)
  int fd = mnl_socket_get_fd(nl_);
  while (!last_acked) {
    pollfd pfd{fd, POLLIN, 0};
    int r = poll(&pfd, 1, failures.empty() ? 10000 : 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::io("wait for the kernel's answer to an nftables batch");
    if (r == 0) {
      if (!failures.empty()) break;
      return Status::timeout("no answer from the kernel within 10s to an nftables batch for " +
                             batch.table() + " (" + std::to_string(msgs) + " messages)");
    }
    ssize_t len = mnl_socket_recvfrom(nl_, buf.data(), buf.size());
    if (len < 0 && errno == EINTR) continue;
    if (len < 0) {
      // ENOBUFS: acks were dropped; whether the batch was applied is unknown.
      return Status::io("read the kernel's answers to an nftables batch for table " +
                        batch.table() + " (outcome unknown)");
    }
    const auto* nlh = reinterpret_cast<const nlmsghdr*>(buf.data());
    int left = static_cast<int>(len);
    for (; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left)) {
      if (nlh->nlmsg_type != NLMSG_ERROR || nlh->nlmsg_pid != portid_) continue;
      if (mnl_nlmsg_get_payload_len(nlh) < sizeof(nlmsgerr)) continue;
      const auto* e = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
      // Unsigned distance from BATCH_BEGIN, so a wrapped sequence number still works.
      const uint32_t d = nlh->nlmsg_seq - first_seq;
      if (d > msgs + 1) continue;  // an older batch's stray ack
      const bool whole = d == 0 || d == msgs + 1;
      if (d == msgs) last_acked = true;
      if (e->error != 0) {
        failures.push_back(
            Failure{whole ? n : op_of_msg[d - 1], -e->error, ack_extack_text(nlh, nlh->nlmsg_len)});
      }
    }
  }
  if (failures.empty()) return Status::ok();
  // Report the first refused operation; a commit-level error only when no operation failed.
  const Failure* first = &failures[0];
  for (const Failure& f : failures) {
    if (f.index < first->index) first = &f;
  }
  std::string what = first->index < n
                         ? batch.describe(first->index)
                         : "commit nftables batch for table " +
                               std::string(family_name(batch.family())) + " " + batch.table();
  Status s = kernel_error(what, first->err, first->extack);
  if (failures.size() > 1) {
    s = Status(s.code(),
               s.message() + " (and " + std::to_string(failures.size() - 1) +
                   " more refused operations; nothing was applied)",
               s.os_errno());
  }
  return s;
}

}  // namespace skiff::nft
