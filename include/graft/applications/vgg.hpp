// graft — VGG16 and VGG19 (keras.applications.vgg16 / vgg19, Simonyan & Zisserman 2015).
#pragma once

#include "graft/applications/builder.hpp"

namespace graft {
namespace applications {
namespace detail {

/// keras vgg16.VGG16 / vgg19.VGG19: five blocks of 3x3 "same" ReLU convolutions (2, 2, convs,
/// convs, convs per block) and 2x2 max pooling; the top is Flatten + fc1 + fc2 (4096) + predictions.
template <class T>
std::shared_ptr<Model<T>> vgg(const Options& o, int convs, const std::string& family, const WeightsFiles& files) {
  validate_options(o, family, files);
  Graph<T> g;
  auto img_input = g.input(obtain_input_shape(o.input_shape, 224, 32, family));
  auto x = img_input;
  const int filters[5] = {64, 128, 256, 512, 512};
  for (int b = 0; b < 5; ++b) {
    const int n = b < 2 ? 2 : convs;
    const std::string block = "block" + std::to_string(b + 1);
    for (int c = 0; c < n; ++c)
      x = g("Conv2D", {{"filters", filters[b]}, {"kernel_size", {3, 3}}, {"activation", "relu"}, {"padding", "same"},
                       {"name", block + "_conv" + std::to_string(c + 1)}}, x);
    x = g("MaxPooling2D", {{"pool_size", {2, 2}}, {"strides", {2, 2}}, {"name", block + "_pool"}}, x);
  }
  if (o.include_top) {
    x = g("Flatten", {{"name", "flatten"}}, x);
    x = g("Dense", {{"units", 4096}, {"activation", "relu"}, {"name", "fc1"}}, x);
    x = g("Dense", {{"units", 4096}, {"activation", "relu"}, {"name", "fc2"}}, x);
    x = g("Dense", {{"units", o.classes}, {"activation", classifier_activation(o)}, {"name", "predictions"}}, x);
  } else {
    x = pooling(g, x, o);
  }
  return finish(img_input, x, o, convs == 3 ? "vgg16" : "vgg19");
}

}  // namespace detail

/// keras.applications.VGG16. Input: RGB images preprocessed with preprocess_input("VGG16", x) ("caffe").
template <class T = float>
std::shared_ptr<Model<T>> VGG16(const Options& o = {}) {
  return detail::vgg<T>(o, 3, "VGG16",
                        {"https://storage.googleapis.com/tensorflow/keras-applications/vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5",
                         "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"});
}

/// keras.applications.VGG19 ("caffe" preprocessing).
template <class T = float>
std::shared_ptr<Model<T>> VGG19(const Options& o = {}) {
  return detail::vgg<T>(o, 4, "VGG19",
                        {"https://storage.googleapis.com/tensorflow/keras-applications/vgg19/vgg19_weights_tf_dim_ordering_tf_kernels.h5",
                         "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"});
}

}  // namespace applications
}  // namespace graft
