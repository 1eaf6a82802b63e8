// graft — Keras' callbacks with Keras' names, arguments and defaults (keras.callbacks):
// EarlyStopping, ReduceLROnPlateau, LearningRateScheduler, TerminateOnNaN, CSVLogger,
// ModelCheckpoint, LambdaCallback. (BackupAndRestore: train/backup_and_restore.hpp.)
#pragma once

#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "graft/io/atomic_file.hpp"
#include "graft/io/keras_h5.hpp"
#include "graft/model/model.hpp"
#include "graft/train/fit.hpp"
#include "graft/train/loop.hpp"

namespace graft {

namespace detail {

/// MonitorCallback._set_monitor_op: true when larger is better. "auto": losses and errors are
/// minimised; accuracy, AUC, precision and recall maximised; anything else must say its mode.
inline bool monitor_maximizes(const std::string& callback, const std::string& monitor, const std::string& mode) {
  if (mode == "max") return true;
  if (mode == "min") return false;
  if (mode != "auto") throw value_error(detail::cat(callback, ": mode must be \"auto\", \"min\" or \"max\", got \"", mode, "\""));
  std::string m = monitor.compare(0, 4, "val_") == 0 ? monitor.substr(4) : monitor;
  for (const char* up : {"acc", "auc", "precision", "recall"})
    if (m.find(up) != std::string::npos) return true;
  for (const char* down : {"loss", "error", "crossentropy", "hinge", "divergence"})
    if (m.find(down) != std::string::npos) return false;
  throw value_error(detail::cat(callback, ": cannot tell whether '", monitor,
                                "' should be minimised or maximised; pass mode \"min\" or \"max\""));
}

/// Create the folders above `file` (ModelCheckpoint, BackupAndRestore); io_error naming them otherwise.
inline void make_parent_dirs(const std::string& file) {
  std::filesystem::path dir = std::filesystem::path(file).parent_path();
  if (dir.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw io_error(detail::cat("cannot create the folder '", dir.string(), "': ", ec.message()));
}

/// Python's repr of a float (shortest text that reads back the same), as Keras' CSV rows have it.
inline std::string python_float(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  std::string s(buf, r.ptr);
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

/// str.format of a ModelCheckpoint path: {epoch}, {epoch:02d}, {val_loss:.4f}, {loss:.2e}, ...
inline std::string format_checkpoint_path(const std::string& pattern, int epoch1, const Logs& logs) {
  std::string out;
  for (size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c == '{' && i + 1 < pattern.size() && pattern[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    if (c == '}' && i + 1 < pattern.size() && pattern[i + 1] == '}') {
      out += '}';
      ++i;
      continue;
    }
    if (c != '{') {
      out += c;
      continue;
    }
    size_t end = pattern.find('}', i);
    if (end == std::string::npos) throw value_error(detail::cat("ModelCheckpoint: unbalanced '{' in \"", pattern, "\""));
    std::string field = pattern.substr(i + 1, end - i - 1), spec;
    size_t colon = field.find(':');
    if (colon != std::string::npos) {
      spec = field.substr(colon + 1);
      field = field.substr(0, colon);
    }
    double v = 0;
    bool integer = false;
    if (field == "epoch") {
      v = epoch1;
      integer = true;
    } else {
      auto it = logs.find(field);
      if (it == logs.end()) {
        std::string keys;
        for (auto& kv : logs) keys += (keys.empty() ? "" : ", ") + kv.first;
        throw value_error(detail::cat("ModelCheckpoint: failed to format the path \"", pattern, "\": no '", field, "' in the logs (", keys, ")"));
      }
      v = it->second;
    }
    // format spec: [0][width][.precision][type]
    std::string flags, width, prec;
    char type = 0;
    size_t k = 0;
    if (k < spec.size() && spec[k] == '0') flags = "0", ++k;
    while (k < spec.size() && std::isdigit(static_cast<unsigned char>(spec[k]))) width += spec[k++];
    if (k < spec.size() && spec[k] == '.') {
      ++k;
      while (k < spec.size() && std::isdigit(static_cast<unsigned char>(spec[k]))) prec += spec[k++];
    }
    if (k < spec.size()) type = spec[k++];
    if (k != spec.size() || (type && std::string("dfeEgG").find(type) == std::string::npos))
      throw value_error(detail::cat("ModelCheckpoint: unsupported format spec '", spec, "' in \"", pattern, "\""));
    char buf[128];
    if (type == 'd' || (!type && integer && prec.empty())) {
      std::string f = "%" + flags + width + "lld";
      std::snprintf(buf, sizeof buf, f.c_str(), static_cast<long long>(std::llround(v)));
      out += buf;
    } else if (!type && spec.empty()) {
      out += python_float(v);
    } else {
      std::string f = "%" + flags + width + (prec.empty() ? "" : "." + prec) + std::string(1, type ? type : 'g');
      std::snprintf(buf, sizeof buf, f.c_str(), v);
      out += buf;
    }
    i = end;
  }
  return out;
}

}  // namespace detail

/// keras.callbacks.EarlyStopping (Keras 3): stop when `monitor` has not improved by more than
/// min_delta for `patience` epochs (never at epoch 0); baseline, start_from_epoch; with
/// restore_best_weights the best epoch's weights are put back when training ends.
template <class T = float>
class EarlyStopping : public Callback<T> {
 public:
  explicit EarlyStopping(std::string monitor = "val_loss", int patience = 0, double min_delta = 0.0,
                         bool restore_best_weights = false, std::string mode = "auto",
                         std::optional<double> baseline = std::nullopt, int start_from_epoch = 0, int verbose = 0)
      : monitor_(std::move(monitor)), patience_(patience), min_delta_(std::abs(min_delta)), restore_(restore_best_weights),
        mode_(std::move(mode)), baseline_(baseline), start_from_epoch_(start_from_epoch), verbose_(verbose) {
    maximize_ = detail::monitor_maximizes("EarlyStopping", monitor_, mode_);
  }
  void on_train_begin(const Logs&) override {
    wait_ = 0;
    stopped_epoch_ = 0;
    best_.reset();
    best_weights_.clear();
    best_epoch_ = 0;
  }
  void on_epoch_end(int epoch, Logs& logs) override {
    auto it = logs.find(monitor_);
    if (it == logs.end() || epoch < start_from_epoch_) return;
    const double current = it->second;
    if (restore_ && best_weights_.empty()) {
      best_weights_ = this->model()->get_weights();
      best_epoch_ = epoch;
    }
    ++wait_;
    if (improves(current, best_)) {
      best_ = current;
      best_epoch_ = epoch;
      if (restore_) best_weights_ = this->model()->get_weights();
      if (!baseline_ || improves(current, baseline_)) wait_ = 0;
      return;
    }
    if (wait_ >= patience_ && epoch > 0) {
      stopped_epoch_ = epoch;
      this->model()->stop_training = true;
    }
  }
  void on_train_end(const Logs&) override {
    if (stopped_epoch_ > 0 && verbose_ > 0) std::cout << "Epoch " << stopped_epoch_ + 1 << ": early stopping" << std::endl;
    if (restore_ && !best_weights_.empty()) {
      if (verbose_ > 0) std::cout << "Restoring model weights from the end of the best epoch: " << best_epoch_ + 1 << "." << std::endl;
      this->model()->set_weights(best_weights_);
    }
  }
  nlohmann::json state() const override {
    return {{"wait", wait_}, {"stopped_epoch", stopped_epoch_}, {"best_epoch", best_epoch_}, {"best", best_ ? nlohmann::json(*best_) : nlohmann::json(nullptr)}};
  }
  void set_state(const nlohmann::json& s) override {
    wait_ = s.at("wait").get<int>();
    stopped_epoch_ = s.at("stopped_epoch").get<int>();
    best_epoch_ = s.at("best_epoch").get<int>();
    if (s.at("best").is_null()) best_.reset();
    else best_ = s["best"].get<double>();
  }
  int best_epoch() const { return best_epoch_; }
  /// The epoch training stopped at (0: it did not stop early), as Keras' stopped_epoch.
  int stopped_epoch() const { return stopped_epoch_; }
  double best() const { return best_ ? *best_ : (maximize_ ? -1 : 1) * std::numeric_limits<double>::infinity(); }

 private:
  bool improves(double v, const std::optional<double>& ref) const {
    if (!ref) return true;
    return maximize_ ? v - min_delta_ > *ref : v + min_delta_ < *ref;
  }
  std::string monitor_;
  int patience_;
  double min_delta_;
  bool restore_;
  std::string mode_;
  std::optional<double> baseline_;
  int start_from_epoch_, verbose_;
  bool maximize_ = false;
  int wait_ = 0, stopped_epoch_ = 0, best_epoch_ = 0;
  std::optional<double> best_;
  std::vector<Tensor<T>> best_weights_;
};

/// keras.callbacks.ReduceLROnPlateau: multiply the learning rate by `factor` (0.1) when `monitor`
/// has not improved by min_delta (1e-4) for `patience` (10) epochs; cooldown epochs after a
/// reduction; never below min_lr. Adds "learning_rate" to the epoch's logs, as Keras does.
template <class T = float>
class ReduceLROnPlateau : public Callback<T> {
 public:
  explicit ReduceLROnPlateau(std::string monitor = "val_loss", double factor = 0.1, int patience = 10, int verbose = 0,
                             std::string mode = "auto", double min_delta = 1e-4, int cooldown = 0, double min_lr = 0.0)
      : monitor_(std::move(monitor)), factor_(factor), patience_(patience), verbose_(verbose), min_delta_(std::abs(min_delta)),
        cooldown_(cooldown), min_lr_(min_lr) {
    if (!(factor < 1.0)) throw value_error(detail::cat("ReduceLROnPlateau does not support a factor >= 1.0. Received factor=", factor));
    if (patience < 0 || cooldown < 0 || !(min_lr >= 0)) throw value_error("ReduceLROnPlateau: patience, cooldown and min_lr must be >= 0");
    maximize_ = detail::monitor_maximizes("ReduceLROnPlateau", monitor_, mode);
  }
  void on_train_begin(const Logs&) override {
    best_.reset();
    cooldown_counter_ = 0;
    wait_ = 0;
  }
  nlohmann::json state() const override {
    return {{"wait", wait_}, {"cooldown_counter", cooldown_counter_}, {"best", best_ ? nlohmann::json(*best_) : nlohmann::json(nullptr)}};
  }
  void set_state(const nlohmann::json& s) override {
    wait_ = s.at("wait").get<int>();
    cooldown_counter_ = s.at("cooldown_counter").get<int>();
    if (s.at("best").is_null()) best_.reset();
    else best_ = s["best"].get<double>();
  }
  void on_epoch_end(int epoch, Logs& logs) override {
    auto& opt = *this->model()->optimizer();
    logs["learning_rate"] = opt.learning_rate();
    auto it = logs.find(monitor_);
    if (it == logs.end()) return;
    const double current = it->second;
    if (cooldown_counter_ > 0) {
      --cooldown_counter_;
      wait_ = 0;
    }
    if (!best_ || (maximize_ ? current - min_delta_ > *best_ : current + min_delta_ < *best_)) {
      best_ = current;
      wait_ = 0;
    } else if (cooldown_counter_ <= 0) {
      if (++wait_ >= patience_) {
        const double old_lr = opt.learning_rate();
        if (old_lr > static_cast<double>(static_cast<float>(min_lr_))) {
          if (opt.schedule())
            throw value_error("ReduceLROnPlateau: the optimizer's learning rate follows a schedule and cannot be set");
          const double new_lr = std::max(old_lr * factor_, min_lr_);
          opt.set_learning_rate(new_lr);
          if (verbose_ > 0) std::cout << "\nEpoch " << epoch + 1 << ": ReduceLROnPlateau reducing learning rate to " << new_lr << "." << std::endl;
          cooldown_counter_ = cooldown_;
          wait_ = 0;
        }
      }
    }
  }

 private:
  std::string monitor_;
  double factor_;
  int patience_, verbose_;
  double min_delta_;
  int cooldown_;
  double min_lr_;
  bool maximize_ = false;
  std::optional<double> best_;
  int cooldown_counter_ = 0, wait_ = 0;
};

/// keras.callbacks.LearningRateScheduler: at the start of each epoch the learning rate becomes
/// schedule(epoch, current learning rate); "learning_rate" is added to the epoch's logs. (A run
/// resumed inside an epoch keeps the restored rate: the schedule ran for that epoch already.)
template <class T = float>
class LearningRateScheduler : public Callback<T>, public LoopAware {
 public:
  using Schedule = std::function<double(int epoch, double lr)>;
  explicit LearningRateScheduler(Schedule schedule, int verbose = 0) : schedule_(std::move(schedule)), verbose_(verbose) {
    if (!schedule_) throw value_error("LearningRateScheduler: the schedule function is empty");
  }
  void on_epoch_begin(int epoch, const Logs&) override {
    if (loop_ && loop_->epoch_resumed) return;
    auto& opt = *this->model()->optimizer();
    const double lr = schedule_(epoch, opt.learning_rate());
    if (!std::isfinite(lr) || lr < 0)
      throw value_error(detail::cat("LearningRateScheduler: the schedule returned ", lr, " for epoch ", epoch, " (a learning rate must be finite and >= 0)"));
    opt.set_learning_rate(lr);
    if (verbose_ > 0) std::cout << "\nEpoch " << epoch + 1 << ": LearningRateScheduler setting learning rate to " << lr << "." << std::endl;
  }
  void on_epoch_end(int, Logs& logs) override { logs["learning_rate"] = this->model()->optimizer()->learning_rate(); }

 private:
  Schedule schedule_;
  int verbose_;
};

/// keras.callbacks.TerminateOnNaN: stops training after a batch whose loss is NaN or infinite
/// (raise_error: throws graft::value_error instead).
template <class T = float>
class TerminateOnNaN : public Callback<T> {
 public:
  explicit TerminateOnNaN(bool raise_error = false) : raise_(raise_error) {}
  void on_train_batch_end(Index batch, const Logs& logs) override {
    auto it = logs.find("loss");
    if (it == logs.end() || std::isfinite(it->second)) return;
    if (raise_)
      throw value_error(detail::cat("NaN or Inf loss encountered at batch ", batch, ". Loss value: ", it->second,
                                    ". Terminating training immediately."));
    std::cout << "Batch " << batch << ": Invalid loss, terminating training" << std::endl;
    this->model()->stop_training = true;
  }
 private:
  bool raise_;
};

/// keras.callbacks.CSVLogger: one row per epoch, columns "epoch" (from 0) and the logs' keys in
/// sorted order, values as Python prints them; separator ","; append keeps an existing file's
/// rows (and writes no second header). The file is rewritten whole and atomically after every
/// row (a run killed mid-write leaves the rows of the epochs before, never half a row).
template <class T = float>
class CSVLogger : public Callback<T> {
 public:
  explicit CSVLogger(std::string filename, std::string separator = ",", bool append = false)
      : file_(std::move(filename)), sep_(std::move(separator)), append_(append) {}
  void on_train_begin(const Logs&) override {
    keys_.clear();
    resumed_ = false;
    started_ = false;
  }
  /// A run resumed by BackupAndRestore appends to the rows written before the interruption.
  nlohmann::json state() const override { return {{"csv", file_}}; }
  void set_state(const nlohmann::json&) override { resumed_ = true; }
  void on_epoch_end(int epoch, Logs& logs) override {
    if (!this->may_write()) return;  // data-parallel: rank 0 writes
    if (!started_) start(append_ || resumed_);
    if (keys_.empty())
      for (auto& kv : logs) keys_.push_back(kv.first);  // std::map: already sorted
    std::ostringstream out;
    if (!header_written_) {
      out << "epoch";
      for (auto& k : keys_) out << sep_ << k;
      out << "\n";
      header_written_ = true;
    }
    out << epoch;
    for (auto& k : keys_) {
      auto it = logs.find(k);
      out << sep_ << (it == logs.end() ? std::string("NA") : detail::python_float(it->second));
    }
    out << "\n";
    text_ += out.str();
    detail::atomic_write_text(file_, text_);
  }
  void on_train_end(const Logs&) override { started_ = false; }

 private:
  /// The file's rows so far: an existing file's when appending, none otherwise.
  void start(bool append) {
    text_.clear();
    if (append) {
      std::ifstream in(file_, std::ios::binary);
      if (in) text_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      if (!text_.empty() && text_.back() != '\n') text_ += '\n';
    }
    header_written_ = !text_.empty();
    started_ = true;
  }
  std::string file_, sep_;
  bool append_, resumed_ = false;
  bool started_ = false, header_written_ = false;
  std::vector<std::string> keys_;
  std::string text_;  ///< everything written so far
};

/// keras.callbacks.ModelCheckpoint: saves the model (or only its weights) after every epoch, or
/// only when `monitor` improved (save_best_only; mode, initial_value_threshold). The path may hold
/// {epoch:02d} (from 1) and log values ({val_loss:.4f}); missing folders are created. Every save is
/// atomic (a crash mid-save leaves the previous file intact). Paths ending in .keras are Keras 3
/// archives, others legacy .h5.
template <class T = float>
class ModelCheckpoint : public Callback<T> {
 public:
  explicit ModelCheckpoint(std::string filepath, std::string monitor = "val_loss", int verbose = 0, bool save_best_only = false,
                           bool save_weights_only = false, std::string mode = "auto",
                           std::optional<double> initial_value_threshold = std::nullopt)
      : path_(std::move(filepath)), monitor_(std::move(monitor)), verbose_(verbose), best_only_(save_best_only),
        weights_only_(save_weights_only), best_(initial_value_threshold) {
    if (path_.empty()) throw value_error("ModelCheckpoint: empty file path");
    maximize_ = detail::monitor_maximizes("ModelCheckpoint", monitor_, mode);
  }
  void on_epoch_end(int epoch, Logs& logs) override {
    const std::string file = detail::format_checkpoint_path(path_, epoch + 1, logs);
    if (best_only_) {
      auto it = logs.find(monitor_);
      if (it == logs.end()) {
        std::cerr << "graft: warning: ModelCheckpoint can save the best model only with " << monitor_ << " available" << std::endl;
        return;
      }
      const double current = it->second;
      if (best_ && !(maximize_ ? current > *best_ : current < *best_)) {
        if (verbose_ > 0 && this->may_write())
          std::cout << "\nEpoch " << epoch + 1 << ": " << monitor_ << " did not improve from " << *best_ << std::endl;
        return;
      }
      if (verbose_ > 0 && this->may_write())
        std::cout << "\nEpoch " << epoch + 1 << ": " << monitor_ << " improved from "
                  << (best_ ? detail::python_float(*best_) : std::string(maximize_ ? "-inf" : "inf")) << " to " << current
                  << ", saving model to " << file << std::endl;
      best_ = current;
    } else if (verbose_ > 0 && this->may_write()) {
      std::cout << "\nEpoch " << epoch + 1 << ": saving model to " << file << std::endl;
    }
    last_saved_ = file;
    if (!this->may_write()) return;  // data-parallel: rank 0 writes
    detail::make_parent_dirs(file);
    if (weights_only_) save_weights(*this->model(), file);
    else save_model(*this->model(), file);
  }
  nlohmann::json state() const override { return {{"best", best_ ? nlohmann::json(*best_) : nlohmann::json(nullptr)}}; }
  void set_state(const nlohmann::json& s) override {
    if (s.at("best").is_null()) best_.reset();
    else best_ = s["best"].get<double>();
  }
  /// The file written last ("" before the first save).
  const std::string& last_saved() const { return last_saved_; }
  std::optional<double> best() const { return best_; }

 private:
  std::string path_, monitor_;
  int verbose_;
  bool best_only_, weights_only_;
  std::optional<double> best_;
  bool maximize_ = false;
  std::string last_saved_;
};

/// keras.callbacks.LambdaCallback: each hook a std::function (empty ones do nothing).
template <class T = float>
class LambdaCallback : public Callback<T> {
 public:
  std::function<void(int, const Logs&)> on_epoch_begin_fn;
  std::function<void(int, Logs&)> on_epoch_end_fn;
  std::function<void(Index, const Logs&)> on_train_batch_begin_fn, on_train_batch_end_fn;
  std::function<void(const Logs&)> on_train_begin_fn, on_train_end_fn;

  void on_train_begin(const Logs& l) override {
    if (on_train_begin_fn) on_train_begin_fn(l);
  }
  void on_train_end(const Logs& l) override {
    if (on_train_end_fn) on_train_end_fn(l);
  }
  void on_epoch_begin(int e, const Logs& l) override {
    if (on_epoch_begin_fn) on_epoch_begin_fn(e, l);
  }
  void on_epoch_end(int e, Logs& l) override {
    if (on_epoch_end_fn) on_epoch_end_fn(e, l);
  }
  void on_train_batch_begin(Index b, const Logs& l) override {
    if (on_train_batch_begin_fn) on_train_batch_begin_fn(b, l);
  }
  void on_train_batch_end(Index b, const Logs& l) override {
    if (on_train_batch_end_fn) on_train_batch_end_fn(b, l);
  }
};

}  // namespace graft
