// graft — what fit() takes and returns: options, History, the Callback interface, and the Keras
// progress line. The loop itself is train/loop.hpp; Keras' callbacks are train/callbacks.hpp.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "graft/core/errors.hpp"
#include "graft/core/tensor.hpp"
#include "graft/data/source.hpp"
#include "graft/train/feature_cache.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

namespace graft {

/// Per-epoch values, by name ("loss", "accuracy", "val_loss", ...), as keras History.history.
struct History {
  std::map<std::string, std::vector<double>> history;
  std::vector<int> epoch;
  /// What fit() did with its feature cache (train/feature_cache.hpp): "memory: ...", "disk: ..."
  /// or "off[: why]".
  std::string feature_cache;
  const std::vector<double>& operator[](const std::string& k) const {
    auto it = history.find(k);
    if (it == history.end()) throw value_error(detail::cat("History: no entry '", k, "'"));
    return it->second;
  }
  bool has(const std::string& k) const { return history.count(k) != 0; }
};

using Logs = std::map<std::string, double>;

template <class T>
class Model;

/// keras.callbacks.Callback: fit() calls these hooks; `model()` is the model being trained
/// (set before on_train_begin). Set model()->stop_training to end training after this epoch.
/// `logs` hold the epoch's (or the running batch) loss and metrics, "val_*" at epoch end, and
/// "lr", the learning rate in effect; on_epoch_end may add entries (later callbacks see them).
template <class T = float>
class Callback {
 public:
  virtual ~Callback() = default;
  virtual void set_model(Model<T>* m) { model_ = m; }
  Model<T>* model() const { return model_; }
  virtual void on_train_begin(const Logs& /*logs*/) {}
  virtual void on_train_end(const Logs& /*logs*/) {}
  virtual void on_epoch_begin(int /*epoch*/, const Logs& /*logs*/) {}
  virtual void on_epoch_end(int /*epoch*/, Logs& /*logs*/) {}
  virtual void on_train_batch_begin(Index /*batch*/, const Logs& /*logs*/) {}
  virtual void on_train_batch_end(Index /*batch*/, const Logs& /*logs*/) {}
  /// Checkpoints that resume a run (BackupAndRestore) save and restore every callback's state:
  /// a callback whose decisions depend on earlier epochs (a patience counter, a best value)
  /// returns it here as JSON, and takes it back in set_state.
  virtual nlohmann::json state() const { return nullptr; }
  virtual void set_state(const nlohmann::json& /*s*/) {}
  /// True for callbacks that restore a run in on_train_begin: fit() calls them first.
  virtual bool restores_run() const { return false; }
  /// Data-parallel fit: every process runs every callback (their decisions stay identical), but
  /// only rank 0 may write files. Callbacks that write (ModelCheckpoint, CSVLogger,
  /// BackupAndRestore) check may_write().
  void set_may_write(bool w) { may_write_ = w; }
  bool may_write() const { return may_write_; }

 protected:
  Model<T>* model_ = nullptr;
  bool may_write_ = true;
};

template <class T>
class Distributed;

/// Options of Model::fit (Keras defaults).
template <class T>
struct FitOptions {
  int epochs = 1;
  Index batch_size = 32;
  bool shuffle = true;
  /// Seed for shuffling; unset draws one from graft's global generator (see set_random_seed).
  std::optional<std::uint64_t> seed;
  /// Fraction of the data, taken from the end before shuffling, held out for validation
  /// (ignored when validation_x is given: Keras' validation_data overrides validation_split).
  double validation_split = 0.0;
  std::vector<Tensor<T>> validation_x, validation_y;
  /// 0 silent, 1 progress line per epoch (live bar on a terminal), 2 one line per epoch.
  int verbose = 1;
  int initial_epoch = 0;
  std::vector<std::shared_ptr<Callback<T>>> callbacks;
  std::ostream* out = &std::cout;
  /// Validation data as a source (fit(source, ...) and fit(arrays, ...)); validation_x wins.
  std::shared_ptr<const data::Source<T>> validation_source;
  /// Batches per epoch (0: one pass over the training data). Otherwise batches run on from
  /// where the previous epoch stopped, a new shuffled pass starting whenever one ends.
  Index steps_per_epoch = 0;
  /// Validation batches per evaluation (0: all), from the start of the validation data.
  Index validation_steps = 0;
  /// Load each batch on a worker thread while the previous one trains (sources that decode or
  /// read files; in-memory arrays are copied in place).
  bool prefetch = true;
  /// fit()'s feature cache (train/feature_cache.hpp): automatic, memory only, or off.
  FeatureCacheMode feature_cache = FeatureCacheMode::automatic;
  /// Its memory budget in bytes (0: a quarter of the machine's memory, at least 64 MB); beyond
  /// it the cache goes to an unlinked temporary file in feature_cache_dir (default /tmp).
  double feature_cache_budget = 0;
  std::string feature_cache_dir;
  /// Refuse NaN or infinite values in the training (and validation) data before training, naming
  /// the sample and position (train/data_checks.hpp); false trains on them anyway. Class labels of
  /// sparse losses (NaN, fractional, out of range), sample counts and empty data are always
  /// checked. Sources that are not arrays in memory are checked batch by batch in the first epoch.
  bool check_data = true;
  /// Data-parallel training (graft/distributed/mpi.hpp): this process' communicator.
  std::shared_ptr<Distributed<T>> distributed;
};

namespace detail {

/// A logged value as Keras' Progbar prints it: 4 decimals, or exponent form at or below 1e-3.
inline std::string format_metric(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, v > 1e-3 ? "%.4f" : "%.4e", v);
  return buf;
}
/// Epoch time as Keras' verbose-2 line prints it: whole seconds ("0s" for a fast epoch).
inline std::string format_duration(double seconds) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.0fs", seconds);
  return buf;
}
inline std::string format_per_step(double seconds, Index steps) {
  char buf[64];
  double per = steps > 0 ? seconds / static_cast<double>(steps) : 0;
  if (per >= 1.0) std::snprintf(buf, sizeof buf, "%.0fs/step", per);
  else if (per >= 1e-3) std::snprintf(buf, sizeof buf, "%.0fms/step", per * 1e3);
  else std::snprintf(buf, sizeof buf, "%.0fus/step", per * 1e6);
  return buf;
}

/// Keras 3 verbose output: "Epoch 3/20" then "1719/1719 - 3s - 2ms/step - accuracy: 0.8 - loss: 0.5 - val_...".
class Progress {
 public:
  Progress(std::ostream* out, int verbose, int epochs) : out_(out), verbose_(verbose), epochs_(epochs) {
#if defined(__unix__) || defined(__APPLE__)
    tty_ = out_ == &std::cout && isatty(1);
#endif
  }
  void epoch_begin(int epoch) {
    start_ = std::chrono::steady_clock::now();
    if (verbose_ > 0 && out_) *out_ << "Epoch " << epoch + 1 << "/" << epochs_ << std::endl;
  }
  void step(Index done, Index steps, const Logs& logs) {
    if (verbose_ != 1 || !tty_ || !out_) return;
    auto now = std::chrono::steady_clock::now();
    if (done != steps && std::chrono::duration<double>(now - last_).count() < 0.1) return;
    last_ = now;
    const int width = 20;
    int filled = steps ? static_cast<int>(width * done / steps) : width;
    std::string bar;
    for (int i = 0; i < width; ++i) bar += i < filled ? "\u2501" : " ";
    *out_ << "\r" << done << "/" << steps << " " << bar << " " << render(logs) << std::flush;
  }
  void epoch_end(Index steps, const Logs& logs) {
    if (verbose_ <= 0 || !out_) return;
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    if (tty_ && verbose_ == 1) *out_ << "\r\033[K";
    *out_ << steps << "/" << steps << " - " << format_duration(secs) << " - " << format_per_step(secs, steps)
          << render(logs) << std::endl;
  }
  /// " - accuracy: 0.8123 - loss: 0.4012 - val_accuracy: ... - val_loss: ..." (Keras order).
  static std::string render(const Logs& logs) {
    std::string s;
    for (const auto& kv : logs)
      if (kv.first.compare(0, 4, "val_") != 0 && kv.first != "lr" && kv.first != "learning_rate") s += " - " + kv.first + ": " + format_metric(kv.second);
    for (const auto& kv : logs)
      if (kv.first.compare(0, 4, "val_") == 0) s += " - " + kv.first + ": " + format_metric(kv.second);
    return s;
  }

 private:
  std::ostream* out_;
  int verbose_, epochs_;
  bool tty_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace detail
}  // namespace graft
