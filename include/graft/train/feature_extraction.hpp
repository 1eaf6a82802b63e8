// graft — feature extraction and the linear probe (the seed notes' advice for small or
// dissimilar datasets: a linear classifier on the activations of a layer somewhere inside the
// network). cut_after gives the trunk of a model up to an inner layer, found by name at any
// depth of nested models; extract_features runs it over a data source into memory or into an
// .h5 file (streamed, atomic) that H5Source reads back to train a head; linear_probe fits a
// softmax classifier with L2 on the pooled activations and returns trunk + pooling + Dense as
// one Keras model.
//
//   auto feats = graft::extract_features(model, "block_13_expand_relu", images);   // (N, ...)
//   graft::extract_features_to_h5(model, "global_average_pooling2d", images, "feats.h5");
//   graft::data::H5Source<float> cached("feats.h5", {"features"}, {"labels"});
//   head->fit(cached, opts);
//   auto probe = graft::linear_probe(model, "block_6_expand_relu", images, {});
#pragma once

#include <algorithm>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include <H5Cpp.h>

#include "graft/data/source.hpp"
#include "graft/io/atomic_file.hpp"
#include "graft/layers/builtin.hpp"
#include "graft/model/model.hpp"

namespace graft {

namespace detail {
/// The direct layer of `m` that is `name` or holds it (in a nested model), or null.
template <class T>
std::shared_ptr<Layer<T>> layer_holding(const Model<T>& m, const std::string& name) {
  for (auto& l : m.layers()) {
    if (l->name() == name) return l;
    if (l->is_model() && layer_holding(static_cast<const Model<T>&>(*l), name)) return l;
  }
  return nullptr;
}
}  // namespace detail

/// The model from its inputs to the output of layer `name` (searched in nested models too),
/// sharing its layers. Inside a nested model, that model's part up to the layer is applied
/// where the model was called.
template <class T>
std::shared_ptr<Model<T>> cut_after(Model<T>& m, const std::string& name) {
  auto holder = detail::layer_holding(m, name);
  if (!holder) throw value_error(detail::cat("cut_after: model '", m.name(), "' has no layer '", name, "'"));
  if (holder->name() == name)  // a direct layer (or a nested model, whole)
    return std::make_shared<Model<T>>(m.inputs(), m.layer_output(name), m.name() + "_to_" + name);
  auto& inner = static_cast<Model<T>&>(*holder);
  auto part = cut_after(inner, name);
  KerasTensor<T> out = (*part)(m.layer_input(holder->name()));
  return std::make_shared<Model<T>>(m.inputs(), out, m.name() + "_to_" + name);
}

/// Outputs of layer `name` for every sample of `src` (inference mode), in order.
template <class T>
Tensor<T> extract_features(Model<T>& m, const std::string& name, const data::Source<T>& src, Index batch_size = 32) {
  auto trunk = cut_after(m, name);
  auto r = trunk->predict(src, batch_size);
  return std::move(r.at(0));
}

/// The same, streamed into an .h5 file: dataset "features" (N, ...) and, when the source has
/// targets, "labels" (its first target). Written atomically; read it back with
/// data::H5Source<T>(path, {"features"}, {"labels"}). Returns the number of samples written.
template <class T>
Index extract_features_to_h5(Model<T>& m, const std::string& name, const data::Source<T>& src, const std::string& path,
                             Index batch_size = 32) {
  if (batch_size <= 0) throw value_error("extract_features_to_h5: batch_size must be positive");
  auto trunk = cut_after(m, name);
  const Index n = src.size();
  if (n <= 0) throw value_error(detail::cat("extract_features_to_h5: ", src.describe(), " has no samples"));
  const bool labels = !src.target_shapes().empty();
  const H5::PredType& mem = sizeof(T) == sizeof(double) ? H5::PredType::NATIVE_DOUBLE : H5::PredType::NATIVE_FLOAT;
  detail::atomic_replace(path, [&](const std::string& tmp) {
    H5::Exception::dontPrint();
    try {
      H5::H5File f(tmp, H5F_ACC_TRUNC);
      H5::DataSet feats, labs;
      std::vector<Index> rows;
      std::vector<Tensor<T>> y;
      for (Index b0 = 0; b0 < n; b0 += batch_size) {
        const Index cnt = std::min(batch_size, n - b0);
        rows.resize(static_cast<size_t>(cnt));
        std::iota(rows.begin(), rows.end(), b0);
        // one batch of the source through the trunk
        data::SubsetSource<T> batch(std::shared_ptr<const data::Source<T>>(&src, [](const data::Source<T>*) {}), rows);
        Tensor<T> fx = std::move(trunk->predict(batch, cnt).at(0));
        auto write = [&](H5::DataSet& d, const char* dname, const Tensor<T>& t, const H5::PredType& type) {
          std::vector<hsize_t> dims(t.shape().begin(), t.shape().end()), start(dims.size(), 0);
          if (b0 == 0) {
            std::vector<hsize_t> full = dims;
            full[0] = static_cast<hsize_t>(n);
            H5::DataSpace fs(static_cast<int>(full.size()), full.data());
            d = f.createDataSet(dname, type, fs);
          }
          H5::DataSpace fs = d.getSpace();
          start[0] = static_cast<hsize_t>(b0);
          fs.selectHyperslab(H5S_SELECT_SET, dims.data(), start.data());
          H5::DataSpace ms(static_cast<int>(dims.size()), dims.data());
          d.write(t.data(), mem, ms, fs);
        };
        write(feats, "features", fx, H5::PredType::NATIVE_FLOAT);
        if (labels) {
          src.load_targets(rows.data(), cnt, y);
          write(labs, "labels", y.at(0), H5::PredType::NATIVE_FLOAT);
        }
      }
    } catch (const H5::Exception& e) {
      throw io_error(detail::cat("extract_features_to_h5: writing '", path, "' failed: ", e.getDetailMsg()));
    }
  });
  return n;
}

/// Options of linear_probe.
struct LinearProbeOptions {
  /// "avg" or "max" global pooling of an inner layer's (N, H, W, C) or (N, L, C) output;
  /// "flatten" keeps every activation. Rank-2 outputs are used as they are.
  std::string pooling = "avg";
  double l2 = 1e-4;            ///< L2 penalty on the classifier's kernel (Keras L2 regularizer)
  double learning_rate = 1e-3; ///< Adam
  int epochs = 30;
  Index batch_size = 32;
  std::uint64_t seed = 1;
  /// Classes (0: from the source's targets: one-hot width, or the largest integer label + 1).
  Index num_classes = 0;
  std::shared_ptr<const data::Source<float>> validation;  ///< float models only
  int verbose = 0;
  std::ostream* out = &std::cout;
};

namespace detail {
/// Classes in a source's first target: its one-hot width, or the largest integer label + 1.
template <class T>
Index count_classes(const data::Source<T>& src) {
  const auto ts = src.target_shapes();
  if (ts.empty()) throw value_error(detail::cat("linear_probe: ", src.describe(), " has no labels"));
  const Index w = shape_size(ts[0]);
  if (w > 1) return w;
  double mx = -1;
  std::vector<Index> rows;
  std::vector<Tensor<T>> y;
  for (Index b0 = 0; b0 < src.size(); b0 += 1024) {
    const Index cnt = std::min<Index>(1024, src.size() - b0);
    rows.resize(static_cast<size_t>(cnt));
    std::iota(rows.begin(), rows.end(), b0);
    src.load_targets(rows.data(), cnt, y);
    for (T v : y.at(0)) mx = std::max(mx, static_cast<double>(v));
  }
  if (mx < 0) throw value_error(detail::cat("linear_probe: no labels >= 0 in ", src.describe()));
  return static_cast<Index>(mx) + 1;
}
}  // namespace detail

/// A linear (softmax, L2) classifier on the pooled activations of layer `name`: the returned
/// model is the frozen trunk up to `name` + pooling + Dense(classes, softmax), trained on `train`
/// (fit's feature cache computes the trunk once), compiled, and saveable as a Keras file. The
/// trunk's layers are m's own (shared, as in Keras), and are left frozen.
template <class T>
std::shared_ptr<Model<T>> linear_probe(Model<T>& m, const std::string& name, const data::Source<T>& train,
                                       const LinearProbeOptions& o = {}, History* history = nullptr) {
  auto trunk = cut_after(m, name);
  const Index classes = o.num_classes > 0 ? o.num_classes : detail::count_classes(train);
  if (classes < 2) throw value_error(detail::cat("linear_probe: needs at least 2 classes, got ", classes));
  KerasTensor<T> h = trunk->outputs().at(0);
  const size_t rank = h.shape().size();
  std::shared_ptr<Layer<T>> pool;
  if (rank == 4 || rank == 3) {
    if (o.pooling == "avg") pool = rank == 4 ? std::shared_ptr<Layer<T>>(std::make_shared<GlobalAveragePooling2D<T>>(false, name + "_probe_pool"))
                                             : std::shared_ptr<Layer<T>>(std::make_shared<GlobalAveragePooling1D<T>>(false, name + "_probe_pool"));
    else if (o.pooling == "max") pool = rank == 4 ? std::shared_ptr<Layer<T>>(std::make_shared<GlobalMaxPooling2D<T>>(false, name + "_probe_pool"))
                                                  : std::shared_ptr<Layer<T>>(std::make_shared<GlobalMaxPooling1D<T>>(false, name + "_probe_pool"));
    else if (o.pooling == "flatten") pool = std::make_shared<Flatten<T>>(name + "_probe_flatten");
    else throw value_error(detail::cat("linear_probe: pooling must be avg, max or flatten, got '", o.pooling, "'"));
  } else if (rank > 4) {
    pool = std::make_shared<Flatten<T>>(name + "_probe_flatten");
  }
  if (pool) h = (*pool)(h);
  auto dense = std::make_shared<Dense<T>>(classes, "softmax", true, name + "_probe");
  if (o.l2 > 0) {
    dense->kernel_regularizer.l2 = o.l2;
    dense->kernel_regularizer.keras_class = "L2";
  }
  auto probe = std::make_shared<Model<T>>(trunk->inputs(), (*dense)(h), m.name() + "_probe");
  trunk->set_trainable(false);
  const bool one_hot = shape_size(train.target_shapes().at(0)) > 1;
  probe->compile(std::make_shared<Adam<T>>(o.learning_rate),
                 one_hot ? "categorical_crossentropy" : "sparse_categorical_crossentropy", {"accuracy"});
  FitOptions<T> fo;
  fo.epochs = o.epochs;
  fo.batch_size = o.batch_size;
  fo.seed = o.seed;
  fo.verbose = o.verbose;
  fo.out = o.out;
  if constexpr (std::is_same<T, float>::value) fo.validation_source = o.validation;
  History hist = probe->fit(train, fo);
  if (history) *history = std::move(hist);
  return probe;
}

}  // namespace graft
