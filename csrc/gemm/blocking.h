/* The GEMM blocking of each instruction-set path: micro-tile MR x NR (the micro-kernel's,
 * in the name of its file) and the cache blocks KC, MC, NC, MB the driver loops over
 * (driver.c draws the loops). One table per path, each value with what chose it.
 *
 *   KC  depth of a packed block: an A micro-panel (MR x KC) and a B one (KC x NR) in L1
 *   MC  rows of op(A) per block used from L2 (MC x KC)
 *   NC  columns of op(B) per packed block (KC x NC, in L2 beside MC x KC of A)
 *   MB  rows of op(A) packed at once per K block (MB x KC, in L3), so A is packed once
 *
 * The driver evens the blocks out (ac_gemm_kc and block_size in driver.c): these are the
 * largest sizes, the blocks actually used may be smaller. Changing one changes the order
 * of the sums for that path (results stay independent of the thread count). */
#ifndef AC_GEMM_BLOCKING_H
#define AC_GEMM_BLOCKING_H

/* AVX-512 (ukernel_avx512_6x64.c). 6 x 64 with KC 384, MC 120 replaced 12 x 32 with KC 256,
 * MC 144 (commit f9604b9: 2048^3 on one thread 141 -> 152-157 GFLOP/s side by side,
 * convolutions +2-5%: fewer loads per FMA, fewer C write-backs); the micro-kernel alone, all
 * in L1, reaches ~89% of the FMA meter with 6 x 64, 85% with 12 x 32. NC 512: KC x NC of B
 * (768 KiB) and MC x KC of A (180 KiB) in the 2 MiB L2. MB 2048: A packed once per K block
 * instead of once per column block, +10-15% on large square products (commit 8106d7e). */
#define AC_AVX512_MR 6
#define AC_AVX512_NR 64
#define AC_AVX512_KC 384
#define AC_AVX512_MC 120
#define AC_AVX512_NC 512
#define AC_AVX512_MB 2048

/* AVX512_BF16 (ukernel_avx512bf16_6x64.c, bf16 precision): the fp32 tile over k-pairs, so
 * the same bytes per block at twice the depth (KC 768 = 384 k-pairs). Measured on 2048^3,
 * one thread on AMD EPYC Zen 5 against the vdpbf16ps meter (thread CPU time, shared
 * machine): KC/MC/NC 768/120/512 93-95%, 512/120/512 94-95%, 1024/60/512 88-96%,
 * 768/60/256 85-88%, 384/240/1024 89-91%. */
#define AC_AVX512BF16_MR 6
#define AC_AVX512BF16_NR 64
#define AC_AVX512BF16_KC 768
#define AC_AVX512BF16_MC 120
#define AC_AVX512BF16_NC 512
#define AC_AVX512BF16_MB 2048

/* AVX2 + FMA (ukernel_avx2_6x16.c): 12 of the 16 ymm registers hold the 6 x 16 tile. The
 * blocks are sized, not measured (no AVX2-only CPU at hand; on AVX-512 machines this path
 * only serves the tests): KC 256 keeps a B micro-panel (16 KiB) and an A one in a 32 KiB
 * L1; MC 144 x KC and KC x NC 512 in a 1 MiB L2; MB 1536 rows (commit 8106d7e). */
#define AC_AVX2_MR 6
#define AC_AVX2_NR 16
#define AC_AVX2_KC 256
#define AC_AVX2_MC 144
#define AC_AVX2_NC 512
#define AC_AVX2_MB 1536

/* NEON (ukernel_neon_8x12.c, aarch64): 24 of the 32 q registers hold the 8 x 12 tile. Sized,
 * not measured (no ARM CPU at hand; docs/PLATFORMS.md): KC 256 keeps a B micro-panel
 * (12 KiB) and an A one (8 KiB) in a 32 KiB L1 (Cortex-A72/A76; Neoverse and Apple cores
 * have 64-128 KiB); MC 128 x KC (128 KiB) and KC x NC 480 (480 KiB) in a 1 MiB L2 (Neoverse
 * N1/V1; Apple's is shared and larger); MB 1024 rows. */
#define AC_NEON_MR 8
#define AC_NEON_NR 12
#define AC_NEON_KC 256
#define AC_NEON_MC 128
#define AC_NEON_NC 480
#define AC_NEON_MB 1024

/* Portable C (ukernel_generic_4x8.c), the reference twin and the path for CPUs without AVX2:
 * 4 x 8 accumulators the compiler keeps in registers; blocks sized for a 32 KiB L1 and a
 * 512 KiB L2, not measured (commit 8106d7e). */
#define AC_GENERIC_MR 4
#define AC_GENERIC_NR 8
#define AC_GENERIC_KC 256
#define AC_GENERIC_MC 128
#define AC_GENERIC_NC 512
#define AC_GENERIC_MB 1024

#endif
