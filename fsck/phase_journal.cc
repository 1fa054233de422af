// Phase 2: the journal. With -y, replay what is committed (past damaged
// transactions too, RecoveryMode::kSalvage) and hand the journal to the
// overlay; with -n, write nothing but lay what replay would write over the
// overlay, so that the later phases check the state -y would start from.
#include <algorithm>
#include <cstring>
#include <string>

#include "fsck/context.h"
#include "media/journal.h"

namespace sealfs::fsck {

namespace {

std::string count(uint64_t n, const char* what) {
  return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
}

void apply_to_overlay(Image& image, const ReplayRecord& rec) {
  uint64_t done = 0;
  while (done < rec.length) {
    uint64_t at = rec.region_offset + done;
    uint64_t in_block = at % format::kBlockSize;
    uint64_t n = std::min<uint64_t>(rec.length - done, format::kBlockSize - in_block);
    std::memcpy(image.edit_block(at / format::kBlockSize) + in_block, rec.payload + done, n);
    done += n;
  }
}

void report_recovery(Context& ctx, const RecoveryStats& rs) {
  const bool repair = ctx.repair();
  if (rs.corrupt_seq != 0 && rs.transactions_after_corrupt == 0) {
    // The last transaction committed (its header and commit record stand)
    // but its body fails its checks: -y replays what comes before it and
    // the later phases repair what its loss leaves inconsistent.
    ctx.problem(Phase::kJournal, "journal_corrupt_last", 0,
                "transaction " + std::to_string(rs.corrupt_seq) + " at block " +
                    std::to_string(rs.corrupt_block) +
                    " committed but is damaged (the last in the log); " +
                    (repair ? "replayed " : "-y replays ") +
                    count(rs.transactions_before_corrupt, "transaction") +
                    " before it, " + count(rs.lost_transactions, "transaction") + " lost");
  } else if (rs.corrupt_seq != 0) {
    // Fixable: -y replays around the damage and the later phases repair
    // what the lost transactions leave inconsistent.
    ctx.problem(Phase::kJournal, "journal_corrupt_middle", 0,
                "transaction " + std::to_string(rs.corrupt_seq) + " at block " +
                    std::to_string(rs.corrupt_block) + " is corrupt but " +
                    count(rs.transactions_after_corrupt, "later committed transaction") +
                    " follow; " + (repair ? "replayed " : "-y replays ") +
                    std::to_string(rs.transactions_before_corrupt) + " before it and " +
                    std::to_string(rs.transactions_after_corrupt) + " after it in order, " +
                    count(rs.lost_transactions, "transaction") + " lost");
  } else if (rs.replayed_transactions > 0) {
    if (repair) {
      ctx.problem(Phase::kJournal, "journal_replayed", 0,
                  count(rs.replayed_transactions, "committed transaction") + " replayed");
    } else {
      ctx.report.note(Phase::kJournal, "journal_needs_recovery",
                      count(rs.replayed_transactions, "committed transaction") +
                          " wait for replay; checked as replayed (in memory only), -y "
                          "replays them");
    }
  }
  if (repair) {
    ctx.report.counts.journal_transactions_replayed = rs.replayed_transactions;
  } else {
    ctx.report.counts.journal_transactions_pending = rs.replayed_transactions;
  }
  if (rs.standby_header_bad) {
    // Any header write goes to the standby slot, and a repair always ends
    // with a checkpoint, which writes one.
    ctx.problem(Phase::kJournal, "journal_header_slot_bad", 0,
                ctx.fix("the standby journal header slot fails its magic or crc check",
                        "rewritten from the current header",
                        "rewrite it from the current header"));
  }
}

}  // namespace

Result<std::unique_ptr<Journal>> check_journal(Context& ctx, Region& region) {
  const JournalArea area{ctx.geo().journal_start, ctx.geo().journal_blocks};
  if (!ctx.repair()) {
    auto preview = Journal::preview(region, area);
    if (!preview.is_ok()) {
      ctx.problem(Phase::kJournal, "journal_corrupt", 0,
                  preview.status().to_string() + "; -y resets the journal (history lost)");
      return std::unique_ptr<Journal>();
    }
    report_recovery(ctx, preview->stats);
    for (const ReplayRecord& rec : preview->records) apply_to_overlay(ctx.image, rec);
    return std::unique_ptr<Journal>();
  }
  RecoveryStats rs;
  auto opened = Journal::open(region, area, &rs, RecoveryMode::kSalvage);
  if (opened.is_ok()) {
    report_recovery(ctx, rs);
    return opened;
  }
  if (opened.status().code() == Code::kIoError) {
    // A media error (media_fault.h) stopped the replay: the log is whole,
    // and resetting it would lose committed transactions. Stop with nothing
    // more written; a later run, once the media takes writes, replays.
    return Status(Code::kIoError,
                  "replay: " + opened.status().message() +
                      "; nothing changed: give the backing store room (or replace the media) "
                      "and run fsck.sealfs again");
  }
  ctx.problem(Phase::kJournal, "journal_corrupt", 0,
              ctx.fix(opened.status().to_string(), "journal reset (uncommitted history lost)",
                      "reset the journal (uncommitted history lost)"));
  RETURN_IF_ERROR(Journal::format(region, area));
  return Journal::open(region, area);
}

}  // namespace sealfs::fsck
