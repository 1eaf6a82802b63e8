#!/usr/bin/env python3
"""`graft fine-tune`, `graft evaluate --images` and `graft predict --images` as a user runs them.

A folder of class subfolders of PNG and JPEG files (three colour classes, noisy); a small Keras 3
CNN from the fixtures fine-tuned (head on the cached frozen trunk) and a random MobileNetV2 built by
`graft application` (augmentation, then the top of the trunk unfrozen); evaluate (prints `accuracy: ...`), predict (CSV),
bad folders (clear errors), and real Keras 3 loading the result with the same predictions.

usage: fine_tune_images.py --graft GRAFT --work DIR --shared SHARED [--keras3 RUN --load-check SCRIPT]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
from PIL import Image


def run(cmd, ok=True):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if ok and p.returncode != 0:
        sys.exit(f"FAILED ({p.returncode}): {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    return p


def make_folder(root, per_class, rng):
    for c, name in enumerate(["blue_things", "green_things", "red_things"]):
        os.makedirs(os.path.join(root, name))
        for i in range(per_class):
            img = rng.randint(0, 120, (40, 36, 3)).astype(np.uint8)  # not square: resized by graft
            img[..., 2 - c] += 120
            path = os.path.join(root, name, f"img_{i:03d}.{'png' if i % 2 else 'jpg'}")
            Image.fromarray(img).save(path, quality=95)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--graft", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--shared", required=True)
    ap.add_argument("--keras3")
    ap.add_argument("--load-check")
    a = ap.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    g = a.graft
    images = os.path.join(a.work, "images")
    make_folder(images, 16, np.random.RandomState(0))
    # a Keras 3 CNN (conv -> global pooling -> dense) from the fixtures, and a MobileNetV2 built by graft
    small = os.path.join(a.shared, "keras-fixtures", "global_avg_pool", "model.h5")
    base = os.path.join(a.work, "base.h5")
    run([g, "application", "MobileNetV2", base, "--no-top", "--pooling", "avg", "--input-shape", "32,32,3", "--alpha", "0.35"])

    out = os.path.join(a.work, "tuned.h5")
    p = run([g, "fine-tune", small, "--images", images, "--output", out, "--epochs", "20", "--batch-size", "8",
             "--seed", "1", "--lr", "0.05", "--validation-split", "0.25", "--preprocessing", "unit"])
    text = p.stdout
    for want in ["Found 48 files belonging to 3 classes.", "Using 36 files for training.", "Using 12 files for validation.",
                 "Epoch 1/20", "Epoch 20/20", "Feature cache: memory: outputs of", "cut after: global_average_pooling2d",
                 "preprocessing: unit", "classes: blue_things,green_things,red_things"]:
        if want not in text:
            sys.exit(f"fine-tune output lacks {want!r}:\n{text}")
    if not re.search(r"^5/5 - \d+s - \S+/step - accuracy: [0-9.]+ - loss: [0-9.]+ - val_accuracy: [0-9.]+ - val_loss: [0-9.]+$",
                     text, re.M):
        sys.exit(f"no Keras progress line in:\n{text}")
    assert os.path.exists(out)

    p = run([g, "evaluate", out, "--images", images])
    m = re.search(r"^accuracy: ([0-9.]+)$", p.stdout, re.M)
    if not m or not re.search(r"^loss: [0-9.e+-]+$", p.stdout, re.M):
        sys.exit(f"evaluate printed:\n{p.stdout}")
    acc = float(m.group(1))
    if acc < 0.8:
        sys.exit(f"the fine-tuned model should separate three colour classes, accuracy {acc}")

    csv = os.path.join(a.work, "pred.csv")
    run([g, "predict", out, "--images", images, "--output", csv])
    rows = open(csv).read().splitlines()
    assert rows[0] == "file,class,blue_things,green_things,red_things", rows[0]
    assert len(rows) == 49, len(rows)
    right = sum(1 for r in rows[1:] if r.split(",")[1] in r.split(",")[0])
    assert abs(right / 48 - acc) < 1e-9, (right, acc)  # the CSV's classes agree with evaluate's accuracy
    probs = [float(v) for v in rows[1].split(",")[2:]]
    assert abs(sum(probs) - 1) < 1e-5, probs

    # augmentation, then the top of the trunk unfrozen
    out2 = os.path.join(a.work, "tuned2.keras")
    p = run([g, "fine-tune", base, "--images", images, "--output", out2, "--epochs", "1", "--batch-size", "8",
             "--augment", "flip=horizontal,rotation=0.1,zoom=0.1,translation=0.1,contrast=0.2",
             "--unfreeze-from-top", "6", "--fine-tune-epochs", "1"])
    for want in ["Epoch 2/2", "fine-tuning the top 6 layers", "feature cache: off", "preprocessing: tf"]:
        if want not in p.stdout:
            sys.exit(f"fine-tune output lacks {want!r}:\n{p.stdout}")

    # bad input: clear errors, no crash
    for args, msg in [([base, "--images", os.path.join(a.work, "missing"), "--output", out], "missing"),
                      ([base, "--images", os.path.join(images, "red_things"), "--output", out], "class"),
                      ([base, "--images", images, "--output", out, "--augment", "spin=3"], "unknown augmentation 'spin'"),
                      ([base, "--images", images, "--output", out, "--cut-at", "nope"], "no layer 'nope'")]:
        p = run([g, "fine-tune"] + args, ok=False)
        if p.returncode == 0 or p.returncode < 0 or msg not in p.stderr:
            sys.exit(f"fine-tune {args} should fail cleanly mentioning {msg!r}: rc {p.returncode}\n{p.stderr}")

    if a.keras3:
        for model, hw in [(out, 9), (out2, 32)]:
            x = np.random.RandomState(1).randint(0, 256, (4, hw, hw, 3)).astype("float32")
            xin, yout = os.path.join(a.work, "x.h5"), os.path.join(a.work, "y.h5")
            with h5py.File(xin, "w") as f:
                f["x"] = x
            run([g, "predict", model, "--input", xin, "--output", yout])
            p = run([a.keras3, a.load_check, model, "--input", xin, "--expect", yout], ok=False)
            if p.returncode != 0:
                sys.exit(f"Keras does not load {model} as graft does:\n{p.stdout}\n{p.stderr}")
    print("fine-tune, evaluate, predict on image folders: ok")


if __name__ == "__main__":
    main()
