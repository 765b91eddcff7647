/*
 * Shared by the benchmark programs: clocks, latency samples and
 * percentiles, the "key value" result lines run.sh collects, worker
 * processes with a start barrier, and /proc readings.
 */
#ifndef SL_BENCH_COMMON_H
#define SL_BENCH_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/** CLOCK_MONOTONIC in ns: one clock for every process on the machine. */
uint64_t bench_now_ns(void);
void     bench_sleep_ns(uint64_t ns);
/** Sleep until the monotonic clock reaches t (no-op if past). */
void bench_sleep_until(uint64_t t);

/** A growing array of latency samples in ns. */
typedef struct bench_lat {
	uint64_t *v;
	size_t    n, cap;
} bench_lat;

void bench_lat_add(bench_lat *l, uint64_t ns);
void bench_lat_free(bench_lat *l);
/** The p-th percentile (0..100) in ns; sorts l. 0 when empty. */
uint64_t bench_lat_pct(bench_lat *l, double p);

/** Print one result line "key value" on stdout (what run.sh collects). */
void bench_out(const char *key, double value);
/** Print a result with a printf-formatted key. */
void bench_outf(double value, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/** Print a message on stderr and exit(1). */
void bench_die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/*
 * Worker processes. The parent starts n copies of its own executable
 * (posix_spawn of /proc/self/exe: no fork of a process running NNG
 * threads) with argv; each worker calls bench_worker_ready() once set up,
 * which blocks until every worker is ready and returns the common start
 * time. The parent collects them with bench_workers_wait().
 */
typedef struct bench_workers {
	pid_t   *pids;
	size_t   n;
	int      ready_rd; /* workers write one byte each when ready */
	int      go_wr;    /* the parent writes each worker its start time */
	uint64_t start_ns; /* set by bench_workers_go */
} bench_workers;

/** Spawn n workers; "%i" in any argv element becomes the worker index. */
void bench_workers_spawn(bench_workers *w, size_t n, char *const argv[]);
/** Wait until all are ready, then release them to start at now + lead. */
void bench_workers_go(bench_workers *w, uint64_t lead_ns);
/**
 * Wait until all are ready, then release them to start at start_ns (at
 * once if that has passed; w->start_ns says when).
 */
void bench_workers_go_at(bench_workers *w, uint64_t start_ns);
/** Wait for every worker; dies if one failed. */
void bench_workers_wait(bench_workers *w);
/** In a worker: announce readiness, wait for the start time. */
uint64_t bench_worker_ready(void);

/*
 * Children the benchmark started (daemons, servers, workers, perf) are
 * tracked, so that bench_die() and SIGINT/SIGTERM kill them (by pid)
 * instead of leaving them running.
 */
void bench_track(pid_t pid);
void bench_untrack(pid_t pid);
/** Install the SIGINT/SIGTERM handler that kills tracked children. */
void bench_handle_signals(void);

/** Spawn a program (argv[0] a path) with stdout+stderr to log (or keep);
 * the child is tracked until bench_reap(). */
pid_t bench_spawn(char *const argv[], const char *log);
/** Wait for pid up to timeout_ms, then SIGKILL it. @return exit status. */
int bench_reap(pid_t pid, int timeout_ms);

/** A "Key:   N kB" field of /proc/<pid>/<file>, in bytes; -1 if absent. */
long long bench_proc_kb(pid_t pid, const char *file, const char *key);
/** CPU time (user + system) of process pid so far, in ns; -1 if gone. */
long long bench_proc_cpu_ns(pid_t pid);
/** CPU time of the live threads of process pid so far, in ns, from each
 * thread's schedstat (ns resolution, where /proc/<pid>/stat counts clock
 * ticks: for short spans); -1 if gone. Threads that ended are not in it. */
long long bench_proc_cpu_ns_fine(pid_t pid);
/** CPU time (user + system) of this process so far, in ns. */
uint64_t bench_self_cpu_ns(void);
/** Bytes allocated on disk under path (files, recursively; du). */
long long bench_disk_bytes(const char *path);
/** rm -rf path (ignores errors). */
void bench_rmrf(const char *path);
/** mkdir -p. */
void bench_mkdirs(const char *path);
/** Write a whole file or die. */
void bench_write_file(const char *path, const char *text);

/** A small deterministic PRNG (xorshift64*), per process. */
uint64_t bench_rand(uint64_t *state);

#endif
