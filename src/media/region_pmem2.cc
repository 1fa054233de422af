#include "media/region_pmem2.h"

#include <fcntl.h>
#include <libpmem2.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

#include "util/cpu_flush.h"
#include "util/log.h"

namespace sealfs {

const char* region_kind_name(RegionKind kind) {
  switch (kind) {
    case RegionKind::kDevDax: return "devdax";
    case RegionKind::kFsDax: return "fsdax";
    case RegionKind::kFile: return "file";
  }
  return "?";
}

namespace {

constexpr uint64_t kBlock = 4096;
// Below this, a cached copy plus line flushes beats streaming stores (the
// same threshold libpmem2 uses for its default movnt cutoff, give or take).
constexpr size_t kNonTemporalThreshold = 256;

// libpmem2 returns -errno for system failures and its own PMEM2_E_* codes
// below -100000. pmem2_err_to_errno is declared by libpmem2.h but not
// exported by Debian's libpmem2 1.12.1, so the conversion lives here.
int pmem2_errno(int ret) {
  if (ret > PMEM2_E_UNKNOWN && ret < 0) return -ret;
  switch (ret) {
    case PMEM2_E_NOSUPP:
    case PMEM2_E_GRANULARITY_NOT_SUPPORTED:
    case PMEM2_E_SOURCE_TYPE_NOT_SUPPORTED: return ENOTSUP;
    case PMEM2_E_NO_ACCESS: return EACCES;
    case PMEM2_E_IO_FAIL: return EIO;
    case PMEM2_E_MAPPING_EXISTS:
    case PMEM2_E_MAP_EXISTS: return EEXIST;
    case PMEM2_E_UNKNOWN: return EIO;
    default: return EINVAL;
  }
}

// libpmem2 errors are converted here and nowhere else: its message text is
// thread-local and only valid right after the failing call.
Status pmem2_error(int ret, const std::string& what) {
  int err = pmem2_errno(ret);
  std::string message = what + ": " + pmem2_errormsg() + " (" + std::strerror(err) + ")";
  if (err == ENOMEM) return Status(Code::kNoMemory, message);
  return Status(Code::kIoError, message);
}

std::string format_size(uint64_t bytes) {
  if (bytes >= (1ull << 20) && bytes % (1ull << 20) == 0) {
    return std::to_string(bytes >> 20) + " MiB";
  }
  if (bytes >= (1ull << 10) && bytes % (1ull << 10) == 0) {
    return std::to_string(bytes >> 10) + " KiB";
  }
  return std::to_string(bytes) + " B";
}

// A character device is devdax only if sysfs says its subsystem is dax;
// /dev/null or a tty would otherwise reach libpmem2 with a confusing error.
bool is_devdax(const struct stat& st) {
  char link[64];
  std::snprintf(link, sizeof link, "/sys/dev/char/%u:%u/subsystem", major(st.st_rdev),
                minor(st.st_rdev));
  std::error_code ec;
  std::filesystem::path target = std::filesystem::read_symlink(link, ec);
  if (ec) return false;
  return target.filename() == "dax";
}

Granularity from_pmem2(pmem2_granularity g) {
  switch (g) {
    case PMEM2_GRANULARITY_BYTE: return Granularity::kByte;
    case PMEM2_GRANULARITY_CACHE_LINE: return Granularity::kCacheLine;
    case PMEM2_GRANULARITY_PAGE: return Granularity::kPage;
  }
  std::abort();
}

struct SourceDeleter {
  void operator()(pmem2_source* s) const { pmem2_source_delete(&s); }
};
struct ConfigDeleter {
  void operator()(pmem2_config* c) const { pmem2_config_delete(&c); }
};
using SourcePtr = std::unique_ptr<pmem2_source, SourceDeleter>;
using ConfigPtr = std::unique_ptr<pmem2_config, ConfigDeleter>;


// --- emulate_pmem: cache-line persistence on a DRAM-backed mapping ---------
//
// libpmem2 gives a non-DAX mapping msync-based functions (its memcpy msyncs
// too), so emulation brings its own: flush each 64-byte line with the best
// instruction the CPU has, fence with sfence, stream large copies. The cost
// is then what real ADR pmem costs, minus the media latency.

constexpr uintptr_t kLine = cpu_flush::kCacheLine;

struct EmulatedFlush {
  const char* name;
  void (*flush)(const void* addr, size_t len);
  void (*drain)();
  void (*copy)(void* dst, const void* src, size_t len);  // flushes, no drain
  void (*zero)(void* dst, size_t len);                   // flushes, no drain
};

#if defined(__x86_64__)

using cpu_flush::Instruction;

// Streams whole lines; the unaligned head and tail go through the cache and
// are flushed like any other store.
template <Instruction insn, bool kZero>
void stream_range(void* dst, const void* src, size_t len) {
  auto* d = static_cast<char*>(dst);
  auto* s = static_cast<const char*>(src);
  auto cached = [&](size_t n) {
    if (kZero) {
      std::memset(d, 0, n);
    } else {
      std::memcpy(d, s, n);
      s += n;
    }
    cpu_flush::write_back<insn>(d, n);
    d += n;
    len -= n;
  };
  if (len < kNonTemporalThreshold) {
    cached(len);
    return;
  }
  size_t head = (kLine - (reinterpret_cast<uintptr_t>(d) & (kLine - 1))) & (kLine - 1);
  cached(head);
  const __m128i zero = _mm_setzero_si128();
  for (; len >= kLine; len -= kLine, d += kLine) {
    auto* out = reinterpret_cast<__m128i*>(d);
    if (kZero) {
      for (int i = 0; i < 4; ++i) _mm_stream_si128(out + i, zero);
    } else {
      auto* in = reinterpret_cast<const __m128i*>(s);
      __m128i a = _mm_loadu_si128(in), b = _mm_loadu_si128(in + 1);
      __m128i c = _mm_loadu_si128(in + 2), e = _mm_loadu_si128(in + 3);
      _mm_stream_si128(out, a);
      _mm_stream_si128(out + 1, b);
      _mm_stream_si128(out + 2, c);
      _mm_stream_si128(out + 3, e);
      s += kLine;
    }
  }
  cached(len);
}

template <Instruction insn>
constexpr EmulatedFlush make_emulated() {
  return EmulatedFlush{
      cpu_flush::instruction_name(insn),
      &cpu_flush::write_back<insn>,
      &cpu_flush::store_fence,
      [](void* dst, const void* src, size_t len) { stream_range<insn, false>(dst, src, len); },
      [](void* dst, size_t len) { stream_range<insn, true>(dst, nullptr, len); },
  };
}

constexpr EmulatedFlush kClwbFlush = make_emulated<Instruction::kClwb>();
constexpr EmulatedFlush kClflushoptFlush = make_emulated<Instruction::kClflushopt>();
constexpr EmulatedFlush kClflushFlush = make_emulated<Instruction::kClflush>();

const EmulatedFlush* emulated_flush() {
  switch (cpu_flush::best_instruction()) {
    case Instruction::kClwb: return &kClwbFlush;
    case Instruction::kClflushopt: return &kClflushoptFlush;
    case Instruction::kClflush: return &kClflushFlush;
    case Instruction::kNone: return nullptr;
  }
  return nullptr;
}

#else

const EmulatedFlush* emulated_flush() { return nullptr; }

#endif

}  // namespace

struct RegionPmem2::Impl {
  pmem2_map* map = nullptr;
  pmem2_flush_fn flush = nullptr;
  pmem2_drain_fn drain = nullptr;
  pmem2_memcpy_fn memcpy = nullptr;
  pmem2_memset_fn memset = nullptr;
  // Set when emulate_pmem replaced libpmem2's msync-based functions.
  const EmulatedFlush* emulated = nullptr;

  ~Impl() {
    if (map != nullptr) pmem2_map_delete(&map);
  }
};

std::vector<Region::ByteRange> RegionPmem2::data_ranges(uint64_t offset, uint64_t length) const {
  if (kind_ == RegionKind::kDevDax || offset >= size()) return Region::data_ranges(offset, length);
  const uint64_t end = offset + std::min(length, size() - offset);
  std::vector<ByteRange> out;
  uint64_t at = offset;
  while (at < end) {
    off_t data = ::lseek(fd_, static_cast<off_t>(at), SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole up to the end of the file
      // No SEEK_DATA here (an old filesystem): assume all of it is data.
      out.push_back(ByteRange{at, end - at});
      break;
    }
    if (static_cast<uint64_t>(data) >= end) break;
    off_t hole = ::lseek(fd_, data, SEEK_HOLE);
    uint64_t stop = hole < 0 ? end : std::min<uint64_t>(static_cast<uint64_t>(hole), end);
    out.push_back(ByteRange{static_cast<uint64_t>(data), stop - static_cast<uint64_t>(data)});
    at = stop;
  }
  return out;
}

RegionPmem2::~RegionPmem2() {
  impl_.reset();   // unmap before the descriptor goes
  claim_.reset();  // and before the region is free for another owner
  if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<RegionPmem2>> RegionPmem2::open(const std::string& path,
                                                       const RegionOptions& options) {
  // O_NONBLOCK so that a FIFO given by mistake cannot hang the open; it is
  // cleared below because the descriptor is later handed to clients.
  int flags = (options.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK;
  int fd = ::open(path.c_str(), flags);
  if (fd < 0) {
    int err = errno;
    if (err == EISDIR) return Status(Code::kInvalid, path + ": is a directory, not a region");
    return Status::from_errno(err, "open region " + path);
  }
  std::unique_ptr<RegionPmem2> region(new RegionPmem2);
  region->fd_ = fd;  // closed by the destructor on every error path below
  region->impl_ = std::make_unique<Impl>();

  struct stat st;
  if (::fstat(fd, &st) != 0) return Status::from_errno(errno, "fstat " + path);
  if (S_ISCHR(st.st_mode)) {
    if (!is_devdax(st)) return Status(Code::kInvalid, path + ": not a devdax device");
    region->kind_ = RegionKind::kDevDax;
  } else if (!S_ISREG(st.st_mode)) {
    return Status(Code::kInvalid, path + ": not a regular file or devdax device");
  }
  if (::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) {
    return Status::from_errno(errno, "fcntl " + path);
  }
  if (options.claim) {
    ASSIGN_OR_RETURN(region->claim_, RegionClaim::acquire(fd, path, *options.claim));
  }

  pmem2_source* raw_source = nullptr;
  if (int ret = pmem2_source_from_fd(&raw_source, fd); ret != 0) {
    return pmem2_error(ret, path + ": pmem2_source_from_fd");
  }
  SourcePtr source(raw_source);

  // Not st_size: a devdax device reports 0 there.
  size_t source_size = 0;
  if (int ret = pmem2_source_size(source.get(), &source_size); ret != 0) {
    return pmem2_error(ret, path + ": pmem2_source_size");
  }
  if (source_size == 0) return Status(Code::kInvalid, path + ": region is empty (size 0)");
  size_t alignment = 0;
  if (int ret = pmem2_source_alignment(source.get(), &alignment); ret != 0) {
    return pmem2_error(ret, path + ": pmem2_source_alignment");
  }
  // sealfs works in 4 KiB blocks; an alignment below that would let an extent
  // boundary fall inside a block.
  uint64_t unit = alignment < kBlock ? kBlock : alignment;

  uint64_t length = options.length;
  if (length == 0) {
    length = source_size / unit * unit;
    if (length != source_size) {
      log().debug("{}: size {} rounded down to {} (alignment {})", path, source_size, length,
                  format_size(unit));
    }
    if (length == 0) {
      return Status(Code::kInvalid, path + ": region of " + std::to_string(source_size) +
                                        " bytes is smaller than its alignment " +
                                        format_size(unit));
    }
  } else if (length > source_size) {
    return Status(Code::kInvalid, path + ": requested length " + std::to_string(length) +
                                      " exceeds the source size " + std::to_string(source_size));
  } else if (length % unit != 0) {
    return Status(Code::kInvalid, path + ": requested length " + std::to_string(length) +
                                      " is not a multiple of the alignment " + format_size(unit));
  }

  pmem2_config* raw_config = nullptr;
  if (int ret = pmem2_config_new(&raw_config); ret != 0) {
    return pmem2_error(ret, "pmem2_config_new");
  }
  ConfigPtr config(raw_config);
  if (int ret = pmem2_config_set_length(config.get(), length); ret != 0) {
    return pmem2_error(ret, path + ": pmem2_config_set_length");
  }
  if (int ret = pmem2_config_set_sharing(config.get(), PMEM2_SHARED); ret != 0) {
    return pmem2_error(ret, path + ": pmem2_config_set_sharing");
  }
  unsigned prot = options.read_only ? PMEM2_PROT_READ : (PMEM2_PROT_READ | PMEM2_PROT_WRITE);
  if (int ret = pmem2_config_set_protection(config.get(), prot); ret != 0) {
    return pmem2_error(ret, path + ": pmem2_config_set_protection");
  }

  // Ask for the finest granularity first; libpmem2 refuses a mapping whose
  // source cannot honour the requested one, so the first success is the best.
  Impl& impl = *region->impl_;
  for (pmem2_granularity wanted :
       {PMEM2_GRANULARITY_BYTE, PMEM2_GRANULARITY_CACHE_LINE, PMEM2_GRANULARITY_PAGE}) {
    if (int ret = pmem2_config_set_required_store_granularity(config.get(), wanted); ret != 0) {
      return pmem2_error(ret, path + ": pmem2_config_set_required_store_granularity");
    }
    int ret = pmem2_map_new(&impl.map, config.get(), source.get());
    if (ret == 0) break;
    if (ret != PMEM2_E_GRANULARITY_NOT_SUPPORTED || wanted == PMEM2_GRANULARITY_PAGE) {
      return pmem2_error(ret, path + ": pmem2_map_new");
    }
  }

  region->base_ = static_cast<std::byte*>(pmem2_map_get_address(impl.map));
  region->size_ = pmem2_map_get_size(impl.map);
  region->alignment_ = unit;
  region->read_only_ = options.read_only;
  region->granularity_ = from_pmem2(pmem2_map_get_store_granularity(impl.map));
  impl.flush = pmem2_get_flush_fn(impl.map);
  impl.drain = pmem2_get_drain_fn(impl.map);
  impl.memcpy = pmem2_get_memcpy_fn(impl.map);
  impl.memset = pmem2_get_memset_fn(impl.map);
  if (region->kind_ != RegionKind::kDevDax && region->granularity_ != Granularity::kPage) {
    region->kind_ = RegionKind::kFsDax;
  }

  if (options.emulate_pmem) {
    if (region->granularity_ != Granularity::kPage) {
      log().info("{}: emulate_pmem ignored: the region is real persistent memory ({})", path,
                 region_kind_name(region->kind_));
    } else {
      impl.emulated = emulated_flush();
      if (impl.emulated == nullptr) {
        return Status(Code::kNotSupported,
                      path + ": emulate_pmem needs an x86-64 CPU with clflush");
      }
      region->emulated_ = true;
      region->granularity_ = Granularity::kCacheLine;
      struct statfs sfs;
      bool dram_backed = ::fstatfs(fd, &sfs) == 0 &&
                         (sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC);
      log().warn(
          "{}: persistence is EMULATED with {} + sfence: stores are NOT durable on disk{}",
          path, impl.emulated->name,
          dram_backed ? " (the file lives in DRAM and is lost at power-off)"
                      : " (this file is on a disk-backed filesystem and is never msync'ed)");
    }
  } else if (region->granularity_ == Granularity::kPage) {
    log().log(options.warn_if_not_dax ? spdlog::level::warn : spdlog::level::info,
              "{}: region is not DAX: direct mappings are emulated, persistence uses msync",
              path);
  }

  region->description_ = std::string(region_kind_name(region->kind_)) + " " + path + " (" +
                         (region->emulated_ ? "emulated " : "") +
                         granularity_name(region->granularity_) + " granularity, align " +
                         format_size(region->alignment_) + ")";
  return region;
}

void RegionPmem2::flush(const void* addr, size_t len) {
  if (impl_->emulated != nullptr) {
    impl_->emulated->flush(addr, len);
  } else {
    impl_->flush(addr, len);
  }
}

void RegionPmem2::drain() {
  if (impl_->emulated != nullptr) {
    impl_->emulated->drain();
  } else {
    impl_->drain();
  }
}

void RegionPmem2::copy_flush(RegionWriteKey, void* dst, const void* src, size_t len) {
  if (read_only_) {
    log().critical("copy_flush on read-only region {}", description_);
    std::abort();
  }
  if (impl_->emulated != nullptr) {
    impl_->emulated->copy(dst, src, len);
    return;
  }
  unsigned flags = PMEM2_F_MEM_NODRAIN;
  if (len >= kNonTemporalThreshold) flags |= PMEM2_F_MEM_NONTEMPORAL;
  impl_->memcpy(dst, src, len, flags);
}

void RegionPmem2::zero_flush(RegionWriteKey, void* dst, size_t len) {
  if (read_only_) {
    log().critical("zero_flush on read-only region {}", description_);
    std::abort();
  }
  if (impl_->emulated != nullptr) {
    impl_->emulated->zero(dst, len);
    return;
  }
  unsigned flags = PMEM2_F_MEM_NODRAIN;
  if (len >= kNonTemporalThreshold) flags |= PMEM2_F_MEM_NONTEMPORAL;
  impl_->memset(dst, 0, len, flags);
}

}  // namespace sealfs
