/*
 * Two projections whose output streams overlap: the second one's claim is
 * refused, it does not run and writes nothing, and `plugins` and `status`
 * say so by name, with why. sluiced runs as a process with the
 * overlap_results plugin ("cart" and "cart-lines", whose result streams
 * "$projections-cart-*" and "$projections-cart-lines-*" overlap):
 *  1. cart runs and writes its results; cart-lines has no read model and
 *     no stream in the log;
 *  2. plugins: the plugin is loaded, its error names cart-lines, cart and
 *     the streams; cart-lines' entry has "refused", cart's null; status:
 *     the same error on the plugin, "refused" on the projection, no
 *     emitting run of cart-lines;
 *  3. the same bytes installed again (the watcher's "same bytes" path,
 *     which used to clear the error): still shown;
 *  4. after a restart: still shown, and the log still holds nothing of
 *     cart-lines.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <sluice/client.h>

#include "daemon_testutil.h"
#include "json_testutil.h"

#define TENANT  "t1"
#define PLUGIN  "overlap_results"
#define WAIT_MS 20000

static char  dir[4096], cfg_path[4200], daemon_log[4200], url[4200];
static char  plugin[4300];
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
write_config(void)
{
	char text[20000], plugins[4200];
	dt_test_paths(dir, cfg_path, daemon_log, url);
	snprintf(plugins, sizeof(plugins), "%s/plugins", dir);
	snprintf(plugin, sizeof(plugin), "%s/" PLUGIN ".so", plugins);
	CHECK(mkdir(plugins, 0755) == 0);
	char   head[8000];
	size_t n
	    = dt_config_head(head, sizeof(head), dir, plugins, url, "64MiB");
	/* debug: the watcher's "same bytes" line shows it looked */
	char *lvl = strstr(head, "log_level: info\n");
	CHECK(lvl != NULL);
	*lvl = '\0';
	n    = (size_t) snprintf(text, sizeof(text), "%slog_level: debug\n%s",
	       head, lvl + strlen("log_level: info\n"));
	snprintf(text + n, sizeof(text) - n,
	    "hot_reload_quiet_ms: 1\n"
	    "tenants:\n"
	    "  - id: " TENANT "\n"
	    "    read_models:\n"
	    "      map_size: 32MiB\n");
	tu_write_file(cfg_path, text);
}

static sl_client *
start_daemon(void)
{
	sl_client *c   = NULL;
	int64_t    end = dt_now_ms() + WAIT_MS;
	daemon_pid     = dt_daemon_spawn(cfg_path, daemon_log);
	while (sl_client_open(url, 10000, &c) != SL_OK) {
		if (dt_now_ms() > end)
			FAIL("cannot connect to %s: %s", url,
			    sl_client_open_error());
		dt_sleep_ms(20);
	}
	return c;
}

static void
stop_daemon(sl_client *c)
{
	int st;
	sl_client_close(c);
	CHECK(kill(daemon_pid, SIGTERM) == 0);
	if (!dt_wait_exit(daemon_pid, WAIT_MS, &st))
		FAIL("sluiced did not stop on SIGTERM");
	daemon_pid = -1;
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* A JSON reply of the client library, parsed. */
static json_t *
reply_json(int rc, char *text, const char *what)
{
	if (rc != SL_OK)
		FAIL("%s: %s", what, sl_errname(rc));
	json_t *j = json_loads(text, 0, NULL);
	sl_client_free(text);
	CHECK(j != NULL);
	return j;
}

/* The entry of array key in o whose field equals val, or NULL. */
static json_t *
entry(json_t *o, const char *key, const char *field, const char *val)
{
	json_t *a = json_object_get(o, key);
	for (size_t i = 0; i < json_array_size(a); i++)
		if (strcmp(jstr(json_array_get(a, i), field), val) == 0)
			return json_array_get(a, i);
	return NULL;
}

/* The refusal in text names both projections and the streams. */
static void
check_reason(const char *text, const char *what)
{
	if (strstr(text, "projection 'cart-lines'") == NULL
	    || strstr(text, "does not run") == NULL
	    || strstr(text, "'$projections-cart-lines-*'") == NULL
	    || strstr(text, "'$projections-cart-*' of projection 'cart'")
	        == NULL)
		FAIL("%s: the refusal does not say who and why: '%s'", what,
		    text);
}

/* plugins and status name the refused projection and why. */
static void
check_refusal_shown(sl_client *c, const char *when)
{
	char   *text = NULL;
	int     rc   = sl_client_plugins(c, &text);
	json_t *pl   = reply_json(rc, text, "plugins");
	json_t *p    = entry(pl, "plugins", "name", PLUGIN);
	if (p == NULL || !json_is_true(json_object_get(p, "loaded")))
		FAIL("%s: plugins: %s", when, dump(pl));
	check_reason(jstr(p, "error"), when);
	json_t *cart  = entry(p, "projections", "name", "cart");
	json_t *lines = entry(p, "projections", "name", "cart-lines");
	CHECK(cart != NULL && lines != NULL);
	if (!json_is_null(json_object_get(cart, "refused")))
		FAIL("%s: cart refused: %s", when, dump(cart));
	check_reason(jstr(lines, "refused"), when);
	json_decref(pl);

	rc         = sl_client_status(c, &text);
	json_t *st = reply_json(rc, text, "status");
	p          = entry(st, "plugins", "name", PLUGIN);
	CHECK(p != NULL && json_is_true(json_object_get(p, "loaded")));
	check_reason(jstr(p, "error"), when);
	cart  = entry(st, "projections", "name", "cart");
	lines = entry(st, "projections", "name", "cart-lines");
	CHECK(cart != NULL && lines != NULL);
	CHECK(json_is_null(json_object_get(cart, "refused")));
	check_reason(jstr(lines, "refused"), when);
	/* cart runs, cart-lines does not */
	CHECK(entry(st, "emitting_projections", "name", "cart") != NULL);
	if (entry(st, "emitting_projections", "name", "cart-lines") != NULL)
		FAIL("%s: cart-lines runs: %s", when, dump(st));
	json_decref(st);
}

/* Wait until cart's result stream of c-1 holds n == want. */
static void
wait_cart(sl_client *c, long long want)
{
	int64_t end = dt_now_ms() + WAIT_MS;
	for (;;) {
		char *state = NULL;
		bool  found = false;
		int   rc    = sl_client_get_one(
		         c, TENANT, "cart", "c-1", &state, &found);
		json_t *j = rc == SL_OK ? json_loads(state, 0, NULL) : NULL;
		sl_client_free(state);
		long long n = j != NULL ? jint(j, "n") : -1;
		json_decref(j);
		if (found && n == want)
			return;
		if (dt_now_ms() > end)
			FAIL("cart's c-1 is at %lld, not %lld", n, want);
		dt_sleep_ms(20);
	}
}

/* The log holds nothing of cart-lines; count cart's result events. */
static size_t
check_log(sl_client *c)
{
	uint64_t from    = 0;
	size_t   results = 0, n = 0;
	for (;;) {
		sl_read_result r;
		CHECK_EQ(sl_client_read(c, from, 0, &r), SL_OK);
		for (size_t i = 0; i < r.n_events; i++) {
			const char *s = r.events[i].stream;
			if (strncmp(s, "$projections-cart-lines-", 24) == 0)
				FAIL("cart-lines wrote: %s", r.events[i].json);
			if (strncmp(s, "$projections-cart-", 18) == 0)
				results++;
			n++;
		}
		from     = r.next;
		bool end = r.n_events == 0 || r.next >= r.head;
		sl_read_result_free(&r);
		if (end)
			break;
	}
	CHECK(n > 3);
	return results;
}

int
main(void)
{
	test_pid = getpid();
	atexit(cleanup);
	write_config();
	dt_install(
	    SL_TEST_PLUGIN_DIR "/" PLUGIN "/" PLUGIN ".so", NULL, plugin);

	sl_client *c = start_daemon();
	/* 1. cart runs, cart-lines writes nothing */
	sl_new_event     ev = { .type = "Added", .content_json = "{}" };
	sl_commit_result res;
	CHECK_EQ(
	    sl_client_commit(c, TENANT, "c-1", SL_EXPECT_ANY, &ev, 1, &res),
	    SL_OK);
	CHECK_EQ(
	    sl_client_commit(c, TENANT, "c-1", SL_EXPECT_ANY, &ev, 1, &res),
	    SL_OK);
	CHECK_EQ(
	    sl_client_commit(c, TENANT, "c-2", SL_EXPECT_ANY, &ev, 1, &res),
	    SL_OK);
	wait_cart(c, 2);
	char *state = NULL;
	bool  found = true;
	CHECK_EQ(
	    sl_client_get_one(c, TENANT, "cart-lines", "c-1", &state, &found),
	    SL_OK);
	CHECK(!found);
	sl_client_free(state);
	size_t results = check_log(c);
	CHECK(results > 0);

	/* 2. plugins and status say it */
	check_refusal_shown(c, "at start");

	/* 3. the same bytes again: the watcher looks, nothing reloads */
	size_t log_len;
	free(dt_slurp(daemon_log, &log_len));
	dt_install(
	    SL_TEST_PLUGIN_DIR "/" PLUGIN "/" PLUGIN ".so", NULL, plugin);
	int64_t end = dt_now_ms() + WAIT_MS;
	for (;;) {
		size_t len;
		char  *text = dt_slurp(daemon_log, &len);
		bool   seen = len > log_len
		    && strstr(
		           text + log_len, "same bytes as the running version")
		        != NULL;
		free(text);
		if (seen)
			break;
		if (dt_now_ms() > end)
			FAIL("the watcher did not look at the same bytes");
		dt_sleep_ms(20);
	}
	check_refusal_shown(c, "after the same bytes");

	/* 4. a restart: refused again, still nothing written by it */
	stop_daemon(c);
	c = start_daemon();
	check_refusal_shown(c, "after a restart");
	CHECK_EQ(
	    sl_client_commit(c, TENANT, "c-1", SL_EXPECT_ANY, &ev, 1, &res),
	    SL_OK);
	wait_cart(c, 3);
	CHECK(check_log(c) > results);
	stop_daemon(c);
	printf("claim_refused_test: ok\n");
	return 0;
}
