#!/usr/bin/python3
"""Mutation campaign: the graft CLI (built with -fsanitize=address,undefined) on damaged copies of
every Keras file in a corpus. Each file is truncated at several points, has random bytes flipped,
has a 4 KiB range zeroed and has a block duplicated; every mutant is run through `graft summary`
and `graft convert` with a time limit. A run passes when every mutant either loads or ends in a
graft error: no crash (signal), no hang (time limit), no sanitizer report, no foreign exception
(std::bad_alloc, a JSON or HDF5 exception reaching main).

    /usr/bin/python3 tests/fuzz/mutate_corpus.py --graft build-asan/tools/graft \\
        [--corpus ../shared/keras-corpus] [--per-file 40] [--seed 1] [--timeout 20] [--jobs 2]

Prints a summary and each finding (the mutant is kept under --keep for reproduction); exit status
1 when there is a finding.
"""
import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error:",
                   "MemorySanitizer", "ThreadSanitizer")


def mutants(data, n, rng):
    """(name, bytes) pairs: truncations, byte flips, zeroed ranges, duplicated blocks."""
    size = len(data)
    out = []
    for frac in (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99):
        cut = int(size * frac)
        out.append((f"trunc{cut}", data[:cut]))
    while len(out) < n:
        kind = rng.choice(("flip1", "flip8", "flip64", "zero4096", "dup", "flipheader"))
        b = bytearray(data)
        if kind.startswith("flip") and size:
            count = 1 if kind == "flip1" else 8 if kind == "flip8" else 64
            lim = min(size, 4096) if kind == "flipheader" else size
            if kind == "flipheader":
                count = 4
            offs = [rng.randrange(lim) for _ in range(count)]
            for o in offs:
                b[o] ^= rng.randrange(1, 256)
            name = f"{kind}_{offs[0]}"
        elif kind == "zero4096" and size:
            o = rng.randrange(size)
            b[o:o + 4096] = bytes(len(b[o:o + 4096]))
            name = f"zero{o}"
        elif size:
            o, l = rng.randrange(size), rng.randrange(1, 4096)
            d = rng.randrange(size)
            b[d:d] = data[o:o + l]
            name = f"dup{o}_{l}_{d}"
        else:
            continue
        out.append((name, bytes(b)))
    return out[:max(n, 9)]


def classify(proc_rc, stderr, timed_out):
    if timed_out:
        return "hang"
    if any(m in stderr for m in SANITIZER_MARKS):
        return "sanitizer"
    if proc_rc < 0:
        return f"crash(signal {-proc_rc})"
    if proc_rc not in (0, 1):
        return f"crash(exit {proc_rc})"
    if proc_rc == 1:
        last = [l for l in stderr.splitlines() if l.startswith("graft: ")]
        if not last or "[graft." not in last[-1]:
            return "foreign-exception"
    return None


def run_one(graft, cmd, path, out_dir, timeout):
    args = [graft, cmd, path] + ([os.path.join(out_dir, os.path.basename(path) + ".out.h5")] if cmd == "convert" else [])
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:allocator_may_return_null=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    try:
        p = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout, env=env)
        err = p.stderr.decode("utf-8", "replace")
        return classify(p.returncode, err, False), err
    except subprocess.TimeoutExpired as e:
        err = (e.stderr or b"").decode("utf-8", "replace")
        return classify(0, err, True), err


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graft", required=True, help="the graft CLI, built with sanitizers")
    ap.add_argument("--corpus", action="append", help="directory of Keras files (repeatable); default ../shared/keras-corpus")
    ap.add_argument("--per-file", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--commands", default="summary,convert")
    ap.add_argument("--keep", default=os.path.join(tempfile.gettempdir(), "graft-mutation-findings"))
    a = ap.parse_args()
    corpora = a.corpus or [os.path.join(REPO, "..", "shared", "keras-corpus")]
    files = []
    for c in corpora:
        for root, _, names in os.walk(c):
            for n in sorted(names):
                if n.endswith((".h5", ".keras", ".hdf5")):
                    files.append(os.path.join(root, n))
    rng = random.Random(a.seed)
    work = tempfile.mkdtemp(prefix="graft-mutate-")
    os.makedirs(a.keep, exist_ok=True)
    jobs = []
    for f in files:
        data = open(f, "rb").read()
        for name, b in mutants(data, a.per_file, rng):
            p = os.path.join(work, f"{os.path.basename(f)}.{name}")
            with open(p, "wb") as o:
                o.write(b)
            for cmd in a.commands.split(","):
                jobs.append((cmd, p))
    print(f"{len(files)} files, {len(jobs)} runs ({a.commands})", flush=True)
    counts, findings = {}, []

    def task(job):
        cmd, p = job
        kind, err = run_one(a.graft, cmd, p, work, a.timeout)
        return cmd, p, kind, err

    with ThreadPoolExecutor(max_workers=a.jobs) as ex:
        for i, (cmd, p, kind, err) in enumerate(ex.map(task, jobs)):
            counts[kind or "clean"] = counts.get(kind or "clean", 0) + 1
            if kind:
                kept = os.path.join(a.keep, os.path.basename(p))
                shutil.copyfile(p, kept)
                findings.append((kind, cmd, kept, err.strip().splitlines()[-12:]))
                print(f"FINDING {kind}: graft {cmd} {kept}", flush=True)
            if (i + 1) % 200 == 0:
                print(f"  {i + 1}/{len(jobs)} {counts}", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    print(f"done: {counts}")
    for kind, cmd, kept, tail in findings:
        print(f"\n== {kind}: graft {cmd} {kept}")
        print("\n".join(tail))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
