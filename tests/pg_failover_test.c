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
 *     refuses commits (ESTORAGE) and says why, and its mirror serves on.
 */
#define TENANT     "t1"
#define PROJECTION "account_details"

#include "pg_nodes_testutil.h"

static node        nodes[2];
static const char *primary, *replica;
static char        url[1200];

static void
cleanup(void)
{
	nodes_kill(nodes, 2);
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
	pgt_cluster("kill", false);
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
	pgt_cluster("promote", true);
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

/* The database lost the last events node a's mirror holds (what a
 * failover to an asynchronous replica that had not received them does):
 * its next sessions find out, commits are refused, nothing is mixed. */
static void
test_lost_tail(void)
{
	node            *a = &nodes[0];
	sl_commit_result res;
	char             sql[256], v[32];
	uint64_t         head = pgn_db_head(replica);

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
	int64_t end = dt_now_ms() + PGN_WAIT_MS;
	int     rc;
	for (;;) {
		sl_new_event ev = { .type = "X", .content_json = "{}" };
		rc              = sl_client_commit(
		                 a->cl, TENANT, "acc-lost", SL_EXPECT_ANY, &ev, 1, &res);
		if (rc == SL_ESTORAGE || dt_now_ms() > end)
			break;
		if (rc == SL_OK)
			FAIL(a,
			    "a commit acknowledged at %" PRIu64
			    " on a database behind the mirror (%" PRIu64 ")",
			    res.first_position, head);
		dt_sleep_ms(50);
	}
	if (rc != SL_ESTORAGE)
		FAIL(a, "commit on a database behind the mirror: %s",
		    sl_errname(rc));
	CHECK(strstr(sl_client_last_error(a->cl), "lost") != NULL);
	CHECK(dt_wait_file_has(a->log, "the database lost events", 1000));
	CHECK_EQ(node_head(a), head); /* the mirror serves what it holds */
	pgt_sql(replica, "SELECT next FROM sl_head", v, sizeof(v));
	CHECK_EQ(strtoull(v, NULL, 10), head - 3); /* nothing written */
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
	printf("pg_failover_test: ok\n");
	return 0;
}
