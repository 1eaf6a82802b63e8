// graft — DepthwiseConv2D (channels_last): every input channel c is convolved with its own
// depth_multiplier filters; output channel c * depth_multiplier + m. Kernel [kh, kw, in, dm]
// (Keras 3 name "kernel"; TF-Keras calls it "depthwise_kernel"), bias [in * dm].
#pragma once

#include "graft/layers/conv_common.hpp"

namespace graft {

template <class T = float>
class DepthwiseConv2D : public UnaryLayer<T> {
 public:
  bool parallel_rows(bool) const override { return true; }
  explicit DepthwiseConv2D(const Dims& kernel_size, const Dims& strides = 1, const std::string& padding = "valid",
                           Index depth_multiplier = 1, const std::string& activation = "linear", bool use_bias = true,
                           const Dims& dilation_rate = 1, std::string name = {})
      : UnaryLayer<T>(std::move(name)), dm_(depth_multiplier), use_bias_(use_bias) {
    kernel_ = kernel_size.expand(2, "kernel_size", "DepthwiseConv2D");
    strides_ = strides.expand(2, "strides", "DepthwiseConv2D");
    dilation_ = dilation_rate.expand(2, "dilation_rate", "DepthwiseConv2D");
    for (auto* v : {&kernel_, &strides_, &dilation_})
      for (Index x : *v)
        if (x <= 0) throw value_error("DepthwiseConv2D: kernel_size, strides and dilation_rate must be positive");
    if (dm_ <= 0) throw value_error(detail::cat("DepthwiseConv2D: depth_multiplier must be positive, got ", dm_));
    pad_ = detail::parse_padding(padding, "DepthwiseConv2D", false);
    act_ = ActivationFn::from_name(activation, "DepthwiseConv2D");
  }
  std::string class_name() const override { return "DepthwiseConv2D"; }

  Initializer depthwise_initializer = Initializer::named("GlorotUniform");
  Initializer bias_initializer = Initializer::named("Zeros");
  Regularizer depthwise_regularizer, bias_regularizer;
  Constraint depthwise_constraint, bias_constraint;

  Index depth_multiplier() const { return dm_; }
  const std::vector<Index>& kernel_size() const { return kernel_; }
  const std::vector<Index>& strides() const { return strides_; }
  const std::vector<Index>& dilation_rate() const { return dilation_; }
  std::string padding() const { return detail::padding_name(pad_); }
  bool use_bias() const { return use_bias_; }
  const ActivationFn& activation() const { return act_; }
  void set_activation(const ActivationFn& a) { act_ = a; }
  Param<T>& kernel() { return *kernel_p_; }
  Param<T>* bias() { return bias_p_; }

  Shape output_shape(const Shape& in) const override {
    if (in.size() != 4)
      throw shape_error(detail::cat(this->where(), ": expects inputs of rank 4 (batch, rows, cols, channels), got shape ",
                                    shape_str(in)));
    if (kernel_p_ && in.back() >= 0 && in.back() != kernel_p_->value.dim(2))
      throw shape_error(detail::cat(this->where(), ": expects inputs with ", kernel_p_->value.dim(2), " channels, got shape ",
                                    shape_str(in)));
    Shape o = in;
    for (size_t a = 0; a < 2; ++a) {
      o[a + 1] = detail::conv_out_len(in[a + 1], kernel_[a], strides_[a], dilation_[a], pad_);
      if (o[a + 1] == 0)
        throw shape_error(detail::cat(this->where(), ": input shape ", shape_str(in), " is too small for kernel_size ",
                                      detail::sizes_json(kernel_).dump(), " and padding '", padding(), "'"));
    }
    o[3] = in[3] < 0 ? -1 : in[3] * dm_;
    return o;
  }

  struct State : CallState {
    detail::ActStep<T> act;
    std::vector<T> scratch;  // per-thread partial kernel gradients
  };
  std::unique_ptr<CallState> make_state() const override { return std::make_unique<State>(); }

  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState* st, bool) override {
    const detail::Geom g = geom(x);
    const Index CO = g.C * dm_;
    Shape& os = detail::shape_scratch();
    os = x.shape();
    os[1] = g.OH;
    os[2] = g.OW;
    os[3] = CO;
    y.resize(os);
    // bias, activation and any fused inference epilogue on each output row as soon as it is done
    auto& act = static_cast<State*>(st)->act;
    act.prepare(act_, y);
    const T* bias = use_bias_ ? bias_p_->value.data() : nullptr;
    const Index row = g.OW * CO;
    detail::depthwise_forward(x.data(), g, dm_, kernel_p_->value.data(), y.data(), [&](Index t) {
      if (bias) add_row_vector(y.data() + t * row, g.OW, CO, CO, bias);
      act.forward_range(act_, y, t * row, (t + 1) * row);
    });
  }

  bool set_output_epilogue(CallState* st, typename Layer<T>::Epilogue post) override {
    static_cast<State*>(st)->act.post = std::move(post);
    return true;
  }

  void backward1(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>* dx, CallState* st) override {
    const detail::Geom g = geom(x);
    const Index CO = g.C * dm_;
    auto* s = static_cast<State*>(st);
    const T* dz = s->act.backward(act_, y, dy);
    if (this->trainable() && use_bias_ && bias_p_->trainable) {
      bool ow = bias_p_->begin_grad();
      column_sums(dz, g.out_rows(), CO, CO, bias_p_->grad.data(), !ow);
    }
    T* dk = nullptr;
    bool ow_k = false;
    if (this->trainable() && kernel_p_->trainable) {
      ow_k = kernel_p_->begin_grad();
      dk = kernel_p_->grad.data();
    }
    if (dx) dx->resize(x.shape());
    detail::depthwise_backward(x.data(), g, dm_, kernel_p_->value.data(), dz, dk, ow_k, dx ? dx->data() : nullptr, s->scratch);
  }

  json get_config() const override {
    json c = this->base_config();
    c["kernel_size"] = detail::sizes_json(kernel_);
    c["strides"] = detail::sizes_json(strides_);
    c["padding"] = padding();
    c["depth_multiplier"] = dm_;
    c["data_format"] = "channels_last";
    c["dilation_rate"] = detail::sizes_json(dilation_);
    c["activation"] = act_.name();
    c["use_bias"] = use_bias_;
    c["depthwise_initializer"] = depthwise_initializer.to_json();
    c["bias_initializer"] = bias_initializer.to_json();
    c["depthwise_regularizer"] = depthwise_regularizer.to_json();
    c["bias_regularizer"] = bias_regularizer.to_json();
    c["activity_regularizer"] = nullptr;
    c["depthwise_constraint"] = depthwise_constraint.to_json();
    c["bias_constraint"] = bias_constraint.to_json();
    // no "groups": Keras 3 rejects it for this class
    return c;
  }

  /// TF-Keras 2 and Keras 3 configs (TF-Keras writes groups: 1, and may carry kernel_* keys).
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "DepthwiseConv2D"));
    c.require_channels_last();
    detail::reject_set_options(c);
    if (!c.has("kernel_size")) throw format_error(detail::cat(c.where(), ": config has no 'kernel_size'"));
    auto ks = detail::read_sizes(c, "kernel_size", 2, {});
    auto st = detail::read_sizes(c, c.has("strides") ? "strides" : "subsample", 2, {1, 1});
    auto dil = detail::read_sizes(c, "dilation_rate", 2, {1, 1});
    std::string pk = c.pick({"padding", "border_mode"});
    std::string pad = pk.empty() ? "valid" : c.get_string(pk, "valid");
    if (c.get_int("groups", 1) != 1)
      throw unsupported_error(detail::cat(c.where(), ": groups=", c.get_int("groups", 1), " is not supported"));
    Index dm = c.get_size("depth_multiplier", 1);
    bool use_bias = c.get_bool(c.has("use_bias") ? "use_bias" : "bias", true);
    std::shared_ptr<DepthwiseConv2D> l;
    try {
      l = std::make_shared<DepthwiseConv2D>(Dims(ks), Dims(st), pad, dm, "linear", use_bias, Dims(dil));
    } catch (const error& e) {
      rethrow_with_prefix(e, c.where());
    }
    apply_base_config(*l, c);
    if (c.has("activation")) l->act_ = ActivationFn::from_json(c.raw()["activation"], c.where());
    detail::read_initializer(c, {"depthwise_initializer", "kernel_initializer", "init"}, l->depthwise_initializer);
    detail::read_initializer(c, {"bias_initializer"}, l->bias_initializer);
    detail::read_regularizer(c, {"depthwise_regularizer", "kernel_regularizer"}, l->depthwise_regularizer);
    detail::read_regularizer(c, {"bias_regularizer", "b_regularizer"}, l->bias_regularizer);
    detail::read_constraint(c, {"depthwise_constraint", "kernel_constraint"}, l->depthwise_constraint);
    detail::read_constraint(c, {"bias_constraint", "b_constraint"}, l->bias_constraint);
    return l;
  }

 protected:
  void build_impl(const std::vector<Shape>& in) override {
    this->expect_inputs(in, 1);
    const Shape& s = in[0];
    if (s.size() != 4) throw shape_error(detail::cat(this->where(), ": expects inputs of rank 4, got shape ", shape_str(s)));
    if (s.back() < 0) throw shape_error(detail::cat(this->where(), ": the channel dimension must be known, got ", shape_str(s)));
    kernel_p_ = &this->add_weight("kernel", {kernel_[0], kernel_[1], s.back(), dm_}, depthwise_initializer, true,
                                  depthwise_regularizer, depthwise_constraint);
    if (use_bias_)
      bias_p_ = &this->add_weight("bias", {s.back() * dm_}, bias_initializer, true, bias_regularizer, bias_constraint);
  }

 private:
  detail::Geom geom(const Tensor<T>& x) const {
    const Index C = kernel_p_->value.dim(2);
    if (x.rank() != 4 || x.dim(3) != C)
      throw shape_error(detail::cat(this->where(), ": expects inputs of shape (batch, rows, cols, ", C, "), got ",
                                    shape_str(x.shape())));
    const detail::Geom g = detail::make_geom(x.dim(0), x.dim(1), x.dim(2), C, kernel_[0], kernel_[1], strides_[0],
                                             strides_[1], dilation_[0], dilation_[1], pad_, pad_);
    if (!detail::window_fits(g)) detail::throw_window_too_large(this->where(), g, pad_);
    return g;
  }

  Index dm_;
  std::vector<Index> kernel_, strides_, dilation_;
  detail::PadMode pad_ = detail::PadMode::valid;
  ActivationFn act_;
  bool use_bias_;
  Param<T>* kernel_p_ = nullptr;
  Param<T>* bias_p_ = nullptr;
};

}  // namespace graft
