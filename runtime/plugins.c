/*
 * Loading plugins: copy each .so to a private file, dlopen the copy, call its
 * init function and check the descriptor it returns before any projection is
 * registered. Refused plugins are kept with their reason for status; the
 * projections already loaded are never disturbed by a bad file.
 *
 * The registry is not thread-safe: the runtime loads plugins before its
 * processors start, and proj_def pointers stay valid until registry_destroy.
 */
#include "plugins.h"

#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
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

#include "host.h"
#include "json.h"
#include "log.h"

/*
 * The sizes of the ABI 1.0 structs. A plugin built against a later 1.x
 * header passes bigger structs; one built against an older or broken header
 * passes smaller ones, which the host refuses (it would read past them).
 */
#define DESC_V1_SIZE (offsetof(sl_plugin_desc, fini) + sizeof(void (*)(void)))
#define PROJ_V1_SIZE (offsetof(sl_projection, user) + sizeof(void *))

static const char zero_uuid[] = "00000000-0000-0000-0000-000000000000";

struct plugin {
	char                 *file; /* path as given */
	char                 *copy; /* private copy; NULL once removed */
	void                 *dl;   /* dlopen handle; NULL if refused */
	const sl_plugin_desc *desc; /* plugin-owned; NULL if refused */
	char                 *name; /* host copies, for status */
	char                 *version;
	bool                  loaded;
	char                 *error;
	size_t                n_projections;
	int64_t               loaded_at_ns;
};

struct registry {
	char      *cache_dir;
	plugin   **plugins; /* in load order, loaded and refused */
	size_t     n_plugins, cap_plugins;
	proj_def **projs; /* pointers, so proj_defs never move */
	size_t     n_projs, cap_projs;
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

/* Canonical lower-case form of a UUID text (8-4-4-4-12 hex). */
static bool
uuid_canon(const char *s, char out[37])
{
	if (s == NULL || strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		unsigned char c = (unsigned char) s[i];
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return false;
		} else if (!isxdigit(c)) {
			return false;
		}
		out[i] = (char) tolower(c);
	}
	out[36] = '\0';
	return true;
}

/* mkdir -p */
static int
mkdir_p(const char *path)
{
	char  *p = strdup(path);
	size_t n;
	if (p == NULL)
		return -1;
	n = strlen(p);
	while (n > 1 && p[n - 1] == '/')
		p[--n] = '\0';
	for (char *s = p + 1; *s != '\0'; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) != 0 && errno != EEXIST) {
			free(p);
			return -1;
		}
		*s = '/';
	}
	int rc = mkdir(p, 0755);
	if (rc != 0 && errno == EEXIST) {
		struct stat sb;
		rc = stat(p, &sb) == 0 && S_ISDIR(sb.st_mode) ? 0 : -1;
		if (rc != 0)
			errno = ENOTDIR;
	}
	free(p);
	return rc;
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

/*
 * Copy src to a new file "<cache>/<base>.<n>.so" created exclusively (a file
 * some loaded plugin runs from is never written). Returns the malloc'ed path
 * or NULL with a reason in err.
 */
static char *
make_copy(const registry *r, const char *src, char *err, size_t errlen)
{
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
	return path;
}

/* ---- FNV-1a 64 over the definition ---- */

typedef struct {
	uint64_t h;
} fnv;

static void
fnv_bytes(fnv *f, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		f->h ^= b[i];
		f->h *= 0x100000001b3ULL;
	}
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

static uint64_t
def_hash(const proj_def *d)
{
	fnv f = { 0xcbf29ce484222325ULL };
	fnv_str(&f, d->id);
	fnv_str(&f, d->scope);
	fnv_u64(&f, d->p->version);
	fnv_u64(&f, d->initial_len);
	fnv_bytes(&f, d->initial, d->initial_len);
	fnv_u64(&f, d->p->n_selectors);
	for (size_t i = 0; i < d->p->n_selectors; i++) {
		const sl_selector *s = &d->p->selectors[i];
		fnv_str(&f, s->event_type);
		fnv_u64(&f, (uint64_t) s->key);
		fnv_str(&f, s->arg);
	}
	return f.h;
}

/* ---- registry ---- */

static void
proj_def_free(proj_def *d)
{
	if (d == NULL)
		return;
	free(d->initial);
	free(d);
}

static void
plugin_free(plugin *p)
{
	free(p->file);
	free(p->copy);
	free(p->name);
	free(p->version);
	free(p->error);
	free(p);
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
	remove_stale_copies(cache_dir);
	*out = r;
	return SL_OK;
}

/*
 * Undo a load. fini runs whenever init succeeded and the descriptor passed
 * the ABI and size checks (p->desc is only set then), also for a plugin
 * refused later, so that it can release what init acquired.
 */
static void
plugin_unload(plugin *p)
{
	if (p->desc != NULL && p->desc->fini != NULL)
		p->desc->fini();
	if (p->dl != NULL)
		dlclose(p->dl);
	p->dl   = NULL;
	p->desc = NULL;
	if (p->copy != NULL) {
		unlink(p->copy);
		free(p->copy);
		p->copy = NULL;
	}
}

void
registry_destroy(registry *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n_projs; i++)
		proj_def_free(r->projs[i]);
	free(r->projs);
	/* unload in reverse order of loading */
	for (size_t i = r->n_plugins; i-- > 0;) {
		plugin_unload(r->plugins[i]);
		plugin_free(r->plugins[i]);
	}
	free(r->plugins);
	free(r->cache_dir);
	free(r);
}

static const proj_def *
find_id(registry *r, const char *canon_id)
{
	for (size_t i = 0; i < r->n_projs; i++)
		if (strcmp(r->projs[i]->id, canon_id) == 0)
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

/* How messages name a projection: by id and name once they are known. */
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

/* Check one projection and fill a new proj_def for it. */
static int
check_projection(
    registry *r, plugin *pl, size_t i, proj_def **out, refusal *rf)
{
	const sl_projection *p     = pl->desc->projections[i];
	const char          *pname = pl->name;
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
	d->p     = p;
	d->owner = pl;
	int rc;
	if (!uuid_canon(p->id, d->id)) {
		rc = refuse(rf, SL_EPLUGIN,
		    "projection %s in plugin '%s': id '%s' is not a UUID",
		    label, pname, p->id != NULL ? p->id : "(null)");
		goto fail;
	}
	proj_label(label, sizeof(label), i, d->id, NULL);
	if (p->scope == NULL) {
		memcpy(d->scope, zero_uuid, sizeof(zero_uuid));
	} else if (!uuid_canon(p->scope, d->scope)) {
		rc = refuse(rf, SL_EPLUGIN,
		    "projection %s in plugin '%s': scope '%s' is not a UUID",
		    label, pname, p->scope);
		goto fail;
	}
	if (p->name == NULL || p->name[0] == '\0') {
		rc = refuse(rf, SL_EPLUGIN,
		    "projection %s in plugin '%s': name is missing", label,
		    pname);
		goto fail;
	}
	d->name = p->name;
	proj_label(label, sizeof(label), i, d->id, p->name);
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
	const proj_def *other = find_id(r, d->id);
	if (other != NULL) {
		rc = refuse(rf, SL_EEXIST,
		    "projection %s in plugin '%s': id already loaded by "
		    "projection '%s' from %s",
		    label, pname, other->name, other->owner->file);
		goto fail;
	}
	d->def_hash = def_hash(d);
	*out        = d;
	return SL_OK;
fail:
	proj_def_free(d);
	return rc;
}

/* Check the descriptor; on success defs[] holds one proj_def each. */
static int
check_desc(registry *r, plugin *pl, proj_def **defs, refusal *rf)
{
	const sl_plugin_desc *desc = pl->desc;
	for (size_t i = 0; i < desc->n_projections; i++) {
		int rc = check_projection(r, pl, i, &defs[i], rf);
		if (rc != SL_OK)
			return rc;
		for (size_t k = 0; k < i; k++)
			if (strcmp(defs[k]->id, defs[i]->id) == 0)
				return refuse(rf, SL_EEXIST,
				    "projection '%s' (%s) in plugin '%s': id "
				    "is "
				    "used twice in this plugin (also by '%s')",
				    defs[i]->name, defs[i]->id, pl->name,
				    defs[k]->name);
	}
	return SL_OK;
}

/*
 * Open the copy, call init and check the descriptor. On success the
 * projections are registered; on failure nothing is, and the caller unloads.
 */
static int
plugin_open(registry *r, plugin *pl, refusal *rf)
{
	char cerr[512] = "";
	pl->copy       = make_copy(r, pl->file, cerr, sizeof(cerr));
	if (pl->copy == NULL)
		return refuse(rf, SL_EPLUGIN, "%s", cerr);

	dlerror();
	pl->dl = dlopen(pl->copy, RTLD_NOW | RTLD_LOCAL);
	if (pl->dl == NULL) {
		const char *e = dlerror();
		return refuse(rf, SL_EPLUGIN, "dlopen failed: %s",
		    e != NULL ? e : "unknown error");
	}
	/* POSIX guarantees a function pointer round-trips through void * */
	sl_plugin_init_fn init
	    = (sl_plugin_init_fn) dlsym(pl->dl, SL_PLUGIN_INIT_SYMBOL);
	if (init == NULL)
		return refuse(rf, SL_EPLUGIN,
		    "not a Sluice plugin: it does not export %s()",
		    SL_PLUGIN_INIT_SYMBOL);

	const sl_plugin_desc *desc = NULL;
	int                   rc   = init(host_api(), &desc);
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
		    "of "
		    "ABI 1.0 (%zu)",
		    desc->struct_size, (size_t) DESC_V1_SIZE);
	pl->desc = desc; /* from here on, its fields (and fini) can be read */
	if (desc->name == NULL || desc->name[0] == '\0')
		return refuse(rf, SL_EPLUGIN, "descriptor has no plugin name");
	if ((pl->name = strdup(desc->name)) == NULL
	    || (pl->version
	           = strdup(desc->version != NULL ? desc->version : ""))
	        == NULL)
		return refuse(rf, SL_ENOMEM, "out of memory");
	if (desc->n_projections > 0 && desc->projections == NULL)
		return refuse(rf, SL_EPLUGIN,
		    "plugin '%s': %zu projections declared but the array is "
		    "NULL",
		    pl->name, desc->n_projections);

	size_t     n    = desc->n_projections;
	proj_def **defs = n > 0 ? calloc(n, sizeof(*defs)) : NULL;
	if (n > 0 && defs == NULL)
		return refuse(rf, SL_ENOMEM, "out of memory");
	rc = check_desc(r, pl, defs, rf);
	if (rc == SL_OK && r->n_projs + n > r->cap_projs) {
		size_t     cap = r->cap_projs != 0 ? r->cap_projs : 8;
		proj_def **np;
		while (cap < r->n_projs + n)
			cap *= 2;
		np = realloc(r->projs, cap * sizeof(*np));
		if (np == NULL)
			rc = refuse(rf, SL_ENOMEM, "out of memory");
		else {
			r->projs     = np;
			r->cap_projs = cap;
		}
	}
	if (rc != SL_OK) {
		for (size_t i = 0; i < n; i++)
			proj_def_free(defs[i]);
		free(defs);
		return rc;
	}
	for (size_t i = 0; i < n; i++)
		r->projs[r->n_projs++] = defs[i];
	free(defs);
	pl->n_projections = n;
	return SL_OK;
}

/* The entry for file, if one exists. */
static plugin *
find_plugin(registry *r, const char *file, size_t *index)
{
	for (size_t i = 0; i < r->n_plugins; i++)
		if (strcmp(r->plugins[i]->file, file) == 0) {
			*index = i;
			return r->plugins[i];
		}
	return NULL;
}

int
registry_load_file(registry *r, const char *path, char *err, size_t errlen)
{
	char    dummy[1];
	refusal rf;
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
	/* One entry per file: a loaded file stays; a refused one is retried.
	 */
	size_t  old_i;
	plugin *old = find_plugin(r, path, &old_i);
	if (old != NULL && old->loaded) {
		snprintf(err, errlen, "%s: already loaded (plugin '%s')", path,
		    old->name);
		log_error("plugins", "%s", err);
		return SL_EEXIST;
	}
	if (grow((void **) &r->plugins, &r->cap_plugins, r->n_plugins,
	        sizeof(*r->plugins))
	    != SL_OK) {
		snprintf(err, errlen, "%s: out of memory", path);
		return SL_ENOMEM;
	}
	plugin *pl = calloc(1, sizeof(*pl));
	if (pl == NULL || (pl->file = strdup(path)) == NULL) {
		free(pl);
		snprintf(err, errlen, "%s: out of memory", path);
		return SL_ENOMEM;
	}
	pl->loaded_at_ns = now_ns();
	int rc           = plugin_open(r, pl, &rf);
	if (rc == SL_OK) {
		pl->loaded = true;
		log_info("plugins",
		    "loaded %s: plugin '%s' %s, %zu projection(s)", path,
		    pl->name, pl->version, pl->n_projections);
	} else {
		snprintf(err, errlen, "%s: %s", path, rf.why);
		log_error("plugins", "%s", err);
		plugin_unload(pl);
		pl->error = strdup(err);
		if (pl->error == NULL) {
			plugin_free(pl);
			return rc;
		}
	}
	if (old != NULL) {
		r->plugins[old_i] = pl;
		plugin_free(old);
	} else {
		r->plugins[r->n_plugins++] = pl;
	}
	return rc;
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
	return r != NULL ? r->n_projs : 0;
}

const proj_def *
registry_projection(registry *r, size_t i)
{
	return r != NULL && i < r->n_projs ? r->projs[i] : NULL;
}

const proj_def *
registry_find(registry *r, const char *id_or_name, size_t len)
{
	if (r == NULL || id_or_name == NULL)
		return NULL;
	for (size_t i = 0; i < r->n_projs; i++) {
		const proj_def *d = r->projs[i];
		if (len == 36 && strncasecmp(d->id, id_or_name, 36) == 0)
			return d;
	}
	for (size_t i = 0; i < r->n_projs; i++) {
		const proj_def *d = r->projs[i];
		if (strlen(d->name) == len
		    && memcmp(d->name, id_or_name, len) == 0)
			return d;
	}
	return NULL;
}

size_t
registry_plugin_count(registry *r)
{
	return r != NULL ? r->n_plugins : 0;
}

void
registry_plugin_info(registry *r, size_t i, plugin_info *out)
{
	if (out == NULL)
		return;
	memset(out, 0, sizeof(*out));
	if (r == NULL || i >= r->n_plugins)
		return;
	const plugin *p    = r->plugins[i];
	out->file          = p->file;
	out->name          = p->name;
	out->version       = p->version;
	out->loaded        = p->loaded;
	out->error         = p->error;
	out->n_projections = p->n_projections;
	out->loaded_at_ns  = p->loaded_at_ns;
}
