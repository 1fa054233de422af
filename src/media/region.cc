#include "media/region.h"

namespace sealfs {

const char* granularity_name(Granularity g) {
  switch (g) {
    case Granularity::kByte: return "byte";
    case Granularity::kCacheLine: return "cache-line";
    case Granularity::kPage: return "page";
  }
  return "?";
}

}  // namespace sealfs
