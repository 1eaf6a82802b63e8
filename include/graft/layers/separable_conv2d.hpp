// graft — SeparableConv2D (channels_last): a depthwise convolution (strides, dilation and padding
// apply here) followed by a 1x1 pointwise convolution, then bias and activation.
// Weights (Keras order): depthwise_kernel [kh, kw, in, dm], pointwise_kernel [1, 1, in*dm, filters], bias [filters].
#pragma once

#include "graft/layers/conv_common.hpp"

namespace graft {

template <class T = float>
class SeparableConv2D : public UnaryLayer<T> {
 public:
  bool parallel_rows(bool) const override { return true; }
  explicit SeparableConv2D(Index filters, const Dims& kernel_size, const Dims& strides = 1,
                           const std::string& padding = "valid", Index depth_multiplier = 1,
                           const std::string& activation = "linear", bool use_bias = true, const Dims& dilation_rate = 1,
                           std::string name = {})
      : UnaryLayer<T>(std::move(name)), filters_(filters), dm_(depth_multiplier), use_bias_(use_bias) {
    if (filters <= 0) throw value_error(detail::cat("SeparableConv2D: filters must be positive, got ", filters));
    if (dm_ <= 0) throw value_error(detail::cat("SeparableConv2D: depth_multiplier must be positive, got ", dm_));
    kernel_ = kernel_size.expand(2, "kernel_size", "SeparableConv2D");
    strides_ = strides.expand(2, "strides", "SeparableConv2D");
    dilation_ = dilation_rate.expand(2, "dilation_rate", "SeparableConv2D");
    for (auto* v : {&kernel_, &strides_, &dilation_})
      for (Index x : *v)
        if (x <= 0) throw value_error("SeparableConv2D: kernel_size, strides and dilation_rate must be positive");
    pad_ = detail::parse_padding(padding, "SeparableConv2D", false);
    act_ = ActivationFn::from_name(activation, "SeparableConv2D");
  }
  std::string class_name() const override { return "SeparableConv2D"; }

  Initializer depthwise_initializer = Initializer::named("GlorotUniform");
  Initializer pointwise_initializer = Initializer::named("GlorotUniform");
  Initializer bias_initializer = Initializer::named("Zeros");
  Regularizer depthwise_regularizer, pointwise_regularizer, bias_regularizer;
  Constraint depthwise_constraint, pointwise_constraint, bias_constraint;

  Index filters() const { return filters_; }
  Index depth_multiplier() const { return dm_; }
  const std::vector<Index>& kernel_size() const { return kernel_; }
  const std::vector<Index>& strides() const { return strides_; }
  const std::vector<Index>& dilation_rate() const { return dilation_; }
  std::string padding() const { return detail::padding_name(pad_); }
  bool use_bias() const { return use_bias_; }
  const ActivationFn& activation() const { return act_; }
  void set_activation(const ActivationFn& a) { act_ = a; }
  Param<T>& depthwise_kernel() { return *dk_; }
  Param<T>& pointwise_kernel() { return *pk_; }
  Param<T>* bias() { return bias_p_; }

  Shape output_shape(const Shape& in) const override {
    if (in.size() != 4)
      throw shape_error(detail::cat(this->where(), ": expects inputs of rank 4 (batch, rows, cols, channels), got shape ",
                                    shape_str(in)));
    if (dk_ && in.back() >= 0 && in.back() != dk_->value.dim(2))
      throw shape_error(detail::cat(this->where(), ": expects inputs with ", dk_->value.dim(2), " channels, got shape ",
                                    shape_str(in)));
    Shape o = in;
    for (size_t a = 0; a < 2; ++a) {
      o[a + 1] = detail::conv_out_len(in[a + 1], kernel_[a], strides_[a], dilation_[a], pad_);
      if (o[a + 1] == 0)
        throw shape_error(detail::cat(this->where(), ": input shape ", shape_str(in), " is too small for kernel_size ",
                                      detail::sizes_json(kernel_).dump(), " and padding '", padding(), "'"));
    }
    o[3] = filters_;
    return o;
  }

  struct State : CallState {
    Tensor<T> mid, dmid;  // depthwise output and its gradient
    detail::ActStep<T> act;
    std::vector<T> scratch;  // per-thread partial depthwise-kernel gradients
  };
  std::unique_ptr<CallState> make_state() const override { return std::make_unique<State>(); }

  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState* st, bool) override {
    auto* s = static_cast<State*>(st);
    const detail::Geom g = geom(x);
    const Index CM = g.C * dm_;
    Shape& os = detail::shape_scratch();
    os = x.shape();
    os[1] = g.OH;
    os[2] = g.OW;
    os[3] = CM;
    s->mid.resize(os);
    detail::depthwise_forward(x.data(), g, dm_, dk_->value.data(), s->mid.data());
    os[3] = filters_;
    y.resize(os);
    gemm<T>(false, false, g.out_rows(), filters_, CM, T(1), s->mid.data(), CM, pk_->value.data(), filters_, T(0), y.data(),
            filters_);
    if (use_bias_) add_row_vector(y.data(), g.out_rows(), filters_, filters_, bias_p_->value.data());
    s->act.forward(act_, y);
  }

  void backward1(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>* dx, CallState* st) override {
    auto* s = static_cast<State*>(st);
    const detail::Geom g = geom(x);
    const Index CM = g.C * dm_, F = filters_, R = g.out_rows();
    const T* dz = s->act.backward(act_, y, dy);
    const bool tr = this->trainable();
    if (tr && use_bias_ && bias_p_->trainable) {
      bool ow = bias_p_->begin_grad();
      column_sums(dz, R, F, F, bias_p_->grad.data(), !ow);
    }
    if (tr && pk_->trainable) {
      bool ow = pk_->begin_grad();
      gemm<T>(true, false, CM, F, R, T(1), s->mid.data(), CM, dz, F, ow ? T(0) : T(1), pk_->grad.data(), F);
    }
    const bool dkg = tr && dk_->trainable;
    if (!dkg && !dx) return;
    s->dmid.resize(s->mid.shape());
    gemm<T>(false, true, R, CM, F, T(1), dz, F, pk_->value.data(), F, T(0), s->dmid.data(), CM);
    T* dkp = nullptr;
    bool ow_k = false;
    if (dkg) {
      ow_k = dk_->begin_grad();
      dkp = dk_->grad.data();
    }
    if (dx) dx->resize(x.shape());
    detail::depthwise_backward(x.data(), g, dm_, dk_->value.data(), s->dmid.data(), dkp, ow_k, dx ? dx->data() : nullptr,
                               s->scratch);
  }

  json get_config() const override {
    json c = this->base_config();
    c["filters"] = filters_;
    c["kernel_size"] = detail::sizes_json(kernel_);
    c["strides"] = detail::sizes_json(strides_);
    c["padding"] = padding();
    c["data_format"] = "channels_last";
    c["dilation_rate"] = detail::sizes_json(dilation_);
    c["depth_multiplier"] = dm_;
    c["activation"] = act_.name();
    c["use_bias"] = use_bias_;
    c["depthwise_initializer"] = depthwise_initializer.to_json();
    c["pointwise_initializer"] = pointwise_initializer.to_json();
    c["bias_initializer"] = bias_initializer.to_json();
    c["depthwise_regularizer"] = depthwise_regularizer.to_json();
    c["pointwise_regularizer"] = pointwise_regularizer.to_json();
    c["bias_regularizer"] = bias_regularizer.to_json();
    c["activity_regularizer"] = nullptr;
    c["depthwise_constraint"] = depthwise_constraint.to_json();
    c["pointwise_constraint"] = pointwise_constraint.to_json();
    c["bias_constraint"] = bias_constraint.to_json();
    return c;
  }

  /// Keras 1 (SeparableConvolution2D: nb_filter, nb_row, nb_col, border_mode, subsample, bias),
  /// Keras 2 and Keras 3 configs.
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "SeparableConv2D"));
    c.require_channels_last();
    detail::reject_set_options(c);
    std::string fk = c.pick({"filters", "nb_filter"});
    if (fk.empty()) throw format_error(detail::cat(c.where(), ": config has no 'filters'"));
    std::vector<Index> ks;
    if (c.has("kernel_size")) ks = detail::read_sizes(c, "kernel_size", 2, {});
    else if (c.has("nb_row") && c.has("nb_col"))
      ks = {c.req_size("nb_row"), c.req_size("nb_col")};
    else
      throw format_error(detail::cat(c.where(), ": config has no 'kernel_size'"));
    auto st = detail::read_sizes(c, c.has("strides") ? "strides" : "subsample", 2, {1, 1});
    auto dil = detail::read_sizes(c, "dilation_rate", 2, {1, 1});
    std::string pk = c.pick({"padding", "border_mode"});
    std::string pad = pk.empty() ? "valid" : c.get_string(pk, "valid");
    Index dm = c.get_size("depth_multiplier", 1);
    bool use_bias = c.get_bool(c.has("use_bias") ? "use_bias" : "bias", true);
    std::shared_ptr<SeparableConv2D> l;
    try {
      l = std::make_shared<SeparableConv2D>(c.req_size(fk), Dims(ks), Dims(st), pad, dm, "linear", use_bias,
                                            Dims(dil));
    } catch (const error& e) {
      rethrow_with_prefix(e, c.where());
    }
    apply_base_config(*l, c);
    if (c.has("activation")) l->act_ = ActivationFn::from_json(c.raw()["activation"], c.where());
    detail::read_initializer(c, {"depthwise_initializer", "init"}, l->depthwise_initializer);
    detail::read_initializer(c, {"pointwise_initializer", "init"}, l->pointwise_initializer);
    detail::read_initializer(c, {"bias_initializer"}, l->bias_initializer);
    detail::read_regularizer(c, {"depthwise_regularizer"}, l->depthwise_regularizer);
    detail::read_regularizer(c, {"pointwise_regularizer"}, l->pointwise_regularizer);
    detail::read_regularizer(c, {"bias_regularizer", "b_regularizer"}, l->bias_regularizer);
    detail::read_constraint(c, {"depthwise_constraint"}, l->depthwise_constraint);
    detail::read_constraint(c, {"pointwise_constraint"}, l->pointwise_constraint);
    detail::read_constraint(c, {"bias_constraint", "b_constraint"}, l->bias_constraint);
    return l;
  }

 protected:
  void build_impl(const std::vector<Shape>& in) override {
    this->expect_inputs(in, 1);
    const Shape& s = in[0];
    if (s.size() != 4) throw shape_error(detail::cat(this->where(), ": expects inputs of rank 4, got shape ", shape_str(s)));
    if (s.back() < 0) throw shape_error(detail::cat(this->where(), ": the channel dimension must be known, got ", shape_str(s)));
    const Index C = s.back();
    dk_ = &this->add_weight("depthwise_kernel", {kernel_[0], kernel_[1], C, dm_}, depthwise_initializer, true,
                            depthwise_regularizer, depthwise_constraint);
    pk_ = &this->add_weight("pointwise_kernel", {1, 1, C * dm_, filters_}, pointwise_initializer, true, pointwise_regularizer,
                            pointwise_constraint);
    if (use_bias_) bias_p_ = &this->add_weight("bias", {filters_}, bias_initializer, true, bias_regularizer, bias_constraint);
  }

 private:
  detail::Geom geom(const Tensor<T>& x) const {
    const Index C = dk_->value.dim(2);
    if (x.rank() != 4 || x.dim(3) != C)
      throw shape_error(detail::cat(this->where(), ": expects inputs of shape (batch, rows, cols, ", C, "), got ",
                                    shape_str(x.shape())));
    const detail::Geom g = detail::make_geom(x.dim(0), x.dim(1), x.dim(2), C, kernel_[0], kernel_[1], strides_[0],
                                             strides_[1], dilation_[0], dilation_[1], pad_, pad_);
    if (!detail::window_fits(g)) detail::throw_window_too_large(this->where(), g, pad_);
    return g;
  }

  Index filters_, dm_;
  std::vector<Index> kernel_, strides_, dilation_;
  detail::PadMode pad_ = detail::PadMode::valid;
  ActivationFn act_;
  bool use_bias_;
  Param<T>* dk_ = nullptr;
  Param<T>* pk_ = nullptr;
  Param<T>* bias_p_ = nullptr;
};

}  // namespace graft
