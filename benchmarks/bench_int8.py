"""int8 section: AlexNet inference in int8 beside fp32, all in this process on the same
random He-initialised weights: ours (fp32, int8 = Int8Net of alexnet_cpu/quantize.py, bf16
where the CPU has AVX512_BF16), ONNX Runtime fp32 and int8 (quantize_static: QDQ, per-channel
s8 weights, u8 activations) and OpenVINO fp32 and int8 (NNCF quantize, default preset), each
runtime quantizing the same ONNX export of the same weights on the same calibration images.
Throughput at batch B (128; --quick 16) and latency at batch 1, owt and paper, 224 px, every
engine on the same threads (ONNX Runtime intra_op_num_threads, OpenVINO
INFERENCE_NUM_THREADS, one stream, f32 inference precision for what is not int8). Engines
are timed alternately in rounds, the order reversed every other round; per engine the
median over the rounds, and of the rounds' ratios to ours fp32. Each engine's logits are
checked against ours fp32 and each int8 engine's against its own fp32 (relative L2, bound
INT8_BOUND as tests/test_int8_net.py): a broken quantization shows as FAILED in the table.
Then the int8 GEMM alone (exact sums, so it is timed on random operands) against our fp32 one.

    python benchmarks/bench_int8.py [--quick] [--threads N] [--batch B] [--rounds R]
                                    [--variants owt paper]
    python benchmarks/bench_int8.py --accuracy MODEL DATA

The references, into the project's virtual environment:
`.venv/bin/python -m pip install onnx onnxruntime openvino nncf`; a missing one's columns
say "not installed"."""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import alexnet_cpu as ac  # noqa: E402
from alexnet_cpu import _C, quantize  # noqa: E402

from bench_folder import _timed  # noqa: E402
from common import best_and_median, md_table  # noqa: E402

DEFAULTS = dict(batch=128, rounds=5, latency_iters=20, calibration_batches=8, threads=2,
                variants=("owt", "paper"))
QUICK = dict(DEFAULTS, batch=16, rounds=2, latency_iters=3, calibration_batches=2)
SIZE = 224
ENGINES = ("ours fp32", "ours int8", "ours int8 amx", "ours bf16", "onnxruntime fp32",
           "onnxruntime int8", "openvino fp32", "openvino int8")
INT8_BOUND = 0.12   # relative L2 of int8 logits against the same engine's fp32


def _images(rng, n, size):
    x = rng.standard_normal((n, 3, size // 8 + 1, size // 8 + 1)).astype(np.float32)
    x = np.repeat(np.repeat(x, 8, axis=2), 8, axis=3)[:, :, :size, :size]
    return np.ascontiguousarray(np.clip(x, -2.1, 2.6))


def _missing(names, e):
    """{name: why} for engines whose library failed to import."""
    why = (f"not installed ({e.name})" if isinstance(e, ImportError) and e.name
           else f"not importable: {type(e).__name__}: {e}")
    return {n: why for n in names}


def _ours(net, variant, calib):
    """Ours: fp32, int8 (the VNNI row where the CPU has it, and the AMX row, or why not)
    and bf16 (or why not) on the net's weights."""
    tensors = quantize.quantize_net(net, calib)
    out = {"ours fp32": net.forward}
    for name, amx in (("ours int8", False), ("ours int8 amx", True)):
        if amx and not _C.amx_supported():
            out[name] = "n/a: no AMX-INT8 on this CPU"
            continue
        q = quantize.Int8Net(ac.alexnet(variant, init=None), tensors)
        q.ctx = q.ctx.replace(amx=amx)
        out[name] = q.forward
    bf = ac.alexnet(variant, num_classes=net.num_classes, init=None).eval()
    bf.load_state_dict(net.state_dict())
    try:
        bf.set_precision("bf16")
        out["ours bf16"] = bf.forward
    except RuntimeError:
        out["ours bf16"] = "n/a: no AVX512_BF16 on this CPU"
    return out


def _onnxruntime(path, calib, threads, tmp):
    """ONNX Runtime fp32 and int8 (quantize_static, QDQ, per-channel) of the export."""
    names = ("onnxruntime fp32", "onnxruntime int8")
    try:
        import onnxruntime as ort
        from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                              quantize_static)
    except Exception as e:   # ImportError, or a broken install
        return _missing(names, e)
    from _worker import _ort_session
    i8 = os.path.join(tmp, "m.int8.onnx")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": b} for b in calib])

        def get_next(self):
            return next(self.it, None)

    quantize_static(path, i8, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return {n: lambda x, s=_ort_session(ort, p, threads): s.run(None, {"input": x})[0]
            for n, p in zip(names, (path, i8))}


class _OpenVINO:
    """An OpenVINO model compiled once per batch size (static shapes, as benchmarks/_worker.py
    runs it): one synchronous request, `threads` threads, one stream."""

    def __init__(self, ov, path, threads):
        self.ov, self.path, self.threads, self.requests = ov, path, threads, {}

    def __call__(self, x):
        if len(x) not in self.requests:
            core = self.ov.Core()
            model = core.read_model(self.path)
            model.reshape(list(x.shape))
            self.requests[len(x)] = core.compile_model(model, "CPU", {
                "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": self.threads,
                "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}).create_infer_request()
        return self.requests[len(x)].infer({0: x})[0].copy()   # the request's memory


def _openvino(path, calib, threads, tmp):
    """OpenVINO fp32 and int8 (NNCF quantize, default preset) of the export."""
    try:
        import openvino as ov
    except Exception as e:
        return _missing(("openvino fp32", "openvino int8"), e)
    out = {"openvino fp32": _OpenVINO(ov, path, threads)}
    try:
        import nncf
    except Exception as e:
        return dict(out, **_missing(("openvino int8",), e))
    q = nncf.quantize(ov.Core().read_model(path), nncf.Dataset(calib))
    ov.save_model(q, os.path.join(tmp, "m.nncf.xml"), compress_to_fp16=False)
    out["openvino int8"] = _OpenVINO(ov, os.path.join(tmp, "m.nncf.xml"), threads)
    return out


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _rounds(engines, xb, x1, rounds, latency_iters):
    """Every engine's batch (img/s, CPU ms per image) and batch-1 latency (median of
    latency_iters calls), round by round, the order reversed every other round."""
    runs = {name: [] for name in engines}
    order = list(engines)
    for r in range(rounds):
        for name in order if r % 2 == 0 else order[::-1]:
            fn = engines[name]
            t = _timed(lambda: fn(xb), len(xb))
            t["latency_ms"] = statistics.median(1e3 / _timed(lambda: fn(x1), 1)["img_s"]
                                                for _ in range(latency_iters))
            runs[name].append(t)
    return runs


def end_to_end(variant, s):
    """One variant's row: every engine's figures and checks (or why it is missing)."""
    rng = np.random.default_rng(0)
    net = ac.alexnet(variant, num_classes=1000, init="kaiming").eval()
    calib = [_images(rng, 4, SIZE) for _ in range(s["calibration_batches"])]
    xb, x1 = _images(rng, s["batch"], SIZE), _images(rng, 1, SIZE)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.onnx")
        engines = _ours(net, variant, calib)
        try:
            ac.export_onnx(net, path, input_size=SIZE)
            engines.update(_onnxruntime(path, calib, s["threads"], tmp))
            engines.update(_openvino(path, calib, s["threads"], tmp))
        except ImportError:   # the export needs the onnx package
            engines.update(_missing([n for n in ENGINES if not n.startswith("ours")],
                                    ImportError(name="onnx")))
        row = {"variant": variant}
        live = {n: fn for n, fn in engines.items() if callable(fn)}
        logits = {n: fn(xb) for n, fn in live.items()}    # also the warm-up
        for n, fn in live.items():
            fn(x1)
        for n, y in logits.items():
            fp32 = logits.get(n.split()[0] + " fp32")   # the same engine's
            row[n] = {"vs_ours_fp32": _rel(y, logits["ours fp32"]),
                      "vs_own_fp32": None if n.endswith("fp32") else _rel(y, fp32)}
        runs = _rounds(live, xb, x1, s["rounds"], s["latency_iters"])
        for n, ts in runs.items():
            row[n].update(
                img_s=statistics.median(t["img_s"] for t in ts),
                cpu_ms=statistics.median(t["cpu_ms"] for t in ts),
                latency_ms=statistics.median(t["latency_ms"] for t in ts),
                ratio=statistics.median(t["img_s"] / f["img_s"]
                                        for t, f in zip(ts, runs["ours fp32"])),
                loads=[round(t["load"], 1) for t in ts])
        row.update({n: {"skipped": why} for n, why in engines.items() if not callable(why)})
    return row


def gemm_rows(quick):
    """The int8 GEMM (fc6 at batch 128, a 2048^3 square) on each int8 row this CPU runs
    (the AVX-512 path's VNNI row, or AVX2's, and the AMX row) against our fp32 sgemm."""
    rng = np.random.default_rng(1)
    ctxs = [_C.Context(amx=False)] + ([_C.Context(amx=True)] if _C.amx_supported() else [])
    rows = []
    for name, M, N, K in (("fc6 128x4096x9216", 128, 4096, 9216), ("square 2048^3", 2048, 2048,
                                                                   2048)):
        if quick and M == 2048:
            continue
        a8 = rng.integers(0, 256, (M, K), dtype=np.uint8)
        w8 = rng.integers(-127, 128, (N, K), dtype=np.int8)
        out = np.empty((M, N), np.uint8)
        one, zero = np.full(N, 1e-4, np.float32), np.zeros(N, np.float32)
        af, wf = a8.astype(np.float32), w8.astype(np.float32)
        tf = best_and_median(lambda: ac.sgemm(af, wf, trans_b=True), 3)[0]
        for cx in ctxs:
            packed = _C.int8_pack(w8, cx)
            t8 = best_and_median(
                lambda: _C.int8_linear(out, a8, packed, N, None, one, zero, False, cx), 3)[0]
            rows.append({"name": name, "int8_path": _C.int8_path(cx),
                         "int8_gops": 2 * M * N * K / t8 / 1e9,
                         "fp32_gflops": 2 * M * N * K / tf / 1e9})
    return rows


def vnni_peak():
    """The measured vpdpbusd peak, GOP/s on all threads (best of 3, as the FMA one), or None
    without VNNI."""
    return max(_C.vnni_peak_gops(0.5) for _ in range(3)) if _C.vnni_supported() else None


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


def _versions():
    out = {}
    for mod in ("onnxruntime", "openvino", "nncf"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:
            out[mod] = None
    return out


def _check(name, r):
    """"ok" or "FAILED (...)": int8/bf16 logits within INT8_BOUND of the engine's own fp32,
    a reference's fp32 within 1e-3 of ours (the same weights)."""
    if name.endswith("fp32"):
        bad = r["vs_ours_fp32"] > 1e-3 and f"fp32 differs from ours by {r['vs_ours_fp32']:.2g}"
    else:
        bad = not r["vs_own_fp32"] < INT8_BOUND and f"{r['vs_own_fp32']:.3f} > {INT8_BOUND}"
    return f"FAILED ({bad})" if bad else "ok"


def _pct(x, peak):
    return f"{100 * x / peak:.0f}%" if peak else "-"


def format_markdown(res):
    s, cpu = res["settings"], res["cpu"]
    v = res["versions"]
    head = (f"## int8 inference ({', '.join(s['variants'])}, {SIZE} px, {s['threads']} threads "
            f"each; throughput at batch {s['batch']}, latency at batch 1)")
    rows = []
    for r in res["e2e"]:
        for n in ENGINES:
            e = r[n]
            if "skipped" in e:
                rows.append([r["variant"], n, e["skipped"], "-", "-", "-", "-", "-"])
                continue
            own = "-" if e["vs_own_fp32"] is None else f"{e['vs_own_fp32']:.4f}"
            rows.append([r["variant"], n, e["img_s"], f"{e['ratio']:.2f}x", e["cpu_ms"],
                         e["latency_ms"], own, _check(n, e)])
    loads = [x for r in res["e2e"] for n in ENGINES for x in r[n].get("loads", [])]
    md = [head, "",
          md_table(["variant", "engine", f"img/s (batch {s['batch']})", "vs ours fp32",
                    "CPU ms/img", "ms (batch 1)", "rel. L2 vs its fp32", "logits"], rows), "",
          f"CPU: {cpu['cpu']}, ISA path {cpu['isa']}, our int8 path {res['int8_path']}, "
          f"AVX512_BF16 {'yes' if cpu['bf16'] else 'no'}, VNNI "
          f"{'yes' if cpu['vnni'] else 'no'}; 1-minute load {min(loads, default=0):.1f} to "
          f"{max(loads, default=0):.1f} on {os.cpu_count()} cores; {res['date']}. Medians of "
          f"{s['rounds']} alternating round(s) (latency: median of {s['latency_iters']} "
          f"calls per round); 'vs ours fp32': median of the rounds' ratios. ONNX Runtime "
          f"{v['onnxruntime'] or '-'}, OpenVINO {v['openvino'] or '-'}, NNCF {v['nncf'] or '-'}; "
          f"each quantized the same ONNX export on the same {4 * s['calibration_batches']} "
          f"calibration images. Logits checked on the batch: int8/bf16 against the engine's "
          f"own fp32 (bound {INT8_BOUND}), references' fp32 against ours (1e-3).", "",
          md_table(["GEMM", "int8 row", "int8 GOP/s", "% of vpdpbusd peak", "fp32 GFLOP/s"],
                   [[g["name"], g["int8_path"], g["int8_gops"],
                     _pct(g["int8_gops"], res["vnni_peak_gops"]), g["fp32_gflops"]]
                    for g in res["gemm"]]),
          "vpdpbusd peak (measured as the FMA one: independent chains on every thread): "
          + (f"{res['vnni_peak_gops']:.0f} GOP/s" if res["vnni_peak_gops"] else
             "none, this CPU has no AVX512-VNNI")]
    return "\n".join(md)


def run(quick=False, peak_gflops=None, **overrides):
    s = dict(QUICK if quick else DEFAULTS)
    s.update({k: v for k, v in overrides.items() if v is not None})
    ac.set_num_threads(s["threads"])
    res = {"settings": s, "cpu": ac.cpu_info(), "int8_path": _C.int8_path(),
           "versions": _versions(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "e2e": [end_to_end(v, s) for v in s["variants"]], "gemm": gemm_rows(quick),
           "vnni_peak_gops": vnni_peak()}
    return res, format_markdown(res)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="batch 16, fewer rounds (a smoke test)")
    for k in ("threads", "batch", "rounds"):
        p.add_argument("--" + k, type=int)
    p.add_argument("--variants", nargs="+", choices=("owt", "paper"))
    p.add_argument("--accuracy", nargs=2, metavar=("MODEL", "DATA"),
                   help="only the top-1 comparison: a model and a data set with train/ and "
                        "val/ class folders (the demo's: runs/demo.safetensors, "
                        "~/.cache/alexnet-cpu/synthetic-v1)")
    a = p.parse_args()
    if a.accuracy:
        print(json.dumps(accuracy(*a.accuracy), indent=1))
        return
    res, md = run(a.quick, threads=a.threads, batch=a.batch, rounds=a.rounds,
                  variants=a.variants and tuple(a.variants))
    print(md)
    print(json.dumps(res, default=str), file=sys.stderr)


if __name__ == "__main__":
    main()
