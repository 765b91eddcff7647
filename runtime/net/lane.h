/*
 * A lane: a bounded queue of work items and the worker threads that run
 * them. The API server (server.c) queues each request on one from NNG's
 * receive callback, so that a slow op never runs on NNG's threads and
 * slow ops cannot take the workers of fast ones.
 */
#ifndef SL_LANE_H
#define SL_LANE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct lane lane;

/** Runs one item on a worker thread; owns the item from then on. */
typedef void (*lane_fn)(void *arg, void *item);

/** A lane's counters at one moment. */
typedef struct lane_stats {
	uint32_t workers;  /* threads */
	uint32_t busy;     /* threads running an item */
	uint32_t queued;   /* items waiting */
	uint32_t capacity; /* items that may wait */
	uint64_t done;     /* items run since the start */
	uint64_t refused;  /* pushes refused: the queue was full */
} lane_stats;

/**
 * Start `workers` threads that run fn(arg, item) for each pushed item, in
 * the order pushed.
 * @param name      for logs and thread names ("api-fast")
 * @param capacity  items that may wait (1 or more)
 * @param nice      the workers' nice value relative to the process (0:
 *                  the same; > 0: they yield the CPU to other threads)
 * @return SL_OK, SL_EINVAL, SL_ENOMEM (nothing left running).
 */
int lane_start(const char *name, uint32_t workers, uint32_t capacity, int nice,
    lane_fn fn, void *arg, lane **out);

/**
 * Queue item. Never blocks: safe on NNG's callback threads.
 * @return true if queued (a worker will run it); false if capacity items
 * wait already beyond the idle workers, or the lane is stopping (the
 * caller keeps the item).
 */
bool lane_push(lane *l, void *item);

void lane_stats_get(lane *l, lane_stats *out);

/**
 * Stop: the workers run what is queued, then end; joins them and frees the
 * lane. No push may come during or after it. NULL is a no-op.
 */
void lane_stop(lane *l);

#endif
