/*
 * Helpers shared by the benchmark programs (see common.h): time, latency
 * percentiles, result lines, worker processes and /proc readings.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

extern char **environ;

#define WORKER_READY_FD 3
#define WORKER_GO_FD    4

uint64_t
bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

void
bench_sleep_ns(uint64_t ns)
{
	struct timespec ts
	    = { (time_t) (ns / 1000000000u), (long) (ns % 1000000000u) };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

void
bench_sleep_until(uint64_t t)
{
	struct timespec ts
	    = { (time_t) (t / 1000000000u), (long) (t % 1000000000u) };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)
	    == EINTR)
		;
}

void
bench_lat_add(bench_lat *l, uint64_t ns)
{
	if (l->n == l->cap) {
		size_t    cap = l->cap != 0 ? l->cap * 2 : 4096;
		uint64_t *v   = realloc(l->v, cap * sizeof(*v));
		if (v == NULL)
			bench_die("out of memory");
		l->v   = v;
		l->cap = cap;
	}
	l->v[l->n++] = ns;
}

void
bench_lat_free(bench_lat *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
	return x < y ? -1 : x > y;
}

uint64_t
bench_lat_pct(bench_lat *l, double p)
{
	if (l->n == 0)
		return 0;
	qsort(l->v, l->n, sizeof(l->v[0]), cmp_u64);
	/* nearest rank */
	size_t i = (size_t) (p / 100.0 * (double) l->n);
	if (i >= l->n)
		i = l->n - 1;
	return l->v[i];
}

void
bench_out(const char *key, double value)
{
	printf("%s %.6g\n", key, value);
	fflush(stdout);
}

void
bench_outf(double value, const char *fmt, ...)
{
	char    key[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(key, sizeof(key), fmt, ap);
	va_end(ap);
	bench_out(key, value);
}

enum { MAX_TRACKED = 128 };
static volatile pid_t tracked[MAX_TRACKED];

void
bench_track(pid_t pid)
{
	for (int i = 0; i < MAX_TRACKED; i++)
		if (tracked[i] == 0) {
			tracked[i] = pid;
			return;
		}
}

void
bench_untrack(pid_t pid)
{
	for (int i = 0; i < MAX_TRACKED; i++)
		if (tracked[i] == pid)
			tracked[i] = 0;
}

/* Async-signal-safe: only kill(). */
static void
kill_tracked(void)
{
	for (int i = 0; i < MAX_TRACKED; i++)
		if (tracked[i] > 0)
			kill(tracked[i], SIGKILL);
}

static void
on_signal(int sig)
{
	kill_tracked();
	_exit(128 + sig);
}

void
bench_handle_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

void
bench_die(const char *fmt, ...)
{
	va_list ap;
	kill_tracked();
	fprintf(stderr, "bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

void
bench_workers_spawn(bench_workers *w, size_t n, char *const argv[])
{
	int ready[2], go[2];
	if (pipe2(ready, O_CLOEXEC) != 0 || pipe2(go, O_CLOEXEC) != 0)
		bench_die("pipe: %s", strerror(errno));
	memset(w, 0, sizeof(*w));
	w->pids     = calloc(n, sizeof(pid_t));
	w->n        = n;
	size_t argc = 0;
	while (argv[argc] != NULL)
		argc++;
	char **av = calloc(argc + 1, sizeof(char *));
	char   idx[32];
	if (w->pids == NULL || av == NULL)
		bench_die("out of memory");
	for (size_t i = 0; i < n; i++) {
		snprintf(idx, sizeof(idx), "%zu", i);
		for (size_t a = 0; a < argc; a++)
			av[a] = strcmp(argv[a], "%i") == 0 ? idx : argv[a];
		posix_spawn_file_actions_t fa;
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_adddup2(
		    &fa, ready[1], WORKER_READY_FD);
		posix_spawn_file_actions_adddup2(&fa, go[0], WORKER_GO_FD);
		int rc = posix_spawn(
		    &w->pids[i], "/proc/self/exe", &fa, NULL, av, environ);
		posix_spawn_file_actions_destroy(&fa);
		if (rc != 0)
			bench_die("spawn worker: %s", strerror(rc));
		bench_track(w->pids[i]);
	}
	free(av);
	close(ready[1]);
	close(go[0]);
	w->ready_rd = ready[0];
	w->go_wr    = go[1];
}

static void workers_release(bench_workers *w, uint64_t start_ns);

/* Wait for every worker's ready byte. */
static void
workers_wait_ready(bench_workers *w)
{
	size_t got = 0;
	char   buf[64];
	while (got < w->n) {
		struct pollfd pfd = { w->ready_rd, POLLIN, 0 };
		int           r   = poll(&pfd, 1, 60000);
		if (r == 0)
			bench_die("workers not ready after 60 s");
		if (r < 0 && errno == EINTR)
			continue;
		ssize_t k = read(w->ready_rd, buf, sizeof(buf));
		if (k <= 0)
			bench_die("a worker died before it was ready");
		got += (size_t) k;
	}
}

void
bench_workers_go(bench_workers *w, uint64_t lead_ns)
{
	workers_wait_ready(w);
	workers_release(w, bench_now_ns() + lead_ns);
}

void
bench_workers_go_at(bench_workers *w, uint64_t start_ns)
{
	uint64_t now;
	workers_wait_ready(w);
	now = bench_now_ns();
	workers_release(w, start_ns > now ? start_ns : now);
}

static void
workers_release(bench_workers *w, uint64_t start_ns)
{
	w->start_ns     = start_ns;
	size_t    bytes = w->n * sizeof(uint64_t);
	uint64_t *t     = malloc(bytes);
	if (t == NULL)
		bench_die("out of memory");
	for (size_t i = 0; i < w->n; i++)
		t[i] = w->start_ns;
	/* One write of <= PIPE_BUF bytes is atomic, so each worker's 8-byte
	 * read takes one whole start time. */
	for (size_t off = 0; off < bytes;) {
		ssize_t k = write(w->go_wr, (char *) t + off, bytes - off);
		if (k <= 0)
			bench_die("write to workers: %s", strerror(errno));
		off += (size_t) k;
	}
	free(t);
}

void
bench_workers_wait(bench_workers *w)
{
	for (size_t i = 0; i < w->n; i++) {
		int st;
		while (waitpid(w->pids[i], &st, 0) < 0 && errno == EINTR)
			;
		bench_untrack(w->pids[i]);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			bench_die("worker %zu failed (status %d)", i, st);
	}
	close(w->ready_rd);
	close(w->go_wr);
	free(w->pids);
	memset(w, 0, sizeof(*w));
}

uint64_t
bench_worker_ready(void)
{
	char     b = 1;
	uint64_t t;
	if (write(WORKER_READY_FD, &b, 1) != 1)
		bench_die("worker: not started by bench_workers_spawn");
	close(WORKER_READY_FD);
	size_t got = 0;
	while (got < sizeof(t)) {
		ssize_t k
		    = read(WORKER_GO_FD, (char *) &t + got, sizeof(t) - got);
		if (k <= 0)
			bench_die("worker: parent went away");
		got += (size_t) k;
	}
	close(WORKER_GO_FD);
	bench_sleep_until(t);
	return t;
}

pid_t
bench_spawn(char *const argv[], const char *log)
{
	posix_spawn_file_actions_t fa;
	pid_t                      pid;
	posix_spawn_file_actions_init(&fa);
	if (log != NULL) {
		posix_spawn_file_actions_addopen(
		    &fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		posix_spawn_file_actions_adddup2(&fa, 1, 2);
	}
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		bench_die("spawn %s: %s", argv[0], strerror(rc));
	bench_track(pid);
	return pid;
}

int
bench_reap(pid_t pid, int timeout_ms)
{
	int st;
	bench_untrack(pid); /* killed below if it does not exit */
	uint64_t end = bench_now_ns() + (uint64_t) timeout_ms * 1000000u;
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return st;
		if (r < 0 && errno != EINTR)
			return -1;
		if (bench_now_ns() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return st;
		}
		bench_sleep_ns(2000000);
	}
}

long long
bench_proc_kb(pid_t pid, const char *file, const char *key)
{
	char path[128], line[256];
	snprintf(path, sizeof(path), "/proc/%ld/%s", (long) pid, file);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	size_t    klen = strlen(key);
	long long v    = -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			v = strtoll(line + klen + 1, NULL, 10) * 1024;
			break;
		}
	}
	fclose(f);
	return v;
}

long long
bench_proc_cpu_ns(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long) pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields after the command name (which may hold spaces): state is
	 * field 3, utime 14, stime 15. */
	char *p = strrchr(buf, ')');
	if (p == NULL)
		return -1;
	unsigned long long ut = 0, st = 0;
	if (sscanf(p + 2,
	        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
	        &st)
	    != 2)
		return -1;
	long tck = sysconf(_SC_CLK_TCK);
	return (long long) ((ut + st) * (1000000000ull / (unsigned long) tck));
}

long long
bench_proc_cpu_ns_fine(pid_t pid)
{
	char           path[96], buf[128];
	long long      sum = 0;
	struct dirent *e;
	snprintf(path, sizeof(path), "/proc/%ld/task", (long) pid);
	DIR *d = opendir(path);
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/task/%.20s/schedstat",
		    (long) pid, e->d_name);
		FILE *f = fopen(path, "r");
		if (f == NULL)
			continue; /* ended meanwhile */
		unsigned long long ns = 0;
		if (fgets(buf, sizeof(buf), f) != NULL
		    && sscanf(buf, "%llu", &ns) == 1)
			sum += (long long) ns;
		fclose(f);
	}
	closedir(d);
	return sum;
}

uint64_t
bench_self_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

long long
bench_disk_bytes(const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return 0;
	long long total = (long long) st.st_blocks * 512;
	if (!S_ISDIR(st.st_mode))
		return total;
	DIR *d = opendir(path);
	if (d == NULL)
		return total;
	struct dirent *e;
	char           sub[4096];
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0
		    || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
		total += bench_disk_bytes(sub);
	}
	closedir(d);
	return total;
}

void
bench_rmrf(const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return;
	if (S_ISDIR(st.st_mode)) {
		DIR *d = opendir(path);
		if (d != NULL) {
			struct dirent *e;
			char           sub[4096];
			while ((e = readdir(d)) != NULL) {
				if (strcmp(e->d_name, ".") == 0
				    || strcmp(e->d_name, "..") == 0)
					continue;
				snprintf(sub, sizeof(sub), "%s/%s", path,
				    e->d_name);
				bench_rmrf(sub);
			}
			closedir(d);
		}
		rmdir(path);
	} else {
		unlink(path);
	}
}

void
bench_mkdirs(const char *path)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", path);
	for (char *s = dir + 1; *s != '\0'; s++) {
		if (*s == '/') {
			*s = '\0';
			(void) mkdir(dir, 0755);
			*s = '/';
		}
	}
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		bench_die("mkdir %s: %s", path, strerror(errno));
}

void
bench_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
		bench_die("write %s: %s", path, strerror(errno));
}

uint64_t
bench_rand(uint64_t *s)
{
	uint64_t x = *s != 0 ? *s : 0x9e3779b97f4a7c15u;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1du;
}
