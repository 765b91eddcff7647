/*
 * An operator's reset, SIGTERM in the middle of the rebuild, a restart:
 * the rebuild resumes where it stood (not from 0, and not dropped for the
 * old generation), finishes, and the new generation equals a recomputation.
 * A real sluiced process with the filter_flaky plugin, its handlers slowed
 * to 50 µs per call (FLAKY_DELAY_US) so the rebuild lasts about a second.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <sluice/client.h>

#include "daemon_testutil.h"
#include "json_testutil.h"

#define TENANT    "ta"
#define PROJ_ID   "2f9fbf60-9be2-4ce9-9afc-e3c231f6116a"
#define N_STREAMS 10
#define N_COMMITS 300 /* of 100 events */
#define WAIT_MS   30000

static char  dir[4096], cfg_path[4200], daemon_log[4200], url[4200];
static pid_t daemon_pid = -1;
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

static void
start(void)
{
	daemon_pid = dt_daemon_spawn(cfg_path, daemon_log);
	if (!dt_wait_answer(url, &cl, WAIT_MS))
		FAIL("sluiced did not answer within %d ms", WAIT_MS);
}

/* The projection's entry in status (a new reference), or NULL. */
static json_t *
proc_status(long long *head)
{
	char *text = NULL;
	int   rc   = sl_client_status(cl, &text);
	if (rc != SL_OK)
		FAIL("status: %s", sl_errname(rc));
	json_t *st = json_loads(text, 0, NULL);
	sl_client_free(text);
	CHECK(st != NULL);
	*head       = jint(st, "head");
	json_t *out = NULL;
	size_t  i;
	json_t *p;
	json_array_foreach(json_object_get(st, "processors"), i, p)
	{
		if (strcmp(jstr(p, "projection"), PROJ_ID) == 0)
			out = json_incref(p);
	}
	json_decref(st);
	return out;
}

/* Wait until the projection's status satisfies want(); returns it. */
static json_t *
wait_proc(bool (*want)(json_t *, long long), const char *what)
{
	int64_t end = dt_now_ms() + WAIT_MS;
	for (;;) {
		long long head;
		json_t   *p = proc_status(&head);
		if (p != NULL && want(p, head))
			return p;
		if (dt_now_ms() > end)
			FAIL("no %s within %d ms: %s", what, WAIT_MS,
			    p != NULL ? dump(p) : "(no processor)");
		json_decref(p);
		dt_sleep_ms(2);
	}
}

static bool
live_at_head(json_t *p, long long head)
{
	return !json_is_true(json_object_get(p, "rebuilding"))
	    && jint(p, "position") == head && jint(p, "failing_count") == 0;
}

static bool
rebuilding_midway(json_t *p, long long head)
{
	long long pos = jint(p, "position");
	return json_is_true(json_object_get(p, "rebuilding"))
	    && pos >= head / 10 && pos < head / 2;
}

/* Past its setup: it has read its checkpoint and rebuild record. */
static bool
started(json_t *p, long long head)
{
	(void) head;
	return strcmp(jstr(p, "state"), "starting") != 0;
}

/* Every stream's read model counts its events. */
static void
compare(long long per_stream[N_STREAMS])
{
	sl_read_models m;
	CHECK_EQ(sl_client_get_all(cl, TENANT, PROJ_ID, NULL, 0, &m), SL_OK);
	CHECK_EQ(m.n_items, N_STREAMS);
	for (size_t k = 0; k < m.n_items; k++) {
		int s = -1;
		CHECK(sscanf(m.items[k].key, "s-%d", &s) == 1);
		CHECK(s >= 0 && s < N_STREAMS);
		json_t *st = json_loads(m.items[k].state_json, 0, NULL);
		CHECK(st != NULL);
		if (jint(st, "n") != per_stream[s])
			FAIL("%s is %s, the log has %lld events",
			    m.items[k].key, m.items[k].state_json,
			    per_stream[s]);
		json_decref(st);
	}
	sl_read_models_free(&m);
}

int
main(void)
{
	char plugins[4300], text[24576];
	dt_test_paths(dir, cfg_path, daemon_log, url);
	snprintf(plugins, sizeof(plugins), "%s/plugins", dir);
	CHECK(mkdir(plugins, 0755) == 0);
	char dst[4400];
	snprintf(dst, sizeof(dst), "%s/filter_flaky.so", plugins);
	dt_install(SL_TEST_PLUGIN_DIR "/filter_flaky.so", NULL, dst);
	size_t head = dt_config_head(
	    text, sizeof(text), dir, plugins, url, "128MiB");
	snprintf(text + head, sizeof(text) - head,
	    "tenants:\n"
	    "  - id: " TENANT "\n"
	    "    read_models:\n"
	    "      map_size: 128MiB\n");
	tu_write_file(cfg_path, text);
	atexit(cleanup);
	CHECK(setenv("FLAKY_DELAY_US", "50", 1) == 0);
	start();

	/* 30,000 Tick events over 10 streams */
	long long    per_stream[N_STREAMS] = { 0 };
	sl_new_event ev[100];
	for (int i = 0; i < 100; i++)
		ev[i] = (sl_new_event) { .type = "Tick", .content_json = "{}" };
	for (int c = 0; c < N_COMMITS; c++) {
		char stream[16];
		snprintf(stream, sizeof(stream), "s-%d", c % N_STREAMS);
		CHECK_EQ(sl_client_commit(cl, TENANT, stream, SL_EXPECT_ANY, ev,
		             100, NULL),
		    SL_OK);
		per_stream[c % N_STREAMS] += 100;
	}
	json_t   *p    = wait_proc(live_at_head, "catch-up");
	long long gen0 = jint(p, "generation");
	json_decref(p);
	compare(per_stream);

	/* reset, then SIGTERM while the rebuild is between 10 % and 50 % */
	size_t n;
	CHECK_EQ(sl_client_command(cl, "reset", PROJ_ID, TENANT, &n), SL_OK);
	p                = wait_proc(rebuilding_midway, "rebuild under way");
	long long at     = jint(p, "position");
	json_decref(p);
	int64_t t0 = dt_now_ms();
	CHECK(kill(daemon_pid, SIGTERM) == 0);
	int status;
	if (!dt_wait_exit(daemon_pid, 15000, &status))
		FAIL("sluiced did not stop within 15 s of SIGTERM");
	daemon_pid = -1;
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	fprintf(stderr, "reset, SIGTERM at rebuild position %lld: stopped in "
	                "%lld ms\n",
	    at, (long long) (dt_now_ms() - t0));
	sl_client_close(cl);
	cl = NULL;

	/* restarted: the rebuild goes on from where it stood */
	start();
	p = wait_proc(started, "the processor after the restart");
	long long resumed = jint(p, "position");
	if (!json_is_true(json_object_get(p, "rebuilding"))
	    || jint(p, "generation") != gen0)
		FAIL("after the restart the rebuild is gone: %s", dump(p));
	if (resumed < at)
		FAIL("the rebuild restarted at %lld, it stood at %lld",
		    resumed, at);
	json_decref(p);
	p = wait_proc(live_at_head, "the rebuild's end");
	if (jint(p, "generation") != gen0 + 1)
		FAIL("the rebuild did not replace generation %lld: %s", gen0,
		    dump(p));
	/* what it handled since the restart: the rest of the log only */
	if (jint(p, "events_handled") >= (long long) N_COMMITS * 100)
		FAIL("the rebuild started over: %s", dump(p));
	json_decref(p);
	compare(per_stream);
	fprintf(stderr, "resumed at %lld, finished as generation %lld\n",
	    resumed, gen0 + 1);

	CHECK(kill(daemon_pid, SIGTERM) == 0);
	CHECK(dt_wait_exit(daemon_pid, 15000, &status));
	daemon_pid = -1;
	printf("rebuild_restart_test: ok\n");
	return 0;
}
