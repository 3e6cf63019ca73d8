/* Measured FMA peak: the ceiling the GEMM is judged against. */
#ifndef AC_PEAK_H
#define AC_PEAK_H
#include "ac_common.h"

/* Run independent FMA chains on path isa (enum ac_isa) on nthreads threads for about
 * `seconds`; return the achieved single-precision GFLOP/s (2 flops per lane per FMA). */
double ac_fma_peak_gflops(int isa, double seconds, int nthreads);

/* The same with vpdpbusd chains (AVX512-VNNI): GOP/s, 2 ops per u8 x s8 product; 0 on a
 * CPU without VNNI. */
double ac_vnni_peak_gops(double seconds, int nthreads);

#endif
