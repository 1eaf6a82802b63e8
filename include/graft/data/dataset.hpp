// graft — small helpers for in-memory datasets (x, y pairs with samples on the first axis):
// select classes, relabel, take the first n, split, shuffle with a seed.
//
//   using namespace graft::data;
//   Dataset<float> train{images, labels};
//   auto a = select_classes(train, {0, 1, 2, 3, 4, 7, 8, 9});          // rows kept in order
//   relabel(a, [](float c) { return c > 6 ? c - 2 : c; });              // 0..7
//   auto [valid, rest] = split_at(train, 5000);                         // first 5000 / the rest
//   auto small = take(shuffled(rest, 42), 200);
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <numeric>
#include <utility>
#include <vector>

#include "graft/core/errors.hpp"
#include "graft/core/random.hpp"
#include "graft/core/tensor.hpp"

namespace graft {
namespace data {

/// Inputs and targets with one row per sample on the first axis.
template <class T = float>
struct Dataset {
  Tensor<T> x;
  Tensor<T> y;

  Dataset() = default;
  Dataset(Tensor<T> x_, Tensor<T> y_) : x(std::move(x_)), y(std::move(y_)) {
    if (x.rank() == 0 || y.rank() == 0)
      throw shape_error("Dataset: x and y need a sample axis");
    if (x.dim(0) != y.dim(0))
      throw shape_error(graft::detail::cat("Dataset: x has ", x.dim(0), " samples (shape ", shape_str(x.shape()),
                                           ") but y has ", y.dim(0), " (shape ", shape_str(y.shape()), ")"));
  }
  Index size() const { return x.rank() ? x.dim(0) : 0; }
};

/// Rows `rows` of `t` (any order, repeats allowed), copied.
template <class T>
Tensor<T> gather_rows(const Tensor<T>& t, const std::vector<Index>& rows) {
  if (t.rank() == 0) throw shape_error("gather_rows: the tensor has no sample axis");
  const Index n = t.dim(0), w = t.inner(1);
  Tensor<T> r;
  r.resize_batch(t.shape(), static_cast<Index>(rows.size()));
  for (size_t i = 0; i < rows.size(); ++i) {
    Index k = rows[i];
    if (k < 0 || k >= n)
      throw value_error(graft::detail::cat("gather_rows: row ", k, " out of range for ", n, " samples"));
    std::copy(t.data() + k * w, t.data() + (k + 1) * w, r.data() + static_cast<Index>(i) * w);
  }
  return r;
}

/// The samples at `rows`, in that order.
template <class T>
Dataset<T> subset(const Dataset<T>& d, const std::vector<Index>& rows) {
  return Dataset<T>(gather_rows(d.x, rows), gather_rows(d.y, rows));
}

/// Samples [begin, begin + count).
template <class T>
Dataset<T> slice(const Dataset<T>& d, Index begin, Index count) {
  if (begin < 0 || count < 0 || begin + count > d.size())
    throw value_error(graft::detail::cat("slice: samples [", begin, ", ", begin + count, ") out of range for ",
                                         d.size(), " samples"));
  return Dataset<T>(d.x.slice_rows(begin, count), d.y.slice_rows(begin, count));
}

/// The first n samples (value_error when there are fewer: no silent clipping).
template <class T>
Dataset<T> take(const Dataset<T>& d, Index n) {
  if (n < 0 || n > d.size())
    throw value_error(graft::detail::cat("take: asked for the first ", n, " samples of ", d.size()));
  return slice(d, 0, n);
}

/// (first n samples, the rest).
template <class T>
std::pair<Dataset<T>, Dataset<T>> split_at(const Dataset<T>& d, Index n) {
  if (n < 0 || n > d.size())
    throw value_error(graft::detail::cat("split_at: cannot split ", d.size(), " samples at ", n));
  return {slice(d, 0, n), slice(d, n, d.size() - n)};
}

/// (the first `1 - fraction`, the last `fraction`), split as Keras' validation_split does:
/// the first floor(N * (1 - fraction)) samples, then the rest.
template <class T>
std::pair<Dataset<T>, Dataset<T>> split_fraction(const Dataset<T>& d, double fraction) {
  if (!(fraction >= 0 && fraction <= 1)) throw value_error("split_fraction: fraction must be in [0, 1]");
  Index n = static_cast<Index>(static_cast<double>(d.size()) * (1.0 - fraction));
  return split_at(d, n);
}

/// A permutation of 0..n-1 from `seed` (Fisher-Yates over graft::Rng: the same on every platform).
inline std::vector<Index> permutation(Index n, std::uint64_t seed) {
  if (n < 0) throw value_error("permutation: n must be >= 0");
  std::vector<Index> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), Index(0));
  Rng rng(seed);
  for (Index i = n - 1; i > 0; --i)
    std::swap(idx[static_cast<size_t>(i)], idx[static_cast<size_t>(rng.below(static_cast<std::uint64_t>(i + 1)))]);
  return idx;
}

/// The samples in an order drawn from `seed`.
template <class T>
Dataset<T> shuffled(const Dataset<T>& d, std::uint64_t seed) {
  return subset(d, permutation(d.size(), seed));
}

namespace detail {
/// The label of sample i for y of shape [N] or [N, 1].
template <class T>
void check_label_shape(const Tensor<T>& y, const char* what) {
  if (y.rank() == 0 || y.inner(1) != 1)
    throw shape_error(graft::detail::cat(what, ": labels must have shape (N,) or (N, 1), got ", shape_str(y.shape())));
}
}  // namespace detail

/// Rows whose label satisfies `keep(label)`, in order.
template <class T, class Pred>
std::vector<Index> rows_where(const Tensor<T>& y, Pred keep) {
  detail::check_label_shape(y, "rows_where");
  std::vector<Index> r;
  for (Index i = 0; i < y.dim(0); ++i)
    if (keep(y[i])) r.push_back(i);
  return r;
}

/// The samples whose label satisfies `keep(label)`, order kept.
template <class T, class Pred>
Dataset<T> filter_labels(const Dataset<T>& d, Pred keep) {
  return subset(d, rows_where(d.y, keep));
}

/// The samples whose (integer) label is one of `classes`, order kept; labels unchanged.
template <class T>
Dataset<T> select_classes(const Dataset<T>& d, const std::vector<int>& classes) {
  return filter_labels(d, [&](T v) {
    return std::find(classes.begin(), classes.end(), static_cast<int>(v)) != classes.end();
  });
}

/// Replace every label v by f(v).
template <class T, class F>
void relabel(Dataset<T>& d, F f) {
  detail::check_label_shape(d.y, "relabel");
  for (Index i = 0; i < d.y.size(); ++i) d.y[i] = static_cast<T>(f(d.y[i]));
}

/// Map labels through a table (e.g. {{5, 0}, {6, 1}}); a label missing from the table is a
/// value_error, and then `d` is left unchanged.
template <class T>
void relabel(Dataset<T>& d, const std::map<int, int>& table) {
  detail::check_label_shape(d.y, "relabel");
  Tensor<T> y = d.y;
  for (Index i = 0; i < y.size(); ++i) {
    auto it = table.find(static_cast<int>(y[i]));
    if (it == table.end())
      throw value_error(graft::detail::cat("relabel: label ", y[i], " (sample ", i, ") is not in the table"));
    y[i] = static_cast<T>(it->second);
  }
  d.y = std::move(y);
}

/// How many samples of each (integer) label.
template <class T>
std::map<int, Index> class_counts(const Tensor<T>& y) {
  detail::check_label_shape(y, "class_counts");
  std::map<int, Index> c;
  for (Index i = 0; i < y.dim(0); ++i) ++c[static_cast<int>(y[i])];
  return c;
}

}  // namespace data
}  // namespace graft
