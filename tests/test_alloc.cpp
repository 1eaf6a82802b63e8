// Steady-state training allocates nothing per batch.
//
// This file replaces the global operator new/delete AND the C allocation functions of the whole
// test executable with counting versions (Eigen's aligned_malloc, which the GEMM blocking
// buffers go through, calls std::malloc directly, so counting operator new alone would miss
// them). The hooks forward to glibc and only count while `alloc_hooks::counting` is set, so
// every other test runs as before. Set GRAFT_ALLOC_TRACE=1 to print a backtrace of the first
// counted allocations (stderr).
#include <graft/graft.hpp>
#include <catch2/catch.hpp>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>

#if defined(__GLIBC__)
#include <execinfo.h>
#include <unistd.h>
#define GRAFT_TEST_HOOK_MALLOC 1
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);
}
#endif

namespace alloc_hooks {
std::atomic<bool> counting{false};
std::atomic<long> count{0};
std::atomic<std::size_t> largest{0};
std::atomic<int> traced{0};
bool trace = false;
thread_local bool in_hook = false;

inline void note(std::size_t bytes) {
  if (!counting.load(std::memory_order_relaxed) || in_hook) return;
  in_hook = true;
  count.fetch_add(1, std::memory_order_relaxed);
  for (std::size_t cur = largest.load(std::memory_order_relaxed);
       bytes > cur && !largest.compare_exchange_weak(cur, bytes, std::memory_order_relaxed);) {
  }
#if defined(GRAFT_TEST_HOOK_MALLOC)
  if (trace && traced.fetch_add(1) < 6) {
    char msg[96];
    int len = std::snprintf(msg, sizeof msg, "---- counted allocation of %zu bytes:\n", bytes);
    if (write(2, msg, static_cast<size_t>(len)) < 0) {}
    void* frames[48];
    int k = backtrace(frames, 48);
    backtrace_symbols_fd(frames, k, 2);
  }
#endif
  in_hook = false;
}

/// Allocations counted while `f` runs (and, in `largest`, the size of the largest one).
template <class F>
long count_during(F&& f) {
  count = 0;
  largest = 0;
  counting = true;
  try {
    f();
  } catch (...) {
    counting = false;
    throw;
  }
  counting = false;
  return count.load();
}

struct Init {
  Init() {
    const char* t = std::getenv("GRAFT_ALLOC_TRACE");
    trace = t && *t && std::strcmp(t, "0") != 0;
#if defined(GRAFT_TEST_HOOK_MALLOC)
    void* frames[4];
    backtrace(frames, 4);  // loads libgcc's unwinder now, not inside a counted region
#endif
  }
} init;
}  // namespace alloc_hooks

#if defined(GRAFT_TEST_HOOK_MALLOC)
extern "C" {
void* malloc(std::size_t n) noexcept {
  alloc_hooks::note(n);
  return __libc_malloc(n);
}
void* calloc(std::size_t a, std::size_t b) noexcept {
  alloc_hooks::note(a * b);
  return __libc_calloc(a, b);
}
void* realloc(void* p, std::size_t n) noexcept {
  alloc_hooks::note(n);
  return __libc_realloc(p, n);
}
void free(void* p) noexcept { __libc_free(p); }
void* memalign(std::size_t al, std::size_t n) noexcept {
  alloc_hooks::note(n);
  return __libc_memalign(al, n);
}
void* aligned_alloc(std::size_t al, std::size_t n) noexcept {
  alloc_hooks::note(n);
  return __libc_memalign(al, n);
}
int posix_memalign(void** out, std::size_t al, std::size_t n) noexcept {
  alloc_hooks::note(n);
  void* p = __libc_memalign(al, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
}
#endif

// Global operator new / delete: counted (when the C functions are hooked too, an allocation
// through operator new counts twice, which does not matter for "must be zero").
namespace {
void* counted_new(std::size_t n) {
  alloc_hooks::note(n);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* counted_new_aligned(std::size_t n, std::size_t al) {
  alloc_hooks::note(n);
  void* p = nullptr;
  if (posix_memalign(&p, std::max(al, sizeof(void*)), n ? n : 1) != 0) throw std::bad_alloc();
  return p;
}
}  // namespace
void* operator new(std::size_t n) { return counted_new(n); }
void* operator new[](std::size_t n) { return counted_new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return counted_new(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return counted_new(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new(std::size_t n, std::align_val_t al) { return counted_new_aligned(n, static_cast<std::size_t>(al)); }
void* operator new[](std::size_t n, std::align_val_t al) { return counted_new_aligned(n, static_cast<std::size_t>(al)); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

using namespace graft;

namespace {

/// The seeds' model A: Flatten(28x28) -> Dense 300/100/50/50/50 selu -> Dense(8, softmax).
std::shared_ptr<Sequential<float>> model_a() {
  auto m = std::make_shared<Sequential<float>>("model_A");
  m->add(std::make_shared<InputLayer<float>>(Shape{28, 28}));
  m->add(make<Flatten>());
  for (Index u : {300, 100, 50, 50, 50}) m->add(make<Dense>(u, "selu"));
  m->add(make<Dense>(8, "softmax"));
  return m;
}

void fill_data(Tensor<float>& x, Tensor<float>& y, Index n, std::uint64_t seed) {
  Rng r(seed);
  x.resize({n, 28, 28});
  y.resize({n});
  for (auto& v : x) v = static_cast<float>(r.uniform());
  for (auto& v : y) v = static_cast<float>(r.below(8));
}

}  // namespace

namespace {
// Escaping through volatile pointers keeps the compiler from removing the new/delete and
// malloc/free pairs below (GCC's -fallocation-dce).
std::vector<int>* volatile kept_vector = nullptr;
void* volatile kept_block = nullptr;
}  // namespace

TEST_CASE("the allocation counter sees operator new and malloc", "[core][alloc]") {
  long n = alloc_hooks::count_during([] {
    kept_vector = new std::vector<int>(100);
    delete kept_vector;
  });
  CHECK(n >= 2);
#if defined(GRAFT_TEST_HOOK_MALLOC)
  long m = alloc_hooks::count_during([] {
    kept_block = Eigen::internal::aligned_malloc(1 << 20);  // what Eigen's GEMM buffers use
    Eigen::internal::aligned_free(kept_block);
  });
  CHECK(m >= 1);
#endif
  CHECK(alloc_hooks::count_during([] {}) == 0);
}

namespace {
// The exact counts below are taken on one thread: on several, graft's pool workers grow their
// own packing buffers the first time they happen to win a panel of a given size, which depends
// on timing. The multi-thread case has its own test, with a bound on that one-time growth.
struct OneThread {
  OneThread() { graft::set_num_threads(1); }
  ~OneThread() { graft::set_num_threads(0); }
};
}  // namespace

TEST_CASE("train_on_batch of model A allocates nothing once warm", "[core][alloc]") {
  OneThread one_thread;
  set_random_seed(11);
  Tensor<float> x, y;
  fill_data(x, y, 32, 5);
  std::vector<Tensor<float>> xs{x}, ys{y};
  auto run = [&](std::shared_ptr<Optimizer<float>> opt) {
    auto m = model_a();
    m->compile(opt, "sparse_categorical_crossentropy", {"accuracy"});
    for (int i = 0; i < 3; ++i) m->train_on_batch(xs, ys);  // warm-up: workspaces are sized here
    double last = 0;
    long n = alloc_hooks::count_during([&] {
      for (int i = 0; i < 5; ++i) last = m->train_on_batch(xs, ys);
    });
    CHECK(std::isfinite(last));
    return n;
  };
  SECTION("SGD") { CHECK(run(std::make_shared<SGD<float>>(1e-3)) == 0); }
  SECTION("SGD with nesterov momentum") { CHECK(run(std::make_shared<SGD<float>>(1e-3, 0.9, true)) == 0); }
  SECTION("RMSprop centered with momentum") {
    CHECK(run(std::make_shared<RMSprop<float>>(1e-3, 0.9, 0.5, 1e-7, true)) == 0);
  }
  SECTION("Adam with clipnorm") {
    auto a = std::make_shared<Adam<float>>(1e-3);
    a->clipnorm = 1.0;
    CHECK(run(a) == 0);
  }
}

TEST_CASE("fit allocates per call, never per batch", "[core][alloc]") {
  OneThread one_thread;
  set_random_seed(12);
  auto m = model_a();
  m->compile(std::make_shared<SGD<float>>(1e-3, 0.9), "sparse_categorical_crossentropy", {"accuracy"});
  Tensor<float> x2, y2, x9, y9;
  fill_data(x2, y2, 2 * 32, 6);
  fill_data(x9, y9, 9 * 32 + 5, 7);  // partial last batch
  FitOptions<float> o;
  o.verbose = 0;
  o.seed = 3;
  m->fit(x9, y9, o);  // warm-up with every batch shape
  m->fit(x2, y2, o);
  long few = alloc_hooks::count_during([&] { m->fit(x2, y2, o); });
  long many = alloc_hooks::count_during([&] { m->fit(x9, y9, o); });
  INFO("allocations: fit over 2 batches " << few << ", over 10 batches " << many);
  CHECK(many == few);
  // and with several epochs: per-epoch bookkeeping only
  o.epochs = 3;
  long e3 = alloc_hooks::count_during([&] { m->fit(x9, y9, o); });
  o.epochs = 6;
  long e6 = alloc_hooks::count_during([&] { m->fit(x9, y9, o); });
  INFO("3 epochs " << e3 << ", 6 epochs " << e6);
  CHECK(e6 - e3 <= 3 * (e3 - many + 1));
}

TEST_CASE("fine-tuning model B on a frozen model A trunk allocates nothing once warm", "[core][alloc]") {
  OneThread one_thread;
  set_random_seed(13);
  auto a = model_a();
  auto layers = a->layers();
  layers.pop_back();
  auto b = std::make_shared<Sequential<float>>(layers, "model_B");
  b->add(make<Dense>(1, "sigmoid"));
  for (size_t i = 0; i + 1 < b->layers().size(); ++i) b->layers()[i]->set_trainable(false);
  b->compile(std::make_shared<SGD<float>>(1e-3), "binary_crossentropy", {"accuracy"});
  Tensor<float> x, y;
  fill_data(x, y, 32, 8);
  for (auto& v : y) v = v < 4 ? 0.0f : 1.0f;
  std::vector<Tensor<float>> xs{x}, ys{y};
  for (int i = 0; i < 3; ++i) b->train_on_batch(xs, ys);
  long n = alloc_hooks::count_during([&] {
    for (int i = 0; i < 5; ++i) b->train_on_batch(xs, ys);
  });
  CHECK(n == 0);
}

TEST_CASE("predict and evaluate in a loop allocate only their results", "[core][alloc]") {
  OneThread one_thread;
  set_random_seed(14);
  auto m = model_a();
  m->compile(std::make_shared<SGD<float>>(1e-3), "sparse_categorical_crossentropy", {"accuracy"});
  Tensor<float> x, y;
  fill_data(x, y, 64, 9);
  m->predict(x, 32);
  long one = alloc_hooks::count_during([&] { m->predict(x, 32); });
  Tensor<float> xl, yl;
  fill_data(xl, yl, 64 * 4, 10);
  m->predict(xl, 32);
  long four = alloc_hooks::count_during([&] { m->predict(xl, 32); });
  INFO("predict: 2 batches " << one << ", 8 batches " << four);
  CHECK(four == one);
}

TEST_CASE("fit, evaluate and predict never copy the whole dataset", "[core][alloc]") {
  OneThread one_thread;
  set_random_seed(16);
  auto m = model_a();
  m->compile(std::make_shared<SGD<float>>(1e-3), "sparse_categorical_crossentropy", {"accuracy"});
  Tensor<float> x, y;
  fill_data(x, y, 8192, 12);  // 25.7 MB of images; the largest buffers graft needs are ~1 MB
  const std::size_t data_bytes = static_cast<std::size_t>(x.size()) * sizeof(float);
  FitOptions<float> o;
  o.verbose = 0;
  alloc_hooks::count_during([&] { m->fit(x, y, o); });
  INFO("largest allocation in fit: " << alloc_hooks::largest.load() << " bytes, data " << data_bytes);
  CHECK(alloc_hooks::largest.load() < data_bytes / 8);
  alloc_hooks::count_during([&] { m->evaluate(x, y, 256); });
  CHECK(alloc_hooks::largest.load() < data_bytes / 8);
  alloc_hooks::count_during([&] { m->predict(x, 256); });
  CHECK(alloc_hooks::largest.load() < data_bytes / 8);
  // (N, 28, 28) data for a (None, 28, 28, 1) input: the rank is adjusted batch by batch
  auto conv = std::make_shared<Sequential<float>>(std::vector<std::shared_ptr<Layer<float>>>{
      std::make_shared<InputLayer<float>>(Shape{28, 28, 1}), make<Flatten>(), make<Dense>(3, "softmax")});
  conv->compile(std::make_shared<SGD<float>>(1e-3), "sparse_categorical_crossentropy", {"accuracy"});
  Tensor<float> x4 = x;
  x4.reshape({x.dim(0), 28, 28, 1});
  std::vector<Tensor<float>> y3{y};
  for (auto& v : y3[0]) v = static_cast<float>(static_cast<int>(v) % 3);
  Tensor<float> p3 = conv->predict(x, 256), p4 = conv->predict(x4, 256);
  CHECK(p3 == p4);
  alloc_hooks::count_during([&] { conv->fit(x, y3[0], o); });
  CHECK(alloc_hooks::largest.load() < data_bytes / 8);
}

TEST_CASE("on two threads, training allocates only while the pool's buffers first grow", "[core][alloc]") {
  graft::set_num_threads(2);
  set_random_seed(15);
  Tensor<float> x, y;
  fill_data(x, y, 32, 11);
  std::vector<Tensor<float>> xs{x}, ys{y};
  auto m = model_a();
  m->compile(std::make_shared<SGD<float>>(1e-3), "sparse_categorical_crossentropy", {"accuracy"});
  for (int i = 0; i < 3; ++i) m->train_on_batch(xs, ys);
  // Each worker holds packing buffers that only grow (once per larger panel it first wins, a
  // matter of timing): a few allocations over the whole run at most, never one per batch.
  long n = alloc_hooks::count_during([&] {
    for (int i = 0; i < 50; ++i) m->train_on_batch(xs, ys);
  });
  long later = alloc_hooks::count_during([&] {
    for (int i = 0; i < 50; ++i) m->train_on_batch(xs, ys);
  });
  graft::set_num_threads(0);
  INFO("allocations over 50 batches: " << n << ", over the next 50: " << later);
  CHECK(n + later < 10);
}

namespace {
/// The float product kernels this processor can run (0: Eigen, 1: AVX2, 2: AVX-512), best last.
std::vector<int> float_kernels() {
  std::vector<int> k{0};
#ifdef GRAFT_SGEMM
  for (int i = 1; i <= static_cast<int>(detail::sgemm::detected_isa()); ++i) k.push_back(i);
#endif
  return k;
}
void restore_float_kernel() {
#ifdef GRAFT_SGEMM
  detail::sgemm::set_isa(detail::sgemm::detected_isa());
#endif
}
}  // namespace

TEST_CASE("graft::gemm matches a naive product for every transpose, stride and size", "[core][alloc][gemm]") {
  auto check = [](auto zero, bool ta, bool tb, Index M, Index N, Index K, double alpha, double beta, Index pad) {
    using T = decltype(zero);
    Rng r(static_cast<std::uint64_t>(M * 131 + N * 7 + K));
    const Index lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    std::vector<T> A(static_cast<size_t>((ta ? K : M) * lda)), B(static_cast<size_t>((tb ? N : K) * ldb)),
        C(static_cast<size_t>(M * ldc));
    for (auto& v : A) v = static_cast<T>(r.uniform(-1, 1));
    for (auto& v : B) v = static_cast<T>(r.uniform(-1, 1));
    for (auto& v : C) v = static_cast<T>(r.uniform(-1, 1));
    std::vector<T> want = C;
    for (Index i = 0; i < M; ++i)
      for (Index j = 0; j < N; ++j) {
        double s = 0;
        for (Index k = 0; k < K; ++k)
          s += static_cast<double>(ta ? A[static_cast<size_t>(k * lda + i)] : A[static_cast<size_t>(i * lda + k)]) *
               static_cast<double>(tb ? B[static_cast<size_t>(j * ldb + k)] : B[static_cast<size_t>(k * ldb + j)]);
        T& w = want[static_cast<size_t>(i * ldc + j)];
        w = static_cast<T>(alpha * s + (beta == 0 ? 0.0 : beta * static_cast<double>(w)));
      }
    gemm<T>(ta, tb, M, N, K, static_cast<T>(alpha), A.data(), lda, B.data(), ldb, static_cast<T>(beta), C.data(), ldc);
    const double tol = (sizeof(T) == 4 ? 1e-4 : 1e-11) * std::sqrt(static_cast<double>(K) + 1);
    double err = 0;
    bool padding_kept = true;
    for (Index i = 0; i < M; ++i)
      for (Index j = 0; j < ldc; ++j) {
        size_t f = static_cast<size_t>(i * ldc + j);
        if (j < N) err = std::max(err, std::abs(static_cast<double>(C[f]) - static_cast<double>(want[f])));
        else padding_kept = padding_kept && C[f] == want[f];
      }
    INFO((sizeof(T) == 4 ? "float" : "double") << " ta " << ta << " tb " << tb << " M " << M << " N " << N << " K " << K
                                                << " alpha " << alpha << " beta " << beta << " pad " << pad);
    CHECK(err <= tol);
    CHECK(padding_kept);
  };
  // Shapes of the models (batch 32 dense layers, im2col convolutions), and sizes that leave
  // partial tiles in every direction (the AVX2 kernel's tiles are 6x16 and 4x24, the AVX-512
  // kernel's 16x16, 12x32 and 14x32, depth blocks at most 256; leading dimensions that are
  // multiples of 16 take other paths). Every float kernel this processor has is checked.
  const Index sizes[][3] = {{1, 1, 1},     {1, 5, 3},      {5, 1, 3},      {3, 4, 5},      {32, 300, 784},
                            {784, 300, 32}, {32, 784, 300}, {32, 100, 300}, {17, 33, 65},  {300, 37, 5},
                            {2, 700, 3},   {700, 2, 9},    {64, 64, 64},   {33, 513, 129}, {1568, 64, 288},
                            {7, 23, 257},  {5, 25, 513},   {129, 17, 300}, {32, 256, 40},  {200, 128, 33},
                            {13, 1024, 9}, {6, 16, 8},     {4, 24, 8},     {97, 47, 1000}, {16, 17, 5},
                            {31, 49, 300}, {12, 32, 7},    {9, 32, 600},   {25, 64, 3},    {40, 96, 20},
                            {44, 80, 11},  {8, 48, 16}};
  for (int isa : float_kernels()) {
#ifdef GRAFT_SGEMM
    detail::sgemm::set_isa(static_cast<detail::sgemm::Isa>(isa));
#endif
    INFO("float kernel " << isa);
  for (int threads : {1, 2}) {
    graft::set_num_threads(threads);
    for (const auto& s : sizes)
      for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb)
          for (Index pad : {0, 3}) {
            if (pad && s[0] * s[1] * s[2] > 1000000) continue;  // the naive reference is slow: big shapes once
            check(0.0f, ta != 0, tb != 0, s[0], s[1], s[2], 1.0, pad ? 0.0 : 1.0, pad);
            check(0.0f, ta != 0, tb != 0, s[0], s[1], s[2], 0.5, pad ? 0.7 : 0.0, pad);
            if (threads == 1 && isa == float_kernels().back())
              check(0.0, ta != 0, tb != 0, s[0], s[1], s[2], 0.5, pad ? 0.7 : 0.0, pad);
          }
  }
  }
  restore_float_kernel();
  graft::set_num_threads(0);
  // beta == 0 ignores C, NaNs included; the result does not depend on the thread count
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      const Index M = 64, N = 300, K = 300;
      Rng r(7);
      std::vector<float> A(static_cast<size_t>(M * K)), B(static_cast<size_t>(K * N));
      for (auto& v : A) v = static_cast<float>(r.uniform(-1, 1));
      for (auto& v : B) v = static_cast<float>(r.uniform(-1, 1));
      std::vector<float> c1(static_cast<size_t>(M * N), std::nanf("")), c2 = c1;
      graft::set_num_threads(1);
      gemm<float>(ta != 0, tb != 0, M, N, K, 1.0f, A.data(), ta ? M : K, B.data(), tb ? K : N, 0.0f, c1.data(), N);
      graft::set_num_threads(2);
      gemm<float>(ta != 0, tb != 0, M, N, K, 1.0f, A.data(), ta ? M : K, B.data(), tb ? K : N, 0.0f, c2.data(), N);
      graft::set_num_threads(0);
      CHECK(std::none_of(c1.begin(), c1.end(), [](float v) { return std::isnan(v); }));
      CHECK(c1 == c2);
    }
  // K == 0 leaves beta * C
  std::vector<float> c{1, 2, 3, 4};
  gemm<float>(false, false, 2, 2, 0, 1.0f, nullptr, 1, nullptr, 2, 0.5f, c.data(), 2);
  CHECK(c == std::vector<float>{0.5f, 1, 1.5f, 2});
}

TEST_CASE("graft's AVX2 and AVX-512 float kernels give the same bits", "[core][gemm]") {
#ifdef GRAFT_SGEMM
  namespace sg = detail::sgemm;
  if (sg::detected_isa() != sg::Isa::avx512) {
    WARN("this processor has no AVX-512: nothing to compare");
    return;
  }
  const Index sizes[][3] = {{32, 300, 784}, {784, 300, 32}, {32, 100, 300}, {17, 33, 65}, {196, 64, 288},
                            {288, 64, 600}, {113, 288, 64}, {9, 32, 1000}, {256, 300, 784}, {5, 7, 3}};
  for (const auto& s : sizes)
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (float beta : {0.0f, 0.5f}) {
          const Index M = s[0], N = s[1], K = s[2];
          Rng r(static_cast<std::uint64_t>(M + N + K));
          std::vector<float> A(static_cast<size_t>(M * K)), B(static_cast<size_t>(K * N)), C0(static_cast<size_t>(M * N));
          for (auto& v : A) v = static_cast<float>(r.uniform(-1, 1));
          for (auto& v : B) v = static_cast<float>(r.uniform(-1, 1));
          for (auto& v : C0) v = static_cast<float>(r.uniform(-1, 1));
          std::vector<float> c2 = C0, c5 = C0;
          sg::set_isa(sg::Isa::avx2);
          gemm<float>(ta != 0, tb != 0, M, N, K, 0.75f, A.data(), ta ? M : K, B.data(), tb ? K : N, beta, c2.data(), N);
          sg::set_isa(sg::Isa::avx512);
          gemm<float>(ta != 0, tb != 0, M, N, K, 0.75f, A.data(), ta ? M : K, B.data(), tb ? K : N, beta, c5.data(), N);
          INFO("ta " << ta << " tb " << tb << " M " << M << " N " << N << " K " << K << " beta " << beta);
          CHECK(c2 == c5);
        }
  restore_float_kernel();
#else
  WARN("graft's own float kernels are not built on this platform");
#endif
}
