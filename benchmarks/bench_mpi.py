"""Data-parallel training over MPI: the benchmark section, its worker, and the scaling model.

    python benchmarks/bench_mpi.py [--quick] [--no-veth]     # this section alone
    python benchmarks/bench_mpi.py --worker train|allreduce ...  # one measurement (internal)

Measures, owt at 224 px, global batch 128:
  - 1 process x 2 threads vs 2 processes x 1 thread (MPICH shared memory), with the gradient
    allreduce overlapped with backward or after it, and gradient bucket sizes;
  - Allreduce time of the 61M gradients, per bucket size;
  - per-layer backward times (when each layer's gradients are final) of one machine (1 process
    x 2 threads, batch 128): the input of a scaling model that predicts img/s and efficiency
    on 1-64 machines linked at 10 and 100 Gbit/s (ring allreduce, buckets reduced in backward
    order by one communication thread);
  - the model checked against 2 processes whose traffic goes through a rate-limited link
    (two network namespaces joined by a veth pair, tc tbf; needs root and iproute2), MPICH
    over TCP (UCX_TLS=tcp).
"""
import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from common import md_table  # noqa: E402

BIN = os.path.dirname(sys.executable)
MPIEXEC = shutil.which("mpiexec", path=BIN + os.pathsep + os.environ.get("PATH", ""))
SIZE = 224
BATCH = 128
MACHINES = (1, 2, 4, 8, 16, 32, 64)
LINKS_GBIT = (10, 100)
VETH_GBIT = (2.0, 1.0)   # link rates of the model check


# ------------------------------------------------------------------ worker (one measurement)

def _worker_train(a):
    import alexnet_cpu as ac
    from alexnet_cpu import distributed
    world = distributed.init(mpi=a.mpi)
    ac.set_num_threads(a.threads)
    net = ac.alexnet("owt", num_classes=1000, seed=0)
    world.broadcast_parameters(net)
    reducer = world.gradient_reducer(net, a.bucket_mb, a.overlap)
    opt = ac.SGD(net, lr=1e-4, momentum=0.9, weight_decay=5e-4)
    rows = distributed.shard_slice(a.batch, world.rank, world.size)
    n = rows.stop - rows.start
    rng = np.random.default_rng(world.rank)
    x = rng.standard_normal((n, 3, a.size, a.size), dtype=np.float32)
    y = rng.integers(0, 1000, n)
    steps = []
    for s in range(a.warmup + a.steps):
        world.barrier()
        t0 = time.perf_counter()
        loss, d = ac.softmax_cross_entropy(net.forward(x), y)
        t1 = time.perf_counter()
        d *= np.float32(n / a.batch)
        reducer.backward(d)
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if s >= a.warmup:
            steps.append({"step": t3 - t0, "forward": t1 - t0, "backward": reducer.backward_s,
                          "wait": reducer.wait_s, "reduce": reducer.reduce_s, "sgd": t3 - t2,
                          "ready": dict(reducer.ready_s)})
    med = lambda key: statistics.median(r[key] for r in steps)  # noqa: E731
    layers = sorted(reducer.layer_end, reverse=True)
    mine = {k: med(k) for k in ("step", "forward", "backward", "wait", "reduce", "sgd")}
    mine["ready"] = {str(k): statistics.median(r["ready"][k] for r in steps) for k in layers}
    mine["img_s"] = n / mine["step"]
    ranks = world.allgather(mine)
    if world.is_root:
        sizes = {str(k): int(sum(p.size for p in net.layers[k][1].params.values()))
                 for k in layers}
        step = max(r["step"] for r in ranks)
        print(json.dumps({"processes": world.size, "threads": a.threads, "batch": a.batch,
                          "bucket_mb": a.bucket_mb, "overlap": a.overlap,
                          "img_s": a.batch / step, "ranks": ranks, "layer_floats": sizes,
                          "layer_names": {str(k): net.layers[k][0] for k in layers}}))


def _worker_allreduce(a):
    from alexnet_cpu import distributed
    world = distributed.init(mpi=True)
    total = 61_100_840
    flat = np.ones(total, np.float32)
    out = {}
    for mb in a.buckets:
        step = max(1, int(mb * 2 ** 20 / 4))
        times = []
        for _ in range(a.steps):
            world.barrier()
            t = time.perf_counter()
            for s in range(0, total, step):
                world.comm.Allreduce(world.MPI.IN_PLACE, flat[s:s + step])
            times.append(time.perf_counter() - t)
        out[str(mb)] = min(times)
    small = np.ones(1024, np.float32)   # 4 KB: the per-message latency
    times = []
    for _ in range(50):
        t = time.perf_counter()
        world.comm.Allreduce(world.MPI.IN_PLACE, small)
        times.append(time.perf_counter() - t)
    if world.is_root:
        print(json.dumps({"bytes": total * 4, "seconds": out,
                          "latency_s": statistics.median(times)}))


def worker(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--worker", choices=("train", "allreduce"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=BATCH)
    p.add_argument("--size", type=int, default=SIZE)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--bucket_mb", type=float, default=4.0)
    p.add_argument("--overlap", type=int, default=1)
    p.add_argument("--mpi", type=int, default=None)
    p.add_argument("--buckets", type=float, nargs="*", default=[1, 4, 16, 64, 256])
    a = p.parse_args(argv)
    a.overlap = bool(a.overlap)
    a.mpi = None if a.mpi is None else bool(a.mpi)
    (_worker_train if a.worker == "train" else _worker_allreduce)(a)


# ------------------------------------------------------------------ launching

def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _run(args, nproc=1, netns=None, env=None, timeout=600):
    """Run this file as a worker (under mpiexec when nproc > 1, each rank in its own network
    namespace when netns is given); its JSON line."""
    me = [sys.executable, os.path.abspath(__file__), "--worker"] + [str(v) for v in args]
    if nproc == 1:
        cmd = me
    elif netns is None:
        cmd = [MPIEXEC, "-n", str(nproc)] + me
    else:
        cmd = [MPIEXEC, "-genv", "MPIR_CVAR_NOLOCAL", "1", "-genv", "UCX_TLS", "tcp,self"]
        for r, (ns, dev) in enumerate(netns):
            cmd += ([":"] if r else []) + ["-n", "1", "ip", "netns", "exec", ns, "env",
                                           f"UCX_NET_DEVICES={dev}"] + me
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env or _env())
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} ...: exit {r.returncode}: {r.stderr[-800:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def veth_link(gbit):
    """Two network namespaces joined by a veth pair limited to `gbit` each way (tc tbf):
    yields ([(namespace, device)] x 2, set_rate(gbit))."""
    names = [(f"acmpi{os.getpid()}n{i}", f"acmpi{i}v{os.getpid() % 10000}") for i in (0, 1)]
    sh = lambda *c: subprocess.run(c, check=True, capture_output=True)  # noqa: E731
    try:
        for ns, _ in names:
            sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", names[0][1], "type", "veth", "peer", "name", names[1][1])
        for i, (ns, dev) in enumerate(names):
            sh("ip", "link", "set", dev, "netns", ns)
            sh("ip", "-n", ns, "addr", "add", f"10.231.{os.getpid() % 250}.{i + 1}/24",
               "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf", "rate",
               f"{gbit * 1000:g}mbit", "burst", "1mb", "latency", "50ms")
        def set_rate(g):
            for ns, dev in names:
                sh("tc", "-n", ns, "qdisc", "change", "dev", dev, "root", "tbf", "rate",
                   f"{g * 1000:g}mbit", "burst", "1mb", "latency", "50ms")
        yield names, set_rate
    finally:
        for ns, _ in names:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def veth_unavailable():
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"no `{tool}` (apt-get install iproute2)"
    return None


# ------------------------------------------------------------------ the scaling model

def step_time(prof, machines, link_gbit, efficiency, latency_s, bucket_mb=4.0,
              accumulate=1, overlap=True, sum_s_per_float=0.0):
    """Predicted seconds per step of `machines` data-parallel machines, each computing like
    `prof` (a rank of the worker's JSON: forward, backward, sgd, ready[k]) on its batch, K
    micro-batches per step, gradients ring-allreduced in buckets in backward order by one
    communication thread as backward makes them ready (overlap) or after the backward.

    Ring allreduce of S bytes on n machines: 2 (n-1) messages of S/n each way per machine:
    t = 2 (n-1) latency + 2 (n-1)/n S / (efficiency x link); its reduce-scatter adds
    (n-1)/n of the floats on the CPU (sum_s_per_float each), time taken from compute.
    Overlapped, the model assumes the allreduce and the backward do not slow each other:
    an upper bound (on the veth link they did, see _veth_check)."""
    compute = accumulate * (prof["forward"] + prof["backward"]) + prof["sgd"]
    if machines == 1:
        return compute
    n, bw = machines, efficiency * link_gbit * 1e9 / 8
    backward = prof["backward"]
    layers = sorted(prof["ready"], key=lambda k: prof["ready"][k])
    floats = prof["layer_floats"]
    total = sum(floats[k] for k in layers)
    per = max(1, int(bucket_mb * 2 ** 20 / 4))
    ends, off = [], 0
    for k in layers:                       # (flat offset where layer k ends, its ready time)
        off += floats[k]
        ends.append((off, prof["ready"][k]))
    t_comm = 0.0          # from the start of the last micro-batch's backward
    for a in range(0, total, per):
        b = min(a + per, total)
        ready = next(t for e, t in ends if e >= b) if overlap else backward
        cost = 2 * (n - 1) * latency_s + 2 * (n - 1) / n * (b - a) * 4 / bw
        t_comm = max(t_comm, ready) + cost
    arith = (n - 1) / n * total * sum_s_per_float
    return compute + max(0.0, t_comm - backward) + arith


def scaling_table(prof, efficiency, latency_s, sum_s_per_float, batch):
    rows = []
    for gbit in LINKS_GBIT:
        for k, overlap in ((1, False), (4, False), (1, True)):
            base = step_time(prof, 1, gbit, efficiency, latency_s, accumulate=k)
            cells = []
            for n in MACHINES:
                t = step_time(prof, n, gbit, efficiency, latency_s, accumulate=k,
                              overlap=overlap, sum_s_per_float=sum_s_per_float)
                cells.append((n * batch * k / t, base / t))
            rows.append({"gbit": gbit, "accumulate": k, "overlap": overlap,
                         "img_s": [c[0] for c in cells], "efficiency": [c[1] for c in cells]})
    return rows


# ------------------------------------------------------------------ the section

def _layer_table(prof):
    rows = []
    prev = 0.0
    for k in sorted(prof["ready"], key=lambda k: prof["ready"][k]):
        t = prof["ready"][k]
        rows.append((prof["layer_names"][k], f"{prof['layer_floats'][k] / 1e6:.2f}",
                     f"{(t - prev) * 1e3:.0f}", f"{t * 1e3:.0f}"))
        prev = t
    return md_table(["layer (backward order)", "M params", "backward ms", "ready at ms"], rows)


def _profile(res):
    """Rank 0's medians with the layer sizes and names (the model's input)."""
    prof = dict(res["ranks"][0])
    prof["layer_floats"], prof["layer_names"] = res["layer_floats"], res["layer_names"]
    return prof


def run(quick=False, peak_gflops=None, veth=True):
    if MPIEXEC is None:
        return {"skipped": "mpi4py/mpiexec not installed"}, \
            "## Data-parallel (MPI)\n\nskipped: pip install '.[mpi]' (mpi4py, mpich)"
    steps = 2 if quick else 3
    say = lambda m: print(f"  [mpi: {m}]", flush=True)  # noqa: E731
    out = {"size": SIZE, "batch": BATCH}
    md = ["## Data-parallel (MPI)", "",
          f"owt, {SIZE} px, global batch {BATCH}, {steps} timed steps after 1 warm-up "
          f"(median). Shared-memory MPICH between processes on this machine."]

    # Alternated, best of 3: the machine is shared, a neighbour's burst hits one run.
    # (Bucket sizes: the allreduce alone below; 4 MB was fastest.)
    configs = [("1 process x 2 threads", ["--threads", 2, "--mpi", 0], 1),
               ("2 x 1 thread, reduce after backward, 4 MB buckets", ["--overlap", 0], 2),
               ("2 x 1 thread, overlapped, 4 MB buckets", ["--overlap", 1], 2)]
    best = {}
    for rep in range(1 if quick else 3):
        for name, args, nproc in configs:
            say(f"{name} (run {rep + 1})")
            r = _run(["train", "--steps", steps] + args, nproc=nproc)
            if name not in best or r["img_s"] > best[name]["img_s"]:
                best[name] = r
    one = best[configs[0][0]]
    rows = []
    for name, _, _ in configs:
        r = best[name]
        worst = max(r["ranks"], key=lambda q: q["step"])
        rows.append((name, f"{r['img_s']:.1f}", f"{r['img_s'] / one['img_s']:.2f}x",
                     f"{worst['reduce'] * 1e3:.0f}" if r["processes"] > 1 else "-",
                     f"{worst['wait'] * 1e3:.0f}" if r["processes"] > 1 else "-",
                     f"{worst['forward'] * 1e3:.0f} / {worst['backward'] * 1e3:.0f}",
                     f"{worst['step'] * 1e3:.0f}"))
    out["runs"] = [dict(best[n], name=n) for n, _, _ in configs]
    top = max(configs[1:], key=lambda c: best[c[0]]["img_s"])[0]
    out["best"] = {"name": top, "ratio": best[top]["img_s"] / one["img_s"],
                   "img_s": best[top]["img_s"], "one_img_s": one["img_s"]}
    md += ["", md_table(["configuration", "img/s", "vs 1 process", "allreduce ms/step",
                         "not hidden ms/step", "forward / backward ms", "step ms"], rows),
           "", f"Target >= 0.9x the single process: best {top}: {out['best']['ratio']:.2f}x. "
               f"'allreduce' is the time in MPI_Allreduce per step (the slower rank), 'not "
               f"hidden' the part of it the step waited for after the backward ended."]

    say("allreduce alone")
    ar = _run(["allreduce", "--steps", 2 if quick else 3], nproc=2)
    out["allreduce"] = ar
    md += ["", f"Allreduce of the {ar['bytes'] / 2 ** 20:.0f} MB of gradients alone, 2 "
               f"processes (shared memory): " + ", ".join(
                   f"{mb} MB buckets {s * 1e3:.0f} ms" for mb, s in ar["seconds"].items())]

    # The model's inputs: one machine = 1 process x 2 threads, batch 128.
    prof = _profile(one)
    flat = np.ones(61_100_840, np.float32)
    t = time.perf_counter()
    np.add(flat, flat, out=flat)
    sum_s = (time.perf_counter() - t) / flat.size
    out["profile"], out["sum_ns_per_float"] = prof, sum_s * 1e9
    md += ["", "Per-layer backward of one machine (1 process x 2 threads, batch 128; "
               f"forward {prof['forward'] * 1e3:.0f} ms, backward "
               f"{prof['backward'] * 1e3:.0f} ms, SGD {prof['sgd'] * 1e3:.0f} ms):", "",
           _layer_table(prof)]

    efficiency, latency = 0.85, 50e-6   # replaced by the veth measurement when it runs
    source = "assumed (no veth measurement)"
    why = veth_unavailable() if veth else "skipped (--no-veth)"
    if why is None:
        try:
            check = _veth_check(steps, say)
            out["veth"] = check
            efficiency, latency = check["efficiency"], check["latency_s"]
            source = (f"measured over the {VETH_GBIT[0]:g} Gbit/s veth link: "
                      f"{efficiency:.0%} of the rate, {latency * 1e6:.0f} us per message")
            md += ["", check["markdown"]]
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            why = f"failed: {str(e).splitlines()[0][:200]}"
    if why is not None:
        out["veth"] = {"skipped": why}
        md += ["", f"Rate-limited link check: {why}."]

    table = scaling_table(prof, efficiency, latency, sum_s, BATCH)
    out["scaling"] = {"efficiency": efficiency, "latency_s": latency, "rows": table}
    hdr = ["link", "per step"] + [f"{n} machine{'s' if n > 1 else ''}" for n in MACHINES]
    trows = []
    for r in table:
        how = (f"accumulate {r['accumulate']}, " if r["accumulate"] > 1 else "") + \
            ("overlapped (upper bound)" if r["overlap"] else "reduce after backward")
        trows.append([f"{r['gbit']} Gbit/s", how] + [f"{i:.0f} ({e:.0%})" for i, e in
                                                     zip(r["img_s"], r["efficiency"])])
    md += ["", f"Scaling model: predicted img/s (efficiency) for machines like this one (2 "
               f"cores, 1 process x 2 threads, batch {BATCH} each), ring allreduce in "
               f"4 MB buckets; link use {source}. 'Reduce after backward' is the form the "
               f"veth check confirmed; 'overlapped' assumes communication and compute do "
               f"not slow each other (they did there):", "", md_table(hdr, trows)]
    return out, "\n".join(md)


def _link(ar, gbit):
    """(efficiency, latency per message) of a link from the worker's allreduce JSON."""
    latency = ar["latency_s"] / 2          # a 2-process ring: 2 messages per allreduce
    buckets = -(-ar["bytes"] // 2 ** 22)   # of 4 MB
    cost = ar["seconds"]["4.0"] - 2 * latency * buckets
    return ar["bytes"] / cost / (gbit * 1e9 / 8), latency


def _veth_check(steps, say):
    """2 processes x 1 thread, their traffic through a rate-limited veth link, at two link
    rates: measured step times vs the model's, from the compute times of the same processes
    on shared memory and each link's measured allreduce (nothing fitted)."""
    say("compute profile: 2 processes x 1 thread, reduce after backward, shared memory")
    shm = _run(["train", "--steps", steps, "--overlap", 0], nproc=2)
    prof = _profile(shm)
    prof = dict(prof, **{k: max(r[k] for r in shm["ranks"])
                         for k in ("forward", "backward", "sgd")})
    measured, links = {}, {}
    with veth_link(VETH_GBIT[0]) as (names, set_rate):
        for gbit in VETH_GBIT:
            set_rate(gbit)
            say(f"allreduce over a {gbit:g} Gbit/s veth link")
            ar = _run(["allreduce", "--steps", 2, "--buckets", 4], nproc=2, netns=names)
            links[gbit] = _link(ar, gbit) + (ar["seconds"]["4.0"],)
            for overlap in (0, 1):
                say(f"training over the {gbit:g} Gbit/s veth link, overlap {overlap}")
                measured[gbit, overlap] = _run(["train", "--steps", steps, "--overlap",
                                                overlap], nproc=2, netns=names)
    top = VETH_GBIT[0]
    res = {"efficiency": links[top][0], "latency_s": links[top][1],
           "links": {str(g): v for g, v in links.items()}}
    rows = []
    for (gbit, overlap), m in measured.items():
        step = max(r["step"] for r in m["ranks"])
        pred = step_time(prof, 2, gbit, links[gbit][0], links[gbit][1], overlap=bool(overlap))
        res[f"{gbit:g}gbit_overlap{overlap}"] = {"measured_s": step, "predicted_s": pred,
                                                 "ranks": m["ranks"]}
        rows.append((f"{gbit:g} Gbit/s", "overlapped (upper bound)" if overlap else
                     "after backward", f"{links[gbit][2] * 1e3:.0f}", f"{step * 1e3:.0f}",
                     f"{pred * 1e3:.0f}", f"{pred / step - 1:+.0%}"))
    res["markdown"] = "\n".join([
        f"Model check: 2 processes x 1 thread (global batch {BATCH}), each in its own network "
        f"namespace, MPICH over TCP (UCX_TLS=tcp) through a veth pair limited by tc tbf. "
        f"Predictions from the compute times of the same 2 processes on shared memory "
        f"(reduce after backward) and each link's allreduce alone; nothing fitted. Here "
        f"both 'machines' share the 2 cores with the TCP stack and the polling "
        f"communication threads, the worst case for overlap.", "",
        md_table(["link", "gradient reduce", "allreduce alone ms", "measured step ms",
                  "predicted step ms", "error"], rows)])
    return res


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        return worker(argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-veth", action="store_true")
    p.add_argument("--out", help="write the JSON here")
    a = p.parse_args(argv)
    res, text = run(quick=a.quick, veth=not a.no_veth)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
