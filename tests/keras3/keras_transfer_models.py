"""Make, with real Keras 3 (run it under ../shared/tools/keras3/run), the files a transfer-learning
user starts from: a keras.applications base (weights=None, small input), frozen, nested in a new
model with a Dense head, compiled, saved as .h5 (and .keras); and "layer zoo" models holding every
layer class graft supports, with non-default arguments; plus training data and inputs. The suite
then runs `graft fit` on each, checks that Keras loads graft's output and, for the .h5 ones, that
graft wrote the same model_config as Keras, key by key.

  keras_transfer_models.py OUT_DIR [--all]      (--all: every family, large ones included)
Writes OUT_DIR/<case>.h5|.keras, <case>_data.h5 (x_train, y_train), <case>_x.h5 (x) and
OUT_DIR/cases.tsv (one `case<TAB>model file` per line).
"""
import os
import sys

import h5py
import keras
import numpy as np

SMALL = [  # (name, builder, input size) — what the suite runs every time
    ("mobilenetv2", lambda s: keras.applications.MobileNetV2(input_shape=s, alpha=0.35, include_top=False, pooling="avg", weights=None), 32),
    ("mobilenet", lambda s: keras.applications.MobileNet(input_shape=s, alpha=0.25, include_top=False, pooling="avg", weights=None), 32),
    ("mobilenetv3large_min", lambda s: keras.applications.MobileNetV3Large(input_shape=s, alpha=0.75, minimalistic=True, include_top=False, pooling="avg", weights=None, include_preprocessing=False), 32),
    ("resnet50v2", lambda s: keras.applications.ResNet50V2(input_shape=s, include_top=False, pooling="avg", weights=None), 32),
    ("densenet121", lambda s: keras.applications.DenseNet121(input_shape=s, include_top=False, pooling="avg", weights=None), 32),
]
LARGE = [
    ("vgg16", lambda s: keras.applications.VGG16(input_shape=s, include_top=False, pooling="avg", weights=None), 32),
    ("resnet50", lambda s: keras.applications.ResNet50(input_shape=s, include_top=False, pooling="avg", weights=None), 32),
    ("inceptionv3", lambda s: keras.applications.InceptionV3(input_shape=s, include_top=False, pooling="avg", weights=None), 75),
    ("xception", lambda s: keras.applications.Xception(input_shape=s, include_top=False, pooling="avg", weights=None), 71),
]


def layer_zoo():
    """(name, model, x_train, y_train, x): every layer class graft supports, non-default arguments."""
    L = keras.layers
    rng = np.random.default_rng(11)
    out = []
    inp = keras.Input((12, 12, 3))
    h = L.Rescaling(1 / 127.5, offset=-1.0)(inp)
    h = L.ZeroPadding2D(((1, 0), (0, 1)))(h)
    h = L.Conv2D(6, 3, strides=2, padding="valid", activation="relu", use_bias=False)(h)
    h = L.BatchNormalization(momentum=0.9, epsilon=1e-2)(h)
    h = L.ReLU(max_value=6.0)(h)
    h = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="relu6")(h)
    h = L.SeparableConv2D(5, 3, padding="same", activation="silu")(h)
    h = L.LeakyReLU(negative_slope=0.1)(h)
    h = L.MaxPooling2D(2, strides=1, padding="same")(h)
    h = L.UpSampling2D(2, interpolation="bilinear")(h)
    h = L.Cropping2D(((1, 1), (2, 0)))(h)
    h = L.AveragePooling2D(3, strides=2, padding="valid")(h)
    h = L.SpatialDropout2D(0.1)(h)
    h = L.GaussianNoise(0.05)(h)
    h = L.GaussianDropout(0.05)(h)
    h = L.PReLU(shared_axes=[1, 2])(h)
    h = L.ELU(alpha=0.5)(h)
    a, b = L.GlobalAveragePooling2D()(h), L.GlobalMaxPooling2D()(h)
    merged = L.Concatenate()([L.Add()([a, b]), L.Subtract()([a, b]), L.Multiply()([a, b]),
                              L.Average()([a, b]), L.Maximum()([a, b]), L.Minimum()([a, b])])
    h = L.Dense(8, activation="gelu", kernel_initializer="he_normal", bias_initializer="ones",
                kernel_regularizer=keras.regularizers.L2(1e-3), kernel_constraint=keras.constraints.MaxNorm(3))(merged)
    h = L.Dropout(0.2)(h)
    h = L.Activation("tanh")(h)
    y = L.Softmax()(L.Dense(3)(h))
    m = keras.Model(inp, y, name="zoo_image")
    m.compile(optimizer=keras.optimizers.RMSprop(1e-3, momentum=0.5, centered=True), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
    out.append(("zoo_image", m, rng.uniform(0, 255, (4, 12, 12, 3)), rng.integers(0, 3, 4).astype("float32"),
                rng.uniform(0, 255, (3, 12, 12, 3))))
    m = keras.Sequential([keras.Input((10, 3)), L.Conv1D(4, 3, padding="causal", dilation_rate=2, activation="elu"),
                          L.MaxPooling1D(2), L.AveragePooling1D(2, padding="same"), L.SpatialDropout1D(0.1),
                          L.Flatten(), L.Reshape((3, 4)), L.GlobalMaxPooling1D(), L.Dense(2, activation="sigmoid")],
                         name="zoo_sequence")
    m.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True), loss="binary_crossentropy")
    out.append(("zoo_sequence", m, rng.uniform(-1, 1, (4, 10, 3)), rng.integers(0, 2, (4, 2)).astype("float32"),
                rng.uniform(-1, 1, (3, 10, 3))))
    m = keras.Sequential([keras.Input((5,)), L.Embedding(10, 4), L.GlobalAveragePooling1D(), L.Dense(1)], name="zoo_embedding")
    m.compile(optimizer=keras.optimizers.Adagrad(0.1), loss="mean_squared_error")
    out.append(("zoo_embedding", m, rng.integers(0, 10, (4, 5)).astype("float32"), rng.uniform(0, 1, (4, 1)),
                rng.integers(0, 10, (3, 5)).astype("float32")))
    return out


def main():
    out = sys.argv[1]
    families = SMALL + (LARGE if "--all" in sys.argv[2:] else [])
    os.makedirs(out, exist_ok=True)
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    lines = []
    for name, build, size in families:
        shape = (size, size, 3)
        x_train = rng.uniform(-1, 1, (4,) + shape).astype("float32")
        y_train = np.eye(3, dtype="float32")[rng.integers(0, 3, 4)]
        x = rng.uniform(-1, 1, (3,) + shape).astype("float32")
        for wrapper in ("seq", "func"):
            base = build(shape)
            base.trainable = False
            if wrapper == "seq":
                m = keras.Sequential([keras.Input(shape), base, keras.layers.Dense(3, activation="softmax")])
            else:
                inp = keras.Input(shape)
                m = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(base(inp)))
            m.compile(optimizer=keras.optimizers.SGD(1e-3, momentum=0.9) if wrapper == "seq" else "adam",
                      loss="categorical_crossentropy", metrics=["accuracy"])
            case = f"{name}_{wrapper}"
            ext = ".h5" if wrapper == "seq" else ".keras"
            m.save(os.path.join(out, case + ext))
            with h5py.File(os.path.join(out, case + "_data.h5"), "w") as f:
                f["x_train"], f["y_train"] = x_train, y_train
            with h5py.File(os.path.join(out, case + "_x.h5"), "w") as f:
                f["x"] = x
            lines.append(f"{case}\t{os.path.join(out, case + ext)}\n")
            print("made", case, flush=True)
    for case, m, x_train, y_train, x in layer_zoo():
        m.save(os.path.join(out, case + ".h5"))
        with h5py.File(os.path.join(out, case + "_data.h5"), "w") as f:
            f["x_train"], f["y_train"] = x_train.astype("float32"), y_train.astype("float32")
        with h5py.File(os.path.join(out, case + "_x.h5"), "w") as f:
            f["x"] = x.astype("float32")
        lines.append(f"{case}\t{os.path.join(out, case + '.h5')}\n")
        print("made", case, flush=True)
    with open(os.path.join(out, "cases.tsv"), "w") as f:
        f.writelines(lines)


if __name__ == "__main__":
    main()
