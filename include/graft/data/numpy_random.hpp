// graft — NumPy's legacy numpy.random.RandomState, bit for bit, for the parts Keras' data
// utilities use: RandomState(seed) and shuffle(list). Keras' index_directory shuffles the file
// list (and, with a second RandomState(seed), the labels) this way before splitting off the
// validation files, so the same seed must give the same files in each subset.
//
// RandomState(int seed) seeds MT19937 with init_genrand(seed) (numpy's mt19937_seed: the
// reference recurrence x[i] = 1812433253 * (x[i-1] ^ (x[i-1] >> 30)) + i, which std::mt19937
// implements exactly). shuffle(x) walks i = n-1 .. 1 and swaps x[i] with x[j], j drawn by
// random_interval(i): 32-bit draws masked to the smallest all-ones mask >= i, rejected while > i.
#pragma once

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "graft/core/errors.hpp"

namespace graft {
namespace data {

class NumpyRandomState {
 public:
  /// numpy.random.RandomState(seed); numpy accepts 0 <= seed <= 2**32 - 1.
  explicit NumpyRandomState(std::int64_t seed) {
    if (seed < 0 || seed > 0xFFFFFFFFll)
      throw value_error(graft::detail::cat("seed must be between 0 and 2**32 - 1 (numpy.random.RandomState), got ", seed));
    mt_.seed(static_cast<std::uint32_t>(seed));
  }

  /// The next 32-bit output of the generator.
  std::uint32_t next_uint32() { return static_cast<std::uint32_t>(mt_()); }
  /// The next 64-bit output (numpy: two 32-bit draws, high word first).
  std::uint64_t next_uint64() {
    const std::uint64_t hi = next_uint32();
    return (hi << 32) | next_uint32();
  }

  /// numpy's random_interval(max): uniform in [0, max] by masked rejection.
  std::uint64_t interval(std::uint64_t max) {
    if (max == 0) return 0;
    std::uint64_t mask = max;
    mask |= mask >> 1;
    mask |= mask >> 2;
    mask |= mask >> 4;
    mask |= mask >> 8;
    mask |= mask >> 16;
    mask |= mask >> 32;
    std::uint64_t v;
    if (max <= 0xFFFFFFFFull) {
      while ((v = (next_uint32() & mask)) > max) {
      }
    } else {
      while ((v = (next_uint64() & mask)) > max) {
      }
    }
    return v;
  }

  /// RandomState.shuffle(x) of a list or a 1-D array: both take the same draws.
  template <class V>
  void shuffle(std::vector<V>& x) {
    for (size_t i = x.size(); i-- > 1;) {
      const size_t j = static_cast<size_t>(interval(i));
      std::swap(x[i], x[j]);
    }
  }

  /// The permutation shuffle() applies to 0..n-1 (element k of the result is the old index now at k).
  std::vector<size_t> permutation_of(size_t n) {
    std::vector<size_t> p(n);
    for (size_t i = 0; i < n; ++i) p[i] = i;
    shuffle(p);
    return p;
  }

 private:
  std::mt19937 mt_;
};

}  // namespace data
}  // namespace graft
