// The layers and graph nodes keras.applications needs beyond the classic ones: LayerNormalization,
// Normalization, grouped Conv2D, LayerScale, CustomScaleLayer and operation nodes (Keras 3
// keras.src.ops, TF-Keras 2 TFOpLambda). Gradient checks in double, hand-computed forwards,
// configs read and written. Parity with real Keras on every family: keras3_loads_graft_files.
#include <graft/graft.hpp>
#include <catch2/catch.hpp>

#include <cmath>

#include "gradcheck.hpp"

namespace {
using graft::Index;
using graft::Shape;
using graft::Tensor;
using json = nlohmann::json;
using graft_test::check_layer_gradients;
using graft_test::random_tensor;
using KTs = std::vector<graft::KerasTensor<float>>;

Tensor<double> run1(graft::Layer<double>& l, const Tensor<double>& x) {
  l.build({x.shape()});
  Tensor<double> y;
  auto st = l.make_state();
  l.forward({&x}, {&y}, st.get(), false);
  return y;
}
}  // namespace

TEST_CASE("LayerNormalization normalises each sample over its last axes, as Keras", "[layers][layernorm]") {
  graft::Rng rng(1);
  Tensor<double> x = random_tensor(Shape{3, 4, 5}, rng, -2, 3);
  SECTION("forward: (x - mean) / sqrt(var + eps) * gamma + beta over the last axis") {
    graft::LayerNormalization<double> l({-1}, 1e-3);
    auto y = run1(l, x);
    auto w = l.get_weights();
    for (Index r = 0; r < 12; ++r) {
      double m = 0, v = 0;
      for (Index i = 0; i < 5; ++i) m += x[r * 5 + i] / 5;
      for (Index i = 0; i < 5; ++i) v += (x[r * 5 + i] - m) * (x[r * 5 + i] - m) / 5;
      for (Index i = 0; i < 5; ++i) CHECK(y[r * 5 + i] == Approx((x[r * 5 + i] - m) / std::sqrt(v + 1e-3)).margin(1e-12));
    }
    CHECK(w.size() == 2);  // gamma, beta
  }
  SECTION("gradients, last axis and the two last axes, rms_scaling, without center or scale") {
    for (auto axes : std::vector<std::vector<int>>{{-1}, {1, 2}}) {
      graft::LayerNormalization<double> l(axes, 1e-3);
      l.build({x.shape()});
      auto ws = l.weights();
      ws[0]->value = random_tensor(ws[0]->value.shape(), rng, 0.5, 1.5);
      ws[1]->value = random_tensor(ws[1]->value.shape(), rng);
      check_layer_gradients(l, {x});
    }
    graft::LayerNormalization<double> rms({-1}, 1e-3, true, true, "rms", true);
    check_layer_gradients(rms, {x});
    graft::LayerNormalization<double> bare({-1}, 1e-2, false, false, "bare");
    check_layer_gradients(bare, {x});
  }
  SECTION("config round trip, and axes graft does not support are named") {
    json c = {{"name", "ln"}, {"axis", json::array({-1})}, {"epsilon", 1e-6}, {"center", true}, {"scale", true}, {"rms_scaling", false}};
    auto l = graft::LayerNormalization<float>::from_config(c);
    CHECK(l->get_config()["epsilon"] == 1e-6);
    graft::LayerNormalization<double> mid({1}, 1e-3, true, true, "mid");
    CHECK_THROWS_WITH(mid.build({x.shape()}), Catch::Contains("only the trailing axes"));
  }
}

TEST_CASE("Normalization (preprocessing) uses the mean and variance of its config or of its weights", "[layers][normalization]") {
  graft::Rng rng(2);
  Tensor<double> x = random_tensor(Shape{2, 3, 3, 3}, rng, 0, 255);
  SECTION("from the config (ConvNeXt), and inverted") {
    graft::Normalization<double> l({-1}, {10, 20, 30}, {4, 9, 0}, false);
    auto y = run1(l, x);
    for (Index i = 0; i < x.size(); ++i) {
      const Index c = i % 3;
      const double sd = c == 0 ? 2 : c == 1 ? 3 : 1e-7;  // max(sqrt(variance), epsilon)
      CHECK(y[i] == Approx((x[i] - (c + 1) * 10.0) / sd));
    }
    CHECK(l.weights().empty());
    graft::Normalization<double> inv({-1}, {10, 20, 30}, {4, 9, 1}, true);
    auto z = run1(inv, x);
    CHECK(z[1] == Approx(x[1] * 3 + 20));
    check_layer_gradients(inv, {x});
  }
  SECTION("from weights mean, variance, count (EfficientNet, adapt())") {
    graft::Normalization<double> l({3});
    l.build({x.shape()});
    REQUIRE(l.weights().size() == 3);
    CHECK(l.weights()[2]->value.rank() == 0);
    l.weights()[0]->value = Tensor<double>(Shape{3}, {1, 2, 3});
    l.weights()[1]->value = Tensor<double>(Shape{3}, {4, 4, 4});
    auto y = run1(l, x);
    CHECK(y[4] == Approx((x[4] - 2) / 2));
    check_layer_gradients(l, {x});
  }
}

TEST_CASE("LayerScale and CustomScaleLayer compute as keras.applications defines them", "[layers][scale]") {
  graft::Rng rng(3);
  Tensor<double> x = random_tensor(Shape{2, 3, 4}, rng);
  graft::LayerScale<double> ls(1e-6, 4);
  auto y = run1(ls, x);
  CHECK(y[5] == Approx(x[5] * 1e-6));
  ls.weights()[0]->value = random_tensor(Shape{4}, rng);
  check_layer_gradients(ls, {x});
  graft::CustomScaleLayer<double> cs(0.17);
  Tensor<double> b = random_tensor(Shape{2, 3, 4}, rng);
  cs.build({x.shape(), b.shape()});
  Tensor<double> z;
  cs.forward({&x, &b}, {&z}, nullptr, false);
  CHECK(z[7] == Approx(x[7] + 0.17 * b[7]));
  check_layer_gradients(cs, {x, b});
}

TEST_CASE("grouped Conv2D equals one convolution per channel group", "[layers][conv][grouped]") {
  graft::Rng rng(4);
  for (Index groups : {2, 6}) {  // 6 == the input channels: runs as a depthwise convolution
    INFO(groups);
    json cfg = {{"name", "gconv"}, {"filters", 12}, {"kernel_size", {3, 3}}, {"strides", {2, 1}}, {"padding", "same"},
                {"groups", groups}, {"activation", "tanh"}, {"use_bias", true}};
    auto l = graft::LayerRegistry<double>::instance().create("Conv2D", cfg);
    Tensor<double> x = random_tensor(Shape{2, 7, 6, 6}, rng);
    l->build({x.shape()});
    auto ws = l->weights();
    REQUIRE(ws[0]->value.shape() == Shape{3, 3, 6 / groups, 12});
    ws[0]->value = random_tensor(ws[0]->value.shape(), rng);
    ws[1]->value = random_tensor(Shape{12}, rng);
    Tensor<double> y;
    auto st = l->make_state();
    l->forward({&x}, {&y}, st.get(), false);
    // reference: each group as a plain Conv2D on its channels
    const Index Cg = 6 / groups, Fg = 12 / groups;
    for (Index g = 0; g < groups; ++g) {
      graft::Conv2D<double> ref(Fg, 3, graft::Dims({2, 1}), "same", "tanh", true);
      Shape gs = x.shape();
      gs.back() = Cg;
      ref.build({gs});
      Tensor<double> xg(gs), yg;
      for (Index r = 0; r < x.size() / 6; ++r)
        for (Index c = 0; c < Cg; ++c) xg[r * Cg + c] = x[r * 6 + g * Cg + c];
      auto rw = ref.weights();
      for (Index k = 0; k < rw[0]->value.size() / Fg; ++k)
        for (Index f = 0; f < Fg; ++f) rw[0]->value[k * Fg + f] = ws[0]->value[k * 12 + g * Fg + f];
      for (Index f = 0; f < Fg; ++f) rw[1]->value[f] = ws[1]->value[g * Fg + f];
      auto rst = ref.make_state();
      ref.forward({&xg}, {&yg}, rst.get(), false);
      for (Index r = 0; r < yg.size() / Fg; ++r)
        for (Index f = 0; f < Fg; ++f) CHECK(y[r * 12 + g * Fg + f] == Approx(yg[r * Fg + f]).margin(1e-12));
    }
    graft_test::GradCheckOptions o;
    check_layer_gradients(*l, {x}, o);
    CHECK(l->get_config()["groups"] == groups);
    CHECK(l->class_name() == "Conv2D");
  }
}

TEST_CASE("operation nodes: Keras 3 keras.src.ops and TF-Keras 2 TFOpLambda, tensors and numbers", "[layers][operation]") {
  graft::Rng rng(5);
  SECTION("element-wise gradients, a number on either side, and two tensors that broadcast") {
    Tensor<double> x = random_tensor(Shape{2, 3, 4}, rng, 0.5, 2);
    for (const char* op : {"Add", "Subtract", "Multiply", "TrueDivide", "Maximum", "Minimum"}) {
      INFO(op);
      graft::Operation<double> a(op, "a");
      a.set_arguments(json::array({nullptr, 3.0}));
      check_layer_gradients(a, {x});
      graft::Operation<double> b(op, "b");
      b.set_arguments(json::array({0.75, nullptr}));
      check_layer_gradients(b, {x});
      graft::Operation<double> c(op, "c");
      Tensor<double> z = random_tensor(Shape{2, 1, 4}, rng, 0.5, 2);
      check_layer_gradients(c, {x, z});
    }
    graft::Operation<double> sub("Subtract", "s");
    sub.set_arguments(json::array({1.0, nullptr}));
    auto y = run1(sub, x);
    CHECK(y[3] == Approx(1.0 - x[3]));
    CHECK_THROWS_WITH(graft::Operation<double>("Einsum", "e"), Catch::Contains("Einsum") && Catch::Contains("supported"));
  }
  auto check_model = [](const std::shared_ptr<graft::Model<float>>& m, float x0) {
    Tensor<float> x(Shape{1, 2}, {x0, -x0});
    auto y = m->predict(x);
    CHECK(y[0] == Approx(std::min(std::max(x0 + 3.0f, 0.0f), 6.0f) / 6.0f));  // hard_sigmoid(x) = relu6(x + 3) / 6
  };
  SECTION("MobileNetV3's hard sigmoid as Keras 3 writes it in a legacy .h5, read back from both dialects") {
    json cfg = json::parse(R"({"class_name": "Functional", "config": {"name": "hs", "trainable": true, "layers": [
      {"class_name": "InputLayer", "config": {"batch_shape": [null, 2], "dtype": "float32", "name": "in"}, "name": "in", "inbound_nodes": []},
      {"class_name": "Add", "config": {"name": "add"}, "name": "add", "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__",
        "config": {"shape": [null, 2], "dtype": "float32", "keras_history": ["in", 0, 0]}}, 3.0], "kwargs": {}}]},
      {"class_name": "ReLU", "config": {"name": "relu6", "trainable": true, "dtype": "float32", "max_value": 6.0}, "name": "relu6",
        "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__", "config": {"shape": [null, 2], "dtype": "float32",
        "keras_history": ["add", 0, 0]}}], "kwargs": {}}]},
      {"class_name": "Multiply", "config": {"name": "multiply"}, "name": "multiply", "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__",
        "config": {"shape": [null, 2], "dtype": "float32", "keras_history": ["relu6", 0, 0]}}, 0.16666666666666666], "kwargs": {}}]}],
      "input_layers": ["in", 0, 0], "output_layers": ["multiply", 0, 0]}})");
    auto m = graft::model_from_config<float>(cfg);
    CHECK(m->get_layer("add")->is_operation());
    check_model(m, 1.5f);
    for (const char* v : {"3", "2"}) {
      INFO(v);
      std::string j = graft::model_to_json(*m, v);
      if (std::string(v) == "2") CHECK(j.find("\"TFOpLambda\"") != std::string::npos);
      check_model(graft::model_from_json<float>(j), -1.0f);
    }
    check_model(graft::clone_model(m), 2.5f);
    json twice = cfg;  // one operation node called twice with other constants: refused, not reinterpreted
    json second = twice["config"]["layers"][1]["inbound_nodes"][0];
    second["args"][1] = 4.0;
    twice["config"]["layers"][1]["inbound_nodes"].push_back(second);
    CHECK_THROWS_WITH(graft::model_from_config<float>(twice), Catch::Contains("'add'") && Catch::Contains("called again"));
  }
  SECTION("TF-Keras 2's TFOpLambda, and an operation graft does not implement, refused by name") {
    json cfg = json::parse(R"({"class_name": "Functional", "config": {"name": "tf", "layers": [
      {"class_name": "InputLayer", "config": {"batch_input_shape": [null, 2], "dtype": "float32", "name": "in"}, "name": "in", "inbound_nodes": []},
      {"class_name": "TFOpLambda", "config": {"name": "tf.__operators__.add", "trainable": true, "dtype": "float32", "function": "__operators__.add"},
        "name": "tf.__operators__.add", "inbound_nodes": [[["in", 0, 0, {"y": 3.0, "name": null}]]]},
      {"class_name": "ReLU", "config": {"name": "re_lu", "trainable": true, "dtype": "float32", "max_value": 6.0}, "name": "re_lu",
        "inbound_nodes": [[["tf.__operators__.add", 0, 0, {}]]]},
      {"class_name": "TFOpLambda", "config": {"name": "tf.math.multiply", "trainable": true, "dtype": "float32", "function": "math.multiply"},
        "name": "tf.math.multiply", "inbound_nodes": [[["re_lu", 0, 0, {"y": 0.16666666666666666, "name": null}]]]}],
      "input_layers": [["in", 0, 0]], "output_layers": [["tf.math.multiply", 0, 0]]}})");
    check_model(graft::model_from_config<float>(cfg), 0.25f);
    json bad = cfg;
    bad["config"]["layers"][3]["config"]["function"] = "linalg.matmul";
    CHECK_THROWS_WITH(graft::model_from_config<float>(bad, "m.h5"),
                      Catch::Contains("m.h5") && Catch::Contains("tf.math.multiply") && Catch::Contains("linalg.matmul"));
  }
}
