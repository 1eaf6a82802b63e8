// graft — fit()'s automatic feature cache. When every layer below the first trainable one is
// frozen and deterministic in training (no Dropout, noise or augmentation active there, frozen
// BatchNormalization), that prefix computes the same outputs for a sample in every epoch: the
// first time a sample passes, its prefix outputs are kept, and later epochs train the rest of
// the model on them without reading, decoding or running the prefix again (Chollet's "bottleneck
// features", automatic). Results are bit for bit those of uncached training. The cache lives in
// memory within a budget, or beyond it in an unlinked temporary file (pread/pwrite); fit() says
// which in its output and in History::feature_cache.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "graft/core/errors.hpp"
#include "graft/core/tensor.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <unistd.h>
#define GRAFT_CACHE_CAN_SPILL 1
#endif

namespace graft {

/// How fit() may cache the outputs of the model's frozen prefix (FitOptions::feature_cache).
enum class FeatureCacheMode {
  automatic,  ///< cache when it pays (a frozen, deterministic prefix doing real work, 2+ passes)
  memory,     ///< as automatic, but never spill to disk: beyond the budget, no cache
  off         ///< never cache
};

namespace detail {

/// Rows of fixed width (one row per sample, the prefix's output tensors side by side), filled
/// sample by sample.
template <class T>
class FeatureCache {
 public:
  FeatureCache() = default;
  FeatureCache(const FeatureCache&) = delete;
  FeatureCache& operator=(const FeatureCache&) = delete;
  ~FeatureCache() { close(); }

  /// n samples of tensors with per-sample shapes `shapes`. Memory when n * row bytes fits the
  /// budget; else a temporary file in `dir` when allowed; else the cache stays off.
  void init(Index n, const std::vector<Shape>& shapes, double budget_bytes, bool allow_disk, const std::string& dir) {
    close();
    shapes_ = shapes;
    widths_.clear();
    row_ = 0;
    for (const Shape& s : shapes_) {
      widths_.push_back(shape_size(s));
      row_ += widths_.back();
    }
    n_ = n;
    filled_.assign(static_cast<size_t>(n), 0);
    bytes_ = static_cast<double>(n) * static_cast<double>(row_) * sizeof(T);
    if (row_ <= 0 || n <= 0) {
      where_ = "off";
      return;
    }
    if (bytes_ <= budget_bytes) {
      mem_.resize(static_cast<size_t>(n * row_));
      where_ = "memory";
      return;
    }
#if defined(GRAFT_CACHE_CAN_SPILL)
    if (allow_disk) {
      std::string tmpl = (dir.empty() ? std::string("/tmp") : dir) + "/graft-feature-cache-XXXXXX";
      std::vector<char> name(tmpl.begin(), tmpl.end());
      name.push_back('\0');
      fd_ = ::mkstemp(name.data());
      if (fd_ < 0) throw io_error(detail::cat("feature cache: cannot create a temporary file in '", dir, "'"));
      ::unlink(name.data());  // gone when closed, whatever happens
      path_ = std::string(name.data());
      where_ = "disk";
      return;
    }
#endif
    where_ = "off";
  }
  bool active() const { return where_ == "memory" || where_ == "disk"; }
  /// "memory", "disk" or "off".
  const std::string& where() const { return where_; }
  double bytes() const { return bytes_; }
  const std::string& path() const { return path_; }
  const std::vector<Shape>& shapes() const { return shapes_; }

  /// True when every one of rows[0..cnt) is cached.
  bool has(const Index* rows, Index cnt) const {
    if (!active()) return false;
    for (Index r = 0; r < cnt; ++r)
      if (!filled_[static_cast<size_t>(rows[r])]) return false;
    return true;
  }

  /// Keep rows[0..cnt) of the tensors `vals` (one per cached tensor, cnt rows each).
  void store(const Index* rows, Index cnt, const std::vector<const Tensor<T>*>& vals) {
    if (!active()) return;
    for (Index r = 0; r < cnt; ++r) {
      const size_t s = static_cast<size_t>(rows[r]);
      if (filled_[s]) continue;
      Index off = 0;
      for (size_t k = 0; k < vals.size(); ++k) {
        const T* src = vals[k]->data() + r * widths_[k];
        write(rows[r], off, src, widths_[k]);
        off += widths_[k];
      }
      filled_[s] = 1;
    }
  }

  /// Rows rows[0..cnt) into dst (one tensor per cached tensor, shape (cnt, ...)).
  void fetch(const Index* rows, Index cnt, std::vector<Tensor<T>>& dst) {
    dst.resize(shapes_.size());
    for (size_t k = 0; k < shapes_.size(); ++k) {
      batch_shape_.assign(1, cnt);
      batch_shape_.insert(batch_shape_.end(), shapes_[k].begin(), shapes_[k].end());
      dst[k].resize_batch(batch_shape_, cnt);
    }
    for (Index r = 0; r < cnt; ++r) {
      Index off = 0;
      for (size_t k = 0; k < shapes_.size(); ++k) {
        read(rows[r], off, dst[k].data() + r * widths_[k], widths_[k]);
        off += widths_[k];
      }
    }
  }

 private:
  void write(Index row, Index off, const T* src, Index n) {
    if (where_ == "memory") {
      std::copy(src, src + n, mem_.data() + row * row_ + off);
      return;
    }
#if defined(GRAFT_CACHE_CAN_SPILL)
    const off_t pos = static_cast<off_t>((row * row_ + off) * static_cast<Index>(sizeof(T)));
    const char* p = reinterpret_cast<const char*>(src);
    size_t left = static_cast<size_t>(n) * sizeof(T);
    off_t at = pos;
    while (left) {
      ssize_t w = ::pwrite(fd_, p, left, at);
      if (w <= 0) throw io_error(detail::cat("feature cache: writing its temporary file in '", path_, "' failed (disk full?)"));
      p += w;
      at += w;
      left -= static_cast<size_t>(w);
    }
#endif
  }
  void read(Index row, Index off, T* dst, Index n) {
    if (where_ == "memory") {
      const T* src = mem_.data() + row * row_ + off;
      std::copy(src, src + n, dst);
      return;
    }
#if defined(GRAFT_CACHE_CAN_SPILL)
    char* p = reinterpret_cast<char*>(dst);
    size_t left = static_cast<size_t>(n) * sizeof(T);
    off_t at = static_cast<off_t>((row * row_ + off) * static_cast<Index>(sizeof(T)));
    while (left) {
      ssize_t r = ::pread(fd_, p, left, at);
      if (r <= 0) throw io_error(detail::cat("feature cache: reading its temporary file '", path_, "' failed"));
      p += r;
      at += r;
      left -= static_cast<size_t>(r);
    }
#endif
  }
  void close() {
#if defined(GRAFT_CACHE_CAN_SPILL)
    if (fd_ >= 0) ::close(fd_);
#endif
    fd_ = -1;
    mem_.clear();
    mem_.shrink_to_fit();
    where_ = "off";
  }

  std::vector<Shape> shapes_;
  std::vector<Index> widths_;
  Index row_ = 0, n_ = 0;
  double bytes_ = 0;
  std::vector<T> mem_;
  std::vector<char> filled_;
  int fd_ = -1;
  std::string path_, where_ = "off";
  Shape batch_shape_;
};

/// Physical memory in bytes (0 when unknown).
inline double physical_memory_bytes() {
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
  long pages = ::sysconf(_SC_PHYS_PAGES), size = ::sysconf(_SC_PAGESIZE);
  if (pages > 0 && size > 0) return static_cast<double>(pages) * static_cast<double>(size);
#endif
  return 0;
}

}  // namespace detail
}  // namespace graft
