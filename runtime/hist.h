/*
 * A histogram for the metrics endpoint (runtime/net/metrics.c): counts per
 * upper bound, plus sum and count, updated with relaxed atomics from the
 * thread that observes (no lock on the hot path), read at any time.
 */
#ifndef SL_HIST_H
#define SL_HIST_H

#include <stddef.h>
#include <stdint.h>

#define HIST_MAX_BOUNDS 16

typedef struct hist {
	const uint64_t *bounds;  /* ascending upper bounds (le), +Inf after */
	size_t          n_bounds; /* <= HIST_MAX_BOUNDS */
	uint64_t        counts[HIST_MAX_BOUNDS + 1]; /* per bucket, not summed */
	uint64_t        sum;
	uint64_t        count;
} hist;

/** A histogram over bounds (static, ascending, at most HIST_MAX_BOUNDS). */
static inline void
hist_init(hist *h, const uint64_t *bounds, size_t n_bounds)
{
	*h = (hist) { .bounds = bounds,
		.n_bounds     = n_bounds < HIST_MAX_BOUNDS ? n_bounds
		                                           : HIST_MAX_BOUNDS };
}

static inline void
hist_observe(hist *h, uint64_t v)
{
	size_t i = 0;
	while (i < h->n_bounds && v > h->bounds[i])
		i++;
	__atomic_fetch_add(&h->counts[i], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&h->sum, v, __ATOMIC_RELAXED);
	__atomic_fetch_add(&h->count, 1, __ATOMIC_RELAXED);
}

/** A copy of h's counters at about one moment (each one atomic). */
static inline void
hist_read(const hist *h, hist *out)
{
	out->bounds   = h->bounds;
	out->n_bounds = h->n_bounds;
	for (size_t i = 0; i <= h->n_bounds; i++)
		out->counts[i] = __atomic_load_n(&h->counts[i], __ATOMIC_RELAXED);
	out->sum   = __atomic_load_n(&h->sum, __ATOMIC_RELAXED);
	out->count = __atomic_load_n(&h->count, __ATOMIC_RELAXED);
}

#endif
