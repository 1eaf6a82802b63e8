// graft — ResNetV2 (He et al. 2016), keras.applications.resnet_v2. SKELETON: replaced by the real builder this session.
#pragma once

#include "graft/applications/builder.hpp"

namespace graft {
namespace applications {

template <class T = float>
std::shared_ptr<Model<T>> ResNet50V2(const Options& o = {}) {
  (void)o;
  throw unsupported_error("ResNet50V2: SKELETON (being written this session)");
}

template <class T = float>
std::shared_ptr<Model<T>> ResNet101V2(const Options& o = {}) {
  (void)o;
  throw unsupported_error("ResNet101V2: SKELETON (being written this session)");
}

template <class T = float>
std::shared_ptr<Model<T>> ResNet152V2(const Options& o = {}) {
  (void)o;
  throw unsupported_error("ResNet152V2: SKELETON (being written this session)");
}

}  // namespace applications
}  // namespace graft
