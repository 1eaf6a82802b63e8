// graft — Rescaling: y = x * scale + offset. scale and offset are scalars or per-channel lists
// (broadcast along the last axis, as numpy broadcasting of a (C,) array does).
#pragma once

#include "graft/layers/conv_common.hpp"

namespace graft {

template <class T = float>
class Rescaling : public UnaryLayer<T> {
 public:
  bool parallel_rows(bool) const override { return true; }
  explicit Rescaling(double scale, double offset = 0.0, std::string name = {})
      : Rescaling(std::vector<double>{scale}, std::vector<double>{offset}, std::move(name)) {}
  Rescaling(std::vector<double> scale, std::vector<double> offset, std::string name = {})
      : UnaryLayer<T>(std::move(name)), scale_(std::move(scale)), offset_(std::move(offset)) {
    if (scale_.empty() || offset_.empty()) throw value_error("Rescaling: scale and offset need at least one value");
    sc_.assign(scale_.begin(), scale_.end());
    of_.assign(offset_.begin(), offset_.end());
  }
  std::string class_name() const override { return "Rescaling"; }
  const std::vector<double>& scale() const { return scale_; }
  const std::vector<double>& offset() const { return offset_; }

  Shape output_shape(const Shape& in) const override {
    if (in.empty()) throw shape_error(detail::cat(this->where(), ": input needs a batch dimension"));
    for (const auto* v : {&scale_, &offset_})
      if (v->size() > 1 && (in.size() < 2 || (in.back() >= 0 && in.back() != static_cast<Index>(v->size()))))
        throw shape_error(detail::cat(this->where(), ": ", v->size(), " per-channel values do not fit inputs of shape ",
                                      shape_str(in)));
    return in;
  }
  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState*, bool) override {
    const Index C = x.rank() > 1 ? x.shape().back() : 1;
    check(C, x);
    y.resize(x.shape());
    const T* xd = x.data();
    T* yd = y.data();
    const bool ps = sc_.size() > 1, po = of_.size() > 1;
    if (!ps && !po) {
      const T s = sc_[0], o = of_[0];
      for (Index i = 0; i < x.size(); ++i) yd[i] = xd[i] * s + o;
      return;
    }
    for (Index i = 0; i < x.size(); i += C)
      for (Index c = 0; c < C; ++c) yd[i + c] = xd[i + c] * sc_[ps ? static_cast<size_t>(c) : 0] + of_[po ? static_cast<size_t>(c) : 0];
  }
  void backward1(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx, CallState*) override {
    if (!dx) return;
    const Index C = x.rank() > 1 ? x.shape().back() : 1;
    dx->resize(x.shape());
    const T* g = dy.data();
    T* d = dx->data();
    if (sc_.size() == 1) {
      const T s = sc_[0];
      for (Index i = 0; i < x.size(); ++i) d[i] = g[i] * s;
      return;
    }
    for (Index i = 0; i < x.size(); i += C)
      for (Index c = 0; c < C; ++c) d[i + c] = g[i + c] * sc_[static_cast<size_t>(c)];
  }
  json get_config() const override {
    json c = this->base_config();
    // a number or list read from a config is written back as it was (Keras echoes its arguments:
    // offset=-1 stays the integer -1, as in EfficientNetV2's Rescaling(scale=1/128, offset=-1))
    c["scale"] = !scale_given_.is_null() ? scale_given_ : scale_.size() == 1 ? json(scale_[0]) : json(scale_);
    c["offset"] = !offset_given_.is_null() ? offset_given_ : offset_.size() == 1 ? json(offset_[0]) : json(offset_);
    return c;
  }
  /// scale / offset: a number, a list (nested lists whose leading dimensions are 1), or Keras 3's
  /// serialized numpy array {"class_name": "__numpy__", "config": {"value": ...}}.
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "Rescaling"));
    if (!c.has("scale")) throw format_error(detail::cat(c.where(), ": config has no 'scale'"));
    auto sc = values(c, "scale");
    auto of = c.has("offset") ? values(c, "offset") : std::vector<double>{0.0};
    auto l = std::make_shared<Rescaling>(sc, of);
    auto given = [&](const char* k) { return c.has(k) && (c.raw()[k].is_number() || c.raw()[k].is_array()) ? c.raw()[k] : json(); };
    l->scale_given_ = given("scale");
    l->offset_given_ = given("offset");
    apply_base_config(*l, c);
    return l;
  }

 private:
  static std::vector<double> values(const Config& c, const std::string& key) {
    const json* v = &c.raw()[key];
    if (v->is_object() && v->contains("config") && (*v)["config"].is_object() && (*v)["config"].contains("value"))
      v = &(*v)["config"]["value"];
    std::vector<double> r;
    if (v->is_number()) return {v->get<double>()};
    // nested lists: every level but the last must have length 1
    while (v->is_array() && v->size() == 1 && (*v)[0].is_array()) v = &(*v)[0];
    if (v->is_array() && !v->empty()) {
      for (const auto& e : *v) {
        if (!e.is_number())
          throw unsupported_error(detail::cat(c.where(), ": '", key, "' = ", c.raw()[key].dump(),
                                              " is not a scalar or a per-channel list"));
        r.push_back(e.get<double>());
      }
      return r;
    }
    throw format_error(detail::cat(c.where(), ": cannot read '", key, "' = ", c.raw()[key].dump()));
  }
  void check(Index C, const Tensor<T>& x) const {
    if ((sc_.size() > 1 && static_cast<Index>(sc_.size()) != C) || (of_.size() > 1 && static_cast<Index>(of_.size()) != C))
      throw shape_error(detail::cat(this->where(), ": per-channel scale/offset do not fit inputs of shape ", shape_str(x.shape())));
  }
  std::vector<double> scale_, offset_;
  json scale_given_, offset_given_;  // as in the config the layer was made from (null: made in C++)
  std::vector<T> sc_, of_;
};

}  // namespace graft
