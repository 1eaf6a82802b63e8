// Optimizer updates against hand-computed Keras 3 formulas (keras/src/optimizers/*.py), defaults,
// clipping, weight decay, schedules, Keras 1/2/3 configs and the order of slot variables.
#include <graft/graft.hpp>
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

using namespace graft;

namespace {

using Vec = std::vector<double>;
using Vars = std::vector<Vec>;

/// Two variables (a 2x2 kernel and a bias of 3) with given gradients at each step.
struct Problem {
  Param<double> kernel, bias;
  Problem() {
    kernel.name = "kernel";
    kernel.value = Tensor<double>({2, 2}, {0.5, -1.0, 2.0, 0.1});
    bias.name = "bias";
    bias.value = Tensor<double>({3}, {0.3, -0.2, 0.0});
  }
  std::vector<Param<double>*> params() { return {&kernel, &bias}; }
  static Vars grads(int step) {
    Vars g{Vec(4), Vec(3)};
    for (size_t v = 0; v < 2; ++v)
      for (size_t i = 0; i < g[v].size(); ++i)
        g[v][i] = std::sin(1.0 + 1.3 * step + 0.7 * static_cast<double>(i) + 2.1 * static_cast<double>(v)) *
                  (1.0 + static_cast<double>(i % 3));
    return g;
  }
  void set_grads(int step) {
    Vars g = grads(step);
    kernel.grad = Tensor<double>({2, 2});
    bias.grad = Tensor<double>({3});
    std::copy(g[0].begin(), g[0].end(), kernel.grad.begin());
    std::copy(g[1].begin(), g[1].end(), bias.grad.begin());
    kernel.grad_fresh = bias.grad_fresh = false;
  }
  Vars values() const {
    return {Vec(kernel.value.begin(), kernel.value.end()), Vec(bias.value.begin(), bias.value.end())};
  }
};

/// One reference step: updates w (per variable) from the gradients g at iteration `it`.
using RefStep = std::function<void(Vars& w, Vars g, int it)>;

/// Run `steps` optimizer steps and the reference side by side; every value must agree.
void compare(Optimizer<double>& opt, const RefStep& ref, int steps = 4) {
  Problem p;
  Vars w = p.values();
  for (int s = 0; s < steps; ++s) {
    p.set_grads(s);
    opt.apply(p.params());
    ref(w, Problem::grads(s), s);
    Vars got = p.values();
    for (size_t v = 0; v < w.size(); ++v)
      for (size_t i = 0; i < w[v].size(); ++i) {
        INFO(opt.class_name() << " step " << s << " variable " << v << " element " << i);
        CHECK(got[v][i] == Approx(w[v][i]).epsilon(1e-12).margin(1e-15));
      }
  }
  CHECK(opt.iterations() == steps);
}

// Keras 3 gradient processing (base_optimizer._clip_gradients).
void clip_by_norm(Vec& g, double c) {
  double n2 = 0;
  for (double x : g) n2 += x * x;
  if (n2 <= 0) return;
  double n = std::sqrt(n2);
  for (double& x : g) x = x * c / std::max(n, c);
}
void clip_by_global_norm(Vars& gs, double c) {
  double n2 = 0;
  for (auto& g : gs)
    for (double x : g) n2 += x * x;
  double n = std::sqrt(n2);
  double scale = c * std::min(1.0 / n, 1.0 / c);
  for (auto& g : gs)
    for (double& x : g) x *= scale;
}
void clip_by_value(Vars& gs, double c) {
  for (auto& g : gs)
    for (double& x : g) x = std::min(std::max(x, -c), c);
}
void weight_decay(Vars& w, double wd, double lr) {
  for (auto& v : w)
    for (double& x : v) x = x - x * wd * lr;
}

RefStep sgd_ref(double lr, double momentum = 0, bool nesterov = false) {
  auto m = std::make_shared<Vars>(Vars{Vec(4, 0.0), Vec(3, 0.0)});
  return [=](Vars& w, Vars g, int) {
    for (size_t v = 0; v < w.size(); ++v)
      for (size_t i = 0; i < w[v].size(); ++i) {
        if (momentum == 0) {
          w[v][i] -= g[v][i] * lr;
          continue;
        }
        double& mv = (*m)[v][i];
        mv = mv * momentum - g[v][i] * lr;
        if (nesterov) w[v][i] += mv * momentum - g[v][i] * lr;
        else w[v][i] += mv;
      }
  };
}

RefStep rmsprop_ref(double lr, double rho, double momentum, double eps, bool centered) {
  auto vel = std::make_shared<Vars>(Vars{Vec(4, 0.0), Vec(3, 0.0)});
  auto mom = std::make_shared<Vars>(*vel);
  auto avg = std::make_shared<Vars>(*vel);
  return [=](Vars& w, Vars g, int) {
    for (size_t v = 0; v < w.size(); ++v)
      for (size_t i = 0; i < w[v].size(); ++i) {
        double gi = g[v][i];
        double& ve = (*vel)[v][i];
        ve = rho * ve + (1 - rho) * gi * gi;
        double denom;
        if (centered) {
          double& a = (*avg)[v][i];
          a = rho * a + (1 - rho) * gi;
          denom = ve - a * a + eps;
        } else {
          denom = ve + eps;  // epsilon inside the square root (Keras 3)
        }
        double inc = lr * gi / std::sqrt(denom);
        if (momentum > 0) {
          double& mo = (*mom)[v][i];
          mo = momentum * mo + inc;
          w[v][i] -= mo;
        } else {
          w[v][i] -= inc;
        }
      }
  };
}

RefStep adam_ref(double lr, double b1, double b2, double eps, bool amsgrad) {
  auto m = std::make_shared<Vars>(Vars{Vec(4, 0.0), Vec(3, 0.0)});
  auto vv = std::make_shared<Vars>(*m);
  auto vh = std::make_shared<Vars>(*m);
  return [=](Vars& w, Vars g, int it) {
    double t = it + 1;
    double alpha = lr * std::sqrt(1 - std::pow(b2, t)) / (1 - std::pow(b1, t));
    for (size_t v = 0; v < w.size(); ++v)
      for (size_t i = 0; i < w[v].size(); ++i) {
        double gi = g[v][i];
        double& mi = (*m)[v][i];
        double& vi = (*vv)[v][i];
        mi += (gi - mi) * (1 - b1);
        vi += (gi * gi - vi) * (1 - b2);
        double denom_v = vi;
        if (amsgrad) {
          double& h = (*vh)[v][i];
          h = std::max(h, vi);
          denom_v = h;
        }
        w[v][i] -= (mi * alpha) / (std::sqrt(denom_v) + eps);
      }
  };
}

RefStep adagrad_ref(double lr, double init, double eps) {
  auto acc = std::make_shared<Vars>(Vars{Vec(4, init), Vec(3, init)});
  return [=](Vars& w, Vars g, int) {
    for (size_t v = 0; v < w.size(); ++v)
      for (size_t i = 0; i < w[v].size(); ++i) {
        double& a = (*acc)[v][i];
        a += g[v][i] * g[v][i];
        w[v][i] -= lr * g[v][i] / std::sqrt(a + eps);
      }
  };
}

}  // namespace

// ---------------------------------------------------------------------------------------------

TEST_CASE("SGD: defaults, plain, momentum and nesterov updates", "[core][optimizers]") {
  SECTION("defaults: learning rate 0.01, no momentum, no slots") {
    SGD<double> opt;
    CHECK(opt.base_learning_rate() == 0.01);
    CHECK(opt.momentum() == 0.0);
    CHECK_FALSE(opt.nesterov());
    json c = opt.get_config();
    CHECK(c["learning_rate"].get<double>() == Approx(0.01));
    CHECK(c["momentum"].get<double>() == 0.0);
    CHECK(c["nesterov"].get<bool>() == false);
    CHECK(c["name"] == "SGD");
    compare(opt, sgd_ref(0.01));
    CHECK(opt.slot_variables().empty());
  }
  SECTION("plain, lr 0.1") {
    SGD<double> opt(0.1);
    compare(opt, sgd_ref(0.1));
  }
  SECTION("momentum 0.9") {
    SGD<double> opt(0.05, 0.9);
    compare(opt, sgd_ref(0.05, 0.9));
  }
  SECTION("nesterov") {
    SGD<double> opt(0.05, 0.8, true);
    compare(opt, sgd_ref(0.05, 0.8, true));
  }
}

TEST_CASE("RMSprop: epsilon inside the square root, momentum, centered", "[core][optimizers]") {
  SECTION("defaults: 0.001, rho 0.9, momentum 0, epsilon 1e-7") {
    RMSprop<double> opt;
    json c = opt.get_config();
    CHECK(c["learning_rate"].get<double>() == Approx(0.001));
    CHECK(c["rho"].get<double>() == 0.9);
    CHECK(c["momentum"].get<double>() == 0.0);
    CHECK(c["epsilon"].get<double>() == 1e-7);
    CHECK(c["centered"].get<bool>() == false);
    compare(opt, rmsprop_ref(0.001, 0.9, 0.0, 1e-7, false));
  }
  SECTION("a large epsilon tells sqrt(v + eps) from sqrt(v) + eps") {
    RMSprop<double> opt(0.01, 0.8, 0.0, 0.5);
    compare(opt, rmsprop_ref(0.01, 0.8, 0.0, 0.5, false));
    // one step by hand on the first kernel element: v = 0.2 g^2, p -= lr g / sqrt(v + 0.5)
    Problem p;
    RMSprop<double> one(0.01, 0.8, 0.0, 0.5);
    p.set_grads(0);
    double g = Problem::grads(0)[0][0];
    one.apply(p.params());
    CHECK(p.kernel.value[0] == Approx(0.5 - 0.01 * g / std::sqrt(0.2 * g * g + 0.5)).epsilon(1e-14));
    CHECK(p.kernel.value[0] != Approx(0.5 - 0.01 * g / (std::sqrt(0.2 * g * g) + 0.5)).epsilon(1e-6));
  }
  SECTION("momentum") {
    RMSprop<double> opt(0.01, 0.9, 0.7);
    compare(opt, rmsprop_ref(0.01, 0.9, 0.7, 1e-7, false));
  }
  SECTION("centered") {
    RMSprop<double> opt(0.01, 0.85, 0.0, 1e-3, true);
    compare(opt, rmsprop_ref(0.01, 0.85, 0.0, 1e-3, true));
  }
  SECTION("centered with momentum") {
    RMSprop<double> opt(0.02, 0.9, 0.5, 1e-7, true);
    compare(opt, rmsprop_ref(0.02, 0.9, 0.5, 1e-7, true));
  }
}

TEST_CASE("the optimizers' square root is correctly rounded on every processor", "[core][optimizers]") {
  // Eigen's default float sqrt on AVX/AVX-512 packets is an rsqrt approximation whose error
  // differs between Intel and AMD; RMSprop, Adam, Adagrad and squareplus use sqrt_exact.
  auto check = [](auto zero) {
    using T = decltype(zero);
    Eigen::Array<T, Eigen::Dynamic, 1> x(1000), y;
    for (Eigen::Index i = 0; i < x.size(); ++i)
      x[i] = static_cast<T>(std::pow(1.0371, static_cast<double>(i % 500) - 250.0) * (1.0 + 0.001 * static_cast<double>(i)));
    x[0] = T(0);
    x[1] = T(629);
    x[2] = std::numeric_limits<T>::infinity();
    x[3] = std::numeric_limits<T>::denorm_min();
    x[4] = std::numeric_limits<T>::min();
    y = detail::sqrt_exact(x);
    for (Eigen::Index i = 0; i < x.size(); ++i) {
      INFO("sqrt(" << x[i] << ")");
      CHECK(y[i] == std::sqrt(x[i]));
    }
    CHECK(std::isnan(detail::sqrt_exact(Eigen::Array<T, 16, 1>::Constant(T(-1)))[7]));
  };
  check(0.0f);
  check(0.0);
}

TEST_CASE("Adam, AMSGrad, AdamW and Adagrad", "[core][optimizers]") {
  SECTION("Adam defaults: 0.001, 0.9, 0.999, 1e-7") {
    Adam<double> opt;
    json c = opt.get_config();
    CHECK(c["learning_rate"].get<double>() == Approx(0.001));
    CHECK(c["beta_1"].get<double>() == 0.9);
    CHECK(c["beta_2"].get<double>() == 0.999);
    CHECK(c["epsilon"].get<double>() == 1e-7);
    CHECK(c["amsgrad"].get<bool>() == false);
    CHECK(opt.class_name() == "Adam");
    compare(opt, adam_ref(0.001, 0.9, 0.999, 1e-7, false), 6);
  }
  SECTION("Adam with other betas") {
    Adam<double> opt(0.05, 0.8, 0.95, 1e-3);
    compare(opt, adam_ref(0.05, 0.8, 0.95, 1e-3, false), 6);
  }
  SECTION("AMSGrad keeps the running maximum of v") {
    Adam<double> opt(0.05, 0.9, 0.9, 1e-7, true);
    compare(opt, adam_ref(0.05, 0.9, 0.9, 1e-7, true), 6);
  }
  SECTION("AdamW: decoupled weight decay before the Adam step") {
    auto opt = Adam<double>::adamw(0.01, 0.1);
    CHECK(opt->class_name() == "AdamW");
    CHECK(opt->get_config()["weight_decay"].get<double>() == Approx(0.1));
    auto adam = adam_ref(0.01, 0.9, 0.999, 1e-7, false);
    compare(*opt, [adam](Vars& w, Vars g, int it) {
      weight_decay(w, 0.1, 0.01);
      adam(w, g, it);
    }, 5);
    CHECK(Adam<double>::adamw()->weight_decay == 0.004);
  }
  SECTION("Adagrad: accumulator starts at 0.1") {
    Adagrad<double> opt(0.1);
    compare(opt, adagrad_ref(0.1, 0.1, 1e-7));
    json c = opt.get_config();
    CHECK(c["initial_accumulator_value"].get<double>() == 0.1);
    Adagrad<double> dflt;
    CHECK(dflt.base_learning_rate() == 0.001);
  }
}

TEST_CASE("clipnorm, clipvalue, global_clipnorm and weight_decay process gradients as Keras does", "[core][optimizers]") {
  SECTION("clipnorm rescales each gradient to norm <= clipnorm") {
    SGD<double> opt(0.1);
    opt.clipnorm = 0.5;
    auto sgd = sgd_ref(0.1);
    compare(opt, [sgd](Vars& w, Vars g, int it) {
      for (auto& v : g) clip_by_norm(v, 0.5);
      sgd(w, g, it);
    });
  }
  SECTION("clipnorm larger than the norm changes nothing") {
    SGD<double> opt(0.1, 0.9);
    opt.clipnorm = 100;
    compare(opt, sgd_ref(0.1, 0.9));
  }
  SECTION("clipvalue clips element-wise") {
    RMSprop<double> opt(0.01);
    opt.clipvalue = 0.3;
    auto r = rmsprop_ref(0.01, 0.9, 0, 1e-7, false);
    compare(opt, [r](Vars& w, Vars g, int it) {
      clip_by_value(g, 0.3);
      r(w, g, it);
    });
  }
  SECTION("global_clipnorm scales all gradients by one factor") {
    Adam<double> opt(0.01);
    opt.global_clipnorm = 0.7;
    auto a = adam_ref(0.01, 0.9, 0.999, 1e-7, false);
    compare(opt, [a](Vars& w, Vars g, int it) {
      clip_by_global_norm(g, 0.7);
      a(w, g, it);
    });
  }
  SECTION("weight_decay on SGD: w -= w * wd * lr before the step") {
    SGD<double> opt(0.1, 0.5);
    opt.weight_decay = 0.05;
    auto s = sgd_ref(0.1, 0.5);
    compare(opt, [s](Vars& w, Vars g, int it) {
      weight_decay(w, 0.05, 0.1);
      s(w, g, it);
    });
  }
  SECTION("clipping happens before weight decay and the update, with a schedule") {
    SGD<double> opt(0.0);
    opt.set_schedule(std::make_shared<ExponentialDecay>(0.2, 2, 0.5));
    opt.clipnorm = 0.4;
    opt.weight_decay = 0.1;
    compare(opt, [](Vars& w, Vars g, int it) {
      double lr = 0.2 * std::pow(0.5, it / 2.0);
      for (auto& v : g) clip_by_norm(v, 0.4);
      weight_decay(w, 0.1, lr);
      for (size_t v = 0; v < w.size(); ++v)
        for (size_t i = 0; i < w[v].size(); ++i) w[v][i] -= lr * g[v][i];
    });
  }
  SECTION("variables without a gradient this step are left alone") {
    Problem p;
    Adam<double> opt(0.1);
    p.set_grads(0);
    p.bias.grad_fresh = true;  // no gradient reached the bias
    opt.apply(p.params());
    CHECK(p.bias.value == Tensor<double>({3}, {0.3, -0.2, 0.0}));
    CHECK(p.kernel.value != Tensor<double>({2, 2}, {0.5, -1.0, 2.0, 0.1}));
  }
}

TEST_CASE("learning-rate schedules and Keras 2 decay", "[core][optimizers]") {
  SECTION("schedule values follow the Keras formulas") {
    ExponentialDecay e(0.1, 10, 0.5), es(0.1, 10, 0.5, true);
    InverseTimeDecay inv(0.1, 5, 2.0), invs(0.1, 5, 2.0, true);
    PiecewiseConstantDecay pw({2, 5}, {1.0, 0.5, 0.1});
    PolynomialDecay poly(1.0, 10, 0.1, 2.0), polyc(1.0, 10, 0.1, 1.0, true);
    CosineDecay cos(1.0, 10, 0.2), warm(0.0, 10, 0.0, 1.0, 4);
    const double pi = 3.14159265358979323846;
    for (int s : {0, 1, 4, 5, 7, 10, 13, 25}) {
      CAPTURE(s);
      CHECK(e(s) == Approx(0.1 * std::pow(0.5, s / 10.0)));
      CHECK(es(s) == Approx(0.1 * std::pow(0.5, std::floor(s / 10.0))));
      CHECK(inv(s) == Approx(0.1 / (1 + 2.0 * s / 5.0)));
      CHECK(invs(s) == Approx(0.1 / (1 + 2.0 * std::floor(s / 5.0))));
      CHECK(pw(s) == (s <= 2 ? 1.0 : (s <= 5 ? 0.5 : 0.1)));
      double ps = std::min<double>(s, 10);
      CHECK(poly(s) == Approx((1.0 - 0.1) * std::pow(1 - ps / 10, 2.0) + 0.1));
      double mult = s == 0 ? 1.0 : std::ceil(s / 10.0);
      CHECK(polyc(s) == Approx((1.0 - 0.1) * (1 - s / (10 * mult)) + 0.1));
      double cd = 0.5 * (1 + std::cos(pi * std::min<double>(s, 10) / 10));
      CHECK(cos(s) == Approx(1.0 * ((1 - 0.2) * cd + 0.2)));
      double wv = s < 4 ? 0.0 + (1.0 - 0.0) * s / 4.0
                        : 1.0 * (0.5 * (1 + std::cos(pi * std::min<double>(s - 4, 10) / 10)));
      CHECK(warm(s) == Approx(wv).margin(1e-12));
    }
  }
  SECTION("an optimizer with a schedule uses lr(iterations) at each step") {
    SGD<double> opt(1.0);
    opt.set_schedule(std::make_shared<InverseTimeDecay>(0.3, 1, 0.5));
    compare(opt, [](Vars& w, Vars g, int it) {
      double lr = 0.3 / (1 + 0.5 * it);
      for (size_t v = 0; v < w.size(); ++v)
        for (size_t i = 0; i < w[v].size(); ++i) w[v][i] -= lr * g[v][i];
    });
    CHECK(opt.learning_rate() == Approx(0.3 / (1 + 0.5 * 4)));
  }
  SECTION("Keras 2 decay: lr / (1 + decay * iterations)") {
    auto opt = make_optimizer<double>(json{{"class_name", "SGD"}, {"config", {{"lr", 0.1}, {"decay", 0.5}, {"momentum", 0.0}}}});
    CHECK(opt->learning_rate() == Approx(0.1));
    compare(*opt, [](Vars& w, Vars g, int it) {
      double lr = 0.1 / (1 + 0.5 * it);
      for (size_t v = 0; v < w.size(); ++v)
        for (size_t i = 0; i < w[v].size(); ++i) w[v][i] -= lr * g[v][i];
    });
    CHECK(opt->learning_rate() == Approx(0.1 / 3.0));
    // Keras 3 has no `decay`: it is saved as the equivalent InverseTimeDecay schedule
    json c = opt->get_config();
    CHECK(c["learning_rate"]["class_name"] == "InverseTimeDecay");
    auto again = make_optimizer<double>(json{{"class_name", "SGD"}, {"config", c}});
    again->set_iterations(4);
    CHECK(again->learning_rate() == Approx(opt->learning_rate()));
  }
  SECTION("Keras 2 decay on Adam uses the decayed rate inside alpha") {
    auto opt = make_optimizer<double>(json{{"class_name", "Adam"}, {"config", {{"lr", 0.01}, {"decay", 0.1}}}});
    auto m = std::make_shared<Vars>(Vars{Vec(4, 0.0), Vec(3, 0.0)});
    auto vv = std::make_shared<Vars>(*m);
    compare(*opt, [m, vv](Vars& w, Vars g, int it) {
      double lr = 0.01 / (1 + 0.1 * it), t = it + 1;
      double alpha = lr * std::sqrt(1 - std::pow(0.999, t)) / (1 - std::pow(0.9, t));
      for (size_t v = 0; v < w.size(); ++v)
        for (size_t i = 0; i < w[v].size(); ++i) {
          double& mi = (*m)[v][i];
          double& vi = (*vv)[v][i];
          mi += (g[v][i] - mi) * 0.1;
          vi += (g[v][i] * g[v][i] - vi) * 0.001;
          w[v][i] -= mi * alpha / (std::sqrt(vi) + 1e-7);
        }
    });
  }
}

TEST_CASE("make_optimizer reads Keras 1, Keras 2, TF-Keras and Keras 3 configs", "[core][optimizers]") {
  SECTION("names give Keras defaults") {
    CHECK(make_optimizer<double>("sgd")->base_learning_rate() == 0.01);
    CHECK(make_optimizer<double>("SGD")->class_name() == "SGD");
    CHECK(make_optimizer<double>("adam")->base_learning_rate() == 0.001);
    CHECK(make_optimizer<double>("rmsprop")->class_name() == "RMSprop");
    CHECK(make_optimizer<double>("adagrad")->class_name() == "Adagrad");
    auto w = make_optimizer<double>("adamw");
    CHECK(w->class_name() == "AdamW");
    CHECK(w->weight_decay == 0.004);
    auto r = make_optimizer<double>("rmsprop");
    compare(*r, rmsprop_ref(0.001, 0.9, 0, 1e-7, false));
  }
  SECTION("Keras 1: lr, momentum, nesterov, decay 0") {
    auto opt = make_optimizer<double>(
        json::parse(R"({"class_name": "SGD", "config": {"lr": 0.05, "momentum": 0.9, "decay": 0.0, "nesterov": true}})"));
    CHECK(opt->class_name() == "SGD");
    CHECK(opt->legacy_decay() == 0.0);
    compare(*opt, sgd_ref(0.05, 0.9, true));
  }
  SECTION("Keras 1 RMSprop with rho and epsilon") {
    auto opt = make_optimizer<double>(
        json::parse(R"({"class_name": "RMSprop", "config": {"lr": 0.002, "rho": 0.8, "epsilon": 1e-08, "decay": 0.0}})"));
    compare(*opt, rmsprop_ref(0.002, 0.8, 0, 1e-8, false));
  }
  SECTION("Keras 2 (TF 2.x optimizer_v2): learning_rate and betas") {
    auto opt = make_optimizer<double>(json::parse(
        R"({"class_name": "Adam", "config": {"name": "Adam", "learning_rate": 0.002, "decay": 0.0, "beta_1": 0.8,
            "beta_2": 0.99, "epsilon": 1e-08, "amsgrad": false}})"));
    CHECK(opt->name() == "Adam");
    compare(*opt, adam_ref(0.002, 0.8, 0.99, 1e-8, false));
  }
  SECTION("TF-Keras 2.11+: Custom>Adam with the new-optimizer keys") {
    auto opt = make_optimizer<double>(json::parse(
        R"({"class_name": "Custom>Adam", "config": {"name": "Adam", "weight_decay": null, "clipnorm": null,
            "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99,
            "ema_overwrite_frequency": null, "jit_compile": true, "is_legacy_optimizer": false,
            "learning_rate": 0.003, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": true}})"));
    CHECK(opt->class_name() == "Adam");
    compare(*opt, adam_ref(0.003, 0.9, 0.999, 1e-7, true));
  }
  SECTION("Keras 3: module / registered_name, clipnorm, centered RMSprop") {
    auto opt = make_optimizer<double>(json::parse(
        R"({"module": "keras.optimizers", "class_name": "RMSprop", "config": {"name": "rmsprop", "learning_rate": 0.0005,
            "weight_decay": null, "clipnorm": 1.0, "global_clipnorm": null, "clipvalue": null, "use_ema": false,
            "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null,
            "gradient_accumulation_steps": null, "rho": 0.8, "momentum": 0.5, "epsilon": 1e-07, "centered": true},
            "registered_name": null})"));
    CHECK(opt->clipnorm == 1.0);
    auto r = rmsprop_ref(0.0005, 0.8, 0.5, 1e-7, true);
    compare(*opt, [r](Vars& w, Vars g, int it) {
      for (auto& v : g) clip_by_norm(v, 1.0);
      r(w, g, it);
    });
  }
  SECTION("Keras 3: a serialized learning-rate schedule") {
    auto opt = make_optimizer<double>(json::parse(
        R"({"module": "keras.optimizers", "class_name": "SGD", "config": {"name": "SGD", "learning_rate":
            {"module": "keras.optimizers.schedules", "class_name": "ExponentialDecay", "config":
            {"initial_learning_rate": 0.1, "decay_steps": 2, "decay_rate": 0.5, "staircase": false,
             "name": "ExponentialDecay"}, "registered_name": null}, "momentum": 0.0, "nesterov": false},
            "registered_name": null})"));
    REQUIRE(opt->schedule() != nullptr);
    CHECK(opt->learning_rate() == Approx(0.1));
    compare(*opt, [](Vars& w, Vars g, int it) {
      double lr = 0.1 * std::pow(0.5, it / 2.0);
      for (size_t v = 0; v < w.size(); ++v)
        for (size_t i = 0; i < w[v].size(); ++i) w[v][i] -= lr * g[v][i];
    });
    CHECK(opt->get_config()["learning_rate"]["class_name"] == "ExponentialDecay");
  }
  SECTION("AdamW and Adagrad from Keras 3 configs") {
    auto w = make_optimizer<double>(json::parse(
        R"({"class_name": "AdamW", "config": {"learning_rate": 0.01, "weight_decay": 0.1, "beta_1": 0.9,
            "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": false}})"));
    CHECK(w->class_name() == "AdamW");
    auto adam = adam_ref(0.01, 0.9, 0.999, 1e-7, false);
    compare(*w, [adam](Vars& v, Vars g, int it) {
      weight_decay(v, 0.1, 0.01);
      adam(v, g, it);
    });
    auto a = make_optimizer<double>(json::parse(
        R"({"class_name": "Adagrad", "config": {"learning_rate": 0.05, "initial_accumulator_value": 0.2, "epsilon": 1e-07}})"));
    compare(*a, adagrad_ref(0.05, 0.2, 1e-7));
  }
  SECTION("get_config round-trips through make_optimizer") {
    std::vector<std::shared_ptr<Optimizer<double>>> opts = {
        std::make_shared<SGD<double>>(0.03, 0.6, true), std::make_shared<RMSprop<double>>(0.004, 0.7, 0.3, 1e-5, true),
        std::make_shared<Adam<double>>(0.002, 0.85, 0.95, 1e-6, true), Adam<double>::adamw(0.01, 0.02),
        std::make_shared<Adagrad<double>>(0.02, 0.3)};
    opts[0]->clipvalue = 0.25;
    opts[2]->global_clipnorm = 0.9;
    for (auto& o : opts) {
      INFO(o->class_name());
      auto again = make_optimizer<double>(json{{"class_name", o->class_name()}, {"config", o->get_config()}});
      CHECK(again->class_name() == o->class_name());
      CHECK(again->get_config() == o->get_config());
      // both give the same updates
      Problem p1, p2;
      for (int s = 0; s < 3; ++s) {
        p1.set_grads(s);
        p2.set_grads(s);
        o->apply(p1.params());
        again->apply(p2.params());
      }
      for (Index i = 0; i < 4; ++i) CHECK(p1.kernel.value[i] == Approx(p2.kernel.value[i]).epsilon(1e-6));
    }
  }
}

TEST_CASE("slot variables come in Keras order", "[core][optimizers]") {
  auto names = [](Optimizer<double>& o, Problem& p) {
    std::vector<std::string> r;
    for (auto& s : o.slot_variables()) r.push_back(s.slot + (s.param == &p.kernel ? "/kernel" : "/bias"));
    return r;
  };
  SECTION("Adam: momentum and velocity interleaved per variable, then velocity_hat") {
    Problem p;
    Adam<double> a(0.1);
    a.build(p.params());
    CHECK(names(a, p) == std::vector<std::string>{"momentum/kernel", "velocity/kernel", "momentum/bias", "velocity/bias"});
    Adam<double> ams(0.1, 0.9, 0.999, 1e-7, true);
    ams.build(p.params());
    CHECK(names(ams, p) == std::vector<std::string>{"momentum/kernel", "velocity/kernel", "momentum/bias", "velocity/bias",
                                                    "velocity_hat/kernel", "velocity_hat/bias"});
    // values after one step: m = (1 - b1) g, v = (1 - b2) g^2
    p.set_grads(0);
    a.apply(p.params());
    auto sv = a.slot_variables();
    double g0 = Problem::grads(0)[0][0];
    CHECK((*sv[0].value)[0] == Approx(0.1 * g0));
    CHECK((*sv[1].value)[0] == Approx(0.001 * g0 * g0));
    CHECK(sv[2].value->shape() == Shape{3});
  }
  SECTION("RMSprop: all velocities, then all momentums, then average gradients") {
    Problem p;
    RMSprop<double> r(0.1, 0.9, 0.5, 1e-7, true);
    r.build(p.params());
    CHECK(names(r, p) == std::vector<std::string>{"velocity/kernel", "velocity/bias", "momentum/kernel", "momentum/bias",
                                                  "average_gradient/kernel", "average_gradient/bias"});
    RMSprop<double> plain;
    plain.build(p.params());
    CHECK(names(plain, p) == std::vector<std::string>{"velocity/kernel", "velocity/bias"});
  }
  SECTION("SGD with momentum, Adagrad") {
    Problem p;
    SGD<double> s(0.1, 0.9);
    s.build(p.params());
    CHECK(names(s, p) == std::vector<std::string>{"momentum/kernel", "momentum/bias"});
    Adagrad<double> ad;
    ad.build(p.params());
    auto sv = ad.slot_variables();
    REQUIRE(sv.size() == 2);
    CHECK(sv[0].slot == "accumulator");
    CHECK((*sv[1].value)[2] == 0.1);
  }
  SECTION("reset forgets the state") {
    Problem p;
    Adam<double> a(0.1);
    p.set_grads(0);
    a.apply(p.params());
    CHECK(a.iterations() == 1);
    a.reset();
    CHECK(a.iterations() == 0);
    CHECK(a.slot_variables().empty());
  }
}

namespace {

/// The same optimizer updating each variable whole (update_step) instead of in slices.
template <class O>
struct Whole : O {
  using O::O;
  bool elementwise() const override { return false; }
};

/// A custom optimizer that only overrides update_step (sign SGD).
struct SignSGD : Optimizer<float> {
  SignSGD() : Optimizer<float>("sign_sgd", 0.5) {}
  std::string class_name() const override { return "SignSGD"; }

 protected:
  std::vector<std::vector<std::string>> slot_groups() const override { return {}; }
  void update_step(Param<float>& p, const Tensor<float>& g, std::vector<Tensor<float>>&, float lr) override {
    for (Index i = 0; i < p.value.size(); ++i) p.value[i] -= lr * (g[i] > 0 ? 1.f : (g[i] < 0 ? -1.f : 0.f));
  }
  void add_config(json&) const override {}
};

/// Claims to be element-wise but implements neither update_step nor update_slice.
struct Incomplete : Optimizer<float> {
  Incomplete() : Optimizer<float>("incomplete", 0.1) {}
  std::string class_name() const override { return "Incomplete"; }

 protected:
  std::vector<std::vector<std::string>> slot_groups() const override { return {}; }
  bool elementwise() const override { return true; }
  void add_config(json&) const override {}
};

struct BigProblem {
  Param<float> kernel, bias;
  explicit BigProblem(Index n) {
    kernel.value = Tensor<float>({n});
    bias.value = Tensor<float>({7});
    for (Index i = 0; i < n; ++i) kernel.value[i] = std::sin(0.37f * static_cast<float>(i));
    for (Index i = 0; i < 7; ++i) bias.value[i] = 0.1f * static_cast<float>(i);
  }
  std::vector<Param<float>*> params() { return {&kernel, &bias}; }
  void set_grads(int step) {
    for (Param<float>* p : params()) {
      p->grad = Tensor<float>(p->value.shape());
      for (Index i = 0; i < p->grad.size(); ++i)
        p->grad[i] = std::cos(1.3f * static_cast<float>(step) + 0.011f * static_cast<float>(i)) * (1 + i % 5);
      p->grad_fresh = false;
    }
  }
};

}  // namespace

TEST_CASE("large variables are updated in slices on graft's threads: the same bits as whole updates",
          "[core][optimizers]") {
  // 100 003 elements: 7 slices, the last one short and not a multiple of the SIMD width
  auto check = [](Optimizer<float>& sliced, Optimizer<float>& whole) {
    INFO(sliced.class_name());
    for (int threads : {1, 2}) {
      graft::set_num_threads(threads);
      BigProblem a(100003), b(100003);
      for (int s = 0; s < 3; ++s) {
        a.set_grads(s);
        b.set_grads(s);
        sliced.apply(a.params());
        whole.apply(b.params());
      }
      sliced.reset();
      whole.reset();
      for (Index i = 0; i < a.kernel.value.size(); ++i)
        if (a.kernel.value[i] != b.kernel.value[i]) FAIL("element " << i << ": " << a.kernel.value[i] << " vs " << b.kernel.value[i]);
      for (Index i = 0; i < 7; ++i) CHECK(a.bias.value[i] == b.bias.value[i]);
      CHECK(a.kernel.value[5] != std::sin(0.37f * 5));  // it moved
    }
    graft::set_num_threads(0);
  };
  SGD<float> sgd(0.1);
  Whole<SGD<float>> sgd_w(0.1);
  check(sgd, sgd_w);
  SGD<float> nesterov(0.1, 0.9, true);
  Whole<SGD<float>> nesterov_w(0.1, 0.9, true);
  check(nesterov, nesterov_w);
  RMSprop<float> rms(0.01, 0.8, 0.5, 1e-7, true);
  Whole<RMSprop<float>> rms_w(0.01, 0.8, 0.5, 1e-7, true);
  check(rms, rms_w);
  Adam<float> ams(0.01, 0.9, 0.999, 1e-7, true);
  Whole<Adam<float>> ams_w(0.01, 0.9, 0.999, 1e-7, true);
  ams.weight_decay = ams_w.weight_decay = 0.01;
  check(ams, ams_w);
  Adagrad<float> ada(0.05);
  Whole<Adagrad<float>> ada_w(0.05);
  check(ada, ada_w);
}

TEST_CASE("custom optimizers: update_step alone works; an element-wise one without update_slice is refused",
          "[core][optimizers]") {
  graft::set_num_threads(2);
  BigProblem p(100003);
  p.set_grads(0);
  SignSGD sign;
  sign.apply(p.params());
  CHECK(p.kernel.value[0] == Approx(0.0f - 0.5f));  // sin(0) = 0, gradient cos(0) = 1 > 0
  CHECK(p.bias.value[1] == Approx(0.1f - 0.5f));
  Incomplete bad;
  p.set_grads(1);
  CHECK_THROWS_AS(bad.apply(p.params()), value_error);
  try {
    p.set_grads(1);
    bad.apply(p.params());
  } catch (const value_error& e) {
    CHECK(std::string(e.what()).find("incomplete: an optimizer must override update_step") != std::string::npos);
  }
  graft::set_num_threads(0);
}
