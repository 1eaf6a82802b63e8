// graft — every built-in layer, and their registration under Keras class names.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "graft/layers/activation.hpp"
#include "graft/layers/augmentation.hpp"
#include "graft/layers/dense.hpp"
#include "graft/layers/dropout.hpp"
#include "graft/layers/input_layer.hpp"
#include "graft/layers/layer.hpp"
#include "graft/layers/layer_normalization.hpp"
#include "graft/layers/merge.hpp"
#include "graft/layers/normalization.hpp"
#include "graft/layers/operation.hpp"
#include "graft/layers/reshape.hpp"
#include "graft/layers/scale.hpp"
// vision layers (convolutions, pooling, normalization, padding...)
#include "graft/layers/vision.hpp"

namespace graft {
namespace detail {

template <class T, class Add>
void register_builtin_layers(Add add) {
  add("InputLayer", [](const json& c) { return InputLayer<T>::from_config(c); });
  add("Dense", [](const json& c) { return Dense<T>::from_config(c); });
  add("Activation", [](const json& c) { return Activation<T>::from_config(c); });
  add("ReLU", [](const json& c) { return ReLU<T>::from_config(c); });
  add("LeakyReLU", [](const json& c) { return LeakyReLU<T>::from_config(c); });
  add("ELU", [](const json& c) { return ELU<T>::from_config(c); });
  add("PReLU", [](const json& c) { return PReLU<T>::from_config(c); });
  add("Softmax", [](const json& c) { return Softmax<T>::from_config(c); });
  add("Dropout", [](const json& c) { return Dropout<T>::from_config(c); });
  add("SpatialDropout1D", [](const json& c) { return SpatialDropout<T>::template from_config_rank<1>(c); });
  add("SpatialDropout2D", [](const json& c) { return SpatialDropout<T>::template from_config_rank<2>(c); });
  add("SpatialDropout3D", [](const json& c) { return SpatialDropout<T>::template from_config_rank<3>(c); });
  add("GaussianNoise", [](const json& c) { return GaussianNoise<T>::from_config(c); });
  add("GaussianDropout", [](const json& c) { return GaussianDropout<T>::from_config(c); });
  add("Flatten", [](const json& c) { return Flatten<T>::from_config(c); });
  add("Reshape", [](const json& c) { return Reshape<T>::from_config(c); });
  add("Add", [](const json& c) { return graft::Add<T>::from_config(c); });
  add("Subtract", [](const json& c) { return Subtract<T>::from_config(c); });
  add("Multiply", [](const json& c) { return Multiply<T>::from_config(c); });
  add("Average", [](const json& c) { return Average<T>::from_config(c); });
  add("Maximum", [](const json& c) { return Maximum<T>::from_config(c); });
  add("Minimum", [](const json& c) { return Minimum<T>::from_config(c); });
  add("Concatenate", [](const json& c) { return Concatenate<T>::from_config(c); });
  add("LayerNormalization", [](const json& c) { return LayerNormalization<T>::from_config(c); });
  add("Normalization", [](const json& c) { return Normalization<T>::from_config(c); });
  // the layers keras.applications defines for itself (ConvNeXt, InceptionResNetV2)
  add("LayerScale", [](const json& c) { return LayerScale<T>::from_config(c); });
  add("CustomScaleLayer", [](const json& c) { return CustomScaleLayer<T>::from_config(c); });
  register_vision_layers<T>(add);
  register_augmentation_layers<T>(add);  // RandomFlip, ..., Resizing, CenterCrop
}

}  // namespace detail
}  // namespace graft
