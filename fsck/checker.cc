// Orchestration: phases 1 (superblock) and 2 (journal) here, the rest in
// phase_*.cc; repair rounds and the verification pass.
#include "fsck/checker.h"

#include <chrono>
#include <cstring>
#include <memory>
#include <new>

#include "fsck/context.h"
#include "fsck/preen.h"
#include "fsck/readonly_region.h"
#include "media/journal.h"
#include "media/superblock.h"

namespace sealfs::fsck {

namespace {

Result<Superblock> decode_block(const std::byte* block, uint64_t region_size) {
  format::DiskSuperblock disk{};
  std::memcpy(&disk, block, sizeof(disk));
  return decode_superblock(disk, region_size);
}

Result<Superblock> decode_at(const Region& region, uint64_t block) {
  if (block >= region.size() / format::kBlockSize) {
    return Status(Code::kCorruption, "superblock block past the region");
  }
  return decode_block(region.data() + block * format::kBlockSize, region.size());
}

void write_superblock_block(Image& image, uint64_t block, const Superblock& sb) {
  format::DiskSuperblock disk = encode_superblock(sb);
  std::byte* b = image.edit_block(block);
  std::memset(b, 0, format::kBlockSize);
  std::memcpy(b, &disk, sizeof(disk));
}

// Neither superblock location carries the magic: most likely never
// formatted (or formatted as something else), not a damaged sealfs.
bool no_magic_anywhere(const Region& region) {
  const uint64_t blocks = region.size() / format::kBlockSize;
  for (uint64_t block : {uint64_t{format::kSuperblockBlock}, blocks - 1}) {
    if (blocks == 0) break;
    uint64_t magic = 0;
    std::memcpy(&magic, region.data() + block * format::kBlockSize, sizeof(magic));
    if (le64toh(magic) == format::kSuperMagic) return false;
  }
  return true;
}

bool same_geometry(const Geometry& a, const Geometry& b) {
  return std::memcmp(&a, &b, sizeof(Geometry)) == 0;
}

// One pass over the image. In repair mode `region` is writable and the
// overlay is committed after each phase.
void run_pass(Region& region, const FsckOptions& opt, Report& report) {
  Image image(region);
  Context ctx(image, report, opt);
  auto fail = [&](const std::string& what) {
    report.operational_error = what;
  };
  auto phase_done = [&](Phase p) -> bool {
    report.phases[static_cast<int>(p)].ran = true;
    if (!opt.repair) return true;
    Status s = image.commit();
    if (!s.is_ok()) {
      fail(std::string("committing ") + phase_name(p) + " repairs: " + s.to_string());
      return false;
    }
    return true;
  };

  // Phase 1: superblock.
  bool used_backup = false;
  auto sb = read_superblock(region, &used_backup);
  if (!sb.is_ok() && no_magic_anywhere(region)) {
    // Not a filesystem at all: no phase ran (the report would say
    // "superblock: ok" for a blank target).
    fail("not a sealfs filesystem (bad magic); run mkfs.sealfs to create one");
    return;
  }
  if (!sb.is_ok()) {
    report.phases[0].ran = true;
    report.add(Phase::kSuperblock, "no_superblock", 0,
               "neither superblock is valid: " + sb.status().to_string(), false);
    fail("no valid superblock: both copies fail their checks, and fsck repairs only from a valid "
         "one; keep a copy of the region before anything else writes to it (docs/fsck.md)");
    return;
  }
  ctx.sb = *sb;
  image.set_geometry(sb->geometry);
  if (sb->state == format::kStateNeedsCheck) {
    // Read before the replay, which restores the logged state: the stamp
    // lives outside the journal (Journal::stamp_needs_check).
    std::string who = sb->describe_last_mount();
    report.note(Phase::kSuperblock, "marked_needs_check",
                "the daemon met damage or a media error while mounted" +
                    (who.empty() ? std::string() : " by " + who) +
                    (used_backup ? std::string(" (as the backup copy says, the primary being "
                                               "bad: the stamp goes to both copies and a check "
                                               "clears only the primary's, so it may be one an "
                                               "earlier check has handled)")
                                 : std::string()) +
                    "; " +
                    (opt.repair ? "the mark is cleared by this check"
                                : "read-write mounts are refused until fsck.sealfs -y"));
  }
  report.counts.inodes_total = sb->geometry.inode_count;
  report.counts.data_blocks = sb->geometry.data_blocks;
  if (opt.repair && needs_read_only(*sb)) {
    report.phases[0].ran = true;
    fail("unknown read-only-compatible features: this fsck must not write the image");
    return;
  }
  if (!used_backup) {
    auto backup = decode_at(region, sb->geometry.backup_block());
    // Feature words too: a reader falling back to the backup must meet the
    // features the primary announces.
    const bool features_differ =
        backup.is_ok() && (backup->feature_compat != sb->feature_compat ||
                           backup->feature_ro_compat != sb->feature_ro_compat ||
                           backup->feature_incompat != sb->feature_incompat);
    if (!backup.is_ok() || !same_geometry(backup->geometry, sb->geometry) || features_differ) {
      ctx.problem(Phase::kSuperblock, "backup_superblock_bad", 0,
                  ctx.fix(!backup.is_ok() ? backup.status().to_string()
                          : features_differ ? std::string("feature words differ from the primary")
                                            : std::string("geometry differs from the primary"),
                          "backup rewritten from the primary",
                          "rewrite the backup from the primary"));
      write_superblock_block(image, sb->geometry.backup_block(), *sb);
    }
  }
  report.phases[0].ran = true;

  // Phase 2: journal.
  std::unique_ptr<Journal> journal;
  {
    auto opened = check_journal(ctx, region);
    if (!opened.is_ok()) {
      fail("journal: " + opened.status().to_string());
      return;
    }
    journal = std::move(*opened);
  }
  if (opt.repair) {
    if (!journal) {
      fail("journal could not be opened for writing");
      return;
    }
    image.attach_journal(journal.get());
  }
  // Replay may have rewritten the superblock (orphan head, state) or even
  // repaired a torn primary; with -n it did so in the overlay.
  bool state_from_backup = false;
  {
    auto primary = decode_block(image.read_block(format::kSuperblockBlock), region.size());
    if (primary.is_ok() && same_geometry(primary->geometry, sb->geometry)) {
      ctx.sb = *primary;
    } else {
      ctx.problem(Phase::kSuperblock, "primary_superblock_bad", 0,
                  ctx.fix(primary.is_ok() ? std::string("geometry differs from the backup")
                                          : primary.status().to_string(),
                          "primary restored from the backup",
                          "restore the primary from the backup"));
      write_superblock_block(image, format::kSuperblockBlock, ctx.sb);
      state_from_backup = used_backup;
    }
  }
  if (region.size() / format::kBlockSize > ctx.sb.geometry.region_blocks) {
    // A region file grown after mkfs (truncate -s): the filesystem stays
    // the size it was made, its backup superblock where it was written.
    report.note(Phase::kSuperblock, "region_larger_than_filesystem",
                "the region is " + std::to_string(region.size()) +
                    " bytes, the filesystem was made for " +
                    std::to_string(ctx.sb.geometry.region_size) +
                    ": the rest is unused (sealfs does not grow), and the backup superblock "
                    "is block " + std::to_string(ctx.sb.geometry.backup_block()));
  }
  if (sb->state == format::kStateNeedsCheck && ctx.sb.state != format::kStateNeedsCheck &&
      opt.repair) {
    // The replay restored the logged state over the stamp; keep the mark in
    // the journal's view too, so that a repair cut short (killed, or stopped
    // by an error) leaves it for the next mount. The final commit clears it.
    ctx.sb.state = format::kStateNeedsCheck;
    ctx.superblock_changed();
  }
  if (ctx.sb.state == format::kStateMounted && state_from_backup) {
    // The backup is written by mkfs and, during a mount, when a feature bit
    // is set or the needs-check stamp is made (Journal::refresh_backup_superblock,
    // stamp_needs_check), never at unmount: "mounted" there is the state of
    // that moment and says nothing about how the daemon last stopped.
    report.note(Phase::kSuperblock, "state_from_backup",
                std::string("the primary superblock is bad, so the state is the backup "
                            "copy's, which says mounted: the backup is written at mkfs and "
                            "while mounted (when a feature is turned on), never at unmount, "
                            "so this is expected and does not tell whether the daemon "
                            "unmounted cleanly (the phases below check what a crash may "
                            "have left); ") +
                    (opt.repair ? "the restored primary is marked clean"
                                : "-y marks the restored primary clean"));
  } else if (ctx.sb.state == format::kStateMounted) {
    // Informational: after a crash this is expected, and what the crash
    // left is what the phases check.
    report.note(Phase::kSuperblock, "not_cleanly_unmounted",
                std::string("the superblock says mounted: the daemon did not unmount cleanly "
                            "(or still runs); ") +
                    (opt.repair ? "marked clean" : "-y marks it clean"));
  }
  if (!phase_done(Phase::kJournal)) return;

  check_inodes(ctx);
  if (!phase_done(Phase::kInodes)) return;
  check_extents(ctx);
  if (!phase_done(Phase::kExtents)) return;
  check_bitmap(ctx);
  if (!phase_done(Phase::kBitmap)) return;
  check_directories(ctx);
  if (!phase_done(Phase::kDirectories)) return;
  check_links(ctx);
  if (!phase_done(Phase::kLinks)) return;
  check_orphans(ctx);
  if (!phase_done(Phase::kOrphans)) return;

  if (opt.repair && journal) {
    ctx.sb.last_check_time_ns = opt.now_ns;
    ctx.sb.state = format::kStateClean;
    ctx.superblock_changed();
    Status s = image.commit();
    if (s.is_ok()) s = journal->checkpoint();
    if (!s.is_ok()) fail("final commit: " + s.to_string());
  }
}

Report checked_pass(const Region& region, const FsckOptions& opt) {
  ReadOnlyRegion view(region);
  FsckOptions check = opt;
  check.repair = false;
  Report report;
  report.target = opt.target;
  run_pass(view, check, report);
  return report;
}

int exit_code_for(const Report& r) {
  if (!r.operational_error.empty()) return kExitOperational;
  if (r.problem_count == 0) return kExitClean;
  if (!r.repair || r.remaining_after_repair > 0 || r.repaired_count < r.problem_count) {
    return kExitUncorrected;
  }
  return kExitCorrected;
}

}  // namespace

Report run_fsck(Region& region, const FsckOptions& options) {
  FsckOptions opt = options;
  if (opt.now_ns == 0) {
    opt.now_ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                           std::chrono::system_clock::now().time_since_epoch())
                                           .count());
  }
  Report report;
  report.target = opt.target;
  report.repair = opt.repair;
  try {
    uint64_t unsafe = 0;
    if (opt.preen && opt.repair && !region.read_only()) {
      // Look before touching anything: preen repairs all or nothing.
      report = checked_pass(region, opt);
      for (const Problem& p : report.problems) unsafe += preen_safe(p.kind) ? 0 : 1;
      // Unlisted problems (past kMaxListedProblems) are not known to be safe.
      unsafe += report.problem_count - report.problems.size();
    }
    if (opt.preen && (unsafe > 0 || !report.operational_error.empty())) {
      report.repair = false;
      report.preen = true;
      report.preen_unsafe = unsafe;
    } else if (!opt.repair || region.read_only()) {
      report = checked_pass(region, opt);
      report.repair = false;
    } else {
      // Repair, then verify with a fresh check-only pass; a repair can
      // uncover what it hid (a freed inode's blocks), so allow a few rounds.
      // A repair that stopped (a media error, say) is not verified: the
      // check would read the media that just failed.
      report = Report{};
      report.target = opt.target;
      report.repair = true;
      report.preen = opt.preen;
      run_pass(region, opt, report);
      for (int round = 0; report.operational_error.empty(); ++round) {
        Report verify = checked_pass(region, opt);
        report.counts = verify.counts;
        report.remaining_after_repair = verify.problem_count;
        if (!verify.operational_error.empty()) {
          report.operational_error = verify.operational_error;
          break;
        }
        if (verify.problem_count == 0 || round == 2 || !report.operational_error.empty()) break;
        Report again;
        again.repair = true;
        run_pass(region, opt, again);
        for (const Problem& p : again.problems) {
          report.add(p.phase, p.kind, p.inode,
                     p.detail + " (repair round " + std::to_string(round + 2) + ")", p.repaired);
        }
        if (!again.operational_error.empty()) report.operational_error = again.operational_error;
      }
    }
  } catch (const std::bad_alloc&) {
    report.operational_error = "out of memory";
  }
  report.exit_code = exit_code_for(report);
  return report;
}

}  // namespace sealfs::fsck
