/*
 * Stream deletion in the event log (store_delete.c), on a real LMDB env: a
 * soft delete and a truncate-before hide a stream's events from stream
 * scans, visible log scans and link resolution while the raw log keeps
 * them; a later commit continues the revisions; each writes one
 * notification to the tenant's $deleted stream in the same transaction;
 * expected revisions, ownership, every refused input (each leaving every
 * database byte for byte as it was), an emitting projection's reset
 * through the same mark, a deletion inside a group, the skip budget of a
 * visible scan, and a reopen.
 */
#include <inttypes.h>

#include <fnv.h>
#include <mp.h>

#include "store_internal.h"
#include "store_testutil.h"

#define N_EV 8
static tev    tevs[N_EV];
static ev_new evs[N_EV];

/* Every database of the env, hashed key and value: what "the store is
 * unchanged" means. */
static uint64_t
fingerprint(store *s)
{
	MDB_dbi dbis[] = { s->db_log, s->db_streams, s->db_heads, s->db_owners,
		s->db_owned, s->db_pstate, s->db_pcheck, s->db_trunc };
	MDB_txn *txn;
	uint64_t h = FNV1A_OFFSET;

	CHECK_EQ(mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn), 0);
	for (size_t i = 0; i < sizeof(dbis) / sizeof(dbis[0]); i++) {
		MDB_cursor *cur;
		MDB_val     k, v;
		int         mrc;

		CHECK_EQ(mdb_cursor_open(txn, dbis[i], &cur), 0);
		h = fnv1a(h, &i, sizeof(i));
		for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
		     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			h = fnv1a(h, &k.mv_size, sizeof(k.mv_size));
			h = fnv1a(h, k.mv_data, k.mv_size);
			h = fnv1a(h, &v.mv_size, sizeof(v.mv_size));
			h = fnv1a(h, v.mv_data, v.mv_size);
		}
		CHECK_EQ(mrc, MDB_NOTFOUND);
		mdb_cursor_close(cur);
	}
	mdb_txn_abort(txn);
	return h;
}

/* What a scan saw. */
typedef struct seen {
	uint64_t position;
	char     tenant[16];
	char     stream[32];
	uint64_t revision;
	char     type[32];
	char     content[128]; /* JSON */
} seen;

typedef struct collect {
	seen        *items;
	size_t       n, cap;
	msgpack_zone zone;
} collect;

static int
collect_cb(void *arg, uint64_t position, const void *data, size_t len)
{
	collect *col = arg;
	ev_view  v;
	seen    *it;
	char    *json;

	msgpack_zone_clear(&col->zone);
	CHECK_EQ(ev_decode(data, len, position, &col->zone, &v), SL_OK);
	if (col->n == col->cap) {
		col->cap   = col->cap ? 2 * col->cap : 64;
		col->items = realloc(col->items, col->cap * sizeof(seen));
		CHECK(col->items != NULL);
	}
	it           = &col->items[col->n++];
	it->position = position;
	it->revision = v.revision;
	snprintf(it->tenant, sizeof(it->tenant), "%s", v.tenant);
	snprintf(it->stream, sizeof(it->stream), "%s", v.stream);
	snprintf(it->type, sizeof(it->type), "%s", v.type);
	json = mp_to_json_text(&v.content);
	snprintf(it->content, sizeof(it->content), "%s", json);
	free(json);
	return 0;
}

static void
collect_init(collect *col)
{
	memset(col, 0, sizeof(*col));
	CHECK(msgpack_zone_init(&col->zone, 1024));
}

static void
collect_free(collect *col)
{
	free(col->items);
	msgpack_zone_destroy(&col->zone);
	memset(col, 0, sizeof(*col));
}

static int
count_cb(void *arg, uint64_t position, const void *data, size_t len)
{
	(void) position;
	(void) data;
	(void) len;
	(*(size_t *) arg)++;
	return 0;
}

static void
commit(store *s, const char *tenant, const char *stream, uint64_t expected,
    size_t n, int want)
{
	store_commit c;

	tev_commit_init(&c, tenant, stream, strlen(stream), expected, evs, n);
	CHECK_EQ(store_commit_wait(s, &c), want);
}

/* A deletion (trunc DELETE, or BEFORE tb) by a client or owner. */
static void
del_init(store_commit *c, const char *tenant, const char *stream,
    size_t stream_len, uint64_t expected, store_trunc trunc, uint64_t tb)
{
	tev_commit_init(c, tenant, stream, stream_len, expected, NULL, 0);
	c->trunc           = trunc;
	c->truncate_before = tb;
}

static size_t
stream_revs(store *s, const char *tenant, const char *stream, uint64_t from,
    uint64_t *revs, size_t max)
{
	collect col;
	size_t  n;

	collect_init(&col);
	CHECK_EQ(
	    store_scan_stream(s, tenant, stream, from, 1000, collect_cb, &col),
	    SL_OK);
	for (size_t i = 0; i < col.n && i < max; i++)
		revs[i] = col.items[i].revision;
	n = col.n;
	collect_free(&col);
	return n;
}

/* The visible log from 0 in pages of `page`, all of it. */
static void
visible_log(store *s, collect *col, size_t page)
{
	uint64_t from = 0, next, head = store_next_position(s);

	collect_init(col);
	while (from < head) {
		CHECK_EQ(
		    store_scan_visible(s, from, page, collect_cb, col, &next),
		    SL_OK);
		CHECK(next > from);
		from = next;
	}
	CHECK_EQ(from, head);
}

static bool
visible_has(
    const collect *col, const char *tenant, const char *stream, uint64_t rev)
{
	for (size_t i = 0; i < col->n; i++)
		if (strcmp(col->items[i].tenant, tenant) == 0
		    && strcmp(col->items[i].stream, stream) == 0
		    && col->items[i].revision == rev)
			return true;
	return false;
}

static uint64_t
first_rev(store *s, const char *tenant, const char *stream)
{
	uint64_t r;
	CHECK_EQ(store_stream_first_revision(s, tenant, stream, &r), SL_OK);
	return r;
}

static uint64_t
next_rev(store *s, const char *tenant, const char *stream)
{
	uint64_t r;
	CHECK_EQ(store_stream_next_revision(s, tenant, stream, &r), SL_OK);
	return r;
}

/* The notification at position pos, as the $deleted stream holds it. */
static void
check_notice(store *s, uint64_t pos, const char *tenant, uint64_t drev,
    const char *type, const char *content)
{
	collect col;

	collect_init(&col);
	CHECK_EQ(store_scan(s, pos, 1, collect_cb, &col, NULL), SL_OK);
	CHECK_EQ(col.n, 1);
	CHECK_EQ(col.items[0].position, pos);
	CHECK_STREQ(col.items[0].tenant, tenant);
	CHECK_STREQ(col.items[0].stream, STORE_DELETED_STREAM);
	CHECK_EQ(col.items[0].revision, drev);
	CHECK_STREQ(col.items[0].type, type);
	CHECK_STREQ(col.items[0].content, content);
	collect_free(&col);
	/* and the $deleted stream serves it at that revision */
	collect_init(&col);
	CHECK_EQ(store_scan_stream(s, tenant, STORE_DELETED_STREAM, drev, 1,
	             collect_cb, &col),
	    SL_OK);
	CHECK_EQ(col.n, 1);
	CHECK_EQ(col.items[0].position, pos);
	collect_free(&col);
}

/* ---- 1. soft delete ---- */

static void
test_soft_delete(store *s)
{
	store_commit c;
	collect      col;
	uint64_t     revs[8], head, fp;
	size_t       n_raw = 0;

	commit(s, "t", "a", STORE_EXPECT_NO_STREAM, 3, SL_OK); /* a 0..2 */
	commit(s, "t", "b", STORE_EXPECT_ANY, 2, SL_OK);       /* b 0..1 */
	commit(s, "u", "a", STORE_EXPECT_ANY, 1, SL_OK);       /* u/a 0 */
	CHECK_EQ(
	    store_resolve_link(s, "t", "1@a", 3, count_cb, &(size_t) { 0 }),
	    SL_OK);

	/* a wrong expected revision: EREVISION with the actual one */
	fp = fingerprint(s);
	del_init(&c, "t", "a", 1, 1, STORE_TRUNC_DELETE, 0);
	CHECK_EQ(store_commit_wait(s, &c), SL_EREVISION);
	CHECK_EQ(c.stream_revision, 2);
	CHECK(strstr(c.message, "revision 2") != NULL);
	del_init(
	    &c, "t", "a", 1, STORE_EXPECT_NO_STREAM, STORE_TRUNC_DELETE, 0);
	CHECK_EQ(store_commit_wait(s, &c), SL_EREVISION);
	CHECK_EQ(fingerprint(s), fp);

	head = store_next_position(s);
	del_init(&c, "t", "a", 1, 2, STORE_TRUNC_DELETE, 0);
	CHECK_EQ(store_commit_wait(s, &c), SL_OK);
	CHECK_EQ(c.first_position, head);
	CHECK_EQ(c.first_revision, 0); /* the tenant's first deletion */
	CHECK_EQ(c.stream_revision, 2);
	CHECK_EQ(c.truncate_before, 3);
	CHECK_EQ(store_next_position(s), head + 1);
	check_notice(s, head, "t", 0, STORE_EV_STREAM_DELETED,
	    "{\"stream\":\"a\",\"revision\":2,\"truncate_before\":3}");

	/* hidden from the stream, the visible log and links */
	CHECK_EQ(stream_revs(s, "t", "a", 0, revs, 8), 0);
	CHECK_EQ(stream_revs(s, "t", "a", 2, revs, 8), 0);
	CHECK_EQ(first_rev(s, "t", "a"), 3);
	CHECK_EQ(next_rev(s, "t", "a"), 3);
	CHECK_EQ(
	    store_resolve_link(s, "t", "1@a", 3, count_cb, &(size_t) { 0 }),
	    SL_ENOTFOUND);
	visible_log(s, &col, 1000);
	CHECK_EQ(col.n, 4); /* b 0..1, u/a 0, the notification */
	CHECK(!visible_has(&col, "t", "a", 0)
	    && !visible_has(&col, "t", "a", 2));
	CHECK(
	    visible_has(&col, "t", "b", 1) && visible_has(&col, "u", "a", 0));
	CHECK(visible_has(&col, "t", STORE_DELETED_STREAM, 0));
	collect_free(&col);
	/* one at a time: pages skip what is hidden, next moves past it */
	visible_log(s, &col, 1);
	CHECK_EQ(col.n, 4);
	collect_free(&col);
	/* the raw log keeps every event: positions stay gap-free */
	CHECK_EQ(store_scan(s, 0, 1000, count_cb, &n_raw, NULL), SL_OK);
	CHECK_EQ(n_raw, head + 1);
	/* the other tenant's stream of that name is untouched */
	CHECK_EQ(stream_revs(s, "u", "a", 0, revs, 8), 1);
	CHECK_EQ(first_rev(s, "u", "a"), 0);

	/* deleting it again: nothing to hide */
	fp = fingerprint(s);
	del_init(&c, "t", "a", 1, STORE_EXPECT_ANY, STORE_TRUNC_DELETE, 0);
	CHECK_EQ(store_commit_wait(s, &c), SL_ENOTFOUND);
	CHECK(strstr(c.message, "is deleted") != NULL);
	CHECK_EQ(fingerprint(s), fp);

	/* a commit after the delete continues the revisions (as ESDB's
	 * recreated stream): it expects the last revision, not no_stream */
	commit(s, "t", "a", STORE_EXPECT_NO_STREAM, 1, SL_EREVISION);
	CHECK_EQ(fingerprint(s), fp);
	head = store_next_position(s);
	commit(s, "t", "a", 2, 2, SL_OK);
	CHECK_EQ(stream_revs(s, "t", "a", 0, revs, 8), 2);
	CHECK_EQ(revs[0], 3);
	CHECK_EQ(revs[1], 4);
	CHECK_EQ(first_rev(s, "t", "a"), 3);
	visible_log(s, &col, 1000);
	CHECK_EQ(col.n, 6);
	CHECK(
	    visible_has(&col, "t", "a", 3) && visible_has(&col, "t", "a", 4));
	CHECK(!visible_has(&col, "t", "a", 2));
	collect_free(&col);
	CHECK_EQ(
	    store_resolve_link(s, "t", "3@a", 3, count_cb, &(size_t) { 0 }),
	    SL_OK);
	(void) head;
}

/* ---- 2. truncate-before ---- */

static void
test_truncate(store *s)
{
	store_commit c;
	uint64_t     revs[8], head, fp;

	commit(s, "t", "c", STORE_EXPECT_ANY, 4, SL_OK); /* c 0..3 */
	head = store_next_position(s);
	del_init(&c, "t", "c", 1, 3, STORE_TRUNC_BEFORE, 2);
	CHECK_EQ(store_commit_wait(s, &c), SL_OK);
	CHECK_EQ(c.first_position, head);
	CHECK_EQ(c.first_revision, 1); /* the tenant's second deletion */
	CHECK_EQ(c.stream_revision, 3);
	CHECK_EQ(c.truncate_before, 2);
	check_notice(s, head, "t", 1, STORE_EV_STREAM_TRUNCATED,
	    "{\"stream\":\"c\",\"revision\":3,\"truncate_before\":2}");
	CHECK_EQ(stream_revs(s, "t", "c", 0, revs, 8), 2);
	CHECK_EQ(revs[0], 2);
	CHECK_EQ(revs[1], 3);
	CHECK_EQ(stream_revs(s, "t", "c", 3, revs, 8), 1);
	CHECK_EQ(revs[0], 3);
	CHECK_EQ(
	    store_resolve_link(s, "t", "1@c", 3, count_cb, &(size_t) { 0 }),
	    SL_ENOTFOUND);
	CHECK_EQ(
	    store_resolve_link(s, "t", "2@c", 3, count_cb, &(size_t) { 0 }),
	    SL_OK);

	/* a mark that hides nothing new, or revisions that do not exist */
	fp = fingerprint(s);
	del_init(&c, "t", "c", 1, STORE_EXPECT_ANY, STORE_TRUNC_BEFORE, 2);
	CHECK_EQ(store_commit_wait(s, &c), SL_EINVAL);
	CHECK(strstr(c.message, "before 2 already") != NULL);
	del_init(&c, "t", "c", 1, STORE_EXPECT_ANY, STORE_TRUNC_BEFORE, 1);
	CHECK_EQ(store_commit_wait(s, &c), SL_EINVAL);
	del_init(&c, "t", "c", 1, STORE_EXPECT_ANY, STORE_TRUNC_BEFORE, 0);
	CHECK_EQ(store_commit_wait(s, &c), SL_EINVAL);
	del_init(&c, "t", "c", 1, STORE_EXPECT_ANY, STORE_TRUNC_BEFORE, 5);
	CHECK_EQ(store_commit_wait(s, &c), SL_EINVAL);
	CHECK(strstr(c.message, "1..4") != NULL);
	del_init(
	    &c, "t", "c", 1, STORE_EXPECT_ANY, STORE_TRUNC_BEFORE, UINT64_MAX);
	CHECK_EQ(store_commit_wait(s, &c), SL_EINVAL);
	CHECK_EQ(fingerprint(s), fp);

	/* up to the next revision hides all; a soft delete then finds
	 * nothing left */
	del_init(&c, "t", "c", 1, STORE_EXPECT_ANY, STORE_TRUNC_BEFORE, 4);
	CHECK_EQ(store_commit_wait(s, &c), SL_OK);
	CHECK_EQ(stream_revs(s, "t", "c", 0, revs, 8), 0);
	fp = fingerprint(s);
	del_init(&c, "t", "c", 1, STORE_EXPECT_ANY, STORE_TRUNC_DELETE, 0);
	CHECK_EQ(store_commit_wait(s, &c), SL_ENOTFOUND);
	CHECK_EQ(fingerprint(s), fp);
}

/* ---- 3. refused input: each error, and not a byte changed ---- */

static void
test_refused(store *s)
{
	store_commit c;
	uint64_t     fp    = fingerprint(s);
	const char   nul[] = "b\0x";

	/* a stream without events, here or in this tenant */
	del_init(&c, "t", "nope", 4, STORE_EXPECT_ANY, STORE_TRUNC_DELETE, 0);
	CHECK_EQ(store_commit_wait(s, &c), SL_ENOTFOUND);
	CHECK(strstr(c.message, "has no events") != NULL);
	del_init(&c, "u", "b", 1, STORE_EXPECT_ANY, STORE_TRUNC_DELETE, 0);
	CHECK_EQ(store_commit_wait(s, &c), SL_ENOTFOUND);
	del_init(&c, "v", "b", 1, STORE_EXPECT_ANY, STORE_TRUNC_BEFORE, 1);
	CHECK_EQ(store_commit_wait(s, &c), SL_ENOTFOUND);
	/* NUL in a name, empty and over-long ids */
	del_init(&c, "t", nul, 3, STORE_EXPECT_ANY, STORE_TRUNC_DELETE, 0);
	CHECK_EQ(store_commit_wait(s, &c), SL_EINVAL);
	del_init(&c, "t", "b", 0, STORE_EXPECT_ANY, STORE_TRUNC_DELETE, 0);
	CHECK_EQ(store_commit_wait(s, &c), SL_EINVAL);
	tev_commit_init(&c, "t\0u", "b", 1, STORE_EXPECT_ANY, NULL, 0);
	c.tenant_len = 3;
	c.trunc      = STORE_TRUNC_DELETE;
	CHECK_EQ(store_commit_wait(s, &c), SL_EINVAL);
	{
		char long_id[SL_MAX_ID_LEN + 2];
		memset(long_id, 'x', sizeof(long_id));
		del_init(&c, "t", long_id, sizeof(long_id), STORE_EXPECT_ANY,
		    STORE_TRUNC_DELETE, 0);
		CHECK_EQ(store_commit_wait(s, &c), SL_EINVAL);
	}
	/* system streams: written and deleted by the runtime only */
	del_init(&c, "t", STORE_DELETED_STREAM, strlen(STORE_DELETED_STREAM),
	    STORE_EXPECT_ANY, STORE_TRUNC_DELETE, 0);
	CHECK_EQ(store_commit_wait(s, &c), SL_EINVAL);
	CHECK(strstr(c.message, "system stream") != NULL);
	del_init(&c, "t", "$ce-a", 5, STORE_EXPECT_ANY, STORE_TRUNC_BEFORE, 1);
	CHECK_EQ(store_commit_wait(s, &c), SL_EINVAL);
	/* a deletion with events, or of an unknown kind: not taken */
	del_init(&c, "t", "b", 1, STORE_EXPECT_ANY, STORE_TRUNC_DELETE, 0);
	c.events   = evs;
	c.n_events = 1;
	CHECK_EQ(store_commit_wait(s, &c), SL_EINVAL);
	del_init(&c, "t", "b", 1, STORE_EXPECT_ANY, (store_trunc) 7, 0);
	CHECK_EQ(store_commit_wait(s, &c), SL_EINVAL);
	/* an absurd expected revision is a mismatch */
	del_init(&c, "t", "b", 1, UINT64_MAX - 5, STORE_TRUNC_DELETE, 0);
	CHECK_EQ(store_commit_wait(s, &c), SL_EREVISION);
	CHECK_EQ(c.stream_revision, 1);
	/* nobody but the log writes $deleted */
	commit(s, "t", STORE_DELETED_STREAM, STORE_EXPECT_ANY, 1, SL_EOWNED);
	CHECK_EQ(fingerprint(s), fp);
}

/* ---- 4. owned streams, and the reset of an emitting projection ---- */

static void
test_owned(store *s)
{
	store_commit c;
	store_emit   e;
	store_append a[2];
	char         err[256];
	uint64_t     fp, head, dhead, revs[4];
	collect      col;

	CHECK_EQ(
	    store_claim(s, "own-*", "p1", "Owner", err, sizeof(err)), SL_OK);
	memset(a, 0, sizeof(a));
	a[0].stream = "own-1";
	a[0].ev     = evs[0];
	a[1].stream = "own-1";
	a[1].ev     = evs[1];
	memset(&e, 0, sizeof(e));
	e.tenant    = "t";
	e.owner     = "p1";
	e.appends   = a;
	e.n_appends = 2;
	CHECK_EQ(store_emit_wait(s, &e), SL_OK);

	/* a client may not delete what a projection owns */
	fp = fingerprint(s);
	del_init(&c, "t", "own-1", 5, STORE_EXPECT_ANY, STORE_TRUNC_DELETE, 0);
	CHECK_EQ(store_commit_wait(s, &c), SL_EOWNED);
	CHECK(strstr(c.message, "Owner") != NULL);
	del_init(&c, "t", "own-1", 5, 1, STORE_TRUNC_BEFORE, 1);
	CHECK_EQ(store_commit_wait(s, &c), SL_EOWNED);
	CHECK_EQ(fingerprint(s), fp);
	/* the owner may */
	del_init(&c, "t", "own-1", 5, 1, STORE_TRUNC_BEFORE, 1);
	c.owner = "p1";
	CHECK_EQ(store_commit_wait(s, &c), SL_OK);
	CHECK_EQ(first_rev(s, "t", "own-1"), 1);

	/* the reset hides the owner's streams with the same mark, and
	 * writes no notification */
	dhead = next_rev(s, "t", STORE_DELETED_STREAM);
	head  = store_next_position(s);
	memset(&e, 0, sizeof(e));
	e.tenant = "t";
	e.owner  = "p1";
	e.reset  = true;
	CHECK_EQ(store_emit_wait(s, &e), SL_OK);
	CHECK_EQ(store_next_position(s), head);
	CHECK_EQ(next_rev(s, "t", STORE_DELETED_STREAM), dhead);
	CHECK_EQ(first_rev(s, "t", "own-1"), 2);
	CHECK_EQ(stream_revs(s, "t", "own-1", 0, revs, 4), 0);
	visible_log(s, &col, 1000);
	CHECK(!visible_has(&col, "t", "own-1", 0));
	CHECK(!visible_has(&col, "t", "own-1", 1));
	collect_free(&col);
	store_unclaim(s, "p1");

	/* a projection that claims every stream does not get $deleted */
	CHECK_EQ(store_claim(s, "*", "p2", "All", err, sizeof(err)), SL_OK);
	fp = fingerprint(s);
	memset(&e, 0, sizeof(e));
	a[0].stream = STORE_DELETED_STREAM;
	e.tenant    = "t";
	e.owner     = "p2";
	e.appends   = a;
	e.n_appends = 1;
	CHECK_EQ(store_emit_wait(s, &e), SL_EOWNED);
	CHECK(strstr(e.message, "event log") != NULL);
	CHECK_EQ(fingerprint(s), fp);
	store_unclaim(s, "p2");
}

/* ---- 5. a deletion between two commits of one group ---- */

static void
test_group(store *s)
{
	gate g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false,
		false, 0 };
	store_commit first, before, del, after, stale;
	uint64_t     txns, revs[8];

	commit(s, "t", "g", STORE_EXPECT_ANY, 2, SL_OK); /* g 0..1 */
	tev_commit_init(&first, "t", "x", 1, STORE_EXPECT_ANY, evs, 1);
	first.done = gate_hold;
	first.arg  = &g;
	CHECK_EQ(store_submit(s, &first), SL_OK);
	pthread_mutex_lock(&g.mu);
	while (!g.in_done)
		pthread_cond_wait(&g.cv, &g.mu);
	pthread_mutex_unlock(&g.mu);

	/* queued behind the held writer: one transaction */
	txns = store_txn_count(s);
	tev_commit_init(&before, "t", "g", 1, 1, evs, 1);        /* g 2 */
	del_init(&del, "t", "g", 1, 2, STORE_TRUNC_DELETE, 0);   /* sees g 2 */
	tev_commit_init(&after, "t", "g", 1, 2, evs, 2);         /* g 3..4 */
	del_init(&stale, "t", "g", 1, 2, STORE_TRUNC_BEFORE, 1); /* g at 4 */
	CHECK_EQ(store_submit(s, &before), SL_OK);
	CHECK_EQ(store_submit(s, &del), SL_OK);
	CHECK_EQ(store_submit(s, &after), SL_OK);
	CHECK_EQ(store_submit(s, &stale), SL_OK);
	pthread_mutex_lock(&g.mu);
	g.released = true;
	pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.mu);
	/* a commit waits behind them all */
	commit(s, "t", "y", STORE_EXPECT_ANY, 1, SL_OK);
	CHECK(store_txn_count(s) <= txns + 2);
	CHECK_EQ(before.rc, SL_OK);
	CHECK_EQ(del.rc, SL_OK);
	CHECK_EQ(del.truncate_before, 3);
	CHECK_EQ(del.first_position, before.first_position + 1);
	CHECK_EQ(after.rc, SL_OK);
	CHECK_EQ(after.first_revision, 3);
	CHECK_EQ(after.first_position, del.first_position + 1);
	CHECK_EQ(stale.rc, SL_EREVISION);
	CHECK_EQ(stale.stream_revision, 4);
	CHECK_EQ(stream_revs(s, "t", "g", 0, revs, 8), 2);
	CHECK_EQ(revs[0], 3);
	CHECK_EQ(revs[1], 4);
}

/* ---- 6. a visible scan skips at most STORE_SCAN_HIDDEN_MAX ---- */

static void
test_skip_budget(store *s)
{
	enum { N = STORE_SCAN_HIDDEN_MAX + 100 };
	ev_new      *many = calloc(N, sizeof(*many));
	store_commit c;
	uint64_t     from = store_next_position(s), next;
	size_t       n    = 0;

	CHECK(many != NULL);
	for (size_t i = 0; i < N; i++)
		many[i] = evs[i % N_EV];
	tev_commit_init(&c, "t", "big", 3, STORE_EXPECT_NO_STREAM, many, N);
	CHECK_EQ(store_commit_wait(s, &c), SL_OK);
	free(many);
	del_init(&c, "t", "big", 3, N - 1, STORE_TRUNC_DELETE, 0);
	CHECK_EQ(store_commit_wait(s, &c), SL_OK);

	/* the first page stops after the budget, empty, and moves on */
	CHECK_EQ(store_scan_visible(s, from, 10, count_cb, &n, &next), SL_OK);
	CHECK_EQ(n, 0);
	CHECK_EQ(next, from + STORE_SCAN_HIDDEN_MAX);
	/* the next one skips the rest and shows the notification */
	CHECK_EQ(store_scan_visible(s, next, 10, count_cb, &n, &next), SL_OK);
	CHECK_EQ(n, 1);
	CHECK_EQ(next, store_next_position(s));
}

/* ---- 7. after a reopen ---- */

static void
check_after_reopen(store *s)
{
	uint64_t revs[8];
	collect  col;

	CHECK_EQ(first_rev(s, "t", "a"), 3);
	CHECK_EQ(stream_revs(s, "t", "a", 0, revs, 8), 2);
	CHECK_EQ(revs[0], 3);
	CHECK_EQ(first_rev(s, "t", "c"), 4);
	CHECK_EQ(stream_revs(s, "t", "c", 0, revs, 8), 0);
	CHECK_EQ(first_rev(s, "t", "own-1"), 2);
	visible_log(s, &col, 1000);
	CHECK(!visible_has(&col, "t", "a", 0));
	CHECK(visible_has(&col, "t", "a", 3));
	CHECK(!visible_has(&col, "t", "c", 3));
	CHECK(visible_has(&col, "t", STORE_DELETED_STREAM, 0));
	collect_free(&col);
	/* and the $deleted stream goes on counting */
	commit(s, "t", "d", STORE_EXPECT_ANY, 1, SL_OK);
	{
		store_commit c;
		uint64_t     dnext = next_rev(s, "t", STORE_DELETED_STREAM);

		del_init(&c, "t", "d", 1, 0, STORE_TRUNC_DELETE, 0);
		CHECK_EQ(store_commit_wait(s, &c), SL_OK);
		CHECK_EQ(c.first_revision, dnext);
	}
}

int
main(void)
{
	char   path[4200];
	store *s;

	for (size_t i = 0; i < N_EV; i++) {
		char content[32];
		snprintf(content, sizeof(content), "{\"n\":%zu}", i);
		tev_init(&tevs[i], "Thing", content);
		evs[i] = tevs[i].e;
	}
	snprintf(path, sizeof(path), "%s/log", tu_tmpdir());
	CHECK_EQ(store_open(path, 256u << 20, true, &s), SL_OK);
	test_soft_delete(s);
	test_truncate(s);
	test_refused(s);
	test_owned(s);
	test_group(s);
	test_skip_budget(s);
	store_close(s);

	CHECK_EQ(store_open(path, 256u << 20, true, &s), SL_OK);
	check_after_reopen(s);
	store_close(s);
	for (size_t i = 0; i < N_EV; i++)
		tev_free(&tevs[i]);
	return 0;
}
