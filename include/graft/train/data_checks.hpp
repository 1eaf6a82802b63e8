// graft — checks of training data before fit() trains on it: NaN or infinite values in inputs
// and targets (named by sample and position), class-index labels of sparse losses that are
// NaN, fractional or out of range, sample counts that differ between arrays, and empty data.
// Keras trains on such data and produces NaN weights (or, for bad sparse labels, an error deep
// in the backend); graft refuses it up front with a value_error saying where the bad value is.
// The non-finite check can be turned off (FitOptions::check_data = false): some users train on
// data with NaN on purpose, e.g. masked by a custom loss.
#pragma once

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "graft/core/errors.hpp"
#include "graft/core/tensor.hpp"

namespace graft {

/// Where flat element `flat` of a tensor of shape `shape` is: "sample 12, column 3" for rank 2,
/// "sample 12, position [1, 4, 0]" for higher ranks, "sample 12" for rank 1. With `rows`, row r
/// of the tensor is sample rows[r] of the dataset (a batch loaded from a source).
inline std::string describe_element(const Shape& shape, Index flat, const Index* rows = nullptr) {
  if (shape.empty()) return "the scalar";
  Index inner = 1;
  for (size_t d = 1; d < shape.size(); ++d) inner *= shape[d];
  const Index row = inner > 0 ? flat / inner : 0;
  Index rest = inner > 0 ? flat % inner : 0;
  std::string s = detail::cat("sample ", rows ? rows[row] : row);
  if (shape.size() == 2) return s + detail::cat(", column ", rest);
  if (shape.size() > 2) {
    std::vector<Index> pos(shape.size() - 1);
    for (size_t d = shape.size(); d-- > 1;) {
      pos[d - 1] = shape[d] > 0 ? rest % shape[d] : 0;
      rest = shape[d] > 0 ? rest / shape[d] : 0;
    }
    s += ", position [";
    for (size_t i = 0; i < pos.size(); ++i) s += detail::cat(i ? ", " : "", pos[i]);
    s += "]";
  }
  return s;
}

/// value_error when `t` holds NaN or an infinity: names the first one by sample and position
/// and counts them all. `what` names the tensor ("fit: input 0"); `rows` as in describe_element.
template <class T>
void check_finite(const Tensor<T>& t, const std::string& what, const Index* rows = nullptr) {
  const T* p = t.data();
  const Index n = t.size();
  Index first = -1;
  for (Index i = 0; i < n; ++i)
    if (!std::isfinite(p[i])) {
      first = i;
      break;
    }
  if (first < 0) return;
  Index count = 0;
  for (Index i = first; i < n; ++i) count += std::isfinite(p[i]) ? 0 : 1;
  const double v = static_cast<double>(p[first]);
  throw value_error(detail::cat(what, " holds ", std::isnan(v) ? "NaN" : (v > 0 ? "inf" : "-inf"), " at ",
                                describe_element(t.shape(), first, rows), " (", count, " non-finite value",
                                count == 1 ? "" : "s", " in ", n, "): clean the data, or turn this check off "
                                "(FitOptions::check_data = false) to train on it anyway"));
}

/// value_error unless every value of `labels` is a class index in [0, classes) (classes <= 0:
/// unknown, only NaN, fractions and negatives are refused). For sparse categorical losses,
/// whose labels Keras casts to integers without a check.
template <class T>
void check_class_labels(const Tensor<T>& labels, Index classes, const std::string& what, const Index* rows = nullptr) {
  const T* p = labels.data();
  const Index n = labels.size();
  for (Index i = 0; i < n; ++i) {
    const double v = static_cast<double>(p[i]);
    if (std::isfinite(v) && v >= 0 && v == std::floor(v) && (classes <= 0 || v < static_cast<double>(classes))) continue;
    const std::string range = classes > 0 ? detail::cat("[0, ", classes, ")") : std::string("0, 1, 2, ...");
    throw value_error(detail::cat(what, ": label ", v, " at ", describe_element(labels.shape(), i, rows),
                                  " is not a class index in ", range,
                                  classes > 0 ? detail::cat(" (the model's output has ", classes, " classes)") : std::string()));
  }
}

/// value_error for no arrays or no samples; shape_error when the arrays' first axes (samples)
/// differ. `x` and `y`: the inputs and targets of fit (pointers, none null).
template <class T>
Index check_sample_counts(const std::vector<const Tensor<T>*>& x, const std::vector<const Tensor<T>*>& y,
                          const std::string& what) {
  if (x.empty()) throw value_error(detail::cat(what, ": no input arrays"));
  Index n = -1;
  auto visit = [&](const std::vector<const Tensor<T>*>& v, const char* kind) {
    for (size_t i = 0; i < v.size(); ++i) {
      if (!v[i] || v[i]->rank() == 0)
        throw shape_error(detail::cat(what, ": ", kind, " ", i, " has no sample axis (a scalar)"));
      const Index k = v[i]->dim(0);
      if (n < 0) n = k;
      else if (k != n)
        throw shape_error(detail::cat(what, ": ", kind, " ", i, " has ", k, " samples but input 0 has ", n,
                                      " (every input and target needs one row per sample)"));
    }
  };
  visit(x, "input");
  visit(y, "target");
  if (n == 0) throw value_error(detail::cat(what, ": the training data is empty (0 samples)"));
  return n;
}

/// Everything above on fit()'s arrays, for a compiled model `m` (graft::Model<T>: its losses say
/// which targets hold class indices and its output shapes how many classes there are).
/// `check_values` false skips the NaN/inf scan (FitOptions::check_data); counts and class
/// labels are always checked. `rows`: for a batch loaded from a data source, the sample number
/// in the source of each of its rows (messages name those); null for whole arrays.
template <class M, class T>
void check_training_data(const M& m, const std::vector<const Tensor<T>*>& x, const std::vector<const Tensor<T>*>& y,
                         bool check_values, const std::string& what = "fit", const Index* rows = nullptr) {
  check_sample_counts(x, y, what);
  if (check_values) {
    for (size_t i = 0; i < x.size(); ++i) check_finite(*x[i], detail::cat(what, ": input ", i), rows);
    for (size_t j = 0; j < y.size(); ++j) check_finite(*y[j], detail::cat(what, ": target ", j), rows);
  }
  const auto& losses = m.compile_state().losses;
  const std::vector<Shape> outs = m.output_shapes();
  for (size_t j = 0; j < y.size() && j < losses.size(); ++j) {
    if (!losses[j] || !losses[j]->sparse_labels()) continue;
    const Index classes = j < outs.size() && !outs[j].empty() ? outs[j].back() : -1;
    check_class_labels(*y[j], classes, detail::cat(what, ": target ", j, " (", losses[j]->name(), ")"), rows);
  }
}

/// check_training_data on one batch of `cnt` samples loaded from a data source (fit() on a
/// source that is not arrays in memory sees its values only batch by batch): `rows` are the
/// batch's sample numbers in the source.
template <class M, class T>
void check_training_batch(const M& m, const std::vector<Tensor<T>>& x, const std::vector<Tensor<T>>& y, const Index* rows,
                          bool check_values, const std::string& what = "fit") {
  std::vector<const Tensor<T>*> px, py;
  for (const auto& t : x) px.push_back(&t);
  for (const auto& t : y) py.push_back(&t);
  check_training_data(m, px, py, check_values, what, rows);
}

}  // namespace graft
