// graft — ConvNeXt, keras.applications.convnext. SKELETON: replaced by the real builder this session.
#pragma once

#include "graft/applications/builder.hpp"

namespace graft {
namespace applications {

template <class T = float>
std::shared_ptr<Model<T>> ConvNeXtTiny(const Options& o = {}) {
  (void)o;
  throw unsupported_error("ConvNeXtTiny: SKELETON (being written this session)");
}

template <class T = float>
std::shared_ptr<Model<T>> ConvNeXtSmall(const Options& o = {}) {
  (void)o;
  throw unsupported_error("ConvNeXtSmall: SKELETON (being written this session)");
}

template <class T = float>
std::shared_ptr<Model<T>> ConvNeXtBase(const Options& o = {}) {
  (void)o;
  throw unsupported_error("ConvNeXtBase: SKELETON (being written this session)");
}

template <class T = float>
std::shared_ptr<Model<T>> ConvNeXtLarge(const Options& o = {}) {
  (void)o;
  throw unsupported_error("ConvNeXtLarge: SKELETON (being written this session)");
}

template <class T = float>
std::shared_ptr<Model<T>> ConvNeXtXLarge(const Options& o = {}) {
  (void)o;
  throw unsupported_error("ConvNeXtXLarge: SKELETON (being written this session)");
}

}  // namespace applications
}  // namespace graft
