#include "meta/filesystem_impl.h"

#include <algorithm>

#include <sys/stat.h>
#include <time.h>

#include <cstring>

#include "meta/holder_liveness.h"
#include "meta/mount_verifier.h"
#include "util/log.h"

namespace sealfs {

int64_t now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

namespace {
struct timespec to_timespec(int64_t ns) {
  struct timespec ts;
  ts.tv_sec = ns / 1000000000;
  ts.tv_nsec = ns % 1000000000;
  if (ts.tv_nsec < 0) {
    ts.tv_nsec += 1000000000;
    --ts.tv_sec;
  }
  return ts;
}
}  // namespace

struct stat Attr::to_stat() const {
  struct stat st {};
  st.st_ino = ino;
  st.st_mode = mode;
  st.st_nlink = nlink;
  st.st_uid = uid;
  st.st_gid = gid;
  st.st_rdev = rdev;
  st.st_size = static_cast<off_t>(size);
  st.st_blocks = static_cast<blkcnt_t>(blocks);
  st.st_blksize = format::kBlockSize;
  st.st_atim = atime;
  st.st_mtim = mtime;
  st.st_ctim = ctime;
  return st;
}

Result<std::unique_ptr<Filesystem>> Filesystem::mount(std::unique_ptr<Region> region,
                                                      const MountOptions& options,
                                                      FsckLikeStats* stats) {
  auto fs = std::make_unique<FilesystemImpl>(std::move(region), options);
  RETURN_IF_ERROR(fs->do_mount(stats));
  return std::unique_ptr<Filesystem>(std::move(fs));
}

FilesystemImpl::FilesystemImpl(std::unique_ptr<Region> region, const MountOptions& options)
    : region_(std::move(region)), options_(options) {}

FilesystemImpl::~FilesystemImpl() {
  stop_trimmer();
  stop_verifier();
}

Inode* FilesystemImpl::slot(Ino ino) {
  // Until the mount is verified, a slot first touched here is read from
  // the media by the table (load_on_demand). Once it is, every slot that
  // holds data has been read (load_inode_table), so one first touched now
  // holds zeros and is not read, which on a sparse region file would be a
  // read of a hole: a page the backing filesystem may have no room for
  // (docs/daemon.md, "Media errors and a full backing store"). A slot
  // whose inode the cache dropped is read again (load_on_demand).
  return inodes_.get_or_make(ino);
}

Result<Inode*> FilesystemImpl::live(Ino ino) {
  Inode* inode = slot(ino);
  if (inode == nullptr) return Status(Code::kNotFound, "inode " + std::to_string(ino));
  if (inode->load_failed) return unreadable_inode(ino);
  {
    ReaderLock lock(inode->mu);
    if (!inode->in_use()) return Status(Code::kStale, "inode " + std::to_string(ino) + " is free");
  }
  return inode;
}

Status FilesystemImpl::check_writable() const {
  if (read_only_) return Status(Code::kReadOnly, "mounted read-only");
  // After a media fault (media_fault.h) the mount is read-only for good.
  if (region_->media_failed()) return region_->failed_status("write");
  // Nothing is allocated, freed or relinked on an image not yet verified.
  return await_verified();
}

Result<LayoutPermit> FilesystemImpl::gate(const Inode& inode) const {
  if (options_.gate != nullptr && options_.gate->sealed(inode.ino)) {
    return Status(Code::kLayoutSealed, "inode " + std::to_string(inode.ino) + " has direct-mapping leases");
  }
  return LayoutPermit(inode.ino);
}

LayoutPermit FilesystemImpl::permit_for_lease(const LayoutLock& held) const {
  return LayoutPermit(held.ino());
}

void FilesystemImpl::check_permit(const LayoutPermit& permit, const Inode& inode) {
  if (permit.ino() != inode.ino) {
    log().critical("layout change of inode {} with the permit of inode {}", inode.ino, permit.ino());
    std::abort();
  }
}

Attr FilesystemImpl::attr_of(const Inode& inode) const {
  Attr a;
  const InodeCore& c = inode.core;
  a.ino = inode.ino;
  a.generation = c.generation;
  a.mode = c.mode;
  a.nlink = c.nlink;
  a.uid = c.uid;
  a.gid = c.gid;
  a.rdev = c.rdev;
  a.size = c.size;
  a.blocks = c.blocks * (format::kBlockSize / 512);
  a.atime = to_timespec(c.atime);
  a.mtime = to_timespec(c.mtime);
  a.ctime = to_timespec(c.ctime);
  return a;
}

int64_t FilesystemImpl::birth_time_of(const Inode& inode) const {
  if (!inode.in_use()) return 0;
  if (inode.unborn) return inode.core.ctime;
  // A slot in use was written by the create that made it, so this reads no
  // hole of a sparse inode table. Its crc is not checked: a slot damaged
  // while mounted passes its birth time on, sealed, to the next commit of
  // the inode, as nothing serves the birth time and fsck cannot check it
  // (a whole-slot check here would cost every commit a crc of 256 bytes).
  format::le64 at_home;
  std::memcpy(&at_home, region_->data() + inode_offset(geo_, inode.ino) +
                            offsetof(format::DiskInode, btime_ns), sizeof(at_home));
  return static_cast<int64_t>(at_home.get());
}

Status FilesystemImpl::load_inode(Inode& inode) {
  format::DiskInode disk{};
  std::memcpy(&disk, region_->data() + inode_offset(geo_, inode.ino), sizeof(disk));
  Result<DecodedInode> decoded = decode_inode(disk, inode.ino, geo_.inode_count);
  if (!decoded.is_ok() && decoded.status().code() == Code::kBadCrc) {
    // Whether the file survives depends on fsck: say what its repair does
    // (docs/fsck.md, inode_bad_crc_salvaged).
    return Status(Code::kBadCrc, decoded.status().message() +
                                     " (fsck's repair keeps the inode if its other fields are "
                                     "consistent, and clears it, losing the file, if not)");
  }
  ASSIGN_OR_RETURN(DecodedInode d, std::move(decoded));
  inode.core = d.core;
  inode.extents.clear();
  inode.chain.clear();
  // An inline file's bytes stay in the slot (inline_data_of).
  if ((d.core.flags & format::kInodeInlineData) == 0) inode.inline_bytes.assign(d.inline_bytes);
  else inode.inline_bytes.clear();
  if (d.core.mode == 0) return Status::ok();
  if ((d.core.flags & format::kInodeInlineData) != 0 && !inline_data_feature_) {
    return Status(Code::kCorruption, "inode " + std::to_string(inode.ino) +
                                         ": inline data on an image without the inline-data "
                                         "feature");
  }
  const uint64_t data_end = geo_.data_start + geo_.data_blocks;
  auto ctx = [&](const Status& s) { return s.with_context("inode " + std::to_string(inode.ino)); };
  std::vector<format::DiskExtent> all = d.inline_extents;
  std::vector<ExtentChain::Link> links;
  uint64_t next = d.extent_block;
  while (next != 0) {
    if (next < geo_.data_start || next >= data_end) {
      return ctx(Status(Code::kCorruption, "overflow block out of range"));
    }
    // No block is empty, so the chain has fewer blocks than extents past the
    // inline ones (this also ends a chain that loops).
    if (links.size() + format::kInlineExtents >= d.extent_count) {
      return ctx(Status(Code::kCorruption, "overflow chain longer than its extents"));
    }
    auto view = decode_extent_block(region_->data() + block_offset(next), inode.ino);
    if (!view.is_ok()) return ctx(view.status());
    if (view->extents.empty()) {
      return ctx(Status(Code::kCorruption, "empty overflow block " + std::to_string(next)));
    }
    links.push_back({next, view->extents.front().file_block.get()});
    all.insert(all.end(), view->extents.begin(), view->extents.end());
    next = view->next_block;
  }
  if (all.size() != d.extent_count) {
    return ctx(Status(Code::kCorruption, "extent count " + std::to_string(d.extent_count) +
                                             " but " + std::to_string(all.size()) + " stored"));
  }
  uint64_t prev_end = 0;
  const bool directory = S_ISDIR(d.core.mode);
  for (const auto& de : all) {
    auto e = decode_extent(de, geo_.data_start, data_end);
    if (!e.is_ok()) return ctx(e.status());
    if (e->file_block < prev_end) return ctx(Status(Code::kCorruption, "extents overlap"));
    // A directory is blocks 0..k-1, all written (fsck's dir_layout): the
    // name index and every insert assume it, and an insert past a size
    // that undercounts its blocks would map a block twice.
    if (directory && (e->file_block != prev_end || e->unwritten)) {
      return ctx(Status(Code::kCorruption, "directory blocks are not 0..k-1, all written"));
    }
    // Every block against the bitmap: check_block_references(), once all
    // inodes are loaded.
    prev_end = e->file_end();
    // As stored, unmerged: the overflow blocks are rewritten one at a time,
    // each from the map, so the map must hold exactly what they hold.
    inode.extents.insert_as_stored(*e);
  }
  // An unlinked directory may have lost its blocks (slot_unlinked).
  const bool blocks_freed = all.empty() && slot_unlinked(d.core.flags, d.core.nlink);
  if (directory && d.core.size != prev_end * format::kBlockSize && !blocks_freed) {
    return ctx(Status(Code::kCorruption, "directory size " + std::to_string(d.core.size) +
                                             " but it maps " + std::to_string(prev_end) +
                                             " blocks"));
  }
  if (S_ISLNK(d.core.mode) && !all.empty()) {
    // decode_inode allowed one extent: the target's block, written, zeros
    // after the target as make_node leaves it.
    const Extent& e = inode.extents.begin()->second;
    if (e.file_block != 0 || e.length != 1 || e.unwritten) {
      return ctx(Status(Code::kCorruption, "symlink map is not one written block"));
    }
    const char* target = reinterpret_cast<const char*>(region_->data() + block_offset(e.region_block));
    if (std::memchr(target, '\0', d.core.size) != nullptr ||
        std::any_of(target + d.core.size, target + format::kBlockSize, [](char b) { return b != 0; })) {
      return ctx(Status(Code::kCorruption, "symlink block is not a target followed by zeros"));
    }
  }
  inode.extents.forget_changes();
  if (!links.empty()) {
    uint64_t first_key = all[format::kInlineExtents].file_block.get();
    inode.chain.load(std::move(links), first_key);
  }
  return Status::ok();
}

Status FilesystemImpl::do_mount(FsckLikeStats* stats) {
  read_only_ = options_.read_only || region_->read_only();
  bool used_backup = false;
  ASSIGN_OR_RETURN(Superblock sb, read_superblock(*region_, &used_backup));
  if (used_backup) log().warn("primary superblock is bad; mounting from the backup");
  if (region_->size() / format::kBlockSize > sb.geometry.region_blocks) {
    log().warn("the region is {} bytes and the filesystem was made for {}: the rest is unused "
               "(sealfs does not grow); the backup superblock stays at block {}",
               region_->size(), sb.geometry.region_size, sb.geometry.backup_block());
  }
  if (needs_read_only(sb) && !read_only_) {
    log().warn("unknown ro_compat features: mounting read-only");
    read_only_ = true;
  }
  RETURN_IF_ERROR(check_state_allows_mount(sb));
  geo_ = sb.geometry;
  RecoveryStats rs;
  ASSIGN_OR_RETURN(journal_, Journal::open(*region_, {geo_.journal_start, geo_.journal_blocks}, &rs));
  if (stats != nullptr) {
    stats->transactions_replayed = rs.replayed_transactions;
    stats->torn_tail = rs.torn_tail;
  }
  // The journal may have replayed superblock changes, and a primary torn in
  // the middle of a committed home write is whole again after replay: the
  // backup's fields (orphan head, counters) may be stale, so re-read.
  ASSIGN_OR_RETURN(sb, read_superblock(*region_, &used_backup));
  RETURN_IF_ERROR(check_state_allows_mount(sb));
  sb_staged_ = sb;
  xattr_chain_feature_ = (sb.feature_incompat & format::kFeatureIncompatXattrChain) != 0;
  inline_data_feature_ = (sb.feature_incompat & format::kFeatureIncompatInlineData) != 0;
  AllocatorArea area;
  area.data_start = geo_.data_start;
  area.data_blocks = geo_.data_blocks;
  area.bitmap_start = geo_.bitmap_start;
  area.bitmap_blocks = geo_.bitmap_blocks;
  area.holder_start = geo_.holder_start;
  area.holder_blocks = geo_.holder_blocks;
  area.align_blocks = choose_map_alignment() / format::kBlockSize;
  auto alive = options_.holder_alive;
  ASSIGN_OR_RETURN(alloc_, Allocator::open(*region_, *journal_, area, [alive](const Holder& h) {
                     return alive ? alive(h.pid, h.start_time)
                                  : holder_process_alive(h.pid, h.start_time);
                   }));
  data_ = std::make_unique<DataWriter>(*region_, geo_.data_start, geo_.data_blocks);
  // Blocks granted to holders that outlived the previous daemon: their
  // files may not give them to free space while those holders live.
  for (const QuarantineEntry& pin : alloc_->pinned_entries()) {
    pins_.add(pin.holder, pin.extent);
    MutexLock lock(restored_mu_);  // uncontended: the mount is not shared yet
    if (std::find(restored_holders_.begin(), restored_holders_.end(), pin.holder) ==
        restored_holders_.end()) {
      restored_holders_.push_back(pin.holder);
    }
  }

  verifier_ = std::make_unique<MountVerifier>();
  verifier_->table_data =
      region_->data_ranges(inode_offset(geo_, 1), geo_.inode_count * format::kInodeSize);
  {
    MutexLock lock(idle_mu_);  // uncontended: the mount is not shared yet
    idle_queue_.clear();
  }
  inodes_.reset(geo_.inode_count,
                [this](Inode& inode, bool evicted) { on_inode_made(inode, evicted); });
  {
    MutexLock lock(ialloc_mu_);  // uncontended: the mount is not shared yet
    inode_used_.assign(bit_words::words_for(geo_.inode_count + 1), 0);  // numbers 0..count
    bit_words::set(inode_used_, 0);  // inode 0 does not exist
  }
  Inode* root = slot(format::kRootIno);
  if (root != nullptr && root->load_failed) return describe_load_failure(format::kRootIno);
  const bool root_is_dir = root != nullptr && [root] {
    ReaderLock lock(root->mu);
    return S_ISDIR(root->core.mode);
  }();
  if (!root_is_dir) return Status(Code::kCorruption, "root inode is not a directory");
  root->parent = format::kRootIno;
  load_orphan_links();
  // Every inode read and cross-checked (mount_verifier.cc): before the
  // mount is live, or after it by a thread while metadata changes wait.
  const bool background = options_.background_verify;
  if (!background) RETURN_IF_ERROR(verify_image(stats));
  if (!read_only_) {
    MetaTxn t(*this);
    int64_t now = now_ns();
    const MountRecord& owner = options_.owner;
    t.edit_superblock([now, &owner](Superblock& s) {
      s.state = format::kStateMounted;
      s.mount_count += 1;
      s.last_mount_time_ns = static_cast<uint64_t>(now);
      s.mount_pid = owner.pid;
      s.mount_host = owner.host;
      s.mount_point = owner.mount_point;
    });
    RETURN_IF_ERROR(t.commit());
    refresh_backup_if_behind();
  }
  mounted_ = true;
  if (background) {
    start_verifier();
  } else {
    finish_verification(Status::ok());
  }
  if (options_.inode_cache != 0) start_trimmer();
  return Status::ok();
}

// Sets map_alignment_ and answers the alignment the allocator places runs
// on. A device that maps in larger units than the image was formatted for
// gets that larger alignment for every extent allocated from now on; extents
// already placed are refused for direct mapping until RELOCATE moves them
// (file_lease.cc). When the data area itself does not start on the device's
// unit the allocator cannot place runs on it (it keeps the recorded
// alignment): only an extent that happens to sit on the unit is granted, and
// every file stays usable through the mount.
uint64_t FilesystemImpl::choose_map_alignment() {
  const uint64_t recorded = std::max<uint64_t>(geo_.device_alignment, format::kBlockSize);
  const uint64_t device = region_->alignment();
  map_alignment_ = std::max(recorded, device);
  if (device <= recorded) return recorded;
  const bool data_area_aligned = (geo_.data_start * format::kBlockSize) % device == 0;
  log().warn(
      "{}: formatted for a mapping alignment of {} bytes, but the device maps in {}: {}",
      region_->description(), recorded, device,
      data_area_aligned
          ? "extents allocated from now on are placed on the device's alignment; older ones "
            "must be relocated (SEALFS_MAP_RELOCATE) before they can be mapped"
          : "the data area does not start on it, so extents cannot be placed on it and direct "
            "mappings are refused (files stay usable through the mount); to map them, format "
            "a region on this device and copy the files");
  return data_area_aligned ? device : recorded;
}

// The backup superblock is rewritten after the commit that sets a feature
// bit (Journal::refresh_backup_superblock); a daemon that died between the
// two left a backup without the bit, from which older software would mount
// an image it misreads. So a read-write mount brings a backup whose feature
// words differ from the primary's (or that does not decode) up to date.
// Best effort, as after the commit: a failure is logged.
void FilesystemImpl::refresh_backup_if_behind() {
  format::DiskSuperblock disk{};
  std::memcpy(&disk, region_->data() + block_offset(geo_.backup_block()), sizeof(disk));
  auto backup = decode_superblock(disk, region_->size());
  if (backup.is_ok() && backup->feature_compat == sb_staged_.feature_compat &&
      backup->feature_ro_compat == sb_staged_.feature_ro_compat &&
      backup->feature_incompat == sb_staged_.feature_incompat) {
    return;
  }
  Status s = journal_->refresh_backup_superblock();
  if (!s.is_ok()) log().warn("mount: backup superblock not refreshed: {}", s.to_string());
}

// Read-write only from a state that allows it: a region marked as needing a
// check is served read-only or not at all until fsck has seen it. (A region
// left kStateMounted by a daemon that died is recovered by the journal; the
// region claim, media/region_owner.h, guarantees that daemon is gone.)
Status FilesystemImpl::check_state_allows_mount(const Superblock& sb) const {
  if (sb.state != format::kStateNeedsCheck || read_only_) return Status::ok();
  std::string who = sb.describe_last_mount();
  return Status(Code::kCorruption,
                "the filesystem was marked as needing a check (damage was found while it was "
                "mounted" + (who.empty() ? std::string() : " by " + who) +
                    "): run fsck.sealfs -y on it; until then it can be mounted read-only (-o ro)");
}

void FilesystemImpl::load_orphan_links() {
  orphan_links_.clear();
  uint64_t cur = sb_staged_.orphan_head;
  for (uint64_t steps = 0; cur != 0 && steps <= geo_.inode_count; ++steps) {
    // Made through the table, so the slot's crc and fields are checked
    // (decode_inode: orphan_next within the table) before its link is used.
    Inode* inode = slot(cur);
    if (inode == nullptr || inode->load_failed) return;
    // A damaged list that loops: the links up to here are all orphan_list()
    // needs to see the loop, without a walk of the inode count at mount.
    if (orphan_links_.next(cur) != 0) return;
    format::DiskInode disk{};
    std::memcpy(&disk, region_->data() + inode_offset(geo_, cur), sizeof(disk));
    const uint64_t next = disk.orphan_next.get();
    orphan_links_.set(cur, next);
    cur = next;
  }
}

Result<std::vector<uint64_t>> FilesystemImpl::orphan_list() {
  std::vector<uint64_t> orphans;
  uint64_t cur = sb_staged_.orphan_head;
  while (cur != 0) {
    Inode* inode = slot(cur);
    if (inode == nullptr || orphans.size() > geo_.inode_count) {
      return Status(Code::kCorruption, "orphan list is broken at inode " + std::to_string(cur));
    }
    orphans.push_back(cur);
    cur = orphan_links_.next(cur);
  }
  return orphans;
}

Status FilesystemImpl::process_orphans(FsckLikeStats* stats) {
  // Collect first: freeing edits the list.
  ASSIGN_OR_RETURN(std::vector<uint64_t> orphans, orphan_list());
  for (uint64_t ino : orphans) {
    Inode* inode = slot(ino);
    WriterLock lock(inode->mu);
    // Reached through a handle while a background verifier ran: freed at
    // its last forget or close (maybe_free), still on the list until then.
    if (!inode->lookups.is_zero() || !inode->opens.is_zero()) continue;
    if (!inode->in_use() || inode->core.nlink != 0) {
      // Linked again or already free: just take it off the list.
      MetaTxn t(*this);
      inode->core.flags &= ~format::kInodeOrphan;
      t.orphan_remove(inode);
      if (inode->in_use()) t.dirty(inode);
      RETURN_IF_ERROR(t.commit());
      continue;
    }
    RETURN_IF_ERROR(free_inode(*inode).with_context("orphan " + std::to_string(ino)));
    if (stats != nullptr) ++stats->orphans_freed;
  }
  return Status::ok();
}

Result<Inode*> FilesystemImpl::allocate_inode() {
  uint64_t ino = 0;
  {
    MutexLock lock(ialloc_mu_);
    if (used_inodes_ >= geo_.inode_count) return Status(Code::kNoSpace, "no free inodes");
    uint64_t words = inode_used_.size();
    uint64_t w = bit_words::word_of(ialloc_hint_);
    for (uint64_t n = 0; n <= words && ino == 0; ++n, w = (w + 1) % words) {
      uint64_t bits = inode_used_[w];
      if (bits == ~uint64_t{0}) continue;
      uint64_t candidate = bit_words::lowest_bit(w, ~bits);
      if (candidate == 0 || candidate > geo_.inode_count) continue;
      bit_words::set(inode_used_, candidate);
      ino = candidate;
    }
    if (ino == 0) return Status(Code::kNoSpace, "no free inodes");
    ++used_inodes_;
    ialloc_hint_ = ino;
  }
  return slot(ino);
}

void FilesystemImpl::release_inode_number(Ino ino) {
  MutexLock lock(ialloc_mu_);
  bit_words::clear(inode_used_, ino);
  --used_inodes_;
}

void FilesystemImpl::maybe_free(Inode& inode) {
  if (!inode.in_use() || inode.core.nlink != 0 || !inode.opens.is_zero()) return;
  if (!inode.lookups.is_zero()) {
    // No name and nothing open: the kernel's FORGET comes next, normally at
    // once (the last unlink or close dropped its inode).
    expect_free(inode.ino);
    return;
  }
  if (read_only_ || region_->media_failed() || !verified()) return;
  free_started(inode.ino);
  Status s = free_inode(inode);
  free_finished();
  if (is_layout_sealed(s)) {
    // Still mapped through a lease: freed once the leases are broken.
    MutexLock lock(deferred_frees_mu_);
    deferred_frees_.push_back(inode.ino);
    return;
  }
  if (!s.is_ok()) log().warn("inode {}: not freed now: {}", inode.ino, s.to_string());
}

namespace {
// How long statfs waits for the kernel to forget an inode whose last name
// went with nothing open, and for frees in all.
constexpr auto kForgetWait = std::chrono::seconds(1);
constexpr auto kStatfsWaitForFrees = std::chrono::seconds(10);
}  // namespace

void FilesystemImpl::expect_free(Ino ino) {
  MutexLock lock(frees_mu_);
  frees_expected_.emplace(ino, std::chrono::steady_clock::now());
}

void FilesystemImpl::free_started(Ino ino) {
  MutexLock lock(frees_mu_);
  frees_expected_.erase(ino);
  ++frees_running_;
}

void FilesystemImpl::free_finished() {
  {
    MutexLock lock(frees_mu_);
    --frees_running_;
  }
  frees_changed_.notify_all();
}

void FilesystemImpl::wait_for_frees_for_statfs() {
  const auto give_up = std::chrono::steady_clock::now() + kStatfsWaitForFrees;
  MutexLock lock(frees_mu_);
  while (true) {
    const auto now = std::chrono::steady_clock::now();
    // The earliest moment an expected forget stops being waited for.
    auto until = give_up;
    for (auto it = frees_expected_.begin(); it != frees_expected_.end();) {
      if (now - it->second >= kForgetWait) {
        it = frees_expected_.erase(it);  // kept by the kernel: not soon
      } else {
        until = std::min(until, it->second + kForgetWait);
        ++it;
      }
    }
    if ((frees_running_ == 0 && frees_expected_.empty()) || now >= give_up) return;
    frees_changed_.wait_until(lock, until);
  }
}

void FilesystemImpl::notify_deferred_frees() {
  std::vector<Ino> inos;
  {
    MutexLock lock(deferred_frees_mu_);
    inos.swap(deferred_frees_);
  }
  if (options_.gate == nullptr) return;
  for (Ino ino : inos) options_.gate->free_deferred(ino);
}

void FilesystemImpl::retry_free(Ino ino) {
  CacheGate::Pass pass(cache_gate_);
  Inode* inode = slot(ino);
  if (inode == nullptr) return;
  {
    WriterLock lock(inode->mu);
    maybe_free(*inode);
  }
  notify_deferred_frees();
}

Status FilesystemImpl::free_inode(Inode& inode) {
  ASSIGN_OR_RETURN(LayoutPermit permit, gate(inode));
  if (!inode.extents.empty()) {
    RETURN_IF_ERROR(free_range(inode, permit, 0, inode.extents.end_block(), nullptr));
  }
  MetaTxn t(*this);
  t.freed_metadata();
  free_xattr_blocks(t, inode);
  // free_range left no extents, hence no overflow blocks (sync_extent_blocks).
  uint32_t generation = inode.core.generation;
  bool orphaned = (inode.core.flags & format::kInodeOrphan) != 0;
  InodeCore saved = inode.core;
  std::string saved_bytes = inode.inline_bytes.take();
  inode.core = InodeCore{};
  inode.core.generation = generation;
  inode.inline_bytes.clear();
  if (orphaned) t.orphan_remove(&inode);
  t.dirty(&inode);
  Status s = t.commit();
  if (!s.is_ok()) {
    inode.core = saved;
    inode.inline_bytes.assign(saved_bytes);
    return s;
  }
  inode.dir.reset();
  inode.parent = 0;
  release_inode_number(inode.ino);
  return Status::ok();
}

Status FilesystemImpl::unmount() {
  if (!mounted_) return Status::ok();
  stop_trimmer();
  stop_verifier();
  const bool checked = verified();
  if (!checked && !verifier_->was_stopped()) {
    // The verifier found damage and stamped the region (finish_verification;
    // a read-only mount writes nothing): nothing more is written, the region
    // is not marked clean, and the daemon exits 1 as a refused mount does.
    mounted_ = false;
    return Status(Code::kCorruption, std::string(read_only_ ? "" : "not marked clean: ") +
                                         verifier_->outcome().to_string() + "; run fsck.sealfs -y");
  }
  if (!read_only_ && region_->media_failed()) {
    // The log holds committed transactions whose home writes faulted: no
    // orphan frees, no checkpoint, no "clean" state. The superblock is
    // stamped "needs check" where the media still takes it, so that the next
    // mount stays read-only until fsck.sealfs -y has replayed and checked.
    mounted_ = false;
    Status stamped = journal_->stamp_needs_check();
    if (!stamped.is_ok()) log().error("unmount: needs-check stamp: {}", stamped.to_string());
    return Status(Code::kIoError,
                  std::string("not marked clean") +
                      (stamped.is_ok() ? " (marked as needing a check)" : "") +
                      ": a media error at region offset " +
                      std::to_string(region_->media_fault_offset()) +
                      " made the filesystem read-only; free space on the backing store (or "
                      "replace the media) and run fsck.sealfs -y");
  }
  // Unmounted before the verifier finished: the image is as the mount found
  // it (nothing was allocated, freed or relinked), so only its state is
  // written; atimes kept in DRAM are dropped and orphans wait for the next
  // mount, as after a crash.
  if (!read_only_ && checked) {
    if (Status s = persist_lazy_times(); !s.is_ok()) {
      log().error("unmount: timestamps not written: {}", s.to_string());
    }
    free_orphans_at_unmount();
  }
  if (!read_only_) {
    MetaTxn t(*this);
    t.edit_superblock([](Superblock& s) {
      // A region found damaged stays marked until fsck has checked it.
      if (s.state != format::kStateNeedsCheck) s.state = format::kStateClean;
    });
    RETURN_IF_ERROR(t.commit());
    RETURN_IF_ERROR(journal_->checkpoint());
  }
  mounted_ = false;
  return Status::ok();
}

// An inode in use with no name left is on the orphan list (unlink and
// rename put it there in the commit that takes its last name, and it leaves
// the list only when freed), so the list, not the inode table, is walked:
// the unmount costs the open-but-unlinked files, not every cached inode
// (issue 12: a successor mount waits for this daemon to exit).
void FilesystemImpl::free_orphans_at_unmount() {
  auto orphans = orphan_list();
  if (!orphans.is_ok()) {
    log().warn("unmount: orphans kept for the next mount: {}", orphans.status().to_string());
    return;
  }
  for (uint64_t ino : *orphans) {
    Inode* inode = slot(ino);
    unmount_inodes_visited_.fetch_add(1, std::memory_order_relaxed);
    WriterLock lock(inode->mu);
    if (!inode->in_use() || inode->core.nlink != 0) continue;
    // The kernel mount is gone: nothing is open or looked up any more.
    inode->lookups.reset();
    inode->opens.reset();
    Status s = free_inode(*inode);
    if (!s.is_ok()) log().warn("unmount: orphan {} kept: {}", ino, s.to_string());
  }
}

void FilesystemImpl::forget(Ino ino, uint64_t nlookup) {
  CacheGate::Pass pass(cache_gate_);
  Inode* inode = slot(ino);
  if (inode == nullptr) return;
  {
    WriterLock lock(inode->mu);
    inode->lookups.sub(nlookup);
    maybe_free(*inode);
    if (inode->lookups.is_zero() && inode->opens.is_zero()) queue_for_trimmer(*inode);
  }
  notify_deferred_frees();
}

void FilesystemImpl::release(Ino ino) {
  CacheGate::Pass pass(cache_gate_);
  Inode* inode = slot(ino);
  if (inode == nullptr) return;
  {
    WriterLock lock(inode->mu);
    inode->opens.sub(1);
    maybe_free(*inode);
    if (inode->lookups.is_zero() && inode->opens.is_zero()) queue_for_trimmer(*inode);
  }
  notify_deferred_frees();
}

StatFs FilesystemImpl::statfs() {
  CacheGate::Pass pass(cache_gate_);
  // The inode count is known once every slot is read; after damage it is
  // what was read.
  (void)await_verified();
  wait_for_frees_for_statfs();
  StatFs s;
  s.blocks = geo_.data_blocks;
  s.free_blocks = alloc_->free_blocks();
  s.inodes = geo_.inode_count;
  MutexLock lock(ialloc_mu_);
  s.free_inodes = geo_.inode_count - used_inodes_;
  return s;
}

Status FilesystemImpl::fsync(Ino ino, bool datasync) {
  CacheGate::Pass pass(cache_gate_);
  ASSIGN_OR_RETURN(Inode * inode, live(ino));
  // Every operation but the time updates is durable when it returns: data
  // copies are drained before the call that wrote them returns.
  region_->drain();
  if (datasync || read_only_) return Status::ok();
  // Times are written once the image is verified. After damage they never
  // are: times changed in DRAM (a read's atime before the damage was found)
  // are lost, and fsync says so, as ext4's does (EROFS) once an error made
  // it read-only.
  Status verified = await_verified();
  WriterLock lock(inode->mu);
  if (!verified.is_ok()) return inode->times_dirty && inode->in_use() ? verified : Status::ok();
  return persist_times(*inode);
}

void FilesystemImpl::mark_times_dirty(Inode& inode) {
  if (inode.times_dirty) return;
  inode.times_dirty = true;
  MutexLock lock(lazy_times_mu_);
  lazy_times_.insert(&inode);
}

Status FilesystemImpl::persist_times(Inode& inode) {
  if (!inode.times_dirty || !inode.in_use()) return Status::ok();
  MetaTxn t(*this);
  t.dirty(&inode);
  RETURN_IF_ERROR(t.commit());  // clears times_dirty
  lazy_time_commits_.fetch_add(1, std::memory_order_relaxed);
  return Status::ok();
}

Status FilesystemImpl::persist_lazy_times() {
  std::unordered_set<Inode*> pending;
  {
    MutexLock lock(lazy_times_mu_);
    pending.swap(lazy_times_);
  }
  Status first = Status::ok();
  for (Inode* inode : pending) {
    WriterLock lock(inode->mu);
    Status s = persist_times(*inode);
    if (!s.is_ok() && first.is_ok()) first = s;
  }
  return first;
}

Filesystem::WorkCounters FilesystemImpl::work_counters() const {
  WorkCounters c;
  c.extent_blocks_encoded = extent_blocks_encoded_.load(std::memory_order_relaxed);
  c.lazy_time_commits = lazy_time_commits_.load(std::memory_order_relaxed);
  c.unmount_inodes_visited = unmount_inodes_visited_.load(std::memory_order_relaxed);
  c.inodes_cached = inodes_.resident();
  c.inodes_dropped = inodes_dropped_.load(std::memory_order_relaxed);
  c.inodes_trim_visited = inodes_trim_visited_.load(std::memory_order_relaxed);
  return c;
}

Result<uint64_t> FilesystemImpl::extent_count(Ino ino) {
  CacheGate::Pass pass(cache_gate_);
  ASSIGN_OR_RETURN(Inode * inode, live(ino));
  ReaderLock lock(inode->mu);
  return static_cast<uint64_t>(inode->extents.count());
}

void FilesystemImpl::refresh_backup_superblock() {
  Status s = journal_->refresh_backup_superblock();
  if (!s.is_ok()) log().warn("backup superblock not refreshed: {}", s.to_string());
}

}  // namespace sealfs
