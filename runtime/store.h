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
 */
#ifndef SL_STORE_H
#define SL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"

typedef struct store store;

/** Expected revision: any, no stream yet, or the revision of the last event. */
#define STORE_EXPECT_ANY UINT64_MAX
#define STORE_EXPECT_NO_STREAM (UINT64_MAX - 1)

typedef struct store_commit store_commit;
/** Called on the writer thread once the commit is durable or refused. */
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
 * writer thread, after the transaction holding it is durable (or on refusal).
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
 * Scan one stream of one tenant from revision from_rev, at most max events.
 * @return as store_scan; SL_OK with no calls for an unknown stream.
 */
int store_scan_stream(store *s, const char *tenant, const char *stream,
    uint64_t from_rev, size_t max, store_scan_fn fn, void *arg);
/**
 * The next revision of a stream (0 if it has no events).
 */
int store_stream_next_revision(store *s, const char *tenant,
    const char *stream, uint64_t *out);

/** Number of write transactions so far (group commit statistics). */
uint64_t store_txn_count(store *s);

#endif
