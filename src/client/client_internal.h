// libsealfs internals: the per-process state, the control connection and
// its reader thread, the callback thread.
//
// Threads: one thread at a time reads a connection's socket (the reading
// role, Connection::reading): a caller waiting for its answer reads it
// itself when nobody else reads, and handles whatever comes before it;
// otherwise the connection's background reader thread reads (BREAK and
// REVOKE arrive when no call is in flight). Readers only update state and
// queue work; they never wait for the daemon, so a break handler that calls
// sealfs_unmap() (which waits for the daemon's answer) runs on the separate
// callback thread. Lock order: State::mu -> send_mu.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "wire/wire.h"
#include "sealfs/sealfs.h"

namespace sealfs::client {

using BreakCallback = void (*)(struct sealfs_map*, const struct sealfs_break_event*, void*);

struct Connection;

}  // namespace sealfs::client

struct sealfs_reg {
  struct sealfs_map* map = nullptr;
  sealfs::client::BreakCallback cb = nullptr;
  void* arg = nullptr;
  bool fired = false;
  int running = 0;  // callbacks of this registration in flight
  bool dead = false;
};

struct sealfs_map {
  std::shared_ptr<sealfs::client::Connection> conn;
  pid_t pid = 0;  // the process that mapped it; a forked child's copy is dead
  uint64_t lease_id = 0;
  uint64_t generation = 0;
  off_t offset = 0;
  size_t length = 0;
  size_t reserved = 0;  // address space owned from addr (>= length): sealfs_extend grows into it
  void* addr = nullptr;
  int prot = 0;
  uint32_t granularity = sealfs::wire::kGranularityPage;
  unsigned mount_flags = 0;  // SEALFS_MOUNT_*
  int state = 0;  // 0 live, 1 breaking, 2 fenced
  bool mapped = false;
  bool fence_pending = false;  // REVOKE arrived before the pages were in place
  bool released = false;       // the daemon no longer holds the lease for us
  // A sealfs_extend is between its checks and its end: sealfs_unmap waits
  // for it (it uses m and maps into m's addresses), a second one is
  // refused (EBUSY). The added extents are mapped under State::mu, and only
  // if the mapping was not fenced meanwhile: a REVOKE acknowledged before
  // then leaves the added range unmapped (docs/protocol.md "EXTEND").
  bool extending = false;
  std::vector<sealfs_reg*> regs;
  // The pages are registered for write tracking (client/write_tracking.h):
  // a persist of a large range flushes the pages written since the last
  // one. Set before the map is returned; never changed after.
  bool tracks_writes = false;
  // Held from a scan to the fence after its flushes: a scan write-protects
  // the pages it returns, so a concurrent persist of the same pages must not
  // return before this one has flushed them.
  mutable std::mutex persist_mu;
};

struct sealfs_layout {
  std::shared_ptr<sealfs::client::Connection> conn;
  pid_t pid = 0;
  uint64_t lease_id = 0;
  uint64_t generation = 0;
  std::vector<sealfs_extent> extents;
};

namespace sealfs::client {

struct Answer {
  int error = 0;  // local failure (positive errno), else 0
  std::vector<uint8_t> message;  // header + body
  int fd = -1;
  // A granted MAP: the reader registers the lease before anyone waits on it,
  // so a BREAK right behind the reply finds it.
  struct sealfs_map* map = nullptr;
  sealfs_layout* layout = nullptr;
  // An EXTEND's answer: the mapping it grows (no new map object is made).
  struct sealfs_map* extends = nullptr;
};

struct Connection : std::enable_shared_from_this<Connection> {
  std::string path;
  int fd = -1;
  int epfd = -1;         // the background reader's epoll set (fd alone)
  bool alive = true;     // guarded by State::mu
  bool reading = false;  // a thread reads the socket; guarded by State::mu
  std::deque<int> fds_in;  // received descriptors; only the reading thread
  std::mutex send_mu;    // after State::mu
  uint64_t next_request = 1;
  std::map<uint64_t, Answer*> pending;   // guarded by State::mu
  std::map<uint64_t, struct sealfs_map*> maps;  // by lease id, guarded by State::mu
  std::map<uint64_t, sealfs_layout*> layouts;
  // The daemon caches writes (-o writeback_cache) and wants every file
  // written back (fdatasync) before it is mapped; learnt from its first
  // kFlushFirst refusal.
  std::atomic<bool> flush_before_map{false};
  ~Connection();
};

struct State {
  std::mutex mu;
  std::condition_variable cv;          // callback jobs queued or finished
  // Answers (and lost connections) wake only the callers waiting for an
  // answer: on cv they would also wake the callback thread every time.
  std::condition_variable answers_cv;
  pid_t pid = 0;
  std::map<std::string, std::shared_ptr<Connection>> conns;
  int break_fd = -1;
  std::deque<sealfs_break_event> events;
  BreakCallback handler = nullptr;
  void* handler_arg = nullptr;
  int signo = 0;
  std::deque<std::function<void()>> jobs;  // for the callback thread
  bool callback_thread_started = false;
  std::thread::id callback_thread_id;
};

State& state();
// Resets inherited state in a forked child; call with mu held at every entry.
void check_fork_locked();
void set_error(const std::string& text);
int fail(int err, const std::string& text);  // sets the text, returns -err

// The connection for a control socket path, connecting on first use.
// 0 or -errno (with the error text set).
int connection_for(const std::string& path, std::shared_ptr<Connection>* out);
// Sends a request (with an optional descriptor) and waits for its answer.
// Called without State::mu.
Answer call(const std::shared_ptr<Connection>& conn, wire::Type type, const void* body,
            size_t body_size, int fd = -1, struct sealfs_map* extends = nullptr);
// Fire-and-forget (REVOKE ack). Called without State::mu.
void send_only(Connection& conn, wire::Type type, const void* body, size_t body_size);

// Sends a MAP or an EXTEND (`body`, whose u32 `*flags` gets FLUSHED when
// the daemon wants the file written back first) and reads its MAP_REPLY:
// 0 with *reply and *extents filled, or -errno with the error text set
// (a refusal's errno, with reply->detail saying which).
int ask_for_extents(const std::shared_ptr<Connection>& conn, int fd, wire::Type type, void* body,
                    size_t body_size, uint32_t* flags, struct sealfs_map* extends,
                    Answer* answer, wire::MapReply* reply, std::vector<wire::WireExtent>* extents);
// Whether the extents tile [reply.offset, reply.offset + reply.length) in
// order, page aligned.
bool extents_tile(const wire::MapReply& reply, const std::vector<wire::WireExtent>& extents);

// Maps each granted extent at base + (its file offset - base_offset),
// MAP_FIXED (MAP_SYNC on fsdax). 0 or an errno (EOPNOTSUPP: MAP_SYNC
// refused where it is needed); map_error_text says which.
int map_extents(void* base, uint64_t base_offset, const std::vector<wire::WireExtent>& extents,
                const wire::MapReply& reply, int region_fd, int prot);
std::string map_error_text(int err, const wire::MapReply& reply);

// Replaces the map's pages with ones that raise SIGBUS on access. mu held.
void fence_locked(struct sealfs_map* m);
// Queues a break event for m (or a layout lease) and schedules callbacks. mu held.
void deliver_break_locked(struct sealfs_map* m, uint64_t lease_id, int reason, uint64_t deadline_ns);

}  // namespace sealfs::client
