/*
 * A primary failover under two sluiced nodes, with real parts: the test's
 * own PostgreSQL primary and a streaming replica of it in synchronous
 * replication (the primary answers a COMMIT once the replica flushed it),
 * two nodes whose url names both servers (libpq's multi-host conninfo,
 * target_session_attrs=read-write), writers committing on both. It proves:
 *   - the primary killed (immediate shutdown: a crash) and the replica
 *     promoted: commits answer EUNAVAILABLE meanwhile, never a wrong
 *     ack; the nodes reconnect to the new primary and commit again;
 *   - every acknowledged commit is in the new primary's log at its
 *     acknowledged position and in both nodes' mirrors, nothing answered
 *     otherwise is; the logs are gap-free and equal; the Account Details
 *     read models are equal on both nodes and add up to the commits;
 *   - a database that lost events a node's mirror holds (as a failover to
 *     an asynchronous replica can) is detected, not mixed: the node
 *     refuses commits (ESTORAGE) and says why, and its mirror serves on;
 *     first with the tail deleted by hand, then for real: an asynchronous
 *     replica of the new primary, stopped while a node commits, promoted
 *     after the primary is killed, lacks those acknowledged commits, and
 *     the node refuses to go on over it.
 */
#define TENANT     "t1"
#define PROJECTION "account_details"

#include "pg_nodes_testutil.h"

static node        nodes[3];
static const char *primary, *replica;
static char        url[1200];

static void
cleanup(void)
{
	nodes_kill(nodes, 3);
}

static int
port_of(const char *conninfo)
{
	const char *p = strstr(conninfo, "port=");
	CHECK(p != NULL);
	return atoi(p + 5);
}

static void
test_failover(void)
{
	live      l[2];
	pthread_t th[2];
	char      stream[2][16];

	memset(l, 0, sizeof(l));
	for (int i = 0; i < 2; i++) {
		snprintf(stream[i], sizeof(stream[i]), "acc-live%d", i);
		l[i].n      = &nodes[i];
		l[i].stream = stream[i];
		pthread_mutex_init(&l[i].mu, NULL);
		CHECK(pthread_create(&th[i], NULL, live_main, &l[i]) == 0);
	}
	for (int i = 0; i < 2; i++)
		wait_live(&l[i], &l[i].ok_before, 20, "commits before");
	pgt_cluster("kill", 0);
	/* no server takes writes: a commit of our own on each node answers
	 * EUNAVAILABLE (a writer whose COMMIT was in flight waits for the
	 * truth, which the new primary tells) */
	for (int i = 0; i < 2; i++) {
		sl_commit_result res;
		sl_new_event     ev = { .type = "X", .content_json = "{}" };
		int rc = sl_client_commit(nodes[i].cl, TENANT, "acc-none",
		    SL_EXPECT_ANY, &ev, 1, &res);
		if (rc != SL_EUNAVAILABLE)
			FAIL(&nodes[i], "a commit without a primary: %s: %s",
			    sl_errname(rc), sl_client_last_error(nodes[i].cl));
	}
	pgt_cluster("promote", 1);
	for (int i = 0; i < 2; i++)
		live_set(&l[i], &l[i].restarted);
	for (int i = 0; i < 2; i++)
		wait_live(&l[i], &l[i].ok_after, 20, "commits after");
	int64_t amount = 0;
	for (int i = 0; i < 2; i++) {
		live_end(&l[i], th[i]);
		printf("node %d: %zu acknowledged before, %zu EUNAVAILABLE, "
		       "%zu after\n",
		    i, l[i].ok_before, l[i].unavailable, l[i].ok_after);
		amount += l[i].amount;
	}

	uint64_t head = pgn_db_head(replica);
	char     v[32];
	pgt_sql(replica, "SELECT count(*) FROM sl_events", v, sizeof(v));
	CHECK_EQ(strtoull(v, NULL, 10), head); /* gap-free */
	for (int i = 0; i < 2; i++) {
		wait_head(&nodes[i], head);
		CHECK_EQ(node_head(&nodes[i]), head);
		check_acks_db(replica, &l[i]);
		check_acks(&nodes[0], l[i].acks, l[i].n_acks);
		check_acks(&nodes[1], l[i].acks, l[i].n_acks);
		pthread_mutex_destroy(&l[i].mu);
	}
	compare_logs_n(nodes, 2, head, true);
	pgt_sql(replica,
	    "SELECT count(*) FROM sl_events WHERE stream = 'acc-none'::bytea",
	    v, sizeof(v));
	CHECK_STREQ(v, "0");
	/* each account's balance the sum of its debits */
	wait_read_models_n(nodes, 2, amount);
}

/* Commits on node n until it refuses with ESTORAGE (EUNAVAILABLE while
 * it cannot tell yet); an acknowledgement fails the test. */
static void
wait_refused(node *n, const char *stream)
{
	sl_commit_result res;
	int64_t          end = dt_now_ms() + PGN_WAIT_MS;
	int              rc;
	for (;;) {
		sl_new_event ev = { .type = "X", .content_json = "{}" };
		rc              = sl_client_commit(
		                 n->cl, TENANT, stream, SL_EXPECT_ANY, &ev, 1, &res);
		if (rc == SL_ESTORAGE || dt_now_ms() > end)
			break;
		if (rc == SL_OK)
			FAIL(n,
			    "a commit acknowledged at %" PRIu64
			    " on a database behind the mirror",
			    res.first_position);
		dt_sleep_ms(50);
	}
	if (rc != SL_ESTORAGE)
		FAIL(n, "commit on a database behind the mirror: %s",
		    sl_errname(rc));
	CHECK(strstr(sl_client_last_error(n->cl), "lost events") != NULL);
	CHECK(dt_wait_file_has(n->log, "the database lost events", 1000));
}

/* The database lost the last events node a's mirror holds (what a
 * failover to an asynchronous replica that had not received them does):
 * its next sessions find out, commits are refused, nothing is mixed. */
static void
test_lost_tail(void)
{
	node    *a = &nodes[0];
	char     sql[256], v[32];
	uint64_t head = pgn_db_head(replica);

	snprintf(sql, sizeof(sql),
	    "BEGIN; DELETE FROM sl_events WHERE position >= %" PRIu64 ";"
	    "UPDATE sl_head SET next = %" PRIu64 "; COMMIT",
	    head - 3, head - 3);
	pgt_sql(replica, sql, NULL, 0);
	/* the sessions end, as a failover ends them */
	pgt_sql(replica,
	    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
	    "WHERE application_name = 'sluiced'",
	    NULL, 0);
	wait_refused(a, "acc-lost");
	CHECK_EQ(node_head(a), head); /* the mirror serves what it holds */
	pgt_sql(replica, "SELECT next FROM sl_head", v, sizeof(v));
	CHECK_EQ(strtoull(v, NULL, 10), head - 3); /* nothing written */
}

/* A real asynchronous failover: replica 2 of the new primary (cluster
 * 1), asynchronous, stopped; node c commits three events (acknowledged:
 * the primary does not wait for an asynchronous replica); the primary
 * killed, replica 2 started and promoted without them. Node c, whose
 * mirror holds them, refuses to go on; they stay readable there. */
static void
test_async_lost(void)
{
	node            *c = &nodes[2];
	char             url2[1200], v[32];
	sl_commit_result res;
	const char      *replica2 = pgt_add_replica(2, 1, false);

	snprintf(url2, sizeof(url2),
	    "host=127.0.0.1,127.0.0.1 port=%d,%d user=postgres "
	    "dbname=postgres target_session_attrs=read-write",
	    port_of(replica), port_of(replica2));
	node_config(c, "c", url2);
	node_start(c);
	uint64_t head = pgn_db_head(replica);
	wait_head(c, head);
	/* replica 2 has what the primary had so far */
	for (int i = 0;; i++) {
		pgt_sql(replica2, "SELECT next FROM sl_head", v, sizeof(v));
		if (strtoull(v, NULL, 10) == head)
			break;
		CHECK(i < 1500);
		dt_sleep_ms(20);
	}
	pgt_cluster("stop", 2);
	for (int i = 0; i < 3; i++) {
		sl_new_event ev = { .type = "X", .content_json = "{}" };
		CHECK_EQ(sl_client_commit(c->cl, TENANT, "acc-async",
		             SL_EXPECT_ANY, &ev, 1, &res),
		    SL_OK);
		CHECK_EQ(res.first_position, head + (uint64_t) i);
	}
	pgt_cluster("kill", 1);
	pgt_cluster("start", 2);
	pgt_cluster("promote", 2);
	wait_refused(c, "acc-after");
	/* the new primary lacks the acknowledged three and took nothing */
	pgt_sql(replica2, "SELECT next FROM sl_head", v, sizeof(v));
	CHECK_EQ(strtoull(v, NULL, 10), head);
	pgt_sql(replica2, "SELECT count(*) FROM sl_events", v, sizeof(v));
	CHECK_EQ(strtoull(v, NULL, 10), head);
	/* node c still serves them from its mirror */
	CHECK_EQ(node_head(c), head + 3);
	sl_read_result r;
	CHECK_EQ(sl_client_read_stream(c->cl, TENANT, "acc-async", 0, 10, &r),
	    SL_OK);
	CHECK_EQ(r.n_events, 3);
	sl_read_result_free(&r);
}

int
main(void)
{
	char out[4096];

	snprintf(pgn_dir, sizeof(pgn_dir), "%.2000s", tu_tmpdir());
	primary = pgt_start(pgn_dir);
	replica = pgt_replica(true);
	atexit(cleanup); /* runs first: daemons before the clusters */
	snprintf(url, sizeof(url),
	    "host=127.0.0.1,127.0.0.1 port=%d,%d user=postgres "
	    "dbname=postgres target_session_attrs=read-write",
	    port_of(primary), port_of(replica));
	pgn_store_keys = "  timeout_ms: 2000\n";
	node_config(&nodes[0], "a", url);
	node_config(&nodes[1], "b", url);
	CHECK_EQ(pgt_sh(out, sizeof(out), "%s/sluiced --init-db -c %s",
	             SL_BUILD_DIR, nodes[0].cfg),
	    0);
	node_start(&nodes[0]);
	node_start(&nodes[1]);
	test_failover();
	test_lost_tail();
	for (int i = 0; i < 2; i++)
		node_stop(&nodes[i]);
	test_async_lost();
	node_stop(&nodes[2]);
	printf("pg_failover_test: ok\n");
	return 0;
}
