/*
 * Plugins with `isolation: process` (resources.yaml `plugins:`): the
 * daemon does not load their .so itself; for each it runs a child
 * `sluice-host` process (runtime/host/sluice_host.c) that loads it and
 * registers its projections and filters over the remote protocol on the
 * API endpoint (docs/remote.md). This module starts those children,
 * restarts one that dies (with a growing delay, capped), tells the next
 * one how its predecessor died (so that it fails only the key it died on),
 * restarts one whose file changed (hot reload), stops them all in bounded
 * time, and reports them for status.
 */
#ifndef SL_HOSTSUP_H
#define SL_HOSTSUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* sluice-host's exit codes (beside 0: stopped by SIGTERM/SIGINT) */
/** The plugin was refused (it does not load, or uses what a host cannot
 * run): not restarted until its file changes. */
#define HOST_EXIT_REFUSED 78
/** A handler ran past the remote timeout and the host cut it. */
#define HOST_EXIT_CUT 75

/* restarts after a death: the first delay, doubled per quick death up to
 * the cap; a host that ran HOSTSUP_STABLE_MS starts over from the first */
#define HOSTSUP_BACKOFF_FIRST_MS 100
#define HOSTSUP_BACKOFF_MAX_MS   10000
#define HOSTSUP_STABLE_MS        30000
/** How long a stopping host gets after SIGTERM before SIGKILL. */
#define HOSTSUP_STOP_MS 2000

typedef struct hostsup hostsup;

/** What status shows for one hosted plugin. */
typedef struct hostsup_info {
	char        file[512];    /* the plugin file (absolute) */
	const char *state;        /* "starting", "running", "backoff",
	                             "refused", "stopped" */
	int64_t  pid;             /* 0 when none runs */
	uint32_t starts;          /* processes started */
	uint32_t restarts;        /* started again after a death */
	char     last_exit[160];  /* "" when none exited yet */
	int64_t  last_exit_at_ns; /* wall clock; 0: none */
	char     error[1024];     /* why it is refused ("" if not) */
	uint32_t backoff_ms;      /* the delay before the next start */
} hostsup_info;

/**
 * Set up a host for each plugin of cfg->plugins with isolation: process
 * (a file of cfg->plugin_dir); none starts before hostsup_run. Hosts
 * register on cfg->api_url.
 * sluice_host: the program (NULL: $SLUICE_HOST, else sluice-host beside
 * this executable). @return SL_OK, SL_ENOMEM.
 */
int hostsup_start(
    const sl_config *cfg, const char *sluice_host, hostsup **out);
/** Start the hosts (once the API serves: they register there).
 * @return SL_OK, SL_ENOMEM. */
int hostsup_run(hostsup *h);
/**
 * With auth: on, the credential the hosts register with: each child gets
 * $SLUICE_TOKEN = token in its environment (never on its command line).
 * Call before hostsup_run. @return SL_OK, SL_ENOMEM.
 */
int hostsup_set_token(hostsup *h, const char *token);
/** Stop every host (SIGTERM, SIGKILL after HOSTSUP_STOP_MS); none starts
 * again. Status may still read h (the hosts show stopped). */
void hostsup_stop(hostsup *h);
/** hostsup_stop, then free: once nothing reads h any more. */
void hostsup_free(hostsup *h);

/** Whether path (a file of plugin_dir) runs in a host (and so is not
 * loaded by the daemon). Thread-safe; h may be NULL (then false). */
bool hostsup_owns(const hostsup *h, const char *path);
/** path, a hosted plugin's file, changed or went: restart its host now
 * (no delay; a refused one is tried again), or stop it if it is gone. */
void hostsup_file_changed(hostsup *h, const char *path);

size_t hostsup_count(const hostsup *h);
/** Info of host i (copied under the lock). */
void hostsup_info_get(hostsup *h, size_t i, hostsup_info *out);

/** "signal 11 (SIGSEGV, Segmentation fault)" or "exit code 3" of a wait
 * status, into buf. */
void hostsup_describe_exit(int status, char *buf, size_t len);

#endif
