#pragma once
// Files: read-only memory maps (with a plain-read fallback) and atomic replacement of a file.
//
// MappedFile::open(path) maps a whole regular file read-only. The map shows the inode that was
// opened: a writer that replaces the file with AtomicFile (rename) never disturbs it, but a
// writer that truncates the file in place makes later accesses fault (SIGBUS), as for any mmap.
//
// AtomicFile writes to a temporary file beside the target and renames it over the target on
// commit(): a reader sees either the old complete file or the new complete file, never a mix,
// and a failure at any point leaves the old file untouched and no temporary behind.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <utility>

#include "../core/error.hpp"
#include "limits.hpp"

namespace deepprompt {

/// A system call on a file failed (open, read, write, fsync, rename...); names the path.
class IoError : public Error {
 public:
  using Error::Error;
};

// FormatError (a file's contents do not follow its format) is declared in limits.hpp.

namespace detail {
inline IoError io_error(std::string_view what, const std::filesystem::path& path, int err) {
  return IoError(cat(what, " '", path.string(), "': ", std::strerror(err)));
}
// `s` with control and non-ASCII bytes replaced by '?' (for messages that quote file contents).
inline std::string printable(std::string s) {
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  return s;
}
// close() that retries nothing (POSIX leaves the descriptor closed even on EINTR).
inline int close_fd(int fd) { return fd >= 0 ? ::close(fd) : 0; }
}  // namespace detail

/// The bytes of a whole file, memory-mapped when possible, else read into memory. Move-only.
class MappedFile {
 public:
  MappedFile() = default;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& o) noexcept { swap(o); }
  MappedFile& operator=(MappedFile&& o) noexcept {
    MappedFile tmp(std::move(o));
    swap(tmp);
    return *this;
  }
  ~MappedFile() {
    if (mapped_) ::munmap(const_cast<std::byte*>(data_), size_);
  }

  /// Opens `path`; `try_mmap = false` forces the read fallback (also used when mmap fails, e.g.
  /// for an empty file or a file system without mmap). Throws IoError.
  static MappedFile open(const std::filesystem::path& path, bool try_mmap = true) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw detail::io_error("cannot open", path, errno);
    struct FdGuard {
      int fd;
      ~FdGuard() { detail::close_fd(fd); }
    } guard{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw detail::io_error("cannot stat", path, errno);
    if (!S_ISREG(st.st_mode)) throw IoError(detail::cat("'", path.string(), "' is not a regular file"));
    MappedFile f;
    f.size_ = static_cast<std::size_t>(st.st_size);
    if (try_mmap && f.size_ > 0) {
      void* p = ::mmap(nullptr, f.size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p != MAP_FAILED) {
        f.data_ = static_cast<const std::byte*>(p);
        f.mapped_ = true;
        return f;
      }
    }
    f.buffer_ = std::make_unique<std::byte[]>(f.size_ ? f.size_ : 1);
    std::size_t done = 0;
    while (done < f.size_) {
      const ssize_t n = ::pread(fd, f.buffer_.get() + done, f.size_ - done, static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw detail::io_error("cannot read", path, errno);
      if (n == 0) throw IoError(detail::cat("'", path.string(), "' shrank while it was being read"));
      done += static_cast<std::size_t>(n);
    }
    f.data_ = f.buffer_.get();
    return f;
  }

  /// A copy of `bytes` held in memory (is_mapped() false).
  static MappedFile copy_of(std::span<const std::byte> bytes) {
    MappedFile f;
    f.size_ = bytes.size();
    f.buffer_ = std::make_unique<std::byte[]>(f.size_ ? f.size_ : 1);
    if (f.size_) std::memcpy(f.buffer_.get(), bytes.data(), f.size_);
    f.data_ = f.buffer_.get();
    return f;
  }

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  std::size_t size() const { return size_; }
  /// True when the bytes are a memory map, false when they were read into memory.
  bool is_mapped() const { return mapped_; }

 private:
  void swap(MappedFile& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(mapped_, o.mapped_);
    std::swap(buffer_, o.buffer_);
  }

  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  bool mapped_ = false;
  std::unique_ptr<std::byte[]> buffer_;  // the read fallback
};

/// Replaces a file atomically: write() pieces, then commit(). Destroying an uncommitted
/// AtomicFile (an exception on the way) removes the temporary and leaves the target untouched.
/// The temporary is `.<name>.tmp.<pid>.<n>.<random>` in the target's folder (rename needs the
/// same file system). A symbolic link as target is followed: the file it points to is replaced.
/// The new file gets the old file's permission bits, or 0666 minus the umask for a new file.
class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path target) : target_(std::move(target)) {
    std::error_code ec;
    if (std::filesystem::is_symlink(target_, ec)) {
      auto real = std::filesystem::weakly_canonical(target_, ec);
      if (!ec) target_ = real;
    }
    const auto dir = target_.has_parent_path() ? target_.parent_path() : std::filesystem::path(".");
    static std::atomic<unsigned> counter{0};
    std::random_device rd;
    for (int attempt = 0; attempt < 100; ++attempt) {
      temp_ = dir / detail::cat(".", target_.filename().string(), ".tmp.", ::getpid(), ".",
                                counter.fetch_add(1), ".", rd() % 1000000u);
      fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ >= 0 || errno != EEXIST) break;
    }
    if (fd_ < 0) throw detail::io_error("cannot create a temporary file beside", target_, errno);
    struct stat st {};
    if (::stat(target_.c_str(), &st) == 0 && S_ISREG(st.st_mode)) ::fchmod(fd_, st.st_mode & 07777);
  }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile() { discard(); }

  /// Appends n bytes. Throws IoError (disk full, file size limit...).
  void write(const void* data, std::size_t n) {
    if (fd_ < 0) throw IoError(detail::cat("AtomicFile '", target_.string(), "': write after commit or failure"));
    const auto* p = static_cast<const std::byte*>(data);
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) fail("cannot write", errno);
      p += w;
      n -= static_cast<std::size_t>(w);
    }
  }

  /// Flushes the temporary to disk, renames it over the target and flushes the folder.
  void commit() {
    if (fd_ < 0) throw IoError(detail::cat("AtomicFile '", target_.string(), "': commit after commit or failure"));
    if (::fsync(fd_) != 0) fail("cannot flush", errno);
    const int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0) fail("cannot close", errno);
    if (::rename(temp_.c_str(), target_.c_str()) != 0) fail("cannot rename the temporary over", errno);
    temp_.clear();
    // Make the rename itself durable. Some file systems cannot fsync a folder (EINVAL): the
    // file is in place then, so only a real I/O error is reported.
    const auto dir = target_.has_parent_path() ? target_.parent_path() : std::filesystem::path(".");
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      const int rc = ::fsync(dfd);
      const int err = errno;
      detail::close_fd(dfd);
      if (rc != 0 && err != EINVAL && err != ENOTSUP) throw detail::io_error("cannot flush the folder of", target_, err);
    }
  }

  const std::filesystem::path& target() const { return target_; }
  /// The temporary's path while uncommitted; empty after commit() or a failure.
  const std::filesystem::path& temporary() const { return temp_; }

 private:
  [[noreturn]] void fail(std::string_view what, int err) {
    discard();
    throw detail::io_error(what, target_, err);
  }
  void discard() noexcept {
    detail::close_fd(std::exchange(fd_, -1));
    if (!temp_.empty()) ::unlink(temp_.c_str());
    temp_.clear();
  }

  std::filesystem::path target_;
  std::filesystem::path temp_;
  int fd_ = -1;
};

/// Replaces `path` atomically with `bytes`.
inline void write_file_atomic(const std::filesystem::path& path, std::span<const std::byte> bytes) {
  AtomicFile f(path);
  f.write(bytes.data(), bytes.size());
  f.commit();
}

/// Throws LimitError unless the file at `path` (if it exists) is at most limits().file_bytes.
inline void check_file_size(const std::filesystem::path& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (!ec) check_limit(detail::cat("'", path.string(), "'"), "file size", size, limits().file_bytes, "file_bytes");
}

/// The whole file as a string (for text files such as config.json). Throws IoError, or
/// LimitError for a file larger than limits().file_bytes.
inline std::string read_text_file(const std::filesystem::path& path) {
  check_file_size(path);
  const auto f = MappedFile::open(path, /*try_mmap=*/false);
  return std::string(reinterpret_cast<const char*>(f.bytes().data()), f.size());
}

}  // namespace deepprompt
