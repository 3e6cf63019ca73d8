"""End-to-end part of the speed report: our engine vs PyTorch and ONNX Runtime on AlexNet.

Every figure is measured in its own subprocess (benchmarks/_worker.py) with the same thread
count everywhere, so peak RSS is per configuration and the engines' thread pools never meet.
Engines are interleaved round by round (ours, torch, ort, then the reverse order...) and the
median per configuration is reported, so ratios stay fair on a noisy shared machine.
All functions return plain JSON-able dicts; format_markdown renders them.

    results = run_all(quick=True)          # or run_all(batch=64, rounds=2, ...)
    print(format_markdown(results))

Modes: "train" (forward, cross-entropy, backward, SGD momentum 0.9 wd 5e-4: img/s at
`batch`), "infer" (eval mode, no grad: img/s at `batch`), "latency" (eval, batch 1: median
ms). Ratios are "ours speed / other speed" (> 1: ours faster; for latency other_ms/ours_ms).
"""
import argparse
import datetime
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "_worker.py")
MARKER = "@@RESULT@@"

ENGINES = ("ours", "torch", "ort")
VARIANTS = ("owt", "paper")
MODES = ("train", "infer", "latency")
ENGINE_NAMES = {"ours": "ours", "torch": "PyTorch", "ort": "ONNX Runtime"}

# Settings of a full run and of the quick one (about a minute in total on 2 cores).
DEFAULTS = dict(batch=128, size=224, iters=4, warmup=1, latency_iters=20, rounds=2,
                threads=2, layer_iters=3, scaling_threads=(1, 2), timeout=1800)
QUICK = dict(batch=16, size=224, iters=2, warmup=1, latency_iters=5, rounds=1,
             threads=2, layer_iters=2, scaling_threads=(1, 2), timeout=300)


# -- subprocesses ---------------------------------------------------------------------------
def worker_env(threads):
    """Environment of a worker: every thread pool capped at `threads`."""
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[k] = str(threads)
    repo = os.path.dirname(HERE)
    env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_worker(spec, timeout=None):
    """Run one spec (see _worker.py) in a fresh `sys.executable` process; its result dict.
    A crash, timeout or unparsable output becomes {"error": ...}, never an exception."""
    timeout = timeout or DEFAULTS["timeout"]
    t0 = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, WORKER, json.dumps(spec)], capture_output=True,
                           text=True, timeout=timeout, env=worker_env(spec["threads"]))
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    wall = time.perf_counter() - t0
    for line in reversed(p.stdout.splitlines()):
        if line.startswith(MARKER):
            res = json.loads(line[len(MARKER):])
            res["wall_s"] = wall
            return res
    tail = (p.stderr or p.stdout).strip().splitlines()[-5:]
    return {"error": f"worker exited {p.returncode} without a result: " + " | ".join(tail),
            "wall_s": wall}


def _available(module):
    return importlib.util.find_spec(module) is not None


def _failed(res):
    return "skipped" in res or "error" in res


def _note(res):
    return res.get("skipped") or res.get("error")


def _median(values):
    return statistics.median(values) if values else None


# -- the measurements --------------------------------------------------------------------------
def check_correctness(variants=VARIANTS, size=224, threads=2, tol=1e-3, timeout=None):
    """Ours vs torch on the same weights (eval mode, batch 2): logits and every parameter
    gradient within `tol` relative (to the tensor's max). {variant: {...}, "ok": bool}."""
    if not _available("torch"):
        return {"skipped": "torch not importable: no correctness check against it"}
    res = run_worker({"op": "check", "variants": list(variants), "size": size,
                      "threads": threads, "tol": tol}, timeout)
    if not _failed(res):
        res["ok"] = all(res[v]["ok"] for v in variants)
    return res


def export_onnx(out_dir, variants=VARIANTS, batches=(128, 1), size=224, threads=2,
                timeout=None):
    """Export the torch AlexNets to ONNX (opset 17, dynamic batch axis; one file per batch
    size as a fallback) into out_dir.
    {variant: {"paths": {str(batch): path}, "export_s", "ort_vs_torch_rel"}} or
    {"skipped"/"error": ...}."""
    if not _available("torch"):
        return {"skipped": "torch not importable: no ONNX export, so no ONNX Runtime figures"}
    return run_worker({"op": "export", "variants": list(variants), "batches": list(batches),
                       "size": size, "threads": threads, "out_dir": out_dir}, timeout)


def measure_speed(engines=ENGINES, variants=VARIANTS, modes=MODES, batch=128, size=224,
                  iters=5, warmup=1, latency_iters=20, rounds=3, threads=2, timeout=None,
                  progress=None, **_):
    """Training img/s, inference img/s and batch-1 latency for each engine x variant x mode,
    each in its own process, engines interleaved over `rounds` rounds (order reversed every
    other round); the median per configuration.

    Returns {"settings": {...}, "export": {...},
             "speed": {variant: {mode: {engine: {"img_s", "ms", "rss_mb", "rounds": [...],
                                                   "note"?}}}},
             "ratios": {variant: {mode: {"ours/torch": x, "ours/ort": y}}}}.
    """
    for name, got, ok in (("engine", engines, ENGINES), ("variant", variants, VARIANTS),
                          ("mode", modes, MODES)):
        bad = [g for g in got if g not in ok]
        if bad:
            raise ValueError(f"unknown {name} {bad}; expected some of {', '.join(ok)}")
    settings = dict(engines=list(engines), variants=list(variants), modes=list(modes),
                    batch=batch, size=size, iters=iters, warmup=warmup,
                    latency_iters=latency_iters, rounds=rounds, threads=threads)
    out = {"settings": settings, "speed": {}, "ratios": {}}
    with tempfile.TemporaryDirectory(prefix="alexnet_onnx_") as tmp:
        onnx = {}
        batches = sorted({1 if m == "latency" else batch for m in modes if m != "train"})
        if "ort" in engines and batches:
            if not _available("onnxruntime"):
                out["export"] = {"skipped": "onnxruntime not importable"}
            else:
                out["export"] = export_onnx(tmp, variants, batches, size, threads, timeout)
                if not _failed(out["export"]):
                    onnx = {v: out["export"][v]["paths"] for v in variants}
        raw = {(v, m, e): [] for v in variants for m in modes for e in engines}
        for r in range(rounds):
            order = list(engines) if r % 2 == 0 else list(reversed(engines))
            for v in variants:
                for m in modes:
                    for e in order:
                        raw[(v, m, e)].append(_one(e, v, m, onnx, settings, timeout))
                        if progress:
                            progress(f"round {r + 1}/{rounds} {v} {m} {e}: "
                                     f"{_brief(raw[(v, m, e)][-1])}")
        # The ONNX files die with tmp: keep only their names in the report.
        for v in onnx:
            out["export"][v]["paths"] = {b: os.path.basename(p)
                                         for b, p in onnx[v].items()}
    for (v, m, e), runs in raw.items():
        out["speed"].setdefault(v, {}).setdefault(m, {})[e] = _combine(runs)
    for v in variants:
        for m in modes:
            cell = out["speed"][v][m]
            out["ratios"].setdefault(v, {})[m] = {
                f"ours/{e}": _ratio(cell.get("ours"), cell.get(e), m)
                for e in engines if e != "ours"}
    return out


def _one(engine, variant, mode, onnx, s, timeout):
    if engine == "torch" and not _available("torch"):
        return {"skipped": "torch not importable"}
    if engine == "ort":
        if mode == "train":
            return {"skipped": "ONNX Runtime: inference only"}
        if not _available("onnxruntime"):
            return {"skipped": "onnxruntime not importable"}
        if variant not in onnx:
            return {"skipped": "no ONNX model (export failed or torch missing)"}
    lat = mode == "latency"
    spec = {"op": mode, "engine": engine, "variant": variant, "batch": 1 if lat else s["batch"],
            "size": s["size"], "iters": s["latency_iters"] if lat else s["iters"],
            "warmup": max(s["warmup"], 2) if lat else s["warmup"], "threads": s["threads"],
            "onnx": onnx.get(variant, {}).get(str(1 if lat else s["batch"]))}
    return run_worker(spec, timeout)


def _brief(res):
    if _failed(res):
        return "skipped/failed: " + _note(res).splitlines()[0][:120]
    return f"{res['img_s']:.1f} img/s, {res['ms']:.1f} ms, RSS {res['rss_mb']:.0f} MB"


def _combine(runs):
    """Median over rounds of one configuration's runs."""
    good = [r for r in runs if not _failed(r)]
    if not good:
        return {"note": _note(runs[0]) if runs else "not run"}
    med_ms = _median([r["ms"] for r in good])
    c = {"img_s": good[0]["batch"] * 1e3 / med_ms, "ms": med_ms, "batch": good[0]["batch"],
         "rss_mb": _median([r["rss_mb"] for r in good]),
         "rss_base_mb": _median([r.get("rss_base_mb", 0.0) for r in good]),
         "threads": good[0].get("threads"),
         "load_1min_max": max(r.get("load_1min", 0.0) for r in good),
         "rounds": [round(r["img_s"], 2) for r in good],
         "wall_s": sum(r.get("wall_s", 0.0) for r in runs)}
    if len(good) < len(runs):
        c["note"] = f"{len(runs) - len(good)} of {len(runs)} rounds failed: " + \
            _note(next(r for r in runs if _failed(r))).splitlines()[0]
    return c


def _ratio(ours, other, mode):
    if not ours or not other or "ms" not in ours or "ms" not in other:
        return None
    return other["ms"] / ours["ms"]      # = ours img/s / other img/s at equal batch


def measure_layers(variants=VARIANTS, batch=128, size=224, iters=3, warmup=1, threads=2,
                   timeout=None):
    """Our engine's forward and backward ms per layer (training mode) and GFLOP/s.
    {variant: {"rows": [{name, layer, fwd_ms, bwd_ms, fwd_gflops, bwd_gflops, ...}],
               "fwd_ms", "bwd_ms", ...} or {"note": why}}."""
    out = {}
    for v in variants:
        res = run_worker({"op": "layers", "variant": v, "batch": batch, "size": size,
                          "iters": iters, "warmup": warmup, "threads": threads}, timeout)
        out[v] = {"note": _note(res)} if _failed(res) else res
    return out


def measure_thread_scaling(variant="owt", threads=(1, 2), engines=("ours",), batch=128,
                           size=224, iters=5, warmup=1, rounds=1, timeout=None):
    """Training img/s at each thread count (interleaved over engines and thread counts).
    {"variant", "batch", engine: {str(threads): img_s or None}, "notes": [...]}."""
    raw = {(e, t): [] for e in engines for t in threads}
    for r in range(rounds):
        for t in threads:
            for e in engines:
                if e == "torch" and not _available("torch"):
                    raw[(e, t)].append({"skipped": "torch not importable"})
                    continue
                raw[(e, t)].append(run_worker(
                    {"op": "train", "engine": e, "variant": variant, "batch": batch,
                     "size": size, "iters": iters, "warmup": warmup, "threads": t}, timeout))
    out = {"variant": variant, "batch": batch, "size": size, "notes": []}
    for e in engines:
        out[e] = {}
        for t in threads:
            c = _combine(raw[(e, t)])
            out[e][str(t)] = c.get("img_s")
            if "note" in c:
                out["notes"].append(f"{e} at {t} threads: {c['note']}")
    return out


def run_all(quick=False, engines=ENGINES, variants=VARIANTS, modes=MODES, check=True,
            layers=True, scaling=True, progress=None, **overrides):
    """The whole end-to-end report as one dict: settings, meta, check, speed, ratios,
    layers, threads. `overrides` replace entries of DEFAULTS / QUICK."""
    s = dict(QUICK if quick else DEFAULTS)
    s.update(overrides)
    t0 = time.perf_counter()
    say = progress or (lambda msg: None)
    out = {"meta": {"quick": bool(quick), "started": datetime.datetime.now().isoformat(
        timespec="seconds"), "python": platform.python_version(),
        "machine": platform.machine(), "cores": os.cpu_count(),
        "load_1min_start": os.getloadavg()[0]}}
    if check:
        say("correctness check")
        out["check"] = check_correctness(variants, s["size"], s["threads"],
                                         timeout=s["timeout"])
        if "cpu_info" in out["check"]:
            out["meta"]["cpu_info"] = out["check"].pop("cpu_info")
    say("end-to-end speed")
    out.update(measure_speed(engines, variants, modes, progress=progress, **s))
    if layers:
        say("per-layer timing (ours)")
        out["layers"] = measure_layers(variants, s["batch"], s["size"], s["layer_iters"],
                                       s["warmup"], s["threads"], s["timeout"])
    if scaling:
        say("thread scaling (ours)")
        out["threads"] = measure_thread_scaling("owt", s["scaling_threads"], ("ours",),
                                                s["batch"], s["size"], s["iters"],
                                                s["warmup"], 1, s["timeout"])
    out["meta"]["load_1min_end"] = os.getloadavg()[0]
    out["meta"]["wall_s"] = time.perf_counter() - t0
    return out


# -- report -----------------------------------------------------------------------------------
def _f(x, fmt="{:.1f}"):
    return "-" if x is None else fmt.format(x)


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def format_markdown(results):
    """Readable Markdown tables of a run_all (or measure_speed) result."""
    md, notes = [], []
    st = results.get("settings", {})
    engines = st.get("engines", list(ENGINES))
    md.append(f"### End-to-end AlexNet ({st.get('size', '?')}x{st.get('size', '?')}, "
              f"{st.get('threads', '?')} threads, median of {st.get('rounds', '?')} "
              f"interleaved round(s), {st.get('iters', '?')} timed iterations each)")
    chk = results.get("check")
    if chk:
        md.append("")
        if _failed(chk):
            md.append(f"Correctness check: not run ({_note(chk).splitlines()[0]})")
        else:
            rows = [[v, f"{chk[v]['logits_rel']:.1e}", f"{chk[v]['grad_rel_max']:.1e} "
                     f"({chk[v]['grad_rel_worst']})", "ok" if chk[v]["ok"] else "FAIL"]
                    for v in st.get("variants", VARIANTS) if v in chk]
            md.append(f"Correctness (ours vs PyTorch, same weights, eval, batch 2, "
                      f"tolerance {chk['tol']:g} relative to max):")
            md.append("")
            md.append(_table(["variant", "logits rel", "worst grad rel", ""], rows))
    ex = results.get("export")
    if ex and not _failed(ex):
        rels = ", ".join(f"{v} {d['ort_vs_torch_rel']:.1e}" for v, d in ex.items()
                         if isinstance(d, dict) and "ort_vs_torch_rel" in d)
        if rels:
            md.append("")
            md.append(f"ONNX export (opset 17) checked: ORT vs PyTorch logits rel {rels}.")
    elif ex:
        notes.append(f"ONNX Runtime: {_note(ex).splitlines()[0]}")
    speed, ratios = results.get("speed", {}), results.get("ratios", {})
    others = [e for e in engines if e != "ours"]
    titles = {"train": "training img/s (batch {b})", "infer": "inference img/s (batch {b})",
              "latency": "latency ms (batch 1)"}
    rows, rss_rows = [], []
    for v, modes in speed.items():
        for m, cell in modes.items():
            b = next((c["batch"] for c in cell.values() if "batch" in c), st.get("batch"))
            key = "ms" if m == "latency" else "img_s"
            row = [v, titles[m].format(b=b)]
            for e in engines:
                c = cell.get(e, {})
                row.append(_f(c.get(key)))
                if "note" in c and not (e == "ort" and m == "train"):
                    notes.append(f"{ENGINE_NAMES[e]} {v} {m}: {c['note'].splitlines()[0]}")
            for e in others:
                row.append(_f(ratios.get(v, {}).get(m, {}).get(f"ours/{e}"), "{:.2f}x"))
            rows.append(row)
            rss_rows.append([v, m] + [_f(cell.get(e, {}).get("rss_mb"), "{:.0f}")
                                      for e in engines])
    if rows:
        md += ["", _table(["variant", "measure"] + [ENGINE_NAMES[e] for e in engines]
                          + [f"ours/{ENGINE_NAMES[e]}" for e in others], rows)]
        md += ["", "Ratios are ours' speed over the other's (> 1: ours faster).", "",
               "Peak RSS per configuration (MB, own process, ru_maxrss):", "",
               _table(["variant", "mode"] + [ENGINE_NAMES[e] for e in engines], rss_rows)]
    for v, lay in (results.get("layers") or {}).items():
        if "note" in lay:
            notes.append(f"per-layer {v}: {lay['note'].splitlines()[0]}")
            continue
        rows = [[r["name"], r["layer"], _f(r["fwd_ms"], "{:.2f}"), _f(r["bwd_ms"], "{:.2f}"),
                 _f(r["fwd_gflops"]), _f(r["bwd_gflops"])] for r in lay["rows"]]
        rows.append(["total", "", _f(lay["fwd_ms"], "{:.1f}"), _f(lay["bwd_ms"], "{:.1f}"),
                     "", f"{_f(lay['step_img_s'])} img/s"])
        md += ["", f"Per-layer, ours, {v}, batch {lay['batch']}, {lay['threads']} threads "
                   f"(training mode; backward GFLOP/s assume 2x forward for conv/linear):", "",
               _table(["layer", "kind", "fwd ms", "bwd ms", "fwd GFLOP/s", "bwd GFLOP/s"],
                      rows)]
    th = results.get("threads")
    if th:
        tcounts = sorted({t for e in ENGINES if e in th for t in th[e]}, key=int)
        rows = [[ENGINE_NAMES[e]] + [_f(th[e].get(t)) for t in tcounts]
                + [_f(th[e][tcounts[-1]] / th[e][tcounts[0]] if th[e].get(tcounts[-1])
                      and th[e].get(tcounts[0]) else None, "{:.2f}x")]
                for e in ENGINES if e in th]
        md += ["", f"Thread scaling, training img/s, {th['variant']}, batch {th['batch']}:",
               "", _table(["engine"] + [f"{t} thr" for t in tcounts] + ["speed-up"], rows)]
        notes += th.get("notes", [])
    meta = results.get("meta", {})
    if meta.get("cpu_info"):
        ci = meta["cpu_info"]
        md += ["", f"CPU: {ci.get('cpu')}, {ci.get('cores')} cores, ISA path {ci.get('isa')}, "
                   f"OpenMP {ci.get('openmp')}."]
    loads = [c.get("load_1min_max", 0.0) for modes in speed.values()
             for cell in modes.values() for c in cell.values()]
    loads += [meta.get("load_1min_start", 0.0), meta.get("load_1min_end", 0.0)]
    cores = meta.get("cores") or os.cpu_count() or 1
    if max(loads) > 0.75 * cores:
        notes.append(f"the system's 1-minute load average reached {max(loads):.1f} on "
                     f"{cores} cores while measuring: other work shared the CPUs, so "
                     f"absolute figures are noisy (compare ratios)")
    if notes:
        md += ["", "Notes:"] + [f"- {n}" for n in dict.fromkeys(notes)]
    return "\n".join(md) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small batch, few iterations")
    ap.add_argument("--engines", default=",".join(ENGINES), help="ours,torch,ort")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="owt,paper")
    ap.add_argument("--modes", default=",".join(MODES), help="train,infer,latency")
    for k in ("batch", "size", "iters", "warmup", "latency_iters", "rounds", "threads",
              "layer_iters"):
        ap.add_argument("--" + k.replace("_", "-"), type=int, default=None)
    ap.add_argument("--no-check", action="store_true")
    ap.add_argument("--no-layers", action="store_true")
    ap.add_argument("--no-scaling", action="store_true")
    ap.add_argument("--json", help="also write the results dict here")
    a = ap.parse_args(argv)
    over = {k: getattr(a, k) for k in ("batch", "size", "iters", "warmup", "latency_iters",
                                       "rounds", "threads", "layer_iters")
            if getattr(a, k) is not None}
    res = run_all(quick=a.quick, engines=a.engines.split(","), variants=a.variants.split(","),
                  modes=a.modes.split(","), check=not a.no_check, layers=not a.no_layers,
                  scaling=not a.no_scaling,
                  progress=lambda msg: print(msg, file=sys.stderr, flush=True), **over)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    print(format_markdown(res))
    print(f"(wall {res['meta']['wall_s']:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
