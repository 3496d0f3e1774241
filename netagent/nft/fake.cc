#include "netagent/nft/fake.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <unordered_map>

namespace skiff::nft {

// ---------------------------------------------------------------- state

// Chains and sets are shared between a state and its copy until one of them changes them
// (copy on write), so a commit copies pointers, not the ruleset. References are counted as
// they are made, so deleting a chain or set does not scan the ruleset.
struct FakeNftTables::State {
  struct ChainState {
    uint64_t seq;  // creation order, for printing
    Chain chain;
    std::vector<Rule> rules;
  };
  struct ElementState {
    uint64_t seq;  // insertion order, for printing
    Element element;
  };
  struct SetState {
    uint64_t seq;
    Set set;
    std::map<Bytes, ElementState> elements;  // by the flat key
    uint64_t next_seq = 0;
  };
  bool exists = false;
  uint64_t next_seq = 0;
  std::unordered_map<std::string, std::shared_ptr<ChainState>> chains;
  std::unordered_map<std::string, std::shared_ptr<SetState>> sets;
  // Jumps/gotos (rules of other chains, map elements) to a chain; rules using a set.
  std::unordered_map<std::string, int> chain_refs;
  std::unordered_map<std::string, int> set_refs;

  const ChainState* chain(const std::string& name) const {
    auto it = chains.find(name);
    return it == chains.end() ? nullptr : it->second.get();
  }
  const SetState* set(const std::string& name) const {
    auto it = sets.find(name);
    return it == sets.end() ? nullptr : it->second.get();
  }
  // For changing: a private copy if another state shares it.
  ChainState* mutable_chain(const std::string& name) {
    auto it = chains.find(name);
    if (it == chains.end()) return nullptr;
    if (it->second.use_count() > 1) it->second = std::make_shared<ChainState>(*it->second);
    return it->second.get();
  }
  SetState* mutable_set(const std::string& name) {
    auto it = sets.find(name);
    if (it == sets.end()) return nullptr;
    if (it->second.use_count() > 1) it->second = std::make_shared<SetState>(*it->second);
    return it->second.get();
  }
};

namespace {

using State = FakeNftTables::State;

Bytes flat(const std::vector<Bytes>& parts) {
  if (parts.size() == 1) return parts[0];
  Bytes out;
  for (const Bytes& p : parts) {
    out.insert(out.end(), p.begin(), p.end());
    out.resize(out.size() + ((4 - p.size() % 4) % 4), 0);
  }
  return out;
}

bool jumps(const Verdict& v) {
  return v.code == VerdictCode::kJump || v.code == VerdictCode::kGoto;
}

// Calls f(target) for every chain a rule jumps or goes to.
template <typename F>
void rule_targets(const Rule& r, F f) {
  for (const Expr& e : r.exprs) {
    if (const auto* v = std::get_if<Verdict>(&e)) {
      if (jumps(*v)) f(v->chain);
    } else if (const auto* iv = std::get_if<InlineVmap>(&e)) {
      for (const auto& [k, v] : iv->entries) {
        if (jumps(v)) f(v.chain);
      }
    }
  }
}

// Calls f(set) for every named set a rule uses.
template <typename F>
void rule_sets(const Rule& r, F f) {
  for (const Expr& e : r.exprs) {
    if (const auto* l = std::get_if<Lookup>(&e)) f(l->set);
    if (const auto* d = std::get_if<Dynset>(&e)) f(d->set);
  }
}

void count_rule(State& st, const Rule& r, int delta) {
  rule_targets(r, [&](const std::string& t) { st.chain_refs[t] += delta; });
  rule_sets(r, [&](const std::string& s) { st.set_refs[s] += delta; });
}

void count_element(State& st, const Element& e, int delta) {
  if (const auto* v = std::get_if<Verdict>(&e.data); v && jumps(*v)) {
    st.chain_refs[v->chain] += delta;
  }
}

bool same_definition(const Set& a, const Set& b) {
  return a.key == b.key && a.data == b.data && a.data_concat == b.data_concat &&
         a.interval == b.interval && a.timeout == b.timeout && a.dynamic == b.dynamic &&
         a.constant == b.constant;
}

// The errno the kernel gives for a verdict's target, or 0.
int check_target(const State& st, const Verdict& v) {
  if (!jumps(v)) return 0;
  const State::ChainState* c = st.chain(v.chain);
  if (!c) return ENOENT;
  if (c->chain.base) return EOPNOTSUPP;  // the kernel refuses jumps to base chains
  return 0;
}

int check_element_fit(const Set& set, const Element& e, bool with_data) {
  if (e.key.size() != set.key.size()) return EINVAL;
  for (size_t i = 0; i < e.key.size(); ++i) {
    if (e.key[i].size() != set_type_len(set.key[i])) return EINVAL;
  }
  if (!with_data) return 0;
  if (!set.data_concat.empty()) {
    size_t len = 0;
    for (SetType t : set.data_concat) len += (set_type_len(t) + 3) & ~3u;
    const auto* b = std::get_if<Bytes>(&e.data);
    return b && b->size() == len ? 0 : EINVAL;
  }
  if (!set.data) return std::holds_alternative<std::monostate>(e.data) ? 0 : EINVAL;
  if (*set.data == SetType::kVerdict) return std::holds_alternative<Verdict>(e.data) ? 0 : EINVAL;
  const auto* b = std::get_if<Bytes>(&e.data);
  return b && b->size() == set_type_len(*set.data) ? 0 : EINVAL;
}

// Applies one op to st; returns the errno the kernel would give, or 0.
int apply(State& st, const Batch::Op& op) {
  using K = Batch::Kind;
  if (op.kind == K::kAddTable) {
    st.exists = true;
    return 0;
  }
  if (!st.exists) return ENOENT;
  switch (op.kind) {
    case K::kAddTable:
      return 0;
    case K::kDeleteTable:
      st = State{};
      return 0;
    case K::kAddChain: {
      const State::ChainState* c = st.chain(op.chain.name);
      if (!c) {
        st.chains[op.chain.name] =
            std::make_shared<State::ChainState>(State::ChainState{st.next_seq++, op.chain, {}});
        return 0;
      }
      const auto& have = c->chain.base;
      const auto& want = op.chain.base;
      if (!want) return 0;  // adding a regular chain's name again keeps what is there
      if (!have) return EOPNOTSUPP;
      if (have->type != want->type) return EOPNOTSUPP;
      if (have->hook != want->hook || have->priority != want->priority) return EEXIST;
      if (have->policy != want->policy) st.mutable_chain(op.chain.name)->chain.base = want;
      return 0;
    }
    case K::kFlushChain: {
      State::ChainState* c = st.mutable_chain(op.chain.name);
      if (!c) return ENOENT;
      for (const Rule& r : c->rules) count_rule(st, r, -1);
      c->rules.clear();
      return 0;
    }
    case K::kDeleteChain: {
      const State::ChainState* c = st.chain(op.chain.name);
      if (!c) return ENOENT;
      // Its own rules go with it; what remains refers to it from elsewhere.
      int own = 0;
      for (const Rule& r : c->rules) {
        rule_targets(r, [&](const std::string& t) { own += t == op.chain.name; });
      }
      if (st.chain_refs[op.chain.name] - own > 0) return EBUSY;
      for (const Rule& r : c->rules) count_rule(st, r, -1);
      st.chains.erase(op.chain.name);
      return 0;
    }
    case K::kAddRule: {
      if (!st.chain(op.chain.name)) return ENOENT;
      int err = 0;
      rule_targets(op.rule, [&](const std::string& t) {
        if (!err) err = check_target(st, Verdict{VerdictCode::kJump, t});
      });
      if (err) return err;
      for (const Expr& e : op.rule.exprs) {
        if (const auto* l = std::get_if<Lookup>(&e)) {
          const State::SetState* s = st.set(l->set);
          if (!s) return ENOENT;
          if (l->dreg) {
            if (!s->set.is_map()) return EINVAL;
            bool vmap = s->set.data == SetType::kVerdict;
            if (vmap != (*l->dreg == Reg::kVerdict)) return EINVAL;
          }
        } else if (const auto* d = std::get_if<Dynset>(&e)) {
          const State::SetState* s = st.set(d->set);
          if (!s) return ENOENT;
          if (!s->set.dynamic) return EOPNOTSUPP;
          if (d->timeout_ms && !s->set.timeout) return EINVAL;
        }
      }
      count_rule(st, op.rule, +1);
      st.mutable_chain(op.chain.name)->rules.push_back(op.rule);
      return 0;
    }
    case K::kAddSet: {
      const State::SetState* s = st.set(op.set.name);
      if (s) return same_definition(s->set, op.set) ? 0 : EEXIST;
      st.sets[op.set.name] =
          std::make_shared<State::SetState>(State::SetState{st.next_seq++, op.set, {}, 0});
      return 0;
    }
    case K::kDeleteSet: {
      const State::SetState* s = st.set(op.set.name);
      if (!s) return ENOENT;
      if (st.set_refs[op.set.name] > 0) return EBUSY;
      for (const auto& [k, e] : s->elements) count_element(st, e.element, -1);
      st.sets.erase(op.set.name);
      return 0;
    }
    case K::kFlushSet: {
      State::SetState* s = st.mutable_set(op.set.name);
      if (!s) return ENOENT;
      for (const auto& [k, e] : s->elements) count_element(st, e.element, -1);
      s->elements.clear();
      return 0;
    }
    case K::kAddElements: {
      State::SetState* s = st.mutable_set(op.set.name);
      if (!s) return ENOENT;
      for (const Element& e : op.elements) {
        if (int err = check_element_fit(s->set, e, true)) return err;
        if (e.timeout_ms && !s->set.timeout) return EINVAL;
        if (const auto* v = std::get_if<Verdict>(&e.data)) {
          if (int err = check_target(st, *v)) return err;
        }
        Bytes key = flat(e.key);
        auto it = s->elements.find(key);
        if (it != s->elements.end()) {
          if (it->second.element.data != e.data) return EEXIST;
          continue;
        }
        count_element(st, e, +1);
        s->elements.emplace(std::move(key), State::ElementState{s->next_seq++, e});
      }
      return 0;
    }
    case K::kDeleteElements: {
      State::SetState* s = st.mutable_set(op.set.name);
      if (!s) return ENOENT;
      for (const Element& e : op.elements) {
        if (int err = check_element_fit(s->set, e, false)) return err;
        auto it = s->elements.find(flat(e.key));
        if (it == s->elements.end()) return ENOENT;
        count_element(st, it->second.element, -1);
        s->elements.erase(it);
      }
      return 0;
    }
  }
  return EINVAL;
}

// Expressions whose kernel validation restricts the base chains that may reach them.
enum Restricted : uint32_t { kDnat = 1, kSnat = 2, kMasq = 4, kReject = 8 };

uint32_t hook_bit(Hook h) { return 1u << static_cast<uint32_t>(h); }

// Whether a base chain may reach expressions of kinds `kinds` (the kernel's *_validate: nat
// needs a nat chain on the right hooks, reject certain hooks).
bool allowed(uint32_t kinds, const BaseChain& base) {
  const uint32_t hook = hook_bit(base.hook);
  const bool nat = base.type == "nat";
  if ((kinds & kDnat) &&
      !(nat && (hook & (hook_bit(Hook::kPrerouting) | hook_bit(Hook::kOutput))))) {
    return false;
  }
  if ((kinds & kSnat) &&
      !(nat && (hook & (hook_bit(Hook::kPostrouting) | hook_bit(Hook::kInput))))) {
    return false;
  }
  if ((kinds & kMasq) && !(nat && (hook & hook_bit(Hook::kPostrouting)))) return false;
  if ((kinds & kReject) && !(hook & (hook_bit(Hook::kInput) | hook_bit(Hook::kForward) |
                                     hook_bit(Hook::kOutput) | hook_bit(Hook::kPrerouting)))) {
    return false;
  }
  return true;
}

// The kernel's table validation: EOPNOTSUPP when a restricted expression is reachable (through
// jumps, gotos, inline vmaps, verdict-map elements) from a base chain it cannot run in, EMLINK
// for a jump cycle (the kernel finds cycles by its jump depth limit); 0 when valid. One
// depth-first pass computing, per chain, the restricted kinds it reaches.
int validate(const State& st) {
  struct Node {
    int color = 0;  // 0 new, 1 on the stack, 2 done
    uint32_t kinds = 0;
  };
  std::unordered_map<const State::ChainState*, Node> nodes;
  nodes.reserve(st.chains.size());
  int err = 0;
  std::function<uint32_t(const State::ChainState*)> visit = [&](const State::ChainState* c) {
    Node& n = nodes[c];
    if (n.color == 2) return n.kinds;
    if (n.color == 1) {
      err = EMLINK;
      return 0u;
    }
    n.color = 1;
    uint32_t kinds = 0;
    auto follow = [&](const std::string& target) {
      if (err) return;
      if (const State::ChainState* t = st.chain(target)) kinds |= visit(t);
    };
    for (const Rule& r : c->rules) {
      for (const Expr& e : r.exprs) {
        if (const auto* nat = std::get_if<Nat>(&e))
          kinds |= nat->type == NatType::kDnat ? kDnat : kSnat;
        if (std::holds_alternative<Masquerade>(e)) kinds |= kMasq;
        if (std::holds_alternative<Reject>(e)) kinds |= kReject;
        const auto* l = std::get_if<Lookup>(&e);
        if (l && l->dreg && *l->dreg == Reg::kVerdict) {
          if (const State::SetState* s = st.set(l->set)) {
            for (const auto& [k, el] : s->elements) {
              if (const auto* v = std::get_if<Verdict>(&el.element.data); v && jumps(*v)) {
                follow(v->chain);
              }
            }
          }
        }
      }
      rule_targets(r, follow);
    }
    Node& done = nodes[c];  // the map may have rehashed
    done.color = 2;
    done.kinds = kinds;
    return kinds;
  };
  for (const auto& [name, c] : st.chains) {
    uint32_t kinds = visit(c.get());
    if (err) return err;
    if (c->chain.base && !allowed(kinds, *c->chain.base)) return EOPNOTSUPP;
  }
  return 0;
}

}  // namespace

FakeNftTables::FakeNftTables(Family family, std::string table)
    : family_(family), table_(std::move(table)), state_(std::make_shared<State>()) {}

Status FakeNftTables::commit(const Batch& batch) {
  if (!fail_next_.is_ok()) {
    Status s = std::move(fail_next_);
    fail_next_ = Status::ok();
    return s;
  }
  if (batch.family() != family_ || batch.table() != table_) {
    return Status::invalid("fake nftables models table " + std::string(family_name(family_)) + " " +
                           table_ + ", not " + family_name(batch.family()) + " " + batch.table());
  }
  if (batch.empty()) return Status::ok();
  // What the kernel would refuse before sending (names, register data, element fit).
  if (Status s = batch.validate(); !s) return s;
  auto next = std::make_shared<State>(*state_);
  for (size_t i = 0; i < batch.ops().size(); ++i) {
    if (int err = apply(*next, batch.ops()[i])) return kernel_error(batch.describe(i), err, "");
  }
  if (validate(*next) != 0) {
    // The kernel validates the table at commit and, if that fails, replays the batch
    // validating after every rule and element, blaming the first that breaks it. Only this
    // (rare) path pays for validating after every op.
    State replay(*state_);
    for (size_t i = 0; i < batch.ops().size(); ++i) {
      (void)apply(replay, batch.ops()[i]);
      if (int err = validate(replay)) return kernel_error(batch.describe(i), err, "");
    }
  }
  state_ = std::move(next);
  committed_.push_back(batch);
  return Status::ok();
}

bool FakeNftTables::table_exists() const { return state_->exists; }

bool FakeNftTables::has_chain(const std::string& name) const {
  return state_->chain(name) != nullptr;
}

bool FakeNftTables::has_set(const std::string& name) const { return state_->set(name) != nullptr; }

namespace {

template <typename T>
std::vector<const T*> by_seq(const std::unordered_map<std::string, std::shared_ptr<T>>& m) {
  std::vector<const T*> v;
  v.reserve(m.size());
  for (const auto& [name, p] : m) v.push_back(p.get());
  std::sort(v.begin(), v.end(), [](const T* a, const T* b) { return a->seq < b->seq; });
  return v;
}

std::vector<Element> ordered_elements(const State::SetState& s) {
  std::vector<const State::ElementState*> v;
  for (const auto& [k, e] : s.elements) v.push_back(&e);
  std::sort(v.begin(), v.end(), [](auto* a, auto* b) { return a->seq < b->seq; });
  std::vector<Element> out;
  out.reserve(v.size());
  for (const auto* e : v) out.push_back(e->element);
  return out;
}

}  // namespace

std::vector<std::string> FakeNftTables::sets() const {
  std::vector<std::string> out;
  for (const auto* s : by_seq(state_->sets)) out.push_back(s->set.name);
  return out;
}

std::vector<Rule> FakeNftTables::rules(const std::string& chain) const {
  const State::ChainState* c = state_->chain(chain);
  return c ? c->rules : std::vector<Rule>{};
}

std::vector<Element> FakeNftTables::elements(const std::string& set) const {
  const State::SetState* s = state_->set(set);
  return s ? ordered_elements(*s) : std::vector<Element>{};
}

// ---------------------------------------------------------------- printing

namespace {

std::string hex_bytes(const Bytes& b) {
  std::string s = "0x";
  char buf[3];
  for (uint8_t c : b) {
    std::snprintf(buf, sizeof buf, "%02x", c);
    s += buf;
  }
  return s;
}

uint32_t be_u32(const Bytes& b) {
  uint32_t v = 0;
  for (uint8_t c : b) v = (v << 8) | c;
  return v;
}

uint32_t host_u32(const Bytes& b) {
  uint32_t v = 0;
  std::memcpy(&v, b.data(), std::min<size_t>(4, b.size()));
  return v;
}

std::string ipv4_text(const Bytes& b) {
  if (b.size() != 4) return hex_bytes(b);
  char buf[20];
  std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
  return buf;
}

std::string proto_text(uint32_t p) {
  switch (p) {
    case 1:
      return "icmp";
    case 6:
      return "tcp";
    case 17:
      return "udp";
    case 132:
      return "sctp";
  }
  return std::to_string(p);
}

std::string mark_text(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

std::string value_text(SetType t, const Bytes& b) {
  switch (t) {
    case SetType::kIpv4Addr:
      return ipv4_text(b);
    case SetType::kInetProto:
      return b.size() == 1 ? proto_text(b[0]) : hex_bytes(b);
    case SetType::kInetService:
      return b.size() == 2 ? std::to_string(be_u32(b)) : hex_bytes(b);
    case SetType::kMark:
      return b.size() == 4 ? mark_text(host_u32(b)) : hex_bytes(b);
    case SetType::kInteger:
      return b.size() == 4 ? std::to_string(host_u32(b)) : hex_bytes(b);
    case SetType::kVerdict:
      break;
  }
  return hex_bytes(b);
}

std::string verdict_text(const Verdict& v) {
  switch (v.code) {
    case VerdictCode::kAccept:
      return "accept";
    case VerdictCode::kDrop:
      return "drop";
    case VerdictCode::kReturn:
      return "return";
    case VerdictCode::kContinue:
      return "continue";
    case VerdictCode::kJump:
      return "jump " + v.chain;
    case VerdictCode::kGoto:
      return "goto " + v.chain;
  }
  return "?";
}

// nft's time format: 1d2h3m4s5ms.
std::string time_text(uint64_t ms) {
  if (ms == 0) return "0s";
  std::string s;
  const struct {
    uint64_t unit;
    const char* name;
  } kUnits[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}, {1, "ms"}};
  for (const auto& u : kUnits) {
    if (ms >= u.unit) {
      s += std::to_string(ms / u.unit) + u.name;
      ms %= u.unit;
    }
  }
  return s;
}

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

// One value loaded into registers, as nft names it.
struct Load {
  enum Kind {
    kAddr,
    kThDport,
    kThSport,
    kL4proto,
    kMark,
    kNumgen,
    kCtState,
    kCtStatus,
    kCtMark,
    kFibType
  };
  Kind kind;
  std::string text;
  Reg reg;
};

uint32_t reg_index32(Reg r) {
  auto v = static_cast<uint32_t>(r);
  if (v >= 8) return v - 8;
  return (v - 1) * 4;  // NFT_REG_1..4 start at 32-bit registers 0, 4, 8, 12
}

std::optional<Load> parse_load(const Expr& e) {
  if (const auto* p = std::get_if<PayloadLoad>(&e)) {
    if (p->base == PayloadBase::kNetwork && p->len == 4 && (p->offset == 12 || p->offset == 16)) {
      return Load{Load::kAddr, p->offset == 12 ? "ip saddr" : "ip daddr", p->dreg};
    }
    if (p->base == PayloadBase::kTransport && p->len == 2 && p->offset == 2) {
      return Load{Load::kThDport, "th dport", p->dreg};
    }
    if (p->base == PayloadBase::kTransport && p->len == 2 && p->offset == 0) {
      return Load{Load::kThSport, "th sport", p->dreg};
    }
    return std::nullopt;
  }
  if (const auto* m = std::get_if<MetaLoad>(&e)) {
    if (m->key == MetaKey::kL4Proto) return Load{Load::kL4proto, "meta l4proto", m->dreg};
    if (m->key == MetaKey::kMark) return Load{Load::kMark, "meta mark", m->dreg};
    return std::nullopt;
  }
  if (const auto* n = std::get_if<Numgen>(&e)) {
    std::string t = "numgen random mod " + std::to_string(n->modulus);
    if (n->offset) t += " offset " + std::to_string(n->offset);
    return Load{Load::kNumgen, t, n->dreg};
  }
  if (const auto* c = std::get_if<CtLoad>(&e)) {
    if (c->key == CtKey::kState) return Load{Load::kCtState, "ct state", c->dreg};
    if (c->key == CtKey::kMark) return Load{Load::kCtMark, "ct mark", c->dreg};
    if (c->key == CtKey::kStatus) return Load{Load::kCtStatus, "ct status", c->dreg};
    return std::nullopt;
  }
  if (const auto* f = std::get_if<Fib>(&e)) {
    if (f->result != FibResult::kAddrType) return std::nullopt;
    std::string t = "fib";
    if (f->flags & kFibSaddr) t += " saddr";
    if (f->flags & kFibDaddr) t += " daddr";
    if (f->flags & kFibMark) t += " . mark";
    if (f->flags & kFibIif) t += " . iif";
    if (f->flags & kFibOif) t += " . oif";
    return Load{Load::kFibType, t + " type", f->dreg};
  }
  return std::nullopt;
}

std::string ct_state_text(uint32_t bits) {
  static const struct {
    uint32_t bit;
    const char* name;
  } kBits[] = {{kCtStateInvalid, "invalid"},
               {kCtStateEstablished, "established"},
               {kCtStateRelated, "related"},
               {kCtStateNew, "new"},
               {kCtStateUntracked, "untracked"}};
  std::string s;
  for (const auto& b : kBits) {
    if (bits & b.bit) s += (s.empty() ? "" : ",") + std::string(b.name);
  }
  return s.empty() ? mark_text(bits) : s;
}

std::string ct_status_text(uint32_t bits) {
  static const struct {
    uint32_t bit;
    const char* name;
  } kBits[] = {{0x1, "expected"}, {0x2, "seen-reply"}, {0x4, "assured"}, {0x8, "confirmed"},
               {0x10, "snat"},    {0x20, "dnat"},      {0x200, "dying"}};
  std::string s;
  for (const auto& b : kBits) {
    if (bits & b.bit) s += (s.empty() ? "" : ",") + std::string(b.name);
  }
  return s.empty() ? mark_text(bits) : s;
}

std::string fib_type_text(uint32_t t) {
  static const char* const kNames[] = {"unspec",    "unicast",     "local",
                                       "broadcast", "anycast",     "multicast",
                                       "blackhole", "unreachable", "prohibit"};
  return t < 9 ? kNames[t] : std::to_string(t);
}

std::string load_value_text(const Load& l, const Bytes& b) {
  switch (l.kind) {
    case Load::kAddr:
      return ipv4_text(b);
    case Load::kThDport:
    case Load::kThSport:
      return value_text(SetType::kInetService, b);
    case Load::kL4proto:
      return value_text(SetType::kInetProto, b);
    case Load::kMark:
    case Load::kCtMark:
      return value_text(SetType::kMark, b);
    case Load::kNumgen:
      return value_text(SetType::kInteger, b);
    case Load::kCtState:
      return ct_state_text(host_u32(b));
    case Load::kCtStatus:
      return ct_status_text(host_u32(b));
    case Load::kFibType:
      return fib_type_text(host_u32(b));
  }
  return hex_bytes(b);
}

const char* cmp_prefix(CmpOp op) {
  switch (op) {
    case CmpOp::kEq:
      return "";
    case CmpOp::kNeq:
      return "!= ";
    case CmpOp::kLt:
      return "< ";
    case CmpOp::kLte:
      return "<= ";
    case CmpOp::kGt:
      return "> ";
    case CmpOp::kGte:
      return ">= ";
  }
  return "? ";
}

int prefix_length(const Bytes& mask) {
  uint32_t m = be_u32(mask);
  int n = 0;
  while (n < 32 && (m & (0x80000000u >> n))) ++n;
  return (n == 32 ? 0xffffffffu : n == 0 ? 0u : ~((1u << (32 - n)) - 1)) == m ? n : -1;
}

std::string reject_text(const Reject& r) {
  if (r.type == RejectType::kTcpRst) return "reject with tcp reset";
  if (r.type == RejectType::kIcmpUnreach) {
    static const char* const kCodes[] = {"net-unreachable",  "host-unreachable", "prot-unreachable",
                                         "port-unreachable", "frag-needed",      "src-route-failed",
                                         "net-unknown",      "host-unknown",     "host-isolated",
                                         "net-prohibited",   "host-prohibited",  "net-unreachable",
                                         "host-unreachable", "admin-prohibited"};
    if (r.code == 3) return "reject";
    if (r.code < 14) return std::string("reject with icmp ") + kCodes[r.code];
    return "reject with icmp " + std::to_string(r.code);
  }
  static const char* const kIcmpx[] = {"no-route", "port-unreachable", "host-unreachable",
                                       "admin-prohibited"};
  if (r.code == 1) return "reject";
  return std::string("reject with icmpx ") + (r.code < 4 ? kIcmpx[r.code] : "?");
}

// Whether ex[at...] is loads, a map lookup into a data register and a nat reading it: `dnat ip
// to <key> map @m`.
bool nat_from_map_at(const std::vector<Expr>& ex, size_t at) {
  size_t j = at;
  while (j < ex.size() && parse_load(ex[j])) ++j;
  if (j == at || j + 1 >= ex.size()) return false;
  const auto* lk = std::get_if<Lookup>(&ex[j]);
  const auto* nat = std::get_if<Nat>(&ex[j + 1]);
  return lk && lk->dreg && *lk->dreg != Reg::kVerdict && nat &&
         reg_index32(nat->reg_addr) == reg_index32(*lk->dreg);
}

// Turns the expressions back into nft statements. Returns the statements; expressions it does
// not recognise become "<unknown: ...>".
std::vector<std::string> statements(const std::vector<Expr>& ex) {
  std::vector<std::string> out;
  size_t i = 0;
  // `meta l4proto tcp` before `dnat ip to ... th dport ... map @m`: nft elides the match and
  // names the port `tcp dport`.
  int dep_proto = -1;  // -1: none
  auto unknown = [&](size_t at) { out.push_back("<unknown: " + to_string(ex[at]) + ">"); };
  while (i < ex.size()) {
    const Expr& e = ex[i];
    // A chain of loads into consecutive registers (a concatenation) or a single load.
    if (std::optional<Load> first = parse_load(e)) {
      std::vector<Load> loads{*first};
      size_t j = i + 1;
      while (j < ex.size()) {
        std::optional<Load> next = parse_load(ex[j]);
        if (!next) break;
        // Every part skiff loads is at most 4 bytes: one 4-byte register each.
        if (reg_index32(next->reg) != reg_index32(loads.back().reg) + 1) break;
        loads.push_back(*next);
        ++j;
      }
      std::string keys;
      for (const Load& l : loads) {
        std::string text = l.text;
        if (dep_proto >= 0 && l.kind == Load::kThDport) text = proto_text(dep_proto) + " dport";
        keys += (keys.empty() ? "" : " . ") + text;
      }
      dep_proto = -1;
      const Expr* consumer = j < ex.size() ? &ex[j] : nullptr;
      if (loads.size() == 1 && consumer) {
        const Load& l = loads[0];
        if (const auto* c = std::get_if<Cmp>(consumer); c && c->sreg == l.reg) {
          // `meta l4proto tcp th dport 80` prints as `tcp dport 80`; `meta l4proto tcp` before
          // `reject with tcp reset` is its dependency, which nft does not print.
          if (l.kind == Load::kL4proto && c->op == CmpOp::kEq && c->data.size() == 1) {
            uint8_t proto = c->data[0];
            if (j + 2 < ex.size()) {
              std::optional<Load> th = parse_load(ex[j + 1]);
              const auto* thc = std::get_if<Cmp>(&ex[j + 2]);
              if (th && (th->kind == Load::kThDport || th->kind == Load::kThSport) && thc &&
                  thc->sreg == th->reg && (proto == kTcp || proto == kUdp || proto == kSctp)) {
                out.push_back(proto_text(proto) +
                              (th->kind == Load::kThDport ? " dport " : " sport ") +
                              cmp_prefix(thc->op) + load_value_text(*th, thc->data));
                i = j + 3;
                continue;
              }
            }
            if ((proto == kTcp || proto == kUdp || proto == kSctp) && nat_from_map_at(ex, j + 1)) {
              dep_proto = proto;
              i = j + 1;
              continue;
            }
            if (proto == kTcp && j + 1 < ex.size()) {
              const auto* rj = std::get_if<Reject>(&ex[j + 1]);
              if (rj && rj->type == RejectType::kTcpRst) {
                i = j + 1;  // the reject prints itself
                continue;
              }
            }
          }
          out.push_back(l.text + " " + cmp_prefix(c->op) + load_value_text(l, c->data));
          i = j + 1;
          continue;
        }
        if (const auto* b = std::get_if<Bitwise>(consumer); b && b->sreg == l.reg) {
          const Expr* after = j + 1 < ex.size() ? &ex[j + 1] : nullptr;
          const auto* c = after ? std::get_if<Cmp>(after) : nullptr;
          const auto* ms = after ? std::get_if<MetaSet>(after) : nullptr;
          bool xor_zero = host_u32(b->xor_bits) == 0;
          if (c && c->sreg == b->dreg && l.kind == Load::kAddr && xor_zero) {
            int len = prefix_length(b->mask);
            if (len >= 0) {
              out.push_back(l.text + " " + cmp_prefix(c->op) + ipv4_text(c->data) + "/" +
                            std::to_string(len));
              i = j + 2;
              continue;
            }
          }
          if (c && c->sreg == b->dreg && l.kind == Load::kCtState && xor_zero &&
              c->op == CmpOp::kNeq && host_u32(c->data) == 0) {
            out.push_back("ct state " + ct_state_text(host_u32(b->mask)));
            i = j + 2;
            continue;
          }
          if (c && c->sreg == b->dreg && l.kind == Load::kCtStatus && xor_zero &&
              c->op == CmpOp::kNeq && host_u32(c->data) == 0) {
            out.push_back("ct status " + ct_status_text(host_u32(b->mask)));
            i = j + 2;
            continue;
          }
          if (c && c->sreg == b->dreg && (l.kind == Load::kMark || l.kind == Load::kCtMark) &&
              xor_zero) {
            std::string op = c->op == CmpOp::kEq ? "== " : cmp_prefix(c->op);
            out.push_back(l.text + " & " + mark_text(host_u32(b->mask)) + " " + op +
                          mark_text(host_u32(c->data)));
            i = j + 2;
            continue;
          }
          if (ms && ms->sreg == b->dreg && l.kind == Load::kMark && ms->key == MetaKey::kMark &&
              b->mask.size() == 4) {
            uint32_t m = host_u32(b->mask), x = host_u32(b->xor_bits);
            std::string rhs;
            if (m == ~x) {
              rhs = "meta mark | " + mark_text(x);
            } else if (m == 0xffffffffu) {
              rhs = "meta mark ^ " + mark_text(x);
            } else if (x == 0) {
              rhs = "meta mark & " + mark_text(m);
            } else {
              rhs = "meta mark & " + mark_text(m) + " ^ " + mark_text(x);
            }
            out.push_back("meta mark set " + rhs);
            i = j + 2;
            continue;
          }
        }
      }
      if (consumer) {
        uint32_t r0 = reg_index32(loads[0].reg);
        if (const auto* lk = std::get_if<Lookup>(consumer); lk && reg_index32(lk->sreg) == r0) {
          if (!lk->dreg) {
            out.push_back(keys + (lk->invert ? " != @" : " @") + lk->set);
          } else if (*lk->dreg == Reg::kVerdict) {
            out.push_back(keys + " vmap @" + lk->set);
          } else if (nat_from_map_at(ex, i)) {
            const auto& nat = std::get<Nat>(ex[j + 1]);
            out.push_back(std::string(nat.type == NatType::kDnat ? "dnat" : "snat") + " ip to " +
                          keys + " map @" + lk->set);
            i = j + 2;
            continue;
          } else {
            out.push_back(keys + " map @" + lk->set);
          }
          i = j + 1;
          continue;
        }
        if (const auto* iv = std::get_if<InlineVmap>(consumer); iv && reg_index32(iv->sreg) == r0) {
          std::string m = keys + " vmap { ";
          for (size_t k = 0; k < iv->entries.size(); ++k) {
            m += (k ? ", " : "") + value_text(iv->key_type, iv->entries[k].first) + " : " +
                 verdict_text(iv->entries[k].second);
          }
          out.push_back(m + " }");
          i = j + 1;
          continue;
        }
        if (const auto* d = std::get_if<Dynset>(consumer); d && reg_index32(d->sreg_key) == r0) {
          static const char* const kOps[] = {"add", "update", "delete"};
          auto op = static_cast<uint32_t>(d->op);
          std::string t = std::string(op < 3 ? kOps[op] : "?") + " @" + d->set + " { " + keys;
          if (d->timeout_ms) t += " timeout " + time_text(d->timeout_ms);
          out.push_back(t + " }");
          i = j + 1;
          continue;
        }
      }
      unknown(i);
      ++i;
      continue;
    }
    // dnat/snat: immediates into the registers the nat expression reads.
    if (const auto* imm = std::get_if<Immediate>(&e)) {
      size_t j = i;
      std::map<uint32_t, Bytes> regs;
      while (j < ex.size()) {
        const auto* im = std::get_if<Immediate>(&ex[j]);
        if (!im) break;
        regs[static_cast<uint32_t>(im->dreg)] = im->data;
        ++j;
      }
      const auto* nat = j < ex.size() ? std::get_if<Nat>(&ex[j]) : nullptr;
      if (nat && regs.count(static_cast<uint32_t>(nat->reg_addr)) &&
          (!nat->reg_proto || regs.count(static_cast<uint32_t>(*nat->reg_proto)))) {
        std::string t = std::string(nat->type == NatType::kDnat ? "dnat" : "snat") + " to " +
                        ipv4_text(regs[static_cast<uint32_t>(nat->reg_addr)]);
        if (nat->reg_proto) {
          t +=
              ":" + value_text(SetType::kInetService, regs[static_cast<uint32_t>(*nat->reg_proto)]);
        }
        out.push_back(t);
        i = j + 1;
        continue;
      }
      if (imm) unknown(i);
      ++i;
      continue;
    }
    if (const auto* m = std::get_if<Masquerade>(&e)) {
      out.push_back(m->fully_random ? "masquerade fully-random" : "masquerade");
    } else if (std::holds_alternative<Counter>(e)) {
      out.push_back("counter packets 0 bytes 0");
    } else if (const auto* v = std::get_if<Verdict>(&e)) {
      out.push_back(verdict_text(*v));
    } else if (const auto* r = std::get_if<Reject>(&e)) {
      out.push_back(reject_text(*r));
    } else {
      unknown(i);
    }
    ++i;
  }
  return out;
}

const char* hook_name(Hook h) {
  switch (h) {
    case Hook::kPrerouting:
      return "prerouting";
    case Hook::kInput:
      return "input";
    case Hook::kForward:
      return "forward";
    case Hook::kOutput:
      return "output";
    case Hook::kPostrouting:
      return "postrouting";
  }
  return "?";
}

// nft's priority names: exact or within 10 of a standard priority valid for the hook.
std::string priority_text(Hook hook, int32_t prio) {
  const struct {
    int32_t value;
    const char* name;
    int only_hook;  // -1: any hook
  } kStd[] = {{-300, "raw", -1},
              {-150, "mangle", -1},
              {-100, "dstnat", static_cast<int>(Hook::kPrerouting)},
              {0, "filter", -1},
              {50, "security", -1},
              {100, "srcnat", static_cast<int>(Hook::kPostrouting)}};
  for (const auto& s : kStd) {
    if (s.only_hook >= 0 && s.only_hook != static_cast<int>(hook)) continue;
    int32_t d = prio - s.value;
    if (d == 0) return s.name;
    if (d >= -10 && d <= 10) {
      return std::string(s.name) + (d > 0 ? " + " : " - ") + std::to_string(d > 0 ? d : -d);
    }
  }
  return std::to_string(prio);
}

std::string set_type_text(const Set& s) {
  std::string t;
  if (!s.typeof_key.empty()) {
    // `typeof ip daddr . meta l4proto : ip daddr . th dport`
    for (TypeofExpr k : s.typeof_key)
      t += (t.empty() ? "typeof " : " . ") + std::string(typeof_text(k));
    for (size_t i = 0; i < s.typeof_data.size(); ++i) {
      t += (i ? " . " : " : ") + std::string(typeof_text(s.typeof_data[i]));
    }
    return t;
  }
  for (SetType k : s.key) t += (t.empty() ? "type " : " . ") + std::string(set_type_name(k));
  if (s.data) t += std::string(" : ") + set_type_name(*s.data);
  for (size_t i = 0; i < s.data_concat.size(); ++i) {
    t += (i ? " . " : " : ") + std::string(set_type_name(s.data_concat[i]));
  }
  return t;
}

std::string key_text(const Set* set, const std::vector<Bytes>& key) {
  std::string t;
  for (size_t i = 0; i < key.size(); ++i) {
    t += i ? " . " : "";
    t += set && i < set->key.size() ? value_text(set->key[i], key[i]) : hex_bytes(key[i]);
  }
  return t;
}

// A map element's value: one type, or the 4-byte-padded parts of a concatenation.
std::string data_text(const Set& set, const Bytes& b) {
  if (set.data) return value_text(*set.data, b);
  std::string t;
  size_t at = 0;
  for (SetType part : set.data_concat) {
    size_t len = set_type_len(part);
    if (at + len > b.size()) return hex_bytes(b);
    t += (t.empty() ? "" : " . ") + value_text(part, Bytes(b.begin() + at, b.begin() + at + len));
    at += (len + 3) & ~size_t{3};
  }
  return t.empty() ? hex_bytes(b) : t;
}

std::string element_text(const Set* set, const Element& e) {
  std::string t = key_text(set, e.key);
  if (e.timeout_ms) t += " timeout " + time_text(e.timeout_ms);
  if (!e.comment.empty()) t += " comment " + quoted(e.comment);
  if (const auto* v = std::get_if<Verdict>(&e.data)) {
    t += " : " + verdict_text(*v);
  } else if (const auto* b = std::get_if<Bytes>(&e.data)) {
    t += " : " + (set ? data_text(*set, *b) : hex_bytes(*b));
  }
  return t;
}

std::string flags_text(const Set& s) {
  std::string f;
  auto add = [&](bool on, const char* name) {
    if (on) f += (f.empty() ? "" : ",") + std::string(name);
  };
  add(s.constant, "constant");
  add(s.dynamic, "dynamic");
  add(s.interval, "interval");
  add(s.timeout, "timeout");
  return f;
}

std::string chain_text(const Chain& c, const std::vector<Rule>& rules) {
  std::string t = "\tchain " + c.name + " {\n";
  if (c.base) {
    t += "\t\ttype " + c.base->type + " hook " + hook_name(c.base->hook) + " priority " +
         priority_text(c.base->hook, c.base->priority) + "; policy " +
         (c.base->policy == VerdictCode::kDrop ? "drop" : "accept") + ";\n";
  }
  for (const Rule& r : rules) t += "\t\t" + rule_to_nft(r) + "\n";
  return t + "\t}\n";
}

}  // namespace

std::string rule_to_nft(const Rule& rule) {
  std::string t;
  for (const std::string& s : statements(rule.exprs)) t += (t.empty() ? "" : " ") + s;
  if (!rule.comment.empty()) t += " comment " + quoted(rule.comment);
  return t;
}

std::string set_to_nft(const Set& set, const std::vector<Element>& elements, int indent) {
  std::string in(static_cast<size_t>(indent), '\t');
  std::string t = in + (set.is_map() ? "map " : "set ") + set.name + " {\n";
  t += in + "\t" + set_type_text(set) + "\n";
  // The kernel gives dynamic sets a size of 65535 when none is asked for.
  uint32_t size = set.size ? set.size : set.dynamic ? 65535 : 0;
  if (size) t += in + "\tsize " + std::to_string(size) + "\n";
  // nft leaves out a lone `timeout` flag when the set has a default timeout (it implies it).
  bool lone_timeout = set.timeout && !set.constant && !set.dynamic && !set.interval;
  if (!flags_text(set).empty() && !(lone_timeout && set.timeout_ms)) {
    t += in + "\tflags " + flags_text(set) + "\n";
  }
  if (set.timeout_ms) t += in + "\ttimeout " + time_text(set.timeout_ms) + "\n";
  if (!set.comment.empty()) t += in + "\tcomment " + quoted(set.comment) + "\n";
  if (!elements.empty()) {
    t += in + "\telements = { ";
    for (size_t i = 0; i < elements.size(); ++i) {
      t += (i ? ",\n" + in + "\t\t     " : "") + element_text(&set, elements[i]);
    }
    t += " }\n";
  }
  return t + in + "}\n";
}

std::string FakeNftTables::list() const {
  if (!state_->exists) return "";
  std::vector<std::string> items;
  for (const auto* s : by_seq(state_->sets)) {
    items.push_back(set_to_nft(s->set, ordered_elements(*s), 1));
  }
  for (const auto* c : by_seq(state_->chains)) items.push_back(chain_text(c->chain, c->rules));
  std::string t = std::string("table ") + family_name(family_) + " " + table_ + " {\n";
  for (size_t i = 0; i < items.size(); ++i) t += (i ? "\n" : "") + items[i];
  return t + "}\n";
}

// ---------------------------------------------------------------- nft -f script

std::string batch_to_nft_script(const Batch& batch, const std::vector<Set>& known_sets) {
  std::map<std::string, Set> sets;
  for (const Set& s : known_sets) sets[s.name] = s;
  const std::string t = std::string(family_name(batch.family())) + " " + batch.table();
  std::string out;
  for (const Batch::Op& op : batch.ops()) {
    switch (op.kind) {
      case Batch::Kind::kAddTable:
        out += "add table " + t + "\n";
        break;
      case Batch::Kind::kDeleteTable:
        out += "delete table " + t + "\n";
        break;
      case Batch::Kind::kAddChain:
        out += "add chain " + t + " " + op.chain.name;
        if (op.chain.base) {
          const BaseChain& b = *op.chain.base;
          out += " { type " + b.type + " hook " + hook_name(b.hook) + " priority " +
                 std::to_string(b.priority) + "; policy " +
                 (b.policy == VerdictCode::kDrop ? "drop" : "accept") + "; }";
        }
        out += "\n";
        break;
      case Batch::Kind::kFlushChain:
        out += "flush chain " + t + " " + op.chain.name + "\n";
        break;
      case Batch::Kind::kDeleteChain:
        out += "delete chain " + t + " " + op.chain.name + "\n";
        break;
      case Batch::Kind::kAddRule:
        out += "add rule " + t + " " + op.chain.name + " " + rule_to_nft(op.rule) + "\n";
        break;
      case Batch::Kind::kAddSet: {
        const Set& s = op.set;
        sets[s.name] = s;
        out += std::string("add ") + (s.is_map() ? "map " : "set ") + t + " " + s.name + " { " +
               set_type_text(s) + ";";
        if (s.size) out += " size " + std::to_string(s.size) + ";";
        if (!flags_text(s).empty()) out += " flags " + flags_text(s) + ";";
        if (s.timeout_ms) out += " timeout " + time_text(s.timeout_ms) + ";";
        if (!s.comment.empty()) out += " comment " + quoted(s.comment) + ";";
        out += " }\n";
        break;
      }
      case Batch::Kind::kDeleteSet:
      case Batch::Kind::kFlushSet: {
        // nft names a map `map` in these commands (`flush set` on a map is ENOENT); the op
        // carries only the name, so the kind comes from the set's definition.
        auto it = sets.find(op.set.name);
        bool is_map = (it != sets.end() && it->second.is_map()) || op.set.is_map();
        out += std::string(op.kind == Batch::Kind::kDeleteSet ? "delete " : "flush ") +
               (is_map ? "map " : "set ") + t + " " + op.set.name + "\n";
        break;
      }
      case Batch::Kind::kAddElements:
      case Batch::Kind::kDeleteElements: {
        if (op.elements.empty()) break;
        auto it = sets.find(op.set.name);
        const Set* set = it == sets.end() ? nullptr : &it->second;
        bool add = op.kind == Batch::Kind::kAddElements;
        out += std::string(add ? "add" : "delete") + " element " + t + " " + op.set.name + " { ";
        for (size_t i = 0; i < op.elements.size(); ++i) {
          out += (i ? ", " : "") +
                 (add ? element_text(set, op.elements[i]) : key_text(set, op.elements[i].key));
        }
        out += " }\n";
        break;
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------- normalisation

namespace {

std::vector<std::string> words(std::string_view text) {
  std::vector<std::string> w;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    size_t start = i;
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i > start) w.emplace_back(text.substr(start, i - start));
  }
  return w;
}

}  // namespace

std::string normalize_listing(std::string_view text) {
  std::vector<std::string> w = words(text);
  // Drop counter values and element expiry (they change on their own).
  std::vector<std::string> kept;
  for (size_t i = 0; i < w.size(); ++i) {
    if (w[i] == "counter" && i + 4 < w.size() && w[i + 1] == "packets" && w[i + 3] == "bytes") {
      kept.push_back("counter");
      i += 4;
      continue;
    }
    if (w[i] == "expires" && i + 1 < w.size()) {
      // "expires 2h59m, next" keeps the comma, "expires 2h59m }" nothing.
      const std::string& v = w[i + 1];
      if (!v.empty() && v.back() == ',' && !kept.empty()) kept.back() += ",";
      ++i;
      continue;
    }
    kept.push_back(w[i]);
  }
  std::string s;
  for (const std::string& k : kept) s += (s.empty() ? "" : " ") + k;
  // Sort the elements of each `elements = { ... }`.
  std::string out;
  size_t pos = 0;
  const std::string open = "elements = { ";
  while (true) {
    size_t a = s.find(open, pos);
    if (a == std::string::npos) break;
    size_t start = a + open.size();
    size_t end = s.find(" }", start);
    if (end == std::string::npos) break;
    // Elements never contain braces in what skiff writes; split at ", ".
    std::vector<std::string> elems;
    std::string body = s.substr(start, end - start);
    size_t p = 0;
    while (true) {
      size_t c = body.find(", ", p);
      elems.push_back(body.substr(p, c == std::string::npos ? std::string::npos : c - p));
      if (c == std::string::npos) break;
      p = c + 2;
    }
    std::sort(elems.begin(), elems.end());
    out += s.substr(pos, start - pos);
    for (size_t i = 0; i < elems.size(); ++i) out += (i ? ", " : "") + elems[i];
    pos = end;
  }
  out += s.substr(pos);
  return out;
}

}  // namespace skiff::nft
