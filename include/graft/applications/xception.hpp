// graft — Xception (Chollet 2017, "Xception: Deep Learning with Depthwise Separable Convolutions"),
// keras.applications.xception.
#pragma once

#include "graft/applications/builder.hpp"

namespace graft {
namespace applications {
namespace detail {

/// keras xception.Xception: entry flow (blocks 1-4, strided 1x1 convolution shortcuts), middle flow
/// (blocks 5-12, identity shortcuts), exit flow (blocks 13-14).
template <class T>
std::shared_ptr<Model<T>> xception(const Options& o) {
  const std::string family = "Xception";
  validate_options(o, family,
                   {"https://storage.googleapis.com/tensorflow/keras-applications/xception/xception_weights_tf_dim_ordering_tf_kernels.h5",
                    "https://storage.googleapis.com/tensorflow/keras-applications/xception/xception_weights_tf_dim_ordering_tf_kernels_notop.h5"});
  Graph<T> g;
  auto img_input = g.input(obtain_input_shape(o.input_shape, 299, 71, family));
  const int channel_axis = -1;
  auto bn = [&](const KerasTensor<T>& in, const json& name) {
    return g("BatchNormalization", {{"axis", channel_axis}, {"name", name}}, in);
  };
  auto relu = [&](const KerasTensor<T>& in, const std::string& name) { return g("Activation", {{"activation", "relu"}, {"name", name}}, in); };
  auto sepconv = [&](const KerasTensor<T>& in, int filters, const std::string& name) {
    return g("SeparableConv2D", {{"filters", filters}, {"kernel_size", {3, 3}}, {"padding", "same"}, {"use_bias", false}, {"name", name}}, in);
  };
  auto shortcut = [&](const KerasTensor<T>& in, int filters) {
    auto r = g("Conv2D", {{"filters", filters}, {"kernel_size", {1, 1}}, {"strides", {2, 2}}, {"padding", "same"}, {"use_bias", false}}, in);
    return bn(r, nullptr);
  };
  auto pool = [&](const KerasTensor<T>& in, const std::string& name) {
    return g("MaxPooling2D", {{"pool_size", {3, 3}}, {"strides", {2, 2}}, {"padding", "same"}, {"name", name}}, in);
  };
  auto add = [&](const KerasTensor<T>& a, const KerasTensor<T>& b) { return g("Add", json::object(), std::vector<KerasTensor<T>>{a, b}); };

  auto x = g("Conv2D", {{"filters", 32}, {"kernel_size", {3, 3}}, {"strides", {2, 2}}, {"use_bias", false}, {"name", "block1_conv1"}}, img_input);
  x = bn(x, "block1_conv1_bn");
  x = relu(x, "block1_conv1_act");
  x = g("Conv2D", {{"filters", 64}, {"kernel_size", {3, 3}}, {"use_bias", false}, {"name", "block1_conv2"}}, x);
  x = bn(x, "block1_conv2_bn");
  x = relu(x, "block1_conv2_act");

  auto residual = shortcut(x, 128);

  x = sepconv(x, 128, "block2_sepconv1");
  x = bn(x, "block2_sepconv1_bn");
  x = relu(x, "block2_sepconv2_act");
  x = sepconv(x, 128, "block2_sepconv2");
  x = bn(x, "block2_sepconv2_bn");

  x = pool(x, "block2_pool");
  x = add(x, residual);

  // blocks 3 (256) and 4 (728)
  const int entry_filters[2] = {256, 728};
  for (int b = 0; b < 2; ++b) {
    const std::string prefix = "block" + std::to_string(b + 3);
    residual = shortcut(x, entry_filters[b]);

    x = relu(x, prefix + "_sepconv1_act");
    x = sepconv(x, entry_filters[b], prefix + "_sepconv1");
    x = bn(x, prefix + "_sepconv1_bn");
    x = relu(x, prefix + "_sepconv2_act");
    x = sepconv(x, entry_filters[b], prefix + "_sepconv2");
    x = bn(x, prefix + "_sepconv2_bn");

    x = pool(x, prefix + "_pool");
    x = add(x, residual);
  }

  for (int i = 0; i < 8; ++i) {
    residual = x;
    const std::string prefix = "block" + std::to_string(i + 5);

    x = relu(x, prefix + "_sepconv1_act");
    x = sepconv(x, 728, prefix + "_sepconv1");
    x = bn(x, prefix + "_sepconv1_bn");
    x = relu(x, prefix + "_sepconv2_act");
    x = sepconv(x, 728, prefix + "_sepconv2");
    x = bn(x, prefix + "_sepconv2_bn");
    x = relu(x, prefix + "_sepconv3_act");
    x = sepconv(x, 728, prefix + "_sepconv3");
    x = bn(x, prefix + "_sepconv3_bn");

    x = add(x, residual);
  }

  residual = shortcut(x, 1024);

  x = relu(x, "block13_sepconv1_act");
  x = sepconv(x, 728, "block13_sepconv1");
  x = bn(x, "block13_sepconv1_bn");
  x = relu(x, "block13_sepconv2_act");
  x = sepconv(x, 1024, "block13_sepconv2");
  x = bn(x, "block13_sepconv2_bn");

  x = pool(x, "block13_pool");
  x = add(x, residual);

  x = sepconv(x, 1536, "block14_sepconv1");
  x = bn(x, "block14_sepconv1_bn");
  x = relu(x, "block14_sepconv1_act");

  x = sepconv(x, 2048, "block14_sepconv2");
  x = bn(x, "block14_sepconv2_bn");
  x = relu(x, "block14_sepconv2_act");

  x = pooled_head(g, x, o);
  return finish(img_input, x, o, "xception");
}

}  // namespace detail

/// keras.applications.Xception (default input 299x299x3, at least 71x71). Input: RGB images
/// preprocessed with preprocess_input ("tf": scaled to [-1, 1]).
template <class T = float>
std::shared_ptr<Model<T>> Xception(const Options& o = {}) {
  return detail::xception<T>(o);
}

}  // namespace applications
}  // namespace graft
