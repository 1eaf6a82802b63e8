// The seeds' model A (Hands-On ML transfer-learning recipe): Flatten(28x28) -> Dense 300/100/50/50/50
// selu -> Dense(8, softmax), SGD, sparse categorical crossentropy, on a small synthetic 8-class
// problem: the loss falls and the accuracy rises.
#include <graft/graft.hpp>
#include <catch2/catch.hpp>

#include "model_a_data.hpp"

#include <sstream>
#include <vector>

using namespace graft;

namespace {

std::shared_ptr<Sequential<float>> make_model_a() {
  auto m = std::make_shared<Sequential<float>>("model_A");
  m->add(std::make_shared<InputLayer<float>>(Shape{28, 28}));
  m->add(make<Flatten>());
  for (Index units : {300, 100, 50, 50, 50}) m->add(make<Dense>(units, "selu"));
  m->add(make<Dense>(8, "softmax"));
  return m;
}

using graft_test::prototypes;  // model_a_data.hpp: the synthetic 8-class data
using graft_test::Synthetic;

}  // namespace

TEST_CASE("model A has the Hands-On ML architecture", "[core][model_a]") {
  set_random_seed(301);
  auto m = make_model_a();
  CHECK(m->layers().size() == 7);
  CHECK(m->output_shapes()[0] == Shape{-1, 8});
  CHECK(m->count_params() == 276158);
  std::ostringstream os;
  m->summary(os);
  CHECK_THAT(os.str(), Catch::Contains("Total params: 276,158 (1.05 MB)"));
  CHECK_THAT(os.str(), Catch::Contains("(None, 784)"));
  for (size_t i = 1; i + 1 < m->layers().size(); ++i) {
    auto d = std::dynamic_pointer_cast<Dense<float>>(m->layers()[i]);
    REQUIRE(d);
    CHECK(d->activation().name() == "selu");
  }
}

TEST_CASE("model A learns a synthetic 8-class problem with SGD: loss falls, accuracy rises", "[core][model_a]") {
  set_random_seed(302);
  auto protos = prototypes(1);
  Synthetic train(640, 2, protos), test(256, 3, protos);
  auto m = make_model_a();
  m->compile(std::make_shared<SGD<float>>(1e-2), "sparse_categorical_crossentropy", {"accuracy"});
  Logs before = m->evaluate(test.x, test.y);

  FitOptions<float> o;
  o.epochs = 6;
  o.batch_size = 32;
  o.validation_split = 0.2;
  o.verbose = 0;
  o.seed = 4;
  History h = m->fit(train.x, train.y, o);
  INFO("loss " << h["loss"].front() << " -> " << h["loss"].back() << ", accuracy " << h["accuracy"].front() << " -> "
               << h["accuracy"].back() << ", val_accuracy " << h["val_accuracy"].back());
  REQUIRE(h["loss"].size() == 6);
  for (size_t e = 1; e < 6; ++e) CHECK(h["loss"][e] < h["loss"][e - 1]);
  CHECK(h["loss"].back() < 0.5 * h["loss"].front());
  CHECK(h["accuracy"].back() > h["accuracy"].front());
  CHECK(h["accuracy"].back() > 0.9);
  CHECK(h["val_accuracy"].back() > 0.85);

  Logs after = m->evaluate(test.x, test.y);
  CHECK(after["loss"] < before["loss"]);
  CHECK(after["accuracy"] > 0.85);
  CHECK(before["accuracy"] < 0.5);

  // predictions are probability rows
  Tensor<float> p = m->predict(test.x.slice_rows(0, 10));
  REQUIRE(p.shape() == Shape{10, 8});
  for (Index i = 0; i < 10; ++i) {
    double s = 0;
    for (Index j = 0; j < 8; ++j) {
      CHECK(p[i * 8 + j] >= 0);
      s += p[i * 8 + j];
    }
    CHECK(s == Approx(1.0).epsilon(1e-5));
  }
}

TEST_CASE("model A trains in double precision too, with the seeds' learning rate", "[core][model_a]") {
  set_random_seed(303);
  auto protos = prototypes(5);
  Synthetic data(256, 6, protos);
  Sequential<double> m("model_A_double");
  m.add(std::make_shared<InputLayer<double>>(Shape{28, 28}));
  m.add(make<Flatten, double>());
  for (Index units : {300, 100, 50, 50, 50}) m.add(make<Dense, double>(units, "selu"));
  m.add(make<Dense, double>(8, "softmax"));
  m.compile(std::make_shared<SGD<double>>(1e-3), "sparse_categorical_crossentropy", {"accuracy"});
  FitOptions<double> o;
  o.epochs = 3;
  o.verbose = 0;
  o.seed = 1;
  History h = m.fit(data.x.cast<double>(), data.y.cast<double>(), o);
  CHECK(h["loss"][2] < h["loss"][0]);
  CHECK(h["accuracy"][2] >= h["accuracy"][0]);
}
