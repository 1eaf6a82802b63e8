// graft — keras.layers.Conv2D with groups > 1: input channels split into `groups` equal slices,
// each convolved with its own filters/groups filters (kernel [kh, kw, in/groups, filters], output
// channels in group order). groups == in channels (ConvNeXt's depthwise Conv2D) runs as one
// DepthwiseConv2D, whose kernel [kh, kw, in, filters/in] is the same memory; other groupings run
// one plain convolution per group. Bias and activation are applied on the assembled output.
#pragma once

#include <cstring>
#include <mutex>

#include "graft/layers/conv2d.hpp"
#include "graft/layers/depthwise_conv2d.hpp"

namespace graft {

template <class T = float>
class GroupedConv2D : public UnaryLayer<T> {
 public:
  /// No: forward copies the kernel into the per-group workers, which row slices on several
  /// threads would do at once.
  bool parallel_rows(bool) const override { return false; }
  /// `proto`: the same convolution with groups = 1 (its arguments, initializers, name).
  GroupedConv2D(std::shared_ptr<Conv2D<T>> proto, Index groups)
      : UnaryLayer<T>(proto->name()), proto_(std::move(proto)), groups_(groups) {
    if (groups <= 0 || proto_->filters() % groups != 0)
      throw value_error(detail::cat(this->where(), ": filters (", proto_->filters(), ") must be a multiple of groups (", groups, ")"));
    act_ = proto_->activation();
  }
  std::string class_name() const override { return "Conv2D"; }
  Index groups() const { return groups_; }

  Shape output_shape(const Shape& in) const override {
    if (in.size() != 4) throw shape_error(detail::cat(this->where(), ": expects inputs of rank 4, got ", shape_str(in)));
    if (in.back() >= 0 && in.back() % groups_ != 0)
      throw shape_error(detail::cat(this->where(), ": input channels (", in.back(), ") must be a multiple of groups (", groups_, ")"));
    if (kernel_p_ && in.back() >= 0 && in.back() != C_)
      throw shape_error(detail::cat(this->where(), ": expects inputs with ", C_, " channels, got shape ", shape_str(in)));
    Shape probe = in;
    probe.back() = in.back() < 0 ? -1 : in.back() / groups_;
    Shape o = proto_->output_shape(probe);
    o.back() = proto_->filters();
    return o;
  }

  struct State : CallState {
    std::vector<std::unique_ptr<CallState>> ws;  // per worker
    std::vector<Tensor<T>> xg, zg;               // per group: gathered input, output (grouped path)
    Tensor<T> z, dz, dzg, dxg;
  };
  std::unique_ptr<CallState> make_state() const override {
    auto s = std::make_unique<State>();
    for (auto& w : workers_) s->ws.push_back(w->make_state());
    s->xg.resize(workers_.size());
    s->zg.resize(workers_.size());
    return s;
  }

  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState* st, bool training) override {
    auto* s = static_cast<State*>(st);
    sync_kernels();
    const Index F = proto_->filters();
    if (depthwise_) {
      workers_[0]->forward({&x}, {&s->z}, s->ws[0].get(), training);
    } else {
      const Index Cg = C_ / groups_, Fg = F / groups_;
      for (Index g = 0; g < groups_; ++g) {
        gather(x, g * Cg, Cg, s->xg[static_cast<size_t>(g)]);
        workers_[static_cast<size_t>(g)]->forward({&s->xg[static_cast<size_t>(g)]}, {&s->zg[static_cast<size_t>(g)]},
                                                  s->ws[static_cast<size_t>(g)].get(), training);
        const Tensor<T>& zg = s->zg[static_cast<size_t>(g)];
        if (g == 0) {
          Shape zs = zg.shape();
          zs.back() = F;
          s->z.resize(zs);
        }
        scatter(zg, g * Fg, s->z);
      }
    }
    if (bias_p_) {
      const T* b = bias_p_->value.data();
      for (Index r = 0, rows = s->z.size() / F; r < rows; ++r)
        for (Index f = 0; f < F; ++f) s->z[r * F + f] += b[f];
    }
    y.resize(s->z.shape());
    act_.forward(s->z.data(), y.data(), y.size(), F);
  }

  void backward1(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>* dx, CallState* st) override {
    auto* s = static_cast<State*>(st);
    const Index F = proto_->filters();
    s->dz.resize(dy.shape());
    act_.backward(s->z.data(), y.data(), dy.data(), s->dz.data(), dy.size(), F);
    const bool wgrad = this->trainable() && kernel_p_->trainable;
    if (bias_p_ && this->trainable() && bias_p_->trainable) {
      if (bias_p_->begin_grad()) bias_p_->grad.set_zero();
      T* gb = bias_p_->grad.data();
      for (Index r = 0, rows = s->dz.size() / F; r < rows; ++r)
        for (Index f = 0; f < F; ++f) gb[f] += s->dz[r * F + f];
    }
    for (auto& w : workers_)
      if (w->trainable() != wgrad) w->set_trainable(wgrad);  // (each change invalidates gradient plans)
    if (dx) dx->resize(x.shape());
    if (depthwise_) {
      Param<T>& wk = worker_kernel(0);
      wk.grad_fresh = true;
      workers_[0]->backward({&x}, {&s->z}, {&s->dz}, {dx}, s->ws[0].get());
      if (wgrad) add_kernel_grad(wk.grad, 0);
      return;
    }
    const Index Cg = C_ / groups_, Fg = F / groups_;
    for (Index g = 0; g < groups_; ++g) {
      const size_t gi = static_cast<size_t>(g);
      gather(s->dz, g * Fg, Fg, s->dzg);
      Param<T>& wk = worker_kernel(gi);
      wk.grad_fresh = true;
      workers_[gi]->backward({&s->xg[gi]}, {&s->zg[gi]}, {&s->dzg}, {dx ? &s->dxg : nullptr}, s->ws[gi].get());
      if (dx) scatter(s->dxg, g * Cg, *dx);
      if (wgrad) add_kernel_grad(wk.grad, g);
    }
  }

  json get_config() const override {
    json c = proto_->get_config();
    c["name"] = this->name();
    c["trainable"] = this->trainable();
    c["groups"] = groups_;
    return c;
  }
  /// A Conv2D config with groups > 1.
  static std::shared_ptr<Layer<T>> from_config(const json& j, Index groups) {
    json plain = j;
    plain["groups"] = 1;
    auto proto = std::dynamic_pointer_cast<Conv2D<T>>(Conv2D<T>::from_config(plain));
    auto l = std::make_shared<GroupedConv2D>(proto, groups);
    l->set_trainable(proto->trainable());
    return l;
  }

 protected:
  void build_impl(const std::vector<Shape>& in) override {
    this->expect_inputs(in, 1);
    output_shape(in[0]);
    C_ = in[0].back();
    if (C_ < 0) throw shape_error(detail::cat(this->where(), ": the input channels must be known, got ", shape_str(in[0])));
    const Index F = proto_->filters(), Cg = C_ / groups_;
    const auto& k = proto_->kernel_size();
    kernel_p_ = &this->add_weight("kernel", {k[0], k[1], Cg, F}, proto_->kernel_initializer, true, proto_->kernel_regularizer,
                                  proto_->kernel_constraint);
    if (proto_->use_bias())
      bias_p_ = &this->add_weight("bias", {F}, proto_->bias_initializer, true, proto_->bias_regularizer, proto_->bias_constraint);
    depthwise_ = Cg == 1;
    const std::vector<Index>& st = proto_->strides();
    const std::vector<Index>& dl = proto_->dilation_rate();
    if (depthwise_) {
      auto w = std::make_shared<DepthwiseConv2D<T>>(Dims(k), Dims(st), proto_->padding(), F / C_, "linear", false, Dims(dl),
                                                    this->name() + "/depthwise");
      w->build({in[0]});
      workers_.push_back(w);
    } else {
      Shape gin = in[0];
      gin.back() = Cg;
      for (Index g = 0; g < groups_; ++g) {
        auto w = std::make_shared<Conv2D<T>>(F / groups_, Dims(k), Dims(st), proto_->padding(), "linear", false, Dims(dl),
                                             detail::cat(this->name(), "/group_", g));
        w->build({gin});
        workers_.push_back(w);
      }
    }
  }

 private:
  Param<T>& worker_kernel(size_t i) { return *workers_[i]->weights().at(0); }
  /// Copy the layer's kernel into the workers' (groups == channels: the same layout) where they
  /// differ. Under a lock, and writing nothing once they agree: inference may run on one layer
  /// from several threads at once (tests/test_concurrent_predict.cpp).
  void sync_kernels() {
    std::lock_guard<std::mutex> lock(sync_mutex_);
    auto set = [](T& dst, const T& src) {
      if (std::memcmp(&dst, &src, sizeof(T)) != 0) dst = src;  // bitwise: NaN weights are equal too
    };
    const Index F = proto_->filters();
    if (depthwise_) {
      Tensor<T>& wk = worker_kernel(0).value;
      for (Index i = 0; i < wk.size(); ++i) set(wk[i], kernel_p_->value[i]);
      return;
    }
    const Index Fg = F / groups_, rows = kernel_p_->value.size() / F;
    for (Index g = 0; g < groups_; ++g) {
      Tensor<T>& wk = worker_kernel(static_cast<size_t>(g)).value;
      for (Index r = 0; r < rows; ++r)
        for (Index f = 0; f < Fg; ++f) set(wk[r * Fg + f], kernel_p_->value[r * F + g * Fg + f]);
    }
  }
  void add_kernel_grad(const Tensor<T>& wg, Index g) {
    const bool ow = kernel_p_->begin_grad();
    if (ow) kernel_p_->grad.set_zero();
    const Index F = proto_->filters();
    if (depthwise_) {
      kernel_p_->grad.array() += wg.array();
      return;
    }
    const Index Fg = F / groups_, rows = kernel_p_->value.size() / F;
    for (Index r = 0; r < rows; ++r)
      for (Index f = 0; f < Fg; ++f) kernel_p_->grad[r * F + g * Fg + f] += wg[r * Fg + f];
  }
  /// out = in[..., c0 : c0 + n]
  static void gather(const Tensor<T>& in, Index c0, Index n, Tensor<T>& out) {
    Shape s = in.shape();
    const Index C = s.back();
    s.back() = n;
    out.resize(s);
    for (Index r = 0, rows = in.size() / C; r < rows; ++r)
      for (Index c = 0; c < n; ++c) out[r * n + c] = in[r * C + c0 + c];
  }
  /// out[..., c0 : c0 + n] = in
  static void scatter(const Tensor<T>& in, Index c0, Tensor<T>& out) {
    const Index n = in.shape().back(), C = out.shape().back();
    for (Index r = 0, rows = in.size() / n; r < rows; ++r)
      for (Index c = 0; c < n; ++c) out[r * C + c0 + c] = in[r * n + c];
  }
  std::shared_ptr<Conv2D<T>> proto_;
  Index groups_;
  Index C_ = -1;
  bool depthwise_ = false;
  ActivationFn act_;
  Param<T>* kernel_p_ = nullptr;
  Param<T>* bias_p_ = nullptr;
  std::vector<std::shared_ptr<Layer<T>>> workers_;
  std::mutex sync_mutex_;
};

/// A Conv2D config: grouped (groups > 1) or plain.
template <class T>
std::shared_ptr<Layer<T>> conv2d_from_config(const json& j) {
  Config c(j, config_where(j, "Conv2D"));
  const long long groups = c.get_int("groups", 1);
  if (groups < 1) throw format_error(detail::cat(c.where(), ": groups must be positive, got ", groups));
  if (groups > 1) return GroupedConv2D<T>::from_config(j, static_cast<Index>(groups));
  return Conv2D<T>::from_config(j);
}

}  // namespace graft
