#include "crash/fs_state.h"

#include <dirent.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <set>

namespace sealfs::crash {

namespace {

int64_t ns(const timespec& t) { return t.tv_sec * 1000000000ll + t.tv_nsec; }

uint32_t dtype_of(uint32_t mode) {
  if (S_ISDIR(mode)) return DT_DIR;
  if (S_ISREG(mode)) return DT_REG;
  if (S_ISLNK(mode)) return DT_LNK;
  if (S_ISFIFO(mode)) return DT_FIFO;
  if (S_ISCHR(mode)) return DT_CHR;
  if (S_ISBLK(mode)) return DT_BLK;
  if (S_ISSOCK(mode)) return DT_SOCK;
  return DT_UNKNOWN;
}

std::string child_path(const std::string& dir, const std::string& name) {
  return dir == "/" ? "/" + name : dir + "/" + name;
}

void fill_node(Filesystem& fs, Ino ino, const Attr& a, const std::string& path, NodeState& n,
               std::vector<std::string>& problems) {
  n.mode = a.mode;
  n.uid = a.uid;
  n.gid = a.gid;
  n.nlink = a.nlink;
  n.size = a.size;
  n.blocks = a.blocks;
  n.mtime_ns = ns(a.mtime);
  n.ctime_ns = ns(a.ctime);
  if (S_ISLNK(a.mode)) {
    auto t = fs.readlink(ino);
    if (!t.is_ok()) problems.push_back(path + ": readlink: " + t.status().to_string());
    else n.target = *t;
  }
  if (S_ISREG(a.mode)) {
    n.content.assign(a.size, '\0');
    auto got = fs.read_copy(ino, 0, n.content.data(), a.size);
    if (!got.is_ok()) {
      problems.push_back(path + ": read: " + got.status().to_string());
    } else if (*got != a.size) {
      problems.push_back(path + ": read " + std::to_string(*got) + " bytes of a " +
                         std::to_string(a.size) + "-byte file");
    }
  }
  auto names = fs.listxattr(ino);
  if (!names.is_ok()) {
    problems.push_back(path + ": listxattr: " + names.status().to_string());
    return;
  }
  for (const auto& name : *names) {
    auto v = fs.getxattr(ino, name);
    if (!v.is_ok()) {
      problems.push_back(path + ": getxattr " + name + ": " + v.status().to_string());
      continue;
    }
    n.xattrs[name] = std::string(v->begin(), v->end());
  }
}

}  // namespace

FsState capture(Filesystem& fs, std::vector<std::string>& problems) {
  FsState s;
  std::map<Ino, uint32_t> names_of;     // non-directories: names found
  std::map<Ino, uint32_t> subdirs_of;   // directories: subdirectories found
  std::vector<std::pair<std::string, Ino>> todo{{"/", 1}};
  std::map<Ino, Ino> parent_of{{1, 1}};
  s.paths["/"] = 1;
  while (!todo.empty()) {
    auto [dir_path, dir] = todo.back();
    todo.pop_back();
    auto a = fs.getattr(dir);
    if (!a.is_ok()) {
      problems.push_back(dir_path + ": getattr: " + a.status().to_string());
      continue;
    }
    fill_node(fs, dir, *a, dir_path, s.nodes[dir], problems);
    std::vector<std::pair<std::string, DirEntry>> entries;
    Status st = fs.readdir(dir, 0, [&](const DirEntry& e) {
      entries.emplace_back(std::string(e.name), e);
      return true;
    });
    if (!st.is_ok()) {
      problems.push_back(dir_path + ": readdir: " + st.to_string());
      continue;
    }
    std::set<std::string> seen;
    for (const auto& [name, e] : entries) {
      if (!seen.insert(name).second) problems.push_back(dir_path + ": duplicate entry " + name);
      if (name == ".") {
        if (e.ino != dir) problems.push_back(dir_path + ": '.' is not the directory");
        continue;
      }
      if (name == "..") {
        if (e.ino != parent_of[dir]) problems.push_back(dir_path + ": '..' is not the parent");
        continue;
      }
      std::string path = child_path(dir_path, name);
      auto ca = fs.getattr(e.ino);
      if (!ca.is_ok()) {
        problems.push_back(path + ": entry does not resolve: " + ca.status().to_string());
        continue;
      }
      if (dtype_of(ca->mode) != e.type) problems.push_back(path + ": entry type != inode type");
      s.paths[path] = e.ino;
      if (S_ISDIR(ca->mode)) {
        ++subdirs_of[dir];
        if (parent_of.count(e.ino)) {
          problems.push_back(path + ": directory reachable twice (or is the root)");
          continue;
        }
        parent_of[e.ino] = dir;
        todo.emplace_back(path, e.ino);
      } else {
        if (names_of[e.ino]++ == 0) fill_node(fs, e.ino, *ca, path, s.nodes[e.ino], problems);
      }
    }
  }
  for (const auto& [ino, n] : s.nodes) {
    uint32_t want = S_ISDIR(n.mode) ? 2 + subdirs_of[ino] : names_of[ino];
    if (n.nlink != want) {
      problems.push_back("inode " + std::to_string(ino) + ": nlink " + std::to_string(n.nlink) +
                         ", names found " + std::to_string(want));
    }
  }
  return s;
}

void check_space(Filesystem& fs, const FsState& state, std::vector<std::string>& problems) {
  StatFs st = fs.statfs();
  uint64_t used = 0;
  for (const auto& [ino, n] : state.nodes) used += n.blocks / (st.block_size / 512);
  if (st.free_blocks + used != st.blocks) {
    problems.push_back("space: free " + std::to_string(st.free_blocks) + " + used by files " +
                       std::to_string(used) + " != data blocks " + std::to_string(st.blocks));
  }
  if (st.inodes - st.free_inodes != state.nodes.size()) {
    problems.push_back("inodes: in use " + std::to_string(st.inodes - st.free_inodes) +
                       ", reachable " + std::to_string(state.nodes.size()));
  }
}

std::string metadata_diff(const FsState& got, const FsState& want, Times times) {
  for (const auto& [path, ino] : want.paths) {
    auto it = got.paths.find(path);
    if (it == got.paths.end()) return path + " missing";
    if (it->second != ino) return path + " is inode " + std::to_string(it->second) +
                                  ", expected " + std::to_string(ino);
  }
  for (const auto& [path, ino] : got.paths) {
    if (!want.paths.count(path)) return path + " should not exist";
  }
  for (const auto& [ino, w] : want.nodes) {
    auto it = got.nodes.find(ino);
    if (it == got.nodes.end()) return "inode " + std::to_string(ino) + " missing";
    const NodeState& g = it->second;
    std::string d = "inode " + std::to_string(ino) + ": ";
    auto num = [&](const char* what, uint64_t a, uint64_t b) {
      return d + what + " " + std::to_string(a) + " != " + std::to_string(b);
    };
    if (g.mode != w.mode) return num("mode", g.mode, w.mode);
    if (g.uid != w.uid || g.gid != w.gid) return d + "owner differs";
    if (g.nlink != w.nlink) return num("nlink", g.nlink, w.nlink);
    if (g.size != w.size) return num("size", g.size, w.size);
    if (g.blocks != w.blocks) return num("blocks", g.blocks, w.blocks);
    const bool may_lag = times == Times::kFileTimesMayLag && S_ISREG(w.mode);
    if (may_lag ? g.mtime_ns > w.mtime_ns : g.mtime_ns != w.mtime_ns) {
      return d + "mtime differs";
    }
    if (may_lag ? g.ctime_ns > w.ctime_ns : g.ctime_ns != w.ctime_ns) {
      return d + "ctime differs";
    }
    if (g.target != w.target) return d + "symlink target differs";
    if (g.xattrs != w.xattrs) return d + "xattrs differ";
  }
  return "";
}

std::string content_diff(const FsState& got, const FsState& want, const FsState* other) {
  for (const auto& [ino, g] : got.nodes) {
    if (!S_ISREG(g.mode)) continue;
    const std::string& w = want.nodes.at(ino).content;
    const std::string* o = nullptr;
    if (other != nullptr) {
      auto it = other->nodes.find(ino);
      if (it != other->nodes.end() && S_ISREG(it->second.mode)) o = &it->second.content;
    }
    for (uint64_t at = 0; at < g.content.size(); at += 8) {
      uint64_t n = std::min<uint64_t>(8, g.content.size() - at);
      const char* gw = g.content.data() + at;
      if (n == 8 && std::memcmp(gw, kStaleWord, 8) == 0) {
        return "inode " + std::to_string(ino) + " offset " + std::to_string(at) +
               ": stale data of a deleted file";
      }
      if (std::memcmp(gw, w.data() + at, n) == 0) continue;
      if (o != nullptr && at + n <= o->size() && std::memcmp(gw, o->data() + at, n) == 0) continue;
      auto hex = [](const char* p, uint64_t len) {
        std::string out;
        char buf[4];
        for (uint64_t i = 0; i < len; ++i) {
          std::snprintf(buf, sizeof(buf), "%02x", static_cast<unsigned char>(p[i]));
          out += buf;
        }
        return out;
      };
      return "inode " + std::to_string(ino) + " offset " + std::to_string(at) + " of " +
             std::to_string(g.content.size()) + ": bytes are neither the old nor the new data (" +
             hex(gw, n) + " vs " + hex(w.data() + at, n) + ")";
    }
  }
  return "";
}

}  // namespace sealfs::crash
