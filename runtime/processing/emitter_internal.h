/*
 * The emitting projections' engine's insides, shared by its files:
 * emitter.c (claims; the continuous / transient run: reader thread,
 * lifecycle, commands, status), emitter_handler.c (the handler thread and
 * its batches), emitter_run.c (batches, checkpoint records, the handling
 * shared by every mode), emitter_fail.c (failing keys: their retry),
 * statecache.c (the state cache) and
 * emitter_query.c (reading states, snapshots, one-time queries). Not for
 * other parts of the runtime.
 */
#ifndef SL_EMITTER_INTERNAL_H
#define SL_EMITTER_INTERNAL_H

#include "statecache.h"
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <msgpack.h>

#include "emitter.h"
#include "failset.h"
#include "monotime.h"
#include "host.h"
#include "store.h"

/* events/s: a sliding window of this many seconds */
#define RATE_SECS 5

typedef enum run_kind {
	RUN_CONTINUOUS,
	RUN_TRANSIENT,
	RUN_QUERY,
} run_kind;

/* ---- the state cache: statecache.h ---- */

/* ---- batches, checkpoint records, runs (emitter_run.c) ---- */

typedef struct batch {
	struct eproj *e;
	uint64_t      seq;
	store_emit    em;
	store_append *appends;
	size_t        n_appends, cap_appends;
	store_kv     *states;
	size_t        n_states, cap_states;
	msgpack_zone *zone; /* every string, content and object of the batch */
	uint64_t      handled; /* events handled */
	uint64_t      unhandled_bytes;
	uint64_t      end_pos; /* the checkpoint's position */
	struct batch *next;
	char         *ckpt; /* the packed checkpoint record (malloc'ed) */
} batch;

typedef struct ckpt {
	uint64_t position;
	uint64_t def_hash;
	bool     stopped;
	/* the failing units (NULL: none); eproj_ckpt_read fills it when set */
	failset *failing;
} ckpt;

typedef struct run {
	run_kind           kind;
	store             *s;
	const char        *tenant;
	const proj_def    *def;
	bool               system;
	const char *const *emits;
	size_t             n_emits;
	proj_result_fn     result;
	char              *rprefix; /* "$projections-<name>-" */
	cache              c;
	batch             *b;    /* continuous: the batch being built */
	msgpack_zone      *zone; /* per event decoding */
	emit_sink          sink;
	const ev_view     *cur;      /* the event being handled */
	int                sink_rc;  /* first failure of the sink */
	const char        *only_key; /* query, retry: just this key */
	size_t             only_len;
	/* the failing units: their keys' events at or after the unit's
	 * position are skipped (they wait), unless retrying (the unit of
	 * only_key is being retried); NULL: none */
	const failset     *failing;
	bool               retrying;
	pthread_mutex_t   *cmu; /* transient: the cache, for snapshots */
} run;

/* What handling one event came to. */
typedef enum hres {
	H_SKIPPED, /* not the tenant's, not selected, or in its own stream */
	H_HANDLED,
	H_FAILED, /* why says why; ctx.no_retry / retry_after_ms apply */
	H_ERROR,  /* storage or memory: the run restarts */
} hres;

typedef struct hfail {
	char     why[512];
	bool     no_retry;
	uint32_t retry_after_ms;
	/* the key of the failed event, when it can fail alone (not a static
	 * key: then the whole projection waits) */
	bool     key_known;
	size_t   key_len;
	char     key[PROC_KEY_MAX];
} hfail;

batch *eproj_batch_new(void);
void   eproj_batch_free(batch *b);
/* Add x's state (or its deletion) to b. SL_OK or SL_ENOMEM. */
int eproj_batch_state(batch *b, const centry *x);
/* Pack c into *out (malloc'ed), its length in *len. SL_OK, SL_ENOMEM. */
int eproj_ckpt_pack(const ckpt *c, char **out, size_t *len);
/* SL_OK, SL_ENOTFOUND, SL_ESTORAGE, SL_EPROTO (a corrupt record). */
int eproj_ckpt_read(
    store *s, const char *tenant, const char *owner, ckpt *out);

/* Set r's definition (held by the caller). */
int eproj_run_set_def(run *r, const proj_def *def);
int eproj_run_init(
    run *r, run_kind kind, store *s, const char *tenant, const proj_def *def);
void eproj_run_fini(run *r);
/* Decode a record and handle it if it is the tenant's. */
hres eproj_run_record(run *r, uint64_t pos, const void *data, size_t len,
    uint32_t attempt, const char *last_reason, hfail *f);
/*
 * The result of a state (packed map in *out, malloc'ed; NULL: no result).
 * SL_OK, or SL_EPLUGIN with a reason in why.
 */
int eproj_compute_result(proj_result_fn fn, const proj_def *def,
    const char *key, const void *state, size_t len, void **out,
    size_t *out_len, char *why, size_t whylen);

/* ---- the continuous / transient run (emitter.c, emitter_handler.c) ---- */

typedef struct qrec {
	struct qrec  *next;
	uint64_t      position;
	size_t        len;
	unsigned char data[];
} qrec;

struct eproj {
	store          *s;
	char           *tenant;
	char            id[37];
	cfg_mode        mode;
	proj_settings   set;
	run             r; /* handler thread only (cache: cmu for transient) */
	pthread_mutex_t cmu;

	pthread_mutex_t mu;
	pthread_cond_t  cv;  /* the handler: records, batches, commands */
	pthread_cond_t  rcv; /* the reader: room, restarts */
	pthread_cond_t  cmd_cv;
	pthread_t       reader, handler;
	bool            reader_started, handler_started;
	bool            stopping;

	/* definitions */
	const proj_def *def;      /* the one status shows (held) */
	const proj_def *next_def; /* from eproj_set_def, held */
	bool            def_pending;

	/* the queue */
	qrec    *qhead, *qtail;
	size_t   qn, qbytes;
	uint64_t read_pos; /* the reader's next position */
	uint64_t read_gen; /* bumped when the handler restarts the reader */
	uint64_t skipped_bytes; /* other tenants' bytes the reader passed */
	bool     reader_full;

	/* commands */
	proc_cmd cmd;
	uint64_t cmd_seq, cmd_taken;

	/* batches */
	batch   *sealed_head, *sealed_tail;
	batch   *submitted;
	uint32_t in_flight; /* sealed + submitted */
	uint64_t next_seq, done_seq;
	int      batch_rc;
	char     batch_msg[200];
	/* a checkpoint record is stored: read at start, or committed since */
	bool ckpt_stored;
	/* the batch holding an operator's stop: "stopping" (and the stop
	 * command waits) until it is durable (done_seq); 0: none */
	uint64_t stop_seq;

	/* failing keys (emitter_fail.c): written by the handler with mu
	 * held, read by status with mu held */
	failset failing;
	bool    fail_dirty; /* changed since the last batch was sealed */

	/* status */
	char     status_reason[256];
	bool     paused, faulted, waiting_writes;
	uint64_t position, head, events_processed, emitted, cached;
	/* the handled position when nothing is left to commit: the events
	 * after the checkpoint were all skipped (e.g. its own writes), so it
	 * is as good as committed once the batches sealed before it
	 * (clean_seq and earlier) are durable (status only; never stored
	 * for that) */
	uint64_t clean_pos, clean_seq;
	uint32_t attempts;
	uint64_t rate_sec[RATE_SECS];
	uint64_t rate_n[RATE_SECS];
	int64_t  started_ns;
};

/* "$projections-<name>-" (result streams start with it). */
char *eproj_result_prefix(const proj_def *def);
/* Count n events processed now (under mu). */
void eproj_rate_add(eproj *e, uint64_t n);
void eproj_qrec_free_list(qrec *q);
/* The handler thread (arg: the eproj). */
void *eproj_handler_main(void *arg);
/* ---- failing keys (emitter_fail.c) ---- */

/*
 * Handle the events of key (the unit u) from u->pos up to (not including)
 * upto again, from the log, in r (its batch gets what they emit). SL_OK:
 * all handled (*handled counts them); SL_EPLUGIN: the event at *fpos
 * failed, f says why; SL_ESTORAGE / SL_ENOMEM (f->why): the run restarts.
 */
int eproj_retry_unit(run *r, const fail_unit *u, uint64_t upto, hfail *f,
    uint64_t *fpos, uint64_t *handled);
/* Read the failing units of the stored checkpoint into fs (none when there
 * is no record). SL_OK, SL_ESTORAGE, SL_EPROTO. */
int eproj_failing_reload(eproj *e);

/* Clean states a continuous run keeps in memory (4096; tests lower it
 * before starting a run). */
extern size_t eproj_cache_lru_max;

#endif
