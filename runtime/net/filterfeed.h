/*
 * The live feed of filter streams: every entry a filter appends to its
 * stream is published on the feed's socket as "f/<tenant>/<filter id>/
 * <partition>\n" + an array of wire events with stream_position,
 * stream_generation, and (partitioned filters) partition and
 * partition_position (docs/protocol.md, "Live feed"). A thread of its own
 * follows each stream from where it was when first seen; filter
 * processors only tell it that a stream changed (ff_notify), so they never
 * wait on the network. A rebuilt stream (another generation) is followed
 * from its head on: subscribers see the generation change and read.
 */
#ifndef SL_FILTERFEED_H
#define SL_FILTERFEED_H

#include "publisher.h"
#include "readmodels.h"
#include "store.h"

typedef struct filterfeed filterfeed;

/** The tenant's read model store, or NULL. */
typedef rmstore *(*ff_tenant_fn)(void *ctx, const char *tenant);

/** Start publishing through pub (borrowed; must outlive the feed). */
int ff_start(publisher *pub, store *s, ff_tenant_fn tenant_rm, void *ctx,
    filterfeed **out);
/** Stop the thread and free. NULL is ignored. */
void ff_stop(filterfeed *f);
/** proc_notify_fn (projection.h): the filter's stream changed. arg is the
 * filterfeed. Never blocks. */
void ff_notify(void *arg, const char *tenant, const char *filter_id);
/** Entries published so far (for tests). */
uint64_t ff_sent(filterfeed *f);

#endif
