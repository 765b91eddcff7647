/*
 * sluiced nodes on the test's PostgreSQL cluster (pg_testutil.h): their
 * configurations in the test's temp dir, start and head, and the checks
 * the PostgreSQL tests share: logs identical across nodes, acknowledged
 * commits where their acks said, Account Details read models, and a
 * writer that keeps committing through an outage. The includer defines
 * TENANT and PROJECTION and sets pgn_dir (its temp dir) first.
 */
#ifndef SL_PG_NODES_TESTUTIL_H
#define SL_PG_NODES_TESTUTIL_H

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include <jansson.h>
#include <sluice/client.h>
#include <sluice/errors.h>

#include "daemon_testutil.h"
#include "pg_testutil.h"

#define PGN_WAIT_MS 30000

typedef struct node {
	char       dir[2200], cfg[4200], log[4200], url[4200];
	pid_t      pid;
	sl_client *cl;
} node;

static char pgn_dir[2048];
/* more event_store keys of the PostgreSQL nodes ("  timeout_ms: 1000\n") */
static const char *pgn_store_keys = "";

#define FAIL(n, ...) DT_FAIL_LOG((n)->log, __VA_ARGS__)

/* A node's resources.yaml in pgn_dir/name on the database at url (NULL:
 * LMDB): plugins from plugin_dir, a mirror of map bytes, extra yaml. */
__attribute__((unused)) static void
node_config_ex(node *n, const char *name, const char *url,
    const char *plugin_dir, const char *map, const char *extra)
{
	char   yaml[8192];
	size_t len;
	snprintf(n->dir, sizeof(n->dir), "%s/%.100s", pgn_dir, name);
	CHECK(mkdir(n->dir, 0700) == 0 || errno == EEXIST);
	snprintf(n->cfg, sizeof(n->cfg), "%.2150s/resources.yaml", n->dir);
	snprintf(n->log, sizeof(n->log), "%.2150s/sluiced.log", n->dir);
	snprintf(n->url, sizeof(n->url), "ipc://%.2150s/api.ipc", n->dir);
	len = dt_config_head(
	    yaml, sizeof(yaml), n->dir, plugin_dir, n->url, map);
	if (url != NULL)
		len += (size_t) snprintf(yaml + len, sizeof(yaml) - len,
		    "  backend: postgresql\n  url: \"%s\"\n%s", url,
		    pgn_store_keys);
	snprintf(yaml + len, sizeof(yaml) - len,
	    "hot_reload: false\n%stenants:\n  - id: " TENANT "\n", extra);
	dt_write_bytes(n->cfg, yaml, strlen(yaml));
	n->pid = -1;
	n->cl  = NULL;
}

/* node_config_ex with the build's plugins, a 64 MiB mirror. */
__attribute__((unused)) static void
node_config(node *n, const char *name, const char *url)
{
	node_config_ex(n, name, url, SL_PLUGIN_DIR, "64MiB", "");
}

__attribute__((unused)) static void
node_start(node *n)
{
	n->pid = dt_daemon_spawn(n->cfg, n->log);
	if (!dt_wait_answer(n->url, &n->cl, PGN_WAIT_MS))
		FAIL(n, "sluiced on %s does not answer", n->url);
}

/* At exit: every node of ns[0..n-1] killed (before the cluster stops). */
__attribute__((unused)) static void
nodes_kill(node *ns, int n)
{
	for (int i = 0; i < n; i++) {
		sl_client_close(ns[i].cl);
		ns[i].cl = NULL;
		dt_kill_and_reap(&ns[i].pid);
	}
}

/* Close its client and stop it (SIGTERM, then SIGKILL). */
__attribute__((unused)) static void
node_stop(node *n)
{
	sl_client_close(n->cl);
	n->cl = NULL;
	dt_daemon_stop(&n->pid, 10000);
}

/* The node's log head (its mirror's next position). */
__attribute__((unused)) static uint64_t
node_head(node *n)
{
	sl_read_result r;
	int            rc = sl_client_read(n->cl, 0, 1, &r);
	if (rc != SL_OK)
		FAIL(n, "read: %s: %s", sl_errname(rc),
		    sl_client_last_error(n->cl));
	uint64_t head = r.head;
	sl_read_result_free(&r);
	return head;
}

__attribute__((unused)) static void
wait_head(node *n, uint64_t head)
{
	int64_t  end = dt_now_ms() + PGN_WAIT_MS;
	uint64_t h;
	while ((h = node_head(n)) < head) {
		if (dt_now_ms() > end)
			FAIL(n, "head %" PRIu64 ", want %" PRIu64, h, head);
		dt_sleep_ms(20);
	}
}

/* The database's head (sl_head.next) at conninfo. */
__attribute__((unused)) static uint64_t
pgn_db_head(const char *conninfo)
{
	char v[32];
	pgt_sql(conninfo, "SELECT next FROM sl_head", v, sizeof(v));
	return strtoull(v, NULL, 10);
}

/* The logs of nodes ns[0..n-1], read whole: identical, positions
 * 0..head-1 (with all_shown: every one of them; else deletions hide some
 * from reads). */
__attribute__((unused)) static void
compare_logs_n(node *ns, int n, uint64_t head, bool all_shown)
{
	for (uint64_t pos = 0; pos < head;) {
		sl_read_result r[4];
		CHECK(n >= 2 && n <= 4);
		for (int i = 0; i < n; i++) {
			int rc = sl_client_read(ns[i].cl, pos, 500, &r[i]);
			if (rc != SL_OK)
				FAIL(&ns[i], "read from %" PRIu64 ": %s", pos,
				    sl_errname(rc));
		}
		CHECK(r[0].next > pos);
		for (int i = 1; i < n; i++) {
			CHECK_EQ(r[0].next, r[i].next);
			CHECK_EQ(r[0].n_events, r[i].n_events);
			for (size_t k = 0; k < r[0].n_events; k++) {
				CHECK_EQ(r[0].events[k].position,
				    r[i].events[k].position);
				CHECK_STREQ(
				    r[0].events[k].json, r[i].events[k].json);
			}
		}
		if (all_shown)
			for (size_t k = 0; k < r[0].n_events; k++)
				CHECK_EQ(r[0].events[k].position, pos + k);
		pos = r[0].next;
		for (int i = 0; i < n; i++)
			sl_read_result_free(&r[i]);
	}
}

typedef struct ack {
	uint64_t position;
	char     stream[32];
	uint64_t revision;
} ack;

/* Each acknowledged event where its ack said, on node n. */
__attribute__((unused)) static void
check_acks(node *n, const ack *acks, size_t n_acks)
{
	for (size_t i = 0; i < n_acks; i++) {
		sl_read_result r;
		CHECK_EQ(
		    sl_client_read(n->cl, acks[i].position, 1, &r), SL_OK);
		if (r.n_events != 1 || r.events[0].position != acks[i].position
		    || strcmp(r.events[0].stream, acks[i].stream) != 0
		    || r.events[0].revision != acks[i].revision)
			FAIL(n,
			    "acknowledged %s@%" PRIu64 " is not at %" PRIu64,
			    acks[i].stream, acks[i].revision,
			    acks[i].position);
		sl_read_result_free(&r);
	}
}

/* The read models of PROJECTION on node n as one JSON text, and the sum
 * of their balances. */
__attribute__((unused)) static char *
read_models(node *n, int64_t *balance)
{
	sl_read_models m;
	json_t        *all = json_object();
	int rc = sl_client_get_all(n->cl, TENANT, PROJECTION, NULL, 1000, &m);
	if (rc != SL_OK)
		FAIL(n, "get_all: %s", sl_errname(rc));
	CHECK(!m.more);
	*balance = 0;
	for (size_t i = 0; i < m.n_items; i++) {
		json_t *st = json_loads(m.items[i].state_json, 0, NULL);
		CHECK(st != NULL);
		*balance += json_integer_value(json_object_get(st, "balance"));
		json_object_set_new(all, m.items[i].key, st);
	}
	sl_read_models_free(&m);
	char *text = json_dumps(all, JSON_SORT_KEYS | JSON_COMPACT);
	json_decref(all);
	return text;
}

/* The read models of nodes ns[0..n-1] equal, their balances summing to
 * want, within PGN_WAIT_MS. */
__attribute__((unused)) static void
wait_read_models_n(node *ns, int n, int64_t want)
{
	int64_t end = dt_now_ms() + PGN_WAIT_MS;
	for (;;) {
		int64_t b0, bi = want;
		char   *m0   = read_models(&ns[0], &b0);
		bool    same = b0 == want;
		for (int i = 1; i < n && same; i++) {
			char *mi = read_models(&ns[i], &bi);
			same     = strcmp(m0, mi) == 0 && bi == want;
			if (!same && dt_now_ms() > end)
				FAIL(&ns[i],
				    "read models differ or are short "
				    "(balances %" PRId64 " and %" PRId64
				    ", want %" PRId64 "):\n%s\n%s",
				    b0, bi, want, m0, mi);
			free(mi);
		}
		free(m0);
		if (same)
			return;
		if (dt_now_ms() > end)
			FAIL(&ns[0], "balance %" PRId64 ", want %" PRId64, b0,
			    want);
		dt_sleep_ms(50);
	}
}

/* ---- a writer that commits through an outage ---- */

typedef struct live {
	node           *n;
	const char     *stream;   /* "acc-live" unless set */
	int             pause_ms; /* after an acknowledged commit (5) */
	bool            stop;
	size_t          ok_before, ok_after, unavailable;
	bool            restarted;
	ack             acks[4096];
	size_t          n_acks;
	int64_t         amount;
	int64_t         max_unavailable_ms; /* the longest EUNAVAILABLE took */
	char            err[256];
	pthread_mutex_t mu;
} live;

/* Commits DebitPerformed {"amount": i} to l->stream with any revision
 * until stopped; acknowledged ones in acks (before or after restarted),
 * EUNAVAILABLE counted, any other answer ends it with err. */
__attribute__((unused)) static void *
live_main(void *arg)
{
	live            *l = arg;
	sl_client       *cl;
	sl_commit_result res;
	char             content[64];
	const char      *stream = l->stream != NULL ? l->stream : "acc-live";

	if (sl_client_open(l->n->url, 20000, &cl) != SL_OK) {
		snprintf(l->err, sizeof(l->err), "open");
		return NULL;
	}
	for (int i = 1;; i++) {
		pthread_mutex_lock(&l->mu);
		bool stop = l->stop, after = l->restarted;
		pthread_mutex_unlock(&l->mu);
		if (stop || l->n_acks == 4096)
			break;
		snprintf(content, sizeof(content), "{\"amount\":%d}", i);
		sl_new_event ev
		    = { .type = "DebitPerformed", .content_json = content };
		int64_t t0 = dt_now_ms();
		int     rc = sl_client_commit(
		        cl, TENANT, stream, SL_EXPECT_ANY, &ev, 1, &res);
		int64_t took = dt_now_ms() - t0;
		pthread_mutex_lock(&l->mu);
		if (rc == SL_OK) {
			ack *a      = &l->acks[l->n_acks++];
			a->position = res.first_position;
			a->revision = res.first_revision;
			snprintf(a->stream, sizeof(a->stream), "%s", stream);
			l->amount += i;
			if (after)
				l->ok_after++;
			else
				l->ok_before++;
		} else if (rc == SL_EUNAVAILABLE) {
			l->unavailable++;
			if (took > l->max_unavailable_ms)
				l->max_unavailable_ms = took;
		} else {
			snprintf(l->err, sizeof(l->err), "commit: %s: %s",
			    sl_errname(rc), sl_client_last_error(cl));
			pthread_mutex_unlock(&l->mu);
			break;
		}
		pthread_mutex_unlock(&l->mu);
		dt_sleep_ms(
		    rc == SL_OK ? (l->pause_ms ? l->pause_ms : 5) : 20);
	}
	sl_client_close(cl);
	return NULL;
}

__attribute__((unused)) static size_t
live_get(live *l, size_t *field)
{
	pthread_mutex_lock(&l->mu);
	size_t v = *field;
	pthread_mutex_unlock(&l->mu);
	return v;
}

__attribute__((unused)) static void
wait_live(live *l, size_t *field, size_t want, const char *what)
{
	int64_t end = dt_now_ms() + PGN_WAIT_MS;
	while (live_get(l, field) < want) {
		if (l->err[0] != '\0' || dt_now_ms() > end)
			FAIL(l->n, "waiting for %s: %s", what, l->err);
		dt_sleep_ms(20);
	}
}

/* Set l's restarted (true) or stop flag. */
__attribute__((unused)) static void
live_set(live *l, bool *flag)
{
	pthread_mutex_lock(&l->mu);
	*flag = true;
	pthread_mutex_unlock(&l->mu);
}

/* Stop l's thread th and fail the test on its error. */
__attribute__((unused)) static void
live_end(live *l, pthread_t th)
{
	live_set(l, &l->stop);
	pthread_join(th, NULL);
	if (l->err[0] != '\0')
		FAIL(l->n, "live writer: %s", l->err);
}

/* Each of l's acks in the database at conninfo, at its position, and
 * nothing else in its stream: no acknowledged commit lost, none written
 * twice, none written that was answered otherwise. */
__attribute__((unused)) static void
check_acks_db(const char *conninfo, const live *l)
{
	char        sql[512], v[32];
	const char *stream = l->stream != NULL ? l->stream : "acc-live";
	for (size_t i = 0; i < l->n_acks; i++) {
		snprintf(sql, sizeof(sql),
		    "SELECT count(*) FROM sl_events WHERE position = %" PRIu64
		    " AND stream = '%s'::bytea AND revision = %" PRIu64,
		    l->acks[i].position, stream, l->acks[i].revision);
		pgt_sql(conninfo, sql, v, sizeof(v));
		if (strcmp(v, "1") != 0)
			FAIL(l->n,
			    "acknowledged %s@%" PRIu64 " is not at %" PRIu64
			    " in the database",
			    stream, l->acks[i].revision, l->acks[i].position);
	}
	snprintf(sql, sizeof(sql),
	    "SELECT count(*) FROM sl_events WHERE stream = '%s'::bytea",
	    stream);
	pgt_sql(conninfo, sql, v, sizeof(v));
	if (strtoull(v, NULL, 10) != l->n_acks)
		FAIL(l->n,
		    "%s has %s events in the database, %zu acknowledged",
		    stream, v, l->n_acks);
}

#endif
