/*
 * The daemon's parts wired together: the event log, one read model store per
 * tenant, the plugin registry, a processor per (tenant, projection), the
 * remote registrations (whose processors start when a client registers) and
 * the API server. Started in that order and stopped in reverse.
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
#include "filterfeed.h"
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

/* ff_tenant_fn: a tenant's read model store. */
static rmstore *
tenant_rm(void *ctx, const char *tenant)
{
	rt_tenant *t = runtime_tenant(ctx, tenant, strlen(tenant));
	return t != NULL ? t->rm : NULL;
}

/* A filter's processor tells the feed when its stream changes; the feed
 * follows the stream from where it is now. */
static void
follow_filter(runtime *rt, processor *p, const proj_def *def)
{
	if (rt->ff == NULL || !def_is_filter(def))
		return;
	proc_set_notify(p, ff_notify, rt->ff);
	ff_notify(rt->ff, proc_tenant(p), def->id);
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
	pthread_mutex_init(&rt->procs_mu, NULL);
	pthread_mutex_init(&rt->register_mu, NULL);
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
	/* room for projections that reloaded plugins add, and for remote
	 * registrations */
	rt->cap_procs = cfg->n_tenants
	        * ((n_proj > RELOAD_MAX_PROJECTIONS ? n_proj
	                                            : RELOAD_MAX_PROJECTIONS)
	            + cfg->remote_max_registrations)
	    + 1;
	rt->procs = calloc(rt->cap_procs, sizeof(*rt->procs));
	if (rt->procs == NULL) {
		rc = SL_ENOMEM;
		goto fail;
	}
	/* Before the server: every commit it acknowledges is published;
	 * before the processors: every filter stream entry too. */
	if ((rc = pub_start(cfg->pub_url, rt->store, &rt->pub)) != SL_OK) {
		log_error("runtime", "cannot start the live feed on %s: %s",
		    cfg->pub_url, sl_strerror(rc));
		goto fail;
	}
	if ((rc = ff_start(rt->pub, rt->store, tenant_rm, rt, &rt->ff))
	    != SL_OK) {
		log_error("runtime", "cannot start the filter stream feed: %s",
		    sl_strerror(rc));
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
			follow_filter(rt, rt->procs[rt->n_procs], def);
			rt->n_procs++;
		}
	}

	remote_config rcfg = {
		.endpoint          = cfg->remote_url,
		.keepalive_ms      = cfg->remote_keepalive_ms,
		.timeout_ms        = cfg->remote_timeout_ms,
		.window            = cfg->remote_window,
		.max_registrations = cfg->remote_max_registrations,
	};
	if ((rc = remotes_create(&rcfg, &rt->remotes)) != SL_OK) {
		log_error("runtime",
		    "cannot set up remote registrations on %s: %s",
		    cfg->remote_url != NULL ? cfg->remote_url : "(none)",
		    sl_strerror(rc));
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
		server_stop(rt->srv); /* no registration comes any more */
	for (size_t i = 0; i < rt->n_procs; i++)
		proc_set_notify(rt->procs[i], NULL, NULL);
	ff_stop(rt->ff);   /* sends through the publisher */
	pub_stop(rt->pub); /* reads the store: before store_close */
	/* Remote calls in flight end and waiting remote processors wake, so
	 * that they stop promptly. */
	remotes_shutdown(rt->remotes);
	/* Processors use the plugins, the registrations and both stores:
	 * they stop first. */
	for (size_t i = rt->n_procs; i > 0; i--)
		proc_stop(rt->procs[i - 1]);
	free(rt->procs);
	remotes_destroy(rt->remotes);
	if (rt->plugins != NULL)
		registry_destroy(rt->plugins);
	for (size_t i = rt->n_tenants; i > 0; i--)
		rm_close(rt->tenants[i - 1].rm);
	free(rt->tenants);
	if (rt->store != NULL)
		store_close(rt->store);
	pthread_mutex_destroy(&rt->procs_mu);
	pthread_mutex_destroy(&rt->register_mu);
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

const proj_def *
runtime_find_def(runtime *rt, const char *id_or_name, size_t len)
{
	const proj_def *d = registry_find(rt->plugins, id_or_name, len);
	return d != NULL ? d : remotes_find(rt->remotes, id_or_name, len);
}

processor *
runtime_find_proc(runtime *rt, const char *tenant, const char *id)
{
	size_t n = __atomic_load_n(&rt->n_procs, __ATOMIC_ACQUIRE);
	for (size_t i = 0; i < n; i++)
		if (strcmp(proc_tenant(rt->procs[i]), tenant) == 0
		    && strcmp(proc_projection_id(rt->procs[i]), id) == 0)
			return rt->procs[i];
	return NULL;
}

int
runtime_add_proc(runtime *rt, rt_tenant *t, const proj_def *def)
{
	processor *p;
	int        rc;
	pthread_mutex_lock(&rt->procs_mu);
	if (rt->n_procs >= rt->cap_procs) {
		pthread_mutex_unlock(&rt->procs_mu);
		return SL_ETOOBIG;
	}
	rc = proc_start(
	    rt->store, t->rm, t->cfg->id, def, rt->cfg->checkpoint_batch, &p);
	if (rc == SL_OK) {
		follow_filter(rt, p, def);
		rt->procs[rt->n_procs] = p;
		__atomic_store_n(
		    &rt->n_procs, rt->n_procs + 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&rt->procs_mu);
	return rc;
}

int
runtime_register(runtime *rt, const remote_spec *spec, remote_reg_result *out,
    char *err, size_t errlen)
{
	int rc;
	pthread_mutex_lock(&rt->register_mu);
	rc = remote_register(rt->remotes, spec, rt->plugins, out, err, errlen);
	for (size_t i = 0; rc == SL_OK && i < rt->n_tenants; i++) {
		rt_tenant *t = &rt->tenants[i];
		processor *p = runtime_find_proc(rt, t->cfg->id, out->def->id);
		if (p != NULL) {
			/* a takeover: same definition, or rebuild */
			if (out->def != out->old_def)
				proc_set_def(p, out->def);
			continue;
		}
		int prc = runtime_add_proc(rt, t, out->def);
		if (prc != SL_OK) {
			/* the registration stands; a takeover retries */
			log_error("runtime",
			    "tenant %s %s %s (%s): cannot start its "
			    "processor: %s",
			    t->cfg->id,
			    def_is_filter(out->def) ? "filter" : "projection",
			    out->def->id, out->def->name, sl_strerror(prc));
			snprintf(err, errlen,
			    "registered, but tenant %s's processor cannot "
			    "start: %s",
			    t->cfg->id, sl_strerror(prc));
			rc = prc;
		}
	}
	pthread_mutex_unlock(&rt->register_mu);
	return rc;
}
