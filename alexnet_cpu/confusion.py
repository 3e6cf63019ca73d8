"""Per-class accuracy and the confusion matrix of a model on labelled images: counted,
printed as text and drawn as a PNG. Rows are the true classes, columns the predicted ones."""
import math

import numpy as np
from PIL import Image, ImageDraw

from .draw import INK, MUTED, blues, font, text_rotated, text_size
from .loss import softmax

PRINT_MATRIX_UP_TO = 20   # classes; beyond that the matrix is too wide for a terminal


def confusion_matrix(labels, predicted, num_classes):
    """counts[t, p]: how many images of class t were predicted as p (int64)."""
    idx = np.asarray(labels, np.int64) * num_classes + np.asarray(predicted, np.int64)
    return np.bincount(idx, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def per_class_accuracy(counts):
    """Share of each true class predicted right (nan for a class without images)."""
    n = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.diag(counts) / np.maximum(n, 1), np.nan)


def predict(net, loader, tencrop=False):
    """(labels, top-1 predictions, summed loss) over a loader's (x, y) batches, in eval
    mode (restored after). With tencrop the ten crops' probabilities are averaged."""
    was_training = net.training
    net.eval()
    labels, preds, loss = [], [], 0.0
    for x, y in loader:
        b = len(y)
        p = softmax(net.forward(x.reshape((-1,) + x.shape[-3:]))).reshape(b, -1, net.num_classes)
        p = p.mean(axis=1)
        loss -= float(np.log(np.maximum(p[np.arange(b), y], 1e-30)).sum())
        labels.append(y)
        preds.append(p.argmax(axis=1))
    net.train(was_training)
    if not labels:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), 0.0
    return np.concatenate(labels), np.concatenate(preds), loss


def report_lines(counts, classes, top_pairs=5):
    """The text report: per-class accuracy (and image counts), the matrix itself when it
    fits a terminal, the most frequent confusions."""
    acc, n = per_class_accuracy(counts), counts.sum(axis=1)
    total = int(counts.sum())
    right = int(np.trace(counts))
    w = max(8, *(len(c) for c in classes))
    lines = [f"per-class accuracy ({total} images, top-1 {right / max(total, 1):.3f}):"]
    lines += [f"  {c:<{w}} {a:6.3f}  ({int(k)} images)" if k else f"  {c:<{w}}      -  (none)"
              for c, a, k in zip(classes, acc, n)]
    if len(classes) <= PRINT_MATRIX_UP_TO:
        short = [c[:6] for c in classes]
        lines.append("confusion matrix (rows: true class, columns: predicted):")
        lines.append(f"  {'':<{w}} " + " ".join(f"{s:>6}" for s in short))
        lines += [f"  {c:<{w}} " + " ".join(f"{int(v):>6}" for v in row)
                  for c, row in zip(classes, counts)]
    off = counts - np.diag(np.diag(counts))
    pairs = [(int(off[t, p]), t, p) for t, p in zip(*np.nonzero(off))]
    pairs.sort(key=lambda e: (-e[0], e[1], e[2]))
    if pairs:
        lines.append("most confused: " + ", ".join(
            f"{classes[t]} -> {classes[p]} {k}" for k, t, p in pairs[:top_pairs]))
    return lines


def draw_confusion(counts, classes, path, title="confusion matrix"):
    """A PNG: cells shaded by the share of the true class (row), counts written in them
    when they fit, per-class accuracy in a column on the right."""
    k = len(classes)
    cell = max(4, min(44, 900 // k))
    label_font, cell_font = font(13 if cell >= 20 else 10), font(max(9, min(14, cell // 3)))
    show = [c if text_size(c, label_font)[0] <= 150 else c[:18] + "…" for c in classes]
    label_w = max(text_size(c, label_font)[0] for c in show) + 12 if cell >= 12 else 0
    x0, y0 = 24 + label_w, 60 + label_w
    acc_w = 70
    img = Image.new("RGB", (x0 + k * cell + acc_w + 16, y0 + k * cell + 40), "white")
    d = ImageDraw.Draw(img)
    d.text((16, 10), title, font=font(18), fill=INK)
    d.text((16, 34), "rows: true class   columns: predicted   shade: share of the row",
           font=font(12), fill=MUTED)
    rows = counts.sum(axis=1, keepdims=True)
    share = counts / np.maximum(rows, 1)
    colours = blues(share)
    for t in range(k):
        for p in range(k):
            box = (x0 + p * cell, y0 + t * cell, x0 + (p + 1) * cell - 1, y0 + (t + 1) * cell - 1)
            d.rectangle(box, fill=tuple(int(v) for v in colours[t, p]))
            if cell >= 20 and counts[t, p]:
                s = str(int(counts[t, p]))
                tw, th = text_size(s, cell_font)
                d.text((box[0] + (cell - tw) / 2, box[1] + (cell - th) / 2 - 2), s,
                       font=cell_font, fill="white" if share[t, p] > 0.5 else INK)
    # the diagonal framed: right answers at a glance
    for i in range(k):
        d.rectangle((x0 + i * cell, y0 + i * cell, x0 + (i + 1) * cell - 1,
                     y0 + (i + 1) * cell - 1), outline=(200, 80, 20), width=max(1, cell // 20))
    if label_w:
        for i, c in enumerate(show):
            tw, th = text_size(c, label_font)
            d.text((x0 - tw - 8, y0 + i * cell + (cell - th) / 2 - 2), c, font=label_font,
                   fill=INK)
            text_rotated(img, (x0 + i * cell + (cell - th) // 2 - 2, y0 - tw - 10), c,
                         label_font)
    acc = per_class_accuracy(counts)
    ax = x0 + k * cell + 10
    d.text((ax, y0 - 20), "accuracy", font=font(12), fill=MUTED)
    if cell >= 12:
        for i, a in enumerate(acc):
            s = "-" if math.isnan(a) else f"{a:.2f}"
            th = text_size(s, label_font)[1]
            d.text((ax, y0 + i * cell + (cell - th) / 2 - 2), s, font=label_font, fill=INK)
    total = int(counts.sum())
    d.text((x0, y0 + k * cell + 12), f"{total} images, top-1 "
           f"{np.trace(counts) / max(total, 1):.3f}", font=font(13), fill=MUTED)
    img.save(path)


def class_report(net, loader, classes, path, say=print, tencrop=False, world=None,
                 title="confusion matrix"):
    """Predict the loader's images, print the report, draw the matrix to `path`. Under MPI
    (world) each rank counts its shard and the counts are summed; rank 0 prints and draws.
    Returns (counts, summed loss)."""
    labels, preds, loss = predict(net, loader, tencrop)
    counts = confusion_matrix(labels, preds, len(classes))
    if world is not None and world.size > 1:
        total = world.allreduce(np.append(counts.ravel(), loss))
        counts, loss = np.rint(total[:-1]).astype(np.int64).reshape(counts.shape), total[-1]
        if not world.is_root:
            return counts, loss
    for line in report_lines(counts, classes):
        say(line)
    draw_confusion(counts, classes, path, title)
    say(f"confusion matrix: {path}")
    return counts, loss
