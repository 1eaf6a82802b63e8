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

mobilenet_finetune_frozen: the MobileNetV2 of mobilenet_frozen.h5 (graft_bench prepare) built in
PyTorch from the file's own Keras graph and weights (KerasGraph below: every layer of the file,
NCHW, frozen BatchNormalization in eval mode), trained the way PyTorch users train a head on a
frozen backbone: a Dataset over the image folder (PIL decode, convert("RGB"), bilinear resize to
224x224: what torchvision's ImageFolder + Resize do), a DataLoader (shuffled, batch 32,
--workers worker processes), trunk parameters with requires_grad=False, Adam(1e-3) on the head,
every epoch reading and decoding the files and running the trunk again (no cache). --trunk-mode
picks how the frozen trunk runs: eager, channels_last, or jit (torch.jit.trace + freeze +
optimize_for_inference on the trunk: folded BatchNormalization, oneDNN); bench/run uses the
fastest measured.

mobilenet_predict / mobilenet_train: the same twin on the 128 images graft_bench prepare decoded
into mobilenet_x.f32 (224x224x3, 0..255, held in memory): predict with batch 32; train every
layer (BatchNormalization in training mode, momentum converted) with Adam(1e-4), batch 32.
--trunk-mode: eager or channels_last for both, jit (trace + freeze + optimize_for_inference) for
predict; bench/run uses the fastest measured.
"""
import argparse
import gzip
import json
import os
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


# ---- a Keras functional graph run by PyTorch (the MobileNetV2 twin) ---------------------------

def _dec(v):
    return v.decode() if isinstance(v, bytes) else v


def keras_weights_by_layer(path):
    """{layer name: {weight name: array}} of a Keras .h5 file, nested models opened (the layer is
    the second-to-last component of each weight's path: .../model1/Conv1/kernel)."""
    out = {}
    with h5py.File(path, "r") as f:
        g = f["model_weights"] if "model_weights" in f else f
        for ln in g.attrs["layer_names"]:
            lg = g[_dec(ln)]
            for wn in lg.attrs["weight_names"]:
                wn = _dec(wn)
                parts = wn.split("/")
                out.setdefault(parts[-2], {})[parts[-1].split(":")[0]] = np.asarray(lg[wn])
    return out


def _history(args):
    """Names of the layers feeding a node (Keras 3 '__keras_tensor__' args or Keras 2 lists)."""
    found = []

    def walk(a):
        if isinstance(a, dict):
            if a.get("class_name") == "__keras_tensor__":
                found.append(a["config"]["keras_history"][0])
            else:
                for v in a.values():
                    walk(v)
        elif isinstance(a, list):
            if len(a) >= 3 and isinstance(a[0], str) and isinstance(a[1], int):  # Keras 2: [name, node, tensor, {}]
                found.append(a[0])
            else:
                for v in a:
                    walk(v)
    walk(args)
    return found


def _same_pad(size, k, s):
    total = max((-(-size // s) - 1) * s + k - size, 0)
    return total // 2, total - total // 2


class KerasLayer(nn.Module):
    """One Keras layer of the MobileNetV2 family (NCHW tensors)."""

    def __init__(self, cls, cfg, w):
        super().__init__()
        self.cls, self.cfg = cls, cfg
        if cls == "Conv2D" or cls == "DepthwiseConv2D":
            k = w["depthwise_kernel" if "depthwise_kernel" in w else "kernel"]
            kh, kw, cin = k.shape[0], k.shape[1], k.shape[2]
            if cls == "Conv2D":
                weight = k.transpose(3, 2, 0, 1)
                groups = 1
            else:  # [kh, kw, in, mult] -> [in * mult, 1, kh, kw], output channel c * mult + m
                weight = k.transpose(2, 3, 0, 1).reshape(cin * k.shape[3], 1, kh, kw)
                groups = cin
            self.k, self.s = (kh, kw), tuple(cfg["strides"])
            self.same = cfg["padding"] == "same"
            sym = self.same and self.s == (1, 1) and kh % 2 == 1 and kw % 2 == 1
            self.conv = nn.Conv2d(weight.shape[1] * groups, weight.shape[0], (kh, kw), self.s,
                                  padding=(kh // 2, kw // 2) if sym else 0, groups=groups, bias="bias" in w)
            self.pre_pad = self.same and not sym
            self.conv.weight.data.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
            if "bias" in w:
                self.conv.bias.data.copy_(torch.from_numpy(w["bias"]))
            self.act = cfg.get("activation", "linear")
        elif cls == "BatchNormalization":
            c = w["moving_mean"].shape[0]
            # Keras' momentum m keeps m of the moving statistics, PyTorch's keeps 1 - momentum
            self.bn = nn.BatchNorm2d(c, eps=cfg["epsilon"], momentum=1.0 - float(cfg.get("momentum", 0.99)), affine=True)
            self.bn.weight.data.copy_(torch.from_numpy(w["gamma"]) if "gamma" in w else torch.ones(c))
            self.bn.bias.data.copy_(torch.from_numpy(w["beta"]) if "beta" in w else torch.zeros(c))
            self.bn.running_mean.copy_(torch.from_numpy(w["moving_mean"]))
            self.bn.running_var.copy_(torch.from_numpy(w["moving_variance"]))
        elif cls == "Dense":
            self.lin = nn.Linear(w["kernel"].shape[0], w["kernel"].shape[1])
            set_linear(self.lin, w["kernel"], w["bias"])
            self.act = cfg.get("activation", "linear")
        elif cls not in ("ReLU", "Add", "ZeroPadding2D", "GlobalAveragePooling2D", "Rescaling", "Activation"):
            raise SystemExit("torch_bench: layer class %s is not in the MobileNetV2 twin" % cls)

    def forward(self, xs):
        cls, cfg = self.cls, self.cfg
        x = xs[0]
        if cls == "Conv2D" or cls == "DepthwiseConv2D":
            if self.pre_pad:
                ph, pw = _same_pad(x.shape[2], self.k[0], self.s[0]), _same_pad(x.shape[3], self.k[1], self.s[1])
                x = F.pad(x, (pw[0], pw[1], ph[0], ph[1]))
            return _activation(self.conv(x), self.act)
        if cls == "BatchNormalization":
            return self.bn(x)
        if cls == "ReLU":
            if cfg.get("max_value") is not None and not cfg.get("negative_slope") and not cfg.get("threshold"):
                return F.hardtanh(x, 0.0, float(cfg["max_value"]))
            return F.relu(x)
        if cls == "Add":
            y = xs[0]
            for t in xs[1:]:
                y = y + t
            return y
        if cls == "ZeroPadding2D":
            (t, b), (l, r) = cfg["padding"]
            return F.pad(x, (l, r, t, b))
        if cls == "GlobalAveragePooling2D":
            return x.mean((2, 3))
        if cls == "Rescaling":
            return x * float(cfg["scale"]) + float(cfg["offset"])
        if cls == "Activation":
            return _activation(x, cfg["activation"])
        if cls == "Dense":
            return _activation(self.lin(x), self.act)
        raise SystemExit(cls)


def _activation(x, name):
    if name in ("linear", None):
        return x
    if name == "relu":
        return F.relu(x)
    if name == "relu6":
        return F.hardtanh(x, 0.0, 6.0)
    if name == "softmax":
        return torch.softmax(x, 1)
    raise SystemExit("torch_bench: activation %s" % name)


class KerasGraph(nn.Module):
    """A Keras Functional / Sequential model config run node by node (every layer called once);
    nested models become nested KerasGraphs. `stop_before` leaves out the named layer and the rest
    (the head), `only` keeps just the named top-level layers."""

    def __init__(self, config, weights, skip=()):
        super().__init__()
        cfg = config["config"]
        self.order, self.inputs_of, self.mods = [], {}, nn.ModuleDict()
        prev = None
        for l in cfg["layers"]:
            cls, lc = l["class_name"], l["config"]
            name = lc["name"]
            if cls == "InputLayer":
                prev = name
                continue
            if name in skip:
                continue
            nodes = l.get("inbound_nodes", [])
            if len(nodes) > 1:
                raise SystemExit("torch_bench: layer %s is called more than once" % name)
            ins = _history(nodes[0]) if nodes else [prev]  # Sequential: the previous layer
            if cls in ("Functional", "Model", "Sequential"):
                self.mods[name] = KerasGraph(l, weights)
            else:
                self.mods[name] = KerasLayer(cls, lc, weights.get(name, {}))
            self.order.append(name)
            self.inputs_of[name] = ins
            prev = name
        if cfg.get("output_layers"):
            outs = cfg["output_layers"]
            self.output = (outs[0] if isinstance(outs[0], list) else outs)[0]
        else:
            self.output = prev
        self.first = True

    def forward(self, *xs):
        vals = {}
        for name in self.order:
            ins = self.inputs_of[name]
            args = [vals[i] if i in vals else xs[0] for i in ins]  # names not computed here: the graph input
            vals[name] = self.mods[name](*args) if isinstance(self.mods[name], KerasGraph) else self.mods[name](args)
        return vals[self.output] if self.output in vals else vals[self.order[-1]]


def mobilenet_twin(path):
    """(trunk, head) of mobilenet_frozen.h5: trunk = image (NCHW, 0..255) -> pooled features, head =
    the Dense layer's logits (its softmax goes into the loss)."""
    with h5py.File(path, "r") as f:
        config = json.loads(_dec(f.attrs["model_config"]))
    w = keras_weights_by_layer(path)
    trunk = KerasGraph(config, w, skip=("head",))
    k, b = w["head"]["kernel"], w["head"]["bias"]
    head = nn.Linear(k.shape[0], k.shape[1])
    set_linear(head, k, b)
    return trunk, head


class ImageFolderDataset(torch.utils.data.Dataset):
    """torchvision.datasets.ImageFolder + transforms.Resize((224, 224)) without torchvision: class
    subfolders in sorted order, PIL decode, convert("RGB"), bilinear resize, uint8 -> float 0..255
    CHW (the model's Rescaling maps it to [-1, 1])."""

    def __init__(self, root):
        self.classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        self.items = []
        for c, name in enumerate(self.classes):
            for fn in sorted(os.listdir(os.path.join(root, name))):
                self.items.append((os.path.join(root, name, fn), c))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        from PIL import Image
        path, label = self.items[i]
        with Image.open(path) as im:
            im = im.convert("RGB").resize((224, 224), Image.BILINEAR)
            x = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1).float()
        return x, label


def prepare_trunk(trunk, mode, example):
    trunk.eval()  # frozen BatchNormalization: inference mode, as Keras
    for p in trunk.parameters():
        p.requires_grad_(False)
    if mode == "channels_last":
        trunk = trunk.to(memory_format=torch.channels_last)
        return trunk, lambda x: trunk(x.contiguous(memory_format=torch.channels_last))
    if mode == "jit":
        with torch.no_grad():
            traced = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(trunk, example)))
        return traced, traced
    return trunk, trunk


def mobilenet_finetune(a):
    w = a.weights + "/"
    trunk, head = mobilenet_twin(w + "mobilenet_frozen.h5")
    ds = ImageFolderDataset(w + "mobilenet_images")
    if a.samples and a.samples < len(ds):  # a seeded sample of every class (the files are sorted by class)
        ds = torch.utils.data.Subset(ds, sorted(np.random.RandomState(a.seed).permutation(len(ds))[:a.samples].tolist()))
    first = torch.stack([ds[i][0] for i in range(min(32, len(ds)))])
    first_y = torch.tensor([ds[i][1] for i in range(min(32, len(ds)))])
    trunk, run_trunk = prepare_trunk(trunk, a.trunk_mode, first)
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)

    def step(xb, yb):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(head(run_trunk(xb)), yb)
        loss.backward()
        opt.step()
        return loss.item()

    step(first, first_y)  # warm-up: one step on the first batch, as graft_bench
    g = torch.Generator().manual_seed(a.seed)
    loader = torch.utils.data.DataLoader(ds, batch_size=32, shuffle=a.shuffle, generator=g, num_workers=a.workers,
                                         persistent_workers=a.workers > 0)
    epochs = a.epochs or 5
    t0 = time.perf_counter()
    first_epoch = -1.0
    for e in range(epochs):
        total, n = 0.0, 0
        for xb, yb in loader:
            total += step(xb, yb) * xb.shape[0]
            n += xb.shape[0]
        if e == 0:
            first_epoch = time.perf_counter() - t0
    secs = time.perf_counter() - t0
    return len(ds) * epochs, secs, total / n, first_epoch


def mobilenet_check(a):
    """graft's predictions of mobilenet_frozen.h5 (graft_bench --dump: its inputs and outputs) against
    the twin's on the same inputs."""
    trunk, head = mobilenet_twin(a.weights + "/mobilenet_frozen.h5")
    trunk.eval()
    x = np.fromfile(a.dumps + "/mobilenet.x.f32", np.float32).reshape(-1, 224, 224, 3)
    g = np.fromfile(a.dumps + "/mobilenet.f32", np.float32).reshape(x.shape[0], -1)
    with torch.inference_mode():
        p = torch.softmax(head(trunk(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous())), 1).numpy()
    d = float(np.abs(g - p).max())
    agree = float((g.argmax(1) == p.argmax(1)).mean())
    print("CHECK mobilenet: max |graft - pytorch| = %.3g over %d images, argmax agreement %.4f" % (d, len(x), agree))
    if d > 1e-4:
        sys.exit("torch_bench: the MobileNetV2 twins disagree (max difference %.3g)" % d)


def mobilenet_tensor(a, n):
    """mobilenet_x.f32 / mobilenet_y.f32 (graft_bench prepare): the first n images, NCHW."""
    x = np.fromfile(a.weights + "/mobilenet_x.f32", np.float32).reshape(-1, 224, 224, 3)[:n]
    y = np.fromfile(a.weights + "/mobilenet_y.f32", np.float32)[:n].astype(np.int64)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)), y


def mobilenet_model(a, train):
    """The whole twin (trunk + head logits) run the way --trunk-mode says: returns (module, how to
    call it)."""
    trunk, head = mobilenet_twin(a.weights + "/mobilenet_frozen.h5")
    model = nn.Sequential(trunk, head)
    model.train(train)
    if a.trunk_mode == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        return model, lambda x: model(x.contiguous(memory_format=torch.channels_last))
    if a.trunk_mode == "jit" and not train:
        x, _ = mobilenet_tensor(a, 32)
        with torch.no_grad():
            traced = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model.eval(), torch.from_numpy(x))))
        return traced, traced
    return model, model


# ---- workloads -------------------------------------------------------------------------------

def train(model, x, y, loss_fn, lr, epochs, shuffle, seed, min_time, adam=False, call=None):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr) if adam else torch.optim.SGD(params, lr=lr)
    call = call or model
    x = torch.from_numpy(x)
    y = torch.from_numpy(y)
    n = x.shape[0]

    def step(xb, yb):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(call(xb), yb)
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


def predict(model, x, batch, final, min_time, call=None):
    model.eval()
    call = call or model
    x = torch.from_numpy(x)
    n = x.shape[0]
    with torch.inference_mode():
        for i in range(0, min(n, 20 * batch), batch):  # warm-up: 20 batches, as graft_bench
            final(call(x[i:i + batch]))
        t0 = time.perf_counter()
        out = None
        passes = 0
        while passes == 0 or time.perf_counter() - t0 < min_time:  # whole passes until min_time (as graft_bench)
            for i in range(0, n, batch):
                yb = final(call(x[i:i + batch]))
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
    elif wl == "mobilenet_finetune_frozen":
        samples, secs, loss, first = mobilenet_finetune(a)
    elif wl == "mobilenet_predict":
        x, _ = mobilenet_tensor(a, a.samples or 128)
        m, call = mobilenet_model(a, False)
        samples, secs, out = predict(m, x, 32, lambda z: torch.softmax(z, 1), a.min_time, call)
        if a.dump:
            out.numpy().astype(np.float32).tofile(a.dump)
    elif wl == "mobilenet_train":
        x, y = mobilenet_tensor(a, a.samples or 96)
        m, call = mobilenet_model(a, True)
        samples, secs, loss = train(m, x, y, F.cross_entropy, 1e-4, a.epochs or 1, a.shuffle, a.seed, a.min_time,
                                    adam=True, call=call)
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
    if os.path.exists(a.dumps + "/mobilenet.f32"):
        mobilenet_check(a)


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
    ap.add_argument("--dump", help="mobilenet_predict: write the predictions here (float32)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--samples", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--no-shuffle", dest="shuffle", action="store_false")
    ap.add_argument("--workers", type=int, default=0, help="mobilenet: DataLoader worker processes")
    ap.add_argument("--trunk-mode", default="eager", choices=["eager", "channels_last", "jit"],
                    help="mobilenet: how the frozen trunk runs")
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
