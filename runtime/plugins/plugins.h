/*
 * Loading plugins: each .so is copied to a private file in the cache
 * directory, checked to be a whole ELF object exporting the init function,
 * and opened from there with RTLD_NOW | RTLD_LOCAL, its descriptor checked
 * (ABI major, struct sizes, required callbacks, ids, selectors, initial
 * state), and its projections registered. A plugin that fails any check is
 * refused with a reason kept for status; the rest run on.
 *
 * Reloading: a file loaded again becomes a new version of its plugin, from a
 * new private copy. A failed reload leaves the previous version running.
 * Each version is reference-counted: the registry holds it while it is
 * current, and every thread that calls into it holds it: processors and
 * emitting runs (proj_def_hold), API threads answering a query, get_one or
 * get_all (registry_find_held / proj_def_try_hold). It is closed when the
 * last hold goes: its defs' vtable pointers are cleared, then fini and
 * dlclose run.
 *
 * Threads: the registry may be read (find, info, projection) from any
 * thread while another one loads, reloads or unloads. proj_def pointers and
 * the strings plugin_info hands out stay valid until registry_destroy (a
 * reload retires them, never frees them); a retired proj_def's `p` or `f`
 * (the plugin's vtable) is NULL once its version is closed.
 */
#ifndef SL_PLUGINS_H
#define SL_PLUGINS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <sluice/plugin.h>

typedef struct plugin plugin;
typedef struct plugin_ver plugin_ver;
typedef struct registry registry;

/** What a definition runs. */
typedef enum def_kind {
	DEF_PROJECTION = 0,
	DEF_FILTER     = 1,
} def_kind;

/**
 * One loaded processor definition, a projection or a filter (the registry
 * keeps both in one list, ids unique across both), valid while its plugin
 * is loaded.
 */
typedef struct proj_def {
	const sl_projection *p; /* plugin-owned vtable; NULL for a filter */
	plugin *owner;
	char id[37];    /* canonical lower-case UUID text */
	char scope[37];
	const char *name;
	uint64_t def_hash; /* hash of the definition; change => rebuild */
	char *initial;     /* initial state as a msgpack map (host-owned) */
	size_t initial_len;
	plugin_ver *ver; /* the loaded version it belongs to (NULL: none) */
	uint32_t    version; /* the declared definition version */
	/* appended for filters */
	def_kind         kind;
	const sl_filter *f;           /* plugin-owned vtable; NULL for a projection */
	sl_filter_kind   filter_kind; /* filters only */
	/* appended for remote processors (runtime/remote/remote.h): a client's
	 * registration. Its p (or f) is a host-owned vtable holding the
	 * selectors and initial state, with on (filter) NULL; ver is NULL. */
	struct remote_proc *remote;
	/* appended for ABI 1.3: the shared initial state (a msgpack map,
	 * host-owned; NULL: the projection has no shared state) */
	char  *shared_initial;
	size_t shared_initial_len;
} proj_def;

/*
 * The definition hashes (FNV-1a 64), stored with checkpoints: a change
 * rebuilds. Keep the bytes hashed as they are, or everything built would
 * be rebuilt. Plugins and remote registrations hash the same way, so the
 * same content gets the same hash whoever defines it.
 */
uint64_t defhash_projection(const char *id, const char *scope,
    uint32_t version, const void *initial, size_t initial_len,
    const sl_selector *sels, size_t n_sels);
uint64_t defhash_filter(const char *id, const char *scope,
    sl_filter_kind kind, uint32_t version);

/*
 * ABI 1.2: an emitting projection's declared streams and result transform
 * are hashed too, after the bytes above, and only when it has them, so
 * that the hashes of every other projection stay what they were.
 * @return base continued with the emits (in order) and whether there is
 * a result transform.
 */
uint64_t defhash_emits(
    uint64_t base, const char *const *emits, size_t n, bool has_result);

/** An ABI 1.2 result transform (sl_projection.result). */
typedef sl_outcome (*proj_result_fn)(
    void *user, const char *key, const sl_state *state, sl_state *result);
/**
 * The streams a projection declares (sl_projection.emits), read only when
 * its struct_size covers the ABI 1.2 fields. *n gets their number; NULL
 * and 0 for a filter, an older plugin, or a closed version (p NULL).
 * Borrowed from the plugin: valid while def is held.
 */
const char *const *proj_def_emits(const proj_def *def, size_t *n);
/** The result transform, or NULL (as proj_def_emits). */
proj_result_fn proj_def_result(const proj_def *def);
typedef sl_outcome (*proj_created_fn)(void *user, const sl_event *event,
    const char *key, sl_state *state, sl_context *ctx);
/** A 1.3 projection's created callback (NULL: none). */
proj_created_fn proj_def_created(const proj_def *def);
typedef sl_outcome (*proj_deleted_fn)(void *user, const char *stream,
    const char *key, sl_state *state, sl_context *ctx);
/** A 1.3 projection's deleted callback (NULL: none). */
proj_deleted_fn proj_def_deleted(const proj_def *def);
typedef int (*proj_key_fn)(
    void *user, const sl_event *event, char *buf, size_t len);
/** A 1.3 projection's key function (sl_projection.key; NULL: none). */
proj_key_fn proj_def_key(const proj_def *def);
/**
 * A 1.3 projection's result stream names (sl_projection.result_stream,
 * partition_result_stream; checked at load): NULL each when not set, for
 * an older plugin, or a closed version. Borrowed: valid while def is held.
 */
void proj_def_result_streams(
    const proj_def *def, const char **root, const char **pattern);
/** The result transform with a reason (sl_projection.result_reason). */
typedef sl_outcome (*proj_result_reason_fn)(void *user, const char *key,
    const sl_state *state, sl_state *result, char *why, size_t whylen);
/** A 1.3 projection's result_reason, or NULL. */
proj_result_reason_fn proj_def_result_reason(const proj_def *def);
/**
 * Where def reads from (ABI 1.3, sl_source_kind): *src and *n (NULL, 0:
 * the whole tenant log) and *flags (SL_SOURCE_*). @return whether the 1.3
 * rules apply (system streams and links only when asked); false for a
 * definition built for 1.0-1.2 (the whole log, everything in it).
 */
bool proj_def_sources(const proj_def *def, const sl_source **src,
    size_t *n, uint32_t *flags);
/**
 * What a filter asks for when its code changed without a version bump and
 * the validation finds its stream differs (sl_filter.on_code_change, read
 * only when its struct_size covers the ABI 1.3 field; checked at load).
 * SL_CODE_CHANGE_REBUILD for an older filter, a projection, or a closed
 * version: read it while def is held.
 */
sl_code_change proj_def_on_code_change(const proj_def *def);

/**
 * Whether pattern, the strftime format of an occurred key selector, makes
 * read model keys: only conversions strftime knows (C and POSIX, with
 * glibc's flags and width; glibc would copy an unknown one as text), a
 * text for every time that is neither empty nor longer than a key, and not
 * the same text for every time (it is tried on three times that differ in
 * every field). Plugins are refused such a selector at load, remote
 * registrations at register.
 * @param why  receives why not ("'%Q' is not a strftime conversion")
 */
bool def_time_pattern_ok(const char *pattern, char *why, size_t len);

/** Whether def is a filter (the vtable pointers go NULL when closed). */
static inline bool
def_is_filter(const proj_def *def)
{
	return def->kind == DEF_FILTER;
}

/** What status shows for a plugin file, loaded or refused. */
typedef struct plugin_info {
	const char *file;    /* path in the plugin directory */
	const char *name;    /* NULL if refused before the descriptor was read */
	const char *version;
	bool loaded;
	const char *error; /* refusal reason; if loaded, why one of its
	                      projections does not run (registry_refused),
	                      else NULL */
	size_t n_projections;
	int64_t loaded_at_ns;
	/* appended for hot reload */
	const plugin *owner;    /* equals proj_def.owner of its projections */
	uint32_t      loads;    /* versions loaded from this file so far */
	uint32_t versions_open; /* this and older versions not yet closed */
	int64_t  error_at_ns;   /* when error was set, 0 if none */
	/* appended for filters (n_projections counts projections only) */
	size_t n_filters;
} plugin_info;

/** @param cache_dir  where private copies go (created if missing) */
int registry_create(const char *cache_dir, registry **out);
/**
 * The JavaScript host a .js file in the plugin directory is loaded with
 * (js_host.so; each .js file gets a private copy of it). Default:
 * $SLUICE_JS_HOST, else an installed daemon's LIBDIR/sluice/js_host.so,
 * else the build's examples/js_host.so when it exists;
 * without one a .js file is refused, saying so. @return SL_OK, SL_ENOMEM.
 */
int registry_set_js_host(registry *r, const char *path);
/** Plugin files loaded or reloaded since start, and loads refused. */
void registry_load_counts(registry *r, uint64_t *loads, uint64_t *errors);

/**
 * Load a JavaScript projection from its text for one query (issue 16):
 * as a *.js file of the plugin directory is (a private copy of the text
 * in the cache directory, loaded by a private copy of the JavaScript
 * host), but not registered: no lookup finds it, no reload touches it,
 * and its id may be a loaded projection's (a script named as one).
 * @param file  the script's file name ("count.js", no '/'): its name in
 *              every reason, and without ".js" the projection's name
 * @param text  the script (len bytes; a NUL byte in it is refused)
 * @param out   receives the projection, held once for the caller
 * @return SL_OK; SL_EPLUGIN (it does not load: err says why, with
 *         "count.js:3: SyntaxError: ..." where the engine knows the
 *         line, or no JavaScript host, or every budget signal is taken);
 *         SL_EINVAL (a file name with '/'); SL_ENOMEM.
 * @note The last proj_def_release of *out (the caller's, or that of a
 *       run that held it too) unloads it, removes both copies and frees
 *       it: *out must not be used after the caller's release.
 */
int registry_load_js_text(registry *r, const char *file, const void *text,
    size_t len, const proj_def **out, char *err, size_t errlen);

/** Whether a file name is a plugin's: "*.so", or "*.js" (one JavaScript
 * projection, issue 16). */
static inline bool
plugin_file_name(const char *name)
{
	size_t len = strlen(name);
	return len > 3
	    && (strcmp(name + len - 3, ".so") == 0
	        || strcmp(name + len - 3, ".js") == 0);
}
/**
 * Files that registry_load_dir leaves alone (plugins run elsewhere:
 * `isolation: process`): skip(arg, path) true. Set before loading.
 */
void registry_set_skip(
    registry *r, bool (*skip)(void *arg, const char *path), void *arg);

/** Unload every plugin (calls fini) and free. */
void registry_destroy(registry *r);

/**
 * Load every regular file ending in ".so" or ".js" in dir (sorted by
 * name).
 * Refusals are logged and kept for status; they are not errors here.
 * @return SL_OK, or SL_ENOTFOUND if dir cannot be read.
 */
int registry_load_dir(registry *r, const char *dir);
/**
 * Load one file. @return SL_OK; SL_EPLUGIN (dlopen, missing symbol, init
 * failed, invalid definition), SL_EVERSION (ABI major or struct size),
 * SL_EEXIST (projection or filter id already loaded). err gets the reason,
 * naming the file and, where it applies, the projection ("projection
 * 'name' (id)") or filter ("filter 'name' (id)") and the callback.
 */
int registry_load_file(
    registry *r, const char *path, char *err, size_t errlen);

/** Current definitions, projections and filters alike (see def_is_filter).
 */
size_t registry_projection_count(registry *r);
const proj_def *registry_projection(registry *r, size_t i);
/**
 * Find by id (UUID text, any case) or by name. NULL if none. A projection
 * dropped by a reload (or whose file was removed) is still found, as its
 * last definition, so that its read models are still served; it is no
 * longer among registry_projection().
 */
const proj_def *registry_find(registry *r, const char *id_or_name, size_t len);
/**
 * registry_find, and a hold on what it found, taken under the registry's
 * lock so that no reload can close the version in between. *held: true
 * when the hold was taken (or def has no version to hold: nothing to
 * unload), and then the caller may call def's code until its
 * proj_def_release; false when def's version is closed or closing (a
 * dropped def): its id, name and initial state may be used, never its
 * code or vtables, and nothing is released.
 */
const proj_def *registry_find_held(
    registry *r, const char *id_or_name, size_t len, bool *held);
/** The matches registry_find (and remotes_find) use: a 36-byte id in any
 * case, or the exact name; id_or_name need not be NUL-terminated. Ids are
 * looked for first. */
bool proj_def_has_id(const proj_def *d, const char *id, size_t len);
bool proj_def_has_name(const proj_def *d, const char *name, size_t len);

size_t registry_plugin_count(registry *r);
/** Info for plugin file i (loaded or refused); borrowed, valid until the
 * registry changes. */
void registry_plugin_info(registry *r, size_t i, plugin_info *out);

/* ---- hot reload ---- */

/**
 * Keep the plugin version of def loaded until the matching release.
 * Thread-safe; a def without a version (ver NULL) is ignored. Only for a
 * def whose version is known to be open: one the caller already holds, or
 * one the loading thread got from a change list (or registry_projection)
 * while it is current. Any other thread (an API thread, with a def from
 * registry_find) uses proj_def_try_hold or registry_find_held, since a
 * reload may close the version at any moment.
 */
void proj_def_hold(const proj_def *def);
/**
 * Hold def's version if it is still open (its count not yet 0), atomically.
 * @return true: held (release it with proj_def_release), or def has no
 * version (nothing to unload; the release is a no-op); false: def is NULL
 * or its version is closed or closing; its code must not be called and
 * nothing is to be released.
 */
bool proj_def_try_hold(const proj_def *def);
/**
 * Drop a hold; the last one closes the version: the defs' p and f are
 * cleared first (under the registry's lock), then fini, dlclose and the
 * copy's removal run, with no lock held, in the releasing thread.
 */
void proj_def_release(const proj_def *def);

/** What a reload did to one projection id. */
typedef struct proj_change {
	const proj_def *old_def; /* NULL: added by the new version */
	const proj_def *new_def; /* NULL: dropped (or its file was removed) */
} proj_change;

/**
 * Load path again, as a new version of its plugin (or for the first time).
 * On success the new version's projections replace the previous version's
 * (ids of other files must not clash), the previous version is released by
 * the registry (it closes when nobody holds it any more), and *changes
 * lists every projection id of either version (free with free()). A file
 * whose bytes equal the running version's is not loaded again: SL_OK with
 * no changes (and any error shown for the file is cleared).
 * On failure nothing changes but the file's error (kept for status, with
 * the time, until a good build arrives); the previous version keeps running.
 * @return SL_OK; the codes of registry_load_file except SL_EEXIST for the
 * file itself being loaded.
 */
int registry_reload_file(registry *r, const char *path, proj_change **changes,
    size_t *n_changes, char *err, size_t errlen);

/**
 * The file is gone: its plugin is unloaded (the registry's hold released)
 * and it leaves the plugin list; *changes lists its projections with
 * new_def NULL (free with free()). SL_ENOTFOUND if the file is not known.
 */
int registry_unload_file(
    registry *r, const char *path, proj_change **changes, size_t *n_changes);

/**
 * Show a refusal found before loading (e.g. a file still being written) as
 * the file's error; a loaded version keeps running. A file not yet known is
 * listed as refused.
 */
void registry_set_error(registry *r, const char *path, const char *reason);

/**
 * Record that the definition with this id loaded but does not run, and why
 * (e.g. its output streams overlap another projection's); reason NULL
 * clears it. The runtime sets it when a claim is refused and clears it
 * when the definition claims its streams, stops being emitting or goes.
 * `plugins` and `status` show it on the definition and, while the file has
 * no error of its own, as its plugin's error (registry_plugin_info); a
 * reload of the same bytes keeps it.
 */
void registry_set_refused(registry *r, const char *id, const char *reason);
/**
 * Why the definition with this id does not run, or NULL (and *at_ns, if
 * not NULL, gets when that was recorded). Borrowed: valid until
 * registry_destroy.
 */
const char *registry_refused(registry *r, const char *id, int64_t *at_ns);

/** Whether path is a plugin file the registry lists (loaded or refused). */
bool registry_has_file(registry *r, const char *path);

#endif
