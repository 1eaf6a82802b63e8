// graft_mpi_checks — the data-parallel checks, run under mpirun by run_checks.py (one CTest test
// per case). Every rank runs the same case; a failed check prints "FAIL ..." and exits non-zero.
//   graft_mpi_checks comm                 MpiDistributed alone: bucketed gradient sums (both
//                                         reduction orders, buckets smaller than a tensor, fresh
//                                         gradients), broadcast, sums, check_same
//   graft_mpi_checks mismatch             ranks pass different values to check_same: every rank
//                                         throws the same value_error and they agree to end
//   graft_mpi_checks leave                rank 1 leaves before a collective: the others time out
//                                         (GRAFT_MPI_TIMEOUT) with an mpi_error, then abort the job
//   graft_mpi_checks crash                rank 1 dies (SIGKILL) while the others wait in a
//                                         collective: mpirun ends the job
#include <graft/distributed/mpi.hpp>
#include <graft/graft.hpp>

#include <csignal>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "mpi_fit_cases.hpp"

namespace {

using graft::Index;
using graft::MpiDistributed;
using graft::Param;
using graft::Tensor;

int failures = 0;
int g_rank = 0;

void expect(bool ok, const std::string& what) {
  if (!ok) {
    std::fprintf(stderr, "FAIL rank %d: %s\n", g_rank, what.c_str());
    ++failures;
  }
}

float grad_value(int rank, size_t param, Index i) {
  return static_cast<float>((rank + 1) * 0.01 * std::sin(0.37 * static_cast<double>(i) + static_cast<double>(param)) + 1e-4 * rank);
}

/// Gradients of 5 params (3, 1000, 7, 50000, 1 values); param 2 has no gradient on rank 1, param
/// 4 none on any rank. Reduced with `o`; every value checked against the rank-order float sum.
void check_gradients(MpiDistributed<float>::Options o, const char* name) {
  MpiDistributed<float> d(MPI_COMM_WORLD, o);
  const int P = d.size(), r = d.rank();
  const std::vector<Index> sizes = {3, 1000, 7, 50000, 1};
  std::vector<std::unique_ptr<Param<float>>> own;
  std::vector<Param<float>*> params;
  for (Index n : sizes) {
    own.push_back(std::make_unique<Param<float>>());
    own.back()->value = Tensor<float>({n});
    params.push_back(own.back().get());
  }
  const float scale = 0.5f;
  for (int step = 0; step < 3; ++step) {  // repeated: buffers reused, freshness reset each step
    for (size_t k = 0; k < params.size(); ++k) {
      Param<float>& p = *params[k];
      p.grad_fresh = true;
      if (k == 4 || (k == 2 && r == 1)) continue;
      p.begin_grad();
      for (Index i = 0; i < p.grad.size(); ++i) p.grad[i] = grad_value(r, k, i) * static_cast<float>(step + 1);
    }
    d.allreduce_gradients(params, scale);
    for (size_t k = 0; k < params.size(); ++k) {
      const Param<float>& p = *params[k];
      if (k == 4) {
        expect(p.grad_fresh, graft::detail::cat(name, ": a param without gradient on every rank stays fresh"));
        continue;
      }
      expect(!p.grad_fresh, graft::detail::cat(name, ": param ", k, " has its summed gradient"));
      if (p.grad.size() != sizes[k]) {
        expect(false, graft::detail::cat(name, ": param ", k, " gradient size ", p.grad.size()));
        continue;
      }
      double worst = 0;
      for (Index i = 0; i < sizes[k]; ++i) {
        float want = 0;
        for (int q = 0; q < P; ++q)
          if (!(k == 2 && q == 1)) want += grad_value(q, k, i) * static_cast<float>(step + 1) * scale;
        worst = std::max(worst, std::fabs(static_cast<double>(p.grad[i]) - want));
      }
      const double tol = P <= 2 ? 0.0 : 1e-6;  // 2 ranks: one addition, any algorithm gives it exactly
      expect(worst <= tol, graft::detail::cat(name, ": param ", k, " step ", step, ": max |sum - expected| = ", worst));
    }
  }
  // the same bits on every rank
  std::uint64_t h = 1469598103934665603ull;
  for (auto* p : params)
    for (Index i = 0; !p->grad_fresh && i < p->grad.size(); ++i) {
      std::uint32_t b;
      std::memcpy(&b, &p->grad[i], 4);
      h = (h ^ b) * 1099511628211ull;
    }
  try {
    d.check_same(h, "the summed gradients");
  } catch (const graft::error& e) {
    expect(false, graft::detail::cat(name, ": ", e.what()));
  }
}

int comm_case() {
  graft::MpiDistributed<float>::Options o;
  check_gradients(o, "allreduce, one bucket");
  o.bucket_bytes = 4096;  // 1024 floats: the 50 000-value gradient spans many buckets
  check_gradients(o, "allreduce, 4 KB buckets");
  o.reduction = MpiDistributed<float>::Reduction::rank_order;
  check_gradients(o, "rank order, 4 KB buckets");
  o.bucket_bytes = size_t(25) << 20;
  check_gradients(o, "rank order, one bucket");

  MpiDistributed<float> d;
  const int P = d.size(), r = d.rank();
  // broadcast: rank 0's values everywhere, in small buckets too
  MpiDistributed<float>::Options small;
  small.bucket_bytes = 64;
  MpiDistributed<float> ds(MPI_COMM_WORLD, small);
  for (auto* dist : {&d, &ds}) {
    Tensor<float> a({5}), b({300}), empty({0});
    for (Index i = 0; i < a.size(); ++i) a[i] = static_cast<float>(r * 100 + i);
    for (Index i = 0; i < b.size(); ++i) b[i] = static_cast<float>(r * 1000 - i);
    dist->broadcast({&a, &empty, &b});
    bool ok = true;
    for (Index i = 0; i < a.size(); ++i) ok = ok && a[i] == static_cast<float>(i);
    for (Index i = 0; i < b.size(); ++i) ok = ok && b[i] == static_cast<float>(-i);
    expect(ok, "broadcast gives rank 0's values");
  }
  // means of tensors (BatchNormalization's moving statistics)
  for (auto* dist : {&d, &ds}) {
    Tensor<float> a({3}), b({200});
    for (Index i = 0; i < a.size(); ++i) a[i] = static_cast<float>(r + i);
    for (Index i = 0; i < b.size(); ++i) b[i] = 2.0f * static_cast<float>(r);
    dist->allreduce_mean({&a, &b});
    bool ok = true;
    for (Index i = 0; i < a.size(); ++i) ok = ok && std::fabs(a[i] - ((P - 1) / 2.0f + static_cast<float>(i))) < 1e-6f;
    for (Index i = 0; i < b.size(); ++i) ok = ok && std::fabs(b[i] - static_cast<float>(P - 1)) < 1e-6f;
    expect(ok, "allreduce_mean gives the mean over ranks");
  }
  // sums in double, rank order
  double v[3] = {1.0 * r, 0.5, 1e-3 * (r + 1)};
  d.allreduce_sum(v, 3);
  expect(v[0] == P * (P - 1) / 2.0 && v[1] == 0.5 * P, graft::detail::cat("allreduce_sum: ", v[0], " ", v[1]));
  // check_same passes on equal values
  try {
    d.check_same(42, "a value every rank has");
    d.barrier();
  } catch (const graft::error& e) {
    expect(false, e.what());
  }
  // a batch size below the number of ranks: shard_range gives some ranks nothing
  auto s = graft::shard_range(1, r, P);
  expect(s.second - s.first == (r == 0 ? 1 : 0), "shard_range of one row");
  if (r == 0) std::printf("comm: %d processes, %s\n", P, failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}

int mismatch_case() {
  MpiDistributed<float> d;
  std::string msg;
  try {
    d.check_same(d.rank() == 0 ? 1 : 2, "the model file");
  } catch (const graft::value_error& e) {
    msg = e.what();
  }
  std::printf("rank %d caught: %s\n", d.rank(), msg.c_str());
  std::fflush(stdout);
  expect(msg.find("disagree on the model file") != std::string::npos, "every rank throws value_error naming what differs");
  expect(d.every_rank_failed(), "the ranks agree that all failed");
  return failures ? 1 : 0;
}

int leave_case(bool crash) {
  MpiDistributed<float> d;
  if (d.rank() == 1) {
    std::printf("rank 1 %s\n", crash ? "dies" : "leaves");
    std::fflush(stdout);
    if (crash) std::raise(SIGKILL);
    return 0;  // the Environment finalizes MPI while the others wait in a collective
  }
  Param<float> p;
  p.value = Tensor<float>({10});
  p.begin_grad();
  std::vector<Param<float>*> ps{&p};
  try {
    d.allreduce_gradients(ps, 1.0f);
    expect(false, "the allreduce without rank 1 returned");
  } catch (const graft::mpi_error& e) {
    std::printf("rank %d caught: %s\n", d.rank(), e.what());
    std::fflush(stdout);
    if (!d.every_rank_failed(2.0)) {
      std::printf("rank %d: not every rank failed: aborting the job\n", d.rank());
      std::fflush(stdout);
      graft::mpi::abort(7);
    }
  }
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  graft::mpi::Environment env(argc, argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  const std::string mode = argc > 1 ? argv[1] : "";
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (mode == "comm") return comm_case();
    if (mode == "mismatch") return mismatch_case();
    if (mode == "leave" || mode == "crash") return leave_case(mode == "crash");
    return graft_mpi_test::fit_case(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "FAIL rank %d: %s\n", g_rank, e.what());
    return 1;
  }
}
