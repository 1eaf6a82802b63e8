"""Keras' tutorial model with data augmentation, through graft and back (CTest keras3_augmentation_model).

  ../shared/tools/keras3/run tests/keras3/check_augmentation_model.py --graft BIN --work DIR

Builds in real Keras 3.15.1
  * the image-classification tutorial model: Sequential([Input, data_augmentation (a Sequential of
    RandomFlip("horizontal"), RandomRotation(0.1), RandomZoom(0.1), RandomTranslation, RandomContrast),
    Rescaling(1/255), a small conv base, GlobalAveragePooling2D, Dense]);
  * a colour model with RandomBrightness, as .keras only (Keras 3.15.1 cannot write RandomBrightness
    to a legacy .h5: its legacy get_config deep-copies a module, "cannot pickle 'module' object");
  * a preprocessing model: Resizing (crop_to_aspect_ratio), CenterCrop, an adapted Normalization,
    Resizing (pad_to_aspect_ratio, bicubic, antialias) in front of a conv base;
  * a RandomCrop model (configs and files only: in inference Keras 3.15.1 returns RandomCrop's
    input unchanged, keras-team/keras#21868, where graft smart-resizes as Keras documents);
saves each as .h5 and .keras, then checks that
  1. `graft predict` on both files predicts what Keras predicts (inference);
  2. `graft convert` re-saves them (.h5 and .keras) and Keras loads graft's files, predicts the
     same, and finds every preprocessing layer's config equal to the one Keras wrote;
  3. `graft fit` trains the tutorial model one epoch (augmentation active, gradients through it),
     and Keras loads the result and predicts what `graft predict` predicts for it.
Prints one line per check and `augmentation model: N passed, N failed`; exit 1 on any failure.
"""
import argparse
import json
import os
import subprocess
import sys
import zipfile

import h5py
import keras
import numpy as np
from keras import layers

PREPROCESSING = {"RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast", "RandomBrightness",
                 "RandomCrop", "Resizing", "CenterCrop", "Rescaling", "Normalization"}
results = []


def report(ok, what, detail=""):
    results.append(ok)
    print(("ok    " if ok else "FAIL  ") + what + (f": {detail}" if detail else ""), flush=True)


def graft(args, *cmd):
    r = subprocess.run([args.graft, *cmd], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"graft {' '.join(cmd)}: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout


def write_h5(path, **arrays):
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f[k] = v


def read_y(path):
    with h5py.File(path, "r") as f:
        return f["y"][()]


def close(a, b, atol=1e-5, rtol=1e-4):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False, f"shapes {a.shape} and {b.shape}"
    d = np.abs(a - b)
    return bool(np.all(d <= atol + rtol * np.abs(b))), f"max |diff| {d.max():.3g}"


def model_config(path):
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            return json.loads(z.read("config.json"))
    with h5py.File(path, "r") as f:
        return json.loads(f.attrs["model_config"])


def without_shared_ids(o):
    """A config without .keras' "shared_object_id" markers (objects several layers share, such as
    one DTypePolicy: serialization bookkeeping, not part of a layer's config)."""
    if isinstance(o, dict):
        return {k: without_shared_ids(v) for k, v in o.items() if k != "shared_object_id"}
    if isinstance(o, list):
        return [without_shared_ids(v) for v in o]
    return o


def preprocessing_configs(cfg):
    """class name + layer name -> config, for every preprocessing layer, nested models included."""
    cfg = without_shared_ids(cfg)
    out = {}

    def walk(c):
        conf = c.get("config", {}) if isinstance(c, dict) else {}
        for lc in conf.get("layers", []) if isinstance(conf, dict) else []:
            if lc.get("class_name") in PREPROCESSING:
                out[(lc["class_name"], lc["config"]["name"])] = lc["config"]
            walk(lc)
    walk(cfg)
    return out


def tutorial_model(h, w):
    aug = keras.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.1), layers.RandomZoom(0.1),
                            layers.RandomTranslation(0.1, 0.1, fill_mode="nearest"), layers.RandomContrast(0.2)],
                           name="data_augmentation")
    m = keras.Sequential([keras.Input((h, w, 3)), aug, layers.Rescaling(1.0 / 255), layers.Conv2D(8, 3, activation="relu"),
                          layers.MaxPooling2D(), layers.Conv2D(16, 3, padding="same", activation="relu"),
                          layers.GlobalAveragePooling2D(), layers.Dense(3, activation="softmax")], name="tutorial")
    m.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def preprocessing_model(rng):
    norm = layers.Normalization()
    norm.adapt(rng.uniform(0, 255, size=(20, 28, 32, 3)).astype("float32"))
    m = keras.Sequential([keras.Input((37, 50, 3)), layers.Resizing(30, 36, crop_to_aspect_ratio=True), layers.CenterCrop(28, 32),
                          norm, layers.Resizing(20, 30, interpolation="bicubic", pad_to_aspect_ratio=True, fill_value=0.5,
                                                antialias=True),
                          layers.Conv2D(4, 3, activation="relu"), layers.GlobalAveragePooling2D(), layers.Dense(2)], name="preprocessing")
    m.compile(optimizer="sgd", loss="mse")
    return m


def colour_model():
    m = keras.Sequential([keras.Input((12, 10, 3)), layers.RandomBrightness((-0.2, 0.3), value_range=(255, 0), seed=2),
                          layers.RandomContrast((0.1, 0.3), value_range=(0, 255)), layers.Conv2D(4, 3), layers.Flatten(),
                          layers.Dense(2)], name="colour")
    m.compile(optimizer="sgd", loss="mse")
    return m


def crop_model():
    m = keras.Sequential([keras.Input((30, 30, 3)), layers.RandomCrop(24, 24, seed=3), layers.RandomFlip(seed=4),
                          layers.Conv2D(4, 3), layers.GlobalAveragePooling2D(), layers.Dense(2)], name="random_crop")
    m.compile(optimizer="sgd", loss="mse")
    return m


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--graft", required=True)
    p.add_argument("--work", required=True)
    args = p.parse_args()
    os.makedirs(args.work, exist_ok=True)
    W = lambda name: os.path.join(args.work, name)  # noqa: E731
    keras.utils.set_random_seed(1)
    rng = np.random.RandomState(0)

    models = [(tutorial_model(32, 40), (5, 32, 40, 3), True, ("h5", "keras")),
              (preprocessing_model(rng), (4, 37, 50, 3), True, ("h5", "keras")), (colour_model(), (3, 12, 10, 3), True, ("keras",)),
              (crop_model(), (3, 30, 30, 3), False, ("h5", "keras"))]
    for m, shape, compare_predictions, exts in models:
        x = rng.uniform(0, 255, size=shape).astype("float32")
        write_h5(W(f"{m.name}_in.h5"), x=x)
        y_keras = m.predict(x, verbose=0)
        keras_cfg = None
        for ext in exts:
            src = W(f"{m.name}.{ext}")
            m.save(src)
            if keras_cfg is None:
                keras_cfg = preprocessing_configs(model_config(src))
            try:
                graft(args, "predict", src, "--input", W(f"{m.name}_in.h5"), "--output", W(f"{m.name}_{ext}_graft_y.h5"))
                y_graft = read_y(W(f"{m.name}_{ext}_graft_y.h5"))
                if compare_predictions:
                    ok, d = close(y_graft, y_keras)
                    report(ok, f"{m.name}.{ext}: graft predicts what Keras predicts", d)
                else:
                    report(y_graft.shape == y_keras.shape, f"{m.name}.{ext}: graft loads and predicts", f"shape {y_graft.shape}")
                for out_ext in ("h5", "keras"):
                    out = W(f"{m.name}_{ext}_graft.{out_ext}")
                    graft(args, "convert", src, out)
                    back = keras.saving.load_model(out)
                    y_back = back.predict(x, verbose=0)
                    ok, d = close(y_back, y_keras if compare_predictions else y_graft, atol=1e-6, rtol=1e-5)
                    if not compare_predictions:  # RandomCrop: Keras' own inference in both cases
                        ok, d = close(y_back, y_keras, atol=1e-6, rtol=1e-5)
                    report(ok, f"{m.name}.{ext} -> graft .{out_ext}: Keras loads it and predicts as before", d)
                    got = preprocessing_configs(model_config(out))
                    bad = [f"{k}: graft {got.get(k)} vs Keras {v}" for k, v in keras_cfg.items() if got.get(k) != v]
                    report(not bad and len(got) == len(keras_cfg), f"{m.name}.{ext} -> graft .{out_ext}: preprocessing configs as Keras wrote them",
                           "; ".join(bad) if bad else f"{len(got)} layers")
            except Exception as e:  # noqa: BLE001
                report(False, f"{m.name}.{ext}", str(e)[:500])

    # graft trains the tutorial model: augmentation active in training, gradients through it
    m = models[0][0]
    xt = rng.uniform(0, 255, size=(24, 32, 40, 3)).astype("float32")
    yt = rng.randint(0, 3, size=(24, 1)).astype("float32")
    write_h5(W("train.h5"), x_train=xt, y_train=yt)
    try:
        graft(args, "fit", W("tutorial.h5"), "--data", W("train.h5"), "--output", W("tutorial_fitted.h5"), "--epochs", "2",
              "--batch-size", "8", "--seed", "1")
        graft(args, "predict", W("tutorial_fitted.h5"), "--input", W("tutorial_in.h5"), "--output", W("tutorial_fitted_y.h5"))
        fitted = keras.saving.load_model(W("tutorial_fitted.h5"))
        before = np.concatenate([w.ravel() for w in m.get_weights()])
        after = np.concatenate([w.ravel() for w in fitted.get_weights()])
        report(before.shape == after.shape and not np.allclose(before, after), "graft fit changed the tutorial model's weights",
               f"max |change| {np.abs(after - before).max():.3g}" if before.shape == after.shape else "")
        x = h5py.File(W("tutorial_in.h5"), "r")["x"][()]
        ok, d = close(read_y(W("tutorial_fitted_y.h5")), fitted.predict(x, verbose=0))
        report(ok, "tutorial model after graft fit: Keras predicts what graft predicts", d)
    except Exception as e:  # noqa: BLE001
        report(False, "graft fit of the tutorial model", str(e)[:500])

    passed = sum(results)
    print(f"augmentation model: {passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
