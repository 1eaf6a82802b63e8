#!/usr/bin/python3
"""Check .h5 files written by graft::save_model against the writer checklist of
../shared/KERAS_H5_FORMAT.md (section 6), reading them with h5py, an independent reader.
usage: check_saved_layout.py FILE.h5 [FILE.h5 ...]; exit 0 iff every file passes."""
import json
import sys

import h5py
import numpy as np

problems = []


def fail(path, msg):
    problems.append(f"{path}: {msg}")


def walk_config(path, obj, where="model_config"):
    if isinstance(obj, dict):
        if "module" in obj or "registered_name" in obj:
            fail(path, f"{where}: Keras-3-only key 'module'/'registered_name' (TF-Keras cannot read it)")
        if obj.get("class_name") == "DepthwiseConv2D" and "groups" in obj.get("config", {}):
            fail(path, f"{where}: DepthwiseConv2D 'groups' (Keras 3 rejects it)")
        if obj.get("class_name") == "InputLayer":
            c = obj.get("config", {})
            if "batch_input_shape" not in c:
                fail(path, f"{where}: InputLayer without batch_input_shape")
            if "batch_shape" in c:
                fail(path, f"{where}: InputLayer with Keras-3-only batch_shape")
        if "dtype" in obj and not isinstance(obj["dtype"], str):
            fail(path, f"{where}: dtype must be a string, got {obj['dtype']!r}")
        for k, v in obj.items():
            walk_config(path, v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            walk_config(path, v, f"{where}[{i}]")


def check(path):
    f = h5py.File(path, "r")
    for a in ("keras_version", "backend", "model_config"):
        if a not in f.attrs:
            fail(path, f"root attribute {a} missing")
    cfg = json.loads(f.attrs["model_config"])
    if cfg.get("class_name") not in ("Sequential", "Functional"):
        fail(path, f"model_config class_name {cfg.get('class_name')}")
    walk_config(path, cfg)
    if cfg["class_name"] == "Sequential":
        layers = cfg["config"]["layers"]
        if not layers or layers[0]["class_name"] != "InputLayer":
            fail(path, "a Sequential config must start with an explicit InputLayer")
    if "training_config" in f.attrs:
        tc = json.loads(f.attrs["training_config"])
        for k in ("optimizer_config", "loss", "metrics", "loss_weights", "sample_weight_mode"):
            if k not in tc:
                fail(path, f"training_config lacks '{k}' (Keras indexes it directly)")
        oc = tc["optimizer_config"]["config"]
        for k in ("loss_scale_factor", "gradient_accumulation_steps", "decay"):
            if k in oc:
                fail(path, f"optimizer config key '{k}' breaks one of TF-Keras / Keras 3")
    mw = f["model_weights"]
    for a in ("layer_names", "backend", "keras_version"):
        if a not in mw.attrs:
            fail(path, f"model_weights attribute {a} missing")
    names = [n.decode() if isinstance(n, bytes) else n for n in mw.attrs["layer_names"]]
    cls = cfg["class_name"]
    conf_layers = cfg["config"]["layers"]
    expect = [l["config"]["name"] for l in conf_layers if not (cls == "Sequential" and l["class_name"] == "InputLayer")]
    if names != expect:
        fail(path, f"layer_names {names} != config layers {expect}")
    for n in names:
        if n not in mw:
            fail(path, f"no group for layer {n}")
            continue
        g = mw[n]
        if "weight_names" not in g.attrs:
            fail(path, f"{n}: no weight_names")
            continue
        for w in g.attrs["weight_names"]:
            w = w.decode() if isinstance(w, bytes) else w
            if "" in w.split("/"):
                fail(path, f"{n}: empty path component in weight name {w!r}")
            if w not in g:
                fail(path, f"{n}: dataset {w} missing")
                continue
            d = g[w]
            if d.dtype != np.float32:
                fail(path, f"{n}/{w}: dtype {d.dtype}, Keras expects float32")
    # no soft or external links anywhere
    def visit(name, obj):
        pass

    def links(g, prefix):
        for k in g:
            l = g.get(k, getlink=True)
            if not isinstance(l, h5py.HardLink):
                fail(path, f"{prefix}/{k}: not a hard link")
            elif isinstance(g[k], h5py.Group):
                links(g[k], f"{prefix}/{k}")
    links(f, "")
    if "optimizer_weights" in f:
        og = f["optimizer_weights"]
        wn = [w.decode() if isinstance(w, bytes) else w for w in og.attrs["weight_names"]]
        if not wn or not wn[0].endswith("iteration"):
            fail(path, "optimizer_weights must start with the iteration counter")
        elif not np.issubdtype(og[wn[0]].dtype, np.integer):
            fail(path, "optimizer iteration must be an integer")


for p in sys.argv[1:]:
    try:
        check(p)
    except Exception as e:  # noqa: BLE001
        fail(p, f"unreadable: {e!r}")
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
