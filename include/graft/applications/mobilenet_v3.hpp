// graft — MobileNetV3, keras.applications.mobilenet_v3. SKELETON: replaced by the real builder this session.
#pragma once

#include "graft/applications/builder.hpp"

namespace graft {
namespace applications {

template <class T = float>
std::shared_ptr<Model<T>> MobileNetV3Small(const Options& o = {}) {
  (void)o;
  throw unsupported_error("MobileNetV3Small: SKELETON (being written this session)");
}

template <class T = float>
std::shared_ptr<Model<T>> MobileNetV3Large(const Options& o = {}) {
  (void)o;
  throw unsupported_error("MobileNetV3Large: SKELETON (being written this session)");
}

}  // namespace applications
}  // namespace graft
