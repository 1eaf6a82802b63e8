// Writing for every Keras: the Keras 3 and TF-Keras 2 dialects (saving/), the generation a model
// keeps from its file, key-by-key agreement with what each Keras writes, .keras archives, and
// refusals that leave an existing file intact. Real Keras 3 loading the results is checked by the
// keras3_loads_graft_files CTest (tests/keras3/).
#include <graft/graft.hpp>
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <zip.h>

#include "gradcheck.hpp"

namespace {

using graft::Shape;
using graft::Tensor;
using json = nlohmann::json;
using KTs = std::vector<graft::KerasTensor<float>>;

std::string fixtures() { return graft_test::shared_path("keras-fixtures"); }
std::string corpus() { return graft_test::shared_path("keras-corpus"); }


std::string read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

json model_config_of(const std::string& path) {
  auto f = graft::h5::File::open(path);
  auto root = graft::h5::Group::root(f);
  return json::parse(root.string_attr("model_config"));
}
std::string keras_version_of(const std::string& path) {
  auto f = graft::h5::File::open(path);
  auto root = graft::h5::Group::root(f);
  return root.string_attr("keras_version");
}

/// Where two configs differ, ignoring `allowed` keys missing from graft's and call kwargs.
void config_diff(const json& keras, const json& ours, const std::string& where, const std::set<std::string>& allowed,
                 std::vector<std::string>& out) {
  if (where.size() >= 7 && where.compare(where.size() - 7, 7, ".kwargs") == 0) return;
  if (keras.is_object() && ours.is_object()) {
    for (auto it = keras.begin(); it != keras.end(); ++it)
      if (!ours.contains(it.key())) {
        if (!allowed.count(it.key())) out.push_back(where + ": key '" + it.key() + "' missing");
      } else {
        config_diff(*it, ours[it.key()], where + "." + it.key(), allowed, out);
      }
    for (auto it = ours.begin(); it != ours.end(); ++it)
      if (!keras.contains(it.key()) && !allowed.count("+" + it.key())) out.push_back(where + ": extra key '" + it.key() + "'");
  } else if (keras.is_array() && ours.is_array() && keras.size() == ours.size()) {
    for (size_t i = 0; i < keras.size(); ++i) config_diff(keras[i], ours[i], where + "[" + std::to_string(i) + "]", allowed, out);
  } else if (keras.is_number() && ours.is_number() && !keras.is_boolean()) {
    if (std::abs(keras.get<double>() - ours.get<double>()) > 1e-6 * std::max(1.0, std::abs(keras.get<double>())))
      out.push_back(where + ": " + keras.dump() + " vs " + ours.dump());
  } else if (keras != ours) {
    // BatchNormalization axis: TF-Keras 2.4 wrote [3], graft writes 3 (both read the same)
    if (!(keras.is_array() && keras.size() == 1 && keras[0] == ours && allowed.count("axis")))
      out.push_back(where + ": " + keras.dump().substr(0, 60) + " vs " + ours.dump().substr(0, 60));
  }
}

std::shared_ptr<graft::Model<float>> nested_model() {
  auto sx = graft::Input<float>(Shape{4}, "sub_in");
  auto sd = std::make_shared<graft::Dense<float>>(4, "tanh", true, "sub_dense");
  auto sub = std::make_shared<graft::Model<float>>(sx, (*sd)(sx), "sub");
  auto seq = std::make_shared<graft::Sequential<float>>("seq");
  seq->add(std::make_shared<graft::InputLayer<float>>(Shape{4}, "seq_in"));
  seq->add(std::make_shared<graft::Dense<float>>(4, "relu", true, "seq_dense"));
  auto x = graft::Input<float>(Shape{4}, "x");
  auto a = (*sub)(x);
  auto b = (*sub)((*seq)(a));  // sub called twice: its calls are numbered 0 and 1
  auto y = (*std::make_shared<graft::Add<float>>("add"))(KTs{a, b});
  return std::make_shared<graft::Model<float>>(x, y, "outer");
}

const json* find_layer(const json& cfg, const std::string& name) {
  for (const auto& l : cfg["config"]["layers"])
    if (l.value("name", l["config"].value("name", "")) == name) return &l;
  return nullptr;
}

}  // namespace

TEST_CASE("a model is saved for the Keras generation of its file; models built in graft for Keras 3", "[keras][dialects]") {
  auto k3 = graft::load_model<float>(fixtures() + "/handson_model_a/model.h5");
  CHECK(k3->source_keras_version() == "3.15.1");
  CHECK(graft::default_dialect(*k3) == graft::KerasDialect::keras3);
  auto k2 = graft::load_model<float>(corpus() + "/chlorophyll_my_model_A.h5");
  CHECK(k2->source_keras_version() == "2.6.0");
  CHECK(graft::default_dialect(*k2) == graft::KerasDialect::tf_keras2);
  auto k1 = graft::load_model<float>(corpus() + "/bwd_cats_and_dogs_small_1.h5");
  CHECK(graft::default_dialect(*k1) == graft::KerasDialect::tf_keras2);
  auto built = nested_model();
  CHECK(graft::default_dialect(*built) == graft::KerasDialect::keras3);
  auto arch = graft::load_model<float>(fixtures() + "/handson_model_a/model.keras");
  CHECK(graft::default_dialect(*arch) == graft::KerasDialect::keras3);

  std::string p = graft_test::tmp_dir() + "/gen.h5";
  graft::save_model(*k3, p);
  CHECK(keras_version_of(p) == "3.15.1");
  graft::save_model(*k2, p);
  CHECK(keras_version_of(p) == "2.15.0");
  graft::save_model(*built, p);
  CHECK(keras_version_of(p) == "3.15.1");
  graft::SaveOptions so;
  so.keras_version = "2";
  graft::save_model(*k3, p, so);
  CHECK(keras_version_of(p) == "2.15.0");
  // a converted model remembers the generation it was loaded from, the new one
  auto again = graft::load_model<float>(p);
  CHECK(graft::default_dialect(*again) == graft::KerasDialect::tf_keras2);
}

TEST_CASE("nested models are numbered as each Keras numbers them", "[keras][dialects]") {
  auto m = nested_model();
  json c3 = json::parse(graft::model_to_json(*m, "3"));
  json c2 = json::parse(graft::model_to_json(*m, "2"));
  SECTION("Keras 3: inbound nodes count a nested model's calls from 0, input/output_layers a Functional's from 1") {
    const json* add = find_layer(c3, "add");
    REQUIRE(add);
    const json& args = (*add)["inbound_nodes"][0]["args"][0];
    CHECK(args[0]["config"]["keras_history"] == json::parse(R"(["sub", 0, 0])"));
    CHECK(args[1]["config"]["keras_history"] == json::parse(R"(["sub", 1, 0])"));
    CHECK(args[0]["config"]["shape"] == json::parse("[null, 4]"));
    const json* seq = find_layer(c3, "seq");
    CHECK((*seq)["inbound_nodes"][0]["args"][0]["config"]["keras_history"] == json::parse(R"(["sub", 0, 0])"));
    CHECK(c3["config"]["input_layers"] == json::parse(R"(["x", 0, 0])"));  // one tensor, not a list of one
    CHECK(c3["config"]["output_layers"] == json::parse(R"(["add", 0, 0])"));
    const json* sub = find_layer(c3, "sub");
    CHECK((*sub)["config"]["output_layers"] == json::parse(R"(["sub_dense", 0, 0])"));
  }
  SECTION("TF-Keras 2: a nested Functional's and an input-started Sequential's built-in node comes first everywhere") {
    const json* add = find_layer(c2, "add");
    REQUIRE(add);
    CHECK((*add)["inbound_nodes"][0] == json::parse(R"([["sub", 1, 0, {}], ["sub", 2, 0, {}]])"));
    const json* sub = find_layer(c2, "sub");
    CHECK((*sub)["inbound_nodes"][1] == json::parse(R"([["seq", 1, 0, {}]])"));
    CHECK(c2["config"]["input_layers"] == json::parse(R"([["x", 0, 0]])"));
    CHECK(c2["config"]["output_layers"] == json::parse(R"([["add", 0, 0]])"));
  }
  SECTION("both read back into the same graph") {
    graft::Rng rng(3);
    Tensor<float> x = graft_test::random_tensor(Shape{3, 4}, rng).cast<float>();
    auto y = m->predict(x);
    for (const char* v : {"2", "3"}) {
      auto back = graft::model_from_json<float>(graft::model_to_json(*m, v));
      back->set_weights(m->get_weights());
      CHECK(back->predict(x) == y);
    }
  }
}

TEST_CASE("graft's TF-Keras 2 configs match the real TF-Keras 2 files of the corpus key by key", "[keras][dialects][corpus]") {
  // Left out on purpose, at their defaults, for the TF-Keras 2 releases before them and for Keras 3:
  // `ragged`, TF-Keras 2.13+'s `module`/`registered_name`, DepthwiseConv2D `groups`.
  const std::set<std::string> allowed = {"ragged", "module", "registered_name", "groups", "axis"};
  int compared = 0;
  for (const char* f : {"tm_aknight_keras_model.h5", "erenari_mnist_model.h5", "jungryung_my_model_A.h5", "jehyeon_my_model_A.h5",
                        "chlorophyll_my_model_A.h5", "deepanshu_my_model_A.h5", "fausto_my_model_A.h5"}) {
    INFO(f);
    auto m = graft::load_model<float>(corpus() + "/" + f);
    std::string p = graft_test::tmp_dir() + "/k2_" + f;
    graft::save_model(*m, p);  // their own generation: TF-Keras 2
    CHECK(keras_version_of(p) == "2.15.0");
    std::vector<std::string> diffs;
    config_diff(model_config_of(corpus() + "/" + f), model_config_of(p), "model_config", allowed, diffs);
    for (auto& d : diffs) INFO(d);
    CHECK(diffs.empty());
    ++compared;
  }
  CHECK(compared == 7);
}

TEST_CASE("graft's Keras 3 configs match what Keras 3.15.1 wrote for every fixture, key by key", "[keras][dialects]") {
  // Left out on purpose, at their defaults, for Keras 3 releases before them (keras3_serializer.hpp).
  const std::set<std::string> allowed = {"optional", "ragged", "quantization_config", "synchronized", "renorm",
                                         "renorm_clipping", "renorm_momentum"};
  std::ifstream idx(fixtures() + "/INDEX.md");
  REQUIRE(idx.good());
  int compared = 0;
  for (const char* c : {"handson_model_a", "functional_two_inputs", "functional_two_outputs", "functional_two_branches",
                        "functional_nested_sequential", "sequential_functional_first_layer", "sequential_model_first_layer",
                        "mobilenetv2_block", "resnet_block", "tiny_vgg", "layer_leaky_relu", "layer_prelu", "layer_relu_max6",
                        "bn_after_conv2d", "depthwise_conv2d", "separable_conv2d", "cropping2d", "rescaling", "reshape_4d",
                        "merge_concat_channels_two_inputs", "dropout", "layer_softmax", "stretch_embedding", "stretch_conv1d"}) {
    INFO(c);
    std::string src = fixtures() + "/" + c + "/model.h5";
    auto m = graft::load_model<float>(src);
    std::string p = graft_test::tmp_dir() + "/k3_" + c + ".h5";
    graft::save_model(*m, p);
    std::vector<std::string> diffs;
    config_diff(model_config_of(src), model_config_of(p), "model_config", allowed, diffs);
    for (auto& d : diffs) INFO(d);
    CHECK(diffs.empty());
    ++compared;
  }
  CHECK(compared == 24);
}

TEST_CASE("a file graft cannot write right is refused before anything is written, and an existing file stays intact",
          "[keras][dialects][errors]") {
  std::string p = graft_test::tmp_dir() + "/keep.h5";
  auto m = graft::load_model<float>(fixtures() + "/handson_model_a/model.h5");
  graft::save_model(*m, p);
  const std::string before = read_file(p);
  auto refused = [&](graft::Model<float>& model, const std::string& path, const std::string& version, const std::string& what) {
    graft::SaveOptions so;
    so.keras_version = version;
    try {
      graft::save_model(model, path, so);
      FAIL("no exception");
    } catch (const graft::error& e) {
      INFO(e.what());
      CHECK(std::string(e.what()).find(what) != std::string::npos);
    }
    CHECK(read_file(p) == before);
  };
  SECTION("an unknown Keras version") { refused(*m, p, "4", "keras_version '4'"); }
  SECTION("an activation TF-Keras 2 does not have") {
    auto s = std::make_shared<graft::Sequential<float>>("acts");
    s->add(std::make_shared<graft::InputLayer<float>>(Shape{3}));
    s->add(std::make_shared<graft::Dense<float>>(2, "hard_silu", true, "hs"));
    refused(*s, p, "2", "layer 'hs' (Dense): activation 'hard_silu' cannot be written for TF-Keras 2");
    refused(*s, p, "2", "keras_version \"3\"");
  }
  SECTION("Keras 3's hard_sigmoid, which TF-Keras 2 defines differently") {
    auto s = std::make_shared<graft::Sequential<float>>("hsig");
    s->add(std::make_shared<graft::InputLayer<float>>(Shape{3}));
    s->add(std::make_shared<graft::Activation<float>>("hard_sigmoid", "hsig_act"));
    refused(*s, p, "2", "computes a different hard_sigmoid");
  }
  SECTION("a custom layer no registry knows") {
    struct Twice : graft::UnaryLayer<float> {
      using graft::UnaryLayer<float>::UnaryLayer;
      std::string class_name() const override { return "UnregisteredTwice"; }
      Shape output_shape(const Shape& s) const override { return s; }
      void forward1(const Tensor<float>& x, Tensor<float>& y, graft::CallState*, bool) override { y = x; }
      void backward1(const Tensor<float>&, const Tensor<float>&, const Tensor<float>& dy, Tensor<float>* dx, graft::CallState*) override {
        if (dx) *dx = dy;
      }
    };
    auto s = std::make_shared<graft::Sequential<float>>("custom");
    s->add(std::make_shared<graft::InputLayer<float>>(Shape{3}));
    s->add(std::make_shared<Twice>("twice"));
    refused(*s, p, "3", "layer 'twice' (UnregisteredTwice) cannot be saved");
  }
  SECTION("a .keras archive for TF-Keras 2") {
    std::string k = graft_test::tmp_dir() + "/keep.keras";
    graft::save_model(*m, k);
    const std::string kb = read_file(k);
    graft::SaveOptions so;
    so.keras_version = "2";
    CHECK_THROWS_AS(graft::save_model(*m, k, so), graft::unsupported_error);
    CHECK(read_file(k) == kb);
  }
}

TEST_CASE(".keras archives graft writes load back with the same predictions, compile and optimizer state",
          "[keras][dialects][roundtrip]") {
  auto m = graft::load_model<float>(fixtures() + "/train_rmsprop_momentum_mse/before.h5");
  auto io = graft_test::read_arrays(fixtures() + "/train_rmsprop_momentum_mse/io.h5", "x_train");
  auto yt = graft_test::read_arrays(fixtures() + "/train_rmsprop_momentum_mse/io.h5", "y_train");
  graft::FitOptions<float> o;
  o.verbose = 0;
  o.shuffle = false;
  m->fit(io, yt, o);
  std::string p = graft_test::tmp_dir() + "/trained.keras";
  graft::save_model(*m, p);
  // a zip of exactly Keras' three members, stored
  int err = 0;
  zip_t* z = zip_open(p.c_str(), ZIP_RDONLY, &err);
  REQUIRE(z != nullptr);
  std::set<std::string> names;
  for (zip_int64_t i = 0; i < zip_get_num_entries(z, 0); ++i) {
    zip_stat_t st;
    zip_stat_index(z, static_cast<zip_uint64_t>(i), 0, &st);
    names.insert(st.name);
    CHECK(st.comp_method == ZIP_CM_STORE);
  }
  zip_close(z);
  CHECK(names == std::set<std::string>{"metadata.json", "config.json", "model.weights.h5"});
  auto back = graft::load_model<float>(p);
  CHECK(back->source_keras_version() == "3.15.1");
  REQUIRE(back->compiled());
  CHECK(back->optimizer()->class_name() == "RMSprop");
  CHECK(back->optimizer()->iterations() == m->optimizer()->iterations());
  auto s1 = m->optimizer()->slot_variables(), s2 = back->optimizer()->slot_variables();
  REQUIRE(s1.size() == s2.size());
  for (size_t i = 0; i < s1.size(); ++i) CHECK(*s1[i].value == *s2[i].value);
  CHECK(back->predict(io) == m->predict(io));
  // nested models, frozen flags
  auto tm = graft::load_model<float>(corpus() + "/tm_aknight_keras_model.h5");
  tm->get_layer(0)->set_trainable(false);
  std::string pt = graft_test::tmp_dir() + "/tm.keras";
  graft::save_model(*tm, pt);
  auto tb = graft::load_model<float>(pt);
  CHECK(tb->trainable_weights().size() == tm->trainable_weights().size());
  CHECK(tb->count_params() == tm->count_params());
  graft::Rng rng(5);
  Tensor<float> x = graft_test::random_tensor(Shape{2, 224, 224, 3}, rng, 0, 1).cast<float>();
  CHECK(tb->predict(x) == tm->predict(x));
}

TEST_CASE("both dialects round-trip a compiled nested model through graft", "[keras][dialects][roundtrip]") {
  auto m = nested_model();
  m->compile(std::make_shared<graft::Adam<float>>(0.01), "mean_squared_error");
  graft::Rng rng(9);
  Tensor<float> x = graft_test::random_tensor(Shape{6, 4}, rng).cast<float>();
  Tensor<float> y = graft_test::random_tensor(Shape{6, 4}, rng).cast<float>();
  graft::FitOptions<float> o;
  o.verbose = 0;
  o.batch_size = 3;
  m->fit(x, y, o);
  for (const char* v : {"2", "3"}) {
    INFO(v);
    graft::SaveOptions so;
    so.keras_version = v;
    std::string p = graft_test::tmp_dir() + "/nested_k" + v + ".h5";
    graft::save_model(*m, p, so);
    std::vector<std::string> warnings;
    graft::LoadOptions lo;
    lo.warn = [&](const std::string& w) { warnings.push_back(w); };
    auto back = graft::load_model<float>(p, lo);
    CHECK(warnings.empty());
    CHECK(back->predict(x) == m->predict(x));
    REQUIRE(back->compiled());
    CHECK(back->optimizer()->iterations() == m->optimizer()->iterations());
    CHECK(back->optimizer()->iterations() == 2);
    auto s1 = m->optimizer()->slot_variables(), s2 = back->optimizer()->slot_variables();
    REQUIRE(s1.size() == s2.size());
    for (size_t i = 0; i < s1.size(); ++i) CHECK(*s1[i].value == *s2[i].value);
  }
}
