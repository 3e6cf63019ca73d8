"""What the pictures share (Grad-CAM overlays, the conv1 filters, the confusion matrix, the
training curves): fonts, a heat colour map, text placement. Pillow only."""
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

INK = (30, 30, 30)
GRID = (225, 225, 225)
MUTED = (110, 110, 110)


@lru_cache(maxsize=None)
def font(size=14):
    """Pillow's built-in scalable font at `size` px (Pillow >= 10.1 with FreeType), else
    its small bitmap font: the pictures stay legible either way."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def text_size(text, f):
    """(width, height) of text drawn in font f."""
    left, top, right, bottom = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox(
        (0, 0), text, font=f)
    return right - left, bottom - top


def text_rotated(img, xy, text, f, fill=INK, angle=90):
    """Draw text turned by `angle` degrees counter-clockwise with its top-left at xy."""
    w, h = text_size(text, f)
    tile = Image.new("L", (w + 2, h + 6), 0)
    ImageDraw.Draw(tile).text((1, 0), text, font=f, fill=255)
    tile = tile.rotate(angle, expand=True, resample=Image.BICUBIC)
    img.paste(Image.new("RGB", tile.size, fill), xy, tile)


# Turbo-like heat scale (dark blue, cyan, green, yellow, red): reads as cold to hot at a
# glance and stays distinct from the photo underneath.
_HEAT = np.array([(48, 18, 59), (50, 101, 232), (27, 207, 212), (97, 252, 108),
                  (210, 233, 53), (254, 155, 45), (217, 56, 6), (122, 4, 3)], np.float64)


def heat_colours(v):
    """v in [0, 1] (any shape) -> uint8 RGB of shape v.shape + (3,)."""
    t = np.clip(np.asarray(v, np.float64), 0.0, 1.0) * (len(_HEAT) - 1)
    i = np.minimum(t.astype(int), len(_HEAT) - 2)
    f = (t - i)[..., None]
    return np.rint(_HEAT[i] * (1 - f) + _HEAT[i + 1] * f).astype(np.uint8)


def blues(v):
    """v in [0, 1] -> uint8 RGB from white to a deep blue (counts, shares)."""
    v = np.clip(np.asarray(v, np.float64), 0.0, 1.0)[..., None]
    lo, hi = np.array([247, 251, 255.0]), np.array([8, 48, 107.0])
    return np.rint(lo * (1 - v) + hi * v).astype(np.uint8)
