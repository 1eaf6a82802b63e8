// graft — seeded random numbers and the Keras weight initializers, by name.
#pragma once

#include <Eigen/QR>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <mutex>
#include <random>
#include <sstream>
#include <string>

#include "graft/core/errors.hpp"
#include "graft/core/tensor.hpp"

namespace graft {

/// A small, portable random generator (same numbers on every platform and standard library).
class Rng {
 public:
  explicit Rng(std::uint64_t seed = 0x9E3779B97F4A7C15ull) : gen_(seed) {}
  void seed(std::uint64_t s) {
    gen_.seed(s);
    have_spare_ = false;
  }
  std::uint64_t next_u64() { return gen_(); }
  /// Uniform in [0, 1).
  double uniform() { return static_cast<double>(gen_() >> 11) * (1.0 / 9007199254740992.0); }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  /// Standard normal (Box-Muller, portable).
  double normal() {
    if (have_spare_) {
      have_spare_ = false;
      return spare_;
    }
    double u1 = 0.0;
    while (u1 <= 1e-300) u1 = uniform();
    double u2 = uniform();
    double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = r * std::sin(6.283185307179586 * u2);
    have_spare_ = true;
    return r * std::cos(6.283185307179586 * u2);
  }
  /// Normal truncated to two standard deviations (as Keras' truncated_normal).
  double truncated_normal() {
    for (;;) {
      double v = normal();
      if (v >= -2.0 && v <= 2.0) return v;
    }
  }
  /// Uniform integer in [0, n).
  std::uint64_t below(std::uint64_t n) { return n ? gen_() % n : 0; }

  /// The whole generator state as text (for checkpoints that resume bit-identically).
  std::string state() const {
    std::ostringstream s;
    s << gen_ << ' ' << (have_spare_ ? 1 : 0) << ' ';
    s.precision(17);
    s << std::hexfloat << spare_;
    return s.str();
  }
  void set_state(const std::string& text) {
    std::istringstream s(text);
    std::mt19937_64 g;
    int spare = 0;
    std::string sp;
    s >> g >> spare >> sp;
    if (s.fail() || (spare != 0 && spare != 1)) throw format_error("random generator state: not a graft Rng state");
    gen_ = g;
    have_spare_ = spare == 1;
    spare_ = std::strtod(sp.c_str(), nullptr);
  }

 private:
  std::mt19937_64 gen_;
  bool have_spare_ = false;
  double spare_ = 0.0;
};

namespace detail {
struct GlobalRng {
  std::mutex mutex;
  Rng rng{std::random_device{}()};
};
inline GlobalRng& global_rng() {
  static GlobalRng g;
  return g;
}
}  // namespace detail

/// Seed graft's global generator (weight initialisation, default shuffling and dropout seeds),
/// like keras.utils.set_random_seed. Unseeded, graft draws a seed from std::random_device.
inline void set_random_seed(std::uint64_t seed) {
  auto& g = detail::global_rng();
  std::lock_guard<std::mutex> lock(g.mutex);
  g.rng.seed(seed);
}
/// A fresh seed from the global generator.
inline std::uint64_t next_seed() {
  auto& g = detail::global_rng();
  std::lock_guard<std::mutex> lock(g.mutex);
  return g.rng.next_u64();
}

using json = nlohmann::json;

/// Keras fan computation (keras.src.initializers.random_initializers.compute_fans).
inline void compute_fans(const Shape& s, double& fan_in, double& fan_out) {
  if (s.empty()) {
    fan_in = fan_out = 1;
  } else if (s.size() == 1) {
    fan_in = fan_out = static_cast<double>(s[0]);
  } else if (s.size() == 2) {
    fan_in = static_cast<double>(s[0]);
    fan_out = static_cast<double>(s[1]);
  } else {
    double rf = 1;
    for (size_t i = 0; i + 2 < s.size(); ++i) rf *= static_cast<double>(s[i]);
    fan_in = static_cast<double>(s[s.size() - 2]) * rf;
    fan_out = static_cast<double>(s[s.size() - 1]) * rf;
  }
}

/// A Keras initializer: class name + config, serialisable back to Keras JSON.
struct Initializer {
  std::string class_name = "GlorotUniform";
  json config = json::object();

  static Initializer named(const std::string& n, json cfg = json::object()) {
    return Initializer{n, std::move(cfg)};
  }

  /// Parse a Keras 1/2/3 initializer: a string name or {class_name, config[, module]}.
  static Initializer from_json(const json& j, const std::string& where) {
    if (j.is_null()) return named("Zeros");
    if (j.is_string()) return named(canonical(j.get<std::string>(), where));
    if (j.is_object() && j.contains("class_name")) {
      Initializer r;
      r.class_name = canonical(j["class_name"].get<std::string>(), where);
      if (j.contains("config") && j["config"].is_object()) r.config = j["config"];
      return r;
    }
    throw format_error(detail::cat(where, ": cannot read initializer ", j.dump()));
  }

  /// Keras-2 style JSON ({class_name, config}), accepted by TF-Keras and Keras 3.
  json to_json() const { return json{{"class_name", class_name}, {"config", config}}; }

  static std::string canonical(std::string n, const std::string& where) {
    // snake_case (Keras string identifiers, Keras 1 names) -> class names
    static const std::pair<const char*, const char*> table[] = {
        {"glorot_uniform", "GlorotUniform"}, {"glorot_normal", "GlorotNormal"},
        {"he_normal", "HeNormal"},           {"he_uniform", "HeUniform"},
        {"lecun_normal", "LecunNormal"},     {"lecun_uniform", "LecunUniform"},
        {"zeros", "Zeros"},                  {"zero", "Zeros"},
        {"ones", "Ones"},                    {"one", "Ones"},
        {"constant", "Constant"},            {"random_normal", "RandomNormal"},
        {"normal", "RandomNormal"},          {"random_uniform", "RandomUniform"},
        {"uniform", "RandomUniform"},        {"truncated_normal", "TruncatedNormal"},
        {"orthogonal", "Orthogonal"},        {"identity", "Identity"},
        {"variance_scaling", "VarianceScaling"}, {"OrthogonalInitializer", "Orthogonal"},
        {"IdentityInitializer", "Identity"}};
    for (auto& p : table)
      if (n == p.first) return p.second;
    static const char* known[] = {"GlorotUniform", "GlorotNormal", "HeNormal", "HeUniform",
                                  "LecunNormal",   "LecunUniform", "Zeros",    "Ones",
                                  "Constant",      "RandomNormal", "RandomUniform",
                                  "TruncatedNormal", "Orthogonal", "Identity", "VarianceScaling"};
    for (auto* k : known)
      if (n == k) return n;
    throw unsupported_error(detail::cat(where, ": unknown initializer '", n, "'"));
  }

  template <class T>
  void operator()(Tensor<T>& t, Rng& rng) const {
    const Shape& s = t.shape();
    auto num = [&](const char* key, double dflt) {
      return config.contains(key) && config[key].is_number() ? config[key].get<double>() : dflt;
    };
    double fan_in, fan_out;
    compute_fans(s, fan_in, fan_out);
    auto variance_scaling = [&](double scale, const std::string& mode, const std::string& dist) {
      double n = mode == "fan_in" ? fan_in : mode == "fan_out" ? fan_out : (fan_in + fan_out) / 2;
      n = std::max(1.0, n);
      double sc = scale / n;
      if (dist == "uniform") {
        double limit = std::sqrt(3.0 * sc);
        for (auto& v : t) v = static_cast<T>(rng.uniform(-limit, limit));
      } else if (dist == "untruncated_normal") {
        double sd = std::sqrt(sc);
        for (auto& v : t) v = static_cast<T>(sd * rng.normal());
      } else {  // truncated_normal (Keras 2 'normal' too)
        double sd = std::sqrt(sc) / 0.87962566103423978;
        for (auto& v : t) v = static_cast<T>(sd * rng.truncated_normal());
      }
    };
    const std::string& c = class_name;
    if (c == "Zeros") {
      t.fill(T(0));
    } else if (c == "Ones") {
      t.fill(T(1));
    } else if (c == "Constant") {
      t.fill(static_cast<T>(num("value", 0.0)));
    } else if (c == "GlorotUniform") {
      variance_scaling(1.0, "fan_avg", "uniform");
    } else if (c == "GlorotNormal") {
      variance_scaling(1.0, "fan_avg", "truncated_normal");
    } else if (c == "HeNormal") {
      variance_scaling(2.0, "fan_in", "truncated_normal");
    } else if (c == "HeUniform") {
      variance_scaling(2.0, "fan_in", "uniform");
    } else if (c == "LecunNormal") {
      variance_scaling(1.0, "fan_in", "truncated_normal");
    } else if (c == "LecunUniform") {
      variance_scaling(1.0, "fan_in", "uniform");
    } else if (c == "VarianceScaling") {
      std::string mode = config.value("mode", std::string("fan_in"));
      std::string dist = config.value("distribution", std::string("truncated_normal"));
      if (dist == "normal") dist = "truncated_normal";
      variance_scaling(num("scale", 1.0), mode, dist);
    } else if (c == "RandomNormal") {
      double m = num("mean", 0.0), sd = num("stddev", 0.05);
      for (auto& v : t) v = static_cast<T>(m + sd * rng.normal());
    } else if (c == "TruncatedNormal") {
      double m = num("mean", 0.0), sd = num("stddev", 0.05);
      for (auto& v : t) v = static_cast<T>(m + sd * rng.truncated_normal());
    } else if (c == "RandomUniform") {
      double lo = num("minval", -0.05), hi = num("maxval", 0.05);
      for (auto& v : t) v = static_cast<T>(rng.uniform(lo, hi));
    } else if (c == "Identity") {
      double gain = num("gain", 1.0);
      Index r = s.size() >= 2 ? s[0] : 1, k = s.size() >= 2 ? t.size() / r : t.size();
      t.fill(T(0));
      for (Index i = 0; i < std::min(r, k); ++i) t[i * k + i] = static_cast<T>(gain);
    } else if (c == "Orthogonal") {
      double gain = num("gain", 1.0);
      Index cols = s.empty() ? 1 : s.back();
      Index rows = cols ? t.size() / cols : 0;
      Index big = std::max(rows, cols), small = std::min(rows, cols);
      Eigen::MatrixXd a(big, small);
      for (Index i = 0; i < a.size(); ++i) a.data()[i] = rng.normal();
      Eigen::HouseholderQR<Eigen::MatrixXd> qr(a);
      Eigen::MatrixXd q = qr.householderQ() * Eigen::MatrixXd::Identity(big, small);
      Eigen::VectorXd d = qr.matrixQR().diagonal();
      for (Index j = 0; j < small; ++j)
        if (d(j) < 0) q.col(j) *= -1;
      for (Index i = 0; i < rows; ++i)
        for (Index j = 0; j < cols; ++j)
          t[i * cols + j] = static_cast<T>(gain * (rows >= cols ? q(i, j) : q(j, i)));
    } else {
      throw unsupported_error(detail::cat("unknown initializer '", c, "'"));
    }
  }
};

}  // namespace graft
