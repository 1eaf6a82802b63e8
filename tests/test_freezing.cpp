// Freezing and unfreezing: frozen weights stay bit-identical, trainable on nested models,
// set_trainable_from / freeze_up_to, the seeds' model-B-on-model-A recipe, no backward work
// below the lowest trainable layer, summary() counts.
#include <graft/graft.hpp>
#include <catch2/catch.hpp>

#include "row_probe.hpp"

#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace graft;

namespace {

/// y = s * x with one trainable scalar weight s; counts what forward / backward are asked to do.
template <class T>
class Probe : public UnaryLayer<T> {
 public:
  explicit Probe(std::string name) : UnaryLayer<T>(std::move(name)) {}
  std::string class_name() const override { return "Probe"; }
  Shape output_shape(const Shape& in) const override { return in; }
  int forwards = 0, backwards = 0, weight_grads = 0, input_grads = 0;

  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState*, bool) override {
    ++forwards;
    y.resize(x.shape());
    for (Index i = 0; i < x.size(); ++i) y[i] = scale_->value[0] * x[i];
  }
  void backward1(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx, CallState*) override {
    ++backwards;
    if (this->trainable() && scale_->trainable) {
      ++weight_grads;
      T g = 0;
      for (Index i = 0; i < x.size(); ++i) g += dy[i] * x[i];
      if (scale_->begin_grad()) scale_->grad[0] = g;
      else scale_->grad[0] += g;
    }
    if (dx) {
      ++input_grads;
      dx->resize(x.shape());
      for (Index i = 0; i < x.size(); ++i) (*dx)[i] = scale_->value[0] * dy[i];
    }
  }
  Param<T>& scale() { return *scale_; }

 protected:
  void build_impl(const std::vector<Shape>&) override {
    scale_ = &this->add_weight("scale", {1}, Initializer::named("Constant", {{"value", 0.9}}));
  }

 private:
  Param<T>* scale_ = nullptr;
};

/// n samples of d features in [-1, 1]; y = a smooth function of x (regression) or its sign.
void regression_data(Tensor<float>& x, Tensor<float>& y, Index n, Index d, std::uint64_t seed) {
  Rng r(seed);
  x = Tensor<float>({n, d});
  y = Tensor<float>({n, 1});
  for (Index i = 0; i < n; ++i) {
    double s = 0;
    for (Index j = 0; j < d; ++j) {
      double v = r.uniform(-1, 1);
      x[i * d + j] = static_cast<float>(v);
      s += std::sin(1.5 * v + static_cast<double>(j));
    }
    y[i] = static_cast<float>(s / static_cast<double>(d));
  }
}

/// 4 classes from the quadrant of the first two features.
void class_data(Tensor<float>& x, Tensor<float>& y, Index n, Index d, std::uint64_t seed) {
  Rng r(seed);
  x = Tensor<float>({n, d});
  y = Tensor<float>({n});
  for (Index i = 0; i < n; ++i) {
    for (Index j = 0; j < d; ++j) x[i * d + j] = static_cast<float>(r.uniform(-1, 1));
    y[i] = static_cast<float>((x[i * d] > 0 ? 1 : 0) + (x[i * d + 1] > 0 ? 2 : 0));
  }
}

FitOptions<float> quiet(int epochs, Index batch = 16) {
  FitOptions<float> o;
  o.epochs = epochs;
  o.batch_size = batch;
  o.verbose = 0;
  o.seed = 7;
  return o;
}

bool same(const std::vector<Tensor<float>>& a, const std::vector<Tensor<float>>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i]) return false;
  return true;
}

}  // namespace

TEST_CASE("frozen layers keep bit-identical weights through fit while the others move", "[core][freezing]") {
  set_random_seed(101);
  Tensor<float> x, y;
  regression_data(x, y, 96, 6, 1);
  auto build = [] {
    auto m = std::make_shared<Sequential<float>>();
    m->add(std::make_shared<InputLayer<float>>(Shape{6}));
    auto d1 = std::make_shared<Dense<float>>(8, "relu", true, "d1");
    d1->kernel_regularizer.l2 = 0.1;  // a penalty on a frozen layer must not move it either
    m->add(d1);
    m->add(make<Dense>(8, "tanh", true, "d2"));
    m->add(make<Dense>(1, "linear", true, "out"));
    m->get_layer("d1")->set_trainable(false);
    return m;
  };
  std::vector<std::shared_ptr<Optimizer<float>>> opts = {std::make_shared<SGD<float>>(0.05, 0.9, true),
                                                          Adam<float>::adamw(0.01, 0.1),
                                                          std::make_shared<RMSprop<float>>(0.01, 0.9, 0.5, 1e-7, true)};
  for (auto& opt : opts) {
    INFO(opt->class_name());
    auto m = build();
    m->compile(opt, "mse");
    auto d1_before = m->get_layer("d1")->get_weights();
    auto d2_before = m->get_layer("d2")->get_weights();
    auto out_before = m->get_layer("out")->get_weights();
    auto h = m->fit(x, y, quiet(3));
    CHECK(same(m->get_layer("d1")->get_weights(), d1_before));
    CHECK_FALSE(same(m->get_layer("d2")->get_weights(), d2_before));
    CHECK_FALSE(same(m->get_layer("out")->get_weights(), out_before));
    CHECK(h["loss"].back() < h["loss"].front());
    // the optimizer holds no state for frozen weights
    for (auto& sv : opt->slot_variables()) CHECK(sv.param->owner->name() != "d1");
    // the frozen layer's weights never received a gradient
    CHECK(m->get_layer("d1")->weights()[0]->grad_fresh);
  }
}

TEST_CASE("trainable on a nested model applies to every layer inside", "[core][freezing]") {
  set_random_seed(102);
  auto inner = std::make_shared<Sequential<float>>("inner");
  inner->add(std::make_shared<InputLayer<float>>(Shape{4}));
  inner->add(make<Dense>(5, "tanh", true, "i1"));
  inner->add(make<Dense>(5, "tanh", true, "i2"));
  auto x = Input<float>({4});
  auto o = (*make<Dense>(1, "linear", true, "head"))((*inner)(x));
  auto outer = std::make_shared<Model<float>>(x, o, "outer");
  REQUIRE(outer->trainable_weights().size() == 6);

  SECTION("freezing the inner model freezes its layers; fit leaves them untouched") {
    inner->set_trainable(false);
    CHECK_FALSE(inner->get_layer("i1")->trainable());
    CHECK_FALSE(inner->get_layer("i2")->trainable());
    auto tw = outer->trainable_weights();
    REQUIRE(tw.size() == 2);
    CHECK(tw[0]->owner->name() == "head");
    CHECK(outer->non_trainable_weights().size() == 4);
    CHECK(inner->trainable_weights().empty());
    Tensor<float> xd, yd;
    regression_data(xd, yd, 64, 4, 2);
    outer->compile(std::make_shared<SGD<float>>(0.1, 0.9), "mse");
    auto before = inner->get_weights();
    auto head_before = outer->get_layer("head")->get_weights();
    outer->fit(xd, yd, quiet(2));
    CHECK(same(inner->get_weights(), before));
    CHECK_FALSE(same(outer->get_layer("head")->get_weights(), head_before));
    // unfreezing the inner model unfreezes every layer inside
    inner->set_trainable(true);
    CHECK(inner->get_layer("i1")->trainable());
    CHECK(outer->trainable_weights().size() == 6);
    outer->fit(xd, yd, quiet(1));
    CHECK_FALSE(same(inner->get_weights(), before));
  }
  SECTION("freezing the outer model freezes everything, recursively") {
    outer->set_trainable(false);
    CHECK(outer->trainable_weights().empty());
    CHECK_FALSE(inner->trainable());
    CHECK_FALSE(inner->get_layer("i2")->trainable());
    CHECK_FALSE(outer->get_layer("head")->trainable());
    outer->set_trainable(true);
    CHECK(outer->trainable_weights().size() == 6);
  }
  SECTION("one layer inside a trainable nested model can be frozen alone") {
    inner->get_layer("i1")->set_trainable(false);
    CHECK(inner->trainable());
    CHECK(outer->trainable_weights().size() == 4);
    Tensor<float> xd, yd;
    regression_data(xd, yd, 64, 4, 3);
    outer->compile(std::make_shared<Adam<float>>(0.01), "mse");
    auto i1 = inner->get_layer("i1")->get_weights();
    auto i2 = inner->get_layer("i2")->get_weights();
    outer->fit(xd, yd, quiet(2));
    CHECK(same(inner->get_layer("i1")->get_weights(), i1));
    CHECK_FALSE(same(inner->get_layer("i2")->get_weights(), i2));
  }
}

TEST_CASE("set_trainable_from and freeze_up_to split a model at a layer", "[core][freezing]") {
  set_random_seed(103);
  Sequential<float> m;
  m.add(std::make_shared<InputLayer<float>>(Shape{3}));
  for (const char* n : {"a", "b", "c", "d"}) m.add(make<Dense>(3, "tanh", true, n));
  auto flags = [&] {
    std::string s;
    for (auto& l : m.layers()) s += l->trainable() ? "T" : "F";
    return s;
  };
  m.set_trainable_from("c");
  CHECK(flags() == "FFTT");
  m.freeze_up_to("a");
  CHECK(flags() == "FTTT");
  m.freeze_up_to("c");
  CHECK(flags() == "FFFT");
  m.set_trainable_from("a");
  CHECK(flags() == "TTTT");
  CHECK_THROWS_AS(m.set_trainable_from("nope"), value_error);
  CHECK_THROWS_AS(m.freeze_up_to("nope"), value_error);
  CHECK(flags() == "TTTT");

  m.freeze_up_to("b");
  Tensor<float> x({32, 3}), y({32, 3});
  Rng r(4);
  for (auto& v : x) v = static_cast<float>(r.uniform(-1, 1));
  for (auto& v : y) v = static_cast<float>(r.uniform(-1, 1));
  m.compile(std::make_shared<SGD<float>>(0.1), "mse");
  auto a = m.get_layer("a")->get_weights(), b = m.get_layer("b")->get_weights(), c = m.get_layer("c")->get_weights();
  m.fit(x, y, quiet(2, 8));
  CHECK(same(m.get_layer("a")->get_weights(), a));
  CHECK(same(m.get_layer("b")->get_weights(), b));
  CHECK_FALSE(same(m.get_layer("c")->get_weights(), c));
}

TEST_CASE("the seeds' recipe: model B on model A, frozen then unfrozen with a lower learning rate", "[core][freezing]") {
  set_random_seed(104);
  // model A: a small classifier trained first
  auto model_A = std::make_shared<Sequential<float>>("model_A");
  model_A->add(std::make_shared<InputLayer<float>>(Shape{8}));
  model_A->add(make<Dense>(16, "selu", true, "hidden1"));
  model_A->add(make<Dense>(16, "selu", true, "hidden2"));
  model_A->add(make<Dense>(4, "softmax", true, "output_A"));
  model_A->compile(std::make_shared<SGD<float>>(0.05), "sparse_categorical_crossentropy", {"accuracy"});
  Tensor<float> xa, ya;
  class_data(xa, ya, 128, 8, 5);
  model_A->fit(xa, ya, quiet(2));
  const Tensor<float> pred_A = model_A->predict(xa);

  // model_A_clone = clone_model(model_A); model_A_clone.set_weights(model_A.get_weights())
  auto model_A_clone = clone_model(model_A);
  for (size_t i = 0; i < model_A->layers().size(); ++i)
    CHECK(model_A_clone->layers()[i].get() != model_A->layers()[i].get());
  CHECK(model_A_clone->predict(xa) != pred_A);  // fresh weights
  model_A_clone->set_weights(model_A->get_weights());
  CHECK(model_A_clone->predict(xa) == pred_A);

  // model_B = Sequential(model_A.layers[:-1]); model_B.add(Dense(1, activation="sigmoid"))
  auto layers = model_A->layers();
  layers.pop_back();
  auto model_B = std::make_shared<Sequential<float>>(layers, "model_B");
  model_B->add(make<Dense>(1, "sigmoid", true, "output_B"));
  REQUIRE(model_B->layers().size() == 3);
  CHECK(model_B->layers()[0].get() == model_A->layers()[0].get());  // shared, as in Keras
  CHECK(model_B->layers()[1].get() == model_A->layers()[1].get());

  // for layer in model_B.layers[:-1]: layer.trainable = False; compile; fit 4 epochs
  for (size_t i = 0; i + 1 < model_B->layers().size(); ++i) model_B->layers()[i]->set_trainable(false);
  model_B->compile(std::make_shared<SGD<float>>(1e-2), "binary_crossentropy", {"accuracy"});
  Tensor<float> xb, yb;
  class_data(xb, yb, 96, 8, 6);
  for (auto& v : yb) v = v >= 2 ? 1.0f : 0.0f;
  auto hidden_before = model_A->get_layer("hidden1")->get_weights();
  auto head_B_before = model_B->get_layer("output_B")->get_weights();
  auto h1 = model_B->fit(xb, yb, quiet(4));
  CHECK(h1["loss"].size() == 4);
  CHECK(same(model_A->get_layer("hidden1")->get_weights(), hidden_before));  // frozen: A unaffected
  CHECK(model_A->predict(xa) == pred_A);
  CHECK_FALSE(same(model_B->get_layer("output_B")->get_weights(), head_B_before));

  // for layer in model_B.layers[:-1]: layer.trainable = True; recompile with a lower learning rate
  for (size_t i = 0; i + 1 < model_B->layers().size(); ++i) model_B->layers()[i]->set_trainable(true);
  auto low = std::make_shared<SGD<float>>(1e-4);
  model_B->compile(low, "binary_crossentropy", {"accuracy"});
  CHECK(model_B->optimizer()->learning_rate() == Approx(1e-4));
  CHECK(model_B->trainable_weights().size() == 6);
  auto h2 = model_B->fit(xb, yb, quiet(3));
  CHECK(low->iterations() == 3 * 6);
  // the shared layers moved, so model A changed too; the clone did not
  CHECK_FALSE(same(model_A->get_layer("hidden1")->get_weights(), hidden_before));
  CHECK(model_A->predict(xa) != pred_A);
  CHECK(model_A_clone->predict(xa) == pred_A);
  CHECK(same(model_A_clone->get_layer("hidden1")->get_weights(), hidden_before));
  // a lower rate moves the reused weights only a little
  double max_change = 0;
  auto after = model_A->get_layer("hidden1")->get_weights();
  for (Index i = 0; i < after[0].size(); ++i)
    max_change = std::max(max_change, std::abs(static_cast<double>(after[0][i] - hidden_before[0][i])));
  CHECK(max_change < 0.01);
}

TEST_CASE("layers below the lowest trainable layer get no backward call; frozen ones no weight gradient",
          "[core][freezing]") {
  set_random_seed(105);
  auto p1 = std::make_shared<Probe<float>>("p1");
  auto p2 = std::make_shared<Probe<float>>("p2");
  auto p3 = std::make_shared<Probe<float>>("p3");
  auto d1 = make<Dense>(6, "tanh", true, "d1");
  auto d2 = make<Dense>(6, "tanh", true, "d2");
  auto out = make<Dense>(1, "linear", true, "out");
  Sequential<float> m;
  m.add(std::make_shared<InputLayer<float>>(Shape{5}));
  for (auto l : std::vector<std::shared_ptr<Layer<float>>>{p1, d1, p2, d2, p3, out}) m.add(l);
  for (auto* l : std::vector<Layer<float>*>{p1.get(), d1.get(), p2.get(), p3.get()}) l->set_trainable(false);
  m.compile(std::make_shared<SGD<float>>(0.1), "mse");
  Tensor<float> x, y;
  regression_data(x, y, 16, 5, 8);
  std::vector<Tensor<float>> xs{x}, ys{y};
  m.train_on_batch(xs, ys);
  m.train_on_batch(xs, ys);

  CHECK(p1->forwards == 2);
  CHECK(p2->forwards == 2);
  CHECK(p1->backwards == 0);  // below d2, the lowest trainable layer
  CHECK(p2->backwards == 0);
  CHECK(p3->backwards == 2);  // frozen but above d2: passes the gradient down ...
  CHECK(p3->input_grads == 2);
  CHECK(p3->weight_grads == 0);  // ... without computing its own weight gradient
  CHECK(d1->kernel().grad_fresh);
  CHECK(d1->kernel().grad.size() == 0);  // no gradient work ever happened for the frozen Dense
  CHECK_FALSE(d2->kernel().grad_fresh);

  SECTION("unfreezing the first probe makes everything above it back-propagate") {
    p1->set_trainable(true);
    m.train_on_batch(xs, ys);
    CHECK(p1->backwards == 1);
    CHECK(p1->weight_grads == 1);
    CHECK(p1->input_grads == 0);  // nobody needs the gradient of the model input
    CHECK(p2->backwards == 1);
    CHECK(p2->weight_grads == 0);
    CHECK(p2->input_grads == 1);
    CHECK(d1->kernel().grad_fresh);  // frozen Dense: input gradient only
  }
  SECTION("a frozen nested model below the trainable head gets no backward call") {
    auto inner = std::make_shared<Sequential<float>>("inner_probe");
    auto q = std::make_shared<Probe<float>>("q");
    inner->add(std::make_shared<InputLayer<float>>(Shape{5}));
    inner->add(q);
    inner->add(make<Dense>(4, "relu", true, "qd"));
    auto in = Input<float>({5});
    Model<float> outer(in, (*make<Dense>(1, "linear", true, "qhead"))((*inner)(in)));
    inner->set_trainable(false);
    outer.compile(std::make_shared<SGD<float>>(0.1), "mse");
    outer.train_on_batch(xs, ys);
    CHECK(q->forwards == 1);
    CHECK(q->backwards == 0);
    inner->set_trainable(true);
    outer.train_on_batch(xs, ys);
    CHECK(q->backwards == 1);
    CHECK(q->weight_grads == 1);
  }
}

TEST_CASE("trainable changes take effect at the next fit and the optimizer grows its slots", "[core][freezing]") {
  set_random_seed(106);
  Sequential<float> m;
  m.add(std::make_shared<InputLayer<float>>(Shape{4}));
  m.add(make<Dense>(4, "tanh", true, "base"));
  m.add(make<Dense>(1, "linear", true, "top"));
  m.get_layer("base")->set_trainable(false);
  auto adam = std::make_shared<Adam<float>>(0.01);
  m.compile(adam, "mse");
  Tensor<float> x, y;
  regression_data(x, y, 32, 4, 9);
  auto base = m.get_layer("base")->get_weights();
  m.fit(x, y, quiet(1));
  CHECK(adam->slot_variables().size() == 4);  // top kernel + bias, 2 slots each
  CHECK(same(m.get_layer("base")->get_weights(), base));
  m.get_layer("base")->set_trainable(true);  // no recompile
  m.fit(x, y, quiet(1));
  CHECK(adam->slot_variables().size() == 8);
  CHECK_FALSE(same(m.get_layer("base")->get_weights(), base));
  m.get_layer("top")->set_trainable(false);
  auto top = m.get_layer("top")->get_weights();
  m.fit(x, y, quiet(1));
  CHECK(same(m.get_layer("top")->get_weights(), top));
}

TEST_CASE("summary() reports trainable and non-trainable parameter counts", "[core][freezing]") {
  set_random_seed(107);
  Sequential<float> m("model_A");
  m.add(std::make_shared<InputLayer<float>>(Shape{28, 28}));
  m.add(make<Flatten>("flatten"));
  int k = 0;
  for (Index u : {300, 100, 50, 50, 50}) m.add(make<Dense>(u, "selu", true, "dense_" + std::to_string(k++)));
  m.add(make<Dense>(8, "softmax", true, "dense_out"));
  auto text = [&] {
    std::ostringstream os;
    m.summary(os);
    return os.str();
  };
  std::string s = text();
  INFO(s);
  CHECK_THAT(s, Catch::Contains("Model: \"model_A\""));
  CHECK_THAT(s, Catch::Contains("flatten (Flatten)"));
  CHECK_THAT(s, Catch::Contains("(None, 784)"));
  CHECK_THAT(s, Catch::Contains("235,500"));
  CHECK_THAT(s, Catch::Contains("Total params: 276,158 (1.05 MB)"));
  CHECK_THAT(s, Catch::Contains("Trainable params: 276,158 (1.05 MB)"));
  CHECK_THAT(s, Catch::Contains("Non-trainable params: 0 (0.00 B)"));
  for (size_t i = 0; i + 1 < m.layers().size(); ++i) m.layers()[i]->set_trainable(false);
  s = text();
  INFO(s);
  CHECK_THAT(s, Catch::Contains("Total params: 276,158 (1.05 MB)"));
  CHECK_THAT(s, Catch::Contains("Trainable params: 408 (1.59 KB)"));
  CHECK_THAT(s, Catch::Contains("Non-trainable params: 275,750 (1.05 MB)"));
  m.set_trainable(false);
  s = text();
  CHECK_THAT(s, Catch::Contains("Trainable params: 0 (0.00 B)"));
  CHECK_THAT(s, Catch::Contains("Non-trainable params: 276,158 (1.05 MB)"));
}

TEST_CASE("fit runs the layers below the lowest trainable one in row slices over the threads: the same bits as one thread",
          "[core][freezing][threads]") {
  set_random_seed(107);
  auto probe = std::make_shared<graft_test::RowProbe>(true, "fz_probe");
  auto trunk1 = make<Dense>(256, "relu", true, "fz_d1");
  auto bn = make<BatchNormalization>(-1, 0.99, 1e-3, true, true, "fz_bn");
  auto drop = make<Dropout>(0.0, "fz_drop");
  auto trunk2 = make<Dense>(64, "selu", true, "fz_d2");
  auto head = make<Dense>(3, "softmax", true, "fz_head");
  Sequential<float> m("fz");
  m.add(std::make_shared<InputLayer<float>>(Shape{200}));
  for (auto l : std::vector<std::shared_ptr<Layer<float>>>{trunk1, bn, drop, probe, trunk2, head}) m.add(l);
  for (auto* l : std::vector<Layer<float>*>{trunk1.get(), bn.get(), trunk2.get()}) l->set_trainable(false);
  Rng r(9);
  for (auto* w : m.weights())
    for (auto& v : w->value) v = static_cast<float>(w->name == "moving_variance" ? r.uniform(0.5, 1.5) : r.uniform(-0.3, 0.3));
  const auto w0 = m.get_weights();
  Tensor<float> x({96, 200}), y({96});
  for (auto& v : x) v = static_cast<float>(r.uniform(-1, 1));
  for (Index i = 0; i < 96; ++i) y[i] = static_cast<float>(i % 3);
  FitOptions<float> o;
  o.epochs = 2;
  o.batch_size = 32;
  o.verbose = 0;
  o.seed = 3;
  auto train = [&](int threads) {
    set_num_threads(threads);
    m.set_weights(w0);
    m.compile(std::make_shared<SGD<float>>(0.05, 0.9), "sparse_categorical_crossentropy");
    History h = m.fit(x, y, o);
    set_num_threads(0);
    return std::make_pair(h["loss"], m.get_weights());
  };
  const auto one = train(1);
  CHECK(probe->take_seen() == std::set<Index>{32});
  const auto two = train(2);
  CHECK(probe->take_seen() == std::set<Index>{16});  // two slices of each batch of 32
  CHECK(one.first == two.first);
  REQUIRE(one.second.size() == two.second.size());
  for (size_t i = 0; i < one.second.size(); ++i) CHECK(one.second[i] == two.second[i]);
  CHECK(two.second[0] == w0[0]);            // the frozen trunk did not move
  CHECK(two.second.back() != w0.back());    // the head did

  SECTION("a random layer (Dropout with a rate) in the trunk keeps the batches whole") {
    auto m2 = std::make_shared<Sequential<float>>("fz2");
    m2->add(std::make_shared<InputLayer<float>>(Shape{200}));
    for (auto l : std::vector<std::shared_ptr<Layer<float>>>{trunk1, make<Dropout>(0.2, "fz_drop2"), probe, trunk2,
                                                              make<Dense>(3, "softmax", true, "fz_head2")})
      m2->add(l);
    m2->compile(std::make_shared<SGD<float>>(0.05), "sparse_categorical_crossentropy");
    set_num_threads(2);
    m2->fit(x, y, o);
    set_num_threads(0);
    CHECK(probe->take_seen() == std::set<Index>{32});
  }
  SECTION("unfreezing the trunk keeps the batches whole") {
    trunk1->set_trainable(true);
    train(2);
    CHECK(probe->take_seen() == std::set<Index>{32});
  }
}
