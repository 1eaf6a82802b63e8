// graft — Keras 3 `.keras` archives: a zip holding config.json (the native model config, with its
// compile_config) and model.weights.h5 (Keras 3 weights layout). A small, bounded zip reader over
// zlib (stored and deflated entries, CRC checked, no zip64, no zip bombs); the HDF5 member is
// opened from memory.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "graft/core/errors.hpp"
#include "graft/io/hdf5.hpp"

namespace graft {
namespace zip {

/// Largest member graft will inflate, and the largest inflation ratio it accepts.
constexpr std::uint64_t kMaxMemberBytes = std::uint64_t(4) << 30;
constexpr std::uint64_t kMaxRatio = 1000;

struct Entry {
  std::string name;
  std::uint16_t method = 0;
  std::uint32_t crc = 0;
  std::uint64_t compressed = 0, size = 0, local_offset = 0;
};

class Archive {
 public:
  explicit Archive(const std::string& path) : path_(path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw io_error(detail::cat(path, ": cannot open the file"));
    data_.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    parse();
  }
  const std::string& path() const { return path_; }
  const std::vector<Entry>& entries() const { return entries_; }
  bool has(const std::string& name) const { return find(name) != nullptr; }

  /// The uncompressed bytes of a member (format_error when absent, corrupt or oversized).
  std::vector<char> read(const std::string& name) const {
    const Entry* e = find(name);
    if (!e) throw format_error(detail::cat(path_, ": the archive has no '", name, "'"));
    if (e->size > kMaxMemberBytes || e->size > kMaxRatio * e->compressed + (1u << 20))
      throw format_error(detail::cat(path_, ": member '", name, "' declares ", e->size,
                                     " bytes from ", e->compressed, " compressed (refusing a zip bomb)"));
    std::uint64_t lo = e->local_offset;
    if (lo + 30 > data_.size() || u32(lo) != 0x04034b50u)
      throw format_error(detail::cat(path_, ": corrupt local header for '", name, "'"));
    std::uint64_t start = lo + 30 + u16(lo + 26) + u16(lo + 28);
    if (start + e->compressed > data_.size())
      throw format_error(detail::cat(path_, ": member '", name, "' is truncated"));
    std::vector<char> out(static_cast<size_t>(e->size));
    const unsigned char* src = reinterpret_cast<const unsigned char*>(data_.data() + start);
    if (e->method == 0) {
      if (e->compressed != e->size) throw format_error(detail::cat(path_, ": stored member '", name, "' has inconsistent sizes"));
      std::memcpy(out.data(), src, out.size());
    } else if (e->method == 8) {
      z_stream zs;
      std::memset(&zs, 0, sizeof zs);
      if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) throw format_error(detail::cat(path_, ": zlib initialisation failed"));
      zs.next_in = const_cast<unsigned char*>(src);
      zs.avail_in = static_cast<uInt>(e->compressed);
      zs.next_out = reinterpret_cast<unsigned char*>(out.data());
      zs.avail_out = static_cast<uInt>(out.size());
      int rc = inflate(&zs, Z_FINISH);
      std::uint64_t produced = zs.total_out;
      inflateEnd(&zs);
      if (rc != Z_STREAM_END || produced != e->size)
        throw format_error(detail::cat(path_, ": member '", name, "' does not inflate to its declared size (corrupt archive)"));
    } else {
      throw unsupported_error(detail::cat(path_, ": member '", name, "' uses zip compression method ", e->method,
                                          " (only stored and deflated are supported)"));
    }
    std::uint32_t crc = static_cast<std::uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(out.data()), static_cast<uInt>(out.size())));
    if (crc != e->crc) throw format_error(detail::cat(path_, ": member '", name, "' fails its CRC check (corrupt archive)"));
    return out;
  }

 private:
  std::uint16_t u16(std::uint64_t o) const {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(data_.data() + o);
    return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
  }
  std::uint32_t u32(std::uint64_t o) const {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(data_.data() + o);
    return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
           (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
  }
  const Entry* find(const std::string& name) const {
    for (const auto& e : entries_)
      if (e.name == name) return &e;
    return nullptr;
  }
  void parse() {
    const std::uint64_t n = data_.size();
    if (n < 22) throw format_error(detail::cat(path_, ": zip archive too short"));
    // End of central directory: the last 0x06054b50 within the final 64 KiB + 22 bytes.
    std::uint64_t eocd = n;
    std::uint64_t lowest = n > 65557 ? n - 65557 : 0;
    for (std::uint64_t o = n - 22 + 1; o-- > lowest;)
      if (u32(o) == 0x06054b50u) {
        eocd = o;
        break;
      }
    if (eocd == n) throw format_error(detail::cat(path_, ": not a readable zip archive (no end of central directory; truncated?)"));
    std::uint64_t count = u16(eocd + 10), cd_size = u32(eocd + 12), cd_off = u32(eocd + 16);
    if (count == 0xFFFF || cd_off == 0xFFFFFFFFu)
      throw unsupported_error(detail::cat(path_, ": zip64 archives are not supported"));
    if (cd_off + cd_size > n) throw format_error(detail::cat(path_, ": zip central directory lies outside the file (truncated?)"));
    std::uint64_t o = cd_off;
    for (std::uint64_t i = 0; i < count; ++i) {
      if (o + 46 > n || u32(o) != 0x02014b50u) throw format_error(detail::cat(path_, ": corrupt zip central directory"));
      Entry e;
      e.method = u16(o + 10);
      e.crc = u32(o + 16);
      e.compressed = u32(o + 20);
      e.size = u32(o + 24);
      std::uint64_t name_len = u16(o + 28), extra = u16(o + 30), comment = u16(o + 32);
      e.local_offset = u32(o + 42);
      if (o + 46 + name_len > n) throw format_error(detail::cat(path_, ": corrupt zip central directory"));
      e.name.assign(data_.data() + o + 46, static_cast<size_t>(name_len));
      if (e.compressed == 0xFFFFFFFFu || e.size == 0xFFFFFFFFu || e.local_offset == 0xFFFFFFFFu)
        throw unsupported_error(detail::cat(path_, ": zip64 members are not supported"));
      entries_.push_back(e);
      o += 46 + name_len + extra + comment;
    }
  }

  std::string path_;
  std::vector<char> data_;
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
