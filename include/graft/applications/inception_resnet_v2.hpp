// graft — InceptionResNetV2, keras.applications.inception_resnet_v2. SKELETON: replaced by the real builder this session.
#pragma once

#include "graft/applications/builder.hpp"

namespace graft {
namespace applications {

template <class T = float>
std::shared_ptr<Model<T>> InceptionResNetV2(const Options& o = {}) {
  (void)o;
  throw unsupported_error("InceptionResNetV2: SKELETON (being written this session)");
}

}  // namespace applications
}  // namespace graft
