/* CPU feature detection. */
#include "ac_cpu.h"

int ac_isa_supported(int isa)
{
    __builtin_cpu_init();
    switch (isa) {
    case AC_ISA_GENERIC: return 1;
    case AC_ISA_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case AC_ISA_AVX512:
        /* F for the arithmetic, VL/BW/DQ for masked tails. */
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
    }
    return 0;
}

int ac_isa_best(void)
{
    if (ac_isa_supported(AC_ISA_AVX512)) return AC_ISA_AVX512;
    if (ac_isa_supported(AC_ISA_AVX2)) return AC_ISA_AVX2;
    return AC_ISA_GENERIC;
}

int ac_have_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}
