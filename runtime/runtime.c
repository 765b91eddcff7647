/*
 * The daemon's parts wired together: the event log, one read model store per
 * tenant, the plugin registry, a processor per (tenant, projection or
 * filter), an emitting run per (tenant, emitting or system projection), the
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

#include "api.h"
#include "event.h"
#include "fsutil.h"
#include "filter_validate.h"
#include "auth.h"
#include "filterfeed.h"
#include "guard.h"
#include "log.h"
#include "publisher.h"
#include "hostsup.h"
#include "reload.h"
#include "remote_expiry.h"
#include "server.h"
#include "admin.h"
#include "metrics.h"
#include "sysproj.h"
#include "tls.h"

static void transients_stop_all(runtime *rt);

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
static bool
hosted_file(void *arg, const char *path)
{
	return hostsup_owns(arg, path);
}

static void
follow_filter(runtime *rt, processor *p, const proj_def *def)
{
	if (rt->ff == NULL || !def_is_filter(def))
		return;
	proc_set_notify(p, ff_notify, rt->ff);
	ff_notify(rt->ff, proc_tenant(p), def->id);
}

/*
 * pub_admit_fn of the per-tenant feeds (endpoints.feeds): a connection
 * whose verified client certificate is an auth.subjects credential that
 * may read the tenant follows it; any other is closed, and the refusal
 * logged like an API refusal (rate-limited).
 */
static bool
feed_admit(void *arg, const char *tenant, nng_pipe pp)
{
	runtime         *rt = arg;
	sl_tls_peer_info pi;
	char             why[768];
	int              v = sl_tls_peer(pp, &pi);
	const cfg_cred  *c
	    = v == 1 ? auth_identify_subject(rt->cfg, pi.subject) : NULL;
	if (c != NULL && auth_has_role(c, CFG_ROLE_READ)
	    && auth_tenant_ok(c, tenant, strlen(tenant))) {
		log_info("feed",
		    "connection %d to tenant %s's feed admitted: credential "
		    "'%s' (subject \"%s\")",
		    nng_pipe_id(pp), tenant, c->name, pi.subject);
		return true;
	}
	if (v != 1)
		snprintf(why, sizeof(why),
		    "connection %d to tenant %s's feed closed: no client "
		    "certificate the CA verified",
		    nng_pipe_id(pp), tenant);
	else if (c == NULL)
		snprintf(why, sizeof(why),
		    "connection %d to tenant %s's feed closed: no "
		    "auth.subjects entry for subject \"%.400s\"",
		    nng_pipe_id(pp), tenant, pi.subject);
	else
		snprintf(why, sizeof(why),
		    "connection %d to tenant %s's feed closed: credential "
		    "'%s' may not read that tenant",
		    nng_pipe_id(pp), tenant, c->name);
	auth_log_refusal(c != NULL ? c->name : NULL, why);
	return false;
}

/* The API server's callbacks (server.h): it knows nothing of the API. */
static void
runtime_api_handle(void *rt, api_call *call, const void *data, size_t len)
{
	api_handle(rt, call, data, len);
}

static server_lane
runtime_api_classify(void *rt, const void *data, size_t len)
{
	(void) rt;
	return api_classify(data, len);
}

static void
runtime_api_pipe_closed(void *rt, uint32_t pipe)
{
	runtime_pipe_closed(rt, pipe);
}

static runtime_backend_fn pg_attach;

void
runtime_set_pg_backend(runtime_backend_fn attach)
{
	pg_attach = attach;
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
	grace_init(&rt->grace);
	pthread_mutex_init(&rt->transient_mu, NULL);
	pthread_mutex_init(&rt->queries_mu, NULL);
	pthread_cond_init(&rt->transient_cv, NULL);
	rt->next_handle = 1;
	bool *refused   = NULL; /* plugin projections whose claim failed */
	int   rc;

	if ((rc = sysproj_init(cfg)) != SL_OK) {
		log_error("runtime",
		    "cannot set up the system projections: %s",
		    sl_strerror(rc));
		goto fail;
	}
	/* before any listener: tls+tcp:// endpoints (docs/security.md) */
	if ((rc = net_tls_init(cfg)) != SL_OK)
		goto fail;

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
	if (cfg->store_backend == CFG_BACKEND_POSTGRESQL) {
		/* the LMDB log becomes this node's mirror of PostgreSQL's */
		rc = pg_attach != NULL ? pg_attach(
		         rt->store, cfg->store_url, cfg->store_timeout_ms)
		                       : SL_ECONFIG;
		if (rc != SL_OK) {
			log_error("runtime",
			    "cannot use the PostgreSQL event log: %s",
			    pg_attach != NULL ? sl_strerror(rc)
			                      : "this program has no "
			                        "PostgreSQL backend");
			goto fail;
		}
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
	/* what a crashed run left, marked before any processor starts */
	(void) guard_open(cfg->data_dir, cfg->handler_timeout_ms, tenant_rm, rt);

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
	if ((rc = fval_create(&rt->fval)) != SL_OK)
		goto fail;
	/* plugins with isolation: process run in hosts, not in here */
	if ((rc = hostsup_start(cfg, NULL, &rt->hosts)) != SL_OK)
		goto fail;
	/* under auth the hosts register with a credential of the daemon's
	 * own: register and read, every tenant, its token in their
	 * environment only (docs/security.md) */
	if (cfg->auth_on && hostsup_count(rt->hosts) > 0) {
		char token[65];
		if ((rc = auth_add_internal(cfg, "sluice-host",
		         CFG_ROLE_REGISTER | CFG_ROLE_READ, token))
		        != SL_OK
		    || (rc = hostsup_set_token(rt->hosts, token)) != SL_OK)
			goto fail;
		explicit_bzero(token, sizeof(token));
	}
	registry_set_skip(rt->plugins, hosted_file, rt->hosts);
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
	/* Under auth no feed: pub/sub cannot tell one subscriber from
	 * another, and the feed carries every tenant's events; subscribers
	 * follow by reads instead (docs/security.md, "The live feed"). */
	if (cfg->auth_on)
		log_info("runtime",
		    "auth: is on: no live feed of every tenant on %s "
		    "(subscribers read, or follow their tenant's feed of "
		    "endpoints.feeds)",
		    cfg->pub_url);
	pub_feed *feeds = calloc(cfg->n_feeds + 1, sizeof(*feeds));
	if (feeds == NULL) {
		rc = SL_ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < cfg->n_feeds; i++)
		feeds[i]
		    = (pub_feed) { cfg->feeds[i].tenant, cfg->feeds[i].url };
	if ((!cfg->auth_on || cfg->n_feeds > 0)
	    && (rc = pub_start(cfg->auth_on ? NULL : cfg->pub_url, feeds,
	            cfg->n_feeds, feed_admit, rt, rt->store, &rt->pub))
	        != SL_OK) {
		log_error("runtime", "cannot start the live feed on %s: %s",
		    cfg->auth_on ? "endpoints.feeds" : cfg->pub_url,
		    sl_strerror(rc));
		free(feeds);
		goto fail;
	}
	free(feeds);
	if (rt->pub != NULL
	    && (rc = ff_start(rt->pub, rt->store, tenant_rm, rt, &rt->ff))
	        != SL_OK) {
		log_error("runtime", "cannot start the filter stream feed: %s",
		    sl_strerror(rc));
		goto fail;
	}
	rt->cap_eprojs = cfg->n_tenants
	        * (SYSPROJ_COUNT
	            + (n_proj > RELOAD_MAX_PROJECTIONS
	                    ? n_proj
	                    : RELOAD_MAX_PROJECTIONS))
	    + 1;
	rt->eprojs = calloc(rt->cap_eprojs, sizeof(*rt->eprojs));
	refused    = calloc(n_proj + 1, sizeof(*refused));
	if (rt->eprojs == NULL || refused == NULL) {
		rc = SL_ENOMEM;
		goto fail;
	}
	if (cfg->run_projections == CFG_RUN_NONE)
		log_info("runtime",
		    "run_projections: none: no projection runs (neither "
		    "system nor plugin projections); filters run, read models "
		    "are served as they are");
	else if (cfg->run_projections == CFG_RUN_SYSTEM)
		log_info("runtime",
		    "run_projections: system: only the system projections "
		    "run (and filters); plugin projections do not");
	/* Claims first, all of them: a client commit is refused on an owned
	 * stream from the moment the API serves. */
	for (size_t i = 0; i < sysproj_count(); i++)
		runtime_claim(rt, sysproj_def(i));
	for (size_t j = 0; j < n_proj; j++) {
		const proj_def *def = registry_projection(rt->plugins, j);
		if (def != NULL && !def_is_filter(def)
		    && eproj_is_emitting(def)
		    && runtime_claim(rt, def) != SL_OK)
			refused[j] = true;
	}
	for (size_t i = 0; i < rt->n_tenants; i++) {
		rt_tenant *t = &rt->tenants[i];
		for (size_t j = 0; j < sysproj_count(); j++) {
			const proj_def *def = sysproj_def(j);
			if (!runtime_runs(rt, def, NULL, NULL))
				continue;
			if ((rc = runtime_add_eproj(rt, t, def)) != SL_OK) {
				log_error("runtime",
				    "tenant %s projection %s: cannot start: "
				    "%s",
				    t->cfg->id, def->name, sl_strerror(rc));
				goto fail;
			}
		}
		for (size_t j = 0; j < n_proj; j++) {
			const proj_def *def
			    = registry_projection(rt->plugins, j);
			if (def == NULL || refused[j]
			    || !runtime_runs(rt, def, NULL, NULL))
				continue;
			if (!def_is_filter(def) && eproj_is_emitting(def)) {
				rc = runtime_add_eproj(rt, t, def);
				if (rc != SL_OK) {
					log_error("runtime",
					    "tenant %s projection %s (%s): "
					    "cannot start: %s",
					    t->cfg->id, def->id, def->name,
					    sl_strerror(rc));
					goto fail;
				}
				continue;
			}
			rc = proc_start(rt->store, t->rm, t->cfg->id, def,
			    cfg->checkpoint_batch, &rt->procs[rt->n_procs]);
			if (rc != SL_OK) {
				log_error("runtime",
				    "tenant %s projection %s: cannot start "
				    "its "
				    "processor: %s",
				    t->cfg->id, def->id, sl_strerror(rc));
				goto fail;
			}
			follow_filter(rt, rt->procs[rt->n_procs], def);
			rt->n_procs++;
		}
	}
	free(refused);
	refused = NULL;

	remote_config rcfg = {
		.endpoint          = cfg->remote_url,
		.keepalive_ms      = cfg->remote_keepalive_ms,
		.timeout_ms        = cfg->remote_timeout_ms,
		.window            = cfg->remote_window,
		.batch             = cfg->remote_batch,
		.max_registrations = cfg->remote_max_registrations,
		/* under auth a registration's connection is bound to the
		 * client that registered it (docs/security.md) */
		.prove_clients = cfg->auth_on,
	};
	if ((rc = remotes_create(&rcfg, &rt->remotes)) != SL_OK) {
		log_error("runtime",
		    "cannot set up remote registrations on %s: %s",
		    cfg->remote_url != NULL ? cfg->remote_url : "(none)",
		    sl_strerror(rc));
		goto fail;
	}

	server_settings sset = {
		.url             = cfg->api_url,
		.max_request     = cfg->max_request_bytes,
		.workers         = cfg->api_workers,
		.slow_workers    = cfg->api_slow_workers,
		.slow_queue      = cfg->api_queue,
		.handle          = runtime_api_handle,
		.classify        = runtime_api_classify,
		.pipe_closed     = runtime_api_pipe_closed,
		.arg             = rt,
		.idle_timeout_ms = cfg->idle_timeout_ms,
		.max_connections = cfg->max_connections,
	};
	if ((rc = server_start(&sset, &rt->srv)) != SL_OK) {
		log_error("runtime", "cannot start the API server on %s: %s",
		    cfg->api_url, sl_strerror(rc));
		rt->srv = NULL;
		goto fail;
	}
	/* endpoints.metrics: a daemon asked to serve them that cannot does
	 * not start (the port is taken, or the host is wrong) */
	if (cfg->metrics_url != NULL
	    && (rc = metrics_start(rt, cfg->metrics_url, &rt->metrics))
	        != SL_OK)
		goto fail;
	if (cfg->admin_url != NULL
	    && (rc = admin_start(rt, cfg->admin_url, &rt->admin)) != SL_OK)
		goto fail;
	if ((rc = expiry_start(rt, cfg->remote_expiry_ms, &rt->expiry))
	    != SL_OK) {
		log_error("runtime",
		    "cannot start the registrations' expiry: %s",
		    sl_strerror(rc));
		goto fail;
	}
	/* the hosts register on the API, which serves now */
	if ((rc = hostsup_run(rt->hosts)) != SL_OK)
		goto fail;
	/* Without a watchable plugin_dir the daemon runs on, unreloadable. */
	if (cfg->hot_reload && reload_start(rt) != SL_OK)
		log_warn("runtime", "hot reload is off: cannot watch %s",
		    cfg->plugin_dir);
	*out = rt;
	return SL_OK;
fail:
	free(refused);
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
	/* no registration expires once stopping begins (one the expiry
	 * has taken out waits in its list, freed below) */
	expiry_stop(rt->expiry);
	/* the plugin hosts end (bounded: SIGKILL after HOSTSUP_STOP_MS);
	 * their registrations show disconnected; status reads them until the
	 * server and metrics stop */
	hostsup_stop(rt->hosts);
	admin_stop(rt->admin);
	rt->admin = NULL;
	metrics_stop(rt->metrics); /* reads status: while all is there */
	rt->metrics = NULL;
	if (rt->srv != NULL)
		server_stop(rt->srv); /* no registration comes any more */
	/* Validations call plugins and command processors: they end first
	 * (each within one plugin call; status no longer reads them). */
	fval_destroy(rt->fval);
	rt->fval = NULL;
	for (size_t i = 0; i < rt->n_procs; i++)
		proc_set_notify(rt->procs[i], NULL, NULL);
	ff_stop(rt->ff);   /* sends through the publisher */
	pub_stop(rt->pub); /* reads the store: before store_close */
	/* Remote calls in flight end and waiting remote processors wake, so
	 * that they stop promptly. */
	remotes_shutdown(rt->remotes);
	/* Transient runs: no connection can start or poll one any more. */
	transients_stop_all(rt);
	/* Processors and emitting runs use the plugins, the registrations
	 * and both stores: they stop first (an emitting run commits the
	 * batch it built through the store's writer). */
	for (size_t i = rt->n_eprojs; i > 0; i--)
		eproj_stop(rt->eprojs[i - 1]);
	free(rt->eprojs);
	for (size_t i = 0; i < rt->n_procs; i++)
		proc_stop_signal(rt->procs[i]); /* all at once, then each */
	for (size_t i = rt->n_procs; i > 0; i--)
		proc_stop(rt->procs[i - 1]);
	free(rt->procs);
	/* no API request or scrape runs any more: nobody holds them */
	expiry_free(rt->expiry);
	rt->expiry = NULL;
	remotes_destroy(rt->remotes);
	hostsup_free(rt->hosts);
	rt->hosts = NULL;
	if (rt->plugins != NULL)
		registry_destroy(rt->plugins);
	for (size_t i = rt->n_tenants; i > 0; i--)
		rm_close(rt->tenants[i - 1].rm);
	free(rt->tenants);
	if (rt->store != NULL)
		store_close(rt->store);
	sysproj_fini();
	net_tls_fini();
	grace_fini(&rt->grace);
	pthread_mutex_destroy(&rt->procs_mu);
	pthread_mutex_destroy(&rt->register_mu);
	pthread_mutex_destroy(&rt->transient_mu);
	pthread_mutex_destroy(&rt->queries_mu);
	pthread_cond_destroy(&rt->transient_cv);
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
	for (size_t i = 0; i < sysproj_count(); i++)
		if (proj_def_has_id(sysproj_def(i), id_or_name, len))
			return sysproj_def(i);
	for (size_t i = 0; i < sysproj_count(); i++)
		if (proj_def_has_name(sysproj_def(i), id_or_name, len))
			return sysproj_def(i);
	const proj_def *d = registry_find(rt->plugins, id_or_name, len);
	return d != NULL ? d : remotes_find(rt->remotes, id_or_name, len);
}

const proj_def *
runtime_find_def_held(
    runtime *rt, const char *id_or_name, size_t len, bool *live)
{
	const proj_def *d = NULL;
	/* system and remote definitions: host-owned vtables, no version */
	for (size_t i = 0; i < sysproj_count() && d == NULL; i++)
		if (proj_def_has_id(sysproj_def(i), id_or_name, len))
			d = sysproj_def(i);
	for (size_t i = 0; i < sysproj_count() && d == NULL; i++)
		if (proj_def_has_name(sysproj_def(i), id_or_name, len))
			d = sysproj_def(i);
	if (d == NULL) {
		d = registry_find_held(rt->plugins, id_or_name, len, live);
		if (d != NULL)
			return d;
		d = remotes_find(rt->remotes, id_or_name, len);
	}
	*live = d != NULL;
	return d;
}

bool
runtime_runs(runtime *rt, const proj_def *def, cfg_mode *mode,
    const proj_settings **set)
{
	cfg_mode             m = CFG_MODE_CONTINUOUS;
	const proj_settings *ps
	    = config_projection(rt->cfg, def->id, def->name, &m);
	if (mode != NULL)
		*mode = m;
	if (set != NULL)
		*set = ps;
	if (def_is_filter(def))
		return true;
	if (rt->cfg->run_projections == CFG_RUN_NONE)
		return false;
	/* what writes to the log needs a lease among nodes: not built yet
	 * (docs/postgresql.md); runtime_claim says so for plugin ones */
	if (rt->cfg->store_backend == CFG_BACKEND_POSTGRESQL
	    && eproj_is_emitting(def))
		return false;
	if (rt->cfg->run_projections == CFG_RUN_SYSTEM
	    && !sysproj_is_system(def))
		return false;
	/* one-time and transient projections run only when queried */
	return m == CFG_MODE_CONTINUOUS;
}

int
runtime_claim(runtime *rt, const proj_def *def)
{
	char err[512];
	int  rc;
	if (rt->cfg->store_backend == CFG_BACKEND_POSTGRESQL
	    && !sysproj_is_system(def)) {
		char reason[700];
		snprintf(reason, sizeof(reason),
		    "projection '%s' (%s) does not run: it emits events, and "
		    "emitting projections do not run on 'event_store.backend: "
		    "postgresql' yet (docs/postgresql.md)",
		    def->name, def->id);
		log_error("runtime", "%s", reason);
		registry_set_refused(rt->plugins, def->id, reason);
		return SL_ECONFIG;
	}
	rc = eproj_claim(rt->store, def, err, sizeof(err));
	if (rc == SL_OK) {
		registry_set_refused(rt->plugins, def->id, NULL);
		return rc;
	}
	if (err[0] == '\0')
		snprintf(err, sizeof(err), "%s", sl_strerror(rc));
	log_error("runtime",
	    "projection %s (%s) does not run: its output streams cannot be "
	    "claimed: %s",
	    def->id, def->name, err);
	char reason[700];
	snprintf(reason, sizeof(reason),
	    "projection '%s' (%s) does not run: %s", def->name, def->id, err);
	registry_set_refused(rt->plugins, def->id, reason);
	return rc;
}

int
runtime_add_eproj(runtime *rt, rt_tenant *t, const proj_def *def)
{
	const proj_settings *set;
	eproj               *e;
	int                  rc;

	runtime_runs(rt, def, NULL, &set);
	/* the config's word; a persisted operator start or stop wins */
	bool stopped
	    = sysproj_is_system(def) && !rt->cfg->start_standard_projections;
	pthread_mutex_lock(&rt->procs_mu);
	if (rt->n_eprojs >= rt->cap_eprojs) {
		pthread_mutex_unlock(&rt->procs_mu);
		return SL_ETOOBIG;
	}
	rc = eproj_start(
	    rt->store, t->cfg->id, def, CFG_MODE_CONTINUOUS, set, stopped, &e);
	if (rc == SL_OK) {
		rt->eprojs[rt->n_eprojs] = e;
		__atomic_store_n(
		    &rt->n_eprojs, rt->n_eprojs + 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&rt->procs_mu);
	return rc;
}

eproj *
runtime_find_eproj(runtime *rt, const char *tenant, const char *id)
{
	size_t n = __atomic_load_n(&rt->n_eprojs, __ATOMIC_ACQUIRE);
	for (size_t i = 0; i < n; i++)
		if (strcmp(eproj_tenant(rt->eprojs[i]), tenant) == 0
		    && strcmp(eproj_id(rt->eprojs[i]), id) == 0)
			return rt->eprojs[i];
	return NULL;
}

/* ---- one-time queries, for status ---- */

rt_query *
runtime_query_begin(
    runtime *rt, const char *tenant, const proj_def *def, uint64_t head)
{
	rt_query *q = NULL;
	pthread_mutex_lock(&rt->queries_mu);
	for (size_t i = 0; i < RT_MAX_QUERIES && q == NULL; i++)
		if (!rt->queries[i].used)
			q = &rt->queries[i];
	if (q != NULL) {
		memset(q, 0, sizeof(*q));
		q->used = true;
		snprintf(q->tenant, sizeof(q->tenant), "%s", tenant);
		snprintf(q->id, sizeof(q->id), "%s", def->id);
		snprintf(q->name, sizeof(q->name), "%s", def->name);
		q->head       = head;
		q->started_ns = ev_now_ns();
	}
	pthread_mutex_unlock(&rt->queries_mu);
	return q;
}

void
runtime_query_end(runtime *rt, rt_query *q)
{
	if (q == NULL)
		return;
	pthread_mutex_lock(&rt->queries_mu);
	q->used = false;
	pthread_mutex_unlock(&rt->queries_mu);
}

/* ---- transient runs (op query, mode transient) ---- */

static void *
transient_closer(void *arg)
{
	void          **a     = arg;
	runtime        *rt    = a[0];
	eproj          *e     = a[1];
	const proj_def *owned = a[2];
	free(a);
	eproj_stop(e);
	proj_def_release(owned); /* after the run's own release: unloads */
	pthread_mutex_lock(&rt->transient_mu);
	rt->closers--;
	pthread_cond_broadcast(&rt->transient_cv);
	pthread_mutex_unlock(&rt->transient_mu);
	return NULL;
}

/*
 * Stop a slot's run (transient_mu held; the slot has no refs and is
 * freed here). On a thread of its own: this runs in NNG's pipe callback,
 * which must not wait for a plugin's handler.
 */
static void
transient_release_locked(runtime *rt, rt_transient *tr)
{
	eproj          *e     = tr->e;
	const proj_def *owned = tr->owned;
	memset(tr, 0, sizeof(*tr));
	void **a = malloc(3 * sizeof(*a));
	if (a != NULL) {
		pthread_t      th;
		pthread_attr_t at;
		a[0] = rt;
		a[1] = e;
		a[2] = (void *) owned;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		rt->closers++;
		if (pthread_create(&th, &at, transient_closer, a) == 0) {
			pthread_attr_destroy(&at);
			return;
		}
		pthread_attr_destroy(&at);
		rt->closers--;
		free(a);
	}
	/* no thread: stop it here */
	pthread_mutex_unlock(&rt->transient_mu);
	eproj_stop(e);
	proj_def_release(owned);
	pthread_mutex_lock(&rt->transient_mu);
}

static rt_transient *
transient_find_locked(runtime *rt, uint64_t handle)
{
	for (size_t i = 0; handle != 0 && i < RT_MAX_TRANSIENT; i++)
		if (rt->transients[i].handle == handle
		    && !rt->transients[i].closing)
			return &rt->transients[i];
	return NULL;
}

static void
transient_close_locked(runtime *rt, rt_transient *tr)
{
	tr->closing = true;
	if (tr->refs == 0)
		transient_release_locked(rt, tr);
}

int
runtime_transient_open(runtime *rt, uint32_t pipe, rt_tenant *t,
    const proj_def *def, bool take_hold, uint64_t *handle, char *err,
    size_t errlen)
{
	rt_transient *slot = NULL;
	eproj        *e;
	int           rc;

	*handle = 0;
	pthread_mutex_lock(&rt->transient_mu);
	for (size_t i = 0; i < RT_MAX_TRANSIENT && slot == NULL; i++)
		if (rt->transients[i].handle == 0
		    && rt->transients[i].e == NULL)
			slot = &rt->transients[i];
	if (slot == NULL) {
		pthread_mutex_unlock(&rt->transient_mu);
		snprintf(err, errlen,
		    "%d transient projections run already (the limit): close "
		    "one first",
		    RT_MAX_TRANSIENT);
		return SL_ETOOBIG;
	}
	/* checked under the lock that runtime_pipe_closed takes after the
	 * connection left the server's set: a run never outlives it */
	if (pipe == 0 || rt->srv == NULL
	    || !server_pipe_alive(rt->srv, pipe)) {
		pthread_mutex_unlock(&rt->transient_mu);
		snprintf(err, errlen, "the client's connection is gone");
		return SL_ECLOSED;
	}
	const proj_settings *set;
	runtime_runs(rt, def, NULL, &set);
	rc = eproj_start(
	    rt->store, t->cfg->id, def, CFG_MODE_TRANSIENT, set, false, &e);
	if (rc != SL_OK) {
		pthread_mutex_unlock(&rt->transient_mu);
		snprintf(err, errlen,
		    "cannot start a transient run of '%s': %s", def->name,
		    sl_strerror(rc));
		return rc;
	}
	slot->handle = rt->next_handle++;
	slot->pipe   = pipe;
	slot->e      = e;
	slot->owned  = take_hold ? def : NULL;
	*handle      = slot->handle;
	/* under the lock: once it is let go, the connection may end the run,
	 * and with it an owned def */
	log_info("runtime",
	    "tenant %s projection %s (%s): transient run %llu "
	    "started",
	    t->cfg->id, def->id, def->name, (unsigned long long) *handle);
	pthread_mutex_unlock(&rt->transient_mu);
	return SL_OK;
}

eproj *
runtime_transient_get(runtime *rt, uint64_t handle)
{
	eproj *e = NULL;
	pthread_mutex_lock(&rt->transient_mu);
	rt_transient *tr = transient_find_locked(rt, handle);
	if (tr != NULL) {
		tr->refs++;
		e = tr->e;
	}
	pthread_mutex_unlock(&rt->transient_mu);
	return e;
}

void
runtime_transient_put(runtime *rt, uint64_t handle)
{
	pthread_mutex_lock(&rt->transient_mu);
	for (size_t i = 0; i < RT_MAX_TRANSIENT; i++) {
		rt_transient *tr = &rt->transients[i];
		if (tr->handle != handle || tr->refs == 0)
			continue;
		if (--tr->refs == 0 && tr->closing)
			transient_release_locked(rt, tr);
		break;
	}
	pthread_mutex_unlock(&rt->transient_mu);
}

int
runtime_transient_close(runtime *rt, uint64_t handle)
{
	pthread_mutex_lock(&rt->transient_mu);
	rt_transient *tr = transient_find_locked(rt, handle);
	if (tr != NULL)
		transient_close_locked(rt, tr);
	pthread_mutex_unlock(&rt->transient_mu);
	if (tr != NULL)
		log_info("runtime", "transient run %llu closed",
		    (unsigned long long) handle);
	return tr != NULL ? SL_OK : SL_ENOTFOUND;
}

void
runtime_pipe_closed(runtime *rt, uint32_t pipe)
{
	pthread_mutex_lock(&rt->transient_mu);
	for (size_t i = 0; i < RT_MAX_TRANSIENT; i++) {
		rt_transient *tr = &rt->transients[i];
		if (tr->handle != 0 && !tr->closing && tr->pipe == pipe) {
			log_info("runtime",
			    "transient run %llu ends: its client "
			    "disconnected",
			    (unsigned long long) tr->handle);
			transient_close_locked(rt, tr);
		}
	}
	pthread_mutex_unlock(&rt->transient_mu);
}

/* At stop (no API call runs any more): every run ends, every closer has
 * finished. */
static void
transients_stop_all(runtime *rt)
{
	pthread_mutex_lock(&rt->transient_mu);
	for (size_t i = 0; i < RT_MAX_TRANSIENT; i++) {
		rt_transient *tr = &rt->transients[i];
		if (tr->e != NULL) {
			tr->refs = 0; /* no API call runs any more */
			transient_close_locked(rt, tr);
		}
	}
	while (rt->closers > 0)
		pthread_cond_wait(&rt->transient_cv, &rt->transient_mu);
	pthread_mutex_unlock(&rt->transient_mu);
}

processor *
runtime_find_proc(runtime *rt, const char *tenant, const char *id)
{
	processor *p = NULL;
	pthread_mutex_lock(&rt->procs_mu);
	for (size_t i = 0; p == NULL && i < rt->n_procs; i++)
		if (strcmp(proc_tenant(rt->procs[i]), tenant) == 0
		    && strcmp(proc_projection_id(rt->procs[i]), id) == 0)
			p = rt->procs[i];
	pthread_mutex_unlock(&rt->procs_mu);
	return p;
}

processor **
runtime_procs(runtime *rt, size_t *n)
{
	pthread_mutex_lock(&rt->procs_mu);
	processor **v
	    = rt->n_procs > 0 ? malloc(rt->n_procs * sizeof(*v)) : NULL;
	*n = v != NULL ? rt->n_procs : 0;
	if (v != NULL)
		memcpy(v, rt->procs, rt->n_procs * sizeof(*v));
	pthread_mutex_unlock(&rt->procs_mu);
	return v;
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
runtime_register(runtime *rt, const remote_spec *spec, const cfg_cred *cred,
    remote_reg_result *out, char *err, size_t errlen)
{
	int rc;
	pthread_mutex_lock(&rt->register_mu);
	rc = remote_register(rt->remotes, spec, rt->plugins, out, err, errlen);
	for (size_t i = 0; rc == SL_OK && i < rt->n_tenants; i++) {
		rt_tenant *t = &rt->tenants[i];
		/* only the registering credential's tenants' events go to
		 * its client (a takeover is the same credential's) */
		if (!auth_tenant_ok(cred, t->cfg->id, strlen(t->cfg->id)))
			continue;
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
