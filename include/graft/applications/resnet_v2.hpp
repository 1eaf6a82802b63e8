// graft — ResNet50V2, ResNet101V2 and ResNet152V2 (keras.applications.resnet_v2, He et al. 2016):
// the ResNet builder of resnet.hpp with pre-activation residual stacks (preact=True).
#pragma once

#include "graft/applications/builder.hpp"
#include "graft/applications/resnet.hpp"

namespace graft {
namespace applications {

/// keras.applications.ResNet50V2. Input: RGB images preprocessed with preprocess_input("ResNet50V2", x) ("tf").
template <class T = float>
std::shared_ptr<Model<T>> ResNet50V2(const Options& o = {}) {
  return detail::resnet<T>(o, {3, 4, 6, 3}, true, true, "ResNet50V2", "resnet50v2");
}

/// keras.applications.ResNet101V2 ("tf" preprocessing).
template <class T = float>
std::shared_ptr<Model<T>> ResNet101V2(const Options& o = {}) {
  return detail::resnet<T>(o, {3, 4, 23, 3}, true, true, "ResNet101V2", "resnet101v2");
}

/// keras.applications.ResNet152V2 ("tf" preprocessing).
template <class T = float>
std::shared_ptr<Model<T>> ResNet152V2(const Options& o = {}) {
  return detail::resnet<T>(o, {3, 8, 36, 3}, true, true, "ResNet152V2", "resnet152v2");
}

}  // namespace applications
}  // namespace graft
