/*
 * The event log (see store.h): an LMDB environment written by one writer
 * thread that group-commits every queued commit in one write transaction,
 * and read by scans in short read transactions on the callers' threads.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sluice/errors.h>

#include "fsutil.h"
#include "log.h"
#include "monotime.h"
#include "store_internal.h"

/* LMDB result to sl_err: a full map is its own code so that an operator
 * knows to raise map_size; other engine failures are SL_ESTORAGE. */
int
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

int
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
size_t
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
bool
store_id_ok(const char *id, size_t len)
{
	return id != NULL && len > 0 && len <= SL_MAX_ID_LEN
	    && memchr(id, '\0', len) == NULL;
}

int
store_get_be64_txn(MDB_txn *txn, MDB_dbi dbi, const uint8_t *key, size_t klen,
    uint64_t *out, const char *what)
{
	MDB_val k = { klen, (void *) key }, v;
	int     mrc;

	*out = 0;
	mrc  = mdb_get(txn, dbi, &k, &v);
	if (mrc == MDB_NOTFOUND)
		return SL_OK;
	if (mrc == MDB_SUCCESS && v.mv_size == 8) {
		*out = store_get_be64(v.mv_data);
		return SL_OK;
	}
	log_error("store", "%s: %s", what,
	    mrc == MDB_SUCCESS ? "corrupt value" : mdb_strerror(mrc));
	return SL_ESTORAGE;
}

/* A put through cursor c, or through mdb_put when there is none. */
static int
store_put_kv(MDB_txn *txn, MDB_dbi dbi, MDB_cursor *c, MDB_val *k, MDB_val *v,
    unsigned flags)
{
	return c != NULL ? mdb_cursor_put(c, k, v, flags)
	                 : mdb_put(txn, dbi, k, v, flags);
}

/* Put the record data[0..len) at position pos and index it as revision rev
 * of the stream whose head key is key[0..hlen); through the cursors of c
 * when c is not NULL. */
static int
store_put_record_c(store *s, MDB_txn *txn, store_cursors *c, uint8_t *key,
    size_t hlen, uint64_t rev, uint64_t pos, const void *data, size_t len)
{
	uint8_t pkey[8], pval[8];
	MDB_val k, v;
	int     mrc;

	store_put_be64(pkey, pos);
	k.mv_data = pkey;
	k.mv_size = 8;
	v.mv_data = (void *) data;
	v.mv_size = len;
	/* Positions only grow, so APPEND: no page splits in the middle, and
	 * a duplicate position fails loudly. */
	if ((mrc = store_put_kv(txn, s->db_log, c != NULL ? c->log : NULL, &k,
	         &v, MDB_APPEND))
	    != 0)
		return mrc;
	key[hlen] = 0;
	store_put_be64(key + hlen + 1, rev);
	store_put_be64(pval, pos);
	k.mv_data = key;
	k.mv_size = hlen + 1 + 8;
	v.mv_data = pval;
	v.mv_size = 8;
	return store_put_kv(
	    txn, s->db_streams, c != NULL ? c->streams : NULL, &k, &v, 0);
}

static int
store_put_record(store *s, MDB_txn *txn, uint8_t *key, size_t hlen,
    uint64_t rev, uint64_t pos, const void *data, size_t len)
{
	return store_put_record_c(
	    s, txn, NULL, key, hlen, rev, pos, data, len);
}

int
store_cursors_open(store *s, MDB_txn *txn, store_cursors *out)
{
	int mrc;
	out->log = out->streams = NULL;
	if ((mrc = mdb_cursor_open(txn, s->db_log, &out->log)) != 0)
		return mrc;
	if ((mrc = mdb_cursor_open(txn, s->db_streams, &out->streams)) != 0) {
		mdb_cursor_close(out->log);
		out->log = NULL;
	}
	return mrc;
}

void
store_cursors_close(store_cursors *c)
{
	if (c->log != NULL)
		mdb_cursor_close(c->log);
	if (c->streams != NULL)
		mdb_cursor_close(c->streams);
	c->log = c->streams = NULL;
}

int
store_put_encoded_c(store *s, store_cursors *c, uint8_t *key, size_t hlen,
    uint64_t rev, uint64_t pos)
{
	return store_put_record_c(
	    s, NULL, c, key, hlen, rev, pos, s->enc.data, s->enc.size);
}

int
store_put_encoded(store *s, MDB_txn *txn, uint8_t *key, size_t hlen,
    uint64_t rev, uint64_t pos)
{
	return store_put_record(
	    s, txn, key, hlen, rev, pos, s->enc.data, s->enc.size);
}

int
store_put_head(
    store *s, MDB_txn *txn, const uint8_t *key, size_t hlen, uint64_t next_rev)
{
	uint8_t hval[8];
	MDB_val k = { hlen, (void *) key }, v = { 8, hval };

	store_put_be64(hval, next_rev);
	return mdb_put(txn, s->db_heads, &k, &v, 0);
}

int
store_check_expected(store_commit *c, uint64_t next_rev)
{
	if (c->expected == STORE_EXPECT_ANY
	    || (c->expected == STORE_EXPECT_NO_STREAM && next_rev == 0)
	    || (c->expected != STORE_EXPECT_NO_STREAM && next_rev > 0
	        && c->expected == next_rev - 1))
		return SL_OK;
	c->stream_revision
	    = next_rev == 0 ? STORE_EXPECT_NO_STREAM : next_rev - 1;
	if (next_rev == 0)
		return store_fail(c, SL_EREVISION,
		    "stream '%.*s' has no events", (int) c->stream_len,
		    c->stream);
	return store_fail(c, SL_EREVISION,
	    "stream '%.*s' is at revision %" PRIu64, (int) c->stream_len,
	    c->stream, next_rev - 1);
}

int
store_commit_check(store *s, store_commit *c)
{
	if (!store_id_ok(c->tenant, c->tenant_len)
	    || !store_id_ok(c->stream, c->stream_len))
		return store_fail(c, SL_EINVAL,
		    "tenant and stream ids must be 1..%d bytes without NUL",
		    SL_MAX_ID_LEN);
	if (c->tenant_len + c->stream_len + 10 > s->max_key)
		return store_fail(c, SL_EINVAL,
		    "tenant and stream ids take %zu bytes together (limit "
		    "%zu)",
		    c->tenant_len + c->stream_len, s->max_key - 10);
	if (c->trunc != STORE_TRUNC_NONE && c->owner == NULL
	    && c->stream[0] == '$')
		return store_fail(c, SL_EINVAL,
		    "stream '%.*s' is a system stream ('$'), written and "
		    "deleted only by the runtime",
		    (int) c->stream_len, c->stream);
	return SL_OK;
}

/* Encode and put events[i] of a commit as revision rev at position pos. */
static int
store_write_event(store *s, MDB_txn *txn, store_commit *c, uint8_t *key,
    size_t hlen, size_t i, uint64_t rev, uint64_t pos)
{
	int rc, mrc;

	msgpack_sbuffer_clear(&s->enc);
	rc = ev_encode_sbuf(&s->enc, c->tenant, c->tenant_len, c->stream,
	    c->stream_len, rev, &c->events[i]);
	if (rc == SL_ENOMEM)
		return store_fail(
		    c, rc, "events[%zu]: out of memory encoding it", i);
	if (rc != SL_OK) {
		const char *nul = ev_new_nul_field(&c->events[i]);
		if (nul != NULL)
			return store_fail(c, rc,
			    "events[%zu]: field '%s' contains a NUL byte", i,
			    nul);
		return store_fail(c, rc, "events[%zu] cannot be encoded", i);
	}
	mrc = store_put_encoded(s, txn, key, hlen, rev, pos);
	if (mrc != MDB_SUCCESS)
		return store_fail(
		    c, store_map_err(mrc), "lmdb: %s", mdb_strerror(mrc));
	return SL_OK;
}

/*
 * Write one commit (or deletion) inside the group transaction `parent`,
 * in a nested transaction of its own. Why nested: a commit that fails
 * half way (map full after some events were put) must leave no trace
 * while the commits before it in the group stay written; aborting the
 * child restores the parent exactly, which is simpler and cheaper than
 * aborting and replaying the whole group. The child also sees the earlier
 * commits of the group, so their new heads count in this commit's
 * revision check. On success advances *pos and fills the commit's
 * results.
 */
static void
store_write_one(store *s, MDB_txn *parent, store_commit *c, uint64_t *pos)
{
	uint8_t  key[STORE_KEY_MAX];
	size_t   hlen;
	MDB_txn *txn      = NULL;
	uint64_t next_rev = 0;
	int      mrc, rc;

	if (store_commit_check(s, c) != SL_OK)
		return;
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
	if (store_get_be64_txn(
	        txn, s->db_heads, key, hlen, &next_rev, "read stream head")
	    != SL_OK) {
		store_fail(
		    c, SL_ESTORAGE, "lmdb: cannot read the stream head");
		goto abort;
	}
	/* Expected revision: the revision of the stream's last event. */
	if (store_check_expected(c, next_rev) != SL_OK)
		goto abort;

	if (c->trunc != STORE_TRUNC_NONE) {
		store_write_delete(s, txn, c, key, hlen, next_rev, *pos);
		if (c->rc != SL_OK)
			goto abort;
	} else {
		for (size_t i = 0; i < c->n_events; i++)
			if (store_write_event(s, txn, c, key, hlen, i,
			        next_rev + i, *pos + i)
			    != SL_OK)
				goto abort;
		mrc = store_put_head(
		    s, txn, key, hlen, next_rev + c->n_events);
		if (mrc != MDB_SUCCESS)
			goto lmdb_fail;
	}
	mrc = mdb_txn_commit(txn); /* into the parent; frees txn */
	txn = NULL;
	if (mrc != MDB_SUCCESS)
		goto lmdb_fail;

	if (c->trunc != STORE_TRUNC_NONE) {
		*pos += 1; /* the notification */
		return;
	}
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

/* The owner check of store_write_one, on the mirror (which holds the
 * "owners" records; claims are in memory). */
static int
store_be_owner_check(store *s, store_commit *c)
{
	MDB_txn *txn;
	int      rc = store_read_begin(s, &txn, "owner check");
	if (rc != SL_OK)
		return store_fail(c, rc, "lmdb: cannot read the owners");
	rc = store_owner_check_txn(s, txn, c->tenant, c->tenant_len, c->stream,
	    c->stream_len, c->owner, c->message, sizeof(c->message));
	mdb_txn_abort(txn);
	if (rc != SL_OK)
		c->rc = rc;
	return rc;
}

/* Count and acknowledge one commit (done() may free c). */
static void
store_ack(store *s, store_commit *c, int64_t now)
{
	c->next = NULL;
	if (c->rc == SL_OK) {
		__atomic_fetch_add(&s->commits_ok, 1, __ATOMIC_RELAXED);
		hist_observe(&s->commit_latency,
		    now > c->submit_ns ? (uint64_t) (now - c->submit_ns) : 0);
	} else {
		__atomic_fetch_add(&s->commits_refused, 1, __ATOMIC_RELAXED);
	}
	if (c->done != NULL)
		c->done(c, c->arg);
}

/* The position after a written commit's events. */
static uint64_t
store_commit_end(const store_commit *c)
{
	/* a deletion writes its notification */
	return c->first_position
	    + (c->trunc != STORE_TRUNC_NONE ? 1 : c->n_events);
}

/* Take off s's await list the commits the mirror holds now (mu held):
 * returned as a list linked by next. */
static store_commit *
store_await_take(store *s)
{
	store_commit *done = NULL, **t = &done;

	while (s->await_head != NULL
	    && store_commit_end(s->await_head) <= s->next_pos) {
		*t            = s->await_head;
		s->await_head = s->await_head->next;
		t             = &(*t)->next;
	}
	*t = NULL;
	if (s->await_head == NULL)
		s->await_tail = NULL;
	return done;
}

static void
store_ack_list(store *s, store_commit *list)
{
	int64_t now = mono_ns();
	for (store_commit *c = list, *next; c != NULL; c = next) {
		next = c->next;
		store_ack(s, c, now);
	}
}

/*
 * One group on a log of record elsewhere (s->be): what the store can
 * refuse by itself is refused here (ids, ownership), the commits go to
 * the backend as one transaction, each emit batch as one of its own. A written commit is acknowledged once the mirror holds
 * its positions (store_mirror_append), so that a client that reads from
 * this node after its ack sees its events, as with LMDB; refusals at
 * once.
 */
static void
store_write_group_be(store *s, store_commit *group, store_emit *egroup)
{
	store_commit **v = NULL, *c, *next, *ready;
	store_emit    *e, *enext;
	size_t         n = 0, cap = 0;
	uint64_t       events = 0;
	int64_t        now;

	/* each emit batch its own transaction there, under its lease */
	for (e = egroup; e != NULL; e = enext) {
		enext             = e->next;
		e->next           = NULL;
		e->first_position = 0;
		if (store_emit_validate(s, e) == SL_OK)
			s->be->write_emit(s->be_ctx, e);
		if (e->rc == SL_OK && e->n_appends > 0) {
			__atomic_fetch_add(&s->events_appended, e->n_appends,
			    __ATOMIC_RELAXED);
			hist_observe(&s->group_events, e->n_appends);
		}
		if (e->done != NULL)
			e->done(e, e->arg);
	}
	for (c = group; c != NULL; c = c->next) {
		c->first_position = 0;
		if (store_commit_check(s, c) != SL_OK)
			continue;
		if (store_be_owner_check(s, c) != SL_OK)
			continue;
		if (n == cap) {
			size_t         nc = cap ? 2 * cap : 64;
			store_commit **nv = realloc(v, nc * sizeof(*v));
			if (nv == NULL) {
				store_fail(c, SL_ENOMEM, "out of memory");
				continue;
			}
			v   = nv;
			cap = nc;
		}
		v[n++] = c;
	}
	bool at_once = n > 0 && s->be->write_group(s->be_ctx, v, n);
	free(v);

	/* refusals now; the written ones when the mirror holds them (the
	 * follower may acknowledge them as soon as mu is released), or now
	 * when the backend says so */
	store_commit *now_list = NULL, **rt = &now_list;
	bool          wrote   = false;
	now                   = mono_ns();
	pthread_mutex_lock(&s->mu);
	for (c = group; c != NULL; c = next) {
		next    = c->next;
		c->next = NULL;
		if (c->rc == SL_OK) {
			wrote = true;
			events += store_commit_end(c) - c->first_position;
		}
		if (c->rc != SL_OK || at_once) { /* acknowledged now */
			*rt = c;
			rt  = &c->next;
			continue;
		}
		if (s->await_tail != NULL)
			s->await_tail->next = c;
		else
			s->await_head = c;
		s->await_tail = c;
	}
	if (wrote)
		s->txn_count++;
	ready = store_await_take(s);
	pthread_mutex_unlock(&s->mu);
	if (wrote) {
		__atomic_fetch_add(&s->events_appended, events, __ATOMIC_RELAXED);
		hist_observe(&s->group_events, events);
	}
	for (c = now_list; c != NULL; c = next) {
		next = c->next;
		store_ack(s, c, now);
	}
	store_ack_list(s, ready);
}

/* Fail every commit and emit batch of a group that is still SL_OK. */
static void
store_fail_group(store_group *g, int code, const char *what, const char *why)
{
	for (store_commit *c = g->commits; c != NULL; c = c->next)
		if (c->rc == SL_OK)
			store_fail(c, code, "lmdb: %s: %s", what, why);
	for (store_emit *e = g->emits; e != NULL; e = e->next)
		if (e->rc == SL_OK)
			store_emit_fail(e, code, "lmdb: %s: %s", what, why);
}

/*
 * Write one group in one transaction: commits and emit batches, each
 * kind linked by ->next, written in arrival order (see q_seq). Fills g's
 * positions; acknowledges nothing (store_ack_group does, once durable).
 */
static void
store_write_group(store *s, store_group *g)
{
	MDB_txn      *txn;
	store_commit *c;
	store_emit   *e;
	uint64_t      pos, start;
	size_t        n_ok = 0;
	int           mrc;

	start    = s->write_pos;
	pos      = start;
	g->start = start;
	g->end   = start;
	g->wrote = false;

	if (__atomic_load_n(&s->failed, __ATOMIC_ACQUIRE)) {
		store_fail_group(g, SL_ESTORAGE, "log",
		    "an earlier write or sync of the log failed; restart "
		    "sluiced");
		return;
	}
	mrc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (mrc != MDB_SUCCESS) {
		log_error("store", "begin write txn: %s", mdb_strerror(mrc));
		store_fail_group(
		    g, store_map_err(mrc), "begin", mdb_strerror(mrc));
		txn = NULL;
	}
	c = g->commits;
	e = g->emits;
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
	if (txn == NULL)
		return;
	if (n_ok == 0) {
		mdb_txn_abort(txn); /* every commit refused: nothing to sync */
		return;
	}
	/* Data pages written and synced, the meta page written: durable
	 * only after the next sync when the env has MDB_NOMETASYNC. */
	mrc = mdb_txn_commit(txn);
	if (mrc != MDB_SUCCESS) {
		log_error("store", "commit of %zu commits failed: %s", n_ok,
		    mdb_strerror(mrc));
		store_fail_group(
		    g, store_map_err(mrc), "commit", mdb_strerror(mrc));
		/* The groups waiting for their sync learn of a write error
		 * that this commit's fdatasync met from their own sync: it
		 * goes through s->sync_fd (see store_sync_log). */
		return;
	}
	s->write_pos = pos;
	g->end       = pos;
	g->wrote     = true;
	g->seq       = s->commit_seq + 1;
	__atomic_store_n(&s->commit_seq, g->seq, __ATOMIC_RELEASE);
}

/*
 * Make every committed transaction durable: the meta pages that
 * MDB_NOMETASYNC left unsynced. Through a descriptor of our own, not
 * LMDB's: Linux reports a write-back error once per open file, so an
 * error that LMDB's fdatasync in a later commit took is still reported
 * here. A failure is for good (s->failed).
 */
static int
store_sync_log(store *s)
{
	if (fdatasync(s->sync_fd) == 0)
		return MDB_SUCCESS;
	int err = errno;
	log_error("store",
	    "sync of the log failed: %s; refusing writes until "
	    "restart",
	    strerror(err));
	__atomic_store_n(&s->failed, true, __ATOMIC_RELEASE);
	return err;
}

/*
 * Publish a durable group's head and acknowledge its commits, in the
 * order the groups were written. mrc: the result of the sync that made it
 * durable (a failure fails what it wrote, and so does an earlier one).
 */
static void
store_ack_group(store *s, store_group *g, int mrc)
{
	store_commit *c, *next;
	store_emit   *e, *enext;

	if (g->wrote
	    && (mrc != MDB_SUCCESS
	        || __atomic_load_n(&s->failed, __ATOMIC_ACQUIRE))) {
		store_fail_group(g, SL_ESTORAGE, "sync",
		    mrc != MDB_SUCCESS ? mdb_strerror(mrc)
		                       : "an earlier sync failed");
	} else if (g->wrote) {
		pthread_mutex_lock(&s->mu);
		s->next_pos = g->end;
		s->txn_count++;
		pthread_cond_broadcast(&s->head_cv);
		pthread_mutex_unlock(&s->mu);
		/* positions are gap-free: one per event written */
		__atomic_fetch_add(
		    &s->events_appended, g->end - g->start, __ATOMIC_RELAXED);
		hist_observe(&s->group_events, g->end - g->start);
	}

	/* Acknowledge only now that the head is published: a client that
	 * reads right after its ack sees its events. done() may free c. */
	int64_t now = mono_ns();
	for (c = g->commits; c != NULL; c = next) {
		next = c->next;
		store_ack(s, c, now);
	}
	for (e = g->emits; e != NULL; e = enext) {
		enext   = e->next;
		e->next = NULL;
		if (e->done != NULL)
			e->done(e, e->arg);
	}
}

/*
 * After the writer wrote g. Without sync: acknowledge now. With sync and
 * nothing else to write or answer (one client), the writer syncs and
 * acknowledges g itself: no hand-off, and a done() runs on the writer (so
 * that it can hold the writer, as the tests' gates do). Otherwise g joins
 * the groups waiting for the syncer thread and the writer goes on to the
 * next group at once. The syncer answers g after the next sync of the
 * file: that next group's commit (its fdatasync) when the writer is
 * writing one, else a sync of its own; one sync answers every group
 * written meanwhile.
 */
static void
store_finish_group(store *s, store_group *g)
{
	if (!s->sync) {
		store_ack_group(s, g, MDB_SUCCESS);
		return;
	}
	pthread_mutex_lock(&s->mu);
	/* the write ended: a syncer waiting for it goes on (below, or with
	 * the broadcast that hands it g) */
	if (s->txn_active) {
		s->txn_active = false;
		s->writes_ended++;
	}
	if (s->pend_n == 0 && !s->syncer_busy && s->q_head == NULL
	    && s->qe_head == NULL) {
		pthread_mutex_unlock(&s->mu);
		int mrc = g->wrote ? store_sync_log(s) : MDB_SUCCESS;
		/* after the syncer's acks of the groups before g */
		pthread_mutex_lock(&s->ack_mu);
		store_ack_group(s, g, mrc);
		pthread_mutex_unlock(&s->ack_mu);
		return;
	}
	/* a syncer waiting for this write (txn_active) is told with the
	 * broadcast below that hands it g, or here when there is no room
	 * for g yet (it makes that room) */
	if (s->pend_n == STORE_PEND_MAX)
		pthread_cond_broadcast(&s->sync_cv);
	while (s->pend_n == STORE_PEND_MAX)
		pthread_cond_wait(&s->sync_cv, &s->mu);
	s->pend[(s->pend_head + s->pend_n) % STORE_PEND_MAX] = *g;
	s->pend_n++;
	pthread_cond_broadcast(&s->sync_cv);
	pthread_mutex_unlock(&s->mu);
}

/* The syncer (durable logs only): one sync for every group waiting, then
 * their acknowledgements in order. Exits when the writer has. */
static void *
store_syncer_main(void *arg)
{
	store      *s = arg;
	store_group got[STORE_PEND_MAX];

	for (;;) {
		size_t n;
		bool   wrote = false;

		pthread_mutex_lock(&s->mu);
		while (s->pend_n == 0 && !s->writer_done)
			pthread_cond_wait(&s->sync_cv, &s->mu);
		if (s->pend_n == 0) {
			pthread_mutex_unlock(&s->mu);
			break;
		}
		for (n = 0; n < s->pend_n; n++)
			got[n] = s->pend[(s->pend_head + n) % STORE_PEND_MAX];
		s->pend_head   = (s->pend_head + n) % STORE_PEND_MAX;
		s->pend_n      = 0;
		s->syncer_busy = true;
		pthread_cond_broadcast(&s->sync_cv); /* room for the writer */

		/* A group the writer has committed another transaction after
		 * is durable already: that commit's fdatasync (which
		 * succeeded) came after the group's meta page was written.
		 * While the writer is writing the next group, wait for its
		 * commit instead of syncing beside it: one sync per group
		 * instead of two, and the wait is about as long (that
		 * commit's fdatasync and ours would end together). Only
		 * when the writer is idle, or its write failed or committed
		 * nothing, is the sync made here: it waits for one write at
		 * most (a run of refused commits commits nothing). */
		uint64_t ended = s->writes_ended;
		for (;;) {
			uint64_t committed = __atomic_load_n(
			    &s->commit_seq, __ATOMIC_ACQUIRE);
			wrote = false;
			for (size_t i = 0; i < n; i++)
				wrote = wrote
				    || (got[i].wrote
				        && got[i].seq >= committed);
			if (!wrote || !s->txn_active
			    || s->writes_ended != ended)
				break;
			pthread_cond_wait(&s->sync_cv, &s->mu);
		}
		pthread_mutex_unlock(&s->mu);
		int mrc = wrote ? store_sync_log(s) : MDB_SUCCESS;
		/* Durable: the writer may answer its next group itself now,
		 * after these (ack_mu). */
		pthread_mutex_lock(&s->ack_mu);
		pthread_mutex_lock(&s->mu);
		s->syncer_busy = false;
		pthread_mutex_unlock(&s->mu);
		for (size_t i = 0; i < n; i++)
			store_ack_group(s, &got[i], mrc);
		pthread_mutex_unlock(&s->ack_mu);
	}
	return NULL;
}

static void *
store_writer_main(void *arg)
{
	store *s = arg;

	for (;;) {
		store_group    g  = { 0 };
		store_commit **ct = &g.commits;
		store_emit   **et = &g.emits;
		size_t         n;

		pthread_mutex_lock(&s->mu);
		while (s->q_head == NULL && s->qe_head == NULL && !s->closing) {
			s->writer_waiting = true;
			pthread_cond_wait(&s->work_cv, &s->mu);
		}
		s->writer_waiting = false;
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
		/* until store_finish_group (see txn_active) */
		s->txn_active = s->sync && s->be == NULL;
		pthread_mutex_unlock(&s->mu);

		if (s->be != NULL) {
			store_write_group_be(s, g.commits, g.emits);
		} else {
			store_write_group(s, &g);
			store_finish_group(s, &g);
		}
	}
	pthread_mutex_lock(&s->mu);
	s->writer_done = true;
	pthread_cond_broadcast(&s->sync_cv);
	pthread_mutex_unlock(&s->mu);
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
	    || (mrc = mdb_dbi_open(txn, "truncated", MDB_CREATE, &s->db_trunc))
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

static void store_stats_init(store *s);

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
	s->sync_fd = -1;
	msgpack_sbuffer_init(&s->enc);
	store_stats_init(s);
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->ack_mu, NULL);
	pthread_mutex_init(&s->claims_mu, NULL);
	pthread_mutex_init(&s->mirror_mu, NULL);
	pthread_condattr_init(&ca);
	/* store_wait's timeout must not jump with the wall clock. */
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->head_cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&s->work_cv, NULL);
	pthread_cond_init(&s->done_cv, NULL);
	pthread_cond_init(&s->sync_cv, NULL);

	/* Durable: LMDB syncs the data pages in each commit and leaves the
	 * meta page to the next sync, which the writer or the syncer makes
	 * before any acknowledgement (store_finish_group). */
	s->sync = sync;
	flags |= sync ? MDB_NOMETASYNC : MDB_NOSYNC;
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
	/* the daemon's user's only (or its access group's), also when an
	 * older version or a looser umask made them */
	if (fs_secure_dir(path) != 0 || fs_secure_lmdb(path) != 0)
		log_warn("store", "cannot restrict the modes of %s: %s", path,
		    strerror(errno));
	/* Free reader slots left by processes that died holding them. */
	mdb_reader_check(s->env, &dead);
	if (dead > 0)
		log_warn("store", "cleared %d stale reader slots", dead);
	s->max_key = (size_t) mdb_env_get_maxkeysize(s->env);

	if ((rc = store_init_dbs(s)) != SL_OK)
		goto fail;
	s->write_pos = s->next_pos;
	if (sync && (mrc = mdb_env_sync(s->env, 1)) != MDB_SUCCESS)
		goto lmdb_fail;
	if (sync) {
		char data[4200];
		snprintf(data, sizeof(data), "%s/data.mdb", path);
		s->sync_fd = open(data, O_RDONLY | O_CLOEXEC);
		if (s->sync_fd < 0) {
			log_error(
			    "store", "open %s: %s", data, strerror(errno));
			rc = SL_ESTORAGE;
			goto fail;
		}
	}
	if (sync
	    && pthread_create(&s->syncer, NULL, store_syncer_main, s) != 0) {
		log_error("store", "cannot start the syncer thread");
		rc = SL_ENOMEM;
		goto fail;
	}
	if (pthread_create(&s->writer, NULL, store_writer_main, s) != 0) {
		log_error("store", "cannot start the writer thread");
		if (sync) {
			pthread_mutex_lock(&s->mu);
			s->writer_done = true;
			pthread_cond_broadcast(&s->sync_cv);
			pthread_mutex_unlock(&s->mu);
			pthread_join(s->syncer, NULL);
		}
		rc = SL_ENOMEM;
		goto fail;
	}
	/* named for profiles (perf, top -H) */
	if (sync)
		pthread_setname_np(s->syncer, "log-syncer");
	pthread_setname_np(s->writer, "log-writer");
	log_info("store", "opened %s at position %" PRIu64 "%s", path,
	    s->next_pos, sync ? "" : " (sync off)");
	*out = s;
	return SL_OK;

lmdb_fail:
	log_error("store", "open %s: %s", path, mdb_strerror(mrc));
	rc = mrc == ENOMEM ? SL_ENOMEM : SL_ESTORAGE;
fail:
	if (s->sync_fd >= 0)
		close(s->sync_fd);
	if (s->env != NULL)
		mdb_env_close(s->env);
	pthread_cond_destroy(&s->head_cv);
	pthread_cond_destroy(&s->work_cv);
	pthread_cond_destroy(&s->done_cv);
	pthread_cond_destroy(&s->sync_cv);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->ack_mu);
	pthread_mutex_destroy(&s->claims_mu);
	pthread_mutex_destroy(&s->mirror_mu);
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
	/* The writer drains the queue before it exits, the syncer the
	 * groups the writer left it. */
	pthread_join(s->writer, NULL);
	if (s->sync) {
		pthread_join(s->syncer, NULL);
		close(s->sync_fd);
	}
	if (s->be != NULL) {
		s->be->close(s->be_ctx);
		/* written to the log of record, which is what an ack
		 * promises; this mirror catches up when it opens again */
		pthread_mutex_lock(&s->mu);
		store_commit *left = s->await_head;
		s->await_head = s->await_tail = NULL;
		pthread_mutex_unlock(&s->mu);
		store_ack_list(s, left);
	}

	mdb_env_close(s->env);
	pthread_cond_destroy(&s->head_cv);
	pthread_cond_destroy(&s->work_cv);
	pthread_cond_destroy(&s->done_cv);
	pthread_cond_destroy(&s->sync_cv);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->ack_mu);
	for (size_t i = 0; i < s->n_claims; i++)
		store_claim_free(&s->claims[i]);
	free(s->claims);
	pthread_mutex_destroy(&s->claims_mu);
	pthread_mutex_destroy(&s->mirror_mu);
	msgpack_sbuffer_destroy(&s->enc);
	free(s);
}

void
store_set_backend(store *s, const store_backend *be, void *ctx)
{
	pthread_mutex_lock(&s->mu);
	s->be     = be;
	s->be_ctx = ctx;
	pthread_mutex_unlock(&s->mu);
}

void
store_fail_queued(store *s, int code, const char *msg)
{
	pthread_mutex_lock(&s->mu);
	store_commit *list = s->q_head;
	s->q_head = s->q_tail = NULL;
	pthread_mutex_unlock(&s->mu);
	for (store_commit *c = list; c != NULL; c = c->next)
		store_fail(c, code, "%s", msg);
	store_ack_list(s, list);
}

bool
store_closing(store *s)
{
	pthread_mutex_lock(&s->mu);
	bool closing = s->closing;
	pthread_mutex_unlock(&s->mu);
	return closing;
}

bool
store_leased(store *s)
{
	return s != NULL && s->be != NULL && s->be->lease_want != NULL;
}

int
store_lease_want(store *s, const char *tenant, const char *owner)
{
	if (s == NULL || tenant == NULL || owner == NULL)
		return SL_EINVAL;
	return store_leased(s) ? s->be->lease_want(s->be_ctx, tenant, owner)
	                       : SL_OK;
}

uint64_t
store_lease_get(store *s, const char *tenant, const char *owner,
    char *holder, size_t hlen)
{
	if (holder != NULL && hlen > 0)
		holder[0] = '\0';
	if (!store_leased(s))
		return 1; /* one node: always its own */
	return s->be->lease_get(s->be_ctx, tenant, owner, holder, hlen);
}

int
store_mirror_append(store *s, const store_row *rows, size_t n, bool gap_ok)
{
	MDB_txn      *txn;
	uint8_t       key[STORE_KEY_MAX];
	uint64_t      start, end;
	store_commit *ready;
	int           mrc, rc = SL_OK;

	pthread_mutex_lock(&s->mirror_mu);
	start = store_next_position(s); /* only appends here move it */
	while (n > 0 && rows[0].position < start) { /* held already */
		rows++;
		n--;
	}
	if (n == 0)
		goto out;
	if (rows[0].position != start) {
		if (!gap_ok)
			log_error("store",
			    "mirror: position %" PRIu64 " where %" PRIu64
			    " was expected: the log of record has a gap",
			    rows[0].position, start);
		rc = SL_ENOTFOUND;
		goto out;
	}
	mrc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (mrc != MDB_SUCCESS)
		goto lmdb_fail;
	for (size_t i = 0; i < n; i++) {
		ev_head h;
		if (rows[i].position != start + i) {
			log_error("store",
			    "mirror: position %" PRIu64 " where %" PRIu64
			    " was expected: the log of record has a gap",
			    rows[i].position, start + i);
			mdb_txn_abort(txn);
			rc = SL_EINTERNAL;
			goto out;
		}
		if (ev_peek(rows[i].data, rows[i].len, &h) != SL_OK
		    || !store_id_ok(h.tenant, h.tenant_len)
		    || !store_id_ok(h.stream, h.stream_len)) {
			log_error("store",
			    "mirror: position %" PRIu64 " holds no event",
			    rows[i].position);
			mdb_txn_abort(txn);
			rc = SL_EINTERNAL;
			goto out;
		}
		size_t hlen = store_head_key(
		    key, h.tenant, h.tenant_len, h.stream, h.stream_len);
		if ((mrc = store_put_record(s, txn, key, hlen, h.revision,
		         rows[i].position, rows[i].data, rows[i].len))
		        != 0
		    || (mrc = store_put_head(s, txn, key, hlen, h.revision + 1))
		        != 0) {
			mdb_txn_abort(txn);
			goto lmdb_fail;
		}
		mrc = store_mirror_delete(s, txn, &h, rows[i].data, rows[i].len);
		if (mrc == -1) {
			log_error("store",
			    "mirror: position %" PRIu64 ": a deletion's "
			    "notification that names no stream and mark",
			    rows[i].position);
			mdb_txn_abort(txn);
			rc = SL_EINTERNAL;
			goto out;
		}
		if (mrc != MDB_SUCCESS) {
			mdb_txn_abort(txn);
			goto lmdb_fail;
		}
	}
	if ((mrc = mdb_txn_commit(txn)) != MDB_SUCCESS)
		goto lmdb_fail;
	end = start + n;
	pthread_mutex_lock(&s->mu);
	s->next_pos = end;
	pthread_cond_broadcast(&s->head_cv);
	ready = store_await_take(s);
	pthread_mutex_unlock(&s->mu);
	pthread_mutex_unlock(&s->mirror_mu);
	store_ack_list(s, ready);
	return SL_OK;

lmdb_fail:
	log_error("store", "mirror: %s", mdb_strerror(mrc));
	rc = store_map_err(mrc);
out:
	pthread_mutex_unlock(&s->mirror_mu);
	return rc;
}

int
store_submit(store *s, store_commit *c)
{
	if (s == NULL || c == NULL)
		return SL_EINVAL;
	/* a commit has events, a deletion none (it writes its own) */
	if (c->trunc == STORE_TRUNC_NONE
	        ? (c->n_events == 0 || c->events == NULL)
	        : (c->n_events != 0 || c->trunc > STORE_TRUNC_BEFORE))
		return SL_EINVAL;
	c->rc              = SL_OK;
	c->first_position  = 0;
	c->first_revision  = 0;
	c->stream_revision = 0;
	c->message[0]      = '\0';
	c->next            = NULL;
	c->submit_ns       = mono_ns();

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
	store_wake_writer_locked(s);
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

int
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

struct store_reader {
	store   *s;
	MDB_txn *txn;
};

int
store_reader_open(store *s, store_reader **out)
{
	store_reader *rd = malloc(sizeof(*rd));
	*out             = NULL;
	if (rd == NULL)
		return SL_ENOMEM;
	int rc = store_read_begin(s, &rd->txn, "reader");
	if (rc != SL_OK) {
		free(rd);
		return rc;
	}
	rd->s = s;
	*out  = rd;
	return SL_OK;
}

int
store_reader_get(store_reader *rd, uint64_t position, const void **data,
    size_t *len)
{
	uint8_t key[8];
	MDB_val k = { 8, key }, v;
	store_put_be64(key, position);
	int mrc = mdb_get(rd->txn, rd->s->db_log, &k, &v);
	if (mrc == MDB_NOTFOUND)
		return SL_ENOTFOUND;
	if (mrc != MDB_SUCCESS) {
		log_error("store", "reader: get %" PRIu64 ": %s", position,
		    mdb_strerror(mrc));
		return SL_ESTORAGE;
	}
	*data = v.mv_data;
	*len  = v.mv_size;
	return SL_OK;
}

void
store_reader_close(store_reader *rd)
{
	if (rd == NULL)
		return;
	mdb_txn_abort(rd->txn);
	free(rd);
}

/* store_scan and, with visible, store_scan_visible. */
static int
store_scan_log(store *s, uint64_t from, size_t max, bool visible,
    store_scan_fn fn, void *arg, uint64_t *next)
{
	MDB_txn    *txn;
	MDB_cursor *cur;
	MDB_val     k, v;
	uint8_t     key[8];
	uint64_t    after = from, head;
	size_t      n = 0, n_hidden = 0;
	store_vis   vis;
	int         mrc, rc;

	if (next != NULL)
		*next = from;
	/* Only what is durable and published: a group waiting for its
	 * sync is in LMDB already (store_finish_group). */
	head = store_next_position(s);
	if (from >= head)
		return SL_OK;
	if ((rc = store_read_begin(s, &txn, "scan")) != SL_OK)
		return rc;
	vis.any = false;
	if (visible && (rc = store_vis_init(s, txn, &vis)) != SL_OK) {
		mdb_txn_abort(txn);
		return rc;
	}
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
	     mrc == MDB_SUCCESS && n < max && n_hidden < STORE_SCAN_HIDDEN_MAX;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint64_t pos;
		bool     hidden;

		if (k.mv_size != 8) {
			log_error("store", "scan: corrupt log key");
			rc = SL_ESTORAGE;
			break;
		}
		pos = store_get_be64(k.mv_data);
		if (pos >= head)
			break;
		after = pos + 1;
		rc    = store_vis_hidden(
		       s, txn, &vis, v.mv_data, v.mv_size, &hidden);
		if (rc != SL_OK)
			break;
		if (hidden) {
			n_hidden++;
			continue;
		}
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
store_scan(store *s, uint64_t from, size_t max, store_scan_fn fn, void *arg,
    uint64_t *next)
{
	return store_scan_log(s, from, max, false, fn, arg, next);
}

int
store_scan_visible(store *s, uint64_t from, size_t max, store_scan_fn fn,
    void *arg, uint64_t *next)
{
	return store_scan_log(s, from, max, true, fn, arg, next);
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
	uint64_t    first, head;
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
	head          = store_next_position(s); /* see store_scan_log */
	if ((rc = store_read_begin(s, &txn, "stream scan")) != SL_OK)
		return rc;
	/* A deletion hides the revisions below its mark. */
	if ((rc = store_trunc_get(s, txn, key, plen - 1, &first)) != SL_OK) {
		mdb_txn_abort(txn);
		return rc;
	}
	if ((mrc = mdb_cursor_open(txn, s->db_streams, &cur)) != MDB_SUCCESS) {
		mdb_txn_abort(txn);
		log_error(
		    "store", "stream scan: cursor: %s", mdb_strerror(mrc));
		return SL_ESTORAGE;
	}
	store_put_be64(key + plen, from_rev > first ? from_rev : first);
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
		if (pos >= head)
			break; /* revisions follow positions */
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
	uint8_t  key[STORE_KEY_MAX];
	size_t   tl, sl;
	int      rc;

	*out = 0;
	if (tenant == NULL || stream == NULL)
		return SL_EINVAL;
	tl = strlen(tenant);
	sl = strlen(stream);
	if (!store_id_ok(tenant, tl) || !store_id_ok(stream, sl))
		return SL_OK;
	if ((rc = store_read_begin(s, &txn, "stream head")) != SL_OK)
		return rc;
	rc = store_get_be64_txn(txn, s->db_heads, key,
	    store_head_key(key, tenant, tl, stream, sl), out, "stream head");
	mdb_txn_abort(txn);
	return rc;
}

/* Commit latency buckets, ns: 100 µs .. 5 s. */
static const uint64_t latency_bounds[] = { 100000, 250000, 500000, 1000000,
	2500000, 5000000, 10000000, 25000000, 50000000, 100000000, 250000000,
	500000000, 1000000000, 5000000000 };
/* Events per write transaction. */
static const uint64_t group_bounds[] = { 1, 2, 4, 8, 16, 32, 64, 128, 256,
	512, 1024, 4096, 16384 };

static void
store_stats_init(store *s)
{
	hist_init(&s->commit_latency, latency_bounds,
	    sizeof(latency_bounds) / sizeof(latency_bounds[0]));
	hist_init(&s->group_events, group_bounds,
	    sizeof(group_bounds) / sizeof(group_bounds[0]));
}

void
store_stats_get(store *s, store_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->commits_ok = __atomic_load_n(&s->commits_ok, __ATOMIC_RELAXED);
	out->commits_refused
	    = __atomic_load_n(&s->commits_refused, __ATOMIC_RELAXED);
	out->events_appended
	    = __atomic_load_n(&s->events_appended, __ATOMIC_RELAXED);
	out->txns = store_txn_count(s);
	hist_read(&s->commit_latency, &out->commit_latency);
	hist_read(&s->group_events, &out->group_events);
	MDB_envinfo info;
	MDB_stat    st;
	if (mdb_env_info(s->env, &info) == 0 && mdb_env_stat(s->env, &st) == 0) {
		out->map_size = info.me_mapsize;
		out->map_used = ((uint64_t) info.me_last_pgno + 1) * st.ms_psize;
	}
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
