/* Pillow's bilinear resize of 8-bit RGB, bitwise, over a window of the output (ac_image.h).
 *
 * Per axis, output o of the whole resized image has Pillow's taps and weights whatever the
 * window, so the window's outputs are computed alone: the horizontal pass runs on the
 * source rows the window's rows read, over the source columns its columns read, into
 * planes R, G, B (one output row each, padded to whole blocks of LANES columns); the
 * vertical pass combines those rows byte by byte. Rows of the horizontal pass go round a
 * ring of ksize slots: a row's taps are ksize rows at most, and rows are used in order.
 * Pillow's shortcuts (no horizontal pass when x0 = 0, x1 = W = out_w; none vertically when
 * y0 = 0, y1 = H = out_h; a plain crop for a whole-pixel box of the output's size) skip
 * passes whose weights are exactly 1 and 0 for this filter: running them changes nothing.
 */
#include <math.h>
#include <string.h>

#include "ac_image.h"
#include "ac_simd.h"

#define PREC 22 /* Pillow's PRECISION_BITS (32 - 8 - 2): fractional bits of the weights */
#define HALF (1 << (PREC - 1))
#define LANES 8 /* output columns per block of horizontal weights: one AVX2 vector */
#define VCHUNK 32 /* bytes per block of the vertical pass: its sums stay in registers */

/* The window's outputs on one axis: output i takes count[i] source pixels from first[i],
 * with weights k[i * ksize + t] (0 past count[i]). */
typedef struct {
    int n, ksize;
    int *first, *count;
    int32_t *k;
} axis_t;

/* The horizontal weights in blocks of LANES output columns, lane-minor: tap t of block b
 * reads the pixel at byte ofs[e] of the row (row starting at source column lo) with weight
 * k[e], e = (b * ksize + t) * LANES + lane, for t < taps[b]. Lanes past the window and taps
 * past a column's count weigh 0 and read one of its pixels. */
typedef struct {
    int nb, ksize, lo, hi; /* source columns [lo, hi) are read */
    int *taps;
    int32_t *ofs, *k;
} hblocks_t;

/* a * b rounded to double by itself: a compiler free to fuse multiply-adds (gcc's default
 * -ffp-contract=fast where FMA is baseline, as on aarch64) would otherwise fuse it with the
 * addition after it, and the weights would differ from Pillow's (built without FMA). */
static double mul_unfused(double a, double b)
{
    volatile double p = a * b;
    return p;
}

/* Pillow's bilinear filter: the triangle of support 1. */
static double triangle(double x)
{
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Taps per output: Pillow's ksize for the box [in0, in1) resized to out_size pixels. */
static int axis_ksize(float in0, float in1, int out_size)
{
    const double scale = (double)(in1 - in0) / out_size;
    return (int)ceil(scale < 1.0 ? 1.0 : scale) * 2 + 1;
}

/* Pillow's precompute_coeffs (bilinear, in double) then normalize_coeffs_8bpc, for the
 * outputs o0 .. o0 + a->n - 1 of in_size pixels resized to out_size over [in0, in1). */
static void axis_weights(axis_t *a, int in_size, float in0, float in1, int out_size, int o0)
{
    const double scale = (double)(in1 - in0) / out_size; /* the float difference, as Pillow */
    const double filterscale = scale < 1.0 ? 1.0 : scale;
    const double support = filterscale; /* the triangle's support (1), scaled */
    const double inv = 1.0 / filterscale;
    for (int i = 0; i < a->n; i++) {
        const double center = in0 + mul_unfused(o0 + i + 0.5, scale);
        const int lo = AC_MAX((int)(center - support + 0.5), 0);
        const int n = AC_MIN((int)(center + support + 0.5), in_size) - lo;
        double sum = 0.0;
        for (int t = 0; t < n; t++) sum += triangle(mul_unfused(t + lo - center + 0.5, inv));
        int32_t *k = a->k + (size_t)i * a->ksize;
        for (int t = 0; t < a->ksize; t++) {
            double v = t < n ? triangle(mul_unfused(t + lo - center + 0.5, inv)) : 0.0;
            if (sum != 0.0) v /= sum;
            /* v >= 0: Pillow's rounding of those (v * 2^22 is exact: fusing it is harmless) */
            k[t] = (int32_t)(0.5 + v * (1 << PREC));
        }
        a->first[i] = lo;
        a->count[i] = n;
    }
}

static void hblocks_fill(hblocks_t *hb, const axis_t *ax, int pixel)
{
    hb->lo = ax->first[0];
    hb->hi = ax->first[ax->n - 1] + ax->count[ax->n - 1];
    for (int b = 0; b < hb->nb; b++) {
        int taps = 0;
        for (int l = 0; l < LANES; l++) {
            const int i = b * LANES + l, in = i < ax->n;
            if (in) taps = AC_MAX(taps, ax->count[i]);
            for (int t = 0; t < hb->ksize; t++) {
                const size_t e = ((size_t)b * hb->ksize + t) * LANES + l;
                const int x = in ? ax->first[i] + (t < ax->count[i] ? t : 0) : hb->lo;
                hb->ofs[e] = pixel * (x - hb->lo);
                hb->k[e] = in ? ax->k[(size_t)i * ax->ksize + t] : 0;
            }
        }
        hb->taps[b] = taps;
    }
}

static inline uint8_t clip8(int32_t s)
{
    s >>= PREC;
    return (uint8_t)(s < 0 ? 0 : s > 255 ? 255 : s);
}

/* The horizontal pass of one row (pixels from column hb->lo) into planes R, G, B of
 * `pitch` bytes (hb->nb * LANES each). The row is readable one byte past the last pixel
 * read (the AVX2 variant loads 4 bytes a pixel). */
static void hpass_generic(uint8_t *restrict dst, int pitch, const uint8_t *restrict row,
                          const hblocks_t *hb)
{
    for (int b = 0; b < hb->nb; b++) {
        for (int l = 0; l < LANES; l++) {
            int32_t s0 = HALF, s1 = HALF, s2 = HALF;
            for (int t = 0; t < hb->taps[b]; t++) {
                const size_t e = ((size_t)b * hb->ksize + t) * LANES + l;
                const uint8_t *p = row + hb->ofs[e];
                const int32_t k = hb->k[e];
                s0 += p[0] * k;
                s1 += p[1] * k;
                s2 += p[2] * k;
            }
            const int j = b * LANES + l;
            dst[j] = clip8(s0);
            dst[pitch + j] = clip8(s1);
            dst[2 * pitch + j] = clip8(s2);
        }
    }
}

/* The vertical pass: dst[j] = the n rows' bytes j weighted by k, rounded, for j < len. */
AC_INLINE void vpass_body(uint8_t *restrict dst, const uint8_t *const *rows, const int32_t *k,
                          int n, int len)
{
    int32_t acc[VCHUNK];
    for (int j0 = 0; j0 < len; j0 += VCHUNK) {
        const int m = AC_MIN(VCHUNK, len - j0);
        for (int j = 0; j < m; j++) acc[j] = HALF;
        for (int t = 0; t < n; t++) {
            const uint8_t *restrict r = rows[t] + j0;
            const int32_t kt = k[t];
            for (int j = 0; j < m; j++) acc[j] += r[j] * kt;
        }
        for (int j = 0; j < m; j++) dst[j0 + j] = clip8(acc[j]);
    }
}

static void vpass_generic(uint8_t *restrict dst, const uint8_t *const *rows, const int32_t *k,
                          int n, int len)
{
    vpass_body(dst, rows, k, n, len);
}
#define hpass_neon hpass_generic
#define vpass_neon vpass_generic

#ifdef AC_X86_64
/* 8 sums -> 8 bytes, as clip8. */
static AC_TARGET_AVX2 inline void store8_avx2(uint8_t *p, __m256i s)
{
    s = _mm256_srai_epi32(s, PREC);
    const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(s),
                                       _mm256_extracti128_si256(s, 1));
    _mm_storel_epi64((__m128i *)p, _mm_packus_epi16(w, w));
}

/* The 4 bytes at p (a pixel and the byte after it). */
static inline int load4(const uint8_t *p)
{
    int v;
    memcpy(&v, p, 4);
    return v;
}

/* LANES columns at a time, a lane's pixel loaded whole (8 loads measured faster than one
 * gather on Zen 3) and split into R, G, B. */
static AC_TARGET_AVX2 void hpass_avx2(uint8_t *restrict dst, int pitch,
                                      const uint8_t *restrict row, const hblocks_t *hb)
{
    const __m256i byte = _mm256_set1_epi32(0xff);
    for (int b = 0; b < hb->nb; b++) {
        __m256i s0 = _mm256_set1_epi32(HALF), s1 = s0, s2 = s0;
        for (int t = 0; t < hb->taps[b]; t++) {
            const size_t e = ((size_t)b * hb->ksize + t) * LANES;
            const int32_t *o = hb->ofs + e;
            const __m256i k = _mm256_loadu_si256((const __m256i *)(hb->k + e));
            const __m256i px = _mm256_setr_epi32(
                load4(row + o[0]), load4(row + o[1]), load4(row + o[2]), load4(row + o[3]),
                load4(row + o[4]), load4(row + o[5]), load4(row + o[6]), load4(row + o[7]));
            s0 = _mm256_add_epi32(s0, _mm256_mullo_epi32(_mm256_and_si256(px, byte), k));
            s1 = _mm256_add_epi32(
                s1, _mm256_mullo_epi32(_mm256_and_si256(_mm256_srli_epi32(px, 8), byte), k));
            s2 = _mm256_add_epi32(
                s2, _mm256_mullo_epi32(_mm256_and_si256(_mm256_srli_epi32(px, 16), byte), k));
        }
        store8_avx2(dst + b * LANES, s0);
        store8_avx2(dst + pitch + b * LANES, s1);
        store8_avx2(dst + 2 * pitch + b * LANES, s2);
    }
}

/* 32 bytes at a time, their sums in registers; the tail as the portable body. */
static AC_TARGET_AVX2 void vpass_avx2(uint8_t *restrict dst, const uint8_t *const *rows,
                                      const int32_t *k, int n, int len)
{
    int j = 0;
    for (; j + 32 <= len; j += 32) {
        __m256i s[4];
        for (int q = 0; q < 4; q++) s[q] = _mm256_set1_epi32(HALF);
        for (int t = 0; t < n; t++) {
            const __m256i kt = _mm256_set1_epi32(k[t]);
            const uint8_t *r = rows[t] + j;
            for (int q = 0; q < 4; q++) {
                const __m256i p = _mm256_cvtepu8_epi32(
                    _mm_loadl_epi64((const __m128i *)(r + 8 * q)));
                s[q] = _mm256_add_epi32(s[q], _mm256_mullo_epi32(p, kt));
            }
        }
        for (int q = 0; q < 4; q++) store8_avx2(dst + j + 8 * q, s[q]);
    }
    const uint8_t *tail[n];
    for (int t = 0; t < n; t++) tail[t] = rows[t] + j;
    vpass_body(dst + j, tail, k, n, len - j);
}
#define hpass_avx512 hpass_avx2
#define vpass_avx512 vpass_avx2
#endif

/* Row i of the window from its planes: bytes (h, w, 3), or through lut floats (3, h, w). */
static void emit_row(void *out, const float *lut, const uint8_t *pl, int pitch, int i, int h,
                     int w)
{
    if (lut) {
        for (int c = 0; c < 3; c++) {
            float *o = (float *)out + ((size_t)c * h + i) * w;
            const float *lc = lut + 256 * c;
            const uint8_t *p = pl + (size_t)c * pitch;
            for (int j = 0; j < w; j++) o[j] = lc[p[j]];
        }
    } else {
        uint8_t *o = (uint8_t *)out + (size_t)i * w * 3;
        for (int j = 0; j < w; j++) {
            o[3 * j] = pl[j];
            o[3 * j + 1] = pl[pitch + j];
            o[3 * j + 2] = pl[2 * pitch + j];
        }
    }
}

/* The scratch of a call, in bytes from its start, each piece on a 64-byte boundary. */
typedef struct {
    int vertical_first, ksx, ksy, nb;
    size_t ax, ay, taps, hb, rows, planes, ring, last, total;
} layout_t;

static size_t piece(size_t *at, size_t bytes)
{
    const size_t p = *at;
    *at += (bytes + 63) & ~(size_t)63;
    return p;
}

static layout_t layout(int H, int W, int pixel, int out_w, int out_h, const float box[4], int h,
                       int w)
{
    layout_t L = {0};
    /* Pillow 13: the vertical pass first (its result rounded to 8 bits) when the height
     * shrinks by more than twice as many pixels as the width */
    const long shrink_h = (long)H - out_h, shrink_w = (long)W - out_w;
    L.vertical_first = shrink_h > 0 && shrink_h > 2 * shrink_w;
    L.ksx = axis_ksize(box[0], box[2], out_w);
    L.ksy = axis_ksize(box[1], box[3], out_h);
    L.nb = (w + LANES - 1) / LANES;
    const size_t pitch = (size_t)L.nb * LANES, rowb = (size_t)pixel * W, i32 = sizeof(int32_t);
    size_t at = 0;
    L.ax = piece(&at, (size_t)w * (2 + L.ksx) * i32); /* first, count, weights */
    L.ay = piece(&at, (size_t)h * (2 + L.ksy) * i32);
    L.taps = piece(&at, (size_t)L.nb * i32);
    L.hb = piece(&at, 2 * pitch * L.ksx * i32); /* offsets, weights */
    L.rows = piece(&at, (size_t)L.ksy * sizeof(uint8_t *));
    L.planes = piece(&at, 3 * pitch); /* one output row */
    /* the ring of horizontal-pass rows, or the vertical pass's row when it goes first;
     * then a copy of the source's last row: each with the byte after its last pixel */
    L.ring = piece(&at, L.vertical_first ? rowb + 1 : (size_t)L.ksy * 3 * pitch);
    L.last = piece(&at, rowb + 1);
    L.total = at;
    return L;
}

size_t ac_resize_bilinear_work_floats(int H, int W, int pixel, int out_w, int out_h,
                                      const float box[4], int h, int w)
{
    return (layout(H, W, pixel, out_w, out_h, box, h, w).total + 3) / 4;
}

void ac_resize_bilinear_rgb8(void *out, const float *lut, const uint8_t *src, int H, int W,
                             int pixel, int out_w, int out_h, const float box[4], int top,
                             int left, int h, int w, float *work, const ac_ctx *ctx)
{
    __typeof__(hpass_generic) *hpass = AC_ISA_PICK(ctx->isa, hpass);
    __typeof__(vpass_generic) *vpass = AC_ISA_PICK(ctx->isa, vpass);
    const layout_t L = layout(H, W, pixel, out_w, out_h, box, h, w);
    uint8_t *ws = (uint8_t *)work;
    axis_t ax = {w, L.ksx, (int *)(ws + L.ax)}, ay = {h, L.ksy, (int *)(ws + L.ay)};
    ax.count = ax.first + w;
    ax.k = ax.count + w;
    ay.count = ay.first + h;
    ay.k = ay.count + h;
    hblocks_t hb = {L.nb, L.ksx, 0, 0, (int *)(ws + L.taps), (int32_t *)(ws + L.hb)};
    const int pitch = hb.nb * LANES, ks = ay.ksize;
    hb.k = hb.ofs + (size_t)pitch * hb.ksize;
    const uint8_t **rows = (const uint8_t **)(ws + L.rows);
    uint8_t *planes = ws + L.planes, *buf = ws + L.ring, *last = ws + L.last;
    const size_t rowb = (size_t)pixel * W;

    axis_weights(&ax, W, box[0], box[2], out_w, left);
    axis_weights(&ay, H, box[1], box[3], out_h, top);
    hblocks_fill(&hb, &ax, pixel);
    const size_t span = (size_t)pixel * (hb.hi - hb.lo); /* bytes of a source row read */
    const uint8_t *src_lo = src + (size_t)pixel * hb.lo;
    if (hb.hi == W) { /* the last source row's last pixel, with a byte after it */
        memcpy(last, src_lo + (size_t)(H - 1) * rowb, span);
    }

    int next = 0; /* the first source row not yet through the horizontal pass */
    for (int i = 0; i < h; i++) {
        const int y0 = ay.first[i], n = ay.count[i];
        const int32_t *k = ay.k + (size_t)i * ks;
        if (L.vertical_first) {
            for (int t = 0; t < n; t++) rows[t] = src_lo + (size_t)(y0 + t) * rowb;
            vpass(buf, rows, k, n, (int)span);
            hpass(planes, pitch, buf, &hb);
        } else {
            for (int y = AC_MAX(next, y0); y < y0 + n; y++) {
                const uint8_t *row = hb.hi == W && y == H - 1 ? last
                                                              : src_lo + (size_t)y * rowb;
                hpass(buf + (size_t)(y % ks) * 3 * pitch, pitch, row, &hb);
            }
            next = AC_MAX(next, y0 + n);
            for (int t = 0; t < n; t++) rows[t] = buf + (size_t)((y0 + t) % ks) * 3 * pitch;
            vpass(planes, rows, k, n, 3 * pitch);
        }
        emit_row(out, lut, planes, pitch, i, h, w);
    }
}
