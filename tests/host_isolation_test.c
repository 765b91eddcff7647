/*
 * isolation: process (runtime/host/hostsup.h), with real processes: sluiced
 * starts a sluice-host child per such plugin, which registers it over the
 * remote protocol.
 *   same:    Account Details in a host builds the read models the plugin
 *            builds in process; switching a plugin from in_process to
 *            process keeps its read models (same definition: no rebuild),
 *            and a rebuild through the host and one in process agree.
 *   segv, abort: a projection that crashes on one event of one key (the
 *            crash_on_boom plugins): the daemon stays up, the host is
 *            started again, only that key fails (not retried, the reason
 *            names the signal), every other key and the neighbour
 *            projection fold; a fixed build installed (hot reload starts
 *            the host again with it) and `retry` catch the key up; a
 *            `retry` before the fix runs the event again (another
 *            crash, the same failure).
 *   loop:    a handler that never returns is cut at remote.timeout_ms by
 *            the host's watchdog; only its key fails.
 *   stop:    SIGTERM of the daemon while a host is stuck in a handler:
 *            the daemon exits in bounded time and no host is left.
 *   refused: hosts that cannot load their plugin (wrong ABI, no init
 *            symbol, an emitting projection a host cannot run) are shown
 *            refused in status with why, and are not restarted until the
 *            file changes (then the new file runs).
 *   backoff: a plugin whose init aborts every time: its host is started
 *            again with a growing delay (no restart storm), each death
 *            logged, while the daemon serves; a good file stops it.
 *   nohost:  no sluice-host program ($SLUICE_HOST names none): refused
 *            with why, not started again.
 * Usage: host_isolation_test same|segv|abort|loop|stop|refused|backoff|
 *        nohost
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>

#include "daemon_testutil.h"
#include "auth.h"
#include "remote_testutil.h"

#define TENANT     "demo"
#define AD_ID      "8a2f3c1e-5b7d-4e9a-9c11-2d4e6f8a0b13" /* account_details */
#define N_STREAMS  5
#define BAD_STREAM 2
#define WAIT_MS    30000

static ru_paths   P;
static char       plugin_dir[4400];
static pid_t      daemon_pid = -1;
static pid_t      test_pid;
static sl_client *cl, *wcl;

#define FAIL(...) DT_FAIL_LOG(P.log_path, __VA_ARGS__)

static void
cleanup(void)
{
	if (getpid() != test_pid)
		return;
	if (wcl != NULL)
		sl_client_close(wcl);
	if (cl != NULL)
		sl_client_close(cl);
	/* the hosts die with the daemon (PR_SET_PDEATHSIG) */
	dt_kill_and_reap(&daemon_pid);
}

/* resources.yaml: plugins from pdir (hot reload on), remote calls timing
 * out after timeout_ms, then the extra text (a plugins: section). */
static void
write_config(const char *pdir, int timeout_ms, const char *extra)
{
	ru_write_config_ex(&P, pdir, true, TENANT, timeout_ms, extra);
}

static void
daemon_start(void)
{
	daemon_pid = ru_daemon_start(&P);
	if (cl == NULL)
		CHECK_EQ(sl_client_open(P.api_url, 15000, &cl), SL_OK);
}

static void
daemon_stop(void)
{
	ru_daemon_stop(daemon_pid, P.log_path);
	daemon_pid = -1;
	sl_client_close(cl);
	cl = NULL;
	if (wcl != NULL)
		sl_client_close(wcl);
	wcl = NULL;
}

static void
check_daemon_alive(void)
{
	int st;
	if (dt_waitpid(daemon_pid, &st, WNOHANG) == daemon_pid) {
		daemon_pid = -1;
		FAIL("sluiced exited: status 0x%x", st);
	}
}

/* The status entry of the host of plugin file name (a copy; NULL if
 * none). */
static json_t *
host_of(const char *name)
{
	json_t *st = ru_status(cl), *h, *out = NULL;
	size_t  i, nl = strlen(name);
	json_array_foreach(json_object_get(st, "hosts"), i, h)
	{
		const char *f  = json_string_value(json_object_get(h, "file"));
		size_t      fl = f != NULL ? strlen(f) : 0;
		if (fl >= nl && strcmp(f + fl - nl, name) == 0)
			out = json_deep_copy(h);
	}
	json_decref(st);
	return out;
}

static int64_t
host_int(json_t *h, const char *key)
{
	return json_integer_value(json_object_get(h, key));
}

static const char *
host_str(json_t *h, const char *key)
{
	const char *s = json_string_value(json_object_get(h, key));
	return s != NULL ? s : "";
}

/* Wait until the host of name is in state (and, when min_starts > 0, has
 * been started that often); the entry (caller decrefs). */
static json_t *
wait_host(const char *name, const char *state, int64_t min_starts)
{
	int64_t end = dt_now_ms() + WAIT_MS;
	for (;;) {
		check_daemon_alive();
		json_t *h = host_of(name);
		if (h != NULL && strcmp(host_str(h, "state"), state) == 0
		    && host_int(h, "starts") >= min_starts)
			return h;
		if (dt_now_ms() > end) {
			char *t = h != NULL ? json_dumps(h, 0) : NULL;
			fprintf(stderr, "host: %s\n", t != NULL ? t : "none");
			free(t);
			FAIL("the host of %s is not %s", name, state);
		}
		json_decref(h);
		dt_sleep_ms(20);
	}
}

/* Whether process pid is gone (reaped by the daemon, or never there). */
static bool
gone(pid_t pid)
{
	return kill(pid, 0) != 0 && errno == ESRCH;
}

static void
wait_caught_up(const char *name, size_t n_failing)
{
	const char *names[] = { name };
	ru_wait_caught_up(
	    cl, names, 1, n_failing, false, WAIT_MS, &P, "(no client log)");
}

static int64_t
proc_int(const char *name, const char *key)
{
	json_t *st = ru_status(cl);
	int64_t v  = json_integer_value(
	     json_object_get(ru_proc_named(st, name), key));
	json_decref(st);
	return v;
}

/* ---- same: the read models of Account Details ---- */

static char *
all_models(size_t *count)
{
	return ru_all_models(cl, TENANT, "account_details", count,
	    JSON_SORT_KEYS | JSON_COMPACT);
}

static void
accounts(int from, int to)
{
	for (int i = from; i < to; i++)
		ru_one_account(&wcl, P.api_url, TENANT, i, 2);
}

#define FILTER "customer events" /* account_filters.so, partitioned */

/* reset name (rebuild from 0) and wait until the new generation caught
 * up */
static void
rebuild_one(const char *name)
{
	int64_t gen = proc_int(name, "generation");
	size_t  n;
	CHECK_EQ(sl_client_command(cl, "reset", name, TENANT, &n), SL_OK);
	int64_t end = dt_now_ms() + WAIT_MS;
	while (proc_int(name, "generation") == gen) {
		if (dt_now_ms() > end)
			FAIL("reset of %s did not start a rebuild", name);
		dt_sleep_ms(20);
	}
	wait_caught_up(name, 0);
}

/* the projection and the filter rebuilt; the filter's stream (with
 * partitions) into *stream */
static void
rebuild(char **stream, size_t *n)
{
	rebuild_one("account_details");
	rebuild_one(FILTER);
	*stream = ru_filter_text(cl, TENANT, FILTER, NULL, true, n);
}

static void
test_same(void)
{
	static const char hosted[] = "plugins:\n  - file: account_details.so\n"
	                             "    isolation: process\n"
	                             "  - file: account_filters.so\n"
	                             "    isolation: process\n";
	size_t            na, nb, nc, nd, nfc, nfd;
	char             *fc, *fd;
	write_config(SL_PLUGIN_DIR, 5000, "");
	daemon_start();
	accounts(0, 60);
	wait_caught_up("account_details", 0);
	char *a = all_models(&na);
	CHECK(host_of("account_details.so") == NULL); /* in process */
	daemon_stop();

	/* the same plugin in a host goes on from the checkpoint */
	write_config(SL_PLUGIN_DIR, 5000, hosted);
	daemon_start();
	json_t *h        = wait_host("account_details.so", "running", 1);
	pid_t   host_pid = (pid_t) host_int(h, "pid");
	CHECK(host_pid > 0 && !gone(host_pid));
	CHECK_EQ(host_int(h, "restarts"), 0);
	json_decref(h);
	CHECK(ru_wait_connected(cl, AD_ID, true, WAIT_MS));
	json_t *st = ru_status(cl);
	json_t *p  = ru_proc_named(st, "account_details");
	CHECK(json_is_true(json_object_get(p, "remote")));
	/* the definition is the plugin's: nothing was rebuilt */
	CHECK_EQ(json_integer_value(json_object_get(p, "generation")), 1);
	json_decref(st);
	wait_caught_up("account_details", 0);
	char *a2 = all_models(&nb);
	ru_check_same_text("read models", "host", a, na, a2, nb, 60);
	accounts(60, 100);
	wait_caught_up("account_details", 0);
	char *b = all_models(&nb);

	/* every event through the host: the same read models */
	json_t *hf = host_of("account_filters.so");
	CHECK(hf != NULL && host_int(hf, "pid") > 0);
	json_decref(hf);
	rebuild(&fc, &nfc);
	char *c = all_models(&nc);
	daemon_stop();
	CHECK(gone(host_pid));

	/* and every event in process */
	write_config(SL_PLUGIN_DIR, 5000, "");
	daemon_start();
	rebuild(&fd, &nfd);
	char *d = all_models(&nd);
	daemon_stop();
	char *c2 = strdup(c);
	ru_check_same_text("read models", "host (rebuilt)", b, nb, c, nc, 100);
	ru_check_same_text(
	    "read models", "in process (rebuilt)", c2, nc, d, nd, 100);
	ru_check_same_text(
	    "filter streams", "in process (rebuilt)", fc, nfc, fd, nfd, 100);
}

/* ---- crash_on_boom: segv, abort, loop, stop ---- */

#define PROJ    "crash_counts"
#define PROJ_ID "c4a5b0b0-3e1d-4c2b-9a7e-0b00b0b0c4a5"
#define SIDE    "side_counts"

static void
install(const char *build)
{
	char src[4400], tmp[4500], dst[4500];
	snprintf(src, sizeof(src), "%s/%s.so", SL_TEST_PLUGIN_DIR, build);
	snprintf(tmp, sizeof(tmp), "%s/.crash.so.tmp", plugin_dir);
	snprintf(dst, sizeof(dst), "%s/crash.so", plugin_dir);
	dt_install(src, tmp, dst);
}

static void
tick(int stream, int i, const char *extra)
{
	char s[32], content[96];
	snprintf(s, sizeof(s), "s-%d", stream);
	snprintf(content, sizeof(content), "{\"i\":%d%s}", i, extra);
	ru_commit1(&wcl, P.api_url, TENANT, s, SL_EXPECT_ANY, "Tick", content);
}

/* rounds of Tick events on every stream, the bad one (extra) on stream
 * BAD_STREAM after the first `before` rounds */
static void
ticks(int rounds, int before, const char *bad)
{
	for (int r = 0; r < rounds; r++) {
		if (r == before)
			tick(BAD_STREAM, 1000, bad);
		for (int s = 0; s < N_STREAMS; s++)
			tick(s, r * 10 + s, "");
	}
}

static int64_t
model_i64(const char *proj, int stream, const char *field)
{
	char key[32];
	snprintf(key, sizeof(key), "s-%d", stream);
	char *text  = NULL;
	bool  found = false;
	CHECK_EQ(
	    sl_client_get_one(cl, TENANT, proj, key, &text, &found), SL_OK);
	json_t *s = json_loads(text, 0, NULL);
	CHECK(s != NULL);
	int64_t v = json_integer_value(json_object_get(s, field));
	json_decref(s);
	sl_client_free(text);
	return v;
}

/* Wait until PROJ's one failing unit is BAD_STREAM's, with a reason that
 * contains want; the failing entry (caller decrefs). */
static json_t *
wait_failing(const char *want)
{
	int64_t end = dt_now_ms() + WAIT_MS;
	for (;;) {
		check_daemon_alive();
		json_t *st = ru_status(cl);
		json_t *p  = ru_proc_named(st, PROJ);
		json_t *f  = json_array_get(json_object_get(p, "failing"), 0);
		const char *why
		    = json_string_value(json_object_get(f, "reason"));
		if (f != NULL && why != NULL && strstr(why, want) != NULL) {
			json_incref(f);
			json_decref(st);
			return f;
		}
		if (dt_now_ms() > end) {
			char *t = json_dumps(p, JSON_INDENT(1));
			fprintf(stderr, "%s\n", t != NULL ? t : "(none)");
			free(t);
			FAIL("%s: no failing unit with '%s'", PROJ, want);
		}
		json_decref(st);
		dt_sleep_ms(20);
	}
}

static void
crash_setup(const char *build, int timeout_ms)
{
	snprintf(plugin_dir, sizeof(plugin_dir), "%s/plugins", P.dir);
	CHECK(mkdir(plugin_dir, 0755) == 0);
	install(build);
	write_config(plugin_dir, timeout_ms,
	    "plugins:\n  - file: crash.so\n    isolation: process\n");
	daemon_start();
	json_t *h = wait_host("crash.so", "running", 1);
	json_decref(h);
}

/* segv, abort (crashed: "SIGSEGV" or "SIGABRT"), loop (cut) */
static void
test_crash(const char *build, const char *bad, const char *want_reason,
    const char *want_exit, int timeout_ms)
{
	crash_setup(build, timeout_ms);
	json_t *h0    = wait_host("crash.so", "running", 1);
	pid_t   first = (pid_t) host_int(h0, "pid");
	json_decref(h0);
	ticks(8, 4, bad);

	json_t *f = wait_failing(want_reason);
	CHECK(strcmp(json_string_value(json_object_get(f, "partition")), "s-2")
	    == 0);
	CHECK(json_is_false(json_object_get(f, "retry")));
	json_decref(f);
	wait_caught_up(PROJ, 1);
	wait_caught_up(SIDE, 0);
	check_daemon_alive();

	/* the host was started again, and says how the last one ended */
	json_t *h = wait_host("crash.so", "running", 2);
	CHECK(host_int(h, "restarts") >= 1);
	CHECK(host_int(h, "pid") != first && gone(first));
	if (strstr(host_str(h, "last_exit"), want_exit) == NULL)
		FAIL("last_exit '%s' lacks '%s'", host_str(h, "last_exit"),
		    want_exit);
	json_decref(h);

	/* every other key folded everything; the bad one up to its event */
	for (int s = 0; s < N_STREAMS; s++) {
		CHECK_EQ(model_i64(SIDE, s, "n"), s == BAD_STREAM ? 9 : 8);
		CHECK_EQ(model_i64(PROJ, s, "n"), s == BAD_STREAM ? 4 : 8);
	}

	/* `retry` with the same build runs the event again: the host dies
	 * again (one more restart), the key fails again the same way, and
	 * nothing else moved (a loop would take a timeout: not tried) */
	if (strstr(want_reason, "died of") != NULL) {
		json_t *h1 = host_of("crash.so");
		int64_t r1 = host_int(h1, "restarts");
		json_decref(h1);
		size_t n1;
		CHECK_EQ(sl_client_command(cl, "retry", PROJ, TENANT, &n1),
		    SL_OK);
		int64_t end = dt_now_ms() + WAIT_MS;
		for (;;) {
			json_t *h2 = host_of("crash.so");
			bool    ok = host_int(h2, "restarts") > r1
			    && strcmp(host_str(h2, "state"), "running") == 0;
			json_decref(h2);
			if (ok)
				break;
			if (dt_now_ms() > end)
				FAIL("retry did not run the crashing event again");
			dt_sleep_ms(20);
		}
		json_decref(wait_failing(want_reason));
		wait_caught_up(PROJ, 1);
		CHECK_EQ(model_i64(PROJ, BAD_STREAM, "n"), 4);
	}

	/* a fixed build: the host starts again with it; retry catches up */
	json_t *hb     = host_of("crash.so");
	int64_t starts = host_int(hb, "starts");
	json_decref(hb);
	install("crash_proj_fixed");
	json_decref(wait_host("crash.so", "running", starts + 1));
	CHECK(ru_wait_connected(cl, PROJ_ID, true, WAIT_MS));
	size_t n;
	CHECK_EQ(sl_client_command(cl, "retry", PROJ, TENANT, &n), SL_OK);
	wait_caught_up(PROJ, 0);
	for (int s = 0; s < N_STREAMS; s++)
		CHECK_EQ(model_i64(PROJ, s, "n"), model_i64(SIDE, s, "n"));
	CHECK_EQ(model_i64(PROJ, BAD_STREAM, "sum"),
	    model_i64(SIDE, BAD_STREAM, "sum"));
	daemon_stop();
}

/* SIGTERM while the host is inside a handler that never returns */
static void
test_stop(void)
{
	crash_setup("crash_proj_loop", 60000);
	json_t *h   = wait_host("crash.so", "running", 1);
	pid_t   pid = (pid_t) host_int(h, "pid");
	json_decref(h);
	ticks(2, 1, ",\"loop\":1");
	/* the call with the looping event is in flight */
	int64_t end = dt_now_ms() + WAIT_MS;
	for (;;) {
		json_t *st = ru_status(cl);
		json_t *r  = ru_remote(st, PROJ_ID);
		int64_t inflight
		    = json_integer_value(json_object_get(r, "in_flight"));
		json_decref(st);
		if (inflight > 0)
			break;
		if (dt_now_ms() > end)
			FAIL("no call in flight");
		dt_sleep_ms(20);
	}
	dt_sleep_ms(300);
	int64_t t0 = dt_now_ms();
	daemon_stop();
	int64_t took = dt_now_ms() - t0;
	CHECK(gone(pid));
	CHECK(took < 12000);
	size_t loglen;
	char  *log = dt_slurp(P.log_path, &loglen);
	CHECK(strstr(log, "did not stop within") != NULL);
	free(log);
	printf("stop: sluiced exited %" PRId64 " ms after SIGTERM, host "
	       "%ld gone\n",
	    took, (long) pid);
}

/* ---- refused ---- */

static void
test_refused(void)
{
	static const char *const files[]
	    = { "bad_abi", "no_symbol", "crash_emit_fixed" };
	static const char *const why[]
	    = { "ABI", "sluice_plugin_init", "emits" };
	snprintf(plugin_dir, sizeof(plugin_dir), "%s/plugins", P.dir);
	CHECK(mkdir(plugin_dir, 0755) == 0);
	char extra[1024] = "plugins:\n";
	for (size_t i = 0; i < 3; i++) {
		char src[4400], tmp[4500], dst[4500];
		snprintf(src, sizeof(src), "%s/%s.so", SL_TEST_PLUGIN_DIR,
		    files[i]);
		snprintf(tmp, sizeof(tmp), "%s/.tmp", plugin_dir);
		snprintf(dst, sizeof(dst), "%s/%s.so", plugin_dir, files[i]);
		dt_install(src, tmp, dst);
		snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra),
		    "  - file: %s.so\n    isolation: process\n", files[i]);
	}
	write_config(plugin_dir, 5000, extra);
	daemon_start();
	for (size_t i = 0; i < 3; i++) {
		char name[64];
		snprintf(name, sizeof(name), "%s.so", files[i]);
		json_t *h = wait_host(name, "refused", 1);
		if (strstr(host_str(h, "error"), why[i]) == NULL)
			FAIL("%s: error '%s' lacks '%s'", name,
			    host_str(h, "error"), why[i]);
		json_decref(h);
	}
	/* no restart storm */
	dt_sleep_ms(1500);
	for (size_t i = 0; i < 3; i++) {
		char name[64];
		snprintf(name, sizeof(name), "%s.so", files[i]);
		json_t *h = host_of(name);
		CHECK_EQ(host_int(h, "starts"), 1);
		CHECK_EQ(host_int(h, "restarts"), 0);
		CHECK_EQ(host_int(h, "pid"), 0);
		json_decref(h);
	}
	size_t loglen;
	char  *log = dt_slurp(P.log_path, &loglen);
	CHECK(strstr(log, "not started again until the file changes") != NULL);
	free(log);
	/* a good build in place of one: it runs */
	char src[4400], tmp[4500], dst[4500];
	snprintf(
	    src, sizeof(src), "%s/crash_proj_fixed.so", SL_TEST_PLUGIN_DIR);
	snprintf(tmp, sizeof(tmp), "%s/.tmp", plugin_dir);
	snprintf(dst, sizeof(dst), "%s/no_symbol.so", plugin_dir);
	dt_install(src, tmp, dst);
	json_decref(wait_host("no_symbol.so", "running", 2));
	CHECK(ru_wait_connected(cl, PROJ_ID, true, WAIT_MS));
	daemon_stop();
}

/* ---- backoff ---- */

static void
test_backoff(void)
{
	snprintf(plugin_dir, sizeof(plugin_dir), "%s/plugins", P.dir);
	CHECK(mkdir(plugin_dir, 0755) == 0);
	char src[4400], tmp[4500], dst[4500];
	snprintf(src, sizeof(src), "%s/init_crash.so", SL_TEST_PLUGIN_DIR);
	snprintf(tmp, sizeof(tmp), "%s/.tmp", plugin_dir);
	snprintf(dst, sizeof(dst), "%s/crash.so", plugin_dir);
	dt_install(src, tmp, dst);
	write_config(plugin_dir, 5000,
	    "plugins:\n  - file: crash.so\n    isolation: process\n");
	int64_t t0 = dt_now_ms();
	daemon_start();
	/* delays 100, 200, 400, 800 ms ...: a handful of starts in 2.5 s,
	 * not hundreds */
	dt_sleep_ms(2500);
	check_daemon_alive();
	json_t *h       = host_of("crash.so");
	int64_t starts  = host_int(h, "starts");
	int64_t elapsed = dt_now_ms() - t0;
	printf("backoff: %" PRId64 " starts in %" PRId64 " ms, backoff now "
	       "%" PRId64 " ms, last exit %s\n",
	    starts, elapsed, host_int(h, "backoff_ms"),
	    host_str(h, "last_exit"));
	CHECK(starts >= 3 && starts <= 7);
	CHECK_EQ(host_int(h, "restarts"), starts - (host_int(h, "pid") > 0));
	CHECK(host_int(h, "backoff_ms") >= 200);
	CHECK(strstr(host_str(h, "last_exit"), "SIGABRT") != NULL);
	json_decref(h);
	size_t loglen;
	char  *log = dt_slurp(P.log_path, &loglen);
	CHECK(strstr(log, "starting it again in 200 ms") != NULL);
	free(log);
	/* a good build: it runs, the delay starts over */
	snprintf(
	    src, sizeof(src), "%s/crash_proj_fixed.so", SL_TEST_PLUGIN_DIR);
	dt_install(src, tmp, dst);
	h = wait_host("crash.so", "running", starts + 1);
	CHECK_EQ(host_int(h, "backoff_ms"), 0);
	json_decref(h);
	CHECK(ru_wait_connected(cl, PROJ_ID, true, WAIT_MS));
	daemon_stop();
}

/* ---- nohost ---- */

static void
test_nohost(void)
{
	setenv("SLUICE_HOST", "/nonexistent/sluice-host", 1); /* inherited */
	write_config(SL_PLUGIN_DIR, 5000,
	    "plugins:\n  - file: account_details.so\n"
	    "    isolation: process\n");
	daemon_start();
	json_t *h = wait_host("account_details.so", "refused", 1);
	CHECK(strstr(host_str(h, "error"), "cannot run the plugin host")
	    != NULL);
	json_decref(h);
	dt_sleep_ms(500);
	h = host_of("account_details.so");
	CHECK_EQ(host_int(h, "starts"), 1);
	json_decref(h);
	/* the daemon serves on */
	json_t *st = ru_status(cl);
	CHECK(json_object_get(st, "head") != NULL);
	json_decref(st);
	daemon_stop();
}

/* ---- auth: the hosts register with the daemon's own credential ---- */

static void
test_auth(void)
{
	static const char token[] = "host-isolation-test-token";
	char              hash[65], extra[1024];
	auth_hash_hex(token, strlen(token), hash);
	snprintf(extra, sizeof(extra),
	    "plugins:\n  - file: account_details.so\n"
	    "    isolation: process\n"
	    "auth:\n  tokens:\n    - name: tester\n"
	    "      token_sha256: %s\n      tenants: \"*\"\n"
	    "      roles: [admin]\n",
	    hash);
	write_config(SL_PLUGIN_DIR, 5000, extra);
	daemon_pid  = dt_daemon_spawn(P.cfg_path, P.log_path);
	int64_t end = dt_now_ms() + WAIT_MS;
	while (sl_client_open(P.api_url, 15000, &cl) != SL_OK) {
		check_daemon_alive();
		if (dt_now_ms() > end)
			FAIL("sluiced did not start");
		dt_sleep_ms(20);
	}
	CHECK_EQ(sl_client_set_token(cl, token), SL_OK);
	CHECK_EQ(sl_client_open(P.api_url, 15000, &wcl), SL_OK);
	CHECK_EQ(sl_client_set_token(wcl, token), SL_OK);
	json_t *h = wait_host("account_details.so", "running", 1);
	pid_t   host_pid = (pid_t) host_int(h, "pid");
	json_decref(h);
	CHECK(ru_wait_connected(cl, AD_ID, true, WAIT_MS));
	accounts(0, 30);
	wait_caught_up("account_details", 0);
	size_t n;
	free(all_models(&n));
	CHECK_EQ(n, 30);
	/* the host's token is in no command line and no log line */
	char   path[64];
	size_t len;
	snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long) host_pid);
	char *cmd = dt_slurp(path, &len);
	CHECK(cmd != NULL);
	for (size_t i = 0; i < len; i++)
		if (cmd[i] == '\0')
			cmd[i] = ' ';
	CHECK(strstr(cmd, "SLUICE_TOKEN") == NULL && strstr(cmd, "--token") == NULL);
	free(cmd);
	h = host_of("account_details.so");
	CHECK_EQ(host_int(h, "restarts"), 0);
	json_decref(h);
	daemon_stop();
	char *log = dt_slurp(P.log_path, &len);
	CHECK(log != NULL && strstr(log, "EACCES") == NULL);
	free(log);
}

int
main(int argc, char **argv)
{
	const char *c = argc > 1 ? argv[1] : "same";
	test_pid      = getpid();
	atexit(cleanup);
	/* a plugin's fault must reach the host as a signal, also in a
	 * sanitizer build (the hosts inherit this) */
	setenv("ASAN_OPTIONS",
	    "handle_segv=0:handle_abort=0:handle_sigbus=0:handle_sigill=0:"
	    "handle_sigfpe=0:allow_user_segv_handler=1",
	    1);
	ru_paths_init(&P);
	if (strcmp(c, "same") == 0)
		test_same();
	else if (strcmp(c, "segv") == 0)
		test_crash("crash_proj_segv", ",\"boom\":1",
		    "died of signal 11 (SIGSEGV", "SIGSEGV", 3000);
	else if (strcmp(c, "abort") == 0)
		test_crash("crash_proj_abort", ",\"boom\":1",
		    "died of signal 6 (SIGABRT", "SIGABRT", 3000);
	else if (strcmp(c, "loop") == 0)
		test_crash("crash_proj_loop", ",\"loop\":1",
		    "did not return within", "exit code 75", 700);
	else if (strcmp(c, "stop") == 0)
		test_stop();
	else if (strcmp(c, "refused") == 0)
		test_refused();
	else if (strcmp(c, "backoff") == 0)
		test_backoff();
	else if (strcmp(c, "nohost") == 0)
		test_nohost();
	else if (strcmp(c, "auth") == 0)
		test_auth();
	else {
		fprintf(stderr, "unknown case %s\n", c);
		return 2;
	}
	printf("host_isolation_test %s: OK\n", c);
	return 0;
}
