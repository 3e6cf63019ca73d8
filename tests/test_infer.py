"""Folder inference (infer.Predictor, the `inference` command): results in input order
whatever the batch size and decoding threads, unreadable files skipped, named and counted,
ten crops, a clean stdout with the progress line on stderr."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from PIL import Image

import alexnet_cpu as ac
from alexnet_cpu.data import ImageError, base_size, center_crop, load_image, prefetched, ten_crop
from alexnet_cpu import infer
from alexnet_cpu.infer import Predictor, find_images
from alexnet_cpu.loss import softmax
from alexnet_cpu.progress import StatusLine

SIZE = 63
MEAN, STD = [110.0, 120.0, 130.0], [50.0, 60.0, 70.0]
BAD = ("b_corrupt.jpg", "e_empty.png")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("infer")
    path = d / "m.safetensors"
    ac.save(str(path), ac.alexnet("owt", num_classes=4, seed=3), classes=["w", "x", "y", "z"],
            input_size=SIZE, preprocess={"mean": MEAN, "std": STD})
    return path


@pytest.fixture(scope="module")
def predictor(model):
    """One loaded model for the tests in this process (reading it is the slow part)."""
    return Predictor(str(model))


@pytest.fixture
def pred(predictor):
    predictor.tencrop, predictor.skipped = False, 0
    return predictor


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """11 images (two in a sub-folder) of assorted sizes and kinds, plus two unreadable."""
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    (root / "sub").mkdir()
    names = ["a0.jpg", "a1.png", "c2.jpg", "d3.jpeg", "f4.png", "g5.jpg", "h6.jpg",
             "i7.png", "j8.jpg", "sub/k9.jpg", "sub/l10.png"]
    for k, name in enumerate(names):
        h, w = 60 + 7 * k, 90 - 3 * k
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / name)
    (root / BAD[0]).write_bytes(b"\xff\xd8\xff not a jpeg")
    (root / BAD[1]).write_bytes(b"")
    (root / "notes.txt").write_text("not an image")
    return root


def _expected(net, path, tencrop=False):
    """Probabilities of one image on its own: decode, crop(s), forward, softmax, mean."""
    img = load_image(path, base_size(SIZE))
    mean, std = np.float32(MEAN), np.float32(STD)
    x = ten_crop(img, SIZE, mean, std) if tencrop else center_crop(img, SIZE, mean, std)[None]
    return softmax(net.forward(x)).mean(axis=0)


@pytest.mark.parametrize("tencrop", [False, True])
def test_order_skips_and_values_for_any_batch(pred, folder, tencrop):
    paths = find_images(str(folder))
    assert len(paths) == 13 and not any(p.endswith(".txt") for p in paths)
    pred.tencrop = tencrop
    want = {p: _expected(pred.net, p, tencrop) for p in paths if not p.endswith(BAD)}
    runs = [(1, 0, 2), (3, 2, 2), (4, 1, 1), (5, 2, 0), (13, 2, 2), (100, 2, 2)]
    for batch, workers, ahead in runs:    # batches of 2-5 and 100 do not divide 13
        got = list(pred.predict(paths, topk=4, batch_size=batch, workers=workers,
                                prefetch=ahead))
        assert [p for p, _ in got] == paths, (batch, workers, ahead)
        for path, result in got:
            if path.endswith(BAD):
                assert isinstance(result, ImageError) and path in str(result)
                continue
            assert [c for c, _ in result] == [pred.classes[i] for i in
                                              np.argsort(-want[path], kind="stable")]
            np.testing.assert_allclose([p for _, p in result], np.sort(want[path])[::-1],
                                       rtol=1e-5, atol=1e-7)
    assert pred.skipped == 2 * len(runs)


def test_default_workers_share_the_cores_with_the_kernels(monkeypatch):
    monkeypatch.setattr(infer, "_cores", lambda: 8)
    monkeypatch.setattr(infer._threads, "get_num_threads", lambda: 8)
    assert infer.default_workers() == 8
    monkeypatch.setattr(infer._threads, "get_num_threads", lambda: 6)
    assert infer.default_workers() == 2


def test_default_batch_counts_network_inputs(pred):
    assert pred.default_batch() == 128
    pred.tencrop = True
    assert pred.default_batch() == 12


def test_topk_is_capped_and_empty_batches_pass(pred, folder):
    bad = [str(folder / b) for b in BAD]
    good = str(folder / "a0.jpg")
    got = list(pred.predict(bad + [good], topk=9, batch_size=2))
    assert [p for p, _ in got] == bad + [good]
    assert len(got[2][1]) == 4


def test_stopping_early_joins_the_decoding_threads(pred, folder):
    paths = find_images(str(folder))
    results = pred.predict(paths, batch_size=2, workers=2, prefetch=3)
    next(results)
    assert any(t.name.startswith("alexnet-cpu-loader") for t in threading.enumerate())
    results.close()
    assert not any(t.name.startswith("alexnet-cpu-loader") for t in threading.enumerate())
    with pytest.raises(ValueError, match="batch_size"):
        next(pred.predict(paths, batch_size=0))


def test_prefetched_same_batches_for_any_workers():
    def fill(i, out):
        if i % 4 == 3:
            return ValueError(f"row {i}")
        out[:] = i
        return None

    batches = [range(s, min(s + 3, 10)) for s in range(0, 10, 3)]
    new = lambda idx: np.zeros((len(idx), 2))  # noqa: E731
    runs = [list(prefetched(batches, fill, new, workers=w, prefetch=p)) for w, p in
            ((0, 1), (1, 1), (3, 2), (2, 0))]
    for run in runs:
        assert [list(idx) for idx, _, _ in run] == [list(b) for b in batches]
        for idx, x, errors in run:
            for k, i in enumerate(idx):
                assert (errors[k] is None) == (i % 4 != 3)
                if errors[k] is None:
                    assert (x[k] == i).all()
    with pytest.raises(ValueError, match="prefetch"):
        next(prefetched(batches, fill, new, workers=1, prefetch=-1))


def test_prefetched_idle_workers_leave_unstarted_rows_to_the_caller():
    started, gate, who, policy = threading.Event(), threading.Event(), {}, {}

    def fill(i, out):
        if i == 0:           # the one worker: busy on row 0 until the caller reaches row 1
            started.set()
            gate.wait(5)
        if i == 3:           # the caller's first row: only once the worker holds row 0
            started.wait(5)
        if i == 1:
            gate.set()
        who[i] = threading.current_thread() is threading.main_thread()
        if hasattr(os, "SCHED_IDLE"):
            policy[i] = os.sched_getscheduler(0)
        out[:] = i
        return None

    new = lambda idx: np.zeros((len(idx), 2))  # noqa: E731
    (idx, x, errors), = prefetched([range(4)], fill, new, workers=1, prefetch=1, idle=True)
    assert list(idx) == [0, 1, 2, 3] and errors == [None] * 4
    assert (x == np.arange(4)[:, None]).all()
    assert who == {0: False, 1: True, 2: True, 3: True}
    if hasattr(os, "SCHED_IDLE"):
        assert policy[0] == os.SCHED_IDLE and policy[3] != os.SCHED_IDLE
    who.clear()
    gate.set()
    list(prefetched([range(4)], fill, new, workers=1, prefetch=1))
    assert not any(who.values())   # idle=False: the caller waits for the workers


def test_input_buffers_reused_by_the_next_call_never_shared(pred, folder):
    paths = find_images(str(folder))
    want = dict(pred.predict(paths, topk=4, batch_size=4))
    ring = pred._inputs
    assert [p for p, _ in pred.predict(paths, topk=4, batch_size=3)] == paths
    assert pred._inputs is ring    # fewer rows: the same buffers
    a = pred.predict(paths, topk=4, batch_size=4)
    b = pred.predict(paths[::-1], topk=4, batch_size=4)
    got_a, got_b = [next(a)], [next(b)]
    mine = lambda gen: gen.gi_frame.f_locals["ring"]  # noqa: E731
    assert mine(a) is ring and mine(b) is not ring   # both alive: each its own buffers
    for ra, rb in zip(a, b):
        got_a.append(ra)
        got_b.append(rb)
    for got in (got_a, got_b):
        for path, result in got:
            if path.endswith(BAD):
                assert isinstance(result, ImageError)
                continue
            assert [c for c, _ in result] == [c for c, _ in want[path]]
            np.testing.assert_allclose([q for _, q in result], [q for _, q in want[path]],
                                       rtol=1e-5, atol=1e-7)


def run(*args):
    return subprocess.run([sys.executable, "-m", "alexnet_cpu.cli", "inference", *args],
                          capture_output=True, text=True, timeout=600)


def test_cli_folder_stdout_results_only_progress_on_stderr(model, folder):
    paths = find_images(str(folder))
    r = run("-input", str(folder), "-load", str(model), "-topk", "2", "-batchsize", "4",
            "-workers", "2", "-tencrop")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [p for p in paths
                                                          if not p.endswith(BAD)]
    assert all(len(line.split(": ", 1)[1].split()) == 4 for line in lines)
    err = r.stderr.splitlines()
    assert [e.split(": skipped", 1)[0] for e in err if ": skipped" in e] == \
        [str(folder / b) for b in BAD]
    assert "classified 11 of 13 images in" in r.stderr and "img/s" in r.stderr
    assert "skipped 2 unreadable image(s)" in r.stderr
    q = run("-input", str(folder), "-load", str(model), "-topk", "2", "-quiet")
    assert q.returncode == 0, q.stderr
    assert "img/s" not in q.stderr and "skipped 2 unreadable" in q.stderr
    assert [line.split()[0] for line in q.stdout.splitlines()] == \
        [line.split()[0] for line in lines]


def test_cli_single_file_prints_no_progress(model, folder):
    r = run("-input", str(folder / "a0.jpg"), "-load", str(model))
    assert r.returncode == 0 and r.stderr == "" and len(r.stdout.splitlines()) == 1
    r = run("-input", str(folder), "-load", str(model), "-workers", "-1")
    assert r.returncode != 0 and "-workers must be >= 0" in r.stderr


class _Tty:
    def __init__(self):
        self.text = ""

    def isatty(self):
        return True

    def write(self, s):
        self.text += s

    def flush(self):
        pass


def test_status_line_on_a_terminal():
    out = _Tty()
    s = StatusLine(10, stream=out)
    s.last = -1.0            # due now
    s.update(4)
    assert out.text.startswith("\r4/10 img") and "img/s" in out.text and "ETA" in out.text
    s.message("x.jpg: skipped")
    assert "\rx.jpg: skipped\n4/10" in out.text
    s.close("done")
    assert out.text.endswith("\rdone\n")
    quiet = _Tty()
    s = StatusLine(10, stream=quiet, enabled=False)
    s.update(5)
    s.close("done")
    assert quiet.text == ""
