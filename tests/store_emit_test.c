/*
 * The event log's side of emitting projections (store.h): stream patterns
 * and claims, client commits refused on owned streams, emit batches
 * (appends + states + checkpoint, all or nothing, in the group commit in
 * arrival order), reset as a soft delete, link resolution, persistence
 * across a reopen, and a batch that does not fit the map.
 */
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "store_testutil.h"

static ev_new evs[5];

/* ---- helpers ---- */

static void
commit_init(store_commit *c, const char *tenant, const char *stream,
    uint64_t expected, size_t n)
{
	tev_commit_init(c, tenant, stream, strlen(stream), expected, evs, n);
}

/* An emit batch of owner in tenant: appends a[0..n_a), states
 * st[0..n_st), checkpoint cp (NULL: unchanged); no reset. */
static void
emit_init(store_emit *e, const char *tenant, const char *owner,
    const store_append *a, size_t n_a, const store_kv *st, size_t n_st,
    const char *cp)
{
	memset(e, 0, sizeof(*e));
	e->tenant         = tenant;
	e->owner          = owner;
	e->appends        = a;
	e->n_appends      = n_a;
	e->states         = st;
	e->n_states       = n_st;
	e->checkpoint     = cp;
	e->checkpoint_len = cp != NULL ? strlen(cp) : 0;
}

static store_append
app(const char *stream, int i)
{
	store_append a = { .stream = stream, .ev = evs[i] };
	return a;
}

static store_kv
kv(const char *key, const char *val)
{
	store_kv k;

	k.key     = key;
	k.key_len = strlen(key);
	k.val     = val;
	k.val_len = val != NULL ? strlen(val) : 0;
	return k;
}

static int
count_cb(void *arg, uint64_t position, const void *data, size_t len)
{
	(void) position;
	(void) data;
	(void) len;
	(*(int *) arg)++;
	return 0;
}

static int
count_kv_cb(void *arg, const void *key, size_t key_len, const void *val,
    size_t val_len)
{
	(void) key;
	(void) key_len;
	(void) val;
	(void) val_len;
	(*(int *) arg)++;
	return 0;
}

/* Counts as count_kv_cb, then stops the reader with 7. */
static int
stop7_cb(void *arg, const void *key, size_t key_len, const void *val,
    size_t val_len)
{
	count_kv_cb(arg, key, key_len, val, val_len);
	return 7;
}

static int
log_count(store *s)
{
	int n = 0;

	CHECK_EQ(store_scan(s, 0, 100000, count_cb, &n, NULL), SL_OK);
	return n;
}

static int
stream_count(store *s, const char *tenant, const char *stream)
{
	int n = 0;

	CHECK_EQ(store_scan_stream(s, tenant, stream, 0, 1000, count_cb, &n),
	    SL_OK);
	return n;
}

static uint64_t
next_rev(store *s, const char *tenant, const char *stream)
{
	uint64_t r;

	CHECK_EQ(store_stream_next_revision(s, tenant, stream, &r), SL_OK);
	return r;
}

/* What the event scans saw. */
typedef struct seen {
	uint64_t position;
	char     stream[64];
	char     type[16];
	uint64_t revision;
	char     content_str[64]; /* a link's content; "" for a map */
} seen;

typedef struct collect {
	seen         items[64];
	size_t       n;
	msgpack_zone zone;
} collect;

static int
collect_cb(void *arg, uint64_t position, const void *data, size_t len)
{
	collect *col = arg;
	ev_view  v;
	seen    *it;

	CHECK(col->n < 64);
	msgpack_zone_clear(&col->zone);
	CHECK_EQ(ev_decode(data, len, position, &col->zone, &v), SL_OK);
	it = &col->items[col->n++];
	memset(it, 0, sizeof(*it));
	it->position = position;
	it->revision = v.revision;
	snprintf(it->stream, sizeof(it->stream), "%s", v.stream);
	snprintf(it->type, sizeof(it->type), "%s", v.type);
	if (v.content.type == MSGPACK_OBJECT_STR)
		snprintf(it->content_str, sizeof(it->content_str), "%.*s",
		    (int) v.content.via.str.size, v.content.via.str.ptr);
	else
		CHECK_EQ(v.content.type, MSGPACK_OBJECT_MAP);
	return 0;
}

static void
collect_init(collect *col)
{
	memset(col, 0, sizeof(*col));
	CHECK(msgpack_zone_init(&col->zone, 4096));
}

static void
collect_free(collect *col)
{
	msgpack_zone_destroy(&col->zone);
}

/* What the kv readers saw, as NUL-terminated copies. */
typedef struct kvs {
	char   key[16][64];
	char   val[16][64];
	size_t n;
} kvs;

static int
kvs_cb(void *arg, const void *key, size_t key_len, const void *val,
    size_t val_len)
{
	kvs *o = arg;

	CHECK(o->n < 16 && key_len < 64 && val_len < 64);
	memcpy(o->key[o->n], key, key_len);
	o->key[o->n][key_len] = '\0';
	memcpy(o->val[o->n], val, val_len);
	o->val[o->n][val_len] = '\0';
	o->n++;
	return 0;
}

static int
get_checkpoint(store *s, const char *tenant, const char *owner, kvs *o)
{
	memset(o, 0, sizeof(*o));
	return store_get_checkpoint(s, tenant, owner, kvs_cb, o);
}

static int
get_state(
    store *s, const char *tenant, const char *owner, const char *key, kvs *o)
{
	memset(o, 0, sizeof(*o));
	return store_get_pstate(s, tenant, owner, key, strlen(key), kvs_cb, o);
}

static void
scan_states(
    store *s, const char *tenant, const char *owner, const char *after, kvs *o)
{
	memset(o, 0, sizeof(*o));
	CHECK_EQ(store_scan_pstates(s, tenant, owner, after,
	             after != NULL ? strlen(after) : 0, kvs_cb, o),
	    SL_OK);
}

static void
scan_owned(store *s, const char *tenant, const char *owner, kvs *o)
{
	memset(o, 0, sizeof(*o));
	CHECK_EQ(store_scan_owned(s, tenant, owner, kvs_cb, o), SL_OK);
}

/* A link event's content: the msgpack str "N@stream". */
static ev_new
link_ev(const char *target)
{
	static msgpack_object objs[8];
	static int            n_objs;
	ev_new                e = evs[0];

	CHECK(n_objs < 8);
	objs[n_objs].type         = MSGPACK_OBJECT_STR;
	objs[n_objs].via.str.ptr  = target;
	objs[n_objs].via.str.size = (uint32_t) strlen(target);
	e.type                    = "$>";
	e.type_len                = 2;
	ev_uuid_generate(e.id);
	e.content = &objs[n_objs++];
	return e;
}

/* ---- a group of writes held behind a gate ---- */

static void
gate_bump(gate *g)
{
	pthread_mutex_lock(&g->mu);
	g->finished++;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

static void
gate_commit_done(store_commit *c, void *arg)
{
	(void) c;
	gate_bump(arg);
}

static void
gate_emit_done(store_emit *e, void *arg)
{
	(void) e;
	gate_bump(arg);
}

/* One queued write: a commit or an emit batch. */
typedef struct qw {
	store_commit *c;
	store_emit   *e;
} qw;

/* Hold the writer in a first commit's done(), queue ws in order, release:
 * the writer takes them all in one group. */
static void
run_group(store *s, const qw *ws, int n)
{
	store_commit g0;
	gate         g;

	memset(&g, 0, sizeof(g));
	pthread_mutex_init(&g.mu, NULL);
	pthread_cond_init(&g.cv, NULL);
	commit_init(&g0, "t", "gate", STORE_EXPECT_ANY, 1);
	g0.done = gate_hold;
	g0.arg  = &g;
	CHECK_EQ(store_submit(s, &g0), SL_OK);
	pthread_mutex_lock(&g.mu);
	while (!g.in_done)
		pthread_cond_wait(&g.cv, &g.mu);
	pthread_mutex_unlock(&g.mu);
	for (int i = 0; i < n; i++) {
		if (ws[i].c != NULL) {
			ws[i].c->done = gate_commit_done;
			ws[i].c->arg  = &g;
			CHECK_EQ(store_submit(s, ws[i].c), SL_OK);
		} else {
			ws[i].e->done = gate_emit_done;
			ws[i].e->arg  = &g;
			CHECK_EQ(store_submit_emit(s, ws[i].e), SL_OK);
		}
	}
	pthread_mutex_lock(&g.mu);
	g.released = true;
	pthread_cond_broadcast(&g.cv);
	while (g.finished < n + 1)
		pthread_cond_wait(&g.cv, &g.mu);
	pthread_mutex_unlock(&g.mu);
	pthread_cond_destroy(&g.cv);
	pthread_mutex_destroy(&g.mu);
}

/* ---- 1. patterns ---- */

static void
test_overlap(void)
{
	static const struct {
		const char *a, *b;
		bool        overlap;
	} cases[] = {
		{ "a", "a", true },
		{ "a", "b", false },
		{ "ab", "abc", false },
		{ "a*", "ab", true },
		{ "ab", "a*", true },
		{ "a*", "a", true },
		{ "a*", "b", false },
		{ "abc*", "ab", false },
		{ "a*", "ab*", true },
		{ "ab*", "a*", true },
		{ "ab*", "ac*", false },
		{ "*", "x", true },
		{ "*", "*", true },
		{ "x*", "*", true },
		{ "$ce-*", "$ce-orders", true },
		{ "$ce-*", "$et-orders", false },
		{ "orders-1", "orders-2", false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (store_pattern_overlap(cases[i].a, cases[i].b)
		    != cases[i].overlap) {
			fprintf(stderr, "overlap('%s', '%s') != %d\n",
			    cases[i].a, cases[i].b, cases[i].overlap);
			exit(1);
		}
	}
}

/* ---- 2. claims ---- */

static void
test_claims(store *s)
{
	char err[256];

	CHECK_EQ(store_claim(s, "orders-*", "p1", "Orders", err, sizeof(err)),
	    SL_OK);
	CHECK_EQ(store_claim(s, "orders-*", "p1", "Orders", err, sizeof(err)),
	    SL_OK);
	/* an owner's own patterns may overlap each other */
	CHECK_EQ(
	    store_claim(s, "orders-vip", "p1", "Orders", err, sizeof(err)),
	    SL_OK);
	CHECK_EQ(store_claim(s, "orders-1", "p2", "Other", err, sizeof(err)),
	    SL_EEXIST);
	CHECK(strstr(err, "Orders") != NULL && strstr(err, "Other") != NULL);
	CHECK_EQ(
	    store_claim(s, "*", "p2", "Other", err, sizeof(err)), SL_EEXIST);
	CHECK_EQ(store_claim(s, "ord*", "p2", "Other", err, sizeof(err)),
	    SL_EEXIST);
	CHECK_EQ(
	    store_claim(s, "a*b", "p2", "Other", err, sizeof(err)), SL_EINVAL);
	CHECK_EQ(
	    store_claim(s, "", "p2", "Other", err, sizeof(err)), SL_EINVAL);
	CHECK_EQ(
	    store_claim(s, "x", "", "Other", err, sizeof(err)), SL_EINVAL);
	CHECK_EQ(
	    store_claim(s, "cust-*", "p2", NULL, err, sizeof(err)), SL_OK);

	CHECK_EQ(store_check_owner(s, "t", "orders-1", NULL, err, sizeof(err)),
	    SL_EOWNED);
	CHECK(strstr(err, "Orders") != NULL);
	CHECK_EQ(store_check_owner(s, "t", "orders-1", "p1", err, sizeof(err)),
	    SL_OK);
	CHECK_EQ(store_check_owner(s, "t", "orders-1", "p2", err, sizeof(err)),
	    SL_EOWNED);
	/* no label: the owner id names it; claims hold in every tenant */
	CHECK_EQ(
	    store_check_owner(s, "other", "cust-9", "p1", err, sizeof(err)),
	    SL_EOWNED);
	CHECK(strstr(err, "p2") != NULL);
	CHECK_EQ(
	    store_check_owner(s, "t", "free", NULL, err, sizeof(err)), SL_OK);
	CHECK_EQ(store_check_owner(s, "t", "orders", NULL, err, sizeof(err)),
	    SL_OK);

	/* unclaim frees the patterns for another owner */
	store_unclaim(s, "p2");
	CHECK_EQ(store_check_owner(s, "t", "cust-9", NULL, err, sizeof(err)),
	    SL_OK);
	CHECK_EQ(
	    store_claim(s, "cust-1", "p3", "Third", err, sizeof(err)), SL_OK);
	store_unclaim(s, "p3");
	store_unclaim(s, "p1");
	CHECK_EQ(store_claim(s, "*", "p4", "All", err, sizeof(err)), SL_OK);
	store_unclaim(s, "p4");
	CHECK_EQ(store_check_owner(s, "t", "orders-1", NULL, err, sizeof(err)),
	    SL_OK);
}

/* ---- 3. client commits on owned streams ---- */

static void
test_client_refused(store *s)
{
	store_commit c;
	store_emit   e;
	store_append a[1];
	char         err[256];
	uint64_t     pos;
	int          n_log;

	CHECK_EQ(
	    store_claim(s, "claimed-*", "pc", "Claimer", err, sizeof(err)),
	    SL_OK);
	pos   = store_next_position(s);
	n_log = log_count(s);
	commit_init(&c, "t", "claimed-1", STORE_EXPECT_ANY, 2);
	CHECK_EQ(store_commit_wait(s, &c), SL_EOWNED);
	CHECK(strstr(c.message, "Claimer") != NULL);
	CHECK_EQ(store_next_position(s), pos);
	CHECK_EQ(log_count(s), n_log);
	CHECK_EQ(next_rev(s, "t", "claimed-1"), 0);
	/* its owner may write there through a commit */
	commit_init(&c, "t", "claimed-1", STORE_EXPECT_NO_STREAM, 1);
	c.owner = "pc";
	CHECK_EQ(store_commit_wait(s, &c), SL_OK);
	CHECK_EQ(c.first_position, pos);
	pos++;

	/* an "owners" record (an emit of "pw", which claims nothing) */
	a[0] = app("rec-1", 0);
	emit_init(&e, "t", "pw", a, 1, NULL, 0, NULL);
	CHECK_EQ(store_emit_wait(s, &e), SL_OK);
	CHECK_EQ(e.first_position, pos);
	pos++;
	n_log = log_count(s);
	commit_init(&c, "t", "rec-1", STORE_EXPECT_ANY, 3);
	CHECK_EQ(store_commit_wait(s, &c), SL_EOWNED);
	CHECK(strstr(c.message, "pw") != NULL);
	CHECK_EQ(store_next_position(s), pos);
	CHECK_EQ(log_count(s), n_log);
	CHECK_EQ(stream_count(s, "t", "rec-1"), 1);
	CHECK_EQ(next_rev(s, "t", "rec-1"), 1);
	/* another projection may not write there either */
	commit_init(&c, "t", "rec-1", STORE_EXPECT_ANY, 1);
	c.owner = "pc";
	CHECK_EQ(store_commit_wait(s, &c), SL_EOWNED);
	/* the record is per tenant: another tenant's rec-1 is free */
	commit_init(&c, "u", "rec-1", STORE_EXPECT_ANY, 1);
	CHECK_EQ(store_commit_wait(s, &c), SL_OK);
	pos++;
	commit_init(&c, "t", "rec-1", 0, 1);
	c.owner = "pw";
	CHECK_EQ(store_commit_wait(s, &c), SL_OK);
	CHECK_EQ(c.first_revision, 1);
	CHECK_EQ(store_check_owner(s, "t", "rec-1", NULL, err, sizeof(err)),
	    SL_EOWNED);
	CHECK_EQ(
	    store_check_owner(s, "t", "rec-1", "pw", err, sizeof(err)), SL_OK);
	store_unclaim(s, "pc");
}

/* ---- 4. an emit batch: appends, states, checkpoint together ---- */

typedef struct waiter {
	store   *s;
	uint64_t known;
	uint64_t got;
} waiter;

static void *
waiter_main(void *arg)
{
	waiter *w = arg;

	w->got = store_wait(w->s, w->known, 10000);
	return NULL;
}

static void
test_emit_batch(store *s)
{
	store_emit   e;
	store_append a[5];
	store_kv     st[2];
	collect      col;
	kvs          o;
	pthread_t    th;
	waiter       w;
	uint64_t     pos = store_next_position(s);
	char         err[256];
	int          n;

	a[0]    = app("e-x", 0);
	a[1]    = app("e-y", 1);
	a[2]    = app("e-x", 2);
	a[3]    = app("$links", 0);
	a[3].ev = link_ev("1@e-x");
	a[4]    = app("e-z", 3);
	st[0]   = kv("k2", "state-2");
	st[1]   = kv("k1", "state-1");
	emit_init(&e, "t", "pe", a, 5, st, 2, "cp-1");

	/* a reader waiting on the head wakes up as for a commit */
	w.s     = s;
	w.known = pos;
	w.got   = 0;
	CHECK_EQ(pthread_create(&th, NULL, waiter_main, &w), 0);
	CHECK_EQ(store_emit_wait(s, &e), SL_OK);
	CHECK_EQ(pthread_join(th, NULL), 0);
	CHECK_EQ(w.got, pos + 5);
	CHECK_EQ(e.first_position, pos);
	CHECK_EQ(store_next_position(s), pos + 5);

	collect_init(&col);
	CHECK_EQ(store_scan(s, pos, 100, collect_cb, &col, NULL), SL_OK);
	CHECK_EQ(col.n, 5);
	CHECK_STREQ(col.items[0].stream, "e-x");
	CHECK_EQ(col.items[0].revision, 0);
	CHECK_STREQ(col.items[1].stream, "e-y");
	CHECK_EQ(col.items[1].revision, 0);
	CHECK_STREQ(col.items[2].stream, "e-x");
	CHECK_EQ(col.items[2].revision, 1);
	CHECK_STREQ(col.items[3].stream, "$links");
	CHECK_STREQ(col.items[3].type, "$>");
	CHECK_STREQ(col.items[3].content_str, "1@e-x");
	CHECK_STREQ(col.items[4].stream, "e-z");
	for (size_t i = 0; i < 5; i++)
		CHECK_EQ(col.items[i].position, pos + i);
	col.n = 0;
	CHECK_EQ(
	    store_scan_stream(s, "t", "e-x", 0, 10, collect_cb, &col), SL_OK);
	CHECK_EQ(col.n, 2);
	CHECK_EQ(col.items[1].position, pos + 2);
	/* the link resolves to its target */
	col.n = 0;
	CHECK_EQ(
	    store_resolve_link(s, "t", "1@e-x", 5, collect_cb, &col), SL_OK);
	CHECK_EQ(col.n, 1);
	CHECK_EQ(col.items[0].position, pos + 2);
	CHECK_STREQ(col.items[0].stream, "e-x");
	CHECK_EQ(col.items[0].revision, 1);
	/* not in another tenant */
	CHECK_EQ(store_resolve_link(s, "u", "1@e-x", 5, collect_cb, &col),
	    SL_ENOTFOUND);
	collect_free(&col);

	CHECK_EQ(get_checkpoint(s, "t", "pe", &o), SL_OK);
	CHECK_EQ(o.n, 1);
	CHECK_STREQ(o.key[0], "");
	CHECK_STREQ(o.val[0], "cp-1");
	/* the callback's nonzero value comes back */
	n = 0;
	CHECK_EQ(store_get_checkpoint(s, "t", "pe", stop7_cb, &n), 7);
	CHECK_EQ(store_get_pstate(s, "t", "pe", "k1", 2, stop7_cb, &n), 7);
	CHECK_EQ(store_scan_pstates(s, "t", "pe", NULL, 0, stop7_cb, &n), 7);
	CHECK_EQ(n, 3);
	CHECK_EQ(get_checkpoint(s, "u", "pe", &o), SL_ENOTFOUND);
	CHECK_EQ(o.n, 0);
	CHECK_EQ(get_state(s, "t", "pe", "k1", &o), SL_OK);
	CHECK_STREQ(o.val[0], "state-1");
	CHECK_EQ(get_state(s, "t", "pe", "k3", &o), SL_ENOTFOUND);
	scan_states(s, "t", "pe", NULL, &o);
	CHECK_EQ(o.n, 2);
	CHECK_STREQ(o.key[0], "k1");
	CHECK_STREQ(o.key[1], "k2");
	CHECK_STREQ(o.val[1], "state-2");
	scan_states(s, "t", "pe", "k1", &o);
	CHECK_EQ(o.n, 1);
	CHECK_STREQ(o.key[0], "k2");
	scan_states(s, "t", "pe", "k0", &o);
	CHECK_EQ(o.n, 2);
	scan_states(s, "t", "pex", NULL, &o); /* not a prefix match */
	CHECK_EQ(o.n, 0);
	scan_owned(s, "t", "pe", &o);
	CHECK_EQ(o.n, 4);
	CHECK_STREQ(o.key[0], "$links");
	CHECK_STREQ(o.key[1], "e-x");
	CHECK_STREQ(o.key[2], "e-y");
	CHECK_STREQ(o.key[3], "e-z");
	CHECK_EQ(store_check_owner(s, "t", "e-y", NULL, err, sizeof(err)),
	    SL_EOWNED);
	CHECK(strstr(err, "pe") != NULL);

	/* a second batch: a state deleted, one put, the stream goes on */
	a[0]  = app("e-x", 4);
	st[0] = kv("k1", NULL);
	st[1] = kv("", "empty-key");
	emit_init(&e, "t", "pe", a, 1, st, 2, "cp-2");
	CHECK_EQ(store_emit_wait(s, &e), SL_OK);
	CHECK_EQ(e.first_position, pos + 5);
	CHECK_EQ(next_rev(s, "t", "e-x"), 3);
	CHECK_EQ(get_state(s, "t", "pe", "k1", &o), SL_ENOTFOUND);
	CHECK_EQ(get_state(s, "t", "pe", "", &o), SL_OK);
	CHECK_STREQ(o.val[0], "empty-key");
	scan_states(s, "t", "pe", NULL, &o);
	CHECK_EQ(o.n, 2);
	CHECK_STREQ(o.key[0], "");
	CHECK_STREQ(o.key[1], "k2");
	CHECK_EQ(get_checkpoint(s, "t", "pe", &o), SL_OK);
	CHECK_STREQ(o.val[0], "cp-2");

	/* states and checkpoint only: no event, still durable */
	emit_init(&e, "t", "pe", NULL, 0, NULL, 0, "cp-3");
	CHECK_EQ(store_emit_wait(s, &e), SL_OK);
	CHECK_EQ(store_next_position(s), pos + 6);
	CHECK_EQ(get_checkpoint(s, "t", "pe", &o), SL_OK);
	CHECK_STREQ(o.val[0], "cp-3");

	/* bad batches: refused before anything is written */
	CHECK_EQ(store_submit_emit(s, NULL), SL_EINVAL);
	emit_init(&e, NULL, "pe", NULL, 0, NULL, 0, NULL);
	CHECK_EQ(store_emit_wait(s, &e), SL_EINVAL);
	emit_init(&e, "t", "pe", NULL, 1, NULL, 0, NULL); /* appends NULL */
	CHECK_EQ(store_emit_wait(s, &e), SL_EINVAL);
	a[0] = app("", 0);
	a[1] = app("e-x", 1);
	emit_init(&e, "t", "pe", a, 2, st, 1, "cp-bad");
	CHECK_EQ(store_emit_wait(s, &e), SL_EINVAL);
	CHECK(strstr(e.message, "appends[0]") != NULL);
	/* a str content that is not a link's: the whole batch goes */
	a[0]             = app("e-x", 0);
	a[1]             = app("e-x", 0);
	a[1].ev          = link_ev("0@e-x");
	a[1].ev.type     = "Note";
	a[1].ev.type_len = 4;
	CHECK_EQ(store_emit_wait(s, &e), SL_EINVAL);
	CHECK(strstr(e.message, "appends[1]") != NULL);
	CHECK_EQ(store_next_position(s), pos + 6);
	CHECK_EQ(next_rev(s, "t", "e-x"), 3);
	CHECK_EQ(get_checkpoint(s, "t", "pe", &o), SL_OK);
	CHECK_STREQ(o.val[0], "cp-3");
	/* a stream claimed by another projection: EOWNED, nothing kept */
	CHECK_EQ(
	    store_claim(s, "taken-*", "pt", "Taker", err, sizeof(err)), SL_OK);
	a[0] = app("e-x", 0);
	a[1] = app("taken-1", 0);
	CHECK_EQ(store_emit_wait(s, &e), SL_EOWNED);
	CHECK(strstr(e.message, "Taker") != NULL);
	CHECK_EQ(store_next_position(s), pos + 6);
	CHECK_EQ(next_rev(s, "t", "e-x"), 3);
	CHECK_EQ(get_checkpoint(s, "t", "pe", &o), SL_OK);
	CHECK_STREQ(o.val[0], "cp-3");
	n = 0;
	CHECK_EQ(store_scan_owned(s, "t", "pe", count_kv_cb, &n), SL_OK);
	CHECK_EQ(n, 4);
	store_unclaim(s, "pt");
}

/* ---- 5. a refused batch in a group leaves nothing; the rest goes on ---- */

static void
test_refused_in_group(store *s)
{
	store_commit c1, c2;
	store_emit   e1, e2;
	store_append a1[2], a2[1];
	store_kv     st[1];
	kvs          o;
	uint64_t     pos  = store_next_position(s);
	uint64_t     txn0 = store_txn_count(s);
	uint64_t     ex   = next_rev(s, "t", "e-x");

	commit_init(&c1, "t", "g-a", STORE_EXPECT_ANY, 1);
	/* pq writes q-1, then e-x, which pe owns: refused as a whole */
	a1[0] = app("q-1", 0);
	a1[1] = app("e-x", 1);
	st[0] = kv("k", "v");
	emit_init(&e1, "t", "pq", a1, 2, st, 1, "cpq");
	a2[0] = app("q2-1", 2);
	emit_init(&e2, "t", "pq2", a2, 1, NULL, 0, "cpq2");
	commit_init(&c2, "t", "g-b", STORE_EXPECT_ANY, 2);
	{
		qw ws[] = { { &c1, NULL }, { NULL, &e1 }, { NULL, &e2 },
			{ &c2, NULL } };

		run_group(s, ws, 4);
	}
	/* arrival order: gate, c1, (e1 refused), e2, c2 */
	CHECK_EQ(c1.rc, SL_OK);
	CHECK_EQ(c1.first_position, pos + 1);
	CHECK_EQ(e1.rc, SL_EOWNED);
	CHECK(strstr(e1.message, "e-x") != NULL);
	CHECK(strstr(e1.message, "pe") != NULL);
	CHECK_EQ(e2.rc, SL_OK);
	CHECK_EQ(e2.first_position, pos + 2);
	CHECK_EQ(c2.rc, SL_OK);
	CHECK_EQ(c2.first_position, pos + 3);
	CHECK_EQ(store_next_position(s), pos + 5);
	CHECK_EQ(store_txn_count(s), txn0 + 2);
	/* nothing of e1: no event, no owner record, no state or checkpoint */
	CHECK_EQ(next_rev(s, "t", "q-1"), 0);
	CHECK_EQ(next_rev(s, "t", "e-x"), ex);
	CHECK_EQ(get_checkpoint(s, "t", "pq", &o), SL_ENOTFOUND);
	CHECK_EQ(get_state(s, "t", "pq", "k", &o), SL_ENOTFOUND);
	scan_owned(s, "t", "pq", &o);
	CHECK_EQ(o.n, 0);
	CHECK_EQ(get_checkpoint(s, "t", "pq2", &o), SL_OK);
	CHECK_STREQ(o.val[0], "cpq2");
	scan_owned(s, "t", "pq2", &o);
	CHECK_EQ(o.n, 1);
	CHECK_STREQ(o.key[0], "q2-1");
}

/* ---- 5b. commits and emit batches from threads at once ---- */

#define MIX_ROUNDS 200

static void *
mix_committer(void *arg)
{
	store       *s = arg;
	store_commit c;

	for (int i = 0; i < MIX_ROUNDS; i++) {
		commit_init(&c, "t", "mix-c", STORE_EXPECT_ANY, 1 + i % 2);
		CHECK_EQ(store_commit_wait(s, &c), SL_OK);
	}
	return NULL;
}

static void *
mix_emitter(void *arg)
{
	store       *s = arg;
	store_emit   e;
	store_append a[2];
	char         cp[32];

	for (int i = 0; i < MIX_ROUNDS; i++) {
		a[0] = app("mix-e", 0);
		a[1] = app("mix-e", 1);
		snprintf(cp, sizeof(cp), "cp-%d", i);
		emit_init(&e, "t", "pm", a, 1 + i % 2, NULL, 0, cp);
		CHECK_EQ(store_emit_wait(s, &e), SL_OK);
	}
	return NULL;
}

static void
test_mixed_threads(store *s)
{
	pthread_t th[2];
	collect   col;
	kvs       o;
	uint64_t  pos = store_next_position(s);
	int       n   = 3 * MIX_ROUNDS / 2; /* per thread: 1, 2, 1, 2... */

	CHECK_EQ(pthread_create(&th[0], NULL, mix_committer, s), 0);
	CHECK_EQ(pthread_create(&th[1], NULL, mix_emitter, s), 0);
	CHECK_EQ(pthread_join(th[0], NULL), 0);
	CHECK_EQ(pthread_join(th[1], NULL), 0);
	CHECK_EQ(store_next_position(s), pos + 2 * n);
	CHECK_EQ(stream_count(s, "t", "mix-c"), n);
	CHECK_EQ(stream_count(s, "t", "mix-e"), n);
	CHECK_EQ(next_rev(s, "t", "mix-e"), n);
	CHECK_EQ(get_checkpoint(s, "t", "pm", &o), SL_OK);
	CHECK_STREQ(o.val[0], "cp-199");
	/* gap-free: the last position is where it should be */
	collect_init(&col);
	CHECK_EQ(
	    store_scan(s, pos + 2 * n - 1, 10, collect_cb, &col, NULL), SL_OK);
	CHECK_EQ(col.n, 1);
	CHECK_EQ(col.items[0].position, pos + 2 * n - 1);
	collect_free(&col);
}

/* ---- 6. reset: a soft delete of what the owner wrote ---- */

static void
test_reset(store *s)
{
	store_emit   e;
	store_commit c;
	store_append a[3];
	store_kv     st[1];
	collect      col;
	kvs          o;
	uint64_t     pos0 = store_next_position(s), pos1;
	int          n_log;

	a[0]  = app("r-a", 0);
	a[1]  = app("r-a", 1);
	a[2]  = app("r-b", 2);
	st[0] = kv("k", "v");
	emit_init(&e, "t", "pr", a, 3, st, 1, "cp-r1");
	CHECK_EQ(store_emit_wait(s, &e), SL_OK);
	/* another tenant's streams of the same owner are not touched */
	emit_init(&e, "u", "pr", a, 1, NULL, 0, "cp-u");
	CHECK_EQ(store_emit_wait(s, &e), SL_OK);
	CHECK_EQ(
	    store_resolve_link(s, "t", "1@r-a", 5, count_cb, &(int) { 0 }),
	    SL_OK);
	n_log = log_count(s);

	a[0] = app("r-a", 3);
	pos1 = store_next_position(s);
	emit_init(&e, "t", "pr", a, 1, NULL, 0, "cp-r2");
	e.reset = true;
	CHECK_EQ(store_emit_wait(s, &e), SL_OK);
	CHECK_EQ(e.first_position, pos1);

	/* r-a from 0: only the new event, at the next revision */
	collect_init(&col);
	CHECK_EQ(
	    store_scan_stream(s, "t", "r-a", 0, 10, collect_cb, &col), SL_OK);
	CHECK_EQ(col.n, 1);
	CHECK_EQ(col.items[0].revision, 2);
	CHECK_EQ(col.items[0].position, pos1);
	collect_free(&col);
	CHECK_EQ(next_rev(s, "t", "r-a"), 3);
	CHECK_EQ(stream_count(s, "t", "r-b"), 0);
	CHECK_EQ(next_rev(s, "t", "r-b"), 1);
	/* the old events stay in the log */
	CHECK_EQ(log_count(s), n_log + 1);
	col.n = 0;
	collect_init(&col);
	CHECK_EQ(store_scan(s, pos0, 3, collect_cb, &col, NULL), SL_OK);
	CHECK_EQ(col.n, 3);
	CHECK_STREQ(col.items[2].stream, "r-b");
	collect_free(&col);
	/* links to them no longer resolve; to the new one they do */
	CHECK_EQ(
	    store_resolve_link(s, "t", "1@r-a", 5, count_cb, &(int) { 0 }),
	    SL_ENOTFOUND);
	CHECK_EQ(
	    store_resolve_link(s, "t", "0@r-b", 5, count_cb, &(int) { 0 }),
	    SL_ENOTFOUND);
	CHECK_EQ(
	    store_resolve_link(s, "t", "2@r-a", 5, count_cb, &(int) { 0 }),
	    SL_OK);
	/* states gone, checkpoint the new one, r-b no longer owned */
	CHECK_EQ(get_state(s, "t", "pr", "k", &o), SL_ENOTFOUND);
	scan_states(s, "t", "pr", NULL, &o);
	CHECK_EQ(o.n, 0);
	CHECK_EQ(get_checkpoint(s, "t", "pr", &o), SL_OK);
	CHECK_STREQ(o.val[0], "cp-r2");
	scan_owned(s, "t", "pr", &o);
	CHECK_EQ(o.n, 1);
	CHECK_STREQ(o.key[0], "r-a");
	commit_init(&c, "t", "r-b", 0, 1);
	CHECK_EQ(store_commit_wait(s, &c), SL_OK);
	CHECK_EQ(c.first_revision, 1);
	commit_init(&c, "t", "r-a", STORE_EXPECT_ANY, 1);
	CHECK_EQ(store_commit_wait(s, &c), SL_EOWNED);
	/* tenant u untouched */
	CHECK_EQ(stream_count(s, "u", "r-a"), 1);
	CHECK_EQ(get_checkpoint(s, "u", "pr", &o), SL_OK);
	CHECK_STREQ(o.val[0], "cp-u");

	/* a reset alone drops the checkpoint too */
	emit_init(&e, "t", "pr", NULL, 0, NULL, 0, NULL);
	e.reset = true;
	CHECK_EQ(store_emit_wait(s, &e), SL_OK);
	CHECK_EQ(get_checkpoint(s, "t", "pr", &o), SL_ENOTFOUND);
	CHECK_EQ(stream_count(s, "t", "r-a"), 0);
	CHECK_EQ(next_rev(s, "t", "r-a"), 3);
	scan_owned(s, "t", "pr", &o);
	CHECK_EQ(o.n, 0);
}

/* link_prev: a link to the append before it, its revision the writer's
 * (a partition's result linked into the root result stream); refused
 * as the first append, with nothing written */
/* ---- a batch interleaving many streams (store_emit.c's cursors) ---- */

#define IL_STREAMS 40
#define IL_MAX     6000

/* Where each append of the interleaved batches went. */
typedef struct il_log {
	uint64_t pos[IL_STREAMS][IL_MAX / 4];
	size_t   n[IL_STREAMS];
} il_log;

typedef struct il_check {
	const il_log *l;
	size_t        k, seen;
	msgpack_zone  zone;
} il_check;

/* Stream k's events in revision order: each where the log put it. */
static int
il_cb(void *arg, uint64_t position, const void *data, size_t len)
{
	il_check *c = arg;
	ev_view   v;
	char      name[16];

	msgpack_zone_clear(&c->zone);
	CHECK_EQ(ev_decode(data, len, position, &c->zone, &v), SL_OK);
	snprintf(name, sizeof(name), "il-%02zu", c->k);
	CHECK_STREQ(v.stream, name);
	CHECK_EQ(v.revision, c->seen);
	CHECK(c->seen < c->l->n[c->k]);
	CHECK_EQ(position, c->l->pos[c->k][c->seen]);
	c->seen++;
	return 0;
}

static void
il_verify(store *s, const il_log *l)
{
	il_check c;

	memset(&c, 0, sizeof(c));
	c.l = l;
	CHECK(msgpack_zone_init(&c.zone, 4096));
	for (size_t k = 0; k < IL_STREAMS; k++) {
		char name[16];
		snprintf(name, sizeof(name), "il-%02zu", k);
		c.k    = k;
		c.seen = 0;
		CHECK_EQ(store_scan_stream(s, "t", name, 0, IL_MAX, il_cb, &c),
		    SL_OK);
		CHECK_EQ(c.seen, l->n[k]);
		CHECK_EQ(next_rev(s, "t", name), l->n[k]);
	}
	msgpack_zone_destroy(&c.zone);
}

/* Appends spread over IL_STREAMS streams (more than the batch keeps
 * cursors and heads for), in an order that jumps between them, enough
 * to split the stream index's pages under every stream, in the middle
 * of the index (streams before and after): every event at its position,
 * revisions gap-free in each stream, heads right, in a second batch
 * too; a batch refused at its last append leaves no trace. */
static void
test_emit_interleaved(store *s)
{
	static il_log       l;
	static store_append a[IL_MAX];
	static char         names[IL_STREAMS][16];
	store_emit          e;
	uint64_t            pos;
	ev_new              lk = link_ev("0@e-x");

	memset(&l, 0, sizeof(l));
	for (size_t k = 0; k < IL_STREAMS; k++)
		snprintf(names[k], sizeof(names[k]), "il-%02zu", k);
	for (int round = 0; round < 2; round++) {
		size_t n = round == 0 ? IL_MAX : IL_MAX / 3;
		pos      = store_next_position(s);
		for (size_t i = 0; i < n; i++) {
			size_t k = (i * 7 + i / 50 + (size_t) round * 3)
			    % (round == 0 ? IL_STREAMS : IL_STREAMS / 2);
			a[i] = app(names[k], (int) (i % 5));
			if (i % 9 == 4) /* links too */
				a[i].ev = lk;
			l.pos[k][l.n[k]++] = pos + i;
		}
		emit_init(&e, "t", "pil", a, n, NULL, 0, "cp-il");
		CHECK_EQ(store_emit_wait(s, &e), SL_OK);
		CHECK_EQ(e.first_position, pos);
		CHECK_EQ(store_next_position(s), pos + n);
		il_verify(s, &l);
	}
	/* refused at the end (e-x is pe's): nothing of it stays */
	pos = store_next_position(s);
	for (size_t i = 0; i < 999; i++)
		a[i] = app(names[(i * 13) % IL_STREAMS], 1);
	a[999] = app("e-x", 2);
	emit_init(&e, "t", "pil", a, 1000, NULL, 0, "cp-il2");
	CHECK_EQ(store_emit_wait(s, &e), SL_EOWNED);
	CHECK_EQ(store_next_position(s), pos);
	il_verify(s, &l);
}

static void
test_link_prev(store *s)
{
	static const unsigned char empty = 0xa0;
	msgpack_object             ph;
	store_emit                 e;
	store_append               a[4];
	collect                    col;
	size_t                     off = 0;
	msgpack_zone               z;
	CHECK(msgpack_zone_init(&z, 256));
	CHECK(msgpack_unpack((const char *) &empty, 1, &off, &z, &ph)
	    == MSGPACK_UNPACK_SUCCESS);
	a[0]             = app("lp-1", 0);
	a[1]             = app("lp-all", 1);
	a[1].ev.type     = EV_LINK_TYPE;
	a[1].ev.type_len = 2;
	a[1].ev.content  = &ph;
	a[1].link_prev   = true;
	a[2]             = app("lp-1", 2);
	a[3]             = a[1];
	emit_init(&e, "t", "plp", a, 4, NULL, 0, NULL);
	CHECK_EQ(store_emit_wait(s, &e), SL_OK);
	collect_init(&col);
	CHECK_EQ(store_scan_stream(s, "t", "lp-all", 0, 10, collect_cb, &col),
	    SL_OK);
	CHECK_EQ(col.n, 2);
	CHECK_STREQ(col.items[0].type, EV_LINK_TYPE);
	CHECK_STREQ(col.items[0].content_str, "0@lp-1");
	CHECK_STREQ(col.items[1].content_str, "1@lp-1");
	collect_free(&col);
	CHECK_EQ(
	    store_resolve_link(s, "t", "1@lp-1", 6, count_cb, &(int) { 0 }),
	    SL_OK);
	uint64_t pos = store_next_position(s);
	emit_init(&e, "t", "plp", &a[1], 1, NULL, 0, NULL);
	CHECK_EQ(store_emit_wait(s, &e), SL_EINVAL);
	CHECK(strstr(e.message, "link to the append before") != NULL);
	CHECK_EQ(store_next_position(s), pos);
	msgpack_zone_destroy(&z);
}

/* ---- 7. link parsing ---- */

static void
test_links_malformed(store *s)
{
	static const char *bad[] = { "x@", "12", "@s", "-1@s", "1@", "",
		"+1@e-x", " 1@e-x", "1 @e-x", "01@e-x", "1x@e-x", "0x1@e-x",
		"18446744073709551615@e-x", "99999999999999999999@e-x" };
	int                calls = 0;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (store_resolve_link(
		        s, "t", bad[i], strlen(bad[i]), count_cb, &calls)
		    != SL_EINVAL) {
			fprintf(stderr, "link '%s' was not refused\n", bad[i]);
			exit(1);
		}
	}
	/* a NUL inside the stream id, and the length is what counts */
	CHECK_EQ(store_resolve_link(s, "t", "0@e-x\0y", 7, count_cb, &calls),
	    SL_EINVAL);
	CHECK_EQ(
	    store_resolve_link(s, "t", "0@e-x-and-more", 5, count_cb, &calls),
	    SL_OK);
	CHECK_EQ(calls, 1);
	CHECK_EQ(store_resolve_link(s, NULL, "0@e-x", 5, count_cb, &calls),
	    SL_EINVAL);
	/* well-formed, but nothing there */
	CHECK_EQ(store_resolve_link(s, "t", "0@nowhere", 9, count_cb, &calls),
	    SL_ENOTFOUND);
	CHECK_EQ(store_resolve_link(s, "t", "99@e-x", 6, count_cb, &calls),
	    SL_ENOTFOUND);
	CHECK_EQ(store_resolve_link(s, "t", "0@@", 3, count_cb, &calls),
	    SL_ENOTFOUND);
	CHECK_EQ(calls, 1);
}

/* ---- 8. the codec: str content only for links ---- */

static void
test_codec(void)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	msgpack_zone    zone;
	ev_new          e = link_ev("3@s");
	ev_view         v;
	char            idbuf[16] = { 0 };

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	CHECK(msgpack_zone_init(&zone, 1024));
	CHECK_EQ(ev_encode(&pk, "t", 1, "l", 1, 0, &e), SL_OK);
	CHECK_EQ(ev_decode(sb.data, sb.size, 7, &zone, &v), SL_OK);
	CHECK_STREQ(v.type, "$>");
	CHECK_EQ(v.content.type, MSGPACK_OBJECT_STR);
	CHECK_EQ(v.content.via.str.size, 3);
	CHECK(memcmp(v.content.via.str.ptr, "3@s", 3) == 0);

	/* another type with a str content: refused both ways */
	msgpack_sbuffer_clear(&sb);
	e.type     = "$>x";
	e.type_len = 3;
	CHECK_EQ(ev_encode(&pk, "t", 1, "l", 1, 0, &e), SL_EINVAL);
	e.type     = "Note";
	e.type_len = 4;
	CHECK_EQ(ev_encode(&pk, "t", 1, "l", 1, 0, &e), SL_EINVAL);
	CHECK_EQ(sb.size, 0);
	msgpack_pack_array(&pk, 12);
	msgpack_pack_str_with_body(&pk, "t", 1);
	msgpack_pack_str_with_body(&pk, "l", 1);
	msgpack_pack_uint64(&pk, 0);
	msgpack_pack_bin_with_body(&pk, idbuf, 16);
	msgpack_pack_str_with_body(&pk, "Note", 4);
	msgpack_pack_uint32(&pk, 1);
	msgpack_pack_int64(&pk, 5);
	msgpack_pack_str_with_body(&pk, "c", 1);
	msgpack_pack_str_with_body(&pk, "", 0);
	msgpack_pack_false(&pk);
	msgpack_pack_map(&pk, 0);
	msgpack_pack_str_with_body(&pk, "3@s", 3);
	msgpack_zone_clear(&zone);
	CHECK_EQ(ev_decode(sb.data, sb.size, 7, &zone, &v), SL_EPROTO);
	/* a link with a map content is still an event (not a link's form,
	 * but a map is always accepted) */
	msgpack_zone_destroy(&zone);
	msgpack_sbuffer_destroy(&sb);
}

/* ---- 9. everything persists across a reopen ---- */

static void
test_reopened(store *s, uint64_t pos)
{
	store_commit c;
	kvs          o;
	collect      col;

	CHECK_EQ(store_next_position(s), pos);
	CHECK_EQ(get_checkpoint(s, "t", "pe", &o), SL_OK);
	CHECK_STREQ(o.val[0], "cp-3");
	scan_states(s, "t", "pe", NULL, &o);
	CHECK_EQ(o.n, 2);
	CHECK_STREQ(o.key[1], "k2");
	CHECK_STREQ(o.val[1], "state-2");
	scan_owned(s, "t", "pe", &o);
	CHECK_EQ(o.n, 4);
	scan_owned(s, "t", "pr", &o);
	CHECK_EQ(o.n, 0);
	CHECK_EQ(stream_count(s, "t", "r-a"), 0);
	CHECK_EQ(next_rev(s, "t", "r-a"), 3);
	collect_init(&col);
	CHECK_EQ(
	    store_resolve_link(s, "t", "1@e-x", 5, collect_cb, &col), SL_OK);
	CHECK_EQ(col.n, 1);
	CHECK_STREQ(col.items[0].stream, "e-x");
	collect_free(&col);
	/* owner records persist (claims are the runtime's to make again) */
	commit_init(&c, "t", "e-x", STORE_EXPECT_ANY, 1);
	CHECK_EQ(store_commit_wait(s, &c), SL_EOWNED);
	commit_init(&c, "t", "claimed-1", STORE_EXPECT_ANY, 1);
	CHECK_EQ(store_commit_wait(s, &c), SL_OK);
	CHECK_EQ(store_next_position(s), pos + 1);
}

/* ---- 10. a batch that does not fit the map ---- */

static void
test_full(void)
{
	char             path[4200];
	store           *s;
	store_emit       e;
	store_commit     c;
	store_append     a[4];
	store_kv         st[1];
	msgpack_sbuffer  big;
	msgpack_unpacked up;
	ev_new           fat;
	kvs              o;
	size_t           bin = 700u << 10;
	uint64_t         pos;

	/* events of 700 KiB each (under the event limit), 4 of them for a
	 * 2 MiB map */
	fat         = evs[0];
	fat.content = tev_padded(&big, &up, bin);

	snprintf(path, sizeof(path), "%s/small", tu_tmpdir());
	CHECK_EQ(store_open(path, 2u << 20, false, &s), SL_OK);
	a[0] = app("f-a", 0);
	emit_init(&e, "t", "pf", a, 1, NULL, 0, "cp-f1");
	CHECK_EQ(store_emit_wait(s, &e), SL_OK);
	pos = store_next_position(s);

	for (int i = 0; i < 4; i++) {
		a[i]    = app("f-b", 0);
		a[i].ev = fat;
	}
	st[0] = kv("k", "v");
	emit_init(&e, "t", "pf", a, 4, st, 1, "cp-f2");
	e.reset = true;
	CHECK_EQ(store_emit_wait(s, &e), SL_EFULL);
	CHECK(e.message[0] != '\0');
	CHECK_EQ(store_next_position(s), pos);
	CHECK_EQ(next_rev(s, "t", "f-b"), 0);
	CHECK_EQ(stream_count(s, "t", "f-a"), 1); /* the reset undone too */
	CHECK_EQ(get_state(s, "t", "pf", "k", &o), SL_ENOTFOUND);
	CHECK_EQ(get_checkpoint(s, "t", "pf", &o), SL_OK);
	CHECK_STREQ(o.val[0], "cp-f1");

	/* one event over the event size limit: SL_ETOOBIG, not the map */
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&big);
	a[0]            = app("f-c", 0);
	a[0].ev         = fat;
	a[0].ev.content = tev_padded(&big, &up, 3u << 20);
	emit_init(&e, "t", "pf", a, 1, NULL, 0, NULL);
	CHECK_EQ(store_emit_wait(s, &e), SL_ETOOBIG);

	/* the store goes on */
	a[0] = app("f-a", 1);
	emit_init(&e, "t", "pf", a, 1, NULL, 0, "cp-f3");
	CHECK_EQ(store_emit_wait(s, &e), SL_OK);
	CHECK_EQ(e.first_position, pos);
	commit_init(&c, "t", "f-z", STORE_EXPECT_ANY, 1);
	CHECK_EQ(store_commit_wait(s, &c), SL_OK);
	CHECK_EQ(c.first_position, pos + 1);
	CHECK_EQ(get_checkpoint(s, "t", "pf", &o), SL_OK);
	CHECK_STREQ(o.val[0], "cp-f3");
	store_close(s);

	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&big);
}

int
main(void)
{
	char     path[4200];
	store   *s;
	tev      t[5];
	uint64_t pos;

	for (int i = 0; i < 5; i++) {
		tev_init(&t[i], "Tick", "{\"i\":1,\"s\":\"x\"}");
		evs[i] = t[i].e;
	}
	test_overlap();
	test_codec();
	snprintf(path, sizeof(path), "%s/log", tu_tmpdir());
	CHECK_EQ(store_open(path, 64u << 20, true, &s), SL_OK);
	test_claims(s);
	test_client_refused(s);
	test_emit_batch(s);
	test_refused_in_group(s);
	test_mixed_threads(s);
	test_reset(s);
	test_link_prev(s);
	test_emit_interleaved(s);
	test_links_malformed(s);
	pos = store_next_position(s);
	store_close(s);

	CHECK_EQ(store_open(path, 64u << 20, true, &s), SL_OK);
	test_reopened(s, pos);
	store_close(s);

	test_full();
	for (int i = 0; i < 5; i++)
		tev_free(&t[i]);
	return 0;
}
