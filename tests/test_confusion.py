"""Per-class accuracy and the confusion matrix: counts against hand-computed ones, the text
report, the PNG, `alexnet-cpu evaluate` against our own forward pass, and the matrix a
training run writes beside its curves."""
import os

import numpy as np
import pytest
from PIL import Image

from alexnet_cpu import confusion
from alexnet_cpu.checkpoint import save
from alexnet_cpu.infer import Predictor, find_images
from alexnet_cpu.synthetic import make_dataset
from alexnet_cpu.train import TrainConfig, fit
from tiny import run_cli, tiny_alexnet, use_in_cli




def test_counts_against_hand_computed():
    labels = [0, 0, 1, 2, 2, 2, 2]
    predicted = [0, 1, 1, 2, 0, 2, 1]
    counts = confusion.confusion_matrix(labels, predicted, 4)
    np.testing.assert_array_equal(counts, [[1, 1, 0, 0],
                                           [0, 1, 0, 0],
                                           [1, 1, 2, 0],
                                           [0, 0, 0, 0]])
    acc = confusion.per_class_accuracy(counts)
    np.testing.assert_allclose(acc[:3], [0.5, 1.0, 0.5])
    assert np.isnan(acc[3])                              # no images of class 3


def test_report_lines():
    counts = np.array([[5, 1, 0], [0, 4, 2], [3, 0, 3]])
    lines = confusion.report_lines(counts, ["ant", "bee", "cat"])
    assert lines[0] == "per-class accuracy (18 images, top-1 0.667):"
    assert lines[1].split() == ["ant", "0.833", "(6", "images)"]
    assert lines[-3].split() == ["bee", "0", "4", "2"]
    assert lines[-1] == "most confused: cat -> ant 3, bee -> cat 2, ant -> bee 1"


@pytest.mark.parametrize("k", [3, 10, 120])
def test_draws_any_number_of_classes(tmp_path, k):
    counts = np.random.default_rng(0).integers(0, 9, (k, k))
    path = tmp_path / "m.confusion.png"
    confusion.draw_confusion(counts, [f"class {i}" for i in range(k)], str(path))
    with Image.open(path) as im:
        assert im.mode == "RGB" and min(im.size) > 100


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A saved narrow owt net (tests/tiny.py) and its data; the tests load it through
    tiny.use_in_cli (here) and tiny.run_cli (the CLI)."""
    d = tmp_path_factory.mktemp("evaluate")
    make_dataset(str(d / "data"), num_classes=3, train_per_class=2, val_per_class=5,
                 image_size=48, seed=2)
    classes = sorted(os.listdir(d / "data" / "val"))
    net = tiny_alexnet(3, seed=5)
    path = d / "m.safetensors"
    save(str(path), net, classes=classes, input_size=63,
         preprocess={"mean": [120.0, 110.0, 100.0], "std": [60.0, 60.0, 60.0]})
    return d, path, classes


def test_evaluate_cli_matches_our_forward(model, monkeypatch):
    d, path, classes = model
    use_in_cli(monkeypatch.setattr)
    r = run_cli("evaluate", "-load", str(path), "-data", str(d / "data"))
    assert r.returncode == 0, r.stderr
    # the expected counts from Predictor's top-1, image by image
    predictor = Predictor(str(path))
    images = find_images(str(d / "data" / "val"))
    expected = np.zeros((3, 3), np.int64)
    for image, result in predictor.predict(images, topk=1):
        expected[classes.index(os.path.basename(os.path.dirname(image))),
                 classes.index(result[0][0])] += 1
    rows = [line.split() for line in r.stdout.splitlines()]
    printed = [list(map(int, row[1:])) for row in rows if row and row[0] in classes
               and len(row) == 4 and "images)" not in row]
    np.testing.assert_array_equal(printed, expected)
    assert f"top-1 {np.trace(expected) / 15:.3f}" in r.stdout
    assert (d / "m.confusion.png").exists()


def test_evaluate_cli_errors_are_one_line(model, tmp_path):
    d, path, classes = model
    (tmp_path / "horse").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "horse" / "1.png")
    for args, message in ((["-data", str(tmp_path)], "class folders not in the given classes"),
                          (["-data", str(tmp_path / "none")], "no such folder")):
        r = run_cli("evaluate", "-load", str(path), *args)
        assert r.returncode != 0 and message in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_training_writes_the_matrix_beside_the_curves(tmp_path, capsys):
    make_dataset(str(tmp_path / "data"), num_classes=3, train_per_class=6, val_per_class=3,
                 image_size=48, seed=0)
    fit(TrainConfig(train_dir=str(tmp_path / "data"), save=str(tmp_path / "run.safetensors"),
                    variant="owt", size=63, batch_size=6, epochs=1, schedule="constant",
                    workers=0), model=tiny_alexnet)
    assert (tmp_path / "run.png").exists() and (tmp_path / "run.confusion.png").exists()
    out = capsys.readouterr().out
    assert "per-class accuracy (9 images" in out and "confusion matrix: " in out
