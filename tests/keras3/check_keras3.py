#!/usr/bin/python3
"""Real Keras 3 loads what graft writes: the suite's end-to-end check (CTest keras3_loads_graft_files).

  check_keras3.py --graft BIN --cases BIN --shared DIR --work DIR [--example FILE ...] [--all]

Gathers, in WORK:
  cases/       models built in graft (graft_keras3_cases): every layer family, nesting, shared
               layers, several inputs/outputs, frozen layers, each optimizer after training;
  transfer/    keras.applications bases nested in new models, made by real Keras 3
               (keras_transfer_models.py, cached until the script changes), then `graft fit`;
  applications/ every keras.applications family (keras_applications.py, cached; --all adds the
               large ones): graft's predictions and a 2-step fine-tune against Keras', within
               twice Keras' own float32-vs-float64 difference plus float32 rounding
               (2e-6 + 1e-5 |y|), and the fine-tuned .keras loaded back by Keras;
  fixtures/    every ../shared/keras-fixtures case: inference models through `graft convert`
               (.h5 and .keras), training cases through `graft fit` (to .h5 and to .keras);
  corpus/      every full-model file of ../shared/keras-corpus that graft reads, through
               `graft convert` (TF-Keras 2 and Keras 1/2 files upgraded to Keras 3);
  --example    outputs of the examples (e.g. cnn_finetuned.h5), when present;
then runs keras_load_check.py on all of them in one Keras process: each file must load with
compile=True, keep its trainable flags and predict what `graft predict` predicted. Prints what
fell short and a closing `keras3: N passed, N failed` line; exit 1 when anything fails.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def input_shapes(path):
    """Batch shapes of a legacy .h5 model's inputs, in model order, from its model_config."""
    with h5py.File(path, "r") as f:
        cfg = json.loads(f.attrs["model_config"])
    conf = cfg["config"]
    layers = {l["config"].get("name", l.get("name")): l for l in conf["layers"]}
    if cfg["class_name"] == "Sequential":
        first = conf["layers"][0]["config"]
        return [first.get("batch_shape") or first.get("batch_input_shape")]
    refs = conf["input_layers"]
    if refs and isinstance(refs[0], str):
        refs = [refs]
    out = []
    for r in refs:
        c = layers[r[0]]["config"]
        out.append(c.get("batch_shape") or c.get("batch_input_shape"))
    return out


# Keys Keras 3.15.1 writes that graft leaves out on purpose (at their defaults; Keras 3 releases
# before them reject them): see include/graft/saving/keras3_serializer.hpp.
OMITTED = {"optional", "ragged", "quantization_config", "synchronized", "renorm", "renorm_clipping", "renorm_momentum"}


def config_differences(keras_file, graft_file):
    """Where graft's Keras 3 model_config differs from the one Keras wrote for the same model."""
    def load(p):
        with h5py.File(p, "r") as f:
            return json.loads(f.attrs["model_config"])
    out = []

    def cmp(a, b, where):
        if where.endswith(".kwargs"):
            return  # call arguments at their defaults (mask=None, training=None), not layer config
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                if k not in b and k not in OMITTED:
                    out.append(f"{where}: key '{k}' missing")
                elif k not in a and k in b:
                    out.append(f"{where}: key '{k}' that Keras does not write")
                elif k in a and k in b:
                    cmp(a[k], b[k], f"{where}.{k}")
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b)):
                cmp(x, y, f"{where}[{i}]")
        elif isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
            if abs(a - b) > 1e-6 * max(1.0, abs(a)):
                out.append(f"{where}: {a} vs {b}")
        elif a != b:
            out.append(f"{where}: {json.dumps(a)[:60]} vs {json.dumps(b)[:60]}")
    cmp(load(keras_file), load(graft_file), "model_config")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--graft", required=True)
    ap.add_argument("--cases", required=True)
    ap.add_argument("--shared", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--example", action="append", default=[])
    ap.add_argument("--all", action="store_true", help="every keras.applications family, large ones too")
    a = ap.parse_args()
    keras3 = os.path.join(a.shared, "tools", "keras3")
    if not os.path.exists(os.path.join(keras3, "run")):
        print(f"keras3: {keras3}/run not found (../shared beside the checkout)")
        return 1
    os.makedirs(a.work, exist_ok=True)
    manifest, problems = [], []
    own_check = {}  # Keras' own fixture file -> graft's files of the same case
    rng = np.random.default_rng(5)

    def graft(*args):
        p = run([a.graft, *args])
        if p.returncode != 0:
            raise RuntimeError((p.stderr or p.stdout).strip().splitlines()[-1] if (p.stderr or p.stdout).strip() else f"exit {p.returncode}")
        return p

    def predicted(model, x_file, tag):
        y_file = os.path.join(os.path.dirname(model), tag + "_graft_y.h5")
        graft("predict", model, "--input", x_file, "--output", y_file)
        with h5py.File(y_file, "r") as f:
            finite = all(np.all(np.isfinite(f[k][()])) for k in f.keys())
        if not finite:  # the file's own weights are NaN/inf (a diverged model): check that it loads
            print(f"keras3: {model}: graft's predictions are not finite (the weights are not); checking loading only")
            y_file = ""
        manifest.append((model, x_file, y_file))

    def random_inputs(model, x_file, n):
        """n random samples for each input of a legacy .h5 model, as x (or x0, x1, ...) in x_file."""
        xs = [rng.uniform(0, 1, [n] + s[1:]).astype("float32") for s in input_shapes(model)]
        with h5py.File(x_file, "w") as f:
            for i, x in enumerate(xs):
                f["x" if len(xs) == 1 else f"x{i}"] = x
        return x_file

    # 1. models built in graft
    cases = os.path.join(a.work, "cases")
    os.makedirs(cases, exist_ok=True)
    p = run([a.cases, cases])
    if p.returncode != 0:
        problems.append(f"graft_keras3_cases failed: {p.stderr.strip()}")
    else:
        for line in open(os.path.join(cases, "manifest.tsv")):
            manifest.append(tuple(line.rstrip("\n").split("\t")))

    # 2. Keras-made transfer models, fine-tuned by graft fit (their making is cached)
    def made_by_keras(script, name):
        """Run a generator under real Keras into WORK/name, unless its output of this very script
        is there already; returns the folder."""
        out = os.path.join(a.work, name + ("_all" if a.all else ""))
        gen = os.path.join(HERE, script)
        stamp = hashlib.sha256(open(gen, "rb").read()).hexdigest()
        stamp_file = os.path.join(out, "made_by")
        if not (os.path.exists(stamp_file) and open(stamp_file).read() == stamp):
            p = run([os.path.join(keras3, "run"), gen, out] + (["--all"] if a.all else []))
            if p.returncode != 0:
                problems.append(f"{script} failed: " + p.stderr.strip()[-800:])
            else:
                open(stamp_file, "w").write(stamp)
        return out

    transfer = made_by_keras("keras_transfer_models.py", "transfer")
    if os.path.exists(os.path.join(transfer, "cases.tsv")):
        for line in open(os.path.join(transfer, "cases.tsv")):
            case, src = line.rstrip("\n").split("\t")
            out = os.path.join(transfer, "graft_" + case + ".h5")
            try:
                graft("fit", src, "--data", os.path.join(transfer, case + "_data.h5"), "--output", out,
                      "--epochs", "1", "--batch-size", "2", "--seed", "1")
                predicted(out, os.path.join(transfer, case + "_x.h5"), case)
                if src.endswith(".h5"):
                    for d in config_differences(src, out)[:5]:
                        problems.append(f"{out} differs from Keras' own config: {d}")
            except RuntimeError as e:
                problems.append(f"graft fit {src}: {e}")

    # 2b. every keras.applications family: predictions and fine-tuning against Keras'
    apps = made_by_keras("keras_applications.py", "applications")
    table = []
    if os.path.exists(os.path.join(apps, "families.tsv")):
        for line in open(os.path.join(apps, "families.tsv")):
            fam = line.strip()
            io = os.path.join(apps, fam + "_io.h5")
            with h5py.File(io, "r") as f:
                ref = {k: f[k][()] for k in ("y_before", "y_after", "y_before64", "y_after64")}
            row = [fam]
            try:
                for src in (fam + ".h5", fam + ".keras"):
                    yb = os.path.join(apps, fam + "_graft_before.h5")
                    graft("predict", os.path.join(apps, src), "--input", io, "--output", yb)
                    with h5py.File(yb, "r") as f:
                        got = f["y"][()]
                    dev, floor = float(np.abs(got - ref["y_before"]).max()), float(np.abs(ref["y_before"] - ref["y_before64"]).max())
                    tol = 2 * floor + 2e-6 + 1e-5 * float(np.abs(ref["y_before"]).max())
                    if not dev <= tol:
                        problems.append(f"{fam}: graft predicts {src} {dev:.3g} away from Keras (tolerance {tol:.3g})")
                row += [dev, floor]
                out = os.path.join(apps, "graft_" + fam + ".keras")
                graft("fit", os.path.join(apps, fam + ".h5"), "--data", io, "--output", out, "--epochs", "1",
                      "--batch-size", "2", "--no-shuffle")
                ya = os.path.join(apps, fam + "_graft_after.h5")
                graft("predict", out, "--input", io, "--output", ya)
                with h5py.File(ya, "r") as f:
                    got = f["y"][()]
                dev, floor = float(np.abs(got - ref["y_after"]).max()), float(np.abs(ref["y_after"] - ref["y_after64"]).max())
                change = float(np.abs(ref["y_after"] - ref["y_before"]).max())
                tol = 2 * floor + 2e-6 + 1e-5 * float(np.abs(ref["y_after"]).max())
                if not dev <= tol:
                    problems.append(f"{fam}: after 2 fine-tuning steps graft is {dev:.3g} away from Keras (tolerance {tol:.3g}, "
                                    f"training moved the outputs by {change:.3g})")
                row += [dev, floor, change]
                manifest.append((out, io, ya))
            except RuntimeError as e:
                problems.append(f"{fam}: {e}")
            table.append(row)
    if table:
        print("keras3: family | predict (the .h5 and the .keras, both checked; the .keras shown): |graft - Keras| "
              "(Keras f32 vs f64) | fine-tune 2 steps: |graft - Keras| (Keras f32 vs f64), how far training moved the outputs")
        for r in table:
            print("keras3:   " + r[0] + " | " + " ".join(f"{v:.2g}" for v in r[1:]))

    # 3. the Keras fixtures: inference cases converted, training cases trained
    fx = os.path.join(a.shared, "keras-fixtures")
    fdir = os.path.join(a.work, "fixtures")
    os.makedirs(fdir, exist_ok=True)
    for case in sorted(os.listdir(fx)):
        d = os.path.join(fx, case)
        io = os.path.join(d, "io.h5")
        if not os.path.isdir(d) or not os.path.exists(io):
            continue
        try:
            if os.path.exists(os.path.join(d, "before.h5")):
                meta = json.load(open(os.path.join(d, "meta.json")))
                for ext in (".h5", ".keras"):  # --output picks the format by its extension
                    out = os.path.join(fdir, case + ext)
                    graft("fit", os.path.join(d, "before.h5"), "--data", io, "--output", out, "--epochs", "1",
                          "--batch-size", str(meta.get("batch_size", 32)), "--no-shuffle")
                    predicted(out, io, case + ext.replace(".", "_"))
            else:
                for src in ("model.h5", "model.keras"):
                    if os.path.exists(os.path.join(d, src)):
                        out = os.path.join(fdir, f"{case}_{src.replace('.', '_')}.h5")
                        graft("convert", os.path.join(d, src), out)
                        predicted(out, io, f"{case}_{src.replace('.', '_')}")
                        if src == "model.h5":
                            for diff in config_differences(os.path.join(d, src), out)[:5]:
                                problems.append(f"{out} differs from Keras' own config: {diff}")
                        # Keras on its own file against the fixture's outputs: tells a runtime
                        # that disagrees with itself from a file graft wrote wrongly
                        own = os.path.join(d, "model.h5")
                        if own not in own_check and os.path.exists(own):
                            manifest.append((own, io, io))
                        own_check.setdefault(own, []).append(out)
        except RuntimeError as e:
            if "[graft.unsupported]" in str(e):
                print(f"keras3: fixture {case}: graft does not read it ({str(e)[:120]})")
            else:
                problems.append(f"fixture {case}: {e}")

    # 4. the real-world corpus, upgraded with graft convert
    corpus = os.path.join(a.shared, "keras-corpus")
    cdir = os.path.join(a.work, "corpus")
    os.makedirs(cdir, exist_ok=True)
    converted = refused = 0
    for row in list(open(os.path.join(corpus, "INDEX.tsv")))[1:]:
        cols = row.rstrip("\n").split("\t")
        name, model_class = cols[0], cols[7]
        if model_class == "weights-only":
            continue
        out = os.path.join(cdir, name.replace(".", "_") + ".h5")
        p = run([a.graft, "convert", os.path.join(corpus, name), out])
        if p.returncode != 0:
            msg = p.stderr.strip()
            if "[graft.unsupported]" in msg:
                refused += 1
                print(f"keras3: {name}: graft does not read it ({msg[:160]})")
                continue
            problems.append(f"graft convert {name}: {msg}")
            continue
        converted += 1
        try:
            x_file = random_inputs(out, os.path.join(cdir, name.replace(".", "_") + "_x.h5"), 4)
            predicted(out, x_file, name.replace(".", "_"))
        except (RuntimeError, KeyError, TypeError) as e:
            problems.append(f"corpus {name}: {e}")
    print(f"keras3: graft convert upgraded {converted} corpus models to Keras 3 ({refused} refused by graft as unsupported)")

    # 5. the examples' outputs
    for ex in a.example:
        if not os.path.exists(ex):
            print(f"keras3: {ex} not present (its example test did not run); not checked")
            continue
        try:
            x_file = random_inputs(ex, os.path.join(a.work, os.path.basename(ex) + "_x.h5"), 2)
            y_file = os.path.join(a.work, os.path.basename(ex) + "_graft_y.h5")
            graft("predict", ex, "--input", x_file, "--output", y_file)
            manifest.append((ex, x_file, y_file))
        except RuntimeError as e:
            problems.append(f"example output {ex}: {e}")

    # 6. one Keras process loads them all
    mfile = os.path.join(a.work, "manifest.tsv")
    with open(mfile, "w") as f:
        for m in manifest:
            f.write("\t".join(m) + "\n")
    rfile = os.path.join(a.work, "keras_results.json")
    p = run([os.path.join(keras3, "run"), os.path.join(keras3, "keras_load_check.py"), "--manifest", mfile, "--json", rfile])
    results = json.load(open(rfile)) if os.path.exists(rfile) else []
    if not results:
        problems.append("keras_load_check.py produced no results: " + p.stderr.strip()[-1500:])
    by_file = {r["file"]: r for r in results}
    excused = set()
    for orig, ours in own_check.items():
        r0 = by_file.get(orig, {})
        if r0.get("load", "").startswith("ok") and "predict" in r0:
            for o in ours:
                r1 = by_file.get(o, {})
                if "predict" in r1 and abs(r1.get("max_abs_diff", 0) - r0.get("max_abs_diff", 1)) <= 1e-5:
                    excused.add(o)
                    print(f"keras3: {o}: Keras 3 on this runtime predicts its own file {orig} the same way "
                          f"(max diff {r0['max_abs_diff']:.3g} from the fixture's outputs): a runtime difference, not graft's")
    failed = [r for r in results if not r.get("ok") and r["file"] not in excused and r["file"] not in own_check]
    for r in failed:
        print("FAIL " + r["file"] + ": " + "; ".join(f"{k}={v}" for k, v in r.items() if k not in ("file", "ok")))
    for pr in problems:
        print("FAIL " + pr)
    ours = [r for r in results if r["file"] not in own_check]
    ok = len(ours) - len(failed)
    print(f"keras3: Keras 3.15.1 loaded {ok} of {len(ours)} files graft wrote, with graft's predictions")
    print(f"keras3: {ok} passed, {len(failed) + len(problems)} failed")
    return 0 if not failed and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
