// Feature extraction (cut_after, extract_features to memory and to .h5) and the linear probe:
// a head trained on extracted features, a probe on an inner layer of a nested base that saves
// as a Keras file and loads back with the same predictions.
#include <graft/graft.hpp>
#include <graft/train/feature_extraction.hpp>
#include <catch2/catch.hpp>

#include "gradcheck.hpp"

using namespace graft;

namespace {

Tensor<float> images(Index n, std::uint64_t seed) {
  Rng r(seed);
  Tensor<float> t({n, 8, 8, 3});
  for (auto& v : t) v = static_cast<float>(r.uniform(0, 1));
  return t;
}
/// Labels a linear probe can learn: the class is the brightest channel of the image.
Tensor<float> brightest_channel(const Tensor<float>& x) {
  const Index n = x.dim(0);
  Tensor<float> y({n});
  for (Index i = 0; i < n; ++i) {
    double s[3] = {0, 0, 0};
    for (Index p = 0; p < 64; ++p)
      for (int c = 0; c < 3; ++c) s[c] += x[i * 192 + p * 3 + c];
    y[i] = static_cast<float>(std::max_element(s, s + 3) - s);
  }
  return y;
}

/// Sequential[ Functional base (conv -> relu -> conv -> relu -> GAP), Dense head ]
std::shared_ptr<Sequential<float>> nested_model() {
  set_random_seed(11);
  KerasTensor<float> in = Input<float>({8, 8, 3}, "img");
  auto c1 = std::make_shared<Conv2D<float>>(6, 3, 1, "valid", "relu", true, 1, "c1");
  auto c2 = std::make_shared<Conv2D<float>>(5, 3, 1, "valid", "relu", true, 1, "c2");
  auto gap = std::make_shared<GlobalAveragePooling2D<float>>(false, "gap");
  KerasTensor<float> h = (*gap)((*c2)((*c1)(in)));
  auto base = std::make_shared<Model<float>>(in, h, "base");
  auto m = std::make_shared<Sequential<float>>("outer");
  m->add(base);
  m->add(std::make_shared<Dense<float>>(2, "softmax", true, "old_head"));
  return m;
}

}  // namespace

TEST_CASE("cut_after finds layers inside nested models and shares them", "[train][features]") {
  auto m = nested_model();
  auto x = images(5, 1);
  auto t = cut_after<float>(*m, "c1");
  CHECK(t->output_shapes()[0] == Shape{-1, 6, 6, 6});
  auto base = std::static_pointer_cast<Model<float>>(m->get_layer("base"));
  auto direct = std::make_shared<Model<float>>(base->inputs(), base->layer_output("c1"));
  CHECK(t->predict(x) == direct->predict(x));
  auto whole = cut_after<float>(*m, "base");
  CHECK(whole->predict(x) == base->predict(x));
  REQUIRE_THROWS_WITH(cut_after<float>(*m, "nope"), Catch::Contains("has no layer 'nope'"));
}

TEST_CASE("extract_features to memory and to .h5; a head trained on the file equals one trained on the arrays", "[train][features]") {
  auto m = nested_model();
  auto x = images(60, 2);
  auto y = brightest_channel(x);
  data::ArraySource<float> src(x, y);
  Tensor<float> f = extract_features<float>(*m, "gap", src, 16);
  CHECK(f.shape() == Shape{60, 5});
  CHECK(f == cut_after<float>(*m, "gap")->predict(x));
  const std::string path = graft_test::tmp_dir() + "/features.h5";
  CHECK(extract_features_to_h5<float>(*m, "gap", src, path, 16) == 60);
  data::H5Source<float> cached(path, {"features"}, {"labels"});
  CHECK(cached.input_shapes() == std::vector<Shape>{{5}});
  auto head = [] {
    set_random_seed(5);
    auto h = std::make_shared<Sequential<float>>("head");
    h->add(std::make_shared<InputLayer<float>>(Shape{5}));
    h->add(std::make_shared<Dense<float>>(3, "softmax", true, "cls"));
    h->compile("adam", "sparse_categorical_crossentropy", {"accuracy"});
    return h;
  };
  FitOptions<float> o;
  o.epochs = 3;
  o.seed = 1;
  o.verbose = 0;
  auto a = head(), b = head();
  a->fit(f, y, o);
  b->fit(cached, o);
  CHECK(a->get_weights() == b->get_weights());
}

TEST_CASE("linear_probe on an inner layer learns, saves as a Keras file and loads back", "[train][features]") {
  auto m = nested_model();
  auto x = images(240, 3);
  Rng r(4);
  for (Index i = 0; i < 240; ++i) {  // one channel clearly brighter: the class
    const Index c = static_cast<Index>(r.below(3));
    for (Index p = 0; p < 64; ++p) x[i * 192 + p * 3 + c] += 1.0f;
  }
  auto y = brightest_channel(x);
  data::ArraySource<float> src(x, y);
  LinearProbeOptions lo;
  lo.epochs = 60;
  lo.learning_rate = 0.05;
  History h;
  auto probe = linear_probe<float>(*m, "c1", src, lo, &h);
  INFO(h.feature_cache);
  CHECK(h.feature_cache.rfind("memory: ", 0) == 0);  // the frozen trunk ran once
  CHECK(probe->output_shapes()[0] == Shape{-1, 3});
  CHECK(h["accuracy"].back() > 0.8);
  CHECK(h["loss"].back() < h["loss"].front());
  // only the probe's Dense trained: the trunk (shared with m) is frozen
  CHECK(probe->trainable_weights().size() == 2);
  const std::string path = graft_test::tmp_dir() + "/probe.h5";
  save_model(*probe, path);
  auto back = load_model<float>(path);
  CHECK(back->predict(x) == probe->predict(x));
}
