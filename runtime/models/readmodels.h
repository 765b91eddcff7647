/*
 * Read model stores: one LMDB environment per tenant holding, for every
 * projection, its read models (key -> msgpack state) and the checkpoints of
 * all the tenant's processors (db "checkpoints"), so that a state change and
 * its checkpoint commit in one transaction.
 *
 * Generations (rebuild without downtime): a projection's read models live
 * in one of two dbs, "rm:<id>:0" and "rm:<id>:1"; generation g uses db
 * "rm:<id>:<g & 1>". The record "active:<id>" in the checkpoints db names
 * the generation rm_get / rm_scan read. A rebuild fills the other db while
 * readers keep reading the active one, then one transaction points the
 * record at the new generation and empties the old db.
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
/** The environment's map size and the bytes of it in use (metrics). */
void rm_map_use(rmstore *rm, uint64_t *size, uint64_t *used);
MDB_env *rm_env(rmstore *rm);
/** Make the last committed transaction durable now (with sync, the env
 * syncs a transaction's meta page only with the next one): for what an
 * operator is told is stored. SL_OK or SL_ESTORAGE. */
int rm_sync(rmstore *rm);

/**
 * Open (create if asked) the read model db of a projection: the db of its
 * active generation (with create and none yet, generation 1 is created and
 * made active). txn may be NULL: the active record is then read, and the
 * db created, in private transactions (never do that while holding a write
 * txn on this env). With a txn, a db created in it is not cached (LMDB
 * handles opened inside a caller's txn cannot be shared safely). Without
 * create: SL_ENOTFOUND when the projection has no active generation.
 */
int rm_dbi(rmstore *rm, MDB_txn *txn, const char *projection_id, bool create,
    MDB_dbi *out);
/** Empty a projection's active read models in txn. */
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

typedef int (*rm_scan_fn)(
    void *arg, const char *key, size_t key_len, const void *data, size_t len);
/**
 * Visit read models in key order, starting after `after` (NULL: from the
 * first), at most max (0: no limit); *more is set when more remain. A
 * nonzero return of fn stops the scan and is returned. A projection that
 * never ran has no read models: SL_OK with no calls.
 */
int rm_scan(rmstore *rm, const char *projection_id, const char *after,
    size_t after_len, size_t max, rm_scan_fn fn, void *arg, bool *more);

/* ---- generations, for processors ---- */

/** The active generation of a projection. SL_OK, SL_ENOTFOUND (none). */
int rm_active_read(
    rmstore *rm, MDB_txn *txn, const char *projection_id, uint64_t *gen);
/** Make gen the one readers see, when txn commits. */
int rm_active_write(
    rmstore *rm, MDB_txn *txn, const char *projection_id, uint64_t gen);
/**
 * The handle of generation gen's db. With create, a missing db is created
 * in a private write transaction committed before return: never call it so
 * while this thread holds a write txn on this env. Without create:
 * SL_ENOTFOUND if the db does not exist.
 */
int rm_gen_dbi(rmstore *rm, const char *projection_id, uint64_t gen,
    bool create, MDB_dbi *out);
/** Empty generation gen's db in txn (a db that does not exist: SL_OK). */
int rm_gen_clear(
    rmstore *rm, MDB_txn *txn, const char *projection_id, uint64_t gen);

/**
 * Small records of n u64 values in the checkpoints db (a rebuild's
 * progress, for one). read: SL_ENOTFOUND when absent, SL_ESTORAGE when the
 * stored size differs; del: SL_OK also when absent.
 */
int rm_record_read(
    rmstore *rm, MDB_txn *txn, const char *key, uint64_t *v, size_t n);
int rm_record_write(
    rmstore *rm, MDB_txn *txn, const char *key, const uint64_t *v, size_t n);
int rm_record_del(rmstore *rm, MDB_txn *txn, const char *key);

/**
 * Records of any bytes in the checkpoints db, under keys of their own
 * prefix (failing units, for one: "fail:..."), so they never meet the u64
 * records above. blob_scan visits every record whose key starts with
 * prefix, in key order; a nonzero return of fn stops it and is returned.
 */
int rm_blob_write(rmstore *rm, MDB_txn *txn, const char *key, size_t klen,
    const void *data, size_t len);
int rm_blob_del(rmstore *rm, MDB_txn *txn, const char *key, size_t klen);
/** Copy the record at key (at most cap bytes) into buf, its copied length
 * into *len. @return SL_OK, SL_ENOTFOUND, SL_ESTORAGE. */
int rm_blob_read(rmstore *rm, MDB_txn *txn, const char *key, size_t klen,
    void *buf, size_t cap, size_t *len);
typedef int (*rm_blob_fn)(void *arg, const char *key, size_t klen,
    const void *data, size_t len);
int rm_blob_scan(rmstore *rm, MDB_txn *txn, const char *prefix,
    rm_blob_fn fn, void *arg);

/* ---- filter streams ---- */

/*
 * A filter's stream is an index of log positions, kept like read models in
 * generations: the processor of filter <id> writes through the name
 * "f:<id>" (dbs "rm:f:<id>:<g & 1>", active record "active:f:<id>"). In a
 * generation's db:
 *   'A' + be64 stream position            -> be64 log position + be64
 *                                             partition position +
 *                                             partition
 *   'P' + partition + '\0' + be64 position -> be64 log position +
 *                                             be64 stream position
 * Stream positions count from 0 without gaps, whole and per partition, in
 * the order the processor appended them. Partitions are 1..255 bytes with
 * no NUL; an unpartitioned filter appends with partition NULL (whole only).
 */

/** The stream name a filter's processor writes through ("f:<id>"). */
#define RM_FILTER_PREFIX "f:"

/** The record (rm_record_*) of the served generation's filter kind: the
 * prefix, then the processor's name (RM_FILTER_PREFIX "<id>"). */
#define RM_SHAPE_PREFIX "shape:"

/**
 * The kind (sl_filter_kind) of filter filter_id's served generation, which
 * differs from the loaded definition's while a filter that changed kind
 * rebuilds. @return SL_OK; SL_ENOTFOUND when no generation recorded one
 * (written before shapes were recorded, or never); SL_ESTORAGE.
 */
int rm_served_kind(rmstore *rm, const char *filter_id, uint64_t *kind);

/**
 * Append log_pos to the stream in generation db dbi, in txn: to the whole
 * stream and, when partition is not NULL, to that partition.
 * @return SL_OK with the whole stream position in *stream_pos (may be NULL);
 * SL_EINVAL for a bad partition; SL_ESTORAGE / SL_EFULL.
 */
int rm_stream_append(rmstore *rm, MDB_txn *txn, MDB_dbi dbi,
    const char *partition, size_t plen, uint64_t log_pos,
    uint64_t *stream_pos);

/* other_pos: reading the whole stream, the entry's position in its
 * partition (its whole position again for an unpartitioned filter);
 * reading a partition, its position in the whole stream. */
typedef int (*rm_stream_fn)(void *arg, uint64_t stream_pos, uint64_t log_pos,
    uint64_t other_pos, const char *partition, size_t plen);
/**
 * Read the served generation of filter filter_id's stream (the whole
 * stream when partition is NULL, else that partition) from stream position
 * from, at most max entries (0: no limit), in stream order. *next gets the
 * position after the last entry visited (from when none); *more is set when
 * entries remain. A nonzero return of fn stops the read and is returned.
 * *generation (may be NULL) gets the generation read (0: none yet): a
 * rebuild serves a new generation whose whole stream may order the
 * partitions' entries differently (each partition keeps log order), so a
 * reader paging through the whole stream starts over when it changes.
 * @return SL_OK (also for a filter or partition with no entries yet),
 * SL_EINVAL (a partition id no partition can have), SL_ESTORAGE.
 */
int rm_stream_read(rmstore *rm, const char *filter_id, const char *partition,
    size_t plen, uint64_t from, size_t max, rm_stream_fn fn, void *arg,
    uint64_t *next, bool *more, uint64_t *generation);

/**
 * Walk the whole stream of filter filter_id's generation gen (the served
 * one, or one being rebuilt) in the caller's txn, as rm_stream_read reads
 * the served one: from stream position from, at most max entries (0: no
 * limit), *next (may be NULL) getting the position after the last entry
 * visited. A generation never written: SL_OK with no calls.
 * @return SL_OK, fn's nonzero value, SL_EINVAL, SL_ESTORAGE.
 */
int rm_stream_walk(rmstore *rm, MDB_txn *txn, const char *filter_id,
    uint64_t gen, uint64_t from, size_t max, rm_stream_fn fn, void *arg,
    uint64_t *next);

/**
 * The whole stream's next position (its length) in the served generation,
 * and that generation (0 and 0 when the filter has written nothing).
 */
int rm_stream_head(rmstore *rm, const char *filter_id, uint64_t *next,
    uint64_t *generation);

/**
 * Delete the db "rm:<id>" of the layout before generations, if there is
 * one (no reader resolves that name). Private write txn, as rm_gen_dbi.
 */
int rm_legacy_delete(rmstore *rm, const char *projection_id);

#endif
