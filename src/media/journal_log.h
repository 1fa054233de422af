// The journal's on-media log: header slots, transaction serialisation and the
// recovery scan. Pure byte work on a mapped journal area; the Journal decides
// when to write and what to make durable.
//
// Geometry: the journal area's first block holds two DiskJournalHeader slots
// (byte 0 and kJournalHeaderSlotOffset); the log is the remaining blocks, and
// "log offset" below is a byte offset from the start of the log.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "sealfs/format.h"
#include "util/status.h"

namespace sealfs::journal_log {

inline constexpr uint64_t kHeaderBytes = sizeof(format::DiskTxnHeader);
inline constexpr uint64_t kRecordBytes = sizeof(format::DiskTxnRecord);
inline constexpr uint64_t kCommitBytes = sizeof(format::DiskTxnCommit);
inline constexpr uint64_t kMinTxnBytes = kHeaderBytes + kCommitBytes;

inline constexpr uint64_t pad8(uint64_t n) { return (n + 7) & ~uint64_t{7}; }
// Log bytes one record with `length` payload bytes occupies.
inline constexpr uint64_t record_log_bytes(uint64_t length) {
  return kRecordBytes + pad8(length);
}

// The decoded state of one header slot.
struct HeaderState {
  uint32_t salt = 0;  // seeds every transaction crc (format.h)
  uint64_t epoch = 0;
  uint64_t tail_offset = 0;
  uint64_t tail_seq = 0;
  uint32_t flags = 0;  // format::kJournalFlag*
  bool ordered_commits() const { return (flags & format::kJournalFlagOrderedCommit) != 0; }
};

// Encodes a header slot (crc included) into `slot` (64 bytes).
void encode_header(const HeaderState& state, void* slot);

// Picks the winning slot of a header block: the valid (magic + crc) slot with
// the higher epoch. `winner_slot` gets 0 or 1; `standby_valid`, when given,
// tells whether the other slot is valid too. Both bad: kBadCrc when a magic
// was right but its crc wrong, kCorruption when neither magic is right.
Result<HeaderState> read_header_block(const std::byte* header_block, int* winner_slot,
                                      bool* standby_valid = nullptr);

// One record of a transaction being serialised.
struct RecordView {
  uint64_t region_offset;
  const std::byte* payload;
  uint32_t length;
};

// Serialises a whole transaction (header, records, commit with crc) into
// `out`, which must hold `total_bytes` (= kMinTxnBytes + sum of
// record_log_bytes). `next(i)` yields record i. The commit record is the last
// kCommitBytes: the writer puts it in the log only once the rest is durable.
void encode_transaction(uint32_t salt, uint64_t seq, uint32_t record_count,
                        uint64_t total_bytes,
                        const std::function<RecordView(uint32_t)>& next, std::byte* out);

// The commit crc of `length` transaction bytes under `salt`.
uint32_t transaction_crc(uint32_t salt, const std::byte* bytes, uint64_t length);

// Encodes a wrap marker for `seq` covering `bytes_to_end` (>= kHeaderBytes).
void encode_wrap(uint64_t seq, uint64_t bytes_to_end, std::byte* out);

// A committed transaction found by the scan.
struct ScannedTxn {
  uint64_t seq = 0;
  uint64_t offset = 0;  // log offset of its header
  uint64_t length = 0;  // header through commit
};

// Validates the transaction at `txn`, whose header already has kTxnMagic and
// sequence `seq`: length, record framing, commit record and salted crc, all
// within `room` bytes. Returns its length, or nullopt and the reason.
std::optional<uint64_t> validate_transaction(const std::byte* txn, uint64_t room, uint32_t salt,
                                             uint64_t seq, std::string* why);

// Walks the log from (tail_offset, tail_seq), following wrap markers, and
// yields every transaction that validates. Stops at the first mismatch.
// `consumed` is where a scan resumed past a gap starts counting (scan_log).
class LogScanner {
 public:
  LogScanner(const std::byte* log, uint64_t capacity, uint32_t salt, uint64_t tail_offset,
             uint64_t tail_seq, uint64_t consumed = 0);

  // The next valid transaction, or nullopt at the end of the committed log.
  std::optional<ScannedTxn> next();
  // After next() returned nullopt: did it stop at a started transaction (right
  // magic and seq) that failed validation?
  bool torn_tail() const { return torn_; }
  const std::string& stop_reason() const { return stop_reason_; }
  // Where the next transaction would start, and the bytes consumed from the
  // tail so far (wrap waste included).
  uint64_t head_offset() const { return offset_; }
  uint64_t consumed() const { return consumed_; }
  uint64_t next_seq() const { return seq_; }

 private:
  std::optional<ScannedTxn> stop(bool torn, std::string reason);

  const std::byte* log_;
  uint64_t capacity_;
  uint32_t salt_;
  uint64_t offset_;
  uint64_t seq_;
  uint64_t consumed_ = 0;
  bool torn_ = false;
  std::string stop_reason_;
};

// Looks for a transaction that validates under `salt` with a sequence number
// above `after_seq`, at every 8-byte position of the `span` log bytes that
// follow log offset `from` circularly. Used past a scan's stop: stale
// transactions of earlier laps all carry lower sequence numbers, and a torn
// tail is never followed by a later one (a commit starts only after the
// previous one is durable), so a hit means the stop was a damaged
// transaction in the middle of the committed log.
std::optional<ScannedTxn> find_later_transaction(const std::byte* log, uint64_t capacity,
                                                 uint32_t salt, uint64_t from, uint64_t span,
                                                 uint64_t after_seq);

// Whether transaction `seq`, which failed validation at `txn`, committed all
// the same, in a log of ordered commits: its header is whole (magic,
// sequence number, a length that fits in `room`) and a commit record with
// the magic and sequence number stands where that length puts it (its crc
// cannot be checked: the body fails). Two witnesses, because a single one
// can be half stale: a header's sequence word that reached the media over a
// stale commit record's magic word reads as a commit record of `seq`. With
// both, a torn write cannot pass: the commit record is written only once the
// body (this header included) is durable, over zeros written with the body,
// and a stale pair at that place carries an earlier lap's lower number. So a
// hit is a committed transaction damaged since (format.md 4.3), seen unless
// the damage is in those two witnesses themselves.
bool commit_record_in_place(const std::byte* txn, uint64_t room, uint64_t seq);

// A stretch of the log the scan could not read although it holds committed
// transactions: later ones that validate, or (ordered commits) the damaged
// transaction's own commit record.
struct Gap {
  uint64_t first_missing_seq = 0;  // the damaged transaction's sequence number
  uint64_t offset = 0;             // log offset where it should start
  uint64_t resume_seq = 0;         // the next transaction that validates, or
                                   // the one after the damaged last one
  bool last = false;               // nothing committed follows the damage
  std::string reason;              // why the scan stopped there
  uint64_t missing() const { return resume_seq - first_missing_seq; }
};

// The whole committed log: every transaction that validates, in sequence
// order, with the gaps skipped over. A log without gaps is exactly what
// LogScanner yields. Images without a salt (salt 0) are not searched past
// the first stop: without the salt, bytes an earlier lap left in the log
// (user data in payloads) could pass for later transactions. With
// `ordered_commits` (the header's kJournalFlagOrderedCommit), a last stop
// whose transaction committed (commit_record_in_place) is a gap too
// (`last`): its
// sequence number is skipped (`next_seq` is past it), so that the record, left
// in the log, never names a transaction written later.
struct LogScan {
  std::vector<ScannedTxn> transactions;
  std::vector<Gap> gaps;
  bool torn_tail = false;  // of the last stop, as LogScanner::torn_tail
  std::string stop_reason;
  uint64_t head_offset = 0;  // after the last transaction found
  uint64_t consumed = 0;     // bytes from the tail to head_offset
  uint64_t next_seq = 0;
};
LogScan scan_log(const std::byte* log, uint64_t capacity, uint32_t salt, uint64_t tail_offset,
                 uint64_t tail_seq, bool ordered_commits);

// Calls fn(region_offset, payload, length) for each record of a transaction
// the scanner validated.
void for_each_record(const std::byte* txn,
                     const std::function<void(uint64_t, const std::byte*, uint32_t)>& fn);

}  // namespace sealfs::journal_log
