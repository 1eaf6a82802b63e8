// graft — vision layers (convolutions, pooling, normalization, padding, resizing, rescaling), Embedding,
// and their registration under Keras class names.
#pragma once

#include "graft/layers/batch_normalization.hpp"
#include "graft/layers/conv2d.hpp"
#include "graft/layers/depthwise_conv2d.hpp"
#include "graft/layers/embedding.hpp"
#include "graft/layers/layer.hpp"
#include "graft/layers/grouped_conv2d.hpp"
#include "graft/layers/padding.hpp"
#include "graft/layers/pooling.hpp"
#include "graft/layers/rescaling.hpp"
#include "graft/layers/separable_conv2d.hpp"
#include "graft/layers/upsampling.hpp"

namespace graft {
namespace detail {

template <class T, class Add>
void register_vision_layers(Add& add) {
  add("Conv2D", [](const json& c) { return conv2d_from_config<T>(c); });
  add("AtrousConvolution2D", [](const json& c) { return Conv2D<T>::from_config(c); });  // Keras 1 (atrous_rate)
  add("Conv1D", [](const json& c) { return Conv1D<T>::from_config(c); });
  add("AtrousConvolution1D", [](const json& c) { return Conv1D<T>::from_config(c); });  // Keras 1 (atrous_rate)
  add("DepthwiseConv2D", [](const json& c) { return DepthwiseConv2D<T>::from_config(c); });
  add("SeparableConv2D", [](const json& c) { return SeparableConv2D<T>::from_config(c); });
  add("MaxPooling2D", [](const json& c) { return MaxPooling2D<T>::from_config(c); });
  add("AveragePooling2D", [](const json& c) { return AveragePooling2D<T>::from_config(c); });
  add("MaxPooling1D", [](const json& c) { return MaxPooling1D<T>::from_config(c); });
  add("AveragePooling1D", [](const json& c) { return AveragePooling1D<T>::from_config(c); });
  add("GlobalAveragePooling2D", [](const json& c) { return GlobalAveragePooling2D<T>::from_config(c); });
  add("GlobalMaxPooling2D", [](const json& c) { return GlobalMaxPooling2D<T>::from_config(c); });
  add("GlobalAveragePooling1D", [](const json& c) { return GlobalAveragePooling1D<T>::from_config(c); });
  add("GlobalMaxPooling1D", [](const json& c) { return GlobalMaxPooling1D<T>::from_config(c); });
  add("BatchNormalization", [](const json& c) { return BatchNormalization<T>::from_config(c); });
  add("ZeroPadding2D", [](const json& c) { return ZeroPadding2D<T>::from_config(c); });
  add("Cropping2D", [](const json& c) { return Cropping2D<T>::from_config(c); });
  add("UpSampling2D", [](const json& c) { return UpSampling2D<T>::from_config(c); });
  add("Rescaling", [](const json& c) { return Rescaling<T>::from_config(c); });
  add("Embedding", [](const json& c) { return Embedding<T>::from_config(c); });
}

}  // namespace detail
}  // namespace graft
