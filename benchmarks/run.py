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

from common import cpu_model, md_table  # noqa: E402
import bench_gemm  # noqa: E402

SECTIONS = [("gemm", bench_gemm.run)]


def machine(quick):
    info = dict(ac.cpu_info())
    info["cpu_model"] = cpu_model()
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

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write("\n".join(parts) + "\n")


if __name__ == "__main__":
    main()
