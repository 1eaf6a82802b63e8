// graft — writing images: PNG through libpng and JPEG through libjpeg-turbo (the libraries graft
// already decodes with), and keras.utils.save_img / array_to_img for tensors. What users write
// them for: a folder of images for image_dataset_from_directory made from arrays (a dataset
// exported from another format, test fixtures), and looking at what augmentation layers do
// (Chollet's book plots augmented samples; here they go to files).
//
//   graft::data::write_png("out/0001.png", img);                  // lossless, 1-4 channels
//   graft::data::write_jpeg("out/0002.jpg", img, 90);              // gray or RGB, quality 1..100
//   graft::data::save_img("augmented.png", batch.slice_rows(0, 1)); // Keras' save_img(scale=True)
//
// PNG: 8-bit gray, gray + alpha, RGB or RGBA, zlib level 6 (libpng's and PIL's default), no
// gamma or colour chunks; decoding the file gives the pixels back exactly. JPEG: libjpeg's
// defaults with jpeg_set_quality(quality) (baseline, 4:2:0 chroma subsampling, the IJG tables
// scaled by quality): the same bytes as PIL's Image.save(f, "JPEG", quality=q) (compared for
// gray and RGB at quality 75 and 90, Pillow 9.4); gray images are 1-component JPEGs.
// Files are written to a temporary name beside the target and renamed onto it, so a failed
// write never leaves a partial image where a reader looks for one. Errors: value_error (an empty
// image, a channel count the format cannot hold, a quality out of range), io_error (the file
// cannot be written), naming the file.
#pragma once

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <jpeglib.h>  // after <cstdio>: it needs size_t and FILE
#include <png.h>

#include "graft/core/errors.hpp"
#include "graft/core/tensor.hpp"
#include "graft/data/image.hpp"
#include "graft/io/atomic_file.hpp"

namespace graft {
namespace data {
namespace detail {

inline void check_image_to_write(const Image& img, const std::string& name, int max_channels) {
  if (img.width <= 0 || img.height <= 0)
    throw value_error(graft::detail::cat(name, ": cannot write an empty image (", img.height, " x ", img.width, ")"));
  if (img.channels < 1 || img.channels > max_channels)
    throw value_error(graft::detail::cat(name, ": cannot write an image of ", img.channels, " channel(s) (1 to ", max_channels, ")"));
  if (img.pixels.size() != static_cast<size_t>(img.width) * static_cast<size_t>(img.height) * static_cast<size_t>(img.channels))
    throw value_error(graft::detail::cat(name, ": the image holds ", img.pixels.size(), " bytes, not ", img.height, " x ", img.width,
                                         " x ", img.channels));
}

struct PngWriteContext {
  png_structp png = nullptr;
  png_infop info = nullptr;
  std::vector<std::uint8_t>* out = nullptr;
  char message[256] = {0};
};

inline void png_write_on_error(png_structp png, png_const_charp msg) {
  auto* ctx = static_cast<PngWriteContext*>(png_get_error_ptr(png));
  if (!ctx->message[0]) std::snprintf(ctx->message, sizeof ctx->message, "%s", msg ? msg : "error");
  png_longjmp(png, 1);
}
inline void png_write_on_data(png_structp png, png_bytep data, png_size_t len) {
  auto* ctx = static_cast<PngWriteContext*>(png_get_io_ptr(png));
  ctx->out->insert(ctx->out->end(), data, data + len);
}
inline void png_write_on_flush(png_structp) {}

/// Holds only C data: setjmp guards the whole libpng sequence.
inline bool png_write_phase(PngWriteContext* ctx, const Image* img, png_bytepp rows, int level) {
  if (setjmp(png_jmpbuf(ctx->png))) return false;
  static const int types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
  png_set_write_fn(ctx->png, ctx, png_write_on_data, png_write_on_flush);
  png_set_compression_level(ctx->png, level);
  png_set_IHDR(ctx->png, ctx->info, static_cast<png_uint_32>(img->width), static_cast<png_uint_32>(img->height), 8,
               types[img->channels], PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(ctx->png, ctx->info);
  png_write_image(ctx->png, rows);
  png_write_end(ctx->png, nullptr);
  return true;
}

struct JpegWriteContext {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr err;
  std::jmp_buf jump;
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  char message[JMSG_LENGTH_MAX + 64];
};

inline void jpeg_write_on_error(j_common_ptr c) {
  auto* ctx = static_cast<JpegWriteContext*>(c->client_data);
  (*c->err->format_message)(c, ctx->message);
  std::longjmp(ctx->jump, 1);
}

/// Holds only C data: setjmp guards the whole libjpeg sequence (the buffer is libjpeg's malloc).
inline bool jpeg_write_phase(JpegWriteContext* ctx, const Image* img, int quality) {
  if (setjmp(ctx->jump)) return false;
  jpeg_create_compress(&ctx->cinfo);
  ctx->cinfo.client_data = ctx;
  jpeg_mem_dest(&ctx->cinfo, &ctx->buf, &ctx->size);
  ctx->cinfo.image_width = static_cast<JDIMENSION>(img->width);
  ctx->cinfo.image_height = static_cast<JDIMENSION>(img->height);
  ctx->cinfo.input_components = img->channels;
  ctx->cinfo.in_color_space = img->channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&ctx->cinfo);
  jpeg_set_quality(&ctx->cinfo, quality, TRUE);
  jpeg_start_compress(&ctx->cinfo, TRUE);
  const size_t stride = static_cast<size_t>(img->width) * static_cast<size_t>(img->channels);
  while (ctx->cinfo.next_scanline < ctx->cinfo.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(img->pixels.data() + static_cast<size_t>(ctx->cinfo.next_scanline) * stride);
    jpeg_write_scanlines(&ctx->cinfo, &row, 1);
  }
  jpeg_finish_compress(&ctx->cinfo);
  return true;
}

/// `bytes` to `path` through a temporary file beside it, renamed onto it when complete.
inline void write_file_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  const std::string tmp = graft::detail::temp_path_beside(path);
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw io_error(graft::detail::cat(path, ": cannot write the image (", std::strerror(errno), ")"));
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  const bool closed = std::fclose(f) == 0;
  if (!ok || !closed || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw io_error(graft::detail::cat(path, ": writing the image failed (disk full, or the folder is not writable?)"));
  }
}

}  // namespace detail

/// PNG file bytes of an 8-bit image of 1 to 4 channels; zlib compression level 0..9.
inline std::vector<std::uint8_t> encode_png(const Image& img, int compress_level = 6, const std::string& name = "PNG image") {
  detail::check_image_to_write(img, name, 4);
  if (compress_level < 0 || compress_level > 9)
    throw value_error(graft::detail::cat(name, ": PNG compression level must be 0..9, got ", compress_level));
  std::vector<std::uint8_t> out;
  detail::PngWriteContext ctx;
  ctx.out = &out;
  ctx.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, detail::png_write_on_error, nullptr);
  if (ctx.png) ctx.info = png_create_info_struct(ctx.png);
  const size_t stride = static_cast<size_t>(img.width) * static_cast<size_t>(img.channels);
  std::vector<png_bytep> rows(static_cast<size_t>(img.height));
  for (size_t y = 0; y < rows.size(); ++y) rows[y] = const_cast<png_bytep>(img.pixels.data() + y * stride);
  const bool ok = ctx.png && ctx.info && detail::png_write_phase(&ctx, &img, rows.data(), compress_level);
  if (ctx.png) png_destroy_write_struct(&ctx.png, ctx.info ? &ctx.info : nullptr);
  if (!ok) throw io_error(graft::detail::cat(name, ": PNG encoding failed (", ctx.message[0] ? ctx.message : "out of memory", ")"));
  return out;
}

/// JPEG file bytes of an 8-bit gray (1 channel) or RGB (3 channels) image; quality 1..100
/// (PIL's default is 75).
inline std::vector<std::uint8_t> encode_jpeg(const Image& img, int quality = 75, const std::string& name = "JPEG image") {
  detail::check_image_to_write(img, name, 3);
  if (img.channels == 2)
    throw value_error(name + ": JPEG holds gray or RGB images; convert the gray + alpha image first (convert_color)");
  if (quality < 1 || quality > 100) throw value_error(graft::detail::cat(name, ": JPEG quality must be 1..100, got ", quality));
  detail::JpegWriteContext ctx;
  std::memset(&ctx.cinfo, 0, sizeof ctx.cinfo);
  ctx.message[0] = 0;
  ctx.cinfo.err = jpeg_std_error(&ctx.err);
  ctx.err.error_exit = detail::jpeg_write_on_error;
  ctx.cinfo.client_data = &ctx;
  const bool ok = detail::jpeg_write_phase(&ctx, &img, quality);
  std::vector<std::uint8_t> out;
  if (ok) out.assign(ctx.buf, ctx.buf + ctx.size);
  jpeg_destroy_compress(&ctx.cinfo);
  std::free(ctx.buf);
  if (!ok) throw io_error(graft::detail::cat(name, ": JPEG encoding failed (", ctx.message, ")"));
  return out;
}

/// Write an 8-bit image (1 to 4 channels) as a PNG file.
inline void write_png(const std::string& path, const Image& img, int compress_level = 6) {
  detail::write_file_bytes(path, encode_png(img, compress_level, path));
}

/// Write an 8-bit gray or RGB image as a JPEG file (quality 1..100).
inline void write_jpeg(const std::string& path, const Image& img, int quality = 75) {
  detail::write_file_bytes(path, encode_jpeg(img, quality, path));
}

/// keras.utils.array_to_img for a channels-last (H, W, C) tensor, C = 1, 3 or 4 (a leading batch
/// axis of 1 is allowed): with `scale`, values are shifted to start at 0 and divided by their
/// maximum (when it is not 0), then multiplied by 255; then cast to 8 bits as numpy's
/// astype("uint8") does for values in range (truncation), values outside 0..255 clamped.
template <class T>
Image array_to_img(const Tensor<T>& x, bool scale = true) {
  Shape s = x.shape();
  if (s.size() == 4 && s[0] == 1) s.erase(s.begin());
  if (s.size() != 3)
    throw value_error(graft::detail::cat("array_to_img: expected an image array of rank 3 (H, W, C), got shape ", shape_str(x.shape())));
  if (s[2] != 1 && s[2] != 3 && s[2] != 4)
    throw value_error(graft::detail::cat("array_to_img: unsupported channel number: ", s[2], " (1, 3 or 4)"));
  Image img;
  img.height = static_cast<int>(s[0]);
  img.width = static_cast<int>(s[1]);
  img.channels = static_cast<int>(s[2]);
  const Index n = x.size();
  double lo = 0, hi = 1;
  if (scale && n > 0) {
    lo = *std::min_element(x.begin(), x.end());
    const double mx = static_cast<double>(*std::max_element(x.begin(), x.end())) - lo;
    hi = mx != 0 ? mx : 1;
  }
  img.pixels.resize(static_cast<size_t>(n));
  for (Index i = 0; i < n; ++i) {
    double v = static_cast<double>(x[i]);
    if (scale) v = (v - lo) / hi * 255.0;
    v = std::isnan(v) ? 0.0 : std::min(255.0, std::max(0.0, v));
    img.pixels[static_cast<size_t>(i)] = static_cast<std::uint8_t>(v);  // truncation, as astype("uint8")
  }
  return img;
}

/// keras.utils.save_img(path, x, scale=True, file_format=None): the array as an image file, the
/// format from `file_format` ("png", "jpeg"/"jpg") or else the file's extension; an RGBA array
/// written as JPEG loses its alpha channel (Keras warns and converts to RGB). JPEG quality: PIL's
/// default 75 unless given.
template <class T>
void save_img(const std::string& path, const Tensor<T>& x, bool scale = true, std::string file_format = "", int jpeg_quality = 75) {
  if (file_format.empty()) {
    const size_t dot = path.rfind('.');
    file_format = dot == std::string::npos ? std::string() : path.substr(dot + 1);
  }
  std::transform(file_format.begin(), file_format.end(), file_format.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  Image img = array_to_img(x, scale);
  if (file_format == "png") return write_png(path, img);
  if (file_format == "jpg" || file_format == "jpeg") {
    if (img.channels == 4) convert_color(img, ColorMode::rgb);
    return write_jpeg(path, img, jpeg_quality);
  }
  throw value_error(graft::detail::cat("save_img: ", path, ": unknown file format '", file_format,
                                       "' (png or jpeg; give file_format or a .png / .jpg / .jpeg name)"));
}

}  // namespace data
}  // namespace graft
