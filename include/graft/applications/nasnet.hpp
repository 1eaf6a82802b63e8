// graft — NASNet, keras.applications.nasnet. SKELETON: replaced by the real builder this session.
#pragma once

#include "graft/applications/builder.hpp"

namespace graft {
namespace applications {

template <class T = float>
std::shared_ptr<Model<T>> NASNetMobile(const Options& o = {}) {
  (void)o;
  throw unsupported_error("NASNetMobile: SKELETON (being written this session)");
}

template <class T = float>
std::shared_ptr<Model<T>> NASNetLarge(const Options& o = {}) {
  (void)o;
  throw unsupported_error("NASNetLarge: SKELETON (being written this session)");
}

}  // namespace applications
}  // namespace graft
