/* AMX int8 micro-kernel (Intel Sapphire Rapids and later): a 32 x 32 tile as four 16 x 16
 * s32 accumulator tiles (tmm0-3). Each step of 16 k-quads loads two A tiles (16 rows x 64
 * bytes of plain rows, stride lda), two B tiles (16 quads x 16 columns x 4 bytes: the two
 * halves of the packed 32-column panel, stride 128) and runs four tdpbusd (u8 x s8, 16K
 * products each). The depth is padded to whole steps (AC_I8_AMX_KQ), with zeros, so the sums
 * are the exact ones of the other rows.
 *
 * The tile registers are per-thread state, configured once per thread and product by the
 * row's prepare (the OS permission comes first: ac_i8_amx_supported), not on every call:
 * that cost a tenth of the tiles' rate (throwaway harness, one thread, operands in L1: 3.33
 * TMAC/s, 2.67 with the sums carried through memory as between the driver's depth chunks,
 * 2.38 also configuring; 2048^3 in the driver 3.5-3.7 -> 4.3-4.4 TOP/s on 2 threads).
 * Summing the whole depth in one call instead (no carried sums, operands from L2) measured
 * no faster: tiles from L2 run at 2.4 TMAC/s, from L1 at 3.3. */
#include "ac_parallel.h"
#include "ac_simd.h"
#include "int8_internal.h"
#ifdef AC_I8_AMX_BUILT
#include <cpuid.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

int ac_i8_amx_supported(void)
{
#ifdef AC_I8_AMX_BUILT
    enum { REQ_XCOMP_PERM = 0x1023, XTILEDATA = 18 }; /* Linux's arch_prctl request */
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    const unsigned tile_int8 = 3u << 24; /* AMX-TILE, AMX-INT8 */
    return (d & tile_int8) == tile_int8 && ac_i8_vnni_supported() &&
           syscall(SYS_arch_prctl, REQ_XCOMP_PERM, XTILEDATA) == 0;
#else
    return 0; /* elsewhere: no tiles, or no way here to ask the OS for them */
#endif
}

#ifdef AC_I8_AMX_BUILT
#define MR AC_I8_AMX_MR
#define NR AC_I8_AMX_NR

/* ldtilecfg's 64-byte operand: palette 1, eight tiles of 16 rows x 64 bytes. */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

/* Eight tiles of 16 rows x 64 bytes, but A (tiles 4, 5) a_bytes wide and B (6, 7) b_rows
 * high. The empty asm makes the compiler keep the stores: GCC 12 otherwise drops those
 * ldtilecfg reads (it loaded a config of zero tiles: SIGSEGV at the first tile load). */
__attribute__((target("amx-tile"))) static void configure(int a_bytes, int b_rows)
{
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) cfg.colsb[t] = 64, cfg.rows[t] = 16;
    cfg.colsb[4] = cfg.colsb[5] = (uint16_t)a_bytes;
    cfg.rows[6] = cfg.rows[7] = (uint8_t)b_rows;
    __asm__ volatile("" : : "r"(&cfg) : "memory");
    _tile_loadconfig(&cfg);
}

void ac_i8_amx_prepare(void) { configure(64, 16); }

/* The 32 x 32 sums are four s32 accumulator tiles, tmm0-3: zeroed, stored to a tile of row
 * stride NR, and one step of 64 bytes of depth added to them from two A tiles (16 rows of
 * A, lda apart) and the B panel's two halves (16 quads x 16 columns each). */
__attribute__((target("amx-tile"))) static inline void zero_sums(void)
{
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
}

__attribute__((target("amx-tile,amx-int8"))) static inline void
add_step(const uint8_t *A, size_t lda, const int8_t *B)
{
    _tile_loadd(4, A, lda);
    _tile_loadd(5, A + 16 * lda, lda);
    _tile_loadd(6, B, 4 * NR);
    _tile_loadd(7, B + 64, 4 * NR);
    _tile_dpbusd(0, 4, 6);
    _tile_dpbusd(1, 4, 7);
    _tile_dpbusd(2, 5, 6);
    _tile_dpbusd(3, 5, 7);
}

__attribute__((target("amx-tile"))) static inline void store_sums(int32_t *tile)
{
    const size_t ldt = NR * sizeof(int32_t);
    _tile_stored(0, tile, ldt);
    _tile_stored(1, tile + 16, ldt);
    _tile_stored(2, tile + 16 * NR, ldt);
    _tile_stored(3, tile + 16 * NR + 16, ldt);
}

__attribute__((target("amx-tile,amx-int8"))) void ac_i8_ukernel_amx(int kq, const uint8_t *Ap,
                                                                    size_t lda,
                                                                    const int8_t *Bp,
                                                                    int32_t *tile, int add)
{
    const size_t ldt = NR * sizeof(int32_t);
    if (add) {
        _tile_loadd(0, tile, ldt);
        _tile_loadd(1, tile + 16, ldt);
        _tile_loadd(2, tile + 16 * NR, ldt);
        _tile_loadd(3, tile + 16 * NR + 16, ldt);
    } else {
        zero_sums();
    }
    for (int q = 0; q < kq; q += AC_I8_AMX_KQ) add_step(Ap + 4 * q, lda, Bp + 4 * NR * q);
    store_sums(tile);
}

/* A convolution without im2col rows, where a kernel row is one short run of whole words:
 * one group, no padding (conv1's input arrives padded from int8_quantize), R = ks C bytes
 * with R a multiple of 4 and at most 64 (conv1 on 4-byte pixels: 44). The A tile of 16
 * output pixels of a row and kernel row ky is then 16 rows of R bytes at stride s C straight
 * from the image, and ky's R / 4 quads are consecutive in the packed B panel: one tdpbusd
 * per kernel row and tile pair. Building conv1's im2col rows (11 runs of 33 bytes for 363
 * MACs a column) took three quarters of its time on this row. (The 3x3 and 5x5 layers, whose
 * rows are long runs, read the same way through a padded copy measured no faster: the tiles
 * bound them, so they stay on rows.) Returns 0 where the geometry does not fit. Threads take
 * whole images, the leftover ones (a batch of one) sharing the columns: the sums are the
 * exact ones whatever the count. */
typedef struct {
    const ac_i8_kernel *kr;
    const ac_i8_conv *g;
    int nimg, N, R;
    const int8_t *Bp;
    const ac_i8_out *out;
    size_t kp; /* B bytes a column */
} amx_conv;

/* Images [i0, i1), columns [j0, j1), on this thread. */
__attribute__((target("amx-tile,amx-int8"))) static void conv_images(const amx_conv *p, int i0,
                                                                     int i1, int j0, int j1)
{
    const ac_i8_conv *g = p->g;
    const int s = g->stride, R = p->R;
    const size_t C = (size_t)g->C, step = (size_t)s * C, pixels = (size_t)g->H * g->W * C;
    const uint8_t *end = g->x + pixels * p->nimg; /* tile rows past it: read through a copy */
    int32_t tile[MR * NR];
    uint8_t bounce[MR * 64];
    configure(R, R / 4); /* A: 16 pixels x a kernel row; B: its quads x 16 columns */
    for (int n = i0; n < i1; n++)
        for (int oy = 0; oy < g->OH; oy++)
            for (int ox0 = 0; ox0 < g->OW; ox0 += MR)
                for (int jc = j0; jc < j1; jc += NR) {
                    const int8_t *B = p->Bp + (size_t)jc * p->kp;
                    zero_sums();
                    for (int ky = 0; ky < g->ks; ky++) {
                        const uint8_t *A = g->x + n * pixels +
                                           ((size_t)(oy * s + ky) * g->W + ox0 * s) * C;
                        size_t lda = step;
                        if (A + (MR - 1) * step + R > end) {
                            memset(bounce, 0, sizeof bounce);
                            for (int i = 0; i < MR && A + i * step + R <= end; i++)
                                memcpy(bounce + 64 * i, A + i * step, R);
                            A = bounce, lda = 64;
                        }
                        add_step(A, lda, B + (size_t)ky * R * NR); /* ky's R / 4 quads */
                    }
                    store_sums(tile);
                    p->kr->store(tile, NR, AC_MIN(MR, g->OW - ox0), AC_MIN(NR, j1 - jc), p->out,
                                 (int)(((size_t)n * g->OH + oy) * g->OW + ox0), jc);
                }
}

typedef struct {
    const amx_conv *p;
    int i0, i1;
} amx_images;

static void columns_share(void *ctx, int t, int T, float *scratch)
{
    const amx_images *a = (const amx_images *)ctx;
    const ac_range r = ac_split(a->p->N, NR, t, T);
    (void)scratch;
    if (r.hi > r.lo) conv_images(a->p, a->i0, a->i1, (int)r.lo, (int)r.hi);
}

static void images_run(void *ctx, int i0, int i1, float *scratch, int nt)
{
    const amx_conv *p = (const amx_conv *)ctx;
    amx_images a = {p, i0, i1};
    if (nt <= 1)
        conv_images(p, i0, i1, 0, p->N);
    else
        ac_team_run(nt, columns_share, &a, scratch, 0);
}

int ac_i8_conv_amx(const ac_i8_kernel *kr, const ac_i8_conv *g, int nimg, int N,
                   const int8_t *Bp, const ac_i8_out *out, int nthreads)
{
    const int R = g->ks * g->C;
    if (g->pad || g->cg != g->C || R % 4 || R > 64) return 0;
    const amx_conv p = {kr, g, nimg, N, R, Bp, out, ac_i8_kpad(kr, g->ks * R)};
    ac_items_run(nimg, AC_MAX(nthreads, 1), images_run, (void *)&p, NULL, 0);
    return 1;
}
#endif
