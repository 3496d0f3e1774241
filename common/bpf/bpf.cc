#include "common/bpf/bpf.h"

#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace skiff::bpf {
namespace {

// enum bpf_attach_type's BPF_TCX_INGRESS (kernel 6.6; Debian 12's uapi headers predate it).
constexpr uint32_t kAttachTcxIngress = 46;

long sys_bpf(int cmd, bpf_attr* attr) { return ::syscall(__NR_bpf, cmd, attr, sizeof(*attr)); }

uint64_t ptr(const void* p) { return reinterpret_cast<uintptr_t>(p); }

void fill(BpfError* err, const std::string& what) {
  if (err == nullptr) return;
  int e = errno;
  err->err = e;
  err->what = what + ": " + std::strerror(e);
}

void copy_name(char (&dst)[BPF_OBJ_NAME_LEN], const std::string& name) {
  // The kernel takes [A-Za-z0-9_.] and 15 characters.
  size_t n = 0;
  for (char c : name) {
    if (n + 1 >= BPF_OBJ_NAME_LEN) break;
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.';
    dst[n++] = ok ? c : '_';
  }
}

}  // namespace

// --- Asm --------------------------------------------------------------------------------------

void Asm::emit(uint8_t code, Reg dst, Reg src, int16_t off, int32_t imm) {
  insns_.push_back(Insn{code, static_cast<uint8_t>((src << 4) | dst), off, imm});
}

void Asm::mov_imm(Reg dst, int32_t imm) { emit(BPF_ALU64 | BPF_MOV | BPF_K, dst, R0, 0, imm); }
void Asm::mov_reg(Reg dst, Reg src) { emit(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0); }
void Asm::add_imm(Reg dst, int32_t imm) { emit(BPF_ALU64 | BPF_ADD | BPF_K, dst, R0, 0, imm); }
void Asm::sub_imm(Reg dst, int32_t imm) { emit(BPF_ALU64 | BPF_SUB | BPF_K, dst, R0, 0, imm); }
void Asm::and_imm(Reg dst, int32_t imm) { emit(BPF_ALU64 | BPF_AND | BPF_K, dst, R0, 0, imm); }
void Asm::ldx(Size s, Reg dst, Reg src, int16_t off) {
  emit(BPF_LDX | BPF_MEM | s, dst, src, off, 0);
}
void Asm::stx(Size s, Reg dst, int16_t off, Reg src) {
  emit(BPF_STX | BPF_MEM | s, dst, src, off, 0);
}
void Asm::st_imm(Size s, Reg dst, int16_t off, int32_t imm) {
  emit(BPF_ST | BPF_MEM | s, dst, R0, off, imm);
}
void Asm::ld_map_fd(Reg dst, int map_fd) {
  emit(BPF_LD | BPF_DW | BPF_IMM, dst, static_cast<Reg>(BPF_PSEUDO_MAP_FD), 0, map_fd);
  emit(0, R0, R0, 0, 0);
}
void Asm::jump(uint8_t code, Reg dst, Reg src, int32_t imm, const std::string& label) {
  fixups_.emplace_back(insns_.size(), label);
  emit(code, dst, src, 0, imm);
}
void Asm::jmp_imm(JmpOp op, Reg dst, int32_t imm, const std::string& label) {
  jump(BPF_JMP | op | BPF_K, dst, R0, imm, label);
}
void Asm::jmp_reg(JmpOp op, Reg dst, Reg src, const std::string& label) {
  jump(BPF_JMP | op | BPF_X, dst, src, 0, label);
}
void Asm::jmp32_imm(JmpOp op, Reg dst, int32_t imm, const std::string& label) {
  jump(BPF_JMP32 | op | BPF_K, dst, R0, imm, label);
}
void Asm::ja(const std::string& label) { jump(BPF_JMP | BPF_JA, R0, R0, 0, label); }
void Asm::call(int32_t helper) { emit(BPF_JMP | BPF_CALL, R0, R0, 0, helper); }
void Asm::exit() { emit(BPF_JMP | BPF_EXIT, R0, R0, 0, 0); }
void Asm::label(const std::string& name) { labels_[name] = insns_.size(); }

std::optional<std::vector<Insn>> Asm::finish(std::string* err) const {
  std::vector<Insn> out = insns_;
  for (const auto& [at, name] : fixups_) {
    auto it = labels_.find(name);
    if (it == labels_.end()) {
      if (err != nullptr) *err = "bpf program: jump to undefined label \"" + name + "\"";
      return std::nullopt;
    }
    out[at].off = static_cast<int16_t>(static_cast<long>(it->second) - static_cast<long>(at) - 1);
  }
  return out;
}

// --- Fd ---------------------------------------------------------------------------------------

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

// --- bpf(2) -----------------------------------------------------------------------------------

std::optional<Fd> load_sched_cls(const std::vector<Insn>& insns, const std::string& name,
                                 BpfError* err) {
  static const char kLicense[] = "GPL";
  std::string log(64 << 10, '\0');
  bpf_attr a{};
  a.prog_type = BPF_PROG_TYPE_SCHED_CLS;
  a.insn_cnt = static_cast<uint32_t>(insns.size());
  a.insns = ptr(insns.data());
  a.license = ptr(kLicense);
  a.log_level = 1;
  a.log_size = static_cast<uint32_t>(log.size());
  a.log_buf = ptr(log.data());
  copy_name(a.prog_name, name);
  long fd = sys_bpf(BPF_PROG_LOAD, &a);
  if (fd < 0) {
    fill(err, "load bpf program " + name);
    if (err != nullptr) {
      log.resize(std::strlen(log.c_str()));
      if (log.size() > 2000) log = "..." + log.substr(log.size() - 2000);
      if (!log.empty()) err->what += " (verifier: " + log + ")";
    }
    return std::nullopt;
  }
  return Fd(static_cast<int>(fd));
}

std::optional<Fd> create_hash_map(uint32_t key_size, uint32_t value_size, uint32_t max_entries,
                                  const std::string& name, BpfError* err) {
  bpf_attr a{};
  a.map_type = BPF_MAP_TYPE_HASH;
  a.key_size = key_size;
  a.value_size = value_size;
  a.max_entries = max_entries;
  copy_name(a.map_name, name);
  long fd = sys_bpf(BPF_MAP_CREATE, &a);
  if (fd < 0) {
    fill(err, "create bpf map " + name);
    return std::nullopt;
  }
  return Fd(static_cast<int>(fd));
}

bool map_update(int map_fd, const void* key, const void* value, BpfError* err) {
  bpf_attr a{};
  a.map_fd = static_cast<uint32_t>(map_fd);
  a.key = ptr(key);
  a.value = ptr(value);
  a.flags = BPF_ANY;
  if (sys_bpf(BPF_MAP_UPDATE_ELEM, &a) != 0) {
    fill(err, "update bpf map");
    return false;
  }
  return true;
}

bool map_delete(int map_fd, const void* key, BpfError* err) {
  bpf_attr a{};
  a.map_fd = static_cast<uint32_t>(map_fd);
  a.key = ptr(key);
  if (sys_bpf(BPF_MAP_DELETE_ELEM, &a) != 0 && errno != ENOENT) {
    fill(err, "delete from bpf map");
    return false;
  }
  return true;
}

std::optional<Fd> attach_tcx_ingress(int prog_fd, int ifindex, BpfError* err) {
  bpf_attr a{};
  a.link_create.prog_fd = static_cast<uint32_t>(prog_fd);
  a.link_create.target_ifindex = static_cast<uint32_t>(ifindex);
  a.link_create.attach_type = static_cast<bpf_attach_type>(kAttachTcxIngress);
  long fd = sys_bpf(BPF_LINK_CREATE, &a);
  if (fd < 0) {
    fill(err, "attach bpf program to the ingress of device #" + std::to_string(ifindex) + " (tcx)");
    return std::nullopt;
  }
  return Fd(static_cast<int>(fd));
}

}  // namespace skiff::bpf
