// graft — IDX reader (the MNIST / Fashion-MNIST / EMNIST / KMNIST file format), gzip or plain,
// through zlib's gzFile.
//
//   auto x = graft::data::read_idx_images<float>(".../train-images-idx3-ubyte.gz");  // [N, 28, 28] in [0, 1]
//   auto y = graft::data::read_idx_labels<float>(".../train-labels-idx1-ubyte.gz");  // [N]
//
// IDX layout: a 4-byte magic {0, 0, type, rank}, `rank` big-endian uint32 dimensions, then the
// values, big-endian, row-major. Every size is checked against the header, a hard limit and what
// the file can possibly hold *before* anything is allocated, so a corrupt or hostile header never
// causes a huge allocation. Failures throw io_error (cannot open / read) or format_error (not an
// IDX file, truncated, trailing data, wrong dimensions), with the file name and what was expected.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "graft/core/errors.hpp"
#include "graft/core/tensor.hpp"

namespace graft {
namespace data {

/// IDX element types (third byte of the magic number).
enum class IdxType : std::uint8_t {
  u8 = 0x08,
  i8 = 0x09,
  i16 = 0x0B,
  i32 = 0x0C,
  f32 = 0x0D,
  f64 = 0x0E,
};

struct IdxHeader {
  IdxType type = IdxType::u8;
  std::vector<Index> dims;
  /// Bytes per element.
  std::size_t element_size() const {
    switch (type) {
      case IdxType::u8:
      case IdxType::i8: return 1;
      case IdxType::i16: return 2;
      case IdxType::i32:
      case IdxType::f32: return 4;
      case IdxType::f64: return 8;
    }
    return 1;
  }
  Index elements() const {
    Index n = 1;
    for (Index d : dims) n *= d;
    return n;
  }
};

struct IdxOptions {
  /// Largest number of elements accepted (the decoded tensor is `elements * sizeof(T)` bytes).
  /// The default (2^30) is 20x the 60000-image training set of (Fashion-)MNIST.
  std::uint64_t max_elements = std::uint64_t(1) << 30;
  /// Largest rank accepted.
  int max_rank = 8;
};

namespace detail {

inline const char* idx_type_name(IdxType t) {
  switch (t) {
    case IdxType::u8: return "unsigned byte";
    case IdxType::i8: return "signed byte";
    case IdxType::i16: return "int16";
    case IdxType::i32: return "int32";
    case IdxType::f32: return "float32";
    case IdxType::f64: return "float64";
  }
  return "?";
}

/// RAII gzFile that reads exactly, turning every failure into a graft error naming the file.
class GzReader {
 public:
  explicit GzReader(const std::string& path) : path_(path) {
    errno = 0;
    f_ = gzopen(path.c_str(), "rb");
    if (!f_) {
      int e = errno;
      throw io_error(graft::detail::cat(path, ": cannot open (", e ? std::strerror(e) : "gzopen failed", ")"));
    }
    gzbuffer(f_, 1 << 17);
  }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;
  ~GzReader() {
    if (f_) gzclose(f_);
  }
  const std::string& path() const { return path_; }
  bool direct() { return gzdirect(f_) != 0; }

  /// Read up to n bytes; returns how many were read (less only at the end of the data).
  /// A zlib failure other than the plain end of the file throws format_error.
  std::size_t read_some(void* buf, std::size_t n) {
    std::size_t got = 0;
    auto* p = static_cast<unsigned char*>(buf);
    while (got < n) {
      unsigned chunk = static_cast<unsigned>(std::min<std::size_t>(n - got, 1u << 30));
      int r = gzread(f_, p + got, chunk);
      if (r < 0) {
        int err = 0;
        const char* msg = gzerror(f_, &err);
        if (err == Z_ERRNO) throw io_error(graft::detail::cat(path_, ": read failed (", std::strerror(errno), ")"));
        std::string m = msg ? msg : "zlib error";
        if (m.compare(0, path_.size() + 2, path_ + ": ") == 0) m.erase(0, path_.size() + 2);
        throw format_error(graft::detail::cat(path_, ": corrupt gzip data (", m, ")"));
      }
      if (r == 0) break;
      got += static_cast<std::size_t>(r);
    }
    return got;
  }
  /// Why the last read stopped short: zlib's message for a truncated/corrupt stream, or "".
  std::string stop_reason() {
    int err = 0;
    const char* msg = gzerror(f_, &err);
    if (err == Z_OK || !msg) return {};
    std::string m = msg;
    if (m.compare(0, path_.size() + 2, path_ + ": ") == 0) m.erase(0, path_.size() + 2);  // zlib prefixes the path
    return m;
  }

 private:
  std::string path_;
  gzFile f_ = nullptr;
};

inline std::uint32_t be32(const unsigned char* b) {
  return (std::uint32_t(b[0]) << 24) | (std::uint32_t(b[1]) << 16) | (std::uint32_t(b[2]) << 8) | std::uint32_t(b[3]);
}

inline std::string dims_str(const std::vector<Index>& d) {
  std::string r;
  for (size_t i = 0; i < d.size(); ++i) r += (i ? "x" : "") + std::to_string(d[i]);
  return r.empty() ? "scalar" : r;
}

inline IdxHeader read_idx_header(GzReader& in, const IdxOptions& opt) {
  const std::string& path = in.path();
  unsigned char m[4];
  std::size_t got = in.read_some(m, 4);
  if (got < 4)
    throw format_error(graft::detail::cat(path, ": not an IDX file: ", got, " byte(s) long, an IDX header needs at least 4"));
  char hex[16];
  std::snprintf(hex, sizeof hex, "0x%02X%02X%02X%02X", m[0], m[1], m[2], m[3]);
  if (m[0] != 0 || m[1] != 0)
    throw format_error(graft::detail::cat(path, ": not an IDX file: magic number ", hex,
                                          ", expected 0x0000TTRR (0x00000803 for images, 0x00000801 for labels)"));
  IdxHeader h;
  switch (m[2]) {
    case 0x08: case 0x09: case 0x0B: case 0x0C: case 0x0D: case 0x0E: h.type = static_cast<IdxType>(m[2]); break;
    default:
      throw format_error(graft::detail::cat(path, ": not an IDX file: magic number ", hex,
                                            " has an unknown element type (expected 0x08, 0x09, 0x0B, 0x0C, 0x0D or 0x0E in its third byte)"));
  }
  const int rank = m[3];
  if (rank < 1 || rank > opt.max_rank)
    throw format_error(graft::detail::cat(path, ": IDX header (magic ", hex, ") declares ", rank,
                                          " dimensions; expected 1 to ", opt.max_rank));
  std::vector<unsigned char> db(static_cast<size_t>(rank) * 4);
  got = in.read_some(db.data(), db.size());
  if (got < db.size())
    throw format_error(graft::detail::cat(path, ": truncated IDX header: ", rank, " dimensions need ", db.size(),
                                          " bytes after the magic number, the file has ", got));
  std::uint64_t n = 1;
  bool too_big = false;
  for (int i = 0; i < rank; ++i) {
    std::uint32_t d = be32(db.data() + 4 * i);
    h.dims.push_back(static_cast<Index>(d));
    if (d != 0 && n > opt.max_elements / d) too_big = true;
    else n *= d;
  }
  if (too_big || n > opt.max_elements)
    throw format_error(graft::detail::cat(path, ": IDX header declares dimensions ", dims_str(h.dims),
                                          ", more than the limit of ", opt.max_elements,
                                          " elements (IdxOptions::max_elements); the header is corrupt or the file is not what was expected"));
  return h;
}

/// Decode `count` big-endian values of type `type` from `src` into `dst` (as T).
template <class T>
void decode_idx(IdxType type, const unsigned char* src, std::size_t count, T* dst) {
  switch (type) {
    case IdxType::u8:
      for (std::size_t i = 0; i < count; ++i) dst[i] = static_cast<T>(src[i]);
      break;
    case IdxType::i8:
      for (std::size_t i = 0; i < count; ++i) dst[i] = static_cast<T>(static_cast<std::int8_t>(src[i]));
      break;
    case IdxType::i16:
      for (std::size_t i = 0; i < count; ++i)
        dst[i] = static_cast<T>(static_cast<std::int16_t>((std::uint16_t(src[2 * i]) << 8) | src[2 * i + 1]));
      break;
    case IdxType::i32:
      for (std::size_t i = 0; i < count; ++i) dst[i] = static_cast<T>(static_cast<std::int32_t>(be32(src + 4 * i)));
      break;
    case IdxType::f32:
      for (std::size_t i = 0; i < count; ++i) {
        std::uint32_t u = be32(src + 4 * i);
        float f;
        std::memcpy(&f, &u, 4);
        dst[i] = static_cast<T>(f);
      }
      break;
    case IdxType::f64:
      for (std::size_t i = 0; i < count; ++i) {
        std::uint64_t u = (std::uint64_t(be32(src + 8 * i)) << 32) | be32(src + 8 * i + 4);
        double f;
        std::memcpy(&f, &u, 8);
        dst[i] = static_cast<T>(f);
      }
      break;
  }
}

/// Header check done; check what the file can hold, allocate, read, check the end.
template <class T>
Tensor<T> read_idx_body(GzReader& in, const IdxHeader& h, std::uint64_t file_bytes) {
  const std::string& path = in.path();
  const std::uint64_t n = static_cast<std::uint64_t>(h.elements());
  const std::uint64_t es = h.element_size();
  const std::uint64_t want = n * es;
  const std::uint64_t header = 4 + 4 * h.dims.size();
  // A plain file holds exactly its size; deflate expands at most ~1032:1, so a gzip file of
  // `file_bytes` cannot decode to more than that (with margin). Checked before allocating.
  const bool plain = in.direct();
  const std::uint64_t can_hold = plain ? (file_bytes > header ? file_bytes - header : 0) : file_bytes * 1100 + 4096;
  if (want > can_hold)
    throw format_error(graft::detail::cat(path, ": truncated: the IDX header declares ", dims_str(h.dims), " ",
                                          idx_type_name(h.type), " values (", want, " bytes of data) but the ",
                                          plain ? "file" : "compressed file", " is only ", file_bytes,
                                          " bytes long"));
  Tensor<T> t(h.dims);
  std::vector<unsigned char> buf(static_cast<std::size_t>(std::min<std::uint64_t>(std::max<std::uint64_t>(want, 1), 1 << 20)));
  std::uint64_t done = 0;  // bytes
  T* out = t.data();
  while (done < want) {
    std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(want - done, buf.size()));
    chunk -= chunk % es;
    std::size_t got = in.read_some(buf.data(), chunk);
    std::size_t whole = got - got % es;
    decode_idx<T>(h.type, buf.data(), whole / es, out);
    out += whole / es;
    done += got;
    if (got < chunk) {
      std::string why = in.stop_reason();
      throw format_error(graft::detail::cat(path, ": truncated: the IDX header declares ", dims_str(h.dims), " ",
                                            idx_type_name(h.type), " values (", want,
                                            " bytes of data), the file ends after ", done, " bytes of data",
                                            why.empty() ? "" : " (" + why + ")"));
    }
  }
  unsigned char extra[64];
  std::size_t more = in.read_some(extra, sizeof extra);
  if (more > 0)
    throw format_error(graft::detail::cat(path, ": trailing data after the ", want, " bytes of values the IDX header ",
                                          "declares (", dims_str(h.dims), "); the header does not match the file"));
  return t;
}

inline std::uint64_t file_size_or_throw(const std::string& path) {
  std::error_code ec;
  auto s = std::filesystem::file_size(path, ec);
  if (ec) {
    if (!std::filesystem::exists(path)) throw io_error(graft::detail::cat(path, ": cannot open (no such file)"));
    throw io_error(graft::detail::cat(path, ": cannot read its size (", ec.message(), ")"));
  }
  return static_cast<std::uint64_t>(s);
}

}  // namespace detail

/// Read only the header (type and dimensions).
inline IdxHeader read_idx_header(const std::string& path, const IdxOptions& opt = {}) {
  detail::GzReader in(path);
  return detail::read_idx_header(in, opt);
}

/// Read any IDX file: a tensor of the header's dimensions, values converted to T.
template <class T = float>
Tensor<T> read_idx(const std::string& path, const IdxOptions& opt = {}) {
  std::uint64_t size = detail::file_size_or_throw(path);
  detail::GzReader in(path);
  IdxHeader h = detail::read_idx_header(in, opt);
  return detail::read_idx_body<T>(in, h, size);
}

/// Images: an unsigned-byte IDX file of rank 3, returned as [N, rows, cols]; pixel values divided
/// by 255 when `scale_to_unit`. `rows` / `cols` of 0 accept any size.
template <class T = float>
Tensor<T> read_idx_images(const std::string& path, bool scale_to_unit = true, Index rows = 28, Index cols = 28,
                          const IdxOptions& opt = {}) {
  std::uint64_t size = detail::file_size_or_throw(path);
  detail::GzReader in(path);
  IdxHeader h = detail::read_idx_header(in, opt);
  if (h.type != IdxType::u8 || h.dims.size() != 3)
    throw format_error(graft::detail::cat(path, ": expected an IDX image file (unsigned bytes, 3 dimensions N x rows x cols, magic 0x00000803), got ",
                                          detail::idx_type_name(h.type), " values with ", h.dims.size(),
                                          " dimension(s) (", detail::dims_str(h.dims), ")"));
  if ((rows > 0 && h.dims[1] != rows) || (cols > 0 && h.dims[2] != cols))
    throw format_error(graft::detail::cat(path, ": expected images of ", rows > 0 ? std::to_string(rows) : "any", "x",
                                          cols > 0 ? std::to_string(cols) : "any", " pixels, the file holds ",
                                          h.dims[0], " images of ", h.dims[1], "x", h.dims[2]));
  Tensor<T> t = detail::read_idx_body<T>(in, h, size);
  if (scale_to_unit) t.array() *= static_cast<T>(1.0 / 255.0);
  return t;
}

/// Labels: an IDX file of rank 1 (any integer type), returned as [N].
template <class T = float>
Tensor<T> read_idx_labels(const std::string& path, const IdxOptions& opt = {}) {
  std::uint64_t size = detail::file_size_or_throw(path);
  detail::GzReader in(path);
  IdxHeader h = detail::read_idx_header(in, opt);
  if (h.dims.size() != 1 || h.type == IdxType::f32 || h.type == IdxType::f64)
    throw format_error(graft::detail::cat(path, ": expected an IDX label file (integers, 1 dimension, magic 0x00000801), got ",
                                          detail::idx_type_name(h.type), " values with ", h.dims.size(),
                                          " dimension(s) (", detail::dims_str(h.dims), ")"));
  return detail::read_idx_body<T>(in, h, size);
}

/// Images and labels of one split, checked to hold the same number of samples.
template <class T = float>
struct IdxPair {
  Tensor<T> images;  ///< [N, rows, cols]
  Tensor<T> labels;  ///< [N]
};
template <class T = float>
IdxPair<T> read_idx_pair(const std::string& images_path, const std::string& labels_path, bool scale_to_unit = true,
                         Index rows = 28, Index cols = 28, const IdxOptions& opt = {}) {
  IdxPair<T> p;
  p.labels = read_idx_labels<T>(labels_path, opt);
  p.images = read_idx_images<T>(images_path, scale_to_unit, rows, cols, opt);
  if (p.images.dim(0) != p.labels.dim(0))
    throw format_error(graft::detail::cat(images_path, " holds ", p.images.dim(0), " images but ", labels_path,
                                          " holds ", p.labels.dim(0), " labels; expected the same number"));
  return p;
}

}  // namespace data
}  // namespace graft
