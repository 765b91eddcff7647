/*
 * Plugin code is never unloaded while an API thread runs it: sluiced runs
 * as a process with the reload_query plugin while three client threads ask
 * without pause one-time queries (the plugin's on() on an API thread, for
 * every key and for one key), get_one and get_all (its result transform),
 * and the test replaces the plugin file 500 times (three builds of the
 * same definition, each copied in and renamed over the watched file).
 * The daemon must stay alive and answer every request: with its states,
 * or refused with a stable code. Accepted codes:
 *   query:   SL_OK; SL_ENOTFOUND ("not loaded any more": its version was
 *            closed between the lookup and the hold);
 *   get_one, get_all: SL_OK only (a closed version's states are served).
 * Anything else (SL_ENET or SL_ETIMEDOUT: the daemon died or hung) fails.
 * Afterwards it stops on SIGTERM with status 0, with no plugin version
 * still held, and no private copy of the plugin is left.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sluice/client.h>

#include "daemon_testutil.h"

#define TENANT     "t1"
#define PROJ       "reload_query"
#define N_STREAMS  16
#define N_COMMITS  32 /* of PER_COMMIT events, streams in turn */
#define PER_COMMIT 100
#define N_EVENTS   (N_COMMITS * PER_COMMIT)
#define N_SWAPS    500
#define N_THREADS  3
#define WAIT_MS    20000

static char  dir[4096], cfg_path[4200], daemon_log[4200], url[4200];
static char  plugin[4200], cache[4200];
static pid_t daemon_pid = -1;
static pid_t test_pid;

static void
cleanup(void)
{
	if (getpid() == test_pid)
		dt_kill_and_reap(&daemon_pid);
}

#define FAIL(...) DT_FAIL_LOG(daemon_log, __VA_ARGS__)

static void
variant_path(int v, char *out, size_t len)
{
	snprintf(out, len, SL_TEST_PLUGIN_DIR "/reload_query_v%d.so", v);
}

/* Copy variant v over the watched file: "<plugin>.tmp", then rename. */
static void
install(int v)
{
	char src[4200];
	variant_path(v, src, sizeof(src));
	dt_install(src, NULL, plugin);
}

static void
write_config(void)
{
	char text[20000];
	dt_test_paths(dir, cfg_path, daemon_log, url);
	snprintf(plugin, sizeof(plugin), "%s/plugins/reload_query.so", dir);
	snprintf(cache, sizeof(cache), "%s/data/plugin-cache", dir);
	char plugins[4200];
	snprintf(plugins, sizeof(plugins), "%s/plugins", dir);
	size_t n = dt_config_head(text, sizeof(text), dir, plugins, url, "64MiB");
	snprintf(text + n, sizeof(text) - n,
	    "hot_reload_quiet_ms: 1\n"
	    "tenants:\n"
	    "  - id: " TENANT "\n"
	    "    read_models:\n"
	    "      map_size: 32MiB\n"
	    "run_projections: all\n");
	tu_write_file(cfg_path, text);
}

static sl_client *
connect_client(void)
{
	sl_client *c   = NULL;
	int64_t    end = dt_now_ms() + WAIT_MS;
	while (sl_client_open(url, 10000, &c) != SL_OK) {
		if (dt_now_ms() > end)
			FAIL("cannot connect to %s: %s", url,
			    sl_client_open_error());
		dt_sleep_ms(20);
	}
	return c;
}

/* Fail if sluiced has exited (waiting up to ms for it to), saying how. */
static void
check_alive(int ms, const char *when)
{
	int st;
	if (!dt_wait_exit(daemon_pid, ms, &st))
		return;
	daemon_pid = -1;
	if (WIFSIGNALED(st))
		FAIL("sluiced was killed by signal %d (%s) %s", WTERMSIG(st),
		    strsignal(WTERMSIG(st)), when);
	FAIL("sluiced exited with status %d %s", WEXITSTATUS(st), when);
}

/* count of a state's JSON text, -1 if it has none */
static long long
json_count(const char *text)
{
	json_t   *j = json_loads(text, 0, NULL);
	long long n = -1;
	if (j != NULL && json_is_integer(json_object_get(j, "count")))
		n = json_integer_value(json_object_get(j, "count"));
	json_decref(j);
	return n;
}

/* ---- the query threads ---- */

enum { OP_QUERY_ALL, OP_QUERY_KEY, OP_GET_ONE, OP_GET_ALL, OP_N };
static const char *const op_names[OP_N]
    = { "query (all keys)", "query (one key)", "get_one", "get_all" };

static atomic_bool     stop;
static atomic_long     answered[OP_N], refused[OP_N];
static atomic_bool     failed;
static char            failure[1024];
static pthread_mutex_t failure_mu = PTHREAD_MUTEX_INITIALIZER;

static void
fail_op(int op, int rc, const char *why)
{
	pthread_mutex_lock(&failure_mu);
	if (!atomic_load(&failed))
		snprintf(failure, sizeof(failure), "%s: %s (%s)", op_names[op],
		    sl_errname(rc), why);
	atomic_store(&failed, true);
	pthread_mutex_unlock(&failure_mu);
}

/* Check one answer; the state's count is at most N_EVENTS / N_STREAMS
 * rounded up, the result's variant one of the three builds. */
static const char *
check_query(const sl_query_result *q, bool one_key)
{
	if (one_key ? q->n_states != 1 : q->n_states != N_STREAMS)
		return "wrong number of states";
	for (size_t i = 0; i < q->n_states; i++) {
		const sl_query_state *s = &q->states[i];
		long long             n = json_count(s->state_json);
		if (n != N_EVENTS / N_STREAMS)
			return "a one-time query's count is not the log's";
		json_t   *r = s->result_json != NULL
		      ? json_loads(s->result_json, 0, NULL)
		      : NULL;
		long long v = r != NULL
		    ? json_integer_value(json_object_get(r, "variant"))
		    : 0;
		json_decref(r);
		if (v < 1 || v > 3)
			return "no result from a plugin build";
	}
	return NULL;
}

static void *
query_thread(void *arg)
{
	sl_client *c    = connect_client();
	uint64_t   seed = 0x9e3779b97f4a7c15ULL + (uintptr_t) arg;
	for (unsigned i = (unsigned) (uintptr_t) arg; !atomic_load(&stop);
	     i++) {
		int         op = (int) (i % OP_N), rc;
		char        key[32];
		const char *bad = NULL;
		snprintf(
		    key, sizeof(key), "tick-%02u", dt_rnd(&seed) % N_STREAMS);
		if (op == OP_QUERY_ALL || op == OP_QUERY_KEY) {
			sl_query_result q;
			memset(&q, 0, sizeof(q));
			rc = sl_client_query(c, TENANT, PROJ,
			    op == OP_QUERY_KEY ? key : NULL, &q);
			if (rc == SL_OK)
				bad = check_query(&q, op == OP_QUERY_KEY);
			sl_query_result_free(&q);
			if (rc == SL_ENOTFOUND) {
				atomic_fetch_add(&refused[op], 1);
				continue;
			}
		} else if (op == OP_GET_ONE) {
			char *state = NULL;
			bool  found = false;
			rc          = sl_client_get_one(
			             c, TENANT, PROJ, key, &state, &found);
			if (rc == SL_OK
			    && (!found
			        || json_count(state) != N_EVENTS / N_STREAMS))
				bad = "get_one: not the caught-up state";
			sl_client_free(state);
		} else {
			sl_read_models m;
			memset(&m, 0, sizeof(m));
			rc = sl_client_get_all(c, TENANT, PROJ, NULL, 0, &m);
			if (rc == SL_OK && m.n_items != N_STREAMS)
				bad = "get_all: not every key";
			sl_read_models_free(&m);
		}
		if (rc != SL_OK)
			fail_op(op, rc, sl_client_last_error(c));
		else if (bad != NULL)
			fail_op(op, rc, bad);
		else
			atomic_fetch_add(&answered[op], 1);
		if (atomic_load(&failed))
			break;
	}
	sl_client_close(c);
	return NULL;
}

/* ---- the plugins op ---- */

static sl_client *ctl;

/* The plugin file's entry: loads, versions_open, version. */
static void
plugin_status(long long *loads, long long *open, char *version, size_t len)
{
	char *text = NULL;
	int   rc   = sl_client_plugins(ctl, &text);
	if (rc != SL_OK)
		FAIL("plugins: %s %s", sl_errname(rc),
		    sl_client_last_error(ctl));
	json_t *st = json_loads(text, 0, NULL);
	CHECK(st != NULL);
	sl_client_free(text);
	size_t  i;
	json_t *p, *found = NULL;
	json_array_foreach(json_object_get(st, "plugins"), i, p)
	{
		if (strcmp(
		        json_string_value(json_object_get(p, "file")), plugin)
		    == 0)
			found = p;
	}
	CHECK(found != NULL);
	*loads = json_integer_value(json_object_get(found, "loads"));
	*open  = json_integer_value(json_object_get(found, "versions_open"));
	const char *v = json_string_value(json_object_get(found, "version"));
	snprintf(version, len, "%s", v != NULL ? v : "");
	json_decref(st);
}

static int
count_files(const char *d)
{
	DIR *dd = opendir(d);
	if (dd == NULL)
		return 0;
	int            n = 0;
	struct dirent *de;
	while ((de = readdir(dd)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(dd);
	return n;
}

int
main(void)
{
	int64_t t0 = dt_now_ms();
	char    pdir[4200], version[64];

	test_pid = getpid();
	write_config();
	atexit(cleanup);
	snprintf(pdir, sizeof(pdir), "%s/plugins", dir);
	CHECK(mkdir(pdir, 0755) == 0);
	install(1);
	daemon_pid = dt_daemon_spawn(cfg_path, daemon_log);
	ctl        = connect_client();

	/* the log: N_EVENTS "Ticked", evenly over the streams */
	for (int i = 0; i < N_COMMITS; i++) {
		sl_new_event ev[PER_COMMIT];
		char         stream[32];
		memset(ev, 0, sizeof(ev));
		for (int k = 0; k < PER_COMMIT; k++) {
			ev[k].type         = "Ticked";
			ev[k].content_json = "{\"n\":1}";
		}
		sl_commit_result res;
		int              rc;
		int64_t          end = dt_now_ms() + WAIT_MS;
		snprintf(stream, sizeof(stream), "tick-%02d", i % N_STREAMS);
		/* the first commit may come before the daemon serves */
		while ((rc = sl_client_commit(ctl, TENANT, stream,
		            SL_EXPECT_ANY, ev, PER_COMMIT, &res))
		    != SL_OK) {
			if (dt_now_ms() > end)
				FAIL("commit: %s %s", sl_errname(rc),
				    sl_client_last_error(ctl));
			dt_sleep_ms(20);
		}
	}
	/* ... and the projection caught up (every stream got the same) */
	CHECK(N_EVENTS % (N_STREAMS * PER_COMMIT) == 0);
	for (int64_t end = dt_now_ms() + WAIT_MS;;) {
		sl_read_models m;
		memset(&m, 0, sizeof(m));
		int  rc = sl_client_get_all(ctl, TENANT, PROJ, NULL, 0, &m);
		bool ok = rc == SL_OK && m.n_items == N_STREAMS;
		for (size_t i = 0; ok && i < m.n_items; i++)
			ok = json_count(m.items[i].state_json)
			    == N_EVENTS / N_STREAMS;
		sl_read_models_free(&m);
		if (ok)
			break;
		if (dt_now_ms() > end)
			FAIL("the projection did not catch up (%s)",
			    sl_errname(rc));
		dt_sleep_ms(20);
	}

	pthread_t thr[N_THREADS];
	for (uintptr_t i = 0; i < N_THREADS; i++)
		CHECK(pthread_create(&thr[i], NULL, query_thread, (void *) i)
		    == 0);

	/* 500 swaps: 2, 3, 1, 2, ... each a new version of the file */
	int64_t t_swaps = dt_now_ms();
	int     last    = 1;
	for (int i = 1; i <= N_SWAPS && !atomic_load(&failed); i++) {
		last = i % 3 + 1;
		install(last);
		dt_sleep_ms(4 + (int) (i % 5));
		if (i % 25 == 0)
			check_alive(0, "during the swaps");
	}
	int64_t swaps_ms = dt_now_ms() - t_swaps;

	/* the last build runs, every older version closed */
	long long loads = 0, open = 0;
	char      want[16];
	snprintf(want, sizeof(want), "%d.0.0", last);
	for (int64_t end = dt_now_ms() + WAIT_MS;;) {
		if (atomic_load(&failed))
			break;
		plugin_status(&loads, &open, version, sizeof(version));
		if (strcmp(version, want) == 0 && open == 1)
			break;
		if (dt_now_ms() > end)
			FAIL("after the swaps: version %s (want %s), %lld "
			     "versions open",
			    version, want, open);
		dt_sleep_ms(20);
	}
	atomic_store(&stop, true);
	for (int i = 0; i < N_THREADS; i++)
		pthread_join(thr[i], NULL);
	if (atomic_load(&failed)) {
		char when[1200];
		snprintf(when, sizeof(when), "during the swaps (%s)", failure);
		check_alive(2000, when);
	}
	check_alive(0, "during the swaps");
	if (atomic_load(&failed))
		FAIL("a request failed during the swaps: %s", failure);
	long total = 0;
	for (int op = 0; op < OP_N; op++) {
		fprintf(stderr, "%s: %ld answered, %ld refused\n",
		    op_names[op], atomic_load(&answered[op]),
		    atomic_load(&refused[op]));
		CHECK(atomic_load(&answered[op]) > 0);
		total += atomic_load(&answered[op]);
	}
	/* the swaps were reloads, not coalesced into a few */
	if (loads < N_SWAPS / 5)
		FAIL("only %lld loads for %d swaps", loads, N_SWAPS);

	sl_client_close(ctl);
	int wstatus;
	CHECK(kill(daemon_pid, SIGTERM) == 0);
	CHECK(dt_waitpid(daemon_pid, &wstatus, 0) == daemon_pid);
	daemon_pid = -1;
	if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0)
		FAIL("sluiced exited with status 0x%x after SIGTERM", wstatus);
	size_t len;
	char  *log = dt_slurp(daemon_log, &len);
	if (strstr(log, "still held") != NULL)
		FAIL("a plugin version was still held at shutdown");
	free(log);
	if (count_files(cache) != 0)
		FAIL(
		    "%d private copies left in %s", count_files(cache), cache);

	fprintf(stderr,
	    "ok: %d swaps in %lld ms, %lld loads, %ld requests answered "
	    "during them, %lld ms in all\n",
	    N_SWAPS, (long long) swaps_ms, loads, total,
	    (long long) (dt_now_ms() - t0));
	return 0;
}
