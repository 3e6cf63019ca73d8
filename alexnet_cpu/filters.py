"""The first convolution's kernels as a grid of colour patches, as in the paper's Figure 3:
each kernel scaled to its own range (its minimum black, its maximum full colour), enlarged
without smoothing. The kernels are shown in blocks, one per group of the second convolution
(the paper variant: 48 kernels feeding each of its two GPUs' halves)."""
import numpy as np
from PIL import Image, ImageDraw

from .draw import INK, MUTED, font
from .layers import Conv2d

COLS, SCALE, GAP = 16, 4, 2          # kernels per row, pixels per weight, pixels between
MARGIN, HEADER, LABEL = 12, 44, 22   # around the grid, title band, block label band
BACKGROUND = (255, 255, 255)


def kernel_patch(w):
    """A kernel (C, k, k) -> uint8 (k, k, 3), scaled to its own range (constant: mid grey).
    One channel is shown grey; more than three: their mean."""
    w = np.asarray(w, np.float64)
    if w.shape[0] != 3:
        w = np.repeat(w.mean(axis=0, keepdims=True), 3, axis=0)
    lo, hi = w.min(), w.max()
    v = (w - lo) / (hi - lo) * 255 if hi > lo else np.full_like(w, 128.0)
    return np.rint(v).astype(np.uint8).transpose(1, 2, 0)


def first_conv(net):
    """(the first Conv2d's weight, the number of blocks: the second Conv2d's groups)."""
    convs = [layer for _, layer in net.layers if isinstance(layer, Conv2d)]
    return convs[0].params["weight"], convs[1].groups if len(convs) > 1 else 1


def cell_origin(i, per_block, k, scale=SCALE, gap=GAP):
    """Top-left pixel (x, y) of kernel i's patch in the grid."""
    block, j = divmod(i, per_block)
    rows = -(-per_block // COLS)
    step = k * scale + gap
    y = HEADER + block * (LABEL + rows * step + gap) + LABEL + (j // COLS) * step
    return MARGIN + (j % COLS) * step, y


def filter_grid(weight, blocks=1, title=None, scale=SCALE, gap=GAP):
    """weight (O, C, k, k) -> an RGB image of its O kernels in `blocks` blocks."""
    o, c, k, _ = weight.shape
    per_block = -(-o // blocks)
    rows, step = -(-per_block // COLS), k * scale + gap
    width = 2 * MARGIN + COLS * step - gap
    height = HEADER + blocks * (LABEL + rows * step + gap) + MARGIN - gap
    img = Image.new("RGB", (width, height), BACKGROUND)
    d = ImageDraw.Draw(img)
    d.text((MARGIN, 10), title or f"conv1: {o} kernels {k}x{k}x{c}", font=font(18), fill=INK)
    d.text((MARGIN, 30), "each scaled to its own range", font=font(12), fill=MUTED)
    for b in range(blocks):
        if blocks > 1:
            _, y = cell_origin(b * per_block, per_block, k, scale, gap)
            d.text((MARGIN, y - LABEL + 4), f"group {b + 1}: kernels {b * per_block + 1}-"
                   f"{min(o, (b + 1) * per_block)}", font=font(13), fill=MUTED)
    for i in range(o):
        patch = kernel_patch(weight[i]).repeat(scale, axis=0).repeat(scale, axis=1)
        img.paste(Image.fromarray(patch), cell_origin(i, per_block, k, scale, gap))
    return img


def draw_filters(net, path):
    weight, blocks = first_conv(net)
    filter_grid(weight, blocks, title=f"conv1 of the {net.variant} variant: {len(weight)} "
                f"kernels {weight.shape[2]}x{weight.shape[3]}x{weight.shape[1]}").save(path)
