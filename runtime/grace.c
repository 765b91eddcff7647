/*
 * Grace periods (grace.h): two counters of readers, one per side of an
 * epoch. A waiter flips the epoch, so readers arriving later count on the
 * other side, and waits for the old side to drain.
 */
#include "grace.h"

#include "monotime.h"

void
grace_init(grace *g)
{
	atomic_init(&g->epoch, 0);
	atomic_init(&g->readers[0], 0);
	atomic_init(&g->readers[1], 0);
	atomic_init(&g->waiting, 0);
	pthread_mutex_init(&g->mu, NULL);
	cond_init_mono(&g->cv);
}

void
grace_fini(grace *g)
{
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
}

unsigned
grace_enter(grace *g)
{
	for (;;) {
		unsigned long e    = atomic_load(&g->epoch);
		unsigned      side = (unsigned) (e & 1);
		atomic_fetch_add(&g->readers[side], 1);
		/* The epoch unchanged after counting in: a waiter that flips
		 * it later sees this reader. Changed: the waiter may have
		 * looked at this side already, so count on the new one. */
		if (atomic_load(&g->epoch) == e)
			return side;
		grace_leave(g, side);
	}
}

void
grace_leave(grace *g, unsigned side)
{
	if (atomic_fetch_sub(&g->readers[side], 1) == 1
	    && atomic_load(&g->waiting) > 0) {
		pthread_mutex_lock(&g->mu);
		pthread_cond_broadcast(&g->cv);
		pthread_mutex_unlock(&g->mu);
	}
}

bool
grace_wait(grace *g, const atomic_bool *stop)
{
	bool ok = true;
	pthread_mutex_lock(&g->mu);
	atomic_fetch_add(&g->waiting, 1);
	unsigned long e    = atomic_fetch_add(&g->epoch, 1);
	unsigned      side = (unsigned) (e & 1);
	while (atomic_load(&g->readers[side]) > 0) {
		if (stop != NULL && atomic_load(stop)) {
			ok = false;
			break;
		}
		struct timespec ts;
		abs_deadline(&ts, mono_ns() + 50000000);
		pthread_cond_timedwait(&g->cv, &g->mu, &ts);
	}
	atomic_fetch_sub(&g->waiting, 1);
	pthread_mutex_unlock(&g->mu);
	return ok;
}
