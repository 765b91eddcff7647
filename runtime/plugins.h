/*
 * Loading plugins: each .so is copied to a private file in the cache
 * directory and opened from there with RTLD_NOW | RTLD_LOCAL, its
 * descriptor checked (ABI major, struct sizes, required callbacks, ids,
 * selectors, initial state), and its projections registered. A plugin that
 * fails any check is refused with a reason kept for status; the rest run on.
 */
#ifndef SL_PLUGINS_H
#define SL_PLUGINS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/plugin.h>

typedef struct plugin plugin;
typedef struct registry registry;

/** One loaded projection, valid while its plugin is loaded. */
typedef struct proj_def {
	const sl_projection *p; /* plugin-owned vtable */
	plugin *owner;
	char id[37];    /* canonical lower-case UUID text */
	char scope[37];
	const char *name;
	uint64_t def_hash; /* hash of the definition; change => rebuild */
	char *initial;     /* initial state as a msgpack map (host-owned) */
	size_t initial_len;
} proj_def;

/** What status shows for a plugin file, loaded or refused. */
typedef struct plugin_info {
	const char *file;    /* path in the plugin directory */
	const char *name;    /* NULL if refused before the descriptor was read */
	const char *version;
	bool loaded;
	const char *error;   /* refusal reason, NULL if loaded */
	size_t n_projections;
	int64_t loaded_at_ns;
} plugin_info;

/** @param cache_dir  where private copies go (created if missing) */
int registry_create(const char *cache_dir, registry **out);
/** Unload every plugin (calls fini) and free. */
void registry_destroy(registry *r);

/**
 * Load every regular file ending in ".so" in dir (sorted by name).
 * Refusals are logged and kept for status; they are not errors here.
 * @return SL_OK, or SL_ENOTFOUND if dir cannot be read.
 */
int registry_load_dir(registry *r, const char *dir);
/**
 * Load one file. @return SL_OK; SL_EPLUGIN (dlopen, missing symbol, init
 * failed, invalid definition), SL_EVERSION (ABI major or struct size),
 * SL_EEXIST (projection id already loaded). err gets the reason, naming the
 * file and, where it applies, the projection and the callback.
 */
int registry_load_file(registry *r, const char *path, char *err,
    size_t errlen);

size_t registry_projection_count(registry *r);
const proj_def *registry_projection(registry *r, size_t i);
/** Find by id (UUID text, any case) or by name. NULL if none. */
const proj_def *registry_find(registry *r, const char *id_or_name,
    size_t len);

size_t registry_plugin_count(registry *r);
/** Info for plugin file i (loaded or refused); borrowed, valid until the
 * registry changes. */
void registry_plugin_info(registry *r, size_t i, plugin_info *out);

#endif
