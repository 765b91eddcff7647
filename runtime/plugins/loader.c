/*
 * Loading one version of a plugin file: a private copy of the .so, checked
 * to be a whole ELF object exporting the init function, dlopen, init and
 * the descriptor's checks (validate.c); and closing a version once its
 * last hold goes (fini, dlclose, the copy's removal).
 */
#include "plugins_internal.h"

#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "elfcheck.h"
#include "host.h"
#include "log.h"

/* Copy numbers are unique within the process even across registries that
 * share a cache directory, so a copy never overwrites a file in use. */
static atomic_uint copy_counter;

/* "name.<digits>.so": a private copy made by some registry. */
static bool
is_copy_name(const char *name)
{
	size_t n = strlen(name);
	if (n < 5 || strcmp(name + n - 3, ".so") != 0)
		return false;
	size_t end = n - 3, i = end;
	while (i > 0 && isdigit((unsigned char) name[i - 1]))
		i--;
	return i < end && i > 1 && name[i - 1] == '.';
}

/* Copies left by an earlier run (a crash skips unload) are never reused. */
void
plug_remove_stale_copies(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!is_copy_name(de->d_name))
			continue;
		char path[4096];
		if ((size_t) snprintf(
		        path, sizeof(path), "%s/%s", dir, de->d_name)
		    >= sizeof(path))
			continue;
		if (unlink(path) == 0)
			log_debug("plugins", "removed stale copy %s", path);
	}
	closedir(d);
}

/*
 * Create a new file "<cache>/<base>.<n>.so" exclusively (a file some loaded
 * plugin runs from is never written). @return its descriptor with the
 * malloc'ed path in *path, or -1 with a reason in err.
 */
static int
copy_create(const registry *r, const char *base, size_t blen, char **path,
    char *err, size_t errlen)
{
	int out = -1;
	*path   = NULL;
	for (int tries = 0; tries < 1000 && out < 0; tries++) {
		free(*path);
		unsigned n = atomic_fetch_add(&copy_counter, 1) + 1;
		if (asprintf(path, "%s/%.*s.%u.so", r->cache_dir, (int) blen,
		        base, n)
		    < 0) {
			*path = NULL;
			break;
		}
		out = open(
		    *path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (out < 0 && errno != EEXIST)
			break;
	}
	if (out < 0) {
		snprintf(err, errlen, "cannot create a private copy in %s: %s",
		    r->cache_dir,
		    *path != NULL ? strerror(errno) : "out of memory");
		free(*path);
		*path = NULL;
	}
	return out;
}

/* Write all of buf to fd (path names it in err). 0, or -1 with err. */
static int
copy_write(int fd, const char *path, const void *buf, size_t len, char *err,
    size_t errlen)
{
	for (size_t off = 0; off < len;) {
		ssize_t w = write(fd, (const char *) buf + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			snprintf(err, errlen, "cannot write %s: %s", path,
			    strerror(errno));
			return -1;
		}
		off += (size_t) w;
	}
	return 0;
}

/* Close a copy being written: on failure (rc != 0, or the close fails)
 * remove it and free path. @return path, or NULL. */
static char *
copy_finish(int fd, char *path, int rc, char *err, size_t errlen)
{
	if (close(fd) != 0 && rc == 0) {
		snprintf(
		    err, errlen, "cannot write %s: %s", path, strerror(errno));
		rc = -1;
	}
	if (rc != 0) {
		unlink(path);
		free(path);
		return NULL;
	}
	return path;
}

/*
 * Copy src to a new private copy (copy_create), hashing the bytes on the
 * way (a reload of identical bytes is skipped). Returns the malloc'ed path
 * or NULL with a reason in err.
 */
char *
plug_make_copy(const registry *r, const char *src, uint64_t *hash,
    uint64_t *size, char *err, size_t errlen)
{
	fnv f             = { FNV1A_OFFSET };
	*size             = 0;
	const char *slash = strrchr(src, '/');
	const char *base  = slash != NULL ? slash + 1 : src;
	size_t      blen  = strlen(base);
	if (blen > 3 && strcmp(base + blen - 3, ".so") == 0)
		blen -= 3;

	int in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		snprintf(err, errlen, "cannot open: %s", strerror(errno));
		return NULL;
	}
	char *path;
	int   out = copy_create(r, base, blen, &path, err, errlen);
	if (out < 0) {
		close(in);
		return NULL;
	}
	char    buf[65536];
	ssize_t got;
	int     rc = 0;
	while ((got = read(in, buf, sizeof(buf))) != 0) {
		if (got < 0) {
			if (errno == EINTR)
				continue;
			snprintf(
			    err, errlen, "cannot read: %s", strerror(errno));
			rc = -1;
			break;
		}
		fnv_bytes(&f, buf, (size_t) got);
		*size += (uint64_t) got;
		if ((rc = copy_write(
		         out, path, buf, (size_t) got, err, errlen))
		    != 0)
			break;
	}
	close(in);
	path = copy_finish(out, path, rc, err, errlen);
	if (path != NULL)
		*hash = f.h;
	return path;
}

char *
plug_write_copy(const registry *r, const char *name, const void *data,
    size_t len, char *err, size_t errlen)
{
	char *path;
	int   out = copy_create(r, name, strlen(name), &path, err, errlen);
	if (out < 0)
		return NULL;
	int rc = copy_write(out, path, data, len, err, errlen);
	return copy_finish(out, path, rc, err, errlen);
}

void
plug_ver_free(plugin_ver *v)
{
	for (size_t i = 0; i < v->n_defs; i++)
		proj_def_free(v->defs[i]);
	free(v->defs);
	free(v->copy);
	free(v->host_copy);
	free(v->name);
	free(v->version);
	free(v);
}

/*
 * Undo a load: fini runs whenever init succeeded and the descriptor passed
 * the ABI and size checks (desc is only set then), also for a version
 * refused later, so that it can release what init acquired.
 */
void
plug_ver_unload(plugin_ver *v)
{
	if (v->desc != NULL && v->desc->fini != NULL)
		v->desc->fini();
	if (v->dl != NULL)
		dlclose(v->dl);
	v->dl   = NULL;
	v->desc = NULL;
	if (v->copy != NULL) {
		unlink(v->copy);
		free(v->copy);
		v->copy = NULL;
	}
	if (v->host_copy != NULL) {
		unlink(v->host_copy);
		free(v->host_copy);
		v->host_copy = NULL;
	}
}

/*
 * The last hold is gone: close the version. Its defs stay (readers may hold
 * them) but first stop pointing into the code about to be unloaded: p and f
 * are cleared under the registry's write lock, so that a reader that looks
 * at them under the read lock never sees a pointer into unmapped memory.
 * Then fini, dlclose and the copy's removal run with no lock held (fini is
 * the plugin's code: it may take its time, and must not stall readers or
 * loaders). No one can hold the version again: proj_def_try_hold refuses a
 * version whose count reached 0.
 */
void
plug_ver_close(plugin_ver *v)
{
	registry *r = v->r;
	if (v->detached) {
		/* a query's script: nobody else ever saw it, nothing keeps
		 * its defs; unloaded, its copies removed, then freed */
		plugin *owner = v->owner;
		log_debug("plugins", "closed query script %s", owner->file);
		plug_ver_unload(v);
		plug_ver_free(v);
		free(owner->file);
		free(owner);
		return;
	}
	pthread_mutex_lock(&r->ver_mu);
	if (v->closing) {
		pthread_mutex_unlock(&r->ver_mu);
		return;
	}
	v->closing = true;
	pthread_mutex_unlock(&r->ver_mu);
	pthread_rwlock_wrlock(&r->lock);
	for (size_t i = 0; i < v->n_defs; i++) {
		__atomic_store_n(&v->defs[i]->p, NULL, __ATOMIC_RELEASE);
		__atomic_store_n(&v->defs[i]->f, NULL, __ATOMIC_RELEASE);
	}
	pthread_rwlock_unlock(&r->lock);
	log_info("plugins", "closed plugin '%s' %s (loaded from %s)",
	    v->name != NULL ? v->name : "?",
	    v->version != NULL ? v->version : "", v->owner->file);
	plug_ver_unload(v);
	/* status counts it open until its copy is gone */
	pthread_mutex_lock(&r->ver_mu);
	v->closed = true;
	pthread_mutex_unlock(&r->ver_mu);
}

/*
 * Check the copy, open it, call init and check the descriptor. On success
 * v->defs holds the projections and filters (not yet published); on failure
 * the caller unloads v.
 */
static int plug_ver_desc(
    registry *r, plugin_ver *v, const sl_plugin_desc *desc, refusal *rf);

/* What js_host.so exports for the registry (plugins/js/js_host.c). */
#define JS_LOAD_SYMBOL "sluice_js_load"
typedef int (*js_load_fn)(const sl_host_api *host, const char *path,
    const char *file, const sl_plugin_desc **out, char *err, size_t errlen);

/*
 * A .js file (issue 16): v->copy is the script's private copy; it is
 * loaded by a private copy of the JavaScript host of its own (so that a
 * reload's two versions never share the host's state), whose refusal
 * names the file and line.
 */
int
plug_js_open(registry *r, plugin_ver *v, const char *js_host, refusal *rf)
{
	char     why[1024] = "";
	uint64_t hash, size;
	if (js_host == NULL)
		return plug_refuse(rf, SL_EPLUGIN,
		    "no JavaScript host to run it (js_host.so: set "
		    "SLUICE_JS_HOST)");
	v->host_copy
	    = plug_make_copy(r, js_host, &hash, &size, why, sizeof(why));
	if (v->host_copy == NULL)
		return plug_refuse(
		    rf, SL_EPLUGIN, "JavaScript host %s: %s", js_host, why);
	int rc
	    = elf_check_plugin(v->host_copy, JS_LOAD_SYMBOL, why, sizeof(why));
	if (rc != SL_OK)
		return plug_refuse(rf,
		    rc == SL_ENOMEM ? SL_ENOMEM : SL_EPLUGIN,
		    "JavaScript host %s: %s", js_host, why);
	dlerror();
	v->dl = dlopen(v->host_copy, RTLD_NOW | RTLD_LOCAL);
	if (v->dl == NULL) {
		const char *e = dlerror();
		return plug_refuse(rf, SL_EPLUGIN,
		    "JavaScript host: dlopen failed: %s",
		    e != NULL ? e : "unknown error");
	}
	js_load_fn load = (js_load_fn) dlsym(v->dl, JS_LOAD_SYMBOL);
	if (load == NULL)
		return plug_refuse(rf, SL_EPLUGIN,
		    "JavaScript host %s does not export %s()", js_host,
		    JS_LOAD_SYMBOL);
	const char *slash = strrchr(v->owner->file, '/');
	const char *file  = slash != NULL ? slash + 1 : v->owner->file;
	const sl_plugin_desc *desc = NULL;
	why[0]                     = '\0';
	rc = load(host_api(), v->copy, file, &desc, why, sizeof(why));
	if (rc != SL_OK)
		return plug_refuse(rf,
		    rc == SL_ENOMEM ? SL_ENOMEM : SL_EPLUGIN, "%s",
		    why[0] != '\0' ? why : sl_strerror(rc));
	if (desc == NULL)
		return plug_refuse(rf, SL_EPLUGIN,
		    "%s() returned no descriptor", JS_LOAD_SYMBOL);
	return plug_ver_desc(r, v, desc, rf);
}

static bool
is_js(const char *path)
{
	size_t n = strlen(path);
	return n > 3 && strcmp(path + n - 3, ".js") == 0;
}

int
plug_ver_open(registry *r, plugin_ver *v, refusal *rf)
{
	if (is_js(v->owner->file))
		return plug_js_open(r, v, r->js_host, rf); /* load_mu held */
	char why[512] = "";
	int  rc       = elf_check_plugin(
	           v->copy, SL_PLUGIN_INIT_SYMBOL, why, sizeof(why));
	if (rc != SL_OK)
		return plug_refuse(
		    rf, rc == SL_ENOMEM ? SL_ENOMEM : SL_EPLUGIN, "%s", why);

	dlerror();
	v->dl = dlopen(v->copy, RTLD_NOW | RTLD_LOCAL);
	if (v->dl == NULL) {
		const char *e = dlerror();
		return plug_refuse(rf, SL_EPLUGIN, "dlopen failed: %s",
		    e != NULL ? e : "unknown error");
	}
	/* POSIX guarantees a function pointer round-trips through void * */
	sl_plugin_init_fn init
	    = (sl_plugin_init_fn) dlsym(v->dl, SL_PLUGIN_INIT_SYMBOL);
	if (init == NULL)
		return plug_refuse(rf, SL_EPLUGIN,
		    "not a Sluice plugin: it does not export %s()",
		    SL_PLUGIN_INIT_SYMBOL);

	const sl_plugin_desc *desc = NULL;
	rc                         = init(host_api(), &desc);
	if (rc != SL_OK)
		return plug_refuse(rf, SL_EPLUGIN, "%s() failed: %s (%s)",
		    SL_PLUGIN_INIT_SYMBOL, sl_strerror(rc), sl_errname(rc));
	if (desc == NULL)
		return plug_refuse(rf, SL_EPLUGIN,
		    "%s() returned no descriptor", SL_PLUGIN_INIT_SYMBOL);
	return plug_ver_desc(r, v, desc, rf);
}

/* Check a descriptor init returned and read its definitions. */
static int
plug_ver_desc(
    registry *r, plugin_ver *v, const sl_plugin_desc *desc, refusal *rf)
{
	if (SL_ABI_MAJOR_OF(desc->abi_version) != SL_ABI_MAJOR)
		return plug_refuse(rf, SL_EVERSION,
		    "plugin ABI version %u.%u is not supported (host ABI "
		    "%u.%u)",
		    SL_ABI_MAJOR_OF(desc->abi_version),
		    desc->abi_version & 0xffffu, SL_ABI_MAJOR, SL_ABI_MINOR);
	if (desc->struct_size < DESC_V1_SIZE)
		return plug_refuse(rf, SL_EVERSION,
		    "descriptor struct_size %u is smaller than sl_plugin_desc "
		    "of ABI 1.0 (%zu)",
		    desc->struct_size, (size_t) DESC_V1_SIZE);
	v->desc = desc; /* from here on, its fields (and fini) can be read */
	if (desc->name == NULL || desc->name[0] == '\0')
		return plug_refuse(
		    rf, SL_EPLUGIN, "descriptor has no plugin name");
	if ((v->name = strdup(desc->name)) == NULL
	    || (v->version
	           = strdup(desc->version != NULL ? desc->version : ""))
	        == NULL)
		return plug_refuse(rf, SL_ENOMEM, "out of memory");
	if (desc->n_projections > 0 && desc->projections == NULL)
		return plug_refuse(rf, SL_EPLUGIN,
		    "plugin '%s': %zu projections declared but the array is "
		    "NULL",
		    v->name, desc->n_projections);

	size_t nf = 0;
	if (desc->struct_size >= DESC_V11_SIZE) {
		nf = desc->n_filters;
		if (nf > 0 && desc->filters == NULL)
			return plug_refuse(rf, SL_EPLUGIN,
			    "plugin '%s': %zu filters declared but the array "
			    "is NULL",
			    v->name, nf);
	}
	size_t n = desc->n_projections;
	if (n > SIZE_MAX / sizeof(*v->defs)
	    || nf > SIZE_MAX / sizeof(*v->defs) - n)
		return plug_refuse(rf, SL_EPLUGIN,
		    "plugin '%s': %zu projections and %zu filters declared",
		    v->name, n, nf);
	n += nf;
	v->defs = n > 0 ? calloc(n, sizeof(*v->defs)) : NULL;
	if (n > 0 && v->defs == NULL)
		return plug_refuse(rf, SL_ENOMEM, "out of memory");
	v->n_defs    = n;
	v->n_filters = nf;
	return plug_check_desc(r, v, v->defs, rf);
}
