/* The threading schemes of ac_parallel.h. */
#include "ac_parallel.h"

void ac_team_run(int nt, ac_team_fn fn, void *ctx, float *scratch, size_t per)
{
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num();
        fn(ctx, t, omp_get_num_threads(), scratch + (size_t)t * per);
    }
}

typedef struct {
    ac_items_fn fn;
    void *ctx;
    int nfull;
} items_team;

static void items_share(void *ctx, int t, int T, float *scratch)
{
    const items_team *it = (const items_team *)ctx;
    const ac_range r = ac_split(it->nfull, 1, t, T);
    if (r.hi > r.lo) it->fn(it->ctx, (int)r.lo, (int)r.hi, scratch, 1);
}

void ac_items_run(int n, int nt, ac_items_fn fn, void *ctx, float *scratch, size_t per)
{
    const int nfull = nt > 1 ? n / nt * nt : 0;
    if (nfull > 0) {
        items_team it = {fn, ctx, nfull};
        ac_team_run(nt, items_share, &it, scratch, per);
    }
    if (n > nfull) fn(ctx, nfull, n, scratch, nt);
}
