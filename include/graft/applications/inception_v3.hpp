// graft — InceptionV3, keras.applications.inception_v3. SKELETON: replaced by the real builder this session.
#pragma once

#include "graft/applications/builder.hpp"

namespace graft {
namespace applications {

template <class T = float>
std::shared_ptr<Model<T>> InceptionV3(const Options& o = {}) {
  (void)o;
  throw unsupported_error("InceptionV3: SKELETON (being written this session)");
}

}  // namespace applications
}  // namespace graft
