/*
 * Failing keys of an emitting projection (issue 14: one failure model): a
 * key whose event failed waits from that event on while every other key
 * goes on; the handler thread (emitter_handler.c) retries it by handling
 * the key's events again from the log, from the failed event up to where
 * the run is, in the batch being built, so what they emit commits with
 * the unit cleared (or moved on). The units live in the checkpoint record
 * (emitter_run.c), written with the batch that found or cleared them.
 *
 * What a retried key emits comes later in the log than what other keys
 * emitted meanwhile: a key's emits keep their order; across keys the log
 * order follows when each was handled, not the order of their causes.
 */
#include "emitter_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Events read per read transaction: the plugin runs inside it. */
#define RETRY_CHUNK 256
/* retry_cb's "stop here" (no sl_err code) */
#define RETRY_STOP 0x7ffe

typedef struct rscan {
	run             *r;
	const fail_unit *u;
	hfail           *f;
	uint64_t         fpos, handled;
	hres             res;
} rscan;

static int
retry_cb(void *arg, uint64_t pos, const void *data, size_t len)
{
	rscan   *q   = arg;
	bool     at  = pos == q->u->pos;
	uint32_t att = at ? q->u->attempts : 0;
	memset(q->f, 0, sizeof(*q->f));
	hres res = eproj_run_record(q->r, pos, data, len, att,
	    at && att > 0 ? q->u->reason : NULL, q->f);
	if (res == H_HANDLED)
		q->handled++;
	if (res == H_FAILED || res == H_ERROR) {
		q->res  = res;
		q->fpos = pos;
		return RETRY_STOP;
	}
	return 0;
}

int
eproj_retry_unit(run *r, const fail_unit *u, uint64_t upto, hfail *f,
    uint64_t *fpos, uint64_t *handled)
{
	rscan q       = { .r = r, .u = u, .f = f, .res = H_HANDLED };
	r->only_key   = u->unit;
	r->only_len   = u->ulen;
	r->retrying   = true;
	int      rc   = SL_OK;
	uint64_t from = u->pos;
	while (from < upto && q.res == H_HANDLED) {
		uint64_t next = from;
		uint64_t n    = upto - from;
		rc            = store_scan(r->s, from,
                    n < RETRY_CHUNK ? (size_t) n : RETRY_CHUNK, retry_cb, &q,
		               &next);
		if (rc != SL_OK && rc != RETRY_STOP) {
			snprintf(f->why, sizeof(f->why),
			    "retry: cannot read the log: %s", sl_strerror(rc));
			break;
		}
		rc = SL_OK;
		if (next <= from)
			break; /* the log ends before upto (cannot happen) */
		from = next;
	}
	r->only_key = NULL;
	r->only_len = 0;
	r->retrying = false;
	*fpos       = q.fpos;
	*handled    = q.handled;
	if (rc != SL_OK)
		return SL_ESTORAGE;
	if (q.res == H_ERROR)
		return SL_ESTORAGE;
	return q.res == H_FAILED ? SL_EPLUGIN : SL_OK;
}

int
eproj_failing_reload(eproj *e)
{
	failset_free(&e->failing);
	failset_init_memory(&e->failing);
	if (e->mode == CFG_MODE_TRANSIENT)
		return SL_OK;
	ckpt c  = { .failing = &e->failing };
	int  rc = eproj_ckpt_read(e->s, e->tenant, e->id, &c);
	if (rc != SL_OK) {
		failset_free(&e->failing);
		failset_init_memory(&e->failing);
	}
	return rc == SL_ENOTFOUND ? SL_OK : rc;
}
