"""Training curves as a PNG drawn with Pillow (no plotting library at run time)."""
from PIL import Image, ImageDraw

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]


def _panel(draw, box, title, series, xs):
    """Draw named y-series against xs inside box = (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    draw.rectangle(box, outline=(0, 0, 0))
    draw.text((x0 + 4, y0 - 14), title, fill=(0, 0, 0))
    values = [v for _, ys in series for v in ys if v is not None]
    if not values or not xs:
        return
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    xmin, xmax = min(xs), max(max(xs), min(xs) + 1)
    draw.text((x0 - 46, y0), f"{hi:.3g}", fill=(0, 0, 0))
    draw.text((x0 - 46, y1 - 10), f"{lo:.3g}", fill=(0, 0, 0))
    draw.text((x1 - 30, y1 + 4), f"ep {xmax:g}", fill=(0, 0, 0))

    def pt(x, y):
        return (x0 + (x - xmin) / (xmax - xmin) * (x1 - x0),
                y1 - (y - lo) / (hi - lo) * (y1 - y0))

    for i, (name, ys) in enumerate(series):
        c = COLOURS[i % len(COLOURS)]
        pts = [pt(x, y) for x, y in zip(xs, ys) if y is not None]
        if len(pts) > 1:
            draw.line(pts, fill=c, width=2)
        for p in pts:
            draw.ellipse((p[0] - 2, p[1] - 2, p[0] + 2, p[1] + 2), fill=c)
        draw.text((x0 + 110 * i, y1 + 18), name, fill=c)   # legend below the panel


def plot_history(history, path):
    """history: list of per-epoch dicts with epoch, train_loss, val_loss, train_acc,
    val_top1, val_topk and k. Writes a two-panel PNG: losses and accuracies."""
    img = Image.new("RGB", (900, 400), "white")
    draw = ImageDraw.Draw(img)
    xs = [h["epoch"] for h in history]
    get = lambda k: [h.get(k) for h in history]  # noqa: E731
    _panel(draw, (60, 30, 430, 340), "loss",
           [("train loss", get("train_loss")), ("val loss", get("val_loss"))], xs)
    _panel(draw, (510, 30, 880, 340), "accuracy",
           [("train acc", get("train_acc")), ("val top-1", get("val_top1")),
            (f"val top-{history[-1].get('k', 5) if history else 5}",
             [h.get("val_topk", h.get("val_top5")) for h in history])], xs)
    img.save(path)
