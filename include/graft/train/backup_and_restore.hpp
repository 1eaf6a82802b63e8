// graft — keras.callbacks.BackupAndRestore, bit-identical: a run killed at any point (kill -9, a
// crash, an exception) and started again with the same command resumes from its last checkpoint
// — the end of the last completed epoch, or every `save_freq` batches — with weights, optimizer
// slots, random generators, the shuffled order and the epoch's running sums, so that it ends
// with exactly the weights of an uninterrupted run.
#pragma once

#include <filesystem>
#include <string>
#include <system_error>

#include "graft/train/callbacks.hpp"
#include "graft/train/loop.hpp"
#include "graft/train/training_state.hpp"

namespace graft {

template <class T = float>
class BackupAndRestore : public Callback<T>, public LoopAware {
 public:
  /// `save_freq`: 0 saves at the end of every epoch (Keras' "epoch"); N > 0 also every N batches.
  /// `delete_checkpoint`: remove the backup when training ends normally (Keras' default).
  explicit BackupAndRestore(std::string backup_dir, Index save_freq = 0, bool delete_checkpoint = true)
      : dir_(std::move(backup_dir)), save_freq_(save_freq), delete_(delete_checkpoint) {
    if (dir_.empty()) throw value_error("BackupAndRestore: empty backup_dir");
    if (save_freq_ < 0) throw value_error(detail::cat("BackupAndRestore: save_freq must be 0 (\"epoch\") or a positive number of batches, got ", save_freq_));
  }
  bool restores_run() const override { return true; }
  std::string checkpoint_path() const { return (std::filesystem::path(dir_) / "checkpoint.h5").string(); }
  /// True when the last fit() resumed from a checkpoint.
  bool resumed() const { return resumed_; }

  void on_train_begin(const Logs&) override {
    resumed_ = false;
    if (!loop_) throw value_error("BackupAndRestore: used outside fit()");
    std::error_code ec;
    if (std::filesystem::exists(dir_, ec) && !std::filesystem::is_directory(dir_, ec))
      throw value_error(detail::cat("BackupAndRestore: '", dir_, "' exists and is not a folder"));
    if (std::filesystem::exists(checkpoint_path(), ec)) {
      load_training_checkpoint(checkpoint_path(), *this->model(), *loop_);
      resumed_ = true;
    }
  }
  void on_train_batch_end(Index batch, const Logs&) override {
    if (save_freq_ > 0 && (batch + 1) % save_freq_ == 0 && batch + 1 < loop_->steps_per_epoch) save(loop_->epoch, batch + 1);
  }
  void on_epoch_end(int epoch, Logs&) override { save(epoch + 1, 0); }
  void on_train_end(const Logs&) override {
    if (!delete_ || !this->may_write()) return;
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

 private:
  void save(int next_epoch, Index next_step) {
    if (!this->may_write()) return;  // data-parallel: rank 0 writes
    detail::make_parent_dirs(checkpoint_path());
    save_training_checkpoint(checkpoint_path(), *this->model(), *loop_, next_epoch, next_step);
  }
  std::string dir_;
  Index save_freq_;
  bool delete_;
  bool resumed_ = false;
};

}  // namespace graft
