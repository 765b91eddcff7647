/*
 * The daemon's parts wired together: config, event log, tenants' read model
 * stores, plugins, processors and the API server.
 */
#ifndef SL_RUNTIME_H
#define SL_RUNTIME_H

#include <pthread.h>
#include <stddef.h>

#include "config.h"
#include "emitter.h"
#include "grace.h"
#include "plugins.h"
#include "projection.h"
#include "readmodels.h"
#include "remote.h"
#include "store.h"

typedef struct server server;

typedef struct rt_tenant {
	const cfg_tenant *cfg;
	rmstore *rm;
} rt_tenant;

/** Transient projections (op query, mode transient) at once; more: ETOOBIG. */
#define RT_MAX_TRANSIENT 16

/** One-time queries shown in status at once (more run, unlisted). */
#define RT_MAX_QUERIES 16

/* A one-time query running (op query): what status shows of it, so that
 * `sluice query` can show its progress. position is updated by the query
 * (relaxed atomics), the rest set once under queries_mu. */
typedef struct rt_query {
	bool     used;
	char     tenant[257];
	char     id[37];
	char     name[257];
	uint64_t head;     /* the log head it runs to */
	uint64_t position; /* reached so far */
	int64_t  started_ns;
} rt_query;

/* A transient run: started by a client's query, it lives until the client
 * closes it or its connection (NNG pipe) goes. */
typedef struct rt_transient {
	uint64_t handle; /* 0: a free slot */
	uint32_t pipe;   /* the connection that started it */
	eproj   *e;
	unsigned refs;    /* API calls using e now (runtime_transient_get) */
	bool     closing; /* stopped when the last ref goes */
	/* a query's script (registry_load_js_text) whose hold the run took
	 * over: released once e is stopped, which unloads it; or NULL */
	const proj_def *owned;
} rt_transient;

typedef struct runtime {
	sl_config *cfg; /* borrowed from the caller */
	store *store;
	rt_tenant *tenants;
	size_t n_tenants;
	registry *plugins;
	processor **procs;
	size_t n_procs;
	server *srv;
	int64_t started_ns;
	struct publisher *pub; /* the live feed on cfg->pub_url */
	struct filterfeed *ff; /* filter streams on the same feed */
	struct metrics *metrics; /* endpoints.metrics; NULL: off */
	struct admin   *admin;   /* endpoints.admin; NULL: off */
	struct watch *watch;   /* hot reload (runtime/plugins/reload.h); NULL: off */
	size_t cap_procs;      /* procs never moves: room for reloads */
	/* remote processors (runtime/remote/remote.h): registrations over the API */
	remotes        *remotes;
	pthread_mutex_t procs_mu; /* appends to procs (reload, register) */
	pthread_mutex_t register_mu; /* one registration at a time */
	/* emitting projections (runtime/processing/emitter.h): system and plugin ones,
	 * one run per tenant; like procs, only ever appended (under
	 * procs_mu), never moved: readers load n_eprojs with acquire */
	eproj **eprojs;
	size_t  n_eprojs;
	size_t  cap_eprojs;
	/* one-time queries running (status' "queries"), under queries_mu */
	pthread_mutex_t queries_mu;
	rt_query        queries[RT_MAX_QUERIES];
	/* transient runs (op query), under transient_mu */
	pthread_mutex_t transient_mu;
	pthread_cond_t  transient_cv; /* closers and refs dropping */
	rt_transient    transients[RT_MAX_TRANSIENT];
	uint64_t        next_handle;
	unsigned        closers; /* threads stopping a transient run */
	/* validations of filters whose code changed without a version bump
	 * (runtime/processing/filter_validate.h), started by hot reload */
	struct fval *fval;
	/* plugins with isolation: process, each in a sluice-host child
	 * (runtime/host/hostsup.h); NULL until set up */
	struct hostsup *hosts;
	/* What may be freed while the daemon runs (an expired remote
	 * registration, its processors): API requests and metrics scrapes
	 * read inside a grace section (runtime/grace.h). */
	grace grace;
	/* frees registrations whose client is gone for
	 * remote.registration_expiry_ms (runtime/remote/remote_expiry.h);
	 * NULL: never */
	struct rt_expiry *expiry;
} runtime;

/**
 * How runtime_start attaches the PostgreSQL log of record to the store
 * (event_store.backend: postgresql): store_pg_attach, set by sluiced's
 * main before runtime_start (timeout_ms: event_store.timeout_ms). Only sluiced links libpq; without it, such a
 * configuration does not start (SL_ECONFIG).
 */
typedef int (*runtime_backend_fn)(
    store *s, const char *url, int timeout_ms);
void runtime_set_pg_backend(runtime_backend_fn attach);

/**
 * Open the stores, load the plugins, start processors and the API server.
 * @return SL_OK, or an error (logged) with nothing left running.
 */
int runtime_start(sl_config *cfg, runtime **out);
/** Stop the server, the processors and close everything. */
void runtime_stop(runtime *rt);
/**
 * A one-time query of def in tenant begins: listed in status until
 * runtime_query_end(rt, the returned slot). @return the slot, or NULL
 * when RT_MAX_QUERIES are listed already (the query runs unlisted).
 */
rt_query *runtime_query_begin(
    runtime *rt, const char *tenant, const proj_def *def, uint64_t head);
void runtime_query_end(runtime *rt, rt_query *q);
/**
 * SIGHUP (runtime/reconfigure.c): apply what n changes that can change
 * while running (log_level, the limits requests and connections read) into
 * rt->cfg, log every other change as taking effect at the next start, and
 * rescan the plugin directory. n stays the caller's.
 */
void runtime_reconfigure(runtime *rt, const sl_config *n);

rt_tenant *runtime_tenant(runtime *rt, const char *id, size_t len);

/**
 * A projection or filter by id (UUID text, any case) or name: a plugin's
 * (also one its plugin dropped, whose read models are still served), else
 * a remote registration's. NULL if none. Valid until runtime_stop.
 * Nothing is held: use its id, name, kind and initial state only; a
 * caller that runs its code or reads its vtable uses runtime_find_def_held.
 */
const proj_def *runtime_find_def(runtime *rt, const char *id_or_name,
    size_t len);
/**
 * runtime_find_def for a caller about to run the definition's code (an API
 * thread: query, get_one, get_all's result transform): a plugin's def comes
 * with its version held (registry_find_held). *live: true when the code may
 * be called until proj_def_release(def), which the caller then owes (a
 * no-op for system and remote definitions); false when the plugin version
 * is closed (a dropped def): serve its stored states and initial state
 * only, and release nothing.
 */
const proj_def *runtime_find_def_held(
    runtime *rt, const char *id_or_name, size_t len, bool *live);

/**
 * Start a processor of def for tenant t and append it to rt->procs, which
 * never moves. Serialised by procs_mu, so hot reload and registrations
 * can both add. An expired registration's processors are taken out of
 * procs (under procs_mu): read it with runtime_procs or
 * runtime_find_proc, not directly.
 * @return SL_OK; SL_ETOOBIG (no room left in procs); proc_start's codes.
 */
int runtime_add_proc(runtime *rt, rt_tenant *t, const proj_def *def);

/** The processor of (tenant, projection id), or NULL. A remote
 * registration's stays valid while the caller holds register_mu or stays
 * in its grace section (rt->grace). */
processor *runtime_find_proc(runtime *rt, const char *tenant, const char *id);
/**
 * Every processor at one moment: a malloc'ed array (free()) of *n, NULL
 * when none or out of memory (*n 0). The pointers stay valid while the
 * caller stays in its grace section (rt->grace).
 */
processor **runtime_procs(runtime *rt, size_t *n);

/**
 * Whether the daemon runs def on its own (run_projections, the
 * definition's mode in `projections:`), and how: *mode (may be NULL) gets
 * the mode, *set (may be NULL) the settings. Filters always run.
 */
bool runtime_runs(runtime *rt, const proj_def *def, cfg_mode *mode,
    const proj_settings **set);

/**
 * Start the emitting run of def (eproj_is_emitting) for tenant t and append
 * it to rt->eprojs. A system projection starts stopped unless
 * start_standard_projections (an operator's persisted start or stop wins,
 * see emitter.h). @return SL_OK; SL_ETOOBIG (no room); eproj_start's codes.
 */
int runtime_add_eproj(runtime *rt, rt_tenant *t, const proj_def *def);

/** The emitting run of (tenant, projection id), or NULL. */
eproj *runtime_find_eproj(runtime *rt, const char *tenant, const char *id);

/**
 * Claim def's streams for it (eproj_claim); a refusal is logged and
 * recorded for status and plugins (registry_set_refused), a claim clears
 * it. @return eproj_claim's code.
 */
int runtime_claim(runtime *rt, const proj_def *def);

/**
 * Start a transient run of def for tenant t on behalf of the client on
 * connection pipe (api_call_pipe). *handle gets its handle. With
 * take_hold, on SL_OK the run takes over the caller's hold on def (a
 * query's script) and releases it after it stopped; on failure the
 * caller keeps it.
 * @return SL_OK; SL_ETOOBIG (RT_MAX_TRANSIENT run already); SL_ECLOSED
 * (the connection is gone); eproj_start's codes. err says why.
 */
int runtime_transient_open(runtime *rt, uint32_t pipe, rt_tenant *t,
    const proj_def *def, bool take_hold, uint64_t *handle, char *err,
    size_t errlen);
/** The run of handle, held until runtime_transient_put; NULL if none. */
eproj *runtime_transient_get(runtime *rt, uint64_t handle);
void   runtime_transient_put(runtime *rt, uint64_t handle);
/** End the run of handle. @return SL_OK, SL_ENOTFOUND. */
int runtime_transient_close(runtime *rt, uint64_t handle);
/** A client's connection closed: its transient runs end (server.c). */
void runtime_pipe_closed(runtime *rt, uint32_t pipe);

/**
 * Register a remote projection or filter (op "register", docs/remote.md)
 * and start (or hand the new definition to) its processor of every tenant
 * cred may read (every tenant when cred is NULL: auth off). A takeover
 * needs the same credential (remote_spec_set_owner).
 * @return remote_register's codes, or a processor start's; err says why.
 */
int runtime_register(runtime *rt, const remote_spec *spec,
    const cfg_cred *cred, remote_reg_result *out, char *err, size_t errlen);

#endif
