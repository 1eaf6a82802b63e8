// graft — reading Keras 3 `.keras` archives: a zip holding config.json (the native model config,
// with its compile_config), metadata.json and model.weights.h5 (Keras 3 weights layout), read
// through libzip (Debian libzip-dev). The archive is checked before any member is inflated:
// entry names that could escape a folder, duplicate names, encrypted entries and members whose
// declared size exceeds graft::limits().max_zip_member_bytes or a plausible compression ratio
// are refused; a member must inflate to exactly its declared size and pass its CRC. The HDF5
// member is opened from memory.
#pragma once

#include <zip.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/stat.h>
#endif

#include "graft/core/errors.hpp"
#include "graft/core/limits.hpp"
#include "graft/io/hdf5.hpp"

namespace graft {
namespace zip {

/// Largest inflation ratio graft accepts for a member (deflate's own maximum is about 1032:1),
/// with kRatioSlack bytes allowed on top so that tiny members are never refused.
constexpr std::uint64_t kMaxRatio = 1100;
constexpr std::uint64_t kRatioSlack = std::uint64_t(1) << 20;

/// A member as the central directory declares it.
struct Entry {
  std::string name;
  std::uint64_t index = 0;      ///< libzip's index
  std::uint16_t method = 0;     ///< zip compression method (0 stored, 8 deflated, ...)
  std::uint32_t crc = 0;
  std::uint64_t compressed = 0, size = 0;
};

/// Why `name` is not a safe member name ("" when it is): absolute paths, drive letters,
/// backslashes, ".." components and control characters are what path-traversal archives use.
inline std::string unsafe_name_reason(const std::string& name) {
  if (name.empty()) return "an empty name";
  if (name[0] == '/') return "an absolute path";
  if (name.size() >= 2 && name[1] == ':') return "a drive letter";
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) return "a control character";
    if (c == '\\') return "a backslash";
  }
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string::npos) end = name.size();
    if (name.compare(start, end - start, "..") == 0 && end - start == 2) return "a '..' component";
    start = end + 1;
  }
  return {};
}

/// A .keras (zip) archive open for reading. Not thread-safe (one libzip handle).
class Archive {
 public:
  explicit Archive(const std::string& path) : path_(path) {
    int err = 0;
    zip_t* z = zip_open(path.c_str(), ZIP_RDONLY, &err);
    if (!z) {
      zip_error_t e;
      zip_error_init_with_code(&e, err);
      const std::string why = zip_error_strerror(&e);
      zip_error_fini(&e);
      if (err == ZIP_ER_NOENT || err == ZIP_ER_OPEN || err == ZIP_ER_READ || err == ZIP_ER_MEMORY)
        throw io_error(detail::cat(path, ": cannot open the zip archive: ", why));
      throw format_error(detail::cat(path, ": not a readable zip archive (", why, "; truncated or damaged?)"));
    }
    z_.reset(z);
    file_bytes_ = file_size(path);
    const zip_int64_t n = zip_get_num_entries(z, 0);
    if (n < 0) throw format_error(detail::cat(path, ": corrupt zip central directory"));
    std::set<std::string> seen;
    for (zip_int64_t i = 0; i < n; ++i) {
      zip_stat_t st;
      zip_stat_init(&st);
      if (zip_stat_index(z, static_cast<zip_uint64_t>(i), ZIP_FL_ENC_RAW, &st) != 0 || !(st.valid & ZIP_STAT_NAME))
        throw format_error(detail::cat(path, ": corrupt zip central directory (entry ", i, ": ", zip_strerror(z), ")"));
      const std::uint64_t need = ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD | ZIP_STAT_CRC;
      Entry e;
      e.name = st.name;
      e.index = static_cast<std::uint64_t>(i);
      if ((st.valid & need) != need)
        throw format_error(detail::cat(path, ": zip entry '", e.name, "' lacks its sizes, method or CRC"));
      e.method = st.comp_method;
      e.crc = st.crc;
      e.compressed = st.comp_size;
      e.size = st.size;
      const std::string why = unsafe_name_reason(e.name);
      if (!why.empty())
        throw format_error(detail::cat(path, ": zip entry '", printable(e.name), "' has ", why,
                                       " (refusing a path-traversal archive)"));
      if ((st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE)
        throw unsupported_error(detail::cat(path, ": zip entry '", e.name, "' is encrypted; graft reads unencrypted .keras archives only"));
      if (!seen.insert(e.name).second)
        throw format_error(detail::cat(path, ": the zip archive has two entries named '", e.name,
                                       "' (refusing an ambiguous archive)"));
      entries_.push_back(e);
    }
  }

  const std::string& path() const { return path_; }
  const std::vector<Entry>& entries() const { return entries_; }
  bool has(const std::string& name) const { return find(name) != nullptr; }

  /// The uncompressed bytes of a member: format_error when absent, oversized (limit or ratio:
  /// checked before anything is allocated), truncated, longer or shorter than declared, or
  /// failing its CRC; unsupported_error for compression methods libzip cannot read.
  std::vector<char> read(const std::string& name) const {
    const Entry* e = find(name);
    if (!e) throw format_error(detail::cat(path_, ": the archive has no '", name, "'"));
    const std::int64_t lim = limits().max_zip_member_bytes;
    if (e->size > static_cast<std::uint64_t>(lim))
      throw format_error(detail::cat(path_, ": member '", name, "' declares ", e->size, " uncompressed bytes, ",
                                     detail::limit_hint("max_zip_member_bytes", lim)));
    if (e->size / kMaxRatio > e->compressed + kRatioSlack / kMaxRatio)
      throw format_error(detail::cat(path_, ": member '", name, "' declares ", e->size, " bytes from ", e->compressed,
                                     " compressed, a ratio over ", kMaxRatio, ":1 (refusing a zip bomb)"));
    if (file_bytes_ > 0 && e->compressed > file_bytes_)
      throw format_error(detail::cat(path_, ": member '", name, "' declares ", e->compressed,
                                     " compressed bytes in a file of ", file_bytes_, " (truncated or corrupt zip)"));
    if (e->method != ZIP_CM_STORE && !zip_compression_method_supported(static_cast<zip_int32_t>(e->method), 0))
      throw unsupported_error(detail::cat(path_, ": member '", name, "' uses zip compression method ", e->method,
                                          ", which this libzip cannot inflate (Keras stores its members uncompressed)"));
    zip_file_t* f = zip_fopen_index(z_.get(), e->index, 0);
    if (!f) fail(name, zip_get_error(z_.get()), "cannot be opened");
    std::unique_ptr<zip_file_t, FileCloser> guard(f);
    std::vector<char> out(static_cast<size_t>(e->size));
    std::uint64_t got = 0;
    while (got < e->size) {
      const zip_int64_t r = zip_fread(f, out.data() + got, e->size - got);
      if (r < 0) fail(name, zip_file_get_error(f), "cannot be read");
      if (r == 0) break;
      got += static_cast<std::uint64_t>(r);
    }
    if (got != e->size)
      throw format_error(detail::cat(path_, ": member '", name, "' inflates to ", got, " bytes, not its declared ", e->size,
                                     " (truncated or corrupt zip)"));
    char extra;  // reading past the declared end checks the CRC and catches members longer than declared
    const zip_int64_t r = zip_fread(f, &extra, 1);
    if (r < 0) fail(name, zip_file_get_error(f), "cannot be read");
    if (r > 0)
      throw format_error(detail::cat(path_, ": member '", name, "' inflates to more than its declared ", e->size,
                                     " bytes (corrupt zip or zip bomb)"));
    return out;
  }

 private:
  struct ZipCloser {
    void operator()(zip_t* z) const { zip_discard(z); }
  };
  struct FileCloser {
    void operator()(zip_file_t* f) const { zip_fclose(f); }
  };

  [[noreturn]] void fail(const std::string& name, zip_error_t* err, const char* what) const {
    const int code = err ? zip_error_code_zip(err) : ZIP_ER_INTERNAL;
    const std::string why = err ? zip_error_strerror(err) : "unknown error";
    if (code == ZIP_ER_CRC)
      throw format_error(detail::cat(path_, ": member '", name, "' fails its CRC check (corrupt archive)"));
    if (code == ZIP_ER_COMPNOTSUPP || code == ZIP_ER_ENCRNOTSUPP)
      throw unsupported_error(detail::cat(path_, ": member '", name, "' ", what, ": ", why));
    throw format_error(detail::cat(path_, ": member '", name, "' ", what, " (corrupt zip?): ", why));
  }

  static std::uint64_t file_size(const std::string& path) {
#if defined(__unix__) || defined(__APPLE__)
    struct stat s;
    if (::stat(path.c_str(), &s) == 0 && S_ISREG(s.st_mode)) return static_cast<std::uint64_t>(s.st_size);
#endif
    return 0;  // unknown: the other bounds still apply
  }

  /// `s` with control characters escaped, for messages.
  static std::string printable(const std::string& s) {
    std::string r;
    for (unsigned char c : s) {
      if (c < 0x20 || c == 0x7f) r += detail::cat("\\x", "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15]);
      else r += static_cast<char>(c);
    }
    return r;
  }

  const Entry* find(const std::string& name) const {
    for (const auto& e : entries_)
      if (e.name == name) return &e;
    return nullptr;
  }

  std::string path_;
  std::unique_ptr<zip_t, ZipCloser> z_;
  std::uint64_t file_bytes_ = 0;
  std::vector<Entry> entries_;
};

}  // namespace zip

namespace h5 {
/// Open an in-memory HDF5 image (a member of a .keras archive); `name` is used in messages.
inline File open_image(const std::string& name, const std::vector<char>& bytes) {
  quiet();
  static const char sig[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};
  if (bytes.size() < 8 || std::memcmp(bytes.data(), sig, 8) != 0)
    throw format_error(detail::cat(name, ": not an HDF5 file"));
  File f;
  f.path_ = name;
  try {
    H5::FileAccPropList fapl;
    if (H5Pset_fapl_core(fapl.getId(), 1 << 20, 0) < 0 ||
        H5Pset_file_image(fapl.getId(), const_cast<char*>(bytes.data()), bytes.size()) < 0)
      throw format_error(detail::cat(name, ": cannot prepare the in-memory HDF5 image"));
    f.file_ = std::make_shared<H5::H5File>(name, H5F_ACC_RDONLY, H5::FileCreatPropList::DEFAULT, fapl);
  } catch (const H5::Exception& e) {
    throw format_error(detail::cat(name, ": the HDF5 member cannot be opened (corrupt?): ", e.getDetailMsg()));
  }
  return f;
}
}  // namespace h5

}  // namespace graft
