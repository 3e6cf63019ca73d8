/* Image resampling: Pillow's bilinear resize of an 8-bit RGB image, bitwise, computed over a
 * window of the resized image only (one decoded image -> the network's crop in one call).
 *
 *   src (H, W, pixel) uint8, pixel = 3 (RGB) or 4 (RGB and a byte not read: Pillow's own
 *   storage of RGB); the resized image has out_w x out_h pixels and
 *   maps box = (x0, y0, x1, y1) (source pixels, Pillow's floats) onto the whole of it;
 *   the window is its rows [top, top + h) and columns [left, left + w).
 *   lut NULL: out uint8 (h, w, 3), the window's pixels.
 *   lut (3, 256) float32: out float32 (3, h, w) with out[c][i][j] = lut[c][pixel c of (i, j)].
 *
 * What Pillow 13's Image.resize((out_w, out_h), Image.BILINEAR, box=box) computes
 * (libImaging/Resample.c), for the window: per axis, each output's taps and fixed-point
 * weights (22 fractional bits, computed in double); the horizontal pass rounded to 8 bits,
 * then the vertical pass, each output pixel from its own taps only; the vertical pass goes
 * first when H - out_h > 0 and H - out_h > 2 * (W - out_w) (Pillow 13's order: Pillow 12
 * and older always went horizontal first, except for images over 100 times taller than
 * wide, so their results differ by 1 in some pixels there). The caller checks what Pillow
 * checks, 0 <= x0 <= x1 <= W and 0 <= y0 <= y1 <= H, and that the window lies inside the
 * resized image. One thread; `work` holds ac_resize_bilinear_work_floats(...) floats.
 */
#ifndef AC_IMAGE_H
#define AC_IMAGE_H
#include "ac_ctx.h"
#include <stddef.h>
#include <stdint.h>

size_t ac_resize_bilinear_work_floats(int H, int W, int pixel, int out_w, int out_h,
                                      const float box[4], int h, int w);

void ac_resize_bilinear_rgb8(void *out, const float *lut, const uint8_t *src, int H, int W,
                             int pixel, int out_w, int out_h, const float box[4], int top,
                             int left, int h, int w, float *work, const ac_ctx *ctx);

#endif
