/*
 * Handling events with a remote client (remote.h), pipelined: up to the
 * registration's window of calls in flight, so the round trip is paid once
 * per window, not once per event. The effects stay what the plugin path
 * gives:
 *   - a projection's events of one key are never in flight together (each
 *     needs the state the previous one left), events of other keys are;
 *   - a filter's answers are applied in log order (its stream is in log
 *     order per source stream, and wholly so when unpartitioned), whatever
 *     order they arrive in;
 *   - everything is applied in the batch's transaction, so a batch the
 *     client did not finish (it went away) is aborted whole and done again
 *     when it is back: no effect is lost or doubled.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/errors.h>

#include "log.h"
#include "proc_internal.h"

#define COLLECT_WAIT_MS 200  /* between looks at the stop flag */
#define RING_MAX        4096 /* events in flight per processor, at most */

/* A projection's read model key with events in flight or waiting: its
 * events go out one call at a time, in log order. */
typedef struct rkey {
	char         *unit;
	size_t        ulen;
	uint64_t      hash;
	uint32_t      n_sent;  /* in calls sent, not answered yet */
	uint32_t      n_open;  /* in the open batch (protocol 2) */
	struct rwait *wh, *wt; /* events waiting for the key, in log order */
	centry       *ent;     /* its state's cache entry (this batch's) */
	bool          ready;   /* on the ready list */
	bool          opened;  /* on the open list */
	struct rkey  *rnext;
} rkey;

/* An event waiting for its key (a copy of the stored event). */
typedef struct rwait {
	uint64_t      pos;
	void         *data;
	size_t        len;
	struct rwait *next;
} rwait;

/* An event in flight. Small: with protocol 2 thousands are. */
typedef struct remote_slot {
	uint64_t     tag;
	uint64_t     pos;
	bool         done;
	rkey        *k;    /* a projection's key */
	char        *unit; /* k->unit, or a filter's (malloc'ed) */
	size_t       ulen;
	remote_resp *resp; /* a filter's answer, applied in log order */
} remote_slot;

/* The events in flight in dispatch order (a ring indexed by tag), and a
 * projection's keys (thread-owned, per processor). */
struct remote_ring {
	remote_slot *v;
	size_t       cap, head, n;
	uint64_t     base; /* the tag of the head */
	rkey       **keys; /* open addressing; cleared when all is done */
	size_t       kcap, nkeys;
	rkey  *ready_h, *ready_t; /* keys free again with waiting events */
	size_t n_wait;
	rkey **open; /* keys with events in the open batch */
	size_t n_open, cap_open;
	bool   one_by_one; /* the client speaks protocol 1 */
	/* the event being scanned, decoded (not to decode it again), and
	 * as that decode read it in place (NULL: it did not) */
	const ev_view *view;
	const ev_raw  *raw;
	uint64_t       view_pos;
};

static remote_slot *slot_at(struct remote_ring *q, size_t i);

static size_t
ring_want(const processor *p)
{
	remote_proc *r = p->def->remote;
	size_t       w = remote_window(r), n = w * remote_batch(r);
	if (w == 0)
		w = 1;
	if (n < w)
		n = w;
	return n > RING_MAX ? (w > RING_MAX ? w : RING_MAX) : n;
}

int
proc_remote_open(processor *p)
{
	remote_proc *r = p->def->remote;
	p->ring        = calloc(1, sizeof(*p->ring));
	if (p->ring == NULL)
		return SL_ENOMEM;
	size_t w            = ring_want(p);
	p->ring->v          = calloc(w, sizeof(*p->ring->v));
	p->ring->cap        = w;
	p->ring->one_by_one = remote_batch(r) <= 1;
	int rc = p->ring->v != NULL ? remote_caller_open(r, &p->caller)
	                            : SL_ENOMEM;
	if (rc != SL_OK) {
		free(p->ring->v);
		free(p->ring);
		p->ring = NULL;
	}
	return rc;
}

/* Forget every key (none has anything in flight or waiting). */
static void
keys_clear(struct remote_ring *q)
{
	for (size_t i = 0; i < q->kcap; i++) {
		rkey *k = q->keys[i];
		if (k == NULL)
			continue;
		for (rwait *w = k->wh, *next; w != NULL; w = next) {
			next = w->next;
			free(w->data);
			free(w);
		}
		free(k->unit);
		free(k);
		q->keys[i] = NULL;
	}
	q->nkeys   = 0;
	q->n_wait  = 0;
	q->ready_h = q->ready_t = NULL;
	q->n_open               = 0;
}

void
proc_remote_close(processor *p)
{
	if (p->caller != NULL) {
		remote_caller_close(p->caller);
		p->caller = NULL;
	}
	if (p->ring != NULL) {
		for (size_t i = 0; i < p->ring->n; i++) {
			remote_slot *s = slot_at(p->ring, i);
			if (s->resp != NULL) {
				remote_resp_free(s->resp);
				free(s->resp);
			}
			if (s->k == NULL)
				free(s->unit);
		}
		keys_clear(p->ring);
		free(p->ring->keys);
		free(p->ring->open);
		free(p->ring->v);
		free(p->ring);
		p->ring = NULL;
	}
}

static uint64_t
unit_hash(const char *u, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char) u[i]) * 0x100000001b3ULL;
	return h;
}

/* The entry of a projection's key, made when new; NULL: out of memory. */
static rkey *
key_get(struct remote_ring *q, const char *unit, size_t ulen)
{
	uint64_t h = unit_hash(unit, ulen);
	if (2 * (q->nkeys + 1) > q->kcap) {
		size_t ncap = q->kcap ? q->kcap * 2 : 256;
		rkey **nk   = calloc(ncap, sizeof(*nk));
		if (nk == NULL)
			return NULL;
		for (size_t i = 0; i < q->kcap; i++) {
			rkey *k = q->keys[i];
			if (k == NULL)
				continue;
			size_t j = k->hash & (ncap - 1);
			while (nk[j] != NULL)
				j = (j + 1) & (ncap - 1);
			nk[j] = k;
		}
		free(q->keys);
		q->keys = nk;
		q->kcap = ncap;
	}
	size_t i = h & (q->kcap - 1);
	for (; q->keys[i] != NULL; i = (i + 1) & (q->kcap - 1)) {
		rkey *k = q->keys[i];
		if (k->hash == h && k->ulen == ulen
		    && memcmp(k->unit, unit, ulen) == 0)
			return k;
	}
	rkey *k = calloc(1, sizeof(*k));
	if (k == NULL || (k->unit = malloc(ulen + 1)) == NULL) {
		free(k);
		return NULL;
	}
	memcpy(k->unit, unit, ulen);
	k->unit[ulen] = '\0';
	k->ulen       = ulen;
	k->hash       = h;
	q->keys[i]    = k;
	q->nkeys++;
	return k;
}

static bool
stopped(const batch_ctx *b)
{
	return b->failed || b->storage || b->disconnected;
}

static remote_slot *
slot_at(struct remote_ring *q, size_t i)
{
	return &q->v[(q->head + i) % q->cap];
}

/* A failure of the slot's event, as a unit's failure. */
static void
slot_fail(batch_ctx *b, const remote_slot *s, bool retry, uint32_t delay_ms,
    const char *fmt, const char *what)
{
	memcpy(b->uf.unit, s->unit, s->ulen + 1);
	b->uf.ulen     = s->ulen;
	b->uf.retry    = retry;
	b->uf.delay_ms = delay_ms;
	snprintf(b->reason, sizeof(b->reason), fmt, what);
	proc_failed(b, s->pos);
}

/* Whether msgpack bytes start a map. */
static bool
is_map(const void *data, size_t len)
{
	const unsigned char *c = data;
	return len > 0
	    && ((c[0] & 0xf0) == 0x80 || c[0] == 0xde || c[0] == 0xdf);
}

/* Apply the answer r of slot s's event to the fold (a new state is
 * handed over from r to the fold). */
static void
apply(batch_ctx *b, const remote_slot *s, remote_resp *r)
{
	processor *p = b->p;
	if (stopped(b))
		return;
	if (r->outcome == REMOTE_DISCONNECTED) {
		b->disconnected = true;
		snprintf(b->reason, sizeof(b->reason), "%s",
		    r->reason[0] ? r->reason : "the remote client went away");
		return;
	}
	/* protocol 2: after the failing event of its run; it waits with
	 * the unit that failure stopped */
	if (r->outcome == REMOTE_SKIPPED)
		return;
	/* a filter's later event of a unit that failed in this batch */
	if (p->is_filter && p->partitioned && !b->retrying
	    && failset_find(&p->fails, s->unit, s->ulen) != NULL)
		return;
	if (r->outcome == REMOTE_FAILED) {
		slot_fail(b, s, r->retry, r->retry_after_ms, "%s",
		    r->reason[0] ? r->reason
		                 : "handler failed (no reason given)");
		return;
	}
	int rc = SL_OK;
	switch (p->is_filter ? r->outcome + 10 : r->outcome) {
	case REMOTE_REPLACE:
		if (!is_map(r->state, r->state_len)) {
			slot_fail(b, s, true, 0, "%s",
			    "the client's new state is not a map");
			return;
		}
		rc       = proc_state_take(b, s->k != NULL ? s->k->ent : NULL,
		          s->unit, s->ulen, r->state, r->state_len);
		r->state = NULL;
		r->state_len = 0;
		break;
	case REMOTE_DELETE:
		rc = proc_state_set(b, s->unit, s->ulen, NULL, 0);
		break;
	case REMOTE_APPLIED:
		/* an event of a run before its last applied one: the state
		 * that one carries holds its effect */
		break;
	case REMOTE_INCLUDED + 10: {
		sl_context ctx = { 0 };
		memcpy(b->uf.unit, s->unit, s->ulen + 1);
		b->uf.ulen = s->ulen;
		rc         = proc_filter_include(
		            b, &ctx, p->partitioned ? r->partition : NULL, s->pos);
		if (rc == HANDLE_UNIT_FAILED)
			proc_failed(b, s->pos);
		if (rc != SL_OK)
			return;
		b->handled--; /* counted below */
		break;
	}
	case REMOTE_EXCLUDED + 10:
		break;
	default:
		slot_fail(b, s, true, 0, "the client answered %s",
		    p->is_filter ? "a projection's outcome to a filter"
		                 : "a filter's outcome to a projection");
		return;
	}
	if (rc != SL_OK)
		return; /* b->storage set */
	b->handled++;
	proc_handled(b, s->pos);
}

/* Pop what is done from the head of the ring (applying a filter's answers
 * there, in log order). */
static void
pop_done(batch_ctx *b)
{
	struct remote_ring *q = b->p->ring;
	while (q->n > 0 && slot_at(q, 0)->done) {
		remote_slot *s = slot_at(q, 0);
		if (s->resp != NULL) {
			apply(b, s, s->resp);
			remote_resp_free(s->resp);
			free(s->resp);
			s->resp = NULL;
		}
		if (s->k == NULL)
			free(s->unit);
		s->unit = NULL;
		q->head = (q->head + 1) % q->cap;
		q->base++;
		q->n--;
	}
}

/* An event of key k was answered: the key is free again when it was its
 * last in flight; its waiting events then go (send_ready). */
static void
key_answered(struct remote_ring *q, rkey *k)
{
	if (k == NULL)
		return;
	if (k->n_sent > 0)
		k->n_sent--;
	else if (k->n_open > 0)
		k->n_open--; /* answered unsent (dropped) */
	if (k->n_sent == 0 && k->n_open == 0 && k->wh != NULL && !k->ready) {
		k->ready = true;
		k->rnext = NULL;
		if (q->ready_t != NULL)
			q->ready_t->rnext = k;
		else
			q->ready_h = k;
		q->ready_t = k;
	}
}

/* Wait for one answer and apply it (a projection's at once). Sends
 * nothing. */
static void
wait_answer(batch_ctx *b)
{
	processor          *p = b->p;
	struct remote_ring *q = p->ring;
	remote_resp         r;
	int                 rc;
	while ((rc = remote_call_next(p->caller, COLLECT_WAIT_MS, &r))
	    == SL_ETIMEDOUT) {
		if (proc_stopping(p)) {
			snprintf(b->reason, sizeof(b->reason),
			    "stopping with calls in flight");
			b->storage = true; /* abort the batch */
			return;
		}
	}
	if (rc != SL_OK) {
		/* no call in flight although the ring holds some: they are
		 * lost; the batch is done again */
		snprintf(b->reason, sizeof(b->reason), "remote calls lost: %s",
		    sl_strerror(rc));
		b->disconnected = true;
		for (size_t i = 0; i < q->n; i++) {
			remote_slot *s = slot_at(q, i);
			if (!s->done)
				key_answered(q, s->k);
			s->done = true;
		}
		pop_done(b);
		return;
	}
	uint64_t i = r.tag - q->base;
	if (r.tag >= q->base && i < q->n) {
		remote_slot *s = slot_at(q, (size_t) i);
		if (!s->done && s->tag == r.tag) {
			s->done = true;
			key_answered(q, s->k);
			if (!p->is_filter) {
				apply(b, s, &r);
				remote_resp_free(&r);
			} else if ((s->resp = malloc(sizeof(r))) != NULL) {
				*s->resp = r;
			} else {
				remote_resp_free(&r);
				snprintf(b->reason, sizeof(b->reason),
				    "out of memory");
				b->storage = true;
			}
			pop_done(b);
			return;
		}
	}
	log_warn("proc",
	    "tenant %s %s: an answer to no call of ours (%" PRIu64 ")",
	    p->tenant, p->proj_id, r.call);
	remote_resp_free(&r);
}

/* The open batch went out (or was dropped, answered "disconnected"): its
 * keys' events count as sent. */
static void
open_sent(struct remote_ring *q)
{
	for (size_t i = 0; i < q->n_open; i++) {
		rkey *k = q->open[i];
		k->n_sent += k->n_open;
		k->n_open = 0;
		k->opened = false;
	}
	q->n_open = 0;
}

/* Send the open batch (protocol 2), collecting answers while the window
 * is full. @return 0, or 1 when the batch must stop. */
static int
flush(batch_ctx *b)
{
	processor *p = b->p;
	while (remote_call_open(p->caller) > 0) {
		int rc = remote_call_flush(p->caller);
		if (rc == SL_EFULL) {
			wait_answer(b);
			if (b->storage)
				return 1;
			continue;
		}
		open_sent(p->ring);
		if (rc == SL_ECLOSED || rc == SL_ENOMEM) {
			/* its events are answered "disconnected" */
			b->disconnected = true;
			snprintf(b->reason, sizeof(b->reason), "%s",
			    rc == SL_ECLOSED
			        ? "the remote client is not connected"
			        : "remote call: out of memory");
			return 1;
		}
	}
	open_sent(p->ring);
	return stopped(b) ? 1 : 0;
}

/* Make room: take an answer that is already there; else send what is
 * open, then wait for one. (Flushing before each answer taken made a
 * call per event once the ring was full: each answer freed one slot.) */
static void
collect_one(batch_ctx *b)
{
	if (remote_call_open(b->p->caller) > 0
	    && !remote_call_ready(b->p->caller) && flush(b) != 0)
		return;
	wait_answer(b);
}

/* Hand the event at position (of unit; k its key for a projection) to
 * the client: a call (protocol 1) or the open batch (2). Room in the ring.
 * @return 0; 1 when the batch must stop; 2 when the open batch (or the
 * window) is full: flush or collect, then decide again. */
static int
send_call(batch_ctx *b, uint64_t position, const void *data, size_t len,
    const char *unit, size_t ulen, rkey *k)
{
	processor          *p = b->p;
	struct remote_ring *q = p->ring;
	/* an earlier event of this key failed meanwhile: this one waits */
	if (!p->is_filter && !b->retrying
	    && failset_find(&p->fails, unit, ulen) != NULL)
		return 0;

	remote_req req = {
		.tenant    = p->tenant,
		.event     = data,
		.event_len = len,
		.position  = position,
		.tag       = q->base + q->n,
		.view
		= q->view != NULL && q->view_pos == position ? q->view : NULL,
	};
	req.raw        = req.view != NULL ? q->raw : NULL;
	sl_context ctx = { 0 };
	proc_retry_state(b, position, &ctx);
	req.attempt     = ctx.attempt;
	req.last_reason = ctx.last_reason;
	if (!p->is_filter) {
		const void *data;
		size_t      dlen;
		centry     *ent;
		int grc = proc_state_get_at(b, unit, ulen, &data, &dlen, &ent);
		if (k != NULL)
			k->ent = ent;
		if (grc == SL_OK) {
			req.state     = data;
			req.state_len = dlen;
		} else if (grc == SL_ENOTFOUND) {
			req.state     = p->def->initial;
			req.state_len = p->def->initial_len;
		} else {
			return 1; /* b->storage set */
		}
		req.key = unit;
	}
	size_t   open_before = remote_call_open(p->caller);
	uint64_t call;
	int      rc = remote_call_start(p->caller, &req, &call);
	if (rc == SL_EFULL)
		return 2;
	if (rc == SL_ECLOSED) {
		b->disconnected = true;
		snprintf(b->reason, sizeof(b->reason),
		    "the remote client is not connected");
		return 1;
	}
	if (rc != SL_OK) {
		snprintf(b->reason, sizeof(b->reason), "remote call: %s",
		    sl_strerror(rc));
		b->storage = true;
		return 1;
	}
	remote_slot *s = slot_at(q, q->n++);
	s->tag         = req.tag;
	s->pos         = position;
	s->done        = false;
	s->resp        = NULL;
	s->ulen        = ulen;
	s->k           = k;
	if (k != NULL) {
		s->unit = k->unit;
	} else if ((s->unit = malloc(ulen + 1)) != NULL) {
		memcpy(s->unit, unit, ulen);
		s->unit[ulen] = '\0';
	} else {
		/* its answer comes; the batch is aborted before */
		snprintf(b->reason, sizeof(b->reason), "out of memory");
		b->storage = true;
		s->unit    = NULL;
		s->ulen    = 0;
		return 1;
	}
	if (k != NULL) {
		if (remote_call_open(p->caller) > open_before) {
			k->n_open++;
			if (!k->opened) {
				if (q->n_open == q->cap_open) {
					size_t ncap = q->cap_open
					    ? q->cap_open * 2
					    : 64;
					rkey **no   = realloc(
					      q->open, ncap * sizeof(*no));
					if (no == NULL) {
						snprintf(b->reason,
						    sizeof(b->reason),
						    "out of memory");
						b->storage = true;
						return 1;
					}
					q->open     = no;
					q->cap_open = ncap;
				}
				q->open[q->n_open++] = k;
				k->opened            = true;
			}
		} else {
			k->n_sent++;
		}
	}
	/* a protocol 1 client answers each event alone: an open batch
	 * (a takeover by a protocol 2 client meanwhile) goes at once */
	if (q->one_by_one && remote_call_open(p->caller) > 0)
		return flush(b);
	return 0;
}

/* Send with room made: the ring full or the open batch full first make
 * room (flush, collect). @return 0, or 1 when the batch must stop. */
static int
send_room(batch_ctx *b, uint64_t position, const void *data, size_t len,
    const char *unit, size_t ulen, rkey *k)
{
	struct remote_ring *q = b->p->ring;
	for (;;) {
		while (!stopped(b) && q->n == q->cap)
			collect_one(b);
		if (stopped(b))
			return 1;
		/* a projection's key that became busy meanwhile (its run
		 * went out with a flush): the event waits after all */
		if (k != NULL && k->n_sent > 0)
			return -1;
		int rc = send_call(b, position, data, len, unit, ulen, k);
		if (rc != 2)
			return rc;
		if (remote_call_open(b->p->caller) > 0) {
			if (flush(b) != 0)
				return 1;
		} else {
			wait_answer(b); /* the window is full */
		}
	}
}

/* Queue the event at position behind its key's events in flight. */
static int
key_wait(
    batch_ctx *b, rkey *k, uint64_t position, const void *data, size_t len)
{
	rwait *w = malloc(sizeof(*w));
	if (w == NULL || (w->data = malloc(len)) == NULL) {
		free(w);
		snprintf(b->reason, sizeof(b->reason), "out of memory");
		b->storage = true;
		return 1;
	}
	memcpy(w->data, data, len);
	w->len  = len;
	w->pos  = position;
	w->next = NULL;
	if (k->wt != NULL)
		k->wt->next = w;
	else
		k->wh = w;
	k->wt = w;
	b->p->ring->n_wait++;
	return 0;
}

/* Send the waiting events of keys that are free again, oldest key first:
 * protocol 1 the next event of each, protocol 2 all of them (one run). */
static void
send_ready(batch_ctx *b)
{
	struct remote_ring *q = b->p->ring;
	while (q->ready_h != NULL && !stopped(b)) {
		rkey *k    = q->ready_h;
		q->ready_h = k->rnext;
		if (q->ready_h == NULL)
			q->ready_t = NULL;
		k->ready = false;
		while (k->wh != NULL && k->n_sent == 0 && !stopped(b)) {
			rwait *w  = k->wh;
			int    rc = send_room(
			       b, w->pos, w->data, w->len, k->unit, k->ulen, k);
			if (rc < 0)
				break; /* busy again: readied when answered */
			k->wh = w->next;
			if (k->wh == NULL)
				k->wt = NULL;
			q->n_wait--;
			free(w->data);
			free(w);
			if (rc != 0)
				return;
		}
	}
}

/* Start the call for the event at position (its unit in b->uf), or keep
 * a projection's event for later while its key has a call in flight. */
static int
dispatch(batch_ctx *b, uint64_t position, const void *data, size_t len)
{
	processor          *p = b->p;
	struct remote_ring *q = p->ring;
	char                unit[FAILSET_UNIT_MAX + 2];
	size_t              ulen = b->uf.ulen;
	memcpy(unit, b->uf.unit, ulen + 1);

	/* between batches: fit the ring to the client's protocol */
	if (q->n == 0 && q->n_wait == 0 && remote_call_open(p->caller) == 0) {
		size_t want   = ring_want(p);
		q->one_by_one = remote_batch(p->def->remote) <= 1;
		if (want != q->cap) {
			remote_slot *nv = calloc(want, sizeof(*nv));
			if (nv != NULL) {
				free(q->v);
				q->v    = nv;
				q->cap  = want;
				q->head = 0;
			}
		}
	}
	if (p->is_filter)
		return send_room(b, position, data, len, unit, ulen, NULL) > 0;

	/* bound what waits: answers first */
	while (!stopped(b) && q->n_wait >= q->cap) {
		collect_one(b);
		send_ready(b);
	}
	if (stopped(b))
		return 1;
	rkey *k = key_get(q, unit, ulen);
	if (k == NULL) {
		snprintf(b->reason, sizeof(b->reason), "out of memory");
		b->storage = true;
		return 1;
	}
	if (k->wh != NULL || k->n_sent > 0)
		return key_wait(b, k, position, data, len);
	int rc = send_room(b, position, data, len, unit, ulen, k);
	if (rc < 0)
		return key_wait(b, k, position, data, len);
	if (rc == 0)
		send_ready(b);
	return rc;
}

int
proc_remote_scan_cb(void *arg, uint64_t position, const void *data, size_t len)
{
	batch_ctx *b = arg;
	processor *p = b->p;
	ev_view    ev;
	ev_raw     raw;
	bool       peeked;
	char       key[PROC_KEY_MAX];
	if (stopped(b))
		return 1;
	if (b->limit != 0 && position >= b->limit)
		return 1; /* a retry reached the processor's own position */
	if (proc_cut(b, position))
		return 1; /* the answers in flight are still collected */
	ev_head h;
	if (ev_peek(data, len, &h) == SL_OK && !proc_selects(p, &h))
		goto passed;
	msgpack_zone_clear(&p->zone);
	int rc
	    = ev_decode_raw(data, len, position, &p->zone, &ev, &raw, &peeked);
	if (rc != SL_OK) {
		snprintf(b->reason, sizeof(b->reason),
		    "cannot decode the event at position %" PRIu64 ": %s",
		    position, sl_strerror(rc));
		b->storage = true;
		return 1;
	}
	if (strcmp(ev.tenant, p->tenant) == 0) {
		rc = p->is_filter ? proc_filter_unit(b, &ev)
		                  : proc_project_unit(b, &ev, key);
		if (rc == HANDLE_UNIT_FAILED && proc_failed(b, position))
			return 1;
		p->ring->view     = &ev;
		p->ring->raw      = peeked ? &raw : NULL;
		p->ring->view_pos = position;
		if (rc == SL_OK && dispatch(b, position, data, len) != 0) {
			p->ring->view = NULL;
			return 1;
		}
		p->ring->view = NULL;
	}
passed:
	if (!stopped(b))
		b->next = position + 1;
	return stopped(b) ? 1 : 0;
}

void
proc_remote_drain(batch_ctx *b)
{
	struct remote_ring *q = b->p->ring;
	send_ready(b);
	while (!stopped(b)
	    && (q->n > 0 || q->n_wait > 0
	        || remote_call_open(b->p->caller) > 0)) {
		if (q->n == 0 && remote_call_open(b->p->caller) == 0) {
			/* (cannot be) waiting events with no call in flight:
			 * they are done again by the next batch */
			snprintf(b->reason, sizeof(b->reason),
			    "remote events left waiting");
			b->storage = true;
			break;
		}
		collect_one(b);
		send_ready(b);
	}
	if (stopped(b)) {
		/* what is open is dropped, what is in flight is answered and
		 * dropped; the batch is done again */
		remote_call_discard(b->p->caller);
		while (remote_calls_in_flight(b->p->caller) > 0) {
			remote_resp r;
			if (remote_call_next(b->p->caller, COLLECT_WAIT_MS, &r)
			    == SL_OK)
				remote_resp_free(&r);
			else if (proc_stopping(b->p))
				break;
		}
		for (size_t i = 0; i < q->n; i++) {
			remote_slot *s = slot_at(q, i);
			if (s->resp != NULL) {
				remote_resp_free(s->resp);
				free(s->resp);
				s->resp = NULL;
			}
			if (s->k == NULL)
				free(s->unit);
			s->unit = NULL;
		}
		q->base += q->n;
		q->head = 0;
		q->n    = 0;
	}
	keys_clear(q);
}
