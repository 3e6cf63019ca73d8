"""Grad-CAM (Selvaraju et al., 2017): where in the image the evidence for a class lies.

For the feature maps A (C, h, w) of a convolutional layer and the class score y_c (its
logit), the map is ReLU(sum_k alpha_k A_k) with alpha_k = mean over h, w of dy_c / dA_k;
it is upsampled to the input crop and drawn over it. Layers are named conv1..conv5 (the
rectified output of the n-th convolution) or by their name in the net ("features.10").
"""
import os
import re

import numpy as np
from PIL import Image, ImageDraw

from .data import base_size, center_crop, load_image
from .draw import INK, MUTED, font, heat_colours
from .layers import Conv2d, ReLU
from .loss import softmax

DISPLAY = 256   # smallest side the input is shown at: a 64 px crop is too small to read


def conv_layers(net):
    """{"conv1": name, ...}: the n-th convolution's output after its ReLU."""
    found, layers = {}, net.layers
    for i, (name, layer) in enumerate(layers):
        if isinstance(layer, Conv2d):
            after = i + 1 < len(layers) and isinstance(layers[i + 1][1], ReLU)
            found[f"conv{len(found) + 1}"] = layers[i + 1][0] if after else name
    return found


def resolve_layer(net, layer):
    """The net's name of `layer` (conv1..conv5 or a layer name with a 4-D output)."""
    aliases = conv_layers(net)
    name = aliases.get(layer, layer)
    names = [n for n, _ in net.layers]
    if name not in names:
        raise ValueError(f"-layer {layer}: the model has no such layer (choose "
                         f"{', '.join(aliases)} or one of {names[0]} .. {names[-1]})")
    if len(net.summary(63)[names.index(name)][2]) != 3:
        raise ValueError(f"-layer {layer}: {name} is not a convolutional feature map "
                         f"(choose {', '.join(aliases)})")
    return name


def grad_cam(net, x, layer="conv5", target=None):
    """Grad-CAM maps for a normalised float32 batch x (N, C, H, W).

    target: the class index per image (an int or N ints), default each image's top-1.
    Returns (cams (N, h, w) float64 >= 0 at the layer's resolution, probabilities (N, K),
    targets (N,)). The net is put in eval mode (no dropout)."""
    net.eval()
    name = resolve_layer(net, layer)
    seen = {}

    def dlogits(logits):
        seen["logits"] = logits.copy()
        t = logits.argmax(axis=1) if target is None else np.broadcast_to(
            np.asarray(target, np.int64), (len(logits),))
        seen["target"] = np.asarray(t)
        d = np.zeros_like(logits)
        d[np.arange(len(d)), t] = 1.0      # d y_c / d logits
        return d

    a, g = net.gradient_at(x, name, dlogits)
    alpha = g.astype(np.float64).mean(axis=(2, 3))                 # (N, C)
    cams = np.maximum(np.einsum("nc,nchw->nhw", alpha, a.astype(np.float64)), 0.0)
    return cams, softmax(seen["logits"]), seen["target"]


def upsample(cam, size):
    """A map (h, w) -> (size, size) float32 in [0, 1]: bilinear, then scaled from its
    minimum to its maximum (a flat map: all 0), so the strongest evidence always shows."""
    m = np.asarray(Image.fromarray(cam.astype(np.float32), "F").resize(
        (size, size), Image.BILINEAR), np.float64)
    lo, hi = m.min(), m.max()
    return ((m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)).astype(np.float32)


def overlay(crop, cam, title, subtitle):
    """The picture: the input crop (uint8 (S, S, 3)) beside it with the heat on top, a
    title and a subtitle above, a colour scale below."""
    s = max(DISPLAY, crop.shape[0])
    img = Image.fromarray(crop).resize((s, s), Image.LANCZOS)
    heat = upsample(cam, s)[..., None]
    # The heat over a grey, lightened copy: colours of the image cannot pass for heat, and
    # the heat's opacity follows its strength, so cold parts show the plain (grey) image.
    grey = np.asarray(img.convert("L"), np.float32)[..., None] * 0.6 + 90
    alpha = 0.15 + 0.75 * heat
    mixed = grey * (1 - alpha) + heat_colours(heat[..., 0]).astype(np.float32) * alpha
    pad, gap, top, bottom = 10, 8, 58, 40
    out = Image.new("RGB", (2 * s + gap + 2 * pad, top + s + bottom), "white")
    out.paste(img, (pad, top))
    out.paste(Image.fromarray(np.rint(mixed).astype(np.uint8)), (pad + s + gap, top))
    d = ImageDraw.Draw(out)
    d.text((pad, 8), title, font=font(20), fill=INK)
    d.text((pad, 34), subtitle, font=font(13), fill=MUTED)
    y, small = top + s + 8, font(12)
    d.text((pad, y), "input, as the model sees it", font=small, fill=MUTED)
    x, w = pad + s + gap + 34, s - 68
    out.paste(Image.fromarray(heat_colours(np.linspace(0, 1, w)[None].repeat(10, 0))),
              (x, y + 2))
    d.text((pad + s + gap, y), "low", font=small, fill=MUTED)
    d.text((x + w + 6, y), "high", font=small, fill=MUTED)
    d.text((pad + s + gap, y + 18), "class evidence (Grad-CAM)", font=small, fill=MUTED)
    return out


def class_index(classes, name):
    """The index of class `name` (or a number) in the model's classes."""
    if name in classes:
        return classes.index(name)
    if re.fullmatch(r"\d+", name) and int(name) < len(classes):
        return int(name)
    shown = ", ".join(classes[:10]) + (" ..." if len(classes) > 10 else "")
    raise ValueError(f"-class {name}: not a class of the model ({shown})")


def output_name(path, root, cls, p):
    """circle/00001.png -> circle_00001.gradcam.<class>-<p>.png (flat, unique per input)."""
    rel = os.path.relpath(path, root) if root else os.path.basename(path)
    stem, cls = (re.sub(r"[^\w.-]+", "_", s) for s in (os.path.splitext(rel)[0], cls))
    return f"{stem}.gradcam.{cls}-{p:.2f}.png"


def explain_files(predictor, paths, out_dir, layer="conv5", target=None, root=None,
                  batch_size=16):
    """Write a Grad-CAM picture per image into out_dir; yield (path, output file, class,
    probability) or (path, error) for an unreadable image."""
    net, size = predictor.net, predictor.size
    name = resolve_layer(net, layer)
    os.makedirs(out_dir, exist_ok=True)
    for start in range(0, len(paths), batch_size):
        crops, xs, ok = [], [], []
        for path in paths[start:start + batch_size]:
            try:
                img = load_image(path, base_size(size))
            except ValueError as e:
                yield path, e
                continue
            crops.append(center_crop(img, size).transpose(1, 2, 0).astype(np.uint8))
            xs.append(center_crop(img, size, predictor.mean, predictor.std))
            ok.append(path)
        if not ok:
            continue
        cams, probs, targets = grad_cam(net, np.stack(xs), name, target)
        for path, crop, cam, p, t in zip(ok, crops, cams, probs, targets):
            cls, top = predictor.classes[t], np.argsort(-p)[:3]
            ranked = "   ".join(f"{predictor.classes[i]} {p[i]:.2f}" for i in top)
            title = f"{cls}  {p[t]:.1%}" + ("" if t == top[0] else "  (asked for)")
            file = os.path.join(out_dir, output_name(path, root, cls, p[t]))
            overlay(crop, cam, title, f"Grad-CAM at {layer}   top: {ranked}").save(file)
            yield path, file, cls, float(p[t])
