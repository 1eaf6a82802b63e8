// graft — EfficientNetV2, keras.applications.efficientnet_v2. SKELETON: replaced by the real builder this session.
#pragma once

#include "graft/applications/builder.hpp"

namespace graft {
namespace applications {

template <class T = float>
std::shared_ptr<Model<T>> EfficientNetV2B0(const Options& o = {}) {
  (void)o;
  throw unsupported_error("EfficientNetV2B0: SKELETON (being written this session)");
}

template <class T = float>
std::shared_ptr<Model<T>> EfficientNetV2B1(const Options& o = {}) {
  (void)o;
  throw unsupported_error("EfficientNetV2B1: SKELETON (being written this session)");
}

template <class T = float>
std::shared_ptr<Model<T>> EfficientNetV2B2(const Options& o = {}) {
  (void)o;
  throw unsupported_error("EfficientNetV2B2: SKELETON (being written this session)");
}

template <class T = float>
std::shared_ptr<Model<T>> EfficientNetV2B3(const Options& o = {}) {
  (void)o;
  throw unsupported_error("EfficientNetV2B3: SKELETON (being written this session)");
}

template <class T = float>
std::shared_ptr<Model<T>> EfficientNetV2S(const Options& o = {}) {
  (void)o;
  throw unsupported_error("EfficientNetV2S: SKELETON (being written this session)");
}

template <class T = float>
std::shared_ptr<Model<T>> EfficientNetV2M(const Options& o = {}) {
  (void)o;
  throw unsupported_error("EfficientNetV2M: SKELETON (being written this session)");
}

template <class T = float>
std::shared_ptr<Model<T>> EfficientNetV2L(const Options& o = {}) {
  (void)o;
  throw unsupported_error("EfficientNetV2L: SKELETON (being written this session)");
}

}  // namespace applications
}  // namespace graft
