#include "fuse/options.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <initializer_list>
#include <vector>

namespace sealfs::fuse {
namespace {

Result<DaemonOptions> parse(std::initializer_list<const char*> args) {
  std::vector<const char*> argv = {"sealfs"};
  argv.insert(argv.end(), args.begin(), args.end());
  return parse_command_line(static_cast<int>(argv.size()), argv.data());
}

bool has(const DaemonOptions& o, const std::string& opt) {
  return std::find(o.fuse_options.begin(), o.fuse_options.end(), opt) != o.fuse_options.end();
}

TEST(FuseOptions, PositionalsAndDefaults) {
  auto o = parse({"/dev/dax0.0", "/mnt/x"});
  ASSERT_TRUE(o.is_ok()) << o.status().to_string();
  EXPECT_EQ(o->target, "/dev/dax0.0");
  EXPECT_EQ(o->mountpoint, "/mnt/x");
  EXPECT_FALSE(o->foreground);
  EXPECT_EQ(o->log_level, "warn");
  EXPECT_EQ(o->max_threads, 10u);
  EXPECT_EQ(join_fuse_options(*o), "default_permissions,fsname=/dev/dax0.0,subtype=sealfs");
}

TEST(FuseOptions, MountHelperForm) {
  // What mount.fuse3 runs for an fstab line.
  auto o = parse({"/img", "/mnt", "-o",
                  "rw,nosuid,nodev,noexec,relatime,_netdev,nofail,defaults,user,x-systemd.automount,"
                  "allow_other,emulate_pmem"});
  ASSERT_TRUE(o.is_ok()) << o.status().to_string();
  EXPECT_TRUE(o->emulate_pmem);
  EXPECT_FALSE(o->read_only);
  EXPECT_TRUE(has(*o, "nosuid"));
  EXPECT_TRUE(has(*o, "allow_other"));
  EXPECT_FALSE(has(*o, "_netdev"));
  EXPECT_FALSE(has(*o, "defaults"));
  EXPECT_FALSE(has(*o, "emulate_pmem"));
  // libfuse 3.14 refuses relatime: the daemon applies it itself.
  EXPECT_FALSE(has(*o, "relatime"));
  EXPECT_EQ(o->atime_options, std::vector<std::string>{"relatime"});
}

TEST(FuseOptions, FlagsAnywhereAndClusters) {
  auto o = parse({"-fd", "/img", "-s", "/mnt", "-oro,max_threads=4", "--log-level=info"});
  ASSERT_TRUE(o.is_ok()) << o.status().to_string();
  EXPECT_TRUE(o->foreground);
  EXPECT_TRUE(o->single_threaded);
  EXPECT_TRUE(o->read_only);
  EXPECT_TRUE(has(*o, "ro"));
  EXPECT_EQ(o->max_threads, 4u);
  EXPECT_EQ(o->log_level, "info");
}

TEST(FuseOptions, LeaseOptions) {
  auto o = parse({"/img", "/mnt", "-o",
                  "lease_break_time=5,revoke=quarantine,dax_group=root,strict_write_break"});
  ASSERT_TRUE(o.is_ok()) << o.status().to_string();
  EXPECT_EQ(o->lease_break_time_s, 5u);
  EXPECT_EQ(o->revoke, RevokePolicy::kQuarantine);
  EXPECT_EQ(o->dax_group, "root");
  EXPECT_TRUE(o->strict_write_break);
}

TEST(FuseOptions, BackgroundVerify) {
  auto d = parse({"/img", "/mnt"});
  ASSERT_TRUE(d.is_ok());
  EXPECT_FALSE(d->background_verify);
  auto o = parse({"/img", "/mnt", "-o", "background_verify"});
  ASSERT_TRUE(o.is_ok()) << o.status().to_string();
  EXPECT_TRUE(o->background_verify);
  // The daemon's business, not the kernel's: never forwarded.
  EXPECT_EQ(join_fuse_options(*o), "default_permissions,fsname=/img,subtype=sealfs");
}

TEST(FuseOptions, InodeCacheBound) {
  auto d = parse({"/img", "/mnt"});
  ASSERT_TRUE(d.is_ok());
  EXPECT_FALSE(d->inode_cache.has_value());  // MountOptions' default
  auto o = parse({"/img", "/mnt", "-o", "inode_cache=1000"});
  ASSERT_TRUE(o.is_ok()) << o.status().to_string();
  EXPECT_EQ(o->inode_cache, std::optional<uint64_t>(1000));
  auto none = parse({"/img", "/mnt", "-o", "inode_cache=0"});
  ASSERT_TRUE(none.is_ok());
  EXPECT_EQ(none->inode_cache, std::optional<uint64_t>(0));
  // The daemon's business, not the kernel's: never forwarded.
  EXPECT_EQ(join_fuse_options(*o), "default_permissions,fsname=/img,subtype=sealfs");
}

TEST(FuseOptions, CacheTimeouts) {
  auto d = parse({"/img", "/mnt"});
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(d->entry_timeout_s, 86400.0);
  EXPECT_EQ(d->negative_timeout_s, 86400.0);
  EXPECT_EQ(d->attr_timeout_s, 86400.0);
  auto o = parse({"/img", "/mnt", "-o", "entry_timeout=0.5,negative_timeout=0,attr_timeout=30"});
  ASSERT_TRUE(o.is_ok()) << o.status().to_string();
  EXPECT_EQ(o->entry_timeout_s, 0.5);
  EXPECT_EQ(o->negative_timeout_s, 0.0);
  EXPECT_EQ(o->attr_timeout_s, 30.0);
  // The daemon's business, not the kernel's: never forwarded.
  EXPECT_EQ(join_fuse_options(*o), "default_permissions,fsname=/img,subtype=sealfs");
}

TEST(FuseOptions, BadValuesAreRejected) {
  for (auto bad : {"entry_timeout=-1", "attr_timeout=1e3", "attr_timeout=", "attr_timeout=x",
                   "negative_timeout=31536001", "entry_timeout=nan", "revoke=maybe", "lease_break_time=-1", "lease_break_time=10s",
                   "lease_break_time=99999", "max_threads=0", "max_threads=x",
                   "dax_group=no-such-group-sealfs", "dax_group=", "frobnicate",
                   "emulate_pmem=1", "inode_cache=", "inode_cache=-1", "inode_cache=1k"}) {
    auto o = parse({"/img", "/mnt", "-o", bad});
    ASSERT_FALSE(o.is_ok()) << bad;
    EXPECT_EQ(o.status().code(), Code::kInvalid) << bad;
    EXPECT_FALSE(o.status().message().empty());
  }
}

TEST(FuseOptions, ArgumentErrors) {
  EXPECT_EQ(parse({"/img"}).status().code(), Code::kInvalid);
  EXPECT_EQ(parse({"/img", "/mnt", "/extra"}).status().code(), Code::kInvalid);
  EXPECT_EQ(parse({"-x", "/img", "/mnt"}).status().code(), Code::kInvalid);
  EXPECT_EQ(parse({"--nope", "/img", "/mnt"}).status().code(), Code::kInvalid);
  EXPECT_EQ(parse({"/img", "/mnt", "-o"}).status().code(), Code::kInvalid);
  EXPECT_EQ(parse({"--log-level=loud", "/img", "/mnt"}).status().code(), Code::kInvalid);
  EXPECT_TRUE(parse({"-h"}).is_ok());
  EXPECT_TRUE(parse({"-V"})->show_version);
}

// The log file: on the command line, or as -o log_file= for fstab lines
// (mount.fuse3 hands only -o options down); never a kernel option.
TEST(FuseOptions, LogFile) {
  EXPECT_EQ(parse({"/img", "/mnt"})->log_file, "");
  auto eq = parse({"--log-file=/var/log/sealfs.log", "/img", "/mnt"});
  ASSERT_TRUE(eq.is_ok()) << eq.status().to_string();
  EXPECT_EQ(eq->log_file, "/var/log/sealfs.log");
  auto sep = parse({"--log-file", "rel.log", "/img", "/mnt"});
  ASSERT_TRUE(sep.is_ok()) << sep.status().to_string();
  EXPECT_EQ(sep->log_file, "rel.log");
  EXPECT_EQ(sep->target, "/img");
  auto fstab = parse({"/img", "/mnt", "-o", "rw,log_file=/var/log/pool.log,allow_other"});
  ASSERT_TRUE(fstab.is_ok()) << fstab.status().to_string();
  EXPECT_EQ(fstab->log_file, "/var/log/pool.log");
  EXPECT_EQ(join_fuse_options(*fstab).find("log_file"), std::string::npos);
  EXPECT_EQ(parse({"--log-file=", "/img", "/mnt"}).status().code(), Code::kInvalid);
  EXPECT_EQ(parse({"/img", "/mnt", "--log-file"}).status().code(), Code::kInvalid);
  EXPECT_EQ(parse({"/img", "/mnt", "-o", "log_file="}).status().code(), Code::kInvalid);
}

TEST(FuseOptions, UserFsnameWinsAndCommasAreEscaped) {
  auto own = parse({"/img", "/mnt", "-o", "fsname=pool0,subtype=sealfs"});
  ASSERT_TRUE(own.is_ok());
  EXPECT_EQ(join_fuse_options(*own), "fsname=pool0,subtype=sealfs,default_permissions");
  auto comma = parse({"/a,b", "/mnt"});
  ASSERT_TRUE(comma.is_ok());
  EXPECT_TRUE(has(*comma, "fsname=/a\\,b"));
}

}  // namespace
}  // namespace sealfs::fuse
