#include "tools/mkfs_args.h"

#include <getopt.h>

#include <limits>
#include <optional>

#include "sealfs/format.h"
#include "util/units.h"
#include "util/version.h"

namespace sealfs::mkfs {

void usage(std::FILE* out) {
  std::fprintf(out,
      "Usage: mkfs.sealfs [-f] [-n] [-q] [-L label] [-N inodes] [-J journal-size]\n"
      "                   [--align BYTES] [--size SIZE] [--allocate | --sparse-ok]\n"
      "                   [--no-inline-data] TARGET\n"
      "\n"
      "Creates a sealfs on TARGET: a devdax device (/dev/daxX.Y), a file on a DAX\n"
      "filesystem, or an ordinary file.\n"
      "\n"
      "  -f, --force          overwrite an existing filesystem (sealfs, ext2/3/4, XFS)\n"
      "  -n, --dry-run        print the layout, write nothing\n"
      "  -q, --quiet          print nothing on success\n"
      "  -L, --label LABEL    volume label, at most 63 bytes\n"
      "  -N, --inodes COUNT   inode count (default one per 16 KiB, at least 64)\n"
      "  -J, --journal SIZE   journal size (default 16M, at least 256K)\n"
      "      --align BYTES    data area alignment: a power of two >= 4096 and >= the\n"
      "                       device's own alignment (the default)\n"
      "      --size SIZE      create TARGET, or grow it to SIZE (never shrinks); files only\n"
      "      --allocate       allocate every block of a region file now (fails cleanly,\n"
      "                       target unchanged, if its filesystem cannot hold it)\n"
      "      --sparse-ok      format a sparse region file even when its filesystem cannot\n"
      "                       hold the whole region (refused otherwise: once that\n"
      "                       filesystem is full, sealfs writes fail with EIO)\n"
      "      --no-inline-data keep every non-empty file in blocks (by default files of\n"
      "                       up to 144 bytes live in their inode; such an image needs a\n"
      "                       daemon that knows the inline_data feature)\n"
      "  -h, --help           this text\n"
      "  -V, --version        print the version\n"
      "\n"
      "Sizes are whole numbers with an optional binary unit K, M, G, T or P (powers\n"
      "of 1024), which may be followed by iB: 4096, 64K, 16M, 16MiB, 1G, 2T. KB, MB,\n"
      "GB... are refused as ambiguous.\n"
      "Exit status: 0 on success, 1 on any error. The target is then unchanged, except\n"
      "after an I/O error while writing the format: it then holds no valid filesystem.\n");
}

namespace {

std::optional<uint64_t> parse_count(const char* text) {
  if (*text == '\0') return std::nullopt;
  uint64_t value = 0;
  for (const char* p = text; *p != '\0'; ++p) {
    if (*p < '0' || *p > '9') return std::nullopt;
    uint64_t digit = static_cast<uint64_t>(*p - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

}  // namespace

// Returns kExitOk to go on, or the exit status to stop with (help, version
// and errors); -1 means "parsed".
int parse_args(int argc, char** argv, Args& args) {
  enum { kAlign = 256, kSize, kAllocate, kSparseOk, kNoInlineData };
  static const option kLong[] = {
      {"force", no_argument, nullptr, 'f'},      {"dry-run", no_argument, nullptr, 'n'},
      {"quiet", no_argument, nullptr, 'q'},      {"label", required_argument, nullptr, 'L'},
      {"inodes", required_argument, nullptr, 'N'},
      {"journal", required_argument, nullptr, 'J'},
      {"align", required_argument, nullptr, kAlign},
      {"size", required_argument, nullptr, kSize},
      {"allocate", no_argument, nullptr, kAllocate},
      {"sparse-ok", no_argument, nullptr, kSparseOk},
      {"no-inline-data", no_argument, nullptr, kNoInlineData},
      {"help", no_argument, nullptr, 'h'},       {"version", no_argument, nullptr, 'V'},
      {nullptr, 0, nullptr, 0}};
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, ":fnqL:N:J:hV", kLong, nullptr)) != -1) {
    switch (c) {
      case 'f': args.force = true; break;
      case 'n': args.dry_run = true; break;
      case 'q': args.quiet = true; break;
      case 'L':
        args.label = optarg;
        if (args.label.size() > 63) {
          return fail("label '{}' is {} bytes; at most 63", args.label, args.label.size());
        }
        break;
      case 'N': {
        auto n = parse_count(optarg);
        if (!n || *n == 0 || *n > std::numeric_limits<uint32_t>::max()) {
          return fail("invalid inode count '{}': expected 1 to {}", optarg,
                      std::numeric_limits<uint32_t>::max());
        }
        args.inodes = *n;
        break;
      }
      case 'J': {
        auto n = parse_size(optarg);
        if (!n.is_ok()) return fail("invalid journal size {}", n.status().message());
        if (*n == 0) return fail("invalid journal size '{}'", optarg);
        args.journal_bytes = *n;
        break;
      }
      case kAlign: {
        auto n = parse_size(optarg);
        if (!n.is_ok()) return fail("invalid alignment {}", n.status().message());
        if (*n < 4096 || (*n & (*n - 1)) != 0) {
          return fail("invalid alignment '{}': expected a power of two of at least 4096",
                      optarg);
        }
        args.align = *n;
        break;
      }
      case kSize: {
        auto n = parse_size(optarg);
        if (!n.is_ok()) return fail("invalid size {}", n.status().message());
        if (*n == 0) return fail("invalid size '{}': a region of 0 bytes", optarg);
        args.size = *n;
        break;
      }
      case kAllocate:
      case kSparseOk: {
        SparsePolicy wanted =
            c == kAllocate ? SparsePolicy::kAllocate : SparsePolicy::kAllowSparse;
        if (args.sparse != SparsePolicy::kRefuse && args.sparse != wanted) {
          return fail("--allocate and --sparse-ok exclude each other");
        }
        args.sparse = wanted;
        break;
      }
      case kNoInlineData: args.inline_data = false; break;
      case 'h': usage(stdout); return kExitOk;
      case 'V':
        std::printf("mkfs.sealfs %s (on-media format version %u)\n", kVersion,
                    format::kFormatVersion);
        return kExitOk;
      case ':':
        fail("option '{}' needs an argument", argv[optind - 1]);
        usage(stderr);
        return kExitError;
      default:
        fail("unknown option '{}'", argv[optind - 1]);
        usage(stderr);
        return kExitError;
    }
  }
  if (optind + 1 != argc) {
    fail("{}", optind == argc ? "no target given" : "more than one target given");
    usage(stderr);
    return kExitError;
  }
  args.target = argv[optind];
  return -1;
}

}  // namespace sealfs::mkfs
