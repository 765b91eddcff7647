/*
 * A PostgreSQL server that hangs with its connections open (every process
 * of it stopped with SIGSTOP: the kernel keeps answering TCP, so neither
 * keepalives nor TCP give up), under a node committing all the time. It
 * proves, with real parts (the test's own cluster, a sluiced node, the
 * client library):
 *   - commits answer EUNAVAILABLE within a bounded time
 *     (event_store.timeout_ms, here 1000, plus the connect timeout),
 *     never hang, and the mirror keeps serving reads (a commit whose
 *     COMMIT was on its way when the server stopped is the exception:
 *     it waits for the server to tell whether it committed);
 *   - after SIGCONT the node commits again; every acknowledged commit is
 *     in the database at its acknowledged position and in the mirror,
 *     and nothing else is: a COMMIT whose answer never came was looked
 *     up (after its old session was ended), not guessed;
 *   - twice in a row, so that the stop falls into different phases of a
 *     group.
 */
#include <signal.h>

#define TENANT     "t1"
#define PROJECTION "account_details"

#include "pg_nodes_testutil.h"

#define TIMEOUT_MS   1000
#define TIMEOUT_TEXT "1000"
/* timeout_ms, libpq's connect_timeout (2 s, its least), the client's
 * request and slack for a loaded machine */
#define BOUND_MS 9000

static node        a;
static const char *conninfo;

static void
cleanup(void)
{
	nodes_kill(&a, 1);
}

static void
hang_once(int round)
{
	live      l = { .n = &a, .pause_ms = 1 };
	pthread_t th;
	char      stream[32];

	snprintf(stream, sizeof(stream), "acc-hang%d", round);
	l.stream = stream;
	pthread_mutex_init(&l.mu, NULL);
	CHECK(pthread_create(&th, NULL, live_main, &l) == 0);
	wait_live(&l, &l.ok_before, 20 + (size_t) round * 7, "commits");
	pgt_signal_server(SIGSTOP);
	int64_t stopped = dt_now_ms();

	/* a commit of our own answers in bounded time, and so do the
	 * writer's */
	sl_commit_result res;
	sl_new_event ev = { .type = "DebitPerformed", .content_json = "{}" };
	int          rc = sl_client_commit(
	             a.cl, TENANT, "acc-stopped", SL_EXPECT_ANY, &ev, 1, &res);
	int64_t took = dt_now_ms() - stopped;
	if (rc != SL_EUNAVAILABLE || took > BOUND_MS)
		FAIL(&a,
		    "a commit to a stopped server: %s after %" PRId64
		    " ms: %s",
		    sl_errname(rc), took, sl_client_last_error(a.cl));
	/* the mirror serves reads meanwhile */
	CHECK(node_head(&a) > 0);
	dt_sleep_ms(500);
	pgt_signal_server(SIGCONT);
	live_set(&l, &l.restarted);
	wait_live(&l, &l.ok_after, 20, "commits after SIGCONT");
	live_end(&l, th);
	printf("round %d: %zu acknowledged before, %zu EUNAVAILABLE (the "
	       "longest %" PRId64 " ms; ours %" PRId64 " ms), %zu after\n",
	    round, l.ok_before, l.unavailable, l.max_unavailable_ms, took,
	    l.ok_after);
	pthread_mutex_destroy(&l.mu);

	uint64_t head = pgn_db_head(conninfo);
	wait_head(&a, head);
	check_acks(&a, l.acks, l.n_acks);
	check_acks_db(conninfo, &l);
	char v[32];
	pgt_sql(conninfo,
	    "SELECT count(*) FROM sl_events WHERE stream = "
	    "'acc-stopped'::bytea",
	    v, sizeof(v));
	CHECK_STREQ(v, "0");
	pgt_sql(conninfo, "SELECT count(*) FROM sl_events", v, sizeof(v));
	CHECK_EQ(strtoull(v, NULL, 10), head); /* gap-free */
}

int
main(void)
{
	char out[4096];

	snprintf(pgn_dir, sizeof(pgn_dir), "%.2000s", tu_tmpdir());
	conninfo = pgt_start(pgn_dir);
	atexit(cleanup); /* runs first: the daemon before the cluster */
	pgn_store_keys = "  timeout_ms: " TIMEOUT_TEXT "\n";
	node_config_ex(&a, "a", conninfo, SL_PLUGIN_DIR, "64MiB",
	    "run_projections: none\n");
	CHECK_EQ(pgt_sh(out, sizeof(out), "%s/sluiced --init-db -c %s",
	             SL_BUILD_DIR, a.cfg),
	    0);
	node_start(&a);
	hang_once(0);
	hang_once(1);
	node_stop(&a);
	printf("pg_hang_test: ok\n");
	return 0;
}
