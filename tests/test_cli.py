"""The alexnet-cpu command, run as a user would (subprocess)."""
import subprocess
import sys

import pytest
from PIL import Image

from alexnet_cpu.synthetic import make_dataset


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "alexnet_cpu.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    data = d / "data"
    make_dataset(str(data), num_classes=3, train_per_class=8, val_per_class=3,
                 image_size=48, seed=1)
    save = d / "model.safetensors"
    r = run("train", "-data", str(data), "-batchsize", "8", "-epochs", "1", "-save",
            str(save), "-size", "63", "-variant", "owt", "-threads", "2")
    assert r.returncode == 0, r.stderr
    return data, save, r


def test_train_prints_epoch_line_and_saves(trained):
    _, save, r = trained
    assert "epoch   1/1" in r.stdout and "top-1" in r.stdout
    assert save.exists() and save.with_name("model.ckpt.safetensors").exists()


def test_inference_on_file_and_folder(trained):
    data, save, _ = trained
    img = next((data / "val").rglob("*.png"), None) or next((data / "val").rglob("*.jpg"))
    r = run("inference", "-input", str(img), "-load", str(save), "-topk", "2")
    assert r.returncode == 0, r.stderr
    line = r.stdout.strip().splitlines()
    assert len(line) == 1 and line[0].startswith(str(img)) and line[0].count(" 0.") + \
        line[0].count(" 1.") == 2
    r = run("inference", "--input", str(data / "val"),
            "--load", str(save), "-tencrop")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip().splitlines()) == 9


def test_inference_skips_corrupt_image(trained, tmp_path):
    _, save, _ = trained
    Image.new("RGB", (80, 80), (200, 10, 10)).save(tmp_path / "good.png")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    r = run("inference", "-input", str(tmp_path), "-load", str(save))
    assert r.returncode == 0
    assert "good.png" in r.stdout and "bad.jpg" in r.stderr and "skipped 1" in r.stderr


def test_info_reports_variant_and_counts():
    r = run("info", "-variant", "owt")
    assert r.returncode == 0, r.stderr
    assert "61,100,840" in r.stdout and "owt" in r.stdout
    r = run("info")
    assert "60,965,224" in r.stdout and "LRN" in r.stdout


@pytest.mark.parametrize("args,expect", [
    (("train", "-data", "/nonexistent", "-epochs", "1"), "no such folder"),
    (("train", "-batchsize", "0"), "-batchsize must be >= 1"),
    (("train", "-size", "32"), "-size must be >= 63"),
    (("inference", "-input", "/nonexistent.jpg", "-load", "x"), "no such file"),
    (("train", "-bogus", "1"), "unrecognized arguments: -bogus"),
    (("train", "-epochs", "many"), "invalid int value"),
    (("inference", "-load", "x"), "required: -input"),
    (("fly",), "invalid choice"),
])
def test_bad_arguments_one_line_error(args, expect):
    r = run(*args)
    assert r.returncode != 0
    assert expect in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_bad_weight_file_one_line_error(tmp_path, trained):
    data, _, _ = trained
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    img = next((data / "val").rglob("*.*"))
    r = run("inference", "-input", str(img), "-load", str(bad))
    assert r.returncode != 0
    assert "bad.safetensors" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    r = run("inference", "-input", str(txt), "-load", str(bad))
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1
