/* AMX int8 micro-kernel (Intel Sapphire Rapids and later): a 32 x 32 tile as four 16 x 16
 * s32 accumulator tiles (tmm0-3). Each step of 16 k-quads loads two A tiles (16 rows x 64
 * bytes of plain rows, stride lda), two B tiles (16 quads x 16 columns x 4 bytes: the two
 * halves of the packed 32-column panel, stride 128) and runs four tdpbusd (u8 x s8, 16K
 * products each). The depth is padded to whole steps (AC_I8_AMX_KQ), with zeros, so the sums
 * are the exact ones of the other rows.
 *
 * The tile registers are per-thread state: each call configures them (a few dozen cycles
 * against the 512 or more of a 128-quad chunk) and the kernel leaves them configured; the OS
 * permission comes first (ac_i8_amx_supported). */
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

__attribute__((target("amx-tile,amx-int8"))) void ac_i8_ukernel_amx(int kq, const uint8_t *Ap,
                                                                    size_t lda,
                                                                    const int8_t *Bp,
                                                                    int32_t *tile, int add)
{
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) cfg.colsb[t] = 64, cfg.rows[t] = 16;
    _tile_loadconfig(&cfg);
    const size_t ldt = NR * sizeof(int32_t);
    if (add) {
        _tile_loadd(0, tile, ldt);
        _tile_loadd(1, tile + 16, ldt);
        _tile_loadd(2, tile + 16 * NR, ldt);
        _tile_loadd(3, tile + 16 * NR + 16, ldt);
    } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
    for (int q = 0; q < kq; q += AC_I8_AMX_KQ) {
        _tile_loadd(4, Ap + 4 * q, lda);
        _tile_loadd(5, Ap + 16 * lda + 4 * q, lda);
        _tile_loadd(6, Bp + 4 * NR * q, 4 * NR);
        _tile_loadd(7, Bp + 4 * NR * q + 64, 4 * NR);
        _tile_dpbusd(0, 4, 6);
        _tile_dpbusd(1, 4, 7);
        _tile_dpbusd(2, 5, 6);
        _tile_dpbusd(3, 5, 7);
    }
    _tile_stored(0, tile, ldt);
    _tile_stored(1, tile + 16, ldt);
    _tile_stored(2, tile + 16 * NR, ldt);
    _tile_stored(3, tile + 16 * NR + 16, ldt);
}

/* A convolution straight from the image, where its kernel rows are whole words: one group,
 * no padding (the input's is done when it is quantized), a kernel row of R = ks * C bytes
 * with R a multiple of 4 and at most 64 (conv1 on 4-byte pixels: 44). Then the A tile of 16
 * output pixels of a row and kernel row ky is 16 rows R bytes long at stride s * C in the
 * image, and ky's R / 4 quads are consecutive in the packed B panel: one tdpbusd per
 * kernel row and tile pair, no im2col rows (which were three quarters of conv1's time on
 * this row: 11 runs of 33 bytes for 363 MACs a column). Returns 0 where the geometry does
 * not fit. Threads take whole output rows: the sums are the exact ones whatever the count. */
__attribute__((target("amx-tile,amx-int8"))) int ac_i8_conv_amx(const ac_i8_kernel *kr,
                                                                const ac_i8_conv *g, int nimg,
                                                                int N, const int8_t *Bp,
                                                                const ac_i8_out *out,
                                                                int nthreads)
{
    const int R = g->ks * g->C, rq = R / 4, s = g->stride, OH = g->OH, OW = g->OW;
    if (g->pad || g->cg != g->C || R % 4 || R > 64) return 0;
    const size_t kp = ac_i8_packed_b_bytes_for(kr, N, g->ks * R) / ac_round_up(N, NR);
    const size_t img = (size_t)g->H * g->W * g->C, step = (size_t)s * g->C;
    const uint8_t *end = g->x + (size_t)nimg * img;
    const long rows = (long)nimg * OH;
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
    {
        tile_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.palette = 1;
        for (int t = 0; t < 8; t++) cfg.colsb[t] = 64, cfg.rows[t] = 16;
        cfg.colsb[4] = cfg.colsb[5] = (uint16_t)R; /* A: 16 pixels x a kernel row */
        cfg.rows[6] = cfg.rows[7] = (uint8_t)rq; /* B: its quads x 16 columns */
        _tile_loadconfig(&cfg);
        int32_t tile[MR * NR];
        uint8_t bounce[MR * 64];
#pragma omp for schedule(static)
        for (long r = 0; r < rows; r++) {
            const uint8_t *row = g->x + (size_t)(r / OH) * img +
                                 (size_t)(r % OH) * s * g->W * g->C;
            for (int ox0 = 0; ox0 < OW; ox0 += MR) {
                const int mr = AC_MIN(MR, OW - ox0);
                for (int j0 = 0; j0 < N; j0 += NR) {
                    const int8_t *B = Bp + (size_t)j0 * kp;
                    _tile_zero(0);
                    _tile_zero(1);
                    _tile_zero(2);
                    _tile_zero(3);
                    for (int ky = 0; ky < g->ks; ky++) {
                        const uint8_t *A = row + (size_t)ky * g->W * g->C + ox0 * step;
                        size_t lda = step;
                        if (A + (MR - 1) * step + R > end) { /* the batch's last pixels */
                            memset(bounce, 0, sizeof bounce);
                            for (int i = 0; i < mr; i++) memcpy(bounce + 64 * i, A + i * step, R);
                            A = bounce, lda = 64;
                        }
                        _tile_loadd(4, A, lda);
                        _tile_loadd(5, A + 16 * lda, lda);
                        _tile_loadd(6, B + (size_t)ky * rq * 4 * NR, 4 * NR);
                        _tile_loadd(7, B + (size_t)ky * rq * 4 * NR + 64, 4 * NR);
                        _tile_dpbusd(0, 4, 6);
                        _tile_dpbusd(1, 4, 7);
                        _tile_dpbusd(2, 5, 6);
                        _tile_dpbusd(3, 5, 7);
                    }
                    _tile_stored(0, tile, NR * 4);
                    _tile_stored(1, tile + 16, NR * 4);
                    _tile_stored(2, tile + 16 * NR, NR * 4);
                    _tile_stored(3, tile + 16 * NR + 16, NR * 4);
                    kr->store(tile, NR, mr, AC_MIN(NR, N - j0), out, (int)(r * OW + ox0), j0);
                }
            }
        }
    }
    return 1;
}
#endif
