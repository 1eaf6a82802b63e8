#!/usr/bin/python3
"""Independent reference outputs (numpy + h5py, float64) for the weights-only corpus CNNs used by
tests/test_cnn_models.cpp. The architectures come from the source repositories' model.yaml /
model_struct.json (hackbing: Conv2D-MaxPool-Flatten-Dense-Dense; aimining: a channels_first
Conv2D followed by channels_last layers). Input sample n: x[h, w] = ((3h + 5w + 7n) % 11) / 10.
Usage: /usr/bin/python3 tests/cnn_numpy_reference.py [KERAS_CORPUS_DIR] (default ../shared/keras-corpus
beside the checkout)"""
import os
import sys
import h5py
import numpy as np

corpus = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "keras-corpus")


def weights(path):
    f = h5py.File(path, "r")
    r = {}
    for ln in f.attrs["layer_names"]:
        ln = ln.decode() if isinstance(ln, bytes) else ln
        g = f[ln]
        r[ln] = [np.array(g[w.decode() if isinstance(w, bytes) else w], dtype=np.float64) for w in g.attrs["weight_names"]]
    return r


def conv_valid_nhwc(x, k, b):  # x (H, W, C), k (kh, kw, C, F): cross-correlation, as Keras
    kh, kw, _, f = k.shape
    H, W = x.shape[0] - kh + 1, x.shape[1] - kw + 1
    y = np.zeros((H, W, f))
    for i in range(kh):
        for j in range(kw):
            y += np.tensordot(x[i:i + H, j:j + W, :], k[i, j], axes=([2], [0]))
    return y + b


def maxpool2(x):  # (H, W, C), valid 2x2 stride 2
    H, W = x.shape[0] // 2, x.shape[1] // 2
    return x[:2 * H, :2 * W].reshape(H, 2, W, 2, -1).max(axis=(1, 3))


def relu(x):
    return np.maximum(x, 0)


def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def sample(n):
    h, w = np.meshgrid(np.arange(28), np.arange(28), indexing="ij")
    return (((3 * h + 5 * w + 7 * n) % 11) / 10.0)[:, :, None]


def hackbing(x, W):
    y = relu(conv_valid_nhwc(x, *W["conv2d_1"]))
    y = maxpool2(y).reshape(-1)
    y = relu(y @ W["dense_1"][0] + W["dense_1"][1])
    return softmax(y @ W["dense_2"][0] + W["dense_2"][1])


def aimining(x, W):
    # conv2d_25: channels_first on a (1, 28, 28) input (the same memory as (28, 28, 1)): output (32, 26, 26)
    y = relu(conv_valid_nhwc(x, *W["conv2d_25"]))  # (26, 26, 32) = NHWC
    y = np.transpose(y, (2, 0, 1))                  # (32, 26, 26) as Keras stores it channels_first
    # conv2d_26 (channels_last) reads (32, 26, 26) as H=32, W=26, C=26
    y = relu(conv_valid_nhwc(y, *W["conv2d_26"]))  # (30, 24, 32)
    y = maxpool2(y).reshape(-1)                     # (15, 12, 32) -> 5760
    y = relu(y @ W["dense_25"][0] + W["dense_25"][1])
    return softmax(y @ W["dense_26"][0] + W["dense_26"][1])


for name, fn, file in [("hackbing", hackbing, "hackbing_model_weights.h5"), ("aimining", aimining, "aimining_model_weights.h5")]:
    W = weights(corpus + "/" + file)
    for n in range(2):
        p = fn(sample(n), W)
        print(name, n, ", ".join("%.9g" % v for v in p))
