// Keras files: every fixture case of ../shared/keras-fixtures (inference, weights-only, training
// with optimizer slots), every real file of ../shared/keras-corpus, save/load round trips.
#include <graft/graft.hpp>
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <dirent.h>
#include <fstream>
#include <set>
#include <sstream>
#include <sys/stat.h>

#include "gradcheck.hpp"

namespace {

using graft::Index;
using graft::Shape;
using graft::Tensor;
using json = nlohmann::json;

std::string fixtures() { return graft_test::shared_path("keras-fixtures"); }
std::string corpus() { return graft_test::shared_path("keras-corpus"); }

bool exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

json read_json(const std::string& p) {
  std::ifstream f(p);
  REQUIRE(f.good());
  return json::parse(f);
}

std::vector<std::string> list_dir(const std::string& d) {
  std::vector<std::string> r;
  DIR* dir = opendir(d.c_str());
  REQUIRE(dir != nullptr);
  while (auto* e = readdir(dir)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") r.push_back(n);
  }
  closedir(dir);
  std::sort(r.begin(), r.end());
  return r;
}

/// All weight arrays of a legacy .h5 in layer_names / weight_names order (as graft_check.py).
std::vector<Tensor<double>> ordered_weights(const std::string& path) {
  auto f = graft::h5::File::open(path);
  auto root = graft::h5::Group::root(f);
  auto g = root.has_child("model_weights") ? root.group("model_weights") : root;
  std::vector<Tensor<double>> r;
  for (auto& ln : g.strings_attr("layer_names")) {
    auto lg = g.group(ln);
    for (auto& wn : lg.strings_attr("weight_names")) r.push_back(graft::h5::read_dataset<double>(lg, wn));
  }
  return r;
}

std::vector<Tensor<double>> optimizer_arrays(const std::string& path) {
  auto f = graft::h5::File::open(path);
  auto root = graft::h5::Group::root(f);
  std::vector<Tensor<double>> r;
  if (!root.has_child("optimizer_weights")) return r;
  auto g = root.group("optimizer_weights");
  for (auto& wn : g.strings_attr("weight_names")) r.push_back(graft::h5::read_dataset<double>(g, wn));
  return r;
}

bool close(double got, double want, double atol, double rtol) { return std::abs(got - want) <= atol + rtol * std::abs(want); }

void check_close(const Tensor<float>& got, const Tensor<float>& want, double atol, double rtol, const std::string& what) {
  INFO(what);
  REQUIRE(graft::shape_str(got.shape()) == graft::shape_str(want.shape()));
  double worst = 0;
  Index bad = -1;
  for (Index i = 0; i < got.size(); ++i) {
    REQUIRE(std::isfinite(got[i]));
    double err = std::abs(double(got[i]) - double(want[i])) - rtol * std::abs(double(want[i]));
    if (err > atol && err > worst) {
      worst = err;
      bad = i;
    }
  }
  INFO("worst element " << bad << ": got " << (bad >= 0 ? got[bad] : 0.f) << " want " << (bad >= 0 ? want[bad] : 0.f));
  CHECK(bad == -1);
}


/// Inference cases of the fixtures, with their meta.json.
std::vector<std::pair<std::string, json>> inference_cases() {
  std::vector<std::pair<std::string, json>> r;
  for (auto& n : list_dir(fixtures())) {
    std::string d = fixtures() + "/" + n;
    if (!exists(d + "/meta.json") || !exists(d + "/model.h5")) continue;
    json meta = read_json(d + "/meta.json");
    if (meta.value("kind", "") == "inference") r.emplace_back(d, meta);
  }
  return r;
}

double tol(const json& meta, const char* k, double d) {
  if (meta.contains(k)) return meta[k].get<double>();
  if (meta.contains("tolerance") && meta["tolerance"].contains(k)) return meta["tolerance"][k].get<double>();
  return d;
}

}  // namespace

TEST_CASE("every Keras inference fixture loads and predicts within its tolerance", "[keras][fixtures]") {
  auto cases = inference_cases();
  REQUIRE(cases.size() >= 80);
  std::vector<std::string> skipped;
  int passed = 0;
  for (auto& [dir, meta] : cases) {
    const std::string name = meta["case"].get<std::string>();
    const bool stretch = meta.value("stretch", false);
    std::shared_ptr<graft::Model<float>> m;
    try {
      m = graft::load_model<float>(dir + "/model.h5");
    } catch (const graft::unsupported_error& e) {
      skipped.push_back(name + (stretch ? " [stretch]" : "") + ": " + e.message());
      continue;
    }
    auto x = graft_test::read_arrays(dir + "/io.h5", "x");
    auto y = graft_test::read_arrays(dir + "/io.h5", "y");
    REQUIRE(x.size() == m->num_inputs());
    REQUIRE(y.size() == m->num_outputs());
    auto got = m->predict(x, 32);
    for (size_t j = 0; j < y.size(); ++j)
      check_close(got[j], y[j], tol(meta, "atol", 1e-5), tol(meta, "rtol", 1e-4), name + " output " + std::to_string(j));
    ++passed;
  }
  std::ostringstream os;
  for (auto& s : skipped) os << "  skipped " << s << "\n";
  WARN(passed << " fixture cases pass; " << skipped.size() << " skipped\n" << os.str());
  for (auto& s : skipped) {
    INFO(s);
    CHECK(s.find("[stretch]") != std::string::npos);  // no non-stretch case may be skipped
  }
}

TEST_CASE("every fixture's Keras 3 .keras archive loads and predicts like its .h5", "[keras][fixtures][zip]") {
  int n = 0;
  for (auto& [dir, meta] : inference_cases()) {
    if (!exists(dir + "/model.keras")) continue;
    const std::string name = meta["case"].get<std::string>();
    std::shared_ptr<graft::Model<float>> m;
    try {
      m = graft::load_model<float>(dir + "/model.keras");
    } catch (const graft::unsupported_error& e) {
      INFO(e.what());
      CHECK(meta.value("stretch", false));
      continue;
    }
    auto x = graft_test::read_arrays(dir + "/io.h5", "x");
    auto y = graft_test::read_arrays(dir + "/io.h5", "y");
    auto got = m->predict(x, 32);
    for (size_t j = 0; j < y.size(); ++j)
      check_close(got[j], y[j], tol(meta, "atol", 1e-5), tol(meta, "rtol", 1e-4), name + " (.keras) output " + std::to_string(j));
    // load_weights from the archive into the .h5 architecture gives the same model
    auto h = graft::load_model<float>(dir + "/model.h5");
    graft::load_weights(*h, dir + "/model.keras");
    auto hw = h->get_weights(), mw = m->get_weights();
    REQUIRE(hw.size() == mw.size());
    for (size_t i = 0; i < hw.size(); ++i) CHECK(hw[i] == mw[i]);
    ++n;
  }
  CHECK(n >= 79);
}

TEST_CASE("weights-only fixtures load from architecture JSON plus legacy and Keras 3 weights files", "[keras][fixtures]") {
  std::string root = fixtures() + "/weights_only";
  auto names = list_dir(root);
  REQUIRE(names.size() >= 5);
  for (auto& n : names) {
    std::string d = root + "/" + n;
    json meta = read_json(d + "/meta.json");
    std::ifstream jf(d + "/architecture.json");
    std::string text((std::istreambuf_iterator<char>(jf)), std::istreambuf_iterator<char>());
    auto x = graft_test::read_arrays(d + "/io.h5", "x");
    auto y = graft_test::read_arrays(d + "/io.h5", "y");
    for (const char* wf : {"weights.h5", "model.weights.h5"}) {
      SECTION(n + "/" + wf) {
        std::shared_ptr<graft::Model<float>> m;
        try {
          m = graft::model_from_json<float>(text, d + "/architecture.json");
        } catch (const graft::unsupported_error& e) {
          FAIL(e.what());
        }
        graft::load_weights(*m, d + "/" + wf);
        auto got = m->predict(x, 32);
        for (size_t j = 0; j < y.size(); ++j)
          check_close(got[j], y[j], tol(meta, "atol", 1e-5), tol(meta, "rtol", 1e-4), n + "/" + wf);
      }
    }
  }
}

TEST_CASE("every Keras training fixture: one epoch of fit matches Keras' weights, slots and loss", "[keras][fixtures][train]") {
  int cases = 0;
  for (auto& n : list_dir(fixtures())) {
    if (n.rfind("train_", 0) != 0) continue;
    std::string d = fixtures() + "/" + n;
    json meta = read_json(d + "/meta.json");
    SECTION(n) {
      ++cases;
      std::shared_ptr<graft::Model<float>> m;
      try {
        m = graft::load_model<float>(d + "/before.h5");
      } catch (const graft::unsupported_error& e) {
        FAIL(n << ": " << e.what());
      }
      REQUIRE(m->compiled());
      auto before = m->get_weights();
      auto x = graft_test::read_arrays(d + "/io.h5", "x_train");
      auto y = graft_test::read_arrays(d + "/io.h5", "y_train");
      graft::FitOptions<float> o;
      o.epochs = 1;
      o.batch_size = meta["fit"]["batch_size"].get<Index>();
      o.shuffle = false;
      o.verbose = 0;
      auto h = m->fit(x, y, o);
      const double want_loss = meta["history_loss"][0].get<double>();
      INFO(n << " loss " << h["loss"][0] << " vs Keras " << want_loss);
      CHECK(close(h["loss"][0], want_loss, 1e-5, 1e-4));
      // weights, in the order the saved file lists them
      std::string saved = graft_test::tmp_dir() + "/" + n + ".after.h5";
      graft::save_model(*m, saved);
      auto got_w = ordered_weights(saved);
      auto want_w = ordered_weights(d + "/after.h5");
      REQUIRE(got_w.size() == want_w.size());
      for (size_t i = 0; i < got_w.size(); ++i) {
        REQUIRE(got_w[i].shape() == want_w[i].shape());
        for (Index k = 0; k < got_w[i].size(); ++k) {
          INFO(n << " weight #" << i << "[" << k << "]");
          CHECK(close(got_w[i][k], want_w[i][k], 1e-5, 1e-4));
        }
      }
      // frozen layers: bit-identical
      for (auto& [lname, info] : meta["layer_weight_changes"].items()) {
        if (info.value("trainable", true)) continue;
        auto l = m->get_layer(lname);
        auto ws = l->weights();
        for (auto* p : ws) {
          INFO(n << ": frozen weight " << lname << "/" << p->name);
          // find the same weight among the initial ones by identity of position in model weights
          auto all = m->weights();
          size_t pos = std::find(all.begin(), all.end(), p) - all.begin();
          REQUIRE(pos < before.size());
          CHECK(p->value == before[pos]);
        }
      }
      // optimizer variables (iteration, learning_rate, slots) as Keras saved them
      auto got_o = optimizer_arrays(saved);
      auto want_o = optimizer_arrays(d + "/after.h5");
      REQUIRE(got_o.size() == want_o.size());
      for (size_t i = 0; i < got_o.size(); ++i) {
        REQUIRE(got_o[i].shape() == want_o[i].shape());
        for (Index k = 0; k < got_o[i].size(); ++k) {
          INFO(n << " optimizer variable #" << i << "[" << k << "]");
          CHECK(close(got_o[i][k], want_o[i][k], 1e-5, 1e-4));
        }
      }
      // predictions after training
      auto yx = graft_test::read_arrays(d + "/io.h5", "x");
      auto ya = graft_test::read_arrays(d + "/io.h5", "y_after");
      auto p = m->predict(yx);
      check_close(p[0], ya[0], 1e-5, 1e-4, n + " predictions after fit");
    }
  }
  (void)cases;
}

TEST_CASE("graft continues training from a Keras-saved after.h5 and restores its optimizer slots", "[keras][train]") {
  // after.h5 holds optimizer_weights: loading must restore them (same values when saved again)
  for (const char* n : {"train_adam_mse", "train_rmsprop_momentum_mse", "train_sgd_momentum_mse"}) {
    std::string d = fixtures() + "/" + n;
    auto m = graft::load_model<float>(d + "/after.h5");
    REQUIRE(m->compiled());
    CHECK(m->optimizer()->iterations() == 4);
    std::string saved = graft_test::tmp_dir() + "/" + n + ".resaved.h5";
    graft::save_model(*m, saved);
    auto a = optimizer_arrays(saved), b = optimizer_arrays(d + "/after.h5");
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i) CHECK(a[i] == b[i]);
  }
}

TEST_CASE("save then load round-trips weights, predictions and compile state bit for bit", "[keras][roundtrip]") {
  for (auto& [dir, meta] : inference_cases()) {
    const std::string name = meta["case"].get<std::string>();
    std::shared_ptr<graft::Model<float>> m;
    try {
      m = graft::load_model<float>(dir + "/model.h5");
    } catch (const graft::unsupported_error&) {
      continue;  // listed by the fixture test
    }
    INFO(name);
    std::string p = graft_test::tmp_dir() + "/" + name + ".roundtrip.h5";
    graft::save_model(*m, p);
    auto m2 = graft::load_model<float>(p);
    auto w1 = m->get_weights(), w2 = m2->get_weights();
    REQUIRE(w1.size() == w2.size());
    for (size_t i = 0; i < w1.size(); ++i) CHECK(w1[i] == w2[i]);
    auto x = graft_test::read_arrays(dir + "/io.h5", "x");
    auto y1 = m->predict(x), y2 = m2->predict(x);
    for (size_t j = 0; j < y1.size(); ++j) CHECK(y1[j] == y2[j]);
    CHECK(m2->class_name() == m->class_name());
    CHECK(m2->layers().size() == m->layers().size());
  }
  SECTION("compiled model with optimizer state") {
    auto m = graft::load_model<float>(fixtures() + "/train_adam_sparse_cce/before.h5");
    auto x = graft_test::read_arrays(fixtures() + "/train_adam_sparse_cce/io.h5", "x_train");
    auto y = graft_test::read_arrays(fixtures() + "/train_adam_sparse_cce/io.h5", "y_train");
    graft::FitOptions<float> o;
    o.verbose = 0;
    o.shuffle = false;
    o.epochs = 2;
    m->fit(x, y, o);
    std::string p = graft_test::tmp_dir() + "/compiled_roundtrip.h5";
    graft::save_model(*m, p);
    auto m2 = graft::load_model<float>(p);
    REQUIRE(m2->compiled());
    CHECK(m2->optimizer()->class_name() == "Adam");
    CHECK(m2->optimizer()->iterations() == m->optimizer()->iterations());
    auto s1 = m->optimizer()->slot_variables(), s2 = m2->optimizer()->slot_variables();
    REQUIRE(s1.size() == s2.size());
    for (size_t i = 0; i < s1.size(); ++i) CHECK(*s1[i].value == *s2[i].value);
    // continuing training from both gives the same weights
    o.epochs = 1;
    m->fit(x, y, o);
    m2->fit(x, y, o);
    auto w1 = m->get_weights(), w2 = m2->get_weights();
    for (size_t i = 0; i < w1.size(); ++i) CHECK(w1[i] == w2[i]);
  }
}

TEST_CASE("load_model reads weights in place without initialising them first, and draws the same seeds", "[keras][roundtrip]") {
  const std::string dir = fixtures() + "/bn_after_dense";  // trainable and non-trainable weights
  REQUIRE(exists(dir + "/model.h5"));
  auto fresh_dense = [] {
    graft::Sequential<float> s("probe");
    s.add(graft::InputLayer<float>::with_batch_shape({-1, 7}, "probe_input"));
    s.add(graft::make<graft::Dense>(5, "relu"));
    return s.get_weights()[0];
  };
  // the generator advances as if every loaded weight had been initialised: a layer made after
  // load_model gets the weights it got before initialisation was put off
  graft::set_random_seed(42);
  json h5;  // the file's config: the same model built with immediate initialisation
  {
    graft::h5::File f = graft::h5::File::open(dir + "/model.h5");
    graft::h5::Group root = graft::h5::Group::root(f);
    h5 = graft::detail::parse_json_attr(root, "model_config");
  }
  auto built = graft::model_from_config<float>(h5);
  const Tensor<float> after_build = fresh_dense();
  graft::set_random_seed(42);
  auto loaded = graft::load_model<float>(dir + "/model.h5");
  const Tensor<float> after_load = fresh_dense();
  CHECK(after_build == after_load);
  // the loaded values are the file's, and nothing is left pending
  for (graft::Param<float>* p : loaded->weights()) CHECK(!p->pending_init);
  CHECK(loaded->get_weights() != built->get_weights());
  // a pending initialisation, run later, gives what the immediate one gave
  graft::set_random_seed(7);
  auto immediate = graft::model_from_config<float>(h5);
  graft::set_random_seed(7);
  std::shared_ptr<graft::Model<float>> deferred;
  {
    graft::DeferredWeightInit defer;
    deferred = graft::model_from_config<float>(h5);
  }
  for (graft::Param<float>* p : deferred->weights()) CHECK(p->pending_init);
  for (graft::Param<float>* p : deferred->weights()) p->materialize();
  CHECK(deferred->get_weights() == immediate->get_weights());
}

TEST_CASE("files graft saves have the layout Keras expects (checked by h5py, an independent reader)", "[keras][roundtrip]") {
  auto m = graft::load_model<float>(fixtures() + "/train_rmsprop_momentum_mse/after.h5");
  auto nested = graft::load_model<float>(fixtures() + "/functional_nested_sequential/model.h5");
  auto tm = graft::load_model<float>(corpus() + "/tm_aknight_keras_model.h5");
  std::string files;
  for (const char* v : {"2", "3"}) {
    graft::SaveOptions so;
    so.keras_version = v;
    for (auto& [model, name] : std::vector<std::pair<graft::Model<float>*, std::string>>{{m.get(), "rmsprop"}, {nested.get(), "nested"}, {tm.get(), "tm"}}) {
      std::string p = graft_test::tmp_dir() + "/layout_check_" + name + "_k" + v + ".h5";
      graft::save_model(*model, p, so);
      files += " " + p;
    }
  }
  std::string cmd = std::string("/usr/bin/python3 ") + GRAFT_SOURCE_DIR + "/tests/check_saved_layout.py" + files;
  INFO(cmd);
  CHECK(std::system(cmd.c_str()) == 0);
}

TEST_CASE("every real-world corpus file loads and predicts, or is refused with a clear error", "[keras][corpus]") {
  std::ifstream idx(corpus() + "/INDEX.tsv");
  REQUIRE(idx.good());
  std::string line;
  std::getline(idx, line);  // header
  int loaded = 0, refused = 0;
  std::vector<std::shared_ptr<graft::Model<float>>> model_as;
  while (std::getline(idx, line)) {
    std::vector<std::string> cols;
    std::stringstream ss(line);
    std::string c;
    while (std::getline(ss, c, '\t')) cols.push_back(c);
    REQUIRE(cols.size() >= 9);
    const std::string file = cols[0], model_class = cols[7], classes = cols[8];
    const std::string path = corpus() + "/" + file;
    INFO(file);
    if (model_class.rfind("weights-only", 0) == 0) {
      auto info = graft::inspect_keras_file(path);
      CHECK((info.layout == "legacy_weights" || info.layout == "keras3_weights"));
      ++loaded;
      continue;
    }
    try {
      auto m = graft::load_model<float>(path);
      // random input of the model's input shape
      graft::Rng rng(5);
      std::vector<Tensor<float>> x;
      for (auto& s : m->input_shapes()) {
        Shape bs = s;
        bs[0] = 2;
        for (auto& d : bs)
          if (d < 0) d = 8;
        Tensor<float> t(bs);
        for (auto& v : t) v = float(rng.uniform());
        x.push_back(t);
      }
      auto y = m->predict(x);
      REQUIRE(y.size() == m->num_outputs());
      bool finite_weights = true;
      for (auto& w : m->get_weights())
        for (float v : w) finite_weights = finite_weights && std::isfinite(v);
      for (size_t j = 0; j < y.size(); ++j) {
        Shape want = m->output_shapes()[j];
        REQUIRE(y[j].rank() == static_cast<Index>(want.size()));
        for (size_t k = 1; k < want.size(); ++k)
          if (want[k] >= 0) CHECK(y[j].shape()[k] == want[k]);
        if (finite_weights)
          for (float v : y[j]) CHECK(std::isfinite(v));
      }
      // srindot's real file holds NaN weights (its training diverged): faithfully not finite
      if (file == "srindot_my_keras_model.h5") CHECK_FALSE(finite_weights);
      // the HDF5 my_model_A files are the 2nd-edition model A (rafa's .keras zip is the 3rd edition's)
      if (file.find("my_model_A") != std::string::npos && graft::h5::sniff(path) == graft::h5::FileKind::hdf5)
        model_as.push_back(m);
      ++loaded;
    } catch (const graft::error& e) {
      // refused: must be precise and name a layer class the file holds (or say zip/.keras)
      std::string msg = e.what();
      bool named = false;
      std::stringstream cs(classes);
      std::string cls;
      while (std::getline(cs, cls, ',')) {
        auto x = cls.find_last_not_of("0123456789");
        if (x != std::string::npos && x + 1 < cls.size() && cls[x] == 'x') cls = cls.substr(0, x);
        if (!cls.empty() && msg.find("(" + cls + ")") != std::string::npos) named = true;
      }
      INFO(msg);
      CHECK(named);
      CHECK(msg.find(path) != std::string::npos);
      ++refused;
    }
  }
  WARN(loaded << " corpus files load, " << refused << " refused");
  // the real my_model_A files (TF-Keras 2.4 .. Keras 3.5) agree on the architecture
  REQUIRE(model_as.size() >= 7);
  for (auto& m : model_as) {
    auto ws = m->get_weights();
    auto ref = model_as[0]->get_weights();
    REQUIRE(ws.size() == ref.size());
    for (size_t i = 0; i < ws.size(); ++i) CHECK(ws[i].shape() == ref[i].shape());
    CHECK(m->input_shapes()[0] == Shape{-1, 28, 28});
    CHECK(m->output_shapes()[0] == Shape{-1, 8});
  }
}

TEST_CASE("graft fit continues training from every compiled corpus file it can load", "[keras][corpus][train]") {
  for (const char* file : {"aser_best_model.keras", "rafa_my_model_A.keras", "amitm_mnist_model_win.keras",
                           "jungryung_my_model_A.h5", "clintos_my_model_A.h5", "chlorophyll_my_model_A.h5",
                           "ksublee_my_model_A_hdf5.keras", "brian_mnist_model.h5",
                           "deepanshu_my_model_A.h5", "fausto_my_model_A.h5", "jehyeon_my_model_A.h5"}) {
    INFO(file);
    auto m = graft::load_model<float>(corpus() + "/" + file);
    REQUIRE(m->compiled());
    graft::Rng rng(9);
    std::vector<Tensor<float>> x, y;
    for (auto& s : m->input_shapes()) {
      Shape bs = s;
      bs[0] = 16;
      Tensor<float> t(bs);
      for (auto& v : t) v = float(rng.uniform());
      x.push_back(t);
    }
    for (size_t j = 0; j < m->num_outputs(); ++j) {
      Shape os = m->output_shapes()[j];
      os[0] = 16;
      bool sparse = m->compile_state().losses[j] && m->compile_state().losses[j]->sparse_labels();
      if (sparse) os = {16};
      Tensor<float> t(os);
      const Index classes = m->output_shapes()[j].back();
      for (Index i = 0; i < t.size(); ++i) t[i] = sparse ? float(i % classes) : float(rng.uniform());
      y.push_back(t);
    }
    graft::FitOptions<float> o;
    o.verbose = 0;
    o.epochs = 1;
    auto before = m->get_weights();
    auto h = m->fit(x, y, o);
    CHECK(std::isfinite(h["loss"][0]));
    auto after = m->get_weights();
    bool moved = false;
    for (size_t i = 0; i < after.size(); ++i) moved = moved || !(after[i] == before[i]);
    CHECK(moved);
    graft::save_model(*m, graft_test::tmp_dir() + "/continued.h5");
    CHECK(graft::load_model<float>(graft_test::tmp_dir() + "/continued.h5")->compiled());
  }
}
