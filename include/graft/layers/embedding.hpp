// graft — Embedding: integer indices (stored as floats in the input tensor, truncated toward zero
// like Keras' cast to int32) -> rows of the [input_dim, output_dim] "embeddings" matrix. The
// input gets no gradient (zeros when one is asked for).
#pragma once

#include <cmath>

#include "graft/layers/conv_common.hpp"

namespace graft {

template <class T = float>
class Embedding : public UnaryLayer<T> {
 public:
  bool parallel_rows(bool) const override { return true; }
  Embedding(Index input_dim, Index output_dim, std::string name = {})
      : UnaryLayer<T>(std::move(name)), input_dim_(input_dim), output_dim_(output_dim) {
    if (input_dim <= 0 || output_dim <= 0)
      throw value_error(detail::cat("Embedding: input_dim and output_dim must be positive, got ", input_dim, " and ", output_dim));
  }
  std::string class_name() const override { return "Embedding"; }

  Initializer embeddings_initializer = Initializer::named("RandomUniform", {{"minval", -0.05}, {"maxval", 0.05}});
  Regularizer embeddings_regularizer;
  Constraint embeddings_constraint;

  Index input_dim() const { return input_dim_; }
  Index output_dim() const { return output_dim_; }
  Param<T>& embeddings() { return *emb_; }

  Shape output_shape(const Shape& in) const override {
    if (in.empty()) throw shape_error(detail::cat(this->where(), ": input needs a batch dimension"));
    Shape o = in;
    o.push_back(output_dim_);
    return o;
  }

  struct State : CallState {
    std::vector<Index> idx;
  };
  std::unique_ptr<CallState> make_state() const override { return std::make_unique<State>(); }

  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState* st, bool) override {
    auto& idx = static_cast<State*>(st)->idx;
    idx.resize(static_cast<size_t>(x.size()));
    for (Index i = 0; i < x.size(); ++i) {
      const T v = x[i];
      if (!std::isfinite(static_cast<double>(v)) || std::trunc(v) < 0 || std::trunc(v) >= static_cast<T>(input_dim_))
        throw value_error(detail::cat(this->where(), ": index ", v, " at position ", i, " is outside [0, ", input_dim_, ")"));
      idx[static_cast<size_t>(i)] = static_cast<Index>(std::trunc(v));
    }
    Shape& os = detail::shape_scratch();
    os = x.shape();
    os.push_back(output_dim_);
    y.resize(os);
    const T* e = emb_->value.data();
    for (Index i = 0; i < x.size(); ++i) {
      const T* row = e + idx[static_cast<size_t>(i)] * output_dim_;
      std::copy(row, row + output_dim_, y.data() + i * output_dim_);
    }
  }
  void backward1(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx, CallState* st) override {
    if (dx) {
      dx->resize(x.shape());
      dx->set_zero();
    }
    if (!this->trainable() || !emb_->trainable) return;
    const auto& idx = static_cast<State*>(st)->idx;
    if (emb_->begin_grad()) emb_->grad.set_zero();
    T* g = emb_->grad.data();
    for (Index i = 0; i < x.size(); ++i) {
      T* row = g + idx[static_cast<size_t>(i)] * output_dim_;
      const T* d = dy.data() + i * output_dim_;
      for (Index k = 0; k < output_dim_; ++k) row[k] += d[k];
    }
  }

  json get_config() const override {
    json c = this->base_config();
    c["input_dim"] = input_dim_;
    c["output_dim"] = output_dim_;
    c["embeddings_initializer"] = embeddings_initializer.to_json();
    c["embeddings_regularizer"] = embeddings_regularizer.to_json();
    c["activity_regularizer"] = nullptr;
    c["embeddings_constraint"] = embeddings_constraint.to_json();
    c["mask_zero"] = false;
    return c;
  }
  /// Keras 1 (init, W_regularizer, W_constraint, dropout), Keras 2 (input_length) and Keras 3.
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "Embedding"));
    detail::reject_set_options(c);
    if (c.get_bool("mask_zero", false))
      throw unsupported_error(detail::cat(c.where(), ": mask_zero=True is not supported (graft does not propagate masks)"));
    if (c.get_bool("sparse", false)) throw unsupported_error(detail::cat(c.where(), ": sparse=True is not supported"));
    if (c.get_double("dropout", 0.0) != 0.0)
      throw unsupported_error(detail::cat(c.where(), ": Keras 1 Embedding dropout is not supported"));
    std::shared_ptr<Embedding> l;
    try {
      l = std::make_shared<Embedding>(c.req_size("input_dim"), c.req_size("output_dim"));
    } catch (const error& e) {
      rethrow_with_prefix(e, c.where());
    }
    apply_base_config(*l, c);
    detail::read_initializer(c, {"embeddings_initializer", "init"}, l->embeddings_initializer);
    detail::read_regularizer(c, {"embeddings_regularizer", "W_regularizer"}, l->embeddings_regularizer);
    detail::read_constraint(c, {"embeddings_constraint", "W_constraint"}, l->embeddings_constraint);
    return l;
  }

 protected:
  void build_impl(const std::vector<Shape>& in) override {
    this->expect_inputs(in, 1);
    emb_ = &this->add_weight("embeddings", {input_dim_, output_dim_}, embeddings_initializer, true, embeddings_regularizer,
                             embeddings_constraint);
  }

 private:
  Index input_dim_, output_dim_;
  Param<T>* emb_ = nullptr;
};

}  // namespace graft
