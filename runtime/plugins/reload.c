/*
 * Hot reload in the running daemon: turns a plugin file's change into a
 * registry reload (or unload) and hands the resulting definitions to the
 * processors and emitting runs. Runs on the watcher's thread only, so
 * reloads never overlap; processors and API threads go on meanwhile.
 *
 * Filters: a definition that stays the same while the code changes is
 * validated per tenant (filter_validate.h); any change of a filter ends
 * the validation of its older code first.
 *
 * Emitting projections: a changed or added definition claims its streams
 * anew (a refusal stops its runs and shows as the plugin's error); a
 * dropped one gives up its claims on declared streams, while the "owners"
 * records of the streams it did write keep protecting them from clients
 * and other projections (its states stay readable).
 */
#include "reload.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sluice/errors.h>

#include "filter_validate.h"
#include "log.h"
#include "watch.h"

/*
 * A processor for a projection or filter the new version adds (appended to
 * rt->procs under its lock: registrations append too).
 */
static void
start_proc(runtime *rt, rt_tenant *t, const proj_def *def)
{
	int rc = runtime_add_proc(rt, t, def);
	if (rc != SL_OK)
		log_error("reload",
		    "tenant %s %s %s (%s): cannot start its processor: %s",
		    t->cfg->id, def_is_filter(def) ? "filter" : "projection",
		    def->id, def->name,
		    rc == SL_ETOOBIG ? "too many processors"
		                     : sl_strerror(rc));
}

/* Start validating a filter's new code against its stream (logged when
 * it cannot). */
static void
validate_filter(runtime *rt, rt_tenant *t, processor *p, const proj_def *def)
{
	int rc = fval_start(rt->fval, rt->store, t->rm, p, def);
	if (rc != SL_OK)
		log_warn("reload",
		    "tenant %s filter %s (%s): its stream is not validated "
		    "against the new code: %s",
		    t->cfg->id, def->id, def->name, sl_strerror(rc));
}

static void
start_eproj(runtime *rt, rt_tenant *t, const proj_def *def)
{
	int rc = runtime_add_eproj(rt, t, def);
	if (rc != SL_OK)
		log_error("reload",
		    "tenant %s projection %s (%s): cannot start: %s",
		    t->cfg->id, def->id, def->name,
		    rc == SL_ETOOBIG ? "too many emitting projections"
		                     : sl_strerror(rc));
}

/* Stop a processor or emitting run of another kind than nd (a reload
 * turned a projection emitting, or back). */
static void
drop_other_kind(runtime *rt, rt_tenant *t, const proj_def *nd, bool emitting)
{
	if (emitting) {
		processor *p = runtime_find_proc(rt, t->cfg->id, nd->id);
		if (p != NULL)
			proc_set_def(p, NULL);
	} else {
		eproj *e = runtime_find_eproj(rt, t->cfg->id, nd->id);
		if (e != NULL)
			eproj_set_def(e, NULL);
	}
}

/* A new or changed emitting definition: its claims follow it. @return
 * whether it may run. */
static bool
claim_new(runtime *rt, const proj_def *od, const proj_def *nd)
{
	/* the old claims go first: the new definition may declare less, or
	 * other streams */
	if (od != NULL && !def_is_filter(od) && eproj_is_emitting(od))
		store_unclaim(rt->store, od->id);
	return runtime_claim(rt, nd) == SL_OK;
}

static void
apply(runtime *rt, const proj_change *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const proj_def *nd = c[i].new_def, *od = c[i].old_def;
		const proj_def *d = nd != NULL ? nd : od;
		bool emitting     = !def_is_filter(d) && eproj_is_emitting(d);
		/* new code, same definition: its stream is validated */
		bool validate = nd != NULL && od != NULL && def_is_filter(nd)
		    && nd->def_hash == od->def_hash;
		log_info("reload", "%s %s (%s): %s",
		    def_is_filter(d) ? "filter" : "projection", d->id, d->name,
		    od == NULL       ? "added: builds from position 0"
		        : nd == NULL ? "dropped: its processors stop, what "
		                       "it built stays and is served"
		        : validate
		        ? "same definition: new code continues from the "
		          "checkpoint; its stream is validated against it"
		        : nd->def_hash == od->def_hash
		        ? "same definition: new code continues from the "
		          "checkpoint"
		        : emitting
		        ? "definition changed: what it wrote is "
		          "removed and rewritten from position 0"
		        : "definition changed: rebuilt from "
		          "position 0 while the old read models are "
		          "served");
		if (nd != NULL
		    && remotes_find(rt->remotes, nd->id, strlen(nd->id))
		        != NULL) {
			log_error("reload",
			    "%s %s (%s): not run: a remote client registered "
			    "this id",
			    def_is_filter(nd) ? "filter" : "projection",
			    nd->id, nd->name);
			continue;
		}
		if (nd == NULL && od != NULL && !def_is_filter(od)
		    && eproj_is_emitting(od))
			store_unclaim(rt->store, od->id);
		/* a refused claim is only news while it is tried again */
		if (nd == NULL || !emitting)
			registry_set_refused(rt->plugins, d->id, NULL);
		if (def_is_filter(d)) /* what it checked is moot now */
			fval_cancel(rt->fval, d->id);
		bool run = nd != NULL && runtime_runs(rt, nd, NULL, NULL);
		if (nd != NULL && emitting && !claim_new(rt, od, nd))
			run = false;
		for (size_t k = 0; k < rt->n_tenants; k++) {
			rt_tenant *t = &rt->tenants[k];
			if (nd != NULL)
				drop_other_kind(rt, t, nd, emitting);
			if (emitting) {
				eproj *e = runtime_find_eproj(
				    rt, t->cfg->id, d->id);
				if (e != NULL)
					eproj_set_def(e, run ? nd : NULL);
				else if (run)
					start_eproj(rt, t, nd);
				continue;
			}
			processor *p
			    = runtime_find_proc(rt, t->cfg->id, d->id);
			if (p != NULL)
				proc_set_def(
				    p, run ? nd : NULL); /* NULL: stop */
			else if (run)
				start_proc(rt, t, nd);
			if (p != NULL && run && validate)
				validate_filter(rt, t, p, nd);
		}
	}
}

static void
unload(runtime *rt, const char *path)
{
	proj_change *c;
	size_t       n;
	if (registry_unload_file(rt->plugins, path, &c, &n) == SL_OK) {
		apply(rt, c, n);
		free(c);
	}
}

/* Whether the process is out of file descriptors now, or err says it
 * was (they may have come back since the load failed). */
static bool
out_of_fds(const char *err)
{
	if (strstr(err, strerror(EMFILE)) != NULL
	    || strstr(err, strerror(ENFILE)) != NULL)
		return true;
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		return false;
	}
	return errno == EMFILE || errno == ENFILE;
}

bool
reload_file(runtime *rt, const char *path)
{
	struct stat sb;
	if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		/* removed, renamed away, or replaced by a non-file */
		if (registry_has_file(rt->plugins, path))
			unload(rt, path);
		return false;
	}
	proj_change *c;
	size_t       n;
	char         err[1024];
	/* a refusal is logged and kept for status by the registry */
	if (registry_reload_file(rt->plugins, path, &c, &n, err, sizeof(err))
	    == SL_OK) {
		apply(rt, c, n);
		free(c);
		return false;
	}
	return out_of_fds(err);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

void
reload_rescan(runtime *rt)
{
	const char *dir = rt->cfg->plugin_dir;
	/* files the registry lists but the directory lost */
	size_t np   = registry_plugin_count(rt->plugins);
	char **gone = calloc(np + 1, sizeof(*gone));
	size_t ng   = 0;
	for (size_t i = 0; gone != NULL && i < np; i++) {
		plugin_info pi;
		struct stat sb;
		registry_plugin_info(rt->plugins, i, &pi);
		if (pi.file != NULL
		    && (stat(pi.file, &sb) != 0 || !S_ISREG(sb.st_mode)))
			gone[ng++] = strdup(pi.file);
	}
	for (size_t i = 0; i < ng; i++) {
		if (gone[i] != NULL)
			unload(rt, gone[i]);
		free(gone[i]);
	}
	free(gone);

	DIR *d = opendir(dir);
	if (d == NULL) {
		log_warn("reload", "cannot read the plugin directory %s: %s",
		    dir, strerror(errno));
		return;
	}
	char         **names = NULL;
	size_t         n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (len < 4 || !plugin_file_name(de->d_name))
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char **nn   = realloc(names, ncap * sizeof(*nn));
			if (nn == NULL)
				break;
			names = nn;
			cap   = ncap;
		}
		if (asprintf(&names[n], "%s/%s", dir, de->d_name) >= 0)
			n++;
	}
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof(*names), cmp_str);
	/* files loaded at start come back with the same bytes: skipped */
	for (size_t i = 0; i < n; i++) {
		reload_file(rt, names[i]);
		free(names[i]);
	}
	free(names);
}

static int
on_change(void *arg, const char *path)
{
	runtime *rt = arg;
	if (path == NULL) {
		reload_rescan(rt);
		return 0;
	}
	/* e.g. a flood of connections holds every descriptor: NNG closes
	 * those that never finish the SP header after 10 s */
	if (reload_file(rt, path)) {
		log_warn("reload",
		    "%s: out of file descriptors; trying again later", path);
		return 1;
	}
	return 0;
}

void
reload_request_rescan(runtime *rt)
{
	if (rt->watch != NULL)
		watch_rescan(rt->watch); /* on the watch's thread */
	else
		reload_rescan(rt); /* hot reload off: nothing else reloads */
}

int
reload_start(runtime *rt)
{
	return watch_start(rt->cfg->plugin_dir,
	    (int) rt->cfg->hot_reload_quiet_ms, on_change, rt, &rt->watch);
}

void
reload_stop(runtime *rt)
{
	watch_stop(rt->watch);
	rt->watch = NULL;
}
