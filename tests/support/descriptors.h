// Running code while the process is out of file descriptors, to check that
// "cannot tell" (EMFILE) is told apart from "gone" (ENOENT, ESRCH).
#pragma once

#include <functional>

namespace sealfs::testing_support {

// Runs f() with RLIMIT_NOFILE's soft limit lowered to the lowest free
// descriptor number, so that every open, dup or socket in f fails with
// EMFILE; the limit is restored before returning. If the limit cannot be
// read or changed the test fails and f does not run.
void with_no_free_descriptor(const std::function<void()>& f);

}  // namespace sealfs::testing_support
