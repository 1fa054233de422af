// Writing CPU cache lines back to memory: what makes a store durable on
// persistent memory mapped at cache-line granularity (ADR pmem, and the
// daemon's emulate_pmem regions). One module for the daemon (media's
// emulated regions) and libsealfs (sealfs_persist), which compiles
// cpu_flush.cc into itself since it links nothing of the daemon.
//
// The instruction is chosen at run time (cpuid), once. The loops are
// templates on the instruction and live in this header, so a caller's loop
// has no per-line branch and no call: write_back(insn, ...) switches once per
// range. Inline asm rather than intrinsics, because the intrinsics would need
// the whole build compiled with -mclwb / -mclflushopt.
//
// Ordering: clwb and clflushopt are weakly ordered, so a store_fence() after
// the last line is what makes the write-backs complete before any later
// store (the caller places it: one fence for many ranges is the point).
// clflush is ordered already; the fence is then harmless and kept, so that
// callers need not know which instruction ran.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sealfs::cpu_flush {

constexpr uintptr_t kCacheLine = 64;

enum class Instruction {
  kClwb,        // writes the line back and may keep it cached (best)
  kClflushopt,  // writes back and evicts; weakly ordered
  kClflush,     // writes back and evicts; ordered, slowest
  kNone,        // no write-back instruction here: persist another way (msync)
};

// The best instruction this CPU has, detected on the first call (cpuid leaf 7
// for clwb and clflushopt, leaf 1 for clflush) and remembered. kNone on a CPU
// that is not x86-64.
Instruction best_instruction();

constexpr const char* instruction_name(Instruction insn) {
  switch (insn) {
    case Instruction::kClwb: return "clwb";
    case Instruction::kClflushopt: return "clflushopt";
    case Instruction::kClflush: return "clflush";
    case Instruction::kNone: return "none";
  }
  return "?";
}

// Calls visit(line) with the address of every cache line that [addr, addr +
// len) touches, lowest first: the line holding addr even when addr is inside
// it, through the line holding the last byte. None when len is 0.
template <typename Visit>
inline void for_each_line(const void* addr, size_t len, Visit&& visit) {
  if (len == 0) return;
  const uintptr_t start = reinterpret_cast<uintptr_t>(addr);
  const uintptr_t end = start + len;
  for (uintptr_t line = start & ~(kCacheLine - 1); line < end; line += kCacheLine) visit(line);
}

// How many lines for_each_line visits for the same range.
inline size_t lines_covering(const void* addr, size_t len) {
  if (len == 0) return 0;
  const uintptr_t start = reinterpret_cast<uintptr_t>(addr);
  const uintptr_t first = start & ~(kCacheLine - 1);
  const uintptr_t last = (start + len - 1) & ~(kCacheLine - 1);
  return static_cast<size_t>((last - first) / kCacheLine + 1);
}

template <Instruction insn>
inline void write_back_line(uintptr_t line) {
#if defined(__x86_64__)
  auto* p = reinterpret_cast<volatile char*>(line);
  if constexpr (insn == Instruction::kClwb) {
    asm volatile("clwb %0" : "+m"(*p));
  } else if constexpr (insn == Instruction::kClflushopt) {
    asm volatile("clflushopt %0" : "+m"(*p));
  } else if constexpr (insn == Instruction::kClflush) {
    asm volatile("clflush %0" : "+m"(*p));
  }
#else
  static_assert(insn == Instruction::kNone, "cache-line write-back is x86-64 only");
#endif
  (void)line;
}

// Writes back every line of [addr, addr + len) with one instruction; the
// caller fences. With kNone it writes nothing back.
template <Instruction insn>
inline void write_back(const void* addr, size_t len) {
  // A lambda, not &write_back_line<insn>: a function pointer would be a
  // call per line (through the PLT, in libsealfs) where the loop should hold
  // just the instruction.
  if constexpr (insn != Instruction::kNone) {
    for_each_line(addr, len, [](uintptr_t line) { write_back_line<insn>(line); });
  }
}

// The same with the instruction chosen at run time (one switch per range).
void write_back(Instruction insn, const void* addr, size_t len);

// Orders the write-backs before every later store (sfence on x86-64).
inline void store_fence() {
#if defined(__x86_64__)
  asm volatile("sfence" ::: "memory");
#else
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

}  // namespace sealfs::cpu_flush
