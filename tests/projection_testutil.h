/*
 * Shared by the processing tests: committing generated events to a real
 * store, an Account Details fold recomputed here in plain C (independent of
 * the plugin), comparing it with the stored read models, and bounded waits
 * on a processor's status.
 */
#ifndef SL_PROJECTION_TESTUTIL_H
#define SL_PROJECTION_TESTUTIL_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>

#include "json.h"
#include "mp.h"
#include "plugins.h"
#include "projection.h"
#include "readmodels.h"
#include "store.h"
#include "testutil.h"

#define PT_WAIT_MS 10000

static inline int64_t
pt_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void
pt_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0)
		;
}

/* ---- committing events ---- */

/* A msgpack object (in zone z) from JSON text. */
static inline msgpack_object
pt_json_obj(msgpack_zone *z, const char *json)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	msgpack_object  o;
	char            err[200];
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (json_text_to_mp(json, 0, &pk, err, sizeof(err)) != SL_OK) {
		fprintf(stderr, "bad test JSON %s: %s\n", json, err);
		exit(1);
	}
	/* the object points into the data: keep a copy in the zone */
	char *copy = msgpack_zone_malloc(z, sb.size);
	CHECK(copy != NULL);
	memcpy(copy, sb.data, sb.size);
	size_t off = 0;
	CHECK(msgpack_unpack(copy, sb.size, &off, z, &o)
	    == MSGPACK_UNPACK_SUCCESS);
	msgpack_sbuffer_destroy(&sb);
	return o;
}

/* One event to commit: content as JSON text. */
typedef struct pt_event {
	const char *type;
	char        json[256];
} pt_event;

/*
 * Commit n events to tenant/stream in one commit (expected revision: any)
 * and wait for it. @return the position of the first event.
 */
static inline uint64_t pt_commit_ex(store *s, const char *tenant,
    const char *stream, const pt_event *evs, size_t n, bool is_public);
static inline uint64_t pt_commit_meta(store *s, const char *tenant,
    const char *stream, const pt_event *evs, size_t n, bool is_public,
    const char *metadata);

static inline uint64_t
pt_commit(store *s, const char *tenant, const char *stream,
    const pt_event *evs, size_t n)
{
	return pt_commit_ex(s, tenant, stream, evs, n, false);
}

/* pt_commit, every event committed as public or not. */
static inline uint64_t
pt_commit_ex(store *s, const char *tenant, const char *stream,
    const pt_event *evs, size_t n, bool is_public)
{
	return pt_commit_meta(s, tenant, stream, evs, n, is_public, NULL);
}

/* pt_commit_ex, every event with the metadata of a JSON object (NULL:
 * none). */
static inline uint64_t
pt_commit_meta(store *s, const char *tenant, const char *stream,
    const pt_event *evs, size_t n, bool is_public, const char *metadata)
{
	msgpack_zone z;
	CHECK(msgpack_zone_init(&z, 4096));
	ev_new *en = calloc(n, sizeof(*en));
	CHECK(en != NULL);
	msgpack_object *meta = NULL;
	if (metadata != NULL) {
		CHECK((meta = msgpack_zone_malloc(&z, sizeof(*meta))) != NULL);
		*meta = pt_json_obj(&z, metadata);
	}
	for (size_t i = 0; i < n; i++) {
		msgpack_object *o = msgpack_zone_malloc(&z, sizeof(*o));
		CHECK(o != NULL);
		*o = pt_json_obj(&z, evs[i].json);

		en[i].type       = evs[i].type;
		en[i].type_len   = strlen(evs[i].type);
		en[i].generation = 1;
		ev_uuid_generate(en[i].id);
		en[i].occurred_ns     = ev_now_ns();
		en[i].correlation_id  = "test";
		en[i].correlation_len = 4;
		en[i].causation_id    = "";
		en[i].causation_len   = 0;
		en[i].is_public       = is_public;
		en[i].metadata        = meta;
		en[i].content         = o;
	}
	store_commit c;
	memset(&c, 0, sizeof(c));
	c.tenant     = tenant;
	c.tenant_len = strlen(tenant);
	c.stream     = stream;
	c.stream_len = strlen(stream);
	c.expected   = STORE_EXPECT_ANY;
	c.events     = en;
	c.n_events   = n;
	int rc       = store_commit_wait(s, &c);
	if (rc != SL_OK) {
		fprintf(stderr, "commit failed: %s %s\n", sl_errname(rc),
		    c.message);
		exit(1);
	}
	free(en);
	msgpack_zone_destroy(&z);
	return c.first_position;
}

static inline uint64_t
pt_commit1(store *s, const char *tenant, const char *stream, const char *type,
    const char *json)
{
	pt_event e = { .type = type };
	snprintf(e.json, sizeof(e.json), "%s", json);
	return pt_commit(s, tenant, stream, &e, 1);
}

/* ---- waiting on a processor ---- */

/* Wait until the checkpoint reaches target and the processor is live. */
static inline proc_status
pt_wait_position(processor *p, uint64_t target, int max_ms)
{
	proc_status st;
	int64_t     end = pt_now_ms() + max_ms;
	for (;;) {
		proc_get_status(p, &st);
		if (st.position >= target && st.state == PROC_LIVE)
			return st;
		if (pt_now_ms() > end) {
			fprintf(stderr,
			    "timeout after %d ms: processor at %" PRIu64
			    " (%s, attempts %u, reason '%s'), wanted %" PRIu64
			    "\n",
			    max_ms, st.position, proc_state_name(st.state),
			    st.attempts, st.reason, target);
			exit(1);
		}
		pt_sleep_ms(2);
	}
}

/* Wait until the processor is FAILING with at least `attempts` attempts. */
static inline proc_status
pt_wait_failing(processor *p, uint32_t attempts, int max_ms)
{
	proc_status st;
	int64_t     end = pt_now_ms() + max_ms;
	for (;;) {
		proc_get_status(p, &st);
		if (st.state == PROC_FAILING && st.attempts >= attempts)
			return st;
		if (pt_now_ms() > end) {
			fprintf(stderr,
			    "timeout after %d ms waiting for failure: %s at "
			    "%" PRIu64 ", attempts %u\n",
			    max_ms, proc_state_name(st.state), st.position,
			    st.attempts);
			exit(1);
		}
		pt_sleep_ms(2);
	}
}

/* Wait until the processor has passed target with some units failing. */
static inline proc_status
pt_wait_failing_units(processor *p, uint64_t target, int max_ms)
{
	proc_status st;
	int64_t     end = pt_now_ms() + max_ms;
	for (;;) {
		proc_get_status(p, &st);
		if (st.position >= target && st.n_failing > 0)
			return st;
		if (pt_now_ms() > end) {
			fprintf(stderr,
			    "timeout after %d ms waiting for failing units: "
			    "%s at %" PRIu64 ", %zu failing\n",
			    max_ms, proc_state_name(st.state), st.position,
			    st.n_failing);
			exit(1);
		}
		pt_sleep_ms(2);
	}
}

/* Wait until unit (as status shows it) fails with at least `attempts`
 * attempts; its entry goes to *out. */
static inline void
pt_wait_unit(processor *p, const char *unit, uint32_t attempts, int max_ms,
    proc_failing *out)
{
	static proc_failing f[64];
	int64_t             end = pt_now_ms() + max_ms;
	for (;;) {
		size_t n = proc_get_failing(p, f, 64);
		for (size_t i = 0; i < n && i < 64; i++)
			if (strcmp(f[i].partition, unit) == 0
			    && f[i].attempts >= attempts) {
				*out = f[i];
				return;
			}
		if (pt_now_ms() > end) {
			fprintf(stderr,
			    "timeout after %d ms waiting for unit '%s' to "
			    "fail %u times (%zu failing)\n",
			    max_ms, unit, attempts, n);
			exit(1);
		}
		pt_sleep_ms(2);
	}
}

/* Whether unit is among the failing ones. */
static inline bool
pt_unit_failing(processor *p, const char *unit)
{
	static proc_failing f[64];
	size_t              n = proc_get_failing(p, f, 64);
	for (size_t i = 0; i < n && i < 64; i++)
		if (strcmp(f[i].partition, unit) == 0)
			return true;
	return false;
}

/* ---- read model states ---- */

/* Decode a stored state; the caller destroys u. */
static inline const msgpack_object *
pt_decode(msgpack_unpacked *u, const void *data, size_t len)
{
	size_t off = 0;
	msgpack_unpacked_init(u);
	CHECK(
	    msgpack_unpack_next(u, data, len, &off) == MSGPACK_UNPACK_SUCCESS);
	CHECK(off == len);
	CHECK(u->data.type == MSGPACK_OBJECT_MAP);
	return &u->data;
}

/* The integer field of a stored state at key (exits if absent). */
static inline int64_t
pt_state_i64(rmstore *rm, const char *proj, const char *key, const char *f)
{
	char            *data;
	size_t           len;
	msgpack_unpacked u;
	int64_t          v  = 0;
	int              rc = rm_get(rm, proj, key, strlen(key), &data, &len);
	if (rc != SL_OK) {
		fprintf(stderr, "rm_get %s: %s\n", key, sl_errname(rc));
		exit(1);
	}
	CHECK(mp_get_i64(pt_decode(&u, data, len), f, &v) == SL_OK);
	msgpack_unpacked_destroy(&u);
	free(data);
	return v;
}

/* ---- Account Details, recomputed ---- */

#define PT_ACCOUNTS 200 /* accounts that get events */
#define PT_UNIVERSE 250 /* acc-0200 .. acc-0249 never get any */

typedef struct pt_account {
	bool    touched;
	char    account_id[32];
	char    type[16];
	char    customer[48];
	char    name[48];
	int64_t balance;
} pt_account;

typedef struct pt_gen {
	uint64_t   rng;
	pt_account acc[PT_UNIVERSE];
	uint64_t   selected; /* tenant t1 events the projection selects */
	uint64_t   customers;
	uint64_t   t2; /* events of tenant t2 (all selected) */
} pt_gen;

static inline uint64_t
pt_rand(pt_gen *g)
{
	/* xorshift64*: deterministic across runs */
	g->rng ^= g->rng >> 12;
	g->rng ^= g->rng << 25;
	g->rng ^= g->rng >> 27;
	return g->rng * 2685821657736338717ULL;
}

/* The fold of account_details for one event on account index a. */
static inline void
pt_touch(pt_account *m, int a)
{
	if (!m->touched) {
		m->touched = true;
		snprintf(m->account_id, sizeof(m->account_id), "acc-%04d", a);
		m->balance = 0;
	}
}

/*
 * Commit one random commit of tenant t1 (1-4 events on one stream), now and
 * then an event of tenant t2 or an unselected type, folding what the
 * projection selects into g. @return the number of events committed.
 */
static inline size_t
pt_commit_random(store *s, pt_gen *g)
{
	pt_event    evs[4];
	char        stream[48];
	int         a    = (int) (pt_rand(g) % PT_ACCOUNTS);
	unsigned    kind = (unsigned) (pt_rand(g) % 20);
	size_t      n    = 1 + (size_t) (pt_rand(g) % 4);
	pt_account *m    = &g->acc[a];

	if (kind == 0) { /* another tenant: must not show up in t1 */
		snprintf(stream, sizeof(stream), "acc-%04d", a);
		evs[0].type = "DebitPerformed";
		snprintf(evs[0].json, sizeof(evs[0].json), "{\"amount\":999}");
		pt_commit(s, "t2", stream, evs, 1);
		g->t2++;
		return 1;
	}
	if (kind == 1) { /* a type the projection does not select */
		snprintf(stream, sizeof(stream), "acc-%04d", a);
		evs[0].type = "AccountAudited";
		snprintf(evs[0].json, sizeof(evs[0].json), "{\"ok\":true}");
		pt_commit(s, "t1", stream, evs, 1);
		return 1;
	}
	if (kind == 2) { /* customer stream, key from account.id */
		uint64_t c = g->customers++;
		snprintf(stream, sizeof(stream), "cust-%05" PRIu64, c);
		evs[0].type = "CustomerRegistered";
		snprintf(evs[0].json, sizeof(evs[0].json),
		    "{\"customer_id\":\"%s\",\"name\":\"Customer %" PRIu64
		    "\",\"account\":{\"id\":\"acc-%04d\"}}",
		    stream, c, a);
		pt_commit(s, "t1", stream, evs, 1);
		pt_touch(m, a);
		snprintf(
		    m->customer, sizeof(m->customer), "Customer %" PRIu64, c);
		g->selected++;
		return 1;
	}
	if (kind == 3) { /* withdrawals from an ATM stream, key account_id */
		snprintf(stream, sizeof(stream), "atm-%d", (int) (a % 7));
		for (size_t i = 0; i < n; i++) {
			int64_t amt = (int64_t) (pt_rand(g) % 500);
			evs[i].type = "WithdrawalPerformed";
			snprintf(evs[i].json, sizeof(evs[i].json),
			    "{\"account_id\":\"acc-%04d\",\"amount\":%" PRId64
			    "}",
			    a, amt);
			pt_touch(m, a);
			m->balance -= amt;
			g->selected++;
		}
		pt_commit(s, "t1", stream, evs, n);
		return n;
	}
	/* the account's own stream: opens and debits */
	snprintf(stream, sizeof(stream), "acc-%04d", a);
	for (size_t i = 0; i < n; i++) {
		pt_touch(m, a);
		if (pt_rand(g) % 8 == 0) {
			int v       = (int) (pt_rand(g) % 1000);
			evs[i].type = "DebitAccountOpened";
			snprintf(evs[i].json, sizeof(evs[i].json),
			    "{\"account_id\":\"acc-%04d\",\"name\":\"Name "
			    "%d\"}",
			    a, v);
			snprintf(m->type, sizeof(m->type), "debit");
			snprintf(m->name, sizeof(m->name), "Name %d", v);
		} else {
			int64_t amt = (int64_t) (pt_rand(g) % 1000);
			evs[i].type = "DebitPerformed";
			snprintf(evs[i].json, sizeof(evs[i].json),
			    "{\"amount\":%" PRId64 "}", amt);
			m->balance += amt;
		}
		g->selected++;
	}
	pt_commit(s, "t1", stream, evs, n);
	return n;
}

/* Commit random commits until at least n events were committed. */
static inline size_t
pt_commit_many(store *s, pt_gen *g, size_t n)
{
	size_t done = 0;
	while (done < n)
		done += pt_commit_random(s, g);
	return done;
}

static inline void
pt_gen_init(pt_gen *g, uint64_t seed)
{
	memset(g, 0, sizeof(*g));
	g->rng = seed;
}

typedef struct pt_cmp {
	const pt_gen *g;
	size_t        seen;
	char          last[64];
} pt_cmp;

static inline void
pt_check_str(
    const msgpack_object *m, const char *f, const char *want, const char *key)
{
	const char *s;
	size_t      len;
	if (mp_get_str(m, f, &s, &len) != SL_OK || len != strlen(want)
	    || memcmp(s, want, len) != 0) {
		fprintf(stderr,
		    "read model %s: field %s differs (want '%s')\n", key, f,
		    want);
		exit(1);
	}
}

static inline int
pt_cmp_one(
    void *arg, const char *key, size_t key_len, const void *data, size_t len)
{
	pt_cmp *c = arg;
	char    k[64];
	int     a;
	CHECK(key_len < sizeof(k));
	memcpy(k, key, key_len);
	k[key_len] = '\0';
	/* rm_scan visits keys in order */
	CHECK(c->seen == 0 || strcmp(c->last, k) < 0);
	snprintf(c->last, sizeof(c->last), "%s", k);
	CHECK(sscanf(k, "acc-%4d", &a) == 1 && a >= 0 && a < PT_UNIVERSE);
	const pt_account *m = &c->g->acc[a];
	if (!m->touched) {
		fprintf(stderr, "read model %s exists but had no events\n", k);
		exit(1);
	}
	msgpack_unpacked      u;
	const msgpack_object *o = pt_decode(&u, data, len);
	CHECK_EQ(o->via.map.size, 5);
	pt_check_str(o, "account_id", m->account_id, k);
	pt_check_str(o, "type", m->type, k);
	pt_check_str(o, "customer", m->customer, k);
	pt_check_str(o, "name", m->name, k);
	int64_t bal;
	CHECK(mp_get_i64(o, "balance", &bal) == SL_OK);
	if (bal != m->balance) {
		fprintf(stderr,
		    "read model %s: balance %" PRId64 " != recomputed %" PRId64
		    "\n",
		    k, bal, m->balance);
		exit(1);
	}
	msgpack_unpacked_destroy(&u);
	c->seen++;
	return 0;
}

/*
 * Every stored read model equals the recomputation, every touched account
 * has one and every untouched account has none (SL_ENOTFOUND).
 */
static inline void
pt_compare(rmstore *rm, const char *proj, const pt_gen *g)
{
	pt_cmp c = { .g = g };
	bool   more;
	/* in pages of 37, to walk rm_scan's `after` and `more` */
	for (;;) {
		size_t before = c.seen;
		char   after[64];
		snprintf(after, sizeof(after), "%s", c.last);
		CHECK_EQ(
		    rm_scan(rm, proj, before ? after : NULL,
		        before ? strlen(after) : 0, 37, pt_cmp_one, &c, &more),
		    SL_OK);
		if (!more)
			break;
		CHECK_EQ(c.seen - before, 37);
	}
	size_t touched = 0;
	for (int a = 0; a < PT_UNIVERSE; a++) {
		char   key[32], *data = NULL;
		size_t len;
		snprintf(key, sizeof(key), "acc-%04d", a);
		int rc = rm_get(rm, proj, key, strlen(key), &data, &len);
		if (g->acc[a].touched) {
			touched++;
			CHECK_EQ(rc, SL_OK);
			CHECK(data != NULL && len > 0);
		} else {
			CHECK_EQ(rc, SL_ENOTFOUND);
			CHECK(data == NULL);
		}
		free(data);
	}
	CHECK_EQ(c.seen, touched);
}

/* Load one plugin file from the build into a new registry. */
static inline registry *
pt_load(const char *so_path)
{
	char      cache[4200], err[512];
	registry *r;
	snprintf(cache, sizeof(cache), "%s/plugin-cache", tu_tmpdir());
	CHECK_EQ(registry_create(cache, &r), SL_OK);
	int rc = registry_load_file(r, so_path, err, sizeof(err));
	if (rc != SL_OK) {
		fprintf(stderr, "loading %s: %s: %s\n", so_path,
		    sl_errname(rc), err);
		exit(1);
	}
	return r;
}

static inline const proj_def *
pt_find(registry *r, const char *name)
{
	const proj_def *d = registry_find(r, name, strlen(name));
	CHECK(d != NULL);
	return d;
}

/* ---- a log, a tenant's read model store and a loaded plugin ---- */

/* ---- reading a stream back (what an emitting projection wrote) ---- */

typedef struct pt_sev {
	char type[64];
	char content[256]; /* JSON */
	char meta[256];    /* JSON */
} pt_sev;

typedef struct pt_slist {
	pt_sev *v;
	size_t  n, max;
} pt_slist;

static inline int
pt_sev_cb(void *arg, uint64_t position, const void *data, size_t len)
{
	pt_slist    *r = arg;
	msgpack_zone z;
	ev_view      v;
	CHECK(msgpack_zone_init(&z, 1024));
	CHECK_EQ(ev_decode(data, len, position, &z, &v), SL_OK);
	CHECK(r->n < r->max);
	pt_sev *o = &r->v[r->n++];
	char   *c = mp_to_json_text(&v.content);
	char   *m = mp_to_json_text(&v.metadata);
	snprintf(o->type, sizeof(o->type), "%s", v.type);
	snprintf(o->content, sizeof(o->content), "%s", c);
	snprintf(o->meta, sizeof(o->meta), "%s", m);
	free(c);
	free(m);
	msgpack_zone_destroy(&z);
	return 0;
}

/* The events of tenant t1's stream (at most max) into out; how many. */
static inline size_t
pt_read_stream(store *s, const char *stream, pt_sev *out, size_t max)
{
	pt_slist r = { out, 0, max };
	CHECK_EQ(store_scan_stream(s, "t1", stream, 0, max, pt_sev_cb, &r),
	    SL_OK);
	return r.n;
}

typedef struct pt_env {
	store    *s;
	rmstore  *rm;
	registry *r;
} pt_env;

/* Open name-log and name-rm in the test's temp dir and load plugin. */
static inline void
pt_env_open(pt_env *e, const char *name, const char *plugin)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/%s-log", tu_tmpdir(), name);
	CHECK_EQ(store_open(path, 64u << 20, false, &e->s), SL_OK);
	snprintf(path, sizeof(path), "%s/%s-rm", tu_tmpdir(), name);
	CHECK_EQ(rm_open(path, 32u << 20, false, &e->rm), SL_OK);
	e->r = pt_load(plugin);
}

static inline void
pt_env_close(pt_env *e)
{
	registry_destroy(e->r);
	rm_close(e->rm);
	store_close(e->s);
}

#endif
