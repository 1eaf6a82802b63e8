// Model<T>: Functional graphs, nesting, feature extraction, Sequential editing, weights, cloning,
// configs, layer order, predict / evaluate / fit semantics (Keras 3), metrics, progress output,
// callbacks.
#include <graft/graft.hpp>
#include <catch2/catch.hpp>

#include "row_probe.hpp"

#include <algorithm>
#include <cmath>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace graft;

namespace {

using KT = KerasTensor<float>;
using KTs = std::vector<KerasTensor<float>>;

Tensor<float> rnd(const Shape& s, std::uint64_t seed, double lo = -1, double hi = 1) {
  Rng r(seed);
  Tensor<float> t(s);
  for (auto& v : t) v = static_cast<float>(r.uniform(lo, hi));
  return t;
}

/// Run one layer (inference) on concrete inputs.
Tensor<float> run_layer(Layer<float>& l, const std::vector<const Tensor<float>*>& in) {
  Tensor<float> y;
  auto st = l.make_state();
  l.forward(in, {&y}, st.get(), false);
  return y;
}
Tensor<float> run_layer(Layer<float>& l, const Tensor<float>& x) { return run_layer(l, std::vector<const Tensor<float>*>{&x}); }

void require_close(const Tensor<float>& a, const Tensor<float>& b, double eps = 1e-5) {
  REQUIRE(a.shape() == b.shape());
  for (Index i = 0; i < a.size(); ++i) {
    INFO("element " << i);
    CHECK(a[i] == Approx(b[i]).epsilon(eps).margin(1e-6));
  }
}

bool same(const std::vector<Tensor<float>>& a, const std::vector<Tensor<float>>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i]) return false;
  return true;
}

FitOptions<float> quiet(int epochs = 1, Index batch = 8) {
  FitOptions<float> o;
  o.epochs = epochs;
  o.batch_size = batch;
  o.verbose = 0;
  o.seed = 11;
  return o;
}

std::vector<std::string> layer_names(const Model<float>& m) {
  std::vector<std::string> r;
  for (auto& l : m.layers()) r.push_back(l->name());
  return r;
}

/// A small Sequential regression / classification MLP.
std::shared_ptr<Sequential<float>> mlp(Index in, Index out, const std::string& out_act, const std::string& prefix) {
  auto m = std::make_shared<Sequential<float>>(prefix + "_model");
  m->add(std::make_shared<InputLayer<float>>(Shape{in}));
  m->add(make<Dense>(8, "tanh", true, prefix + "_h1"));
  m->add(make<Dense>(6, "relu", true, prefix + "_h2"));
  m->add(make<Dense>(out, out_act, true, prefix + "_out"));
  return m;
}

/// Binary labels from the sign of a fixed linear function of x.
Tensor<float> binary_labels(const Tensor<float>& x) {
  Index n = x.dim(0), d = x.inner(1);
  Tensor<float> y({n, 1});
  for (Index i = 0; i < n; ++i) {
    double s = 0;
    for (Index j = 0; j < d; ++j) s += (j % 2 ? -1.0 : 1.0) * (j + 1) * x[i * d + j];
    y[i] = s > 0 ? 1.0f : 0.0f;
  }
  return y;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Graphs
// ---------------------------------------------------------------------------------------------

TEST_CASE("a Functional model with several inputs and outputs wires each branch", "[core][model]") {
  set_random_seed(201);
  auto x1 = Input<float>({3}, "x1");
  auto x2 = Input<float>({2}, "x2");
  auto d1 = make<Dense>(4, "relu", true, "d1");
  auto d2 = make<Dense>(4, "tanh", true, "d2");
  auto add = make<Add>("add");
  auto o1l = make<Dense>(1, "sigmoid", true, "o1");
  auto cat = make<Concatenate>(-1, "cat");
  auto o2l = make<Dense>(2, "softmax", true, "o2");
  auto h1 = (*d1)(x1), h2 = (*d2)(x2);
  auto s = (*add)(KTs{h1, h2});
  auto o1 = (*o1l)(s);
  auto o2 = (*o2l)((*cat)(KTs{s, h1}));
  Model<float> m({x1, x2}, {o1, o2}, "multi");

  CHECK(m.num_inputs() == 2);
  CHECK(m.num_outputs() == 2);
  CHECK(m.output_names() == std::vector<std::string>{"o1", "o2"});
  CHECK(m.input_shapes() == std::vector<Shape>{{-1, 3}, {-1, 2}});
  CHECK(m.output_shapes() == std::vector<Shape>{{-1, 1}, {-1, 2}});

  Tensor<float> X1 = rnd({5, 3}, 1), X2 = rnd({5, 2}, 2);
  auto out = m.predict({X1, X2});
  REQUIRE(out.size() == 2);
  Tensor<float> H1 = run_layer(*d1, X1);
  Tensor<float> H2 = run_layer(*d2, X2);
  Tensor<float> S = run_layer(*add, std::vector<const Tensor<float>*>{&H1, &H2});
  Tensor<float> C = run_layer(*cat, std::vector<const Tensor<float>*>{&S, &H1});
  require_close(out[0], run_layer(*o1l, S));
  require_close(out[1], run_layer(*o2l, C));
  CHECK_THROWS_AS(m.predict(X1), error);  // two inputs (and two outputs): use the vector form
}

TEST_CASE("a layer called twice shares its weights between the calls", "[core][model]") {
  set_random_seed(202);
  auto a = Input<float>({3}, "in_a");
  auto b = Input<float>({3}, "in_b");
  auto shared = make<Dense>(2, "linear", true, "shared");
  auto out = (*make<Subtract>("sub"))(KTs{(*shared)(a), (*shared)(b)});
  Model<float> m({a, b}, {out});
  CHECK(shared->inbound_nodes().size() == 2);
  CHECK(m.weights().size() == 2);
  int count = 0;
  for (auto& l : m.layers()) count += l->name() == "shared";
  CHECK(count == 1);
  // shared(a) - shared(b) = (a - b) W: the bias cancels
  Tensor<float> A = rnd({4, 3}, 3), B = rnd({4, 3}, 4);
  Tensor<float> y = m.predict({A, B})[0];
  const Tensor<float>& W = shared->kernel().value;
  for (Index i = 0; i < 4; ++i)
    for (Index j = 0; j < 2; ++j) {
      double s = 0;
      for (Index k = 0; k < 3; ++k) s += (A[i * 3 + k] - B[i * 3 + k]) * W[k * 2 + j];
      CHECK(y[i * 2 + j] == Approx(s).margin(1e-5));
    }
}

TEST_CASE("models nest: Model in Model, Sequential in Functional, Functional in Sequential", "[core][model]") {
  set_random_seed(203);
  auto fx = Input<float>({4}, "f_in");
  auto f_d = make<Dense>(3, "tanh", true, "f_d");
  auto f_o = make<Dense>(2, "linear", true, "f_o");
  auto f = std::make_shared<Model<float>>(fx, (*f_o)((*f_d)(fx)), "f");
  Tensor<float> x = rnd({6, 4}, 5);
  Tensor<float> fy = f->predict(x);

  SECTION("Functional inside Functional") {
    auto y = Input<float>({4}, "outer_in");
    auto pre = make<Dense>(4, "relu", true, "pre");
    auto post = make<Dense>(1, "linear", true, "post");
    Model<float> outer(y, (*post)((*f)((*pre)(y))), "outer");
    CHECK(outer.weights().size() == 2 + 4 + 2);
    Tensor<float> P = run_layer(*pre, x);
    require_close(outer.predict(x), run_layer(*post, f->predict(P)));
    std::ostringstream os;
    outer.summary(os);
    CHECK_THAT(os.str(), Catch::Contains("f (Functional)"));
  }
  SECTION("Functional inside Sequential") {
    Sequential<float> s("seq_outer");
    s.add(std::make_shared<InputLayer<float>>(Shape{4}));
    s.add(f);
    auto post = s.add<Dense>(1, "linear", true, "seq_post");
    require_close(s.predict(x), run_layer(*post, fy));
    CHECK(s.layers().size() == 2);
  }
  SECTION("Sequential inside Functional") {
    auto inner = std::make_shared<Sequential<float>>("inner_seq");
    inner->add(std::make_shared<InputLayer<float>>(Shape{2}));
    auto si = inner->add<Dense>(3, "sigmoid", true, "si");
    auto z = Input<float>({4}, "z");
    Model<float> m(z, (*inner)((*f)(z)), "seq_in_func");
    require_close(m.predict(x), run_layer(*si, fy));
  }
  SECTION("a Sequential whose first layer is a model takes the model's input shape") {
    Sequential<float> s(std::vector<std::shared_ptr<Layer<float>>>{f, make<Dense>(2, "softmax", true, "sm")}, "s2");
    REQUIRE(s.has_input_shape());
    CHECK(s.input_shapes()[0] == Shape{-1, 4});
    CHECK(s.predict(x).shape() == Shape{6, 2});
  }
}

TEST_CASE("layer_output builds a feature extractor and an inner tensor can start a model", "[core][model]") {
  set_random_seed(204);
  auto m = mlp(5, 2, "softmax", "fe");
  Tensor<float> x = rnd({7, 5}, 6);
  Model<float> feat(m->inputs(), {m->layer_output("fe_h2")}, "features");
  CHECK(feat.get_layer("fe_h1").get() == m->get_layer("fe_h1").get());
  Tensor<float> h1 = run_layer(*m->get_layer("fe_h1"), x);
  Tensor<float> h2 = run_layer(*m->get_layer("fe_h2"), h1);
  require_close(feat.predict(x), h2);
  CHECK(m->layer_input("fe_out") == m->layer_output("fe_h2"));
  CHECK_THROWS_AS(m->layer_output("nope"), value_error);

  // a model from an inner tensor: a fresh InputLayer takes the tensor's place
  Model<float> tail(m->layer_output("fe_h1"), m->outputs()[0], "tail");
  CHECK(tail.input_shapes()[0] == Shape{-1, 8});
  auto names = layer_names(tail);
  CHECK(std::find(names.begin(), names.end(), "fe_h1") == names.end());
  CHECK(dynamic_cast<InputLayer<float>*>(tail.layers()[0].get()) != nullptr);
  require_close(tail.predict(h1), m->predict(x));

  // the extractor shares weights: training the full model changes its features
  m->compile(std::make_shared<SGD<float>>(0.5), "sparse_categorical_crossentropy");
  Tensor<float> y({7}, {0, 1, 1, 0, 1, 0, 1});
  Tensor<float> before = feat.predict(x);
  m->fit(x, y, quiet(2));
  CHECK(feat.predict(x) != before);
}

TEST_CASE("Sequential pop, add and get_layer", "[core][model]") {
  set_random_seed(205);
  Sequential<float> m("editable");
  m.add(std::make_shared<InputLayer<float>>(Shape{4}));
  m.add(make<Dense>(5, "relu", true, "a"));
  m.add(make<Dense>(3, "relu", true, "b"));
  m.add(make<Dense>(2, "softmax", true, "c"));
  CHECK(m.output_shapes()[0] == Shape{-1, 2});
  auto c = m.pop();
  CHECK(c->name() == "c");
  CHECK(layer_names(m) == std::vector<std::string>{"a", "b"});
  CHECK(m.output_shapes()[0] == Shape{-1, 3});
  m.add(make<Dense>(6, "linear", true, "d"));
  CHECK(layer_names(m) == std::vector<std::string>{"a", "b", "d"});
  CHECK(m.predict(rnd({3, 4}, 7)).shape() == Shape{3, 6});
  CHECK(m.get_layer("b")->name() == "b");
  CHECK(m.get_layer(0)->name() == "a");
  CHECK(m.get_layer(-1)->name() == "d");
  CHECK_THROWS_AS(m.get_layer(3), value_error);
  try {
    m.get_layer("zz");
    FAIL("no error");
  } catch (const value_error& e) {
    CHECK_THAT(e.what(), Catch::Contains("'zz'") && Catch::Contains("a, b, d"));
  }
  m.pop();
  m.pop();
  m.pop();
  CHECK(m.layers().empty());
  CHECK_THROWS_AS(m.pop(), value_error);
  // Functional layers() include the InputLayer first, as in Keras
  auto in = Input<float>({2}, "fin");
  Model<float> fm(in, (*make<Dense>(1, "linear", true, "fd"))(in));
  CHECK(layer_names(fm) == std::vector<std::string>{"fin", "fd"});
}

TEST_CASE("get_weights and set_weights follow Keras order and check counts and shapes", "[core][model]") {
  set_random_seed(206);
  Sequential<float> m("w");
  m.add(std::make_shared<InputLayer<float>>(Shape{3}));
  m.add(make<Dense>(4, "tanh", true, "a"));
  m.add(make<Dense>(2, "linear", false, "b"));
  m.add(make<Dense>(1, "linear", true, "c"));
  auto w = m.get_weights();
  REQUIRE(w.size() == 5);
  CHECK(w[0].shape() == Shape{3, 4});
  CHECK(w[1].shape() == Shape{4});
  CHECK(w[2].shape() == Shape{4, 2});
  CHECK(w[3].shape() == Shape{2, 1});
  CHECK(w[4].shape() == Shape{1});
  std::vector<std::string> names;
  for (auto* p : m.weights()) names.push_back(p->owner->name() + "/" + p->name);
  CHECK(names == std::vector<std::string>{"a/kernel", "a/bias", "b/kernel", "c/kernel", "c/bias"});
  CHECK(m.count_params() == 12 + 4 + 8 + 2 + 1);

  Tensor<float> x = rnd({2, 3}, 8);
  Tensor<float> y0 = m.predict(x);
  for (auto& t : w) t.fill(0.5f);
  m.set_weights(w);
  CHECK(same(m.get_weights(), w));
  CHECK(m.predict(x) != y0);

  auto fewer = w;
  fewer.pop_back();
  try {
    m.set_weights(fewer);
    FAIL("no error");
  } catch (const value_error& e) {
    CHECK_THAT(e.what(), Catch::Contains("4 arrays") && Catch::Contains("5 weights"));
  }
  auto wrong = w;
  wrong[0] = Tensor<float>({4, 3});
  try {
    m.set_weights(wrong);
    FAIL("no error");
  } catch (const shape_error& e) {
    CHECK_THAT(e.what(), Catch::Contains("'a/kernel'") && Catch::Contains("(3, 4)") &&
                             Catch::Contains("(4, 3)"));
  }
  CHECK(same(m.get_weights(), w));  // nothing was changed by the failed calls
}

TEST_CASE("clone_model gives fresh weights; set_weights makes the clone identical", "[core][model]") {
  set_random_seed(207);
  auto x = Input<float>({4}, "cx");
  auto shared = make<Dense>(4, "tanh", true, "c_shared");
  auto h = (*shared)((*shared)(x));  // one layer called twice
  auto inner = mlp(4, 3, "linear", "c_inner");
  auto o = (*make<Concatenate>(-1, "c_cat"))(KTs{(*inner)(h), (*make<Dropout>(0.3, "c_drop"))(h)});
  auto m = std::make_shared<Model<float>>(x, o, "clonable");
  m->compile(std::make_shared<SGD<float>>(0.1), "mse");
  Tensor<float> X = rnd({5, 4}, 9);
  Tensor<float> y = m->predict(X);

  auto c = clone_model(m);
  CHECK_FALSE(c->compiled());
  CHECK(layer_names(*c) == layer_names(*m));
  for (size_t i = 0; i < c->layers().size(); ++i) CHECK(c->layers()[i].get() != m->layers()[i].get());
  CHECK(model_to_config(*c) == model_to_config(*m));
  CHECK(c->predict(X) != y);
  c->set_weights(m->get_weights());
  CHECK(c->predict(X) == y);
  // the clone is independent: training it leaves the original alone
  c->compile(std::make_shared<SGD<float>>(0.1), "mse");
  c->fit(X, rnd({5, 7}, 10), quiet(1));
  CHECK(m->predict(X) == y);
}

TEST_CASE("a config round trip rebuilds the same model", "[core][model]") {
  set_random_seed(208);
  auto check_round_trip = [](Model<float>& m, const std::vector<Tensor<float>>& xs) {
    json j = model_to_config(m);
    auto m2 = model_from_config<float>(j);
    m2->set_weights(m.get_weights());
    auto a = m.predict(xs), b = m2->predict(xs);
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i) CHECK(a[i] == b[i]);
    CHECK(model_to_config(*m2) == j);
    auto m3 = model_from_json<float>(model_to_json(m));
    m3->set_weights(m.get_weights());
    CHECK(m3->predict(xs)[0] == a[0]);
    CHECK(layer_names(*m2) == layer_names(m));
  };
  SECTION("Sequential with every core layer") {
    Sequential<float> m("rt_seq");
    m.add(std::make_shared<InputLayer<float>>(Shape{2, 6}));
    m.add(make<Reshape>(Shape{3, 4}, "rt_reshape"));
    auto pr = make<PReLU>(std::vector<int>{1}, "rt_prelu");
    pr->alpha_initializer = Initializer::named("Constant", {{"value", 0.25}});
    m.add(pr);
    m.add(make<Dense>(5, "gelu", true, "rt_dense"));
    m.add(make<ReLU>(4.0, 0.1, 0.2, "rt_relu"));
    m.add(make<LeakyReLU>(0.2, "rt_leaky"));
    m.add(make<ELU>(0.7, "rt_elu"));
    m.add(make<Activation>("swish", "rt_act"));
    m.add(make<Softmax>(1, "rt_softmax"));
    m.add(make<Flatten>("rt_flatten"));
    m.add(make<Dropout>(0.5, "rt_dropout"));
    m.add(make<Dense>(3, "softmax", false, "rt_out"));
    check_round_trip(m, {rnd({4, 2, 6}, 11)});
  }
  SECTION("Functional with several inputs, outputs, merges and a shared layer") {
    auto a = Input<float>({3}, "rt_a");
    auto b = Input<float>({3}, "rt_b");
    auto sh = make<Dense>(3, "tanh", true, "rt_sh");
    auto sa = (*sh)(a), sb = (*sh)(b);
    auto mx = (*make<Maximum>("rt_max"))(KTs{sa, sb});
    auto mn = (*make<Minimum>("rt_min"))(KTs{sa, sb});
    auto av = (*make<Average>("rt_avg"))(KTs{mx, mn, a});
    auto mu = (*make<Multiply>("rt_mul"))(KTs{av, b});
    auto su = (*make<Subtract>("rt_sub"))(KTs{mu, sa});
    auto o1 = (*make<Dense>(2, "softmax", true, "rt_o1"))((*make<Concatenate>(1, "rt_cat"))(KTs{su, av}));
    auto o2 = (*make<Add>("rt_add"))(KTs{su, mx});
    Model<float> m({a, b}, {o1, o2}, "rt_func");
    check_round_trip(m, {rnd({4, 3}, 12), rnd({4, 3}, 13)});
  }
  SECTION("nested models") {
    auto inner = mlp(3, 2, "linear", "rt_inner");
    auto x = Input<float>({3}, "rt_x");
    auto y = (*inner)(x);
    auto z = (*make<Dense>(2, "relu", true, "rt_after"))(y);
    Model<float> m(x, (*make<Add>("rt_sum"))(KTs{y, z}), "rt_nested");
    check_round_trip(m, {rnd({4, 3}, 14)});
  }
}

TEST_CASE("layers are ordered as Keras orders them", "[core][model]") {
  set_random_seed(209);
  auto x = Input<float>({3}, "ord_in");
  auto a = make<Dense>(3, "linear", true, "ord_a");
  auto b = make<Dense>(3, "linear", true, "ord_b");
  auto ya = (*a)(x), yb = (*b)(x);
  SECTION("by depth, then by traversal order from the outputs") {
    Model<float> m1(x, (*make<Add>("ord_add"))(KTs{ya, yb}));
    CHECK(layer_names(m1) == std::vector<std::string>{"ord_in", "ord_a", "ord_b", "ord_add"});
    Model<float> m2(x, (*make<Add>("ord_add2"))(KTs{yb, ya}));
    CHECK(layer_names(m2) == std::vector<std::string>{"ord_in", "ord_b", "ord_a", "ord_add2"});
  }
  SECTION("a skip connection puts the earlier layer first") {
    auto c = make<Dense>(3, "linear", true, "ord_c");
    auto yc = (*c)(ya);
    Model<float> m(x, (*make<Add>("ord_skip"))(KTs{yc, ya}));
    CHECK(layer_names(m) == std::vector<std::string>{"ord_in", "ord_a", "ord_c", "ord_skip"});
    // weights follow layers(): a, then c
    auto ws = m.weights();
    REQUIRE(ws.size() == 4);
    CHECK(ws[0]->owner == a.get());
    CHECK(ws[2]->owner == c.get());
  }
}

// ---------------------------------------------------------------------------------------------
// predict / evaluate / fit
// ---------------------------------------------------------------------------------------------

TEST_CASE("predict in batches equals one big forward", "[core][model]") {
  set_random_seed(210);
  auto m = mlp(7, 3, "softmax", "pb");
  Tensor<float> x = rnd({50, 7}, 15);
  Tensor<float> whole;
  auto st = m->make_state();
  m->forward({&x}, {&whole}, st.get(), false);
  for (Index b : {1, 7, 16, 50, 64}) {
    INFO("batch " << b);
    require_close(m->predict(x, b), whole);
  }
  Tensor<float> none = m->predict(Tensor<float>({0, 7}));
  CHECK(none.shape() == Shape{0, 3});
  CHECK_THROWS_AS(m->predict(x, 0), value_error);
}

TEST_CASE("inputs one axis short of (or beyond) the model input are adjusted as Keras does", "[core][model]") {
  set_random_seed(211);
  Sequential<float> m("adjust");
  m.add(std::make_shared<InputLayer<float>>(Shape{4, 1}));
  m.add(make<Flatten>("adj_flat"));
  m.add(make<Dense>(1, "sigmoid", true, "adj_out"));
  Tensor<float> x = rnd({6, 4}, 16), x1 = x;
  x1.reshape({6, 4, 1});
  CHECK(m.predict(x) == m.predict(x1));
  m.compile(std::make_shared<SGD<float>>(0.1), "binary_crossentropy");
  Tensor<float> y = binary_labels(x);
  double l = m.train_on_batch({x}, {y});
  CHECK(std::isfinite(l));
  m.fit(x, y, quiet(1));
  CHECK(m.evaluate(x, y).count("loss") == 1);
}

TEST_CASE("evaluate is the batch-size weighted mean of the loss and the metrics", "[core][model]") {
  set_random_seed(212);
  auto m = mlp(5, 3, "softmax", "ev");
  m->compile(std::make_shared<SGD<float>>(0.1), "sparse_categorical_crossentropy", {"accuracy"});
  Tensor<float> x = rnd({23, 5}, 17);
  Tensor<float> y({23});
  for (Index i = 0; i < 23; ++i) y[i] = static_cast<float>(i % 3);
  Tensor<float> p = m->predict(x);
  double want_loss = make_loss<float>("sparse_categorical_crossentropy")->compute(y, p, nullptr, 1.0f);
  int hits = 0;
  for (Index i = 0; i < 23; ++i) {
    Index best = 0;
    for (Index j = 1; j < 3; ++j)
      if (p[i * 3 + j] > p[i * 3 + best]) best = j;
    hits += best == static_cast<Index>(y[i]);
  }
  for (Index b : {1, 5, 23, 32}) {
    INFO("batch " << b);
    Logs l = m->evaluate(x, y, b);
    CHECK(l.at("loss") == Approx(want_loss).epsilon(1e-5));
    CHECK(l.at("accuracy") == Approx(hits / 23.0));
    CHECK(l.size() == 2);
  }
}

TEST_CASE("fit holds out the last validation_split fraction before shuffling", "[core][model]") {
  set_random_seed(213);
  auto m1 = mlp(4, 1, "sigmoid", "vs");
  auto m2 = clone_model(m1);
  m2->set_weights(m1->get_weights());
  Tensor<float> x = rnd({40, 4}, 18);
  Tensor<float> y = binary_labels(x);
  m1->compile(std::make_shared<SGD<float>>(0.2, 0.5), "binary_crossentropy", {"accuracy"});
  m2->compile(std::make_shared<SGD<float>>(0.2, 0.5), "binary_crossentropy", {"accuracy"});
  FitOptions<float> o = quiet(3);
  o.validation_split = 0.25;
  auto h1 = m1->fit(x, y, o);
  o.validation_split = 0;
  auto h2 = m2->fit(x.slice_rows(0, 30), y.slice_rows(0, 30), o);
  CHECK(same(m1->get_weights(), m2->get_weights()));
  CHECK(h1["loss"] == h2["loss"]);
  REQUIRE(h1.has("val_loss"));
  CHECK_FALSE(h2.has("val_loss"));
  Logs v = m1->evaluate(x.slice_rows(30, 10), y.slice_rows(30, 10));
  CHECK(h1["val_loss"].back() == Approx(v["loss"]));
  CHECK(h1["val_accuracy"].back() == Approx(v["accuracy"]));
}

TEST_CASE("fit with validation_data records Keras History keys per epoch", "[core][model]") {
  set_random_seed(214);
  auto m = mlp(4, 1, "sigmoid", "vd");
  m->compile(std::make_shared<SGD<float>>(0.2), "binary_crossentropy", {"accuracy"});
  Tensor<float> x = rnd({32, 4}, 19), xv = rnd({12, 4}, 20);
  FitOptions<float> o = quiet(3);
  o.validation_x = {xv};
  o.validation_y = {binary_labels(xv)};
  auto h = m->fit(x, binary_labels(x), o);
  std::set<std::string> keys;
  for (auto& kv : h.history) {
    keys.insert(kv.first);
    CHECK(kv.second.size() == 3);
  }
  CHECK(keys == std::set<std::string>{"accuracy", "loss", "lr", "val_accuracy", "val_loss"});  // Keras' keys, and the learning rate
  CHECK(h.epoch == std::vector<int>{0, 1, 2});
  Logs v = m->evaluate(xv, binary_labels(xv));
  CHECK(h["val_loss"].back() == Approx(v["loss"]));
  CHECK_THROWS_AS(h["val_mae"], value_error);
}

TEST_CASE("the epoch loss is the batch-size weighted mean of the step losses, partial batch included",
          "[core][model]") {
  set_random_seed(215);
  auto m1 = mlp(3, 2, "linear", "ew");
  auto m2 = clone_model(m1);
  m2->set_weights(m1->get_weights());
  m1->compile(std::make_shared<SGD<float>>(0.1, 0.9), "mse", {"mae"});
  m2->compile(std::make_shared<SGD<float>>(0.1, 0.9), "mse", {"mae"});
  Tensor<float> x = rnd({30, 3}, 21), y = rnd({30, 2}, 22);
  FitOptions<float> o = quiet(1, 8);
  o.shuffle = false;
  auto h = m1->fit(x, y, o);

  double sum = 0, unweighted = 0, mae_sum = 0;
  for (Index b0 = 0; b0 < 30; b0 += 8) {
    Index cnt = std::min<Index>(8, 30 - b0);
    Tensor<float> xb = x.slice_rows(b0, cnt), yb = y.slice_rows(b0, cnt);
    Tensor<float> pb = m2->predict(xb);
    mae_sum += make_loss<float>("mae")->compute(yb, pb, nullptr, 1.0f) * static_cast<double>(cnt);
    double l = m2->train_on_batch({xb}, {yb});
    sum += l * static_cast<double>(cnt);
    unweighted += l / 4;
  }
  CHECK(h["loss"][0] == Approx(sum / 30).epsilon(1e-12));
  CHECK(h["loss"][0] != Approx(unweighted).epsilon(1e-9));
  CHECK(h["mae"][0] == Approx(mae_sum / 30).epsilon(1e-6));
  CHECK(same(m1->get_weights(), m2->get_weights()));
}

TEST_CASE("shuffling is reproducible with a seed", "[core][model]") {
  set_random_seed(216);
  auto base = mlp(4, 1, "linear", "sh");
  Tensor<float> x = rnd({40, 4}, 23), y = rnd({40, 1}, 24);
  auto run = [&](std::optional<std::uint64_t> seed, bool shuffle) {
    auto m = clone_model(base);
    m->set_weights(base->get_weights());
    m->compile(std::make_shared<SGD<float>>(0.1), "mse");
    FitOptions<float> o = quiet(2, 8);
    o.seed = seed;
    o.shuffle = shuffle;
    auto h = m->fit(x, y, o);
    return std::make_pair(m->get_weights(), h["loss"]);
  };
  auto a = run(42, true), b = run(42, true), c = run(43, true), d = run(42, false), e = run(7, false);
  CHECK(same(a.first, b.first));
  CHECK(a.second == b.second);
  CHECK_FALSE(same(a.first, c.first));
  CHECK_FALSE(same(a.first, d.first));
  CHECK(same(d.first, e.first));  // without shuffling the seed does not matter
}

TEST_CASE("several outputs: one loss each, loss_weights, per-output logs", "[core][model]") {
  set_random_seed(217);
  auto x = Input<float>({4}, "mo_in");
  auto h = (*make<Dense>(6, "tanh", true, "mo_h"))(x);
  auto o1 = (*make<Dense>(1, "linear", true, "reg"))(h);
  auto o2 = (*make<Dense>(1, "sigmoid", true, "cls"))(h);
  Model<float> m(x, {o1, o2}, "two_heads");
  m.compile(std::make_shared<SGD<float>>(0.1), {make_loss<float>("mse"), make_loss<float>("binary_crossentropy")},
            {{}, {"accuracy"}}, {0.3, 2.0});
  Tensor<float> X = rnd({24, 4}, 25), Y1 = rnd({24, 1}, 26), Y2 = binary_labels(X);
  auto p = m.predict(std::vector<Tensor<float>>{X});
  double l1 = make_loss<float>("mse")->compute(Y1, p[0], nullptr, 1.0f);
  double l2 = make_loss<float>("binary_crossentropy")->compute(Y2, p[1], nullptr, 1.0f);
  Logs ev = m.evaluate({X}, {Y1, Y2});
  CHECK(ev.at("loss") == Approx(0.3 * l1 + 2.0 * l2).epsilon(1e-5));
  CHECK(ev.at("reg_loss") == Approx(l1).epsilon(1e-5));
  CHECK(ev.at("cls_loss") == Approx(l2).epsilon(1e-5));
  CHECK(ev.count("cls_accuracy") == 1);
  CHECK(m.train_on_batch({X}, {Y1, Y2}) == Approx(0.3 * l1 + 2.0 * l2).epsilon(1e-5));

  auto hist = m.fit({X}, {Y1, Y2}, quiet(2));
  std::set<std::string> keys;
  for (auto& kv : hist.history) keys.insert(kv.first);
  CHECK(keys == std::set<std::string>{"cls_accuracy", "cls_loss", "loss", "lr", "reg_loss"});
  for (size_t e = 0; e < 2; ++e)
    CHECK(hist["loss"][e] == Approx(0.3 * hist["reg_loss"][e] + 2.0 * hist["cls_loss"][e]).epsilon(1e-6));

  SECTION("an output without a loss is not trained") {
    Model<float> m2(x, {o1, o2}, "one_loss");
    m2.compile(std::make_shared<SGD<float>>(0.1), std::vector<std::shared_ptr<Loss<float>>>{make_loss<float>("mse"), nullptr});
    auto cls = m2.get_layer("cls")->get_weights();
    auto reg = m2.get_layer("reg")->get_weights();
    m2.fit({X}, {Y1, Y2}, quiet(1));
    CHECK(same(m2.get_layer("cls")->get_weights(), cls));
    CHECK_FALSE(same(m2.get_layer("reg")->get_weights(), reg));
  }
  SECTION("one loss given for several outputs applies to each") {
    Model<float> m3(x, {o1, o2}, "shared_loss");
    m3.compile(std::make_shared<SGD<float>>(0.1), std::vector<std::shared_ptr<Loss<float>>>{make_loss<float>("mse")});
    Logs l = m3.evaluate({X}, {Y1, Y2});
    CHECK(l.at("loss") == Approx(l.at("reg_loss") + l.at("cls_loss")));
  }
}

TEST_CASE("accuracy resolves to binary, sparse or categorical from the shapes as Keras does", "[core][model]") {
  auto fn = [](const char* id, const Shape& t, const Shape& p) { return make_metric<float>(json(id), t, p)->fn(); };
  CHECK(fn("accuracy", {8, 1}, {-1, 1}) == "binary_accuracy");
  CHECK(fn("accuracy", {8}, {-1, 1}) == "binary_accuracy");
  CHECK(fn("accuracy", {8}, {-1, 3}) == "sparse_categorical_accuracy");
  CHECK(fn("accuracy", {8, 1}, {-1, 3}) == "sparse_categorical_accuracy");
  CHECK(fn("accuracy", {8, 3}, {-1, 3}) == "categorical_accuracy");
  CHECK(fn("acc", {8, 3}, {-1, 3}) == "categorical_accuracy");
  CHECK(make_metric<float>(json("acc"), {8, 3}, {-1, 3})->name() == "acc");
  CHECK(fn("mae", {8, 3}, {-1, 3}) == "mean_absolute_error");
  CHECK(make_metric<float>(json("mae"), {8, 3}, {-1, 3})->name() == "mae");
  CHECK(make_metric<float>(json::parse(R"({"class_name": "MeanMetricWrapper", "config": {"name": "accuracy",
                                            "fn": "categorical_accuracy"}})"), {8, 3}, {-1, 3})->fn() ==
        "categorical_accuracy");

  SECTION("values") {
    Tensor<float> pb({4, 1}, {0.2f, 0.7f, 0.51f, 0.4f}), tb({4, 1}, {0, 1, 0, 0});
    auto bin = make_metric<float>(json("accuracy"), tb.shape(), pb.shape());
    bin->update(tb, pb);
    CHECK(bin->result() == Approx(0.75));
    Tensor<float> pc({3, 3}, {0.1f, 0.7f, 0.2f, 0.5f, 0.3f, 0.2f, 0.2f, 0.2f, 0.6f});
    Tensor<float> ts({3}, {1, 1, 2}), tc({3, 3}, {0, 1, 0, 0, 1, 0, 0, 0, 1});
    auto sp = make_metric<float>(json("accuracy"), ts.shape(), pc.shape());
    sp->update(ts, pc);
    CHECK(sp->result() == Approx(2.0 / 3));
    auto cat = make_metric<float>(json("accuracy"), tc.shape(), pc.shape());
    cat->update(tc, pc);
    sp->update(ts, pc);  // streaming mean over updates
    CHECK(cat->result() == Approx(2.0 / 3));
    CHECK(sp->result() == Approx(2.0 / 3));
    sp->reset();
    CHECK(sp->result() == 0.0);
  }
}

TEST_CASE("verbose progress lines follow the Keras 3 format; verbose 0 is silent", "[core][model]") {
  set_random_seed(218);
  auto m = mlp(4, 1, "sigmoid", "vb");
  m->compile(std::make_shared<SGD<float>>(0.1), "binary_crossentropy", {"accuracy"});
  Tensor<float> x = rnd({20, 4}, 27), xv = rnd({6, 4}, 28);
  FitOptions<float> o = quiet(3, 10);
  o.validation_x = {xv};
  o.validation_y = {binary_labels(xv)};
  std::ostringstream os;
  o.out = &os;
  SECTION("verbose 2: one line per epoch") {
    o.verbose = 2;
    auto h = m->fit(x, binary_labels(x), o);
    std::istringstream lines(os.str());
    std::vector<std::string> ls;
    for (std::string l; std::getline(lines, l);) ls.push_back(l);
    INFO(os.str());
    REQUIRE(ls.size() == 6);
    const std::regex line(R"(2/2 - \d+s - \d+(s|ms|us)/step - accuracy: \d\.\d{4} - loss: \d\.\d{4} - val_accuracy: \d\.\d{4} - val_loss: \d\.\d{4})");
    for (int e = 0; e < 3; ++e) {
      CHECK(ls[2 * e] == "Epoch " + std::to_string(e + 1) + "/3");
      CHECK(std::regex_match(ls[2 * e + 1], line));
      CHECK_THAT(ls[2 * e + 1], Catch::Contains("loss: " + detail::format_metric(h["loss"][e])));
      CHECK_THAT(ls[2 * e + 1], Catch::Contains("val_accuracy: " + detail::format_metric(h["val_accuracy"][e])));
    }
  }
  SECTION("verbose 1 to a stream that is not a terminal prints the same final lines") {
    o.verbose = 1;
    m->fit(x, binary_labels(x), o);
    CHECK_THAT(os.str(), Catch::StartsWith("Epoch 1/3\n2/2 - "));
    CHECK_THAT(os.str(), Catch::Contains("Epoch 3/3\n"));
    CHECK(os.str().find('\r') == std::string::npos);
  }
  SECTION("verbose 0") {
    o.verbose = 0;
    m->fit(x, binary_labels(x), o);
    CHECK(os.str().empty());
  }
  SECTION("initial_epoch numbers the epochs as Keras does") {
    o.verbose = 2;
    o.initial_epoch = 1;
    auto h = m->fit(x, binary_labels(x), o);
    CHECK(h.epoch == std::vector<int>{1, 2});
    CHECK_THAT(os.str(), Catch::StartsWith("Epoch 2/3\n"));
  }
  SECTION("numbers: 4 decimals above 1e-3, exponent form below; whole seconds for the epoch") {
    CHECK(detail::format_metric(0.51234) == "0.5123");
    CHECK(detail::format_metric(12.5) == "12.5000");
    CHECK(detail::format_metric(0.0005) == "5.0000e-04");
    CHECK(detail::format_metric(0.0) == "0.0000e+00");
    CHECK(detail::format_duration(0.2) == "0s");
    CHECK(detail::format_duration(3.4) == "3s");
    CHECK(detail::format_per_step(0.0021, 1) == "2ms/step");
    CHECK(detail::format_per_step(3e-5, 1) == "30us/step");
    CHECK(detail::format_per_step(2.0, 1) == "2s/step");
  }
}

namespace {
struct Recorder : Callback<float> {
  std::vector<std::string> events;
  int stop_after = -1;
  void on_train_begin(const Logs&) override { events.push_back("train_begin"); }
  void on_epoch_begin(int e, const Logs&) override { events.push_back("begin" + std::to_string(e)); }
  void on_train_batch_begin(Index b, const Logs&) override { events.push_back("b" + std::to_string(b)); }
  void on_train_batch_end(Index b, const Logs& logs) override { events.push_back("e" + std::to_string(b) + (logs.count("loss") ? "+loss" : "")); }
  void on_epoch_end(int e, Logs& logs) override {
    events.push_back("end" + std::to_string(e) + (logs.count("loss") ? "+loss" : "") + (logs.count("lr") ? "+lr" : ""));
    if (e == stop_after) model()->stop_training = true;
  }
  void on_train_end(const Logs&) override { events.push_back("train_end"); }
};
}  // namespace

TEST_CASE("callbacks see every epoch and can stop training", "[core][model]") {
  set_random_seed(219);
  auto m = mlp(3, 1, "linear", "cb");
  m->compile(std::make_shared<SGD<float>>(0.05), "mse");
  auto rec = std::make_shared<Recorder>();
  rec->stop_after = 1;
  FitOptions<float> o = quiet(5);
  o.callbacks = {rec};
  o.batch_size = 8;
  auto h = m->fit(rnd({16, 3}, 29), rnd({16, 1}, 30), o);
  CHECK(h["loss"].size() == 2);
  CHECK(h["lr"] == std::vector<double>{0.05, 0.05});
  CHECK(rec->events == std::vector<std::string>{"train_begin", "begin0", "b0", "e0+loss", "b1", "e1+loss", "end0+loss+lr",
                                                "begin1", "b0", "e0+loss", "b1", "e1+loss", "end1+loss+lr", "train_end"});
}

TEST_CASE("EarlyStopping stops when the monitored value stops improving and restores the best weights",
          "[core][model]") {
  set_random_seed(220);
  // training pushes the output towards 1 while the validation targets are 0: val_loss rises
  Tensor<float> x = rnd({32, 3}, 31), xv = rnd({16, 3}, 32);
  Tensor<float> y({32, 1}, 1.0f), yv({16, 1}, 0.0f);
  auto make_model = [] {
    auto m = std::make_shared<Sequential<float>>("es_model");
    m->add(std::make_shared<InputLayer<float>>(Shape{3}));
    m->add(make<Dense>(1, "sigmoid", true, "es_out"));
    m->compile(std::make_shared<SGD<float>>(0.5), "binary_crossentropy");
    return m;
  };
  FitOptions<float> o = quiet(10);
  o.validation_x = {xv};
  o.validation_y = {yv};
  SECTION("patience 2 without restoring") {
    auto m = make_model();
    auto es = std::make_shared<EarlyStopping<float>>("val_loss", 2);
    o.callbacks = {es};
    auto h = m->fit(x, y, o);
    REQUIRE(h["val_loss"].size() == 3);
    CHECK(h["val_loss"][1] > h["val_loss"][0]);
    CHECK(es->best_epoch() == 0);
    CHECK(es->stopped_epoch() == 2);
    CHECK(m->evaluate(xv, yv)["loss"] == Approx(h["val_loss"][2]));
  }
  SECTION("restore_best_weights brings back the best epoch's weights") {
    auto m = make_model();
    auto es = std::make_shared<EarlyStopping<float>>("val_loss", 1, 0.0, true);
    o.callbacks = {es};
    auto h = m->fit(x, y, o);
    REQUIRE(h["val_loss"].size() == 2);
    CHECK(m->evaluate(xv, yv)["loss"] == Approx(h["val_loss"][0]));
  }
  SECTION("a value that keeps improving never stops; min_delta demands a margin") {
    auto m = make_model();
    auto es = std::make_shared<EarlyStopping<float>>("loss", 0);
    o.callbacks = {es};
    auto h = m->fit(x, y, o);
    CHECK(h["loss"].size() == 10);
    CHECK(es->stopped_epoch() == 0);  // Keras: 0 when training did not stop early
    auto m2 = make_model();
    auto strict = std::make_shared<EarlyStopping<float>>("loss", 0, 10.0);
    o.callbacks = {strict};
    CHECK(m2->fit(x, y, o)["loss"].size() == 2);
  }
  SECTION("accuracy is maximised in auto mode") {
    auto m = make_model();
    EarlyStopping<float> es("val_accuracy", 0);
    es.set_model(m.get());
    es.on_train_begin({});
    Logs l0{{"val_accuracy", 0.5}}, l1{{"val_accuracy", 0.7}}, l2{{"val_accuracy", 0.6}};
    es.on_epoch_end(0, l0);
    es.on_epoch_end(1, l1);
    CHECK_FALSE(m->stop_training);
    CHECK(es.best() == 0.7);
    es.on_epoch_end(2, l2);
    CHECK(m->stop_training);
  }
}

TEST_CASE("training needs a compiled model and consistent data", "[core][model]") {
  set_random_seed(221);
  auto m = mlp(3, 1, "linear", "tr");
  Tensor<float> x = rnd({8, 3}, 33), y = rnd({8, 1}, 34);
  CHECK_THROWS_AS(m->fit(x, y), value_error);
  CHECK_THROWS_AS(m->train_on_batch({x}, {y}), value_error);
  CHECK_THROWS_AS(m->evaluate(x, y), value_error);
  m->compile("sgd", "mse");
  CHECK(m->optimizer()->class_name() == "SGD");
  CHECK_THROWS_AS(m->fit(x, rnd({7, 1}, 35), quiet()), shape_error);
  CHECK_THROWS_AS(m->fit(x, Tensor<float>(Shape{}), quiet()), shape_error);
  CHECK_THROWS_AS(m->fit(std::vector<Tensor<float>>{x}, {y, y}, quiet()), shape_error);
  FitOptions<float> bad = quiet();
  bad.validation_split = 1.0;
  CHECK_THROWS_AS(m->fit(x, y, bad), value_error);
  bad = quiet();
  bad.batch_size = 0;
  CHECK_THROWS_AS(m->fit(x, y, bad), value_error);
  auto h = m->fit(x, y, quiet(0));
  CHECK(h.history.empty());
}

TEST_CASE("validation data overrides validation_split, as in Keras", "[core][model]") {
  set_random_seed(222);
  auto m1 = mlp(4, 1, "linear", "vo");
  auto m2 = clone_model(m1);
  m2->set_weights(m1->get_weights());
  m1->compile(std::make_shared<SGD<float>>(0.1), "mse");
  m2->compile(std::make_shared<SGD<float>>(0.1), "mse");
  Tensor<float> x = rnd({20, 4}, 36), y = rnd({20, 1}, 37), xv = rnd({5, 4}, 38), yv = rnd({5, 1}, 39);
  FitOptions<float> o = quiet(2, 4);
  o.validation_x = {xv};
  o.validation_y = {yv};
  o.validation_split = 0.5;
  auto h1 = m1->fit(x, y, o);
  o.validation_split = 0;
  auto h2 = m2->fit(x, y, o);
  CHECK(h1["loss"] == h2["loss"]);
  CHECK(h1["val_loss"] == h2["val_loss"]);
  CHECK(same(m1->get_weights(), m2->get_weights()));
}

TEST_CASE("regularizers add their penalty to the loss and its gradient; constraints project after each step",
          "[core][model]") {
  set_random_seed(223);
  Sequential<double> m("reg");
  m.add(std::make_shared<InputLayer<double>>(Shape{3}));
  auto d = std::make_shared<Dense<double>>(2, "linear", true, "reg_d");
  d->kernel_regularizer.l2 = 0.1;
  d->bias_regularizer.l1 = 0.05;
  m.add(d);
  const double lr = 0.1;
  m.compile(std::make_shared<SGD<double>>(lr), "mse");
  Tensor<double> x({4, 3}), y({4, 2});
  Rng r(40);
  for (auto& v : x) v = r.uniform(-1, 1);
  for (auto& v : y) v = r.uniform(-1, 1);
  Tensor<double> W = d->kernel().value, b = d->bias()->value;
  for (auto& v : b) v = r.uniform(-0.5, 0.5);
  d->bias()->value = b;
  Tensor<double> p = m.predict(x);
  double mse = make_loss<double>("mse")->compute(y, p, nullptr, 1.0);
  double penalty = 0;
  for (double v : W) penalty += 0.1 * v * v;
  for (double v : b) penalty += 0.05 * std::abs(v);
  CHECK(m.evaluate(x, y)["loss"] == Approx(mse + penalty));
  CHECK(m.train_on_batch({x}, {y}) == Approx(mse + penalty));
  // dL/dW = x^T (2 (p - y) / n) + 0.2 W; dL/db = column sums + 0.05 sign(b)
  for (Index k = 0; k < 3; ++k)
    for (Index j = 0; j < 2; ++j) {
      double g = 0;
      for (Index i = 0; i < 4; ++i) g += x[i * 3 + k] * 2 * (p[i * 2 + j] - y[i * 2 + j]) / 8;
      g += 0.2 * W[k * 2 + j];
      CHECK(d->kernel().value[k * 2 + j] == Approx(W[k * 2 + j] - lr * g));
    }
  for (Index j = 0; j < 2; ++j) {
    double g = 0;
    for (Index i = 0; i < 4; ++i) g += 2 * (p[i * 2 + j] - y[i * 2 + j]) / 8;
    g += 0.05 * (b[j] > 0 ? 1 : -1);
    CHECK(d->bias()->value[j] == Approx(b[j] - lr * g));
  }
  SECTION("a frozen layer's penalty is not part of the loss") {
    d->set_trainable(false);
    Tensor<double> p2 = m.predict(x);
    CHECK(m.evaluate(x, y)["loss"] == Approx(make_loss<double>("mse")->compute(y, p2, nullptr, 1.0)));
  }
  SECTION("NonNeg and MaxNorm constraints hold after every step") {
    Sequential<float> c("cons");
    c.add(std::make_shared<InputLayer<float>>(Shape{3}));
    auto cd = std::make_shared<Dense<float>>(4, "linear", true, "cons_d");
    cd->kernel_constraint = Constraint::from_json(json{{"class_name", "NonNeg"}, {"config", json::object()}}, "t");
    cd->bias_constraint = Constraint::from_json(json{{"class_name", "MaxNorm"}, {"config", {{"max_value", 0.1}, {"axis", 0}}}}, "t");
    c.add(cd);
    c.compile(std::make_shared<SGD<float>>(0.5), "mse");
    c.fit(rnd({16, 3}, 41), rnd({16, 4}, 42, -3, 3), quiet(3, 4));
    for (float v : cd->kernel().value) CHECK(v >= 0.0f);
    double n2 = 0;
    for (float v : cd->bias()->value) n2 += double(v) * v;
    CHECK(std::sqrt(n2) <= 0.1 + 1e-6);
  }
}

TEST_CASE("a Functional inside a Functional, called twice, survives a config round trip", "[core][model]") {
  set_random_seed(224);
  auto ix = Input<float>({3}, "nf_in");
  auto inner = std::make_shared<Model<float>>(ix, (*make<Dense>(3, "tanh", true, "nf_d"))(ix), "nf_inner");
  auto x = Input<float>({3}, "nf_x");
  auto a = (*inner)(x);
  auto b = (*inner)(a);  // the nested model called twice
  Model<float> m(x, KTs{(*make<Add>("nf_add"))(KTs{a, b}), a}, "nf_outer");
  json j = model_to_config(m);
  auto m2 = model_from_config<float>(j);
  m2->set_weights(m.get_weights());
  Tensor<float> X = rnd({4, 3}, 43);
  auto p1 = m.predict(std::vector<Tensor<float>>{X}), p2 = m2->predict(std::vector<Tensor<float>>{X});
  CHECK(p1[0] == p2[0]);
  CHECK(p1[1] == p2[1]);
  CHECK(model_to_config(*m2) == j);
  // the inner model's layer sees both calls
  CHECK(m2->get_layer("nf_inner")->inbound_nodes().size() == 2);
}

TEST_CASE("a callback can unfreeze layers for the following epochs", "[core][model]") {
  set_random_seed(225);
  auto m = mlp(4, 1, "linear", "uf");
  m->get_layer("uf_h1")->set_trainable(false);
  m->compile(std::make_shared<SGD<float>>(0.1), "mse");
  struct Unfreeze : Callback<float> {
    std::shared_ptr<Layer<float>> layer;
    std::vector<Tensor<float>> at_epoch1;
    void on_epoch_begin(int e, const Logs&) override {
      if (e == 1) {
        at_epoch1 = layer->get_weights();
        layer->set_trainable(true);
      }
    }
  };
  auto cb = std::make_shared<Unfreeze>();
  cb->layer = m->get_layer("uf_h1");
  auto start = cb->layer->get_weights();
  FitOptions<float> o = quiet(2, 4);
  o.callbacks = {cb};
  m->fit(rnd({16, 4}, 44), rnd({16, 1}, 45), o);
  CHECK(same(cb->at_epoch1, start));                   // frozen during epoch 0
  CHECK_FALSE(same(cb->layer->get_weights(), start));  // trained during epoch 1
}

TEST_CASE("auto names avoid names already given, as after loading a model", "[core][model]") {
  // A loaded model brings explicit names ("my_layer", "my_layer_1", ...); a layer created after
  // it without a name must not collide with them, or the Keras recipe "Sequential(model_A.layers
  // minus the head) then add(Dense(...))" would fail on a duplicate name.
  auto loaded0 = make<Dense>(3);
  loaded0->set_name("auto_name_probe_layer");
  auto loaded1 = make<Dense>(3);
  loaded1->set_name("auto_name_probe_layer_1");
  struct AutoNameProbeLayer : Dense<float> {
    using Dense<float>::Dense;
    std::string class_name() const override { return "AutoNameProbeLayer"; }
  };
  auto fresh = std::make_shared<AutoNameProbeLayer>(2);
  CHECK(fresh->name() == "auto_name_probe_layer_2");
  Sequential<float> s({std::make_shared<InputLayer<float>>(Shape{4}), loaded0, loaded1});
  CHECK_NOTHROW(s.add(fresh));
  CHECK(s.layers().back()->name() == "auto_name_probe_layer_2");
}

TEST_CASE("Dense on a large batch (row groups over the threads) gives what small batches give, on any thread count",
          "[dense][threads]") {
  graft::Rng rng(23);
  Dense<float> d(37, "selu");  // selu keeps its pre-activation for the backward pass
  Tensor<float> x({300, 50});
  for (auto& v : x) v = static_cast<float>(rng.uniform(-1, 1));
  d.build({x.shape()});
  for (auto* p : d.weights())
    for (auto& v : p->value) v = static_cast<float>(rng.uniform(-0.5, 0.5));
  auto forward = [&](const Tensor<float>& in, bool training) {
    auto st = d.make_state();
    Tensor<float> y;
    d.forward({&in}, {&y}, st.get(), training);
    return y;
  };
  std::vector<Tensor<float>> whole;
  for (int threads : {1, 2})
    for (bool training : {false, true}) {
      graft::set_num_threads(threads);
      whole.push_back(forward(x, training));
    }
  graft::set_num_threads(0);
  for (size_t i = 1; i < whole.size(); ++i) CHECK(whole[i] == whole[0]);
  // 15 batches of 20 rows, each one group
  double err = 0;
  for (Index b = 0; b < 15; ++b) {
    Tensor<float> xb({20, 50});
    std::copy(x.data() + b * 20 * 50, x.data() + (b + 1) * 20 * 50, xb.data());
    auto yb = forward(xb, false);
    for (Index i = 0; i < 20 * 37; ++i)
      err = std::max(err, std::abs(static_cast<double>(yb.data()[i]) - whole[0].data()[b * 20 * 37 + i]));
  }
  CHECK(err <= 1e-6);
}


TEST_CASE("predict and evaluate cut big batches into row slices over the threads: the same bits as one thread",
          "[core][model][threads]") {
  set_random_seed(230);
  auto probe = std::make_shared<graft_test::RowProbe>(true, "sl_probe");
  auto in = Input<float>({12, 12, 3}, "sl_in");
  auto c = (*make<BatchNormalization>(-1, 0.99, 1e-3, true, true, "sl_bn"))(
      (*make<Conv2D>(8, 3, 1, "same", "relu", true, 1, "sl_conv"))(in));
  auto p = (*make<MaxPooling2D>(2, std::vector<Index>{}, "valid", "sl_pool"))(c);
  auto up = (*make<UpSampling2D>(2, "bilinear", "sl_up"))(p);  // keeps its taps per call
  auto a = (*make<Dense>(10, "selu", true, "sl_a"))((*make<Flatten>("sl_flat"))(up));
  auto b = (*make<Dense>(10, "linear", true, "sl_b"))((*make<GlobalAveragePooling2D>(false, "sl_gap"))(p));
  auto head = std::make_shared<Sequential<float>>("sl_head");  // a nested model
  head->add(std::make_shared<InputLayer<float>>(Shape{10}));
  head->add(make<Dense>(6, "softmax", true, "sl_out"));
  auto out = (*head)((*probe)((*make<Add>("sl_add"))(KTs{a, b})));
  Model<float> m(in, KTs{out, b}, "sliced");
  Rng r(5);
  for (auto* w : m.weights())
    for (auto& v : w->value) v = static_cast<float>(w->name == "moving_variance" ? r.uniform(0.5, 1.5) : r.uniform(-0.5, 0.5));
  const Tensor<float> x = rnd({200, 12, 12, 3}, 31);
  const std::vector<Tensor<float>> xs{x};
  Tensor<float> y({200});
  for (Index i = 0; i < 200; ++i) y[i] = static_cast<float>(i % 6);
  Model<float> single(in, out, "sliced_single");
  single.compile(std::make_shared<SGD<float>>(0.01), "sparse_categorical_crossentropy", {"accuracy"});

  set_num_threads(1);
  const auto y1 = m.predict(xs, 64);
  const Logs l1 = single.evaluate(x, y, 64);
  CHECK(probe->take_seen() == std::set<Index>{64, 8});
  set_num_threads(2);
  const auto y2 = m.predict(xs, 64);
  CHECK(probe->take_seen() == std::set<Index>{32, 8});  // 3 batches of 64 in two slices, then 8 rows whole
  const Logs l2 = single.evaluate(x, y, 64);
  CHECK(probe->take_seen() == std::set<Index>{32, 8});
  CHECK(same(y1, y2));
  CHECK(l1.at("loss") == l2.at("loss"));
  CHECK(l1.at("accuracy") == l2.at("accuracy"));
  // against one forward of the whole set
  Tensor<float> whole;
  auto st = single.make_state();
  single.forward({&x}, {&whole}, st.get(), false);
  require_close(y2[0], whole);

  SECTION("a layer that does not declare parallel_rows keeps batches whole") {
    probe->rows_ = false;
    probe->take_seen();
    CHECK(same(m.predict(xs, 64), y1));
    CHECK(probe->take_seen() == std::set<Index>{64, 8});
  }
  SECTION("an exception in a slice reaches the caller") {
    probe->fail_below_ = 64;  // the slices, not whole batches
    CHECK_THROWS_AS(m.predict(xs, 64), value_error);
    probe->fail_below_ = 0;
    CHECK(same(m.predict(xs, 64), y1));  // and the model still works
  }
  set_num_threads(0);
}
