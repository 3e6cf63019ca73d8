"""Training end to end on tiny data: the loss falls, weights round-trip through files,
a resumed run equals an uninterrupted one, bad weight files are refused."""
import io
import json
import os
import shutil
import sys

import numpy as np
import pytest

import alexnet_cpu as ac
from alexnet_cpu import checkpoint, step, train
from alexnet_cpu.synthetic import make_dataset
from alexnet_cpu.train import TrainConfig, checkpoint_path, last_path, topk_correct
from alexnet_cpu.weights import WeightFileError, read_file, write_file
from tiny import tiny_alexnet, use_in_cli


def fit(cfg):
    """train.fit on the narrow AlexNet: the loop's behaviour, in kilobyte files."""
    return train.fit(cfg, model=tiny_alexnet)


def load(path):
    return checkpoint.load(path, model=tiny_alexnet)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    make_dataset(str(root), num_classes=3, train_per_class=16, val_per_class=4,
                 image_size=48, seed=0)
    return str(root)


def _cfg(data, save, **kw):
    base = dict(train_dir=data, save=save, variant="owt", size=63, batch_size=8, epochs=2,
                lr=0.01, schedule="constant", seed=3, workers=2, quiet=True, cache=True)
    base.update(kw)
    return TrainConfig(**base)


def test_sgd_step_lowers_loss_on_a_fixed_batch():
    net = tiny_alexnet(4, seed=0)
    net.eval()                                    # no dropout: a deterministic objective
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (8, 3, 63, 63)).astype(np.float32)
    y = rng.integers(0, 4, 8)
    opt = ac.SGD(net, lr=0.01, momentum=0.9, weight_decay=5e-4)
    losses = []
    for _ in range(20):
        loss, d = ac.softmax_cross_entropy(net.forward(x), y)
        net.backward(d)
        opt.step()
        losses.append(loss)
    assert losses[-1] < 0.5 * losses[0], losses


def test_train_step_micro_batches_equal_the_whole_batch():
    """accumulate=K splits the batch; the step (loss, correct, new weights) is the whole
    batch's to float32 rounding, dropout included (masks keyed by row)."""
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (7, 3, 63, 63)).astype(np.float32)
    y = rng.integers(0, 4, 7)
    runs = []
    for k in (1, 3):
        net = tiny_alexnet(4, seed=0)
        opt = ac.SGD(net, lr=0.05)
        runs.append((ac.train_step(net, opt, x, y, accumulate=k, step=5), net.flat.copy()))
    (loss1, c1), w1 = runs[0]
    (loss3, c3), w3 = runs[1]
    assert c1 == c3 and loss3 == pytest.approx(loss1, rel=1e-5)
    moved = np.abs(w1 - tiny_alexnet(4, seed=0).flat).max()
    assert moved > 1e-3 and np.abs(w1 - w3).max() < 1e-4 * moved


def test_save_load_round_trip_identical_outputs(tmp_path, monkeypatch):
    use_in_cli(monkeypatch.setattr)      # ac.load builds the narrow net of the file's variant
    net = tiny_alexnet(6, seed=5, variant="paper")
    path = str(tmp_path / "w.safetensors")
    ac.save(path, net, classes=list("abcdef"))
    net2, meta = ac.load(path)
    x = np.random.default_rng(1).normal(0, 1, (2, 3, 70, 70)).astype(np.float32)
    assert np.array_equal(net.eval().forward(x), net2.forward(x))
    assert meta["variant"] == "paper" and meta["classes"] == list("abcdef")


def test_corrupt_weight_file_is_refused(tmp_path):
    path = tmp_path / "w.safetensors"
    ac.save(str(path), tiny_alexnet(2))
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightFileError, match="checksum"):
        load(str(path))


def _scripted(monkeypatch, top1, loss=None):
    """Replace validation by a script of (top1, loss) per epoch."""
    calls = []

    def evaluate(net, loader, tencrop=False, k=5):
        i = len(calls)
        calls.append(i)
        return {"top1": top1[i], "topk": 1.0, "k": k, "n": 4,
                "loss": (loss or [1.0] * len(top1))[i]}
    monkeypatch.setattr(train, "evaluate", evaluate)


def _params(path):
    net, _ = load(path)
    return [p.copy() for _, p in net.named_params()]


def _epoch_lines(out):
    return [line for line in out.splitlines() if line.startswith("epoch")]


@pytest.fixture(scope="module")
def runs(tiny_data, tmp_path_factory):
    """A 3-epoch run, and the same run in three pieces (1 epoch, resumed to 2, resumed to
    3), validation scripted to top-1 0.5, 0.9, 0.6: epoch 2 is the best."""
    d = tmp_path_factory.mktemp("runs")
    full, part = str(d / "full.safetensors"), str(d / "part.safetensors")
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        import contextlib
        import io
        _scripted(mp, [0.5, 0.9, 0.6])
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            out["full_history"] = fit(_cfg(tiny_data, full, epochs=3, quiet=False))
        out["full_out"] = buf.getvalue()
        for epochs, script in ((1, [0.5]), (2, [0.9]), (3, [0.6])):
            _scripted(mp, script)
            resume = checkpoint_path(part) if epochs > 1 else None
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                history = fit(_cfg(tiny_data, part, epochs=epochs, resume=resume, quiet=False))
            out[f"part{epochs}_out"], out[f"part{epochs}_history"] = buf.getvalue(), history
            for path in (checkpoint_path(part), last_path(part)):   # keep each epoch's files
                shutil.copy(path, path.replace("part.", f"part{epochs}."))
    return full, part, out


def test_fit_learns_and_writes_files(runs, tmp_path):
    full, _, out = runs
    history = out["full_history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    d = os.path.dirname(full)
    for path in (full, last_path(full), checkpoint_path(full), os.path.join(d, "full.log.jsonl"),
                 os.path.join(d, "full.png")):
        assert os.path.getsize(path) > 0, path
    net, meta = load(full)
    assert meta["classes"] == ["circle", "square", "triangle"]
    assert meta["input_size"] == 63 and len(meta["preprocess"]["mean"]) == 3


def test_best_and_last_files(runs):
    full, part, out = runs
    lines = _epoch_lines(out["full_out"])
    assert lines[0].endswith("best: saved") and lines[1].endswith("best: saved")
    assert lines[2].endswith("best: epoch 2 (0.900)")
    assert f"best epoch 2 (val top-1 0.900, loss 1.0000) in {full}" in out["full_out"]
    _, best = load(full)
    _, last = load(last_path(full))
    assert best["epoch"] == 2 and best["best"]["val_top1"] == 0.9 and best["kind"] == "weights"
    assert last["epoch"] == 3 and last["metrics"]["val_top1"] == 0.6
    # the best file holds epoch 2's weights, not epoch 3's
    epoch2 = last_path(part).replace("part.", "part2.")
    assert all(np.array_equal(a, b) for a, b in zip(_params(full), _params(epoch2)))
    assert not all(np.array_equal(a, b) for a, b in zip(_params(full), _params(last_path(full))))
    # the resumed run kept the best-so-far record across its resume: epoch 3 left it alone
    assert load(part)[1]["epoch"] == 2
    assert load(checkpoint_path(part))[1]["train"]["best"]["epoch"] == 2


def test_better_prefers_top1_then_loss():
    best = {"val_top1": 0.5, "val_loss": 1.0}
    assert train._better({"top1": 0.6, "loss": 2.0}, best)
    assert train._better({"top1": 0.5, "loss": 0.9}, best)
    assert not train._better({"top1": 0.5, "loss": 1.1}, best)
    assert not train._better({"top1": 0.5, "loss": 1.0}, best)   # an exact tie keeps the best
    assert train._better({"top1": 0.1, "loss": 5.0}, None)
    assert train._better({"top1": float("nan"), "loss": float("nan")}, best)   # no val data


def test_resume_trains_only_the_remaining_epochs(runs):
    full, part, out = runs
    # each resumed run printed and counted only its own epochs
    assert [line.split()[1] for line in _epoch_lines(out["part2_out"])] == ["2/2"]
    assert [line.split()[1] for line in _epoch_lines(out["part3_out"])] == ["3/3"]
    assert "resuming from" in out["part3_out"]
    assert [h["epoch"] for h in out["part3_history"]] == [1, 2, 3]
    with open(part.replace(".safetensors", ".log.jsonl")) as f:
        assert [json.loads(line)["epoch"] for line in f] == [1, 2, 3]
    steps = [load(checkpoint_path(part).replace("part.", f"part{e}."))[1]["train"]["step"]
             for e in (1, 2, 3)]
    assert steps == [6, 12, 18]                  # 48 images, batch 8: 6 steps an epoch
    assert load(checkpoint_path(full))[1]["train"]["step"] == 18
    for a, b in zip(_params(last_path(full)), _params(last_path(part))):
        assert np.array_equal(a, b)


def test_resume_uses_the_checkpoints_weights(runs, tiny_data, tmp_path):
    """A checkpoint whose weights were altered resumes from those weights (a run that
    ignored them would end exactly as the unaltered one)."""
    _, part, _ = runs
    tensors, meta = read_file(checkpoint_path(part).replace("part.", "part1."))
    tensors["classifier.6.weight"] = tensors["classifier.6.weight"] * 3
    save = str(tmp_path / "alt.safetensors")
    write_file(checkpoint_path(save), tensors, meta)
    fit(_cfg(tiny_data, save, epochs=2, resume=checkpoint_path(save)))
    a = _params(last_path(save))[-2]
    b = _params(last_path(part).replace("part.", "part2."))[-2]
    assert not np.allclose(a, b)


def test_resume_refusals(runs, tiny_data, tmp_path):
    full, _, _ = runs
    with pytest.raises(ValueError, match="not a checkpoint"):
        fit(_cfg(tiny_data, str(tmp_path / "n.safetensors"), epochs=4, resume=full))
    other = tmp_path / "other"
    make_dataset(str(other), num_classes=2, train_per_class=4, val_per_class=2,
                 image_size=48, seed=0)
    with pytest.raises(ValueError, match="classes differ"):
        fit(_cfg(str(other), str(tmp_path / "n.safetensors"), epochs=4,
                 resume=checkpoint_path(full)))
    tensors, meta = read_file(checkpoint_path(full))
    # (the other fields' checks: test_fuzz_weights.py, through checkpoint.inspect)
    for edit, msg in ((lambda m: m["train"]["history"].clear(), "train.history"),
                      (lambda m: m["train"]["schedule"].update(lr="fast"), "schedule state")):
        broken = json.loads(json.dumps(meta))
        edit(broken)
        bad = str(tmp_path / "bad.ckpt.safetensors")
        write_file(bad, tensors, broken)
        with pytest.raises(WeightFileError, match=msg):
            fit(_cfg(tiny_data, str(tmp_path / "n.safetensors"), epochs=4, resume=bad))


def test_plateau_drops_and_early_stop_in_fit(tiny_data, tmp_path, monkeypatch, capsys):
    """Every epoch ties (top-1 0.5, loss 1.0): the plateau rules act, and epoch 1 stays the
    best (an exact tie keeps the earlier epoch)."""
    _scripted(monkeypatch, [0.5] * 10, [1.0] * 10)
    save = str(tmp_path / "m.safetensors")
    history = fit(_cfg(tiny_data, save, epochs=10, schedule="plateau", patience=1, warmup=0,
                       min_lr=0.001, early_stop=True, quiet=False))
    # epoch 1 sets the best; epoch 2 stalls: drop to 0.001, the floor; epoch 3 stalls at
    # the floor: stop before epoch 4
    assert [h["lr"] for h in history] == pytest.approx([0.01, 0.01, 0.001])
    out = capsys.readouterr().out
    assert "early stop" in out
    assert [line.rsplit("best: ", 1)[1] for line in _epoch_lines(out)] == \
        ["saved", "epoch 1 (0.500)", "epoch 1 (0.500)"]
    assert load(save)[1]["epoch"] == 1
    assert load(checkpoint_path(save))[1]["train"]["best"]["epoch"] == 1
    assert not all(np.array_equal(a, b) for a, b in zip(_params(save), _params(last_path(save))))


def test_options_reach_the_loaders_and_pretrained_weights_load(runs, tiny_data, tmp_path,
                                                             monkeypatch, capsys):
    """-tencrop, -val_fraction, -crop/-flip/-lighting off and -load_pretrained in one run."""
    first = runs[0]
    loaders = []

    class Spy(train.DataLoader):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            loaders.append(self)
    monkeypatch.setattr(train, "DataLoader", Spy)
    save = str(tmp_path / "m.safetensors")
    history = fit(_cfg(os.path.join(tiny_data, "train"), save, epochs=1, tencrop=True,
                       val_fraction=0.25, crop=False, flip=False, lighting=False,
                       load_pretrained=first, quiet=False))
    out = capsys.readouterr().out
    assert f"loaded 16/16 parameter tensors from {first}" in out
    train_loader, val_loader = loaders
    assert (train_loader.crop, train_loader.flip, train_loader.lighting) == (False,) * 3
    assert val_loader.ten_crop and len(val_loader.dataset) == 12   # 25% of 3 x 16
    assert len(train_loader.dataset) == 36 and history[0]["k"] == 3
    assert "top-3" in out and "top-5" not in out


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(runs, tiny_data, tmp_path,
                                                             monkeypatch):
    save = str(tmp_path / "m.safetensors")
    shutil.copy(checkpoint_path(runs[1]).replace("part.", "part1."), checkpoint_path(save))
    real = step.softmax_cross_entropy
    monkeypatch.setattr(step, "softmax_cross_entropy",
                        lambda logits, y: (float("nan"), real(logits, y)[1]))
    with pytest.raises(FloatingPointError, match="loss became nan at step 6:"):
        fit(_cfg(tiny_data, save, epochs=2, resume=checkpoint_path(save)))
    assert load(checkpoint_path(save))[1]["train"]["epoch"] == 1


def test_topk_correct_against_known_values():
    logits = np.array([[0.1, 0.5, 0.2, 0.9, 0.0, 0.3],    # order 3 1 5 2 0 4
                       [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],    # order 0 1 2 3 4 5
                       [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]])
    labels = np.array([1, 5, 2])
    assert topk_correct(logits, labels, (1, 2, 5, 6)) == [1, 2, 2, 3]
    assert topk_correct(logits[:, :3], labels.clip(0, 2), (1, 5)) == [2, 3]   # k > classes


def test_training_refuses_one_class_and_unreadable_classes(tmp_path):
    one = tmp_path / "one" / "cats"
    one.mkdir(parents=True)
    from PIL import Image
    Image.new("RGB", (70, 70)).save(one / "a.png")
    with pytest.raises(ValueError, match="1 class folder.*at least 2"):
        fit(_cfg(str(tmp_path / "one"), str(tmp_path / "m.safetensors")))
    (tmp_path / "one" / "dogs").mkdir()
    (tmp_path / "one" / "dogs" / "x.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="dogs: no readable image"):
        fit(_cfg(str(tmp_path / "one"), str(tmp_path / "m.safetensors")))


def test_default_patience_fits_the_run_length():
    patience = lambda **kw: train._schedule_args(TrainConfig(**kw))["patience"]  # noqa: E731
    assert [patience(epochs=e) for e in (5, 15, 40, 90)] == [3, 3, 8, 18]
    assert patience(epochs=90, patience=2) == 2
    args = train._schedule_args(TrainConfig(warmup=1.5, min_lr=1e-4))
    assert args["warmup_epochs"] == 2 and args["min_lr"] == 1e-4 and args["monitor"] == "loss"
    # -schedule step reaches StepLR with its step size (its rule: test_optim.py)
    cfg = TrainConfig(schedule="step", step_size=7)
    sched = train.make_schedule(cfg.schedule, cfg.lr, **train._schedule_args(cfg))
    assert sched.name == "step" and sched.step_size == 7


def test_progress_writes_to_the_current_stderr(monkeypatch):
    # the stream is looked up when a Progress is made, not when train.py was imported: a
    # stderr replaced since (pytest's capture, a redirect) gets the lines
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    train.Progress(4).update(4, 16, 0.5)
    assert "4/4" in err.getvalue()
