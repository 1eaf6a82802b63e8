#include <graft/data/dataset.hpp>
#include <graft/data/idx.hpp>

#include <catch2/catch.hpp>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

namespace fs = std::filesystem;
using namespace graft;
using namespace graft::data;

namespace {

/// A fresh directory under the system temp dir, removed with everything in it at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() / ("graft_test_data_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

std::vector<unsigned char> idx_bytes(unsigned char type, const std::vector<std::uint32_t>& dims,
                                     const std::vector<unsigned char>& payload) {
  std::vector<unsigned char> b = {0, 0, type, static_cast<unsigned char>(dims.size())};
  for (auto d : dims) {
    b.push_back(static_cast<unsigned char>(d >> 24));
    b.push_back(static_cast<unsigned char>(d >> 16));
    b.push_back(static_cast<unsigned char>(d >> 8));
    b.push_back(static_cast<unsigned char>(d));
  }
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

void write_gz(const std::string& path, const std::vector<unsigned char>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  if (!bytes.empty()) REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}
void write_plain(const std::string& path, const std::vector<unsigned char>& bytes) {
  std::ofstream o(path, std::ios::binary);
  o.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}
std::vector<unsigned char> read_file(const std::string& path) {
  std::ifstream i(path, std::ios::binary);
  return std::vector<unsigned char>((std::istreambuf_iterator<char>(i)), std::istreambuf_iterator<char>());
}

std::vector<unsigned char> pixels(std::size_t n) {
  std::vector<unsigned char> p(n);
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<unsigned char>((i * 7 + 3) % 256);
  return p;
}

template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const graft::error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("IDX images and labels are read from gzip files") {
  TempDir dir;
  const std::string img = dir.file("img-idx3-ubyte.gz"), lab = dir.file("lab-idx1-ubyte.gz");
  write_gz(img, idx_bytes(0x08, {3, 28, 28}, pixels(3 * 28 * 28)));
  write_gz(lab, idx_bytes(0x08, {3}, {9, 0, 5}));

  SECTION("scaled to [0, 1]") {
    Tensor<float> x = read_idx_images<float>(img);
    REQUIRE(x.shape() == Shape{3, 28, 28});
    CHECK(x[0] == Approx(3 / 255.0));
    CHECK(x[1] == Approx(10 / 255.0));
    CHECK(x[3 * 784 - 1] == Approx(((3 * 784 - 1) * 7 + 3) % 256 / 255.0));
  }
  SECTION("raw bytes") {
    Tensor<double> x = read_idx_images<double>(img, false);
    CHECK(x[1] == 10.0);
    CHECK(*std::max_element(x.begin(), x.end()) == 255.0);
  }
  SECTION("labels") {
    Tensor<float> y = read_idx_labels<float>(lab);
    REQUIRE(y.shape() == Shape{3});
    CHECK(y[0] == 9);
    CHECK(y[2] == 5);
  }
  SECTION("as a checked pair") {
    auto p = read_idx_pair<float>(img, lab);
    CHECK(p.images.dim(0) == 3);
    CHECK(p.labels.dim(0) == 3);
  }
  SECTION("the header alone") {
    IdxHeader h = read_idx_header(img);
    CHECK(h.type == IdxType::u8);
    CHECK(h.dims == std::vector<Index>{3, 28, 28});
  }
}

TEST_CASE("IDX files that are not gzip-compressed are read too") {
  TempDir dir;
  const std::string lab = dir.file("labels-idx1-ubyte");
  write_plain(lab, idx_bytes(0x08, {4}, {1, 2, 3, 4}));
  Tensor<float> y = read_idx_labels<float>(lab);
  CHECK(y == Tensor<float>({4}, {1, 2, 3, 4}));
}

TEST_CASE("read_idx decodes every IDX element type, big-endian") {
  TempDir dir;
  SECTION("int16 and int32") {
    write_gz(dir.file("a.gz"), idx_bytes(0x0B, {2}, {0xFF, 0xFE, 0x01, 0x00}));
    CHECK(read_idx<double>(dir.file("a.gz")) == Tensor<double>({2}, {-2, 256}));
    write_gz(dir.file("b.gz"), idx_bytes(0x0C, {1, 1}, {0x00, 0x01, 0x00, 0x02}));
    CHECK(read_idx<double>(dir.file("b.gz")) == Tensor<double>({1, 1}, {65538}));
  }
  SECTION("signed bytes, float32, float64") {
    write_gz(dir.file("c.gz"), idx_bytes(0x09, {2}, {0xFF, 0x05}));
    CHECK(read_idx<float>(dir.file("c.gz")) == Tensor<float>({2}, {-1, 5}));
    write_gz(dir.file("d.gz"), idx_bytes(0x0D, {1}, {0x3F, 0xC0, 0x00, 0x00}));  // 1.5f
    CHECK(read_idx<float>(dir.file("d.gz"))[0] == 1.5f);
    write_gz(dir.file("e.gz"), idx_bytes(0x0E, {1}, {0xC0, 0x04, 0, 0, 0, 0, 0, 0}));  // -2.5
    CHECK(read_idx<double>(dir.file("e.gz"))[0] == -2.5);
  }
}

TEST_CASE("a missing IDX file is an io_error naming it") {
  TempDir dir;
  const std::string p = dir.file("nope-idx1-ubyte.gz");
  CHECK_THROWS_AS(read_idx_labels<float>(p), io_error);
  CHECK_THAT(error_of([&] { read_idx_labels<float>(p); }), Catch::Contains(p) && Catch::Contains("cannot open"));
}

TEST_CASE("malformed IDX files are format_errors that say what was expected") {
  TempDir dir;
  const std::string p = dir.file("bad.gz");

  SECTION("bad magic number") {
    write_gz(p, {'P', 'K', 3, 4, 0, 0, 0, 0});
    CHECK_THROWS_AS(read_idx_images<float>(p), format_error);
    CHECK_THAT(error_of([&] { read_idx_images<float>(p); }),
               Catch::Contains(p) && Catch::Contains("magic number 0x504B0304") && Catch::Contains("0x00000803"));
  }
  SECTION("unknown element type") {
    write_gz(p, {0, 0, 0x42, 1, 0, 0, 0, 1, 7});
    CHECK_THAT(error_of([&] { read_idx<float>(p); }), Catch::Contains("unknown element type"));
  }
  SECTION("empty file") {
    write_gz(p, {});
    CHECK_THAT(error_of([&] { read_idx_labels<float>(p); }), Catch::Contains("not an IDX file"));
  }
  SECTION("truncated header") {
    write_gz(p, {0, 0, 8, 3, 0, 0, 0, 2, 0, 0});
    CHECK_THAT(error_of([&] { read_idx_images<float>(p); }), Catch::Contains("truncated IDX header"));
  }
  SECTION("fewer values than the header declares") {
    write_gz(p, idx_bytes(0x08, {10, 28, 28}, pixels(3 * 28 * 28)));
    CHECK_THROWS_AS(read_idx_images<float>(p), format_error);
    CHECK_THAT(error_of([&] { read_idx_images<float>(p); }),
               Catch::Contains(p) && Catch::Contains("truncated") && Catch::Contains("10x28x28") &&
                   Catch::Contains("7840 bytes of data") && Catch::Contains("after 2352 bytes"));
  }
  SECTION("more values than the header declares") {
    write_gz(p, idx_bytes(0x08, {2}, {1, 2, 3}));
    CHECK_THAT(error_of([&] { read_idx_labels<float>(p); }), Catch::Contains("trailing data"));
  }
  SECTION("a gzip stream cut short") {
    const std::string good = dir.file("good.gz");
    std::vector<unsigned char> noisy(5 * 28 * 28);
    unsigned s = 1;
    for (auto& v : noisy) v = static_cast<unsigned char>((s = s * 1103515245u + 12345u) >> 24);  // barely compressible
    write_gz(good, idx_bytes(0x08, {5, 28, 28}, noisy));
    auto bytes = read_file(good);
    bytes.resize(bytes.size() / 2);
    write_plain(p, bytes);
    CHECK_THROWS_AS(read_idx_images<float>(p), format_error);
    CHECK_THAT(error_of([&] { read_idx_images<float>(p); }), Catch::Contains(p) && Catch::Contains("truncated"));
  }
  SECTION("corrupt compressed data") {
    const std::string good = dir.file("good.gz");
    write_gz(good, idx_bytes(0x08, {5, 28, 28}, pixels(5 * 28 * 28)));
    auto bytes = read_file(good);
    for (std::size_t i = 12; i < bytes.size() - 8; ++i) bytes[i] ^= 0x5A;
    write_plain(p, bytes);
    CHECK_THROWS_AS(read_idx_images<float>(p), format_error);
    CHECK_THAT(error_of([&] { read_idx_images<float>(p); }), Catch::Contains(p));
  }
  SECTION("a bad CRC at the end of the gzip stream") {
    const std::string good = dir.file("good.gz");
    write_gz(good, idx_bytes(0x08, {4}, {1, 2, 3, 4}));
    auto bytes = read_file(good);
    bytes[bytes.size() - 6] ^= 0xFF;  // inside the CRC32 trailer
    write_plain(p, bytes);
    CHECK_THROWS_AS(read_idx_labels<float>(p), format_error);
  }
}

TEST_CASE("absurd IDX headers are refused before anything is allocated") {
  TempDir dir;
  const std::string p = dir.file("huge.gz");
  SECTION("beyond the element limit (and beyond 64-bit sizes)") {
    write_gz(p, idx_bytes(0x0E, {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}, {1, 2, 3}));
    CHECK_THAT(error_of([&] { read_idx<float>(p); }), Catch::Contains("more than the limit"));
  }
  SECTION("within the limit but far more than a small file can hold") {
    write_gz(p, idx_bytes(0x08, {1000000, 28, 28}, pixels(100)));  // 784 MB declared, ~200 bytes of file
    CHECK_THAT(error_of([&] { read_idx_images<float>(p); }),
               Catch::Contains("truncated") && Catch::Contains("784000000 bytes") && Catch::Contains("compressed file is only"));
  }
  SECTION("a plain file declaring more than its size") {
    write_plain(p, idx_bytes(0x08, {5000}, {1, 2, 3}));
    CHECK_THAT(error_of([&] { read_idx_labels<float>(p); }), Catch::Contains("the file is only"));
  }
  SECTION("too many dimensions") {
    write_gz(p, {0, 0, 8, 200});
    CHECK_THAT(error_of([&] { read_idx<float>(p); }), Catch::Contains("declares 200 dimensions"));
  }
  SECTION("a lower limit set by the caller") {
    write_gz(p, idx_bytes(0x08, {3, 28, 28}, pixels(3 * 28 * 28)));
    IdxOptions o;
    o.max_elements = 1000;
    CHECK_THROWS_AS(read_idx_images<float>(p, true, 28, 28, o), format_error);
  }
}

TEST_CASE("IDX files with the wrong kind or size of content are refused") {
  TempDir dir;
  const std::string img = dir.file("img.gz"), lab = dir.file("lab.gz"), img32 = dir.file("img32.gz");
  write_gz(img, idx_bytes(0x08, {2, 28, 28}, pixels(2 * 28 * 28)));
  write_gz(lab, idx_bytes(0x08, {3}, {1, 2, 3}));
  write_gz(img32, idx_bytes(0x08, {1, 32, 32}, pixels(32 * 32)));
  CHECK_THAT(error_of([&] { read_idx_images<float>(lab); }), Catch::Contains("expected an IDX image file"));
  CHECK_THAT(error_of([&] { read_idx_labels<float>(img); }), Catch::Contains("expected an IDX label file"));
  CHECK_THAT(error_of([&] { read_idx_images<float>(img32); }),
             Catch::Contains("expected images of 28x28") && Catch::Contains("1 images of 32x32"));
  CHECK(read_idx_images<float>(img32, true, 0, 0).shape() == Shape{1, 32, 32});
  CHECK_THAT(error_of([&] { read_idx_pair<float>(img, lab); }),
             Catch::Contains("holds 2 images") && Catch::Contains("holds 3 labels"));
}

TEST_CASE("dataset helpers select, relabel, take, split and shuffle") {
  Tensor<float> x({6, 2}, {0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5});
  Tensor<float> y({6}, {5, 6, 7, 5, 9, 0});
  Dataset<float> d(x, y);

  SECTION("select classes keeps order, relabel maps labels") {
    auto a = select_classes(d, {0, 7, 9});
    REQUIRE(a.size() == 3);
    CHECK(a.x == Tensor<float>({3, 2}, {2, 2, 4, 4, 5, 5}));
    relabel(a, [](float c) { return c > 6 ? c - 2 : c; });
    CHECK(a.y == Tensor<float>({3}, {5, 7, 0}));
    auto b = select_classes(d, {5, 6});
    relabel(b, std::map<int, int>{{5, 0}, {6, 1}});
    CHECK(b.y == Tensor<float>({3}, {0, 1, 0}));
    CHECK_THROWS_AS(relabel(d, std::map<int, int>{{5, 0}}), value_error);
    CHECK(class_counts(d.y) == std::map<int, Index>{{0, 1}, {5, 2}, {6, 1}, {7, 1}, {9, 1}});
  }
  SECTION("take and split") {
    CHECK(take(d, 2).x == Tensor<float>({2, 2}, {0, 0, 1, 1}));
    CHECK_THROWS_AS(take(d, 7), value_error);
    auto [first, rest] = split_at(d, 4);
    CHECK(first.size() == 4);
    CHECK(rest.y == Tensor<float>({2}, {9, 0}));
    auto [tr, va] = split_fraction(d, 1.0 / 3);
    CHECK(tr.size() == 4);
    CHECK(va.size() == 2);
    CHECK(slice(d, 1, 2).y == Tensor<float>({2}, {6, 7}));
  }
  SECTION("shuffle is a seeded permutation of the pairs") {
    auto s1 = shuffled(d, 42), s2 = shuffled(d, 42), s3 = shuffled(d, 43);
    CHECK(s1.x == s2.x);
    CHECK(s1.y == s2.y);
    CHECK((s1.x != s3.x || s1.y != s3.y));
    for (Index i = 0; i < 6; ++i) {  // every row still carries its own label
      Index orig = static_cast<Index>(s1.x[i * 2]);
      CHECK(s1.y[i] == y[orig]);
    }
    auto p = permutation(100, 1);
    std::sort(p.begin(), p.end());
    for (Index i = 0; i < 100; ++i) CHECK(p[static_cast<size_t>(i)] == i);
  }
  SECTION("mismatched sizes are refused") {
    CHECK_THROWS_AS(Dataset<float>(x, Tensor<float>({5}, 0.f)), shape_error);
    CHECK_THROWS_AS(rows_where(Tensor<float>({3, 2}, 0.f), [](float) { return true; }), shape_error);
  }
}
