// graft — Conv2D and Conv1D (channels_last). Kernel in Keras layout [kh, kw, in, out] ([k, in, out]
// for Conv1D), so im2col(x) [rows, kh*kw*in] times the kernel viewed as [kh*kw*in, out] is a GEMM
// with no transposes. Padding valid / same (TF rule: the odd cell goes after) / causal (Conv1D).
#pragma once

#include "graft/layers/conv_common.hpp"

namespace graft {

namespace detail {

/// Convolution over 1 or 2 spatial axes; Conv1D runs as a 2-D convolution with H = 1.
template <class T>
class ConvBase : public UnaryLayer<T> {
 public:
  bool parallel_rows(bool) const override { return true; }
  ConvBase(int rank, Index filters, const Dims& kernel_size, const Dims& strides, const std::string& padding,
           const std::string& activation, bool use_bias, const Dims& dilation_rate, std::string name)
      : UnaryLayer<T>(std::move(name)), rank_(rank), filters_(filters), use_bias_(use_bias) {
    const std::string who = rank == 2 ? "Conv2D" : "Conv1D";
    if (filters <= 0) throw value_error(cat(who, ": filters must be positive, got ", filters));
    kernel_ = kernel_size.expand(static_cast<size_t>(rank), "kernel_size", who);
    strides_ = strides.expand(static_cast<size_t>(rank), "strides", who);
    dilation_ = dilation_rate.expand(static_cast<size_t>(rank), "dilation_rate", who);
    for (auto* v : {&kernel_, &strides_, &dilation_})
      for (Index x : *v)
        if (x <= 0) throw value_error(cat(who, ": kernel_size, strides and dilation_rate must be positive"));
    pad_ = parse_padding(padding, who, rank == 1);
    act_ = ActivationFn::from_name(activation, who);
  }

  Initializer kernel_initializer = Initializer::named("GlorotUniform");
  Initializer bias_initializer = Initializer::named("Zeros");
  Regularizer kernel_regularizer, bias_regularizer;
  Constraint kernel_constraint, bias_constraint;

  Index filters() const { return filters_; }
  const std::vector<Index>& kernel_size() const { return kernel_; }
  const std::vector<Index>& strides() const { return strides_; }
  const std::vector<Index>& dilation_rate() const { return dilation_; }
  std::string padding() const { return padding_name(pad_); }
  bool use_bias() const { return use_bias_; }
  const ActivationFn& activation() const { return act_; }
  void set_activation(const ActivationFn& a) { act_ = a; }
  Param<T>& kernel() { return *kernel_p_; }
  Param<T>* bias() { return bias_p_; }

  Shape output_shape(const Shape& in) const override {
    const size_t want = static_cast<size_t>(rank_) + 2;
    if (in.size() != want)
      throw shape_error(cat(this->where(), ": expects inputs of rank ", want, " (batch, ", rank_ == 2 ? "rows, cols, " : "steps, ",
                            "channels), got shape ", shape_str(in)));
    if (kernel_p_ && in.back() >= 0 && in.back() != in_channels())
      throw shape_error(cat(this->where(), ": expects inputs with ", in_channels(), " channels, got shape ", shape_str(in)));
    Shape o = in;
    for (int a = 0; a < rank_; ++a) {
      const size_t ax = static_cast<size_t>(a) + 1;
      o[ax] = conv_out_len(in[ax], kernel_[static_cast<size_t>(a)], strides_[static_cast<size_t>(a)],
                           dilation_[static_cast<size_t>(a)], pad_);
      if (o[ax] == 0)
        throw shape_error(cat(this->where(), ": input shape ", shape_str(in), " is too small for kernel_size ",
                              sizes_json(kernel_).dump(), " with dilation_rate ", sizes_json(dilation_).dump(),
                              " and padding '", padding_name(pad_), "'"));
    }
    o.back() = filters_;
    return o;
  }

  struct State : CallState {
    Tensor<T> col;
    std::vector<T> bias_parts;  // backward: the bias gradient of each group of samples
    std::vector<T> wt;          // backward: the kernel transposed, [filters, kh*kw*in]
    Shape cshape;
    ActStep<T> act;
    const T* col_of = nullptr;  // input whose whole-batch im2col sits in `col`
  };
  std::unique_ptr<CallState> make_state() const override { return std::make_unique<State>(); }

  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState* st, bool training) override {
    auto* s = static_cast<State*>(st);
    const Geom g = geom(x);
    const Index F = filters_, K = g.K();
    Shape& os = detail::shape_scratch();
    os = x.shape();
    if (rank_ == 2) {
      os[1] = g.OH;
      os[2] = g.OW;
    } else {
      os[1] = g.OW;
    }
    os.back() = F;
    y.resize(os);
    const T* w = kernel_p_->value.data();
    const T* bias = use_bias_ ? bias_p_->value.data() : nullptr;
    s->col_of = nullptr;
    // Groups of samples, each done whole on one thread (im2col, product, bias, activation)
    // while its rows are still in that core's cache. The group size depends on the geometry
    // only, so results do not depend on the thread count.
    const Index per = g.OH * g.OW, group = forward_group(g, F), groups = (g.N + group - 1) / group;
    // training keeps the whole batch's im2col for the backward pass when it fits the budget
    const bool keep = training && !g.pointwise() && chunk(g) >= g.N;
    if (keep) resize2(s->col, s->cshape, g.N * per, K);
    s->act.prepare(act_, y);
    const double flops = static_cast<double>(g.N * per) * static_cast<double>(K * F);
    parallel_for(0, groups, groups > 1 && flops > 1e6, [&](Index t) {
      const Index n0 = t * group, n1 = std::min(g.N, n0 + group), rows = (n1 - n0) * per;
      const T* a = x.data() + n0 * per * K;  // pointwise: the input rows themselves
      if (!g.pointwise()) {
        T* col = keep ? s->col.data() + n0 * per * K : thread_scratch<T>(rows * K);
        im2col(x.data(), g, n0, n1, col);
        a = col;
      }
      T* yc = y.data() + n0 * per * F;
      gemm<T>(false, false, rows, F, K, T(1), a, K, w, F, T(0), yc, F);
      if (bias) add_row_vector(yc, rows, F, F, bias);
      s->act.forward_range(act_, y, n0 * per * F, n1 * per * F);
    });
    if (keep) s->col_of = x.data();
  }

  bool set_output_epilogue(CallState* st, typename Layer<T>::Epilogue post) override {
    static_cast<State*>(st)->act.post = std::move(post);
    return true;
  }

  void backward1(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>* dx, CallState* st) override {
    auto* s = static_cast<State*>(st);
    const Geom g = geom(x);
    const Index F = filters_, K = g.K(), per = g.OH * g.OW;
    const bool wgrad = this->trainable() && kernel_p_->trainable;
    const bool bgrad = this->trainable() && use_bias_ && bias_p_->trainable;
    const T* w = kernel_p_->value.data();
    // Pass 1, groups of whole samples in parallel: the activation's derivative, then the input
    // gradient, dcol = dz * kernel^T in blocks of output cells small enough to stay in the
    // core's cache, each scattered into dx (col2im) at once. No two groups write the same dx,
    // and the groups depend on the shapes only: the same sums on any thread count.
    const T* dz = s->act.prepare_backward(act_, y, dy);
    if (dx) dx->resize(x.shape());
    // dcol = dz * kernel^T reads the kernel transposed: transpose it once here, rather than
    // have every block's product pack it again
    const T* wt = nullptr;
    if (dx) {
      s->wt.resize(static_cast<size_t>(K * F));
      for (Index k = 0; k < K; ++k)
        for (Index f = 0; f < F; ++f) s->wt[static_cast<size_t>(f * K + k)] = w[k * F + f];
      wt = s->wt.data();
    }
    if (!act_.is_linear() || dx || bgrad) {
      const Index cap = std::max<Index>(1, cell_block(g)), group = std::max<Index>(1, cap / std::max<Index>(1, per));
      const Index groups = (g.N + group - 1) / group, in_per = g.H * g.W * g.C;
      const double work = static_cast<double>(g.N * per) * static_cast<double>(dx ? K * F : F);
      if (bgrad) s->bias_parts.resize(static_cast<size_t>(groups * F));
      parallel_for(0, groups, groups > 1 && work > 2 * kMinWorkPerThread, [&](Index t) {
        const Index n0 = t * group, n1 = std::min(g.N, n0 + group);
        s->act.backward_range(act_, y, dy, n0 * per * F, n1 * per * F);
        if (bgrad) column_sums(dz + n0 * per * F, (n1 - n0) * per, F, F, s->bias_parts.data() + t * F, false);
        if (!dx) return;
        if (g.pointwise()) {  // dx rows are the dcol rows
          gemm<T>(false, false, (n1 - n0) * per, K, F, T(1), dz + n0 * per * F, F, wt, K, T(0), dx->data() + n0 * per * K, K);
          return;
        }
        std::fill(dx->data() + n0 * in_per, dx->data() + n1 * in_per, T(0));
        T* dcol = thread_scratch<T>(std::min(cap, (n1 - n0) * per) * K);
        for (Index q0 = n0 * per, end = n1 * per; q0 < end; q0 += cap) {
          const Index rows = std::min(cap, end - q0);
          gemm<T>(false, false, rows, K, F, T(1), dz + q0 * F, F, wt, K, T(0), dcol, K);
          col2im_add_cells(dcol, g, q0, q0 + rows, dx->data());
        }
      });
    }
    if (bgrad) {  // the groups' partial sums, added in group order
      bool ow = bias_p_->begin_grad();
      const Index groups = static_cast<Index>(s->bias_parts.size()) / F;
      column_sums(s->bias_parts.data(), groups, F, F, bias_p_->grad.data(), !ow);
    }
    if (!wgrad) return;
    // Pass 2: the kernel gradient, one product over the whole batch (its depth is the batch's
    // output cells), on the im2col kept by the forward pass or rebuilt in chunks.
    const bool ow_k = kernel_p_->begin_grad();
    if (g.pointwise()) {
      gemm<T>(true, false, K, F, g.out_rows(), T(1), x.data(), K, dz, F, ow_k ? T(0) : T(1), kernel_p_->grad.data(), F);
      return;
    }
    const Index cs = chunk(g);
    for (Index n0 = 0; n0 < g.N; n0 += cs) {
      const Index n1 = std::min(g.N, n0 + cs);
      const Index rows = (n1 - n0) * per;
      if (!(cs >= g.N && s->col_of == x.data() && s->col.size() == rows * K)) {
        resize2(s->col, s->cshape, rows, K);
        im2col(x.data(), g, n0, n1, s->col.data());
      }
      gemm<T>(true, false, K, F, rows, T(1), s->col.data(), K, dz + n0 * per * F, F, (n0 == 0 && ow_k) ? T(0) : T(1),
              kernel_p_->grad.data(), F);
    }
  }

  json get_config() const override {
    json c = this->base_config();
    c["filters"] = filters_;
    c["kernel_size"] = sizes_json(kernel_);
    c["strides"] = sizes_json(strides_);
    c["padding"] = padding_name(pad_);
    c["data_format"] = "channels_last";
    c["dilation_rate"] = sizes_json(dilation_);
    c["groups"] = 1;
    c["activation"] = act_.name();
    c["use_bias"] = use_bias_;
    c["kernel_initializer"] = kernel_initializer.to_json();
    c["bias_initializer"] = bias_initializer.to_json();
    c["kernel_regularizer"] = kernel_regularizer.to_json();
    c["bias_regularizer"] = bias_regularizer.to_json();
    c["activity_regularizer"] = nullptr;
    c["kernel_constraint"] = kernel_constraint.to_json();
    c["bias_constraint"] = bias_constraint.to_json();
    return c;
  }

  /// Budget for one im2col block (elements); the batch is processed in chunks that fit.
  static constexpr Index col_budget = Index(1) << 22;

 protected:
  /// Keras 1 (Convolution1D/2D, AtrousConvolution2D), Keras 2 and Keras 3 configs.
  template <class L>
  static std::shared_ptr<L> from_config_rank(const json& j, int rank, const std::string& cls) {
    Config c(j, config_where(j, cls));
    c.require_channels_last();
    reject_set_options(c);
    const size_t r = static_cast<size_t>(rank);
    std::string fk = c.pick({"filters", "nb_filter"});
    if (fk.empty()) throw format_error(cat(c.where(), ": config has no 'filters'"));
    const Index filters = c.req_size(fk);
    std::vector<Index> ks;
    if (c.has("kernel_size")) ks = read_sizes(c, "kernel_size", r, {});
    else if (rank == 2 && c.has("nb_row") && c.has("nb_col"))
      ks = {c.req_size("nb_row"), c.req_size("nb_col")};
    else if (rank == 1 && c.has("filter_length"))
      ks = {c.req_size("filter_length")};
    else
      throw format_error(cat(c.where(), ": config has no 'kernel_size'"));
    std::vector<Index> st(r, 1), dil(r, 1);
    if (c.has("strides")) st = read_sizes(c, "strides", r, st);
    else if (rank == 2 && c.has("subsample")) st = read_sizes(c, "subsample", r, st);
    else if (rank == 1 && c.has("subsample_length")) st = read_sizes(c, "subsample_length", r, st);
    std::string dk = c.pick({"dilation_rate", "atrous_rate"});
    if (!dk.empty()) dil = read_sizes(c, dk, r, dil);
    std::string pk = c.pick({"padding", "border_mode"});
    std::string pad = pk.empty() ? "valid" : c.get_string(pk, "valid");
    if (c.get_int("groups", 1) != 1)
      throw unsupported_error(cat(c.where(), ": grouped convolution (groups=", c.get_int("groups", 1), ") is not supported"));
    bool use_bias = c.get_bool(c.has("use_bias") ? "use_bias" : "bias", true);
    std::shared_ptr<L> l;
    try {
      l = std::make_shared<L>(filters, Dims(ks), Dims(st), pad, "linear", use_bias, Dims(dil));
    } catch (const error& e) {
      rethrow_with_prefix(e, c.where());
    }
    apply_base_config(*l, c);
    if (c.has("activation")) l->act_ = ActivationFn::from_json(c.raw()["activation"], c.where());
    read_initializer(c, {"kernel_initializer", "init"}, l->kernel_initializer);
    read_initializer(c, {"bias_initializer"}, l->bias_initializer);
    read_regularizer(c, {"kernel_regularizer", "W_regularizer"}, l->kernel_regularizer);
    read_regularizer(c, {"bias_regularizer", "b_regularizer"}, l->bias_regularizer);
    read_constraint(c, {"kernel_constraint", "W_constraint"}, l->kernel_constraint);
    read_constraint(c, {"bias_constraint", "b_constraint"}, l->bias_constraint);
    return l;
  }

  void build_impl(const std::vector<Shape>& in) override {
    this->expect_inputs(in, 1);
    const Shape& s = in[0];
    if (s.size() != static_cast<size_t>(rank_) + 2)
      throw shape_error(cat(this->where(), ": expects inputs of rank ", rank_ + 2, ", got shape ", shape_str(s)));
    if (s.back() < 0)
      throw shape_error(cat(this->where(), ": the channel dimension must be known, got ", shape_str(s)));
    Shape ks(kernel_.begin(), kernel_.end());
    ks.push_back(s.back());
    ks.push_back(filters_);
    kernel_p_ = &this->add_weight("kernel", ks, kernel_initializer, true, kernel_regularizer, kernel_constraint);
    if (use_bias_)
      bias_p_ = &this->add_weight("bias", {filters_}, bias_initializer, true, bias_regularizer, bias_constraint);
  }

  Index in_channels() const { return kernel_p_->value.shape()[static_cast<size_t>(rank_)]; }

  Geom geom(const Tensor<T>& x) const {
    if (x.rank() != rank_ + 2 || x.shape().back() != in_channels())
      throw shape_error(cat(this->where(), ": expects inputs of shape ", rank_ == 2 ? "(batch, rows, cols, " : "(batch, steps, ",
                            in_channels(), "), got ", shape_str(x.shape())));
    const Geom g = rank_ == 2 ? make_geom(x.dim(0), x.dim(1), x.dim(2), x.dim(3), kernel_[0], kernel_[1], strides_[0],
                                          strides_[1], dilation_[0], dilation_[1], pad_, pad_)
                              : make_geom(x.dim(0), 1, x.dim(1), x.dim(2), 1, kernel_[0], 1, strides_[0], 1, dilation_[0], pad_,
                                          PadMode::valid);
    if (!window_fits(g)) throw_window_too_large(this->where(), g, pad_);
    return g;
  }
  /// Samples per group in the forward pass: about 64 Ki elements of im2col and output each.
  static Index forward_group(const Geom& g, Index F) {
    const Index per = std::max<Index>(1, g.OH * g.OW * (g.K() + F));
    return std::max<Index>(1, std::min(g.N, (Index(1) << 17) / per));
  }
  /// Output cells per block of the input gradient's dcol (about 32 Ki values: it stays in the
  /// core's cache between the product that writes it and the scatter that reads it).
  static Index cell_block(const Geom& g) { return (Index(1) << 15) / std::max<Index>(1, g.K()); }
  static Index chunk(const Geom& g) {
    const Index per = std::max<Index>(1, g.OH * g.OW * g.K());
    return std::max<Index>(1, std::min(g.N, col_budget / per));
  }

  int rank_;
  Index filters_;
  std::vector<Index> kernel_, strides_, dilation_;
  PadMode pad_ = PadMode::valid;
  ActivationFn act_;
  bool use_bias_;
  Param<T>* kernel_p_ = nullptr;
  Param<T>* bias_p_ = nullptr;
};

}  // namespace detail

/// keras.layers.Conv2D(filters, kernel_size, strides, padding, activation, use_bias, dilation_rate).
template <class T = float>
class Conv2D : public detail::ConvBase<T> {
 public:
  explicit Conv2D(Index filters, const Dims& kernel_size, const Dims& strides = 1, const std::string& padding = "valid",
                  const std::string& activation = "linear", bool use_bias = true, const Dims& dilation_rate = 1,
                  std::string name = {})
      : detail::ConvBase<T>(2, filters, kernel_size, strides, padding, activation, use_bias, dilation_rate, std::move(name)) {}
  std::string class_name() const override { return "Conv2D"; }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    return detail::ConvBase<T>::template from_config_rank<Conv2D>(j, 2, "Conv2D");
  }
};

/// keras.layers.Conv1D(filters, kernel_size, strides, padding valid/same/causal, activation, use_bias,
/// dilation_rate); inputs (batch, steps, channels), kernel [k, in, out].
template <class T = float>
class Conv1D : public detail::ConvBase<T> {
 public:
  explicit Conv1D(Index filters, const Dims& kernel_size, const Dims& strides = 1, const std::string& padding = "valid",
                  const std::string& activation = "linear", bool use_bias = true, const Dims& dilation_rate = 1,
                  std::string name = {})
      : detail::ConvBase<T>(1, filters, kernel_size, strides, padding, activation, use_bias, dilation_rate, std::move(name)) {}
  std::string class_name() const override { return "Conv1D"; }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    return detail::ConvBase<T>::template from_config_rank<Conv1D>(j, 1, "Conv1D");
  }
};

}  // namespace graft
