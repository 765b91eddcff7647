/*
 * The failing units of one processor generation: a read model key of a
 * projection, a source stream of a partitioned filter, or "" for an
 * unpartitioned filter. Each names the first event of the unit not yet
 * handled (the one that failed), the attempts on it, whether and when to
 * try again, and why it failed.
 *
 * Kept twice: in memory, sorted by unit for lookups per event, and as
 * records in the tenant's checkpoints db, written in the same transaction
 * as the states and checkpoint of the batch that found the failure, so a
 * restart knows exactly which events still wait:
 *   "fail:<name>:<gen>:<unit>" -> be64 position, be64 next try (ns, wall),
 *                                 be32 attempts, u8 retry, be16 unit length,
 *                                 unit, reason
 * A unit longer than FAILSET_KEY_UNIT bytes is keyed by its first bytes and
 * a hash; the record holds it whole.
 */
#ifndef SL_FAILSET_H
#define SL_FAILSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "readmodels.h"

#define FAILSET_REASON   256
#define FAILSET_UNIT_MAX 4096 /* longest unit id (a stream id, a key) */

typedef struct fail_unit {
	char    *unit; /* NUL-terminated copy (may contain a leading \x01) */
	size_t   ulen;
	uint64_t pos;         /* the first event of the unit not handled */
	uint32_t attempts;    /* failed attempts on the event at pos */
	bool     retry;       /* false: waits for an operator */
	int64_t  next_try_ns; /* wall clock */
	char     reason[FAILSET_REASON];
} fail_unit;

typedef struct failset {
	fail_unit *v; /* sorted by (ulen, unit bytes) */
	size_t     n, cap;
	uint64_t   version; /* bumped by every change */
	char       prefix[128]; /* "fail:<name>:<gen>:" */
	/* never written as records: its owner stores the whole set (an
	 * emitting projection's, in its checkpoint record) */
	bool       memory_only;
	/* units changed in memory only (txn NULL), for failset_flush */
	char     **dirty;
	size_t    *dirty_len;
	size_t     n_dirty, dirty_cap;
} failset;

/** An empty set for generation gen of the processor writing as name. */
void failset_init(failset *fs, const char *name, uint64_t gen);
/** An empty set kept in memory only (its owner stores it whole): put and
 * del are called with txn NULL and remember nothing for failset_flush. */
void failset_init_memory(failset *fs);
void failset_free(failset *fs);

/** Make dst a copy of src (units copied); dst's old contents freed.
 * SL_OK or SL_ENOMEM (dst then empty). */
int failset_copy(failset *dst, const failset *src);

/** The unit, or NULL. */
fail_unit *failset_find(failset *fs, const char *unit, size_t ulen);
/** Replace the set with the records in txn. */
int failset_load(failset *fs, rmstore *rm, MDB_txn *txn);
/** Insert or update u (copied) in memory and as a record in txn; with txn
 * NULL in memory only, the record written by the next failset_flush. */
int failset_put(failset *fs, rmstore *rm, MDB_txn *txn, const fail_unit *u);
/** Remove the unit from memory and its record in txn (absent: SL_OK); with
 * txn NULL in memory only, the record deleted by the next failset_flush. */
int failset_del(
    failset *fs, rmstore *rm, MDB_txn *txn, const char *unit, size_t ulen);
/** Write (or delete) the records of the units changed in memory only, in
 * txn, and forget them. On SL_OK they are stored once txn commits; when it
 * does not, reload the set (failset_load), which forgets them too. */
int failset_flush(failset *fs, rmstore *rm, MDB_txn *txn);
/** Delete every record of generation gen of name in txn. */
int failset_clear_gen(
    rmstore *rm, MDB_txn *txn, const char *name, uint64_t gen);

/**
 * The unit to retry next: the one with retry set whose next try is earliest
 * (the smallest position among equals), or NULL. *due: whether that try is
 * at or before now.
 */
fail_unit *failset_next(failset *fs, int64_t now, bool *due);

#endif
