"""The real thing for `graft fit --backup-dir`: a run killed with SIGKILL mid-training and started
again with the same command resumes from its last checkpoint and ends with exactly the weights
of an uninterrupted run (compared bit for bit).

  backup_kill_resume.py GRAFT MODEL.h5 WORK_DIR
"""
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np


def weights(path):
    out = {}
    with h5py.File(path, "r") as f:
        f["model_weights"].visititems(lambda n, o: out.__setitem__(n, o[...]) if isinstance(o, h5py.Dataset) else None)
    return out


def main():
    graft, model, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    data = os.path.join(work, "data.h5")
    rng = np.random.default_rng(5)
    x = rng.normal(size=(60000, 8)).astype("float32")
    with h5py.File(data, "w") as f:
        f["x_train"] = x
        f["y_train"] = (np.abs(x[:, 0] * 2 + x[:, 1]).astype(int) % 5).astype("float32")
    common = [graft, "fit", model, "--data", data, "--epochs", "12", "--batch-size", "16", "--seed", "7",
              "--validation-split", "0.1", "--lr-schedule", "one-cycle:max_lr=0.01", "--early-stopping", "20",
              "--csv-log", os.path.join(work, "log.csv")]
    ref = os.path.join(work, "ref.h5")
    t0 = time.time()
    subprocess.run(common + ["--output", ref], check=True, stdout=subprocess.DEVNULL)
    full = time.time() - t0
    out, backup = os.path.join(work, "out.h5"), os.path.join(work, "backup")
    cmd = common + ["--output", out, "--backup-dir", backup]
    ckpt = os.path.join(backup, "checkpoint.h5")
    for attempt in range(5):  # kill as soon as a checkpoint exists (epoch 1 of 12): training is still going
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        deadline = time.time() + 10 * full + 30
        while not os.path.exists(ckpt) and p.poll() is None and time.time() < deadline:
            time.sleep(0.002)
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        p.wait()
        if p.returncode == -signal.SIGKILL and not os.path.exists(out) and os.path.exists(ckpt):
            break
        # it finished (or wrote its output) before the kill landed: start over
        for f in (out, ckpt):
            if os.path.exists(f):
                os.remove(f)
    else:
        print("FAIL: the run finished before it could be killed (machine too fast for this workload?)")
        return 1
    if os.path.exists(out):
        print("FAIL: the killed run wrote its output")
        return 1
    if not os.path.exists(ckpt):
        print("FAIL: no checkpoint after the kill")
        return 1
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0 or "resumed from" not in r.stdout:
        print(f"FAIL: the rerun did not resume (exit {r.returncode}): {r.stdout[-300:]} {r.stderr[-300:]}")
        return 1
    a, b = weights(ref), weights(out)
    if a.keys() != b.keys():
        print("FAIL: different weights")
        return 1
    for k in a:
        if a[k].tobytes() != b[k].tobytes():
            print(f"FAIL: {k} differs from the uninterrupted run by {np.max(np.abs(a[k] - b[k]))}")
            return 1
    if os.path.exists(backup):
        print("FAIL: the backup folder was not removed after the completed run")
        return 1
    print(f"PASS: killed with SIGKILL, resumed ({r.stdout.strip().splitlines()[0]}), {len(a)} weight arrays bit-identical to the uninterrupted run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
