/*
 * sluiced as a process for the benchmarks: a generated resources.yaml in a
 * directory of its own, start (waiting until the API answers), status
 * queries and a clean stop.
 */
#ifndef SL_BENCH_DAEMON_H
#define SL_BENCH_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <sluice/client.h>

typedef struct bench_daemon {
	char  sluiced[1024]; /* the binary */
	char  dir[1024];     /* holds resources.yaml, data/, plugins/ */
	char  cfg[1100];
	char  url[1100];
	char  log[1100];
	char  plugin_dir[1100];
	char  token[128]; /* sent by daemon_start and daemon_client; "" none */
	pid_t pid;
} bench_daemon;

/**
 * Write dir/resources.yaml: data in dir/data, plugins from dir/plugins
 * (created empty), one tenant WL_TENANT, the given sync setting.
 */
void daemon_init(
    bench_daemon *d, const char *sluiced, const char *dir, bool sync);
/**
 * As daemon_init, with processing.batch (events per read model
 * transaction while catching up) set when rm_batch > 0.
 */
void daemon_init_batch(bench_daemon *d, const char *sluiced, const char *dir,
    bool sync, int rm_batch);
/**
 * Put the log on PostgreSQL at conninfo (event_store.backend: postgresql):
 * its sl_ tables dropped (psql) and made again by sluiced --init-db, so
 * that every run starts from an empty log. Dies on a failure.
 */
void daemon_use_pg(bench_daemon *d, const char *conninfo);
/**
 * Put the log on PostgreSQL at conninfo as it is (another node on the
 * same database): the configuration only.
 */
void daemon_pg_config(bench_daemon *d, const char *conninfo);
/** Start sluiced and wait (up to 60 s) until status answers. */
void daemon_start(bench_daemon *d);
/** SIGTERM and wait for a clean exit (dies on a failed exit). */
void daemon_stop(bench_daemon *d);
/** Copy a plugin .so into the plugin dir (or remove them all if NULL). */
void daemon_set_plugin(bench_daemon *d, const char *so_path);
/** Copy a plugin .so into the plugin dir as name (beside the others). */
void daemon_add_plugin(bench_daemon *d, const char *so_path, const char *name);

/** Open a client on the daemon (dies on failure). */
sl_client *daemon_client(bench_daemon *d);

/** What status says about the log and the first processor. */
typedef struct daemon_status {
	uint64_t head;
	int      n_processors;
	uint64_t position; /* first processor's next position */
	char     state[32];
	char     reason[256];
} daemon_status;

void daemon_get_status(sl_client *c, daemon_status *out);

#endif
