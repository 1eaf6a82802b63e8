// graft — GIF decoding through giflib (Debian libgif-dev): the first frame, as PIL (and so Keras'
// load_img) shows it, and as tf.image.decode_image(expand_animations=False) truncates animations:
//   - the canvas is the logical screen, enlarged to the frame's extent if the frame lies beyond it
//     (PIL does this);
//   - canvas pixels outside the frame hold palette index 0, or the frame's transparent index when
//     its graphic control extension declares one (PIL's fill of a first frame);
//   - indices go through the local palette, else the global one, else a gray ramp; an index past
//     the end of a short palette reads gray (i, i, i), as PIL's 256-entry palette initialised as
//     a ramp does;
//   - a transparent index gives alpha 0 (4 channels out), which color_mode "rgb" drops again.
// Records are read one at a time (never DGifSlurp), so a frame is only allocated after its size
// has been checked against graft::limits().max_image_pixels.
#pragma once

#include <gif_lib.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "graft/data/image.hpp"

namespace graft {
namespace data {
namespace detail {

struct GifMemory {
  const std::uint8_t* data;
  size_t size, pos;
};

inline int gif_on_read(GifFileType* gif, GifByteType* out, int len) {
  GifMemory* m = static_cast<GifMemory*>(gif->UserData);
  if (len <= 0) return 0;
  const size_t k = std::min(static_cast<size_t>(len), m->size - m->pos);
  std::memcpy(out, m->data + m->pos, k);
  m->pos += k;
  return static_cast<int>(k);
}

class GifDecoder {
 public:
  GifDecoder(const std::uint8_t* data, size_t n, const std::string& name) : mem_{data, n, 0}, name_(name) {
    int err = 0;
    gif_ = DGifOpen(&mem_, gif_on_read, &err);
    if (!gif_) fail("cannot read the screen descriptor", err);
  }
  ~GifDecoder() {
    if (gif_) {
      int err = 0;
      DGifCloseFile(gif_, &err);
    }
  }
  GifDecoder(const GifDecoder&) = delete;
  GifDecoder& operator=(const GifDecoder&) = delete;

  /// The first frame: 3 channels, or 4 when it has a transparent index.
  Image decode(bool header_only = false) {
    int transparent = -1;
    for (;;) {
      GifRecordType type = UNDEFINED_RECORD_TYPE;
      if (DGifGetRecordType(gif_, &type) == GIF_ERROR) fail("truncated or corrupt record", gif_->Error);
      if (type == TERMINATE_RECORD_TYPE) throw format_error(name_ + ": invalid GIF data (no image in the file)");
      if (type == EXTENSION_RECORD_TYPE) {
        int code = 0;
        GifByteType* ext = nullptr;
        if (DGifGetExtension(gif_, &code, &ext) == GIF_ERROR) fail("corrupt extension", gif_->Error);
        if (code == GRAPHICS_EXT_FUNC_CODE && ext && ext[0] >= 4) transparent = (ext[1] & 1) ? ext[4] : -1;
        while (ext) {
          if (DGifGetExtensionNext(gif_, &ext) == GIF_ERROR) fail("corrupt extension", gif_->Error);
        }
        continue;
      }
      if (type != IMAGE_DESC_RECORD_TYPE) continue;
      if (DGifGetImageDesc(gif_) == GIF_ERROR) fail("corrupt image descriptor", gif_->Error);
      return frame(transparent, header_only);
    }
  }

 private:
  Image frame(int transparent, bool header_only) {
    const GifImageDesc& d = gif_->Image;
    const std::int64_t x0 = d.Left, y0 = d.Top, fw = d.Width, fh = d.Height;
    if (x0 < 0 || y0 < 0 || fw < 0 || fh < 0) fail("negative frame extent", 0);
    const std::int64_t W = std::max<std::int64_t>(gif_->SWidth, x0 + fw), H = std::max<std::int64_t>(gif_->SHeight, y0 + fh);
    check_image_dims(name_, "GIF", W, H);
    check_image_dims(name_, "GIF", std::max<std::int64_t>(fw, 1), std::max<std::int64_t>(fh, 1));
    Image img;
    img.width = static_cast<int>(W);
    img.height = static_cast<int>(H);
    img.channels = transparent >= 0 ? 4 : 3;
    if (header_only) return img;
    const size_t w = static_cast<size_t>(W);
    std::vector<GifPixelType> idx(w * static_cast<size_t>(H), static_cast<GifPixelType>(transparent >= 0 ? transparent : 0));
    if (fw > 0 && fh > 0) {
      static const int start[4] = {0, 4, 2, 1}, step[4] = {8, 8, 4, 2};
      const int passes = d.Interlace ? 4 : 1;
      for (int p = 0; p < passes; ++p) {
        for (std::int64_t r = d.Interlace ? start[p] : 0; r < fh; r += d.Interlace ? step[p] : 1) {
          GifPixelType* row = idx.data() + static_cast<size_t>(y0 + r) * w + static_cast<size_t>(x0);
          if (DGifGetLine(gif_, row, static_cast<int>(fw)) == GIF_ERROR) fail("truncated or corrupt pixel data", gif_->Error);
        }
      }
    }
    // palette: 256 entries, a gray ramp under the file's colours
    std::uint8_t pal[256][3];
    for (int i = 0; i < 256; ++i) pal[i][0] = pal[i][1] = pal[i][2] = static_cast<std::uint8_t>(i);
    const ColorMapObject* cm = d.ColorMap ? d.ColorMap : gif_->SColorMap;
    if (cm && cm->Colors) {
      const int k = std::min(cm->ColorCount, 256);
      for (int i = 0; i < k; ++i) {
        pal[i][0] = cm->Colors[i].Red;
        pal[i][1] = cm->Colors[i].Green;
        pal[i][2] = cm->Colors[i].Blue;
      }
    }
    const int c = img.channels;
    img.pixels.resize(idx.size() * static_cast<size_t>(c));
    std::uint8_t* out = img.pixels.data();
    for (size_t i = 0; i < idx.size(); ++i, out += c) {
      const int v = idx[i];
      out[0] = pal[v][0];
      out[1] = pal[v][1];
      out[2] = pal[v][2];
      if (c == 4) out[3] = v == transparent ? 0 : 255;
    }
    return img;
  }

  [[noreturn]] void fail(const char* what, int err) {
    const char* s = err ? GifErrorString(err) : nullptr;
    throw format_error(graft::detail::cat(name_, ": invalid GIF data (", what, s ? std::string(": ") + s : std::string(), ")"));
  }

  GifMemory mem_;
  std::string name_;
  GifFileType* gif_ = nullptr;
};

}  // namespace detail

/// Width and height of a GIF's first frame canvas (screen and first image descriptor).
inline ImageInfo read_gif_info(const std::uint8_t* data, size_t n, const std::string& name) {
  detail::GifDecoder d(data, n, name);
  Image img = d.decode(/*header_only=*/true);
  return ImageInfo{ImageFormat::gif, img.height, img.width};
}

/// Decode a GIF's first frame held in memory: 3 channels, or 4 with a transparent index.
inline Image decode_gif(const std::uint8_t* data, size_t n, const std::string& name) {
  detail::GifDecoder d(data, n, name);
  return d.decode();
}

}  // namespace data
}  // namespace graft
