#!/usr/bin/python3
"""torch_bench.py — the PyTorch twin of bench/graft_bench.cpp (bench/run drives both).

Same architectures, same initial weights (read with h5py from the .h5 files graft_bench prepare
writes, following layer_names / weight_names), same real Fashion-MNIST data, same batch sizes,
same optimizer (plain SGD), same warm-up (three steps on the first batch). One workload per
process; prints one line "RESULT {json}".

  torch_bench.py run WORKLOAD --weights DIR [--data DIR] [--threads N] [--samples N] [--epochs N] [--no-shuffle]
                 [--min-time S]
  torch_bench.py check --weights DIR --dumps DIR [--data DIR]   (graft's predictions vs PyTorch's)
  torch_bench.py blas    (GFLOP/s of the MLP's products through PyTorch's BLAS: bench/run uses it
                          to pick OpenBLAS's best kernel set for this processor)

PyTorch at its best: the softmax / sigmoid heads are trained through the fused log-softmax
cross-entropy and BCE-with-logits losses (mathematically the Keras models; cheaper and stabler),
predictions run under torch.inference_mode(), frozen layers have requires_grad=False (autograd
records nothing below the head).
"""
import argparse
import gzip
import json
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def peak_rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


# ---- data -------------------------------------------------------------------------------------

def read_split(data_dir, train):
    p = data_dir + ("/train-" if train else "/t10k-")
    with gzip.open(p + "labels-idx1-ubyte.gz", "rb") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    with gzip.open(p + "images-idx3-ubyte.gz", "rb") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    x = images.astype(np.float32) * np.float32(1.0 / 255.0)  # graft: float(pixel) * float(1/255)
    return x, labels


def task_a(x, y):
    keep = (y != 5) & (y != 6)
    ya = y[keep].astype(np.int64)
    ya = np.where(ya > 6, ya - 2, ya)
    return x[keep], ya


def task_b(x, y):
    keep = (y == 5) | (y == 6)
    return x[keep], (y[keep] == 6).astype(np.float32).reshape(-1, 1)


# ---- models and weights from the Keras .h5 ---------------------------------------------------

def keras_weights(path):
    """[(layer_name, [arrays in weight_names order])] of a legacy Keras .h5 file."""
    out = []
    with h5py.File(path, "r") as f:
        g = f["model_weights"] if "model_weights" in f else f
        for ln in g.attrs["layer_names"]:
            ln = ln.decode() if isinstance(ln, bytes) else ln
            lg = g[ln]
            names = [w.decode() if isinstance(w, bytes) else w for w in lg.attrs["weight_names"]]
            if names:
                out.append((ln, [np.asarray(lg[w]) for w in names]))
    return out


def set_linear(lin, kernel, bias):
    # Keras Dense kernel [in, out]; torch Linear weight [out, in]
    lin.weight.data.copy_(torch.from_numpy(np.ascontiguousarray(kernel.T)))
    lin.bias.data.copy_(torch.from_numpy(bias))


def set_conv(conv, kernel, bias):
    # Keras Conv2D kernel [kh, kw, in, out]; torch Conv2d weight [out, in, kh, kw]
    conv.weight.data.copy_(torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))))
    conv.bias.data.copy_(torch.from_numpy(bias))


def mlp_trunk():
    layers = [nn.Flatten()]
    sizes = [784, 300, 100, 50, 50, 50]
    for i in range(5):
        layers += [nn.Linear(sizes[i], sizes[i + 1]), nn.SELU()]
    return layers


def model_a(path):
    m = nn.Sequential(*mlp_trunk(), nn.Linear(50, 8))  # logits; softmax in the loss / at predict
    lins = [l for l in m if isinstance(l, nn.Linear)]
    ws = keras_weights(path)
    assert len(ws) == len(lins), (len(ws), len(lins))
    for lin, (_, (k, b)) in zip(lins, ws):
        set_linear(lin, k, b)
    return m


def model_b_on_a(path_b):
    m = nn.Sequential(*mlp_trunk(), nn.Linear(50, 1))  # logit; sigmoid in the loss
    lins = [l for l in m if isinstance(l, nn.Linear)]
    ws = keras_weights(path_b)
    assert len(ws) == len(lins), (len(ws), len(lins))
    for lin, (_, (k, b)) in zip(lins, ws):
        set_linear(lin, k, b)
    for lin in lins[:-1]:  # the reused trunk is frozen
        for p in lin.parameters():
            p.requires_grad_(False)
    return m


def model_cnn(path):
    m = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10))
    ws = keras_weights(path)
    convs = [l for l in m if isinstance(l, nn.Conv2d)]
    lins = [l for l in m if isinstance(l, nn.Linear)]
    assert len(ws) == 4
    set_conv(convs[0], *ws[0][1])
    set_conv(convs[1], *ws[1][1])
    # Keras flattens NHWC as (h, w, c); torch flattens NCHW as (c, h, w): permute the kernel's rows.
    k, b = ws[2][1]
    k = k.reshape(7, 7, 64, 128).transpose(2, 0, 1, 3).reshape(3136, 128)
    set_linear(lins[0], k, b)
    set_linear(lins[1], *ws[3][1])
    return m


# ---- workloads -------------------------------------------------------------------------------

def train(model, x, y, loss_fn, lr, epochs, shuffle, seed, min_time):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr)
    x = torch.from_numpy(x)
    y = torch.from_numpy(y)
    n = x.shape[0]

    def step(xb, yb):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(3):  # warm-up, as graft_bench
        step(x[:32], y[:32])
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    total = 0.0
    done = 0
    # the workload's epochs, then more whole epochs until min_time has passed (as graft_bench)
    while done < epochs or time.perf_counter() - t0 < min_time:
        idx = torch.randperm(n, generator=g) if shuffle else torch.arange(n)
        total = 0.0
        for i in range(0, n, 32):
            bi = idx[i:i + 32]
            total += step(x[bi], y[bi]) * bi.shape[0]
        done += 1
    secs = time.perf_counter() - t0
    return n * done, secs, total / n


def predict(model, x, batch, final, min_time):
    model.eval()
    x = torch.from_numpy(x)
    n = x.shape[0]
    with torch.inference_mode():
        for i in range(0, min(n, 20 * batch), batch):  # warm-up: 20 batches, as graft_bench
            final(model(x[i:i + batch]))
        t0 = time.perf_counter()
        out = None
        passes = 0
        while passes == 0 or time.perf_counter() - t0 < min_time:  # whole passes until min_time (as graft_bench)
            for i in range(0, n, batch):
                yb = final(model(x[i:i + batch]))
                if out is None:
                    out = torch.empty((n,) + tuple(yb.shape[1:]))
                out[i:i + batch] = yb
            passes += 1
        secs = time.perf_counter() - t0
    return n * passes, secs, out


def take(x, y, n):
    return (x[:n], y[:n]) if n and n < x.shape[0] else (x, y)


def run(a):
    w = a.weights + "/"
    wl = a.workload
    loss = -1.0
    first = -1.0
    if wl == "load":
        t = []
        for _ in range(20):
            t0 = time.perf_counter()
            model_a(w + "my_model_A.h5")
            t.append(time.perf_counter() - t0)
        first = t[0]
        samples, secs = 1, sorted(t[1:])[9]
    elif wl == "mlp_train":
        x, y = take(*task_a(*read_split(a.data, True)), a.samples)
        m = model_a(w + "my_model_A.h5")
        samples, secs, loss = train(m, x, y, F.cross_entropy, 1e-3, a.epochs or 1, a.shuffle, a.seed, a.min_time)
    elif wl == "finetune_frozen":
        x, y = take(*task_b(*read_split(a.data, True)), a.samples)
        m = model_b_on_a(w + "my_model_B_on_A.h5")
        samples, secs, loss = train(m, x, y, F.binary_cross_entropy_with_logits, 1e-3, a.epochs or 4, a.shuffle, a.seed, a.min_time)
    elif wl == "cnn_train":
        x, y = take(*read_split(a.data, True), a.samples or 6400)
        x = x.reshape(-1, 1, 28, 28)
        m = model_cnn(w + "cnn.h5")
        samples, secs, loss = train(m, x, y.astype(np.int64), F.cross_entropy, 1e-2, a.epochs or 1, a.shuffle, a.seed, a.min_time)
    elif wl in ("mlp_predict256", "mlp_predict1"):
        one = wl == "mlp_predict1"
        x, _ = take(*read_split(a.data, False), a.samples or (4000 if one else 10000))
        m = model_a(w + "my_model_A.h5")
        samples, secs, _ = predict(m, x, 1 if one else 256, lambda z: torch.softmax(z, 1), a.min_time)
    elif wl == "cnn_predict":
        x, _ = take(*read_split(a.data, False), a.samples or 5120)
        m = model_cnn(w + "cnn.h5")
        samples, secs, _ = predict(m, x.reshape(-1, 1, 28, 28), 256, lambda z: torch.softmax(z, 1), a.min_time)
    else:
        sys.exit("torch_bench: unknown workload " + wl)
    r = {"framework": "pytorch", "workload": wl, "threads": a.threads, "samples": samples, "seconds": secs,
         "samples_per_s": samples / secs if secs > 0 else 0.0, "loss": loss, "first": first,
         "peak_rss_kb": peak_rss_kb()}
    print("RESULT " + json.dumps(r), flush=True)


def check(a):
    """graft's dumped predictions (graft_bench --dump) against PyTorch on the same inputs."""
    w = a.weights + "/"
    x, _ = read_split(a.data, False)
    x = x[:a.samples or 512]
    worst = 0.0
    for name, m, xin in (("mlp", model_a(w + "my_model_A.h5"), x),
                         ("cnn", model_cnn(w + "cnn.h5"), x.reshape(-1, 1, 28, 28))):
        m.eval()
        with torch.inference_mode():
            p = torch.softmax(m(torch.from_numpy(xin)), 1).numpy()
        g = np.fromfile(a.dumps + "/" + name + ".f32", np.float32).reshape(p.shape)
        d = float(np.abs(g - p).max())
        agree = float((g.argmax(1) == p.argmax(1)).mean())
        print("CHECK %s: max |graft - pytorch| = %.3g over %d samples, argmax agreement %.4f" % (name, d, len(x), agree))
        worst = max(worst, d)
    if worst > 1e-4:
        sys.exit("torch_bench: the twins disagree (max difference %.3g)" % worst)


def blas(a):
    """Float products of the MLP's shapes (batch 32 and 256) through torch.mm: GFLOP/s, best of 5."""
    torch.manual_seed(0)
    shapes = [(32, 784, 300), (256, 784, 300), (32, 300, 100)]
    rate = 0.0
    for m, k, n in shapes:
        x, w = torch.randn(m, k), torch.randn(k, n)
        reps = max(3, int(2e8 / (2 * m * k * n)))
        best = 0.0
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(reps):
                torch.mm(x, w)
            best = max(best, 2.0 * m * k * n * reps / (time.perf_counter() - t) / 1e9)
        rate += best / len(shapes)
    print("BLAS %.2f" % rate)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["run", "check", "blas"])
    ap.add_argument("workload", nargs="?")
    ap.add_argument("--weights", default=".")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--dumps", default=".")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--samples", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--no-shuffle", dest="shuffle", action="store_false")
    ap.add_argument("--min-time", type=float, default=0.0,
                    help="repeat whole epochs / predict passes until this many seconds have passed")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    if a.cmd == "check":
        check(a)
    elif a.cmd == "blas":
        blas(a)
    else:
        run(a)


if __name__ == "__main__":
    main()
