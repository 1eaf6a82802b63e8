// graft — InceptionV3 (Szegedy et al. 2016, "Rethinking the Inception Architecture for Computer
// Vision"), keras.applications.inception_v3.
#pragma once

#include "graft/applications/builder.hpp"

namespace graft {
namespace applications {
namespace detail {

/// keras inception_v3.conv2d_bn: Conv2D (no bias) + BatchNormalization(scale=False) + ReLU; with a
/// name, the layers are name_conv, name_bn and name, otherwise automatic names.
template <class T>
KerasTensor<T> inception_v3_conv2d_bn(Graph<T>& g, const KerasTensor<T>& x, int filters, int num_row, int num_col,
                                      const std::string& padding = "same", int stride = 1, const std::string& name = {}) {
  const json conv_name = name.empty() ? json(nullptr) : json(name + "_conv");
  const json bn_name = name.empty() ? json(nullptr) : json(name + "_bn");
  const json ac_name = name.empty() ? json(nullptr) : json(name);
  auto y = g("Conv2D", {{"filters", filters}, {"kernel_size", {num_row, num_col}}, {"strides", {stride, stride}}, {"padding", padding},
                        {"use_bias", false}, {"name", conv_name}}, x);
  y = g("BatchNormalization", {{"axis", 3}, {"scale", false}, {"name", bn_name}}, y);
  return g("Activation", {{"activation", "relu"}, {"name", ac_name}}, y);
}

/// keras inception_v3.InceptionV3.
template <class T>
std::shared_ptr<Model<T>> inception_v3(const Options& o) {
  const std::string family = "InceptionV3";
  validate_options(o, family,
                   {"https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
                    "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
                    "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"});
  Graph<T> g;
  auto img_input = g.input(obtain_input_shape(o.input_shape, 299, 75, family));
  const int channel_axis = 3;
  auto cbn = [&](const KerasTensor<T>& in, int f, int r, int c, const std::string& padding = "same", int stride = 1) {
    return inception_v3_conv2d_bn(g, in, f, r, c, padding, stride);
  };
  auto avg_pool_same = [&](const KerasTensor<T>& in) {
    return g("AveragePooling2D", {{"pool_size", {3, 3}}, {"strides", {1, 1}}, {"padding", "same"}}, in);
  };
  auto max_pool = [&](const KerasTensor<T>& in) { return g("MaxPooling2D", {{"pool_size", {3, 3}}, {"strides", {2, 2}}}, in); };
  auto concat = [&](const std::vector<KerasTensor<T>>& xs, const json& name) {
    return g("Concatenate", {{"axis", channel_axis}, {"name", name}}, xs);
  };

  auto x = cbn(img_input, 32, 3, 3, "valid", 2);
  x = cbn(x, 32, 3, 3, "valid");
  x = cbn(x, 64, 3, 3);
  x = max_pool(x);

  x = cbn(x, 80, 1, 1, "valid");
  x = cbn(x, 192, 3, 3, "valid");
  x = max_pool(x);

  // mixed 0, 1, 2: 35 x 35 x 256, 288, 288
  for (int i = 0; i < 3; ++i) {
    auto branch1x1 = cbn(x, 64, 1, 1);

    auto branch5x5 = cbn(x, 48, 1, 1);
    branch5x5 = cbn(branch5x5, 64, 5, 5);

    auto branch3x3dbl = cbn(x, 64, 1, 1);
    branch3x3dbl = cbn(branch3x3dbl, 96, 3, 3);
    branch3x3dbl = cbn(branch3x3dbl, 96, 3, 3);

    auto branch_pool = avg_pool_same(x);
    branch_pool = cbn(branch_pool, i == 0 ? 32 : 64, 1, 1);
    x = concat({branch1x1, branch5x5, branch3x3dbl, branch_pool}, "mixed" + std::to_string(i));
  }

  // mixed 3: 17 x 17 x 768
  {
    auto branch3x3 = cbn(x, 384, 3, 3, "valid", 2);

    auto branch3x3dbl = cbn(x, 64, 1, 1);
    branch3x3dbl = cbn(branch3x3dbl, 96, 3, 3);
    branch3x3dbl = cbn(branch3x3dbl, 96, 3, 3, "valid", 2);

    auto branch_pool = max_pool(x);
    x = concat({branch3x3, branch3x3dbl, branch_pool}, "mixed3");
  }

  // mixed 4 (128), 5, 6 (160), 7 (192): 17 x 17 x 768
  for (int i = 0; i < 4; ++i) {
    const int f = i == 0 ? 128 : i == 3 ? 192 : 160;
    auto branch1x1 = cbn(x, 192, 1, 1);

    auto branch7x7 = cbn(x, f, 1, 1);
    branch7x7 = cbn(branch7x7, f, 1, 7);
    branch7x7 = cbn(branch7x7, 192, 7, 1);

    auto branch7x7dbl = cbn(x, f, 1, 1);
    branch7x7dbl = cbn(branch7x7dbl, f, 7, 1);
    branch7x7dbl = cbn(branch7x7dbl, f, 1, 7);
    branch7x7dbl = cbn(branch7x7dbl, f, 7, 1);
    branch7x7dbl = cbn(branch7x7dbl, 192, 1, 7);

    auto branch_pool = avg_pool_same(x);
    branch_pool = cbn(branch_pool, 192, 1, 1);
    x = concat({branch1x1, branch7x7, branch7x7dbl, branch_pool}, "mixed" + std::to_string(4 + i));
  }

  // mixed 8: 8 x 8 x 1280
  {
    auto branch3x3 = cbn(x, 192, 1, 1);
    branch3x3 = cbn(branch3x3, 320, 3, 3, "valid", 2);

    auto branch7x7x3 = cbn(x, 192, 1, 1);
    branch7x7x3 = cbn(branch7x7x3, 192, 1, 7);
    branch7x7x3 = cbn(branch7x7x3, 192, 7, 1);
    branch7x7x3 = cbn(branch7x7x3, 192, 3, 3, "valid", 2);

    auto branch_pool = max_pool(x);
    x = concat({branch3x3, branch7x7x3, branch_pool}, "mixed8");
  }

  // mixed 9, 10: 8 x 8 x 2048
  for (int i = 0; i < 2; ++i) {
    auto branch1x1 = cbn(x, 320, 1, 1);

    auto branch3x3 = cbn(x, 384, 1, 1);
    auto branch3x3_1 = cbn(branch3x3, 384, 1, 3);
    auto branch3x3_2 = cbn(branch3x3, 384, 3, 1);
    branch3x3 = concat({branch3x3_1, branch3x3_2}, "mixed9_" + std::to_string(i));

    auto branch3x3dbl = cbn(x, 448, 1, 1);
    branch3x3dbl = cbn(branch3x3dbl, 384, 3, 3);
    auto branch3x3dbl_1 = cbn(branch3x3dbl, 384, 1, 3);
    auto branch3x3dbl_2 = cbn(branch3x3dbl, 384, 3, 1);
    branch3x3dbl = concat({branch3x3dbl_1, branch3x3dbl_2}, nullptr);

    auto branch_pool = avg_pool_same(x);
    branch_pool = cbn(branch_pool, 192, 1, 1);
    x = concat({branch1x1, branch3x3, branch3x3dbl, branch_pool}, "mixed" + std::to_string(9 + i));
  }

  x = pooled_head(g, x, o);
  return finish(img_input, x, o, "inception_v3");
}

}  // namespace detail

/// keras.applications.InceptionV3 (default input 299x299x3, at least 75x75). Input: RGB images
/// preprocessed with preprocess_input ("tf": scaled to [-1, 1]).
template <class T = float>
std::shared_ptr<Model<T>> InceptionV3(const Options& o = {}) {
  return detail::inception_v3<T>(o);
}

}  // namespace applications
}  // namespace graft
