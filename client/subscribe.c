/*
 * Subscriptions (include/sluice/subscribe.h): history and gaps through the
 * client's "read" requests, live events through an NNG sub socket on the
 * daemon's pub endpoint (message format in proto/feed.h). Positions are the
 * truth: the live feed only saves reads, every event is delivered from
 * whichever source has it next. SLUICE_SUB_DEBUG traces what it does.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>

#include <sluice/client.h>
#include <sluice/subscribe.h>

#include "nngclose.h"
#include "client_internal.h"
#include "event.h"
#include "feed.h"
#include "json.h"
#include "mp.h"
#include "tlsconf.h"

/* No message for this long (ms), although the daemon sends its head every
 * FEED_HEAD_INTERVAL_MS: the feed is down or lost; dial it anew and check
 * by reading. */
#define SUB_SILENCE_MS (4 * FEED_HEAD_INTERVAL_MS)
/* Pause between reads that failed on the transport (ms), doubling. */
#define SUB_BACKOFF_MIN_MS 50
#define SUB_BACKOFF_MAX_MS 1000
#define SUB_RECV_BUF       1024
/* The callback asked to stop: not an sl_err code. */
#define SUB_STOPPED (-1)
/* A partition subscription met a rebuilt stream: find where to go on. */
#define SUB_REALIGN (-2)
/* Filter subscriptions: reads after the log head moved with no filter
 * message, at 0, 250, 500, 1000, 2000, 4000 ms (filter entries are
 * published a little after the log moves). */
#define SUB_RECHECKS 6
/* A whole filter stream subscription met a rebuilt stream: it ends with
 * SL_ECLOSED (not retried like a daemon's ECLOSED reply). */
#define SUB_REBUILT (-3)
/* A daemon without a live feed (auth on, status "pub": nil): read this
 * often (ms) once caught up (docs/security.md, "The live feed"). */
#define SUB_POLL_MS 100
/* Partition ids are 1..255 bytes (read_filter). */
#define SUB_MAX_PARTITION 255

typedef struct sub {
	sl_client               *c;
	const sl_subscribe_opts *o;
	sl_subscribe_stats      *st;
	sl_event_fn              fn;
	void                    *arg;
	bool                     by_stream;
	bool                     by_filter;    /* opts->filter */
	bool                     by_partition; /* ... and opts->partition */
	char                    *filter_id; /* resolved (the feed's topic) */
	const char              *url;       /* the feed's endpoint */
	nng_tls_config          *tls;       /* tls+tcp:// feeds only */
	nng_socket               sock;
	bool                     sock_open;
	bool                     no_feed; /* the daemon has none: poll */
	nng_dialer               dialer;
	bool                     dialer_open;
	/* The next position (log) or revision (stream) to deliver. */
	uint64_t next;
	/* Stream subscriptions: every event of the stream below this log
	 * position has been delivered (so a head up to it needs no read). */
	uint64_t known_head;
	/* Filter subscriptions: the generation followed (0: none seen yet),
	 * the log position of the last event delivered, and the reads
	 * prompted by head messages (SUB_RECHECKS). */
	uint64_t     gen;
	uint64_t     last_log;
	uint64_t     last_head;
	bool         filter_msg; /* a filter message since the last head */
	int          recheck_n;
	int64_t      recheck_at;
	int64_t      last_event_ms; /* for idle_ms */
	bool         history;       /* the first catch-up is running */
	bool         counted;       /* this catch-up is in st->gap_fills */
	msgpack_zone zone;          /* one live message, decoded */
	FILE        *trace;         /* SLUICE_SUB_DEBUG, or NULL */
	bool         trace_close;   /* trace was opened here */
} sub;

static int64_t
sub_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sub_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int sub_fail(sub *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void sub_trace(sub *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * SLUICE_SUB_DEBUG: "1" traces to stderr; any other value but "" and "0"
 * names a file the trace is appended to. One line per step with the
 * state after it, so that a subscription that stopped making progress
 * shows why (the last lines say what it waits for).
 */
static void
sub_trace_open(sub *s)
{
	const char *v = getenv("SLUICE_SUB_DEBUG");

	if (v == NULL || v[0] == '\0' || strcmp(v, "0") == 0)
		return;
	if (strcmp(v, "1") == 0) {
		s->trace = stderr;
		return;
	}
	s->trace       = fopen(v, "a");
	s->trace_close = s->trace != NULL;
}

static void
sub_trace(sub *s, const char *fmt, ...)
{
	va_list ap;

	if (s->trace == NULL)
		return;
	fprintf(s->trace,
	    "%" PRId64 " sub %s: next=%" PRIu64 " known_head=%" PRIu64
	    " delivered=%" PRIu64 " gen=%" PRIu64 ": ",
	    sub_now_ms(),
	    s->by_partition    ? "partition"
	        : s->by_filter ? "filter"
	        : s->by_stream ? "stream"
	                       : "log",
	    s->next, s->known_head, s->st->delivered, s->gen);
	va_start(ap, fmt);
	vfprintf(s->trace, fmt, ap);
	va_end(ap);
	fputc('\n', s->trace);
	fflush(s->trace);
}

static int
sub_fail(sub *s, int code, const char *fmt, ...)
{
	char    msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	client_set_error(s->c, msg);
	return code;
}

static bool
sub_transient(int rc)
{
	return rc == SL_ENET || rc == SL_ETIMEDOUT || rc == SL_ECLOSED;
}

/* Time left (ms) until a deadline that started at `since`; INT32_MAX when
 * there is none. */
static int64_t
sub_left(int limit_ms, int64_t since, int64_t now)
{
	if (limit_ms <= 0)
		return INT32_MAX;
	return since + limit_ms - now;
}

/*
 * After a transport failure: wait before the next try (growing pause),
 * unless retry_ms or idle_ms has run out.
 * @return SL_OK to try again, or the error to give up with.
 */
static int
sub_retry_wait(sub *s, int rc, int64_t *outage_since, int *backoff)
{
	int64_t now = sub_now_ms();

	if (*outage_since < 0)
		*outage_since = now;
	if (sub_left(s->o->retry_ms, *outage_since, now) <= 0)
		return rc;
	if (sub_left(s->o->idle_ms, s->last_event_ms, now) <= 0)
		return sub_fail(s, SL_ETIMEDOUT,
		    "no event for %d ms (the daemon cannot be reached)",
		    s->o->idle_ms);
	s->st->retries++;
	sub_trace(s, "retry in %d ms", *backoff);
	sub_sleep_ms(*backoff);
	*backoff = *backoff * 2 > SUB_BACKOFF_MAX_MS ? SUB_BACKOFF_MAX_MS
	                                             : *backoff * 2;
	return SL_OK;
}

static void
sub_count(sub *s, bool live)
{
	s->st->delivered++;
	if (live) {
		s->st->from_live++;
	} else {
		s->st->from_reads++;
		/* A read after the history that finds events: the live feed
		 * lost them (dropped, or sent while this subscriber was not
		 * connected). One gap per catch-up. */
		if (!s->history && !s->counted) {
			s->st->gap_fills++;
			s->counted = true;
		}
	}
}

/* Whether a read now fills what the live feed lost (not the history, nor
 * the polling reads of a daemon without a feed): the daemon counts these
 * (sluice_feed_gap_* in its metrics). */
static bool
sub_fills_gap(const sub *s)
{
	return !s->history && !s->no_feed;
}

static int
sub_deliver(sub *s, const sl_read_event *ev, bool live)
{
	int stop;

	sub_count(s, live);
	s->next = s->by_stream ? ev->revision + 1 : ev->position + 1;
	if (s->by_stream && ev->position + 1 > s->known_head)
		s->known_head = ev->position + 1;
	s->last_event_ms = sub_now_ms();
	stop             = s->fn(s->arg, ev);
	return stop != 0 ? SUB_STOPPED : SL_OK;
}

/*
 * Read from s->next up to the head, delivering as it goes.
 * @return SL_OK (caught up), SUB_STOPPED, or the read's error.
 */
static int
sub_catch_up(sub *s)
{
	for (;;) {
		sl_read_result r;
		uint64_t       from = s->next;
		int            rc;

		sl_read_opts   o = { .from = s->next };
		if (s->by_stream) {
			o.tenant = s->o->tenant;
			o.stream = s->o->stream;
		}
		s->st->reads++;
		/* after the history, a read fills what the feed lost */
		rc = client_read_opts(s->c, &o, sub_fills_gap(s), &r);
		if (rc != SL_OK) {
			sub_trace(s, "read: %s: %s", sl_errname(rc),
			    sl_client_last_error(s->c));
			return rc;
		}
		sub_trace(s,
		    "read: %zu events, next=%" PRIu64 " head=%" PRIu64,
		    r.n_events, r.next, r.head);
		for (size_t i = 0; i < r.n_events && rc == SL_OK; i++) {
			const sl_read_event *ev = &r.events[i];
			uint64_t             key
			    = s->by_stream ? ev->revision : ev->position;
			if (key < s->next)
				continue; /* cannot happen: reads start there
				           */
			/* key > next: the read left out what stream
			 * deletions hide in between */
			rc = sub_deliver(s, ev, false);
		}
		/* Hidden events after the last one shown: next is past. */
		if (rc == SL_OK && !s->by_stream && r.next > s->next)
			s->next = r.next;
		if (rc == SL_OK && s->by_stream && r.n_events == 0
		    && r.head > s->known_head)
			s->known_head = r.head;
		/* The log ends where next == head (or where a read moves no
		 * further); a stream where a page comes back empty. */
		bool done = s->by_stream ? r.n_events == 0
		                         : r.next >= r.head || r.next <= from;
		sl_read_result_free(&r);
		if (rc != SL_OK || done)
			return rc;
	}
}

/* ---- filter streams ---- */

static int
sub_rebuilt(sub *s, uint64_t g)
{
	sub_fail(s, SL_ECLOSED,
	    "the filter's stream was rebuilt (generation %" PRIu64
	    "): subscribe again from 0",
	    g);
	sub_trace(s, "generation %" PRIu64 ": rebuilt, end", g);
	return SUB_REBUILT;
}

/*
 * The generation g of a read reply. Nothing delivered yet from another
 * generation (or none known): follow g.
 * @return SL_OK; SUB_REALIGN (a partition subscription goes on in g);
 *         SUB_REBUILT (a whole-stream subscription ends); SL_EPROTO.
 */
static int
sub_filter_gen(sub *s, uint64_t g)
{
	if (g == 0 || g == s->gen)
		return SL_OK;
	if (g < s->gen)
		return sub_fail(s, SL_EPROTO,
		    "read_filter served generation %" PRIu64 " after %" PRIu64,
		    g, s->gen);
	if (s->gen == 0
	    || (s->st->delivered == 0 && (s->by_partition || s->next == 0))) {
		sub_trace(s, "generation %" PRIu64 ": follow it", g);
		s->gen = g;
		return SL_OK;
	}
	return s->by_partition ? SUB_REALIGN : sub_rebuilt(s, g);
}

/* One entry at partition position p: *after when there is none or its
 * log position is above the last one delivered. */
static int
sub_probe(sub *s, uint64_t p, bool *after, uint64_t *gen)
{
	sl_filter_page pg;
	int            rc;

	s->st->reads++;
	rc = sl_client_read_filter(
	    s->c, s->o->tenant, s->filter_id, s->o->partition, p, 1, &pg);
	if (rc != SL_OK)
		return rc;
	*gen   = pg.generation;
	*after = pg.n_events == 0 || pg.events[0].event.position > s->last_log;
	sl_filter_page_free(&pg);
	return SL_OK;
}

/*
 * A partition subscription in a rebuilt stream: go on at the new
 * generation's first entry of the partition whose log position is above
 * the last event delivered (the partition is in log order in every
 * generation, so that is a binary search over partition positions).
 */
static int
sub_realign(sub *s)
{
	for (int tries = 0; tries < 8; tries++) {
		uint64_t lo = 0, hi = s->next, g, g0 = 0;
		bool     after = false, same = true, first = true;
		int      rc;

		for (;;) { /* an upper bound: hi has no entry at or below */
			if ((rc = sub_probe(s, hi, &after, &g)) != SL_OK)
				return rc;
			if (first)
				g0 = g;
			first = false;
			if (g != g0) {
				same = false;
				break;
			}
			if (after)
				break;
			lo = hi + 1;
			hi = hi * 2 + 1;
		}
		while (same && lo < hi) {
			uint64_t mid = lo + (hi - lo) / 2;

			if ((rc = sub_probe(s, mid, &after, &g)) != SL_OK)
				return rc;
			if (g != g0)
				same = false;
			else if (after)
				hi = mid;
			else
				lo = mid + 1;
		}
		if (!same)
			continue; /* rebuilt again meanwhile */
		sub_trace(s,
		    "generation %" PRIu64
		    ": go on at partition position %" PRIu64
		    " (after log position %" PRIu64 ")",
		    g0, lo, s->last_log);
		if (g0 > s->gen)
			s->gen = g0;
		s->next = lo;
		return SL_OK;
	}
	return sub_fail(s, SL_EPROTO,
	    "the filter's stream was rebuilt again and again while the "
	    "partition subscription looked for its place");
}

static int
sub_deliver_filter(sub *s, const sl_filter_event *fe, bool live)
{
	int stop;

	sub_count(s, live);
	s->next          = fe->stream_position + 1;
	s->last_log      = fe->event.position;
	s->last_event_ms = sub_now_ms();
	stop             = s->fn(s->arg, &fe->event);
	return stop != 0 ? SUB_STOPPED : SL_OK;
}

/* Read the filter's stream (or partition) from s->next to its end. */
static int
sub_catch_up_filter(sub *s)
{
	for (;;) {
		sl_filter_page pg;
		bool           done;
		int            rc;

		s->st->reads++;
		rc = client_read_filter_gap(s->c, s->o->tenant, s->filter_id,
		    s->o->partition, s->next, 0, sub_fills_gap(s), &pg);
		if (rc != SL_OK) {
			sub_trace(s, "read_filter: %s: %s", sl_errname(rc),
			    sl_client_last_error(s->c));
			return rc;
		}
		sub_trace(s,
		    "read_filter: %zu events, next=%" PRIu64 " more=%d "
		    "generation=%" PRIu64,
		    pg.n_events, pg.next, (int) pg.more, pg.generation);
		rc = sub_filter_gen(s, pg.generation);
		if (rc == SUB_REALIGN) {
			sl_filter_page_free(&pg);
			if ((rc = sub_realign(s)) != SL_OK)
				return rc;
			continue;
		}
		for (size_t i = 0; i < pg.n_events && rc == SL_OK; i++) {
			const sl_filter_event *fe = &pg.events[i];

			if (fe->stream_position < s->next)
				continue; /* cannot happen: reads start there
				           */
			if (fe->stream_position > s->next) {
				rc = sub_fail(s, SL_EPROTO,
				    "the read_filter from %" PRIu64
				    " skipped to %" PRIu64,
				    s->next, fe->stream_position);
				break;
			}
			if (s->by_partition && s->st->delivered > 0
			    && fe->event.position <= s->last_log) {
				/* cannot happen: sub_realign skips these */
				s->st->duplicates++;
				s->next = fe->stream_position + 1;
				continue;
			}
			rc = sub_deliver_filter(s, fe, false);
		}
		done = !pg.more || pg.n_events == 0;
		sl_filter_page_free(&pg);
		if (rc != SL_OK || done)
			return rc;
	}
}

/* Copy a string field of a live event; NULL if absent or not a string. */
static char *
sub_strdup(const msgpack_object *m, const char *key, bool empty_ok)
{
	const msgpack_object *o = mp_get(m, key);

	if (o != NULL && o->type == MSGPACK_OBJECT_STR)
		return mp_strdup(o);
	return empty_ok ? strdup("") : NULL;
}

static char *
sub_json(const msgpack_object *m, const char *key)
{
	const msgpack_object *o = mp_get(m, key);
	msgpack_object        empty;

	if (o == NULL || o->type != MSGPACK_OBJECT_MAP) {
		memset(&empty, 0, sizeof(empty));
		empty.type = MSGPACK_OBJECT_MAP;
		o          = &empty;
	}
	return mp_to_json_text(o);
}

/* A live event as the reads give it (the same wire map). */
static int
sub_event_parse(const msgpack_object *m, sl_read_event *e)
{
	uint64_t u = 0;
	int64_t  i = 0;
	bool     b = false;

	memset(e, 0, sizeof(*e));
	if (mp_get_u64(m, "position", &e->position) != SL_OK
	    || mp_get_u64(m, "revision", &e->revision) != SL_OK)
		return SL_EPROTO;
	if (mp_get_u64(m, "generation", &u) == SL_OK)
		e->generation = (uint32_t) u;
	if (mp_get_i64(m, "occurred", &i) == SL_OK)
		e->occurred_ns = i;
	if (mp_get_bool(m, "public", &b) == SL_OK)
		e->is_public = b;
	e->tenant         = sub_strdup(m, "tenant", false);
	e->stream         = sub_strdup(m, "stream", false);
	e->id             = sub_strdup(m, "id", false);
	e->type           = sub_strdup(m, "type", false);
	e->correlation_id = sub_strdup(m, "correlation_id", true);
	e->causation_id   = sub_strdup(m, "causation_id", true);
	e->metadata_json  = sub_json(m, "metadata");
	e->content_json   = sub_json(m, "content");
	e->json           = mp_to_json_text(m);
	if (e->tenant == NULL || e->stream == NULL || e->id == NULL
	    || e->type == NULL || e->correlation_id == NULL
	    || e->causation_id == NULL || e->metadata_json == NULL
	    || e->content_json == NULL || e->json == NULL) {
		client_event_free(e);
		return SL_EPROTO;
	}
	return SL_OK;
}

static bool
sub_str_is(const msgpack_object *m, const char *key, const char *want)
{
	const msgpack_object *o = mp_get(m, key);

	return o != NULL && mp_str_eq(o, want);
}

/*
 * One live event (an element of a message's array). Sets *gap when the
 * feed is ahead of what was delivered (the caller reads then).
 * @return SL_OK or SUB_STOPPED.
 */
static int
sub_on_event(sub *s, const msgpack_object *m, bool *gap)
{
	uint64_t      pos, rev, key;
	sl_read_event ev;
	int           rc;

	if (m->type != MSGPACK_OBJECT_MAP
	    || mp_get_u64(m, "position", &pos) != SL_OK
	    || mp_get_u64(m, "revision", &rev) != SL_OK)
		return SL_OK;
	if (s->by_stream
	    && (!sub_str_is(m, "tenant", s->o->tenant)
	        || !sub_str_is(m, "stream", s->o->stream)))
		return SL_OK; /* cannot happen: the topic is exact */
	key = s->by_stream ? rev : pos;
	if (key < s->next) {
		s->st->duplicates++;
		return SL_OK;
	}
	if (key > s->next) {
		if (!*gap)
			sub_trace(s, "live event %" PRIu64 ": a gap", key);
		*gap = true; /* lost messages: the caller reads */
		return SL_OK;
	}
	if (sub_event_parse(m, &ev) != SL_OK)
		return SL_OK; /* the read will bring it */
	rc = sub_deliver(s, &ev, true);
	client_event_free(&ev);
	return rc;
}

/*
 * One live entry of a filter stream. Sets *gap when the feed is ahead of
 * what was delivered, or in a newer generation (the read decides).
 * @return SL_OK, SUB_STOPPED or SUB_REBUILT.
 */
static int
sub_on_filter_event(sub *s, const msgpack_object *m, bool *gap)
{
	uint64_t        spos, ppos = 0, g, pos, key;
	sl_filter_event fe;
	json_t         *j;
	int             rc;

	if (m->type != MSGPACK_OBJECT_MAP
	    || mp_get_u64(m, "position", &pos) != SL_OK
	    || mp_get_u64(m, "stream_position", &spos) != SL_OK
	    || mp_get_u64(m, "stream_generation", &g) != SL_OK
	    || (s->by_partition
	        && (mp_get_u64(m, "partition_position", &ppos) != SL_OK
	            || !sub_str_is(m, "partition", s->o->partition))))
		return SL_OK;
	if (g != s->gen) {
		if (g < s->gen)
			return SL_OK; /* sent before the rebuild: stale */
		if (!s->by_partition && s->gen != 0
		    && !(s->st->delivered == 0 && s->next == 0))
			return sub_rebuilt(s, g);
		if (!*gap)
			sub_trace(s, "live generation %" PRIu64 ": read", g);
		*gap = true;
		return SL_OK;
	}
	key = s->by_partition ? ppos : spos;
	if (key < s->next) {
		s->st->duplicates++;
		return SL_OK;
	}
	if (key > s->next) {
		if (!*gap)
			sub_trace(s, "live entry %" PRIu64 ": a gap", key);
		*gap = true;
		return SL_OK;
	}
	if (s->by_partition && s->st->delivered > 0 && pos <= s->last_log) {
		s->st->duplicates++; /* cannot happen: see sub_realign */
		s->next = key + 1;
		return SL_OK;
	}
	memset(&fe, 0, sizeof(fe));
	if (sub_event_parse(m, &fe.event) != SL_OK)
		return SL_OK; /* the read will bring it */
	/* The event as read_filter gives it for what is followed:
	 * stream_position is the position in it, no partition_position. */
	j = mp_to_json(m);
	if (j != NULL) {
		json_object_set_new(
		    j, "stream_position", json_integer((json_int_t) key));
		json_object_del(j, "partition_position");
		free(fe.event.json);
		fe.event.json = json_dumps(
		    j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
		json_decref(j);
	}
	fe.stream_position = key;
	fe.partition       = sub_strdup(m, "partition", false);
	if (j == NULL || fe.event.json == NULL
	    || (mp_get(m, "partition") != NULL && fe.partition == NULL)) {
		client_event_free(&fe.event);
		free(fe.partition);
		return SL_OK; /* out of memory: the read will bring it */
	}
	rc = sub_deliver_filter(s, &fe, true);
	client_event_free(&fe.event);
	free(fe.partition);
	return rc;
}

/*
 * A head message, for a filter subscription: filter entries are published
 * a little after the log moves, and the feed may have dropped the last of
 * them, which no later entry would reveal. So when the head moved and no
 * filter message came since the previous head, read; and again after
 * 250, 500, ... ms while no filter message comes (SUB_RECHECKS reads).
 */
static void
sub_filter_head(sub *s, uint64_t head, bool *gap)
{
	int64_t now = sub_now_ms();

	if (head != s->last_head) {
		s->last_head  = head;
		s->recheck_n  = 0;
		s->recheck_at = now;
	}
	if (!s->filter_msg && s->recheck_n < SUB_RECHECKS
	    && now >= s->recheck_at) {
		*gap = true;
		s->recheck_at
		    = now + ((int64_t) FEED_HEAD_INTERVAL_MS << s->recheck_n);
		s->recheck_n++;
	}
	s->filter_msg = false;
}

/*
 * One live message: a topic line, then an array of events or the head.
 * Messages that are not understood are skipped: the reads cover whatever
 * they might have carried.
 * @return SL_OK, SUB_STOPPED or SUB_REBUILT.
 */
static int
sub_on_message(sub *s, nng_msg *msg, bool *gap)
{
	const char    *body = nng_msg_body(msg);
	size_t         len  = nng_msg_len(msg), off;
	const char    *nl   = memchr(body, '\n', len);
	msgpack_object root;
	uint64_t       head;
	int            rc = SL_OK;

	if (nl == NULL || len < 2)
		return SL_OK;
	off = (size_t) (nl - body) + 1;
	msgpack_zone_clear(&s->zone);
	if (msgpack_unpack(body, len, &off, &s->zone, &root)
	    != MSGPACK_UNPACK_SUCCESS)
		return SL_OK;

	if (memcmp(body, FEED_TOPIC_HEAD, 2) == 0) {
		if (mp_get_u64(&root, "head", &head) != SL_OK)
			return SL_OK;
		if (s->by_filter) {
			sub_filter_head(s, head, gap);
			sub_trace(s, "head %" PRIu64 "%s", head,
			    *gap ? ": read" : "");
			return SL_OK;
		}
		/* Events come before the head that counts them: a head
		 * ahead of a log subscription means messages were lost. A
		 * stream subscription cannot tell (other streams move the
		 * head), so it asks. */
		if (head > (s->by_stream ? s->known_head : s->next))
			*gap = true;
		sub_trace(s, "head %" PRIu64 "%s", head, *gap ? ": read" : "");
		return SL_OK;
	}
	if (s->by_filter) {
		if (memcmp(body, FEED_TOPIC_FILTER, 2) != 0
		    || root.type != MSGPACK_OBJECT_ARRAY)
			return SL_OK;
		s->filter_msg = true;
		sub_trace(s, "live message of %" PRIu32 " entries",
		    root.via.array.size);
		for (uint32_t i = 0; i < root.via.array.size && rc == SL_OK;
		     i++)
			rc = sub_on_filter_event(
			    s, &root.via.array.ptr[i], gap);
		return rc;
	}
	if (memcmp(body, FEED_TOPIC_EVENT, 2) != 0
	    || root.type != MSGPACK_OBJECT_ARRAY)
		return SL_OK;
	sub_trace(
	    s, "live message of %" PRIu32 " events", root.via.array.size);
	for (uint32_t i = 0; i < root.via.array.size && rc == SL_OK; i++)
		rc = sub_on_event(s, &root.via.array.ptr[i], gap);
	return rc;
}

/* The daemon's pub endpoint from its status reply ("pub"). */
static int
sub_ask_pub_url(sub *s, char **out)
{
	char   *text = NULL;
	json_t *j, *pub;
	int     rc;

	int64_t outage_since = -1;
	int     backoff      = SUB_BACKOFF_MIN_MS;

	*out = NULL;
	/* The daemon may be restarting: retried like the reads. */
	while ((rc = sl_client_status(s->c, &text)) != SL_OK) {
		if (!sub_transient(rc)
		    || (rc = sub_retry_wait(s, rc, &outage_since, &backoff))
		        != SL_OK)
			return rc;
	}
	j   = json_loads(text, 0, NULL);
	pub = json_object_get(j, "pub");
	/* A stream or filter of one tenant: that tenant's own feed when
	 * the daemon has one (auth on; "feeds": {tenant: url}) */
	json_t *tf = s->o->tenant != NULL
	    ? json_object_get(json_object_get(j, "feeds"), s->o->tenant)
	    : NULL;
	if (json_is_string(tf))
		pub = tf;
	if (json_is_string(pub))
		*out = strdup(json_string_value(pub));
	/* nil: no feed (auth on): follow by reads */
	s->no_feed = json_is_null(pub);
	json_decref(j);
	sl_client_free(text);
	if (*out == NULL && !s->no_feed)
		return sub_fail(s, SL_EINVAL,
		    "the daemon's status does not name its pub endpoint: "
		    "give it (pub_url, --pub-url)");
	return SL_OK;
}

/*
 * The filter's id (the feed's topics name filters by id) from the daemon's
 * status ("projections": plugins' and remote ones): opts->filter is an id
 * or a name. A partition of an
 * unpartitioned filter and a projection are refused here; an unknown
 * filter is left to read_filter (ENOTFOUND).
 */
static int
sub_resolve_filter(sub *s)
{
	const char *want = s->o->filter;
	char       *text = NULL;
	json_t     *j, *list, *it, *found = NULL;
	size_t      i;
	int         rc;

	int64_t outage_since = -1;
	int     backoff      = SUB_BACKOFF_MIN_MS;

	while ((rc = sl_client_status(s->c, &text)) != SL_OK) {
		if (!sub_transient(rc)
		    || (rc = sub_retry_wait(s, rc, &outage_since, &backoff))
		        != SL_OK)
			return rc;
	}
	j    = json_loads(text, 0, NULL);
	list = json_object_get(j, "projections");
	sl_client_free(text);
	json_array_foreach(list, i, it)
	{
		const char *id = json_string_value(json_object_get(it, "id"));
		if (id != NULL && strcmp(id, want) == 0) {
			found = it;
			break;
		}
	}
	if (found == NULL)
		json_array_foreach(list, i, it)
		{
			const char *name
			    = json_string_value(json_object_get(it, "name"));
			const char *kind
			    = json_string_value(json_object_get(it, "kind"));
			if (name != NULL && kind != NULL
			    && strcmp(name, want) == 0
			    && strcmp(kind, "filter") == 0) {
				found = it;
				break;
			}
		}
	rc = SL_OK;
	if (found != NULL) {
		const char *id
		    = json_string_value(json_object_get(found, "id"));
		const char *kind
		    = json_string_value(json_object_get(found, "kind"));
		const char *fk
		    = json_string_value(json_object_get(found, "filter_kind"));
		if (kind != NULL && strcmp(kind, "filter") != 0)
			rc = sub_fail(s, SL_EINVAL,
			    "'%s' is a %s, not a filter: subscribe to filters "
			    "only",
			    want, kind);
		else if (s->by_partition && fk != NULL
		    && strcmp(fk, "unpartitioned") == 0)
			rc = sub_fail(s, SL_EINVAL,
			    "filter '%s' is unpartitioned: it has no "
			    "partition "
			    "to follow (subscribe to its whole stream)",
			    want);
		else if ((s->filter_id = strdup(id != NULL ? id : want))
		    == NULL)
			rc = sub_fail(s, SL_ENOMEM, "out of memory");
	} else if ((s->filter_id = strdup(want)) == NULL) {
		rc = sub_fail(s, SL_ENOMEM, "out of memory");
	}
	json_decref(j);
	if (rc == SL_OK)
		sub_trace(s, "filter '%s' is %s", want, s->filter_id);
	return rc;
}

static int
sub_nng_err(int rv)
{
	switch (rv) {
	case NNG_ENOMEM:
		return SL_ENOMEM;
	case NNG_EADDRINVAL:
	case NNG_EINVAL:
	case NNG_ENOTSUP:
		return SL_EINVAL;
	case NNG_ETIMEDOUT:
		return SL_ETIMEDOUT;
	default:
		return SL_ENET;
	}
}

/*
 * Dial the feed in the background with a new dialer (a daemon that is down
 * now is dialled again until it is back), closing the previous one and its
 * connection. After a silence the old dialer may be dead: in NNG 1.5.2 a
 * connection attempt that reaches a listener which goes away before the SP
 * handshake ends in NNG_ECLOSED, which the dialer takes for its own close
 * ("no further action"): it never dials again. A SIGKILLed daemon does
 * that, as its listening socket is released a few ms after its
 * connections and a quick redial gets in (tests/feed_redial_test.c).
 */
static int
sub_dial(sub *s)
{
	int rv;

	if (s->dialer_open) {
		nng_dialer_close(s->dialer);
		s->dialer_open = false;
	}
	if ((rv = sl_tls_dial(
	         s->sock, s->url, s->tls, NNG_FLAG_NONBLOCK, &s->dialer))
	    != 0)
		return sub_fail(s, sub_nng_err(rv), "cannot dial %s: %s",
		    s->url, nng_strerror(rv));
	s->dialer_open = true;
	return SL_OK;
}

/* Open the sub socket, subscribe, and dial. */
static int
sub_open_feed(sub *s)
{
	/* escaped: 3 bytes a byte */
	char   topic[8 + 4 * SL_MAX_ID_LEN + 3 * SUB_MAX_PARTITION];
	size_t tlen;
	int    rv, buf = s->o->recv_buf > 0 ? s->o->recv_buf : SUB_RECV_BUF;

	if (buf > 8192)
		buf = 8192;
	if ((rv = nng_sub0_open(&s->sock)) != 0)
		return sub_fail(s, sub_nng_err(rv),
		    "cannot open a sub socket: %s", nng_strerror(rv));
	s->sock_open = true;
	/* Events may be as large as the protocol allows (1 MiB of content
	 * and metadata plus the envelope); NNG's default limit is 1 MiB. */
	nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, 0);
	nng_socket_set_int(s->sock, NNG_OPT_RECVBUF, buf);
	nng_socket_set_ms(s->sock, NNG_OPT_RECONNMINT, 50);
	nng_socket_set_ms(s->sock, NNG_OPT_RECONNMAXT, 1000);
	if (s->by_filter) {
		/* "f/T/ID/": every partition; "f/T/ID/P\n": exactly P */
		tlen = feed_filter_topic(topic, sizeof(topic), s->o->tenant,
		    strlen(s->o->tenant), s->filter_id, s->o->partition,
		    s->by_partition ? strlen(s->o->partition) : 0,
		    s->by_partition);
		if (tlen > sizeof(topic))
			return sub_fail(
			    s, SL_EINVAL, "tenant or filter id too long");
	} else if (s->by_stream) {
		tlen = feed_topic(topic, sizeof(topic), s->o->tenant,
		    strlen(s->o->tenant), s->o->stream, strlen(s->o->stream),
		    1);
		if (tlen > sizeof(topic))
			return sub_fail(
			    s, SL_EINVAL, "tenant or stream id too long");
	} else {
		tlen = strlen(FEED_TOPIC_EVENT);
		memcpy(topic, FEED_TOPIC_EVENT, tlen);
	}
	if ((rv = nng_socket_set(s->sock, NNG_OPT_SUB_SUBSCRIBE, topic, tlen))
	        != 0
	    || (rv = nng_socket_set(s->sock, NNG_OPT_SUB_SUBSCRIBE,
	            FEED_TOPIC_HEAD, strlen(FEED_TOPIC_HEAD)))
	        != 0)
		return sub_fail(s, sub_nng_err(rv), "cannot subscribe: %s",
		    nng_strerror(rv));
	return sub_dial(s);
}

static int
sub_run(sub *s)
{
	int64_t outage_since = -1;
	int     backoff      = SUB_BACKOFF_MIN_MS;
	bool    need_read    = true; /* history first */
	int     rc;

	for (;;) {
		int64_t  idle_left, wait;
		nng_msg *msg;
		int      rv;

		if (need_read) {
			sub_trace(s, "catch up");
			rc = s->by_filter ? sub_catch_up_filter(s)
			                  : sub_catch_up(s);
			if (rc == SUB_STOPPED)
				return SL_OK;
			if (rc == SUB_REBUILT)
				return SL_ECLOSED;
			if (sub_transient(rc)) {
				rc = sub_retry_wait(
				    s, rc, &outage_since, &backoff);
				if (rc != SL_OK)
					return rc;
				continue;
			}
			if (rc != SL_OK)
				return rc;
			need_read    = false;
			s->history   = false;
			s->counted   = false;
			outage_since = -1;
			backoff      = SUB_BACKOFF_MIN_MS;
		}

		idle_left
		    = sub_left(s->o->idle_ms, s->last_event_ms, sub_now_ms());
		if (idle_left <= 0)
			return sub_fail(s, SL_ETIMEDOUT, "no event for %d ms",
			    s->o->idle_ms);
		if (s->no_feed) {
			/* no feed to wait on: read again after a while */
			sub_sleep_ms(
			    (int) (idle_left < SUB_POLL_MS ? idle_left
			                                   : SUB_POLL_MS));
			need_read = true;
			continue;
		}
		wait = idle_left < SUB_SILENCE_MS ? idle_left : SUB_SILENCE_MS;
		nng_socket_set_ms(s->sock, NNG_OPT_RECVTIMEO, (int) wait);
		rv = nng_recvmsg(s->sock, &msg, 0);
		if (rv == NNG_ETIMEDOUT) {
			/* Silence: the daemon may be gone or restarting, or
			 * the idle time is up; a read tells. A new dialer
			 * first (see sub_dial), so that the feed holds what
			 * is committed while the read runs. */
			if (wait == SUB_SILENCE_MS) {
				sub_trace(s,
				    "no message for %d ms: dial the "
				    "feed anew, read",
				    SUB_SILENCE_MS);
				if ((rc = sub_dial(s)) != SL_OK)
					return rc;
				need_read = true;
			}
			continue;
		}
		if (rv != 0)
			return sub_fail(s, sub_nng_err(rv),
			    "the live feed failed: %s", nng_strerror(rv));
		rc = sub_on_message(s, msg, &need_read);
		nng_msg_free(msg);
		if (rc == SUB_STOPPED)
			return SL_OK;
		if (rc == SUB_REBUILT)
			return SL_ECLOSED;
		if (rc != SL_OK)
			return rc;
	}
}

int
sl_client_subscribe(
    sl_client *c, const sl_subscribe_opts *opts, sl_event_fn fn, void *arg)
{
	static const sl_subscribe_opts defaults;
	sl_subscribe_stats             local;
	sub                            s;
	char                          *url = NULL;
	int                            rc;

	if (c == NULL || fn == NULL)
		return SL_EINVAL;
	memset(&s, 0, sizeof(s));
	s.c   = c;
	s.o   = opts != NULL ? opts : &defaults;
	s.fn  = fn;
	s.arg = arg;
	s.st  = s.o->stats != NULL ? s.o->stats : &local;
	memset(s.st, 0, sizeof(*s.st));
	client_set_error(c, "");
	if (s.o->partition != NULL && s.o->filter == NULL)
		return sub_fail(&s, SL_EINVAL,
		    "a partition needs its filter (and tenant): give filter "
		    "to follow one partition of a filter's stream");
	if (s.o->filter != NULL) {
		if (s.o->tenant == NULL || s.o->tenant[0] == '\0')
			return sub_fail(&s, SL_EINVAL,
			    "a filter subscription needs its tenant: filter "
			    "streams are per tenant");
		if (s.o->stream != NULL)
			return sub_fail(&s, SL_EINVAL,
			    "filter and stream exclude each other: follow a "
			    "filter's stream or one stream");
		if (s.o->filter[0] == '\0')
			return sub_fail(
			    &s, SL_EINVAL, "filter must not be empty");
		if (s.o->partition != NULL
		    && (s.o->partition[0] == '\0'
		        || strlen(s.o->partition) > SUB_MAX_PARTITION))
			return sub_fail(&s, SL_EINVAL,
			    "partition must be 1..%d bytes",
			    SUB_MAX_PARTITION);
	} else if ((s.o->tenant == NULL) != (s.o->stream == NULL)) {
		return sub_fail(&s, SL_EINVAL,
		    "tenant and stream go together: give both to follow one "
		    "stream, or neither to follow the log");
	}
	s.by_filter     = s.o->filter != NULL;
	s.by_partition  = s.o->partition != NULL;
	s.by_stream     = s.o->tenant != NULL && !s.by_filter;
	s.next          = s.o->from;
	s.history       = true;
	s.last_event_ms = sub_now_ms();
	if (!msgpack_zone_init(&s.zone, 4096))
		return sub_fail(&s, SL_ENOMEM, "out of memory");
	sub_trace_open(&s);

	if (s.o->pub_url != NULL) {
		url = strdup(s.o->pub_url);
		rc  = url != NULL ? SL_OK : SL_ENOMEM;
	} else {
		rc = sub_ask_pub_url(&s, &url);
	}
	if (rc == SL_OK && s.by_filter)
		rc = sub_resolve_filter(&s);
	/* Dial the feed before the history read ends, so that its queue
	 * already holds what is committed meanwhile. */
	s.url = url;
	/* a tls+tcp:// feed: with the options the client was opened with */
	if (rc == SL_OK && !s.no_feed && sl_tls_url(url)) {
		char err[256];
		rc = sl_tls_client_config(
		    client_tls_options(c), url, &s.tls, err, sizeof(err));
		if (rc != SL_OK)
			sub_fail(&s, rc, "the feed %s: %s", url, err);
	}
	if (rc == SL_OK && !s.no_feed)
		rc = sub_open_feed(&s);
	if (rc == SL_OK)
		rc = sub_run(&s);
	if (s.sock_open)
		sl_nng_close_bounded(s.sock, 2000); /* nngclose.h */
	sub_trace(
	    &s, "return %s: %s", sl_errname(rc), sl_client_last_error(c));
	if (s.trace_close)
		fclose(s.trace);
	msgpack_zone_destroy(&s.zone);
	free(s.filter_id);
	free(url);
	if (s.tls != NULL)
		nng_tls_config_free(s.tls);
	return rc;
}
