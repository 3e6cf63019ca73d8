"""`-precision bf16` on the command line: train and inference run in bf16 and say so; a CPU
without AVX512_BF16 (played by ALEXNET_CPU_BF16=0) gets a one-line error."""
import pytest

from alexnet_cpu import _C
from alexnet_cpu.synthetic import make_dataset

from test_bf16 import HAS_BF16
from tiny import run_cli

# Without AVX512_BF16 the portable reference path still runs the commands (slowly).
ENV = {} if HAS_BF16 else {"ALEXNET_CPU_ISA": "generic"}


def run(*args, **env):
    """The command line on the narrow net (the precision plumbing is the point)."""
    return run_cli(*args, env={**ENV, **env}, timeout=600)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("bf16cli")
    make_dataset(str(d / "data"), num_classes=3, train_per_class=8, val_per_class=3,
                 image_size=48, seed=1)
    return d


def test_train_and_infer_bf16(data):
    save = data / "m.safetensors"
    r = run("train", "-data", str(data / "data"), "-batchsize", "8", "-epochs", "1", "-save",
            str(save), "-size", "63", "-variant", "owt", "-precision", "bf16")
    assert r.returncode == 0, r.stderr
    assert "bf16" in r.stdout and "epoch   1/1" in r.stdout
    img = next((data / "data" / "val").rglob("*.png"))
    outs = [run("inference", "-input", str(img), "-load", str(save), "-precision", p)
            for p in ("bf16", "fp32")]
    assert all(o.returncode == 0 for o in outs), outs[0].stderr + outs[1].stderr
    assert outs[0].stdout.split()[1] == outs[1].stdout.split()[1]  # same top class


@pytest.mark.skipif(not _C.isa_supported("avx2"), reason="only the portable path: it has bf16")
@pytest.mark.parametrize("cmd", [("train", "-epochs", "1"),
                                 ("inference", "-input", ".", "-load", "x")])
def test_refused_without_avx512_bf16(cmd):
    r = run(*cmd, "-precision", "bf16", ALEXNET_CPU_BF16="0", ALEXNET_CPU_ISA="")
    assert r.returncode != 0
    assert "AVX512_BF16" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_bad_precision_value():
    r = run("train", "-precision", "fp16")
    assert r.returncode != 0 and "invalid choice" in r.stderr
