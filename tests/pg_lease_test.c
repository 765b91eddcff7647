/*
 * Leases on the PostgreSQL log (docs/postgresql.md, "Leases"), with real
 * parts: a PostgreSQL cluster of the test's own, two sluiced processes on
 * one database running an emitting plugin projection (emit_counter: a
 * link per Deposited into "all-accounts", a Counted event every third of
 * an account) and the five system projections, leases of 2.5 s. It
 * proves:
 *   - --init-db migrates a version 1 schema to version 2 (the leases,
 *     states and checkpoints tables);
 *   - each emitting and system projection runs on one node, status says
 *     on which (lease_held, lease_holder) on both; what they emit is in
 *     both nodes' logs exactly once, whichever node took the commits;
 *   - the holder killed with SIGKILL while commits go on through the
 *     other node: its leases move within lease_ms, and every stream the
 *     projections write is exactly once (no duplicate, no gap) on the
 *     survivor and on the killed node once restarted, identical on both;
 *   - the holder stopped with SIGSTOP past its lease and continued: the
 *     other node took the leases meanwhile, the old holder writes nothing
 *     (its transaction fails on the lease check, or its renewal finds the
 *     lease gone first) and stands down; still exactly once;
 *   - a reset of the emitting projection hides what it wrote on both
 *     nodes (through deletion notifications in "$deleted") and runs it
 *     again from 0, exactly once.
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sluice/client.h>
#include <sluice/errors.h>

#define TENANT     "t1"
#define PROJECTION "account_details"
#define WAIT_MS    PGN_WAIT_MS
#include "pg_nodes_testutil.h"
#include "remote_testutil.h" /* ru_status */

static const char *conninfo; /* the test's cluster (pgt_start) */

/* short, with room above its 0.6 L for a loaded 2-core machine */
#define LEASE_MS   2500
#define EMITTER    "emit_counter"
#define N_ACCOUNTS 5
#define SL_XSTR(x) #x
#define SL_STR(x)  SL_XSTR(x)

static node nodes[2];
static char plugins[2100];

/* The projections that run under leases: the plugin one, the system ones
 * (by name, as status shows them). */
static const char *const leased[]
    = { EMITTER, "$by_category", "$by_event_type", "$by_correlation_id",
	      "$stream_by_category", "$streams" };
#define N_LEASED (sizeof(leased) / sizeof(leased[0]))

/* The streams they write that the test reads back on every node. */
static const char *const written[]
    = { "all-accounts", "$ce-acc", "$et-Deposited", "$streams",
	      "$category-acc", "$ce-counts", "$et-Counted" };
#define N_WRITTEN (sizeof(written) / sizeof(written[0]))

static void
cleanup(void)
{
	for (int i = 0; i < 2; i++) {
		if (nodes[i].pid > 0)
			kill(nodes[i].pid, SIGCONT);
		sl_client_close(nodes[i].cl);
		nodes[i].cl = NULL;
		dt_kill_and_reap(&nodes[i].pid);
	}
}

/* ---- status ---- */

/* Which of the leased projections n holds (bit i: leased[i]), in one
 * status request; their lease_holder into holders (may be NULL). */
static unsigned
leases_of(node *n, char holders[][128])
{
	json_t  *st = ru_status(n->cl), *e;
	size_t   i;
	unsigned held = 0, found = 0;
	json_array_foreach(json_object_get(st, "emitting_projections"), i, e)
	{
		const char *nm = json_string_value(json_object_get(e, "name"));
		const char *h
		    = json_string_value(json_object_get(e, "lease_holder"));
		for (size_t j = 0; nm != NULL && j < N_LEASED; j++) {
			if (strcmp(nm, leased[j]) != 0)
				continue;
			found |= 1u << j;
			if (json_is_true(json_object_get(e, "lease_held")))
				held |= 1u << j;
			if (holders != NULL)
				snprintf(holders[j], 128, "%s", h ? h : "");
		}
	}
	json_decref(st);
	if (found != (1u << N_LEASED) - 1)
		FAIL(n, "status lacks some emitting projections (%x)", found);
	return held;
}

/* Whether n holds the lease of projection name; its lease_holder into
 * holder (128 bytes). */
static bool
lease_of(node *n, const char *name, char *holder)
{
	char     h[N_LEASED][128];
	unsigned held = leases_of(n, h);
	for (size_t j = 0; j < N_LEASED; j++)
		if (strcmp(leased[j], name) == 0) {
			snprintf(holder, 128, "%s", h[j]);
			return held & (1u << j);
		}
	FAIL(n, "no leased projection %s", name);
}

/* The node that holds name's lease (waiting until one does), the other
 * agreeing on the holder's id. */
static int
lease_holder_node(const char *name)
{
	int64_t end = dt_now_ms() + WAIT_MS;
	char    h0[128], h1[128];
	for (;;) {
		bool a = lease_of(&nodes[0], name, h0);
		bool b = lease_of(&nodes[1], name, h1);
		CHECK(!(a && b)); /* never both */
		if ((a || b) && h0[0] != '\0' && strcmp(h0, h1) == 0)
			return a ? 0 : 1;
		if (dt_now_ms() > end)
			FAIL(&nodes[0],
			    "no node holds the lease of %s (%s / %s)", name,
			    h0, h1);
		dt_sleep_ms(20);
	}
}

/* ---- commits ---- */

static uint64_t committed; /* Deposited events acknowledged */

/* Commit a Deposited through n, on cl (a client of n's: each thread its
 * own, a client being one request at a time). */
static void
deposit_on(node *n, sl_client *cl, int k)
{
	char         stream[32];
	sl_new_event ev
	    = { .type = "Deposited", .content_json = "{\"amount\":1}" };
	snprintf(stream, sizeof(stream), "acc-%d", k % N_ACCOUNTS);
	int rc = sl_client_commit(
	    cl, TENANT, stream, SL_EXPECT_ANY, &ev, 1, NULL);
	if (rc != SL_OK)
		FAIL(n, "commit: %s: %s", sl_errname(rc),
		    sl_client_last_error(cl));
	__atomic_fetch_add(&committed, 1, __ATOMIC_RELAXED);
}

static void
deposit(node *n, int k)
{
	deposit_on(n, n->cl, k);
}

/* A writer committing through one node until told to stop. */
typedef struct writer {
	node      *n;
	sl_client *cl; /* its own */
	pthread_t  th;
	bool       stop;
} writer;

static void *
writer_main(void *arg)
{
	writer *w = arg;
	for (int k = 0; !__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE); k++) {
		deposit_on(w->n, w->cl, k);
		dt_sleep_ms(5);
	}
	return NULL;
}

static void
writer_start(writer *w, node *n)
{
	w->n    = n;
	w->cl   = NULL;
	w->stop = false;
	CHECK(dt_wait_answer(n->url, &w->cl, WAIT_MS));
	CHECK(pthread_create(&w->th, NULL, writer_main, w) == 0);
}

static void
writer_stop(writer *w)
{
	__atomic_store_n(&w->stop, true, __ATOMIC_RELEASE);
	CHECK(pthread_join(w->th, NULL) == 0);
	sl_client_close(w->cl);
}

/* ---- what the projections wrote ---- */

/* Every event of stream on n: contents (JSON) joined by '\n'. */
static char *
stream_text(node *n, const char *stream, size_t *count)
{
	size_t cap = 1 << 16, len = 0;
	char  *out = malloc(cap);
	CHECK(out != NULL);
	out[0]        = '\0';
	*count        = 0;
	uint64_t from = 0;
	for (;;) {
		sl_read_result r;
		int            rc = sl_client_read_stream(
		               n->cl, TENANT, stream, from, 1000, &r);
		if (rc != SL_OK)
			FAIL(n, "read %s: %s", stream, sl_errname(rc));
		if (r.n_events == 0) {
			sl_read_result_free(&r);
			break;
		}
		for (size_t i = 0; i < r.n_events; i++) {
			const char *c = r.events[i].content_json;
			size_t l = strlen(c) + strlen(r.events[i].type) + 3;
			while (len + l + 1 > cap) {
				cap *= 2;
				out = realloc(out, cap);
				CHECK(out != NULL);
			}
			len += (size_t) sprintf(
			    out + len, "%s %s\n", r.events[i].type, c);
			(*count)++;
		}
		from = r.next;
		sl_read_result_free(&r);
	}
	return out;
}

static int
line_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* No line of text twice (a link twice: a batch written twice). */
static void
check_unique(node *n, const char *stream, char *text, size_t count)
{
	char **v = calloc(count + 1, sizeof(*v));
	size_t k = 0;
	CHECK(v != NULL);
	char *save = NULL, *dup = strdup(text);
	for (char *l = strtok_r(dup, "\n", &save); l != NULL;
	     l       = strtok_r(NULL, "\n", &save))
                v[k++] = l;
	CHECK_EQ(k, count);
	qsort(v, k, sizeof(*v), line_cmp);
	for (size_t i = 1; i < k; i++)
		if (strcmp(v[i - 1], v[i]) == 0)
			FAIL(n, "%s holds %s twice", stream, v[i]);
	free(v);
	free(dup);
}

/* Wait until n's "all-accounts" links every acknowledged Deposited, and
 * its system projections' category stream every account event; then
 * check that each stream the projections write is exactly once. */
static void
check_exactly_once(node *n)
{
	uint64_t want = __atomic_load_n(&committed, __ATOMIC_RELAXED);
	int64_t  end  = dt_now_ms() + WAIT_MS;
	size_t   links, ce;
	for (;;) {
		free(stream_text(n, "all-accounts", &links));
		free(stream_text(n, "$ce-acc", &ce));
		if (links >= want && ce >= want)
			break;
		if (dt_now_ms() > end)
			FAIL(n,
			    "all-accounts has %zu links, $ce-acc %zu, want "
			    "%" PRIu64,
			    links, ce, want);
		dt_sleep_ms(50);
	}
	CHECK_EQ(links, want); /* no more: nothing written twice */
	CHECK_EQ(ce, want);
	for (size_t i = 0; i < N_WRITTEN; i++) {
		size_t count;
		char  *t = stream_text(n, written[i], &count);
		check_unique(n, written[i], t, count);
		free(t);
	}
	/* every account's events linked: the revisions 0..count-1 of each */
	uint64_t total = 0;
	for (int k = 0; k < N_ACCOUNTS; k++) {
		char   stream[32];
		size_t count;
		snprintf(stream, sizeof(stream), "acc-%d", k);
		free(stream_text(n, stream, &count));
		total += count;
		char *t = stream_text(n, "all-accounts", &links);
		for (size_t r = 0; r < count; r++) {
			char want_line[64];
			snprintf(want_line, sizeof(want_line),
			    "$> \"%zu@%s\"\n", r, stream);
			if (strstr(t, want_line) == NULL)
				FAIL(n, "all-accounts lacks %s", want_line);
		}
		free(t);
	}
	CHECK_EQ(total, want);
}

/* Both nodes' streams of the projections are the same events. */
static void
check_identical(void)
{
	for (size_t i = 0; i < N_WRITTEN; i++) {
		size_t ca, cb;
		char  *a = stream_text(&nodes[0], written[i], &ca);
		char  *b = stream_text(&nodes[1], written[i], &cb);
		if (ca != cb || strcmp(a, b) != 0)
			FAIL(&nodes[0],
			    "%s differs: %zu events here, %zu on b",
			    written[i], ca, cb);
		free(a);
		free(b);
	}
}

/* ---- the tests ---- */

/* A version 1 schema (as the first slice made it) is migrated. */
static void
test_migrate(void)
{
	char out[4096], url[700], v[32];
	node m;
	pgt_sql(conninfo, "CREATE DATABASE mig", NULL, 0);
	snprintf(url, sizeof(url), "%s dbname=mig", conninfo);
	node_config(&m, "mig", url);
	CHECK_EQ(pgt_sh(out, sizeof(out), "%s/sluiced --init-db -c %s",
	             SL_BUILD_DIR, m.cfg),
	    0);
	pgt_sql(url,
	    "DROP TABLE sl_leases, sl_pstate, sl_pcheck; UPDATE sl_schema SET "
	    "version = 1",
	    NULL, 0);
	CHECK_EQ(pgt_sh(out, sizeof(out), "%s/sluiced --init-db -c %s",
	             SL_BUILD_DIR, m.cfg),
	    0);
	CHECK(strstr(out, "schema version 2 (was 1)") != NULL);
	pgt_sql(url, "SELECT count(*) FROM sl_leases, sl_pstate, sl_pcheck", v,
	    sizeof(v));
	CHECK_STREQ(v, "0");
	pgt_sql(url, "SELECT version FROM sl_schema", v, sizeof(v));
	CHECK_STREQ(v, "2");
}

/* One node runs each; what they emit is there once, on both nodes. */
static void
test_one_writer(void)
{
	char h[128], other[128];
	for (size_t i = 0; i < N_LEASED; i++) {
		int holder = lease_holder_node(leased[i]);
		CHECK(lease_of(&nodes[holder], leased[i], h));
		CHECK(!lease_of(&nodes[1 - holder], leased[i], other));
		CHECK_STREQ(h, other); /* the other says who */
	}
	for (int k = 0; k < 60; k++)
		deposit(&nodes[k % 2], k);
	check_exactly_once(&nodes[0]);
	check_exactly_once(&nodes[1]);
	check_identical();
}

/* Kill (SIGKILL) or pause (SIGSTOP) the holder of emit_counter while the
 * other node takes commits: every lease it held moves within LEASE_MS. */
static void
test_fault(int sig)
{
	int      victim = lease_holder_node(EMITTER), other = 1 - victim;
	writer   w;
	unsigned had = leases_of(&nodes[victim], NULL);
	writer_start(&w, &nodes[other]);
	dt_sleep_ms(300); /* mid-stream */
	int64_t t0 = dt_now_ms();
	CHECK(kill(nodes[victim].pid, sig) == 0);
	while ((leases_of(&nodes[other], NULL) & had) != had) {
		if (dt_now_ms() - t0 > WAIT_MS)
			FAIL(&nodes[other], "the leases did not move");
		dt_sleep_ms(5);
	}
	int64_t moved = dt_now_ms() - t0;
	printf("pg_lease_test: %s: leases moved after %" PRId64
	       " ms (lease_ms %d)\n",
	    sig == SIGKILL ? "SIGKILL" : "SIGSTOP", moved, LEASE_MS);
	if (moved > LEASE_MS)
		FAIL(&nodes[other], "leases moved after %" PRId64 " ms > %d",
		    moved, LEASE_MS);
	dt_sleep_ms(500); /* the new holder emits while commits go on */
	if (sig == SIGKILL) {
		dt_waitpid(nodes[victim].pid, NULL, 0);
		nodes[victim].pid = -1;
		sl_client_close(nodes[victim].cl);
		nodes[victim].cl = NULL;
		writer_stop(&w);
		check_exactly_once(&nodes[other]);
		node_start(
		    &nodes[victim]); /* standby, its mirror catches up */
	} else {
		dt_sleep_ms(LEASE_MS); /* well past its lease */
		CHECK(kill(nodes[victim].pid, SIGCONT) == 0);
		dt_sleep_ms(1000); /* it wakes up with work to do */
		writer_stop(&w);
		/* it stood down: the transaction's check or the renewal */
		if (!dt_wait_file_has(nodes[victim].log,
		        "was taken by another node: nothing written", 3000)
		    && !dt_wait_file_has(nodes[victim].log,
		        "lost (another node took it): standing down", 100))
			FAIL(&nodes[victim],
			    "the old holder did not stand down");
		CHECK_EQ(leases_of(&nodes[victim], NULL), 0);
	}
	check_exactly_once(&nodes[other]);
	check_exactly_once(&nodes[victim]);
	check_identical();
	/* the survivor's database record of the batches: one checkpoint per
	 * projection, one lease row each */
	char v[32];
	pgt_sql(conninfo, "SELECT count(*) FROM sl_leases", v, sizeof(v));
	CHECK_EQ(strtoull(v, NULL, 10), N_LEASED);
}

/* A reset (as a changed definition makes one) on the holder: what
 * emit_counter wrote is hidden on both nodes (the deletion notifications
 * carry the marks to every mirror), its states and checkpoint go, and it
 * runs again from 0: its streams hold each link once again. */
static void
test_reset(void)
{
	int    holder = lease_holder_node(EMITTER);
	size_t n, before, after;
	free(stream_text(&nodes[holder], "all-accounts", &before));
	CHECK(before > 0);
	uint64_t next_before = 0;
	{
		sl_read_result r;
		CHECK_EQ(sl_client_read_stream(nodes[holder].cl, TENANT,
		             "all-accounts", 0, 1, &r),
		    SL_OK);
		next_before = r.n_events > 0 ? r.events[0].revision : 0;
		sl_read_result_free(&r);
	}
	int rc = sl_client_command(
	    nodes[holder].cl, "reset", EMITTER, TENANT, &n);
	if (rc != SL_OK)
		FAIL(&nodes[holder], "reset: %s: %s", sl_errname(rc),
		    sl_client_last_error(nodes[holder].cl));
	for (int k = 0; k < 10; k++)
		deposit(&nodes[k % 2], k);
	for (int i = 0; i < 2; i++) {
		check_exactly_once(&nodes[i]);
		/* the first revision shown is past what it wrote before */
		sl_read_result r;
		CHECK_EQ(sl_client_read_stream(
		             nodes[i].cl, TENANT, "all-accounts", 0, 1, &r),
		    SL_OK);
		CHECK_EQ(r.n_events, 1);
		CHECK(r.events[0].revision >= next_before + before);
		sl_read_result_free(&r);
		char *d = stream_text(&nodes[i], "$deleted", &after);
		CHECK(strstr(d, "\"stream\":\"all-accounts\"") != NULL);
		free(d);
	}
	check_identical();
}

int
main(void)
{
	char so[2200];
	snprintf(pgn_dir, sizeof(pgn_dir), "%.2000s", tu_tmpdir());
	conninfo       = pgt_start(pgn_dir);
	pgn_store_keys = "  lease_ms: " SL_STR(LEASE_MS) "\n";
	atexit(cleanup); /* runs first: daemons before the cluster */
	snprintf(plugins, sizeof(plugins), "%s/plugins", pgn_dir);
	CHECK(mkdir(plugins, 0700) == 0);
	snprintf(so, sizeof(so), "%s/emit_counter.so", plugins);
	CHECK(symlink(SL_TEST_PLUGIN_DIR "/emit_counter.so", so) == 0);
	for (int i = 0; i < 2; i++) {
		char name[2] = { (char) ('a' + i), '\0' };
		node_config_ex(&nodes[i], name, conninfo, plugins, "64MiB",
		    "start_standard_projections: true\n");
	}
	char out[4096];
	CHECK_EQ(pgt_sh(out, sizeof(out), "%s/sluiced --init-db -c %s",
	             SL_BUILD_DIR, nodes[0].cfg),
	    0);
	test_migrate();
	node_start(&nodes[0]);
	node_start(&nodes[1]);
	test_one_writer();
	test_fault(SIGKILL);
	test_fault(SIGSTOP);
	test_reset();
	for (int i = 0; i < 2; i++) {
		sl_client_close(nodes[i].cl);
		nodes[i].cl = NULL;
		dt_daemon_stop(&nodes[i].pid, 10000);
	}
	printf("pg_lease_test: ok\n");
	return 0;
}
