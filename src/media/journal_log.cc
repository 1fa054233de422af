#include "media/journal_log.h"

#include <algorithm>
#include <cstring>

#include "util/crc32c.h"

namespace sealfs::journal_log {
namespace {

using format::DiskJournalHeader;
using format::DiskTxnCommit;
using format::DiskTxnHeader;
using format::DiskTxnRecord;

// Log bytes are read through memcpy: the log is untrusted input, and a struct
// load from it must not depend on alignment the media might not give us.
template <typename T>
T load(const std::byte* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

constexpr size_t kHeaderCrcOffset = offsetof(DiskJournalHeader, crc);

enum class SlotVerdict { kValid, kBadMagic, kBadCrc };

SlotVerdict check_slot(const std::byte* slot, DiskJournalHeader* out) {
  *out = load<DiskJournalHeader>(slot);
  if (out->magic.get() != format::kJournalHeaderMagic) return SlotVerdict::kBadMagic;
  uint32_t want = crc32c_with_hole(slot, sizeof(DiskJournalHeader), kHeaderCrcOffset);
  if (out->crc.get() != want) return SlotVerdict::kBadCrc;
  return SlotVerdict::kValid;
}

}  // namespace

void encode_header(const HeaderState& state, void* slot) {
  DiskJournalHeader h{};
  h.magic.set(format::kJournalHeaderMagic);
  h.salt.set(state.salt);
  h.epoch.set(state.epoch);
  h.tail_offset.set(state.tail_offset);
  h.tail_seq.set(state.tail_seq);
  h.flags.set(state.flags);
  h.crc.set(crc32c_with_hole(&h, sizeof(h), kHeaderCrcOffset));
  std::memcpy(slot, &h, sizeof(h));
}

Result<HeaderState> read_header_block(const std::byte* header_block, int* winner_slot,
                                      bool* standby_valid) {
  DiskJournalHeader slots[2];
  SlotVerdict verdicts[2];
  for (int i = 0; i < 2; ++i) {
    verdicts[i] = check_slot(header_block + i * format::kJournalHeaderSlotOffset, &slots[i]);
  }
  int winner = -1;
  for (int i = 0; i < 2; ++i) {
    if (verdicts[i] != SlotVerdict::kValid) continue;
    if (winner < 0 || slots[i].epoch.get() > slots[winner].epoch.get()) winner = i;
  }
  if (winner < 0) {
    if (verdicts[0] == SlotVerdict::kBadCrc || verdicts[1] == SlotVerdict::kBadCrc) {
      return Status(Code::kBadCrc, "journal header: both slots fail their crc check");
    }
    return Status(Code::kCorruption, "journal header: neither slot has the header magic");
  }
  *winner_slot = winner;
  if (standby_valid != nullptr) *standby_valid = verdicts[1 - winner] == SlotVerdict::kValid;
  return HeaderState{slots[winner].salt.get(), slots[winner].epoch.get(),
                     slots[winner].tail_offset.get(), slots[winner].tail_seq.get(),
                     slots[winner].flags.get()};
}

uint32_t transaction_crc(uint32_t salt, const std::byte* bytes, uint64_t length) {
  if (salt == 0) return crc32c(bytes, length);
  format::le32 seed;
  seed.set(salt);
  return crc32c_extend(crc32c(&seed, sizeof(seed)), bytes, length);
}

void encode_transaction(uint32_t salt, uint64_t seq, uint32_t record_count,
                        uint64_t total_bytes,
                        const std::function<RecordView(uint32_t)>& next, std::byte* out) {
  DiskTxnHeader header{};
  header.magic.set(format::kTxnMagic);
  header.record_count.set(record_count);
  header.seq.set(seq);
  header.length.set(total_bytes);
  std::memcpy(out, &header, sizeof(header));
  uint64_t pos = kHeaderBytes;
  for (uint32_t i = 0; i < record_count; ++i) {
    RecordView r = next(i);
    DiskTxnRecord rec{};
    rec.region_offset.set(r.region_offset);
    rec.length.set(r.length);
    std::memcpy(out + pos, &rec, sizeof(rec));
    pos += kRecordBytes;
    std::memcpy(out + pos, r.payload, r.length);
    // Padding is zeroed so the crc does not cover stale bytes.
    std::memset(out + pos + r.length, 0, pad8(r.length) - r.length);
    pos += pad8(r.length);
  }
  DiskTxnCommit commit{};
  commit.magic.set(format::kTxnCommitMagic);
  commit.crc.set(transaction_crc(salt, out, pos));
  commit.seq.set(seq);
  std::memcpy(out + pos, &commit, sizeof(commit));
}

void encode_wrap(uint64_t seq, uint64_t bytes_to_end, std::byte* out) {
  DiskTxnHeader wrap{};
  wrap.magic.set(format::kTxnWrapMagic);
  wrap.seq.set(seq);
  wrap.length.set(bytes_to_end);
  std::memcpy(out, &wrap, sizeof(wrap));
}

std::optional<uint64_t> validate_transaction(const std::byte* txn, uint64_t room, uint32_t salt,
                                             uint64_t seq, std::string* why) {
  auto fail = [&](const char* reason) -> std::optional<uint64_t> {
    if (why != nullptr) *why = reason;
    return std::nullopt;
  };
  auto header = load<DiskTxnHeader>(txn);
  uint64_t length = header.length.get();
  if (length < kMinTxnBytes || length % 8 != 0 || length > room) {
    if (why != nullptr) *why = "transaction length " + std::to_string(length) + " does not fit";
    return std::nullopt;
  }
  uint64_t commit_pos = length - kCommitBytes;
  uint64_t pos = kHeaderBytes;
  for (uint32_t i = 0; i < header.record_count.get(); ++i) {
    if (pos + kRecordBytes > commit_pos) return fail("records overrun the transaction");
    auto rec = load<DiskTxnRecord>(txn + pos);
    pos += record_log_bytes(rec.length.get());
    if (pos > commit_pos) return fail("records overrun the transaction");
  }
  if (pos != commit_pos) return fail("record lengths do not add up to the transaction");
  auto commit = load<DiskTxnCommit>(txn + commit_pos);
  if (commit.magic.get() != format::kTxnCommitMagic || commit.seq.get() != seq) {
    return fail("missing commit record");
  }
  if (commit.crc.get() != transaction_crc(salt, txn, commit_pos)) {
    return fail("commit crc mismatch");
  }
  return length;
}

LogScanner::LogScanner(const std::byte* log, uint64_t capacity, uint32_t salt,
                       uint64_t tail_offset, uint64_t tail_seq, uint64_t consumed)
    : log_(log),
      capacity_(capacity),
      salt_(salt),
      offset_(tail_offset),
      seq_(tail_seq),
      consumed_(consumed) {}

std::optional<ScannedTxn> LogScanner::stop(bool torn, std::string reason) {
  torn_ = torn;
  stop_reason_ = std::move(reason);
  return std::nullopt;
}

std::optional<ScannedTxn> LogScanner::next() {
  auto at = [](uint64_t off) { return " at log offset " + std::to_string(off); };
  bool wrapped = false;
  for (;;) {
    uint64_t left = capacity_ - offset_;
    if (left < kHeaderBytes) {
      // Too little room for even a wrap marker: the writer wrapped silently.
      if (wrapped || consumed_ + left > capacity_) return stop(false, "log exhausted");
      consumed_ += left;
      offset_ = 0;
      wrapped = true;
      continue;
    }
    auto header = load<DiskTxnHeader>(log_ + offset_);
    if (header.magic.get() == format::kTxnWrapMagic) {
      if (header.seq.get() != seq_) return stop(false, "stale wrap marker" + at(offset_));
      if (wrapped || header.length.get() != left || consumed_ + left > capacity_) {
        return stop(true, "inconsistent wrap marker" + at(offset_));
      }
      consumed_ += left;
      offset_ = 0;
      wrapped = true;
      continue;
    }
    if (header.magic.get() != format::kTxnMagic) {
      return stop(false, "no transaction header" + at(offset_));
    }
    if (header.seq.get() != seq_) {
      return stop(false, "sequence " + std::to_string(header.seq.get()) + " where " +
                             std::to_string(seq_) + " was expected" + at(offset_));
    }
    // From here on the bytes claim to be the expected transaction: any failure
    // means it was being written when power failed (or was damaged since).
    std::string why;
    auto length = validate_transaction(log_ + offset_, std::min(left, capacity_ - consumed_),
                                       salt_, seq_, &why);
    if (!length) return stop(true, why + at(offset_));
    ScannedTxn found{seq_, offset_, *length};
    offset_ += *length;
    consumed_ += *length;
    ++seq_;
    return found;
  }
}

std::optional<ScannedTxn> find_later_transaction(const std::byte* log, uint64_t capacity,
                                                 uint32_t salt, uint64_t from, uint64_t span,
                                                 uint64_t after_seq) {
  // Every transaction starts 8-aligned (lengths are multiples of 8, a wrap
  // restarts at 0), and the length field of the damaged header cannot be
  // trusted to skip over it, so every aligned position is a candidate.
  for (uint64_t d = 0; d + kMinTxnBytes <= span; d += 8) {
    uint64_t pos = (from + d) % capacity;
    uint64_t to_end = capacity - pos;
    if (to_end < kMinTxnBytes) continue;
    auto header = load<DiskTxnHeader>(log + pos);
    if (header.magic.get() != format::kTxnMagic || header.seq.get() <= after_seq) continue;
    uint64_t room = std::min(to_end, span - d);
    if (auto length = validate_transaction(log + pos, room, salt, header.seq.get(), nullptr)) {
      return ScannedTxn{header.seq.get(), pos, *length};
    }
  }
  return std::nullopt;
}

bool commit_record_in_place(const std::byte* txn, uint64_t room, uint64_t seq) {
  if (room < kMinTxnBytes) return false;
  auto header = load<DiskTxnHeader>(txn);
  const uint64_t length = header.length.get();
  if (header.magic.get() != format::kTxnMagic || header.seq.get() != seq ||
      length < kMinTxnBytes || length % 8 != 0 || length > room) {
    return false;
  }
  auto commit = load<DiskTxnCommit>(txn + length - kCommitBytes);
  return commit.magic.get() == format::kTxnCommitMagic && commit.seq.get() == seq;
}

LogScan scan_log(const std::byte* log, uint64_t capacity, uint32_t salt, uint64_t tail_offset,
                 uint64_t tail_seq, bool ordered_commits) {
  LogScan out;
  uint64_t offset = tail_offset, seq = tail_seq, consumed = 0;
  for (;;) {
    LogScanner scanner(log, capacity, salt, offset, seq, consumed);
    while (auto txn = scanner.next()) out.transactions.push_back(*txn);
    out.torn_tail = scanner.torn_tail();
    out.stop_reason = scanner.stop_reason();
    out.head_offset = scanner.head_offset();
    out.consumed = scanner.consumed();
    out.next_seq = scanner.next_seq();
    if (salt == 0) break;
    const uint64_t unscanned = capacity - out.consumed;
    auto later = find_later_transaction(log, capacity, salt, out.head_offset, unscanned,
                                        out.next_seq);
    if (!later) {
      // As LogScanner gives validate_transaction its room.
      const uint64_t room = std::min(capacity - out.head_offset, unscanned);
      if (!ordered_commits || !out.torn_tail ||
          !commit_record_in_place(log + out.head_offset, room, out.next_seq)) {
        break;
      }
      out.gaps.push_back(Gap{out.next_seq, out.head_offset, out.next_seq + 1, true,
                             out.stop_reason + "; its commit record is in place"});
      // Transactions after it may have committed and been damaged too: their
      // commit records stay in the log past the head, and one the next
      // transaction's length happened to point at would make that
      // transaction, torn before its commit slot's zeros were durable, read
      // as committed and damaged. The log holds at most capacity /
      // kMinTxnBytes transactions, so no record in it names a number past
      // that many (format.md 4.3). The number reaches the header before
      // anything is written at the head (Journal::open).
      out.next_seq += 1 + capacity / kMinTxnBytes;
      out.torn_tail = false;
      break;
    }
    out.gaps.push_back(Gap{out.next_seq, out.head_offset, later->seq, false, out.stop_reason});
    consumed = out.consumed + (later->offset + capacity - out.head_offset) % capacity;
    offset = later->offset;
    seq = later->seq;
  }
  return out;
}

void for_each_record(const std::byte* txn,
                     const std::function<void(uint64_t, const std::byte*, uint32_t)>& fn) {
  auto header = load<DiskTxnHeader>(txn);
  uint64_t pos = kHeaderBytes;
  for (uint32_t i = 0; i < header.record_count.get(); ++i) {
    auto rec = load<DiskTxnRecord>(txn + pos);
    fn(rec.region_offset.get(), txn + pos + kRecordBytes, rec.length.get());
    pos += record_log_bytes(rec.length.get());
  }
}

}  // namespace sealfs::journal_log
