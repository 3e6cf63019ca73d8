"""The speed report: machine, measured FMA peak, then one section per topic.

    python benchmarks/run.py [--quick] [--out DIR]

Writes DIR/report.json and DIR/report.md (default DIR: bench_out). Each section is a module
with run(quick, peak_gflops) -> (dict, markdown); add new ones to SECTIONS.
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import alexnet_cpu as ac  # noqa: E402
from alexnet_cpu import _C  # noqa: E402

from common import md_table  # noqa: E402
import bench_bf16  # noqa: E402
import bench_data  # noqa: E402
import bench_folder  # noqa: E402
import bench_gemm  # noqa: E402
import bench_int8  # noqa: E402
import bench_mpi  # noqa: E402
import e2e  # noqa: E402


def end_to_end(quick=False, peak_gflops=None):
    """AlexNet end to end beside PyTorch and ONNX Runtime (each figure in its own process)."""
    res = e2e.run_all(quick=quick, progress=lambda m: print(f"  [{m}]", flush=True))
    return res, e2e.format_markdown(res)


SECTIONS = [("gemm", bench_gemm.run), ("e2e", end_to_end), ("data", bench_data.run),
            ("folder", bench_folder.run), ("mpi", bench_mpi.run), ("bf16", bench_bf16.run),
            ("int8", bench_int8.run)]


def _get(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def targets(report):
    """The issue's targets, met or not, from the figures of this run."""
    speed = report.get("e2e", {}).get("speed", {})
    img = lambda v, m, e: _get(speed, v, m, e, "img_s")  # noqa: E731
    rows = []

    def row(name, ours, theirs, target, higher_is_better=True, why=None):
        if ours is None or theirs is None:
            rows.append((name, "-", "-", target, why or "not measured"))
            return
        ratio = ours / theirs if higher_is_better else theirs / ours
        rows.append((name, ours, theirs, target, f"{ratio:.2f}x"))

    row("owt training img/s vs torch", img("owt", "train", "ours"),
        img("owt", "train", "torch"), ">= 1.5x")
    row("paper training img/s vs torch", img("paper", "train", "ours"),
        img("paper", "train", "torch"), ">= 3x")
    row("owt inference img/s (batch 128) vs ORT", img("owt", "infer", "ours"),
        img("owt", "infer", "ort"), ">= 1.0x")
    row("owt latency ms (batch 1) vs ORT", _get(speed, "owt", "latency", "ours", "ms"),
        _get(speed, "owt", "latency", "ort", "ms"), "<= ORT", higher_is_better=False)
    row("owt training peak RSS MB vs torch", _get(speed, "owt", "train", "ours", "rss_mb"),
        _get(speed, "owt", "train", "torch", "rss_mb"), "<= torch", higher_is_better=False)
    row("data pipeline img/s vs owt training", _get(report, "data", "img_per_s"),
        img("owt", "train", "ours"), ">= 2x")
    row("owt folder inference img/s, end to end vs forward-only (batch 128, fp32)",
        _get(report, "folder", "ours", "e2e_img_s"),
        _get(report, "folder", "ours", "forward_img_s"), ">= 0.9x")
    row("owt training img/s, 2 MPI processes x 1 thread vs 1 x 2",
        _get(report, "mpi", "best", "img_s"), _get(report, "mpi", "best", "one_img_s"), ">= 0.9x")
    # int8 (bench_int8): ours against the int8 runtimes and against ours in bf16
    # (ours: the int8 row this CPU runs by default, AMX where it has it, else VNNI or AVX2)
    int8 = {r["variant"]: r for r in _get(report, "int8", "e2e") or []}
    batch = _get(report, "int8", "settings", "batch")
    ours8 = "ours int8 amx" if _get(int8, "owt", "ours int8 amx", "img_s") else "ours int8"
    for v, ref, target in (("owt", "openvino int8", ">= 1.0x"),
                           ("owt", "onnxruntime int8", ">= 1.0x"),
                           ("owt", "ours bf16", ">= 1.5x"), ("paper", "ours bf16", ">= 1.5x")):
        row(f"{v} {ours8} inference img/s (batch {batch}) vs {ref}",
            _get(int8, v, ours8, "img_s"), _get(int8, v, ref, "img_s"), target,
            why=_get(int8, v, ref, "skipped"))
    for ref in ("openvino int8", "onnxruntime int8"):
        row(f"owt {ours8} latency ms (batch 1) vs {ref}", _get(int8, "owt", ours8, "latency_ms"),
            _get(int8, "owt", ref, "latency_ms"), f"<= {ref}", higher_is_better=False)
    square8 = [g for g in _get(report, "int8", "gemm") or []   # the vpdpbusd row's
               if g["name"].startswith("square") and g["int8_path"] != "amx"]
    vnni = _get(report, "int8", "vnni_peak_gops")
    if square8 and vnni:
        rows.append(("int8 GEMM 2048^3 GOP/s vs measured vpdpbusd peak", square8[0]["int8_gops"],
                     vnni, ">= 85%", f"{square8[0]['int8_gops'] / vnni:.0%}"))
    elif square8:
        rows.append(("int8 GEMM 2048^3 GOP/s vs measured vpdpbusd peak", "-", "-", ">= 85%",
                     "no AVX512-VNNI on this CPU"))
    square = [r for r in _get(report, "gemm", "shapes") or [] if r["name"].startswith("square")]
    peak = report["machine"]["fma_peak_gflops"]
    if square:
        rows.append(("sgemm 2048^3 GFLOP/s vs measured FMA peak", square[0]["ours_gflops"],
                     peak, ">= 90%", f"{square[0]['ours_gflops'] / peak:.0%}"))
    return rows, "\n".join(["## Targets", "", "Ratios are ours over theirs (for latency and "
                            "memory, theirs over ours): above 1 means we are better.", "",
                            md_table(["figure", "ours", "reference", "target", "ratio"],
                                     rows)])


def machine(quick):
    info = dict(ac.cpu_info())
    info["cpu_model"] = info["cpu"]
    info["numpy"] = np.__version__
    secs = 0.2 if quick else 0.5
    # Best of a few: the peak is a ceiling, and the machine may be shared.
    info["fma_peak_gflops"] = max(_C.fma_peak_gflops(secs) for _ in range(3))
    info["fma_peak_gflops_1thread"] = None
    old = ac.get_num_threads()
    try:
        ac.set_num_threads(1)
        info["fma_peak_gflops_1thread"] = max(_C.fma_peak_gflops(secs) for _ in range(3))
    finally:
        ac.set_num_threads(old)
    md = ["## Machine", "", md_table(["what", "value"], [
        ("CPU", info["cpu_model"]), ("cores", info["cores"]), ("threads used", info["threads"]),
        ("ISA path", info["isa"]), ("ISA paths supported", ", ".join(info["isa_supported"])),
        ("OpenMP", info["openmp"]),
        ("FMA peak, all threads (GFLOP/s, measured)", info["fma_peak_gflops"]),
        ("FMA peak, 1 thread (GFLOP/s, measured)", info["fma_peak_gflops_1thread"])])]
    return info, "\n".join(md)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer shapes and repeats")
    p.add_argument("--out", default="bench_out", help="output directory")
    p.add_argument("--only", nargs="*", help="run only these sections")
    args = p.parse_args(argv)

    report = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "quick": args.quick}
    mach, md = machine(args.quick)
    report["machine"] = mach
    parts = ["# alexnet-cpu speed report", "", f"{report['date']}" +
             (" (quick)" if args.quick else ""), "", md]
    print(md, flush=True)
    for name, fn in SECTIONS:
        if args.only and name not in args.only:
            continue
        res, text = fn(quick=args.quick, peak_gflops=mach["fma_peak_gflops"])
        report[name] = res
        parts += ["", text]
        print("\n" + text, flush=True)

    if not args.only:
        report["targets"], text = targets(report)
        parts[5:5] = [text, ""]
        print("\n" + text, flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write("\n".join(parts) + "\n")


if __name__ == "__main__":
    main()
