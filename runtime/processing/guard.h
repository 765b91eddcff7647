/*
 * Crash and hang containment for plugin calls. Before a processor thread
 * hands an event to a plugin it writes what it is about to run into its
 * slot of a small file in data_dir, mapped MAP_SHARED (plain stores, no
 * fsync: the page cache outlives the process); a fatal signal in the call
 * writes its number into the slot. The next start finds the slot and marks
 * the unit failing (no retry) instead of running the event again. A call
 * running longer than limits.handler_timeout_ms shows as stuck in status;
 * a stop that waits longer than limits.shutdown_timeout_ms abandons it.
 */
#ifndef SL_GUARD_H
#define SL_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "readmodels.h"

/* What a slot's processor is (how its unit is marked at the next start). */
typedef enum guard_kind {
	GUARD_PROC    = 1, /* a projection or filter processor: failset */
	GUARD_EMITTER = 2, /* an emitting projection: its key failing */
	GUARD_QUERY   = 3, /* a one-time or transient query: logged only */
} guard_kind;

/**
 * Map (creating it) data_dir/handler-slots, report and take what a crashed
 * run left in it, install the fatal-signal handler and clear the slots.
 * Call once, before any processor starts and after the read model stores
 * are open: rm_of gives the store of a tenant (NULL: unknown tenant).
 * @return SL_OK, or SL_ESTORAGE (the daemon then runs without the guard:
 * calls still run, nothing is recorded).
 */
int guard_open(const char *data_dir, uint32_t handler_timeout_ms,
    rmstore *(*rm_of)(void *arg, const char *tenant), void *arg);

/**
 * The calling thread is about to call a plugin with the event at position
 * of unit (ulen bytes) of the processor writing as name (generation gen)
 * for tenant; def_id is the definition's id (status looks it up by it).
 * Cheap: a few stores into the thread's slot. Strings are copied.
 */
void guard_enter(guard_kind kind, const char *tenant, const char *def_id,
    const char *name, uint64_t gen, const char *unit, size_t ulen,
    uint64_t position);
/** A number naming a caller's (tenant, def_id, name) for as long as they
 * stay the same: never 0, never given twice. */
uint64_t guard_ident_new(void);
/** guard_enter for a caller whose names ident (guard_ident_new; 0: none)
 * stands for: a thread's slot copies them only when the ident changes. */
void guard_enter_as(uint64_t ident, guard_kind kind, const char *tenant,
    const char *def_id, const char *name, uint64_t gen, const char *unit,
    size_t ulen, uint64_t position);
/** The call returned. After an abandoning stop the thread parks here for
 * good, so it commits nothing of its batch. */
void guard_leave(void);

/**
 * Whether a thread has been inside a plugin call of kind for tenant's
 * def_id for longer than limits.handler_timeout_ms: *position is the
 * event, *ms how long it has run.
 */
bool guard_stuck(guard_kind kind, const char *tenant, const char *def_id,
    uint64_t *position, int64_t *ms);

/**
 * Whether the emitting projection def_id of tenant crashed on the event at
 * position in the last run (found by guard_open), with the reason in why.
 * guard_clear_emitter forgets it (an operator's retry or reset).
 */
bool guard_emitter_crashed(const char *tenant, const char *def_id,
    uint64_t position, char *why, size_t wlen);
void guard_clear_emitter(const char *tenant, const char *def_id);

/**
 * The daemon is stopping: if it has not exited within timeout_ms, every
 * thread still inside a plugin is abandoned (slots running longer than
 * the handler timeout are marked so, for the next start), logged, and the
 * process ends with _exit(1) without committing their batches.
 */
void guard_stop_within(uint32_t timeout_ms);

#endif
