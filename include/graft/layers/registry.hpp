// graft — the table from Keras class_name to a factory. Users register their own layers here.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "graft/layers/builtin.hpp"
#include "graft/layers/layer.hpp"

namespace graft {

/// Keras class_name -> factory building the layer from its config. One registry per scalar type.
template <class T>
class LayerRegistry {
 public:
  using Factory = std::function<std::shared_ptr<Layer<T>>(const json& config)>;

  static LayerRegistry& instance() {
    static LayerRegistry r;
    return r;
  }
  /// Add or replace a factory.
  void add(const std::string& class_name, Factory f) {
    std::lock_guard<std::mutex> lock(m_);
    f_[class_name] = std::move(f);
    builtin_.erase(class_name);
  }
  /// A class graft itself provides (Keras' own layers), not one a user registered or replaced.
  bool is_builtin(const std::string& class_name) const {
    std::lock_guard<std::mutex> lock(m_);
    return builtin_.count(class_name) != 0;
  }
  bool contains(const std::string& class_name) const {
    std::lock_guard<std::mutex> lock(m_);
    return f_.count(class_name) != 0;
  }
  /// Build a layer; unsupported_error naming the layer and class when the class is unknown.
  std::shared_ptr<Layer<T>> create(const std::string& class_name, const json& config) const {
    Factory f;
    {
      std::lock_guard<std::mutex> lock(m_);
      auto it = f_.find(class_name);
      if (it != f_.end()) f = it->second;
    }
    if (!f) {
      std::string name = config.is_object() && config.contains("name") && config["name"].is_string()
                             ? config["name"].get<std::string>() : "?";
      throw unsupported_error(detail::cat("layer '", name, "' (", class_name,
                                          "): this layer class is not supported (register a custom layer with graft::register_layer)"));
    }
    return f(config);
  }
  std::vector<std::string> class_names() const {
    std::lock_guard<std::mutex> lock(m_);
    std::vector<std::string> r;
    for (auto& kv : f_) r.push_back(kv.first);
    return r;
  }

 private:
  LayerRegistry() {
    detail::register_builtin_layers<T>([this](const std::string& n, Factory f) {
      f_[n] = std::move(f);
      builtin_.insert(n);
    });
  }
  mutable std::mutex m_;
  std::map<std::string, Factory> f_;
  std::set<std::string> builtin_;
};

/// Register a custom layer class template L (with `static std::shared_ptr<Layer<T>>
/// from_config(const json&)`) for float and double under a Keras class_name.
template <template <class> class L>
void register_layer(const std::string& class_name) {
  LayerRegistry<float>::instance().add(class_name, [](const json& c) { return L<float>::from_config(c); });
  LayerRegistry<double>::instance().add(class_name, [](const json& c) { return L<double>::from_config(c); });
}

}  // namespace graft
