// graft — decoded images: the 8-bit HWC Image every decoder returns, the formats graft reads
// (sniffed from the bytes, never from the file name), the pixel limit, and the colour conversions
// Keras applies through PIL (load_img, image_dataset_from_directory):
//
//   grayscale <- L, LA (alpha dropped), RGB/RGBA: PIL's ITU-R 601-2 luma in 16-bit fixed point,
//                L = (R*19595 + G*38470 + B*7471 + 0x8000) >> 16 (Pillow's L24; it differs from
//                R*299/1000 + G*587/1000 + B*114/1000 truncated for about 1 pixel in 3)
//   rgb       <- L and LA replicated, RGBA with its alpha dropped (PIL convert('RGB'))
//   rgba      <- L, LA, RGB with alpha 255 where the file has none (a PNG tRNS colour key or a
//                palette's transparent entries give alpha 0, as PIL's convert('RGBA'))
//
// Palettes are expanded by the decoders (a palette entry's luma equals PIL's P->L conversion).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "graft/core/errors.hpp"
#include "graft/core/limits.hpp"

namespace graft {
namespace data {

/// An 8-bit image, rows of pixels of `channels` interleaved samples (HWC): 1 = gray, 2 = gray +
/// alpha, 3 = RGB, 4 = RGBA.
struct Image {
  int height = 0, width = 0, channels = 0;
  std::vector<std::uint8_t> pixels;
  std::uint8_t at(int y, int x, int c) const {
    return pixels[(static_cast<size_t>(y) * static_cast<size_t>(width) + static_cast<size_t>(x)) * static_cast<size_t>(channels) +
                  static_cast<size_t>(c)];
  }
};

/// The file formats graft decodes (Keras' ALLOWLIST_FORMATS: .bmp .gif .jpeg .jpg .png).
enum class ImageFormat { unknown, png, jpeg, gif, bmp };

inline const char* image_format_name(ImageFormat f) {
  switch (f) {
    case ImageFormat::png: return "PNG";
    case ImageFormat::jpeg: return "JPEG";
    case ImageFormat::gif: return "GIF";
    case ImageFormat::bmp: return "BMP";
    default: return "unknown";
  }
}

/// Keras' color_mode: the number of channels of every decoded image.
enum class ColorMode { grayscale = 1, rgb = 3, rgba = 4 };

inline int color_mode_channels(ColorMode m) { return static_cast<int>(m); }
inline const char* color_mode_name(ColorMode m) {
  return m == ColorMode::grayscale ? "grayscale" : m == ColorMode::rgba ? "rgba" : "rgb";
}
/// "grayscale", "rgb" or "rgba" (Keras' names), else value_error.
inline ColorMode parse_color_mode(const std::string& s) {
  if (s == "grayscale") return ColorMode::grayscale;
  if (s == "rgb") return ColorMode::rgb;
  if (s == "rgba") return ColorMode::rgba;
  throw value_error("color_mode must be one of \"grayscale\", \"rgb\", \"rgba\"; received color_mode=\"" + s + "\"");
}

/// What a header declares: enough to check a file without decoding its pixels.
struct ImageInfo {
  ImageFormat format = ImageFormat::unknown;
  int height = 0, width = 0;
};

/// The format the bytes start with (PNG signature, JPEG SOI + marker, GIF87a/GIF89a, "BM").
inline ImageFormat sniff_image_format(const std::uint8_t* p, size_t n) {
  static const std::uint8_t png[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  if (n >= 8 && std::memcmp(p, png, 8) == 0) return ImageFormat::png;
  if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return ImageFormat::jpeg;
  if (n >= 6 && (std::memcmp(p, "GIF87a", 6) == 0 || std::memcmp(p, "GIF89a", 6) == 0)) return ImageFormat::gif;
  if (n >= 2 && p[0] == 'B' && p[1] == 'M') return ImageFormat::bmp;
  return ImageFormat::unknown;
}

namespace detail {

/// "<name>: not a PNG, JPEG, GIF or BMP image (...)", showing what the bytes look like.
inline std::string unknown_format_message(const std::string& name, const std::uint8_t* p, size_t n) {
  if (n == 0) return name + ": not an image: the file is empty";
  const size_t k = n < 16 ? n : 16;
  bool text = true;
  for (size_t i = 0; i < k; ++i)
    if (!(p[i] >= 0x20 && p[i] < 0x7F) && p[i] != '\n' && p[i] != '\r' && p[i] != '\t') text = false;
  std::string shown;
  if (text) {
    for (size_t i = 0; i < k; ++i) shown += (p[i] == '\n' || p[i] == '\r' || p[i] == '\t') ? ' ' : static_cast<char>(p[i]);
    shown = "text \"" + shown + (n > k ? "...\"" : "\"");
  } else {
    static const char* hex = "0123456789abcdef";
    for (size_t i = 0; i < k; ++i) {
      if (i) shown += ' ';
      shown += hex[p[i] >> 4];
      shown += hex[p[i] & 15];
    }
    shown = "bytes " + shown + (n > k ? " ..." : "");
  }
  return graft::detail::cat(name, ": not a PNG, JPEG, GIF or BMP image (", n, " byte(s), starting with ", shown,
                            "); the format is read from the bytes, not the file name");
}

/// Refuse zero, negative or too many pixels before anything is allocated for them.
inline void check_image_dims(const std::string& name, const char* format, std::int64_t width, std::int64_t height) {
  if (width <= 0 || height <= 0)
    throw format_error(graft::detail::cat(name, ": the ", format, " header declares ", width, " x ", height,
                                          " pixels; an image needs at least 1 x 1"));
  const std::int64_t lim = graft::limits().max_image_pixels;
  if (width > lim || height > lim || width * height > lim)  // (width * height only evaluated when both are <= lim)
    throw format_error(graft::detail::cat(name, ": the ", format, " header declares ", width, " x ", height, " = ",
                                          static_cast<unsigned long long>(width) * static_cast<unsigned long long>(height),
                                          " pixels, above the limit graft::limits().max_image_pixels = ", lim,
                                          " (refused before decoding; raise graft::limits().max_image_pixels to read it)"));
}

/// PIL's RGB -> L (Convert.c, L24): ITU-R 601-2 luma with rounding, in 16-bit fixed point.
inline std::uint8_t pil_luma(unsigned r, unsigned g, unsigned b) {
  return static_cast<std::uint8_t>((r * 19595u + g * 38470u + b * 7471u + 0x8000u) >> 16);
}

}  // namespace detail

/// Convert a decoded image (1 to 4 channels) to color_mode as PIL's convert('L'/'RGB'/'RGBA').
inline void convert_color(Image& img, ColorMode mode) {
  const int want = color_mode_channels(mode), have = img.channels;
  if (have == want) return;
  if (have < 1 || have > 4) throw value_error(graft::detail::cat("convert_color: an image with ", have, " channels"));
  const size_t n = static_cast<size_t>(img.height) * static_cast<size_t>(img.width);
  std::vector<std::uint8_t> out(n * static_cast<size_t>(want));
  const std::uint8_t* s = img.pixels.data();
  std::uint8_t* d = out.data();
  const bool gray = have <= 2, alpha = have == 2 || have == 4;
  for (size_t i = 0; i < n; ++i, s += have, d += want) {
    if (want == 1) {
      d[0] = gray ? s[0] : detail::pil_luma(s[0], s[1], s[2]);
    } else {
      if (gray) {
        d[0] = d[1] = d[2] = s[0];
      } else {
        d[0] = s[0];
        d[1] = s[1];
        d[2] = s[2];
      }
      if (want == 4) d[3] = alpha ? s[have - 1] : 255;
    }
  }
  img.pixels.swap(out);
  img.channels = want;
}

}  // namespace data
}  // namespace graft
