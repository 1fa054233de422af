#include "media/journal.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "media/journal_log.h"
#include "media/superblock.h"
#include "sealfs/format.h"
#include "util/log.h"
#include "util/thread_annotations.h"

namespace sealfs {

namespace jl = journal_log;
using format::kBlockSize;

namespace {

[[noreturn]] void die(const std::string& what) {
  log().critical("journal invariant broken: {}", what);
  std::abort();
}

Status check_area(const Region& region, const JournalArea& area) {
  uint64_t region_blocks = region.size() / kBlockSize;
  if (area.blocks < 2) {
    return Status(Code::kInvalid, "journal area of " + std::to_string(area.blocks) +
                                      " blocks: need a header block and a log block");
  }
  if (area.start_block > region_blocks || area.blocks > region_blocks - area.start_block) {
    return Status(Code::kInvalid, "journal area [" + std::to_string(area.start_block) + ", +" +
                                      std::to_string(area.blocks) + ") lies outside the " +
                                      std::to_string(region_blocks) + "-block region");
  }
  return Status::ok();
}

// What recovery finds in the log, before anything is written.
struct Plan {
  jl::HeaderState header;
  int slot = 0;
  jl::LogScan scan;
  Status records;  // kCorruption if a record would land outside its bounds
  RecoveryStats stats;
};

Result<Plan> make_plan(const Region& region, const JournalArea& area) {
  RETURN_IF_ERROR(check_area(region, area));
  const uint64_t area_begin = area.start_block * kBlockSize;
  const uint64_t area_end = (area.start_block + area.blocks) * kBlockSize;
  const uint64_t capacity = (area.blocks - 1) * kBlockSize;
  const std::byte* log = region.data() + area_begin + kBlockSize;
  Plan plan;
  bool standby_valid = false;
  ASSIGN_OR_RETURN(plan.header,
                   jl::read_header_block(region.data() + area_begin, &plan.slot, &standby_valid));
  const jl::HeaderState& header = plan.header;
  // A tail at the very end of the log means 0 (the scan wraps at once);
  // earlier versions wrote it when a checkpoint followed a transaction that
  // ended exactly there.
  if (header.tail_offset > capacity || header.tail_offset % 8 != 0) {
    return Status(Code::kCorruption, "journal header: tail offset " +
                                         std::to_string(header.tail_offset) +
                                         " is not inside the " + std::to_string(capacity) +
                                         "-byte log");
  }
  plan.scan = jl::scan_log(log, capacity, header.salt, header.tail_offset, header.tail_seq,
                           header.ordered_commits());

  // Every record is checked before any is applied, so a corrupt log changes
  // nothing at home.
  uint64_t bytes = 0;
  for (const auto& txn : plan.scan.transactions) {
    jl::for_each_record(log + txn.offset, [&](uint64_t off, const std::byte*, uint32_t len) {
      bytes += len;
      if (!plan.records.is_ok()) return;
      std::string where = "journal transaction " + std::to_string(txn.seq) + ": record [" +
                          std::to_string(off) + ", +" + std::to_string(len) + ")";
      if (off > region.size() || len > region.size() - off) {
        plan.records = Status(Code::kCorruption, where + " lies outside the region");
      } else if (off < area_end && off + len > area_begin) {
        plan.records = Status(Code::kCorruption, where + " overlaps the journal area");
      }
    });
  }

  RecoveryStats& st = plan.stats;
  st.replayed_transactions = plan.scan.transactions.size();
  st.replayed_bytes = bytes;
  st.next_seq = plan.scan.next_seq;
  st.torn_tail = plan.scan.torn_tail;
  st.standby_header_bad = !standby_valid;
  if (!plan.scan.gaps.empty()) {
    const jl::Gap& first = plan.scan.gaps.front();
    st.corrupt_seq = first.first_missing_seq;
    st.corrupt_block = area.start_block + 1 + first.offset / kBlockSize;
    for (const auto& txn : plan.scan.transactions) {
      if (txn.seq < first.first_missing_seq) ++st.transactions_before_corrupt;
    }
    st.transactions_after_corrupt = st.replayed_transactions - st.transactions_before_corrupt;
    for (const jl::Gap& gap : plan.scan.gaps) st.lost_transactions += gap.missing();
  }
  return plan;
}

}  // namespace

// ---------------------------------------------------------------------------
// Transaction
// ---------------------------------------------------------------------------

Transaction::~Transaction() {
  if (journal_ != nullptr) run_abort();
}

void Transaction::write(uint64_t region_offset, const void* src, size_t len) {
  if (len == 0) return;
  if (len > UINT32_MAX || payload_.size() + len > UINT32_MAX) {
    die("transaction payload beyond 4 GiB");
  }
  auto payload_offset = static_cast<uint32_t>(payload_.size());
  const auto* bytes = static_cast<const std::byte*>(src);
  payload_.insert(payload_.end(), bytes, bytes + len);
  records_.push_back({region_offset, static_cast<uint32_t>(len), payload_offset});
}

void Transaction::on_prepare(std::function<void(Transaction&)> fn) {
  prepare_.push_back(std::move(fn));
}
void Transaction::on_commit(std::function<void()> fn) { commit_.push_back(std::move(fn)); }
void Transaction::on_abort(std::function<void()> fn) { abort_.push_back(std::move(fn)); }
void Transaction::on_prepare_undo(std::function<void()> fn) {
  prepare_undo_.push_back(std::move(fn));
}

uint64_t Transaction::log_bytes() const {
  if (records_.empty()) return 0;
  uint64_t total = jl::kMinTxnBytes;
  for (const Record& r : records_) total += jl::record_log_bytes(r.length);
  return total;
}

void Transaction::run_prepare_undo() {
  auto hooks = std::move(prepare_undo_);
  prepare_undo_.clear();
  for (auto it = hooks.rbegin(); it != hooks.rend(); ++it) (*it)();
}

void Transaction::run_abort() {
  auto hooks = std::move(abort_);
  abort_.clear();
  commit_.clear();
  prepare_.clear();
  prepare_undo_.clear();
  journal_ = nullptr;
  for (auto& fn : hooks) fn();
}

// ---------------------------------------------------------------------------
// Journal state
// ---------------------------------------------------------------------------

struct Journal::Impl {
  Impl(Region& r, const JournalArea& a)
      : region(r),
        area(a),
        area_begin(a.start_block * kBlockSize),
        area_end((a.start_block + a.blocks) * kBlockSize),
        log_begin(area_begin + kBlockSize),
        capacity((a.blocks - 1) * kBlockSize) {}

  const std::byte* header_block() const { return region.data() + area_begin; }
  const std::byte* log() const { return region.data() + log_begin; }
  std::byte* mutable_base() { return region.writable(RegionWriteKey()); }

  bool inside_region(uint64_t offset, uint64_t len) const {
    return offset <= region.size() && len <= region.size() - offset;
  }
  bool touches_journal(uint64_t offset, uint64_t len) const {
    return offset < area_end && offset + len > area_begin;
  }

  // Writes the slot that is not the current winner, so a torn header write
  // leaves the previous header in force. The header says the log holds
  // ordered commits; the first one written over a log that did not say so
  // skips a sequence number first (format.md 4.1, "Upgrade").
  void write_header(uint64_t tail_offset) REQUIRES(mu);
  // Can `size` log bytes go at head without touching live transactions?
  // Sets *pos and *waste (bytes skipped at the end of the log).
  bool place(uint64_t size, uint64_t* pos, uint64_t* waste) const REQUIRES(mu);
  // kIoError on a media fault: the log is then kept (the tail does not move),
  // so that recovery still replays every committed transaction.
  Status checkpoint_locked() REQUIRES(mu);
  void note_home_write(uint64_t offset, uint64_t len) REQUIRES(mu);

  Region& region;
  const JournalArea area;
  const uint64_t area_begin;  // region byte offsets
  const uint64_t area_end;
  const uint64_t log_begin;
  const uint64_t capacity;    // log bytes

  // The journal mutex (its place in the lock order: src/meta/locking.h).
  // Prepare hooks and their undos run under it and may take leaf locks.
  mutable Mutex mu;
  int slot GUARDED_BY(mu) = 0;          // winning header slot
  uint64_t epoch GUARDED_BY(mu) = 0;    // its epoch
  uint32_t salt GUARDED_BY(mu) = 0;     // seeds every transaction crc (format.h)
  uint64_t tail GUARDED_BY(mu) = 0;     // log offset of the oldest live transaction
  uint64_t head GUARDED_BY(mu) = 0;     // log offset where the next transaction goes
  uint64_t used GUARDED_BY(mu) = 0;     // live bytes from tail to head, wrap waste included
  uint64_t seq GUARDED_BY(mu) = 1;      // next sequence number
  // The winning header says ORDERED_COMMIT. Until it does, commit()
  // checkpoints first, which writes such a header.
  bool ordered GUARDED_BY(mu) = true;
  uint64_t commits GUARDED_BY(mu) = 0;
  uint64_t checkpoints GUARDED_BY(mu) = 0;
  // Home ranges written since the last checkpoint. They were flushed by the
  // committing thread; the checkpoint flushes them again from its own thread
  // so that its drain covers them (a fence orders only its own thread's
  // flushes).
  std::vector<std::pair<uint64_t, uint64_t>> dirty_home GUARDED_BY(mu);
  std::vector<std::byte> scratch GUARDED_BY(mu);
};

void Journal::Impl::write_header(uint64_t tail_offset) {
  // A transaction that ends exactly at the end of the log leaves the head
  // there; the next one starts at 0, and so does the log the header
  // describes.
  if (tail_offset == capacity) tail_offset = 0;
  // A torn transaction an older writer left at the tail may hold a whole
  // commit record over a partial body: its number must never be expected
  // again once the header says ordered.
  if (!ordered) ++seq;
  int target = 1 - slot;
  std::byte* dst = mutable_base() + area_begin + target * format::kJournalHeaderSlotOffset;
  // This writer only writes ordered commits (see commit()).
  jl::encode_header({salt, epoch + 1, tail_offset, seq, format::kJournalFlagOrderedCommit}, dst);
  region.persist(dst, sizeof(format::DiskJournalHeader));
  slot = target;
  ++epoch;
  ordered = true;
}

bool Journal::Impl::place(uint64_t size, uint64_t* pos, uint64_t* waste) const {
  *pos = head;
  *waste = 0;
  if (capacity - head < size) {
    *pos = 0;
    *waste = capacity - head;
  }
  // Free space starts at head and runs (circularly) for capacity - used bytes.
  return used + *waste + size <= capacity;
}

void Journal::Impl::note_home_write(uint64_t offset, uint64_t len) {
  if (!dirty_home.empty()) {
    auto& last = dirty_home.back();
    if (offset >= last.first && offset <= last.first + last.second) {
      last.second = std::max(last.second, offset + len - last.first);
      return;
    }
  }
  dirty_home.emplace_back(offset, len);
}

Status Journal::stamp_needs_check() {
  Impl& j = *impl_;
  MutexLock lock(j.mu);
  if (j.region.read_only()) return Status(Code::kReadOnly, "region is read-only");
  ASSIGN_OR_RETURN(Superblock sb, read_superblock(j.region));
  sb.state = format::kStateNeedsCheck;
  const format::DiskSuperblock disk = encode_superblock(sb);
  std::byte* base = j.region.writable(RegionWriteKey());
  auto stamp = [&](uint64_t block) {
    std::byte* at = base + block_offset(block);
    return j.region.guarded("superblock needs-check stamp", [&] {
      std::memcpy(at, &disk, sizeof(disk));
      j.region.persist(at, sizeof(disk));
    });
  };
  // Both copies, whichever the media refuses: a mount reads the backup when
  // the primary is bad, which is likely just when the media is failing.
  Status primary = stamp(format::kSuperblockBlock);
  Status backup = stamp(sb.geometry.backup_block());
  if (primary.is_ok() != backup.is_ok()) {
    log().warn("only one superblock copy stamped: {}",
               (primary.is_ok() ? backup : primary).to_string());
  }
  return primary.is_ok() ? primary : backup;
}

Status Journal::Impl::checkpoint_locked() {
  // Home writes that faulted never landed: emptying the log now would lose
  // committed transactions.
  if (region.media_failed()) return region.failed_status("journal checkpoint");
  const std::byte* base = region.data();
  // guarded() runs the function on this thread, within this scope: the
  // mutex is held there too (assert_held only tells the analysis).
  RETURN_IF_ERROR(region.guarded("journal checkpoint", [&] {
    mu.assert_held();
    for (auto [offset, len] : dirty_home) region.flush(base + offset, len);
    region.drain();
  }));
  dirty_home.clear();
  // write_header is an encode into the slot and a persist: plain stores.
  RETURN_IF_ERROR(region.guarded("journal header write", [&] {
    mu.assert_held();
    write_header(head);
  }));
  tail = head;
  used = 0;
  ++checkpoints;
  return Status::ok();
}

Journal::Journal(Region& region, const JournalArea& area)
    : impl_(std::make_unique<Impl>(region, area)) {}

Journal::~Journal() = default;

// ---------------------------------------------------------------------------
// Format and recovery
// ---------------------------------------------------------------------------

Status Journal::format(Region& region, const JournalArea& area) {
  RETURN_IF_ERROR(check_area(region, area));
  if (region.read_only()) return Status(Code::kReadOnly, "journal format: region is read-only");
  Impl impl(region, area);
  std::byte* base = impl.mutable_base();
  // The whole area is zeroed: a log left by an earlier filesystem could
  // otherwise hold a chain of valid transactions starting at seq 1.
  std::byte* header = base + impl.area_begin;
  uint32_t salt = 0;
  while (salt == 0) {  // 0 means "no salt" (images from before the feature)
    if (getrandom(&salt, sizeof(salt), 0) != static_cast<ssize_t>(sizeof(salt))) {
      return Status::from_errno(errno, "journal format: getrandom");
    }
  }
  return region.guarded("journal format", [&] {
    region.zero_flush(RegionWriteKey(), base + impl.area_begin, impl.area_end - impl.area_begin);
    // The zeros are durable before a header that trusts them: a new header
    // over an old log would read its commit records and transactions
    // (from seq 1 on) as this journal's.
    region.drain();
    constexpr uint32_t kFlags = format::kJournalFlagOrderedCommit;
    jl::encode_header({salt, 1, 0, 1, kFlags}, header);
    jl::encode_header({salt, 0, 0, 1, kFlags}, header + format::kJournalHeaderSlotOffset);
    region.flush(header, kBlockSize);
    region.drain();
  });
}

Result<std::unique_ptr<Journal>> Journal::open(Region& region, const JournalArea& area,
                                               RecoveryStats* stats, RecoveryMode mode) {
  ASSIGN_OR_RETURN(Plan plan, make_plan(region, area));
  const RecoveryStats& found = plan.stats;
  if (!plan.scan.gaps.empty() && mode == RecoveryMode::kStrict) {
    // Replaying the prefix would put older bytes over home locations that
    // later transactions had updated, and dropping the rest would lose them:
    // leave everything as it is for fsck. A damaged last transaction had
    // committed too: dropping it would lose an acknowledged change silently.
    if (plan.scan.gaps.front().last) {
      return Status(Code::kCorruption, "journal: transaction " +
                                           std::to_string(found.corrupt_seq) + " at block " +
                                           std::to_string(found.corrupt_block) +
                                           " committed but is damaged; run fsck.sealfs");
    }
    return Status(Code::kCorruption,
                  "journal: transaction " + std::to_string(found.corrupt_seq) + " at block " +
                      std::to_string(found.corrupt_block) +
                      " is corrupt but later committed transactions follow; run fsck.sealfs");
  }
  RETURN_IF_ERROR(plan.records);

  std::unique_ptr<Journal> journal(new Journal(region, area));
  Impl& j = *journal->impl_;
  // Nobody else sees the journal yet: the lock only tells the analysis.
  MutexLock lock(j.mu);
  j.slot = plan.slot;
  j.epoch = plan.header.epoch;
  j.salt = plan.header.salt;
  j.tail = plan.header.tail_offset;
  j.seq = plan.scan.next_seq;
  j.head = plan.scan.head_offset;
  j.used = plan.scan.consumed;
  if (plan.scan.torn_tail) {
    log().info("journal: ignoring torn transaction: {}", plan.scan.stop_reason);
  }
  for (const jl::Gap& gap : plan.scan.gaps) {
    log().warn("journal: skipping {} damaged transaction(s) from sequence {} ({})",
               gap.missing(), gap.first_missing_seq, gap.reason);
  }
  // A log written before ordered commits is marked ordered by the first
  // header this journal writes (write_header): after a replay here, else at
  // the first commit or checkpoint, so that a read-only mount writes nothing.
  j.ordered = plan.header.ordered_commits();

  const auto& committed = plan.scan.transactions;
  const bool recovers = !committed.empty() || !plan.scan.gaps.empty();
  if (recovers && region.read_only()) {
    return Status(Code::kReadOnly,
                  "journal needs recovery: mount read-write once or run fsck.sealfs");
  }
  if (!committed.empty()) {
    std::byte* base = j.mutable_base();
    struct Copy {
      uint64_t offset;
      const std::byte* payload;
      uint32_t length;
    };
    std::vector<Copy> copies;
    for (const auto& txn : committed) {
      jl::for_each_record(j.log() + txn.offset,
                          [&](uint64_t off, const std::byte* payload, uint32_t len) {
                            copies.push_back({off, payload, len});
                          });
    }
    // A media fault (media_fault.h) stops the replay with the header
    // untouched: replay is idempotent, so a later one redoes all of it. The
    // window holds plain copies only (see media_fault.h).
    RETURN_IF_ERROR(region.guarded("journal replay", [&] {
      for (const Copy& c : copies) {
        std::memcpy(base + c.offset, c.payload, c.length);
        region.flush(base + c.offset, c.length);
      }
      region.drain();
    }));
    log().info("journal: replayed {} transactions ({} bytes)", committed.size(),
               found.replayed_bytes);
  }
  // Replay is idempotent, but moving the tail saves doing it again; a
  // skipped sequence number (a salvaged damaged tail) must reach the header
  // before anything is written at the head.
  if (recovers) {
    RETURN_IF_ERROR(region.guarded("journal header write", [&] {
      j.mu.assert_held();
      j.write_header(j.head);
    }));
    j.tail = j.head;
    j.used = 0;
  }
  if (stats != nullptr) {
    *stats = found;
    stats->next_seq = j.seq;
    if (committed.empty()) stats->replayed_bytes = 0;
  }
  return journal;
}

Result<RecoveryPreview> Journal::preview(const Region& region, const JournalArea& area) {
  ASSIGN_OR_RETURN(Plan plan, make_plan(region, area));
  RETURN_IF_ERROR(plan.records);
  RecoveryPreview out;
  out.stats = plan.stats;
  const std::byte* log = region.data() + (area.start_block + 1) * kBlockSize;
  for (const auto& txn : plan.scan.transactions) {
    jl::for_each_record(log + txn.offset,
                        [&](uint64_t off, const std::byte* payload, uint32_t len) {
                          out.records.push_back(ReplayRecord{off, payload, len});
                        });
  }
  return out;
}

// ---------------------------------------------------------------------------
// Commit
// ---------------------------------------------------------------------------

Status Journal::commit(Transaction&& txn) {
  Impl& j = *impl_;
  if (txn.journal_ != this) die("transaction committed to a journal that did not begin it");
  MutexLock lock(j.mu);
  if (j.region.read_only()) {
    lock.unlock();
    txn.run_abort();
    return Status(Code::kReadOnly, "journal commit: region is read-only");
  }
  if (j.region.media_failed()) {
    lock.unlock();
    txn.run_abort();
    return j.region.failed_status("journal commit");
  }
  // Index loop: a hook may register further hooks.
  for (size_t i = 0; i < txn.prepare_.size(); ++i) {
    auto hook = txn.prepare_[i];
    hook(txn);
  }
  txn.prepare_.clear();

  if (!txn.records_.empty()) {
    for (const auto& r : txn.records_) {
      if (!j.inside_region(r.region_offset, r.length) ||
          j.touches_journal(r.region_offset, r.length)) {
        die("transaction record [" + std::to_string(r.region_offset) + ", +" +
            std::to_string(r.length) + ") is outside the region or inside the journal");
      }
    }
    uint64_t size = txn.log_bytes();
    if (size > max_transaction_bytes()) {
      txn.run_prepare_undo();
      lock.unlock();
      txn.run_abort();
      return Status(Code::kNoSpace, "journal transaction of " + std::to_string(size) +
                                        " bytes exceeds the limit of " +
                                        std::to_string(max_transaction_bytes()));
    }
    uint64_t pos = 0;
    uint64_t waste = 0;
    if (!j.ordered || !j.place(size, &pos, &waste)) {
      if (Status s = j.checkpoint_locked(); !s.is_ok()) {
        txn.run_prepare_undo();
        lock.unlock();
        txn.run_abort();
        return s;
      }
      if (!j.place(size, &pos, &waste)) die("no log room after a checkpoint");
    }

    std::byte* base = j.mutable_base();
    std::byte* log = base + j.log_begin;
    j.scratch.resize(size);
    jl::encode_transaction(
        j.salt, j.seq, static_cast<uint32_t>(txn.records_.size()), size,
        [&](uint32_t i) {
          const auto& r = txn.records_[i];
          return jl::RecordView{r.region_offset, txn.payload_.data() + r.payload_offset,
                                r.length};
        },
        j.scratch.data());
    // Media faults (media_fault.h): a fault while the log is written means
    // the transaction did not commit (no valid commit record; the next
    // recovery sees a torn tail), so it fails like any refused commit and
    // the caller's DRAM state is rolled back by the abort hooks.
    //
    // Two steps (format.md 4.2, "Commit"): the body, with zeros where the
    // commit record goes, is made durable first; only then the commit
    // record. A commit record in the log thus always stands over a durable
    // body, so recovery can tell damage from a torn write; and the zeros
    // mean a commit record torn between its two words never combines with a
    // stale one left at the same place by an earlier lap.
    const uint64_t head = j.head;
    const uint64_t body = size - jl::kCommitBytes;
    Status logged = j.region.guarded("journal log write", [&] {
      j.mu.assert_held();  // guarded() runs this here, under `lock`
      if (waste >= jl::kHeaderBytes) {
        jl::encode_wrap(j.seq, waste, log + head);
        j.region.flush(log + head, jl::kHeaderBytes);
      }
      std::memcpy(log + pos, j.scratch.data(), body);
      std::memset(log + pos + body, 0, jl::kCommitBytes);
      j.region.flush(log + pos, size);
      j.region.drain();
      std::memcpy(log + pos + body, j.scratch.data() + body, jl::kCommitBytes);
      j.region.flush(log + pos + body, jl::kCommitBytes);
      j.region.drain();  // the commit point
    });
    if (!logged.is_ok()) {
      txn.run_prepare_undo();
      lock.unlock();
      txn.run_abort();
      return logged;
    }

    j.head = pos + size;
    j.used += waste + size;
    ++j.seq;
    ++j.commits;
    // A fault in the home writes comes after the commit point: the
    // transaction is durable in the log and recovery will apply it, but its
    // home bytes are partly written. The region is now failed, which stops
    // every later commit and checkpoint, so the log keeps it until a replay
    // (mount or fsck, once the media is writable again) finishes the job.
    // The request still fails (EIO): its DRAM state is rolled back by the
    // abort hooks, and the change appears after recovery, as it would had
    // the daemon crashed at this point.
    Status homed = j.region.guarded("journal home write", [&] {
      for (const auto& r : txn.records_) {
        std::byte* home = base + r.region_offset;
        std::memcpy(home, txn.payload_.data() + r.payload_offset, r.length);
        j.region.flush(home, r.length);
      }
    });
    if (!homed.is_ok()) {
      txn.run_prepare_undo();
      lock.unlock();
      txn.run_abort();
      return homed;
    }
    for (const auto& r : txn.records_) j.note_home_write(r.region_offset, r.length);
  }
  txn.prepare_undo_.clear();
  lock.unlock();

  auto hooks = std::move(txn.commit_);
  txn.commit_.clear();
  txn.abort_.clear();
  txn.journal_ = nullptr;
  for (auto& fn : hooks) fn();
  return Status::ok();
}

Status Journal::refresh_backup_superblock() {
  Impl& j = *impl_;
  MutexLock lock(j.mu);
  if (j.region.read_only()) return Status(Code::kReadOnly, "region is read-only");
  RETURN_IF_ERROR(j.checkpoint_locked());
  ASSIGN_OR_RETURN(Superblock sb, read_superblock(j.region));
  const format::DiskSuperblock disk = encode_superblock(sb);
  std::byte* at = j.region.writable(RegionWriteKey()) + block_offset(sb.geometry.backup_block());
  return j.region.guarded("backup superblock write", [&] {
    std::memcpy(at, &disk, sizeof(disk));
    j.region.persist(at, sizeof(disk));
  });
}

Status Journal::checkpoint() {
  MutexLock lock(impl_->mu);
  if (impl_->region.read_only()) {
    return Status(Code::kReadOnly, "journal checkpoint: region is read-only");
  }
  return impl_->checkpoint_locked();
}

uint64_t Journal::max_transaction_bytes() const { return impl_->capacity / 4; }

uint64_t Journal::next_seq() const {
  MutexLock lock(impl_->mu);
  return impl_->seq;
}

uint64_t Journal::log_capacity() const { return impl_->capacity; }

uint64_t Journal::log_used() const {
  MutexLock lock(impl_->mu);
  return impl_->used;
}

uint64_t Journal::commits() const {
  MutexLock lock(impl_->mu);
  return impl_->commits;
}

uint64_t Journal::checkpoints() const {
  MutexLock lock(impl_->mu);
  return impl_->checkpoints;
}

}  // namespace sealfs
