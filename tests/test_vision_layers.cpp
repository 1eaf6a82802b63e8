// Vision layers: numerical gradient checks for every variant, hand-computed forwards, and a naive
// direct convolution as an independent reference for the im2col/GEMM path.
#include <graft/graft.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <memory>

#include "gradcheck.hpp"

namespace {

using graft::Index;
using graft::Shape;
using graft::Tensor;
using graft_test::check_layer_gradients;
using graft_test::GradCheckOptions;
using graft_test::random_tensor;

template <class L>
Tensor<double> run(L& layer, const Tensor<double>& x, bool training = false) {
  layer.build({x.shape()});
  auto st = layer.make_state();
  Tensor<double> y;
  layer.forward({&x}, {&y}, st.get(), training);
  return y;
}

Tensor<double> arange(const Shape& s, double start = 0) {
  Tensor<double> t(s);
  for (Index i = 0; i < t.size(); ++i) t[i] = start + static_cast<double>(i);
  return t;
}

/// Randomize every weight of a layer (biases included) so gradient checks see non-trivial values.
void randomize(graft::Layer<double>& l, graft::Rng& rng, double lo = -1, double hi = 1) {
  for (auto* p : l.weights())
    for (auto& v : p->value) v = rng.uniform(lo, hi);
}

/// Direct convolution (no im2col), explicit padding before = pt/pl, same output size as given.
Tensor<double> naive_conv(const Tensor<double>& x, const Tensor<double>& k, const Tensor<double>* b, Index sh, Index sw,
                          Index dh, Index dw, Index pt, Index pl, Index OH, Index OW) {
  const Index N = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3), kh = k.dim(0), kw = k.dim(1), F = k.dim(3);
  Tensor<double> y({N, OH, OW, F}, 0.0);
  for (Index n = 0; n < N; ++n)
    for (Index oh = 0; oh < OH; ++oh)
      for (Index ow = 0; ow < OW; ++ow)
        for (Index f = 0; f < F; ++f) {
          double s = b ? (*b)[f] : 0.0;
          for (Index i = 0; i < kh; ++i)
            for (Index j = 0; j < kw; ++j) {
              Index ih = oh * sh - pt + i * dh, iw = ow * sw - pl + j * dw;
              if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
              for (Index c = 0; c < C; ++c) s += x[((n * H + ih) * W + iw) * C + c] * k[((i * kw + j) * C + c) * F + f];
            }
          y[((n * OH + oh) * OW + ow) * F + f] = s;
        }
  return y;
}

/// TF "same": output ceil(in / s), padding before = total / 2 with total = max((out-1)s + (k-1)d + 1 - in, 0).
void same_geometry(Index in, Index k, Index s, Index d, Index& out, Index& before) {
  out = (in + s - 1) / s;
  Index total = std::max<Index>((out - 1) * s + (k - 1) * d + 1 - in, 0);
  before = total / 2;
}

void require_close(const Tensor<double>& a, const Tensor<double>& b, double tol = 1e-9) {
  REQUIRE(a.shape() == b.shape());
  for (Index i = 0; i < a.size(); ++i) {
    INFO("element " << i << ": " << a[i] << " vs " << b[i]);
    REQUIRE(std::abs(a[i] - b[i]) <= tol * std::max(1.0, std::abs(b[i])));
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Conv2D / Conv1D
// ---------------------------------------------------------------------------------------------

TEST_CASE("Conv2D same padding with stride 2 on an even input puts the extra cell after (TF rule)", "[vision][conv]") {
  graft::Conv2D<double> conv(1, 3, 2, "same", "linear", false);
  auto x = arange({1, 4, 4, 1});
  conv.build({x.shape()});
  conv.kernel().value.fill(1.0);
  auto y = run(conv, x);
  REQUIRE(y.shape() == Shape{1, 2, 2, 1});
  // rows/cols {0,1,2}x{0,1,2}, {0,1,2}x{2,3}, {2,3}x{0,1,2}, {2,3}x{2,3} of arange(16)
  CHECK(y[0] == 45);
  CHECK(y[1] == 39);
  CHECK(y[2] == 66);
  CHECK(y[3] == 50);
}

TEST_CASE("Conv2D matches a direct convolution for every padding, stride, dilation and kernel shape", "[vision][conv]") {
  graft::Rng rng(7);
  struct Case {
    Index H, W, C, F, kh, kw, sh, sw, dh, dw;
    const char* pad;
  };
  const Case cases[] = {
      {7, 7, 3, 4, 3, 3, 1, 1, 1, 1, "valid"}, {7, 7, 3, 4, 3, 3, 1, 1, 1, 1, "same"},
      {8, 6, 2, 3, 3, 3, 2, 2, 1, 1, "same"},  {9, 9, 2, 3, 3, 3, 2, 2, 1, 1, "same"},
      {8, 8, 2, 3, 3, 3, 2, 2, 1, 1, "valid"}, {9, 7, 2, 3, 3, 3, 1, 1, 2, 2, "valid"},
      {9, 7, 2, 3, 3, 3, 1, 1, 2, 2, "same"},  {6, 9, 3, 2, 2, 4, 1, 2, 1, 1, "same"},
      {5, 5, 4, 3, 1, 1, 1, 1, 1, 1, "valid"}, {5, 5, 4, 3, 1, 1, 2, 2, 1, 1, "same"},
      {7, 8, 2, 2, 4, 2, 3, 1, 1, 3, "same"},  {6, 6, 1, 1, 5, 5, 1, 1, 1, 1, "same"},
      // more than 4 channels (im2col copies whole kernel rows rather than value by value)
      {7, 7, 5, 3, 3, 3, 2, 2, 1, 1, "same"},  {9, 7, 8, 2, 3, 3, 1, 1, 2, 2, "same"},
      {6, 8, 6, 3, 2, 3, 1, 2, 1, 1, "valid"},
  };
  for (const auto& c : cases) {
    INFO("H" << c.H << " W" << c.W << " k" << c.kh << "x" << c.kw << " s" << c.sh << "x" << c.sw << " d" << c.dh << "x" << c.dw
              << " " << c.pad);
    graft::Conv2D<double> conv(c.F, {c.kh, c.kw}, {c.sh, c.sw}, c.pad, "linear", true, {c.dh, c.dw});
    auto x = random_tensor({3, c.H, c.W, c.C}, rng);
    conv.build({x.shape()});
    randomize(conv, rng);
    auto y = run(conv, x);
    Index OH, OW, pt, pl;
    if (std::string(c.pad) == "same") {
      same_geometry(c.H, c.kh, c.sh, c.dh, OH, pt);
      same_geometry(c.W, c.kw, c.sw, c.dw, OW, pl);
    } else {
      OH = (c.H - ((c.kh - 1) * c.dh + 1)) / c.sh + 1;
      OW = (c.W - ((c.kw - 1) * c.dw + 1)) / c.sw + 1;
      pt = pl = 0;
    }
    auto ref = naive_conv(x, conv.kernel().value, &conv.bias()->value, c.sh, c.sw, c.dh, c.dw, pt, pl, OH, OW);
    require_close(y, ref);
  }
}

TEST_CASE("Conv2D forward in sample groups: a direct convolution's result, the same bits on any thread count",
          "[vision][conv][threads]") {
  // 9 samples of 20x20x8 and 16 filters: the forward pass runs three groups of three samples
  graft::Rng rng(19);
  graft::Conv2D<double> conv(16, 3, 1, "same", "relu");
  auto x = random_tensor({9, 20, 20, 8}, rng);
  conv.build({x.shape()});
  randomize(conv, rng);
  for (int threads : {1, 2}) {
    graft::set_num_threads(threads);
    auto y = run(conv, x);
    auto ref = naive_conv(x, conv.kernel().value, &conv.bias()->value, 1, 1, 1, 1, 1, 1, 20, 20);
    for (auto& v : ref) v = std::max(v, 0.0);
    require_close(y, ref);
  }
  graft::Conv2D<float> cf(16, 3, 1, "same", "relu");
  Tensor<float> xf(x.shape());
  std::transform(x.begin(), x.end(), xf.begin(), [](double v) { return static_cast<float>(v); });
  cf.build({xf.shape()});
  const auto& kd = conv.kernel().value;
  std::transform(kd.begin(), kd.end(), cf.kernel().value.begin(), [](double v) { return static_cast<float>(v); });
  const auto& bd = conv.bias()->value;
  std::transform(bd.begin(), bd.end(), cf.bias()->value.begin(), [](double v) { return static_cast<float>(v); });
  std::vector<Tensor<float>> outs;
  for (int threads : {1, 2})
    for (bool training : {false, true}) {
      graft::set_num_threads(threads);
      auto st = cf.make_state();
      Tensor<float> y;
      cf.forward({&xf}, {&y}, st.get(), training);
      outs.push_back(y);
    }
  graft::set_num_threads(0);
  for (size_t i = 1; i < outs.size(); ++i) CHECK(outs[i] == outs[0]);
}

TEST_CASE("Conv2D gradients match central differences for every variant", "[vision][conv][gradcheck]") {
  graft::Rng rng(11);
  SECTION("3x3 valid, tanh") {
    graft::Conv2D<double> l(3, 3, 1, "valid", "tanh");
    auto x = random_tensor({2, 5, 5, 2}, rng);
    l.build({x.shape()});
    randomize(l, rng, -0.5, 0.5);
    check_layer_gradients(l, {x});
  }
  SECTION("3x3 same stride 2 on an even input (asymmetric padding)") {
    graft::Conv2D<double> l(3, 3, 2, "same");
    auto x = random_tensor({2, 6, 4, 2}, rng);
    check_layer_gradients(l, {x});
  }
  SECTION("3x3 same stride 2 on an odd input") {
    graft::Conv2D<double> l(2, 3, 2, "same");
    check_layer_gradients(l, {random_tensor({2, 5, 7, 3}, rng)});
  }
  SECTION("dilation 2, same and valid") {
    graft::Conv2D<double> a(2, 3, 1, "same", "linear", true, 2);
    check_layer_gradients(a, {random_tensor({2, 6, 7, 2}, rng)});
    graft::Conv2D<double> b(2, 3, 1, "valid", "linear", true, {2, 1});
    check_layer_gradients(b, {random_tensor({2, 7, 5, 2}, rng)});
  }
  SECTION("non-square kernel and strides, no bias, sigmoid") {
    graft::Conv2D<double> l(3, {2, 4}, {1, 2}, "same", "sigmoid", false);
    check_layer_gradients(l, {random_tensor({2, 5, 9, 2}, rng)});
  }
  SECTION("1x1 kernel (GEMM without im2col)") {
    graft::Conv2D<double> l(4, 1);
    check_layer_gradients(l, {random_tensor({3, 4, 4, 3}, rng)});
  }
  SECTION("1x1 kernel with stride 2") {
    graft::Conv2D<double> l(2, 1, 2, "same");
    check_layer_gradients(l, {random_tensor({2, 5, 4, 3}, rng)});
  }
  SECTION("softmax activation over channels") {
    graft::Conv2D<double> l(3, 2, 1, "valid", "softmax");
    check_layer_gradients(l, {random_tensor({2, 4, 4, 2}, rng)});
  }
  SECTION("6 channels, stride 2, relu") {
    graft::Conv2D<double> l(3, 3, 2, "same", "relu");
    check_layer_gradients(l, {random_tensor({2, 6, 7, 6}, rng)});
  }
  SECTION("64 channels: the input gradient's blocks of output cells split a sample") {
    // K = 576: blocks of 56 output cells, 64 cells per sample
    graft::Conv2D<double> l(2, 3, 1, "same", "tanh");
    check_layer_gradients(l, {random_tensor({2, 8, 8, 64}, rng)});
  }
}

TEST_CASE("Conv2D processes large batches in im2col chunks with the same results", "[vision][conv]") {
  graft::Rng rng(5);
  // 40x40x16 with a 3x3 kernel: 23k im2col values per sample, budget 4M -> chunks of ~180 samples;
  // 200 samples therefore take two chunks.
  graft::Conv2D<float> conv(4, 3, 1, "same");
  Tensor<float> x({200, 40, 40, 16});
  for (auto& v : x) v = static_cast<float>(rng.uniform(-1, 1));
  conv.build({x.shape()});
  auto st = conv.make_state();
  Tensor<float> y, y1;
  conv.forward({&x}, {&y}, st.get(), true);
  auto x1 = x.slice_rows(190, 10);
  auto st1 = conv.make_state();
  conv.forward({&x1}, {&y1}, st1.get(), true);
  const Index per = y.inner(1);
  for (Index i = 0; i < y1.size(); ++i) REQUIRE(y[190 * per + i] == Approx(y1[i]).margin(1e-5));
  // kernel gradient over two chunks = sum of per-sample-group gradients
  Tensor<float> dy(y.shape(), 1.0f), dx;
  conv.kernel().grad_fresh = true;
  conv.bias()->grad_fresh = true;
  conv.backward({&x}, {&y}, {&dy}, {&dx}, st.get());
  Tensor<float> g_all = conv.kernel().grad;
  Tensor<float> g_sum(g_all.shape(), 0.0f);
  for (Index b0 = 0; b0 < 200; b0 += 50) {
    auto xb = x.slice_rows(b0, 50);
    Tensor<float> yb, dyb, dxb;
    auto sb = conv.make_state();
    conv.forward({&xb}, {&yb}, sb.get(), true);
    dyb.resize(yb.shape());
    dyb.fill(1.0f);
    conv.kernel().grad_fresh = true;
    conv.bias()->grad_fresh = true;
    conv.backward({&xb}, {&yb}, {&dyb}, {&dxb}, sb.get());
    g_sum.array() += conv.kernel().grad.array();
    for (Index i = 0; i < dxb.size(); ++i) REQUIRE(dx[b0 * dxb.inner(1) + i] == Approx(dxb[i]).margin(1e-4));
  }
  for (Index i = 0; i < g_all.size(); ++i) CHECK(g_all[i] == Approx(g_sum[i]).epsilon(1e-3).margin(1e-2));
}

TEST_CASE("a shared Conv2D accumulates weight gradients over its calls", "[vision][conv]") {
  graft::Rng rng(3);
  graft::Conv2D<double> conv(2, 3, 1, "same");
  auto x1 = random_tensor({2, 4, 4, 2}, rng), x2 = random_tensor({2, 4, 4, 2}, rng);
  conv.build({x1.shape()});
  auto s1 = conv.make_state(), s2 = conv.make_state();
  Tensor<double> y1, y2;
  conv.forward({&x1}, {&y1}, s1.get(), true);
  conv.forward({&x2}, {&y2}, s2.get(), true);
  auto d1 = random_tensor(y1.shape(), rng), d2 = random_tensor(y2.shape(), rng);
  // separately
  conv.kernel().grad_fresh = true;
  conv.backward({&x1}, {&y1}, {&d1}, {nullptr}, s1.get());
  Tensor<double> g1 = conv.kernel().grad;
  conv.kernel().grad_fresh = true;
  conv.backward({&x2}, {&y2}, {&d2}, {nullptr}, s2.get());
  Tensor<double> g2 = conv.kernel().grad;
  // together in one step
  conv.kernel().grad_fresh = true;
  conv.backward({&x1}, {&y1}, {&d1}, {nullptr}, s1.get());
  conv.backward({&x2}, {&y2}, {&d2}, {nullptr}, s2.get());
  for (Index i = 0; i < g1.size(); ++i) CHECK(conv.kernel().grad[i] == Approx(g1[i] + g2[i]));
}

TEST_CASE("a frozen Conv2D computes input gradients but no weight gradients", "[vision][conv]") {
  graft::Rng rng(4);
  graft::Conv2D<double> conv(2, 3);
  auto x = random_tensor({2, 5, 5, 1}, rng);
  conv.build({x.shape()});
  conv.set_trainable(false);
  auto st = conv.make_state();
  Tensor<double> y, dx;
  conv.forward({&x}, {&y}, st.get(), true);
  auto dy = random_tensor(y.shape(), rng);
  conv.kernel().grad_fresh = true;
  conv.bias()->grad_fresh = true;
  conv.backward({&x}, {&y}, {&dy}, {&dx}, st.get());
  CHECK(conv.kernel().grad_fresh);
  CHECK(conv.bias()->grad_fresh);
  CHECK(dx.shape() == x.shape());
  CHECK(conv.trainable_weights().empty());
  check_layer_gradients(conv, {x});  // input gradients only
}

TEST_CASE("Conv1D: causal padding, dilation and strides", "[vision][conv]") {
  SECTION("causal, hand computed") {
    graft::Conv1D<double> c(1, 2, 1, "causal", "linear", false);
    Tensor<double> x({1, 4, 1}, {1, 2, 3, 4});
    c.build({x.shape()});
    c.kernel().value[0] = 1;   // tap on t-1
    c.kernel().value[1] = 10;  // tap on t
    auto y = run(c, x);
    REQUIRE(y.shape() == Shape{1, 4, 1});
    CHECK(y[0] == 10);
    CHECK(y[1] == 21);
    CHECK(y[2] == 32);
    CHECK(y[3] == 43);
  }
  SECTION("causal with dilation 2, hand computed") {
    graft::Conv1D<double> c(1, 2, 1, "causal", "linear", false, 2);
    Tensor<double> x({1, 4, 1}, {1, 2, 3, 4});
    c.build({x.shape()});
    c.kernel().value[0] = 1;
    c.kernel().value[1] = 10;
    auto y = run(c, x);
    CHECK(y[0] == 10);
    CHECK(y[1] == 20);
    CHECK(y[2] == 31);
    CHECK(y[3] == 42);
  }
  graft::Rng rng(21);
  for (const char* pad : {"valid", "same", "causal"})
    for (Index s : {1, 2})
      for (Index d : {1, 2}) {
        if (s > 1 && d > 1) continue;
        SECTION(std::string("gradients ") + pad + " s" + std::to_string(s) + " d" + std::to_string(d)) {
          graft::Conv1D<double> c(3, 3, s, pad, "tanh", true, d);
          check_layer_gradients(c, {random_tensor({2, 9, 2}, rng)});
        }
      }
}

// ---------------------------------------------------------------------------------------------
// DepthwiseConv2D / SeparableConv2D
// ---------------------------------------------------------------------------------------------

TEST_CASE("DepthwiseConv2D orders output channels as channel * depth_multiplier + m", "[vision][depthwise]") {
  graft::DepthwiseConv2D<double> l(1, 1, "valid", 2, "linear", true);
  Tensor<double> x({1, 1, 1, 2}, {1, 2});
  l.build({x.shape()});
  REQUIRE(l.kernel().value.shape() == Shape{1, 1, 2, 2});
  REQUIRE(l.bias()->value.shape() == Shape{4});
  l.kernel().value = Tensor<double>({1, 1, 2, 2}, {1, 2, 3, 4});
  l.bias()->value = Tensor<double>({4}, {0.5, 0, 0, 0});
  auto y = run(l, x);
  REQUIRE(y.shape() == Shape{1, 1, 1, 4});
  CHECK(y[0] == 1.5);
  CHECK(y[1] == 2);
  CHECK(y[2] == 6);
  CHECK(y[3] == 8);
}

TEST_CASE("DepthwiseConv2D equals a Conv2D with a block-diagonal kernel", "[vision][depthwise]") {
  graft::Rng rng(8);
  for (Index dm : {1, 3})
    for (const char* pad : {"valid", "same"}) {
      INFO("dm " << dm << " " << pad);
      graft::DepthwiseConv2D<double> d(3, 2, pad, dm);
      auto x = random_tensor({2, 7, 6, 3}, rng);
      d.build({x.shape()});
      randomize(d, rng);
      graft::Conv2D<double> c(3 * dm, 3, 2, pad);
      c.build({x.shape()});
      c.kernel().value.set_zero();
      for (Index t = 0; t < 9; ++t)
        for (Index ch = 0; ch < 3; ++ch)
          for (Index m = 0; m < dm; ++m)
            c.kernel().value[(t * 3 + ch) * 3 * dm + ch * dm + m] = d.kernel().value[(t * 3 + ch) * dm + m];
      c.bias()->value = d.bias()->value;
      require_close(run(d, x), run(c, x));
    }
}

TEST_CASE("DepthwiseConv2D gradients equal those of the block-diagonal Conv2D on large inputs", "[vision][depthwise]") {
  // big enough for the multi-threaded paths (per-thread partial kernel gradients)
  graft::Rng rng(31);
  for (Index dm : {1, 2}) {
    INFO("dm " << dm);
    const Index C = 16;
    graft::DepthwiseConv2D<double> d(3, 1, "same", dm);
    auto x = random_tensor({6, 12, 12, C}, rng);
    d.build({x.shape()});
    randomize(d, rng);
    graft::Conv2D<double> c(C * dm, 3, 1, "same");
    c.build({x.shape()});
    c.kernel().value.set_zero();
    for (Index t = 0; t < 9; ++t)
      for (Index ch = 0; ch < C; ++ch)
        for (Index m = 0; m < dm; ++m)
          c.kernel().value[(t * C + ch) * C * dm + ch * dm + m] = d.kernel().value[(t * C + ch) * dm + m];
    c.bias()->value = d.bias()->value;
    auto sd = d.make_state(), sc = c.make_state();
    Tensor<double> yd, yc, dxd, dxc;
    d.forward({&x}, {&yd}, sd.get(), true);
    c.forward({&x}, {&yc}, sc.get(), true);
    require_close(yd, yc);
    auto dy = random_tensor(yd.shape(), rng);
    for (auto* p : d.weights()) p->grad_fresh = true;
    for (auto* p : c.weights()) p->grad_fresh = true;
    d.backward({&x}, {&yd}, {&dy}, {&dxd}, sd.get());
    c.backward({&x}, {&yc}, {&dy}, {&dxc}, sc.get());
    require_close(dxd, dxc);
    for (Index t = 0; t < 9; ++t)
      for (Index ch = 0; ch < C; ++ch)
        for (Index m = 0; m < dm; ++m)
          REQUIRE(d.kernel().grad[(t * C + ch) * dm + m] ==
                  Approx(c.kernel().grad[(t * C + ch) * C * dm + ch * dm + m]).epsilon(1e-12));
    require_close(d.bias()->grad, c.bias()->grad);
  }
}

TEST_CASE("DepthwiseConv2D gradients for depth multipliers, strides, dilation and padding", "[vision][depthwise][gradcheck]") {
  graft::Rng rng(12);
  SECTION("dm 1, same") {
    graft::DepthwiseConv2D<double> l(3, 1, "same");
    check_layer_gradients(l, {random_tensor({2, 5, 5, 3}, rng)});
  }
  SECTION("dm 2, same, stride 2 on an even input, tanh") {
    graft::DepthwiseConv2D<double> l(3, 2, "same", 2, "tanh");
    auto x = random_tensor({2, 6, 6, 2}, rng);
    l.build({x.shape()});
    randomize(l, rng, -0.5, 0.5);
    check_layer_gradients(l, {x});
  }
  SECTION("dm 3, valid, no bias, dilation 2, non-square kernel") {
    graft::DepthwiseConv2D<double> l({3, 2}, 1, "valid", 3, "linear", false, 2);
    check_layer_gradients(l, {random_tensor({2, 7, 6, 2}, rng)});
  }
}

TEST_CASE("SeparableConv2D equals DepthwiseConv2D followed by a 1x1 Conv2D", "[vision][separable]") {
  graft::Rng rng(9);
  graft::SeparableConv2D<double> s(4, 3, 2, "same", 2, "linear");
  auto x = random_tensor({2, 6, 7, 3}, rng);
  s.build({x.shape()});
  randomize(s, rng);
  graft::DepthwiseConv2D<double> d(3, 2, "same", 2, "linear", false);
  d.build({x.shape()});
  d.kernel().value = s.depthwise_kernel().value;
  graft::Conv2D<double> p(4, 1);
  auto mid = run(d, x);
  p.build({mid.shape()});
  p.kernel().value = s.pointwise_kernel().value;
  p.bias()->value = s.bias()->value;
  require_close(run(s, x), run(p, mid));
}

TEST_CASE("SeparableConv2D gradients", "[vision][separable][gradcheck]") {
  graft::Rng rng(13);
  SECTION("dm 2, same, relu-free tanh") {
    graft::SeparableConv2D<double> l(3, 3, 1, "same", 2, "tanh");
    auto x = random_tensor({2, 5, 5, 2}, rng);
    l.build({x.shape()});
    randomize(l, rng, -0.5, 0.5);
    check_layer_gradients(l, {x});
  }
  SECTION("dm 1, (3,2) kernel, stride 2, valid") {
    graft::SeparableConv2D<double> l(4, {3, 2}, 2, "valid", 1);
    check_layer_gradients(l, {random_tensor({2, 7, 6, 3}, rng)});
  }
  SECTION("dilation 2, no bias") {
    graft::SeparableConv2D<double> l(2, 3, 1, "same", 1, "linear", false, 2);
    check_layer_gradients(l, {random_tensor({2, 6, 6, 2}, rng)});
  }
}

// ---------------------------------------------------------------------------------------------
// Pooling
// ---------------------------------------------------------------------------------------------

TEST_CASE("AveragePooling2D same excludes padded cells from the mean; MaxPooling2D ignores them", "[vision][pooling]") {
  auto x = arange({1, 4, 4, 1});
  graft::AveragePooling2D<double> avg(3, 2, "same");
  auto a = run(avg, x);
  REQUIRE(a.shape() == Shape{1, 2, 2, 1});
  CHECK(a[0] == Approx(45.0 / 9));
  CHECK(a[1] == Approx(39.0 / 6));
  CHECK(a[2] == Approx(66.0 / 6));
  CHECK(a[3] == Approx(50.0 / 4));
  graft::MaxPooling2D<double> mx(3, 2, "same");
  auto m = run(mx, x);
  CHECK(m[0] == 10);
  CHECK(m[1] == 11);
  CHECK(m[2] == 14);
  CHECK(m[3] == 15);
  // all-negative inputs: a zero pad would win a max, the real cells must
  Tensor<double> neg = x;
  for (auto& v : neg) v = -1 - v;
  auto mn = run(mx, neg);
  CHECK(mn[0] == -1);
  CHECK(mn[1] == -3);
  CHECK(mn[2] == -9);
  CHECK(mn[3] == -11);
}

TEST_CASE("MaxPooling2D gives a tied window's gradient to its first maximal cell only", "[vision][pooling]") {
  // after a ReLU many windows are all zeros: Keras (TF and torch kernels alike) route the
  // gradient to the first maximum in row-major order
  Tensor<double> x({1, 3, 4, 1}, {0, 0, 5, 1, 0, 0, 5, 5, 2, 2, 2, 2});
  graft::MaxPooling2D<double> mp(2, {1, 2}, "valid");
  mp.build({x.shape()});
  auto st = mp.make_state();
  Tensor<double> y, dx;
  mp.forward({&x}, {&y}, st.get(), true);
  REQUIRE(y.shape() == Shape{1, 2, 2, 1});
  Tensor<double> dy({1, 2, 2, 1}, {1, 10, 100, 1000});
  mp.backward({&x}, {&y}, {&dy}, {&dx}, st.get());
  // window (0,0) = {0,0,0,0} -> cell (0,0); window (0,1) = {5,1,5,5} -> (0,2);
  // window (1,0) = {0,0,2,2} -> (2,0); window (1,1) = {5,5,2,2} -> (1,2)
  const double want[12] = {1, 0, 10, 0, 0, 0, 1000, 0, 100, 0, 0, 0};
  for (int i = 0; i < 12; ++i) CHECK(dx[i] == want[i]);
  // after an inference forward (no argmax recorded) the backward pass finds the same cells
  Tensor<double> y2, dx2;
  mp.forward({&x}, {&y2}, st.get(), false);
  mp.backward({&x}, {&y2}, {&dy}, {&dx2}, st.get());
  for (int i = 0; i < 12; ++i) CHECK(dx2[i] == want[i]);
  graft::GlobalMaxPooling2D<double> gm;
  gm.build({x.shape()});
  auto s2 = gm.make_state();
  Tensor<double> g, dg;
  gm.forward({&x}, {&g}, s2.get(), true);
  Tensor<double> one({1, 1}, {1.0});
  gm.backward({&x}, {&g}, {&one}, {&dg}, s2.get());
  for (int i = 0; i < 12; ++i) CHECK(dg[i] == (i == 2 ? 1.0 : 0.0));
}

TEST_CASE("MaxPooling backward: the argmax recorded in training and the recomputed one agree", "[vision][pooling]") {
  // ReLU-like inputs (many tied zeros), overlapping and disjoint windows, both paddings, and a
  // window of more than 256 cells (never recorded)
  graft::Rng rng(23);
  struct Case {
    Index kh, kw, sh, sw;
    const char* pad;
    Index H, W;
  };
  const Case cases[] = {{2, 2, 2, 2, "valid", 9, 8}, {3, 3, 2, 2, "same", 9, 8}, {3, 2, 1, 1, "same", 7, 6},
                        {2, 3, 3, 1, "valid", 8, 9}, {17, 16, 1, 1, "valid", 18, 17}};
  for (const auto& c : cases) {
    INFO("pool " << c.kh << "x" << c.kw << " strides " << c.sh << "x" << c.sw << " " << c.pad);
    graft::MaxPooling2D<float> mp({c.kh, c.kw}, {c.sh, c.sw}, c.pad);
    Tensor<float> x({3, c.H, c.W, 5});
    for (auto& v : x) v = std::max(0.0f, static_cast<float>(std::round(rng.uniform(-3, 3))));
    mp.build({x.shape()});
    auto st = mp.make_state();
    Tensor<float> y, dx_train, y2, dx_infer;
    mp.forward({&x}, {&y}, st.get(), true);
    Tensor<float> dy(y.shape());
    for (auto& v : dy) v = static_cast<float>(rng.uniform(-1, 1));
    mp.backward({&x}, {&y}, {&dy}, {&dx_train}, st.get());
    mp.forward({&x}, {&y2}, st.get(), false);
    CHECK(y2 == y);
    mp.backward({&x}, {&y2}, {&dy}, {&dx_infer}, st.get());
    CHECK(dx_train == dx_infer);
    float sum_dy = 0, sum_dx = 0;  // every output's gradient lands exactly once
    for (auto v : dy) sum_dy += v;
    for (auto v : dx_train) sum_dx += v;
    CHECK(sum_dx == Approx(sum_dy).margin(1e-4));
  }
}

TEST_CASE("pooling defaults: strides = pool_size, valid padding, rounding down", "[vision][pooling]") {
  graft::MaxPooling2D<double> mp;  // 2x2, strides 2
  auto y = run(mp, arange({1, 5, 5, 1}));
  REQUIRE(y.shape() == Shape{1, 2, 2, 1});
  CHECK(y[0] == 6);
  CHECK(y[3] == 18);
  graft::AveragePooling2D<double> ap({3, 2}, 1);
  auto z = run(ap, arange({1, 4, 3, 2}));
  REQUIRE(z.shape() == Shape{1, 2, 2, 2});
}

TEST_CASE("pooling gradients for every padding and stride", "[vision][pooling][gradcheck]") {
  graft::Rng rng(14);
  for (const char* pad : {"valid", "same"}) {
    SECTION(std::string("max 3x3 s2 ") + pad) {
      graft::MaxPooling2D<double> l(3, 2, pad);
      check_layer_gradients(l, {random_tensor({2, 6, 7, 2}, rng)});
    }
    SECTION(std::string("avg 3x3 s2 ") + pad) {
      graft::AveragePooling2D<double> l(3, 2, pad);
      check_layer_gradients(l, {random_tensor({2, 6, 7, 2}, rng)});
    }
    SECTION(std::string("max (3,2) s1 ") + pad) {
      graft::MaxPooling2D<double> l({3, 2}, 1, pad);
      check_layer_gradients(l, {random_tensor({2, 5, 4, 2}, rng)});
    }
    SECTION(std::string("avg (2,3) s(1,2) ") + pad) {
      graft::AveragePooling2D<double> l({2, 3}, {1, 2}, pad);
      check_layer_gradients(l, {random_tensor({2, 5, 6, 2}, rng)});
    }
    SECTION(std::string("max1d 3 s2 ") + pad) {
      graft::MaxPooling1D<double> l(3, 2, pad);
      check_layer_gradients(l, {random_tensor({2, 8, 3}, rng)});
    }
    SECTION(std::string("avg1d 2 s1 ") + pad) {
      graft::AveragePooling1D<double> l(2, 1, pad);
      check_layer_gradients(l, {random_tensor({2, 7, 3}, rng)});
    }
  }
}

TEST_CASE("global pooling: values, keepdims and gradients", "[vision][pooling][gradcheck]") {
  graft::Rng rng(15);
  auto x = arange({2, 2, 3, 2});
  graft::GlobalAveragePooling2D<double> gap;
  auto a = run(gap, x);
  REQUIRE(a.shape() == Shape{2, 2});
  CHECK(a[0] == Approx(5.0));  // mean of 0,2,...,10
  CHECK(a[3] == Approx(18.0));
  graft::GlobalMaxPooling2D<double> gmp(true);
  auto m = run(gmp, x);
  REQUIRE(m.shape() == Shape{2, 1, 1, 2});
  CHECK(m[0] == 10);
  CHECK(m[3] == 23);
  graft::GlobalAveragePooling1D<double> g1(true);
  REQUIRE(run(g1, arange({2, 4, 3})).shape() == Shape{2, 1, 3});
  SECTION("gap2d") {
    graft::GlobalAveragePooling2D<double> l;
    check_layer_gradients(l, {random_tensor({3, 4, 5, 2}, rng)});
  }
  SECTION("gmp2d keepdims") {
    graft::GlobalMaxPooling2D<double> l(true);
    check_layer_gradients(l, {random_tensor({3, 4, 5, 2}, rng)});
  }
  SECTION("gap1d / gmp1d") {
    graft::GlobalAveragePooling1D<double> a1;
    check_layer_gradients(a1, {random_tensor({3, 6, 2}, rng)});
    graft::GlobalMaxPooling1D<double> m1;
    check_layer_gradients(m1, {random_tensor({3, 6, 2}, rng)});
  }
}

// ---------------------------------------------------------------------------------------------
// BatchNormalization
// ---------------------------------------------------------------------------------------------

TEST_CASE("BatchNormalization training uses batch statistics (biased variance) and updates the moving ones",
          "[vision][bn]") {
  graft::BatchNormalization<double> bn;  // momentum 0.99, epsilon 1e-3
  Tensor<double> x({4, 1}, {1, 2, 3, 4});
  auto y = run(bn, x, true);
  const double inv = 1.0 / std::sqrt(1.25 + 1e-3);
  CHECK(y[0] == Approx(-1.5 * inv));
  CHECK(y[3] == Approx(1.5 * inv));
  CHECK(bn.moving_mean().value[0] == Approx(0.025));
  CHECK(bn.moving_variance().value[0] == Approx(0.99 + 0.0125));
  // inference uses the moving statistics
  auto z = run(bn, x, false);
  CHECK(z[0] == Approx((1 - 0.025) / std::sqrt(1.0025 + 1e-3)));
}

TEST_CASE("a frozen BatchNormalization runs in inference mode even when training", "[vision][bn]") {
  graft::Rng rng(16);
  graft::BatchNormalization<double> bn(-1, 0.9);
  auto x = random_tensor({6, 3, 3, 4}, rng, -2, 3);
  bn.build({x.shape()});
  randomize(bn, rng, 0.5, 1.5);
  bn.set_trainable(false);
  auto before = bn.get_weights();
  auto y_train = run(bn, x, true);
  auto y_infer = run(bn, x, false);
  require_close(y_train, y_infer, 0);
  auto after = bn.get_weights();
  for (size_t i = 0; i < before.size(); ++i) CHECK(before[i] == after[i]);  // moving stats untouched
  CHECK(bn.trainable_weights().empty());
  // backward: input gradient of the inference formula, no weight-gradient work
  auto st = bn.make_state();
  Tensor<double> y, dx;
  bn.forward({&x}, {&y}, st.get(), true);
  auto dy = random_tensor(y.shape(), rng);
  for (auto* p : bn.weights()) p->grad_fresh = true;
  bn.backward({&x}, {&y}, {&dy}, {&dx}, st.get());
  for (auto* p : bn.weights()) CHECK(p->grad_fresh);
  for (Index i = 0; i < dx.size(); ++i) {
    Index c = i % 4;
    double a = bn.gamma()->value[c] / std::sqrt(bn.moving_variance().value[c] + 1e-3);
    REQUIRE(dx[i] == Approx(dy[i] * a));
  }
  GradCheckOptions o;
  o.training = true;
  check_layer_gradients(bn, {x}, o);
}

TEST_CASE("BatchNormalization gradients: training (batch statistics) and inference, every axis", "[vision][bn][gradcheck]") {
  graft::Rng rng(17);
  for (bool training : {true, false})
    for (int axis : {-1, 1, 2, 3}) {
      SECTION(std::string(training ? "training" : "inference") + " axis " + std::to_string(axis)) {
        graft::BatchNormalization<double> bn(axis, 0.9, 1e-3);
        auto x = random_tensor({3, 4, 3, 2}, rng, -2, 2);
        bn.build({x.shape()});
        randomize(bn, rng, 0.5, 1.5);
        GradCheckOptions o;
        o.training = training;
        o.tol = 1e-5;
        check_layer_gradients(bn, {x}, o);
      }
    }
  SECTION("no scale, no center, rank 2") {
    graft::BatchNormalization<double> bn(-1, 0.99, 1e-3, false, false);
    auto x = random_tensor({5, 3}, rng);
    bn.build({x.shape()});
    REQUIRE(bn.weights().size() == 2);
    check_layer_gradients(bn, {x});
  }
  SECTION("scale only, rank 3") {
    graft::BatchNormalization<double> bn(-1, 0.99, 1e-3, false, true);
    auto x = random_tensor({3, 4, 3}, rng);
    bn.build({x.shape()});
    randomize(bn, rng, 0.5, 1.5);
    check_layer_gradients(bn, {x});
  }
}

TEST_CASE("BatchNormalization over a middle axis matches the last-axis path on transposed data", "[vision][bn]") {
  graft::Rng rng(18);
  auto x = random_tensor({3, 4, 5}, rng);  // normalize axis 1 (4 features)
  Tensor<double> xt({3, 5, 4});
  for (Index n = 0; n < 3; ++n)
    for (Index c = 0; c < 4; ++c)
      for (Index i = 0; i < 5; ++i) xt[(n * 5 + i) * 4 + c] = x[(n * 4 + c) * 5 + i];
  graft::BatchNormalization<double> a(1), b(-1);
  a.build({x.shape()});
  b.build({xt.shape()});
  randomize(a, rng, 0.5, 1.5);
  b.set_weights(a.get_weights());
  auto ya = run(a, x, true), yb = run(b, xt, true);
  for (Index n = 0; n < 3; ++n)
    for (Index c = 0; c < 4; ++c)
      for (Index i = 0; i < 5; ++i) REQUIRE(ya[(n * 4 + c) * 5 + i] == Approx(yb[(n * 5 + i) * 4 + c]));
  for (size_t k = 0; k < 4; ++k)
    for (Index c = 0; c < 4; ++c) CHECK(a.get_weights()[k][c] == Approx(b.get_weights()[k][c]));
}

// ---------------------------------------------------------------------------------------------
// Padding, cropping, upsampling, rescaling
// ---------------------------------------------------------------------------------------------

TEST_CASE("ZeroPadding2D and Cropping2D place the data where Keras does", "[vision][padding]") {
  auto x = arange({1, 2, 3, 1}, 1);
  graft::ZeroPadding2D<double> zp(1, 2, 3, 0);
  auto y = run(zp, x);
  REQUIRE(y.shape() == Shape{1, 5, 6, 1});
  CHECK(y[1 * 6 + 3] == 1);
  CHECK(y[1 * 6 + 5] == 3);
  CHECK(y[2 * 6 + 4] == 5);
  double s = 0;
  for (auto v : y) s += v;
  CHECK(s == 21);
  graft::Cropping2D<double> cr(1, 2, 3, 0);
  auto z = run(cr, y);
  require_close(z, x, 0);
}

TEST_CASE("padding, cropping, upsampling and rescaling gradients", "[vision][gradcheck]") {
  graft::Rng rng(19);
  SECTION("ZeroPadding2D") {
    graft::ZeroPadding2D<double> l(1, 2, 0, 3);
    check_layer_gradients(l, {random_tensor({2, 3, 4, 2}, rng)});
  }
  SECTION("Cropping2D") {
    graft::Cropping2D<double> l(1, 0, 2, 1);
    check_layer_gradients(l, {random_tensor({2, 4, 5, 2}, rng)});
  }
  SECTION("UpSampling2D nearest") {
    graft::UpSampling2D<double> l({2, 3});
    check_layer_gradients(l, {random_tensor({2, 3, 2, 2}, rng)});
  }
  SECTION("UpSampling2D bilinear") {
    graft::UpSampling2D<double> l({3, 2}, "bilinear");
    check_layer_gradients(l, {random_tensor({2, 3, 4, 2}, rng)});
  }
  SECTION("Rescaling scalar and per-channel") {
    graft::Rescaling<double> a(1.0 / 255, -0.5);
    check_layer_gradients(a, {random_tensor({2, 3, 3, 3}, rng)});
    graft::Rescaling<double> b({0.5, 2.0, -1.0}, {1.0, 0.0, 3.0});
    check_layer_gradients(b, {random_tensor({2, 3, 3, 3}, rng)});
  }
}

TEST_CASE("UpSampling2D: nearest repeats, bilinear uses half-pixel centres", "[vision][upsampling]") {
  Tensor<double> x({1, 1, 2, 1}, {0, 1});
  graft::UpSampling2D<double> b({1, 2}, "bilinear");
  auto y = run(b, x);
  REQUIRE(y.shape() == Shape{1, 1, 4, 1});
  CHECK(y[0] == Approx(0));
  CHECK(y[1] == Approx(0.25));
  CHECK(y[2] == Approx(0.75));
  CHECK(y[3] == Approx(1));
  graft::UpSampling2D<double> n(2);
  auto z = run(n, Tensor<double>({1, 1, 2, 1}, {3, 4}));
  REQUIRE(z.shape() == Shape{1, 2, 4, 1});
  CHECK(z[0] == 3);
  CHECK(z[1] == 3);
  CHECK(z[2] == 4);
  CHECK(z[5] == 3);
  // bilinear 2x2 -> 4x4 (tf.image.resize / torch interpolate align_corners=False)
  graft::UpSampling2D<double> b2(2, "bilinear");
  auto w = run(b2, Tensor<double>({1, 2, 2, 1}, {1, 2, 3, 4}));
  const double want[16] = {1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4};
  for (int i = 0; i < 16; ++i) CHECK(w[i] == Approx(want[i]));
}

TEST_CASE("Rescaling multiplies then adds, per channel when given lists", "[vision][rescaling]") {
  graft::Rescaling<double> r({1.0, 2.0}, {0.0, -1.0});
  auto y = run(r, Tensor<double>({1, 2, 2}, {1, 1, 3, 3}));
  CHECK(y[0] == 1);
  CHECK(y[1] == 1);
  CHECK(y[2] == 3);
  CHECK(y[3] == 5);
}

TEST_CASE("vision layers give the same results on one thread and on several", "[vision][threads]") {
  graft::Rng rng(41);
  auto check = [&](graft::Layer<double>& l, const Shape& in) {
    INFO(l.class_name());
    auto x = random_tensor(in, rng);
    l.build({x.shape()});
    randomize(l, rng, 0.5, 1.5);
    auto dy = random_tensor(l.compute_output_shapes({x.shape()})[0], rng);
    auto pass = [&](int threads, Tensor<double>& y, Tensor<double>& dx, std::vector<Tensor<double>>& g) {
      graft::set_num_threads(threads);
      auto st = l.make_state();
      l.forward({&x}, {&y}, st.get(), true);
      for (auto* p : l.weights()) p->grad_fresh = true;
      l.backward({&x}, {&y}, {&dy}, {&dx}, st.get());
      g.clear();
      for (auto* p : l.trainable_weights()) g.push_back(p->grad);
      graft::set_num_threads(0);  // back to the default
    };
    Tensor<double> y1, y2, dx1, dx2;
    std::vector<Tensor<double>> g1, g2;
    pass(1, y1, dx1, g1);
    pass(3, y2, dx2, g2);
    require_close(y1, y2, 1e-12);
    require_close(dx1, dx2, 1e-12);
    REQUIRE(g1.size() == g2.size());
    for (size_t i = 0; i < g1.size(); ++i) require_close(g1[i], g2[i], 1e-12);
  };
  graft::Conv2D<double> conv(8, 3, 2, "same", "tanh");
  check(conv, {5, 33, 32, 8});
  graft::DepthwiseConv2D<double> dw(3, 1, "same", 2);
  check(dw, {5, 12, 12, 16});
  graft::SeparableConv2D<double> sep(8, 3, 1, "same", 2);
  check(sep, {5, 12, 12, 8});
  graft::MaxPooling2D<double> mp(3, 2, "same");
  check(mp, {5, 24, 24, 16});
  graft::AveragePooling2D<double> ap(3, 1, "same");
  check(ap, {5, 24, 24, 16});
  graft::MaxPooling1D<double> mp1(2, 1);
  check(mp1, {5, 300, 16});
}
