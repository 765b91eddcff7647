/*
 * The engine of emitting projections (see emitter.h): per continuous or
 * transient run a reader thread copying the tenant's events from the log
 * into a bounded queue, and a handler thread calling the projection,
 * collecting what it emits and committing batches (appends + changed
 * states + checkpoint) through the store's writer; one-time queries run the
 * same handling in the caller's thread, in memory.
 *
 * This file: what an emitting projection is and claims, and the continuous
 * / transient run: its reader thread, lifecycle, operator commands and
 * status. The handler thread and its batches are in emitter_handler.c, the
 * handling shared by every mode (batches, checkpoint records, one event) in
 * emitter_run.c, the state cache in statecache.c, reading states,
 * snapshots and one-time queries in emitter_query.c; emitter_internal.h
 * holds what they share.
 *
 * Persisted per (tenant, projection id), in the log env:
 *   "pcheck": a msgpack map {position, def_hash, stopped, failing}: the
 *             next position to handle, the definition it was built with,
 *             whether an operator stopped it (PAUSE / `stop`, persisted
 *             here, so it survives a restart), and the failing keys
 *             (emitter_fail.c; absent: none);
 *   "pstate": the states (msgpack maps) by key.
 */
#include "emitter_internal.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "sysproj.h"

/* The reader stops adding to the queue past this many bytes as well. */
#define QUEUE_BYTES_MAX ((size_t) 64 << 20)
/* Events the reader copies per read transaction, at most. */
#define READ_CHUNK 512

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
	return rc;
}

/* ---- the continuous / transient run ---- */

const char *
eproj_id(const eproj *e)
{
	return e->id;
}

const char *
eproj_tenant(const eproj *e)
{
	return e->tenant;
}

const proj_def *
eproj_def(eproj *e)
{
	pthread_mutex_lock(&e->mu);
	const proj_def *d = e->def;
	pthread_mutex_unlock(&e->mu);
	return d;
}

/* Count n events processed now (under mu). */
void
eproj_rate_add(eproj *e, uint64_t n)
{
	uint64_t sec = (uint64_t) (mono_ns() / 1000000000);
	size_t   i   = sec % RATE_SECS;
	if (e->rate_sec[i] != sec) {
		e->rate_sec[i] = sec;
		e->rate_n[i]   = 0;
	}
	e->rate_n[i] += n;
	e->events_processed += n;
}

static double
rate_get(const eproj *e)
{
	int64_t  now = mono_ns();
	uint64_t sec = (uint64_t) (now / 1000000000), sum = 0;
	for (size_t i = 0; i < RATE_SECS; i++)
		if (e->rate_sec[i] + RATE_SECS > sec)
			sum += e->rate_n[i];
	double span = (double) (now - e->started_ns) / 1e9;
	if (span > RATE_SECS)
		span = RATE_SECS;
	if (span < 1)
		span = 1;
	return (double) sum / span;
}

/* ---- the reader thread ---- */

/* Whether a stored record (msgpack array, tenant first) is tenant's.
 * Unreadable headers say yes: the handler decodes and reports them. */
static bool
rec_is_tenant(const unsigned char *p, size_t len, const char *t, size_t tl)
{
	size_t i = 0;
	if (len < 2)
		return true;
	if ((p[0] & 0xf0) == 0x90)
		i = 1;
	else if (p[0] == 0xdc)
		i = 3;
	else if (p[0] == 0xdd)
		i = 5;
	else
		return true;
	if (i >= len)
		return true;
	size_t        n;
	unsigned char h = p[i];
	if ((h & 0xe0) == 0xa0) {
		n = h & 0x1f;
		i += 1;
	} else if (h == 0xd9 && i + 1 < len) {
		n = p[i + 1];
		i += 2;
	} else if (h == 0xda && i + 2 < len) {
		n = (size_t) p[i + 1] << 8 | p[i + 2];
		i += 3;
	} else {
		return true;
	}
	return n == tl && i + n <= len && memcmp(p + i, t, n) == 0;
}

typedef struct rscan {
	eproj   *e;
	qrec    *head, *tail;
	size_t   n, bytes;
	uint64_t skipped;
	size_t   tl;
} rscan;

static int
reader_cb(void *arg, uint64_t position, const void *data, size_t len)
{
	rscan *rs = arg;
	if (!rec_is_tenant(data, len, rs->e->tenant, rs->tl)) {
		rs->skipped += len;
		return 0;
	}
	qrec *q = malloc(sizeof(*q) + len);
	if (q == NULL)
		return SL_ENOMEM;
	q->next     = NULL;
	q->position = position;
	q->len      = len;
	memcpy(q->data, data, len);
	if (rs->tail != NULL)
		rs->tail->next = q;
	else
		rs->head = q;
	rs->tail = q;
	rs->n++;
	rs->bytes += len;
	return rs->bytes >= QUEUE_BYTES_MAX / 8 ? 1 : 0;
}

void
eproj_qrec_free_list(qrec *q)
{
	while (q != NULL) {
		qrec *next = q->next;
		free(q);
		q = next;
	}
}

static void *
reader_main(void *arg)
{
	eproj *e     = arg;
	size_t limit = e->set.pending_events_threshold > 0
	    ? e->set.pending_events_threshold
	    : 1;
	pthread_mutex_lock(&e->mu);
	while (!e->stopping) {
		/* a stopped run reads nothing: it would only wake both
		 * threads on every commit and hold up to a queue's worth of
		 * events; the handler dropped the queue when it stopped and
		 * set read_pos to where it resumes (see take_command) */
		if (e->paused) {
			e->reader_full = false;
			pthread_cond_wait(&e->rcv, &e->mu);
			continue;
		}
		if (e->qn >= limit || e->qbytes >= QUEUE_BYTES_MAX) {
			e->reader_full = true;
			pthread_cond_wait(&e->rcv, &e->mu);
			continue;
		}
		e->reader_full = false;
		uint64_t from = e->read_pos, gen = e->read_gen;
		size_t   room = limit - e->qn;
		if (room > READ_CHUNK)
			room = READ_CHUNK;
		pthread_mutex_unlock(&e->mu);

		rscan    rs   = { .e = e, .tl = strlen(e->tenant) };
		uint64_t next = from;
		int rc = store_scan(e->s, from, room, reader_cb, &rs, &next);
		uint64_t head = store_next_position(e->s);

		pthread_mutex_lock(&e->mu);
		if (gen != e->read_gen) { /* restarted meanwhile */
			eproj_qrec_free_list(rs.head);
			continue;
		}
		if (rc != SL_OK && rc != 1) {
			eproj_qrec_free_list(rs.head);
			log_error("emitter",
			    "%s/%s: reading the log at %" PRIu64 ": %s",
			    e->tenant, e->id, from, sl_strerror(rc));
			struct timespec ts;
			abs_deadline(&ts, mono_ns() + 1000000000LL);
			pthread_cond_timedwait(&e->rcv, &e->mu, &ts);
			continue;
		}
		if (rs.head != NULL) {
			if (e->qtail != NULL)
				e->qtail->next = rs.head;
			else
				e->qhead = rs.head;
			e->qtail = rs.tail;
			e->qn += rs.n;
			e->qbytes += rs.bytes;
		}
		e->read_pos = next;
		e->skipped_bytes += rs.skipped;
		e->head = head;
		pthread_cond_broadcast(&e->cv);
		if (next >= head && !e->paused) {
			/* caught up: wait for the log to grow */
			pthread_mutex_unlock(&e->mu);
			head = store_wait(e->s, next, 1000);
			pthread_mutex_lock(&e->mu);
			e->head = head > e->head ? head : e->head;
		}
	}
	pthread_mutex_unlock(&e->mu);
	return NULL;
}

/* ---- lifecycle ---- */

int
eproj_start(store *s, const char *tenant, const proj_def *def, cfg_mode mode,
    const proj_settings *set, bool stopped, eproj **out)
{
	*out = NULL;
	if (s == NULL || tenant == NULL || def == NULL || set == NULL
	    || def_is_filter(def) || mode == CFG_MODE_ONE_TIME)
		return SL_EINVAL;
	eproj *e = calloc(1, sizeof(*e));
	if (e == NULL || (e->tenant = strdup(tenant)) == NULL) {
		free(e);
		return SL_ENOMEM;
	}
	e->s    = s;
	e->mode = mode;
	e->set  = *set;
	memcpy(e->id, def->id, sizeof(e->id));
	e->started_ns = mono_ns();
	pthread_mutex_init(&e->mu, NULL);
	pthread_mutex_init(&e->cmu, NULL);
	cond_init_mono(&e->cv);
	cond_init_mono(&e->rcv);
	cond_init_mono(&e->cmd_cv);
	int rc = eproj_run_init(&e->r,
	    mode == CFG_MODE_TRANSIENT ? RUN_TRANSIENT : RUN_CONTINUOUS, s,
	    e->tenant, def);
	if (mode == CFG_MODE_TRANSIENT)
		e->r.cmu = &e->cmu;
	e->paused = stopped;
	failset_init_memory(&e->failing);
	if (rc == SL_OK && mode != CFG_MODE_TRANSIENT) {
		ckpt c = { .failing = &e->failing };
		rc     = eproj_ckpt_read(s, tenant, def->id, &c);
		if (rc == SL_OK) {
			e->paused      = c.stopped;
			e->ckpt_stored = true;
			if (c.def_hash == def->def_hash)
				e->position = c.position;
			else {
				e->batch_rc
				    = -1; /* the handler resets first */
				failset_free(&e->failing);
			}
		} else if (rc == SL_ENOTFOUND || rc == SL_EPROTO) {
			if (rc == SL_EPROTO) {
				log_error("emitter",
				    "%s/%s: the checkpoint is "
				    "corrupt: resetting",
				    tenant, def->id);
				e->batch_rc = -1;
				failset_free(&e->failing);
			}
			rc = SL_OK;
		}
	}
	if (rc != SL_OK) {
		eproj_run_fini(&e->r);
		failset_free(&e->failing);
		free(e->tenant);
		free(e);
		return rc == SL_ENOMEM ? rc : SL_ESTORAGE;
	}
	e->r.failing = &e->failing;
	proj_def_hold(def);
	e->def      = def;
	e->read_pos = e->position;
	e->head     = store_next_position(s);
	if (pthread_create(&e->handler, NULL, eproj_handler_main, e) != 0) {
		proj_def_release(def);
		eproj_run_fini(&e->r);
		failset_free(&e->failing);
		free(e->tenant);
		free(e);
		return SL_ENOMEM;
	}
	e->handler_started = true;
	if (pthread_create(&e->reader, NULL, reader_main, e) == 0)
		e->reader_started = true;
	else {
		eproj_stop(e);
		return SL_ENOMEM;
	}
	*out = e;
	return SL_OK;
}

void
eproj_stop(eproj *e)
{
	if (e == NULL)
		return;
	pthread_mutex_lock(&e->mu);
	e->stopping = true;
	pthread_cond_broadcast(&e->cv);
	pthread_cond_broadcast(&e->rcv);
	pthread_mutex_unlock(&e->mu);
	store_wake_all(e->s);
	if (e->reader_started)
		pthread_join(e->reader, NULL);
	if (e->handler_started)
		pthread_join(e->handler, NULL);
	eproj_qrec_free_list(e->qhead);
	eproj_run_fini(&e->r);
	failset_free(&e->failing);
	proj_def_release(e->def);
	if (e->def_pending)
		proj_def_release(e->next_def);
	pthread_mutex_destroy(&e->mu);
	pthread_mutex_destroy(&e->cmu);
	pthread_cond_destroy(&e->cv);
	pthread_cond_destroy(&e->rcv);
	pthread_cond_destroy(&e->cmd_cv);
	free(e->tenant);
	free(e);
}

void
eproj_set_def(eproj *e, const proj_def *def)
{
	proj_def_hold(def);
	pthread_mutex_lock(&e->mu);
	if (e->def_pending)
		proj_def_release(e->next_def);
	e->next_def    = def;
	e->def_pending = true;
	pthread_cond_broadcast(&e->cv);
	pthread_mutex_unlock(&e->mu);
}

int
eproj_command(eproj *e, proc_cmd cmd, int timeout_ms)
{
	if (cmd != PROC_CMD_RESET && cmd != PROC_CMD_RETRY
	    && cmd != PROC_CMD_PAUSE && cmd != PROC_CMD_RESUME)
		return SL_EINVAL;
	pthread_mutex_lock(&e->mu);
	/* one command at a time: wait for the previous one to be taken */
	int64_t deadline = mono_ns() + (int64_t) timeout_ms * 1000000;
	while (e->cmd_taken != e->cmd_seq && mono_ns() < deadline) {
		struct timespec ts;
		abs_deadline(&ts, deadline);
		pthread_cond_timedwait(&e->cmd_cv, &e->mu, &ts);
	}
	e->cmd      = cmd;
	uint64_t me = ++e->cmd_seq;
	pthread_cond_broadcast(&e->cv);
	int rc = SL_OK;
	while (e->cmd_taken < me) {
		if (mono_ns() >= deadline) {
			rc = SL_ETIMEDOUT;
			break;
		}
		struct timespec ts;
		abs_deadline(&ts, deadline);
		pthread_cond_timedwait(&e->cmd_cv, &e->mu, &ts);
	}
	/* a stop answers when its checkpoint is durable: status says
	 * "stopped" from then on */
	while (rc == SL_OK && cmd == PROC_CMD_PAUSE && e->paused
	    && e->stop_seq > e->done_seq && !e->stopping) {
		if (mono_ns() >= deadline) {
			rc = SL_ETIMEDOUT;
			break;
		}
		struct timespec ts;
		abs_deadline(&ts, deadline);
		pthread_cond_timedwait(&e->cmd_cv, &e->mu, &ts);
	}
	pthread_mutex_unlock(&e->mu);
	return rc;
}

void
eproj_get_status(eproj *e, eproj_status *out)
{
	memset(out, 0, sizeof(*out));
	/* a stopped run's reader does not look at the log: the head is
	 * read here (before taking mu, to hold it short) */
	uint64_t log_head = store_next_position(e->s);
	pthread_mutex_lock(&e->mu);
	if (e->paused && log_head > e->head)
		e->head = log_head;
	out->tenant = e->tenant;
	out->def    = e->def;
	out->mode   = e->mode;
	if (e->def == NULL) {
		out->status = "stopped";
		snprintf(out->reason, sizeof(out->reason),
		    "the projection was unloaded");
	} else if (e->paused) {
		/* as EventStoreDB's "Stopping": not "stopped" before the
		 * stop's checkpoint is durable */
		out->status
		    = e->stop_seq > e->done_seq ? "stopping" : "stopped";
		if (e->faulted) /* e.g. the stop's batch failed: retried */
			snprintf(out->reason, sizeof(out->reason), "%s",
			    e->status_reason);
	} else if (e->faulted) {
		out->status = "faulted";
		snprintf(
		    out->reason, sizeof(out->reason), "%s", e->status_reason);
	} else if (e->waiting_writes) {
		out->status = "waiting";
		snprintf(out->reason, sizeof(out->reason),
		    "max_allowed_writes_in_flight (%u) reached",
		    e->set.max_allowed_writes_in_flight);
	} else if (e->reader_full) {
		out->status = "waiting";
		snprintf(out->reason, sizeof(out->reason),
		    "pending_events_threshold (%u) reached: the handler is "
		    "behind",
		    e->set.pending_events_threshold);
	} else {
		out->status = "running";
		if (e->failing.n > 0) /* as the processors say it */
			snprintf(out->reason, sizeof(out->reason),
			    "%zu partition%s failing, the others go on",
			    e->failing.n, e->failing.n == 1 ? "" : "s");
	}
	/* clean_pos counts once the batches sealed before it are durable */
	out->position
	    = e->clean_pos > e->position && e->done_seq >= e->clean_seq
	    ? e->clean_pos
	    : e->position;
	out->head              = e->head > e->position ? e->head : e->position;
	out->progress          = out->head == 0
	             ? 100.0
	             : 100.0 * (double) out->position / (double) out->head;
	out->events_processed  = e->events_processed;
	out->events_per_sec    = rate_get(e);
	out->buffered_events   = e->qn;
	out->partitions_cached = e->cached;
	out->writes_in_flight  = e->in_flight;
	out->emitted           = e->emitted;
	out->attempts          = e->attempts;
	out->n_failing         = e->failing.n;
	pthread_mutex_unlock(&e->mu);
}

size_t
eproj_get_failing(eproj *e, proc_failing *out, size_t max)
{
	pthread_mutex_lock(&e->mu);
	size_t n = e->failing.n;
	for (size_t i = 0; i < n && i < max; i++) {
		const fail_unit *u = &e->failing.v[i];
		proc_failing    *o = &out[i];
		memset(o, 0, sizeof(*o));
		proc_unit_label(
		    u->unit, u->ulen, o->partition, sizeof(o->partition));
		o->position    = u->pos;
		o->attempts    = u->attempts;
		o->retry       = u->retry;
		o->next_try_ns = u->retry ? u->next_try_ns : 0;
		snprintf(o->reason, sizeof(o->reason), "%s", u->reason);
	}
	pthread_mutex_unlock(&e->mu);
	return n;
}
