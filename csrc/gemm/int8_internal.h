/* Internal to the int8 GEMM (int8_*.c): its micro-kernel rows and their layout.
 *
 * Packed panels hold k-quads: an A panel (MR rows) stores, for each group of 4 depth steps,
 * MR x 4 bytes (row by row, its 4 k in order); a B panel the same with NR columns. Depth is
 * zero-padded to a multiple of 4 and rows/columns past the edge are zero. A micro-kernel
 * sums one MR x NR tile over a run of quads into a plain s32 tile, from zero or onto it;
 * once the tile holds the whole depth's sum, the row's store requantizes its rows into C
 * (ac_int8.h).
 *
 * This header uses no intrinsics, so a test build can compile the driver with a SIMD
 * micro-kernel against SIMDe (tests/int8_simde.c). */
#ifndef AC_INT8_INTERNAL_H
#define AC_INT8_INTERNAL_H
#include "ac_int8.h"

/* Sum kq quads of an MR x NR tile into `tile` (row stride NR): onto its values if add, else
 * from zero. Ap is the A panel's first quad; lda, the bytes from one row to the next, is read
 * only by rows whose A panels are plain rows (a_rows). */
typedef void (*ac_i8_ukernel_fn)(int kq, const uint8_t *Ap, size_t lda, const int8_t *Bp,
                                 int32_t *tile, int add);
/* Requantize rows [0, mr) x columns [0, nr) of an s32 tile with row stride ldt into C at
 * (i0, j0). */
typedef void (*ac_i8_store_fn)(const int32_t *tile, int ldt, int mr, int nr, const ac_i8_out *o,
                               int i0, int j0);

typedef struct ac_i8_kernel {
    int isa; /* enum ac_isa; AC_ISA_AVX512 stands for AVX512-VNNI */
    int amx; /* the row of contexts with amx set (AMX tiles) */
    int mr, nr;
    int kq_step; /* the depth is padded with zeros to a multiple of this many quads */
    int a_rows; /* A panels: 0 quad-interleaved (see above), 1 plain rows at stride lda */
    int a_bytes; /* a packed A block, at most (whole panels): sized to its CPUs' L2 */
    ac_i8_ukernel_fn ukernel;
    ac_i8_store_fn store;
    /* A convolution without im2col rows, or NULL; returns 0 where its geometry does not
     * fit (the driver then runs it on rows). */
    int (*conv)(const struct ac_i8_kernel *kr, const ac_i8_conv *g, int nimg, int N,
                const int8_t *Bp, const ac_i8_out *out, int nthreads);
    void (*prepare)(void); /* on each thread before its micro-kernel calls, or NULL */
} ac_i8_kernel;

/* The int8 rows of the registry (csrc/gemm/registry.c). */
extern const ac_i8_kernel ac_i8_kernels[];
extern const int ac_i8_nkernels;
const ac_i8_kernel *ac_i8_kernel_for(const ac_ctx *ctx);

/* The driver on an explicit row (int8_gemm.c); rows(src, m, dst) writes row m's K bytes
 * (the driver zero-pads the depth). */
typedef void (*ac_i8_row_fn)(const void *src, int m, int K, uint8_t *dst);
void ac_i8_gemm_rows(const ac_i8_kernel *kr, int M, int N, int K, ac_i8_row_fn rows,
                     const void *src, const int8_t *Bp, const ac_i8_out *out, void *work,
                     int nthreads);
/* The padded depth in bytes: whole steps of the row's quads (a packed B column's bytes). */
size_t ac_i8_kpad(const ac_i8_kernel *kr, int K);
void ac_i8_pack_b_for(const ac_i8_kernel *kr, int8_t *dst, const int8_t *B, int N, int K,
                      size_t ldb);
size_t ac_i8_packed_b_bytes_for(const ac_i8_kernel *kr, int N, int K);
size_t ac_i8_work_bytes_for(const ac_i8_kernel *kr, int K, int nthreads);

/* The rows (int8_generic.c, int8_avx2.c, int8_vnni.c). */
#define AC_I8_GENERIC_MR 4
#define AC_I8_GENERIC_NR 16
#define AC_I8_AVX2_MR 4
#define AC_I8_AVX2_NR 16
#define AC_I8_VNNI_MR 6
#define AC_I8_VNNI_NR 64
void ac_i8_ukernel_generic(int kq, const uint8_t *Ap, size_t lda, const int8_t *Bp,
                           int32_t *tile, int add);
void ac_i8_store_generic(const int32_t *tile, int ldt, int mr, int nr, const ac_i8_out *o,
                         int i0, int j0);
void ac_i8_ukernel_avx2(int kq, const uint8_t *Ap, size_t lda, const int8_t *Bp, int32_t *tile,
                        int add);
void ac_i8_store_avx2(const int32_t *tile, int ldt, int mr, int nr, const ac_i8_out *o, int i0,
                      int j0);
void ac_i8_store_avx512(const int32_t *tile, int ldt, int mr, int nr, const ac_i8_out *o,
                        int i0, int j0);
void ac_i8_ukernel_vnni(int kq, const uint8_t *Ap, size_t lda, const int8_t *Bp, int32_t *tile,
                        int add);
/* The AMX row: x86-64 Linux, where the OS grants the tiles (int8_amx.c). */
#if (defined(__x86_64__) || defined(_M_X64)) && defined(__linux__)
#define AC_I8_AMX_BUILT 1
#endif
#define AC_I8_AMX_MR 32
#define AC_I8_AMX_NR 32
#define AC_I8_AMX_KQ 16 /* quads per tdpbusd: 64 bytes of depth */
void ac_i8_ukernel_amx(int kq, const uint8_t *Ap, size_t lda, const int8_t *Bp, int32_t *tile,
                       int add);
void ac_i8_amx_prepare(void);
int ac_i8_conv_amx(const ac_i8_kernel *kr, const ac_i8_conv *g, int nimg, int N,
                   const int8_t *Bp, const ac_i8_out *out, int nthreads);

#endif
