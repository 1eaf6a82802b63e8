// Bad input: every malformed, truncated, hostile or unsupported file ends in a graft:: exception
// naming the file, the HDF5 path or layer, and what was expected. Saving never damages a file.
#include <graft/graft.hpp>
#include <catch2/catch.hpp>

#include <H5Cpp.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "gradcheck.hpp"

namespace {

using graft::Index;
using graft::Shape;
using graft::Tensor;
using json = nlohmann::json;
using Catch::Matchers::Contains;

std::string tmp(const std::string& name) {
  static std::string d = [] {
    char tmpl[] = "/tmp/graft-bad-XXXXXX";
    char* r = mkdtemp(tmpl);
    REQUIRE(r != nullptr);
    return std::string(r);
  }();
  return d + "/" + name;
}

std::string read_bytes(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}
void write_bytes(const std::string& p, const std::string& b) {
  std::ofstream f(p, std::ios::binary);
  f << b;
}

const std::string model_a = graft_test::shared_path("keras-fixtures/handson_model_a/model.h5");

/// A copy of a model file whose model_config attribute is replaced.
std::string with_config(const std::string& name, const std::string& config_text) {
  std::string p = tmp(name);
  write_bytes(p, read_bytes(model_a));
  H5::H5File f(p, H5F_ACC_RDWR);
  H5::Group root = f.openGroup("/");
  root.removeAttr("model_config");
  H5::StrType st(H5::PredType::C_S1, H5T_VARIABLE);
  H5::Attribute a = root.createAttribute("model_config", st, H5::DataSpace(H5S_SCALAR));
  a.write(st, config_text);
  return p;
}

json model_a_config() {
  H5::H5File f(model_a, H5F_ACC_RDONLY);
  H5::Attribute a = f.openGroup("/").openAttribute("model_config");
  std::string s;
  a.read(a.getStrType(), s);
  return json::parse(s);
}

template <class E>
void expect_error(const std::string& path, std::initializer_list<const char*> parts) {
  try {
    graft::load_model<float>(path);
    FAIL("no exception for " << path);
  } catch (const E& e) {
    std::string m = e.what();
    INFO(m);
    CHECK_THAT(m, Contains(path));
    for (const char* p : parts) CHECK_THAT(m, Contains(p));
  }
}

}  // namespace

TEST_CASE("a file that is not HDF5 is refused with a clear error", "[keras][bad]") {
  write_bytes(tmp("text.h5"), "this is not a model\n");
  expect_error<graft::format_error>(tmp("text.h5"), {"not an HDF5 file"});
  write_bytes(tmp("empty.h5"), "");
  expect_error<graft::format_error>(tmp("empty.h5"), {"empty"});
  write_bytes(tmp("lfs.h5"), "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a2146\nsize 1234\n");
  expect_error<graft::format_error>(tmp("lfs.h5"), {"Git LFS pointer"});
  write_bytes(tmp("zip.keras"), std::string("PK\x03\x04", 4) + std::string(100, '\0'));
  expect_error<graft::format_error>(tmp("zip.keras"), {"zip"});
  CHECK_THROWS_AS(graft::load_model<float>(tmp("does-not-exist.h5")), graft::io_error);
}

TEST_CASE("truncated and corrupted model files raise graft errors, never crash", "[keras][bad]") {
  std::string bytes = read_bytes(model_a);
  REQUIRE(bytes.size() > 100000);
  for (double frac : {0.001, 0.01, 0.1, 0.5, 0.9, 0.999}) {
    std::string p = tmp("truncated.h5");
    write_bytes(p, bytes.substr(0, static_cast<size_t>(frac * static_cast<double>(bytes.size()))));
    INFO("truncated to " << frac);
    try {
      graft::load_model<float>(p);
      FAIL("a truncated file loaded");
    } catch (const graft::error& e) {
      CHECK_THAT(std::string(e.what()), Contains(p));
    }
  }
  // flipped bytes in the data region and in metadata: load fails cleanly or loads; never crashes
  for (size_t pos : {size_t(0x40), size_t(0x200), size_t(0x800), bytes.size() / 3, bytes.size() / 2, bytes.size() - 64}) {
    std::string b = bytes;
    for (size_t k = 0; k < 8 && pos + k < b.size(); ++k) b[pos + k] = static_cast<char>(~b[pos + k]);
    std::string p = tmp("corrupt.h5");
    write_bytes(p, b);
    INFO("corrupted at " << pos);
    try {
      auto m = graft::load_model<float>(p);
      CHECK(m->layers().size() > 0);
    } catch (const graft::error& e) {
      CHECK_THAT(std::string(e.what()), Contains(p));
    }
  }
}

TEST_CASE("damaged .keras archives are refused with a clear error", "[keras][bad][zip]") {
  const std::string good = read_bytes(graft_test::shared_path("keras-corpus/rafa_my_model_A.keras"));
  for (double frac : {0.05, 0.5, 0.95}) {  // truncated: the central directory is gone
    write_bytes(tmp("cut.keras"), good.substr(0, static_cast<size_t>(frac * static_cast<double>(good.size()))));
    expect_error<graft::format_error>(tmp("cut.keras"), {"zip"});
  }
  // a flipped byte inside the weights member: the CRC check catches it
  std::string b = good;
  size_t pos = b.find("HDF");
  REQUIRE(pos != std::string::npos);
  b[pos + 5000] = static_cast<char>(~b[pos + 5000]);
  write_bytes(tmp("crc.keras"), b);
  expect_error<graft::format_error>(tmp("crc.keras"), {"CRC"});
  // a member claiming to inflate to 4 GiB: refused before allocating
  std::string bomb = good;
  size_t cd = bomb.rfind(std::string("PK\x01\x02", 4));
  REQUIRE(cd != std::string::npos);
  // the last central-directory entry is model.weights.h5: set its uncompressed size to 0xFFFFFFF0
  bomb[cd + 24] = '\xF0';
  bomb[cd + 25] = bomb[cd + 26] = bomb[cd + 27] = '\xFF';
  write_bytes(tmp("bomb.keras"), bomb);
  expect_error<graft::format_error>(tmp("bomb.keras"), {"model.weights.h5"});
}

TEST_CASE("files without a usable model_config are refused with what was expected", "[keras][bad]") {
  // weights-only legacy file
  expect_error<graft::format_error>(graft_test::shared_path("keras-corpus/hackbing_model_weights.h5"), {"weights-only"});
  // an HDF5 file that is not a Keras file
  {
    std::string p = tmp("plain.h5");
    H5::H5File f(p, H5F_ACC_TRUNC);
    hsize_t d[1] = {3};
    f.createDataSet("data", H5::PredType::NATIVE_FLOAT, H5::DataSpace(1, d));
  }
  expect_error<graft::format_error>(tmp("plain.h5"), {"no model_config"});
  expect_error<graft::format_error>(with_config("badjson.h5", "{not json"), {"model_config", "not valid JSON"});
  expect_error<graft::format_error>(with_config("nolayers.h5", R"({"class_name": "Sequential", "config": {"name": "x"}})"),
                                    {"layers"});
  expect_error<graft::format_error>(with_config("noconfig.h5", R"({"class_name": "Sequential"})"), {"config"});
  expect_error<graft::unsupported_error>(with_config("subclassed.h5", R"({"class_name": "MyModel", "config": {}})"),
                                         {"MyModel"});
}

TEST_CASE("unknown and unsupported layers are named with their class", "[keras][bad]") {
  json c = model_a_config();
  c["config"]["layers"][2]["class_name"] = "FancyDense";
  expect_error<graft::unsupported_error>(with_config("unknown.h5", c.dump()), {"FancyDense", "dense"});
  json l = model_a_config();
  l["config"]["layers"][2] = {{"class_name", "Lambda"},
                              {"config", {{"name", "lambda_1"}, {"function", {"YwEAAAAAAAAA", nullptr, nullptr}}}}};
  expect_error<graft::unsupported_error>(with_config("lambda.h5", l.dump()), {"lambda_1", "Lambda", "never executed"});
  // a real Keras 2.0.4 file with Lambda layers
  expect_error<graft::unsupported_error>(graft_test::shared_path("keras-corpus/carnd_2015_model.h5"), {"Lambda", "never executed"});
  json f = model_a_config();
  f["config"]["layers"][1]["config"]["data_format"] = "channels_first";
  expect_error<graft::unsupported_error>(with_config("chfirst.h5", f.dump()), {"channels_first"});
}

TEST_CASE("weights whose shapes do not match the architecture give both shapes", "[keras][bad]") {
  json c = model_a_config();
  c["config"]["layers"][2]["config"]["units"] = 301;  // first Dense: file has (784, 300)
  expect_error<graft::shape_error>(with_config("shape.h5", c.dump()), {"(784, 300)", "(784, 301)", "dense"});
  json d = model_a_config();
  d["config"]["layers"].erase(d["config"]["layers"].begin() + 3);  // drop a Dense layer
  try {
    graft::load_model<float>(with_config("fewer.h5", d.dump()));
    FAIL("loaded");
  } catch (const graft::error& e) {
    CHECK_THAT(std::string(e.what()), Contains(tmp("fewer.h5")));
  }
}

TEST_CASE("links and external storage inside a model file are refused", "[keras][bad]") {
  std::string p = tmp("softlink.h5");
  write_bytes(p, read_bytes(model_a));
  {
    H5::H5File f(p, H5F_ACC_RDWR);
    H5::Group g = f.openGroup("/model_weights/dense/model_A/dense");
    g.unlink("kernel");
    H5Lcreate_soft("/model_weights/dense_1/model_A/dense_1/kernel", g.getId(), "kernel", H5P_DEFAULT, H5P_DEFAULT);
  }
  expect_error<graft::format_error>(p, {"soft or external links"});
}

TEST_CASE("an input of the wrong shape to predict names both shapes", "[keras][bad]") {
  auto m = graft::load_model<float>(model_a);
  Tensor<float> x({2, 28, 27});
  try {
    m->predict(x);
    FAIL("predicted");
  } catch (const graft::shape_error& e) {
    std::string msg = e.what();
    CHECK_THAT(msg, Contains("(None, 28, 28)"));
    CHECK_THAT(msg, Contains("(2, 28, 27)"));
  }
  CHECK_THROWS_AS(m->predict(std::vector<Tensor<float>>{x, x}), graft::shape_error);
}

namespace {
/// A layer whose weight name makes the HDF5 writer fail half way through a save.
template <class T>
class Unsaveable : public graft::UnaryLayer<T> {
 public:
  Unsaveable() : graft::UnaryLayer<T>("unsaveable") {}
  std::string class_name() const override { return "Unsaveable"; }
  graft::Shape output_shape(const graft::Shape& s) const override { return s; }
  void forward1(const Tensor<T>& x, Tensor<T>& y, graft::CallState*, bool) override { y = x; }
  void backward1(const Tensor<T>&, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx, graft::CallState*) override {
    if (dx) *dx = dy;
  }
 protected:
  void build_impl(const std::vector<Shape>&) override { this->add_weight("bad//name", {2}, graft::Initializer::named("Ones")); }
};
}  // namespace

TEST_CASE("saving never damages an existing file", "[keras][bad][save]") {
  std::string p = tmp("keep.h5");
  auto good = graft::load_model<float>(model_a);
  graft::save_model(*good, p);
  const std::string before = read_bytes(p);
  graft::Sequential<float> bad("bad");
  bad.add<graft::InputLayer>(Shape{2});
  bad.add(std::make_shared<Unsaveable<float>>());
  CHECK_THROWS_AS(graft::save_model(bad, p), graft::error);
  const bool untouched = read_bytes(p) == before;
  CHECK(untouched);
  CHECK(graft::load_model<float>(p)->count_params() == good->count_params());
  // no temporary file is left behind
  std::string dir = p.substr(0, p.rfind('/'));
  std::string cmd = "ls -a " + dir + " | grep -c graft-tmp";
  FILE* pipe = popen(cmd.c_str(), "r");
  char buf[16] = {0};
  REQUIRE(fgets(buf, sizeof buf, pipe) != nullptr);
  pclose(pipe);
  CHECK(std::string(buf) == "0\n");
  CHECK_THROWS_AS(graft::save_model(*good, "/nonexistent-dir/x.h5"), graft::io_error);
}
