// Media faults: a SIGBUS on the region mapping becomes a Status, not a death.
//
// A load or store to the mapping faults with SIGBUS when the page behind it
// cannot be had: the backing file's filesystem is full (a sparse region file
// on a full disk or tmpfs), the file was truncated under the mapping, or the
// line is poisoned on real persistent memory. The default action kills the
// process; a daemon killed between a journal commit and its home writes
// would still recover, but every request in flight is lost and the next
// mount fails the same way.
//
// So region accesses that may fault run inside a recovery window:
//
//   uint64_t fault = 0;
//   if (!run_recoverable(base, size, [&] { memcpy(dst, src, n); }, &fault)) {
//     ... the copy was cut short by a media fault at address `fault` ...
//   }
//
// The process-wide SIGBUS handler (install_media_fault_handler) jumps back
// to the innermost armed window of the faulting thread when the faulting
// address lies inside that window's range; every other SIGBUS goes to the
// handler that was installed before ours (the default: die).
//
// What may run inside a window: plain loads, stores, memcpy/memset and cache
// flushes of the region. The jump out skips the rest of the window without
// running destructors or releasing locks, so nothing inside may own memory,
// take a lock or build a C++ object with a destructor that matters. Take
// locks before the window, and do the bookkeeping after it returns.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace sealfs {

// Installs the SIGBUS handler once per process (later calls do nothing).
// Returns false if sigaction failed (errno set); faults then kill as before.
bool install_media_fault_handler();
bool media_fault_handler_installed();

namespace media_fault_detail {
// Runs fn(ctx) with recovery armed for faults in [begin, end). Returns true
// if fn ran to completion, false if a SIGBUS inside the range cut it short
// (*fault_address then holds si_addr). Windows nest: an inner window's range
// is searched first, then the outer one's.
bool run_window(uintptr_t begin, uintptr_t end, void (*fn)(void*), void* ctx,
                uintptr_t* fault_address);
}  // namespace media_fault_detail

template <typename F>
bool run_recoverable(const void* base, uint64_t size, F&& fn, uintptr_t* fault_address) {
  auto begin = reinterpret_cast<uintptr_t>(base);
  auto trampoline = [](void* ctx) { (*static_cast<std::remove_reference_t<F>*>(ctx))(); };
  return media_fault_detail::run_window(begin, begin + size, trampoline,
                                        const_cast<void*>(static_cast<const void*>(&fn)),
                                        fault_address);
}

}  // namespace sealfs
