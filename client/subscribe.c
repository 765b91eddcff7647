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

#include "client_internal.h"
#include "event.h"
#include "feed.h"
#include "json.h"
#include "mp.h"

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

typedef struct sub {
	sl_client               *c;
	const sl_subscribe_opts *o;
	sl_subscribe_stats      *st;
	sl_event_fn              fn;
	void                    *arg;
	bool                     by_stream;
	const char              *url; /* the feed's endpoint */
	nng_socket               sock;
	bool                     sock_open;
	nng_dialer               dialer;
	bool                     dialer_open;
	/* The next position (log) or revision (stream) to deliver. */
	uint64_t next;
	/* Stream subscriptions: every event of the stream below this log
	 * position has been delivered (so a head up to it needs no read). */
	uint64_t     known_head;
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
	    " delivered=%" PRIu64 ": ",
	    sub_now_ms(), s->by_stream ? "stream" : "log", s->next,
	    s->known_head, s->st->delivered);
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

static int
sub_deliver(sub *s, const sl_read_event *ev, bool live)
{
	int stop;

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
		int            rc;

		s->st->reads++;
		if (s->by_stream)
			rc = sl_client_read_stream(
			    s->c, s->o->tenant, s->o->stream, s->next, 0, &r);
		else
			rc = sl_client_read(s->c, s->next, 0, &r);
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
			if (key > s->next) {
				rc = sub_fail(s, SL_EPROTO,
				    "the read from %s %" PRIu64
				    " skipped to %" PRIu64,
				    s->by_stream ? "revision" : "position",
				    s->next, key);
				break;
			}
			rc = sub_deliver(s, ev, false);
		}
		if (rc == SL_OK && s->by_stream && r.n_events == 0
		    && r.head > s->known_head)
			s->known_head = r.head;
		/* The log ends where next == head; a stream where a page
		 * comes back empty. */
		bool done = s->by_stream ? r.n_events == 0
		                         : r.next >= r.head || r.n_events == 0;
		sl_read_result_free(&r);
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
 * One live message: a topic line, then an array of events or the head.
 * Messages that are not understood are skipped: the reads cover whatever
 * they might have carried.
 * @return SL_OK or SUB_STOPPED.
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
		/* Events come before the head that counts them: a head
		 * ahead of a log subscription means messages were lost. A
		 * stream subscription cannot tell (other streams move the
		 * head), so it asks. */
		if (head > (s->by_stream ? s->known_head : s->next))
			*gap = true;
		sub_trace(s, "head %" PRIu64 "%s", head, *gap ? ": read" : "");
		return SL_OK;
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
	if (json_is_string(pub))
		*out = strdup(json_string_value(pub));
	json_decref(j);
	sl_client_free(text);
	if (*out == NULL)
		return sub_fail(s, SL_EINVAL,
		    "the daemon's status does not name its pub endpoint: "
		    "give it (pub_url, --pub-url)");
	return SL_OK;
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
	if ((rv = nng_dial(s->sock, s->url, &s->dialer, NNG_FLAG_NONBLOCK))
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
	char   topic[4 + 4 * SL_MAX_ID_LEN]; /* escaped: 3 bytes a byte */
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
	if (s->by_stream) {
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
			rc = sub_catch_up(s);
			if (rc == SUB_STOPPED)
				return SL_OK;
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
	if ((s.o->tenant == NULL) != (s.o->stream == NULL))
		return sub_fail(&s, SL_EINVAL,
		    "tenant and stream go together: give both to follow one "
		    "stream, or neither to follow the log");
	s.by_stream     = s.o->tenant != NULL;
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
	/* Dial the feed before the history read ends, so that its queue
	 * already holds what is committed meanwhile. */
	s.url = url;
	if (rc == SL_OK)
		rc = sub_open_feed(&s);
	if (rc == SL_OK)
		rc = sub_run(&s);
	if (s.sock_open)
		nng_close(s.sock);
	sub_trace(
	    &s, "return %s: %s", sl_errname(rc), sl_client_last_error(c));
	if (s.trace_close)
		fclose(s.trace);
	msgpack_zone_destroy(&s.zone);
	free(url);
	return rc;
}
