/* FMA peak meter: each thread runs 12 independent vector FMA chains (enough to cover FMA
 * latency x ports on current cores) in a register-only loop; flops over wall time. */
#include "ac_bf16.h"
#include "ac_int8.h"
#include "ac_peak.h"
#include "ac_simd.h"
#include <time.h>

#define CHAINS 12
#define ITERS 4096L /* per timing check */

#ifndef AC_PEAK_CLOCK
#define AC_PEAK_CLOCK CLOCK_MONOTONIC
#endif

static double now(void)
{
    struct timespec t;
    clock_gettime(AC_PEAK_CLOCK, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Twelve named accumulators (an array would live in memory); the empty asm keeps the
 * chains live and unmerged. */
/* clang-format off */
#define CHAIN_LOOP(V, FMA, SET1, M, A, CONSTRAINT)                                      \
    V c0 = SET1(0.f), c1 = SET1(1.f), c2 = SET1(2.f), c3 = SET1(3.f), c4 = SET1(4.f),    \
      c5 = SET1(5.f), c6 = SET1(6.f), c7 = SET1(7.f), c8 = SET1(8.f), c9 = SET1(9.f),    \
      c10 = SET1(10.f), c11 = SET1(11.f);                                                \
    const V m = M, a = A;                                                               \
    for (long it = 0; it < iters; it++) {                                               \
        c0 = FMA(c0, m, a); c1 = FMA(c1, m, a); c2 = FMA(c2, m, a); c3 = FMA(c3, m, a);  \
        c4 = FMA(c4, m, a); c5 = FMA(c5, m, a); c6 = FMA(c6, m, a); c7 = FMA(c7, m, a);  \
        c8 = FMA(c8, m, a); c9 = FMA(c9, m, a); c10 = FMA(c10, m, a);                   \
        c11 = FMA(c11, m, a);                                                           \
        __asm__ volatile("" : "+" CONSTRAINT(c0), "+" CONSTRAINT(c1), "+" CONSTRAINT(c2), \
                         "+" CONSTRAINT(c3), "+" CONSTRAINT(c4), "+" CONSTRAINT(c5),     \
                         "+" CONSTRAINT(c6), "+" CONSTRAINT(c7), "+" CONSTRAINT(c8),     \
                         "+" CONSTRAINT(c9), "+" CONSTRAINT(c10), "+" CONSTRAINT(c11));  \
    }
/* clang-format on */

#ifdef AC_X86_64
AC_TARGET_AVX512 __attribute__((noinline)) static float chains_avx512(long iters)
{
    CHAIN_LOOP(__m512, _mm512_fmadd_ps, _mm512_set1_ps, _mm512_set1_ps(0.999999f),
               _mm512_set1_ps(1e-6f), "v")
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),
                             _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(c8, c9), _mm512_add_ps(c10, c11)));
    return _mm512_reduce_add_ps(s);
}

AC_TARGET_AVX2 __attribute__((noinline)) static float chains_avx2(long iters)
{
    CHAIN_LOOP(__m256, _mm256_fmadd_ps, _mm256_set1_ps, _mm256_set1_ps(0.999999f),
               _mm256_set1_ps(1e-6f), "x")
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                             _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(c8, c9), _mm256_add_ps(c10, c11)));
    float r[8];
    _mm256_storeu_ps(r, s);
    return r[0] + r[7];
}

/* vdpbf16ps chains: c += 1.0 * 2^-10 twice per lane and step (bf16 pairs; no overflow). */
#define DPBF16(c, m, a) _mm512_dpbf16_ps(c, (__m512bh)(m), (__m512bh)(a))
#define PAIRS(w) _mm512_castsi512_ps(_mm512_set1_epi32(w))
AC_TARGET_AVX512BF16 __attribute__((noinline)) static float chains_bf16(long iters)
{
    CHAIN_LOOP(__m512, DPBF16, _mm512_set1_ps, PAIRS(0x3f803f80), PAIRS(0x3a803a80), "v")
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),
                             _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(c8, c9), _mm512_add_ps(c10, c11)));
    return _mm512_reduce_add_ps(s);
}

/* vpdpbusd chains: 64 u8 x s8 products a step; the s32 sums wrap, harmlessly. */
#define DPBUSD(c, m, a) _mm512_dpbusd_epi32(c, m, a)
__attribute__((target("avx512f,avx512vnni"), noinline)) static float chains_vnni(long iters)
{
    CHAIN_LOOP(__m512i, DPBUSD, _mm512_set1_epi32, _mm512_set1_epi32(0x01020304),
               _mm512_set1_epi32(0x05060708), "v")
    __m512i s = _mm512_add_epi32(
        _mm512_add_epi32(_mm512_add_epi32(c0, c1), _mm512_add_epi32(c2, c3)),
        _mm512_add_epi32(_mm512_add_epi32(c4, c5), _mm512_add_epi32(c6, c7)));
    s = _mm512_add_epi32(
        s, _mm512_add_epi32(_mm512_add_epi32(c8, c9), _mm512_add_epi32(c10, c11)));
    return (float)_mm512_reduce_add_epi32(s);
}
#endif

#ifdef AC_AARCH64
#define FMLA(c, m, a) vfmaq_f32(a, c, m)
__attribute__((noinline)) static float chains_neon(long iters)
{
    CHAIN_LOOP(float32x4_t, FMLA, vdupq_n_f32, vdupq_n_f32(0.999999f), vdupq_n_f32(1e-6f), "w")
    float32x4_t s = vaddq_f32(vaddq_f32(vaddq_f32(c0, c1), vaddq_f32(c2, c3)),
                              vaddq_f32(vaddq_f32(c4, c5), vaddq_f32(c6, c7)));
    s = vaddq_f32(s, vaddq_f32(vaddq_f32(c8, c9), vaddq_f32(c10, c11)));
    return vaddvq_f32(s);
}
#endif

/* Portable: 4-wide scalar chains the compiler may vectorise; counts as mul + add. */
__attribute__((noinline)) static float chains_generic(long iters)
{
    float acc[CHAINS][4];
    for (int c = 0; c < CHAINS; c++)
        for (int l = 0; l < 4; l++) acc[c][l] = (float)c;
    for (long it = 0; it < iters; it++) {
        for (int c = 0; c < CHAINS; c++)
            for (int l = 0; l < 4; l++) acc[c][l] = acc[c][l] * 0.999999f + 1e-6f;
        __asm__ volatile("" : : "r"(acc) : "memory");
    }
    float s = 0.f;
    for (int c = 0; c < CHAINS; c++) s += acc[c][0];
    return s;
}

/* GFLOP/s of `chains` on nthreads threads for about `seconds`. */
static double run(float (*chains)(long), double flops_per_iter, double seconds, int nthreads)
{
    double total = 0.0, t0 = 0.0, t1 = 0.0;
    volatile float sink = 0.f;
    if (nthreads < 1) nthreads = 1;

#pragma omp parallel num_threads(nthreads) reduction(+ : total)
    {
        float s = 0.f;
        long done = 0;
        /* Warm up (wide-vector clocks settle), then time all threads from one start. */
        double w = now();
        while (now() - w < 0.02) s += chains(ITERS);
#pragma omp barrier
#pragma omp master
        t0 = now();
#pragma omp barrier
        while (now() - t0 < seconds) {
            s += chains(ITERS);
            done += ITERS;
        }
#pragma omp barrier
#pragma omp master
        t1 = now();
        total += (double)done;
        if (s == -1.f) sink = s; /* keeps the chains' result live */
    }
    (void)sink;
    return total * flops_per_iter / (t1 - t0) / 1e9;
}

double ac_fma_peak_gflops(int isa, double seconds, int nthreads)
{
    const double lanes = isa == AC_ISA_AVX512 ? 16 : isa == AC_ISA_AVX2 ? 8 : 4;
    return run(AC_ISA_PICK(isa, chains), 2.0 * lanes * CHAINS, seconds, nthreads);
}

double ac_bf16_peak_gflops(double seconds, int nthreads)
{
#ifdef AC_X86_64
    if (!ac_bf16_supported()) return 0.0;
    return run(chains_bf16, 2.0 * 32 * CHAINS, seconds, nthreads); /* 32 products a lane set */
#else
    (void)seconds, (void)nthreads;
    return 0.0;
#endif
}

double ac_vnni_peak_gops(double seconds, int nthreads)
{
#ifdef AC_X86_64
    if (!ac_i8_vnni_supported()) return 0.0;
    return run(chains_vnni, 2.0 * 64 * CHAINS, seconds, nthreads); /* 64 products a step */
#else
    (void)seconds, (void)nthreads;
    return 0.0;
#endif
}
