// graft::applications on the C++ side: every builder runs, preprocess_input follows Keras'
// formulas, weights load by layer name all or nothing, and bad arguments get clear errors. The
// comparison with keras.applications itself (config, weights, predictions) is
// tests/keras3/check_application_builders.py, run by CTest under real Keras.
#include <graft/applications.hpp>
#include <graft/graft.hpp>
#include <catch2/catch.hpp>

#include "gradcheck.hpp"

using namespace graft;
namespace ga = graft::applications;

namespace {
ga::Options small(Shape s = {32, 32, 3}, bool top = false) {
  ga::Options o;
  o.input_shape = s;
  o.include_top = top;
  o.classes = 3;
  o.pooling = top ? "" : "avg";
  return o;
}
}  // namespace

TEST_CASE("every application builds with Keras' default names and the requested head", "[applications]") {
  struct Case {
    const char* name;
    Shape shape;
    const char* model_name;
  };
  // the smallest member of each family (the others share their code), at their smallest inputs
  const Case cases[] = {{"VGG16", {32, 32, 3}, "vgg16"},
                        {"ResNet50", {32, 32, 3}, "resnet50"},
                        {"ResNet50V2", {32, 32, 3}, "resnet50v2"},
                        {"InceptionV3", {75, 75, 3}, "inception_v3"},
                        {"Xception", {71, 71, 3}, "xception"},
                        {"MobileNet", {32, 32, 3}, "mobilenet_1.00_32"},
                        {"MobileNetV2", {32, 32, 3}, "mobilenetv2_1.00_32"},
                        {"MobileNetV3Small", {32, 32, 3}, "MobileNetV3Small"},
                        {"DenseNet121", {32, 32, 3}, "densenet121"},
                        {"EfficientNetB0", {32, 32, 3}, "efficientnetb0"},
                        {"EfficientNetV2B0", {32, 32, 3}, "efficientnetv2-b0"},
                        {"NASNetMobile", {32, 32, 3}, "nasnet_mobile"}};
  for (const auto& c : cases) {
    INFO(c.name);
    auto m = ga::build<float>(c.name, small(c.shape));
    CHECK(m->name() == c.model_name);
    CHECK(m->output_shapes()[0].size() == 2);
    auto top = ga::build<float>(c.name, small(c.shape, true));
    CHECK(top->output_shapes()[0] == Shape{-1, 3});
    CHECK(top->layers().back()->name() == "predictions");
  }
  CHECK(ga::all<float>().size() == 40);
}

TEST_CASE("Keras' documented parameter counts (ImageNet tops at the default sizes)", "[applications]") {
  // keras.io/api/applications: the table's parameter counts
  CHECK(ga::MobileNetV2<float>()->count_params() == 3538984);
  CHECK(ga::MobileNet<float>()->count_params() == 4253864);
  CHECK(ga::NASNetMobile<float>()->count_params() == 5326716);
  CHECK(ga::EfficientNetB0<float>()->count_params() == 5330571);
  CHECK(ga::DenseNet121<float>()->count_params() == 8062504);
  CHECK(ga::ResNet50<float>()->count_params() == 25636712);
}

TEST_CASE("preprocess_input: caffe, tf, torch and none as Keras computes them", "[applications]") {
  Tensor<float> img({1, 1, 2, 3});
  const float px[6] = {0, 127.5f, 255, 10, 20, 30};
  std::copy(px, px + 6, img.data());
  auto caffe = ga::preprocess_input("ResNet50", img);  // RGB -> BGR, minus the BGR means
  CHECK(caffe[0] == Approx(255 - 103.939));
  CHECK(caffe[1] == Approx(127.5 - 116.779));
  CHECK(caffe[2] == Approx(0 - 123.68));
  CHECK(caffe[3] == Approx(30 - 103.939));
  auto tf = ga::preprocess_input("MobileNetV2", img);  // [-1, 1]
  CHECK(tf[0] == -1.0f);
  CHECK(tf[1] == 0.0f);
  CHECK(tf[2] == 1.0f);
  auto torch = ga::preprocess_input("DenseNet121", img);  // /255, ImageNet mean and std per RGB channel
  CHECK(torch[0] == Approx((0 - 0.485) / 0.229));
  CHECK(torch[1] == Approx((0.5 - 0.456) / 0.224));
  CHECK(torch[5] == Approx((30 / 255.0 - 0.406) / 0.225));
  auto none = ga::preprocess_input("EfficientNetB0", img);
  CHECK(none[4] == 20.0f);
  CHECK_THROWS_AS(ga::preprocess_input("ResNet50", Tensor<float>({1, 2, 2, 1})), shape_error);
}

TEST_CASE("weights load by layer name, all or nothing", "[applications]") {
  set_random_seed(401);
  ga::Options o = small();
  o.alpha = 0.25;
  auto a = ga::MobileNet<float>(o);
  const std::string w = graft_test::tmp_dir() + "/mobilenet_025.h5";
  save_weights(*a, w);
  o.weights = w;
  auto b = ga::MobileNet<float>(o);
  auto wa = a->get_weights(), wb = b->get_weights();
  REQUIRE(wa.size() == wb.size());
  for (size_t i = 0; i < wa.size(); ++i) CHECK(wa[i].array().isApprox(wb[i].array(), 0.0f));
  SECTION("another width: an error naming the layer, nothing written") {
    ga::Options wide = small();
    wide.alpha = 0.5;
    auto c = ga::MobileNet<float>(wide);
    auto before = c->get_weights();
    try {
      ga::load_weights_by_name(*c, w);
      FAIL("loaded weights of another width");
    } catch (const shape_error& e) {
      CHECK(std::string(e.what()).find("layer 'conv1'") != std::string::npos);
    }
    auto after = c->get_weights();
    for (size_t i = 0; i < before.size(); ++i) CHECK(before[i].array().isApprox(after[i].array(), 0.0f));
  }
  SECTION("another architecture: the first layer it lacks is named") {
    ga::Options v2 = small();
    v2.alpha = 0.35;
    v2.weights = w;
    try {
      ga::MobileNetV2<float>(v2);
      FAIL("loaded MobileNet weights into MobileNetV2");
    } catch (const format_error& e) {
      CHECK(std::string(e.what()).find("no weights for layer 'Conv1'") != std::string::npos);
    }
  }
}

TEST_CASE("application arguments are checked as Keras checks them; graft never downloads", "[applications]") {
  ga::Options o;
  o.weights = "imagenet";
  try {
    ga::ResNet50<float>(o);
    FAIL("imagenet accepted");
  } catch (const value_error& e) {
    CHECK(std::string(e.what()).find("resnet50_weights_tf_dim_ordering_tf_kernels.h5") != std::string::npos);
  }
  CHECK_THROWS_AS(ga::VGG16<float>(small({31, 32, 3})), value_error);
  ga::Options p = small();
  p.pooling = "mean";
  CHECK_THROWS_AS(ga::VGG16<float>(p), value_error);
  try {
    ga::build<float>("ResNet18");
    FAIL("unknown application accepted");
  } catch (const value_error& e) {
    CHECK(std::string(e.what()).find("ConvNeXtTiny") != std::string::npos);
  }
  ga::Options nofile = small();
  nofile.weights = "/nonexistent/weights.h5";
  CHECK_THROWS_AS(ga::MobileNetV2<float>(nofile), graft::error);
}
