// eBPF without a compiler: a small assembler for the instructions skiff's programs use, and the
// bpf(2) calls to load them, make maps and attach programs to a device's ingress through TCX
// links. Depends on libc only (the exec'd CNI plugin may link it).
//
// Programs are written as C++ calls, one per instruction, with named labels for jumps:
//
//   Asm a;
//   a.ldx(W, R2, R1, kSkbData) ... a.jmp_imm(JNE, R5, 0x0008, "pass") ... a.label("pass");
//
// Errors: every call returns false/nullopt and fills `BpfError{err, what}` with the positive
// errno and a text naming the operation; a refused program carries the verifier's log.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace skiff::bpf {

struct BpfError {
  int err = 0;       // positive errno
  std::string what;  // "load program skiff_to_pods: Permission denied (verifier: ...)"
};

// struct bpf_insn.
struct Insn {
  uint8_t code = 0;
  uint8_t regs = 0;  // dst in the low nibble, src in the high one
  int16_t off = 0;
  int32_t imm = 0;
};

enum Reg : uint8_t { R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 };
constexpr Reg FP = R10;  // the frame pointer (read-only)
enum Size : uint8_t { W = 0x00, H = 0x08, B = 0x10, DW = 0x18 };
enum JmpOp : uint8_t { JEQ = 0x10, JGT = 0x20, JGE = 0x30, JNE = 0x50, JLT = 0xa0, JLE = 0xb0 };

// Offsets in struct __sk_buff (uapi, stable).
constexpr int16_t kSkbData = 76;
constexpr int16_t kSkbDataEnd = 80;

// Helper function ids (uapi enum bpf_func_id, stable).
constexpr int32_t kMapLookupElem = 1;
constexpr int32_t kL3CsumReplace = 10;
constexpr int32_t kRedirectNeigh = 152;
constexpr int32_t kRedirectPeer = 155;

// TCX program verdicts.
constexpr int32_t kTcxNext = -1;  // go on with the next program, else the stack as usual

// A straight-line assembler with forward and backward labels. Jumps to a label that never
// gets defined make finish() fail.
class Asm {
 public:
  void mov_imm(Reg dst, int32_t imm);               // dst = imm (64-bit, sign-extended)
  void mov_reg(Reg dst, Reg src);                   // dst = src
  void add_imm(Reg dst, int32_t imm);               // dst += imm
  void sub_imm(Reg dst, int32_t imm);               // dst -= imm
  void and_imm(Reg dst, int32_t imm);               // dst &= imm
  void ldx(Size s, Reg dst, Reg src, int16_t off);  // dst = *(s*)(src + off)
  void stx(Size s, Reg dst, int16_t off, Reg src);  // *(s*)(dst + off) = src
  void st_imm(Size s, Reg dst, int16_t off, int32_t imm);
  void ld_map_fd(Reg dst, int map_fd);  // two instructions
  // 64-bit compares against a sign-extended immediate or a register.
  void jmp_imm(JmpOp op, Reg dst, int32_t imm, const std::string& label);
  void jmp_reg(JmpOp op, Reg dst, Reg src, const std::string& label);
  // 32-bit compare (the low halves): for addresses, whose top bit may be set.
  void jmp32_imm(JmpOp op, Reg dst, int32_t imm, const std::string& label);
  void ja(const std::string& label);
  void call(int32_t helper);
  void exit();
  void label(const std::string& name);

  // The program, with every jump resolved; nullopt (and `err`) for an undefined label.
  std::optional<std::vector<Insn>> finish(std::string* err) const;

 private:
  void emit(uint8_t code, Reg dst, Reg src, int16_t off, int32_t imm);
  void jump(uint8_t code, Reg dst, Reg src, int32_t imm, const std::string& label);
  std::vector<Insn> insns_;
  std::map<std::string, size_t> labels_;
  std::vector<std::pair<size_t, std::string>> fixups_;
};

// An owned file descriptor (program, map, link).
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd();
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// A BPF_PROG_TYPE_SCHED_CLS program (what TCX runs), GPL (the redirect helpers need it).
std::optional<Fd> load_sched_cls(const std::vector<Insn>& insns, const std::string& name,
                                 BpfError* err);

// A BPF_MAP_TYPE_HASH map.
std::optional<Fd> create_hash_map(uint32_t key_size, uint32_t value_size, uint32_t max_entries,
                                  const std::string& name, BpfError* err);
bool map_update(int map_fd, const void* key, const void* value, BpfError* err);
// Deleting an absent key is success.
bool map_delete(int map_fd, const void* key, BpfError* err);

// Attaches `prog_fd` at the ingress of device `ifindex` in the calling thread's network
// namespace (a TCX link, kernel >= 6.6). The program stays attached while the link is open;
// closing it detaches the program.
std::optional<Fd> attach_tcx_ingress(int prog_fd, int ifindex, BpfError* err);

}  // namespace skiff::bpf
