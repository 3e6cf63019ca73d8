/* CPU feature detection and the process-wide ISA choice for SIMD kernels. */
#ifndef AC_CPU_H
#define AC_CPU_H
#include "ac_common.h"

/* 1 if this CPU (and OS) can run the given path. */
int ac_isa_supported(int isa);
/* Best path this CPU supports. */
int ac_isa_best(void);
/* Select the path used by every dispatched kernel; returns 0, or -1 if unsupported. */
int ac_set_isa(int isa);
int ac_get_isa(void);
/* 1 if built with OpenMP. */
int ac_have_openmp(void);
#endif
