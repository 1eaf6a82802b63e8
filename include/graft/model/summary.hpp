// graft — Keras-style model summary.
#pragma once

#include <iomanip>
#include <ostream>
#include <sstream>
#include <string>
#include <unordered_map>

#include "graft/model/model.hpp"

namespace graft {

namespace detail {
inline std::string thousands(long long v) {
  std::string s = std::to_string(v < 0 ? -v : v), r;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) r += ',';
    r += s[i];
  }
  return v < 0 ? "-" + r : r;
}
inline std::string human_bytes(long long params) {
  double b = static_cast<double>(params) * 4.0;
  const char* units[] = {"B", "KB", "MB", "GB"};
  int u = 0;
  while (b >= 1024.0 && u < 3) {
    b /= 1024.0;
    ++u;
  }
  std::ostringstream os;
  os << std::fixed << std::setprecision(2) << b << " " << units[u];
  return os.str();
}
inline std::string pad(const std::string& s, size_t w) {
  // width in characters (UTF-8 continuation bytes do not count)
  size_t len = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++len;
  return len >= w ? s + " " : s + std::string(w - len, ' ');
}
}  // namespace detail

template <class T>
void Model<T>::summary(std::ostream& os) {
  const bool functional = class_name() != "Sequential";
  // each layer's first graph node, found in one pass (searching the graph for every layer made
  // the summary of a 100 000-layer model quadratic)
  std::unordered_map<const Layer<T>*, size_t> first_node;
  for (size_t n = 0; n < g_.size(); ++n) first_node.emplace(g_[n].layer, n);
  auto inbound = [&](const Layer<T>* l) {
    std::vector<std::string> r;
    auto it = first_node.find(l);
    if (it != first_node.end())
      for (auto& pr : g_[it->second].in) r.push_back(g_[static_cast<size_t>(pr.first)].layer->name());
    return r;
  };
  bool connected = false;
  if (functional)
    for (auto& l : layers_)
      if (inbound(l.get()).size() > 1) connected = true;
  const size_t w1 = 34, w2 = 26, w3 = 12, w4 = connected ? 28 : 0;
  const size_t width = w1 + w2 + w3 + w4;
  os << "Model: \"" << this->name() << "\"\n";
  os << std::string(width, '_') << "\n";
  os << detail::pad(" Layer (type)", w1) << detail::pad("Output Shape", w2) << detail::pad("Param #", w3);
  if (connected) os << "Connected to";
  os << "\n" << std::string(width, '=') << "\n";
  bool first = true;
  for (auto& l : layers_) {
    if (!first) os << "\n";
    first = false;
    std::string shape;
    auto it = first_node.find(l.get());
    std::vector<Shape> shapes = it == first_node.end() ? std::vector<Shape>{} : g_[it->second].node->output_shapes;
    for (size_t i = 0; i < shapes.size(); ++i) shape += (i ? ", " : "") + shape_str(shapes[i]);
    if (shapes.empty()) shape = "?";
    std::string line = detail::pad(" " + l->name() + " (" + l->class_name() + ")", w1) + detail::pad(shape, w2) +
                       detail::pad(detail::thousands(l->count_params()), w3);
    if (connected) {
      std::string c;
      for (auto& nm : inbound(l.get())) c += (c.empty() ? "" : ", ") + nm;
      line += c;
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    os << line << "\n";
  }
  long long total = 0, trainable = 0, frozen = 0;
  for (Param<T>* p : this->weights()) total += p->value.size();
  for (Param<T>* p : this->trainable_weights()) trainable += p->value.size();
  frozen = total - trainable;
  os << std::string(width, '=') << "\n";
  os << "Total params: " << detail::thousands(total) << " (" << detail::human_bytes(total) << ")\n";
  os << "Trainable params: " << detail::thousands(trainable) << " (" << detail::human_bytes(trainable) << ")\n";
  os << "Non-trainable params: " << detail::thousands(frozen) << " (" << detail::human_bytes(frozen) << ")\n";
  os << std::string(width, '_') << "\n";
}

}  // namespace graft
