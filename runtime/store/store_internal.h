/*
 * The event log's insides, shared by store.c (the log, the writer, scans),
 * store_emit.c (ownership, emitting projections' batches and records) and
 * store_delete.c (stream deletion and what it hides). Not for other parts
 * of the runtime.
 */
#ifndef SL_STORE_INTERNAL_H
#define SL_STORE_INTERNAL_H

#include <lmdb.h>
#include <pthread.h>

#include "hist.h"
#include "store.h"

/* Most commits taken into one write transaction: bounds the transaction's
 * dirty pages and the latency of the first commit in a long queue. */
#define STORE_GROUP_MAX        4096
#define STORE_MAX_READERS      512
#define STORE_MAX_DBS          16
#define STORE_DEFAULT_MAP_SIZE ((size_t) 1 << 30)
/* Longest "streams" key: tenant \0 stream \0 rev(be64). */
#define STORE_KEY_MAX (2 * SL_MAX_ID_LEN + 2 + 8)

/* Written groups waiting for their sync (struct store's pend[]). */
#define STORE_PEND_MAX 8

/* One write transaction's group on its way to its acknowledgement. */
typedef struct store_group {
	store_commit *commits;
	store_emit   *emits;
	uint64_t      start, end; /* the positions it wrote: [start, end) */
	uint64_t      seq;        /* its commit's number (commit_seq) */
	bool          wrote;      /* a transaction was committed */
} store_group;

/*
 * A log of record other than this LMDB environment (store_pg.c). The
 * writer hands it each group of client commits; what the log of record
 * holds comes back, in position order, through store_mirror_append from
 * the backend's follower, which is the only writer of the LMDB log then.
 * store.c knows no more of the backend than this table (so only what
 * opens one links its library).
 */
typedef struct store_backend {
	const char *name; /* "postgresql": log lines and messages */
	/* Write v[0..n) (commits and deletions checked by the store: ids,
	 * owner) as one transaction of the log of record, each all or
	 * nothing, in order; set each one's rc (SL_OK, SL_EREVISION,
	 * SL_EEXIST, SL_EUNAVAILABLE ...), message and, on SL_OK, the
	 * results store_write_one sets (first_position, first_revision; a
	 * deletion's stream_revision and truncate_before). Returns once that transaction
	 * committed or failed: true when the written ones are to be
	 * acknowledged at once although the mirror may not hold them (it
	 * failed to take them). Writer thread. */
	bool (*write_group)(void *ctx, store_commit **v, size_t n);
	/* Stop the follower and free ctx (the writer has stopped). */
	void (*close)(void *ctx);
	/* Write one emit batch (validated by the store) as one transaction
	 * of the log of record, under its lease (e->lease); set e's rc,
	 * message and first_position. Writer thread. */
	void (*write_emit)(void *ctx, store_emit *e);
	/* store_lease_want and store_lease_get. */
	int (*lease_want)(void *ctx, const char *tenant, const char *owner);
	uint64_t (*lease_get)(void *ctx, const char *tenant,
	    const char *owner, char *holder, size_t hlen);
} store_backend;

typedef struct store_claim_t {
	char *pattern; /* exact name, or a prefix ending in '*' */
	char *owner;   /* projection id */
	char *label;   /* how messages name the owner */
} store_claim_t;

struct store {
	MDB_env *env;
	MDB_dbi  db_log;
	MDB_dbi  db_streams;
	MDB_dbi  db_heads;
	MDB_dbi  db_owners; /* see store.h */
	MDB_dbi  db_owned;
	MDB_dbi  db_pstate;
	MDB_dbi  db_pcheck;
	MDB_dbi  db_trunc; /* "truncated", see store.h */
	size_t   max_key; /* mdb_env_get_maxkeysize() */

	pthread_mutex_t mu;
	pthread_cond_t  work_cv; /* writer: queue not empty or closing */
	pthread_cond_t  head_cv; /* store_wait: next_pos moved or wake */
	pthread_cond_t  done_cv; /* store_commit_wait: a commit finished */
	/* Two queues under mu, one for each kind of write; q_seq numbers
	 * every submission so that the writer takes them in arrival order
	 * (the number waits in the item's first_position until the writer
	 * takes it, which then clears it). */
	store_commit *q_head;
	store_commit *q_tail;
	store_emit   *qe_head;
	store_emit   *qe_tail;
	uint64_t      q_seq;
	bool          closing;
	bool          writer_waiting; /* the writer sleeps on work_cv (mu) */
	uint64_t      next_pos;  /* published position, under mu */
	uint64_t      txn_count; /* committed write txns, under mu */
	uint64_t      wake_gen;  /* bumped by store_wake_all */

	pthread_t       writer;
	uint64_t        write_pos; /* writer only: the next position to write
	                              (ahead of next_pos while a group waits
	                              for its sync) */
	/* Durable logs (sync): the env has MDB_NOMETASYNC, so a commit's
	 * meta page is on disk only after the next fdatasync of the file
	 * (the next commit's, or store_sync_log's). Written groups wait in
	 * pend[] (a ring under mu, oldest at pend_head) for the syncer
	 * thread, which syncs once for all of them, publishes their heads
	 * and acknowledges them in order; the writer meanwhile writes the
	 * next group. See store_finish_group. */
	bool            sync;
	int             sync_fd; /* the data file, our own open (sync) */
	bool            failed; /* a sync failed: every later write refused */
	bool            writer_done;
	bool            syncer_busy; /* groups taken from pend[], not synced */
	pthread_mutex_t ack_mu;      /* held while groups are acknowledged:
	                                keeps the acks in order */
	/* Write transactions committed so far (atomic, writer-updated): a
	 * commit's fdatasync runs after the meta page of every commit before
	 * it was written, so a group whose seq is below it is durable
	 * without a sync of its own. */
	uint64_t        commit_seq;
	/* The writer is writing a group (under mu; cleared with a broadcast
	 * of sync_cv once that write ended, committed or not). Its commit's
	 * fdatasync makes every group written before it durable, so the
	 * syncer waits for it rather than syncing beside it. */
	bool            txn_active;
	uint64_t        writes_ended; /* writes that cleared txn_active */
	pthread_t       syncer;
	pthread_cond_t  sync_cv; /* syncer: pend[] not empty or writer done;
	                            writer: room in pend[] */
	store_group     pend[STORE_PEND_MAX];
	size_t          pend_head, pend_n;
	msgpack_sbuffer enc; /* writer only: encoding buffer */

	/* Stream claims of emitting projections (store_claim), under
	 * claims_mu: read by the writer thread and store_check_owner. */
	pthread_mutex_t claims_mu;
	store_claim_t  *claims;
	size_t          n_claims;
	size_t          cap_claims;

	/* The log of record when it is not this env (store_set_backend):
	 * commits the backend wrote wait in await_* (under mu, in position
	 * order) until the mirror holds them (store_mirror_append). */
	const store_backend *be;
	void                *be_ctx;
	store_commit        *await_head;
	store_commit        *await_tail;
	pthread_mutex_t      mirror_mu; /* one store_mirror_append at once */

	/* the metrics (store_stats_get): relaxed atomics, writer-updated */
	uint64_t commits_ok, commits_refused, events_appended;
	hist     commit_latency; /* submit to ack, ns, acknowledged commits */
	hist     group_events;   /* events per write transaction */
};

static inline void
store_put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t) v;
		v >>= 8;
	}
}

static inline uint64_t
store_get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

/* A submission was queued (mu held): wake the writer if it sleeps. One
 * wake-up per queue that fills while it sleeps, not one per submission
 * (each signal with a sleeper is a futex call, and under a burst the
 * writer has not yet run when the next one comes). */
static inline void
store_wake_writer_locked(store *s)
{
	if (s->writer_waiting) {
		s->writer_waiting = false;
		pthread_cond_signal(&s->work_cv);
	}
}

/* LMDB result to sl_err (a full map is SL_EFULL). */
int store_map_err(int mrc);
/* Build the "heads" key (tenant \0 stream); returns its length. */
size_t store_head_key(uint8_t *buf, const char *tenant, size_t tenant_len,
    const char *stream, size_t stream_len);
/* An id usable in the index keys: 1..SL_MAX_ID_LEN bytes, no NUL. */
bool store_id_ok(const char *id, size_t len);
int  store_read_begin(store *s, MDB_txn **txn, const char *what);
/* Who may write (tenant, stream) in txn: SL_OK or SL_EOWNED with err. */
int  store_owner_check_txn(store *s, MDB_txn *txn, const char *tenant,
     size_t tenant_len, const char *stream, size_t stream_len,
     const char *writer, char *err, size_t errlen);
/* Write one emit batch inside the group transaction parent (writer). */
void store_write_emit(store *s, MDB_txn *parent, store_emit *e,
     uint64_t *pos);
void store_claim_free(store_claim_t *c);
/* appends[i] of e as it is written: itself, or for a link_prev a copy in
 * lk whose content is "<rev>@<stream>" of appends[i - 1] (rev: the
 * revision that one got). NULL when it does not fit (e failed). */
typedef struct store_linked {
	store_append   append;
	msgpack_object target;
	char           text[SL_MAX_ID_LEN + 32];
} store_linked;
const store_append *store_emit_linked(
    store_emit *e, size_t i, uint64_t rev, store_linked *lk);
/* Refuse an emit batch that cannot be written whatever the log holds
 * (ids, key lengths, links): SL_OK or e's rc. */
int  store_emit_validate(store *s, store_emit *e);
/* Whether writer may write stream by the claims (and the log's own
 * STORE_DELETED_STREAM): SL_OK or SL_EOWNED with err. */
int  store_claims_allow(store *s, const char *stream, size_t len,
     const char *writer, char *err, size_t errlen);
/* After the log of record committed batch e: its states, checkpoint and
 * owner records into this env (the lease holder's copy), in one write
 * transaction. LMDB's code. */
int  store_emit_local(store *s, const store_emit *e);
/* Replace the owner's states and checkpoint in this env with the log of
 * record's (ckpt NULL: none), in one write transaction. LMDB's code. */
int  store_owner_load(store *s, const char *tenant, const char *owner,
     const store_kv *states, size_t n, const void *ckpt, size_t ckpt_len);

/* ---- one stream's records (store.c) ---- */

/* A be64 value of dbi under key into *out, 0 when there is none.
 * SL_OK; SL_ESTORAGE (logged, what names it) for a failure or a value
 * that is not 8 bytes. */
int store_get_be64_txn(MDB_txn *txn, MDB_dbi dbi, const uint8_t *key,
    size_t klen, uint64_t *out, const char *what);
/* Put the event encoded in s->enc at position pos (APPEND: positions only
 * grow) and index it as revision rev of the stream whose head key is
 * key[0..hlen) (key has room for the index suffix). LMDB's code. */
int store_put_encoded(store *s, MDB_txn *txn, uint8_t *key, size_t hlen,
    uint64_t rev, uint64_t pos);
/* Cursors on the log and the stream index in one write transaction, for
 * a batch's puts: a cursor kept on the log's last page appends there, and
 * one kept on the stream index's page of the stream's last revision puts
 * the next one there, without a search from the root (and LMDB's search
 * of its dirty pages at each level) per put. Opened by store_cursors_open,
 * closed by store_cursors_close before the transaction ends. */
typedef struct store_cursors {
	MDB_cursor *log, *streams;
} store_cursors;
int  store_cursors_open(store *s, MDB_txn *txn, store_cursors *out);
void store_cursors_close(store_cursors *c);
/* store_put_encoded through the cursors of c. LMDB's code. */
int store_put_encoded_c(store *s, store_cursors *c, uint8_t *key, size_t hlen,
    uint64_t rev, uint64_t pos);
/* Set the stream's next revision ("heads"). LMDB's code. */
int store_put_head(store *s, MDB_txn *txn, const uint8_t *key, size_t hlen,
    uint64_t next_rev);

/* ---- a log of record elsewhere (store_pg.c) ---- */

/* Make be the log of record of s, before any commit: the writer hands it
 * the commits from now on and s->be->close(ctx) runs in store_close. */
void store_set_backend(store *s, const store_backend *be, void *ctx);
/* One row of the log of record: the ev_encode record at position. */
typedef struct store_row {
	uint64_t    position;
	const void *data;
	size_t      len;
} store_row;
/* Append rows (consecutive positions) to the LMDB log in one write
 * transaction, with the stream index and heads as a commit writes them,
 * publish the new head and acknowledge the commits that waited for it.
 * Rows the mirror holds already are skipped (the writer and the follower
 * both append; one at a time). A first new row past the mirror's head is
 * a gap: SL_ENOTFOUND, nothing written (the writer's rows wait for the
 * follower then), logged as an error unless gap_ok. SL_OK; SL_EINTERNAL
 * (a record that is no event: logged, nothing written); SL_ESTORAGE /
 * SL_EFULL (LMDB). */
int  store_mirror_append(
     store *s, const store_row *rows, size_t n, bool gap_ok);
/* The expected revision against the stream's next revision: SL_OK, or
 * SL_EREVISION with c's stream_revision and message set. */
int  store_check_expected(store_commit *c, uint64_t next_rev);
/* Refuse a commit or deletion that cannot be written whatever the log
 * holds (ids, their lengths, a client's '$' deletion): SL_OK or c's rc. */
int  store_commit_check(store *s, store_commit *c);
/* Answer every commit waiting in the queue (not yet taken by the writer)
 * with code and msg: a backend whose writer is held up (a doubt to
 * resolve) while the database is away. Emit batches stay queued. */
void store_fail_queued(store *s, int code, const char *msg);
/* Whether store_close has begun (a backend's retries stop then). */
bool store_closing(store *s);

/* ---- deletion (store_delete.c) ---- */

/* Hide the revisions below tb of the stream whose head key is
 * key[0..hlen). LMDB's code. */
int store_trunc_put(store *s, MDB_txn *txn, const uint8_t *key, size_t hlen,
    uint64_t tb);
/* The stream's first shown revision (0: nothing hidden). As
 * store_get_be64_txn. */
int store_trunc_get(store *s, MDB_txn *txn, const uint8_t *key, size_t hlen,
    uint64_t *tb);
/* Write a deletion (c->trunc) inside the commit's nested txn, after
 * store_write_one checked the ids, the owner and expected: next_rev is the
 * stream's next revision, key[0..hlen) its head key, pos where its
 * notification goes. Sets c's rc and results (the caller moves the log's
 * position on once the nested txn committed). */
void store_write_delete(store *s, MDB_txn *txn, store_commit *c, uint8_t *key,
    size_t hlen, uint64_t next_rev, uint64_t pos);
/* The mark a deletion (c->trunc) of a stream whose next revision is
 * next_rev and whose first shown one is old_tb sets: SL_OK with *tb, or
 * c failed with why (SL_ENOTFOUND, SL_EINVAL). */
int  store_delete_mark(
     store_commit *c, uint64_t next_rev, uint64_t old_tb, uint64_t *tb);
/* Append to buf the notification of deletion c (revision drev of the
 * tenant's STORE_DELETED_STREAM; the stream's next revision next_rev, its
 * new mark tb); its event id into id. SL_OK, or c failed (EINTERNAL). */
int  store_delete_encode(msgpack_sbuffer *buf, store_commit *c,
     uint64_t next_rev, uint64_t tb, uint64_t drev, uint8_t id[16]);
/* The mirror (store_mirror_append) takes a deletion from the log itself:
 * for the notification h (data[0..len)) of a stream deletion, set the
 * mark its content names, as store_write_delete did where it was
 * written. MDB_SUCCESS also for any other event; LMDB's code; -1 for a
 * notification that names no stream and mark. */
int  store_mirror_delete(store *s, MDB_txn *txn, const ev_head *h,
     const void *data, size_t len);
/* Whether a scan must look for hidden events, and the last stream it
 * looked up (runs of one stream's events cost one look-up). */
typedef struct store_vis {
	bool     any; /* the "truncated" db has records */
	uint8_t  key[STORE_KEY_MAX];
	size_t   klen; /* 0: none looked up yet */
	uint64_t tb;
} store_vis;
/* Set v up for a scan in txn. SL_OK, SL_ESTORAGE. */
int  store_vis_init(store *s, MDB_txn *txn, store_vis *v);
/* Whether the stored event data[0..len) is hidden: SL_OK with *hidden set,
 * SL_ESTORAGE (a record that is no event, or a failed look-up). */
int  store_vis_hidden(store *s, MDB_txn *txn, store_vis *v, const void *data,
     size_t len, bool *hidden);
/* Set c's rc and message; returns code (store.c). */
int  store_fail(store_commit *c, int code, const char *fmt, ...)
     __attribute__((format(printf, 3, 4)));
/* Set e's rc and message; returns code. */
int  store_emit_fail(store_emit *e, int code, const char *fmt, ...)
     __attribute__((format(printf, 3, 4)));

#endif
