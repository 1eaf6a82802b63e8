// graft — structural validation of an HDF5 file's metadata before libhdf5 decodes it.
//
// libhdf5 (1.10.x, what Debian and Ubuntu ship) trusts the sizes and offsets stored in a file when
// it decodes object headers, attribute messages, datatypes, dataspaces, group B-trees, local heaps
// and global heap collections: a corrupt or hostile file makes it read out of bounds, loop forever
// or crash (H5Aexists on a corrupt attribute message, H5Aread of a variable-length string whose
// global heap collection is damaged, ...). graft never hands libhdf5 a structure it has not
// checked first: the superblock and the root group before H5Fopen, then every object's header
// (all its messages, the attribute messages in full), the group B-tree and local heap of every
// group and the global heap collections variable-length string attributes point into, before the
// first libhdf5 call that touches them. The checks follow the HDF5 file format specification
// (version 3.0) and are stricter than the format where Keras files never go (shared or dense
// attribute storage are refused with a clear error instead of being validated).
//
// RawFile reads the file's bytes (from a path, from memory, or through libhdf5's own file handle);
// Validator walks the structures and throws format_error naming the file, the structure and what
// is wrong.
#pragma once

#include <H5Cpp.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

#include "graft/core/errors.hpp"
#include "graft/core/limits.hpp"

namespace graft {
namespace h5 {
namespace check {

/// The bytes of an HDF5 file, read by absolute offset.
class RawFile {
 public:
  using Reader = std::function<bool(std::uint64_t offset, std::size_t n, std::uint8_t* out)>;
  RawFile(std::string name, std::uint64_t size, Reader read) : name_(std::move(name)), size_(size), read_(std::move(read)) {}

  /// A file on disk (read with pread).
  static std::shared_ptr<RawFile> from_fd(std::string name, int fd, std::uint64_t size) {
    return std::make_shared<RawFile>(std::move(name), size, [fd](std::uint64_t off, std::size_t n, std::uint8_t* out) {
      std::size_t got = 0;
      while (got < n) {
        ssize_t r = ::pread(fd, out + got, n - got, static_cast<off_t>(off + got));
        if (r <= 0) return false;
        got += static_cast<std::size_t>(r);
      }
      return true;
    });
  }
  /// Bytes in memory (they must outlive the RawFile).
  static std::shared_ptr<RawFile> from_memory(std::string name, const std::uint8_t* data, std::uint64_t size) {
    return std::make_shared<RawFile>(std::move(name), size, [data](std::uint64_t off, std::size_t n, std::uint8_t* out) {
      std::memcpy(out, data + off, n);
      return true;
    });
  }
  /// The file libhdf5 has open (its sec2 file descriptor or its core driver's memory image);
  /// nullptr for other drivers.
  static std::shared_ptr<RawFile> from_hdf5(const std::string& name, hid_t file) {
    hsize_t size = 0;
    if (H5Fget_filesize(file, &size) < 0) return nullptr;
    hid_t fapl = H5Fget_access_plist(file);
    if (fapl < 0) return nullptr;
    hid_t driver = H5Pget_driver(fapl);
    H5Pclose(fapl);
    void* handle = nullptr;
    if (H5Fget_vfd_handle(file, H5P_DEFAULT, &handle) < 0 || !handle) return nullptr;
    if (driver == H5FD_SEC2) return from_fd(name, *static_cast<int*>(handle), size);
    if (driver == H5FD_CORE) {
      const std::uint8_t* mem = *static_cast<std::uint8_t**>(handle);
      return mem ? from_memory(name, mem, size) : nullptr;
    }
    return nullptr;
  }

  const std::string& name() const { return name_; }
  std::uint64_t size() const { return size_; }
  /// n bytes at absolute offset `off`; false when they are not all in the file.
  bool read(std::uint64_t off, std::size_t n, std::vector<std::uint8_t>& out) const {
    if (off > size_ || n > size_ - off) return false;
    out.resize(n);
    return n == 0 || read_(off, n, out.data());
  }

 private:
  std::string name_;
  std::uint64_t size_;
  Reader read_;
};

/// Little-endian cursor over a byte range that throws instead of reading past its end.
class Cursor {
 public:
  Cursor(const std::uint8_t* p, std::size_t n, const std::string& what) : p_(p), end_(p + n), what_(&what) {}
  std::size_t left() const { return static_cast<std::size_t>(end_ - p_); }
  const std::uint8_t* pos() const { return p_; }
  void need(std::size_t n) const {
    if (n > left()) throw format_error(detail::cat(*what_, ": truncated (", n, " bytes needed, ", left(), " left)"));
  }
  std::uint64_t uint(std::size_t n) {
    need(n);
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v |= static_cast<std::uint64_t>(p_[i]) << (8 * i);
    p_ += n;
    return v;
  }
  std::uint8_t u8() { return static_cast<std::uint8_t>(uint(1)); }
  void skip(std::size_t n) {
    need(n);
    p_ += n;
  }
  /// A NUL-terminated string that must end within `max` bytes (and within the range).
  std::string cstring(std::size_t max) {
    std::size_t lim = max < left() ? max : left();
    const void* z = std::memchr(p_, 0, lim);
    if (!z) throw format_error(detail::cat(*what_, ": unterminated name"));
    std::string s(reinterpret_cast<const char*>(p_), static_cast<const std::uint8_t*>(z) - p_);
    return s;
  }

 private:
  const std::uint8_t* p_;
  const std::uint8_t* end_;
  const std::string* what_;
};

inline std::size_t align8(std::size_t n) { return (n + 7) & ~std::size_t(7); }

/// What validating a datatype tells the caller.
struct TypeInfo {
  std::uint64_t size = 0;      ///< element size in bytes (as stored)
  bool vlen = false;           ///< a variable-length sequence or string at the top level
  std::uint64_t vlen_base = 1; ///< element size of the vlen's base type (1 for strings)
};

/// Walks and checks one file's structures; each object is checked once.
class Validator {
 public:
  explicit Validator(std::shared_ptr<RawFile> raw) : raw_(std::move(raw)) {}

  /// Locate and check the superblock and the root group (before H5Fopen).
  void check_file() {
    if (checked_file_) return;
    read_superblock();
    check_object(root_addr_, "/");
    checked_file_ = true;
  }
  /// Check the object (group or dataset) whose header is at relative address `addr`: its header
  /// and messages, and for a group its B-tree and local heap. `path` names it in errors.
  void check_object(std::uint64_t addr, const std::string& path) {
    if (!superblock_read_) read_superblock();
    if (checked_objects_.count(addr)) return;
    if (checked_objects_.size() > 10000000) throw format_error(where(path) + ": implausibly many objects");
    ObjectHeader oh = read_object_header(addr, path);
    check_messages(oh, path);
    checked_objects_.insert(addr);
  }
  /// Relative address of an object header given as the address HDF5 reports (H5Lget_info).
  std::uint64_t base() const { return base_; }

 private:
  struct Message {
    unsigned type = 0;
    unsigned flags = 0;
    std::vector<std::uint8_t> data;
  };
  struct ObjectHeader {
    unsigned version = 0;
    std::vector<Message> messages;
  };

  std::string where(const std::string& path) const { return detail::cat(raw_->name(), ": ", path); }

  std::vector<std::uint8_t> read_rel(std::uint64_t addr, std::size_t n, const std::string& what) const {
    std::vector<std::uint8_t> b;
    std::uint64_t abs = 0;
    if (__builtin_add_overflow(addr, base_, &abs) || !raw_->read(abs, n, b))
      throw format_error(detail::cat(what, ": ", n, " bytes at address ", addr, " lie outside the file (", raw_->size(),
                                     " bytes; truncated or corrupt)"));
    return b;
  }
  bool undefined(std::uint64_t a) const { return a == addr_undef_; }

  // ---- superblock -----------------------------------------------------------------------------
  void read_superblock() {
    static const std::uint8_t sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    std::uint64_t at = 0;
    std::vector<std::uint8_t> b;
    for (;;) {
      if (raw_->read(at, 8, b) && std::memcmp(b.data(), sig, 8) == 0) break;
      at = at == 0 ? 512 : at * 2;
      if (at >= raw_->size()) throw format_error(raw_->name() + ": no HDF5 superblock");
    }
    const std::string what = raw_->name() + ": superblock";
    std::vector<std::uint8_t> sb;
    std::size_t avail = static_cast<std::size_t>(std::min<std::uint64_t>(raw_->size() - at, 256));
    raw_->read(at, avail, sb);
    Cursor c(sb.data(), sb.size(), what);
    c.skip(8);
    unsigned version = c.u8();
    if (version > 3) throw format_error(detail::cat(what, ": unknown version ", version));
    std::uint64_t base = 0, root = 0, driver_info = 0, extension = 0;
    if (version <= 1) {
      c.skip(3);               // free-space, root symbol table, reserved
      c.skip(1);               // shared header version
      sa_ = c.u8();
      ss_ = c.u8();
      check_sizes(what);
      c.skip(1);
      leaf_k_ = static_cast<unsigned>(c.uint(2));
      internal_k_ = static_cast<unsigned>(c.uint(2));
      c.skip(4);               // file consistency flags
      if (version == 1) {
        chunk_k_ = static_cast<unsigned>(c.uint(2));
        c.skip(2);
        if (chunk_k_ == 0 || chunk_k_ > 32768) throw format_error(detail::cat(what, ": invalid chunk B-tree K ", chunk_k_));
      }
      base = c.uint(sa_);
      c.skip(sa_ * 2);         // free space, end of file
      driver_info = c.uint(sa_);
      // root group symbol table entry: link name offset, object header address, cache type...
      c.skip(ss_);
      root = c.uint(sa_);
      unsigned cache_type = static_cast<unsigned>(c.uint(4));
      c.skip(4);
      if (cache_type == 1) {   // cached B-tree and heap addresses of the root group
        c.need(2 * sa_);
      }
      if (leaf_k_ == 0 || internal_k_ == 0 || leaf_k_ > 32768 || internal_k_ > 32768)
        throw format_error(detail::cat(what, ": invalid B-tree K values (", leaf_k_, ", ", internal_k_, ")"));
    } else {
      sa_ = c.u8();
      ss_ = c.u8();
      check_sizes(what);
      c.skip(1);
      base = c.uint(sa_);
      extension = c.uint(sa_);
      c.skip(sa_);             // end of file
      root = c.uint(sa_);
      c.need(4);
    }
    addr_undef_ = sa_ == 8 ? ~std::uint64_t(0) : (std::uint64_t(1) << (8 * sa_)) - 1;
    // libhdf5 takes the superblock's position as the base address when the two differ
    base_ = at > 0 ? at : base;
    if (base_ > raw_->size()) throw format_error(detail::cat(what, ": base address beyond the end of the file"));
    root_addr_ = root;
    superblock_read_ = true;
    if (version <= 1 && !undefined(driver_info))
      throw unsupported_error(raw_->name() + ": files with a driver information block (family or multi files) are not supported");
    if (version >= 2 && !undefined(extension)) check_object(extension, "(superblock extension)");
  }
  void check_sizes(const std::string& what) {
    if ((sa_ != 2 && sa_ != 4 && sa_ != 8) || (ss_ != 2 && ss_ != 4 && ss_ != 8))
      throw format_error(detail::cat(what, ": invalid address/length sizes ", sa_, "/", ss_));
  }

  // ---- object headers -------------------------------------------------------------------------
  ObjectHeader read_object_header(std::uint64_t addr, const std::string& path) {
    const std::string what = where(path) + ": object header";
    if (undefined(addr)) throw format_error(what + ": undefined address");
    ObjectHeader oh;
    std::vector<std::uint8_t> pre = read_rel(addr, 16, what);
    std::set<std::uint64_t> chunks{addr};
    std::vector<std::pair<std::uint64_t, std::uint64_t>> conts;  // continuation chunks to read
    if (std::memcmp(pre.data(), "OHDR", 4) == 0) {
      oh.version = 2;
      unsigned version = pre[4], flags = pre[5];
      if (version != 2) throw format_error(detail::cat(what, ": unknown version ", version));
      std::size_t p = 6;
      if (flags & 0x20) p += 16;  // times
      if (flags & 0x10) p += 4;   // attribute phase change
      std::size_t szlen = std::size_t(1) << (flags & 3);
      std::vector<std::uint8_t> h = read_rel(addr, p + szlen, what);
      Cursor c(h.data() + p, szlen, what);
      std::uint64_t chunk0 = c.uint(szlen);
      if (chunk0 > (1u << 30)) throw format_error(what + ": implausible chunk size");
      std::vector<std::uint8_t> body = read_rel(addr + p + szlen, static_cast<std::size_t>(chunk0) + 4, what);
      parse_v2_messages(body.data(), static_cast<std::size_t>(chunk0), (flags & 0x04) != 0, oh, conts, what);
      follow_continuations(oh, conts, chunks, (flags & 0x04) != 0, what);
    } else {
      unsigned version = pre[0];
      if (version != 1) throw format_error(detail::cat(what, ": unknown version ", version, " (or no header at this address)"));
      oh.version = 1;
      std::uint64_t chunk0 = pre[8] | (pre[9] << 8) | (std::uint64_t(pre[10]) << 16) | (std::uint64_t(pre[11]) << 24);
      if (chunk0 > (1u << 30)) throw format_error(what + ": implausible chunk size");
      std::vector<std::uint8_t> body = read_rel(addr + 16, static_cast<std::size_t>(chunk0), what);
      parse_v1_messages(body.data(), body.size(), oh, conts, what);
      follow_continuations(oh, conts, chunks, false, what);
    }
    return oh;
  }
  void follow_continuations(ObjectHeader& oh, std::vector<std::pair<std::uint64_t, std::uint64_t>>& conts,
                            std::set<std::uint64_t>& seen, bool crt_order, const std::string& what) {
    for (std::size_t i = 0; i < conts.size(); ++i) {
      auto [a, len] = conts[i];
      if (!seen.insert(a).second) throw format_error(what + ": continuation chunks form a loop");
      if (seen.size() > 4096) throw format_error(what + ": too many continuation chunks");
      if (len > (1u << 30)) throw format_error(what + ": implausible continuation length");
      std::vector<std::uint8_t> b = read_rel(a, static_cast<std::size_t>(len), what);
      if (oh.version == 1) {
        parse_v1_messages(b.data(), b.size(), oh, conts, what);
      } else {
        if (b.size() < 8 || std::memcmp(b.data(), "OCHK", 4) != 0) throw format_error(what + ": continuation chunk without signature");
        parse_v2_messages(b.data() + 4, b.size() - 8, crt_order, oh, conts, what);
      }
    }
  }
  void add_message(ObjectHeader& oh, unsigned type, unsigned flags, const std::uint8_t* p, std::size_t n,
                   std::vector<std::pair<std::uint64_t, std::uint64_t>>& conts, const std::string& what) {
    if (oh.messages.size() > 100000) throw format_error(what + ": too many messages");
    if (type == 0x10) {  // continuation: decoded by libhdf5 while loading the header
      Cursor c(p, n, what);
      std::uint64_t a = c.uint(sa_), len = c.uint(ss_);
      if (undefined(a) || len == 0) throw format_error(what + ": invalid continuation message");
      conts.emplace_back(a, len);
      return;
    }
    oh.messages.push_back({type, flags, std::vector<std::uint8_t>(p, p + n)});
  }
  void parse_v1_messages(const std::uint8_t* p, std::size_t n, ObjectHeader& oh,
                         std::vector<std::pair<std::uint64_t, std::uint64_t>>& conts, const std::string& what) {
    std::size_t i = 0;
    while (i + 8 <= n) {
      unsigned type = p[i] | (p[i + 1] << 8);
      std::size_t size = p[i + 2] | (p[i + 3] << 8);
      unsigned flags = p[i + 4];
      i += 8;
      if (size > n - i) throw format_error(detail::cat(what, ": message of type ", type, " extends past its chunk"));
      if (size % 8) throw format_error(detail::cat(what, ": misaligned message of type ", type));
      add_message(oh, type, flags, p + i, size, conts, what);
      i += size;
    }
    if (i != n) throw format_error(what + ": trailing bytes after the last message");
  }
  void parse_v2_messages(const std::uint8_t* p, std::size_t n, bool crt_order, ObjectHeader& oh,
                         std::vector<std::pair<std::uint64_t, std::uint64_t>>& conts, const std::string& what) {
    const std::size_t hdr = crt_order ? 6 : 4;
    std::size_t i = 0;
    while (i + hdr <= n) {
      unsigned type = p[i];
      std::size_t size = p[i + 1] | (p[i + 2] << 8);
      unsigned flags = p[i + 3];
      i += hdr;
      if (size > n - i) throw format_error(detail::cat(what, ": message of type ", type, " extends past its chunk"));
      add_message(oh, type, flags, p + i, size, conts, what);
      i += size;
    }
  }

  // ---- messages -------------------------------------------------------------------------------
  void check_messages(const ObjectHeader& oh, const std::string& path) {
    const std::string w = where(path);
    const Message* dtype = nullptr;
    const Message* space = nullptr;
    const Message* layout = nullptr;
    std::int64_t fill_size = -1;
    for (const Message& m : oh.messages) {
      const std::string what = detail::cat(w, ": header message of type ", m.type);
      // bit 1: the message lives in the shared message heap (never in Keras files)
      if ((m.flags & 0x02) && m.type != 0x03)
        throw unsupported_error(what + ": shared object header messages are not supported");
      Cursor c(m.data.data(), m.data.size(), what);
      switch (m.type) {
        case 0x01: space = &m; dataspace(c, what); break;
        case 0x03:
          dtype = &m;
          if (m.flags & 0x02) shared_ref(c, what);
          else datatype(c, what, 0);
          break;
        case 0x04: fill_size = fill_old(c, what); break;
        case 0x05: fill_size = fill_new(c, what); break;
        case 0x06: link(c, what); break;
        case 0x02: link_info(c, what); break;
        case 0x07: external_files(c, what); break;
        case 0x08: layout = &m; break;
        case 0x0B: filters(c, what); break;
        case 0x0C: attribute(c, detail::cat(w, ": attribute")); break;
        case 0x11: symbol_table(c, what, path); break;
        case 0x15: attribute_info(c, what); break;
        default: break;
      }
    }
    if (layout) {  // a dataset: its storage must fit what its datatype and dataspace declare
      if (!dtype || !space) throw format_error(w + ": a dataset without datatype or dataspace");
      Cursor dc(dtype->data.data(), dtype->data.size(), w);
      Cursor sc(space->data.data(), space->data.size(), w);
      TypeInfo t = datatype(dc, w, 0);
      unsigned rank = space->data.size() > 1 ? space->data[1] : 0;
      std::uint64_t n = dataspace(sc, w);
      std::uint64_t need = 0;
      if (__builtin_mul_overflow(n, t.size, &need)) throw format_error(w + ": dataset size overflows");
      if (fill_size > 0 && static_cast<std::uint64_t>(fill_size) != t.size)
        throw format_error(detail::cat(w, ": fill value of ", fill_size, " bytes for elements of ", t.size));
      Cursor c(layout->data.data(), layout->data.size(), w + ": layout message");
      data_layout(c, w + ": layout message", need, rank, t.size);
    }
  }

  /// Dataspace message; returns the number of elements.
  std::uint64_t dataspace(Cursor& c, const std::string& what) {
    unsigned version = c.u8();
    unsigned rank = c.u8();
    unsigned flags = c.u8();
    if (version != 1 && version != 2) throw format_error(detail::cat(what, ": dataspace version ", version));
    if (rank > 32) throw format_error(detail::cat(what, ": dataspace of rank ", rank));
    unsigned type = 1;
    if (version == 1) {
      c.skip(5);
      if (rank == 0) type = 0;
    } else {
      type = c.u8();
      if (type > 2) throw format_error(detail::cat(what, ": dataspace type ", type));
    }
    std::uint64_t n = 1;
    bool overflow = false;
    for (unsigned i = 0; i < rank; ++i) {
      std::uint64_t d = c.uint(ss_);
      if (__builtin_mul_overflow(n, d, &n)) overflow = true;
    }
    if (flags & 1) c.skip(std::size_t(rank) * ss_);
    if (version == 1 && (flags & 2)) c.skip(std::size_t(rank) * ss_);
    if (type == 2) return 0;
    if (type == 0) return 1;
    if (overflow) throw format_error(what + ": the dataspace has more than 2^64 elements");
    return n;
  }

  /// A shared message reference (a committed datatype): its target must be a valid object too.
  void shared_ref(Cursor& c, const std::string& what) {
    unsigned version = c.u8();
    unsigned type = c.u8();
    if (version == 1) {
      c.skip(6);
      c.uint(sa_);
    } else if (version == 2 || version == 3) {
      if (type == 1 && version == 3) throw unsupported_error(what + ": messages in the shared message heap are not supported");
      c.uint(sa_);
    } else {
      throw format_error(detail::cat(what, ": shared message version ", version));
    }
    throw unsupported_error(what + ": committed (shared) datatypes are not supported");
  }

  /// Datatype message (recursively for compound, enum, vlen and array members).
  TypeInfo datatype(Cursor& c, const std::string& what, int depth) {
    if (depth > 16) throw format_error(what + ": datatypes nested more than 16 deep");
    unsigned cv = c.u8();
    unsigned cls = cv & 0x0F, version = cv >> 4;
    std::uint32_t bits = static_cast<std::uint32_t>(c.uint(3));
    TypeInfo t;
    t.size = c.uint(4);
    if (version < 1 || version > 4) throw format_error(detail::cat(what, ": datatype version ", version));
    switch (cls) {
      case 0: case 4: case 1: {                    // fixed-point, bitfield, floating-point
        std::uint64_t offset = c.uint(2), precision = c.uint(2);
        if (t.size > 64 || precision == 0 || offset + precision > 8 * t.size)
          throw format_error(detail::cat(what, ": numeric datatype of ", t.size, " bytes with ", precision, " bits at offset ", offset));
        if (cls == 1) {
          std::uint64_t epos = c.u8(), esize = c.u8(), mpos = c.u8(), msize = c.u8();
          c.skip(4);                               // exponent bias
          std::uint64_t sign = (bits >> 8) & 0xFF;
          if (esize == 0 || msize == 0 || esize > 32 || epos + esize > precision || mpos + msize > precision || sign >= precision)
            throw format_error(detail::cat(what, ": floating-point datatype with an invalid bit layout"));
        }
        break;
      }
      case 2: c.skip(2); break;                    // time
      case 3: break;                               // fixed-length string
      case 5: {                                    // opaque: NUL-padded tag
        std::size_t z = bits & 0xFF;
        c.need(z);
        c.skip(z);
        break;
      }
      case 6: {                                    // compound
        unsigned n = bits & 0xFFFF;
        if (n == 0) throw format_error(what + ": compound datatype without members");
        for (unsigned i = 0; i < n; ++i) {
          std::string name = c.cstring(c.left());
          std::size_t nlen = name.size() + 1;
          c.skip(version >= 3 ? nlen : align8(nlen));
          if (version == 1) {
            c.skip(4);                             // byte offset
            c.skip(1 + 3 + 4 + 4 + 16);            // dimensionality, reserved, permutation, reserved, dims
          } else if (version == 2) {
            c.skip(4);
          } else {
            std::size_t ob = t.size < 256 ? 1 : t.size < 65536 ? 2 : t.size < 16777216 ? 3 : 4;
            c.skip(ob);
          }
          datatype(c, what, depth + 1);
        }
        break;
      }
      case 7: if (version >= 4) throw unsupported_error(what + ": version 4 reference datatypes are not supported"); break;
      case 8: {                                    // enumeration: base type, names, values
        unsigned n = bits & 0xFFFF;
        TypeInfo base = datatype(c, what, depth + 1);
        for (unsigned i = 0; i < n; ++i) {
          std::string name = c.cstring(c.left());
          std::size_t nlen = name.size() + 1;
          c.skip(version >= 3 ? nlen : align8(nlen));
        }
        std::uint64_t vb = 0;
        if (__builtin_mul_overflow(base.size, std::uint64_t(n), &vb) || vb > c.left())
          throw format_error(what + ": enumeration values extend past the message");
        c.skip(static_cast<std::size_t>(vb));
        break;
      }
      case 9: {                                    // variable-length sequence or string
        TypeInfo base = datatype(c, what, depth + 1);
        t.vlen = true;
        t.vlen_base = (bits & 0x0F) == 1 ? 1 : base.size;
        if ((bits & 0x0F) > 1) throw format_error(what + ": unknown variable-length type");
        break;
      }
      case 10: {                                   // array
        unsigned rank = c.u8();
        if (rank == 0 || rank > 32) throw format_error(detail::cat(what, ": array datatype of rank ", rank));
        if (version < 3) c.skip(3);
        c.skip(std::size_t(rank) * 4);
        if (version < 3) c.skip(std::size_t(rank) * 4);
        datatype(c, what, depth + 1);
        break;
      }
      default: throw format_error(detail::cat(what, ": unknown datatype class ", cls));
    }
    if (t.size == 0 && cls != 9) throw format_error(what + ": datatype of size 0");
    return t;
  }

  /// Attribute message, as libhdf5 decodes it (name, datatype, dataspace, then the data).
  void attribute(Cursor& c, const std::string& what) {
    unsigned version = c.u8();
    unsigned flags = c.u8();
    if (version < 1 || version > 3) throw format_error(detail::cat(what, ": attribute message version ", version));
    std::size_t name_len = static_cast<std::size_t>(c.uint(2));
    std::size_t dt_len = static_cast<std::size_t>(c.uint(2));
    std::size_t ds_len = static_cast<std::size_t>(c.uint(2));
    if (version == 3) c.skip(1);  // character set
    if (version == 1) flags = 0;  // a reserved byte in version 1
    if (flags & 0x03) throw unsupported_error(what + ": attributes with shared datatypes or dataspaces are not supported");
    if (name_len == 0) throw format_error(what + ": attribute without a name");
    c.need(name_len);
    std::string name = c.cstring(name_len);
    if (name.size() + 1 != name_len) throw format_error(what + ": attribute name length mismatch");
    const std::string aw = detail::cat(what, " '", name, "'");
    c.skip(version == 1 ? align8(name_len) : name_len);
    c.need(version == 1 ? align8(dt_len) : dt_len);
    Cursor dc(c.pos(), dt_len, aw);
    TypeInfo t = datatype(dc, aw, 0);
    c.skip(version == 1 ? align8(dt_len) : dt_len);
    c.need(version == 1 ? align8(ds_len) : ds_len);
    Cursor sc(c.pos(), ds_len, aw);
    std::uint64_t n = dataspace(sc, aw);
    c.skip(version == 1 ? align8(ds_len) : ds_len);
    // libhdf5 sizes the data with the stored element size, but converts vlen data with the disk
    // size (4 + address + 4): they must agree
    if (t.vlen && t.size != 4 + sa_ + 4) throw format_error(detail::cat(aw, ": variable-length datatype of size ", t.size));
    std::uint64_t elem = t.size;
    std::uint64_t bytes = 0;
    if (__builtin_mul_overflow(n, elem, &bytes) || bytes > c.left())
      throw format_error(detail::cat(aw, ": declares ", n, " elements of ", elem, " bytes but the message holds ", c.left()));
    if (t.vlen) {  // heap references: checked against their global heap collections
      for (std::uint64_t i = 0; i < n; ++i) {
        std::uint64_t len = c.uint(4), addr = c.uint(sa_), idx = c.uint(4);
        vlen_reference(len, addr, idx, t.vlen_base, aw);
      }
    }
  }

  /// One variable-length element: `len` base elements stored as object `idx` of the global heap
  /// collection at `addr`. libhdf5 1.10 copies the heap object's stored size into a buffer of
  /// `len` elements and trusts the collection's object table: both are checked here.
  void vlen_reference(std::uint64_t len, std::uint64_t addr, std::uint64_t idx, std::uint64_t base_size, const std::string& what) {
    if (addr == 0) return;  // a null sequence: libhdf5 reads nothing
    std::uint64_t bytes = 0;
    if (__builtin_mul_overflow(len, base_size, &bytes) || bytes > (std::uint64_t(1) << 30))
      throw format_error(detail::cat(what, ": a variable-length element of ", len, " items"));
    const std::map<std::uint64_t, std::uint64_t>& objs = global_heap(addr, what);
    auto it = objs.find(idx);
    if (idx == 0 || it == objs.end())
      throw format_error(detail::cat(what, ": refers to object ", idx, " of the global heap at ", addr, ", which does not exist"));
    if (it->second != bytes)
      throw format_error(detail::cat(what, ": a variable-length element of ", bytes, " bytes is stored as a heap object of ", it->second,
                                     " bytes"));
  }

  /// The objects (index -> size) of the global heap collection at `addr`, walked as libhdf5
  /// walks it, refusing what would make libhdf5 loop (zero-size objects) or read past it.
  const std::map<std::uint64_t, std::uint64_t>& global_heap(std::uint64_t addr, const std::string& what) {
    auto found = heaps_.find(addr);
    if (found != heaps_.end()) return found->second;
    if (heaps_.size() > 100000) throw format_error(what + ": too many global heap collections");
    const std::string hw = detail::cat(what, ": global heap collection at ", addr);
    const std::size_t hdr = 8 + ss_;
    std::vector<std::uint8_t> h = read_rel(addr, hdr, hw);
    if (std::memcmp(h.data(), "GCOL", 4) != 0) throw format_error(hw + ": no GCOL signature");
    if (h[4] != 1) throw format_error(detail::cat(hw, ": version ", unsigned(h[4])));
    Cursor hc(h.data() + 8, ss_, hw);
    std::uint64_t size = hc.uint(ss_);
    // libhdf5 first reads 4096 bytes, then the collection's own size
    if (size < 4096 || size > (std::uint64_t(1) << 30)) throw format_error(detail::cat(hw, ": invalid size ", size));
    std::vector<std::uint8_t> b = read_rel(addr, static_cast<std::size_t>(size), hw);
    std::map<std::uint64_t, std::uint64_t> objs;
    const std::size_t ohdr = 8 + ss_;
    std::size_t p = hdr;
    while (p < b.size()) {
      if (p + ohdr > b.size()) break;  // a tail too small for an object header: free space
      Cursor c(b.data() + p, ohdr, hw);
      std::uint64_t idx = c.uint(2);
      c.skip(6);
      std::uint64_t osize = c.uint(ss_);
      std::uint64_t need = 0;
      if (idx > 0) {
        if (osize > b.size()) throw format_error(detail::cat(hw, ": object ", idx, " of ", osize, " bytes exceeds the collection"));
        need = ohdr + align8(static_cast<std::size_t>(osize));
      } else {
        need = osize;  // the free-space object's size includes its header
      }
      if (need == 0 || need > b.size() - p)
        throw format_error(detail::cat(hw, ": object ", idx, " (", osize, " bytes) does not fit the collection"));
      if (idx > 0) objs[idx] = osize;
      p += static_cast<std::size_t>(need);
    }
    return heaps_.emplace(addr, std::move(objs)).first->second;
  }

  /// Fill value messages; the size of the value (-1: none).
  std::int64_t fill_old(Cursor& c, const std::string& what) {
    std::uint64_t n = c.uint(4);
    if (n > c.left()) throw format_error(what + ": fill value extends past the message");
    return n ? static_cast<std::int64_t>(n) : -1;
  }
  std::int64_t fill_new(Cursor& c, const std::string& what) {
    unsigned version = c.u8();
    if (version < 1 || version > 3) throw format_error(detail::cat(what, ": fill value version ", version));
    bool defined = false;
    if (version < 3) {
      c.skip(2);  // allocation time, write time
      defined = c.u8() != 0;
    } else {
      unsigned flags = c.u8();
      defined = (flags & 0x20) != 0;
    }
    if (defined) {
      std::uint64_t n = c.uint(4);
      if (n > c.left()) throw format_error(what + ": fill value extends past the message");
      return static_cast<std::int64_t>(n);
    }
    return -1;
  }
  void link(Cursor& c, const std::string& what) {
    unsigned version = c.u8();
    if (version != 1) throw format_error(detail::cat(what, ": link version ", version));
    unsigned flags = c.u8();
    unsigned type = 0;
    if (flags & 0x08) type = c.u8();
    if (flags & 0x04) c.skip(8);
    if (flags & 0x10) c.skip(1);
    std::uint64_t nlen = c.uint(std::size_t(1) << (flags & 3));
    if (nlen == 0 || nlen > c.left()) throw format_error(what + ": link name extends past the message");
    c.skip(static_cast<std::size_t>(nlen));
    if (type == 0) {
      c.uint(sa_);
    } else if (type == 1 || type == 64) {
      std::uint64_t l = c.uint(2);
      if (l > c.left()) throw format_error(what + ": link value extends past the message");
    } else {
      throw unsupported_error(detail::cat(what, ": user-defined link type ", type));
    }
  }
  void link_info(Cursor& c, const std::string& what) {
    if (c.u8() != 0) throw format_error(what + ": link info version");
    unsigned flags = c.u8();
    if (flags & 1) c.skip(8);
    std::uint64_t heap = c.uint(sa_);
    c.uint(sa_);
    if (flags & 2) c.uint(sa_);
    if (!undefined(heap)) throw unsupported_error(what + ": groups with dense link storage are not supported");
  }
  void attribute_info(Cursor& c, const std::string& what) {
    if (c.u8() != 0) throw format_error(what + ": attribute info version");
    unsigned flags = c.u8();
    if (flags & 1) c.skip(2);
    std::uint64_t heap = c.uint(sa_);
    c.uint(sa_);
    if (flags & 2) c.uint(sa_);
    if (!undefined(heap))
      throw unsupported_error(what + ": attributes in dense storage (fractal heap) are not supported; Keras never writes them");
  }
  void external_files(Cursor&, const std::string& what) {
    throw format_error(what + ": datasets stored in external files are not allowed in a model file");
  }
  void filters(Cursor& c, const std::string& what) {
    unsigned version = c.u8();
    unsigned n = c.u8();
    if (version != 1 && version != 2) throw format_error(detail::cat(what, ": filter pipeline version ", version));
    if (n > 32) throw format_error(detail::cat(what, ": ", n, " filters"));
    if (version == 1) c.skip(6);
    for (unsigned i = 0; i < n; ++i) {
      unsigned id = static_cast<unsigned>(c.uint(2));
      // deflate, shuffle, fletcher32: what h5py's compression options write; the others (szip,
      // nbit, scale-offset, plugins) parse parameters from the file in ways not checked here
      if (id != 1 && id != 2 && id != 3)
        throw unsupported_error(detail::cat(what, ": HDF5 filter ", id, " is not supported (gzip, shuffle and fletcher32 are)"));
      std::size_t nlen = 0;
      if (version == 1 || id >= 256) nlen = static_cast<std::size_t>(c.uint(2));
      c.skip(2);  // flags
      std::size_t nvals = static_cast<std::size_t>(c.uint(2));
      if (nlen) {
        c.need(nlen);
        c.cstring(nlen);
        c.skip(version == 1 ? align8(nlen) : nlen);
      }
      c.skip(nvals * 4);
      if (version == 1 && (nvals % 2)) c.skip(4);
    }
  }
  /// Layout message: compact data that holds the dataset, contiguous storage inside the file
  /// and as large as the dataset, chunks of the dataset's rank whose index (a version 1 B-tree)
  /// is sound. `need`: the dataset's bytes; `rank`, `elem`: its dataspace rank and element size.
  void data_layout(Cursor& c, const std::string& what, std::uint64_t need, unsigned rank, std::uint64_t elem) {
    unsigned version = c.u8();
    if (version == 1 || version == 2) {
      unsigned dims = c.u8();
      unsigned cls = c.u8();
      c.skip(5);
      if (dims > 33) throw format_error(detail::cat(what, ": rank ", dims));
      if (cls != 0) c.uint(sa_);
      c.skip(std::size_t(dims) * 4);
      if (cls == 0) compact(c, 4, what, need);
      else if (cls == 2) throw unsupported_error(what + ": version 1 chunked layouts are not supported");
    } else if (version == 3 || version == 4) {
      unsigned cls = c.u8();
      if (cls == 0) {
        compact(c, 2, what, need);
      } else if (cls == 1) {
        std::uint64_t addr = c.uint(sa_), size = c.uint(ss_);
        if (!undefined(addr)) {
          if (size < need) throw format_error(detail::cat(what, ": contiguous storage of ", size, " bytes for a dataset of ", need));
          std::uint64_t end = 0;
          if (__builtin_add_overflow(addr, size, &end) || end > raw_->size() - base_)
            throw format_error(detail::cat(what, ": contiguous storage beyond the end of the file (truncated?)"));
        }
      } else if (cls == 2 && version == 3) {
        unsigned dims = c.u8();
        if (dims != rank + 1) throw format_error(detail::cat(what, ": chunks of rank ", dims, " for a dataset of rank ", rank));
        std::uint64_t index = c.uint(sa_);
        std::uint64_t bytes = 1, last = 0;
        for (unsigned i = 0; i < dims; ++i) {
          last = c.uint(4);  // (the last dimension is the element size)
          if (last == 0) throw format_error(what + ": chunk dimension 0");
          if (__builtin_mul_overflow(bytes, last, &bytes) || bytes > (std::uint64_t(1) << 30))
            throw format_error(what + ": chunks of more than 1 GiB");
        }
        if (last != elem) throw format_error(detail::cat(what, ": chunks of ", last, "-byte elements for a datatype of ", elem));
        if (!undefined(index)) {
          std::set<std::uint64_t> seen;
          chunk_btree(index, dims, what, seen, 0, -1);
        }
      } else if (cls == 2) {
        throw unsupported_error(what + ": version 4 chunk indexes are not supported (h5py's default libver writes version 3)");
      } else if (cls == 3) {
        throw format_error(what + ": virtual datasets are not allowed in a model file");
      } else {
        throw format_error(detail::cat(what, ": unknown layout class ", cls));
      }
    } else {
      throw format_error(detail::cat(what, ": layout version ", version));
    }
  }
  /// The version 1 B-tree indexing a chunked dataset: node signatures, levels, entry counts,
  /// no cycles, every chunk inside the file.
  void chunk_btree(std::uint64_t addr, unsigned dims, const std::string& what, std::set<std::uint64_t>& seen, int depth, int expect_level) {
    const std::string bw = detail::cat(what, ": chunk B-tree node at ", addr);
    std::size_t used = 0;
    int level = 0;
    std::vector<std::uint8_t> b = btree_node(addr, 1, 2 * chunk_k_, 8 + 8 * std::size_t(dims), bw, seen, 1000000, depth, expect_level, &level, &used);
    Cursor c(b.data() + 8 + 2 * sa_, b.size() - 8 - 2 * sa_, bw);
    const std::uint64_t file_end = raw_->size() - base_;
    for (std::size_t i = 0; i < used; ++i) {
      std::uint64_t nbytes = c.uint(4);
      c.skip(4 + 8 * std::size_t(dims));
      std::uint64_t child = c.uint(sa_);
      if (level > 0) {
        chunk_btree(child, dims, what, seen, depth + 1, level - 1);
      } else {
        std::uint64_t end = 0;
        if (undefined(child) || __builtin_add_overflow(child, nbytes, &end) || end > file_end)
          throw format_error(detail::cat(bw, ": a chunk of ", nbytes, " bytes beyond the end of the file"));
      }
    }
  }
  void compact(Cursor& c, std::size_t size_bytes, const std::string& what, std::uint64_t need) {
    std::uint64_t n = c.uint(size_bytes);
    if (n > c.left()) throw format_error(what + ": compact data extends past the message");
    if (n < need) throw format_error(detail::cat(what, ": compact data of ", n, " bytes for a dataset of ", need));
  }

  /// One version 1 B-tree node of `type` (0: group, 1: chunks) with `entries` children and
  /// `key`-byte keys, read whole as libhdf5 reads it and checked: signature, type, the level
  /// its parent implies, the entry count, no node visited twice (a cycle), bounded size.
  std::vector<std::uint8_t> btree_node(std::uint64_t addr, unsigned type, std::size_t entries, std::size_t key, const std::string& bw,
                                       std::set<std::uint64_t>& seen, std::size_t max_nodes, int depth, int expect_level, int* level,
                                       std::size_t* used) {
    if (!seen.insert(addr).second) throw format_error(bw + ": the B-tree has a cycle");
    if (seen.size() > max_nodes || depth > 64) throw format_error(bw + ": implausibly large B-tree");
    std::vector<std::uint8_t> b = read_rel(addr, 8 + 2 * sa_ + (entries + 1) * key + entries * sa_, bw);
    if (std::memcmp(b.data(), "TREE", 4) != 0) throw format_error(bw + ": no TREE signature");
    if (b[4] != type) throw format_error(bw + (type ? ": not a chunk node" : ": not a group node"));
    *level = b[5];
    if (expect_level >= 0 && *level != expect_level) throw format_error(bw + ": inconsistent levels");
    *used = b[6] | (b[7] << 8);
    if (*used > entries) throw format_error(detail::cat(bw, ": ", *used, " entries in a node of ", entries));
    return b;
  }

  // ---- groups: symbol table B-tree, symbol nodes and local heap -------------------------------
  void symbol_table(Cursor& c, const std::string& what, const std::string& path) {
    std::uint64_t btree = c.uint(sa_), heap = c.uint(sa_);
    std::uint64_t heap_size = 0;
    std::vector<std::uint8_t> names = local_heap(heap, what, &heap_size);
    std::set<std::uint64_t> seen;
    group_btree(btree, names, what, seen, 0, -1);
    (void)path;
  }
  /// The data segment of a local heap (where a group's link names live).
  std::vector<std::uint8_t> local_heap(std::uint64_t addr, const std::string& what, std::uint64_t* size) {
    const std::string hw = detail::cat(what, ": local heap at ", addr);
    std::vector<std::uint8_t> h = read_rel(addr, 8 + 2 * ss_ + sa_, hw);
    if (std::memcmp(h.data(), "HEAP", 4) != 0) throw format_error(hw + ": no HEAP signature");
    if (h[4] != 0) throw format_error(hw + ": unknown version");
    Cursor c(h.data() + 8, h.size() - 8, hw);
    std::uint64_t dsize = c.uint(ss_);
    std::uint64_t free_off = c.uint(ss_);
    std::uint64_t daddr = c.uint(sa_);
    if (dsize == 0 || dsize > (std::uint64_t(1) << 30)) throw format_error(detail::cat(hw, ": invalid data size ", dsize));
    std::vector<std::uint8_t> d = read_rel(daddr, static_cast<std::size_t>(dsize), hw);
    // libhdf5 walks the free list when it loads the heap (1 = the end of the list): each block
    // must hold its two fields inside the heap, and the list must end
    std::set<std::uint64_t> visited;
    for (std::uint64_t off = free_off; off != 1;) {
      if (off >= dsize || 2 * ss_ > dsize - off || !visited.insert(off).second || visited.size() > 100000)
        throw format_error(hw + ": corrupt free list");
      Cursor fc(d.data() + off, 2 * ss_, hw);
      std::uint64_t next = fc.uint(ss_), fsize = fc.uint(ss_);
      if (next == 0 || fsize > dsize - off) throw format_error(hw + ": corrupt free list");
      off = next;
    }
    *size = dsize;
    return d;
  }
  void heap_name(const std::vector<std::uint8_t>& names, std::uint64_t off, const std::string& what) {
    if (off >= names.size() || !std::memchr(names.data() + off, 0, names.size() - static_cast<std::size_t>(off)))
      throw format_error(detail::cat(what, ": a link name at offset ", off, " outside the group's local heap"));
  }
  void group_btree(std::uint64_t addr, const std::vector<std::uint8_t>& names, const std::string& what, std::set<std::uint64_t>& seen,
                   int depth, int expect_level) {
    const std::string bw = detail::cat(what, ": group B-tree node at ", addr);
    std::size_t used = 0;
    int level = 0;
    std::vector<std::uint8_t> b = btree_node(addr, 0, 2 * internal_k_, ss_, bw, seen, 100000, depth, expect_level, &level, &used);
    Cursor c(b.data() + 8 + 2 * sa_, b.size() - 8 - 2 * sa_, bw);
    std::vector<std::uint64_t> children;
    for (std::size_t i = 0; i < used; ++i) {
      heap_name(names, c.uint(ss_), bw);
      children.push_back(c.uint(sa_));
    }
    heap_name(names, c.uint(ss_), bw);
    for (std::uint64_t child : children) {
      if (level > 0) group_btree(child, names, what, seen, depth + 1, level - 1);
      else symbol_node(child, names, what, seen);
    }
  }
  void symbol_node(std::uint64_t addr, const std::vector<std::uint8_t>& names, const std::string& what, std::set<std::uint64_t>& seen) {
    const std::string nw = detail::cat(what, ": symbol table node at ", addr);
    if (!seen.insert(addr).second) throw format_error(nw + ": referenced twice");
    const std::size_t entry = ss_ + sa_ + 4 + 4 + 16;
    std::vector<std::uint8_t> h = read_rel(addr, 8, nw);
    if (std::memcmp(h.data(), "SNOD", 4) != 0) throw format_error(nw + ": no SNOD signature");
    if (h[4] != 1) throw format_error(nw + ": unknown version");
    std::size_t n = h[6] | (h[7] << 8);
    if (n > 2 * leaf_k_) throw format_error(detail::cat(nw, ": ", n, " symbols in a node of ", 2 * leaf_k_));
    // libhdf5 reads the whole node (2K entries) whatever the count
    std::vector<std::uint8_t> b = read_rel(addr + 8, 2 * leaf_k_ * entry, nw);
    Cursor c(b.data(), b.size(), nw);
    for (std::size_t i = 0; i < n; ++i) {
      heap_name(names, c.uint(ss_), nw);
      std::uint64_t obj = c.uint(sa_);
      unsigned cache = static_cast<unsigned>(c.uint(4));
      if (cache > 2) throw format_error(detail::cat(nw, ": unknown cache type ", cache));
      if (undefined(obj))  // cache type 2 with no object: a soft link (its target is a path)
        throw format_error(nw + (cache == 2 ? ": soft or external links are not allowed in a model file"
                                            : ": a link to an undefined address"));
      c.skip(4 + 16);
    }
  }

  std::shared_ptr<RawFile> raw_;
  bool superblock_read_ = false, checked_file_ = false;
  unsigned sa_ = 8, ss_ = 8, leaf_k_ = 4, internal_k_ = 16, chunk_k_ = 32;
  std::uint64_t base_ = 0, root_addr_ = 0, addr_undef_ = ~std::uint64_t(0);
  std::set<std::uint64_t> checked_objects_;
  std::map<std::uint64_t, std::map<std::uint64_t, std::uint64_t>> heaps_;
};

}  // namespace check
}  // namespace h5
}  // namespace graft
