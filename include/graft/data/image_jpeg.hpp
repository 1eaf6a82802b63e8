// graft — JPEG decoding through libjpeg-turbo (Debian libjpeg62-turbo-dev), the decoder of
// TensorFlow and of PIL. Decoded the way PIL does it, so pixels equal PIL's (and Keras'
// load_img's) exactly: libjpeg's defaults (JDCT_ISLOW, fancy upsampling), gray files as gray,
// YCbCr/RGB files as RGB, CMYK/YCCK files as PIL's inverted "CMYK;I" converted with its cmyk2rgb.
//
// libjpeg reports errors by calling error_exit, which must not return. Here it longjmps back into
// small functions that hold no C++ objects (only the C structs of a caller-owned context), so no
// destructor is ever skipped; every std::vector lives outside them. A file that ends before its
// last scanline ("Premature end of JPEG file", which libjpeg only warns about and fills with gray)
// is an error, as in PIL and TensorFlow; libjpeg's other warnings (extraneous bytes, corrupt data
// it recovers from) are ignored, as PIL ignores them.
#pragma once

#include <jerror.h>
#include <jpeglib.h>

#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "graft/data/image.hpp"

namespace graft {
namespace data {
namespace detail {

/// More scans than any real progressive JPEG has (libjpeg-turbo's djpeg -maxscans guards the
/// same CPU-time attack: thousands of tiny scans, each a full pass over the coefficients).
constexpr int kJpegMaxScans = 1000;

struct JpegContext {
  jpeg_decompress_struct cinfo;
  jpeg_error_mgr err;
  jpeg_progress_mgr progress;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX + 64];
};

inline JpegContext* jpeg_context(j_common_ptr c) { return static_cast<JpegContext*>(c->client_data); }

inline void jpeg_on_error(j_common_ptr c) {
  JpegContext* ctx = jpeg_context(c);
  (*c->err->format_message)(c, ctx->message);
  std::longjmp(ctx->jump, 1);
}

inline void jpeg_on_message(j_common_ptr c, int level) {
  if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) {  // the data ends before the image does
    JpegContext* ctx = jpeg_context(c);
    std::snprintf(ctx->message, sizeof ctx->message, "truncated: the data ends before the last scanline");
    std::longjmp(ctx->jump, 1);
  }
}

inline void jpeg_on_progress(j_common_ptr c) {
  if (!c->is_decompressor) return;
  j_decompress_ptr d = reinterpret_cast<j_decompress_ptr>(c);
  if (d->input_scan_number > kJpegMaxScans) {
    JpegContext* ctx = jpeg_context(c);
    std::snprintf(ctx->message, sizeof ctx->message, "more than %d scans (a progressive JPEG no encoder writes)", kJpegMaxScans);
    std::longjmp(ctx->jump, 1);
  }
}

// The three phases below hold only C data; setjmp is their first statement's guard.
inline bool jpeg_phase_header(JpegContext* ctx, const std::uint8_t* data, size_t n) {
  if (setjmp(ctx->jump)) return false;
  jpeg_create_decompress(&ctx->cinfo);
  ctx->cinfo.client_data = ctx;
  ctx->progress.progress_monitor = jpeg_on_progress;
  ctx->cinfo.progress = &ctx->progress;
  jpeg_mem_src(&ctx->cinfo, data, static_cast<unsigned long>(n));
  jpeg_read_header(&ctx->cinfo, TRUE);
  return true;
}

inline bool jpeg_phase_start(JpegContext* ctx, J_COLOR_SPACE out) {
  if (setjmp(ctx->jump)) return false;
  ctx->cinfo.out_color_space = out;
  jpeg_start_decompress(&ctx->cinfo);
  return true;
}

/// Rows into out (stride bytes apart); when `row` is given, each scanline goes through it.
inline bool jpeg_phase_scan(JpegContext* ctx, std::uint8_t* out, size_t stride, std::uint8_t* row,
                            void (*convert)(const std::uint8_t*, std::uint8_t*, unsigned)) {
  if (setjmp(ctx->jump)) return false;
  while (ctx->cinfo.output_scanline < ctx->cinfo.output_height) {
    const JDIMENSION y = ctx->cinfo.output_scanline;
    JSAMPROW dst = row ? row : out + static_cast<size_t>(y) * stride;
    if (jpeg_read_scanlines(&ctx->cinfo, &dst, 1) != 1) {
      std::snprintf(ctx->message, sizeof ctx->message, "no data for scanline %u", static_cast<unsigned>(y));
      return false;
    }
    if (row) convert(row, out + static_cast<size_t>(y) * stride, ctx->cinfo.output_width);
  }
  return true;
}

/// PIL's "CMYK;I" unpacking (Adobe files store CMYK inverted) followed by its cmyk2rgb.
inline void jpeg_cmyk_row_to_rgb(const std::uint8_t* in, std::uint8_t* out, unsigned width) {
  for (unsigned x = 0; x < width; ++x, in += 4, out += 3) {
    const int nk = in[3];  // 255 - k, k = 255 - in[3]
    for (int c = 0; c < 3; ++c) {
      const int v = 255 - in[c];
      const int tmp = v * nk + 128;
      const int r = nk - (((tmp >> 8) + tmp) >> 8);
      out[c] = static_cast<std::uint8_t>(r < 0 ? 0 : r > 255 ? 255 : r);
    }
  }
}

class JpegDecoder {
 public:
  JpegDecoder(const std::uint8_t* data, size_t n, const std::string& name) : name_(name) {
    std::memset(&ctx_, 0, sizeof ctx_);
    ctx_.cinfo.err = jpeg_std_error(&ctx_.err);
    ctx_.err.error_exit = jpeg_on_error;
    ctx_.err.emit_message = jpeg_on_message;
    ctx_.cinfo.client_data = &ctx_;
    if (!jpeg_phase_header(&ctx_, data, n)) {
      jpeg_destroy_decompress(&ctx_.cinfo);  // the destructor does not run when the constructor throws
      fail("cannot read the header");
    }
  }
  ~JpegDecoder() { jpeg_destroy_decompress(&ctx_.cinfo); }  // safe on a half-created struct
  JpegDecoder(const JpegDecoder&) = delete;
  JpegDecoder& operator=(const JpegDecoder&) = delete;

  ImageInfo info() const {
    check_image_dims(name_, "JPEG", ctx_.cinfo.image_width, ctx_.cinfo.image_height);
    return ImageInfo{ImageFormat::jpeg, static_cast<int>(ctx_.cinfo.image_height), static_cast<int>(ctx_.cinfo.image_width)};
  }

  Image decode() {
    const ImageInfo in = info();
    // libjpeg's own buffers (a progressive file keeps every coefficient): bounded as well.
    ctx_.cinfo.mem->max_memory_to_use = static_cast<long>(graft::limits().max_image_pixels) * 8 + (64L << 20);
    J_COLOR_SPACE out = JCS_RGB;
    const J_COLOR_SPACE space = ctx_.cinfo.jpeg_color_space;
    if (space == JCS_GRAYSCALE) out = JCS_GRAYSCALE;
    if (space == JCS_CMYK || space == JCS_YCCK) out = JCS_CMYK;
    if (!jpeg_phase_start(&ctx_, out)) fail("cannot start decoding");
    Image img;
    img.width = static_cast<int>(ctx_.cinfo.output_width);
    img.height = static_cast<int>(ctx_.cinfo.output_height);
    const int comps = ctx_.cinfo.output_components;
    if (img.width != in.width || img.height != in.height || (comps != 1 && comps != 3 && comps != 4))
      fail(graft::detail::cat("unexpected output ", img.width, " x ", img.height, " x ", comps));
    img.channels = comps == 4 ? 3 : comps;
    const size_t stride = static_cast<size_t>(img.width) * static_cast<size_t>(img.channels);
    img.pixels.resize(stride * static_cast<size_t>(img.height));
    std::vector<std::uint8_t> row;
    if (comps == 4) row.resize(static_cast<size_t>(img.width) * 4);
    if (!jpeg_phase_scan(&ctx_, img.pixels.data(), stride, row.empty() ? nullptr : row.data(), jpeg_cmyk_row_to_rgb))
      fail("corrupt data");
    return img;  // the trailing EOI marker is not required (jpeg_finish_decompress is not called)
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    throw format_error(graft::detail::cat(name_, ": invalid JPEG data (", what, ctx_.message[0] ? ": " + std::string(ctx_.message) : std::string(), ")"));
  }
  JpegContext ctx_;
  std::string name_;
};

}  // namespace detail

/// Width and height from a JPEG header (no pixel is decoded).
inline ImageInfo read_jpeg_info(const std::uint8_t* data, size_t n, const std::string& name) {
  return detail::JpegDecoder(data, n, name).info();
}

/// Decode a JPEG held in memory: 1 channel for gray files, 3 for colour ones.
inline Image decode_jpeg(const std::uint8_t* data, size_t n, const std::string& name) {
  detail::JpegDecoder d(data, n, name);
  return d.decode();
}

}  // namespace data
}  // namespace graft
