// The fine-tuning toolkit: discriminative learning rates, layer groups and gradual unfreezing,
// the LR range test, L2-SP, Keras' callbacks (ModelCheckpoint, ReduceLROnPlateau, CSVLogger,
// LearningRateScheduler, TerminateOnNaN, LambdaCallback) and BackupAndRestore's bit-identical
// resume.
#include <graft/graft.hpp>
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gradcheck.hpp"

using namespace graft;

namespace {

Tensor<float> rnd_data(Shape s, std::uint64_t seed, double lo = -1, double hi = 1) {
  Rng r(seed);
  Tensor<float> t(s);
  for (auto& v : t) v = static_cast<float>(r.uniform(lo, hi));
  return t;
}

/// in -> Dense(8, relu) -> Dropout -> Dense(6, tanh) -> BatchNormalization -> Dense(out)
std::shared_ptr<Sequential<float>> net(const std::string& p, Index out = 1, double dropout = 0.25) {
  auto m = std::make_shared<Sequential<float>>(p);
  m->add(std::make_shared<InputLayer<float>>(Shape{5}));
  m->add(std::make_shared<Dense<float>>(8, "relu", true, p + "_d1"));
  m->add(std::make_shared<Dropout<float>>(dropout, p + "_drop"));
  m->add(std::make_shared<Dense<float>>(6, "tanh", true, p + "_d2"));
  m->add(std::make_shared<BatchNormalization<float>>(-1, 0.9, 1e-3, true, true, p + "_bn"));
  m->add(std::make_shared<Dense<float>>(out, "linear", true, p + "_out"));
  return m;
}

FitOptions<float> opts(int epochs, Index batch = 4) {
  FitOptions<float> o;
  o.epochs = epochs;
  o.batch_size = batch;
  o.verbose = 0;
  o.seed = 11;
  return o;
}

bool same_bits(const std::vector<Tensor<float>>& a, const std::vector<Tensor<float>>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].shape() != b[i].shape()) return false;
    for (Index k = 0; k < a[i].size(); ++k)
      if (std::memcmp(&a[i][k], &b[i][k], sizeof(float)) != 0) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("learning-rate multipliers: 0 leaves a layer unchanged, 0.5 moves it half as far", "[train][toolkit]") {
  for (const std::string opt : {"sgd", "sgd_momentum", "adam", "rmsprop", "adagrad"}) {
    set_random_seed(301);
    auto m = net("lrm", 1, 0.0);
    std::shared_ptr<Optimizer<float>> o;
    if (opt == "sgd") o = std::make_shared<SGD<float>>(0.1);
    else if (opt == "sgd_momentum") o = std::make_shared<SGD<float>>(0.1, 0.9, true);
    else if (opt == "adam") o = std::make_shared<Adam<float>>(0.01);
    else if (opt == "rmsprop") o = std::make_shared<RMSprop<float>>(0.01, 0.9, 0.5);
    else o = std::make_shared<Adagrad<float>>(0.1);
    m->compile(o, "mse");
    m->get_layer("lrm_d1")->set_lr_multiplier(0.0);
    auto d1 = m->get_layer("lrm_d1")->get_weights(), d2 = m->get_layer("lrm_d2")->get_weights();
    m->fit(rnd_data({16, 5}, 1), rnd_data({16, 1}, 2), opts(2));
    INFO(opt);
    CHECK(same_bits(m->get_layer("lrm_d1")->get_weights(), d1));
    CHECK_FALSE(same_bits(m->get_layer("lrm_d2")->get_weights(), d2));
  }
  SECTION("plain SGD with multiplier 0.5: exactly half the step") {
    set_random_seed(302);
    auto a = net("half", 1, 0.0);
    a->compile(std::make_shared<SGD<float>>(0.1), "mse");
    // the same model twice: one step with the multiplier, one without, from the same weights
    auto w0 = a->get_weights();
    Tensor<float> x = rnd_data({8, 5}, 3), y = rnd_data({8, 1}, 4);
    a->get_layer("half_out")->set_lr_multiplier(0.5);
    a->train_on_batch({x}, {y});
    auto half = a->get_layer("half_out")->get_weights();
    a->set_weights(w0);
    a->get_layer("half_out")->set_lr_multiplier(1.0);
    a->train_on_batch({x}, {y});
    auto full = a->get_layer("half_out")->get_weights();
    a->set_weights(w0);
    auto start = a->get_layer("half_out")->get_weights();
    for (size_t i = 0; i < start.size(); ++i)
      for (Index k = 0; k < start[i].size(); ++k) {
        const double dh = half[i][k] - start[i][k], df = full[i][k] - start[i][k];
        CHECK(dh == Approx(0.5 * df).margin(1e-7));
      }
  }
  SECTION("weight decay is scaled too, and bad multipliers are refused") {
    set_random_seed(303);
    auto m = net("wd", 1, 0.0);
    auto opt = std::make_shared<SGD<float>>(0.1);
    opt->weight_decay = 0.5;
    m->compile(opt, "mse");
    m->get_layer("wd_d1")->set_lr_multiplier(0.0);
    auto d1 = m->get_layer("wd_d1")->get_weights();
    m->fit(rnd_data({8, 5}, 5), rnd_data({8, 1}, 6), opts(1));
    CHECK(same_bits(m->get_layer("wd_d1")->get_weights(), d1));
    CHECK_THROWS_AS(m->get_layer("wd_d1")->set_lr_multiplier(-1), value_error);
    CHECK_THROWS_AS(m->get_layer("wd_d1")->set_lr_multiplier(std::nan("")), value_error);
  }
}

TEST_CASE("learning-rate multipliers are saved in graft's .h5 and a file without them means 1", "[train][toolkit]") {
  set_random_seed(304);
  auto m = net("save_mult", 1, 0.0);
  m->compile(std::make_shared<SGD<float>>(0.1), "mse");
  set_discriminative_lrs(*m, 2.6, 3);
  const std::string p = graft_test::tmp_dir() + "/mult.h5";
  save_model(*m, p);
  auto back = load_model<float>(p);
  for (const auto& l : m->layers())
    for (size_t i = 0; i < l->weights().size(); ++i)
      CHECK(back->get_layer(l->name())->weights()[i]->lr_multiplier == l->weights()[i]->lr_multiplier);
  CHECK(back->get_layer("save_mult_out")->weights()[0]->lr_multiplier == 1.0);
  CHECK(back->get_layer("save_mult_d1")->weights()[0]->lr_multiplier == Approx(1 / (2.6 * 2.6)));
  // a Keras file has no such attribute: every multiplier is 1
  auto keras = load_model<float>(graft_test::shared_path("keras-fixtures/handson_model_a/model.h5"));
  for (Param<float>* w : keras->weights()) CHECK(w->lr_multiplier == 1.0);
}

TEST_CASE("layer groups split the weighted layers bottom to top; discriminative rates are geometric", "[train][toolkit]") {
  set_random_seed(305);
  auto m = net("groups");
  auto g = layer_groups(*m, 2);
  REQUIRE(g.size() == 2);
  CHECK(g[0].size() == 2);  // d1, d2
  CHECK(g[1].size() == 2);  // bn, out
  CHECK(g[0][0]->name() == "groups_d1");
  CHECK(g[1][1]->name() == "groups_out");
  set_discriminative_lrs(g, 10.0);
  CHECK(m->get_layer("groups_d1")->lr_multiplier() == Approx(0.1));
  CHECK(m->get_layer("groups_out")->lr_multiplier() == 1.0);
  CHECK_THROWS_AS(layer_groups(*m, 5), value_error);
  CHECK_THROWS_AS(set_discriminative_lrs(g, 0.5), value_error);
}

TEST_CASE("gradual unfreezing opens one group per epoch from the top; BatchNormalization stays frozen", "[train][toolkit]") {
  set_random_seed(306);
  // a frozen base (d1, d2, bn) nested in a model with a new head
  auto base = net("gu_base", 4, 0.0);
  base->set_trainable(false);
  auto m = std::make_shared<Sequential<float>>("gu");
  m->add(std::make_shared<InputLayer<float>>(Shape{5}));
  m->add(base);
  m->add(std::make_shared<Dense<float>>(1, "linear", true, "gu_head"));
  m->compile(std::make_shared<SGD<float>>(0.05, 0.9), "mse");
  auto gu = std::make_shared<GradualUnfreezing<float>>(3, 1);
  std::vector<std::vector<std::string>> trained;  // the layers whose weights changed in each epoch
  std::vector<std::vector<Tensor<float>>> before;
  auto names = std::vector<std::string>{"gu_base_d1", "gu_base_d2", "gu_base_bn", "gu_base_out", "gu_head"};
  auto get = [&](const std::string& n) { return n == "gu_head" ? m->get_layer(n) : base->get_layer(n); };
  auto lam = std::make_shared<LambdaCallback<float>>();
  lam->on_epoch_begin_fn = [&](int, const Logs&) {
    before.clear();
    for (auto& n : names) before.push_back(get(n)->get_weights());
  };
  lam->on_epoch_end_fn = [&](int, Logs&) {
    std::vector<std::string> changed;
    for (size_t i = 0; i < names.size(); ++i)
      if (!same_bits(get(names[i])->get_weights(), before[i])) changed.push_back(names[i]);
    trained.push_back(changed);
  };
  FitOptions<float> o = opts(4);
  o.callbacks = {gu, lam};
  m->fit(rnd_data({16, 5}, 7), rnd_data({16, 1}, 8), o);
  // 5 weighted layers in 3 groups: {d1, d2}, {bn, base out}, {head}
  REQUIRE(trained.size() == 4);
  CHECK(trained[0] == std::vector<std::string>{"gu_head"});
  CHECK(trained[1] == std::vector<std::string>{"gu_base_out", "gu_head"});  // bn stays frozen, as it was
  CHECK(trained[2] == std::vector<std::string>{"gu_base_d1", "gu_base_d2", "gu_base_out", "gu_head"});
  CHECK(trained[3] == trained[2]);
  CHECK(gu->unfrozen_groups() == 3);
}

TEST_CASE("lr_find sweeps, suggests, and restores the model bit for bit", "[train][toolkit]") {
  set_random_seed(307);
  auto m = net("lrf", 1, 0.3);
  m->compile(std::make_shared<Adam<float>>(1e-3), "mse");
  Tensor<float> x = rnd_data({64, 5}, 9), y = rnd_data({64, 1}, 10);
  m->fit(x, y, opts(1));  // optimizer slots and iterations exist
  auto w = m->get_weights();
  auto st = m->optimizer()->state();
  LRFindOptions lo;
  lo.num_it = 60;
  lo.batch_size = 8;
  lo.seed = 3;
  auto r = lr_find(*m, x, y, lo);
  CHECK(same_bits(m->get_weights(), w));
  auto st2 = m->optimizer()->state();
  CHECK(st2.iterations == st.iterations);
  CHECK(st2.learning_rate == st.learning_rate);
  REQUIRE(st2.slots.size() == st.slots.size());
  for (size_t i = 0; i < st.slots.size(); ++i) CHECK(same_bits(st2.slots[i], st.slots[i]));
  REQUIRE(r.lrs.size() >= 10);
  CHECK(r.lrs.front() == Approx(1e-7));
  for (size_t i = 1; i < r.lrs.size(); ++i) CHECK(r.lrs[i] > r.lrs[i - 1]);
  CHECK(r.suggestion() >= r.lrs.front());
  CHECK(r.suggestion() <= r.lrs.back());
  CHECK(r.minimum > 0);
  CHECK(r.steep > 0);
  // diverging at the large rates ends the sweep early (smoothed loss > 4x its minimum)
  CHECK(r.lrs.size() < 60);
  // the same sweep again gives the same curve (the restored state is the same)
  auto r2 = lr_find(*m, x, y, lo);
  CHECK(r2.losses == r.losses);
  const std::string csv = graft_test::tmp_dir() + "/lr_find.csv";
  r.write_csv(csv);
  std::ifstream f(csv);
  std::string header;
  std::getline(f, header);
  CHECK(header == "lr,loss,raw_loss");
  SECTION("nothing to train, bad ranges") {
    m->set_trainable(false);
    CHECK_THROWS_AS(lr_find(*m, x, y, lo), value_error);
    m->set_trainable(true);
    LRFindOptions bad = lo;
    bad.start_lr = 1;
    bad.end_lr = 0.1;
    CHECK_THROWS_AS(lr_find(*m, x, y, bad), value_error);
  }
}

TEST_CASE("L2-SP pulls reused weights to their pretrained values; its gradient is exact", "[train][toolkit]") {
  set_random_seed(308);
  auto m = std::make_shared<Sequential<double>>("sp");
  m->add(std::make_shared<InputLayer<double>>(Shape{3}));
  m->add(std::make_shared<Dense<double>>(4, "tanh", true, "sp_base"));
  m->add(std::make_shared<Dense<double>>(1, "linear", true, "sp_head"));
  m->compile(std::make_shared<SGD<double>>(0.1), "mse");
  set_l2sp(*m, {"sp_head"}, 0.3, 0.2);
  // move the weights away from the anchors, then compare the penalty's gradient with differences
  for (Param<double>* p : m->weights())
    for (auto& v : p->value) v += 0.1;
  const double h = 1e-6;
  m->regularization_loss(false);
  for (Param<double>* p : m->weights()) p->grad_fresh = true;
  m->regularization_loss(true);
  for (Param<double>* p : m->weights()) {
    REQUIRE_FALSE(p->grad_fresh);
    for (Index k = 0; k < p->value.size(); ++k) {
      const double v = p->value[k];
      p->value[k] = v + h;
      const double up = m->regularization_loss(false);
      p->value[k] = v - h;
      const double down = m->regularization_loss(false);
      p->value[k] = v;
      CHECK(p->grad[k] == Approx((up - down) / (2 * h)).epsilon(1e-6));
    }
  }
  // the penalty: 0.3/2 * sum (0.1)^2 over the base, 0.2/2 * ||w||^2 over the head
  clear_l2sp(*m);
  CHECK(m->regularization_loss(false) == 0.0);
  CHECK_THROWS_AS(set_l2sp(*m, {"no_such_layer"}), value_error);
}

TEST_CASE("Keras callbacks: ReduceLROnPlateau, LearningRateScheduler, TerminateOnNaN, CSVLogger, ModelCheckpoint", "[train][toolkit]") {
  set_random_seed(309);
  Tensor<float> x = rnd_data({16, 5}, 11), y = rnd_data({16, 1}, 12);
  SECTION("ReduceLROnPlateau multiplies the rate by factor after patience epochs without improvement") {
    auto m = net("rlr", 1, 0.0);
    m->compile(std::make_shared<SGD<float>>(0.0), "mse");  // lr 0: the loss never improves
    m->optimizer()->set_learning_rate(0.5);
    auto cb = std::make_shared<ReduceLROnPlateau<float>>("loss", 0.5, 1, 0, "auto", 1e9, 0, 0.1);
    FitOptions<float> o = opts(5);
    o.callbacks = {cb};
    auto h = m->fit(x, y, o);
    // epoch 0 sets best; epochs 1.. no improvement by 1e9: 0.5 -> 0.25 -> 0.125 -> 0.1 (min_lr) -> 0.1
    CHECK(h["learning_rate"] == std::vector<double>{0.5, 0.5, 0.25, 0.125, 0.1});
    CHECK(m->optimizer()->learning_rate() == Approx(0.1));
  }
  SECTION("LearningRateScheduler sets the rate at each epoch's start") {
    auto m = net("lrs", 1, 0.0);
    m->compile(std::make_shared<SGD<float>>(0.1), "mse");
    FitOptions<float> o = opts(3);
    o.callbacks = {std::make_shared<LearningRateScheduler<float>>([](int e, double lr) { return e == 0 ? lr : lr * 0.5; })};
    auto h = m->fit(x, y, o);
    CHECK(h["learning_rate"] == std::vector<double>{0.1, 0.05, 0.025});
  }
  SECTION("TerminateOnNaN stops after the first non-finite batch loss") {
    auto m = net("nan", 1, 0.0);
    m->compile(std::make_shared<SGD<float>>(0.1), "mse");
    Tensor<float> ybad = y;
    ybad[5] = std::numeric_limits<float>::infinity();
    FitOptions<float> o = opts(3);
    o.shuffle = false;
    o.check_data = false;  // fit would refuse the inf before training
    int batches = 0;
    auto count = std::make_shared<LambdaCallback<float>>();
    count->on_train_batch_end_fn = [&](Index, const Logs&) { ++batches; };
    o.callbacks = {std::make_shared<TerminateOnNaN<float>>(), count};
    m->fit(x, ybad, o);
    CHECK(batches == 2);  // row 5 is in the second batch of 4
    o.callbacks = {std::make_shared<TerminateOnNaN<float>>(true)};
    CHECK_THROWS_AS(m->fit(x, ybad, o), value_error);
  }
  SECTION("CSVLogger writes Keras' columns; ModelCheckpoint formats paths and keeps the best") {
    auto m = net("csv", 1, 0.0);
    m->compile(std::make_shared<SGD<float>>(0.05), "mse", {"mae"});
    const std::string dir = graft_test::tmp_dir() + "/ckpt";
    const std::string csv = graft_test::tmp_dir() + "/log.csv";
    auto best = std::make_shared<ModelCheckpoint<float>>(dir + "/best.h5", "val_loss", 0, true);
    auto every = std::make_shared<ModelCheckpoint<float>>(dir + "/m_{epoch:02d}_{loss:.3f}.keras", "loss");
    FitOptions<float> o = opts(3);
    o.validation_split = 0.25;
    o.callbacks = {std::make_shared<CSVLogger<float>>(csv), best, every};
    auto h = m->fit(x, y, o);
    std::ifstream f(csv);
    std::string line;
    std::getline(f, line);
    CHECK(line == "epoch,loss,lr,mae,val_loss,val_mae");
    int rows = 0;
    while (std::getline(f, line)) ++rows;
    CHECK(rows == 3);
    char name[64];
    std::snprintf(name, sizeof name, "/m_03_%.3f.keras", h["loss"][2]);
    CHECK(std::filesystem::exists(dir + name));
    CHECK(every->last_saved() == dir + name);
    REQUIRE(std::filesystem::exists(dir + "/best.h5"));
    double lowest = *std::min_element(h["val_loss"].begin(), h["val_loss"].end());
    CHECK(*best->best() == lowest);
    auto back = load_model<float>(dir + "/best.h5");
    CHECK(back->name() == "csv");
    CHECK_THROWS_AS(detail::format_checkpoint_path("x_{nope}.h5", 1, Logs{{"loss", 1}}), value_error);
    CHECK(detail::format_checkpoint_path("e{epoch:03d}-{loss:.2f}-{val_loss}", 7, Logs{{"loss", 0.125}, {"val_loss", 0.5}}) == "e007-0.12-0.5");
  }
}

TEST_CASE("BackupAndRestore: a run interrupted mid-epoch resumes and ends bit-identical", "[train][toolkit]") {
  Tensor<float> x = rnd_data({30, 5}, 13), y = rnd_data({30, 1}, 14);
  auto build = [](std::uint64_t seed = 310) {
    set_random_seed(seed);
    auto m = net("bar", 1, 0.3);  // dropout: the generators must be restored too
    m->compile(std::make_shared<Adam<float>>(0.01), "mse", {"mae"});
    return m;
  };
  auto es = [] { return std::make_shared<EarlyStopping<float>>("loss", 100); };
  // a schedule that acts at each epoch's start: a run resumed mid-epoch must not apply it twice
  auto lrs = [] { return std::make_shared<LearningRateScheduler<float>>([](int e, double lr) { return e == 0 ? lr : lr * 0.7; }); };
  // uninterrupted
  auto ref = build();
  FitOptions<float> o = opts(4);
  o.callbacks = {es(), lrs()};
  auto href = ref->fit(x, y, o);
  for (Index save_freq : {Index(0), Index(3)}) {
    INFO("save_freq " << save_freq);
    const std::string dir = graft_test::tmp_dir() + "/backup_" + std::to_string(save_freq);
    auto m = build();
    struct Boom : Callback<float> {
      bool armed = true;
      int epoch = 0;
      void on_epoch_begin(int e, const Logs&) override { epoch = e; }
      void on_train_batch_end(Index b, const Logs&) override {
        if (armed && epoch == 2 && b == 4) throw std::runtime_error("killed");
      }
    };
    FitOptions<float> o1 = opts(4);
    o1.callbacks = {es(), lrs(), std::make_shared<Boom>(), std::make_shared<BackupAndRestore<float>>(dir, save_freq)};
    CHECK_THROWS_WITH(m->fit(x, y, o1), "killed");
    REQUIRE(std::filesystem::exists(dir + "/checkpoint.h5"));
    // "the same command again": a fresh model (other initial weights), the same callbacks
    auto again = build(999);
    auto bar = std::make_shared<BackupAndRestore<float>>(dir, save_freq);
    auto boom = std::make_shared<Boom>();
    boom->armed = false;
    FitOptions<float> o2 = opts(4);
    o2.callbacks = {es(), lrs(), boom, bar};
    auto h = again->fit(x, y, o2);
    CHECK(bar->resumed());
    CHECK(same_bits(again->get_weights(), ref->get_weights()));
    CHECK(h["loss"].back() == href["loss"].back());
    CHECK_FALSE(std::filesystem::exists(dir));  // deleted after a completed run
  }
  SECTION("another model's or another dataset's backup is refused, nothing changed") {
    const std::string dir = graft_test::tmp_dir() + "/backup_other";
    auto m = build();
    FitOptions<float> o1 = opts(1);
    o1.callbacks = {std::make_shared<BackupAndRestore<float>>(dir, 0, false)};
    m->fit(x, y, o1);
    auto other = std::make_shared<Sequential<float>>("other");
    other->add(std::make_shared<InputLayer<float>>(Shape{5}));
    other->add(std::make_shared<Dense<float>>(1, "linear", true, "o"));
    other->compile(std::make_shared<SGD<float>>(0.1), "mse");
    auto w = other->get_weights();
    FitOptions<float> o2 = opts(2);
    o2.callbacks = {std::make_shared<BackupAndRestore<float>>(dir)};
    CHECK_THROWS_AS(other->fit(x, y, o2), value_error);
    CHECK(same_bits(other->get_weights(), w));
    auto m2 = build();
    CHECK_THROWS_AS(m2->fit(x, rnd_data({30, 1}, 99), o2), value_error);
    // a damaged (truncated) checkpoint: a graft:: error, the model untouched
    const std::string ckpt = dir + "/checkpoint.h5";
    std::filesystem::resize_file(ckpt, std::filesystem::file_size(ckpt) / 2);
    auto m3 = build(77);
    auto w3 = m3->get_weights();
    CHECK_THROWS_AS(m3->fit(x, y, o2), graft::error);
    CHECK(same_bits(m3->get_weights(), w3));
  }
}

TEST_CASE("fine_tune: the top group alone with 1-cycle, then every group with discriminative rates", "[train][toolkit]") {
  set_random_seed(311);
  auto m = net("ft", 1, 0.0);
  m->compile(std::make_shared<SGD<float>>(0.01, 0.9), "mse");
  m->get_layer("ft_d2")->set_lr_multiplier(0.7);  // put back afterwards, like the flags
  auto d1 = m->get_layer("ft_d1")->get_weights();
  Tensor<float> x = rnd_data({32, 5}, 15), y = rnd_data({32, 1}, 16);
  FineTuneOptions<float> o;
  o.epochs = 2;
  o.freeze_epochs = 1;
  o.base_lr = 0.05;
  o.fit = opts(0, 8);
  std::vector<Tensor<float>> after_stage1;
  auto probe = std::make_shared<LambdaCallback<float>>();
  int fits = 0;
  probe->on_train_end_fn = [&](const Logs&) {
    if (fits++ == 0) after_stage1 = m->get_layer("ft_d1")->get_weights();
  };
  o.fit.callbacks = {probe};
  auto h = fine_tune(*m, x, y, o);
  CHECK(h.frozen["loss"].size() == 1);
  CHECK(h.unfrozen["loss"].size() == 2);
  CHECK(same_bits(after_stage1, d1));                               // stage 1: the bottom group frozen
  CHECK_FALSE(same_bits(m->get_layer("ft_d1")->get_weights(), d1));  // stage 2: trained
  CHECK(m->get_layer("ft_d2")->weights()[0]->lr_multiplier == 0.7);
  CHECK(m->get_layer("ft_d1")->trainable());
  // the second stage's 1-cycle ends annealed far below its start (base_lr / 2 / div)
  CHECK(m->optimizer()->learning_rate() < 0.05 / 2 / 5 / 2);
}

TEST_CASE("unfreeze opens every layer but leaves frozen BatchNormalization in inference mode", "[train][toolkit]") {
  set_random_seed(312);
  auto base = net("uf_base", 2, 0.0);
  base->set_trainable(false);
  unfreeze(*base);
  CHECK(base->trainable());
  CHECK(base->get_layer("uf_base_d1")->trainable());
  CHECK_FALSE(base->get_layer("uf_base_bn")->trainable());
  unfreeze(*base, true);
  CHECK(base->get_layer("uf_base_bn")->trainable());
  LRFindResult r;
  r.lrs = {1e-5, 1e-4, 1e-3, 1e-2};
  r.losses = {1.0, 0.8, 0.5, 2.0};
  r.raw_losses = r.losses;
  r.valley = 1e-3;
  const std::string svg = graft_test::tmp_dir() + "/lr.svg";
  r.write_svg(svg);
  std::ifstream f(svg);
  std::stringstream all;
  all << f.rdbuf();
  CHECK(all.str().find("<polyline") != std::string::npos);
  CHECK(all.str().find("valley 0.001") != std::string::npos);
}
