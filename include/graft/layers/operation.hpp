// graft — operation nodes of functional graphs: Keras 3 writes `x + 3.0`, `x * (1 / 6)`, `a + b`
// as nodes of keras.src.ops.numpy operations (Add, Subtract, Multiply, Divide, TrueDivide, Maximum,
// Minimum) whose positional arguments are tensors or Python numbers; TF-Keras 2 wrote the same as
// TFOpLambda layers (tf.math.add, tf.__operators__.add, ...) with the number in a `y` keyword.
// One element-wise binary operation with numpy broadcasting; any other operation is refused by name.
#pragma once

#include <cmath>
#include <string>

#include "graft/layers/layer.hpp"

namespace graft {

template <class T = float>
class Operation : public Layer<T> {
 public:
  enum Op { add, subtract, multiply, divide, maximum, minimum };
  bool parallel_rows(bool) const override { return true; }

  /// `op_class`: the Keras 3 operation class (Add, Subtract, Multiply, Divide, TrueDivide, Maximum,
  /// Minimum); unsupported_error naming it otherwise.
  Operation(const std::string& op_class, std::string name) : Layer<T>(std::move(name)), cls_(op_class) {
    if (op_class == "Add") op_ = add;
    else if (op_class == "Subtract") op_ = subtract;
    else if (op_class == "Multiply") op_ = multiply;
    else if (op_class == "Divide" || op_class == "TrueDivide") op_ = divide;
    else if (op_class == "Maximum") op_ = maximum;
    else if (op_class == "Minimum") op_ = minimum;
    else
      throw unsupported_error(detail::cat("operation '", this->name(), "' (", op_class,
                                          "): only the element-wise operations Add, Subtract, Multiply, Divide, TrueDivide, "
                                          "Maximum and Minimum are supported"));
  }
  /// The Keras 3 class of a TF-Keras 2 TFOpLambda `function` ("math.add", "__operators__.add", ...),
  /// or "" when graft does not implement it.
  static std::string op_class_of_tf_function(const std::string& f) {
    static const std::pair<const char*, const char*> table[] = {
        {"math.add", "Add"},         {"__operators__.add", "Add"},     {"math.subtract", "Subtract"},
        {"math.multiply", "Multiply"}, {"math.truediv", "TrueDivide"}, {"math.divide", "Divide"},
        {"math.maximum", "Maximum"}, {"math.minimum", "Minimum"}};
    for (auto& e : table)
      if (f == e.first) return e.second;
    return {};
  }
  /// TF-Keras 2's TFOpLambda function for this operation.
  std::string tf_function() const {
    switch (op_) {
      case add: return "math.add";
      case subtract: return "math.subtract";
      case multiply: return "math.multiply";
      case divide: return "math.truediv";
      case maximum: return "math.maximum";
      case minimum: return "math.minimum";
    }
    return {};
  }

  std::string class_name() const override { return cls_; }
  bool is_operation() const override { return true; }
  bool multi_input() const override { return tensors_ > 1; }

  /// The positional arguments of the call: null for a tensor (in input order), a number otherwise.
  json call_arguments() const override { return args_; }
  void set_arguments(const json& args) {
    if (!args.is_array() || args.size() != 2)
      throw unsupported_error(detail::cat("operation '", this->name(), "' (", cls_, "): expects two positional arguments, got ",
                                          args.dump().substr(0, 120)));
    int n = 0;
    for (const auto& a : args) {
      if (a.is_null()) ++n;
      else if (!a.is_number())
        throw unsupported_error(detail::cat("operation '", this->name(), "' (", cls_, "): argument ", a.dump().substr(0, 80),
                                            " is neither a tensor nor a number"));
    }
    if (n == 0) throw unsupported_error(detail::cat("operation '", this->name(), "' (", cls_, "): no tensor argument"));
    if (!this->inbound_nodes().empty() && args != args_)  // one operation, one set of constants
      throw unsupported_error(detail::cat("operation '", this->name(), "' (", cls_, "): called again with other arguments (",
                                          args.dump().substr(0, 80), " after ", args_.dump().substr(0, 80), ")"));
    args_ = args;
    tensors_ = n;
  }

  std::vector<Shape> compute_output_shapes(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, static_cast<size_t>(tensors_));
    if (in.size() == 1) return {in[0]};
    return {broadcast(in[0], in[1])};
  }

  void forward(const In<T>& in, const Out<T>& out, CallState*, bool) override {
    Tensor<T>& y = *out[0];
    if (tensors_ == 1) {
      const Tensor<T>& x = *in[0];
      const T c = static_cast<T>(constant());
      const bool x_first = args_[0].is_null();
      y.resize(x.shape());
      for (Index i = 0; i < x.size(); ++i) y[i] = x_first ? apply(x[i], c) : apply(c, x[i]);
      return;
    }
    const Tensor<T>& a = *in[0];
    const Tensor<T>& b = *in[1];
    Shape& s = detail::shape_scratch();
    s = broadcast(a.shape(), b.shape());
    y.resize(s);
    if (a.shape() == b.shape()) {
      for (Index i = 0; i < y.size(); ++i) y[i] = apply(a[i], b[i]);
      return;
    }
    for (Index i = 0; i < y.size(); ++i) y[i] = apply(a[source(i, s, a.shape())], b[source(i, s, b.shape())]);
  }

  void backward(const In<T>& in, const In<T>&, const In<T>& dout, const Out<T>& din, CallState*) override {
    const Tensor<T>& dy = *dout[0];
    if (tensors_ == 1) {
      if (!din[0]) return;
      const Tensor<T>& x = *in[0];
      const T c = static_cast<T>(constant());
      const bool x_first = args_[0].is_null();
      din[0]->resize(x.shape());
      for (Index i = 0; i < x.size(); ++i) {
        T da = T(0), db = T(0);
        partials(x_first ? x[i] : c, x_first ? c : x[i], da, db);
        (*din[0])[i] = dy[i] * (x_first ? da : db);
      }
      return;
    }
    const Tensor<T>& a = *in[0];
    const Tensor<T>& b = *in[1];
    const Shape& s = dy.shape();
    if (din[0]) din[0]->resize(a.shape()), din[0]->set_zero();
    if (din[1]) din[1]->resize(b.shape()), din[1]->set_zero();
    const bool same = a.shape() == b.shape();
    for (Index i = 0; i < dy.size(); ++i) {
      const Index ia = same ? i : source(i, s, a.shape()), ib = same ? i : source(i, s, b.shape());
      T da = T(0), db = T(0);
      partials(a[ia], b[ib], da, db);
      if (din[0]) (*din[0])[ia] += dy[i] * da;
      if (din[1]) (*din[1])[ib] += dy[i] * db;
    }
  }

  json get_config() const override { return json{{"name", this->name()}}; }

 private:
  double constant() const { return args_[0].is_null() ? args_[1].get<double>() : args_[0].get<double>(); }
  T apply(T a, T b) const {
    switch (op_) {
      case add: return a + b;
      case subtract: return a - b;
      case multiply: return a * b;
      case divide: return a / b;
      case maximum: return a >= b ? a : b;
      case minimum: return a <= b ? a : b;
    }
    return T(0);
  }
  void partials(T a, T b, T& da, T& db) const {
    switch (op_) {
      case add: da = T(1), db = T(1); return;
      case subtract: da = T(1), db = T(-1); return;
      case multiply: da = b, db = a; return;
      case divide: da = T(1) / b, db = -a / (b * b); return;
      case maximum: da = a >= b ? T(1) : T(0), db = a >= b ? T(0) : T(1); return;
      case minimum: da = a <= b ? T(1) : T(0), db = a <= b ? T(0) : T(1); return;
    }
  }
  /// numpy broadcasting of two shapes (batch axis included; -1 unknown).
  Shape broadcast(const Shape& a, const Shape& b) const {
    const size_t r = std::max(a.size(), b.size());
    Shape o(r, 1);
    for (size_t i = 0; i < r; ++i) {
      const Index da = i + a.size() >= r ? a[i + a.size() - r] : 1, db = i + b.size() >= r ? b[i + b.size() - r] : 1;
      if (da == db || db == 1) o[i] = da;
      else if (da == 1) o[i] = db;
      else if (da < 0 || db < 0) o[i] = da < 0 ? db : da;
      else
        throw shape_error(detail::cat(this->where(), ": shapes ", shape_str(a), " and ", shape_str(b), " do not broadcast"));
    }
    return o;
  }
  /// Flat index in an input of shape `in` of output element `i` (output shape `out`).
  static Index source(Index i, const Shape& out, const Shape& in) {
    Index k = 0, mul = 1;
    const size_t off = out.size() - in.size();
    for (size_t d = out.size(); d-- > 0;) {
      const Index c = i % out[d];
      i /= out[d];
      if (d < off) continue;
      const Index n = in[d - off];
      if (n != 1) k += c * mul;
      mul *= n;
    }
    return k;
  }
  std::string cls_;
  Op op_ = add;
  json args_ = json::array({nullptr, nullptr});
  int tensors_ = 2;
};

}  // namespace graft
