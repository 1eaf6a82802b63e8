// graft — Dense: y = activation(x . kernel + bias) on the last axis. Kernel [in, units] (Keras layout).
#pragma once

#include "graft/activations.hpp"
#include "graft/core/gemm.hpp"
#include "graft/layers/layer.hpp"

namespace graft {

template <class T = float>
class Dense : public UnaryLayer<T> {
 public:
  bool parallel_rows(bool) const override { return true; }
  explicit Dense(Index units, const std::string& activation = "linear", bool use_bias = true,
                 std::string name = {})
      : UnaryLayer<T>(std::move(name)), units_(units), use_bias_(use_bias) {
    const std::string where = this->name_.empty() ? std::string("Dense") : this->where();
    if (units <= 0) throw value_error(detail::cat(where, ": units must be positive, got ", units));
    act_ = ActivationFn::from_name(activation, where);
  }
  std::string class_name() const override { return "Dense"; }

  Index units() const { return units_; }
  bool use_bias() const { return use_bias_; }
  const ActivationFn& activation() const { return act_; }
  void set_activation(const ActivationFn& a) { act_ = a; }
  Initializer kernel_initializer = Initializer::named("GlorotUniform");
  Initializer bias_initializer = Initializer::named("Zeros");
  Regularizer kernel_regularizer, bias_regularizer;
  Constraint kernel_constraint, bias_constraint;

  Param<T>& kernel() { return *kernel_; }
  Param<T>* bias() { return bias_; }

  Shape output_shape(const Shape& in) const override {
    if (in.empty()) throw shape_error(detail::cat(this->where(), ": input must have at least one axis"));
    if (kernel_ && in.back() >= 0 && in.back() != kernel_->value.dim(0))
      throw shape_error(detail::cat(this->where(), ": expects inputs with last dimension ", kernel_->value.dim(0),
                                    ", got shape ", shape_str(in)));
    Shape o = in;
    o.back() = units_;
    return o;
  }

  struct State : CallState {
    Tensor<T> z;   // pre-activation, when the activation's derivative needs it
    Tensor<T> dz;  // dLoss/dz
  };
  std::unique_ptr<CallState> make_state() const override { return std::make_unique<State>(); }

  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState* st, bool) override {
    const Index in = kernel_->value.dim(0);
    if (x.rank() == 0 || x.shape().back() != in)
      throw shape_error(detail::cat(this->where(), ": expects inputs with last dimension ", in, ", got shape ",
                                    shape_str(x.shape())));
    const Index rows = x.size() / in;
    y.resize_last(x.shape(), units_);
    T* z = nullptr;  // pre-activation copy, when the activation's derivative needs it
    if (!act_.is_linear() && act_.needs_input()) {
      auto* s = static_cast<State*>(st);
      s->z.resize(y.shape());
      z = s->z.data();
    }
    // Large batches (predict, evaluate) in groups of 128 rows, each done whole on one thread
    // (product, bias, activation) while its rows are in that core's cache, when the kernel is
    // small enough (1 MiB) for every core to keep it in its L2 cache; otherwise, and for
    // training batches, one group whose product is split over the threads. The grouping
    // depends on the shapes only, so results do not depend on the thread count.
    const bool small_kernel = static_cast<double>(in) * static_cast<double>(units_) * sizeof(T) <= 1048576.0;
    const Index group = rows >= 256 && small_kernel ? 128 : std::max<Index>(rows, 1);
    const Index groups = (rows + group - 1) / group;  // 0 for an empty batch
    const double work = static_cast<double>(rows) * static_cast<double>(in) * static_cast<double>(units_);
    detail::parallel_for(0, groups, groups > 1 && work > 1e6, [&](Index t) {
      const Index r0 = t * group, n = std::min(group, rows - r0);
      T* yr = y.data() + r0 * units_;
      gemm<T>(false, false, n, units_, in, T(1), x.data() + r0 * in, in, kernel_->value.data(), units_, T(0), yr, units_);
      if (use_bias_) add_row_vector(yr, n, units_, units_, bias_->value.data());
      if (act_.is_linear()) return;
      if (z) std::copy(yr, yr + n * units_, z + r0 * units_);
      act_.forward(yr, yr, n * units_, units_);
    });
  }

  void backward1(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>* dx, CallState* st) override {
    const Index in = kernel_->value.dim(0);
    const Index rows = x.size() / in;
    const T* dz = dy.data();
    if (!act_.is_linear()) {
      auto* s = static_cast<State*>(st);
      s->dz.resize(y.shape());
      act_.backward(act_.needs_input() ? s->z.data() : nullptr, y.data(), dy.data(), s->dz.data(), y.size(), units_);
      dz = s->dz.data();
    }
    if (this->trainable()) {
      if (kernel_->trainable) {
        bool ow = kernel_->begin_grad();
        gemm<T>(true, false, in, units_, rows, T(1), x.data(), in, dz, units_, ow ? T(0) : T(1),
                kernel_->grad.data(), units_);
      }
      if (use_bias_ && bias_->trainable) {
        bool ow = bias_->begin_grad();
        column_sums(dz, rows, units_, units_, bias_->grad.data(), !ow);
      }
    }
    if (dx) {
      dx->resize(x.shape());
      gemm<T>(false, true, rows, in, units_, T(1), dz, units_, kernel_->value.data(), units_, T(0), dx->data(), in);
    }
  }

  json get_config() const override {
    json c = this->base_config();
    c["units"] = units_;
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

  /// Keras 1 (output_dim, init, bias, W_regularizer), Keras 2 and Keras 3 configs.
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "Dense"));
    std::string uk = c.pick({"units", "output_dim"});
    if (uk.empty()) throw format_error(detail::cat(c.where(), ": config has no 'units'"));
    bool use_bias = c.get_bool(c.has("use_bias") ? "use_bias" : "bias", true);
    auto l = std::make_shared<Dense>(c.req_size(uk), "linear", use_bias);
    apply_base_config(*l, c);
    if (c.has("activation")) l->act_ = ActivationFn::from_json(c.raw()["activation"], c.where());
    std::string ki = c.pick({"kernel_initializer", "init"});
    if (!ki.empty()) l->kernel_initializer = Initializer::from_json(c.raw()[ki], c.where());
    if (c.has("bias_initializer")) l->bias_initializer = Initializer::from_json(c.raw()["bias_initializer"], c.where());
    std::string kr = c.pick({"kernel_regularizer", "W_regularizer"});
    if (!kr.empty()) l->kernel_regularizer = Regularizer::from_json(c.raw()[kr], c.where());
    std::string br = c.pick({"bias_regularizer", "b_regularizer"});
    if (!br.empty()) l->bias_regularizer = Regularizer::from_json(c.raw()[br], c.where());
    std::string kc = c.pick({"kernel_constraint", "W_constraint"});
    if (!kc.empty()) l->kernel_constraint = Constraint::from_json(c.raw()[kc], c.where());
    std::string bc = c.pick({"bias_constraint", "b_constraint"});
    if (!bc.empty()) l->bias_constraint = Constraint::from_json(c.raw()[bc], c.where());
    if (c.has("activity_regularizer"))
      throw unsupported_error(detail::cat(c.where(), ": activity_regularizer is not supported"));
    if (c.has("lora_rank"))
      throw unsupported_error(detail::cat(c.where(), ": LoRA (lora_rank) is not supported"));
    if (c.has("quantization_config"))
      throw unsupported_error(detail::cat(c.where(), ": quantized layers are not supported"));
    return l;
  }

 protected:
  void build_impl(const std::vector<Shape>& in) override {
    this->expect_inputs(in, 1);
    if (in[0].empty() || in[0].back() < 0)
      throw shape_error(detail::cat(this->where(), ": the last input dimension must be known, got ", shape_str(in[0])));
    kernel_ = &this->add_weight("kernel", {in[0].back(), units_}, kernel_initializer, true, kernel_regularizer,
                                kernel_constraint);
    if (use_bias_)
      bias_ = &this->add_weight("bias", {units_}, bias_initializer, true, bias_regularizer, bias_constraint);
  }

 private:
  Index units_;
  bool use_bias_;
  ActivationFn act_;
  Param<T>* kernel_ = nullptr;
  Param<T>* bias_ = nullptr;
};

}  // namespace graft
