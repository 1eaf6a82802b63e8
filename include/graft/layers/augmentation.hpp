// graft — Keras 3's image preprocessing and augmentation layers (RandomFlip, RandomRotation,
// RandomZoom, RandomTranslation, RandomContrast, RandomBrightness, RandomCrop, Resizing,
// CenterCrop), and their registration under Keras class names. Rescaling and Normalization live
// in their own files.
#pragma once

#include "graft/layers/random_affine.hpp"
#include "graft/layers/random_color.hpp"
#include "graft/layers/random_flip.hpp"
#include "graft/layers/resizing.hpp"

namespace graft {
namespace detail {

template <class T, class Add>
void register_augmentation_layers(Add& add) {
  add("RandomFlip", [](const json& c) { return RandomFlip<T>::from_config(c); });
  add("RandomRotation", [](const json& c) { return RandomRotation<T>::from_config(c); });
  add("RandomZoom", [](const json& c) { return RandomZoom<T>::from_config(c); });
  add("RandomTranslation", [](const json& c) { return RandomTranslation<T>::from_config(c); });
  add("RandomContrast", [](const json& c) { return RandomContrast<T>::from_config(c); });
  add("RandomBrightness", [](const json& c) { return RandomBrightness<T>::from_config(c); });
  add("RandomCrop", [](const json& c) { return RandomCrop<T>::from_config(c); });
  add("Resizing", [](const json& c) { return Resizing<T>::from_config(c); });
  add("CenterCrop", [](const json& c) { return CenterCrop<T>::from_config(c); });
}

}  // namespace detail
}  // namespace graft
