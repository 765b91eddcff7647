/*
 * Ownership of streams and the batches of emitting projections (see
 * store.h): claims, owner records, emit batches written by the log's
 * writer (store_write_emit, called from store.c's group), and the readers
 * of states, checkpoints, owned streams and links.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/errors.h>

#include "log.h"
#include "store_internal.h"

void
store_claim_free(store_claim_t *c)
{
	free(c->pattern);
	free(c->owner);
	free(c->label);
}

/* ---- emit batches of emitting projections ---- */

/* Longest owner-scoped key: tenant \0 owner \0 stream (or a state key,
 * bounded by the env's key size, see store_emit_check). */
#define STORE_OKEY_MAX (3 * SL_MAX_ID_LEN + 2 + 8)

int
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
		if (a->link_prev
		    && (i == 0 || a->ev.type == NULL || a->ev.type_len != 2
		        || memcmp(a->ev.type, EV_LINK_TYPE, 2) != 0))
			return store_emit_fail(e, SL_EINVAL,
			    "appends[%zu]: a link to the append before needs "
			    "one before it and a link type",
			    i);
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
 * Soft-delete every stream owner wrote for tenant as a deletion does (its
 * revisions so far hidden; owner records go, "heads" and the log stay),
 * then its states and checkpoint.
 */
static int
store_emit_reset(store *s, MDB_txn *txn, const char *tenant, size_t tl,
    const char *owner, size_t ol, bool marks)
{
	uint8_t     prefix[STORE_OKEY_MAX], hkey[STORE_KEY_MAX];
	char        stream[SL_MAX_ID_LEN];
	MDB_cursor *cur;
	MDB_val     k, v;
	size_t      plen, sl, hlen;
	uint64_t    next_rev;
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
		if (!marks) /* the log's notifications set them */
			continue;
		mrc = mdb_get(txn, s->db_heads, &k, &v);
		if (mrc == MDB_NOTFOUND)
			continue; /* no events: nothing to hide */
		if (mrc == MDB_SUCCESS && v.mv_size != 8)
			mrc = MDB_CORRUPTED;
		if (mrc != MDB_SUCCESS)
			break;
		next_rev = store_get_be64(v.mv_data);
		mrc      = store_trunc_put(s, txn, hkey, hlen, next_rev);
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

/*
 * The streams a batch appended to so far, most recent ones: their owner
 * checked and recorded, and their next revision, whose "heads" record is
 * written when the entry leaves (emit_heads_flush). A batch of links
 * (a system projection's: 200,000 into "$ce-account") then costs a log
 * and a stream index put per event, not also an owner check, a head's
 * read and write and an owner put.
 */
#define EMIT_STREAMS 16
typedef struct emit_stream {
	const char *stream;
	size_t      sl;
	uint64_t    next_rev;
	/* on the stream index page of its last revision: its next one goes
	 * there without a search from the root (streams interleaved in a
	 * batch, $et-<type>'s, each keep their own); kept by the slot when
	 * the entry is replaced, closed by emit_streams_close */
	MDB_cursor *cur;
} emit_stream;
typedef struct emit_streams {
	emit_stream v[EMIT_STREAMS];
	size_t      n, victim;
} emit_streams;

static int
emit_head_put(store *s, MDB_txn *txn, const char *tenant, size_t tl,
    const emit_stream *x)
{
	uint8_t key[STORE_KEY_MAX];
	size_t  hlen = store_head_key(key, tenant, tl, x->stream, x->sl);
	return store_put_head(s, txn, key, hlen, x->next_rev);
}

/* Write every cached head (before the batch's commit). */
static int
emit_heads_flush(store *s, MDB_txn *txn, const char *tenant, size_t tl,
    emit_streams *es)
{
	int mrc = MDB_SUCCESS;
	for (size_t i = 0; i < es->n && mrc == MDB_SUCCESS; i++)
		mrc = emit_head_put(s, txn, tenant, tl, &es->v[i]);
	es->n = 0;
	return mrc;
}

/* Close the entries' cursors (before the batch's transaction ends). */
static void
emit_streams_close(emit_streams *es)
{
	for (size_t i = 0; i < EMIT_STREAMS; i++)
		if (es->v[i].cur != NULL) {
			mdb_cursor_close(es->v[i].cur);
			es->v[i].cur = NULL;
		}
}

static emit_stream *
emit_stream_find(emit_streams *es, const char *stream, size_t sl)
{
	for (size_t i = 0; i < es->n; i++)
		if (es->v[i].sl == sl && memcmp(es->v[i].stream, stream, sl) == 0)
			return &es->v[i];
	return NULL;
}

const store_append *
store_emit_linked(store_emit *e, size_t i, uint64_t rev, store_linked *lk)
{
	const store_append *a = &e->appends[i];
	if (!a->link_prev)
		return a;
	/* "<revision>@<stream>" of the append before (checked: i > 0), as
	 * EventStoreDB's links */
	int n = snprintf(lk->text, sizeof(lk->text), "%" PRIu64 "@%s", rev,
	    e->appends[i - 1].stream);
	if (n < 0 || (size_t) n >= sizeof(lk->text)) {
		store_emit_fail(
		    e, SL_EINVAL, "appends[%zu]: link target too long", i);
		return NULL;
	}
	lk->target.type         = MSGPACK_OBJECT_STR;
	lk->target.via.str.ptr  = lk->text;
	lk->target.via.str.size = (uint32_t) n;
	lk->append              = *a;
	lk->append.ev.content   = &lk->target;
	return &lk->append;
}

/* Append one event of a batch to its stream, recording owner as the
 * stream's writer the first time. *rev: in, the revision appends[i - 1]
 * got (for link_prev); out, the one this append got. */
static int
store_emit_append(store *s, MDB_txn *txn, store_cursors *cur, store_emit *e,
    size_t tl, size_t ol, size_t i, uint64_t pos, uint64_t *rev,
    emit_streams *es)
{
	store_linked        lk;
	const store_append *a = store_emit_linked(e, i, *rev, &lk);
	if (a == NULL)
		return e->rc;
	uint8_t             key[STORE_OKEY_MAX];
	size_t              sl       = strlen(a->stream), hlen;
	uint64_t            next_rev = 0;
	MDB_val             k, v;
	int                 mrc, rc;

	hlen            = store_head_key(key, e->tenant, tl, a->stream, sl);
	emit_stream *x  = emit_stream_find(es, a->stream, sl);
	if (x != NULL) {
		next_rev = x->next_rev;
	} else {
		rc = store_owner_check_txn(s, txn, e->tenant, tl, a->stream,
		    sl, e->owner, e->message, sizeof(e->message));
		if (rc != SL_OK) {
			e->rc = rc;
			return rc;
		}
		if (store_get_be64_txn(txn, s->db_heads, key, hlen, &next_rev,
		        "read stream head")
		    != SL_OK)
			return store_emit_fail(e, SL_ESTORAGE,
			    "lmdb: cannot read the head of '%s'", a->stream);
	}

	msgpack_sbuffer_clear(&s->enc);
	rc = ev_encode_sbuf(
	    &s->enc, e->tenant, tl, a->stream, sl, next_rev, &a->ev);
	if (rc == SL_ENOMEM)
		return store_emit_fail(
		    e, rc, "appends[%zu]: out of memory encoding it", i);
	if (rc != SL_OK && ev_new_nul_field(&a->ev) != NULL)
		return store_emit_fail(e, rc,
		    "appends[%zu]: field '%s' contains a NUL byte", i,
		    ev_new_nul_field(&a->ev));
	if (rc != SL_OK)
		return store_emit_fail(e, rc,
		    "appends[%zu] cannot be encoded (content must be a map, "
		    "or a str for a link)",
		    i);
	if (s->enc.size > SL_MAX_EVENT_BYTES + 4 * SL_MAX_ID_LEN + 64)
		return store_emit_fail(e, SL_ETOOBIG,
		    "appends[%zu] takes %zu bytes (limit %u)", i, s->enc.size,
		    SL_MAX_EVENT_BYTES);
	/* a new entry's first put: the batch's shared cursor */
	store_cursors pc = { cur->log,
		x != NULL && x->cur != NULL ? x->cur : cur->streams };
	if ((mrc = store_put_encoded_c(s, &pc, key, hlen, next_rev, pos)) != 0)
		goto lmdb_fail;
	*rev = next_rev;
	if (x != NULL) {
		x->next_rev = next_rev + 1; /* its head: written later */
		return SL_OK;
	}

	/* Owner records: the check above passed, so an existing record
	 * names this owner already. */
	k.mv_data = key;
	k.mv_size = hlen;
	v.mv_data = (void *) e->owner;
	v.mv_size = ol;
	mrc       = mdb_put(txn, s->db_owners, &k, &v, MDB_NOOVERWRITE);
	if (mrc != MDB_SUCCESS && mrc != MDB_KEYEXIST)
		goto lmdb_fail;
	if (mrc == MDB_SUCCESS) {
		k.mv_size = store_owner_key(
		    key, e->tenant, tl, e->owner, ol, a->stream, sl);
		v.mv_data = (void *) "";
		v.mv_size = 0;
		if ((mrc = mdb_put(txn, s->db_owned, &k, &v, 0)) != 0)
			goto lmdb_fail;
	}
	/* cached from now on; the entry it replaces writes its head */
	if (es->n < EMIT_STREAMS) {
		x = &es->v[es->n++];
	} else {
		x          = &es->v[es->victim];
		es->victim = (es->victim + 1) % EMIT_STREAMS;
		if ((mrc = emit_head_put(s, txn, e->tenant, tl, x)) != 0)
			goto lmdb_fail;
	}
	x->stream   = a->stream;
	x->sl       = sl;
	x->next_rev = next_rev + 1;
	if (x->cur == NULL
	    && (mrc = mdb_cursor_open(txn, s->db_streams, &x->cur)) != 0) {
		x->cur = NULL;
		goto lmdb_fail;
	}
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
void
store_write_emit(store *s, MDB_txn *parent, store_emit *e, uint64_t *pos)
{
	uint8_t  key[STORE_OKEY_MAX];
	size_t   tl  = e->tenant != NULL ? strlen(e->tenant) : 0;
	size_t   ol  = e->owner != NULL ? strlen(e->owner) : 0;
	MDB_txn *txn = NULL;
	MDB_val  k, v;
	int      mrc;
	store_cursors cur = { NULL, NULL };
	emit_streams  es;

	memset(&es, 0, sizeof(es)); /* no cursors: the abort below closes */
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
	    && (mrc = store_emit_reset(
	            s, txn, e->tenant, tl, e->owner, ol, true))
	        != MDB_SUCCESS)
		goto lmdb_fail;
	uint64_t rev = 0;
	if (e->n_appends > 0 && (mrc = store_cursors_open(s, txn, &cur)) != 0)
		goto lmdb_fail;
	for (size_t i = 0; i < e->n_appends; i++)
		if (store_emit_append(
		        s, txn, &cur, e, tl, ol, i, *pos + i, &rev, &es)
		    != SL_OK)
			goto abort;
	/* before the transaction ends */
	store_cursors_close(&cur);
	emit_streams_close(&es);
	if ((mrc = emit_heads_flush(s, txn, e->tenant, tl, &es)) != 0)
		goto lmdb_fail;
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
	store_cursors_close(&cur);
	emit_streams_close(&es);
	if (txn != NULL)
		mdb_txn_abort(txn);
}

int
store_emit_validate(store *s, store_emit *e)
{
	size_t tl = e->tenant != NULL ? strlen(e->tenant) : 0;
	size_t ol = e->owner != NULL ? strlen(e->owner) : 0;
	e->rc         = SL_OK;
	e->message[0] = '\0';
	return store_emit_check(s, e, tl, ol);
}

/* ---- a shared log's batches: this env as the lease holder's copy ---- */

/* Put (val != NULL) or delete one state of tenant \0 owner \0 key. */
static int
store_pstate_put(store *s, MDB_txn *txn, const char *tenant, size_t tl,
    const char *owner, size_t ol, const store_kv *kv)
{
	uint8_t key[STORE_OKEY_MAX];
	MDB_val k, v;
	int     mrc;
	if (tl + ol + 2 + kv->key_len > sizeof(key))
		return MDB_BAD_VALSIZE;
	k.mv_data = key;
	k.mv_size = store_owner_key(key, tenant, tl, owner, ol,
	    kv->key_len > 0 ? kv->key : "", kv->key_len);
	if (kv->val == NULL) {
		mrc = mdb_del(txn, s->db_pstate, &k, NULL);
		return mrc == MDB_NOTFOUND ? MDB_SUCCESS : mrc;
	}
	v.mv_data = (void *) kv->val;
	v.mv_size = kv->val_len;
	return mdb_put(txn, s->db_pstate, &k, &v, 0);
}

/* The checkpoint of tenant \0 owner: put, or delete (ck NULL). */
static int
store_pcheck_put(store *s, MDB_txn *txn, const char *tenant, size_t tl,
    const char *owner, size_t ol, const void *ck, size_t len)
{
	uint8_t key[STORE_OKEY_MAX];
	MDB_val k, v;
	int     mrc;
	k.mv_data = key;
	k.mv_size = store_owner_key(key, tenant, tl, owner, ol, NULL, 0);
	if (ck == NULL) {
		mrc = mdb_del(txn, s->db_pcheck, &k, NULL);
		return mrc == MDB_NOTFOUND ? MDB_SUCCESS : mrc;
	}
	v.mv_data = (void *) ck;
	v.mv_size = len;
	return mdb_put(txn, s->db_pcheck, &k, &v, 0);
}

int
store_emit_local(store *s, const store_emit *e)
{
	size_t   tl = strlen(e->tenant), ol = strlen(e->owner);
	uint8_t  key[STORE_OKEY_MAX];
	MDB_txn *txn;
	MDB_val  k, v;
	int      mrc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (mrc != MDB_SUCCESS)
		return mrc;
	/* a reset: owner records, states, checkpoint go; the streams' marks
	 * come from the notifications the batch wrote (the mirror's) */
	if (e->reset
	    && (mrc = store_emit_reset(
	            s, txn, e->tenant, tl, e->owner, ol, false))
	        != MDB_SUCCESS) {
		mdb_txn_abort(txn);
		return mrc;
	}
	/* owner records: who wrote a stream, as store_emit_append keeps
	 * them (the log of record's sl_streams.owner is the one checked) */
	for (size_t i = 0; i < e->n_appends && mrc == MDB_SUCCESS; i++) {
		const char *st = e->appends[i].stream;
		size_t      sl = strlen(st);
		k.mv_data      = key;
		k.mv_size      = store_head_key(key, e->tenant, tl, st, sl);
		v.mv_data      = (void *) e->owner;
		v.mv_size      = ol;
		mrc = mdb_put(txn, s->db_owners, &k, &v, MDB_NOOVERWRITE);
		if (mrc == MDB_KEYEXIST) {
			mrc = MDB_SUCCESS;
			continue;
		}
		if (mrc != MDB_SUCCESS)
			break;
		k.mv_size = store_owner_key(
		    key, e->tenant, tl, e->owner, ol, st, sl);
		v.mv_data = (void *) "";
		v.mv_size = 0;
		mrc       = mdb_put(txn, s->db_owned, &k, &v, 0);
	}
	for (size_t i = 0; i < e->n_states && mrc == MDB_SUCCESS; i++)
		mrc = store_pstate_put(
		    s, txn, e->tenant, tl, e->owner, ol, &e->states[i]);
	if (mrc == MDB_SUCCESS && e->checkpoint != NULL)
		mrc = store_pcheck_put(s, txn, e->tenant, tl, e->owner, ol,
		    e->checkpoint, e->checkpoint_len);
	if (mrc != MDB_SUCCESS) {
		mdb_txn_abort(txn);
		return mrc;
	}
	return mdb_txn_commit(txn);
}

int
store_owner_load(store *s, const char *tenant, const char *owner,
    const store_kv *states, size_t n, const void *ckpt, size_t ckpt_len)
{
	uint8_t  prefix[STORE_OKEY_MAX];
	size_t   tl = strlen(tenant), ol = strlen(owner);
	MDB_txn *txn;
	int      mrc;
	if (!store_id_ok(tenant, tl) || !store_id_ok(owner, ol)
	    || tl + ol + 2 > s->max_key)
		return MDB_BAD_VALSIZE;
	if ((mrc = mdb_txn_begin(s->env, NULL, 0, &txn)) != MDB_SUCCESS)
		return mrc;
	size_t plen = store_owner_key(prefix, tenant, tl, owner, ol, "", 0);
	mrc         = store_del_prefix(txn, s->db_pstate, prefix, plen);
	for (size_t i = 0; i < n && mrc == MDB_SUCCESS; i++)
		mrc = store_pstate_put(s, txn, tenant, tl, owner, ol, &states[i]);
	if (mrc == MDB_SUCCESS)
		mrc = store_pcheck_put(
		    s, txn, tenant, tl, owner, ol, ckpt, ckpt_len);
	if (mrc != MDB_SUCCESS) {
		mdb_txn_abort(txn);
		return mrc;
	}
	return mdb_txn_commit(txn);
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

int
store_claims_allow(store *s, const char *stream, size_t len,
    const char *writer, char *err, size_t errlen)
{
	if (store_pattern_match(STORE_DELETED_STREAM, stream, len)) {
		snprintf(err, errlen,
		    "stream '%s' is written by the event log only: its record "
		    "of stream deletions",
		    STORE_DELETED_STREAM);
		return SL_EOWNED;
	}
	return store_claims_check(s, stream, len, writer, err, errlen);
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
int
store_owner_check_txn(store *s, MDB_txn *txn, const char *tenant,
    size_t tenant_len, const char *stream, size_t stream_len,
    const char *writer, char *err, size_t errlen)
{
	uint8_t key[STORE_KEY_MAX];
	char    label[SL_MAX_ID_LEN + 1];
	MDB_val k, v;
	int     mrc, rc;

	/* Before the claims: a claim of every stream ("*") does not take
	 * this one. */
	if (store_pattern_match(STORE_DELETED_STREAM, stream, stream_len)) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen,
			    "stream '%s' is written by the event log only: "
			    "its record of stream deletions",
			    STORE_DELETED_STREAM);
		return SL_EOWNED;
	}
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
	store_wake_writer_locked(s);
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

/* Parse a link's content strictly: ev_parse_link, and a valid stream id. */
static bool
store_parse_link(const char *link, size_t len, uint64_t *rev,
    const char **stream, size_t *stream_len)
{
	return ev_parse_link(link, len, rev, stream, stream_len)
	    && store_id_ok(*stream, *stream_len);
}

int
store_resolve_link(store *s, const char *tenant, const char *link,
    size_t link_len, store_scan_fn fn, void *arg)
{
	uint8_t     key[STORE_KEY_MAX], pkey[8];
	const char *stream;
	size_t      sl, tl, hlen;
	uint64_t    rev, pos, first;
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
	if ((rc = store_trunc_get(s, txn, key, hlen, &first)) != SL_OK) {
		mdb_txn_abort(txn);
		return rc;
	}
	k.mv_data = key;
	k.mv_size = hlen + 1 + 8;
	mrc = rev < first ? MDB_NOTFOUND : mdb_get(txn, s->db_streams, &k, &v);
	if (mrc == MDB_NOTFOUND) {
		rc = SL_ENOTFOUND; /* deleted, or never written */
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
