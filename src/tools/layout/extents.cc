// sealfs-layout extents: a file's block map as xfs_bmap -v shows it, holes
// included, from the running daemon (FILE on a mount) or from a region
// opened read-only (--image REGION PATH).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "sealfs/format.h"
#include "tools/layout/common.h"
#include "tools/layout/json_writer.h"

namespace sealfs::layout {
namespace {

constexpr uint64_t kHugePage = 2ull << 20;
constexpr uint64_t kBlock = 4096;

struct FileExtents {
  std::string path;
  uint64_t ino = 0;
  uint64_t size = 0;
  uint32_t inode_flags = 0;  // format::kInodeUserFlags bits
  uint32_t project_id = 0;
  bool inline_data = false;  // its bytes live in the inode slot: no extents
  std::vector<wire::ExtentRecord> extents;  // file order
};

// chattr's flags by lsattr's long names.
std::vector<std::string> inode_flag_names(uint32_t flags) {
  std::vector<std::string> names;
  if (flags & format::kInodeImmutable) names.push_back("immutable");
  if (flags & format::kInodeAppend) names.push_back("append-only");
  if (flags & format::kInodeNodump) names.push_back("nodump");
  if (flags & format::kInodeNoatime) names.push_back("noatime");
  return names;
}

struct Hole {
  uint64_t file_offset = 0;
  uint64_t length = 0;
};

// A huge page can map the extent from its start: it begins on a 2 MiB
// boundary both in the file and in the region, and holds at least 2 MiB.
bool aligned(const wire::ExtentRecord& e) {
  return e.file_offset % kHugePage == 0 && e.region_offset % kHugePage == 0 &&
         e.length >= kHugePage;
}

std::vector<std::string> flag_names(const wire::ExtentRecord& e) {
  std::vector<std::string> names;
  if (aligned(e)) names.push_back("aligned");
  if (e.flags & wire::kExtentUnwritten) names.push_back("unwritten");
  if (e.flags & wire::kExtentLeased) names.push_back("leased");
  if (e.flags & wire::kExtentQuarantined) names.push_back("quarantined");
  return names;
}

// Unmapped ranges before end of file (rounded up to a block).
std::vector<Hole> holes_of(const FileExtents& f) {
  std::vector<Hole> holes;
  if (f.inline_data) return holes;  // no block: its bytes are in the slot
  uint64_t pos = 0;
  for (const auto& e : f.extents) {
    if (e.file_offset > pos) holes.push_back({pos, e.file_offset - pos});
    pos = std::max(pos, e.file_offset + e.length);
  }
  const uint64_t eof = (f.size + kBlock - 1) / kBlock * kBlock;
  if (eof > pos) holes.push_back({pos, eof - pos});
  return holes;
}

struct Summary {
  uint64_t mapped = 0, aligned_count = 0, aligned_bytes = 0, unwritten = 0;
};
Summary summarize(const FileExtents& f) {
  Summary s;
  for (const auto& e : f.extents) {
    s.mapped += e.length;
    if (aligned(e)) {
      ++s.aligned_count;
      s.aligned_bytes += e.length;
    }
    if (e.flags & wire::kExtentUnwritten) s.unwritten += e.length;
  }
  return s;
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ",") + n;
  return out;
}

std::string range(uint64_t start, uint64_t length) { return exact_range(start, start + length); }

void print_text(const FileExtents& f) {
  const auto holes = holes_of(f);
  const Summary s = summarize(f);
  std::string attrs;
  for (const auto& name : inode_flag_names(f.inode_flags)) attrs += (attrs.empty() ? "" : ",") + name;
  if (!attrs.empty()) attrs = ", flags " + attrs;
  if (f.project_id != 0) attrs += ", project " + std::to_string(f.project_id);
  std::printf("%s: inode %llu, size %s (%llu bytes)%s\n", f.path.c_str(),
              static_cast<unsigned long long>(f.ino), human(f.size).c_str(),
              static_cast<unsigned long long>(f.size), attrs.c_str());
  if (f.inline_data) {
    std::printf("  inline %llu bytes in the inode slot, no extents\n",
                static_cast<unsigned long long>(f.size));
    return;
  }
  std::printf("  %4s  %-22s %-22s %8s  %s\n", "EXT", "FILE RANGE", "REGION RANGE", "LENGTH",
              "FLAGS");
  size_t hole = 0, index = 0;
  auto print_holes_before = [&](uint64_t offset) {
    while (hole < holes.size() && holes[hole].file_offset < offset) {
      std::printf("  %4s  %-22s %-22s %8s\n", "-",
                  range(holes[hole].file_offset, holes[hole].length).c_str(), "hole",
                  human(holes[hole].length).c_str());
      ++hole;
    }
  };
  for (const auto& e : f.extents) {
    print_holes_before(e.file_offset);
    std::printf("  %4zu  %-22s %-22s %8s  %s\n", index++,
                range(e.file_offset, e.length).c_str(), range(e.region_offset, e.length).c_str(),
                human(e.length).c_str(), join(flag_names(e)).c_str());
  }
  print_holes_before(UINT64_MAX);
  const double share =
      s.mapped ? 100.0 * static_cast<double>(s.aligned_bytes) / static_cast<double>(s.mapped)
               : 0.0;
  std::printf("  %zu extent%s, %zu hole%s, %s mapped (%s unwritten); %llu of %zu extents "
              "2 MiB-aligned (%.0f%% of mapped bytes)\n",
              f.extents.size(), f.extents.size() == 1 ? "" : "s", holes.size(),
              holes.size() == 1 ? "" : "s", human(s.mapped).c_str(), human(s.unwritten).c_str(),
              static_cast<unsigned long long>(s.aligned_count), f.extents.size(), share);
}

void write_json(JsonWriter& j, const FileExtents& f) {
  const auto holes = holes_of(f);
  const Summary s = summarize(f);
  j.begin_object();
  j.key("path").value(f.path);
  j.key("ino").value(f.ino);
  j.key("size").value(f.size);
  j.key("inode_flags").begin_array();
  for (const auto& name : inode_flag_names(f.inode_flags)) j.value(name);
  j.end_array();
  j.key("project_id").value(uint64_t{f.project_id});
  j.key("inline_bytes").value(f.inline_data ? f.size : uint64_t{0});
  j.key("extents").begin_array();
  for (const auto& e : f.extents) {
    j.begin_object();
    j.key("file_offset").value(e.file_offset);
    j.key("region_offset").value(e.region_offset);
    j.key("length").value(e.length);
    j.key("aligned").value(aligned(e));
    j.key("unwritten").value((e.flags & wire::kExtentUnwritten) != 0);
    j.key("leased").value((e.flags & wire::kExtentLeased) != 0);
    j.key("quarantined").value((e.flags & wire::kExtentQuarantined) != 0);
    j.end_object();
  }
  j.end_array();
  j.key("holes").begin_array();
  for (const auto& h : holes) {
    j.begin_object().key("file_offset").value(h.file_offset).key("length").value(h.length);
    j.end_object();
  }
  j.end_array();
  j.key("summary").begin_object();
  j.key("extents").value(uint64_t{f.extents.size()});
  j.key("holes").value(uint64_t{holes.size()});
  j.key("mapped_bytes").value(s.mapped);
  j.key("unwritten_bytes").value(s.unwritten);
  j.key("aligned_extents").value(s.aligned_count);
  j.key("aligned_bytes").value(s.aligned_bytes);
  j.end_object();
  j.end_object();
}

Result<FileExtents> from_daemon(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    const int err = errno;
    struct stat st {};
    if (err == ELOOP && lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
      // The daemon answers for an open file, and a link cannot be opened
      // as itself: say so rather than "Too many levels of symbolic links".
      return Status(Code::kInvalid, path + " is a symbolic link, which is not followed: give the "
                                           "path of the file it points to");
    }
    return Status::from_errno(err, path);
  }
  FileExtents f;
  f.path = path;
  auto daemon = DaemonConnection::reach(fd);
  if (!daemon.is_ok()) {
    close(fd);
    return Status(daemon.status().code(), path + ": " + daemon.status().message() +
                                              " (for a region, use --image REGION PATH)");
  }
  auto answer = (*daemon)->ask(wire::Type::kExtents, fd);
  close(fd);
  if (!answer.is_ok()) return answer.status().with_context(path);
  f.ino = answer->head.ino;
  f.size = answer->head.size;
  f.inode_flags = static_cast<uint32_t>(answer->head.a) & format::kInodeUserFlags;
  f.inline_data = (answer->head.a & format::kInodeInlineData) != 0;
  f.project_id = static_cast<uint32_t>(answer->head.b);
  for (uint64_t i = 0; i < answer->count; ++i) {
    f.extents.push_back(answer->record<wire::ExtentRecord>(i));
  }
  return f;
}

// PATH is taken from the filesystem's root ("/a/b" or "a/b").
Result<FileExtents> from_image(Filesystem& fs, const std::string& path) {
  Ino ino = sealfs::format::kRootIno;
  size_t pos = 0;
  while (pos < path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string::npos) end = path.size();
    const std::string name = path.substr(pos, end - pos);
    pos = end + 1;
    if (name.empty() || name == ".") continue;
    auto child = fs.lookup(ino, name);
    if (!child.is_ok()) return child.status().with_context(path);
    ino = child->ino;
  }
  ASSIGN_OR_RETURN(FileLayoutReport report, fs.file_layout(ino));
  FileExtents f;
  f.path = path;
  f.ino = ino;
  f.size = report.size;
  f.inode_flags = report.flags.flags;
  f.project_id = report.flags.project_id;
  f.inline_data = report.inline_data;
  for (const FileExtentReport& e : report.extents) {
    f.extents.push_back({e.file_offset, e.region_offset, e.length,
                         e.unwritten ? wire::kExtentUnwritten : 0u, 0});
  }
  return f;
}

}  // namespace

int run_extents(const Options& options) {
  if (options.operands.empty()) {
    complain("extents: name at least one file");
    return kExitUsage;
  }
  std::vector<FileExtents> shown;
  int failed = 0;
  Image image;
  if (!options.image.empty()) {
    auto opened = open_image(options.image);
    if (!opened.is_ok()) {
      complain(opened.status().message());
      return kExitFailed;
    }
    image = std::move(*opened);
  }
  for (const std::string& path : options.operands) {
    auto f = image.fs ? from_image(*image.fs, path) : from_daemon(path);
    if (!f.is_ok()) {
      complain(f.status().to_string());
      ++failed;
      continue;
    }
    shown.push_back(std::move(*f));
  }
  if (options.json) {
    JsonWriter j;
    j.begin_object();
    j.key("source").value(image.fs ? "image" : "daemon");
    j.key("files").begin_array();
    for (const auto& f : shown) write_json(j, f);
    j.end_array();
    j.end_object();
    std::fputs(j.finish().c_str(), stdout);
  } else {
    for (const auto& f : shown) print_text(f);
  }
  if (failed == 0) return kExitOk;
  return shown.empty() ? kExitFailed : kExitSomeFailed;
}

}  // namespace sealfs::layout
