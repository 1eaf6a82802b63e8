// graft — pooling layers (channels_last): MaxPooling1D/2D, AveragePooling1D/2D (padding valid or
// same; "same" pads with the TF rule, the odd cell after, and padded cells never enter a max or
// an average: the mean divides by the number of real cells, as Keras does on every backend),
// GlobalAveragePooling1D/2D and GlobalMaxPooling1D/2D (keepdims).
// Max gradients go to the first maximal cell of each window in row-major order.
#pragma once

#include <cstdint>
#include <limits>

#include "graft/layers/conv_common.hpp"

namespace graft {

namespace detail {

enum class PoolKind { max, avg };

/// f(o, cell, k, cells) for every window of sample n, and every input cell inside it in row-major
/// order: o is the offset of the window's output values, cell the offset of the input cell's
/// values, k the cell's index in the full (unclipped) window, cells the count of input cells in
/// the window (padding excluded).
template <class F>
void for_each_window_cell(const Geom& g, Index n, F&& f) {
  for (Index oh = 0; oh < g.OH; ++oh) {
    const Index top = oh * g.sh - g.pt, h0 = std::max<Index>(top, 0), h1 = std::min(top + g.kh, g.H);
    for (Index ow = 0; ow < g.OW; ++ow) {
      const Index left = ow * g.sw - g.pl, w0 = std::max<Index>(left, 0), w1 = std::min(left + g.kw, g.W);
      const Index o = ((n * g.OH + oh) * g.OW + ow) * g.C, cells = (h1 - h0) * (w1 - w0);
      for (Index ih = h0; ih < h1; ++ih)
        for (Index iw = w0; iw < w1; ++iw) f(o, ((n * g.H + ih) * g.W + iw) * g.C, (ih - top) * g.kw + (iw - left), cells);
    }
  }
}

template <class T>
class PoolingBase : public UnaryLayer<T> {
 public:
  bool parallel_rows(bool) const override { return true; }
  PoolingBase(int rank, PoolKind kind, const Dims& pool_size, const std::vector<Index>& strides, const std::string& padding,
              std::string name)
      : UnaryLayer<T>(std::move(name)), rank_(rank), kind_(kind) {
    const std::string who = cls(rank, kind);
    pool_ = pool_size.expand(static_cast<size_t>(rank), "pool_size", who);
    strides_ = strides.empty() ? pool_ : Dims(strides).expand(static_cast<size_t>(rank), "strides", who);
    for (auto* v : {&pool_, &strides_})
      for (Index x : *v)
        if (x <= 0) throw value_error(cat(who, ": pool_size and strides must be positive"));
    pad_ = parse_padding(padding, who, false);
  }
  std::string class_name() const override { return cls(rank_, kind_); }
  const std::vector<Index>& pool_size() const { return pool_; }
  const std::vector<Index>& strides() const { return strides_; }
  std::string padding() const { return padding_name(pad_); }

  Shape output_shape(const Shape& in) const override {
    const size_t want = static_cast<size_t>(rank_) + 2;
    if (in.size() != want)
      throw shape_error(cat(this->where(), ": expects inputs of rank ", want, ", got shape ", shape_str(in)));
    Shape o = in;
    for (size_t a = 0; a < static_cast<size_t>(rank_); ++a) {
      o[a + 1] = conv_out_len(in[a + 1], pool_[a], strides_[a], 1, pad_);
      if (o[a + 1] == 0)
        throw shape_error(cat(this->where(), ": input shape ", shape_str(in), " is smaller than pool_size ",
                              sizes_json(pool_).dump(), " with padding '", padding(), "'"));
    }
    return o;
  }

  struct State : CallState {
    std::vector<T> rem;  // max pooling backward: remaining gradient of one window, per range of samples
    // Max pooling in training: for every output value, the window cell (row-major in the full
    // window) of its first maximum, so the backward pass need not read the input again.
    std::vector<std::int32_t> arg;
    const T* arg_of = nullptr;  // the input `arg` was recorded for
  };
  std::unique_ptr<CallState> make_state() const override { return std::make_unique<State>(); }

  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState* st, bool training) override {
    const Geom g = geom(x);
    auto* s = static_cast<State*>(st);
    // recording the argmax costs a little in the forward pass and spares the backward pass a
    // read of the whole input; windows of more than 256 cells recompute instead
    const bool record = training && s && kind_ == PoolKind::max && g.kh * g.kw <= 256;
    if (s) s->arg_of = nullptr;
    Shape& os = detail::shape_scratch();
    os = x.shape();
    if (rank_ == 2) {
      os[1] = g.OH;
      os[2] = g.OW;
    } else {
      os[1] = g.OW;
    }
    y.resize(os);
    const Index C = g.C;
    const T* xd = x.data();
    T* yd = y.data();
    const PoolKind kind = kind_;
    const Index total = g.N * g.OH;
    if (record) s->arg.resize(static_cast<size_t>(y.size()));
    parallel_for(0, total, total * g.OW * C * g.kh * g.kw > 32768, [&](Index t) {
      const Index n = t / g.OH, oh = t % g.OH;
      const Index h0 = std::max<Index>(oh * g.sh - g.pt, 0), h1 = std::min(oh * g.sh - g.pt + g.kh, g.H);
      for (Index ow = 0; ow < g.OW; ++ow) {
        const Index w0 = std::max<Index>(ow * g.sw - g.pl, 0), w1 = std::min(ow * g.sw - g.pl + g.kw, g.W);
        T* yp = yd + (t * g.OW + ow) * C;
        if (record) {
          std::int32_t* __restrict ap = s->arg.data() + (t * g.OW + ow) * C;
          T* __restrict yr = yp;
          const Index top = oh * g.sh - g.pt, left = ow * g.sw - g.pl;
          bool first = true;
          for (Index ih = h0; ih < h1; ++ih)
            for (Index iw = w0; iw < w1; ++iw) {
              const T* __restrict xp = xd + ((n * g.H + ih) * g.W + iw) * C;
              const auto k = static_cast<std::int32_t>((ih - top) * g.kw + (iw - left));
              if (first) {
                std::copy(xp, xp + C, yr);
                std::fill(ap, ap + C, k);
                first = false;
                continue;
              }
              GRAFT_SIMD
              for (Index c = 0; c < C; ++c) {  // strictly greater: the first maximum stays
                const T xv = xp[c], yv = yr[c];
                const std::int32_t av = ap[c], gt = static_cast<std::int32_t>(xv > yv);
                yr[c] = xv > yv ? xv : yv;     // unconditional stores (arithmetic select):
                ap[c] = av + gt * (k - av);  // masked stores are slow on some x86 cores
              }
            }
        } else if (kind == PoolKind::max) {
          const T* x0 = xd + ((n * g.H + h0) * g.W + w0) * C;
          std::copy(x0, x0 + C, yp);
          for (Index ih = h0; ih < h1; ++ih)
            for (Index iw = w0; iw < w1; ++iw) {
              const T* xp = xd + ((n * g.H + ih) * g.W + iw) * C;
              if (xp == x0) continue;
              GRAFT_SIMD
              for (Index c = 0; c < C; ++c) yp[c] = xp[c] > yp[c] ? xp[c] : yp[c];  // branch-free max
            }
        } else {
          std::fill(yp, yp + C, T(0));
          for (Index ih = h0; ih < h1; ++ih)
            for (Index iw = w0; iw < w1; ++iw) {
              const T* xp = xd + ((n * g.H + ih) * g.W + iw) * C;
              GRAFT_SIMD
              for (Index c = 0; c < C; ++c) yp[c] += xp[c];
            }
          const T inv = T(1) / static_cast<T>((h1 - h0) * (w1 - w0));
          GRAFT_SIMD
          for (Index c = 0; c < C; ++c) yp[c] *= inv;
        }
      }
    });
    if (record) s->arg_of = xd;
  }

  void backward1(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>* dx, CallState* st) override {
    if (!dx) return;
    const Geom g = geom(x);
    dx->resize(x.shape());  // zeroed sample by sample below, on the thread that fills it
    const Index C = g.C, in_per = g.H * g.W * g.C;
    T* d = dx->data();
    const T* dyd = dy.data();
    auto* s = static_cast<State*>(st);
    if (kind_ == PoolKind::max && s->arg_of == x.data() && static_cast<Index>(s->arg.size()) == dy.size()) {
      // the argmax recorded by the forward pass: each output's gradient goes to that cell
      const std::int32_t* arg = s->arg.data();
      parallel_for(0, g.N, g.N > 1 && g.OH * g.OW * C * g.kh * g.kw > 16384, [&](Index n) {
        std::fill(d + n * in_per, d + (n + 1) * in_per, T(0));
        for_each_window_cell(g, n, [&](Index o, Index cell, Index k, Index) {
          const auto kk = static_cast<std::int32_t>(k);
          const std::int32_t* __restrict ap = arg + o;
          const T* __restrict gp = dyd + o;
          T* __restrict da = d + cell;
          GRAFT_SIMD
          for (Index c = 0; c < C; ++c) da[c] += ap[c] == kk ? gp[c] : T(0);
        });
      });
      return;
    }
    if (kind_ == PoolKind::max) {
      // The gradient of each window goes to its first cell (row-major) holding the maximum:
      // scan the window in order, hand the remaining gradient to every cell equal to the
      // output, and zero what remains after the first match.
      const T* xd = x.data();
      const T* yd = y.data();
      auto& rem = static_cast<State*>(st)->rem;
      rem.resize(static_cast<size_t>(range_chunks(g.N) * C));
      parallel_ranges(g.N, g.N > 1 && g.OH * g.OW * C * g.kh * g.kw > 16384, [&](Index chunk, Index n0, Index n1) {
        T* r = rem.data() + chunk * C;
        std::fill(d + n0 * in_per, d + n1 * in_per, T(0));
        for (Index n = n0; n < n1; ++n)
          for (Index oh = 0; oh < g.OH; ++oh) {
            const Index h0 = std::max<Index>(oh * g.sh - g.pt, 0), h1 = std::min(oh * g.sh - g.pt + g.kh, g.H);
            for (Index ow = 0; ow < g.OW; ++ow) {
              const Index w0 = std::max<Index>(ow * g.sw - g.pl, 0), w1 = std::min(ow * g.sw - g.pl + g.kw, g.W);
              const Index o = ((n * g.OH + oh) * g.OW + ow) * C;
              const T* yp = yd + o;
              std::copy(dyd + o, dyd + o + C, r);
              for (Index ih = h0; ih < h1; ++ih)
                for (Index iw = w0; iw < w1; ++iw) {
                  const Index base = ((n * g.H + ih) * g.W + iw) * C;
                  const T* __restrict xa = xd + base;
                  const T* __restrict ya = yp;
                  T* __restrict da = d + base;
                  T* __restrict ra = r;
                  GRAFT_SIMD
                  for (Index c = 0; c < C; ++c) {  // arithmetic masks: vectorizes, no branches
                    const T give = static_cast<T>(xa[c] == ya[c]) * ra[c];
                    da[c] += give;
                    ra[c] -= give;
                  }
                }
            }
          }
      });
      return;
    }
    parallel_for(0, g.N, g.N > 1 && g.OH * g.OW * C * g.kh * g.kw > 16384, [&](Index n) {
      std::fill(d + n * in_per, d + (n + 1) * in_per, T(0));
      for_each_window_cell(g, n, [&](Index o, Index cell, Index, Index cells) {
        const T inv = T(1) / static_cast<T>(cells);
        const T* gp = dyd + o;
        T* xp = d + cell;
        GRAFT_SIMD
        for (Index c = 0; c < C; ++c) xp[c] += gp[c] * inv;
      });
    });
  }

  json get_config() const override {
    json c = this->base_config();
    c["pool_size"] = sizes_json(pool_);
    c["padding"] = padding();
    c["strides"] = sizes_json(strides_);
    c["data_format"] = "channels_last";
    return c;
  }

 protected:
  /// Keras 1 (pool_length, stride, border_mode), Keras 2 and Keras 3 configs.
  template <class L>
  static std::shared_ptr<Layer<T>> from_config_impl(const json& j, int rank, PoolKind kind) {
    Config c(j, config_where(j, cls(rank, kind)));
    c.require_channels_last();
    const size_t r = static_cast<size_t>(rank);
    std::vector<Index> pool(r, 2), st;
    std::string pk = c.pick({"pool_size", "pool_length"});
    if (!pk.empty()) pool = read_sizes(c, pk, r, pool);
    std::string sk = c.pick({"strides", "stride"});
    if (!sk.empty()) st = read_sizes(c, sk, r, {});
    std::string bk = c.pick({"padding", "border_mode"});
    std::string pad = bk.empty() ? "valid" : c.get_string(bk, "valid");
    std::shared_ptr<L> l;
    try {
      l = std::make_shared<L>(Dims(pool), st.empty() ? Dims(pool) : Dims(st), pad);
    } catch (const error& e) {
      rethrow_with_prefix(e, c.where());
    }
    apply_base_config(*l, c);
    return l;
  }

  static std::string cls(int rank, PoolKind kind) {
    return cat(kind == PoolKind::max ? "MaxPooling" : "AveragePooling", rank, "D");
  }
  Geom geom(const Tensor<T>& x) const {
    if (x.rank() != rank_ + 2)
      throw shape_error(cat(this->where(), ": expects inputs of rank ", rank_ + 2, ", got shape ", shape_str(x.shape())));
    const Geom g = rank_ == 2 ? make_geom(x.dim(0), x.dim(1), x.dim(2), x.dim(3), pool_[0], pool_[1], strides_[0], strides_[1],
                                          1, 1, pad_, pad_)
                              : make_geom(x.dim(0), 1, x.dim(1), x.dim(2), 1, pool_[0], 1, strides_[0], 1, 1, pad_,
                                          PadMode::valid);
    if (!window_fits(g)) throw_window_too_large(this->where(), g, pad_);
    return g;
  }

  int rank_;
  PoolKind kind_;
  std::vector<Index> pool_, strides_;
  PadMode pad_ = PadMode::valid;
};

/// Global pooling over every spatial axis.
template <class T>
class GlobalPoolingBase : public UnaryLayer<T> {
 public:
  bool parallel_rows(bool) const override { return true; }
  GlobalPoolingBase(int rank, PoolKind kind, bool keepdims, std::string name)
      : UnaryLayer<T>(std::move(name)), rank_(rank), kind_(kind), keepdims_(keepdims) {}
  std::string class_name() const override { return cls(rank_, kind_); }
  bool keepdims() const { return keepdims_; }

  Shape output_shape(const Shape& in) const override {
    const size_t want = static_cast<size_t>(rank_) + 2;
    if (in.size() != want)
      throw shape_error(cat(this->where(), ": expects inputs of rank ", want, ", got shape ", shape_str(in)));
    if (!keepdims_) return {in[0], in.back()};
    Shape o = in;
    for (size_t a = 1; a + 1 < o.size(); ++a) o[a] = 1;
    return o;
  }

  struct State : CallState {
    std::vector<Index> arg;
  };
  std::unique_ptr<CallState> make_state() const override { return std::make_unique<State>(); }

  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState* st, bool) override {
    check(x);
    const Index N = x.dim(0), C = x.shape().back(), S = x.size() / std::max<Index>(1, N * C);
    Shape& os = detail::shape_scratch();
    os = x.shape();
    if (keepdims_) {
      for (size_t a = 1; a + 1 < os.size(); ++a) os[a] = 1;
    } else {
      os.resize(2);
      os[1] = C;
    }
    y.resize(os);
    if (S == 0) throw shape_error(cat(this->where(), ": cannot pool an empty input of shape ", shape_str(x.shape())));
    const T* xd = x.data();
    T* yd = y.data();
    if (kind_ == PoolKind::avg) {
      const T inv = T(1) / static_cast<T>(S);
      for (Index n = 0; n < N; ++n) {
        T* yp = yd + n * C;
        std::fill(yp, yp + C, T(0));
        for (Index s = 0; s < S; ++s) {
          const T* xp = xd + (n * S + s) * C;
          GRAFT_SIMD
          for (Index c = 0; c < C; ++c) yp[c] += xp[c];
        }
        GRAFT_SIMD
        for (Index c = 0; c < C; ++c) yp[c] *= inv;
      }
    } else {
      auto& arg = static_cast<State*>(st)->arg;
      arg.resize(static_cast<size_t>(N * C));
      for (Index n = 0; n < N; ++n) {
        T* yp = yd + n * C;
        Index* ap = arg.data() + n * C;
        for (Index c = 0; c < C; ++c) {
          yp[c] = xd[n * S * C + c];
          ap[c] = n * S * C + c;
        }
        for (Index s = 1; s < S; ++s) {
          const Index base = (n * S + s) * C;
          for (Index c = 0; c < C; ++c)
            if (xd[base + c] > yp[c]) {
              yp[c] = xd[base + c];
              ap[c] = base + c;
            }
        }
      }
    }
  }

  void backward1(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx, CallState* st) override {
    if (!dx) return;
    const Index N = x.dim(0), C = x.shape().back(), S = x.size() / std::max<Index>(1, N * C);
    dx->resize(x.shape());
    T* d = dx->data();
    const T* g = dy.data();
    if (kind_ == PoolKind::avg) {
      const T inv = T(1) / static_cast<T>(S);
      for (Index n = 0; n < N; ++n)
        for (Index s = 0; s < S; ++s) {
          T* xp = d + (n * S + s) * C;
          for (Index c = 0; c < C; ++c) xp[c] = g[n * C + c] * inv;
        }
    } else {
      dx->set_zero();
      const auto& arg = static_cast<State*>(st)->arg;
      for (Index i = 0; i < N * C; ++i) d[arg[static_cast<size_t>(i)]] += g[i];
    }
  }

  json get_config() const override {
    json c = this->base_config();
    c["data_format"] = "channels_last";
    c["keepdims"] = keepdims_;
    return c;
  }

 protected:
  template <class L>
  static std::shared_ptr<Layer<T>> from_config_impl(const json& j, int rank, PoolKind kind) {
    Config c(j, config_where(j, cls(rank, kind)));
    c.require_channels_last();
    auto l = std::make_shared<L>(c.get_bool("keepdims", false));
    apply_base_config(*l, c);
    return l;
  }
  static std::string cls(int rank, PoolKind kind) {
    return cat(kind == PoolKind::max ? "GlobalMaxPooling" : "GlobalAveragePooling", rank, "D");
  }
  void check(const Tensor<T>& x) const {
    if (x.rank() != rank_ + 2)
      throw shape_error(cat(this->where(), ": expects inputs of rank ", rank_ + 2, ", got shape ", shape_str(x.shape())));
  }

  int rank_;
  PoolKind kind_;
  bool keepdims_;
};

}  // namespace detail

#define GRAFT_DEFINE_POOLING(NAME, RANK, KIND)                                                                       \
  template <class T = float>                                                                                         \
  class NAME : public detail::PoolingBase<T> {                                                                       \
   public:                                                                                                           \
    explicit NAME(const Dims& pool_size = 2, const Dims& strides = std::vector<Index>{},                              \
                  const std::string& padding = "valid", std::string name = {})                                       \
        : detail::PoolingBase<T>(RANK, KIND, pool_size, strides.v, padding, std::move(name)) {}                      \
    static std::shared_ptr<Layer<T>> from_config(const json& j) {                                                    \
      return detail::PoolingBase<T>::template from_config_impl<NAME>(j, RANK, KIND);                                 \
    }                                                                                                                \
  };

/// keras.layers.MaxPooling2D(pool_size=2, strides=pool_size, padding="valid")
GRAFT_DEFINE_POOLING(MaxPooling2D, 2, detail::PoolKind::max)
/// keras.layers.AveragePooling2D(pool_size=2, strides=pool_size, padding="valid")
GRAFT_DEFINE_POOLING(AveragePooling2D, 2, detail::PoolKind::avg)
/// keras.layers.MaxPooling1D(pool_size=2, strides=pool_size, padding="valid")
GRAFT_DEFINE_POOLING(MaxPooling1D, 1, detail::PoolKind::max)
/// keras.layers.AveragePooling1D(pool_size=2, strides=pool_size, padding="valid")
GRAFT_DEFINE_POOLING(AveragePooling1D, 1, detail::PoolKind::avg)
#undef GRAFT_DEFINE_POOLING

#define GRAFT_DEFINE_GLOBAL_POOLING(NAME, RANK, KIND)                                                 \
  template <class T = float>                                                                          \
  class NAME : public detail::GlobalPoolingBase<T> {                                                  \
   public:                                                                                            \
    explicit NAME(bool keepdims = false, std::string name = {})                                       \
        : detail::GlobalPoolingBase<T>(RANK, KIND, keepdims, std::move(name)) {}                      \
    static std::shared_ptr<Layer<T>> from_config(const json& j) {                                     \
      return detail::GlobalPoolingBase<T>::template from_config_impl<NAME>(j, RANK, KIND);            \
    }                                                                                                 \
  };

/// keras.layers.GlobalAveragePooling2D(keepdims=False)
GRAFT_DEFINE_GLOBAL_POOLING(GlobalAveragePooling2D, 2, detail::PoolKind::avg)
/// keras.layers.GlobalMaxPooling2D(keepdims=False)
GRAFT_DEFINE_GLOBAL_POOLING(GlobalMaxPooling2D, 2, detail::PoolKind::max)
/// keras.layers.GlobalAveragePooling1D(keepdims=False)
GRAFT_DEFINE_GLOBAL_POOLING(GlobalAveragePooling1D, 1, detail::PoolKind::avg)
/// keras.layers.GlobalMaxPooling1D(keepdims=False)
GRAFT_DEFINE_GLOBAL_POOLING(GlobalMaxPooling1D, 1, detail::PoolKind::max)
#undef GRAFT_DEFINE_GLOBAL_POOLING

}  // namespace graft
