#!/usr/bin/python3
"""The MPI tests (tests/mpi/CMakeLists.txt: one CTest test per case): graft_mpi_checks and the
graft CLI under `mpirun --allow-run-as-root --oversubscribe -np 2`, OMP_NUM_THREADS=1.

  run_checks.py CASE --checks GRAFT_MPI_CHECKS [--graft GRAFT] --mpirun MPIRUN --work DIR [--shared DIR]

Cases: comm, mismatch, leave, crash, fit_arrays, fit_source, files, small_batch, cli_fit,
cli_fine_tune, cli_mismatch. Exit 0: passed, 1: failed, 3: skipped (a CLI case without the CLI).
Every run has a time limit: a hang fails the case instead of stalling the suite.
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

import h5py
import numpy as np

TOL = 1e-4  # predictions of the 2-process run against the 1-process run (float32 reduction order)


class Failed(Exception):
    pass


def run(cmd, env, limit=120, expect_rc=0):
    """Runs cmd; returns (rc, stdout, stderr, seconds). Fails on a hang or an unexpected status
    (expect_rc: an int, "nonzero" or None for any)."""
    t0 = time.time()
    print("+ " + " ".join(cmd), flush=True)
    try:
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=limit)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        raise Failed("hung: no exit within %d s (%s)\n%s" % (limit, " ".join(cmd), out))
    secs = time.time() - t0
    sys.stdout.write(p.stdout)
    sys.stdout.write(p.stderr)
    print("  (exit %d after %.1f s)" % (p.returncode, secs), flush=True)
    if expect_rc == "nonzero" and p.returncode == 0:
        raise Failed("expected a non-zero exit status")
    if isinstance(expect_rc, int) and p.returncode != expect_rc:
        raise Failed("exit status %d, expected %d" % (p.returncode, expect_rc))
    return p.returncode, p.stdout, p.stderr, secs


def expect(ok, what):
    if not ok:
        raise Failed(what)


class Ctx:
    def __init__(self, a):
        self.a = a
        self.work = a.work
        self.env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="passive", GRAFT_MPI_TIMEOUT="60")
        self.mpi = [a.mpirun, "--allow-run-as-root", "--oversubscribe"]

    def np(self, n, *cmd):
        return self.mpi + ["-np", str(n)] + [str(c) for c in cmd]

    def prepare(self):
        run([self.a.checks, "prepare", self.work], self.env)


def compare(one, two, what):
    with h5py.File(one, "r") as f1, h5py.File(two, "r") as f2:
        key = "pred" if "pred" in f1 else "y"
        p1, p2 = np.asarray(f1[key]), np.asarray(f2[key])
        expect(p1.shape == p2.shape, "%s: prediction shapes %s and %s" % (what, p1.shape, p2.shape))
        d = float(np.max(np.abs(p1 - p2)))
        print("%s: max |2 processes - 1 process| on %d predictions = %.3g (tolerance %g)" % (what, p1.size, d, TOL))
        expect(d <= TOL, "%s: the 2-process fit differs from the 1-process fit by %.3g > %g" % (what, d, TOL))
        # and the runs trained: predictions moved away from the initial model's
        for k in ("loss", "val_loss"):
            if k in f1:
                l1, l2 = np.asarray(f1[k]), np.asarray(f2[k])
                print("  %s 1 process %s, 2 processes %s" % (k, np.round(l1, 5), np.round(l2, 5)))
                expect(np.allclose(l1, l2, atol=1e-4), "%s: %s differs: %s vs %s" % (what, k, l1, l2))
                if k == "loss":
                    expect(l1[-1] < l1[0], "%s: the loss did not fall (%s)" % (what, l1))
        return d


def case_comm(c):
    for n in (2, 3):  # 3: reductions over more than a pair, buckets padded to the process count
        run(c.np(n, c.a.checks, "comm"), c.env)


def case_mismatch(c):
    _, out, _, _ = run(c.np(2, c.a.checks, "mismatch"), c.env, limit=60)
    for r in (0, 1):
        expect("rank %d caught: [graft.value] data-parallel training: the 2 processes disagree on the model file" % r in out,
               "rank %d did not report the mismatch" % r)


def case_leave(c):
    env = dict(c.env, GRAFT_MPI_TIMEOUT="3")
    _, out, err, secs = run(c.np(2, c.a.checks, "leave"), env, limit=60, expect_rc="nonzero")
    expect("waited 3 s for the other processes" in out, "rank 0 did not time out with its message")
    expect(secs < 40, "the job took %.0f s to end" % secs)


def case_crash(c):
    _, out, err, secs = run(c.np(2, c.a.checks, "crash"), c.env, limit=60, expect_rc="nonzero")
    expect("rank 1 dies" in out, "rank 1 did not run")
    expect(secs < 30, "the job took %.0f s to end after a rank died" % secs)


def fit_pair(c, source, extra=(), what=""):
    c.prepare()
    one, two = os.path.join(c.work, "one.h5"), os.path.join(c.work, "two.h5")
    run([c.a.checks, "fit", c.work, one, source] + list(extra), c.env, limit=200)
    run(c.np(2, c.a.checks, "fit", c.work, two, source, *extra), c.env, limit=200)
    compare(one, two, "fit on %s%s" % (source, what))


def case_fit_arrays(c):
    fit_pair(c, "arrays")
    # batches of 5 on 2 processes (samples go to rank index % 2): shares of 3 and 2 rows, ... and
    # of 5 and 0 in 1 batch of 16 (a process without rows in a batch still takes part in the sum)
    fit_pair(c, "arrays", ["--batch", "5", "--adam"], ", batches of 5 (Adam)")


def case_fit_source(c):
    fit_pair(c, "h5", ["--adam"], " (Adam)")


def case_files(c):
    c.prepare()
    run(c.np(2, c.a.checks, "files", c.work), c.env, limit=200)
    r0, r1 = os.path.join(c.work, "rank0"), os.path.join(c.work, "rank1")
    expect(os.path.exists(os.path.join(r0, "ckpt.h5")) and os.path.exists(os.path.join(r0, "log.csv")),
           "rank 0 did not write its checkpoint and CSV log: %s" % (os.listdir(r0) if os.path.isdir(r0) else "no directory"))
    written = []
    for root, _, names in os.walk(r1):
        written += [os.path.join(root, n) for n in names]
    expect(not written, "rank 1 wrote files: %s" % written)


def case_small_batch(c):
    _, out, _, _ = run(c.np(2, c.a.checks, "small_batch"), c.env, limit=60)
    for r in (0, 1):
        line = next((l for l in out.splitlines() if l.startswith("rank %d caught: " % r)), "")
        expect("[graft.value]" in line and "batch" in line, "rank %d: no clear error for a batch of 1 on 2 processes (%r)" % (r, line))


def need_cli(c):
    if not c.a.graft:
        print("the graft CLI was not built: skipped")
        sys.exit(3)


def case_cli_fit(c):
    need_cli(c)
    c.prepare()
    g = c.a.graft
    common = ["--data", os.path.join(c.work, "data.h5"), "--epochs", "3", "--batch-size", "31", "--seed", "5"]
    m = os.path.join(c.work, "model.h5")
    one, two = os.path.join(c.work, "cli_one.h5"), os.path.join(c.work, "cli_two.h5")
    _, out1, _, _ = run([g, "fit", m, "--output", one] + common, c.env, limit=200)
    expect("data-parallel" not in out1, "the 1-process run printed a data-parallel line")
    _, out2, _, _ = run(c.np(2, g, "fit", m, "--output", two, *common), c.env, limit=200)
    expect(out2.count("data-parallel: 2 processes\n") == 1, "mpirun -np 2 graft fit did not print 'data-parallel: 2 processes' once")
    expect(out2.count("trained 3 epoch(s)") == 1, "the result line was not printed once (rank 0 only)")
    preds = []
    for model in (one, two):
        p = os.path.join(c.work, os.path.basename(model) + ".pred.h5")
        run([g, "predict", model, "--input", os.path.join(c.work, "test.h5"), "--output", p], c.env)
        preds.append(p)
    compare(preds[0], preds[1], "graft fit")


def write_bmp(path, img):
    """img: (h, w, 3) uint8 RGB, as a 24-bit BMP (no imaging library needed)."""
    h, w, _ = img.shape
    stride = (3 * w + 3) // 4 * 4
    rows = b"".join(img[y, :, ::-1].tobytes() + b"\0" * (stride - 3 * w) for y in range(h - 1, -1, -1))
    header = b"BM" + (54 + len(rows)).to_bytes(4, "little") + b"\0\0\0\0" + (54).to_bytes(4, "little")
    dib = (40).to_bytes(4, "little") + w.to_bytes(4, "little") + h.to_bytes(4, "little") + (1).to_bytes(2, "little") + \
        (24).to_bytes(2, "little") + b"\0" * 4 + len(rows).to_bytes(4, "little") + b"\0" * 16
    with open(path, "wb") as f:
        f.write(header + dib + rows)


def case_cli_fine_tune(c):
    """graft fine-tune on a folder of images under mpirun: each process decodes its own share, the
    new head starts from the same weights on both (drawn from --seed), rank 0 alone saves, the
    result separates the classes and predicts what the 1-process run's model predicts."""
    need_cli(c)
    g = c.a.graft
    images = os.path.join(c.work, "images")
    rng = np.random.RandomState(0)
    for k, name in enumerate(["blue", "green", "red"]):
        os.makedirs(os.path.join(images, name))
        for i in range(16):
            img = rng.randint(0, 120, (20, 18, 3)).astype(np.uint8)
            img[..., 2 - k] += 120
            write_bmp(os.path.join(images, name, "img_%02d.bmp" % i), img)
    small = os.path.join(c.a.shared, "keras-fixtures", "global_avg_pool", "model.h5")
    out, out1 = os.path.join(c.work, "tuned.h5"), os.path.join(c.work, "tuned_one.h5")
    args = ["fine-tune", small, "--images", images, "--epochs", "20", "--batch-size", "8",
            "--seed", "1", "--lr", "0.05", "--validation-split", "0.25", "--preprocessing", "unit"]
    rc, out2, err2, _ = run(c.np(2, g, *args, "--output", out), c.env, limit=200, expect_rc=None)
    if rc != 0 and "built without image support" in err2:
        print("the graft CLI was built without image support: skipped")
        sys.exit(3)
    expect(rc == 0, "mpirun -np 2 graft fine-tune failed")
    expect(out2.count("data-parallel: 2 processes\n") == 1, "mpirun -np 2 graft fine-tune did not print 'data-parallel: 2 processes' once")
    expect(out2.count("saved: ") == 1, "the result was not printed once (rank 0 only)")
    _, ev, _, _ = run([g, "evaluate", out, "--images", images], c.env)
    acc = float(next(l.split()[1] for l in ev.splitlines() if l.startswith("accuracy:")))
    expect(acc >= 0.8, "the model fine-tuned on 2 processes separates three colour classes with accuracy %g < 0.8" % acc)
    run([g] + args + ["--output", out1], c.env, limit=200)
    probs = []
    for model in (out1, out):
        csv = model + ".csv"
        run([g, "predict", model, "--images", images, "--output", csv], c.env)
        with open(csv) as f:
            rows = [l.rstrip("\n").split(",") for l in f][1:]
        probs.append(np.array([[float(v) for v in r[2:]] for r in rows]))
    diff = float(np.abs(probs[0] - probs[1]).max())
    print("graft fine-tune, 1 vs 2 processes: max |difference| of the predicted probabilities %.3g" % diff)
    expect(diff <= TOL, "mpirun -np 2 graft fine-tune differs from the 1-process run by %g > %g" % (diff, TOL))


def case_cli_mismatch(c):
    need_cli(c)
    c.prepare()
    g = c.a.graft
    common = ["--data", os.path.join(c.work, "data.h5"), "--output", os.path.join(c.work, "never.h5"), "--epochs", "1"]
    cmd = c.mpi + ["-np", "1", g, "fit", os.path.join(c.work, "model.h5")] + common + \
        [":", "-np", "1", g, "fit", os.path.join(c.work, "model_b.h5")] + common
    _, out, err, secs = run(cmd, c.env, limit=60, expect_rc="nonzero")
    for r in (0, 1):
        expect("graft: rank %d of 2: [graft.value] data-parallel training: the 2 processes disagree on the model's weights" % r in err,
               "rank %d did not report the different model files" % r)
    expect(not os.path.exists(os.path.join(c.work, "never.h5")), "a model was saved")
    expect(secs < 30, "the job took %.0f s to end" % secs)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("case")
    ap.add_argument("--checks", required=True)
    ap.add_argument("--graft")
    ap.add_argument("--mpirun", default="mpirun")
    ap.add_argument("--work", required=True)
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared"))
    a = ap.parse_args()
    fn = globals().get("case_" + a.case)
    if not fn:
        sys.exit("run_checks.py: unknown case " + a.case)
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    try:
        fn(Ctx(a))
    except Failed as e:
        print("FAILED (%s): %s" % (a.case, e), flush=True)
        sys.exit(1)
    print("passed: " + a.case)


if __name__ == "__main__":
    main()
