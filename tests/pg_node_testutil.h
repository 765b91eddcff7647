/*
 * sluiced nodes on the test's PostgreSQL cluster (pg_testutil.h): a node's
 * config in its own directory under the test's, started and waited for,
 * its mirror's head, and the database's. For the tests of the PostgreSQL
 * event log (pg_log_test, pg_lease_test).
 */
#ifndef SL_PG_NODE_TESTUTIL_H
#define SL_PG_NODE_TESTUTIL_H

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <sys/stat.h>

#include <sluice/client.h>
#include <sluice/errors.h>

#include "daemon_testutil.h"
#include "pg_testutil.h"

#ifndef TENANT
#define TENANT "t1"
#endif
#ifndef WAIT_MS
#define WAIT_MS 30000
#endif

/* The test's temp dir and its cluster's conninfo (set by main). */
static char        dir[2048];
static const char *conninfo;

typedef struct node {
	char       dir[2200], cfg[4200], log[4200], url[4200];
	pid_t      pid;
	sl_client *cl;
} node;

#define FAIL(n, ...) DT_FAIL_LOG((n)->log, __VA_ARGS__)

/* A node's resources.yaml in dir/name on the database at url (NULL:
 * LMDB): plugins from plugin_dir, a mirror of map bytes, store_extra
 * yaml in event_store (e.g. "  lease_ms: 1500\n"), extra yaml at the top
 * level. */
static void
node_config_store(node *n, const char *name, const char *url,
    const char *plugin_dir, const char *map, const char *store_extra,
    const char *extra)
{
	char   yaml[8192];
	size_t len;
	snprintf(n->dir, sizeof(n->dir), "%s/%.100s", dir, name);
	CHECK(mkdir(n->dir, 0700) == 0 || errno == EEXIST);
	snprintf(n->cfg, sizeof(n->cfg), "%s/resources.yaml", n->dir);
	snprintf(n->log, sizeof(n->log), "%s/sluiced.log", n->dir);
	snprintf(n->url, sizeof(n->url), "ipc://%s/api.ipc", n->dir);
	len = dt_config_head(
	    yaml, sizeof(yaml), n->dir, plugin_dir, n->url, map);
	if (url != NULL)
		len += (size_t) snprintf(yaml + len, sizeof(yaml) - len,
		    "  backend: postgresql\n  url: \"%s\"\n%s", url,
		    store_extra);
	snprintf(yaml + len, sizeof(yaml) - len,
	    "hot_reload: false\n%stenants:\n  - id: " TENANT "\n", extra);
	dt_write_bytes(n->cfg, yaml, strlen(yaml));
	n->pid = -1;
	n->cl  = NULL;
}

/* node_config_store without store_extra. */
__attribute__((unused)) static void
node_config_ex(node *n, const char *name, const char *url,
    const char *plugin_dir, const char *map, const char *extra)
{
	node_config_store(n, name, url, plugin_dir, map, "", extra);
}

/* node_config_ex with the build's plugins, a 64 MiB mirror. */
__attribute__((unused)) static void
node_config(node *n, const char *name, const char *url)
{
	node_config_ex(n, name, url, SL_PLUGIN_DIR, "64MiB", "");
}

static void
node_start(node *n)
{
	n->pid = dt_daemon_spawn(n->cfg, n->log);
	if (!dt_wait_answer(n->url, &n->cl, WAIT_MS))
		FAIL(n, "sluiced on %s does not answer", n->url);
}

/* The node's log head (its mirror's next position). */
static uint64_t
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
	int64_t  end = dt_now_ms() + WAIT_MS;
	uint64_t h;
	while ((h = node_head(n)) < head) {
		if (dt_now_ms() > end)
			FAIL(n, "head %" PRIu64 ", want %" PRIu64, h, head);
		dt_sleep_ms(20);
	}
}

/* The database's head (sl_head.next). */
__attribute__((unused)) static uint64_t
pg_head(void)
{
	char v[32];
	pgt_sql(conninfo, "SELECT next FROM sl_head", v, sizeof(v));
	return strtoull(v, NULL, 10);
}

#endif
