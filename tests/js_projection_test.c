/*
 * JavaScript projections (issue 16) over the real processor: the js_host
 * plugin serves the EventStoreDB-style projections of tests/js/projections
 * (fromAll, fromStream, fromStreams, fromCategory, foreachStream, $init,
 * $created, $any, $deleted, typed handlers, a handler returning a new
 * state, undefined that vanishes, metadata, emit, linkTo, linkStreamTo,
 * outputState), each
 * checked against the same fold written here in C. The scripts of
 * tests/js/failing fail one key each (a throw, a loop over the CPU budget,
 * memory over the cap, a non-object state, an emit to an undeclared
 * stream, a throwing $init) with a reason naming file:line where the
 * engine knows it, while the other keys go on; those of tests/js/refused
 * are refused at load with their reason.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "emitter.h"
#include "host.h"
#include "jsproj.h"
#include "projection_testutil.h"

#define NACC 6

typedef struct jacct {
	char    name[16];
	int64_t balance, ops, rejected, deposits, events;
	int64_t last_amount, last_seq;
	int64_t running, w; /* shared_total: the totals when last seen */
	/* rich.js: its results, in order: the balance, or -1 for removed */
	int64_t rich[128];
	size_t  n_rich;
	int64_t revision; /* next revision of the stream */
} jacct;

static jacct   accs[NACC + 1];
static int64_t t1_events, category_total, withdrawals;
/* partitioned.js: deposits of 60 and more ("big"), and the others */
static int64_t part_n[2], part_sum[2];
static json_t *by_type;

static void
commit_acct(store *s, int a, const char *type, int64_t amount)
{
	char stream[32], json[64];
	snprintf(stream, sizeof(stream), "account-%d", a);
	if (strcmp(type, "AccountOpened") == 0)
		snprintf(
		    json, sizeof(json), "{\"name\":\"%s\"}", accs[a].name);
	else
		snprintf(json, sizeof(json), "{\"amount\":%lld}",
		    (long long) amount);
	pt_commit1(s, "t1", stream, type, json);
	jacct *c = &accs[a];
	if (strcmp(type, "Deposited") == 0) {
		c->balance += amount;
		c->ops++;
		c->deposits++;
		c->last_amount = amount;
		c->last_seq    = c->revision;
		category_total += amount;
		c->running = category_total;
		part_n[amount >= 60]++;
		part_sum[amount >= 60] += amount;
	} else if (strcmp(type, "Withdrawn") == 0) {
		c->w = ++withdrawals;
		if (c->balance >= amount)
			c->balance -= amount;
		else
			c->rejected++;
		c->ops++;
	}
	if (strcmp(type, "AccountOpened") != 0) {
		/* filterBy(balance >= 100).transformBy({rich: balance}): a
		 * result when it changed */
		int64_t r    = c->balance >= 100 ? c->balance : -1;
		int64_t last = c->n_rich ? c->rich[c->n_rich - 1] : -1;
		if (r != last && c->n_rich < 128)
			c->rich[c->n_rich++] = r;
	}
	c->events++;
	c->revision++;
}

static void
count_type(const char *type)
{
	json_t *v = json_object_get(by_type, type);
	json_object_set_new(
	    by_type, type, json_integer(v ? json_integer_value(v) + 1 : 1));
	t1_events++;
}

/* The log: six accounts, a bank stream, two order streams, a user stream
 * with metadata, a stream of another category, and tenant t2. */
static void
commit_all(store *s)
{
	uint64_t r = 7;
	by_type    = json_object();
	for (int a = 1; a <= NACC; a++) {
		snprintf(accs[a].name, sizeof(accs[a].name), "N%d", a);
		commit_acct(s, a, "AccountOpened", 0);
		count_type("AccountOpened");
	}
	for (int i = 0; i < 60; i++) {
		r = r * 6364136223846793005ull + 1442695040888963407ull;
		int         a    = 1 + (int) ((r >> 33) % NACC);
		int64_t     amt  = 1 + (int64_t) ((r >> 40) % 120);
		const char *type = (r >> 20) % 3 ? "Deposited" : "Withdrawn";
		commit_acct(s, a, type, amt);
		count_type(type);
	}
	static const char *const notes[] = { "a", "b", "c" };
	for (int i = 0; i < 3; i++) {
		char json[32];
		snprintf(json, sizeof(json), "{\"note\":\"%s\"}", notes[i]);
		pt_commit1(s, "t1", "bank-1", "Audit", json);
		count_type("Audit");
	}
	pt_commit1(s, "t1", "orders-1", "OrderPlaced",
	    "{\"total\":10,\"items\":[{\"sku\":\"x\",\"qty\":2},"
	    "{\"sku\":\"y\",\"qty\":1}]}");
	pt_commit1(s, "t1", "orders-2", "OrderPlaced",
	    "{\"total\":7,\"items\":[{\"sku\":\"x\",\"qty\":1}]}");
	pt_commit1(s, "t1", "orders-2", "OrderCancelled", "{}");
	count_type("OrderPlaced");
	count_type("OrderPlaced");
	count_type("OrderCancelled");
	pt_event tag = { .type = "Tagged", .json = "{\"v\":1}" };
	pt_commit_meta(s, "t1", "user-1", &tag, 1, false, "{\"tag\":\"vip\"}");
	snprintf(tag.json, sizeof(tag.json), "{\"v\":2}");
	pt_commit_meta(s, "t1", "user-1", &tag, 1, false, "{\"tag\":\"new\"}");
	count_type("Tagged");
	count_type("Tagged");
	/* not of category account (accounting), nor of tenant t1 */
	/* every account gets deposits (account-2 fails in failing()) */
	for (int a = 1; a <= NACC; a++) {
		commit_acct(s, a, "Deposited", 90 + a);
		count_type("Deposited");
	}
	pt_commit1(s, "t1", "accounting-1", "Deposited", "{\"amount\":999}");
	count_type("Deposited");
	/* a link with metadata (read only with $includeLinks), then an
	 * ordinary event, in one stream */
	pt_event link = { .type = "$>", .json = "\"0@account-1\"" };
	pt_commit_meta(
	    s, "t1", "vip-links", &link, 1, false, "{\"why\":\"vip\"}");
	pt_commit1(s, "t1", "vip-links", "Note", "{}");
	count_type("Note");
	pt_commit1(s, "t2", "account-1", "Deposited", "{\"amount\":5}");
	/* a soft delete: account-6's events stay in the log (the processors
	 * read it as written), $deleted is called for its key */
	store_commit c;
	memset(&c, 0, sizeof(c));
	c.tenant     = "t1";
	c.tenant_len = 2;
	c.stream     = "account-6";
	c.stream_len = strlen(c.stream);
	c.expected   = STORE_EXPECT_ANY;
	c.trunc      = STORE_TRUNC_DELETE;
	CHECK_EQ(store_commit_wait(s, &c), SL_OK);
}

/* ---- comparing states ---- */

static json_t *
stored(pt_env *e, const proj_def *d, const char *key)
{
	char  *data;
	size_t len;
	int    rc = rm_get(e->rm, d->id, key, strlen(key), &data, &len);
	if (rc == SL_ENOTFOUND)
		return NULL;
	CHECK_EQ(rc, SL_OK);
	msgpack_unpacked u;
	char            *j = mp_to_json_text(pt_decode(&u, data, len));
	json_t          *o = json_loads(j, 0, NULL);
	CHECK(o != NULL);
	free(j);
	free(data);
	msgpack_unpacked_destroy(&u);
	return o;
}

/* The stored state of key equals expected (JSON text; NULL: no state). */
static void
check_state(pt_env *e, const char *name, const char *key, json_t *expected)
{
	json_t *got = stored(e, pt_find(e->r, name), key);
	if (expected == NULL && got == NULL)
		return;
	if (expected == NULL || got == NULL || !json_equal(got, expected)) {
		char *g = got ? json_dumps(got, JSON_SORT_KEYS) : NULL;
		char *x
		    = expected ? json_dumps(expected, JSON_SORT_KEYS) : NULL;
		fprintf(stderr, "%s '%s': got %s, expected %s\n", name, key,
		    g ? g : "(none)", x ? x : "(none)");
		exit(1);
	}
	json_decref(got);
	json_decref(expected);
}

static json_t *
J(const char *text)
{
	json_error_t err;
	json_t      *o = json_loads(text, 0, &err);
	if (o == NULL) {
		fprintf(stderr, "bad expected JSON %s: %s\n", text, err.text);
		exit(1);
	}
	return o;
}

static processor *
fold(pt_env *e, const char *name, uint64_t head)
{
	processor *p;
	CHECK_EQ(
	    proc_start(e->s, e->rm, "t1", pt_find(e->r, name), 64, &p), SL_OK);
	pt_wait_position(p, head, PT_WAIT_MS);
	return p;
}

static void
read_models(pt_env *e, uint64_t head)
{
	static const char *const names[] = { "count_all", "account_details",
		"category_total", "bank_notes", "orders", "by_type",
		"last_deposit", "tags", "vanish", "created", "strict_getters",
		"deleted", "shared_total", "bi_state", "categories",
		"link_meta", "partitioned", "shared_deleted" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		processor  *p = fold(e, names[i], head);
		proc_status st;
		proc_get_status(p, &st);
		if (getenv("JS_TEST_DEBUG"))
			fprintf(stderr, "%s: handled %llu position %llu\n",
			    names[i], (unsigned long long) st.events_handled,
			    (unsigned long long) st.position);
		if (st.n_failing != 0) {
			proc_failing f;
			proc_get_failing(p, &f, 1);
			fprintf(stderr, "%s: failing %s: %s\n", names[i],
			    f.partition, f.reason);
			exit(1);
		}
		proc_stop(p);
	}

	char buf[512];
	snprintf(buf, sizeof(buf), "{\"count\":%lld}", (long long) t1_events);
	check_state(e, "count_all", "root", J(buf));

	json_t *streams = json_object();
	for (int a = 1; a <= NACC; a++) {
		jacct *c = &accs[a];
		char   key[32];
		snprintf(key, sizeof(key), "account-%d", a);
		json_t *x = json_pack("{sIsIsssb}", "balance",
		    (json_int_t) c->balance, "ops", (json_int_t) c->ops,
		    "name", c->name, "open", 1);
		if (c->rejected)
			json_object_set_new(
			    x, "rejected", json_integer(c->rejected));
		check_state(e, "account_details", key, x);
		if (c->deposits) {
			json_object_set_new(
			    streams, key, json_integer(c->deposits));
			check_state(e, "last_deposit", key,
			    json_pack("{sIsIssss}", "last",
			        (json_int_t) c->last_amount, "seq",
			        (json_int_t) c->last_seq, "stream", key,
			        "partition", key));
		} else
			check_state(e, "last_deposit", key, NULL);
		json_t *d = json_pack("{sI}", "n", (json_int_t) c->events);
		if (a == NACC) {
			json_object_set_new(d, "deleted", json_true());
			json_object_set_new(d, "by", json_string(key));
		}
		check_state(e, "deleted", key, d);
		/* bi-state: $deleted got [state, shared] */
		d = json_pack("{sI}", "n", (json_int_t) c->events);
		if (a == NACC) {
			json_object_set_new(d, "gone", json_string(key));
			json_object_set_new(d, "seen", json_integer(1));
		}
		check_state(e, "shared_deleted", key, d);
		json_t *sh = json_pack("{sIsIsI}", "n",
		    (json_int_t) c->deposits, "no", (json_int_t) a, "running",
		    (json_int_t) c->running);
		if (c->w)
			json_object_set_new(sh, "w", json_integer(c->w));
		check_state(e, "shared_total", key, sh);
		check_state(e, "created", key,
		    json_pack("{sIsssI}", "n", (json_int_t) c->events, "first",
		        "AccountOpened", "at", (json_int_t) 0));
	}
	check_state(e, "category_total", "root",
	    json_pack("{sIso}", "total", (json_int_t) category_total,
	        "streams", streams));
	check_state(e, "bi_state", "root", J("{\"mine\":30}"));
	/* the shared state $deleted changed, as get_one "$shared" reads it */
	char  *sd;
	size_t sdl;
	CHECK_EQ(proc_shared_read_rm(
	             e->rm, pt_find(e->r, "shared_deleted")->id, &sd, &sdl),
	    SL_OK);
	msgpack_unpacked up;
	msgpack_unpacked_init(&up);
	CHECK(
	    msgpack_unpack_next(&up, sd, sdl, NULL) == MSGPACK_UNPACK_SUCCESS);
	int64_t ndel = -1;
	CHECK_EQ(mp_get_i64(&up.data, "deleted", &ndel), SL_OK);
	CHECK_EQ(ndel, 1);
	msgpack_unpacked_destroy(&up);
	free(sd);
	for (int b = 0; b < 2; b++)
		check_state(e, "partitioned", b ? "big" : "small",
		    json_pack("{sIsIss}", "n", (json_int_t) part_n[b], "sum",
		        (json_int_t) part_sum[b], "p", b ? "big" : "small"));
	check_state(e, "partitioned", "account-1", NULL);
	check_state(e, "partitioned", "root", NULL);
	check_state(e, "categories", "root",
	    J("{\"n\":6,\"streams\":{\"bank-1\":true,\"orders-1\":true,"
	      "\"orders-2\":true}}"));
	check_state(e, "link_meta", "root",
	    J("{\"n\":2,\"type\":\"Note\",\"why\":[\"vip\",null]}"));
	check_state(
	    e, "bank_notes", "root", J("{\"notes\":[\"a\",\"b\",\"c\"]}"));
	check_state(e, "orders", "root",
	    J("{\"orders\":2,\"total\":17,\"qty\":{\"x\":3,\"y\":1},"
	      "\"cancelled\":1}"));
	json_t     *bt = json_deep_copy(by_type);
	const char *k;
	json_t     *v;
	char        types[256] = "";
	/* jansson iterates in insertion order: sort the names as JS does */
	const char *names_sorted[16];
	size_t      nn                                        = 0;
	json_object_foreach(by_type, k, v) names_sorted[nn++] = k;
	for (size_t i = 0; i < nn; i++)
		for (size_t j = i + 1; j < nn; j++)
			if (strcmp(names_sorted[j], names_sorted[i]) < 0) {
				const char *t   = names_sorted[i];
				names_sorted[i] = names_sorted[j];
				names_sorted[j] = t;
			}
	for (size_t i = 0; i < nn; i++) {
		strcat(types, i ? "," : "");
		strcat(types, names_sorted[i]);
	}
	json_object_set_new(bt, "types", json_string(types));
	check_state(e, "by_type", "root", bt);
	check_state(e, "tags", "root",
	    J("{\"tags\":[\"vip\",\"new\"],\"json\":true,"
	      "\"raw\":\"{\\\"v\\\":2}\"}"));
	check_state(e, "vanish", "root",
	    J("{\"kept\":\"c\",\"epoch\":\"1970-01-01T00:00:00.000Z\"}"));
	check_state(e, "strict_getters", "orders-1",
	    J("{\"big\":true,\"skus\":[\"x\",\"y\"],\"qty\":3}"));
	check_state(e, "strict_getters", "orders-2",
	    J("{\"big\":false,\"skus\":[\"x\"],\"qty\":1}"));
	/* tenant t2's deposit is another tenant's: no read model here */
	check_state(e, "count_all", "account-1", NULL);
}

/* ---- emitting projections ---- */

static void
run_emitting(pt_env *e, const char *name, uint64_t head)
{
	const proj_def *def = pt_find(e->r, name);
	char            err[256];
	proj_settings   set = {
		  .checkpoint_handled_threshold         = 4000,
		  .checkpoint_unhandled_bytes_threshold = 10u << 20,
		  .pending_events_threshold             = 5000,
		  .max_write_batch_length               = 500,
	};
	eproj *ep;
	if (eproj_claim(e->s, def, err, sizeof(err)) != SL_OK) {
		fprintf(stderr, "claim %s: %s\n", name, err);
		exit(1);
	}
	CHECK_EQ(eproj_start(
	             e->s, "t1", def, CFG_MODE_CONTINUOUS, &set, false, &ep),
	    SL_OK);
	int64_t end = pt_now_ms() + PT_WAIT_MS;
	for (;;) {
		eproj_status st;
		eproj_get_status(ep, &st);
		if (st.status != NULL && st.position >= head
		    && st.writes_in_flight == 0)
			break;
		CHECK(pt_now_ms() < end);
		pt_sleep_ms(2);
	}
	proc_failing f;
	if (eproj_get_failing(ep, &f, 1) != 0) {
		fprintf(stderr, "%s: failing %s: %s\n", name, f.partition,
		    f.reason);
		exit(1);
	}
	eproj_stop(ep);
}

static void
emitting(pt_env *e, uint64_t head)
{
	static pt_sev v[128];
	run_emitting(e, "emit_audit", head);
	run_emitting(e, "link_big", head);
	run_emitting(e, "output_state", head);
	run_emitting(e, "transform", head);
	run_emitting(e, "rich", head);
	run_emitting(e, "output_to", head);
	run_emitting(e, "result_name", head);
	run_emitting(e, "copy_to", head);
	for (int a = 1; a <= NACC; a++) {
		char stream[32], meta[64];
		snprintf(stream, sizeof(stream), "audit-account-%d", a);
		size_t n = pt_read_stream(e->s, stream, v, 128);
		CHECK_EQ((int64_t) n, accs[a].deposits);
		snprintf(meta, sizeof(meta), "{\"source\":\"account-%d\"}", a);
		for (size_t i = 0; i < n; i++) {
			CHECK_STREQ(v[i].type, "Seen");
			CHECK_STREQ(v[i].meta, meta);
		}
		if (n > 0) {
			char c[64];
			snprintf(c, sizeof(c), "{\"amount\":%lld}",
			    (long long) accs[a].last_amount);
			CHECK_STREQ(v[n - 1].content, c);
		}
	}
	/* links: "$>" events "<revision>@<stream>", every one a big deposit */
	size_t n = pt_read_stream(e->s, "big-deposits", v, 128);
	CHECK(n > 0);
	size_t big = n;
	for (size_t i = 0; i < n; i++) {
		CHECK_STREQ(v[i].type, "$>");
		CHECK(strstr(v[i].content, "@account-") != NULL);
	}
	/* linkStreamTo: "$@" events naming the stream, one per big deposit */
	CHECK_EQ(pt_read_stream(e->s, "big-index", v, 128), big);
	for (size_t i = 0; i < big; i++) {
		CHECK_STREQ(v[i].type, "$@");
		CHECK(strncmp(v[i].content, "\"account-", 9) == 0);
	}
	/* outputState: one Result per change, in the root result stream */
	n = pt_read_stream(e->s, "$projections-output_state-result", v, 128);
	CHECK_EQ(n, 3);
	CHECK_STREQ(v[0].type, "Result");
	CHECK_STREQ(v[2].content, "{\"n\":3,\"last\":\"c\"}");
	/* transformBy().filterBy(): the filtered second result removed */
	n = pt_read_stream(e->s, "$projections-transform-result", v, 128);
	CHECK_EQ(n, 3);
	CHECK_STREQ(v[0].type, "Result");
	CHECK_STREQ(v[0].content, "{\"count\":1,\"note\":\"A\"}");
	CHECK_STREQ(v[1].type, "ResultRemoved");
	CHECK_STREQ(v[2].type, "Result");
	CHECK_STREQ(v[2].content, "{\"count\":3,\"note\":\"C\"}");
	/* per key: each change of the filtered, transformed result */
	size_t removed = 0;
	for (int a = 1; a <= NACC; a++) {
		char stream[64];
		snprintf(stream, sizeof(stream),
		    "$projections-rich-account-%d-result", a);
		n = pt_read_stream(e->s, stream, v, 128);
		if (n != accs[a].n_rich) {
			fprintf(stderr, "%s: %zu results, expected %zu\n",
			    stream, n, accs[a].n_rich);
			exit(1);
		}
		for (size_t i = 0; i < n; i++) {
			char c[64];
			if (accs[a].rich[i] < 0) {
				CHECK_STREQ(v[i].type, "ResultRemoved");
				removed++;
				continue;
			}
			snprintf(c, sizeof(c), "{\"rich\":%lld}",
			    (long long) accs[a].rich[i]);
			CHECK_STREQ(v[i].type, "Result");
			CHECK_STREQ(v[i].content, c);
		}
	}
	CHECK(removed > 0); /* the log has a balance falling below 100 */

	/* outputTo('balances', 'balance-{0}'): each key's results in its
	 * stream, the last one its balance; none under the default names */
	for (int a = 1; a <= NACC; a++) {
		char stream[64], c[64];
		snprintf(stream, sizeof(stream), "balance-account-%d", a);
		n = pt_read_stream(e->s, stream, v, 128);
		CHECK(n > 0);
		snprintf(
		    c, sizeof(c), "{\"b\":%lld}", (long long) accs[a].balance);
		CHECK_STREQ(v[n - 1].type, "Result");
		CHECK_STREQ(v[n - 1].content, c);
		snprintf(stream, sizeof(stream),
		    "$projections-output_to-account-%d-result", a);
		CHECK_EQ(pt_read_stream(e->s, stream, v, 128), 0);
	}
	/* the root result stream "balances": a link to each result, as
	 * EventStoreDB writes */
	size_t results = 0;
	for (int a = 1; a <= NACC; a++) {
		char stream[64];
		snprintf(stream, sizeof(stream), "balance-account-%d", a);
		results += pt_read_stream(e->s, stream, v, 128);
	}
	n = pt_read_stream(e->s, "balances", v, 128);
	CHECK_EQ(n, results);
	for (size_t i = 0; i < n; i++) {
		CHECK_STREQ(v[i].type, "$>");
		CHECK(strstr(v[i].content, "@balance-account-") != NULL);
	}
	/* options({resultStreamName}): the root result stream named */
	n = pt_read_stream(e->s, "bank-notes-result", v, 128);
	CHECK_EQ(n, 3);
	CHECK_STREQ(v[2].type, "Result");
	CHECK_STREQ(v[2].content, "{\"n\":3,\"last\":\"c\"}");
	CHECK_EQ(
	    pt_read_stream(e->s, "$projections-result_name-result", v, 128),
	    0);
	/* copyTo: the events' type and body, their metadata with the given
	 * one's (without its '$' names) */
	n = pt_read_stream(e->s, "copies-user-1", v, 128);
	CHECK_EQ(n, 2);
	CHECK_STREQ(v[0].type, "Tagged");
	CHECK_STREQ(v[0].content, "{\"v\":1}");
	CHECK_STREQ(v[0].meta, "{\"tag\":\"vip\",\"copied\":true}");
	CHECK_STREQ(v[1].content, "{\"v\":2}");
	CHECK_STREQ(v[1].meta, "{\"tag\":\"new\",\"copied\":true}");
}

/* ---- a cut inside the C library ---- */

static void *
tz_call(void *arg)
{
	struct tm tm;
	time_t    now = time(NULL);
	localtime_r(&now, &tm);
	gmtime_r(&now, &tm);
	*(volatile int *) arg = 1;
	return NULL;
}

/* The C library's time-zone lock is free: another thread's localtime_r
 * returns (a cut inside it would have left the lock held for good). */
static void
check_tz_alive(void)
{
	volatile int done = 0;
	pthread_t    t;
	CHECK(pthread_create(&t, NULL, tz_call, (void *) &done) == 0);
	for (int i = 0; i < 2000 && !done; i++)
		pt_sleep_ms(1);
	if (!done) {
		fprintf(stderr, "date_loop: the time-zone lock is held\n");
		_exit(1);
	}
	pthread_join(t, NULL);
}

/*
 * date_loop.js loops over local-time Date methods, most of its time in the
 * C library's time-zone code, which holds a lock: each budget cut (one per
 * retry) must leave it free, and the key fail with the budget's reason.
 */
static void
date_cuts(pt_env *e)
{
	processor *p;
	CHECK_EQ(proc_start(e->s, e->rm, "t1", pt_find(e->r, "date_loop"), 64,
	             &p),
	    SL_OK);
	for (uint32_t k = 1; k <= 12; k++) {
		proc_failing f;
		pt_wait_unit(p, "account-2", k, PT_WAIT_MS, &f);
		if (strstr(f.reason, "date_loop.js: over its CPU budget of "
		                     "20 ms")
		    == NULL) {
			fprintf(stderr, "date_loop: reason '%s'\n", f.reason);
			exit(1);
		}
		check_tz_alive();
		CHECK_EQ(proc_command(p, PROC_CMD_RETRY, PT_WAIT_MS), SL_OK);
	}
	proc_stop(p);
}

/* ---- failing keys ---- */

static void
failing(uint64_t head)
{
	static const struct {
		const char *name, *reason;
	} cases[] = {
		{ "throws", "throws.js:4: Error: no deposits on account-2" },
		{ "loop", "loop.js: over its CPU budget of 20 ms" },
		{ "memory",
		    "memory.js: over its memory cap of 4194304 bytes" },
		{ "nonobject",
		    "nonobject.js: Deposited gave a number as the state of "
		    "'account-2': a state is an object" },
		{ "undeclared_emit",
		    "undeclared_emit.js:5: Error: emit to 'elsewhere' "
		    "refused" },
		{ "init_throws", "init_throws.js:3: ReferenceError" },
	};
	pt_env e;
	char   path[4200];
	snprintf(path, sizeof(path), "%s/js-log", tu_tmpdir());
	CHECK_EQ(store_open(path, 64u << 20, false, &e.s), SL_OK);
	snprintf(path, sizeof(path), "%s/js-fail-rm", tu_tmpdir());
	CHECK_EQ(rm_open(path, 32u << 20, false, &e.rm), SL_OK);
	setenv("SLUICE_JS_DIR", SL_SOURCE_DIR "/tests/js/failing", 1);
	e.r = pt_load(SL_BUILD_DIR "/examples/js_host.so");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		processor *p;
		CHECK_EQ(proc_start(e.s, e.rm, "t1",
		             pt_find(e.r, cases[i].name), 64, &p),
		    SL_OK);
		proc_failing f;
		pt_wait_unit(p, "account-2", 1, PT_WAIT_MS, &f);
		if (strstr(f.reason, cases[i].reason) == NULL) {
			fprintf(stderr, "%s: reason '%s', wanted '%s'\n",
			    cases[i].name, f.reason, cases[i].reason);
			exit(1);
		}
		CHECK(!f.retry); /* a script's failure waits for an operator */
		/* the other keys went on to the head */
		bool        every = strcmp(cases[i].name, "init_throws") == 0;
		proc_status st    = pt_wait_failing_units(p, head, PT_WAIT_MS);
		CHECK_EQ(st.n_failing, every ? (size_t) NACC : 1);
		proc_stop(p);
		const proj_def *d = pt_find(e.r, cases[i].name);
		for (int a = 1; a <= NACC; a++) {
			char key[32];
			snprintf(key, sizeof(key), "account-%d", a);
			json_t *got = stored(&e, d, key);
			if (a == 2 || every) {
				/* init_throws fails every key's first event */
				CHECK(got == NULL);
				continue;
			}
			CHECK(got != NULL);
			CHECK_EQ(json_integer_value(json_object_get(got, "n")),
			    accs[a].deposits);
			json_decref(got);
		}
	}
	date_cuts(&e);
	/* partitionBy() that throws: account-2's events have no key and
	 * wait, failed with the script's reason; the others go on */
	processor *p;
	CHECK_EQ(proc_start(e.s, e.rm, "t1", pt_find(e.r, "partition_throws"),
	             64, &p),
	    SL_OK);
	proc_status st = pt_wait_failing_units(p, head, PT_WAIT_MS);
	CHECK_EQ(st.n_failing, 1);
	proc_failing f;
	proc_get_failing(p, &f, 1);
	if (strstr(f.reason,
	        "partition_throws.js:3: Error: no key for "
	        "account-2")
	    == NULL) {
		fprintf(stderr, "partition_throws: reason '%s'\n", f.reason);
		exit(1);
	}
	CHECK(!f.retry);
	proc_stop(p);
	int64_t others = 0;
	for (int a = 1; a <= NACC; a++)
		others += a == 2 ? 0 : accs[a].deposits;
	json_t *all = stored(&e, pt_find(e.r, "partition_throws"), "all");
	CHECK(all != NULL);
	CHECK_EQ(json_integer_value(json_object_get(all, "n")), others);
	json_decref(all);

	/* a result transform that throws: the key fails with the script's
	 * file:line and message, the other keys reach the head */
	const proj_def *td = pt_find(e.r, "transform_throws");
	char            err[256];
	eproj          *ep;
	proj_settings   set = {
		  .checkpoint_handled_threshold         = 4000,
		  .checkpoint_unhandled_bytes_threshold = 10u << 20,
		  .pending_events_threshold             = 5000,
		  .max_write_batch_length               = 500,
	};
	CHECK_EQ(eproj_claim(e.s, td, err, sizeof(err)), SL_OK);
	CHECK_EQ(
	    eproj_start(e.s, "t1", td, CFG_MODE_CONTINUOUS, &set, false, &ep),
	    SL_OK);
	pt_wait_unit(eproj_processor(ep), "account-2", 1, PT_WAIT_MS, &f);
	if (strstr(f.reason,
	        "transform_throws.js:5: Error: no result for account-2 (the "
	        "result of key 'account-2')")
	    == NULL) {
		fprintf(stderr, "transform_throws: reason '%s'\n", f.reason);
		exit(1);
	}
	CHECK(!f.retry); /* waits for an operator, as a handler's throw */
	st = pt_wait_failing_units(eproj_processor(ep), head, PT_WAIT_MS);
	CHECK_EQ(st.n_failing, 1);
	eproj_stop(ep);
	static pt_sev tv[128];
	CHECK(pt_read_stream(e.s,
	          "$projections-transform_throws-account-1-result", tv, 128)
	    > 0);
	CHECK_EQ(
	    pt_read_stream(e.s,
	        "$projections-transform_throws-account-2-result", tv, 128),
	    0);
	pt_env_close(&e);
}

/* ---- refused at load ---- */

static void
refused(void)
{
	static const struct {
		const char *file, *reason;
	} cases[] = {
		{ "syntax.js", "syntax.js:3: SyntaxError" },
		{ "unknown_fn.js", "unknown_fn.js:2: ReferenceError" },
		{ "throws_top.js", "throws_top.js:2: Error: boom" },
		{ "partition_by.js",
		    "partitionBy() and foreachStream() both choose the key" },
		{ "deleted_partition.js",
		    "deleted_partition.js: $deleted is only supported with "
		    "foreachStream() (as in EventStoreDB: a deleted stream's "
		    "notice goes to the key that is the stream's id; "
		    "partitionBy() keys are not streams)" },
		{ "deleted_root.js",
		    "deleted_root.js: $deleted is only supported with "
		    "foreachStream()" },
		{ "no_when.js", "no .when({...})" },
		{ "bad_option.js", "options.$someOption is not supported" },
		{ "top_loop.js",
		    "top_loop.js: over its CPU budget of 100 ms" },
		{ "no_handler.js", "when() has no event handler" },
		{ "bad_id.js", "options.$id is a UUID" },
		{ "bad_name.js", "options.$name is a name of 1..256 bytes" },
		{ "missing.js", "No such file" },
	};
	CHECK_EQ(jsproj_init(), SL_OK);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char    path[4200], err[1024] = "";
		jsproj *p = NULL;
		snprintf(path, sizeof(path), "%s/tests/js/refused/%s",
		    SL_SOURCE_DIR, cases[i].file);
		int rc = jsproj_open(
		    host_api(), path, NULL, NULL, &p, err, sizeof(err));
		CHECK(rc != SL_OK);
		CHECK(p == NULL);
		if (strstr(err, cases[i].reason) == NULL) {
			fprintf(stderr, "%s: '%s', wanted '%s'\n",
			    cases[i].file, err, cases[i].reason);
			exit(1);
		}
	}
	jsproj_fini();
}

/* The id and the name from options ($id, $name), or the id from a
 * $name, else both from the file's name. */
static void
named(void)
{
	static const struct {
		const char *file, *id, *name;
	} cases[] = {
		{ "named_by_options.js", "a1b2c3d4-0000-4000-8000-00000000c0de",
		    "ledger" },
		{ "name_only.js", NULL, "ledger" },
	};
	CHECK_EQ(jsproj_init(), SL_OK);
	char ledger_id[40] = "";
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char    path[4200], err[1024] = "";
		jsproj *p = NULL;
		snprintf(path, sizeof(path), "%s/tests/js/named/%s",
		    SL_SOURCE_DIR, cases[i].file);
		if (jsproj_open(host_api(), path, NULL, NULL, &p, err,
		        sizeof(err))
		    != SL_OK) {
			fprintf(stderr, "%s: %s\n", cases[i].file, err);
			exit(1);
		}
		const sl_projection *j = jsproj_projection(p);
		CHECK_STREQ(j->name, cases[i].name);
		if (cases[i].id != NULL)
			CHECK_STREQ(j->id, cases[i].id);
		else
			snprintf(ledger_id, sizeof(ledger_id), "%s", j->id);
		jsproj_close(p);
	}
	/* a $name alone gives the id a file named ledger.js has, not the
	 * id of its own file's name */
	CHECK(strlen(ledger_id) == 36);
	static const struct {
		const char *as;
		bool        same;
	} plain[] = { { "ledger.js", true }, { "name_only.js", false } };
	for (size_t i = 0; i < 2; i++) {
		jsproj *p = NULL;
		char    path[4200], err[1024] = "";
		snprintf(path, sizeof(path), "%s/tests/js/projections/bank_notes.js",
		    SL_SOURCE_DIR);
		CHECK_EQ(jsproj_open(host_api(), path, plain[i].as, NULL, &p,
		             err, sizeof(err)),
		    SL_OK);
		CHECK_EQ(strcmp(jsproj_projection(p)->id, ledger_id) == 0,
		    plain[i].same);
		jsproj_close(p);
	}
	jsproj_fini();
}

int
main(void)
{
	refused();
	named();

	pt_env e;
	setenv("SLUICE_JS_DIR", SL_SOURCE_DIR "/tests/js/projections", 1);
	pt_env_open(&e, "js", SL_BUILD_DIR "/examples/js_host.so");
	commit_all(e.s);
	uint64_t head = store_next_position(e.s);
	read_models(&e, head);
	emitting(&e, head);
	pt_env_close(&e);

	failing(head);
	json_decref(by_type);
	printf("js_projection_test: ok\n");
	return 0;
}
