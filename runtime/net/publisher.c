/*
 * The live event feed (publisher.h): one thread follows the log by
 * position, wakes when the head moves (store_wait), reads the new events in
 * a read transaction and sends each run of consecutive events of one
 * stream as one pub0 message "topic\n" + array of wire events
 * (proto/feed.h). The writer thread never waits on it, and pub0 never
 * blocks: a subscriber whose queue is full loses messages, finds the gap by
 * position and reads what it missed. A tenant's feed (endpoints.feeds)
 * gets the messages whose topic names its tenant, and the heads. While no
 * connection is open on any of its sockets nothing is read or sent (pub0
 * would drop it all): the thread only follows the head.
 */
#include "publisher.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>

#include <sluice/errors.h>

#include "event.h"
#include "feed.h"
#include "listen.h"
#include "log.h"
#include "mp.h"
#include "server.h"
#include "tls.h"

/* Events read per read transaction: bounds how long a reader slot is held
 * while the socket takes the messages. */
#define PUB_SCAN_BATCH 1024
/* Per-subscriber queue in messages (NNG's default is 16): room for a burst
 * of group commits, so that a subscriber that keeps up loses nothing; at
 * most PUB_SENDBUF * PUB_BATCH_BYTES (16 MiB) held for a stuck one. */
#define PUB_SENDBUF 256
/* Longest topic: "e/" + tenant + "/" + escaped stream + "\n". */
#define PUB_TOPIC_MAX (4 + SL_MAX_ID_LEN + 3 * SL_MAX_ID_LEN)
/* One message carries consecutive events of one stream, up to these
 * limits (a message is closed once it holds PUB_BATCH_BYTES, so it may
 * pass them by one event): fewer,
 * larger messages cost the daemon and each subscriber far less per event
 * (one send, one receive, one wake-up for a whole commit). */
#define PUB_BATCH_EVENTS 256
#define PUB_BATCH_BYTES  (64 * 1024)

/* A tenant's feed: its socket, and who it is for (the pipe callback's
 * argument). */
typedef struct tfeed {
	struct publisher *p;
	char             *tenant;
	size_t            tlen;
	char             *url;
	nng_socket        sock;
	bool              open;
	atomic_int        pipes; /* connections (pub_count_pipe) */
} tfeed;

struct publisher {
	store          *s;
	nng_socket      sock;
	bool            has_sock; /* the feed of every tenant */
	atomic_int      pipes;    /* its connections (pub_count_pipe) */
	tfeed          *feeds;    /* per tenant (endpoints.feeds) */
	size_t          n_feeds;
	pub_admit_fn    admit;
	void           *admit_arg;
	pthread_t       thr;
	atomic_bool     stop;
	atomic_ullong   sent;
	atomic_ullong   gap_reads;  /* pub_note_gap */
	atomic_ullong   gap_events;
	uint64_t        next;  /* thread only: the next position to publish */
	msgpack_zone    zone;  /* thread only: decoded events */
	msgpack_sbuffer buf;   /* thread only: head message, array header */
	msgpack_sbuffer batch; /* thread only: packed events of a message */
	size_t          n_batch;              /* events in batch */
	char            topic[PUB_TOPIC_MAX]; /* the batch's topic */
	size_t          topic_len;
	nng_aio        *aio; /* thread only: its sends (pub_send_on) */
};

static int
pub_nng_err(int rv)
{
	switch (rv) {
	case NNG_ENOMEM:
		return SL_ENOMEM;
	case NNG_EADDRINVAL:
	case NNG_EINVAL:
	case NNG_ENOTSUP:
		return SL_EINVAL;
	default:
		return SL_ENET;
	}
}

static int64_t
pub_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Send topic + body as one message on sock. pub0 queues it for each
 * subscriber and drops it for a subscriber whose queue is full: it never
 * blocks. aio: the publisher thread's own (no callback, so pub0's send
 * completes on this thread), or NULL from another thread: nng_sendmsg
 * then makes one per message (an allocation and, in NNG 1.5, a getrandom
 * call each: one per commit on the publisher thread before). */
static bool
pub_send_on(nng_aio *aio, nng_socket sock, atomic_int *pipes,
    const char *topic, size_t topic_len, const void *head, size_t head_len,
    const void *body, size_t body_len)
{
	nng_msg *m;

	if (atomic_load_explicit(pipes, memory_order_relaxed) == 0)
		return false; /* nobody to send it to (pub_count_pipe) */
	/* sized at once: appends would grow it twice or three times */
	if (nng_msg_alloc(&m, topic_len + head_len + body_len) != 0)
		return false; /* out of memory: subscribers fill the gap by
		               * reading */
	char *b = nng_msg_body(m);
	memcpy(b, topic, topic_len);
	if (head_len > 0)
		memcpy(b + topic_len, head, head_len);
	if (body_len > 0)
		memcpy(b + topic_len + head_len, body, body_len);
	if (aio == NULL) {
		if (nng_sendmsg(sock, m, NNG_FLAG_NONBLOCK) != 0) {
			nng_msg_free(m);
			return false;
		}
		return true;
	}
	nng_aio_set_msg(aio, m);
	nng_send_aio(sock, aio);
	nng_aio_wait(aio);
	int rv = nng_aio_result(aio);
	if (rv != 0)
		nng_msg_free(nng_aio_get_msg(aio));
	nng_aio_set_msg(aio, NULL);
	return rv == 0;
}

/* The feed of the tenant a topic names ("e/T/..." or "f/T/..."; tenant
 * ids hold no '/'), or NULL. */
static tfeed *
pub_feed_of(publisher *p, const char *topic, size_t topic_len)
{
	if (p->n_feeds == 0 || topic_len < 3 || topic[1] != '/')
		return NULL;
	const char *t   = topic + 2;
	const char *end = memchr(t, '/', topic_len - 2);
	size_t      len = end != NULL ? (size_t) (end - t) : 0;
	for (size_t i = 0; i < p->n_feeds; i++)
		if (p->feeds[i].tlen == len
		    && memcmp(p->feeds[i].tenant, t, len) == 0)
			return &p->feeds[i];
	return NULL;
}

/* A message of one tenant's: on the feed of every tenant and on the
 * tenant's own. @return whether a socket took it. */
static bool
pub_send(publisher *p, nng_aio *aio, const char *topic, size_t topic_len,
    const void *head, size_t head_len, const void *body, size_t body_len)
{
	tfeed *f    = pub_feed_of(p, topic, topic_len);
	bool   sent = false;
	if (p->has_sock)
		sent = pub_send_on(aio, p->sock, &p->pipes, topic, topic_len,
		    head, head_len, body, body_len);
	if (f != NULL)
		sent = pub_send_on(aio, f->sock, &f->pipes, topic, topic_len,
		           head, head_len, body, body_len)
		    || sent;
	return sent;
}

/* Send the batch being built, if any: topic + array of its events. */
static void
pub_flush(publisher *p)
{
	msgpack_packer pk;

	if (p->n_batch == 0)
		return;
	msgpack_sbuffer_clear(&p->buf);
	msgpack_packer_init(&pk, &p->buf, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, p->n_batch);
	if (pub_send(p, p->aio, p->topic, p->topic_len, p->buf.data,
	        p->buf.size, p->batch.data, p->batch.size))
		atomic_fetch_add(&p->sent, p->n_batch);
	p->n_batch = 0;
	msgpack_sbuffer_clear(&p->batch);
}

/*
 * Add one event to the batch. A batch holds consecutive positions of one
 * stream (one commit, usually), so that one topic names all its events;
 * anything else starts a new message.
 */
static bool
pub_decode(publisher *p, const void *data, size_t len, uint64_t position,
    ev_view *ev)
{
	msgpack_zone_clear(&p->zone);
	return ev_decode(data, len, position, &p->zone, ev) == SL_OK;
}

/* An event that cannot be decoded is not sent: subscribers see the gap,
 * and their read reports the damage. */
static int
pub_undecodable(publisher *p, uint64_t position)
{
	log_error("publisher", "event at position %" PRIu64
	    " cannot be decoded", position);
	pub_flush(p);
	p->next = position + 1;
	return atomic_load(&p->stop) ? 1 : 0;
}

static int
pub_one(void *arg, uint64_t position, const void *data, size_t len)
{
	publisher     *p = arg;
	ev_view        ev;
	ev_head        h;
	msgpack_packer pk;
	char           topic[PUB_TOPIC_MAX];
	size_t         tlen;
	/* the wire map straight from the stored bytes (ev_pack_wire_raw);
	 * decoded only when it does not take the record */
	bool raw = ev_peek(data, len, &h) == SL_OK;

	if (!raw) {
		if (!pub_decode(p, data, len, position, &ev))
			return pub_undecodable(p, position);
		h.tenant     = ev.tenant;
		h.tenant_len = strlen(ev.tenant);
		h.stream     = ev.stream;
		h.stream_len = strlen(ev.stream);
	}
	tlen = feed_topic(topic, sizeof(topic), h.tenant, h.tenant_len,
	    h.stream, h.stream_len, 1);
	if (p->n_batch > 0
	    && (position != p->next || tlen != p->topic_len
	        || memcmp(topic, p->topic, tlen) != 0
	        || p->n_batch >= PUB_BATCH_EVENTS
	        || p->batch.size >= PUB_BATCH_BYTES))
		pub_flush(p);
	if (p->n_batch == 0) {
		memcpy(p->topic, topic, tlen);
		p->topic_len = tlen;
	}
	msgpack_packer_init(&pk, &p->batch, msgpack_sbuffer_write);
	if (raw && ev_pack_wire_raw(&pk, data, len, position, 0) != SL_OK) {
		raw = false;
		if (!pub_decode(p, data, len, position, &ev))
			return pub_undecodable(p, position);
	}
	if (!raw)
		ev_pack_wire(&pk, &ev);
	p->n_batch++;
	p->next = position + 1;
	return atomic_load(&p->stop) ? 1 : 0;
}

/* "h\n" + {"head": N}: lets a subscriber whose last messages were dropped
 * (or that filters streams) learn that the log moved on. */
static void
pub_head(publisher *p, uint64_t head)
{
	msgpack_packer pk;

	msgpack_sbuffer_clear(&p->buf);
	msgpack_packer_init(&pk, &p->buf, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	mp_pack_kv_u64(&pk, "head", head);
	if (p->has_sock)
		pub_send_on(p->aio, p->sock, &p->pipes, FEED_TOPIC_HEAD,
		    strlen(FEED_TOPIC_HEAD), NULL, 0, p->buf.data,
		    p->buf.size);
	for (size_t i = 0; i < p->n_feeds; i++)
		pub_send_on(p->aio, p->feeds[i].sock, &p->feeds[i].pipes,
		    FEED_TOPIC_HEAD,
		    strlen(FEED_TOPIC_HEAD), NULL, 0, p->buf.data,
		    p->buf.size);
}

static void *
pub_main(void *arg)
{
	publisher *p         = arg;
	int64_t    last_head = 0;

	while (!atomic_load(&p->stop)) {
		uint64_t head
		    = store_wait(p->s, p->next, FEED_HEAD_INTERVAL_MS);
		int64_t now;

		while (p->next < head && !atomic_load(&p->stop)) {
			uint64_t before = p->next;
			if (!pub_listening(p)) {
				/* Nobody connected: what pub0 would drop is
				 * not read. A subscriber that connects later
				 * reads what came before its connection, as
				 * it always has. */
				p->next = head;
				break;
			}
			int      rc     = store_scan(
			             p->s, p->next, PUB_SCAN_BATCH, pub_one, p, NULL);
			/* Each read ends a message: nothing waits for the
			 * next commit. */
			pub_flush(p);
			if (rc != SL_OK && rc != 1) {
				/* Logged by the store; try again on the next
				 * round rather than spin. */
				break;
			}
			if (p->next == before)
				break; /* nothing there yet: cannot happen */
		}
		now = pub_now_ms();
		if (now - last_head >= FEED_HEAD_INTERVAL_MS) {
			pub_head(p, p->next);
			last_head = now;
		}
	}
	return NULL;
}

static void
pub_free(publisher *p)
{
	/* NNG 1.5.2 can hang in nng_close() under load: bounded close. A
	 * close that returns ran every pipe callback (REM_POST comes before
	 * a pipe leaves its socket); one that gave up may still call them,
	 * with p or a feed as their argument, so p is then left to the
	 * exit. */
	bool closed = true;
	if (p->has_sock)
		closed = server_close_socket(p->sock) && closed;
	for (size_t i = 0; i < p->n_feeds; i++)
		if (p->feeds[i].open)
			closed = server_close_socket(p->feeds[i].sock) && closed;
	if (!closed)
		return;
	for (size_t i = 0; i < p->n_feeds; i++) {
		free(p->feeds[i].tenant);
		free(p->feeds[i].url);
	}
	free(p->feeds);
	if (p->aio != NULL)
		nng_aio_free(p->aio);
	msgpack_zone_destroy(&p->zone);
	msgpack_sbuffer_destroy(&p->buf);
	msgpack_sbuffer_destroy(&p->batch);
	free(p);
}

/*
 * Connections, counted so that nothing is read or packed for nobody
 * (pub_send_on, pub_main). Up at ADD_PRE, down at REM_POST: NNG runs
 * REM_POST for every pipe that had ADD_PRE, also for one closed there
 * (refused) or failing to start, which get no ADD_POST. A pipe is in
 * the count from before pub0 can send to it until after it cannot.
 */
static void
pub_count_pipe(atomic_int *pipes, nng_pipe_ev ev)
{
	if (ev == NNG_PIPE_EV_ADD_PRE)
		atomic_fetch_add(pipes, 1);
	else if (ev == NNG_PIPE_EV_REM_POST)
		atomic_fetch_sub(pipes, 1);
}

/* A connection to the feed of every tenant (counted; on tls+tcp://,
 * its certificate logged). */
static void
pub_pipe_cb(nng_pipe pp, nng_pipe_ev ev, void *arg)
{
	publisher *p = arg;
	pub_count_pipe(&p->pipes, ev);
	if (ev == NNG_PIPE_EV_ADD_POST)
		net_tls_log_peer("publisher", pp);
}

/* A connection to a tenant's feed: counted, and admitted or closed
 * before anything is sent on it. */
static void
pub_feed_pipe_cb(nng_pipe pp, nng_pipe_ev ev, void *arg)
{
	tfeed *f = arg;
	pub_count_pipe(&f->pipes, ev);
	if (ev == NNG_PIPE_EV_ADD_PRE
	    && !f->p->admit(f->p->admit_arg, f->tenant, pp))
		nng_pipe_close(pp);
}

/* Open a pub0 socket on url (the feed of every tenant, or one tenant's
 * with its admission). @return 0 or NNG's error (logged). */
static int
pub_open(publisher *p, nng_socket *sock, const char *url, tfeed *f)
{
	int rv;
	if ((rv = nng_pub0_open(sock)) != 0) {
		log_error("publisher", "cannot open a pub socket: %s",
		    nng_strerror(rv));
		return rv;
	}
	nng_socket_set_int(*sock, NNG_OPT_SENDBUF, PUB_SENDBUF);
	nng_pipe_cb cb  = f != NULL ? pub_feed_pipe_cb : pub_pipe_cb;
	void       *arg = f != NULL ? (void *) f : (void *) p;
	nng_pipe_notify(*sock, NNG_PIPE_EV_ADD_PRE, cb, arg);
	nng_pipe_notify(*sock, NNG_PIPE_EV_REM_POST, cb, arg);
	if (f == NULL && sl_tls_url(url)) /* a subscriber's certificate */
		nng_pipe_notify(*sock, NNG_PIPE_EV_ADD_POST, cb, arg);
	/* NNG removes an ipc:// file left by a daemon that died, and refuses
	 * one that a live process listens on. */
	if ((rv = net_listen(*sock, url, NULL)) != 0) {
		log_error("publisher", "cannot listen on %s: %s", url,
		    nng_strerror(rv));
		server_close_socket(*sock);
	}
	return rv;
}

int
pub_start(const char *url, const pub_feed *feeds, size_t n_feeds,
    pub_admit_fn admit, void *arg, store *s, publisher **out)
{
	publisher *p;
	int        rv;

	*out = NULL;
	if ((url == NULL && n_feeds == 0) || s == NULL
	    || (n_feeds > 0 && admit == NULL))
		return SL_EINVAL;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return SL_ENOMEM;
	p->s         = s;
	p->admit     = admit;
	p->admit_arg = arg;
	atomic_init(&p->stop, false);
	atomic_init(&p->sent, 0);
	atomic_init(&p->pipes, 0);
	atomic_init(&p->gap_reads, 0);
	atomic_init(&p->gap_events, 0);
	msgpack_sbuffer_init(&p->buf);
	msgpack_sbuffer_init(&p->batch);
	if (!msgpack_zone_init(&p->zone, 4096)) {
		msgpack_sbuffer_destroy(&p->buf);
		msgpack_sbuffer_destroy(&p->batch);
		free(p);
		return SL_ENOMEM;
	}
	if ((n_feeds > 0
	        && (p->feeds = calloc(n_feeds, sizeof(*p->feeds))) == NULL)
	    || nng_aio_alloc(&p->aio, NULL, NULL) != 0) {
		pub_free(p);
		return SL_ENOMEM;
	}
	/* as nng_sendmsg's NNG_FLAG_NONBLOCK (pub0 never waits anyway) */
	nng_aio_set_timeout(p->aio, NNG_DURATION_ZERO);
	if (url != NULL) {
		if ((rv = pub_open(p, &p->sock, url, NULL)) != 0) {
			pub_free(p);
			return pub_nng_err(rv);
		}
		p->has_sock = true;
	}
	for (size_t i = 0; i < n_feeds; i++) {
		tfeed *f   = &p->feeds[i];
		f->p       = p;
		atomic_init(&f->pipes, 0);
		f->tenant  = strdup(feeds[i].tenant);
		f->url     = strdup(feeds[i].url);
		p->n_feeds = i + 1;
		if (f->tenant == NULL || f->url == NULL) {
			pub_free(p);
			return SL_ENOMEM;
		}
		f->tlen = strlen(f->tenant);
		if ((rv = pub_open(p, &f->sock, f->url, f)) != 0) {
			pub_free(p);
			return pub_nng_err(rv);
		}
		f->open = true;
	}
	/* From the head on: what came before is history, read over req/rep. */
	p->next = store_next_position(s);
	if (pthread_create(&p->thr, NULL, pub_main, p) != 0) {
		log_error("publisher", "cannot start the publisher thread");
		pub_free(p);
		return SL_ENOMEM;
	}
	pthread_setname_np(p->thr, "publisher");
	if (url != NULL)
		log_info("publisher",
		    "publishing on %s from position %" PRIu64, url, p->next);
	for (size_t i = 0; i < p->n_feeds; i++)
		log_info("publisher",
		    "publishing tenant %s's events on %s from position "
		    "%" PRIu64
		    " (to connections whose certificate may read it)",
		    p->feeds[i].tenant, p->feeds[i].url, p->next);
	*out = p;
	return SL_OK;
}

int
pub_listen_also(publisher *p, const char *url)
{
	if (!p->has_sock)
		return SL_EINVAL;
	int rv = net_listen(p->sock, url, NULL);
	if (rv != 0) {
		log_error("publisher", "cannot listen on %s: %s", url,
		    nng_strerror(rv));
		return SL_ENET;
	}
	log_info("publisher", "also publishing on %s", url);
	return SL_OK;
}

void
pub_stop(publisher *p)
{
	if (p == NULL)
		return;
	atomic_store(&p->stop, true);
	/* A spurious wake for the processors, which wait in a loop. */
	store_wake_all(p->s);
	pthread_join(p->thr, NULL);
	pub_free(p);
}

void
pub_send_raw(publisher *p, const char *topic, size_t topic_len,
    const void *body, size_t body_len)
{
	(void) pub_send(p, NULL, topic, topic_len, NULL, 0, body, body_len);
}

bool
pub_listening(publisher *p)
{
	if (atomic_load_explicit(&p->pipes, memory_order_relaxed) > 0)
		return true;
	for (size_t i = 0; i < p->n_feeds; i++)
		if (atomic_load_explicit(&p->feeds[i].pipes, memory_order_relaxed)
		    > 0)
			return true;
	return false;
}

uint64_t
pub_sent(publisher *p)
{
	return p != NULL ? atomic_load(&p->sent) : 0;
}

void
pub_note_gap(publisher *p, uint64_t n)
{
	if (p == NULL)
		return;
	atomic_fetch_add(&p->gap_reads, 1);
	atomic_fetch_add(&p->gap_events, n);
}

void
pub_gaps(publisher *p, uint64_t *reads, uint64_t *events)
{
	*reads  = p != NULL ? atomic_load(&p->gap_reads) : 0;
	*events = p != NULL ? atomic_load(&p->gap_events) : 0;
}
