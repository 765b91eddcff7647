/*
 * The daemon's parts wired together: the event log, one read model store per
 * tenant, the plugin registry, a processor per (tenant, projection) and the
 * API server. Started in that order and stopped in reverse.
 */
#include "runtime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sluice/errors.h>

#include "event.h"
#include "fsutil.h"
#include "log.h"
#include "publisher.h"
#include "reload.h"
#include "server.h"

/* mkdir -p, logged and mapped to sl_err. */
static int
make_dirs(const char *path)
{
	if (fs_mkdirs(path) == 0)
		return SL_OK;
	if (errno == ENOMEM)
		return SL_ENOMEM;
	log_error("runtime", "cannot create directory %s: %s", path,
	    strerror(errno));
	return SL_ESTORAGE;
}

int
runtime_start(sl_config *cfg, runtime **out)
{
	*out        = NULL;
	runtime *rt = calloc(1, sizeof(*rt));
	if (rt == NULL)
		return SL_ENOMEM;
	rt->cfg        = cfg;
	rt->started_ns = ev_now_ns();
	int rc;

	if ((rc = make_dirs(cfg->data_dir)) != SL_OK
	    || (rc = make_dirs(cfg->store_path)) != SL_OK)
		goto fail;
	rc = store_open(
	    cfg->store_path, cfg->store_map_size, cfg->store_sync, &rt->store);
	if (rc != SL_OK) {
		log_error("runtime", "cannot open the event store %s: %s",
		    cfg->store_path, sl_strerror(rc));
		goto fail;
	}

	rt->tenants = calloc(
	    cfg->n_tenants ? cfg->n_tenants : 1, sizeof(*rt->tenants));
	if (rt->tenants == NULL) {
		rc = SL_ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < cfg->n_tenants; i++) {
		const cfg_tenant *t = &cfg->tenants[i];
		rc = rm_open(t->rm_path, t->rm_map_size, cfg->store_sync,
		    &rt->tenants[i].rm);
		if (rc != SL_OK) {
			log_error("runtime",
			    "tenant %s: cannot open the read model store %s: "
			    "%s",
			    t->id, t->rm_path, sl_strerror(rc));
			goto fail;
		}
		rt->tenants[i].cfg = t;
		rt->n_tenants++;
	}

	char cache[4096];
	if (snprintf(cache, sizeof(cache), "%s/plugin-cache", cfg->data_dir)
	    >= (int) sizeof(cache)) {
		rc = SL_ECONFIG;
		goto fail;
	}
	if ((rc = registry_create(cache, &rt->plugins)) != SL_OK) {
		log_error("runtime",
		    "cannot create the plugin registry in %s: %s", cache,
		    sl_strerror(rc));
		goto fail;
	}
	if (registry_load_dir(rt->plugins, cfg->plugin_dir) != SL_OK)
		log_warn("runtime",
		    "plugin directory %s cannot be read: no plugins loaded",
		    cfg->plugin_dir);

	size_t n_proj = registry_projection_count(rt->plugins);
	/* room for projections that reloaded plugins add */
	rt->cap_procs = cfg->n_tenants
	        * (n_proj > RELOAD_MAX_PROJECTIONS ? n_proj
	                                           : RELOAD_MAX_PROJECTIONS)
	    + 1;
	rt->procs = calloc(rt->cap_procs, sizeof(*rt->procs));
	if (rt->procs == NULL) {
		rc = SL_ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < rt->n_tenants; i++) {
		for (size_t j = 0; j < n_proj; j++) {
			const proj_def *def
			    = registry_projection(rt->plugins, j);
			rc = proc_start(rt->store, rt->tenants[i].rm,
			    rt->tenants[i].cfg->id, def, cfg->checkpoint_batch,
			    &rt->procs[rt->n_procs]);
			if (rc != SL_OK) {
				log_error("runtime",
				    "tenant %s projection %s: cannot start "
				    "its "
				    "processor: %s",
				    rt->tenants[i].cfg->id, def->id,
				    sl_strerror(rc));
				goto fail;
			}
			rt->n_procs++;
		}
	}

	/* Before the server: every commit it acknowledges is published. */
	if ((rc = pub_start(cfg->pub_url, rt->store, &rt->pub)) != SL_OK) {
		log_error("runtime", "cannot start the live feed on %s: %s",
		    cfg->pub_url, sl_strerror(rc));
		goto fail;
	}
	if ((rc = server_start(rt, &rt->srv)) != SL_OK) {
		log_error("runtime", "cannot start the API server on %s: %s",
		    cfg->api_url, sl_strerror(rc));
		rt->srv = NULL;
		goto fail;
	}
	/* Without a watchable plugin_dir the daemon runs on, unreloadable. */
	if (cfg->hot_reload && reload_start(rt) != SL_OK)
		log_warn("runtime", "hot reload is off: cannot watch %s",
		    cfg->plugin_dir);
	*out = rt;
	return SL_OK;
fail:
	runtime_stop(rt);
	return rc;
}

void
runtime_stop(runtime *rt)
{
	if (rt == NULL)
		return;
	if (rt->watch != NULL)
		reload_stop(rt); /* no reload once stopping begins */
	if (rt->srv != NULL)
		server_stop(rt->srv);
	pub_stop(rt->pub); /* reads the store: before store_close */
	/* Processors use the plugins and both stores: they stop first. */
	for (size_t i = rt->n_procs; i > 0; i--)
		proc_stop(rt->procs[i - 1]);
	free(rt->procs);
	if (rt->plugins != NULL)
		registry_destroy(rt->plugins);
	for (size_t i = rt->n_tenants; i > 0; i--)
		rm_close(rt->tenants[i - 1].rm);
	free(rt->tenants);
	if (rt->store != NULL)
		store_close(rt->store);
	free(rt);
}

rt_tenant *
runtime_tenant(runtime *rt, const char *id, size_t len)
{
	for (size_t i = 0; i < rt->n_tenants; i++) {
		const char *tid = rt->tenants[i].cfg->id;
		if (strlen(tid) == len && memcmp(tid, id, len) == 0)
			return &rt->tenants[i];
	}
	return NULL;
}
