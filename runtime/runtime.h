/*
 * The daemon's parts wired together: config, event log, tenants' read model
 * stores, plugins, processors and the API server.
 */
#ifndef SL_RUNTIME_H
#define SL_RUNTIME_H

#include <pthread.h>
#include <stddef.h>

#include "config.h"
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
	struct watch *watch;   /* hot reload (runtime/reload.h); NULL: off */
	size_t cap_procs;      /* procs never moves: room for reloads */
	/* remote processors (runtime/remote.h): registrations over the API */
	remotes        *remotes;
	pthread_mutex_t procs_mu; /* appends to procs (reload, register) */
	pthread_mutex_t register_mu; /* one registration at a time */
} runtime;

/**
 * Open the stores, load the plugins, start processors and the API server.
 * @return SL_OK, or an error (logged) with nothing left running.
 */
int runtime_start(sl_config *cfg, runtime **out);
/** Stop the server, the processors and close everything. */
void runtime_stop(runtime *rt);

rt_tenant *runtime_tenant(runtime *rt, const char *id, size_t len);

/**
 * A projection or filter by id (UUID text, any case) or name: a plugin's
 * (also one its plugin dropped, whose read models are still served), else
 * a remote registration's. NULL if none. Valid until runtime_stop.
 */
const proj_def *runtime_find_def(runtime *rt, const char *id_or_name,
    size_t len);

/**
 * Start a processor of def for tenant t and append it to rt->procs, which
 * never moves (readers load n_procs with acquire). Serialised by procs_mu,
 * so hot reload and registrations can both add.
 * @return SL_OK; SL_ETOOBIG (no room left in procs); proc_start's codes.
 */
int runtime_add_proc(runtime *rt, rt_tenant *t, const proj_def *def);

/** The processor of (tenant, projection id), or NULL. */
processor *runtime_find_proc(runtime *rt, const char *tenant, const char *id);

/**
 * Register a remote projection or filter (op "register", docs/remote.md)
 * and start (or hand the new definition to) its processor of every tenant.
 * @return remote_register's codes, or a processor start's; err says why.
 */
int runtime_register(runtime *rt, const remote_spec *spec,
    remote_reg_result *out, char *err, size_t errlen);

#endif
