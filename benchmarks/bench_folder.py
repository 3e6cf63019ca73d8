"""Classifying a folder end to end (decode + forward, infer.Predictor as the CLI runs it)
beside the forward alone on the same net and batch, and beside ONNX Runtime with a simple
decode loop of the same images.

    python benchmarks/bench_folder.py [--quick] [--images N] [--batch B] [--rounds R]
                                      [--threads T] [--workers W]
                                      [--precision fp32|bf16|int8]
                                      [--json PATH]

The folder: N JPEGs (quality 90) of photo sizes (500x375, 375x500, 640x480, 500x333) drawn
from the built-in classes with pixel noise, so the files weigh about what photos of those
sizes do; a randomly initialised owt net (1000 classes, 224 px) saved beside them, run in
fp32 (or --precision bf16 where the CPU has AVX512_BF16, or --precision int8: the net
quantized by `alexnet-cpu quantize` on 300 images of the folder).
Ours, in one process: forward-only (the net on the first B images of the folder, decoded
once, in the same batch sizes as the folder's) and end-to-end (Predictor.predict over the
folder, every result consumed: as the CLI runs it, decoding threads at idle priority 1 batch
ahead; the same threads at normal priority; and in the caller, -workers 0) alternate for R
rounds, the order reversed every other round, after a warm-up of each (the forward's packed
weights, the predictor's input buffers); each ratio is the median of the rounds' ratios,
beside the CPU time per image of each, and of it the kernel's (sys: page faults) (CPU time
counts the work, whatever else runs on the machine). ONNX Runtime (the
torch owt exported to ONNX here: a reference, never used at run time) runs in its own
process the same way, its end-to-end loop decoding each batch in the caller (load_image +
center_crop) before running it.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import e2e  # noqa: E402
from bench_data import _write_images  # noqa: E402
from common import md_table  # noqa: E402
from alexnet_cpu.infer import find_images  # noqa: E402

PHOTO_SIZES = ((500, 375), (375, 500), (640, 480), (500, 333))
NOISE = 24
DEFAULTS = dict(images=1024, batch=128, rounds=3, threads=2, workers=None, size=224,
                precision="fp32")
QUICK = dict(DEFAULTS, images=256, rounds=1)
NUM_CLASSES = 1000


# -- in the worker process (benchmarks/_worker.py, op "folder") -----------------------------
def _batches(n, batch):
    return [min(batch, n - s) for s in range(0, n, batch)]


def _timed(fn, n):
    """fn() once: {img_s, cpu_ms and sys_ms (process CPU, of it in the kernel, per image),
    load}."""
    load = os.getloadavg()[0]
    t, t0 = time.perf_counter(), os.times()
    fn()
    wall, t1 = time.perf_counter() - t, os.times()
    user, sys_ = t1.user - t0.user, t1.system - t0.system
    return {"img_s": n / wall, "cpu_ms": 1e3 * (user + sys_) / n, "sys_ms": 1e3 * sys_ / n,
            "load": load}


def _alternate(configs, n, rounds):
    """Rounds of every (name, fn) in `configs`, the order reversed every other round. For
    each name its median img/s and CPU ms per image, and (but for "forward") the median of
    the rounds' ratios to "forward"."""
    runs = {name: [] for name, _ in configs}
    for r in range(rounds):
        for name, fn in configs if r % 2 == 0 else configs[::-1]:
            runs[name].append(_timed(fn, n))
    out = {"load_max": max(t["load"] for name in runs for t in runs[name])}
    for name, ts in runs.items():
        out[f"{name}_img_s"] = statistics.median(t["img_s"] for t in ts)
        out[f"{name}_cpu_ms"] = statistics.median(t["cpu_ms"] for t in ts)
        out[f"{name}_sys_ms"] = statistics.median(t["sys_ms"] for t in ts)
        if name != "forward":
            ratios = [t["img_s"] / f["img_s"] for t, f in zip(ts, runs["forward"])]
            out[f"{name}_ratios"] = [round(x, 3) for x in ratios]
            out[f"{name}_loads"] = [round(t["load"], 1) for t in ts]
            out[f"{name}_ratio"] = statistics.median(ratios)
    return out


def _decode_cpu_ms(fill, paths, out):
    """CPU ms per image of decoding + cropping in this thread (the work the workers hide)."""
    t = time.thread_time()
    for p in paths:
        fill(p, out)
    return 1e3 * (time.thread_time() - t) / len(paths)


def measure(spec):
    """One engine's figures on spec["folder"] (a worker op: see _worker.py)."""
    paths = find_images(spec["folder"])
    n, b = len(paths), spec["batch"]
    if spec["engine"] == "ours":
        import alexnet_cpu as ac
        from alexnet_cpu.infer import Predictor, default_workers
        ac.set_num_threads(spec["threads"])
        pred = Predictor(spec["weights"])
        pred.net.set_precision(spec["precision"])
        x = np.empty((b, 1, 3, pred.size, pred.size), np.float32)
        for k, p in enumerate(paths[:b]):
            pred._fill(p, x[k])

        def forward():
            for m in _batches(n, b):
                pred.net.forward(x[:m].reshape((m,) + x.shape[2:]))

        workers = default_workers() if spec.get("workers") is None else spec["workers"]

        def end_to_end(workers=workers, idle=True, paths=paths):
            for _ in pred.predict(paths, topk=5, batch_size=b, workers=workers, idle=idle):
                pass
        configs = [("forward", forward), ("e2e", end_to_end),
                   ("normal", lambda: end_to_end(idle=False)),  # workers at normal priority
                   ("serial", lambda: end_to_end(0))]           # in the caller, no overlap
        end_to_end(paths=paths[:2 * b])  # warm-up, as the forward's: the input buffers
        res = {"workers": workers, "isa": ac.cpu_info()["isa"], "cpu": ac.cpu_info()["cpu"],
               "decode_cpu_ms": _decode_cpu_ms(pred._fill, paths[:64], x[0])}
    else:
        import onnxruntime as ort
        from alexnet_cpu.data import base_size, center_crop, load_image
        sys.path.insert(0, HERE)
        from _worker import _ort_session
        sess = _ort_session(ort, spec["onnx"], spec["threads"])
        name = sess.get_inputs()[0].name
        size = spec["size"]
        mean, std = np.full(3, 120.0, np.float32), np.full(3, 60.0, np.float32)

        def decode(paths_, out):
            for k, p in enumerate(paths_):
                center_crop(load_image(p, base_size(size)), size, mean, std, out=out[k])
        x = np.empty((b, 3, size, size), np.float32)
        decode(paths[:b], x)

        def forward():
            for m in _batches(n, b):
                sess.run(None, {name: x[:m]})

        def end_to_end():     # what a short script does: decode a batch, run it, repeat
            for s in range(0, n, b):
                xb = np.empty((min(b, n - s), 3, size, size), np.float32)
                decode(paths[s:s + b], xb)
                sess.run(None, {name: xb})
        configs = [("forward", forward), ("e2e", end_to_end)]
        res = {"version": ort.__version__}
    forward()   # warm-up: packed weights, page cache, allocator
    res.update(_alternate(configs, n, spec["rounds"]))
    res.update(images=n, batch=b, threads=spec["threads"])
    return res


# -- the section ----------------------------------------------------------------------------
def _save_net(path, size):
    import alexnet_cpu as ac
    net = ac.alexnet("owt", num_classes=NUM_CLASSES, seed=0)
    ac.save(path, net, classes=[f"class_{i}" for i in range(NUM_CLASSES)], input_size=size,
            preprocess={"mean": [120.0] * 3, "std": [60.0] * 3})


def run(quick=False, peak_gflops=None, progress=None, **overrides):
    s = dict(QUICK if quick else DEFAULTS)
    s.update({k: v for k, v in overrides.items() if v is not None})
    say = progress or (lambda m: print(f"  [{m}]", flush=True))
    out = {"settings": s, "load_1min_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="alexnet_folder_") as tmp:
        folder = os.path.join(tmp, "images")
        say(f"writing {s['images']} JPEGs")
        _write_images(folder, s["images"], 128, sizes=PHOTO_SIZES, noise=NOISE)
        files = find_images(folder)
        out["mean_file_kb"] = sum(os.path.getsize(f) for f in files) / len(files) / 1e3
        weights = os.path.join(tmp, "owt.safetensors")
        _save_net(weights, s["size"])
        if s["precision"] == "int8":
            from alexnet_cpu.quantize import quantize
            say("quantizing to int8 on 300 images of the folder")
            quantize(weights, folder, weights.replace(".safetensors", ".int8.safetensors"))
            weights = weights.replace(".safetensors", ".int8.safetensors")
        spec = {"op": "folder", "folder": folder, "weights": weights, "batch": s["batch"],
                "rounds": s["rounds"], "threads": s["threads"], "workers": s["workers"],
                "size": s["size"], "precision": s["precision"]}
        say("ours: forward-only and end-to-end, alternating")
        out["ours"] = e2e.run_worker(dict(spec, engine="ours"))
        exported = e2e.export_onnx(tmp, ("owt",), (s["batch"],), s["size"], s["threads"])
        if "owt" in exported:
            say("ONNX Runtime: forward-only and a decode loop, alternating")
            out["ort"] = e2e.run_worker(dict(spec, engine="ort",
                                             onnx=exported["owt"]["paths"][str(s["batch"])]))
        else:
            out["ort"] = {"skipped": exported.get("skipped") or exported.get("error")}
    out["load_1min_end"] = os.getloadavg()[0]
    return out, format_markdown(out)


def format_markdown(res):
    s, ours, ort = res["settings"], res["ours"], res["ort"]
    head = (f"## Folder inference end to end (owt, {s['size']} px, ours in {s['precision']}, "
            f"batch {s['batch']}, {s['threads']} threads)")
    if "error" in ours or "skipped" in ours:
        return f"{head}\n\nours: {ours.get('error') or ours.get('skipped')}"
    w = ours["workers"]
    rows = [("ours", "forward only", "forward"),
            ("ours", f"end to end (as the CLI: {w} decoding threads at idle priority, "
                     "1 batch ahead)", "e2e"),
            ("ours", f"end to end, the {w} decoding threads at normal priority", "normal"),
            ("ours", "end to end, decoding between the forwards in the caller (-workers 0)",
             "serial")]
    if "forward_img_s" in ort:
        rows += [("ONNX Runtime", "forward only", "forward"),
                 ("ONNX Runtime", "end to end (decode loop in the caller)", "e2e")]
    rows = [(engine, what, r[f"{k}_img_s"], r[f"{k}_cpu_ms"], r.get(f"{k}_sys_ms", "-"),
             f"{r[f'{k}_ratio']:.2f}x" if k != "forward" else "1.00x")
            for engine, what, k in rows for r in [ours if engine == "ours" else ort]]
    bound = ours["forward_cpu_ms"] / (ours["forward_cpu_ms"] + ours["decode_cpu_ms"])
    busy = ours["forward_cpu_ms"] * ours["forward_img_s"] / 1e3
    loads = [res["load_1min_start"], res["load_1min_end"], ours["load_max"]]
    md = [head, "",
          md_table(["engine", "what", "img/s", "CPU ms/img", "of it sys", "vs its forward"],
                   rows), "",
          f"{ours['images']} JPEGs of photo sizes ({res['mean_file_kb']:.0f} KB on average), "
          f"median of {s['rounds']} alternating round(s); ours end-to-end / forward-only per "
          f"round (1-minute load): "
          f"{', '.join(f'{r:.3f} ({x})' for r, x in zip(ours['e2e_ratios'], ours['e2e_loads']))}"
          f"; forward CPU / end-to-end CPU per image "
          f"{ours['forward_cpu_ms'] / ours['e2e_cpu_ms']:.2f}. Decoding and "
          f"cropping cost {ours['decode_cpu_ms']:.2f} CPU ms per image (one thread): the "
          f"forward alone kept {busy:.2f} of {s['threads']} cores busy; with every core "
          f"busy, end to end could reach at most {bound:.2f}x the forward, forward CPU / "
          f"(forward + decode CPU), unless decoding fills cores the forward leaves idle.",
          f"CPU: {ours['cpu']}, ISA path {ours['isa']}; 1-minute load {min(loads):.1f} to "
          f"{max(loads):.1f} on {os.cpu_count()} cores."]
    if "forward_img_s" not in ort:
        md.append(f"ONNX Runtime: {ort.get('skipped') or ort.get('error')}")
    return "\n".join(md)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    for k in ("images", "batch", "rounds", "threads", "workers"):
        ap.add_argument("--" + k, type=int)
    ap.add_argument("--precision", choices=("fp32", "bf16", "int8"))
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args(argv)
    res, md = run(a.quick, **{k: getattr(a, k) for k in ("images", "batch", "rounds",
                                                          "threads", "workers", "precision")})
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    print(md)


if __name__ == "__main__":
    main()
