// graft — typed access to a Keras layer config with errors that name the layer and the key.
#pragma once

#include <nlohmann/json.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "graft/core/errors.hpp"
#include "graft/core/tensor.hpp"

namespace graft {

class Config {
 public:
  using json = nlohmann::json;

  Config(const json& j, std::string where) : j_(j), where_(std::move(where)) {
    if (!j_.is_object()) throw format_error(detail::cat(where_, ": config is not a JSON object"));
  }
  const std::string& where() const { return where_; }
  const json& raw() const { return j_; }

  bool has(const std::string& k) const { return j_.contains(k) && !j_[k].is_null(); }
  /// First key of `keys` that is present (aliases across Keras versions), or "".
  std::string pick(std::initializer_list<const char*> keys) const {
    for (const char* k : keys)
      if (has(k)) return k;
    return {};
  }
  const json& at(const std::string& k) const {
    if (!j_.contains(k)) throw format_error(detail::cat(where_, ": config has no '", k, "'"));
    return j_[k];
  }

  double get_double(const std::string& k, double d) const {
    if (!has(k)) return d;
    if (!j_[k].is_number()) throw format_error(detail::cat(where_, ": '", k, "' should be a number, got ", j_[k].dump()));
    return j_[k].get<double>();
  }
  double req_double(const std::string& k) const {
    if (!has(k)) throw format_error(detail::cat(where_, ": config has no '", k, "'"));
    return get_double(k, 0);
  }
  long long get_int(const std::string& k, long long d) const {
    if (!has(k)) return d;
    const json& v = j_[k];
    if (v.is_number_unsigned() && v.get<unsigned long long>() > 9223372036854775807ull)
      throw format_error(detail::cat(where_, ": '", k, "' is ", v.dump(), ", beyond 64-bit integers"));
    if (v.is_number_integer()) return v.get<long long>();
    // (a float outside the long long range would make the cast undefined)
    if (v.is_number_float() && std::fabs(v.get<double>()) < 9.2e18 &&
        v.get<double>() == static_cast<double>(static_cast<long long>(v.get<double>())))
      return static_cast<long long>(v.get<double>());
    throw format_error(detail::cat(where_, ": '", k, "' should be an integer, got ", v.dump()));
  }
  long long req_int(const std::string& k) const {
    if (!has(k)) throw format_error(detail::cat(where_, ": config has no '", k, "'"));
    return get_int(k, 0);
  }
  /// A size (units, filters, input_dim, ...): an integer in [0, limits().max_dimension].
  Index get_size(const std::string& k, long long d) const {
    return detail::check_size(get_int(k, d), detail::cat(where_, ": '", k, "'"));
  }
  Index req_size(const std::string& k) const {
    if (!has(k)) throw format_error(detail::cat(where_, ": config has no '", k, "'"));
    return get_size(k, 0);
  }
  bool get_bool(const std::string& k, bool d) const {
    if (!has(k)) return d;
    if (!j_[k].is_boolean()) throw format_error(detail::cat(where_, ": '", k, "' should be true/false, got ", j_[k].dump()));
    return j_[k].get<bool>();
  }
  std::string get_string(const std::string& k, const std::string& d) const {
    if (!has(k)) return d;
    if (!j_[k].is_string()) throw format_error(detail::cat(where_, ": '", k, "' should be a string, got ", j_[k].dump()));
    return j_[k].get<std::string>();
  }
  /// An int or a list of n ints (kernel_size: 3 -> (3, 3)).
  std::vector<Index> get_tuple(const std::string& k, size_t n, std::vector<Index> d) const {
    if (!has(k)) return d;
    const json& v = j_[k];
    std::vector<Index> r;
    if (v.is_number_integer()) {
      r.assign(n, v.get<Index>());
    } else if (v.is_array()) {
      for (const auto& e : v) {
        if (!e.is_number_integer()) throw format_error(detail::cat(where_, ": '", k, "' should hold integers, got ", v.dump()));
        r.push_back(e.get<Index>());
      }
      if (r.size() == 1 && n > 1) r.assign(n, r[0]);
    } else {
      throw format_error(detail::cat(where_, ": '", k, "' should be an integer or a list, got ", v.dump()));
    }
    if (r.size() != n) throw format_error(detail::cat(where_, ": '", k, "' should have ", n, " entries, got ", v.dump()));
    for (Index e : r)  // kernel sizes, strides, paddings: bounded, so shape arithmetic cannot overflow
      if (e > limits().max_dimension || e < -limits().max_dimension)
        throw value_error(detail::cat(where_, ": '", k, "' holds ", e, ", ", detail::limit_hint("max_dimension", limits().max_dimension)));
    return r;
  }
  /// An axis or a list of axes (Keras `axis=-1` or `axis=[1, 2]`); `d` when absent or null.
  std::vector<int> get_axes(const std::string& k, std::vector<int> d) const {
    if (!has(k)) return d;
    const json& a = j_[k];
    std::vector<int> r;
    if (a.is_number_integer()) {
      r.push_back(a.get<int>());
    } else if (a.is_array()) {
      for (const auto& e : a) {
        if (!e.is_number_integer()) throw format_error(detail::cat(where_, ": '", k, "' should hold integers, got ", a.dump()));
        r.push_back(e.get<int>());
      }
    } else {
      throw format_error(detail::cat(where_, ": '", k, "' should be an integer or a list, got ", a.dump()));
    }
    return r;
  }
  /// A shape list with nulls allowed (-1).
  Shape get_shape(const std::string& k) const {
    const json& v = at(k);
    if (!v.is_array()) throw format_error(detail::cat(where_, ": '", k, "' should be a list, got ", v.dump()));
    Shape s;
    for (const auto& e : v) {
      if (e.is_null()) s.push_back(-1);
      else if (e.is_number_integer() && e.get<Index>() >= 0) s.push_back(e.get<Index>());
      else throw format_error(detail::cat(where_, ": '", k, "' holds ", e.dump(), ", not a dimension"));
    }
    detail::check_symbolic_shape(s, detail::cat(where_, ": '", k, "'"));
    return s;
  }
  /// Reject a data_format other than channels_last (or Keras 1 dim_ordering 'th').
  void require_channels_last() const {
    std::string f = get_string("data_format", "channels_last");
    std::string o = get_string("dim_ordering", "tf");
    if (f != "channels_last" || (o != "tf" && o != "default"))
      throw unsupported_error(detail::cat(where_, ": only channels_last (NHWC) data is supported, the layer uses ",
                                          f != "channels_last" ? f : "dim_ordering '" + o + "'"));
  }

 private:
  const json& j_;
  std::string where_;
};

}  // namespace graft
