#include "netagent/nft/nft.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>

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

bool data_reg(Reg r) { return r >= Reg::k1 && r <= Reg::k4; }

Status check_data(const char* what, const Bytes& b) {
  if (b.empty() || b.size() > 16) {
    return Status::invalid(std::string(what) + " is " + std::to_string(b.size()) +
                           " bytes; a register holds 1..16");
  }
  return Status::ok();
}

Status check_expr(const Expr& e) {
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
    bool jumps = v->code == VerdictCode::kJump || v->code == VerdictCode::kGoto;
    if (jumps) return check_name("jump target chain", v->chain);
    if (!v->chain.empty()) return Status::invalid("a chain name on a verdict that does not jump");
  }
  return Status::ok();
}

Status check_op(const Batch::Op& op) {
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
        if (Status s = check_expr(e); !s) return s.with_context(to_string(e));
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
using ExprPtr = std::unique_ptr<nftnl_expr, ExprDeleter>;

// Returns null only when libnftnl is out of memory.
ExprPtr build_expr(const Expr& e) {
  struct Visitor {
    ExprPtr alloc(const char* name) const { return ExprPtr(nftnl_expr_alloc(name)); }
    ExprPtr operator()(const PayloadLoad& p) const {
      ExprPtr x = alloc("payload");
      if (!x) return x;
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_PAYLOAD_DREG, static_cast<uint32_t>(p.dreg));
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_PAYLOAD_BASE, static_cast<uint32_t>(p.base));
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_PAYLOAD_OFFSET, p.offset);
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_PAYLOAD_LEN, p.len);
      return x;
    }
    ExprPtr operator()(const Bitwise& b) const {
      ExprPtr x = alloc("bitwise");
      if (!x) return x;
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_BITWISE_SREG, static_cast<uint32_t>(b.sreg));
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_BITWISE_DREG, static_cast<uint32_t>(b.dreg));
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
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_CMP_SREG, static_cast<uint32_t>(c.sreg));
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_CMP_OP, static_cast<uint32_t>(c.op));
      nftnl_expr_set(x.get(), NFTNL_EXPR_CMP_DATA, c.data.data(),
                     static_cast<uint32_t>(c.data.size()));
      return x;
    }
    ExprPtr operator()(const MetaLoad& m) const {
      ExprPtr x = alloc("meta");
      if (!x) return x;
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_META_KEY, static_cast<uint32_t>(m.key));
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_META_DREG, static_cast<uint32_t>(m.dreg));
      return x;
    }
    ExprPtr operator()(const Masquerade&) const { return alloc("masq"); }
    ExprPtr operator()(const Counter&) const { return alloc("counter"); }
    ExprPtr operator()(const Verdict& v) const {
      ExprPtr x = alloc("immediate");
      if (!x) return x;
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
      nftnl_expr_set_u32(x.get(), NFTNL_EXPR_IMM_VERDICT, static_cast<uint32_t>(v.code));
      if (!v.chain.empty()) nftnl_expr_set_str(x.get(), NFTNL_EXPR_IMM_CHAIN, v.chain.c_str());
      return x;
    }
  };
  return std::visit(Visitor{}, e);
}

// Appends op's message at `buf` (which has kMaxMessage bytes free); returns its length or 0 when
// libnftnl could not allocate.
size_t encode_op(char* buf, const Batch& batch, const Batch::Op& op, uint32_t seq) {
  const uint16_t family = static_cast<uint16_t>(batch.family());
  const std::string& table = batch.table();
  nlmsghdr* nlh = nullptr;
  switch (op.kind) {
    case Batch::Kind::kAddTable:
    case Batch::Kind::kDeleteTable: {
      std::unique_ptr<nftnl_table, TableDeleter> t(nftnl_table_alloc());
      if (!t) return 0;
      nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, table.c_str());
      nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, family);
      bool add = op.kind == Batch::Kind::kAddTable;
      // NLM_F_CREATE without NLM_F_EXCL: an existing table is kept, like `nft add table`.
      nlh = nftnl_table_nlmsg_build_hdr(buf, add ? NFT_MSG_NEWTABLE : NFT_MSG_DELTABLE, family,
                                        (add ? NLM_F_CREATE : 0) | NLM_F_ACK, seq);
      nftnl_table_nlmsg_build_payload(nlh, t.get());
      break;
    }
    case Batch::Kind::kAddChain:
    case Batch::Kind::kDeleteChain: {
      std::unique_ptr<nftnl_chain, ChainDeleter> c(nftnl_chain_alloc());
      if (!c) return 0;
      nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table.c_str());
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
      nlh = nftnl_chain_nlmsg_build_hdr(buf, add ? NFT_MSG_NEWCHAIN : NFT_MSG_DELCHAIN, family,
                                        (add ? NLM_F_CREATE : 0) | NLM_F_ACK, seq);
      nftnl_chain_nlmsg_build_payload(nlh, c.get());
      break;
    }
    case Batch::Kind::kFlushChain:
    case Batch::Kind::kAddRule: {
      std::unique_ptr<nftnl_rule, RuleDeleter> r(nftnl_rule_alloc());
      if (!r) return 0;
      nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table.c_str());
      nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, op.chain.name.c_str());
      nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, family);
      if (op.kind == Batch::Kind::kFlushChain) {
        // DELRULE naming only the chain deletes all its rules (what `nft flush chain` sends).
        nlh = nftnl_rule_nlmsg_build_hdr(buf, NFT_MSG_DELRULE, family, NLM_F_ACK, seq);
        nftnl_rule_nlmsg_build_payload(nlh, r.get());
        break;
      }
      for (const Expr& e : op.rule.exprs) {
        ExprPtr x = build_expr(e);
        if (!x) return 0;
        nftnl_rule_add_expr(r.get(), x.release());  // the rule owns it now
      }
      if (!op.rule.comment.empty()) {
        std::unique_ptr<nftnl_udata_buf, UdataDeleter> ud(
            nftnl_udata_buf_alloc(NFTNL_UDATA_COMMENT_MAXLEN + 16));
        if (!ud) return 0;
        nftnl_udata_put_strz(ud.get(), NFTNL_UDATA_RULE_COMMENT, op.rule.comment.c_str());
        nftnl_rule_set_data(r.get(), NFTNL_RULE_USERDATA, nftnl_udata_buf_data(ud.get()),
                            nftnl_udata_buf_len(ud.get()));
      }
      nlh = nftnl_rule_nlmsg_build_hdr(buf, NFT_MSG_NEWRULE, family,
                                       NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK, seq);
      nftnl_rule_nlmsg_build_payload(nlh, r.get());
      break;
    }
  }
  return nlh ? nlh->nlmsg_len : 0;
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
  if (std::holds_alternative<Masquerade>(e)) return "[ masq ]";
  if (std::holds_alternative<Counter>(e)) return "[ counter ]";
  const auto& v = std::get<Verdict>(e);
  return std::string("[ immediate reg verdict ") + verdict_name(v.code) +
         (v.chain.empty() ? "" : " " + v.chain) + " ]";
}

std::vector<Expr> match_ipv4(IpField field, const Ipv4Prefix& prefix, bool negate) {
  // Offsets of saddr/daddr in the IPv4 header. The whole address is loaded and masked (nft
  // itself loads fewer bytes for byte-aligned prefixes; the result is the same).
  std::vector<Expr> out;
  out.push_back(
      PayloadLoad{PayloadBase::kNetwork, field == IpField::kSaddr ? 12u : 16u, 4, Reg::k1});
  if (prefix.length < 32) out.push_back(Bitwise{Reg::k1, Reg::k1, be32(prefix.mask()), be32(0)});
  out.push_back(Cmp{negate ? CmpOp::kNeq : CmpOp::kEq, Reg::k1, be32(prefix.network)});
  return out;
}

// ---- Batch ----

Batch::Batch(Family family, std::string table) : family_(family), table_(std::move(table)) {}

Batch& Batch::add_table() {
  ops_.push_back(Op{Kind::kAddTable, {}, {}});
  return *this;
}

Batch& Batch::delete_table() {
  ops_.push_back(Op{Kind::kDeleteTable, {}, {}});
  return *this;
}

Batch& Batch::add_chain(Chain chain) {
  ops_.push_back(Op{Kind::kAddChain, std::move(chain), {}});
  return *this;
}

Batch& Batch::flush_chain(std::string chain) {
  ops_.push_back(Op{Kind::kFlushChain, Chain{std::move(chain), std::nullopt}, {}});
  return *this;
}

Batch& Batch::delete_chain(std::string chain) {
  ops_.push_back(Op{Kind::kDeleteChain, Chain{std::move(chain), std::nullopt}, {}});
  return *this;
}

Batch& Batch::add_rule(std::string chain, Rule rule) {
  ops_.push_back(Op{Kind::kAddRule, Chain{std::move(chain), std::nullopt}, std::move(rule)});
  return *this;
}

std::string Batch::describe(size_t i) const {
  if (i >= ops_.size()) return "operation " + std::to_string(i) + " (out of range)";
  const Op& op = ops_[i];
  std::string t = std::string(family_name(family_)) + " " + table_;
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
  }
  return "?";
}

Result<std::vector<uint8_t>> Batch::encode(uint32_t first_seq) const {
  if (Status s = check_name("table", table_); !s) return s;
  for (size_t i = 0; i < ops_.size(); ++i) {
    if (Status s = check_op(ops_[i]); !s) return s.with_context(describe(i));
  }
  std::vector<uint8_t> buf;
  size_t used = 0;
  auto room = [&]() {
    buf.resize(used + kMaxMessage);
    return reinterpret_cast<char*>(buf.data() + used);
  };
  uint32_t seq = first_seq;
  used += nftnl_batch_begin(room(), seq++)->nlmsg_len;
  for (size_t i = 0; i < ops_.size(); ++i) {
    size_t n = encode_op(room(), *this, ops_[i], seq++);
    if (n == 0) return Status::internal(describe(i) + ": libnftnl out of memory");
    used += n;
  }
  used += nftnl_batch_end(room(), seq)->nlmsg_len;
  buf.resize(used);
  return buf;
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
  next_seq_ += static_cast<uint32_t>(batch.ops().size() + 2);
  Result<std::vector<uint8_t>> msg = batch.encode(first_seq);
  if (!msg) return msg.status();
  const std::string what = "nftables batch for table " + std::string(family_name(batch.family())) +
                           " " + batch.table() + " (" + std::to_string(batch.ops().size()) +
                           " operations)";
  if (Status s = ensure_buffers(msg.value().size(), batch.ops().size()); !s) {
    return s.with_context(what);
  }
  if (mnl_socket_sendto(nl_, msg.value().data(), msg.value().size()) < 0) {
    return Status::io("send " + what);
  }
  return read_acks(batch, first_seq);
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

Status NftnlTables::read_acks(const Batch& batch, uint32_t first_seq) {
  // The kernel processes the whole batch inside sendmsg and queues one ack per operation (each
  // carries NLM_F_ACK), an error for each refused one, and, when the commit itself fails, an
  // error for the BATCH_BEGIN message. After an error the rest is drained without waiting.
  struct Failure {
    size_t index;  // ops().size() for the batch as a whole
    int err;
    std::string extack;
  };
  const size_t n = batch.ops().size();
  std::vector<bool> acked(n, false);
  size_t acked_count = 0;
  std::vector<Failure> failures;
  std::vector<char> buf(256 * 1024);  // without CAP_ACK an ack copies the request (<= 64 KiB)
  int fd = mnl_socket_get_fd(nl_);
  while (acked_count < n) {
    pollfd pfd{fd, POLLIN, 0};
    int r = poll(&pfd, 1, failures.empty() ? 10000 : 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::io("wait for the kernel's answer to an nftables batch");
    if (r == 0) {
      if (!failures.empty()) break;
      return Status::timeout("no answer from the kernel within 10s to an nftables batch for " +
                             batch.table() + " (" + std::to_string(n - acked_count) + " of " +
                             std::to_string(n) + " operations unacknowledged)");
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
      if (d > n + 1) continue;  // an older batch's stray ack
      const size_t index = d == 0 || d == n + 1 ? n : d - 1;
      if (index < n && !acked[index]) {
        acked[index] = true;
        ++acked_count;
      }
      if (e->error != 0)
        failures.push_back(Failure{index, -e->error, ack_extack_text(nlh, nlh->nlmsg_len)});
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
