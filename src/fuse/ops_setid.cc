// Set-id bits cleared before a change of contents, with the caller's
// credentials (docs/daemon.md "Set-id bits"): the handlers for write,
// fallocate, copy_file_range and open(O_TRUNC) call this first; truncate
// and chown pass the caller along in SetAttr.
#include "fuse/caller_privilege.h"
#include "fuse/kernel_cache.h"
#include "fuse/ops_internal.h"

namespace sealfs::fuse {

std::shared_ptr<SetidCaller> setid_caller_of(fuse_req_t req) {
  const fuse_ctx* c = fuse_req_ctx(req);
  return std::make_shared<CallerPrivilege>(c->uid, c->gid, c->pid);
}

bool drop_setid_first(Reply& r, Ino ino) {
  const fuse_ctx* c = fuse_req_ctx(r.req());
  CallerPrivilege caller(c->uid, c->gid, c->pid);
  auto dropped = r.ctx().fs->drop_setid(ino, caller);
  if (dropped.is_ok()) {
    // The kernel handed the clearing to us (KILLPRIV_V2) and does not
    // refresh the mode after a write or fallocate: without this it would
    // show, and exec, the bits for attr_timeout.
    if (*dropped) drop_cached_attributes(r.ctx().session, ino);
    return true;
  }
  // Writing on with the bits in place would hand the writer's bytes the
  // owner's privileges: fail the request instead.
  r.error(dropped.status());
  return false;
}

bool drop_setid_of_existing(Reply& r, Ino parent, const std::string& name) {
  auto existing = r.ctx().fs->lookup(parent, name);
  if (!existing.is_ok()) return true;  // created (or failing) in the create itself
  bool ok = drop_setid_first(r, existing->ino);
  r.ctx().fs->forget(existing->ino, 1);
  return ok;
}

}  // namespace sealfs::fuse
