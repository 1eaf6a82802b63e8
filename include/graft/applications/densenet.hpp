// graft — DenseNet, keras.applications.densenet. SKELETON: replaced by the real builder this session.
#pragma once

#include "graft/applications/builder.hpp"

namespace graft {
namespace applications {

template <class T = float>
std::shared_ptr<Model<T>> DenseNet121(const Options& o = {}) {
  (void)o;
  throw unsupported_error("DenseNet121: SKELETON (being written this session)");
}

template <class T = float>
std::shared_ptr<Model<T>> DenseNet169(const Options& o = {}) {
  (void)o;
  throw unsupported_error("DenseNet169: SKELETON (being written this session)");
}

template <class T = float>
std::shared_ptr<Model<T>> DenseNet201(const Options& o = {}) {
  (void)o;
  throw unsupported_error("DenseNet201: SKELETON (being written this session)");
}

}  // namespace applications
}  // namespace graft
