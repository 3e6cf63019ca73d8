"""GEMM section: our sgemm vs numpy's BLAS (at its best kernel) on 2048^3 and AlexNet shapes,
as GFLOP/s, % of our measured FMA peak and the ratio ours / numpy; then the fully connected
layers at batch 1 and 8 (small-output path, memory-bound) as GB/s of weights streamed."""
import json
import os
import subprocess
import sys

import numpy as np
import threadpoolctl

import alexnet_cpu as ac
from alexnet_cpu import _C

from common import best_and_median, env_without, md_table
from gemm_shapes import QUICK, SHAPES, operands

HERE = os.path.dirname(os.path.abspath(__file__))

# Linear layers at small batch b: (name, M, N, K, trans_a, trans_b) like SHAPES.
SMALL = [(f"{fc} {op} b={b}", *shape)
         for b in (1, 8)
         for fc, o, i in (("fc6", 4096, 9216), ("fc7", 4096, 4096), ("fc8", 1000, 4096))
         for op, shape in (("X.W^T", (b, o, i, False, True)), ("dY.W", (b, i, o, False, False)))
         if b == 1 or op == "X.W^T"]


def check(rng, M, N, K, ta, tb, a, b, c):
    """Our result against float64 on a sample of rows; raises on a wrong answer."""
    rows = rng.choice(M, size=min(M, 16), replace=False)
    opa = (a.T if ta else a)[rows].astype(np.float64)
    # One BLAS thread: idle OpenBLAS workers spin for a while and would slow our timing.
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        ref = opa @ (b.T if tb else b).astype(np.float64)
    err = np.abs(c[rows] - ref).max() / max(np.abs(ref).max(), 1.0)
    if not err < 1e-5:
        raise AssertionError(f"sgemm {M}x{N}x{K} ta={ta} tb={tb}: relative error {err:.2g}")


def numpy_side(names, repeats, min_time):
    """Time numpy in a subprocess on OpenBLAS's SkylakeX (AVX-512) kernel, L2 size detected."""
    env = env_without("OPENBLAS_L2_SIZE")
    env["OPENBLAS_CORETYPE"] = "SkylakeX"
    env["PYTHONPATH"] = HERE + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, os.path.join(HERE, "numpy_gemm_worker.py"),
                        json.dumps([sorted(names), repeats, min_time])],
                       env=env, capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def ours_side(names, repeats, min_time):
    rng = np.random.default_rng(0)
    times = {}
    for name, M, N, K, ta, tb in SHAPES:
        if name not in names:
            continue
        a, b = operands(rng, M, N, K, ta, tb, np)
        c = ac.sgemm(a, b, trans_a=ta, trans_b=tb)
        check(rng, M, N, K, ta, tb, a, b, c)  # correctness before timing
        times[name] = best_and_median(
            lambda: ac.sgemm(a, b, out=c, trans_a=ta, trans_b=tb), repeats, min_time)
    return times


def small_side(repeats, min_time):
    """Ours and numpy (in this process, BLAS threads = ours) on SMALL: rows for md_table."""
    rng = np.random.default_rng(0)
    rows, table = [], []
    nt = ac.get_num_threads()
    for name, M, N, K, ta, tb in SMALL:
        a, b = operands(rng, M, N, K, ta, tb, np)
        c = ac.sgemm(a, b, trans_a=ta, trans_b=tb)
        check(rng, M, N, K, ta, tb, a, b, c)
        ours = best_and_median(lambda: ac.sgemm(a, b, out=c, trans_a=ta, trans_b=tb),
                               repeats, min_time)[0]
        opa, opb = (a.T if ta else a), (b.T if tb else b)
        with threadpoolctl.threadpool_limits(limits=nt, user_api="blas"):
            theirs = best_and_median(lambda: np.matmul(opa, opb, out=c), repeats, min_time)[0]
        gb = 4.0 * (M * K + K * N + M * N) / 1e9
        rows.append({"name": name, "M": M, "N": N, "K": K, "trans_a": ta, "trans_b": tb,
                     "ours_ms": ours * 1e3, "numpy_ms": theirs * 1e3,
                     "ours_gbps": gb / ours, "numpy_gbps": gb / theirs})
        table.append((name, f"{M}x{N}x{K}", ("T" if ta else "N") + ("T" if tb else "N"),
                      ours * 1e3, gb / ours, theirs * 1e3, gb / theirs, theirs / ours))
    return rows, table


def run(quick=False, peak_gflops=None):
    """Returns (result dict, Markdown text)."""
    names = [s[0] for s in SHAPES if not quick or s[0] in QUICK]
    repeats, min_time = (3, 0.2) if quick else (5, 0.5)
    # Alternate the two sides so drifting load on a shared machine hits both alike.
    rounds = 1 if quick else 2
    ours, theirs, info = {}, {}, None
    for _ in range(rounds):
        for name, t in ours_side(names, repeats, min_time).items():
            ours[name] = min(ours.get(name, t), t, key=lambda x: x[0])
        np_out = numpy_side(names, repeats, min_time)
        info = np_out["threadpool"]
        for name, t in np_out["times"].items():
            t = tuple(t)
            theirs[name] = min(theirs.get(name, t), t, key=lambda x: x[0])

    rows, table = [], []
    for name, M, N, K, ta, tb in SHAPES:
        if name not in names:
            continue
        flops = 2.0 * M * N * K
        g_ours, g_np = flops / ours[name][0] / 1e9, flops / theirs[name][0] / 1e9
        ratio = g_ours / g_np
        pct = 100.0 * g_ours / peak_gflops if peak_gflops else float("nan")
        rows.append({"name": name, "M": M, "N": N, "K": K, "trans_a": ta, "trans_b": tb,
                     "ours_gflops": g_ours, "ours_median_gflops": flops / ours[name][1] / 1e9,
                     "numpy_gflops": g_np, "numpy_median_gflops": flops / theirs[name][1] / 1e9,
                     "ours_pct_peak": pct, "ratio": ratio})
        op = ("T" if ta else "N") + ("T" if tb else "N")
        table.append((name, f"{M}x{N}x{K}", op, g_ours, pct, g_np, ratio))
    blas = ", ".join(f"{i['internal_api']} {i.get('version')} kernel {i.get('architecture')} "
                     f"({i.get('num_threads')} threads)" for i in info)
    result = {"threads": ac.get_num_threads(), "isa": _C.get_isa(), "numpy_blas": info,
              "shapes": rows}
    md = [f"## sgemm vs numpy ({blas})", "",
          f"{ac.get_num_threads()} threads, our ISA path {_C.get_isa()}; best of "
          f"{repeats}+ runs, each side run {rounds}x alternately; GFLOP/s = 2MNK / time.", "",
          md_table(["shape", "MxNxK", "op", "ours GFLOP/s", "% peak", "numpy GFLOP/s",
                    "ours/numpy"], table)]
    worst = min(r["ratio"] for r in rows)
    md += ["", f"Lowest ratio ours/numpy: {worst:.2f}."]
    small_rows, small_table = small_side(repeats, min_time)
    result["small"] = small_rows
    md += ["", "### Fully connected layers at batch 1 and 8 (small-output path)", "",
           "Best time; GB/s = bytes of A, B and C / time (weights dominate: memory-bound); "
           "numpy in this process with as many BLAS threads.", "",
           md_table(["shape", "MxNxK", "op", "ours ms", "ours GB/s", "numpy ms", "numpy GB/s",
                     "ours/numpy"], small_table)]
    return result, "\n".join(md)
