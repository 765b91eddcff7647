/*
 * SIGHUP: apply what a changed resources.yaml can change without a
 * restart, and name every other change (docs: sluiced(8), README
 * "Configuration").
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <sluice/errors.h>

#include "config.h"
#include "log.h"
#include "reload.h"
#include "runtime.h"
#include "server.h"

static const char *
level_name(int level)
{
	switch (level) {
	case SL_LOG_ERROR: return "error";
	case SL_LOG_WARN: return "warn";
	case SL_LOG_INFO: return "info";
	default: return "debug";
	}
}

/* A limit that requests read as they come: stored, logged. */
#define LIVE_LIMIT(field, key)                                               \
	do {                                                                 \
		if (n->field != o->field) {                                  \
			log_info("config", "%s: %llu -> %llu", key,          \
			    (unsigned long long) o->field,                   \
			    (unsigned long long) n->field);                  \
			__atomic_store_n(&o->field, n->field, __ATOMIC_RELAXED); \
			applied++;                                           \
		}                                                            \
	} while (0)

/* A key that only a restart changes. */
#define RESTART_NUM(field, key)                                              \
	do {                                                                 \
		if (n->field != o->field) {                                  \
			restart_needed(key);                                 \
			later++;                                             \
		}                                                            \
	} while (0)
#define RESTART_STR(field, key)                                              \
	do {                                                                 \
		if (!same_str(n->field, o->field)) {                         \
			restart_needed(key);                                 \
			later++;                                             \
		}                                                            \
	} while (0)

static bool
same_str(const char *a, const char *b)
{
	return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

static void
restart_needed(const char *key)
{
	log_warn("config", "%s changed: it takes effect at the next start",
	    key);
}

static bool
same_tenants(const sl_config *a, const sl_config *b)
{
	if (a->n_tenants != b->n_tenants)
		return false;
	for (size_t i = 0; i < a->n_tenants; i++)
		if (strcmp(a->tenants[i].id, b->tenants[i].id) != 0
		    || a->tenants[i].rm_map_size != b->tenants[i].rm_map_size)
			return false;
	return true;
}

/* The same plugins: entries (file and isolation), in the same order. */
static bool
same_plugins(const sl_config *a, const sl_config *b)
{
	if (a->n_plugins != b->n_plugins)
		return false;
	for (size_t i = 0; i < a->n_plugins; i++)
		if (strcmp(a->plugins[i].file, b->plugins[i].file) != 0
		    || a->plugins[i].isolation != b->plugins[i].isolation)
			return false;
	return true;
}

/* The auth: sections, credential by credential (requests hold pointers
 * into the running config's: a change takes a restart). */
/* The credentials of the file (the daemon's own come after them). */
static size_t
file_creds(const sl_config *c)
{
	size_t n = c->n_creds;
	while (n > 0 && c->creds[n - 1].internal)
		n--;
	return n;
}

static bool
same_auth(const sl_config *a, const sl_config *b)
{
	if (a->auth_on != b->auth_on || file_creds(a) != file_creds(b)
	    || a->insecure != b->insecure)
		return false;
	for (size_t i = 0; i < file_creds(a); i++) {
		const cfg_cred *x = &a->creds[i], *y = &b->creds[i];
		if (strcmp(x->name, y->name) != 0 || x->has_token != y->has_token
		    || memcmp(x->token_hash, y->token_hash, 32) != 0
		    || !same_str(x->subject, y->subject)
		    || x->all_tenants != y->all_tenants
		    || x->n_tenants != y->n_tenants || x->roles != y->roles
		    || x->max_registrations != y->max_registrations
		    || x->max_connections != y->max_connections)
			return false;
		for (size_t k = 0; k < x->n_tenants; k++)
			if (strcmp(x->tenants[k], y->tenants[k]) != 0)
				return false;
	}
	return true;
}

static bool
same_feeds(const sl_config *a, const sl_config *b)
{
	if (a->n_feeds != b->n_feeds)
		return false;
	for (size_t i = 0; i < a->n_feeds; i++)
		if (strcmp(a->feeds[i].tenant, b->feeds[i].tenant) != 0
		    || strcmp(a->feeds[i].url, b->feeds[i].url) != 0)
			return false;
	return true;
}

void
runtime_reconfigure(runtime *rt, const sl_config *n)
{
	sl_config *o       = rt->cfg;
	int        applied = 0, later = 0;

	if (n->log_level != o->log_level) {
		log_info("config", "log_level: %s -> %s",
		    level_name(o->log_level), level_name(n->log_level));
		log_set_level(n->log_level);
		o->log_level = n->log_level;
		applied++;
	}
	/* the server's limits: new requests and connections */
	if (n->max_request_bytes != o->max_request_bytes
	    || n->max_connections != o->max_connections
	    || n->idle_timeout_ms != o->idle_timeout_ms) {
		int rc = server_set_limits(rt->srv, n->max_request_bytes,
		    n->max_connections, n->idle_timeout_ms);
		if (rc != SL_OK)
			log_error("config", "cannot apply the API limits: %s",
			    sl_strerror(rc));
	}
	LIVE_LIMIT(max_request_bytes, "limits.max_request_bytes");
	LIVE_LIMIT(max_connections, "limits.max_connections");
	LIVE_LIMIT(idle_timeout_ms, "limits.idle_timeout_ms");
	LIVE_LIMIT(max_events_per_commit, "limits.max_events_per_commit");
	LIVE_LIMIT(max_read_events, "limits.max_read_events");
	LIVE_LIMIT(query_timeout_ms, "limits.query_timeout_ms");
	LIVE_LIMIT(shutdown_timeout_ms, "limits.shutdown_timeout_ms");

	RESTART_STR(data_dir, "data_dir");
	RESTART_STR(plugin_dir, "plugin_dir");
	RESTART_STR(api_url, "endpoints.api");
	RESTART_STR(pub_url, "endpoints.pub");
	RESTART_STR(remote_url, "remote.endpoint");
	RESTART_STR(metrics_url, "endpoints.metrics");
	RESTART_STR(admin_url, "endpoints.admin");
	if (!same_feeds(n, o)) {
		restart_needed("endpoints.feeds");
		later++;
	}
	RESTART_NUM(store_map_size, "event_store.map_size");
	RESTART_NUM(store_sync, "event_store.sync");
	RESTART_NUM(store_backend, "event_store.backend");
	RESTART_STR(store_url, "event_store.url");
	RESTART_NUM(store_timeout_ms, "event_store.timeout_ms");
	if (!same_tenants(n, o)) {
		restart_needed("tenants");
		later++;
	}
	/* which plugins run in a sluice-host (runtime/host/hostsup.h) */
	if (!same_plugins(n, o)) {
		restart_needed("plugins");
		later++;
	}
	if (!same_auth(n, o)) {
		restart_needed("auth / insecure");
		later++;
	}
	RESTART_NUM(api_workers, "limits.api_workers");
	RESTART_NUM(api_slow_workers, "limits.api_slow_workers");
	RESTART_NUM(api_queue, "limits.api_queue");
	RESTART_NUM(handler_timeout_ms, "limits.handler_timeout_ms");
	RESTART_NUM(checkpoint_batch, "processing.batch");
	RESTART_NUM(hot_reload, "hot_reload");
	RESTART_NUM(hot_reload_quiet_ms, "hot_reload_quiet_ms");
	RESTART_NUM(remote_keepalive_ms, "remote.keepalive_ms");
	RESTART_NUM(remote_timeout_ms, "remote.timeout_ms");
	RESTART_NUM(remote_window, "remote.window");
	RESTART_NUM(remote_batch, "remote.batch");
	RESTART_NUM(remote_max_registrations, "remote.max_registrations");
	RESTART_NUM(remote_expiry_ms, "remote.registration_expiry_ms");
	RESTART_NUM(access_gid, "access.group");
	RESTART_NUM(socket_mode, "access.socket_mode");
	RESTART_NUM(run_projections, "run_projections");
	RESTART_NUM(start_standard_projections, "start_standard_projections");
	RESTART_NUM(category_last, "system_projections.by_category.take");
	RESTART_STR(category_separator,
	    "system_projections.by_category.separator");
	RESTART_STR(correlation_property,
	    "system_projections.by_correlation_id.property");
	if (n->n_projections != o->n_projections
	    || memcmp(&n->proj_defaults, &o->proj_defaults,
	           sizeof(n->proj_defaults))
	        != 0) {
		restart_needed("projection_settings / projections");
		later++;
	}

	/* new, changed and removed plugin files */
	reload_request_rescan(rt);
	log_info("config",
	    "reloaded %s: %d change(s) applied, %d at the next start; "
	    "rescanning the plugin directory",
	    o->file, applied, later);
}
