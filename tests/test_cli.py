"""The alexnet-cpu command, run as a user would (subprocess), and the README's flags."""
import argparse
import os
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from alexnet_cpu import cli, synthetic
from alexnet_cpu.checkpoint import load
from alexnet_cpu.data import base_size, center_crop, load_image, ten_crop
from alexnet_cpu.loss import softmax
from alexnet_cpu.synthetic import make_dataset
import tiny

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")


def run(*args, cwd=None):
    """The command line, as a user runs it, on the narrow net of tiny.py (the commands'
    plumbing is the point; the full nets' arithmetic is test_model.py's)."""
    return tiny.run_cli(*args, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    data = d / "data"
    make_dataset(str(data), num_classes=3, train_per_class=8, val_per_class=3,
                 image_size=48, seed=1)
    shutil.copytree(data / "train", d / "images")   # no -data: ./images is used
    save = d / "model.safetensors"
    r = run("train", "-batchsize", "8", "-epochs", "1", "-save", str(save), "-size", "63",
            "-variant", "owt", "-threads", "2", cwd=str(d))
    assert r.returncode == 0, r.stderr
    assert "data: images (10% held out for validation)" in r.stdout
    return data, save, r


def test_train_prints_epoch_line_and_saves(trained):
    _, save, r = trained
    assert "epoch   1/1" in r.stdout and "top-1" in r.stdout and "top-3" in r.stdout
    assert "top-5" not in r.stdout                     # 3 classes: top-k is top-3
    assert save.exists() and save.with_name("model.ckpt.safetensors").exists()
    assert save.with_name("model.last.safetensors").exists()


def _expected(save, path, topk, tencrop=False):
    """[(class, probability)] from softmax of our own forward pass on the image."""
    net, meta = load(str(save), model=tiny.tiny_alexnet)
    size, pre = meta["input_size"], meta["preprocess"]
    img = load_image(path, base_size(size))
    mean, std = np.float32(pre["mean"]), np.float32(pre["std"])
    x = ten_crop(img, size, mean, std) if tencrop else center_crop(img, size, mean, std)[None]
    p = softmax(net.forward(x)).mean(axis=0)
    return [(meta["classes"][i], f"{p[i]:.3f}") for i in np.argsort(-p)[:topk]]


def _parsed(line):
    fields = line.split(": ", 1)[1].split()
    return list(zip(fields[::2], fields[1::2]))


@pytest.mark.parametrize("tencrop", [False, True])
def test_inference_values_are_softmax_of_the_forward(trained, tencrop):
    data, save, _ = trained
    img = sorted((data / "val").rglob("*.png"))[0]
    r = run("inference", "-input", str(img), "-load", str(save), "-topk", "2",
            *(["-tencrop"] if tencrop else []))
    assert r.returncode == 0, r.stderr
    assert _parsed(r.stdout.strip()) == _expected(save, str(img), 2, tencrop)


def test_inference_errors(trained, tmp_path):
    _, save, _ = trained
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff not a jpeg")
    r = run("inference", "-input", str(bad), "-load", str(save))   # named: an error
    assert r.returncode != 0 and "bad.jpg" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    (tmp_path / "worse.png").write_bytes(b"\x89PNG broken")
    r = run("inference", "-input", str(tmp_path), "-load", str(save))   # all failed
    assert r.returncode != 0 and "none of the 2 images could be read" in r.stderr


def test_info_load_describes_the_file(trained):
    _, save, _ = trained
    r = run("info", "-load", str(save))
    assert r.returncode == 0, r.stderr
    assert "variant 'owt', 3 classes, 3x63x63 input" in r.stdout
    assert "classes circle, square, triangle" in r.stdout
    assert f"{tiny.tiny_alexnet(3).num_parameters():,}" in r.stdout


def test_train_refuses_one_class(tmp_path):
    (tmp_path / "only").mkdir()
    Image.new("RGB", (80, 80), (200, 10, 10)).save(tmp_path / "only" / "a.png")
    r = run("train", "-data", str(tmp_path), "-epochs", "1")
    assert r.returncode != 0 and "training needs at least 2" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_demo_and_train_without_data_on_the_builtin_set(tmp_path, monkeypatch, capsys):
    """The demo and `train` without -data or ./images, on a tiny built-in set and the
    narrow net (same code paths, small settings)."""
    tiny.use_in_cli(monkeypatch.setattr)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    real = synthetic.make_dataset
    monkeypatch.setattr(synthetic, "make_dataset", lambda root=None, **kw: real(
        root, num_classes=3, train_per_class=8, val_per_class=3, image_size=48))
    monkeypatch.setitem(cli.DEMO, "batch_size", 8)
    assert cli.main(["demo", "-epochs", "1", "-variant", "owt", "-threads", "2"]) == 0
    out = capsys.readouterr().out
    assert "demo: final validation top-1" in out and "demo: inference on a few" in out
    assert len([line for line in out.splitlines() if line.startswith("  val/")]) == 3
    assert os.path.exists(tmp_path / "runs" / "demo.safetensors")
    assert cli.main(["train", "-epochs", "1", "-variant", "owt", "-size", "63",
                     "-batchsize", "8", "-save", "t.safetensors"]) == 0
    out = capsys.readouterr().out
    assert cli.SYNTHETIC_NOTE in out and "epoch   1/1" in out


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


def test_inference_skips_corrupt_image_in_a_folder(trained, tmp_path):
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
    (("train", "-lr", "0"), "-lr must be > 0"),
    (("train", "-val_fraction", "1"), "-val_fraction must be < 1"),
    (("train", "-crop", "maybe"), "expected on/off"),
    (("train", "-init", "xavier"), "invalid choice"),
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


def _subparsers():
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def _flags(sub):
    return {o: a for a in sub._actions for o in a.option_strings}


def test_every_flag_in_the_readme_exists():
    """Each `alexnet-cpu CMD ... -flag` in the README's command-line block is a flag of CMD
    with that spelling, its listed choices are the parser's, and every `-flag` quoted in the
    text is a flag of some command."""
    with open(README) as f:
        text = f.read()
    subs = _subparsers()
    block = text.split("## The command line", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    cmd, seen = None, 0
    for line in block.splitlines():
        m = re.match(r"alexnet-cpu (\w+)", line.strip())
        if m:
            cmd = m.group(1)
            assert cmd in subs, cmd
        if cmd is None:
            continue
        flags = _flags(subs[cmd])
        for name, choices in re.findall(r"(?<![\w-])(-[a-z_]+)(?: ([\w.]+(?:\|[\w.]+)+))?", line):
            assert name in flags, f"README: alexnet-cpu {cmd} {name}"
            seen += 1
            if choices and flags[name].choices is not None:
                assert set(choices.split("|")) == set(flags[name].choices), (name, choices)
    assert seen > 20
    everywhere = set().union(*(_flags(s) for s in subs.values()))
    quoted = re.findall(r"`(-[a-z_]+)", text)
    assert quoted and not [q for q in quoted if q not in everywhere]


def test_train_flags_follow_trainconfig():
    """One flag per TrainConfig option, with the field's default and choices."""
    from alexnet_cpu.model import INITS, VARIANTS
    from alexnet_cpu.train import TrainConfig
    flags = _flags(_subparsers()["train"])
    for f, flag in TrainConfig.options():
        action = flags[f"-{flag}"]
        assert action.dest == f.name and action.default == f.default, flag
    assert tuple(flags["-init"].choices) == INITS and tuple(flags["-variant"].choices) == VARIANTS
    args = cli.build_parser().parse_args(["train", "-init", "torch", "-crop", "off"])
    assert args.init == "torch" and args.crop is False
