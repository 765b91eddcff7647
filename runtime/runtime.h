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
	struct watch *watch;   /* hot reload (runtime/reload.h); NULL: off */
	size_t cap_procs;      /* procs never moves: room for reloads */
} runtime;

/**
 * Open the stores, load the plugins, start processors and the API server.
 * @return SL_OK, or an error (logged) with nothing left running.
 */
int runtime_start(sl_config *cfg, runtime **out);
/** Stop the server, the processors and close everything. */
void runtime_stop(runtime *rt);

rt_tenant *runtime_tenant(runtime *rt, const char *id, size_t len);

#endif
