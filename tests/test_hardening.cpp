// Hostile files: every reproducer of ../shared/reliability-repro, the libFuzzer findings kept in
// tests/fuzz/regressions and generated hostile structures end in a graft:: error (or a correct
// load) within seconds: no crash, no hang, no allocation sized from a file before it is checked
// against graft::limits() and the file's own size.
#include <graft/graft.hpp>
#include <catch2/catch.hpp>

#include <H5Cpp.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <dirent.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <random>
#include <sstream>

#include "fuzz/fuzz_harness.hpp"
#include "gradcheck.hpp"

namespace {

using graft::Index;
using graft::Shape;
using json = nlohmann::json;
using Catch::Matchers::Contains;

std::string tmp(const std::string& name) { return graft_test::tmp_dir() + "/hardening-" + name; }
std::string repro(const std::string& name) { return std::string(GRAFT_SHARED_DIR) + "/reliability-repro/" + name; }

std::string read_bytes(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}
void write_bytes(const std::string& p, const std::string& b) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << b;
}

/// The error load_model raises for `path` ("" when it loads), within `seconds`.
std::string load_error(const std::string& path, double seconds = 20) {
  auto t0 = std::chrono::steady_clock::now();
  std::string r;
  try {
    graft::load_model<float>(path);
  } catch (const graft::error& e) {
    r = e.what();
  }
  double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO(path << " took " << dt << " s");
  CHECK(dt < seconds);
  return r;
}

/// A legacy .h5 with `config` as model_config and an empty model_weights group.
std::string model_file(const std::string& name, const json& config) {
  std::string p = tmp(name);
  auto f = graft::h5::File::create(p);
  auto root = graft::h5::Group::root(f);
  root.write_string_attr("model_config", config.dump());
  root.write_string_attr("keras_version", "3.15.1");
  auto mw = root.create_group("model_weights");
  mw.write_strings_attr("layer_names", {});
  return p;
}

json input_layer(const std::string& name, const json& batch_shape) {
  return {{"class_name", "InputLayer"}, {"config", {{"name", name}, {"batch_shape", batch_shape}}}};
}
json sequential(const std::string& name, const json& layers) {
  return {{"class_name", "Sequential"}, {"config", {{"name", name}, {"layers", layers}}}};
}
json dense(const std::string& name, const json& units) {
  return {{"class_name", "Dense"}, {"config", {{"name", name}, {"units", units}, {"activation", "linear"}}}};
}

/// model_from_json's error for a config ("" when it builds).
std::string config_error(const json& config) {
  try {
    graft::model_from_json<float>(config.dump(), "cfg");
  } catch (const graft::error& e) {
    return e.what();
  }
  return "";
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> r;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') r.push_back(dir + "/" + e->d_name);
    closedir(d);
  }
  std::sort(r.begin(), r.end());
  return r;
}

}  // namespace

TEST_CASE("hardening: sizes computed from configs are checked, never wrapped", "[hardening][limits]") {
  // signed overflow in Tensor::resize (Dense units 2^62, 2^63-1; kernel 2^31 x 2^31)
  for (const char* f : {"json_units_2p62.h5", "json_units_2p63m1.h5", "json_input_2p32_units_2p32.h5", "conv_kernel_huge.h5",
                        "json_reshape_huge.h5"}) {
    std::string e = load_error(repro(f));
    INFO(f << ": " << e);
    CHECK_THAT(e, Contains("[graft.value]"));
    CHECK_THAT(e, Contains(f));
    CHECK_THAT(e, Contains("graft::limits()."));
    CHECK_THAT(e, Contains("layer '"));
  }
  // the same from code
  CHECK_THAT(config_error(sequential("s", {input_layer("i", {nullptr, 4}), dense("d", std::int64_t(1) << 62)})),
             Contains("'units' is 4611686018427387904, above graft::limits().max_dimension"));
  CHECK_THAT(config_error(sequential("s", {input_layer("i", {nullptr, 65536}), dense("d", 65536 * 2)})),
             Contains("layer 'd' (Dense): weight 'kernel': shape (65536, 131072) has 8589934592 elements, above "
                      "graft::limits().max_tensor_elements"));
  CHECK_THAT(config_error(sequential("s", json::array({input_layer("i", {nullptr, std::int64_t(1) << 32})}))),
             Contains("max_dimension"));
  json reshape = {{"class_name", "Reshape"}, {"config", {{"name", "r"}, {"target_shape", {std::int64_t(1) << 40, std::int64_t(1) << 40}}}}};
  CHECK_THAT(config_error(sequential("s", {input_layer("i", {nullptr, 4}), reshape})), Contains("max_dimension"));
  json conv = {{"class_name", "Conv2D"},
               {"config", {{"name", "c"}, {"filters", 8}, {"kernel_size", {std::int64_t(1) << 40, 3}}, {"padding", "valid"}}}};
  CHECK_THAT(config_error(sequential("s", {input_layer("i", {nullptr, 8, 8, 3}), conv})), Contains("max_dimension"));
  json units_float = dense("d", 1e300);  // a float beyond long long: no undefined cast
  CHECK_THAT(config_error(sequential("s", {input_layer("i", {nullptr, 4}), units_float})), Contains("should be an integer"));
  // shape arithmetic itself
  CHECK_THROWS_AS(graft::shape_size(Shape{std::int64_t(1) << 40, std::int64_t(1) << 40}), graft::value_error);
  CHECK(graft::shape_size(Shape{std::int64_t(1) << 40, std::int64_t(1) << 40, 0}) == 0);
  graft::Tensor<float> t;
  CHECK_THROWS_AS(t.resize(Shape{std::int64_t(1) << 62, 8}), graft::value_error);
  CHECK_THROWS_AS(t.resize(Shape{std::int64_t(1) << 20, std::int64_t(1) << 20}), graft::value_error);  // 2^40 > max_tensor_elements
}

TEST_CASE("hardening: weights are allocated only after checks against the limits and the file's size", "[hardening][limits]") {
  // Dense units 2^40, Conv filters 1e9, Embedding huge: refused before anything is allocated
  for (const char* f : {"json_units_2p40.h5", "conv_filters_1e9.h5", "json_embedding_huge.h5"}) {
    std::string e = load_error(repro(f));
    INFO(f << ": " << e);
    CHECK_THAT(e, Contains(f));
    CHECK((e.find("graft::limits().") != std::string::npos || e.find("holds only") != std::string::npos));
  }
  // within every limit, but more weights than the file has bytes
  json cfg = sequential("s", {input_layer("i", {nullptr, 1000}), dense("d", 100000)});
  std::string p = model_file("declares_more_than_it_holds.h5", cfg);
  std::string e = load_error(p);
  CHECK_THAT(e, Contains("[graft.format]"));
  CHECK_THAT(e, Contains("layer 'd' (Dense): weight 'kernel'"));
  CHECK_THAT(e, Contains("100000000 weight elements"));
  CHECK_THAT(e, Contains("holds only"));
  // without a file (model_from_json), the same model builds: only the limits apply
  CHECK(config_error(cfg).empty());
  // the model total: max_model_parameters, adjustable
  const auto saved = graft::limits();
  graft::limits().max_model_parameters = 1000;
  CHECK_THAT(config_error(cfg), Contains("above graft::limits().max_model_parameters = 1000"));
  graft::limits() = saved;
  // every fixture (and its weights) still loads: the checks admit real files
  for (const char* c : {"handson_model_a", "tiny_vgg", "stretch_embedding", "resnet_block", "functional_nested_sequential"}) {
    std::string m = graft_test::shared_path(std::string("keras-fixtures/") + c + "/model.h5");
    CHECK(load_error(m).empty());
    std::string k = graft_test::shared_path(std::string("keras-fixtures/") + c + "/model.keras");
    CHECK(load_error(k).empty());
  }
}

TEST_CASE("hardening: nesting depth is bounded (JSON, input_layers, nested models)", "[hardening][limits]") {
  for (const char* f : {"json_input_layers_nested_10k.h5", "json_nested_10k_sequential.h5"}) {
    std::string e = load_error(repro(f));
    INFO(e);
    CHECK_THAT(e, Contains("[graft.format]"));
    CHECK_THAT(e, Contains("graft::limits().max_config_depth"));
  }
  // 100 000-deep JSON text: refused before parsing (copying or printing it would overflow the stack)
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  CHECK_THAT(config_error(json::parse("{}")), Contains("class_name"));
  try {
    graft::model_from_json<float>(deep, "deep.json");
    FAIL("accepted");
  } catch (const graft::format_error& e) {
    CHECK_THAT(e.what(), Contains("deep.json: model JSON: the JSON nests more than 256 levels deep"));
  }
  // brackets inside strings do not count
  json named = sequential(std::string(1000, '['), {input_layer("i", {nullptr, 4}), dense("d", 2)});
  CHECK(config_error(named).empty());
  // models nested in models, built as a document (no text to scan): its depth is checked too
  json m = sequential("m0", {input_layer("i", {nullptr, 4}), dense("d", 2)});
  for (int i = 1; i < 300; ++i) m = sequential("m" + std::to_string(i), json::array({m}));
  try {
    graft::model_from_config<float>(m, "nested");
    FAIL("accepted");
  } catch (const graft::format_error& e) {
    CHECK_THAT(e.what(), Contains("max_config_depth"));
  }
  // a legitimately nested model still loads
  CHECK(load_error(graft_test::shared_path("keras-fixtures/functional_nested_sequential/model.h5")).empty());
}

TEST_CASE("hardening: corrupt HDF5 metadata is refused before libhdf5 reads it", "[hardening][hdf5]") {
  // libhdf5 1.10 read out of bounds on these (vlen string attributes with corrupt global heap
  // references, H5Aexists on a corrupt attribute message) or looped forever (a zeroed global heap)
  for (const char* f : {"007_conv2d_strides2_valid_model.h5.flip0.h5", "012_dense_act_mish_model.h5.flip3.h5",
                        "021_functional_two_outputs_model.h5.flip1.h5", "029_merge_add_model.h5.zero3808_4096.h5",
                        "037_sequential_functional_first_layer_model.h5.flip3.h5", "crash-0a776661d9f9c4714557155334a3b2226b816515",
                        "crash-581eafa8bf91191e16a853710f7c53c31b443331", "crash-66eb264fc122c5686c8c68020c70a065d224a194",
                        "crash-8519c1785dda40bf965d77a4952c4f04da40c493", "crash-b2559a2b7d7ca47036b3c95660a78799e84f01b4",
                        "leak-d4e093b3dbc4635cd92404183665dfdfa9609099"}) {
    auto t0 = std::chrono::steady_clock::now();
    std::string e = load_error(repro(f), 10);
    INFO(f << ": " << e);
    CHECK_THAT(e, Contains("[graft."));
    CHECK_THAT(e, Contains(f));
    // the whole harness: inspect, load, load_weights (what the fuzzer ran)
    graft::fuzz::load_file(repro(f));
    CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 20);
  }
  // the two global-heap classes generated from a clean file: a heap object whose size exceeds its
  // collection, and a zeroed collection (libhdf5's infinite loop)
  std::string clean = read_bytes(graft_test::shared_path("keras-fixtures/dense_act_relu/model.h5"));
  size_t gcol = clean.find("GCOL");
  REQUIRE(gcol != std::string::npos);
  std::string big = clean;
  for (int i = 0; i < 8; ++i) big[gcol + 16 + 8 + i] = i == 3 ? '\x7f' : '\0';  // object 1 size: 2^31
  write_bytes(tmp("gheap_big_object.h5"), big);
  CHECK_THAT(load_error(tmp("gheap_big_object.h5"), 10), Contains("global heap collection"));
  std::string zero = clean;
  std::fill(zero.begin() + static_cast<std::ptrdiff_t>(gcol), zero.begin() + static_cast<std::ptrdiff_t>(std::min(gcol + 4096, zero.size())), '\0');
  write_bytes(tmp("gheap_zeroed.h5"), zero);
  CHECK_THAT(load_error(tmp("gheap_zeroed.h5"), 10), Contains("global heap collection"));
}

TEST_CASE("hardening: attributes in dense storage are refused clearly", "[hardening][hdf5]") {
  // dense attribute storage (a fractal heap) cannot be validated: refused with a clear message
  std::string p = tmp("dense_attributes.h5");
  {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    hid_t f = H5Fcreate(p.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    H5Pset_attr_phase_change(gcpl, 0, 0);
    hid_t g = H5Gcreate2(f, "g", H5P_DEFAULT, gcpl, H5P_DEFAULT);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(g, "layer_names", H5T_NATIVE_INT, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Aclose(a);
    H5Sclose(sp);
    H5Gclose(g);
    H5Pclose(gcpl);
    H5Fclose(f);
    H5Pclose(fapl);
  }
  auto f = graft::h5::File::open(p);
  auto root = graft::h5::Group::root(f);
  try {
    root.group("g");
    FAIL("accepted");
  } catch (const graft::unsupported_error& e) {
    CHECK_THAT(e.what(), Contains("dense storage"));
    CHECK_THAT(e.what(), Contains(p));
  }
}

TEST_CASE("hardening: compressed chunks inflate to at most their size", "[hardening][hdf5]") {
  // two gzip-compressed chunked datasets: "big" (one chunk of 4096 zeros), "small" (chunks of 16
  // floats). Pointing small's first chunk at big's compressed chunk makes it a decompression bomb
  // for small: libhdf5's own filter inflates all of it (and keeps a chunk's worth); graft checks
  // every compressed chunk's inflated size before libhdf5 reads the dataset.
  std::string p = tmp("gzip_chunks.h5");
  haddr_t big_addr = 0, small_addr = 0;
  hsize_t big_size = 0, small_size = 0;
  {
    hid_t f = H5Fcreate(p.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    auto make = [&](const char* name, hsize_t n, hsize_t chunk, haddr_t* addr, hsize_t* size) {
      hid_t sp = H5Screate_simple(1, &n, nullptr);
      hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
      H5Pset_chunk(dcpl, 1, &chunk);
      H5Pset_deflate(dcpl, 6);
      hid_t d = H5Dcreate2(f, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
      std::vector<float> v(n, 0.0f);
      for (hsize_t i = 0; i < n; ++i) v[i] = static_cast<float>(i % 7);
      H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
      H5Dflush(d);
      hsize_t off = 0;
      unsigned mask = 0;
      REQUIRE(H5Dget_chunk_info(d, sp, 0, &off, &mask, addr, size) >= 0);  // (libhdf5 1.10 refuses H5S_ALL here)
      REQUIRE(*size > 0);
      H5Dclose(d);
      H5Pclose(dcpl);
      H5Sclose(sp);
    };
    make("big", 4096, 4096, &big_addr, &big_size);
    make("small", 64, 16, &small_addr, &small_size);
    H5Fclose(f);
  }
  // compressed datasets still read (the filter replaced is the one every gzip dataset uses)
  {
    auto f = graft::h5::File::open(p);
    auto root = graft::h5::Group::root(f);
    auto big = graft::h5::read_dataset<float>(root, "big");
    REQUIRE(big.size() == 4096);
    CHECK(big[4095] == static_cast<float>(4095 % 7));
    auto small = graft::h5::read_dataset<float>(root, "small");
    CHECK(small[63] == static_cast<float>(63 % 7));
  }
  std::string b = read_bytes(p);
  std::string key(8, '\0');
  for (int i = 0; i < 8; ++i) key[i] = static_cast<char>((small_addr >> (8 * i)) & 0xFF);
  // the chunk's B-tree record: its size (4 bytes), filter mask (4), 2 offsets (16), then its address
  // (the 8 address bytes alone can also occur elsewhere in the file)
  size_t at = std::string::npos;
  for (size_t pos = b.find(key, 24); pos != std::string::npos; pos = b.find(key, pos + 1)) {
    std::uint32_t sz = 0;
    for (int i = 0; i < 4; ++i) sz |= static_cast<std::uint32_t>(static_cast<unsigned char>(b[pos - 24 + i])) << (8 * i);
    if (sz == small_size) {
      at = pos;
      break;
    }
  }
  REQUIRE(at != std::string::npos);
  for (int i = 0; i < 8; ++i) b[at + i] = static_cast<char>((big_addr >> (8 * i)) & 0xFF);
  for (int i = 0; i < 4; ++i) b[at - 24 + i] = static_cast<char>((big_size >> (8 * i)) & 0xFF);
  write_bytes(p, b);
  auto f = graft::h5::File::open(p);
  auto root = graft::h5::Group::root(f);
  try {
    graft::h5::read_dataset<float>(root, "small");
    FAIL("a chunk inflating to 16 KiB was read as one of 64 bytes");
  } catch (const graft::format_error& e) {
    CHECK_THAT(e.what(), Contains("/small"));
  }
}

TEST_CASE("hardening: damaged copies of a model file end in graft errors", "[hardening][hdf5]") {
  // an in-process mutation campaign (tests/fuzz/mutate_corpus.py does it at scale on the CLI)
  for (const char* c : {"dense_act_relu/model.h5", "merge_add/model.h5", "conv2d_same/model.keras"}) {
    std::string clean = read_bytes(graft_test::shared_path(std::string("keras-fixtures/") + c));
    std::mt19937 rng(17);
    int refused = 0;
    for (int i = 0; i < 120; ++i) {
      std::string b = clean;
      if (i < 20) {
        b.resize(b.size() * static_cast<size_t>(i) / 20);
      } else {
        int flips = 1 + static_cast<int>(rng() % 8);
        for (int k = 0; k < flips; ++k) b[rng() % b.size()] ^= static_cast<char>(1 + rng() % 255);
      }
      std::string p = tmp("mutant.bin");
      write_bytes(p, b);
      auto t0 = std::chrono::steady_clock::now();
      try {
        graft::load_model<float>(p);
      } catch (const graft::error&) {
        ++refused;
      }
      CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 10);
    }
    CHECK(refused >= 20);  // at least the truncations
  }
}

TEST_CASE("hardening: a named pipe or directory is refused without blocking", "[hardening][io]") {
  std::string fifo = tmp("pipe.h5");
  std::remove(fifo.c_str());
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  auto fut = std::async(std::launch::async, [&] { return load_error(fifo); });
  REQUIRE(fut.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  std::string e = fut.get();
  CHECK_THAT(e, Contains("[graft.io]"));
  CHECK_THAT(e, Contains("not a regular file"));
  auto fut2 = std::async(std::launch::async, [&] {
    try {
      graft::inspect_keras_file(fifo);
    } catch (const graft::io_error& err) {
      return std::string(err.what());
    }
    return std::string();
  });
  REQUIRE(fut2.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  CHECK_THAT(fut2.get(), Contains("not a regular file"));
  CHECK_THAT(load_error(graft_test::tmp_dir()), Contains("not a regular file"));
  std::remove(fifo.c_str());
}

TEST_CASE("hardening: a 100 000-layer model loads in linear time", "[hardening][perf]") {
  const int n = 100000;
  json layers = json::array({input_layer("in", {nullptr, 4})});
  for (int i = 0; i < n; ++i)
    layers.push_back({{"class_name", "Activation"}, {"config", {{"name", "a" + std::to_string(i)}, {"activation", "relu"}}}});
  std::string p = model_file("long_sequential.h5", sequential("long", layers));
  auto t0 = std::chrono::steady_clock::now();
  auto m = graft::load_model<float>(p);
  std::ostringstream os;
  m->summary(os);
  double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(m->layers().size() == static_cast<size_t>(n));
  CHECK(dt < 15);  // was quadratic: hours
  graft::Tensor<float> x(Shape{2, 4}, 1.0f);
  CHECK(m->predict(x)[0] == 1.0f);
  // a Functional config listing its layers in reverse order (each resolvable only after the next)
  const int k = 20000;
  json fl = json::array();
  for (int i = k - 1; i >= 0; --i) {
    std::string prev = i == 0 ? "in" : "b" + std::to_string(i - 1);
    fl.push_back({{"class_name", "Activation"}, {"name", "b" + std::to_string(i)},
                  {"config", {{"name", "b" + std::to_string(i)}, {"activation", "relu"}}},
                  {"inbound_nodes", json::array({json::array({json::array({prev, 0, 0, json::object()})})})}});
  }
  fl.push_back({{"class_name", "InputLayer"}, {"name", "in"}, {"config", {{"name", "in"}, {"batch_shape", {nullptr, 4}}}},
                {"inbound_nodes", json::array()}});
  json fcfg = {{"class_name", "Functional"},
               {"config", {{"name", "rev"}, {"layers", fl}, {"input_layers", {{"in", 0, 0}}}, {"output_layers", {{"b" + std::to_string(k - 1), 0, 0}}}}}};
  t0 = std::chrono::steady_clock::now();
  auto fm = graft::model_from_json<float>(fcfg.dump());
  dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(fm->layers().size() == static_cast<size_t>(k + 1));
  CHECK(dt < 10);  // was quadratic in the layer count
  // the layer count is bounded too
  const auto saved = graft::limits();
  graft::limits().max_layers = 1000;
  CHECK_THAT(config_error(sequential("long", layers)), Contains("100001 layers, above graft::limits().max_layers = 1000"));
  graft::limits() = saved;
}

TEST_CASE("hardening: fuzzer findings stay fixed", "[hardening][fuzz]") {
  // small crash inputs of fuzz_load_model / fuzz_config_json (tests/fuzz/regressions; *.json are
  // configs, everything else model files)
  auto files = list_dir(std::string(GRAFT_SOURCE_DIR) + "/tests/fuzz/regressions");
  for (const auto& f : files) {
    INFO(f);
    auto t0 = std::chrono::steady_clock::now();
    std::string b = read_bytes(f);
    if (f.size() > 5 && f.compare(f.size() - 5, 5, ".json") == 0)
      graft::fuzz::config_json(reinterpret_cast<const std::uint8_t*>(b.data()), b.size());
    else
      graft::fuzz::load_file(f);
    CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 10);
  }
  SUCCEED(files.size() << " regression inputs");
}
