/*
 * The daemon's manners (issue 19 item 3), on a real sluiced:
 *  1. systemd's notify protocol: with $NOTIFY_SOCKET (a datagram socket
 *     of the test's) and $WATCHDOG_USEC, the daemon sends READY=1 once
 *     it serves, WATCHDOG=1 at half the period, RELOADING=1 then READY=1
 *     around a SIGHUP and STOPPING=1 on SIGTERM;
 *  2. SIGHUP reads resources.yaml again: a lower limits.max_request_bytes
 *     refuses a commit that went through before (ETOOBIG), log_level
 *     debug shows, a plugin copied into plugin_dir with hot_reload off is
 *     loaded, a changed endpoints.api is named as taking effect at the
 *     next start (and the API stays where it was);
 *  3. a SIGHUP with a file that does not load changes nothing: logged,
 *     the daemon serves on with the limits it had;
 *  4. under --supervise, SIGHUP reaches the daemon (it reconfigures, it
 *     is not restarted), and SIGTERM still stops both with status 0;
 *  5. --log-format json: every line of the log is a JSON object with
 *     ts, level, subsys and msg; --log-format xml is a usage error (2).
 */
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <jansson.h>
#include <sluice/client.h>

#include "daemon_testutil.h"

static char  dir[4096], cfg[4200], logf[4200], api[4200];
static char  pdir[4300], nsock[4300];
static pid_t daemon_pid = -1;
static int   nfd        = -1;

static void
cleanup(void)
{
	dt_kill_and_reap(&daemon_pid);
}

/* resources.yaml: hot reload off (only SIGHUP rescans), the given
 * log level, request limit and API url. */
static void
write_config(const char *level, const char *max_request, const char *url,
    const char *extra)
{
	char   text[8192];
	size_t n = dt_config_head(text, sizeof(text), dir, pdir, url, "64MiB");
	int    m = snprintf(text + n, sizeof(text) - n,
	       "log_level: %s\n"
	       "hot_reload: false\n"
	       "limits:\n"
	       "  max_request_bytes: %s\n"
	       "tenants:\n"
	       "  - id: t1\n"
	       "%s",
	       level, max_request, extra);
	CHECK(m > 0 && (size_t) m < sizeof(text) - n);
	/* dt_config_head wrote log_level: info first: drop that line */
	char *dup = strstr(text, "log_level: info\n");
	CHECK(dup != NULL && dup < text + n);
	memmove(dup, dup + 16, strlen(dup + 16) + 1);
	char tmp[4400];
	snprintf(tmp, sizeof(tmp), "%s.tmp", cfg);
	dt_put_file(cfg, tmp, text, strlen(text));
}

/* The next notify datagram within ms that starts with want (others, e.g.
 * WATCHDOG=1 while waiting for READY=1, are skipped). */
static bool
notified(const char *want, int ms)
{
	int64_t end = dt_now_ms() + ms;
	for (;;) {
		int64_t left = end - dt_now_ms();
		struct pollfd p = { .fd = nfd, .events = POLLIN };
		if (left <= 0 || poll(&p, 1, (int) left) <= 0)
			return false;
		char    buf[512];
		ssize_t n = recv(nfd, buf, sizeof(buf) - 1, 0);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		if (strncmp(buf, want, strlen(want)) == 0)
			return true;
	}
}

static bool
log_has(const char *text, int ms)
{
	return dt_wait_file_has(logf, text, ms);
}

static int
commit_bytes(sl_client *c, size_t content_len)
{
	char *json = malloc(content_len + 16);
	CHECK(json != NULL);
	int n = snprintf(json, content_len + 16, "{\"pad\":\"");
	memset(json + n, 'x', content_len);
	strcpy(json + n + content_len, "\"}");
	sl_new_event ev = { .type = "Padded", .content_json = json };
	int rc = sl_client_commit(c, "t1", "pads", SL_EXPECT_ANY, &ev, 1, NULL);
	free(json);
	return rc;
}

static bool
plugin_loaded(sl_client *c)
{
	char *json = NULL;
	CHECK_EQ(sl_client_plugins(c, &json), SL_OK);
	bool yes = strstr(json, "account_details") != NULL;
	sl_client_free(json);
	return yes;
}

static void
test_notify_and_sighup(void)
{
	char other[4400];
	snprintf(other, sizeof(other), "ipc://%s/elsewhere.ipc", dir);
	write_config("info", "4MiB", api, "");
	setenv("NOTIFY_SOCKET", nsock, 1);
	setenv("WATCHDOG_USEC", "300000", 1);
	unsetenv("WATCHDOG_PID");
	daemon_pid = dt_daemon_spawn(cfg, logf);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");

	CHECK(notified("READY=1", 15000));
	sl_client *c = NULL;
	CHECK(dt_wait_answer(api, &c, 5000));
	CHECK(notified("WATCHDOG=1", 2000));
	CHECK(notified("WATCHDOG=1", 2000));
	CHECK_EQ(commit_bytes(c, 3000), SL_OK);
	CHECK(!plugin_loaded(c));

	/* a plugin appears; the limits, the level and the API url change */
	char src[4400], dst[4400], tmp[4400];
	snprintf(src, sizeof(src), "%s/account_details.so", SL_PLUGIN_DIR);
	snprintf(dst, sizeof(dst), "%s/account_details.so", pdir);
	snprintf(tmp, sizeof(tmp), "%s/.account_details.tmp", dir);
	dt_install(src, tmp, dst);
	write_config("debug", "1KiB", other,
	    "plugins:\n  - file: elsewhere.so\n    isolation: process\n");
	CHECK(kill(daemon_pid, SIGHUP) == 0);
	CHECK(notified("RELOADING=1", 5000));
	CHECK(notified("READY=1", 5000));
	CHECK(log_has("limits.max_request_bytes: 4194304 -> 1024", 5000));
	CHECK(log_has("log_level: info -> debug", 5000));
	CHECK(log_has("endpoints.api changed: it takes effect at the next "
	              "start",
	    5000));
	CHECK(log_has("plugins changed: it takes effect at the next start",
	    5000));
	CHECK(log_has("2 at the next start", 5000));
	CHECK_EQ(commit_bytes(c, 3000), SL_ETOOBIG);
	CHECK_EQ(commit_bytes(c, 100), SL_OK);
	int64_t end = dt_now_ms() + 10000;
	while (!plugin_loaded(c) && dt_now_ms() < end)
		dt_sleep_ms(50);
	CHECK(plugin_loaded(c));
	CHECK(kill(daemon_pid, 0) == 0); /* SIGHUP did not end it */

	/* a file that does not load: nothing changes */
	char tmp2[4400];
	snprintf(tmp2, sizeof(tmp2), "%s.tmp", cfg);
	const char *bad = "data_dir: [not, a, path\n";
	dt_put_file(cfg, tmp2, bad, strlen(bad));
	CHECK(kill(daemon_pid, SIGHUP) == 0);
	CHECK(log_has("nothing changed", 5000));
	CHECK(notified("READY=1", 5000));
	CHECK_EQ(commit_bytes(c, 3000), SL_ETOOBIG);
	CHECK_EQ(commit_bytes(c, 100), SL_OK);
	sl_client_close(c);

	CHECK(kill(daemon_pid, SIGTERM) == 0);
	CHECK(notified("STOPPING=1", 5000));
	int status;
	CHECK(dt_wait_exit(daemon_pid, 20000, &status));
	daemon_pid = -1;
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void
test_supervised_sighup(void)
{
	write_config("info", "4MiB", api, "");
	daemon_pid = dt_daemon_spawn_ex(cfg, logf, true);
	sl_client *c = NULL;
	CHECK(dt_wait_answer(api, &c, 15000));
	write_config("info", "1KiB", api, "");
	CHECK(kill(daemon_pid, SIGHUP) == 0);
	int64_t end = dt_now_ms() + 10000;
	while (commit_bytes(c, 3000) != SL_ETOOBIG && dt_now_ms() < end)
		dt_sleep_ms(50);
	CHECK_EQ(commit_bytes(c, 3000), SL_ETOOBIG);
	sl_client_close(c);
	dt_daemon_stop(&daemon_pid, 20000);
	size_t len;
	char  *log = dt_slurp(logf, &len);
	CHECK(log != NULL);
	/* one daemon all along: started once, never again */
	char *first = strstr(log, "sluiced started (pid");
	CHECK(first != NULL && strstr(first + 1, "sluiced started (pid") == NULL);
	free(log);
}

/* sluiced with extra arguments before -c cfg, its output into logf. */
static pid_t
spawn_args(const char *a1, const char *a2)
{
	pid_t parent = getpid();
	int   fd = open(logf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		dt_child_setup(parent);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		execl(SL_BUILD_DIR "/sluiced", "sluiced", a1, a2, "-c", cfg,
		    (char *) NULL);
		_exit(127);
	}
	close(fd);
	return pid;
}

static void
test_json_log(void)
{
	int status;
	daemon_pid = spawn_args("--log-format", "xml");
	CHECK(dt_wait_exit(daemon_pid, 10000, &status));
	daemon_pid = -1;
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 2);

	write_config("info", "4MiB", api, "");
	daemon_pid = spawn_args("--log-format", "json");
	sl_client *c = NULL;
	CHECK(dt_wait_answer(api, &c, 15000));
	sl_client_close(c);
	dt_daemon_stop(&daemon_pid, 20000);

	FILE *f = fopen(logf, "r");
	CHECK(f != NULL);
	char line[4096];
	int  n = 0;
	bool ready = false;
	while (fgets(line, sizeof(line), f) != NULL) {
		json_error_t e;
		json_t      *j = json_loads(line, 0, &e);
		if (j == NULL)
			fprintf(stderr, "not JSON: %s", line);
		CHECK(j != NULL && json_is_object(j));
		CHECK(json_is_string(json_object_get(j, "ts")));
		CHECK(json_is_string(json_object_get(j, "level")));
		CHECK(json_is_string(json_object_get(j, "subsys")));
		const char *msg = json_string_value(json_object_get(j, "msg"));
		CHECK(msg != NULL);
		if (strncmp(msg, "sluiced ready", 13) == 0)
			ready = true;
		json_decref(j);
		n++;
	}
	fclose(f);
	CHECK(n >= 5);
	CHECK(ready);
}

int
main(void)
{
	dt_test_paths(dir, cfg, logf, api);
	snprintf(pdir, sizeof(pdir), "%s/plugins", dir);
	snprintf(nsock, sizeof(nsock), "%s/notify.sock", dir);
	CHECK(mkdir(pdir, 0700) == 0);
	atexit(cleanup);

	struct sockaddr_un a;
	memset(&a, 0, sizeof(a));
	a.sun_family = AF_UNIX;
	CHECK(strlen(nsock) < sizeof(a.sun_path));
	strcpy(a.sun_path, nsock);
	nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	CHECK(nfd >= 0);
	CHECK(bind(nfd, (struct sockaddr *) &a, sizeof(a)) == 0);

	test_notify_and_sighup();
	test_supervised_sighup();
	test_json_log();
	close(nfd);
	printf("daemon_signals_test: ok\n");
	return 0;
}
