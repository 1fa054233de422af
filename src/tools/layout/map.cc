// sealfs-layout map: a picture of the whole region (SVG; PNG beside it when
// rsvg-convert is installed). Each row is a run of the region, 2 MiB
// boundaries are drawn, metadata areas are grey, free space pale, quarantined
// blocks red, and each of the largest files has its own colour, named in
// the legend; smaller files share one colour. Fragmentation shows as many
// thin stripes.
#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "media/superblock.h"
#include "tools/layout/common.h"
#include "tools/layout/json_writer.h"
#include "tools/layout/space.h"

extern char** environ;

namespace sealfs::layout {
namespace {

constexpr size_t kLegendFiles = 12;
constexpr double kWidth = 1024, kRowHeight = 14, kLeft = 70, kTop = 40;
constexpr size_t kMaxRows = 128;
const char* const kPalette[kLegendFiles] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd",
                                            "#8c564b", "#e377c2", "#17becf", "#bcbd22",
                                            "#393b79", "#637939", "#8c6d31", "#843c39"};
constexpr const char* kOtherFiles = "#7f7f7f";
constexpr const char* kFree = "#f4f4f4";
constexpr const char* kQuarantined = "#d62728";
constexpr const char* kMeta = "#c7c7c7";
constexpr const char* kUnattributed = "#e6dcb4";

struct Piece {
  uint64_t offset = 0, length = 0;
};
struct FileBlocks {
  std::string name;
  uint64_t bytes = 0;
  std::vector<Piece> pieces;
};
struct Picture {
  uint64_t region_size = 0;
  std::vector<std::pair<std::string, Piece>> areas;  // metadata areas
  std::vector<FileBlocks> files;
  Space space;
  bool from_daemon = false;
};

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

void add_areas(Picture& p, const Geometry& g) {
  p.region_size = g.region_size;
  auto area = [&](const char* name, uint64_t start, uint64_t blocks) {
    p.areas.push_back({name, {block_offset(start), block_offset(blocks)}});
  };
  area("superblock", 0, 1);
  area("journal", g.journal_start, g.journal_blocks);
  area("holder table", g.holder_start, g.holder_blocks);
  area("inode table", g.inode_start, g.inode_blocks);
  area("bitmap", g.bitmap_start, g.bitmap_blocks);
  area("backup superblock", g.backup_block(), 1);
}

// Names of every file, by walking the tree from the root.
void walk(Filesystem& fs, Ino dir, const std::string& path, std::map<Ino, std::string>& names,
          int depth) {
  if (depth > 64) return;
  std::vector<std::pair<std::string, Ino>> children;
  Status s = fs.readdir(dir, 0, [&](const DirEntry& e) {
    if (e.name != "." && e.name != "..") children.push_back({std::string(e.name), e.ino});
    return true;
  });
  if (!s.is_ok()) return;
  for (const auto& [name, ino] : children) {
    const std::string child = path + "/" + name;
    if (!names.count(ino)) names[ino] = child;
    auto attr = fs.getattr(ino);
    if (attr.is_ok() && S_ISDIR(attr->mode)) walk(fs, ino, child, names, depth + 1);
  }
}

Result<Picture> picture_of_region(const std::string& path) {
  ASSIGN_OR_RETURN(Image image, open_image(path));
  Filesystem& fs = *image.fs;
  Picture p;
  ASSIGN_OR_RETURN(Superblock sb, read_superblock(fs.region()));
  add_areas(p, sb.geometry);
  std::map<Ino, std::string> names;
  names[format::kRootIno] = "/";
  walk(fs, format::kRootIno, "", names, 0);
  for (Ino ino : fs.used_inodes()) {
    auto report = fs.file_layout(ino);
    if (!report.is_ok() || report->extents.empty()) continue;
    FileBlocks f;
    f.name = names.count(ino) ? names[ino] : fmt::format("(inode {})", ino);
    for (const auto& e : report->extents) {
      f.pieces.push_back({e.region_offset, e.length});
      f.bytes += e.length;
    }
    p.files.push_back(std::move(f));
  }
  image.fs.reset();
  ASSIGN_OR_RETURN(p.space, load_space(path));
  return p;
}

// A mount: the daemon's superblock and free space, and the extents of each
// file and directory this user can open, asked one by one (each answer is a
// snapshot of its own). Blocks of files the user cannot open are drawn as
// "used, not attributed".
Result<Picture> picture_of_mount(const std::string& path, DaemonConnection& daemon) {
  Picture p;
  p.from_daemon = true;
  ASSIGN_OR_RETURN(auto super, daemon.ask(wire::Type::kSuper));
  if (super.count != 1) return Status(Code::kCorruption, "the daemon sent no superblock");
  const auto record = super.record<wire::SuperRecord>(0);
  format::DiskSuperblock disk;
  std::memcpy(&disk, record.primary, sizeof(disk));
  auto sb = decode_superblock(disk, record.region_size);
  if (!sb.is_ok()) {
    std::memcpy(&disk, record.backup, sizeof(disk));
    sb = decode_superblock(disk, record.region_size);
  }
  if (!sb.is_ok()) return sb.status().with_context("superblock");
  add_areas(p, sb->geometry);
  ASSIGN_OR_RETURN(p.space, load_space(path));
  // Every regular file and directory this user can open.
  std::vector<std::string> stack{path};
  std::map<uint64_t, bool> seen;
  while (!stack.empty()) {
    const std::string dir = stack.back();
    stack.pop_back();
    std::vector<std::string> entries;
    if (DIR* d = opendir(dir.c_str())) {
      while (struct dirent* e = readdir(d)) {
        const std::string n = e->d_name;
        if (n != "." && n != "..") entries.push_back(n);
      }
      closedir(d);
    }
    for (const std::string& n : entries) {
      const std::string full = dir + "/" + n;
      struct stat st {};
      if (lstat(full.c_str(), &st) != 0 || seen[st.st_ino]) continue;
      seen[st.st_ino] = true;
      if (S_ISDIR(st.st_mode)) stack.push_back(full);
      if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) continue;
      int fd = open(full.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      if (fd < 0) continue;
      auto answer = daemon.ask(wire::Type::kExtents, fd);
      close(fd);
      if (!answer.is_ok() || answer->count == 0) continue;
      FileBlocks f;
      f.name = full.substr(path.size());
      for (uint64_t i = 0; i < answer->count; ++i) {
        const auto e = answer->record<wire::ExtentRecord>(i);
        f.pieces.push_back({e.region_offset, e.length});
        f.bytes += e.length;
      }
      p.files.push_back(std::move(f));
    }
  }
  return p;
}

class Svg {
 public:
  Svg(uint64_t region_size) {
    uint64_t per_row = kHugeRun;
    while (region_size / per_row + (region_size % per_row != 0) > kMaxRows) per_row *= 2;
    bytes_per_row_ = per_row;
    rows_ = region_size / per_row + (region_size % per_row != 0);
  }
  uint64_t bytes_per_row() const { return bytes_per_row_; }
  double height() const { return kTop + static_cast<double>(rows_) * kRowHeight; }
  // Fills [offset, +length) row by row.
  void fill(uint64_t offset, uint64_t length, const char* colour, const std::string& title) {
    while (length > 0) {
      const uint64_t row = offset / bytes_per_row_;
      const uint64_t in_row = std::min(length, bytes_per_row_ - offset % bytes_per_row_);
      const double x = kLeft + static_cast<double>(offset % bytes_per_row_) * kWidth /
                                   static_cast<double>(bytes_per_row_);
      const double w = std::max(0.5, static_cast<double>(in_row) * kWidth /
                                         static_cast<double>(bytes_per_row_));
      body_ += fmt::format(
          "<rect x=\"{:.2f}\" y=\"{:.1f}\" width=\"{:.2f}\" height=\"{:.1f}\" fill=\"{}\">"
          "<title>{}</title></rect>\n",
          x, kTop + static_cast<double>(row) * kRowHeight, w, kRowHeight - 2, colour,
          xml_escape(title));
      offset += in_row;
      length -= in_row;
    }
  }
  void grid() {
    // 2 MiB boundaries, as ticks when a row holds too many to draw apart.
    const uint64_t per_row = bytes_per_row_ / kHugeRun;
    const double step = kWidth / static_cast<double>(per_row);
    for (uint64_t r = 0; r < rows_; ++r) {
      const double y = kTop + static_cast<double>(r) * kRowHeight;
      body_ += fmt::format("<text x=\"4\" y=\"{:.1f}\" font-size=\"9\">{}</text>\n", y + 9,
                           human(r * bytes_per_row_));
      if (step < 2) continue;
      for (uint64_t i = 0; i <= per_row; ++i) {
        const double x = kLeft + static_cast<double>(i) * step;
        body_ += fmt::format(
            "<line x1=\"{:.2f}\" y1=\"{:.1f}\" x2=\"{:.2f}\" y2=\"{:.1f}\" stroke=\"#000\" "
            "stroke-width=\"0.3\"/>\n",
            x, y, x, y + kRowHeight - 2);
      }
    }
  }
  std::string body_;

 private:
  uint64_t bytes_per_row_ = kHugeRun;
  uint64_t rows_ = 1;
};

std::string render(const Picture& p, const std::string& title) {
  Svg svg(p.region_size);
  std::vector<const FileBlocks*> files;
  for (const auto& f : p.files) files.push_back(&f);
  std::sort(files.begin(), files.end(), [](const FileBlocks* a, const FileBlocks* b) {
    return a->bytes != b->bytes ? a->bytes > b->bytes : a->name < b->name;
  });
  // The data area is drawn used first; free space and files go over it, so
  // what stays is used by what no file's extent list names (extent and
  // xattr blocks, files not shown).
  svg.fill(p.space.data_start, p.space.data_length, kUnattributed, "used, not attributed");
  for (const auto& [name, piece] : p.areas) svg.fill(piece.offset, piece.length, kMeta, name);
  for (const auto& s : p.space.pieces) {
    if (s.kind == wire::kSpaceFree) {
      svg.fill(s.region_offset, s.length, kFree, "free " + human(s.length));
    } else {
      svg.fill(s.region_offset, s.length, kQuarantined,
               fmt::format("quarantined for pid {}", s.holder_pid));
    }
  }
  for (size_t i = 0; i < files.size(); ++i) {
    const char* colour = i < kLegendFiles ? kPalette[i] : kOtherFiles;
    for (const Piece& piece : files[i]->pieces) {
      svg.fill(piece.offset, piece.length, colour, files[i]->name);
    }
  }
  svg.grid();
  // Legend to the right of the rows.
  std::string legend;
  double y = kTop;
  const double x = kLeft + kWidth + 20;
  auto entry = [&](const char* colour, const std::string& text) {
    legend += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"12\" height=\"12\" fill=\"{}\" "
        "stroke=\"#000\" stroke-width=\"0.3\"/><text x=\"{:.1f}\" y=\"{:.1f}\" "
        "font-size=\"11\">{}</text>\n",
        x, y, colour, x + 18, y + 10, xml_escape(text));
    y += 16;
  };
  entry(kMeta, "metadata (superblocks, journal, holders, inodes, bitmap)");
  entry(kFree, "free");
  entry(kUnattributed, "used, not attributed (extent/xattr blocks, files not shown)");
  entry(kQuarantined, "quarantined");
  for (size_t i = 0; i < files.size() && i < kLegendFiles; ++i) {
    const size_t n = files[i]->pieces.size();
    entry(kPalette[i], fmt::format("{} ({}, {} extent{})", files[i]->name,
                                   human(files[i]->bytes), n, n == 1 ? "" : "s"));
  }
  if (files.size() > kLegendFiles) {
    entry(kOtherFiles, fmt::format("{} other files", files.size() - kLegendFiles));
  }
  const double height = std::max(svg.height(), y) + 20;
  return fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0f}\" height=\"{:.0f}\" "
      "font-family=\"sans-serif\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n"
      "<text x=\"4\" y=\"20\" font-size=\"14\">{} - {} region, {} per row, lines every 2M</text>\n"
      "{}{}</svg>\n",
      kLeft + kWidth + 460, height, xml_escape(title), human(p.region_size),
      human(svg.bytes_per_row()), svg.body_, legend);
}

// PNG beside the SVG when rsvg-convert is installed (not a dependency).
bool write_png(const std::string& svg_path) {
  std::string png = svg_path;
  if (png.size() > 4 && png.compare(png.size() - 4, 4, ".svg") == 0) png.resize(png.size() - 4);
  png += ".png";
  const char* argv[] = {"rsvg-convert", "-o", png.c_str(), svg_path.c_str(), nullptr};
  pid_t pid;
  if (posix_spawnp(&pid, "rsvg-convert", nullptr, nullptr, const_cast<char**>(argv), environ) !=
      0) {
    return false;
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    std::fprintf(stderr, "sealfs-layout: wrote %s\n", png.c_str());
    return true;
  }
  return false;
}

}  // namespace

int run_map(const Options& options) {
  if (options.operands.size() != 1 || options.output.empty()) {
    complain("map: name one REGION or MOUNTPOINT and -o FILE.svg");
    return kExitUsage;
  }
  const std::string& path = options.operands[0];
  auto target = resolve_target(path);
  if (!target.is_ok()) {
    complain(target.status().message());
    return kExitFailed;
  }
  Result<Picture> picture = target->daemon ? picture_of_mount(path, *target->daemon)
                                           : picture_of_region(path);
  if (!picture.is_ok()) {
    complain(path + ": " + picture.status().to_string());
    return kExitFailed;
  }
  const std::string svg = render(*picture, path);
  std::ofstream out(options.output, std::ios::trunc);
  out << svg;
  out.close();
  if (!out) {
    complain("cannot write " + options.output);
    return kExitFailed;
  }
  const bool png = write_png(options.output);
  if (!options.json) {
    std::printf("wrote %s: %s region, %zu files%s\n", options.output.c_str(),
                human(picture->region_size).c_str(), picture->files.size(),
                png ? " (and a PNG beside it)" : "");
  }
  if (options.json) {
    JsonWriter j;
    j.begin_object().key("target").value(path).key("svg").value(options.output);
    j.key("png").value(png).key("files").value(uint64_t{picture->files.size()});
    j.end_object();
    std::fputs(j.finish().c_str(), stdout);
  }
  return kExitOk;
}

}  // namespace sealfs::layout
