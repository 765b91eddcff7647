/*
 * The monotonic clock as the runtime's threads use it: time in ns, cond
 * vars that wait on it, and absolute deadlines for pthread_cond_timedwait.
 */
#ifndef SL_MONOTIME_H
#define SL_MONOTIME_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/** CLOCK_MONOTONIC in ns. */
static inline int64_t
mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/** CLOCK_MONOTONIC_COARSE in ns: a few ns to read, behind mono_ns() by
 * up to a clock tick (a few ms); for deadlines checked per event. */
static inline int64_t
mono_coarse_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/** The timespec of mono_at (a mono_ns() value), for a mono cond var. */
static inline void
abs_deadline(struct timespec *ts, int64_t mono_at)
{
	ts->tv_sec  = (time_t) (mono_at / 1000000000);
	ts->tv_nsec = (long) (mono_at % 1000000000);
}

/** A cond var whose timed waits use CLOCK_MONOTONIC (not the wall clock,
 * which may jump). */
static inline void
cond_init_mono(pthread_cond_t *cv)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
}

#endif
