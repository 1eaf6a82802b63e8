#!/usr/bin/python3
"""bench/mpi_scaling.py — data-parallel training on this machine, and the scaling model to many
nodes (bench/README.md, "Scaling out"). Not a test.

Runs graft_mpi_bench (bench/mpi_bench.cpp) for model A, the small CNN of graft_bench and
MobileNetV2 (224x224x3, 10 classes, every layer trained) as
  * 1 process x 2 threads (graft's own threads, no MPI),
  * 2 processes x 1 thread (mpirun -np 2, OMP_NUM_THREADS=1: data-parallel, MPI_Allreduce),
  * 1 process x 1 thread (the per-sample compute time of one core),
the same global batch in every configuration, repetitions interleaved, and prints the medians,
then the paper model: gradient bytes per step, ring-allreduce time 2(P-1)/P * bytes / bandwidth
(+ 2(P-1) message latencies) at 10/25/100 Gb/s against the measured compute time of a batch on one
node (this 2-core machine), the per-node batch that keeps 90 % efficiency and the node count where
a fixed global batch stops scaling.

  bench/mpi_scaling.py [--bench GRAFT_MPI_BENCH --graft-bench GRAFT_BENCH] [--reps 3]
                       [--workloads model_a,cnn,mobilenetv2] [--quick] [--json FILE]
                       [--max-load L] [--rate WORKLOAD=SAMPLES_PER_S ...]

--max-load waits before each measurement until the machine's 1-minute load average is below L (a
shared machine); --rate gives the paper model a one-node compute rate measured elsewhere (by
default the fastest 1 x 2 repetition of this run).

Without --bench it builds graft_mpi_bench and graft_bench with CMake (Release) in build-bench-run/
(needs MPI: scripts/install-deps --mpi); `graft_bench prepare` writes the initial weights of model A
and the CNN (the models of bench/run) that graft_mpi_bench trains.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# workload -> (global batch, timed steps, quick steps, note)
WORKLOADS = {
    "model_a": (32, 3000, 300, "Hands-On ML model A (784-300-100-50-50-50-8, selu), SGD"),
    "cnn": (32, 300, 40, "Conv32-Pool-Conv64-Pool-Dense128-Dense10, SGD"),
    # batch 16: training MobileNetV2 at 224x224 takes ~150 MB per sample (peak RSS 1.5 GB at batch 8)
    "mobilenetv2": (16, 8, 2, "keras.applications.MobileNetV2 224x224x3, 10 classes, all layers trained, SGD"),
}
BANDWIDTHS = (10, 25, 100)  # Gb/s
LATENCY = 25e-6  # seconds per ring step (one message over TCP on Ethernet; RDMA is ~2 us)
GLOBAL_BATCH = 256  # the fixed global batch of the strong-scaling column


def build(build_dir):
    subprocess.run([os.path.join(ROOT, "scripts", "install-deps"), "--mpi"], check=True)
    subprocess.run(["cmake", "-S", ROOT, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release", "-DGRAFT_BUILD_BENCH=ON",
                    "-DGRAFT_BUILD_TESTS=OFF", "-DGRAFT_BUILD_EXAMPLES=OFF", "-DGRAFT_BUILD_TOOLS=OFF",
                    "-DGRAFT_INSTALL=OFF"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", build_dir, "--target", "graft_mpi_bench", "graft_bench", "-j", str(os.cpu_count() or 1)],
                   check=True)
    return os.path.join(build_dir, "bench", "graft_mpi_bench"), os.path.join(build_dir, "bench", "graft_bench")


def run(cmd, env):
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    sys.stderr.write(p.stdout + p.stderr)
    raise SystemExit("mpi_scaling.py: no result from: " + " ".join(cmd))


def paper(r12, bytes_):
    """The paper model of one workload from r12, its 1 process x 2 threads run (one node)."""
    b = 32  # the per-node batch of the weak-scaling columns
    ts = r12["step_seconds"] / r12["batch"]  # per sample, measured (smaller batches cost more per sample)
    tc = b * ts
    rows = []
    for bw in BANDWIDTHS:
        bw_bytes = bw * 1e9 / 8
        t_inf = 2 * bytes_ / bw_bytes  # ring allreduce, P large: 2 (P-1)/P -> 2
        # weak scaling, b per node: efficiency at P nodes
        def eff(p, per_node=b):
            tar = 2 * (p - 1) / p * bytes_ / bw_bytes + 2 * (p - 1) * LATENCY
            return per_node * ts / (per_node * ts + tar)
        e8, e64 = eff(8), eff(64)
        b90 = 9 * (t_inf + 2 * 63 * LATENCY) / ts  # per-node batch for 90 % at 64 nodes
        # strong scaling: global batch GLOBAL_BATCH split over P nodes; throughput peaks where
        # adding a node adds more allreduce latency than it removes compute
        best_p, best = 1, GLOBAL_BATCH * ts
        p50 = None
        for p in range(2, GLOBAL_BATCH + 1):
            t = GLOBAL_BATCH * ts / p + 2 * (p - 1) / p * bytes_ / bw_bytes + 2 * (p - 1) * LATENCY
            if t < best:
                best_p, best = p, t
            if p50 is None and (GLOBAL_BATCH * ts / p) < (t - GLOBAL_BATCH * ts / p):
                p50 = p  # compute no longer the larger part: efficiency below 50 %
        rows.append((bw, t_inf, e8, e64, b90, p50, best_p, GLOBAL_BATCH * ts / best))
    return tc, ts, rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", help="graft_mpi_bench binary (skips the CMake build; give --graft-bench too)")
    ap.add_argument("--graft-bench", help="graft_bench binary (writes the initial weights)")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build-bench-run"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workloads", default="model_a,cnn,mobilenetv2")
    ap.add_argument("--mpirun", default=shutil.which("mpirun") or "mpirun")
    ap.add_argument("--quick", action="store_true", help="few steps (checks that it works; noisy numbers)")
    ap.add_argument("--json", help="also write every measurement here")
    ap.add_argument("--rate", action="append", default=[], metavar="WORKLOAD=SAMPLES_PER_S",
                    help="the paper model's one-node compute rate for WORKLOAD (e.g. bench/run's 2-thread figure "
                         "on a quiet machine); default: the fastest 1 x 2 repetition here")
    ap.add_argument("--max-load", type=float, default=0,
                    help="before each measurement wait (up to 5 minutes) until the 1-minute load average is below this")
    ap.add_argument("--report", metavar="JSON", help="no measurement: the tables from a --json file of an earlier run")
    a = ap.parse_args()
    rates = dict((k, float(v)) for k, v in (r.split("=", 1) for r in a.rate))
    wls = a.workloads.split(",")
    res = {}
    if a.report:
        with open(a.report) as f:
            for r in json.load(f):
                res.setdefault((r["workload"], r["config"]), []).append(r)
        wls = [w for w in wls if (w, "1x2") in res]
    else:
        measure(a, wls, res)
    report(wls, res, rates)
    if a.json:
        with open(a.json, "w") as f:
            json.dump([dict(r, config=c) for (w, c), v in res.items() for r in v], f, indent=1)


def measure(a, wls, res):
    """Every configuration of every workload, a.reps interleaved repetitions, into res."""
    if a.bench:
        if not a.graft_bench:
            sys.exit("mpi_scaling.py: --bench needs --graft-bench")
        gb, gbench = a.bench, a.graft_bench
    else:
        gb, gbench = build(a.build_dir)
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    weights = os.path.join(os.path.dirname(os.path.abspath(gb)), "mpi-bench-work")
    os.makedirs(weights, exist_ok=True)
    subprocess.run([gbench, "prepare", "--out", weights], check=True, env=base, stdout=subprocess.DEVNULL)
    configs = [("1x2", 1, 2), ("2x1", 2, 1), ("1x1", 1, 1)]
    for rep in range(a.reps):
        print("repetition %d/%d" % (rep + 1, a.reps), flush=True)
        for w in wls:
            batch, steps, quick, _ = WORKLOADS[w]
            st = quick if a.quick else steps
            for cname, procs, threads in configs:
                args = [gb, w, "--weights", weights, "--batch", str(batch), "--steps", str(st), "--threads", str(threads)]
                env = dict(base, OMP_NUM_THREADS=str(threads))
                # --bind-to none: Open MPI pins each of 2 ranks to a core by default, and a rank
                # pinned to a core that another program also uses cannot move (1 x 2 is not pinned)
                cmd = ([a.mpirun, "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", str(procs)] + args
                       if procs > 1 else args)
                waited = 0
                while a.max_load > 0 and os.getloadavg()[0] >= a.max_load and waited < 300:
                    time.sleep(10)
                    waited += 10
                r = run(cmd, env)
                r["load"] = os.getloadavg()[0]
                res.setdefault((w, cname), []).append(r)
                print("  %-12s %s  %9.1f samples/s  step %8.2f ms  allreduce %7.2f ms (alone %6.2f ms)  load %.1f" % (
                    w, cname, r["samples_per_s"], 1e3 * r["step_seconds"], 1e3 * r["allreduce_seconds"],
                    1e3 * r.get("allreduce_alone_seconds", 0), r["load"]), flush=True)


def rate(v):
    return "%.0f" % v if v >= 100 else "%.1f" % v


def report(wls, res, rates):
    """The measured table and the paper model, as markdown."""
    def med(w, c, k):
        return statistics.median(r[k] for r in res[(w, c)])

    print()
    print("| workload | parameters | gradient bytes / step | 1 process x 2 threads | 2 processes x 1 thread | "
          "2x1 / 1x2 | 1 process x 1 thread | 2x1: step, of which in allreduce | allreduce alone |")
    print("|---|---|---|---|---|---|---|---|---|")
    for w in wls:
        r = res[(w, "2x1")][0]
        v12, v21, v11 = med(w, "1x2", "samples_per_s"), med(w, "2x1", "samples_per_s"), med(w, "1x1", "samples_per_s")
        alone = med(w, "2x1", "allreduce_alone_seconds")
        print("| %s | %s | %.2f MB | %s samples/s | %s samples/s | %.2f | %s samples/s | %.2f ms, %.2f ms | "
              "%.2f ms (%.1f GB/s) |" % (
                  w, format(r["params"], ","), r["gradient_bytes"] / 1e6, rate(v12), rate(v21), v21 / v12, rate(v11),
                  1e3 * med(w, "2x1", "step_seconds"), 1e3 * med(w, "2x1", "allreduce_seconds"), 1e3 * alone,
                  r["gradient_bytes"] / alone / 1e9 if alone > 0 else 0))
    print()
    print("Paper model (one node = this 2-core machine, 1 process x 2 threads, %s; ring allreduce "
          "2(P-1)/P * bytes / bandwidth + 2(P-1) x %.0f us; no overlap of allreduce and backward pass):" % (
              ", ".join("%s at %g samples/s" % kv for kv in rates.items()) or "its fastest repetition", LATENCY * 1e6))
    print()
    print("| workload | compute per batch of 32 (one node) | Gb/s | allreduce, P large | efficiency at 8 / 64 nodes, 32 per node | "
          "per-node batch for 90 %% at 64 nodes | global batch %d: efficiency < 50 %% from | fastest at | its speed-up |" % GLOBAL_BATCH)
    print("|---|---|---|---|---|---|---|---|---|")
    for w in wls:
        r12 = dict(res[(w, "1x2")][0])
        r12["step_seconds"] = min(r["step_seconds"] for r in res[(w, "1x2")])  # the least disturbed
        if w in rates:
            r12["step_seconds"] = r12["batch"] / rates[w]
        bytes_ = res[(w, "2x1")][0]["gradient_bytes"]
        tc, ts, rows = paper(r12, bytes_)
        for bw, t_inf, e8, e64, b90, p50, best_p, speed in rows:
            print("| %s | %.2f ms | %d | %.2f ms | %.0f %% / %.0f %% | %s | %s | %d nodes | %.1fx |" % (
                w, 1e3 * tc, bw, 1e3 * t_inf, 100 * e8, 100 * e64, "%.0f" % b90 if b90 >= 1 else "< 1",
                "%d nodes" % p50 if p50 else "never", best_p, speed))


if __name__ == "__main__":
    main()
