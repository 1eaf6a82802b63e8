// graft — the batch reader of fit(), evaluate() and predict(): loads the rows of the next batch
// from a Source on a worker thread while the current batch trains (decoding, resizing and
// augmentation done in the input pipeline overlap with training), or on the calling thread for
// sources that only copy memory. Two batch buffers, reused: allocation-free once warm.
#pragma once

#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "graft/data/source.hpp"

namespace graft {
namespace data {

template <class T = float>
class BatchReader {
 public:
  struct Batch {
    std::vector<Tensor<T>> x, y;
    Index count = 0;
  };

  /// prefetch: load on a worker thread one batch ahead (otherwise load() runs in wait()).
  BatchReader(const Source<T>& src, bool prefetch) : src_(&src), prefetch_(prefetch) {}
  ~BatchReader() { stop(); }
  BatchReader(const BatchReader&) = delete;
  BatchReader& operator=(const BatchReader&) = delete;

  /// Start loading rows[0..cnt) (the array must stay valid until the matching wait()).
  void request(const Index* rows, Index cnt) {
    if (pending_) throw value_error("BatchReader: a batch is already requested");
    pending_ = true;
    Batch& b = buf_[next_];
    b.count = cnt;
    if (!prefetch_) {
      rows_ = rows;
      return;
    }
    ensure_thread();
    {
      std::lock_guard<std::mutex> lk(mu_);
      rows_ = rows;
      job_buf_ = next_;
      job_ = true;
      done_ = false;
      err_ = nullptr;
    }
    cv_.notify_all();
  }

  /// The batch last requested, loaded. Valid until the second request() after this call (the
  /// next request loads into the other buffer).
  Batch& wait() {
    if (!pending_) throw value_error("BatchReader: no batch requested");
    pending_ = false;
    Batch& b = buf_[next_];
    next_ ^= 1;
    if (!prefetch_) {
      src_->load(rows_, b.count, b.x, b.y);
      return b;
    }
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return done_; });
    if (err_) {
      std::exception_ptr e = err_;
      err_ = nullptr;
      std::rethrow_exception(e);
    }
    return b;
  }

  /// Wait for a batch in flight (an error is dropped) and end the worker thread.
  void stop() {
    if (!worker_.joinable()) return;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return !job_; });
      quit_ = true;
    }
    cv_.notify_all();
    worker_.join();
    pending_ = false;
  }

 private:
  void ensure_thread() {
    if (worker_.joinable()) return;
    quit_ = false;
    worker_ = std::thread([this] {
      for (;;) {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return job_ || quit_; });
        if (quit_ && !job_) return;
        Batch& b = buf_[job_buf_];
        const Index* rows = rows_;
        lk.unlock();
        std::exception_ptr e;
        try {
          src_->load(rows, b.count, b.x, b.y);
        } catch (...) {
          e = std::current_exception();
        }
        lk.lock();
        err_ = e;
        job_ = false;
        done_ = true;
        lk.unlock();
        cv_.notify_all();
      }
    });
  }

  const Source<T>* src_;
  bool prefetch_;
  Batch buf_[2];
  int next_ = 0;     // the buffer the next request loads into (main thread only)
  int job_buf_ = 0;  // the buffer the worker's job loads into (under mu_)
  bool pending_ = false;
  const Index* rows_ = nullptr;
  std::thread worker_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool job_ = false, done_ = false, quit_ = false;
  std::exception_ptr err_;
};

}  // namespace data
}  // namespace graft
