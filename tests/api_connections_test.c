/*
 * The API's connection limits (issue 18 item 5, docs/security.md), on a
 * real sluiced with an ipc:// API and raw AF_UNIX clients speaking SP by
 * hand (so the test sees exactly when the daemon closes a connection):
 *  1. limits.idle_timeout_ms 300: a connection with no request is closed
 *     after about 300 ms, one that sends a request every 100 ms is not
 *     (until it stops), and a client library connection that sat idle
 *     past it answers its next request (req0 redials), and a transient
 *     run lives while polled every 100 ms and ends with its connection
 *     once left idle;
 *  2. limits.max_connections 4: a 5th connection is closed as it comes,
 *     the first 4 are still served, and once one of them goes a new one
 *     is served again;
 *  3. half-open connections: under a hard open files limit of 512, 2,000
 *     raw connections that send nothing or half an SP header: a client
 *     connected before keeps getting status and commits acknowledged,
 *     a hot reload made meanwhile is tried again until descriptors are
 *     free (NNG closes the half-open ones after its 10 s negotiation
 *     timeout) and goes through, and once the flood is gone another
 *     reload and a new client work.
 */
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <jansson.h>
#include <sluice/client.h>

#include "daemon_testutil.h"

static char  dir[4096], cfg[4200], logf[4200], api[4400];
static char  sock[4300], pdir[4300], plugin[4400];
static pid_t daemon_pid = -1;

/* account_details' projection (plugins/account_details.c) */
#define PROJ_ID "8a2f3c1e-5b7d-4e9a-9c11-2d4e6f8a0b13"

static void
cleanup(void)
{
	dt_kill_and_reap(&daemon_pid);
}

/* ---- raw SP over ipc: 8-byte header, then frames of a type byte (1)
 * and a 64-bit big-endian length ---- */

static int
raw_connect(bool nonblock)
{
	struct sockaddr_un a;
	int                fd = socket(AF_UNIX,
	                   SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0)
		return -1;
	memset(&a, 0, sizeof(a));
	a.sun_family = AF_UNIX;
	CHECK(strlen(sock) < sizeof(a.sun_path));
	memcpy(a.sun_path, sock, strlen(sock) + 1);
	if (connect(fd, (struct sockaddr *) &a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Read exactly len bytes within ms. @return false on EOF, error or
 * timeout. */
static bool
read_full(int fd, void *buf, size_t len, int ms)
{
	int64_t end = dt_now_ms() + ms;
	size_t  got = 0;
	while (got < len) {
		struct pollfd p    = { .fd = fd, .events = POLLIN };
		int64_t       left = end - dt_now_ms();
		if (left <= 0 || poll(&p, 1, (int) left) <= 0)
			return false;
		ssize_t n = read(fd, (char *) buf + got, len - got);
		if (n <= 0)
			return false;
		got += (size_t) n;
	}
	return true;
}

/* The SP header of a req0 peer, and the daemon's (rep0) back. */
static bool
raw_handshake(int fd)
{
	const unsigned char mine[8] = { 0, 'S', 'P', 0, 0, 0x30, 0, 0 };
	unsigned char       theirs[8];
	if (write(fd, mine, 8) != 8 || !read_full(fd, theirs, 8, 5000))
		return false;
	return theirs[1] == 'S' && theirs[2] == 'P' && theirs[5] == 0x31;
}

/* One request (a req0 id and a msgpack nil, which the daemon answers
 * with an error) and its reply. @return false if none came in 5 s. */
static bool
raw_request(int fd, uint32_t id)
{
	unsigned char f[14] = { 1 };
	uint64_t      len   = 5;
	for (int i = 0; i < 8; i++)
		f[1 + i] = (unsigned char) (len >> (56 - 8 * i));
	id |= 0x80000000u;
	for (int i = 0; i < 4; i++)
		f[9 + i] = (unsigned char) (id >> (24 - 8 * i));
	f[13] = 0xc0;
	if (write(fd, f, sizeof(f)) != (ssize_t) sizeof(f))
		return false;
	unsigned char h[9], body[4096];
	if (!read_full(fd, h, 9, 5000) || h[0] != 1)
		return false;
	uint64_t n = 0;
	for (int i = 0; i < 8; i++)
		n = n << 8 | h[1 + i];
	if (n < 4 || n > sizeof(body) || !read_full(fd, body, n, 5000))
		return false;
	uint32_t rid = (uint32_t) body[0] << 24 | (uint32_t) body[1] << 16
	    | (uint32_t) body[2] << 8 | body[3];
	return rid == id;
}

/* Wait up to ms for the daemon to close fd. @return ms it took, -1 if it
 * stayed open. */
static int64_t
raw_wait_closed(int fd, int ms)
{
	int64_t t0 = dt_now_ms(), end = t0 + ms;
	for (;;) {
		struct pollfd p    = { .fd = fd, .events = POLLIN };
		int64_t       left = end - dt_now_ms();
		if (left <= 0)
			return -1;
		if (poll(&p, 1, (int) left) > 0) {
			char    b[256];
			ssize_t n = read(fd, b, sizeof(b));
			if (n == 0 || (n < 0 && errno != EAGAIN))
				return dt_now_ms() - t0;
		}
	}
}

/* A new raw connection that is served, retried until ms: @return fd. */
static int
raw_served(int ms, uint32_t id)
{
	int64_t end = dt_now_ms() + ms;
	for (;;) {
		int fd = raw_connect(false);
		if (fd >= 0 && raw_handshake(fd) && raw_request(fd, id))
			return fd;
		if (fd >= 0)
			close(fd);
		if (dt_now_ms() > end)
			DT_FAIL_LOG(
			    logf, "no connection was served in %d ms", ms);
		dt_sleep_ms(20);
	}
}

/* ---- the daemon ---- */

static void
write_config(const char *limits)
{
	char   text[8192];
	size_t n = dt_config_head(text, sizeof(text), dir, pdir, api, "64MiB");
	snprintf(text + n, sizeof(text) - n,
	    "tenants:\n"
	    "  - id: t1\n"
	    "limits:\n"
	    "%s",
	    limits);
	dt_write_bytes(cfg, text, strlen(text));
}

/* sluiced under a hard open files limit of nofile (0: the test's own),
 * as dt_daemon_spawn does otherwise. */
static void
daemon_start(rlim_t nofile)
{
	pid_t parent = getpid();
	int   logfd
	    = open(logf, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	CHECK(logfd >= 0);
	fflush(NULL);
	daemon_pid = fork();
	CHECK(daemon_pid >= 0);
	if (daemon_pid == 0) {
		dt_child_setup(parent);
		int nul = open("/dev/null", O_RDONLY);
		dup2(nul, STDIN_FILENO);
		dup2(logfd, STDOUT_FILENO);
		dup2(logfd, STDERR_FILENO);
		if (nofile > 0) {
			struct rlimit rl = { nofile, nofile };
			if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
				_exit(126);
		}
		execl(SL_BUILD_DIR "/sluiced", "sluiced", "-c", cfg,
		    (char *) NULL);
		_exit(127);
	}
	close(logfd);
}

static void
daemon_stop(void)
{
	int st;
	kill(daemon_pid, SIGTERM);
	if (!dt_wait_exit(daemon_pid, 20000, &st))
		DT_FAIL_LOG(logf, "the daemon did not stop");
	daemon_pid = -1;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		DT_FAIL_LOG(logf, "the daemon exited with %d", st);
}

static bool
log_has(const char *what)
{
	size_t len;
	char  *text = dt_slurp(logf, &len);
	bool   yes  = strstr(text, what) != NULL;
	free(text);
	return yes;
}

/* ---- 1. idle connections ---- */

static json_t *status_json(sl_client *c);

/* status's api.<key> through a new client. */
static long long
api_stat(const char *key)
{
	sl_client *c = NULL;
	CHECK_EQ(sl_client_open(api, 10000, &c), SL_OK);
	json_t *st = status_json(c);
	CHECK(st != NULL);
	json_t   *v = json_object_get(json_object_get(st, "api"), key);
	long long n = json_is_integer(v) ? json_integer_value(v) : -1;
	json_decref(st);
	sl_client_close(c);
	return n;
}

static void
test_idle(void)
{
	write_config("  idle_timeout_ms: 300\n");
	daemon_start(0);
	int fd = raw_served(20000, 1);

	/* served once, then idle: closed after about 300 ms */
	int64_t ms = raw_wait_closed(fd, 5000);
	if (ms < 0)
		DT_FAIL_LOG(logf, "an idle connection stayed open 5 s");
	fprintf(
	    stderr, "idle connection closed after %lld ms\n", (long long) ms);
	CHECK(ms >= 200);
	close(fd);

	/* one that never sent a request, too */
	fd = raw_connect(false);
	CHECK(fd >= 0 && raw_handshake(fd));
	ms = raw_wait_closed(fd, 5000);
	CHECK(ms >= 200);
	close(fd);

	/* a request every 100 ms keeps it open */
	fd          = raw_served(5000, 2);
	int64_t  t0 = dt_now_ms();
	uint32_t id = 3;
	while (dt_now_ms() - t0 < 1500) {
		dt_sleep_ms(100);
		if (!raw_request(fd, id++))
			DT_FAIL_LOG(logf, "an active connection was closed");
	}
	CHECK(raw_wait_closed(fd, 5000) >= 0);
	close(fd);

	/* the client library: idle past the timeout, its next request
	 * goes on a new connection */
	sl_client *c  = NULL;
	char      *st = NULL;
	CHECK_EQ(sl_client_open(api, 10000, &c), SL_OK);
	CHECK_EQ(sl_client_status(c, &st), SL_OK);
	sl_client_free(st);
	dt_sleep_ms(900);
	t0 = dt_now_ms();
	CHECK_EQ(sl_client_status(c, &st), SL_OK);
	sl_client_free(st);
	fprintf(stderr, "status after an idle close: %lld ms\n",
	    (long long) (dt_now_ms() - t0));

	/* a transient run lives while it is polled more often than the
	 * timeout, and ends with its connection when it is not */
	uint64_t        h;
	sl_query_result r;
	CHECK_EQ(sl_client_query_start(c, "t1", PROJ_ID, &h), SL_OK);
	t0 = dt_now_ms();
	while (dt_now_ms() - t0 < 1000) {
		dt_sleep_ms(100);
		if (sl_client_query_poll(c, h, NULL, &r) != SL_OK)
			DT_FAIL_LOG(logf, "a polled transient run ended");
		sl_query_result_free(&r);
	}
	dt_sleep_ms(900);
	CHECK_EQ(sl_client_query_poll(c, h, NULL, &r), SL_ENOTFOUND);
	sl_client_close(c);
	if (!log_has("no request for 300 ms (limits.idle_timeout_ms)"))
		DT_FAIL_LOG(logf, "no log line for an idle close");
	/* status counts them */
	CHECK_EQ(api_stat("idle_timeout_ms"), 300);
	CHECK(api_stat("idle_closed") >= 3);
	daemon_stop();
}

/* ---- 2. at most 4 connections ---- */

static void
test_max(void)
{
	int fds[4];
	write_config("  idle_timeout_ms: 0\n  max_connections: 4\n");
	daemon_start(0);
	for (int i = 0; i < 4; i++)
		fds[i] = raw_served(20000, 10 + (uint32_t) i);

	/* NNG completes the SP header before the daemon sees the pipe
	 * (ADD_PRE), so the 5th gets the header, then is closed */
	int fd = raw_connect(false);
	CHECK(fd >= 0);
	if (raw_handshake(fd))
		CHECK(raw_wait_closed(fd, 3000) >= 0);
	close(fd);
	for (int i = 0; i < 4; i++)
		if (!raw_request(fds[i], 20 + (uint32_t) i))
			DT_FAIL_LOG(logf, "connection %d not served", i);
	if (!log_has("limits.max_connections"))
		DT_FAIL_LOG(logf, "no warning for a refused connection");

	/* one goes: a new one is served (its REM_POST runs on NNG's
	 * reaper, so retried) */
	close(fds[0]);
	fds[0] = raw_served(5000, 30);
	for (int i = 0; i < 4; i++) {
		CHECK(raw_request(fds[i], 40 + (uint32_t) i));
		close(fds[i]);
	}
	/* status counts the refused one (once the 4 are gone: a client of
	 * its own is a connection too) */
	int64_t end = dt_now_ms() + 5000;
	long long refused;
	while ((refused = api_stat("connections_refused")) < 1
	    && dt_now_ms() < end)
		dt_sleep_ms(50);
	CHECK(refused >= 1);
	CHECK_EQ(api_stat("max_connections"), 4);
	daemon_stop();
}

/* ---- 3. half-open connections under a low open files limit ---- */

static json_t *
status_json(sl_client *c)
{
	char *text = NULL;
	if (sl_client_status(c, &text) != SL_OK)
		return NULL;
	json_t *j = json_loads(text, 0, NULL);
	sl_client_free(text);
	return j;
}

/* The version of plugin the daemon runs (its status), NULL if none. */
static bool
runs_version(sl_client *c, const char *version)
{
	json_t *st = status_json(c);
	bool    ok = false;
	size_t  i;
	json_t *p;
	if (st == NULL)
		return false;
	json_array_foreach(json_object_get(st, "plugins"), i, p)
	{
		const char *f = json_string_value(json_object_get(p, "file"));
		const char *v
		    = json_string_value(json_object_get(p, "version"));
		if (f != NULL && strcmp(f, plugin) == 0 && v != NULL
		    && strcmp(v, version) == 0)
			ok = true;
	}
	json_decref(st);
	return ok;
}

/* status and a commit on c, each retried until 3 s: @return ms for
 * both. */
static int64_t
served(sl_client *c, int n)
{
	int64_t t0 = dt_now_ms(), end = t0 + 3000;
	char    stream[64], *st       = NULL;
	snprintf(stream, sizeof(stream), "s-%d", n);
	sl_new_event ev = { .type = "Ping", .content_json = "{}" };
	while (sl_client_status(c, &st) != SL_OK)
		if (dt_now_ms() > end)
			DT_FAIL_LOG(logf, "no status answer in 3 s (flood)");
	sl_client_free(st);
	while (sl_client_commit(c, "t1", stream, SL_EXPECT_ANY, &ev, 1, NULL)
	    != SL_OK)
		if (dt_now_ms() > end)
			DT_FAIL_LOG(logf, "no commit acknowledged in 3 s");
	return dt_now_ms() - t0;
}

#define FLOOD 2000

static void
test_half_open(void)
{
	static int    flood[FLOOD];
	int           n = 0, want = FLOOD;
	struct rlimit rl;

	/* the test holds the flood's ends: its own soft limit up */
	CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < FLOOD + 200)
		want = rl.rlim_max > 400 ? (int) rl.rlim_max - 200 : 100;
	rl.rlim_cur = rl.rlim_max;
	CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);

	write_config("  idle_timeout_ms: 60000\n");
	daemon_start(512);
	sl_client *c = NULL;
	if (!dt_wait_answer(api, &c, 20000))
		DT_FAIL_LOG(logf, "the daemon did not answer");
	if (!runs_version(c, "1.0.0"))
		DT_FAIL_LOG(logf, "the plugin is not running");
	served(c, 0);

	/* Open as many as the daemon's backlog takes within 3 s; half of
	 * them send half an SP header. */
	int64_t end = dt_now_ms() + 3000;
	while (n < want && dt_now_ms() < end) {
		int fd = raw_connect(true);
		if (fd < 0) {
			dt_sleep_ms(5); /* the backlog is full */
			continue;
		}
		if (n % 2 == 1)
			(void) !write(fd, "\0SP\0", 4);
		flood[n++] = fd;
	}
	fprintf(stderr, "half-open connections opened: %d\n", n);
	CHECK(n >= 400); /* enough to exhaust 512 descriptors */

	/* A hot reload meanwhile: its copy of the file cannot be opened
	 * while the flood holds every descriptor; the watcher tries again
	 * and it goes through once NNG closed the half-open ones (10 s).
	 * For at least 12 s the connected client is served. */
	dt_install(SL_TEST_PLUGIN_DIR "/account_details_v2.so", NULL, plugin);
	int64_t t0 = dt_now_ms(), worst = 0, reloaded = -1;
	for (int i = 1; reloaded < 0 || dt_now_ms() - t0 < 12000; i++) {
		int64_t ms = served(c, i);
		worst      = ms > worst ? ms : worst;
		if (reloaded < 0 && runs_version(c, "2.0.0"))
			reloaded = dt_now_ms() - t0;
		if (reloaded < 0 && dt_now_ms() - t0 > 30000)
			DT_FAIL_LOG(logf, "no reload in 30 s of flood");
		dt_sleep_ms(200);
	}
	fprintf(stderr,
	    "flood: worst status + commit %lld ms, reloaded after %lld ms%s\n",
	    (long long) worst, (long long) reloaded,
	    log_has("out of file descriptors; trying again later")
	        ? " (retried for want of descriptors)"
	        : "");

	/* NNG closed the half-open ones it had accepted (10 s) */
	int closed = 0;
	for (int i = 0; i < n; i++) {
		char    b[16];
		ssize_t r;
		/* the daemon's SP header first, if it got that far */
		while ((r = read(flood[i], b, sizeof(b))) > 0)
			;
		closed += r == 0 || (r < 0 && errno != EAGAIN);
	}
	fprintf(
	    stderr, "closed by the daemon after 12 s: %d of %d\n", closed, n);
	CHECK(closed > 0);
	for (int i = 0; i < n; i++)
		close(flood[i]);

	/* the flood gone: another reload and a new client work */
	dt_install(SL_TEST_PLUGIN_DIR "/account_details_v3.so", NULL, plugin);
	end = dt_now_ms() + 20000;
	while (!runs_version(c, "3.0.0"))
		if (dt_now_ms() > end)
			DT_FAIL_LOG(logf, "the plugin was not reloaded");
		else
			dt_sleep_ms(50);
	sl_client *c2 = NULL;
	if (!dt_wait_answer(api, &c2, 5000))
		DT_FAIL_LOG(logf, "a new client was not served");
	sl_client_close(c2);
	sl_client_close(c);
	daemon_stop();
}

int
main(void)
{
	char url[4200];
	dt_test_paths(dir, cfg, logf, url);
	snprintf(sock, sizeof(sock), "%s/api.ipc", dir);
	snprintf(api, sizeof(api), "ipc://%s", sock);
	snprintf(pdir, sizeof(pdir), "%s/plugins", dir);
	snprintf(plugin, sizeof(plugin), "%s/account_details.so", pdir);
	CHECK(mkdir(pdir, 0755) == 0);
	dt_install(SL_PLUGIN_DIR "/account_details.so", NULL, plugin);
	atexit(cleanup);
	/* writes to a connection the daemon closed fail, not kill */
	signal(SIGPIPE, SIG_IGN);

	test_idle();
	test_max();
	test_half_open();
	printf("api_connections_test: ok\n");
	return 0;
}
