// Journal: physical redo transactions, the only way metadata reaches media.
//
// A Transaction stages (region offset, bytes) records. commit() appends them
// to the circular log and makes them durable (a drain), then adds one
// crc-protected commit record and drains again (docs/design.md 3 states the
// crash ordering), then copies the records to their home locations and
// flushes them; home writes are drained lazily, at the next checkpoint.
// Recovery (open) replays every committed transaction after the checkpoint and
// stops at the first torn or stale one. A damaged transaction is not a torn
// tail when later committed ones follow it or its header and commit record
// stand:
// open refuses (kCorruption) and writes nothing, and only fsck replays past
// it (RecoveryMode::kSalvage).
//
// Concurrency: commit() serialises on the journal mutex. Callers that stage
// bytes derived from shared state must hold that state's lock across commit
// (inode lock, directory lock), or stage the bytes from a prepare hook, which
// runs under the journal mutex, so the log order is the order of the state
// changes (the allocator's bitmap words are written this way).
//
// A transaction does not see its own staged writes: read the DRAM copy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "media/region.h"
#include "util/status.h"

namespace sealfs {

struct JournalArea {
  uint64_t start_block = 0;  // header block; the log follows it
  uint64_t blocks = 0;       // including the header block
};

enum class RecoveryMode {
  // A damaged transaction followed by later committed ones is kCorruption.
  kStrict,
  // fsck -y: replay every transaction that validates, in sequence order,
  // skipping the damaged ones (docs/fsck.md says why that is the right
  // order), then move the tail past the last one.
  kSalvage,
};

struct RecoveryStats {
  uint64_t replayed_transactions = 0;  // (to be) replayed, after gaps included
  uint64_t replayed_bytes = 0;
  uint64_t next_seq = 0;
  bool torn_tail = false;  // a partial transaction was found and ignored
  bool standby_header_bad = false;  // the losing header slot fails its checks
  // A damaged transaction in the middle of the log (kSalvage replays past it).
  uint64_t corrupt_seq = 0;         // the first damaged transaction; 0 = none
  uint64_t corrupt_block = 0;       // region block where it starts
  uint64_t transactions_before_corrupt = 0;
  uint64_t transactions_after_corrupt = 0;  // found and (to be) replayed
  // Damaged transactions known lost: the numbers between a damaged one and
  // the next that validates, and 1 for a damaged last one (transactions
  // after it, damaged too, are not counted; next_seq skips past them all).
  uint64_t lost_transactions = 0;
};

// One record recovery would copy home; `payload` points into the log.
struct ReplayRecord {
  uint64_t region_offset;
  const std::byte* payload;
  uint32_t length;
};

// What open would replay, found without writing (fsck -n applies it to an
// in-memory overlay). The payload pointers live as long as the mapping.
struct RecoveryPreview {
  RecoveryStats stats;
  std::vector<ReplayRecord> records;  // in replay order
};

class Journal;

class Transaction {
 public:
  Transaction(Transaction&&) noexcept = default;
  Transaction& operator=(Transaction&&) noexcept = default;
  ~Transaction();  // an uncommitted transaction aborts

  // Stages `len` bytes for region offset `region_offset`. Later writes to the
  // same bytes win.
  void write(uint64_t region_offset, const void* src, size_t len);
  template <typename T>
  void write_struct(uint64_t region_offset, const T& value) {
    write(region_offset, &value, sizeof(T));
  }
  // Runs under the journal mutex, just before the transaction is serialised;
  // may stage more writes. Hooks run in registration order.
  void on_prepare(std::function<void(Transaction&)> fn);
  // Runs after the commit is durable (e.g. release freed blocks).
  void on_commit(std::function<void()> fn);
  // Runs if the transaction is dropped or its commit fails, after the
  // journal mutex is released (so it may take caller locks). It must not
  // restore state guarded by the journal mutex: another transaction may have
  // committed changes to that state in between.
  void on_abort(std::function<void()> fn);
  // Registered by a prepare hook: undoes what that hook changed in state
  // guarded by the journal mutex (the staged superblock, the orphan list,
  // the allocator's committed bitmap). Runs if the commit fails after the
  // prepare hooks ran, under the journal mutex, in reverse registration
  // order and before the on_abort hooks, so no other transaction stages
  // from the changed state or has its own edits overwritten by the undo.
  void on_prepare_undo(std::function<void()> fn);

  bool empty() const { return records_.empty() && prepare_.empty(); }
  // Bytes the transaction will occupy in the log, excluding prepare hooks.
  uint64_t log_bytes() const;

 private:
  friend class Journal;
  explicit Transaction(Journal* journal) : journal_(journal) {}
  void run_abort();
  void run_prepare_undo();

  struct Record {
    uint64_t region_offset;
    uint32_t length;
    uint32_t payload_offset;  // into payload_
  };
  Journal* journal_ = nullptr;
  std::vector<Record> records_;
  std::vector<std::byte> payload_;
  std::vector<std::function<void(Transaction&)>> prepare_;
  std::vector<std::function<void()>> commit_;
  std::vector<std::function<void()>> abort_;
  std::vector<std::function<void()>> prepare_undo_;
};

class Journal {
 public:
  // Writes an empty journal header (mkfs, or fsck rebuilding the journal).
  static Status format(Region& region, const JournalArea& area);
  // Opens the journal and replays what is committed. Fails with kCorruption
  // or kBadCrc if both header slots are bad, kInvalid on a bad area,
  // kCorruption without writing anything on a damaged committed transaction
  // (kStrict), kReadOnly if a read-only region needs replay. A log from
  // before ordered commits is marked ordered by the first header written
  // (format.md 4.1, "Upgrade").
  static Result<std::unique_ptr<Journal>> open(Region& region, const JournalArea& area,
                                               RecoveryStats* stats = nullptr,
                                               RecoveryMode mode = RecoveryMode::kStrict);
  // What open(kSalvage) would replay, read from a region it never writes.
  // Fails as open does on a bad area, bad header slots or a bad record.
  static Result<RecoveryPreview> preview(const Region& region, const JournalArea& area);
  ~Journal();

  Transaction begin() { return Transaction(this); }
  // Durable on return. kNoSpace if the transaction can never fit
  // (log_bytes() > max_transaction_bytes()); kReadOnly on a read-only region.
  Status commit(Transaction&& txn);
  // Drains home writes and empties the log.
  Status checkpoint();
  // For a region whose journal can no longer commit (a media error, see
  // media_fault.h): sets the state of both home superblocks to
  // kStateNeedsCheck outside any transaction, so that the next mount refuses
  // to go read-write (it reads the state before its replay, which would
  // restore the logged "mounted") and fsck says why. Each copy is rewritten
  // whole with a fresh crc and persisted, the primary first: a crash between
  // leaves at worst a torn primary, which the backup replaces. Best effort:
  // the media may refuse this too (kIoError when it refuses both copies).
  Status stamp_needs_check();
  // After a transaction that changed a feature word: checkpoints, so that
  // the primary superblock's home copy is durable, then rewrites the backup
  // copy whole from it and persists it. A reader falls back to the backup
  // when the primary is unusable (an older one, when the primary has an
  // incompat bit it does not know), so the backup must carry the features;
  // and the two copies are never in flight together, so a crash leaves one
  // that verifies.
  Status refresh_backup_superblock();

  uint64_t max_transaction_bytes() const;
  uint64_t next_seq() const;
  uint64_t log_capacity() const;
  uint64_t log_used() const;
  uint64_t commits() const;
  uint64_t checkpoints() const;

 private:
  Journal(Region& region, const JournalArea& area);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sealfs
