// libFuzzer target over graft's image decoders from memory (PNG via libpng, JPEG via
// libjpeg-turbo, GIF via giflib, graft's own BMP parser), the header check, the colour
// conversions and the resize. Any graft::error is an expected outcome; anything else (a crash, a
// sanitizer report, another exception, a leak, a timeout) is a finding.
//
//   clang++-14 -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude \
//     tests/fuzz/fuzz_image_decode.cpp -o fuzz_image_decode -lpng -ljpeg -lgif
//   ./fuzz_image_decode -max_len=65536 -rss_limit_mb=2048 CORPUS_DIR
//
// The pixel limit is lowered to 2^20 so that a header declaring a large image stays within the
// fuzzer's memory and time limits (the default limit's refusal is covered by tests/test_images.cpp).
#include <cstddef>
#include <cstdint>

#include "graft/data/image.hpp"
#include "graft/data/image_decode.hpp"
#include "graft/data/image_resize.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, size_t size) {
  using namespace graft::data;
  graft::limits().max_image_pixels = std::int64_t(1) << 20;
  try {
    (void)read_image_info(data, size, "fuzz");
  } catch (const graft::error&) {
  }
  try {
    const Image native = decode_image_native(data, size, "fuzz");
    if (native.channels < 1 || native.channels > 4 ||
        native.pixels.size() != static_cast<size_t>(native.height) * static_cast<size_t>(native.width) * static_cast<size_t>(native.channels))
      __builtin_trap();
    for (ColorMode m : {ColorMode::grayscale, ColorMode::rgb, ColorMode::rgba}) {
      Image img = native;
      convert_color(img, m);
      if (img.channels != color_mode_channels(m)) __builtin_trap();
    }
    ResizeOptions o;
    o.height = 7;
    o.width = 5;
    o.interpolation = static_cast<Interpolation>(size % 4);
    o.crop_to_aspect_ratio = (size / 4) % 3 == 1;
    o.pad_to_aspect_ratio = (size / 4) % 3 == 2;
    (void)resize_image(native, o);
  } catch (const graft::error&) {
  }
  return 0;
}
