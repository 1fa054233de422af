// The control connection: connect, the reader thread, request/answer, fork.
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "client/client_internal.h"
#include "wire/fd_passing.h"

namespace sealfs::client {
namespace {

thread_local std::string t_error;

void atfork_prepare() { state().mu.lock(); }
void atfork_parent() { state().mu.unlock(); }
void atfork_child() { state().mu.unlock(); }

uint64_t now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

bool read_full(int fd, void* buf, size_t len, std::deque<int>& fds) {
  auto* p = static_cast<uint8_t*>(buf);
  while (len > 0) {
    bool truncated = false;
    ssize_t n = wire::recv_with_fds(fd, p, len, 0, fds, &truncated);
    if (n < 0 && errno == EINTR) continue;
    // A daemon that sends more descriptors than any reply carries is broken.
    if (n <= 0 || truncated) return false;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

void run_callback_thread() {
  // Named so an interposer (libsealfs-preload) can tell the library's own
  // calls from the program's; the name also shows in ps -L and gdb.
  pthread_setname_np(pthread_self(), "sealfs-callback");
  State& s = state();
  std::unique_lock lock(s.mu);
  const pid_t pid = s.pid;
  for (;;) {
    s.cv.wait(lock, [&] { return !s.jobs.empty() || s.pid != pid; });
    if (s.pid != pid) return;
    auto job = std::move(s.jobs.front());
    s.jobs.pop_front();
    lock.unlock();
    job();
    lock.lock();
    s.cv.notify_all();
  }
}

// The library's threads block every signal, so a signal meant for the
// program never runs its handler on them (a program that blocks a signal
// in its own threads to sigwait() for it keeps receiving it).
template <typename F>
std::thread start_thread_without_signals(F&& body) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  std::thread t(std::forward<F>(body));
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return t;
}

void start_callback_thread_locked() {
  State& s = state();
  if (s.callback_thread_started) return;
  s.callback_thread_started = true;
  std::thread t = start_thread_without_signals(run_callback_thread);
  s.callback_thread_id = t.get_id();
  t.detach();
}

// The daemon is gone: every mapping it granted is fenced.
void connection_lost_locked(Connection& conn) {
  State& s = state();
  conn.alive = false;
  for (auto& [id, answer] : conn.pending) answer->error = ECONNRESET;
  conn.pending.clear();
  for (auto& [id, m] : conn.maps) {
    m->released = true;
    fence_locked(m);
    deliver_break_locked(m, id, SEALFS_BREAK_DAEMON_GONE, now_ns());
  }
  for (auto& [id, l] : conn.layouts) deliver_break_locked(nullptr, id, SEALFS_BREAK_DAEMON_GONE, now_ns());
  auto it = s.conns.find(conn.path);
  if (it != s.conns.end() && it->second.get() == &conn) s.conns.erase(it);
  s.cv.notify_all();
  s.answers_cv.notify_all();
}

// Reads one whole message. Only the thread that holds the connection's
// reading role calls it (conn.reading), so the descriptors that arrive with
// a message stay with it.
bool read_message(Connection& conn, std::vector<uint8_t>* message) {
  wire::Header h;
  if (!read_full(conn.fd, &h, sizeof(h), conn.fds_in) || !wire::header_valid(h, /*from_client=*/false)) {
    return false;
  }
  message->resize(h.length);
  std::memcpy(message->data(), &h, sizeof(h));
  return read_full(conn.fd, message->data() + sizeof(h), h.length - sizeof(h), conn.fds_in);
}

// Acts on one message from the daemon. State::mu held.
void dispatch_locked(const std::shared_ptr<Connection>& conn, std::vector<uint8_t> message) {
  State& s = state();
  const auto h = wire::load<wire::Header>(message.data());
  const uint8_t* body = message.data() + sizeof(h);
  switch (static_cast<wire::Type>(h.type)) {
    case wire::Type::kReply:
    case wire::Type::kMapReply: {
      int fd = -1;
      if (static_cast<wire::Type>(h.type) == wire::Type::kMapReply &&
          wire::load<wire::MapReply>(body).has_fd && !conn->fds_in.empty()) {
        fd = conn->fds_in.front();
        conn->fds_in.pop_front();
      }
      auto it = conn->pending.find(h.request_id);
      if (it == conn->pending.end()) {
        if (fd >= 0) close(fd);
        break;
      }
      Answer* answer = it->second;
      if (static_cast<wire::Type>(h.type) == wire::Type::kMapReply && answer->extends == nullptr) {
        const auto reply = wire::load<wire::MapReply>(body);
        if (reply.error == 0 && reply.lease_id != 0) {
          if (reply.has_fd) {
            answer->map = new struct sealfs_map();
            answer->map->conn = conn;
            answer->map->pid = getpid();
            answer->map->lease_id = reply.lease_id;
            conn->maps[reply.lease_id] = answer->map;
          } else {
            answer->layout = new sealfs_layout();
            answer->layout->conn = conn;
            answer->layout->pid = getpid();
            answer->layout->lease_id = reply.lease_id;
            conn->layouts[reply.lease_id] = answer->layout;
          }
        }
      }
      answer->message = std::move(message);
      answer->fd = fd;
      conn->pending.erase(it);
      s.answers_cv.notify_all();
      break;
    }
    case wire::Type::kBreak: {
      const auto notice = wire::load<wire::BreakNotice>(body);
      auto m = conn->maps.find(notice.lease_id);
      if (m != conn->maps.end()) {
        if (m->second->state == 0) m->second->state = 1;
        deliver_break_locked(m->second, notice.lease_id, int(notice.reason), notice.deadline_ns);
      } else if (conn->layouts.count(notice.lease_id)) {
        deliver_break_locked(nullptr, notice.lease_id, int(notice.reason), notice.deadline_ns);
      }
      break;
    }
    case wire::Type::kRevoke: {
      const auto ref = wire::load<wire::LeaseRef>(body);
      auto m = conn->maps.find(ref.lease_id);
      if (m != conn->maps.end()) {
        fence_locked(m->second);
        if (m->second->mapped) {
          m->second->released = true;
          send_only(*conn, wire::Type::kRevokeAck, &ref, sizeof(ref));
        }
      }
      break;
    }
    case wire::Type::kError: {
      auto it = conn->pending.find(h.request_id);
      if (it != conn->pending.end()) {
        it->second->message = std::move(message);
        conn->pending.erase(it);
        s.answers_cv.notify_all();
      }
      break;  // the daemon closes next; EOF handles the rest
    }
    default:
      break;
  }
}

// The end of a connection, seen by whichever thread was reading. mu held.
void lost_locked(Connection& conn) {
  State& s = state();
  for (int fd : conn.fds_in) close(fd);
  conn.fds_in.clear();
  if (s.pid == getpid() && conn.alive) connection_lost_locked(conn);
}

// Whether the background reader hears the socket. A caller that reads its
// own answer turns it off first, so the answer wakes no second thread.
void listen_in_background_locked(Connection& conn, bool on) {
  struct epoll_event ev {};
  ev.events = on ? uint32_t{EPOLLIN} : 0u;
  epoll_ctl(conn.epfd, EPOLL_CTL_MOD, conn.fd, &ev);
}

// The background reader: messages nobody waits for (BREAK, REVOKE) and
// answers while no caller reads. It waits for readability and reads only
// when no caller holds the reading role.
void reader(std::shared_ptr<Connection> conn) {
  pthread_setname_np(pthread_self(), "sealfs-reader");
  State& s = state();
  for (;;) {
    struct epoll_event ev;
    int n = epoll_wait(conn->epfd, &ev, 1, -1);
    if (n < 0 && errno != EINTR) break;
    std::unique_lock lock(s.mu);
    if (!conn->alive || s.pid != getpid()) return;
    if (n <= 0 || conn->reading) continue;  // the caller re-enables us when done
    conn->reading = true;
    lock.unlock();
    std::vector<uint8_t> message;
    const bool ok = read_message(*conn, &message);
    lock.lock();
    conn->reading = false;
    s.answers_cv.notify_all();  // a caller may take the role now
    if (!ok) break;
    dispatch_locked(conn, std::move(message));
  }
  std::lock_guard lock(state().mu);
  lost_locked(*conn);
}

}  // namespace

Connection::~Connection() {
  if (fd >= 0) close(fd);
  if (epfd >= 0) close(epfd);
  for (int d : fds_in) close(d);
}

State& state() {
  static State* s = [] {
    auto* st = new State();  // never destroyed: threads may outlive static destructors
    st->pid = getpid();
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
    return st;
  }();
  return *s;
}

void check_fork_locked() {
  State& s = state();
  const pid_t pid = getpid();
  if (s.pid == pid) return;
  // A forked child: the parent's threads do not exist here and its
  // mappings were not inherited (MADV_DONTFORK). Start afresh; the
  // connections' sockets are this process's copies and may be closed.
  s.pid = pid;
  for (auto& [path, conn] : s.conns) {
    conn->alive = false;
    conn->pending.clear();
    conn->maps.clear();
    conn->layouts.clear();
  }
  s.conns.clear();
  s.events.clear();
  s.jobs.clear();
  s.callback_thread_started = false;
  if (s.break_fd >= 0) close(s.break_fd);
  s.break_fd = -1;
}

void set_error(const std::string& text) { t_error = text; }
int fail(int err, const std::string& text) {
  t_error = text;
  return -err;
}

int connection_for(const std::string& path, std::shared_ptr<Connection>* out) {
  State& s = state();
  {
    std::lock_guard lock(s.mu);
    check_fork_locked();
    auto it = s.conns.find(path);
    if (it != s.conns.end() && it->second->alive) {
      *out = it->second;
      return 0;
    }
  }
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return fail(ENAMETOOLONG, "control socket path too long");
  std::memcpy(addr.sun_path, path.data(), path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(errno, "socket: " + std::string(strerror(errno)));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    close(fd);
    return fail(err == ENOENT || err == ECONNREFUSED ? EOPNOTSUPP : err,
                "cannot reach the sealfs daemon at " + path + ": " + strerror(err));
  }
  std::lock_guard lock(s.mu);
  auto it = s.conns.find(path);
  if (it != s.conns.end() && it->second->alive) {  // another thread won
    close(fd);
    *out = it->second;
    return 0;
  }
  auto conn = std::make_shared<Connection>();
  conn->path = path;
  conn->fd = fd;
  conn->epfd = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev {};
  ev.events = EPOLLIN;
  if (conn->epfd < 0 || epoll_ctl(conn->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
    return fail(errno, "epoll for the control connection: " + std::string(strerror(errno)));
  }
  s.conns[path] = conn;
  start_callback_thread_locked();
  start_thread_without_signals([conn] { reader(conn); }).detach();
  *out = conn;
  return 0;
}

Answer call(const std::shared_ptr<Connection>& conn, wire::Type type, const void* body,
            size_t body_size, int fd, struct sealfs_map* extends) {
  State& s = state();
  Answer answer;
  answer.extends = extends;
  std::unique_lock lock(s.mu);
  if (!conn->alive) {
    answer.error = ECONNRESET;
    return answer;
  }
  const uint64_t id = conn->next_request++;
  conn->pending[id] = &answer;
  auto done = [&] { return answer.error != 0 || !answer.message.empty(); };
  // The calling thread reads its own answer when nobody else reads the
  // socket: taken before sending, so the answer wakes no other thread (a
  // hand-off to the reader thread cost two context switches per call).
  auto take_role = [&] {
    if (conn->reading || !conn->alive) return false;
    conn->reading = true;
    listen_in_background_locked(*conn, false);
    return true;
  };
  bool reading = take_role();
  std::vector<uint8_t> bytes(sizeof(wire::Header) + body_size);
  wire::Header h = wire::make_header(type, uint32_t(bytes.size()), id);
  std::memcpy(bytes.data(), &h, sizeof(h));
  std::memcpy(bytes.data() + sizeof(h), body, body_size);
  {
    std::lock_guard send_lock(conn->send_mu);
    ssize_t n;
    do {
      n = wire::send_with_fd(conn->fd, bytes.data(), bytes.size(), fd, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n != ssize_t(bytes.size())) {
      conn->pending.erase(id);
      answer.error = n < 0 ? errno : EPIPE;
    }
  }
  for (;;) {
    if (reading) {
      while (!done()) {
        lock.unlock();
        std::vector<uint8_t> message;
        const bool ok = read_message(*conn, &message);
        lock.lock();
        if (!ok) {
          lost_locked(*conn);
          break;
        }
        dispatch_locked(conn, std::move(message));
      }
      conn->reading = false;
      // The background reader hears what comes next (or sees the end).
      listen_in_background_locked(*conn, true);
      s.answers_cv.notify_all();  // another caller may take the role
      return answer;
    }
    s.answers_cv.wait(lock, [&] { return done() || (!conn->reading && conn->alive); });
    if (done()) return answer;
    reading = take_role();
  }
}

void send_only(Connection& conn, wire::Type type, const void* body, size_t body_size) {
  std::vector<uint8_t> bytes(sizeof(wire::Header) + body_size);
  wire::Header h = wire::make_header(type, uint32_t(bytes.size()), 0);
  std::memcpy(bytes.data(), &h, sizeof(h));
  std::memcpy(bytes.data() + sizeof(h), body, body_size);
  std::lock_guard send_lock(conn.send_mu);
  ssize_t ignored = send(conn.fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  (void)ignored;
}

void fence_locked(struct sealfs_map* m) {
  if (!m->mapped) {
    m->fence_pending = true;
    return;
  }
  if (m->state == 2) return;
  // Pages of an empty shared file: every access raises SIGBUS, exactly as
  // the kernel's revoked MAP_DIRECT mapping did.
  int memfd = memfd_create("sealfs-fenced", MFD_CLOEXEC);
  void* p = MAP_FAILED;
  if (memfd >= 0) {
    p = mmap(m->addr, m->length, PROT_READ | (m->prot & PROT_WRITE), MAP_SHARED | MAP_FIXED, memfd, 0);
    close(memfd);
  }
  if (p == MAP_FAILED) {
    // Without a memfd, PROT_NONE anonymous pages still keep the old blocks
    // out of reach (SIGSEGV instead of SIGBUS).
    p = mmap(m->addr, m->length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  }
  madvise(m->addr, m->length, MADV_DONTFORK);
  m->state = 2;
}

void deliver_break_locked(struct sealfs_map* m, uint64_t lease_id, int reason, uint64_t deadline_ns) {
  State& s = state();
  sealfs_break_event ev{m, lease_id, reason, deadline_ns};
  s.events.push_back(ev);
  if (s.break_fd >= 0) {
    uint64_t one = 1;
    ssize_t ignored = write(s.break_fd, &one, sizeof(one));
    (void)ignored;
  }
  if (s.handler != nullptr) {
    BreakCallback cb = s.handler;
    void* arg = s.handler_arg;
    s.jobs.push_back([cb, arg, ev] { cb(ev.map, &ev, arg); });
  }
  if (m != nullptr) {
    for (sealfs_reg* reg : m->regs) {
      if (reg->fired || reg->dead) continue;
      reg->fired = true;
      reg->running++;
      s.jobs.push_back([reg, ev] {
        reg->cb(ev.map, &ev, reg->arg);
        std::lock_guard lock(state().mu);
        reg->running--;
      });
    }
  }
  if (s.signo > 0) {
    union sigval value;
    value.sival_ptr = reinterpret_cast<void*>(static_cast<uintptr_t>(lease_id));
    sigqueue(getpid(), s.signo, value);
  }
  s.cv.notify_all();
}

}  // namespace sealfs::client

extern "C" const char* sealfs_last_error(void) { return sealfs::client::t_error.c_str(); }
