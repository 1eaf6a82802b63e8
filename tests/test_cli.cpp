// The graft command line: summary, predict, fit; errors as one line on stderr with a non-zero status.
#include <graft/graft.hpp>
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <string>

#include "gradcheck.hpp"

namespace {

struct Result {
  int status;
  std::string out, err;
};

Result run(const std::string& args) {
  static int k = 0;
  // per process: ctest runs test cases as parallel processes, each counting from 0
  std::string errf = "/tmp/graft-cli-err-" + std::to_string(static_cast<long>(getpid())) + "-" + std::to_string(k++);
  std::string cmd = std::string(GRAFT_BINARY_DIR) + "/tools/graft " + args + " 2>" + errf;
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  Result r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  FILE* e = fopen(errf.c_str(), "r");
  if (e) {
    while ((n = fread(buf, 1, sizeof buf, e)) > 0) r.err.append(buf, n);
    fclose(e);
  }
  std::remove(errf.c_str());
  return r;
}

std::string fx(const std::string& rel) { return graft_test::shared_path("keras-fixtures/" + rel); }

}  // namespace

TEST_CASE("graft summary prints the Keras-like table and the file's Keras version", "[cli]") {
  auto r = run("summary " + fx("handson_model_a/model.h5"));
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.out, Catch::Matchers::Contains("Keras version: 3.15.1"));
  CHECK_THAT(r.out, Catch::Matchers::Contains("dense (Dense)"));
  CHECK_THAT(r.out, Catch::Matchers::Contains("(None, 300)"));
  CHECK_THAT(r.out, Catch::Matchers::Contains("Total params: 276,158"));
  CHECK_THAT(r.out, Catch::Matchers::Contains("Non-trainable params: 0"));
  auto w = run("summary " + graft_test::shared_path("keras-corpus/hackbing_model_weights.h5"));
  REQUIRE(w.status == 0);
  CHECK_THAT(w.out, Catch::Matchers::Contains("Weights-only"));
  CHECK_THAT(w.out, Catch::Matchers::Contains("conv2d_1"));
  auto k3 = run("summary " + graft_test::shared_path("keras-corpus/anant_my_model.weights.h5"));
  REQUIRE(k3.status == 0);
  CHECK_THAT(k3.out, Catch::Matchers::Contains("Keras 3"));
  auto c = run("summary " + fx("train_adam_mse/before.h5"));
  REQUIRE(c.status == 0);
  CHECK_THAT(c.out, Catch::Matchers::Contains("Compiled: optimizer Adam"));
}

TEST_CASE("graft predict writes y (or y0, y1...) equal to the library's predictions", "[cli]") {
  for (const char* c : {"handson_model_a", "functional_two_inputs", "functional_two_outputs"}) {
    std::string out = std::string("/tmp/graft-cli-pred-") + c + ".h5";
    auto r = run("predict " + fx(std::string(c) + "/model.h5") + " --input " + fx(std::string(c) + "/io.h5") +
                 " --output " + out + " --batch-size 3");
    INFO(c << ": " << r.err);
    REQUIRE(r.status == 0);
    auto got = graft_test::read_arrays(out, "y");
    auto m = graft::load_model<float>(fx(std::string(c) + "/model.h5"));
    auto want = m->predict(graft_test::read_arrays(fx(std::string(c) + "/io.h5"), "x"));
    REQUIRE(got.size() == want.size());
    // same numbers up to float rounding (the CLI is a separately compiled program, batch size 3)
    for (size_t j = 0; j < got.size(); ++j) {
      REQUIRE(got[j].shape() == want[j].shape());
      for (graft::Index i = 0; i < got[j].size(); ++i) CHECK(std::abs(got[j][i] - want[j][i]) <= 1e-5f * (1 + std::abs(want[j][i])));
    }
    std::remove(out.c_str());
  }
}

TEST_CASE("graft fit trains with the file's optimizer and loss, then saves", "[cli]") {
  std::string out = "/tmp/graft-cli-fit.h5";
  auto r = run("fit " + fx("train_sgd_momentum_bce/before.h5") + " --data " + fx("train_sgd_momentum_bce/io.h5") +
               " --output " + out + " --epochs 1 --batch-size 4 --no-shuffle");
  INFO(r.err);
  REQUIRE(r.status == 0);
  auto m = graft::load_model<float>(out);
  REQUIRE(m->compiled());
  CHECK(m->optimizer()->iterations() == 4);
  std::remove(out.c_str());
}

TEST_CASE("graft reports every error as one line on stderr with a non-zero status", "[cli]") {
  for (const std::string& args :
       {std::string("summary /nonexistent.h5"), std::string("predict ") + fx("handson_model_a/model.h5"),
        std::string("predict ") + fx("handson_model_a/model.h5") + " --input " + fx("functional_two_inputs/io.h5") + " --output /tmp/x.h5",
        std::string("fit ") + fx("handson_model_a/model.h5") + " --data " + fx("handson_model_a/io.h5") + " --output /tmp/x.h5",
        std::string("summary ") + graft_test::shared_path("keras-corpus/carnd_2015_model.h5"), std::string("frobnicate x"),
        std::string("predict ") + fx("handson_model_a/model.h5") + " --batch-size zero --input a --output b"}) {
    auto r = run(args);
    INFO(args << " -> " << r.err);
    CHECK(r.status != 0);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK_THAT(r.err, Catch::Matchers::StartsWith("graft: "));
  }
  auto h = run("--help");
  CHECK(h.status == 0);
  CHECK_THAT(h.out, Catch::Matchers::Contains("graft predict MODEL"));
}
