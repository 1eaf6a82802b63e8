// graft — vision layers: registration hook (the layers themselves come with the vision work).
#pragma once

#include "graft/layers/layer.hpp"

namespace graft {
namespace detail {

template <class T, class Add>
void register_vision_layers(Add&) {}

}  // namespace detail
}  // namespace graft
