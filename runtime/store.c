/*
 * The event log (see store.h): an LMDB environment written by one writer
 * thread that group-commits every queued commit in one write transaction,
 * and read by scans in short read transactions on the callers' threads.
 */
#include "store.h"

#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sluice/errors.h>

#include "log.h"

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

static void
store_put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t) v;
		v >>= 8;
	}
}

static uint64_t
store_get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static void
store_claim_free(store_claim_t *c)
{
	free(c->pattern);
	free(c->owner);
	free(c->label);
}

/* LMDB result to sl_err: a full map is its own code so that an operator
 * knows to raise map_size; other engine failures are SL_ESTORAGE. */
static int
store_map_err(int mrc)
{
	switch (mrc) {
	case MDB_SUCCESS:
		return SL_OK;
	case MDB_MAP_FULL:
		return SL_EFULL;
	case ENOMEM:
		return SL_ENOMEM;
	default:
		return SL_ESTORAGE;
	}
}

static int store_fail(store_commit *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
store_fail(store_commit *c, int code, const char *fmt, ...)
{
	va_list ap;

	c->rc = code;
	va_start(ap, fmt);
	vsnprintf(c->message, sizeof(c->message), fmt, ap);
	va_end(ap);
	return code;
}

/* Build the "heads" key (tenant \0 stream); returns its length. The
 * "streams" keys are this plus \0 and the revision. */
static size_t
store_head_key(uint8_t *buf, const char *tenant, size_t tenant_len,
    const char *stream, size_t stream_len)
{
	memcpy(buf, tenant, tenant_len);
	buf[tenant_len] = 0;
	memcpy(buf + tenant_len + 1, stream, stream_len);
	return tenant_len + 1 + stream_len;
}

/* An id usable in the index keys: 1..SL_MAX_ID_LEN bytes, no NUL (the
 * separator). */
static bool
store_id_ok(const char *id, size_t len)
{
	return id != NULL && len > 0 && len <= SL_MAX_ID_LEN
	    && memchr(id, '\0', len) == NULL;
}

static int store_owner_check_txn(store *s, MDB_txn *txn, const char *tenant,
    size_t tenant_len, const char *stream, size_t stream_len,
    const char *writer, char *err, size_t errlen);

/*
 * Write one commit inside the group transaction `parent`, in a nested
 * transaction of its own. Why nested: a commit that fails half way (map
 * full after some events were put) must leave no trace while the commits
 * before it in the group stay written; aborting the child restores the
 * parent exactly, which is simpler and cheaper than aborting and replaying
 * the whole group. The child also sees the earlier commits of the group,
 * so their new heads count in this commit's revision check.
 * On success advances *pos and fills the commit's results.
 */
static void
store_write_one(store *s, MDB_txn *parent, store_commit *c, uint64_t *pos)
{
	uint8_t  key[STORE_KEY_MAX];
	uint8_t  pkey[8], pval[8], hval[8];
	size_t   hlen;
	MDB_txn *txn = NULL;
	MDB_val  k, v;
	uint64_t next_rev = 0;
	int      mrc, rc;

	if (!store_id_ok(c->tenant, c->tenant_len)
	    || !store_id_ok(c->stream, c->stream_len)) {
		store_fail(c, SL_EINVAL,
		    "tenant and stream ids must be 1..%d bytes without NUL",
		    SL_MAX_ID_LEN);
		return;
	}
	if (c->tenant_len + c->stream_len + 10 > s->max_key) {
		store_fail(c, SL_EINVAL,
		    "tenant and stream ids take %zu bytes together (limit "
		    "%zu)",
		    c->tenant_len + c->stream_len, s->max_key - 10);
		return;
	}
	hlen = store_head_key(
	    key, c->tenant, c->tenant_len, c->stream, c->stream_len);

	mrc = mdb_txn_begin(s->env, parent, 0, &txn);
	if (mrc != MDB_SUCCESS) {
		store_fail(c, store_map_err(mrc), "lmdb: begin nested txn: %s",
		    mdb_strerror(mrc));
		return;
	}
	/* A stream a projection owns is written by that projection only. */
	rc = store_owner_check_txn(s, txn, c->tenant, c->tenant_len, c->stream,
	    c->stream_len, c->owner, c->message, sizeof(c->message));
	if (rc != SL_OK) {
		c->rc = rc;
		goto abort;
	}
	k.mv_data = key;
	k.mv_size = hlen;
	mrc       = mdb_get(txn, s->db_heads, &k, &v);
	if (mrc == MDB_SUCCESS && v.mv_size == 8) {
		next_rev = store_get_be64(v.mv_data);
	} else if (mrc != MDB_NOTFOUND) {
		store_fail(c, SL_ESTORAGE, "lmdb: read stream head: %s",
		    mrc == MDB_SUCCESS ? "corrupt value" : mdb_strerror(mrc));
		goto abort;
	}

	/* Expected revision: the revision of the stream's last event. */
	if (c->expected != STORE_EXPECT_ANY
	    && ((c->expected == STORE_EXPECT_NO_STREAM && next_rev != 0)
	        || (c->expected != STORE_EXPECT_NO_STREAM
	            && (next_rev == 0 || c->expected != next_rev - 1)))) {
		c->stream_revision
		    = next_rev == 0 ? STORE_EXPECT_NO_STREAM : next_rev - 1;
		if (next_rev == 0)
			store_fail(c, SL_EREVISION,
			    "stream '%.*s' has no events", (int) c->stream_len,
			    c->stream);
		else
			store_fail(c, SL_EREVISION,
			    "stream '%.*s' is at revision %" PRIu64,
			    (int) c->stream_len, c->stream, next_rev - 1);
		goto abort;
	}

	key[hlen] = 0;
	for (size_t i = 0; i < c->n_events; i++) {
		msgpack_packer pk;

		msgpack_sbuffer_clear(&s->enc);
		msgpack_packer_init(&pk, &s->enc, msgpack_sbuffer_write);
		rc = ev_encode(&pk, c->tenant, c->tenant_len, c->stream,
		    c->stream_len, next_rev + i, &c->events[i]);
		if (rc != SL_OK) {
			store_fail(c, rc, "events[%zu] cannot be encoded", i);
			goto abort;
		}
		store_put_be64(pkey, *pos + i);
		k.mv_data = pkey;
		k.mv_size = 8;
		v.mv_data = s->enc.data;
		v.mv_size = s->enc.size;
		/* Positions only grow, so APPEND: no page splits in the
		 * middle, and a duplicate position fails loudly. */
		mrc = mdb_put(txn, s->db_log, &k, &v, MDB_APPEND);
		if (mrc != MDB_SUCCESS)
			goto lmdb_fail;

		store_put_be64(key + hlen + 1, next_rev + i);
		store_put_be64(pval, *pos + i);
		k.mv_data = key;
		k.mv_size = hlen + 1 + 8;
		v.mv_data = pval;
		v.mv_size = 8;
		mrc       = mdb_put(txn, s->db_streams, &k, &v, 0);
		if (mrc != MDB_SUCCESS)
			goto lmdb_fail;
	}
	store_put_be64(hval, next_rev + c->n_events);
	k.mv_data = key;
	k.mv_size = hlen;
	v.mv_data = hval;
	v.mv_size = 8;
	mrc       = mdb_put(txn, s->db_heads, &k, &v, 0);
	if (mrc != MDB_SUCCESS)
		goto lmdb_fail;
	mrc = mdb_txn_commit(txn); /* into the parent; frees txn */
	txn = NULL;
	if (mrc != MDB_SUCCESS)
		goto lmdb_fail;

	c->rc             = SL_OK;
	c->first_position = *pos;
	c->first_revision = next_rev;
	*pos += c->n_events;
	return;

lmdb_fail:
	store_fail(c, store_map_err(mrc), "lmdb: %s", mdb_strerror(mrc));
abort:
	if (txn != NULL)
		mdb_txn_abort(txn);
}

/* ---- emit batches of emitting projections ---- */

/* Longest owner-scoped key: tenant \0 owner \0 stream (or a state key,
 * bounded by the env's key size, see store_emit_check). */
#define STORE_OKEY_MAX (3 * SL_MAX_ID_LEN + 2 + 8)

static int store_emit_fail(store_emit *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
store_emit_fail(store_emit *e, int code, const char *fmt, ...)
{
	va_list ap;

	e->rc = code;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return code;
}

/* Build tenant \0 owner (then \0 and tail when tail != NULL); returns its
 * length. The caller has checked that it fits STORE_OKEY_MAX. */
static size_t
store_owner_key(uint8_t *buf, const char *tenant, size_t tl, const char *owner,
    size_t ol, const void *tail, size_t tail_len)
{
	size_t n = store_head_key(buf, tenant, tl, owner, ol);

	if (tail == NULL)
		return n;
	buf[n++] = 0;
	if (tail_len > 0)
		memcpy(buf + n, tail, tail_len);
	return n + tail_len;
}

/* Delete every key of dbi that starts with prefix. */
static int
store_del_prefix(MDB_txn *txn, MDB_dbi dbi, const uint8_t *prefix, size_t plen)
{
	MDB_cursor *cur;
	MDB_val     k, v;
	int         mrc;

	if ((mrc = mdb_cursor_open(txn, dbi, &cur)) != MDB_SUCCESS)
		return mrc;
	for (;;) {
		/* Seek again after each delete: the first key at or after
		 * the prefix is the next one to go. */
		k.mv_data = (void *) prefix;
		k.mv_size = plen;
		mrc       = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (mrc != MDB_SUCCESS)
			break;
		if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0) {
			mrc = MDB_NOTFOUND;
			break;
		}
		if ((mrc = mdb_cursor_del(cur, 0)) != MDB_SUCCESS)
			break;
	}
	mdb_cursor_close(cur);
	return mrc == MDB_NOTFOUND ? MDB_SUCCESS : mrc;
}

/* Refuse a batch that cannot be written whatever the log holds. */
static int
store_emit_check(store *s, store_emit *e, size_t tl, size_t ol)
{
	if (!store_id_ok(e->tenant, tl) || !store_id_ok(e->owner, ol))
		return store_emit_fail(e, SL_EINVAL,
		    "tenant and owner ids must be 1..%d bytes without NUL",
		    SL_MAX_ID_LEN);
	if (tl + ol + 2 > s->max_key)
		return store_emit_fail(e, SL_EINVAL,
		    "tenant and owner ids take %zu bytes together (limit "
		    "%zu)",
		    tl + ol, s->max_key - 2);
	for (size_t i = 0; i < e->n_appends; i++) {
		const store_append *a = &e->appends[i];
		size_t sl = a->stream != NULL ? strlen(a->stream) : 0;

		if (!store_id_ok(a->stream, sl))
			return store_emit_fail(e, SL_EINVAL,
			    "appends[%zu]: stream ids must be 1..%d bytes "
			    "without NUL",
			    i, SL_MAX_ID_LEN);
		if (tl + sl + 10 > s->max_key || tl + ol + sl + 2 > s->max_key)
			return store_emit_fail(e, SL_EINVAL,
			    "appends[%zu]: stream '%s' is too long for the "
			    "index keys (limit %zu bytes with tenant and "
			    "owner)",
			    i, a->stream, s->max_key);
	}
	for (size_t i = 0; i < e->n_states; i++) {
		const store_kv *kv = &e->states[i];

		if (kv->key == NULL && kv->key_len > 0)
			return store_emit_fail(
			    e, SL_EINVAL, "states[%zu]: no key", i);
		if (tl + ol + 2 + kv->key_len > s->max_key
		    || tl + ol + 2 + kv->key_len > STORE_OKEY_MAX)
			return store_emit_fail(e, SL_EINVAL,
			    "states[%zu]: key of %zu bytes is too long (limit "
			    "%zu with tenant and owner)",
			    i, kv->key_len, s->max_key - tl - ol - 2);
	}
	return SL_OK;
}

/*
 * Soft-delete every stream owner wrote for tenant (index entries and owner
 * records go, "heads" and the log stay), then its states and checkpoint.
 */
static int
store_emit_reset(store *s, MDB_txn *txn, const char *tenant, size_t tl,
    const char *owner, size_t ol)
{
	uint8_t     prefix[STORE_OKEY_MAX], hkey[STORE_KEY_MAX];
	char        stream[SL_MAX_ID_LEN];
	MDB_cursor *cur;
	MDB_val     k, v;
	size_t      plen, sl, hlen;
	int         mrc;

	plen = store_owner_key(prefix, tenant, tl, owner, ol, "", 0);
	if ((mrc = mdb_cursor_open(txn, s->db_owned, &cur)) != MDB_SUCCESS)
		return mrc;
	for (;;) {
		k.mv_data = prefix;
		k.mv_size = plen;
		mrc       = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (mrc != MDB_SUCCESS)
			break;
		if (k.mv_size <= plen || memcmp(k.mv_data, prefix, plen) != 0
		    || k.mv_size - plen > sizeof(stream)) {
			mrc = MDB_NOTFOUND;
			break;
		}
		sl = k.mv_size - plen;
		memcpy(stream, (const uint8_t *) k.mv_data + plen, sl);
		if ((mrc = mdb_cursor_del(cur, 0)) != MDB_SUCCESS)
			break;
		hlen      = store_head_key(hkey, tenant, tl, stream, sl);
		k.mv_data = hkey;
		k.mv_size = hlen;
		mrc       = mdb_del(txn, s->db_owners, &k, NULL);
		if (mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND)
			break;
		hkey[hlen] = 0;
		mrc = store_del_prefix(txn, s->db_streams, hkey, hlen + 1);
		if (mrc != MDB_SUCCESS)
			break;
	}
	mdb_cursor_close(cur);
	if (mrc != MDB_NOTFOUND)
		return mrc;
	if ((mrc = store_del_prefix(txn, s->db_pstate, prefix, plen)) != 0)
		return mrc;
	k.mv_data = prefix;
	k.mv_size = plen - 1; /* tenant \0 owner */
	mrc       = mdb_del(txn, s->db_pcheck, &k, NULL);
	return mrc == MDB_NOTFOUND ? MDB_SUCCESS : mrc;
}

/* Append one event of a batch to its stream, recording owner as the
 * stream's writer the first time. */
static int
store_emit_append(store *s, MDB_txn *txn, store_emit *e, size_t tl, size_t ol,
    size_t i, uint64_t pos)
{
	const store_append *a = &e->appends[i];
	uint8_t             key[STORE_OKEY_MAX];
	uint8_t             pkey[8], pval[8], hval[8];
	size_t              sl       = strlen(a->stream), hlen;
	uint64_t            next_rev = 0;
	msgpack_packer      pk;
	MDB_val             k, v;
	int                 mrc, rc;

	rc = store_owner_check_txn(s, txn, e->tenant, tl, a->stream, sl,
	    e->owner, e->message, sizeof(e->message));
	if (rc != SL_OK) {
		e->rc = rc;
		return rc;
	}
	hlen      = store_head_key(key, e->tenant, tl, a->stream, sl);
	k.mv_data = key;
	k.mv_size = hlen;
	mrc       = mdb_get(txn, s->db_heads, &k, &v);
	if (mrc == MDB_SUCCESS && v.mv_size == 8)
		next_rev = store_get_be64(v.mv_data);
	else if (mrc != MDB_NOTFOUND)
		return store_emit_fail(e, SL_ESTORAGE,
		    "lmdb: read stream head: %s",
		    mrc == MDB_SUCCESS ? "corrupt value" : mdb_strerror(mrc));

	msgpack_sbuffer_clear(&s->enc);
	msgpack_packer_init(&pk, &s->enc, msgpack_sbuffer_write);
	rc = ev_encode(&pk, e->tenant, tl, a->stream, sl, next_rev, &a->ev);
	if (rc != SL_OK)
		return store_emit_fail(e, rc,
		    "appends[%zu] cannot be encoded (content must be a map, "
		    "or a str for a link)",
		    i);
	if (s->enc.size > SL_MAX_EVENT_BYTES + 4 * SL_MAX_ID_LEN + 64)
		return store_emit_fail(e, SL_ETOOBIG,
		    "appends[%zu] takes %zu bytes (limit %u)", i, s->enc.size,
		    SL_MAX_EVENT_BYTES);
	store_put_be64(pkey, pos);
	k.mv_data = pkey;
	k.mv_size = 8;
	v.mv_data = s->enc.data;
	v.mv_size = s->enc.size;
	if ((mrc = mdb_put(txn, s->db_log, &k, &v, MDB_APPEND)) != 0)
		goto lmdb_fail;

	key[hlen] = 0;
	store_put_be64(key + hlen + 1, next_rev);
	store_put_be64(pval, pos);
	k.mv_data = key;
	k.mv_size = hlen + 1 + 8;
	v.mv_data = pval;
	v.mv_size = 8;
	if ((mrc = mdb_put(txn, s->db_streams, &k, &v, 0)) != 0)
		goto lmdb_fail;
	store_put_be64(hval, next_rev + 1);
	k.mv_size = hlen;
	v.mv_data = hval;
	if ((mrc = mdb_put(txn, s->db_heads, &k, &v, 0)) != 0)
		goto lmdb_fail;

	/* Owner records: the check above passed, so an existing record
	 * names this owner already. */
	v.mv_data = (void *) e->owner;
	v.mv_size = ol;
	mrc       = mdb_put(txn, s->db_owners, &k, &v, MDB_NOOVERWRITE);
	if (mrc == MDB_KEYEXIST)
		return SL_OK;
	if (mrc != MDB_SUCCESS)
		goto lmdb_fail;
	k.mv_size
	    = store_owner_key(key, e->tenant, tl, e->owner, ol, a->stream, sl);
	v.mv_data = (void *) "";
	v.mv_size = 0;
	if ((mrc = mdb_put(txn, s->db_owned, &k, &v, 0)) != 0)
		goto lmdb_fail;
	return SL_OK;

lmdb_fail:
	return store_emit_fail(e, store_map_err(mrc), "lmdb: appends[%zu]: %s",
	    i, mdb_strerror(mrc));
}

/*
 * Write one emit batch inside the group transaction parent, in a nested
 * transaction of its own (all or nothing, as store_write_one): reset,
 * appends, states, checkpoint. On success advances *pos.
 */
static void
store_write_emit(store *s, MDB_txn *parent, store_emit *e, uint64_t *pos)
{
	uint8_t  key[STORE_OKEY_MAX];
	size_t   tl  = e->tenant != NULL ? strlen(e->tenant) : 0;
	size_t   ol  = e->owner != NULL ? strlen(e->owner) : 0;
	MDB_txn *txn = NULL;
	MDB_val  k, v;
	int      mrc;

	e->rc         = SL_OK;
	e->message[0] = '\0';
	if (store_emit_check(s, e, tl, ol) != SL_OK)
		return;
	mrc = mdb_txn_begin(s->env, parent, 0, &txn);
	if (mrc != MDB_SUCCESS) {
		store_emit_fail(e, store_map_err(mrc),
		    "lmdb: begin nested txn: %s", mdb_strerror(mrc));
		return;
	}
	if (e->reset
	    && (mrc = store_emit_reset(s, txn, e->tenant, tl, e->owner, ol))
	        != MDB_SUCCESS)
		goto lmdb_fail;
	for (size_t i = 0; i < e->n_appends; i++)
		if (store_emit_append(s, txn, e, tl, ol, i, *pos + i) != SL_OK)
			goto abort;
	for (size_t i = 0; i < e->n_states; i++) {
		const store_kv *kv = &e->states[i];

		k.mv_data = key;
		k.mv_size = store_owner_key(key, e->tenant, tl, e->owner, ol,
		    kv->key_len > 0 ? kv->key : "", kv->key_len);
		if (kv->val == NULL) {
			mrc = mdb_del(txn, s->db_pstate, &k, NULL);
			if (mrc == MDB_NOTFOUND)
				mrc = MDB_SUCCESS;
		} else {
			v.mv_data = (void *) kv->val;
			v.mv_size = kv->val_len;
			mrc       = mdb_put(txn, s->db_pstate, &k, &v, 0);
		}
		if (mrc != MDB_SUCCESS)
			goto lmdb_fail;
	}
	if (e->checkpoint != NULL) {
		k.mv_data = key;
		k.mv_size = store_owner_key(
		    key, e->tenant, tl, e->owner, ol, NULL, 0);
		v.mv_data = (void *) e->checkpoint;
		v.mv_size = e->checkpoint_len;
		if ((mrc = mdb_put(txn, s->db_pcheck, &k, &v, 0)) != 0)
			goto lmdb_fail;
	}
	mrc = mdb_txn_commit(txn); /* into the parent; frees txn */
	txn = NULL;
	if (mrc != MDB_SUCCESS)
		goto lmdb_fail;
	e->rc             = SL_OK;
	e->first_position = *pos;
	*pos += e->n_appends;
	return;

lmdb_fail:
	store_emit_fail(e, store_map_err(mrc), "lmdb: %s", mdb_strerror(mrc));
abort:
	if (txn != NULL)
		mdb_txn_abort(txn);
}

/* Write one group and acknowledge it: commits and emit batches, each
 * kind linked by ->next, written in arrival order (see q_seq). */
static void
store_write_group(store *s, store_commit *group, store_emit *egroup)
{
	MDB_txn      *txn;
	store_commit *c, *next;
	store_emit   *e, *enext;
	uint64_t      pos, start;
	size_t        n_ok = 0;
	int           mrc;

	pthread_mutex_lock(&s->mu);
	start = s->next_pos;
	pthread_mutex_unlock(&s->mu);
	pos = start;

	mrc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (mrc != MDB_SUCCESS) {
		log_error("store", "begin write txn: %s", mdb_strerror(mrc));
		for (c = group; c != NULL; c = c->next)
			store_fail(c, store_map_err(mrc), "lmdb: begin: %s",
			    mdb_strerror(mrc));
		for (e = egroup; e != NULL; e = e->next)
			store_emit_fail(e, store_map_err(mrc),
			    "lmdb: begin: %s", mdb_strerror(mrc));
		txn = NULL;
	}
	c = group;
	e = egroup;
	while (txn != NULL && (c != NULL || e != NULL)) {
		if (c != NULL
		    && (e == NULL || c->first_position < e->first_position)) {
			c->first_position = 0;
			store_write_one(s, txn, c, &pos);
			if (c->rc == SL_OK)
				n_ok++;
			c = c->next;
		} else {
			e->first_position = 0;
			store_write_emit(s, txn, e, &pos);
			if (e->rc == SL_OK)
				n_ok++;
			e = e->next;
		}
	}
	if (txn != NULL && n_ok == 0) {
		mdb_txn_abort(txn); /* every commit refused: nothing to sync */
	} else if (txn != NULL) {
		/* Durable here unless the env was opened with MDB_NOSYNC. */
		mrc = mdb_txn_commit(txn);
		if (mrc != MDB_SUCCESS) {
			log_error("store", "commit of %zu commits failed: %s",
			    n_ok, mdb_strerror(mrc));
			for (c = group; c != NULL; c = c->next)
				if (c->rc == SL_OK)
					store_fail(c, store_map_err(mrc),
					    "lmdb: commit: %s",
					    mdb_strerror(mrc));
			for (e = egroup; e != NULL; e = e->next)
				if (e->rc == SL_OK)
					store_emit_fail(e, store_map_err(mrc),
					    "lmdb: commit: %s",
					    mdb_strerror(mrc));
			pos = start;
		} else {
			pthread_mutex_lock(&s->mu);
			s->next_pos = pos;
			s->txn_count++;
			pthread_cond_broadcast(&s->head_cv);
			pthread_mutex_unlock(&s->mu);
		}
	}

	/* Acknowledge only now that the head is published: a client that
	 * reads right after its ack sees its events. done() may free c. */
	for (c = group; c != NULL; c = next) {
		next    = c->next;
		c->next = NULL;
		if (c->done != NULL)
			c->done(c, c->arg);
	}
	for (e = egroup; e != NULL; e = enext) {
		enext   = e->next;
		e->next = NULL;
		if (e->done != NULL)
			e->done(e, e->arg);
	}
}

static void *
store_writer_main(void *arg)
{
	store *s = arg;

	for (;;) {
		store_commit *group = NULL, **ct = &group;
		store_emit   *egroup = NULL, **et = &egroup;
		size_t        n;

		pthread_mutex_lock(&s->mu);
		while (s->q_head == NULL && s->qe_head == NULL && !s->closing)
			pthread_cond_wait(&s->work_cv, &s->mu);
		if (s->q_head == NULL && s->qe_head == NULL) {
			pthread_mutex_unlock(&s->mu); /* closing and drained */
			break;
		}
		/* The oldest STORE_GROUP_MAX submissions of both kinds. */
		for (n = 0; n < STORE_GROUP_MAX; n++) {
			if (s->q_head != NULL
			    && (s->qe_head == NULL
			        || s->q_head->first_position
			            < s->qe_head->first_position)) {
				*ct       = s->q_head;
				s->q_head = s->q_head->next;
				ct        = &(*ct)->next;
			} else if (s->qe_head != NULL) {
				*et        = s->qe_head;
				s->qe_head = s->qe_head->next;
				et         = &(*et)->next;
			} else {
				break;
			}
		}
		*ct = NULL;
		*et = NULL;
		if (s->q_head == NULL)
			s->q_tail = NULL;
		if (s->qe_head == NULL)
			s->qe_tail = NULL;
		pthread_mutex_unlock(&s->mu);

		store_write_group(s, group, egroup);
	}
	return NULL;
}

/* Open the databases and find the log's next position. */
static int
store_init_dbs(store *s)
{
	MDB_txn    *txn;
	MDB_cursor *cur;
	MDB_val     k, v;
	int         mrc;

	mrc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (mrc != MDB_SUCCESS)
		goto fail;
	if ((mrc = mdb_dbi_open(txn, "log", MDB_CREATE, &s->db_log)) != 0
	    || (mrc = mdb_dbi_open(txn, "streams", MDB_CREATE, &s->db_streams))
	        != 0
	    || (mrc = mdb_dbi_open(txn, "heads", MDB_CREATE, &s->db_heads))
	        != 0
	    || (mrc = mdb_dbi_open(txn, "owners", MDB_CREATE, &s->db_owners))
	        != 0
	    || (mrc = mdb_dbi_open(txn, "owned", MDB_CREATE, &s->db_owned))
	        != 0
	    || (mrc = mdb_dbi_open(txn, "pstate", MDB_CREATE, &s->db_pstate))
	        != 0
	    || (mrc = mdb_dbi_open(txn, "pcheck", MDB_CREATE, &s->db_pcheck))
	        != 0
	    || (mrc = mdb_cursor_open(txn, s->db_log, &cur)) != 0) {
		mdb_txn_abort(txn);
		goto fail;
	}
	mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	mdb_cursor_close(cur);
	if (mrc == MDB_SUCCESS && k.mv_size == 8) {
		s->next_pos = store_get_be64(k.mv_data) + 1;
	} else if (mrc == MDB_NOTFOUND) {
		s->next_pos = 0;
	} else {
		mdb_txn_abort(txn);
		if (mrc == MDB_SUCCESS) {
			log_error(
			    "store", "corrupt log key (%zu bytes)", k.mv_size);
			return SL_ESTORAGE;
		}
		goto fail;
	}
	mrc = mdb_txn_commit(txn);
	if (mrc == MDB_SUCCESS)
		return SL_OK;
fail:
	log_error("store", "open databases: %s", mdb_strerror(mrc));
	return mrc == ENOMEM ? SL_ENOMEM : SL_ESTORAGE;
}

int
store_open(const char *path, size_t map_size, bool sync, store **out)
{
	store             *s;
	pthread_condattr_t ca;
	unsigned int       flags = MDB_NOTLS;
	int                mrc, rc, dead = 0;

	*out = NULL;
	if (path == NULL)
		return SL_EINVAL;
	if (mkdir(path, 0755) != 0 && errno != EEXIST) {
		log_error("store", "mkdir %s: %s", path, strerror(errno));
		return SL_ESTORAGE;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return SL_ENOMEM;
	msgpack_sbuffer_init(&s->enc);
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->claims_mu, NULL);
	pthread_condattr_init(&ca);
	/* store_wait's timeout must not jump with the wall clock. */
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->head_cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&s->work_cv, NULL);
	pthread_cond_init(&s->done_cv, NULL);

	if (!sync)
		flags |= MDB_NOSYNC;
	if ((mrc = mdb_env_create(&s->env)) != MDB_SUCCESS) {
		s->env = NULL;
		goto lmdb_fail;
	}
	if ((mrc = mdb_env_set_maxdbs(s->env, STORE_MAX_DBS)) != 0
	    || (mrc = mdb_env_set_maxreaders(s->env, STORE_MAX_READERS)) != 0
	    || (mrc = mdb_env_set_mapsize(
	            s->env, map_size != 0 ? map_size : STORE_DEFAULT_MAP_SIZE))
	        != 0
	    || (mrc = mdb_env_open(s->env, path, flags, 0644)) != 0)
		goto lmdb_fail;
	/* Free reader slots left by processes that died holding them. */
	mdb_reader_check(s->env, &dead);
	if (dead > 0)
		log_warn("store", "cleared %d stale reader slots", dead);
	s->max_key = (size_t) mdb_env_get_maxkeysize(s->env);

	if ((rc = store_init_dbs(s)) != SL_OK)
		goto fail;
	if (pthread_create(&s->writer, NULL, store_writer_main, s) != 0) {
		log_error("store", "cannot start the writer thread");
		rc = SL_ENOMEM;
		goto fail;
	}
	log_info("store", "opened %s at position %" PRIu64 "%s", path,
	    s->next_pos, sync ? "" : " (sync off)");
	*out = s;
	return SL_OK;

lmdb_fail:
	log_error("store", "open %s: %s", path, mdb_strerror(mrc));
	rc = mrc == ENOMEM ? SL_ENOMEM : SL_ESTORAGE;
fail:
	if (s->env != NULL)
		mdb_env_close(s->env);
	pthread_cond_destroy(&s->head_cv);
	pthread_cond_destroy(&s->work_cv);
	pthread_cond_destroy(&s->done_cv);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->claims_mu);
	msgpack_sbuffer_destroy(&s->enc);
	free(s);
	return rc;
}

void
store_close(store *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	s->closing = true;
	pthread_cond_broadcast(&s->work_cv);
	pthread_cond_broadcast(&s->head_cv);
	pthread_mutex_unlock(&s->mu);
	/* The writer drains the queue before it exits. */
	pthread_join(s->writer, NULL);

	mdb_env_close(s->env);
	pthread_cond_destroy(&s->head_cv);
	pthread_cond_destroy(&s->work_cv);
	pthread_cond_destroy(&s->done_cv);
	pthread_mutex_destroy(&s->mu);
	for (size_t i = 0; i < s->n_claims; i++)
		store_claim_free(&s->claims[i]);
	free(s->claims);
	pthread_mutex_destroy(&s->claims_mu);
	msgpack_sbuffer_destroy(&s->enc);
	free(s);
}

int
store_submit(store *s, store_commit *c)
{
	if (s == NULL || c == NULL || c->n_events == 0 || c->events == NULL)
		return SL_EINVAL;
	c->rc              = SL_OK;
	c->first_position  = 0;
	c->first_revision  = 0;
	c->stream_revision = 0;
	c->message[0]      = '\0';
	c->next            = NULL;

	pthread_mutex_lock(&s->mu);
	if (s->closing) {
		pthread_mutex_unlock(&s->mu);
		return SL_ECLOSED;
	}
	c->first_position = s->q_seq++; /* arrival order, see q_seq */
	if (s->q_tail != NULL)
		s->q_tail->next = c;
	else
		s->q_head = c;
	s->q_tail = c;
	pthread_cond_signal(&s->work_cv);
	pthread_mutex_unlock(&s->mu);
	return SL_OK;
}

/* store_commit_wait's stand-in done(): runs the caller's own done() (if
 * any), then wakes the waiter through the store's done_cv, which outlives
 * the waiter (a per-call cond would be destroyed while being signalled). */
typedef struct store_waiter {
	store        *s;
	store_done_fn user_done;
	void         *user_arg;
	bool          finished;
} store_waiter;

static void
store_waiter_done(store_commit *c, void *arg)
{
	store_waiter *w = arg;

	c->done = w->user_done;
	c->arg  = w->user_arg;
	if (c->done != NULL)
		c->done(c, c->arg);
	pthread_mutex_lock(&w->s->mu);
	w->finished = true;
	pthread_cond_broadcast(&w->s->done_cv);
	pthread_mutex_unlock(&w->s->mu);
}

int
store_commit_wait(store *s, store_commit *c)
{
	store_waiter w = { s, c->done, c->arg, false };
	int          rc;

	c->done = store_waiter_done;
	c->arg  = &w;
	rc      = store_submit(s, c);
	if (rc != SL_OK) {
		c->done = w.user_done;
		c->arg  = w.user_arg;
		c->rc   = rc;
		return rc;
	}
	pthread_mutex_lock(&s->mu);
	while (!w.finished)
		pthread_cond_wait(&s->done_cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
	return c->rc;
}

uint64_t
store_next_position(store *s)
{
	uint64_t pos;

	pthread_mutex_lock(&s->mu);
	pos = s->next_pos;
	pthread_mutex_unlock(&s->mu);
	return pos;
}

uint64_t
store_wait(store *s, uint64_t known, int timeout_ms)
{
	struct timespec deadline;
	uint64_t        gen, pos;

	if (timeout_ms >= 0) {
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (long) (timeout_ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&s->mu);
	gen = s->wake_gen;
	while (s->next_pos <= known && !s->closing && s->wake_gen == gen) {
		if (timeout_ms < 0) {
			pthread_cond_wait(&s->head_cv, &s->mu);
		} else if (pthread_cond_timedwait(
		               &s->head_cv, &s->mu, &deadline)
		    == ETIMEDOUT) {
			break;
		}
	}
	pos = s->next_pos;
	pthread_mutex_unlock(&s->mu);
	return pos;
}

void
store_wake_all(store *s)
{
	pthread_mutex_lock(&s->mu);
	s->wake_gen++;
	pthread_cond_broadcast(&s->head_cv);
	pthread_mutex_unlock(&s->mu);
}

static int
store_read_begin(store *s, MDB_txn **txn, const char *what)
{
	int mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);

	if (mrc != MDB_SUCCESS) {
		log_error("store", "%s: begin read txn: %s", what,
		    mdb_strerror(mrc));
		return store_map_err(mrc) == SL_ENOMEM ? SL_ENOMEM
		                                       : SL_ESTORAGE;
	}
	return SL_OK;
}

int
store_scan(store *s, uint64_t from, size_t max, store_scan_fn fn, void *arg,
    uint64_t *next)
{
	MDB_txn    *txn;
	MDB_cursor *cur;
	MDB_val     k, v;
	uint8_t     key[8];
	uint64_t    after = from;
	size_t      n     = 0;
	int         mrc, rc;

	if (next != NULL)
		*next = from;
	if ((rc = store_read_begin(s, &txn, "scan")) != SL_OK)
		return rc;
	if ((mrc = mdb_cursor_open(txn, s->db_log, &cur)) != MDB_SUCCESS) {
		mdb_txn_abort(txn);
		log_error("store", "scan: cursor: %s", mdb_strerror(mrc));
		return SL_ESTORAGE;
	}
	store_put_be64(key, from);
	k.mv_data = key;
	k.mv_size = 8;
	rc        = SL_OK;
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     mrc == MDB_SUCCESS && n < max;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint64_t pos;

		if (k.mv_size != 8) {
			log_error("store", "scan: corrupt log key");
			rc = SL_ESTORAGE;
			break;
		}
		pos   = store_get_be64(k.mv_data);
		after = pos + 1;
		n++;
		if ((rc = fn(arg, pos, v.mv_data, v.mv_size)) != 0)
			break;
	}
	if (rc == SL_OK && mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND) {
		log_error("store", "scan: %s", mdb_strerror(mrc));
		rc = SL_ESTORAGE;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (next != NULL)
		*next = after;
	return rc;
}

int
store_scan_stream(store *s, const char *tenant, const char *stream,
    uint64_t from_rev, size_t max, store_scan_fn fn, void *arg)
{
	MDB_txn    *txn;
	MDB_cursor *cur;
	MDB_val     k, v;
	uint8_t     key[STORE_KEY_MAX];
	size_t      tl, sl, plen, n = 0;
	int         mrc, rc;

	if (tenant == NULL || stream == NULL)
		return SL_EINVAL;
	tl = strlen(tenant);
	sl = strlen(stream);
	/* Ids that no commit could have written name an unknown stream. */
	if (!store_id_ok(tenant, tl) || !store_id_ok(stream, sl))
		return SL_OK;
	plen          = store_head_key(key, tenant, tl, stream, sl) + 1;
	key[plen - 1] = 0;
	if ((rc = store_read_begin(s, &txn, "stream scan")) != SL_OK)
		return rc;
	if ((mrc = mdb_cursor_open(txn, s->db_streams, &cur)) != MDB_SUCCESS) {
		mdb_txn_abort(txn);
		log_error(
		    "store", "stream scan: cursor: %s", mdb_strerror(mrc));
		return SL_ESTORAGE;
	}
	store_put_be64(key + plen, from_rev);
	k.mv_data = key;
	k.mv_size = plen + 8;
	rc        = SL_OK;
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     mrc == MDB_SUCCESS && n < max;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		MDB_val  lk, lv;
		uint8_t  pkey[8];
		uint64_t pos;

		if (k.mv_size != plen + 8 || memcmp(k.mv_data, key, plen) != 0)
			break; /* past this stream */
		if (v.mv_size != 8) {
			log_error("store", "stream scan: corrupt index value");
			rc = SL_ESTORAGE;
			break;
		}
		pos = store_get_be64(v.mv_data);
		store_put_be64(pkey, pos);
		lk.mv_data = pkey;
		lk.mv_size = 8;
		mrc        = mdb_get(txn, s->db_log, &lk, &lv);
		if (mrc != MDB_SUCCESS) {
			log_error("store",
			    "stream scan: position %" PRIu64 " missing: %s",
			    pos, mdb_strerror(mrc));
			rc = SL_ESTORAGE;
			break;
		}
		n++;
		if ((rc = fn(arg, pos, lv.mv_data, lv.mv_size)) != 0)
			break;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return rc;
}

int
store_stream_next_revision(
    store *s, const char *tenant, const char *stream, uint64_t *out)
{
	MDB_txn *txn;
	MDB_val  k, v;
	uint8_t  key[STORE_KEY_MAX];
	size_t   tl, sl;
	int      mrc, rc;

	*out = 0;
	if (tenant == NULL || stream == NULL)
		return SL_EINVAL;
	tl = strlen(tenant);
	sl = strlen(stream);
	if (!store_id_ok(tenant, tl) || !store_id_ok(stream, sl))
		return SL_OK;
	if ((rc = store_read_begin(s, &txn, "stream head")) != SL_OK)
		return rc;
	k.mv_data = key;
	k.mv_size = store_head_key(key, tenant, tl, stream, sl);
	mrc       = mdb_get(txn, s->db_heads, &k, &v);
	if (mrc == MDB_SUCCESS && v.mv_size == 8) {
		*out = store_get_be64(v.mv_data);
		rc   = SL_OK;
	} else if (mrc == MDB_NOTFOUND) {
		rc = SL_OK;
	} else {
		log_error("store", "stream head: %s",
		    mrc == MDB_SUCCESS ? "corrupt value" : mdb_strerror(mrc));
		rc = SL_ESTORAGE;
	}
	mdb_txn_abort(txn);
	return rc;
}

uint64_t
store_txn_count(store *s)
{
	uint64_t n;

	pthread_mutex_lock(&s->mu);
	n = s->txn_count;
	pthread_mutex_unlock(&s->mu);
	return n;
}

/* ---- ownership: claims ---- */

/* Whether stream (len bytes) matches pattern: equal to an exact name, or
 * starting with a '*'-terminated pattern's prefix. */
static bool
store_pattern_match(const char *pattern, const char *stream, size_t len)
{
	size_t pl = strlen(pattern);

	if (pl > 0 && pattern[pl - 1] == '*')
		return len >= pl - 1 && memcmp(stream, pattern, pl - 1) == 0;
	return len == pl && memcmp(stream, pattern, pl) == 0;
}

bool
store_pattern_overlap(const char *a, const char *b)
{
	size_t al, bl;
	bool   ap, bp;

	if (a == NULL || b == NULL)
		return false;
	al = strlen(a);
	bl = strlen(b);
	ap = al > 0 && a[al - 1] == '*';
	bp = bl > 0 && b[bl - 1] == '*';
	if (!ap && !bp)
		return al == bl && memcmp(a, b, al) == 0;
	if (ap && !bp)
		return store_pattern_match(a, b, bl);
	if (!ap && bp)
		return store_pattern_match(b, a, al);
	/* Two prefixes: a stream matches both iff one prefix extends the
	 * other (take the longer prefix itself). */
	al--;
	bl--;
	return memcmp(a, b, al < bl ? al : bl) == 0;
}

/* A pattern usable as a claim: an id, at most one '*', only at the end. */
static bool
store_pattern_ok(const char *p)
{
	size_t      len;
	const char *star;

	if (p == NULL)
		return false;
	len  = strlen(p);
	star = strchr(p, '*');
	return len > 0 && len <= SL_MAX_ID_LEN
	    && (star == NULL || star == p + len - 1);
}

int
store_claim(store *s, const char *pattern, const char *owner,
    const char *label, char *err, size_t errlen)
{
	store_claim_t *c;
	int            rc = SL_OK;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (s == NULL || owner == NULL || owner[0] == '\0'
	    || !store_pattern_ok(pattern)) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen,
			    "stream pattern '%s' is not a stream name or a "
			    "prefix ending in '*'",
			    pattern != NULL ? pattern : "(null)");
		return SL_EINVAL;
	}
	if (label == NULL || label[0] == '\0')
		label = owner;
	pthread_mutex_lock(&s->claims_mu);
	for (size_t i = 0; i < s->n_claims; i++) {
		c = &s->claims[i];
		if (strcmp(c->owner, owner) == 0) {
			if (strcmp(c->pattern, pattern) == 0)
				goto out; /* held already */
			continue;
		}
		if (store_pattern_overlap(c->pattern, pattern)) {
			if (err != NULL && errlen > 0)
				snprintf(err, errlen,
				    "streams '%s' of projection '%s' overlap "
				    "streams '%s' of projection '%s'",
				    pattern, label, c->pattern, c->label);
			rc = SL_EEXIST;
			goto out;
		}
	}
	if (s->n_claims == s->cap_claims) {
		size_t         cap = s->cap_claims ? 2 * s->cap_claims : 8;
		store_claim_t *n   = realloc(s->claims, cap * sizeof(*n));

		if (n == NULL) {
			rc = SL_ENOMEM;
			goto out;
		}
		s->claims     = n;
		s->cap_claims = cap;
	}
	c          = &s->claims[s->n_claims];
	c->pattern = strdup(pattern);
	c->owner   = strdup(owner);
	c->label   = strdup(label);
	if (c->pattern == NULL || c->owner == NULL || c->label == NULL) {
		store_claim_free(c);
		rc = SL_ENOMEM;
		goto out;
	}
	s->n_claims++;
out:
	pthread_mutex_unlock(&s->claims_mu);
	return rc;
}

void
store_unclaim(store *s, const char *owner)
{
	size_t j = 0;

	if (s == NULL || owner == NULL)
		return;
	pthread_mutex_lock(&s->claims_mu);
	for (size_t i = 0; i < s->n_claims; i++) {
		if (strcmp(s->claims[i].owner, owner) == 0)
			store_claim_free(&s->claims[i]);
		else
			s->claims[j++] = s->claims[i];
	}
	s->n_claims = j;
	pthread_mutex_unlock(&s->claims_mu);
}

/* The claim on stream held by someone other than writer (NULL: a client,
 * so any claim): SL_EOWNED with err naming its owner, else SL_OK. */
static int
store_claims_check(store *s, const char *stream, size_t len,
    const char *writer, char *err, size_t errlen)
{
	int rc = SL_OK;

	pthread_mutex_lock(&s->claims_mu);
	for (size_t i = 0; i < s->n_claims; i++) {
		const store_claim_t *c = &s->claims[i];

		if (!store_pattern_match(c->pattern, stream, len))
			continue;
		if (writer != NULL && strcmp(c->owner, writer) == 0)
			continue;
		if (err != NULL && errlen > 0)
			snprintf(err, errlen,
			    "stream '%.*s' is owned by projection '%s'",
			    (int) len, stream, c->label);
		rc = SL_EOWNED;
		break;
	}
	pthread_mutex_unlock(&s->claims_mu);
	return rc;
}

/* How messages name an owner id: the label of one of its claims, else the
 * id itself. */
static void
store_owner_label(
    store *s, const char *owner, size_t len, char *out, size_t outlen)
{
	pthread_mutex_lock(&s->claims_mu);
	for (size_t i = 0; i < s->n_claims; i++) {
		if (strlen(s->claims[i].owner) == len
		    && memcmp(s->claims[i].owner, owner, len) == 0) {
			snprintf(out, outlen, "%s", s->claims[i].label);
			pthread_mutex_unlock(&s->claims_mu);
			return;
		}
	}
	pthread_mutex_unlock(&s->claims_mu);
	snprintf(out, outlen, "%.*s", (int) len, owner);
}

/*
 * Whether writer may write stream in txn: claims first, then the "owners"
 * record. SL_OK, SL_EOWNED (err names the owner), SL_ESTORAGE.
 */
static int
store_owner_check_txn(store *s, MDB_txn *txn, const char *tenant,
    size_t tenant_len, const char *stream, size_t stream_len,
    const char *writer, char *err, size_t errlen)
{
	uint8_t key[STORE_KEY_MAX];
	char    label[SL_MAX_ID_LEN + 1];
	MDB_val k, v;
	int     mrc, rc;

	rc = store_claims_check(s, stream, stream_len, writer, err, errlen);
	if (rc != SL_OK)
		return rc;
	k.mv_data = key;
	k.mv_size
	    = store_head_key(key, tenant, tenant_len, stream, stream_len);
	mrc = mdb_get(txn, s->db_owners, &k, &v);
	if (mrc == MDB_NOTFOUND)
		return SL_OK;
	if (mrc != MDB_SUCCESS) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "lmdb: read stream owner: %s",
			    mdb_strerror(mrc));
		return store_map_err(mrc) == SL_ENOMEM ? SL_ENOMEM
		                                       : SL_ESTORAGE;
	}
	if (writer != NULL && v.mv_size == strlen(writer)
	    && memcmp(v.mv_data, writer, v.mv_size) == 0)
		return SL_OK;
	store_owner_label(s, v.mv_data, v.mv_size, label, sizeof(label));
	if (err != NULL && errlen > 0)
		snprintf(err, errlen,
		    "stream '%.*s' is owned by projection '%s'",
		    (int) stream_len, stream, label);
	return SL_EOWNED;
}

int
store_check_owner(store *s, const char *tenant, const char *stream,
    const char *writer, char *err, size_t errlen)
{
	MDB_txn *txn;
	size_t   tl, sl;
	int      rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (s == NULL || tenant == NULL || stream == NULL)
		return SL_EINVAL;
	tl = strlen(tenant);
	sl = strlen(stream);
	if (!store_id_ok(tenant, tl) || !store_id_ok(stream, sl))
		return SL_EINVAL;
	if ((rc = store_read_begin(s, &txn, "stream owner")) != SL_OK)
		return rc;
	rc = store_owner_check_txn(
	    s, txn, tenant, tl, stream, sl, writer, err, errlen);
	mdb_txn_abort(txn);
	return rc;
}

/* ---- emit batches: submission ---- */

int
store_submit_emit(store *s, store_emit *e)
{
	if (s == NULL || e == NULL || e->tenant == NULL || e->owner == NULL
	    || (e->n_appends > 0 && e->appends == NULL)
	    || (e->n_states > 0 && e->states == NULL))
		return SL_EINVAL;
	e->rc         = SL_OK;
	e->message[0] = '\0';
	e->next       = NULL;

	pthread_mutex_lock(&s->mu);
	if (s->closing) {
		pthread_mutex_unlock(&s->mu);
		return SL_ECLOSED;
	}
	e->first_position = s->q_seq++; /* arrival order, see q_seq */
	if (s->qe_tail != NULL)
		s->qe_tail->next = e;
	else
		s->qe_head = e;
	s->qe_tail = e;
	pthread_cond_signal(&s->work_cv);
	pthread_mutex_unlock(&s->mu);
	return SL_OK;
}

/* store_emit_wait's stand-in done(), as store_waiter_done. */
typedef struct store_emit_waiter {
	store             *s;
	store_emit_done_fn user_done;
	void              *user_arg;
	bool               finished;
} store_emit_waiter;

static void
store_emit_waiter_done(store_emit *e, void *arg)
{
	store_emit_waiter *w = arg;

	e->done = w->user_done;
	e->arg  = w->user_arg;
	if (e->done != NULL)
		e->done(e, e->arg);
	pthread_mutex_lock(&w->s->mu);
	w->finished = true;
	pthread_cond_broadcast(&w->s->done_cv);
	pthread_mutex_unlock(&w->s->mu);
}

int
store_emit_wait(store *s, store_emit *e)
{
	store_emit_waiter w;
	int               rc;

	if (e == NULL)
		return SL_EINVAL;
	w       = (store_emit_waiter) { s, e->done, e->arg, false };
	e->done = store_emit_waiter_done;
	e->arg  = &w;
	rc      = store_submit_emit(s, e);
	if (rc != SL_OK) {
		e->done = w.user_done;
		e->arg  = w.user_arg;
		e->rc   = rc;
		return rc;
	}
	pthread_mutex_lock(&s->mu);
	while (!w.finished)
		pthread_cond_wait(&s->done_cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
	return e->rc;
}

/* ---- emitting projections: readers ---- */

/* tenant \0 owner into key for a read; false when no write could have
 * made such a key (the record cannot exist). */
static bool
store_owner_read_key(store *s, const char *tenant, const char *owner,
    uint8_t *key, size_t *tl, size_t *ol)
{
	if (tenant == NULL || owner == NULL)
		return false;
	*tl = strlen(tenant);
	*ol = strlen(owner);
	if (!store_id_ok(tenant, *tl) || !store_id_ok(owner, *ol)
	    || *tl + *ol + 2 > s->max_key)
		return false;
	store_owner_key(key, tenant, *tl, owner, *ol, NULL, 0);
	return true;
}

/* One record of dbi by key: fn called once. */
static int
store_get_one(store *s, MDB_dbi dbi, const uint8_t *key, size_t klen,
    const void *user_key, size_t user_klen, store_kv_fn fn, void *arg,
    const char *what)
{
	MDB_txn *txn;
	MDB_val  k, v;
	int      mrc, rc;

	if ((rc = store_read_begin(s, &txn, what)) != SL_OK)
		return rc;
	k.mv_data = (void *) key;
	k.mv_size = klen;
	mrc       = mdb_get(txn, dbi, &k, &v);
	if (mrc == MDB_SUCCESS) {
		rc = fn != NULL
		    ? fn(arg, user_key, user_klen, v.mv_data, v.mv_size)
		    : SL_OK;
	} else if (mrc == MDB_NOTFOUND) {
		rc = SL_ENOTFOUND;
	} else {
		log_error("store", "%s: %s", what, mdb_strerror(mrc));
		rc = SL_ESTORAGE;
	}
	mdb_txn_abort(txn);
	return rc;
}

int
store_get_checkpoint(
    store *s, const char *tenant, const char *owner, store_kv_fn fn, void *arg)
{
	uint8_t key[STORE_OKEY_MAX];
	size_t  tl, ol;

	if (s == NULL)
		return SL_EINVAL;
	if (!store_owner_read_key(s, tenant, owner, key, &tl, &ol))
		return SL_ENOTFOUND;
	return store_get_one(s, s->db_pcheck, key, tl + 1 + ol, "", 0, fn, arg,
	    "read checkpoint");
}

int
store_get_pstate(store *s, const char *tenant, const char *owner,
    const void *key, size_t key_len, store_kv_fn fn, void *arg)
{
	uint8_t buf[STORE_OKEY_MAX];
	size_t  tl, ol, n;

	if (s == NULL || (key == NULL && key_len > 0))
		return SL_EINVAL;
	if (!store_owner_read_key(s, tenant, owner, buf, &tl, &ol)
	    || tl + ol + 2 + key_len > s->max_key
	    || tl + ol + 2 + key_len > sizeof(buf))
		return SL_ENOTFOUND;
	n = store_owner_key(
	    buf, tenant, tl, owner, ol, key_len > 0 ? key : "", key_len);
	return store_get_one(
	    s, s->db_pstate, buf, n, key, key_len, fn, arg, "read state");
}

/* Visit the records of dbi under prefix (tenant \0 owner \0), from the
 * suffix `after` exclusive (NULL: from the first); fn gets the suffix. */
static int
store_scan_prefix(store *s, MDB_dbi dbi, const uint8_t *prefix, size_t plen,
    const void *after, size_t after_len, store_kv_fn fn, void *arg,
    const char *what)
{
	uint8_t     key[STORE_OKEY_MAX];
	MDB_txn    *txn;
	MDB_cursor *cur;
	MDB_val     k, v;
	int         mrc, rc;

	if (after != NULL && plen + after_len > sizeof(key))
		return SL_OK; /* past every key that can exist */
	memcpy(key, prefix, plen);
	if (after != NULL && after_len > 0)
		memcpy(key + plen, after, after_len);
	if ((rc = store_read_begin(s, &txn, what)) != SL_OK)
		return rc;
	if ((mrc = mdb_cursor_open(txn, dbi, &cur)) != MDB_SUCCESS) {
		mdb_txn_abort(txn);
		log_error("store", "%s: cursor: %s", what, mdb_strerror(mrc));
		return SL_ESTORAGE;
	}
	k.mv_data = key;
	k.mv_size = plen + (after != NULL ? after_len : 0);
	rc        = SL_OK;
	mrc       = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	/* `after` itself is excluded. */
	if (mrc == MDB_SUCCESS && after != NULL
	    && k.mv_size == plen + after_len
	    && memcmp(k.mv_data, key, plen + after_len) == 0)
		mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	for (; mrc == MDB_SUCCESS;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
			break;
		rc = fn(arg, (const uint8_t *) k.mv_data + plen,
		    k.mv_size - plen, v.mv_data, v.mv_size);
		if (rc != 0)
			break;
	}
	if (rc == SL_OK && mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND) {
		log_error("store", "%s: %s", what, mdb_strerror(mrc));
		rc = SL_ESTORAGE;
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return rc;
}

int
store_scan_pstates(store *s, const char *tenant, const char *owner,
    const void *after, size_t after_len, store_kv_fn fn, void *arg)
{
	uint8_t prefix[STORE_OKEY_MAX];
	size_t  tl, ol;

	if (s == NULL || fn == NULL || (after == NULL && after_len > 0))
		return SL_EINVAL;
	if (!store_owner_read_key(s, tenant, owner, prefix, &tl, &ol))
		return SL_OK;
	prefix[tl + 1 + ol] = 0;
	return store_scan_prefix(s, s->db_pstate, prefix, tl + ol + 2, after,
	    after_len, fn, arg, "scan states");
}

int
store_scan_owned(
    store *s, const char *tenant, const char *owner, store_kv_fn fn, void *arg)
{
	uint8_t prefix[STORE_OKEY_MAX];
	size_t  tl, ol;

	if (s == NULL || fn == NULL)
		return SL_EINVAL;
	if (!store_owner_read_key(s, tenant, owner, prefix, &tl, &ol))
		return SL_OK;
	prefix[tl + 1 + ol] = 0;
	return store_scan_prefix(s, s->db_owned, prefix, tl + ol + 2, NULL, 0,
	    fn, arg, "scan owned streams");
}

/* Parse a link's content "N@stream" strictly: N decimal without sign or
 * leading zeros (up to UINT64_MAX - 2), stream a valid id. */
static bool
store_parse_link(const char *link, size_t len, uint64_t *rev,
    const char **stream, size_t *stream_len)
{
	const char *at;
	uint64_t    n = 0;
	size_t      digits;

	if (link == NULL || len == 0)
		return false;
	at = memchr(link, '@', len);
	if (at == NULL)
		return false;
	digits = (size_t) (at - link);
	if (digits == 0 || (digits > 1 && link[0] == '0'))
		return false;
	for (size_t i = 0; i < digits; i++) {
		unsigned d = (unsigned char) link[i] - '0';

		if (d > 9 || n > (UINT64_MAX - 2 - d) / 10)
			return false;
		n = n * 10 + d;
	}
	*rev        = n;
	*stream     = at + 1;
	*stream_len = len - digits - 1;
	return store_id_ok(*stream, *stream_len);
}

int
store_resolve_link(store *s, const char *tenant, const char *link,
    size_t link_len, store_scan_fn fn, void *arg)
{
	uint8_t     key[STORE_KEY_MAX], pkey[8];
	const char *stream;
	size_t      sl, tl, hlen;
	uint64_t    rev, pos;
	MDB_txn    *txn;
	MDB_val     k, v;
	int         mrc, rc;

	if (s == NULL || tenant == NULL || fn == NULL
	    || !store_parse_link(link, link_len, &rev, &stream, &sl))
		return SL_EINVAL;
	tl = strlen(tenant);
	if (!store_id_ok(tenant, tl) || tl + sl + 10 > s->max_key)
		return SL_ENOTFOUND;
	hlen      = store_head_key(key, tenant, tl, stream, sl);
	key[hlen] = 0;
	store_put_be64(key + hlen + 1, rev);
	if ((rc = store_read_begin(s, &txn, "resolve link")) != SL_OK)
		return rc;
	k.mv_data = key;
	k.mv_size = hlen + 1 + 8;
	mrc       = mdb_get(txn, s->db_streams, &k, &v);
	if (mrc == MDB_NOTFOUND) {
		rc = SL_ENOTFOUND;
	} else if (mrc != MDB_SUCCESS || v.mv_size != 8) {
		log_error("store", "resolve link: %s",
		    mrc == MDB_SUCCESS ? "corrupt index value"
		                       : mdb_strerror(mrc));
		rc = SL_ESTORAGE;
	} else {
		pos = store_get_be64(v.mv_data);
		store_put_be64(pkey, pos);
		k.mv_data = pkey;
		k.mv_size = 8;
		mrc       = mdb_get(txn, s->db_log, &k, &v);
		if (mrc == MDB_SUCCESS) {
			rc = fn(arg, pos, v.mv_data, v.mv_size);
		} else {
			log_error("store",
			    "resolve link: position %" PRIu64 " missing: %s",
			    pos, mdb_strerror(mrc));
			rc = SL_ESTORAGE;
		}
	}
	mdb_txn_abort(txn);
	return rc;
}
