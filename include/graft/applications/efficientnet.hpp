// graft — EfficientNet, keras.applications.efficientnet. SKELETON: replaced by the real builder this session.
#pragma once

#include "graft/applications/builder.hpp"

namespace graft {
namespace applications {

template <class T = float>
std::shared_ptr<Model<T>> EfficientNetB0(const Options& o = {}) {
  (void)o;
  throw unsupported_error("EfficientNetB0: SKELETON (being written this session)");
}

template <class T = float>
std::shared_ptr<Model<T>> EfficientNetB1(const Options& o = {}) {
  (void)o;
  throw unsupported_error("EfficientNetB1: SKELETON (being written this session)");
}

template <class T = float>
std::shared_ptr<Model<T>> EfficientNetB2(const Options& o = {}) {
  (void)o;
  throw unsupported_error("EfficientNetB2: SKELETON (being written this session)");
}

template <class T = float>
std::shared_ptr<Model<T>> EfficientNetB3(const Options& o = {}) {
  (void)o;
  throw unsupported_error("EfficientNetB3: SKELETON (being written this session)");
}

template <class T = float>
std::shared_ptr<Model<T>> EfficientNetB4(const Options& o = {}) {
  (void)o;
  throw unsupported_error("EfficientNetB4: SKELETON (being written this session)");
}

template <class T = float>
std::shared_ptr<Model<T>> EfficientNetB5(const Options& o = {}) {
  (void)o;
  throw unsupported_error("EfficientNetB5: SKELETON (being written this session)");
}

template <class T = float>
std::shared_ptr<Model<T>> EfficientNetB6(const Options& o = {}) {
  (void)o;
  throw unsupported_error("EfficientNetB6: SKELETON (being written this session)");
}

template <class T = float>
std::shared_ptr<Model<T>> EfficientNetB7(const Options& o = {}) {
  (void)o;
  throw unsupported_error("EfficientNetB7: SKELETON (being written this session)");
}

}  // namespace applications
}  // namespace graft
