#include "util/status.h"

#include <cstring>

namespace sealfs {

Status Status::from_errno(int err, std::string message) {
  Code code = Code::kOther;
  switch (err) {
    case ENOENT: code = Code::kNotFound; break;
    case EEXIST: code = Code::kExists; break;
    case ENOSPC: code = Code::kNoSpace; break;
    case EINVAL: code = Code::kInvalid; break;
    case EIO: code = Code::kIoError; break;
    case EBUSY: code = Code::kBusy; break;
    case EACCES: code = Code::kAccess; break;
    case EPERM: code = Code::kPermission; break;
    case ENOMEM: code = Code::kNoMemory; break;
    case EROFS: code = Code::kReadOnly; break;
    default: break;
  }
  Status s(code, message + ": " + std::strerror(err), err);
  return s;
}

int Status::to_errno() const {
  switch (code_) {
    case Code::kOk: return 0;
    case Code::kNotFound: return ENOENT;
    case Code::kExists: return EEXIST;
    case Code::kNoSpace: return ENOSPC;
    case Code::kInvalid: return EINVAL;
    case Code::kCorruption: return EUCLEAN;
    case Code::kBadCrc: return EBADMSG;
    case Code::kIoError: return EIO;
    case Code::kBusy: return EBUSY;
    case Code::kStale: return ESTALE;
    case Code::kNotDir: return ENOTDIR;
    case Code::kIsDir: return EISDIR;
    case Code::kNotEmpty: return ENOTEMPTY;
    case Code::kNameTooLong: return ENAMETOOLONG;
    case Code::kTooBig: return EFBIG;
    case Code::kReadOnly: return EROFS;
    case Code::kPermission: return EPERM;
    case Code::kAccess: return EACCES;
    case Code::kNoData: return ENODATA;
    case Code::kRange: return ERANGE;
    case Code::kTooManyLinks: return EMLINK;
    case Code::kNotSupported: return EOPNOTSUPP;
    case Code::kNoMemory: return ENOMEM;
    case Code::kAgain: return EAGAIN;
    case Code::kNxio: return ENXIO;
    case Code::kCrossDevice: return EXDEV;
    case Code::kUnsupportedFeature: return EOPNOTSUPP;
    case Code::kLayoutSealed: return EBUSY;
    case Code::kOther: return errno_ != 0 ? errno_ : EIO;
  }
  return EIO;
}

const char* code_name(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kNotFound: return "not found";
    case Code::kExists: return "exists";
    case Code::kNoSpace: return "no space";
    case Code::kInvalid: return "invalid argument";
    case Code::kCorruption: return "corruption";
    case Code::kBadCrc: return "bad checksum";
    case Code::kIoError: return "I/O error";
    case Code::kBusy: return "busy";
    case Code::kStale: return "stale";
    case Code::kNotDir: return "not a directory";
    case Code::kIsDir: return "is a directory";
    case Code::kNotEmpty: return "not empty";
    case Code::kNameTooLong: return "name too long";
    case Code::kTooBig: return "too big";
    case Code::kReadOnly: return "read-only";
    case Code::kPermission: return "not permitted";
    case Code::kAccess: return "access denied";
    case Code::kNoData: return "no data";
    case Code::kRange: return "out of range";
    case Code::kTooManyLinks: return "too many links";
    case Code::kNotSupported: return "not supported";
    case Code::kNoMemory: return "out of memory";
    case Code::kAgain: return "try again";
    case Code::kNxio: return "no such device or address";
    case Code::kCrossDevice: return "cross-device";
    case Code::kUnsupportedFeature: return "unsupported feature";
    case Code::kLayoutSealed: return "layout sealed";
    case Code::kOther: return "error";
  }
  return "error";
}

std::string Status::to_string() const {
  if (is_ok()) return "ok";
  if (message_.empty()) return code_name(code_);
  return std::string(code_name(code_)) + ": " + message_;
}

Status Status::with_context(const std::string& context) const& {
  if (is_ok()) return *this;
  Status s = *this;
  s.message_ = context + ": " + s.message_;
  return s;
}

Status Status::with_context(const std::string& context) && {
  if (is_ok()) return std::move(*this);
  message_ = context + ": " + message_;
  return std::move(*this);
}

}  // namespace sealfs
