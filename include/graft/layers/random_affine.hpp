// graft — Keras 3's affine augmentation layers: RandomRotation, RandomZoom, RandomTranslation.
// In training each image gets its own random transform, built with Keras' formulas (the
// rotation about the centre ((W-1)/2, (H-1)/2) of _compute_affine_matrix, the zoom matrix of
// _get_zoom_matrix, the translation matrix of _get_translation_matrix), and is resampled by
// image::affine_transform (fill_mode reflect / wrap / constant / nearest, interpolation bilinear /
// nearest); identity in inference. The backward pass scatters the gradient back through the
// same sampling weights.
#pragma once

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "graft/layers/image_preprocessing.hpp"

namespace graft {

/// What the three affine layers share: fill mode, fill value, interpolation, and the resampling.
template <class T>
class RandomAffineLayer : public RandomImageLayer<T> {
 public:
  using State = typename RandomImageLayer<T>::State;

  image::FillMode fill_mode() const { return fill_mode_; }
  image::Interpolation interpolation() const { return interpolation_; }
  double fill_value() const { return fill_value_.get<double>(); }

  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState* st, bool training) override {
    this->check_images(x.shape());
    auto* s = static_cast<State*>(st);
    s->active = training;
    if (!training) return this->pass_through(x, y);
    const Index N = x.dim(0), H = x.dim(1), W = x.dim(2);
    s->transforms.resize(static_cast<size_t>(N));
    draw_transforms(H, W, s->transforms);
    image::affine_transform(x, s->transforms, interpolation_, fill_mode_, static_cast<T>(fill_value()), y);
  }
  void backward1(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx, CallState* st) override {
    if (!dx) return;
    auto* s = static_cast<State*>(st);
    if (!s->active) return this->pass_through(dy, *dx);
    (void)x;
    image::affine_transform_backward(dy, s->transforms, interpolation_, fill_mode_, *dx);
  }

 protected:
  RandomAffineLayer(const std::string& who, const std::string& fill_mode, const std::string& interpolation, double fill_value,
                    long long seed, std::string name)
      : RandomImageLayer<T>(std::move(name), seed),
        fill_mode_(image::parse_fill_mode(fill_mode, who)),
        interpolation_(image::parse_affine_interpolation(interpolation, who)),
        fill_value_(fill_value) {
    if (!std::isfinite(fill_value)) throw value_error(detail::cat(who, ": fill_value must be a finite number"));
  }
  /// One transform per image of an H x W batch (transforms.size() images).
  virtual void draw_transforms(Index H, Index W, std::vector<image::Transform<T>>& transforms) = 0;

  /// fill_mode, interpolation, fill_value, seed as Keras writes them.
  void affine_config(json& c) const {
    c["fill_mode"] = image::fill_mode_name(fill_mode_);
    c["fill_value"] = fill_value_;
    c["interpolation"] = image::interpolation_name(interpolation_);
    c["seed"] = this->seed_json();
  }
  /// Read the keys affine_config writes (fill_value kept as written: 0 stays 0, 0.0 stays 0.0).
  static void apply_affine_config(RandomAffineLayer& l, const Config& c) {
    l.fill_value_ = detail::config_number(c, "fill_value", json(0.0));
    RandomImageLayer<T>::apply_random_config(l, c);
  }
  static std::string config_fill_mode(const Config& c) { return c.get_string("fill_mode", "reflect"); }
  static std::string config_interpolation(const Config& c) { return c.get_string("interpolation", "bilinear"); }

  image::FillMode fill_mode_;
  image::Interpolation interpolation_;
  json fill_value_;
};

/// keras.layers.RandomRotation(factor): rotation by an angle drawn uniformly in
/// [lower * 360, upper * 360] degrees (factor f: [-f, f]; (lower, upper) sorted, each in [-1, 1]);
/// a positive angle turns the image counter-clockwise.
template <class T = float>
class RandomRotation : public RandomAffineLayer<T> {
 public:
  explicit RandomRotation(const ImageFactor& factor, const std::string& fill_mode = "reflect",
                          const std::string& interpolation = "bilinear", long long seed = -1, double fill_value = 0.0,
                          std::string name = {})
      : RandomAffineLayer<T>("RandomRotation", fill_mode, interpolation, fill_value, seed, std::move(name)) {
    factor_ = detail::base_factor(factor.value, json(-1), json(1), "RandomRotation");
  }
  std::string class_name() const override { return "RandomRotation"; }
  /// (lower, upper), fractions of a full turn.
  std::pair<double, double> factor() const { return {factor_.first.get<double>(), factor_.second.get<double>()}; }

  json get_config() const override {
    json c = this->image_config();
    c["factor"] = json::array({factor_.first, factor_.second});
    this->affine_config(c);
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "RandomRotation"));
    std::shared_ptr<RandomRotation> l;
    try {
      l = std::make_shared<RandomRotation>(ImageFactor::from_json(c.has("factor") ? c.raw()["factor"] : json()),
                                           RandomAffineLayer<T>::config_fill_mode(c), RandomAffineLayer<T>::config_interpolation(c),
                                           RandomImageLayer<T>::config_seed(c));
    } catch (const error& e) {
      rethrow_with_prefix(e, c.where());
    }
    RandomAffineLayer<T>::apply_affine_config(*l, c);
    return l;
  }

 protected:
  void draw_transforms(Index H, Index W, std::vector<image::Transform<T>>& tr) override {
    const double lower = factor_.first.get<double>() * 360.0, upper = factor_.second.get<double>() * 360.0;
    const T deg2rad = static_cast<T>(3.14159265358979323846 / 180.0);
    const T cx = T(0.5) * (static_cast<T>(W) - T(1)), cy = T(0.5) * (static_cast<T>(H) - T(1));
    for (auto& t : tr) {
      const T angle = this->uniform(lower, upper) * deg2rad;
      const T c = std::cos(angle), s = std::sin(angle);
      // _compute_affine_matrix with scale 1, no shear, no translation
      t = {c, -s, cx - cx * c - cy * (-s), s, c, cy - cx * s - cy * c, T(0), T(0)};
    }
  }

 private:
  std::pair<json, json> factor_;
};

/// RandomZoom and RandomTranslation: a height_factor and a width_factor, echoed in the config.
template <class T>
class RandomAxesLayer : public RandomAffineLayer<T> {
 public:
  std::pair<double, double> height_factor() const { return height_; }
  /// The width range (RandomZoom without width_factor: the height's, drawn once for both).
  std::pair<double, double> width_factor() const { return width_given_.is_null() ? height_ : width_; }

  json get_config() const override {
    json c = this->image_config();
    c["height_factor"] = height_given_;
    c["width_factor"] = width_given_;
    this->affine_config(c);
    return c;
  }

 protected:
  /// zoom: factors in (-1, 1] and width_factor optional; else (translation) in [-1, 1], both needed.
  RandomAxesLayer(const char* who, bool zoom, const ImageFactor& height_factor, const ImageFactor& width_factor,
                  const std::string& fill_mode, const std::string& interpolation, long long seed, double fill_value, std::string name)
      : RandomAffineLayer<T>(who, fill_mode, interpolation, fill_value, seed, std::move(name)),
        height_given_(height_factor.value), width_given_(width_factor.value) {
    height_ = detail::range_factor(height_factor.value, "height_factor", zoom, who);
    if (!zoom || width_factor.given()) width_ = detail::range_factor(width_factor.value, "width_factor", zoom, who);
  }
  template <class L>
  static std::shared_ptr<Layer<T>> axes_from_config(const json& j, const char* cls, bool width_required) {
    Config c(j, config_where(j, cls));
    for (const char* k : {"height_factor", "width_factor"})
      if (!c.has(k) && (width_required || std::string(k) == "height_factor"))
        throw format_error(detail::cat(c.where(), ": config has no '", k, "'"));
    std::shared_ptr<L> l;
    try {
      l = std::make_shared<L>(ImageFactor::from_json(c.raw()["height_factor"]),
                              ImageFactor::from_json(c.has("width_factor") ? c.raw()["width_factor"] : json()),
                              RandomAffineLayer<T>::config_fill_mode(c), RandomAffineLayer<T>::config_interpolation(c),
                              RandomImageLayer<T>::config_seed(c));
    } catch (const error& e) {
      rethrow_with_prefix(e, c.where());
    }
    RandomAffineLayer<T>::apply_affine_config(*l, c);
    return l;
  }
  json height_given_, width_given_;
  std::pair<double, double> height_{0, 0}, width_{0, 0};
};

/// keras.layers.RandomZoom(height_factor, width_factor=None): each axis scaled by 1 + a draw in
/// [lower, upper] (a positive factor zooms out, a negative one in; each in (-1, 1]); without
/// width_factor both axes take the height draw (the aspect ratio is kept).
template <class T = float>
class RandomZoom : public RandomAxesLayer<T> {
 public:
  explicit RandomZoom(const ImageFactor& height_factor, const ImageFactor& width_factor = {}, const std::string& fill_mode = "reflect",
                      const std::string& interpolation = "bilinear", long long seed = -1, double fill_value = 0.0, std::string name = {})
      : RandomAxesLayer<T>("RandomZoom", true, height_factor, width_factor, fill_mode, interpolation, seed, fill_value, std::move(name)) {}
  std::string class_name() const override { return "RandomZoom"; }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    return RandomAxesLayer<T>::template axes_from_config<RandomZoom>(j, "RandomZoom", false);
  }

 protected:
  void draw_transforms(Index H, Index W, std::vector<image::Transform<T>>& tr) override {
    zh_.resize(tr.size());
    for (auto& z : zh_) z = this->uniform(1.0 + this->height_.first, 1.0 + this->height_.second);
    zw_ = zh_;
    if (!this->width_given_.is_null())
      for (auto& z : zw_) z = this->uniform(1.0 + this->width_.first, 1.0 + this->width_.second);
    const T hx = (static_cast<T>(W) - T(1)) / T(2), hy = (static_cast<T>(H) - T(1)) / T(2);
    for (size_t b = 0; b < tr.size(); ++b) {
      const T zx = zw_[b], zy = zh_[b];
      tr[b] = {zx, T(0), hx * (T(1) - zx), T(0), zy, hy * (T(1) - zy), T(0), T(0)};
    }
  }

 private:
  std::vector<T> zh_, zw_;
};

/// keras.layers.RandomTranslation(height_factor, width_factor): shifts by a draw in
/// [lower, upper] times the image height / width (each factor in [-1, 1]; a positive one moves
/// the content down / right).
template <class T = float>
class RandomTranslation : public RandomAxesLayer<T> {
 public:
  RandomTranslation(const ImageFactor& height_factor, const ImageFactor& width_factor, const std::string& fill_mode = "reflect",
                    const std::string& interpolation = "bilinear", long long seed = -1, double fill_value = 0.0, std::string name = {})
      : RandomAxesLayer<T>("RandomTranslation", false, height_factor, width_factor, fill_mode, interpolation, seed, fill_value,
                           std::move(name)) {}
  std::string class_name() const override { return "RandomTranslation"; }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    return RandomAxesLayer<T>::template axes_from_config<RandomTranslation>(j, "RandomTranslation", true);
  }

 protected:
  void draw_transforms(Index H, Index W, std::vector<image::Transform<T>>& tr) override {
    th_.resize(tr.size());
    tw_.resize(tr.size());
    for (auto& t : th_) t = this->uniform(this->height_.first, this->height_.second) * static_cast<T>(H);
    for (auto& t : tw_) t = this->uniform(this->width_.first, this->width_.second) * static_cast<T>(W);
    for (size_t b = 0; b < tr.size(); ++b) tr[b] = {T(1), T(0), -tw_[b], T(0), T(1), -th_[b], T(0), T(0)};
  }

 private:
  std::vector<T> th_, tw_;
};

}  // namespace graft
