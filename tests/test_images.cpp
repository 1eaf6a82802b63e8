// Image decoding, Keras' resize and image_dataset_from_directory (graft/images.hpp): decoders
// against known pixels of files written here with libpng, libjpeg, giflib and a BMP writer; bad
// files (issue 16's list) as errors naming the file or as listed skips; resize formulas; numpy's
// RandomState shuffle; folder indexing, splits, targets and thread use. Pixel-for-pixel agreement
// with PIL and Keras 3 is checked by tests/images/check_images.py (CTest keras3_images).
#include <graft/data/prefetch.hpp>
#include <graft/images.hpp>

#include <catch2/catch.hpp>
#include <gif_lib.h>
#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

namespace fs = std::filesystem;
using namespace graft;
using namespace graft::data;

namespace {

struct ImgDir {
  fs::path path;
  ImgDir() {
    static int counter = 0;
    path = fs::temp_directory_path() / ("graft_test_images_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~ImgDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

using Bytes = std::vector<std::uint8_t>;

void write_file(const std::string& path, const Bytes& b) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

/// PNG through libpng's simplified writer: format PNG_FORMAT_GRAY/GA/RGB/RGBA(/LINEAR for 16 bits).
Bytes encode_png(const void* px, int w, int h, png_uint_32 format, const void* colormap = nullptr, int colormap_entries = 0) {
  png_image im;
  std::memset(&im, 0, sizeof im);
  im.version = PNG_IMAGE_VERSION;
  im.width = static_cast<png_uint_32>(w);
  im.height = static_cast<png_uint_32>(h);
  im.format = format;
  im.colormap_entries = static_cast<png_uint_32>(colormap_entries);
  png_alloc_size_t size = 0;
  REQUIRE(png_image_write_to_memory(&im, nullptr, &size, 0, px, 0, colormap));
  Bytes out(size);
  REQUIRE(png_image_write_to_memory(&im, out.data(), &size, 0, px, 0, colormap));
  out.resize(size);
  return out;
}

/// JPEG through libjpeg: quality 100, no chroma subsampling.
Bytes encode_jpeg(const std::uint8_t* px, int w, int h, int comps) {
  jpeg_compress_struct c;
  jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char* mem = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &mem, &size);
  c.image_width = static_cast<JDIMENSION>(w);
  c.image_height = static_cast<JDIMENSION>(h);
  c.input_components = comps;
  c.in_color_space = comps == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, 100, TRUE);
  for (int i = 0; i < c.num_components; ++i) c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(px + static_cast<size_t>(c.next_scanline) * static_cast<size_t>(w * comps));
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  Bytes out(mem, mem + size);
  jpeg_destroy_compress(&c);
  std::free(mem);
  return out;
}

int gif_write(GifFileType* g, const GifByteType* b, int n) {
  auto* out = static_cast<Bytes*>(g->UserData);
  out->insert(out->end(), b, b + n);
  return n;
}

/// GIF through giflib: screen (sw, sh), one frame at (x, y) of w x h indices, a 4-colour palette.
Bytes encode_gif(int sw, int sh, int x, int y, int w, int h, const std::vector<std::uint8_t>& idx, int transparent = -1) {
  Bytes out;
  int err = 0;
  GifFileType* g = EGifOpen(&out, gif_write, &err);
  REQUIRE(g != nullptr);
  GifColorType colors[4] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {10, 20, 30}};
  ColorMapObject* cm = GifMakeMapObject(4, colors);
  EGifSetGifVersion(g, true);
  REQUIRE(EGifPutScreenDesc(g, sw, sh, 2, 0, cm) == GIF_OK);
  if (transparent >= 0) {
    GifByteType gce[4] = {1, 0, 0, static_cast<GifByteType>(transparent)};
    REQUIRE(EGifPutExtension(g, GRAPHICS_EXT_FUNC_CODE, 4, gce) == GIF_OK);
  }
  REQUIRE(EGifPutImageDesc(g, x, y, w, h, false, nullptr) == GIF_OK);
  for (int r = 0; r < h; ++r) REQUIRE(EGifPutLine(g, const_cast<GifPixelType*>(idx.data() + r * w), w) == GIF_OK);
  REQUIRE(EGifCloseFile(g, &err) == GIF_OK);
  GifFreeMapObject(cm);
  return out;
}

void le16(Bytes& b, unsigned v) {
  b.push_back(static_cast<std::uint8_t>(v));
  b.push_back(static_cast<std::uint8_t>(v >> 8));
}
void le32(Bytes& b, std::uint32_t v) {
  le16(b, v & 0xFFFF);
  le16(b, v >> 16);
}

/// BMP: 24 bits (px RGB) or 8 bits (px indices, palette RGB), bottom-up, BITMAPINFOHEADER.
Bytes encode_bmp(const std::uint8_t* px, int w, int h, int bits, const std::vector<std::uint8_t>& palette = {}) {
  const int stride = ((w * bits + 31) / 32) * 4;
  const int ncol = static_cast<int>(palette.size() / 3);
  const std::uint32_t off = 14 + 40 + 4 * static_cast<std::uint32_t>(ncol);
  Bytes b{'B', 'M'};
  le32(b, off + static_cast<std::uint32_t>(stride * h));
  le32(b, 0);
  le32(b, off);
  le32(b, 40);
  le32(b, static_cast<std::uint32_t>(w));
  le32(b, static_cast<std::uint32_t>(h));
  le16(b, 1);
  le16(b, static_cast<unsigned>(bits));
  for (int i = 0; i < 4; ++i) le32(b, 0);
  le32(b, static_cast<std::uint32_t>(ncol));
  le32(b, 0);
  for (int i = 0; i < ncol; ++i) {
    b.push_back(palette[static_cast<size_t>(3 * i + 2)]);
    b.push_back(palette[static_cast<size_t>(3 * i + 1)]);
    b.push_back(palette[static_cast<size_t>(3 * i)]);
    b.push_back(0);
  }
  for (int r = h - 1; r >= 0; --r) {
    Bytes row;
    for (int x = 0; x < w; ++x) {
      if (bits == 24) {
        const std::uint8_t* p = px + (r * w + x) * 3;
        row.insert(row.end(), {p[2], p[1], p[0]});
      } else {
        row.push_back(px[r * w + x]);
      }
    }
    row.resize(static_cast<size_t>(stride), 0);
    b.insert(b.end(), row.begin(), row.end());
  }
  return b;
}

/// A w x h RGB test pattern.
std::vector<std::uint8_t> pattern(int w, int h) {
  std::vector<std::uint8_t> p(static_cast<size_t>(w * h * 3));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      std::uint8_t* q = p.data() + (y * w + x) * 3;
      q[0] = static_cast<std::uint8_t>(x * 255 / std::max(1, w - 1));
      q[1] = static_cast<std::uint8_t>(y * 255 / std::max(1, h - 1));
      q[2] = static_cast<std::uint8_t>((x * 7 + y * 13) % 256);
    }
  return p;
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const graft::error& e) {
    return e.what();
  }
  return "";
}

/// Restores the pixel limit at scope exit.
struct PixelLimit {
  std::int64_t saved = graft::limits().max_image_pixels;
  ~PixelLimit() { graft::limits().max_image_pixels = saved; }
};

}  // namespace

TEST_CASE("PNG decoding gives the written pixels exactly, in every color_mode", "[images]") {
  const int w = 5, h = 3;
  const auto rgb = pattern(w, h);
  const Bytes png = encode_png(rgb.data(), w, h, PNG_FORMAT_RGB);
  Image img = decode_image(png.data(), png.size(), "rgb.png", ColorMode::rgb);
  REQUIRE(img.height == h);
  REQUIRE(img.width == w);
  REQUIRE(img.channels == 3);
  CHECK(img.pixels == rgb);
  Image rgba = decode_image(png.data(), png.size(), "rgb.png", ColorMode::rgba);
  REQUIRE(rgba.channels == 4);
  CHECK(rgba.at(2, 4, 3) == 255);
  CHECK(rgba.at(2, 4, 1) == rgb[(2 * w + 4) * 3 + 1]);

  // PIL's luma of pure red, green and blue: 76, 150, 29
  const std::uint8_t prim[9] = {255, 0, 0, 0, 255, 0, 0, 0, 255};
  const Bytes p3 = encode_png(prim, 3, 1, PNG_FORMAT_RGB);
  Image g = decode_image(p3.data(), p3.size(), "prim.png", ColorMode::grayscale);
  REQUIRE(g.channels == 1);
  CHECK(g.pixels == std::vector<std::uint8_t>{76, 150, 29});

  // gray replicated to RGB; gray + alpha: alpha kept for rgba, dropped for rgb
  const std::uint8_t ga[4] = {10, 200, 250, 0};
  const Bytes pga = encode_png(ga, 2, 1, PNG_FORMAT_GA);
  CHECK(decode_image(pga.data(), pga.size(), "ga.png", ColorMode::rgb).pixels == std::vector<std::uint8_t>{10, 10, 10, 250, 250, 250});
  CHECK(decode_image(pga.data(), pga.size(), "ga.png", ColorMode::rgba).pixels == std::vector<std::uint8_t>{10, 10, 10, 200, 250, 250, 250, 0});
  CHECK(decode_image(pga.data(), pga.size(), "ga.png", ColorMode::grayscale).pixels == std::vector<std::uint8_t>{10, 250});

  // a palette with transparency: expanded; alpha only in rgba
  const std::uint8_t cmap[8] = {255, 0, 0, 255, 0, 0, 255, 0};  // RGBA entries: opaque red, transparent blue
  const std::uint8_t ix[3] = {0, 1, 0};
  const Bytes pp = encode_png(ix, 3, 1, PNG_FORMAT_RGBA | PNG_FORMAT_FLAG_COLORMAP, cmap, 2);
  CHECK(decode_image(pp.data(), pp.size(), "p.png", ColorMode::rgb).pixels == std::vector<std::uint8_t>{255, 0, 0, 0, 0, 255, 255, 0, 0});
  CHECK(decode_image(pp.data(), pp.size(), "p.png", ColorMode::rgba).pixels ==
        std::vector<std::uint8_t>{255, 0, 0, 255, 0, 0, 255, 0, 255, 0, 0, 255});

  // 16-bit samples: the high byte
  const std::uint16_t s16[3] = {0x1234, 0xABCD, 0xFF00};
  const Bytes p16 = encode_png(s16, 1, 1, PNG_FORMAT_LINEAR_RGB);
  CHECK(decode_image(p16.data(), p16.size(), "16.png", ColorMode::rgb).pixels == std::vector<std::uint8_t>{0x12, 0xAB, 0xFF});
}

TEST_CASE("JPEG, GIF and BMP decoding give the written pixels", "[images]") {
  const int w = 16, h = 8;
  const auto rgb = pattern(w, h);
  SECTION("JPEG (quality 100, 4:4:4) within the codec's rounding; gray JPEGs stay one channel") {
    const Bytes j = encode_jpeg(rgb.data(), w, h, 3);
    const Image img = decode_image(j.data(), j.size(), "x.jpg", ColorMode::rgb);
    REQUIRE(img.pixels.size() == rgb.size());
    int worst = 0;
    for (size_t i = 0; i < rgb.size(); ++i) worst = std::max(worst, std::abs(int(img.pixels[i]) - int(rgb[i])));
    CHECK(worst <= 6);
    std::vector<std::uint8_t> gray(static_cast<size_t>(w * h));
    for (size_t i = 0; i < gray.size(); ++i) gray[i] = static_cast<std::uint8_t>(i * 2);
    const Bytes jg = encode_jpeg(gray.data(), w, h, 1);
    CHECK(decode_image_native(jg.data(), jg.size(), "g.jpg").channels == 1);
    CHECK(decode_image(jg.data(), jg.size(), "g.jpg", ColorMode::rgb).channels == 3);
  }
  SECTION("GIF: the first frame on its canvas, palette expanded, transparency as alpha") {
    std::vector<std::uint8_t> idx{0, 1, 2, 3, 2, 1};
    const Bytes gif = encode_gif(4, 3, 1, 1, 3, 2, idx, /*transparent=*/3);
    const Image img = decode_image(gif.data(), gif.size(), "x.gif", ColorMode::rgba);
    REQUIRE(img.height == 3);
    REQUIRE(img.width == 4);
    // outside the frame: the transparent index (10, 20, 30, alpha 0)
    CHECK(img.at(0, 0, 0) == 10);
    CHECK(img.at(0, 0, 3) == 0);
    CHECK(img.at(1, 1, 0) == 255);  // index 0: red
    CHECK(img.at(1, 2, 1) == 255);  // index 1: green
    CHECK(img.at(2, 1, 3) == 0);    // index 3: transparent
    CHECK(img.at(2, 2, 2) == 255);  // index 2: blue
    CHECK(decode_image(gif.data(), gif.size(), "x.gif", ColorMode::rgb).channels == 3);
  }
  SECTION("BMP: 24 bits and 8-bit palettes, bottom-up rows") {
    const Bytes b24 = encode_bmp(rgb.data(), w, h, 24);
    CHECK(decode_image(b24.data(), b24.size(), "x.bmp", ColorMode::rgb).pixels == rgb);
    const std::vector<std::uint8_t> pal{1, 2, 3, 40, 50, 60, 200, 100, 0};
    const std::uint8_t ix[6] = {0, 1, 2, 2, 1, 0};
    const Bytes b8 = encode_bmp(ix, 3, 2, 8, pal);
    CHECK(decode_image(b8.data(), b8.size(), "p.bmp", ColorMode::rgb).pixels ==
          std::vector<std::uint8_t>{1, 2, 3, 40, 50, 60, 200, 100, 0, 200, 100, 0, 40, 50, 60, 1, 2, 3});
  }
}

TEST_CASE("the format comes from the bytes, not the file name", "[images]") {
  ImgDir d;
  const auto rgb = pattern(4, 4);
  write_file(d / "really_a_png.jpg", encode_png(rgb.data(), 4, 4, PNG_FORMAT_RGB));
  CHECK(read_image(d / "really_a_png.jpg").pixels == rgb);
  CHECK(check_image_file(d / "really_a_png.jpg").format == ImageFormat::png);
  write_file(d / "notes.jpg", Bytes{'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '\n'});
  const std::string e = error_of([&] { read_image(d / "notes.jpg"); });
  CHECK(e.find("[graft.format]") == 0);
  CHECK(e.find("notes.jpg") != std::string::npos);
  CHECK(e.find("text \"hello world") != std::string::npos);
}

TEST_CASE("bad image files are errors naming the file: truncated, empty, missing, corrupt", "[images]") {
  ImgDir d;
  const int w = 40, h = 30;
  const auto rgb = pattern(w, h);
  std::vector<std::uint8_t> idx(static_cast<size_t>(w * h));
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<std::uint8_t>(i % 4);
  const std::vector<std::pair<std::string, Bytes>> good = {
      {"a.png", encode_png(rgb.data(), w, h, PNG_FORMAT_RGB)},
      {"a.jpg", encode_jpeg(rgb.data(), w, h, 3)},
      {"a.gif", encode_gif(w, h, 0, 0, w, h, idx)},
      {"a.bmp", encode_bmp(rgb.data(), w, h, 24)},
  };
  for (const auto& g : good) {
    INFO(g.first);
    CHECK_NOTHROW(decode_image(g.second.data(), g.second.size(), g.first));
    // (a PNG missing only the end of its IEND chunk decodes, as in PIL: the cuts reach the pixels)
    for (size_t cut : {size_t(0), size_t(5), size_t(20), g.second.size() / 2, g.second.size() - 20}) {
      INFO("truncated to " << cut << " bytes");
      const std::string name = d / ("cut_" + std::to_string(cut) + "_" + g.first);
      write_file(name, Bytes(g.second.begin(), g.second.begin() + static_cast<std::ptrdiff_t>(cut)));
      const std::string e = error_of([&] { read_image(name); });
      CHECK(e.find("[graft.format]") == 0);
      CHECK(e.find(name) != std::string::npos);
      // the indexing check finds it too (a truncated tail triggers a full decode)
      CHECK_THROWS_AS(check_image_file(name), format_error);
    }
  }
  CHECK(error_of([&] { read_image(d / "missing.png"); }).find("[graft.io]") == 0);
  CHECK(error_of([&] { read_image(d.path.string()); }).find("[graft.io]") == 0);
  // a corrupt IDAT inside a complete PNG: the header check passes, decoding fails
  Bytes bad = good[0].second;
  bad[bad.size() / 2] ^= 0x55;
  write_file(d / "corrupt.png", bad);
  CHECK_NOTHROW(check_image_file(d / "corrupt.png"));
  CHECK(error_of([&] { read_image(d / "corrupt.png"); }).find("corrupt.png: invalid PNG data") != std::string::npos);
  CHECK_THROWS_AS(check_image_file(d / "corrupt.png", ImageCheck::full), format_error);
}

TEST_CASE("a header declaring 30000 x 30000 pixels is refused before allocating, with the limit named", "[images]") {
  ImgDir d;
  const auto rgb = pattern(8, 8);
  std::vector<std::uint8_t> idx(64, 1);
  Bytes png = encode_png(rgb.data(), 8, 8, PNG_FORMAT_RGB);
  png[16] = 0, png[17] = 0, png[18] = 0x75, png[19] = 0x30;  // IHDR width 30000
  png[20] = 0, png[21] = 0, png[22] = 0x75, png[23] = 0x30;  // height 30000
  const std::uint32_t crc = static_cast<std::uint32_t>(crc32(0, png.data() + 12, 17));
  png[29] = static_cast<std::uint8_t>(crc >> 24), png[30] = static_cast<std::uint8_t>(crc >> 16);
  png[31] = static_cast<std::uint8_t>(crc >> 8), png[32] = static_cast<std::uint8_t>(crc);
  Bytes jpg = encode_jpeg(rgb.data(), 8, 8, 3);
  for (size_t i = 0; i + 9 < jpg.size(); ++i)
    if (jpg[i] == 0xFF && jpg[i + 1] == 0xC0) {
      jpg[i + 5] = 0x75, jpg[i + 6] = 0x30, jpg[i + 7] = 0x75, jpg[i + 8] = 0x30;
      break;
    }
  Bytes gif = encode_gif(8, 8, 0, 0, 8, 8, idx);
  gif[6] = 0x30, gif[7] = 0x75, gif[8] = 0x30, gif[9] = 0x75;
  Bytes bmp = encode_bmp(rgb.data(), 8, 8, 24);
  bmp[18] = 0x30, bmp[19] = 0x75, bmp[22] = 0x30, bmp[23] = 0x75;
  for (const auto& f : std::vector<std::pair<std::string, Bytes>>{{"huge.png", png}, {"huge.jpg", jpg}, {"huge.gif", gif}, {"huge.bmp", bmp}}) {
    INFO(f.first);
    write_file(d / f.first, f.second);
    const std::string e = error_of([&] { read_image(d / f.first); });
    CHECK(e.find(d / f.first) != std::string::npos);
    CHECK(e.find("30000 x 30000") != std::string::npos);
    CHECK(e.find("graft::limits().max_image_pixels") != std::string::npos);
    CHECK(error_of([&] { check_image_file(d / f.first); }) == e);
  }
  // the limit is configurable: an 8 x 8 image needs 64 pixels
  write_file(d / "small.png", encode_png(rgb.data(), 8, 8, PNG_FORMAT_RGB));
  PixelLimit keep;
  graft::limits().max_image_pixels = 63;
  CHECK(error_of([&] { read_image(d / "small.png"); }).find("8 x 8 = 64 pixels, above the limit graft::limits().max_image_pixels = 63") !=
        std::string::npos);
  graft::limits().max_image_pixels = 64;
  CHECK(read_image(d / "small.png").pixels == rgb);
}

TEST_CASE("resize follows keras.ops.image.resize: bilinear, nearest, crop and pad windows", "[images]") {
  // 1 x 2 -> 1 x 4 bilinear, half-pixel centres: 10, 12.5, 17.5, 20
  const float two[2] = {10, 20};
  ResizeOptions o;
  o.height = 1;
  o.width = 4;
  std::vector<float> out(4);
  resize_hwc(two, 1, 2, 1, o, out.data());
  CHECK(out[0] == Approx(10));
  CHECK(out[1] == Approx(12.5));
  CHECK(out[2] == Approx(17.5));
  CHECK(out[3] == Approx(20));
  // nearest-exact: 4 -> 3 picks floor((i + 0.5) * 4/3) = 0, 2, 3
  const float four[4] = {1, 2, 3, 4};
  o.width = 3;
  o.interpolation = Interpolation::nearest;
  out.assign(3, 0);
  resize_hwc(four, 1, 4, 1, o, out.data());
  CHECK(out == std::vector<float>{1, 3, 4});
  // area: a 2x2 block mean
  const float sq[16] = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
  o = ResizeOptions{};
  o.height = o.width = 2;
  o.interpolation = Interpolation::area;
  out.assign(4, 0);
  resize_hwc(sq, 4, 4, 1, o, out.data());
  CHECK(out[0] == Approx(5));
  CHECK(out[3] == Approx(25));
  // Keras' crop window: (340, 500) to (200, 200) takes a 340 x 340 crop starting at column 80
  o = ResizeOptions{};
  o.height = o.width = 200;
  o.crop_to_aspect_ratio = true;
  auto win = graft::data::detail::resize_window(340, 500, o);
  CHECK(win.height == 340);
  CHECK(win.width == 340);
  CHECK(win.y0 == 0);
  CHECK(win.x0 == 80);
  // pad: (100, 50) to (10, 10): 25 columns of padding each side
  o.crop_to_aspect_ratio = false;
  o.pad_to_aspect_ratio = true;
  win = graft::data::detail::resize_window(100, 50, o);
  CHECK(win.height == 100);
  CHECK(win.width == 100);
  CHECK(win.x0 == -25);
  std::vector<float> tall(100 * 50, 200.f), padded(100);
  o.height = o.width = 10;
  o.interpolation = Interpolation::nearest;
  resize_hwc(tall.data(), 100, 50, 1, o, padded.data());
  CHECK(padded[0] == 0.f);  // the padding (Keras' fill value 0)
  CHECK(padded[5] == 200.f);
  CHECK_THROWS_AS(parse_interpolation("lanczos3"), unsupported_error);
  CHECK_THROWS_AS(parse_interpolation("cubic"), value_error);
  CHECK(parse_interpolation("BILINEAR") == Interpolation::bilinear);
  o.crop_to_aspect_ratio = true;
  CHECK_THROWS_AS(resize_hwc(tall.data(), 100, 50, 1, o, padded.data()), value_error);
}

TEST_CASE("NumpyRandomState shuffles as numpy.random.RandomState(seed).shuffle", "[images]") {
  // /usr/bin/python3: x = list(range(n)); np.random.RandomState(seed).shuffle(x)
  std::vector<int> a{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  NumpyRandomState(42).shuffle(a);
  CHECK(a == std::vector<int>{8, 1, 5, 0, 7, 2, 9, 4, 3, 6});
  std::vector<int> b(20);
  for (int i = 0; i < 20; ++i) b[static_cast<size_t>(i)] = i;
  NumpyRandomState(1337).shuffle(b);
  CHECK(b == std::vector<int>{5, 3, 4, 0, 15, 11, 2, 12, 13, 1, 16, 17, 10, 14, 6, 9, 19, 18, 7, 8});
  std::vector<int> c{0, 1, 2, 3, 4, 5, 6};
  NumpyRandomState(0).shuffle(c);
  CHECK(c == std::vector<int>{6, 2, 1, 3, 0, 5, 4});
  CHECK_THROWS_AS(NumpyRandomState(-1), value_error);
  CHECK_THROWS_AS(NumpyRandomState(std::int64_t(1) << 32), value_error);
}

namespace {

/// photos/<class>/<i>.png: solid images whose red channel encodes the class and green the index.
void make_folder(const std::string& root, const std::vector<std::string>& classes, int per_class) {
  for (size_t c = 0; c < classes.size(); ++c)
    for (int i = 0; i < per_class; ++i) {
      std::vector<std::uint8_t> px(6 * 4 * 3);
      for (size_t k = 0; k < px.size(); k += 3) {
        px[k] = static_cast<std::uint8_t>(100 + c);
        px[k + 1] = static_cast<std::uint8_t>(i);
        px[k + 2] = 7;
      }
      write_file(root + "/" + classes[c] + "/" + std::to_string(i) + ".png", encode_png(px.data(), 6, 4, PNG_FORMAT_RGB));
    }
}

ImageFolderOptions quiet() {
  ImageFolderOptions o;
  o.verbose = false;
  o.image_size = {3, 5};
  return o;
}

}  // namespace

TEST_CASE("image_dataset_from_directory: classes, order, split, targets and pixels as Keras", "[images]") {
  ImgDir d;
  make_folder(d / "photos", {"dogs", "cats", "Birds"}, 5);
  write_file(d / "photos/cats/readme.txt", Bytes{'x'});
  fs::create_directories(d / "photos/.cache");
  ImageFolderOptions o = quiet();
  o.shuffle = false;
  auto all = image_dataset_from_directory<float>(d / "photos", o);
  CHECK(all.class_names() == std::vector<std::string>{"Birds", "cats", "dogs"});  // sorted, hidden skipped
  REQUIRE(all.size() == 15);
  CHECK(all.file_paths()[0] == d / "photos/Birds/0.png");
  CHECK(all.labels()[14] == 2);
  CHECK(all.input_shapes() == std::vector<Shape>{{3, 5, 3}});
  CHECK(all.target_shapes() == std::vector<Shape>{Shape{}});
  CHECK(all.batch_size() == 32);
  std::vector<Tensor<float>> x, y;
  const Index rows[2] = {0, 7};  // Birds/0.png, cats/2.png
  all.load(rows, 2, x, y);
  REQUIRE(x[0].shape() == Shape{2, 3, 5, 3});
  CHECK(x[0][0] == 102.f);   // Birds: red 100 + class folder index 2 in make_folder's list
  CHECK(x[0][1] == 0.f);
  CHECK(x[0][45] == 101.f);  // cats
  CHECK(x[0][46] == 2.f);
  CHECK(y[0].shape() == Shape{2});
  CHECK(y[0][0] == 0.f);
  CHECK(y[0][1] == 1.f);

  SECTION("validation_split: disjoint subsets covering the files, Keras' sizes") {
    o.shuffle = true;
    o.seed = 1337;
    o.validation_split = 0.2;
    auto both = image_dataset_from_directory_both<float>(d / "photos", o);
    CHECK(both.training.size() == 12);
    CHECK(both.validation.size() == 3);
    std::vector<std::string> u = both.training.file_paths();
    u.insert(u.end(), both.validation.file_paths().begin(), both.validation.file_paths().end());
    std::vector<std::string> shuffled = all.file_paths();
    NumpyRandomState(1337).shuffle(shuffled);
    CHECK(u == shuffled);
    o.subset = "validation";
    CHECK(image_dataset_from_directory<float>(d / "photos", o).file_paths() == both.validation.file_paths());
  }
  SECTION("label modes") {
    o.label_mode = "categorical";
    auto cat = image_dataset_from_directory<float>(d / "photos", o);
    CHECK(cat.target_shapes() == std::vector<Shape>{{3}});
    cat.load(rows, 2, x, y);
    CHECK(std::vector<float>(y[0].begin(), y[0].end()) == std::vector<float>{1, 0, 0, 0, 1, 0});
    o.label_mode = "none";
    auto none = image_dataset_from_directory<float>(d / "photos", o);
    CHECK(none.target_shapes().empty());
    CHECK(none.class_names().empty());
    CHECK(none.size() == 15);
    o.label_mode = "binary";
    CHECK_THROWS_WITH(image_dataset_from_directory<float>(d / "photos", o), Catch::Contains("exactly 2 class_names"));
    o.class_names = {"dogs", "cats"};
    auto bin = image_dataset_from_directory<float>(d / "photos", o);
    CHECK(bin.class_names() == std::vector<std::string>{"dogs", "cats"});
    CHECK(bin.size() == 10);
    CHECK(bin.target_shapes() == std::vector<Shape>{{1}});
    CHECK(bin.labels()[0] == 0);
    CHECK(bin.file_paths()[0].find("/dogs/") != std::string::npos);
  }
  SECTION("color modes: grayscale uses PIL's luma") {
    o.color_mode = "grayscale";
    auto g = image_dataset_from_directory<float>(d / "photos", o);
    g.load(rows, 1, x, y);
    CHECK(x[0].shape() == Shape{1, 3, 5, 1});
    CHECK(x[0][0] == float((102 * 19595 + 0 * 38470 + 7 * 7471 + 0x8000) >> 16));
  }
}

TEST_CASE("image_dataset_from_directory: bad folders and arguments are clear errors", "[images]") {
  ImgDir d;
  CHECK_THROWS_WITH(image_dataset_from_directory<float>(d / "nope", quiet()), Catch::Contains("no such directory"));
  fs::create_directories(d / "empty");
  CHECK_THROWS_WITH(image_dataset_from_directory<float>(d / "empty", quiet()), Catch::Contains("no class subfolders"));
  const auto rgb = pattern(4, 4);
  write_file(d / "flat/a.png", encode_png(rgb.data(), 4, 4, PNG_FORMAT_RGB));
  CHECK_THROWS_WITH(image_dataset_from_directory<float>(d / "flat", quiet()), Catch::Contains("no class subfolders"));
  ImageFolderOptions none = quiet();
  none.labels = "none";
  CHECK(image_dataset_from_directory<float>(d / "flat", none).size() == 1);
  write_file(d / "textonly/cls/a.txt", Bytes{'x'});
  CHECK_THROWS_WITH(image_dataset_from_directory<float>(d / "textonly", quiet()), Catch::Contains("no images found"));
  make_folder(d / "ok", {"a", "b"}, 3);
  ImageFolderOptions o = quiet();
  o.validation_split = 0.5;
  o.subset = "training";
  CHECK_THROWS_WITH(image_dataset_from_directory<float>(d / "ok", o), Catch::Contains("you must provide a seed"));
  o.seed = 3;
  CHECK(image_dataset_from_directory<float>(d / "ok", o).size() == 3);
  o.validation_split = 0.1;  // int(0.1 * 6) = 0 validation files
  CHECK_THROWS_WITH(image_dataset_from_directory<float>(d / "ok", o), Catch::Contains("selects no validation file"));
  o = quiet();
  o.class_names = {"a", "lions"};
  CHECK_THROWS_WITH(image_dataset_from_directory<float>(d / "ok", o), Catch::Contains("'lions' is not one of them"));
  o = quiet();
  o.color_mode = "cmyk";
  CHECK_THROWS_AS(image_dataset_from_directory<float>(d / "ok", o), value_error);
  o = quiet();
  o.crop_to_aspect_ratio = o.pad_to_aspect_ratio = true;
  CHECK_THROWS_AS(image_dataset_from_directory<float>(d / "ok", o), value_error);
  o = quiet();
  o.label_list = {0, 1};
  CHECK_THROWS_WITH(image_dataset_from_directory<float>(d / "ok", o), Catch::Contains("len(labels) is 2 while we found 6 files"));
}

TEST_CASE("image_dataset_from_directory: bad files are an error or a listed skip, never a crash", "[images]") {
  ImgDir d;
  make_folder(d / "photos", {"a", "b"}, 4);
  const auto rgb = pattern(6, 4);
  Bytes png = encode_png(rgb.data(), 6, 4, PNG_FORMAT_RGB);
  write_file(d / "photos/a/notes.jpg", Bytes{'j', 'u', 's', 't', ' ', 't', 'e', 'x', 't'});
  write_file(d / "photos/a/cut.png", Bytes(png.begin(), png.begin() + 40));
  Bytes huge = png;
  huge[18] = 0x75, huge[19] = 0x30, huge[22] = 0x75, huge[23] = 0x30;  // 30000 x 30000 (CRC aside: refused first)
  write_file(d / "photos/b/huge.png", huge);
  // mixed channel counts are converted, as in Keras: gray and RGBA files beside RGB ones
  const std::uint8_t g[24] = {0};
  write_file(d / "photos/b/gray.png", encode_png(g, 6, 4, PNG_FORMAT_GRAY));
  std::vector<std::uint8_t> rgba(6 * 4 * 4, 9);
  write_file(d / "photos/b/rgba.png", encode_png(rgba.data(), 6, 4, PNG_FORMAT_RGBA));

  ImageFolderOptions o = quiet();
  const std::string e = error_of([&] { image_dataset_from_directory<float>(d / "photos", o); });
  CHECK(e.find("3 file(s) cannot be decoded") != std::string::npos);
  CHECK(e.find("notes.jpg") != std::string::npos);
  CHECK(e.find("cut.png") != std::string::npos);
  CHECK(e.find("huge.png") != std::string::npos);

  o.on_error = "skip";
  auto f = image_dataset_from_directory<float>(d / "photos", o);
  CHECK(f.size() == 10);
  REQUIRE(f.skipped().size() == 3);
  for (const auto& s : f.skipped()) CHECK(s.reason.find(s.path) != std::string::npos);
  std::vector<Index> rows(static_cast<size_t>(f.size()));
  for (Index i = 0; i < f.size(); ++i) rows[static_cast<size_t>(i)] = i;
  std::vector<Tensor<float>> x, y;
  f.load(rows.data(), f.size(), x, y);
  CHECK(x[0].shape() == Shape{10, 3, 5, 3});

  // a file corrupt inside (header and end intact): found by verify="full", an error naming it in load()
  Bytes corrupt = png;
  corrupt[corrupt.size() / 2] ^= 0x55;
  write_file(d / "photos/b/corrupt.png", corrupt);
  auto lazy = image_dataset_from_directory<float>(d / "photos", o);
  CHECK(lazy.size() == 11);
  const std::string le = error_of([&] {
    std::vector<Index> all(11);
    for (Index i = 0; i < 11; ++i) all[static_cast<size_t>(i)] = i;
    lazy.load(all.data(), 11, x, y);
  });
  CHECK(le.find("corrupt.png") != std::string::npos);
  CHECK(le.find("verify=\"full\"") != std::string::npos);
  o.verify = "full";
  auto full = image_dataset_from_directory<float>(d / "photos", o);
  CHECK(full.size() == 10);
  CHECK(full.skipped().size() == 4);
}

TEST_CASE("an ImageFolder loads on a worker thread while the caller works", "[images]") {
  ImgDir d;
  make_folder(d / "photos", {"x", "y"}, 6);
  ImageFolderOptions o = quiet();
  o.seed = 5;
  auto f = image_dataset_from_directory<float>(d / "photos", o);
  std::vector<Index> rows{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  std::vector<Tensor<float>> x1, y1;
  f.load(rows.data(), 12, x1, y1);
  BatchReader<float> reader(f, /*prefetch=*/true);
  for (int rep = 0; rep < 3; ++rep) {
    reader.request(rows.data(), 12);
    std::vector<Tensor<float>> x2, y2;
    f.load(rows.data(), 12, x2, y2);  // the main thread decodes at the same time
    auto& b = reader.wait();
    CHECK(std::vector<float>(b.x[0].begin(), b.x[0].end()) == std::vector<float>(x1[0].begin(), x1[0].end()));
    CHECK(std::vector<float>(x2[0].begin(), x2[0].end()) == std::vector<float>(x1[0].begin(), x1[0].end()));
    CHECK(std::vector<float>(b.y[0].begin(), b.y[0].end()) == std::vector<float>(y1[0].begin(), y1[0].end()));
  }
  CHECK(f.fingerprint() != 0);
  CHECK(f.describe().find("12 files, 2 classes") != std::string::npos);
}
