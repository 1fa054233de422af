#include "util/cpu_flush.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace sealfs::cpu_flush {

namespace {

Instruction detect() {
#if defined(__x86_64__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) {
    if (ebx & (1u << 24)) return Instruction::kClwb;
    if (ebx & (1u << 23)) return Instruction::kClflushopt;
  }
  // CLFSH (leaf 1, edx bit 19): near universal, but a hypervisor may hide it.
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) && (edx & (1u << 19))) return Instruction::kClflush;
#endif
  return Instruction::kNone;
}

}  // namespace

Instruction best_instruction() {
  static const Instruction best = detect();
  return best;
}

void write_back(Instruction insn, const void* addr, size_t len) {
#if defined(__x86_64__)
  switch (insn) {
    case Instruction::kClwb: write_back<Instruction::kClwb>(addr, len); return;
    case Instruction::kClflushopt: write_back<Instruction::kClflushopt>(addr, len); return;
    case Instruction::kClflush: write_back<Instruction::kClflush>(addr, len); return;
    case Instruction::kNone: return;
  }
#else
  (void)insn, (void)addr, (void)len;
#endif
}

}  // namespace sealfs::cpu_flush
