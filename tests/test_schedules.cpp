// Learning-rate and hyperparameter schedules: Keras' CosineDecayRestarts (against real Keras) and
// CosineDecay warmup, the annealing functions, ParamScheduler / OneCycle / CyclicLR /
// LinearWarmup in Model::fit, and the --lr-schedule spec parser.
#include <graft/graft.hpp>
#include <graft/train/param_scheduler.hpp>
#include <graft/train/schedule_spec.hpp>
#include <catch2/catch.hpp>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

using namespace graft;

#define CHECK_VALUE_ERROR(expr, text)                   \
  do {                                                  \
    CHECK_THROWS_AS(expr, value_error);                 \
    CHECK_THROWS_WITH(expr, Catch::Contains(text));     \
  } while (0)

namespace {

const double kPi = 3.14159265358979323846;

Tensor<float> rnd(const Shape& s, std::uint64_t seed) {
  Rng r(seed);
  Tensor<float> t(s);
  for (auto& v : t) v = static_cast<float>(r.uniform(-1, 1));
  return t;
}

/// A tiny regression model compiled with `opt`; 40 samples, so 5 batches of 8 per epoch.
struct Tiny {
  std::shared_ptr<Sequential<float>> model;
  Tensor<float> x, y;
  explicit Tiny(std::shared_ptr<Optimizer<float>> opt) {
    set_random_seed(515);
    model = std::make_shared<Sequential<float>>("sched_model");
    model->add(std::make_shared<InputLayer<float>>(Shape{3}));
    model->add(make<Dense>(4, "tanh", true, "sched_h"));
    model->add(make<Dense>(1, "linear", true, "sched_out"));
    model->compile(std::move(opt), "mse");
    x = rnd({40, 3}, 7);
    y = Tensor<float>({40, 1});
    for (Index i = 0; i < 40; ++i) y[i] = x[i * 3] - 0.5f * x[i * 3 + 2];
  }
  History fit(std::vector<std::shared_ptr<Callback<float>>> cbs, int epochs = 4) {
    FitOptions<float> o;
    o.epochs = epochs;
    o.batch_size = 8;
    o.verbose = 0;
    o.seed = 3;
    o.callbacks = std::move(cbs);
    return model->fit(x, y, o);
  }
};

// Values printed by real Keras 3.15.1 (torch backend), /work/shared/tools/keras3/run on:
//   S = keras.optimizers.schedules
//   steps = [0,1,5,9,10,11,14,20,24,25,26,30,34,40,47,50,60,100]
//   [float(keras.ops.convert_to_numpy(s(st))) for st in steps] for each s below.
// Keras computes in float32 (the initial learning rate's dtype), hence the tolerance.
const std::vector<int> kSteps = {0, 1, 5, 9, 10, 11, 14, 20, 24, 25, 26, 30, 34, 40, 47, 50, 60, 100};
// S.CosineDecayRestarts(0.5, 10, t_mul=1.5, m_mul=0.7, alpha=0.1)
const std::vector<double> kKerasRestarts = {
    0.5, 0.4889877140522003, 0.2749999761581421, 0.06101229041814804, 0.36500000953674316, 0.3615582287311554,
    0.3128880560398102, 0.1287499964237213, 0.053441740572452545, 0.2705000042915344, 0.26942703127861023,
    0.24470637738704681, 0.19431909918785095, 0.10512499511241913, 0.05026856064796448, 0.20226971805095673,
    0.1577424556016922, 0.1254197061061859};
// S.CosineDecayRestarts(0.2, 8, t_mul=1.0, m_mul=0.5, alpha=0.05)
const std::vector<double> kKerasRestartsT1 = {
    0.20000000298023224, 0.19276855885982513, 0.06864506751298904, 0.10138427466154099, 0.09108757227659225,
    0.07567746192216873, 0.023912429809570312, 0.03374999761581421, 0.03375000134110451, 0.03284607082605362,
    0.030271893367171288, 0.013478107750415802, 0.020135946571826935, 0.015937499701976776, 0.010225982405245304,
    0.012533986940979958, 0.0107421875, 0.01002319436520338};
// S.CosineDecayRestarts(1.0, 10)  (defaults t_mul=2, m_mul=1, alpha=0)
const std::vector<double> kKerasRestartsDefault = {
    1.0, 0.9755282402038574, 0.4999999701976776, 0.024471759796142578, 1.0, 0.9938441514968872, 0.9045084714889526,
    0.4999999701976776, 0.20610728859901428, 0.1464466154575348, 0.09549155831336975, 1.0, 0.9755282402038574,
    0.8535534143447876, 0.6167227625846863, 0.4999999701976776, 0.1464466154575348, 0.6913416981697083};
// S.CosineDecay(0.0, 20, alpha=0.1, warmup_target=0.4, warmup_steps=5)
const std::vector<double> kKerasCosineWarmup = {
    0.0, 0.08000000566244125, 0.4000000059604645, 0.3656230568885803, 0.34727925062179565, 0.3258013427257538,
    0.24815821647644043, 0.09272078424692154, 0.04221609607338905, 0.04000000283122063, 0.04000000283122063,
    0.04000000283122063, 0.04000000283122063, 0.04000000283122063, 0.04000000283122063, 0.04000000283122063,
    0.04000000283122063, 0.04000000283122063};

void check_against(const LearningRateSchedule& s, const std::vector<double>& expected) {
  REQUIRE(expected.size() == kSteps.size());
  for (size_t i = 0; i < kSteps.size(); ++i) {
    CAPTURE(kSteps[i]);
    CHECK(s(kSteps[i]) == Approx(expected[i]).epsilon(2e-6).margin(1e-7));
  }
}

bool nondecreasing(const std::vector<double>& v, size_t a, size_t b) {
  for (size_t i = a; i < b; ++i)
    if (v[i + 1] < v[i]) return false;
  return true;
}
bool nonincreasing(const std::vector<double>& v, size_t a, size_t b) {
  for (size_t i = a; i < b; ++i)
    if (v[i + 1] > v[i]) return false;
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Keras schedules
// ---------------------------------------------------------------------------------------------

TEST_CASE("CosineDecayRestarts gives real Keras' values, across restarts", "[train][schedules]") {
  check_against(CosineDecayRestarts(0.5, 10, 1.5, 0.7, 0.1), kKerasRestarts);
  check_against(CosineDecayRestarts(0.2, 8, 1.0, 0.5, 0.05), kKerasRestartsT1);
  check_against(CosineDecayRestarts(1.0, 10), kKerasRestartsDefault);

  SECTION("the formula, period by period (t_mul 2: periods of 10, 20, 40 steps)") {
    CosineDecayRestarts s(1.0, 10, 2.0, 0.5, 0.2);
    auto expect = [](int i, double f) { return (1 - 0.2) * 0.5 * std::pow(0.5, i) * (1 + std::cos(kPi * f)) + 0.2; };
    for (int step = 0; step < 150; ++step) {
      CAPTURE(step);
      int i = step < 10 ? 0 : step < 30 ? 1 : step < 70 ? 2 : 3;
      int start = i == 0 ? 0 : i == 1 ? 10 : i == 2 ? 30 : 70;
      CHECK(s(step) == Approx(expect(i, (step - start) / (10.0 * std::pow(2.0, i)))).epsilon(1e-12));
    }
    // a restart is exactly at its boundary (no rounding of the logarithm to the period before)
    for (int b : {10, 30, 70, 150, 310, 630, 1270}) CHECK(s(b) / s(b - 1) > 1.0);
  }
  SECTION("bad arguments") {
    CHECK_VALUE_ERROR(CosineDecayRestarts(0.1, 0), "first_decay_steps");
    CHECK_VALUE_ERROR(CosineDecayRestarts(0.1, 10, std::nan("")), "t_mul");
    CHECK_VALUE_ERROR(CosineDecayRestarts(0.1, 10, 0.0), "t_mul");
    CHECK_VALUE_ERROR(CosineDecayRestarts(0.1, 10, 2.0, -1.0), "m_mul");
    CHECK_VALUE_ERROR(CosineDecayRestarts(-0.1, 10), "initial_learning_rate");
  }
}

TEST_CASE("CosineDecay's warmup is Keras 3's (warmup_target, warmup_steps)", "[train][schedules]") {
  check_against(CosineDecay(0.0, 20, 0.1, 0.4, 5), kKerasCosineWarmup);
}

TEST_CASE("CosineDecayRestarts config: Keras' keys, and a round trip", "[train][schedules]") {
  CosineDecayRestarts s(0.5, 10, 1.5, 0.7, 0.1);
  const nlohmann::json j = s.to_json();
  // keras.optimizers.schedules.serialize(...) of the same schedule gives
  // {'class_name': 'CosineDecayRestarts', 'config': {'initial_learning_rate': 0.5, 'first_decay_steps': 10,
  //  't_mul': 1.5, 'm_mul': 0.7, 'alpha': 0.1, 'name': 'SGDRDecay'}, ...}
  CHECK(j["module"] == "keras.optimizers.schedules");  // Keras 3's Optimizer.from_config needs it
  CHECK(j["registered_name"].is_null());
  CHECK(j["class_name"] == "CosineDecayRestarts");
  CHECK(j["config"]["initial_learning_rate"] == 0.5);
  CHECK(j["config"]["first_decay_steps"] == 10.0);
  CHECK(j["config"]["t_mul"] == 1.5);
  CHECK(j["config"]["m_mul"] == 0.7);
  CHECK(j["config"]["alpha"] == 0.1);
  CHECK(j["config"]["name"] == "SGDRDecay");
  CHECK(j["config"].size() == 6);

  auto back = LearningRateSchedule::from_json(j);
  REQUIRE(dynamic_cast<CosineDecayRestarts*>(back.get()) != nullptr);
  CHECK(back->to_json() == j);
  for (int step = 0; step < 300; ++step) CHECK((*back)(step) == s(step));

  // Keras defaults for missing keys, and a Keras-written config (integer steps, module keys)
  auto d = LearningRateSchedule::from_json(nlohmann::json::parse(
      R"({"module": "keras.optimizers.schedules", "class_name": "CosineDecayRestarts",
          "config": {"initial_learning_rate": 1.0, "first_decay_steps": 10}, "registered_name": null})"));
  check_against(*d, kKerasRestartsDefault);

  SECTION("through an optimizer's config") {
    auto opt = std::make_shared<SGD<float>>(0.1, 0.9);
    opt->set_schedule(std::make_shared<CosineDecayRestarts>(s));
    auto again = make_optimizer<float>(nlohmann::json{{"class_name", "SGD"}, {"config", opt->get_config()}});
    REQUIRE(again->schedule() != nullptr);
    for (int step : kSteps) {
      again->set_iterations(step);
      CHECK(again->learning_rate() == s(step));
    }
  }
  SECTION("CosineDecay with warmup round-trips too") {
    CosineDecay w(0.0, 20, 0.1, 0.4, 5);
    auto wb = LearningRateSchedule::from_json(w.to_json());
    check_against(*wb, kKerasCosineWarmup);
  }
}

// ---------------------------------------------------------------------------------------------
// Annealing functions
// ---------------------------------------------------------------------------------------------

TEST_CASE("annealing functions follow fastai's formulas", "[train][schedules]") {
  auto lin = sched_lin(1.0, 3.0);
  auto cs = sched_cos(1.0, 3.0);
  auto ex = sched_exp(0.1, 10.0);
  auto no = sched_no(0.7, 9.0);
  auto poly = sched_poly(1.0, 3.0, 2.0);
  for (double p : {0.0, 0.1, 0.25, 0.5, 0.8, 1.0}) {
    CAPTURE(p);
    CHECK(lin(p) == Approx(1.0 + p * 2.0));
    CHECK(cs(p) == Approx(1.0 + (1 + std::cos(kPi * (1 - p))) * 2.0 / 2));
    CHECK(ex(p) == Approx(0.1 * std::pow(100.0, p)));
    CHECK(no(p) == 0.7);
    CHECK(poly(p) == Approx(1.0 + 2.0 * p * p));
  }
  CHECK(cs(0.0) == Approx(1.0));
  CHECK(cs(0.5) == Approx(2.0));
  CHECK(cs(1.0) == Approx(3.0));
  CHECK(ex(0.5) == Approx(1.0));

  SECTION("combine_scheds: each phase runs its schedule from 0 to 1 over its share") {
    auto c = combine_scheds({0.2, 0.3, 0.5}, {sched_lin(0, 1), sched_no(5, 5), sched_lin(1, 0)});
    CHECK(c(0.0) == 0.0);
    CHECK(c(0.1) == Approx(0.5));
    CHECK(c(0.2) == 5.0);
    CHECK(c(0.45) == 5.0);
    CHECK(c(0.5) == Approx(1.0));
    CHECK(c(0.75) == Approx(0.5));
    CHECK(c(1.0) == Approx(0.0));
    auto z = combine_scheds({0.0, 1.0}, {sched_no(9, 9), sched_lin(0, 1)});  // a zero-width phase is skipped
    CHECK(z(0.0) == 0.0);
    CHECK(z(0.5) == 0.5);
    auto zl = combine_scheds({1.0, 0.0}, {sched_lin(0, 1), sched_no(9, 9)});
    CHECK(zl(1.0) == 1.0);
    auto cc = combined_cos(0.25, 1.0, 4.0, 0.5);
    CHECK(cc(0.0) == Approx(1.0));
    CHECK(cc(0.25) == Approx(4.0));
    CHECK(cc(1.0) == Approx(0.5));
  }
  SECTION("bad input") {
    CHECK_VALUE_ERROR(combine_scheds({0.5, 0.4}, {sched_lin(0, 1), sched_lin(0, 1)}), "sum to 1");
    CHECK_VALUE_ERROR(combine_scheds({1.5, -0.5}, {sched_lin(0, 1), sched_lin(0, 1)}), "pcts[1]");
    CHECK_VALUE_ERROR(combine_scheds({1.0}, {sched_lin(0, 1), sched_lin(0, 1)}), "same, non-zero length");
    CHECK_VALUE_ERROR(combine_scheds({1.0}, {ScheduleFn{}}), "scheds[0] is empty");
    CHECK_VALUE_ERROR(sched_exp(0.0, 1.0), "start");
    CHECK_VALUE_ERROR(sched_exp(1.0, -1.0), "end");
    CHECK_VALUE_ERROR(sched_lin(std::nan(""), 1.0), "start");
    CHECK_VALUE_ERROR(sched_poly(0, 1, 0), "power");
    CHECK_VALUE_ERROR(ParamScheduler<float>(ScheduleFn{}), "at least one");
  }
}

// ---------------------------------------------------------------------------------------------
// ParamScheduler, OneCycle
// ---------------------------------------------------------------------------------------------

TEST_CASE("OneCycle in Model::fit: SGD momentum and learning rate by training progress", "[train][schedules]") {
  auto opt = std::make_shared<SGD<float>>(0.1, 0.9);
  Tiny t(opt);
  auto oc = std::make_shared<OneCycle<float>>(0.2);  // fastai defaults: div 25, div_final 1e5, pct_start 0.25
  History h = t.fit({oc});  // 4 epochs x 5 batches
  REQUIRE(oc->lrs.size() == 20);
  REQUIRE(oc->moms.size() == 20);
  CHECK(oc->wds.empty());
  for (size_t i = 0; i < 20; ++i) CHECK(oc->pcts[i] == Approx(i / 20.0));

  // at the start, at pct_start (batch 5 of 20), and the last batch (pct 19/20)
  CHECK(oc->lrs[0] == Approx(0.2 / 25));
  CHECK(oc->lrs[5] == Approx(0.2));
  const double f = (0.95 - 0.25) / 0.75;
  const double last_lr = 0.2 + (1 + std::cos(kPi * (1 - f))) * (0.2 / 1e5 - 0.2) / 2;
  CHECK(oc->lrs[19] == Approx(last_lr));
  CHECK(oc->lrs[19] < 0.2 / 50);  // near lr_max / div_final only at pct 1 (fastai's last batch is at 19/20)
  CHECK(oc->moms[0] == Approx(0.95));
  CHECK(oc->moms[5] == Approx(0.85));
  CHECK(oc->moms[19] == Approx(0.85 + (1 + std::cos(kPi * (1 - f))) * (0.95 - 0.85) / 2));
  // the formula at every batch
  for (size_t i = 0; i < 20; ++i) {
    const double p = i / 20.0;
    const double lr = p < 0.25 ? 0.008 + (1 + std::cos(kPi * (1 - p / 0.25))) * (0.2 - 0.008) / 2
                               : 0.2 + (1 + std::cos(kPi * (1 - (p - 0.25) / 0.75))) * (2e-6 - 0.2) / 2;
    CHECK(oc->lrs[i] == Approx(lr));
  }
  // monotone in each phase, momentum inversely
  CHECK(nondecreasing(oc->lrs, 0, 5));
  CHECK(nonincreasing(oc->lrs, 5, 19));
  CHECK(nonincreasing(oc->moms, 0, 5));
  CHECK(nondecreasing(oc->moms, 5, 19));
  // what is on the optimizer is the last batch's, and each epoch's logged lr its last batch's
  CHECK(opt->learning_rate() == oc->lrs.back());
  CHECK(opt->momentum() == oc->moms.back());
  REQUIRE(h["lr"].size() == 4);
  for (size_t e = 0; e < 4; ++e) CHECK(h["lr"][e] == oc->lrs[5 * e + 4]);
  // saving writes a float learning rate (no schedule class Keras cannot read)
  CHECK(opt->schedule() == nullptr);
  CHECK(opt->get_config()["learning_rate"].is_number());
  CHECK(std::isfinite(h["loss"].back()));

  SECTION("a second fit starts the cycle again") {
    t.fit({oc}, 2);
    REQUIRE(oc->lrs.size() == 10);
    CHECK(oc->lrs[0] == Approx(0.2 / 25));
  }
}

TEST_CASE("OneCycle with Adam cycles beta_1", "[train][schedules]") {
  auto opt = std::make_shared<Adam<float>>(0.001);
  Tiny t(opt);
  auto oc = std::make_shared<OneCycle<float>>(0.01, 10.0, 1e4, 0.4, std::vector<double>{0.9, 0.8, 0.9});
  t.fit({oc}, 5);  // 25 batches: the peak at batch 10
  REQUIRE(oc->lrs.size() == 25);
  REQUIRE(oc->moms.size() == 25);
  CHECK(oc->lrs[0] == Approx(0.001));
  CHECK(oc->lrs[10] == Approx(0.01));
  CHECK(oc->moms[0] == Approx(0.9));
  CHECK(oc->moms[10] == Approx(0.8));
  CHECK(nondecreasing(oc->lrs, 0, 10));
  CHECK(nonincreasing(oc->lrs, 10, 24));
  CHECK(nonincreasing(oc->moms, 0, 10));
  CHECK(nondecreasing(oc->moms, 10, 24));
  CHECK(opt->momentum() == oc->moms.back());  // beta_1
  CHECK(opt->get_config()["beta_1"] == oc->moms.back());
  CHECK(opt->learning_rate() == oc->lrs.back());
}

TEST_CASE("ParamScheduler: momentum skipped without one, weight decay scheduled", "[train][schedules]") {
  auto opt = std::make_shared<SGD<float>>(0.1);  // no momentum
  Tiny t(opt);
  auto oc = std::make_shared<OneCycle<float>>(0.1);
  t.fit({oc}, 2);
  CHECK(oc->lrs.size() == 10);
  CHECK(oc->moms.empty());

  auto ps = std::make_shared<ParamScheduler<float>>(ScheduleFn{}, ScheduleFn{}, sched_lin(0.0, 0.01));
  t.fit({ps}, 2);
  REQUIRE(ps->wds.size() == 10);
  CHECK(ps->lrs.empty());
  for (size_t i = 0; i < 10; ++i) CHECK(ps->wds[i] == Approx(0.01 * i / 10.0));
  CHECK(opt->weight_decay == ps->wds.back());

  auto bad = std::make_shared<ParamScheduler<float>>(sched_lin(0.1, -0.1));
  CHECK_VALUE_ERROR(t.fit({bad}, 2), "learning rate must be finite and >= 0");
  // outside Model::fit there is no training progress to read
  ParamScheduler<float> alone(sched_lin(0.1, 0.0));
  alone.set_model(t.model.get());
  CHECK_VALUE_ERROR(alone.on_train_begin({}), "FitOptions::callbacks");
}

TEST_CASE("OneCycle rejects bad arguments", "[train][schedules]") {
  CHECK_VALUE_ERROR(OneCycle<float>(0.1, 25, 1e5, 0.0), "pct_start must be in (0, 1)");
  CHECK_VALUE_ERROR(OneCycle<float>(0.1, 25, 1e5, 1.0), "pct_start");
  CHECK_VALUE_ERROR(OneCycle<float>(0.1, 25, 1e5, std::nan("")), "pct_start");
  CHECK_VALUE_ERROR(OneCycle<float>(0.1, 0.0), "div");
  CHECK_VALUE_ERROR(OneCycle<float>(0.1, -2.0), "div");
  CHECK_VALUE_ERROR(OneCycle<float>(0.1, 25, 0.0), "div_final");
  CHECK_VALUE_ERROR(OneCycle<float>(-0.1), "lr_max");
  CHECK_VALUE_ERROR(OneCycle<float>(std::nan("")), "lr_max");
  CHECK_VALUE_ERROR(OneCycle<float>(0.1, 25, 1e5, 0.3, {0.9, 0.8}), "moms must hold 3 values");
  CHECK_VALUE_ERROR(OneCycle<float>(0.1, 25, 1e5, 0.3, {0.9, 1.8, 0.9}), "moms must be in [0, 1]");
}

// ---------------------------------------------------------------------------------------------
// CyclicLR
// ---------------------------------------------------------------------------------------------

TEST_CASE("CyclicLR: keras-contrib's triangular, triangular2 and exp_range", "[train][schedules]") {
  // keras-contrib's docstring values: base 0.001, max 0.006, step_size 2000
  CyclicLR<float> tri(0.001, 0.006, 2000.);
  CHECK(tri.value_at(0) == Approx(0.001));
  CHECK(tri.value_at(1000) == Approx(0.0035));
  CHECK(tri.value_at(2000) == Approx(0.006));
  CHECK(tri.value_at(3000) == Approx(0.0035));
  CHECK(tri.value_at(4000) == Approx(0.001));
  CHECK(tri.value_at(6000) == Approx(0.006));
  CHECK(tri.scale_mode() == "cycle");

  CyclicLR<float> tri2(0.001, 0.006, 2000., "triangular2");
  CHECK(tri2.value_at(2000) == Approx(0.006));
  CHECK(tri2.value_at(6000) == Approx(0.001 + 0.005 / 2));
  CHECK(tri2.value_at(10000) == Approx(0.001 + 0.005 / 4));
  CHECK(tri2.value_at(5000) == Approx(0.001 + 0.005 * 0.5 / 2));

  CyclicLR<float> ex(0.001, 0.006, 2000., "exp_range", 0.99994);
  CHECK(ex.scale_mode() == "iterations");
  for (double it : {0., 500., 2000., 3100., 6000., 9999.}) {
    const double cycle = std::floor(1 + it / 4000), x = std::abs(it / 2000 - 2 * cycle + 1);
    CHECK(ex.value_at(it) == Approx(0.001 + 0.005 * std::max(0.0, 1 - x) * std::pow(0.99994, it)));
  }
  // an explicit scale_mode, and a custom scale function
  CyclicLR<float> exc(0.001, 0.006, 2000., "exp_range", 0.5, "cycle");
  CHECK(exc.value_at(6000) == Approx(0.001 + 0.005 * 0.25));
  CyclicLR<float> custom(0.0, 1.0, 10., "triangular", 1.0, "cycle", [](double c) { return 1.0 / c; });
  CHECK(custom.value_at(30) == Approx(0.5));

  SECTION("in Model::fit: one value per batch, carried on across fits") {
    auto opt = std::make_shared<SGD<float>>(0.5);
    Tiny t(opt);
    auto clr = std::make_shared<CyclicLR<float>>(0.01, 0.05, 3., "triangular2");
    t.fit({clr}, 4);
    REQUIRE(clr->lrs.size() == 20);
    for (size_t k = 0; k < 20; ++k) CHECK(clr->lrs[k] == Approx(clr->value_at(static_cast<double>(k))));
    CHECK(clr->lrs[0] == Approx(0.01));
    CHECK(clr->lrs[3] == Approx(0.05));
    CHECK(clr->lrs[6] == Approx(0.01));
    CHECK(clr->lrs[9] == Approx(0.03));
    CHECK(clr->iterations_history.back() == 20);
    CHECK(opt->learning_rate() == Approx(clr->value_at(20)));
    CHECK(opt->get_config()["learning_rate"].is_number());
    t.fit({clr}, 1);
    REQUIRE(clr->lrs.size() == 25);
    CHECK(clr->lrs[20] == Approx(clr->value_at(20)));
    clr->reset();
    CHECK(clr->clr_iterations() == 0);
  }
  SECTION("bad input") {
    CHECK_VALUE_ERROR(CyclicLR<float>(0.001, 0.006, 2000., "sine"), "triangular, triangular2, exp_range");
    CHECK_VALUE_ERROR(CyclicLR<float>(0.001, 0.006, 2000., "sine"), "mode");
    CHECK_VALUE_ERROR(CyclicLR<float>(0.001, 0.006, 2000., "triangular", 1.0, "epochs"), "cycle, iterations");
    CHECK_VALUE_ERROR(CyclicLR<float>(0.001, 0.006, 0.), "step_size");
    CHECK_VALUE_ERROR(CyclicLR<float>(-0.001, 0.006), "base_lr");
    CHECK_VALUE_ERROR(CyclicLR<float>(0.001, std::nan("")), "max_lr");
    CHECK_VALUE_ERROR(CyclicLR<float>(0.001, 0.006, 2000., "exp_range", -1.0), "gamma");
  }
}

// ---------------------------------------------------------------------------------------------
// LinearWarmup, KerasSchedule
// ---------------------------------------------------------------------------------------------

TEST_CASE("LinearWarmup ramps up to any schedule", "[train][schedules]") {
  SECTION("a constant learning rate") {
    auto opt = std::make_shared<SGD<float>>(0.1);
    Tiny t(opt);
    auto w = std::make_shared<LinearWarmup<float>>(4);
    t.fit({w}, 2);
    const std::vector<double> expect = {0.0, 0.025, 0.05, 0.075, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1};
    REQUIRE(w->lrs.size() == expect.size());
    for (size_t k = 0; k < expect.size(); ++k) CHECK(w->lrs[k] == Approx(expect[k]));
    CHECK(opt->learning_rate() == Approx(0.1));
  }
  SECTION("the optimizer's Keras schedule, which stays on the optimizer") {
    auto opt = std::make_shared<SGD<float>>(0.1);
    auto sched = std::make_shared<ExponentialDecay>(0.1, 5, 0.5);
    opt->set_schedule(sched);
    Tiny t(opt);
    auto w = std::make_shared<LinearWarmup<float>>(4, 0.01);
    t.fit({w}, 2);
    REQUIRE(w->lrs.size() == 10);
    for (size_t k = 0; k < 10; ++k) {
      const double target = (*sched)(static_cast<std::int64_t>(k));
      CHECK(w->lrs[k] == Approx(k < 4 ? 0.01 + (target - 0.01) * k / 4.0 : target));
    }
    CHECK(opt->schedule() == sched);
    CHECK(opt->get_config()["learning_rate"]["class_name"] == "ExponentialDecay");
  }
  SECTION("a callback: CyclicLR, then OneCycle") {
    auto opt = std::make_shared<SGD<float>>(0.1, 0.9);
    Tiny t(opt);
    auto clr = std::make_shared<CyclicLR<float>>(0.02, 0.1, 5.);
    auto w = std::make_shared<LinearWarmup<float>>(3, 0.0, clr);
    t.fit({w}, 3);
    REQUIRE(w->lrs.size() == 15);
    REQUIRE(clr->lrs.size() == 15);
    for (size_t k = 0; k < 15; ++k) {
      CHECK(clr->lrs[k] == Approx(clr->value_at(static_cast<double>(k))));  // the cycle runs on underneath
      CHECK(w->lrs[k] == Approx(k < 3 ? clr->lrs[k] * k / 3.0 : clr->lrs[k]));
    }
    auto oc = std::make_shared<OneCycle<float>>(0.1);
    auto w2 = std::make_shared<LinearWarmup<float>>(2, 0.0, oc);
    t.fit({w2}, 2);
    REQUIRE(oc->lrs.size() == 10);  // the inner ParamScheduler got the loop's progress
    CHECK(oc->moms.size() == 10);
    CHECK(w2->lrs[0] == 0.0);
    CHECK(w2->lrs[1] == Approx(oc->lrs[1] / 2));
    CHECK(w2->lrs[5] == oc->lrs[5]);
  }
  CHECK_VALUE_ERROR(LinearWarmup<float>(0), "warmup_steps");
  CHECK_VALUE_ERROR(LinearWarmup<float>(3, -1.0), "start_lr");
}

// ---------------------------------------------------------------------------------------------
// --lr-schedule specs
// ---------------------------------------------------------------------------------------------

TEST_CASE("make_lr_schedule_callback reads --lr-schedule specs", "[train][schedules]") {
  SECTION("one-cycle") {
    auto cb = make_lr_schedule_callback<float>("one-cycle", 0.05);
    auto* oc = dynamic_cast<OneCycle<float>*>(cb.get());
    REQUIRE(oc);
    CHECK(oc->lr_max() == 0.05);
    CHECK(oc->div() == 25);
    CHECK(oc->div_final() == 1e5);
    CHECK(oc->pct_start() == 0.25);
    CHECK(oc->moms_setting() == std::vector<double>{0.95, 0.85, 0.95});
    cb = make_lr_schedule_callback<float>("one-cycle: max_lr=0.3, div=10,div_final=1e4,pct_start=0.3,moms=0.9/0.8/0.9", 0.05);
    oc = dynamic_cast<OneCycle<float>*>(cb.get());
    REQUIRE(oc);
    CHECK(oc->lr_max() == 0.3);
    CHECK(oc->div() == 10);
    CHECK(oc->div_final() == 1e4);
    CHECK(oc->pct_start() == 0.3);
    CHECK(oc->moms_setting() == std::vector<double>{0.9, 0.8, 0.9});
    oc = dynamic_cast<OneCycle<float>*>(make_lr_schedule_callback<float>("one-cycle:moms=none", 0.05).get());
    REQUIRE(oc);
    CHECK(oc->moms_setting().empty());
  }
  SECTION("cosine-restarts: a Keras schedule put on the optimizer") {
    auto cb = make_lr_schedule_callback<float>("cosine-restarts:first_decay_steps=10,t_mul=1.5,m_mul=0.7,alpha=0.1", 0.5);
    auto* ks = dynamic_cast<KerasSchedule<float>*>(cb.get());
    REQUIRE(ks);
    check_against(*ks->schedule(), kKerasRestarts);

    auto opt = std::make_shared<SGD<float>>(0.5);
    Tiny t(opt);
    t.fit({make_lr_schedule_callback<float>("cosine-restarts:first_decay_steps=4", 0.5)}, 2);
    REQUIRE(opt->schedule());
    CHECK(opt->get_config()["learning_rate"]["class_name"] == "CosineDecayRestarts");
    CHECK(opt->learning_rate() == Approx(CosineDecayRestarts(0.5, 4)(10)));
  }
  SECTION("cosine: Keras' CosineDecay, with its own warmup") {
    auto* ks = dynamic_cast<KerasSchedule<float>*>(make_lr_schedule_callback<float>("cosine:decay_steps=20,alpha=0.1", 0.4).get());
    REQUIRE(ks);
    CHECK((*ks->schedule())(10) == Approx(0.4 * (0.9 * 0.5 + 0.1)));
    auto w = make_lr_schedule_callback<float>("cosine:decay_steps=20,alpha=0.1,warmup_steps=5", 0.4);
    ks = dynamic_cast<KerasSchedule<float>*>(w.get());
    REQUIRE(ks);
    check_against(*ks->schedule(), kKerasCosineWarmup);
  }
  SECTION("cyclic") {
    auto cb = make_lr_schedule_callback<float>("cyclic:max_lr=0.01,step_size=4,mode=exp_range,gamma=0.9", 0.001);
    auto* c = dynamic_cast<CyclicLR<float>*>(cb.get());
    REQUIRE(c);
    CHECK(c->mode() == "exp_range");
    CHECK(c->value_at(0) == Approx(0.001));
    CHECK(c->value_at(4) == Approx(0.001 + 0.009 * std::pow(0.9, 4)));
    c = dynamic_cast<CyclicLR<float>*>(make_lr_schedule_callback<float>("cyclic:base_lr=0.002,max_lr=0.01", 0.001).get());
    REQUIRE(c);
    CHECK(c->value_at(0) == Approx(0.002));
    CHECK(c->value_at(2000) == Approx(0.01));
    CHECK(c->mode() == "triangular");
  }
  SECTION("exponential") {
    auto* ks = dynamic_cast<KerasSchedule<float>*>(
        make_lr_schedule_callback<float>("exponential:decay_steps=10,decay_rate=0.5,staircase=true", 0.1).get());
    REQUIRE(ks);
    CHECK((*ks->schedule())(15) == Approx(0.05));
    CHECK(ks->schedule()->to_json()["config"]["staircase"] == true);
  }
  SECTION("warmup_steps wraps any of them in a LinearWarmup") {
    auto cb = make_lr_schedule_callback<float>("cyclic:max_lr=0.01,warmup_steps=5,warmup_start=0.0001", 0.001);
    auto* w = dynamic_cast<LinearWarmup<float>*>(cb.get());
    REQUIRE(w);
    CHECK(w->warmup_steps() == 5);
    CHECK(dynamic_cast<CyclicLR<float>*>(w->inner().get()) != nullptr);
    auto opt = std::make_shared<SGD<float>>(0.5);
    Tiny t(opt);
    t.fit({make_lr_schedule_callback<float>("exponential:decay_steps=5,decay_rate=0.5,warmup_steps=3", 0.1)}, 1);
    CHECK(opt->get_config()["learning_rate"]["class_name"] == "ExponentialDecay");
  }
  SECTION("errors name the culprit and list the valid choices") {
    auto mk = [](const std::string& s) { return make_lr_schedule_callback<float>(s, 0.01); };
    CHECK_VALUE_ERROR(mk("nope"), "unknown schedule 'nope' (valid: one-cycle, cosine, cosine-restarts, cyclic, exponential)");
    CHECK_VALUE_ERROR(mk("cyclic:max_lr=0.1,foo=1"), "unknown key 'foo' (valid: base_lr, max_lr, step_size, mode, gamma");
    CHECK_VALUE_ERROR(mk("one-cycle:t_mul=2"), "unknown key 't_mul'");
    CHECK_VALUE_ERROR(mk("cyclic"), "max_lr is required");
    CHECK_VALUE_ERROR(mk("cosine-restarts"), "first_decay_steps is required");
    CHECK_VALUE_ERROR(mk("exponential:decay_steps=10"), "decay_rate is required");
    CHECK_VALUE_ERROR(mk("cyclic:max_lr=abc"), "max_lr must be a number, got 'abc'");
    CHECK_VALUE_ERROR(mk("cyclic:max_lr=0.1,mode=sine"), "triangular, triangular2, exp_range");
    CHECK_VALUE_ERROR(mk("cyclic:max_lr=-1"), "max_lr");
    CHECK_VALUE_ERROR(mk("one-cycle:max_lr=nan"), "max_lr must be finite");
    CHECK_VALUE_ERROR(mk("one-cycle:pct_start=1.2"), "pct_start must be in (0, 1)");
    CHECK_VALUE_ERROR(mk("one-cycle:div=0"), "div");
    CHECK_VALUE_ERROR(mk("one-cycle:moms=0.9/x/0.9"), "moms must be a number");
    CHECK_VALUE_ERROR(mk("one-cycle:max_lr"), "is not key=value");
    CHECK_VALUE_ERROR(mk("one-cycle:max_lr=0.1,,div=3"), "empty item");
    CHECK_VALUE_ERROR(mk("one-cycle:div=3,div=4"), "div is given twice");
    CHECK_VALUE_ERROR(mk("one-cycle:div="), "div has no value");
    CHECK_VALUE_ERROR(mk("exponential:decay_steps=2.5,decay_rate=0.5"), "decay_steps must be a whole number > 0");
    CHECK_VALUE_ERROR(mk("exponential:decay_steps=10,decay_rate=-0.5"), "decay_rate");
    CHECK_VALUE_ERROR(mk("exponential:decay_steps=10,decay_rate=0.5,staircase=maybe"), "staircase must be true or false");
    CHECK_VALUE_ERROR(mk("cosine-restarts:first_decay_steps=10,t_mul=0"), "t_mul");
    CHECK_VALUE_ERROR(mk("cyclic:max_lr=0.1,warmup_start=0.01"), "warmup_start needs warmup_steps");
    CHECK_VALUE_ERROR(mk("cyclic:max_lr=0.1,warmup_steps=-2"), "warmup_steps must be a whole number > 0");
    CHECK_VALUE_ERROR(make_lr_schedule_callback<float>("one-cycle", 0.0), "base learning rate");
    CHECK(mk("one-cycle:") != nullptr);
  }
}
