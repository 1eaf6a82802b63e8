// Numerical gradient checks (central differences, double precision) for every core layer and
// variant, every activation, and every loss; forward values against the Keras 3 formulas.
#include "gradcheck.hpp"

#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

using namespace graft;
using graft_test::check_layer_gradients;
using graft_test::GradCheckOptions;
using graft_test::random_tensor;

namespace {

Initializer uniform_init(double lo, double hi) {
  return Initializer::named("RandomUniform", {{"minval", lo}, {"maxval", hi}});
}

/// A Dense layer with non-trivial kernel and bias so that every activation regime is reached.
std::shared_ptr<Dense<double>> test_dense(Index units, const std::string& act, bool bias = true, std::string name = {}) {
  auto d = std::make_shared<Dense<double>>(units, act, bias, std::move(name));
  d->kernel_initializer = uniform_init(-1.5, 1.5);
  d->bias_initializer = uniform_init(-1.0, 1.0);
  return d;
}

Tensor<double> rnd(const Shape& s, std::uint64_t seed, double lo = -2.0, double hi = 2.0) {
  Rng r(seed);
  return random_tensor(s, r, lo, hi);
}

/// Every activation name ActivationFn resolves (aliases included).
const std::vector<std::string>& activation_names() {
  static const std::vector<std::string> names = {
      "linear",      "relu",        "relu6",        "selu",        "elu",        "sigmoid",
      "hard_sigmoid", "tanh",       "softmax",      "softplus",    "softsign",   "swish",
      "silu",        "hard_silu",   "hard_swish",   "gelu",        "gelu_approximate", "exponential",
      "leaky_relu",  "mish",        "log_softmax",  "celu",        "log_sigmoid", "hard_tanh",
      "tanh_shrink", "soft_shrink", "hard_shrink",  "sparse_plus", "squareplus", "sparse_sigmoid"};
  return names;
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double softplus(double x) { return std::log1p(std::exp(x)); }

/// Keras 3 element-wise activation formulas (keras/src/activations/activations.py, torch backend).
double keras_activation(const std::string& n, double x) {
  const double kAlpha = 1.6732632423543772848170429916717, kScale = 1.0507009873554804934193349852946;
  if (n == "linear") return x;
  if (n == "relu") return std::max(x, 0.0);
  if (n == "relu6") return std::min(std::max(x, 0.0), 6.0);
  if (n == "selu") return x > 0 ? kScale * x : kScale * kAlpha * (std::exp(x) - 1);
  if (n == "elu") return x > 0 ? x : std::exp(x) - 1;
  if (n == "sigmoid") return sigmoid(x);
  if (n == "hard_sigmoid") return std::min(std::max(x + 3, 0.0), 6.0) / 6.0;
  if (n == "tanh") return std::tanh(x);
  if (n == "softplus") return softplus(x);
  if (n == "softsign") return x / (std::abs(x) + 1);
  if (n == "swish" || n == "silu") return x * sigmoid(x);
  if (n == "hard_silu" || n == "hard_swish") return x * std::min(std::max(x + 3, 0.0), 6.0) / 6.0;
  if (n == "gelu") return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
  if (n == "gelu_approximate")
    return 0.5 * x * (1 + std::tanh(std::sqrt(2.0 / 3.14159265358979323846) * (x + 0.044715 * x * x * x)));
  if (n == "exponential") return std::exp(x);
  if (n == "leaky_relu") return x >= 0 ? x : 0.2 * x;
  if (n == "mish") return x * std::tanh(softplus(x));
  if (n == "celu") return std::max(x, 0.0) + std::min(0.0, std::exp(x) - 1);
  if (n == "log_sigmoid") return -softplus(-x);
  if (n == "hard_tanh") return std::min(std::max(x, -1.0), 1.0);
  if (n == "tanh_shrink") return x - std::tanh(x);
  if (n == "soft_shrink") return x > 0.5 ? x - 0.5 : (x < -0.5 ? x + 0.5 : 0.0);
  if (n == "hard_shrink") return std::abs(x) > 0.5 ? x : 0.0;
  if (n == "sparse_plus") return x <= -1 ? 0.0 : (x >= 1 ? x : 0.25 * (x + 1) * (x + 1));
  if (n == "squareplus") return (x + std::sqrt(x * x + 4)) / 2;
  if (n == "sparse_sigmoid") return x <= -1 ? 0.0 : (x >= 1 ? 1.0 : 0.5 * (x + 1));
  FAIL("no reference for activation " << n);
  return 0;
}

/// keras.layers.ReLU / activations.relu static_call, written out as in Keras 3.
double keras_relu(double x, double negative_slope, double max_value /* < 0: None */, double threshold) {
  double negative_part = 1;
  if (negative_slope != 0.0) {
    if (max_value < 0 && threshold == 0) return x >= 0 ? x : negative_slope * x;  // nn.leaky_relu
    negative_part = threshold != 0 ? std::max(-x + threshold, 0.0) : std::max(-x, 0.0);
  }
  bool clip_max = max_value >= 0;
  if (threshold != 0) {
    x = x * (x > threshold ? 1.0 : 0.0);
  } else if (max_value == 6) {
    x = std::min(std::max(x, 0.0), 6.0);
    clip_max = false;
  } else {
    x = std::max(x, 0.0);
  }
  if (clip_max) x = std::min(std::max(x, 0.0), max_value);
  if (negative_slope != 0.0) x -= negative_slope * negative_part;
  return x;
}

/// Run a unary layer forward on x (inference) and return the output.
Tensor<double> run_forward(Layer<double>& l, const Tensor<double>& x, bool training = false) {
  l.build({x.shape()});
  Tensor<double> y;
  auto st = l.make_state();
  l.forward({&x}, {&y}, st.get(), training);
  return y;
}
Tensor<double> run_forward(Layer<double>& l, const std::vector<Tensor<double>>& xs) {
  std::vector<Shape> shapes;
  In<double> in;
  for (auto& x : xs) {
    shapes.push_back(x.shape());
    in.push_back(&x);
  }
  l.build(shapes);
  Tensor<double> y;
  auto st = l.make_state();
  l.forward(in, {&y}, st.get(), false);
  return y;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Activations
// ---------------------------------------------------------------------------------------------

TEST_CASE("every activation kind has a Keras name that resolves back to it", "[core][activations]") {
  for (int k = ActivationFn::linear; k <= ActivationFn::sparse_sigmoid; ++k) {
    ActivationFn f(static_cast<ActivationFn::Kind>(k));
    CAPTURE(k, f.name());
    ActivationFn g = ActivationFn::from_name(f.name(), "test");
    CHECK(g.kind() == f.kind());
    CHECK(g.param() == f.param());
  }
  // every name in our list resolves (so the Dense sweep below covers every kind)
  std::set<int> kinds;
  for (const auto& n : activation_names()) kinds.insert(ActivationFn::from_name(n, "test").kind());
  CHECK(kinds.size() == static_cast<size_t>(ActivationFn::sparse_sigmoid) + 1);
  // Keras identifiers: null is linear, Keras 3 function objects carry the name in "config"
  CHECK(ActivationFn::from_json(nullptr, "t").kind() == ActivationFn::linear);
  CHECK(ActivationFn::from_json(json{{"module", "keras.activations"}, {"class_name", "function"}, {"config", "relu"}}, "t")
            .kind() == ActivationFn::relu);
  CHECK(ActivationFn::from_name("ReLU", "t").kind() == ActivationFn::relu);
}

TEST_CASE("every element-wise activation matches its Keras 3 formula", "[core][activations]") {
  const std::vector<double> xs = {-25, -7, -3.5, -3, -2.2, -1, -0.7, -0.5, -0.3, 0, 0.2, 0.5, 0.9, 1, 1.7, 3, 4.5, 6, 6.5, 25};
  for (const auto& n : activation_names()) {
    if (n == "softmax" || n == "log_softmax") continue;
    ActivationFn f = ActivationFn::from_name(n, "test");
    std::vector<double> y(xs.size());
    f.forward(xs.data(), y.data(), static_cast<Index>(xs.size()), static_cast<Index>(xs.size()));
    for (size_t i = 0; i < xs.size(); ++i) {
      if (n == "exponential" && std::abs(xs[i]) > 20) continue;
      double want = keras_activation(n, xs[i]);
      INFO(n << "(" << xs[i] << ") = " << y[i] << ", Keras " << want);
      CHECK(std::abs(y[i] - want) <= 1e-12 * std::max(1.0, std::abs(want)));
    }
    // float gives the same values to float precision
    std::vector<float> xf(xs.begin(), xs.end()), yf(xs.size());
    f.forward(xf.data(), yf.data(), static_cast<Index>(xs.size()), static_cast<Index>(xs.size()));
    for (size_t i = 0; i < xs.size(); ++i) {
      if (n == "exponential" && std::abs(xs[i]) > 20) continue;
      INFO(n << "<float>(" << xs[i] << ")");
      CHECK(yf[i] == Approx(y[i]).epsilon(2e-6).margin(1e-6));
    }
  }
}

TEST_CASE("softmax and log_softmax normalise each row of the last axis", "[core][activations]") {
  const std::vector<double> z = {1, 2, 3, -1, 0, 1000};
  std::vector<double> y(6), ly(6);
  ActivationFn::from_name("softmax", "t").forward(z.data(), y.data(), 6, 3);
  ActivationFn::from_name("log_softmax", "t").forward(z.data(), ly.data(), 6, 3);
  double s0 = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  CHECK(y[0] == Approx(std::exp(1.0) / s0));
  CHECK(y[2] == Approx(std::exp(3.0) / s0));
  CHECK(ly[1] == Approx(2.0 - std::log(s0)));
  CHECK(y[5] == Approx(1.0));  // no overflow
  CHECK(y[3] == 0.0);
  CHECK(ly[5] == Approx(0.0).margin(1e-12));
  CHECK(ly[3] == Approx(-1001.0));
}

TEST_CASE("Dense gradients match finite differences for every activation", "[core][gradients]") {
  for (const auto& n : activation_names()) {
    INFO("activation " << n);
    auto d = test_dense(5, n);
    // wide inputs reach the saturated regimes (relu6 > 6, hard_sigmoid beyond +-3); exponential
    // stays moderate so that rounding in the loss does not swamp the finite differences
    const double r = n == "exponential" ? 1.0 : 3.0;
    check_layer_gradients(*d, {rnd({3, 4}, 11, -r, r)});
  }
}

TEST_CASE("Dense without bias has only a kernel and exact gradients", "[core][gradients]") {
  auto d = test_dense(3, "tanh", false);
  check_layer_gradients(*d, {rnd({4, 6}, 12)});
  REQUIRE(d->weights().size() == 1);
  CHECK(d->weights()[0]->name == "kernel");
  CHECK(d->bias() == nullptr);
  // y = x . W exactly
  Tensor<double> x = rnd({2, 6}, 13);
  auto lin = test_dense(3, "linear", false);
  Tensor<double> y = run_forward(*lin, x);
  const Tensor<double>& W = lin->kernel().value;
  for (Index i = 0; i < 2; ++i)
    for (Index j = 0; j < 3; ++j) {
      double s = 0;
      for (Index k = 0; k < 6; ++k) s += x[i * 6 + k] * W[k * 3 + j];
      CHECK(y[i * 3 + j] == Approx(s).epsilon(1e-12));
    }
}

TEST_CASE("Dense on rank-3 input acts on the last axis", "[core][gradients]") {
  SECTION("linear") { check_layer_gradients(*test_dense(4, "linear"), {rnd({2, 3, 5}, 14)}); }
  SECTION("softmax over the last axis") { check_layer_gradients(*test_dense(4, "softmax"), {rnd({2, 3, 5}, 15)}); }
  SECTION("elu") { check_layer_gradients(*test_dense(4, "elu"), {rnd({2, 3, 5}, 16)}); }
  SECTION("output shape keeps the leading axes") {
    auto d = test_dense(7, "relu");
    Tensor<double> x = rnd({2, 3, 5}, 17);
    Tensor<double> y = run_forward(*d, x);
    CHECK(y.shape() == Shape{2, 3, 7});
    // each (b, t) row equals Dense on that row alone
    Tensor<double> row({1, 5});
    std::copy(x.data() + 5 * 4, x.data() + 5 * 5, row.data());
    Tensor<double> yr = run_forward(*d, row);
    for (Index j = 0; j < 7; ++j) CHECK(yr[j] == Approx(y[4 * 7 + j]).epsilon(1e-12));
  }
}

TEST_CASE("the Activation layer applies the named function with exact gradients", "[core][gradients]") {
  for (const char* n : {"tanh", "softmax", "gelu", "selu", "log_softmax", "mish", "hard_sigmoid"}) {
    INFO(n);
    auto a = make<Activation, double>(n);
    Tensor<double> x = rnd({2, 3, 4}, 21, -4, 4);
    check_layer_gradients(*a, {x});
    Tensor<double> y = run_forward(*a, x);
    if (std::string(n) != "softmax" && std::string(n) != "log_softmax")
      for (Index i = 0; i < x.size(); ++i) CHECK(y[i] == Approx(keras_activation(n, x[i])).epsilon(1e-12).margin(1e-14));
  }
}

TEST_CASE("ReLU layer: max_value, negative_slope and threshold follow Keras", "[core][gradients]") {
  struct V { double max_value, slope, threshold; };
  const std::vector<V> variants = {{-1, 0, 0},   {6, 0, 0},     {0.8, 0, 0},   {-1, 0.1, 0},   {-1, 0, 0.5},
                                   {-1, 0, -0.5}, {6, 0.2, 0},  {1.2, 0.3, 0.4}, {-1, 0.25, -0.7}, {2.0, 0.1, -0.4}};
  for (const auto& v : variants) {
    INFO("max_value " << v.max_value << " negative_slope " << v.slope << " threshold " << v.threshold);
    auto r = make<ReLU, double>(v.max_value, v.slope, v.threshold);
    Tensor<double> x = rnd({4, 25}, 22, -3, 8);
    check_layer_gradients(*r, {x});
    Tensor<double> y = run_forward(*r, x);
    for (Index i = 0; i < x.size(); ++i) {
      INFO("x = " << x[i]);
      CHECK(y[i] == Approx(keras_relu(x[i], v.slope, v.max_value, v.threshold)).margin(1e-15));
    }
  }
}

TEST_CASE("LeakyReLU and ELU layers", "[core][gradients]") {
  Tensor<double> x = rnd({3, 7}, 23, -3, 3);
  SECTION("LeakyReLU default slope 0.3") {
    auto l = make<LeakyReLU, double>();
    check_layer_gradients(*l, {x});
    Tensor<double> y = run_forward(*l, x);
    for (Index i = 0; i < x.size(); ++i) CHECK(y[i] == Approx(x[i] > 0 ? x[i] : 0.3 * x[i]));
  }
  SECTION("LeakyReLU slope 0.05") {
    auto l = make<LeakyReLU, double>(0.05);
    check_layer_gradients(*l, {x});
    Tensor<double> y = run_forward(*l, x);
    for (Index i = 0; i < x.size(); ++i) CHECK(y[i] == Approx(x[i] > 0 ? x[i] : 0.05 * x[i]));
  }
  for (double alpha : {1.0, 0.5, 2.0, 0.0}) {
    DYNAMIC_SECTION("ELU alpha " << alpha) {
      auto l = make<ELU, double>(alpha);
      check_layer_gradients(*l, {x});
      Tensor<double> y = run_forward(*l, x);
      for (Index i = 0; i < x.size(); ++i) CHECK(y[i] == Approx(x[i] > 0 ? x[i] : alpha * (std::exp(x[i]) - 1)).margin(1e-15));
    }
  }
}

TEST_CASE("PReLU learns alpha per position, shared along shared_axes", "[core][gradients]") {
  struct V { std::vector<int> shared; Shape alpha_shape; };
  const std::vector<V> variants = {{{}, {3, 4}}, {{1}, {1, 4}}, {{2}, {3, 1}}, {{1, 2}, {1, 1}}};
  for (const auto& v : variants) {
    INFO("shared_axes size " << v.shared.size() << (v.shared.empty() ? 0 : v.shared[0]));
    auto p = make<PReLU, double>(v.shared);
    p->alpha_initializer = uniform_init(0.1, 0.6);
    Tensor<double> x = rnd({2, 3, 4}, 24);
    check_layer_gradients(*p, {x});
    REQUIRE(p->alpha().value.shape() == v.alpha_shape);
    Tensor<double> y = run_forward(*p, x);
    const Tensor<double>& a = p->alpha().value;
    for (Index b = 0; b < 2; ++b)
      for (Index i = 0; i < 3; ++i)
        for (Index c = 0; c < 4; ++c) {
          Index ai = (a.dim(0) == 1 ? 0 : i) * a.dim(1) + (a.dim(1) == 1 ? 0 : c);
          double xv = x[(b * 3 + i) * 4 + c];
          CHECK(y[(b * 3 + i) * 4 + c] == Approx(xv > 0 ? xv : a[ai] * xv));
        }
  }
}

TEST_CASE("Softmax layer normalises along any axis", "[core][gradients]") {
  for (int axis : {-1, 0, 1, 2, -2}) {
    INFO("axis " << axis);
    auto s = make<Softmax, double>(axis);
    Tensor<double> x = rnd({2, 3, 4}, 25, -3, 3);
    check_layer_gradients(*s, {x});
    Tensor<double> y = run_forward(*s, x);
    const int a = axis < 0 ? axis + 3 : axis;
    const Shape sh{2, 3, 4};
    // sum along the axis is 1 everywhere, and y is proportional to exp(x) along it
    for (Index i0 = 0; i0 < (a == 0 ? 1 : 2); ++i0)
      for (Index i1 = 0; i1 < (a == 1 ? 1 : 3); ++i1)
        for (Index i2 = 0; i2 < (a == 2 ? 1 : 4); ++i2) {
          double s = 0, e = 0;
          for (Index k = 0; k < sh[static_cast<size_t>(a)]; ++k) {
            Index idx[3] = {i0, i1, i2};
            idx[a] = k;
            Index f = (idx[0] * 3 + idx[1]) * 4 + idx[2];
            s += y[f];
            e += std::exp(x[f]);
          }
          CHECK(s == Approx(1.0));
          Index f0 = (i0 * 3 + i1) * 4 + i2;
          CHECK(y[f0] == Approx(std::exp(x[f0]) / e));
        }
  }
}

namespace {
/// Dropout whose mask is the same at every forward call (its generator is reseeded), so a
/// training-mode finite-difference check sees one fixed function.
template <class T>
class FixedMaskDropout : public Dropout<T> {
 public:
  using Dropout<T>::Dropout;
  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState* st, bool training) override {
    this->rng_.seed(4242);
    Dropout<T>::forward1(x, y, st, training);
  }
};
}  // namespace

TEST_CASE("Dropout: identity in inference, inverted dropout with one mask per step in training", "[core][gradients]") {
  SECTION("inference: exact identity and identity gradient") {
    auto d = make<Dropout, double>(0.4);
    Tensor<double> x = rnd({3, 5}, 31);
    GradCheckOptions o;
    o.training = false;
    check_layer_gradients(*d, {x}, o);
    CHECK(run_forward(*d, x, false) == x);
  }
  SECTION("training with the mask held fixed: gradient is the mask") {
    auto d = std::make_shared<FixedMaskDropout<double>>(0.3);
    Tensor<double> x = rnd({6, 10}, 32);
    check_layer_gradients(*d, {x});
    Tensor<double> y = run_forward(*d, x, true);
    int zeros = 0;
    for (Index i = 0; i < x.size(); ++i) {
      if (y[i] == 0) ++zeros;
      else CHECK(y[i] == Approx(x[i] / 0.7).epsilon(1e-15));
    }
    CHECK(zeros > 0);
    CHECK(zeros < x.size());
  }
  SECTION("training: drop rate, scaling, backward uses the forward mask, a fresh mask per step") {
    Dropout<float> d(0.25, "drop", {}, 5);
    Tensor<float> x({200, 50});
    Rng r(3);
    for (auto& v : x) v = static_cast<float>(r.uniform(0.5, 1.5));
    auto st = d.make_state();
    Tensor<float> y, y2, dy({200, 50}), dx;
    for (auto& v : dy) v = static_cast<float>(r.uniform(-1, 1));
    d.forward({&x}, {&y}, st.get(), true);
    Index zeros = 0;
    const float scale = static_cast<float>(1.0 / 0.75);
    for (Index i = 0; i < x.size(); ++i) {
      if (y[i] == 0.0f) ++zeros;
      else REQUIRE(y[i] == x[i] * scale);
    }
    CHECK(static_cast<double>(zeros) / static_cast<double>(x.size()) == Approx(0.25).margin(0.02));
    d.backward({&x}, {&y}, {&dy}, {&dx}, st.get());
    for (Index i = 0; i < x.size(); ++i) REQUIRE(dx[i] == (y[i] == 0.0f ? 0.0f : dy[i] * scale));
    d.forward({&x}, {&y2}, st.get(), true);
    CHECK(y2 != y);
    // the same seed gives the same sequence of masks
    Dropout<float> e(0.25, "drop2", {}, 5);
    auto st2 = e.make_state();
    Tensor<float> z;
    e.forward({&x}, {&z}, st2.get(), true);
    CHECK(z == y);
    // inference is the identity
    d.forward({&x}, {&z}, st.get(), false);
    CHECK(z == x);
  }
  SECTION("noise_shape broadcasts one draw along the axes of size 1") {
    Dropout<double> d(0.5, "drop_ns", Shape{-1, 1, 4}, 9);
    Tensor<double> x = rnd({3, 5, 4}, 33, 0.5, 1.5);
    auto st = d.make_state();
    Tensor<double> y;
    d.forward({&x}, {&y}, st.get(), true);
    for (Index b = 0; b < 3; ++b)
      for (Index c = 0; c < 4; ++c) {
        bool kept = y[(b * 5 + 0) * 4 + c] != 0;
        for (Index t = 0; t < 5; ++t) {
          Index f = (b * 5 + t) * 4 + c;
          CHECK((y[f] != 0) == kept);
          if (kept) CHECK(y[f] == Approx(2 * x[f]));
        }
      }
  }
}

TEST_CASE("Flatten and Reshape move elements without changing them", "[core][gradients]") {
  Tensor<double> x = rnd({2, 3, 4}, 41);
  SECTION("Flatten") {
    auto f = make<Flatten, double>();
    check_layer_gradients(*f, {x});
    Tensor<double> y = run_forward(*f, x);
    CHECK(y.shape() == Shape{2, 12});
    CHECK(std::equal(x.begin(), x.end(), y.begin()));
    CHECK(f->compute_output_shapes({{-1, 3, 4}})[0] == Shape{-1, 12});
  }
  SECTION("Reshape to a known shape") {
    auto r = make<Reshape, double>(Shape{4, 3});
    check_layer_gradients(*r, {x});
    CHECK(run_forward(*r, x).shape() == Shape{2, 4, 3});
  }
  SECTION("Reshape with one -1") {
    auto r = make<Reshape, double>(Shape{-1, 2});
    check_layer_gradients(*r, {x});
    Tensor<double> y = run_forward(*r, x);
    CHECK(y.shape() == Shape{2, 6, 2});
    CHECK(std::equal(x.begin(), x.end(), y.begin()));
    CHECK(r->compute_output_shapes({{-1, 3, 4}})[0] == Shape{-1, 6, 2});
  }
}

TEST_CASE("element-wise merge layers with equal shapes", "[core][gradients]") {
  std::vector<Tensor<double>> three = {rnd({2, 3, 4}, 51), rnd({2, 3, 4}, 52), rnd({2, 3, 4}, 53)};
  std::vector<Tensor<double>> two = {three[0], three[1]};
  auto value = [&](Layer<double>& l, const std::vector<Tensor<double>>& xs) { return run_forward(l, xs); };
  SECTION("Add") {
    auto l = make<Add, double>();
    check_layer_gradients(*l, three);
    Tensor<double> y = value(*l, three);
    for (Index i = 0; i < y.size(); ++i) CHECK(y[i] == Approx(three[0][i] + three[1][i] + three[2][i]));
  }
  SECTION("Subtract") {
    auto l = make<Subtract, double>();
    check_layer_gradients(*l, two);
    Tensor<double> y = value(*l, two);
    for (Index i = 0; i < y.size(); ++i) CHECK(y[i] == Approx(two[0][i] - two[1][i]));
  }
  SECTION("Multiply") {
    auto l = make<Multiply, double>();
    check_layer_gradients(*l, three);
    Tensor<double> y = value(*l, three);
    for (Index i = 0; i < y.size(); ++i) CHECK(y[i] == Approx(three[0][i] * three[1][i] * three[2][i]));
  }
  SECTION("Average") {
    auto l = make<Average, double>();
    check_layer_gradients(*l, three);
    Tensor<double> y = value(*l, three);
    for (Index i = 0; i < y.size(); ++i) CHECK(y[i] == Approx((three[0][i] + three[1][i] + three[2][i]) / 3));
  }
  SECTION("Maximum") {
    auto l = make<Maximum, double>();
    check_layer_gradients(*l, three);
    Tensor<double> y = value(*l, three);
    for (Index i = 0; i < y.size(); ++i) CHECK(y[i] == std::max({three[0][i], three[1][i], three[2][i]}));
  }
  SECTION("Minimum") {
    auto l = make<Minimum, double>();
    check_layer_gradients(*l, three);
    Tensor<double> y = value(*l, three);
    for (Index i = 0; i < y.size(); ++i) CHECK(y[i] == std::min({three[0][i], three[1][i], three[2][i]}));
  }
}

TEST_CASE("element-wise merge layers broadcast like Keras", "[core][gradients]") {
  // Same rank: numpy broadcasting over axes of size 1.
  std::vector<Tensor<double>> xs = {rnd({2, 3, 4}, 61), rnd({2, 1, 4}, 62), rnd({2, 3, 1}, 63)};
  auto at = [](const Tensor<double>& t, Index b, Index i, Index c) {
    const Shape& s = t.shape();
    return t[((b) * s[1] + (s[1] == 1 ? 0 : i)) * s[2] + (s[2] == 1 ? 0 : c)];
  };
  SECTION("Add") {
    auto l = make<Add, double>();
    check_layer_gradients(*l, xs);
    Tensor<double> y = run_forward(*l, xs);
    REQUIRE(y.shape() == Shape{2, 3, 4});
    for (Index b = 0; b < 2; ++b)
      for (Index i = 0; i < 3; ++i)
        for (Index c = 0; c < 4; ++c)
          CHECK(y[(b * 3 + i) * 4 + c] == Approx(at(xs[0], b, i, c) + at(xs[1], b, i, c) + at(xs[2], b, i, c)));
  }
  SECTION("Subtract") { check_layer_gradients(*make<Subtract, double>(), {xs[1], xs[2]}); }
  SECTION("Multiply") {
    auto l = make<Multiply, double>();
    check_layer_gradients(*l, xs);
    Tensor<double> y = run_forward(*l, xs);
    for (Index b = 0; b < 2; ++b)
      for (Index i = 0; i < 3; ++i)
        for (Index c = 0; c < 4; ++c)
          CHECK(y[(b * 3 + i) * 4 + c] == Approx(at(xs[0], b, i, c) * at(xs[1], b, i, c) * at(xs[2], b, i, c)));
  }
  SECTION("Average") { check_layer_gradients(*make<Average, double>(), xs); }
  SECTION("Maximum") { check_layer_gradients(*make<Maximum, double>(), xs); }
  SECTION("Minimum") { check_layer_gradients(*make<Minimum, double>(), xs); }
  SECTION("a lower-rank input gains axes after the batch axis (keras Merge._reshape_required)") {
    // Keras expands (batch, 4) to (batch, 1, 4) against (batch, 3, 4).
    std::vector<Tensor<double>> ys = {rnd({3, 5, 4}, 64), rnd({3, 4}, 65)};
    auto l = make<Add, double>();
    CHECK(l->compute_output_shapes({{-1, 5, 4}, {-1, 4}})[0] == Shape{-1, 5, 4});
    Tensor<double> y = run_forward(*l, ys);
    REQUIRE(y.shape() == Shape{3, 5, 4});
    for (Index b = 0; b < 3; ++b)
      for (Index i = 0; i < 5; ++i)
        for (Index c = 0; c < 4; ++c) CHECK(y[(b * 5 + i) * 4 + c] == Approx(ys[0][(b * 5 + i) * 4 + c] + ys[1][b * 4 + c]));
    check_layer_gradients(*l, ys);
    check_layer_gradients(*make<Multiply, double>(), ys);
  }
}

TEST_CASE("Concatenate joins along every axis", "[core][gradients]") {
  struct V { int axis; Shape a, b, out; };
  const std::vector<V> variants = {{-1, {2, 3, 4}, {2, 3, 2}, {2, 3, 6}}, {2, {2, 3, 4}, {2, 3, 1}, {2, 3, 5}},
                                   {1, {2, 3, 4}, {2, 1, 4}, {2, 4, 4}},  {-2, {2, 2, 4}, {2, 3, 4}, {2, 5, 4}},
                                   {0, {2, 3, 4}, {1, 3, 4}, {3, 3, 4}}};
  for (const auto& v : variants) {
    INFO("axis " << v.axis);
    auto l = make<Concatenate, double>(v.axis);
    std::vector<Tensor<double>> xs = {rnd(v.a, 71), rnd(v.b, 72), rnd(v.a, 73)};
    check_layer_gradients(*l, xs);
    Tensor<double> y = run_forward(*l, xs);
    Shape want = v.out;
    want[static_cast<size_t>(v.axis < 0 ? v.axis + 3 : v.axis)] += v.a[static_cast<size_t>(v.axis < 0 ? v.axis + 3 : v.axis)];
    REQUIRE(y.shape() == want);
    // element (i0, i1, i2) of y comes from the input whose slab along the axis holds it
    const int a = v.axis < 0 ? v.axis + 3 : v.axis;
    for (Index f = 0; f < y.size(); ++f) {
      Index idx[3] = {f / (want[1] * want[2]), (f / want[2]) % want[1], f % want[2]};
      Index k = idx[a];
      size_t which = 0;
      while (k >= xs[which].shape()[static_cast<size_t>(a)]) k -= xs[which++].shape()[static_cast<size_t>(a)];
      idx[a] = k;
      const Shape& s = xs[which].shape();
      CHECK(y[f] == xs[which][(idx[0] * s[1] + idx[1]) * s[2] + idx[2]]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Models used as layers
// ---------------------------------------------------------------------------------------------

TEST_CASE("a nested Functional with a shared layer and fan-out back-propagates exactly", "[core][gradients]") {
  auto x = Input<double>({4});
  auto d1 = test_dense(3, "tanh", true, "g_d1");
  auto d2 = test_dense(3, "sigmoid", true, "g_d2");
  auto h = (*d1)(x);
  auto a = (*d2)(h);                                          // shared layer, first call
  auto t = (*make<Activation, double>("softplus"))(h);        // h fans out three ways
  auto b = (*d2)(t);                                          // shared layer, second call
  auto s = (*make<Add, double>())(std::vector<KerasTensor<double>>{a, b, h});
  auto inner = std::make_shared<Model<double>>(x, s, "g_inner");
  REQUIRE(d2->inbound_nodes().size() == 2);

  SECTION("the model as a layer") { check_layer_gradients(*inner, {rnd({5, 4}, 81)}); }
  SECTION("inside another model, called twice (each call keeps its own state)") {
    auto y = Input<double>({4});
    auto u = (*inner)(y);
    auto v = (*inner)((*test_dense(4, "elu"))(y));
    auto o = (*make<Concatenate, double>())(std::vector<KerasTensor<double>>{u, v});
    Model<double> outer(y, o);
    check_layer_gradients(outer, {rnd({5, 4}, 82)});
  }
  SECTION("Sequential inside Functional inside Sequential") {
    auto seq = std::make_shared<Sequential<double>>("g_seq");
    seq->add(std::make_shared<InputLayer<double>>(Shape{3}));
    seq->add(test_dense(4, "selu"));
    seq->add(make<Dropout, double>(0.5));
    seq->add(test_dense(3, "linear"));
    auto z = Input<double>({4});
    auto f = std::make_shared<Model<double>>(z, (*seq)((*inner)(z)));
    Sequential<double> top;
    top.add(std::make_shared<InputLayer<double>>(Shape{4}));
    top.add(f);
    top.add(test_dense(2, "softmax"));
    GradCheckOptions o;
    o.training = false;  // dropout off
    check_layer_gradients(top, {rnd({3, 4}, 83)}, o);
  }
}

TEST_CASE("a model with several inputs and outputs back-propagates to every input", "[core][gradients]") {
  auto x1 = Input<double>({3});
  auto x2 = Input<double>({2, 3});
  auto h1 = (*test_dense(4, "tanh"))(x1);
  auto h2 = (*make<Flatten, double>())((*test_dense(2, "gelu"))(x2));
  auto m = (*make<Multiply, double>())(std::vector<KerasTensor<double>>{h1, h2});
  auto o1 = (*test_dense(2, "softmax"))(m);
  auto o2 = (*make<Subtract, double>())(std::vector<KerasTensor<double>>{h1, m});
  Model<double> model({x1, x2}, {o1, o2, h2});
  check_layer_gradients(model, {rnd({4, 3}, 91), rnd({4, 2, 3}, 92)});
}

// ---------------------------------------------------------------------------------------------
// Losses
// ---------------------------------------------------------------------------------------------

namespace {
/// Compare Loss::compute's gradient (times `scale`) with central differences of its value.
void check_loss_gradient(const Loss<double>& loss, const Tensor<double>& t, Tensor<double> p, double scale = 1.0) {
  Tensor<double> g;
  double v = loss.compute(t, p, &g, scale);
  CHECK(v == Approx(loss.compute(t, p, nullptr, 1.0)).epsilon(1e-14));
  REQUIRE(g.shape() == p.shape());
  const double eps = 1e-6;
  for (Index i = 0; i < p.size(); ++i) {
    double keep = p[i];
    p[i] = keep + eps;
    double lp = loss.compute(t, p, nullptr, 1.0);
    p[i] = keep - eps;
    double lm = loss.compute(t, p, nullptr, 1.0);
    p[i] = keep;
    double num = scale * (lp - lm) / (2 * eps);
    INFO(loss.name() << " d/dp[" << i << "] at p=" << keep << " t=" << t[std::min(i, t.size() - 1)] << ": analytic "
                     << g[i] << ", numeric " << num);
    CHECK(std::abs(g[i] - num) <= 1e-6 * std::max(1.0, std::abs(num)));
  }
}

Tensor<double> one_hot_rows(const std::vector<int>& labels, Index C) {
  Tensor<double> t({static_cast<Index>(labels.size()), C}, 0.0);
  for (size_t r = 0; r < labels.size(); ++r) t[static_cast<Index>(r) * C + labels[r]] = 1.0;
  return t;
}
}  // namespace

TEST_CASE("every loss gradient matches finite differences", "[core][losses][gradients]") {
  const Shape s{4, 3};
  SECTION("regression losses") {
    Tensor<double> t = rnd(s, 101, -2, 2), p = rnd(s, 102, -2, 2);
    for (const char* n : {"mse", "mae", "huber", "log_cosh"}) {
      INFO(n);
      check_loss_gradient(*make_loss<double>(n), t, p);
      check_loss_gradient(*make_loss<double>(n), t, p, 2.5);
    }
    check_loss_gradient(*make_loss<double>(json{{"class_name", "Huber"}, {"config", {{"delta", 0.4}}}}), t, p);
  }
  SECTION("mape (targets away from zero)") {
    Tensor<double> t = rnd(s, 103, 0.5, 2), p = rnd(s, 104, -2, 2);
    t[1] = -t[1];
    check_loss_gradient(*make_loss<double>("mape"), t, p);
  }
  SECTION("msle and poisson (positive predictions)") {
    Tensor<double> t = rnd(s, 105, 0, 3), p = rnd(s, 106, 0.1, 3);
    check_loss_gradient(*make_loss<double>("msle"), t, p);
    check_loss_gradient(*make_loss<double>("poisson"), t, p);
  }
  SECTION("hinge and squared_hinge with {0,1} and {-1,1} labels") {
    Tensor<double> p = rnd(s, 107, -2, 2);
    Tensor<double> t01(s), tpm(s);
    for (Index i = 0; i < t01.size(); ++i) {
      t01[i] = (i % 3 == 0) ? 1 : 0;
      tpm[i] = (i % 2 == 0) ? 1 : -1;
    }
    for (const char* n : {"hinge", "squared_hinge"}) {
      INFO(n);
      check_loss_gradient(*make_loss<double>(n), t01, p);
      check_loss_gradient(*make_loss<double>(n), tpm, p);
    }
  }
  SECTION("kl_divergence") {
    Tensor<double> t = rnd(s, 108, 0.05, 1), p = rnd(s, 109, 0.05, 1);
    check_loss_gradient(*make_loss<double>("kld"), t, p);
  }
  SECTION("binary_crossentropy: probabilities, logits, label smoothing") {
    Tensor<double> p = rnd(s, 110, 0.05, 0.95), z = rnd(s, 111, -4, 4);
    Tensor<double> t(s), soft = rnd(s, 112, 0, 1);
    for (Index i = 0; i < t.size(); ++i) t[i] = (i * 7) % 3 == 0 ? 1 : 0;
    auto bce = [](bool logits, double ls) {
      return make_loss<double>(json{{"class_name", "BinaryCrossentropy"},
                                    {"config", {{"from_logits", logits}, {"label_smoothing", ls}}}});
    };
    check_loss_gradient(*make_loss<double>("binary_crossentropy"), t, p);
    check_loss_gradient(*make_loss<double>("binary_crossentropy"), soft, p, 0.5);
    check_loss_gradient(*bce(true, 0.0), t, z);
    check_loss_gradient(*bce(true, 0.0), soft, z);
    check_loss_gradient(*bce(false, 0.2), t, p);
    check_loss_gradient(*bce(true, 0.1), t, z);
  }
  SECTION("categorical_crossentropy: probabilities (normalised inside), logits, label smoothing") {
    Tensor<double> p = rnd(s, 113, 0.05, 1.0), z = rnd(s, 114, -3, 3);  // rows of p do not sum to 1
    Tensor<double> t = one_hot_rows({0, 2, 1, 2}, 3), soft = rnd(s, 115, 0, 1);
    auto cce = [](bool logits, double ls) {
      return make_loss<double>(json{{"class_name", "CategoricalCrossentropy"},
                                    {"config", {{"from_logits", logits}, {"label_smoothing", ls}}}});
    };
    check_loss_gradient(*make_loss<double>("categorical_crossentropy"), t, p);
    check_loss_gradient(*make_loss<double>("categorical_crossentropy"), soft, p, 3.0);
    check_loss_gradient(*cce(true, 0.0), t, z);
    check_loss_gradient(*cce(true, 0.0), soft, z);
    check_loss_gradient(*cce(false, 0.1), t, p);
    check_loss_gradient(*cce(true, 0.2), t, z);
  }
  SECTION("sparse_categorical_crossentropy: labels (N,) and (N, 1), probabilities and logits") {
    Tensor<double> p = rnd(s, 116, 0.05, 1.0), z = rnd(s, 117, -3, 3);
    Tensor<double> lab({4}, {2, 0, 1, 1}), lab1({4, 1}, {2, 0, 1, 1});
    auto scce_logits = make_loss<double>(json{{"class_name", "SparseCategoricalCrossentropy"}, {"config", {{"from_logits", true}}}});
    check_loss_gradient(*make_loss<double>("sparse_categorical_crossentropy"), lab, p);
    check_loss_gradient(*make_loss<double>("sparse_categorical_crossentropy"), lab1, p);
    check_loss_gradient(*scce_logits, lab, z);
    check_loss_gradient(*scce_logits, lab1, z, 0.25);
  }
  SECTION("rank-3 outputs average over every position") {
    Tensor<double> t = rnd({2, 3, 4}, 118), p = rnd({2, 3, 4}, 119);
    check_loss_gradient(*make_loss<double>("mse"), t, p);
    double want = 0;
    for (Index i = 0; i < t.size(); ++i) want += (p[i] - t[i]) * (p[i] - t[i]);
    CHECK(make_loss<double>("mse")->compute(t, p, nullptr, 1.0) == Approx(want / 24));
  }
}

TEST_CASE("loss values follow the Keras 3 formulas (torch backend clipping at 1e-7)", "[core][losses]") {
  auto L = [](const char* n, const Tensor<double>& t, const Tensor<double>& p) {
    return make_loss<double>(n)->compute(t, p, nullptr, 1.0);
  };
  const double eps = 1e-7;
  SECTION("regression") {
    Tensor<double> t({2, 2}, {1, -2, 0.5, 3}), p({2, 2}, {1.5, 0, 0.5, 1});
    CHECK(L("mse", t, p) == Approx((0.25 + 4 + 0 + 4) / 4));
    CHECK(L("mae", t, p) == Approx((0.5 + 2 + 0 + 2) / 4));
    CHECK(L("mape", t, p) == Approx(100.0 * (0.5 / 1 + 2 / 2.0 + 0 + 2 / 3.0) / 4));
    // huber, delta 1: 0.5 e^2 inside, |e| - 0.5 outside
    CHECK(L("huber", t, p) == Approx((0.125 + 1.5 + 0 + 1.5) / 4));
    CHECK(L("log_cosh", t, p) ==
          Approx((std::log(std::cosh(0.5)) + 2 * std::log(std::cosh(2.0)) + 0) / 4));
    Tensor<double> tp({1, 3}, {0, 1, 4}), pp({1, 3}, {-1, 2, 3});  // msle clips both at eps
    double l1 = std::log(eps + 1) - std::log(eps + 1), l2 = std::log(3.0) - std::log(2.0), l3 = std::log(4.0) - std::log(5.0);
    CHECK(L("msle", tp, pp) == Approx((l1 * l1 + l2 * l2 + l3 * l3) / 3));
    Tensor<double> pq({1, 3}, {0.5, 2, 3});
    CHECK(L("poisson", tp, pq) ==
          Approx(((0.5 - 0) + (2 - std::log(2 + eps)) + (3 - 4 * std::log(3 + eps))) / 3));
    CHECK(L("mape", Tensor<double>({1, 1}, {0.0}), Tensor<double>({1, 1}, {1e-9})) == Approx(100 * 1e-9 / eps));
  }
  SECTION("hinge family converts {0,1} labels to {-1,1}") {
    Tensor<double> t({1, 4}, {0, 1, 1, 0}), p({1, 4}, {0.3, 0.4, 2, -3});
    // labels -1, 1, 1, -1: max(0, 1 - t p) = 1.3, 0.6, 0, 0
    CHECK(L("hinge", t, p) == Approx((1.3 + 0.6) / 4));
    CHECK(L("squared_hinge", t, p) == Approx((1.69 + 0.36) / 4));
    Tensor<double> tr({1, 4}, {-1, 1, 0.5, -1});  // not binary: used as given
    CHECK(L("hinge", tr, p) == Approx((1.3 + 0.6 + 0 + 0) / 4));
  }
  SECTION("kl_divergence clips both sides to [eps, 1] and sums over the last axis") {
    Tensor<double> t({2, 2}, {0.2, 0.8, 0, 1}), p({2, 2}, {0.5, 0.5, 0.3, 0.7});
    double r0 = 0.2 * std::log(0.2 / 0.5) + 0.8 * std::log(0.8 / 0.5);
    double r1 = eps * std::log(eps / 0.3) + 1 * std::log(1 / 0.7);
    CHECK(L("kld", t, p) == Approx((r0 + r1) / 2));
  }
  SECTION("binary_crossentropy clips p, then -(t log p + (1-t) log(1-p))") {
    Tensor<double> t({2, 2}, {1, 0, 1, 0}), p({2, 2}, {0.9, 0.2, 0.0, 1.0});
    double big = -std::log(eps);
    CHECK(L("binary_crossentropy", t, p) ==
          Approx((-std::log(0.9) - std::log(0.8) + big + big) / 4).epsilon(1e-9));
    // label smoothing 0.2: t -> t * 0.8 + 0.1
    auto ls = make_loss<double>(json{{"class_name", "BinaryCrossentropy"}, {"config", {{"label_smoothing", 0.2}}}});
    Tensor<double> t1({1, 2}, {1, 0}), p1({1, 2}, {0.7, 0.4});
    double want = (-(0.9 * std::log(0.7) + 0.1 * std::log(0.3)) - (0.1 * std::log(0.4) + 0.9 * std::log(0.6))) / 2;
    CHECK(ls->compute(t1, p1, nullptr, 1.0) == Approx(want));
    // from_logits: -(t log s(z) + (1-t) log(1-s(z)))
    auto lg = make_loss<double>(json{{"class_name", "BinaryCrossentropy"}, {"config", {{"from_logits", true}}}});
    Tensor<double> z({1, 2}, {2.0, -30.0});
    CHECK(lg->compute(t1, z, nullptr, 1.0) == Approx((-std::log(sigmoid(2.0)) - std::log(1 - sigmoid(-30.0))) / 2));
    // float: p = 0 for a positive label gives -log(1e-7) = 16.118 (torch clipping), not inf
    Tensor<float> tf({1, 1}, {1.0f}), pf({1, 1}, {0.0f});
    CHECK(make_loss<float>("binary_crossentropy")->compute(tf, pf, nullptr, 1.0f) == Approx(16.1181).epsilon(1e-4));
  }
  SECTION("categorical_crossentropy normalises p to sum 1, clips, then -sum t log p") {
    Tensor<double> t = one_hot_rows({1, 0, 2}, 3);
    Tensor<double> p({3, 3}, {0.2, 0.3, 0.5, 1.0, 2.0, 1.0, 0.0, 1.0, 0.0});
    double want = (-std::log(0.3) - std::log(0.25) - std::log(eps)) / 3;
    CHECK(L("categorical_crossentropy", t, p) == Approx(want).epsilon(1e-9));
    Tensor<double> lab({3}, {1, 0, 2});
    CHECK(L("sparse_categorical_crossentropy", lab, p) == Approx(want).epsilon(1e-9));
    // the upper clip: p = 1 for the true class costs -log(1 - eps)
    Tensor<double> t2 = one_hot_rows({1}, 3), p2({1, 3}, {0, 1, 0});
    CHECK(L("categorical_crossentropy", t2, p2) == Approx(-std::log(1 - eps)).epsilon(1e-6));
    // label smoothing 0.3 over 3 classes: t -> t * 0.7 + 0.1
    auto ls = make_loss<double>(json{{"class_name", "CategoricalCrossentropy"}, {"config", {{"label_smoothing", 0.3}}}});
    Tensor<double> t3 = one_hot_rows({2}, 3), p3({1, 3}, {0.2, 0.3, 0.5});
    CHECK(ls->compute(t3, p3, nullptr, 1.0) == Approx(-(0.1 * std::log(0.2) + 0.1 * std::log(0.3) + 0.8 * std::log(0.5))));
    // from_logits: log_softmax
    auto lg = make_loss<double>(json{{"class_name", "CategoricalCrossentropy"}, {"config", {{"from_logits", true}}}});
    Tensor<double> z({1, 3}, {1, 2, 3});
    double lse = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
    CHECK(lg->compute(t3, z, nullptr, 1.0) == Approx(lse - 3));
    auto slg = make_loss<double>(json{{"class_name", "SparseCategoricalCrossentropy"}, {"config", {{"from_logits", true}}}});
    CHECK(slg->compute(Tensor<double>({1}, {0}), z, nullptr, 1.0) == Approx(lse - 1));
  }
  SECTION("losses resolve from Keras names and serialize back") {
    for (const char* n : {"mse", "mae", "mape", "msle", "huber", "log_cosh", "poisson", "hinge", "squared_hinge", "kld",
                          "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy"}) {
      auto l = make_loss<double>(n);
      INFO(n << " -> " << l->to_json().dump());
      auto again = make_loss<double>(l->to_json());
      CHECK(again->name() == l->name());
    }
    CHECK(make_loss<double>("MeanSquaredError")->name() == "mean_squared_error");
    CHECK(make_loss<double>(json{{"class_name", "LossFunctionWrapper"}, {"config", {{"fn", "mae"}}}})->name() ==
          "mean_absolute_error");
    CHECK(make_loss<double>("sparse_categorical_crossentropy")->sparse_labels());
  }
}
