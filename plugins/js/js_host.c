/*
 * The js_host plugin, two ways in. The registry loads each *.js file of
 * plugin_dir through a private copy of this .so of its own, calling
 * sluice_js_load (the file's one projection; a refusal names file:line).
 * Loaded as an ordinary plugin, sluice_plugin_init serves every *.js file
 * of the directory $SLUICE_JS_DIR (a file that does not load is logged
 * and left out).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/plugin.h>

#include "jsproj.h"

static jsproj              **loaded;
static const sl_projection **projs;
static size_t                n_loaded;

static void
js_fini(void)
{
	for (size_t i = 0; i < n_loaded; i++)
		jsproj_close(loaded[i]);
	free(loaded);
	free(projs);
	loaded   = NULL;
	projs    = NULL;
	n_loaded = 0;
	jsproj_fini();
}

static sl_plugin_desc desc = {
	.struct_size = sizeof(sl_plugin_desc),
	.abi_version = SL_ABI_VERSION,
	.name        = "js_host",
	.version     = "0.1.0",
	.fini        = js_fini,
};

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * Load one .js file (path: the registry's private copy; file: the name it
 * has in plugin_dir) as this copy's one projection. @return SL_OK with
 * *out; else an error code and err ("count.js:3: SyntaxError: ...").
 */
SL_EXPORT int
sluice_js_load(const sl_host_api *host, const char *path, const char *file,
    const sl_plugin_desc **out, char *err, size_t errlen)
{
	if (host->struct_size < sizeof(sl_host_api)) {
		snprintf(err, errlen, "js_host needs an ABI 1.3 host");
		return SL_EVERSION;
	}
	if (n_loaded != 0 || jsproj_init() != SL_OK) {
		snprintf(err, errlen,
		    "%s: cannot install the CPU budget: every real-time "
		    "signal from SIGRTMIN+7 on is taken by someone else",
		    file);
		return SL_EPLUGIN;
	}
	loaded = calloc(1, sizeof(*loaded));
	projs  = calloc(1, sizeof(*projs));
	jsproj *p;
	int     rc = loaded == NULL || projs == NULL
	        ? SL_ENOMEM
	        : jsproj_open(host, path, file, NULL, &p, err, errlen);
	if (rc != SL_OK) {
		js_fini();
		return rc;
	}
	loaded[0]          = p;
	projs[0]           = jsproj_projection(p);
	n_loaded           = 1;
	desc.name          = jsproj_projection(p)->name;
	desc.projections   = projs;
	desc.n_projections = 1;
	*out               = &desc;
	return SL_OK;
}

SL_EXPORT int
sluice_plugin_init(const sl_host_api *host, const sl_plugin_desc **out)
{
	char        msg[1200];
	const char *dir = getenv("SLUICE_JS_DIR");
	if (host->struct_size < sizeof(sl_host_api)) {
		host->log(SL_LOG_ERROR, "js_host: needs an ABI 1.3 host");
		return SL_EVERSION;
	}
	if (dir == NULL || dir[0] == '\0') {
		host->log(SL_LOG_ERROR, "js_host: SLUICE_JS_DIR is not set");
		return SL_EPLUGIN;
	}
	DIR *d = opendir(dir);
	if (d == NULL) {
		snprintf(msg, sizeof(msg), "js_host: cannot read %s", dir);
		host->log(SL_LOG_ERROR, msg);
		return SL_EPLUGIN;
	}
	char         **names = NULL;
	size_t         n     = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (len < 4 || strcmp(de->d_name + len - 3, ".js") != 0)
			continue;
		char **nn = realloc(names, (n + 1) * sizeof(*nn));
		if (nn == NULL)
			break;
		names      = nn;
		names[n++] = strdup(de->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_str);
	if (jsproj_init() != SL_OK) {
		host->log(SL_LOG_ERROR, "js_host: cannot install the budget");
		return SL_EPLUGIN;
	}
	loaded = calloc(n ? n : 1, sizeof(*loaded));
	projs  = calloc(n ? n : 1, sizeof(*projs));
	for (size_t i = 0; i < n; i++) {
		char path[4200], err[1024];
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		jsproj *p;
		if (names[i] != NULL && loaded != NULL && projs != NULL
		    && jsproj_open(
		           host, path, NULL, NULL, &p, err, sizeof(err))
		        == SL_OK) {
			loaded[n_loaded]  = p;
			projs[n_loaded++] = jsproj_projection(p);
		} else if (names[i] != NULL) {
			snprintf(
			    msg, sizeof(msg), "js_host: not loaded: %s", err);
			host->log(SL_LOG_ERROR, msg);
		}
		free(names[i]);
	}
	free(names);
	desc.projections   = projs;
	desc.n_projections = n_loaded;
	*out               = &desc;
	return SL_OK;
}
