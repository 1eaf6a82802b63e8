// Vision layers: configs (round trips, Keras 1 / TF-Keras 2 / Keras 3 dialects), error messages,
// Embedding, and parity with the Keras fixtures (inference and BatchNormalization training).
#include <graft/graft.hpp>
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <memory>

#include "gradcheck.hpp"

namespace {

using graft::Index;
using graft::Shape;
using graft::Tensor;
using graft_test::check_layer_gradients;
using graft_test::random_tensor;
using json = nlohmann::json;

Tensor<double> run(graft::Layer<double>& layer, const Tensor<double>& x, bool training = false) {
  layer.build({x.shape()});
  auto st = layer.make_state();
  Tensor<double> y;
  layer.forward({&x}, {&y}, st.get(), training);
  return y;
}

std::shared_ptr<graft::Layer<double>> create(const std::string& cls, const json& cfg) {
  return graft::LayerRegistry<double>::instance().create(cls, cfg);
}

/// get_config -> from_config (through the registry) -> same weights -> same output, same config.
void round_trip(graft::Layer<double>& l, const Shape& in_shape, std::uint64_t seed) {
  graft::Rng rng(seed);
  auto x = random_tensor(in_shape, rng, 0, 3);
  l.build({x.shape()});
  for (auto* p : l.weights())
    for (auto& v : p->value) v = rng.uniform(0.5, 1.5);
  json cfg = l.get_config();
  INFO(cfg.dump());
  auto copy = create(l.class_name(), cfg);
  REQUIRE(copy->class_name() == l.class_name());
  CHECK(copy->name() == l.name());
  copy->build({x.shape()});
  copy->set_weights(l.get_weights());
  auto a = run(l, x), b = run(*copy, x);
  REQUIRE(a.shape() == b.shape());
  for (Index i = 0; i < a.size(); ++i) REQUIRE(a[i] == b[i]);
  CHECK(copy->get_config() == cfg);
}

using graft_test::error_of;

std::string fixtures() { return graft_test::shared_path("keras-fixtures"); }

json read_json(const std::string& p) {
  std::ifstream f(p);
  REQUIRE(f.good());
  return json::parse(f);
}

}  // namespace

TEST_CASE("vision layer configs round-trip through get_config and the registry", "[vision][config]") {
  SECTION("Conv2D") {
    graft::Conv2D<double> l(3, {3, 2}, {2, 1}, "same", "relu", true, 1, "c2d");
    l.kernel_regularizer.l2 = 0.01;
    round_trip(l, {2, 6, 5, 2}, 1);
  }
  SECTION("Conv1D causal dilated") {
    graft::Conv1D<double> l(3, 2, 1, "causal", "tanh", false, 2, "c1d");
    round_trip(l, {2, 7, 3}, 2);
  }
  SECTION("DepthwiseConv2D (no groups key: Keras 3 rejects it)") {
    graft::DepthwiseConv2D<double> l(3, 2, "same", 2, "relu6", true, 1, "dw");
    round_trip(l, {2, 6, 6, 3}, 3);
    CHECK_FALSE(l.get_config().contains("groups"));
    CHECK(l.get_config()["depth_multiplier"] == 2);
  }
  SECTION("SeparableConv2D") {
    graft::SeparableConv2D<double> l(4, 3, 1, "valid", 2, "linear", true, 1, "sep");
    round_trip(l, {2, 6, 6, 3}, 4);
  }
  SECTION("pooling") {
    graft::MaxPooling2D<double> a({3, 2}, {2, 1}, "same", "mp");
    round_trip(a, {2, 7, 6, 2}, 5);
    graft::AveragePooling2D<double> b(3, 2, "same", "ap");
    round_trip(b, {2, 7, 6, 2}, 5);
    graft::MaxPooling1D<double> c(2, 1, "same", "mp1");
    round_trip(c, {2, 7, 2}, 5);
    graft::AveragePooling1D<double> d(3, 2, "valid", "ap1");
    round_trip(d, {2, 7, 2}, 5);
    graft::GlobalAveragePooling2D<double> e(true, "gap");
    round_trip(e, {2, 3, 4, 2}, 5);
    graft::GlobalMaxPooling1D<double> f(false, "gmp1");
    round_trip(f, {2, 3, 4}, 5);
  }
  SECTION("BatchNormalization") {
    graft::BatchNormalization<double> l(2, 0.9, 1e-2, true, false, "bn");
    round_trip(l, {3, 4, 3, 2}, 6);
    CHECK(l.get_config()["axis"] == 2);
  }
  SECTION("padding, cropping, upsampling, rescaling, embedding") {
    graft::ZeroPadding2D<double> a(1, 2, 3, 0, "zp");
    round_trip(a, {2, 3, 3, 2}, 7);
    CHECK(a.get_config()["padding"] == json::parse("[[1,2],[3,0]]"));
    graft::Cropping2D<double> b(1, 0, 2, 1, "cr");
    round_trip(b, {2, 4, 5, 2}, 7);
    graft::UpSampling2D<double> c({2, 3}, "bilinear", "up");
    round_trip(c, {2, 3, 3, 2}, 7);
    graft::Rescaling<double> d({0.5, 2.0}, {1.0}, "rs");
    round_trip(d, {2, 3, 2}, 7);
    graft::Embedding<double> e(5, 3, "emb");
    round_trip(e, {2, 4}, 7);
  }
}

TEST_CASE("Keras 1 configs load: Convolution2D, MaxPooling2D border_mode, BatchNormalization mode 0", "[vision][config]") {
  const char* text = R"({"class_name": "Sequential", "config": [
    {"class_name": "Convolution2D", "config": {"name": "convolution2d_1", "trainable": true, "batch_input_shape": [null, 9, 8, 1],
      "input_dtype": "float32", "nb_filter": 4, "nb_row": 3, "nb_col": 2, "init": "glorot_uniform", "activation": "relu",
      "weights": null, "border_mode": "same", "subsample": [2, 1], "dim_ordering": "tf",
      "W_regularizer": {"l2": 0.01, "name": "WeightRegularizer", "l1": 0.0}, "b_regularizer": null,
      "activity_regularizer": null, "W_constraint": null, "b_constraint": null, "bias": true}},
    {"class_name": "BatchNormalization", "config": {"name": "batchnormalization_1", "trainable": true, "epsilon": 0.001,
      "mode": 0, "axis": -1, "gamma_regularizer": null, "beta_regularizer": null, "momentum": 0.99}},
    {"class_name": "MaxPooling2D", "config": {"name": "maxpooling2d_1", "trainable": true, "pool_size": [2, 2],
      "strides": null, "border_mode": "same", "dim_ordering": "tf"}},
    {"class_name": "AtrousConvolution2D", "config": {"name": "atrousconvolution2d_1", "nb_filter": 2, "nb_row": 2, "nb_col": 2,
      "init": "he_normal", "activation": "linear", "border_mode": "valid", "subsample": [1, 1], "atrous_rate": [2, 1],
      "dim_ordering": "tf", "W_regularizer": null, "b_regularizer": null, "activity_regularizer": null,
      "W_constraint": null, "b_constraint": null, "bias": false}},
    {"class_name": "ZeroPadding2D", "config": {"name": "zeropadding2d_1", "padding": [1, 2, 0, 1], "dim_ordering": "tf"}},
    {"class_name": "UpSampling2D", "config": {"name": "upsampling2d_1", "size": [2, 2], "dim_ordering": "tf"}},
    {"class_name": "GlobalAveragePooling2D", "config": {"name": "globalaveragepooling2d_1", "dim_ordering": "tf"}}
  ]})";
  auto m = graft::model_from_json<double>(text);
  auto conv = std::dynamic_pointer_cast<graft::Conv2D<double>>(m->get_layer("convolution2d_1"));
  REQUIRE(conv);
  CHECK(conv->filters() == 4);
  CHECK(conv->kernel_size() == std::vector<Index>{3, 2});
  CHECK(conv->strides() == std::vector<Index>{2, 1});
  CHECK(conv->padding() == "same");
  CHECK(conv->activation().name() == "relu");
  CHECK(conv->kernel_regularizer.l2 == Approx(0.01));
  CHECK(conv->kernel().value.shape() == Shape{3, 2, 1, 4});
  auto bn = std::dynamic_pointer_cast<graft::BatchNormalization<double>>(m->get_layer("batchnormalization_1"));
  REQUIRE(bn);
  CHECK(bn->weights().size() == 4);
  auto mp = std::dynamic_pointer_cast<graft::MaxPooling2D<double>>(m->get_layer("maxpooling2d_1"));
  REQUIRE(mp);
  CHECK(mp->padding() == "same");
  CHECK(mp->strides() == std::vector<Index>{2, 2});
  auto at = std::dynamic_pointer_cast<graft::Conv2D<double>>(m->get_layer("atrousconvolution2d_1"));
  REQUIRE(at);
  CHECK(at->dilation_rate() == std::vector<Index>{2, 1});
  CHECK_FALSE(at->use_bias());
  auto zp = std::dynamic_pointer_cast<graft::ZeroPadding2D<double>>(m->get_layer("zeropadding2d_1"));
  REQUIRE(zp);
  CHECK(zp->padding() == std::array<Index, 4>{1, 2, 0, 1});
  // 9x8 -> conv same s(2,1) 5x8 -> pool same 3x4 -> atrous valid (2,1)x(2,1 dil) 1x3 -> pad 4x4 -> up 8x8 -> gap
  auto y = m->predict(Tensor<double>({2, 9, 8, 1}, 0.5));
  CHECK(y.shape() == Shape{2, 2});
}

TEST_CASE("Keras 1 Convolution1D / MaxPooling1D and the other ZeroPadding2D spellings", "[vision][config]") {
  auto c1 = create("Conv1D", json::parse(R"({"name": "convolution1d_1", "nb_filter": 3, "filter_length": 2, "init": "uniform",
      "activation": "linear", "border_mode": "valid", "subsample_length": 2, "W_regularizer": null, "b_regularizer": null,
      "activity_regularizer": null, "W_constraint": null, "b_constraint": null, "bias": true, "input_dim": 5, "input_length": null})"));
  CHECK(run(*c1, Tensor<double>({1, 7, 5}, 1.0)).shape() == Shape{1, 3, 3});
  auto p1 = create("MaxPooling1D", json::parse(R"({"name": "maxpooling1d_1", "pool_length": 3, "stride": null, "border_mode": "same"})"));
  CHECK(run(*p1, Tensor<double>({1, 7, 2}, 1.0)).shape() == Shape{1, 3, 2});
  auto zd = create("ZeroPadding2D", json::parse(R"({"name": "z", "padding": {"top_pad": 2, "left_pad": 1}})"));
  CHECK(run(*zd, Tensor<double>({1, 3, 3, 1}, 1.0)).shape() == Shape{1, 5, 4, 1});
  auto z2 = create("ZeroPadding2D", json::parse(R"({"name": "z2", "padding": [1, 2]})"));
  CHECK(run(*z2, Tensor<double>({1, 3, 3, 1}, 1.0)).shape() == Shape{1, 5, 7, 1});
  auto z3 = create("ZeroPadding2D", json::parse(R"({"name": "z3", "padding": 2})"));
  CHECK(run(*z3, Tensor<double>({1, 3, 3, 1}, 1.0)).shape() == Shape{1, 7, 7, 1});
  auto cr = create("Cropping2D", json::parse(R"({"name": "c", "cropping": [1, 2]})"));
  CHECK(run(*cr, Tensor<double>({1, 5, 5, 1}, 1.0)).shape() == Shape{1, 3, 1, 1});
}

TEST_CASE("TF-Keras 2 and Keras 3 dialects: BN axis list, DepthwiseConv2D keys, numpy Rescaling", "[vision][config]") {
  auto bn = create("BatchNormalization", json::parse(R"({"name": "bn_Conv1", "trainable": true, "dtype": "float32", "axis": [3],
      "momentum": 0.999, "epsilon": 0.001, "center": true, "scale": true, "beta_initializer": {"class_name": "Zeros", "config": {}},
      "gamma_initializer": {"class_name": "Ones", "config": {}}, "moving_mean_initializer": {"class_name": "Zeros", "config": {}},
      "moving_variance_initializer": {"class_name": "Ones", "config": {}}, "beta_regularizer": null, "gamma_regularizer": null,
      "beta_constraint": null, "gamma_constraint": null, "fused": true, "renorm": false, "renorm_clipping": null,
      "renorm_momentum": 0.99, "virtual_batch_size": null, "adjustment": null})"));
  auto b = std::dynamic_pointer_cast<graft::BatchNormalization<double>>(bn);
  REQUIRE(b);
  CHECK(b->axis() == 3);
  CHECK(b->momentum() == 0.999);
  CHECK(b->get_config()["axis"] == 3);
  auto dw = create("DepthwiseConv2D", json::parse(R"({"name": "expanded_conv_depthwise", "trainable": true, "dtype": "float32",
      "kernel_size": [3, 3], "strides": [1, 1], "padding": "same", "data_format": "channels_last", "dilation_rate": [1, 1],
      "groups": 1, "activation": "linear", "use_bias": false, "bias_initializer": {"class_name": "Zeros", "config": {}},
      "bias_regularizer": null, "activity_regularizer": null, "bias_constraint": null, "depth_multiplier": 1,
      "depthwise_initializer": {"class_name": "VarianceScaling", "config": {"scale": 1, "mode": "fan_avg", "distribution": "uniform", "seed": null}},
      "depthwise_regularizer": {"class_name": "L2", "config": {"l2": 0.5}}, "depthwise_constraint": null})"));
  auto d = std::dynamic_pointer_cast<graft::DepthwiseConv2D<double>>(dw);
  REQUIRE(d);
  CHECK(d->depthwise_regularizer.l2 == 0.5);
  CHECK(d->depthwise_initializer.class_name == "VarianceScaling");
  CHECK_FALSE(d->get_config().contains("groups"));
  auto rs = create("Rescaling", json::parse(R"({"name": "r", "scale": {"class_name": "__numpy__", "config": {"value": [[[0.5, 1.0]]],
      "dtype": "float32"}}, "offset": 0.25})"));
  auto y = run(*rs, Tensor<double>({1, 2}, {2, 2}));
  CHECK(y[0] == 1.25);
  CHECK(y[1] == 2.25);
}

TEST_CASE("vision layer errors name the layer and what is wrong", "[vision][errors]") {
  auto msg = error_of<graft::unsupported_error>([] {
    create("Conv2D", json::parse(R"({"name": "c", "filters": 2, "kernel_size": 3, "data_format": "channels_first"})"));
  });
  CHECK_THAT(msg, Catch::Contains("layer 'c' (Conv2D)") && Catch::Contains("channels_first"));
  msg = error_of<graft::unsupported_error>([] {
    create("MaxPooling2D", json::parse(R"({"name": "p", "pool_size": [2, 2], "border_mode": "valid", "dim_ordering": "th"})"));
  });
  CHECK_THAT(msg, Catch::Contains("layer 'p' (MaxPooling2D)") && Catch::Contains("'th'"));
  msg = error_of<graft::unsupported_error>([] {
    create("Conv1D", json::parse(R"({"name": "g", "filters": 4, "kernel_size": 3, "groups": 2})"));
  });
  CHECK_THAT(msg, Catch::Contains("layer 'g' (Conv1D)") && Catch::Contains("groups=2"));
  msg = error_of<graft::value_error>([] {  // grouped Conv2D is supported, with whole groups
    create("Conv2D", json::parse(R"({"name": "g2", "filters": 4, "kernel_size": 3, "groups": 3})"));
  });
  CHECK_THAT(msg, Catch::Contains("layer 'g2' (Conv2D)") && Catch::Contains("multiple of groups (3)"));
  msg = error_of<graft::unsupported_error>([] {
    create("Conv2D", json::parse(R"({"name": "f", "nb_filter": 4, "nb_row": 3, "nb_col": 3, "border_mode": "full"})"));
  });
  CHECK_THAT(msg, Catch::Contains("layer 'f' (Conv2D)") && Catch::Contains("'full'"));
  msg = error_of<graft::unsupported_error>([] {
    create("BatchNormalization", json::parse(R"({"name": "b", "mode": 2})"));
  });
  CHECK_THAT(msg, Catch::Contains("layer 'b' (BatchNormalization)") && Catch::Contains("mode=2"));
  msg = error_of<graft::unsupported_error>([] {
    create("UpSampling2D", json::parse(R"({"name": "u", "size": 2, "interpolation": "bicubic"})"));
  });
  CHECK_THAT(msg, Catch::Contains("layer 'u' (UpSampling2D)") && Catch::Contains("bicubic"));
  msg = error_of<graft::unsupported_error>([] {
    create("Embedding", json::parse(R"({"name": "e", "input_dim": 5, "output_dim": 2, "mask_zero": true})"));
  });
  CHECK_THAT(msg, Catch::Contains("layer 'e' (Embedding)") && Catch::Contains("mask_zero"));
  msg = error_of<graft::format_error>([] { create("Conv2D", json::parse(R"({"name": "k", "filters": 2})")); });
  CHECK_THAT(msg, Catch::Contains("layer 'k' (Conv2D)") && Catch::Contains("kernel_size"));

  graft::Conv2D<double> conv(2, 3, 1, "valid", "linear", true, 1, "conv_x");
  conv.build({{-1, 5, 5, 3}});
  msg = error_of<graft::shape_error>([&] { conv.compute_output_shapes({{-1, 5, 5, 4}}); });
  CHECK_THAT(msg, Catch::Contains("layer 'conv_x' (Conv2D)") && Catch::Contains("3 channels"));
  msg = error_of<graft::shape_error>([&] { conv.compute_output_shapes({{-1, 2, 5, 3}}); });
  CHECK_THAT(msg, Catch::Contains("layer 'conv_x' (Conv2D)") && Catch::Contains("too small"));
  msg = error_of<graft::shape_error>([&] { run(conv, Tensor<double>({1, 5, 5, 2}, 0.0)); });
  CHECK_THAT(msg, Catch::Contains("layer 'conv_x' (Conv2D)"));
  graft::MaxPooling2D<double> mp(3, 1, "valid", "pool_x");
  msg = error_of<graft::shape_error>([&] { run(mp, Tensor<double>({1, 2, 5, 1}, 0.0)); });
  CHECK_THAT(msg, Catch::Contains("layer 'pool_x' (MaxPooling2D)"));
  graft::Embedding<double> emb(4, 2, "emb_x");
  msg = error_of<graft::value_error>([&] { run(emb, Tensor<double>({1, 2}, {1, 4})); });
  CHECK_THAT(msg, Catch::Contains("layer 'emb_x' (Embedding)") && Catch::Contains("[0, 4)"));
}

TEST_CASE("Embedding looks rows up and scatters gradients into them", "[vision][embedding][gradcheck]") {
  graft::Embedding<double> e(6, 3, "emb");
  Tensor<double> x({2, 3}, {0, 5, 2.9, 2, 2, 1});
  e.build({x.shape()});
  graft::Rng rng(2);
  for (auto& v : e.embeddings().value) v = rng.uniform(-1, 1);
  auto y = run(e, x);
  REQUIRE(y.shape() == Shape{2, 3, 3});
  for (Index k = 0; k < 3; ++k) {
    CHECK(y[1 * 3 + k] == e.embeddings().value[5 * 3 + k]);
    CHECK(y[2 * 3 + k] == e.embeddings().value[2 * 3 + k]);  // 2.9 truncates to 2, like a cast to int32
  }
  graft_test::GradCheckOptions o;
  o.check_inputs = false;
  check_layer_gradients(e, {x}, o);  // index 2 appears three times: gradients add up
}

TEST_CASE("Keras fixtures with vision layers predict within tolerance", "[vision][fixtures]") {
  for (const char* c : {"conv2d_1x1", "conv2d_dilation2", "conv2d_dilation2_same", "conv2d_no_bias", "conv2d_nonsquare",
                        "conv2d_same", "conv2d_same_asymmetric", "conv2d_strides2_same", "conv2d_strides2_valid",
                        "conv2d_valid", "maxpool_same_asymmetric", "maxpool_same_s2_p3", "maxpool_valid", "maxpool_valid_s1_p2",
                        "avgpool_same_asymmetric", "avgpool_same_s2_p3", "avgpool_valid", "avgpool_valid_s1_p3x2",
                        "bn_after_conv2d", "bn_after_dense", "depthwise_conv2d", "separable_conv2d", "zero_padding2d",
                        "cropping2d", "upsampling2d", "rescaling", "global_avg_pool", "global_max_pool", "tiny_vgg",
                        "mobilenetv2_block", "resnet_block", "stretch_conv1d", "stretch_embedding"}) {
    SECTION(c) {
      std::string d = fixtures() + "/" + c;
      json meta = read_json(d + "/meta.json");
      const double atol = meta["tolerance"]["atol"], rtol = meta["tolerance"]["rtol"];
      auto m = graft::load_model<float>(d + "/model.h5");
      auto x = graft_test::read_arrays(d + "/io.h5", "x");
      auto y = graft_test::read_arrays(d + "/io.h5", "y");
      auto p = m->predict(x);
      REQUIRE(p[0].shape() == y[0].shape());
      for (Index i = 0; i < p[0].size(); ++i) {
        INFO(c << " element " << i << ": " << p[0][i] << " vs Keras " << y[0][i]);
        REQUIRE(std::abs(double(p[0][i]) - y[0][i]) <= atol + rtol * std::abs(double(y[0][i])));
      }
    }
  }
}

TEST_CASE("BatchNormalization training fixtures: trainable and frozen, one epoch of SGD matches Keras", "[vision][fixtures][bn]") {
  for (const char* c : {"train_bn_trainable_sgd", "train_frozen_bn_sgd"}) {
    SECTION(c) {
      std::string d = fixtures() + "/" + c;
      json meta = read_json(d + "/meta.json");
      auto m = graft::load_model<float>(d + "/before.h5");
      graft::LoadOptions quiet;
      quiet.compile = false;  // only the weights of after.h5 are compared
      auto want = graft::load_model<float>(d + "/after.h5", quiet)->get_weights();
      auto before = m->get_weights();
      graft::FitOptions<float> o;
      o.epochs = 1;
      o.batch_size = meta["fit"]["batch_size"].get<Index>();
      o.shuffle = false;
      o.verbose = 0;
      auto h = m->fit(graft_test::read_arrays(d + "/io.h5", "x_train"), graft_test::read_arrays(d + "/io.h5", "y_train"), o);
      CHECK(h["loss"][0] == Approx(meta["history_loss"][0].get<double>()).epsilon(1e-4));
      auto got = m->get_weights();
      REQUIRE(got.size() == want.size());
      for (size_t i = 0; i < got.size(); ++i) {
        REQUIRE(got[i].shape() == want[i].shape());
        for (Index k = 0; k < got[i].size(); ++k) {
          INFO(c << " weight #" << i << "[" << k << "]: " << got[i][k] << " vs Keras " << want[i][k]);
          REQUIRE(std::abs(got[i][k] - want[i][k]) <= 1e-5 + 1e-4 * std::abs(want[i][k]));
        }
      }
      auto bn = m->get_layer("bn");
      REQUIRE(bn);
      if (!bn->trainable()) {
        auto all = m->weights();
        for (auto* p : bn->weights()) {
          size_t pos = static_cast<size_t>(std::find(all.begin(), all.end(), p) - all.begin());
          CHECK(p->value == before[pos]);  // bit-identical: a frozen BN changes nothing
        }
      }
    }
  }
}

TEST_CASE("a small CNN with every vision layer trains and survives save/load", "[vision][model]") {
  graft::set_random_seed(5);
  graft::Sequential<float> m;
  m.add<graft::InputLayer>(Shape{12, 12, 1});
  m.add<graft::Rescaling>(2.0, -1.0);
  m.add<graft::ZeroPadding2D>(1, 1, 1, 1);
  m.add<graft::Conv2D>(4, 3, 1, "valid", "relu");
  m.add<graft::BatchNormalization>();
  m.add<graft::DepthwiseConv2D>(3, 1, "same", 2, "relu");
  m.add<graft::SeparableConv2D>(6, 3, 2, "same", 1, "relu");
  m.add<graft::MaxPooling2D>(2, 1, "same");
  m.add<graft::UpSampling2D>(2);
  m.add<graft::Cropping2D>(1, 1, 1, 1);
  m.add<graft::AveragePooling2D>(2);
  m.add<graft::GlobalAveragePooling2D>();
  m.add<graft::Dense>(1, "sigmoid");
  m.compile(std::make_shared<graft::Adam<float>>(0.01), "binary_crossentropy", {"accuracy"});
  Tensor<float> x({64, 12, 12, 1}), y({64, 1});
  graft::Rng r(2);
  for (Index n = 0; n < 64; ++n) {
    const bool bright_top = r.uniform(0, 1) < 0.5;
    y[n] = bright_top ? 1.f : 0.f;
    for (Index i = 0; i < 144; ++i)
      x[n * 144 + i] = static_cast<float>(r.uniform(0, 0.3) + ((i / 12 < 6) == bright_top ? 0.6 : 0.0));
  }
  graft::FitOptions<float> o;
  o.epochs = 15;
  o.batch_size = 16;
  o.verbose = 0;
  auto h = m.fit(x, y, o);
  CHECK(h["loss"].back() < 0.7 * h["loss"].front());
  auto p = m.predict(x);
  char tmpl[] = "/tmp/graft-vision-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  std::string path = std::string(tmpl) + "/cnn.h5";
  graft::save_model(m, path);
  auto back = graft::load_model<float>(path);
  auto q = back->predict(x);
  REQUIRE(q.shape() == p.shape());
  for (Index i = 0; i < p.size(); ++i) REQUIRE(q[i] == p[i]);
  std::remove(path.c_str());
}
