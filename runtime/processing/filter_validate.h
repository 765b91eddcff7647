/*
 * Validating a filter whose code changed without a version bump, the way
 * Dolittle validates a filter: when a hot reload keeps a filter's
 * definition (same hash) but brings new code, a thread per (tenant,
 * filter) runs the new filter() over the log from position 0 up to the
 * checkpoint of the stream the processor builds, computes the (position,
 * partition) entries it would include and compares them, in log order,
 * with the stored stream, stopping at the first difference. Equal: logged.
 * Different: the processor rebuilds (PROC_CMD_RESET), or stops as failed
 * (proc_halt) when the filter asks so (sl_filter.on_code_change).
 *
 * Sits beside the processors: it reads the log and the tenant's read model
 * store in read transactions only, holds the new version while it calls
 * it (each call inside the crash guard, as a query), and acts on a
 * processor only through its public commands.
 */
#ifndef SL_FILTER_VALIDATE_H
#define SL_FILTER_VALIDATE_H

#include <stdbool.h>
#include <stdint.h>

#include "mp.h"
#include "plugins.h"
#include "projection.h"
#include "readmodels.h"
#include "store.h"

typedef struct fval fval;

/** Where a validation is. */
typedef enum fval_state {
	FVAL_RUNNING   = 1,
	FVAL_DONE      = 2, /* see fval_result */
	FVAL_CANCELLED = 3, /* a newer reload, a dropped filter, the stop */
} fval_state;

/** What a finished validation found. */
typedef enum fval_result {
	FVAL_NONE         = 0, /* not finished */
	FVAL_EQUAL        = 1, /* the new code includes what is stored */
	FVAL_DIFFERS      = 2, /* at position: acted on (action) */
	FVAL_INCONCLUSIVE = 3, /* the new code failed on an event: nothing
	                          done */
	FVAL_SKIPPED = 4,      /* nothing built by this definition to compare
	                          (a rebuild of another one goes on) */
	FVAL_ERROR = 5,        /* storage, memory, or the stream was rebuilt
	                          meanwhile: nothing done */
} fval_result;

/** What a difference made the runtime do. */
typedef enum fval_action {
	FVAL_ACT_NONE    = 0,
	FVAL_ACT_REBUILD = 1, /* PROC_CMD_RESET */
	FVAL_ACT_FAIL    = 2, /* proc_halt with the reason */
} fval_action;

/** A (tenant, filter)'s last validation, as status shows it. */
typedef struct fval_status {
	fval_state  state;
	fval_result result;
	fval_action action;
	/* running: the log position the new code has run to; differs: the
	 * first differing one; else where it stopped */
	uint64_t position;
	uint64_t until;     /* the checkpoint compared up to (exclusive) */
	uint64_t compared;  /* stream entries found equal so far */
	uint32_t runs;      /* validations started for it since the start */
	uint32_t cancelled; /* ... and cancelled */
	int64_t  started_ns, finished_ns; /* wall clock; finished 0: running */
	char     reason[320];
} fval_status;

/** @return SL_OK or SL_ENOMEM. */
int fval_create(fval **out);
/**
 * Cancel every validation and wait for its thread (each stops before its
 * next plugin call, so within one call), then free. Call before the
 * processors and stores it uses stop.
 */
void fval_destroy(fval *v);

/**
 * Validate def, a filter whose code changed while its definition did not,
 * for the tenant of processor p (which builds its stream in rm from the
 * log s). A validation of the same (tenant, filter) still running is
 * cancelled and waited for first. def is held (proj_def_try_hold) until the
 * validation ends; p, s and rm must outlive v (fval_destroy).
 * @return SL_OK (started); SL_EINVAL (not a plugin filter); SL_ENOTFOUND
 * (def's version is already closing: a newer one follows); SL_ENOMEM.
 * Not thread-safe against itself: one caller (hot reload's thread).
 */
int fval_start(
    fval *v, store *s, rmstore *rm, processor *p, const proj_def *def);
/**
 * Cancel the validations of filter_id, every tenant's (its definition
 * changed or went), and wait for them. Unknown ids: nothing.
 */
void fval_cancel(fval *v, const char *filter_id);

/** The last validation of (tenant, filter_id): false if none ran. */
bool fval_get(
    fval *v, const char *tenant, const char *filter_id, fval_status *out);

/**
 * Status's "validation" of (tenant, filter_id) into m: a map {state,
 * result, action, position, until, compared, runs, cancelled,
 * started_at_ns, finished_at_ns, reason}, or nil when none ran.
 */
void fval_pack_status(
    fval *v, mp_map *m, const char *tenant, const char *filter_id);

const char *fval_state_name(fval_state s);
const char *fval_result_name(fval_result r);
const char *fval_action_name(fval_action a);

#endif
