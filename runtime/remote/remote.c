/*
 * Remote processors, the calls (docs/remote.md): the reverse calls the
 * processors make to the clients of their registrations (remote_reg.c).
 * Each registration owns an NNG req0 socket listening on a URL of its own;
 * its client dials it with a rep0 socket and answers the calls. A call runs
 * on one NNG context (send, then receive the answer) with an aio callback;
 * answers go to the queue of the processor (remote_caller) that started
 * the call. A timer per registration pings an idle client; pipe events
 * tell connect and disconnect.
 *
 * Locks: rs->mu (the list of registrations, one registration at a time)
 * before rp->mu (one registration's connection, slots and callers). No NNG
 * function that can wait is called with rp->mu held.
 */
#include "remote.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include <sluice/errors.h>

#include "auth.h"
#include "event.h"
#include "log.h"
#include "mp.h"
#include "mpraw.h"
#include "mpwrite.h"
#include "remote_internal.h"
#include "tls.h"

/* ---- small helpers ---- */

static int64_t
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait on cv until deadline (monotonic ms). @return false on timeout. */
static bool
cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline)
{
	struct timespec ts;
	ts.tv_sec  = deadline / 1000;
	ts.tv_nsec = (long) (deadline % 1000) * 1000000L;
	return pthread_cond_timedwait(cv, mu, &ts) != ETIMEDOUT;
}

/* ---- answers ---- */

static void resp_reason(remote_resp *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
resp_reason(remote_resp *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	va_end(ap);
}

void
remote_resp_free(remote_resp *r)
{
	if (r == NULL)
		return;
	free(r->state);
	r->state     = NULL;
	r->state_len = 0;
}

/* What a SKIPPED answer says when it carries no reason of its own. */
#define SKIPPED_REASON "an earlier event of its run failed"

void
remote_ablock_free(ablock *b)
{
	if (b == NULL)
		return;
	for (uint32_t i = 0; i < b->n; i++) {
		free(b->a[i].state);
		free(b->a[i].text);
	}
	free(b);
}

/* A block with room for cap answers, none in it yet; NULL: out of
 * memory. */
static ablock *
ablock_new(size_t cap)
{
	ablock *b = malloc(sizeof(*b) + cap * sizeof(b->a[0]));
	if (b != NULL) {
		b->next = NULL;
		b->call = 0;
		b->n    = 0;
		b->at   = 0;
	}
	return b;
}

/* A cleared answer to the request tag. */
static void
ans_init(answer *a, uint64_t tag)
{
	a->tag            = tag;
	a->state          = NULL;
	a->state_len      = 0;
	a->retry_after_ms = 0;
	a->outcome        = REMOTE_REPLACE;
	a->retry          = false;
	a->text           = NULL;
}

/* Whether an outcome has a reason to show. */
static bool
has_reason(remote_outcome o)
{
	return o == REMOTE_FAILED || o == REMOTE_DISCONNECTED
	    || o == REMOTE_SKIPPED;
}

/* The answer r (decoded in its full form) into a, whose tag stays: r's
 * state is handed over (r keeps none), its text copied (lost when out of
 * memory: the outcome stays). */
static void
ans_set(answer *a, remote_resp *r)
{
	const char *t = r->outcome == REMOTE_INCLUDED ? r->partition
	    : has_reason(r->outcome)                  ? r->reason
	                                              : NULL;
	free(a->state);
	free(a->text);
	a->state          = r->state;
	a->state_len      = (uint32_t) r->state_len;
	a->outcome        = (uint8_t) r->outcome;
	a->retry          = r->retry;
	a->retry_after_ms = r->retry_after_ms;
	a->text           = t != NULL && t[0] != '\0' ? strdup(t) : NULL;
	r->state          = NULL;
	r->state_len      = 0;
}

/* An answer the runtime gives itself: outcome, and a reason (copied). */
static void
ans_runtime(answer *a, remote_outcome o, bool retry, const char *why)
{
	free(a->state);
	free(a->text);
	a->state     = NULL;
	a->state_len = 0;
	a->outcome   = (uint8_t) o;
	a->retry     = retry;
	a->text      = why != NULL ? strdup(why) : NULL;
}

/* An event after the failing one of its run: it waits with the unit. */
static void
ans_skipped(answer *a)
{
	ans_runtime(a, REMOTE_SKIPPED, false, NULL);
}

/* A failure the runtime found in the answer: retried like a handler's. */
static void malformed(remote_resp *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
malformed(remote_resp *r, const char *fmt, ...)
{
	char    why[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	r->outcome        = REMOTE_FAILED;
	r->retry          = true;
	r->retry_after_ms = 0;
	remote_resp_free(r);
	resp_reason(r, "malformed answer: %s", why);
}

static bool
outcome_is(const msgpack_object *o, const char *s)
{
	return mp_str_eq(o, s);
}

/* A failure's fields (outcome "failed") into r. @return false when they
 * are of the wrong types (r: malformed). */
static bool
decode_failure(const msgpack_object *m, remote_resp *r)
{
	const msgpack_object *reason = field(m, "reason");
	const msgpack_object *retry  = field(m, "retry");
	const msgpack_object *after  = field(m, "retry_after_ms");
	if ((reason != NULL && reason->type != MSGPACK_OBJECT_STR)
	    || (retry != NULL && retry->type != MSGPACK_OBJECT_BOOLEAN)
	    || (after != NULL
	        && after->type != MSGPACK_OBJECT_POSITIVE_INTEGER)) {
		malformed(r,
		    "a failure has reason (string), retry (bool) and "
		    "retry_after_ms (uint)");
		return false;
	}
	r->outcome        = REMOTE_FAILED;
	r->retry          = retry == NULL || retry->via.boolean;
	r->retry_after_ms = after == NULL ? 0
	    : after->via.u64 > UINT32_MAX ? UINT32_MAX
	                                  : (uint32_t) after->via.u64;
	if (reason == NULL || reason->via.str.size == 0)
		resp_reason(r, "the client failed (no reason given)");
	else
		resp_reason(r, "%.*s",
		    (int) (reason->via.str.size < sizeof(r->reason)
		            ? reason->via.str.size
		            : sizeof(r->reason) - 1),
		    reason->via.str.ptr);
	return true;
}

/* A packed copy of a map the answer holds, into r->state (REPLACE).
 * @return false when out of memory (r: malformed). */
static bool
take_state(const msgpack_object *o, remote_resp *r)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_object(&pk, *o);
	if (sb.data == NULL) {
		malformed(r, "out of memory");
		return false;
	}
	r->outcome   = REMOTE_REPLACE;
	r->state     = sb.data;
	r->state_len = sb.size;
	return true;
}

/* One outcome map (a protocol 1 answer, or an element of a protocol 2
 * filter answer's outcomes) of a call of kind into r.
 * @return false when it was malformed (r: REMOTE_FAILED, retry). */
static bool
decode_outcome(def_kind kind, sl_filter_kind fkind, const msgpack_object *m,
    remote_resp *r)
{
	const msgpack_object *o, *outcome = field(m, "outcome");
	if (outcome == NULL || outcome->type != MSGPACK_OBJECT_STR) {
		malformed(r, "field 'outcome' is missing or not a string");
		return false;
	}
	if (outcome_is(outcome, "failed"))
		return decode_failure(m, r);
	if (kind == DEF_PROJECTION) {
		if (outcome_is(outcome, "delete")) {
			r->outcome = REMOTE_DELETE;
			return true;
		}
		if (outcome_is(outcome, "replace")) {
			o = field(m, "state");
			if (o == NULL || o->type != MSGPACK_OBJECT_MAP) {
				malformed(r,
				    "outcome 'replace' needs a 'state' map");
				return false;
			}
			return take_state(o, r);
		}
		malformed(r,
		    "outcome '%.*s' does not answer a projection call "
		    "(replace, delete or failed)",
		    (int) (outcome->via.str.size > 64 ? 64
		                                      : outcome->via.str.size),
		    outcome->via.str.ptr);
		return false;
	}
	if (outcome_is(outcome, "excluded")) {
		r->outcome = REMOTE_EXCLUDED;
		return true;
	}
	if (!outcome_is(outcome, "included")) {
		malformed(r,
		    "outcome '%.*s' does not answer a filter call (included, "
		    "excluded or failed)",
		    (int) (outcome->via.str.size > 64 ? 64
		                                      : outcome->via.str.size),
		    outcome->via.str.ptr);
		return false;
	}
	r->outcome = REMOTE_INCLUDED;
	if (fkind == SL_FILTER_UNPARTITIONED)
		return true; /* a partition is ignored */
	o = field(m, "partition");
	if (o == NULL || o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0)
		malformed(r,
		    "a partitioned filter's 'included' needs a 'partition' "
		    "string");
	else if (o->via.str.size > REMOTE_MAX_PARTITION)
		malformed(r, "partition of %u bytes (limit %d)",
		    o->via.str.size, REMOTE_MAX_PARTITION);
	else if (memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL)
		malformed(r, "partition contains a NUL byte");
	else {
		memcpy(r->partition, o->via.str.ptr, o->via.str.size);
		r->partition[o->via.str.size] = '\0';
		return true;
	}
	return false;
}

/* Whether an answer is one bounded msgpack value (r: malformed if not). */
static bool
answer_checked(const void *body, size_t len, remote_resp *r)
{
	char bad[160];
	if (len == 0) {
		malformed(r, "empty message");
		return false;
	}
	if (len > REMOTE_MAX_ANSWER) {
		malformed(r, "%zu bytes, over the limit of %u", len,
		    REMOTE_MAX_ANSWER);
		return false;
	}
	/* msgpack-c would allocate what a lying header claims */
	if (!mpraw_check(
	        body, len, REMOTE_MAX_DEPTH, "answer map", bad, sizeof(bad))) {
		malformed(r, "%s", bad);
		return false;
	}
	return true;
}

/* Check an answer's envelope: a bounded msgpack map whose call is the
 * slot's. @return the root (in zone) or NULL (r: malformed). */
static const msgpack_object *
decode_root(const slot *s, const void *body, size_t len, msgpack_zone *zone,
    msgpack_object *root, remote_resp *r)
{
	const msgpack_object *o;
	size_t                off = 0;
	if (!answer_checked(body, len, r))
		return NULL;
	if (msgpack_unpack(body, len, &off, zone, root)
	        != MSGPACK_UNPACK_SUCCESS
	    || root->type != MSGPACK_OBJECT_MAP) {
		malformed(r, "not a msgpack map");
		return NULL;
	}
	o = field(root, "call");
	if (o == NULL || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
		malformed(r, "field 'call' is missing or not an integer");
		return NULL;
	}
	if (o->via.u64 != s->call) {
		malformed(r,
		    "field 'call' is %" PRIu64 ", the call was %" PRIu64,
		    o->via.u64, s->call);
		return NULL;
	}
	return root;
}

/* Decode the answer to slot s's (protocol 1) call into r (r->call is set).
 * @return false when it was malformed (r: REMOTE_FAILED, retry). */
static bool
decode_answer(const slot *s, const void *body, size_t len, remote_resp *r)
{
	msgpack_zone   zone;
	msgpack_object root;
	bool           ok = false;
	if (!msgpack_zone_init(&zone, 4096)) {
		malformed(r, "out of memory");
		return false;
	}
	if (decode_root(s, body, len, &zone, &root, r) == NULL)
		goto out;
	if (s->is_ping) {
		const msgpack_object *outcome = field(&root, "outcome");
		if (outcome == NULL || outcome->type != MSGPACK_OBJECT_STR)
			malformed(
			    r, "field 'outcome' is missing or not a string");
		else if (!outcome_is(outcome, "pong"))
			malformed(r, "a ping is answered with outcome 'pong'");
		else {
			r->outcome = REMOTE_REPLACE; /* unused: alive */
			ok         = true;
		}
		goto out;
	}
	ok = decode_outcome(s->kind, s->fkind, &root, r);
out:
	msgpack_zone_destroy(&zone);
	return ok;
}

/* ---- protocol 2: the answers of a call of many events ---- */

/* The answer's array key of n entries (what they are, with unit naming
 * the call's count: "runs" of n, "outcomes" of n "events"); NULL with
 * bad saying why. */
static const msgpack_object *
answer_array(const msgpack_object *root, const char *key, size_t n,
    const char *unit, remote_resp *bad)
{
	const msgpack_object *a = field(root, key);
	if (a == NULL || a->type != MSGPACK_OBJECT_ARRAY) {
		malformed(bad, "field '%s' is missing or not an array", key);
		return NULL;
	}
	if (a->via.array.size != n) {
		malformed(bad, "%u %s answered, the call had %zu%s",
		    a->via.array.size, key, n, unit);
		return NULL;
	}
	return a;
}

/* Give every event of s's call the same end: DISCONNECTED to all; else
 * (a timeout, a malformed answer) the template's failure to a filter's
 * every event and to each projection run's first, the run's others
 * SKIPPED (they wait with the unit the failure stops). */
static void
batch_fail_all(slot *s, remote_resp *t)
{
	ablock *b = s->blk;
	size_t  i = 0;
	for (size_t run = 0;
	     run < (s->kind == DEF_PROJECTION ? s->n_runs : b->n); run++) {
		size_t n = s->kind == DEF_PROJECTION ? s->run_len[run] : 1;
		for (size_t j = 0; j < n && i < b->n; j++, i++) {
			ans_set(&b->a[i], t); /* t carries no state */
			if (j > 0 && t->outcome != REMOTE_DISCONNECTED)
				ans_skipped(&b->a[i]);
		}
	}
}

/* An unsigned integer as msgpack-c reads one (a uint, or a signed form
 * holding a value >= 0). */
static bool
raw_u64(const unsigned char *v, size_t len, uint64_t *out)
{
	if (mpraw_uint(v, len, out))
		return true;
	if (len == 0 || v[0] < 0xd0 || v[0] > 0xd3)
		return false;
	size_t nb = (size_t) 1 << (v[0] - 0xd0);
	if (len < 1 + nb || (v[1] & 0x80) != 0)
		return false;
	*out = mpraw_be(v + 1, nb);
	return true;
}

static bool
raw_map(const unsigned char *v, size_t len)
{
	return len > 0
	    && ((v[0] & 0xf0) == 0x80 || v[0] == 0xde || v[0] == 0xdf);
}

/* The values of the map at p[*at] under names[0..n) (the first of each
 * key, as mpraw_map_find finds it; NULL when absent), in one pass over the
 * map: *at moves past it. @return false when it is no map (or is cut short).
 */
static bool
raw_fields(const unsigned char *p, size_t len, size_t *at,
    const char *const *names, size_t n, const unsigned char **val,
    size_t *val_len)
{
	uint64_t pairs;
	size_t   i = *at;
	for (size_t k = 0; k < n; k++) {
		val[k]     = NULL;
		val_len[k] = 0;
	}
	if (!mpraw_map(p, len, &i, &pairs))
		return false;
	for (uint64_t pair = 0; pair < pairs; pair++) {
		size_t      ks = i, hit = n;
		const char *key;
		size_t      klen;
		if (!mpraw_skip(p, len, &i))
			return false;
		if (mpraw_str(p + ks, i - ks, &key, &klen))
			for (size_t k = 0; k < n && hit == n; k++)
				if (val[k] == NULL && strlen(names[k]) == klen
				    && memcmp(names[k], key, klen) == 0)
					hit = k;
		size_t vs = i;
		if (!mpraw_skip(p, len, &i))
			return false;
		if (hit < n) {
			val[hit]     = p + vs;
			val_len[hit] = i - vs;
		}
	}
	*at = i;
	return true;
}

/* A projection's answer, runs[i] = {applied, state | deleted, failed},
 * read in place (answer_checked first): each state copied from the answer
 * as it is, not unpacked into objects and packed again (protocol 1's
 * take_state). */
static bool
decode_runs_raw(slot *s, const unsigned char *p, size_t len, remote_resp *bad)
{
	/* each map walked once, its fields picked on the way (not looked up
	 * one by one, each lookup walking what comes before it again) */
	static const char *const top[] = { "call", "runs" };
	static const char *const fields[]
	    = { "applied", "state", "deleted", "failed" };
	const unsigned char *tv[2], *fv[4];
	size_t               tl[2], fvl[4], n, at = 0;
	uint64_t             u;
	if (!raw_map(p, len) || !raw_fields(p, len, &at, top, 2, tv, tl)) {
		malformed(bad, "not a msgpack map");
		return false;
	}
	const unsigned char *v  = tv[1];
	size_t               vl = tl[1];
	if (tv[0] == NULL || !raw_u64(tv[0], tl[0], &u)) {
		malformed(bad, "field 'call' is missing or not an integer");
		return false;
	}
	if (u != s->call) {
		malformed(bad,
		    "field 'call' is %" PRIu64 ", the call was %" PRIu64, u,
		    s->call);
		return false;
	}
	at = 0;
	if (v == NULL
	    || mpraw_header(v, vl, &at, &u, &(uint64_t) { 0 })
	        != MPRAW_ARRAY) {
		malformed(bad, "field 'runs' is missing or not an array");
		return false;
	}
	if (u != s->n_runs) {
		malformed(bad, "%u runs answered, the call had %zu",
		    (unsigned) u, s->n_runs);
		return false;
	}
	const unsigned char *runs = v;
	size_t               rlen = vl, i = 0;
	for (size_t k = 0; k < s->n_runs; k++) {
		uint64_t applied;
		if (at >= rlen || !raw_map(runs + at, rlen - at)
		    || !raw_fields(runs, rlen, &at, fields, 4, fv, fvl)) {
			malformed(bad, "run %zu is not a map", k);
			return false;
		}
		const unsigned char *ap = fv[0], *st = fv[1], *del = fv[2],
		                    *fl = fv[3];
		size_t apl = fvl[0], stl = fvl[1], dell = fvl[2], fll = fvl[3];
		n = s->run_len[k];
		if (ap == NULL || !raw_u64(ap, apl, &applied) || applied > n) {
			malformed(bad,
			    "run %zu: 'applied' is missing, not a uint or "
			    "over "
			    "its %u events",
			    k, (unsigned) n);
			return false;
		}
		bool has_st  = st != NULL;
		bool has_del = del != NULL;
		bool has_fl  = fl != NULL;
		bool deleted = false;
		if (has_del && !mpraw_bool(del, dell, &deleted)) {
			malformed(bad, "run %zu: 'deleted' is not a bool", k);
			return false;
		}
		if (applied > 0 && !deleted
		    && (!has_st || !raw_map(st, stl))) {
			malformed(bad,
			    "run %zu: %u events applied, but no 'state' map "
			    "(or 'deleted': true)",
			    k, (unsigned) applied);
			return false;
		}
		if (applied < n && (!has_fl || !raw_map(fl, fll))) {
			malformed(bad,
			    "run %zu: %u of %u events applied, but no "
			    "'failed' map",
			    k, (unsigned) applied, (unsigned) n);
			return false;
		}
		for (uint32_t j = 0; j < n; j++, i++) {
			answer *a = &s->blk->a[i];
			if (j + 1 < applied) {
				a->outcome = REMOTE_APPLIED;
			} else if (j + 1 == applied) {
				if (deleted) {
					a->outcome = REMOTE_DELETE;
				} else if ((a->state = malloc(stl)) == NULL) {
					malformed(bad, "out of memory");
					return false;
				} else {
					memcpy(a->state, st, stl);
					a->state_len = (uint32_t) stl;
					a->outcome   = REMOTE_REPLACE;
				}
			} else if (j == applied) {
				/* a failure: rare, read by msgpack-c */
				msgpack_zone   z;
				msgpack_object fo;
				remote_resp    r;
				size_t         off = 0;
				memset(&r, 0, sizeof(r));
				if (!msgpack_zone_init(&z, 512)) {
					malformed(bad, "out of memory");
					return false;
				}
				bool ok = msgpack_unpack((const char *) fl,
				              fll, &off, &z, &fo)
				        == MSGPACK_UNPACK_SUCCESS
				    && decode_failure(&fo, &r);
				msgpack_zone_destroy(&z);
				if (!ok) {
					resp_reason(bad, "%s", r.reason);
					bad->outcome = REMOTE_FAILED;
					bad->retry   = true;
					return false;
				}
				ans_set(a, &r);
			} else {
				ans_skipped(a);
			}
		}
	}
	return true;
}

/* A filter's answer: outcomes[i], one per event. */
static bool
decode_outcomes(slot *s, const msgpack_object *root, remote_resp *bad)
{
	const msgpack_object *outs
	    = answer_array(root, "outcomes", s->blk->n, " events", bad);
	if (outs == NULL)
		return false;
	for (size_t i = 0; i < s->blk->n; i++) {
		const msgpack_object *m = &outs->via.array.ptr[i];
		remote_resp           r;
		r.state          = NULL;
		r.state_len      = 0;
		r.retry          = false;
		r.retry_after_ms = 0;
		r.partition[0]   = '\0';
		r.reason[0]      = '\0';
		if (m->type != MSGPACK_OBJECT_MAP) {
			malformed(bad, "outcome %zu is not a map", i);
			return false;
		}
		if (!decode_outcome(s->kind, s->fkind, m, &r)) {
			malformed(bad, "outcome %zu: %s", i,
			    r.reason + strlen("malformed answer: "));
			return false;
		}
		ans_set(&s->blk->a[i], &r);
	}
	return true;
}

/* Decode the answer to s's protocol 2 call into its events' answers.
 * @return false when it was malformed: every event ends as
 * batch_fail_all says, with the reason in *bad. */
static bool
decode_batch(slot *s, const void *body, size_t len, remote_resp *bad)
{
	msgpack_zone   zone;
	msgpack_object root;
	bool           ok = false;
	memset(bad, 0, sizeof(*bad));
	if (s->kind == DEF_PROJECTION) {
		ok = answer_checked(body, len, bad)
		    && decode_runs_raw(s, body, len, bad);
		if (!ok)
			batch_fail_all(s, bad);
		return ok;
	}
	if (!msgpack_zone_init(&zone, 4096)) {
		malformed(bad, "out of memory");
		batch_fail_all(s, bad);
		return false;
	}
	if (decode_root(s, body, len, &zone, &root, bad) != NULL)
		ok = decode_outcomes(s, &root, bad);
	msgpack_zone_destroy(&zone);
	if (!ok)
		batch_fail_all(s, bad);
	return ok;
}

/* ---- slots: one call at a time on an NNG context ---- */

static void slot_cb(void *arg);
static void hello_cb(slot *s, int rv, nng_msg *msg);

slot *
remote_slot_alloc(remote_proc *rp)
{
	slot *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->rp = rp;
	if (nng_aio_alloc(&s->aio, slot_cb, s) != 0) {
		free(s);
		return NULL;
	}
	if (nng_ctx_open(&s->ctx, rp->sock) != 0) {
		nng_aio_free(s->aio);
		free(s);
		return NULL;
	}
	/* Never resend by timer: a resent call could be handled twice. */
	nng_ctx_set_ms(s->ctx, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	return s;
}

/* Record s among rp's slots (with rp->mu). */
bool
remote_slot_track(remote_proc *rp, slot *s)
{
	if (rp->n_slots == rp->cap_slots) {
		size_t ncap = rp->cap_slots ? rp->cap_slots * 2 : 16;
		slot **a    = realloc(rp->slots, ncap * sizeof(*a));
		slot **f    = realloc(rp->free_slots, ncap * sizeof(*f));
		if (a != NULL)
			rp->slots = a;
		if (f != NULL)
			rp->free_slots = f;
		if (a == NULL || f == NULL)
			return false;
		rp->cap_slots = ncap;
	}
	rp->slots[rp->n_slots++] = s;
	return true;
}

/* Send the message on s (claimed, fields set). Outside rp->mu. */
static void
slot_send(slot *s, nng_msg *msg, uint32_t timeout_ms)
{
	remote_proc *rp = s->rp;
	s->sent_ns      = mono_ns();
	nng_aio_set_msg(s->aio, msg);
	nng_aio_set_timeout(s->aio, (nng_duration) timeout_ms);
	nng_ctx_send(s->ctx, s->aio);
	/* An abort that came between claiming and sending found nothing
	 * to cancel: cancel now. */
	pthread_mutex_lock(&rp->mu);
	bool abort = s->abort != ABORT_NONE;
	pthread_mutex_unlock(&rp->mu);
	if (abort)
		nng_aio_cancel(s->aio);
}

/* Mark the busy slots (of one caller, or all with NULL) aborted, collect
 * them into out (room for rp->n_slots). With rp->mu. */
static size_t
slots_abort(remote_proc *rp, const remote_caller *only, int why, slot **out)
{
	size_t n = 0;
	for (size_t i = 0; i < rp->n_slots; i++) {
		slot *s = rp->slots[i];
		if (!s->busy || (only != NULL && s->owner != only))
			continue;
		if (s->abort == ABORT_NONE)
			s->abort = why;
		out[n++] = s;
	}
	return n;
}

static void
slots_cancel(slot **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		nng_aio_cancel(list[i]->aio);
}

/* Abort every call in flight (a disconnect, or stopping). With rp->mu
 * NOT held. */
void
remote_abort_all(remote_proc *rp, int why)
{
	pthread_mutex_lock(&rp->mu);
	slot **list = rp->n_slots ? malloc(rp->n_slots * sizeof(*list)) : NULL;
	size_t n    = list != NULL ? slots_abort(rp, NULL, why, list) : 0;
	pthread_mutex_unlock(&rp->mu);
	slots_cancel(list, n);
	free(list);
}

static void set_last_error(remote_proc *rp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
set_last_error(remote_proc *rp, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rp->last_error, sizeof(rp->last_error), fmt, ap);
	va_end(ap);
}

/* The outcome of a call that ended without an answer (nng result rv). */
static void
no_answer(const slot *s, int rv, uint32_t timeout_ms, remote_resp *r)
{
	if (s->abort == ABORT_CLOSED) {
		r->outcome = REMOTE_DISCONNECTED;
		resp_reason(r, "the runtime is stopping");
	} else if (s->abort == ABORT_DISCONNECTED || rv == NNG_ECONNRESET
	    || rv == NNG_ECLOSED || rv == NNG_ECONNSHUT) {
		r->outcome = REMOTE_DISCONNECTED;
		resp_reason(r, "the client disconnected");
	} else if (rv == NNG_ETIMEDOUT) {
		r->outcome = REMOTE_FAILED;
		r->retry   = true;
		resp_reason(r, "timed out after %u ms", timeout_ms);
	} else {
		r->outcome = REMOTE_FAILED;
		r->retry   = true;
		resp_reason(r, "the call failed: %s", nng_strerror(rv));
	}
}

/* Queue answer block b for caller c (with rp->mu): a call's answers, or
 * ones the runtime makes itself (their events counted in flight by
 * whoever made them). */
static void
queue_block(remote_caller *c, ablock *b)
{
	b->next = NULL;
	if (c->tail != NULL)
		c->tail->next = b;
	else
		c->head = b;
	c->tail = b;
	pthread_cond_broadcast(&c->cv);
}

/* A protocol 2 call ended (msg: its answer, or NULL with rv): every
 * event's answer goes to the caller's queue. */
static void
batch_cb(slot *s, int rv, nng_msg *msg)
{
	remote_proc *rp = s->rp;
	remote_resp  bad;
	bool         wellformed = true;
	if (msg != NULL) {
		wellformed = decode_batch(
		    s, nng_msg_body(msg), nng_msg_len(msg), &bad);
		nng_msg_free(msg);
	}
	pthread_mutex_lock(&rp->mu);
	if (msg == NULL) {
		memset(&bad, 0, sizeof(bad));
		bad.call = s->call;
		no_answer(s, rv, rp->timeout_ms, &bad);
		batch_fail_all(s, &bad);
		wellformed = bad.outcome != REMOTE_FAILED;
	} else {
		rp->last_activity_ms = mono_ms();
		hist_observe(&rp->call_latency, (uint64_t) (mono_ns() - s->sent_ns));
	}
	if (!wellformed) {
		rp->failed_calls++;
		set_last_error(rp, "call %" PRIu64 " (%u events): %s", s->call,
		    (unsigned) s->blk->n, bad.reason);
		log_debug("remote", "%s call %" PRIu64 ": %s", rp->id, s->call,
		    bad.reason);
	}
	remote_caller *c = s->owner;
	c->busy_slots--;
	rp->busy_calls--;
	queue_block(c, s->blk);
	free(s->run_len);
	s->blk                       = NULL;
	s->batched                   = false;
	s->run_len                   = NULL;
	s->n_runs                    = 0;
	s->owner                     = NULL;
	s->busy                      = false;
	s->recv_phase                = false;
	s->abort                     = ABORT_NONE;
	rp->free_slots[rp->n_free++] = s;
	pthread_mutex_unlock(&rp->mu);
}

static void
slot_cb(void *arg)
{
	slot        *s  = arg;
	remote_proc *rp = s->rp;
	int          rv = nng_aio_result(s->aio);
	nng_msg     *msg;
	remote_resp  r;

	if (!s->recv_phase) {
		/* the call was handed to the client's connection, or not */
		if (rv != 0) {
			nng_msg_free(nng_aio_get_msg(s->aio));
			nng_aio_set_msg(s->aio, NULL);
		} else {
			pthread_mutex_lock(&rp->mu);
			bool    go   = s->abort == ABORT_NONE && !rp->closing;
			int64_t left = s->deadline_ms - mono_ms();
			if (go)
				s->recv_phase = true;
			pthread_mutex_unlock(&rp->mu);
			if (go) {
				nng_aio_set_timeout(s->aio,
				    left > 0 ? (nng_duration) left : 1);
				nng_ctx_recv(s->ctx, s->aio);
				pthread_mutex_lock(&rp->mu);
				bool ab = s->abort != ABORT_NONE;
				pthread_mutex_unlock(&rp->mu);
				if (ab)
					nng_aio_cancel(s->aio);
				return;
			}
			rv = NNG_ECANCELED;
		}
	}

	memset(&r, 0, sizeof(r));
	r.call          = s->call;
	msg             = rv == 0 ? nng_aio_get_msg(s->aio) : NULL;
	bool wellformed = true;
	nng_aio_set_msg(s->aio, NULL);
	if (s->batched) {
		batch_cb(s, rv, msg);
		return;
	}
	if (s->is_hello) {
		hello_cb(s, rv, msg);
		return;
	}
	if (msg != NULL) {
		wellformed = decode_answer(
		    s, nng_msg_body(msg), nng_msg_len(msg), &r);
		nng_msg_free(msg);
	}

	bool     close_pipe = false;
	nng_pipe pipe       = NNG_PIPE_INITIALIZER;
	pthread_mutex_lock(&rp->mu);
	if (msg == NULL)
		no_answer(s, rv, rp->timeout_ms, &r);
	else
		rp->last_activity_ms = mono_ms();
	if (s->is_ping) {
		if (msg == NULL && r.outcome == REMOTE_FAILED && rp->has_pipe
		    && !rp->closing) {
			/* no pong in time: the client is gone or stuck */
			set_last_error(rp,
			    "no answer to a keep-alive ping within %u ms",
			    rp->timeout_ms);
			log_warn("remote",
			    "%s %s (%s): %s: disconnecting its client",
			    kind_word(rp->kind), rp->id, rp->cur->def.name,
			    rp->last_error);
			close_pipe = true;
			pipe       = rp->pipe;
		} else if (!wellformed) {
			log_debug("remote", "%s: keep-alive answer: %s",
			    rp->id, r.reason);
		}
	} else {
		remote_caller *c = s->owner;
		ablock        *b = s->blk;
		if (msg != NULL)
			hist_observe(&rp->call_latency,
			    (uint64_t) (mono_ns() - s->sent_ns));
		if (!wellformed
		    || (msg == NULL && r.outcome == REMOTE_FAILED)) {
			rp->failed_calls++;
			set_last_error(
			    rp, "call %" PRIu64 ": %s", r.call, r.reason);
			log_debug("remote", "%s call %" PRIu64 ": %s", rp->id,
			    r.call, r.reason);
		}
		ans_set(&b->a[0], &r); /* its tag stays the request's */
		b->call = r.call;
		c->busy_slots--;
		rp->busy_calls--;
		queue_block(c, b);
		s->owner                     = NULL;
		s->blk                       = NULL;
		rp->free_slots[rp->n_free++] = s;
	}
	s->busy       = false;
	s->recv_phase = false;
	s->abort      = ABORT_NONE;
	pthread_mutex_unlock(&rp->mu);
	if (close_pipe)
		nng_pipe_close(pipe);
}

/* ---- connection: pipe events and keep-alive ---- */

/* How the client's address reads in status. */
static void
pipe_client(nng_pipe p, char *buf, size_t len)
{
	nng_sockaddr sa;
	char         host[INET6_ADDRSTRLEN] = "?";
	uint64_t     pid;
	buf[0] = '\0';
	if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) != 0)
		return;
	switch (sa.s_family) {
	case NNG_AF_INET:
		inet_ntop(AF_INET, &sa.s_in.sa_addr, host, sizeof(host));
		snprintf(buf, len, "tcp://%s:%u", host,
		    (unsigned) ntohs(sa.s_in.sa_port));
		break;
	case NNG_AF_INET6:
		inet_ntop(AF_INET6, sa.s_in6.sa_addr, host, sizeof(host));
		snprintf(buf, len, "tcp://[%s]:%u", host,
		    (unsigned) ntohs(sa.s_in6.sa_port));
		break;
	case NNG_AF_IPC:
	case NNG_AF_ABSTRACT:
		/* the path is our own; the peer's process says more */
		if (nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_PID, &pid) == 0)
			snprintf(buf, len, "ipc (pid %" PRIu64 ")", pid);
		else
			snprintf(buf, len, "ipc");
		break;
	case NNG_AF_INPROC:
		snprintf(buf, len, "inproc");
		break;
	default:
		snprintf(buf, len, "unknown");
		break;
	}
}

/* A call without an event: {call, session (unless NULL), op}. NULL when
 * out of memory. */
static nng_msg *
op_msg(uint64_t call, const uint64_t *session, const char *op)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	nng_msg        *msg = NULL;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, session != NULL ? 3 : 2);
	mp_pack_kv_u64(&pk, "call", call);
	if (session != NULL)
		mp_pack_kv_u64(&pk, "session", *session);
	mp_pack_kv_str(&pk, "op", op);
	if (sb.data != NULL && nng_msg_alloc(&msg, sb.size) == 0)
		memcpy(nng_msg_body(msg), sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	return msg;
}

/* ---- binding a connection to its registration (prove_clients) ---- */

/* Send hello on connection p (its first call): {call, op: "hello"}, no
 * session, so that a client that did not register cannot learn it. */
static void
hello_send(remote_proc *rp, nng_pipe p)
{
	slot    *s   = rp->hello;
	nng_msg *msg = NULL;
	pthread_mutex_lock(&rp->mu);
	bool go = !rp->closing && !s->busy && rp->has_pipe
	    && nng_pipe_id(rp->pipe) == nng_pipe_id(p);
	if (go) {
		rp->proving      = true;
		s->busy          = true;
		s->recv_phase    = false;
		s->abort         = ABORT_NONE;
		s->call          = ++rp->next_call;
		s->deadline_ms   = mono_ms() + rp->timeout_ms;
		s->hello_pipe    = (uint32_t) nng_pipe_id(p);
		s->hello_session = rp->session;
	}
	pthread_mutex_unlock(&rp->mu);
	if (!go) { /* the last hello has not ended yet: dial again */
		nng_pipe_close(p);
		return;
	}
	if ((msg = op_msg(s->call, NULL, "hello")) != NULL) {
		slot_send(s, msg, rp->timeout_ms);
		return;
	}
	pthread_mutex_lock(&rp->mu);
	s->busy     = false;
	rp->proving = false;
	pthread_mutex_unlock(&rp->mu);
	nng_pipe_close(p);
}

/* Whether msg answers hello s with its session; why not in why. */
static bool
hello_ok(const slot *s, nng_msg *msg, char *why, size_t len)
{
	msgpack_zone   zone;
	msgpack_object root;
	remote_resp    r;
	uint64_t       session = 0;
	bool           ok      = false;
	memset(&r, 0, sizeof(r));
	if (!msgpack_zone_init(&zone, 4096)) {
		snprintf(why, len, "out of memory");
		return false;
	}
	if (decode_root(
	        s, nng_msg_body(msg), nng_msg_len(msg), &zone, &root, &r)
	    == NULL)
		snprintf(why, len, "its answer to hello: %.200s", r.reason);
	else if (!outcome_is(field(&root, "outcome"), "hello"))
		snprintf(why, len,
		    "it did not answer hello with outcome 'hello' (a client "
		    "of an older library?)");
	else if (mp_get_u64(&root, "session", &session) != SL_OK
	    || session != s->hello_session)
		snprintf(why, len,
		    "its answer to hello does not carry the registration's "
		    "session");
	else
		ok = true;
	msgpack_zone_destroy(&zone);
	return ok;
}

/* hello's answer (msg), or its end without one (rv): the connection is
 * the registration's client's, or it is closed. */
static void
hello_cb(slot *s, int rv, nng_msg *msg)
{
	remote_proc *rp       = s->rp;
	char         why[300] = "", client[160];
	bool         ok = msg != NULL && hello_ok(s, msg, why, sizeof(why));
	if (msg == NULL)
		snprintf(why, sizeof(why), "no answer to hello: %s",
		    rv == NNG_ETIMEDOUT ? "timed out" : nng_strerror(rv));
	nng_msg_free(msg);
	nng_pipe pipe = NNG_PIPE_INITIALIZER;
	pthread_mutex_lock(&rp->mu);
	bool current = rp->proving && !rp->closing && rp->has_pipe
	    && (uint32_t) nng_pipe_id(rp->pipe) == s->hello_pipe;
	if (current) {
		rp->proving = false;
		pipe        = rp->pipe;
		if (ok) {
			rp->connected = true;
			rp->connects++;
			rp->changed_at_ns    = ev_now_ns();
			rp->last_activity_ms = mono_ms();
			pthread_cond_broadcast(&rp->cv);
		} else {
			set_last_error(
			    rp, "a connection was refused: %s", why);
		}
	}
	snprintf(client, sizeof(client), "%s", rp->client);
	s->busy       = false;
	s->recv_phase = false;
	s->abort      = ABORT_NONE;
	pthread_mutex_unlock(&rp->mu);
	if (!current)
		return; /* gone meanwhile, or stopping */
	if (ok) {
		log_info("remote",
		    "%s %s: client connected (%s), it holds the "
		    "registration's session",
		    kind_word(rp->kind), rp->id, client);
		net_tls_log_peer("remote", pipe); /* tls+tcp:// only */
		return;
	}
	char line[768];
	snprintf(line, sizeof(line),
	    "remote %s %s: connection %d (%s) closed: %s", kind_word(rp->kind),
	    rp->id, nng_pipe_id(pipe), client, why);
	auth_log_refusal(NULL, line);
	nng_pipe_close(pipe);
}

/*
 * One client at a time, on the current URL only: a pipe from an older
 * listener (a client whose registration was taken over) or a second one
 * is closed before the socket sees it.
 */
void
remote_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	remote_proc *rp = arg;
	char         client[160];
	bool         was = false;

	switch (ev) {
	case NNG_PIPE_EV_ADD_PRE: {
		int lid = nng_listener_id(nng_pipe_listener(p));
		pthread_mutex_lock(&rp->mu);
		bool ok = !rp->closing && !rp->has_pipe && rp->listening
		    && lid == nng_listener_id(rp->listener);
		if (ok) {
			rp->has_pipe = true;
			rp->pipe     = p;
		}
		pthread_mutex_unlock(&rp->mu);
		if (!ok)
			nng_pipe_close(p);
		break;
	}
	case NNG_PIPE_EV_ADD_POST:
		pipe_client(p, client, sizeof(client));
		pthread_mutex_lock(&rp->mu);
		if (rp->has_pipe && nng_pipe_id(rp->pipe) == nng_pipe_id(p)
		    && rp->hello != NULL) {
			/* connected once it answers hello */
			snprintf(rp->client, sizeof(rp->client), "%s", client);
			pthread_mutex_unlock(&rp->mu);
			hello_send(rp, p);
			break;
		}
		if (rp->has_pipe && nng_pipe_id(rp->pipe) == nng_pipe_id(p)) {
			was           = true;
			rp->connected = true;
			rp->connects++;
			rp->changed_at_ns    = ev_now_ns();
			rp->last_activity_ms = mono_ms();
			snprintf(rp->client, sizeof(rp->client), "%s", client);
			pthread_cond_broadcast(&rp->cv);
		}
		pthread_mutex_unlock(&rp->mu);
		if (was) {
			log_info("remote", "%s %s: client connected (%s)",
			    kind_word(rp->kind), rp->id, client);
			net_tls_log_peer("remote", p); /* tls+tcp:// only */
		}
		break;
	case NNG_PIPE_EV_REM_POST:
		pthread_mutex_lock(&rp->mu);
		if (rp->has_pipe && nng_pipe_id(rp->pipe) == nng_pipe_id(p)) {
			was               = rp->connected;
			/* a hello unanswered: req0 would send it again on the
			 * next connection (aborted below) */
			was               = was || rp->proving;
			rp->proving       = false;
			rp->has_pipe      = false;
			rp->connected     = false;
			rp->changed_at_ns = ev_now_ns();
			rp->gone_since_ms = mono_ms();
			rp->client[0]     = '\0';
			if (was && rp->last_error[0] == '\0')
				set_last_error(rp, "the client disconnected");
			pthread_cond_broadcast(&rp->cv);
		}
		pthread_mutex_unlock(&rp->mu);
		if (was) {
			log_info("remote",
			    "%s %s: client disconnected; its processors wait",
			    kind_word(rp->kind), rp->id);
			remote_abort_all(rp, ABORT_DISCONNECTED);
		}
		break;
	default:
		break;
	}
}

/* The timer's period: keep-alive pings go out between keepalive_ms and
 * 1.5 times that after the last traffic. A connection with calls in flight
 * is not pinged: their timeouts already tell a client that does not
 * answer, and a client busy with a slow call is not cut off for it. */
nng_duration
remote_tick_ms(const remote_proc *rp)
{
	uint32_t t = rp->keepalive_ms / 2;
	return t < 5 ? 5 : t > 1000 ? 1000 : (nng_duration) t;
}

void
remote_timer_cb(void *arg)
{
	remote_proc *rp  = arg;
	int          rv  = nng_aio_result(rp->timer);
	nng_msg     *msg = NULL;
	slot        *s   = rp->ping;

	if (rv != 0 && rv != NNG_ETIMEDOUT)
		return; /* stopped */
	pthread_mutex_lock(&rp->mu);
	if (rp->closing) {
		pthread_mutex_unlock(&rp->mu);
		return;
	}
	int64_t now  = mono_ms();
	bool    ping = rp->connected && !s->busy && rp->busy_calls == 0
	    && now - rp->last_activity_ms >= (int64_t) rp->keepalive_ms;
	if (ping) {
		s->busy              = true;
		s->recv_phase        = false;
		s->abort             = ABORT_NONE;
		s->call              = ++rp->next_call;
		s->deadline_ms       = now + rp->timeout_ms;
		rp->last_activity_ms = now;
	}
	uint64_t session = rp->session;
	pthread_mutex_unlock(&rp->mu);

	if (ping) {
		if ((msg = op_msg(s->call, &session, "ping")) != NULL) {
			slot_send(s, msg, rp->timeout_ms);
		} else {
			pthread_mutex_lock(&rp->mu);
			s->busy = false;
			pthread_mutex_unlock(&rp->mu);
		}
	}
	nng_sleep_aio(remote_tick_ms(rp), rp->timer);
}

/* ---- the processors' side: callers and calls ---- */

int
remote_caller_open(remote_proc *r, remote_caller **out)
{
	*out = NULL;
	if (r == NULL)
		return SL_EINVAL;
	remote_caller *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return SL_ENOMEM;
	if (!msgpack_zone_init(&c->zone, 4096)) {
		free(c);
		return SL_ENOMEM;
	}
	c->rp = r;
	cond_init_mono(&c->cv);
	msgpack_sbuffer_init(&c->buf);
	msgpack_packer_init(&c->pk, &c->buf, msgpack_sbuffer_write);
	pthread_mutex_lock(&r->mu);
	c->next    = r->callers;
	r->callers = c;
	pthread_mutex_unlock(&r->mu);
	*out = c;
	return SL_OK;
}

static void ob_reset(obatch *ob);
static void ob_drop(remote_caller *c, const char *why);

void
remote_caller_free(remote_caller *c)
{
	ob_reset(&c->ob);
	free(c->ob.runs);
	free(c->ob.index);
	free(c->ob.tags);
	free(c->ob.ev_at);
	free(c->ob.ev_next);
	free(c->ob.tenant);
	remote_ablock_free(c->ob.blk); /* none of its answers made yet */
	msgpack_sbuffer_destroy(&c->ob.evs);
	msgpack_sbuffer_destroy(&c->ob.retries);
	msgpack_sbuffer_destroy(&c->ob.heads);
	for (ablock *b = c->mine, *next; b != NULL; b = next) {
		next = b->next;
		remote_ablock_free(b);
	}
	for (ablock *b = c->head, *next; b != NULL; b = next) {
		next = b->next;
		remote_ablock_free(b);
	}
	pthread_cond_destroy(&c->cv);
	msgpack_zone_destroy(&c->zone);
	msgpack_sbuffer_destroy(&c->buf);
	free(c);
}

void
remote_caller_close(remote_caller *c)
{
	if (c == NULL)
		return;
	remote_proc *rp = c->rp;
	pthread_mutex_lock(&rp->mu);
	c->closing = true;
	pthread_mutex_unlock(&rp->mu);
	if (c->ob.n > 0)
		ob_drop(c, "the runtime is stopping");
	pthread_mutex_lock(&rp->mu);
	slot **list = rp->n_slots ? malloc(rp->n_slots * sizeof(*list)) : NULL;
	size_t n = list != NULL ? slots_abort(rp, c, ABORT_CLOSED, list) : 0;
	pthread_mutex_unlock(&rp->mu);
	slots_cancel(list, n);
	free(list);
	/* Its calls end (cancelled, or by their timeout if the list could
	 * not be made); their answers are dropped with it. */
	pthread_mutex_lock(&rp->mu);
	while (c->busy_slots > 0)
		pthread_cond_wait(&c->cv, &rp->mu);
	for (remote_caller **pp = &rp->callers; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	pthread_mutex_unlock(&rp->mu);
	remote_caller_free(c);
}

/* Pack call `id` into c->buf. @return false if the stored event cannot
 * be decoded. */
static bool
pack_call(remote_caller *c, const remote_req *req, uint64_t id,
    uint64_t session, def_kind kind)
{
	ev_view         ev;
	msgpack_packer *pk = &c->pk;
	msgpack_sbuffer_clear(&c->buf);
	msgpack_pack_map(pk, kind == DEF_PROJECTION ? 8 : 6);
	mp_pack_kv_u64(pk, "call", id);
	mp_pack_kv_u64(pk, "session", session);
	mp_pack_kv_str(
	    pk, "op", kind == DEF_PROJECTION ? "project" : "filter");
	mp_pack_kv_str(pk, "tenant", req->tenant);
	mp_pack_cstr(pk, "event");
	/* as the API's read op shows it: from the stored bytes, else from
	 * the decoded event */
	if (ev_pack_wire_raw(pk, req->event, req->event_len, req->position, 0)
	    != SL_OK) {
		msgpack_zone_clear(&c->zone);
		if (ev_decode(req->event, req->event_len, req->position,
		        &c->zone, &ev)
		    != SL_OK)
			return false;
		ev_pack_wire(pk, &ev);
	}
	if (kind == DEF_PROJECTION) {
		mp_pack_kv_str(pk, "key", req->key != NULL ? req->key : "");
		mp_pack_cstr(pk, "state");
		if (req->state != NULL && req->state_len > 0)
			msgpack_sbuffer_write(
			    &c->buf, req->state, req->state_len);
		else
			msgpack_pack_map(pk, 0);
	}
	mp_pack_cstr(pk, "retry");
	msgpack_pack_map(pk, 2);
	mp_pack_kv_u64(pk, "attempt", req->attempt);
	mp_pack_kv_str(
	    pk, "reason", req->last_reason != NULL ? req->last_reason : "");
	return c->buf.data != NULL;
}

/* ---- protocol 2: the open batch ---- */

/* Buffers kept between batches up to this size: a run's (there are up to
 * `batch` of them) and the one a call is packed in. */
#define SBUF_KEEP      (16u << 10)
#define SBUF_KEEP_CALL (1u << 20)

/* Empty a buffer for the next batch; one that a large event grew is given
 * back rather than kept for good. */
static void
sbuf_reuse(msgpack_sbuffer *sb, size_t keep)
{
	if (sb->alloc > keep) {
		msgpack_sbuffer_destroy(sb);
		msgpack_sbuffer_init(sb);
	} else {
		msgpack_sbuffer_clear(sb);
	}
}

/* Empty the open batch (its events' answers were handed on, or there
 * were none). Keeps the runs' buffers for the next batch. */
static void
ob_reset(obatch *ob)
{
	ob->n_runs = 0;
	ob->n      = 0;
	ob->bytes  = 0;
	sbuf_reuse(&ob->evs, SBUF_KEEP_CALL);
	sbuf_reuse(&ob->retries, SBUF_KEEP);
	sbuf_reuse(&ob->heads, SBUF_KEEP_CALL);
	if (ob->index != NULL)
		memset(ob->index, 0, ob->index_cap * sizeof(*ob->index));
}

static uint64_t
key_hash(const char *k, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char) k[i]) * 0x100000001b3ULL;
	return h;
}

/* The run of key in the open batch, or where a new one goes (*slot_i). */
static brun *
ob_find(obatch *ob, const char *key, size_t klen, size_t *slot_i)
{
	size_t m = ob->index_cap - 1;
	for (size_t i = key_hash(key, klen) & m;; i = (i + 1) & m) {
		int32_t v = ob->index[i];
		if (v == 0) {
			*slot_i = i;
			return NULL;
		}
		brun *u = &ob->runs[v - 1];
		if (u->klen == klen
		    && memcmp(ob->heads.data + u->key_off, key, klen) == 0)
			return u;
	}
}

/* Pack the event of req as the wire shows it into sb. @return false if
 * the stored event cannot be decoded. */
static bool
pack_event(remote_caller *c, const remote_req *req, msgpack_sbuffer *sb)
{
	ev_view        ev;
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	/* the stored bytes straight to the wire form, written in place
	 * (metadata and content copied as they are); a record it does not
	 * take is packed from its decoded view, which says what is wrong */
	if (mp_sbuf_room(sb, EV_WIRE_RAW_BOUND(req->event_len), 4096) == NULL)
		return false;
	unsigned char *o = (unsigned char *) sb->data + sb->size;
	/* read in place already (the processor's decode): not again */
	size_t n = req->raw != NULL && req->view != NULL
	    ? ev_wire_peeked(req->raw, req->position, 0, req->view->id_text, o)
	    : ev_wire_raw(req->event, req->event_len, req->position, 0, o);
	if (n > 0) {
		sb->size += n;
		return true;
	}
	if (req->view == NULL) {
		msgpack_zone_clear(&c->zone);
		if (ev_decode(req->event, req->event_len, req->position,
		        &c->zone, &ev)
		    != SL_OK)
			return false;
	}
	ev_pack_wire(&pk, req->view != NULL ? req->view : &ev);
	return true;
}

/* The most bytes run_head packs for req. */
static size_t
run_head_bound(const remote_req *req, size_t klen)
{
	size_t rlen = req->last_reason != NULL ? strlen(req->last_reason) : 0;
	return klen + req->state_len + rlen + 64;
}

/* Pack the head of u, a new run of key for req (its key, state and retry
 * state, as the call carries them) into ob->heads. */
static bool
run_head(
    obatch *ob, brun *u, const remote_req *req, const char *key, size_t klen)
{
	msgpack_sbuffer *h = &ob->heads;
	const char *reason = req->last_reason != NULL ? req->last_reason : "";
	if (mp_sbuf_room(h, run_head_bound(req, klen), 16384) == NULL)
		return false;
	unsigned char *o0 = (unsigned char *) h->data + h->size, *o = o0;
	o          = MPW_CSTR(o, "key");
	o          = mpw_hdr(o, 0xa0, 32, 0xd9, 0xda, klen);
	u->key_off = h->size + (size_t) (o - o0);
	u->klen    = klen;
	o          = mpw_raw(o, key, klen);
	o          = MPW_CSTR(o, "state");
	if (req->state != NULL && req->state_len > 0)
		o = mpw_raw(o, req->state, req->state_len);
	else
		o = mpw_map(o, 0);
	o           = MPW_CSTR(o, "retry");
	o           = mpw_map(o, 2);
	o           = MPW_CSTR(o, "attempt");
	o           = mpw_uint(o, req->attempt);
	o           = MPW_CSTR(o, "reason");
	o           = mpw_str(o, reason, strlen(reason));
	u->head_off = h->size;
	u->head_len = (size_t) (o - o0);
	h->size += u->head_len;
	return true;
}

/* Add req's event to the open batch (protocol 2). */
static int
batch_add(
    remote_caller *c, const remote_req *req, uint32_t epoch, uint32_t batch)
{
	remote_proc *rp = c->rp;
	obatch      *ob = &c->ob;
	size_t       before;
	brun        *u  = NULL;
	size_t       at = 0;

	if (ob->n >= batch)
		return SL_EFULL;
	if (ob->n > 0 && ob->epoch != epoch)
		return SL_EFULL; /* the flush drops it */
	if (ob->index_cap < 2 * (size_t) batch || ob->cap_ev < batch) {
		/* a larger batch (a new client's): only while none is open */
		if (ob->n > 0)
			return SL_EFULL;
		size_t cap = 16, nev = batch > ob->cap_ev ? batch : ob->cap_ev;
		while (cap < 2 * (size_t) batch)
			cap *= 2;
		int32_t  *ix  = calloc(cap, sizeof(*ix));
		size_t   *at_ = malloc(nev * sizeof(*at_));
		uint64_t *tg  = malloc(nev * sizeof(*tg));
		uint32_t *nx  = malloc(nev * sizeof(*nx));
		if (ix == NULL || at_ == NULL || tg == NULL || nx == NULL) {
			free(ix);
			free(at_);
			free(tg);
			free(nx);
			return SL_ENOMEM;
		}
		free(ob->index);
		free(ob->ev_at);
		free(ob->tags);
		free(ob->ev_next);
		remote_ablock_free(ob->blk); /* too small now */
		ob->blk       = NULL;
		ob->index     = ix;
		ob->index_cap = cap;
		ob->ev_at     = at_;
		ob->tags      = tg;
		ob->ev_next   = nx;
		ob->cap_ev    = nev;
	}
	/* the answers' block: made before the first event goes in, so that
	 * every event added can be answered without allocating */
	if (ob->blk == NULL && (ob->blk = ablock_new(ob->cap_ev)) == NULL)
		return SL_ENOMEM;

	if (rp->kind == DEF_PROJECTION) {
		const char *key  = req->key != NULL ? req->key : "";
		size_t      klen = strlen(key);
		u                = ob_find(ob, key, klen, &at);
		size_t extra     = u == NULL ? run_head_bound(req, klen) : 0;
		if (u == NULL && ob->n_runs == ob->cap_runs) {
			size_t ncap = ob->cap_runs ? ob->cap_runs * 2 : 16;
			brun  *nr   = realloc(ob->runs, ncap * sizeof(*nr));
			if (nr == NULL)
				return SL_ENOMEM;
			ob->runs     = nr;
			ob->cap_runs = ncap;
		}
		before = ob->evs.size;
		if (!pack_event(c, req, &ob->evs))
			return SL_EINVAL;
		size_t grew = ob->evs.size - before + extra;
		if (ob->n > 0 && ob->bytes + grew > REMOTE_MAX_CALL_BYTES) {
			ob->evs.size = before; /* not this batch's */
			return SL_EFULL;
		}
		uint32_t ev = (uint32_t) ob->n;
		if (u == NULL) {
			u = &ob->runs[ob->n_runs];
			if (!run_head(ob, u, req, key, klen)) {
				ob->evs.size = before;
				return SL_ENOMEM;
			}
			u->first      = ev;
			u->n          = 0;
			ob->index[at] = (int32_t) (ob->n_runs + 1);
			ob->n_runs++;
		} else {
			ob->ev_next[u->last] = ev;
		}
		u->last         = ev;
		ob->ev_next[ev] = UINT32_MAX;
		ob->ev_at[ev]   = before;
		ob->tags[ev]    = req->tag;
		u->n++;
		ob->bytes += grew;
	} else {
		before = ob->evs.size;
		if (!pack_event(c, req, &ob->evs))
			return SL_EINVAL;
		size_t grew = ob->evs.size - before + 64;
		if (ob->n > 0 && ob->bytes + grew > REMOTE_MAX_CALL_BYTES) {
			ob->evs.size = before;
			return SL_EFULL;
		}
		ob->ev_at[ob->n] = before;
		ob->tags[ob->n]  = req->tag;
		msgpack_packer pk;
		msgpack_packer_init(&pk, &ob->retries, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, 2);
		mp_pack_kv_u64(&pk, "attempt", req->attempt);
		mp_pack_kv_str(&pk, "reason",
		    req->last_reason != NULL ? req->last_reason : "");
		ob->bytes += grew;
	}
	if (ob->n == 0) {
		ob->epoch = epoch;
		ob->limit = batch;
	}
	ob->n++;
	return SL_OK;
}

/* The open batch as call id, written straight into a new message (its
 * parts were packed as they were added: one copy of each). NULL when out
 * of memory. */
static nng_msg *
batch_msg(remote_caller *c, uint64_t id, uint64_t session, def_kind kind,
    const char *tenant)
{
	obatch *ob   = &c->ob;
	size_t  tlen = strlen(tenant);
	/* the envelope, each run's map, key names and headers at their
	 * widest; the parts at their sizes */
	size_t bound = 128 + tlen;
	if (kind == DEF_PROJECTION)
		for (size_t i = 0; i < ob->n_runs; i++)
			bound += 32 + ob->runs[i].head_len;
	bound += ob->evs.size + ob->retries.size;
	nng_msg *msg;
	if (nng_msg_alloc(&msg, bound) != 0)
		return NULL;
	unsigned char *o0 = nng_msg_body(msg), *o = o0;
	o = mpw_map(o, kind == DEF_PROJECTION ? 5 : 6);
	o = MPW_CSTR(o, "call");
	o = mpw_uint(o, id);
	o = MPW_CSTR(o, "session");
	o = mpw_uint(o, session);
	o = MPW_CSTR(o, "op");
	o = kind == DEF_PROJECTION ? MPW_CSTR(o, "project")
	                           : MPW_CSTR(o, "filter");
	o = MPW_CSTR(o, "tenant");
	o = mpw_str(o, tenant, tlen);
	if (kind == DEF_PROJECTION) {
		size_t n_runs = 0;
		for (size_t i = 0; i < ob->n_runs; i++)
			n_runs += ob->runs[i].n > 0;
		o = MPW_CSTR(o, "runs");
		o = mpw_array(o, n_runs);
		for (size_t i = 0; i < ob->n_runs; i++) {
			brun *u = &ob->runs[i];
			if (u->n == 0)
				continue;
			o = mpw_map(o, 4);
			o = mpw_raw(
			    o, ob->heads.data + u->head_off, u->head_len);
			o = MPW_CSTR(o, "events");
			o = mpw_array(o, u->n);
			for (uint32_t e = u->first; e != UINT32_MAX;
			     e          = ob->ev_next[e]) {
				size_t end = e + 1 < ob->n ? ob->ev_at[e + 1]
				                           : ob->evs.size;
				o = mpw_raw(o, ob->evs.data + ob->ev_at[e],
				    end - ob->ev_at[e]);
			}
		}
	} else {
		o = MPW_CSTR(o, "events");
		o = mpw_array(o, ob->n);
		o = mpw_raw(o, ob->evs.data, ob->evs.size);
		o = MPW_CSTR(o, "retries");
		o = mpw_array(o, ob->n);
		o = mpw_raw(o, ob->retries.data, ob->retries.size);
	}
	nng_msg_chop(msg, bound - (size_t) (o - o0));
	return msg;
}

/* Answer every event of the open batch REMOTE_DISCONNECTED (it cannot be
 * sent) and empty it. */
static void
ob_drop(remote_caller *c, const char *why)
{
	remote_proc *rp = c->rp;
	obatch      *ob = &c->ob;
	ablock      *b  = ob->blk; /* there since the first event */
	for (size_t j = 0; j < ob->n; j++) {
		ans_init(&b->a[j], ob->tags[j]);
		ans_runtime(&b->a[j], REMOTE_DISCONNECTED, false, why);
	}
	b->n    = (uint32_t) ob->n;
	ob->blk = NULL;
	ob_reset(ob);
	pthread_mutex_lock(&rp->mu);
	queue_block(c, b); /* its events were counted when added */
	pthread_mutex_unlock(&rp->mu);
}

/* A free slot of rp, or a new one; NULL when out of memory. */
static slot *
slot_get(remote_proc *rp)
{
	pthread_mutex_lock(&rp->mu);
	slot *s = rp->n_free > 0 ? rp->free_slots[--rp->n_free] : NULL;
	pthread_mutex_unlock(&rp->mu);
	if (s != NULL)
		return s;
	s = remote_slot_alloc(rp);
	pthread_mutex_lock(&rp->mu);
	bool ok = s != NULL && remote_slot_track(rp, s);
	pthread_mutex_unlock(&rp->mu);
	if (!ok && s != NULL) {
		nng_ctx_close(s->ctx);
		nng_aio_free(s->aio);
		free(s);
		s = NULL;
	}
	return s;
}

/* Slot s carries call id of caller c from now on (rp->mu held): its
 * deadline, the registration's and the caller's counts. @return the
 * call's timeout. The caller sets what the call holds. */
static uint32_t
slot_start_locked(remote_proc *rp, slot *s, remote_caller *c, uint64_t id,
    sl_filter_kind fkind)
{
	s->busy              = true;
	s->recv_phase        = false;
	s->abort             = ABORT_NONE;
	s->owner             = c;
	s->call              = id;
	s->kind              = rp->kind;
	s->fkind             = fkind;
	s->deadline_ms       = mono_ms() + rp->timeout_ms;
	rp->last_activity_ms = mono_ms();
	rp->calls++;
	rp->busy_calls++;
	c->busy_slots++;
	return rp->timeout_ms;
}

int
remote_call_flush(remote_caller *c)
{
	remote_proc *rp  = c->rp;
	obatch      *ob  = &c->ob;
	nng_msg     *msg = NULL;
	slot        *s;

	if (ob->n == 0) {
		ob_reset(ob); /* a run left empty (out of memory) */
		return SL_OK;
	}
	pthread_mutex_lock(&rp->mu);
	if (rp->closing || !rp->connected || c->closing
	    || rp->connects != ob->epoch) {
		pthread_mutex_unlock(&rp->mu);
		ob_drop(c, "the client disconnected");
		return SL_ECLOSED;
	}
	if (c->busy_slots >= rp->window) {
		pthread_mutex_unlock(&rp->mu);
		return SL_EFULL;
	}
	uint64_t       id      = ++rp->next_call;
	uint64_t       session = rp->session;
	sl_filter_kind fkind   = rp->cur->def.filter_kind;
	pthread_mutex_unlock(&rp->mu);

	size_t n_runs = 0;
	if (rp->kind == DEF_PROJECTION)
		for (size_t i = 0; i < ob->n_runs; i++)
			n_runs += ob->runs[i].n > 0;
	uint32_t *rl = n_runs ? malloc(n_runs * sizeof(*rl)) : NULL;
	if ((n_runs > 0 && rl == NULL)
	    || (msg = batch_msg(c, id, session, rp->kind,
	            ob->tenant != NULL ? ob->tenant : ""))
	        == NULL
	    || (s = slot_get(rp)) == NULL) {
		free(rl);
		if (msg != NULL)
			nng_msg_free(msg);
		ob_drop(c, "out of memory");
		return SL_ENOMEM;
	}
	/* the answers in the call's order: a projection's run by run */
	ablock *b = ob->blk;
	size_t  n = 0;
	if (rp->kind == DEF_PROJECTION) {
		size_t k = 0;
		for (size_t i = 0; i < ob->n_runs; i++) {
			brun *u = &ob->runs[i];
			if (u->n == 0)
				continue;
			rl[k++] = (uint32_t) u->n;
			for (uint32_t e = u->first; e != UINT32_MAX;
			     e          = ob->ev_next[e])
				ans_init(&b->a[n++], ob->tags[e]);
		}
	} else {
		for (; n < ob->n; n++)
			ans_init(&b->a[n], ob->tags[n]);
	}
	b->n    = (uint32_t) n;
	b->call = id;
	ob->blk = NULL;
	ob_reset(ob); /* the answers are the slot's now */

	pthread_mutex_lock(&rp->mu);
	if (rp->closing || !rp->connected || c->closing) {
		/* gone meanwhile: nothing sent */
		rp->free_slots[rp->n_free++] = s;
		for (size_t i = 0; i < n; i++)
			ans_runtime(&b->a[i], REMOTE_DISCONNECTED, false,
			    "the client disconnected");
		queue_block(c, b);
		pthread_mutex_unlock(&rp->mu);
		nng_msg_free(msg);
		free(rl);
		return SL_ECLOSED;
	}
	uint32_t timeout = slot_start_locked(rp, s, c, id, fkind);
	s->blk           = b;
	s->batched       = true;
	s->run_len       = rl;
	s->n_runs        = n_runs;
	pthread_mutex_unlock(&rp->mu);
	slot_send(s, msg, timeout);
	return SL_OK;
}

void
remote_call_discard(remote_caller *c)
{
	if (c->ob.n > 0)
		ob_drop(c, "the batch was given up");
}

size_t
remote_call_open(const remote_caller *c)
{
	return c->ob.n;
}

uint32_t
remote_protocol(const remote_proc *r)
{
	remote_proc *rp = (remote_proc *) r; /* the lock is not state */
	pthread_mutex_lock(&rp->mu);
	uint32_t v = rp->protocol;
	pthread_mutex_unlock(&rp->mu);
	return v;
}

uint32_t
remote_batch(const remote_proc *r)
{
	remote_proc *rp = (remote_proc *) r;
	pthread_mutex_lock(&rp->mu);
	uint32_t v = rp->protocol >= 2 ? rp->batch : 1;
	pthread_mutex_unlock(&rp->mu);
	return v;
}

/* The event of req is a record the log cannot decode: no client can help.
 * It is answered FAILED (no retry) at once, as the answer to call (0: a
 * batch's event). */
static int
undecodable(remote_caller *c, const remote_req *req, uint64_t call)
{
	char why[128];
	snprintf(why, sizeof(why),
	    "the event at position %" PRIu64 " cannot be decoded from the log",
	    req->position);
	ablock *b = ablock_new(1);
	if (b == NULL)
		return SL_ENOMEM;
	ans_init(&b->a[0], req->tag);
	ans_runtime(&b->a[0], REMOTE_FAILED, false, why);
	b->n    = 1;
	b->call = call;
	pthread_mutex_lock(&c->rp->mu);
	queue_block(c, b);
	c->in_flight++;
	pthread_mutex_unlock(&c->rp->mu);
	return SL_OK;
}

/* Protocol 2: add req's event to the open batch of a client seen at
 * epoch, which takes batch events a call. */
static int
batch_start(
    remote_caller *c, const remote_req *req, uint32_t epoch, uint32_t batch)
{
	/* in_flight and the open batch are this thread's alone */
	if (c->ob.n == 0 && c->ob.tenant == NULL
	    && (c->ob.tenant = strdup(req->tenant)) == NULL)
		return SL_ENOMEM;
	int rc = batch_add(c, req, epoch, batch);
	if (rc == SL_EINVAL)
		return undecodable(c, req, 0);
	if (rc == SL_OK)
		c->in_flight++; /* answered per event */
	return rc;
}

int
remote_call_start(remote_caller *c, const remote_req *req, uint64_t *call)
{
	remote_proc *rp = c->rp;
	nng_msg     *msg;
	slot        *s;

	*call = 0;
	/* Protocol 2 with a batch open: the registration was looked at (under
	 * its lock) for the batch's first event, and the flush looks again
	 * (a client gone meanwhile, or another one: the batch is dropped and
	 * answered "disconnected"), so its other events take no lock.
	 * c->closing is set by remote_caller_close, on this thread. */
	if (c->ob.n > 0 && !c->closing)
		return batch_start(c, req, c->ob.epoch, c->ob.limit);
	pthread_mutex_lock(&rp->mu);
	if (rp->closing || !rp->connected || c->closing) {
		pthread_mutex_unlock(&rp->mu);
		return SL_ECLOSED;
	}
	if (rp->protocol >= 2) {
		uint32_t epoch = rp->connects, batch = rp->batch;
		pthread_mutex_unlock(&rp->mu);
		return batch_start(c, req, epoch, batch);
	}
	if (c->in_flight >= rp->window) {
		pthread_mutex_unlock(&rp->mu);
		return SL_EFULL;
	}
	uint64_t       id      = ++rp->next_call;
	uint64_t       session = rp->session;
	sl_filter_kind fkind   = rp->cur->def.filter_kind;
	pthread_mutex_unlock(&rp->mu);

	if (!pack_call(c, req, id, session, rp->kind)) {
		*call = id;
		return undecodable(c, req, id);
	}
	ablock *b = ablock_new(1);
	if (b == NULL)
		return SL_ENOMEM;
	ans_init(&b->a[0], req->tag);
	b->n = 1;
	if (nng_msg_alloc(&msg, c->buf.size) != 0) {
		free(b);
		return SL_ENOMEM;
	}
	memcpy(nng_msg_body(msg), c->buf.data, c->buf.size);

	pthread_mutex_lock(&rp->mu);
	s = rp->n_free > 0 ? rp->free_slots[--rp->n_free] : NULL;
	pthread_mutex_unlock(&rp->mu);
	if (s == NULL) {
		s = remote_slot_alloc(rp);
		pthread_mutex_lock(&rp->mu);
		bool ok = s != NULL && remote_slot_track(rp, s);
		pthread_mutex_unlock(&rp->mu);
		if (!ok) {
			if (s != NULL) {
				nng_ctx_close(s->ctx);
				nng_aio_free(s->aio);
				free(s);
			}
			nng_msg_free(msg);
			free(b);
			return SL_ENOMEM;
		}
	}
	pthread_mutex_lock(&rp->mu);
	if (rp->closing || !rp->connected || c->closing) {
		/* gone meanwhile: nothing sent */
		rp->free_slots[rp->n_free++] = s;
		pthread_mutex_unlock(&rp->mu);
		nng_msg_free(msg);
		free(b);
		return SL_ECLOSED;
	}
	uint32_t timeout = slot_start_locked(rp, s, c, id, fkind);
	s->blk           = b;
	s->batched       = false;
	c->in_flight++;
	pthread_mutex_unlock(&rp->mu);
	slot_send(s, msg, timeout);
	*call = id;
	return SL_OK;
}

/* Hand answer a of call out into *out: its state goes with it, its text
 * is copied where its outcome shows it. */
static void
ans_out(remote_resp *out, uint64_t call, answer *a)
{
	out->call           = call;
	out->tag            = a->tag;
	out->outcome        = (remote_outcome) a->outcome;
	out->state          = a->state;
	out->state_len      = a->state_len;
	out->retry          = a->retry;
	out->retry_after_ms = a->retry_after_ms;
	out->partition[0]   = '\0';
	out->reason[0]      = '\0';
	if (a->outcome == REMOTE_INCLUDED && a->text != NULL)
		snprintf(
		    out->partition, sizeof(out->partition), "%s", a->text);
	else if (has_reason(a->outcome))
		snprintf(out->reason, sizeof(out->reason), "%s",
		    a->text != NULL                    ? a->text
		        : a->outcome == REMOTE_SKIPPED ? SKIPPED_REASON
		                                       : "");
	free(a->text);
	a->state = NULL;
	a->text  = NULL;
}

int
remote_call_next(remote_caller *c, int timeout_ms, remote_resp *out)
{
	remote_proc *rp       = c->rp;
	int64_t      deadline = mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	ablock      *b;

	/* Answers are taken from the shared queue all at once (a protocol 2
	 * call's come together), then handed out one by one without the
	 * lock: in_flight and mine are the caller's thread's alone. */
	if (c->mine == NULL) {
		pthread_mutex_lock(&rp->mu);
		while (c->head == NULL) {
			if (c->in_flight == 0) {
				pthread_mutex_unlock(&rp->mu);
				return SL_ENOTFOUND;
			}
			if (timeout_ms < 0) {
				pthread_cond_wait(&c->cv, &rp->mu);
			} else if (!cond_wait_until(&c->cv, &rp->mu, deadline)
			    && c->head == NULL) {
				pthread_mutex_unlock(&rp->mu);
				return SL_ETIMEDOUT;
			}
		}
		c->mine = c->head;
		c->head = c->tail = NULL;
		pthread_mutex_unlock(&rp->mu);
	}
	b = c->mine;
	ans_out(out, b->call, &b->a[b->at++]);
	c->in_flight--;
	if (b->at >= b->n) {
		c->mine = b->next;
		free(b); /* every answer handed out */
	}
	return SL_OK;
}

bool
remote_call_ready(remote_caller *c)
{
	if (c->mine != NULL)
		return true; /* the caller's thread's own */
	pthread_mutex_lock(&c->rp->mu);
	bool ready = c->head != NULL;
	pthread_mutex_unlock(&c->rp->mu);
	return ready;
}

size_t
remote_calls_in_flight(const remote_caller *c)
{
	return c->in_flight; /* the caller's thread's own */
}

uint32_t
remote_window(const remote_proc *r)
{
	return r->window;
}

bool
remote_connected(const remote_proc *r)
{
	remote_proc *rp = (remote_proc *) r; /* the lock is not state */
	pthread_mutex_lock(&rp->mu);
	bool c = rp->connected && !rp->closing;
	pthread_mutex_unlock(&rp->mu);
	return c;
}

bool
remote_wait_connected(remote_proc *r, int timeout_ms)
{
	int64_t deadline = mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	pthread_mutex_lock(&r->mu);
	uint64_t gen = r->wake_gen;
	while (!r->connected && !r->closing && r->wake_gen == gen) {
		if (timeout_ms < 0)
			pthread_cond_wait(&r->cv, &r->mu);
		else if (!cond_wait_until(&r->cv, &r->mu, deadline))
			break;
	}
	bool c = r->connected && !r->closing;
	pthread_mutex_unlock(&r->mu);
	return c;
}

void
remote_wake(remote_proc *r)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->mu);
	r->wake_gen++;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}
