/*
 * The system projections' shared reader: one per (log, tenant), shared by
 * that tenant's five system projection processors. Whichever of them
 * first needs a span of the log reads it once (the events read in place,
 * ev_peek_raw; other tenants' skipped after their tenant), decides every
 * system projection's link for each of the tenant's events there
 * (sysproj_peek) and keeps the result in a small window of chunks; the
 * others walk the chunk instead of the log. Each processor keeps its own
 * checkpoint, batches, commands and status (projection.c, proc_emit.c): a
 * processor outside the window (reset, stopped for a while, far behind)
 * reads the log itself until it catches up with it.
 */
#ifndef SL_SYSFEED_H
#define SL_SYSFEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "sysproj.h"

typedef struct sysfeed sysfeed;

/* Log positions one chunk covers at most; the window holds at most
 * SYSFEED_CHUNKS such spans of positions, in at most SYSFEED_RING chunks
 * (live, a chunk holds what one commit added). */
#define SYSFEED_SPAN   4096
#define SYSFEED_CHUNKS 4
#define SYSFEED_RING   64

/** What a walk shows of one of the tenant's events, for projection i. */
typedef struct sysfeed_event {
	uint64_t position;
	/* bytes of the log read for it: its record, and those of the other
	 * tenants' events since the tenant's event before it */
	uint64_t bytes;
	/* in a stream projection i writes: not handled (own_stream) */
	bool own;
	/* not decided from the stored bytes: handle the decoded event */
	bool slow;
	/* its link: into stream (NULL: none), to revision of target */
	const char    *stream; /* NUL-terminated */
	const char    *target;
	size_t         target_len;
	uint64_t       revision;
	const uint8_t *id;   /* the event's id (16 bytes) */
	const char    *corr; /* its correlation id */
	size_t         corr_len;
	/* (every pointer valid during the call) */
} sysfeed_event;

/** Called for each event of a walk; nonzero stops it (returned). */
typedef int (*sysfeed_fn)(void *arg, const sysfeed_event *ev);

/**
 * The shared reader of tenant's system projections in s (made on the
 * first call, counted). @return NULL when out of memory.
 */
sysfeed *sysfeed_get(store *s, const char *tenant);
/** Drop a reference: the last one frees it. */
void sysfeed_put(sysfeed *f);

/**
 * Walk what system projection i (sysproj_def's index) links for the
 * tenant's events from position pos, below limit, within one chunk:
 * the chunk holding pos, read now (by this thread) when pos is at or
 * just past the window's end. The window moves on: a chunk read while
 * another thread reads one waits for it.
 * @param def_hash  the definition the caller runs: a chunk made for
 *                  another (a changed configuration) is not walked
 * @param next      receives where the walk's span ends (the position
 *                  after the chunk, or limit) when fn never stopped it
 * @param tail      then receives the bytes of the other tenants' events
 *                  after the tenant's last one up to the chunk's end, when
 *                  the span ends there (else 0)
 * @return SL_OK; fn's nonzero value; SL_ENOTFOUND when the window does
 * not hold pos (behind it, another definition, a chunk that could not
 * be read): read the log instead.
 */
int sysfeed_walk(sysfeed *f, size_t i, uint64_t def_hash, uint64_t pos,
    uint64_t limit, sysfeed_fn fn, void *arg, uint64_t *next, uint64_t *tail);

/** Positions the window holds now, [*lo, *hi) (equal: none), and how
 * many chunks were read so far. */
void sysfeed_window(sysfeed *f, uint64_t *lo, uint64_t *hi, uint64_t *reads);

#endif
