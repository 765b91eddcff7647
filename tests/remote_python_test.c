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
 * Run with argument "1", the client speaks remote protocol 1 (one event
 * per call) instead of the default 2.
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

static ru_paths    P;                /* its files and the daemon's URL */
static const char *protocol   = "2"; /* the client's remote protocol */
static pid_t       daemon_pid = -1, client_pid = -1;
static sl_client  *cl;

static void
write_config(void)
{
	ru_write_config(&P, TENANT, 1000);
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
	daemon_pid = ru_daemon_start(&P);
	/* A fresh connection after a restart: NNG 1.5.2's dialer may never
	 * redial a daemon that died mid-handshake (tests/feed_redial_test.c).
	 */
	sl_client_close(cl);
	CHECK_EQ(sl_client_open(P.api_url, 15000, &cl), SL_OK);
}

static void
start_client(void)
{
	char *const argv[] = { "python3", "-B", SCRIPT, "--url", P.api_url,
		"--id", PY_ID, "--name", PY_NAME, "--filter-id", PYF_ID,
		"--filter-name", PYF_NAME, "--protocol", (char *) protocol,
		NULL };
	client_pid         = dt_spawn_logged(P.client_log, SL_PYTHON3, argv);
}

static void
wait_client_connected(void)
{
	if (!ru_wait_connected(cl, PY_ID, true, 15000)
	    || !ru_wait_connected(cl, PYF_ID, true, 15000)) {
		dt_dump_file(P.client_log, "python client log");
		DT_FAIL_LOG(P.log_path, "the Python client did not connect");
	}
}

/* The daemon sees the client gone (its connection closed with it). */
static void
wait_client_disconnected(void)
{
	if (!ru_wait_connected(cl, PY_ID, false, 15000)
	    || !ru_wait_connected(cl, PYF_ID, false, 15000)) {
		dt_dump_file(P.client_log, "python client log");
		DT_FAIL_LOG(P.log_path, "the daemon still sees the client");
	}
}

/* Wait until the named processors are at the head (handled and served),
 * each with n_failing failing units, the same ones in each pair
 * (names[0] vs names[1], names[2] vs names[3]). */
static void
wait_caught_up(const char *const *names, size_t n, size_t n_failing, int ms)
{
	ru_wait_caught_up(
	    cl, names, n, n_failing, true, ms, &P, "python client log");
}

/* The Python client's read models and stream equal the plugins'. The
 * models are compared as the daemon serves them, key order included. */
static void
check_same(size_t want_models)
{
	size_t na, nb;
	char  *a
	    = ru_all_models(cl, TENANT, "account_details", &na, JSON_COMPACT);
	char *b = ru_all_models(cl, TENANT, PY_NAME, &nb, JSON_COMPACT);
	ru_check_same_text("read models", "python", a, na, b, nb, want_models);
	a = ru_filter_text(cl, TENANT, "customer events", NULL, true, &na);
	b = ru_filter_text(cl, TENANT, PYF_NAME, NULL, true, &nb);
	ru_check_same_text(
	    "filter streams", "python", a, na, b, nb, want_models);
}

/* ---- the workload ---- */

static int acc_next;

/* The committing thread's own connection (an sl_client is not
 * thread-safe). */
static _Thread_local sl_client *wcl;

static void
commit1(const char *stream, const char *type, const char *content)
{
	ru_commit1(
	    &wcl, P.api_url, TENANT, stream, SL_EXPECT_ANY, type, content);
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
	CHECK_EQ(json_integer_value(
	             json_object_get(ru_remote(st, PY_ID), "protocol")),
	    atoi(protocol));
	json_t *p = ru_proc_named(st, PY_NAME);
	CHECK(json_is_true(json_object_get(p, "remote")));
	char *f = ru_failing_text(p);
	CHECK(strstr(f, "\"partition\":\"acc-poison\"") != NULL);
	CHECK(strstr(f, "content has no 'amount'") != NULL);
	CHECK(strstr(f, "\"retry\":true") != NULL);
	free(f);
	f = ru_failing_text(ru_proc_named(st, PYF_NAME));
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
		    json_object_get(ru_proc_named(st, PY_NAME), "failing"), 0);
		int64_t att
		    = json_integer_value(json_object_get(fl, "attempts"));
		json_decref(st);
		if (att >= 2)
			break;
		if (dt_now_ms() > end)
			DT_FAIL_LOG(
			    P.log_path, "the failing event is not retried");
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
	/* the first and two takeovers */
	CHECK_EQ(ru_registrations(cl, PY_ID), 3);
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
	/* a new daemon: its first registration */
	CHECK_EQ(ru_registrations(cl, PY_ID), 1);
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
		DT_FAIL_LOG(P.log_path, "the Python client ignored SIGTERM");
	}
	client_pid = -1;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		dt_dump_file(P.client_log, "python client log");
		fprintf(stderr, "the Python client exited with %d\n", st);
		exit(1);
	}
	wait_client_disconnected();
}

int
main(int argc, char **argv)
{
	if (argc > 1)
		protocol = argv[1];
	ru_paths_init(&P);
	check_python();
	write_config();
	start_daemon();

	test_same_models();
	test_client_killed();
	test_daemon_restart();
	test_client_stops();

	sl_client_close(wcl);
	sl_client_close(cl);
	ru_daemon_stop(daemon_pid, P.log_path);
	printf("remote_python_test: ok (protocol %s, %d accounts)\n", protocol,
	    acc_next);
	return 0;
}
