// graft — HDF5's deflate (gzip) filter, replaced by one whose output is bounded.
//
// libhdf5's own deflate filter grows its output buffer for as long as the compressed stream goes
// on: a chunk of a few kilobytes that inflates to gigabytes (a decompression bomb) makes it
// allocate all of it. graft registers this filter under the same id (H5Zregister replaces the
// built-in one, process-wide, for every later read): it inflates at most the size of the chunk
// being read (set by read_dataset, see InflateLimit) and otherwise at most 1 GiB (the largest
// chunk hdf5_validate.hpp admits), and fails the read beyond it. Compression (writing) is
// zlib's compress2 at the dataset's level, as libhdf5 does.
#pragma once

#include <H5Cpp.h>
#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

namespace graft {
namespace h5 {
namespace deflate {

/// The most bytes one chunk may inflate to on this thread; 0: the default bound (1 GiB).
inline std::size_t& inflate_limit() {
  thread_local std::size_t limit = 0;
  return limit;
}

/// RAII: chunks read on this thread while alive inflate to at most `bytes`.
class InflateLimit {
 public:
  explicit InflateLimit(std::size_t bytes) : saved_(inflate_limit()) { inflate_limit() = bytes; }
  ~InflateLimit() { inflate_limit() = saved_; }
  InflateLimit(const InflateLimit&) = delete;
  InflateLimit& operator=(const InflateLimit&) = delete;

 private:
  std::size_t saved_;
};

/// The filter callback (H5Z_func_t): 0 on failure, else the size of the new *buf.
inline size_t bounded_deflate(unsigned int flags, size_t cd_nelmts, const unsigned int cd_values[], size_t nbytes, size_t* buf_size,
                              void** buf) {
  if (flags & H5Z_FLAG_REVERSE) {
    const std::size_t limit = inflate_limit() ? inflate_limit() : (std::size_t(1) << 30);
    std::size_t cap = std::min(limit, std::max<std::size_t>(*buf_size * 2, 4096));
    auto* out = static_cast<unsigned char*>(H5allocate_memory(cap, false));
    if (!out) return 0;
    z_stream z;
    std::memset(&z, 0, sizeof z);
    z.next_in = static_cast<Bytef*>(*buf);
    z.avail_in = static_cast<uInt>(std::min<std::size_t>(nbytes, 0xFFFFFFFFu));
    if (inflateInit(&z) != Z_OK) {
      H5free_memory(out);
      return 0;
    }
    std::size_t done = 0;
    for (;;) {
      z.next_out = out + done;
      z.avail_out = static_cast<uInt>(std::min<std::size_t>(cap - done, 0xFFFFFFFFu));
      int st = inflate(&z, Z_SYNC_FLUSH);
      done = static_cast<std::size_t>(z.next_out - out);
      if (st == Z_STREAM_END) break;
      if (st != Z_OK && st != Z_BUF_ERROR) {
        inflateEnd(&z);
        H5free_memory(out);
        return 0;
      }
      if (z.avail_out == 0) {
        if (cap >= limit) {  // more output than the chunk can hold: a corrupt or hostile stream
          inflateEnd(&z);
          H5free_memory(out);
          return 0;
        }
        std::size_t ncap = std::min(limit, cap * 2);
        auto* grown = static_cast<unsigned char*>(H5resize_memory(out, ncap));
        if (!grown) {
          inflateEnd(&z);
          H5free_memory(out);
          return 0;
        }
        out = grown;
        cap = ncap;
      } else if (st == Z_BUF_ERROR || z.avail_in == 0) {  // truncated stream
        inflateEnd(&z);
        H5free_memory(out);
        return 0;
      }
    }
    inflateEnd(&z);
    H5free_memory(*buf);
    *buf = out;
    *buf_size = cap;
    return done;
  }
  int level = cd_nelmts > 0 ? static_cast<int>(std::min(cd_values[0], 9u)) : 6;
  uLongf len = compressBound(static_cast<uLong>(nbytes));
  auto* out = static_cast<Bytef*>(H5allocate_memory(len, false));
  if (!out) return 0;
  if (compress2(out, &len, static_cast<const Bytef*>(*buf), static_cast<uLong>(nbytes), level) != Z_OK) {
    H5free_memory(out);
    return 0;
  }
  H5free_memory(*buf);
  *buf = out;
  *buf_size = len;
  return len;
}

/// Register the bounded filter in place of libhdf5's (once per process).
inline void use_bounded_deflate() {
  static bool done = [] {
    static const H5Z_class2_t cls = {H5Z_CLASS_T_VERS, H5Z_FILTER_DEFLATE, 1, 1, "deflate (graft: bounded output)", nullptr, nullptr,
                                     bounded_deflate};
    H5Zregister(&cls);
    return true;
  }();
  (void)done;
}

}  // namespace deflate
}  // namespace h5
}  // namespace graft
