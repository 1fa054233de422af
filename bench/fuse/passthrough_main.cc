// passthrough: the plain libfuse low-level passthrough daemon that
// bench/fuse/run.sh measures sealfs against. Multi-threaded, write-through
// (no writeback cache), page cache dropped at each open (keep_cache off),
// requests up to 1 MiB; every request is one or two system calls on a
// descriptor of the backing inode. Written for the benchmark, in the spirit
// of libfuse's example/passthrough_ll.c.
//
//   passthrough [-f] [-d] [-s] [-o OPTIONS] SOURCE_DIR MOUNTPOINT
//
// Daemonizes once mounted unless -f; -s serves from one thread.
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>

#include "passthrough_inodes.h"
#include "passthrough_ops.h"

namespace {

// fuse_opt_parse hands over the first non-option argument: the source.
int take_source(void* data, const char* arg, int key, fuse_args*) {
  auto* source = static_cast<const char**>(data);
  if (key == FUSE_OPT_KEY_NONOPT && *source == nullptr) {
    *source = arg;
    return 0;  // consumed; the mountpoint stays for fuse_parse_cmdline
  }
  return 1;
}

int usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s [-f] [-d] [-s] [-o OPTIONS] SOURCE_DIR MOUNTPOINT\n", argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  fuse_args args = FUSE_ARGS_INIT(argc, argv);
  const char* source = nullptr;
  if (fuse_opt_parse(&args, &source, nullptr, take_source) != 0) return usage(argv[0]);
  fuse_cmdline_opts opts{};
  if (fuse_parse_cmdline(&args, &opts) != 0) return usage(argv[0]);
  if (opts.show_help || source == nullptr || opts.mountpoint == nullptr) return usage(argv[0]);

  // Opened before daemonizing, which changes the working directory.
  int root_fd = open(source, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) {
    std::perror(source);
    return 1;
  }
  passthrough::InodeTable table(root_fd);

  int rc = 1;
  fuse_session* se = fuse_session_new(&args, &passthrough::operations(),
                                      sizeof(fuse_lowlevel_ops), &table);
  if (se != nullptr) {
    if (fuse_set_signal_handlers(se) == 0) {
      if (fuse_session_mount(se, opts.mountpoint) == 0) {
        fuse_daemonize(opts.foreground);
        if (opts.singlethread) {
          rc = fuse_session_loop(se);
        } else {
          fuse_loop_config* config = fuse_loop_cfg_create();
          fuse_loop_cfg_set_clone_fd(config, static_cast<unsigned>(opts.clone_fd));
          // UINT_MAX: not given on the command line, keep libfuse's default.
          if (opts.max_idle_threads != UINT_MAX) {
            fuse_loop_cfg_set_idle_threads(config, opts.max_idle_threads);
          }
          if (opts.max_threads != UINT_MAX) fuse_loop_cfg_set_max_threads(config, opts.max_threads);
          rc = fuse_session_loop_mt(se, config);
          fuse_loop_cfg_destroy(config);
        }
        fuse_session_unmount(se);
      }
      fuse_remove_signal_handlers(se);
    }
    fuse_session_destroy(se);
  }
  std::free(opts.mountpoint);
  fuse_opt_free_args(&args);
  return rc == 0 ? 0 : 1;
}
