// graft — data-parallel training: what fit() asks of a communicator. Every process (rank) runs
// the same fit() on the same model and data; each takes its shard of every global batch, and the
// communicator sums gradients and statistics across ranks so that every rank takes the identical
// optimizer step. The MPI implementation is graft/distributed/mpi.hpp (optional: the user links
// MPI::MPI_CXX); fit() itself knows no MPI.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "graft/core/param.hpp"
#include "graft/core/tensor.hpp"

namespace graft {

template <class T = float>
class Distributed {
 public:
  virtual ~Distributed() = default;
  /// This process' index, 0..size()-1; rank 0 prints and writes files.
  virtual int rank() const = 0;
  /// Number of processes.
  virtual int size() const = 0;
  bool is_chief() const { return rank() == 0; }
  /// Rank 0's values of these tensors, on every rank (initial weights, optimizer state).
  virtual void broadcast(const std::vector<Tensor<T>*>& tensors) = 0;
  /// grad <- sum over ranks of grad * scale, for every param in `params` (fused into buckets).
  /// Every rank passes the same params in the same order.
  virtual void allreduce_gradients(const std::vector<Param<T>*>& params, T scale) = 0;
  /// Every tensor <- its mean over ranks (BatchNormalization's moving statistics, which each
  /// rank updates from its own shard).
  virtual void allreduce_mean(const std::vector<Tensor<T>*>& tensors) = 0;
  /// v[i] <- sum over ranks of v[i] (loss sums, sample counts, metric states), in double.
  virtual void allreduce_sum(double* v, size_t n) = 0;
  /// Throws (on every rank, naming `what`) unless every rank passed the same value: ranks
  /// started with different model files, data or options stop with an error, never a hang.
  virtual void check_same(std::uint64_t value, const std::string& what) = 0;
  /// Wait until every rank reaches this point (before rank 0 writes what others will read).
  virtual void barrier() = 0;
};

/// Rank 0's `seed` on every rank (a shuffling seed, a seed for graft's global generator): summed
/// in four 16-bit parts, exact in double.
template <class T>
std::uint64_t seed_of_rank0(Distributed<T>& d, std::uint64_t seed) {
  double parts[4] = {0, 0, 0, 0};
  if (d.is_chief())
    for (int k = 0; k < 4; ++k) parts[k] = static_cast<double>((seed >> (16 * k)) & 0xffffu);
  d.allreduce_sum(parts, 4);
  std::uint64_t s = 0;
  for (int k = 0; k < 4; ++k) s |= static_cast<std::uint64_t>(parts[k]) << (16 * k);
  return s;
}

/// Rows [lo, hi) of a global batch of `count` rows that rank `rank` of `size` takes: contiguous
/// shards, the first count % size ranks one row larger.
inline std::pair<Index, Index> shard_range(Index count, int rank, int size) {
  const Index base = count / size, extra = count % size;
  const Index lo = static_cast<Index>(rank) * base + std::min<Index>(rank, extra);
  return {lo, lo + base + (rank < extra ? 1 : 0)};
}

}  // namespace graft
