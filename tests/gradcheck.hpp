// Numerical gradient checks (central differences, double precision) for any Layer<double>.
#pragma once

#include <graft/graft.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

namespace graft_test {

using graft::Index;
using graft::Layer;
using graft::Shape;
using graft::Tensor;

inline Tensor<double> random_tensor(const Shape& s, graft::Rng& rng, double lo = -1.0, double hi = 1.0) {
  Tensor<double> t(s);
  for (auto& v : t) v = rng.uniform(lo, hi);
  return t;
}

struct GradCheckOptions {
  bool training = true;      ///< forward in training mode
  double eps = 1e-6;         ///< finite-difference step
  double tol = 1e-6;         ///< |analytic - numeric| <= tol * max(1, |numeric|)
  Index max_checks = 400;    ///< per tensor; positions sampled evenly beyond this
  bool check_inputs = true;
  bool check_weights = true;
  std::vector<size_t> skip_inputs;  ///< input indices not to check (e.g. integer inputs)
};

/// Loss = sum_k sum(R_k * y_k) with fixed random R; compare backward() with central differences
/// for every input element and every trainable weight element (sampled when large).
inline void check_layer_gradients(Layer<double>& layer, std::vector<Tensor<double>> inputs,
                                  const GradCheckOptions& o = {}, std::uint64_t seed = 1234) {
  graft::Rng rng(seed);
  std::vector<Shape> shapes;
  for (auto& x : inputs) shapes.push_back(x.shape());
  layer.build(shapes);
  auto out_shapes = layer.compute_output_shapes(shapes);
  std::vector<Tensor<double>> outs(out_shapes.size()), R(out_shapes.size());
  graft::In<double> in;
  for (auto& x : inputs) in.push_back(&x);
  graft::Out<double> out;
  for (auto& y : outs) out.push_back(&y);
  auto state = layer.make_state();

  auto loss = [&]() {
    layer.forward(in, out, state.get(), o.training);
    double s = 0;
    for (size_t k = 0; k < outs.size(); ++k)
      for (Index i = 0; i < outs[k].size(); ++i) s += R[k][i] * outs[k][i];
    return s;
  };
  layer.forward(in, out, state.get(), o.training);
  for (size_t k = 0; k < outs.size(); ++k) {
    // the forward result must have the shape compute_output_shapes promised (batch resolved)
    const Shape& sym = out_shapes[k];
    REQUIRE(outs[k].rank() == static_cast<Index>(sym.size()));
    for (size_t d = 0; d < sym.size(); ++d)
      if (sym[d] >= 0) REQUIRE(outs[k].shape()[d] == sym[d]);
    R[k] = random_tensor(outs[k].shape(), rng);
  }
  // analytic
  auto params = layer.trainable_weights();
  for (auto* p : params) p->grad_fresh = true;
  std::vector<Tensor<double>> din(inputs.size());
  graft::Out<double> dinp;
  for (size_t i = 0; i < inputs.size(); ++i) {
    bool skip = std::find(o.skip_inputs.begin(), o.skip_inputs.end(), i) != o.skip_inputs.end();
    dinp.push_back(o.check_inputs && !skip ? &din[i] : nullptr);
  }
  graft::In<double> outc, doutc;
  for (auto& y : outs) outc.push_back(&y);
  for (auto& r : R) doutc.push_back(&r);
  layer.forward(in, out, state.get(), o.training);
  layer.backward(in, outc, doutc, dinp, state.get());

  auto compare = [&](Tensor<double>& target, const Tensor<double>& analytic, const std::string& what) {
    REQUIRE(analytic.size() == target.size());
    Index n = target.size();
    Index step = std::max<Index>(1, n / o.max_checks);
    for (Index i = 0; i < n; i += step) {
      double keep = target[i];
      target[i] = keep + o.eps;
      double lp = loss();
      target[i] = keep - o.eps;
      double lm = loss();
      target[i] = keep;
      double num = (lp - lm) / (2 * o.eps);
      double ana = analytic[i];
      INFO(layer.class_name() << " '" << layer.name() << "' d/d" << what << "[" << i << "]: analytic " << ana
                              << ", numeric " << num);
      CHECK(std::abs(ana - num) <= o.tol * std::max(1.0, std::abs(num)));
    }
  };
  if (o.check_weights)
    for (auto* p : params) {
      REQUIRE_FALSE(p->grad_fresh);  // a trainable weight must receive a gradient
      Tensor<double> g = p->grad;
      compare(p->value, g, p->name);
    }
  if (o.check_inputs)
    for (size_t i = 0; i < inputs.size(); ++i)
      if (dinp[i]) {
        Tensor<double> g = din[i];
        compare(inputs[i], g, "input" + std::to_string(i));
      }
}

/// Float arrays of an HDF5 file: the dataset `prefix`, or prefix0, prefix1, ... (fixtures' io.h5).
inline std::vector<Tensor<float>> read_arrays(const std::string& path, const std::string& prefix) {
  auto f = graft::h5::File::open(path);
  auto root = graft::h5::Group::root(f);
  std::vector<Tensor<float>> r;
  if (root.kind(prefix) == graft::h5::Group::Kind::dataset) {
    r.push_back(graft::h5::read_dataset<float>(root, prefix));
    return r;
  }
  for (int i = 0; root.kind(prefix + std::to_string(i)) == graft::h5::Group::Kind::dataset; ++i)
    r.push_back(graft::h5::read_dataset<float>(root, prefix + std::to_string(i)));
  return r;
}

/// Path inside ../shared (fixtures, corpus).
inline std::string shared_path(const std::string& rel) { return std::string(GRAFT_SHARED_DIR) + "/" + rel; }

/// A fresh folder under /tmp for this test process's files (made once).
inline std::string tmp_dir() {
  static std::string d = [] {
    char tmpl[] = "/tmp/graft-test-XXXXXX";
    char* r = mkdtemp(tmpl);
    REQUIRE(r != nullptr);
    return std::string(r);
  }();
  return d;
}

/// How much slower this test build runs than a release build: time limits in tests are multiplied
/// by it (tests/sanitizers.cmake defines GRAFT_TEST_SANITIZED for the ASan/UBSan and TSan builds).
#ifdef GRAFT_TEST_SANITIZED
constexpr double kTimeScale = 10.0;
#else
constexpr double kTimeScale = 1.0;
#endif

/// The what() of the exception of type E that f() throws; fails the test when f throws nothing
/// (an exception of another type escapes and fails it too).
template <class E, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  FAIL("no exception of the expected kind was thrown");
  return {};
}

}  // namespace graft_test
