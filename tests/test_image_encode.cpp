// Writing images (graft/data/image_encode.hpp): PNG round trips exactly through graft's decoder
// for 1 to 4 channels, JPEG round trips within the loss of its quality, keras.utils.array_to_img's
// scaling, save_img's format choice, and bad arguments or unwritable paths as errors that leave no
// file behind.
#include <graft/data/image_decode.hpp>
#include <graft/data/image_encode.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

namespace fs = std::filesystem;
using namespace graft;
using namespace graft::data;

namespace {

fs::path encode_dir() {
  static int counter = 0;
  fs::path p = fs::temp_directory_path() / ("graft_test_encode_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

/// A smooth pattern with some noise (photo-like, so JPEG's loss stays small).
Image pattern(int h, int w, int c, unsigned seed) {
  Image img;
  img.height = h;
  img.width = w;
  img.channels = c;
  img.pixels.resize(static_cast<size_t>(h * w * c));
  std::srand(seed);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k)
        img.pixels[static_cast<size_t>((y * w + x) * c + k)] =
            static_cast<std::uint8_t>(120 + 100 * std::sin(0.15 * x + 0.1 * y + k) + std::rand() % 3);
  return img;
}

Image read_back(const fs::path& p) {
  const std::vector<std::uint8_t> bytes = graft::data::detail::read_file_part(p.string());
  return decode_image_native(bytes.data(), bytes.size(), p.string());
}

double mean_abs_diff(const Image& a, const Image& b) {
  double s = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) s += std::abs(int(a.pixels[i]) - int(b.pixels[i]));
  return s / static_cast<double>(a.pixels.size());
}

}  // namespace

TEST_CASE("write_png round-trips every channel count exactly", "[images][encode]") {
  fs::path d = encode_dir();
  for (int c = 1; c <= 4; ++c) {
    Image img = pattern(23, 37, c, static_cast<unsigned>(c));
    for (int i = 0; i < 40; ++i) img.pixels[static_cast<size_t>(i * 7)] = static_cast<std::uint8_t>(i % 2 ? 0 : 255);  // extremes
    fs::path p = d / ("c" + std::to_string(c) + ".png");
    write_png(p.string(), img);
    Image back = read_back(p);
    CHECK(back.height == 23);
    CHECK(back.width == 37);
    CHECK(back.channels == c);
    CHECK(back.pixels == img.pixels);
    CHECK(check_image_file(p.string(), ImageCheck::full).format == ImageFormat::png);
  }
  // compression levels change the size, never the pixels
  Image img = pattern(64, 64, 3, 9);
  auto fast = encode_png(img, 0), small = encode_png(img, 9);
  CHECK(fast.size() > small.size());
  CHECK(decode_png(fast.data(), fast.size(), "fast").pixels == img.pixels);
  CHECK(decode_png(small.data(), small.size(), "small").pixels == img.pixels);
  fs::remove_all(d);
}

TEST_CASE("write_jpeg: gray and RGB within the loss of the quality", "[images][encode]") {
  fs::path d = encode_dir();
  for (int c : {1, 3}) {
    Image img = pattern(48, 40, c, 3);
    fs::path hi = d / ("q95_" + std::to_string(c) + ".jpg"), lo = d / ("q20_" + std::to_string(c) + ".jpg");
    write_jpeg(hi.string(), img, 95);
    write_jpeg(lo.string(), img, 20);
    Image bh = read_back(hi), bl = read_back(lo);
    CHECK(bh.channels == c);  // a gray image is a 1-component JPEG, decoded as gray
    CHECK(bh.height == 48);
    CHECK(bh.width == 40);
    const double eh = mean_abs_diff(img, bh), el = mean_abs_diff(img, bl);
    CHECK(eh < 2.5);
    CHECK(el > eh);
    CHECK(fs::file_size(lo) < fs::file_size(hi));
  }
  fs::remove_all(d);
}

TEST_CASE("array_to_img and save_img follow keras.utils", "[images][encode]") {
  // scale=True: shifted to 0, divided by the maximum, times 255, truncated to 8 bits
  Tensor<float> x(Shape{1, 2, 3, 1});
  const float v[6] = {-1.f, 0.f, 1.f, 0.5f, -0.5f, 0.25f};
  std::copy(v, v + 6, x.data());
  Image a = array_to_img(x);
  REQUIRE(a.channels == 1);
  CHECK(a.height == 2);
  CHECK(a.width == 3);
  const std::vector<std::uint8_t> want = {0, 127, 255, 191, 63, 159};  // (v + 1) / 2 * 255, truncated
  CHECK(a.pixels == want);
  // scale=False: the values as they are, clamped to 0..255
  Tensor<float> y(Shape{1, 2, 3});
  const float w[6] = {-3.f, 0.f, 12.7f, 255.f, 300.f, 99.99f};
  std::copy(w, w + 6, y.data());
  CHECK(array_to_img(y, false).pixels == std::vector<std::uint8_t>{0, 0, 12, 255, 255, 99});
  // a constant array: x - min is 0 everywhere, nothing to divide by
  Tensor<float> z(Shape{4, 4, 3}, 7.f);
  for (auto p : array_to_img(z).pixels) CHECK(p == 0);
  CHECK_THROWS_AS(array_to_img(Tensor<float>(Shape{4, 4, 2})), value_error);
  CHECK_THROWS_AS(array_to_img(Tensor<float>(Shape{4, 4})), value_error);

  fs::path d = encode_dir();
  Tensor<float> rgba(Shape{5, 6, 4});
  for (Index i = 0; i < rgba.size(); ++i) rgba[i] = static_cast<float>(i % 251);
  save_img((d / "a.png").string(), rgba, false);
  Image p = read_back(d / "a.png");
  CHECK(p.channels == 4);
  CHECK(p.pixels == array_to_img(rgba, false).pixels);
  save_img((d / "a.JPG").string(), rgba, false);  // alpha dropped, as Keras does for JPEG
  CHECK(read_back(d / "a.JPG").channels == 3);
  save_img((d / "noext").string(), rgba, true, "jpeg");
  CHECK(check_image_file((d / "noext").string(), ImageCheck::full).format == ImageFormat::jpeg);
  CHECK_THROWS_AS(save_img((d / "a.tiff").string(), rgba), value_error);
  fs::remove_all(d);
}

TEST_CASE("image writers refuse bad input and leave no file behind", "[images][encode]") {
  fs::path d = encode_dir();
  Image empty;
  CHECK_THROWS_AS(write_png((d / "e.png").string(), empty), value_error);
  Image la = pattern(8, 8, 2, 1);
  CHECK_THROWS_AS(write_jpeg((d / "la.jpg").string(), la), value_error);
  Image rgb = pattern(8, 8, 3, 1);
  CHECK_THROWS_AS(write_jpeg((d / "q.jpg").string(), rgb, 0), value_error);
  CHECK_THROWS_AS(write_jpeg((d / "q.jpg").string(), rgb, 101), value_error);
  CHECK_THROWS_AS(write_png((d / "z.png").string(), rgb, 10), value_error);
  Image short_buf = rgb;
  short_buf.pixels.resize(10);
  CHECK_THROWS_AS(write_png((d / "s.png").string(), short_buf), value_error);
  try {
    write_png((d / "no_such_folder" / "x.png").string(), rgb);
    FAIL("no error for a missing folder");
  } catch (const io_error& e) {
    CHECK(std::string(e.what()).find("x.png") != std::string::npos);
  }
  CHECK(fs::is_empty(d));  // nothing written, no temporary file left
  // an existing file is replaced whole
  write_png((d / "r.png").string(), rgb);
  write_png((d / "r.png").string(), pattern(4, 5, 1, 2));
  CHECK(read_back(d / "r.png").width == 5);
  size_t files = 0;
  for (auto& e : fs::directory_iterator(d)) files += e.is_regular_file();
  CHECK(files == 1);
  fs::remove_all(d);
}
