// graft — image decoding: PNG, JPEG, GIF and BMP files or buffers to 8-bit HWC images, the
// format sniffed from the bytes (a text file named .jpg is refused as text, a PNG named .jpg is
// read as the PNG it is), converted to Keras' color_mode the way PIL converts (data/image.hpp).
//
//   auto img = graft::data::read_image("cat.jpg", graft::data::ColorMode::rgb);   // H x W x 3
//   auto same = graft::data::decode_image(bytes.data(), bytes.size(), "cat.jpg", ColorMode::rgb);
//   auto info = graft::data::check_image_file("cat.jpg");   // format + size, no pixel decoded
//
// Every failure is a graft::error naming the file: io_error (cannot open or read), format_error
// (not an image, truncated, corrupt, a header declaring more pixels than
// graft::limits().max_image_pixels: refused before anything is allocated for them).
// Decoders: libpng, libjpeg-turbo, giflib, and graft's own bounded BMP parser.
#pragma once

#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "graft/data/image.hpp"
#include "graft/data/image_bmp.hpp"
#include "graft/data/image_gif.hpp"
#include "graft/data/image_jpeg.hpp"
#include "graft/data/image_png.hpp"

namespace graft {
namespace data {

/// Decode an image held in memory with the channels its file has (1 to 4).
inline Image decode_image_native(const std::uint8_t* data, size_t n, const std::string& name) {
  switch (sniff_image_format(data, n)) {
    case ImageFormat::png: return decode_png(data, n, name);
    case ImageFormat::jpeg: return decode_jpeg(data, n, name);
    case ImageFormat::gif: return decode_gif(data, n, name);
    case ImageFormat::bmp: return decode_bmp(data, n, name);
    default: throw format_error(detail::unknown_format_message(name, data, n));
  }
}

/// Decode an image held in memory and convert it to color_mode (1, 3 or 4 channels).
/// `name` is only used in messages.
inline Image decode_image(const std::uint8_t* data, size_t n, const std::string& name, ColorMode mode = ColorMode::rgb) {
  Image img = decode_image_native(data, n, name);
  convert_color(img, mode);
  return img;
}

/// Format and size from the header of an image held in memory (the size checked against
/// graft::limits().max_image_pixels); no pixel is decoded.
inline ImageInfo read_image_info(const std::uint8_t* data, size_t n, const std::string& name) {
  switch (sniff_image_format(data, n)) {
    case ImageFormat::png: return read_png_info(data, n, name);
    case ImageFormat::jpeg: return read_jpeg_info(data, n, name);
    case ImageFormat::gif: return read_gif_info(data, n, name);
    case ImageFormat::bmp: return read_bmp_info(data, n, name);
    default: throw format_error(detail::unknown_format_message(name, data, n));
  }
}

namespace detail {

/// Bytes an image file may have: 8 per pixel allowed by the limit, plus 64 MiB of metadata.
inline std::uint64_t max_image_file_bytes() {
  return static_cast<std::uint64_t>(graft::limits().max_image_pixels) * 8u + (std::uint64_t(64) << 20);
}

/// Read [offset, offset + count) of a file, or all of it (count = npos); the file size is checked
/// against max_image_file_bytes() first.
inline std::vector<std::uint8_t> read_file_part(const std::string& path, std::uint64_t* file_size = nullptr,
                                                size_t count = static_cast<size_t>(-1), bool from_end = false) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    const int e = errno;
    throw io_error(graft::detail::cat(path, ": cannot open (", std::strerror(e), ")"));
  }
  struct Closer {
    std::FILE* f;
    ~Closer() { std::fclose(f); }
  } closer{f};
  struct ::stat st;
  if (::fstat(::fileno(f), &st) != 0) throw io_error(path + ": cannot read (fstat failed)");
  if (S_ISDIR(st.st_mode)) throw io_error(path + ": is a directory, not an image file");
  if (!S_ISREG(st.st_mode)) throw io_error(path + ": cannot read (not a regular file)");
  const std::uint64_t size = static_cast<std::uint64_t>(st.st_size);
  if (file_size) *file_size = size;
  if (size > max_image_file_bytes())
    throw format_error(graft::detail::cat(path, ": ", size, " bytes, more than an image within graft::limits().max_image_pixels = ",
                                          graft::limits().max_image_pixels, " can have (", max_image_file_bytes(),
                                          " bytes); raise graft::limits().max_image_pixels to read it"));
  const std::uint64_t k = count < size ? count : size;
  const std::uint64_t start = from_end ? size - k : 0;
  if (std::fseek(f, static_cast<long>(start), SEEK_SET) != 0) throw io_error(path + ": cannot read (seek failed)");
  std::vector<std::uint8_t> buf(static_cast<size_t>(k));
  if (k && std::fread(buf.data(), 1, buf.size(), f) != buf.size()) {
    const int e = errno;
    throw io_error(graft::detail::cat(path, ": read failed (", std::ferror(f) ? std::strerror(e) : "the file shrank while read", ")"));
  }
  return buf;
}

/// Whether the last bytes of a file look like the end of its format (IEND, EOI, GIF trailer):
/// a truncated file fails this, a complete one passes unless it carries trailing bytes.
inline bool image_end_looks_complete(ImageFormat f, const std::vector<std::uint8_t>& tail) {
  const size_t n = tail.size();
  switch (f) {
    case ImageFormat::png: {
      static const std::uint8_t iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82};
      return n >= 12 && std::memcmp(tail.data() + n - 12, iend, 12) == 0;
    }
    case ImageFormat::jpeg: return n >= 2 && tail[n - 2] == 0xFF && tail[n - 1] == 0xD9;
    case ImageFormat::gif: return n >= 1 && tail[n - 1] == 0x3B;
    default: return false;  // BMP: cheap to decode
  }
}

}  // namespace detail

/// Read and decode an image file, converted to color_mode.
inline Image read_image(const std::string& path, ColorMode mode = ColorMode::rgb) {
  const std::vector<std::uint8_t> bytes = detail::read_file_part(path);
  return decode_image(bytes.data(), bytes.size(), path, mode);
}

/// How much of a file check_image_file() decodes.
enum class ImageCheck {
  /// The header (format, size within the limit); files whose last bytes do not end the way
  /// their format ends (truncated ones) are decoded in full as well.
  header,
  /// Every pixel: a file that passes decodes later unless it changes on disk.
  full,
};

/// Check that a file is an image graft decodes, reading as little of it as `how` allows;
/// returns its format and size, throws what read_image() would throw.
inline ImageInfo check_image_file(const std::string& path, ImageCheck how = ImageCheck::header) {
  if (how == ImageCheck::full) {
    const std::vector<std::uint8_t> bytes = detail::read_file_part(path);
    const Image img = decode_image_native(bytes.data(), bytes.size(), path);
    return ImageInfo{sniff_image_format(bytes.data(), bytes.size()), img.height, img.width};
  }
  std::uint64_t size = 0;
  const size_t prefix = 64 << 10;
  std::vector<std::uint8_t> head = detail::read_file_part(path, &size, prefix);
  ImageInfo info;
  if (head.size() < size) {
    try {
      info = read_image_info(head.data(), head.size(), path);
    } catch (const format_error&) {  // the header may run past the prefix (a JPEG's big EXIF block)
      head = detail::read_file_part(path, &size);
      info = read_image_info(head.data(), head.size(), path);
    }
  } else {
    info = read_image_info(head.data(), head.size(), path);
  }
  const std::vector<std::uint8_t> tail = head.size() == size ? head : detail::read_file_part(path, nullptr, 16, /*from_end=*/true);
  if (!detail::image_end_looks_complete(info.format, tail)) {
    const std::vector<std::uint8_t> bytes = head.size() == size ? head : detail::read_file_part(path);
    decode_image_native(bytes.data(), bytes.size(), path);
  }
  return info;
}

}  // namespace data
}  // namespace graft
