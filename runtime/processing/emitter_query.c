/*
 * Reading an emitting projection's states: the committed ones from the log
 * env (get_one / get_all), a transient run's from its cache (snapshots),
 * and one-time queries, which run the handling of emitter_run.c over the
 * log in the caller's thread, in memory.
 */
#include "emitter_internal.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* ---- reading states ---- */

typedef struct rs_ctx {
	const proj_def *def;
	proj_result_fn  result;
	eproj_state_fn  fn;
	void           *arg;
	int             rc;
} rs_ctx;

/* Call fn with a state and its result. */
static int
call_with_result(rs_ctx *c, const char *key, size_t key_len, const void *state,
    size_t state_len)
{
	char   k[PROC_KEY_MAX];
	void  *res  = NULL;
	size_t rlen = 0;
	char   why[256];
	if (c->result != NULL && key_len < sizeof(k)) {
		memcpy(k, key, key_len);
		k[key_len] = '\0';
		if (eproj_compute_result(c->result, c->def, k, state,
		        state_len, &res, &rlen, why, sizeof(why))
		    != SL_OK)
			log_warn("emitter", "'%s': %s", c->def->name, why);
	}
	int rc = c->fn(c->arg, key, key_len, state, state_len, res, rlen);
	free(res);
	return rc;
}

static int
read_cb(void *arg, const void *key, size_t key_len, const void *val,
    size_t val_len)
{
	return call_with_result(arg, key, key_len, val, val_len);
}

int
eproj_read_states(store *s, const char *tenant, const proj_def *def,
    proj_result_fn result, const char *key, size_t key_len, eproj_state_fn fn,
    void *arg)
{
	if (s == NULL || tenant == NULL || def == NULL || fn == NULL)
		return SL_EINVAL;
	rs_ctx c = { .def = def, .result = result, .fn = fn, .arg = arg };
	if (key != NULL)
		return store_get_pstate(
		    s, tenant, def->id, key, key_len, read_cb, &c);
	return store_scan_pstates(s, tenant, def->id, NULL, 0, read_cb, &c);
}

/* Call fn for the cached states in key order (only key when given). */
static int
cache_each(const cache *ch, const proj_def *def, proj_result_fn result,
    const char *key, size_t key_len, eproj_state_fn fn, void *arg,
    bool initial_if_none)
{
	rs_ctx c = { .def = def, .result = result, .fn = fn, .arg = arg };
	if (key != NULL) {
		centry *x = scache_find((cache *) ch, key, key_len);
		if (x != NULL && x->state != NULL)
			return call_with_result(
			    &c, key, key_len, x->state, x->state_len);
		if (!initial_if_none)
			return SL_ENOTFOUND;
		return call_with_result(
		    &c, key, key_len, def->initial, def->initial_len);
	}
	centry **v = ch->n > 0 ? malloc(ch->n * sizeof(*v)) : NULL;
	size_t   n = 0;
	if (ch->n > 0 && v == NULL)
		return SL_ENOMEM;
	for (size_t i = 0; i < ch->cap; i++)
		for (centry *x = ch->tab[i]; x != NULL; x = x->hnext)
			if (x->state != NULL)
				v[n++] = x;
	if (n > 1)
		qsort(v, n, sizeof(*v), scache_cmp_entries);
	int rc = SL_OK;
	for (size_t i = 0; i < n && rc == SL_OK; i++)
		rc = call_with_result(&c, v[i]->key, v[i]->key_len,
		    v[i]->state, v[i]->state_len);
	free(v);
	return rc;
}

int
eproj_snapshot(eproj *e, const char *key, size_t key_len, eproj_state_fn fn,
    void *arg, uint64_t *position)
{
	if (e == NULL || fn == NULL)
		return SL_EINVAL;
	pthread_mutex_lock(&e->mu);
	const proj_def *def = e->def;
	proj_def_hold(def);
	if (position != NULL)
		*position = e->position;
	pthread_mutex_unlock(&e->mu);
	if (def == NULL || def->p == NULL) {
		proj_def_release(def);
		return SL_ENOTFOUND;
	}
	pthread_mutex_lock(&e->cmu);
	int rc = cache_each(
	    &e->r.c, def, proj_def_result(def), key, key_len, fn, arg, true);
	pthread_mutex_unlock(&e->cmu);
	proj_def_release(def);
	return rc;
}

/* ---- one-time queries ---- */

typedef struct qscan {
	run            *r;
	hfail           f;
	uint64_t        failed_at;
	hres            res;
	uint64_t        seen;
	eproj_cancel_fn cancel;
	void           *cancel_arg;
} qscan;

/* query_cb's stops: a handler failed, or the query was cancelled */
#define QSCAN_FAILED    1
#define QSCAN_CANCELLED 2

static int
query_cb(void *arg, uint64_t position, const void *data, size_t len)
{
	qscan *q = arg;
	if (q->cancel != NULL && q->cancel(q->cancel_arg))
		return QSCAN_CANCELLED;
	q->seen++;
	hres res = eproj_run_record(q->r, position, data, len, 0, NULL, &q->f);
	if (res == H_FAILED || res == H_ERROR) {
		q->res       = res;
		q->failed_at = position;
		return QSCAN_FAILED;
	}
	return 0;
}

int
eproj_query(store *s, const char *tenant, const proj_def *def, const char *key,
    size_t key_len, int timeout_ms, eproj_cancel_fn cancel, void *cancel_arg,
    eproj_state_fn fn, void *arg, uint64_t *position, char *err, size_t errlen)
{
	char dummy[1];
	if (err == NULL || errlen == 0) {
		err    = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	if (s == NULL || tenant == NULL || def == NULL || fn == NULL
	    || def_is_filter(def) || def->p == NULL) {
		snprintf(err, errlen, "not a loaded projection");
		return SL_EINVAL;
	}
	run r;
	int rc = eproj_run_init(&r, RUN_QUERY, s, tenant, def);
	if (rc != SL_OK) {
		eproj_run_fini(&r);
		return rc;
	}
	r.only_key        = key;
	r.only_len        = key_len;
	uint64_t head     = store_next_position(s);
	uint64_t pos      = 0;
	int64_t  deadline = timeout_ms >= 0
	     ? mono_ns() + (int64_t) timeout_ms * 1000000
	     : INT64_MAX;
	if (position != NULL)
		*position = head;
	while (pos < head && rc == SL_OK) {
		qscan q
		    = { .r = &r, .cancel = cancel, .cancel_arg = cancel_arg };
		uint64_t next;
		size_t max = head - pos < 4096 ? (size_t) (head - pos) : 4096;
		rc         = store_scan(s, pos, max, query_cb, &q, &next);
		if (rc == QSCAN_CANCELLED) {
			snprintf(err, errlen,
			    "projection '%s': the query was cancelled at "
			    "position %" PRIu64,
			    def->name, pos);
			rc = SL_ECLOSED;
			break;
		}
		if (rc == QSCAN_FAILED) {
			snprintf(err, errlen,
			    "projection '%s', event at position %" PRIu64
			    ": %s",
			    def->name, q.failed_at, q.f.why);
			rc = q.res == H_ERROR ? SL_ESTORAGE : SL_EPLUGIN;
			break;
		}
		if (rc != SL_OK) {
			snprintf(err, errlen, "reading the log: %s",
			    sl_strerror(rc));
			break;
		}
		if (next == pos)
			break; /* nothing more */
		pos = next;
		if (mono_ns() > deadline) {
			snprintf(err, errlen,
			    "projection '%s': the query did not reach the "
			    "head "
			    "(%" PRIu64 ") in %d ms (at %" PRIu64 ")",
			    def->name, head, timeout_ms, pos);
			rc = SL_ETIMEDOUT;
		}
	}
	if (rc == SL_OK)
		rc = cache_each(
		    &r.c, def, r.result, key, key_len, fn, arg, true);
	eproj_run_fini(&r);
	return rc;
}
