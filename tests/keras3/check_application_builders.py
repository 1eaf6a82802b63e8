"""graft::applications against keras.applications (run under ../shared/tools/keras3/run):

  check_application_builders.py --graft GRAFT --work DIR [--all] [--only NAME,...]

For each case, real Keras 3.15.1 builds keras.applications.NAME(weights=None, **args) (after
clear_session(), so its automatic names start afresh), sets BatchNormalization statistics from a
batch (outputs O(1)), saves its weights as Keras' official files are saved (legacy HDF5,
layer_names / weight_names) and predicts on preprocess_input(images). Then

  graft application NAME OUT.h5 --weights W.h5 <the same args>     (the C++ builder, weights by name)
  graft predict OUT.h5 --input X.h5 --output Y.h5

and Keras loads OUT.h5: its config must equal the keras.applications model's (every layer's class,
config and inbound nodes, the model's inputs and outputs), its weights must be Keras' own, its
predictions Keras' (same weights, same program), and graft's predictions must match within float32
rounding. A weights file of another architecture must be refused, naming a layer. Prints one line
per case and exits 1 if any case falls short.
"""
import argparse
import json
import os
import subprocess
import sys

import h5py
import keras
import numpy as np
from keras.src.legacy.saving import legacy_h5_format

A = keras.applications
MODULE = {  # application -> module whose preprocess_input it uses
    "VGG16": "vgg16", "VGG19": "vgg19", "ResNet50": "resnet", "ResNet101": "resnet", "ResNet152": "resnet",
    "ResNet50V2": "resnet_v2", "ResNet101V2": "resnet_v2", "ResNet152V2": "resnet_v2", "InceptionV3": "inception_v3",
    "InceptionResNetV2": "inception_resnet_v2", "Xception": "xception", "MobileNet": "mobilenet",
    "MobileNetV2": "mobilenet_v2", "MobileNetV3Small": "mobilenet_v3", "MobileNetV3Large": "mobilenet_v3",
    "DenseNet121": "densenet", "DenseNet169": "densenet", "DenseNet201": "densenet",
    "NASNetMobile": "nasnet", "NASNetLarge": "nasnet",  # NASNetMobile: Keras refuses torch; see check_nasnet_builder.py
    **{f"EfficientNetB{i}": "efficientnet" for i in range(8)},
    **{f"EfficientNetV2{v}": "efficientnet_v2" for v in ["B0", "B1", "B2", "B3", "S", "M", "L"]},
    **{f"ConvNeXt{v}": "convnext" for v in ["Tiny", "Small", "Base", "Large", "XLarge"]},
}
S32 = (32, 32, 3)
# layers keras.applications defines without registering them: Keras needs them to load even its own files
CUSTOM_OBJECTS = {"LayerScale": keras.src.applications.convnext.LayerScale}
CUSTOM_OBJECTS["CustomScaleLayer"] = keras.src.applications.inception_resnet_v2.CustomScaleLayer
# (case name, application, keyword arguments) — one or more per module, tops and bases, small inputs
SUITE = [
    ("vgg16_base_max", "VGG16", dict(input_shape=S32, include_top=False, pooling="max")),
    ("resnet50_top", "ResNet50", dict(input_shape=S32, classes=7)),
    ("resnet50v2_base_avg", "ResNet50V2", dict(input_shape=S32, include_top=False, pooling="avg")),
    ("inceptionv3_base", "InceptionV3", dict(input_shape=(75, 75, 3), include_top=False)),
    ("inceptionresnetv2_top", "InceptionResNetV2", dict(input_shape=(75, 75, 3), classes=5)),
    ("xception_base_max", "Xception", dict(input_shape=(71, 71, 3), include_top=False, pooling="max")),
    ("mobilenet_top", "MobileNet", dict(input_shape=S32, alpha=0.25, classes=4)),
    ("mobilenetv2_top", "MobileNetV2", dict(input_shape=S32, alpha=0.35, classes=3)),
    ("mobilenetv3small_top", "MobileNetV3Small", dict(input_shape=S32, alpha=0.75, classes=5)),
    ("mobilenetv3large_min_base", "MobileNetV3Large", dict(input_shape=S32, minimalistic=True, include_top=False, pooling="avg")),
    ("densenet121_top", "DenseNet121", dict(input_shape=S32, classes=6)),
    ("efficientnetb0_top", "EfficientNetB0", dict(input_shape=S32, classes=3)),
    ("efficientnetv2b0_base", "EfficientNetV2B0", dict(input_shape=S32, include_top=False, pooling="avg")),
    ("convnexttiny_base", "ConvNeXtTiny", dict(input_shape=S32, include_top=False, pooling="avg")),
]
# --all: every other function once, and the argument variants
ALL = [
    ("vgg16_top", "VGG16", dict(input_shape=S32, classes=3)),
    ("vgg19_base", "VGG19", dict(input_shape=S32, include_top=False)),
    ("resnet101_base", "ResNet101", dict(input_shape=S32, include_top=False, pooling="avg")),
    ("resnet50_base_max", "ResNet50", dict(input_shape=S32, include_top=False, pooling="max")),
    ("resnet152_base", "ResNet152", dict(input_shape=S32, include_top=False, pooling="avg")),
    ("resnet101v2_top", "ResNet101V2", dict(input_shape=S32, classes=4, classifier_activation=None)),
    ("resnet152v2_base", "ResNet152V2", dict(input_shape=S32, include_top=False)),
    ("inceptionv3_top", "InceptionV3", dict(input_shape=(75, 75, 3), classes=3)),
    ("xception_top", "Xception", dict(input_shape=(71, 71, 3), classes=3)),
    ("inceptionresnetv2_base_avg", "InceptionResNetV2", dict(input_shape=(75, 75, 3), include_top=False, pooling="avg")),
    ("mobilenet_dm2", "MobileNet", dict(input_shape=S32, alpha=0.5, depth_multiplier=2, include_top=False, pooling="avg")),
    ("mobilenet_dropout", "MobileNet", dict(input_shape=S32, alpha=0.75, dropout=0.3, classes=5)),
    ("mobilenetv2_a13_base", "MobileNetV2", dict(input_shape=S32, alpha=1.3, include_top=False)),
    ("mobilenetv3small_min_top", "MobileNetV3Small", dict(input_shape=S32, minimalistic=True, classes=3)),
    ("mobilenetv3large_top_noprep", "MobileNetV3Large", dict(input_shape=S32, classes=3, include_preprocessing=False, dropout_rate=0.1)),
    ("mobilenetv2_odd_max", "MobileNetV2", dict(input_shape=(33, 37, 3), alpha=0.5, include_top=False, pooling="max")),
    ("mobilenetv3small_a125_top", "MobileNetV3Small", dict(input_shape=(35, 35, 3), alpha=1.25, classes=3, dropout_rate=0.0)),
    ("mobilenetv3large_base_max", "MobileNetV3Large", dict(input_shape=(33, 33, 3), include_top=False, pooling="max")),
    ("densenet169_base", "DenseNet169", dict(input_shape=S32, include_top=False, pooling="avg")),
    ("densenet201_base", "DenseNet201", dict(input_shape=S32, include_top=False, pooling="max")),
    ("densenet121_base_odd", "DenseNet121", dict(input_shape=(45, 37, 3), include_top=False)),
    ("densenet169_top_logits", "DenseNet169", dict(input_shape=(40, 33, 3), classes=3, classifier_activation=None)),
    ("nasnetlarge_base_max", "NASNetLarge", dict(input_shape=S32, include_top=False, pooling="max")),  # NASNetMobile: check_nasnet_builder.py
    *[(f"efficientnetb{i}_base", f"EfficientNetB{i}", dict(input_shape=S32, include_top=False, pooling="avg")) for i in range(1, 8)],
    *[(f"efficientnetv2{v.lower()}_base", f"EfficientNetV2{v}", dict(input_shape=S32, include_top=False, pooling="avg"))
      for v in ["B1", "B2", "B3", "S", "M", "L"]],
    ("efficientnetv2b1_top_noprep", "EfficientNetV2B1", dict(input_shape=S32, classes=3, include_preprocessing=False)),
    ("efficientnetb2_base_max_odd", "EfficientNetB2", dict(input_shape=(35, 37, 3), include_top=False, pooling="max")),
    ("efficientnetb1_base_nopool", "EfficientNetB1", dict(input_shape=S32, include_top=False)),
    ("efficientnetv2b3_base_max_odd", "EfficientNetV2B3", dict(input_shape=(35, 37, 3), include_top=False, pooling="max")),
    ("efficientnetv2s_top_logits", "EfficientNetV2S", dict(input_shape=S32, classes=3, classifier_activation=None)),
    ("efficientnetv2b0_base_gray", "EfficientNetV2B0", dict(input_shape=(32, 32, 1), include_top=False)),
    ("convnextsmall_top", "ConvNeXtSmall", dict(input_shape=S32, classes=3)),
    ("convnextbase_base", "ConvNeXtBase", dict(input_shape=S32, include_top=False, pooling="avg")),
    ("convnextlarge_base", "ConvNeXtLarge", dict(input_shape=S32, include_top=False, pooling="avg", include_preprocessing=False)),
    ("convnextxlarge_base", "ConvNeXtXLarge", dict(input_shape=S32, include_top=False, pooling="avg")),
    ("convnexttiny_top_logits", "ConvNeXtTiny", dict(input_shape=(64, 48, 3), classes=5, classifier_activation=None)),
    ("convnexttiny_base_max_gray", "ConvNeXtTiny", dict(input_shape=(32, 32, 1), include_top=False, pooling="max")),
    ("convnexttiny_base_noprep", "ConvNeXtTiny", dict(input_shape=S32, include_top=False, include_preprocessing=False)),
]


def cli_args(kw):
    a = []
    for k, v in kw.items():
        if k == "input_shape":
            a += ["--input-shape", ",".join(str(d) for d in v)]
        elif k == "include_top":
            a += [] if v else ["--no-top"]
        elif k == "include_preprocessing":
            a += [] if v else ["--no-preprocessing"]
        elif k == "minimalistic":
            a += ["--minimalistic"] if v else []
        elif k == "classifier_activation":
            a += ["--classifier-activation", "linear" if v is None else v]
        elif k in ("dropout", "dropout_rate"):
            a += ["--dropout", repr(v)]
        else:
            a += ["--" + k.replace("_", "-"), str(v)]
    return a


def prepare(m, x):
    """BatchNormalization moving statistics from a batch, so that outputs stay O(1)."""
    bns = [l for l in m.layers if isinstance(l, keras.layers.BatchNormalization)]
    momenta = [l.momentum for l in bns]  # restored afterwards: the config must stay keras.applications' (0.9 in EfficientNetV2)
    for l in bns:
        l.momentum = 0.0
    m(x, training=True)
    for l, mo in zip(bns, momenta):
        l.moving_variance.assign(l.moving_variance + 1.0)
        l.momentum = mo


def canonical(cfg):
    """A Functional config as comparable data: layers keyed by name (the list order is Keras' topological order)."""
    c = json.loads(json.dumps(cfg, default=str))
    layers = {l["name"]: l for l in c.pop("layers")}
    return c, layers


def first_difference(a, b, path=""):
    if type(a) is not type(b):
        return f"{path}: {json.dumps(a)[:160]} != {json.dumps(b)[:160]}"
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}/{k}: only in {'graft' if k in a else 'keras'}"
            d = first_difference(a[k], b[k], f"{path}/{k}")
            if d:
                return d
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: length {len(a)} != {len(b)}: {json.dumps(a)[:160]} vs {json.dumps(b)[:160]}"
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    if isinstance(a, float) and isinstance(b, float):
        return None if a == b or abs(a - b) <= 1e-12 * max(abs(a), abs(b)) else f"{path}: {a!r} != {b!r}"
    return None if a == b else f"{path}: {json.dumps(a)[:160]} != {json.dumps(b)[:160]}"


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.returncode, (p.stdout + p.stderr).strip()


def check(case, app, kw, graft, work):
    keras.backend.clear_session()
    m = getattr(A, app)(weights=None, **kw)
    rng = np.random.default_rng(abs(hash(case)) % 2**32)
    shape = m.input_shape[1:]
    images = rng.uniform(0, 255, size=(2, *shape)).astype("float32")
    x = getattr(A, MODULE[app]).preprocess_input(images.copy())
    prepare(m, x)
    for l in m.layers:
        if isinstance(l, keras.layers.Dropout):
            pass  # inference: dropout is the identity in both programs
    y = keras.ops.convert_to_numpy(m.predict(x, verbose=0))
    d = os.path.join(work, case)
    os.makedirs(d, exist_ok=True)
    wpath, out, xp, gy = (os.path.join(d, f) for f in ("keras_weights.h5", "graft.h5", "x.h5", "graft_y.h5"))
    with h5py.File(wpath, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, m)
    with h5py.File(xp, "w") as f:
        f["x"] = x
    rc, msg = run([graft, "application", app, out, "--weights", wpath] + cli_args(kw))
    if rc:
        return f"graft application failed: {msg}"
    rc, msg = run([graft, "predict", out, "--input", xp, "--output", gy])
    if rc:
        return f"graft predict failed: {msg}"
    if any(not isinstance(op, keras.layers.Layer) for op in m.operations):
        # Keras 3 cannot load a legacy .h5 whose graph has operation nodes (`inputs + x`), not even
        # its own (it reads the bare {"class_name": "Add"} as the Add layer): read graft's file back
        # through graft's .keras conversion, which names the op modules
        rc, msg = run([graft, "convert", out, out[:-3] + ".keras"])
        if rc:
            return f"graft convert failed: {msg}"
        out = out[:-3] + ".keras"
    keras.backend.clear_session()
    lm = keras.saving.load_model(out, compile=False, custom_objects=CUSTOM_OBJECTS)
    (mc, ml), (kc, kl) = canonical(lm.get_config()), canonical(m.get_config())
    if set(ml) != set(kl):
        return f"layers only in graft: {sorted(set(ml) - set(kl))[:5]}, only in Keras: {sorted(set(kl) - set(ml))[:5]}"
    for name in kl:
        diff = first_difference(ml[name], kl[name], f"layer {name}")
        if diff:
            return "config differs: " + diff
    diff = first_difference(mc, kc, "model")
    if diff:
        return "config differs: " + diff
    for l in m.layers:
        for a, b in zip(lm.get_layer(l.name).get_weights(), l.get_weights()):
            if a.shape != b.shape or not np.array_equal(a, b):
                return f"weights of layer {l.name} differ"
    ly = keras.ops.convert_to_numpy(lm.predict(x, verbose=0))
    with h5py.File(gy, "r") as f:
        g = f["y"][...]
    scale = max(float(np.max(np.abs(y))), 1e-6)
    if np.max(np.abs(ly - y)) > 1e-6 * scale:
        return f"Keras' predictions from graft's file differ by {np.max(np.abs(ly - y)) / scale:.2e} (relative)"
    dev = float(np.max(np.abs(g - y))) / scale
    if not np.all(np.isfinite(g)) or dev > 1e-3:
        return f"graft's predictions differ from Keras' by {dev:.2e} (relative)"
    return f"ok: {len(kl)} layers, {m.count_params()} parameters, config and weights equal, graft vs Keras {dev:.1e}"


def wrong_weights(graft, work):
    """A weights file of another architecture: refused with the layer named, nothing written."""
    keras.backend.clear_session()
    m = A.MobileNet(input_shape=S32, alpha=0.25, include_top=False, weights=None)
    w = os.path.join(work, "mobilenet_weights.h5")
    with h5py.File(w, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, m)
    out = os.path.join(work, "wrong.h5")
    if os.path.exists(out):
        os.remove(out)
    rc, msg = run([graft, "application", "MobileNetV2", out, "--weights", w, "--input-shape", "32,32,3", "--no-top"])
    if rc == 0 or os.path.exists(out) or "layer '" not in msg:
        return f"MobileNet weights for MobileNetV2 not refused as expected (exit {rc}): {msg}"
    rc, msg = run([graft, "application", "MobileNet", out, "--weights", w, "--input-shape", "32,32,3", "--alpha", "0.5", "--no-top"])
    if rc == 0 or os.path.exists(out) or "shape" not in msg:
        return f"alpha 0.25 weights for alpha 0.5 not refused as expected (exit {rc}): {msg}"
    return "ok: refused (" + msg[:140] + ")"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--graft", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--all", action="store_true")
    p.add_argument("--only")
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)
    cases = SUITE + (ALL if a.all or a.only else [])
    if a.only:
        want = a.only.split(",")
        cases = [c for c in cases if c[0] in want or c[1] in want]
    failed = 0
    for case, app, kw in cases:
        try:
            r = check(case, app, kw, a.graft, a.work)
        except Exception as e:  # a Keras-side failure is a failed case, not a crash of the check
            r = f"error: {type(e).__name__}: {e}"
        ok = r.startswith("ok")
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'} {case} ({app}): {r}", flush=True)
    if not a.only:
        r = wrong_weights(a.graft, a.work)
        failed += not r.startswith("ok")
        print(f"{'PASS' if r.startswith('ok') else 'FAIL'} wrong_weights: {r}", flush=True)
    print(f"{len(cases) + (0 if a.only else 1) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
