/*
 * The plugin registry's insides, shared by its files: defs.c (definitions
 * and their hashes), loader.c (private copies, dlopen, init and fini, a
 * version's close), validate.c (checking a descriptor, its projections and
 * filters) and registry.c (the lists, holds, loads, reloads and lookups).
 * Not for other parts of the runtime: they use plugins.h.
 */
#ifndef SL_PLUGINS_INTERNAL_H
#define SL_PLUGINS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fnv.h"
#include "plugins.h"

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
/* ABI 1.3: a filter's sources, source_flags and on_code_change are read
 * only when its struct_size covers them all (a filter built for 1.1 or
 * 1.2 reads the whole log and rebuilds on a code change). */
#define FILTER_V13_SIZE                                                       \
	(offsetof(sl_filter, on_code_change) + sizeof(sl_code_change))
/* ABI 1.2: emits, n_emits and result are read only when a projection's
 * struct_size covers all three. */
#define PROJ_V12_SIZE                                                         \
	(offsetof(sl_projection, result) + sizeof(void (*)(void)))
/* ABI 1.3: sources, n_sources and source_flags, read only when the struct
 * covers them and says 1.3 or later (sources_of in defs.c). */
#define PROJ_V13_SIZE                                                         \
	(offsetof(sl_projection, source_flags) + sizeof(uint32_t))
/* ABI 1.3: created, read when the struct covers it (and says 1.3). */
#define PROJ_V13C_SIZE                                                        \
	(offsetof(sl_projection, created) + sizeof(void (*)(void)))
#define PROJ_V13S_SIZE                                                        \
	(offsetof(sl_projection, shared_initial_state_json) + sizeof(char *))
#define PROJ_V13D_SIZE                                                        \
	(offsetof(sl_projection, deleted) + sizeof(void (*)(void)))
#define PROJ_V13K_SIZE                                                        \
	(offsetof(sl_projection, key) + sizeof(void (*)(void)))
/* ABI 1.3: result_stream, partition_result_stream and result_reason, read
 * when the struct covers all three (and says 1.3). */
#define PROJ_V13R_SIZE                                                        \
	(offsetof(sl_projection, result_reason) + sizeof(void (*)(void)))

/* One load of a plugin file: its private copy, handle and definitions. */
struct plugin_ver {
	registry             *r;
	plugin               *owner;
	char                 *copy; /* private copy; NULL once removed */
	char *host_copy; /* a .js file's copy of js_host.so, or NULL */
	void                 *dl;   /* dlopen handle; NULL if refused/closed */
	const sl_plugin_desc *desc; /* plugin-owned; NULL if refused/closed */
	char                 *name; /* host copies (NULL before desc read) */
	char                 *version;
	int64_t               loaded_at_ns;
	uint64_t              file_hash, file_size; /* of the bytes loaded */
	atomic_uint           refs;   /* registry (while current) + holders */
	bool                  closing; /* plug_ver_close began; under r->ver_mu */
	bool                  closed;  /* unloaded; under r->ver_mu */
	proj_def            **defs;   /* projections first, then filters */
	size_t                n_defs;
	size_t                n_filters; /* of n_defs */
	plugin_ver           *next; /* every published version, newest first */
	/* a query's script (registry_load_js_text): never published; its
	 * close frees it and its owner */
	bool detached;
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

/* A definition that loads but does not run (registry_set_refused). */
typedef struct def_refusal {
	char    id[37];
	char   *why;
	int64_t at_ns;
} def_refusal;

struct registry {
	/* loads and reloads that went through, and refused (metrics) */
	uint64_t loads_total, load_errors_total;
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
	def_refusal     *refused; /* by id, under lock */
	size_t           n_refused, cap_refused;
	char            *js_host; /* js_host.so for .js files, or NULL */
	/* files registry_load_dir leaves alone (registry_set_skip) */
	bool (*skip)(void *arg, const char *path);
	void *skip_arg;
};

/* ---- FNV-1a 64 over the definition ---- */

typedef struct {
	uint64_t h;
} fnv;

static inline void
fnv_bytes(fnv *f, const void *p, size_t n)
{
	f->h = fnv1a(f->h, p, n);
}

/* A failed check: a code and a reason (without the file prefix). */
typedef struct {
	int  code;
	char why[768];
} refusal;

int plug_refuse(refusal *rf, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* defs.c */
void     proj_def_free(proj_def *d);
uint64_t plug_filter_hash(const proj_def *d);
uint64_t plug_def_hash(const proj_def *d);

/* loader.c */
void  plug_remove_stale_copies(const char *dir);
char *plug_make_copy(const registry *r, const char *src, uint64_t *hash,
    uint64_t *size, char *err, size_t errlen);
/* A new private copy "<cache>/<name>.<n>.so" holding data[0..len). */
char *plug_write_copy(const registry *r, const char *name, const void *data,
    size_t len, char *err, size_t errlen);
void  plug_ver_free(plugin_ver *v);
void  plug_ver_unload(plugin_ver *v);
void  plug_ver_close(plugin_ver *v);
int   plug_ver_open(registry *r, plugin_ver *v, refusal *rf);
/* Load v->copy, a script, through a private copy of js_host (the path of
 * js_host.so, or NULL: none); the script is named for v->owner->file. */
int plug_js_open(registry *r, plugin_ver *v, const char *js_host, refusal *rf);

/* validate.c */
int plug_check_desc(registry *r, plugin_ver *v, proj_def **defs, refusal *rf);

#endif
