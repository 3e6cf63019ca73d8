"""Data-parallel training (alexnet_cpu.distributed): 2 MPI processes train the same model as
one (from rank 0's initial weights, broadcast), resume across process counts, failures end
the job, sharding covers every sample once, and the package works without mpi4py. The MPI
tests start `mpiexec -n 2` subprocesses."""
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from alexnet_cpu import checkpoint, distributed
from alexnet_cpu.data import DataLoader, ImageFolder
from alexnet_cpu.synthetic import make_dataset
from tiny import tiny_alexnet

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.dirname(sys.executable)
MPIEXEC = shutil.which("mpiexec", path=BIN + os.pathsep + os.environ.get("PATH", ""))
try:
    import mpi4py  # noqa: F401
    NO_MPI = None if MPIEXEC else "no mpiexec on PATH (pip install 'alexnet-cpu[mpi]')"
except ImportError:
    NO_MPI = "mpi4py not installed (pip install 'alexnet-cpu[mpi]')"
needs_mpi = pytest.mark.skipif(NO_MPI is not None, reason=str(NO_MPI))


def _env():
    env = {k: v for k, v in os.environ.items() if k not in distributed.SIZE_VARS}
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(HERE), HERE, env.get("PYTHONPATH", "")])
    return env


def _run(args, nproc=1, timeout=120):
    cmd = ([MPIEXEC, "-n", str(nproc)] if nproc > 1 else []) + [sys.executable] + args
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env())


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("mpi_data")
    make_dataset(str(root), num_classes=3, train_per_class=6, val_per_class=2,
                 image_size=48, seed=0)
    return str(root)


# The command line training tiny.py's narrow AlexNet (the variant's layers and names): the
# MPI mechanics are those of the full net, in kilobyte files.
CLI = "import sys, tiny; tiny.use_in_cli(); from alexnet_cpu import cli\n"
CLI_MAIN = "sys.exit(cli.main(sys.argv[1:]))\n"
# ... with rank 1 building other initial weights than rank 0's (every rank builds its net
# from the same seed): the run must still equal one process's, since training starts by
# broadcasting rank 0's parameters.
CLI_RANK1_OTHER_WEIGHTS = (
    "import os, sys; from alexnet_cpu import cli, train\n"
    "def other(*a, **kw):\n"
    "    net = make(*a, **kw)\n"
    "    for _, p in net.named_params():\n"
    "        p += 0.01\n"
    "    return net\n"
    "if os.environ['PMI_RANK'] == '1':\n"
    "    make, train.alexnet = train.alexnet, other\n")


def _train(data, save, nproc=1, rank1_other_weights=False, **kw):
    """Train the narrow net with the command line; the saved best weights."""
    opts = dict(variant="owt", size=63, batchsize=6, epochs=2, schedule="constant",
                seed=3, threads=1, workers=1, lr=0.0005, warmup=0.5)
    opts.update(kw)
    script = CLI + (CLI_RANK1_OTHER_WEIGHTS if rank1_other_weights else "") + CLI_MAIN
    args = ["-c", script, "train", "-data", data, "-save", save, "-cache", "-quiet"]
    for k, v in opts.items():
        args += [f"-{k}", str(v)]
    r = _run(args, nproc)
    assert r.returncode == 0, r.stderr[-2000:]
    model = functools.partial(tiny_alexnet, variant=opts["variant"])
    return checkpoint.load(save, model=model)[0].state_dict()


def _assert_close(a, b):
    """Equal to float32 rounding grown over 6 SGD steps (sums in another order): a wrong
    gradient, sample or dropout mask fails it (planted: every rank's dropout rows keyed as
    rank 0's; a bucket left unreduced). (At lr >= 0.002 this tiny run is chaotic.)"""
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-3,
                                   atol=1e-5 * float(np.abs(a[name]).max()), err_msg=name)


def _losses(save):
    return [json.loads(line)["train_loss"] for line in open(save.replace(".safetensors",
                                                                         ".log.jsonl"))]


REF = {}


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """One process, 2 epochs of 3 steps of global batch 6, owt with dropout on."""
    REF["save"] = str(tmp_path_factory.mktemp("ref") / "m.safetensors")
    return _train(data, REF["save"])


def reference_losses():
    return _losses(REF["save"])


@needs_mpi
@pytest.mark.parametrize("variant,extra", [
    ("owt", {"overlap": "on"}), ("owt", {"accumulate": 2, "bucket_mb": 0.5}),
    ("paper", {})])
def test_two_processes_train_the_model_of_one(data, reference, tmp_path, variant, extra):
    """... even when rank 1 built other initial weights (rank 0's are broadcast)."""
    kw = dict(variant=variant, epochs=2 if variant == "owt" else 1)
    one = reference if variant == "owt" else _train(data, str(tmp_path / "1.safetensors"),
                                                    **kw)
    two = _train(data, str(tmp_path / "2.safetensors"), nproc=2, rank1_other_weights=True,
                 **kw, **extra)
    _assert_close(one, two)
    np.testing.assert_allclose(_losses(str(tmp_path / "2.safetensors")),
                               _losses(str(tmp_path / "1.safetensors")) if variant != "owt"
                               else reference_losses(), rtol=1e-5)
    log = [l for l in open(tmp_path / "2.log.jsonl")]
    assert len(log) == kw["epochs"] and '"rank_img_per_s": [' in log[-1]


def test_accumulation_in_one_process_equals_the_whole_batch(data, reference, tmp_path):
    _assert_close(reference, _train(data, str(tmp_path / "a.safetensors"), accumulate=3))


BROADCAST = """
from alexnet_cpu import distributed
from alexnet_cpu.optim import SGD
from tiny import tiny_alexnet
world = distributed.init(mpi=True)
net = tiny_alexnet(3, seed=world.rank)                     # other weights on each rank
opt = SGD(net)
for v in opt.velocity.values():
    v[...] = world.rank + 1.0                              # other momentum buffers too
def sums():
    return distributed.param_checksums(net), [float(v.sum()) for v in opt.velocity.values()]
before = world.allgather(sums())
world.broadcast_parameters(net, opt)
after = world.allgather(sums())
if world.is_root:
    print("differed before:", before[1][0] != before[0][0], before[1][1] != before[0][1])
    print("rank 0's after:", all(s == before[0] for s in after))
"""


@needs_mpi
def test_broadcast_parameters_gives_every_rank_rank_0s_weights_and_momentum():
    r = _run(["-c", BROADCAST], nproc=2, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split("\n")[:2] == ["differed before: True True", "rank 0's after: True"], \
        r.stdout


@needs_mpi
@pytest.mark.parametrize("first,second", [(2, 1), (1, 2)])
def test_resume_with_another_process_count(data, reference, tmp_path, first, second):
    save = str(tmp_path / "m.safetensors")
    _train(data, save, nproc=first, epochs=1)
    ckpt = str(tmp_path / "m.ckpt.safetensors")
    _assert_close(reference, _train(data, save, nproc=second, resume=ckpt))


@needs_mpi
@pytest.mark.parametrize("how", ["raise", "hook", "kill", "hang", "drift"])
def test_a_failing_rank_ends_the_job(how):
    t = time.monotonic()
    r = _run([os.path.join(HERE, "mpi_fail.py"), how], nproc=2, timeout=60)
    assert time.monotonic() - t < 30
    assert r.returncode != 0 and "not aborted" not in r.stdout
    if how == "kill":   # mpiexec names the dead process's PID; our first line maps it
        pid = re.search(r"PID (\d+)", r.stdout + r.stderr).group(1)
        assert f"1:{pid}@" in r.stdout, r.stdout
        return
    errors = [l for l in r.stderr.splitlines() if l.startswith("alexnet-cpu: error")]
    if how == "drift":   # every rank finds it; the first to abort ends the job
        assert errors and all("rank(s) [1] differ from rank 0's at step 7" in e
                              for e in errors), r.stderr
        return
    assert len(errors) == 1, r.stderr
    expect = {"raise": "rank 1/2: bad file images/x.jpg",
              "hook": "rank 1/2: uncaught on purpose",
              "hang": "rank 0/2: no progress in allreduce for 3 s"}[how]
    assert expect in errors[0], errors


@needs_mpi
def test_a_rank_that_fails_in_training_ends_the_job(data, tmp_path):
    """-resume names a file rank 1 cannot read (it is not there for rank 1)."""
    t = time.monotonic()
    script = (CLI + "import os\n"
              "rank = int(os.environ['PMI_RANK'])\n"
              "sys.exit(cli.main(sys.argv[1:] + (['-lr', 'nan'] if rank == 1 else [])))\n")
    r = _run(["-c", script, "train", "-data", data, "-save", str(tmp_path / "m.safetensors"),
              "-size", "63", "-batchsize", "4", "-epochs", "1", "-quiet", "-threads", "1"],
             nproc=2, timeout=60)
    assert time.monotonic() - t < 30 and r.returncode != 0
    errors = [l for l in r.stderr.splitlines() if l.startswith("alexnet-cpu: error")]
    assert len(errors) == 1 and "rank 1/2" in errors[0], r.stderr


def test_sharding_covers_every_sample_once_for_uneven_sizes():
    for n, batch, ranks in [(23, 6, 2), (23, 6, 4), (10, 7, 3), (5, 8, 2), (101, 9, 4)]:
        ds = ImageFolder._from_samples("x", ["a"], [(f"{i}.png", 0) for i in range(n)])
        for drop_last in (False, True):
            loaders = [DataLoader(ds, batch, 63, shuffle=True, seed=1, drop_last=drop_last,
                                  shard=(r, ranks)) for r in range(ranks)]
            whole = DataLoader(ds, batch, 63, shuffle=True, seed=1, drop_last=drop_last)
            for epoch in (0, 1):
                parts = [l._batches(epoch) for l in loaders]
                assert len({len(p) for p in parts}) == 1        # equal step counts
                for k, b in enumerate(whole._batches(epoch)):
                    got = np.concatenate([p[k] for p in parts])
                    assert np.array_equal(got, b)               # each row once, in order
                    sizes = [len(p[k]) for p in parts]
                    assert max(sizes) - min(sizes) <= 1
                seen = np.concatenate([b for p in parts for b in p] + [np.zeros(0, int)])
                assert len(seen) == len(set(seen.tolist())) == (n - n % batch if drop_last
                                                                 else n)


def test_dropout_mask_of_a_row_does_not_depend_on_the_split():
    from alexnet_cpu.layers import Dropout
    x = np.random.default_rng(0).random((7, 50), dtype=np.float32)
    whole = Dropout(0.5, seed=11).forward(x).copy()
    for cuts in ([0, 3, 7], [0, 1, 4, 7]):
        parts = []
        for a, b in zip(cuts, cuts[1:]):
            d = Dropout(0.5, seed=11)
            d.row_offset = a
            parts.append(d.forward(np.ascontiguousarray(x[a:b])).copy())
        assert np.array_equal(np.concatenate(parts), whole)


def test_without_mpi4py(data, tmp_path):
    """mpi4py hidden: one process trains as before; asking for MPI is one line, exit 2."""
    block = "import sys; sys.modules['mpi4py'] = None\n" + CLI + CLI_MAIN
    args = ["-c", block, "train", "-data", data, "-save", str(tmp_path / "m.safetensors"),
            "-size", "63", "-batchsize", "6", "-epochs", "1", "-quiet", "-threads", "1"]
    r = _run(args)
    assert r.returncode == 0, r.stderr
    r = _run(args + ["-mpi", "on"])
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "mpi4py is not installed" in r.stderr
    env = dict(_env(), PMI_SIZE="2")   # as if mpiexec had started 2 processes
    r = subprocess.run([sys.executable] + args, capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 2 and "mpi4py is not installed" in r.stderr, r.stderr
