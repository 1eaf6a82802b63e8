#include <graft/graft.hpp>
#include <catch2/catch.hpp>

TEST_CASE("a Sequential MLP trains and its loss falls") {
  using namespace graft;
  set_random_seed(3);
  Sequential<float> m;
  m.add<InputLayer>(Shape{4});
  m.add<Dense>(16, "relu");
  m.add<Dense>(1, "sigmoid");
  m.compile(std::make_shared<SGD<float>>(0.1), "binary_crossentropy", {"accuracy"});
  Tensor<float> x({128, 4}), y({128, 1});
  Rng r(2);
  for (Index i = 0; i < 128; ++i) {
    float s = 0;
    for (Index j = 0; j < 4; ++j) s += (x[i * 4 + j] = float(r.uniform(-1, 1)));
    y[i] = s > 0;
  }
  FitOptions<float> o;
  o.epochs = 20;
  o.verbose = 0;
  auto h = m.fit(x, y, o);
  CHECK(h["loss"].back() < h["loss"].front());
  CHECK(h["accuracy"].back() > 0.8);
}
