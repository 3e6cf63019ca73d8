"""One end-to-end measurement in a fresh process, for benchmarks/e2e.py.

Run as  `python benchmarks/_worker.py '<json spec>'`; prints one line
`@@RESULT@@ {json}` on stdout (anything else it prints is noise to be ignored).
A fresh process per (engine, variant, mode) keeps peak RSS (ru_maxrss) per configuration
and keeps PyTorch's, ONNX Runtime's and our thread pools from meeting.

Spec keys: op ("train" | "infer" | "latency" | "layers" | "check" | "export" | "folder"),
engine ("ours" | "torch" | "ort" | "openvino"), variant ("owt" | "paper"), batch, size,
iters, warmup, threads, seed, precision ("fp32" default | "bf16": ours with
Net.set_precision, torch under bf16 autocast, OpenVINO's INFERENCE_PRECISION_HINT),
onnx (path of the exported model at this batch, for engine "ort"),
variants (check/export), batches and out_dir (export).
Shapes: x is (N, 3, S, S) float32, N = batch, S = size; logits (N, 1000).
"""
import json
import os
import resource
import statistics
import sys
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKER = "@@RESULT@@"
NUM_CLASSES = 1000
LR, MOMENTUM, WEIGHT_DECAY = 0.01, 0.9, 5e-4


class Skip(Exception):
    """A figure that cannot be measured here (missing library): reported, not a crash."""


def rss_mb():
    """Peak resident set size of this process so far, MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _import_torch():
    try:
        import torch
    except Exception as e:  # ImportError, or a broken install
        raise Skip(f"torch not importable: {type(e).__name__}: {e}")
    return torch


def _import_ort():
    try:
        import onnxruntime
    except Exception as e:
        raise Skip(f"onnxruntime not importable: {type(e).__name__}: {e}")
    return onnxruntime


def _import_ours():
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    import alexnet_cpu as ac
    from alexnet_cpu import loss as _loss, model as _model, optim as _optim
    return {"ac": ac,
            "alexnet": getattr(ac, "alexnet", _model.alexnet),
            "softmax_cross_entropy": getattr(ac, "softmax_cross_entropy",
                                             _loss.softmax_cross_entropy),
            "SGD": getattr(ac, "SGD", _optim.SGD)}


# -- the PyTorch AlexNets (torchvision is not a dependency) ----------------------------------
def torch_alexnet(variant, num_classes=NUM_CLASSES):
    _import_torch()
    sys.path.insert(0, os.path.join(REPO, "tests"))
    from references import torch_alexnet as build
    return build(variant, num_classes)


# -- timing ---------------------------------------------------------------------------------
def _time_loop(fn, warmup, iters):
    """Seconds per call of fn, one entry per timed call, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _summary(times, batch):
    med = statistics.median(times)
    return {"batch": batch, "iters": len(times), "ms": med * 1e3,
            "img_s": batch / med, "ms_all": [t * 1e3 for t in times]}


def _inputs(spec, batch):
    import numpy as np
    rng = np.random.default_rng(spec.get("seed", 0))
    size = spec["size"]
    x = rng.standard_normal((batch, 3, size, size), dtype=np.float32)
    labels = rng.integers(0, NUM_CLASSES, batch).astype(np.int64)
    return x, labels


def _batch_for(spec):
    return 1 if spec["op"] == "latency" else spec["batch"]


def run_ours(spec):
    o = _import_ours()
    ac = o["ac"]
    ac.set_num_threads(spec["threads"])
    base = rss_mb()
    batch = _batch_for(spec)
    x, labels = _inputs(spec, batch)
    net = o["alexnet"](spec["variant"], num_classes=NUM_CLASSES)
    net.set_precision(spec.get("precision", "fp32"))
    if spec["op"] == "train":
        net.train()
        opt = o["SGD"](net, lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
        sce = o["softmax_cross_entropy"]

        def step():
            logits = net.forward(x)
            loss, d = sce(logits, labels)
            net.backward(d)
            opt.step()      # also zeroes the gradients
    else:
        net.eval()

        def step():
            net.forward(x)
    times = _time_loop(step, spec["warmup"], spec["iters"])
    return dict(_summary(times, batch), rss_base_mb=base, threads=ac.get_num_threads(),
                cpu_info=ac.cpu_info())


def run_torch(spec):
    torch = _import_torch()
    torch.set_num_threads(spec["threads"])
    base = rss_mb()
    batch = _batch_for(spec)
    x, labels = _inputs(spec, batch)
    x, labels = torch.from_numpy(x), torch.from_numpy(labels)
    torch.manual_seed(spec.get("seed", 0))
    model = torch_alexnet(spec["variant"])
    bf16 = spec.get("precision", "fp32") == "bf16"  # autocast, as a user turns it on

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
    if spec["op"] == "train":
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM,
                              weight_decay=WEIGHT_DECAY)
        lossf = torch.nn.CrossEntropyLoss()

        def step():
            opt.zero_grad(set_to_none=False)
            with autocast():
                loss = lossf(model(x), labels)
            loss.backward()
            opt.step()
    else:
        model.eval()

        def step():
            with torch.inference_mode(), autocast():
                model(x)
    times = _time_loop(step, spec["warmup"], spec["iters"])
    return dict(_summary(times, batch), rss_base_mb=base, threads=torch.get_num_threads(),
                version=torch.__version__)


def _ort_session(ort, path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def run_ort(spec):
    if spec["op"] == "train":
        raise Skip("ONNX Runtime is measured for inference only")
    ort = _import_ort()
    if not spec.get("onnx"):
        raise Skip("no ONNX model (export needs torch)")
    base = rss_mb()
    batch = _batch_for(spec)
    x, _ = _inputs(spec, batch)
    sess = _ort_session(ort, spec["onnx"], spec["threads"])
    shape = sess.get_inputs()[0].shape
    if isinstance(shape[0], int) and shape[0] != batch:
        raise ValueError(f"ONNX model {spec['onnx']} takes batch {shape[0]}, not {batch}")
    name = sess.get_inputs()[0].name

    def step():
        sess.run(None, {name: x})
    times = _time_loop(step, spec["warmup"], spec["iters"])
    return dict(_summary(times, batch), rss_base_mb=base, threads=spec["threads"],
                version=ort.__version__)


def run_openvino(spec):
    """OpenVINO (CPU plugin) on the torch AlexNet converted in this process (ov.convert_model),
    static batch, one synchronous request on `threads` threads; precision fp32 -> "f32",
    bf16 -> "bf16" as INFERENCE_PRECISION_HINT."""
    if spec["op"] == "train":
        raise Skip("OpenVINO is measured for inference only")
    try:
        import openvino as ov
    except Exception as e:
        raise Skip(f"openvino not importable: {type(e).__name__}: {e}")
    torch = _import_torch()
    torch.set_num_threads(spec["threads"])
    base = rss_mb()
    batch = _batch_for(spec)
    x, _ = _inputs(spec, batch)
    torch.manual_seed(spec.get("seed", 0))
    model = torch_alexnet(spec["variant"]).eval()
    with torch.inference_mode():
        ovm = ov.convert_model(model, example_input=torch.from_numpy(x),
                               input=[(batch, 3, spec["size"], spec["size"])])
    hint = {"fp32": "f32", "bf16": "bf16"}[spec.get("precision", "fp32")]
    compiled = ov.Core().compile_model(ovm, "CPU", {
        "INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": spec["threads"],
        "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"})
    req = compiled.create_infer_request()

    def step():
        req.infer({0: x})
    times = _time_loop(step, spec["warmup"], spec["iters"])
    return dict(_summary(times, batch), rss_base_mb=base, threads=spec["threads"],
                version=ov.__version__,
                precision=str(compiled.get_property("INFERENCE_PRECISION_HINT")))


def run_export(spec):
    """Export torch AlexNets to ONNX (opset 17) with a dynamic batch axis, one file per
    variant (per batch size if the dynamic export fails); check ONNX Runtime's logits
    against torch's on the exported weights.
    {variant: {"paths": {str(batch): path}, "dynamic_batch", "export_s", "ort_vs_torch_rel"}}.
    """
    torch = _import_torch()
    import numpy as np
    torch.set_num_threads(spec["threads"])
    out = {}
    kw = dict(opset_version=17, input_names=["x"], output_names=["logits"])

    def export(model, x, path, **more):
        try:
            torch.onnx.export(model, (x,), path, dynamo=False, **kw, **more)
        except TypeError:   # a torch without the `dynamo` switch: its only exporter
            torch.onnx.export(model, (x,), path, **kw, **more)

    for variant in spec["variants"]:
        torch.manual_seed(spec.get("seed", 0))
        model = torch_alexnet(variant).eval()
        size = spec["size"]
        with torch.inference_mode():
            fshape = model.features(torch.zeros(1, 3, size, size)).shape
        if tuple(fshape[2:]) == (6, 6):
            # Exactly the identity here; and the exporter cannot size adaptive_avg_pool2d
            # under a dynamic batch axis (nor, after LRN, at all).
            model.avgpool = torch.nn.Identity()
        r = {"paths": {}, "opset": 17}
        t0 = time.perf_counter()
        path = os.path.join(spec["out_dir"], f"alexnet_{variant}.onnx")
        try:
            export(model, torch.randn(2, 3, size, size), path,
                   dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
            r["paths"] = {str(b): path for b in spec["batches"]}
            r["dynamic_batch"] = True
        except Exception as e:
            r["dynamic_batch"] = False
            r["dynamic_error"] = f"{type(e).__name__}: {str(e)[:200]}"
            for batch in spec["batches"]:
                path = os.path.join(spec["out_dir"], f"alexnet_{variant}_b{batch}.onnx")
                export(model, torch.randn(batch, 3, size, size), path)
                r["paths"][str(batch)] = path
        r["export_s"] = time.perf_counter() - t0
        try:
            ort = _import_ort()
            batch = min(spec["batches"])
            x = torch.randn(batch, 3, size, size)
            sess = _ort_session(ort, r["paths"][str(batch)], spec["threads"])
            got = sess.run(None, {"x": x.numpy()})[0]
            with torch.inference_mode():
                ref = model(x).numpy()
            r["ort_vs_torch_rel"] = float(np.abs(got - ref).max() / np.abs(ref).max())
            r["checked_batch"] = batch
        except Skip as e:
            r["note"] = str(e)
        out[variant] = r
    return out


def _rel(a, b):
    import numpy as np
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def run_check(spec):
    """Ours vs torch on the same weights: eval-mode logits at batch 2 and, from the same
    cross-entropy loss, every parameter gradient (relative to the tensor's max)."""
    torch = _import_torch()
    o = _import_ours()
    o["ac"].set_num_threads(spec["threads"])
    torch.set_num_threads(spec["threads"])
    tol = spec.get("tol", 1e-3)
    out = {"tol": tol, "batch": 2, "size": spec["size"], "cpu_info": o["ac"].cpu_info()}
    for variant in spec["variants"]:
        net = o["alexnet"](variant, num_classes=NUM_CLASSES).eval()
        model = torch_alexnet(variant).eval()
        model.load_state_dict({k: torch.from_numpy(v) for k, v in net.state_dict().items()},
                              strict=True)
        x, labels = _inputs(dict(spec, seed=1), 2)
        logits = net.forward(x)
        loss, d = o["softmax_cross_entropy"](logits, labels)
        net.backward(d)
        tx = torch.from_numpy(x)
        tlogits = model(tx)
        tloss = torch.nn.functional.cross_entropy(tlogits, torch.from_numpy(labels))
        tloss.backward()
        tgrads = {k: p.grad.numpy() for k, p in model.named_parameters()}
        grad_rel = {name: _rel(g, tgrads[name]) for name, _, g in net.parameters()}
        worst = max(grad_rel, key=grad_rel.get)
        r = {"logits_rel": _rel(logits, tlogits.detach().numpy()),
             "loss_ours": float(loss), "loss_torch": float(tloss),
             "grad_rel_max": grad_rel[worst], "grad_rel_worst": worst}
        # Gradients get a looser bound: at 224 px a float32 rounding difference can flip
        # which element of a max-pool window (or which side of a ReLU kink) wins, routing
        # a whole gradient entry elsewhere; the unit tests check exact parity at small sizes.
        r["ok"] = bool(r["logits_rel"] <= tol and r["grad_rel_max"] <= 50 * tol)
        out[variant] = r
    return out


def run_layers(spec):
    """Our engine layer by layer in training mode: forward in sequence, then backward in
    reverse, each call timed; median over iters after warmup. FLOPs from layer.flops per
    image; backward of conv/linear ~2x forward (1x where the input gradient is skipped)."""
    o = _import_ours()
    ac = o["ac"]
    ac.set_num_threads(spec["threads"])
    batch = spec["batch"]
    x, labels = _inputs(spec, batch)
    net = o["alexnet"](spec["variant"], num_classes=NUM_CLASSES).train()
    ctx = net.set_precision(spec.get("precision", "fp32")).ctx  # layers take it one by one
    names = [n for n, _ in net.layers]
    fwd = {n: [] for n in names}
    bwd = {n: [] for n in names}
    sce = o["softmax_cross_entropy"]
    for it in range(spec["warmup"] + spec["iters"]):
        keep = it >= spec["warmup"]
        y = x
        for n, layer in net.layers:
            t0 = time.perf_counter()
            y = layer.forward(y, ctx)
            t = time.perf_counter() - t0
            if keep:
                fwd[n].append(t)
        _, d = sce(y, labels)
        for n, layer in reversed(net.layers):
            t0 = time.perf_counter()
            d = layer.backward(d, ctx)
            t = time.perf_counter() - t0
            if keep:
                bwd[n].append(t)
            if d is None:
                break
        net.zero_grad()
    rows, shape = [], (3, spec["size"], spec["size"])
    for n, layer in net.layers:
        flops = layer.flops(shape) * batch
        has_params = bool(layer.params)
        bflops = flops * (2 if layer.need_input_grad else 1) if has_params else flops
        f_ms = statistics.median(fwd[n]) * 1e3
        b_ms = statistics.median(bwd[n]) * 1e3 if bwd[n] else 0.0
        rows.append({"name": n, "layer": layer.describe(),
                     "out_shape": list(layer.output_shape(shape)),
                     "mflop_img": layer.flops(shape) / 1e6,
                     "fwd_ms": f_ms, "bwd_ms": b_ms,
                     "fwd_gflops": flops / f_ms / 1e6 if flops and f_ms > 0 else None,
                     "bwd_gflops": bflops / b_ms / 1e6 if flops and b_ms > 0 else None})
        shape = layer.output_shape(shape)
    tf = sum(r["fwd_ms"] for r in rows)
    tb = sum(r["bwd_ms"] for r in rows)
    return {"variant": spec["variant"], "batch": batch, "size": spec["size"],
            "threads": ac.get_num_threads(), "iters": spec["iters"], "rows": rows,
            "fwd_ms": tf, "bwd_ms": tb,
            "step_img_s": batch / ((tf + tb) / 1e3) if tf + tb > 0 else None,
            "gflop_img_fwd": sum(r["mflop_img"] for r in rows) / 1e3}


def run_folder(spec):
    """Folder inference, end to end beside forward-only (bench_folder.measure)."""
    from bench_folder import measure
    return measure(spec)


OPS = {"check": run_check, "export": run_export, "layers": run_layers, "folder": run_folder}
ENGINES = {"ours": run_ours, "torch": run_torch, "ort": run_ort, "openvino": run_openvino}


def run(spec):
    """Result dict of one spec; a missing library gives {"skipped": why}, any other
    failure {"error": why, "traceback": ...}. Always adds peak RSS."""
    load = os.getloadavg()[0]
    try:
        if spec["op"] in OPS:
            res = OPS[spec["op"]](spec)
        else:
            res = ENGINES[spec["engine"]](spec)
    except Skip as e:
        res = {"skipped": str(e)}
    except Exception as e:
        res = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    res["rss_mb"] = rss_mb()
    res["load_1min"] = load     # system load when this process started: noise indicator
    return res


def main():
    spec = json.loads(sys.argv[1])
    res = run(spec)
    sys.stdout.write("\n" + MARKER + " " + json.dumps(res) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
