// graft — BMP decoding: a small bounded parser of graft's own (Debian has no maintained BMP
// library short of a whole toolkit such as ImageMagick or GDAL, and the format is a header plus
// raw rows). It reads what PIL 9's BmpImagePlugin reads, with PIL's pixel values:
//   headers of 12 (OS/2 core), 40, 52, 56, 64, 108 and 124 bytes; bottom-up or top-down rows;
//   1, 4 and 8 bits with a palette (BGRX entries, BGR for the 12-byte header; entries past the
//   file's palette read gray, PIL's ramp); RLE8 and RLE4 as PIL's BmpRleDecoder decodes them;
//   16 bits as 5-5-5 or (bitfields) 5-6-5, scaled v * 255 / max; 24 bits BGR; 32 bits BGRX
//   (the 4th byte ignored, as PIL does) or, with bitfields, PIL's layouts BGRX XBGR ABGR RGBA
//   BGRA (the last three keep alpha: 4 channels).
// Every offset and size is checked against the buffer before it is read, and the pixel count
// against graft::limits().max_image_pixels before anything is allocated.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "graft/data/image.hpp"

namespace graft {
namespace data {
namespace detail {

class BmpDecoder {
 public:
  BmpDecoder(const std::uint8_t* data, size_t n, const std::string& name) : p_(data), n_(n), name_(name) { parse_header(); }

  ImageInfo info() const {
    check_image_dims(name_, "BMP", w_, h_);
    return ImageInfo{ImageFormat::bmp, static_cast<int>(h_), static_cast<int>(w_)};
  }

  Image decode() {
    check_image_dims(name_, "BMP", w_, h_);
    Image img;
    img.width = static_cast<int>(w_);
    img.height = static_cast<int>(h_);
    img.channels = layout_alpha_ ? 4 : 3;
    if (compression_ == 1 || compression_ == 2) {
      rle(img);
      return img;
    }
    const std::uint64_t stride = ((static_cast<std::uint64_t>(w_) * bits_ + 31) >> 3) & ~std::uint64_t(3);
    if (offset_ > n_ || stride * static_cast<std::uint64_t>(h_) > n_ - offset_)
      fail(graft::detail::cat("truncated: ", h_, " rows of ", stride, " bytes from offset ", offset_, " need ",
                              offset_ + stride * static_cast<std::uint64_t>(h_), " bytes, the file has ", n_));
    const size_t W = static_cast<size_t>(w_), C = static_cast<size_t>(img.channels);
    img.pixels.resize(W * static_cast<size_t>(h_) * C);
    for (std::int64_t r = 0; r < h_; ++r) {
      const std::uint8_t* row = p_ + offset_ + static_cast<size_t>(r) * stride;
      std::uint8_t* out = img.pixels.data() + static_cast<size_t>(top_down_ ? r : h_ - 1 - r) * W * C;
      for (size_t x = 0; x < W; ++x, out += C) pixel(row, x, out);
    }
    return img;
  }

 private:
  std::uint32_t u16(size_t at) const { return static_cast<std::uint32_t>(p_[at] | (p_[at + 1] << 8)); }
  std::uint32_t u32(size_t at) const {
    return static_cast<std::uint32_t>(p_[at]) | (static_cast<std::uint32_t>(p_[at + 1]) << 8) |
           (static_cast<std::uint32_t>(p_[at + 2]) << 16) | (static_cast<std::uint32_t>(p_[at + 3]) << 24);
  }
  void need(size_t end, const char* what) const {
    if (end > n_) fail(graft::detail::cat("truncated ", what, ": needs ", end, " bytes, the file has ", n_));
  }

  void parse_header() {
    need(18, "file header");
    offset_ = u32(10);
    const std::uint32_t hs = u32(14);
    if (hs != 12 && hs != 40 && hs != 52 && hs != 56 && hs != 64 && hs != 108 && hs != 124)
      fail(graft::detail::cat("unsupported BMP header size ", hs, " (12, 40, 52, 56, 64, 108 or 124)"));
    need(14 + static_cast<size_t>(hs), "info header");
    size_t pal_at = 14 + hs;
    int entry = 4;
    if (hs == 12) {
      w_ = u16(18);
      h_ = u16(20);
      bits_ = u16(24);
      entry = 3;
    } else {
      w_ = u32(18);
      const std::uint32_t hr = u32(22);
      top_down_ = (hr >> 24) == 0xFF;  // a negative height, as PIL tests it
      h_ = top_down_ ? (std::int64_t(1) << 32) - hr : hr;
      bits_ = u16(28);
      compression_ = u32(30);
      colors_ = u32(46);
      if (compression_ == 3) {  // BI_BITFIELDS: masks inside a long header, else after a 40-byte one
        size_t at = 54;
        if (hs < 56) {
          need(66, "bitfield masks");
          pal_at = 66;
        }
        masks_[0] = u32(at);
        masks_[1] = u32(at + 4);
        masks_[2] = u32(at + 8);
        masks_[3] = hs >= 56 ? u32(at + 12) : 0;
      }
    }
    if (bits_ != 1 && bits_ != 4 && bits_ != 8 && bits_ != 16 && bits_ != 24 && bits_ != 32)
      fail(graft::detail::cat("unsupported BMP pixel depth ", bits_));
    if (colors_ == 0) colors_ = bits_ <= 8 ? (1u << bits_) : 0;
    if (bits_ <= 8 && offset_ == 14 + hs) offset_ += 4 * static_cast<std::uint64_t>(colors_);  // as PIL
    if (compression_ == 3) {
      layout(bits_);
    } else if (compression_ == 1 || compression_ == 2) {
      if ((compression_ == 1 && bits_ != 8) || (compression_ == 2 && bits_ != 4))
        fail(graft::detail::cat("RLE", compression_ == 1 ? 8 : 4, " compression with ", bits_, " bits a pixel"));
    } else if (compression_ != 0) {
      fail(graft::detail::cat("unsupported BMP compression ", compression_, compression_ == 4 ? " (embedded JPEG)" : compression_ == 5 ? " (embedded PNG)" : ""));
    } else if (bits_ == 16) {
      r16_ = {10, 31};
      g16_ = {5, 31};
      b16_ = {0, 31};
    } else if (bits_ == 32) {
      set_bytes(2, 1, 0, -1);  // BGRX
    }
    // palette, always 256 entries: a gray ramp under the file's colours
    for (int i = 0; i < 256; ++i) pal_[i][0] = pal_[i][1] = pal_[i][2] = static_cast<std::uint8_t>(i);
    if (bits_ <= 8) {
      if (colors_ > 65536) fail(graft::detail::cat("unsupported BMP palette size ", colors_));
      // PIL reads `colors` entries from where the header ends, whatever they overlap, and keeps
      // what the file holds: entries past its end stay gray
      const size_t avail = n_ > pal_at ? (n_ - pal_at) / static_cast<size_t>(entry) : 0;
      std::uint32_t k = colors_ < 256 ? colors_ : 256;
      if (k > avail) k = static_cast<std::uint32_t>(avail);
      for (std::uint32_t i = 0; i < k; ++i) {
        const std::uint8_t* e = p_ + pal_at + static_cast<size_t>(entry) * i;
        pal_[i][0] = e[2];
        pal_[i][1] = e[1];
        pal_[i][2] = e[0];
      }
    }
  }

  struct Field {
    int shift = 0, max = 31;
  };
  void set_bytes(int r, int g, int b, int a) {
    rb_ = r;
    gb_ = g;
    bb_ = b;
    ab_ = a;
    layout_alpha_ = a >= 0;
  }
  void layout(std::uint32_t bits) {
    const std::uint32_t r = masks_[0], g = masks_[1], b = masks_[2], a = masks_[3];
    auto is = [&](std::uint32_t R, std::uint32_t G, std::uint32_t B, std::uint32_t A) { return r == R && g == G && b == B && a == A; };
    if (bits == 32) {
      if (is(0xFF0000, 0xFF00, 0xFF, 0)) return set_bytes(2, 1, 0, -1);                      // BGRX
      if (is(0xFF000000, 0xFF0000, 0xFF00, 0)) return set_bytes(3, 2, 1, -1);                // XBGR
      if (is(0xFF000000, 0xFF0000, 0xFF00, 0xFF)) return set_bytes(3, 2, 1, 0);              // ABGR
      if (is(0xFF, 0xFF00, 0xFF0000, 0xFF000000)) return set_bytes(0, 1, 2, 3);              // RGBA
      if (is(0xFF0000, 0xFF00, 0xFF, 0xFF000000) || is(0, 0, 0, 0)) return set_bytes(2, 1, 0, 3);  // BGRA
    } else if (bits == 24) {
      if (r == 0xFF0000 && g == 0xFF00 && b == 0xFF) return;
    } else if (bits == 16) {
      if (r == 0xF800 && g == 0x7E0 && b == 0x1F) {
        r16_ = {11, 31};
        g16_ = {5, 63};
        b16_ = {0, 31};
        return;
      }
      if (r == 0x7C00 && g == 0x3E0 && b == 0x1F) {
        r16_ = {10, 31};
        g16_ = {5, 31};
        b16_ = {0, 31};
        return;
      }
    }
    fail(graft::detail::cat("unsupported BMP bitfields layout (", bits, " bits, masks 0x", std::hex, r, " 0x", g, " 0x", b, " 0x", a, ")"));
  }

  void pixel(const std::uint8_t* row, size_t x, std::uint8_t* out) const {
    switch (bits_) {
      case 1: return put_index((row[x >> 3] >> (7 - (x & 7))) & 1, out);
      case 4: return put_index((row[x >> 1] >> ((x & 1) ? 0 : 4)) & 15, out);
      case 8: return put_index(row[x], out);
      case 16: {
        const std::uint32_t v = static_cast<std::uint32_t>(row[2 * x] | (row[2 * x + 1] << 8));
        out[0] = static_cast<std::uint8_t>(((v >> r16_.shift) & static_cast<std::uint32_t>(r16_.max)) * 255 / static_cast<std::uint32_t>(r16_.max));
        out[1] = static_cast<std::uint8_t>(((v >> g16_.shift) & static_cast<std::uint32_t>(g16_.max)) * 255 / static_cast<std::uint32_t>(g16_.max));
        out[2] = static_cast<std::uint8_t>(((v >> b16_.shift) & static_cast<std::uint32_t>(b16_.max)) * 255 / static_cast<std::uint32_t>(b16_.max));
        return;
      }
      case 24: {
        const std::uint8_t* s = row + 3 * x;
        out[0] = s[2];
        out[1] = s[1];
        out[2] = s[0];
        return;
      }
      default: {
        const std::uint8_t* s = row + 4 * x;
        out[0] = s[rb_];
        out[1] = s[gb_];
        out[2] = s[bb_];
        if (layout_alpha_) out[3] = s[ab_];
      }
    }
  }
  void put_index(unsigned i, std::uint8_t* out) const {
    out[0] = pal_[i][0];
    out[1] = pal_[i][1];
    out[2] = pal_[i][2];
  }

  /// PIL's BmpRleDecoder, step for step: indices into a buffer of at least width * height, rows
  /// in file order; data that ends early (or an early end-of-bitmap) is an error, as in PIL.
  void rle(Image& img) {
    const size_t W = static_cast<size_t>(w_), H = static_cast<size_t>(h_), need_px = W * H;
    std::vector<std::uint8_t> idx;
    idx.reserve(need_px);
    size_t pos = offset_, x = 0;
    const bool rle4 = compression_ == 2;
    auto push = [&](std::uint8_t v, size_t count) { idx.insert(idx.end(), count, v); };
    while (idx.size() < need_px) {
      if (pos + 2 > n_) break;
      size_t count = p_[pos];
      const std::uint8_t byte = p_[pos + 1];
      pos += 2;
      if (count) {
        if (x + count > W) count = x < W ? W - x : 0;
        if (rle4) {
          for (size_t i = 0; i < count; ++i) idx.push_back(static_cast<std::uint8_t>(i % 2 == 0 ? byte >> 4 : byte & 15));
        } else {
          push(byte, count);
        }
        x += count;
      } else if (byte == 0) {
        while (idx.size() % W != 0) idx.push_back(0);
        x = 0;
      } else if (byte == 1) {
        break;
      } else if (byte == 2) {
        if (pos + 2 > n_) break;
        const size_t right = p_[pos], up = p_[pos + 1];
        pos += 2;
        const size_t skip = right + up * W, room = need_px + W - idx.size();
        push(0, skip < room ? skip : room);  // what lies past the image is ignored, as in PIL
        x = idx.size() % W;
      } else {
        const size_t bytes = rle4 ? byte / 2 : byte;
        const size_t avail = pos < n_ ? (n_ - pos < bytes ? n_ - pos : bytes) : 0;
        for (size_t i = 0; i < avail; ++i) {
          const std::uint8_t v = p_[pos + i];
          if (rle4) {
            idx.push_back(static_cast<std::uint8_t>(v >> 4));
            idx.push_back(static_cast<std::uint8_t>(v & 15));
          } else {
            idx.push_back(v);
          }
        }
        pos += avail;
        if (avail < bytes) break;
        x += byte;
        if (pos % 2 != 0) pos += 1;  // PIL: absolute runs end on an even file offset
      }
    }
    if (idx.size() < need_px)
      fail(graft::detail::cat("truncated RLE data: ", idx.size(), " of ", need_px, " pixels (not enough image data)"));
    img.pixels.resize(need_px * 3);
    for (size_t r = 0; r < H; ++r) {
      std::uint8_t* out = img.pixels.data() + (top_down_ ? r : H - 1 - r) * W * 3;
      const std::uint8_t* in = idx.data() + r * W;
      for (size_t c = 0; c < W; ++c, out += 3) put_index(in[c], out);
    }
  }

  [[noreturn]] void fail(const std::string& what) const { throw format_error(name_ + ": invalid BMP data (" + what + ")"); }

  const std::uint8_t* p_;
  size_t n_;
  std::string name_;
  std::uint64_t offset_ = 0;
  std::int64_t w_ = 0, h_ = 0;
  std::uint32_t bits_ = 0, compression_ = 0, colors_ = 0, masks_[4] = {0, 0, 0, 0};
  bool top_down_ = false, layout_alpha_ = false;
  int rb_ = 2, gb_ = 1, bb_ = 0, ab_ = -1;
  Field r16_, g16_, b16_;
  std::uint8_t pal_[256][3];
};

}  // namespace detail

/// Width and height from a BMP header.
inline ImageInfo read_bmp_info(const std::uint8_t* data, size_t n, const std::string& name) {
  detail::BmpDecoder d(data, n, name);
  return d.info();
}

/// Decode a BMP held in memory: 3 channels, or 4 for 32-bit bitfield layouts with alpha.
inline Image decode_bmp(const std::uint8_t* data, size_t n, const std::string& name) {
  detail::BmpDecoder d(data, n, name);
  return d.decode();
}

}  // namespace data
}  // namespace graft
