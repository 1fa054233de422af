// The memory workloads run on both sides (a sealfs direct mapping and a raw
// mmap of the region file): the same code on the same addresses' shape, so
// any difference is the mapping's.
#pragma once

#include <cstddef>
#include <cstdint>

#include "bench_util.h"

namespace dbench {

constexpr size_t kBlock = 4096;

// Whether this CPU runs the kernels (AVX2: 32-byte loads and streaming stores).
bool kernels_supported();

// Sequential passes over [p, p+len); len a multiple of 128.
uint64_t read_pass(const void* p, size_t len);  // 32-byte loads, 4 accumulators
// 32-byte non-temporal stores, then sfence: the data leaves the caches, as
// libpmem2 writes large copies to pmem.
void write_pass_nt(void* p, size_t len, uint64_t pattern);
// 32-byte ordinary stores (write-allocate through the caches).
void write_pass_plain(void* p, size_t len, uint64_t pattern);

// One 4 KiB block: all its bytes loaded (reduced into the result), or stored
// with non-temporal stores and an sfence, so the time covers the stores
// reaching memory, not just the store buffer.
uint64_t load_block(const void* block);
void store_block_nt(void* block, uint64_t pattern);

// Pointer chase: every 4 KiB page of [base, base+pages*4096) gets, at a
// random 64-byte line, the byte offset of the next page's slot; the pages
// form one random cycle. Offsets, not pointers, so the chain is the same
// through any mapping of the same bytes. Returns the first slot's offset.
uint64_t build_chase(char* base, size_t pages, uint64_t seed);
// Follows `hops` links from `start`, timing each dependent 8-byte load.
// Returns where it stopped.
uint64_t run_chase(const char* base, uint64_t start, size_t hops, Samples* out);

}  // namespace dbench
