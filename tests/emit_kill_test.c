/*
 * Emitted events exactly once across SIGKILL (issue 8): sluiced runs the
 * emitting projection e2e_emitter (one "Ledger" event to "ledger-<stream>"
 * and one link into "ledger-all" per AccountOpened / Deposited) while a
 * writer process commits steadily and this process commits bulks. sluiced
 * is SIGKILLed nine times: right after a bulk, while the projection catches
 * up from its checkpoint after a restart (seen moving, still behind), and
 * while it follows live. At the end, caught up, every source event has
 * exactly one Ledger event and one link, in order, none missing: the
 * expected streams are recomputed from the log and compared with the
 * streams read back (links also resolved), and so is its result stream
 * per account (one Result per source event, each linked once into the
 * root result stream) and its states; a one-time
 * query answers the same states, with results, and writes nothing.
 */
#include "emit_testutil.h"

#define TENANT     FT_TENANT
#define PROJ_ID    ET_EMITTER_ID
#define PROJ_NAME  ET_EMITTER
#define N_ACCOUNTS 20
#define BULK       20000
#define WAIT_MS    60000
#define REQ_MS     10000

static int stop_pipe[2];

/* ---- the writer process: small commits, steadily, across restarts ---- */

static const char *
pick_type(uint64_t *rnd)
{
	uint32_t r = dt_rnd(rnd) % 10;
	return r == 0 ? "Other" : r < 3 ? "AccountOpened" : "Deposited";
}

static bool
stop_asked(void)
{
	char c;
	return read(stop_pipe[0], &c, 1) == 0; /* EOF: the parent closed */
}

static int
writer_main(void *arg)
{
	sl_client   *c   = NULL;
	uint64_t     rnd = 0x9e3779b97f4a7c15ULL, acked = 0;
	sl_new_event evs[10];
	char         texts[10][64];

	(void) arg;
	close(stop_pipe[1]);
	CHECK(fcntl(stop_pipe[0], F_SETFL, O_NONBLOCK) == 0);
	while (!stop_asked()) {
		char   stream[32];
		size_t n = 1 + dt_rnd(&rnd) % 10;
		int    rc;

		if (c == NULL
		    && sl_client_open(ft_api_url, 2000, &c) != SL_OK) {
			c = NULL;
			dt_sleep_ms(20);
			continue;
		}
		snprintf(stream, sizeof(stream), "account-%u",
		    dt_rnd(&rnd) % N_ACCOUNTS);
		for (size_t k = 0; k < n; k++) {
			snprintf(texts[k], sizeof(texts[k]),
			    "{\"w\":%" PRIu64 ",\"k\":%zu}", acked, k);
			evs[k] = (sl_new_event) { .type = pick_type(&rnd),
				.content_json           = texts[k] };
		}
		rc = sl_client_commit(
		    c, TENANT, stream, SL_EXPECT_ANY, evs, n, NULL);
		if (rc == SL_OK) {
			acked += n;
			dt_sleep_ms(2);
		} else if (rc == SL_ENET || rc == SL_ETIMEDOUT
		    || rc == SL_ECLOSED) {
			/* the daemon is down: it may or may not have it */
			sl_client_close(c);
			c = NULL;
			dt_sleep_ms(20);
		} else {
			fprintf(stderr, "writer: commit: %s: %s\n",
			    sl_errname(rc), sl_client_last_error(c));
			return 2;
		}
	}
	sl_client_close(c);
	fprintf(stderr, "writer: %" PRIu64 " events acknowledged\n", acked);
	return 0;
}

/* ---- status ---- */

/* Its position and the head; fails on a faulted projection. */
static bool
proj_position(long long *pos, long long *head)
{
	return et_proj_position(TENANT, PROJ_ID, PROJ_NAME, pos, head);
}

/* Wait until the projection is in status; its position. */
static long long
wait_proj(void)
{
	int64_t   end = dt_now_ms() + WAIT_MS;
	long long pos, head;

	while (!proj_position(&pos, &head)) {
		if (dt_now_ms() > end)
			FT_FAIL("no %s in status: %s", PROJ_NAME,
			    dump(et_status()));
		dt_sleep_ms(20);
	}
	return pos;
}

/* ---- bulk commits from this process ---- */

static uint64_t bulk_rnd = 42;

static void
commit_bulk(size_t n_events)
{
	static sl_new_event evs[500];
	static char         texts[500][48];

	for (size_t done = 0; done < n_events; done += 500) {
		char stream[32];
		int  rc;
		snprintf(stream, sizeof(stream), "account-%u",
		    dt_rnd(&bulk_rnd) % N_ACCOUNTS);
		for (size_t k = 0; k < 500; k++) {
			snprintf(texts[k], sizeof(texts[k]), "{\"bulk\":%zu}",
			    done + k);
			evs[k] = (sl_new_event) { .type = pick_type(&bulk_rnd),
				.content_json           = texts[k] };
		}
		rc = sl_client_commit(
		    et_cl, TENANT, stream, SL_EXPECT_ANY, evs, 500, NULL);
		if (rc != SL_OK)
			FT_FAIL("bulk commit: %s: %s", sl_errname(rc),
			    sl_client_last_error(et_cl));
	}
}

/* ---- the kills ---- */

static int n_kills, n_catchup_kills, n_live_kills;

/* After a restart: kill once the projection has moved from where it
 * started while it is still far behind the head (catching up). */
static void
kill_during_catchup(void)
{
	int64_t   end = dt_now_ms() + WAIT_MS;
	long long start, pos, head;
	size_t    bulk = BULK;

	for (int tries = 0;; tries++) {
		start = wait_proj();
		for (;;) {
			proj_position(&pos, &head);
			if ((pos > start && head - pos > 1000)
			    || head - pos <= 1000)
				break;
			if (dt_now_ms() > end)
				FT_FAIL("no progress in catch-up: %lld of "
				        "%lld",
				    pos, head);
			dt_sleep_ms(2);
		}
		if (head - pos > 1000)
			break;
		/* it caught up too fast: a bigger backlog, and again */
		if (tries == 3)
			FT_FAIL("caught up before it could be killed, %d "
			        "times (position %lld, head %lld)",
			    tries + 1, pos, head);
		fprintf(stderr, "caught up too fast; a backlog of %zu more\n",
		    bulk *= 2);
		et_daemon_down();
		et_daemon_up(REQ_MS);
		commit_bulk(bulk);
		dt_sleep_ms(20);
		et_daemon_kill();
		et_daemon_up(REQ_MS);
	}
	fprintf(stderr,
	    "kill %d: catching up (from %lld, at %lld, head %lld)\n",
	    n_kills + 1, start, pos, head);
	et_daemon_kill();
	n_kills++;
	n_catchup_kills++;
}

/* Kill while live: the projection close to the head, the writer going. */
static void
kill_live(uint64_t *rnd)
{
	int64_t   end = dt_now_ms() + WAIT_MS;
	long long pos, head;

	wait_proj();
	for (;;) {
		proj_position(&pos, &head);
		if (head - pos < 300)
			break;
		if (dt_now_ms() > end)
			FT_FAIL("not live within %d ms: %lld of %lld", WAIT_MS,
			    pos, head);
		dt_sleep_ms(20);
	}
	dt_sleep_ms(100 + (int) (dt_rnd(rnd) % 700));
	proj_position(&pos, &head);
	fprintf(stderr, "kill %d: live (at %lld, head %lld)\n", n_kills + 1,
	    pos, head);
	et_daemon_kill();
	n_kills++;
	n_live_kills++;
}

/* ---- the check ---- */

typedef struct vec {
	uint64_t *v;
	size_t    n, cap;
} vec;

static void
vec_push(vec *a, uint64_t x)
{
	if (a->n == a->cap) {
		a->cap = a->cap * 2 + 1024;
		a->v   = realloc(a->v, a->cap * sizeof(*a->v));
		CHECK(a->v != NULL);
	}
	a->v[a->n++] = x;
}

/* What the log says must be there. */
static vec      src_all;             /* source positions, log order */
static vec      src_rev[N_ACCOUNTS]; /* their revisions, per account */
static vec      src_pos[N_ACCOUNTS]; /* their positions, per account */
static vec      src_acc;             /* account of each in src_all */
static vec      src_allrev;          /* revision of each in src_all */
static uint64_t n_ledger_in_log, n_links_in_log, n_results_in_log;
/* links to the results in the root result stream (EventStoreDB's) */
static uint64_t n_root_links_in_log;

static int
account_of(const char *stream)
{
	unsigned k;
	char     tail;
	if (sscanf(stream, "account-%u%c", &k, &tail) != 1 || k >= N_ACCOUNTS)
		return -1;
	return (int) k;
}

static void
scan_log(void)
{
	uint64_t from = 0;

	for (;;) {
		sl_read_result r;
		int            rc = sl_client_read(et_cl, from, 0, &r);
		if (rc != SL_OK)
			FT_FAIL("read the log at %" PRIu64 ": %s: %s", from,
			    sl_errname(rc), sl_client_last_error(et_cl));
		for (size_t i = 0; i < r.n_events; i++) {
			sl_read_event *e = &r.events[i];
			int            k = account_of(e->stream);
			if (strcmp(e->tenant, TENANT) != 0)
				continue;
			if (k >= 0
			    && (strcmp(e->type, "AccountOpened") == 0
			        || strcmp(e->type, "Deposited") == 0)) {
				vec_push(&src_all, e->position);
				vec_push(&src_acc, (uint64_t) k);
				vec_push(&src_allrev, e->revision);
				vec_push(&src_pos[k], e->position);
				vec_push(&src_rev[k], e->revision);
			} else if (strcmp(e->type, "Ledger") == 0) {
				n_ledger_in_log++;
			} else if (strcmp(e->type, "$>") == 0
			    && strcmp(e->stream,
			           "$projections-" PROJ_NAME "-result")
			        == 0) {
				n_root_links_in_log++;
			} else if (strcmp(e->type, "$>") == 0) {
				n_links_in_log++;
			} else if (strcmp(e->type, "Result") == 0) {
				n_results_in_log++;
			}
		}
		from     = r.next;
		bool end = r.n_events == 0 || r.next >= r.head;
		sl_read_result_free(&r);
		if (end)
			break;
	}
}

/* Read a whole stream (resolving links or not) into a callback. */
typedef void (*stream_fn)(void *arg, size_t i, const sl_read_event *e);

static size_t
read_stream(const char *stream, bool resolve, stream_fn fn, void *arg)
{
	sl_read_opts o;
	size_t       n = 0;

	memset(&o, 0, sizeof(o));
	o.tenant        = TENANT;
	o.stream        = stream;
	o.resolve_links = resolve;
	for (;;) {
		sl_read_result r;
		int            rc = sl_client_read_ex(et_cl, &o, &r);
		if (rc != SL_OK)
			FT_FAIL("read %s: %s: %s", stream, sl_errname(rc),
			    sl_client_last_error(et_cl));
		if (r.n_events == 0) {
			sl_read_result_free(&r);
			return n;
		}
		for (size_t i = 0; i < r.n_events; i++)
			fn(arg, n++, &r.events[i]);
		o.from = r.next;
		sl_read_result_free(&r);
	}
}

static void
check_ledger_event(void *arg, size_t i, const sl_read_event *e)
{
	int     k = *(int *) arg;
	json_t *j;

	if (i >= src_pos[k].n)
		FT_FAIL("ledger-account-%d has more than the %zu events of "
		        "account-%d: %s",
		    k, src_pos[k].n, k, e->json);
	j = json_loads(e->content_json, 0, NULL);
	if (strcmp(e->type, "Ledger") != 0 || j == NULL
	    || jint(j, "source") != (long long) src_pos[k].v[i]
	    || jint(j, "revision") != (long long) src_rev[k].v[i]
	    || e->revision != i)
		FT_FAIL("ledger-account-%d[%zu] should be the Ledger event of "
		        "position %" PRIu64 ": %s",
		    k, i, src_pos[k].v[i], e->json);
	json_decref(j);
}

static void
check_link(void *arg, size_t i, const sl_read_event *e)
{
	char want[64];

	(void) arg;
	if (i >= src_all.n)
		FT_FAIL("ledger-all has more than %zu links: %s", src_all.n,
		    e->json);
	snprintf(want, sizeof(want), "\"%" PRIu64 "@account-%" PRIu64 "\"",
	    src_allrev.v[i], src_acc.v[i]);
	if (strcmp(e->type, "$>") != 0 || strcmp(e->content_json, want) != 0)
		FT_FAIL(
		    "ledger-all[%zu] should link %s: %s", i, want, e->json);
}

static void
check_resolved(void *arg, size_t i, const sl_read_event *e)
{
	(void) arg;
	if (i >= src_all.n || !e->is_link || e->unresolved
	    || e->position != src_all.v[i] || e->link_revision != i
	    || e->link_stream == NULL
	    || strcmp(e->link_stream, "ledger-all") != 0)
		FT_FAIL("ledger-all[%zu] resolved should be the event at "
		        "%" PRIu64 " with its link: %s",
		    i, i < src_all.n ? src_all.v[i] : 0, e->json);
}

/* The result stream of account k: Result {"count": i + 1} at i. */
static void
check_result_event(void *arg, size_t i, const sl_read_event *e)
{
	int     k = *(int *) arg;
	json_t *j = json_loads(e->content_json, 0, NULL);
	char    acc[32];

	snprintf(acc, sizeof(acc), "account-%d", k);
	if (strcmp(e->type, "Result") != 0 || j == NULL
	    || jint(j, "count") != (long long) i + 1
	    || strcmp(jstr(j, "account"), acc) != 0)
		FT_FAIL("the result stream of %s at %zu should be Result "
		        "{count: %zu}: %s",
		    acc, i, i + 1, e->json);
	json_decref(j);
}

/* States (get_all) and a one-time query agree with the log: count per
 * account = its source events; the query writes nothing. */
static void
check_states(void)
{
	sl_read_models  m;
	sl_query_result q;
	long long       pos, head0, head1;
	int             rc;

	rc = sl_client_get_all(et_cl, TENANT, PROJ_NAME, NULL, 0, &m);
	if (rc != SL_OK)
		FT_FAIL("get_all: %s: %s", sl_errname(rc),
		    sl_client_last_error(et_cl));
	proj_position(&pos, &head0);
	/* The query folds the whole log (some 250,000 events): give it
	 * time under sanitizers (limits.query_timeout_ms in the config). */
	{
		sl_client *qc;

		CHECK(sl_client_open(ft_api_url, 150000, &qc) == SL_OK);
		rc = sl_client_query(qc, TENANT, PROJ_NAME, NULL, &q);
		if (rc != SL_OK)
			FT_FAIL("query: %s: %s", sl_errname(rc),
			    sl_client_last_error(qc));
		sl_client_close(qc);
	}
	proj_position(&pos, &head1);
	CHECK_EQ(head1, head0); /* a one-time query writes nothing */
	CHECK_EQ((long long) q.position, head0);
	CHECK_EQ(q.n_states, m.n_items);
	for (size_t i = 0; i < m.n_items; i++) {
		int     k  = account_of(m.items[i].key);
		json_t *st = json_loads(m.items[i].state_json, 0, NULL);
		json_t *qs = json_loads(q.states[i].state_json, 0, NULL);
		json_t *qr = q.states[i].result_json != NULL
		    ? json_loads(q.states[i].result_json, 0, NULL)
		    : NULL;
		if (k < 0 || st == NULL
		    || jint(st, "count") != (long long) src_pos[k].n)
			FT_FAIL("state of %s: %s, expected count %zu",
			    m.items[i].key, m.items[i].state_json,
			    k >= 0 ? src_pos[k].n : 0);
		if (strcmp(q.states[i].key, m.items[i].key) != 0
		    || !json_equal(st, qs) || qr == NULL
		    || jint(qr, "count") != jint(st, "count"))
			FT_FAIL("query of %s: %s / %s, get_all: %s",
			    m.items[i].key, q.states[i].state_json,
			    q.states[i].result_json != NULL
			        ? q.states[i].result_json
			        : "(no result)",
			    m.items[i].state_json);
		json_decref(st);
		json_decref(qs);
		json_decref(qr);
	}
	fprintf(stderr,
	    "%zu states; a one-time query answers the same with results\n",
	    m.n_items);
	sl_query_result_free(&q);
	sl_read_models_free(&m);
}

static void
check_streams(void)
{
	uint64_t total = 0;
	size_t   n;

	scan_log();
	fprintf(stderr,
	    "log: %zu source events, %" PRIu64 " Ledger events, %" PRIu64
	    " links, %" PRIu64 " results\n",
	    src_all.n, n_ledger_in_log, n_links_in_log, n_results_in_log);
	CHECK(src_all.n > 3 * BULK / 2);
	for (int k = 0; k < N_ACCOUNTS; k++) {
		char name[96];
		snprintf(name, sizeof(name), "ledger-account-%d", k);
		n = read_stream(name, false, check_ledger_event, &k);
		if (n != src_pos[k].n)
			FT_FAIL("%s has %zu events, account-%d has %zu", name,
			    n, k, src_pos[k].n);
		total += n;
		snprintf(name, sizeof(name),
		    "$projections-" PROJ_NAME "-account-%d-result", k);
		n = read_stream(name, false, check_result_event, &k);
		if (n != src_pos[k].n)
			FT_FAIL("%s has %zu events, account-%d has %zu", name,
			    n, k, src_pos[k].n);
	}
	CHECK_EQ(total, src_all.n);
	CHECK_EQ(n_results_in_log, src_all.n);
	CHECK_EQ(n_ledger_in_log, src_all.n); /* no stray duplicate */
	n = read_stream("ledger-all", false, check_link, NULL);
	CHECK_EQ(n, src_all.n);
	CHECK_EQ(n_links_in_log, src_all.n);
	/* each result linked once into the root result stream, across the
	 * kills too */
	CHECK_EQ(n_root_links_in_log, n_results_in_log);
	n = read_stream("ledger-all", true, check_resolved, NULL);
	CHECK_EQ(n, src_all.n);
}

int
main(void)
{
	char     so[4400];
	uint64_t rnd = 7;
	pid_t    writer;
	int      wstatus;

	ft_setup(NULL);
	/* our own config: the emitter's plugin dir, no system projections */
	et_write_config("data", et_plugin_dir(), TENANT,
	    "event_store:\n"
	    "  sync: false\n"
	    "limits:\n"
	    "  query_timeout_ms: 120000\n"
	    "run_projections: all\n"
	    "start_standard_projections: false\n");
	et_install_plugin(PROJ_NAME, so, sizeof(so));

	/* The writer is forked before this process touches NNG. */
	CHECK(pipe2(stop_pipe, O_CLOEXEC) == 0);
	writer = ft_fork(writer_main, NULL);
	close(stop_pipe[0]);

	et_daemon_up(REQ_MS);
	wait_proj();
	for (int round = 0; round < 3; round++) {
		/* a bulk behind the writer's events, then a kill at once */
		commit_bulk(BULK);
		dt_sleep_ms((int) (dt_rnd(&rnd) % 50));
		fprintf(stderr, "kill %d: right after a bulk\n", n_kills + 1);
		et_daemon_kill();
		n_kills++;
		/* catching up the bulk from its checkpoint */
		et_daemon_up(REQ_MS);
		kill_during_catchup();
		/* live */
		et_daemon_up(REQ_MS);
		kill_live(&rnd);
		et_daemon_up(REQ_MS);
	}
	CHECK(n_kills >= 5);
	CHECK(n_catchup_kills >= 3 && n_live_kills >= 3);

	/* Stop the writer, then wait until the projection has caught up. */
	close(stop_pipe[1]);
	if (!dt_wait_exit(writer, WAIT_MS, &wstatus))
		FT_FAIL("the writer did not stop");
	ft_forget(writer);
	if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0)
		FT_FAIL("the writer failed: status 0x%x", wstatus);
	{
		int64_t   end = dt_now_ms() + WAIT_MS;
		long long pos, head, last = -1;
		for (;;) {
			proj_position(&pos, &head);
			if (pos == last
			    && et_nothing_to_handle(
			        pos, head, et_emitter_handles)) {
				fprintf(stderr,
				    "caught up: checkpoint %lld, head %lld\n",
				    pos, head);
				break; /* and stays there */
			}
			last = pos;
			if (dt_now_ms() > end)
				FT_FAIL("not caught up within %d ms: %lld of "
				        "%lld",
				    WAIT_MS, pos, head);
			dt_sleep_ms(200);
		}
	}
	check_streams();
	check_states();
	fprintf(stderr,
	    "%d kills (%d while catching up, %d live): every source event "
	    "has exactly one Ledger event and one link, in order\n",
	    n_kills, n_catchup_kills, n_live_kills);
	et_daemon_down();
	return 0;
}
