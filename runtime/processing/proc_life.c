/*
 * A processor's life and what the rest of the runtime sees of it:
 * creating and starting one (read-model, emitting, transient), handing it
 * definitions, its operator commands, stopping it, and its status and
 * failing units. What its thread does is in projection.c.
 */
#include "projection.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sluice/errors.h>

#include "log.h"
#include "proc_internal.h"
#include "sysfeed.h"
#include "sysproj.h"

const char *
proc_state_name(proc_state s)
{
	switch (s) {
	case PROC_STARTING:
		return "starting";
	case PROC_CATCHING_UP:
		return "catching_up";
	case PROC_LIVE:
		return "live";
	case PROC_FAILING:
		return "failing";
	case PROC_STOPPED:
		return "stopped";
	case PROC_REBUILDING:
		return "rebuilding";
	case PROC_PAUSED:
		return "paused";
	case PROC_FAILED:
		return "failed";
	case PROC_DISCONNECTED:
		return "disconnected";
	case PROC_STANDBY:
		return "standby";
	}
	return "unknown";
}

/* ---- status ---- */

void
proc_set_state(processor *p, proc_state s)
{
	pthread_mutex_lock(&p->mu);
	p->st.state = s;
	pthread_mutex_unlock(&p->mu);
}

bool
proc_stopping(processor *p)
{
	pthread_mutex_lock(&p->mu);
	bool s = p->stop;
	pthread_mutex_unlock(&p->mu);
	return s;
}

/*
 * Status shows the failing units as the last committed batch (or the
 * records) left them: the set itself changes while a batch runs, before
 * its transaction commits. Called with mu held.
 */
void
proc_show_failing(processor *p)
{
	if (p->shown.version != p->fails.version || p->shown.n != p->fails.n)
		if (failset_copy(&p->shown, &p->fails) != SL_OK)
			p->shown.version = 0; /* try again next time */
	p->st.n_failing = p->shown.n;
}

processor *
proc_new(store *s, rmstore *rm, const char *tenant, const proj_def *def,
    uint32_t batch, proc_emit *em)
{
	processor *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	p->s        = s;
	p->rm       = rm;
	p->em       = em;
	p->def      = def;
	p->batch    = batch > 0 ? batch : 1000;
	p->tenant   = strdup(tenant);
	p->fail_pos = UINT64_MAX;
	snprintf(p->proj_id, sizeof(p->proj_id), "%s", def->id);
	if (p->tenant == NULL || !msgpack_zone_init(&p->zone, 4096)) {
		free(p->tenant);
		free(p);
		return NULL;
	}
	msgpack_sbuffer_init(&p->buf);
	msgpack_sbuffer_init(&p->appends);
	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cv, &ca);
	pthread_cond_init(&p->done_cv, &ca);
	pthread_condattr_destroy(&ca);
	if (em != NULL) {
		pthread_mutex_init(&em->cmu, NULL);
		proc_emit_bind(p);
		/* a system projection reads through its tenant's reader (none:
		 * it reads the log itself) */
		if (em->mode == CFG_MODE_CONTINUOUS && sysproj_is_system(def))
			em->feed = sysfeed_get(s, tenant);
	}
	if (proc_set_names(p) != SL_OK) {
		proc_free(p);
		return NULL;
	}
	if (em != NULL)
		failset_init_memory(&p->fails);
	else
		failset_init(&p->fails, p->name, 0);
	failset_init(&p->shown, p->name, 0);
	p->st.tenant = p->tenant;
	p->st.def    = def;
	p->st.state  = PROC_STARTING;
	return p;
}

void
proc_free(processor *p)
{
	failset_free(&p->fails);
	failset_free(&p->shown);
	pthread_cond_destroy(&p->done_cv);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	msgpack_sbuffer_destroy(&p->buf);
	msgpack_sbuffer_destroy(&p->appends);
	scache_clear(&p->states);
	msgpack_zone_destroy(&p->zone);
	proc_link_free(p);
	free(p->shared);
	if (p->em != NULL) {
		pthread_mutex_destroy(&p->em->cmu);
		proc_emit_free(p->em);
	}
	free(p->tenant);
	free(p);
}

/* Start p's thread; it holds def from here on. */
static int
proc_launch(processor *p, processor **out)
{
	proj_def_hold(p->def);
	int rc = pthread_create(&p->thr, NULL, proc_thread, p);
	if (rc != 0) {
		log_error("proc", "pthread_create: %s", strerror(rc));
		proj_def_release(p->def);
		proc_free(p);
		return SL_ENOMEM;
	}
	log_debug("proc", "started tenant %s projection %s (%s)", p->tenant,
	    p->def->id, p->def->name != NULL ? p->def->name : "");
	*out = p;
	return SL_OK;
}

int
proc_start(store *s, rmstore *rm, const char *tenant, const proj_def *def,
    uint32_t batch, processor **out)
{
	*out = NULL;
	if (s == NULL || rm == NULL || tenant == NULL || def == NULL
	    || (def_is_filter(def)
	            ? def->f == NULL
	                || (def->f->filter == NULL && def->remote == NULL)
	            : def->p == NULL
	                || (def->p->on == NULL && def->remote == NULL)))
		return SL_EINVAL;
	processor *p = proc_new(s, rm, tenant, def, batch, NULL);
	return p != NULL ? proc_launch(p, out) : SL_ENOMEM;
}

int
proc_start_emitting(store *s, const char *tenant, const proj_def *def,
    cfg_mode mode, const proj_settings *set, bool stopped, processor **out)
{
	*out = NULL;
	if (s == NULL || tenant == NULL || def == NULL || set == NULL
	    || def_is_filter(def) || def->p == NULL || def->p->on == NULL
	    || mode == CFG_MODE_ONE_TIME)
		return SL_EINVAL;
	proc_emit *em = calloc(1, sizeof(*em));
	if (em == NULL)
		return SL_ENOMEM;
	em->mode    = mode;
	em->set     = *set;
	em->stopped = stopped;
	/* a batch ends at the first threshold (proc_emit_full) */
	processor *p = proc_new(s, NULL, tenant, def, 1000, em);
	if (p == NULL) {
		proc_emit_free(em);
		return SL_ENOMEM;
	}
	return proc_launch(p, out);
}

void
proc_set_def(processor *p, const proj_def *def)
{
	if (p == NULL)
		return;
	proj_def_hold(def);
	pthread_mutex_lock(&p->mu);
	const proj_def *superseded = p->has_pending ? p->pending : NULL;
	p->pending                 = def;
	p->has_pending             = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	proj_def_release(superseded);
	/* a live processor waits on the store's head */
	store_wake_all(p->s);
}

void
proc_stop_signal(processor *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop                   = true;
	struct remote_proc *rproc = p->st.def->remote;
	pthread_cond_broadcast(&p->cv);
	pthread_cond_broadcast(&p->done_cv); /* commands nobody takes now */
	pthread_mutex_unlock(&p->mu);
	store_wake_all(p->s);
	if (rproc != NULL)
		remote_wake(rproc); /* one waiting for its client */
}

void
proc_join(processor *p)
{
	if (p == NULL)
		return;
	proc_stop_signal(p);
	pthread_join(p->thr, NULL);
}

void
proc_destroy(processor *p)
{
	if (p == NULL)
		return;
	proj_def_release(p->def);
	if (p->has_pending)
		proj_def_release(p->pending);
	proc_free(p);
}

void
proc_stop(processor *p)
{
	proc_join(p);
	proc_destroy(p);
}

void
proc_get_status(processor *p, proc_status *out)
{
	pthread_mutex_lock(&p->mu);
	/* an idle processor's rate falls to 0 (no batch restarts it) */
	if (p->st.rate_at_ns != 0
	    && ev_now_ns() - p->st.rate_at_ns > 2 * PROC_RATE_WINDOW_NS)
		proc_update_rate(&p->st, false);
	*out = p->st;
	pthread_mutex_unlock(&p->mu);
}

void
proc_set_notify(processor *p, proc_notify_fn fn, void *arg)
{
	pthread_mutex_lock(&p->mu);
	p->notify     = fn;
	p->notify_arg = arg;
	pthread_mutex_unlock(&p->mu);
}

/* Post command bit cmd (a proc_cmd, or CMD_HALT) and wait (at most
 * timeout_ms) until the thread has taken it. */
static int
post_command(processor *p, unsigned cmd, int timeout_ms)
{
	pthread_mutex_lock(&p->mu);
	if (p->stop) { /* stopping, or stopped: nobody would take it */
		pthread_mutex_unlock(&p->mu);
		return SL_ECLOSED;
	}
	if (cmd == PROC_CMD_PAUSE)
		p->cmds &= ~CMD_BIT(PROC_CMD_RESUME);
	if (cmd == PROC_CMD_RESUME)
		p->cmds &= ~CMD_BIT(PROC_CMD_PAUSE);
	p->cmds |= CMD_BIT(cmd);
	uint64_t mine = ++p->cmd_seq;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	store_wake_all(p->s); /* a live processor waits on the head */

	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long) (timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	int rc = SL_OK;
	pthread_mutex_lock(&p->mu);
	while (p->cmd_done < mine) {
		if (p->stop) { /* it stopped before taking it */
			rc = SL_ECLOSED;
			break;
		}
		if (pthread_cond_timedwait(&p->done_cv, &p->mu, &until)
		    == ETIMEDOUT) {
			rc = p->cmd_done < mine ? SL_ETIMEDOUT : SL_OK;
			break;
		}
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

int
proc_command(processor *p, proc_cmd cmd, int timeout_ms)
{
	if (cmd < PROC_CMD_RESET || cmd > PROC_CMD_RESUME)
		return SL_EINVAL;
	return post_command(p, cmd, timeout_ms);
}

int
proc_halt(processor *p, const char *reason, int timeout_ms)
{
	if (p->em != NULL)
		return SL_EINVAL;
	pthread_mutex_lock(&p->mu);
	snprintf(p->halt_next, sizeof(p->halt_next), "%s",
	    reason != NULL ? reason : "");
	pthread_mutex_unlock(&p->mu);
	return post_command(p, CMD_HALT, timeout_ms);
}

static int
failing_by_position(const void *a, const void *b)
{
	const fail_unit *x = *(const fail_unit *const *) a;
	const fail_unit *y = *(const fail_unit *const *) b;
	return x->pos < y->pos ? -1 : x->pos > y->pos ? 1 : 0;
}

size_t
proc_get_failing(processor *p, proc_failing *out, size_t max)
{
	pthread_mutex_lock(&p->mu);
	size_t            n = p->shown.n;
	const fail_unit **v = n > 0 ? malloc(n * sizeof(*v)) : NULL;
	size_t            k = 0;
	if (v != NULL) {
		for (size_t i = 0; i < n; i++)
			v[i] = &p->shown.v[i];
		qsort(v, n, sizeof(*v), failing_by_position);
		for (; k < n && k < max; k++) {
			const fail_unit *u = v[k];
			proc_failing    *o = &out[k];
			proc_unit_label(u->unit, u->ulen, o->partition,
			    sizeof(o->partition));
			o->position    = u->pos;
			o->attempts    = u->attempts;
			o->retry       = u->retry;
			o->next_try_ns = u->retry ? u->next_try_ns : 0;
			snprintf(o->reason, sizeof(o->reason), "%s", u->reason);
		}
	}
	pthread_mutex_unlock(&p->mu);
	free(v);
	return n;
}

const char *
proc_projection_id(const processor *p)
{
	return p->proj_id;
}

const char *
proc_tenant(const processor *p)
{
	return p->tenant;
}
