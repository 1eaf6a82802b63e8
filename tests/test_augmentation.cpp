// Image preprocessing and augmentation layers (RandomFlip, RandomRotation, RandomZoom,
// RandomTranslation, RandomContrast, RandomBrightness, RandomCrop, Resizing, CenterCrop) and
// Normalization.adapt: outputs against Keras 3.15.1's own (augmentation_keras_expected.hpp, made by
// tests/keras3/make_augmentation_expected.py with deterministic factors), configs exactly as
// Keras writes them, identity in inference, seeds, draw distributions, gradient checks in double
// with fixed transforms, and argument errors.
#include <graft/graft.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <set>

#include "augmentation_keras_expected.hpp"
#include "gradcheck.hpp"

namespace {

using graft::Index;
using graft::json;
using graft::Layer;
using graft::Shape;
using graft::Tensor;
using graft_test::check_layer_gradients;
using graft_test::GradCheckOptions;
using graft_test::random_tensor;
namespace expected = augmentation_expected;

/// The generator's test image: ((b*131 + i*31 + j*17 + c*7) % 97) * 2.5 + 1 (exact in float).
template <class T>
Tensor<T> image(const Shape& s) {
  Tensor<T> t(s);
  Index k = 0;
  for (Index b = 0; b < s[0]; ++b)
    for (Index i = 0; i < s[1]; ++i)
      for (Index j = 0; j < s[2]; ++j)
        for (Index c = 0; c < s[3]; ++c) t[k++] = static_cast<T>(((b * 131 + i * 31 + j * 17 + c * 7) % 97) * 2.5 + 1);
  return t;
}

template <class T>
std::shared_ptr<Layer<T>> from_keras(const char* cls, const char* config) {
  return graft::LayerRegistry<T>::instance().create(cls, json::parse(config));
}

template <class T>
Tensor<T> run(Layer<T>& l, const Tensor<T>& x, bool training, graft::CallState* st = nullptr) {
  l.build({x.shape()});
  std::unique_ptr<graft::CallState> own;
  if (!st) {
    own = l.make_state();
    st = own.get();
  }
  Tensor<T> y;
  l.forward({&x}, {&y}, st, training);
  return y;
}

Shape shape_of(const std::vector<long>& v) { return Shape(v.begin(), v.end()); }

bool equal(const Tensor<float>& a, const Tensor<float>& b) {
  return a.shape() == b.shape() && std::equal(a.begin(), a.end(), b.begin());
}

/// Runs `inner` with its random generator reset before every forward, so that each forward of a
/// gradient check draws the same transform.
class Replay : public Layer<double> {
 public:
  explicit Replay(std::shared_ptr<Layer<double>> inner) : inner_(std::move(inner)), state_(inner_->random_generator()->state()) {}
  std::string class_name() const override { return "Replay"; }
  std::vector<Shape> compute_output_shapes(const std::vector<Shape>& in) const override { return inner_->compute_output_shapes(in); }
  std::unique_ptr<graft::CallState> make_state() const override { return inner_->make_state(); }
  void forward(const graft::In<double>& in, const graft::Out<double>& out, graft::CallState* st, bool training) override {
    inner_->random_generator()->set_state(state_);
    inner_->forward(in, out, st, training);
  }
  void backward(const graft::In<double>& in, const graft::In<double>& out, const graft::In<double>& dout,
                const graft::Out<double>& din, graft::CallState* st) override {
    inner_->backward(in, out, dout, din, st);
  }

 protected:
  void build_impl(const std::vector<Shape>& s) override { inner_->build(s); }

 private:
  std::shared_ptr<Layer<double>> inner_;
  std::string state_;
};

/// Gradient check of a layer made from a Keras config, with its draws replayed.
void gradcheck_config(const std::string& cls, const json& cfg, const Shape& in, double lo = 0, double hi = 255) {
  INFO(cls << " " << cfg.dump());
  auto l = graft::LayerRegistry<double>::instance().create(cls, cfg);
  graft::Rng rng(17);
  auto x = random_tensor(in, rng, lo, hi);
  GradCheckOptions o;
  o.tol = 1e-6;
  o.eps = 1e-4;
  if (l->random_generator()) {
    Replay r(l);
    check_layer_gradients(r, {x}, o);
  } else {
    check_layer_gradients(*l, {x}, o);
  }
}

json base(const char* name) {
  return json{{"name", name}, {"trainable", true}, {"dtype", "float32"}, {"data_format", "channels_last"}};
}

}  // namespace

TEST_CASE("augmentation layers compute what Keras 3 computes, on deterministic factors", "[augmentation][keras3]") {
  const auto& cases = expected::cases();
  REQUIRE(cases.size() >= 60);
  double worst = 0;
  for (const auto& c : cases) {
    if (std::string(c.name).find("(forced)") != std::string::npos) continue;  // flips: see the distribution test
    INFO(c.name << ": " << c.config);
    auto l = from_keras<float>(c.class_name, c.config);
    const auto x = image<float>(shape_of(c.in));
    const auto y = run(*l, x, c.training);
    REQUIRE(y.shape() == shape_of(c.out));
    REQUIRE(static_cast<size_t>(y.size()) == c.y.size());
    // float32 on both sides; sampling coordinates may differ in their last bits (a pixel step
    // in the test image is up to ~240), nearest interpolation and crops must match exactly
    for (Index i = 0; i < y.size(); ++i) {
      const double k = c.y[static_cast<size_t>(i)], g = y[i];
      INFO("element " << i << ": graft " << g << ", Keras " << k);
      REQUIRE(std::abs(g - k) <= 2e-3 + 2e-6 * std::abs(k));
      worst = std::max(worst, std::abs(g - k));
    }
    // the same layer in double agrees too
    auto ld = from_keras<double>(c.class_name, c.config);
    const auto yd = run(*ld, image<double>(shape_of(c.in)), c.training);
    for (Index i = 0; i < yd.size(); ++i) REQUIRE(std::abs(yd[i] - c.y[static_cast<size_t>(i)]) <= 2e-3 + 1e-5 * std::abs(c.y[static_cast<size_t>(i)]));
  }
  WARN("largest difference from Keras over " << cases.size() << " cases: " << worst);
}

TEST_CASE("augmentation layer configs round-trip exactly as Keras writes them", "[augmentation][config]") {
  auto check = [](const char* cls, const char* text) {
    INFO(cls << ": " << text);
    const json k = json::parse(text);
    auto l = from_keras<float>(cls, text);
    CHECK(l->class_name() == cls);
    const json g = graft::keras3::layer_config(*l);
    CHECK(g == k);
    CHECK(g.dump() == k.dump());  // numbers keep their spelling (0 stays 0, 0.0 stays 0.0)
    auto again = graft::LayerRegistry<float>::instance().create(cls, g);
    CHECK(graft::keras3::layer_config(*again).dump() == k.dump());
  };
  for (const auto& c : expected::cases()) check(c.class_name, c.config);
  for (const auto& c : expected::configs()) check(c.class_name, c.config);
}

TEST_CASE("augmentation layers built in C++ write Keras' configs", "[augmentation][config]") {
  auto cfg = [](Layer<float>& l) { return graft::keras3::layer_config(l); };
  auto keras = [](const char* cls, const std::string& name) {
    for (const auto& c : expected::configs())
      if (std::string(c.class_name) == cls && json::parse(c.config)["name"] == name) return json::parse(c.config);
    FAIL("no Keras config " << cls << " " << name);
    return json();
  };
  graft::RandomFlip<float> f("horizontal_and_vertical", -1, "cfg0");
  CHECK(cfg(f) == keras("RandomFlip", "cfg0"));
  graft::RandomRotation<float> r(0.1, "reflect", "bilinear", -1, 0.0, "cfg2");
  CHECK(cfg(r) == keras("RandomRotation", "cfg2"));
  graft::RandomRotation<float> r2({0.2, -0.1}, "constant", "nearest", 3, 1, "cfg4");
  CHECK(cfg(r2) == keras("RandomRotation", "cfg4"));
  graft::RandomZoom<float> z(0.1, {}, "reflect", "bilinear", -1, 0.0, "cfg5");
  CHECK(cfg(z) == keras("RandomZoom", "cfg5"));
  graft::RandomTranslation<float> t(0.1, 0.2, "reflect", "bilinear", -1, 0.0, "cfg8");
  CHECK(cfg(t) == keras("RandomTranslation", "cfg8"));
  graft::RandomContrast<float> c(0.2, {0, 255}, -1, "cfg10");
  CHECK(cfg(c) == keras("RandomContrast", "cfg10"));
  CHECK(c.factor() == std::make_pair(0.0, 0.2));  // Keras 3: a number f reads as (0, f)
  graft::RandomBrightness<float> b({-0.1, 0.3}, {1, 0}, 5, "cfg14");
  CHECK(cfg(b) == keras("RandomBrightness", "cfg14"));
  graft::Resizing<float> rs(3, 4, "bilinear", false, false, "constant", 0.0, false, "cfg18");
  CHECK(cfg(rs) == keras("Resizing", "cfg18"));
  graft::CenterCrop<float> cc(2, 3, "cfg21");
  CHECK(cfg(cc) == keras("CenterCrop", "cfg21"));
  // RandomCrop without a seed draws one, as Keras does, and writes it
  graft::RandomCrop<float> rc(3, 4);
  CHECK(cfg(rc)["seed"].is_number_integer());
  CHECK(cfg(rc)["seed"].get<long long>() >= 1);
  CHECK(cfg(rc)["seed"].get<long long>() <= 1000000000);
}

TEST_CASE("random augmentation layers are the identity in inference; Resizing and CenterCrop always apply",
          "[augmentation]") {
  const auto x = image<float>({16, 6, 5, 2});  // 16 images: RandomFlip leaves some of them alone, not all
  std::vector<std::shared_ptr<Layer<float>>> random = {
      std::make_shared<graft::RandomFlip<float>>("horizontal_and_vertical", 1),
      std::make_shared<graft::RandomRotation<float>>(0.3, "reflect", "bilinear", 2),
      std::make_shared<graft::RandomZoom<float>>(0.4, 0.2, "reflect", "bilinear", 3),
      std::make_shared<graft::RandomTranslation<float>>(0.3, 0.3, "reflect", "bilinear", 4),
      std::make_shared<graft::RandomContrast<float>>(0.5, std::make_pair(0.0, 255.0), 5),
      std::make_shared<graft::RandomBrightness<float>>(0.5, std::make_pair(0.0, 255.0), 6)};
  for (auto& l : random) {
    INFO(l->class_name());
    CHECK(equal(run(*l, x, false), x));
    CHECK_FALSE(equal(run(*l, x, true), x));
    CHECK(l->parallel_rows(false));
    CHECK_FALSE(l->parallel_rows(true));  // never in fit()'s row-sliced frozen prefix
    REQUIRE(l->random_generator() != nullptr);
    // the inference gradient is the identity too
    auto st = l->make_state();
    Tensor<float> y, dx;
    l->forward({&x}, {&y}, st.get(), false);
    l->backward({&x}, {&y}, {&x}, {&dx}, st.get());
    CHECK(equal(dx, x));
  }
  graft::RandomCrop<float> rc(4, 3, 1);
  CHECK(rc.parallel_rows(false));
  CHECK_FALSE(rc.parallel_rows(true));
  graft::Resizing<float> rs(3, 3);
  graft::CenterCrop<float> cc(2, 2);
  CHECK(rs.parallel_rows(true));
  CHECK(cc.parallel_rows(true));
  CHECK(rs.random_generator() == nullptr);
  CHECK(run(rs, x, false).shape() == Shape{16, 3, 3, 2});
  CHECK(equal(run(cc, x, false), run(cc, x, true)));

  // in a model: predict passes images through the augmentation untouched
  graft::Sequential<float> m;
  m.add(std::make_shared<graft::InputLayer<float>>(Shape{6, 5, 2}));
  for (auto& l : random) m.add(l);
  CHECK(equal(m.predict(x), x));
  CHECK_FALSE(m.parallel_rows(true));
  CHECK(m.parallel_rows(false));
}

TEST_CASE("augmentation draws are reproducible from the seed and from the generator state", "[augmentation]") {
  const auto x = image<float>({4, 6, 6, 1});
  auto make = [](long long seed) {
    std::vector<std::shared_ptr<Layer<float>>> v = {
        std::make_shared<graft::RandomFlip<float>>("horizontal", seed), std::make_shared<graft::RandomRotation<float>>(0.2, "reflect", "bilinear", seed),
        std::make_shared<graft::RandomZoom<float>>(0.2, graft::ImageFactor(), "reflect", "bilinear", seed),
        std::make_shared<graft::RandomTranslation<float>>(0.2, 0.2, "reflect", "bilinear", seed),
        std::make_shared<graft::RandomContrast<float>>(0.5, std::make_pair(0.0, 255.0), seed),
        std::make_shared<graft::RandomBrightness<float>>(0.5, std::make_pair(0.0, 255.0), seed),
        std::make_shared<graft::RandomCrop<float>>(4, 3, seed)};
    return v;
  };
  auto a = make(42), b = make(42), c = make(43);
  for (size_t i = 0; i < a.size(); ++i) {
    INFO(a[i]->class_name());
    auto ya = run(*a[i], x, true);
    CHECK(equal(ya, run(*b[i], x, true)));
    std::string saved = a[i]->random_generator()->state();
    auto y2 = run(*a[i], x, true);
    CHECK_FALSE(equal(y2, ya));  // fresh draws on the next batch
    bool differs = !equal(run(*c[i], x, true), ya);
    for (int k = 0; k < 3 && !differs; ++k) differs = !equal(run(*c[i], x, true), ya);  // a flip can agree by chance
    CHECK(differs);
    a[i]->random_generator()->set_state(saved);  // what a checkpoint restores
    CHECK(equal(run(*a[i], x, true), y2));
  }
}

TEST_CASE("augmentation draws follow Keras' distributions", "[augmentation]") {
  const Index N = 4000;
  const auto x = image<float>({N, 3, 4, 1});
  SECTION("RandomFlip flips about half of the images, each exactly as Keras flips it") {
    for (const char* mode : {"horizontal", "vertical", "horizontal_and_vertical"}) {
      INFO(mode);
      graft::RandomFlip<float> f(mode, 5);
      auto y = run(f, x, true);
      const std::string cfg = graft::keras3::layer_config(f).dump();
      // Keras' flip of the same images, from the forced case of the matching mode
      Tensor<float> small = image<float>({2, 5, 7, 2});
      const expected::Case* kc = nullptr;
      for (const auto& c : expected::cases())
        if (std::string(c.class_name) == "RandomFlip" && json::parse(c.config)["mode"] == mode) kc = &c;
      REQUIRE(kc);
      graft::RandomFlip<float> f2(mode, 6);
      auto ys = run(f2, small, true);
      const Index per = ys.size() / 2;
      for (Index b = 0; b < 2; ++b) {
        bool same = true, flipped = true;
        for (Index k = 0; k < per; ++k) {
          same = same && ys[b * per + k] == small[b * per + k];
          flipped = flipped && ys[b * per + k] == kc->y[static_cast<size_t>(b * per + k)];
        }
        CHECK((same || flipped));
      }
      Index count = 0;
      const Index p = x.inner(1);
      for (Index b = 0; b < N; ++b) count += !std::equal(x.data() + b * p, x.data() + (b + 1) * p, y.data() + b * p);
      CHECK(count > N * 0.46);
      CHECK(count < N * 0.54);
    }
  }
  SECTION("affine, colour and crop draws stay in their ranges and cover them") {
    auto check_spread = [](std::vector<double> v, double lo, double hi) {
      const auto mm = std::minmax_element(v.begin(), v.end());
      CHECK(*mm.first >= lo - 1e-4);
      CHECK(*mm.second <= hi + 1e-4);
      CHECK(*mm.first < lo + 0.02 * (hi - lo));
      CHECK(*mm.second > hi - 0.02 * (hi - lo));
      double mean = 0;
      for (double a : v) mean += a;
      mean /= static_cast<double>(v.size());
      CHECK(std::abs(mean - (lo + hi) / 2) < 0.03 * (hi - lo));
    };
    using State = graft::RandomImageLayer<float>::State;
    graft::RandomRotation<float> rot(0.1, "reflect", "bilinear", 3);
    auto st = rot.make_state();
    run(rot, x, true, st.get());
    std::vector<double> v;
    for (auto& t : static_cast<State*>(st.get())->transforms) v.push_back(std::atan2(t[3], t[0]) * 180 / 3.14159265358979);
    check_spread(v, -36, 36);
    graft::RandomZoom<float> zoom({-0.3, 0.2}, graft::ImageFactor(), "reflect", "bilinear", 4);
    st = zoom.make_state();
    run(zoom, x, true, st.get());
    v.clear();
    for (auto& t : static_cast<State*>(st.get())->transforms) {
      CHECK(t[0] == t[4]);  // one draw for both axes without width_factor
      v.push_back(t[0]);
    }
    check_spread(v, 0.7, 1.2);
    graft::RandomTranslation<float> tr(0.25, {-0.5, 0.0}, "reflect", "bilinear", 5);
    st = tr.make_state();
    run(tr, x, true, st.get());
    std::vector<double> vx, vy;
    for (auto& t : static_cast<State*>(st.get())->transforms) {
      vx.push_back(-t[2] / 4.0);
      vy.push_back(-t[5] / 3.0);
    }
    check_spread(vx, -0.5, 0.0);
    check_spread(vy, -0.25, 0.25);
    graft::RandomContrast<float> con(0.2, {0, 255}, 6);  // Keras 3: factors in [1, 1.2]
    st = con.make_state();
    run(con, x, true, st.get());
    v.assign(static_cast<State*>(st.get())->values.begin(), static_cast<State*>(st.get())->values.end());
    check_spread(v, 1.0, 1.2);
    graft::RandomBrightness<float> bri(0.2, {0, 1}, 7);
    st = bri.make_state();
    run(bri, x, true, st.get());
    v.assign(static_cast<State*>(st.get())->values.begin(), static_cast<State*>(st.get())->values.end());
    check_spread(v, -0.2, 0.2);
  }
  SECTION("RandomCrop takes one window per batch, at every possible offset over many batches") {
    graft::RandomCrop<float> rc(3, 2, 8);
    const auto xs = image<float>({2, 5, 6, 1});
    std::set<std::pair<Index, Index>> seen;
    for (int rep = 0; rep < 300; ++rep) {
      auto y = run(rc, xs, true);
      REQUIRE(y.shape() == Shape{2, 3, 2, 1});
      bool found = false;
      for (Index hs = 0; hs <= 2 && !found; ++hs)
        for (Index ws = 0; ws <= 4 && !found; ++ws) {
          bool ok = true;
          for (Index b = 0; b < 2; ++b)
            for (Index i = 0; i < 3; ++i)
              for (Index j = 0; j < 2; ++j) ok = ok && y[(b * 3 + i) * 2 + j] == xs[(b * 5 + hs + i) * 6 + ws + j];
          if (ok) {
            found = true;
            seen.insert({hs, ws});
          }
        }
      REQUIRE(found);
    }
    CHECK(seen.size() == 15);
  }
}

TEST_CASE("augmentation layers' backward passes match numerical gradients (double, fixed transforms)", "[augmentation][gradients]") {
  const Shape S{2, 5, 6, 2};
  SECTION("affine layers: every fill mode and interpolation") {
    for (const char* fm : {"reflect", "wrap", "constant", "nearest"})
      for (const char* ip : {"bilinear", "nearest"}) {
        json c = base("rot");
        c.update({{"factor", {0.07, 0.07}}, {"fill_mode", fm}, {"interpolation", ip}, {"fill_value", 2.5}, {"seed", nullptr}});
        gradcheck_config("RandomRotation", c, S);
      }
    json z = base("zoom");
    z.update({{"height_factor", {-0.3, 0.4}}, {"width_factor", {0.2, 0.5}}, {"fill_mode", "constant"}, {"interpolation", "bilinear"},
              {"fill_value", 1.0}, {"seed", 3}});
    gradcheck_config("RandomZoom", z, S);
    z["fill_mode"] = "reflect";
    gradcheck_config("RandomZoom", z, S);
    json t = base("tr");
    t.update({{"height_factor", {-0.3, 0.3}}, {"width_factor", 0.4}, {"fill_mode", "wrap"}, {"interpolation", "bilinear"},
              {"fill_value", 0.0}, {"seed", 4}});
    gradcheck_config("RandomTranslation", t, S);
  }
  SECTION("flips, colour layers (clipped values included) and crops") {
    for (const char* mode : {"horizontal", "vertical", "horizontal_and_vertical"}) {
      json f = base("flip");
      f.update({{"mode", mode}, {"seed", 9}});
      gradcheck_config("RandomFlip", f, Shape{4, 3, 4, 2});
    }
    json c = base("contrast");
    c.update({{"factor", {0.3, 0.6}}, {"value_range", {0, 255}}, {"seed", 5}});
    gradcheck_config("RandomContrast", c, S);
    c["value_range"] = {40, 200};  // some values clip
    gradcheck_config("RandomContrast", c, S);
    json b = base("brightness");
    b.update({{"factor", {-0.4, 0.4}}, {"value_range", {30, 220}}, {"seed", 6}});
    gradcheck_config("RandomBrightness", b, S);
    for (auto hw : {std::make_pair(3, 4), std::make_pair(5, 4), std::make_pair(7, 3)}) {
      json r = base("crop");
      r.update({{"height", hw.first}, {"width", hw.second}, {"seed", 7}});
      gradcheck_config("RandomCrop", r, S);
    }
  }
  SECTION("Resizing and CenterCrop") {
    for (const char* ip : {"bilinear", "nearest", "bicubic"})
      for (auto hw : {std::make_pair(3, 4), std::make_pair(8, 9)})
        for (bool aa : {false, true})
          for (int mode : {0, 1, 2}) {
            json r = base("resizing");
            r.update({{"height", hw.first}, {"width", hw.second}, {"interpolation", ip}, {"crop_to_aspect_ratio", mode == 1},
                      {"pad_to_aspect_ratio", mode == 2}, {"fill_mode", "constant"}, {"fill_value", 3.0}, {"antialias", aa}});
            gradcheck_config("Resizing", r, S);
          }
    for (auto hw : {std::make_pair(3, 4), std::make_pair(6, 2)}) {
      json c = base("center_crop");
      c.update({{"height", hw.first}, {"width", hw.second}});
      gradcheck_config("CenterCrop", c, S);
    }
  }
}

TEST_CASE("augmentation layers refuse bad arguments with Keras' checks", "[augmentation][errors]") {
  using graft::value_error;
  CHECK_THROWS_AS(graft::RandomRotation<float>(1.5), value_error);
  CHECK_THROWS_AS(graft::RandomRotation<float>({1.2, 1.5}), value_error);
  CHECK_THROWS_AS(graft::RandomRotation<float>(0.1, "mirror"), value_error);
  CHECK_THROWS_AS(graft::RandomRotation<float>(0.1, "reflect", "bicubic"), value_error);
  CHECK_THROWS_AS(graft::RandomZoom<float>(-1.0), value_error);  // (-1, 1]
  CHECK_NOTHROW(graft::RandomZoom<float>(1.0));
  CHECK_THROWS_AS(graft::RandomZoom<float>(0.1, {0.2, -1.0}), value_error);
  CHECK_NOTHROW(graft::RandomTranslation<float>(-1.0, 1.0));  // [-1, 1]
  CHECK_THROWS_AS(graft::RandomTranslation<float>(0.1, 1.1), value_error);
  CHECK_THROWS_AS(graft::RandomContrast<float>(-0.1), value_error);  // bounds (0, 1)
  CHECK_THROWS_AS(graft::RandomContrast<float>({0.5, -0.5}), value_error);
  CHECK_NOTHROW(graft::RandomContrast<float>({-0.5, 0.5}));
  CHECK_THROWS_AS(graft::RandomBrightness<float>(1.01), value_error);
  CHECK_THROWS_AS(graft::RandomFlip<float>("diagonal"), value_error);
  CHECK_THROWS_AS(graft::Resizing<float>(0, 4), value_error);
  CHECK_THROWS_AS(graft::Resizing<float>(4, 4, "bilinear", true, true), value_error);
  CHECK_THROWS_AS(graft::Resizing<float>(4, 4, "bilinear", false, false, "reflect"), value_error);
  CHECK_THROWS_AS(graft::Resizing<float>(4, 4, "lanczos3"), graft::unsupported_error);
  CHECK_THROWS_AS(graft::Resizing<float>(4, 4, "cubic"), value_error);
  CHECK_THROWS_AS(graft::CenterCrop<float>(3, -1), value_error);
  CHECK_THROWS_AS(graft::RandomCrop<float>(0, 3), value_error);

  // messages name the layer and say what Keras expects
  json c = base("my_rotation");
  c["factor"] = {0.1, 0.2, 0.3};
  try {
    from_keras<float>("RandomRotation", c.dump().c_str());
    FAIL("no error");
  } catch (const value_error& e) {
    CHECK_THAT(e.what(), Catch::Contains("my_rotation") && Catch::Contains("range [-1, 1]") && Catch::Contains("[0.1,0.2,0.3]"));
  }
  json ch = base("cf");
  ch.update({{"mode", "horizontal"}, {"data_format", "channels_first"}});
  CHECK_THROWS_AS(from_keras<float>("RandomFlip", ch.dump().c_str()), graft::unsupported_error);
  json vr = base("br");
  vr.update({{"factor", 0.1}, {"value_range", {0, 1, 2}}});
  CHECK_THROWS_AS(from_keras<float>("RandomBrightness", vr.dump().c_str()), value_error);
  json rz = base("rz");
  rz.update({{"height", 4}});
  CHECK_THROWS_AS(from_keras<float>("Resizing", rz.dump().c_str()), graft::format_error);  // no width

  // inputs that are not batches of images
  graft::RandomFlip<float> f;
  Tensor<float> flat({2, 6});
  auto st = f.make_state();
  Tensor<float> y;
  CHECK_THROWS_AS(f.forward({&flat}, {&y}, st.get(), true), graft::shape_error);
  CHECK_THROWS_AS(f.compute_output_shapes({Shape{-1, 6}}), graft::shape_error);
}

TEST_CASE("Normalization.adapt computes Keras' mean and variance from a tensor, batches or a data source", "[augmentation][normalization]") {
  const auto raw = expected::adapt_data();
  Tensor<float> d({6, 3, 4});
  std::copy(raw.begin(), raw.end(), d.begin());
  auto close = [](const Tensor<float>& a, const std::vector<float>& b, double tol) {
    REQUIRE(static_cast<size_t>(a.size()) == b.size());
    for (Index i = 0; i < a.size(); ++i) {
      INFO("element " << i << ": graft " << a[i] << ", Keras " << b[static_cast<size_t>(i)]);
      CHECK(std::abs(a[i] - b[static_cast<size_t>(i)]) <= tol * std::max(1.0f, std::abs(b[static_cast<size_t>(i)])));
    }
  };
  for (const auto& a : expected::adapts()) {
    INFO("axis " << a.axis);
    const auto axis = json::parse(a.axis).get<std::vector<int>>();
    graft::Normalization<float> n1(axis);
    n1.adapt(d);
    auto w = n1.get_weights();
    REQUIRE(w.size() == 3);
    close(w[0], a.mean_array, 1e-5);
    close(w[1], a.var_array, 1e-5);
    CHECK(w[2][0] == 0);  // Keras 3 leaves `count` alone
    close(run(n1, d, false), a.y, 1e-5);

    std::vector<Tensor<float>> batches;
    for (auto r : {std::make_pair(0, 2), std::make_pair(2, 3), std::make_pair(3, 6)}) {
      Tensor<float> b({r.second - r.first, 3, 4});
      std::copy(d.data() + r.first * 12, d.data() + r.second * 12, b.data());
      batches.push_back(b);
    }
    graft::Normalization<float> n2(axis);
    n2.adapt(batches);
    close(n2.get_weights()[0], a.mean_batches, 1e-5);
    close(n2.get_weights()[1], a.var_batches, 1e-5);

    // (x, y) pairs: the first element is the data (Keras' _extract_batch)
    std::vector<std::pair<Tensor<float>, Tensor<float>>> pairs;
    for (auto& b : batches) pairs.emplace_back(b, Tensor<float>({b.dim(0), 1}));
    graft::Normalization<float> n3(axis);
    n3.adapt(pairs);
    close(n3.get_weights()[0], a.mean_batches, 1e-5);

    // a data source (size() / load()), read in batches of 4 rows
    struct Source {
      const Tensor<float>* x;
      Index size() const { return x->dim(0); }
      void load(const Index* rows, Index cnt, std::vector<Tensor<float>>& xs, std::vector<Tensor<float>>&) const {
        xs.resize(1);
        xs[0].resize({cnt, 3, 4});
        for (Index r = 0; r < cnt; ++r) std::copy(x->data() + rows[r] * 12, x->data() + (rows[r] + 1) * 12, xs[0].data() + r * 12);
      }
    } src{&d};
    graft::Normalization<float> n4(axis);
    n4.adapt(src, 4);
    close(n4.get_weights()[0], a.mean_array, 1e-5);
    close(n4.get_weights()[1], a.var_array, 1e-5);
  }
  graft::Normalization<float> fixed({-1}, {1.0}, {2.0});
  CHECK_THROWS_AS(fixed.adapt(d), graft::value_error);
  graft::Normalization<float> empty;
  CHECK_THROWS_AS(empty.adapt(std::vector<Tensor<float>>{}), graft::value_error);
  graft::Normalization<float> built;
  built.adapt(d);
  CHECK_THROWS_AS(built.adapt(Tensor<float>({2, 3, 5})), graft::shape_error);  // kept axis of another size
}

TEST_CASE("a model with augmentation trains: gradients flow through the augmentation to earlier layers", "[augmentation][model]") {
  graft::set_random_seed(11);
  auto m = std::make_shared<graft::Sequential<float>>();
  m->add(std::make_shared<graft::InputLayer<float>>(Shape{8, 8, 1}));
  m->add(graft::make<graft::Conv2D>(2, 3, 1, "same"));  // trainable below the augmentation
  m->add(std::make_shared<graft::RandomFlip<float>>("horizontal", 1));
  m->add(std::make_shared<graft::RandomRotation<float>>(0.05, "reflect", "bilinear", 2));
  m->add(std::make_shared<graft::RandomZoom<float>>(0.1, graft::ImageFactor(), "reflect", "bilinear", 3));
  m->add(std::make_shared<graft::RandomContrast<float>>(0.1, std::make_pair(-1000.0, 1000.0), 4));
  m->add(std::make_shared<graft::Resizing<float>>(6, 6));
  m->add(graft::make<graft::GlobalAveragePooling2D>());
  m->add(graft::make<graft::Dense>(1));
  Tensor<float> x({32, 8, 8, 1}), y({32, 1});
  graft::Rng r(3);
  for (auto& v : x) v = static_cast<float>(r.uniform(0, 1));
  for (Index i = 0; i < 32; ++i) y[i] = x[i * 64 + 10] > 0.5f ? 1.f : 0.f;
  m->compile(std::make_shared<graft::SGD<float>>(0.05), "mse");
  auto conv_before = m->layers()[0]->get_weights();
  graft::FitOptions<float> o;
  o.epochs = 2;
  o.batch_size = 8;
  o.verbose = 0;
  o.seed = 1;
  auto h = m->fit(x, y, o);
  auto conv_after = m->layers()[0]->get_weights();
  CHECK_FALSE(std::equal(conv_before[0].begin(), conv_before[0].end(), conv_after[0].begin()));
  // inference skips the random layers: predict is deterministic
  CHECK(equal(m->predict(x), m->predict(x)));
}
