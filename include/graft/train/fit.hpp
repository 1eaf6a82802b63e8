// graft — what fit() takes and returns: options, History, callbacks, and the Keras progress line.
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

#include "graft/core/errors.hpp"
#include "graft/core/tensor.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

namespace graft {

/// Per-epoch values, by name ("loss", "accuracy", "val_loss", ...), as keras History.history.
struct History {
  std::map<std::string, std::vector<double>> history;
  std::vector<int> epoch;
  const std::vector<double>& operator[](const std::string& k) const {
    auto it = history.find(k);
    if (it == history.end()) throw value_error(detail::cat("History: no entry '", k, "'"));
    return it->second;
  }
  bool has(const std::string& k) const { return history.count(k) != 0; }
};

using Logs = std::map<std::string, double>;

/// Called by fit(); set `stop` to end training after this epoch (like model.stop_training).
class Callback {
 public:
  virtual ~Callback() = default;
  virtual void on_train_begin() {}
  virtual void on_epoch_begin(int /*epoch*/) {}
  virtual void on_epoch_end(int /*epoch*/, const Logs& /*logs*/, bool& /*stop*/) {}
  virtual void on_train_end() {}
};

/// keras.callbacks.EarlyStopping (monitor, min_delta, patience, mode; restore_best_weights is
/// handled by fit(), which keeps a copy of the best weights when asked).
class EarlyStopping : public Callback {
 public:
  explicit EarlyStopping(std::string monitor = "val_loss", int patience = 0, double min_delta = 0.0,
                         bool restore_best_weights = false, std::string mode = "auto")
      : monitor_(std::move(monitor)), patience_(patience), min_delta_(std::abs(min_delta)),
        restore_(restore_best_weights) {
    maximize_ = mode == "max" || (mode == "auto" && (monitor_.find("acc") != std::string::npos ||
                                                     monitor_.find("auc") != std::string::npos));
  }
  void on_train_begin() override {
    wait_ = 0;
    best_ = maximize_ ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
    best_epoch_ = -1;
    stopped_epoch_ = -1;
  }
  void on_epoch_end(int epoch, const Logs& logs, bool& stop) override {
    auto it = logs.find(monitor_);
    if (it == logs.end()) return;
    double v = it->second;
    bool better = maximize_ ? v - min_delta_ > best_ : v + min_delta_ < best_;
    improved_ = better || best_epoch_ < 0;
    if (improved_) {
      best_ = v;
      best_epoch_ = epoch;
      wait_ = 0;
      return;
    }
    if (++wait_ >= patience_) {
      stop = true;
      stopped_epoch_ = epoch;
    }
  }
  bool restore_best_weights() const { return restore_; }
  /// Whether the last epoch was the best so far (fit() snapshots the weights then).
  bool improved() const { return improved_; }
  int best_epoch() const { return best_epoch_; }
  int stopped_epoch() const { return stopped_epoch_; }
  double best() const { return best_; }

 private:
  std::string monitor_;
  int patience_;
  double min_delta_;
  bool restore_;
  bool maximize_ = false;
  int wait_ = 0;
  double best_ = 0;
  int best_epoch_ = -1, stopped_epoch_ = -1;
  bool improved_ = false;
};

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
  std::vector<std::shared_ptr<Callback>> callbacks;
  std::ostream* out = &std::cout;
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
      if (kv.first.compare(0, 4, "val_") != 0) s += " - " + kv.first + ": " + format_metric(kv.second);
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
