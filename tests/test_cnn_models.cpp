// Real Keras CNNs, model level: the Teachable Machine MobileNetV2 export (nested Sequential >
// Functional), the small corpus CNNs (Keras 2.1 .. 3.9), weights-only CNNs rebuilt in C++, and a
// Sequential whose first layer is a whole conv base (the "model.add(conv_base)" recipe): load,
// predict, freeze the base and train a head, unfreeze the top block, save, reload.
// Batches are tiny: MobileNetV2 at 224x224 costs ~60 MFLOP per image forward.
#include <graft/graft.hpp>
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "gradcheck.hpp"

namespace {

using graft::Index;
using graft::Layer;
using graft::Model;
using graft::Param;
using graft::Shape;
using graft::Tensor;
using json = nlohmann::json;

std::string corpus_file(const std::string& f) { return graft_test::shared_path("keras-corpus/" + f); }


std::shared_ptr<Model<float>> as_model(const std::shared_ptr<Layer<float>>& l) {
  auto m = std::dynamic_pointer_cast<Model<float>>(l);
  REQUIRE(m != nullptr);
  return m;
}

Tensor<float> uniform(const Shape& s, std::uint64_t seed, float lo = 0.f, float hi = 1.f) {
  Tensor<float> t(s);
  graft::Rng rng(seed);
  for (auto& v : t) v = static_cast<float>(rng.uniform(lo, hi));
  return t;
}

Index count(const std::vector<Param<float>*>& ps) {
  Index n = 0;
  for (auto* p : ps) n += p->value.size();
  return n;
}

bool all_finite(const Tensor<float>& t) {
  for (float v : t)
    if (!std::isfinite(v)) return false;
  return true;
}

/// Every weight of every (leaf) layer, keyed "layer/param", copied.
std::map<std::string, Tensor<float>> snapshot(Model<float>& m) {
  std::map<std::string, Tensor<float>> r;
  for (Layer<float>* l : m.unique_layers())
    for (Param<float>* p : l->weights()) r[l->name() + "/" + p->name] = p->value;
  return r;
}

/// Names of the layers having at least one weight that differs between two snapshots.
std::set<std::string> moved_layers(const std::map<std::string, Tensor<float>>& a, const std::map<std::string, Tensor<float>>& b) {
  REQUIRE(a.size() == b.size());
  std::set<std::string> r;
  for (auto& kv : a) {
    auto it = b.find(kv.first);
    REQUIRE(it != b.end());
    if (!(it->second == kv.second)) r.insert(kv.first.substr(0, kv.first.rfind('/')));
  }
  return r;
}

/// Names of the (leaf) layers that have weights.
std::set<std::string> weighted_layers(Model<float>& m) {
  std::set<std::string> r;
  for (Layer<float>* l : m.unique_layers())
    if (!l->weights().empty()) r.insert(l->name());
  return r;
}

/// (path, trainable) of the models and layers inside, recursively, in order. InputLayers are
/// left out: Keras does not save their flag either (their config has no 'trainable').
void trainable_flags(const Model<float>& m, const std::string& prefix, std::vector<std::pair<std::string, bool>>& out) {
  out.emplace_back(prefix + m.name(), m.trainable());
  for (auto& l : m.layers()) {
    if (l->is_model()) trainable_flags(static_cast<const Model<float>&>(*l), prefix + m.name() + "/", out);
    else if (l->class_name() != "InputLayer") out.emplace_back(prefix + m.name() + "/" + l->name(), l->trainable());
  }
}
/// "path=0/1" lines, one per model and layer inside (readable when a comparison fails).
std::string trainable_flags(const Model<float>& m) {
  std::vector<std::pair<std::string, bool>> r;
  trainable_flags(m, "", r);
  std::string s;
  for (auto& e : r) s += e.first + "=" + (e.second ? "1" : "0") + "\n";
  return s;
}

Tensor<float> one_hot(const std::vector<int>& labels, Index classes) {
  Tensor<float> t(Shape{static_cast<Index>(labels.size()), classes}, 0.f);
  for (size_t i = 0; i < labels.size(); ++i) t[static_cast<Index>(i) * classes + labels[i]] = 1.f;
  return t;
}

void check_bitwise_equal(const Tensor<float>& a, const Tensor<float>& b) {
  REQUIRE(a.shape() == b.shape());
  Index diff = 0;
  for (Index i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i])) ++diff;
  CHECK(diff == 0);
}

/// keras.layers.Permute(dims): dims are 1-based and exclude the batch axis. Used here to express
/// a Keras 2 Conv2D(data_format="channels_first") as a channels_last Conv2D followed by
/// Permute((3, 1, 2)). Registered under "Permute" so models holding it save and load again.
template <class T>
class Permute : public graft::UnaryLayer<T> {
 public:
  explicit Permute(std::vector<int> dims, std::string name = {}) : graft::UnaryLayer<T>(std::move(name)), dims_(std::move(dims)) {
    std::vector<int> s = dims_;
    std::sort(s.begin(), s.end());
    for (size_t i = 0; i < s.size(); ++i)
      if (s[i] != static_cast<int>(i) + 1) throw graft::value_error("Permute: dims must be a permutation of 1..rank");
  }
  std::string class_name() const override { return "Permute"; }
  Shape output_shape(const Shape& in) const override {
    if (in.size() != dims_.size() + 1) throw graft::shape_error("Permute: input rank does not match dims");
    Shape o{in[0]};
    for (int d : dims_) o.push_back(in[static_cast<size_t>(d)]);
    return o;
  }
  void forward1(const Tensor<T>& x, Tensor<T>& y, graft::CallState*, bool) override {
    std::vector<int> p{0};
    for (int d : dims_) p.push_back(d);
    permute(x, y, p);
  }
  void backward1(const Tensor<T>&, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx, graft::CallState*) override {
    if (!dx) return;
    std::vector<int> inv(dims_.size() + 1, 0);
    for (size_t k = 0; k < dims_.size(); ++k) inv[static_cast<size_t>(dims_[k])] = static_cast<int>(k) + 1;
    permute(dy, *dx, inv);
  }
  json get_config() const override {
    json c = this->base_config();
    c["dims"] = dims_;
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    auto l = std::make_shared<Permute>(j.at("dims").get<std::vector<int>>(), j.value("name", std::string()));
    l->set_trainable(j.value("trainable", true));
    return l;
  }

 private:
  /// y axis k = x axis p[k].
  static void permute(const Tensor<T>& x, Tensor<T>& y, const std::vector<int>& p) {
    const size_t r = p.size();
    Shape ys(r);
    for (size_t k = 0; k < r; ++k) ys[k] = x.dim(p[k]);
    y.resize(ys);
    std::vector<Index> xstride(r, 1);
    for (size_t k = r - 1; k-- > 0;) xstride[k] = xstride[k + 1] * x.dim(static_cast<Index>(k + 1));
    std::vector<Index> step(r), idx(r, 0);
    for (size_t k = 0; k < r; ++k) step[k] = xstride[static_cast<size_t>(p[k])];
    Index off = 0;
    for (Index i = 0; i < y.size(); ++i) {
      y[i] = x[off];
      for (size_t k = r; k-- > 0;) {
        off += step[k];
        if (++idx[k] < ys[k]) break;
        off -= step[k] * ys[k];
        idx[k] = 0;
      }
    }
  }
  std::vector<int> dims_;
};

/// Input sample n of tests/cnn_numpy_reference.py: x[h, w] = ((3h + 5w + 7n) % 11) / 10.
Tensor<float> reference_digits() {
  Tensor<float> x(Shape{2, 28, 28, 1});
  for (Index n = 0; n < 2; ++n)
    for (Index h = 0; h < 28; ++h)
      for (Index w = 0; w < 28; ++w) x[(n * 28 + h) * 28 + w] = static_cast<float>((3 * h + 5 * w + 7 * n) % 11) / 10.f;
  return x;
}

void check_reference(const Tensor<float>& y, const std::vector<std::vector<double>>& want) {
  REQUIRE(y.shape() == Shape{2, 10});
  for (Index n = 0; n < 2; ++n)
    for (Index k = 0; k < 10; ++k) {
      INFO("sample " << n << " class " << k);
      CHECK(y[n * 10 + k] == Approx(want[static_cast<size_t>(n)][static_cast<size_t>(k)]).epsilon(2e-5).margin(1e-8));
    }
}

}  // namespace

TEST_CASE("the Teachable Machine MobileNetV2 export loads, predicts and counts parameters as Keras does", "[cnn]") {
  auto m = graft::load_model<float>(corpus_file("tm_aknight_keras_model.h5"));
  REQUIRE(m->class_name() == "Sequential");
  REQUIRE(m->layers().size() == 2);
  auto seq1 = as_model(m->get_layer("sequential_1"));
  auto head = as_model(m->get_layer("sequential_3"));
  auto base = as_model(seq1->get_layer("model1"));
  CHECK(base->class_name() == "Functional");
  CHECK(m->input_shapes()[0] == Shape{-1, 224, 224, 3});
  CHECK(m->output_shapes()[0] == Shape{-1, 2});
  CHECK(base->output_shapes()[0] == Shape{-1, 7, 7, 1280});
  CHECK(m->compiled() == false);  // Teachable Machine exports have no training_config

  // model.summary() of tf.keras 2.4 for this file: 538,508 / 524,428 / 14,080 (MobileNetV2
  // alpha 0.35 without top: 410,208 / 396,128 / 14,080, the moving statistics of 52 BN layers)
  CHECK(count(m->weights()) == 538508);
  CHECK(count(m->trainable_weights()) == 524428);
  CHECK(count(m->non_trainable_weights()) == 14080);
  CHECK(count(base->weights()) == 410208);
  CHECK(count(base->trainable_weights()) == 396128);
  CHECK(m->weights().size() == 263);  // 260 in the base, 2 + 1 in the head (last Dense has no bias)
  Index bn = 0, dw = 0, add = 0;
  for (auto& l : base->layers()) {
    bn += l->class_name() == "BatchNormalization";
    dw += l->class_name() == "DepthwiseConv2D";
    add += l->class_name() == "Add";
  }
  CHECK(bn == 52);
  CHECK(dw == 17);
  CHECK(add == 10);
  std::ostringstream os;
  m->summary(os);
  CHECK(os.str().find("Total params: 538,508") != std::string::npos);
  CHECK(os.str().find("Trainable params: 524,428") != std::string::npos);
  CHECK(os.str().find("Non-trainable params: 14,080") != std::string::npos);

  // Teachable Machine feeds images scaled to [-1, 1]
  Tensor<float> x = uniform({2, 224, 224, 3}, 11, -1.f, 1.f);
  Tensor<float> y = m->predict(x, 2);
  REQUIRE(y.shape() == Shape{2, 2});
  REQUIRE(all_finite(y));
  for (Index i = 0; i < 2; ++i) CHECK(y[2 * i] + y[2 * i + 1] == Approx(1.0).epsilon(1e-5));
}

TEST_CASE("MobileNetV2 fine-tuning: frozen base trains the head only, then the top block unfreezes; save and reload", "[cnn][train]") {
  auto m = graft::load_model<float>(corpus_file("tm_aknight_keras_model.h5"));
  auto seq1 = as_model(m->get_layer("sequential_1"));
  auto head = as_model(m->get_layer("sequential_3"));
  auto base = as_model(seq1->get_layer("model1"));
  Tensor<float> x = uniform({4, 224, 224, 3}, 21, -1.f, 1.f);
  Tensor<float> y = one_hot({0, 1, 1, 0}, 2);

  // phase 1: the whole conv base frozen (base BN layers then run in inference mode)
  seq1->set_trainable(false);
  CHECK(count(m->trainable_weights()) == 128300);
  CHECK(count(m->non_trainable_weights()) == 410208);
  m->compile(std::make_shared<graft::Adam<float>>(1e-3), "categorical_crossentropy", {"accuracy"});
  const double loss_inference = m->evaluate(x, y, 4)["loss"];
  auto s0 = snapshot(*m);
  const double loss_train = m->train_on_batch({x}, {y});
  // in training mode the frozen BN layers use their moving statistics: same loss as inference
  CHECK(loss_train == Approx(loss_inference).epsilon(1e-5));
  auto s1 = snapshot(*m);
  CHECK(moved_layers(s0, s1) == std::set<std::string>{"dense_Dense1", "dense_Dense2"});

  // phase 2: unfreeze the last MobileNetV2 block (block_16_*) and Conv_1 / Conv_1_bn
  std::vector<std::string> top = {"block_16_expand",     "block_16_expand_BN",     "block_16_expand_relu",
                                  "block_16_depthwise",  "block_16_depthwise_BN",  "block_16_depthwise_relu",
                                  "block_16_project",    "block_16_project_BN",    "Conv_1",
                                  "Conv_1_bn",           "out_relu"};
  for (auto& n : top) REQUIRE_NOTHROW(base->get_layer(n));
  REQUIRE(base->get_layer(-1)->name() == "out_relu");
  // the layers from block_16_expand on are exactly the top block
  std::vector<std::string> tail;
  bool on = false;
  for (auto& l : base->layers()) {
    on = on || l->name() == "block_16_expand";
    if (on) tail.push_back(l->name());
  }
  CHECK(tail == top);
  seq1->set_trainable(true);
  base->set_trainable_from("block_16_expand");
  Index expect_trainable = count(head->weights());
  std::set<std::string> expect_moved = {"dense_Dense1", "dense_Dense2"};
  for (auto& n : top) {
    auto l = base->get_layer(n);
    CHECK(l->trainable());
    for (auto* p : l->weights())
      if (p->trainable) expect_trainable += p->value.size();
    if (!l->weights().empty()) expect_moved.insert(n);
  }
  for (auto& l : base->layers())
    if (std::find(top.begin(), top.end(), l->name()) == top.end()) CHECK_FALSE(l->trainable());
  CHECK(count(m->trainable_weights()) == expect_trainable);
  CHECK(count(m->weights()) == 538508);
  m->compile(std::make_shared<graft::RMSprop<float>>(1e-5), "categorical_crossentropy", {"accuracy"});
  double l2 = m->train_on_batch({x}, {y});
  CHECK(std::isfinite(l2));
  auto s2 = snapshot(*m);
  // exactly the unfrozen layers and the head moved; BN moving statistics of blocks 0..15 untouched
  CHECK(moved_layers(s1, s2) == expect_moved);
  for (auto& n : {"block_16_project_BN/moving_mean", "Conv_1_bn/moving_variance"}) CHECK_FALSE(s1.at(n) == s2.at(n));
  for (auto& n : {"block_15_project_BN/moving_mean", "bn_Conv1/moving_variance"}) CHECK(s1.at(n) == s2.at(n));

  // save with graft::save_model; reload: identical predictions, trainable flags and compile state
  const std::string path = graft_test::tmp_dir() + "/tm_finetuned.h5";
  graft::save_model(*m, path);
  auto r = graft::load_model<float>(path);
  Tensor<float> xt = x.slice_rows(0, 2);
  check_bitwise_equal(m->predict(xt, 2), r->predict(xt, 2));
  CHECK(trainable_flags(*r) == trainable_flags(*m));
  CHECK(count(r->trainable_weights()) == expect_trainable);
  auto rs = snapshot(*r);
  CHECK(moved_layers(s2, rs).empty());
  REQUIRE(r->compiled());
  CHECK(r->optimizer()->class_name() == "RMSprop");
  CHECK(r->optimizer()->learning_rate() == Approx(1e-5));
  CHECK(r->optimizer()->iterations() == 1);
  // the optimizer state came back too: one more identical step on both gives identical weights
  m->train_on_batch({xt}, {y.slice_rows(0, 2)});
  r->train_on_batch({xt}, {y.slice_rows(0, 2)});
  CHECK(moved_layers(snapshot(*m), snapshot(*r)).empty());
}

TEST_CASE("a frozen nested model hides the weights of layers inside it that were unfrozen afterwards", "[cnn][train]") {
  // Regression: freezing sequential_1, then set_trainable_from on the MobileNetV2 inside it, left
  // block_16_* and Conv_1 listed in trainable_weights() (and counted by summary) although training
  // never updated them. TF-Keras 2's rule: a frozen model has no trainable weights at all.
  auto m = graft::load_model<float>(corpus_file("tm_aknight_keras_model.h5"));
  auto seq1 = as_model(m->get_layer("sequential_1"));
  auto base = as_model(seq1->get_layer("model1"));
  seq1->set_trainable(false);
  base->set_trainable_from("block_16_expand");  // sequential_1 itself stays frozen
  CHECK_FALSE(seq1->trainable());
  CHECK(base->trainable());
  CHECK(base->get_layer("Conv_1")->trainable());
  CHECK(seq1->trainable_weights().empty());
  CHECK(count(m->trainable_weights()) == 128300);  // the head only
  CHECK(count(m->non_trainable_weights()) == 410208);
  std::ostringstream os;
  m->summary(os);
  CHECK(os.str().find("Trainable params: 128,300") != std::string::npos);
  Tensor<float> x = uniform({2, 224, 224, 3}, 61, -1.f, 1.f);
  Tensor<float> y = one_hot({1, 0}, 2);
  m->compile(std::make_shared<graft::Adam<float>>(1e-3), "categorical_crossentropy");
  auto s0 = snapshot(*m);
  m->train_on_batch({x}, {y});
  auto s1 = snapshot(*m);
  CHECK(s0.at("Conv_1/kernel") == s1.at("Conv_1/kernel"));
  CHECK(s0.at("block_16_expand/kernel") == s1.at("block_16_expand/kernel"));
  CHECK_FALSE(s0.at("dense_Dense1/kernel") == s1.at("dense_Dense1/kernel"));
  // the recipe's order (unfreeze the container, then freeze what precedes the top block) trains them
  seq1->set_trainable(true);
  base->set_trainable_from("block_16_expand");
  CHECK(count(m->trainable_weights()) > 128300);
  m->compile(std::make_shared<graft::Adam<float>>(1e-4), "categorical_crossentropy");
  m->train_on_batch({x}, {y});
  auto s2 = snapshot(*m);
  CHECK_FALSE(s1.at("Conv_1/kernel") == s2.at("Conv_1/kernel"));
  CHECK(s1.at("block_15_expand/kernel") == s2.at("block_15_expand/kernel"));
}

TEST_CASE("MobileNetV2 feature extraction: models ending at inner layers of the nested base", "[cnn]") {
  auto m = graft::load_model<float>(corpus_file("tm_aknight_keras_model.h5"));
  auto seq1 = as_model(m->get_layer("sequential_1"));
  auto head = as_model(m->get_layer("sequential_3"));
  auto base = as_model(seq1->get_layer("model1"));
  Tensor<float> x = uniform({2, 224, 224, 3}, 31, -1.f, 1.f);

  // bottleneck features: the last inverted-residual block's linear projection
  auto bottleneck = std::make_shared<Model<float>>(base->inputs()[0], base->layer_output("block_16_project_BN"), "bottleneck");
  CHECK(bottleneck->output_shapes()[0] == Shape{-1, 7, 7, 112});
  CHECK(bottleneck->layers().back()->name() == "block_16_project_BN");
  Tensor<float> b = bottleneck->predict(x, 2);
  REQUIRE(b.shape() == Shape{2, 7, 7, 112});
  REQUIRE(all_finite(b));
  // a mid-network feature map (stride 16)
  auto mid = std::make_shared<Model<float>>(base->inputs()[0], base->layer_output("block_13_expand_relu"));
  CHECK(mid->output_shapes()[0] == Shape{-1, 14, 14, 192});
  // the layers are shared, not copied: same weights objects
  CHECK(bottleneck->get_layer("Conv1").get() == base->get_layer("Conv1").get());

  // features at out_relu equal the base's own output; GlobalAveragePooling2D + the head's Dense
  // layers on those precomputed features reproduce the full model (the bottleneck-feature trick)
  auto features = std::make_shared<Model<float>>(base->inputs()[0], base->layer_output("out_relu"), "features");
  Tensor<float> f = features->predict(x, 2);
  Tensor<float> fb = base->predict(x, 2);
  REQUIRE(f.shape() == Shape{2, 7, 7, 1280});
  check_bitwise_equal(f, fb);
  auto top = std::make_shared<graft::Sequential<float>>("top_on_features");
  top->add(std::make_shared<graft::InputLayer<float>>(Shape{7, 7, 1280}));
  top->add(seq1->get_layer(-1));  // the GlobalAveragePooling2D layer
  for (auto& l : head->layers()) top->add(l);
  Tensor<float> y_top = top->predict(f, 2);
  Tensor<float> y_full = m->predict(x, 2);
  REQUIRE(y_top.shape() == y_full.shape());
  for (Index i = 0; i < y_top.size(); ++i) CHECK(y_top[i] == Approx(y_full[i]).margin(1e-6));
}

TEST_CASE("real corpus CNNs (Keras 2.1.6 .. 3.9) predict, continue training with their own optimizer, save and reload", "[cnn][train]") {
  struct Case {
    const char* file;
    Shape input;      // per sample
    Shape output;     // per sample
    const char* optimizer;
    double lr;
  };
  const std::vector<Case> cases = {
      {"bwd_cats_and_dogs_small_1.h5", {50, 50, 3}, {1}, "RMSprop", 1e-4},
      {"seagap_s8.h5", {20, 20, 3}, {2}, "RMSprop", 1e-4},
      {"erenari_mnist_model.h5", {28, 28, 1}, {10}, "Adam", 1e-3},
      {"aakash_mnist_model.h5", {784}, {10}, "", 0},
      {"binga_autoencoder.h5", {28, 28, 1}, {28, 28, 1}, "Adam", 1e-3},
  };
  for (const auto& c : cases) {
    INFO(c.file);
    auto m = graft::load_model<float>(corpus_file(c.file));
    Shape in{-1}, out{-1};
    in.insert(in.end(), c.input.begin(), c.input.end());
    out.insert(out.end(), c.output.begin(), c.output.end());
    CHECK(m->input_shapes()[0] == in);
    CHECK(m->output_shapes()[0] == out);
    const Index n = 8;
    Shape xs{n};
    xs.insert(xs.end(), c.input.begin(), c.input.end());
    Tensor<float> x = uniform(xs, 41);
    Tensor<float> p = m->predict(x, 4);
    Shape ps{n};
    ps.insert(ps.end(), c.output.begin(), c.output.end());
    REQUIRE(p.shape() == ps);
    CHECK(all_finite(p));

    if (std::string(c.optimizer).empty()) {
      // Keras 3.9 saved this one without optimizer / training_config
      CHECK_FALSE(m->compiled());
      m->compile("adam", "sparse_categorical_crossentropy", {"accuracy"});
    } else {
      REQUIRE(m->compiled());
      CHECK(m->optimizer()->class_name() == c.optimizer);
      CHECK(m->optimizer()->learning_rate() == Approx(c.lr));
    }
    auto loss = m->compile_state().losses[0];
    Tensor<float> y;
    const Index classes = c.output.back();
    if (c.output.size() > 1) {
      y = x;  // the autoencoder reconstructs its input
    } else if (loss->sparse_labels()) {
      y = Tensor<float>(Shape{n});
      for (Index i = 0; i < n; ++i) y[i] = static_cast<float>(i % classes);
    } else {
      y = Tensor<float>(Shape{n, classes});
      for (Index i = 0; i < y.size(); ++i) y[i] = static_cast<float>(i % 2);
    }
    auto before = snapshot(*m);
    const std::int64_t iterations_before = m->optimizer()->iterations();
    graft::FitOptions<float> o;
    o.verbose = 0;
    o.batch_size = 4;
    o.seed = 3;
    auto h = m->fit(x, y, o);
    CHECK(std::isfinite(h["loss"][0]));
    // every layer with weights moved (BN moving statistics included)
    CHECK(moved_layers(before, snapshot(*m)) == weighted_layers(*m));
    CHECK(m->optimizer()->iterations() == iterations_before + 2);  // 8 samples, batches of 4

    const std::string path = graft_test::tmp_dir() + "/continued_" + c.file;
    graft::save_model(*m, path);
    auto r = graft::load_model<float>(path);
    check_bitwise_equal(m->predict(x, 4), r->predict(x, 4));
    REQUIRE(r->compiled());
    CHECK(r->optimizer()->class_name() == m->optimizer()->class_name());
    CHECK(r->optimizer()->iterations() == m->optimizer()->iterations());
    CHECK(r->compile_state().losses[0]->to_json() == loss->to_json());
    bool has_dropout = false;
    for (Layer<float>* l : m->unique_layers()) has_dropout = has_dropout || l->class_name() == "Dropout";
    if (!has_dropout) {
      // optimizer slots restored: the next step is identical
      Tensor<float> bx = x.slice_rows(0, 4), by = y.slice_rows(0, 4);
      m->train_on_batch({bx}, {by});
      r->train_on_batch({bx}, {by});
      CHECK(moved_layers(snapshot(*m), snapshot(*r)).empty());
    }
  }
}

TEST_CASE("weights-only CNN files: the architecture rebuilt in C++, weights by position and by name, outputs match numpy", "[cnn]") {
  // Keras' Permute, with Keras' class name: a saved model holding it is a valid Keras file
  if (!graft::LayerRegistry<float>::instance().contains("Permute")) graft::register_layer<Permute>("Permute");
  // reference outputs: tests/cnn_numpy_reference.py (numpy + h5py, float64, from the files' weights)
  SECTION("hackbing_model_weights.h5 (Keras 2.0.9): Conv2D, MaxPooling2D, Flatten, Dense x2") {
    auto build = [] {
      auto m = std::make_shared<graft::Sequential<float>>("hackbing");
      m->add(std::make_shared<graft::InputLayer<float>>(Shape{28, 28, 1}));
      m->add(std::make_shared<graft::Conv2D<float>>(32, 3, 1, "valid", "relu", true, 1, "conv2d_1"));
      m->add(std::make_shared<graft::MaxPooling2D<float>>(2, std::vector<Index>{}, "valid", "max_pooling2d_1"));
      m->add(std::make_shared<graft::Flatten<float>>("flatten_1"));
      m->add(std::make_shared<graft::Dense<float>>(128, "relu", true, "dense_1"));
      m->add(std::make_shared<graft::Dense<float>>(10, "softmax", true, "dense_2"));
      return m;
    };
    const std::vector<std::vector<double>> want = {
        {0.000297953465, 9.08443535e-07, 0.152213563, 0.631495241, 1.23554959e-06, 0.175082881, 0.000242703087,
         0.0001178876, 0.0405005678, 4.70590832e-05},
        {0.000289119968, 7.44079913e-07, 0.206526557, 0.641418212, 1.55317427e-06, 0.123506, 0.000295331117,
         9.06142694e-05, 0.0278309894, 4.08794149e-05}};
    auto a = build(), b = build();
    graft::load_weights(*a, corpus_file("hackbing_model_weights.h5"));
    graft::LoadWeightsOptions by_name;
    by_name.by_name = true;
    graft::load_weights(*b, corpus_file("hackbing_model_weights.h5"), by_name);
    Tensor<float> x = reference_digits();
    check_reference(a->predict(x), want);
    check_bitwise_equal(a->predict(x), b->predict(x));
    // a wrong architecture is refused with both layer names and shapes
    auto wrong = std::make_shared<graft::Sequential<float>>("wrong");
    wrong->add(std::make_shared<graft::InputLayer<float>>(Shape{28, 28, 1}));
    wrong->add(std::make_shared<graft::Conv2D<float>>(32, 3, 1, "same", "relu", true, 1, "conv2d_1"));
    wrong->add(std::make_shared<graft::MaxPooling2D<float>>(2));
    wrong->add(std::make_shared<graft::Flatten<float>>());
    wrong->add(std::make_shared<graft::Dense<float>>(128, "relu", true, "dense_1"));
    wrong->add(std::make_shared<graft::Dense<float>>(10, "softmax", true, "dense_2"));
    CHECK_THROWS_AS(graft::load_weights(*wrong, corpus_file("hackbing_model_weights.h5")), graft::shape_error);
  }
  SECTION("aimining_model_weights.h5 (Keras 2.1.2): a channels_first Conv2D followed by channels_last layers") {
    // conv2d_25 was Conv2D(32, 3, data_format="channels_first") on (1, 28, 28): its (32, 26, 26)
    // output is read by the channels_last conv2d_26 as 32 x 26 pixels of 26 channels, hence
    // conv2d_26's kernel (3, 3, 26, 32) and dense_25's 15 * 12 * 32 = 5760 inputs.
    auto build = [] {
      auto m = std::make_shared<graft::Sequential<float>>("aimining");
      m->add(std::make_shared<graft::InputLayer<float>>(Shape{28, 28, 1}));  // same memory as (1, 28, 28)
      m->add(std::make_shared<graft::Conv2D<float>>(32, 3, 1, "valid", "relu", true, 1, "conv2d_25"));
      m->add(std::make_shared<Permute<float>>(std::vector<int>{3, 1, 2}, "to_channels_first"));
      m->add(std::make_shared<graft::Conv2D<float>>(32, 3, 1, "valid", "relu", true, 1, "conv2d_26"));
      m->add(std::make_shared<graft::MaxPooling2D<float>>(2, std::vector<Index>{}, "valid", "max_pooling2d_13"));
      m->add(std::make_shared<graft::Dropout<float>>(0.25, "dropout_25"));
      m->add(std::make_shared<graft::Flatten<float>>("flatten_13"));
      m->add(std::make_shared<graft::Dense<float>>(128, "relu", true, "dense_25"));
      m->add(std::make_shared<graft::Dropout<float>>(0.5, "dropout_26"));
      m->add(std::make_shared<graft::Dense<float>>(10, "softmax", true, "dense_26"));
      return m;
    };
    const std::vector<std::vector<double>> want = {
        {0.0943887622, 0.130597859, 0.0868819478, 0.0795886222, 0.117207083, 0.065645853, 0.0984532499, 0.0960943793,
         0.132453797, 0.098688447},
        {0.117871889, 0.116792653, 0.0815629745, 0.0787869251, 0.103214117, 0.0740383205, 0.117400755, 0.086484983,
         0.125123942, 0.0987234411}};
    auto a = build(), b = build();
    CHECK(a->output_shapes()[0] == Shape{-1, 10});
    CHECK(a->get_layer("flatten_13")->compute_output_shapes({Shape{-1, 15, 12, 32}})[0] == Shape{-1, 5760});
    graft::load_weights(*a, corpus_file("aimining_model_weights.h5"));
    graft::LoadWeightsOptions by_name;
    by_name.by_name = true;
    graft::load_weights(*b, corpus_file("aimining_model_weights.h5"), by_name);
    Tensor<float> x = reference_digits();
    check_reference(a->predict(x), want);
    check_bitwise_equal(a->predict(x), b->predict(x));
    // with the custom layer registered, the rebuilt model saves and loads as a whole
    const std::string path = graft_test::tmp_dir() + "/aimining_full.h5";
    graft::save_model(*a, path);
    auto r = graft::load_model<float>(path);
    check_bitwise_equal(a->predict(x), r->predict(x));
    // and the Permute backward is the inverse permutation (numerical gradient check)
    Permute<double> perm(std::vector<int>{3, 1, 2});
    graft::Rng rng(2);
    graft_test::check_layer_gradients(perm, {graft_test::random_tensor(Shape{2, 3, 4, 5}, rng)});
  }
}

TEST_CASE("a Sequential whose first layer is a whole conv base: freeze, train the head, unfreeze the top block", "[cnn][train]") {
  // Chollet's recipe (conv_base = VGG16(...); model.add(conv_base)) with the convolutional part
  // of a real Keras 2.1.6 file as the pretrained base.
  auto src = graft::load_model<float>(corpus_file("bwd_cats_and_dogs_small_1.h5"));
  auto pretrained = graft::clone_model(*src);
  pretrained->set_weights(src->get_weights());
  std::vector<std::shared_ptr<Layer<float>>> conv_layers;
  for (auto& l : pretrained->layers()) {
    if (l->class_name() == "Flatten") break;
    conv_layers.push_back(l);
  }
  REQUIRE(conv_layers.size() == 6);
  auto conv_base = std::make_shared<graft::Sequential<float>>(conv_layers, "conv_base");
  conv_base->build_input({50, 50, 3});
  CHECK(conv_base->output_shapes()[0] == Shape{-1, 4, 4, 64});

  auto model = std::make_shared<graft::Sequential<float>>("cats_and_dogs_on_conv_base");
  model->add(conv_base);
  model->add(std::make_shared<graft::Flatten<float>>());
  model->add(std::make_shared<graft::Dense<float>>(32, "relu"));
  model->add(std::make_shared<graft::Dense<float>>(1, "sigmoid"));
  CHECK(model->input_shapes()[0] == Shape{-1, 50, 50, 3});
  CHECK(model->output_shapes()[0] == Shape{-1, 1});
  CHECK(model->trainable_weights().size() == 10);  // 3 conv + 2 dense layers, kernel and bias each
  conv_base->set_trainable(false);
  CHECK(model->trainable_weights().size() == 4);
  CHECK(count(model->non_trainable_weights()) == count(conv_base->weights()));

  Tensor<float> x = uniform({16, 50, 50, 3}, 51);
  Tensor<float> y(Shape{16, 1});
  for (Index i = 0; i < 16; ++i) y[i] = static_cast<float>(i % 2);
  model->compile(std::make_shared<graft::RMSprop<float>>(2e-5), "binary_crossentropy", {"acc"});
  graft::FitOptions<float> o;
  o.verbose = 0;
  o.batch_size = 8;
  o.seed = 1;
  auto s0 = snapshot(*model);
  auto h = model->fit(x, y, o);
  CHECK(std::isfinite(h["loss"][0]));
  auto s1 = snapshot(*model);
  auto moved = moved_layers(s0, s1);
  CHECK(moved.size() == 2);
  for (auto& l : conv_layers) CHECK(moved.count(l->name()) == 0);

  // unfreeze the top block (the last Conv2D and its pooling)
  conv_base->set_trainable_from("conv2d_6");
  CHECK(conv_base->trainable());
  CHECK(model->trainable_weights().size() == 6);
  model->compile(std::make_shared<graft::RMSprop<float>>(1e-5), "binary_crossentropy", {"acc"});
  model->fit(x, y, o);
  auto s2 = snapshot(*model);
  moved = moved_layers(s1, s2);
  CHECK(moved.size() == 3);
  CHECK(moved.count("conv2d_6") == 1);
  CHECK(moved.count("conv2d_4") == 0);
  CHECK(moved.count("conv2d_5") == 0);
  // the source file's model was cloned, not shared: untouched
  CHECK(moved_layers(snapshot(*graft::load_model<float>(corpus_file("bwd_cats_and_dogs_small_1.h5"))), snapshot(*src)).empty());

  const std::string path = graft_test::tmp_dir() + "/conv_base_finetuned.h5";
  graft::save_model(*model, path);
  auto r = graft::load_model<float>(path);
  REQUIRE(r->layers().size() == 4);
  CHECK(r->layers()[0]->class_name() == "Sequential");
  CHECK(trainable_flags(*r) == trainable_flags(*model));
  CHECK(r->trainable_weights().size() == 6);
  check_bitwise_equal(model->predict(x), r->predict(x));
}
