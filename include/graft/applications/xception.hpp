// graft — Xception, keras.applications.xception. SKELETON: replaced by the real builder this session.
#pragma once

#include "graft/applications/builder.hpp"

namespace graft {
namespace applications {

template <class T = float>
std::shared_ptr<Model<T>> Xception(const Options& o = {}) {
  (void)o;
  throw unsupported_error("Xception: SKELETON (being written this session)");
}

}  // namespace applications
}  // namespace graft
