// Status and Result<T>: the error currency of every layer below src/fuse.
//
// Codes map one to one to errno values so the FUSE edge can reply with
// status.to_errno(). Corruption (found on media) is kept apart from IoError
// (the region failed us): mount and fsck react differently to each.
#pragma once

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

namespace sealfs {

enum class Code {
  kOk = 0,
  kNotFound,        // ENOENT
  kExists,          // EEXIST
  kNoSpace,         // ENOSPC
  kInvalid,         // EINVAL
  kCorruption,      // EUCLEAN: structure on media is inconsistent
  kBadCrc,          // EBADMSG: checksum mismatch
  kIoError,         // EIO
  kBusy,            // EBUSY
  kStale,           // ESTALE
  kNotDir,          // ENOTDIR
  kIsDir,           // EISDIR
  kNotEmpty,        // ENOTEMPTY
  kNameTooLong,     // ENAMETOOLONG
  kTooBig,          // EFBIG
  kReadOnly,        // EROFS
  kPermission,      // EPERM
  kAccess,          // EACCES
  kNoData,          // ENODATA
  kRange,           // ERANGE
  kTooManyLinks,    // EMLINK
  kNotSupported,    // EOPNOTSUPP
  kNoMemory,        // ENOMEM
  kAgain,           // EAGAIN
  kNxio,            // ENXIO
  kCrossDevice,     // EXDEV
  kUnsupportedFeature,  // EOPNOTSUPP, with a distinct meaning for mount
  kLayoutSealed,    // EBUSY if it ever escapes: a layout change met direct-mapping
                    // leases (meta/filesystem.h LayoutGate); the caller breaks them
  kOther,           // errno carried verbatim
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message, int err = 0)
      : code_(code), errno_(err), message_(std::move(message)) {}

  static Status ok() { return Status(); }
  // From a raw errno (system call failures): keeps the errno exactly.
  static Status from_errno(int err, std::string message);

  bool is_ok() const { return code_ == Code::kOk; }
  explicit operator bool() const { return is_ok(); }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  int to_errno() const;
  std::string to_string() const;

  // Prepends context ("inode 12: ") as the error travels up.
  Status with_context(const std::string& context) const&;
  Status with_context(const std::string& context) &&;

 private:
  Code code_ = Code::kOk;
  int errno_ = 0;  // only for Code::kOther and from_errno
  std::string message_;
};

const char* code_name(Code code);

// Result<T>: a value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT

  bool is_ok() const { return v_.index() == 0; }
  explicit operator bool() const { return is_ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  Status status() const { return is_ok() ? Status() : std::get<1>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace sealfs

// Early-return helpers.
#define SEALFS_CONCAT_INNER(a, b) a##b
#define SEALFS_CONCAT(a, b) SEALFS_CONCAT_INNER(a, b)
#define RETURN_IF_ERROR(expr)                       \
  do {                                              \
    ::sealfs::Status sealfs_status_ = (expr);       \
    if (!sealfs_status_.is_ok()) return sealfs_status_; \
  } while (0)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.is_ok()) return tmp.status();      \
  lhs = std::move(tmp).value()
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(SEALFS_CONCAT(sealfs_result_, __LINE__), lhs, expr)
