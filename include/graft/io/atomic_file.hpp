// graft — saving never corrupts an existing file: every writer fills a temporary file beside the
// target, which then replaces it by rename (atomic on POSIX file systems).
#pragma once

#include <atomic>
#include <cstdio>
#include <fstream>
#include <functional>
#include <string>

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <unistd.h>
#endif

#include "graft/core/errors.hpp"
#include "graft/io/hdf5.hpp"

namespace graft {

/// Version written into the files graft saves (`graft_version` attribute / metadata key).
constexpr const char* kGraftVersion = "0.1.0";

namespace detail {

/// A fresh hidden name beside `path`: "<dir>/.<base>.graft-tmp-<pid>-<n><suffix>".
inline std::string temp_path_beside(const std::string& path, const std::string& suffix = {}) {
  static std::atomic<unsigned> counter{0};
  std::string dir = ".", base = path;
  size_t slash = path.rfind('/');
  if (slash != std::string::npos) {
    dir = path.substr(0, slash);
    base = path.substr(slash + 1);
    if (dir.empty()) dir = "/";
  }
  if (base.empty()) throw value_error(cat(path, ": not a file name"));
#if defined(__unix__) || defined(__APPLE__)
  long pid = static_cast<long>(getpid());
#else
  long pid = 0;
#endif
  return cat(dir, "/.", base, ".graft-tmp-", pid, "-", counter++, suffix);
}

/// Write `path` atomically: `fn` writes the temporary file it is given, which is then synced and
/// renamed onto `path`. On any failure the temporary file is removed and `path` is untouched.
inline void atomic_replace(const std::string& path, const std::function<void(const std::string& tmp)>& fn) {
  std::string tmp = temp_path_beside(path);
  try {
    fn(tmp);
#if defined(__unix__) || defined(__APPLE__)
    int fd = ::open(tmp.c_str(), O_RDONLY);
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
#endif
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      throw io_error(cat(path, ": cannot replace the file (rename from the temporary file failed)"));
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
#if defined(__unix__) || defined(__APPLE__)
  // the rename itself reaches the disk with its folder (a power cut after this returns keeps the new file)
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? std::string(".") : slash == 0 ? std::string("/") : path.substr(0, slash);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
#endif
}

/// atomic_replace for a text file: `text` is written whole, or `path` keeps its old content.
inline void atomic_write_text(const std::string& path, const std::string& text) {
  atomic_replace(path, [&](const std::string& tmp) {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw io_error(cat(path, ": cannot write the file (cannot create ", tmp, ")"));
    f.write(text.data(), static_cast<std::streamsize>(text.size()));
    f.flush();
    if (!f) throw io_error(cat(path, ": cannot write the file (disk full?)"));
  });
}

/// atomic_replace for an HDF5 file that `fn` fills.
inline void atomic_write(const std::string& path, const std::function<void(h5::File&)>& fn) {
  atomic_replace(path, [&](const std::string& tmp) {
    h5::File f = h5::File::create(tmp);
    fn(f);
    f.close();
  });
}

}  // namespace detail
}  // namespace graft
