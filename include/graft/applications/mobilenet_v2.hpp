// graft — MobileNetV2, keras.applications.mobilenet_v2. SKELETON: replaced by the real builder this session.
#pragma once

#include "graft/applications/builder.hpp"

namespace graft {
namespace applications {

template <class T = float>
std::shared_ptr<Model<T>> MobileNetV2(const Options& o = {}) {
  (void)o;
  throw unsupported_error("MobileNetV2: SKELETON (being written this session)");
}

}  // namespace applications
}  // namespace graft
