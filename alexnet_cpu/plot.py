"""Training curves as a PNG drawn with Pillow (no plotting library at run time): loss and
accuracy by epoch, a light grid, the learning-rate drops and the best epoch marked."""
import math

from PIL import Image, ImageDraw

from .draw import GRID, INK, MUTED, font, text_size

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]
DROP, BEST = (150, 150, 150), (214, 39, 40)


def nice_ticks(lo, hi, n=5):
    """About n round values (1, 2, 2.5 or 5 times a power of ten) covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9)
    return [round(k * step, 12) for k in range(first, int(math.floor(hi / step + 1e-9)) + 1)]


def lr_drops(history):
    """[(epoch, previous lr, new lr)] where the learning rate fell below the previous
    epoch's."""
    return [(b["epoch"], a["lr"], b["lr"]) for a, b in zip(history, history[1:])
            if a.get("lr") and b.get("lr") and b["lr"] < a["lr"] * (1 - 1e-6)]


def best_epoch(history):
    """The trainer's best epoch: highest validation top-1, then lowest loss (None without
    validation figures)."""
    rows = [h for h in history if h.get("val_top1") is not None and math.isfinite(h["val_top1"])]
    if not rows:
        return None
    return max(rows, key=lambda h: (h["val_top1"], -h["val_loss"]))


def _panel(img, box, title, series, xs, history, percent=False):
    """Named y-series against the epochs xs inside box = (x0, y0, x1, y1)."""
    d = ImageDraw.Draw(img)
    x0, y0, x1, y1 = box
    label, small = font(13), font(12)
    d.text((x0, y0 - 30), title, font=font(16), fill=INK)
    values = [v for _, ys in series for v in ys if v is not None and math.isfinite(v)]
    if not values or not xs:
        d.rectangle(box, outline=MUTED)
        return
    lo, hi = (0.0, 1.0) if percent else (min(values), max(values))
    if not percent:
        lo, hi = (lo - 0.5, hi + 0.5) if hi - lo < 1e-12 else (lo - 0.05 * (hi - lo), hi)
    xmin, xmax = min(xs) - 0.5, max(xs) + 0.5

    def px(x):
        return x0 + (x - xmin) / (xmax - xmin) * (x1 - x0)

    def py(y):
        return y1 - (y - lo) / (hi - lo) * (y1 - y0)

    for t in nice_ticks(lo, hi):
        d.line((x0, py(t), x1, py(t)), fill=GRID)
        s = f"{t:.0%}" if percent else f"{t:g}"
        d.text((x0 - text_size(s, small)[0] - 6, py(t) - 8), s, font=small, fill=MUTED)
    for t in nice_ticks(min(xs), max(xs), 8):
        if t == int(t):
            d.line((px(t), y0, px(t), y1), fill=GRID)
            s = f"{int(t)}"
            d.text((px(t) - text_size(s, small)[0] / 2, y1 + 6), s, font=small, fill=MUTED)
    d.text(((x0 + x1) / 2 - 18, y1 + 24), "epoch", font=label, fill=MUTED)
    for epoch, old, lr in lr_drops(history):              # between the last epoch at the old rate
        x = px(epoch - 0.5)                         # and the first at the new one
        for y in range(int(y0), int(y1), 8):
            d.line((x, y, x, min(y + 4, y1)), fill=DROP, width=2)
        d.text((x + 4, y0 + 4), f"lr {old:g} -> {lr:g}", font=small, fill=MUTED)
    best = best_epoch(history)
    if best is not None:
        d.line((px(best["epoch"]), y0, px(best["epoch"]), y1), fill=(240, 180, 180), width=2)
    d.rectangle(box, outline=MUTED)
    for i, (name, ys) in enumerate(series):
        c = COLOURS[i % len(COLOURS)]
        pts = [(px(x), py(y)) for x, y in zip(xs, ys) if y is not None and math.isfinite(y)]
        if len(pts) > 1:
            d.line(pts, fill=c, width=3, joint="curve")
        for p in pts:
            d.ellipse((p[0] - 3, p[1] - 3, p[0] + 3, p[1] + 3), fill=c)
    # legend: one row under the axis label
    x = x0
    for i, (name, _) in enumerate(series):
        c = COLOURS[i % len(COLOURS)]
        d.line((x, y1 + 56, x + 18, y1 + 56), fill=c, width=3)
        d.text((x + 24, y1 + 48), name, font=label, fill=INK)
        x += 24 + text_size(name, label)[0] + 22
    return px, py


def plot_history(history, path):
    """history: list of per-epoch dicts with epoch, train_loss, val_loss, train_acc,
    val_top1, val_topk, k and lr. Writes a two-panel PNG: losses and accuracies."""
    img = Image.new("RGB", (1100, 470), "white")
    xs = [h["epoch"] for h in history]
    get = lambda k: [h.get(k) for h in history]  # noqa: E731
    k = history[-1].get("k", 5) if history else 5
    _panel(img, (70, 50, 520, 370), "loss",
           [("train", get("train_loss")), ("validation", get("val_loss"))], xs, history)
    marks = _panel(img, (630, 50, 1080, 370), "accuracy",
                   [("train", get("train_acc")), ("val top-1", get("val_top1")),
                    (f"val top-{k}", [h.get("val_topk", h.get("val_top5")) for h in history])],
                   xs, history, percent=True)
    best = best_epoch(history)
    if best is not None and marks:
        px, py = marks
        d = ImageDraw.Draw(img)
        x, y = px(best["epoch"]), py(best["val_top1"])
        d.ellipse((x - 7, y - 7, x + 7, y + 7), outline=BEST, width=3)
        s = f"best: epoch {best['epoch']}, top-1 {best['val_top1']:.1%}"
        w, h = text_size(s, font(13))
        tx = min(max(x - w / 2, 636), 1074 - w)
        ty = y + 14 if y < 300 else y - 32
        d.rectangle((tx - 4, ty - 2, tx + w + 4, ty + h + 6), fill="white", outline=BEST)
        d.text((tx, ty), s, font=font(13), fill=BEST)
    img.save(path)
