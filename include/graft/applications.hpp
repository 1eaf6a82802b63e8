// graft::applications — keras.applications in C++: every family with Keras' arguments, layer names
// and configs, Keras' weight files loaded by layer name, and each family's preprocess_input.
//   #include <graft/applications.hpp>
//   graft::applications::Options o;
//   o.include_top = false; o.pooling = "avg"; o.input_shape = {160, 160, 3};
//   o.weights = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160_no_top.h5";
//   auto base = graft::applications::MobileNetV2<float>(o);
//   auto x = graft::applications::preprocess_input("MobileNetV2", images);   // [0,255] -> [-1,1]
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "graft/applications/builder.hpp"
#include "graft/applications/convnext.hpp"
#include "graft/applications/densenet.hpp"
#include "graft/applications/efficientnet.hpp"
#include "graft/applications/efficientnet_v2.hpp"
#include "graft/applications/inception_resnet_v2.hpp"
#include "graft/applications/inception_v3.hpp"
#include "graft/applications/mobilenet.hpp"
#include "graft/applications/mobilenet_v2.hpp"
#include "graft/applications/mobilenet_v3.hpp"
#include "graft/applications/nasnet.hpp"
#include "graft/applications/resnet.hpp"
#include "graft/applications/resnet_v2.hpp"
#include "graft/applications/vgg.hpp"
#include "graft/applications/xception.hpp"

namespace graft {
namespace applications {

/// One keras.applications function: its name, its module's preprocess_input mode ("caffe", "tf",
/// "torch", or "none" for the families whose preprocessing is inside the model), and the builder.
template <class T>
struct Application {
  std::string name;
  std::string preprocessing;
  std::function<std::shared_ptr<Model<T>>(const Options&)> build;
};

/// Every application graft builds, in keras.applications' order.
template <class T = float>
const std::vector<Application<T>>& all() {
  static const std::vector<Application<T>> table = {
      {"ConvNeXtTiny", "none", ConvNeXtTiny<T>},
      {"ConvNeXtSmall", "none", ConvNeXtSmall<T>},
      {"ConvNeXtBase", "none", ConvNeXtBase<T>},
      {"ConvNeXtLarge", "none", ConvNeXtLarge<T>},
      {"ConvNeXtXLarge", "none", ConvNeXtXLarge<T>},
      {"DenseNet121", "torch", DenseNet121<T>},
      {"DenseNet169", "torch", DenseNet169<T>},
      {"DenseNet201", "torch", DenseNet201<T>},
      {"EfficientNetB0", "none", EfficientNetB0<T>},
      {"EfficientNetB1", "none", EfficientNetB1<T>},
      {"EfficientNetB2", "none", EfficientNetB2<T>},
      {"EfficientNetB3", "none", EfficientNetB3<T>},
      {"EfficientNetB4", "none", EfficientNetB4<T>},
      {"EfficientNetB5", "none", EfficientNetB5<T>},
      {"EfficientNetB6", "none", EfficientNetB6<T>},
      {"EfficientNetB7", "none", EfficientNetB7<T>},
      {"EfficientNetV2B0", "none", EfficientNetV2B0<T>},
      {"EfficientNetV2B1", "none", EfficientNetV2B1<T>},
      {"EfficientNetV2B2", "none", EfficientNetV2B2<T>},
      {"EfficientNetV2B3", "none", EfficientNetV2B3<T>},
      {"EfficientNetV2S", "none", EfficientNetV2S<T>},
      {"EfficientNetV2M", "none", EfficientNetV2M<T>},
      {"EfficientNetV2L", "none", EfficientNetV2L<T>},
      {"InceptionResNetV2", "tf", InceptionResNetV2<T>},
      {"InceptionV3", "tf", InceptionV3<T>},
      {"MobileNet", "tf", MobileNet<T>},
      {"MobileNetV2", "tf", MobileNetV2<T>},
      {"MobileNetV3Small", "none", MobileNetV3Small<T>},
      {"MobileNetV3Large", "none", MobileNetV3Large<T>},
      {"NASNetMobile", "tf", NASNetMobile<T>},
      {"NASNetLarge", "tf", NASNetLarge<T>},
      {"ResNet50", "caffe", ResNet50<T>},
      {"ResNet101", "caffe", ResNet101<T>},
      {"ResNet152", "caffe", ResNet152<T>},
      {"ResNet50V2", "tf", ResNet50V2<T>},
      {"ResNet101V2", "tf", ResNet101V2<T>},
      {"ResNet152V2", "tf", ResNet152V2<T>},
      {"VGG16", "caffe", VGG16<T>},
      {"VGG19", "caffe", VGG19<T>},
      {"Xception", "tf", Xception<T>},
  };
  return table;
}

/// The application called `name` (Keras' function name, e.g. "ResNet50"); value_error listing the
/// names otherwise.
template <class T = float>
const Application<T>& find(const std::string& name) {
  for (const auto& a : all<T>())
    if (a.name == name) return a;
  std::string names;
  for (const auto& a : all<T>()) names += (names.empty() ? "" : ", ") + a.name;
  throw value_error(graft::detail::cat("unknown application '", name, "'; graft builds: ", names));
}

/// keras.applications.<name>(...): build by name (for command lines and configuration files).
template <class T = float>
std::shared_ptr<Model<T>> build(const std::string& name, const Options& o = {}) {
  return find<T>(name).build(o);
}

/// keras.applications.<module>.preprocess_input for the application `name`, on channels-last RGB
/// images with values in [0, 255] (any batch shape): VGG and ResNet "caffe", Inception, Xception,
/// MobileNet(V2), ResNetV2 and NASNet "tf", DenseNet "torch"; EfficientNet(V2), ConvNeXt and
/// MobileNetV3 return x unchanged (their preprocessing is inside the model).
template <class T>
Tensor<T> preprocess_input(const std::string& name, Tensor<T> x) {
  return imagenet_preprocess(std::move(x), find<T>(name).preprocessing);
}

}  // namespace applications
}  // namespace graft
