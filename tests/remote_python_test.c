/*
 * The Python remote client (client/python/sluice_remote.py, written from
 * docs/remote.md alone) end to end: sluiced with the Account Details and
 * account filters plugins, and client/python/remote_account_details.py
 * run by Debian's /usr/bin/python3 as a client process registering the
 * Account Details projection and the "customer events" filter under ids
 * of its own.
 *  - its read models equal the plugin's on the same log (get_all through
 *    the client library), its filter stream the plugin filter's;
 *  - its failures (an event without 'amount', one without 'customer_id')
 *    are the plugin's: same units failing, same reasons, same retry flag;
 *  - SIGKILLed mid-stream and started again (a takeover of the same
 *    definition), it ends with exactly the plugin's read models;
 *  - sluiced SIGKILLed and restarted: it registers again by itself;
 *  - SIGTERM stops it with status 0.
 * Not skipped when Python is missing: scripts/setup.sh installs python3
 * and python3-msgpack.
 */
#include <inttypes.h>

#include "daemon_testutil.h"
#include "remote_testutil.h"

#define TENANT   "demo"
#define PY_ID    "5b0de2a4-7c1e-4f59-9a3d-2e8c4b6f1a07" /* the example's */
#define PY_NAME  "python_account_details"
#define PYF_ID   "0f6e2b9c-3a4d-4e8f-b1c2-d3e4f5a6b7c8"
#define PYF_NAME "python customer events"
#define SCRIPT   SL_SOURCE_DIR "/client/python/remote_account_details.py"

static char       dir[4096], cfg_path[4300], log_path[4300], client_log[4300];
static char       api_url[4400];
static pid_t      daemon_pid = -1, client_pid = -1;
static sl_client *cl;

static void
write_config(void)
{
	char text[8192];
	snprintf(text, sizeof(text),
	    "data_dir: data\n"
	    "plugin_dir: %s\n"
	    "hot_reload: false\n"
	    "log_level: info\n"
	    "endpoints:\n"
	    "  api: %s\n"
	    "event_store:\n"
	    "  map_size: 256MiB\n"
	    "  sync: false\n"
	    "tenants:\n"
	    "  - id: " TENANT "\n"
	    "    read_models:\n"
	    "      map_size: 256MiB\n"
	    "processing:\n"
	    "  batch: 200\n"
	    "remote:\n"
	    "  keepalive_ms: 200\n"
	    "  timeout_ms: 1000\n",
	    SL_PLUGIN_DIR, api_url);
	tu_write_file(cfg_path, text);
}

/* Python, msgpack and libnng are there (setup.sh installs them): a
 * missing one fails the test, saying what to install. */
static void
check_python(void)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
	    "%s -c 'import ctypes, msgpack; ctypes.CDLL(\"libnng.so.1\")'",
	    SL_PYTHON3);
	int st = system(cmd);
	if (st != 0) {
		fprintf(stderr,
		    "remote_python_test: %s cannot import msgpack or load "
		    "libnng.so.1: run scripts/setup.sh (Debian packages "
		    "python3, python3-msgpack, libnng1)\n",
		    SL_PYTHON3);
		exit(1);
	}
}

static void
start_daemon(void)
{
	daemon_pid  = dt_daemon_spawn(cfg_path, log_path);
	int64_t end = dt_now_ms() + 15000;
	for (;;) {
		sl_client *c;
		if (sl_client_open(api_url, 2000, &c) == SL_OK) {
			char *st = NULL;
			int   rc = sl_client_status(c, &st);
			sl_client_free(st);
			sl_client_close(c);
			if (rc == SL_OK)
				break;
		}
		if (dt_now_ms() > end)
			DT_FAIL_LOG(log_path, "sluiced did not come up");
		dt_sleep_ms(20);
	}
	/* A fresh connection after a restart: NNG 1.5.2's dialer may never
	 * redial a daemon that died mid-handshake (tests/feed_redial_test.c).
	 */
	sl_client_close(cl);
	CHECK_EQ(sl_client_open(api_url, 15000, &cl), SL_OK);
}

static void
start_client(void)
{
	pid_t parent = getpid();
	int   fd     = open(client_log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	CHECK(fd >= 0);
	fflush(NULL);
	client_pid = fork();
	CHECK(client_pid >= 0);
	if (client_pid == 0) {
		dt_child_setup(parent); /* the death signal survives exec */
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		execl(SL_PYTHON3, "python3", "-B", SCRIPT, "--url", api_url,
		    "--id", PY_ID, "--name", PY_NAME, "--filter-id", PYF_ID,
		    "--filter-name", PYF_NAME, (char *) NULL);
		_exit(127);
	}
	close(fd);
}

static void
wait_client_connected(void)
{
	if (!ru_wait_connected(cl, PY_ID, true, 15000)
	    || !ru_wait_connected(cl, PYF_ID, true, 15000)) {
		dt_dump_file(client_log, "python client log");
		DT_FAIL_LOG(log_path, "the Python client did not connect");
	}
}

/* The daemon sees the client gone (its connection closed with it). */
static void
wait_client_disconnected(void)
{
	if (!ru_wait_connected(cl, PY_ID, false, 15000)
	    || !ru_wait_connected(cl, PYF_ID, false, 15000)) {
		dt_dump_file(client_log, "python client log");
		DT_FAIL_LOG(log_path, "the daemon still sees the client");
	}
}

/* The processor of name in status (borrowed from st), or NULL. */
static json_t *
proc_named(json_t *st, const char *name)
{
	json_t *p;
	size_t  i;
	json_array_foreach(json_object_get(st, "processors"), i, p)
	{
		const char *n = json_string_value(json_object_get(p, "name"));
		if (n != NULL && strcmp(n, name) == 0)
			return p;
	}
	return NULL;
}

/* The failing units of a processor as one JSON text: partition, position,
 * retry and reason of each (attempts and times differ between
 * processors). */
static char *
failing_text(json_t *p)
{
	json_t *out = json_array(), *f;
	size_t  i;
	json_array_foreach(json_object_get(p, "failing"), i, f)
	{
		json_array_append_new(out,
		    json_pack("{s:O,s:O,s:O,s:O}", "partition",
		        json_object_get(f, "partition"), "position",
		        json_object_get(f, "position"), "retry",
		        json_object_get(f, "retry"), "reason",
		        json_object_get(f, "reason")));
	}
	char *t = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(out);
	return t;
}

/* Wait until the named processors are at the head (handled and served),
 * each with n_failing failing units, the same ones in each pair
 * (names[0] vs names[1], names[2] vs names[3]). */
static void
wait_caught_up(const char *const *names, size_t n, size_t n_failing, int ms)
{
	int64_t end = dt_now_ms() + ms;
	for (;;) {
		json_t *st   = ru_status(cl);
		int64_t head = json_integer_value(json_object_get(st, "head"));
		size_t  ok   = 0;
		for (size_t i = 0; i < n; i++) {
			json_t *p = proc_named(st, names[i]);
			ok += p != NULL
			    && json_integer_value(
			           json_object_get(p, "position"))
			        == head
			    && json_integer_value(
			           json_object_get(p, "served_position"))
			        == head
			    && (size_t) json_integer_value(
			           json_object_get(p, "failing_count"))
			        == n_failing;
		}
		for (size_t i = 0; ok == n && i + 1 < n; i += 2) {
			char *a = failing_text(proc_named(st, names[i]));
			char *b = failing_text(proc_named(st, names[i + 1]));
			if (strcmp(a, b) != 0)
				ok = 0;
			free(a);
			free(b);
		}
		if (ok == n) {
			json_decref(st);
			return;
		}
		if (dt_now_ms() > end) {
			char *t = json_dumps(st, JSON_INDENT(1));
			fprintf(stderr, "not caught up:\n%s\n", t);
			free(t);
			dt_dump_file(client_log, "python client log");
			DT_FAIL_LOG(log_path, "processors did not catch up");
		}
		json_decref(st);
		dt_sleep_ms(20);
	}
}

/* Every read model of a projection as one JSON array text. */
static char *
all_models(const char *projection, size_t *count)
{
	json_t *all   = json_array();
	char   *after = NULL;
	for (;;) {
		sl_read_models m;
		CHECK_EQ(
		    sl_client_get_all(cl, TENANT, projection, after, 1000, &m),
		    SL_OK);
		for (size_t i = 0; i < m.n_items; i++) {
			json_error_t je;
			json_t *s = json_loads(m.items[i].state_json, 0, &je);
			CHECK(s != NULL);
			json_array_append_new(all,
			    json_pack("{s:s,s:o}", "key", m.items[i].key,
			        "state", s));
		}
		free(after);
		after     = m.n_items > 0 ? strdup(m.items[m.n_items - 1].key)
		                          : NULL;
		bool more = m.more;
		sl_read_models_free(&m);
		if (!more)
			break;
	}
	free(after);
	*count  = json_array_size(all);
	char *t = json_dumps(all, JSON_COMPACT);
	json_decref(all);
	return t;
}

/* A filter's whole stream as [position, partition] pairs. */
static char *
stream_text(const char *filter, size_t *count)
{
	json_t  *arr  = json_array();
	uint64_t from = 0;
	for (;;) {
		sl_filter_page pg;
		CHECK_EQ(sl_client_read_filter(
		             cl, TENANT, filter, NULL, from, 1000, &pg),
		    SL_OK);
		for (size_t i = 0; i < pg.n_events; i++)
			json_array_append_new(arr,
			    json_pack("[I,s]",
			        (json_int_t) pg.events[i].event.position,
			        pg.events[i].partition ? pg.events[i].partition
			                               : "(none)"));
		from      = pg.next;
		bool more = pg.more;
		sl_filter_page_free(&pg);
		if (!more)
			break;
	}
	*count  = json_array_size(arr);
	char *t = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	return t;
}

/* The Python client's read models and stream equal the plugins'. The
 * models are compared as the daemon serves them, key order included. */
static void
check_same(size_t want_models)
{
	size_t na, nb;
	char  *a = all_models("account_details", &na);
	char  *b = all_models(PY_NAME, &nb);
	if (strcmp(a, b) != 0 || na < want_models) {
		fprintf(stderr,
		    "read models differ (%zu plugin, %zu python, want %zu)\n"
		    "plugin: %.2000s\npython: %.2000s\n",
		    na, nb, want_models, a, b);
		exit(1);
	}
	free(a);
	free(b);
	a = stream_text("customer events", &na);
	b = stream_text(PYF_NAME, &nb);
	if (strcmp(a, b) != 0 || na < want_models) {
		fprintf(stderr,
		    "filter streams differ (%zu plugin, %zu python)\n"
		    "plugin: %.2000s\npython: %.2000s\n",
		    na, nb, a, b);
		exit(1);
	}
	free(a);
	free(b);
}

/* ---- the workload ---- */

static int acc_next;

/* The committing thread's own connection (an sl_client is not
 * thread-safe). */
static _Thread_local sl_client *wcl;

static void
commit1(const char *stream, const char *type, const char *content)
{
	if (wcl == NULL)
		CHECK_EQ(sl_client_open(api_url, 15000, &wcl), SL_OK);
	sl_new_event     e = { .type = type, .content_json = content };
	sl_commit_result r;
	int              rc;
	for (int tries = 0;; tries++) {
		rc = sl_client_commit(
		    wcl, TENANT, stream, SL_EXPECT_ANY, &e, 1, &r);
		if (rc != SL_ENET && rc != SL_ETIMEDOUT && rc != SL_ECLOSED)
			break;
		CHECK(tries < 200);
		dt_sleep_ms(50);
	}
	CHECK_EQ(rc, SL_OK);
}

/* One account: opened, its customer registered, debits, a withdrawal, and
 * an event neither the projection nor the filter takes. Strings with
 * non-ASCII text and nesting go through Python and back. */
static void
one_account(int debits)
{
	char acc[32], cust[32], content[512];
	int  i = acc_next++;
	snprintf(acc, sizeof(acc), "acc-%05d", i);
	snprintf(cust, sizeof(cust), "cust-%03d", i % 40);
	snprintf(content, sizeof(content),
	    "{\"account_id\":\"%s\",\"customer_id\":\"%s\",\"name\":"
	    "\"Compte \\u00e9pargne %d\"}",
	    acc, cust, i);
	commit1(acc, "DebitAccountOpened", content);
	snprintf(content, sizeof(content),
	    "{\"customer_id\":\"%s\",\"name\":\"Customer %d\","
	    "\"account\":{\"id\":\"%s\",\"extra\":[1,2.5,null,true]}}",
	    cust, i % 40, acc);
	commit1(cust, "CustomerRegistered", content);
	for (int d = 0; d < debits; d++) {
		/* one amount past 32 bits: msgpack's uint 32/64 encodings */
		snprintf(content, sizeof(content),
		    "{\"customer_id\":\"%s\",\"amount\":%lld}", cust,
		    d == 1 ? 4000000000LL + i : 100LL + d);
		commit1(acc, "DebitPerformed", content);
	}
	snprintf(content, sizeof(content),
	    "{\"account_id\":\"%s\",\"customer_id\":\"%s\",\"amount\":%d}",
	    acc, cust, i % 7);
	commit1(acc, "WithdrawalPerformed", content);
	commit1(acc, "AccountNoteAdded", "{\"note\":\"not selected\"}");
}

/* Events that fail in both the plugins and the Python client: a
 * withdrawal without an amount (the projection's key acc-poison waits,
 * retried), then one more debit behind it; a debit without a customer
 * id (the filter's source stream acc-nocust waits, not retried). */
static void
failing_events(void)
{
	commit1("acc-poison", "DebitAccountOpened",
	    "{\"account_id\":\"acc-poison\",\"customer_id\":\"cust-x\"}");
	commit1("acc-poison", "WithdrawalPerformed",
	    "{\"account_id\":\"acc-poison\",\"customer_id\":\"cust-x\"}");
	commit1("acc-poison", "DebitPerformed",
	    "{\"customer_id\":\"cust-x\",\"amount\":5}");
	commit1("acc-nocust", "DebitPerformed", "{\"amount\":7}");
}

static void *
writer_main(void *arg)
{
	int n = *(int *) arg;
	for (int i = 0; i < n; i++)
		one_account(3);
	sl_client_close(wcl);
	wcl = NULL;
	return NULL;
}

static const char *const all4[]
    = { "account_details", PY_NAME, "customer events", PYF_NAME };

/* ---- phases ---- */

static void
test_same_models(void)
{
	/* half the log before the client registers (catch-up), half after
	 * (live) */
	for (int i = 0; i < 60; i++)
		one_account(2);
	start_client();
	wait_client_connected();
	for (int i = 0; i < 60; i++)
		one_account(2);
	failing_events();
	wait_caught_up(all4, 4, 1, 60000);
	check_same(120);

	json_t *st = ru_status(cl);
	json_t *p  = proc_named(st, PY_NAME);
	CHECK(json_is_true(json_object_get(p, "remote")));
	char *f = failing_text(p);
	CHECK(strstr(f, "\"partition\":\"acc-poison\"") != NULL);
	CHECK(strstr(f, "content has no 'amount'") != NULL);
	CHECK(strstr(f, "\"retry\":true") != NULL);
	free(f);
	f = failing_text(proc_named(st, PYF_NAME));
	CHECK(strstr(f, "\"partition\":\"acc-nocust\"") != NULL);
	CHECK(strstr(f, "\"retry\":false") != NULL);
	free(f);
	json_t *r = ru_remote(st, PY_ID);
	CHECK(json_is_true(json_object_get(r, "connected")));
	CHECK_EQ(json_integer_value(json_object_get(r, "registrations")), 1);
	CHECK_EQ(json_integer_value(json_object_get(r, "failed_calls")), 0);
	json_decref(st);

	/* the failing event was sent again with its retry state, and the
	 * client answered it again */
	int64_t end = dt_now_ms() + 10000;
	for (;;) {
		st         = ru_status(cl);
		json_t *fl = json_array_get(
		    json_object_get(proc_named(st, PY_NAME), "failing"), 0);
		int64_t att
		    = json_integer_value(json_object_get(fl, "attempts"));
		json_decref(st);
		if (att >= 2)
			break;
		if (dt_now_ms() > end)
			DT_FAIL_LOG(
			    log_path, "the failing event is not retried");
		dt_sleep_ms(50);
	}
}

/* The client is SIGKILLed twice while a writer commits; started again, it
 * takes its registrations over (same definition) and goes on. */
static void
test_client_killed(void)
{
	int       n = 150;
	pthread_t th;
	CHECK(pthread_create(&th, NULL, writer_main, &n) == 0);
	for (int k = 0; k < 2; k++) {
		dt_sleep_ms(400 + 200 * k);
		dt_kill_and_reap(&client_pid);
		wait_client_disconnected();
		dt_sleep_ms(100);
		start_client();
		wait_client_connected();
	}
	pthread_join(th, NULL);
	wait_caught_up(all4, 4, 1, 60000);
	check_same(270);
	json_t *st = ru_status(cl);
	CHECK_EQ(json_integer_value(
	             json_object_get(ru_remote(st, PY_ID), "registrations")),
	    3); /* the first and two takeovers */
	json_decref(st);
}

/* sluiced is SIGKILLed and restarted under the running client, which
 * registers again by itself. */
static void
test_daemon_restart(void)
{
	dt_kill_and_reap(&daemon_pid);
	sl_client_close(wcl);
	wcl = NULL;
	start_daemon();
	for (int i = 0; i < 30; i++)
		one_account(1);
	wait_client_connected();
	wait_caught_up(all4, 4, 1, 60000);
	check_same(300);
	json_t *st = ru_status(cl);
	CHECK_EQ(json_integer_value(
	             json_object_get(ru_remote(st, PY_ID), "registrations")),
	    1); /* a new daemon: its first registration */
	json_decref(st);
}

/* SIGTERM: the client stops at once, with status 0, and the daemon shows
 * it disconnected. */
static void
test_client_stops(void)
{
	kill(client_pid, SIGTERM);
	int st;
	if (!dt_wait_exit(client_pid, 5000, &st)) {
		dt_kill_and_reap(&client_pid);
		DT_FAIL_LOG(log_path, "the Python client ignored SIGTERM");
	}
	client_pid = -1;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		dt_dump_file(client_log, "python client log");
		fprintf(stderr, "the Python client exited with %d\n", st);
		exit(1);
	}
	wait_client_disconnected();
}

int
main(void)
{
	snprintf(dir, sizeof(dir), "%s", tu_tmpdir());
	snprintf(cfg_path, sizeof(cfg_path), "%s/resources.yaml", dir);
	snprintf(log_path, sizeof(log_path), "%s/sluiced.log", dir);
	snprintf(client_log, sizeof(client_log), "%s/client.log", dir);
	snprintf(api_url, sizeof(api_url), "ipc://%s/api.ipc", dir);
	check_python();
	write_config();
	start_daemon();

	test_same_models();
	test_client_killed();
	test_daemon_restart();
	test_client_stops();

	sl_client_close(wcl);
	sl_client_close(cl);
	kill(daemon_pid, SIGTERM);
	int st;
	if (!dt_wait_exit(daemon_pid, 15000, &st))
		DT_FAIL_LOG(log_path, "sluiced did not stop on SIGTERM");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	printf("remote_python_test: ok (%d accounts)\n", acc_next);
	return 0;
}
