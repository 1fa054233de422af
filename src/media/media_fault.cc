#include "media/media_fault.h"

#include <csetjmp>
#include <atomic>
#include <csignal>
#include <cstring>
#include <mutex>

namespace sealfs {
namespace {

// One armed window of one thread; lives in run_window's frame.
struct RecoveryPoint {
  sigjmp_buf env;
  uintptr_t begin = 0;
  uintptr_t end = 0;
  uintptr_t fault_address = 0;
  RecoveryPoint* outer = nullptr;
};

// Read by the signal handler on the same thread: initial-exec so that the
// access is a plain load from the thread pointer (no __tls_get_addr, which
// may allocate), volatile so that the stores arming and disarming a window
// are not moved across the window's body.
__attribute__((tls_model("initial-exec"))) thread_local RecoveryPoint* volatile t_innermost =
    nullptr;

struct sigaction g_previous;
bool g_installed = false;
std::once_flag g_once;

// The fault is not ours: hand it to whoever had SIGBUS before us.
void chain(int sig, siginfo_t* info, void* context) {
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction != nullptr) {
      g_previous.sa_sigaction(sig, info, context);
      return;
    }
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
    g_previous.sa_handler(sig);
    return;
  }
  // Default action (a synchronous SIGBUS cannot be ignored either): restore
  // it and let the fault happen again on return, which kills the process
  // with the true cause. A SIGBUS sent with kill() does not recur, so raise
  // it once more.
  signal(sig, SIG_DFL);
  if (info == nullptr || info->si_code <= 0) raise(sig);
}

void on_sigbus(int sig, siginfo_t* info, void* context) {
  const auto address = info != nullptr ? reinterpret_cast<uintptr_t>(info->si_addr) : 0;
  // Only hardware faults (si_code > 0) are recoverable: a SIGBUS sent by
  // kill() names no address in our mapping.
  if (info != nullptr && info->si_code > 0) {
    for (RecoveryPoint* p = t_innermost; p != nullptr; p = p->outer) {
      if (address >= p->begin && address < p->end) {
        p->fault_address = address;
        t_innermost = p->outer;
        // Leaves the handler without sigreturn: SA_NODEFER kept SIGBUS
        // unblocked, so the signal mask is already the one the window had.
        siglongjmp(p->env, 1);
      }
    }
  }
  chain(sig, info, context);
}

}  // namespace

bool install_media_fault_handler() {
  std::call_once(g_once, [] {
    struct sigaction action;
    std::memset(&action, 0, sizeof action);
    action.sa_sigaction = &on_sigbus;
    sigemptyset(&action.sa_mask);
    // SA_NODEFER: the handler leaves by siglongjmp to a sigsetjmp that did
    // not save the mask (saving it costs a system call per window); with
    // SIGBUS deferred it would stay blocked after the jump, and the next
    // fault on this thread would kill the process outright.
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    g_installed = sigaction(SIGBUS, &action, &g_previous) == 0;
  });
  return g_installed;
}

bool media_fault_handler_installed() { return g_installed; }

namespace media_fault_detail {

bool run_window(uintptr_t begin, uintptr_t end, void (*fn)(void*), void* ctx,
                uintptr_t* fault_address) {
  RecoveryPoint point;
  point.begin = begin;
  point.end = end;
  point.outer = t_innermost;
  if (sigsetjmp(point.env, 0) != 0) {
    // The handler unlinked `point` before jumping.
    if (fault_address != nullptr) *fault_address = point.fault_address;
    return false;
  }
  t_innermost = &point;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  fn(ctx);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_innermost = point.outer;
  return true;
}

}  // namespace media_fault_detail
}  // namespace sealfs
