// map_file.cpp: the C example (map_file.c) through the C++ wrappers of
// <sealfs/sealfs.hpp>, which need C++17 or later.
//
//   c++ -std=c++17 map_file.cpp $(pkg-config --cflags --libs sealfs) -o map_file++
//   ./map_file++ /mnt/sealfs/table.db
#include <fcntl.h>
#include <unistd.h>

#include <sealfs/sealfs.hpp>

#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s FILE\n", argv[0]);
    return 2;
  }
  const char* path = argv[1];
  const size_t len = 16 << 20;  // 16 MiB
  const char record[] = "hello, persistent memory";

  int fd = open(path, O_RDWR | O_CREAT, 0644);
  if (fd < 0) {
    std::perror(path);
    return 1;
  }
  if (ftruncate(fd, static_cast<off_t>(len)) != 0) {
    std::perror("ftruncate");
    close(fd);
    return 1;
  }
  int err = 0;
  {
    sealfs::DirectMap map;
    err = sealfs::DirectMap::open(fd, 0, len, PROT_READ | PROT_WRITE, SEALFS_MAP_ALLOCATE, &map);
    if (err != 0) {
      std::fprintf(stderr, "sealfs_map: %s (%s)\n", std::strerror(-err), sealfs_last_error());
      close(fd);
      return 1;
    }
    std::memcpy(map.data(), record, sizeof record);
    err = map.persist(map.data(), sizeof record);
    if (err != 0) std::fprintf(stderr, "persist: %s\n", std::strerror(-err));
    if (int r = map.reset(); r != 0) {  // the destructor would unmap too, unchecked
      std::fprintf(stderr, "sealfs_unmap: %s\n", std::strerror(-r));
      err = r;
    }
  }
  if (close(fd) != 0) {
    std::perror("close");
    return 1;
  }
  if (err != 0) return 1;
  std::printf("%s: %zu bytes stored through a direct mapping of %zu\n", path, sizeof record, len);
  return 0;
}
