// graft — data sources: datasets that fit(), evaluate() and predict() read batch by batch,
// whatever their size. A Source is map-style (PyTorch's Dataset; a tf.data source before
// batching): N samples addressed by index. The loop chooses the order (shuffle, seed, resume,
// shards for data-parallel runs) and asks the source for the rows of each batch, on a worker
// thread one batch ahead of training (data/prefetch.hpp). Memory stays bounded by a few batches
// whatever the dataset's size.
//
//   graft::data::ArraySource<float> src(x, y);                      // tensors in memory
//   graft::data::FunctionSource<float> fn(n, {{224, 224, 3}}, {{1}},
//       [&](const Index* rows, Index cnt, auto& x, auto& y) { ... });   // a user callback
//   graft::data::H5Source<float> h5("big.h5", {"x"}, {"y"});       // HDF5 read in row runs
//   model.fit(src, opts);
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "graft/core/errors.hpp"
#include "graft/core/tensor.hpp"

namespace graft {
namespace data {

/// A dataset of size() samples, each one tensor per input and one per target.
template <class T = float>
class Source {
 public:
  virtual ~Source() = default;
  /// Number of samples.
  virtual Index size() const = 0;
  /// Shape of one sample of each input (no batch axis).
  virtual std::vector<Shape> input_shapes() const = 0;
  /// Shape of one sample of each target (no batch axis); empty when the source has no targets
  /// (label_mode=None: predict only).
  virtual std::vector<Shape> target_shapes() const = 0;
  /// Rows rows[0..cnt) into x (one tensor per input, shape (cnt, ...input_shapes()[i])) and y
  /// (one per target). The tensors are reused between calls (Tensor::resize keeps capacity).
  /// Called from one worker thread at a time: it must not touch state shared with training.
  virtual void load(const Index* rows, Index cnt, std::vector<Tensor<T>>& x, std::vector<Tensor<T>>& y) const = 0;
  /// For messages: what the source reads ("image folder 'photos' (1200 files, 3 classes)").
  virtual std::string describe() const = 0;
  /// A hash of what the source reads (file names, sizes, shapes), so that a resumed run or the
  /// ranks of a data-parallel run can tell that they read the same data. 0: unknown.
  virtual std::uint64_t fingerprint() const { return 0; }
  /// True when load() only copies memory (no worker thread is worth starting for it).
  virtual bool in_memory() const { return false; }
  /// The targets of rows[0..cnt) alone: fit() reads only these for a batch whose inputs it has
  /// cached. Sources that decode inputs (images) override it to skip the decoding.
  virtual void load_targets(const Index* rows, Index cnt, std::vector<Tensor<T>>& y) const {
    std::vector<Tensor<T>> x;
    load(rows, cnt, x, y);
  }
};

namespace detail {
inline void fnv_mix(std::uint64_t& h, const void* p, size_t n) {
  const unsigned char* c = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) h = (h ^ c[i]) * 1099511628211ull;
}
inline void fnv_mix(std::uint64_t& h, const std::string& s) { fnv_mix(h, s.data(), s.size()); }
constexpr std::uint64_t fnv_basis = 1469598103934665603ull;

/// Rows of an in-memory tensor into dst (shape (cnt, sample...)).
template <class T>
void copy_rows(const Tensor<T>& src, const Index* rows, Index cnt, Tensor<T>& dst) {
  dst.resize_batch(src.shape(), cnt);
  const Index w = src.inner(1), n = src.dim(0);
  for (Index r = 0; r < cnt; ++r) {
    if (rows[r] < 0 || rows[r] >= n)
      throw value_error(graft::detail::cat("data source: row ", rows[r], " out of range for ", n, " samples"));
    std::copy(src.data() + rows[r] * w, src.data() + (rows[r] + 1) * w, dst.data() + r * w);
  }
}
}  // namespace detail

/// Tensors in memory, referenced (not copied): they must outlive the source.
template <class T = float>
class ArraySource : public Source<T> {
 public:
  ArraySource(std::vector<const Tensor<T>*> x, std::vector<const Tensor<T>*> y) : x_(std::move(x)), y_(std::move(y)) {
    if (x_.empty()) throw value_error("ArraySource: no input arrays");
    for (auto* t : x_)
      if (!t || t->rank() == 0) throw shape_error("ArraySource: every array needs a sample axis");
    for (auto* t : y_)
      if (!t || t->rank() == 0) throw shape_error("ArraySource: every array needs a sample axis");
    const Index n = x_[0]->dim(0);
    for (auto* t : x_)
      if (t->dim(0) != n) throw shape_error(graft::detail::cat("ArraySource: inputs have ", n, " and ", t->dim(0), " samples"));
    for (auto* t : y_)
      if (t->dim(0) != n) throw shape_error(graft::detail::cat("ArraySource: ", n, " input samples but a target has ", t->dim(0)));
  }
  ArraySource(const Tensor<T>& x, const Tensor<T>& y) : ArraySource(std::vector<const Tensor<T>*>{&x}, std::vector<const Tensor<T>*>{&y}) {}
  explicit ArraySource(const Tensor<T>& x) : ArraySource(std::vector<const Tensor<T>*>{&x}, {}) {}

  Index size() const override { return x_[0]->dim(0); }
  std::vector<Shape> input_shapes() const override { return sample_shapes(x_); }
  std::vector<Shape> target_shapes() const override { return sample_shapes(y_); }
  void load(const Index* rows, Index cnt, std::vector<Tensor<T>>& x, std::vector<Tensor<T>>& y) const override {
    x.resize(x_.size());
    y.resize(y_.size());
    for (size_t i = 0; i < x_.size(); ++i) detail::copy_rows(*x_[i], rows, cnt, x[i]);
    for (size_t j = 0; j < y_.size(); ++j) detail::copy_rows(*y_[j], rows, cnt, y[j]);
  }
  void load_targets(const Index* rows, Index cnt, std::vector<Tensor<T>>& y) const override {
    y.resize(y_.size());
    for (size_t j = 0; j < y_.size(); ++j) detail::copy_rows(*y_[j], rows, cnt, y[j]);
  }
  bool in_memory() const override { return true; }
  std::string describe() const override { return graft::detail::cat("arrays (", size(), " samples)"); }
  /// FNV-1a over the arrays' shapes and up to 4096 evenly spaced values of each (cheap, and
  /// different for another dataset of the same shape).
  std::uint64_t fingerprint() const override {
    std::uint64_t h = detail::fnv_basis;
    for (const auto* v : {&x_, &y_})
      for (const Tensor<T>* t : *v) {
        for (Index d : t->shape()) detail::fnv_mix(h, &d, sizeof d);
        const Index n = t->size(), stride = std::max<Index>(1, n / 4096);
        for (Index i = 0; i < n; i += stride) {
          float f = static_cast<float>((*t)[i]);
          detail::fnv_mix(h, &f, sizeof f);
        }
      }
    return h;
  }
  const std::vector<const Tensor<T>*>& inputs() const { return x_; }
  const std::vector<const Tensor<T>*>& targets() const { return y_; }

 private:
  static std::vector<Shape> sample_shapes(const std::vector<const Tensor<T>*>& v) {
    std::vector<Shape> r;
    for (auto* t : v) r.emplace_back(t->shape().begin() + 1, t->shape().end());
    return r;
  }
  std::vector<const Tensor<T>*> x_, y_;
};

/// A user callback that loads rows: loader(rows, cnt, x, y) fills x and y as Source::load does
/// (x and y already have one tensor per input and target).
template <class T = float>
class FunctionSource : public Source<T> {
 public:
  using Loader = std::function<void(const Index*, Index, std::vector<Tensor<T>>&, std::vector<Tensor<T>>&)>;
  FunctionSource(Index n, std::vector<Shape> input_shapes, std::vector<Shape> target_shapes, Loader loader,
                 std::string what = "a user loader")
      : n_(n), xs_(std::move(input_shapes)), ys_(std::move(target_shapes)), loader_(std::move(loader)), what_(std::move(what)) {
    if (n_ < 0) throw value_error("FunctionSource: the number of samples must be >= 0");
    if (xs_.empty()) throw value_error("FunctionSource: no input shapes");
    if (!loader_) throw value_error("FunctionSource: no loader");
  }
  Index size() const override { return n_; }
  std::vector<Shape> input_shapes() const override { return xs_; }
  std::vector<Shape> target_shapes() const override { return ys_; }
  void load(const Index* rows, Index cnt, std::vector<Tensor<T>>& x, std::vector<Tensor<T>>& y) const override {
    x.resize(xs_.size());
    y.resize(ys_.size());
    loader_(rows, cnt, x, y);
    check(x, xs_, cnt, "input");
    check(y, ys_, cnt, "target");
  }
  std::string describe() const override { return graft::detail::cat(what_, " (", n_, " samples)"); }

 private:
  void check(const std::vector<Tensor<T>>& v, const std::vector<Shape>& s, Index cnt, const char* what) const {
    for (size_t i = 0; i < s.size(); ++i) {
      Shape want{cnt};
      want.insert(want.end(), s[i].begin(), s[i].end());
      if (v[i].shape() != want)
        throw shape_error(graft::detail::cat(describe(), ": the loader gave ", what, " ", i, " shape ", shape_str(v[i].shape()),
                                             ", expected ", shape_str(want)));
    }
  }
  Index n_;
  std::vector<Shape> xs_, ys_;
  Loader loader_;
  std::string what_;
};

/// A transformation of another source's batches, run on the worker thread with the loading
/// (augmentation or preprocessing done in the input pipeline, as with tf.data's map).
/// fn(x, y) may change the values but not the shapes declared by `input_shapes` (default: the
/// inner source's).
template <class T = float>
class MappedSource : public Source<T> {
 public:
  using Fn = std::function<void(std::vector<Tensor<T>>&, std::vector<Tensor<T>>&)>;
  MappedSource(std::shared_ptr<const Source<T>> inner, Fn fn, std::vector<Shape> input_shapes = {})
      : inner_(std::move(inner)), fn_(std::move(fn)), xs_(std::move(input_shapes)) {
    if (!inner_ || !fn_) throw value_error("MappedSource: needs a source and a function");
    if (xs_.empty()) xs_ = inner_->input_shapes();
  }
  Index size() const override { return inner_->size(); }
  std::vector<Shape> input_shapes() const override { return xs_; }
  std::vector<Shape> target_shapes() const override { return inner_->target_shapes(); }
  void load(const Index* rows, Index cnt, std::vector<Tensor<T>>& x, std::vector<Tensor<T>>& y) const override {
    inner_->load(rows, cnt, x, y);
    fn_(x, y);
  }
  std::string describe() const override { return inner_->describe() + ", mapped"; }
  void load_targets(const Index* rows, Index cnt, std::vector<Tensor<T>>& y) const override {
    std::vector<Tensor<T>> x;
    inner_->load(rows, cnt, x, y);
    fn_(x, y);  // the function may change the targets too
  }
  std::uint64_t fingerprint() const override { return inner_->fingerprint(); }

 private:
  std::shared_ptr<const Source<T>> inner_;
  Fn fn_;
  std::vector<Shape> xs_;
};

/// Samples rows[0..n) of another source, in that order (a validation subset, a rank's shard).
template <class T = float>
class SubsetSource : public Source<T> {
 public:
  SubsetSource(std::shared_ptr<const Source<T>> inner, std::vector<Index> rows) : inner_(std::move(inner)), rows_(std::move(rows)) {
    if (!inner_) throw value_error("SubsetSource: no source");
    for (Index r : rows_)
      if (r < 0 || r >= inner_->size())
        throw value_error(graft::detail::cat("SubsetSource: row ", r, " out of range for ", inner_->describe()));
  }
  Index size() const override { return static_cast<Index>(rows_.size()); }
  std::vector<Shape> input_shapes() const override { return inner_->input_shapes(); }
  std::vector<Shape> target_shapes() const override { return inner_->target_shapes(); }
  void load(const Index* rows, Index cnt, std::vector<Tensor<T>>& x, std::vector<Tensor<T>>& y) const override {
    thread_local std::vector<Index> mapped;
    mapped.resize(static_cast<size_t>(cnt));
    for (Index i = 0; i < cnt; ++i) {
      if (rows[i] < 0 || rows[i] >= size()) throw value_error(graft::detail::cat("SubsetSource: row ", rows[i], " out of range"));
      mapped[static_cast<size_t>(i)] = rows_[static_cast<size_t>(rows[i])];
    }
    inner_->load(mapped.data(), cnt, x, y);
  }
  void load_targets(const Index* rows, Index cnt, std::vector<Tensor<T>>& y) const override {
    std::vector<Index> mapped(static_cast<size_t>(cnt));
    for (Index i = 0; i < cnt; ++i) {
      if (rows[i] < 0 || rows[i] >= size()) throw value_error(graft::detail::cat("SubsetSource: row ", rows[i], " out of range"));
      mapped[static_cast<size_t>(i)] = rows_[static_cast<size_t>(rows[i])];
    }
    inner_->load_targets(mapped.data(), cnt, y);
  }
  bool in_memory() const override { return inner_->in_memory(); }
  std::string describe() const override { return graft::detail::cat(inner_->describe(), ", ", rows_.size(), " of its samples"); }
  std::uint64_t fingerprint() const override {
    std::uint64_t h = inner_->fingerprint();
    detail::fnv_mix(h, rows_.data(), rows_.size() * sizeof(Index));
    return h;
  }

 private:
  std::shared_ptr<const Source<T>> inner_;
  std::vector<Index> rows_;
};

}  // namespace data
}  // namespace graft
