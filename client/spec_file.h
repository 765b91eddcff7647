/*
 * A spec file (docs/javascript.md, "Specs") read into the steps of its
 * input and its expectations, and the comparison of what a run left with
 * them. `sluice spec` (spec.c) runs the steps in process; the live spec
 * test (tests/spec_live_test.c) runs them in sluiced; both compare here.
 */
#ifndef SL_CLI_SPEC_FILE_H
#define SL_CLI_SPEC_FILE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/** What one input step does. */
typedef enum spec_step_kind {
	SPEC_STEP_EVENT,  /**< commit one event (a link event too) */
	SPEC_STEP_DELETE, /**< soft-delete the stream ("$streamDeleted") */
} spec_step_kind;

/** One input step, in input order. Pointers borrow the spec's JSON. */
typedef struct spec_step {
	spec_step_kind kind;
	const char    *stream;
	const char    *type;       /**< events: the event type */
	const json_t  *data;       /**< object; a string for a link ($>, $@) */
	const json_t  *metadata;   /**< object, or NULL for none */
	const char    *event_id;   /**< UUID text, or NULL: generate one */
	const json_t  *states;     /**< checked after this step, or NULL */
	const json_t  *emitted;    /**< checked after this step, or NULL */
	const json_t  *shared;     /**< checked after this step, or NULL */
	char           where[320]; /**< "input[i].events[k] (stream)" */
} spec_step;

/** A loaded spec. */
typedef struct spec_file {
	json_t       *root;
	const char   *path;       /**< as given to spec_file_load */
	char          dir[4096];  /**< the spec's directory */
	const char   *projection; /**< "projection": a file relative to dir */
	const char   *name;       /**< "projectionName", or NULL */
	spec_step    *steps;
	size_t        n_steps;
	const json_t *states;  /**< output.states, or NULL */
	const json_t *emitted; /**< output.emitted, or NULL */
	const json_t *shared;  /**< output.shared, or NULL */
} spec_file;

/**
 * Read and check the spec at path (path is borrowed until
 * spec_file_free). Prints what is wrong on stderr as `sluice spec: FILE:
 * ...`. @return 0, or 1 for a spec that cannot be read or is malformed.
 */
int spec_file_load(const char *path, spec_file *out);

/** Free what spec_file_load filled in. */
void spec_file_free(spec_file *f);

/** Whether a step is a link event (cannot be committed over the API). */
bool spec_step_is_link(const spec_step *s);

/** Sluice's key of a spec partition: EventStoreDB's root "" is "root". */
const char *spec_key_of(const char *partition);

/** A comparison: prints each difference on stdout, prefixed. */
typedef struct spec_cmp {
	const char *file;      /**< the spec, for messages */
	char        when[400]; /**< "after input[i].events[k] (s): ", or "" */
	int         diffs;
} spec_cmp;

/** Print one difference (and count it). */
void spec_diff(spec_cmp *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/** Equal as JSON values: object keys in any order, numbers by value. */
bool spec_same(const json_t *a, const json_t *b);

/**
 * Compare states (the form of output.states) with actual, an object
 * key -> {"state": json, "result": json (optional; null: none)}. A key
 * actual has and want does not list is a difference.
 */
void spec_check_states(spec_cmp *c, const json_t *want, const json_t *actual);

/**
 * The events of a stream, as a new JSON array of {eventType, data,
 * metadata} (an empty array for a stream without events), or NULL after
 * reporting a failure to read with spec_diff.
 */
typedef json_t *(*spec_read_stream_fn)(
    void *arg, spec_cmp *c, const char *stream);

/**
 * Compare emitted (the form of output.emitted: stream -> events) with the
 * streams read through read: each named stream's events exactly, in
 * order; metadata only where the spec gives it.
 */
void spec_check_emitted(
    spec_cmp *c, const json_t *want, spec_read_stream_fn read, void *arg);

/**
 * A bi-state projection's shared state (as get_one "$shared" answers it;
 * actual NULL: none stored) against want ("shared" of a step or the
 * output; JSON null: none stored; want NULL: not checked).
 */
void spec_check_shared(spec_cmp *c, const json_t *want, const json_t *actual);

/* "sluice spec: file: why" on stderr (a spec that cannot be run);
 * @return 1, the exit status for it. */
int spec_bad(const char *file, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
