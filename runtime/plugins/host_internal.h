/*
 * What the host table's files share: host.c (the table, the per-thread
 * scratch, log, context and emit), host_event.c (event fields, content and
 * metadata) and host_state.c (the state calls). Not for other parts of the
 * runtime: they use host.h.
 */
#ifndef SL_HOST_INTERNAL_H
#define SL_HOST_INTERNAL_H

#include <stddef.h>

#include "host.h"

/**
 * A NUL-terminated copy of p[0..n) in this thread's scratch: valid until
 * the next host_scratch_reset() (before the next callback) or until an
 * event getter meets another event. NULL when out of memory.
 */
const char *host_scratch_copy(const void *p, size_t n);
/** An event getter is about to hand out copies from v: the scratch of an
 * earlier event on this thread is released first. */
void host_scratch_enter(const ev_view *v);

/** Fill in the event calls (1.0 and 1.3) of the host table. */
void host_event_calls(sl_host_api *t);
/** Fill in the state calls (1.0 and 1.3) of the host table. */
void host_state_calls(sl_host_api *t);

#endif
