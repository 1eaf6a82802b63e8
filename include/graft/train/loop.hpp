// graft — the training loop: a small driver of epochs and batches around the model's train_step,
// with Keras' callback protocol (train, epoch and batch hooks; model.stop_training), validation
// after each epoch, the progress line, and the History. Model::fit calls it; the model stays the
// graph (forward, backward, weights) and knows nothing of epochs.
#pragma once

#include <algorithm>
#include <functional>
#include <cmath>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "graft/core/random.hpp"
#include "graft/data/prefetch.hpp"
#include "graft/data/source.hpp"
#include "graft/train/data_checks.hpp"
#include "graft/train/distributed.hpp"
#include "graft/train/feature_cache.hpp"
#include "graft/train/fit.hpp"

#include <nlohmann/json.hpp>

namespace graft {

/// What the loop is doing, for callbacks that must save or change it (BackupAndRestore resumes
/// from it; schedules by training progress read the step). Valid between on_train_begin and
/// on_train_end.
struct LoopState {
  int initial_epoch = 0;   ///< may be raised in on_train_begin (a resumed run)
  Index initial_step = 0;  ///< with initial_epoch: resume inside that epoch at this batch
  int epoch = 0;           ///< the current epoch
  int epochs = 0;          ///< FitOptions::epochs
  Index steps_per_epoch = 0;
  Index step = 0;          ///< batch index within the epoch (the one running, or the last one run)
  /// Position in `order` of the next batch's first sample (order.size(): a new pass, shuffled,
  /// starts with the next batch). Epochs are whole passes unless FitOptions::steps_per_epoch.
  Index cursor = 0;
  /// True while a resumed run re-enters the epoch it was interrupted in (its on_epoch_begin ran
  /// before the interruption: callbacks that change state there, like LearningRateScheduler, skip).
  bool epoch_resumed = false;
  Rng* shuffle_rng = nullptr;
  std::vector<Index>* order = nullptr;  ///< the sample order (shuffled in place each epoch)
  std::uint64_t data_fingerprint = 0;   ///< a hash of the training data's shapes and a sample of its values
  // the epoch's running sums (restored by a resumed run)
  double loss_sum = 0;
  Index seen = 0;
  std::vector<double> out_loss_sum;
  std::vector<std::pair<double, double>> metric_sums;
  /// The states of every callback of the run (Callback::state), in the callbacks' order.
  std::function<nlohmann::json()> callbacks_state;
  /// Set by a restoring callback in on_train_begin: given back to the callbacks (set_state)
  /// after every on_train_begin has run.
  nlohmann::json restored_callbacks;
  /// Global step: batches run since the first epoch.
  Index global_step() const { return static_cast<Index>(epoch) * steps_per_epoch + step; }
};

/// Callbacks that need the loop's state (BackupAndRestore, schedules by training progress)
/// derive from this as well as from Callback; fit() sets loop_ for the length of the run.
class LoopAware {
 public:
  virtual ~LoopAware() = default;
  void set_loop_state(LoopState* s) { loop_ = s; }

 protected:
  LoopState* loop_ = nullptr;
};

namespace detail {

/// The samples fit() trains on: a pass over the rows in a shuffled order, a cursor through it,
/// and this process' share of each global batch in data-parallel runs: the rows whose sample
/// index is its rank modulo the number of processes. Every process thus reads, decodes and
/// caches only its own shard of the samples, and the global batches stay those of a
/// single-process run (shares differ a little in size from batch to batch; one can be empty).
struct BatchPlan {
  Index batch_size = 0, n = 0;
  int rank = 0, ranks = 1;
  /// The global batch at `cursor`: returns its size, and puts this process' rows in `local`.
  Index take(const std::vector<Index>& order, Index cursor, std::vector<Index>& local) const {
    const Index count = std::min(batch_size, n - cursor);
    local.clear();
    for (Index k = 0; k < count; ++k) {
      const Index r = order[static_cast<size_t>(cursor + k)];
      if (ranks == 1 || r % ranks == rank) local.push_back(r);
    }
    return count;
  }
};

/// A hash of the model's weight values (sampled): data-parallel ranks must start from the same.
template <class T>
std::uint64_t weight_values_fingerprint(Model<T>& m) {
  std::uint64_t h = data::detail::fnv_basis;
  for (Param<T>* p : m.weights()) {
    data::detail::fnv_mix(h, p->name);
    const Index n = p->value.size(), stride = std::max<Index>(1, n / 1024);
    for (Index i = 0; i < n; i += stride) data::detail::fnv_mix(h, p->value.data() + i, sizeof(T));
  }
  return h;
}

template <class T>
struct FitLoop {
  /// Model::fit on in-memory arrays: read in place, rows gathered batch by batch.
  static History run(Model<T>& m, const In<T>& x, const In<T>& y, const FitOptions<T>& o) {
    if (!m.compiled_) throw value_error(detail::cat("fit: model '", m.name(), "' must be compiled first"));
    m.ensure_built(x);
    if (!(o.validation_split >= 0 && o.validation_split < 1)) throw value_error("fit: validation_split must be in [0, 1)");
    m.check_targets(y);
    const Index n_all = m.check_samples(x, "fit");
    for (size_t j = 0; j < y.size(); ++j)
      if (y[j]->rank() == 0 || y[j]->dim(0) != n_all)
        throw shape_error(detail::cat("fit: ", n_all, " input samples but target ", j, " has shape ", shape_str(y[j]->shape())));
    check_training_data(m, x, y, o.check_data, "fit");
    if (!o.validation_x.empty())
      check_training_data(m, Model<T>::pointers_to(o.validation_x), Model<T>::pointers_to(o.validation_y), o.check_data,
                          "fit: validation data");
    Index n_train = n_all;
    std::vector<Tensor<T>> split_x, split_y;  // the validation_split tail, copied (as Keras does)
    std::unique_ptr<data::ArraySource<T>> val;
    if (!o.validation_x.empty()) {
      val = std::make_unique<data::ArraySource<T>>(Model<T>::pointers_to(o.validation_x), Model<T>::pointers_to(o.validation_y));
    } else if (o.validation_split > 0 && !o.validation_source) {  // Keras: validation data overrides the split
      n_train = static_cast<Index>(std::floor(static_cast<double>(n_all) * (1.0 - o.validation_split)));
      for (auto* t : x) split_x.push_back(t->slice_rows(n_train, n_all - n_train));
      for (auto* t : y) split_y.push_back(t->slice_rows(n_train, n_all - n_train));
      val = std::make_unique<data::ArraySource<T>>(Model<T>::pointers_to(split_x), Model<T>::pointers_to(split_y));
    }
    data::ArraySource<T> src(std::vector<const Tensor<T>*>(x.begin(), x.end()), std::vector<const Tensor<T>*>(y.begin(), y.end()));
    const data::Source<T>* v = val ? val.get() : o.validation_source.get();
    return run_source(m, src, n_train, v, o, true);
  }

  /// Model::fit on a data source: its first n_train samples train, `val` (optional) validates.
  static History run_source(Model<T>& m, const data::Source<T>& src, Index n_train, const data::Source<T>* val,
                            const FitOptions<T>& o, bool from_arrays = false) {
    if (!m.compiled_) throw value_error(detail::cat("fit: model '", m.name(), "' must be compiled first"));
    if (o.epochs < 0 || o.batch_size <= 0) throw value_error("fit: epochs must be >= 0 and batch_size > 0");
    if (o.steps_per_epoch < 0 || o.validation_steps < 0) throw value_error("fit: steps_per_epoch and validation_steps must be >= 0");
    if (n_train <= 0) throw value_error(detail::cat("fit: no training samples in ", src.describe()));
    if (src.target_shapes().empty()) throw value_error(detail::cat("fit: ", src.describe(), " has no targets (labels)"));
    std::vector<Shape> shapes;
    probe(m, src, "fit", shapes);
    // the data's values: arrays in memory once here (fit(arrays) checked them already), other
    // sources batch by batch in the first epoch
    const auto* arrays = dynamic_cast<const data::ArraySource<T>*>(&src);
    if (arrays && !from_arrays) check_training_data(m, arrays->inputs(), arrays->targets(), o.check_data, "fit");
    const bool check_batches = !arrays;
    Distributed<T>* dist = o.distributed.get();
    const int ranks = dist ? dist->size() : 1, rank = dist ? dist->rank() : 0;
    const bool chief = rank == 0;
    BatchPlan plan;  // (cur_rows and next_rows reserve a batch: no allocation per batch)
    plan.batch_size = o.batch_size;
    plan.n = n_train;
    plan.rank = rank;
    plan.ranks = ranks;

    std::uint64_t seed = o.seed ? *o.seed : next_seed();
    if (dist) {
      dist->check_same(weight_values_fingerprint(m) ^ 0, "the model's weights (were the processes started with the same model file?)");
      dist->check_same(src.fingerprint() ^ static_cast<std::uint64_t>(n_train), "the training data");
      dist->check_same(static_cast<std::uint64_t>(o.batch_size) * 1000003u + static_cast<std::uint64_t>(o.epochs), "batch_size and epochs");
      if (ranks > 1 && std::min(o.batch_size, n_train) < ranks)  // the same on every rank (checked above)
        throw value_error(detail::cat("fit: a global batch of ", std::min(o.batch_size, n_train), " samples cannot be shared by ",
                                      ranks, " processes: use a batch size of at least ", ranks));
      double parts[4] = {0, 0, 0, 0};  // rank 0's seed, 16 bits per part: exact in double
      if (chief)
        for (int k = 0; k < 4; ++k) parts[k] = static_cast<double>((seed >> (16 * k)) & 0xffffu);
      dist->allreduce_sum(parts, 4);
      seed = 0;
      for (int k = 0; k < 4; ++k) seed |= static_cast<std::uint64_t>(parts[k]) << (16 * k);
    }
    Rng shuffle_rng(seed);
    std::vector<Index> idx(static_cast<size_t>(n_train));
    std::iota(idx.begin(), idx.end(), Index(0));
    const Index pass_steps = (n_train + o.batch_size - 1) / o.batch_size;
    const Index steps = o.steps_per_epoch > 0 ? o.steps_per_epoch : pass_steps;
    std::vector<Tensor<T>> probe_y;
    auto metrics = m.build_metrics(targets_like(src, probe_y));
    History hist;
    detail::Progress progress(o.out, chief ? o.verbose : 0, o.epochs);
    const size_t n_out = m.out_refs_.size();

    LoopState state;
    state.initial_epoch = o.initial_epoch;
    state.epochs = o.epochs;
    state.steps_per_epoch = steps;
    state.shuffle_rng = &shuffle_rng;
    state.order = &idx;
    state.cursor = n_train;
    state.data_fingerprint = src.fingerprint();
    state.out_loss_sum.assign(n_out, 0.0);
    state.callbacks_state = [&o]() {
      nlohmann::json j = nlohmann::json::array();
      for (auto& cb : o.callbacks) j.push_back(cb->state());
      return j;
    };

    m.stop_training = false;
    Logs logs;
    for (auto& cb : o.callbacks) {
      if (!cb) throw value_error("fit: a callback is null");
      cb->set_model(&m);
      cb->set_may_write(chief);
      if (auto* la = dynamic_cast<LoopAware*>(cb.get())) la->set_loop_state(&state);
    }
    struct Detach {  // the callbacks forget the loop's state however fit ends
      const FitOptions<T>& o;
      ~Detach() {
        for (auto& cb : o.callbacks)
          if (auto* la = dynamic_cast<LoopAware*>(cb.get())) la->set_loop_state(nullptr);
      }
    } detach{o};
    if (dist) {  // every rank starts from rank 0's weights
      std::vector<Tensor<T>*> w;
      for (Param<T>* p : m.weights()) w.push_back(&p->value);
      dist->broadcast(w);
    }
    for (auto& cb : o.callbacks)
      if (cb->restores_run()) cb->on_train_begin(logs);
    for (auto& cb : o.callbacks)
      if (!cb->restores_run()) cb->on_train_begin(logs);
    if (!state.restored_callbacks.is_null()) {
      const auto& j = state.restored_callbacks;
      if (!j.is_array() || j.size() != o.callbacks.size())
        throw value_error(detail::cat("fit: the restored run had ", j.is_array() ? j.size() : 0, " callbacks, this one has ", o.callbacks.size()));
      for (size_t i = 0; i < j.size(); ++i) o.callbacks[i]->set_state(j[i]);
    }
    if (dist)  // a backup every rank must have resumed from alike (a file system shared by the ranks)
      dist->check_same(static_cast<std::uint64_t>(state.initial_epoch) * 4294967296ull + static_cast<std::uint64_t>(state.initial_step),
                       "the epoch and batch the run resumes at (BackupAndRestore's folder must be shared by every process)");
    if (state.initial_step > 0 && state.cursor >= n_train)  // a checkpoint without a cursor: whole passes
      state.cursor = std::min(n_train, state.initial_step * o.batch_size);

    // ---- the feature cache (decided after the first batch, when the prefix's shapes are known)
    FeatureCache<T> cache, val_cache;
    std::string cache_note = "off";
    bool cache_decided = false, cache_on = false;
    std::vector<std::pair<int, int>> cached_prefix;
    std::vector<Tensor<T>> cached_vals;
    const double budget = o.feature_cache_budget > 0 ? o.feature_cache_budget : std::max(64e6, physical_memory_bytes() / 4);
    const Index total_batches = static_cast<Index>(std::max(0, o.epochs - state.initial_epoch)) * steps;
    auto decide_cache = [&]() {
      cache_decided = true;
      std::string why;
      if (o.feature_cache == FeatureCacheMode::off) {
        cache_note = "off";
        return;
      }
      // samples this fit will read: whole passes, or (steps_per_epoch) that many batches
      const Index epochs_left = static_cast<Index>(std::max(0, o.epochs - state.initial_epoch));
      const Index reads = o.steps_per_epoch > 0 ? total_batches * o.batch_size : epochs_left * n_train;
      if (reads <= n_train) {
        cache_note = "off: every sample is seen once";
        return;
      }
      if (!m.prefix_cacheable(why)) {
        cache_note = "off: " + why;
        return;
      }
      const auto& vals = m.prefix_values();
      std::vector<Shape> per;
      double width = 0;
      for (auto* t : vals) {
        per.emplace_back(t->shape().begin() + 1, t->shape().end());
        width += static_cast<double>(shape_size(per.back()));
      }
      if (src.in_memory() && m.prefix_work() < 4 * width) {
        cache_note = "off: the frozen layers do less work than reading their cached outputs";
        return;
      }
      const bool disk = o.feature_cache == FeatureCacheMode::automatic;
      cache.init(n_train, per, budget, disk, o.feature_cache_dir);
      if (val) val_cache.init(val->size(), per, budget - cache.bytes(), disk, o.feature_cache_dir);
      cached_prefix = m.prefix_out_;
      cache_on = cache.active();
      auto names = m.prefix_output_layers();
      std::string layers;
      for (auto& nm : names) layers += (layers.empty() ? "'" : ", '") + nm + "'";
      char mb[64];
      std::snprintf(mb, sizeof mb, "%.1f MB", cache.bytes() / 1e6);
      if (cache.where() == "memory") cache_note = detail::cat("memory: outputs of ", layers, " for ", n_train, " samples, ", mb);
      else if (cache.where() == "disk")
        cache_note = detail::cat("disk: outputs of ", layers, " for ", n_train, " samples, ", mb, " over the memory budget, in an unlinked file in '",
                                 o.feature_cache_dir.empty() ? std::string("/tmp") : o.feature_cache_dir, "'");
      else cache_note = detail::cat("off: outputs of ", layers, " need ", mb, ", over the memory budget, and spilling to disk is disabled");
      if (o.out && chief && o.verbose > 0) *o.out << "Feature cache: " << cache_note << std::endl;
    };

    std::vector<Index> cur_rows, next_rows;  // before the reader: its worker may read them until it stops
    cur_rows.reserve(static_cast<size_t>(o.batch_size));
    next_rows.reserve(static_cast<size_t>(o.batch_size));
    data::BatchReader<T> reader(src, o.prefetch && !src.in_memory());
    std::vector<Tensor<T>> ybuf(0);
    In<T> px;
    std::function<void()> allreduce;
    T grad_scale = T(1);
    if (dist) allreduce = [&]() { dist->allreduce_gradients(m.train_params_, grad_scale); };
    const std::function<void()>* hook = dist ? &allreduce : nullptr;
    bool loaded_next = false;  // the reader holds a request for the batch at the cursor
    const bool batch_hooks = !o.callbacks.empty();
    Logs batch_logs;
    std::vector<double> red;
    std::vector<Tensor<T>*> stats;
    for (int epoch = state.initial_epoch; epoch < o.epochs && !m.stop_training; ++epoch) {
      state.epoch = epoch;
      const bool resumed = epoch == state.initial_epoch && state.initial_step > 0;
      state.epoch_resumed = resumed;
      logs.clear();
      for (auto& cb : o.callbacks) cb->on_epoch_begin(epoch, logs);
      m.begin_training();  // trainable flags changed by a callback take effect from this epoch
      progress.epoch_begin(epoch);
      if (resumed) {  // the order, cursor, sums and metric states of the interrupted epoch were restored
        if (state.metric_sums.size() != metrics.size())
          throw value_error("fit: the saved run had other metrics than this one");
        for (size_t k = 0; k < metrics.size(); ++k) metrics[k].second->set_state(state.metric_sums[k]);
      } else {
        if (o.steps_per_epoch == 0) state.cursor = n_train;  // every epoch a whole pass
        for (auto& mt : metrics) mt.second->reset();
        state.loss_sum = 0;
        state.seen = 0;
        state.out_loss_sum.assign(n_out, 0.0);
      }
      state.metric_sums.resize(metrics.size());
      Index ran = 0;
      for (Index step = resumed ? state.initial_step : 0; step < steps && !m.stop_training; ++step) {
        state.step = step;
        if (batch_hooks) {
          for (auto& cb : o.callbacks) cb->on_train_batch_begin(step, batch_logs);
          m.begin_training();  // a batch hook may have changed trainable flags
        }
        if (state.cursor >= n_train) {  // a new pass
          if (loaded_next) throw value_error("fit: internal error (a batch was loaded across passes)");
          if (o.shuffle)
            for (Index i = n_train - 1; i > 0; --i)
              std::swap(idx[static_cast<size_t>(i)], idx[static_cast<size_t>(shuffle_rng.below(static_cast<std::uint64_t>(i + 1)))]);
          state.cursor = 0;
        }
        const Index global_count = plan.take(idx, state.cursor, cur_rows);
        const Index cnt = static_cast<Index>(cur_rows.size());
        state.cursor += global_count;
        if (cache_on && m.prefix_out_ != cached_prefix) {  // the frozen prefix changed: drop the cache
          cache_on = false;
          cache_note = "off: the frozen layers changed during training";
        }
        const bool empty = cnt == 0;  // data-parallel: no sample of this batch is this process'
        const bool from_cache = !empty && cache_on && cache.has(cur_rows.data(), cnt);
        typename data::BatchReader<T>::Batch* b = nullptr;
        if (!from_cache && !empty) {
          if (!loaded_next) reader.request(cur_rows.data(), cnt);
          b = &reader.wait();
        } else if (loaded_next) {
          reader.wait();  // loaded for nothing: dropped
        }
        loaded_next = false;
        // the next batch of this pass, loaded while this one trains
        if (o.prefetch && !src.in_memory() && state.cursor < n_train && step + 1 < steps) {
          plan.take(idx, state.cursor, next_rows);
          const Index nc = static_cast<Index>(next_rows.size());
          if (nc > 0 && !(cache_on && cache.has(next_rows.data(), nc))) {
            reader.request(next_rows.data(), nc);
            loaded_next = true;
          }
        }
        grad_scale = static_cast<T>(static_cast<double>(cnt) / static_cast<double>(global_count));
        double loss;
        const std::vector<Tensor<T>>* by = nullptr;
        if (empty) {
          loss = m.train_step_empty(hook);
        } else if (from_cache) {
          cache.fetch(cur_rows.data(), cnt, cached_vals);
          ybuf.resize(0);
          load_targets(src, cur_rows.data(), cnt, ybuf);
          by = &ybuf;
          loss = m.train_step_from_prefix(cached_vals, ybuf, hook);
        } else {
          px.resize(b->x.size());
          for (size_t i = 0; i < b->x.size(); ++i) {
            b->x[i].resize_batch(shapes[i], cnt);  // Keras' rank adjustment, in place
            px[i] = &b->x[i];
          }
          by = &b->y;
          if (check_batches && epoch == state.initial_epoch) check_training_batch(m, b->x, b->y, cur_rows.data(), o.check_data, "fit");
          loss = m.train_step(px, b->y, hook);
          if (!cache_decided) decide_cache();
          if (cache_on) cache.store(cur_rows.data(), cnt, m.prefix_values());
        }
        ++ran;
        state.loss_sum += loss * static_cast<double>(cnt);
        for (size_t j = 0; j < n_out; ++j) state.out_loss_sum[j] += m.last_output_loss_[j] * static_cast<double>(cnt);
        state.seen += cnt;
        for (size_t k = 0; k < metrics.size() && !empty; ++k) {
          metrics[k].second->update((*by)[metrics[k].first], *m.output_ptr(m.train_run_, metrics[k].first));
          state.metric_sums[k] = metrics[k].second->state();
        }
        if (batch_hooks) {
          batch_logs["loss"] = state.seen ? state.loss_sum / static_cast<double>(state.seen) : 0.0;
          for (auto& mt : metrics) batch_logs[m.metric_log_name(mt)] = mt.second->result();
          for (auto& cb : o.callbacks)  // checkpoints last: they save the other callbacks' state
            if (!cb->restores_run()) cb->on_train_batch_end(step, batch_logs);
          for (auto& cb : o.callbacks)
            if (cb->restores_run()) cb->on_train_batch_end(step, batch_logs);
        }
        if (o.verbose == 1 && chief && state.seen > 0) {
          logs["loss"] = state.loss_sum / static_cast<double>(state.seen);
          progress.step(step + 1, steps, logs);
        }
      }
      if (loaded_next) {  // stopped early: the batch loaded ahead is not used
        reader.wait();
        loaded_next = false;
      }
      if (ran == 0 && state.seen == 0) break;  // stopped before the epoch's first batch
      // the epoch's sums over every process
      double seen = static_cast<double>(state.seen), loss_sum = state.loss_sum;
      std::vector<double> out_sum = state.out_loss_sum;
      if (dist) {
        red.assign({loss_sum, seen});
        red.insert(red.end(), out_sum.begin(), out_sum.end());
        for (auto& mt : metrics) {
          auto st = mt.second->state();
          red.push_back(st.first);
          red.push_back(st.second);
        }
        dist->allreduce_sum(red.data(), red.size());
        loss_sum = red[0];
        seen = red[1];
        for (size_t j = 0; j < n_out; ++j) out_sum[j] = red[2 + j];
        for (size_t k = 0; k < metrics.size(); ++k) metrics[k].second->set_state({red[2 + n_out + 2 * k], red[3 + n_out + 2 * k]});
      }
      logs.clear();
      logs["loss"] = loss_sum / seen;
      if (n_out > 1)
        for (size_t j = 0; j < n_out; ++j) logs[m.output_names()[j] + "_loss"] = out_sum[j] / seen;
      for (auto& mt : metrics) logs[m.metric_log_name(mt)] = mt.second->result();
      if (dist) {  // the running sums stay this process' own (a checkpoint resumes each from its own)
        for (size_t k = 0; k < metrics.size(); ++k) metrics[k].second->set_state(state.metric_sums[k]);
        // statistics (BatchNormalization's moving mean and variance) averaged over the processes,
        // before validation and the epoch-end callbacks (checkpoints) read them
        stats.clear();
        for (Param<T>* p : m.weights())
          if (!p->trainable) stats.push_back(&p->value);
        if (!stats.empty()) dist->allreduce_mean(stats);
      }
      if (val) {
        FeatureCache<T>* vc = cache_on && m.prefix_out_ == cached_prefix && val_cache.active() ? &val_cache : nullptr;
        Logs v = evaluate_source(m, *val, o.batch_size, o.validation_steps, dist, vc, nullptr);
        for (auto& kv : v) logs["val_" + kv.first] = kv.second;
      }
      progress.epoch_end(steps, logs);
      logs["lr"] = m.compiled_->optimizer->learning_rate();
      state.step = steps;  // the epoch is complete (a checkpoint taken now resumes at the next one)
      for (auto& cb : o.callbacks)
        if (!cb->restores_run()) cb->on_epoch_end(epoch, logs);
      for (auto& cb : o.callbacks)
        if (cb->restores_run()) cb->on_epoch_end(epoch, logs);
      hist.epoch.push_back(epoch);
      for (auto& kv : logs) hist.history[kv.first].push_back(kv.second);
    }
    reader.stop();
    hist.feature_cache = cache_note;
    for (auto& cb : o.callbacks) cb->on_train_end(logs);
    return hist;
  }

  /// Loss and metrics over a source (the first `steps` batches; 0: all), inference mode. With
  /// `dist`, each process evaluates its contiguous share of the samples and the sums are
  /// combined. With `cache` (fit's validation), the frozen prefix's outputs are reused.
  static Logs evaluate_source(Model<T>& m, const data::Source<T>& src, Index batch_size, Index steps, Distributed<T>* dist,
                              FeatureCache<T>* cache, std::ostream* out) {
    if (!m.compiled_) throw value_error(detail::cat("evaluate: model '", m.name(), "' must be compiled first"));
    if (batch_size <= 0) throw value_error("evaluate: batch_size must be positive");
    if (src.target_shapes().empty()) throw value_error(detail::cat("evaluate: ", src.describe(), " has no targets (labels)"));
    std::vector<Shape> shapes;
    probe(m, src, "evaluate", shapes);
    Index n = src.size();
    if (steps > 0) n = std::min(n, steps * batch_size);
    Index lo = 0, hi = n;
    if (dist) {
      auto sh = shard_range(n, dist->rank(), dist->size());
      lo = sh.first;
      hi = sh.second;
    }
    std::vector<Tensor<T>> probe_y;
    auto metrics = m.build_metrics(targets_like(src, probe_y));
    const size_t n_out = m.out_refs_.size();
    std::vector<double> per(n_out, 0.0);
    double loss_sum = 0;
    const double reg = m.regularization_loss(false);
    std::vector<Index> rows, next;  // before the reader: its worker may read them until it stops
    data::BatchReader<T> reader(src, !src.in_memory());
    std::vector<Tensor<T>> vals, ybuf;
    In<T> px;
    const Index per_step = batch_size;
    Index done = 0;
    detail::Progress progress(out, out ? 1 : 0, 1);
    const double work = m.inference_work(shapes);
    auto rows_of = [&](Index b0, std::vector<Index>& r) {
      r.resize(static_cast<size_t>(std::min(per_step, hi - b0)));
      std::iota(r.begin(), r.end(), b0);
    };
    auto cached = [&](const std::vector<Index>& r) { return cache && cache->has(r.data(), static_cast<Index>(r.size())); };
    bool pending = false;  // the reader holds a request for `next`
    for (Index b0 = lo; b0 < hi; b0 += per_step) {
      if (pending) rows.swap(next);
      else rows_of(b0, rows);
      const Index cnt = static_cast<Index>(rows.size());
      const bool from_cache = !pending && cached(rows);
      typename data::BatchReader<T>::Batch* b = nullptr;
      if (!from_cache) {
        if (!pending) reader.request(rows.data(), cnt);
        b = &reader.wait();
      }
      pending = false;
      if (b0 + per_step < hi) {  // the next batch loads while this one runs
        rows_of(b0 + per_step, next);
        if (!cached(next)) {
          reader.request(next.data(), static_cast<Index>(next.size()));
          pending = true;
        }
      }
      const std::vector<const Tensor<T>*>* ys;
      const std::vector<Tensor<T>>* by;
      if (from_cache) {
        cache->fetch(rows.data(), cnt, vals);
        load_targets(src, rows.data(), cnt, ybuf);
        by = &ybuf;
        ys = &m.infer_from_prefix(vals);
      } else {
        px.resize(b->x.size());
        for (size_t i = 0; i < b->x.size(); ++i) {
          b->x[i].resize_batch(shapes[i], cnt);
          px[i] = &b->x[i];
        }
        by = &b->y;
        if (cache) {
          ys = &m.infer_split(px);
          cache->store(rows.data(), cnt, m.infer_prefix_values());
        } else {
          ys = &m.infer_rows(px, shapes_of(px), 0, cnt, work, m.infer_);
        }
      }
      double total = 0;
      for (size_t j = 0; j < n_out; ++j) {
        if (!m.compiled_->losses[j]) continue;
        double l = m.compiled_->losses[j]->compute((*by)[j], *(*ys)[j], nullptr, T(1));
        per[j] += l * static_cast<double>(cnt);
        total += m.compiled_->loss_weights[j] * l;
      }
      loss_sum += (total + reg) * static_cast<double>(cnt);
      for (auto& mt : metrics) mt.second->update((*by)[mt.first], *(*ys)[mt.first]);
      done += cnt;
      if (out) {
        Logs l;
        l["loss"] = loss_sum / static_cast<double>(done);
        progress.step((b0 - lo) / per_step + 1, (hi - lo + per_step - 1) / per_step, l);
      }
    }
    reader.stop();
    double total_n = static_cast<double>(done);
    if (dist) {
      std::vector<double> r{loss_sum, total_n};
      r.insert(r.end(), per.begin(), per.end());
      for (auto& mt : metrics) {
        auto st = mt.second->state();
        r.push_back(st.first);
        r.push_back(st.second);
      }
      dist->allreduce_sum(r.data(), r.size());
      loss_sum = r[0];
      total_n = r[1];
      for (size_t j = 0; j < n_out; ++j) per[j] = r[2 + j];
      for (size_t k = 0; k < metrics.size(); ++k) metrics[k].second->set_state({r[2 + n_out + 2 * k], r[3 + n_out + 2 * k]});
    }
    Logs logs;
    logs["loss"] = total_n > 0 ? loss_sum / total_n : 0.0;
    if (n_out > 1)
      for (size_t j = 0; j < n_out; ++j) logs[m.output_names()[j] + "_loss"] = total_n > 0 ? per[j] / total_n : 0.0;
    for (auto& mt : metrics) logs[m.metric_log_name(mt)] = mt.second->result();
    return logs;
  }

  /// Outputs of the model for every sample of a source, in order (the inputs stream; the
  /// outputs are kept).
  static std::vector<Tensor<T>> predict_source(Model<T>& m, const data::Source<T>& src, Index batch_size) {
    if (batch_size <= 0) throw value_error("predict: batch_size must be positive");
    std::vector<Shape> shapes;
    probe(m, src, "predict", shapes);
    const Index n = src.size();
    std::vector<Index> rows, next;  // before the reader: its worker may read them until it stops
    data::BatchReader<T> reader(src, !src.in_memory());
    std::vector<Tensor<T>> result(m.out_refs_.size());
    In<T> px;
    const double work = m.inference_work(shapes);
    auto rows_of = [&](Index b0, std::vector<Index>& r) {
      r.resize(static_cast<size_t>(std::min(batch_size, n - b0)));
      std::iota(r.begin(), r.end(), b0);
    };
    if (n > 0) {
      rows_of(0, next);
      reader.request(next.data(), static_cast<Index>(next.size()));
    }
    for (Index b0 = 0; b0 < n; b0 += batch_size) {
      rows.swap(next);
      auto& b = reader.wait();
      const Index cnt = static_cast<Index>(rows.size());
      if (b0 + batch_size < n) {
        rows_of(b0 + batch_size, next);
        reader.request(next.data(), static_cast<Index>(next.size()));
      }
      px.resize(b.x.size());
      for (size_t i = 0; i < b.x.size(); ++i) {
        b.x[i].resize_batch(shapes[i], cnt);
        px[i] = &b.x[i];
      }
      const auto& ys = m.infer_rows(px, shapes_of(px), 0, cnt, work, m.infer_);
      for (size_t j = 0; j < ys.size(); ++j) {
        if (b0 == 0) {
          Shape s = ys[j]->shape();
          s[0] = n;
          result[j].resize(s);
        }
        std::copy(ys[j]->begin(), ys[j]->end(), result[j].data() + b0 * ys[j]->inner(1));
      }
    }
    reader.stop();
    return result;
  }

 private:
  /// Builds the model from one sample when needed, checks the source against the model's
  /// inputs and outputs, and gives the per-batch input shapes (first axis 1) after Keras' rank
  /// adjustment.
  static void probe(Model<T>& m, const data::Source<T>& src, const char* what, std::vector<Shape>& shapes) {
    if (src.size() <= 0) throw value_error(detail::cat(what, ": ", src.describe(), " has no samples"));
    std::vector<Tensor<T>> x, y;
    const Index row0 = 0;
    src.load(&row0, 1, x, y);
    In<T> px = Model<T>::pointers_to(x);
    m.ensure_built(px);
    if (px.size() != m.num_inputs())
      throw shape_error(detail::cat(what, ": model '", m.name(), "' has ", m.num_inputs(), " input(s), ", src.describe(), " gives ", px.size()));
    if (!y.empty()) m.check_targets(y);
    shapes = m.adapted_shapes(px);
    for (size_t i = 0; i < px.size(); ++i) m.check_shape(i, shapes[i], false);
  }
  static const std::vector<Shape>& shapes_of(const In<T>& px) {
    thread_local std::vector<Shape> s;
    s.resize(px.size());
    for (size_t i = 0; i < px.size(); ++i) s[i] = px[i]->shape();
    return s;
  }
  /// Zero-filled targets of one sample per target (for build_metrics, which reads their shapes).
  static const In<T>& targets_like(const data::Source<T>& src, std::vector<Tensor<T>>& buf) {
    thread_local In<T> p;
    buf.clear();
    for (const Shape& s : src.target_shapes()) {
      Shape b{1};
      b.insert(b.end(), s.begin(), s.end());
      buf.emplace_back(b, T(0));
    }
    p = Model<T>::pointers_to(buf);
    return p;
  }
  /// Targets of rows[0..cnt) only (a cached batch needs no inputs).
  static void load_targets(const data::Source<T>& src, const Index* rows, Index cnt, std::vector<Tensor<T>>& y) {
    src.load_targets(rows, cnt, y);
  }
};

}  // namespace detail
}  // namespace graft
