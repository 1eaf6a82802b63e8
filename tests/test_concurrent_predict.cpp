// Inference on one shared model from several threads at once: each thread runs the graph in its
// own execution state (Layer::make_state) and only reads the model, so the results are those of
// a single thread, bit for bit. Built with -fsanitize=thread in CI (scripts/run-tests) to prove
// that no layer writes shared state during inference.
#include <graft/applications.hpp>
#include <graft/graft.hpp>
#include <catch2/catch.hpp>

#include "gradcheck.hpp"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

using namespace graft;

namespace {

/// One inference pass through `m` in a state of the caller's own (what a model nested in another
/// does); `m` itself is only read.
std::vector<Tensor<float>> infer(Model<float>& m, const std::vector<Tensor<float>>& x, CallState* st) {
  In<float> in;
  for (const auto& t : x) in.push_back(&t);
  std::vector<Tensor<float>> y(m.num_outputs());
  Out<float> out;
  for (auto& t : y) out.push_back(&t);
  m.forward(in, out, st, false);
  return y;
}

struct Case {
  std::string name;
  std::shared_ptr<Model<float>> model;
  std::vector<Tensor<float>> x;
};

/// Every inference fixture graft loads, with its inputs (io.h5: x, or x0, x1, ...).
std::vector<Case> fixture_cases() {
  std::vector<Case> r;
  const std::string dir = graft_test::shared_path("keras-fixtures");
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (std::filesystem::exists(e.path() / "model.h5") && std::filesystem::exists(e.path() / "io.h5"))
      names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    Case c;
    c.name = n;
    try {
      c.model = load_model<float>(dir + "/" + n + "/model.h5");
      c.x = graft_test::read_arrays(dir + "/" + n + "/io.h5", "x");
    } catch (const unsupported_error&) {
      continue;
    }
    if (c.x.empty() || c.x.size() != c.model->num_inputs()) continue;
    r.push_back(std::move(c));
  }
  return r;
}

/// Runs `m` on `x` from kThreads threads at once, kRepeats times each, and checks every result
/// against a single-threaded run.
void check_concurrent(Model<float>& m, const std::vector<Tensor<float>>& x) {
  auto st = m.make_state();
  const std::vector<Tensor<float>> want = infer(m, x, st.get());
  constexpr int kThreads = 4, kRepeats = 3;
  std::vector<std::vector<Tensor<float>>> got(kThreads * kRepeats);
  std::vector<std::string> errors(kThreads);
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      try {
        auto mine = m.make_state();
        ++ready;
        while (ready.load() < kThreads) std::this_thread::yield();  // start together
        for (int k = 0; k < kRepeats; ++k) got[static_cast<size_t>(t * kRepeats + k)] = infer(m, x, mine.get());
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(t)] = e.what();
      }
    });
  for (auto& th : threads) th.join();
  for (const auto& e : errors) CHECK(e.empty());
  for (const auto& g : got) {
    REQUIRE(g.size() == want.size());
    for (size_t j = 0; j < g.size(); ++j) CHECK(g[j] == want[j]);
  }
}

}  // namespace

TEST_CASE("one model predicts from several threads at once, each as a single thread would", "[model][threads]") {
  set_num_threads(2);  // the layers' own parallel loops run too (graft's pool is shared by the threads)
  const auto cases = fixture_cases();
  REQUIRE(cases.size() >= 40);
  for (const auto& c : cases) {
    INFO(c.name);
    check_concurrent(*c.model, c.x);
  }
  set_num_threads(0);
}

TEST_CASE("application models predict from several threads at once", "[model][threads][applications]") {
  set_num_threads(2);
  // families with layers the fixtures lack: Rescaling/Normalization, LayerNormalization and
  // layer scale (ConvNeXt), squeeze-excite and hard-swish (MobileNetV3), NASNet's cells
  for (const char* name : {"MobileNetV3Small", "EfficientNetV2B0", "ConvNeXtTiny", "NASNetMobile", "DenseNet121"}) {
    INFO(name);
    applications::Options o;
    o.input_shape = {32, 32, 3};
    o.include_top = true;
    o.classes = 5;
    auto m = applications::build<float>(name, o);
    Rng rng(3);
    std::vector<Tensor<float>> x{graft_test::random_tensor(Shape{3, 32, 32, 3}, rng, 0, 255).cast<float>()};
    check_concurrent(*m, x);
  }
  set_num_threads(0);
}
