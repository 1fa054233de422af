#include "lease/lease_server.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>

#include "wire/fd_passing.h"
#include "lease/mount_fd_closer.h"
#include "lease/peer.h"
#include "lease/socket_path.h"
#include "lease/warning_throttle.h"
#include "wire/wire.h"
#include "util/log.h"
#include "util/thread_annotations.h"
#include "util/sync_point.h"

namespace sealfs::lease {
namespace {

enum Tag : uint64_t { kListen = 1, kWake = 2, kTimer = 3, kConn = 4, kPidfd = 5, kIdle = 6 };
uint64_t tag(Tag kind, uint64_t id) { return (uint64_t{kind} << 56) | id; }

int errno_of(wire::Refusal r) {
  switch (r) {
    case wire::Refusal::kNone: return 0;
    case wire::Refusal::kHole:
    case wire::Refusal::kUnwritten: return ENODATA;
    case wire::Refusal::kPastEof: return ERANGE;
    case wire::Refusal::kMisaligned:
    case wire::Refusal::kDevdaxLength: return EINVAL;
    case wire::Refusal::kNotRegular: return ENODEV;
    case wire::Refusal::kNotDax: return EOPNOTSUPP;
    case wire::Refusal::kBreaking: return ENXIO;
    case wire::Refusal::kFlushFirst: return EAGAIN;
    case wire::Refusal::kSealedFile: return EPERM;
    case wire::Refusal::kSharedFile: return EBUSY;
    case wire::Refusal::kUntrusted:
    case wire::Refusal::kOpenMode: return EACCES;
    case wire::Refusal::kWrongMount: return EXDEV;
    case wire::Refusal::kBadRequest: return EINVAL;
    case wire::Refusal::kNoSpace: return ENOSPC;
    case wire::Refusal::kNoLease: return ENOENT;
  }
  return EINVAL;
}

struct Outgoing {
  std::vector<uint8_t> bytes;
  size_t sent = 0;
  int fd = -1;  // sent with the first byte, closed once sent
  // Non-zero: an answer held in its place until the closer has closed the
  // request's client descriptor (mount_fd_closer.h); nothing behind it is
  // sent before it, so a connection's messages keep their order.
  uint64_t awaiting_close = 0;
};

struct Conn {
  int fd = -1;
  PeerInfo peer;  // peer.pidfd belongs to the holder's Watch
  HolderId holder;
  std::vector<uint8_t> in;
  std::deque<int> fds_in;
  std::deque<Outgoing> out;
  size_t out_bytes = 0;
  bool want_write = false;
  bool trusted = false;         // counted so in the budget
  uint64_t last_active_ns = 0;  // last bytes received (untrusted idle check)
};

struct Watch {
  int pidfd = -1;
  uint64_t id = 0;
  int conns = 0;
  bool exited = false;
};

// A MAP whose checks passed: its descriptor is being closed (or was), and
// the grant runs after that, by inode.
struct Parked {
  uint64_t conn = 0;
  uint64_t request_id = 0;
  wire::MapRequest request{};
  uint64_t ino = 0;
  // An EXTEND instead of a MAP (request unused).
  bool extend = false;
  wire::ExtendRequest extension{};
};

struct Action {
  // kClosed: the closer closed the client descriptor of the held answer
  // `token` of connection `conn`.
  // kBreakWritable: break the leases of every file mapped writable.
  enum Kind { kBreak, kRevoke, kKill, kBreakFinished, kClosed, kBreakWritable } kind;
  uint64_t conn = 0;
  uint64_t lease_id = 0;
  uint32_t reason = 0;
  uint64_t deadline_ns = 0;
  HolderId holder;
  uint64_t ino = 0;
  uint64_t token = 0;
};

template <typename Body>
std::vector<uint8_t> encode(wire::Type type, uint64_t request_id, const Body& body,
                            const std::vector<wire::WireExtent>* extents = nullptr) {
  const size_t extra = extents ? extents->size() * sizeof(wire::WireExtent) : 0;
  const uint32_t length = static_cast<uint32_t>(sizeof(wire::Header) + sizeof(Body) + extra);
  std::vector<uint8_t> bytes(length);
  wire::Header h = wire::make_header(type, length, request_id);
  std::memcpy(bytes.data(), &h, sizeof(h));
  std::memcpy(bytes.data() + sizeof(h), &body, sizeof(body));
  if (extra) std::memcpy(bytes.data() + sizeof(h) + sizeof(body), extents->data(), extra);
  return bytes;
}

}  // namespace

struct LeaseServer::Impl final : Notifier {
  ServerOptions options;
  LayoutSource* source = nullptr;
  QuarantineSink* sink = nullptr;
  MonotonicClock own_clock;
  std::unique_ptr<LeaseCore> core;

  int listen_fd = -1, epoll_fd = -1, wake_fd = -1, timer_fd = -1;
  std::optional<struct stat> bound;  // the socket file bind() made
  // Fires every untrusted_idle_ns / 4 while untrusted peers are connected.
  int idle_fd = -1;
  bool idle_armed = false;
  // Kept open to be given up when accept() hits the descriptor limit: the
  // pending connection can then be taken and closed instead of staying in
  // the backlog and waking the loop forever.
  int spare_fd = -1;
  std::optional<ConnectionBudget> budget;
  std::optional<WarningThrottle> throttle;
  std::thread thread;
  std::atomic<bool> stopping{false};
  // Client descriptors are closed here, never on the engine's thread
  // (mount_fd_closer.h). Made before the thread starts.
  // `closer` takes descriptors of files on this mount; `foreign_closer`
  // everything else, and the connections (closing one releases what the
  // peer left unread in it), so that a peer passing a descriptor whose
  // close never ends (its own FUSE mount, a lingering TCP socket) stalls
  // only answers about such descriptors, and not the daemon's exit.
  std::unique_ptr<MountFdCloser> closer;
  std::unique_ptr<MountFdCloser> foreign_closer;
  uint64_t next_token = 1;  // of answers and grants waiting for a closer

  std::map<uint64_t, Conn> conns;
  uint64_t next_conn = 1;
  std::map<HolderId, Watch> watches;
  std::map<uint64_t, HolderId> watch_ids;
  uint64_t next_watch = 1;
  std::map<uint64_t, std::vector<Parked>> parked;  // by inode: waiting for a break
  std::map<uint64_t, Parked> closing;               // by token: waiting for the closer
  std::atomic<size_t> conn_count{0};

  Mutex actions_mu;  // a leaf, taken under the engine mutex (src/meta/locking.h)
  std::vector<Action> actions GUARDED_BY(actions_mu);
  bool timer_dirty GUARDED_BY(actions_mu) = true;
  // Inodes whose writable leases ended, for stamp_ended_leases.
  Mutex stamps_mu;  // a leaf, taken under the engine mutex (src/meta/locking.h)
  std::vector<uint64_t> stamps GUARDED_BY(stamps_mu);

  ~Impl() override {
    if (thread.joinable()) {
      stopping = true;
      wake();
      thread.join();
    }
    for (auto& [id, conn] : conns) drop_conn_fds(conn);
    // Closes what is queued (the answers were dropped with their conns).
    closer.reset();
    foreign_closer.reset();
    for (auto& [h, w] : watches) close(w.pidfd);
    core.reset();  // answers pending continuations with an error
    for (int fd : {listen_fd, epoll_fd, wake_fd, timer_fd, idle_fd, spare_fd}) {
      if (fd >= 0) close(fd);
    }
    unlink_own_socket();
  }

  // Removes the socket this server bound, if the path still names it.
  void unlink_own_socket() {
    if (!bound) return;
    struct stat st {};
    if (lstat(options.socket_path.c_str(), &st) == 0 && st.st_dev == bound->st_dev &&
        st.st_ino == bound->st_ino) {
      unlink(options.socket_path.c_str());
    }
  }

  // --- Notifier (called under the engine mutex, from any thread) ---
  void push(Action a) {
    {
      MutexLock lock(actions_mu);
      actions.push_back(a);
    }
    wake();
  }
  void send_break(uint64_t conn, uint64_t lease_id, uint32_t reason, uint64_t deadline) override {
    push({Action::kBreak, conn, lease_id, reason, deadline, {}, 0});
  }
  void send_revoke(uint64_t conn, uint64_t lease_id) override {
    push({Action::kRevoke, conn, lease_id, 0, 0, {}, 0});
  }
  void kill_holder(const HolderId& holder) override {
    push({Action::kKill, 0, 0, 0, 0, holder, 0});
  }

  // --- client descriptors (mount_fd_closer.h) ---
  MountFdCloser* closer_for(bool own_mount) {
    return own_mount ? closer.get() : foreign_closer.get();
  }
  void close_client_fd(int fd, bool own_mount = false) {
    if (fd < 0) return;
    if (MountFdCloser* c = closer_for(own_mount)) {
      c->close_then(fd, nullptr);
    } else {
      close(fd);
    }
  }
  // Closes the client's descriptor, then pushes kClosed with a new token.
  uint64_t close_then_notify(uint64_t id, int client_fd, bool own_mount) {
    const uint64_t token = next_token++;
    closer_for(own_mount)->close_then(client_fd, [this, id, token] {
      push({Action::kClosed, id, 0, 0, 0, {}, 0, token});
    });
    return token;
  }
  // Queues the answer now, in order, and lets it go out once the client's
  // descriptor is closed: nothing behind it in the connection's queue goes
  // before it.
  void answer_after_close(uint64_t id, int client_fd, std::vector<uint8_t> bytes,
                          bool own_mount = false) {
    if (client_fd < 0 || !closer_for(own_mount) || conns.count(id) == 0) {
      if (client_fd >= 0) close_client_fd(client_fd, own_mount);
      return queue(id, std::move(bytes));
    }
    queue(id, std::move(bytes), -1, close_then_notify(id, client_fd, own_mount));
  }
  // The closer is done with `token`: a MAP's grant runs now, or a held
  // answer may go.
  void closed(uint64_t id, uint64_t token) {
    if (auto g = closing.find(token); g != closing.end()) {
      Parked grant = g->second;
      closing.erase(g);
      if (conns.count(id)) grant.extend ? grant_extend(grant) : grant_map(grant);
      return;
    }
    auto it = conns.find(id);
    if (it == conns.end()) return;
    for (Outgoing& o : it->second.out) {
      if (o.awaiting_close != token) continue;
      o.awaiting_close = 0;
      break;
    }
    flush(id);
  }
  void writable_lease_ended(uint64_t ino) override {
    MutexLock lock(stamps_mu);
    stamps.push_back(ino);
  }
  // The files whose writable leases ended get their times moved
  // (LayoutSource::direct_stores_possible). On this thread, no lock held:
  // the source takes the inode's lock.
  void stamp_ended_leases() {
    std::vector<uint64_t> todo;
    {
      MutexLock lock(stamps_mu);
      todo.swap(stamps);
    }
    std::sort(todo.begin(), todo.end());
    todo.erase(std::unique(todo.begin(), todo.end()), todo.end());
    for (uint64_t ino : todo) source->direct_stores_possible(ino);
  }
  void break_finished(uint64_t ino) override {
    push({Action::kBreakFinished, 0, 0, 0, 0, {}, ino});
  }
  void deadlines_changed() override {
    {
      MutexLock lock(actions_mu);
      timer_dirty = true;
    }
    wake();
  }
  void wake() const {
    uint64_t one = 1;
    ssize_t ignored = write(wake_fd, &one, sizeof(one));
    (void)ignored;
  }

  Status setup() {
    if (options.limits.total == 0) {
      struct rlimit nofile {};
      getrlimit(RLIMIT_NOFILE, &nofile);
      options.limits.total = connection_cap_for_fd_limit(nofile.rlim_cur);
    }
    budget.emplace(options.limits);
    throttle.emplace(options.warning_interval_ns);
    spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    idle_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (spare_fd < 0 || idle_fd < 0) return Status::from_errno(errno, "lease loop fds");
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (epoll_fd < 0 || wake_fd < 0 || timer_fd < 0) return Status::from_errno(errno, "lease loop fds");
    listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (listen_fd < 0) return Status::from_errno(errno, "socket");
    struct sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    if (options.socket_path.size() >= sizeof(addr.sun_path)) {
      return Status(Code::kNameTooLong, "control socket path too long: " + options.socket_path);
    }
    std::memcpy(addr.sun_path, options.socket_path.data(), options.socket_path.size());
    // Only a socket nobody listens on is replaced: never a file that
    // happens to be at the path, never another daemon's socket.
    RETURN_IF_ERROR(clear_dead_socket(options.socket_path));
    if (bind(listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return Status::from_errno(errno, "bind " + options.socket_path);
    }
    struct stat bound_st {};
    if (lstat(options.socket_path.c_str(), &bound_st) == 0) bound = bound_st;
    // Anyone may connect; trust is decided per peer from its credentials.
    chmod(options.socket_path.c_str(), 0666);
    if (listen(listen_fd, 128) != 0) return Status::from_errno(errno, "listen");
    for (auto [fd, kind] : {std::pair{listen_fd, kListen}, {wake_fd, kWake}, {timer_fd, kTimer},
                            {idle_fd, kIdle}}) {
      add_epoll(fd, tag(kind, 0), EPOLLIN);
    }
    return Status::ok();
  }

  void add_epoll(int fd, uint64_t data, uint32_t events) {
    struct epoll_event ev {};
    ev.events = events;
    ev.data.u64 = data;
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      log().critical("lease: epoll_ctl add failed: {}", strerror(errno));
      std::abort();
    }
  }

  // --- the loop ---
  void loop() {
    struct epoll_event events[64];
    while (!stopping) {
      rearm_timer();
      int n = epoll_wait(epoll_fd, events, 64, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        log().critical("lease: epoll_wait: {}", strerror(errno));
        std::abort();
      }
      for (int i = 0; i < n; ++i) dispatch(events[i]);
      stamp_ended_leases();
      drain_actions();
      sweep_watches();
    }
  }

  void dispatch(const epoll_event& ev) {
    const uint64_t kind = ev.data.u64 >> 56;
    const uint64_t id = ev.data.u64 & ((uint64_t{1} << 56) - 1);
    switch (kind) {
      case kListen: accept_all(); break;
      case kWake: {
        uint64_t count;
        ssize_t ignored = read(wake_fd, &count, sizeof(count));
        (void)ignored;
        break;
      }
      case kTimer: {
        uint64_t expirations;
        ssize_t ignored = read(timer_fd, &expirations, sizeof(expirations));
        (void)ignored;
        core->tick();
        break;
      }
      case kConn: {
        auto it = conns.find(id);
        if (it == conns.end()) break;
        if (ev.events & EPOLLOUT) flush(id);
        if (conns.count(id) && (ev.events & (EPOLLIN | EPOLLHUP | EPOLLERR))) read_conn(id);
        break;
      }
      case kPidfd: holder_gone(id); break;
      case kIdle: {
        uint64_t expirations;
        ssize_t ignored = read(idle_fd, &expirations, sizeof(expirations));
        (void)ignored;
        drop_idle_untrusted();
        break;
      }
    }
  }

  void rearm_timer() {
    {
      MutexLock lock(actions_mu);
      if (!timer_dirty) return;
      timer_dirty = false;
    }
    struct itimerspec spec {};
    if (auto next = core->next_deadline_ns()) {
      uint64_t at = std::max<uint64_t>(*next, 1);
      spec.it_value.tv_sec = static_cast<time_t>(at / 1'000'000'000ull);
      spec.it_value.tv_nsec = static_cast<long>(at % 1'000'000'000ull);
    }
    timerfd_settime(timer_fd, TFD_TIMER_ABSTIME, &spec, nullptr);
  }

  void drain_actions() {
    for (;;) {
      std::vector<Action> batch;
      {
        MutexLock lock(actions_mu);
        batch.swap(actions);
      }
      if (batch.empty()) return;
      for (const Action& a : batch) {
        switch (a.kind) {
          case Action::kBreak: {
            wire::BreakNotice notice{a.lease_id, a.reason, 0, a.deadline_ns};
            queue(a.conn, encode(wire::Type::kBreak, 0, notice));
            break;
          }
          case Action::kRevoke:
            queue(a.conn, encode(wire::Type::kRevoke, 0, wire::LeaseRef{a.lease_id}));
            break;
          case Action::kClosed:
            closed(a.conn, a.token);
            break;
          case Action::kKill: {
            auto it = watches.find(a.holder);
            if (it != watches.end() && !it->second.exited) {
              log().warn("lease: killing holder pid {} at its break deadline", a.holder.pid);
              syscall(SYS_pidfd_send_signal, it->second.pidfd, SIGKILL, nullptr, 0);
            }
            break;
          }
          case Action::kBreakWritable: {
            std::set<uint64_t> inos;
            for (const LeaseInfo& l : core->leases()) {
              if (!l.layout_only && (l.prot & wire::kProtWrite) != 0 &&
                  l.state == LeaseState::kActive) {
                inos.insert(l.ino);
              }
            }
            for (uint64_t ino : inos) core->may_change_layout(ino, 0, UINT64_MAX, a.reason, [](Status) {});
            if (!inos.empty()) {
              log().warn("lease: breaking the direct mappings of {} file(s) mapped writable: the "
                         "filesystem is read-only after a media error",
                         inos.size());
            }
            break;
          }
          case Action::kBreakFinished: {
            auto it = parked.find(a.ino);
            if (it == parked.end()) break;
            std::vector<Parked> retry = std::move(it->second);
            parked.erase(it);
            for (Parked& p : retry) {
              if (conns.count(p.conn)) grant_map(p);
            }
            break;
          }
        }
      }
    }
  }

  void accept_all() {
    for (;;) {
      int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if ((errno == EMFILE || errno == ENFILE) && shed_one_pending()) continue;
        if (errno != EAGAIN) warn_peer(kNoUid, std::string("lease: accept: ") + strerror(errno));
        return;
      }
      auto peer = peer_info(fd);
      if (!peer.is_ok()) {
        log().debug("lease: dropping connection: {}", peer.status().to_string());
        close_peer_socket(fd);
        continue;
      }
      const bool is_trusted = trusted(*peer);
      const auto verdict = budget->admit(peer->uid, is_trusted);
      if (verdict != ConnectionBudget::Verdict::kAdmit) {
        close_peer_socket(fd);
        close(peer->pidfd);
        warn_peer(peer->uid, "lease: refusing connections of uid " + std::to_string(peer->uid) +
                                 " (pid " + std::to_string(peer->pid) +
                                 "): " + verdict_reason(verdict));
        continue;
      }
      const uint64_t id = next_conn++;
      Conn& conn = conns[id];
      conn.fd = fd;
      conn.peer = *peer;
      conn.holder = HolderId{peer->pid, peer->start_time};
      conn.trusted = is_trusted;
      conn.last_active_ns = own_clock.now_ns();
      Watch& watch = watches[conn.holder];
      if (watch.pidfd < 0) {
        watch.pidfd = peer->pidfd;
        watch.id = next_watch++;
        watch_ids[watch.id] = conn.holder;
        add_epoll(watch.pidfd, tag(kPidfd, watch.id), EPOLLIN);
      } else {
        close(peer->pidfd);
      }
      conn.peer.pidfd = -1;
      watch.conns++;
      conn_count = conns.size();
      add_epoll(fd, tag(kConn, id), EPOLLIN | EPOLLRDHUP);
      if (!is_trusted) arm_idle_sweep(true);
    }
  }

  // At the descriptor limit: takes one pending connection with the spare
  // descriptor's slot and closes it. False if even that failed.
  bool shed_one_pending() {
    warn_peer(kNoUid, "lease: out of descriptors; closing pending control connections");
    if (spare_fd < 0) return false;
    close(spare_fd);
    int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    // Closed here, not by the foreign closer: the spare slot must be free
    // again at once. (Out of descriptors, the engine is exposed anyway: the
    // kernel closes what a recvmsg cannot install on the receiving thread.)
    if (fd >= 0) close(fd);
    spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return fd >= 0 && spare_fd >= 0;
  }

  // A warning caused by a peer: at most one per uid per interval.
  static constexpr uint64_t kNoUid = UINT64_MAX;
  void warn_peer(uint64_t uid, const std::string& text) {
    uint64_t held_back = 0;
    if (!throttle->allow(uid, own_clock.now_ns(), &held_back)) return;
    if (held_back == 0) {
      log().warn("{}", text);
    } else {
      log().warn("{} ({} more like it held back)", text, held_back);
    }
  }

  void arm_idle_sweep(bool on) {
    if (on == idle_armed) return;
    idle_armed = on;
    const uint64_t period = std::max<uint64_t>(options.limits.untrusted_idle_ns / 4, 10'000'000);
    struct itimerspec spec {};
    if (on) {
      spec.it_value.tv_sec = static_cast<time_t>(period / 1'000'000'000ull);
      spec.it_value.tv_nsec = static_cast<long>(period % 1'000'000'000ull);
      spec.it_interval = spec.it_value;
    }
    timerfd_settime(idle_fd, 0, &spec, nullptr);
  }

  // Untrusted peers may not map, so they hold nothing: one that has been
  // silent for untrusted_idle_ns only takes a descriptor.
  void drop_idle_untrusted() {
    const uint64_t now = own_clock.now_ns();
    std::vector<uint64_t> idle;
    bool any_untrusted = false;
    for (const auto& [id, conn] : conns) {
      if (conn.trusted) continue;
      if (now - conn.last_active_ns >= options.limits.untrusted_idle_ns) {
        idle.push_back(id);
      } else {
        any_untrusted = true;
      }
    }
    for (uint64_t id : idle) {
      const Conn& conn = conns.at(id);
      warn_peer(conn.peer.uid, "lease: closing idle connection of untrusted uid " +
                                   std::to_string(conn.peer.uid) + " (pid " +
                                   std::to_string(conn.peer.pid) + ")");
      close_conn(id);
    }
    if (!any_untrusted) arm_idle_sweep(false);
  }

  void read_conn(uint64_t id) {
    Conn* conn = &conns.at(id);
    for (;;) {
      uint8_t buf[16384];
      bool truncated = false;
      ssize_t n = wire::recv_with_fds(conn->fd, buf, sizeof(buf), MSG_DONTWAIT, conn->fds_in,
                                      &truncated);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return;
        close_conn(id);
        return;
      }
      if (truncated || conn->fds_in.size() > 4) {
        return protocol_error(id, 0, "too many descriptors");
      }
      if (n == 0) {
        close_conn(id);
        return;
      }
      conn->last_active_ns = own_clock.now_ns();
      conn->in.insert(conn->in.end(), buf, buf + n);
      if (!parse(id)) return;  // connection closed
      auto it = conns.find(id);
      if (it == conns.end()) return;
      conn = &it->second;
    }
  }

  // Handles every complete message; false if the connection was closed.
  bool parse(uint64_t id) {
    for (;;) {
      auto it = conns.find(id);
      if (it == conns.end()) return false;
      Conn& conn = it->second;
      if (conn.in.size() < sizeof(wire::Header)) return true;
      const auto h = wire::load<wire::Header>(conn.in.data());
      if (!wire::header_valid(h, /*from_client=*/true)) {
        protocol_error(id, h.request_id, "bad header");
        return false;
      }
      if (conn.in.size() < h.length) return true;
      std::vector<uint8_t> body(conn.in.begin() + sizeof(h), conn.in.begin() + h.length);
      conn.in.erase(conn.in.begin(), conn.in.begin() + h.length);
      if (!handle(id, h, body.data())) return false;
    }
  }

  bool handle(uint64_t id, const wire::Header& h, const uint8_t* body) {
    Conn& conn = conns.at(id);
    switch (static_cast<wire::Type>(h.type)) {
      case wire::Type::kMap: {
        if (conn.fds_in.empty()) {
          protocol_error(id, h.request_id, "MAP without a descriptor");
          return false;
        }
        int fd = conn.fds_in.front();
        conn.fds_in.pop_front();
        handle_map(id, h.request_id, wire::load<wire::MapRequest>(body), fd);
        return conns.count(id) != 0;
      }
      case wire::Type::kExtend: {
        if (conn.fds_in.empty()) {
          protocol_error(id, h.request_id, "EXTEND without a descriptor");
          return false;
        }
        int fd = conn.fds_in.front();
        conn.fds_in.pop_front();
        handle_extend(id, h.request_id, wire::load<wire::ExtendRequest>(body), fd);
        return conns.count(id) != 0;
      }
      case wire::Type::kRelease:
      case wire::Type::kRevokeAck: {
        const auto ref = wire::load<wire::LeaseRef>(body);
        Status s = core->release(id, ref.lease_id);
        stamp_ended_leases();  // before the answer: the holder's stat after its unmap sees them
        if (static_cast<wire::Type>(h.type) == wire::Type::kRelease) {
          wire::Reply reply{s.is_ok() ? 0 : ENOENT,
                            static_cast<uint32_t>(s.is_ok() ? wire::Refusal::kNone
                                                            : wire::Refusal::kNoLease)};
          queue(id, encode(wire::Type::kReply, h.request_id, reply));
        }
        return conns.count(id) != 0;
      }
      case wire::Type::kStores: {
        // The holder stored through its writable lease and tells us so
        // (libsealfs-preload's answered fdatasync): the file's times move,
        // as at a sync through the mount. A lease of another connection, a
        // read-only one or one already gone (a release racing with this)
        // is ignored. On this thread, no lock held: the source takes the
        // inode's lock.
        const auto ref = wire::load<wire::LeaseRef>(body);
        const auto lease = core->lease_of(id, ref.lease_id);
        if (lease && !lease->layout_only && (lease->prot & wire::kProtWrite) != 0) {
          source->direct_stores_possible(lease->ino);
        }
        return true;
      }
      case wire::Type::kRegister: {
        const auto ref = wire::load<wire::LeaseRef>(body);
        Status s = core->check_register(id, ref.lease_id);
        wire::Reply reply{s.is_ok() ? 0 : s.to_errno(),
                          static_cast<uint32_t>(s.code() == Code::kNxio ? wire::Refusal::kBreaking
                                                : s.is_ok()             ? wire::Refusal::kNone
                                                                        : wire::Refusal::kNoLease)};
        queue(id, encode(wire::Type::kReply, h.request_id, reply));
        return conns.count(id) != 0;
      }
      case wire::Type::kExtents:
      case wire::Type::kLeaseTable:
      case wire::Type::kSuper:
      case wire::Type::kFreeSpace: {
        const auto req = wire::load<wire::InspectRequest>(body);
        int fd = -1;
        if (static_cast<wire::Type>(h.type) == wire::Type::kExtents) {
          if (conn.fds_in.empty()) {
            protocol_error(id, h.request_id, "EXTENTS without a descriptor");
            return false;
          }
          fd = conn.fds_in.front();
          conn.fds_in.pop_front();
        }
        handle_inspect(id, h, req, fd);
        return conns.count(id) != 0;
      }
      default:
        protocol_error(id, h.request_id, "unexpected message type");
        return false;
    }
  }

  // --- inspection (sealfs-layout) ---
  // Any peer may ask: a file's extents need a readable descriptor of it
  // (who may read a file may know where it lies; whoever may map it learns
  // that anyway); the lease table shows other users' leases only to trusted
  // peers (daemon uid, root, dax_group) and counts the rest as hidden.
  void handle_inspect(uint64_t id, const wire::Header& h, const wire::InspectRequest& req,
                      int fd) {
    const auto type = static_cast<wire::Type>(h.type);
    bool own_mount = false;  // set once fd_info says the descriptor is on this mount
    wire::InspectReply reply{};
    reply.now_ns = own_clock.now_ns();
    const RegionInfo region = source->region();
    reply.block_size = 4096;
    reply.alignment = region.alignment;
    auto answer = [&](int err, const std::vector<uint8_t>& records, uint32_t count,
                      uint64_t next) {
      reply.error = err;
      reply.count = err == 0 ? count : 0;
      reply.next_cursor = err == 0 ? next : 0;
      std::vector<uint8_t> bytes = encode(wire::Type::kInspectReply, h.request_id, reply);
      if (err == 0) bytes.insert(bytes.end(), records.begin(), records.end());
      wire::Header fixed = wire::make_header(wire::Type::kInspectReply,
                                             static_cast<uint32_t>(bytes.size()), h.request_id);
      std::memcpy(bytes.data(), &fixed, sizeof(fixed));
      answer_after_close(id, std::exchange(fd, -1), std::move(bytes), own_mount);
    };
    if (req.reserved != 0) return answer(EINVAL, {}, 0, 0);
    // One page of `all`, starting at the cursor.
    auto page = [&](const auto& all) {
      using Record = std::decay_t<decltype(all[0])>;
      const uint64_t first = std::min<uint64_t>(req.cursor, all.size());
      const uint64_t n = std::min<uint64_t>(all.size() - first, wire::kMaxRecords);
      std::vector<uint8_t> bytes(n * sizeof(Record));
      if (n) std::memcpy(bytes.data(), &all[first], bytes.size());
      answer(0, bytes, static_cast<uint32_t>(n), first + n < all.size() ? first + n : 0);
    };
    switch (type) {
      case wire::Type::kExtents: {
        auto info = fd_info(fd);
        if (!info.is_ok()) return answer(EBADF, {}, 0, 0);
        if (info->mnt_id != options.mnt_id &&
            !(options.also_accept && options.also_accept(info->mnt_id))) {
          return answer(EXDEV, {}, 0, 0);
        }
        own_mount = true;
        const uint32_t mode = info->flags & O_ACCMODE;
        if ((info->flags & O_PATH) || mode == O_WRONLY) return answer(EACCES, {}, 0, 0);
        auto file = source->inspect_file(info->ino);
        if (!file.is_ok()) return answer(file.status().to_errno(), {}, 0, 0);
        mark_leased(info->ino, file->extents);
        reply.ino = info->ino;
        reply.size = file->size;
        reply.mode = file->mode;
        reply.a = file->inode_flags;
        reply.b = file->project_id;
        return page(file->extents);
      }
      case wire::Type::kLeaseTable: {
        const Conn& conn = conns.at(id);
        std::vector<wire::LeaseRecord> records;
        uint32_t hidden = 0;
        for (const LeaseInfo& l : core->leases()) {
          auto owner = conns.find(l.conn);
          const uint32_t uid = owner != conns.end() ? owner->second.peer.uid : UINT32_MAX;
          if (!conn.trusted && uid != conn.peer.uid) {
            ++hidden;
            continue;
          }
          const bool breaking =
              l.state == LeaseState::kBreaking || l.state == LeaseState::kRevoking;
          records.push_back({l.lease_id, l.ino, l.offset, l.length, l.generation,
                             breaking ? l.deadline_ns : 0, l.holder.start_time, l.holder.pid,
                             uid, l.prot, l.layout_only ? 1u : 0u,
                             static_cast<uint32_t>(l.state), breaking ? l.break_reason : 0,
                             l.policy, l.exclusive ? wire::kLeaseRecordExclusive : 0u});
        }
        reply.hidden = hidden;
        return page(records);
      }
      case wire::Type::kSuper: {
        auto record = source->inspect_super();
        if (!record.is_ok()) return answer(record.status().to_errno(), {}, 0, 0);
        std::vector<wire::SuperRecord> one{*record};
        return page(one);
      }
      case wire::Type::kFreeSpace: {
        auto space = source->inspect_space();
        if (!space.is_ok()) return answer(space.status().to_errno(), {}, 0, 0);
        reply.block_size = space->block_size;
        reply.a = space->data_start;
        reply.b = space->data_length;
        return page(space->pieces);
      }
      default: break;
    }
  }

  // Flags the extents of `ino` that a lease covers: leased while the lease
  // holds the layout, quarantined once it was revoked (its holder may still
  // reach the blocks). A lease flags every extent its file range overlaps.
  void mark_leased(uint64_t ino, std::vector<wire::ExtentRecord>& extents) const {
    for (const LeaseInfo& l : core->leases()) {
      if (l.ino != ino) continue;
      const bool revoked = l.state == LeaseState::kRevoked;
      for (wire::ExtentRecord& e : extents) {
        if (e.file_offset < l.offset + l.length && l.offset < e.file_offset + e.length) {
          e.flags |= revoked ? wire::kExtentQuarantined : wire::kExtentLeased;
        }
      }
    }
  }

  bool trusted(const PeerInfo& p) const {
    if (p.uid == 0 || p.uid == options.daemon_uid) return true;
    if (!options.dax_group) return false;
    const uint32_t g = *options.dax_group;
    return p.gid == g || std::find(p.groups.begin(), p.groups.end(), g) != p.groups.end();
  }

  // Answers with a refusal once the client's descriptor (owned; -1 when
  // already closed) is closed.
  void reply_map_error(uint64_t id, uint64_t request_id, int client_fd, bool own_mount,
                       wire::Refusal refusal, int err = 0) {
    wire::MapReply reply{};
    reply.error = err ? err : errno_of(refusal);
    reply.detail = static_cast<uint32_t>(refusal);
    answer_after_close(id, client_fd, encode(wire::Type::kMapReply, request_id, reply),
                       own_mount);
  }

  // The checks MAP and EXTEND make on the peer and on the descriptor it
  // sent: a trusted peer, a file of this mount (then *own_mount), opened
  // for reading, and read-write when `write`. kNone with *info filled, or
  // the refusal.
  wire::Refusal check_client_file(const Conn& conn, int fd, bool write, FdInfo* info,
                                  bool* own_mount) const {
    if (!conn.trusted) return wire::Refusal::kUntrusted;
    auto got = fd_info(fd);
    if (!got.is_ok()) return wire::Refusal::kNotRegular;
    if (got->mnt_id != options.mnt_id &&
        !(options.also_accept && options.also_accept(got->mnt_id))) {
      return wire::Refusal::kWrongMount;
    }
    *own_mount = true;
    const uint32_t mode = got->flags & O_ACCMODE;
    if ((got->flags & O_PATH) || mode == O_WRONLY || (write && mode != O_RDWR)) {
      return wire::Refusal::kOpenMode;
    }
    *info = *got;
    return wire::Refusal::kNone;
  }

  // A granted MAP or EXTEND's answer: `reply` with the extents behind it
  // and the region descriptor (owned; -1 for a layout lease).
  void queue_map_reply(uint64_t id, uint64_t request_id, wire::MapReply reply,
                       const std::vector<MapExtent>& granted, int region_fd) {
    std::vector<wire::WireExtent> extents;
    extents.reserve(granted.size());
    for (const MapExtent& e : granted) extents.push_back({e.file_offset, e.region_offset, e.length});
    reply.extent_count = static_cast<uint32_t>(extents.size());
    reply.has_fd = region_fd >= 0 ? 1 : 0;
    queue(id, encode(wire::Type::kMapReply, request_id, reply, &extents), region_fd);
  }

  // Owns `fd` (the client's file descriptor). The checks that need it run
  // here; then it is closed (here, or on the closer when the file is
  // sealed: mount_fd_closer.h) and the grant runs after that (grant_map):
  // no lease exists while the close writes the file's dirty pages back,
  // and the answer is queued after the close, as a client may unmount right
  // after its answer (a descriptor the daemon still held would keep the
  // mount busy).
  void handle_map(uint64_t id, uint64_t request_id, const wire::MapRequest& req, int fd) {
    bool own_mount = false;
    auto refuse = [&](wire::Refusal refusal, int err = 0) {
      reply_map_error(id, request_id, std::exchange(fd, -1), own_mount, refusal, err);
    };
    const Conn& conn = conns.at(id);
    const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    const bool layout_only = (req.flags & wire::kMapLayoutOnly) != 0;
    if (req.reserved != 0 || (req.flags & ~wire::kMapKnownFlags) != 0 ||
        req.policy > wire::kPolicyQuarantine || req.length == 0 ||
        req.length > (uint64_t{1} << 50) || req.offset > (uint64_t{1} << 60) ||
        req.offset % page != 0 || (layout_only && (req.flags & wire::kMapExclusive) != 0) ||
        (!layout_only && req.prot != wire::kProtRead &&
         req.prot != (wire::kProtRead | wire::kProtWrite))) {
      return refuse(wire::Refusal::kBadRequest);
    }
    // ALLOCATE and RELOCATE change the file's blocks (fill its holes, move
    // it, break the other holders' leases): like fallocate, they need a
    // descriptor open for writing, whatever the mapping's protection.
    const bool changes_layout = (req.flags & (wire::kMapAllocate | wire::kMapRelocate)) != 0;
    FdInfo info;
    if (auto r = check_client_file(conn, fd, (req.prot & wire::kProtWrite) != 0 || changes_layout,
                                   &info, &own_mount);
        r != wire::Refusal::kNone) {
      return refuse(r);
    }
    const Parked grant{id, request_id, req, info.ino};
    // A file without a lease that seals it is closed here, and granted at
    // once: the hand-off to the closer and back cost two thread wake-ups,
    // about a fifth of a map's time. Safe because whatever the close makes the
    // daemon do (writing the file's dirty pages back, even into holes)
    // passes this inode's gate without waiting for the engine: nothing
    // seals the inode, and only this thread grants. A sealed file's close
    // may need a break, which needs this thread: the closer takes it.
    // (The close may still take as long as a writeback of the file's
    // dirty pages, while this thread waits; a map of such a file waits for
    // that close in any case.)
    if (!core->sealed(info.ino)) {
      close(std::exchange(fd, -1));
      SEALFS_SYNC_POINT("lease.closer.closed");  // engine thread, no lock held
      return grant_map(grant);
    }
    closing[close_then_notify(id, std::exchange(fd, -1), /*own_mount=*/true)] = grant;
  }

  // The rest of a MAP, its descriptor closed: under the inode's layout lock,
  // check the extents and install the lease, then answer.
  void grant_map(const Parked& p) {
    const uint64_t id = p.conn, request_id = p.request_id;
    const wire::MapRequest& req = p.request;
    auto refuse = [&](wire::Refusal refusal, int err = 0) {
      reply_map_error(id, request_id, -1, true, refusal, err);
    };
    const Conn& conn = conns.at(id);
    // The holder may have died while its descriptor was being closed, and
    // its exit been handled already: a lease granted now would outlive it,
    // pinned and quarantined forever (found by the lease stress test). Its
    // connection closes next; nobody waits for this answer.
    if (auto w = watches.find(conn.holder);
        w == watches.end() || w->second.exited || pidfd_exited(w->second.pidfd)) {
      return;
    }
    const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    const bool layout_only = (req.flags & wire::kMapLayoutOnly) != 0;
    const uint64_t length = (req.length + page - 1) / page * page;

    // An exclusive request that will be refused is refused before any
    // ALLOCATE or RELOCATE fills or moves the file for nothing; the grant
    // checks again under the engine mutex.
    if ((req.flags & wire::kMapExclusive) != 0 && core->open_elsewhere(p.ino, conn.holder)) {
      return refuse(wire::Refusal::kSharedFile);
    }
    std::unique_ptr<LayoutSource::Lock> lock = source->lock_layout(p.ino);
    if (core->breaking(p.ino)) {
      if (req.flags & wire::kMapWaitBreak) {
        parked[p.ino].push_back(p);
        return;
      }
      return refuse(wire::Refusal::kBreaking);
    }
    const uint32_t source_flags =
        req.flags | (!layout_only && (req.prot & wire::kProtWrite) ? kGrantWritable : 0u);
    auto answer = source->layout_for_lease(*lock, p.ino, req.offset, length, source_flags);
    if (!answer.is_ok()) {
      log().error("lease: layout of inode {}: {}", p.ino, answer.status().to_string());
      return refuse(wire::Refusal::kNone, answer.status().to_errno());
    }
    if (answer->refusal != wire::Refusal::kNone) {
      return refuse(answer->refusal);
    }
    SEALFS_SYNC_POINT("lease.grant.after_check");
    GrantRequest grant_req;
    grant_req.conn = id;
    grant_req.holder = conn.holder;
    grant_req.ino = p.ino;
    grant_req.offset = req.offset;
    grant_req.length = length;
    grant_req.prot = req.prot;
    grant_req.layout_only = layout_only;
    grant_req.break_time_ns = req.break_time_ns;
    grant_req.policy = req.policy;
    grant_req.exclusive = (req.flags & wire::kMapExclusive) != 0;
    grant_req.extents = answer->extents;
    auto grant = core->grant(grant_req);
    lock.reset();
    if (!grant.is_ok()) {
      log().debug("lease: map of inode {} refused: {}", p.ino, grant.status().to_string());
      switch (grant.status().code()) {
        case Code::kNxio: return refuse(wire::Refusal::kBreaking);
        case Code::kBusy: return refuse(wire::Refusal::kSharedFile);
        default: return refuse(wire::Refusal::kNoSpace);
      }
    }
    const RegionInfo region = source->region();
    int region_fd = -1;
    if (!layout_only) {
      if (req.prot & wire::kProtWrite) {
        region_fd = fcntl(region.fd, F_DUPFD_CLOEXEC, 0);
      } else {
        // A read-only lease gets a read-only descriptor, so the client
        // cannot map the region writable at all.
        std::string self = "/proc/self/fd/" + std::to_string(region.fd);
        region_fd = open(self.c_str(), O_RDONLY | O_CLOEXEC);
      }
      if (region_fd < 0) {
        int err = errno;
        Status ignored = core->release(id, grant->lease_id);
        (void)ignored;
        return refuse(wire::Refusal::kNone, err);
      }
    }
    wire::MapReply reply{};
    reply.lease_id = grant->lease_id;
    reply.generation = grant->generation;
    reply.alignment = region.alignment;
    reply.granularity = region.granularity;
    reply.region_flags = region.flags;
    reply.offset = req.offset;
    reply.length = length;
    reply.break_time_ns = grant->break_time_ns;
    queue_map_reply(id, request_id, reply, answer->extents, region_fd);
    SEALFS_SYNC_POINT("lease.map.replied");  // engine thread, no lock held
  }

  // EXTEND (docs/protocol.md "The native API"). Owns `fd`, as handle_map;
  // the work runs in grant_extend once the descriptor is closed.
  void handle_extend(uint64_t id, uint64_t request_id, const wire::ExtendRequest& req, int fd) {
    bool own_mount = false;
    auto refuse = [&](wire::Refusal refusal, int err = 0) {
      reply_map_error(id, request_id, std::exchange(fd, -1), own_mount, refusal, err);
    };
    const Conn& conn = conns.at(id);
    const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    if (req.reserved != 0 || (req.flags & ~wire::kMapFlushed) != 0 || req.new_length == 0 ||
        req.new_length > (uint64_t{1} << 50) || req.new_length % page != 0) {
      return refuse(wire::Refusal::kBadRequest);
    }
    // Growing a file is writing it: a read-write descriptor, and a
    // writable lease of that very file.
    FdInfo info;
    if (auto r = check_client_file(conn, fd, /*write=*/true, &info, &own_mount);
        r != wire::Refusal::kNone) {
      return refuse(r);
    }
    const std::optional<LeaseInfo> lease = core->lease_of(id, req.lease_id);
    if (!lease) return refuse(wire::Refusal::kNoLease);
    if (lease->layout_only || lease->ino != info.ino || req.new_length <= lease->length) {
      return refuse(wire::Refusal::kBadRequest);
    }
    if ((lease->prot & wire::kProtWrite) == 0) return refuse(wire::Refusal::kOpenMode);
    if (lease->state != LeaseState::kActive) return refuse(wire::Refusal::kBreaking);
    Parked p;
    p.conn = id;
    p.request_id = request_id;
    p.ino = info.ino;
    p.extend = true;
    p.extension = req;
    closing[close_then_notify(id, std::exchange(fd, -1), /*own_mount=*/true)] = p;
  }

  // The rest of an EXTEND, its descriptor closed: under the inode's layout
  // lock, grow the file and the lease, then answer with the added range.
  // No break: nothing any lease maps changes (docs/protocol.md).
  void grant_extend(const Parked& p) {
    const uint64_t id = p.conn, request_id = p.request_id;
    auto refuse = [&](wire::Refusal refusal, int err = 0) {
      reply_map_error(id, request_id, -1, true, refusal, err);
    };
    std::unique_ptr<LayoutSource::Lock> lock = source->lock_layout(p.ino);
    if (core->breaking(p.ino)) return refuse(wire::Refusal::kBreaking);
    const std::optional<LeaseInfo> lease = core->lease_of(id, p.extension.lease_id);
    if (!lease) return refuse(wire::Refusal::kNoLease);
    if (lease->state != LeaseState::kActive) return refuse(wire::Refusal::kBreaking);
    if (p.extension.new_length <= lease->length) return refuse(wire::Refusal::kBadRequest);
    auto answer = source->extend_for_lease(*lock, p.ino, lease->offset, lease->length,
                                           p.extension.new_length, p.extension.flags);
    if (!answer.is_ok()) {
      log().error("lease: extending inode {}: {}", p.ino, answer.status().to_string());
      return refuse(wire::Refusal::kNone, answer.status().to_errno());
    }
    if (answer->refusal != wire::Refusal::kNone) return refuse(answer->refusal);
    Status extended = core->extend(id, p.extension.lease_id, p.extension.new_length,
                                   answer->extents);
    if (!extended.is_ok()) source->undo_extend(*lock, p.ino, answer->old_size);
    lock.reset();
    if (!extended.is_ok()) {
      return refuse(extended.code() == Code::kNxio       ? wire::Refusal::kBreaking
                    : extended.code() == Code::kNotFound ? wire::Refusal::kNoLease
                                                         : wire::Refusal::kNoSpace);
    }
    const RegionInfo region = source->region();
    int region_fd = fcntl(region.fd, F_DUPFD_CLOEXEC, 0);
    if (region_fd < 0) return refuse(wire::Refusal::kNone, errno);
    wire::MapReply reply{};
    reply.lease_id = lease->lease_id;
    reply.generation = lease->generation;
    reply.alignment = region.alignment;
    reply.granularity = region.granularity;
    reply.region_flags = region.flags;
    reply.offset = lease->offset + lease->length;
    reply.length = p.extension.new_length - lease->length;
    reply.break_time_ns = lease->break_time_ns;
    queue_map_reply(id, request_id, reply, answer->extents, region_fd);
  }

  void protocol_error(uint64_t id, uint64_t request_id, const char* why) {
    auto it = conns.find(id);
    if (it == conns.end()) return;
    warn_peer(it->second.peer.uid, "lease: closing connection of pid " +
                                        std::to_string(it->second.peer.pid) + ": " + why);
    auto bytes = encode(wire::Type::kError, request_id,
                        wire::Reply{EPROTO, static_cast<uint32_t>(wire::Refusal::kBadRequest)});
    ssize_t ignored = send(it->second.fd, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)ignored;
    close_conn(id);
  }

  void queue(uint64_t id, std::vector<uint8_t> bytes, int fd = -1, uint64_t awaiting_close = 0) {
    auto it = conns.find(id);
    if (it == conns.end()) {
      if (fd >= 0) close(fd);
      return;
    }
    Conn& conn = it->second;
    conn.out_bytes += bytes.size();
    conn.out.push_back(Outgoing{std::move(bytes), 0, fd, awaiting_close});
    if (conn.out_bytes > options.max_outbox_bytes) {
      warn_peer(conn.peer.uid, "lease: pid " + std::to_string(conn.peer.pid) +
                                   " does not read its control socket; disconnecting");
      close_conn(id);
      return;
    }
    flush(id);
  }

  void flush(uint64_t id) {
    Conn& conn = conns.at(id);
    while (!conn.out.empty() && conn.out.front().awaiting_close == 0) {
      Outgoing& o = conn.out.front();
      ssize_t n = wire::send_with_fd(conn.fd, o.bytes.data() + o.sent, o.bytes.size() - o.sent,
                                     o.sent == 0 ? o.fd : -1, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) break;
        close_conn(id);
        return;
      }
      if (o.fd >= 0) {
        close(o.fd);
        o.fd = -1;
      }
      o.sent += static_cast<size_t>(n);
      if (o.sent == o.bytes.size()) {
        conn.out_bytes -= o.bytes.size();
        conn.out.pop_front();
      }
    }
    // Not while the head waits for the closer: the socket is writable and
    // the loop would spin; the closer's action flushes again.
    const bool want = !conn.out.empty() && conn.out.front().awaiting_close == 0;
    if (want != conn.want_write) {
      conn.want_write = want;
      struct epoll_event ev {};
      ev.events = EPOLLIN | EPOLLRDHUP | (want ? uint32_t{EPOLLOUT} : 0u);
      ev.data.u64 = tag(kConn, id);
      epoll_ctl(epoll_fd, EPOLL_CTL_MOD, conn.fd, &ev);
    }
  }

  void drop_conn_fds(Conn& conn) {
    for (int fd : conn.fds_in) close_client_fd(fd);
    conn.fds_in.clear();
    for (auto& o : conn.out) {
      if (o.fd >= 0) close(o.fd);
    }
    conn.out.clear();
    close_peer_socket(std::exchange(conn.fd, -1));
  }

  // A connection's socket may still hold descriptors the peer sent and
  // nobody read: its close releases them, and such a close may never end.
  // The peer sees the hang-up at once; the close is the foreign closer's.
  void close_peer_socket(int fd) {
    if (fd < 0) return;
    shutdown(fd, SHUT_RDWR);
    close_client_fd(fd);
  }

  void close_conn(uint64_t id) {
    auto it = conns.find(id);
    if (it == conns.end()) return;
    Conn& conn = it->second;
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, conn.fd, nullptr);
    drop_conn_fds(conn);
    const HolderId holder = conn.holder;
    budget->release(conn.peer.uid, conn.trusted);
    conns.erase(it);
    conn_count = conns.size();
    for (auto& [ino, list] : parked) {
      std::erase_if(list, [&](Parked& p) { return p.conn == id; });
    }
    Watch& watch = watches.at(holder);
    watch.conns--;
    const bool alive = !watch.exited && !pidfd_exited(watch.pidfd);
    core->connection_closed(id, alive);
  }

  void holder_gone(uint64_t watch_id) {
    auto it = watch_ids.find(watch_id);
    if (it == watch_ids.end()) return;
    const HolderId holder = it->second;
    Watch& watch = watches.at(holder);
    if (!watch.exited) {
      watch.exited = true;
      epoll_ctl(epoll_fd, EPOLL_CTL_DEL, watch.pidfd, nullptr);
      core->holder_exited(holder);
    }
  }

  // Stops watching holders that have no connection and nothing in the engine.
  void sweep_watches() {
    for (auto it = watches.begin(); it != watches.end();) {
      Watch& w = it->second;
      if (w.conns == 0 && (w.exited || !core->holder_needed(it->first))) {
        if (!w.exited) epoll_ctl(epoll_fd, EPOLL_CTL_DEL, w.pidfd, nullptr);
        close(w.pidfd);
        watch_ids.erase(w.id);
        it = watches.erase(it);
      } else {
        ++it;
      }
    }
  }
};

LeaseServer::LeaseServer() : impl_(std::make_unique<Impl>()) {}
LeaseServer::~LeaseServer() = default;

Result<std::unique_ptr<LeaseServer>> LeaseServer::start(ServerOptions options,
                                                        LayoutSource& source, QuarantineSink* sink,
                                                        const Clock* clock) {
  std::unique_ptr<LeaseServer> server(new LeaseServer());
  Impl& impl = *server->impl_;
  impl.options = std::move(options);
  impl.source = &source;
  impl.sink = sink;
  impl.core = std::make_unique<LeaseCore>(clock ? *clock : impl.own_clock, impl, sink,
                                          impl.options.lease);
  impl.core->set_thread_owner(thread_of_holder);
  RETURN_IF_ERROR(impl.setup());
  impl.closer = std::make_unique<MountFdCloser>();
  impl.foreign_closer = std::make_unique<MountFdCloser>(MountFdCloser::AtExit::kAbandon);
  impl.thread = std::thread([&impl] { impl.loop(); });
  return server;
}

void LeaseServer::may_change_layout(uint64_t ino, uint64_t offset, uint64_t length,
                                    uint32_t reason, Continuation then) {
  impl_->core->may_change_layout(ino, offset, length, reason, std::move(then));
}

void LeaseServer::break_writable_leases(uint32_t reason) {
  impl_->push({Action::kBreakWritable, 0, 0, reason, 0, {}, 0});
}

void LeaseServer::stop_thread() {
  Impl& impl = *impl_;
  if (impl.thread.joinable()) {
    impl.stopping = true;
    impl.wake();
    impl.thread.join();
  }
}

LeaseCore& LeaseServer::core() { return *impl_->core; }
const std::string& LeaseServer::socket_path() const { return impl_->options.socket_path; }
size_t LeaseServer::connection_count() const { return impl_->conn_count; }

}  // namespace sealfs::lease
