/* Work splitting and the threading schemes the kernels share (OpenMP underneath).
 *
 * Every split of n items among threads is ac_split: whole units (a micro-panel, a cache
 * line of columns, one image), contiguous, in thread order; it depends on n, the unit and
 * the team size only, so the items a thread gets never depend on timing. */
#ifndef AC_PARALLEL_H
#define AC_PARALLEL_H
#include "ac_common.h"

/* Items [lo, hi) of part t of T when n items are cut in units of `unit` (the last unit may
 * be short) and the units shared out as evenly as they go (empty when there are fewer). */
typedef struct {
    long lo, hi;
} ac_range;
static inline ac_range ac_split(long n, long unit, int t, int T)
{
    const long nu = (n + unit - 1) / unit;
    const long lo = nu * t / T * unit, hi = nu * (t + 1) / T * unit;
    return (ac_range){lo < n ? lo : n, hi < n ? hi : n};
}

/* Body of a parallel region: thread t of T, with its own scratch. */
typedef void (*ac_team_fn)(void *ctx, int t, int T, float *scratch);

/* Runs fn on a team of nt threads (nt > 1), thread t with scratch + t * per floats. fn may
 * hold barriers (an orphaned `#pragma omp barrier` binds to this region). */
void ac_team_run(int nt, ac_team_fn fn, void *ctx, float *scratch, size_t per);

/* Work on items [i0, i1) with scratch, using nt threads inside (nt == 1: on the caller's
 * thread, no parallel region). */
typedef void (*ac_items_fn)(void *ctx, int i0, int i1, float *scratch, int nt);

/* "Items per thread, the rest threaded": of n items, the first n / nt * nt are shared out
 * whole (ac_split, unit 1), each thread calling fn(ctx, i0, i1, its scratch, 1) on its
 * range with scratch + t * per; the rest run on the caller, fn(ctx, n0, n, scratch, nt)
 * (threaded inside). Independent items then never wait for each other, and a batch of one
 * still uses every thread. per: floats fn needs at nt == 1 (a multiple of 16 keeps the
 * threads' scratch on separate cache lines). */
void ac_items_run(int n, int nt, ac_items_fn fn, void *ctx, float *scratch, size_t per);

/* Scratch ac_items_run needs: nt * per (fn at one thread each) or `threaded` (fn's need
 * at nt threads), whichever is more. */
static inline size_t ac_items_floats(size_t per, size_t threaded, int nt)
{
    const size_t all = (size_t)(nt > 1 ? nt : 1) * per;
    return all > threaded ? all : threaded;
}

#endif
