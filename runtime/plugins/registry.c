/*
 * Loading plugins: copy each .so to a private file, check that the copy is a
 * whole ELF object exporting the init function, dlopen it, call its init
 * function and check the descriptor it returns before any projection or
 * filter is registered. Refused plugins are kept with their reason for
 * status; the definitions already loaded are never disturbed by a bad file.
 * Projections and filters share one list of proj_def (kind tells them
 * apart) and one id space, so holds, reloads and lookups treat them alike.
 *
 * Hot reload: each load of a file is a version (plugin_ver) with its own
 * private copy and handle. A reload publishes the new version's projections
 * and retires the previous version, which closes when the last processor
 * holding it lets go. Readers (the API threads) take the rwlock for the
 * lists; loaders are serialised by load_mu. Nothing a reader can hold a
 * pointer to (proj_def, plugin, plugin_ver, the strings of plugin_info) is
 * freed before registry_destroy: retired ones are kept, which costs a few
 * hundred bytes per reload.
 */
#include "plugins.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "plugins_internal.h"

/* ---- small helpers ---- */

static int64_t
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int
grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return SL_OK;
	size_t ncap = *cap != 0 ? *cap * 2 : 8;
	void  *p    = realloc(*arr, ncap * elem);
	if (p == NULL)
		return SL_ENOMEM;
	*arr = p;
	*cap = ncap;
	return SL_OK;
}

/* mkdir -p; the cache must be a directory. 0, or -1 with errno. */
static int
mkdir_p(const char *path)
{
	struct stat sb;
	if (fs_mkdirs(path) != 0)
		return -1;
	if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
		return 0;
	errno = ENOTDIR;
	return -1;
}

/* ---- registry ---- */

/* A string readers may hold goes to the kept list instead of free(); if
 * even that fails it is left alone (leaked) rather than freed. */
static void
keep(registry *r, char *s)
{
	if (s == NULL)
		return;
	if (grow((void **) &r->kept, &r->cap_kept, r->n_kept, sizeof(char *))
	    == SL_OK)
		r->kept[r->n_kept++] = s;
}

void
proj_def_hold(const proj_def *def)
{
	if (def == NULL || def->ver == NULL)
		return;
	/* Only for a version known to be open (see plugins.h): a count at 0
	 * means its code is being unloaded, and this hold cannot stop that. */
	if (atomic_fetch_add(&def->ver->refs, 1) == 0)
		log_error("plugins",
		    "projection %s (%s): held after its plugin version was "
		    "released (a bug: use proj_def_try_hold)",
		    def->id, def->name);
}

bool
proj_def_try_hold(const proj_def *def)
{
	if (def == NULL)
		return false;
	if (def->ver == NULL)
		return true; /* host-owned vtable: nothing to unload */
	unsigned n = atomic_load(&def->ver->refs);
	do {
		if (n == 0)
			return false; /* closing or closed */
	} while (!atomic_compare_exchange_weak(&def->ver->refs, &n, n + 1));
	return true;
}

void
proj_def_release(const proj_def *def)
{
	if (def == NULL || def->ver == NULL)
		return;
	if (atomic_fetch_sub(&def->ver->refs, 1) == 1)
		plug_ver_close(def->ver);
}

static void
ver_release(plugin_ver *v)
{
	if (v != NULL && atomic_fetch_sub(&v->refs, 1) == 1)
		plug_ver_close(v);
}

/*
 * An installed daemon's js_host.so: <the executable's directory>/
 * SL_PKGLIB_FROM_BIN/js_host.so (cmake/install.cmake), whatever the
 * prefix. @return true with the path in buf when that file exists.
 */
static bool
installed_js_host(char *buf, size_t size)
{
#ifdef SL_PKGLIB_FROM_BIN
	return fs_beside_exe(SL_PKGLIB_FROM_BIN "/js_host.so", buf, size) == 0
	    && access(buf, R_OK) == 0;
#else
	(void) buf;
	(void) size;
	return false;
#endif
}

int
registry_create(const char *cache_dir, registry **out)
{
	if (cache_dir == NULL || *cache_dir == '\0' || out == NULL)
		return SL_EINVAL;
	*out = NULL;
	if (mkdir_p(cache_dir) != 0) {
		log_error("plugins",
		    "cannot create plugin cache directory %s: %s", cache_dir,
		    strerror(errno));
		return SL_ECONFIG;
	}
	registry *r = calloc(1, sizeof(*r));
	if (r == NULL || (r->cache_dir = strdup(cache_dir)) == NULL) {
		free(r);
		return SL_ENOMEM;
	}
	/* Writers first: a stream of get_one requests must not starve a
	 * reload. */
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(
	    &ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&r->lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&r->load_mu, NULL);
	pthread_mutex_init(&r->ver_mu, NULL);
	plug_remove_stale_copies(cache_dir);
	char        installed[PATH_MAX];
	const char *js = getenv("SLUICE_JS_HOST");
	if ((js == NULL || *js == '\0')
	    && installed_js_host(installed, sizeof(installed)))
		js = installed;
#ifdef SL_JS_HOST_DEFAULT
	if (js == NULL || *js == '\0')
		js = SL_JS_HOST_DEFAULT;
#endif
	if (js != NULL && *js != '\0' && access(js, R_OK) == 0)
		registry_set_js_host(r, js);
	*out = r;
	return SL_OK;
}

/*
 * js_host.so needs libsluice_jsbudget.so (one per process). Its private
 * copies are loaded from the cache directory, where their RUNPATH (the
 * build tree, or $ORIGIN when installed) may not reach: load the budget
 * library once from beside the host, by path, so that the copies'
 * dependency is met by its soname. Never unloaded (its signal handler
 * stays installed).
 */
static void
preload_js_budget(const char *js_host)
{
	char        lib[PATH_MAX];
	const char *slash = strrchr(js_host, '/');
	int         dirlen = slash != NULL ? (int) (slash - js_host) : 1;
	int         n      = snprintf(lib, sizeof(lib), "%.*s/%s", dirlen,
                     slash != NULL ? js_host : ".", "libsluice_jsbudget.so");
	if (n <= 0 || (size_t) n >= sizeof(lib) || access(lib, R_OK) != 0)
		return;
	if (dlopen(lib, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE) == NULL)
		log_warn("plugins", "cannot load %s: %s", lib, dlerror());
}

int
registry_set_js_host(registry *r, const char *path)
{
	char *c = path != NULL ? strdup(path) : NULL;
	if (path != NULL && c == NULL)
		return SL_ENOMEM;
	if (path != NULL)
		preload_js_budget(path);
	pthread_mutex_lock(&r->load_mu);
	free(r->js_host);
	r->js_host = c;
	pthread_mutex_unlock(&r->load_mu);
	return SL_OK;
}

void
registry_set_skip(
    registry *r, bool (*skip)(void *arg, const char *path), void *arg)
{
	r->skip     = skip;
	r->skip_arg = arg;
}

void
registry_destroy(registry *r)
{
	if (r == NULL)
		return;
	/* The registry's holds; processors must have released theirs. */
	for (size_t i = r->n_plugins; i-- > 0;) {
		plugin_ver *v      = r->plugins[i]->cur;
		r->plugins[i]->cur = NULL;
		ver_release(v);
	}
	/* newest first: unload in reverse order of loading */
	for (plugin_ver *v = r->versions, *next; v != NULL; v = next) {
		next = v->next;
		if (!v->closed) {
			log_error("plugins",
			    "plugin '%s' from %s is still held (%u) at "
			    "shutdown; closing it",
			    v->name != NULL ? v->name : "?", v->owner->file,
			    atomic_load(&v->refs));
			plug_ver_close(v);
		}
		plug_ver_free(v);
	}
	for (plugin *p = r->all_plugins, *next; p != NULL; p = next) {
		next = p->next_all;
		free(p->file);
		free(p->error);
		free(p->tried_name);
		free(p->tried_version);
		free(p);
	}
	for (size_t i = 0; i < r->n_refused; i++)
		free(r->refused[i].why);
	free(r->refused);
	for (size_t i = 0; i < r->n_kept; i++)
		free(r->kept[i]);
	free(r->kept);
	free(r->projs);
	free(r->dropped);
	free(r->plugins);
	pthread_rwlock_destroy(&r->lock);
	pthread_mutex_destroy(&r->load_mu);
	pthread_mutex_destroy(&r->ver_mu);
	free(r->cache_dir);
	free(r->js_host);
	free(r);
}

/* ---- publishing a version (call with load_mu held) ---- */

static plugin *
find_listed(registry *r, const char *file, size_t *index)
{
	for (size_t i = 0; i < r->n_plugins; i++)
		if (strcmp(r->plugins[i]->file, file) == 0) {
			if (index != NULL)
				*index = i;
			return r->plugins[i];
		}
	return NULL;
}

static const proj_def *
def_in(const proj_def *const *defs, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(defs[i]->id, id) == 0)
			return defs[i];
	return NULL;
}

/* Remove the entry with this id from a def list (dropped). */
static void
list_remove_id(proj_def **list, size_t *n, const char *id)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp(list[i]->id, id) == 0) {
			memmove(&list[i], &list[i + 1],
			    (*n - i - 1) * sizeof(*list));
			(*n)--;
			return;
		}
}

/*
 * The changes from version `from` to `to` (either may be NULL), in a
 * malloc'ed array.
 */
static int
make_changes(const plugin_ver *from, const plugin_ver *to, proj_change **out,
    size_t *n_out)
{
	size_t nf = from != NULL ? from->n_defs : 0;
	size_t nt = to != NULL ? to->n_defs : 0;
	*out      = NULL;
	*n_out    = 0;
	if (nf + nt == 0)
		return SL_OK;
	proj_change *c = calloc(nf + nt, sizeof(*c));
	if (c == NULL)
		return SL_ENOMEM;
	size_t n = 0;
	for (size_t i = 0; i < nt; i++) {
		c[n].new_def = to->defs[i];
		c[n].old_def = from != NULL
		    ? def_in((const proj_def *const *) from->defs, nf,
		        to->defs[i]->id)
		    : NULL;
		n++;
	}
	for (size_t i = 0; i < nf; i++) {
		if (to != NULL
		    && def_in((const proj_def *const *) to->defs, nt,
		        from->defs[i]->id))
			continue;
		c[n].old_def = from->defs[i];
		c[n].new_def = NULL;
		n++;
	}
	*out   = c;
	*n_out = n;
	return SL_OK;
}

/*
 * Make room for a new version's defs and the old one's dropped ids before
 * taking the write lock, so that publishing cannot fail half-way.
 */
/* Room for need elements in *arr (capacity *cap), grown under the write
 * lock: readers walk these arrays. */
static int
room_locked(registry *r, void **arr, size_t *cap, size_t need, size_t elem)
{
	int rc = SL_OK;
	if (need <= *cap)
		return SL_OK;
	pthread_rwlock_wrlock(&r->lock);
	while (rc == SL_OK && need > *cap)
		rc = grow(arr, cap, *cap, elem);
	pthread_rwlock_unlock(&r->lock);
	return rc;
}

static int
reserve(registry *r, size_t n_new, size_t n_old)
{
	int rc = room_locked(r, (void **) &r->projs, &r->cap_projs,
	    r->n_projs + n_new, sizeof(*r->projs));
	return rc == SL_OK ? room_locked(r, (void **) &r->dropped,
	                         &r->cap_dropped, r->n_dropped + n_old,
	                         sizeof(*r->dropped))
	                   : rc;
}

/*
 * Replace pl's current version by v (NULL: unload). With the write lock:
 * the old defs leave the projection list (ids the new version lacks go to
 * the dropped list, still found by registry_find), the new ones join it.
 * @return the previous version, whose registry hold the caller releases.
 */
static plugin_ver *
publish(registry *r, plugin *pl, plugin_ver *v)
{
	plugin_ver *old = pl->cur;
	pthread_rwlock_wrlock(&r->lock);
	size_t k = 0;
	for (size_t i = 0; i < r->n_projs; i++)
		if (r->projs[i]->owner != pl)
			r->projs[k++] = r->projs[i];
	r->n_projs = k;
	if (old != NULL)
		for (size_t i = 0; i < old->n_defs; i++) {
			const proj_def *d = old->defs[i];
			if (v != NULL
			    && def_in((const proj_def *const *) v->defs,
			        v->n_defs, d->id))
				continue;
			list_remove_id(r->dropped, &r->n_dropped, d->id);
			r->dropped[r->n_dropped++] = old->defs[i];
		}
	if (v != NULL) {
		for (size_t i = 0; i < v->n_defs; i++) {
			list_remove_id(
			    r->dropped, &r->n_dropped, v->defs[i]->id);
			r->projs[r->n_projs++] = v->defs[i];
		}
		pl->loads++;
		keep(r, pl->error);
		pl->error       = NULL;
		pl->error_at_ns = 0;
	}
	pl->cur = v;
	pthread_rwlock_unlock(&r->lock);
	return old;
}

/* Set pl's error (takes the string). */
static void
set_error(registry *r, plugin *pl, char *error)
{
	pthread_rwlock_wrlock(&r->lock);
	keep(r, pl->error);
	pl->error       = error;
	pl->error_at_ns = error != NULL ? now_ns() : 0;
	pthread_rwlock_unlock(&r->lock);
}

/* The listed entry for file, or a new one appended (refused, no version). */
static plugin *
entry_for(registry *r, const char *file)
{
	plugin *pl = find_listed(r, file, NULL);
	if (pl != NULL)
		return pl;
	pl = calloc(1, sizeof(*pl));
	if (pl == NULL || (pl->file = strdup(file)) == NULL) {
		free(pl);
		return NULL;
	}
	pl->tried_at_ns = now_ns();
	/* grow() may move the array, which readers walk under the lock */
	pthread_rwlock_wrlock(&r->lock);
	int rc = grow((void **) &r->plugins, &r->cap_plugins, r->n_plugins,
	    sizeof(*r->plugins));
	if (rc == SL_OK)
		r->plugins[r->n_plugins++] = pl;
	pthread_rwlock_unlock(&r->lock);
	if (rc != SL_OK) {
		free(pl->file);
		free(pl);
		return NULL;
	}
	pl->next_all   = r->all_plugins;
	r->all_plugins = pl;
	return pl;
}

/*
 * Load path as a new version of its entry. With skip_same, identical bytes
 * to the running version are not loaded again (*same set). Call with
 * load_mu held. On success *old_out is the previous version (the caller
 * releases the registry's hold after using it) and *new_out the new one.
 */
static int
load_version(registry *r, const char *path, bool skip_same, bool *same,
    plugin_ver **old_out, plugin_ver **new_out, char *err, size_t errlen)
{
	refusal rf;
	rf.why[0]  = '\0';
	*same      = false;
	*old_out   = NULL;
	*new_out   = NULL;
	plugin *pl = entry_for(r, path);
	if (pl == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return SL_ENOMEM;
	}
	plugin_ver *v = calloc(1, sizeof(*v));
	if (v == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return SL_ENOMEM;
	}
	v->r            = r;
	v->owner        = pl;
	v->loaded_at_ns = now_ns();
	atomic_init(&v->refs, 1); /* the registry's */

	char cerr[512] = "";
	int  rc;
	v->copy = plug_make_copy(
	    r, path, &v->file_hash, &v->file_size, cerr, sizeof(cerr));
	if (v->copy == NULL) {
		rc = plug_refuse(&rf, SL_EPLUGIN, "%s", cerr);
	} else if (skip_same && pl->cur != NULL
	    && pl->cur->file_hash == v->file_hash
	    && pl->cur->file_size == v->file_size) {
		/* The running build again (e.g. after a broken one): nothing
		 * to load, and the file is good again. */
		log_debug(
		    "plugins", "%s: same bytes as the running version", path);
		plug_ver_unload(v);
		plug_ver_free(v);
		set_error(r, pl, NULL);
		*same = true;
		return SL_OK;
	} else {
		rc = plug_ver_open(r, v, &rf);
	}
	if (rc == SL_OK)
		rc = reserve(
		    r, v->n_defs, pl->cur != NULL ? pl->cur->n_defs : 0);
	if (rc == SL_ENOMEM && rf.why[0] == '\0')
		snprintf(rf.why, sizeof(rf.why), "out of memory");
	if (rc != SL_OK) {
		snprintf(err, errlen, "%s: %s", path, rf.why);
		log_error("plugins", "%s%s", err,
		    pl->cur != NULL ? " (the previous version keeps running)"
		                    : "");
		pthread_rwlock_wrlock(&r->lock);
		pl->tried_at_ns = v->loaded_at_ns;
		if (pl->cur == NULL && v->name != NULL) {
			/* refused, but its name is known: show it */
			char *n = strdup(v->name);
			char *s = strdup(v->version != NULL ? v->version : "");
			keep(r, pl->tried_name);
			keep(r, pl->tried_version);
			pl->tried_name    = n;
			pl->tried_version = s;
		}
		pthread_rwlock_unlock(&r->lock);
		set_error(r, pl, strdup(err));
		plug_ver_unload(v);
		plug_ver_free(v);
		__atomic_fetch_add(&r->load_errors_total, 1, __ATOMIC_RELAXED);
		return rc;
	}
	__atomic_fetch_add(&r->loads_total, 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&r->ver_mu);
	v->next     = r->versions;
	r->versions = v;
	pthread_mutex_unlock(&r->ver_mu);
	*old_out = publish(r, pl, v);
	*new_out = v;
	log_info("plugins",
	    "%s %s: plugin '%s' %s, %zu projection(s), %zu filter(s)",
	    *old_out != NULL ? "reloaded" : "loaded", path, v->name,
	    v->version, v->n_defs - v->n_filters, v->n_filters);
	return SL_OK;
}

int
registry_load_file(registry *r, const char *path, char *err, size_t errlen)
{
	char dummy[1];
	if (err == NULL || errlen == 0) {
		err    = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	if (r == NULL || path == NULL || *path == '\0') {
		snprintf(err, errlen, "%s: no registry or no path",
		    path != NULL ? path : "(null)");
		return SL_EINVAL;
	}
	pthread_mutex_lock(&r->load_mu);
	/* One entry per file: a loaded file stays; a refused one is retried.
	 */
	plugin *old = find_listed(r, path, NULL);
	if (old != NULL && old->cur != NULL) {
		snprintf(err, errlen, "%s: already loaded (plugin '%s')", path,
		    old->cur->name);
		log_error("plugins", "%s", err);
		pthread_mutex_unlock(&r->load_mu);
		return SL_EEXIST;
	}
	bool        same;
	plugin_ver *prev, *v;
	int rc = load_version(r, path, false, &same, &prev, &v, err, errlen);
	pthread_mutex_unlock(&r->load_mu);
	ver_release(prev); /* NULL here: the file had no running version */
	return rc;
}

int
registry_reload_file(registry *r, const char *path, proj_change **changes,
    size_t *n_changes, char *err, size_t errlen)
{
	char dummy[1];
	if (err == NULL || errlen == 0) {
		err    = dummy;
		errlen = sizeof(dummy);
	}
	err[0]     = '\0';
	*changes   = NULL;
	*n_changes = 0;
	if (r == NULL || path == NULL || *path == '\0')
		return SL_EINVAL;
	pthread_mutex_lock(&r->load_mu);
	bool        same;
	plugin_ver *prev, *v;
	int rc = load_version(r, path, true, &same, &prev, &v, err, errlen);
	if (rc == SL_OK && !same)
		rc = make_changes(prev, v, changes, n_changes);
	pthread_mutex_unlock(&r->load_mu);
	/* The caller hands the new defs to processors; processors that still
	 * run the previous version hold it until they switch. */
	ver_release(prev);
	return rc;
}

int
registry_unload_file(
    registry *r, const char *path, proj_change **changes, size_t *n_changes)
{
	*changes   = NULL;
	*n_changes = 0;
	if (r == NULL || path == NULL)
		return SL_EINVAL;
	pthread_mutex_lock(&r->load_mu);
	size_t  idx;
	plugin *pl = find_listed(r, path, &idx);
	if (pl == NULL) {
		pthread_mutex_unlock(&r->load_mu);
		return SL_ENOTFOUND;
	}
	int rc = SL_OK;
	if (pl->cur != NULL)
		rc = reserve(r, 0, pl->cur->n_defs);
	if (rc == SL_OK)
		rc = make_changes(pl->cur, NULL, changes, n_changes);
	if (rc != SL_OK) {
		pthread_mutex_unlock(&r->load_mu);
		return rc;
	}
	plugin_ver *old = publish(r, pl, NULL);
	pthread_rwlock_wrlock(&r->lock);
	memmove(&r->plugins[idx], &r->plugins[idx + 1],
	    (r->n_plugins - idx - 1) * sizeof(*r->plugins));
	r->n_plugins--;
	pthread_rwlock_unlock(&r->lock);
	pthread_mutex_unlock(&r->load_mu);
	if (old != NULL)
		log_info("plugins",
		    "unloaded %s: plugin '%s' %s (file removed)", path,
		    old->name, old->version);
	ver_release(old);
	return SL_OK;
}

void
registry_set_error(registry *r, const char *path, const char *reason)
{
	if (r == NULL || path == NULL || reason == NULL)
		return;
	pthread_mutex_lock(&r->load_mu);
	plugin *pl = entry_for(r, path);
	char   *e  = NULL;
	if (pl != NULL && asprintf(&e, "%s: %s", path, reason) >= 0) {
		log_error("plugins", "%s%s", e,
		    pl->cur != NULL ? " (the previous version keeps running)"
		                    : "");
		set_error(r, pl, e);
	}
	pthread_mutex_unlock(&r->load_mu);
}

/* The refusal of id (lock held), or NULL. */
static def_refusal *
refusal_of(registry *r, const char *id)
{
	for (size_t i = 0; i < r->n_refused; i++)
		if (strcmp(r->refused[i].id, id) == 0)
			return &r->refused[i];
	return NULL;
}

void
registry_set_refused(registry *r, const char *id, const char *reason)
{
	if (r == NULL || id == NULL || strlen(id) >= sizeof(r->refused->id))
		return;
	char *why = reason != NULL ? strdup(reason) : NULL;
	if (reason != NULL && why == NULL)
		return; /* out of memory: left as it was */
	pthread_rwlock_wrlock(&r->lock);
	def_refusal *f = refusal_of(r, id);
	if (f != NULL && why != NULL && strcmp(f->why, why) == 0) {
		free(why); /* the same again: keep its time */
	} else if (f != NULL) {
		keep(r, f->why);
		if (why != NULL) {
			f->why   = why;
			f->at_ns = now_ns();
		} else {
			*f = r->refused[--r->n_refused];
		}
	} else if (why != NULL) {
		if (grow((void **) &r->refused, &r->cap_refused, r->n_refused,
		        sizeof(*r->refused))
		    != SL_OK) {
			free(why);
		} else {
			f = &r->refused[r->n_refused++];
			snprintf(f->id, sizeof(f->id), "%s", id);
			f->why   = why;
			f->at_ns = now_ns();
		}
	}
	pthread_rwlock_unlock(&r->lock);
}

const char *
registry_refused(registry *r, const char *id, int64_t *at_ns)
{
	const char *why = NULL;
	if (at_ns != NULL)
		*at_ns = 0;
	if (r == NULL || id == NULL)
		return NULL;
	pthread_rwlock_rdlock(&r->lock);
	const def_refusal *f = refusal_of(r, id);
	if (f != NULL) {
		why = f->why;
		if (at_ns != NULL)
			*at_ns = f->at_ns;
	}
	pthread_rwlock_unlock(&r->lock);
	return why;
}

bool
registry_has_file(registry *r, const char *path)
{
	if (r == NULL || path == NULL)
		return false;
	pthread_rwlock_rdlock(&r->lock);
	bool has = find_listed(r, path, NULL) != NULL;
	pthread_rwlock_unlock(&r->lock);
	return has;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

int
registry_load_dir(registry *r, const char *dir)
{
	if (r == NULL || dir == NULL)
		return SL_EINVAL;
	DIR *d = opendir(dir);
	if (d == NULL) {
		log_error("plugins", "cannot read plugin directory %s: %s",
		    dir, strerror(errno));
		return SL_ENOTFOUND;
	}
	char         **names = NULL;
	size_t         n = 0, cap = 0;
	int            rc = SL_OK;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (len < 4 || !plugin_file_name(de->d_name))
			continue;
		char *path;
		if (asprintf(&path, "%s/%s", dir, de->d_name) < 0) {
			rc = SL_ENOMEM;
			break;
		}
		struct stat sb;
		if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)
		    || (r->skip != NULL && r->skip(r->skip_arg, path))) {
			free(path);
			continue;
		}
		if (grow((void **) &names, &cap, n, sizeof(*names)) != SL_OK) {
			free(path);
			rc = SL_ENOMEM;
			break;
		}
		names[n++] = path;
	}
	closedir(d);
	if (rc == SL_OK) {
		if (n > 1)
			qsort(names, n, sizeof(*names), cmp_names);
		for (size_t i = 0; i < n; i++) {
			char err[1024];
			(void) registry_load_file(
			    r, names[i], err, sizeof(err));
		}
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

size_t
registry_projection_count(registry *r)
{
	if (r == NULL)
		return 0;
	pthread_rwlock_rdlock(&r->lock);
	size_t n = r->n_projs;
	pthread_rwlock_unlock(&r->lock);
	return n;
}

const proj_def *
registry_projection(registry *r, size_t i)
{
	if (r == NULL)
		return NULL;
	pthread_rwlock_rdlock(&r->lock);
	const proj_def *d = i < r->n_projs ? r->projs[i] : NULL;
	pthread_rwlock_unlock(&r->lock);
	return d;
}

bool
proj_def_has_id(const proj_def *d, const char *id, size_t len)
{
	return len == 36 && strncasecmp(d->id, id, 36) == 0;
}

bool
proj_def_has_name(const proj_def *d, const char *name, size_t len)
{
	return strlen(d->name) == len && memcmp(d->name, name, len) == 0;
}

static const proj_def *
find_in(proj_def *const *list, size_t n, const char *id_or_name, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (proj_def_has_id(list[i], id_or_name, len))
			return list[i];
	for (size_t i = 0; i < n; i++)
		if (proj_def_has_name(list[i], id_or_name, len))
			return list[i];
	return NULL;
}

const proj_def *
registry_find_held(registry *r, const char *id_or_name, size_t len, bool *held)
{
	*held = false;
	if (r == NULL || id_or_name == NULL)
		return NULL;
	pthread_rwlock_rdlock(&r->lock);
	const proj_def *d = find_in(r->projs, r->n_projs, id_or_name, len);
	if (d == NULL)
		d = find_in(r->dropped, r->n_dropped, id_or_name, len);
	/* A current def's version has the registry's hold until a publish,
	 * which waits for this lock: the hold cannot fail for it. A dropped
	 * def's version may be closed (or closing): then no hold. */
	if (d != NULL)
		*held = proj_def_try_hold(d);
	pthread_rwlock_unlock(&r->lock);
	return d;
}

const proj_def *
registry_find(registry *r, const char *id_or_name, size_t len)
{
	if (r == NULL || id_or_name == NULL)
		return NULL;
	pthread_rwlock_rdlock(&r->lock);
	const proj_def *d = find_in(r->projs, r->n_projs, id_or_name, len);
	if (d == NULL)
		d = find_in(r->dropped, r->n_dropped, id_or_name, len);
	pthread_rwlock_unlock(&r->lock);
	return d;
}

size_t
registry_plugin_count(registry *r)
{
	if (r == NULL)
		return 0;
	pthread_rwlock_rdlock(&r->lock);
	size_t n = r->n_plugins;
	pthread_rwlock_unlock(&r->lock);
	return n;
}

void
registry_plugin_info(registry *r, size_t i, plugin_info *out)
{
	if (out == NULL)
		return;
	memset(out, 0, sizeof(*out));
	if (r == NULL)
		return;
	pthread_rwlock_rdlock(&r->lock);
	if (i < r->n_plugins) {
		const plugin     *p = r->plugins[i];
		const plugin_ver *v = p->cur;
		out->file           = p->file;
		out->owner          = p;
		out->loaded         = v != NULL;
		out->error          = p->error;
		out->error_at_ns    = p->error_at_ns;
		out->loads          = p->loads;
		/* loaded, but a projection of it does not run: say so */
		for (size_t k = 0;
		     v != NULL && out->error == NULL && k < v->n_defs; k++) {
			const def_refusal *f = refusal_of(r, v->defs[k]->id);
			if (f != NULL) {
				out->error       = f->why;
				out->error_at_ns = f->at_ns;
			}
		}
		if (v != NULL) {
			out->name          = v->name;
			out->version       = v->version;
			out->n_projections = v->n_defs - v->n_filters;
			out->n_filters     = v->n_filters;
			out->loaded_at_ns  = v->loaded_at_ns;
		} else {
			out->name         = p->tried_name;
			out->version      = p->tried_version;
			out->loaded_at_ns = p->tried_at_ns;
		}
	}
	pthread_rwlock_unlock(&r->lock);
	if (out->owner != NULL) {
		/* versions of this file still open: the running one and any
		 * older one a processor has not let go of yet */
		pthread_mutex_lock(&r->ver_mu);
		for (const plugin_ver *v = r->versions; v != NULL; v = v->next)
			if (v->owner == out->owner && !v->closed)
				out->versions_open++;
		pthread_mutex_unlock(&r->ver_mu);
	}
}

void
registry_load_counts(registry *r, uint64_t *loads, uint64_t *errors)
{
	*loads  = __atomic_load_n(&r->loads_total, __ATOMIC_RELAXED);
	*errors = __atomic_load_n(&r->load_errors_total, __ATOMIC_RELAXED);
}
