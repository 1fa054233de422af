// sealfs: the FUSE daemon. Parses the command line and hands over.
#include <cstdio>

#include "fuse/daemon.h"
#include "fuse/fd_limit.h"
#include "fuse/log_sink.h"
#include "fuse/options.h"
#include "util/log.h"
#include "util/version.h"

int main(int argc, char** argv) {
  using namespace sealfs::fuse;
  auto parsed = parse_command_line(argc, argv);
  if (!parsed.is_ok()) {
    std::fprintf(stderr, "sealfs: %s\n", parsed.status().message().c_str());
    return 1;
  }
  const DaemonOptions& options = *parsed;
  if (options.show_help) {
    print_usage(argv[0]);
    return 0;
  }
  if (options.show_version) {
    std::printf("sealfs %s\n", sealfs::kVersion);
    return 0;
  }
  sealfs::set_log_level(options.log_level);
  if (auto st = start_daemon_log(options); !st.is_ok()) {
    std::fprintf(stderr, "sealfs: %s\n", st.message().c_str());
    return 1;
  }
  raise_fd_limit();
  return run_daemon(options);
}
