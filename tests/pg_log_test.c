/*
 * The event log on PostgreSQL (docs/postgresql.md), with real parts: a
 * PostgreSQL cluster of the test's own (scripts/pg_cluster.sh), two
 * sluiced processes on one database, the client library. It proves:
 *   - sluiced --init-db creates the schema, again changes nothing, and a
 *     newer schema is refused by --init-db and by the daemon, unchanged;
 *     a database without the schema does not start a daemon;
 *   - expected revisions hold across the nodes (EREVISION as with LMDB);
 *     a repeated event id is refused (EEXIST), nothing written;
 *   - four writers on two nodes, into one shared stream and their own:
 *     both nodes' logs identical and gap-free, every acknowledged commit
 *     at its position, Account Details read models identical on both;
 *   - PostgreSQL stopped: commits answer EUNAVAILABLE (the CLI exits 5),
 *     reads go on from the mirror; restarted: commits and processors
 *     resume, and nothing acknowledged is lost;
 *   - a node killed with SIGKILL catches its mirror up when restarted;
 *   - a stream deleted and truncated through one node is hidden on both,
 *     and on a node whose mirror is made afresh; refusals as with LMDB;
 *   - an emitting projection is refused with a reason on this backend
 *     (not in this slice), the node serving on;
 *   - a mirror that cannot take the commits (map full) does not hold
 *     their acknowledgements back: they are in the database;
 *   - a node's mirror pointed at another database refuses to start.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TENANT     "t1"
#define PROJECTION "account_details"

#include "pg_nodes_testutil.h"
#include "remote_testutil.h" /* ru_request: a commit with its event ids */

#define N_WRITERS  4
#define N_COMMITS  40
#define WAIT_MS    30000

static const char *conninfo;
static node        nodes[2];

static void
cleanup(void)
{
	nodes_kill(nodes, 2);
}

/* The database's head (sl_head.next). */
static uint64_t
pg_head(void)
{
	return pgn_db_head(conninfo);
}

/* ---- init-db ---- */

static void
test_init_db(void)
{
	char out[8192], other[600], v[32];
	node db2;

	/* an LMDB configuration has nothing to initialize */
	node_config(&db2, "lmdb", NULL);
	CHECK_EQ(pgt_sh(out, sizeof(out), "%s/sluiced --init-db -c %s",
	             SL_BUILD_DIR, db2.cfg),
	    2);
	CHECK(strstr(out,
	          "--init-db is for 'event_store.backend: "
	          "postgresql'")
	    != NULL);

	CHECK_EQ(pgt_sh(out, sizeof(out), "%s/sluiced --init-db -c %s",
	             SL_BUILD_DIR, nodes[0].cfg),
	    0);
	CHECK(strstr(out, "schema version 1 (was 0)") != NULL);
	CHECK_EQ(pgt_sh(out, sizeof(out), "%s/sluiced --init-db -c %s",
	             SL_BUILD_DIR, nodes[0].cfg),
	    0);
	CHECK(strstr(out, "schema version 1: up to date") != NULL);
	pgt_sql(conninfo, "SELECT count(*) FROM sl_head", v, sizeof(v));
	CHECK_STREQ(v, "1");

	/* another database: no schema, then a newer one */
	pgt_sql(conninfo, "CREATE DATABASE other", NULL, 0);
	snprintf(other, sizeof(other), "%s dbname=other", conninfo);
	node_config(&db2, "other", other);
	db2.pid = dt_daemon_spawn(db2.cfg, db2.log);
	int st;
	if (!dt_wait_exit(db2.pid, WAIT_MS, &st))
		FAIL(&db2, "sluiced without a schema did not exit");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	CHECK(dt_wait_file_has(db2.log,
	    "the database has no Sluice schema: run sluiced --init-db", 1000));
	CHECK_EQ(pgt_sh(out, sizeof(out), "%s/sluiced --init-db -c %s",
	             SL_BUILD_DIR, db2.cfg),
	    0);
	pgt_sql(other, "UPDATE sl_schema SET version = 99", NULL, 0);
	CHECK_EQ(pgt_sh(out, sizeof(out), "%s/sluiced --init-db -c %s",
	             SL_BUILD_DIR, db2.cfg),
	    1);
	CHECK(strstr(out,
	          "EVERSION: the database's schema is version 99, "
	          "newer than this sluiced knows (1)")
	    != NULL);
	pgt_sql(other, "SELECT version FROM sl_schema", v, sizeof(v));
	CHECK_STREQ(v, "99");
	pgt_sql(other, "SELECT count(*) FROM sl_events", v, sizeof(v));
	CHECK_STREQ(v, "0");
	db2.pid = dt_daemon_spawn(db2.cfg, db2.log);
	if (!dt_wait_exit(db2.pid, WAIT_MS, &st))
		FAIL(&db2, "sluiced on a newer schema did not exit");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	CHECK(
	    dt_wait_file_has(db2.log, "newer than this sluiced knows", 1000));
}

/* ---- commits ---- */

static int
commit1(node *n, const char *stream, uint64_t expected, const char *type,
    const char *content, sl_commit_result *res)
{
	sl_new_event ev = { .type = type, .content_json = content };
	return sl_client_commit(n->cl, TENANT, stream, expected, &ev, 1, res);
}

static void
test_expected_revisions(void)
{
	sl_commit_result res;
	node            *a = &nodes[0], *b = &nodes[1];
	const char      *open = "{\"account_id\":\"acc-r\",\"name\":\"r\"}";

	CHECK_EQ(commit1(a, "acc-r", SL_EXPECT_NO_STREAM, "DebitAccountOpened",
	             open, &res),
	    SL_OK);
	CHECK_EQ(res.first_revision, 0);
	CHECK_EQ(commit1(b, "acc-r", SL_EXPECT_NO_STREAM, "DebitAccountOpened",
	             open, &res),
	    SL_EREVISION);
	CHECK_EQ(res.actual_revision, 0);
	CHECK(strstr(sl_client_last_error(b->cl), "at revision 0") != NULL);
	CHECK_EQ(
	    commit1(b, "acc-r", 0, "DebitPerformed", "{\"amount\":7}", &res),
	    SL_OK);
	CHECK_EQ(res.first_revision, 1);
	CHECK_EQ(
	    commit1(a, "acc-r", 0, "DebitPerformed", "{\"amount\":9}", &res),
	    SL_EREVISION);
	CHECK_EQ(res.actual_revision, 1);
	/* the refusals wrote nothing: two events in the database */
	CHECK_EQ(pg_head(), 2);
	wait_head(a, 2);
	wait_head(b, 2);
}

/* Event ids are unique in the log of record: a repeated one is refused
 * (EEXIST, naming it), and nothing is written. */
static void
test_event_ids(void)
{
	node       *a = &nodes[0], *b = &nodes[1];
	json_t     *rep;
	const char *one
	    = "{\"v\":1,\"op\":\"commit\",\"tenant\":\"" TENANT "\","
	      "\"stream\":\"acc-id\",\"events\":[{\"type\":\"X\","
	      "\"content\":{},\"id\":\"7d444840-9dc0-11d1-b245-5ffdce74fad2\"}"
	      "]}";
	const char *twice
	    = "{\"v\":1,\"op\":\"commit\",\"tenant\":\"" TENANT "\","
	      "\"stream\":\"acc-id2\",\"events\":[{\"type\":\"X\","
	      "\"content\":{},\"id\":\"11111111-9dc0-11d1-b245-5ffdce74fad2\"}"
	      ","
	      "{\"type\":\"X\",\"content\":{},"
	      "\"id\":\"11111111-9dc0-11d1-b245-5ffdce74fad2\"}]}";

	CHECK_EQ(ru_request(a->cl, one, NULL), SL_OK);
	uint64_t head = pg_head();
	CHECK_EQ(ru_request(b->cl, one, &rep), SL_EEXIST);
	CHECK(
	    strstr(json_string_value(json_object_get(rep, "message")),
	        "event id 7d444840-9dc0-11d1-b245-5ffdce74fad2 is in the log "
	        "already")
	    != NULL);
	json_decref(rep);
	CHECK_EQ(ru_request(a->cl, twice, &rep), SL_EEXIST);
	CHECK(strstr(json_string_value(json_object_get(rep, "message")),
	          "repeated in the commit")
	    != NULL);
	json_decref(rep);
	CHECK_EQ(pg_head(), head);
	wait_head(a, head);
	wait_head(b, head);
	sl_read_result r;
	CHECK_EQ(
	    sl_client_read_stream(b->cl, TENANT, "acc-id", 0, 10, &r), SL_OK);
	CHECK_EQ(r.n_events, 1);
	sl_read_result_free(&r);
	CHECK_EQ(
	    sl_client_read_stream(a->cl, TENANT, "acc-id2", 0, 10, &r), SL_OK);
	CHECK_EQ(r.n_events, 0);
	sl_read_result_free(&r);
}

/* ---- writers on both nodes ---- */

typedef struct writer {
	int        id;
	node      *n;
	sl_client *cl;
	ack        acks[N_COMMITS * 3];
	size_t     n_acks;
	int64_t    amount; /* committed DebitPerformed amounts */
	char       err[256];
} writer;

static void *
writer_main(void *arg)
{
	writer          *w = arg;
	char             own[32], content[128];
	sl_commit_result res;
	uint64_t         own_rev = 0;

	snprintf(own, sizeof(own), "acc-w%d", w->id);
	if (sl_client_open(w->n->url, 20000, &w->cl) != SL_OK) {
		snprintf(w->err, sizeof(w->err), "open: %s",
		    sl_client_open_error());
		return NULL;
	}
	for (int i = 0; i < N_COMMITS; i++) {
		sl_new_event ev[3];
		size_t       n = 1;
		const char  *stream;
		uint64_t     expected;
		int          amount = w->id * 100 + i + 1;

		snprintf(content, sizeof(content), "{\"amount\":%d}", amount);
		if (i == 0) { /* its own account, then exact revisions */
			snprintf(content, sizeof(content),
			    "{\"account_id\":\"%s\",\"name\":\"w%d\"}", own,
			    w->id);
			ev[0]  = (sl_new_event) { .type = "DebitAccountOpened",
				 .content_json          = content };
			stream = own;
			expected = SL_EXPECT_NO_STREAM;
			amount   = 0;
		} else if (i % 2 == 0) {
			ev[0] = ev[1] = ev[2]
			    = (sl_new_event) { .type = "DebitPerformed",
				      .content_json  = content };
			n        = 3; /* a batch: all or nothing */
			stream   = own;
			expected = own_rev - 1;
			amount *= 3;
		} else {
			ev[0]    = (sl_new_event) { .type = "DebitPerformed",
				   .content_json          = content };
			stream   = "acc-shared";
			expected = SL_EXPECT_ANY;
		}
		int rc = sl_client_commit(
		    w->cl, TENANT, stream, expected, ev, n, &res);
		if (rc != SL_OK) {
			snprintf(w->err, sizeof(w->err), "commit %d: %s: %s",
			    i, sl_errname(rc), sl_client_last_error(w->cl));
			return NULL;
		}
		if (res.count != n
		    || res.last_position != res.first_position + n - 1) {
			snprintf(w->err, sizeof(w->err),
			    "commit %d: bad result", i);
			return NULL;
		}
		for (size_t k = 0; k < n; k++) {
			ack *a      = &w->acks[w->n_acks++];
			a->position = res.first_position + k;
			a->revision = res.first_revision + k;
			snprintf(a->stream, sizeof(a->stream), "%s", stream);
		}
		if (stream == own)
			own_rev = res.first_revision + n;
		w->amount += amount;
	}
	return NULL;
}

/* Both nodes' logs, read whole: identical, positions 0..head-1 (with
 * all_shown: every one of them; else deletions hide some from reads). */
static void
compare_logs_ex(uint64_t head, bool all_shown)
{
	compare_logs_n(nodes, 2, head, all_shown);
}

static void
compare_logs(uint64_t head)
{
	compare_logs_ex(head, true);
}

/* Both nodes' read models equal, with balances summing to want. */
static void
wait_read_models(int64_t want)
{
	wait_read_models_n(nodes, 2, want);
}

static int64_t total_amount = 7; /* acc-r's DebitPerformed */

static void
test_two_nodes(void)
{
	writer    w[N_WRITERS];
	pthread_t th[N_WRITERS];

	memset(w, 0, sizeof(w));
	for (int i = 0; i < N_WRITERS; i++) {
		w[i].id = i;
		w[i].n  = &nodes[i % 2];
		CHECK(pthread_create(&th[i], NULL, writer_main, &w[i]) == 0);
	}
	for (int i = 0; i < N_WRITERS; i++) {
		pthread_join(th[i], NULL);
		sl_client_close(w[i].cl);
		if (w[i].err[0] != '\0')
			FAIL(w[i].n, "writer %d: %s", i, w[i].err);
		total_amount += w[i].amount;
	}
	uint64_t head = pg_head();
	/* 3 before + per writer: 1 + 19 batches of 3 + 20 singles */
	CHECK_EQ(head, 3 + N_WRITERS * (1 + 3 * 19 + 20));
	wait_head(&nodes[0], head);
	wait_head(&nodes[1], head);
	CHECK_EQ(node_head(&nodes[0]), head);
	compare_logs(head);
	for (int i = 0; i < N_WRITERS; i++) {
		check_acks(&nodes[0], w[i].acks, w[i].n_acks);
		check_acks(&nodes[1], w[i].acks, w[i].n_acks);
	}
	wait_read_models(total_amount);
}

/* ---- PostgreSQL stopped and started again ---- */

static void
test_pg_outage(void)
{
	live      l = { .n = &nodes[0] };
	pthread_t th;
	char      out[8192];
	node     *a = &nodes[0];

	pthread_mutex_init(&l.mu, NULL);
	CHECK(pthread_create(&th, NULL, live_main, &l) == 0);
	wait_live(&l, &l.ok_before, 10, "commits before the outage");
	pgt_stop();
	/* at once, also when the writer holds a commit whose COMMIT lost
	 * its connection (it waits for the database to tell, and answers
	 * the commits queued behind it meanwhile) */
	sl_commit_result res;
	CHECK_EQ(commit1(a, "acc-down", SL_EXPECT_ANY, "DebitPerformed",
	             "{\"amount\":1}", &res),
	    SL_EUNAVAILABLE);
	CHECK(strstr(sl_client_last_error(a->cl), "connect") != NULL);
	/* the CLI says so by its exit status */
	CHECK_EQ(pgt_sh(out, sizeof(out),
	             "%s/sluice --url %s commit --tenant " TENANT
	             " --stream acc-down --type DebitPerformed "
	             "'{\"amount\":1}'",
	             SL_BUILD_DIR, a->url),
	    5);
	CHECK(strstr(out, "sluice: EUNAVAILABLE: ") != NULL);
	/* the mirror serves reads meanwhile */
	uint64_t h = node_head(a);
	CHECK(h > 0);

	pgt_restart();
	live_set(&l, &l.restarted);
	wait_live(&l, &l.ok_after, 10, "commits after the restart");
	printf("outage: %zu acknowledged before, %zu EUNAVAILABLE, %zu "
	       "after\n",
	    live_get(&l, &l.ok_before), live_get(&l, &l.unavailable),
	    live_get(&l, &l.ok_after));
	live_end(&l, th);
	pthread_mutex_destroy(&l.mu);

	uint64_t head = pg_head();
	wait_head(&nodes[0], head);
	wait_head(&nodes[1], head);
	compare_logs(head);
	check_acks(&nodes[0], l.acks, l.n_acks);
	check_acks(&nodes[1], l.acks, l.n_acks);
	/* nothing but the acknowledged ones: acc-down has no events */
	sl_read_result r;
	CHECK_EQ(sl_client_read_stream(a->cl, TENANT, "acc-down", 0, 10, &r),
	    SL_OK);
	CHECK_EQ(r.n_events, 0);
	sl_read_result_free(&r);
	total_amount += l.amount;
	wait_read_models(total_amount);
}

/* ---- stream deletion ---- */

/* The events of stream on node n, read: their revisions into revs
 * (at most 16); @return how many. */
static size_t
stream_revs(node *n, const char *stream, uint64_t *revs)
{
	sl_read_result r;
	CHECK_EQ(
	    sl_client_read_stream(n->cl, TENANT, stream, 0, 16, &r), SL_OK);
	size_t k = r.n_events;
	for (size_t i = 0; i < k; i++)
		revs[i] = r.events[i].revision;
	sl_read_result_free(&r);
	return k;
}

/* A deletion and a truncation on one node hide the stream's revisions on
 * both (the other node's mirror takes the mark from the notification);
 * the stream keeps counting; refusals as with LMDB, nothing written. */
static void
test_delete(void)
{
	node            *a = &nodes[0], *b = &nodes[1];
	sl_commit_result res;
	sl_delete_result dr;
	uint64_t         revs[16];
	char             v[32];

	for (int i = 0; i < 3; i++)
		CHECK_EQ(commit1(a, "acc-del",
		             i == 0 ? SL_EXPECT_NO_STREAM : (uint64_t) i - 1,
		             "X", "{}", &res),
		    SL_OK);
	uint64_t head = pg_head();
	CHECK_EQ(
	    sl_client_delete_stream(b->cl, TENANT, "acc-del", 2, &dr), SL_OK);
	CHECK_EQ(dr.position, head);
	CHECK_EQ(dr.revision, 2);
	CHECK_EQ(dr.truncate_before, 3);
	wait_head(a, head + 1);
	wait_head(b, head + 1);
	CHECK_EQ(stream_revs(a, "acc-del", revs), 0);
	CHECK_EQ(stream_revs(b, "acc-del", revs), 0);
	/* refused: deleted already, no such stream, a stale revision */
	CHECK_EQ(sl_client_delete_stream(
	             a->cl, TENANT, "acc-del", SL_EXPECT_ANY, &dr),
	    SL_ENOTFOUND);
	CHECK(strstr(sl_client_last_error(a->cl), "is deleted") != NULL);
	CHECK_EQ(sl_client_delete_stream(
	             a->cl, TENANT, "acc-none", SL_EXPECT_ANY, &dr),
	    SL_ENOTFOUND);
	CHECK_EQ(sl_client_delete_stream(a->cl, TENANT, "acc-del", 1, &dr),
	    SL_EREVISION);
	CHECK_EQ(pg_head(), head + 1);
	/* the stream keeps counting; a truncation hides below its mark */
	CHECK_EQ(commit1(b, "acc-del", 2, "X", "{}", &res), SL_OK);
	CHECK_EQ(res.first_revision, 3);
	CHECK_EQ(commit1(b, "acc-del", 3, "X", "{}", &res), SL_OK);
	CHECK_EQ(
	    sl_client_truncate_stream(a->cl, TENANT, "acc-del", 4, 9, &dr),
	    SL_EINVAL);
	CHECK_EQ(
	    sl_client_truncate_stream(a->cl, TENANT, "acc-del", 4, 4, &dr),
	    SL_OK);
	CHECK_EQ(dr.truncate_before, 4);
	head = pg_head();
	wait_head(a, head);
	wait_head(b, head);
	CHECK_EQ(stream_revs(a, "acc-del", revs), 1);
	CHECK_EQ(revs[0], 4);
	CHECK_EQ(stream_revs(b, "acc-del", revs), 1);
	CHECK_EQ(revs[0], 4);
	CHECK_EQ(stream_revs(b, "$deleted", revs), 2);
	pgt_sql(conninfo,
	    "SELECT truncate_before FROM sl_streams WHERE stream = "
	    "'acc-del'::bytea",
	    v, sizeof(v));
	CHECK_STREQ(v, "4");
	compare_logs_ex(head, false);
}

/* ---- a node killed ---- */

static void
test_node_killed(void)
{
	node *a = &nodes[0], *b = &nodes[1];

	sl_client_close(b->cl);
	b->cl = NULL;
	dt_kill_and_reap(&b->pid);
	for (int i = 0; i < 50; i++) {
		sl_commit_result res;
		CHECK_EQ(commit1(a, "acc-r", SL_EXPECT_ANY, "DebitPerformed",
		             "{\"amount\":2}", &res),
		    SL_OK);
		total_amount += 2;
	}
	node_start(b);
	uint64_t head = pg_head();
	wait_head(b, head);
	CHECK_EQ(node_head(b), head);
	compare_logs(head);
	wait_read_models(total_amount);
	CHECK(dt_wait_file_has(b->log, "the log of record (schema 1)", 1000));
}

/* What this slice does not run on PostgreSQL is refused with a reason,
 * and the node keeps serving: an emitting plugin projection (status says
 * why it does not run). The node's mirror, made afresh, hides what the
 * deletions hide. */
static void
test_not_yet(void)
{
	node e;
	char plugins[2100], so[2200];

	snprintf(plugins, sizeof(plugins), "%s/e-plugins", pgn_dir);
	CHECK(mkdir(plugins, 0700) == 0);
	snprintf(so, sizeof(so), "%s/emit_counter.so", plugins);
	CHECK(symlink(SL_TEST_PLUGIN_DIR "/emit_counter.so", so) == 0);
	node_config_ex(&e, "e", conninfo, plugins, "64MiB", "");
	node_start(&e);
	json_t *st = NULL;
	CHECK_EQ(ru_request(e.cl, "{\"v\":1,\"op\":\"status\"}", &st), SL_OK);
	char *text = json_dumps(st, JSON_COMPACT);
	if (strstr(text,
	        "emits events, and emitting projections do not run "
	        "on 'event_store.backend: postgresql' yet")
	    == NULL)
		FAIL(&e,
		    "status does not say why emit_counter does not run: %s",
		    text);
	free(text);
	json_decref(st);

	/* a fresh mirror takes the deletions from the notifications */
	uint64_t head = pg_head(), revs[16];
	wait_head(&e, head);
	CHECK_EQ(stream_revs(&e, "acc-del", revs), 1);
	CHECK_EQ(revs[0], 4);
	sl_commit_result res;
	CHECK_EQ(
	    commit1(&e, "acc-e", SL_EXPECT_NO_STREAM, "X", "{}", &res), SL_OK);
	CHECK_EQ(res.first_position, head);
	node_stop(&e);
}

/* A mirror that cannot take what was committed (its LMDB map is full)
 * does not hold the acknowledgements back: the commits are in the
 * database, which is what an ack promises; the node says so in its log. */
static void
test_mirror_full(void)
{
	node  f;
	char  url[600], v[32];
	char *content = malloc(48 * 1024);

	pgt_sql(conninfo, "CREATE DATABASE mirror_full", NULL, 0);
	snprintf(url, sizeof(url), "%s dbname=mirror_full", conninfo);
	node_config_ex(
	    &f, "f", url, SL_PLUGIN_DIR, "1MiB", "run_projections: none\n");
	char out[4096];
	CHECK_EQ(pgt_sh(out, sizeof(out), "%s/sluiced --init-db -c %s",
	             SL_BUILD_DIR, f.cfg),
	    0);
	node_start(&f);
	CHECK(content != NULL);
	memcpy(content, "{\"pad\":\"", 8);
	memset(content + 8, 'x', 48 * 1024 - 11);
	memcpy(content + 48 * 1024 - 3, "\"}", 3);
	for (int i = 0; i < 40; i++) {
		sl_commit_result res;
		int rc = commit1(&f, "big", SL_EXPECT_ANY, "X", content, &res);
		if (rc != SL_OK)
			FAIL(&f, "commit %d: %s: %s", i, sl_errname(rc),
			    sl_client_last_error(f.cl));
		CHECK_EQ(res.first_position, i);
	}
	free(content);
	pgt_sql(url, "SELECT next FROM sl_head", v, sizeof(v));
	CHECK_STREQ(v, "40");
	CHECK(dt_wait_file_has(f.log, "acknowledged without it", 1000));
	CHECK(node_head(&f) < 40); /* the mirror is behind, and serving */
	node_stop(&f);
}

/* A mirror is never mixed with another database's log: node a's, full
 * of this database's events, pointed at a new empty database does not
 * start, and says why; the new database stays empty. */
static void
test_foreign_mirror(void)
{
	char third[600], out[4096], v[32];
	node n = nodes[0];
	pgt_sql(conninfo, "CREATE DATABASE third", NULL, 0);
	snprintf(third, sizeof(third), "%s dbname=third", conninfo);
	node_config(&n, "a", third); /* the same data_dir, another url */
	CHECK_EQ(pgt_sh(out, sizeof(out), "%s/sluiced --init-db -c %s",
	             SL_BUILD_DIR, n.cfg),
	    0);
	n.pid = dt_daemon_spawn(n.cfg, n.log);
	int st;
	if (!dt_wait_exit(n.pid, WAIT_MS, &st))
		FAIL(&n, "sluiced on a foreign mirror did not exit");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	CHECK(dt_wait_file_has(
	    n.log, "the mirror was made from another database", 1000));
	pgt_sql(third, "SELECT count(*) FROM sl_events", v, sizeof(v));
	CHECK_STREQ(v, "0");
}

int
main(void)
{
	snprintf(pgn_dir, sizeof(pgn_dir), "%.2000s", tu_tmpdir());
	conninfo = pgt_start(pgn_dir);
	atexit(cleanup); /* runs first: daemons before the cluster */
	node_config(&nodes[0], "a", conninfo);
	node_config(&nodes[1], "b", conninfo);

	test_init_db();
	node_start(&nodes[0]);
	node_start(&nodes[1]);
	test_expected_revisions();
	test_event_ids();
	test_two_nodes();
	test_pg_outage();
	test_node_killed();
	test_delete();

	for (int i = 0; i < 2; i++)
		node_stop(&nodes[i]);
	test_not_yet();
	test_mirror_full();
	test_foreign_mirror();
	printf("pg_log_test: ok\n");
	return 0;
}
