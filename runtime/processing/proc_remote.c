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

#define COLLECT_WAIT_MS 200 /* between looks at the stop flag */

typedef struct remote_slot {
	uint64_t    call;
	uint64_t    pos;
	bool        done;
	remote_resp resp;
	char        unit[FAILSET_UNIT_MAX + 2]; /* a projection's: the key */
	size_t      ulen;
} remote_slot;

/* A projection's event whose key has a call in flight: sent when the key
 * is free, so that the window fills with other keys' events meanwhile. */
typedef struct remote_later {
	uint64_t pos;
	void    *data; /* a copy of the stored event */
	size_t   len;
	char     unit[PROC_KEY_MAX];
	size_t   ulen;
} remote_later;

/* The ring of calls in dispatch order, and the events waiting for their
 * key (thread-owned, per processor; both at most the window). */
struct remote_ring {
	remote_slot  *v;
	size_t        cap, head, n;
	remote_later *later;
	size_t        n_later;
};

int
proc_remote_open(processor *p)
{
	remote_proc *r = p->def->remote;
	uint32_t     w = remote_window(r);
	if (w == 0)
		w = 1;
	if (w > 4096)
		w = 4096;
	p->ring = calloc(1, sizeof(*p->ring));
	if (p->ring == NULL)
		return SL_ENOMEM;
	p->ring->v     = calloc(w, sizeof(*p->ring->v));
	p->ring->later = calloc(w, sizeof(*p->ring->later));
	if (p->ring->v == NULL || p->ring->later == NULL) {
		free(p->ring->v);
		free(p->ring->later);
		free(p->ring);
		p->ring = NULL;
		return SL_ENOMEM;
	}
	p->ring->cap = w;
	int rc       = remote_caller_open(r, &p->caller);
	if (rc != SL_OK) {
		free(p->ring->v);
		free(p->ring->later);
		free(p->ring);
		p->ring = NULL;
	}
	return rc;
}

void
proc_remote_close(processor *p)
{
	if (p->caller != NULL) {
		remote_caller_close(p->caller);
		p->caller = NULL;
	}
	if (p->ring != NULL) {
		for (size_t i = 0; i < p->ring->cap; i++)
			remote_resp_free(&p->ring->v[i].resp);
		for (size_t i = 0; i < p->ring->n_later; i++)
			free(p->ring->later[i].data);
		free(p->ring->later);
		free(p->ring->v);
		free(p->ring);
		p->ring = NULL;
	}
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
slot_fail(batch_ctx *b, remote_slot *s, bool retry, uint32_t delay_ms,
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
	return len > 0 && ((c[0] & 0xf0) == 0x80 || c[0] == 0xde || c[0] == 0xdf);
}

/* Apply one answer to the fold. */
static void
apply(batch_ctx *b, remote_slot *s)
{
	processor   *p = b->p;
	remote_resp *r = &s->resp;
	if (stopped(b))
		return;
	if (r->outcome == REMOTE_DISCONNECTED) {
		b->disconnected = true;
		snprintf(b->reason, sizeof(b->reason), "%s",
		    r->reason[0] ? r->reason : "the remote client went away");
		return;
	}
	/* a filter's later event of a unit that failed in this batch */
	if (p->is_filter && p->partitioned && !b->retrying
	    && failset_find(&p->fails, s->unit, s->ulen) != NULL)
		return;
	if (r->outcome == REMOTE_FAILED) {
		slot_fail(b, s, r->retry, r->retry_after_ms, "%s",
		    r->reason[0] ? r->reason : "handler failed (no reason given)");
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
		rc = proc_state_set(b, s->unit, s->ulen, r->state, r->state_len);
		break;
	case REMOTE_DELETE:
		rc = proc_state_set(b, s->unit, s->ulen, NULL, 0);
		break;
	case REMOTE_INCLUDED + 10: {
		sl_context ctx = { 0 };
		memcpy(b->uf.unit, s->unit, s->ulen + 1);
		b->uf.ulen = s->ulen;
		rc = proc_filter_include(b, &ctx,
		    p->partitioned ? r->partition : NULL, s->pos);
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
		slot_fail(b, s, true, 0,
		    "the client answered %s",
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
		if (b->p->is_filter)
			apply(b, s);
		remote_resp_free(&s->resp);
		memset(&s->resp, 0, sizeof(s->resp));
		q->head = (q->head + 1) % q->cap;
		q->n--;
	}
}

/* Wait for one answer and apply it (a projection's at once). */
static void
collect_one(batch_ctx *b)
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
		snprintf(b->reason, sizeof(b->reason),
		    "remote calls lost: %s", sl_strerror(rc));
		b->disconnected = true;
		for (size_t i = 0; i < q->n; i++)
			slot_at(q, i)->done = true;
		pop_done(b);
		return;
	}
	for (size_t i = 0; i < q->n; i++) {
		remote_slot *s = slot_at(q, i);
		if (!s->done && s->call == r.call) {
			s->resp = r;
			s->done = true;
			if (!p->is_filter)
				apply(b, s);
			pop_done(b);
			return;
		}
	}
	log_warn("proc", "tenant %s %s: an answer to no call of ours (%" PRIu64
	    ")", p->tenant, p->proj_id, r.call);
	remote_resp_free(&r);
}

/* Whether a projection's key has a call in flight. */
static bool
key_in_flight(const batch_ctx *b, const char *unit, size_t ulen)
{
	struct remote_ring *q = b->p->ring;
	for (size_t i = 0; i < q->n; i++) {
		remote_slot *s = slot_at(q, i);
		if (!s->done && s->ulen == ulen && memcmp(s->unit, unit, ulen) == 0)
			return true;
	}
	return false;
}

/* Whether a projection's key has an event waiting in the later list. */
static bool
key_waiting(const batch_ctx *b, const char *unit, size_t ulen)
{
	struct remote_ring *q = b->p->ring;
	for (size_t i = 0; i < q->n_later; i++)
		if (q->later[i].ulen == ulen
		    && memcmp(q->later[i].unit, unit, ulen) == 0)
			return true;
	return false;
}

/* Send the call for the event at position of unit (room in the ring). */
static int
send_call(batch_ctx *b, uint64_t position, const void *data, size_t len,
    const char *unit, size_t ulen)
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
	};
	sl_context ctx = { 0 };
	proc_retry_state(b, position, &ctx);
	req.attempt     = ctx.attempt;
	req.last_reason = ctx.last_reason;
	if (!p->is_filter) {
		const void *data;
		size_t      dlen;
		int         grc = proc_state_get(b, unit, ulen, &data, &dlen);
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
	uint64_t call;
	int      rc = remote_call_start(p->caller, &req, &call);
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
	memset(s, 0, sizeof(*s));
	s->call = call;
	s->pos  = position;
	memcpy(s->unit, unit, ulen);
	s->unit[ulen] = '\0';
	s->ulen       = ulen;
	return 0;
}

/* Send the waiting events whose key is free, oldest first, while the ring
 * has room (never waiting: called where answers are collected). */
static void
send_later(batch_ctx *b)
{
	struct remote_ring *q = b->p->ring;
	size_t              i = 0;
	while (i < q->n_later && !stopped(b) && q->n < q->cap) {
		remote_later *l   = &q->later[i];
		bool          old = false; /* an older waiting event of its key */
		for (size_t j = 0; j < i && !old; j++)
			old = q->later[j].ulen == l->ulen
			    && memcmp(q->later[j].unit, l->unit, l->ulen) == 0;
		if (old || key_in_flight(b, l->unit, l->ulen)) {
			i++;
			continue;
		}
		send_call(b, l->pos, l->data, l->len, l->unit, l->ulen);
		free(l->data);
		memmove(l, l + 1, (q->n_later - i - 1) * sizeof(*l));
		q->n_later--;
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

	while (!stopped(b) && !p->is_filter
	    && (key_in_flight(b, unit, ulen) || key_waiting(b, unit, ulen))) {
		if (q->n_later < q->cap && ulen < PROC_KEY_MAX) {
			remote_later *l = &q->later[q->n_later];
			if ((l->data = malloc(len)) == NULL) {
				snprintf(b->reason, sizeof(b->reason),
				    "out of memory");
				b->storage = true;
				return 1;
			}
			memcpy(l->data, data, len);
			l->len = len;
			l->pos = position;
			memcpy(l->unit, unit, ulen);
			l->ulen = ulen;
			q->n_later++;
			return 0;
		}
		collect_one(b);
		send_later(b);
	}
	while (!stopped(b) && q->n == q->cap) {
		collect_one(b);
		send_later(b);
	}
	if (stopped(b))
		return 1;
	return send_call(b, position, data, len, unit, ulen);
}

int
proc_remote_scan_cb(void *arg, uint64_t position, const void *data, size_t len)
{
	batch_ctx *b = arg;
	processor *p = b->p;
	ev_view    ev;
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
	int rc = ev_decode(data, len, position, &p->zone, &ev);
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
		if (rc == SL_OK && dispatch(b, position, data, len) != 0)
			return 1;
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
	send_later(b);
	while (q->n > 0 || q->n_later > 0) {
		if (stopped(b) || q->n == 0) {
			/* stopped; or (cannot be) waiting events with no call
			 * in flight: they are done again by the next batch */
			for (size_t i = 0; i < q->n_later; i++)
				free(q->later[i].data);
			q->n_later = 0;
			if (!stopped(b) && q->n == 0) {
				snprintf(b->reason, sizeof(b->reason),
				    "remote events left waiting");
				b->storage = true;
			}
			/* what is still in flight is answered and dropped */
			while (remote_calls_in_flight(b->p->caller) > 0) {
				remote_resp r;
				if (remote_call_next(b->p->caller,
				        COLLECT_WAIT_MS, &r) == SL_OK)
					remote_resp_free(&r);
				else if (proc_stopping(b->p))
					break;
			}
			for (size_t i = 0; i < q->n; i++) {
				remote_resp_free(&slot_at(q, i)->resp);
				memset(&slot_at(q, i)->resp, 0,
				    sizeof(slot_at(q, i)->resp));
			}
			q->n = 0;
			return;
		}
		collect_one(b);
		send_later(b);
	}
}
