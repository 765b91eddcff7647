/*
 * The processor's insides, shared by its files: projection.c (the thread,
 * setup, batches, commands, status), proc_events.c (handling one event with
 * a plugin, failing units) and proc_remote.c (handling events with a remote
 * client, pipelined). Not for other parts of the runtime.
 */
#ifndef SL_PROC_INTERNAL_H
#define SL_PROC_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>
#include <sluice/plugin.h>

#include "config.h"
#include "failset.h"
#include "guard.h"
#include "host.h"
#include "projection.h"
#include "remote.h"
#include "statecache.h"

#define PROC_WAIT_MS        500           /* store_wait timeout when live */
/* A batch's handling ends after this long (then its write), so that a slow
 * handler's read models show and its commands are taken in time. */
#define PROC_BATCH_NS       100000000LL   /* 100 ms */
/* Clean states kept in a processor's cache between batches. */
#define PROC_CACHE_KEEP     20000
#define PROC_RETRY_FIRST_NS 50000000LL    /* 50 ms, doubling */
#define PROC_RETRY_MAX_NS   10000000000LL /* 10 s */

/*
 * An emitting projection's part of a processor (proc_emit.c): its states,
 * checkpoint and failing keys live in the log's env, and what it emits
 * (host->emit / link_to, result streams) is written with them, one batch
 * per store_emit through the log's writer. A transient run keeps all of it
 * in memory and writes nothing; a one-time query (proc_query) is a
 * processor without a thread, run to the head in the caller's.
 */
typedef struct proc_emit {
	cfg_mode           mode;    /* continuous, transient or one-time */
	proj_settings      set;
	bool               stopped; /* the config's word, until an operator's */
	bool               system;
	/* a continuous system projection's: its tenant's shared reader
	 * (sysfeed.h) and its index there (-1: none) */
	struct sysfeed    *feed;
	int                sys_index;
	const char *const *emits;
	size_t             n_emits;
	proj_result_fn     result;
	char              *rprefix; /* "$projections-<name>-" */
	char *rroot, *rpat; /* the result streams (eproj_result_names) */
	bool               root_result; /* keys all static: one result */
	emit_sink          sink;
	const ev_view     *cur;  /* the event being handled (emits' cause) */
	struct ebatch     *eb;   /* what the batch being built emits */
	struct eflight    *fl;   /* the batch at the store (one at a time) */
	uint64_t committed;      /* the stored checkpoint's position */
	uint64_t fails_version;  /* the failing set as last stored */
	uint64_t unhandled;      /* bytes passed since, nothing to store */
	uint64_t emitted;        /* events written since start */
	/* the epoch of the lease it runs under on a shared log
	 * (store_lease_get; 0: not set up under one) */
	uint64_t lease;
	/* the fold, for a transient run's snapshots (the thread changes it
	 * under this lock; others read it under it) */
	pthread_mutex_t cmu;
	/* a one-time query: only this key (NULL: all), and its cancel */
	const char *only_key;
	size_t      only_len;
	bool      (*cancel)(void *arg);
	void       *cancel_arg;
} proc_emit;

/* What a processor reads (proc_sources.c), from its definition. */
typedef struct proc_src {
	const proj_def  *def;    /* held by the src's owner */
	const char      *tenant; /* the owner's */
	size_t           tenant_len;
	bool             v13; /* the 1.3 rules: system streams, links asked */
	uint32_t         flags;
	const sl_source *v; /* the definition's; NULL: all */
	size_t           n;
	bool             deleted; /* a deleted callback: deletion notices */
} proc_src;

/* A command bit per proc_cmd. */
#define CMD_BIT(c) (1u << (unsigned) (c))

struct processor {
	store          *s;
	rmstore        *rm;
	char           *tenant;
	const proj_def *def; /* held; NULL while dropped (thread-owned) */
	char            proj_id[37];
	uint32_t        batch;
	/* what it writes through (rm_* names): the id, or "f:<id>" for a
	 * filter; the records are named after it */
	char      name[40];
	uint64_t  guard_ident; /* names tenant, proj_id, name to the guard */
	char      id[48];     /* checkpoint key: "proj:<name>" */
	proc_emit *em;        /* an emitting projection's (NULL: read models) */
	proc_src   src;       /* what it reads (set with the definition) */
	/* the shared state (proc_shared.c), packed; NULL: the definition's
	 * initial one; dirty: changed since stored (thread-owned) */
	char      *shared;
	size_t     shared_len;
	bool       shared_dirty;
	/* a link's target, for host->event_link_target (proc_sources.c):
	 * valid until the handler returns (thread-owned) */
	struct {
		msgpack_zone   *zone;
		unsigned char  *buf;
		size_t          cap;
		ev_view         v;
		struct sl_event ev;
	} link;
	char      rb_key[56]; /* rebuild record: "rebuild:<name>" */
	char      pause_key[56]; /* "paused:<name>" while paused */
	char      shape_key[56]; /* RM_SHAPE_PREFIX "<name>": served kind */
	pthread_t thr;

	/* the generation being written (thread-owned) */
	MDB_dbi  dbi;
	uint64_t gen;        /* written by batches */
	uint64_t active_gen; /* read by queries */
	bool     rebuilding; /* gen != active_gen */
	/* how the current definition runs (set by setup) */
	bool is_filter;
	bool partitioned; /* failing units wait alone (else: all stop) */
	bool public_only; /* a public filter: public events only */

	pthread_mutex_t mu; /* guards st, stop, commands, fails, pending def */
	pthread_cond_t  cv; /* signalled by proc_stop, proc_set_def, commands */
	pthread_cond_t  done_cv; /* signalled when commands were taken */
	bool            stop;
	bool            has_pending;
	const proj_def *pending; /* held; may be NULL (drop) */
	proc_status     st;
	unsigned        cmds;     /* CMD_BIT of the commands not yet taken */
	uint64_t        cmd_seq;  /* commands asked for */
	uint64_t        cmd_done; /* commands taken */
	failset         fails;    /* written by the thread under mu */
	failset         shown;    /* fails as last committed: status */
	bool            paused;
	/* proc_halt: why the processor is stopped as failed ("" if not;
	 * thread-owned), the next such reason to take (under mu), and the
	 * record that keeps it, "halted:<name>" */
	char halt[256];
	char halt_next[256];
	char halt_key[56];
	/* a remote definition's calls (thread-owned; proc_remote.c) */
	remote_caller      *caller;
	struct remote_ring *ring;
	proc_notify_fn  notify;   /* under mu */
	void           *notify_arg;

	/* thread-only state */
	msgpack_zone    zone;
	msgpack_sbuffer buf;
	/* the fold: states as the handlers left them (the dirty ones not
	 * stored yet), and the stream entries a filter's batch appends:
	 * be64 log position, be16 partition length, partition */
	cache           states;
	msgpack_sbuffer appends;
	char            last_reason[256]; /* handed to the plugin on retry */
	uint64_t        fail_pos; /* storage failures: position, or MAX */
};

/* A unit's failure found by handle_event. */
typedef struct unit_failure {
	char     unit[FAILSET_UNIT_MAX + 2];
	size_t   ulen;
	bool     retry;
	uint32_t delay_ms; /* handler's delay, 0: the growing one */
} unit_failure;

/* What one batch did, filled while scanning. */
typedef struct batch_ctx {
	processor *p;
	MDB_txn   *rtxn; /* read: the states not in the cache, while handling */
	MDB_txn   *txn;  /* write: the batch's result, after handling */
	int64_t    deadline_ns; /* monotonic: when handling stops (0: never) */
	bool       cut; /* handling stopped early (time, a command, stop) */
	uint64_t   cut_at; /* the first event not visited when cut */
	uint64_t   next;    /* position after the last event fully handled */
	uint64_t   handled; /* selected events handled in this batch */
	bool       failed;  /* the scan stopped at the failing event `next` */
	bool       storage; /* ... and the txn must be aborted */
	bool       swapped; /* the rebuild caught up and is now served */
	char       reason[640];
	/* retrying one unit: only its events, from its position up to limit
	 * (0: no limit, an unpartitioned processor's own scan) */
	fail_unit  ru;
	bool       retrying;
	uint64_t   limit;
	size_t     appended; /* filter stream entries written */
	uint64_t   bytes;    /* of the events scanned */
	bool       disconnected; /* a remote client went away: abort */
	unit_failure uf;
	/* a system projection's events (proc_emit_sys_raw): counted, and
	 * the clocks read once every PROC_SYS_CLOCK of them (wall: the
	 * links' occurred) */
	uint32_t sys_events;
	int64_t  sys_now_ns;
} batch_ctx;

/* A system projection reads the clocks once per this many events (each
 * takes well under a microsecond: the batch's 100 ms cut stays close). */
#define PROC_SYS_CLOCK 32

/* The result of proc_handle_event when the event's unit failed (b->uf). */
#define HANDLE_UNIT_FAILED 1000
/* proc_project_unit / proc_filter_unit: not this processor's to handle
 * (not selected, not public, or its unit waits for a retry). */
#define PROC_SKIP 1001

void proc_set_state(processor *p, proc_state s);
bool proc_stopping(processor *p);
/* The command bit of proc_halt (after the proc_cmd values). */
#define CMD_HALT 5
/* A window of at least this long makes events_per_sec. */
#define PROC_RATE_WINDOW_NS 1000000000LL

/* The thread (projection.c); arg: the processor. */
void *proc_thread(void *arg);
/* events_per_sec over the window since rate_at_ns (p->mu held); a window
 * of a second or more starts a new one when `restart`. */
void proc_update_rate(proc_status *st, bool restart);
/* A processor (no thread yet) of def for tenant; with em (taken over,
 * freed with it) an emitting one, rm NULL. */
processor *proc_new(store *s, rmstore *rm, const char *tenant,
    const proj_def *def, uint32_t batch, proc_emit *em);
/* Free what proc_new made (the thread, if any, has ended). */
void proc_free(processor *p);
/* How the definition runs (p->def set): names, kind, the emitting part's
 * view of the definition. SL_OK or SL_ENOMEM. */
int  proc_set_names(processor *p);
/* Forget what the fold holds. */
void proc_fold_discard(processor *p);
/* One batch from pos (see projection.c). */
int  proc_run_batch(processor *p, uint64_t pos, batch_ctx *b);
/* The failing units as status shows them (p->mu held). */
void proc_show_failing(processor *p);

/* proc_sources.c: what it reads */
/* What def reads for tenant (both held by the caller while s is used). */
void proc_src_init(proc_src *s, const proj_def *def, const char *tenant);
/* Whether an event with head h (ev_peek) can be selected: the tenant's,
 * from a source, of a type a selector names (a projection). */
bool proc_src_selects(const proc_src *s, const ev_head *h);
/* p->src for p->def (after the definition changed). */
void proc_sources_init(processor *p);
/* proc_src_selects for p. */
bool proc_selects(const processor *p, const ev_head *h);
/* The handler's event for ev: host->event_link_target resolves links
 * through p. */
struct sl_event proc_sl_event(processor *p, const ev_view *ev);
void proc_link_free(processor *p);
/* ev is the log's deletion notice of a stream p reads, and p has a
 * deleted callback: SL_OK with the stream's id in key (PROC_KEY_MAX
 * bytes) and its unit in b; PROC_SKIP (not for p, or its unit waits);
 * SL_ENOTFOUND: not a deletion notice (handle ev as any event). */
int  proc_deletion_unit(batch_ctx *b, const ev_view *ev, char *key);
/* Call the deleted callback for key's state (gk: guard.h's kind). */
int  proc_deleted_call(batch_ctx *b, int gk, const char *key,
     uint64_t position, sl_state *state, sl_context *ctx, sl_outcome *out);

/* proc_shared.c: the shared state */
/* Load it into st for a handler (ctx->shared = st); false when the
 * definition has none. */
bool proc_shared_begin(processor *p, sl_state *st, sl_context *ctx);
/* After the handler: keep st as the shared state (changed: dirty) or
 * drop it; frees st. SL_OK or SL_ENOMEM (b->storage). */
int  proc_shared_end(batch_ctx *b, sl_state *st, sl_context *ctx, bool keep);
/* Replace it with len packed bytes (data NULL: the initial one). */
void proc_shared_set(processor *p, const void *data, size_t len);
/* A read-model projection's record of it in generation p->gen: read
 * (setup, after an aborted batch), written when dirty, dropped. */
int  proc_shared_load_rm(processor *p, MDB_txn *txn);
int  proc_shared_write_rm(processor *p, MDB_txn *txn);
int  proc_shared_drop_rm(processor *p, MDB_txn *txn, uint64_t gen);

/* proc_emit.c: the emitting projections' side */
/* Read or reset the checkpoint in the log env: the position in
 * p->st.position, the failing keys, the stop. */
int  proc_emit_setup(processor *p, bool reset, char *reason, size_t rlen);
/* Handle an event of the tenant (see proc_handle_event). */
int  proc_emit_event(batch_ctx *b, const ev_view *ev, uint64_t position);
/* Store the batch (b->next, or a retried unit's progress, is in the
 * fold and the failing set): states, emitted events, checkpoint in one
 * store_emit; nothing when there is nothing to store yet. */
int  proc_emit_commit(processor *p, batch_ctx *b, uint64_t position);
/* The failing keys as the stored checkpoint holds them (after a failed
 * batch: the run goes on from em->committed). */
void proc_emit_reload(processor *p);
/* Wait for the batch at the store: SL_OK when none or durable (then
 * em->committed is its position), else its error with why in reason. */
int  proc_emit_sync(processor *p, char *reason, size_t rlen);
/* Store the checkpoint again (a stop, a start, a retry). */
int  proc_emit_persist(processor *p);
/* Whether the batch must end here: a checkpoint threshold reached, or a
 * query cancelled. */
bool proc_emit_cut(const batch_ctx *b);
/* A continuous run on a shared log (store_leased) runs only under its
 * lease: whether it still holds the one it was set up under. */
bool proc_emit_lease_ok(processor *p);
/* Wait (state standby) until this node holds the run's lease; then the
 * run is set up again from the checkpoint the lease's holder loaded.
 * false: interrupted (stop, a definition, a command). */
bool proc_emit_lease_wait(processor *p);
/* Point the emit sink at p (after proc_new). */
void proc_emit_bind(processor *p);
/*
 * The result of a state (NULL: the initial state) by the result transform
 * fn: a packed map in *out (malloc'ed; NULL: no result). SL_OK, SL_ENOMEM,
 * or SL_EPLUGIN with a reason in why.
 */
int  proc_emit_result(proj_result_fn fn, const proj_def *def,
     const char *key, const void *state, size_t len, void **out,
     size_t *out_len, char *why, size_t whylen);
/* Clean states a processor keeps between batches (PROC_CACHE_KEEP; tests
 * lower it). */
extern size_t proc_cache_keep;
void proc_emit_free(proc_emit *em);
/* The batch being built (created when there is none; NULL: no memory). */
struct ebatch *proc_ebatch_get(proc_emit *em);
/* Append an event (content: one packed msgpack value; meta a packed map
 * or NULL) caused by ev (may be NULL). SL_OK or SL_ENOMEM. */
int proc_ebatch_append(struct ebatch *b, const char *stream,
    const char *type, const void *content, size_t len, const void *meta,
    size_t meta_len, const ev_view *cause);
/* Append a link ("$>") in stream to the append just before it (its
 * revision is the writer's). SL_OK, SL_EINVAL (none before), SL_ENOMEM. */
int proc_ebatch_link_prev(
    struct ebatch *b, const char *stream, const ev_view *cause);
/* Append a link ("$>", "<revision>@<target>") into stream caused by the
 * event of cause_id and corr (its correlation id), occurred at
 * occurred_ns, built in place (the system projections' links). SL_OK or
 * SL_ENOMEM. */
int proc_ebatch_link(struct ebatch *b, const char *stream,
    const char *target, size_t tlen, uint64_t revision,
    const uint8_t cause_id[16], const char *corr, size_t corr_len,
    int64_t occurred_ns);
/* A system projection's event from its stored bytes (r: ev_peek_raw):
 * SL_OK (handled or skipped), PROC_SLOW (handle the decoded event), or a
 * storage error (b->storage). */
#define PROC_SLOW 1002
int proc_emit_sys_raw(batch_ctx *b, const ev_raw *r, uint64_t position);
/* A system projection's batch from pos through its tenant's shared
 * reader: SL_OK (b->next where it ended, maybe cut), PROC_SLOW (read the
 * log: outside the reader's window, a unit failing or retried, an event
 * for the decoder first), or a storage error (b->storage). */
int proc_emit_sys_feed(batch_ctx *b, uint64_t pos);
/* The batch's appends so far, and back to such a mark (a failed event's
 * are dropped). */
size_t proc_ebatch_mark(const proc_emit *em);
void   proc_ebatch_rewind(proc_emit *em, size_t mark);

/* proc_events.c */
/* A key with no state yet: the definition's created callback (ABI 1.3)
 * completes its initial state. SL_OK (also when there is none), or
 * HANDLE_UNIT_FAILED. gk: guard.h's guard_kind, for the call. */
int  proc_created(batch_ctx *b, int gk, const sl_event *ev,
     const char *key, sl_state *state, sl_context *ctx);
/* The state of key in the fold: SL_OK with *data, *len (valid until the
 * key's next change), SL_ENOTFOUND (the initial state applies), or a storage
 * error (b->storage set). */
int  proc_state_get(batch_ctx *b, const char *key, size_t klen,
     const void **data, size_t *len);
/* Change key's state in the fold (data NULL: delete it); stored by the
 * batch's write. SL_OK or SL_ENOMEM (b->storage set). */
int  proc_state_set(batch_ctx *b, const char *key, size_t klen,
     const void *data, size_t len);
/* proc_state_get, also giving the key's cache entry (*at; NULL on
 * error): it stays the key's until the batch ends. */
int proc_state_get_at(batch_ctx *b, const char *key, size_t klen,
    const void **data, size_t *len, centry **at);
/* As proc_state_set with a state the caller hands over (malloc'ed, len
 * bytes, not NULL): the cache owns it from now on, on failure too. at: the
 * key's entry from proc_state_get_at in this batch, or NULL. */
int proc_state_take(batch_ctx *b, centry *at, const char *key, size_t klen,
    void *data, size_t len);
/* Whether handling must stop before the event at position: the batch's
 * time is up, or a command, a definition or the stop waits (b->cut). */
bool proc_cut(batch_ctx *b, uint64_t position);

/** guard_enter for a call of p's plugin on unit (ulen bytes) at position. */
static inline void
proc_guard_enter(const processor *p, int gk, const char *unit, size_t ulen,
    uint64_t position)
{
	guard_enter_as(p->guard_ident, (guard_kind) gk, p->tenant, p->proj_id,
	    p->name, p->gen, unit, ulen, position);
}
int  proc_scan_cb(void *arg, uint64_t position, const void *data, size_t len);
int  proc_handle_event(
     batch_ctx *b, uint64_t position, const void *data, size_t len);
/* Record the failure of the event at position (b->uf, b->reason) in b->txn
 * and in memory; SL_OK, or a storage error with b->storage set. */
int  proc_record_failure(batch_ctx *b, uint64_t position);
int  proc_unit_fail(batch_ctx *b, const sl_context *ctx, const char *fmt, ...)
     __attribute__((format(printf, 3, 4)));
void proc_set_unit(batch_ctx *b, const char *prefix, const char *s);
bool proc_unit_selected(batch_ctx *b, uint64_t position);
void proc_retry_state(batch_ctx *b, uint64_t position, sl_context *ctx);
int  proc_storage_failed(
     batch_ctx *b, int mrc, const char *what, const char *key);
int64_t proc_retry_delay_ns(uint32_t attempt, uint32_t handler_ms);
/* The unit of a projection's event (b->uf) and its key (PROC_KEY_MAX
 * bytes): SL_OK to handle it, PROC_SKIP, or HANDLE_UNIT_FAILED (no key). */
int  proc_project_unit(batch_ctx *b, const ev_view *ev, char *key);
/* As proc_project_unit, or for the log's deletion notice of a stream the
 * projection reads (proc_deletion_unit) that stream's key, *deleting set. */
int  proc_event_unit(batch_ctx *b, const ev_view *ev, char *key,
     bool *deleting);
/* The unit of a filter's event (b->uf): SL_OK to handle it, or PROC_SKIP. */
int  proc_filter_unit(batch_ctx *b, const ev_view *ev);
/* A filter included the event: append it to the stream (by the batch's
 * write). SL_OK, HANDLE_UNIT_FAILED (bad partition), or a storage error. */
int  proc_filter_include(batch_ctx *b, const sl_context *ctx,
     const char *partition, uint64_t position);
/* After the event at position was handled: an unpartitioned processor's
 * retried event clears its failure. SL_OK or a storage error. */
int  proc_handled(batch_ctx *b, uint64_t position);
/* After the event at position failed (b->uf, b->reason): record it;
 * @return whether the scan must stop (storage, or a stopping failure). */
bool proc_failed(batch_ctx *b, uint64_t position);

/* proc_remote.c: a remote definition's events, pipelined */
int  proc_remote_open(processor *p);  /* at setup: the caller and ring */
void proc_remote_close(processor *p); /* when the definition ends */
int  proc_remote_scan_cb(
     void *arg, uint64_t position, const void *data, size_t len);
/* After the scan: collect every answer in flight (or drop them when the
 * batch is aborted). */
void proc_remote_drain(batch_ctx *b);

#endif
