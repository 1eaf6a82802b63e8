// graft — thin, defensive helpers over the HDF5 C++ API: file sniffing, string attributes in every
// encoding Keras ever wrote (fixed/variable length, ASCII/UTF-8, chunked name0/name1...), checked
// dataset reads (no soft/external links, no virtual/external storage, no shape bombs) and writers.
// Every failure is a graft:: exception naming the file, the HDF5 path and what was expected.
#pragma once

#include <H5Cpp.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "graft/core/errors.hpp"
#include "graft/core/tensor.hpp"
#include "graft/io/hdf5_deflate.hpp"
#include "graft/io/hdf5_validate.hpp"

namespace graft {
namespace h5 {

/// Upper bound for any string attribute graft reads (model configs of big models are ~1 MB).
constexpr std::size_t kMaxAttributeBytes = std::size_t(256) << 20;
/// Upper bound for the elements of one dataset read without an expected shape.
constexpr std::size_t kMaxDatasetElements = std::size_t(1) << 31;

enum class FileKind { hdf5, zip, git_lfs_pointer, missing, empty, other };

/// A file opened read-only after checking that it is a regular file: a named pipe, a device or a
/// directory is refused (io_error) without blocking, as the open is non-blocking and the check
/// is made on the opened descriptor. -1 when the file cannot be opened.
inline int open_regular(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw io_error(detail::cat(path, ": not a regular file (a directory, named pipe, socket or device); graft reads models and "
                                     "weights from regular files only"));
  }
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

/// Sniff a file's kind by its first bytes (HDF5 superblock may follow a user block of 512 * 2^k).
/// Throws io_error for anything but a regular file.
inline FileKind sniff(const std::string& path) {
  int fd = open_regular(path);
  if (fd < 0) return FileKind::missing;
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  auto read_at = [&](std::uint64_t off, char* out, std::size_t n) -> std::size_t {
    std::size_t got = 0;
    while (got < n) {
      ssize_t r = ::pread(fd, out + got, n - got, static_cast<off_t>(off + got));
      if (r <= 0) break;
      got += static_cast<std::size_t>(r);
    }
    return got;
  };
  char head[64] = {0};
  std::size_t got = read_at(0, head, sizeof head);
  if (got == 0) return FileKind::empty;
  static const char sig[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};
  if (got >= 8 && std::memcmp(head, sig, 8) == 0) return FileKind::hdf5;
  if (got >= 4 && std::memcmp(head, "PK\x03\x04", 4) == 0) return FileKind::zip;
  const char* lfs = "version https://git-lfs.github.com/spec/";
  if (got >= std::strlen(lfs) && std::memcmp(head, lfs, std::strlen(lfs)) == 0)
    return FileKind::git_lfs_pointer;
  for (std::uint64_t off = 512; off <= (std::uint64_t(1) << 30); off *= 2) {
    char b[8];
    if (read_at(off, b, 8) < 8) break;
    if (std::memcmp(b, sig, 8) == 0) return FileKind::hdf5;
  }
  return FileKind::other;
}

/// Silence HDF5's own error printing once (errors become graft exceptions instead).
inline void quiet() {
  static bool done = [] {
    H5::Exception::dontPrint();
    return true;
  }();
  (void)done;
}

/// Throw a clear error unless `path` is an HDF5 file.
inline void require_hdf5(const std::string& path) {
  switch (sniff(path)) {
    case FileKind::hdf5: return;
    case FileKind::missing: throw io_error(detail::cat(path, ": cannot open the file (missing or unreadable)"));
    case FileKind::empty: throw format_error(detail::cat(path, ": the file is empty, expected an HDF5 (.h5) Keras file"));
    case FileKind::git_lfs_pointer:
      throw format_error(detail::cat(path, ": this is a Git LFS pointer, not the model itself (run `git lfs pull` to fetch the file)"));
    case FileKind::zip:
      throw unsupported_error(detail::cat(path, ": this is a zip archive (a Keras 3 .keras file), not an HDF5 file"));
    default:
      throw format_error(detail::cat(path, ": not an HDF5 file (no HDF5 signature); expected a Keras .h5 file"));
  }
}

class File;
File open_image(const std::string& name, const std::vector<char>& bytes);

/// An open HDF5 file with its path, for messages.
class File {
 public:
  /// Open read-only; `path` must be HDF5 (sniffed first). Its superblock and root group are
  /// validated (hdf5_validate.hpp) before libhdf5 reads them, and every object later reached
  /// through Group before libhdf5 decodes it.
  static File open(const std::string& path) {
    quiet();
    require_hdf5(path);
    File f;
    f.path_ = path;
    int fd = open_regular(path);
    if (fd < 0) throw io_error(detail::cat(path, ": cannot open the file (missing or unreadable)"));
    f.fd_ = std::shared_ptr<int>(new int(fd), [](int* p) {
      ::close(*p);
      delete p;
    });
    struct stat st;
    if (::fstat(fd, &st) != 0) throw io_error(detail::cat(path, ": cannot read the file"));
    f.checker_ = std::make_shared<check::Validator>(check::RawFile::from_fd(path, fd, static_cast<std::uint64_t>(st.st_size)));
    f.checker_->check_file();
    try {
      f.file_ = std::make_shared<H5::H5File>(path, H5F_ACC_RDONLY);
    } catch (const H5::Exception& e) {
      throw format_error(detail::cat(path, ": the HDF5 file cannot be opened (truncated or corrupt?): ", e.getDetailMsg()));
    }
    return f;
  }
  /// Create (truncate) for writing.
  static File create(const std::string& path) {
    quiet();
    File f;
    f.path_ = path;
    f.writable_ = true;
    try {
      f.file_ = std::make_shared<H5::H5File>(path, H5F_ACC_TRUNC);
    } catch (const H5::Exception& e) {
      throw io_error(detail::cat(path, ": cannot create the file: ", e.getDetailMsg()));
    }
    return f;
  }
  const std::string& path() const { return path_; }
  H5::H5File& h5() { return *file_; }
  hid_t id() const { return file_->getId(); }
  void close() {
    if (file_) file_->close();
  }
  /// Size of the file in bytes (of the image, for an in-memory file).
  std::int64_t size_bytes() const {
    hsize_t n = 0;
    if (H5Fget_filesize(id(), &n) < 0) throw io_error(detail::cat(path_, ": cannot read the file size"));
    return static_cast<std::int64_t>(n);
  }
  /// The validator of a file opened for reading (nullptr for a file being written). Files opened
  /// from memory (open_image) get theirs here, read through libhdf5's own image.
  check::Validator* checker() {
    if (writable_ || !file_) return nullptr;
    if (!checker_) {
      auto raw = check::RawFile::from_hdf5(path_, id());
      if (!raw) throw unsupported_error(detail::cat(path_, ": opened through a file driver graft cannot validate"));
      checker_ = std::make_shared<check::Validator>(raw);
      checker_->check_file();
    }
    return checker_.get();
  }

 private:
  friend File open_image(const std::string& name, const std::vector<char>& bytes);
  std::string path_;
  std::shared_ptr<H5::H5File> file_;
  std::shared_ptr<int> fd_;  ///< graft's own descriptor, for validation reads
  std::shared_ptr<check::Validator> checker_;
  bool writable_ = false;
};

/// Validate an in-memory HDF5 image (a .keras member) before it is opened: superblock and root.
inline void check_image(const std::string& name, const std::vector<char>& bytes) {
  check::Validator v(check::RawFile::from_memory(name, reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
  v.check_file();
}

/// A group (or the root) of a file, with its path, for messages.
class Group {
 public:
  Group() = default;
  Group(File& f, H5::Group g, std::string path) : file_(&f), g_(std::move(g)), path_(std::move(path)) {}
  static Group root(File& f) {
    f.checker();  // superblock and root group validated (done at open for files on disk)
    try {
      return Group(f, f.h5().openGroup("/"), "/");
    } catch (const H5::Exception& e) {
      throw format_error(detail::cat(f.path(), ": cannot read the root group: ", e.getDetailMsg()));
    }
  }
  const std::string& path() const { return path_; }
  const std::string& file() const { return file_->path(); }
  File& file_ref() { return *file_; }
  H5::Group& h5() { return g_; }
  hid_t id() const { return g_.getId(); }
  std::string where(const std::string& child = {}) const {
    std::string p = child.empty() ? path_ : join(path_, child);
    return detail::cat(file_->path(), ": ", p);
  }
  static std::string join(const std::string& a, const std::string& b) {
    if (a.empty() || a == "/") return "/" + b;
    return a + "/" + b;
  }

  /// Whether a direct child link `name` exists (no slashes).
  bool has_child(const std::string& name) const {
    if (name.empty() || name.find('/') != std::string::npos) return false;
    htri_t r = H5Lexists(id(), name.c_str(), H5P_DEFAULT);
    return r > 0;
  }
  /// Kind of object at a relative path, refusing soft/external links on the way.
  enum class Kind { none, group, dataset, other };
  Kind kind(const std::string& rel) const {
    std::string cur;
    size_t start = 0;
    while (true) {
      size_t slash = rel.find('/', start);
      std::string comp = rel.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
      if (comp.empty() || comp == "." || comp == "..")
        throw format_error(detail::cat(where(rel), ": invalid path component in '", rel, "'"));
      cur = cur.empty() ? comp : cur + "/" + comp;
      htri_t ex = H5Lexists(id(), cur.c_str(), H5P_DEFAULT);
      if (ex <= 0) return Kind::none;
      H5L_info_t li;
      if (H5Lget_info(id(), cur.c_str(), &li, H5P_DEFAULT) < 0)
        throw format_error(detail::cat(where(cur), ": unreadable link"));
      if (li.type != H5L_TYPE_HARD)
        throw format_error(detail::cat(where(cur), ": soft or external links are not allowed in a model file"));
      // the object's header (and a group's B-tree and heap) before libhdf5 decodes them
      if (check::Validator* v = file_->checker()) {
#if H5_VERSION_GE(1, 12, 0)
        haddr_t addr = HADDR_UNDEF;
        if (H5VLnative_token_to_addr(file_->id(), li.u.token, &addr) < 0)
          throw format_error(detail::cat(where(cur), ": unreadable link"));
#else
        haddr_t addr = li.u.address;
#endif
        v->check_object(addr, join(path_, cur));
      }
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
    H5O_info_t oi;
#if H5_VERSION_GE(1, 12, 0)
    if (H5Oget_info_by_name3(id(), rel.c_str(), &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0)
#else
    if (H5Oget_info_by_name2(id(), rel.c_str(), &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0)
#endif
      throw format_error(detail::cat(where(rel), ": unreadable object"));
    if (oi.type == H5O_TYPE_GROUP) return Kind::group;
    if (oi.type == H5O_TYPE_DATASET) return Kind::dataset;
    return Kind::other;
  }
  Group group(const std::string& rel) {
    Kind k = kind(rel);
    if (k == Kind::none) throw format_error(detail::cat(where(rel), ": group not found"));
    if (k != Kind::group) throw format_error(detail::cat(where(rel), ": expected a group"));
    try {
      return Group(*file_, g_.openGroup(rel), join(path_, rel));
    } catch (const H5::Exception& e) {
      throw format_error(detail::cat(where(rel), ": cannot open group: ", e.getDetailMsg()));
    }
  }
  /// Names of the direct children (sorted as HDF5 stores them).
  std::vector<std::string> children() const {
    std::vector<std::string> r;
    hsize_t n = 0;
    if (H5Gget_num_objs(id(), &n) < 0) throw format_error(detail::cat(where(), ": cannot list the group"));
    if (n > 1000000) throw format_error(detail::cat(where(), ": implausibly many children (", n, ")"));
    for (hsize_t i = 0; i < n; ++i) {
      ssize_t len = H5Gget_objname_by_idx(id(), i, nullptr, 0);
      if (len < 0) throw format_error(detail::cat(where(), ": cannot read a child name"));
      std::string s(static_cast<size_t>(len) + 1, '\0');
      H5Gget_objname_by_idx(id(), i, &s[0], s.size());
      s.resize(static_cast<size_t>(len));
      r.push_back(s);
    }
    return r;
  }

  // ---- attributes ----------------------------------------------------------------------------
  bool has_attr(const std::string& name) const { return H5Aexists(id(), name.c_str()) > 0; }
  std::vector<std::string> attr_names() const {
    std::vector<std::string> r;
    H5O_info_t oi;
#if H5_VERSION_GE(1, 12, 0)
    if (H5Oget_info3(id(), &oi, H5O_INFO_NUM_ATTRS) < 0) return r;
#else
    if (H5Oget_info2(id(), &oi, H5O_INFO_NUM_ATTRS) < 0) return r;
#endif
    for (hsize_t i = 0; i < oi.num_attrs && i < 100000; ++i) {
      ssize_t len = H5Aget_name_by_idx(id(), ".", H5_INDEX_CRT_ORDER, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
      if (len < 0) len = H5Aget_name_by_idx(id(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
      if (len < 0) continue;
      std::string s(static_cast<size_t>(len) + 1, '\0');
      if (H5Aget_name_by_idx(id(), ".", H5_INDEX_NAME, H5_ITER_INC, i, &s[0], s.size(), H5P_DEFAULT) < 0) continue;
      s.resize(static_cast<size_t>(len));
      r.push_back(s);
    }
    return r;
  }

  /// A string attribute (scalar or 1-element array; vlen or fixed; ASCII or UTF-8).
  std::string string_attr(const std::string& name) const {
    auto v = strings_attr_raw(name, true);
    if (v.size() != 1) throw format_error(detail::cat(where(), ": attribute '", name, "' should hold one string"));
    return v[0];
  }
  /// A list-of-strings attribute, following Keras' chunking (name0, name1, ...). A zero-length
  /// non-string attribute (what Keras writes for "no weights") is an empty list.
  std::vector<std::string> strings_attr(const std::string& name) const {
    if (has_attr(name)) return strings_attr_raw(name, false);
    std::vector<std::string> r;
    for (int i = 0; has_attr(name + std::to_string(i)); ++i) {
      auto part = strings_attr_raw(name + std::to_string(i), false);
      r.insert(r.end(), part.begin(), part.end());
      if (i > 100000) break;
    }
    return r;
  }
  bool has_strings_attr(const std::string& name) const { return has_attr(name) || has_attr(name + "0"); }

  // ---- writing ---------------------------------------------------------------------------------
  Group create_group(const std::string& name) {
    try {
      return Group(*file_, g_.createGroup(name), join(path_, name));
    } catch (const H5::Exception& e) {
      throw io_error(detail::cat(where(name), ": cannot create group: ", e.getDetailMsg()));
    }
  }
  /// Create intermediate groups for a path "a/b/c" and return the last.
  Group create_groups(const std::string& rel) {
    Group g = *this;
    size_t start = 0;
    while (start < rel.size()) {
      size_t slash = rel.find('/', start);
      std::string comp = rel.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
      if (comp.empty()) throw value_error(detail::cat(where(rel), ": empty path component"));
      g = g.has_child(comp) ? g.group(comp) : g.create_group(comp);
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
    return g;
  }
  /// Scalar variable-length string attribute.
  void write_string_attr(const std::string& name, const std::string& value, bool utf8 = false) {
    try {
      H5::StrType st(H5::PredType::C_S1, H5T_VARIABLE);
      st.setCset(utf8 ? H5T_CSET_UTF8 : H5T_CSET_ASCII);
      H5::Attribute a = g_.createAttribute(name, st, H5::DataSpace(H5S_SCALAR));
      a.write(st, value);
    } catch (const H5::Exception& e) {
      throw io_error(detail::cat(where(), ": cannot write attribute '", name, "': ", e.getDetailMsg()));
    }
  }
  /// 1-D list of variable-length strings; empty lists become Keras' empty float64 array; lists
  /// larger than HDF5's object-header limit are split into name0, name1, ... as Keras does.
  void write_strings_attr(const std::string& name, const std::vector<std::string>& values) {
    try {
      if (values.empty()) {
        hsize_t dims[1] = {0};
        H5::DataSpace sp(1, dims);
        g_.createAttribute(name, H5::PredType::IEEE_F64LE, sp);
        return;
      }
      const size_t per_chunk = 2000;  // 16-byte heap references: far below the 64 KiB header limit
      size_t chunks = (values.size() + per_chunk - 1) / per_chunk;
      for (size_t c = 0; c < chunks; ++c) {
        size_t b = c * per_chunk, e = std::min(values.size(), b + per_chunk);
        std::vector<const char*> ptrs;
        for (size_t i = b; i < e; ++i) ptrs.push_back(values[i].c_str());
        hsize_t dims[1] = {ptrs.size()};
        H5::DataSpace sp(1, dims);
        H5::StrType st(H5::PredType::C_S1, H5T_VARIABLE);
        st.setCset(H5T_CSET_ASCII);
        std::string an = chunks == 1 ? name : name + std::to_string(c);
        H5::Attribute a = g_.createAttribute(an, st, sp);
        a.write(st, ptrs.data());
      }
    } catch (const H5::Exception& e) {
      throw io_error(detail::cat(where(), ": cannot write attribute '", name, "': ", e.getDetailMsg()));
    }
  }

 private:
  std::vector<std::string> strings_attr_raw(const std::string& name, bool allow_scalar) const {
    std::vector<std::string> out;
    try {
      H5::Attribute a = g_.openAttribute(name);
      H5::DataType ft = a.getDataType();
      H5::DataSpace sp = a.getSpace();
      hssize_t n = sp.getSimpleExtentNpoints();
      if (n < 0) throw format_error(detail::cat(where(), ": attribute '", name, "' has an invalid shape"));
      if (ft.getClass() != H5T_STRING) {
        if (n == 0) return out;  // Keras: np.asarray([]) for "no weights"
        throw format_error(detail::cat(where(), ": attribute '", name, "' should hold strings"));
      }
      (void)allow_scalar;
      H5::StrType st = a.getStrType();
      if (st.isVariableStr()) {
        if (static_cast<std::size_t>(n) > kMaxAttributeBytes / 8)
          throw format_error(detail::cat(where(), ": attribute '", name, "' is implausibly large"));
        std::vector<char*> buf(static_cast<size_t>(n), nullptr);
        H5::StrType mt(H5::PredType::C_S1, H5T_VARIABLE);
        mt.setCset(st.getCset());
        a.read(mt, buf.data());
        for (char* p : buf) out.emplace_back(p ? p : "");
        H5Dvlen_reclaim(mt.getId(), sp.getId(), H5P_DEFAULT, buf.data());
      } else {
        size_t sz = st.getSize();
        if (sz == 0 || static_cast<std::size_t>(n) * sz > kMaxAttributeBytes)
          throw format_error(detail::cat(where(), ": attribute '", name, "' is implausibly large"));
        std::vector<char> buf(static_cast<size_t>(n) * sz);
        a.read(st, buf.data());
        for (hssize_t i = 0; i < n; ++i) {
          const char* p = buf.data() + static_cast<size_t>(i) * sz;
          size_t len = 0;
          while (len < sz && p[len] != '\0') ++len;
          std::string s(p, len);
          while (!s.empty() && s.back() == ' ' && st.getStrpad() == H5T_STR_SPACEPAD) s.pop_back();
          out.push_back(s);
        }
      }
    } catch (const H5::Exception& e) {
      throw format_error(detail::cat(where(), ": cannot read attribute '", name, "': ", e.getDetailMsg()));
    }
    return out;
  }

  File* file_ = nullptr;
  H5::Group g_;
  std::string path_;
};

// ---- datasets: one path walk and one open per read -------------------------------------------

/// The dataset at `rel`, reached through Group::kind (links refused, headers validated), and its
/// shape (simple dataspace, dimensions whose product fits 64 bits).
inline H5::DataSet open_dataset(Group& g, const std::string& rel, Shape& shape) {
  Group::Kind k = g.kind(rel);
  if (k == Group::Kind::none) throw format_error(detail::cat(g.where(rel), ": dataset not found"));
  if (k != Group::Kind::dataset) throw format_error(detail::cat(g.where(rel), ": expected a dataset"));
  try {
    H5::DataSet d = g.h5().openDataSet(rel);
    H5::DataSpace sp = d.getSpace();
    int rank = sp.getSimpleExtentNdims();
    if (rank < 0 || rank > 32) throw format_error(detail::cat(g.where(rel), ": unsupported dataspace"));
    std::vector<hsize_t> dims(static_cast<size_t>(rank));
    if (rank) sp.getSimpleExtentDims(dims.data());
    shape.clear();
    std::int64_t n = 1;
    for (hsize_t v : dims) {
      // (a product beyond 64 bits would wrap in every size computed from this shape)
      if (v > static_cast<hsize_t>(INT64_MAX) || !detail::checked_mul(n, static_cast<std::int64_t>(v), &n))
        throw format_error(detail::cat(g.where(rel), ": dataset dimensions beyond 64-bit sizes"));
      shape.push_back(static_cast<Index>(v));
    }
    return d;
  } catch (const H5::Exception& e) {
    throw format_error(detail::cat(g.where(rel), ": cannot read dataset: ", e.getDetailMsg()));
  }
}

/// Read the open dataset `d` (shape `s`, at g/rel) into `out`, resized to `s` once the checks
/// pass (a tensor already of that shape is read into in place). `size_checked`: the caller
/// checked `s` against what it expects, so the stored-bytes bound is not needed.
template <class T>
void read_open_dataset(Group& g, const std::string& rel, H5::DataSet& d, const Shape& s, bool size_checked, Tensor<T>& out) {
  try {
    H5::DSetCreatPropList pl = d.getCreatePlist();
    if (H5Pget_layout(pl.getId()) == H5D_VIRTUAL)
      throw format_error(detail::cat(g.where(rel), ": virtual datasets are not allowed in a model file"));
    if (H5Pget_external_count(pl.getId()) > 0)
      throw format_error(detail::cat(g.where(rel), ": datasets stored in external files are not allowed"));
    H5T_class_t cls = d.getTypeClass();
    if (cls != H5T_FLOAT && cls != H5T_INTEGER)
      throw format_error(detail::cat(g.where(rel), ": expected a numeric dataset"));
    std::size_t n = 1;
    for (Index v : s) {
      if (v > 0 && n > kMaxDatasetElements / static_cast<std::size_t>(v))
        throw format_error(detail::cat(g.where(rel), ": dataset of shape ", shape_str(s), " is too large"));
      n *= static_cast<std::size_t>(v);
    }
    if (n > kMaxDatasetElements) throw format_error(detail::cat(g.where(rel), ": dataset of shape ", shape_str(s), " is too large"));
    if (!size_checked && n > (std::size_t(1) << 24)) {
      hsize_t stored = d.getStorageSize();
      std::size_t elem = d.getDataType().getSize();
      if (static_cast<double>(n) * static_cast<double>(elem) > 1000.0 * static_cast<double>(stored) + 1e6)
        throw format_error(detail::cat(g.where(rel), ": declares ", shape_str(s), " but stores only ", stored,
                                       " bytes (refusing a decompression bomb)"));
    }
    // a compressed chunk must inflate to at most one chunk before libhdf5 inflates it (hdf5_deflate.hpp)
    if (H5Pget_layout(pl.getId()) == H5D_CHUNKED) {
      hsize_t cd[32];
      int cr = H5Pget_chunk(pl.getId(), 32, cd);
      std::size_t chunk_bytes = cr > 0 ? d.getDataType().getSize() : 0;
      for (int i = 0; i < cr; ++i) chunk_bytes *= static_cast<std::size_t>(cd[i]);  // <= 1 GiB (validated)
      deflate::check_compressed_chunks(d.getId(), pl.getId(), chunk_bytes, g.where(rel));
    }
    out.resize(s);  // (no-op for a tensor already of this shape: read in place)
    if (n) d.read(out.data(), std::is_same<T, double>::value ? H5::PredType::NATIVE_DOUBLE : H5::PredType::NATIVE_FLOAT);
  } catch (const H5::Exception& e) {
    throw format_error(detail::cat(g.where(rel), ": cannot read dataset (truncated file?): ", e.getDetailMsg()));
  }
}
/// Shape of a dataset (checked: simple dataspace, no virtual/external storage).
inline Shape dataset_shape(Group& g, const std::string& rel) {
  Shape s;
  open_dataset(g, rel, s);
  return s;
}

/// Read a numeric dataset into `out` (HDF5 converts ints/floats). If `expected` is given, the
/// stored shape must equal it (checked before anything is read); otherwise the size is bounded
/// and compared with the bytes actually stored (no "shape bomb").
template <class T>
void read_dataset_checked(Group& g, const std::string& rel, const Shape* expected, Tensor<T>& out) {
  Shape s;
  H5::DataSet d = open_dataset(g, rel, s);
  if (expected && s != *expected)
    throw shape_error(detail::cat(g.where(rel), ": stored shape ", shape_str(s), " but ", shape_str(*expected), " was expected"));
  read_open_dataset<T>(g, rel, d, s, expected != nullptr, out);
}
/// The same into a new tensor.
template <class T>
Tensor<T> read_dataset(Group& g, const std::string& rel, const Shape* expected = nullptr) {
  Tensor<T> t;
  read_dataset_checked(g, rel, expected, t);
  return t;
}
/// The same into `out` in place: its shape is the one expected.
template <class T>
void read_dataset_into(Group& g, const std::string& rel, Tensor<T>& out) {
  const Shape want = out.shape();
  read_dataset_checked(g, rel, &want, out);
}

/// Read a scalar integer dataset (optimizer iteration counters).
inline long long read_scalar_int(Group& g, const std::string& rel) {
  Shape s = dataset_shape(g, rel);
  if (shape_size(s) != 1) throw shape_error(detail::cat(g.where(rel), ": expected a scalar, got shape ", shape_str(s)));
  try {
    H5::DataSet d = g.h5().openDataSet(rel);
    double v = 0;
    d.read(&v, H5::PredType::NATIVE_DOUBLE);
    return static_cast<long long>(v);
  } catch (const H5::Exception& e) {
    throw format_error(detail::cat(g.where(rel), ": cannot read dataset: ", e.getDetailMsg()));
  }
}

/// Write a float32 dataset (Keras stores weights as float32) at a path relative to g, creating
/// intermediate groups.
template <class T>
void write_dataset(Group& g, const std::string& rel, const Tensor<T>& t) {
  if (rel.empty() || rel.front() == '/' || rel.back() == '/' || rel.find("//") != std::string::npos)
    throw value_error(detail::cat(g.where(rel), ": invalid dataset path (empty component); Keras rejects such files"));
  size_t slash = rel.rfind('/');
  Group parent = slash == std::string::npos ? g : g.create_groups(rel.substr(0, slash));
  std::string leaf = slash == std::string::npos ? rel : rel.substr(slash + 1);
  if (leaf.empty()) throw value_error(detail::cat(g.where(rel), ": empty dataset name"));
  try {
    std::vector<hsize_t> dims;
    for (Index d : t.shape()) dims.push_back(static_cast<hsize_t>(d));
    H5::DataSpace sp = dims.empty() ? H5::DataSpace(H5S_SCALAR) : H5::DataSpace(static_cast<int>(dims.size()), dims.data());
    H5::DataSet d = parent.h5().createDataSet(leaf, H5::PredType::IEEE_F32LE, sp);
    std::vector<float> buf(t.begin(), t.end());
    if (!buf.empty()) d.write(buf.data(), H5::PredType::NATIVE_FLOAT);
  } catch (const H5::Exception& e) {
    throw io_error(detail::cat(g.where(rel), ": cannot write dataset: ", e.getDetailMsg()));
  }
}

/// Write a scalar int64 dataset.
inline void write_scalar_int(Group& g, const std::string& rel, long long v) {
  size_t slash = rel.rfind('/');
  Group parent = slash == std::string::npos ? g : g.create_groups(rel.substr(0, slash));
  std::string leaf = slash == std::string::npos ? rel : rel.substr(slash + 1);
  try {
    H5::DataSet d = parent.h5().createDataSet(leaf, H5::PredType::STD_I64LE, H5::DataSpace(H5S_SCALAR));
    std::int64_t x = v;
    d.write(&x, H5::PredType::NATIVE_INT64);
  } catch (const H5::Exception& e) {
    throw io_error(detail::cat(g.where(rel), ": cannot write dataset: ", e.getDetailMsg()));
  }
}

}  // namespace h5
}  // namespace graft
