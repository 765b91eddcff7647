/*
 * A bi-state projection's shared state served by the real daemon's API
 * (issue 16): get_one with key "$shared" answers the shared state of a
 * read-model projection (a record beside its keys' states) and of an
 * emitting one (in its checkpoint), the shared initial state with found
 * false before any is stored; get_all lists the keys only. Both are .js
 * files in sluiced's plugin_dir, driven over the client library.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <sluice/client.h>

#include "daemon_testutil.h"

#define TENANT  "acme"
#define WAIT_MS 30000

static char       dir[4096], cfg_path[4200], daemon_log[4200], url[4200];
static pid_t      daemon_pid = -1;
static sl_client *cl;

#define FAIL(...) DT_FAIL_LOG(daemon_log, __VA_ARGS__)

static void
cleanup(void)
{
	if (cl != NULL)
		sl_client_close(cl);
	cl = NULL;
	dt_kill_and_reap(&daemon_pid);
}

/* read-model bi-state projection: per account a count, shared totals */
static const char bi_rm[]
    = "fromCategory('account').foreachStream().when({\n"
      "  $initShared: function () { return { total: 0, accounts: 0 }; },\n"
      "  $init: function () { return { n: 0 }; },\n"
      "  AccountOpened: function (s, e) { s[1].accounts++; },\n"
      "  Deposited: function (s, e) {\n"
      "    s[0].n++; s[1].total += e.data.amount; }\n"
      "});\n";
/* the same, emitting (outputState): its shared state is in the log env */
static const char bi_emit[]
    = "fromCategory('account').foreachStream().when({\n"
      "  $initShared: function () { return { total: 0, accounts: 0 }; },\n"
      "  $init: function () { return { n: 0 }; },\n"
      "  AccountOpened: function (s, e) { s[1].accounts++; },\n"
      "  Deposited: function (s, e) {\n"
      "    s[0].n++; s[1].total += e.data.amount; }\n"
      "}).outputState();\n";
/* no shared state: "$shared" is an ordinary key */
static const char plain[] = "fromCategory('account').foreachStream().when({\n"
                            "  $init: function () { return { n: 0 }; },\n"
                            "  Deposited: function (s, e) { s.n++; }\n"
                            "});\n";

static void
commit(const char *stream, const char *type, const char *content)
{
	sl_new_event     ev = { .type = type, .content_json = content };
	sl_commit_result res;
	int              rc = sl_client_commit(
	                 cl, TENANT, stream, SL_EXPECT_ANY, &ev, 1, &res);
	if (rc != SL_OK)
		FAIL("commit to %s: %s", stream, sl_strerror(rc));
}

/* get_one's answer as JSON (caller decrefs); *found. */
static json_t *
get_one(const char *proj, const char *key, bool *found)
{
	char        *st = NULL;
	json_error_t je;
	int          rc = sl_client_get_one(cl, TENANT, proj, key, &st, found);
	if (rc != SL_OK)
		FAIL("get_one %s %s: %s", proj, key, sl_strerror(rc));
	json_t *j = json_loads(st, 0, &je);
	if (j == NULL)
		FAIL("get_one %s %s: not JSON: %s", proj, key, st);
	sl_client_free(st);
	return j;
}

static long long
jint(const json_t *o, const char *k)
{
	return (long long) json_integer_value(json_object_get(o, k));
}

/* Wait until proj's shared state is {total, accounts}. */
static void
wait_shared(const char *proj, long long total, long long accounts)
{
	int64_t end = dt_now_ms() + WAIT_MS;
	for (;;) {
		bool    found;
		json_t *j    = get_one(proj, "$shared", &found);
		bool    done = found && jint(j, "total") == total
		    && jint(j, "accounts") == accounts
		    && json_object_size(j) == 2;
		char *t = json_dumps(j, JSON_COMPACT);
		json_decref(j);
		if (done) {
			free(t);
			return;
		}
		if (dt_now_ms() > end)
			FAIL("%s: $shared is %s (found %d), wanted total %lld "
			     "accounts %lld",
			    proj, t, found, total, accounts);
		free(t);
		dt_sleep_ms(20);
	}
}

static void
check_keys(const char *proj)
{
	sl_read_models m;
	int            rc = sl_client_get_all(cl, TENANT, proj, NULL, 0, &m);
	if (rc != SL_OK)
		FAIL("get_all %s: %s", proj, sl_strerror(rc));
	/* the keys only: the shared state is not a read model's key */
	if (m.n_items != 2 || strcmp(m.items[0].key, "account-1") != 0
	    || strcmp(m.items[1].key, "account-2") != 0)
		FAIL("get_all %s: %zu items", proj, m.n_items);
	CHECK(strstr(m.items[0].state_json, "\"n\":") != NULL);
	sl_read_models_free(&m);
}

int
main(void)
{
	char plugins[4300], text[8192], path[4400];
	dt_test_paths(dir, cfg_path, daemon_log, url);
	snprintf(plugins, sizeof(plugins), "%s/plugins", dir);
	CHECK(mkdir(plugins, 0755) == 0);
	snprintf(path, sizeof(path), "%s/bi_rm.js", plugins);
	tu_write_file(path, bi_rm);
	snprintf(path, sizeof(path), "%s/bi_emit.js", plugins);
	tu_write_file(path, bi_emit);
	snprintf(path, sizeof(path), "%s/plain.js", plugins);
	tu_write_file(path, plain);
	size_t head
	    = dt_config_head(text, sizeof(text), dir, plugins, url, "64MiB");
	snprintf(text + head, sizeof(text) - head,
	    "tenants:\n"
	    "  - id: " TENANT "\n"
	    "    read_models:\n"
	    "      map_size: 32MiB\n");
	tu_write_file(cfg_path, text);
	atexit(cleanup);
	setenv("SLUICE_JS_HOST", SL_BUILD_DIR "/examples/js_host.so", 1);
	daemon_pid = dt_daemon_spawn(cfg_path, daemon_log);
	if (!dt_wait_answer(url, &cl, WAIT_MS))
		FAIL("sluiced does not answer");

	/* before any event: the shared initial state, not found */
	const char *const projs[] = { "bi_rm", "bi_emit" };
	for (size_t i = 0; i < 2; i++) {
		bool    found = true;
		json_t *j     = get_one(projs[i], "$shared", &found);
		CHECK(!found);
		CHECK_EQ(jint(j, "total"), 0);
		CHECK(json_object_get(j, "accounts") != NULL);
		json_decref(j);
	}

	commit("account-1", "AccountOpened", "{}");
	commit("account-2", "AccountOpened", "{}");
	commit("account-1", "Deposited", "{\"amount\":10}");
	commit("account-2", "Deposited", "{\"amount\":5}");
	commit("account-1", "Deposited", "{\"amount\":7}");
	for (size_t i = 0; i < 2; i++) {
		wait_shared(projs[i], 22, 2);
		bool    found;
		json_t *j = get_one(projs[i], "account-1", &found);
		CHECK(found);
		CHECK_EQ(jint(j, "n"), 2);
		json_decref(j);
		check_keys(projs[i]);
	}
	/* a projection without a shared state: "$shared" is a key like
	 * any other (none here: its initial state) */
	bool    found = true;
	json_t *j     = get_one("plain", "$shared", &found);
	CHECK(!found);
	CHECK_EQ(jint(j, "n"), 0);
	CHECK(json_object_get(j, "total") == NULL);
	json_decref(j);

	/* after a restart: the stored shared states are served again */
	sl_client_close(cl);
	cl = NULL;
	dt_kill_and_reap(&daemon_pid);
	daemon_pid = dt_daemon_spawn(cfg_path, daemon_log);
	if (!dt_wait_answer(url, &cl, WAIT_MS))
		FAIL("sluiced does not answer after the restart");
	commit("account-2", "Deposited", "{\"amount\":1}");
	for (size_t i = 0; i < 2; i++)
		wait_shared(projs[i], 23, 2);
	printf("shared_state_api_test: ok\n");
	return 0;
}
