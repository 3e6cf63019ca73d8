/* SIMD paths: the target attribute of each instruction-set path, spelled once; the one way
 * to pick a path's variant of a function; the rounding helpers the kernels share.
 *
 * A kernel with SIMD variants names them f_generic, f_avx2, f_avx512, f_neon (same
 * signature) and calls AC_ISA_PICK(isa, f)(args). A kernel without a body of its own for a
 * path says `#define f_avx2 f_generic` (or f_neon). Sources are chosen by architecture:
 * x86 intrinsics compile only where AC_X86_64 is defined, NEON ones only where AC_AARCH64 is
 * (whole files too: ukernel_avx*.c, ukernel_neon_*.c), and AC_ISA_PICK names only the
 * variants of the architecture being compiled. On x86-64 the extension is compiled for
 * baseline x86-64: only functions carrying AC_TARGET_AVX2 / AC_TARGET_AVX512 may use those
 * instructions, and they run only on the path the context names (csrc/cpu.c checks the
 * CPU). On aarch64 NEON (ASIMD) is baseline, so the portable bodies are vectorised with it
 * too; the neon path adds the hand-written kernels (GEMM micro-kernel, small GEMM). */
#ifndef AC_SIMD_H
#define AC_SIMD_H
#include "ac_common.h"

#if defined(__x86_64__) || defined(_M_X64)
#define AC_X86_64 1
#include <immintrin.h>
#elif defined(__aarch64__) || defined(_M_ARM64)
#define AC_AARCH64 1
#include <arm_neon.h>
#endif

#ifdef AC_X86_64
/* Feature sets (ac_isa_supported checks the same ones). FMA comes with AVX-512F's own
 * encodings; it is listed so that 256-bit code inside AVX-512 functions may use it too. */
#define AC_ISA_AVX2_FEATURES "avx2,fma"
#define AC_ISA_AVX512_FEATURES "avx512f,avx512vl,avx512bw,avx512dq,fma"
#define AC_TARGET_AVX2 __attribute__((target(AC_ISA_AVX2_FEATURES)))
#define AC_TARGET_AVX512 __attribute__((target(AC_ISA_AVX512_FEATURES)))
/* AVX-512 where the compiler vectorises loops itself: gcc's default tuning stops at 256-bit
 * vectors for those; clang spells the same wish min_vector_width (and refuses gcc's). */
#if defined(__clang__)
#define AC_TARGET_AVX512_WIDE                                                                  \
    __attribute__((target(AC_ISA_AVX512_FEATURES), min_vector_width(512)))
#else
#define AC_TARGET_AVX512_WIDE                                                                  \
    __attribute__((target(AC_ISA_AVX512_FEATURES ",prefer-vector-width=512")))
#endif
/* AVX-512 with AVX512_BF16 (vdpbf16ps, vcvtne2ps2bf16): the bf16 kernels (ac_bf16.h). */
#define AC_ISA_AVX512BF16_FEATURES AC_ISA_AVX512_FEATURES ",avx512bf16"
#define AC_TARGET_AVX512BF16 __attribute__((target(AC_ISA_AVX512BF16_FEATURES)))
#endif

/* The variant of f for path isa (enum ac_isa), among this architecture's. */
#if defined(AC_X86_64)
#define AC_ISA_PICK(isa, f)                                                                    \
    ((isa) == AC_ISA_AVX512 ? f##_avx512 : (isa) == AC_ISA_AVX2 ? f##_avx2 : f##_generic)
#elif defined(AC_AARCH64)
#define AC_ISA_PICK(isa, f) ((isa) == AC_ISA_NEON ? f##_neon : f##_generic)
#else
#define AC_ISA_PICK(isa, f) ((void)(isa), f##_generic)
#endif

/* Force inlining into each path's caller, so one body compiles once per target. */
#define AC_INLINE static inline __attribute__((always_inline))

/* x rounded up to a multiple of m. */
static inline size_t ac_round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }
static inline int ac_ceil_div(int a, int b) { return (a + b - 1) / b; }
/* n floats rounded up to 16 (64 bytes, AC_ALIGN): buffers laid end to end then never share
 * a cache line. */
static inline size_t ac_pad16(size_t n) { return (n + 15) & ~(size_t)15; }
/* p rounded up to AC_ALIGN bytes. */
static inline float *ac_align(float *p)
{
    return (float *)(((size_t)p + AC_ALIGN - 1) & ~(size_t)(AC_ALIGN - 1));
}

#endif
