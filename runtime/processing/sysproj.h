/*
 * The five system projections of EventStoreDB, built into the runtime as
 * emitting projections (runtime/processing/emitter.h) that link events with
 * host->link_to, configured by resources.yaml (system_projections:):
 *
 *   $by_category         each event of stream "<category><sep>..." linked
 *                        into "$ce-<category>" (take: first: the category
 *                        is the id before the first separator; last:
 *                        before the last one; no separator: no category)
 *   $by_event_type       each event linked into "$et-<type>"
 *   $by_correlation_id   each event whose metadata has the property
 *                        (default "$correlationId") linked into
 *                        "$bc-<correlation id>"
 *   $stream_by_category  each new stream's first event (revision 0) linked
 *                        into "$category-<category>"
 *   $streams             each new stream's first event linked into
 *                        "$streams"
 *
 * None of them looks at events in system streams (ids starting with '$'),
 * which is where links are written: they never link links.
 */
#ifndef SL_SYSPROJ_H
#define SL_SYSPROJ_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "event.h"
#include "plugins.h"

#define SYSPROJ_COUNT 5

/**
 * The system projections' definitions for cfg (separator, take, property
 * are part of their definition hashes: a change rebuilds their streams).
 * Host-owned, static: valid until sysproj_fini. Their ids are fixed UUIDs
 * 00000000-0000-0000-0000-00000000000N (N = 1..5, in the order above),
 * names "$by_category" etc., selector "$any", key static "".
 * @return SL_OK, SL_ENOMEM.
 */
int sysproj_init(const sl_config *cfg);
void sysproj_fini(void);
size_t sysproj_count(void);
const proj_def *sysproj_def(size_t i);
/** Whether def is one of the system projections. */
bool sysproj_is_system(const proj_def *def);

/**
 * The category of a stream id, as EventStoreDB's StreamCategoryExtractor
 * cuts it: the part before the first (last: the last) occurrence of sep,
 * when that occurrence is not at position 0. A system stream ('$...'),
 * an id without sep, or whose chosen occurrence is at 0, has none.
 * @return the category's length (> 0, copied to out with a NUL); 0 when
 * there is none; -1 when it does not fit in len bytes.
 */
/** A system projection's link, as sysproj_peek decides it. */
typedef struct sysproj_link {
	char        stream[SL_MAX_ID_LEN + 1]; /* where, e.g. "$ce-account" */
	const char *target; /* the linked event's stream (into the record) */
	size_t      target_len;
	uint64_t    revision; /* the linked event's revision */
} sysproj_link;

/**
 * What the system projection def links for a stored event read in place
 * (ev_peek_raw), without decoding it or calling its on(): the same
 * decision on() makes.
 * @return 1 one link (out filled; target valid while the record is);
 * 0 none; -1 not decided here (a stream id too long, a metadata path
 * through something other than maps): decode it and call on(), which
 * logs or refuses what it must.
 */
int sysproj_peek(const proj_def *def, const ev_raw *ev, sysproj_link *out);

/** def's index (0..SYSPROJ_COUNT - 1), or -1 when it is not one of them. */
int sysproj_index(const proj_def *def);
/**
 * Whether system projection i writes stream (len bytes): what it emits
 * (e.g. "$ce-*") or its result streams ("$projections-<name>-..."); the
 * engine does not hand it those events (proc_emit_event.c's own_stream).
 */
bool sysproj_owns(size_t i, const char *stream, size_t len);

/** Whether the stream id (len bytes, no NUL needed) is of category cat,
 * cut with the configured separator (system_projections). */
bool sysproj_in_category(const char *stream, size_t len, const char *cat);
int sysproj_category(
    const char *stream, const char *sep, bool last, char *out, size_t len);

#endif
