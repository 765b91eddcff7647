/*
 * Read model stores: one LMDB environment per tenant holding, for every
 * projection, its read models (db "rm:<projection id>", key -> msgpack
 * state) and the checkpoints of all the tenant's processors (db
 * "checkpoints"), so that a state change and its checkpoint commit in one
 * transaction.
 */
#ifndef SL_READMODELS_H
#define SL_READMODELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

typedef struct rmstore rmstore;

typedef struct rm_checkpoint {
	uint64_t position; /* next log position to handle */
	uint64_t def_hash; /* definition the read models were built with */
} rm_checkpoint;

int rm_open(const char *path, size_t map_size, bool sync, rmstore **out);
void rm_close(rmstore *rm);
MDB_env *rm_env(rmstore *rm);

/**
 * Open (create if asked) the read model db of a projection in txn.
 * txn may be NULL: the db is then opened/created in a private write txn
 * committed before return (never do that while holding a write txn on this
 * env); this is how a processor creates its db, because LMDB handles opened
 * inside a caller's txn cannot be shared safely. Without create, only dbs
 * that exist (opened at rm_open or created since) are found: SL_ENOTFOUND.
 */
int rm_dbi(rmstore *rm, MDB_txn *txn, const char *projection_id, bool create,
    MDB_dbi *out);
/** Empty a projection's read models in txn (for a rebuild). */
int rm_drop(rmstore *rm, MDB_txn *txn, const char *projection_id);

int rm_checkpoint_read(rmstore *rm, MDB_txn *txn, const char *processor_id,
    rm_checkpoint *out); /* SL_ENOTFOUND when none */
int rm_checkpoint_write(rmstore *rm, MDB_txn *txn, const char *processor_id,
    const rm_checkpoint *cp);

/**
 * Copy one read model state (msgpack) into a malloc'ed buffer.
 * @return SL_OK, SL_ENOTFOUND (no such key or projection never ran),
 * SL_ESTORAGE.
 */
int rm_get(rmstore *rm, const char *projection_id, const char *key,
    size_t key_len, char **data, size_t *len);

typedef int (*rm_scan_fn)(void *arg, const char *key, size_t key_len,
    const void *data, size_t len);
/**
 * Visit read models in key order, starting after `after` (NULL: from the
 * first), at most max (0: no limit); *more is set when more remain. A
 * nonzero return of fn stops the scan and is returned. A projection that
 * never ran has no read models: SL_OK with no calls.
 */
int rm_scan(rmstore *rm, const char *projection_id, const char *after,
    size_t after_len, size_t max, rm_scan_fn fn, void *arg, bool *more);

#endif
