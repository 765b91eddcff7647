/*
 * Emitting projections (EventStoreDB's projection model): projections
 * whose state and checkpoint live in the event log's environment, so that
 * the events they write (host->emit / link_to, result streams), their
 * states and their checkpoint commit in one write transaction through the
 * store's writer (store_emit): exactly once, also across SIGKILL.
 *
 * Runs: a plugin projection that declares emits or a result transform, and
 * the five system projections (runtime/processing/sysproj.h), one per
 * tenant. Also one-time queries and transient projections of any plugin
 * projection, which keep their states in memory and write nothing.
 *
 * One engine (issue 14): a continuous or transient run is a processor
 * (projection.h, proc_emit.c) like a read-model projection's, with its
 * thread, its batches (the handlers fold in memory, then one write), its
 * per-key failing units with retries, its commands and its status; a
 * one-time query is a processor without a thread, in the caller's. This
 * header keeps EventStoreDB's words for them: status "running",
 * "stopped", "faulted" (the projection's keys are all static, so a
 * failing key holds up all of it; or its batch cannot be written).
 *
 * A failure of one event marks its key failing: that key's later events
 * wait while every other key goes on; the key is retried with a growing
 * delay (50 ms doubling to 10 s, or the handler's retry_after_ms) unless
 * it said "do not retry", then it waits for `retry` or `reset`. The
 * failing keys are kept in the checkpoint record, with the batch that
 * found or cleared them.
 *
 * Checkpoint thresholds (projection_settings): a batch ends after
 * checkpoint_handled_threshold handled events, max_write_batch_length
 * emitted events, or 100 ms; a batch that handled nothing stores its
 * checkpoint once checkpoint_unhandled_bytes_threshold bytes have passed.
 * pending_events_threshold, max_allowed_writes_in_flight and
 * checkpoint_after_ms are accepted and have no effect: there is no queue
 * of read events and one batch is written at a time.
 *
 * A definition change (hot reload) or `reset` soft-deletes every stream the
 * projection wrote for the tenant, drops its states and runs again from 0.
 *
 * On a log shared by nodes (PostgreSQL, store_leased) a continuous run
 * runs only where this node holds its lease, in state standby elsewhere;
 * its batches go to the database with the lease check, and each new
 * lease sets it up again from the checkpoint loaded from the database
 * (docs/postgresql.md, "Leases").
 */
#ifndef SL_EMITTER_H
#define SL_EMITTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "config.h"
#include "plugins.h"
#include "projection.h"
#include "store.h"

typedef struct eproj eproj;

/** Whether def runs as an emitting projection (declares emits or has a
 * result transform, or is a system projection). */
bool eproj_is_emitting(const proj_def *def);

/** "$projections-<name>-" (result streams start with it; malloc'ed). */
char *eproj_result_prefix(const proj_def *def);

/**
 * def's result streams (sl_projection.result_stream and
 * partition_result_stream, EventStoreDB's outputTo), defaults filled in:
 * *root (the one state's: "$projections-<name>-result") and *pattern
 * (each key's, "{0}" standing for the key:
 * "$projections-<name>-{0}-result"), malloc'ed. SL_OK or SL_ENOMEM.
 */
int eproj_result_names(const proj_def *def, char **root, char **pattern);
/** The result stream of key under pattern (malloc'ed; NULL: no memory). */
char *eproj_partition_stream(const char *pattern, const char *key);
/** Whether stream is root, or a stream pattern names for some key. */
bool eproj_is_result_stream(
    const char *root, const char *pattern, const char *stream);

/**
 * Claim def's declared streams (and "$projections-<name>-*", and its named
 * result streams: the root one exactly, a pattern's prefix) in the store
 * for def's id. @return SL_OK; SL_EEXIST with err naming both projections
 * when another projection claims an overlapping stream; SL_EINVAL.
 */
int eproj_claim(store *s, const proj_def *def, char *err, size_t errlen);

/**
 * Start a continuous (or transient: nothing stored, nothing written, emits
 * refused) run of def for tenant (proc_start_emitting). stopped: start in
 * state "stopped" (unless a stored operator's start says otherwise). The
 * run holds def. Its status is NULL until it has read its checkpoint.
 * @return SL_OK, SL_ENOMEM, SL_EINVAL.
 */
int eproj_start(store *s, const char *tenant, const proj_def *def,
    cfg_mode mode, const proj_settings *set, bool stopped, eproj **out);
/** Stop the thread (the batch being built is committed first) and free. */
void eproj_stop(eproj *e);
/** Hand over a reloaded definition (NULL: dropped, stop processing);
 * a changed def_hash resets (see above). Thread-safe. */
void eproj_set_def(eproj *e, const proj_def *def);
/**
 * Operator commands: PROC_CMD_RESET, PROC_CMD_RETRY, PROC_CMD_PAUSE
 * ("stop", persisted), PROC_CMD_RESUME ("start"). A stop or start is
 * persisted also when the run is in that state already (by config), so it
 * holds over the config after a restart. Waits at most timeout_ms for the
 * run to take it, and a stop for its checkpoint to be durable.
 * @return as proc_command.
 */
int eproj_command(eproj *e, proc_cmd cmd, int timeout_ms);

const char *eproj_id(const eproj *e);
const char *eproj_tenant(const eproj *e);
const proj_def *eproj_def(eproj *e); /* current definition (may be NULL) */
/** The processor that runs e (one engine: projection.h). */
processor *eproj_processor(eproj *e);

/** Status as EventStoreDB's UI shows it. */
typedef struct eproj_status {
	const char *tenant;       /* borrowed */
	const proj_def *def;      /* borrowed; NULL when dropped */
	cfg_mode    mode;
	/* "running", "stopped", "faulted" (with reason); NULL while it
	 * starts */
	const char *status;
	char        reason[256];  /* faulted / waiting: why; else "" */
	uint64_t    position;     /* committed checkpoint: next to handle */
	uint64_t    head;         /* the log head when last looked at */
	double      progress;     /* 100 * position / head (100 when 0) */
	uint64_t    events_processed; /* events of the tenant handled or
	                                 skipped since start */
	double      events_per_sec;   /* over the last seconds */
	uint64_t    buffered_events;  /* always 0: no queue (kept for API) */
	uint64_t    partitions_cached; /* states held in memory */
	uint64_t    writes_in_flight;  /* always 0: a batch is written before
	                                  the next is built (kept for API) */
	uint64_t    emitted;          /* events written since start */
	uint32_t    attempts;         /* failed attempts on the faulted event */
	size_t      n_failing;        /* failing keys (eproj_get_failing) */
	uint64_t    failures;         /* handler failures since start */
	uint64_t    retries;          /* retries of failing keys since start */
	/* on a log shared by nodes (store_leased), a continuous run's
	 * lease: whether this node holds it, and who does as last seen
	 * ("" unknown) */
	bool        leased;
	bool        lease_held;
	char        lease_holder[128];
} eproj_status;

void eproj_get_status(eproj *e, eproj_status *out);

/**
 * Copy at most max of e's failing keys (key order) into out.
 * @return how many keys are failing (may be more than max).
 */
size_t eproj_get_failing(eproj *e, proc_failing *out, size_t max);

/** A key's state (msgpack map) and result (msgpack map, or NULL). */
typedef int (*eproj_state_fn)(void *arg, const char *key, size_t key_len,
    const void *state, size_t state_len, const void *result,
    size_t result_len);

/**
 * Committed states of a continuous emitting projection of tenant (from the
 * log env), in key order; with key != NULL only that key (SL_ENOTFOUND if
 * it has none: the caller answers the initial state). For a transient run
 * use eproj_snapshot.
 * @param result  the result transform to run per state (proj_def_result),
 *                or NULL: no result. It is plugin code: the caller holds
 *                def (proj_def_try_hold) until this returns.
 * @return SL_OK, fn's nonzero value, SL_ESTORAGE.
 */
int eproj_read_states(store *s, const char *tenant, const proj_def *def,
    proj_result_fn result, const char *key, size_t key_len, eproj_state_fn fn,
    void *arg);

/**
 * The committed shared state (ABI 1.3, bi-state) of a continuous emitting
 * projection of tenant, from its checkpoint record: a msgpack map copied
 * into *data (malloc'ed). @return SL_OK; SL_ENOTFOUND (none stored yet);
 * SL_ESTORAGE; SL_EPROTO (a corrupt checkpoint); SL_ENOMEM.
 */
int eproj_read_shared(store *s, const char *tenant, const proj_def *def,
    char **data, size_t *len);

/**
 * A transient run's current states (in memory), key order; *position gets
 * its position. @return SL_OK, fn's nonzero value.
 */
int eproj_snapshot(eproj *e, const char *key, size_t key_len,
    eproj_state_fn fn, void *arg, uint64_t *position);

/** Whether a one-time query should stop (its client is gone...). */
typedef bool (*eproj_cancel_fn)(void *arg);

/**
 * One-time query: run def over tenant's events from 0 to the log head as
 * it is now, in memory (nothing written; emits are not written), then
 * call fn per key (key order; only key when given) with state and result.
 * *position gets the head it ran to; *progress (may be NULL), the position
 * reached so far, after each batch (a relaxed atomic store: others read
 * it while it runs). Stops early (SL_ETIMEDOUT) after
 * timeout_ms, and (SL_ECLOSED) as soon as cancel (may be NULL), asked
 * before each event, says so. The caller holds def (proj_def_try_hold, or
 * runtime_find_def_held) until this returns: it runs the plugin's code in
 * the caller's thread. @return SL_OK, SL_EPLUGIN (a handler failed: err
 * says where), SL_ETIMEDOUT, SL_ECLOSED, SL_ENOMEM, SL_ESTORAGE, or fn's
 * nonzero value.
 */
int eproj_query(store *s, const char *tenant, const proj_def *def,
    const char *key, size_t key_len, int timeout_ms, eproj_cancel_fn cancel,
    void *cancel_arg, eproj_state_fn fn, void *arg, uint64_t *position,
    uint64_t *progress, char *err, size_t errlen);

#endif
