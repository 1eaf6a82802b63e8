// graft — what Keras 3's image preprocessing layers share (BaseImagePreprocessingLayer): NHWC
// batches only (data_format channels_last; channels_first configs are refused), `data_format` in
// the config, Keras' `factor` arguments and their checks, and for the random ones a seed, a
// generator checkpoints can save (random_generator()), and the rule that they transform only in
// training (Keras' `training` flag: identity in inference).
#pragma once

#include <cmath>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "graft/layers/image_transform.hpp"
#include "graft/layers/layer.hpp"

namespace graft {

/// A Keras `factor` argument as written: one number f, or a pair (lower, upper); unset (Keras
/// None) by default. Layers keep it as given, because their configs echo it.
struct ImageFactor {
  json value;  ///< null, a number, or [lower, upper]
  ImageFactor() = default;
  ImageFactor(double f) : value(f) {}  // NOLINT: implicit on purpose (RandomRotation(0.1))
  ImageFactor(double lower, double upper) : value(json::array({lower, upper})) {}
  static ImageFactor from_json(const json& j) {
    ImageFactor f;
    f.value = j;
    return f;
  }
  bool given() const { return !value.is_null(); }
};

namespace detail {

/// Python's max(a, b) on JSON numbers: the first argument unless the second is larger.
inline json py_max(const json& a, const json& b) { return b.get<double>() > a.get<double>() ? b : a; }
/// Python's abs / unary minus keeping int-ness.
inline json py_abs(const json& a) {
  if (a.is_number_integer()) return json(std::llabs(a.get<long long>()));
  return json(std::fabs(a.get<double>()));
}
inline json py_neg(const json& a) {
  if (a.is_number_integer()) return json(-a.get<long long>());
  return json(-a.get<double>());
}
inline bool finite_number(const json& v) { return v.is_number() && std::isfinite(v.get<double>()); }

/// BaseImagePreprocessingLayer._set_factor with _FACTOR_BOUNDS (b0, b1): (lower, upper).
inline std::pair<json, json> base_factor(const json& factor, const json& b0, const json& b1, const std::string& who) {
  auto fail = [&]() -> std::pair<json, json> {
    throw value_error(cat(who, ": The `factor` argument should be a number (or a list of two numbers) in the range [", b0.dump(), ", ",
                          b1.dump(), "]. Received: factor=", factor.dump()));
  };
  if (factor.is_null()) return {json(0.0), json(0.0)};  // Keras: `factor or 0.0`
  if (factor.is_array()) {
    if (factor.size() != 2 || !finite_number(factor[0]) || !finite_number(factor[1])) return fail();
    if (factor[0].get<double>() > b1.get<double>() || factor[1].get<double>() < b0.get<double>()) return fail();
    if (factor[1].get<double>() < factor[0].get<double>()) return {factor[1], factor[0]};  // sorted()
    return {factor[0], factor[1]};
  }
  if (!finite_number(factor)) return fail();
  if (factor.get<double>() < b0.get<double>() || factor.get<double>() > b1.get<double>()) return fail();
  const json f = py_abs(factor);
  return {py_max(py_neg(f), b0), f};
}

/// RandomZoom / RandomTranslation._set_factor: each number within (-1, 1] (zoom, open_low) or
/// [-1, 1]; a number f means (-f, f).
inline std::pair<double, double> range_factor(const json& factor, const char* name, bool open_low, const std::string& who) {
  const std::string msg = cat(who, ": The ", open_low ? "`height_factor` and `width_factor` arguments" : "`factor` argument",
                              " should be a number (or a list of two numbers) in the range ", open_low ? "(-1.0, 1.0]" : "[-1.0, 1.0]", ". ");
  auto check = [&](const json& v) {
    if (!finite_number(v)) throw value_error(cat(msg, "Received: ", name, "=", factor.dump()));
    const double x = v.get<double>();
    if (x > 1.0 || (open_low ? x <= -1.0 : x < -1.0)) throw value_error(cat(msg, "Received: input_number=", v.dump()));
    return x;
  };
  if (factor.is_array()) {
    if (factor.size() != 2) throw value_error(cat(msg, "Received: ", name, "=", factor.dump()));
    const double a = check(factor[0]), b = check(factor[1]);
    return {std::min(a, b), std::max(a, b)};
  }
  if (!factor.is_number()) throw value_error(cat(msg, "Received: ", name, "=", factor.dump()));
  const double f = std::fabs(check(factor));
  return {-f, f};
}

/// A number from a config or argument list (fill_value, value_range entries), kept as written.
inline json config_number(const Config& c, const char* key, const json& dflt) {
  if (!c.has(key)) return dflt;
  const json& v = c.raw()[key];
  if (!finite_number(v)) throw format_error(cat(c.where(), ": '", key, "' should be a number, got ", v.dump()));
  return v;
}

}  // namespace detail

/// Base of graft's Keras image preprocessing layers: one NHWC input, channels_last.
template <class T>
class ImagePreprocessingLayer : public UnaryLayer<T> {
 public:
  using UnaryLayer<T>::UnaryLayer;

 protected:
  /// Throw unless `s` is a batch of images (N, H, W, C) with known or unknown sizes.
  void check_images(const Shape& s) const {
    if (s.size() != 4)
      throw shape_error(detail::cat(this->where(), ": expects a batch of images (batch, height, width, channels), got shape ", shape_str(s)));
  }
  /// base_config + data_format (+ bounding_box_format when a config gave one), as Keras writes them.
  json image_config() const {
    json c = this->base_config();
    c["data_format"] = "channels_last";
    if (!bbox_format_.is_null()) c["bounding_box_format"] = bbox_format_;
    return c;
  }
  /// Name, trainable, data_format (channels_last only) and bounding_box_format of a config.
  static void apply_image_config(ImagePreprocessingLayer& l, const Config& c) {
    c.require_channels_last();
    if (c.has("bounding_box_format")) l.bbox_format_ = c.raw()["bounding_box_format"];
    apply_base_config(l, c);
  }
  json bbox_format_;  // echoed only: graft transforms images, never bounding boxes
};

/// Base of the random layers: seeded, identity in inference, and (in training) never run in row
/// slices — their draws depend on the batch.
template <class T>
class RandomImageLayer : public ImagePreprocessingLayer<T> {
 public:
  bool parallel_rows(bool training) const override { return !training; }
  Rng* random_generator() override { return &rng_; }
  /// The Keras `seed` (-1: none was given).
  long long seed() const { return has_seed_ ? seed_ : -1; }
  Shape output_shape(const Shape& in) const override {
    this->check_images(in);
    return in;
  }

  /// What a training forward drew, kept for its backward.
  struct State : CallState {
    bool active = false;                       ///< training: the layer transformed its input
    std::vector<image::Transform<T>> transforms;  ///< affine layers
    std::vector<T> values;                     ///< per-image factors (contrast, brightness)
    std::vector<char> flags;                   ///< per-image flips
    std::vector<char> mask;                    ///< values not clipped (contrast, brightness)
    image::Resample<T> plan;                   ///< RandomCrop
  };
  std::unique_ptr<CallState> make_state() const override { return std::make_unique<State>(); }

 protected:
  /// seed < 0: none (drawn from graft's global generator, see graft::set_random_seed).
  RandomImageLayer(std::string name, long long seed)
      : ImagePreprocessingLayer<T>(std::move(name)), seed_(seed), has_seed_(seed >= 0),
        rng_(seed >= 0 ? static_cast<std::uint64_t>(seed) : next_seed()) {}
  /// Keras' random.uniform(minval, maxval), rounded to the layer's type as Keras' float32 draw.
  T uniform(double lo, double hi) { return static_cast<T>(lo + (hi - lo) * rng_.uniform()); }
  json seed_json() const { return has_seed_ ? json(seed_) : json(nullptr); }
  /// The `seed` of a config for the constructor (null: -1).
  static long long config_seed(const Config& c) { return c.get_int("seed", -1); }
  /// apply_image_config, and a negative seed a config gave (kept: Keras accepts any integer).
  static void apply_random_config(RandomImageLayer& l, const Config& c) {
    ImagePreprocessingLayer<T>::apply_image_config(l, c);
    if (c.has("seed") && c.get_int("seed", 0) < 0) {
      l.seed_ = c.get_int("seed", 0);
      l.has_seed_ = true;
      l.rng_.seed(static_cast<std::uint64_t>(l.seed_));
    }
  }
  /// Inference, or no backward state needed: y = x.
  static void pass_through(const Tensor<T>& x, Tensor<T>& y) {
    y.resize(x.shape());
    std::copy(x.begin(), x.end(), y.begin());
  }

  long long seed_;
  bool has_seed_;
  Rng rng_;
};

}  // namespace graft
