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

/** The roles of a credential (auth.tokens[].roles, docs/security.md). */
enum {
	CFG_ROLE_READ     = 1 << 0, /* read, read_filter, get_one, get_all, query */
	CFG_ROLE_WRITE    = 1 << 1, /* commit, delete_stream */
	CFG_ROLE_OPERATE  = 1 << 2, /* reset, retry, pause, resume, start, stop */
	CFG_ROLE_REGISTER = 1 << 3, /* register (remote processors) */
	CFG_ROLE_ADMIN    = 1 << 4, /* everything, every tenant */
};

/** Who may use the API (auth: in resources.yaml, runtime/net/auth.h). */
typedef struct cfg_cred {
	char    *name;       /* unique; names the caller in logs and errors */
	bool     has_token;  /* auth.tokens entry: token_hash is set */
	uint8_t  token_hash[32]; /* SHA-256 of the token */
	char    *subject;    /* auth.subjects entry: a TLS client certificate
	                        subject (for mutual TLS); NULL for tokens */
	bool     all_tenants; /* tenants: "*" (and every admin) */
	char   **tenants;    /* else these (ids of tenants:) */
	size_t   n_tenants;
	unsigned roles;      /* CFG_ROLE_* */
	uint32_t max_registrations; /* remote registrations it may hold */
	uint32_t max_connections;   /* API connections it may use; 0: any */
	bool     internal; /* the daemon's own (its sluice-host children's),
	                      not in the file (auth_add_internal) */
} cfg_cred;

/** run_projections: which projections the daemon runs (EventStoreDB's). */
typedef enum cfg_run {
	CFG_RUN_NONE   = 0, /* none: no projection runs (filters still do) */
	CFG_RUN_SYSTEM = 1, /* only the five system projections */
	CFG_RUN_ALL    = 2, /* system and plugin projections (default) */
} cfg_run;

/** How a projection runs (EventStoreDB's modes). */
typedef enum cfg_mode {
	CFG_MODE_CONTINUOUS = 0, /* runs from its checkpoint, forever */
	CFG_MODE_ONE_TIME   = 1, /* runs only when queried, to the log head */
	CFG_MODE_TRANSIENT  = 2, /* runs only while a client holds it */
} cfg_mode;

/**
 * EventStoreDB's projection settings, by their names, for emitting and
 * system projections (runtime/processing/emitter.h; docs/projections.md says what
 * each means when state, checkpoint and emitted events share a txn).
 */
typedef struct proj_settings {
	uint32_t checkpoint_after_ms;          /* 0 */
	uint32_t checkpoint_handled_threshold; /* 4000 */
	size_t   checkpoint_unhandled_bytes_threshold; /* 10,000,000 (ESDB) */
	uint32_t pending_events_threshold;     /* 5000 */
	uint32_t max_write_batch_length;       /* 500 */
	uint32_t max_allowed_writes_in_flight; /* 0: unbounded */
} proj_settings;

/** One entry of `projections:`: settings for a projection by id or name. */
typedef struct cfg_projection {
	char         *name;  /* id (UUID text) or name, e.g. "$by_category" */
	cfg_mode      mode;
	proj_settings set;   /* defaults filled from projection_settings */
} cfg_projection;

/** How a plugin runs (`plugins:` isolation). */
typedef enum cfg_isolation {
	CFG_ISOLATION_IN_PROCESS = 0, /* loaded by the daemon (default) */
	/* in a child sluice-host process (runtime/host/hostsup.h) */
	CFG_ISOLATION_PROCESS = 1,
} cfg_isolation;

/** One entry of `plugins:`: a file of plugin_dir and how it runs. */
typedef struct cfg_plugin {
	char         *file; /* a file name in plugin_dir ("x.so", no '/') */
	cfg_isolation isolation;
} cfg_plugin;

/** tls: the daemon's certificate for its tls+tcp:// endpoints
 * (docs/security.md); cert_file NULL: no tls: section. Paths absolute. */
typedef struct cfg_tls {
	char *cert_file;    /* tls.cert_file: PEM certificate (chain) */
	char *key_file;     /* tls.key_file: PEM private key, not o+r */
	char *key_password; /* tls.key_password: NULL if not encrypted */
	char *ca_file;      /* tls.ca_file: CAs of client certificates */
	int   verify;       /* tls.verify_clients: NNG_TLS_AUTH_MODE_*;
	                       default required with ca_file, else none */
} cfg_tls;

/* endpoints.feeds: a tenant's own live feed (docs/security.md). */
typedef struct cfg_feed {
	char *tenant;
	char *url; /* tls+tcp:// */
} cfg_feed;
/** event_store.backend: where the log of record lives (docs/postgresql.md). */
typedef enum cfg_backend {
	CFG_BACKEND_LMDB       = 0, /* the LMDB log in event_store.path */
	CFG_BACKEND_POSTGRESQL = 1, /* PostgreSQL at event_store.url, mirrored
	                               into the LMDB log by a follower */
} cfg_backend;

typedef struct sl_config {
	char *file;          /* the config file's path as given */
	char *data_dir;      /* absolute */
	char *plugin_dir;    /* absolute */
	char *api_url;       /* NNG req/rep endpoint */
	char *pub_url;       /* NNG pub endpoint */
	char *metrics_url;   /* endpoints.metrics: http://HOST:PORT/PATH, or
	                        NULL (off, the default) */
	char *admin_url;     /* endpoints.admin: the admin page, likewise */
	cfg_feed   *feeds;         /* endpoints.feeds (auth: on), n_feeds */
	size_t      n_feeds;
	char *store_path;    /* event log directory (absolute) */
	size_t store_map_size;
	bool store_sync;
	cfg_backend store_backend; /* event_store.backend: lmdb (default) */
	char *store_url; /* event_store.url: libpq URL or conninfo, NULL for
	                    lmdb */
	int store_timeout_ms; /* event_store.timeout_ms: a PostgreSQL round
	                         trip's limit (postgresql only) */
	cfg_tenant *tenants;
	size_t n_tenants;
	size_t max_request_bytes; /* limits.max_request_bytes */
	size_t max_events_per_commit; /* limits.max_events_per_commit */
	size_t max_read_events;   /* limits.max_read_events: per read reply */
	uint32_t api_workers;     /* limits.api_workers: fast lane's threads */
	uint32_t api_slow_workers; /* limits.api_slow_workers: slow lane's */
	uint32_t api_queue;       /* limits.api_queue: slow requests waiting */
	uint32_t query_timeout_ms; /* limits.query_timeout_ms: one-time query */
	uint32_t handler_timeout_ms; /* limits.handler_timeout_ms: "stuck" */
	uint32_t shutdown_timeout_ms; /* limits.shutdown_timeout_ms: SIGTERM */
	uint32_t idle_timeout_ms;  /* limits.idle_timeout_ms: 0 never closes */
	uint32_t max_connections;  /* limits.max_connections: API pipes */
	uint32_t checkpoint_batch; /* processing.batch: events per txn */
	int log_level;            /* SL_LOG_* */
	bool hot_reload;          /* watch plugin_dir and reload plugins */
	uint32_t hot_reload_quiet_ms; /* a changed file's quiet time: 150 */
	/* remote processors (runtime/remote/remote.h, docs/remote.md) */
	char *remote_url; /* remote.endpoint: base of each registration's URL */
	uint32_t remote_keepalive_ms;   /* remote.keepalive_ms */
	uint32_t remote_timeout_ms;     /* remote.timeout_ms: per call, ping */
	uint32_t remote_window;         /* remote.window: calls in flight */
	uint32_t remote_batch; /* remote.batch: events per call (protocol 2) */
	uint32_t remote_max_registrations; /* remote.max_registrations */
	/* remote.registration_expiry_ms: a registration whose client has
	 * been gone this long is freed; 0: never */
	uint32_t remote_expiry_ms;
	/* who may read the data and connect (docs/security.md) */
	/* authentication (docs/security.md): auth_on when resources.yaml
	 * has an auth: section; insecure: tcp listeners without it */
	bool      auth_on;
	cfg_cred *creds; /* auth.tokens, then auth.subjects */
	size_t    n_creds;
	bool      insecure;
	long     access_gid;  /* access.group: -1 none (the daemon's user only) */
	uint32_t socket_mode; /* access.socket_mode: ipc sockets, 0660 */
	cfg_tls  tls;         /* tls: (docs/security.md) */
	/* EventStoreDB's projection model (issue 8, docs/projections.md) */
	cfg_run run_projections;         /* run_projections: all */
	bool start_standard_projections; /* false: system ones start stopped */
	char *category_separator;        /* system_projections.by_category.separator "-" */
	bool  category_last;             /* ....by_category.take: first|last */
	char *correlation_property; /* system_projections.by_correlation_id.property */
	proj_settings   proj_defaults;   /* projection_settings: */
	cfg_projection *projections;     /* projections: (per id or name) */
	size_t          n_projections;
	cfg_plugin     *plugins;         /* plugins: (per file) */
	size_t          n_plugins;
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
/** The settings of projection (id, name): its `projections:` entry's, or
 * the defaults. mode (may be NULL) receives its mode. */
const proj_settings *config_projection(const sl_config *cfg, const char *id,
    const char *name, cfg_mode *mode);

struct sl_tls_server;
/** The tls: section as the TLS code takes it (tlsconf.h): the strings
 * are cfg's. */
void config_tls_server(const sl_config *cfg, struct sl_tls_server *out);

/** Parse a size: bytes, or a number with K/KiB, M/MiB, G/GiB, T/TiB
 * ("64MiB", "1GiB", "4096", "10 MiB"). -1 on error. */
int config_parse_size(const char *text, size_t *out);

#endif
