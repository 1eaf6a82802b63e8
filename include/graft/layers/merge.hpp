// graft — merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum (with Keras
// broadcasting) and Concatenate (any axis).
#pragma once

#include <algorithm>

#include "graft/layers/layer.hpp"

namespace graft {

namespace detail {

/// Keras Merge alignment of a shape to rank r: the batch axis stays first and the other axes are
/// right-aligned, i.e. a lower-rank input gains axes of size 1 right after the batch axis
/// (keras Merge._reshape_required / _compute_elemwise_op_output_shape).
inline Index merge_aligned_dim(const Shape& s, size_t r, size_t d) {
  if (d == 0) return s.empty() ? 1 : s[0];
  const size_t off = r - s.size();
  return d <= off ? 1 : s[d - off];
}

/// Broadcast the shapes of a merge's inputs (symbolic -1 allowed), aligned as Keras does.
inline Shape broadcast_shapes(const std::vector<Shape>& in, const std::string& where) {
  size_t r = 0;
  for (const auto& s : in) r = std::max(r, s.size());
  Shape o(r, 1);
  for (const auto& s : in) {
    for (size_t d = 0; d < r; ++d) {
      Index a = o[d], b = merge_aligned_dim(s, r, d);
      if (a == 1) o[d] = b;
      else if (b == 1 || b == a) continue;
      else if (a < 0 || b < 0) o[d] = a < 0 ? b : a;  // unknown: trust the known one
      else throw shape_error(cat(where, ": inputs with shapes that cannot be broadcast together: ", shape_str(s),
                                 " and ", shape_str(o)));
    }
  }
  return o;
}

/// Elementwise merge machinery.
template <class T>
class ElementwiseMerge : public Layer<T> {
 public:
  bool parallel_rows(bool) const override { return true; }
  using Layer<T>::Layer;
  bool multi_input() const override { return true; }
  std::vector<Shape> compute_output_shapes(const std::vector<Shape>& in) const override {
    check_count(in.size());
    return {broadcast_shapes(in, this->where())};
  }
  json get_config() const override { return this->base_config(); }

  void forward(const In<T>& in, const Out<T>& out, CallState*, bool) override {
    check_count(in.size());
    bool same = true;
    for (auto* x : in) same = same && x->shape() == in[0]->shape();
    if (same) {
      out[0]->resize(in[0]->shape());
    } else {
      thread_local std::vector<Shape> shapes;  // per thread: forward may run on several at once
      shapes.clear();
      for (auto* x : in) shapes.push_back(x->shape());
      out[0]->resize(broadcast_shapes(shapes, this->where()));
    }
    Tensor<T>& y = *out[0];
    const Index n = y.size();
    // start from input 0, fold the others in
    for (Index i = 0; i < n; ++i) y[i] = (*in[0])[same ? i : src_index(*in[0], y, i)];
    for (size_t k = 1; k < in.size(); ++k) {
      const Tensor<T>& x = *in[k];
      if (same) fold_same(y, x, k);
      else
        for (Index i = 0; i < n; ++i) y[i] = fold(y[i], x[src_index(x, y, i)], k);
    }
    finish(y, in.size());
  }

  void backward(const In<T>& in, const In<T>& out, const In<T>& dout, const Out<T>& din, CallState*) override {
    const Tensor<T>& y = *out[0];
    const Tensor<T>& dy = *dout[0];
    bool same = true;
    for (auto* x : in) same = same && x->shape() == y.shape();
    for (size_t k = 0; k < in.size(); ++k) {
      if (!din[k]) continue;
      Tensor<T>& dx = *din[k];
      dx.resize(in[k]->shape());
      if (same) {
        partial_same(in, y, dy, k, dx);
      } else {
        dx.set_zero();
        for (Index i = 0; i < y.size(); ++i) dx[src_index(*in[k], y, i)] += dy[i] * partial(in, y, i, k, false);
      }
    }
  }

 protected:
  virtual void check_count(size_t n) const {
    if (n < 1) throw shape_error(detail::cat(this->where(), ": needs at least one input"));
  }
  virtual T fold(T acc, T v, size_t k) const = 0;
  virtual void fold_same(Tensor<T>& y, const Tensor<T>& x, size_t k) const {
    for (Index i = 0; i < y.size(); ++i) y[i] = fold(y[i], x[i], k);
  }
  virtual void finish(Tensor<T>&, size_t) const {}
  /// d y[i] / d input_k[at i]
  virtual T partial(const In<T>& in, const Tensor<T>& y, Index i, size_t k, bool same) const = 0;
  virtual void partial_same(const In<T>& in, const Tensor<T>& y, const Tensor<T>& dy, size_t k, Tensor<T>& dx) const {
    for (Index i = 0; i < y.size(); ++i) dx[i] = dy[i] * partial(in, y, i, k, true);
  }
  /// Flat index into x (broadcast against y) of y's flat element i.
  static Index src_index(const Tensor<T>& x, const Tensor<T>& y, Index i) {
    const Shape& xs = x.shape();
    const Shape& ys = y.shape();
    Index src = 0, mul = 1;
    for (size_t d = ys.size(); d-- > 0;) {
      Index c = i % ys[d];
      i /= ys[d];
      Index xd = merge_aligned_dim(xs, ys.size(), d);
      if (xd != 1) src += c * mul;
      mul *= xd;
    }
    return src;
  }
  T value_at(const Tensor<T>& x, const Tensor<T>& y, Index i, bool same) const {
    return x[same ? i : src_index(x, y, i)];
  }
};

}  // namespace detail

template <class T = float>
class Add : public detail::ElementwiseMerge<T> {
 public:
  explicit Add(std::string name = {}) : detail::ElementwiseMerge<T>(std::move(name)) {}
  std::string class_name() const override { return "Add"; }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    auto l = std::make_shared<Add>();
    apply_base_config(*l, Config(j, config_where(j, "Add")));
    return l;
  }
 protected:
  T fold(T a, T v, size_t) const override { return a + v; }
  void fold_same(Tensor<T>& y, const Tensor<T>& x, size_t) const override { y.array() += x.array(); }
  T partial(const In<T>&, const Tensor<T>&, Index, size_t, bool) const override { return T(1); }
  void partial_same(const In<T>&, const Tensor<T>&, const Tensor<T>& dy, size_t, Tensor<T>& dx) const override {
    std::copy(dy.begin(), dy.end(), dx.begin());
  }
};

template <class T = float>
class Subtract : public detail::ElementwiseMerge<T> {
 public:
  explicit Subtract(std::string name = {}) : detail::ElementwiseMerge<T>(std::move(name)) {}
  std::string class_name() const override { return "Subtract"; }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    auto l = std::make_shared<Subtract>();
    apply_base_config(*l, Config(j, config_where(j, "Subtract")));
    return l;
  }
 protected:
  void check_count(size_t n) const override {
    if (n != 2) throw shape_error(detail::cat(this->where(), ": needs exactly 2 inputs, got ", n));
  }
  T fold(T a, T v, size_t) const override { return a - v; }
  T partial(const In<T>&, const Tensor<T>&, Index, size_t k, bool) const override { return k == 0 ? T(1) : T(-1); }
};

template <class T = float>
class Multiply : public detail::ElementwiseMerge<T> {
 public:
  explicit Multiply(std::string name = {}) : detail::ElementwiseMerge<T>(std::move(name)) {}
  std::string class_name() const override { return "Multiply"; }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    auto l = std::make_shared<Multiply>();
    apply_base_config(*l, Config(j, config_where(j, "Multiply")));
    return l;
  }
 protected:
  T fold(T a, T v, size_t) const override { return a * v; }
  T partial(const In<T>& in, const Tensor<T>& y, Index i, size_t k, bool same) const override {
    T p = T(1);
    for (size_t j = 0; j < in.size(); ++j)
      if (j != k) p *= this->value_at(*in[j], y, i, same);
    return p;
  }
};

template <class T = float>
class Average : public detail::ElementwiseMerge<T> {
 public:
  explicit Average(std::string name = {}) : detail::ElementwiseMerge<T>(std::move(name)) {}
  std::string class_name() const override { return "Average"; }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    auto l = std::make_shared<Average>();
    apply_base_config(*l, Config(j, config_where(j, "Average")));
    return l;
  }
 protected:
  T fold(T a, T v, size_t) const override { return a + v; }
  void finish(Tensor<T>& y, size_t n) const override { y.array() /= static_cast<T>(n); }
  T partial(const In<T>& in, const Tensor<T>&, Index, size_t, bool) const override {
    return T(1) / static_cast<T>(in.size());
  }
};

/// Maximum / Minimum: the gradient goes to the first input holding the extreme value.
template <class T = float>
class Maximum : public detail::ElementwiseMerge<T> {
 public:
  explicit Maximum(std::string name = {}) : detail::ElementwiseMerge<T>(std::move(name)) {}
  std::string class_name() const override { return "Maximum"; }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    auto l = std::make_shared<Maximum>();
    apply_base_config(*l, Config(j, config_where(j, "Maximum")));
    return l;
  }
 protected:
  T fold(T a, T v, size_t) const override { return std::max(a, v); }
  T partial(const In<T>& in, const Tensor<T>& y, Index i, size_t k, bool same) const override {
    for (size_t j = 0; j < in.size(); ++j)
      if (this->value_at(*in[j], y, i, same) == y[i]) return j == k ? T(1) : T(0);
    return T(0);
  }
};

template <class T = float>
class Minimum : public detail::ElementwiseMerge<T> {
 public:
  explicit Minimum(std::string name = {}) : detail::ElementwiseMerge<T>(std::move(name)) {}
  std::string class_name() const override { return "Minimum"; }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    auto l = std::make_shared<Minimum>();
    apply_base_config(*l, Config(j, config_where(j, "Minimum")));
    return l;
  }
 protected:
  T fold(T a, T v, size_t) const override { return std::min(a, v); }
  T partial(const In<T>& in, const Tensor<T>& y, Index i, size_t k, bool same) const override {
    for (size_t j = 0; j < in.size(); ++j)
      if (this->value_at(*in[j], y, i, same) == y[i]) return j == k ? T(1) : T(0);
    return T(0);
  }
};

/// keras.layers.Concatenate(axis=-1)
template <class T = float>
class Concatenate : public Layer<T> {
 public:
  bool parallel_rows(bool) const override { return true; }
  explicit Concatenate(int axis = -1, std::string name = {}) : Layer<T>(std::move(name)), axis_(axis) {}
  std::string class_name() const override { return "Concatenate"; }
  bool multi_input() const override { return true; }
  int axis() const { return axis_; }

  std::vector<Shape> compute_output_shapes(const std::vector<Shape>& in) const override {
    if (in.empty()) throw shape_error(detail::cat(this->where(), ": needs inputs"));
    const size_t r = in[0].size();
    int a = normalize_axis(axis_, r, this->where());
    Shape o = in[0];
    for (size_t k = 1; k < in.size(); ++k) {
      if (in[k].size() != r)
        throw shape_error(detail::cat(this->where(), ": inputs of different rank: ", shape_str(in[0]), " and ", shape_str(in[k])));
      for (size_t d = 0; d < r; ++d) {
        if (static_cast<int>(d) == a) {
          o[d] = (o[d] < 0 || in[k][d] < 0) ? -1 : o[d] + in[k][d];
        } else if (o[d] >= 0 && in[k][d] >= 0 && o[d] != in[k][d] && d != 0) {
          throw shape_error(detail::cat(this->where(), ": shapes ", shape_str(in[0]), " and ", shape_str(in[k]),
                                        " differ outside the concatenation axis ", axis_));
        } else if (o[d] < 0) {
          o[d] = in[k][d];
        }
      }
    }
    return {o};
  }
  void forward(const In<T>& in, const Out<T>& out, CallState*, bool) override {
    const Shape& s0 = in[0]->shape();
    const int a = normalize_axis(axis_, s0.size(), this->where());
    Shape& os = detail::shape_scratch();
    os = s0;
    Index total = 0;
    for (auto* x : in) {
      if (x->rank() != static_cast<Index>(s0.size()))
        throw shape_error(detail::cat(this->where(), ": inputs of different rank"));
      for (size_t d = 0; d < s0.size(); ++d)
        if (static_cast<int>(d) != a && x->shape()[d] != s0[d])
          throw shape_error(detail::cat(this->where(), ": shapes ", shape_str(s0), " and ", shape_str(x->shape()),
                                        " differ outside the concatenation axis"));
      total += x->shape()[static_cast<size_t>(a)];
    }
    os[static_cast<size_t>(a)] = total;
    out[0]->resize(os);
    Index outer = 1, inner = 1;
    for (int d = 0; d < a; ++d) outer *= s0[static_cast<size_t>(d)];
    for (size_t d = static_cast<size_t>(a) + 1; d < s0.size(); ++d) inner *= s0[d];
    T* y = out[0]->data();
    const Index row = total * inner;
    Index off = 0;
    for (auto* x : in) {
      const Index w = x->shape()[static_cast<size_t>(a)] * inner;
      for (Index o = 0; o < outer; ++o) std::copy(x->data() + o * w, x->data() + (o + 1) * w, y + o * row + off);
      off += w;
    }
  }
  void backward(const In<T>& in, const In<T>& out, const In<T>& dout, const Out<T>& din, CallState*) override {
    const Shape& s0 = in[0]->shape();
    const int a = normalize_axis(axis_, s0.size(), this->where());
    Index outer = 1, inner = 1;
    for (int d = 0; d < a; ++d) outer *= s0[static_cast<size_t>(d)];
    for (size_t d = static_cast<size_t>(a) + 1; d < s0.size(); ++d) inner *= s0[d];
    const Index row = out[0]->shape()[static_cast<size_t>(a)] * inner;
    const T* dy = dout[0]->data();
    Index off = 0;
    for (size_t k = 0; k < in.size(); ++k) {
      const Index w = in[k]->shape()[static_cast<size_t>(a)] * inner;
      if (din[k]) {
        din[k]->resize(in[k]->shape());
        for (Index o = 0; o < outer; ++o) std::copy(dy + o * row + off, dy + o * row + off + w, din[k]->data() + o * w);
      }
      off += w;
    }
  }
  json get_config() const override {
    json c = this->base_config();
    c["axis"] = axis_;
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "Concatenate"));
    auto l = std::make_shared<Concatenate>(static_cast<int>(c.get_int(c.has("axis") ? "axis" : "concat_axis", -1)));
    apply_base_config(*l, c);
    return l;
  }
 private:
  int axis_;
};

}  // namespace graft
