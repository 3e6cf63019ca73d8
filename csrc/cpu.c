/* CPU feature detection: each architecture answers for its own paths, the others' are
 * unsupported. */
#include "ac_cpu.h"
#include "ac_simd.h"

#if defined(AC_AARCH64) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#elif defined(AC_AARCH64) && defined(__APPLE__)
#include <sys/sysctl.h>
#endif

#ifdef AC_AARCH64
/* ASIMD (NEON) is part of every aarch64 CPU; the OS is asked anyway, in case it hides it. */
static int have_neon(void)
{
#if defined(__linux__)
    return (getauxval(AT_HWCAP) & HWCAP_ASIMD) != 0;
#elif defined(__APPLE__)
    int v = 0;
    size_t n = sizeof v;
    return sysctlbyname("hw.optional.neon", &v, &n, NULL, 0) != 0 || v != 0;
#else
    return 1;
#endif
}
#endif

int ac_isa_supported(int isa)
{
#ifdef AC_X86_64
    __builtin_cpu_init();
#endif
    switch (isa) {
    case AC_ISA_GENERIC: return 1;
#ifdef AC_X86_64
    case AC_ISA_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case AC_ISA_AVX512:
        /* F for the arithmetic, VL/BW/DQ for masked tails. */
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
#endif
#ifdef AC_AARCH64
    case AC_ISA_NEON: return have_neon();
#endif
    }
    return 0;
}

int ac_isa_built(int isa)
{
    switch (isa) {
    case AC_ISA_GENERIC: return 1;
#ifdef AC_X86_64
    case AC_ISA_AVX2:
    case AC_ISA_AVX512: return 1;
#endif
#ifdef AC_AARCH64
    case AC_ISA_NEON: return 1;
#endif
    }
    return 0;
}

int ac_isa_best(void)
{
    if (ac_isa_supported(AC_ISA_AVX512)) return AC_ISA_AVX512;
    if (ac_isa_supported(AC_ISA_AVX2)) return AC_ISA_AVX2;
    if (ac_isa_supported(AC_ISA_NEON)) return AC_ISA_NEON;
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
