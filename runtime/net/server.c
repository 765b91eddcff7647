/*
 * The req/rep API server: one NNG rep0 socket, a pool of contexts (one per
 * request in flight), each a small state machine: receive -> queue on a
 * lane -> a lane's worker runs the handler -> api_reply sends on the same
 * context -> receive again. NNG's receive callback only classifies and
 * queues, so no op runs on NNG's threads and slow ops (their own lane, a
 * bounded queue) never hold the workers or contexts of fast ones.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include <sluice/errors.h>

#include "lane.h"
#include "listen.h"
#include "log.h"
#include "monotime.h"
#include "mp.h"
#include "nngclose.h"
#include "server.h"
#include "tls.h"

/*
 * One worker context. Two aios, so that each only ever carries one kind of
 * operation: a reply may be sent from another thread (the store's writer)
 * while the receive callback that started the call is still returning.
 */
struct api_call {
	server  *srv;
	nng_ctx  ctx;
	bool     ctx_open;
	nng_aio *recv_aio;
	nng_aio *send_aio;
	nng_msg *req; /* the request being handled; freed by api_reply */
	/* the connection req came on, and whether it is gone (or the server
	 * stopping): both set under pipes_mu, cancelled read anywhere */
	uint32_t    pipe;
	atomic_bool cancelled;
	bool        pipe_busy; /* counted in its pipe's busy (pipes_mu) */
	msgpack_zone zone;     /* api_call_zone (zone_ok: initialized) */
	bool         zone_ok;
};

/* One open connection: the idle reaper closes it once it had no request
 * for limits.idle_timeout_ms and none of its requests is being handled. */
typedef struct server_pipe {
	uint32_t id;
	uint32_t busy;    /* its requests received and not yet answered */
	int64_t  last_ns; /* connected, last request received or reply sent */
	bool     closing; /* the reaper closed it (once) */
	uint32_t tag;     /* server_pipe_tag's (0: none) */
} server_pipe;

struct server {
	server_settings set;
	char           *url;
	nng_socket      sock;
	bool            sock_open;
	size_t          max_request;
	api_call       *calls;
	uint32_t        n_calls;
	pthread_mutex_t mtx;
	pthread_cond_t  cv;
	/* Per request, mtx is taken once (the reply's in_flight--, so that
	 * server_stop frees nothing under a reply): the rest is atomic. */
	atomic_bool     draining;  /* new requests are answered ECLOSED */
	atomic_bool     closing;   /* no new receives are posted once set */
	atomic_uint     in_flight; /* calls received and not yet replied;
	                              decremented under mtx */
	lane           *lanes[SERVER_LANES];
	/* open connections (NNG pipe ids), under pipes_mu: a transient
	 * projection is only started for a client still connected, and
	 * ends when its connection does */
	pthread_mutex_t pipes_mu;
	server_pipe    *pipes;
	size_t          n_pipes, cap_pipes;
	/* limits.max_connections: refused connections since the last
	 * warning, and when that was */
	uint64_t refused;
	int64_t  refused_warn_ns;
	/* since the start, for status (refused: pipes_mu; idle: atomic) */
	uint64_t refused_total, idle_closed_total;
	/* the idle reaper (limits.idle_timeout_ms), waits on reap_cv under
	 * pipes_mu */
	pthread_cond_t  reap_cv;
	bool            reap_stop;
	bool            reap_started;
	pthread_t       reap_thread;
	uint32_t        pipe_cbs;  /* pipe callbacks running (pipes_mu) */
	bool            pipes_lost; /* a connection found no room in pipes */
	bool            pipes_off; /* stopping: callbacks do nothing */
	/* deferred replies (api_defer), run in order by the reply thread */
	pthread_mutex_t rq_mu;
	pthread_cond_t  rq_cv;
	api_deferred   *rq_head, **rq_tail;
	bool            rq_waiting; /* the thread sleeps on rq_cv */
	bool            rq_stop;
	bool            rq_started;
	pthread_t       rq_thread;
};

/* How long a close waits for NNG (see server_close_socket), and how long
 * once NNG's reaper is known to be stuck. */
#define SERVER_CLOSE_TIMEOUT_MS 2000
#define SERVER_CLOSE_WEDGED_MS  100

/* The slow lane's workers' nice value above the daemon's. */
#define SERVER_SLOW_NICE 10

/* At shutdown, new requests are answered ECLOSED for this long before the
 * socket closes, so that clients stop sending (see server_close_socket). */
#define SERVER_DRAIN_MS 100

/* Set when a close was abandoned: NNG's (process-wide) reaper is stuck, so
 * closing any socket that has peers will hang from now on. */
static atomic_bool server_nng_wedged;

static int
server_nng_err(int rv)
{
	switch (rv) {
	case 0:
		return SL_OK;
	case NNG_ENOMEM:
		return SL_ENOMEM;
	case NNG_ETIMEDOUT:
		return SL_ETIMEDOUT;
	case NNG_ECLOSED:
		return SL_ECLOSED;
	case NNG_EINVAL:
	case NNG_EADDRINVAL:
	case NNG_ENOTSUP:
		return SL_ECONFIG;
	default:
		return SL_ENET;
	}
}

static void
server_post_recv(api_call *call)
{
	server *srv = call->srv;

	/* No lock (this runs once per request, on NNG's threads): a receive
	 * that slips past server_stop's closing is ended by its
	 * nng_aio_stop, which refuses or cancels it (the callback then sees
	 * NNG_ECANCELED or NNG_ECLOSED and returns). nng_ctx_recv never
	 * runs the callback inline. */
	if (!atomic_load(&srv->closing))
		nng_ctx_recv(call->ctx, call->recv_aio);
}

static void server_call_pipe(server *srv, api_call *call);
static server_pipe *server_pipe_find_locked(server *srv, uint32_t pipe);

static void
server_reply_error(api_call *call, int code, const char *message)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	mp_reply_err(&pk, code, message);
	api_reply(call, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
}

static void server_run(void *arg, void *item);

static void
server_recv_cb(void *arg)
{
	api_call *call = arg;
	server   *srv  = call->srv;
	int       rv   = nng_aio_result(call->recv_aio);
	nng_msg  *msg;
	size_t    len;
	bool      draining;

	if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
		return;
	if (rv != 0) {
		log_warn("server", "receive failed: %s", nng_strerror(rv));
		server_post_recv(call);
		return;
	}
	msg = nng_aio_get_msg(call->recv_aio);
	nng_aio_set_msg(call->recv_aio, NULL);

	/* server_stop waits for in_flight only after this callback ended
	 * (nng_aio_stop of every receive), so no lock is needed here */
	atomic_fetch_add(&srv->in_flight, 1);
	draining = atomic_load(&srv->draining);

	call->req = msg;
	len       = nng_msg_len(msg);
	if (draining) {
		server_reply_error(
		    call, SL_ECLOSED, "the server is shutting down");
		return;
	}
	/* NNG's own limit (RECVMAXSZ) is set well above ours because NNG
	 * drops an over-size message without a word; here it gets a reply. */
	size_t max_request = __atomic_load_n(&srv->max_request, __ATOMIC_RELAXED);
	if (len > max_request) {
		char text[128];
		snprintf(text, sizeof(text),
		    "request of %zu bytes is over the limit of %zu bytes", len,
		    max_request);
		server_reply_error(call, SL_ETOOBIG, text);
		return;
	}
	server_call_pipe(srv, call);
	server_lane lane = srv->set.classify != NULL
	    ? srv->set.classify(srv->set.arg, nng_msg_body(msg), len)
	    : SERVER_LANE_FAST;
	if (lane == SERVER_LANE_INLINE) {
		server_run(srv, call);
		return;
	}
	if (lane != SERVER_LANE_SLOW)
		lane = SERVER_LANE_FAST;
	/* Never waits: a full slow lane is answered at once. Nothing of
	 * call may be touched after a push: a worker may have replied and
	 * the next request come in already. */
	if (!lane_push(srv->lanes[lane], call)) {
		char text[160];
		if (lane == SERVER_LANE_SLOW)
			snprintf(text, sizeof(text),
			    "the server is busy: %u slow requests wait "
			    "already (limits.api_queue); retry later",
			    srv->set.slow_queue);
		else
			snprintf(text, sizeof(text),
			    "the server is busy; retry later");
		server_reply_error(call, SL_EBUSY, text);
	}
}

/* A lane's worker: run one queued call, unless its client is gone or the
 * server is stopping. */
static void
server_run(void *arg, void *item)
{
	server   *srv  = arg;
	api_call *call = item;

	if (api_call_cancelled(call)) {
		server_reply_error(call, SL_ECLOSED,
		    "the request was cancelled: its client is gone or the "
		    "server is shutting down");
		return;
	}
	srv->set.handle(srv->set.arg, call, nng_msg_body(call->req),
	    nng_msg_len(call->req));
}

static void
server_send_cb(void *arg)
{
	api_call *call = arg;
	int       rv   = nng_aio_result(call->send_aio);

	if (rv != 0) {
		/* On failure the message is still ours. */
		nng_msg_free(nng_aio_get_msg(call->send_aio));
		nng_aio_set_msg(call->send_aio, NULL);
		if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
			return;
		log_debug("server", "reply not sent: %s", nng_strerror(rv));
	}
	server_post_recv(call);
}

void
api_reply(api_call *call, const void *data, size_t len)
{
	nng_msg  *rep = call->req;
	uintptr_t p   = (uintptr_t) data;

	/* The request's message carries the reply, unless the reply's bytes
	 * lie in it: no allocation per reply (NNG keeps the buffer when the
	 * reply fits in it, as a commit's does). */
	if (rep != NULL && len > 0) {
		uintptr_t body = (uintptr_t) nng_msg_body(rep);
		size_t    blen = nng_msg_len(rep);
		if (p + len <= body || p >= body + blen) {
			nng_msg_clear(rep);
			if (nng_msg_append(rep, data, len) == 0) {
				call->req = NULL;
				api_reply_msg(call, rep);
				return;
			}
		}
	}
	rep = NULL;
	if (nng_msg_alloc(&rep, len) == 0 && len > 0)
		memcpy(nng_msg_body(rep), data, len);
	api_reply_msg(call, rep);
}

void
api_reply_msg(api_call *call, nng_msg *rep)
{
	server *srv = call->srv;

	/* Before the send: once it is done the call serves another pipe. */
	if (call->pipe_busy) {
		server_pipe *sp;
		pthread_mutex_lock(&srv->pipes_mu);
		if ((sp = server_pipe_find_locked(srv, call->pipe)) != NULL) {
			sp->busy--;
			sp->last_ns = mono_ns();
		}
		call->pipe_busy = false;
		pthread_mutex_unlock(&srv->pipes_mu);
	}

	/* The request (and everything api_handle borrowed from it) ends
	 * here; the reply was made first in case it pointed into it (or it
	 * is the request's message, api_reply). */
	if (call->req != NULL)
		nng_msg_free(call->req);
	call->req = NULL;

	if (rep != NULL) {
		nng_aio_set_msg(call->send_aio, rep);
		nng_ctx_send(call->ctx, call->send_aio);
	} else {
		/* The requester will time out; the context serves on. */
		log_error("server", "cannot allocate a reply");
		server_post_recv(call);
	}

	/* Last: server_stop may free everything once in_flight drops. */
	pthread_mutex_lock(&srv->mtx);
	if (atomic_fetch_sub(&srv->in_flight, 1) == 1)
		pthread_cond_broadcast(&srv->cv);
	pthread_mutex_unlock(&srv->mtx);
}

/* A commit's objects fit in the first chunk (a one-event commit of ~300
 * bytes decodes to about 1 KiB); a larger request adds chunks, freed at
 * the call's next request. */
#define SERVER_ZONE_CHUNK 2048

msgpack_zone *
api_call_zone(api_call *call)
{
	if (call->zone_ok) {
		msgpack_zone_clear(&call->zone);
		return &call->zone;
	}
	if (!msgpack_zone_init(&call->zone, SERVER_ZONE_CHUNK))
		return NULL;
	call->zone_ok = true;
	return &call->zone;
}

/* ---- connections (a call is cancelled when its connection goes) ---- */

uint32_t
api_call_pipe(api_call *call)
{
	return call->pipe;
}

int
api_call_peer(api_call *call, sl_tls_peer_info *out)
{
	return net_tls_msg_peer(call->req, out);
}

bool
api_call_cancelled(api_call *call)
{
	return atomic_load_explicit(&call->cancelled, memory_order_relaxed);
}

static server_pipe *
server_pipe_find_locked(server *srv, uint32_t pipe)
{
	for (size_t i = 0; i < srv->n_pipes; i++)
		if (srv->pipes[i].id == pipe)
			return &srv->pipes[i];
	return NULL;
}

static bool
server_pipe_alive_locked(server *srv, uint32_t pipe)
{
	return server_pipe_find_locked(srv, pipe) != NULL;
}

int
server_pipe_tag(server *srv, uint32_t pipe, uint32_t tag, uint32_t max)
{
	server_pipe *sp;
	uint32_t     n  = 0;
	int          rc = SL_OK;
	pthread_mutex_lock(&srv->pipes_mu);
	if ((sp = server_pipe_find_locked(srv, pipe)) == NULL)
		rc = SL_ENOTFOUND;
	else if (sp->tag != tag) {
		/* once per connection (and tag): the table is short */
		for (size_t i = 0; i < srv->n_pipes; i++)
			n += srv->pipes[i].tag == tag;
		if (n >= max)
			rc = SL_EFULL;
		else
			sp->tag = tag;
	}
	pthread_mutex_unlock(&srv->pipes_mu);
	return rc;
}

bool
server_pipe_alive(server *srv, uint32_t pipe)
{
	pthread_mutex_lock(&srv->pipes_mu);
	bool alive = server_pipe_alive_locked(srv, pipe);
	pthread_mutex_unlock(&srv->pipes_mu);
	return alive;
}

/* Note the connection of a call's request; under the lock that a removed
 * connection's callback takes, so no call of a gone one is missed. */
static void
server_call_pipe(server *srv, api_call *call)
{
	int          id = nng_pipe_id(nng_msg_get_pipe(call->req));
	server_pipe *sp;
	pthread_mutex_lock(&srv->pipes_mu);
	call->pipe = id > 0 ? (uint32_t) id : 0;
	/* busy until its reply: the reaper leaves the connection alone */
	if (call->pipe != 0
	    && (sp = server_pipe_find_locked(srv, call->pipe)) != NULL) {
		sp->busy++;
		sp->last_ns     = mono_ns();
		call->pipe_busy = true;
	}
	/* gone already (unless it never got into the set) */
	atomic_store(&call->cancelled,
	    call->pipe == 0
	        || (!server_pipe_alive_locked(srv, call->pipe)
	            && !srv->pipes_lost));
	pthread_mutex_unlock(&srv->pipes_mu);
}

/* NNG's pipe events: keep the set of open connections; a removed one
 * ends the transient projections its client started. */
static void
server_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	server  *srv = arg;
	int      sid = nng_pipe_id(p);
	uint32_t id  = sid > 0 ? (uint32_t) sid : 0;
	bool     was = false, refuse = false;

	if (id == 0)
		return;
	pthread_mutex_lock(&srv->pipes_mu);
	if (srv->pipes_off) {
		pthread_mutex_unlock(&srv->pipes_mu);
		return;
	}
	srv->pipe_cbs++;
	if (ev == NNG_PIPE_EV_ADD_PRE
	    && srv->n_pipes >= srv->set.max_connections) {
		/* limits.max_connections: the ones connected keep being
		 * served; a warning at most once a second */
		int64_t now = mono_ns();
		refuse      = true;
		srv->refused++;
		srv->refused_total++;
		if (now - srv->refused_warn_ns >= 1000000000LL) {
			log_warn("server",
			    "refused %llu connection(s) since the last "
			    "warning: %zu open, limits.max_connections is %u",
			    (unsigned long long) srv->refused, srv->n_pipes,
			    srv->set.max_connections);
			srv->refused         = 0;
			srv->refused_warn_ns = now;
		}
	} else if (ev == NNG_PIPE_EV_ADD_PRE) {
		if (srv->n_pipes == srv->cap_pipes) {
			size_t ncap = srv->cap_pipes ? srv->cap_pipes * 2 : 16;
			server_pipe *np
			    = realloc(srv->pipes, ncap * sizeof(*np));
			if (np != NULL) {
				srv->pipes     = np;
				srv->cap_pipes = ncap;
			}
		}
		/* without room the connection just cannot hold transient
		 * projections (their start is refused) nor time out */
		if (srv->n_pipes < srv->cap_pipes)
			srv->pipes[srv->n_pipes++] = (server_pipe) {
				.id      = id,
				.last_ns = mono_ns(),
			};
		else
			srv->pipes_lost = true;
	} else if (ev == NNG_PIPE_EV_REM_POST) {
		for (size_t i = 0; i < srv->n_pipes; i++) {
			if (srv->pipes[i].id == id) {
				srv->pipes[i] = srv->pipes[--srv->n_pipes];
				was           = true;
				break;
			}
		}
		/* its calls stop (a one-time query checks per event) */
		for (uint32_t i = 0; i < srv->n_calls; i++)
			if (srv->calls[i].pipe == id)
				atomic_store(&srv->calls[i].cancelled, true);
	}
	pthread_mutex_unlock(&srv->pipes_mu);
	/* NNG allows closing a pipe in ADD_PRE: it is never started */
	if (refuse)
		nng_pipe_close(p);
	else if (ev == NNG_PIPE_EV_ADD_PRE)
		net_tls_log_peer("server", p); /* tls+tcp:// only */
	/* after it left the set: no transient starts for it from now on */
	if (was && srv->set.pipe_closed != NULL)
		srv->set.pipe_closed(srv->set.arg, id);
	pthread_mutex_lock(&srv->pipes_mu);
	srv->pipe_cbs--;
	pthread_mutex_unlock(&srv->pipes_mu);
}

/* ---- the idle reaper (limits.idle_timeout_ms) ---- */

/* Lines logged per second for closed idle connections; more are counted
 * and summed up in one line. */
#define SERVER_REAP_LOG_PER_S 10

/* Close the connections idle for the timeout; their REM_POST callback
 * (on NNG's reaper) removes them and ends their transient runs. */
static void *
server_reaper(void *arg)
{
	server   *srv    = arg;
	uint32_t *ids    = NULL;
	size_t    cap    = 0;
	int64_t   win_ns = 0; /* the log's one-second window */
	unsigned  logged = 0;
	uint64_t  quiet  = 0; /* closes not logged in the window */

	pthread_mutex_lock(&srv->pipes_mu);
	while (!srv->reap_stop) {
		/* read each round: SIGHUP may change it (0: never) */
		uint32_t idle_ms = srv->set.idle_timeout_ms;
		int64_t  timeout = (int64_t) idle_ms * 1000000LL;
		/* a quarter of the timeout, within 25 ms .. 1 s */
		int64_t period = timeout / 4;
		if (period < 25000000LL)
			period = 25000000LL;
		if (period > 1000000000LL || idle_ms == 0)
			period = 1000000000LL;
		struct timespec ts;
		abs_deadline(&ts, mono_ns() + period);
		pthread_cond_timedwait(&srv->reap_cv, &srv->pipes_mu, &ts);
		if (srv->reap_stop)
			break;
		if (idle_ms == 0 || idle_ms != srv->set.idle_timeout_ms)
			continue;
		int64_t now = mono_ns();
		size_t  n   = 0;
		for (size_t i = 0; i < srv->n_pipes; i++) {
			server_pipe *sp = &srv->pipes[i];
			if (sp->closing || sp->busy > 0
			    || now - sp->last_ns < timeout)
				continue;
			if (n == cap) {
				size_t    ncap = cap ? cap * 2 : 16;
				uint32_t *ni
				    = realloc(ids, ncap * sizeof(*ni));
				if (ni == NULL)
					break; /* the next round */
				ids = ni;
				cap = ncap;
			}
			sp->closing = true;
			ids[n++]    = sp->id;
		}
		pthread_mutex_unlock(&srv->pipes_mu);
		if (now - win_ns >= 1000000000LL) {
			if (quiet > 0)
				log_info("server",
				    "closed %llu more idle connection(s) "
				    "(limits.idle_timeout_ms)",
				    (unsigned long long) quiet);
			win_ns = now;
			logged = 0;
			quiet  = 0;
		}
		for (size_t i = 0; i < n; i++) {
			nng_pipe p = NNG_PIPE_INITIALIZER;
			p.id       = ids[i];
			/* NNG_ENOENT: it closed meanwhile, nothing to do */
			if (nng_pipe_close(p) != 0)
				continue;
			__atomic_fetch_add(
			    &srv->idle_closed_total, 1, __ATOMIC_RELAXED);
			if (logged < SERVER_REAP_LOG_PER_S) {
				logged++;
				log_info("server",
				    "closed connection %u: no request for %u "
				    "ms "
				    "(limits.idle_timeout_ms)",
				    ids[i], idle_ms);
			} else {
				quiet++;
			}
		}
		pthread_mutex_lock(&srv->pipes_mu);
	}
	pthread_mutex_unlock(&srv->pipes_mu);
	free(ids);
	return NULL;
}

static int
server_reaper_start(server *srv)
{
	if (pthread_create(&srv->reap_thread, NULL, server_reaper, srv) != 0) {
		log_error("server", "cannot start the idle reaper");
		return SL_ENOMEM;
	}
	srv->reap_started = true;
	pthread_setname_np(srv->reap_thread, "api-idle");
	return SL_OK;
}

/* Twice our limit: requests between the two get an ETOOBIG reply; beyond
 * it NNG closes the connection (see docs/protocol.md). */
static void
server_set_recv_max(server *srv)
{
	size_t max = __atomic_load_n(&srv->max_request, __ATOMIC_RELAXED);
	nng_socket_set_size(srv->sock, NNG_OPT_RECVMAXSZ,
	    max <= (SIZE_MAX - 65536) / 2 ? max * 2 + 65536 : 0);
}

int
server_set_limits(server *srv, size_t max_request, uint32_t max_connections,
    uint32_t idle_timeout_ms)
{
	if (max_request == 0 || max_connections == 0)
		return SL_EINVAL;
	__atomic_store_n(&srv->max_request, max_request, __ATOMIC_RELAXED);
	server_set_recv_max(srv);
	pthread_mutex_lock(&srv->pipes_mu);
	srv->set.max_connections = max_connections;
	srv->set.idle_timeout_ms = idle_timeout_ms;
	pthread_cond_signal(&srv->reap_cv);
	pthread_mutex_unlock(&srv->pipes_mu);
	/* off at start, on now */
	if (idle_timeout_ms > 0 && !srv->reap_started)
		return server_reaper_start(srv);
	return SL_OK;
}

int
server_listen_also(server *srv, const char *url)
{
	int rv = net_listen(srv->sock, url, NULL);
	if (rv != 0) {
		log_error("server", "cannot listen on %s: %s", url,
		    nng_strerror(rv));
		return server_nng_err(rv);
	}
	log_info("server", "also listening on %s", url);
	return SL_OK;
}

static void
server_reaper_stop(server *srv)
{
	if (!srv->reap_started)
		return;
	pthread_mutex_lock(&srv->pipes_mu);
	srv->reap_stop = true;
	pthread_cond_signal(&srv->reap_cv);
	pthread_mutex_unlock(&srv->pipes_mu);
	pthread_join(srv->reap_thread, NULL);
	srv->reap_started = false;
}

/* No pipe callback runs after this (the socket may outlive srv when its
 * close hangs, see server_close_socket). */
static void
server_pipes_off(server *srv)
{
	struct timespec ms = { 0, 1000000L };
	if (srv->sock_open) {
		nng_pipe_notify(srv->sock, NNG_PIPE_EV_ADD_PRE, NULL, NULL);
		nng_pipe_notify(srv->sock, NNG_PIPE_EV_REM_POST, NULL, NULL);
	}
	pthread_mutex_lock(&srv->pipes_mu);
	srv->pipes_off = true;
	while (srv->pipe_cbs > 0) {
		pthread_mutex_unlock(&srv->pipes_mu);
		nanosleep(&ms, NULL);
		pthread_mutex_lock(&srv->pipes_mu);
	}
	pthread_mutex_unlock(&srv->pipes_mu);
}

/*
 * An ipc:// path left behind by a daemon that died is removed; one that a
 * live daemon still answers on is not (listening would steal it).
 */
static int
server_clear_stale_ipc(const char *url)
{
	const char        *path;
	struct stat        st;
	struct sockaddr_un sa;
	int                fd, rc;

	if (strncmp(url, "ipc://", 6) != 0)
		return SL_OK;
	path = url + 6;
	if (lstat(path, &st) != 0 || !S_ISSOCK(st.st_mode))
		return SL_OK;
	if (strlen(path) >= sizeof(sa.sun_path))
		return SL_OK; /* let nng_listen report it */
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return SL_OK;
	rc = connect(fd, (struct sockaddr *) &sa, sizeof(sa));
	close(fd);
	if (rc == 0) {
		log_error(
		    "server", "%s: another process is listening there", url);
		return SL_ENET;
	}
	if (errno == ECONNREFUSED && unlink(path) == 0)
		log_info("server", "removed stale socket %s", path);
	return SL_OK;
}

/*
 * NNG 1.5.2 (Debian 12's libnng) can hang for good in nng_close() of a rep0
 * socket whose peers are still sending: its reaper waits on a task that
 * never runs (nanomsg/nng#1543, #1813, fixed upstream after 1.7). By the
 * time we close, every aio of ours is stopped, so nothing of ours runs
 * again; the close runs on a helper thread, and if it has not finished in
 * time the socket is left to the process exit instead of hanging shutdown.
 * Once that happened, NNG's reaper is stuck for the process, so later
 * closes (e.g. the publisher's) only wait briefly.
 */
bool
server_close_socket(nng_socket sock)
{
	int ms = atomic_load(&server_nng_wedged) ? SERVER_CLOSE_WEDGED_MS
	                                         : SERVER_CLOSE_TIMEOUT_MS;
	if (sl_nng_close_bounded(sock, ms))
		return true;
	atomic_store(&server_nng_wedged, true);
	log_warn("server",
	    "an NNG socket did not close within %d ms (a known NNG 1.5 bug "
	    "with busy peers); leaving it to the exit",
	    ms);
	return false;
}

/* ---- deferred replies ---- */

void
api_defer(api_call *call, api_deferred *d)
{
	server *srv = call->srv;
	d->next     = NULL;
	pthread_mutex_lock(&srv->rq_mu);
	*srv->rq_tail = d;
	srv->rq_tail  = &d->next;
	if (srv->rq_waiting) {
		srv->rq_waiting = false;
		pthread_cond_signal(&srv->rq_cv);
	}
	pthread_mutex_unlock(&srv->rq_mu);
}

/* The reply thread: takes the whole queue at a time and runs it in
 * order. Ends once stopped and empty (server_free, after every call was
 * answered). */
static void *
server_replier(void *arg)
{
	server *srv = arg;
	pthread_mutex_lock(&srv->rq_mu);
	for (;;) {
		while (srv->rq_head == NULL && !srv->rq_stop) {
			srv->rq_waiting = true;
			pthread_cond_wait(&srv->rq_cv, &srv->rq_mu);
		}
		srv->rq_waiting = false;
		api_deferred *d = srv->rq_head;
		if (d == NULL)
			break; /* stopped and drained */
		srv->rq_head = NULL;
		srv->rq_tail = &srv->rq_head;
		pthread_mutex_unlock(&srv->rq_mu);
		while (d != NULL) {
			api_deferred *next = d->next;
			d->run(d); /* may free d */
			d = next;
		}
		pthread_mutex_lock(&srv->rq_mu);
	}
	pthread_mutex_unlock(&srv->rq_mu);
	return NULL;
}

static void
server_replier_stop(server *srv)
{
	if (!srv->rq_started)
		return;
	pthread_mutex_lock(&srv->rq_mu);
	srv->rq_stop = true;
	pthread_cond_signal(&srv->rq_cv);
	pthread_mutex_unlock(&srv->rq_mu);
	pthread_join(srv->rq_thread, NULL);
	srv->rq_started = false;
}

/* ---- start and stop ---- */

/*
 * Free everything. The aios must be stopped (or never started). With
 * bounded, the socket is closed by server_close_socket; it closes the
 * contexts too.
 */
static void
server_free(server *srv, bool bounded)
{
	/* their workers end (every call was answered, or none came) */
	for (int i = 0; i < SERVER_LANES; i++)
		lane_stop(srv->lanes[i]);
	server_replier_stop(srv);
	server_reaper_stop(srv);
	server_pipes_off(srv);
	if (srv->sock_open && bounded) {
		server_close_socket(srv->sock);
	} else {
		for (uint32_t i = 0; i < srv->n_calls; i++) {
			api_call *call = &srv->calls[i];
			if (call->ctx_open)
				nng_ctx_close(call->ctx);
		}
		if (srv->sock_open)
			nng_close(srv->sock);
	}
	for (uint32_t i = 0; i < srv->n_calls; i++) {
		api_call *call = &srv->calls[i];
		if (call->recv_aio != NULL)
			nng_aio_free(call->recv_aio);
		if (call->send_aio != NULL)
			nng_aio_free(call->send_aio);
		if (call->zone_ok)
			msgpack_zone_destroy(&call->zone);
	}
	free(srv->calls);
	free(srv->pipes);
	free(srv->url);
	pthread_cond_destroy(&srv->reap_cv);
	pthread_mutex_destroy(&srv->pipes_mu);
	pthread_mutex_destroy(&srv->rq_mu);
	pthread_cond_destroy(&srv->rq_cv);
	pthread_cond_destroy(&srv->cv);
	pthread_mutex_destroy(&srv->mtx);
	free(srv);
}

int
server_start(const server_settings *set, server **out)
{
	server  *srv;
	uint32_t n;
	int      rv, rc;

	*out = NULL;
	if (set->url == NULL || set->handle == NULL || set->workers == 0
	    || set->slow_workers == 0 || set->slow_queue == 0
	    || set->max_connections == 0)
		return SL_EINVAL;
	/* Contexts for every request a lane may hold: the slow lane's
	 * running and waiting ones can never take the fast lane's. */
	n   = set->workers + set->slow_workers + set->slow_queue;
	srv = calloc(1, sizeof(*srv));
	if (srv == NULL)
		return SL_ENOMEM;
	srv->calls = calloc(n, sizeof(*srv->calls));
	srv->url   = strdup(set->url);
	if (srv->calls == NULL || srv->url == NULL) {
		free(srv->calls);
		free(srv->url);
		free(srv);
		return SL_ENOMEM;
	}
	pthread_mutex_init(&srv->mtx, NULL);
	pthread_cond_init(&srv->cv, NULL);
	pthread_mutex_init(&srv->pipes_mu, NULL);
	cond_init_mono(&srv->reap_cv);
	pthread_mutex_init(&srv->rq_mu, NULL);
	pthread_cond_init(&srv->rq_cv, NULL);
	srv->rq_tail     = &srv->rq_head;
	srv->set         = *set;
	srv->set.url     = srv->url;
	srv->n_calls     = n;
	srv->max_request = set->max_request;

	/* Slow workers run at a lower priority: on a busy machine a
	 * one-time query's scan gives the CPU to fast ops first. */
	if ((rc = lane_start("api-fast", set->workers, n, 0, server_run, srv,
	         &srv->lanes[SERVER_LANE_FAST]))
	        != SL_OK
	    || (rc = lane_start("api-slow", set->slow_workers, set->slow_queue,
	            SERVER_SLOW_NICE, server_run, srv,
	            &srv->lanes[SERVER_LANE_SLOW]))
	        != SL_OK) {
		log_error("server", "cannot start the API's workers: %s",
		    sl_strerror(rc));
		server_free(srv, false);
		return rc;
	}
	if (pthread_create(&srv->rq_thread, NULL, server_replier, srv) != 0) {
		log_error("server", "cannot start the API's reply thread");
		server_free(srv, false);
		return SL_ENOMEM;
	}
	srv->rq_started = true;
	pthread_setname_np(srv->rq_thread, "api-reply");

	if ((rv = nng_rep0_open(&srv->sock)) != 0) {
		log_error(
		    "server", "cannot open rep socket: %s", nng_strerror(rv));
		server_free(srv, false);
		return server_nng_err(rv);
	}
	srv->sock_open = true;

	/* Twice our limit: requests between the two get an ETOOBIG reply;
	 * beyond it NNG closes the connection (see docs/protocol.md). */
	server_set_recv_max(srv);
	/* ADD_PRE, not ADD_POST: NNG starts the protocol on a pipe before
	 * ADD_POST runs, so a request may arrive before it */
	nng_pipe_notify(srv->sock, NNG_PIPE_EV_ADD_PRE, server_pipe_cb, srv);
	nng_pipe_notify(srv->sock, NNG_PIPE_EV_REM_POST, server_pipe_cb, srv);

	for (uint32_t i = 0; i < n; i++) {
		api_call *call = &srv->calls[i];
		call->srv      = srv;
		if ((rv = nng_aio_alloc(&call->recv_aio, server_recv_cb, call))
		        != 0
		    || (rv = nng_aio_alloc(
		            &call->send_aio, server_send_cb, call))
		        != 0
		    || (rv = nng_ctx_open(&call->ctx, srv->sock)) != 0) {
			log_error("server", "cannot set up worker %u: %s", i,
			    nng_strerror(rv));
			server_free(srv, false);
			return server_nng_err(rv);
		}
		call->ctx_open = true;
	}

	if ((rc = server_clear_stale_ipc(srv->url)) != SL_OK) {
		server_free(srv, false);
		return rc;
	}
	if ((rv = net_listen(srv->sock, srv->url, NULL)) != 0) {
		log_error("server", "cannot listen on %s: %s", srv->url,
		    nng_strerror(rv));
		server_free(srv, false);
		return server_nng_err(rv);
	}
	if (set->idle_timeout_ms > 0 && server_reaper_start(srv) != SL_OK) {
		server_free(srv, false);
		return SL_ENOMEM;
	}
	for (uint32_t i = 0; i < n; i++)
		server_post_recv(&srv->calls[i]);
	char idle[48] = "never";
	if (set->idle_timeout_ms > 0)
		snprintf(
		    idle, sizeof(idle), "after %u ms", set->idle_timeout_ms);
	log_info("server",
	    "listening on %s (%u workers, %u slow workers, %u slow requests "
	    "may wait, at most %u connections, idle ones closed %s)",
	    srv->url, set->workers, set->slow_workers, set->slow_queue,
	    set->max_connections, idle);
	*out = srv;
	return SL_OK;
}

void
server_stop(server *srv)
{
	struct timespec drain = { 0, SERVER_DRAIN_MS * 1000000L };

	if (srv == NULL)
		return;
	/* First answer new requests with ECLOSED for a moment: clients stop
	 * sending, which keeps NNG's close away from busy peers. */
	atomic_store(&srv->draining, true);
	nanosleep(&drain, NULL);

	atomic_store(&srv->closing, true);

	/* No receive starts now; cancel the waiting ones and wait out any
	 * receive callback still running (it may have started a call). */
	for (uint32_t i = 0; i < srv->n_calls; i++)
		nng_aio_stop(srv->calls[i].recv_aio);

	/* Queued calls are answered ECLOSED, running one-time queries stop
	 * at their next event. */
	for (uint32_t i = 0; i < srv->n_calls; i++)
		atomic_store(&srv->calls[i].cancelled, true);

	/* Calls in progress (commits waiting for the store) get their
	 * reply: the store is still open, so each ends soon. */
	pthread_mutex_lock(&srv->mtx);
	while (atomic_load(&srv->in_flight) > 0)
		pthread_cond_wait(&srv->cv, &srv->mtx);
	pthread_mutex_unlock(&srv->mtx);

	for (uint32_t i = 0; i < srv->n_calls; i++)
		nng_aio_stop(srv->calls[i].send_aio);
	server_free(srv, true);
}

void
server_stats_get(server *srv, server_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->contexts = srv->n_calls;
	out->in_flight = atomic_load(&srv->in_flight);
	pthread_mutex_lock(&srv->pipes_mu);
	out->connections         = (uint32_t) srv->n_pipes;
	out->refused_connections = srv->refused_total;
	out->idle_closed         = __atomic_load_n(
                &srv->idle_closed_total, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&srv->pipes_mu);
	out->max_connections = srv->set.max_connections;
	out->idle_timeout_ms = srv->set.idle_timeout_ms;
	for (int i = 0; i < SERVER_LANES; i++)
		if (srv->lanes[i] != NULL)
			lane_stats_get(srv->lanes[i], &out->lanes[i]);
}
