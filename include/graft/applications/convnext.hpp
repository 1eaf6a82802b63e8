// graft — ConvNeXt Tiny, Small, Base, Large and XLarge (keras.applications.convnext, Liu et al.,
// "A ConvNet for the 2020s", CVPR 2022). The stem and the three downsampling layers are nested
// keras.Sequential models, the blocks' layer scale is Keras' own LayerScale layer, and the inputs are
// normalised inside the model (PreStem): ConvNeXt takes pixels in [0, 255].
#pragma once

#include <optional>
#include <vector>

#include "graft/applications/builder.hpp"

namespace graft {
namespace applications {
namespace detail {

/// keras convnext.MODEL_CONFIGS: blocks per stage and channels per stage of each variant.
struct ConvNeXtConfig {
  std::vector<int> depths;
  std::vector<int> projection_dims;
  Index default_size;
};

inline ConvNeXtConfig convnext_model_config(const std::string& variant) {
  if (variant == "tiny") return {{3, 3, 9, 3}, {96, 192, 384, 768}, 224};
  if (variant == "small") return {{3, 3, 27, 3}, {96, 192, 384, 768}, 224};
  if (variant == "base") return {{3, 3, 27, 3}, {128, 256, 512, 1024}, 224};
  if (variant == "large") return {{3, 3, 27, 3}, {192, 384, 768, 1536}, 224};
  if (variant == "xlarge") return {{3, 3, 27, 3}, {256, 512, 1024, 2048}, 224};
  throw value_error(graft::detail::cat("ConvNeXt: unknown variant '", variant, "'"));
}

/// keras convnext.ConvNeXtBlock: depthwise 7x7 convolution (a grouped Conv2D), LayerNormalization,
/// pointwise Dense 4x + GELU + Dense, LayerScale (unless layer_scale_init_value is None), then the
/// residual sum `inputs + layer(x)` where layer is StochasticDepth for a non-zero drop_path_rate
/// and a linear Activation ("_identity") otherwise.
template <class T>
KerasTensor<T> convnext_block(Graph<T>& g, const KerasTensor<T>& inputs, int projection_dim, double drop_path_rate,
                              const std::optional<double>& layer_scale_init_value, const std::string& name) {
  auto x = inputs;
  x = g("Conv2D", {{"filters", projection_dim}, {"kernel_size", 7}, {"padding", "same"}, {"groups", projection_dim},
                   {"name", name + "_depthwise_conv"}}, x);
  x = g("LayerNormalization", {{"epsilon", 1e-6}, {"name", name + "_layernorm"}}, x);
  x = g("Dense", {{"units", 4 * projection_dim}, {"name", name + "_pointwise_conv_1"}}, x);
  x = g("Activation", {{"activation", "gelu"}, {"name", name + "_gelu"}}, x);
  x = g("Dense", {{"units", projection_dim}, {"name", name + "_pointwise_conv_2"}}, x);
  if (layer_scale_init_value)
    x = g("LayerScale", {{"init_values", *layer_scale_init_value}, {"projection_dim", projection_dim}, {"name", name + "_layer_scale"}}, x);
  if (drop_path_rate != 0.0)
    // Keras' convnext.StochasticDepth is the identity at inference; graft has no layer for it
    // (keras.applications never builds one: every ConvNeXt variant has drop_path_rate 0).
    throw unsupported_error(graft::detail::cat("ConvNeXt: drop_path_rate ", drop_path_rate,
                                               " needs convnext.StochasticDepth, which graft does not implement"));
  auto y = g("Activation", {{"activation", "linear"}, {"name", name + "_identity"}}, x);
  return g.op("Add", inputs, y);
}

/// keras convnext.ConvNeXt(depths, projection_dims, drop_path_rate, layer_scale_init_value,
/// default_size, name, include_preprocessing, include_top, weights, input_shape, pooling, classes,
/// classifier_activation, weights_name). `name` is the model's name and the prefix of its layers'.
template <class T>
std::shared_ptr<Model<T>> convnext(const Options& o, const std::vector<int>& depths, const std::vector<int>& projection_dims,
                                   double drop_path_rate, const std::optional<double>& layer_scale_init_value, Index default_size,
                                   const std::string& name, const std::string& family, const WeightsFiles& files) {
  validate_options(o, family, files);
  if (depths.size() != 4 || projection_dims.size() != 4)
    throw value_error(graft::detail::cat(family, ": depths and projection_dims must have 4 stages, got ", depths.size(), " and ",
                                         projection_dims.size()));
  Graph<T> g;
  const Shape input_shape = obtain_input_shape(o.input_shape, default_size, 32, family);
  auto inputs = g.input(input_shape);
  auto x = inputs;

  if (o.include_preprocessing && input_shape[2] == 3) {
    // PreStem(name=name): the ImageNet-1k mean and standard deviation of pixels in [0, 255]
    const double s0 = 0.229 * 255, s1 = 0.224 * 255, s2 = 0.225 * 255;
    x = g("Normalization", {{"mean", {0.485 * 255, 0.456 * 255, 0.406 * 255}}, {"variance", {s0 * s0, s1 * s1, s2 * s2}},
                            {"name", name + "_prestem_normalization"}}, x);
  }

  // Stem block and downsampling blocks: keras.Sequential([...], name=...) each. Keras makes their
  // layers here and each Sequential's InputLayer (automatically named) when it is first called below.
  struct Block {
    std::string name;
    std::vector<std::shared_ptr<Layer<T>>> layers;
  };
  std::vector<Block> downsample_layers;
  downsample_layers.push_back(
      {name + "_stem",
       {g.layer("Conv2D", {{"filters", projection_dims[0]}, {"kernel_size", 4}, {"strides", 4}, {"name", name + "_stem_conv"}}),
        g.layer("LayerNormalization", {{"epsilon", 1e-6}, {"name", name + "_stem_layernorm"}})}});
  for (int i = 0; i < 3; ++i) {
    const std::string n = std::to_string(i);
    downsample_layers.push_back(
        {name + "_downsampling_block_" + n,
         {g.layer("LayerNormalization", {{"epsilon", 1e-6}, {"name", name + "_downsampling_layernorm_" + n}}),
          g.layer("Conv2D", {{"filters", projection_dims[i + 1]}, {"kernel_size", 2}, {"strides", 2},
                             {"name", name + "_downsampling_conv_" + n}})}});
  }

  // Stochastic depth schedule: np.linspace(0.0, drop_path_rate, sum(depths)).
  int total = 0;
  for (int d : depths) total += d;
  std::vector<double> depth_drop_rates(static_cast<size_t>(total));
  for (int k = 0; k < total; ++k) {
    if (total == 1) depth_drop_rates[0] = 0.0;
    else if (k == total - 1) depth_drop_rates[k] = drop_path_rate;  // numpy sets the last point exactly
    else depth_drop_rates[k] = k * (drop_path_rate / (total - 1));
  }

  // First the downsampling blocks, then the ConvNeXt stages.
  int cur = 0;
  for (int i = 0; i < 4; ++i) {
    // Sequential.build on the first call: InputLayer(batch_shape=x.shape) named "input_layer_<n>"
    std::vector<std::shared_ptr<Layer<T>>> seq{
        std::make_shared<InputLayer<T>>(Shape(x.shape().begin() + 1, x.shape().end()), g.auto_name("input_layer"))};
    seq.insert(seq.end(), downsample_layers[i].layers.begin(), downsample_layers[i].layers.end());
    x = (*std::make_shared<Sequential<T>>(seq, downsample_layers[i].name))(x);
    for (int j = 0; j < depths[i]; ++j)
      x = convnext_block(g, x, projection_dims[i], depth_drop_rates[cur + j], layer_scale_init_value,
                         name + "_stage_" + std::to_string(i) + "_block_" + std::to_string(j));
    cur += depths[i];
  }

  if (o.include_top) {
    // Head(num_classes=classes, classifier_activation=classifier_activation, name=name)
    x = g("GlobalAveragePooling2D", {{"name", name + "_head_gap"}}, x);
    x = g("LayerNormalization", {{"epsilon", 1e-6}, {"name", name + "_head_layernorm"}}, x);
    x = g("Dense", {{"units", o.classes}, {"activation", classifier_activation(o)}, {"name", name + "_head_dense"}}, x);
  } else {
    x = pooling(g, x, o);
    x = g("LayerNormalization", {{"epsilon", 1e-6}}, x);
  }
  return finish(inputs, x, o, name);
}

/// The public variants: Keras' MODEL_CONFIGS entry, drop_path_rate 0, layer scale 1e-6, and the
/// model (and layer-name prefix) `name`, "convnext_<variant>" by default.
template <class T>
std::shared_ptr<Model<T>> convnext_variant(const Options& o, const std::string& variant, const std::string& family) {
  const ConvNeXtConfig c = convnext_model_config(variant);
  const std::string weights_name = "convnext_" + variant;
  const std::string name = o.name.empty() ? weights_name : o.name;
  const std::string base = "https://storage.googleapis.com/tensorflow/keras-applications/convnext/";
  return convnext<T>(o, c.depths, c.projection_dims, 0.0, 1e-6, c.default_size, name, family,
                     {base + weights_name + ".h5", base + weights_name + "_notop.h5"});
}

}  // namespace detail

/// keras.applications.ConvNeXtTiny. Input: RGB pixels in [0, 255] (preprocessing is in the model
/// unless include_preprocessing is false).
template <class T = float>
std::shared_ptr<Model<T>> ConvNeXtTiny(const Options& o = {}) {
  return detail::convnext_variant<T>(o, "tiny", "ConvNeXtTiny");
}

/// keras.applications.ConvNeXtSmall.
template <class T = float>
std::shared_ptr<Model<T>> ConvNeXtSmall(const Options& o = {}) {
  return detail::convnext_variant<T>(o, "small", "ConvNeXtSmall");
}

/// keras.applications.ConvNeXtBase.
template <class T = float>
std::shared_ptr<Model<T>> ConvNeXtBase(const Options& o = {}) {
  return detail::convnext_variant<T>(o, "base", "ConvNeXtBase");
}

/// keras.applications.ConvNeXtLarge.
template <class T = float>
std::shared_ptr<Model<T>> ConvNeXtLarge(const Options& o = {}) {
  return detail::convnext_variant<T>(o, "large", "ConvNeXtLarge");
}

/// keras.applications.ConvNeXtXLarge.
template <class T = float>
std::shared_ptr<Model<T>> ConvNeXtXLarge(const Options& o = {}) {
  return detail::convnext_variant<T>(o, "xlarge", "ConvNeXtXLarge");
}

}  // namespace applications
}  // namespace graft
