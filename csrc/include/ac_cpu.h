/* CPU feature detection for the SIMD paths (which path a call runs is its ac_ctx's). */
#ifndef AC_CPU_H
#define AC_CPU_H
#include "ac_common.h"

/* 1 if this CPU (and OS) can run the given path. */
int ac_isa_supported(int isa);
/* 1 if this build has the path's code (the paths of the architecture it was compiled for). */
int ac_isa_built(int isa);
/* Best path this CPU supports. */
int ac_isa_best(void);
/* 1 if built with OpenMP. */
int ac_have_openmp(void);
#endif
