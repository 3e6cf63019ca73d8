"""The training curves: ticks, the learning-rate drops and the best epoch they mark, the PNG."""
from PIL import Image

from alexnet_cpu import plot


def history(lrs, top1, loss):
    return [{"epoch": i + 1, "lr": lr, "val_top1": t, "val_loss": v, "train_loss": v + 0.1,
             "train_acc": t, "val_topk": 1.0, "k": 5} for i, (lr, t, v) in
            enumerate(zip(lrs, top1, loss))]


def test_nice_ticks():
    assert plot.nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert plot.nice_ticks(0.43, 2.2) == [0.5, 1.0, 1.5, 2.0]
    assert plot.nice_ticks(1, 13, 8) == [2, 4, 6, 8, 10, 12]
    assert plot.nice_ticks(3, 3) == [3]


def test_drops_and_best_epoch():
    h = history([0.01, 0.01, 0.001, 0.001, 0.0001], [0.2, 0.5, 0.7, 0.7, 0.69],
                [2.0, 1.5, 1.0, 0.9, 0.95])
    assert plot.lr_drops(h) == [(3, 0.01, 0.001), (5, 0.001, 0.0001)]
    assert plot.best_epoch(h)["epoch"] == 4          # top-1 tie: the lower loss wins
    warmup = history([0.005, 0.01, 0.01], [0.1, 0.2, 0.3], [2, 2, 2])
    assert plot.lr_drops(warmup) == [] and plot.best_epoch(warmup)["epoch"] == 3
    assert plot.best_epoch(history([0.1], [float("nan")], [1.0])) is None


def test_png(tmp_path):
    for h in (history([0.01] * 4 + [0.001] * 3, [0.1, 0.3, 0.5, 0.6, 0.7, 0.72, 0.71],
                      [2, 1.5, 1.2, 1.0, 0.8, 0.75, 0.76]),
              history([0.01], [float("nan")], [float("nan")]), []):
        plot.plot_history(h, str(tmp_path / "c.png"))
        with Image.open(tmp_path / "c.png") as im:
            assert im.size == (1100, 470)
