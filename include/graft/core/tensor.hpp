// graft — Tensor<T>: a shape plus contiguous row-major storage (NHWC for images).
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <numeric>
#include <string>
#include <vector>

#include "graft/core/errors.hpp"
#include "graft/core/limits.hpp"

namespace graft {

using Index = std::ptrdiff_t;
/// A tensor shape. Symbolic shapes use -1 for an unknown dimension (Keras `None`).
using Shape = std::vector<Index>;

/// Keras-style rendering: (None, 28, 28).
inline std::string shape_str(const Shape& s) {
  std::string r = "(";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) r += ", ";
    r += s[i] < 0 ? std::string("None") : std::to_string(s[i]);
  }
  if (s.size() == 1) r += ",";
  return r + ")";
}

/// Number of elements; unknown (-1) dimensions make it -1. A product beyond 64 bits is a
/// value_error, never a wrapped size.
inline Index shape_size(const Shape& s) {
  Index n = 1;
  bool overflow = false;
  for (Index d : s) {
    if (d < 0) return -1;
    std::int64_t r = 0;
    if (!detail::checked_mul(n, d, &r)) overflow = true;
    n = r;
  }
  if (overflow) {
    for (Index d : s)
      if (d == 0) return 0;
    throw value_error(detail::cat("shape ", shape_str(s), " has more than 2^63 elements"));
  }
  return n;
}

/// Normalise a possibly negative axis against a rank; throws value_error when out of range.
inline int normalize_axis(int axis, size_t rank, const std::string& where) {
  int r = static_cast<int>(rank);
  int a = axis < 0 ? axis + r : axis;
  if (a < 0 || a >= r)
    throw value_error(detail::cat(where, ": axis ", axis, " is out of range for rank ", r));
  return a;
}

template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using MatrixMap = Eigen::Map<RowMatrix<T>, Eigen::Unaligned>;
template <class T>
using ConstMatrixMap = Eigen::Map<const RowMatrix<T>, Eigen::Unaligned>;
template <class T>
using ArrayMap = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>, Eigen::Unaligned>;
template <class T>
using ConstArrayMap = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>, Eigen::Unaligned>;

/// Dense row-major tensor. resize() keeps its capacity, so a tensor that is reused with the
/// same (or a smaller) shape never reallocates: the steady-state training loop allocates nothing.
template <class T>
class Tensor {
 public:
  using value_type = T;

  Tensor() = default;
  explicit Tensor(const Shape& shape) { resize(shape); }
  Tensor(const Shape& shape, T fill_value) {
    resize(shape);
    fill(fill_value);
  }
  Tensor(const Shape& shape, std::initializer_list<T> values) {
    resize(shape);
    if (static_cast<Index>(values.size()) != size())
      throw shape_error(detail::cat("Tensor: ", values.size(), " values given for shape ",
                                    shape_str(shape_)));
    std::copy(values.begin(), values.end(), data_.begin());
  }

  const Shape& shape() const { return shape_; }
  Index rank() const { return static_cast<Index>(shape_.size()); }
  Index dim(Index i) const { return shape_.at(static_cast<size_t>(i < 0 ? i + rank() : i)); }
  Index size() const { return static_cast<Index>(data_.size()); }
  bool empty() const { return data_.empty(); }

  T* data() { return data_.data(); }
  const T* data() const { return data_.data(); }
  T& operator[](Index i) { return data_[static_cast<size_t>(i)]; }
  const T& operator[](Index i) const { return data_[static_cast<size_t>(i)]; }
  T* begin() { return data(); }
  T* end() { return data() + size(); }
  const T* begin() const { return data(); }
  const T* end() const { return data() + size(); }

  /// Change the shape; storage grows when needed and is never shrunk, so resizing to a shape
  /// seen before allocates nothing.
  void resize(const Shape& shape) {
    if (shape_ == shape && static_cast<Index>(data_.size()) == shape_size(shape)) return;
    for (Index d : shape)
      if (d < 0)
        throw shape_error(detail::cat("Tensor: cannot allocate the symbolic shape ", shape_str(shape)));
    Index n = detail::checked_elements(shape, "Tensor");  // no wrapped size, within the limit
    shape_ = shape;  // copy-assignment reuses the vector's capacity
    data_.resize(static_cast<size_t>(n));
  }
  void resize_like(const Shape& shape) { resize(shape); }
  /// Resize to `like` with its first dimension replaced by `batch`, without allocating when the
  /// storage is large enough.
  void resize_batch(const Shape& like, Index batch) {
    bool same = shape_.size() == like.size() && !like.empty() && shape_[0] == batch &&
                std::equal(like.begin() + 1, like.end(), shape_.begin() + 1);
    if (!same) {
      shape_ = like;
      if (!shape_.empty()) shape_[0] = batch;
      for (Index d : shape_)
        if (d < 0) throw shape_error(detail::cat("Tensor: cannot allocate the symbolic shape ", shape_str(shape_)));
    }
    data_.resize(static_cast<size_t>(detail::checked_elements(shape_, "Tensor")));
  }
  /// Resize to `like` with its last dimension replaced by `last` (allocation-free when possible).
  void resize_last(const Shape& like, Index last) {
    bool same = shape_.size() == like.size() && !like.empty() && shape_.back() == last &&
                std::equal(like.begin(), like.end() - 1, shape_.begin());
    if (!same) {
      shape_ = like;
      if (!shape_.empty()) shape_.back() = last;
    }
    data_.resize(static_cast<size_t>(detail::checked_elements(shape_, "Tensor")));
  }
  /// Reinterpret the same elements under another shape of equal size.
  void reshape(const Shape& shape) {
    if (shape_size(shape) != size())
      throw shape_error(detail::cat("Tensor: cannot reshape ", shape_str(shape_), " into ",
                                    shape_str(shape)));
    shape_ = shape;
  }

  void fill(T v) { std::fill(data_.begin(), data_.end(), v); }
  void set_zero() { fill(T(0)); }

  /// The tensor as a rows x cols row-major matrix (rows * cols must equal size()).
  MatrixMap<T> matrix(Index rows, Index cols) {
    check_matrix(rows, cols);
    return MatrixMap<T>(data(), rows, cols);
  }
  ConstMatrixMap<T> matrix(Index rows, Index cols) const {
    check_matrix(rows, cols);
    return ConstMatrixMap<T>(data(), rows, cols);
  }
  /// [dim0, rest] view: one row per sample.
  MatrixMap<T> rows_view() { return matrix(shape_.empty() ? 1 : shape_[0], inner(1)); }
  ConstMatrixMap<T> rows_view() const { return matrix(shape_.empty() ? 1 : shape_[0], inner(1)); }
  /// [everything but the last axis, last axis] view.
  MatrixMap<T> last_axis_view() {
    Index c = shape_.empty() ? 1 : shape_.back();
    return matrix(c ? size() / c : 0, c);
  }
  ConstMatrixMap<T> last_axis_view() const {
    Index c = shape_.empty() ? 1 : shape_.back();
    return matrix(c ? size() / c : 0, c);
  }
  ArrayMap<T> array() { return ArrayMap<T>(data(), size()); }
  ConstArrayMap<T> array() const { return ConstArrayMap<T>(data(), size()); }

  /// Product of the dimensions from `from` on.
  Index inner(Index from) const {
    Index n = 1;
    for (size_t i = static_cast<size_t>(from); i < shape_.size(); ++i) n *= shape_[i];
    return n;
  }

  /// Convert element type (float <-> double).
  template <class U>
  Tensor<U> cast() const {
    Tensor<U> r(shape_);
    for (Index i = 0; i < size(); ++i) r[i] = static_cast<U>(data_[static_cast<size_t>(i)]);
    return r;
  }

  /// Rows [begin, begin+count) of the first axis, copied.
  Tensor slice_rows(Index begin, Index count) const {
    Tensor r;
    slice_rows_into(begin, count, r);
    return r;
  }
  void slice_rows_into(Index begin, Index count, Tensor& out) const { slice_rows_into(begin, count, out, shape_); }
  /// The same rows, given the shape `as` (same first axis, same number of elements per row: for
  /// instance with a trailing axis of 1 added or removed). Allocation-free once `out` is large enough.
  void slice_rows_into(Index begin, Index count, Tensor& out, const Shape& as) const {
    if (shape_.empty() || begin < 0 || count < 0 || begin + count > shape_[0])
      throw value_error(detail::cat("Tensor::slice_rows: rows [", begin, ", ", begin + count,
                                    ") out of range for shape ", shape_str(shape_)));
    if (as.empty() || as[0] != shape_[0] || shape_size(as) != size())
      throw shape_error(detail::cat("Tensor::slice_rows: shape ", shape_str(as), " does not fit data of shape ",
                                    shape_str(shape_)));
    out.resize_batch(as, count);
    Index w = inner(1);
    std::copy(data() + begin * w, data() + (begin + count) * w, out.data());
  }

  friend bool operator==(const Tensor& a, const Tensor& b) {
    return a.shape_ == b.shape_ && std::equal(a.begin(), a.end(), b.begin());
  }
  friend bool operator!=(const Tensor& a, const Tensor& b) { return !(a == b); }

 private:
  void check_matrix(Index rows, Index cols) const {
    if (rows * cols != size())
      throw shape_error(detail::cat("Tensor: a ", rows, "x", cols, " view does not fit shape ",
                                    shape_str(shape_)));
  }
  Shape shape_;
  std::vector<T, Eigen::aligned_allocator<T>> data_;
};

}  // namespace graft
