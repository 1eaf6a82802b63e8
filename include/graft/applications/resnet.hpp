// graft — ResNet (He et al. 2015), keras.applications.resnet. SKELETON: replaced by the real builder this session.
#pragma once

#include "graft/applications/builder.hpp"

namespace graft {
namespace applications {

template <class T = float>
std::shared_ptr<Model<T>> ResNet50(const Options& o = {}) {
  (void)o;
  throw unsupported_error("ResNet50: SKELETON (being written this session)");
}

template <class T = float>
std::shared_ptr<Model<T>> ResNet101(const Options& o = {}) {
  (void)o;
  throw unsupported_error("ResNet101: SKELETON (being written this session)");
}

template <class T = float>
std::shared_ptr<Model<T>> ResNet152(const Options& o = {}) {
  (void)o;
  throw unsupported_error("ResNet152: SKELETON (being written this session)");
}

}  // namespace applications
}  // namespace graft
