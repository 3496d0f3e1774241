#include "common/bpf/host_routing.h"

#include <arpa/inet.h>

namespace skiff::bpf {
namespace {

// Offsets in an Ethernet frame carrying IPv4 without options.
constexpr int16_t kEthType = 12, kIpVerIhl = 14, kIpFrag = 20, kIpTtl = 22, kIpProto = 23,
                  kIpCsum = 24, kIpSrc = 26, kIpDst = 30, kL4 = 34;

// r6 = skb. r2 = data, r3 = data_end, with the Ethernet and IPv4 headers in bounds, else "pass".
// Again after every helper call: helpers that may change the packet invalidate these.
void load_headers(Asm& a) {
  a.ldx(W, R2, R6, kSkbData);
  a.ldx(W, R3, R6, kSkbDataEnd);
  a.mov_reg(R4, R2);
  a.add_imm(R4, kL4);
  a.jmp_reg(JGT, R4, R3, "pass");
}

// IPv4 (EtherType 0x0800 as it lies in memory), no options, not a fragment (a later fragment
// has no ports to check), TTL above 1 (else the kernel answers with ICMP time exceeded).
void check_ipv4(Asm& a) {
  a.ldx(H, R5, R2, kEthType);
  a.jmp_imm(JNE, R5, 0x0008, "pass");
  a.ldx(B, R5, R2, kIpVerIhl);
  a.jmp_imm(JNE, R5, 0x45, "pass");
  a.ldx(H, R5, R2, kIpFrag);
  a.and_imm(R5, 0xff3f);  // MF and the offset, as they lie in memory (not DF)
  a.jmp_imm(JNE, R5, 0, "pass");
  a.ldx(B, R5, R2, kIpTtl);
  a.jmp_imm(JLE, R5, 1, "pass");
}

// Only TCP and UDP (ICMP errors about translated flows, SCTP and the rest need the node's
// netfilter), and not from an address and port in the endpoints map: else "pass".
// Stack fp-16..fp-9.
void pass_other_and_endpoint_replies(Asm& a, int endpoints_map_fd) {
  a.mov_reg(R4, R2);
  a.add_imm(R4, kL4 + 4);  // the ports
  a.jmp_reg(JGT, R4, R3, "pass");
  a.ldx(B, R5, R2, kIpProto);
  a.jmp_imm(JEQ, R5, 6, "ports");
  a.jmp_imm(JNE, R5, 17, "pass");
  a.label("ports");
  a.ldx(W, R4, R2, kIpSrc);
  a.stx(W, FP, -16, R4);
  a.stx(B, FP, -12, R5);
  a.st_imm(B, FP, -11, 0);
  a.ldx(H, R4, R2, kL4);  // source port
  a.stx(H, FP, -10, R4);
  a.ld_map_fd(R1, endpoints_map_fd);
  a.mov_reg(R2, FP);
  a.add_imm(R2, -16);
  a.call(kMapLookupElem);
  a.jmp_imm(JNE, R0, 0, "pass");
}

// TTL - 1 and the header checksum, as forwarding would (r8, r9: old and new TTL/protocol).
void decrement_ttl(Asm& a) {
  load_headers(a);
  a.ldx(H, R8, R2, kIpTtl);  // TTL in the low byte; it is > 1, so no borrow
  a.mov_reg(R9, R8);
  a.sub_imm(R9, 1);
  a.stx(H, R2, kIpTtl, R9);
  a.mov_reg(R1, R6);
  a.mov_imm(R2, kIpCsum);
  a.mov_reg(R3, R8);
  a.mov_reg(R4, R9);
  a.mov_imm(R5, 2);  // the field's size
  a.call(kL3CsumReplace);
}

void pass_label(Asm& a) {
  a.label("pass");
  a.mov_imm(R0, kTcxNext);
  a.exit();
}

int32_t le(uint32_t host) { return static_cast<int32_t>(htonl(host)); }

// "pass" when the address at `off` (kIpSrc, kIpDst) is in `net` (JEQ) or not (JNE).
void pass_if_in(Asm& a, int16_t off, JmpOp op, const netlink::Ip4Net& net) {
  a.ldx(W, R5, R2, off);
  a.and_imm(R5, le(net.mask()));
  a.jmp32_imm(op, R5, le(net.network().v), "pass");
}

// Both programs start alike: r6 = skb, the headers loaded and checked.
void begin(Asm& a) {
  a.mov_reg(R6, R1);
  load_headers(a);
  check_ipv4(a);
}

// ... and end alike: return the redirect helper's verdict, "pass" returns TCX_NEXT.
std::optional<std::vector<Insn>> end(Asm& a, std::string* err) {
  a.exit();
  pass_label(a);
  return a.finish(err);
}

}  // namespace

std::optional<std::vector<Insn>> to_local_pods_program(const netlink::Ip4Net& cluster,
                                                       int pods_map_fd, int endpoints_map_fd,
                                                       std::string* err) {
  Asm a;
  begin(a);
  // From a pod only: the pod's reply then goes back around the stack too. Anything else (a
  // node, the outside) needs this node's conntrack to see both ways, or the reply would be
  // taken for a new flow (and masqueraded).
  pass_if_in(a, kIpSrc, JNE, cluster);
  a.ldx(W, R5, R2, kIpDst);
  a.stx(W, FP, -4, R5);
  a.ld_map_fd(R1, pods_map_fd);
  a.mov_reg(R2, FP);
  a.add_imm(R2, -4);
  a.call(kMapLookupElem);
  a.jmp_imm(JEQ, R0, 0, "pass");
  a.mov_reg(R7, R0);  // the PodEntry
  load_headers(a);
  pass_other_and_endpoint_replies(a, endpoints_map_fd);
  decrement_ttl(a);
  load_headers(a);
  a.ldx(W, R5, R7, 4);  // pod MAC -> destination
  a.stx(W, R2, 0, R5);
  a.ldx(H, R5, R7, 8);
  a.stx(H, R2, 4, R5);
  a.ldx(H, R5, R7, 10);  // gateway MAC -> source
  a.stx(H, R2, 6, R5);
  a.ldx(W, R5, R7, 12);
  a.stx(W, R2, 8, R5);
  a.ldx(W, R1, R7, 0);
  a.mov_imm(R2, 0);
  a.call(kRedirectPeer);
  return end(a, err);
}

std::optional<std::vector<Insn>> to_remote_pods_program(const netlink::Ip4Net& cluster,
                                                        const netlink::Ip4Net& local,
                                                        int uplink_ifindex, int endpoints_map_fd,
                                                        std::string* err) {
  Asm a;
  begin(a);
  // For a pod of another node: in the cluster CIDR, not in this node's pod CIDR.
  pass_if_in(a, kIpDst, JNE, cluster);
  pass_if_in(a, kIpDst, JEQ, local);
  pass_other_and_endpoint_replies(a, endpoints_map_fd);
  decrement_ttl(a);
  a.mov_imm(R1, uplink_ifindex);
  a.mov_imm(R2, 0);  // no next hop given: the helper looks it up in the node's routes
  a.mov_imm(R3, 0);
  a.mov_imm(R4, 0);
  a.call(kRedirectNeigh);
  return end(a, err);
}

}  // namespace skiff::bpf
