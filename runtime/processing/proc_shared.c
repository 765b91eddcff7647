/*
 * A projection's shared state (ABI 1.3, EventStoreDB's $initShared /
 * bi-state): one document beside the keys' states, handed to on() and
 * created() through host->shared_state. The processor keeps it packed
 * (p->shared); an event's handler works on a loaded copy that replaces it
 * only when the event succeeded, so a failed event leaves no trace. It is
 * stored with the batch that changed it: a read-model projection's as a
 * record of its generation ("shared:<name>:<gen>"), an emitting one's in
 * its checkpoint record.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proc_internal.h"

bool
proc_shared_begin(processor *p, sl_state *st, sl_context *ctx)
{
	const proj_def *d = p->def;
	if (d->shared_initial == NULL)
		return false;
	state_init(st);
	int rc = p->shared != NULL
	    ? state_load(st, p->shared, p->shared_len)
	    : state_load(st, d->shared_initial, d->shared_initial_len);
	if (rc != SL_OK) {
		state_free(st);
		return false;
	}
	ctx->shared = st;
	return true;
}

int
proc_shared_end(batch_ctx *b, sl_state *st, sl_context *ctx, bool keep)
{
	processor *p = b->p;
	if (ctx->shared == NULL)
		return SL_OK;
	ctx->shared = NULL;
	int rc      = SL_OK;
	if (keep) {
		p->buf.size = 0;
		msgpack_packer pk;
		msgpack_packer_init(&pk, &p->buf, msgpack_sbuffer_write);
		state_pack(st, &pk);
		if (p->shared == NULL || p->shared_len != p->buf.size
		    || memcmp(p->shared, p->buf.data, p->buf.size) != 0) {
			char *copy = malloc(p->buf.size + 1);
			if (copy == NULL) {
				snprintf(b->reason, sizeof(b->reason),
				    "keeping the shared state: out of memory");
				b->storage = true;
				rc         = SL_ENOMEM;
			} else {
				memcpy(copy, p->buf.data, p->buf.size);
				free(p->shared);
				p->shared       = copy;
				p->shared_len   = p->buf.size;
				p->shared_dirty = true;
			}
		}
	}
	state_free(st);
	return rc;
}

void
proc_shared_set(processor *p, const void *data, size_t len)
{
	free(p->shared);
	p->shared       = NULL;
	p->shared_len   = 0;
	p->shared_dirty = false;
	if (data != NULL && (p->shared = malloc(len + 1)) != NULL) {
		memcpy(p->shared, data, len);
		p->shared_len = len;
	}
}

/* "shared:<name>:<gen, 20 digits>": no key is the prefix of another. */
static void
shared_key(const processor *p, uint64_t gen, char *out, size_t len)
{
	snprintf(out, len, "shared:%s:%020" PRIu64, p->name, gen);
}

static int
shared_cb(void *arg, const char *key, size_t klen, const void *data,
    size_t len)
{
	(void) key;
	(void) klen;
	proc_shared_set(arg, data, len);
	return 0;
}

typedef struct shared_copy {
	char  *data;
	size_t len;
} shared_copy;

static int
copy_shared_cb(
    void *arg, const char *key, size_t klen, const void *data, size_t len)
{
	(void) key;
	(void) klen;
	shared_copy *c = arg;
	if ((c->data = malloc(len + 1)) == NULL)
		return SL_ENOMEM;
	memcpy(c->data, data, len);
	c->len = len;
	return 0;
}

int
proc_shared_read_rm(
    rmstore *rm, const char *projection_id, char **data, size_t *len)
{
	char     key[96];
	uint64_t gen;
	MDB_txn *txn;
	*data = NULL;
	*len  = 0;
	if (mdb_txn_begin(rm_env(rm), NULL, MDB_RDONLY, &txn) != 0)
		return SL_ESTORAGE;
	/* the served generation's record (a rebuild writes the next one's) */
	int rc = rm_active_read(rm, txn, projection_id, &gen);
	if (rc == SL_OK) {
		snprintf(key, sizeof(key), "shared:%s:%020" PRIu64,
		    projection_id, gen);
		shared_copy c = { NULL, 0 };
		rc            = rm_blob_scan(rm, txn, key, copy_shared_cb, &c);
		if (rc == SL_OK && c.data == NULL)
			rc = SL_ENOTFOUND;
		*data = c.data;
		*len  = c.len;
	}
	mdb_txn_abort(txn);
	return rc;
}

int
proc_shared_load_rm(processor *p, MDB_txn *txn)
{
	char key[96];
	proc_shared_set(p, NULL, 0);
	if (p->def->shared_initial == NULL)
		return SL_OK;
	shared_key(p, p->gen, key, sizeof(key));
	return rm_blob_scan(p->rm, txn, key, shared_cb, p);
}

int
proc_shared_write_rm(processor *p, MDB_txn *txn)
{
	char key[96];
	if (!p->shared_dirty)
		return SL_OK;
	shared_key(p, p->gen, key, sizeof(key));
	return rm_blob_write(
	    p->rm, txn, key, strlen(key), p->shared, p->shared_len);
}

int
proc_shared_drop_rm(processor *p, MDB_txn *txn, uint64_t gen)
{
	char key[96];
	shared_key(p, gen, key, sizeof(key));
	return rm_blob_del(p->rm, txn, key, strlen(key));
}
