/*
 * Remote processors end to end, with real processes: sluiced with the
 * Account Details plugin, the remote_account_details example as a client
 * process, and commits through the client library.
 *  - the remote projection builds the same read models as the plugin;
 *  - the client SIGKILLed mid-stream (status: disconnected) and started
 *    again ends with exactly the same read models;
 *  - sluiced SIGKILLed and restarted: the client registers again by itself
 *    and catches up;
 *  - a remote filter (include/sluice/remote.h, on a thread here) builds the
 *    same stream as the plugin's "customer events";
 *  - a client answering garbage, or never, gets failures and retries while
 *    the other registrations go on; once it answers well it catches up.
 * Needs the processor side of remote definitions (runtime/processing/proc_remote.c).
 * Run with argument "1", the clients speak remote protocol 1 (one event
 * per call: the protocol older clients speak) instead of the default 2,
 * over the same kind of log: both end with the plugins' read models and
 * stream.
 */
#include <inttypes.h>

#include <sluice/remote.h>

#include "daemon_testutil.h"
#include "remote_testutil.h"

#define TENANT    "demo"
#define REMOTE_ID "c5a0e7d2-4b1f-4c3e-8d2a-6f9b0e1d2c34" /* the example's */
#define FILTER_ID "d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e5f6"
#define BAD_ID    "e1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e5f6"

static ru_paths   P; /* its files and the daemon's URL */
static const char *protocol = "2"; /* the clients' remote protocol */
static pid_t      daemon_pid = -1, client_pid = -1;
static sl_client *cl;

static void
write_config(void)
{
	ru_write_config(&P, TENANT, 500);
}

static void
start_daemon(void)
{
	daemon_pid = ru_daemon_start(&P);
	if (cl == NULL)
		CHECK_EQ(sl_client_open(P.api_url, 15000, &cl), SL_OK);
}

static void
start_client(void)
{
	char *const argv[] = { "remote_account_details", "--url", P.api_url,
		"--protocol", (char *) protocol, NULL };
	client_pid         = dt_spawn_logged(
	            P.client_log, SL_BUILD_DIR "/remote_account_details", argv);
}

static void
stop_client(void)
{
	if (client_pid > 0) {
		kill(client_pid, SIGTERM);
		int st;
		if (!dt_wait_exit(client_pid, 5000, &st))
			dt_kill_and_reap(&client_pid);
		client_pid = -1;
	}
}

/* Wait until each named processor is live at the head with nothing
 * failing. */
static void
wait_caught_up(const char *const *names, size_t n, int ms)
{
	ru_wait_caught_up(cl, names, n, 0, false, ms, &P, "client log");
}

/* Every read model of a projection as one JSON array text. */
static char *
all_models(const char *projection, size_t *count)
{
	return ru_all_models(
	    cl, TENANT, projection, count, JSON_SORT_KEYS | JSON_COMPACT);
}

static void
check_same_models(size_t want_at_least)
{
	size_t na, nb;
	char  *a = all_models("account_details", &na);
	char  *b = all_models("remote_account_details", &nb);
	ru_check_same_text(
	    "read models", "remote", a, na, b, nb, want_at_least);
}

/* ---- the workload ---- */

static int acc_next;

/* The committing thread's own connection (an sl_client is not
 * thread-safe). */
static _Thread_local sl_client *wcl;

/* One account: opened, its customer registered, debits, a withdrawal. */
static void
one_account(int debits)
{
	ru_one_account(&wcl, P.api_url, TENANT, acc_next++, debits);
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

/* ---- phases ---- */

static const char *const both[]
    = { "account_details", "remote_account_details" };

static void
test_same_models(void)
{
	start_client();
	CHECK(ru_wait_connected(cl, REMOTE_ID, true, 10000));
	for (int i = 0; i < 150; i++)
		one_account(2);
	wait_caught_up(both, 2, 30000);
	check_same_models(150);
	/* the protocol the client asked for is the one spoken */
	json_t *st = ru_status(cl);
	CHECK_EQ(json_integer_value(
	             json_object_get(ru_remote(st, REMOTE_ID), "protocol")),
	    atoi(protocol));
	json_decref(st);
}

/* The client is SIGKILLed three times while a writer commits. */
static void
test_client_killed(void)
{
	int       n = 300;
	pthread_t th;
	CHECK(pthread_create(&th, NULL, writer_main, &n) == 0);
	for (int k = 0; k < 3; k++) {
		dt_sleep_ms(300 + 150 * k);
		dt_kill_and_reap(&client_pid);
		CHECK(ru_wait_connected(cl, REMOTE_ID, false, 5000));
		/* its processor waits, shown as disconnected */
		int64_t end = dt_now_ms() + 5000;
		for (;;) {
			json_t *st = ru_status(cl);
			json_t *p
			    = ru_proc_named(st, "remote_account_details");
			const char *s
			    = json_string_value(json_object_get(p, "state"));
			bool disc
			    = s != NULL && strcmp(s, "disconnected") == 0;
			json_decref(st);
			if (disc)
				break;
			if (dt_now_ms() > end)
				DT_FAIL_LOG(P.log_path,
				    "the processor does not show "
				    "disconnected");
			dt_sleep_ms(10);
		}
		dt_sleep_ms(100);
		start_client();
		CHECK(ru_wait_connected(cl, REMOTE_ID, true, 10000));
	}
	pthread_join(th, NULL);
	wait_caught_up(both, 2, 60000);
	check_same_models(450);
}

/* sluiced is SIGKILLed and restarted; the client registers again. */
static void
test_daemon_restart(void)
{
	dt_kill_and_reap(&daemon_pid);
	start_daemon();
	for (int i = 0; i < 50; i++)
		one_account(1);
	CHECK(ru_wait_connected(cl, REMOTE_ID, true, 10000));
	wait_caught_up(both, 2, 30000);
	check_same_models(500);
	/* a new daemon: its first registration */
	CHECK_EQ(ru_registrations(cl, REMOTE_ID), 1);
}

/* ---- a remote filter in this process ---- */

static sl_remote_result
customer_events(void *user, sl_remote_call *c)
{
	(void) user;
	const char *type = sl_remote_event_type(c), *customer;
	if (strcmp(type, "CustomerRegistered") != 0
	    && strcmp(type, "DebitAccountOpened") != 0
	    && strcmp(type, "DebitPerformed") != 0
	    && strcmp(type, "WithdrawalPerformed") != 0)
		return SL_REMOTE_EXCLUDED;
	if (sl_remote_get_str(c, "customer_id", &customer) != SL_OK)
		return sl_remote_fail(c, false, 0, "no customer_id");
	return sl_remote_include(c, customer);
}

/* The stream of a filter's partition, as positions. */
static char *
partition_positions(const char *filter, const char *partition)
{
	return ru_filter_text(cl, TENANT, filter, partition, false, NULL);
}

static void
test_remote_filter(void)
{
	sl_remote_filter def = {
		.id     = FILTER_ID,
		.name   = "remote customer events",
		.kind   = SL_REMOTE_PARTITIONED,
		.filter = customer_events,
	};
	sl_remote *r;
	sl_remote_options opts = { .protocol = (uint32_t) atoi(protocol) };
	CHECK_EQ(sl_remote_register_filter(P.api_url, &def, &opts, &r), SL_OK);
	/* a second client of the same id is refused while it is connected */
	CHECK_EQ(sl_remote_start(r), SL_OK);
	CHECK(ru_wait_connected(cl, FILTER_ID, true, 10000));
	sl_remote *dup;
	CHECK_EQ(
	    sl_remote_register_filter(P.api_url, &def, NULL, &dup), SL_EEXIST);
	CHECK(dup == NULL);
	CHECK(strstr(sl_remote_open_error(), "connected") != NULL);

	const char *const names[]
	    = { "customer events", "remote customer events" };
	wait_caught_up(names, 2, 60000);
	for (int c = 0; c < 50; c += 7) {
		char part[32];
		snprintf(part, sizeof(part), "cust-%03d", c);
		char *a = partition_positions("customer events", part);
		char *b = partition_positions("remote customer events", part);
		if (strcmp(a, b) != 0 || strlen(a) < 10) {
			fprintf(stderr, "partition %s differs:\n%s\n%s\n",
			    part, a, b);
			exit(1);
		}
		free(a);
		free(b);
	}
	sl_remote_stats s;
	sl_remote_get_stats(r, &s);
	CHECK(s.connected);
	CHECK(s.calls > 1000);
	CHECK_EQ(s.registrations, 1);
	sl_remote_close(r);
	CHECK(ru_wait_connected(cl, FILTER_ID, false, 5000));
}

/* ---- a client that answers badly ---- */

/* The bad registration's processor (borrowed from st). */
static json_t *
bad_proc(json_t *st)
{
	json_t *p;
	size_t  i;
	json_array_foreach(json_object_get(st, "processors"), i, p)
	{
		if (strcmp(json_string_value(json_object_get(p, "projection")),
		        BAD_ID)
		    == 0)
			return p;
	}
	return NULL;
}

/* Wait until the bad registration's calls fail with want (its last error
 * in status) and its processor has failing units, to be retried. */
static void
wait_failing(const char *want)
{
	int64_t end = dt_now_ms() + 15000;
	for (;;) {
		json_t     *st = ru_status(cl), *f;
		json_t     *p  = bad_proc(st);
		const char *le = json_string_value(
		    json_object_get(ru_remote(st, BAD_ID), "last_error"));
		size_t i;
		bool   retry = false;
		json_array_foreach(json_object_get(p, "failing"), i, f)
		{
			retry |= json_is_true(json_object_get(f, "retry"));
		}
		bool hit = le != NULL && strstr(le, want) != NULL && retry
		    && json_integer_value(json_object_get(p, "failing_count"))
		        > 0;
		json_decref(st);
		if (hit)
			return;
		if (dt_now_ms() > end)
			DT_FAIL_LOG(
			    P.log_path, "no failing unit with '%s'", want);
		dt_sleep_ms(20);
	}
}

static void
test_bad_client(void)
{
	json_t *rep = NULL;
	CHECK_EQ(ru_request(cl,
	             "{\"v\":1,\"op\":\"register\",\"protocol\":1,\"kind\":"
	             "\"projection\",\"id\":\"" BAD_ID "\",\"name\":\"bad\","
	             "\"initial_state\":{\"n\":0},\"selectors\":[{\"type\":"
	             "\"WithdrawalPerformed\",\"key\":\"partition\"}]}",
	             &rep),
	    SL_OK);
	ru_fake *f = ru_fake_start(
	    json_string_value(json_object_get(rep, "url")), RU_GARBAGE);
	json_decref(rep);
	wait_failing("malformed answer");

	/* meanwhile the others go on */
	int before = acc_next;
	for (int i = 0; i < 20; i++)
		one_account(1);
	wait_caught_up(both, 2, 30000);
	check_same_models((size_t) before + 20);

	/* never answers: the calls time out, and are retried */
	atomic_store(&f->mode, RU_NEVER);
	wait_failing("timed out after 500 ms");
	uint64_t calls = ru_fake_calls(f);
	dt_sleep_ms(1500);
	CHECK(ru_fake_calls(f) > calls); /* retried */

	/* answers well: every unit catches up (retried now, by an operator),
	 * each account's n counts its one withdrawal */
	atomic_store(&f->mode, RU_GOOD);
	CHECK_EQ(ru_request(cl,
	             "{\"v\":1,\"op\":\"retry\",\"id\":\"" BAD_ID "\"}", NULL),
	    SL_OK);
	const char *const bad[] = { "bad" };
	wait_caught_up(bad, 1, 30000);
	size_t n;
	char  *models = all_models("bad", &n);
	CHECK_EQ(n, (size_t) acc_next);
	CHECK(strstr(models, "\"n\":2") == NULL);
	free(models);
	ru_fake_stop(f);
}

int
main(int argc, char **argv)
{
	if (argc > 1)
		protocol = argv[1];
	ru_paths_init(&P);
	write_config();
	start_daemon();

	test_same_models();
	test_client_killed();
	test_daemon_restart();
	test_remote_filter();
	test_bad_client();

	stop_client();
	sl_client_close(wcl);
	sl_client_close(cl);
	ru_daemon_stop(daemon_pid, P.log_path);
	printf("remote_client_test: ok (protocol %s, %d accounts)\n", protocol,
	    acc_next);
	return 0;
}
