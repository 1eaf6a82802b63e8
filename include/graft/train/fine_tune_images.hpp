// graft — transfer learning from a folder of images in one call (what `graft fine-tune` runs):
// Chollet's recipe. The model is cut after its last global pooling or Flatten layer (or after a
// named layer), a Dense(number of class folders, softmax) head is grafted on, the head trains
// with the trunk frozen (fit's feature cache runs the trunk once), then, when asked, the top N
// layers of the trunk are unfrozen (BatchNormalization layers stay frozen, as the Keras guide
// advises) and training goes on at a low learning rate. The new model takes raw images (pixel
// values 0..255 at the model's input size): the augmentation and the preprocessing the trunk
// expects are layers inside it.
//
//   graft::ImageFineTuneOptions o;
//   o.epochs = 5;
//   o.augment = "flip=horizontal,rotation=0.1";
//   auto r = graft::fine_tune_on_images(*graft::load_model<float>("base.h5"), "photos/", o);
//   graft::save_model(*r.model, "tuned.h5");
#pragma once

#include <chrono>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "graft/data/image_folder.hpp"
#include "graft/layers/registry.hpp"
#include "graft/model/model.hpp"
#include "graft/train/feature_extraction.hpp"
#include "graft/train/optimizers.hpp"

namespace graft {

struct ImageFineTuneOptions {
  /// Cut the model after this layer (any depth of nesting); "": after its last global pooling or
  /// Flatten layer.
  std::string cut_at;
  int epochs = 10;
  Index batch_size = 32;
  /// Shuffling, the validation split, the augmentation layers and the head's initial weights
  /// (graft's global generator is reseeded with it before the head is built).
  std::uint64_t seed = 1337;
  double learning_rate = 1e-3;  ///< Adam, head training
  /// Fraction of the images held out for validation (Keras' split of the file list).
  double validation_split = 0.2;
  /// "flip=horizontal,rotation=0.1,zoom=0.1,translation=0.1,contrast=0.2,brightness=0.2":
  /// RandomFlip(mode), RandomRotation, RandomZoom, RandomTranslation(f, f), RandomContrast,
  /// RandomBrightness layers at the model's input (active in training only).
  std::string augment;
  /// Unfreeze the top N layers of the trunk for a second stage of fine_tune_epochs epochs.
  int unfreeze_from_top = 0;
  int fine_tune_epochs = 0;
  /// Adam's learning rate in the second stage (0: learning_rate / 10).
  double fine_tune_learning_rate = 0;
  /// The input preprocessing the trunk expects: "auto" (none when the model has Rescaling or
  /// Normalization layers at its input; a keras.applications family's preprocess_input when the
  /// layer names identify one), "none", "tf" ([-1, 1]), "torch" (ImageNet mean/std), "caffe"
  /// (BGR, ImageNet means subtracted), "unit" ([0, 1]).
  std::string preprocessing = "auto";
  /// Image size when the model's input does not fix it.
  std::array<int, 2> image_size{224, 224};
  std::string on_error = "error";  ///< image_dataset_from_directory's on_error: "error" or "skip"
  int verbose = 1;
  std::ostream* out = &std::cout;
  FeatureCacheMode feature_cache = FeatureCacheMode::automatic;
  std::shared_ptr<Distributed<float>> distributed;
};

struct ImageFineTuneResult {
  std::shared_ptr<Model<float>> model;
  std::vector<std::string> class_names;
  std::string cut_layer;     ///< the layer the trunk ends at
  std::string preprocessing; ///< what was put at the input
  History head, fine;        ///< the two stages (fine is empty without a second stage)
  double head_seconds = 0, fine_seconds = 0;
};

namespace detail {

/// The last global pooling or Flatten layer, depth first through nested models ("" if none).
inline std::string last_pooling_layer(const Model<float>& m) {
  std::string found;
  for (auto& l : m.layers()) {
    const std::string c = l->class_name();
    if (l->is_model()) {
      std::string inner = last_pooling_layer(static_cast<const Model<float>&>(*l));
      if (!inner.empty()) found = inner;
    } else if (c.rfind("GlobalAveragePooling", 0) == 0 || c.rfind("GlobalMaxPooling", 0) == 0 || c == "Flatten") {
      found = l->name();
    }
  }
  return found;
}

/// Whether the model has a layer named `name`, at any depth.
inline bool has_layer_named(const Model<float>& m, const std::string& name) {
  for (auto& l : m.layers())
    if (l->name() == name || (l->is_model() && has_layer_named(static_cast<const Model<float>&>(*l), name))) return true;
  return false;
}

/// The preprocess_input mode of the keras.applications family the layer names identify ("" when
/// none does), or "none" when preprocessing layers sit at the model's input.
inline std::string detect_preprocessing(const Model<float>& m) {
  for (Layer<float>* l : m.unique_layers()) {
    const std::string c = l->class_name();
    if (c == "Rescaling" || c == "Normalization") return "none";
    if (c == "Conv2D" || c == "Dense" || c == "DepthwiseConv2D" || c == "SeparableConv2D") break;  // past the input
  }
  auto has = [&](const char* n) { return has_layer_named(m, n); };
  if (has("block_1_expand") && has("Conv1")) return "tf";        // MobileNetV2
  if (has("conv_dw_1")) return "tf";                             // MobileNet
  if (has("conv2_block1_preact_bn")) return "tf";                // ResNetV2
  if (has("conv2_block1_1_conv") && has("conv5_block3_out")) return "caffe";  // ResNet
  if (has("block1_conv1") && has("block5_conv3")) return "caffe";  // VGG16/19
  if (has("mixed10")) return "tf";                               // InceptionV3
  if (has("conv_7b")) return "tf";                               // InceptionResNetV2
  if (has("block14_sepconv2")) return "tf";                      // Xception
  if (has("conv1_conv") && has("pool2_conv")) return "torch";    // DenseNet
  return "";
}

/// Layers at the input that give the trunk what it expects from raw 0..255 pixels.
inline KerasTensor<float> add_preprocessing(const std::string& mode, KerasTensor<float> x, Index channels) {
  auto& reg = LayerRegistry<float>::instance();
  if (mode == "none") return x;
  if (mode == "tf") return (*reg.create("Rescaling", {{"name", "preprocessing"}, {"scale", 1.0 / 127.5}, {"offset", -1.0}}))(x);
  if (mode == "unit") return (*reg.create("Rescaling", {{"name", "preprocessing"}, {"scale", 1.0 / 255.0}, {"offset", 0.0}}))(x);
  if (channels != 3) throw value_error(detail::cat("fine_tune_on_images: preprocessing '", mode, "' needs 3 channels, the model has ", channels));
  if (mode == "torch") {
    x = (*reg.create("Rescaling", {{"name", "preprocessing_scale"}, {"scale", 1.0 / 255.0}, {"offset", 0.0}}))(x);
    const double mean[3] = {0.485, 0.456, 0.406}, std_[3] = {0.229, 0.224, 0.225};
    json mj = json::array(), vj = json::array();
    for (int c = 0; c < 3; ++c) {
      mj.push_back(mean[c]);
      vj.push_back(std_[c] * std_[c]);
    }
    return (*reg.create("Normalization", {{"name", "preprocessing_normalize"}, {"axis", -1}, {"mean", mj}, {"variance", vj}}))(x);
  }
  if (mode == "caffe") {  // RGB -> BGR and the ImageNet means subtracted: a frozen 1x1 convolution
    auto conv = reg.create("Conv2D", {{"name", "preprocessing_caffe"}, {"filters", 3}, {"kernel_size", {1, 1}}, {"use_bias", true}});
    KerasTensor<float> y = (*conv)(x);
    auto w = conv->get_weights();
    w.at(0).set_zero();
    for (int c = 0; c < 3; ++c) w.at(0)[(2 - c) * 3 + c] = 1.0f;  // kernel (1, 1, in, out): out c reads in 2 - c
    const float means[3] = {103.939f, 116.779f, 123.68f};       // B, G, R
    for (int c = 0; c < 3; ++c) w.at(1)[c] = -means[c];
    conv->set_weights(w);
    conv->set_trainable(false);
    return y;
  }
  throw value_error(detail::cat("fine_tune_on_images: preprocessing must be auto, none, tf, torch, caffe or unit; got '", mode, "'"));
}

/// Augmentation layers from "flip=horizontal,rotation=0.1,...".
inline KerasTensor<float> add_augmentation(const std::string& spec, KerasTensor<float> x, std::uint64_t seed) {
  auto& reg = LayerRegistry<float>::instance();
  std::stringstream ss(spec);
  std::string item;
  int k = 0;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    const std::string key = item.substr(0, eq), val = eq == std::string::npos ? std::string() : item.substr(eq + 1);
    const json s = static_cast<std::int64_t>(seed + static_cast<std::uint64_t>(++k));
    auto num = [&]() {
      try {
        size_t used = 0;
        double v = std::stod(val, &used);
        if (used != val.size()) throw std::invalid_argument(val);
        return v;
      } catch (const std::exception&) {
        throw value_error(detail::cat("--augment: '", item, "' needs a number (e.g. ", key, "=0.1)"));
      }
    };
    if (key == "flip") {
      const std::string mode = val.empty() ? "horizontal" : val;
      x = (*reg.create("RandomFlip", {{"name", "random_flip"}, {"mode", mode}, {"seed", s}}))(x);
    } else if (key == "rotation") {
      x = (*reg.create("RandomRotation", {{"name", "random_rotation"}, {"factor", num()}, {"seed", s}}))(x);
    } else if (key == "zoom") {
      x = (*reg.create("RandomZoom", {{"name", "random_zoom"}, {"height_factor", num()}, {"seed", s}}))(x);
    } else if (key == "translation") {
      const double f = num();
      x = (*reg.create("RandomTranslation", {{"name", "random_translation"}, {"height_factor", f}, {"width_factor", f}, {"seed", s}}))(x);
    } else if (key == "contrast") {
      x = (*reg.create("RandomContrast", {{"name", "random_contrast"}, {"factor", num()}, {"seed", s}}))(x);
    } else if (key == "brightness") {
      x = (*reg.create("RandomBrightness", {{"name", "random_brightness"}, {"factor", num()}, {"seed", s}}))(x);
    } else {
      throw value_error(detail::cat("--augment: unknown augmentation '", key,
                                    "' (flip, rotation, zoom, translation, contrast, brightness)"));
    }
  }
  return x;
}

/// Freeze every layer of the trunk but its top n (BatchNormalization stays frozen).
inline std::vector<std::string> unfreeze_top(Model<float>& trunk, int n) {
  trunk.set_trainable(true);
  std::vector<Layer<float>*> leaves = trunk.unique_layers();
  for (Layer<float>* l : leaves) l->set_trainable(false);
  std::vector<std::string> names;
  int left = n;
  for (auto it = leaves.rbegin(); it != leaves.rend() && left > 0; ++it) {
    if ((*it)->class_name() == "InputLayer") continue;
    --left;
    if ((*it)->class_name() == "BatchNormalization") continue;
    (*it)->set_trainable(true);
    names.push_back((*it)->name());
  }
  return names;
}

}  // namespace detail

/// Transfer learning on a folder of class subfolders of images (see the file comment).
inline ImageFineTuneResult fine_tune_on_images(Model<float>& base, const std::string& images_dir, const ImageFineTuneOptions& o) {
  ImageFineTuneResult r;
  std::ostream* out = o.out && o.verbose > 0 && (!o.distributed || o.distributed->is_chief()) ? o.out : nullptr;
  r.cut_layer = o.cut_at.empty() ? detail::last_pooling_layer(base) : o.cut_at;
  if (r.cut_layer.empty())
    throw value_error(detail::cat("fine-tune: model '", base.name(), "' has no global pooling or Flatten layer to cut after: name one with --cut-at"));
  auto trunk = cut_after(base, r.cut_layer);
  trunk->set_name(base.name() + "_trunk");
  const Shape in = trunk->input_shapes().at(0);
  if (in.size() != 4) throw value_error(detail::cat("fine-tune: the model's input ", shape_str(in), " is not an image batch (None, H, W, C)"));
  const Index channels = in[3] > 0 ? in[3] : 3;
  if (channels != 1 && channels != 3 && channels != 4) throw value_error(detail::cat("fine-tune: the model takes ", channels, " channels: 1, 3 or 4 are images"));
  data::ImageFolderOptions io;
  io.image_size = {in[1] > 0 ? static_cast<int>(in[1]) : o.image_size[0], in[2] > 0 ? static_cast<int>(in[2]) : o.image_size[1]};
  io.color_mode = channels == 1 ? "grayscale" : channels == 4 ? "rgba" : "rgb";
  io.seed = static_cast<std::int64_t>(o.seed % 4294967296ull);
  io.batch_size = static_cast<int>(o.batch_size);
  io.on_error = o.on_error;
  io.verbose = out != nullptr;
  std::unique_ptr<data::ImageFolder<float>> train, val;
  if (o.validation_split > 0) {
    io.validation_split = o.validation_split;
    auto both = data::image_dataset_from_directory_both<float>(images_dir, io);
    train = std::make_unique<data::ImageFolder<float>>(std::move(both.training));
    val = std::make_unique<data::ImageFolder<float>>(std::move(both.validation));
  } else {
    train = std::make_unique<data::ImageFolder<float>>(data::image_dataset_from_directory<float>(images_dir, io));
  }
  r.class_names = train->class_names();
  const Index classes = static_cast<Index>(r.class_names.size());
  if (classes < 2) throw value_error(detail::cat("fine-tune: '", images_dir, "' has ", classes, " class folder(s); a classifier needs 2 or more"));

  r.preprocessing = o.preprocessing == "auto" ? detail::detect_preprocessing(base) : o.preprocessing;
  if (r.preprocessing.empty()) {
    r.preprocessing = "none";
    if (out) *out << "graft: the model's input range is unknown (no keras.applications family recognised): no preprocessing added; pass --preprocessing tf|torch|caffe|unit if it expects one" << std::endl;
  }
  KerasTensor<float> x = Input<float>({io.image_size[0], io.image_size[1], channels}, "image");
  KerasTensor<float> h = x;
  if (!o.augment.empty()) h = detail::add_augmentation(o.augment, h, o.seed);
  h = detail::add_preprocessing(r.preprocessing, h, channels);
  h = (*trunk)(h);
  if (h.shape().size() != 2) h = (*std::make_shared<Flatten<float>>("head_flatten"))(h);
  // the head's initial weights from o.seed (graft's global generator reseeded, as
  // keras.utils.set_random_seed does): the same --seed gives the same run, on 1 or N processes
  set_random_seed(o.seed);
  auto head = std::make_shared<Dense<float>>(classes, "softmax", true, "head");
  r.model = std::make_shared<Model<float>>(x, (*head)(h), base.name() + "_finetuned");
  trunk->set_trainable(false);

  FitOptions<float> fo;
  fo.epochs = o.epochs;
  fo.batch_size = o.batch_size;
  fo.seed = o.seed;
  fo.verbose = o.verbose;
  fo.out = o.out;
  fo.feature_cache = o.feature_cache;
  fo.distributed = o.distributed;
  if (val) fo.validation_source = std::shared_ptr<const data::Source<float>>(val.get(), [](const data::Source<float>*) {});
  r.model->compile(std::make_shared<Adam<float>>(o.learning_rate), "sparse_categorical_crossentropy", {"accuracy"});
  auto t0 = std::chrono::steady_clock::now();
  r.head = r.model->fit(*train, fo);
  r.head_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (out) *out << "graft: head trained (" << r.head_seconds << " s); feature cache: " << r.head.feature_cache << std::endl;

  if (o.unfreeze_from_top > 0 && o.fine_tune_epochs > 0) {
    auto names = detail::unfreeze_top(*trunk, o.unfreeze_from_top);
    if (out) *out << "graft: fine-tuning the top " << o.unfreeze_from_top << " layers of the trunk (" << names.size()
                  << " trainable, BatchNormalization kept frozen)" << std::endl;
    const double lr = o.fine_tune_learning_rate > 0 ? o.fine_tune_learning_rate : o.learning_rate / 10;
    r.model->compile(std::make_shared<Adam<float>>(lr), "sparse_categorical_crossentropy", {"accuracy"});
    fo.epochs = o.epochs + o.fine_tune_epochs;
    fo.initial_epoch = o.epochs;
    t0 = std::chrono::steady_clock::now();
    r.fine = r.model->fit(*train, fo);
    r.fine_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return r;
}

}  // namespace graft
