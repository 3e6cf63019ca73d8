"""int8 section: AlexNet inference in int8 (alexnet_cpu/quantize.py) beside ours in fp32 and
ONNX Runtime fp32 and int8 (quantize_static: QDQ, per-channel weights, the same images to
calibrate on), all in this process on the same random He-initialised weights; then the int8
GEMM alone (exact sums, so it is timed on random operands) against our fp32 one.

    python benchmarks/bench_int8.py [--quick] [--threads N]

Without onnxruntime its columns are skipped with a note."""
import argparse
import json
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import alexnet_cpu as ac  # noqa: E402
from alexnet_cpu import _C, quantize  # noqa: E402

from common import best_and_median, md_table  # noqa: E402


def _images(rng, n, size):
    x = rng.standard_normal((n, 3, size // 8 + 1, size // 8 + 1)).astype(np.float32)
    x = np.repeat(np.repeat(x, 8, axis=2), 8, axis=3)[:, :, :size, :size]
    return np.ascontiguousarray(np.clip(x, -2.1, 2.6))


def _ort_sessions(net, size, calib, threads, tmp):
    """(fp32 session, int8 session) of ONNX Runtime, or None without it."""
    try:
        import onnxruntime as ort
        from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                              quantize_static)
    except ImportError:
        return None
    f32, i8 = os.path.join(tmp, "m.onnx"), os.path.join(tmp, "m.int8.onnx")
    ac.export_onnx(net, f32, input_size=size)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": b} for b in calib])

        def get_next(self):
            return next(self.it, None)

    quantize_static(f32, i8, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    return [ort.InferenceSession(p, opts, providers=["CPUExecutionProvider"])
            for p in (f32, i8)]


def end_to_end(variant, size, batch, threads, quick):
    rng = np.random.default_rng(0)
    net = ac.alexnet(variant, num_classes=1000, init="kaiming").eval()
    calib = [_images(rng, 4, size) for _ in range(2 if quick else 8)]
    q = quantize.Int8Net(ac.alexnet(variant, init=None), quantize.quantize_net(net, calib))
    xb, x1 = _images(rng, batch, size), _images(rng, 1, size)
    engines = {"ours fp32": net.forward, "ours int8": q.forward}
    with tempfile.TemporaryDirectory() as tmp:
        sess = _ort_sessions(net, size, calib, threads, tmp)
        if sess:
            for name, s in zip(("onnxruntime fp32", "onnxruntime int8"), sess):
                engines[name] = lambda x, s=s: s.run(None, {"input": x})[0]
        ref = net.forward(xb[:4])
        row = {"variant": variant, "size": size, "batch": batch, "threads": threads}
        for name, fn in engines.items():
            err = np.linalg.norm(fn(xb[:4]) - ref) / np.linalg.norm(ref)
            tb = best_and_median(lambda: fn(xb), 2 if quick else 3)[1]
            t1 = best_and_median(lambda: fn(x1), 5 if quick else 20)[1]
            row[name] = {"img_s": batch / tb, "latency_ms": t1 * 1e3, "rel_err": float(err)}
    return row


def gemm_rows(quick):
    """int8 GEMM (fc6 at batch 128, a 2048^3 square) against our fp32 sgemm: GOP/s."""
    rng = np.random.default_rng(1)
    rows = []
    for name, M, N, K in (("fc6 128x4096x9216", 128, 4096, 9216), ("square 2048^3", 2048, 2048,
                                                                   2048)):
        if quick and M == 2048:
            continue
        a8 = rng.integers(0, 256, (M, K), dtype=np.uint8)
        w8 = rng.integers(-127, 128, (N, K), dtype=np.int8)
        packed, out = _C.int8_pack(w8), np.empty((M, N), np.uint8)
        one, zero = np.full(N, 1e-4, np.float32), np.zeros(N, np.float32)
        t8 = best_and_median(lambda: _C.int8_linear(out, a8, packed, N, None, one, zero),
                             3)[0]
        af, wf = a8.astype(np.float32), w8.astype(np.float32)
        tf = best_and_median(lambda: ac.sgemm(af, wf, trans_b=True), 3)[0]
        rows.append({"name": name, "int8_gops": 2 * M * N * K / t8 / 1e9,
                     "fp32_gflops": 2 * M * N * K / tf / 1e9, "int8_path": _C.int8_path()})
    return rows


def accuracy(model, data, images=300, methods=quantize.CALIBRATIONS):
    """Top-1 of the fp32 model and of its int8 quantization(s) on data/val (class folders),
    calibrated on `images` images of data/train (labels unused)."""
    from alexnet_cpu.infer import Predictor, find_images
    val = find_images(os.path.join(data, "val"))
    truth = [os.path.basename(os.path.dirname(p)) for p in val]
    out = {"val_images": len(val), "calibration_images": images}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"fp32": model}
        for m in methods:
            paths[f"int8 {m}"] = os.path.join(tmp, f"{m}.safetensors")
            quantize.quantize(model, os.path.join(data, "train"), paths[f"int8 {m}"], images, m)
        top = {}
        for name, path in paths.items():
            pred = Predictor(path)
            res = list(pred.predict(val, topk=1))
            top[name] = [r[0][0] for _, r in res]
            out[name] = float(np.mean([t == p for t, p in zip(top[name], truth)]))
        for name in paths:
            out[f"{name} agrees with fp32"] = float(np.mean(
                [a == b for a, b in zip(top[name], top["fp32"])]))
    return out


def run(quick=False, peak_gflops=None, threads=None):
    threads = threads or ac.get_num_threads()
    ac.set_num_threads(threads)
    batch = 16 if quick else 64
    res = {"cpu": ac.cpu_info(), "load": os.getloadavg(),
           "e2e": [end_to_end(v, 224, batch, threads, quick) for v in ("owt", "paper")],
           "gemm": gemm_rows(quick)}
    names = [k for k in res["e2e"][0] if " " in k]
    md = [f"int8 inference (2 paths: ours on the {_C.int8_path()} int8 path), "
          f"{threads} threads, 224 px, batch {batch}; load {res['load'][0]:.1f}",
          md_table(["variant"] + [f"{n} img/s" for n in names] + [f"{n} ms (b=1)" for n in names],
                   [[r["variant"]] + [r[n]["img_s"] for n in names]
                    + [r[n]["latency_ms"] for n in names] for r in res["e2e"]]),
          md_table(["variant"] + [f"{n} rel. err" for n in names],
                   [[r["variant"]] + [f"{r[n]['rel_err']:.3f}" for n in names]
                    for r in res["e2e"]]),
          md_table(["GEMM", "int8 GOP/s", "fp32 GFLOP/s"],
                   [[g["name"], g["int8_gops"], g["fp32_gflops"]] for g in res["gemm"]])]
    return res, "\n\n".join(md)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int)
    p.add_argument("--accuracy", nargs=2, metavar=("MODEL", "DATA"),
                   help="only the top-1 comparison: a model and a data set with train/ and "
                        "val/ class folders (the demo's: runs/demo.safetensors, "
                        "~/.cache/alexnet-cpu/synthetic-v1)")
    a = p.parse_args()
    if a.accuracy:
        print(json.dumps(accuracy(*a.accuracy), indent=1))
        return
    res, md = run(a.quick, threads=a.threads)
    print(md)
    print(json.dumps(res, default=str), file=sys.stderr)


if __name__ == "__main__":
    main()
