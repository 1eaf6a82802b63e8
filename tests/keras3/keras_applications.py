"""Every keras.applications family, small, made by real Keras 3 (run under ../shared/tools/keras3/run),
for the suite's Keras-exactness check of predictions and of a fine-tuning run:

  keras_applications.py OUT_DIR [--all] [--only NAME,...]

For each family: the conv base (include_top=False, pooling="avg"; weights=None), BatchNormalization
statistics set from real activations (so outputs are O(1)), every BatchNormalization frozen as the
Keras fine-tuning guide does, the rest trainable, compiled with SGD(1e-2, momentum=0.9) and mean
squared error towards random targets (pooled features, not a saturating softmax: a comparison
of two float32 programs needs outputs that rounding does not flip). Writes
<name>.h5 and <name>.keras (before training), and <name>_io.h5 with x_train, y_train, x and what
Keras computed: y_before / y_after (float32, after 2 steps of batch 2) and y_before64 / y_after64
(the same run with the float64 dtype policy, for the float32 rounding floor); OUT_DIR/families.tsv.
"""
import os
import sys

import h5py
import keras
import numpy as np

A = keras.applications
SMALL = {  # the suite runs these every time
    "MobileNet": lambda: A.MobileNet(input_shape=(32, 32, 3), alpha=0.25, weights=None, include_top=False, pooling="avg"),
    "MobileNetV2": lambda: A.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, include_top=False, pooling="avg"),
    "MobileNetV3Small": lambda: A.MobileNetV3Small(input_shape=(32, 32, 3), alpha=0.75, weights=None, include_top=False, pooling="avg"),
    "MobileNetV3Large": lambda: A.MobileNetV3Large(input_shape=(32, 32, 3), alpha=0.75, minimalistic=True, weights=None, include_top=False, pooling="avg"),
    "EfficientNetB0": lambda: A.EfficientNetB0(input_shape=(32, 32, 3), weights=None, include_top=False, pooling="avg"),
    "EfficientNetV2B0": lambda: A.EfficientNetV2B0(input_shape=(32, 32, 3), weights=None, include_top=False, pooling="avg"),
    "DenseNet121": lambda: A.DenseNet121(input_shape=(32, 32, 3), weights=None, include_top=False, pooling="avg"),
}
LARGE = {
    "VGG16": lambda: A.VGG16(input_shape=(32, 32, 3), weights=None, include_top=False, pooling="avg"),
    "VGG19": lambda: A.VGG19(input_shape=(32, 32, 3), weights=None, include_top=False, pooling="avg"),
    "ResNet50": lambda: A.ResNet50(input_shape=(32, 32, 3), weights=None, include_top=False, pooling="avg"),
    "ResNet50V2": lambda: A.ResNet50V2(input_shape=(32, 32, 3), weights=None, include_top=False, pooling="avg"),
    "InceptionV3": lambda: A.InceptionV3(input_shape=(75, 75, 3), weights=None, include_top=False, pooling="avg"),
    "Xception": lambda: A.Xception(input_shape=(71, 71, 3), weights=None, include_top=False, pooling="avg"),
    "InceptionResNetV2": lambda: A.InceptionResNetV2(input_shape=(75, 75, 3), weights=None, include_top=False, pooling="avg"),
    "ConvNeXtTiny": lambda: A.ConvNeXtTiny(input_shape=(32, 32, 3), weights=None, include_top=False, pooling="avg"),
    "EfficientNetB1": lambda: A.EfficientNetB1(input_shape=(32, 32, 3), weights=None, include_top=False, pooling="avg"),
    "EfficientNetV2S": lambda: A.EfficientNetV2S(input_shape=(32, 32, 3), weights=None, include_top=False, pooling="avg"),
    # the whole classifier (include_top, softmax over 5 classes), not only the base
    "MobileNetV3SmallFull": lambda: A.MobileNetV3Small(input_shape=(32, 32, 3), weights=None, classes=5, minimalistic=False),
}


def prepare(build, x):
    m = build()
    for l in m.layers:  # no random dropout masks while two programs' training is compared
        if isinstance(l, keras.layers.Dropout):
            l.rate = 0.0
    bns = [l for l in m.layers if isinstance(l, keras.layers.BatchNormalization)]
    for l in bns:
        l.momentum = 0.0
    m(x, training=True)  # moving statistics = this batch's statistics
    for l in bns:
        # + 1 on the variance: a channel this batch leaves (nearly) constant would otherwise be
        # amplified up to 1/sqrt(epsilon) times, and a few such layers make training explode
        l.moving_variance.assign(l.moving_variance + 1.0)
        l.momentum = 0.99
        l.trainable = False
    m.compile(optimizer=keras.optimizers.SGD(1e-2, momentum=0.9), loss="mean_squared_error")
    return m


def run(m, x, y):
    before = keras.ops.convert_to_numpy(m.predict(x, verbose=0))
    m.fit(x, y, batch_size=2, epochs=1, shuffle=False, verbose=0)
    return before, keras.ops.convert_to_numpy(m.predict(x, verbose=0))


def main():
    out = sys.argv[1]
    fams = dict(SMALL)
    if "--all" in sys.argv:
        fams.update(LARGE)
    if "--only" in sys.argv:
        want = sys.argv[sys.argv.index("--only") + 1].split(",")
        fams = {k: v for k, v in {**SMALL, **LARGE}.items() if k in want}
    os.makedirs(out, exist_ok=True)
    lines = []
    for name, build in fams.items():
        keras.config.set_dtype_policy("float32")
        keras.utils.set_random_seed(7)
        probe = build()
        rng = np.random.default_rng(7)
        shape = probe.input_shape[1:]
        x = rng.uniform(-1, 1, (4,) + shape).astype("float32")
        x_stats = rng.uniform(-1, 1, (16,) + shape).astype("float32")
        y = rng.uniform(-1, 1, (4,) + probe.output_shape[1:]).astype("float32")
        keras.utils.set_random_seed(7)
        m = prepare(build, x_stats)
        m.save(os.path.join(out, name + ".h5"))
        m.save(os.path.join(out, name + ".keras"))
        weights = m.get_weights()
        y0, y1 = run(m, x, y)
        keras.config.set_dtype_policy("float64")
        m64 = prepare(build, x_stats.astype("float64"))
        m64.set_weights([w.astype("float64") for w in weights])
        y0d, y1d = run(m64, x.astype("float64"), y.astype("float64"))
        keras.config.set_dtype_policy("float32")
        with h5py.File(os.path.join(out, name + "_io.h5"), "w") as f:
            f["x_train"], f["y_train"], f["x"] = x, y, x
            f["y_before"], f["y_after"], f["y_before64"], f["y_after64"] = y0, y1, y0d, y1d
        lines.append(f"{name}\n")
        print("made", name, "|y| before", float(np.abs(y0).max()), "change", float(np.abs(y1 - y0).max()),
              "float32 vs float64:", float(np.abs(y0 - y0d).max()), float(np.abs(y1 - y1d).max()), flush=True)
    with open(os.path.join(out, "families.tsv"), "w") as f:
        f.writelines(lines)


if __name__ == "__main__":
    main()
