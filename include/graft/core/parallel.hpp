// graft — the library's own worker threads, for parallel matrix products and loops.
//
// Why not OpenMP regions: with libgomp's default wait policy, idle OpenMP threads spin for
// milliseconds after every parallel region. Training runs thousands of short regions per epoch;
// on a machine whose cores are also busy with other work, the spinning workers steal the cores
// the main thread needs (measured: model A, batch 32, 2 threads, load ~5 on 2 cores: 1 000
// samples/s with the default policy, 14 000 with OMP_WAIT_POLICY=passive, 15 000 on one thread).
// A library cannot set that policy for its host program, so graft keeps its own small pool:
//   * after a job, workers spin briefly (~20 us), then keep polling for ~200 us while yielding the
//     core to any other runnable thread (sched_yield), then sleep on a condition variable. A
//     training step's products come every few tens of microseconds, so on an idle machine the
//     worker is awake when the next one arrives (a sleeping vCPU can take 50 us+ to wake), and on
//     a busy one the polling gives its core away;
//   * work is split into chunks that every participant claims from a shared counter, the calling
//     thread included: a worker that wakes late finds less (or nothing) left to do, so a busy
//     machine degrades a parallel call to the speed of a serial one instead of stalling it;
//   * a worker can still be preempted after claiming a chunk, leaving the caller waiting for a
//     whole scheduler time slice. When the caller waits for a worker more than 0.5 ms and longer
//     than its own share of the job took (the job ran slower than on one thread), the pool
//     runs jobs serially for the next 20 ms (doubling while it keeps happening, at most 640 ms)
//     before trying threads again, so an oversubscribed machine costs little over one thread;
//   * nothing is allocated per call (workers are created once, when first needed).
// The thread count is graft::set_num_threads(n) when set, otherwise omp_get_max_threads() in a
// program built with OpenMP (OMP_NUM_THREADS, omp_set_num_threads), otherwise 1.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <immintrin.h>
#define GRAFT_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define GRAFT_CPU_RELAX() asm volatile("yield" ::: "memory")
#else
#define GRAFT_CPU_RELAX() ((void)0)
#endif

#include "graft/core/tensor.hpp"

namespace graft {

namespace detail {
inline std::atomic<int>& thread_setting() {
  static std::atomic<int> n{0};
  return n;
}
/// True on graft's worker threads (nested parallel calls run serially there).
inline bool& on_worker_thread() {
  thread_local bool w = false;
  return w;
}
/// True while the calling thread runs its own share of a parallel job: parallel calls nested
/// in a job's chunks run serially there too.
inline bool& in_parallel_job() {
  thread_local bool w = false;
  return w;
}
}  // namespace detail

/// Threads graft may use for one matrix product or loop (0 restores the default: OpenMP's
/// omp_get_max_threads() when the program is built with OpenMP, 1 otherwise).
inline void set_num_threads(int n) { detail::thread_setting().store(n > 0 ? n : 0, std::memory_order_relaxed); }

/// The thread count graft's parallel calls use now.
inline int num_threads() {
  const int n = detail::thread_setting().load(std::memory_order_relaxed);
  if (n > 0) return n;
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

namespace detail {

/// Threads a parallel call made here can use: num_threads(), or 1 inside a parallel job's chunk
/// (on a worker, or the caller's own share), where nested calls run serially: splitting work
/// there would only cut it into smaller pieces run one after the other.
inline int usable_threads() { return on_worker_thread() || in_parallel_job() ? 1 : num_threads(); }

/// Multiply-adds each thread should get before work is split over threads (~6 us here): below
/// it, waking a worker costs more than it saves. Used by products and by predict's row slices.
constexpr double kMinWorkPerThread = 2.5e5;

class ThreadPool {
 public:
  using Fn = void (*)(void*, Index);

  /// The process-wide pool. Never destroyed: its sleeping workers end with the process.
  static ThreadPool& instance() {
    static ThreadPool* pool = new ThreadPool();
    return *pool;
  }

  /// fn(ctx, c) for every chunk c in [0, chunks), on the calling thread and up to `threads` - 1
  /// workers; returns when every chunk is done. fn must not throw. Serial when threads <= 1,
  /// when called from a worker or an OpenMP region, or while another thread runs a job.
  void run(Index chunks, int threads, Fn fn, void* ctx) {
    if (chunks <= 0) return;
    bool serial = threads <= 1 || chunks == 1 || on_worker_thread() || in_parallel_job();
#ifdef _OPENMP
    serial = serial || omp_in_parallel();
#endif
    std::unique_lock<std::mutex> job(job_mutex_, std::defer_lock);
    if (!serial && !job.try_lock()) serial = true;
    if (!serial && std::chrono::steady_clock::now() < serial_until_) serial = true;  // under job_mutex_
    if (serial) {
      if (job.owns_lock()) job.unlock();  // nested calls in fn may try the lock: never while we hold it
      for (Index c = 0; c < chunks; ++c) fn(ctx, c);
      return;
    }
    const int helpers = static_cast<int>(std::min<Index>(threads - 1, chunks - 1));
    ensure_workers(helpers);  // before the job is published: new workers start from the current generation
    std::uint64_t gen;
    bool wake;
    {
      std::lock_guard<std::mutex> lock(m_);
      fn_ = fn;
      ctx_ = ctx;
      chunks_ = chunks;
      wanted_ = helpers;
      gen = (gen_.load(std::memory_order_relaxed) + 1) & 0xffffffffu;
      done_.store(0, std::memory_order_relaxed);
      claim_.store(gen << 32, std::memory_order_release);
      gen_.store(gen, std::memory_order_release);
      wake = sleeping_ > 0;
    }
    if (wake) cv_.notify_all();
    const auto begin = std::chrono::steady_clock::now();
    in_parallel_job() = true;
    work(gen, fn, ctx, chunks);
    in_parallel_job() = false;
    if (done_.load(std::memory_order_acquire) < chunks) {
      const auto own = std::chrono::steady_clock::now() - begin;
      const auto start = std::chrono::steady_clock::now();
      for (int spin = 0; done_.load(std::memory_order_acquire) < chunks; ++spin) {
        if (spin < 2000) GRAFT_CPU_RELAX();
        else std::this_thread::yield();
      }
      // Waiting longer than the caller's own share took means threads made this job slower
      // than running it alone: the worker was preempted or descheduled. Once can be a hiccup
      // of the machine; again within kLateWindowMs means the cores are taken (other programs):
      // run serially for a while.
      const auto now = std::chrono::steady_clock::now();
      const auto waited = now - start;
      if (waited > std::chrono::microseconds(kLateUs) && waited > own) {
        const bool recurring = now < late_until_;
        late_until_ = now + std::chrono::milliseconds(kLateWindowMs);
        if (recurring) {
          serial_until_ = now + std::chrono::milliseconds(next_backoff_ms_);
          late_until_ = serial_until_ + std::chrono::milliseconds(kLateWindowMs);
          next_backoff_ms_ = std::min(2 * next_backoff_ms_, kMaxBackoffMs);
        }
        return;
      }
    }
    next_backoff_ms_ = kMinBackoffMs;
  }

  /// Spin iterations (CPU pause instructions) a worker waits for the next job before sleeping.
  static constexpr int kSpin = 1000;
  /// Microseconds a worker then keeps polling, yielding its core between polls, before it sleeps.
  static constexpr int kPollUs = 200;
  /// A caller that waits longer than this for a worker's chunk assumes the worker was preempted.
  static constexpr int kLateUs = 500;
  /// When that happens twice within kLateWindowMs milliseconds (counted from the end of the
  /// last serial period), jobs run serially for kMinBackoffMs milliseconds, doubling while it
  /// recurs, up to kMaxBackoffMs.
  static constexpr int kLateWindowMs = 100;
  static constexpr int kMinBackoffMs = 20, kMaxBackoffMs = 640;

 private:
  ThreadPool() = default;

  /// Claim and run chunks of job `gen` until none is left (or a newer job replaced it).
  void work(std::uint64_t gen, Fn fn, void* ctx, Index chunks) {
    for (;;) {
      std::uint64_t s = claim_.load(std::memory_order_acquire);
      for (;;) {
        if ((s >> 32) != gen || static_cast<Index>(s & 0xffffffffu) >= chunks) return;
        if (claim_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel)) break;
      }
      fn(ctx, static_cast<Index>(s & 0xffffffffu));
      done_.fetch_add(1, std::memory_order_acq_rel);
    }
  }

  void ensure_workers(int n) {
    std::lock_guard<std::mutex> lock(m_);
    while (static_cast<int>(workers_.size()) < n) {
      const int id = static_cast<int>(workers_.size());
      const std::uint64_t start = gen_.load(std::memory_order_relaxed);
      workers_.emplace_back([this, id, start] { worker_loop(id, start); });
      workers_.back().detach();
    }
  }

  void worker_loop(int id, std::uint64_t seen) {
    on_worker_thread() = true;
    std::unique_lock<std::mutex> lock(m_);
    for (;;) {
      if (gen_.load(std::memory_order_relaxed) == seen) {
        lock.unlock();
        for (int i = 0; i < kSpin && gen_.load(std::memory_order_acquire) == seen; ++i) GRAFT_CPU_RELAX();
        const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(kPollUs);
        while (gen_.load(std::memory_order_acquire) == seen && std::chrono::steady_clock::now() < until) {
          std::this_thread::yield();
          for (int i = 0; i < 50 && gen_.load(std::memory_order_acquire) == seen; ++i) GRAFT_CPU_RELAX();
        }
        lock.lock();
        while (gen_.load(std::memory_order_relaxed) == seen) {
          ++sleeping_;
          cv_.wait(lock);
          --sleeping_;
        }
      }
      seen = gen_.load(std::memory_order_relaxed);
      if (id >= wanted_) continue;
      const Fn fn = fn_;
      void* const ctx = ctx_;
      const Index chunks = chunks_;
      lock.unlock();
      work(seen, fn, ctx, chunks);
      lock.lock();
    }
  }

  std::mutex job_mutex_;  // one job at a time
  std::mutex m_;          // job description, worker list, sleeping count
  std::condition_variable cv_;
  std::atomic<std::uint64_t> gen_{0};
  std::atomic<std::uint64_t> claim_{0};  // (generation << 32) | next chunk
  std::atomic<Index> done_{0};
  Fn fn_ = nullptr;
  void* ctx_ = nullptr;
  Index chunks_ = 0;
  int wanted_ = 0;
  int sleeping_ = 0;
  // serial fallback after a preempted worker (all four under job_mutex_)
  int next_backoff_ms_ = kMinBackoffMs;
  std::chrono::steady_clock::time_point serial_until_{};
  std::chrono::steady_clock::time_point late_until_{};  // a late job before this recurs
  std::vector<std::thread> workers_;
};

/// f(c) for c in [0, chunks) over up to `threads` threads (graft's pool); f must not throw.
template <class F>
void parallel_chunks(Index chunks, int threads, F&& f) {
  using Fp = std::remove_reference_t<F>;
  ThreadPool::instance().run(
      chunks, threads, [](void* ctx, Index c) { (*static_cast<Fp*>(ctx))(c); },
      const_cast<void*>(static_cast<const void*>(&f)));
}

/// f(i) for i in [begin, end), split into chunks run on graft's worker threads when `parallel`
/// (the work is big enough) and more than one thread is allowed; serially otherwise. Each i
/// must touch its own outputs only.
template <class F>
void parallel_for(Index begin, Index end, bool parallel, F&& f) {
  const Index n = end - begin;
  const int threads = parallel && n > 1 ? usable_threads() : 1;
  if (threads <= 1) {
    for (Index i = begin; i < end; ++i) f(i);
    return;
  }
  // a few chunks per thread: a worker that wakes late (busy machine) finds the rest done
  const Index chunks = std::min<Index>(n, 4 * static_cast<Index>(threads));
  parallel_chunks(chunks, threads, [&](Index c) {
    const Index lo = begin + n * c / chunks, hi = begin + n * (c + 1) / chunks;
    for (Index i = lo; i < hi; ++i) f(i);
  });
}

/// The calling thread's scratch buffer of at least n elements (grows, never shrinks; kept for
/// the thread's next call, so steady-state loops allocate nothing).
template <class T>
T* thread_scratch(Index n) {
  thread_local std::vector<T> buffer;
  if (static_cast<Index>(buffer.size()) < n) buffer.resize(static_cast<size_t>(n));
  return buffer.data();
}

}  // namespace detail
}  // namespace graft
