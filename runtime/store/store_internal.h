/*
 * The event log's insides, shared by store.c (the log, the writer, scans)
 * and store_emit.c (ownership, emitting projections' batches and records).
 * Not for other parts of the runtime.
 */
#ifndef SL_STORE_INTERNAL_H
#define SL_STORE_INTERNAL_H

#include <lmdb.h>
#include <pthread.h>

#include "store.h"

/* Most commits taken into one write transaction: bounds the transaction's
 * dirty pages and the latency of the first commit in a long queue. */
#define STORE_GROUP_MAX        4096
#define STORE_MAX_READERS      512
#define STORE_MAX_DBS          8
#define STORE_DEFAULT_MAP_SIZE ((size_t) 1 << 30)
/* Longest "streams" key: tenant \0 stream \0 rev(be64). */
#define STORE_KEY_MAX (2 * SL_MAX_ID_LEN + 2 + 8)

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
	uint64_t      next_pos;  /* published position, under mu */
	uint64_t      txn_count; /* committed write txns, under mu */
	uint64_t      wake_gen;  /* bumped by store_wake_all */

	pthread_t       writer;
	msgpack_sbuffer enc; /* writer only: encoding buffer */

	/* Stream claims of emitting projections (store_claim), under
	 * claims_mu: read by the writer thread and store_check_owner. */
	pthread_mutex_t claims_mu;
	store_claim_t  *claims;
	size_t          n_claims;
	size_t          cap_claims;
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
/* Set e's rc and message; returns code. */
int  store_emit_fail(store_emit *e, int code, const char *fmt, ...)
     __attribute__((format(printf, 3, 4)));

#endif
