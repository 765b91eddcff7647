/*
 * resources.yaml: where the daemon keeps its data, which plugins it loads,
 * where it listens and which tenants it serves. Parsed once at start.
 */
#ifndef SL_CONFIG_H
#define SL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cfg_tenant {
	char *id;          /* tenant id (non-empty, <= 256 bytes, no '/') */
	char *rm_path;     /* read model store directory (absolute) */
	size_t rm_map_size; /* LMDB map size in bytes */
} cfg_tenant;

typedef struct sl_config {
	char *file;          /* the config file's path as given */
	char *data_dir;      /* absolute */
	char *plugin_dir;    /* absolute */
	char *api_url;       /* NNG req/rep endpoint */
	char *pub_url;       /* NNG pub endpoint */
	char *store_path;    /* event log directory (absolute) */
	size_t store_map_size;
	bool store_sync;
	cfg_tenant *tenants;
	size_t n_tenants;
	size_t max_request_bytes; /* limits.max_request_bytes */
	size_t max_events_per_commit; /* limits.max_events_per_commit */
	size_t max_read_events;   /* limits.max_read_events: per read reply */
	uint32_t api_workers;     /* limits.api_workers: concurrent requests */
	uint32_t checkpoint_batch; /* processing.batch: events per txn */
	int log_level;            /* SL_LOG_* */
	bool hot_reload;          /* watch plugin_dir and reload plugins */
	/* remote processors (runtime/remote.h, docs/remote.md) */
	char *remote_url; /* remote.endpoint: base of each registration's URL */
	uint32_t remote_keepalive_ms;   /* remote.keepalive_ms */
	uint32_t remote_timeout_ms;     /* remote.timeout_ms: per call, ping */
	uint32_t remote_window;         /* remote.window: calls in flight */
	uint32_t remote_max_registrations; /* remote.max_registrations */
} sl_config;

/**
 * Load and validate a config file.
 * @param path   the YAML file
 * @param out    receives the config (free with config_free) on SL_OK
 * @param err    receives "FILE:LINE:COL: key 'K': what is wrong" on error
 * @return SL_OK, or SL_ECONFIG (err filled), or SL_ENOMEM.
 */
int config_load(const char *path, sl_config **out, char *err, size_t errlen);
void config_free(sl_config *cfg);

/** Parse a size: bytes, or a number with K/KiB, M/MiB, G/GiB, T/TiB
 * ("64MiB", "1GiB", "4096", "10 MiB"). -1 on error. */
int config_parse_size(const char *text, size_t *out);

#endif
