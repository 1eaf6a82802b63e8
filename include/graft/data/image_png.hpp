// graft — PNG decoding through libpng 1.6 (Debian libpng-dev), with PIL's pixel values: palettes
// expanded, 1/2/4-bit gray scaled to 0..255 (bit replication, as PIL's L;1/L;2/L;4 unpackers),
// a tRNS chunk turned into an alpha channel (dropped again by color_mode "rgb" or "grayscale"),
// 16-bit samples reduced to their high byte (PIL's RGB;16B/RGBA;16B/LA;16B unpackers, and
// TensorFlow's decode_png to uint8), no gamma correction (PIL and TensorFlow apply none).
// Two differences from PIL, where graft follows the PNG specification and TensorFlow's decoder:
// a 16-bit *gray* PNG is mode "I" in PIL, which load_img keeps as 0..65535 for grayscale and clips
// at 255 for rgb, where graft gives its high byte; and the tRNS key of a 1/2/4-bit gray PNG, which
// PIL compares with the pixels after scaling them to 8 bits (so nothing is transparent), marks the
// pixels of that gray level transparent in graft (libpng). tests/images/check_images.py checks both.
//
// libpng reports errors through a longjmp to the setjmp of png_jmpbuf. Each setjmp sits in a small
// function holding only C data of a caller-owned context; the row pointers and pixels live in
// std::vectors outside them, so no destructor is ever skipped.
#pragma once

#include <png.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "graft/data/image.hpp"

namespace graft {
namespace data {
namespace detail {

struct PngContext {
  png_structp png = nullptr;
  png_infop info = nullptr;
  const std::uint8_t* data = nullptr;
  size_t size = 0, pos = 0;
  char message[256] = {0};
};

inline void png_on_error(png_structp png, png_const_charp msg) {
  PngContext* ctx = static_cast<PngContext*>(png_get_error_ptr(png));
  if (!ctx->message[0]) std::snprintf(ctx->message, sizeof ctx->message, "%s", msg ? msg : "error");
  png_longjmp(png, 1);
}
inline void png_on_warning(png_structp, png_const_charp) {}

inline void png_on_read(png_structp png, png_bytep out, png_size_t len) {
  PngContext* ctx = static_cast<PngContext*>(png_get_io_ptr(png));
  if (len > ctx->size - ctx->pos) {
    std::snprintf(ctx->message, sizeof ctx->message, "truncated: the data ends at byte %zu", ctx->size);
    png_longjmp(png, 1);
  }
  std::memcpy(out, ctx->data + ctx->pos, len);
  ctx->pos += len;
}

inline bool png_phase_header(PngContext* ctx) {
  if (setjmp(png_jmpbuf(ctx->png))) return false;
  png_set_read_fn(ctx->png, ctx, png_on_read);
  png_set_user_limits(ctx->png, 0x7fffffff, 0x7fffffff);  // sizes are checked by check_image_dims, which names the limit
  png_read_info(ctx->png, ctx->info);
  return true;
}

inline bool png_phase_transforms(PngContext* ctx) {
  if (setjmp(png_jmpbuf(ctx->png))) return false;
  png_set_expand(ctx->png);  // palette -> RGB, gray < 8 bits -> 8 bits, tRNS -> alpha
  png_set_strip_16(ctx->png);
  png_set_interlace_handling(ctx->png);
  png_read_update_info(ctx->png, ctx->info);
  return true;
}

inline bool png_phase_rows(PngContext* ctx, png_bytepp rows) {
  if (setjmp(png_jmpbuf(ctx->png))) return false;
  png_read_image(ctx->png, rows);
  return true;
}

class PngDecoder {
 public:
  PngDecoder(const std::uint8_t* data, size_t n, const std::string& name) : name_(name) {
    ctx_.data = data;
    ctx_.size = n;
    ctx_.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx_, png_on_error, png_on_warning);
    if (ctx_.png) ctx_.info = png_create_info_struct(ctx_.png);
    if (!ctx_.png || !ctx_.info) {
      destroy();
      throw format_error(name_ + ": cannot create a libpng reader (out of memory)");
    }
    if (!png_phase_header(&ctx_)) {
      destroy();  // the destructor does not run when the constructor throws
      fail("cannot read the header");
    }
  }
  ~PngDecoder() { destroy(); }
  PngDecoder(const PngDecoder&) = delete;
  PngDecoder& operator=(const PngDecoder&) = delete;

  ImageInfo info() const {
    const png_uint_32 w = png_get_image_width(ctx_.png, ctx_.info), h = png_get_image_height(ctx_.png, ctx_.info);
    check_image_dims(name_, "PNG", w, h);
    return ImageInfo{ImageFormat::png, static_cast<int>(h), static_cast<int>(w)};
  }

  Image decode() {
    const ImageInfo in = info();
    if (!png_phase_transforms(&ctx_)) fail("unsupported pixel layout");
    Image img;
    img.width = in.width;
    img.height = in.height;
    img.channels = png_get_channels(ctx_.png, ctx_.info);
    const size_t rowbytes = png_get_rowbytes(ctx_.png, ctx_.info);
    if (img.channels < 1 || img.channels > 4 || png_get_bit_depth(ctx_.png, ctx_.info) != 8 ||
        rowbytes != static_cast<size_t>(img.width) * static_cast<size_t>(img.channels))
      fail(graft::detail::cat("unexpected row layout (", img.channels, " channels, ", rowbytes, " bytes a row)"));
    img.pixels.resize(rowbytes * static_cast<size_t>(img.height));
    std::vector<png_bytep> rows(static_cast<size_t>(img.height));
    for (size_t y = 0; y < rows.size(); ++y) rows[y] = img.pixels.data() + y * rowbytes;
    if (!png_phase_rows(&ctx_, rows.data())) fail("corrupt image data");
    return img;  // chunks after the image data (up to IEND) are not read, as in PIL
  }

 private:
  void destroy() {
    if (ctx_.png) png_destroy_read_struct(&ctx_.png, ctx_.info ? &ctx_.info : nullptr, nullptr);
    ctx_.png = nullptr;
    ctx_.info = nullptr;
  }
  [[noreturn]] void fail(const std::string& what) {
    throw format_error(graft::detail::cat(name_, ": invalid PNG data (", what, ": ", ctx_.message[0] ? ctx_.message : "libpng error", ")"));
  }
  PngContext ctx_;
  std::string name_;
};

}  // namespace detail

/// Width and height from a PNG header (signature and IHDR; no pixel is decoded).
inline ImageInfo read_png_info(const std::uint8_t* data, size_t n, const std::string& name) {
  return detail::PngDecoder(data, n, name).info();
}

/// Decode a PNG held in memory: 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA) channels.
inline Image decode_png(const std::uint8_t* data, size_t n, const std::string& name) {
  detail::PngDecoder d(data, n, name);
  return d.decode();
}

}  // namespace data
}  // namespace graft
