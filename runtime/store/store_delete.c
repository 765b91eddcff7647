/*
 * Stream deletion in the event log (see store.h): a soft delete or a
 * truncate-before moves a stream's "truncated" mark, written by the log's
 * writer together with a notification event in the tenant's
 * STORE_DELETED_STREAM, and the reads skip the revisions below the mark.
 * The log itself is never rewritten.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <sluice/errors.h>

#include "log.h"
#include "store_internal.h"

int
store_trunc_put(
    store *s, MDB_txn *txn, const uint8_t *key, size_t hlen, uint64_t tb)
{
	uint8_t val[8];
	MDB_val k = { hlen, (void *) key }, v = { 8, val };

	store_put_be64(val, tb);
	return mdb_put(txn, s->db_trunc, &k, &v, 0);
}

int
store_trunc_get(
    store *s, MDB_txn *txn, const uint8_t *key, size_t hlen, uint64_t *tb)
{
	return store_get_be64_txn(
	    txn, s->db_trunc, key, hlen, tb, "read stream truncation");
}

static msgpack_object
store_obj_str(const char *str, size_t len)
{
	msgpack_object o;

	memset(&o, 0, sizeof(o));
	o.type         = MSGPACK_OBJECT_STR;
	o.via.str.ptr  = str;
	o.via.str.size = (uint32_t) len;
	return o;
}

static msgpack_object
store_obj_u64(uint64_t u)
{
	msgpack_object o;

	memset(&o, 0, sizeof(o));
	o.type    = MSGPACK_OBJECT_POSITIVE_INTEGER;
	o.via.u64 = u;
	return o;
}

int
store_delete_mark(
    store_commit *c, uint64_t next_rev, uint64_t old_tb, uint64_t *tb)
{
	int sl = (int) c->stream_len;

	if (next_rev == 0)
		return store_fail(c, SL_ENOTFOUND,
		    "stream '%.*s' has no events", sl, c->stream);
	if (c->trunc == STORE_TRUNC_DELETE) {
		if (old_tb >= next_rev)
			return store_fail(c, SL_ENOTFOUND,
			    "stream '%.*s' is deleted: it shows no events "
			    "(its last revision is %" PRIu64 ")",
			    sl, c->stream, next_rev - 1);
		*tb = next_rev;
		return SL_OK;
	}
	*tb = c->truncate_before;
	if (*tb == 0 || *tb > next_rev)
		return store_fail(c, SL_EINVAL,
		    "truncate_before %" PRIu64 " is not a revision of stream "
		    "'%.*s' to truncate before: 1..%" PRIu64
		    " (its next revision)",
		    *tb, sl, c->stream, next_rev);
	if (*tb <= old_tb)
		return store_fail(c, SL_EINVAL,
		    "stream '%.*s' hides its revisions before %" PRIu64
		    " already",
		    sl, c->stream, old_tb);
	return SL_OK;
}

int
store_delete_encode(msgpack_sbuffer *buf, store_commit *c, uint64_t next_rev,
    uint64_t tb, uint64_t drev, uint8_t id[16])
{
	static const char dstream[] = STORE_DELETED_STREAM;
	msgpack_object_kv kv[3];
	msgpack_object    content;
	msgpack_packer    pk;
	ev_new            ev;

	kv[0].key = store_obj_str("stream", 6);
	kv[0].val = store_obj_str(c->stream, c->stream_len);
	kv[1].key = store_obj_str("revision", 8);
	kv[1].val = store_obj_u64(next_rev - 1);
	kv[2].key = store_obj_str("truncate_before", 15);
	kv[2].val = store_obj_u64(tb);
	memset(&content, 0, sizeof(content));
	content.type         = MSGPACK_OBJECT_MAP;
	content.via.map.size = 3;
	content.via.map.ptr  = kv;
	memset(&ev, 0, sizeof(ev));
	ev.type     = c->trunc == STORE_TRUNC_DELETE ? STORE_EV_STREAM_DELETED
	                                             : STORE_EV_STREAM_TRUNCATED;
	ev.type_len = strlen(ev.type);
	ev.generation = 1;
	ev_uuid_generate(ev.id);
	memcpy(id, ev.id, 16);
	ev.occurred_ns = ev_now_ns();
	ev.content     = &content;
	msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
	if (ev_encode(&pk, c->tenant, c->tenant_len, dstream,
	        sizeof(dstream) - 1, drev, &ev)
	    != SL_OK)
		return store_fail(
		    c, SL_EINTERNAL, "the notification cannot be encoded");
	return SL_OK;
}

void
store_write_delete(store *s, MDB_txn *txn, store_commit *c, uint8_t *key,
    size_t hlen, uint64_t next_rev, uint64_t pos)
{
	static const char dstream[] = STORE_DELETED_STREAM;
	uint8_t           dkey[STORE_KEY_MAX], id[16];
	size_t            dlen;
	uint64_t          old_tb, tb = 0, drev;
	int               mrc;

	if (store_trunc_get(s, txn, key, hlen, &old_tb) != SL_OK) {
		store_fail(c, SL_ESTORAGE,
		    "lmdb: cannot read the stream's truncation");
		return;
	}
	if (store_delete_mark(c, next_rev, old_tb, &tb) != SL_OK)
		return;
	if ((mrc = store_trunc_put(s, txn, key, hlen, tb)) != MDB_SUCCESS)
		goto lmdb_fail;

	/* The notification, the next revision of the tenant's deletions. */
	dlen = store_head_key(
	    dkey, c->tenant, c->tenant_len, dstream, sizeof(dstream) - 1);
	if (store_get_be64_txn(
	        txn, s->db_heads, dkey, dlen, &drev, "read stream head")
	    != SL_OK) {
		store_fail(c, SL_ESTORAGE,
		    "lmdb: cannot read the head of '%s'", dstream);
		return;
	}
	msgpack_sbuffer_clear(&s->enc);
	if (store_delete_encode(&s->enc, c, next_rev, tb, drev, id) != SL_OK)
		return;
	if ((mrc = store_put_encoded(s, txn, dkey, dlen, drev, pos)) != 0
	    || (mrc = store_put_head(s, txn, dkey, dlen, drev + 1)) != 0)
		goto lmdb_fail;

	c->rc              = SL_OK;
	c->first_position  = pos;
	c->first_revision  = drev;
	c->stream_revision = next_rev - 1;
	c->truncate_before = tb;
	return;

lmdb_fail:
	store_fail(c, store_map_err(mrc), "lmdb: %s", mdb_strerror(mrc));
}

int
store_mirror_delete(store *s, MDB_txn *txn, const ev_head *h,
    const void *data, size_t len)
{
	static const char dstream[] = STORE_DELETED_STREAM;
	ev_raw            raw;
	msgpack_unpacked  up;
	const char       *stream = NULL;
	size_t            slen   = 0;
	uint64_t          tb     = 0;
	uint8_t           key[STORE_KEY_MAX];
	int               rc = -1;

	if (h->stream_len != sizeof(dstream) - 1
	    || memcmp(h->stream, dstream, h->stream_len) != 0
	    || !((h->type_len == strlen(STORE_EV_STREAM_DELETED)
	             && memcmp(h->type, STORE_EV_STREAM_DELETED, h->type_len)
	                 == 0)
	        || (h->type_len == strlen(STORE_EV_STREAM_TRUNCATED)
	            && memcmp(h->type, STORE_EV_STREAM_TRUNCATED, h->type_len)
	                == 0)))
		return MDB_SUCCESS; /* not a deletion's notification */
	if (ev_peek_raw(data, len, &raw) != SL_OK)
		return -1;
	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, (const char *) raw.content,
	        raw.content_len, NULL)
	        == MSGPACK_UNPACK_SUCCESS
	    && up.data.type == MSGPACK_OBJECT_MAP) {
		for (uint32_t i = 0; i < up.data.via.map.size; i++) {
			const msgpack_object_kv *kv = &up.data.via.map.ptr[i];
			if (kv->key.type != MSGPACK_OBJECT_STR)
				continue;
			if (kv->key.via.str.size == 6
			    && memcmp(kv->key.via.str.ptr, "stream", 6) == 0
			    && kv->val.type == MSGPACK_OBJECT_STR) {
				stream = kv->val.via.str.ptr;
				slen   = kv->val.via.str.size;
			} else if (kv->key.via.str.size == 15
			    && memcmp(kv->key.via.str.ptr, "truncate_before", 15)
			        == 0
			    && kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
				tb = kv->val.via.u64;
			}
		}
		if (stream != NULL && store_id_ok(stream, slen) && tb > 0)
			rc = store_trunc_put(s, txn, key,
			    store_head_key(
			        key, h->tenant, h->tenant_len, stream, slen),
			    tb);
	}
	msgpack_unpacked_destroy(&up);
	return rc;
}

/* ---- what the reads hide ---- */

int
store_vis_init(store *s, MDB_txn *txn, store_vis *v)
{
	MDB_stat st;
	int      mrc = mdb_stat(txn, s->db_trunc, &st);

	v->klen = 0;
	v->tb   = 0;
	v->any  = false;
	if (mrc != MDB_SUCCESS) {
		log_error(
		    "store", "scan: stat truncated: %s", mdb_strerror(mrc));
		return SL_ESTORAGE;
	}
	v->any = st.ms_entries > 0;
	return SL_OK;
}

int
store_vis_hidden(store *s, MDB_txn *txn, store_vis *v, const void *data,
    size_t len, bool *hidden)
{
	ev_head h;
	size_t  klen;
	uint8_t key[STORE_KEY_MAX];

	*hidden = false;
	if (!v->any)
		return SL_OK;
	if (ev_peek(data, len, &h) != SL_OK) {
		log_error("store", "scan: a log record that is no event");
		return SL_ESTORAGE;
	}
	if (!store_id_ok(h.tenant, h.tenant_len)
	    || !store_id_ok(h.stream, h.stream_len))
		return SL_OK; /* no deletion can name it */
	klen = store_head_key(
	    key, h.tenant, h.tenant_len, h.stream, h.stream_len);
	if (klen != v->klen || memcmp(key, v->key, klen) != 0) {
		if (store_trunc_get(s, txn, key, klen, &v->tb) != SL_OK)
			return SL_ESTORAGE;
		memcpy(v->key, key, klen);
		v->klen = klen;
	}
	*hidden = h.revision < v->tb;
	return SL_OK;
}

int
store_stream_first_revision(
    store *s, const char *tenant, const char *stream, uint64_t *out)
{
	MDB_txn *txn;
	uint8_t  key[STORE_KEY_MAX];
	size_t   tl, sl;
	int      rc;

	*out = 0;
	if (s == NULL || tenant == NULL || stream == NULL)
		return SL_EINVAL;
	tl = strlen(tenant);
	sl = strlen(stream);
	if (!store_id_ok(tenant, tl) || !store_id_ok(stream, sl))
		return SL_OK;
	if ((rc = store_read_begin(s, &txn, "stream truncation")) != SL_OK)
		return rc;
	rc = store_trunc_get(
	    s, txn, key, store_head_key(key, tenant, tl, stream, sl), out);
	mdb_txn_abort(txn);
	return rc;
}
