/* The AVX512-VNNI int8 micro-kernel (csrc/gemm/int8_vnni.c) compiled against SIMDe's
 * portable intrinsics and run through the real driver (int8_gemm.c), bitwise against the
 * portable reference row, on CPUs without VNNI. Built and run by tests/test_int8_simde.py:
 *   cc -DAC_I8_SIMDE -Icsrc/include -Icsrc/gemm tests/int8_simde.c csrc/gemm/int8_gemm.c
 *      csrc/gemm/int8_generic.c csrc/gemm/int8_vnni.c csrc/cpu.c csrc/parallel.c -lm
 * Prints one line per failure and "ok N" at the end; exit status 1 on any failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "int8_internal.h"

/* This build's registry: the reference and the VNNI row (whose store, AVX-512's in the real
 * registry, is tested natively against the reference by tests/test_int8.py). */
const ac_i8_kernel ac_i8_kernels[] = {
    {AC_ISA_GENERIC, 0, AC_I8_GENERIC_MR, AC_I8_GENERIC_NR, 1, 0, 128 << 10,
     ac_i8_ukernel_generic, ac_i8_store_generic},
    {AC_ISA_AVX512, 0, AC_I8_VNNI_MR, AC_I8_VNNI_NR, 1, 0, 512 << 10, ac_i8_ukernel_vnni,
     ac_i8_store_generic},
};
const int ac_i8_nkernels = 2;

static unsigned rng = 12345u;
static unsigned next(void) { return rng = rng * 1664525u + 1013904223u, rng >> 8; }

/* Runs ac_i8_gemm (plain) or ac_i8_conv2d on both rows; 1 if the outputs differ. */
static int check(int conv, int M, int N, int K, int f32, int extreme)
{
    const ac_ctx ref = {AC_ISA_GENERIC, 0, 0, 0}, vnni = {AC_ISA_AVX512, 0, 0, 0};
    /* conv: 2 images of 9 x 7 pixels, 5 channels in 1 group, 3x3 kernel, stride 2, pad 1 */
    const ac_i8_conv g = {NULL, 9, 7, 5, 0, 5, 3, 2, 1, 5, 4, 77};
    if (conv) M = 2 * g.OH * g.OW, K = 9 * g.cg;
    const size_t asz = conv ? (size_t)2 * g.H * g.W * g.C : (size_t)M * K;
    uint8_t *A = malloc(asz);
    int8_t *B = malloc((size_t)N * K);
    int32_t *comp = malloc(sizeof(int32_t) * N);
    float *mul = malloc(sizeof(float) * N), *add = malloc(sizeof(float) * N);
    const size_t esz = f32 ? sizeof(float) : 1;
    char *C0 = malloc((size_t)M * N * esz), *C1 = malloc((size_t)M * N * esz);
    for (size_t i = 0; i < asz; i++) A[i] = extreme ? 255 : (uint8_t)next();
    for (size_t i = 0; i < (size_t)N * K; i++)
        B[i] = extreme ? (i % 2 ? 127 : -128) : (int8_t)next();
    for (int j = 0; j < N; j++) {
        comp[j] = (int)(next() % 2001) - 1000;
        mul[j] = f32 ? 1.f : (float)(next() % 1000) / 4e5f;
        add[j] = (float)(next() % 200) - 100.f;
    }
    int bad = 0;
    char *Cs[2] = {C0, C1};
    const ac_ctx *ctxs[2] = {&ref, &vnni};
    for (int r = 0; r < 2; r++) {
        int8_t *Bp = malloc(ac_i8_packed_b_bytes(N, K, ctxs[r]));
        void *w = malloc(ac_i8_work_bytes(K, ctxs[r], 1));
        ac_i8_pack_b(Bp, B, N, K, K, ctxs[r]);
        ac_i8_out o = {comp, mul, add, f32, 1, Cs[r], (size_t)N};
        if (conv) {
            ac_i8_conv gg = g;
            gg.x = A;
            ac_i8_conv2d(&gg, 2, 1, N, Bp, &o, w, ctxs[r], 1);
        } else {
            ac_i8_gemm(M, N, K, A, K, Bp, &o, w, ctxs[r], 1);
        }
        free(Bp);
        free(w);
    }
    if (memcmp(C0, C1, (size_t)M * N * esz)) {
        printf("MISMATCH conv=%d M=%d N=%d K=%d f32=%d extreme=%d\n", conv, M, N, K, f32,
               extreme);
        bad = 1;
    }
    free(A), free(B), free(comp), free(mul), free(add), free(C0), free(C1);
    return bad;
}

int main(void)
{
    static const int shapes[][3] = {{1, 1, 1},    {1, 17, 5},    {3, 31, 4},
                                    {8, 32, 64},  {9, 33, 65},   {17, 65, 3},
                                    {7, 100, 37}, {30, 47, 301}, {2, 5, 2051}};
    int n = 0, bad = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int f32 = 0; f32 < 2; f32++)
            for (int ex = 0; ex < 2; ex++, n++)
                bad += check(0, shapes[s][0], shapes[s][1], shapes[s][2], f32, ex);
    for (int N = 1; N <= 70; N += 23)
        for (int f32 = 0; f32 < 2; f32++, n++) bad += check(1, 0, N, 0, f32, 0);
    printf("%s %d\n", bad ? "FAILED" : "ok", n);
    return bad != 0;
}
