/*
 * Projection processors: one thread per (tenant, projection). It reads the
 * log from its checkpoint, picks the events its selectors name for its
 * tenant, finds each event's key, loads the state (or the initial state),
 * calls the plugin, and writes the new state together with the checkpoint in
 * one read-model transaction (many events per transaction while catching up).
 * It waits on the store's head when caught up, never polling with a sleep.
 */
#ifndef SL_PROJECTION_H
#define SL_PROJECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "event.h"
#include "plugins.h"
#include "readmodels.h"
#include "store.h"

typedef struct processor processor;

typedef enum proc_state {
	PROC_STARTING,
	PROC_CATCHING_UP,
	PROC_LIVE,
	PROC_FAILING, /* waiting to retry after a failure */
	PROC_STOPPED,
	PROC_REBUILDING, /* building a new generation; queries see the old */
	PROC_PAUSED,     /* an operator paused it (persisted) */
	PROC_FAILED, /* a failure said "do not retry": waits for an operator */
	PROC_DISCONNECTED, /* a remote processor's client is gone: waits */
	PROC_STANDBY, /* an emitting run on a shared log: another node holds
	                 its lease (docs/postgresql.md) */
} proc_state;

/** Operator commands (`sluice reset|retry|pause|resume`). */
typedef enum proc_cmd {
	PROC_CMD_RESET  = 1, /* rebuild from position 0 into a new generation */
	PROC_CMD_RETRY  = 2, /* retry every failing event now */
	PROC_CMD_PAUSE  = 3, /* stop processing (persisted across restarts) */
	PROC_CMD_RESUME = 4,
} proc_cmd;

/**
 * One failing unit of a processor: for an unpartitioned filter the whole
 * processor (partition ""), for a partitioned or public filter a source
 * stream, for a projection a read model key. Events of other units go on.
 */
typedef struct proc_failing {
	char     partition[512]; /* the unit's id, cut to fit */
	uint64_t position;       /* the event that failed (next to handle) */
	uint32_t attempts;       /* failed attempts on that event */
	bool     retry;          /* false: waits for an operator command */
	int64_t  next_try_ns;    /* wall clock (ev_now_ns); 0 when !retry */
	char     reason[256];
} proc_failing;

typedef struct proc_status {
	const char *tenant;       /* borrowed */
	const proj_def *def;      /* borrowed */
	proc_state state;
	uint64_t position;        /* checkpoint: next position to handle */
	uint64_t events_handled;  /* since start */
	uint32_t attempts;        /* failed attempts on the current event */
	char reason[256];         /* last failure reason, "" if none */
	int64_t next_retry_ns;    /* when FAILING */
	/* appended for hot reload */
	bool     rebuilding;      /* position is the new generation's */
	uint64_t served_position; /* checkpoint of what queries see */
	uint64_t generation;      /* generation queries see (0: none yet) */
	/* appended for failing partitions and operator commands */
	bool     paused;
	size_t   n_failing;       /* failing units (see proc_failing) */
	uint64_t head;            /* log head when position was last set */
	/* appended for EventStoreDB's status (issue 8) */
	double   events_per_sec;  /* events handled per second, recently */
	int64_t  rate_at_ns;      /* internal: start of the rate's window */
	uint64_t rate_base;       /* internal: events_handled at rate_at_ns */
	size_t   cached;          /* states in its fold's cache */
	/* appended for the emitting projections (issue 14: one engine) */
	uint64_t emitted;         /* events written since start */
	uint32_t writes_in_flight; /* its batch at the store, not yet durable
	                              (0 or 1) */
	/* appended for the metrics (issue 19) */
	uint64_t failures;        /* handler failures since start (each
	                             attempt that failed) */
	uint64_t retries;         /* retries of failing units since start */
} proc_status;

const char *proc_state_name(proc_state s);

/** Longest read model key, with its NUL. */
#define PROC_KEY_MAX 512

/**
 * Compute the read model key of an event for a projection.
 * @return SL_OK with the key in buf; SL_ENOTFOUND if no selector matches the
 * event type (not selected); SL_EINVAL with a reason in buf when the key
 * cannot be found (missing or non-scalar property).
 */
int proc_key(const proj_def *def, const ev_view *ev, char *buf, size_t len);
/*
 * The key of a selected event from the definition's key function
 * (sl_projection.key) into buf: SL_OK; SL_ENOTFOUND (no key function, the
 * type is not selected, or the function skips the event); SL_EINVAL with
 * the reason in buf.
 */
int proc_key_fn_call(
    const proj_def *def, const sl_event *sev, char *buf, size_t len);

/** The failing unit of an event whose key cannot be found: PROC_NO_KEY
 * then its stream id (the event waits in a unit of its stream). */
#define PROC_NO_KEY "\x01"
/** A unit as status and logs name it: "(no key) stream S" for a
 * PROC_NO_KEY unit, else the key or partition itself. */
void proc_unit_label(const char *unit, size_t ulen, char *out, size_t olen);
/* Whether ev's selector in def is a static key (one key for every event of
 * its type: an emitting projection's failure there holds up the whole). */
bool proc_key_is_static(const proj_def *def, const ev_view *ev);
/* Whether a selector of def names the event type (len bytes), or is
 * "$any". */
bool proc_type_selected(const proj_def *def, const char *type, size_t len);
/* Whether every selector of def has a static key: one state for the whole
 * (a failing key then holds up all of it: EventStoreDB's "faulted"). */
bool proc_keys_static(const proj_def *def);

/** The key get_one takes for a projection's shared state (ABI 1.3,
 * EventStoreDB's bi-state): "$shared". */
#define PROC_SHARED_KEY "$shared"
/**
 * The stored shared state of read-model projection projection_id (of the
 * generation served), a msgpack map copied into *data (malloc'ed).
 * @return SL_OK; SL_ENOTFOUND (none stored yet); SL_ESTORAGE; SL_ENOMEM.
 */
int proc_shared_read_rm(
    rmstore *rm, const char *projection_id, char **data, size_t *len);

/**
 * Start a processor thread. batch = max events per transaction. The
 * processor holds def (proj_def_hold) while it runs it.
 *
 * Definitions: when def's hash matches the checkpoint's, it continues from
 * the checkpoint. When it differs, it rebuilds from position 0 into a new
 * generation while queries keep reading the current one, and switches them
 * over in the transaction that catches up with the log (status: state
 * "rebuilding", position = the rebuild's). A projection with no read models
 * yet builds its first generation in place.
 */
int proc_start(store *s, rmstore *rm, const char *tenant, const proj_def *def,
    uint32_t batch, processor **out);
/**
 * Start the processor of an emitting projection (eproj_is_emitting: its
 * states, checkpoint and what it emits are written together in the log's
 * env, see emitter.h), or with mode CFG_MODE_TRANSIENT a run of any
 * projection that keeps its states in memory and writes nothing. set: its
 * checkpoint thresholds. stopped: the config's word (a stored operator's
 * stop or start wins). The processor holds def while it runs it.
 */
int proc_start_emitting(store *s, const char *tenant, const proj_def *def,
    cfg_mode mode, const proj_settings *set, bool stopped, processor **out);
/** Stop the thread (finishing the current transaction) and free. */
void proc_stop(processor *p);
/** proc_stop in two steps, for a processor readers may still point to
 * (an expired remote registration's, runtime/grace.h): proc_join stops the
 * thread (status and commands still work on what it left, commands time
 * out), proc_destroy frees once no reader can hold it. */
void proc_join(processor *p);
void proc_destroy(processor *p);
/** Ask a processor to stop and return at once (proc_stop then waits for
 * it): many stop side by side rather than one after another. */
void proc_stop_signal(processor *p);
void proc_get_status(processor *p, proc_status *out);

/**
 * Hand the processor another definition of its projection (a reloaded
 * plugin), or NULL to stop processing (the projection was dropped; its read
 * models stay and are still served; a later def starts it again). The
 * processor holds def from this call on, switches between two batches
 * (never inside one), and releases the definition it ran. Thread-safe.
 * def must have the processor's projection id.
 */
void proc_set_def(processor *p, const proj_def *def);
/**
 * Run an operator command and wait (at most timeout_ms) until the processor
 * thread has taken it. @return SL_OK; SL_ETIMEDOUT if not taken in time (it
 * still will be); SL_EINVAL for an unknown command.
 */
int proc_command(processor *p, proc_cmd cmd, int timeout_ms);
/**
 * Stop a read-model processor (a filter's or a projection's, not an
 * emitting one) as failed, with reason as status shows it, when a check
 * outside it found what it built wrong (a filter's code changed without a
 * version bump: filter_validate.h); reason NULL or "" ends such a stop.
 * Stored, so it lasts across restarts, until this call ends it, an
 * operator's retry (which goes on from the checkpoint) or reset, or a
 * changed definition (which rebuilds). Queries still read what it built.
 * Waits as proc_command. @return as proc_command; SL_EINVAL for an
 * emitting processor.
 */
int proc_halt(processor *p, const char *reason, int timeout_ms);
/**
 * Copy up to max failing units (ordered by position) into out.
 * @return how many units are failing in all (may exceed max).
 */
size_t proc_get_failing(processor *p, proc_failing *out, size_t max);

/**
 * Called by a filter's processor thread after each committed batch that
 * changed its stream: entries appended, or a rebuilt stream now served
 * (whose positions start again from 0). It must not block.
 */
typedef void (*proc_notify_fn)(void *arg, const char *tenant,
    const char *filter_id);
/** Set (or with NULL clear) the notification; thread-safe. */
void proc_set_notify(processor *p, proc_notify_fn fn, void *arg);

/** The projection id this processor runs (fixed for its life). */
const char *proc_projection_id(const processor *p);
/** The tenant this processor runs for. */
const char *proc_tenant(const processor *p);

#endif
