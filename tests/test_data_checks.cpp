// Checks of training data before fit() (train/data_checks.hpp): NaN/inf named by sample and
// position, sparse class labels that are NaN, fractional or out of range, sample counts that
// differ, empty data. The functions are called directly here; fit() calls them at its start.
#include <graft/graft.hpp>
#include <graft/train/data_checks.hpp>
#include <catch2/catch.hpp>

#include "gradcheck.hpp"

#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

using namespace graft;
using Catch::Matchers::Contains;

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

/// The message of the value_error `f` throws (fails when it throws nothing or something else).
template <class F>
std::string value_error_of(F&& f) {
  return graft_test::error_of<value_error>(std::forward<F>(f));
}

Tensor<float> ramp(const Shape& s) {
  Tensor<float> t(s);
  for (Index i = 0; i < t.size(); ++i) t[i] = static_cast<float>(i) * 0.01f;
  return t;
}

std::shared_ptr<Sequential<float>> classifier(Index inputs, Index classes, const std::string& loss) {
  auto m = std::make_shared<Sequential<float>>("dc");
  m->add(std::make_shared<InputLayer<float>>(Shape{inputs}));
  m->add(std::make_shared<Dense<float>>(classes, "softmax", true, "dc_out"));
  m->compile(std::make_shared<SGD<float>>(0.1), loss);
  return m;
}

}  // namespace

TEST_CASE("describe_element turns a flat index into a sample and a position", "[data][checks]") {
  CHECK(describe_element({5}, 3) == "sample 3");
  CHECK(describe_element({4, 7}, 7 * 2 + 5) == "sample 2, column 5");
  CHECK(describe_element({3, 2, 4, 5}, 2 * 40 + 1 * 20 + 3 * 5 + 4) == "sample 2, position [1, 3, 4]");
  const Index rows[] = {40, 17, 99};
  CHECK(describe_element({3, 6}, 6 + 2, rows) == "sample 17, column 2");
}

TEST_CASE("NaN and inf in inputs and targets are named by sample and column", "[data][checks]") {
  Tensor<float> x = ramp({10, 6});
  CHECK_NOTHROW(check_finite(x, "fit: input 0"));
  x[4 * 6 + 3] = kNaN;
  x[8 * 6 + 1] = kInf;
  std::string m = value_error_of([&] { check_finite(x, "fit: input 0"); });
  CHECK_THAT(m, Contains("fit: input 0 holds NaN at sample 4, column 3"));
  CHECK_THAT(m, Contains("2 non-finite values in 60"));
  CHECK_THAT(m, Contains("check_data = false"));

  Tensor<float> img = ramp({3, 4, 4, 2});
  img[2 * 32 + 1 * 8 + 3 * 2 + 1] = -kInf;
  m = value_error_of([&] { check_finite(img, "fit: input 1"); });
  CHECK_THAT(m, Contains("-inf at sample 2, position [1, 3, 1]"));
  CHECK_THAT(m, Contains("1 non-finite value in 96"));

  Tensor<double> yd({5}, 0.0);
  yd[3] = std::numeric_limits<double>::infinity();
  CHECK_THAT(value_error_of([&] { check_finite(yd, "fit: target 0"); }), Contains("inf at sample 3"));
}

TEST_CASE("sparse class labels must be integers from 0 to the number of classes - 1", "[data][checks]") {
  Tensor<float> y({6}, {0, 1, 2, 2, 1, 0});
  CHECK_NOTHROW(check_class_labels(y, 3, "fit: target 0"));
  struct Bad {
    float v;
    const char* says;
  };
  for (Bad b : {Bad{kNaN, "label nan"}, Bad{1.5f, "label 1.5"}, Bad{-1.0f, "label -1"}, Bad{3.0f, "label 3"},
                Bad{kInf, "label inf"}, Bad{1e30f, "label 1e+30"}}) {
    Tensor<float> bad = y;
    bad[4] = b.v;
    INFO(b.says);
    std::string m = value_error_of([&] { check_class_labels(bad, 3, "fit: target 0"); });
    CHECK_THAT(m, Contains(b.says));
    CHECK_THAT(m, Contains("at sample 4"));
    CHECK_THAT(m, Contains("not a class index in [0, 3)"));
  }
  Tensor<float> col({6, 1}, {0, 1, 2, 7, 1, 0});  // labels as a column, classes unknown: 7 is fine
  CHECK_NOTHROW(check_class_labels(col, -1, "fit"));
  col[3] = -2;
  CHECK_THAT(value_error_of([&] { check_class_labels(col, -1, "fit"); }), Contains("sample 3, column 0"));
}

TEST_CASE("arrays with different sample counts and empty data are refused", "[data][checks]") {
  Tensor<float> x = ramp({8, 3}), x2 = ramp({8, 2}), y = ramp({7, 1}), empty({0, 3}), empty_y({0, 1}), scalar(Shape{});
  CHECK(check_sample_counts<float>({&x, &x2}, {&x}, "fit") == 8);
  try {
    check_sample_counts<float>({&x, &x2}, {&y}, "fit");
    FAIL("no shape_error");
  } catch (const shape_error& e) {
    CHECK_THAT(std::string(e.what()), Contains("target 0 has 7 samples but input 0 has 8"));
  }
  CHECK_THAT(value_error_of([&] { check_sample_counts<float>({&empty}, {&empty_y}, "fit"); }), Contains("empty (0 samples)"));
  CHECK_THAT(value_error_of([&] { check_sample_counts<float>({}, {&y}, "fit"); }), Contains("no input arrays"));
  CHECK_THROWS_AS(check_sample_counts<float>({&scalar}, {}, "fit"), shape_error);
}

TEST_CASE("check_training_data reads the model's losses and output shapes", "[data][checks]") {
  auto m = classifier(4, 3, "sparse_categorical_crossentropy");
  Tensor<float> x = ramp({5, 4});
  Tensor<float> y({5}, {0, 2, 1, 1, 0});
  CHECK_NOTHROW(check_training_data<Model<float>, float>(*m, {&x}, {&y}, true));

  Tensor<float> y_bad = y;
  y_bad[2] = 3;  // 3 classes
  std::string msg = value_error_of([&] { check_training_data<Model<float>, float>(*m, {&x}, {&y_bad}, true); });
  CHECK_THAT(msg, Contains("fit: target 0 (sparse_categorical_crossentropy): label 3 at sample 2"));
  CHECK_THAT(msg, Contains("the model's output has 3 classes"));
  y_bad[2] = kNaN;  // refused even when the NaN check is off: Keras would cast it to an integer
  CHECK_THAT(value_error_of([&] { check_training_data<Model<float>, float>(*m, {&x}, {&y_bad}, false); }), Contains("label nan"));

  Tensor<float> x_bad = x;
  x_bad[3 * 4 + 2] = kNaN;
  CHECK_THAT(value_error_of([&] { check_training_data<Model<float>, float>(*m, {&x_bad}, {&y}, true); }),
             Contains("fit: input 0 holds NaN at sample 3, column 2"));
  CHECK_NOTHROW(check_training_data<Model<float>, float>(*m, {&x_bad}, {&y}, false));  // opted out

  // one-hot targets of categorical_crossentropy: no label check, but NaN is found
  auto c = classifier(4, 3, "categorical_crossentropy");
  Tensor<float> onehot({5, 3}, 0.0f);
  for (Index i = 0; i < 5; ++i) onehot[i * 3 + (i % 3)] = 1;
  CHECK_NOTHROW(check_training_data<Model<float>, float>(*c, {&x}, {&onehot}, true));
  onehot[4 * 3 + 1] = kInf;
  CHECK_THAT(value_error_of([&] { check_training_data<Model<float>, float>(*c, {&x}, {&onehot}, true); }),
             Contains("fit: target 0 holds inf at sample 4, column 1"));

  // a batch from a source: samples named by their number in the source
  std::vector<Tensor<float>> bx{x_bad}, by{y};
  const Index rows[] = {100, 7, 52, 31, 9};
  CHECK_THAT(value_error_of([&] { check_training_batch(*m, bx, by, rows, true); }), Contains("at sample 31, column 2"));
}
