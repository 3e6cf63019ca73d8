"""bf16 section: the vdpbf16ps peak beside the FMA one, our bf16 GEMM on 2048^3 and AlexNet
shapes (% of that peak), then AlexNet end to end in bf16 beside PyTorch's bf16 autocast and
OpenVINO (f32 and bf16 INFERENCE_PRECISION_HINT), each figure in its own process
(benchmarks/_worker.py), engines interleaved round by round, median per configuration.

    python benchmarks/bench_bf16.py [--quick]       (or run.py, section "bf16")

Missing references (torch, openvino) are skipped with a note; a CPU without AVX512_BF16
skips the section."""
import argparse
import json
import sys

import numpy as np

import alexnet_cpu as ac
from alexnet_cpu import _C

from common import best_and_median, md_table
import e2e
from gemm_shapes import SHAPES, operands

# (engine, precision) columns of the end-to-end table; ours fp32 for the bf16 speed-up.
COLUMNS = [("ours", "bf16"), ("ours", "fp32"), ("torch", "bf16"), ("torch", "fp32"),
           ("openvino", "bf16"), ("openvino", "fp32")]
NAMES = {"ours": "ours", "torch": "PyTorch", "openvino": "OpenVINO"}
# (variant, mode) rows; training has no OpenVINO column.
ROWS = [("owt", "train"), ("paper", "train"), ("owt", "infer"), ("owt", "latency")]
GEMM_SHAPES = ("square 2048^3", "conv2 fwd (ungrouped)", "conv3 fwd", "fc6 fwd X.W^T",
               "fc6 dW = dY^T.X")


def gemm_rows(quick):
    """Our sgemm in bf16 and fp32 on a few shapes: best GFLOP/s, checked first."""
    rng = np.random.default_rng(0)
    repeats, min_time = (3, 0.2) if quick else (5, 0.5)
    rows = []
    for name, M, N, K, ta, tb in SHAPES:
        if name not in GEMM_SHAPES or (quick and name != "square 2048^3"):
            continue
        a, b = operands(rng, M, N, K, ta, tb, np)
        c = ac.sgemm(a, b, trans_a=ta, trans_b=tb, precision="bf16")
        ref = (_C.bf16_round(a.T if ta else a)[:8].astype(np.float64)
               @ _C.bf16_round(b.T if tb else b).astype(np.float64))
        err = np.abs(c[:8] - ref).max() / np.abs(ref).max()
        if not err < 1e-5:  # only fp32 summation error is allowed against bf16 operands
            raise AssertionError(f"bf16 sgemm {name}: relative error {err:.2g}")
        g = {}
        for prec in ("bf16", "fp32"):
            t = best_and_median(lambda: ac.sgemm(a, b, out=c, trans_a=ta, trans_b=tb,
                                                 precision=prec), repeats, min_time)[0]
            g[prec] = 2.0 * M * N * K / t / 1e9
        rows.append({"name": name, "M": M, "N": N, "K": K, "bf16_gflops": g["bf16"],
                     "fp32_gflops": g["fp32"]})
    return rows


def end_to_end(quick, progress, **overrides):
    s = dict(e2e.QUICK if quick else e2e.DEFAULTS)
    s.update(overrides)
    raw = {(v, m, e, p): [] for v, m in ROWS for e, p in COLUMNS}
    for r in range(s["rounds"]):
        cols = COLUMNS if r % 2 == 0 else COLUMNS[::-1]
        for v, m in ROWS:
            for e, p in cols:
                if e == "openvino" and m == "train":
                    continue
                lat = m == "latency"
                spec = {"op": m, "engine": e, "variant": v, "precision": p,
                        "batch": 1 if lat else s["batch"], "size": s["size"],
                        "iters": s["latency_iters"] if lat else s["iters"],
                        "warmup": max(s["warmup"], 2) if lat else s["warmup"],
                        "threads": s["threads"]}
                res = e2e.run_worker(spec, s["timeout"])
                raw[(v, m, e, p)].append(res)
                progress(f"bf16 round {r + 1} {v} {m} {e} {p}: {e2e._brief(res)}")
    out = {"settings": s, "speed": {}}
    for (v, m, e, p), runs in raw.items():
        if runs:
            out["speed"].setdefault(f"{v} {m}", {})[f"{e} {p}"] = e2e._combine(runs)
    return out


def _val(speed, row, col):
    c = speed.get(row, {}).get(col, {})
    return c.get("ms" if row.endswith("latency") else "img_s")


def targets(res):
    """The issue's bf16 targets, met or not, from this run's figures."""
    sp, out = res["e2e"]["speed"], []

    def row(name, ours, ref, target, need, lower=False):
        if ours is None or ref is None:
            out.append((name, "-", "-", target, "not measured"))
            return
        ratio = ref / ours if lower else ours / ref
        out.append((name, ours, ref, target, f"{ratio:.2f}x " + ("met" if ratio >= need
                                                                   else "missed")))
    row("owt training img/s, ours bf16 vs PyTorch bf16", _val(sp, "owt train", "ours bf16"),
        _val(sp, "owt train", "torch bf16"), ">= 1.5x", 1.5)
    row("paper training img/s, ours bf16 vs PyTorch bf16",
        _val(sp, "paper train", "ours bf16"), _val(sp, "paper train", "torch bf16"),
        ">= 3x", 3.0)
    row("owt inference img/s (b128), ours bf16 vs PyTorch bf16",
        _val(sp, "owt infer", "ours bf16"), _val(sp, "owt infer", "torch bf16"), ">= 1.5x", 1.5)
    row("owt inference img/s (b128), ours bf16 vs OpenVINO bf16",
        _val(sp, "owt infer", "ours bf16"), _val(sp, "owt infer", "openvino bf16"), ">= 1x", 1.0)
    row("owt latency ms (b1), ours bf16 vs OpenVINO bf16", _val(sp, "owt latency", "ours bf16"),
        _val(sp, "owt latency", "openvino bf16"), "<= OpenVINO", 1.0, lower=True)
    sq = next((r for r in res["gemm"] if r["name"] == "square 2048^3"), None)
    if sq:
        pct = sq["bf16_gflops"] / res["bf16_peak_gflops"]
        out.append(("bf16 sgemm 2048^3 GFLOP/s vs vdpbf16ps peak", sq["bf16_gflops"],
                    res["bf16_peak_gflops"], ">= 85%",
                    f"{pct:.0%} " + ("met" if pct >= 0.85 else "missed")))
    return out


def run(quick=False, peak_gflops=None, progress=None, **overrides):
    """Returns (result dict, Markdown text); overrides replace e2e.DEFAULTS / QUICK
    entries (rounds, iters, batch...)."""
    say = progress or (lambda m: print(f"  [{m}]", flush=True))
    if not _C.bf16_supported():
        return ({"skipped": "no AVX512_BF16 on this CPU"},
                "## bf16\n\nSkipped: this CPU lacks AVX512_BF16 (vdpbf16ps).")
    secs = 0.2 if quick else 0.5
    res = {"bf16_peak_gflops": max(_C.bf16_peak_gflops(secs) for _ in range(3)),
           "fma_peak_gflops": peak_gflops or max(_C.fma_peak_gflops(secs) for _ in range(3)),
           "threads": ac.get_num_threads(), "cpu": ac.cpu_info()["cpu"]}
    res["gemm"] = gemm_rows(quick)
    res["e2e"] = end_to_end(quick, say, **overrides)
    res["targets"] = targets(res)
    pk = res["bf16_peak_gflops"]
    md = ["## bf16 (AVX512_BF16)", "",
          f"{res['threads']} threads, CPU {res['cpu']}: measured peaks vdpbf16ps "
          f"{pk:.0f} GFLOP/s, FMA {res['fma_peak_gflops']:.0f} GFLOP/s "
          f"({pk / res['fma_peak_gflops']:.2f}x).", "",
          "### Targets", "", md_table(["figure", "ours", "reference", "target", "result"],
                                      res["targets"]), "",
          "### sgemm in bf16 (best of several runs; % of the vdpbf16ps peak)", "",
          md_table(["shape", "MxNxK", "bf16 GFLOP/s", "% bf16 peak", "fp32 GFLOP/s",
                    "bf16/fp32"],
                   [(r["name"], f"{r['M']}x{r['N']}x{r['K']}", r["bf16_gflops"],
                     f"{r['bf16_gflops'] / pk:.0%}", r["fp32_gflops"],
                     r["bf16_gflops"] / r["fp32_gflops"]) for r in res["gemm"]])]
    sp, st = res["e2e"]["speed"], res["e2e"]["settings"]
    head = [f"{NAMES[e]} {p}" for e, p in COLUMNS]
    table, notes = [], []
    for v, m in ROWS:
        row = f"{v} {m}"
        unit = "ms (batch 1)" if m == "latency" else f"img/s (batch {st['batch']})"
        table.append([v, f"{m} {unit}"] + ["-" if _val(sp, row, f"{e} {p}") is None
                                            else _val(sp, row, f"{e} {p}") for e, p in COLUMNS])
        for e, p in COLUMNS:
            note = sp.get(row, {}).get(f"{e} {p}", {}).get("note")
            if note and not (e == "openvino" and m == "train"):
                notes.append(f"{NAMES[e]} {p} {row}: {note.splitlines()[0]}")
    md += ["", f"### AlexNet end to end ({st['size']}x{st['size']}, {st['threads']} threads, "
               f"median of {st['rounds']} interleaved round(s))", "",
           md_table(["variant", "measure"] + head, table)]
    if notes:
        md += ["", "Notes:"] + [f"- {n}" for n in dict.fromkeys(notes)]
    return res, "\n".join(md)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--iters", type=int)
    ap.add_argument("--json", help="also write the result dict here")
    a = ap.parse_args()
    over = {k: getattr(a, k) for k in ("rounds", "iters") if getattr(a, k) is not None}
    res, text = run(a.quick, progress=lambda m: print(m, file=sys.stderr, flush=True), **over)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    print(text)
