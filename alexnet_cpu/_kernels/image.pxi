# Image resampling bindings (csrc/image.c): Pillow's bilinear resize of RGB bytes, bitwise,
# over a window of the resized image, as bytes or as normalised floats; and a Pillow image's
# pixels without a copy (the Arrow C data interface), for the kernel to read.

from cpython.pycapsule cimport PyCapsule_GetPointer
from libc.stdint cimport int64_t, uint8_t
from libc.string cimport strcmp

cdef extern from *:
    """
    /* The Arrow C data interface (arrow.apache.org/docs/format/CDataInterface.html) */
    struct ArrowSchema {
        const char *format; const char *name; const char *metadata; int64_t flags;
        int64_t n_children; struct ArrowSchema **children; struct ArrowSchema *dictionary;
        void (*release)(struct ArrowSchema *); void *private_data;
    };
    struct ArrowArray {
        int64_t length; int64_t null_count; int64_t offset; int64_t n_buffers;
        int64_t n_children; const void **buffers; struct ArrowArray **children;
        struct ArrowArray *dictionary; void (*release)(struct ArrowArray *); void *private_data;
    };
    """
    struct ArrowSchema:
        const char *format
        int64_t n_children
        ArrowSchema **children
    struct ArrowArray:
        int64_t length, offset
        int64_t n_buffers, n_children
        const void **buffers
        ArrowArray **children

cdef extern from "ac_image.h":
    size_t ac_resize_bilinear_work_floats(int H, int W, int pixel, int out_w, int out_h,
                                          const float *box, int h, int w) nogil
    void ac_resize_bilinear_rgb8(void *out, const float *lut, const uint8_t *src, int H, int W,
                                 int pixel, int out_w, int out_h, const float *box, int top,
                                 int left, int h, int w, float *work, const ac_ctx *ctx) nogil


def pillow_pixels(img):
    """An RGB PIL image's pixels as a read-only uint8 (H, W, 4) array without copying: Pillow's
    own storage (R, G, B and a padding byte per pixel), shared through the Arrow C data
    interface (Pillow >= 11.2); it keeps that storage alive. None when Pillow cannot share it
    (an older Pillow, rows not stored back to back): then np.asarray(img) copies them."""
    if img.mode != "RGB" or not hasattr(img, "__arrow_c_array__"):
        return None
    try:
        schema_capsule, array_capsule = img.__arrow_c_array__()
    except ValueError:  # rows not in one run of memory
        return None
    cdef ArrowSchema *schema = <ArrowSchema *>PyCapsule_GetPointer(schema_capsule,
                                                                   "arrow_schema")
    cdef ArrowArray *array = <ArrowArray *>PyCapsule_GetPointer(array_capsule, "arrow_array")
    cdef Py_ssize_t W = img.size[0], H = img.size[1]
    # one fixed-size list of 4 bytes per pixel, no offset: anything else is not understood
    if strcmp(schema.format, "+w:4") != 0 or schema.n_children != 1 or \
            strcmp(schema.children[0].format, "C") != 0 or array.length != W * H or \
            array.offset != 0 or array.n_children != 1 or array.children[0].offset != 0 or \
            array.children[0].length != 4 * W * H or array.children[0].n_buffers != 2 or \
            array.children[0].buffers[1] == NULL:
        return None
    cdef cnp.npy_intp shape[3]
    shape[0], shape[1], shape[2] = H, W, 4
    cdef cnp.ndarray a = cnp.PyArray_SimpleNewFromData(3, shape, cnp.NPY_UINT8,
                                                       <void *>array.children[0].buffers[1])
    cnp.set_array_base(a, array_capsule)  # the capsule releases the storage last
    cnp.PyArray_CLEARFLAGS(a, cnp.NPY_ARRAY_WRITEABLE)
    return a


def resize_bilinear(out, src, size, box=None, int top=0, int left=0, lut=None, ctx=None):
    """Pillow's Image.resize(size, Image.BILINEAR, box=box) of the RGB image src (uint8
    (H, W, 3), or (H, W, 4) whose fourth byte is not read: pillow_pixels), bitwise, for the window of out's size at (top, left) of the resized image:
    out uint8 (h, w, 3); or with lut (float32 (3, 256)), out float32 (3, h, w) with
    out[c, i, j] = lut[c, pixel]. size = (width, height) and box = (x0, y0, x1, y1) as
    Pillow's (box None: the whole image); box values are rounded to float32, as Pillow does."""
    fn = "resize_bilinear"
    cdef Context cx = _resolve(fn, ctx)
    cdef const uint8_t *ps = <const uint8_t *>_data(_array(fn, "src", src, np.uint8, ndim=3))
    cdef int H = src.shape[0], W = src.shape[1]
    cdef int pixel = src.shape[2]
    if pixel not in (3, 4) or H < 1 or W < 1:
        raise ValueError(f"{fn}: src must be an RGB image (H, W, 3) or (H, W, 4) with "
                         f"H, W >= 1, got shape {src.shape}")
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
    work = _workspace(None, ac_resize_bilinear_work_floats(H, W, pixel, ow, oh, b, h_, w_))
    cdef float *pw = <float *>cnp.PyArray_DATA(work)
    with nogil:
        ac_resize_bilinear_rgb8(po, pl, ps, H, W, pixel, ow, oh, b, top, left, h_, w_, pw,
                                &cx.c)
