/*
 * The handler thread of a continuous or transient emitting projection
 * (emitter.c starts it): it takes events from the reader's queue, handles
 * them (emitter_run.c), and seals and submits batches to the store's
 * writer; it also takes operator commands, definition changes, faults and
 * retries, and resets.
 *
 * At most one batch is at the store at a time: the next sealed one is
 * submitted when the previous one is done, so that a refused batch (e.g.
 * SL_EOWNED) is never followed by a later one that would move the
 * checkpoint past the events it held. max_allowed_writes_in_flight counts
 * the batches sealed and not yet durable.
 */
#include "emitter_internal.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "guard.h"
#include "log.h"

/* Clean states kept in memory (continuous runs) beyond the pinned ones. */
size_t eproj_cache_lru_max = 4096;
/* Retry delays of a faulted run: 50 ms doubling to 10 s. */
#define RETRY_FIRST_MS 50
#define RETRY_MAX_MS   10000

/* ---- batches of the handler (call with mu held unless said) ---- */

static void set_reason(eproj *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void
set_reason(eproj *e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->status_reason, sizeof(e->status_reason), fmt, ap);
	va_end(ap);
}

static void
batch_done(store_emit *em, void *arg)
{
	batch *b = arg;
	eproj *e = b->e;
	pthread_mutex_lock(&e->mu);
	if (em->rc == SL_OK) {
		e->position = b->end_pos;
		e->done_seq = b->seq;
		e->emitted += b->n_appends;
		e->ckpt_stored = true;
	} else if (e->batch_rc == SL_OK) {
		e->batch_rc = em->rc;
		snprintf(e->batch_msg, sizeof(e->batch_msg), "%s",
		    em->message[0] != '\0' ? em->message
		                           : sl_strerror(em->rc));
	}
	e->submitted = NULL;
	e->in_flight--;
	pthread_cond_broadcast(&e->cv);
	pthread_cond_broadcast(&e->cmd_cv); /* a stop waits for its batch */
	pthread_mutex_unlock(&e->mu);
	eproj_batch_free(b);
}

/* Submit the next sealed batch if none is at the store. */
static void
submit_next(eproj *e)
{
	while (e->submitted == NULL && e->sealed_head != NULL
	    && e->batch_rc == SL_OK) {
		batch *b       = e->sealed_head;
		e->sealed_head = b->next;
		if (e->sealed_head == NULL)
			e->sealed_tail = NULL;
		b->next      = NULL;
		e->submitted = b;
		pthread_mutex_unlock(&e->mu);
		int rc = store_submit_emit(e->s, &b->em);
		pthread_mutex_lock(&e->mu);
		if (rc != SL_OK) {
			e->submitted = NULL;
			e->in_flight--;
			e->batch_rc = rc;
			snprintf(e->batch_msg, sizeof(e->batch_msg),
			    "cannot submit a batch: %s", sl_strerror(rc));
			eproj_batch_free(b);
		}
	}
}

/*
 * Seal r.b as a batch ending at pos (the next position to handle), with
 * the dirty states, and queue it for the store. stopped: the flag kept in
 * its checkpoint.
 */
static int
seal(eproj *e, uint64_t pos, bool stopped)
{
	run   *r = &e->r;
	batch *b = r->b;
	if (b == NULL && (b = eproj_batch_new()) == NULL)
		return SL_ENOMEM;
	r->b   = NULL;
	b->e   = e;
	b->seq = ++e->next_seq;
	int rc = SL_OK;
	for (centry *x = r->c.dirty, *next; x != NULL; x = next) {
		next       = x->dnext;
		x->dnext   = NULL;
		x->dirty   = false;
		x->pin_seq = b->seq;
		if (rc == SL_OK)
			rc = eproj_batch_state(b, x);
	}
	r->c.dirty = NULL;
	if (rc != SL_OK) {
		eproj_batch_free(b);
		return rc;
	}
	e->fail_dirty = false; /* this batch holds them */
	ckpt   c      = { .position = pos,
		       .def_hash    = r->def != NULL ? r->def->def_hash : 0,
		       .stopped     = stopped,
		       .failing     = &e->failing };
	size_t clen   = 0;
	if (eproj_ckpt_pack(&c, &b->ckpt, &clen) != SL_OK) {
		eproj_batch_free(b);
		return SL_ENOMEM;
	}
	b->end_pos           = pos;
	b->em.tenant         = e->tenant;
	b->em.owner          = e->id;
	b->em.appends        = b->appends;
	b->em.n_appends      = b->n_appends;
	b->em.states         = b->states;
	b->em.n_states       = b->n_states;
	b->em.checkpoint     = b->ckpt;
	b->em.checkpoint_len = clen;
	b->em.done           = batch_done;
	b->em.arg            = b;
	if (e->sealed_tail != NULL)
		e->sealed_tail->next = b;
	else
		e->sealed_head = b;
	e->sealed_tail = b;
	e->in_flight++;
	submit_next(e);
	return SL_OK;
}

/* Wait (mu held) until every sealed batch is done. */
static void
drain(eproj *e)
{
	for (;;) {
		submit_next(e);
		if (e->batch_rc != SL_OK) {
			/* a failed batch: the ones after it are dropped */
			while (e->sealed_head != NULL) {
				batch *b       = e->sealed_head;
				e->sealed_head = b->next;
				e->in_flight--;
				eproj_batch_free(b);
			}
			e->sealed_tail = NULL;
		}
		if (e->in_flight == 0)
			return;
		pthread_cond_wait(&e->cv, &e->mu);
	}
}

/* Drop the queue: the reader reads again from pos (mu held). */
static void
drop_queue(eproj *e, uint64_t pos)
{
	eproj_qrec_free_list(e->qhead);
	e->qhead = e->qtail = NULL;
	e->qn = e->qbytes = 0;
	e->read_pos       = pos;
	e->read_gen++; /* a scan under way is thrown away */
	e->skipped_bytes = 0;
	pthread_cond_broadcast(&e->rcv);
}

/* Drop the queue, the cache and the batch being built; the reader starts
 * again at pos. */
static void
restart_at(eproj *e, uint64_t pos)
{
	drop_queue(e, pos);
	e->clean_pos = 0;
	pthread_mutex_lock(&e->cmu);
	scache_clear(&e->r.c);
	pthread_mutex_unlock(&e->cmu);
	eproj_batch_free(e->r.b);
	e->r.b    = NULL;
	e->cached = 0;
	/* the reader may be waiting for the log to grow */
	store_wake_all(e->s);
}

/* Soft-delete what the run wrote and start again from 0 (mu held). */
static int
do_reset(eproj *e)
{
	drain(e);
	e->batch_rc = SL_OK;
	restart_at(e, 0);
	if (e->mode == CFG_MODE_TRANSIENT) {
		e->position = 0;
		return SL_OK;
	}
	ckpt       c    = { .position = 0,
		         .def_hash    = e->r.def != NULL ? e->r.def->def_hash : 0,
		         .stopped     = e->paused };
	char      *buf  = NULL;
	size_t     blen = 0;
	store_emit em = { .tenant = e->tenant, .owner = e->id, .reset = true };
	int        rc = eproj_ckpt_pack(&c, &buf, &blen);
	em.checkpoint = buf;
	em.checkpoint_len = blen;
	if (rc == SL_OK) {
		pthread_mutex_unlock(&e->mu);
		rc = store_emit_wait(e->s, &em);
		pthread_mutex_lock(&e->mu);
	}
	free(buf);
	if (rc != SL_OK) {
		e->batch_rc = rc;
		snprintf(e->batch_msg, sizeof(e->batch_msg), "reset: %s",
		    em.message[0] != '\0' ? em.message : sl_strerror(rc));
		return rc;
	}
	e->position    = 0;
	e->ckpt_stored = true;
	e->stop_seq    = 0;        /* the reset's checkpoint holds the stop */
	failset_free(&e->failing); /* the reset's checkpoint holds none */
	pthread_cond_broadcast(&e->cmd_cv);
	log_info("emitter",
	    "%s/%s: reset: streams soft-deleted, states "
	    "dropped, running again from 0",
	    e->tenant, e->id);
	return SL_OK;
}

static uint32_t
retry_delay_ms(uint32_t attempts)
{
	uint64_t d = RETRY_FIRST_MS;
	for (uint32_t i = 1; i < attempts && d < RETRY_MAX_MS; i++)
		d *= 2;
	return d > RETRY_MAX_MS ? RETRY_MAX_MS : (uint32_t) d;
}

/* ---- the handler thread ---- */

typedef struct hstate {
	uint64_t hpos; /* next position to handle (in memory) */
	bool     need_reset;
	int64_t  last_commit;
	/* a faulted event */
	bool    fault_retry;
	int64_t next_try;
	char    last_reason[512];
	/* a failed batch */
	uint32_t batch_failures;
	int64_t  restart_at;
	uint64_t trimmed_seq; /* done_seq when the cache was last trimmed */
} hstate;

/* Wall clock ns (failing units keep their next try in it: it is stored). */
static int64_t
wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* When (mono ns) a failing key is due next; 0: none can be retried now
 * (mu held). */
static int64_t
fail_wake(eproj *e)
{
	if (e->paused || e->def == NULL || e->def->p == NULL)
		return 0;
	bool             due;
	int64_t          now = wall_ns();
	const fail_unit *u   = failset_next(&e->failing, now, &due);
	if (u == NULL)
		return 0;
	int64_t m = mono_ns();
	return due ? m : m + (u->next_try_ns - now);
}

/*
 * Wait (mu held) for something to happen, until at (mono ns; 0: no
 * limit). Not when something is pending already: the handler lets go of
 * mu while it submits a batch, and a command, a definition, a stop or a
 * batch done signalled meanwhile is not signalled again.
 */
static void
handler_wait(eproj *e, const hstate *h, int64_t at)
{
	if (e->stopping || e->cmd_taken != e->cmd_seq || e->def_pending
	    || e->done_seq != h->trimmed_seq)
		return;
	int64_t fw = fail_wake(e); /* a failing key's retry */
	if (fw != 0 && (at == 0 || fw < at))
		at = fw;
	if (at == 0) {
		pthread_cond_wait(&e->cv, &e->mu);
		return;
	}
	struct timespec ts;
	abs_deadline(&ts, at);
	pthread_cond_timedwait(&e->cv, &e->mu, &ts);
}

/*
 * Keep the clean states no batch in flight pins to eproj_cache_lru_max
 * (mu held; the handler thread only: the cache is its own). Called when a
 * batch is sealed and when one became durable (done_seq moved), so that
 * once no batch is in flight the cache holds at most eproj_cache_lru_max
 * states beyond the dirty ones.
 */
static void
trim_cache(eproj *e, hstate *h)
{
	h->trimmed_seq = e->done_seq;
	if (e->mode == CFG_MODE_TRANSIENT)
		return; /* its states live only here */
	pthread_mutex_lock(&e->cmu);
	scache_evict(&e->r.c, e->done_seq, eproj_cache_lru_max);
	pthread_mutex_unlock(&e->cmu);
	e->cached = e->r.c.n;
}

/*
 * Nothing handled is left to commit (the events since the last batch
 * were all skipped): status may show hpos as the position once the
 * batches sealed so far are durable (mu held).
 */
static void
note_clean(eproj *e, const hstate *h)
{
	const batch *b = e->r.b;
	if ((b == NULL || (b->handled == 0 && b->n_appends == 0))
	    && e->r.c.dirty == NULL) {
		e->clean_pos = h->hpos;
		e->clean_seq = e->next_seq;
	}
}

/* Whether the batch being built should be committed now. */
static bool
want_commit(eproj *e, const hstate *h, bool caught_up)
{
	const batch *b = e->r.b;
	uint64_t     n = b != NULL ? b->handled : 0;
	uint64_t u = (b != NULL ? b->unhandled_bytes : 0) + e->skipped_bytes;
	size_t   a = b != NULL ? b->n_appends : 0;
	if (e->mode == CFG_MODE_TRANSIENT)
		return false;
	if (e->fail_dirty)
		return true; /* stored soon: a restart then knows */
	if (h->hpos <= e->position && e->in_flight == 0 && a == 0)
		return false;
	return n >= e->set.checkpoint_handled_threshold
	    || u >= e->set.checkpoint_unhandled_bytes_threshold
	    || (e->set.max_write_batch_length > 0
	        && a >= e->set.max_write_batch_length)
	    || (caught_up && (n > 0 || a > 0));
}

/* Commit the batch being built if the settings allow it now; else report
 * when to look again (0: when something happens). */
static void
maybe_commit(eproj *e, hstate *h, bool caught_up, int64_t *wake)
{
	*wake = 0;
	if (!want_commit(e, h, caught_up)) {
		e->waiting_writes = false;
		return;
	}
	int64_t after
	    = h->last_commit + (int64_t) e->set.checkpoint_after_ms * 1000000;
	int64_t now = mono_ns();
	if (now < after) {
		*wake = after;
		return;
	}
	if (e->set.max_allowed_writes_in_flight > 0
	    && e->in_flight >= e->set.max_allowed_writes_in_flight) {
		e->waiting_writes = true;
		return;
	}
	e->waiting_writes = false;
	e->skipped_bytes  = 0;
	int rc            = seal(e, h->hpos, e->paused);
	if (rc != SL_OK) {
		e->batch_rc = rc;
		snprintf(e->batch_msg, sizeof(e->batch_msg),
		    "cannot build a batch: %s", sl_strerror(rc));
	}
	h->last_commit = now;
	trim_cache(e, h);
}

/* Take an operator command (mu held). */
static void
take_command(eproj *e, hstate *h)
{
	if (e->cmd_taken == e->cmd_seq)
		return;
	proc_cmd cmd = e->cmd;
	/* taken once done: seal lets go of mu, and the caller must not see
	 * a stop answered before the queue is dropped */
	uint64_t seq = e->cmd_seq;
	switch (cmd) {
	case PROC_CMD_RESET:
		h->need_reset = true;
		guard_clear_emitter(e->tenant, e->id); /* a crash's mark */
		break;
	case PROC_CMD_RETRY:
		guard_clear_emitter(e->tenant, e->id);
		/* every failing key is due now */
		for (size_t i = 0; i < e->failing.n; i++) {
			e->failing.v[i].retry       = true;
			e->failing.v[i].next_try_ns = 0;
		}
		if (e->failing.n > 0)
			e->fail_dirty = true;
		if (e->faulted) {
			h->fault_retry = true;
			h->next_try    = 0;
		}
		h->restart_at = 0;
		break;
	case PROC_CMD_PAUSE:
	case PROC_CMD_RESUME: {
		bool stop = cmd == PROC_CMD_PAUSE;
		/* the same state is persisted already, unless no checkpoint
		 * record exists yet: the run's state then comes from the
		 * config (start_standard_projections, or stopped by the
		 * caller), and the operator's word must outlive a change
		 * of it */
		if (e->paused == stop && e->ckpt_stored)
			break;
		e->paused = stop;
		if (e->mode != CFG_MODE_TRANSIENT && e->r.def != NULL) {
			/* a stop is "stopping" until the batch sealed next
			 * is durable (sealed after a failed one's restart,
			 * see handler_main, when it cannot be now) */
			e->stop_seq = stop ? e->next_seq + 1 : 0;
			if (e->batch_rc == SL_OK) {
				/* persisted in the checkpoint, with what was
				 * handled */
				e->skipped_bytes = 0;
				int rc           = seal(e, h->hpos, stop);
				if (rc != SL_OK) {
					e->batch_rc = rc;
					snprintf(e->batch_msg,
					    sizeof(e->batch_msg),
					    "cannot build a batch: %s",
					    sl_strerror(rc));
				}
				h->last_commit = mono_ns();
			}
		}
		if (stop) /* it reads nothing while stopped; resumes here */
			drop_queue(e, h->hpos);
		else
			pthread_cond_broadcast(&e->rcv);
		break;
	}
	}
	e->cmd_taken = seq;
	pthread_cond_broadcast(&e->cmd_cv);
}

/* Switch to a definition handed over by eproj_set_def (mu held). */
static void
take_def(eproj *e, hstate *h)
{
	if (!e->def_pending)
		return;
	const proj_def *nd = e->next_def, *od = e->def;
	e->def_pending = false;
	e->next_def    = NULL;
	if (nd != NULL && od != NULL && nd->def_hash != od->def_hash)
		h->need_reset = true;
	if (nd == NULL && e->r.b != NULL && e->batch_rc == SL_OK) {
		e->skipped_bytes = 0;
		(void) seal(e, h->hpos, e->paused); /* keep what was done */
	}
	/* the same definition (new code) switches between two events */
	drain(e); /* a batch in flight was built by the old definition */
	if (eproj_run_set_def(&e->r, nd) != SL_OK)
		log_error("emitter", "%s/%s: out of memory", e->tenant, e->id);
	e->def = nd;
	proj_def_release(od);
}

static void
set_fault(eproj *e, hstate *h, const hfail *f, uint64_t pos)
{
	e->faulted = true;
	e->attempts++;
	h->fault_retry = !f->no_retry;
	uint32_t delay = f->retry_after_ms > 0 ? f->retry_after_ms
	                                       : retry_delay_ms(e->attempts);
	h->next_try    = mono_ns() + (int64_t) delay * 1000000;
	snprintf(h->last_reason, sizeof(h->last_reason), "%s", f->why);
	set_reason(e, "event at position %" PRIu64 ": %.200s", pos, f->why);
	log_warn("emitter", "%s/%s '%s': %s (attempt %u%s)", e->tenant, e->id,
	    e->def != NULL ? e->def->name : "?", e->status_reason, e->attempts,
	    h->fault_retry ? "" : ", not retried until retry or reset");
}

/*
 * Mark the key of f failing at the event at pos (mu held): its later
 * events wait, the others go on. A key failing again at the same event
 * counts one more attempt; at a later one (a retry got that far) starts
 * counting again.
 */
static void
set_failing(eproj *e, const hfail *f, uint64_t pos)
{
	fail_unit *old = failset_find(&e->failing, f->key, f->key_len);
	fail_unit  u;
	memset(&u, 0, sizeof(u));
	u.unit     = (char *) f->key;
	u.ulen     = f->key_len;
	u.pos      = pos;
	u.attempts = old != NULL && old->pos == pos ? old->attempts + 1 : 1;
	u.retry    = !f->no_retry;
	uint32_t delay = f->retry_after_ms > 0 ? f->retry_after_ms
	                                       : retry_delay_ms(u.attempts);
	u.next_try_ns  = u.retry ? wall_ns() + (int64_t) delay * 1000000 : 0;
	snprintf(u.reason, sizeof(u.reason), "%.*s",
	    (int) sizeof(u.reason) - 1, f->why);
	int rc = failset_put(&e->failing, NULL, NULL, &u);
	if (rc != SL_OK) {
		/* cannot keep it apart: the run restarts from its checkpoint
		 * and meets the event again */
		e->batch_rc = rc;
		snprintf(e->batch_msg, sizeof(e->batch_msg),
		    "cannot mark key '%.100s' failing: %s", f->key,
		    sl_strerror(rc));
		return;
	}
	e->fail_dirty = true;
	log_warn("emitter",
	    "%s/%s '%s': key '%.100s' failing at event %" PRIu64
	    ": %.200s (attempt %u%s); its later events wait, the other keys "
	    "go on",
	    e->tenant, e->id, e->def != NULL ? e->def->name : "?", f->key, pos,
	    f->why, u.attempts,
	    u.retry ? "" : ", not retried until retry or reset");
}

/*
 * Retry the failing key due first if one is due (mu held; let go of
 * while the plugin runs). Returns whether it did.
 */
static bool
retry_due(eproj *e, hstate *h)
{
	bool       due = false;
	fail_unit *u   = failset_next(&e->failing, wall_ns(), &due);
	if (u == NULL || !due)
		return false;
	if (u->pos >= h->hpos) {
		/* nothing of it handled yet (cannot be: a unit is found as
		 * its event is passed): later */
		u->next_try_ns = wall_ns() + (int64_t) RETRY_MAX_MS * 1000000;
		return false;
	}
	fail_unit c = *u; /* only this thread changes the set */
	if ((c.unit = strdup(u->unit)) == NULL) {
		e->batch_rc = SL_ENOMEM;
		snprintf(e->batch_msg, sizeof(e->batch_msg), "out of memory");
		return true;
	}
	uint64_t upto = h->hpos;
	pthread_mutex_unlock(&e->mu);
	if (e->r.b == NULL && e->mode != CFG_MODE_TRANSIENT)
		e->r.b = eproj_batch_new();
	hfail    f;
	uint64_t fpos = 0, handled = 0;
	int      rc;
	memset(&f, 0, sizeof(f));
	if (e->r.b == NULL && e->mode != CFG_MODE_TRANSIENT) {
		snprintf(f.why, sizeof(f.why), "out of memory");
		rc = SL_ENOMEM;
	} else {
		rc = eproj_retry_unit(&e->r, &c, upto, &f, &fpos, &handled);
	}
	pthread_mutex_lock(&e->mu);
	if (e->r.b != NULL)
		e->r.b->handled += handled;
	if (rc == SL_OK) {
		failset_del(&e->failing, NULL, NULL, c.unit, c.ulen);
		e->fail_dirty = true;
		log_info("emitter",
		    "%s/%s: key '%.100s' retried: caught up (events from "
		    "%" PRIu64 " to %" PRIu64 ")",
		    e->tenant, e->id, c.unit, c.pos, upto);
	} else if (rc == SL_EPLUGIN) {
		if (!f.key_known) { /* cannot be: it failed as this key */
			f.key_len = c.ulen;
			memcpy(f.key, c.unit, c.ulen + 1);
		}
		set_failing(e, &f, fpos);
	} else {
		e->batch_rc = rc == SL_ENOMEM ? SL_ENOMEM : SL_ESTORAGE;
		snprintf(e->batch_msg, sizeof(e->batch_msg), "%.190s", f.why);
	}
	free(c.unit);
	e->cached = e->r.c.n;
	return true;
}

static void
clear_fault(eproj *e, hstate *h)
{
	if (!e->faulted)
		return;
	e->faulted        = false;
	e->attempts       = 0;
	h->last_reason[0] = '\0';
	if (!e->waiting_writes)
		e->status_reason[0] = '\0';
}

void *
eproj_handler_main(void *arg)
{
	eproj *e = arg;
	hstate h;
	memset(&h, 0, sizeof(h));
	pthread_mutex_lock(&e->mu);
	h.hpos        = e->position;
	h.last_commit = 0;
	h.need_reset  = e->batch_rc == -1; /* set by eproj_start */
	if (h.need_reset)
		e->batch_rc = SL_OK;

	while (!e->stopping) {
		if (e->done_seq != h.trimmed_seq)
			trim_cache(e, &h); /* a batch became durable */
		take_command(e, &h);
		take_def(e, &h);
		submit_next(e);
		/* they may have let go of mu (submitting a batch): a stop
		 * asked for meanwhile must not find the handler waiting */
		if (e->stopping)
			continue;

		/* a failed batch: fault, then start again from the last
		 * committed checkpoint */
		if (e->batch_rc != SL_OK) {
			if (h.restart_at == 0) {
				h.batch_failures++;
				e->faulted  = true;
				e->attempts = h.batch_failures;
				set_reason(e,
				    "writing a batch failed: %s: %.200s",
				    sl_errname(e->batch_rc), e->batch_msg);
				log_warn("emitter", "%s/%s: %s", e->tenant,
				    e->id, e->status_reason);
				h.restart_at = mono_ns()
				    + (int64_t) retry_delay_ms(
				          h.batch_failures)
				        * 1000000;
			}
			if (mono_ns() < h.restart_at && !h.need_reset) {
				handler_wait(e, &h, h.restart_at);
				continue;
			}
			drain(e);
			e->batch_rc  = SL_OK;
			h.restart_at = 0;
			restart_at(e, e->position);
			/* the failing keys as that checkpoint holds them */
			if (eproj_failing_reload(e) != SL_OK)
				log_error("emitter",
				    "%s/%s: cannot read the failing keys of "
				    "the checkpoint",
				    e->tenant, e->id);
			e->fail_dirty       = false;
			h.hpos              = e->position;
			e->faulted          = false;
			e->attempts         = 0;
			e->status_reason[0] = '\0';
			continue;
		}
		if (h.need_reset && e->def != NULL) {
			h.need_reset = false;
			clear_fault(e, &h);
			if (do_reset(e) != SL_OK)
				continue;
			h.hpos           = 0;
			h.batch_failures = 0;
			continue;
		}
		if (e->paused && e->stop_seq > e->done_seq && e->in_flight == 0
		    && e->mode != CFG_MODE_TRANSIENT && e->r.def != NULL) {
			/* the stop's checkpoint did not become durable (its
			 * batch failed and the run restarted): again */
			e->stop_seq = e->next_seq + 1;
			int rc      = seal(e, h.hpos, true);
			if (rc != SL_OK) {
				e->batch_rc = rc;
				snprintf(e->batch_msg, sizeof(e->batch_msg),
				    "cannot build a batch: %s",
				    sl_strerror(rc));
			}
			h.last_commit = mono_ns();
			continue;
		}
		if (e->def == NULL || e->def->p == NULL || e->paused) {
			handler_wait(e, &h, 0);
			continue;
		}
		/* a failing key due for its retry: from its event up to here
		 */
		if (retry_due(e, &h)) {
			int64_t wake;
			maybe_commit(e, &h, e->qhead == NULL, &wake);
			continue;
		}
		if (e->faulted && (!h.fault_retry || mono_ns() < h.next_try)) {
			handler_wait(e, &h, h.fault_retry ? h.next_try : 0);
			continue;
		}
		if (e->qhead == NULL) {
			/* caught up with what was read */
			if (e->read_pos > h.hpos)
				h.hpos = e->read_pos;
			int64_t wake;
			maybe_commit(e, &h, true, &wake);
			note_clean(e, &h);
			if (e->qhead == NULL) /* else: read meanwhile */
				handler_wait(e, &h, wake);
			continue;
		}
		if (e->waiting_writes
		    && e->set.max_allowed_writes_in_flight > 0
		    && e->in_flight >= e->set.max_allowed_writes_in_flight) {
			set_reason(e,
			    "max_allowed_writes_in_flight (%u) reached",
			    e->set.max_allowed_writes_in_flight);
			handler_wait(e, &h, 0);
			continue;
		}

		qrec    *q   = e->qhead;
		uint64_t gen = e->read_gen;
		uint32_t att = e->faulted ? e->attempts : 0;
		pthread_mutex_unlock(&e->mu);

		/* NULL: fails below as ENOMEM */
		if (e->r.b == NULL && e->mode != CFG_MODE_TRANSIENT)
			e->r.b = eproj_batch_new();
		hfail f;
		memset(&f, 0, sizeof(f));
		hres res;
		if (e->r.b == NULL && e->mode != CFG_MODE_TRANSIENT) {
			snprintf(f.why, sizeof(f.why), "out of memory");
			res = H_ERROR;
		} else {
			res = eproj_run_record(&e->r, q->position, q->data,
			    q->len, att, att > 0 ? h.last_reason : NULL, &f);
		}

		pthread_mutex_lock(&e->mu);
		if (gen != e->read_gen)
			continue; /* restarted meanwhile (cannot happen: the
			             handler restarts) */
		if (res == H_FAILED && f.key_known) {
			/* its key waits from here on; the event is passed
			 * like a skipped one */
			set_failing(e, &f, q->position);
			res = H_SKIPPED;
		} else if (res == H_FAILED) {
			/* what lies before it is other tenants' (the reader
			 * passed it): handled */
			if (q->position > h.hpos)
				h.hpos = q->position;
			set_fault(e, &h, &f, q->position);
			/* what was handled before it is committed */
			if (e->mode != CFG_MODE_TRANSIENT && e->r.b != NULL
			    && (e->r.b->handled > 0
			        || e->r.b->n_appends > 0)) {
				e->skipped_bytes = 0;
				(void) seal(e, h.hpos, e->paused);
				h.last_commit = mono_ns();
			}
			/* events it skipped just before count (status) */
			note_clean(e, &h);
			continue;
		}
		if (res == H_ERROR) {
			e->batch_rc = SL_ESTORAGE;
			snprintf(e->batch_msg, sizeof(e->batch_msg), "%.190s",
			    f.why);
			continue;
		}
		clear_fault(e, &h);
		e->qhead = q->next;
		if (e->qhead == NULL)
			e->qtail = NULL;
		e->qn--;
		e->qbytes -= q->len;
		h.hpos = q->position + 1;
		if (e->r.b != NULL) {
			if (res == H_HANDLED)
				e->r.b->handled++;
			else
				e->r.b->unhandled_bytes += q->len;
		}
		eproj_rate_add(e, 1);
		if (e->mode == CFG_MODE_TRANSIENT)
			e->position = h.hpos;
		e->cached = e->r.c.n;
		free(q);
		pthread_cond_signal(&e->rcv);
		int64_t wake;
		maybe_commit(e, &h, e->qhead == NULL, &wake);
		note_clean(e, &h);
	}

	/* stopping: commit what was handled, wait for the store */
	if (e->mode != CFG_MODE_TRANSIENT && e->batch_rc == SL_OK
	    && e->def != NULL
	    && (h.hpos > e->position || e->fail_dirty
	        || (e->r.b != NULL && e->r.b->n_appends > 0)))
		(void) seal(e, h.hpos, e->paused);
	drain(e);
	pthread_mutex_unlock(&e->mu);
	return NULL;
}
