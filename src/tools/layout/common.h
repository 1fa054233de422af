// What every sealfs-layout subcommand shares: options, exit codes, sizes as
// people read them, and where the facts come from (a running daemon over
// its control socket, or a region opened read-only). docs/layout.md.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tools/layout/sizes.h"
#include "wire/wire.h"
#include "media/region_pmem2.h"
#include "meta/filesystem.h"
#include "util/status.h"

namespace sealfs::layout {

// Exit codes (docs/layout.md, sealfs-layout --help).
inline constexpr int kExitOk = 0;
inline constexpr int kExitSomeFailed = 1;  // some operands could not be shown
inline constexpr int kExitUsage = 2;
inline constexpr int kExitFailed = 4;      // nothing could be shown

struct Options {
  bool json = false;
  std::string image;   // extents --image REGION
  std::string output;  // map -o FILE.svg
  std::vector<std::string> operands;
};

// "not a sealfs filesystem (bad magic)" for a region without a superblock,
// else "cannot read the filesystem: STATUS".
std::string not_sealfs_or(const Status& status);
// Prints "sealfs-layout: TEXT" on stderr.
void complain(const std::string& text);

// The running daemon of a sealfs mount, found through the virtual xattr
// user.sealfs.control of any file in it.
class DaemonConnection {
 public:
  // `fd`: a descriptor of a file or directory inside the mount. kNotSupported
  // when it is not on sealfs (or no lease engine runs).
  static Result<std::unique_ptr<DaemonConnection>> reach(int fd);
  ~DaemonConnection();
  struct Answer {
    wire::InspectReply head{};  // of the first page
    std::vector<uint8_t> records;
    uint64_t count = 0;
    template <typename T>
    T record(size_t i) const {
      return wire::load<T>(records.data() + i * sizeof(T));
    }
  };
  // Asks `type`, following the pages to the end. `fd` travels with every
  // page (kExtents). An error answer becomes a Status with its errno.
  Result<Answer> ask(wire::Type type, int fd = -1);
  const std::string& socket_path() const { return path_; }

 private:
  DaemonConnection(int sock, std::string path) : sock_(sock), path_(std::move(path)) {}
  Result<Answer> ask_page(wire::Type type, uint64_t cursor, int fd);
  int sock_;
  std::string path_;
  uint64_t next_request_ = 1;
};

// REGION or MOUNTPOINT: a directory that answers user.sealfs.control is a
// mount; anything else is taken for a region.
struct Target {
  std::string path;
  std::unique_ptr<DaemonConnection> daemon;  // set for a mount
};
Result<Target> resolve_target(const std::string& path);

// A region opened read-only under a reader claim (media/region_owner.h), as
// fsck -n does: shared with read-only mounts and checks, refused while a
// writer owns it. The image is mounted read-only in this process, which
// changes nothing on media.
struct Image {
  std::unique_ptr<Filesystem> fs;
};
Result<Image> open_image(const std::string& region_path);

// A region opened read-only under a reader claim, not mounted (super reads
// it even when the filesystem on it would not mount).
Result<std::unique_ptr<RegionPmem2>> open_region(const std::string& region_path);

int run_extents(const Options& options);
int run_super(const Options& options);
int run_free(const Options& options);
int run_leases(const Options& options);
int run_map(const Options& options);

}  // namespace sealfs::layout
