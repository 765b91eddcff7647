/*
 * A query's JavaScript projection (issue 16, `sluice query --js`): a
 * script's text loaded as a .js file of the plugin directory is (a private
 * copy of the script, one of js_host.so, plug_js_open) but never
 * published: no lookup finds it, no reload touches it, and its last
 * release (proj_def_release) unloads it and frees it (plug_ver_close).
 */
#include "plugins_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

int
registry_load_js_text(registry *r, const char *file, const void *text,
    size_t len, const proj_def **out, char *err, size_t errlen)
{
	char dummy[1];
	if (err == NULL || errlen == 0) {
		err    = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	*out   = NULL;
	if (r == NULL || file == NULL || strchr(file, '/') != NULL
	    || (text == NULL && len > 0)) {
		snprintf(err, errlen, "%s: not a script's file name",
		    file != NULL ? file : "(null)");
		return SL_EINVAL;
	}
	plugin     *owner = calloc(1, sizeof(*owner));
	plugin_ver *v     = calloc(1, sizeof(*v));
	char       *host  = NULL;
	refusal     rf;
	rf.why[0] = '\0';
	int rc    = SL_ENOMEM;
	if (owner == NULL || v == NULL
	    || (owner->file = strdup(file)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", file);
		goto fail;
	}
	/* the path only: what it names is copied before it is run, so a
	 * registry_set_js_host meanwhile changes nothing here */
	pthread_mutex_lock(&r->load_mu);
	if (r->js_host != NULL)
		host = strdup(r->js_host);
	bool no_host = r->js_host == NULL;
	pthread_mutex_unlock(&r->load_mu);
	if (!no_host && host == NULL) {
		snprintf(err, errlen, "%s: out of memory", file);
		goto fail;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	v->r            = r;
	v->owner        = owner;
	v->detached     = true;
	v->loaded_at_ns = (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
	v->file_size    = len;
	atomic_init(&v->refs, 1); /* the caller's */
	char cerr[512] = "";
	v->copy = plug_write_copy(r, file, text, len, cerr, sizeof(cerr));
	rc      = v->copy == NULL ? plug_refuse(&rf, SL_EPLUGIN, "%s", cerr)
	                          : plug_js_open(r, v, host, &rf);
	free(host);
	host = NULL;
	if (rc == SL_OK && (v->n_defs != 1 || v->n_filters != 0))
		rc = plug_refuse(&rf, SL_EPLUGIN,
		    "the JavaScript host gave %zu definitions, not one "
		    "projection",
		    v->n_defs);
	if (rc != SL_OK) {
		/* the script's own reasons name it already */
		const char *why = rf.why[0] != '\0' ? rf.why : sl_strerror(rc);
		if (strncmp(why, file, strlen(file)) == 0)
			snprintf(err, errlen, "%s", why);
		else
			snprintf(err, errlen, "%s: %s", file, why);
		goto fail;
	}
	log_debug("plugins", "loaded query script %s as projection '%s'", file,
	    v->defs[0]->name);
	*out = v->defs[0];
	return SL_OK;
fail:
	free(host);
	if (v != NULL) {
		plug_ver_unload(v);
		plug_ver_free(v);
	}
	if (owner != NULL)
		free(owner->file);
	free(owner);
	return rc;
}
