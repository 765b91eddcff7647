/*
 * Reading an emitting projection's states: the committed ones from the log
 * env (get_one / get_all), a transient run's from its fold (snapshots),
 * and one-time queries: a processor without a thread (proc_emit.c, mode
 * one-time) run over the log to its head in the caller's thread, in
 * memory, stopping at the first failure.
 */
#include "emitter.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "monotime.h"
#include "proc_internal.h"

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
		if (proc_emit_result(c->result, c->def, k, state,
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
	processor *p = eproj_processor(e);
	pthread_mutex_lock(&p->mu);
	const proj_def *def = p->def;
	proj_def_hold(def);
	if (position != NULL)
		*position = p->st.position;
	pthread_mutex_unlock(&p->mu);
	if (def == NULL || def->p == NULL) {
		proj_def_release(def);
		return SL_ENOTFOUND;
	}
	pthread_mutex_lock(&p->em->cmu);
	int rc = cache_each(&p->states, def, proj_def_result(def), key,
	    key_len, fn, arg, true);
	pthread_mutex_unlock(&p->em->cmu);
	proj_def_release(def);
	return rc;
}

/* ---- one-time queries ---- */

int
eproj_query(store *s, const char *tenant, const proj_def *def, const char *key,
    size_t key_len, int timeout_ms, eproj_cancel_fn cancel, void *cancel_arg,
    eproj_state_fn fn, void *arg, uint64_t *position, uint64_t *progress,
    char *err, size_t errlen)
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
	proc_emit *em = calloc(1, sizeof(*em));
	batch_ctx *b  = malloc(sizeof(*b));
	processor *p  = NULL;
	if (em != NULL) {
		em->mode       = CFG_MODE_ONE_TIME;
		em->only_key   = key;
		em->only_len   = key_len;
		em->cancel     = cancel;
		em->cancel_arg = cancel_arg;
		p              = proc_new(s, NULL, tenant, def, 4096, em);
		if (p == NULL)
			proc_emit_free(em);
	}
	if (p == NULL || b == NULL) {
		if (p != NULL)
			proc_free(p);
		free(b);
		return SL_ENOMEM;
	}
	uint64_t head     = store_next_position(s);
	uint64_t pos      = 0;
	int64_t  deadline = timeout_ms >= 0
	     ? mono_ns() + (int64_t) timeout_ms * 1000000
	     : INT64_MAX;
	int      rc       = SL_OK;
	if (position != NULL)
		*position = head;
	while (pos < head) {
		memset(b, 0, sizeof(*b));
		b->limit = head;
		rc       = proc_run_batch(p, pos, b);
		if (rc != SL_OK) {
			snprintf(err, errlen, "projection '%s': %s",
			    def->name, b->reason);
			rc = rc == SL_ENOMEM ? rc : SL_ESTORAGE;
			break;
		}
		if (p->fails.n > 0) {
			const fail_unit *u = &p->fails.v[0];
			snprintf(err, errlen,
			    "projection '%s', event at position %" PRIu64
			    ": %s",
			    def->name, u->pos, u->reason);
			rc = SL_EPLUGIN;
			break;
		}
		if (cancel != NULL && cancel(cancel_arg)) {
			snprintf(err, errlen,
			    "projection '%s': the query was cancelled at "
			    "position %" PRIu64,
			    def->name, b->next);
			rc = SL_ECLOSED;
			break;
		}
		if (progress != NULL)
			__atomic_store_n(progress, b->next, __ATOMIC_RELAXED);
		if (b->next == pos && !b->cut)
			break; /* nothing more */
		pos = b->next;
		if (pos < head && mono_ns() > deadline) {
			snprintf(err, errlen,
			    "projection '%s': the query did not reach the "
			    "head (%" PRIu64 ") in %d ms (at %" PRIu64 ")",
			    def->name, head, timeout_ms, pos);
			rc = SL_ETIMEDOUT;
			break;
		}
	}
	if (rc == SL_OK)
		rc = cache_each(&p->states, def, em->result, key, key_len, fn,
		    arg, true);
	free(b);
	proc_free(p);
	return rc;
}
