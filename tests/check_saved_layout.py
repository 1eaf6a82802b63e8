#!/usr/bin/python3
"""Check .h5 files written by graft::save_model with h5py, an independent reader: the TF-Keras 2
dialect (keras_version 2.x) against the writer checklist of ../shared/KERAS_H5_FORMAT.md
(section 6), the Keras 3 dialect (keras_version 3.x) against what Keras 3.15.1 itself writes
(DTypePolicy objects, module-qualified initializers, InputLayer batch_shape, {"args", "kwargs"}
inbound nodes, a single input/output as one ["name", 0, 0]).
usage: check_saved_layout.py FILE.h5 [FILE.h5 ...]; exit 0 iff every file passes."""
import json
import sys

import h5py
import numpy as np

problems = []


def fail(path, msg):
    problems.append(f"{path}: {msg}")


def walk_config(path, obj, where="model_config"):
    """TF-Keras 2 dialect rules."""
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
        if "inbound_nodes" in obj:
            for node in obj["inbound_nodes"]:
                if not isinstance(node, list):
                    fail(path, f"{where}: TF-Keras 2 inbound nodes are lists of [name, node, tensor, kwargs]")
        for k in ("input_layers", "output_layers"):
            if k in obj and not (isinstance(obj[k], list) and all(isinstance(r, list) for r in obj[k])):
                fail(path, f"{where}.{k}: TF-Keras 2 writes a list of references, got {obj[k]!r}")
        for k, v in obj.items():
            walk_config(path, v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            walk_config(path, v, f"{where}[{i}]")


def walk_config3(path, obj, where="model_config"):
    """Keras 3 dialect rules (what keras 3.15.1 writes in a legacy .h5)."""
    if isinstance(obj, dict):
        cls, c = obj.get("class_name"), obj.get("config")
        if cls == "InputLayer" and isinstance(c, dict):
            if "batch_shape" not in c or "batch_input_shape" in c:
                fail(path, f"{where}: a Keras 3 InputLayer has batch_shape (and no batch_input_shape)")
            if not isinstance(c.get("dtype"), str):
                fail(path, f"{where}: a Keras 3 InputLayer's dtype is a string")
        elif cls in ("Sequential",) or (isinstance(c, dict) and "trainable" in c and "layers" not in c and cls != "__keras_tensor__"):
            d = c.get("dtype") if isinstance(c, dict) else None
            if not (isinstance(d, dict) and d.get("class_name") == "DTypePolicy" and d.get("module") == "keras"):
                fail(path, f"{where}: Keras 3 layer dtype should be a DTypePolicy object, got {d!r}")
        if isinstance(c, dict):
            for k, v in c.items():
                if k.endswith(("_initializer", "_regularizer", "_constraint")) and isinstance(v, dict):
                    if not v.get("module", "").startswith("keras.") or "registered_name" not in v:
                        fail(path, f"{where}.{k}: Keras 3 objects carry module and registered_name")
        if "inbound_nodes" in obj:
            for node in obj["inbound_nodes"]:
                if not (isinstance(node, dict) and "args" in node and "kwargs" in node):
                    fail(path, f"{where}: Keras 3 inbound nodes are {{'args', 'kwargs'}} objects, got {node!r}"[:300])
        for k in ("input_layers", "output_layers"):
            if k in obj:
                v = obj[k]
                single = isinstance(v, list) and len(v) == 3 and isinstance(v[0], str)
                if not single and isinstance(v, list) and len(v) == 1:
                    fail(path, f"{where}.{k}: Keras 3 writes a single tensor as one [name, node, tensor], not a list of one")
        for k, v in obj.items():
            walk_config3(path, v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            walk_config3(path, v, f"{where}[{i}]")


def check(path):
    f = h5py.File(path, "r")
    for a in ("keras_version", "backend", "model_config"):
        if a not in f.attrs:
            fail(path, f"root attribute {a} missing")
    cfg = json.loads(f.attrs["model_config"])
    if cfg.get("class_name") not in ("Sequential", "Functional"):
        fail(path, f"model_config class_name {cfg.get('class_name')}")
    version = f.attrs["keras_version"]
    version = version.decode() if isinstance(version, bytes) else str(version)
    keras3 = version.startswith("3")
    if not (keras3 or version.startswith("2")):
        fail(path, f"keras_version {version!r}: graft writes 2.x or 3.x")
    (walk_config3 if keras3 else walk_config)(path, cfg)
    if cfg["class_name"] == "Sequential":
        layers = cfg["config"]["layers"]
        if not layers or layers[0]["class_name"] != "InputLayer":
            fail(path, "a Sequential config must start with an explicit InputLayer")
    if "training_config" in f.attrs:
        tc = json.loads(f.attrs["training_config"])
        need = ("optimizer_config", "loss", "metrics", "loss_weights") + (("run_eagerly", "steps_per_execution", "jit_compile") if keras3 else ("sample_weight_mode",))
        for k in need:
            if k not in tc:
                fail(path, f"training_config lacks '{k}'")
        oc = tc["optimizer_config"]["config"]
        for k in ("decay",) + (() if keras3 else ("loss_scale_factor", "gradient_accumulation_steps")):
            if k in oc:
                fail(path, f"optimizer config key '{k}' breaks {'Keras 3' if keras3 else 'TF-Keras 2'}")
    mw = f["model_weights"]
    for a in ("layer_names", "backend", "keras_version"):
        if a not in mw.attrs:
            fail(path, f"model_weights attribute {a} missing")
    names = [n.decode() if isinstance(n, bytes) else n for n in mw.attrs["layer_names"]]
    cls = cfg["class_name"]
    conf_layers = cfg["config"]["layers"]
    # Keras 3 operation nodes ({"name"} is their whole config) are not among model.layers
    expect = [l["config"]["name"] for l in conf_layers if not (cls == "Sequential" and l["class_name"] == "InputLayer")
              and not (keras3 and list(l["config"]) == ["name"])]
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
        if not wn or not wn[0].split(":")[0].endswith("iteration"):
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
