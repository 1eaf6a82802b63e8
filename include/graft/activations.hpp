// graft — element-wise activation functions and their derivatives, by Keras name (Keras 3 math).
#pragma once

#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>
#include <string>

#include "graft/core/errors.hpp"
#include "graft/core/exact_math.hpp"
#include "graft/core/tensor.hpp"

namespace graft {

namespace detail {
/// Eigen's SIMD packet for T (size 1 when Eigen does not vectorize T).
template <class T>
struct PacketOf {
  using type = typename Eigen::internal::packet_traits<T>::type;
  static constexpr Index size =
      Eigen::internal::packet_traits<T>::Vectorizable ? Index(Eigen::internal::unpacket_traits<type>::size) : 1;
};
/// pf(i) on each whole packet [i, i + size), sf(i) on the elements left over. Explicit packets
/// (not compiler auto-vectorisation) so that the branch-free selects and the vectorised exp run
/// whatever the optimisation flags of the including program.
template <class T, class PF, class SF>
inline void packet_loop(Index n, PF&& pf, SF&& sf) {
  constexpr Index PS = PacketOf<T>::size;
  Index i = 0;
  if constexpr (PS > 1)
    for (; i + PS <= n; i += PS) pf(i);
  for (; i < n; ++i) sf(i);
}
}  // namespace detail

/// One Keras activation. Forward maps pre-activations z to outputs y; backward maps the output
/// gradient dy to dz using y (always) and z (only when needs_input() is true).
class ActivationFn {
 public:
  enum Kind {
    linear, relu, relu6, selu, elu, sigmoid, hard_sigmoid, tanh_, softmax, softplus, softsign,
    silu, hard_silu, gelu, exponential, leaky_relu, mish, log_softmax, celu, log_sigmoid,
    hard_tanh, tanh_shrink, soft_shrink, hard_shrink, sparse_plus, squareplus, sparse_sigmoid
  };

  ActivationFn() = default;
  /// `param` (leaky_relu's negative_slope, elu/celu's alpha, the shrink thresholds, squareplus'
  /// b) defaults to the Keras value when NaN; an explicit 0 is kept (ELU(alpha=0) is valid).
  explicit ActivationFn(Kind k, double param = std::numeric_limits<double>::quiet_NaN(), bool approximate = false)
      : kind_(k), param_(param), approximate_(approximate) {
    if (std::isnan(param)) param_ = default_param(k);
  }
  static double default_param(Kind k) {
    switch (k) {
      case leaky_relu: return 0.2;
      case elu: case celu: return 1.0;
      case soft_shrink: case hard_shrink: return 0.5;
      case squareplus: return 4.0;
      default: return 0.0;
    }
  }

  /// Resolve a Keras activation identifier: a name, null, or a serialized function object.
  static ActivationFn from_json(const nlohmann::json& j, const std::string& where) {
    if (j.is_null()) return ActivationFn(linear);
    if (j.is_string()) return from_name(j.get<std::string>(), where);
    if (j.is_object()) {
      // Keras 3 native: {"module": "keras.activations", "class_name": "function", "config": "relu"}
      if (j.contains("config") && j["config"].is_string())
        return from_name(j["config"].get<std::string>(), where);
      if (j.contains("class_name") && j["class_name"].is_string())
        return from_name(j["class_name"].get<std::string>(), where);
    }
    throw format_error(detail::cat(where, ": cannot read activation ", j.dump()));
  }

  static ActivationFn from_name(std::string n, const std::string& where) {
    for (auto& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    struct E { const char* name; Kind k; bool approx; };
    static const E table[] = {
        {"linear", linear, false}, {"none", linear, false}, {"", linear, false},
        {"relu", relu, false}, {"relu6", relu6, false}, {"selu", selu, false},
        {"elu", elu, false}, {"sigmoid", sigmoid, false}, {"hard_sigmoid", hard_sigmoid, false},
        {"tanh", tanh_, false}, {"softmax", softmax, false}, {"softmax_v2", softmax, false},
        {"softplus", softplus, false}, {"softsign", softsign, false}, {"swish", silu, false},
        {"silu", silu, false}, {"hard_silu", hard_silu, false}, {"hard_swish", hard_silu, false},
        {"gelu", gelu, false}, {"gelu_approximate", gelu, true}, {"exponential", exponential, false},
        {"leaky_relu", leaky_relu, false}, {"mish", mish, false}, {"log_softmax", log_softmax, false},
        {"celu", celu, false}, {"log_sigmoid", log_sigmoid, false}, {"hard_tanh", hard_tanh, false},
        {"tanh_shrink", tanh_shrink, false}, {"soft_shrink", soft_shrink, false},
        {"hard_shrink", hard_shrink, false}, {"sparse_plus", sparse_plus, false},
        {"squareplus", squareplus, false}, {"sparse_sigmoid", sparse_sigmoid, false}};
    for (auto& e : table)
      if (n == e.name) return ActivationFn(e.k, std::numeric_limits<double>::quiet_NaN(), e.approx);
    throw unsupported_error(detail::cat(where, ": unknown activation '", n, "'"));
  }

  Kind kind() const { return kind_; }
  double param() const { return param_; }
  bool is_linear() const { return kind_ == linear; }
  /// Softmax-like activations normalise along the last axis.
  bool is_row_wise() const { return kind_ == softmax || kind_ == log_softmax; }

  /// Keras name for configs.
  std::string name() const {
    switch (kind_) {
      case linear: return "linear";
      case relu: return "relu";
      case relu6: return "relu6";
      case selu: return "selu";
      case elu: return "elu";
      case sigmoid: return "sigmoid";
      case hard_sigmoid: return "hard_sigmoid";
      case tanh_: return "tanh";
      case softmax: return "softmax";
      case softplus: return "softplus";
      case softsign: return "softsign";
      case silu: return "silu";
      case hard_silu: return "hard_silu";
      case gelu: return "gelu";
      case exponential: return "exponential";
      case leaky_relu: return "leaky_relu";
      case mish: return "mish";
      case log_softmax: return "log_softmax";
      case celu: return "celu";
      case log_sigmoid: return "log_sigmoid";
      case hard_tanh: return "hard_tanh";
      case tanh_shrink: return "tanh_shrink";
      case soft_shrink: return "soft_shrink";
      case hard_shrink: return "hard_shrink";
      case sparse_plus: return "sparse_plus";
      case squareplus: return "squareplus";
      case sparse_sigmoid: return "sparse_sigmoid";
    }
    return "linear";
  }

  /// Whether backward() needs the pre-activation z (otherwise y alone suffices).
  bool needs_input() const {
    switch (kind_) {
      case linear: case relu: case relu6: case selu: case sigmoid: case hard_sigmoid:
      case tanh_: case softmax: case softsign: case exponential: case log_softmax:
        return false;
      default:
        return true;
    }
  }

  /// y = f(z), `n` elements; row-wise activations use rows of length `last`. In-place (y == z) is fine.
  template <class T>
  void forward(const T* z, T* y, Index n, Index last) const {
    using A = Eigen::Array<T, Eigen::Dynamic, 1>;
    if (forward_packets(z, y, n)) return;
    Eigen::Map<const A> Z(z, n);
    Eigen::Map<A> Y(y, n);
    const T p = static_cast<T>(param_);
    switch (kind_) {
      case linear:
        if (y != z) Y = Z;
        break;
      case relu: Y = Z.max(T(0)); break;
      case relu6: Y = Z.max(T(0)).min(T(6)); break;
      case selu: {
        const T a = T(1.6732632423543772848170429916717), s = T(1.0507009873554804934193349852946);
        Y = (Z > T(0)).select(s * Z, (s * a) * (Z.exp() - T(1)));
        break;
      }
      case elu: Y = (Z > T(0)).select(Z, p * (Z.exp() - T(1))); break;
      case sigmoid:
        for (Index i = 0; i < n; ++i) y[i] = sigm(z[i]);
        break;
      case hard_sigmoid: Y = ((Z + T(3)).max(T(0)).min(T(6))) / T(6); break;
      case tanh_: Y = Z.tanh(); break;
      case softplus:
        for (Index i = 0; i < n; ++i) y[i] = softplus_(z[i]);
        break;
      case softsign: Y = Z / (T(1) + Z.abs()); break;
      case silu:
        for (Index i = 0; i < n; ++i) y[i] = z[i] * sigm(z[i]);
        break;
      case hard_silu: Y = Z * ((Z + T(3)).max(T(0)).min(T(6))) / T(6); break;
      case gelu:
        if (approximate_) {
          const T c = T(0.7978845608028654);
          for (Index i = 0; i < n; ++i) {
            T x = z[i];
            y[i] = T(0.5) * x * (T(1) + std::tanh(c * (x + T(0.044715) * x * x * x)));
          }
        } else {
          for (Index i = 0; i < n; ++i)
            y[i] = T(0.5) * z[i] * (T(1) + std::erf(z[i] * T(0.70710678118654752440)));
        }
        break;
      case exponential: Y = Z.exp(); break;
      case leaky_relu: Y = (Z > T(0)).select(Z, p * Z); break;
      case mish:
        for (Index i = 0; i < n; ++i) y[i] = z[i] * std::tanh(softplus_(z[i]));
        break;
      case softmax:
      case log_softmax: {
        for (Index r = 0; r < n; r += last) {
          const T* zr = z + r;
          T* yr = y + r;
          T m = zr[0];
          for (Index j = 1; j < last; ++j) m = std::max(m, zr[j]);
          T s = 0;
          if (kind_ == softmax) {
            for (Index j = 0; j < last; ++j) s += (yr[j] = std::exp(zr[j] - m));
            T inv = T(1) / s;
            for (Index j = 0; j < last; ++j) yr[j] *= inv;
          } else {
            for (Index j = 0; j < last; ++j) s += std::exp(zr[j] - m);
            T lse = m + std::log(s);
            for (Index j = 0; j < last; ++j) yr[j] = zr[j] - lse;
          }
        }
        break;
      }
      case celu: Y = (Z > T(0)).select(Z, p * ((Z / p).exp() - T(1))); break;
      case log_sigmoid:
        for (Index i = 0; i < n; ++i) y[i] = -softplus_(-z[i]);
        break;
      case hard_tanh: Y = Z.max(T(-1)).min(T(1)); break;
      case tanh_shrink: Y = Z - Z.tanh(); break;
      case soft_shrink:
        Y = (Z > p).select(Z - p, (Z < -p).select(Z + p, A::Zero(n)));
        break;
      case hard_shrink: Y = (Z.abs() > p).select(Z, A::Zero(n)); break;
      case sparse_plus:
        for (Index i = 0; i < n; ++i) {
          T x = z[i];
          y[i] = x <= T(-1) ? T(0) : (x < T(1) ? T(0.25) * (x + 1) * (x + 1) : x);
        }
        break;
      case squareplus: Y = (Z + detail::sqrt_exact(Z * Z + p)) / T(2); break;
      case sparse_sigmoid:
        for (Index i = 0; i < n; ++i) {
          T x = z[i];
          y[i] = x <= T(-1) ? T(0) : (x >= T(1) ? T(1) : T(0.5) * (x + 1));
        }
        break;
    }
  }

  /// dz = dy * f'(z). `z` may be null when !needs_input(). dz may alias dy.
  template <class T>
  void backward(const T* z, const T* y, const T* dy, T* dz, Index n, Index last) const {
    using A = Eigen::Array<T, Eigen::Dynamic, 1>;
    if (backward_packets(z, y, dy, dz, n)) return;
    Eigen::Map<const A> Y(y, n), DY(dy, n);
    Eigen::Map<A> DZ(dz, n);
    const T p = static_cast<T>(param_);
    auto Zm = [&]() { return Eigen::Map<const A>(z, n); };
    switch (kind_) {
      case linear:
        if (dz != dy) DZ = DY;
        break;
      case relu: DZ = (Y > T(0)).select(DY, T(0)); break;
      case relu6: DZ = (Y > T(0) && Y < T(6)).select(DY, T(0)); break;
      case selu: {
        const T a = T(1.6732632423543772848170429916717), s = T(1.0507009873554804934193349852946);
        DZ = (Y > T(0)).select(s * DY, DY * (Y + s * a));
        break;
      }
      case elu: {
        auto Z = Zm();
        DZ = (Z > T(0)).select(DY, DY * p * Z.exp());
        break;
      }
      case sigmoid: DZ = DY * Y * (T(1) - Y); break;
      case hard_sigmoid: DZ = (Y > T(0) && Y < T(1)).select(DY / T(6), T(0)); break;
      case tanh_: DZ = DY * (T(1) - Y * Y); break;
      case softplus:
        for (Index i = 0; i < n; ++i) dz[i] = dy[i] * (z[i] > T(20) ? T(1) : sigm(z[i]));
        break;
      case softsign: DZ = DY * (T(1) - Y.abs()).square(); break;
      case silu:
        for (Index i = 0; i < n; ++i) {
          T s = sigm(z[i]);
          dz[i] = dy[i] * (s + z[i] * s * (T(1) - s));
        }
        break;
      case hard_silu:
        for (Index i = 0; i < n; ++i) {
          T x = z[i];
          dz[i] = dy[i] * (x < T(-3) ? T(0) : (x <= T(3) ? x / T(3) + T(0.5) : T(1)));
        }
        break;
      case gelu:
        if (approximate_) {
          const T c = T(0.7978845608028654);
          for (Index i = 0; i < n; ++i) {
            T x = z[i];
            T t = std::tanh(c * (x + T(0.044715) * x * x * x));
            dz[i] = dy[i] * (T(0.5) * (T(1) + t) +
                             T(0.5) * x * (T(1) - t * t) * c * (T(1) + T(3 * 0.044715) * x * x));
          }
        } else {
          for (Index i = 0; i < n; ++i) {
            T x = z[i];
            T cdf = T(0.5) * (T(1) + std::erf(x * T(0.70710678118654752440)));
            T pdf = std::exp(T(-0.5) * x * x) * T(0.39894228040143267794);
            dz[i] = dy[i] * (cdf + x * pdf);
          }
        }
        break;
      case exponential: DZ = DY * Y; break;
      case leaky_relu: {
        auto Z = Zm();
        DZ = (Z > T(0)).select(DY, p * DY);
        break;
      }
      case mish:
        for (Index i = 0; i < n; ++i) {
          T x = z[i];
          T t = std::tanh(softplus_(x));
          dz[i] = dy[i] * (t + x * (T(1) - t * t) * sigm(x));
        }
        break;
      case softmax:
        for (Index r = 0; r < n; r += last) {
          T s = 0;
          for (Index j = 0; j < last; ++j) s += dy[r + j] * y[r + j];
          for (Index j = 0; j < last; ++j) dz[r + j] = y[r + j] * (dy[r + j] - s);
        }
        break;
      case log_softmax:
        for (Index r = 0; r < n; r += last) {
          T s = 0;
          for (Index j = 0; j < last; ++j) s += dy[r + j];
          for (Index j = 0; j < last; ++j) dz[r + j] = dy[r + j] - std::exp(y[r + j]) * s;
        }
        break;
      case celu: {
        auto Z = Zm();
        DZ = (Z > T(0)).select(DY, DY * (Z / p).exp());
        break;
      }
      case log_sigmoid:
        for (Index i = 0; i < n; ++i) dz[i] = dy[i] * sigm(-z[i]);
        break;
      case hard_tanh: {
        auto Z = Zm();
        DZ = (Z > T(-1) && Z < T(1)).select(DY, T(0));
        break;
      }
      case tanh_shrink: DZ = DY * Zm().tanh().square(); break;
      case soft_shrink:
      case hard_shrink: {
        auto Z = Zm();
        DZ = (Z.abs() > p).select(DY, T(0));
        break;
      }
      case sparse_plus:
        for (Index i = 0; i < n; ++i) {
          T x = z[i];
          dz[i] = dy[i] * (x <= T(-1) ? T(0) : (x < T(1) ? T(0.5) * (x + 1) : T(1)));
        }
        break;
      case squareplus: {
        auto Z = Zm();
        DZ = DY * (T(1) + Z / detail::sqrt_exact(Z * Z + p)) / T(2);
        break;
      }
      case sparse_sigmoid: {
        auto Z = Zm();
        DZ = (Z > T(-1) && Z < T(1)).select(DY * T(0.5), T(0));
        break;
      }
    }
  }

 private:
  static constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
  static constexpr double kSeluScale = 1.0507009873554804934193349852946;

  /// The common activations as explicit SIMD loops (Eigen 3.4 evaluates select() one scalar at a
  /// time, with a libm exp call per element). Same formulas as the generic code below; the exp is
  /// Eigen's vectorised one. Returns false for the other activations.
  template <class T>
  bool forward_packets(const T* z, T* y, Index n) const {
    using namespace Eigen::internal;
    using P = typename detail::PacketOf<T>::type;
    if constexpr (detail::PacketOf<T>::size == 1) {
      return false;
    } else {
      const P zero = pset1<P>(T(0)), one = pset1<P>(T(1));
      switch (kind_) {
        case relu:
          detail::packet_loop<T>(n, [&](Index i) { pstoreu(y + i, pmax(ploadu<P>(z + i), zero)); },
                                 [&](Index i) { y[i] = std::max(z[i], T(0)); });
          return true;
        case selu: {
          const T s = T(kSeluScale), sa = T(kSeluScale) * T(kSeluAlpha);
          const P ps = pset1<P>(s), psa = pset1<P>(sa);
          detail::packet_loop<T>(
              n,
              [&](Index i) {
                const P v = ploadu<P>(z + i);
                pstoreu(y + i, pselect(pcmp_lt(zero, v), pmul(ps, v), pmul(psa, psub(pexp(v), one))));
              },
              [&](Index i) { y[i] = z[i] > T(0) ? s * z[i] : sa * (std::exp(z[i]) - T(1)); });
          return true;
        }
        case elu: {
          const T p = static_cast<T>(param_);
          const P pp = pset1<P>(p);
          detail::packet_loop<T>(
              n,
              [&](Index i) {
                const P v = ploadu<P>(z + i);
                pstoreu(y + i, pselect(pcmp_lt(zero, v), v, pmul(pp, psub(pexp(v), one))));
              },
              [&](Index i) { y[i] = z[i] > T(0) ? z[i] : p * (std::exp(z[i]) - T(1)); });
          return true;
        }
        case sigmoid:  // stable: exp of -|z| only, as sigm()
          detail::packet_loop<T>(
              n,
              [&](Index i) {
                const P v = ploadu<P>(z + i);
                const P e = pexp(pnegate(pabs(v)));
                const P d = padd(one, e);
                pstoreu(y + i, pselect(pcmp_le(zero, v), pdiv(one, d), pdiv(e, d)));
              },
              [&](Index i) { y[i] = sigm(z[i]); });
          return true;
        default:
          return false;
      }
    }
  }

  template <class T>
  bool backward_packets(const T* z, const T* y, const T* dy, T* dz, Index n) const {
    using namespace Eigen::internal;
    using P = typename detail::PacketOf<T>::type;
    if constexpr (detail::PacketOf<T>::size == 1) {
      return false;
    } else {
      const P zero = pset1<P>(T(0)), one = pset1<P>(T(1));
      switch (kind_) {
        case relu:
          detail::packet_loop<T>(
              n, [&](Index i) { pstoreu(dz + i, pselect(pcmp_lt(zero, ploadu<P>(y + i)), ploadu<P>(dy + i), zero)); },
              [&](Index i) { dz[i] = y[i] > T(0) ? dy[i] : T(0); });
          return true;
        case selu: {
          const T s = T(kSeluScale), sa = T(kSeluScale) * T(kSeluAlpha);
          const P ps = pset1<P>(s), psa = pset1<P>(sa);
          detail::packet_loop<T>(
              n,
              [&](Index i) {
                const P v = ploadu<P>(y + i), g = ploadu<P>(dy + i);
                pstoreu(dz + i, pselect(pcmp_lt(zero, v), pmul(ps, g), pmul(g, padd(v, psa))));
              },
              [&](Index i) { dz[i] = y[i] > T(0) ? s * dy[i] : dy[i] * (y[i] + sa); });
          return true;
        }
        case elu: {
          const T p = static_cast<T>(param_);
          const P pp = pset1<P>(p);
          detail::packet_loop<T>(
              n,
              [&](Index i) {
                const P v = ploadu<P>(z + i), g = ploadu<P>(dy + i);
                pstoreu(dz + i, pselect(pcmp_lt(zero, v), g, pmul(pmul(g, pp), pexp(v))));
              },
              [&](Index i) { dz[i] = z[i] > T(0) ? dy[i] : dy[i] * p * std::exp(z[i]); });
          return true;
        }
        case sigmoid:
          detail::packet_loop<T>(
              n,
              [&](Index i) {
                const P v = ploadu<P>(y + i);
                pstoreu(dz + i, pmul(pmul(ploadu<P>(dy + i), v), psub(one, v)));
              },
              [&](Index i) { dz[i] = dy[i] * y[i] * (T(1) - y[i]); });
          return true;
        default:
          return false;
      }
    }
  }

  template <class T>
  static T sigm(T x) {
    return x >= T(0) ? T(1) / (T(1) + std::exp(-x)) : std::exp(x) / (T(1) + std::exp(x));
  }
  template <class T>
  static T softplus_(T x) {
    return x > T(20) ? x : std::log1p(std::exp(x));
  }

  Kind kind_ = linear;
  double param_ = 0.0;
  bool approximate_ = false;
};

}  // namespace graft
