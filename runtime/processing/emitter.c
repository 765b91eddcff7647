/*
 * Emitting projections (see emitter.h): what they are and claim, and their
 * runs, which are processors (projection.c, proc_emit.c) seen through the
 * words EventStoreDB's status uses.
 */
#include "emitter.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proc_internal.h"
#include "sysproj.h"

/* ---- emitting projections: what they are and claim ---- */

bool
eproj_is_emitting(const proj_def *def)
{
	if (def == NULL || def_is_filter(def))
		return false;
	if (sysproj_is_system(def))
		return true;
	size_t n;
	(void) proj_def_emits(def, &n);
	return n > 0 || proj_def_result(def) != NULL;
}

/* "$projections-<name>-" (result streams start with it). */
char *
eproj_result_prefix(const proj_def *def)
{
	char *p;
	if (asprintf(&p, "$projections-%s-", def->name) < 0)
		return NULL;
	return p;
}

int
eproj_result_names(const proj_def *def, char **root, char **pattern)
{
	const char *r, *pt;
	proj_def_result_streams(def, &r, &pt);
	*root    = r != NULL ? strdup(r) : NULL;
	*pattern = pt != NULL ? strdup(pt) : NULL;
	if (r == NULL
	    && asprintf(root, "$projections-%s-result", def->name) < 0)
		*root = NULL;
	if (pt == NULL
	    && asprintf(pattern, "$projections-%s-{0}-result", def->name) < 0)
		*pattern = NULL;
	if (*root == NULL || *pattern == NULL) {
		free(*root);
		free(*pattern);
		*root = *pattern = NULL;
		return SL_ENOMEM;
	}
	return SL_OK;
}

char *
eproj_partition_stream(const char *pattern, const char *key)
{
	const char *arg = strstr(pattern, "{0}");
	char       *s;
	if (arg == NULL)
		return strdup(pattern);
	if (asprintf(
	        &s, "%.*s%s%s", (int) (arg - pattern), pattern, key, arg + 3)
	    < 0)
		return NULL;
	return s;
}

bool
eproj_is_result_stream(
    const char *root, const char *pattern, const char *stream)
{
	if (root != NULL && strcmp(stream, root) == 0)
		return true;
	const char *arg = pattern != NULL ? strstr(pattern, "{0}") : NULL;
	if (arg == NULL)
		return false;
	size_t pre = (size_t) (arg - pattern), post = strlen(arg + 3);
	size_t n = strlen(stream);
	return n > pre + post && strncmp(stream, pattern, pre) == 0
	    && strcmp(stream + n - post, arg + 3) == 0;
}

/* Claim a named result stream: root exactly, a pattern's prefix. */
static int
claim_named(store *s, const proj_def *def, const char *name, bool pattern,
    char *err, size_t errlen)
{
	char *pat = NULL;
	if (name == NULL)
		return SL_OK;
	const char *arg = pattern ? strstr(name, "{0}") : NULL;
	int n = arg != NULL ? asprintf(&pat, "%.*s*", (int) (arg - name), name)
	                    : asprintf(&pat, "%s", name);
	if (n < 0) {
		snprintf(err, errlen, "out of memory");
		return SL_ENOMEM;
	}
	int rc = store_claim(s, pat, def->id, def->name, err, errlen);
	free(pat);
	return rc;
}

int
eproj_claim(store *s, const proj_def *def, char *err, size_t errlen)
{
	if (s == NULL || def == NULL || def_is_filter(def)) {
		snprintf(err, errlen, "not a projection");
		return SL_EINVAL;
	}
	size_t             n;
	const char *const *emits = proj_def_emits(def, &n);
	for (size_t i = 0; i < n; i++) {
		int rc = store_claim(
		    s, emits[i], def->id, def->name, err, errlen);
		if (rc != SL_OK)
			return rc;
	}
	char *rp = eproj_result_prefix(def);
	char *pat;
	if (rp == NULL || asprintf(&pat, "%s*", rp) < 0) {
		free(rp);
		snprintf(err, errlen, "out of memory");
		return SL_ENOMEM;
	}
	free(rp);
	int rc = store_claim(s, pat, def->id, def->name, err, errlen);
	free(pat);
	const char *root, *ppat;
	proj_def_result_streams(def, &root, &ppat);
	if (rc == SL_OK)
		rc = claim_named(s, def, root, false, err, errlen);
	if (rc == SL_OK)
		rc = claim_named(s, def, ppat, true, err, errlen);
	return rc;
}

/* ---- the continuous / transient run: a processor ---- */

struct eproj {
	processor *p;
	cfg_mode   mode;
};

int
eproj_start(store *s, const char *tenant, const proj_def *def, cfg_mode mode,
    const proj_settings *set, bool stopped, eproj **out)
{
	*out     = NULL;
	eproj *e = calloc(1, sizeof(*e));
	if (e == NULL)
		return SL_ENOMEM;
	e->mode = mode;
	int rc  = proc_start_emitting(s, tenant, def, mode, set, stopped, &e->p);
	if (rc != SL_OK) {
		free(e);
		return rc;
	}
	*out = e;
	return SL_OK;
}

void
eproj_stop(eproj *e)
{
	if (e == NULL)
		return;
	proc_stop(e->p);
	free(e);
}

void
eproj_set_def(eproj *e, const proj_def *def)
{
	proc_set_def(e->p, def);
}

int
eproj_command(eproj *e, proc_cmd cmd, int timeout_ms)
{
	return proc_command(e->p, cmd, timeout_ms);
}

const char *
eproj_id(const eproj *e)
{
	return proc_projection_id(e->p);
}

const char *
eproj_tenant(const eproj *e)
{
	return proc_tenant(e->p);
}

processor *
eproj_processor(eproj *e)
{
	return e->p;
}

const proj_def *
eproj_def(eproj *e)
{
	processor *p = e->p;
	pthread_mutex_lock(&p->mu);
	const proj_def *d = p->def;
	pthread_mutex_unlock(&p->mu);
	return d;
}

void
eproj_get_status(eproj *e, eproj_status *out)
{
	proc_status  st;
	proc_failing f;
	memset(out, 0, sizeof(*out));
	proc_get_status(e->p, &st);
	const proj_def *def = eproj_def(e);
	uint64_t        head = store_next_position(e->p->s);
	out->tenant          = st.tenant;
	out->def             = def;
	out->mode            = e->mode;
	if (def == NULL) {
		out->status = "stopped";
		snprintf(out->reason, sizeof(out->reason),
		    "the projection was unloaded");
	} else if (st.paused) {
		out->status = "stopped";
	} else if (st.state == PROC_FAILING || st.state == PROC_FAILED) {
		/* the whole waits (its batch cannot be written): EventStoreDB
		 * calls it faulted */
		out->status = "faulted";
		snprintf(out->reason, sizeof(out->reason), "%s", st.reason);
	} else if (st.state == PROC_STARTING) {
		out->status = NULL;
	} else if (st.state == PROC_STANDBY) {
		/* another node runs it (docs/postgresql.md, "Leases") */
		out->status = "standby";
		snprintf(out->reason, sizeof(out->reason), "%s", st.reason);
	} else if (st.n_failing > 0 && proc_keys_static(def)
	    && eproj_get_failing(e, &f, 1) > 0) {
		/* its one state cannot move on */
		out->status = "faulted";
		snprintf(out->reason, sizeof(out->reason),
		    "event at position %" PRIu64 ": %.200s", f.position,
		    f.reason);
		st.attempts = f.attempts;
	} else {
		out->status = "running";
		if (st.n_failing > 0) /* as the processors say it */
			snprintf(out->reason, sizeof(out->reason),
			    "%zu partition%s failing, the others go on",
			    st.n_failing, st.n_failing == 1 ? "" : "s");
	}
	if (e->mode == CFG_MODE_CONTINUOUS && store_leased(e->p->s)) {
		out->leased     = true;
		out->lease_held = store_lease_get(e->p->s, st.tenant,
		                      eproj_id(e), out->lease_holder,
		                      sizeof(out->lease_holder))
		    != 0;
	}
	out->position          = st.position;
	out->head              = head > st.position ? head : st.position;
	out->progress          = out->head == 0
	             ? 100.0
	             : 100.0 * (double) out->position / (double) out->head;
	out->events_processed  = st.events_handled;
	out->events_per_sec    = st.events_per_sec;
	out->partitions_cached = st.cached;
	out->emitted           = st.emitted;
	out->writes_in_flight  = st.writes_in_flight;
	out->attempts          = st.attempts;
	out->n_failing         = st.n_failing;
	out->failures          = st.failures;
	out->retries           = st.retries;
}

size_t
eproj_get_failing(eproj *e, proc_failing *out, size_t max)
{
	return proc_get_failing(e->p, out, max);
}
