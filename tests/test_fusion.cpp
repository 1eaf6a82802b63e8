// Inference fusion (model/fusion.hpp): predict and evaluate run BatchNormalization and ReLU in
// place on a convolution's output rows. The results must be the bits of the layer-by-layer run,
// on any thread count, through nested models, after training changed the statistics, and the
// chains must stop where another layer or a model output reads an intermediate tensor.
#include <graft/applications.hpp>
#include <graft/graft.hpp>
#include <catch2/catch.hpp>

#include <random>

#include "gradcheck.hpp"

namespace {

using graft::Index;
using graft::Shape;
using graft::Tensor;
namespace ga = graft::applications;

/// Random BatchNormalization statistics and scales (a fresh model has mean 0, variance 1: the
/// fused and plain runs would agree on them too easily).
void randomize_batchnorm(graft::Model<float>& m, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (graft::Param<float>* p : m.weights()) {
    if (p->name == "moving_variance")
      for (auto& v : p->value) v = 0.5f + 0.5f * (u(rng) + 1.0f);
    else if (p->name == "moving_mean" || p->name == "beta" || p->name == "gamma")
      for (auto& v : p->value) v = (p->name == "gamma" ? 1.0f : 0.0f) + 0.3f * u(rng);
  }
}

Tensor<float> images(Index n, Index h, Index w, unsigned seed, Index channels = 3) {
  Tensor<float> x({n, h, w, channels});
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (auto& v : x) v = u(rng);
  return x;
}

/// predict with fusion off, then on: the same bits.
void check_same_bits(graft::Model<float>& m, const Tensor<float>& x, Index batch) {
  graft::set_inference_fusion(false);
  const Tensor<float> plain = m.predict(x, batch);
  graft::set_inference_fusion(true);
  const Tensor<float> fused = m.predict(x, batch);
  REQUIRE(plain.shape() == fused.shape());
  Index differ = 0;
  for (Index i = 0; i < plain.size(); ++i) differ += plain[i] != fused[i];
  CHECK(differ == 0);
}

struct ThreadsScope {
  explicit ThreadsScope(int n) { graft::set_num_threads(n); }
  ~ThreadsScope() { graft::set_num_threads(0); }
};

}  // namespace

TEST_CASE("inference fusion gives the layer-by-layer bits on keras.applications networks", "[fusion]") {
  // MobileNetV2 / MobileNet: Conv -> BN -> ReLU(6) and DepthwiseConv -> BN -> ReLU(6) chains;
  // ResNet50V2 and DenseNet121: BN -> ReLU after additions and concatenations (no chain head);
  // EfficientNetB0: BN -> Activation(swish), which ends a chain after the BN
  for (const char* name : {"MobileNetV2", "MobileNet", "ResNet50V2", "DenseNet121", "EfficientNetB0"}) {
    INFO(name);
    ga::Options o;
    o.input_shape = {32, 32, 3};
    o.include_top = false;
    o.pooling = "avg";
    auto m = ga::build<float>(name, o);
    randomize_batchnorm(*m, 11);
    const Tensor<float> x = images(6, 32, 32, 5);
    for (int threads : {1, 2}) {
      ThreadsScope th(threads);
      check_same_bits(*m, x, 4);  // a partial last batch too
    }
  }
}

TEST_CASE("inference fusion inside a nested base, after training moved the statistics, and in evaluate", "[fusion][train]") {
  ga::Options o;
  o.input_shape = {32, 32, 3};
  o.include_top = false;
  o.pooling = "avg";
  o.alpha = 0.35;
  auto base = ga::build<float>("MobileNetV2", o);
  randomize_batchnorm(*base, 3);
  auto in = graft::Input<float>({32, 32, 3}, "image");
  auto h = (*base)(in);
  auto out = (*std::make_shared<graft::Dense<float>>(3, "softmax", true, "head"))(h);
  graft::Model<float> m(in, out, "nested");
  const Tensor<float> x = images(8, 32, 32, 9);
  check_same_bits(m, x, 8);
  // training updates the moving statistics (BatchNormalization trains in batch mode): the next
  // fused predict must use the new ones
  Tensor<float> y({8});
  for (Index i = 0; i < 8; ++i) y[i] = static_cast<float>(i % 3);
  m.compile(std::make_shared<graft::SGD<float>>(0.05), "sparse_categorical_crossentropy");
  graft::FitOptions<float> f;
  f.epochs = 1;
  f.batch_size = 4;
  f.verbose = 0;
  f.shuffle = false;
  m.fit(x, y, f);
  check_same_bits(m, x, 8);
  graft::set_inference_fusion(false);
  const auto e_plain = m.evaluate(x, y, 4);
  graft::set_inference_fusion(true);
  const auto e_fused = m.evaluate(x, y, 4);
  CHECK(e_plain.at("loss") == e_fused.at("loss"));
  // the const predict (its own scratch per call) fuses too
  const graft::Model<float>& cm = m;
  graft::set_inference_fusion(false);
  const Tensor<float> plain = cm.predict(x, 8);
  graft::set_inference_fusion(true);
  const Tensor<float> fused = cm.predict(x, 8);
  CHECK(plain == fused);
}

TEST_CASE("inference fusion stops where an intermediate tensor is read elsewhere", "[fusion]") {
  graft::set_random_seed(21);
  auto in = graft::Input<float>({9, 9, 4}, "x");
  auto c = (*std::make_shared<graft::Conv2D<float>>(6, 3, 1, "same", "linear", true, 1, "conv"))(in);
  auto b = (*std::make_shared<graft::BatchNormalization<float>>(-1, 0.99, 1e-3, true, true, "bn"))(c);
  auto r = (*std::make_shared<graft::ReLU<float>>(6.0, 0.0, 0.0, "relu6"))(b);
  auto added = (*std::make_shared<graft::Add<float>>("add"))(std::vector<graft::KerasTensor<float>>{r, b});  // the BN output is read twice
  auto d = (*std::make_shared<graft::DepthwiseConv2D<float>>(3, 2, "same", 1, "linear", false, 1, "dw"))(added);
  auto b2 = (*std::make_shared<graft::BatchNormalization<float>>(-1, 0.99, 1e-3, true, true, "bn2"))(d);
  auto r2 = (*std::make_shared<graft::ReLU<float>>(-1.0, 0.0, 0.0, "relu"))(b2);
  graft::Model<float> m(in, {r2, b2}, "fanout");  // bn2 is a model output as well as relu's input
  randomize_batchnorm(m, 4);
  const Tensor<float> xs = images(5, 9, 9, 2, 4);
  graft::set_inference_fusion(false);
  const auto plain = m.predict(std::vector<Tensor<float>>{xs}, 2);
  graft::set_inference_fusion(true);
  const auto fused = m.predict(std::vector<Tensor<float>>{xs}, 2);
  REQUIRE(plain.size() == 2);
  CHECK(plain[0] == fused[0]);
  CHECK(plain[1] == fused[1]);
}
