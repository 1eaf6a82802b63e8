// graft_mpi_bench — data-parallel training throughput, for bench/mpi_scaling.py (not a test).
// Started by mpirun it trains data-parallel (graft/distributed/mpi.hpp) on all the processes,
// otherwise on one process; the global batch is the same either way.
//
//   graft_mpi_bench WORKLOAD --weights DIR [--batch N] [--steps N] [--threads N] [--seed S]
//       WORKLOAD: model_a (Hands-On ML model A, SGD) | cnn (graft_bench's small CNN, SGD), read
//                 from DIR (written by `graft_bench prepare --out DIR`) | mobilenetv2 (keras.applications.MobileNetV2, 224x224x3, 10 classes, random
//                 initialization, every layer trained, SGD).
//       Random inputs and labels (the time of a step does not depend on the values); one warm-up
//       epoch of 2 steps, then one timed epoch of --steps steps of --batch rows (the global
//       batch). Rank 0 prints "RESULT {json}": samples/s, seconds per step, the part of a step
//       spent summing gradients (allreduce_seconds: including waits for the slower rank), the
//       allreduce alone (started together after a barrier), gradient bytes.
#include <graft/applications.hpp>
#include <graft/graft.hpp>
#ifdef GRAFT_WITH_MPI
#include <graft/distributed/mpi.hpp>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

using graft::Index;
using graft::Shape;
using graft::Tensor;

namespace {

/// model_a and cnn: graft_bench's models (graft_bench prepare wrote them to `weights`, compiled
/// with SGD); mobilenetv2: keras.applications.MobileNetV2, randomly initialized.
std::shared_ptr<graft::Model<float>> build(const std::string& w, const std::string& weights, Shape& in, int& classes) {
  if (w == "model_a" || w == "cnn") {
    auto m = graft::load_model<float>(weights + (w == "cnn" ? "/cnn.h5" : "/my_model_A.h5"));
    in = m->input_shapes()[0];
    in.erase(in.begin());
    classes = static_cast<int>(m->output_shapes()[0].back());
    return m;
  }
  if (w == "mobilenetv2") {
    in = {224, 224, 3};
    classes = 10;
    graft::applications::Options o;
    o.input_shape = in;
    o.classes = classes;
    auto m = graft::applications::build<float>("MobileNetV2", o);
    m->compile(std::make_shared<graft::SGD<float>>(1e-3), "sparse_categorical_crossentropy");
    return m;
  }
  std::cerr << "graft_mpi_bench: unknown workload " << w << " (model_a, cnn, mobilenetv2)\n";
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
#ifdef GRAFT_WITH_MPI
  std::unique_ptr<graft::mpi::Environment> env;
  std::shared_ptr<graft::MpiDistributed<float>> dist;
  if (graft::mpi::launched_by_mpirun()) {
    env = std::make_unique<graft::mpi::Environment>(argc, argv);
    dist = std::make_shared<graft::MpiDistributed<float>>();
  }
#endif
  if (argc < 2) {
    std::cerr << "usage: graft_mpi_bench model_a|cnn|mobilenetv2 --weights DIR [--batch N] [--steps N] [--threads N] [--seed S]\n";
    return 2;
  }
  const std::string w = argv[1];
  std::string weights = ".";
  Index batch = 32, steps = 0;
  int threads = 0;
  std::uint64_t seed = 1;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string f = argv[i];
    if (f == "--weights") weights = argv[i + 1];
    else if (f == "--batch") batch = std::atol(argv[i + 1]);
    else if (f == "--steps") steps = std::atol(argv[i + 1]);
    else if (f == "--threads") threads = std::atoi(argv[i + 1]);
    else if (f == "--seed") seed = std::strtoull(argv[i + 1], nullptr, 10);
    else {
      std::cerr << "graft_mpi_bench: unknown option " << f << "\n";
      return 2;
    }
  }
  if (threads > 0) graft::set_num_threads(threads);
  graft::set_random_seed(seed);
  Shape in;
  int classes = 0;
  auto m = build(w, weights, in, classes);
  if (steps <= 0) steps = w == "mobilenetv2" ? 6 : 200;
  // data: random inputs in [0, 1), random labels
  Shape xs{(steps + 2) * batch};
  xs.insert(xs.end(), in.begin(), in.end());
  Tensor<float> x(xs), y({(steps + 2) * batch});
  graft::Rng rng(seed + 1);
  for (auto& v : x) v = static_cast<float>(rng.uniform());
  for (auto& v : y) v = static_cast<float>(rng.below(static_cast<std::uint64_t>(classes)));
  graft::FitOptions<float> o;
  o.batch_size = batch;
  o.verbose = 0;
  o.seed = seed;
  int rank = 0, size = 1;
#ifdef GRAFT_WITH_MPI
  o.distributed = dist;
  if (dist) {
    rank = dist->rank();
    size = dist->size();
  }
#endif
  m->fit(x.slice_rows(0, 2 * batch), y.slice_rows(0, 2 * batch), o);  // warm-up: buffers, threads
#ifdef GRAFT_WITH_MPI
  if (dist) dist->reset_stats();
#endif
  const Tensor<float> tx = x.slice_rows(2 * batch, steps * batch), ty = y.slice_rows(2 * batch, steps * batch);
  const auto t0 = std::chrono::steady_clock::now();
  graft::History h = m->fit(tx, ty, o);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double ar = 0, bytes = 0;
#ifdef GRAFT_WITH_MPI
  if (dist) {
    ar = dist->stats().gradient_seconds / static_cast<double>(std::max<long>(1, dist->stats().gradient_calls));
    bytes = static_cast<double>(dist->stats().gradient_bytes) / static_cast<double>(std::max<long>(1, dist->stats().gradient_calls));
  }
#endif
  if (bytes == 0)
    for (auto* p : m->trainable_weights()) bytes += 4.0 * static_cast<double>(p->value.size());
  // the allreduce alone: the model's gradients summed right after a barrier (no waiting for a
  // slower rank), median of 15
  double alone = 0;
#ifdef GRAFT_WITH_MPI
  if (dist) {
    auto ps = m->trainable_weights();
    for (auto* p : ps) {
      if (p->grad.size() != p->value.size()) p->grad = Tensor<float>(p->value.shape());
      p->grad_fresh = false;
    }
    std::vector<double> ts;
    for (int i = 0; i < 17; ++i) {
      dist->barrier();
      const auto a0 = std::chrono::steady_clock::now();
      dist->allreduce_gradients(ps, 1.0f);
      if (i >= 2) ts.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - a0).count());
    }
    std::sort(ts.begin(), ts.end());
    alone = ts[ts.size() / 2];
  }
#endif
  if (rank == 0)
    std::printf("RESULT {\"workload\": \"%s\", \"processes\": %d, \"threads\": %d, \"batch\": %ld, \"steps\": %ld, "
                "\"samples_per_s\": %.3f, \"step_seconds\": %.6f, \"allreduce_seconds\": %.6f, \"allreduce_alone_seconds\": %.6f, "
                "\"gradient_bytes\": %.0f, \"params\": %ld, \"loss\": %.6f}\n",
                w.c_str(), size, graft::num_threads(), static_cast<long>(batch), static_cast<long>(steps),
                static_cast<double>(steps * batch) / secs, secs / static_cast<double>(steps), ar, alone, bytes,
                static_cast<long>(m->count_params()), h["loss"].back());
  return 0;
}
