// mkfs.sealfs: writes a new, empty sealfs onto a devdax device, a file on a
// DAX filesystem, or an ordinary file.
//
// Exit status (e2fsprogs style): 0 success; 1 for any failure, usage errors
// included. On every failure before "writing" the target is left untouched:
// all arguments, the layout and the backing store's free space
// (backing_store.h) are checked, and the blocks the format writes are
// allocated, before the first byte changes. A media error while writing (the
// backing store filled up anyway, poison) ends mkfs with status 1 rather than
// SIGBUS; the old superblocks are cleared first, so the target then holds no
// valid filesystem (Formatter::format).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "media/formatter.h"
#include "media/media_fault.h"
#include "media/region_pmem2.h"
#include "tools/backing_store.h"
#include "tools/fs_probe.h"
#include "tools/mkfs_args.h"
#include "tools/uuid_text.h"
#include "util/log.h"
#include "util/units.h"
#include "util/version.h"

namespace sealfs {
namespace {

using mkfs::Args;
using mkfs::fail;
using mkfs::kExitError;
using mkfs::kExitOk;

void print_layout(const Superblock& sb, const std::string& target, const std::string& source,
                  bool dry_run) {
  const Geometry& g = sb.geometry;
  std::printf("%s%s: %s\n", dry_run ? "dry run, nothing written: " : "", target.c_str(),
              source.c_str());
  struct Row {
    const char* name;
    uint64_t start, blocks;
  };
  const Row rows[] = {{"superblock", 0, 1},
                      {"journal", g.journal_start, g.journal_blocks},
                      {"holder table", g.holder_start, g.holder_blocks},
                      {"inode table", g.inode_start, g.inode_blocks},
                      {"bitmap", g.bitmap_start, g.bitmap_blocks},
                      {"data", g.data_start, g.data_blocks},
                      {"backup superblock", g.backup_block(), 1}};
  std::printf("  %-18s %-24s %-14s %s\n", "area", "blocks", "offset", "size");
  for (const Row& r : rows) {
    std::string range = fmt::format("{}-{}", r.start, r.start + r.blocks - 1);
    std::printf("  %-18s %-24s %-14llu %s\n", r.name, range.c_str(),
                static_cast<unsigned long long>(block_offset(r.start)),
                format_size(block_offset(r.blocks)).c_str());
  }
  std::printf("inodes: %llu\n", static_cast<unsigned long long>(g.inode_count));
  std::printf("data: %llu blocks, %s\n", static_cast<unsigned long long>(g.data_blocks),
              format_size(block_offset(g.data_blocks)).c_str());
  std::printf("alignment: %s\n", format_size(g.device_alignment).c_str());
  std::printf("label: %s\n", sb.label.empty() ? "(none)" : sb.label.c_str());
  std::printf("uuid: %s\n", dry_run ? "(chosen when written)" : uuid_text(sb.uuid).c_str());
}

LayoutRequest layout_request(const Args& args, uint64_t region_size, uint64_t alignment) {
  LayoutRequest r;
  r.region_size = region_size;
  r.device_alignment = args.align != 0 ? args.align : alignment;
  r.inode_count = args.inodes;
  r.journal_bytes = args.journal_bytes;
  return r;
}

FormatOptions format_options(const Args& args, const Region& region) {
  FormatOptions o;
  o.layout = layout_request(args, 0, region.alignment());
  o.label = args.label;
  o.inline_data = args.inline_data;
  // The root belongs to whoever makes the filesystem: an unprivileged user's
  // FUSE mount must be able to write its own root.
  o.root_uid = static_cast<uint32_t>(getuid());
  o.root_gid = static_cast<uint32_t>(getgid());
  return o;
}

std::string describe(const RegionPmem2& region) {
  return fmt::format("{}, {}, {} granularity", region_kind_name(region.kind()),
                     format_size(region.size()), granularity_name(region.granularity()));
}

// On a file, punching holes over the inode table and bitmap zeroes them for
// the price of a metadata update instead of writing (and for a sparse file,
// allocating) hundreds of MiB. A device, or a filesystem without hole
// punching, leaves the formatter to zero them itself.
bool punch_metadata(const RegionPmem2& region, const Geometry& g) {
  if (region.kind() == RegionKind::kDevDax) return false;
  const uint64_t start = block_offset(g.inode_start);
  const uint64_t length = block_offset(g.data_start) - start;
  return ::fallocate(region.fd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                     static_cast<off_t>(start), static_cast<off_t>(length)) == 0;
}

// -f overrides what is on the target, not who uses it: a live owner refuses
// mkfs even with -f (media/region_owner.h).
ClaimRequest mkfs_claim_request(const Args& args) {
  return tool_claim_request(OwnerRole::kMkfs, "mkfs.sealfs", args.target);
}

Result<std::unique_ptr<RegionClaim>> claim_target(const Args& args) {
  int fd = ::open(args.target.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return Status::from_errno(errno, "cannot open " + args.target);
  auto claim = RegionClaim::acquire(fd, args.target, mkfs_claim_request(args));
  ::close(fd);  // the claim has a descriptor of its own
  return claim;
}

// Refuses a target that holds a filesystem, unless forced.
int check_existing(const Args& args, const RegionPmem2& region) {
  auto found = probe_filesystem(region.data(), std::min<uint64_t>(region.size(), kProbeBytes));
  if (!found) return -1;
  if (args.force) {
    if (!args.quiet) std::printf("%s: overwriting %s (forced)\n", args.target.c_str(), found->c_str());
    return -1;
  }
  return fail("{} contains a {} filesystem; use -f to overwrite it", args.target, *found);
}

// A region file must fit on the filesystem that holds it, or the user must
// say what to do about it (backing_store.h). Returns -1 to go on.
int check_backing_store(const Args& args, uint64_t region_bytes) {
  auto space = measure_backing_space(args.target, region_bytes);
  if (!space.is_ok()) return fail("{}", space.status().message());
  std::string warning;
  Status verdict = judge_backing_space(args.target, *space, args.sparse, &warning);
  if (!verdict.is_ok()) return fail("{}", verdict.message());
  if (!warning.empty() && !args.quiet) {
    std::fprintf(stderr, "mkfs.sealfs: %s\n", warning.c_str());
  }
  return -1;
}

// --allocate: every block of the region file, before any byte is written.
Status allocate_file(const std::string& target, uint64_t size) {
  int fd = ::open(target.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return Status::from_errno(errno, "open " + target);
  Status s = allocate_range(fd, 0, size);
  ::close(fd);
  return s;
}

int run(const Args& args) {
  if (args.quiet) set_log_level("error");
  struct stat st;
  bool exists = ::stat(args.target.c_str(), &st) == 0;
  if (!exists && (errno != ENOENT || args.size == 0)) {
    return fail("cannot access {}: {}", args.target, std::strerror(errno));
  }
  if (exists && S_ISDIR(st.st_mode)) return fail("{} is a directory", args.target);
  if (exists && !S_ISREG(st.st_mode) && args.size != 0) {
    return fail("--size applies to files only; {} is a device", args.target);
  }
  if (exists && !S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode)) {
    return fail("{} is neither a regular file nor a devdax device", args.target);
  }
  if (exists && (st.st_mode & (S_IROTH | S_IWOTH)) != 0 && !args.quiet) {
    std::fprintf(stderr,
                 "mkfs.sealfs: warning: %s is accessible to all users (mode %04o): they can read "
                 "every file of the new filesystem; run 'chmod o-rw %s'\n",
                 args.target.c_str(), static_cast<unsigned>(st.st_mode & 07777),
                 args.target.c_str());
  }

  // A file that must be created or grown: check the final layout before
  // creating or growing anything.
  const uint64_t current = exists && S_ISREG(st.st_mode) ? static_cast<uint64_t>(st.st_size) : 0;
  const bool grow = args.size > current;
  if (args.size != 0 && args.size < current) {
    // Never shrinks: say so, or a user who asked for less formats all of it
    // without knowing (a new user's trial).
    std::fprintf(stderr, "mkfs.sealfs: note: %s is %s already, larger than --size %s: it is "
                         "formatted whole (mkfs never shrinks a file; truncate it first)\n",
                 args.target.c_str(), format_size(current).c_str(), format_size(args.size).c_str());
  }
  if (grow || (exists && S_ISREG(st.st_mode))) {
    uint64_t final_size = std::max(args.size, current) / format::kBlockSize * format::kBlockSize;
    Result<Geometry> g = compute_geometry(layout_request(args, final_size, format::kBlockSize));
    if (!g.is_ok()) return fail("{}: {}", args.target, g.status().message());
  }

  // One owner per region: held from before the first read of the target to
  // the exit, across the probe, the growth of a file and the format.
  std::unique_ptr<RegionClaim> claim;
  if (exists && !args.dry_run) {
    auto claimed = claim_target(args);
    if (!claimed.is_ok()) return fail("{}", claimed.status().message());
    claim = std::move(claimed).value();
  }

  if (exists) {
    // Probe through a read-only mapping: a devdax device cannot be read(2).
    RegionOptions ro;
    ro.read_only = true;
    // The "not DAX" warning belongs to the open that formats, said once.
    set_log_level("error");
    auto probe = RegionPmem2::open(args.target, ro);
    set_log_level(args.quiet ? "error" : "warn");
    if (!probe.is_ok()) return fail("{}", probe.status().message());
    if (claim != nullptr && !claim->covers((*probe)->fd())) {
      return fail("{} was replaced while mkfs ran; nothing written", args.target);
    }
    if (int rc = check_existing(args, **probe); rc >= 0) return rc;
    if (args.align != 0 && args.align < (*probe)->alignment()) {
      return fail("alignment {} is below the device's alignment {}", args.align,
                  (*probe)->alignment());
    }
    if (args.dry_run && !grow) {
      auto plan = Formatter::plan(**probe, format_options(args, **probe));
      if (!plan.is_ok()) return fail("{}: {}", args.target, plan.status().message());
      print_layout(*plan, args.target, describe(**probe), true);
      return kExitOk;
    }
  }
  if (args.dry_run) {
    // The file does not exist yet, or is smaller than --size: show the layout
    // it would get, touching nothing.
    Result<Geometry> g = compute_geometry(layout_request(args, args.size, format::kBlockSize));
    if (!g.is_ok()) return fail("{}: {}", args.target, g.status().message());
    Superblock sb;
    sb.geometry = *g;
    sb.label = args.label;
    print_layout(sb, args.target, fmt::format("file, {} after --size", format_size(args.size)),
                 true);
    return kExitOk;
  }

  // A region file (not a device): will its filesystem hold the region?
  const bool is_file = !exists || S_ISREG(st.st_mode);
  const uint64_t final_size = std::max(args.size, current);
  if (is_file) {
    if (int rc = check_backing_store(args, final_size); rc >= 0) return rc;
  }
  // What this run did to the file is undone on every failure below: a file
  // it created goes, a file it grew gets its old size back.
  auto undo_file = [&] {
    if (!exists) {
      ::unlink(args.target.c_str());
    } else if (grow) {
      if (::truncate(args.target.c_str(), static_cast<off_t>(current)) != 0) {
        std::fprintf(stderr, "mkfs.sealfs: cannot shrink %s back to %llu bytes: %s\n",
                     args.target.c_str(), static_cast<unsigned long long>(current),
                     std::strerror(errno));
      }
    }
  };
  // Faults on the mapping turn into errors from here on (media_fault.h).
  if (!install_media_fault_handler()) {
    return fail("cannot install the SIGBUS handler: {}", std::strerror(errno));
  }

  if (grow) {
    // The region holds every file's bytes, whatever the modes inside say:
    // only its owner may read it (docs/daemon.md, "Who can read the region").
    // O_EXCL for a new file: one that appeared since the stat above is
    // someone else's, not ours to size or format.
    int fd = ::open(args.target.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | (exists ? 0 : O_EXCL),
                    0600);
    if (fd < 0) return fail("cannot create {}: {}", args.target, std::strerror(errno));
    if (claim == nullptr) {
      auto claimed = RegionClaim::acquire(fd, args.target, mkfs_claim_request(args));
      if (!claimed.is_ok()) {
        ::close(fd);
        return fail("{}", claimed.status().message());
      }
      claim = std::move(claimed).value();
    }
    // Sparse: only the metadata the formatter writes gets allocated.
    int rc = ::ftruncate(fd, static_cast<off_t>(args.size));
    int err = errno;
    ::close(fd);
    if (rc != 0) {
      undo_file();
      if (err == EFBIG) {
        return fail("cannot grow {} to {}: the filesystem holding it allows no file that large "
                    "({}); nothing written; use a smaller --size",
                    args.target, format_size(args.size), std::strerror(err));
      }
      return fail("cannot grow {} to {}: {}; nothing written", args.target,
                  format_size(args.size), std::strerror(err));
    }
  }
  if (is_file && args.sparse == SparsePolicy::kAllocate) {
    if (Status s = allocate_file(args.target, final_size); !s.is_ok()) {
      undo_file();
      return fail("{}: {}; nothing written", args.target, s.message());
    }
  }

  auto region = RegionPmem2::open(args.target, RegionOptions{});
  if (!region.is_ok()) {
    undo_file();
    return fail("{}", region.status().message());
  }
  if (claim != nullptr && !claim->covers((*region)->fd())) {
    return fail("{} was replaced while mkfs ran (it no longer names the file mkfs claimed); "
                "nothing written", args.target);
  }
  if (args.align != 0 && args.align < (*region)->alignment()) {
    const uint64_t alignment = (*region)->alignment();
    region->reset();
    undo_file();
    return fail("alignment {} is below the device's alignment {}", args.align, alignment);
  }
  FormatOptions options = format_options(args, **region);
  auto plan = Formatter::plan(**region, options);
  if (!plan.is_ok()) {
    region->reset();
    undo_file();
    return fail("{}: {}", args.target, plan.status().message());
  }
  if (is_file) {
    // The blocks the format stores to are allocated first, so that a full
    // backing store fails here, with nothing written, rather than half way.
    if (Status s = reserve_format_blocks((*region)->fd(), plan->geometry); !s.is_ok()) {
      region->reset();
      undo_file();
      return fail("{}: {}; nothing written", args.target, s.message());
    }
  }
  // --allocate keeps the inode table and bitmap allocated (punching them
  // would make the file sparse again); they read as zero, so the formatter's
  // zeroing finds nothing to write there.
  if (args.sparse != SparsePolicy::kAllocate) {
    options.metadata_zeroed = punch_metadata(**region, plan->geometry);
  }
  auto sb = Formatter::format(**region, options);
  if (!sb.is_ok()) {
    region->reset();
    undo_file();
    if (sb.status().code() == Code::kIoError) {
      return fail("{}: {}; the format was cut short and {} holds no valid filesystem now (the "
                  "old superblocks are cleared first)",
                  args.target, sb.status().message(), args.target);
    }
    return fail("{}: {}", args.target, sb.status().message());
  }
  if (!args.quiet) print_layout(*sb, args.target, describe(**region), false);
  return kExitOk;
}

}  // namespace
}  // namespace sealfs

int main(int argc, char** argv) {
  sealfs::mkfs::Args args;
  if (int rc = sealfs::mkfs::parse_args(argc, argv, args); rc >= 0) return rc;
  return sealfs::run(args);
}
