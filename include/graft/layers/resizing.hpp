// graft — Keras 3's size-changing image layers: Resizing and CenterCrop (always applied, in
// training and inference alike) and RandomCrop (random in training). All resample through
// image::Resample (crops, pads and torch's interpolation taps), whose transpose is the backward.
#pragma once

#include <string>

#include "graft/layers/image_preprocessing.hpp"

namespace graft {

namespace detail {
inline Index positive_size(const json& v, const char* key, const std::string& who) {
  if (!v.is_number_integer() || v.get<long long>() <= 0 || v.get<long long>() > 1000000)
    throw value_error(cat(who, ": `", key, "` must be a positive integer, got ", v.dump()));
  return v.get<Index>();
}
inline Index checked_size(Index v, const char* key, const std::string& who) { return positive_size(json(v), key, who); }
}  // namespace detail

/// A layer that resamples each image to height x width with a plan that depends on the input size.
template <class T>
class ResamplingLayer : public ImagePreprocessingLayer<T> {
 public:
  Index height() const { return height_; }
  Index width() const { return width_; }
  Shape output_shape(const Shape& in) const override {
    this->check_images(in);
    return {in[0], height_, width_, in[3]};
  }
  struct State : CallState {
    image::Resample<T> plan;
    Index h = -1, w = -1;  // the input size the plan is for
  };
  std::unique_ptr<CallState> make_state() const override { return std::make_unique<State>(); }

  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState* st, bool) override {
    this->check_images(x.shape());
    auto* s = static_cast<State*>(st);
    if (s->h != x.dim(1) || s->w != x.dim(2)) {
      s->plan = plan(x.dim(1), x.dim(2));
      s->h = x.dim(1);
      s->w = x.dim(2);
    }
    image::resample(x, s->plan, y);
  }
  void backward1(const Tensor<T>&, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx, CallState* st) override {
    if (dx) image::resample_backward(dy, static_cast<State*>(st)->plan, *dx);
  }

 protected:
  ResamplingLayer(Index height, Index width, const char* who, std::string name)
      : ImagePreprocessingLayer<T>(std::move(name)),
        height_(detail::checked_size(height, "height", who)),
        width_(detail::checked_size(width, "width", who)) {}
  virtual image::Resample<T> plan(Index h, Index w) const = 0;
  Index height_, width_;
};

/// keras.layers.Resizing(height, width, interpolation="bilinear", crop_to_aspect_ratio=False,
/// pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0, antialias=False): resizes as
/// keras.ops.image.resize on the torch backend (bilinear, nearest, bicubic; antialias for
/// bilinear and bicubic), after cropping the largest centred window of the target aspect ratio
/// or padding to it with fill_value.
template <class T = float>
class Resizing : public ResamplingLayer<T> {
 public:
  bool parallel_rows(bool) const override { return true; }
  Resizing(Index height, Index width, const std::string& interpolation = "bilinear", bool crop_to_aspect_ratio = false,
           bool pad_to_aspect_ratio = false, const std::string& fill_mode = "constant", double fill_value = 0.0, bool antialias = false,
           std::string name = {})
      : ResamplingLayer<T>(height, width, "Resizing", std::move(name)), interpolation_(interpolation), fill_value_(fill_value) {
    opt_.interpolation = image::parse_resize_interpolation(interpolation, "Resizing");
    opt_.crop_to_aspect_ratio = crop_to_aspect_ratio;
    opt_.pad_to_aspect_ratio = pad_to_aspect_ratio;
    opt_.fill_value = fill_value;
    opt_.antialias = antialias && opt_.interpolation != image::Interpolation::nearest;  // Keras ignores it for nearest
    antialias_ = antialias;
    if (crop_to_aspect_ratio && pad_to_aspect_ratio)
      throw value_error("Resizing: Only one of `pad_to_aspect_ratio` & `crop_to_aspect_ratio` can be `True`.");
    if (fill_mode != "constant")
      throw value_error(detail::cat("Resizing: Invalid value for argument `fill_mode`. Only `'constant'` is supported. Received: fill_mode=",
                                    fill_mode));
    if (!std::isfinite(fill_value)) throw value_error("Resizing: fill_value must be a finite number");
  }
  std::string class_name() const override { return "Resizing"; }
  const image::ResizeOptions& options() const { return opt_; }

  json get_config() const override {
    json c = this->image_config();
    c["height"] = this->height_;
    c["width"] = this->width_;
    c["interpolation"] = interpolation_;
    c["crop_to_aspect_ratio"] = opt_.crop_to_aspect_ratio;
    c["pad_to_aspect_ratio"] = opt_.pad_to_aspect_ratio;
    c["fill_mode"] = "constant";
    c["fill_value"] = fill_value_;
    c["antialias"] = antialias_;
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "Resizing"));
    std::shared_ptr<Resizing> l;
    try {
      json fv = detail::config_number(c, "fill_value", json(0.0));
      l = std::make_shared<Resizing>(detail::positive_size(c.at("height"), "height", "Resizing"),
                                     detail::positive_size(c.at("width"), "width", "Resizing"),
                                     c.get_string("interpolation", "bilinear"), c.get_bool("crop_to_aspect_ratio", false),
                                     c.get_bool("pad_to_aspect_ratio", false), c.get_string("fill_mode", "constant"), fv.get<double>(),
                                     c.get_bool("antialias", false));
      l->fill_value_ = fv;
    } catch (const error& e) {
      rethrow_with_prefix(e, c.where());
    }
    ImagePreprocessingLayer<T>::apply_image_config(*l, c);
    return l;
  }

 protected:
  image::Resample<T> plan(Index h, Index w) const override { return image::resize_plan<T>(h, w, this->height_, this->width_, opt_); }

 private:
  std::string interpolation_;
  json fill_value_;
  bool antialias_ = false;
  image::ResizeOptions opt_;
};

/// keras.layers.CenterCrop(height, width): the centred height x width window when the image is
/// at least that large; otherwise (either side smaller) keras.utils.smart_resize to that size.
template <class T = float>
class CenterCrop : public ResamplingLayer<T> {
 public:
  bool parallel_rows(bool) const override { return true; }
  CenterCrop(Index height, Index width, std::string name = {}) : ResamplingLayer<T>(height, width, "CenterCrop", std::move(name)) {}
  std::string class_name() const override { return "CenterCrop"; }

  json get_config() const override {
    json c = this->image_config();
    c["height"] = this->height_;
    c["width"] = this->width_;
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "CenterCrop"));
    std::shared_ptr<CenterCrop> l;
    try {
      l = std::make_shared<CenterCrop>(detail::positive_size(c.at("height"), "height", "CenterCrop"),
                                       detail::positive_size(c.at("width"), "width", "CenterCrop"));
    } catch (const error& e) {
      rethrow_with_prefix(e, c.where());
    }
    ImagePreprocessingLayer<T>::apply_image_config(*l, c);
    return l;
  }

 protected:
  image::Resample<T> plan(Index h, Index w) const override {
    const Index dh = h - this->height_, dw = w - this->width_;
    if (dh >= 0 && dw >= 0) return image::crop_plan<T>(h, w, dh / 2, dw / 2, this->height_, this->width_);
    return image::smart_resize_plan<T>(h, w, this->height_, this->width_);
  }
};

/// keras.layers.RandomCrop(height, width, seed=None). Training: when the image is larger on
/// both sides, a height x width window at a random position (one draw per batch, as Keras);
/// otherwise Keras 3's fallback: the window of the target size starting at the corner of the
/// centred aspect-ratio box, clipped to the image and resized (bilinear) to height x width.
/// Inference: keras.utils.smart_resize to height x width (the largest centred window of the
/// target aspect ratio, resized) — what Keras documents and TF-Keras 2 does. Keras 3.15.1 itself
/// returns inference inputs unchanged (keras-team/keras#21868), which contradicts the layer's own
/// output shape, so graft does not copy that.
template <class T = float>
class RandomCrop : public RandomImageLayer<T> {
 public:
  using State = typename RandomImageLayer<T>::State;

  /// Without a seed, one is drawn (as Keras' make_default_seed: an integer in [1, 1e9]) and
  /// written in the config.
  RandomCrop(Index height, Index width, long long seed = -1, std::string name = {})
      : RandomImageLayer<T>(std::move(name), seed < 0 ? default_seed() : seed),
        height_(detail::checked_size(height, "height", "RandomCrop")),
        width_(detail::checked_size(width, "width", "RandomCrop")) {}
  std::string class_name() const override { return "RandomCrop"; }
  Index height() const { return height_; }
  Index width() const { return width_; }
  Shape output_shape(const Shape& in) const override {
    this->check_images(in);
    return {in[0], height_, width_, in[3]};
  }

  void forward1(const Tensor<T>& x, Tensor<T>& y, CallState* st, bool training) override {
    this->check_images(x.shape());
    auto* s = static_cast<State*>(st);
    const Index H = x.dim(1), W = x.dim(2);
    s->active = true;
    if (!training) {
      s->plan = image::smart_resize_plan<T>(H, W, height_, width_);
    } else if (H > height_ && W > width_) {
      Index hs = static_cast<Index>(this->uniform(0.0, static_cast<double>(H - height_ + 1)));
      Index ws = static_cast<Index>(this->uniform(0.0, static_cast<double>(W - width_ + 1)));
      hs = std::min(hs, H - height_);  // a float32 draw can round up to the bound
      ws = std::min(ws, W - width_);
      s->plan = image::crop_plan<T>(H, W, hs, ws, height_, width_);
    } else {
      const image::CropBox b = image::aspect_crop_box(H, W, height_, width_);
      const Index rows = std::min(H, b.h_start + height_) - b.h_start, cols = std::min(W, b.w_start + width_) - b.w_start;
      if (rows == height_ && cols == width_) {
        s->plan = image::crop_plan<T>(H, W, b.h_start, b.w_start, height_, width_);
      } else {
        s->plan.in_h = H;
        s->plan.in_w = W;
        s->plan.rows = image::resize_taps<T>(image::SourceAxis{rows, b.h_start, H}, height_, image::Interpolation::bilinear, false);
        s->plan.cols = image::resize_taps<T>(image::SourceAxis{cols, b.w_start, W}, width_, image::Interpolation::bilinear, false);
      }
    }
    image::resample(x, s->plan, y);
  }
  void backward1(const Tensor<T>&, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>* dx, CallState* st) override {
    if (dx) image::resample_backward(dy, static_cast<State*>(st)->plan, *dx);
  }

  json get_config() const override {
    json c = this->image_config();
    c["height"] = height_;
    c["width"] = width_;
    c["seed"] = this->seed_json();
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& j) {
    Config c(j, config_where(j, "RandomCrop"));
    std::shared_ptr<RandomCrop> l;
    try {
      l = std::make_shared<RandomCrop>(detail::positive_size(c.at("height"), "height", "RandomCrop"),
                                       detail::positive_size(c.at("width"), "width", "RandomCrop"), RandomImageLayer<T>::config_seed(c));
    } catch (const error& e) {
      rethrow_with_prefix(e, c.where());
    }
    RandomImageLayer<T>::apply_random_config(*l, c);
    return l;
  }

 private:
  static long long default_seed() { return 1 + static_cast<long long>(next_seed() % 1000000000ull); }
  Index height_, width_;
};

}  // namespace graft
