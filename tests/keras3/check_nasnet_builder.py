"""graft::applications NASNetMobile / NASNetLarge against keras.applications.nasnet (run under
../shared/tools/keras3/run):

  check_nasnet_builder.py --graft GRAFT --work DIR [--only CASE,...] [--full]

Keras 3.15.1's NASNetMobile() begins with

    if backend.backend() == "torch":
        raise ValueError("NASNetMobile is not available with the torch backend ...")

and the only Keras available here is its torch backend. That check is the whole refusal: the
architecture code (nasnet.NASNet and its cells) never asks which backend runs it, and NASNetLarge,
which calls the same NASNet() without such a check, builds and predicts under torch. So this script
makes that one call answer "tensorflow" for nasnet.py alone — nasnet.py's module-global `backend`
becomes a proxy of keras.src.backend whose `backend()` says "tensorflow" and whose every other
attribute (image_data_format, is_keras_tensor, name_scope, ...) is keras.src.backend's own — and
verifies that

  * without the proxy NASNetMobile raises exactly that ValueError, and `backend.backend()` is called
    in nasnet.py at that one line only (so the proxy cannot change anything else);
  * with the proxy, NASNetMobile's graph equals the one nasnet.NASNet() builds when called directly
    with NASNetMobile's arguments (get_config equal), and Keras' documented parameter counts hold:
    NASNetMobile 5,326,716 (top, 224x224), NASNetLarge 88,949,818 (top, 331x331; with --full);

then runs check_application_builders.check() on each case: Keras builds the model, graft builds
it from the same arguments with Keras' weights, configs (every layer, the model), weights and
predictions (Keras on graft's file, graft's own within 1e-3 relative) must be equal. NASNetLarge
cases need no proxy (it is installed anyway: NASNetLarge never calls backend.backend()).
"""
import argparse
import inspect
import os
import sys
import types

import keras
from keras.src import backend as keras_backend
from keras.src.applications import nasnet

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_application_builders as cab  # noqa: E402

cab.MODULE.update({"NASNetMobile": "nasnet", "NASNetLarge": "nasnet"})

S32 = (32, 32, 3)
CASES = [
    ("nasnetmobile_top", "NASNetMobile", dict(input_shape=S32, classes=5)),
    ("nasnetmobile_base_odd", "NASNetMobile", dict(input_shape=(47, 36, 3), include_top=False)),
    ("nasnetmobile_base_avg", "NASNetMobile", dict(input_shape=(64, 64, 3), include_top=False, pooling="avg")),
    ("nasnetmobile_logits", "NASNetMobile", dict(input_shape=(33, 33, 3), classes=3, classifier_activation=None)),
    ("nasnetmobile_default_top", "NASNetMobile", dict()),  # 224x224, 1000 classes: Keras' documented model
    ("nasnetlarge_base_max", "NASNetLarge", dict(input_shape=S32, include_top=False, pooling="max")),
    ("nasnetlarge_top", "NASNetLarge", dict(input_shape=(40, 35, 3), classes=4)),
]
FULL = [("nasnetlarge_default_top", "NASNetLarge", dict())]  # 331x331, 1000 classes (slow, 340 MB of weights)
DOCUMENTED = {"NASNetMobile": 5326716, "NASNetLarge": 88949818}


class _BackendProxy(types.ModuleType):
    """keras.src.backend with `backend()` answering "tensorflow" (counted); everything else delegated."""

    def __init__(self):
        super().__init__("nasnet_backend_proxy")
        self.backend_calls = 0

    def backend(self):
        self.backend_calls += 1
        return "tensorflow"

    def __getattr__(self, name):
        return getattr(keras_backend, name)


def check_refusal():
    """The refusal is NASNetMobile's backend check and nothing else."""
    src = inspect.getsource(nasnet)
    lines = [l.strip() for l in src.splitlines() if "backend.backend()" in l]
    if lines != ['if backend.backend() == "torch":']:
        return f"backend.backend() used in nasnet.py at {lines}"
    if inspect.getsource(nasnet.NASNet).count("backend.backend()") or "backend.backend()" not in inspect.getsource(nasnet.NASNetMobile):
        return "the backend check is not where expected (NASNetMobile only)"
    keras.backend.clear_session()
    try:
        keras.applications.NASNetMobile(weights=None, input_shape=S32, include_top=False)
        return "NASNetMobile built under the torch backend without the proxy (the refusal is gone: test it in check_application_builders.py)"
    except ValueError as e:
        if "not available with the torch backend" not in str(e):
            return f"NASNetMobile refused for another reason: {e}"
    return "ok: NASNetMobile refuses the torch backend by its `backend.backend() == \"torch\"` check only"


def check_same_graph(proxy):
    """Proxied NASNetMobile == nasnet.NASNet(...) called with NASNetMobile's arguments (no check in between)."""
    keras.backend.clear_session()
    before = proxy.backend_calls
    a = keras.applications.NASNetMobile(weights=None, input_shape=(40, 40, 3), classes=3)
    if proxy.backend_calls - before != 1:
        return f"backend.backend() called {proxy.backend_calls - before} times in one NASNetMobile build (expected 1, the check)"
    keras.backend.clear_session()
    b = nasnet.NASNet((40, 40, 3), penultimate_filters=1056, num_blocks=4, stem_block_filters=32, skip_reduction=False,
                      filter_multiplier=2, include_top=True, weights=None, classes=3, default_size=224, name="nasnet_mobile")
    (ac, al), (bc, bl) = cab.canonical(a.get_config()), cab.canonical(b.get_config())
    if set(al) != set(bl):
        return "layer names differ"
    for n in al:
        d = cab.first_difference(al[n], bl[n], f"layer {n}")
        if d:
            return d
    d = cab.first_difference(ac, bc, "model")
    if d:
        return d
    return f"ok: proxied NASNetMobile is nasnet.NASNet with NASNetMobile's arguments ({len(al)} layers equal)"


def check_documented(app):
    keras.backend.clear_session()
    n = getattr(keras.applications, app)(weights=None).count_params()
    return f"ok: {n} parameters as documented" if n == DOCUMENTED[app] else f"{n} parameters, documented {DOCUMENTED[app]}"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--graft", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--only")
    p.add_argument("--full", action="store_true", help="also NASNetLarge at 331x331 with its top")
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)
    failed = 0

    def report(name, r):
        nonlocal failed
        ok = r.startswith("ok")
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'} {name}: {r}", flush=True)
        return ok

    checks = 0
    if not a.only:
        report("refusal", check_refusal())
        checks += 1
    proxy = _BackendProxy()
    saved = nasnet.backend
    nasnet.backend = proxy
    try:
        if not a.only:
            report("same_graph", check_same_graph(proxy))
            report("documented_NASNetMobile", check_documented("NASNetMobile"))
            checks += 2
            if a.full:
                report("documented_NASNetLarge", check_documented("NASNetLarge"))
                checks += 1
        cases = CASES + (FULL if a.full or a.only else [])
        if a.only:
            want = a.only.split(",")
            cases = [c for c in cases if c[0] in want or c[1] in want]
        for case, app, kw in cases:
            try:
                r = cab.check(case, app, kw, a.graft, a.work)
            except Exception as e:
                r = f"error: {type(e).__name__}: {e}"
            report(f"{case} ({app})", r)
        checks += len(cases)
    finally:
        nasnet.backend = saved
    print(f"{checks - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
