# Image resampling bindings (csrc/image.c): Pillow's bilinear resize of RGB bytes, bitwise,
# over a window of the resized image, as bytes or as normalised floats.

from libc.stdint cimport uint8_t

cdef extern from "ac_image.h":
    size_t ac_resize_bilinear_work_floats(int H, int W, int out_w, int out_h, const float *box,
                                          int h, int w) nogil
    void ac_resize_bilinear_rgb8(void *out, const float *lut, const uint8_t *src, int H, int W,
                                 int out_w, int out_h, const float *box, int top, int left,
                                 int h, int w, float *work, const ac_ctx *ctx) nogil


def resize_bilinear(out, src, size, box=None, int top=0, int left=0, lut=None, ctx=None):
    """Pillow's Image.resize(size, Image.BILINEAR, box=box) of the RGB image src (uint8
    (H, W, 3)), bitwise, for the window of out's size at (top, left) of the resized image:
    out uint8 (h, w, 3); or with lut (float32 (3, 256)), out float32 (3, h, w) with
    out[c, i, j] = lut[c, pixel]. size = (width, height) and box = (x0, y0, x1, y1) as
    Pillow's (box None: the whole image); box values are rounded to float32, as Pillow does."""
    fn = "resize_bilinear"
    cdef Context cx = _resolve(fn, ctx)
    cdef const uint8_t *ps = <const uint8_t *>_data(_array(fn, "src", src, np.uint8, ndim=3))
    cdef int H = src.shape[0], W = src.shape[1]
    if src.shape[2] != 3 or H < 1 or W < 1:
        raise ValueError(f"{fn}: src must be an RGB image (H, W, 3) with H, W >= 1, "
                         f"got shape {src.shape}")
    if len(size) != 2 or size[0] < 1 or size[1] < 1:
        raise ValueError(f"{fn}: size must be (width, height) >= 1, got {size}")
    cdef int ow = size[0], oh = size[1]
    cdef float b[4]
    cdef int i
    cdef void *po
    box = (0, 0, W, H) if box is None else tuple(box)
    if len(box) != 4:
        raise ValueError(f"{fn}: box must be (x0, y0, x1, y1), got {box}")
    for i in range(4):
        b[i] = box[i]
    if b[0] < 0 or b[1] < 0 or b[2] > W or b[3] > H or b[2] - b[0] < 0 or b[3] - b[1] < 0:
        raise ValueError(f"{fn}: box {box} must satisfy 0 <= x0 <= x1 <= {W} and "
                         f"0 <= y0 <= y1 <= {H} (the source's width and height)")
    cdef const float *pl = NULL
    if lut is None:
        po = _data(_array(fn, "out", out, np.uint8, ndim=3, out=True))
        h, w, c = out.shape
    else:
        pl = <const float *>_data(_array(fn, "lut", lut, np.float32, (3, 256)))
        po = _data(_array(fn, "out", out, np.float32, ndim=3, out=True))
        c, h, w = out.shape
    if c != 3 or h < 1 or w < 1:
        raise ValueError(f"{fn}: out must be {'(h, w, 3)' if lut is None else '(3, h, w)'} "
                         f"with h, w >= 1, got shape {out.shape}")
    if top < 0 or left < 0 or top + h > oh or left + w > ow:
        raise ValueError(f"{fn}: window rows [{top}, {top + h}) x columns [{left}, "
                         f"{left + w}) outside the resized image ({oh} rows, {ow} columns)")
    _no_overlap(fn, [("out", out)], [("src", src), ("lut", lut)])
    cdef int h_ = h, w_ = w
    work = _workspace(None, ac_resize_bilinear_work_floats(H, W, ow, oh, b, h_, w_))
    cdef float *pw = <float *>cnp.PyArray_DATA(work)
    with nogil:
        ac_resize_bilinear_rgb8(po, pl, ps, H, W, ow, oh, b, top, left, h_, w_, pw, &cx.c)
