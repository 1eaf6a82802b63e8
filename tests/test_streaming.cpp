// Streaming fit, evaluate and predict over data sources (data/source.hpp, data/h5_source.hpp),
// the prefetching batch reader, steps_per_epoch, and fit()'s automatic feature cache: cached
// training equals uncached training bit for bit, in memory and on disk.
#include <graft/graft.hpp>
#include <catch2/catch.hpp>

#include <atomic>
#include <filesystem>
#include <sys/resource.h>
#include <sys/stat.h>

#include "gradcheck.hpp"

using namespace graft;

namespace {

Tensor<float> rnd(Shape s, std::uint64_t seed) {
  Rng r(seed);
  Tensor<float> t(s);
  for (auto& v : t) v = static_cast<float>(r.uniform(-1, 1));
  return t;
}
Tensor<float> labels(Index n, int classes, std::uint64_t seed) {
  Rng r(seed);
  Tensor<float> t({n});
  for (auto& v : t) v = static_cast<float>(r.below(static_cast<std::uint64_t>(classes)));
  return t;
}

/// Input(20) -> Dense(64) -> Dense(32) [frozen: the prefix] -> Dense(16) -> Dropout -> Dense(4)
std::shared_ptr<Sequential<float>> net(bool freeze = true) {
  set_random_seed(7);
  auto m = std::make_shared<Sequential<float>>("s");
  m->add(std::make_shared<InputLayer<float>>(Shape{20}));
  m->add(std::make_shared<Dense<float>>(64, "relu", true, "d1"));
  m->add(std::make_shared<Dense<float>>(32, "relu", true, "d2"));
  m->add(std::make_shared<Dense<float>>(16, "relu", true, "d3"));
  m->add(std::make_shared<Dropout<float>>(0.2, "drop"));
  m->add(std::make_shared<Dense<float>>(4, "softmax", true, "out"));
  if (freeze) {
    m->get_layer("d1")->set_trainable(false);
    m->get_layer("d2")->set_trainable(false);
  }
  m->compile("adam", "sparse_categorical_crossentropy", {"accuracy"});
  return m;
}

FitOptions<float> opts(int epochs, FeatureCacheMode cache = FeatureCacheMode::off) {
  FitOptions<float> o;
  o.epochs = epochs;
  o.batch_size = 16;
  o.seed = 3;
  o.verbose = 0;
  o.feature_cache = cache;
  return o;
}

void same_weights(Model<float>& a, Model<float>& b) {
  auto wa = a.get_weights(), wb = b.get_weights();
  REQUIRE(wa.size() == wb.size());
  for (size_t i = 0; i < wa.size(); ++i) {
    INFO("weight " << i);
    REQUIRE(wa[i] == wb[i]);  // bit for bit
  }
}

/// A source over arrays that counts how often inputs are loaded (decoding, in a real source)
/// and how often only targets are.
class CountingSource : public data::Source<float> {
 public:
  CountingSource(const Tensor<float>& x, const Tensor<float>& y) : inner_(x, y) {}
  Index size() const override { return inner_.size(); }
  std::vector<Shape> input_shapes() const override { return inner_.input_shapes(); }
  std::vector<Shape> target_shapes() const override { return inner_.target_shapes(); }
  void load(const Index* rows, Index cnt, std::vector<Tensor<float>>& x, std::vector<Tensor<float>>& y) const override {
    input_rows += cnt;
    if (fail_at >= 0)
      for (Index i = 0; i < cnt; ++i)
        if (rows[i] == fail_at) throw io_error("CountingSource: cannot read sample " + std::to_string(fail_at));
    inner_.load(rows, cnt, x, y);
  }
  void load_targets(const Index* rows, Index cnt, std::vector<Tensor<float>>& y) const override {
    target_rows += cnt;
    inner_.load_targets(rows, cnt, y);
  }
  std::string describe() const override { return "counting source"; }
  mutable std::atomic<Index> input_rows{0}, target_rows{0};
  Index fail_at = -1;

 private:
  data::ArraySource<float> inner_;
};

/// Peak resident memory of this process so far, in MB.
double peak_rss_mb() {
  struct rusage u {};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

}  // namespace

TEST_CASE("fit on a source equals fit on the arrays, bit for bit (prefetching worker thread)", "[data][stream]") {
  auto x = rnd({200, 20}, 1);
  auto y = labels(200, 4, 2);
  auto a = net(), b = net();
  auto ha = a->fit(x, y, opts(3));
  CountingSource src(x, y);
  auto hb = b->fit(src, opts(3));
  same_weights(*a, *b);
  CHECK(ha["loss"] == hb["loss"]);
  CHECK(ha["accuracy"] == hb["accuracy"]);
  CHECK(src.input_rows.load() == 3 * 200 + 1);  // 3 passes, plus one sample to probe shapes
}

TEST_CASE("evaluate and predict on a source equal the array forms", "[data][stream]") {
  auto x = rnd({70, 20}, 4);
  auto y = labels(70, 4, 5);
  auto m = net();
  CountingSource src(x, y);
  auto la = m->evaluate(x, y, 16), lb = m->evaluate(src, 16);
  CHECK(la.at("loss") == lb.at("loss"));
  CHECK(la.at("accuracy") == lb.at("accuracy"));
  auto pa = m->predict(x, 16);
  auto pb = m->predict(src, 16);
  REQUIRE(pb.size() == 1);
  CHECK(pa == pb[0]);
  // validation_steps: the first 2 batches only
  auto l2 = m->evaluate(src, 16, 2);
  auto x32 = x.slice_rows(0, 32), y32 = y.slice_rows(0, 32);
  CHECK(l2.at("loss") == Approx(m->evaluate(x32, y32, 16).at("loss")).epsilon(1e-12));
}

TEST_CASE("feature cache: cached training equals uncached bit for bit, in memory and on disk", "[data][stream][cache]") {
  auto x = rnd({150, 20}, 6);
  auto y = labels(150, 4, 7);
  auto vx = rnd({40, 20}, 8);
  auto vy = labels(40, 4, 9);
  auto plain = net(), mem = net(), disk = net();
  auto o = opts(4);
  o.validation_x = {vx};
  o.validation_y = {vy};
  auto h0 = plain->fit(x, y, o);
  CHECK(h0.feature_cache == "off");

  o.feature_cache = FeatureCacheMode::automatic;
  CountingSource src(x, y);
  auto h1 = mem->fit(src, o);
  INFO(h1.feature_cache);
  CHECK(h1.feature_cache.rfind("memory: outputs of 'd2'", 0) == 0);
  same_weights(*plain, *mem);
  CHECK(h0["loss"] == h1["loss"]);
  CHECK(h0["val_loss"] == h1["val_loss"]);
  for (auto& kv : h0.history) {
    INFO(kv.first);
    CHECK(h1[kv.first] == kv.second);
  }
  // inputs were read in the first epoch only; later epochs read targets alone
  CHECK(src.input_rows.load() == 150 + 1);
  CHECK(src.target_rows.load() == 3 * 150);

  o.feature_cache_budget = 1000;  // bytes: far too small, so the cache spills to disk
  o.feature_cache_dir = graft_test::tmp_dir();
  auto h2 = disk->fit(x, y, o);
  INFO(h2.feature_cache);
  CHECK(h2.feature_cache.rfind("disk: ", 0) == 0);
  same_weights(*plain, *disk);
  CHECK(h0["val_loss"] == h2["val_loss"]);

  auto memonly = net();
  o.feature_cache = FeatureCacheMode::memory;
  auto h3 = memonly->fit(x, y, o);
  CHECK(h3.feature_cache.rfind("off: ", 0) == 0);
  same_weights(*plain, *memonly);
}

TEST_CASE("feature cache: off when nothing is frozen, when the bottom is random, or for one epoch", "[data][stream][cache]") {
  auto x = rnd({64, 20}, 10);
  auto y = labels(64, 4, 11);
  auto o = opts(2, FeatureCacheMode::automatic);
  {
    auto m = net(false);
    CHECK(m->fit(x, y, o).feature_cache == "off: no frozen layers at the bottom of the model");
  }
  {
    set_random_seed(7);
    auto m = std::make_shared<Sequential<float>>("r");
    m->add(std::make_shared<InputLayer<float>>(Shape{20}));
    m->add(std::make_shared<Dropout<float>>(0.5, "drop0"));
    m->add(std::make_shared<Dense<float>>(32, "relu", true, "d1"));
    m->add(std::make_shared<Dense<float>>(4, "softmax", true, "out"));
    m->get_layer("d1")->set_trainable(false);
    m->compile("adam", "sparse_categorical_crossentropy");
    CHECK(m->fit(x, y, o).feature_cache == "off: no frozen layers at the bottom of the model");
  }
  {
    auto m = net();
    CHECK(m->fit(x, y, opts(1, FeatureCacheMode::automatic)).feature_cache == "off: every sample is seen once");
  }
}

TEST_CASE("feature cache: unfreezing during training drops the cache and stays exact", "[data][stream][cache]") {
  auto x = rnd({96, 20}, 12);
  auto y = labels(96, 4, 13);
  auto unfreeze = [](Model<float>* m) {
    auto cb = std::make_shared<LambdaCallback<float>>();
    cb->on_epoch_begin_fn = [m](int epoch, const Logs&) {
      if (epoch == 2) m->get_layer("d2")->set_trainable(true);
    };
    return cb;
  };
  auto a = net(), b = net();
  auto oa = opts(4);
  oa.callbacks = {unfreeze(a.get())};
  auto ob = opts(4, FeatureCacheMode::automatic);
  ob.callbacks = {unfreeze(b.get())};
  auto ha = a->fit(x, y, oa);
  auto hb = b->fit(x, y, ob);
  CHECK(hb.feature_cache == "off: the frozen layers changed during training");
  same_weights(*a, *b);
  CHECK(ha["loss"] == hb["loss"]);
}

TEST_CASE("steps_per_epoch runs on across epochs, a new shuffled pass whenever one ends", "[data][stream]") {
  auto x = rnd({10, 20}, 14);
  auto y = labels(10, 4, 15);
  auto m = net();
  CountingSource src(x, y);
  auto o = opts(3);
  o.batch_size = 4;
  o.steps_per_epoch = 2;
  auto h = m->fit(src, o);
  CHECK(h.epoch.size() == 3);
  // batches of 4, 4, 2 (the end of a pass), 4, 4, 2: 20 samples, plus the shape probe
  CHECK(src.input_rows.load() == 20 + 1);
}

TEST_CASE("a source that fails while prefetching stops fit with its error", "[data][stream]") {
  auto x = rnd({64, 20}, 16);
  auto y = labels(64, 4, 17);
  auto m = net();
  CountingSource src(x, y);
  src.fail_at = 40;
  REQUIRE_THROWS_WITH(m->fit(src, opts(2)), Catch::Contains("cannot read sample 40"));
  // the model is usable afterwards
  CHECK_NOTHROW(m->fit(x, y, opts(1)));
}

TEST_CASE("validation_split on a source holds out its last samples", "[data][stream]") {
  auto x = rnd({50, 20}, 18);
  auto y = labels(50, 4, 19);
  auto a = net(), b = net();
  auto o = opts(2);
  o.validation_split = 0.2;
  auto ha = a->fit(x, y, o);
  data::ArraySource<float> src(x, y);
  auto hb = b->fit(src, o);
  same_weights(*a, *b);
  CHECK(ha["val_loss"] == hb["val_loss"]);
}

TEST_CASE("H5Source streams an HDF5 file in row runs: fit equals fit on the arrays", "[data][stream][h5]") {
  auto x = rnd({120, 20}, 20);
  auto y = labels(120, 4, 21);
  const std::string path = graft_test::tmp_dir() + "/stream_xy.h5";
  {
    H5::H5File f(path, H5F_ACC_TRUNC);
    hsize_t dx[2] = {120, 20}, dy[1] = {120};
    H5::DataSpace sx(2, dx), sy(1, dy);
    f.createDataSet("x", H5::PredType::NATIVE_FLOAT, sx).write(x.data(), H5::PredType::NATIVE_FLOAT);
    std::vector<int> yi(y.begin(), y.end());
    f.createGroup("labels");
    f.createDataSet("labels/y", H5::PredType::NATIVE_INT, sy).write(yi.data(), H5::PredType::NATIVE_INT);
  }
  data::H5Source<float> src(path, {"x"}, {"labels/y"});
  CHECK(src.size() == 120);
  auto a = net(), b = net();
  a->fit(x, y, opts(3));
  b->fit(src, opts(3));
  same_weights(*a, *b);

  REQUIRE_THROWS_WITH(data::H5Source<float>(path, {"nope"}), Catch::Contains("no dataset 'nope'"));
  REQUIRE_THROWS_WITH(data::H5Source<float>(path + ".missing", {"x"}), Catch::Contains("no such file"));
  REQUIRE_THROWS_WITH(data::H5Source<float>(graft_test::tmp_dir(), {"x"}), Catch::Contains("not a regular file"));
  const std::string fifo = graft_test::tmp_dir() + "/stream_fifo.h5";
  std::filesystem::remove(fifo);
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  REQUIRE_THROWS_WITH(data::H5Source<float>(fifo, {"x"}), Catch::Contains("not a regular file"));
  std::filesystem::remove(fifo);
}

TEST_CASE("memory stays bounded on a dataset far larger than memory (6.4 GB, generated on the fly)", "[data][stream]") {
  const Index n = 8000000, w = 200;  // 8 M samples of 200 floats: 6.4 GB if it were held
  data::FunctionSource<float> src(
      n, {{w}}, {{}},
      [](const Index* rows, Index cnt, std::vector<Tensor<float>>& x, std::vector<Tensor<float>>& y) {
        x[0].resize({cnt, w});
        y[0].resize({cnt});
        for (Index r = 0; r < cnt; ++r) {
          Rng g(static_cast<std::uint64_t>(rows[r]));  // sample i is a function of i
          for (Index k = 0; k < w; ++k) x[0][r * w + k] = static_cast<float>(g.uniform(-1, 1));
          y[0][r] = static_cast<float>(rows[r] % 4);
        }
      },
      "generated samples");
  set_random_seed(1);
  auto m = std::make_shared<Sequential<float>>("big");
  m->add(std::make_shared<InputLayer<float>>(Shape{w}));
  m->add(std::make_shared<Dense<float>>(32, "relu", true, "h"));
  m->add(std::make_shared<Dense<float>>(4, "softmax", true, "o"));
  m->compile("adam", "sparse_categorical_crossentropy");
  auto o = opts(2);
  o.batch_size = 256;
  o.steps_per_epoch = 40;
  const double before = peak_rss_mb();
  auto h = m->fit(src, o);
  const double grown = peak_rss_mb() - before;
  INFO("peak RSS grew by " << grown << " MB over a " << n * w * 4 / 1e9 << " GB dataset");
  CHECK(h.epoch.size() == 2);
  CHECK(grown < 200);  // the sample order (64 MB) and a few batches, never the data
}
