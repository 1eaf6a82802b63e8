// graft — everything training changes, captured so that it can be put back bit for bit: every
// weight (BatchNormalization statistics included), the optimizer's slots, iteration count,
// learning rate (or schedule), momentum and weight decay, and the generators of stochastic layers
// (Dropout, GaussianNoise, ...). In memory (the learning-rate finder restores the model after its
// sweep) and on disk (BackupAndRestore resumes a killed run), with fingerprints that tell another
// model's or another dataset's checkpoint apart.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <type_traits>
#include <string>
#include <vector>

#include "graft/io/atomic_file.hpp"
#include "graft/io/hdf5.hpp"
#include "graft/model/model.hpp"
#include "graft/train/loop.hpp"

namespace graft {

namespace detail {

/// A double as exact text ("%a"), and back.
inline std::string hex_double(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%a", v);
  return buf;
}
inline double from_hex_double(const std::string& s) {
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || !end || *end) throw format_error(detail::cat("checkpoint: '", s.substr(0, 40), "' is not a number"));
  return v;
}

/// A dataset in T's own precision (float32 or float64), so that a restored run is bit-identical.
template <class T>
void write_exact(h5::Group& g, const std::string& rel, const Tensor<T>& t) {
  size_t slash = rel.rfind('/');
  h5::Group parent = slash == std::string::npos ? g : g.create_groups(rel.substr(0, slash));
  const std::string leaf = slash == std::string::npos ? rel : rel.substr(slash + 1);
  try {
    std::vector<hsize_t> dims;
    for (Index d : t.shape()) dims.push_back(static_cast<hsize_t>(d));
    H5::DataSpace sp = dims.empty() ? H5::DataSpace(H5S_SCALAR) : H5::DataSpace(static_cast<int>(dims.size()), dims.data());
    const bool dbl = std::is_same<T, double>::value;
    H5::DataSet d = parent.h5().createDataSet(leaf, dbl ? H5::PredType::IEEE_F64LE : H5::PredType::IEEE_F32LE, sp);
    if (t.size()) d.write(t.data(), dbl ? H5::PredType::NATIVE_DOUBLE : H5::PredType::NATIVE_FLOAT);
  } catch (const H5::Exception& e) {
    throw io_error(detail::cat(g.where(rel), ": cannot write dataset: ", e.getDetailMsg()));
  }
}

/// Text as a uint8 dataset (the metadata outgrows HDF5's 64 KiB attribute limit with many
/// generators), and back, bounded.
inline void write_text(h5::Group& g, const std::string& name, const std::string& text) {
  try {
    hsize_t n = text.size();
    H5::DataSpace sp(1, &n);
    H5::DataSet d = g.h5().createDataSet(name, H5::PredType::STD_U8LE, sp);
    if (n) d.write(text.data(), H5::PredType::NATIVE_UINT8);
  } catch (const H5::Exception& e) {
    throw io_error(detail::cat(g.where(name), ": cannot write dataset: ", e.getDetailMsg()));
  }
}
inline std::string read_text(h5::Group& g, const std::string& name) {
  if (g.kind(name) != h5::Group::Kind::dataset) throw format_error(detail::cat(g.where(name), ": missing"));
  Shape s = h5::dataset_shape(g, name);
  if (s.size() != 1 || s[0] > (Index(1) << 30)) throw format_error(detail::cat(g.where(name), ": expected a byte string"));
  try {
    H5::DataSet d = g.h5().openDataSet(name);
    if (d.getTypeClass() != H5T_INTEGER || d.getDataType().getSize() != 1) throw format_error(detail::cat(g.where(name), ": expected bytes"));
    std::string text(static_cast<size_t>(s[0]), '\0');
    if (!text.empty()) d.read(&text[0], H5::PredType::NATIVE_UINT8);
    return text;
  } catch (const H5::Exception& e) {
    throw format_error(detail::cat(g.where(name), ": cannot read: ", e.getDetailMsg()));
  }
}

/// Every layer with a random generator, depth first through nested models, in layer order.
template <class T>
void stochastic_layers(Model<T>& m, std::vector<Layer<T>*>& out) {
  for (const auto& l : m.layers()) {
    if (auto* sub = dynamic_cast<Model<T>*>(l.get())) stochastic_layers(*sub, out);
    else if (l->random_generator()) out.push_back(l.get());
  }
}

/// FNV-1a of the model's weights: owner layer, name and shape of each, in order (another
/// architecture, or the same one with other sizes, gives another value).
template <class T>
std::uint64_t model_fingerprint(Model<T>& m) {
  std::uint64_t h = 1469598103934665603ull;
  auto mix = [&](const std::string& s) {
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
  };
  for (Param<T>* p : m.weights()) {
    mix(p->owner ? p->owner->name() : std::string());
    mix(p->name);
    mix(shape_str(p->value.shape()));
  }
  return h;
}

}  // namespace detail

/// Weights, optimizer state and random generators of a model, captured in memory.
template <class T>
struct TrainingSnapshot {
  std::vector<Tensor<T>> weights;
  std::vector<double> lr_multipliers;
  typename Optimizer<T>::State optimizer;
  bool has_optimizer = false;
  std::vector<std::string> generators;

  static TrainingSnapshot take(Model<T>& m) {
    TrainingSnapshot s;
    for (Param<T>* p : m.weights()) {
      s.weights.push_back(p->value);
      s.lr_multipliers.push_back(p->lr_multiplier);
    }
    if (auto opt = m.optimizer()) {
      s.optimizer = opt->state();
      s.has_optimizer = true;
    }
    std::vector<Layer<T>*> st;
    detail::stochastic_layers(m, st);
    for (auto* l : st) s.generators.push_back(l->random_generator()->state());
    return s;
  }
  /// Put everything back; the model must be the one the snapshot was taken from.
  void restore(Model<T>& m) const {
    auto ps = m.weights();
    if (ps.size() != weights.size()) throw value_error(detail::cat("model '", m.name(), "': the snapshot is of another model"));
    for (size_t i = 0; i < ps.size(); ++i) {
      if (ps[i]->value.shape() != weights[i].shape()) throw value_error(detail::cat("model '", m.name(), "': the snapshot is of another model"));
      ps[i]->value = weights[i];
      ps[i]->lr_multiplier = lr_multipliers[i];
    }
    if (has_optimizer && m.optimizer()) m.optimizer()->set_state(optimizer);
    std::vector<Layer<T>*> st;
    detail::stochastic_layers(m, st);
    for (size_t i = 0; i < st.size() && i < generators.size(); ++i) st[i]->random_generator()->set_state(generators[i]);
  }
};

/// Writes a resumable checkpoint of a run: the snapshot above, the loop's position (next epoch
/// and batch, sample order, shuffling generator, the epoch's running sums) and every callback's
/// state, with the model's and the data's fingerprints. Atomic: a kill mid-write leaves the
/// previous checkpoint whole.
template <class T>
void save_training_checkpoint(const std::string& path, Model<T>& m, const LoopState& loop, int next_epoch, Index next_step) {
  auto snap = TrainingSnapshot<T>::take(m);
  auto ps = m.weights();
  detail::atomic_write(path, [&](h5::File& f) {
    auto root = h5::Group::root(f);
    root.write_string_attr("graft_checkpoint", "1");
    root.write_string_attr("model_fingerprint", std::to_string(detail::model_fingerprint(m)));
    root.write_string_attr("data_fingerprint", std::to_string(loop.data_fingerprint));
    for (size_t i = 0; i < snap.weights.size(); ++i) detail::write_exact(root, "weights/" + std::to_string(i), snap.weights[i]);
    nlohmann::json meta;
    meta["next_epoch"] = next_epoch;
    meta["next_step"] = next_step;
    meta["steps_per_epoch"] = loop.steps_per_epoch;
    meta["cursor"] = loop.cursor;
    meta["shuffle_rng"] = loop.shuffle_rng ? loop.shuffle_rng->state() : std::string();
    meta["loss_sum"] = detail::hex_double(loop.loss_sum);
    meta["seen"] = loop.seen;
    nlohmann::json ols = nlohmann::json::array(), ms = nlohmann::json::array();
    for (double v : loop.out_loss_sum) ols.push_back(detail::hex_double(v));
    for (auto& p : loop.metric_sums) ms.push_back({detail::hex_double(p.first), detail::hex_double(p.second)});
    meta["out_loss_sum"] = ols;
    meta["metric_sums"] = ms;
    meta["generators"] = snap.generators;
    nlohmann::json mult = nlohmann::json::array();
    for (double v : snap.lr_multipliers) mult.push_back(detail::hex_double(v));
    meta["lr_multipliers"] = mult;
    meta["callbacks"] = loop.callbacks_state ? loop.callbacks_state() : nlohmann::json(nullptr);
    if (snap.has_optimizer) {
      const auto& os = snap.optimizer;
      nlohmann::json o;
      o["iterations"] = os.iterations;
      o["learning_rate"] = detail::hex_double(os.learning_rate);
      o["momentum"] = detail::hex_double(os.momentum);
      o["weight_decay"] = detail::hex_double(os.weight_decay);
      o["schedule"] = os.schedule ? os.schedule->to_json() : nlohmann::json(nullptr);
      nlohmann::json idx = nlohmann::json::array();
      for (size_t k = 0; k < os.params.size(); ++k) {
        size_t at = std::find(ps.begin(), ps.end(), os.params[k]) - ps.begin();
        if (at == ps.size()) throw value_error("checkpoint: the optimizer holds state for a variable the model does not have");
        idx.push_back(at);
        for (size_t j = 0; j < os.slots[k].size(); ++j)
          detail::write_exact(root, "optimizer/" + std::to_string(k) + "/" + std::to_string(j), os.slots[k][j]);
      }
      o["params"] = idx;
      meta["optimizer"] = o;
    }
    if (loop.order) {
      Tensor<double> order({static_cast<Index>(loop.order->size())});
      for (size_t i = 0; i < loop.order->size(); ++i) order[static_cast<Index>(i)] = static_cast<double>((*loop.order)[i]);
      detail::write_exact(root, "order", order);
    }
    detail::write_text(root, "meta", meta.dump());
  });
}

/// Reads a checkpoint written by save_training_checkpoint into the model and the loop; graft::
/// value_error (nothing changed) when it is of another model or dataset, format_error when
/// it is damaged. The callbacks' states go to loop.restored_callbacks (fit() gives them back).
template <class T>
void load_training_checkpoint(const std::string& path, Model<T>& m, LoopState& loop) {
  h5::File f = h5::File::open(path);
  auto root = h5::Group::root(f);
  if (!root.has_attr("graft_checkpoint") || !root.has_attr("model_fingerprint") || !root.has_attr("data_fingerprint"))
    throw format_error(detail::cat(path, ": not a graft training checkpoint"));
  if (root.string_attr("model_fingerprint") != std::to_string(detail::model_fingerprint(m)))
    throw value_error(detail::cat(path, ": this checkpoint is of another model (its layers or weight shapes differ from model '", m.name(),
                                  "'); use another backup folder or delete this one"));
  if (root.string_attr("data_fingerprint") != std::to_string(loop.data_fingerprint))
    throw value_error(detail::cat(path, ": this checkpoint was made with other training data; use another backup folder or delete this one"));
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(detail::read_text(root, "meta"));
  } catch (const nlohmann::json::exception& e) {
    throw format_error(detail::cat(path, ": damaged checkpoint metadata: ", e.what()));
  }
  try {
    if (meta.at("steps_per_epoch").get<Index>() != loop.steps_per_epoch)
      throw value_error(detail::cat(path, ": the checkpoint's run had ", meta.at("steps_per_epoch").get<Index>(),
                                    " batches per epoch, this one has ", loop.steps_per_epoch, " (another batch size?)"));
    TrainingSnapshot<T> snap;
    auto ps = m.weights();
    for (size_t i = 0; i < ps.size(); ++i) {
      const Shape s = ps[i]->value.shape();
      snap.weights.push_back(h5::read_dataset<T>(root, "weights/" + std::to_string(i), &s));
    }
    for (auto& v : meta.at("lr_multipliers")) snap.lr_multipliers.push_back(detail::from_hex_double(v.get<std::string>()));
    if (snap.lr_multipliers.size() != ps.size()) throw format_error(detail::cat(path, ": damaged checkpoint (multipliers)"));
    snap.generators = meta.at("generators").get<std::vector<std::string>>();
    for (const auto& g : snap.generators) {
      Rng probe;
      probe.set_state(g);  // format_error when damaged, before anything changes
    }
    if (meta.contains("optimizer") && m.optimizer()) {
      const auto& o = meta["optimizer"];
      auto& os = snap.optimizer;
      os.iterations = o.at("iterations").get<std::int64_t>();
      os.learning_rate = detail::from_hex_double(o.at("learning_rate").get<std::string>());
      os.momentum = detail::from_hex_double(o.at("momentum").get<std::string>());
      os.weight_decay = detail::from_hex_double(o.at("weight_decay").get<std::string>());
      if (!o.at("schedule").is_null()) os.schedule = LearningRateSchedule::from_json(o["schedule"]);
      const auto& idx = o.at("params");
      for (size_t k = 0; k < idx.size(); ++k) {
        size_t at = idx[k].get<size_t>();
        if (at >= ps.size()) throw format_error(detail::cat(path, ": damaged checkpoint (optimizer variable ", at, ")"));
        os.params.push_back(ps[at]);
        std::vector<Tensor<T>> slots;
        for (size_t j = 0; root.kind("optimizer/" + std::to_string(k) + "/" + std::to_string(j)) == h5::Group::Kind::dataset; ++j) {
          const Shape s = ps[at]->value.shape();
          slots.push_back(h5::read_dataset<T>(root, "optimizer/" + std::to_string(k) + "/" + std::to_string(j), &s));
        }
        os.slots.push_back(std::move(slots));
      }
      snap.has_optimizer = true;
    }
    std::vector<Index> order;
    if (root.kind("order") == h5::Group::Kind::dataset) {
      Tensor<double> t = h5::read_dataset<double>(root, "order");
      if (loop.order && static_cast<size_t>(t.size()) != loop.order->size())
        throw value_error(detail::cat(path, ": the checkpoint's run had ", t.size(), " training samples, this one has ", loop.order->size()));
      std::vector<char> seen(static_cast<size_t>(t.size()), 0);
      for (double v : t) {  // a permutation of 0..n-1, or the file is damaged
        if (!(v >= 0 && v < static_cast<double>(t.size())) || v != std::floor(v) || seen[static_cast<size_t>(v)]++)
          throw format_error(detail::cat(path, ": damaged checkpoint (sample order)"));
        order.push_back(static_cast<Index>(v));
      }
    }
    LoopState next = loop;  // the loop's part, read and checked before anything changes
    if (next.order && !order.empty() && order.size() != next.order->size())
      throw format_error(detail::cat(path, ": damaged checkpoint (sample order)"));
    const std::string shuffle_state = meta.at("shuffle_rng").get<std::string>();
    if (next.shuffle_rng && !shuffle_state.empty()) {
      Rng probe;
      probe.set_state(shuffle_state);  // format_error when damaged
    }
    next.initial_epoch = meta.at("next_epoch").get<int>();
    next.initial_step = meta.at("next_step").get<Index>();
    if (next.initial_epoch < 0 || next.initial_step < 0 || next.initial_step >= next.steps_per_epoch)
      throw format_error(detail::cat(path, ": damaged checkpoint (position epoch ", next.initial_epoch, ", batch ", next.initial_step, ")"));
    next.cursor = meta.value("cursor", Index(-1));  // absent in older checkpoints: computed by fit
    if (next.cursor < -1 || (loop.order && next.cursor > static_cast<Index>(loop.order->size())))
      throw format_error(detail::cat(path, ": damaged checkpoint (cursor ", next.cursor, ")"));
    next.loss_sum = detail::from_hex_double(meta.at("loss_sum").get<std::string>());
    next.seen = meta.at("seen").get<Index>();
    next.out_loss_sum.clear();
    for (auto& v : meta.at("out_loss_sum")) next.out_loss_sum.push_back(detail::from_hex_double(v.get<std::string>()));
    next.metric_sums.clear();
    for (auto& v : meta.at("metric_sums"))
      next.metric_sums.push_back({detail::from_hex_double(v.at(0).get<std::string>()), detail::from_hex_double(v.at(1).get<std::string>())});
    next.restored_callbacks = meta.at("callbacks");
    // everything read and checked: now change the model and the loop
    snap.restore(m);
    if (loop.order && !order.empty()) *loop.order = order;
    if (loop.shuffle_rng && !shuffle_state.empty()) loop.shuffle_rng->set_state(shuffle_state);
    loop.initial_epoch = next.initial_epoch;
    loop.initial_step = next.initial_step;
    if (next.cursor >= 0) loop.cursor = next.cursor;
    loop.loss_sum = next.loss_sum;
    loop.seen = next.seen;
    loop.out_loss_sum = next.out_loss_sum;
    loop.metric_sums = next.metric_sums;
    loop.restored_callbacks = next.restored_callbacks;
  } catch (const nlohmann::json::exception& e) {
    throw format_error(detail::cat(path, ": damaged checkpoint metadata: ", e.what()));
  }
}

}  // namespace graft
