/*
 * The event log: one LMDB environment holding every tenant's events in one
 * gap-free sequence of positions (0, 1, 2, ...), an index per stream, and the
 * stream heads. One writer thread batches the commits waiting in its queue
 * into one write transaction (group commit) and acknowledges each only when
 * that transaction is durable. Readers use LMDB read transactions.
 *
 * LMDB layout (named databases):
 *   "log"     key u64 big-endian position      -> ev_encode() record
 *   "streams" key tenant \0 stream \0 rev(be64) -> position (be64)
 *   "heads"   key tenant \0 stream              -> next revision (be64)
 *
 * Emitting projections (runtime/processing/emitter.h) keep their state here too, so
 * that what they write, their states and their checkpoint commit in one
 * write transaction (store_submit_emit):
 *   "owners"  key tenant \0 stream              -> owner id (who wrote it)
 *   "owned"   key tenant \0 owner \0 stream     -> "" (streams per owner)
 *   "pstate"  key tenant \0 owner \0 key        -> state (msgpack map)
 *   "pcheck"  key tenant \0 owner               -> checkpoint (opaque bytes)
 * With a log of record elsewhere (PostgreSQL, store_pg.h) those live
 * there, written with the batch's events under the owner's lease, and
 * these records are the copy of the node that holds the lease.
 *
 * Stream deletion (a soft delete, or EventStoreDB's truncate-before $tb):
 *   "truncated" key tenant \0 stream -> first revision reads show (be64)
 * The revisions below it are hidden from every read here but store_scan
 * (the raw log, which processors follow); the events stay in the log, so
 * positions stay gap-free, and "heads" keeps counting: a later commit
 * continues the stream's revisions. A client's deletion (store_commit with
 * trunc) writes one notification event to the tenant's
 * STORE_DELETED_STREAM in the same transaction; an emitting projection's
 * reset hides its streams the same way, without notifications.
 */
#ifndef SL_STORE_H
#define SL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "hist.h"

typedef struct store store;

/** Expected revision: any, no stream yet, or the revision of the last event. */
#define STORE_EXPECT_ANY UINT64_MAX
#define STORE_EXPECT_NO_STREAM (UINT64_MAX - 1)

/** The stream, in each tenant, that records every deletion: written by
 * the log only (a claim or write of it is refused). */
#define STORE_DELETED_STREAM "$deleted"
/** Its event types: content {"stream": str, "revision": uint (the
 * stream's last revision then), "truncate_before": uint (the first
 * revision reads show from then on)}. */
#define STORE_EV_STREAM_DELETED   "$streamDeleted"
#define STORE_EV_STREAM_TRUNCATED "$streamTruncated"

/** What a store_commit does: append events, or hide a stream's. */
typedef enum store_trunc {
	STORE_TRUNC_NONE = 0, /* a commit of events */
	STORE_TRUNC_DELETE,   /* soft delete: hide every revision so far */
	STORE_TRUNC_BEFORE,   /* hide the revisions before truncate_before */
} store_trunc;

typedef struct store_commit store_commit;
/** Called on the writer thread, or with sync on the syncer thread, once
 * the commit is durable or refused (see store_submit). */
typedef void (*store_done_fn)(store_commit *c, void *arg);

/**
 * One commit: a batch of events for one tenant and stream, all or nothing.
 * The caller owns the struct and everything it points to until done() runs.
 */
struct store_commit {
	const char *tenant;
	size_t tenant_len;
	const char *stream;
	size_t stream_len;
	uint64_t expected; /* STORE_EXPECT_* or a revision */
	const ev_new *events;
	size_t n_events;
	store_done_fn done;
	void *arg;

	/* results, valid in done() */
	int rc;                  /* SL_OK, SL_EREVISION, SL_EFULL, SL_ESTORAGE ... */
	uint64_t first_position; /* position of events[0] */
	uint64_t first_revision; /* revision of events[0] */
	uint64_t stream_revision; /* on SL_EREVISION: the stream's actual last
	                             revision, or STORE_EXPECT_NO_STREAM */
	char message[160];       /* error detail */

	store_commit *next; /* internal: queue link */
	/* appended for emitting projections: NULL for a client's commit, which
	 * is refused with SL_EOWNED on a stream that a projection owns (a
	 * claim matches it, or an "owners" record names another owner) */
	const char *owner;
	/*
	 * Appended for stream deletion. A deletion (trunc not NONE) has no
	 * events; it checks expected and the owner as a commit does, then
	 * hides the stream's revisions and writes its notification (type
	 * STORE_EV_STREAM_DELETED or _TRUNCATED) as the next revision of
	 * STORE_DELETED_STREAM. Refused: a '$' stream by a client (SL_EINVAL),
	 * a stream without events or with nothing left to hide
	 * (SL_ENOTFOUND), truncate_before 0, at or below what is hidden
	 * already, or past the stream's next revision (SL_EINVAL).
	 * Results on SL_OK: first_position and first_revision are the
	 * notification's, stream_revision the stream's last revision and
	 * truncate_before the first revision reads show from now on.
	 */
	store_trunc trunc;
	uint64_t    truncate_before;
	int64_t     submit_ns; /* internal: store_submit's time (metrics) */
};

/**
 * Open (creating if needed) the log in directory path.
 * @param sync  false opens with MDB_NOSYNC: acknowledged commits may be lost
 *              on a machine crash (not on a process crash)
 * @return SL_OK, SL_ESTORAGE (message logged), SL_ENOMEM.
 */
int store_open(const char *path, size_t map_size, bool sync, store **out);
/** Stop the writer (pending commits complete first) and close the env. */
void store_close(store *s);

/**
 * Queue a commit for the writer. done() is called exactly once, on the
 * writer thread or (sync) the syncer thread, after the transaction holding
 * it is durable (or on refusal), in the order the groups were written,
 * after store_next_position() has moved past its events. The scans below
 * never show events whose transaction is not durable yet.
 * @return SL_OK (queued), SL_EINVAL (empty batch), SL_ECLOSED.
 */
int store_submit(store *s, store_commit *c);
/** Submit and wait for the result. @return c->rc. */
int store_commit_wait(store *s, store_commit *c);

/** The next position to be written = number of events in the log. */
uint64_t store_next_position(store *s);
/**
 * Block until store_next_position() > known or timeout_ms passes
 * (-1 waits forever) or the store is closing.
 * @return the next position at return.
 */
uint64_t store_wait(store *s, uint64_t known, int timeout_ms);
/** Wake every store_wait() (used at shutdown). */
void store_wake_all(store *s);

/**
 * Called for each event by the scans; data is valid only during the call.
 * Return 0 to go on, nonzero to stop the scan (returned by the scan).
 */
typedef int (*store_scan_fn)(void *arg, uint64_t position, const void *data,
    size_t len);

/**
 * Scan the log forward from position `from`, at most max events, in one
 * read transaction. @return SL_OK, the callback's nonzero value, or
 * SL_ESTORAGE. *next (may be NULL) receives the position after the last
 * event visited.
 */
int store_scan(store *s, uint64_t from, size_t max, store_scan_fn fn,
    void *arg, uint64_t *next);
/**
 * A read transaction on the log for fetching events by position, many in
 * one transaction (a read_filter reply's). Open it after whatever named
 * the positions was read, so that it sees them. One thread at a time.
 */
typedef struct store_reader store_reader;
int store_reader_open(store *s, store_reader **out);
/** The event at position: data valid until the reader closes.
 * @return SL_OK; SL_ENOTFOUND (the log does not hold it); SL_ESTORAGE. */
int  store_reader_get(store_reader *rd, uint64_t position, const void **data,
     size_t *len);
void store_reader_close(store_reader *rd);

/**
 * store_scan without the events that stream deletions hide: at most max
 * shown events, and at most STORE_SCAN_HIDDEN_MAX hidden ones skipped per
 * call. *next (may be NULL) receives the position after the last event
 * visited, shown or hidden: a page may be empty while *next moves.
 */
int store_scan_visible(store *s, uint64_t from, size_t max, store_scan_fn fn,
    void *arg, uint64_t *next);
/** Most hidden events one store_scan_visible skips before it returns. */
#define STORE_SCAN_HIDDEN_MAX 65536
/**
 * Scan one stream of one tenant from revision from_rev (or the stream's
 * first shown revision, if later), at most max events.
 * @return as store_scan; SL_OK with no calls for an unknown stream.
 */
int store_scan_stream(store *s, const char *tenant, const char *stream,
    uint64_t from_rev, size_t max, store_scan_fn fn, void *arg);
/**
 * The next revision of a stream (0 if it has no events).
 */
int store_stream_next_revision(store *s, const char *tenant,
    const char *stream, uint64_t *out);
/**
 * The first revision of a stream that reads show: 0, or where a deletion
 * or truncation left it (equal to the next revision when the stream is
 * deleted and nothing was committed since). SL_OK, SL_ESTORAGE.
 */
int store_stream_first_revision(store *s, const char *tenant,
    const char *stream, uint64_t *out);

/* ---- ownership and emitting projections ---- */

/**
 * Whether two stream patterns (an exact name, or a prefix ending in '*')
 * overlap: some stream id matches both.
 */
bool store_pattern_overlap(const char *a, const char *b);

/**
 * Claim the streams matching pattern (an exact name, or a prefix ending in
 * '*') for owner (a projection id; label is how errors name it, e.g. its
 * name), in every tenant. Claims live in memory; the runtime makes them
 * when it loads projections.
 * @return SL_OK (also when owner already holds this pattern); SL_EEXIST
 * when it overlaps another owner's claim (err names both); SL_EINVAL.
 */
int store_claim(store *s, const char *pattern, const char *owner,
    const char *label, char *err, size_t errlen);
/** Drop every claim of owner (its projection was unloaded). */
void store_unclaim(store *s, const char *owner);
/**
 * Who may write stream: SL_OK when writer (NULL: a client) may; SL_EOWNED
 * with err naming the owner otherwise. Checks claims and "owners" records.
 */
int store_check_owner(store *s, const char *tenant, const char *stream,
    const char *writer, char *err, size_t errlen);

/** One event an emitting projection writes (to any stream: revision any). */
typedef struct store_append {
	const char *stream;
	ev_new      ev; /* content may be any msgpack value (a link: a str) */
	/* a link ("$>") to the append just before it in the batch, whose
	 * revision only the writer knows: the writer sets the content to
	 * "<revision>@<stream>" of appends[i - 1] (ev.content is a
	 * placeholder str; appends[0] may not have it) */
	bool link_prev;
} store_append;

/** A state put (val != NULL) or delete (val == NULL) under the owner. */
typedef struct store_kv {
	const void *key;
	size_t      key_len;
	const void *val;
	size_t      val_len;
} store_kv;

typedef struct store_emit store_emit;
typedef void (*store_emit_done_fn)(store_emit *e, void *arg);

/**
 * One batch of an emitting projection, written in one transaction with
 * the group's other commits, all or nothing, in this order: reset (soft
 * delete of every stream the owner wrote for the tenant, as a deletion
 * hides a stream but without a notification, and its states),
 * appends (owner records written for new streams; a stream another owner
 * holds refuses the whole batch with SL_EOWNED), states, checkpoint.
 * The caller owns everything until done() runs (on the writer thread).
 */
struct store_emit {
	const char *tenant;
	const char *owner;  /* projection id */
	bool        reset;
	const store_append *appends;
	size_t      n_appends;
	const store_kv *states;
	size_t      n_states;
	const void *checkpoint; /* NULL: unchanged */
	size_t      checkpoint_len;
	store_emit_done_fn done;
	void       *arg;

	/* results, valid in done() */
	int      rc;             /* SL_OK, SL_EOWNED, SL_EFULL, SL_ESTORAGE... */
	uint64_t first_position; /* of appends[0] */
	char     message[160];

	store_emit *next; /* internal */
	/* appended for leases: the epoch of the lease the batch was built
	 * under (store_lease_get). On a shared log (store_leased) the batch
	 * is refused with SL_EOWNED unless this node still holds that lease
	 * in the log of record, checked in the transaction that writes it.
	 * Ignored on a log that is not shared. */
	uint64_t lease;
};

/** Queue a batch for the writer; done() runs exactly once. SL_OK,
 * SL_EINVAL, SL_ECLOSED. */
int store_submit_emit(store *s, store_emit *e);
/** Submit and wait. @return e->rc. */
int store_emit_wait(store *s, store_emit *e);

/** Called with a copy-free view of a record; return nonzero to stop. */
typedef int (*store_kv_fn)(void *arg, const void *key, size_t key_len,
    const void *val, size_t val_len);
/**
 * The owner's checkpoint for tenant: fn called once (key empty) if there
 * is one. @return SL_OK, SL_ENOTFOUND, SL_ESTORAGE, or fn's nonzero value.
 */
int store_get_checkpoint(store *s, const char *tenant, const char *owner,
    store_kv_fn fn, void *arg);
/** One state: fn called once. SL_OK, SL_ENOTFOUND, SL_ESTORAGE, or fn's
 * nonzero value. */
int store_get_pstate(store *s, const char *tenant, const char *owner,
    const void *key, size_t key_len, store_kv_fn fn, void *arg);
/** Every state of the owner in key order, from key `after` (exclusive;
 * NULL: from the first). @return SL_OK, fn's nonzero value, SL_ESTORAGE. */
int store_scan_pstates(store *s, const char *tenant, const char *owner,
    const void *after, size_t after_len, store_kv_fn fn, void *arg);
/** The streams owner wrote for tenant (key = stream name). */
int store_scan_owned(store *s, const char *tenant, const char *owner,
    store_kv_fn fn, void *arg);
/**
 * Resolve a link's content "N@stream" (a msgpack str) in tenant: fn is
 * called with the target event (as store_scan's callback). Strict: N is
 * decimal digits without sign or leading zeros, stream a valid id.
 * @return SL_OK (or fn's nonzero value); SL_ENOTFOUND (no such event:
 * deleted, or never written); SL_EINVAL (not a link's content).
 */
int store_resolve_link(store *s, const char *tenant, const char *link,
    size_t link_len, store_scan_fn fn, void *arg);

/* ---- leases: one writer among nodes ---- */

/**
 * Whether the log of record is shared by several nodes (store_pg.h):
 * what writes to it from inside the runtime (an emitting or system
 * projection, one per owner and tenant) then runs only on the node that
 * holds its lease.
 */
bool store_leased(store *s);
/**
 * Ask for the lease of owner (a projection id) in tenant; idempotent.
 * The backend takes it when it is free (or its holder stopped renewing
 * it), loads the owner's checkpoint and states from the log of record
 * into this env, and renews it until this node stops. Nothing on a log
 * that is not shared. SL_OK, SL_ENOMEM, SL_EINVAL.
 */
int store_lease_want(store *s, const char *tenant, const char *owner);
/**
 * The epoch of the lease of owner in tenant when this node holds it
 * (its checkpoint and states loaded), else 0; a new epoch means a new
 * load: what was folded before it is stale. holder (hlen bytes, may be
 * NULL) gets the node that holds it, as last seen ("" when none is
 * known). A log that is not shared: 1, holder "".
 */
uint64_t store_lease_get(store *s, const char *tenant, const char *owner,
    char *holder, size_t hlen);

/** Number of write transactions so far (group commit statistics). */
uint64_t store_txn_count(store *s);

/** The log's counters since it was opened (the metrics endpoint). */
typedef struct store_stats {
	uint64_t commits_ok;      /* client commits and deletions acknowledged */
	uint64_t commits_refused; /* refused (revision, ownership, storage) */
	uint64_t events_appended; /* events written: commits' and emitted */
	uint64_t txns;            /* write transactions committed */
	hist     commit_latency;  /* ns from store_submit to its ack */
	hist     group_events;    /* events per write transaction */
	uint64_t map_size;        /* the environment's map, bytes */
	uint64_t map_used;        /* of it, pages in use, bytes */
} store_stats;
void store_stats_get(store *s, store_stats *out);

#endif
