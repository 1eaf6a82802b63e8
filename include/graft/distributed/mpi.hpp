// graft — data-parallel training on MPI: MpiDistributed<T> implements the communicator fit()
// asks for (train/distributed.hpp) on an MPI communicator. Optional and header-only: include this
// header and link MPI::MPI_CXX (CMake: graft::mpi). Start the same program on every process with
// mpirun; every rank trains on its shard of each global batch and takes the identical step.
//
//   int main(int argc, char** argv) {
//     graft::mpi::Environment env(argc, argv);   // MPI_Init_thread .. MPI_Finalize
//     auto dist = std::make_shared<graft::MpiDistributed<float>>();
//     opts.distributed = dist;                    // rank 0 prints and writes files
//     model->fit(x, y, opts);
//   }
//   $ mpirun -np 4 ./train
//
// Gradients: summed in fused buckets (Options::bucket_bytes, 25 MB by default as Horovod's
// fusion buffer and PyTorch DDP's bucket_cap_mb): the gradients of all parameters, in the order
// fit() passes them, are packed (times the caller's scale) into one staging buffer of at most a
// bucket, reduced in one call per bucket, and copied back. The staging buffer is allocated once
// and reused: no allocation per step. Reduction order (the float sum of element i):
//  * Reduction::allreduce (default): MPI_Iallreduce(MPI_SUM), the nonblocking MPI_Allreduce
//    (nonblocking only so that a wait can time out). The order is that of the MPI library's
//    algorithm, fixed for a given library, process count and bucket size: with 2 processes it is
//    g0 + g1; Open MPI's algorithms (recursive doubling, ring, reduce-scatter + allgather) give
//    every rank the same bits because IEEE addition is commutative.
//  * Reduction::rank_order: ((g0 + g1) + g2) + ... + g(P-1) in T, whatever the MPI library: each
//    rank sums one P-th of the bucket (MPI_Ialltoall of the slices, the sum in rank order) and
//    MPI_Iallgather gives every rank all the sums: the bytes of a ring allreduce,
//    2 (P-1)/P times the bucket per rank, and bit-identical across MPI builds.
// Loss, metric and count sums (allreduce_sum) are gathered (MPI_Iallgather, in double) and added
// in rank order 0, 1, ..., P-1 on every rank: bit-identical on all ranks.
//
// Faults: every MPI call of this class returns its error (MPI_ERRORS_RETURN on a private duplicate
// of the communicator) and becomes a graft::mpi_error; every wait gives up after
// Options::timeout_seconds (env GRAFT_MPI_TIMEOUT, default 600 s) with an
// mpi_error. What Open MPI 4.1's mpirun does when one rank of 2 stops while the other waits in
// MPI_Allreduce (measured, tests/mpi/):
//  * killed (SIGKILL) or crashed: mpirun kills the job ~1.5 s later, exit status 137 ("mpirun
//    noticed that process rank 1 ... exited on signal 9 (Killed)");
//  * exit with a non-zero status, or exit(0) without MPI_Finalize: mpirun aborts the job ~1.5 s
//    later ("exited with non-zero status" / "exiting improperly");
//  * returns from main normally (MPI_Finalize) or hangs: the other rank waits forever in a blocking
//    MPI_Allreduce (no error, no timeout in MPI 3.1) — graft's timeout is for this case: the
//    waiting rank throws mpi_error, and the job is aborted (below).
// After an error, a program calls every_rank_failed(): when all ranks raised the error (check_same
// throws on every rank) they end normally; otherwise graft::mpi::abort() ends the job (see
// MpiDistributed::every_rank_failed and tools/graft_mpi.hpp).
#pragma once

// graft uses MPI's C API only: leave out the C++ bindings (deprecated since MPI 2.2).
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "graft/core/errors.hpp"
#include "graft/core/param.hpp"
#include "graft/core/tensor.hpp"
#include "graft/train/distributed.hpp"

namespace graft {

/// An MPI call failed, or other ranks did not answer in time (kind "mpi").
class mpi_error : public error {
 public:
  explicit mpi_error(const std::string& m) : error("mpi", m) {}
};

namespace mpi {

namespace detail {
inline std::string error_string(int rc) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, buf, &len) != MPI_SUCCESS) return graft::detail::cat("MPI error code ", rc);
  return std::string(buf, static_cast<size_t>(len));
}
inline void check(int rc, const char* call) {
  if (rc != MPI_SUCCESS) throw mpi_error(graft::detail::cat("data-parallel training: ", call, " failed: ", error_string(rc)));
}
inline bool initialized() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin;
}
}  // namespace detail

/// True when an MPI launcher started this process (Open MPI's mpirun, MPICH/Intel Hydra, Slurm
/// with PMI or PMIx): its environment variables are set. A program started by hand is not, and can
/// then skip MPI_Init (half a second, and nothing to talk to).
inline bool launched_by_mpirun() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALNRANKS", "MV2_COMM_WORLD_SIZE"})
    if (std::getenv(v)) return true;
  return false;
}

/// MPI for the length of a scope: MPI_Init_thread (MPI_THREAD_SERIALIZED: graft calls MPI from
/// the thread that runs fit(), whichever it is; its worker threads never do) unless MPI is already
/// initialized, and MPI_Finalize at the end if this object initialized it. A program that was not
/// started by mpirun runs as one process (MPI's singleton mode).
class Environment {
 public:
  Environment() : Environment(nullptr, nullptr) {}
  Environment(int& argc, char**& argv) : Environment(&argc, &argv) {}
  ~Environment() {
    if (owner_ && detail::initialized()) MPI_Finalize();
  }
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;
  /// True when this object called MPI_Init (and will call MPI_Finalize).
  bool owner() const { return owner_; }

 private:
  Environment(int* argc, char*** argv) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (fin) throw mpi_error("MPI was finalized already: it cannot be initialized again in this process");
    if (init) return;
    int provided = 0;
    detail::check(MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
    owner_ = true;
  }
  bool owner_ = false;
};

/// MPI initialized if needed, finalized at exit (MpiDistributed constructed without an
/// Environment in scope).
inline void ensure_initialized() {
  if (detail::initialized()) return;
  static Environment env;
}

/// Ends every process of the job (MPI_Abort on MPI_COMM_WORLD; mpirun exits with `code`).
[[noreturn]] inline void abort(int code) {
  if (detail::initialized()) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

/// The wait limit of collectives: GRAFT_MPI_TIMEOUT (seconds) if set, else 600 s.
inline double default_timeout_seconds() {
  const char* s = std::getenv("GRAFT_MPI_TIMEOUT");
  if (!s || !*s) return 600.0;
  char* end = nullptr;
  const double v = std::strtod(s, &end);
  if (!end || *end || !(v > 0)) throw value_error(graft::detail::cat("GRAFT_MPI_TIMEOUT expects a positive number of seconds, got '", s, "'"));
  return v;
}

template <class T>
MPI_Datatype datatype() {
  static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value, "MpiDistributed: float or double");
  return std::is_same<T, float>::value ? MPI_FLOAT : MPI_DOUBLE;
}

}  // namespace mpi

template <class T = float>
class MpiDistributed : public Distributed<T> {
 public:
  enum class Reduction { allreduce, rank_order };
  struct Options {
    /// Bytes of gradients reduced per call (the fusion buffer); 25 MB as Horovod and PyTorch DDP.
    size_t bucket_bytes = size_t(25) << 20;
    /// Seconds a rank waits for the others in one collective before it throws mpi_error.
    double timeout_seconds = mpi::default_timeout_seconds();
    Reduction reduction = Reduction::allreduce;
  };

  /// Duplicates `comm` (collective over it): graft's messages never mix with the program's own.
  /// Initializes MPI if the program did not (finalized at exit).
  explicit MpiDistributed(MPI_Comm comm = MPI_COMM_WORLD) : MpiDistributed(comm, Options{}) {}
  MpiDistributed(MPI_Comm comm, Options o) : opt_(o) {
    if (opt_.bucket_bytes < sizeof(T)) throw value_error("MpiDistributed: bucket_bytes must hold at least one value");
    if (!(opt_.timeout_seconds > 0)) throw value_error("MpiDistributed: timeout_seconds must be positive");
    mpi::ensure_initialized();
    mpi::detail::check(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup");
    mpi::detail::check(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    mpi::detail::check(MPI_Comm_dup(comm_, &control_), "MPI_Comm_dup");
    mpi::detail::check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    mpi::detail::check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
  }
  ~MpiDistributed() override {
    if (!mpi::detail::initialized()) return;
    MPI_Comm_free(&control_);
    MPI_Comm_free(&comm_);
  }
  MpiDistributed(const MpiDistributed&) = delete;
  MpiDistributed& operator=(const MpiDistributed&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const Options& options() const { return opt_; }
  /// The private communicator graft's collectives run on.
  MPI_Comm comm() const { return comm_; }

  void broadcast(const std::vector<Tensor<T>*>& tensors) override {
    if (size_ == 1) return;
    std::uint64_t h = 1469598103934665603ull;
    for (const Tensor<T>* t : tensors) mix(h, static_cast<std::uint64_t>(t->size()));
    check_same(h, "the sizes of the weights and optimizer state broadcast from rank 0");
    Index total = 0;
    for (const Tensor<T>* t : tensors) total += t->size();
    const Index cap = reserve_staging(total);
    for (Index done = 0; done < total; done += cap) {
      const Index n = std::min(cap, total - done);
      if (rank_ == 0) copy_range(tensors, done, n, true);
      MPI_Request req;
      mpi::detail::check(MPI_Ibcast(staging_.data(), static_cast<int>(n), mpi::datatype<T>(), 0, comm_, &req), "MPI_Ibcast");
      wait(&req, 1, "the broadcast of the initial weights");
      if (rank_ != 0) copy_range(tensors, done, n, false);
    }
  }

  /// Every param's gradient, times `scale`, summed over ranks, in buckets of Options::bucket_bytes.
  /// A param whose gradient is still fresh on a rank (it received none there, e.g. a rank with no
  /// rows in the batch) contributes zeros; a param fresh on every rank stays fresh (the optimizer
  /// skips it, as in a single-process run). Every rank passes the same params in the same order
  /// (checked whenever the list changes).
  void allreduce_gradients(const std::vector<Param<T>*>& params, T scale) override {
    const auto t0 = std::chrono::steady_clock::now();
    sum_gradients(params, scale);
    stats_.gradient_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    stats_.gradient_bytes += static_cast<std::uint64_t>(grad_total_) * sizeof(T);
    ++stats_.gradient_calls;
  }

  /// Time spent in allreduce_gradients (packing, reduction, unpacking; on a rank that waits for a
  /// slower one, the wait too) and the gradient bytes it summed: for benchmarks.
  struct Stats {
    double gradient_seconds = 0;
    std::uint64_t gradient_bytes = 0;
    long gradient_calls = 0;
  };
  const Stats& stats() const { return stats_; }
  void reset_stats() { stats_ = Stats{}; }

  /// Every tensor <- its mean over ranks (summed as gradients are, then divided by the process
  /// count), in buckets: for BatchNormalization's moving statistics, which each rank updates from
  /// its own shard (Param::trainable false). Every rank passes tensors of the same sizes.
  void allreduce_mean(const std::vector<Tensor<T>*>& tensors) override {
    if (size_ == 1) return;
    std::uint64_t h = 1469598103934665603ull;
    Index total = 0;
    for (const Tensor<T>* t : tensors) {
      mix(h, static_cast<std::uint64_t>(t->size()));
      total += t->size();
    }
    check_same(h, "the sizes of the tensors averaged over the processes");
    const Index cap = reserve_staging(total);
    const T inv = T(1) / static_cast<T>(size_);
    for (Index done = 0; done < total; done += cap) {
      const Index n = std::min(cap, total - done);
      copy_range(tensors, done, n, true);
      reduce_staging(n);
      for (Index i = 0; i < n; ++i) staging_[static_cast<size_t>(i)] *= inv;
      copy_range(tensors, done, n, false);
    }
  }

  /// v[i] <- v[i] summed over ranks in rank order (((v_0 + v_1) + v_2) + ...), on every rank.
  void allreduce_sum(double* v, size_t n) override {
    if (size_ == 1 || n == 0) return;
    gathered_.resize(n * static_cast<size_t>(size_));  // grows once: the same n every step
    MPI_Request req;
    mpi::detail::check(MPI_Iallgather(v, static_cast<int>(n), MPI_DOUBLE, gathered_.data(), static_cast<int>(n), MPI_DOUBLE, comm_, &req),
                       "MPI_Iallgather");
    wait(&req, 1, "the sum of the loss and metrics");
    for (size_t i = 0; i < n; ++i) {
      double s = gathered_[i];
      for (int r = 1; r < size_; ++r) s += gathered_[static_cast<size_t>(r) * n + i];
      v[i] = s;
    }
  }

  /// MPI_Allreduce of the minimum and maximum of `value`: when they differ every rank throws the
  /// same value_error.
  void check_same(std::uint64_t value, const std::string& what) override {
    if (size_ == 1) return;
    std::uint64_t mm[2] = {value, ~value};  // max of value, max of ~value = ~min of value
    MPI_Request req;
    mpi::detail::check(MPI_Iallreduce(MPI_IN_PLACE, mm, 2, MPI_UINT64_T, MPI_MAX, comm_, &req), "MPI_Iallreduce");
    wait(&req, 1, what.c_str());
    const std::uint64_t hi = mm[0], lo = ~mm[1];
    if (hi != lo)
      throw value_error(graft::detail::cat("data-parallel training: the ", size_, " processes disagree on ", what, " (hashes from ", lo, " to ", hi,
                                           "): start every process with the same model file, data and options"));
  }

  void barrier() override {
    if (size_ == 1) return;
    MPI_Request req;
    mpi::detail::check(MPI_Ibarrier(comm_, &req), "MPI_Ibarrier");
    wait(&req, 1, "a barrier (rank 0 writing files)");
  }

  /// After an error on this rank: true when every rank reaches this call within `grace_seconds`
  /// (the error was raised everywhere, as check_same's: end normally, MPI_Finalize included);
  /// false when some rank did not (it is still training, hangs or died): call mpi::abort().
  /// Runs on a second private communicator, so it never matches a collective left unfinished.
  bool every_rank_failed(double grace_seconds = 10.0) {
    if (size_ == 1) return true;
    MPI_Request req;
    if (MPI_Ibarrier(control_, &req) != MPI_SUCCESS) return false;
    try {
      wait(&req, 1, "the ranks' agreement on an error", grace_seconds);
      return true;
    } catch (const error&) {
      return false;
    }
  }

 private:
  /// allreduce_gradients, untimed.
  void sum_gradients(const std::vector<Param<T>*>& params, T scale) {
    layout(params);
    if (size_ == 1) {
      if (scale != T(1))
        for (Param<T>* p : params)
          if (!p->grad_fresh)
            for (Index i = 0; i < p->grad.size(); ++i) p->grad[i] *= scale;
      return;
    }
    // virtual array: [one counter per param: 1 where this rank has a gradient][every gradient]
    const Index np = static_cast<Index>(params.size());
    for (size_t i = 0; i < params.size(); ++i) local_fresh_[i] = params[i]->grad_fresh ? 1 : 0;  // before any unpack
    const Index total = np + grad_total_;
    const Index cap = reserve_staging(total);
    for (Index done = 0; done < total; done += cap) {
      const Index n = std::min(cap, total - done);
      pack(params, done, n, scale);
      reduce_staging(n);
      unpack(params, done, n);
    }
  }

  static void mix(std::uint64_t& h, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) h = (h ^ ((v >> (8 * i)) & 0xff)) * 1099511628211ull;
  }

  /// Staging (and, for rank_order, receive) buffers for min(total, bucket) values, padded to a
  /// multiple of the process count; grown, never shrunk. Returns the values per bucket.
  Index reserve_staging(Index total) {
    const Index bucket = std::max<Index>(size_, static_cast<Index>(opt_.bucket_bytes / sizeof(T)) / size_ * size_);
    const Index cap = std::max<Index>(1, std::min(total, bucket));
    const size_t need = static_cast<size_t>((cap + size_ - 1) / size_ * size_);
    if (staging_.size() < need) staging_.resize(need);
    if (opt_.reduction == Reduction::rank_order && recv_.size() < need) recv_.resize(need);
    return cap;
  }

  /// Checks, whenever the list of params or their sizes change, that every rank has the same.
  void layout(const std::vector<Param<T>*>& params) {
    bool same = params.size() == layout_.size();
    for (size_t i = 0; same && i < params.size(); ++i)
      same = layout_[i].first == params[i] && layout_[i].second == params[i]->value.size();
    if (same) return;
    layout_.clear();
    local_fresh_.assign(params.size(), 0);
    grad_total_ = 0;
    std::uint64_t h = 1469598103934665603ull;
    for (Param<T>* p : params) {
      layout_.emplace_back(p, p->value.size());
      grad_total_ += p->value.size();
      mix(h, static_cast<std::uint64_t>(p->value.size()));
    }
    check_same(h, "the trainable weights whose gradients are summed");
  }

  /// staging[0..n) <- virtual[done..done+n) (counters, then gradients times scale).
  void pack(const std::vector<Param<T>*>& params, Index done, Index n, T scale) {
    const Index np = static_cast<Index>(params.size());
    T* s = staging_.data();
    for (Index k = done; k < std::min(done + n, np); ++k) s[k - done] = local_fresh_[static_cast<size_t>(k)] ? T(0) : T(1);
    for_each_slice(params, done, n, [&](size_t i, Param<T>* p, Index off, Index len, T* dst) {
      if (local_fresh_[i]) {
        std::fill(dst, dst + len, T(0));
      } else if (scale == T(1)) {
        std::copy(p->grad.data() + off, p->grad.data() + off + len, dst);
      } else {
        const T* g = p->grad.data() + off;
        for (Index j = 0; j < len; ++j) dst[j] = g[j] * scale;
      }
    });
  }

  /// virtual[done..done+n) <- staging[0..n): sums into the gradients of params that received one.
  void unpack(const std::vector<Param<T>*>& params, Index done, Index n) {
    const Index np = static_cast<Index>(params.size());
    const T* s = staging_.data();
    for (Index k = done; k < std::min(done + n, np); ++k) {
      Param<T>* p = params[static_cast<size_t>(k)];
      if (s[k - done] > T(0)) {
        if (p->grad_fresh) p->grad.resize_like(p->value.shape());
        p->grad_fresh = false;
      }
    }
    for_each_slice(params, done, n, [&](size_t, Param<T>* p, Index off, Index len, const T* src) {
      if (!p->grad_fresh) std::copy(src, src + len, p->grad.data() + off);
    });
  }

  /// fn(index, param, offset in its gradient, length, staging pointer) for the gradient slices that lie
  /// in virtual[done..done+n) (the counters come first; counters are in the first bucket, so
  /// every param's freshness is settled before its values are unpacked).
  template <class Fn>
  void for_each_slice(const std::vector<Param<T>*>& params, Index done, Index n, Fn fn) {
    const Index np = static_cast<Index>(params.size());
    Index pos = np;  // virtual index where the current param's gradient starts
    for (size_t i = 0; i < params.size(); ++i) {
      const Index len = layout_[i].second;
      const Index a = std::max(pos, done), b = std::min(pos + len, done + n);
      if (a < b) fn(i, params[i], a - pos, b - a, staging_.data() + (a - done));
      pos += len;
      if (pos >= done + n) break;
    }
  }

  /// staging[0..n) <- its sum over ranks (Options::reduction).
  void reduce_staging(Index n) {
    MPI_Request req;
    if (opt_.reduction == Reduction::allreduce) {
      mpi::detail::check(MPI_Iallreduce(MPI_IN_PLACE, staging_.data(), static_cast<int>(n), mpi::datatype<T>(), MPI_SUM, comm_, &req),
                         "MPI_Iallreduce");
      wait(&req, 1, "the gradient allreduce");
      return;
    }
    const int seg = static_cast<int>((n + size_ - 1) / size_);
    std::fill(staging_.data() + n, staging_.data() + static_cast<Index>(seg) * size_, T(0));  // padding to P slices
    mpi::detail::check(MPI_Ialltoall(staging_.data(), seg, mpi::datatype<T>(), recv_.data(), seg, mpi::datatype<T>(), comm_, &req),
                       "MPI_Ialltoall");
    wait(&req, 1, "the gradient reduce-scatter");
    T* mine = recv_.data();  // slice `rank_` of every rank, rank r's at r * seg
    for (int r = 1; r < size_; ++r) {
      const T* o = recv_.data() + static_cast<size_t>(r) * static_cast<size_t>(seg);
      for (int i = 0; i < seg; ++i) mine[i] += o[i];
    }
    mpi::detail::check(MPI_Iallgather(mine, seg, mpi::datatype<T>(), staging_.data(), seg, mpi::datatype<T>(), comm_, &req), "MPI_Iallgather");
    wait(&req, 1, "the gradient allgather");
  }

  void copy_range(const std::vector<Tensor<T>*>& tensors, Index done, Index n, bool to_staging) {
    Index pos = 0;
    for (Tensor<T>* t : tensors) {
      const Index a = std::max(pos, done), b = std::min(pos + t->size(), done + n);
      if (a < b) {
        T* tp = t->data() + (a - pos);
        T* sp = staging_.data() + (a - done);
        if (to_staging) std::copy(tp, tp + (b - a), sp);
        else std::copy(sp, sp + (b - a), tp);
      }
      pos += t->size();
      if (pos >= done + n) break;
    }
  }

  /// MPI_Test until done, as graft's thread pool waits: tight polling for the first 50 us (a
  /// step's allreduce takes tens of microseconds to milliseconds), then polling that yields the
  /// core to any other runnable thread (the other rank, on a machine with more processes than
  /// cores) up to 5 ms, then sleeps between tests (20 us doubling to 1 ms). Throws mpi_error after
  /// the time limit.
  void wait(MPI_Request* reqs, int n, const char* what, double limit = -1) {
    using clock = std::chrono::steady_clock;
    const double lim = limit > 0 ? limit : opt_.timeout_seconds;
    const auto start = clock::now();
    auto pause = std::chrono::microseconds(20);
    for (long it = 0;; ++it) {
      int flag = 0;
      mpi::detail::check(MPI_Testall(n, reqs, &flag, MPI_STATUSES_IGNORE), "MPI_Test");
      if (flag) return;
      if (it % 16 != 15) continue;
      const double waited = std::chrono::duration<double>(clock::now() - start).count();
      if (waited > lim)
        throw mpi_error(graft::detail::cat("data-parallel training: rank ", rank_, " of ", size_, " waited ", lim,
                                           " s for the other processes in ", what,
                                           ": a process died, hangs or stopped training early (GRAFT_MPI_TIMEOUT sets this limit)"));
      if (waited > 0.005) {
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::microseconds(1000));
      } else if (waited > 50e-6) {
        std::this_thread::yield();
      }
    }
  }

  Options opt_;
  MPI_Comm comm_ = MPI_COMM_NULL, control_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  std::vector<T> staging_, recv_;
  std::vector<double> gathered_;
  std::vector<std::pair<Param<T>*, Index>> layout_;
  std::vector<char> local_fresh_;  ///< per param: no gradient on this rank this step
  Stats stats_;
  Index grad_total_ = 0;
};

}  // namespace graft
