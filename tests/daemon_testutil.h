/*
 * Shared by the tests that run processes (sluiced, the CLI, writers) or swap
 * plugin files: monotonic time, EINTR-safe waits, children that die with
 * the test, killing and reaping, and whole-file read / write / install.
 */
#ifndef SL_DAEMON_TESTUTIL_H
#define SL_DAEMON_TESTUTIL_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

__attribute__((unused)) static int64_t
dt_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

__attribute__((unused)) static void
dt_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

__attribute__((unused)) static pid_t
dt_waitpid(pid_t pid, int *status, int flags)
{
	pid_t r;
	do
		r = waitpid(pid, status, flags);
	while (r < 0 && errno == EINTR);
	return r;
}

/* Wait for pid up to ms; true with *status filled if it exited. */
__attribute__((unused)) static bool
dt_wait_exit(pid_t pid, int ms, int *status)
{
	int64_t end = dt_now_ms() + ms;
	for (;;) {
		pid_t r = dt_waitpid(pid, status, WNOHANG);
		if (r == pid)
			return true;
		if (r < 0 || dt_now_ms() > end)
			return false;
		dt_sleep_ms(10);
	}
}

/* SIGTERM *pid; it must exit with status 0 within ms (reaped, *pid -1). */
__attribute__((unused)) static void
dt_daemon_stop(pid_t *pid, int ms)
{
	int status;
	CHECK(kill(*pid, SIGTERM) == 0);
	CHECK(dt_wait_exit(*pid, ms, &status));
	*pid = -1;
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* In a forked child: die with the parent, so that a test killed by ctest's
 * timeout leaves nothing running. */
__attribute__((unused)) static void
dt_child_setup(pid_t parent)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
}

/* SIGKILL and reap *pid if it is running; *pid becomes -1. */
__attribute__((unused)) static void
dt_kill_and_reap(pid_t *pid)
{
	if (*pid > 0) {
		kill(*pid, SIGKILL);
		dt_waitpid(*pid, NULL, 0);
		*pid = -1;
	}
}

/* Run path with argv as a child (dying with the test) whose output is
 * appended to log. @return its pid. */
__attribute__((unused)) static pid_t
dt_spawn_logged(const char *log, const char *path, char *const argv[])
{
	pid_t parent = getpid();
	int   fd     = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	CHECK(fd >= 0);
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		dt_child_setup(parent); /* the death signal survives exec */
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		execv(path, argv);
		_exit(127);
	}
	close(fd);
	return pid;
}

/*
 * Start sluiced -c cfg_path as a child that dies with the test, stdin from
 * /dev/null, stdout and stderr appended to log_path; with `supervise`, as
 * `sluiced --supervise`, and in a sanitizer build with ASan's own handlers
 * of fatal signals off (the daemon's guard reports a plugin's fault, and
 * the supervisor restarts it). @return its pid.
 */
__attribute__((unused)) static pid_t
dt_daemon_spawn_ex(const char *cfg_path, const char *log_path, bool supervise)
{
	pid_t parent = getpid(), pid;
	int   logfd
	    = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

	CHECK(logfd >= 0);
	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		dt_child_setup(parent);
		int nul = open("/dev/null", O_RDONLY);
		dup2(nul, STDIN_FILENO);
		dup2(logfd, STDOUT_FILENO);
		dup2(logfd, STDERR_FILENO);
		if (supervise) {
			setenv("ASAN_OPTIONS",
			    "handle_segv=0:handle_abort=0:handle_sigbus=0:"
			    "handle_sigill=0:handle_sigfpe=0:"
			    "allow_user_segv_handler=1",
			    1);
			execl(SL_BUILD_DIR "/sluiced", "sluiced", "--supervise",
			    "-c", cfg_path, (char *) NULL);
		} else {
			execl(SL_BUILD_DIR "/sluiced", "sluiced", "-c",
			    cfg_path, (char *) NULL);
		}
		_exit(127);
	}
	close(logfd);
	return pid;
}

/* dt_daemon_spawn_ex, not supervised. */
__attribute__((unused)) static pid_t
dt_daemon_spawn(const char *cfg_path, const char *log_path)
{
	return dt_daemon_spawn_ex(cfg_path, log_path, false);
}

#ifdef SLUICE_CLIENT_H /* for the tests that use the client library */
/* Open *cl on url (when it is not open yet; with tls, which may be NULL)
 * and wait, at most ms, until the daemon answers status. @return false
 * when it did not. */
__attribute__((unused)) static bool
dt_wait_answer_tls(
    const char *url, const sl_tls_options *tls, sl_client **cl, int ms)
{
	int64_t end = dt_now_ms() + ms;
	for (;;) {
		char *st = NULL;
		if (*cl == NULL
		    && sl_client_open_tls(url, 10000, tls, cl) != SL_OK)
			*cl = NULL;
		if (*cl != NULL && sl_client_status(*cl, &st) == SL_OK) {
			sl_client_free(st);
			return true;
		}
		if (dt_now_ms() > end)
			return false;
		dt_sleep_ms(20);
	}
}

/* dt_wait_answer_tls without TLS. */
__attribute__((unused)) static bool
dt_wait_answer(const char *url, sl_client **cl, int ms)
{
	return dt_wait_answer_tls(url, NULL, cl, ms);
}
#endif

/* A daemon test's places: dir (the test's temp dir), its resources.yaml
 * (cfg), the daemon's log and the API's ipc:// url in it. */
__attribute__((unused)) static void
dt_test_paths(char dir[4096], char cfg[4200], char log[4200], char url[4200])
{
	snprintf(dir, 4096, "%s", tu_tmpdir());
	snprintf(cfg, 4200, "%s/resources.yaml", dir);
	snprintf(log, 4200, "%s/sluiced.log", dir);
	snprintf(url, 4200, "ipc://%s/api.ipc", dir);
}

/*
 * The head of a daemon test's resources.yaml into out: data in dir/data,
 * plugins from plugin_dir, the API on api_url and the feed on
 * ipc://dir/pub.ipc, log_level info, an event store of log_map with sync
 * off. The caller appends its own keys (tenants, limits ...) from the
 * returned length.
 */
__attribute__((unused)) static size_t
dt_config_head(char *out, size_t len, const char *dir,
    const char *plugin_dir, const char *api_url, const char *log_map)
{
	int n = snprintf(out, len,
	    "data_dir: %s/data\n"
	    "plugin_dir: %s\n"
	    "log_level: info\n"
	    "endpoints:\n"
	    "  api: %s\n"
	    "  pub: ipc://%s/pub.ipc\n"
	    "event_store:\n"
	    "  map_size: %s\n"
	    "  sync: false\n",
	    dir, plugin_dir, api_url, dir, log_map);
	CHECK(n > 0 && (size_t) n < len);
	return (size_t) n;
}

/* xorshift64*: deterministic per seed, no shared state. */
__attribute__((unused)) static uint32_t
dt_rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return (uint32_t) ((*s * 2685821657736338717ULL) >> 32);
}

/* Lines in a file (acknowledgement logs); 0 if it does not exist yet. */
__attribute__((unused)) static size_t
dt_count_lines(const char *path)
{
	FILE  *f = fopen(path, "r");
	size_t n = 0;
	int    c;
	if (f == NULL)
		return 0;
	while ((c = getc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* Copy a file (a daemon's log, say) to stderr between title lines. */
__attribute__((unused)) static void
dt_dump_file(const char *path, const char *title)
{
	FILE *f = fopen(path, "r");
	char  line[2048];
	if (f == NULL)
		return;
	fprintf(stderr, "---- %s (%s) ----\n", title, path);
	while (fgets(line, sizeof(line), f) != NULL)
		fputs(line, stderr);
	fprintf(stderr, "---- end of %s ----\n", title);
	fclose(f);
}

/* Fail the test (from the test process), showing the daemon's log. */
#define DT_FAIL_LOG(log_path, ...)                                            \
	do {                                                                  \
		fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);               \
		fprintf(stderr, __VA_ARGS__);                                 \
		fputc('\n', stderr);                                          \
		dt_dump_file(log_path, "sluiced log");                        \
		exit(1);                                                      \
	} while (0)

/* The whole file, malloc'ed (caller frees) and NUL-terminated; its length
 * without the NUL in *len. */
__attribute__((unused)) static char *
dt_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	CHECK(f != NULL);
	CHECK(fseek(f, 0, SEEK_END) == 0);
	long n = ftell(f);
	CHECK(n >= 0);
	rewind(f);
	char *buf = malloc((size_t) n + 1);
	CHECK(buf != NULL);
	CHECK(fread(buf, 1, (size_t) n, f) == (size_t) n);
	fclose(f);
	buf[n] = '\0';
	*len   = (size_t) n;
	return buf;
}

/* Whether the file at path holds text, waiting up to ms for it (a log
 * line written a moment after what caused it). */
__attribute__((unused)) static bool
dt_wait_file_has(const char *path, const char *text, int ms)
{
	int64_t end = dt_now_ms() + ms;
	for (;;) {
		size_t len;
		char  *s     = dt_slurp(path, &len);
		bool   found = s != NULL && strstr(s, text) != NULL;
		free(s);
		if (found || dt_now_ms() > end)
			return found;
		dt_sleep_ms(20);
	}
}

/* Write exactly data[0..len) to path, truncating it. */
__attribute__((unused)) static void
dt_write_bytes(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0);
	CHECK(write(fd, data, len) == (ssize_t) len);
	CHECK(close(fd) == 0);
}

/* Put data at path the way a careful build does: write a temp file (tmp,
 * or "<path>.tmp" when NULL: not *.so, so watchers ignore it), rename. */
__attribute__((unused)) static void
dt_put_file(const char *path, const char *tmp, const void *data, size_t len)
{
	char *def = NULL;

	if (tmp == NULL) {
		size_t n = strlen(path) + sizeof(".tmp");

		def = malloc(n);
		CHECK(def != NULL);
		snprintf(def, n, "%s.tmp", path);
		tmp = def;
	}
	dt_write_bytes(tmp, data, len);
	CHECK(rename(tmp, path) == 0);
	free(def);
}

/* Copy the file src to dst through tmp (as dt_put_file). */
__attribute__((unused)) static void
dt_install(const char *src, const char *tmp, const char *dst)
{
	size_t len;
	char  *data = dt_slurp(src, &len);
	CHECK(len > 0);
	dt_put_file(dst, tmp, data, len);
	free(data);
}

#endif
