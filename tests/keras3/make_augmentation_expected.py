"""Expected outputs of Keras 3.15.1's image preprocessing layers, for tests/test_augmentation.cpp.

  ../shared/tools/keras3/run tests/keras3/make_augmentation_expected.py tests/augmentation_keras_expected.hpp

Writes a C++ header of cases: each a layer config exactly as Keras' get_config() writes it (the
test builds graft's layer from it and compares graft's config with it), the input shape (the
input is the integer formula image() below, the same in the test), and Keras' output on the torch
backend, in training mode (training=True) unless said otherwise. Deterministic factors (lower ==
upper, e.g. RandomRotation(factor=(0.1, 0.1)), or for RandomContrast (-k, k): factor 1 + k) make
the random layers' outputs fixed. Also Normalization.adapt results and configs of other argument
sets. Rerun after a Keras upgrade; the numbers must come from Keras, never from graft.
"""
import json
import sys
import types

import keras
import numpy as np
import torch
from keras import layers
from keras.src.backend.torch import image as torch_image
from keras.src.layers.preprocessing import normalization as keras_normalization

# torch 1.13 (Debian 12) indexes with int64 tensors only; Keras 3.15's map_coordinates makes int32
# indices (fine on torch >= 2). The same indices as int64: a dtype shim, no change of computation.
for _fn in ("_nearest_indices_and_weights", "_linear_indices_and_weights"):
    def _shim(coordinate, _orig=getattr(torch_image, _fn)):
        return [(index.to(torch.int64), weight) for index, weight in _orig(coordinate)]
    setattr(torch_image, _fn, _shim)
# Normalization.adapt asks isinstance(data, tf.data.Dataset) before taking a list of batches;
# without TensorFlow installed that question raises. A stand-in class answers "no".
keras_normalization.tf = types.SimpleNamespace(data=types.SimpleNamespace(Dataset=type("NoDataset", (), {})))


keras.utils.set_random_seed(0)  # RandomCrop without a seed draws one for its config: the same one on every run


def image(shape):
    n, h, w, c = shape
    b, i, j, k = np.meshgrid(np.arange(n), np.arange(h), np.arange(w), np.arange(c), indexing="ij")
    return (((b * 131 + i * 31 + j * 17 + k * 7) % 97) * 2.5 + 1).astype("float32")


cases = []


def case(name, layer, shape, training=True, out=None):
    x = image(shape)
    y = np.asarray(layer(x, training=training)) if out is None else np.asarray(out)
    cases.append({"name": name, "class_name": type(layer).__name__, "config": layer.get_config(), "in": list(shape),
                  "out": list(y.shape), "y": y.astype("float32").ravel().tolist(), "training": training})


S = (2, 5, 7, 2)
for fm in ("reflect", "wrap", "constant", "nearest"):
    for ip in ("bilinear", "nearest"):
        case(f"rotation 36 degrees {fm} {ip}", layers.RandomRotation((0.1, 0.1), fill_mode=fm, interpolation=ip, fill_value=3.5), S)
case("rotation -108 degrees", layers.RandomRotation((-0.3, -0.3)), (1, 6, 6, 1))
case("rotation quarter turn", layers.RandomRotation((0.25, 0.25), fill_mode="constant"), (1, 4, 4, 3))
case("rotation non-square constant", layers.RandomRotation((0.05, 0.05), fill_mode="constant", fill_value=1), (1, 3, 8, 1))
for ip in ("bilinear", "nearest"):
    case(f"zoom in 0.8 {ip}", layers.RandomZoom((-0.2, -0.2), interpolation=ip), S)
case("zoom out 1.3 x 1.5 constant", layers.RandomZoom((0.3, 0.3), (0.5, 0.5), fill_mode="constant", fill_value=2), S)
case("zoom out 1.4 wrap", layers.RandomZoom((0.4, 0.4), fill_mode="wrap"), S)
case("zoom out 1.4 nearest fill", layers.RandomZoom((0.4, 0.4), fill_mode="nearest", interpolation="nearest"), S)
case("zoom 0.7 x 1.2 reflect", layers.RandomZoom((-0.3, -0.3), (0.2, 0.2)), (1, 6, 5, 1))
for fm in ("reflect", "wrap", "constant", "nearest"):
    case(f"translation 0.1 0.2 {fm}", layers.RandomTranslation((0.1, 0.1), (0.2, 0.2), fill_mode=fm, fill_value=5.0), S)
case("translation -0.3 0.25 nearest interp", layers.RandomTranslation((-0.3, -0.3), (0.25, 0.25), fill_mode="constant",
                                                                       interpolation="nearest"), S)
case("translation reflect far", layers.RandomTranslation((0.9, 0.9), (-1.0, -1.0)), (1, 4, 3, 1))
case("contrast 1.5", layers.RandomContrast((-0.5, 0.5)), S)
case("contrast 1.2 range 0 100", layers.RandomContrast((-0.2, 0.2), value_range=(0, 100)), S)
case("contrast 1 (factor 0)", layers.RandomContrast(0.0), S)
case("brightness +0.1", layers.RandomBrightness((0.1, 0.1)), S)
case("brightness -0.3 range (300, 0)", layers.RandomBrightness((-0.3, -0.3), value_range=(300, 0)), S)
for size in ((3, 4), (9, 11), (5, 3), (1, 1)):
    for ip in ("bilinear", "nearest", "bicubic"):
        case(f"resize {size} {ip}", layers.Resizing(*size, interpolation=ip), S)
for size in ((2, 3), (3, 2), (4, 6)):
    for ip in ("bilinear", "bicubic"):
        case(f"resize {size} {ip} antialias", layers.Resizing(*size, interpolation=ip, antialias=True), S)
case("resize (2, 3) nearest antialias ignored", layers.Resizing(2, 3, interpolation="nearest", antialias=True), S)
case("resize crop_to_aspect_ratio 4x4", layers.Resizing(4, 4, crop_to_aspect_ratio=True), S)
case("resize crop_to_aspect_ratio 2x6", layers.Resizing(2, 6, crop_to_aspect_ratio=True, interpolation="nearest"), S)
case("resize pad_to_aspect_ratio 4x4", layers.Resizing(4, 4, pad_to_aspect_ratio=True, fill_value=7.0), S)
case("resize pad_to_aspect_ratio 3x9", layers.Resizing(3, 9, pad_to_aspect_ratio=True, fill_value=-1.0), S)
case("resize pad_to_aspect_ratio 6x6 bicubic", layers.Resizing(6, 6, pad_to_aspect_ratio=True, interpolation="bicubic"), (1, 4, 7, 1))
case("resize inference", layers.Resizing(3, 4), S, training=False)
case("center crop 3x4", layers.CenterCrop(3, 4), S)
case("center crop 2x7", layers.CenterCrop(2, 7), S, training=False)
case("center crop 6x4 (smart resize)", layers.CenterCrop(6, 4), S)
case("center crop 2x9 (smart resize)", layers.CenterCrop(2, 9), S)
case("random crop 6x4 training fallback", layers.RandomCrop(6, 4, seed=1), S)
case("random crop 5x5 training fallback", layers.RandomCrop(5, 5, seed=2), S)
case("random crop 3x8 training fallback", layers.RandomCrop(3, 8, seed=3), S)
# inference: Keras 3.15.1 returns the input unchanged (keras-team/keras#21868); graft
# smart-resizes as Keras documents (and TF-Keras 2 does): the expected output is smart_resize's
smart_resize = keras.preprocessing.image.smart_resize
case("random crop 3x4 inference (smart_resize)", layers.RandomCrop(3, 4, seed=4), S, training=False, out=smart_resize(image(S), (3, 4)))
case("random crop 6x4 inference (smart_resize)", layers.RandomCrop(6, 4, seed=5), S, training=False, out=smart_resize(image(S), (6, 4)))
# flips of every image, forced through Keras' own transform_images
for mode, seed in (("horizontal", 1), ("horizontal_and_vertical", 2), ("vertical", 3)):
    fl = layers.RandomFlip(mode, seed=seed)
    case(f"flip {mode} (forced)", fl, S, out=fl.transform_images(image(S), {"flips": torch.ones((2, 1, 1, 1), dtype=torch.bool)}))

# configs of other argument sets (no outputs): Keras' get_config for the test's round trips
configs = []
for i, l in enumerate([
        layers.RandomFlip(), layers.RandomFlip("vertical", seed=7), layers.RandomRotation(0.1), layers.RandomRotation(1),
        layers.RandomRotation((0.2, -0.1), fill_mode="constant", fill_value=1, interpolation="nearest", seed=3),
        layers.RandomZoom(0.1), layers.RandomZoom((-0.2, 0.3), [0.1, 0.2], fill_mode="wrap"), layers.RandomZoom(-0.5, 0.5),
        layers.RandomTranslation(0.1, 0.2), layers.RandomTranslation((-0.1, 0.1), 0, fill_mode="nearest", seed=11),
        layers.RandomContrast(0.2), layers.RandomContrast((0.1, 0.4), value_range=(0, 1)), layers.RandomContrast(1),
        layers.RandomBrightness(0.2), layers.RandomBrightness((-0.1, 0.3), value_range=(1, 0), seed=5), layers.RandomBrightness(1.0),
        layers.RandomCrop(3, 4), layers.RandomCrop(10, 20, seed=9), layers.Resizing(3, 4),
        layers.Resizing(224, 224, interpolation="bicubic", crop_to_aspect_ratio=True, antialias=True),
        layers.Resizing(8, 16, interpolation="nearest", pad_to_aspect_ratio=True, fill_value=1), layers.CenterCrop(2, 3),
        layers.Normalization(), layers.Normalization(axis=(1, 2), mean=[1.0, 2.0], variance=[3.0, 4.0])]):
    c = l.get_config()
    c["name"] = f"cfg{i}"  # fixed names: the test builds some of the same layers in C++ under them
    configs.append({"class_name": type(l).__name__, "config": c})

# Normalization.adapt: from an array and from a list of batches
rng = np.random.RandomState(0)
d = (rng.uniform(-3, 5, size=(6, 3, 4)) * np.arange(1, 5)).astype("float32")
adapts = []
for axis in (-1, (1,), (1, 2)):
    n1 = layers.Normalization(axis=axis)
    n1.adapt(d)
    n2 = layers.Normalization(axis=axis)
    n2.adapt([d[0:2], d[2:3], d[3:6]])
    adapts.append({"axis": json.dumps(list(axis) if isinstance(axis, tuple) else [axis]),
                   "mean_array": np.asarray(n1.adapt_mean).ravel().tolist(), "var_array": np.asarray(n1.adapt_variance).ravel().tolist(),
                   "mean_batches": np.asarray(n2.adapt_mean).ravel().tolist(), "var_batches": np.asarray(n2.adapt_variance).ravel().tolist(),
                   "y": np.asarray(n1(d)).ravel().tolist()})


def cstr(s):
    return json.dumps(s)


def floats(v):
    return "{" + ", ".join(repr(float(np.float32(a))) + "f" for a in v) + "}"


out = ["// Generated by tests/keras3/make_augmentation_expected.py from Keras " + keras.__version__ +
       " (torch backend): do not edit.", "#pragma once", "", "#include <vector>", "", "namespace augmentation_expected {", "",
       "struct Case {", "  const char* name;", "  const char* class_name;", "  const char* config;  // Keras' get_config()",
       "  std::vector<long> in, out;", "  bool training;", "  std::vector<float> y;", "};", "",
       "inline const std::vector<Case>& cases() {", "  static const std::vector<Case> c = {"]
for c in cases:
    out.append("      {%s, %s, %s, {%s}, {%s}, %s, %s}," % (cstr(c["name"]), cstr(c["class_name"]), cstr(json.dumps(c["config"])),
                                                           ", ".join(map(str, c["in"])), ", ".join(map(str, c["out"])),
                                                           "true" if c["training"] else "false", floats(c["y"])))
out += ["  };", "  return c;", "}", "", "struct ConfigCase {", "  const char* class_name;", "  const char* config;", "};", "",
        "inline const std::vector<ConfigCase>& configs() {", "  static const std::vector<ConfigCase> c = {"]
for c in configs:
    out.append("      {%s, %s}," % (cstr(c["class_name"]), cstr(json.dumps(c["config"]))))
out += ["  };", "  return c;", "}", "", "/// The data Normalization.adapt saw (shape (6, 3, 4)).", "inline std::vector<float> adapt_data() {",
        "  return %s;" % floats(d.ravel()), "}", "", "struct AdaptCase {", "  const char* axis;",
        "  std::vector<float> mean_array, var_array, mean_batches, var_batches, y;", "};", "",
        "inline const std::vector<AdaptCase>& adapts() {", "  static const std::vector<AdaptCase> c = {"]
for a in adapts:
    out.append("      {%s, %s, %s, %s, %s, %s}," % (cstr(a["axis"]), floats(a["mean_array"]), floats(a["var_array"]),
                                                  floats(a["mean_batches"]), floats(a["var_batches"]), floats(a["y"])))
out += ["  };", "  return c;", "}", "", "}  // namespace augmentation_expected", ""]
open(sys.argv[1], "w").write("\n".join(out))
print(f"{sys.argv[1]}: {len(cases)} cases, {len(configs)} configs, {len(adapts)} adapt cases")
