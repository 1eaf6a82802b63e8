#!/usr/bin/python3
"""Build the seed corpora of graft's fuzz targets from the shared Keras files.

    /usr/bin/python3 tests/fuzz/make_seed_corpus.py [--shared ../shared] [--out build/fuzz-corpus]

writes (nothing goes into the repository):
  OUT/load_model/   every .h5 / .keras file of SHARED/keras-corpus, the model.h5, model.keras and
                    model.weights.h5 of every SHARED/keras-fixtures case, SHARED/reliability-repro
                    and the committed regression inputs (tests/fuzz/regressions)
  OUT/config_json/  the model configs of those files as JSON text (the model_config attribute of a
                    legacy .h5, config.json of a .keras archive), for fuzz_config_json
Needs h5py for the configs of .h5 files (Debian: python3-h5py); without it only .keras configs
are extracted.
"""
import argparse
import hashlib
import os
import shutil
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def model_files(shared, max_bytes):
    roots = [os.path.join(shared, "keras-corpus"), os.path.join(shared, "reliability-repro"),
             os.path.join(HERE, "regressions")]
    for root in roots:
        if not os.path.isdir(root):
            continue
        for name in sorted(os.listdir(root)):
            p = os.path.join(root, name)
            if os.path.isfile(p) and not name.endswith((".md", ".tsv")) and os.path.getsize(p) <= max_bytes:
                yield p
    fixtures = os.path.join(shared, "keras-fixtures")
    if os.path.isdir(fixtures):
        for case in sorted(os.listdir(fixtures)):
            for leaf in ("model.h5", "model.keras", "model.weights.h5"):
                p = os.path.join(fixtures, case, leaf)
                if os.path.isfile(p) and os.path.getsize(p) <= max_bytes:
                    yield p


def config_text(path):
    """The model config JSON of a Keras file, or None."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                return z.read("config.json")
        import h5py
        with h5py.File(path, "r") as f:
            v = f.attrs.get("model_config")
            if v is None:
                return None
            return v.encode() if isinstance(v, str) else bytes(v)
    except Exception:  # corrupt inputs (the repro files) have no readable config: fine
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=os.path.join(REPO, "..", "shared"))
    ap.add_argument("--out", default=os.path.join(REPO, "build", "fuzz-corpus"))
    ap.add_argument("--max-bytes", type=int, default=4 << 20, help="skip larger files (default 4 MiB)")
    a = ap.parse_args()
    lm = os.path.join(a.out, "load_model")
    cj = os.path.join(a.out, "config_json")
    os.makedirs(lm, exist_ok=True)
    os.makedirs(cj, exist_ok=True)
    n_files = n_configs = 0
    for p in model_files(a.shared, a.max_bytes):
        rel = os.path.relpath(p, a.shared) if p.startswith(os.path.abspath(a.shared)) else os.path.basename(p)
        base = rel.replace(os.sep, "__")
        shutil.copyfile(p, os.path.join(lm, base))
        n_files += 1
        # (libhdf5 crashes on some of the hostile files: configs only from the trusted ones)
        trusted = "reliability-repro" not in p and "regressions" not in p
        text = config_text(p) if trusted else None
        if text:
            h = hashlib.sha1(text).hexdigest()[:16]
            with open(os.path.join(cj, h + ".json"), "wb") as f:
                f.write(text)
            n_configs += 1
    print(f"{n_files} model files -> {lm}, {n_configs} configs -> {cj}")
    return 0 if n_files else 1


if __name__ == "__main__":
    sys.exit(main())
