// Model A's synthetic data (tests/test_model_a.cpp, tests/mpi/): 8 classes of 28x28 "images", a
// random prototype per class plus pixel noise, in [0, 1].
#pragma once

#include <graft/graft.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace graft_test {

/// n samples drawn with `seed` around `protos` (prototypes()).
struct Synthetic {
  graft::Tensor<float> x, y;
  Synthetic(graft::Index n, std::uint64_t seed, const std::vector<graft::Tensor<float>>& protos) {
    graft::Rng r(seed);
    x = graft::Tensor<float>({n, 28, 28});
    y = graft::Tensor<float>({n});
    for (graft::Index i = 0; i < n; ++i) {
      graft::Index c = static_cast<graft::Index>(r.below(8));
      y[i] = static_cast<float>(c);
      for (graft::Index p = 0; p < 784; ++p) {
        double v = protos[static_cast<size_t>(c)][p] + 0.35 * r.normal();
        x[i * 784 + p] = static_cast<float>(std::min(1.0, std::max(0.0, v)));
      }
    }
  }
};

/// The 8 class prototypes: 30 % of the pixels lit in [0.5, 1).
inline std::vector<graft::Tensor<float>> prototypes(std::uint64_t seed) {
  graft::Rng r(seed);
  std::vector<graft::Tensor<float>> ps;
  for (int c = 0; c < 8; ++c) {
    graft::Tensor<float> t({784});
    for (auto& v : t) v = r.uniform() < 0.3 ? static_cast<float>(r.uniform(0.5, 1.0)) : 0.0f;
    ps.push_back(t);
  }
  return ps;
}

}  // namespace graft_test
