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

#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

#include "elfcheck.h"
#include "event.h"
#include "fnv.h"
#include "fsutil.h"
#include "host.h"
#include "json.h"
#include "log.h"
#include "store.h"

/*
 * The sizes of the ABI 1.0 structs. A plugin built against a later 1.x
 * header passes bigger structs; one built against an older or broken header
 * passes smaller ones, which the host refuses (it would read past them).
 */
#define DESC_V1_SIZE (offsetof(sl_plugin_desc, fini) + sizeof(void (*)(void)))
#define PROJ_V1_SIZE (offsetof(sl_projection, user) + sizeof(void *))
/* ABI 1.1: the descriptor's filters are read only when its struct_size
 * covers them (a 1.0 plugin has none); sl_filter first came with 1.1. */
#define DESC_V11_SIZE   (offsetof(sl_plugin_desc, n_filters) + sizeof(size_t))
#define FILTER_V11_SIZE (offsetof(sl_filter, user) + sizeof(void *))
/* ABI 1.2: emits, n_emits and result are read only when a projection's
 * struct_size covers all three. */
#define PROJ_V12_SIZE                                                         \
	(offsetof(sl_projection, result) + sizeof(void (*)(void)))
/* The longest declared stream (a name or a prefix with its '*'). */
#define EMITS_MAX_LEN 256

static const char zero_uuid[] = "00000000-0000-0000-0000-000000000000";

/* One load of a plugin file: its private copy, handle and definitions. */
struct plugin_ver {
	registry             *r;
	plugin               *owner;
	char                 *copy; /* private copy; NULL once removed */
	void                 *dl;   /* dlopen handle; NULL if refused/closed */
	const sl_plugin_desc *desc; /* plugin-owned; NULL if refused/closed */
	char                 *name; /* host copies (NULL before desc read) */
	char                 *version;
	int64_t               loaded_at_ns;
	uint64_t              file_hash, file_size; /* of the bytes loaded */
	atomic_uint           refs;   /* registry (while current) + holders */
	bool                  closing; /* ver_close began; under r->ver_mu */
	bool                  closed;  /* unloaded; under r->ver_mu */
	proj_def            **defs;   /* projections first, then filters */
	size_t                n_defs;
	size_t                n_filters; /* of n_defs */
	plugin_ver           *next; /* every published version, newest first */
};

/* A plugin file, across its versions. */
struct plugin {
	char       *file;  /* path as given */
	plugin_ver *cur;   /* the running version; NULL if none */
	char       *error; /* last refusal, NULL once a good build loads */
	int64_t     error_at_ns;
	char       *tried_name; /* name/version of a refused first load */
	char       *tried_version;
	int64_t     tried_at_ns;
	uint32_t    loads;
	plugin     *next_all; /* every entry ever, for registry_destroy */
};

struct registry {
	char            *cache_dir;
	pthread_rwlock_t lock;    /* the lists below, for readers */
	pthread_mutex_t  load_mu; /* one loader at a time */
	pthread_mutex_t  ver_mu;  /* closing versions, the versions list */
	plugin         **plugins; /* listed, in load order */
	size_t           n_plugins, cap_plugins;
	plugin          *all_plugins;
	proj_def       **projs; /* of current versions */
	size_t           n_projs, cap_projs;
	proj_def       **dropped; /* last def of ids no longer loaded */
	size_t           n_dropped, cap_dropped;
	plugin_ver      *versions;
	char           **kept; /* retired strings readers may still hold */
	size_t           n_kept, cap_kept;
};

/* Copy numbers are unique within the process even across registries that
 * share a cache directory, so a copy never overwrites a file in use. */
static atomic_uint copy_counter;

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
static void
remove_stale_copies(const char *dir)
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

/* ---- FNV-1a 64 over the definition ---- */

typedef struct {
	uint64_t h;
} fnv;

static void
fnv_bytes(fnv *f, const void *p, size_t n)
{
	f->h = fnv1a(f->h, p, n);
}

/* A string and its terminator, so ("ab","c") and ("a","bc") differ; NULL
 * hashes as one 0xff byte, distinct from "". */
static void
fnv_str(fnv *f, const char *s)
{
	if (s == NULL) {
		unsigned char ff = 0xff;
		fnv_bytes(f, &ff, 1);
		return;
	}
	fnv_bytes(f, s, strlen(s) + 1);
}

static void
fnv_u64(fnv *f, uint64_t v)
{
	unsigned char b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char) (v >> (8 * i)); /* fixed byte order */
	fnv_bytes(f, b, 8);
}

/*
 * Copy src to a new file "<cache>/<base>.<n>.so" created exclusively (a file
 * some loaded plugin runs from is never written), hashing the bytes on the
 * way (a reload of identical bytes is skipped). Returns the malloc'ed path
 * or NULL with a reason in err.
 */
static char *
make_copy(const registry *r, const char *src, uint64_t *hash, uint64_t *size,
    char *err, size_t errlen)
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
	char *path = NULL;
	int   out  = -1;
	for (int tries = 0; tries < 1000 && out < 0; tries++) {
		free(path);
		unsigned n = atomic_fetch_add(&copy_counter, 1) + 1;
		if (asprintf(&path, "%s/%.*s.%u.so", r->cache_dir, (int) blen,
		        base, n)
		    < 0) {
			path = NULL;
			break;
		}
		out = open(
		    path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (out < 0 && errno != EEXIST)
			break;
	}
	if (out < 0) {
		snprintf(err, errlen, "cannot create a private copy in %s: %s",
		    r->cache_dir,
		    path != NULL ? strerror(errno) : "out of memory");
		free(path);
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
		for (ssize_t off = 0; off < got;) {
			ssize_t w
			    = write(out, buf + off, (size_t) (got - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				snprintf(err, errlen, "cannot write %s: %s",
				    path, strerror(errno));
				rc = -1;
				break;
			}
			off += w;
		}
		if (rc != 0)
			break;
	}
	close(in);
	if (close(out) != 0 && rc == 0) {
		snprintf(
		    err, errlen, "cannot write %s: %s", path, strerror(errno));
		rc = -1;
	}
	if (rc != 0) {
		unlink(path);
		free(path);
		return NULL;
	}
	*hash = f.h;
	return path;
}

/*
 * A filter's definition: id, scope, kind and declared version. The hashed
 * bytes start with a tag that no projection's can start with (those start
 * with the id, a UUID), so a filter and a projection never share an input.
 */
uint64_t
defhash_filter(const char *id, const char *scope, sl_filter_kind kind,
    uint32_t version)
{
	fnv f = { FNV1A_OFFSET };
	fnv_str(&f, "$filter");
	fnv_str(&f, id);
	fnv_str(&f, scope);
	fnv_u64(&f, (uint64_t) kind);
	fnv_u64(&f, version);
	return f.h;
}

static uint64_t
filter_hash(const proj_def *d)
{
	return defhash_filter(d->id, d->scope, d->filter_kind, d->version);
}

/* A projection's definition. Stored with its checkpoints: keep the bytes
 * hashed here as they are, or every read model would be rebuilt. */
uint64_t
defhash_projection(const char *id, const char *scope, uint32_t version,
    const void *initial, size_t initial_len, const sl_selector *sels,
    size_t n_sels)
{
	fnv f = { FNV1A_OFFSET };
	fnv_str(&f, id);
	fnv_str(&f, scope);
	fnv_u64(&f, version);
	fnv_u64(&f, initial_len);
	fnv_bytes(&f, initial, initial_len);
	fnv_u64(&f, n_sels);
	for (size_t i = 0; i < n_sels; i++) {
		fnv_str(&f, sels[i].event_type);
		fnv_u64(&f, (uint64_t) sels[i].key);
		fnv_str(&f, sels[i].arg);
	}
	return f.h;
}

uint64_t
defhash_emits(
    uint64_t base, const char *const *emits, size_t n, bool has_result)
{
	if (n == 0 && !has_result)
		return base;
	fnv f = { base };
	fnv_str(&f, "$emits");
	fnv_u64(&f, n);
	for (size_t i = 0; i < n; i++)
		fnv_str(&f, emits[i]);
	fnv_u64(&f, has_result ? 1 : 0);
	return f.h;
}

const char *const *
proj_def_emits(const proj_def *def, size_t *n)
{
	*n = 0;
	if (def == NULL || def_is_filter(def) || def->p == NULL
	    || def->p->struct_size < PROJ_V12_SIZE || def->p->emits == NULL)
		return NULL;
	*n = def->p->n_emits;
	return def->p->emits;
}

proj_result_fn
proj_def_result(const proj_def *def)
{
	if (def == NULL || def_is_filter(def) || def->p == NULL
	    || def->p->struct_size < PROJ_V12_SIZE)
		return NULL;
	return def->p->result;
}

static uint64_t
def_hash(const proj_def *d)
{
	uint64_t           h = defhash_projection(d->id, d->scope, d->version,
	              d->initial, d->initial_len, d->p->selectors, d->p->n_selectors);
	size_t             n;
	const char *const *emits = proj_def_emits(d, &n);
	return defhash_emits(h, emits, n, proj_def_result(d) != NULL);
}

/* ---- registry ---- */

static void
proj_def_free(proj_def *d)
{
	if (d == NULL)
		return;
	free(d->initial);
	free((char *) d->name);
	free(d);
}

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

static void
ver_free(plugin_ver *v)
{
	for (size_t i = 0; i < v->n_defs; i++)
		proj_def_free(v->defs[i]);
	free(v->defs);
	free(v->copy);
	free(v->name);
	free(v->version);
	free(v);
}

/*
 * Undo a load: fini runs whenever init succeeded and the descriptor passed
 * the ABI and size checks (desc is only set then), also for a version
 * refused later, so that it can release what init acquired.
 */
static void
ver_unload(plugin_ver *v)
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
static void
ver_close(plugin_ver *v)
{
	registry *r = v->r;
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
	ver_unload(v);
	/* status counts it open until its copy is gone */
	pthread_mutex_lock(&r->ver_mu);
	v->closed = true;
	pthread_mutex_unlock(&r->ver_mu);
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
		ver_close(def->ver);
}

static void
ver_release(plugin_ver *v)
{
	if (v != NULL && atomic_fetch_sub(&v->refs, 1) == 1)
		ver_close(v);
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
	remove_stale_copies(cache_dir);
	*out = r;
	return SL_OK;
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
			ver_close(v);
		}
		ver_free(v);
	}
	for (plugin *p = r->all_plugins, *next; p != NULL; p = next) {
		next = p->next_all;
		free(p->file);
		free(p->error);
		free(p->tried_name);
		free(p->tried_version);
		free(p);
	}
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
	free(r);
}

/* A current projection with this id from a file other than `except`. */
static const proj_def *
find_id(registry *r, const char *canon_id, const plugin *except)
{
	for (size_t i = 0; i < r->n_projs; i++)
		if (r->projs[i]->owner != except
		    && strcmp(r->projs[i]->id, canon_id) == 0)
			return r->projs[i];
	return NULL;
}

/* ---- checking a descriptor ---- */

/* A failed check: a code and a reason (without the file prefix). */
typedef struct {
	int  code;
	char why[768];
} refusal;

static int refuse(refusal *rf, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
refuse(refusal *rf, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rf->why, sizeof(rf->why), fmt, ap);
	va_end(ap);
	rf->code = code;
	return code;
}

/* How messages name a projection or filter: by id and name once known. */
static void
proj_label(char *buf, size_t len, size_t i, const char *id, const char *name)
{
	if (id != NULL && name != NULL)
		snprintf(buf, len, "'%s' (%s)", name, id);
	else if (id != NULL)
		snprintf(buf, len, "%s", id);
	else
		snprintf(buf, len, "#%zu", i);
}

static bool
arg_required(sl_key_kind k)
{
	return k == SL_KEY_PROPERTY || k == SL_KEY_STATIC
	    || k == SL_KEY_OCCURRED;
}

static int
check_selectors(
    const sl_projection *p, const char *label, const char *pname, refusal *rf)
{
	if (p->n_selectors < 1 || p->selectors == NULL)
		return refuse(rf, SL_EPLUGIN,
		    "projection %s in plugin '%s': no selectors (need at "
		    "least "
		    "one)",
		    label, pname);
	for (size_t j = 0; j < p->n_selectors; j++) {
		const sl_selector *s = &p->selectors[j];
		if (s->event_type == NULL || s->event_type[0] == '\0')
			return refuse(rf, SL_EPLUGIN,
			    "projection %s in plugin '%s': selector %zu has "
			    "no "
			    "event type",
			    label, pname, j);
		for (size_t k = 0; k < j; k++)
			if (strcmp(p->selectors[k].event_type, s->event_type)
			    == 0)
				return refuse(rf, SL_EPLUGIN,
				    "projection %s in plugin '%s': event type "
				    "'%s' is selected twice (selectors %zu "
				    "and "
				    "%zu)",
				    label, pname, s->event_type, k, j);
		if ((int) s->key < SL_KEY_EVENT_SOURCE
		    || (int) s->key > SL_KEY_OCCURRED)
			return refuse(rf, SL_EPLUGIN,
			    "projection %s in plugin '%s': selector for '%s' "
			    "has unknown key kind %d",
			    label, pname, s->event_type, (int) s->key);
		if (arg_required(s->key)
		    && (s->arg == NULL || s->arg[0] == '\0'))
			return refuse(rf, SL_EPLUGIN,
			    "projection %s in plugin '%s': selector for '%s' "
			    "needs an arg (%s)",
			    label, pname, s->event_type,
			    s->key == SL_KEY_PROPERTY     ? "a property path"
			        : s->key == SL_KEY_STATIC ? "a static key"
			                                  : "a time pattern");
	}
	return SL_OK;
}

/*
 * ABI 1.2: the declared streams are exact names or prefixes ending in '*',
 * 1..EMITS_MAX_LEN bytes, not in the '$' namespace of the system
 * projections.
 */
static int
check_emits(
    const sl_projection *p, const char *label, const char *pname, refusal *rf)
{
	if (p->struct_size < PROJ_V12_SIZE || p->n_emits == 0)
		return SL_OK;
	if (p->emits == NULL)
		return refuse(rf, SL_EPLUGIN,
		    "projection %s in plugin '%s': %zu emits declared but "
		    "the array is NULL",
		    label, pname, p->n_emits);
	for (size_t j = 0; j < p->n_emits; j++) {
		const char *e = p->emits[j];
		size_t      n = e != NULL ? strnlen(e, EMITS_MAX_LEN + 1) : 0;
		const char *star = e != NULL ? memchr(e, '*', n) : NULL;
		const char *why  = NULL;
		if (n == 0)
			why = "is empty";
		else if (n > EMITS_MAX_LEN)
			why = "is longer than 256 bytes";
		else if (e[0] == '$')
			why = "starts with '$' (reserved for system streams)";
		else if (star != NULL && star != e + n - 1)
			why = "has a '*' that is not its last character";
		else if (n == 1)
			why = "is '*' alone (every stream)";
		if (why != NULL)
			return refuse(rf, SL_EPLUGIN,
			    "projection %s in plugin '%s': emits[%zu] '%.64s' "
			    "%s",
			    label, pname, j, e != NULL ? e : "(null)", why);
	}
	return SL_OK;
}

/*
 * Two projections may not declare overlapping streams: the second one
 * loaded is refused. A projection of this file's previous version is being
 * replaced (no conflict); earlier ones of this version are checked too.
 */
static int
check_emits_overlap(
    registry *r, const plugin_ver *v, proj_def **defs, size_t i, refusal *rf)
{
	const proj_def    *d = defs[i];
	size_t             n, m;
	const char *const *mine  = proj_def_emits(d, &n);
	size_t             total = r->n_projs + i;
	for (size_t k = 0; k < total && n > 0; k++) {
		const proj_def *o
		    = k < r->n_projs ? r->projs[k] : defs[k - r->n_projs];
		if (o == d || def_is_filter(o)
		    || (k < r->n_projs && o->owner == v->owner))
			continue;
		const char *const *theirs = proj_def_emits(o, &m);
		for (size_t a = 0; a < n; a++)
			for (size_t b = 0; b < m; b++)
				if (store_pattern_overlap(mine[a], theirs[b]))
					return refuse(rf, SL_EEXIST,
					    "projection '%s' (%s) in plugin "
					    "'%s': declared stream '%s' "
					    "overlaps '%s' of projection '%s' "
					    "(%s) from %s",
					    d->name, d->id, v->name, mine[a],
					    theirs[b], o->name, o->id,
					    o->owner != NULL ? o->owner->file
					                     : "?");
	}
	return SL_OK;
}

/* Parse the initial state JSON into d->initial (a msgpack map). */
static int
parse_initial(const sl_projection *p, proj_def *d, const char *label,
    const char *pname, refusal *rf)
{
	if (p->initial_state_json == NULL)
		return refuse(rf, SL_EPLUGIN,
		    "projection %s in plugin '%s': initial_state_json is "
		    "missing",
		    label, pname);
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	char            jerr[256] = "";
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (json_text_to_mp(p->initial_state_json, 1, &pk, jerr, sizeof(jerr))
	    != SL_OK) {
		msgpack_sbuffer_destroy(&sb);
		return refuse(rf, SL_EPLUGIN,
		    "projection %s in plugin '%s': initial state is not a "
		    "JSON "
		    "object: %s",
		    label, pname, jerr[0] != '\0' ? jerr : "invalid JSON");
	}
	d->initial     = sb.data; /* the sbuffer's malloc'ed bytes, now ours */
	d->initial_len = sb.size;
	return SL_OK;
}

/* How messages call a definition: "projection" or "filter". */
static const char *
def_word(const proj_def *d)
{
	return def_is_filter(d) ? "filter" : "projection";
}

/*
 * The checks projections and filters share: id (a UUID, kept in canonical
 * form), scope (a UUID or NULL for the all-zero scope) and name. On success
 * label names the definition by name and id.
 */
static int
check_ident(proj_def *d, const char *what, size_t i, const char *id,
    const char *scope, const char *name, const char *pname, char *label,
    size_t label_len, refusal *rf)
{
	if (id == NULL || !ev_uuid_canon(id, strlen(id), d->id))
		return refuse(rf, SL_EPLUGIN,
		    "%s %s in plugin '%s': id '%s' is not a UUID", what, label,
		    pname, id != NULL ? id : "(null)");
	proj_label(label, label_len, i, d->id, NULL);
	if (scope == NULL) {
		memcpy(d->scope, zero_uuid, sizeof(zero_uuid));
	} else if (!ev_uuid_canon(scope, strlen(scope), d->scope)) {
		return refuse(rf, SL_EPLUGIN,
		    "%s %s in plugin '%s': scope '%s' is not a UUID", what,
		    label, pname, scope);
	}
	if (name == NULL || name[0] == '\0')
		return refuse(rf, SL_EPLUGIN,
		    "%s %s in plugin '%s': name is missing", what, label,
		    pname);
	if ((d->name = strdup(name)) == NULL)
		return refuse(rf, SL_ENOMEM, "out of memory");
	proj_label(label, label_len, i, d->id, name);
	return SL_OK;
}

/* Ids are unique across the projections and filters of other files' current
 * versions; this file's previous version is being replaced. */
static int
check_unique(registry *r, const plugin_ver *v, const proj_def *d,
    const char *label, refusal *rf)
{
	const proj_def *other = find_id(r, d->id, v->owner);
	if (other == NULL)
		return SL_OK;
	return refuse(rf, SL_EEXIST,
	    "%s %s in plugin '%s': id already loaded by %s '%s' from %s",
	    def_word(d), label, v->name, def_word(other), other->name,
	    other->owner->file);
}

/* Check one projection and fill a new proj_def for it. */
static int
check_projection(
    registry *r, plugin_ver *v, size_t i, proj_def **out, refusal *rf)
{
	const sl_projection *p     = v->desc->projections[i];
	const char          *pname = v->name;
	char                 label[400];
	*out = NULL;
	proj_label(label, sizeof(label), i, NULL, NULL);
	if (p == NULL)
		return refuse(rf, SL_EPLUGIN,
		    "projection %s in plugin '%s' is NULL", label, pname);
	if (SL_ABI_MAJOR_OF(p->abi_version) != SL_ABI_MAJOR)
		return refuse(rf, SL_EVERSION,
		    "projection %s in plugin '%s': ABI version %u.%u is not "
		    "supported (host ABI %u.%u)",
		    label, pname, SL_ABI_MAJOR_OF(p->abi_version),
		    p->abi_version & 0xffffu, SL_ABI_MAJOR, SL_ABI_MINOR);
	if (p->struct_size < PROJ_V1_SIZE)
		return refuse(rf, SL_EVERSION,
		    "projection %s in plugin '%s': struct_size %u is smaller "
		    "than sl_projection of ABI 1.0 (%zu)",
		    label, pname, p->struct_size, (size_t) PROJ_V1_SIZE);

	proj_def *d = calloc(1, sizeof(*d));
	if (d == NULL)
		return refuse(rf, SL_ENOMEM, "out of memory");
	d->kind    = DEF_PROJECTION;
	d->p       = p;
	d->owner   = v->owner;
	d->ver     = v;
	d->version = p->version;
	int rc     = check_ident(d, "projection", i, p->id, p->scope, p->name,
	        pname, label, sizeof(label), rf);
	if (rc != SL_OK)
		goto fail;
	if (p->on == NULL) {
		rc = refuse(rf, SL_EPLUGIN,
		    "projection %s in plugin '%s': required callback 'on' is "
		    "missing",
		    label, pname);
		goto fail;
	}
	if ((rc = parse_initial(p, d, label, pname, rf)) != SL_OK)
		goto fail;
	if ((rc = check_selectors(p, label, pname, rf)) != SL_OK)
		goto fail;
	if ((rc = check_emits(p, label, pname, rf)) != SL_OK)
		goto fail;
	if ((rc = check_unique(r, v, d, label, rf)) != SL_OK)
		goto fail;
	d->def_hash = def_hash(d);
	*out        = d;
	return SL_OK;
fail:
	proj_def_free(d);
	return rc;
}

/* Check one filter (ABI 1.1) and fill a new proj_def for it. */
static int
check_filter(registry *r, plugin_ver *v, size_t i, proj_def **out, refusal *rf)
{
	const sl_filter *f     = v->desc->filters[i];
	const char      *pname = v->name;
	char             label[400];
	*out = NULL;
	proj_label(label, sizeof(label), i, NULL, NULL);
	if (f == NULL)
		return refuse(rf, SL_EPLUGIN,
		    "filter %s in plugin '%s' is NULL", label, pname);
	if (SL_ABI_MAJOR_OF(f->abi_version) != SL_ABI_MAJOR)
		return refuse(rf, SL_EVERSION,
		    "filter %s in plugin '%s': ABI version %u.%u is not "
		    "supported (host ABI %u.%u)",
		    label, pname, SL_ABI_MAJOR_OF(f->abi_version),
		    f->abi_version & 0xffffu, SL_ABI_MAJOR, SL_ABI_MINOR);
	if (f->struct_size < FILTER_V11_SIZE)
		return refuse(rf, SL_EVERSION,
		    "filter %s in plugin '%s': struct_size %u is smaller "
		    "than sl_filter of ABI 1.1 (%zu)",
		    label, pname, f->struct_size, (size_t) FILTER_V11_SIZE);

	proj_def *d = calloc(1, sizeof(*d));
	if (d == NULL)
		return refuse(rf, SL_ENOMEM, "out of memory");
	d->kind    = DEF_FILTER;
	d->f       = f;
	d->owner   = v->owner;
	d->ver     = v;
	d->version = f->version;
	int rc = check_ident(d, "filter", i, f->id, f->scope, f->name, pname,
	    label, sizeof(label), rf);
	if (rc != SL_OK)
		goto fail;
	if (f->filter == NULL) {
		rc = refuse(rf, SL_EPLUGIN,
		    "filter %s in plugin '%s': required callback 'filter' is "
		    "missing",
		    label, pname);
		goto fail;
	}
	/* read as an int: a plugin can put any value in the enum */
	int kind = (int) f->kind;
	if (kind != SL_FILTER_UNPARTITIONED && kind != SL_FILTER_PARTITIONED
	    && kind != SL_FILTER_PUBLIC) {
		rc = refuse(rf, SL_EPLUGIN,
		    "filter %s in plugin '%s': unknown kind %d (unpartitioned "
		    "%d, partitioned %d or public %d)",
		    label, pname, kind, SL_FILTER_UNPARTITIONED,
		    SL_FILTER_PARTITIONED, SL_FILTER_PUBLIC);
		goto fail;
	}
	d->filter_kind = f->kind;
	if ((rc = check_unique(r, v, d, label, rf)) != SL_OK)
		goto fail;
	d->def_hash = filter_hash(d);
	*out        = d;
	return SL_OK;
fail:
	proj_def_free(d);
	return rc;
}

/*
 * Check the descriptor; on success defs[] holds one proj_def for each
 * projection, then one for each filter.
 */
static int
check_desc(registry *r, plugin_ver *v, proj_def **defs, refusal *rf)
{
	size_t np = v->n_defs - v->n_filters;
	for (size_t i = 0; i < v->n_defs; i++) {
		int rc = i < np ? check_projection(r, v, i, &defs[i], rf)
		                : check_filter(r, v, i - np, &defs[i], rf);
		if (rc == SL_OK && i < np)
			rc = check_emits_overlap(r, v, defs, i, rf);
		if (rc != SL_OK)
			return rc;
		for (size_t k = 0; k < i; k++)
			if (strcmp(defs[k]->id, defs[i]->id) == 0)
				return refuse(rf, SL_EEXIST,
				    "%s '%s' (%s) in plugin '%s': id is used "
				    "twice in this plugin (also by %s '%s')",
				    def_word(defs[i]), defs[i]->name,
				    defs[i]->id, v->name, def_word(defs[k]),
				    defs[k]->name);
	}
	return SL_OK;
}

/*
 * Check the copy, open it, call init and check the descriptor. On success
 * v->defs holds the projections and filters (not yet published); on failure
 * the caller unloads v.
 */
static int
ver_open(registry *r, plugin_ver *v, refusal *rf)
{
	char why[512] = "";
	int  rc       = elf_check_plugin(
	           v->copy, SL_PLUGIN_INIT_SYMBOL, why, sizeof(why));
	if (rc != SL_OK)
		return refuse(
		    rf, rc == SL_ENOMEM ? SL_ENOMEM : SL_EPLUGIN, "%s", why);

	dlerror();
	v->dl = dlopen(v->copy, RTLD_NOW | RTLD_LOCAL);
	if (v->dl == NULL) {
		const char *e = dlerror();
		return refuse(rf, SL_EPLUGIN, "dlopen failed: %s",
		    e != NULL ? e : "unknown error");
	}
	/* POSIX guarantees a function pointer round-trips through void * */
	sl_plugin_init_fn init
	    = (sl_plugin_init_fn) dlsym(v->dl, SL_PLUGIN_INIT_SYMBOL);
	if (init == NULL)
		return refuse(rf, SL_EPLUGIN,
		    "not a Sluice plugin: it does not export %s()",
		    SL_PLUGIN_INIT_SYMBOL);

	const sl_plugin_desc *desc = NULL;
	rc                         = init(host_api(), &desc);
	if (rc != SL_OK)
		return refuse(rf, SL_EPLUGIN, "%s() failed: %s (%s)",
		    SL_PLUGIN_INIT_SYMBOL, sl_strerror(rc), sl_errname(rc));
	if (desc == NULL)
		return refuse(rf, SL_EPLUGIN, "%s() returned no descriptor",
		    SL_PLUGIN_INIT_SYMBOL);
	if (SL_ABI_MAJOR_OF(desc->abi_version) != SL_ABI_MAJOR)
		return refuse(rf, SL_EVERSION,
		    "plugin ABI version %u.%u is not supported (host ABI "
		    "%u.%u)",
		    SL_ABI_MAJOR_OF(desc->abi_version),
		    desc->abi_version & 0xffffu, SL_ABI_MAJOR, SL_ABI_MINOR);
	if (desc->struct_size < DESC_V1_SIZE)
		return refuse(rf, SL_EVERSION,
		    "descriptor struct_size %u is smaller than sl_plugin_desc "
		    "of ABI 1.0 (%zu)",
		    desc->struct_size, (size_t) DESC_V1_SIZE);
	v->desc = desc; /* from here on, its fields (and fini) can be read */
	if (desc->name == NULL || desc->name[0] == '\0')
		return refuse(rf, SL_EPLUGIN, "descriptor has no plugin name");
	if ((v->name = strdup(desc->name)) == NULL
	    || (v->version
	           = strdup(desc->version != NULL ? desc->version : ""))
	        == NULL)
		return refuse(rf, SL_ENOMEM, "out of memory");
	if (desc->n_projections > 0 && desc->projections == NULL)
		return refuse(rf, SL_EPLUGIN,
		    "plugin '%s': %zu projections declared but the array is "
		    "NULL",
		    v->name, desc->n_projections);

	size_t nf = 0;
	if (desc->struct_size >= DESC_V11_SIZE) {
		nf = desc->n_filters;
		if (nf > 0 && desc->filters == NULL)
			return refuse(rf, SL_EPLUGIN,
			    "plugin '%s': %zu filters declared but the array "
			    "is NULL",
			    v->name, nf);
	}
	size_t n = desc->n_projections;
	if (n > SIZE_MAX / sizeof(*v->defs)
	    || nf > SIZE_MAX / sizeof(*v->defs) - n)
		return refuse(rf, SL_EPLUGIN,
		    "plugin '%s': %zu projections and %zu filters declared",
		    v->name, n, nf);
	n += nf;
	v->defs = n > 0 ? calloc(n, sizeof(*v->defs)) : NULL;
	if (n > 0 && v->defs == NULL)
		return refuse(rf, SL_ENOMEM, "out of memory");
	v->n_defs    = n;
	v->n_filters = nf;
	return check_desc(r, v, v->defs, rf);
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
static int
reserve(registry *r, size_t n_new, size_t n_old)
{
	size_t need = r->n_projs + n_new;
	if (need > r->cap_projs) {
		size_t     cap = r->cap_projs != 0 ? r->cap_projs : 8;
		proj_def **np;
		while (cap < need)
			cap *= 2;
		pthread_rwlock_wrlock(&r->lock);
		np = realloc(r->projs, cap * sizeof(*np));
		if (np != NULL) {
			r->projs     = np;
			r->cap_projs = cap;
		}
		pthread_rwlock_unlock(&r->lock);
		if (np == NULL)
			return SL_ENOMEM;
	}
	need = r->n_dropped + n_old;
	if (need > r->cap_dropped) {
		size_t     cap = r->cap_dropped != 0 ? r->cap_dropped : 8;
		proj_def **np;
		while (cap < need)
			cap *= 2;
		pthread_rwlock_wrlock(&r->lock);
		np = realloc(r->dropped, cap * sizeof(*np));
		if (np != NULL) {
			r->dropped     = np;
			r->cap_dropped = cap;
		}
		pthread_rwlock_unlock(&r->lock);
		if (np == NULL)
			return SL_ENOMEM;
	}
	return SL_OK;
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
	v->copy = make_copy(
	    r, path, &v->file_hash, &v->file_size, cerr, sizeof(cerr));
	if (v->copy == NULL) {
		rc = refuse(&rf, SL_EPLUGIN, "%s", cerr);
	} else if (skip_same && pl->cur != NULL
	    && pl->cur->file_hash == v->file_hash
	    && pl->cur->file_size == v->file_size) {
		/* The running build again (e.g. after a broken one): nothing
		 * to load, and the file is good again. */
		log_debug(
		    "plugins", "%s: same bytes as the running version", path);
		ver_unload(v);
		ver_free(v);
		set_error(r, pl, NULL);
		*same = true;
		return SL_OK;
	} else {
		rc = ver_open(r, v, &rf);
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
		ver_unload(v);
		ver_free(v);
		return rc;
	}
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
		if (len < 4 || strcmp(de->d_name + len - 3, ".so") != 0)
			continue;
		char *path;
		if (asprintf(&path, "%s/%s", dir, de->d_name) < 0) {
			rc = SL_ENOMEM;
			break;
		}
		struct stat sb;
		if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
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
