// The graft command line: summary, predict, fit; errors as one line on stderr with a non-zero status.
#include <graft/graft.hpp>
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <limits>
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

TEST_CASE("graft fit refuses NaN, inf and bad labels before training, and stops on a NaN loss", "[cli]") {
  // train_adam_sparse_cce: 8 inputs, 5 classes (sparse labels)
  const std::string model = fx("train_adam_sparse_cce/before.h5");
  const std::string dir = graft_test::tmp_dir();
  auto data = [&](const std::string& name, graft::Index bad_row, float bad_x, float bad_label) {
    graft::Tensor<float> x(graft::Shape{16, 8}), y(graft::Shape{16});
    for (graft::Index i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 37) % 11) * 0.1f - 0.5f;
    for (graft::Index i = 0; i < 16; ++i) y[i] = static_cast<float>(i % 5);
    if (bad_row >= 0) x[bad_row * 8 + 2] = bad_x;
    if (bad_label >= 0) y[3] = bad_label;
    const std::string p = dir + "/" + name;
    auto f = graft::h5::File::create(p);
    auto root = graft::h5::Group::root(f);
    graft::h5::write_dataset(root, "x_train", x);
    graft::h5::write_dataset(root, "y_train", y);
    f.close();
    return p;
  };
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  struct Case {
    std::string data, flags, says;
  };
  const Case cases[] = {
      {data("nan.h5", 5, nan, -1), "", "input 0 holds NaN at sample 5, column 2"},
      {data("inf.h5", 9, inf, -1), "", "input 0 holds inf at sample 9, column 2"},
      {data("label.h5", -1, 0, 7), "", "label 7 at sample 3 is not a class index in [0, 5)"},
      {data("label_nan.h5", -1, 0, 2.5f), " --no-data-check", "label 2.5 at sample 3"},  // labels: always checked
      {data("nan_ok.h5", 5, nan, -1), " --no-data-check", "NaN or Inf loss"},           // trained on: the loss stops it
  };
  for (const auto& c : cases) {
    const std::string out = dir + "/refused.h5";
    auto r = run("fit " + model + " --data " + c.data + " --output " + out + " --epochs 1 --batch-size 4 --no-shuffle" + c.flags);
    INFO(c.data << c.flags << " -> " << r.err);
    CHECK(r.status != 0);
    CHECK_THAT(r.err, Catch::Matchers::Contains(c.says));
    CHECK(access(out.c_str(), F_OK) != 0);  // nothing saved
  }
}
