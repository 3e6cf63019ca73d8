/* Shared helpers for the C kernels: OpenMP stubs and small macros.
 * Kernels are pure functions over raw float buffers; the caller passes the
 * thread count explicitly (decided once, in alexnet_cpu/_threads.py). */
#ifndef AC_COMMON_H
#define AC_COMMON_H

#include <stddef.h>

#ifdef _OPENMP
#include <omp.h>
#else
/* Built without OpenMP: every kernel runs on one thread. */
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
static inline int omp_get_max_threads(void) { return 1; }
static inline void omp_set_num_threads(int n) { (void)n; }
#endif

#define AC_MIN(a, b) ((a) < (b) ? (a) : (b))
#define AC_MAX(a, b) ((a) > (b) ? (a) : (b))
#define AC_ALIGN 64

/* Instruction-set paths: x86-64's best last, then aarch64's (a CPU has the paths of its
 * architecture only). */
enum ac_isa { AC_ISA_GENERIC = 0, AC_ISA_AVX2 = 1, AC_ISA_AVX512 = 2, AC_ISA_NEON = 3 };

#endif
