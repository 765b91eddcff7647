/*
 * Grace periods for what the runtime frees while it runs (an expired
 * remote registration, its processors and definitions): threads that may
 * hold pointers to them (an API request, a metrics scrape) read inside
 * grace_enter / grace_leave; the one freeing first unlinks the objects so
 * that no new reader can find them, then grace_wait waits until every
 * reader that could have found them has left. Readers never wait, and a
 * stream of new readers cannot hold a waiter back (they count on the
 * other side of the epoch), as in userspace RCU.
 */
#ifndef SL_GRACE_H
#define SL_GRACE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

typedef struct grace {
	atomic_ulong    epoch;      /* readers count in readers[epoch & 1] */
	atomic_long     readers[2]; /* inside, per side */
	atomic_int      waiting;    /* a grace_wait runs: wake it */
	pthread_mutex_t mu;         /* one waiter at a time; cv */
	pthread_cond_t  cv;
} grace;

void grace_init(grace *g);
void grace_fini(grace *g);
/** Enter a read section. @return the side, for grace_leave. */
unsigned grace_enter(grace *g);
void     grace_leave(grace *g, unsigned side);
/**
 * Wait until every reader inside when this was called has left (what was
 * unlinked before the call can then be freed). Gives up when *stop turns
 * true (checked every 50 ms; stop may be NULL).
 * @return true when the readers left; false when given up.
 */
bool grace_wait(grace *g, const atomic_bool *stop);

#endif
