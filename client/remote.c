/*
 * Remote projections and filters, the client's side (include/sluice/
 * remote.h, docs/remote.md): registers a definition over the API socket,
 * dials the URL the reply names with a rep0 socket, and answers each call
 * by running the handler. Registers again when it hears nothing for three
 * keep-alive periods (the daemon restarted, or the connection is gone) or
 * when a call names another session (it is talking to another daemon's
 * registration).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include <sluice/remote.h>

#include "client_internal.h"
#include "event.h"
#include "json.h"
#include "mp.h"
#include "mpraw.h"
#include "tlsconf.h"

#define REMOTE_PROTOCOL       2    /* the default; 1 on request */
#define REMOTE_RECV_SLICE_MS  100  /* how often run looks at the stop flag */
#define REMOTE_SILENCE_FACTOR 3    /* keep-alive periods without a call */
#define REMOTE_BACKOFF_MAX_MS 5000 /* between failed registrations */
#define REMOTE_MAX_PARTITION  255
#define REMOTE_ZONE_CHUNK     (256 * 1024) /* a call's objects, usually */
#define REMOTE_STR_CACHE      4 /* string objects of a request kept copied */

static const char *const key_names[]
    = { NULL, "event_source", "partition", "property", "static", "occurred" };
static const char *const filter_kind_names[]
    = { NULL, "unpartitioned", "partitioned", "public" };

struct sl_remote {
	char                 *api_url;
	char                 *token; /* sl_remote_options.token, or NULL */
	sl_tls_options        tls; /* copied from the options */
	bool                  has_tls;
	bool                  is_filter;
	sl_remote_filter_kind fkind;
	sl_remote_handler     handler;
	void                 *user;
	msgpack_sbuffer       reg;      /* the register request, packed once */
	uint32_t              protocol; /* 1: an event per call; 2: runs */
	/* projections: the initial state, where a run goes on after a
	 * delete (protocol 2) */
	msgpack_sbuffer initial;
	msgpack_zone    izone;
	msgpack_object  initial_obj;
	bool            has_initial;
	int             api_timeout_ms;
	void (*log)(void *user, int level, const char *msg);
	void           *log_user;
	nng_socket      api;      /* req0 to the daemon's API, for register */
	nng_aio        *api_aio;  /* its one request at a time */
	atomic_bool     api_done; /* set by the aio's callback */
	/* api_done's change is signalled (api_wait wakes at once, not at
	 * its next look) */
	pthread_mutex_t api_mu;
	pthread_cond_t  api_cv;
	nng_socket      sock;
	nng_dialer      dialer;
	bool            dialing;
	bool            registered;
	uint32_t        keepalive_ms;
	uint64_t        session;
	char            url[320];
	atomic_bool     stop;
	atomic_bool     connected;
	pthread_t       thread;
	bool            thread_started;
	pthread_mutex_t mu; /* stats and last_error */
	sl_remote_stats stats;
	/* the raw accessors' scratch (sl_remote_event_msgpack ...), reused
	 * from call to call */
	msgpack_sbuffer ev_bytes, st_bytes;
	/* the call being served as it came (for the events' raw bytes) */
	const unsigned char *req_raw;
	size_t               req_raw_len;
	size_t              *ev_off; /* a run's events' offsets in it */
	size_t               ev_off_cap;
	/* where each run of the call being served starts its state and
	 * events (their offsets from ev_off[ev0]), as lazy_unpack found them
	 * (NULL: not read that way; answer_runs walks the runs itself) */
	struct lz_run *lz;
	size_t         n_lz, n_off;
	/* serve's, kept from call to call */
	msgpack_zone    zone;
	bool            zone_ready;
	msgpack_sbuffer answer;
	/* the request's strings a handler asked for, copied into zone once
	 * per request (the tenant) or run (the key), not per event */
	struct {
		const msgpack_object *o;
		const char           *s;
	} strs[REMOTE_STR_CACHE];
	unsigned strs_next;
	/* handler runs of the request being served, not yet in stats */
	uint64_t pend_calls, pend_failed;
	/* the request's tenant field, looked up once per request */
	const msgpack_object *tenant_req, *tenant_o;
};

struct lz_run {
	const unsigned char *state;
	size_t               state_len;
	size_t               ev0, n_ev;
};

struct sl_remote_call {
	sl_remote            *r;
	const msgpack_object *req;
	const msgpack_object *event;
	const msgpack_object *state_in; /* NULL for filters */
	/* copied on first use (lazy_str), into the request's zone */
	const char           *tenant, *key, *reason, *type, *stream;
	const msgpack_object *key_o, *retry_o;
	uint32_t              attempt;
	json_t               *state; /* the state being edited (lazy) */
	/* or the state as msgpack bytes a handler set (owned; at most one
	 * of state and state_raw is set: sl_remote_set_state_msgpack) */
	char  *state_raw;
	size_t state_raw_len;
	/* the raw accessors' bytes are packed into r->ev_bytes and
	 * r->st_bytes (one call at a time per sl_remote) */
	bool ev_packed;
	/* the event's bytes in the call as it came, when found; else NULL */
	const unsigned char *ev_raw;
	size_t               ev_raw_len;
	/* state_in's bytes when known (the run's, or the initial state) */
	const unsigned char *state_in_raw;
	size_t               state_in_raw_len;
	char                 *state_text;
	sl_read_event         ev;
	bool                  ev_built;
	char                **scratch; /* strings handed out */
	size_t                n_scratch, cap_scratch;
	/* the outcome's details */
	char     fail_reason[512];
	bool     failed_set;
	bool     fail_retry;
	uint32_t fail_after_ms;
	char     partition[REMOTE_MAX_PARTITION + 1];
	bool     partition_set;
};

static _Thread_local char open_err[512];

/* ---- small helpers ---- */

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void logf_(sl_remote *r, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
logf_(sl_remote *r, int level, const char *fmt, ...)
{
	char    msg[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (level <= SL_REMOTE_LOG_WARN) {
		pthread_mutex_lock(&r->mu);
		snprintf(r->stats.last_error, sizeof(r->stats.last_error),
		    "%.*s", (int) sizeof(r->stats.last_error) - 1, msg);
		pthread_mutex_unlock(&r->mu);
	}
	if (r->log != NULL)
		r->log(r->log_user, level, msg);
}

static bool
is_uuid(const char *s)
{
	return s != NULL && ev_uuid_canon(s, strlen(s), NULL);
}

static char *
obj_strdup(const msgpack_object *o)
{
	if (o == NULL || o->type != MSGPACK_OBJECT_STR)
		return strdup("");
	return mp_strdup(o);
}

/* ---- registering ---- */

/* Pack the common part of a register request. */
static void
pack_head(msgpack_packer *pk, const sl_remote *r, size_t n_fields,
    const char *kind, const char *id, const char *scope, const char *name,
    uint32_t version)
{
	uint32_t protocol = r->protocol;
	msgpack_pack_map(
	    pk, 7 + n_fields + (scope != NULL) + (r->token != NULL));
	mp_pack_kv_u64(pk, "v", SL_PROTOCOL_VERSION);
	mp_pack_kv_str(pk, "op", "register");
	if (r->token != NULL) /* docs/security.md */
		mp_pack_kv_str(pk, "token", r->token);
	mp_pack_kv_u64(pk, "protocol", protocol);
	mp_pack_kv_str(pk, "kind", kind);
	mp_pack_kv_str(pk, "id", id);
	if (scope != NULL)
		mp_pack_kv_str(pk, "scope", scope);
	mp_pack_kv_str(pk, "name", name);
	mp_pack_kv_u64(pk, "version", version);
}

static sl_remote *
remote_new(const char *api_url, const sl_remote_options *opts)
{
	sl_remote *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	if ((r->api_url = strdup(api_url)) == NULL
	    || (opts != NULL && opts->token != NULL && opts->token[0] != '\0'
	        && (r->token = strdup(opts->token)) == NULL)) {
		free(r->api_url);
		free(r);
		return NULL;
	}
	msgpack_sbuffer_init(&r->reg);
	msgpack_sbuffer_init(&r->initial);
	r->protocol = REMOTE_PROTOCOL;
	if (opts != NULL && opts->protocol != 0)
		r->protocol = opts->protocol;
	pthread_mutex_init(&r->mu, NULL);
	pthread_mutex_init(&r->api_mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->api_cv, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&r->stop, false);
	atomic_init(&r->connected, false);
	atomic_init(&r->api_done, false);
	r->api_timeout_ms = 5000;
	if (opts != NULL) {
		if (opts->api_timeout_ms > 0)
			r->api_timeout_ms = opts->api_timeout_ms;
		r->log      = opts->log;
		r->log_user = opts->log_user;
		if (opts->tls != NULL) {
			r->has_tls = true;
			if (!sl_tls_options_copy(&r->tls, opts->tls)) {
				sl_remote_close(r);
				return NULL;
			}
		}
	}
	return r;
}

static void
pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	sl_remote *r = arg;
	(void) p;
	if (ev == NNG_PIPE_EV_ADD_POST)
		atomic_store(&r->connected, true);
	else if (ev == NNG_PIPE_EV_REM_POST)
		atomic_store(&r->connected, false);
}

/* The rep0 socket the calls come in on (kept for the sl_remote's life;
 * each registration dials with a new dialer). */
static int
open_socket(sl_remote *r, char *err, size_t errlen)
{
	int rv = nng_rep0_open(&r->sock);
	if (rv != 0) {
		snprintf(err, errlen, "cannot open a rep0 socket: %s",
		    nng_strerror(rv));
		return SL_ENET;
	}
	/* calls carry a state and an event: no size limit of NNG's */
	nng_socket_set_size(r->sock, NNG_OPT_RECVMAXSZ, 0);
	nng_socket_set_ms(r->sock, NNG_OPT_RECVTIMEO, REMOTE_RECV_SLICE_MS);
	nng_socket_set_ms(r->sock, NNG_OPT_SENDTIMEO, 1000);
	nng_socket_set_ms(r->sock, NNG_OPT_RECONNMINT, 50);
	nng_socket_set_ms(r->sock, NNG_OPT_RECONNMAXT, 1000);
	nng_pipe_notify(r->sock, NNG_PIPE_EV_ADD_POST, pipe_cb, r);
	nng_pipe_notify(r->sock, NNG_PIPE_EV_REM_POST, pipe_cb, r);
	return SL_OK;
}

/*
 * Where to dial: the reply's URL, except that a wildcard host
 * (tcp://0.0.0.0:P, tcp://[::]:P) is the API's host.
 */
static void
dial_url(const sl_remote *r, const char *url, char *out, size_t len)
{
	/* tcp:// or tls+tcp://, the API's the same */
	const char *scheme = sl_tls_url(url) ? "tls+tcp://" : "tcp://";
	size_t      sn     = strlen(scheme);
	const char *port   = NULL;
	if (strncmp(url, scheme, sn) == 0) {
		if (strncmp(url + sn, "0.0.0.0:", 8) == 0)
			port = url + sn + 7;
		else if (strncmp(url + sn, "[::]:", 5) == 0)
			port = url + sn + 4;
	}
	if (port != NULL && strncmp(r->api_url, scheme, sn) == 0) {
		const char *host = r->api_url + sn;
		const char *end  = strrchr(host, ':');
		if (end != NULL) {
			snprintf(out, len, "%s%.*s%s", scheme,
			    (int) (end - host), host, port);
			return;
		}
	}
	snprintf(out, len, "%s", url);
}

static int nng_to_sl(int rv);

/* Dial url, with TLS for tls+tcp:// (the options given, the url's host
 * as the server name unless they name one). */
static int
remote_dial(sl_remote *r, nng_socket s, const char *url, int flags,
    nng_dialer *d, char *err, size_t errlen)
{
	nng_tls_config *tls = NULL;
	int             rc, rv;
	if (sl_tls_url(url)
	    && (rc = sl_tls_client_config(
	            r->has_tls ? &r->tls : NULL, url, &tls, err, errlen))
	        != SL_OK)
		return rc;
	/* the dialer holds the configuration as long as it needs it */
	rv = sl_tls_dial(s, url, tls, flags, d);
	if (tls != NULL)
		nng_tls_config_free(tls);
	if (rv != 0) {
		snprintf(err, errlen, "cannot connect to %s: %s%s", url,
		    nng_strerror(rv), client_tls_hint(url, rv));
		return nng_to_sl(rv) == SL_EINVAL ? SL_EINVAL : SL_ENET;
	}
	return SL_OK;
}

static void
drop_connection(sl_remote *r)
{
	if (r->dialing) {
		nng_dialer_close(r->dialer);
		r->dialing = false;
	}
	r->registered = false;
}

static void
api_cb(void *arg)
{
	sl_remote *r = arg;
	pthread_mutex_lock(&r->api_mu);
	atomic_store(&r->api_done, true);
	pthread_cond_signal(&r->api_cv);
	pthread_mutex_unlock(&r->api_mu);
}

/* Wait for the API aio, cancelling it when stop is asked.
 * @return its result (NNG_ECANCELED when stopped). */
static int
api_wait(sl_remote *r)
{
	/* woken by api_cb; sl_remote_stop (a signal handler's, which can
	 * only set a flag) is looked at every 10 ms */
	bool stopped = false;
	pthread_mutex_lock(&r->api_mu);
	while (!atomic_load(&r->api_done)) {
		if (atomic_load(&r->stop)) {
			stopped = true;
			break;
		}
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += 10 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&r->api_cv, &r->api_mu, &ts);
	}
	pthread_mutex_unlock(&r->api_mu);
	if (stopped)
		nng_aio_cancel(r->api_aio);
	nng_aio_wait(r->api_aio);
	return nng_aio_result(r->api_aio);
}

static int
nng_to_sl(int rv)
{
	switch (rv) {
	case 0:
		return SL_OK;
	case NNG_ETIMEDOUT:
		return SL_ETIMEDOUT;
	case NNG_ENOMEM:
		return SL_ENOMEM;
	case NNG_EINVAL:
	case NNG_EADDRINVAL:
	case NNG_ENOTSUP:
		return SL_EINVAL;
	case NNG_ECANCELED:
		return SL_ECLOSED;
	default:
		return SL_ENET;
	}
}

/*
 * One request on the API socket and its reply (*reply on SL_OK: free it
 * with nng_msg_free). Interrupted by sl_remote_stop.
 */
static int
api_roundtrip(sl_remote *r, nng_msg **reply, char *err, size_t errlen)
{
	nng_msg *m;
	int      rv;
	*reply = NULL;
	if (nng_msg_alloc(&m, r->reg.size) != 0) {
		snprintf(err, errlen, "out of memory");
		return SL_ENOMEM;
	}
	memcpy(nng_msg_body(m), r->reg.data, r->reg.size);
	nng_aio_set_msg(r->api_aio, m);
	nng_aio_set_timeout(r->api_aio, r->api_timeout_ms);
	atomic_store(&r->api_done, false);
	nng_send_aio(r->api, r->api_aio);
	if ((rv = api_wait(r)) != 0) {
		nng_msg_free(nng_aio_get_msg(r->api_aio));
		nng_aio_set_msg(r->api_aio, NULL);
		snprintf(err, errlen, "cannot send to %s: %s", r->api_url,
		    nng_strerror(rv));
		return nng_to_sl(rv);
	}
	nng_aio_set_timeout(r->api_aio, r->api_timeout_ms);
	atomic_store(&r->api_done, false);
	nng_recv_aio(r->api, r->api_aio);
	if ((rv = api_wait(r)) != 0) {
		snprintf(err, errlen, "no reply from %s: %s", r->api_url,
		    nng_strerror(rv));
		return nng_to_sl(rv);
	}
	*reply = nng_aio_get_msg(r->api_aio);
	nng_aio_set_msg(r->api_aio, NULL);
	return SL_OK;
}

/*
 * Send the register request; on success dial the reply's URL.
 * @return SL_OK, or the daemon's code / a transport error (err says why).
 */
static int
do_register(sl_remote *r, char *err, size_t errlen)
{
	nng_msg       *rep;
	msgpack_zone   zone;
	msgpack_object root;
	size_t         off = 0;
	const char    *url, *msg;
	size_t         url_len, msg_len;
	uint64_t       session = 0, keepalive = 0, code = 0;
	bool           ok = false;
	char           reply_url[sizeof(r->url)];
	int            rc = api_roundtrip(r, &rep, err, errlen);

	if (rc != SL_OK)
		return rc;
	if (!msgpack_zone_init(&zone, 1024)) {
		nng_msg_free(rep);
		snprintf(err, errlen, "out of memory");
		return SL_ENOMEM;
	}
	rc = SL_EPROTO;
	snprintf(err, errlen, "the register reply is not valid");
	if (msgpack_unpack(
	        nng_msg_body(rep), nng_msg_len(rep), &off, &zone, &root)
	        == MSGPACK_UNPACK_SUCCESS
	    && mp_get_bool(&root, "ok", &ok) == SL_OK) {
		if (!ok) {
			/* the daemon's refusal, with its code and message */
			if (mp_get_u64(&root, "code", &code) == SL_OK
			    && code > 0 && code < 1000)
				rc = (int) code;
			if (mp_get_str(&root, "message", &msg, &msg_len)
			    == SL_OK)
				snprintf(
				    err, errlen, "%.*s", (int) msg_len, msg);
		} else if (mp_get_str(&root, "url", &url, &url_len) == SL_OK
		    && url_len < sizeof(r->url)
		    && mp_get_u64(&root, "session", &session) == SL_OK
		    && mp_get_u64(&root, "keepalive_ms", &keepalive)
		        == SL_OK) {
			snprintf(reply_url, sizeof(reply_url), "%.*s",
			    (int) url_len, url);
			rc = SL_OK;
		} else {
			snprintf(err, errlen,
			    "the register reply lacks url, session or "
			    "keepalive_ms");
		}
	}
	msgpack_zone_destroy(&zone);
	nng_msg_free(rep);
	if (rc != SL_OK)
		return rc;

	drop_connection(r);
	dial_url(r, reply_url, r->url, sizeof(r->url));
	/* Non-blocking: the dialer keeps trying (and reconnects later). */
	if ((rc = remote_dial(r, r->sock, r->url, NNG_FLAG_NONBLOCK,
	         &r->dialer, err, errlen))
	    != SL_OK)
		return rc;
	r->dialing      = true;
	r->registered   = true;
	r->session      = session;
	r->keepalive_ms = keepalive > 0 && keepalive < 3600000
	    ? (uint32_t) keepalive
	    : 1000;
	pthread_mutex_lock(&r->mu);
	r->stats.registrations++;
	r->stats.session = session;
	snprintf(r->stats.url, sizeof(r->stats.url), "%s", r->url);
	pthread_mutex_unlock(&r->mu);
	return SL_OK;
}

/*
 * The API socket: dialed once, blocking, so that an unreachable daemon is
 * an error of the first registration; afterwards its dialer reconnects by
 * itself (a daemon restart). Never resends by timer.
 */
static int
open_api(sl_remote *r, char *err, size_t errlen)
{
	int rv;
	if ((rv = nng_req0_open(&r->api)) != 0
	    || (rv = nng_aio_alloc(&r->api_aio, api_cb, r)) != 0) {
		snprintf(err, errlen, "cannot open a req0 socket: %s",
		    nng_strerror(rv));
		return nng_to_sl(rv);
	}
	nng_socket_set_size(r->api, NNG_OPT_RECVMAXSZ, 0);
	nng_socket_set_ms(
	    r->api, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(r->api, NNG_OPT_RECONNMINT, 50);
	nng_socket_set_ms(r->api, NNG_OPT_RECONNMAXT, 1000);
	return remote_dial(r, r->api, r->api_url, 0, NULL, err, errlen);
}

static int
finish_open(sl_remote *r, sl_remote **out)
{
	char err[512] = "";
	int  rc       = open_socket(r, err, sizeof(err));
	if (rc == SL_OK)
		rc = open_api(r, err, sizeof(err));
	if (rc == SL_OK)
		rc = do_register(r, err, sizeof(err));
	if (rc != SL_OK) {
		snprintf(open_err, sizeof(open_err), "%s",
		    err[0] != '\0' ? err : sl_strerror(rc));
		sl_remote_close(r);
		return rc;
	}
	logf_(r, SL_REMOTE_LOG_INFO, "registered; calls come on %s", r->url);
	*out = r;
	return SL_OK;
}

static int bad_def(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
bad_def(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(open_err, sizeof(open_err), fmt, ap);
	va_end(ap);
	return SL_EINVAL;
}

int
sl_remote_register_projection(const char *api_url,
    const sl_remote_projection *def, const sl_remote_options *opts,
    sl_remote **out)
{
	char           jerr[256] = "";
	msgpack_packer pk;
	open_err[0] = '\0';
	if (out == NULL)
		return SL_EINVAL;
	*out = NULL;
	if (api_url == NULL || def == NULL)
		return bad_def("no endpoint or no definition");
	if (!is_uuid(def->id))
		return bad_def("id '%s' is not a UUID",
		    def->id != NULL ? def->id : "(null)");
	if (def->scope != NULL && !is_uuid(def->scope))
		return bad_def("scope '%s' is not a UUID", def->scope);
	if (def->name == NULL || def->name[0] == '\0')
		return bad_def("the name is missing");
	if (def->on == NULL)
		return bad_def("the handler (on) is missing");
	if (def->selectors == NULL || def->n_selectors == 0)
		return bad_def(
		    "no selectors (a projection needs at least one)");
	for (size_t i = 0; i < def->n_selectors; i++) {
		const sl_remote_selector *s = &def->selectors[i];
		if (s->event_type == NULL || (int) s->key < 1
		    || (int) s->key > 5)
			return bad_def("selector %zu: no event type or an "
			               "unknown key kind",
			    i);
	}
	sl_remote *r = remote_new(api_url, opts);
	if (r == NULL)
		return SL_ENOMEM;
	r->handler = def->on;
	r->user    = def->user;
	if (r->protocol < 1 || r->protocol > 2) {
		sl_remote_close(r);
		return bad_def("protocol %u is not 1 or 2",
		    opts != NULL ? opts->protocol : 0);
	}
	/* the initial state, unpacked once: a run goes on from it after a
	 * delete */
	msgpack_packer ipk;
	size_t         ioff = 0;
	msgpack_packer_init(&ipk, &r->initial, msgpack_sbuffer_write);
	if (json_text_to_mp(def->initial_state_json != NULL
	            ? def->initial_state_json
	            : "{}",
	        1, &ipk, jerr, sizeof(jerr))
	        == SL_OK
	    && msgpack_zone_init(&r->izone, 1024)) {
		r->has_initial = true;
		if (msgpack_unpack(r->initial.data, r->initial.size, &ioff,
		        &r->izone, &r->initial_obj)
		    != MSGPACK_UNPACK_SUCCESS)
			r->initial_obj.type = MSGPACK_OBJECT_NIL;
	}
	msgpack_packer_init(&pk, &r->reg, msgpack_sbuffer_write);
	pack_head(&pk, r, 2, "projection", def->id, def->scope, def->name,
	    def->version);
	mp_pack_cstr(&pk, "initial_state");
	if (json_text_to_mp(def->initial_state_json != NULL
	            ? def->initial_state_json
	            : "{}",
	        1, &pk, jerr, sizeof(jerr))
	    != SL_OK) {
		sl_remote_close(r);
		return bad_def(
		    "the initial state is not a JSON object: %s", jerr);
	}
	mp_pack_cstr(&pk, "selectors");
	msgpack_pack_array(&pk, def->n_selectors);
	for (size_t i = 0; i < def->n_selectors; i++) {
		const sl_remote_selector *s = &def->selectors[i];
		msgpack_pack_map(&pk, 2 + (s->arg != NULL));
		mp_pack_kv_str(&pk, "type", s->event_type);
		mp_pack_kv_str(&pk, "key", key_names[s->key]);
		if (s->arg != NULL)
			mp_pack_kv_str(&pk, "arg", s->arg);
	}
	return finish_open(r, out);
}

int
sl_remote_register_filter(const char *api_url, const sl_remote_filter *def,
    const sl_remote_options *opts, sl_remote **out)
{
	msgpack_packer pk;
	open_err[0] = '\0';
	if (out == NULL)
		return SL_EINVAL;
	*out = NULL;
	if (api_url == NULL || def == NULL)
		return bad_def("no endpoint or no definition");
	if (!is_uuid(def->id))
		return bad_def("id '%s' is not a UUID",
		    def->id != NULL ? def->id : "(null)");
	if (def->scope != NULL && !is_uuid(def->scope))
		return bad_def("scope '%s' is not a UUID", def->scope);
	if (def->name == NULL || def->name[0] == '\0')
		return bad_def("the name is missing");
	if (def->filter == NULL)
		return bad_def("the handler (filter) is missing");
	if ((int) def->kind < 1 || (int) def->kind > 3)
		return bad_def("unknown filter kind %d", (int) def->kind);
	sl_remote *r = remote_new(api_url, opts);
	if (r == NULL)
		return SL_ENOMEM;
	r->is_filter = true;
	r->fkind     = def->kind;
	r->handler   = def->filter;
	r->user      = def->user;
	msgpack_packer_init(&pk, &r->reg, msgpack_sbuffer_write);
	if (r->protocol < 1 || r->protocol > 2) {
		sl_remote_close(r);
		return bad_def("protocol %u is not 1 or 2",
		    opts != NULL ? opts->protocol : 0);
	}
	pack_head(
	    &pk, r, 1, "filter", def->id, def->scope, def->name, def->version);
	mp_pack_kv_str(&pk, "filter_kind", filter_kind_names[def->kind]);
	return finish_open(r, out);
}

const char *
sl_remote_open_error(void)
{
	return open_err;
}

/* ---- answering calls ---- */

static void
call_free(sl_remote_call *c)
{
	if (c->state != NULL)
		json_decref(c->state);
	free(c->state_text);
	free(c->state_raw);
	if (c->ev_built)
		client_event_free(&c->ev);
	for (size_t i = 0; i < c->n_scratch; i++)
		free(c->scratch[i]);
	free(c->scratch);
}

/* Keep s until the call ends; NULL if it cannot be kept (s freed). */
static const char *
scratch(sl_remote_call *c, char *s)
{
	if (s == NULL)
		return NULL;
	if (c->n_scratch == c->cap_scratch) {
		size_t ncap = c->cap_scratch ? c->cap_scratch * 2 : 8;
		char **n    = realloc(c->scratch, ncap * sizeof(*n));
		if (n == NULL) {
			free(s);
			return NULL;
		}
		c->scratch     = n;
		c->cap_scratch = ncap;
	}
	c->scratch[c->n_scratch++] = s;
	return s;
}

/* An outcome map; with_call: the protocol 1 answer, which starts with the
 * call's id (a protocol 2 filter's outcomes have none). */
static void
pack_outcome_head(msgpack_packer *pk, bool with_call, uint64_t call,
    size_t n_fields, const char *outcome)
{
	msgpack_pack_map(pk, n_fields + 1 + with_call);
	if (with_call)
		mp_pack_kv_u64(pk, "call", call);
	mp_pack_kv_str(pk, "outcome", outcome);
}

static void
pack_failed(msgpack_packer *pk, bool with_call, uint64_t call,
    const char *reason, bool retry, uint32_t after)
{
	pack_outcome_head(pk, with_call, call, 3, "failed");
	mp_pack_kv_str(pk, "reason", reason);
	mp_pack_kv_bool(pk, "retry", retry);
	mp_pack_kv_u64(pk, "retry_after_ms", after);
}

/* Append len packed bytes as they are (one whole value). */
static void
pack_raw(msgpack_packer *pk, const void *data, size_t len)
{
	pk->callback(pk->data, (const char *) data, len);
}

/* The state the call leaves: the edited one, else the one it got. */
static void
pack_state(const sl_remote_call *c, msgpack_packer *pk)
{
	if (c->state_raw != NULL)
		pack_raw(pk, c->state_raw, c->state_raw_len);
	else if (c->state != NULL)
		json_to_mp(c->state, pk);
	else if (c->state_in != NULL
	    && c->state_in->type == MSGPACK_OBJECT_MAP)
		msgpack_pack_object(pk, *c->state_in);
	else
		msgpack_pack_map(pk, 0);
}

/* Pack the answer for what the handler returned. */
static void
pack_answer(sl_remote *r, sl_remote_call *c, bool with_call, uint64_t call,
    sl_remote_result res, msgpack_packer *pk)
{
	char why[200];
	if (res == SL_REMOTE_FAILED) {
		pack_failed(pk, with_call, call,
		    c->failed_set ? c->fail_reason
		                  : "the handler failed (no reason given)",
		    c->failed_set ? c->fail_retry : true,
		    c->failed_set ? c->fail_after_ms : 0);
		return;
	}
	if (!r->is_filter && res == SL_REMOTE_REPLACE) {
		pack_outcome_head(pk, with_call, call, 1, "replace");
		mp_pack_cstr(pk, "state");
		pack_state(c, pk);
		return;
	}
	if (!r->is_filter && res == SL_REMOTE_DELETE) {
		pack_outcome_head(pk, with_call, call, 0, "delete");
		return;
	}
	if (r->is_filter && res == SL_REMOTE_EXCLUDED) {
		pack_outcome_head(pk, with_call, call, 0, "excluded");
		return;
	}
	if (r->is_filter && res == SL_REMOTE_INCLUDED) {
		bool part = r->fkind != SL_REMOTE_UNPARTITIONED;
		if (part && !c->partition_set) {
			pack_failed(pk, with_call, call,
			    "the handler included the event without a "
			    "partition (use sl_remote_include)",
			    true, 0);
			return;
		}
		pack_outcome_head(pk, with_call, call, part, "included");
		if (part)
			mp_pack_kv_str(pk, "partition", c->partition);
		return;
	}
	snprintf(why, sizeof(why), "the %s handler returned %d",
	    r->is_filter ? "filter" : "projection", (int) res);
	pack_failed(pk, with_call, call, why, true, 0);
}

/* The call's event as an object. A protocol 2 projection call's events
 * are not unpacked with the request (serve, lazy_unpack): each is a nil
 * placeholder in the request's zone, unpacked from its bytes on first use
 * here (a plugin host reads only the bytes). */
static const msgpack_object *
ev_obj(const sl_remote_call *c)
{
	const msgpack_object *e = c->event;
	if (e == NULL || e->type != MSGPACK_OBJECT_NIL || c->ev_raw == NULL)
		return e;
	msgpack_object        o;
	size_t                off = 0;
	msgpack_unpack_return ur  = msgpack_unpack(
	     (const char *) c->ev_raw, c->ev_raw_len, &off, &c->r->zone, &o);
	if (ur == MSGPACK_UNPACK_SUCCESS && o.type == MSGPACK_OBJECT_MAP)
		*(msgpack_object *) e = o; /* the placeholder is ours */
	return e;
}

/* Set up c for one event (req: the call, for sl_remote_tenant & co).
 * @return whether it has all it needs (else the handler is not run). */
static bool
call_setup(sl_remote_call *c, sl_remote *r, const msgpack_object *req,
    const msgpack_object *event, const msgpack_object *state_in,
    const msgpack_object *key, const msgpack_object *retry)
{
	uint64_t attempt = 0;
	memset(c, 0, sizeof(*c));
	c->r        = r;
	c->req      = req;
	c->event    = event;
	c->state_in = r->is_filter ? NULL : state_in;
	mp_get_u64(retry, "attempt", &attempt);
	c->attempt = attempt > UINT32_MAX ? UINT32_MAX : (uint32_t) attempt;
	/* the strings are copied when a handler asks (lazy_str) */
	c->retry_o = retry;
	c->key_o   = r->is_filter ? NULL : key;
	return event != NULL && event->type == MSGPACK_OBJECT_MAP;
}

/* A call's string, copied (NUL-terminated) on first use into *slot: ""
 * when absent, or when out of memory. The copy lives in the request's
 * zone until the next request, and the events of a request share one
 * copy of each string object (its tenant, a run's key). */
static const char *
lazy_str(const sl_remote_call *c, const char *const *slot,
    const msgpack_object *o)
{
	const char **s = (const char **) slot; /* the library's own call */
	sl_remote   *r = c->r;
	if (*s != NULL)
		return *s;
	if (o == NULL || o->type != MSGPACK_OBJECT_STR)
		return *s = "";
	for (unsigned i = 0; i < REMOTE_STR_CACHE; i++)
		if (r->strs[i].o == o)
			return *s = r->strs[i].s;
	char *copy = msgpack_zone_malloc(&r->zone, o->via.str.size + 1);
	if (copy == NULL)
		return "";
	if (o->via.str.size > 0)
		memcpy(copy, o->via.str.ptr, o->via.str.size);
	copy[o->via.str.size]       = '\0';
	r->strs[r->strs_next].o     = o;
	r->strs[r->strs_next].s     = copy;
	r->strs_next                = (r->strs_next + 1) % REMOTE_STR_CACHE;
	return *s = copy;
}

/* Run the handler on c (set up), counting it. */
static sl_remote_result
call_run(sl_remote *r, sl_remote_call *c, bool complete)
{
	sl_remote_result res = complete
	    ? r->handler(r->user, c)
	    : sl_remote_fail(c, true, 0,
	        "the call has no event (or the client ran out of memory)");
	/* counted into stats once per request (serve), not locked per
	 * event */
	r->pend_calls++;
	if (res == SL_REMOTE_FAILED)
		r->pend_failed++;
	return res;
}

static const msgpack_object *
array_at(const msgpack_object *a, size_t i)
{
	return a != NULL && a->type == MSGPACK_OBJECT_ARRAY
	        && i < a->via.array.size
	    ? &a->via.array.ptr[i]
	    : NULL;
}

/* A map's (or an array's) header at v[*at]: *n pairs (items); *at moves
 * past it. */
static bool
raw_header(const unsigned char *v, size_t len, size_t *at, bool map, size_t *n)
{
	size_t        i   = *at;
	unsigned char fix = map ? 0x80 : 0x90, c16 = map ? 0xde : 0xdc,
	              c32 = map ? 0xdf : 0xdd;
	if (i >= len)
		return false;
	if (v[i] >= fix && v[i] <= fix + 0x0f) {
		*n  = v[i] & 0x0f;
		*at = i + 1;
	} else if (v[i] == c16 && len - i >= 3) {
		*n  = (size_t) v[i + 1] << 8 | v[i + 2];
		*at = i + 3;
	} else if (v[i] == c32 && len - i >= 5) {
		*n = (size_t) v[i + 1] << 24 | (size_t) v[i + 2] << 16
		    | (size_t) v[i + 3] << 8 | v[i + 4];
		*at = i + 5;
	} else {
		return false;
	}
	return true;
}

/* Whether v[0..len) starts with a map header. */
static bool
raw_is_map(const unsigned char *v, size_t len)
{
	return v != NULL && len > 0
	    && ((v[0] >= 0x80 && v[0] <= 0x8f) || v[0] == 0xde || v[0] == 0xdf);
}

/* Step over the key at v[*at]; *is: whether it is the string key. */
static bool
raw_key(const unsigned char *v, size_t len, size_t *at, const char *key,
    bool *is)
{
	size_t      k = *at, n;
	const char *s;
	if (!mpraw_skip(v, len, at))
		return false;
	*is = mpraw_str(v + k, *at - k, &s, &n) && n == strlen(key)
	    && memcmp(s, key, n) == 0;
	return true;
}

/* Where the value of key starts in the map v[0..len) (its end is not
 * sought: it may be the whole rest). */
static bool
raw_value_at(const unsigned char *v, size_t len, const char *key, size_t *at)
{
	size_t n;
	bool   is;
	*at = 0;
	if (!raw_header(v, len, at, true, &n))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!raw_key(v, len, at, key, &is))
			return false;
		if (is)
			return true;
		if (!mpraw_skip(v, len, at))
			return false;
	}
	return false;
}

/* A run as it came: its state's bytes, and where each of its events
 * starts in p (ev_off[n_ev]: past the last). p NULL: not known. */
typedef struct raw_run {
	const unsigned char *p;
	const unsigned char *state;
	size_t               state_len;
	const size_t        *ev_off;
	size_t               n_ev;
} raw_run;

/* Read the run map at p[*at] in one walk (*at moves past it), the events'
 * offsets into r->ev_off. */
static bool
raw_run_read(
    sl_remote *r, const unsigned char *p, size_t len, size_t *at, raw_run *out)
{
	size_t n;
	bool   events = false, is;
	memset(out, 0, sizeof(*out));
	if (!raw_header(p, len, at, true, &n))
		return false;
	for (size_t i = 0; i < n; i++) {
		size_t k = *at;
		if (!raw_key(p, len, at, "events", &is))
			return false;
		if (is) {
			size_t ne;
			if (!raw_header(p, len, at, false, &ne) || ne > len)
				return false;
			if (ne + 1 > r->ev_off_cap) {
				size_t *o = realloc(
				    r->ev_off, (ne + 1) * sizeof(*o));
				if (o == NULL)
					return false;
				r->ev_off     = o;
				r->ev_off_cap = ne + 1;
			}
			for (size_t j = 0; j < ne; j++) {
				r->ev_off[j] = *at;
				if (!mpraw_skip(p, len, at))
					return false;
			}
			r->ev_off[ne] = *at;
			out->n_ev     = ne;
			events        = true;
			continue;
		}
		bool is_state = false;
		raw_key(p, len, &k, "state", &is_state);
		size_t v = *at;
		if (!mpraw_skip(p, len, at))
			return false;
		if (is_state && raw_is_map(p + v, *at - v)) {
			out->state     = p + v;
			out->state_len = *at - v;
		}
	}
	if (events) {
		out->p      = p;
		out->ev_off = r->ev_off;
	}
	return events;
}

/* A run's fold: how many events took effect and the state after them. */
typedef struct run_fold {
	size_t                applied;
	bool                  deleted;
	json_t               *cur;    /* the state as edited (owned), or */
	char                 *cur_raw; /* ... as msgpack a handler set, or */
	size_t                cur_raw_len;
	const msgpack_object *cur_in; /* ... the state as received */
	const unsigned char  *cur_in_raw; /* its bytes, when known */
	size_t                cur_in_raw_len;
	bool                  failed;
	char                  reason[512];
	bool                  retry;
	uint32_t              after;
} run_fold;

/*
 * Fold events [0, upto) of a run through the handler, one at a time, each
 * getting the state the previous one left (the initial state after a
 * delete), up to the first failure. The handler edits the state it is
 * given, so a failing one may have spoilt the state before it: the caller
 * folds the events before a failure again (handlers compute their answer
 * and nothing else, docs/remote.md).
 */
static void
fold_run(sl_remote *r, const msgpack_object *req, const msgpack_object *run,
    raw_run raw, size_t upto, bool count, run_fold *f)
{
	const msgpack_object *evs   = mp_get(run, "events");
	const msgpack_object *retry = mp_get(run, "retry");
	const msgpack_object *key   = mp_get(run, "key");
	memset(f, 0, sizeof(*f));
	f->cur_in         = mp_get(run, "state");
	f->cur_in_raw     = raw.state;
	f->cur_in_raw_len = raw.state_len;
	f->retry          = true;
	for (size_t j = 0; j < upto && !f->failed; j++) {
		sl_remote_call        c;
		const msgpack_object *ev = array_at(evs, j);
		bool                  ok = call_setup(
		                     &c, r, req, ev, f->cur_in, key, j == 0 ? retry : NULL);
		if (raw.p != NULL && j < raw.n_ev) {
			c.ev_raw     = raw.p + raw.ev_off[j];
			c.ev_raw_len = raw.ev_off[j + 1] - raw.ev_off[j];
			/* not unpacked yet (lazy_unpack): a map's bytes */
			if (!ok && ev != NULL
			    && ev->type == MSGPACK_OBJECT_NIL)
				ok = raw_is_map(c.ev_raw, c.ev_raw_len);
		}
		c.state_in_raw     = f->cur_in_raw;
		c.state_in_raw_len = f->cur_in_raw_len;
		c.state         = f->cur; /* handed on: c owns it now */
		c.state_raw     = f->cur_raw;
		c.state_raw_len = f->cur_raw_len;
		f->cur          = NULL;
		f->cur_raw      = NULL;
		sl_remote_result res;
		if (count)
			res = call_run(r, &c, ok);
		else
			res = ok ? r->handler(r->user, &c) : SL_REMOTE_FAILED;
		if (res == SL_REMOTE_REPLACE) {
			f->applied++;
			f->deleted = false;
			f->cur     = c.state; /* NULL: state_in unchanged */
			c.state    = NULL;
			f->cur_raw     = c.state_raw;
			f->cur_raw_len = c.state_raw_len;
			c.state_raw    = NULL;
			f->cur_in  = c.state_in;
		} else if (res == SL_REMOTE_DELETE) {
			f->applied++;
			f->deleted = true;
			f->cur_in  = r->has_initial ? &r->initial_obj : NULL;
			f->cur_in_raw = r->has_initial
			    ? (const unsigned char *) r->initial.data
			    : NULL;
			f->cur_in_raw_len = r->has_initial ? r->initial.size : 0;
		} else {
			f->failed = true;
			if (res == SL_REMOTE_FAILED && c.failed_set) {
				snprintf(f->reason, sizeof(f->reason), "%s",
				    c.fail_reason);
				f->retry = c.fail_retry;
				f->after = c.fail_after_ms;
			} else if (res == SL_REMOTE_FAILED) {
				snprintf(f->reason, sizeof(f->reason), "%s",
				    ok ? "the handler failed (no reason given)"
				       : "the call has no event (or the "
				         "client ran out of memory)");
			} else {
				snprintf(f->reason, sizeof(f->reason),
				    "the projection handler returned %d",
				    (int) res);
			}
		}
		call_free(&c);
	}
}

/* Protocol 2, a projection: each run folded (fold_run); answered per run
 * with how many events took effect, the state after them (or that the key
 * is deleted) and the first failure. */
static void
answer_runs(
    sl_remote *r, const msgpack_object *req, uint64_t call, msgpack_packer *pk)
{
	const msgpack_object *runs = mp_get(req, "runs");
	size_t n = runs != NULL && runs->type == MSGPACK_OBJECT_ARRAY
	    ? runs->via.array.size
	    : 0;
	msgpack_pack_map(pk, 2);
	mp_pack_kv_u64(pk, "call", call);
	mp_pack_cstr(pk, "runs");
	msgpack_pack_array(pk, n);
	/* the runs as they came: the events' own bytes for
	 * sl_remote_event_msgpack (NULL p: packed again from the objects) */
	size_t rat = 0, nr = 0;
	bool   raw_ok = r->req_raw != NULL && r->lz == NULL
	    && raw_value_at(r->req_raw, r->req_raw_len, "runs", &rat)
	    && raw_header(r->req_raw, r->req_raw_len, &rat, false, &nr)
	    && nr == n;
	for (size_t i = 0; i < n; i++) {
		const msgpack_object *run = &runs->via.array.ptr[i];
		const msgpack_object *evs = mp_get(run, "events");
		size_t   ne = evs != NULL && evs->type == MSGPACK_OBJECT_ARRAY
		      ? evs->via.array.size
		      : 0;
		raw_run  rr = { 0 };
		if (r->lz != NULL && r->n_lz == n) {
			/* found while reading the call (lazy_map) */
			memset(&rr, 0, sizeof(rr));
			rr.p         = r->req_raw;
			rr.state     = r->lz[i].state;
			rr.state_len = r->lz[i].state_len;
			rr.ev_off    = r->ev_off + r->lz[i].ev0;
			rr.n_ev      = r->lz[i].n_ev;
		} else if (raw_ok) {
			raw_ok = raw_run_read(
			    r, r->req_raw, r->req_raw_len, &rat, &rr);
		}
		if (rr.p == NULL || rr.n_ev != ne)
			memset(&rr, 0, sizeof(rr));
		run_fold f;
		fold_run(r, req, run, rr, ne, true, &f);
		if (f.failed && f.applied > 0) {
			/* the state before the failing event, afresh */
			run_fold g;
			if (f.cur != NULL)
				json_decref(f.cur);
			free(f.cur_raw);
			fold_run(r, req, run, rr, f.applied, false, &g);
			if (!g.failed) {
				g.failed = true;
				memcpy(g.reason, f.reason, sizeof(g.reason));
				g.retry = f.retry;
				g.after = f.after;
			}
			f = g;
		}
		msgpack_pack_map(pk, 1 + (f.applied > 0) + f.failed);
		mp_pack_kv_u64(pk, "applied", f.applied);
		if (f.applied > 0 && f.deleted) {
			mp_pack_kv_bool(pk, "deleted", true);
		} else if (f.applied > 0) {
			mp_pack_cstr(pk, "state");
			if (f.cur_raw != NULL)
				pack_raw(pk, f.cur_raw, f.cur_raw_len);
			else if (f.cur != NULL)
				json_to_mp(f.cur, pk);
			else if (f.cur_in != NULL
			    && f.cur_in->type == MSGPACK_OBJECT_MAP)
				msgpack_pack_object(pk, *f.cur_in);
			else
				msgpack_pack_map(pk, 0);
		}
		if (f.failed) {
			mp_pack_cstr(pk, "failed");
			msgpack_pack_map(pk, 3);
			mp_pack_kv_str(pk, "reason", f.reason);
			mp_pack_kv_bool(pk, "retry", f.retry);
			mp_pack_kv_u64(pk, "retry_after_ms", f.after);
		}
		if (f.cur != NULL)
			json_decref(f.cur);
		free(f.cur_raw);
	}
}

/* Protocol 2, a filter: one outcome per event. */
static void
answer_events(
    sl_remote *r, const msgpack_object *req, uint64_t call, msgpack_packer *pk)
{
	const msgpack_object *evs = mp_get(req, "events");
	const msgpack_object *rts = mp_get(req, "retries");
	size_t n = evs != NULL && evs->type == MSGPACK_OBJECT_ARRAY
	    ? evs->via.array.size
	    : 0;
	msgpack_pack_map(pk, 2);
	mp_pack_kv_u64(pk, "call", call);
	mp_pack_cstr(pk, "outcomes");
	msgpack_pack_array(pk, n);
	for (size_t i = 0; i < n; i++) {
		sl_remote_call c;
		bool ok = call_setup(&c, r, req, &evs->via.array.ptr[i], NULL,
		    NULL, array_at(rts, i));
		sl_remote_result res = call_run(r, &c, ok);
		pack_answer(r, &c, false, 0, res, pk);
		call_free(&c);
	}
}

/* Handle one request; the reply is packed into pk (false: no reply). */
static bool
handle(sl_remote *r, const msgpack_object *req, msgpack_packer *pk)
{
	uint64_t              call = 0, session = 0;
	const msgpack_object *op = mp_get(req, "op");
	if (req->type != MSGPACK_OBJECT_MAP
	    || mp_get_u64(req, "call", &call) != SL_OK || op == NULL) {
		logf_(r, SL_REMOTE_LOG_WARN, "a request without call or op");
		return false;
	}
	/* A daemon with auth: asks a new connection to prove that it holds
	 * the registration before any call: its hello carries no session,
	 * and the answer gives ours (docs/remote.md, "hello"). */
	if (mp_str_eq(op, "hello")) {
		msgpack_pack_map(pk, 3);
		mp_pack_kv_u64(pk, "call", call);
		mp_pack_kv_str(pk, "outcome", "hello");
		mp_pack_kv_u64(pk, "session", r->session);
		return true;
	}
	mp_get_u64(req, "session", &session);
	if (session != r->session) {
		/* another registration's call: this one is stale */
		logf_(r, SL_REMOTE_LOG_WARN,
		    "a call of session %" PRIu64 " (ours is %" PRIu64
		    "): registering again",
		    session, r->session);
		drop_connection(r);
		return false;
	}
	if (mp_str_eq(op, "ping")) {
		msgpack_pack_map(pk, 2);
		mp_pack_kv_u64(pk, "call", call);
		mp_pack_kv_str(pk, "outcome", "pong");
		pthread_mutex_lock(&r->mu);
		r->stats.pings++;
		pthread_mutex_unlock(&r->mu);
		return true;
	}
	if (!mp_str_eq(op, r->is_filter ? "filter" : "project")) {
		pack_failed(pk, true, call,
		    "this client does not handle that op", true, 0);
		return true;
	}
	if (r->protocol >= 2) {
		if (r->is_filter)
			answer_events(r, req, call, pk);
		else
			answer_runs(r, req, call, pk);
		return true;
	}
	sl_remote_call   c;
	bool             ok  = call_setup(&c, r, req, mp_get(req, "event"),
	                 mp_get(req, "state"), mp_get(req, "key"), mp_get(req, "retry"));
	sl_remote_result res = call_run(r, &c, ok);
	pack_answer(r, &c, true, call, res, pk);
	call_free(&c);
	return true;
}

/* handle, with the call's bytes at hand (sl_remote_event_msgpack) */
static bool
serve_one(sl_remote *r, nng_msg *msg, const msgpack_object *req,
    msgpack_packer *pk)
{
	r->req_raw     = nng_msg_body(msg);
	r->req_raw_len = nng_msg_len(msg);
	bool reply     = handle(r, req, pk);
	r->req_raw     = NULL;
	r->req_raw_len = 0;
	/* before the answer goes: whoever sees it sees the calls counted */
	pthread_mutex_lock(&r->mu);
	r->stats.calls += r->pend_calls;
	r->stats.failed += r->pend_failed;
	pthread_mutex_unlock(&r->mu);
	r->pend_calls  = 0;
	r->pend_failed = 0;
	return reply;
}

/* One value at p[*at] into *o (*at moves past it): strings and
 * unsigned integers read in place, anything else by mpraw_object (else
 * msgpack-c). */
static bool
unpack_at(sl_remote *r, const unsigned char *p, size_t len, size_t *at,
    msgpack_object *o)
{
	size_t      k = *at, n;
	const char *str;
	uint64_t    u;
	if (!mpraw_skip(p, len, at))
		return false;
	memset(o, 0, sizeof(*o));
	if (mpraw_str(p + k, *at - k, &str, &n) && n <= UINT32_MAX) {
		o->type         = MSGPACK_OBJECT_STR;
		o->via.str.ptr  = str;
		o->via.str.size = (uint32_t) n;
		return true;
	}
	if (p[k] <= 0x7f || (p[k] >= 0xcc && p[k] <= 0xcf)) {
		if (!mpraw_uint(p + k, *at - k, &u))
			return false;
		o->type    = MSGPACK_OBJECT_POSITIVE_INTEGER;
		o->via.u64 = u;
		return true;
	}
	/* a map (a run's state, its retry) without msgpack-c's state
	 * machine; what mpraw_object does not vouch for is msgpack-c's */
	size_t off = k;
	if (mpraw_object_at(p, *at, &off, &r->zone, o) && off == *at)
		return true;
	off = k;
	msgpack_unpack_return ur
	    = msgpack_unpack((const char *) p, *at, &off, &r->zone, o);
	return ur == MSGPACK_UNPACK_SUCCESS && off == *at;
}

/* A map at p[*at] as an object whose values come from unpack_at, except
 * at depth 0 the value of "runs" (an array of such maps, depth 1) and at
 * depth 1 the value of "events": an array of nil placeholders that
 * ev_obj unpacks on first use. */
/* Room in r->ev_off for n more offsets. */
static bool
off_room(sl_remote *r, size_t n)
{
	if (r->n_off + n <= r->ev_off_cap)
		return true;
	size_t cap = r->ev_off_cap ? r->ev_off_cap : 1024;
	while (cap < r->n_off + n)
		cap *= 2;
	size_t *o = realloc(r->ev_off, cap * sizeof(*o));
	if (o == NULL)
		return false;
	r->ev_off     = o;
	r->ev_off_cap = cap;
	return true;
}

static bool
lazy_map(sl_remote *r, const unsigned char *p, size_t len, size_t *at,
    int depth, msgpack_object *o, struct lz_run *lz)
{
	size_t n;
	if (!raw_header(p, len, at, true, &n) || n > len - *at)
		return false;
	msgpack_object_kv *kv
	    = msgpack_zone_malloc(&r->zone, (n > 0 ? n : 1) * sizeof(*kv));
	if (kv == NULL)
		return false;
	o->type         = MSGPACK_OBJECT_MAP;
	o->via.map.size = (uint32_t) n;
	o->via.map.ptr  = kv;
	for (size_t i = 0; i < n; i++) {
		if (!unpack_at(r, p, len, at, &kv[i].key))
			return false;
		bool   runs   = depth == 0 && mp_str_eq(&kv[i].key, "runs");
		bool   events = depth == 1 && mp_str_eq(&kv[i].key, "events");
		size_t ne, v = *at;
		if ((runs || events) && raw_header(p, len, &v, false, &ne)
		    && ne <= len - v) {
			msgpack_object *a = msgpack_zone_malloc(
			    &r->zone, (ne > 0 ? ne : 1) * sizeof(*a));
			if (a == NULL)
				return false;
			*at                      = v;
			kv[i].val.type           = MSGPACK_OBJECT_ARRAY;
			kv[i].val.via.array.size = (uint32_t) ne;
			kv[i].val.via.array.ptr  = a;
			if (runs && r->lz == NULL) {
				/* the first "runs": where each run's parts
				 * are, for answer_runs */
				r->lz = msgpack_zone_malloc(&r->zone,
				    (ne > 0 ? ne : 1) * sizeof(*r->lz));
				if (r->lz == NULL)
					return false;
				memset(r->lz, 0,
				    (ne > 0 ? ne : 1) * sizeof(*r->lz));
				r->n_lz = ne;
			} else if (runs) {
				runs = false; /* a second one: not recorded */
			}
			if (events && lz != NULL) {
				if (lz->n_ev > 0 || !off_room(r, ne + 1))
					lz = NULL; /* a second "events" key */
				else {
					lz->ev0  = r->n_off;
					lz->n_ev = ne;
				}
			}
			for (size_t j = 0; j < ne; j++) {
				memset(&a[j], 0, sizeof(a[j]));
				if (events && lz != NULL)
					r->ev_off[r->n_off++] = *at;
				if (events ? !mpraw_skip(p, len, at)
				           : !(raw_is_map(p + *at, len - *at)
				                   ? lazy_map(r, p, len, at, 1,
				                       &a[j],
				                       runs ? &r->lz[j] : NULL)
				                   : unpack_at(
				                       r, p, len, at, &a[j])))
					return false;
			}
			if (events && lz != NULL)
				r->ev_off[r->n_off++] = *at;
			continue;
		}
		size_t vstart = *at;
		if (!unpack_at(r, p, len, at, &kv[i].val))
			return false;
		if (lz != NULL && lz->state == NULL
		    && mp_str_eq(&kv[i].key, "state")
		    && kv[i].val.type == MSGPACK_OBJECT_MAP) {
			lz->state     = p + vstart;
			lz->state_len = *at - vstart;
		}
	}
	return true;
}

static void
serve(sl_remote *r, nng_msg *msg)
{
	msgpack_object   req;
	msgpack_sbuffer *sb = &r->answer;
	msgpack_packer   pk;
	size_t           off = 0;
	/* kept from call to call: a call's objects and answer take tens of
	 * KiB, which malloc would take back and hand out again each time */
	if (!r->zone_ready) {
		if (!msgpack_zone_init(&r->zone, REMOTE_ZONE_CHUNK))
			return;
		r->zone_ready = true;
	}
	msgpack_zone_clear(&r->zone);
	memset(r->strs, 0, sizeof(r->strs)); /* they lived in the zone */
	r->tenant_req = NULL;
	msgpack_sbuffer_clear(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	/* a protocol 2 projection's events are unpacked only when a handler
	 * asks for them as objects (ev_obj) */
	const unsigned char *body = nng_msg_body(msg);
	size_t               len  = nng_msg_len(msg);
	bool lazy = r->protocol >= 2 && !r->is_filter && raw_is_map(body, len);
	r->lz     = NULL; /* in the zone: this request's own */
	r->n_lz   = 0;
	r->n_off  = 0;
	if (lazy ? !lazy_map(r, body, len, &off, 0, &req, NULL) || off != len
	         : msgpack_unpack(
	               (const char *) body, len, &off, &r->zone, &req)
	            != MSGPACK_UNPACK_SUCCESS) {
		logf_(r, SL_REMOTE_LOG_WARN, "a request that is not msgpack");
	} else if (serve_one(r, msg, &req, &pk) && sb->data != NULL) {
		nng_msg *rep;
		if (nng_msg_alloc(&rep, sb->size) == 0) {
			memcpy(nng_msg_body(rep), sb->data, sb->size);
			int rv = nng_sendmsg(r->sock, rep, 0);
			if (rv != 0) {
				nng_msg_free(rep);
				logf_(r, SL_REMOTE_LOG_DEBUG,
				    "an answer was not sent: %s",
				    nng_strerror(rv));
			}
		}
	}
}

/* Sleep up to ms, waking for stop. */
static void
nap(sl_remote *r, int ms)
{
	int64_t end = now_ms() + ms;
	while (!atomic_load(&r->stop) && now_ms() < end) {
		struct timespec ts = { 0, 20 * 1000000L };
		nanosleep(&ts, NULL);
	}
}

/* Whether a refusal means the daemon will never take this definition. */
static bool
fatal(int rc)
{
	return rc == SL_EINVAL || rc == SL_EPROTO || rc == SL_EVERSION
	    || rc == SL_ETOOBIG || rc == SL_EUNKNOWNOP;
}

int
sl_remote_run(sl_remote *r)
{
	int     backoff   = 0;
	int64_t last_call = now_ms();
	if (r == NULL)
		return SL_EINVAL;
	while (!atomic_load(&r->stop)) {
		if (!r->registered) {
			char err[512] = "";
			int  rc       = do_register(r, err, sizeof(err));
			if (rc == SL_OK) {
				logf_(r, SL_REMOTE_LOG_INFO,
				    "registered again; calls come on %s",
				    r->url);
				backoff   = 0;
				last_call = now_ms();
				continue;
			}
			if (atomic_load(&r->stop))
				break;
			if (fatal(rc)) {
				logf_(r, SL_REMOTE_LOG_ERROR,
				    "the daemon refuses the definition: %s "
				    "(%s)",
				    err, sl_errname(rc));
				return rc;
			}
			backoff = backoff == 0 ? 100 : backoff * 2;
			if (backoff > REMOTE_BACKOFF_MAX_MS)
				backoff = REMOTE_BACKOFF_MAX_MS;
			logf_(r, SL_REMOTE_LOG_WARN,
			    "cannot register (%s: %s); trying again in %d ms",
			    sl_errname(rc), err, backoff);
			nap(r, backoff);
			continue;
		}
		nng_msg *msg;
		int      rv = nng_recvmsg(r->sock, &msg, 0);
		if (rv == NNG_ETIMEDOUT) {
			int64_t silent = now_ms() - last_call;
			if (silent > (int64_t) REMOTE_SILENCE_FACTOR
			        * r->keepalive_ms) {
				logf_(r, SL_REMOTE_LOG_WARN,
				    "no call for %" PRId64
				    " ms: registering again (the daemon may "
				    "have restarted)",
				    silent);
				drop_connection(r);
			}
			continue;
		}
		if (rv != 0) {
			logf_(r, SL_REMOTE_LOG_ERROR, "receiving failed: %s",
			    nng_strerror(rv));
			return SL_ENET;
		}
		last_call = now_ms();
		serve(r, msg);
		nng_msg_free(msg);
	}
	return SL_OK;
}

static void *
run_main(void *arg)
{
	sl_remote_run(arg);
	return NULL;
}

int
sl_remote_start(sl_remote *r)
{
	if (r == NULL || r->thread_started)
		return SL_EINVAL;
	if (pthread_create(&r->thread, NULL, run_main, r) != 0)
		return SL_ENOMEM;
	r->thread_started = true;
	return SL_OK;
}

void
sl_remote_stop(sl_remote *r)
{
	if (r != NULL)
		atomic_store(&r->stop, true);
}

void
sl_remote_close(sl_remote *r)
{
	if (r == NULL)
		return;
	sl_remote_stop(r);
	if (r->thread_started)
		pthread_join(r->thread, NULL);
	/* The connection first, then a socket without peers (NNG 1.5 can
	 * hang closing a socket whose peer keeps sending). */
	if (r->dialing)
		nng_dialer_close(r->dialer);
	if (nng_socket_id(r->sock) > 0)
		nng_close(r->sock);
	if (r->api_aio != NULL) {
		nng_aio_stop(r->api_aio);
		nng_aio_free(r->api_aio);
	}
	if (nng_socket_id(r->api) > 0)
		nng_close(r->api);
	msgpack_sbuffer_destroy(&r->reg);
	msgpack_sbuffer_destroy(&r->initial);
	msgpack_sbuffer_destroy(&r->ev_bytes);
	free(r->ev_off);
	msgpack_sbuffer_destroy(&r->answer);
	if (r->zone_ready)
		msgpack_zone_destroy(&r->zone);
	msgpack_sbuffer_destroy(&r->st_bytes);
	if (r->has_initial)
		msgpack_zone_destroy(&r->izone);
	pthread_mutex_destroy(&r->mu);
	pthread_mutex_destroy(&r->api_mu);
	pthread_cond_destroy(&r->api_cv);
	sl_tls_options_free(&r->tls);
	free(r->api_url);
	free(r->token);
	free(r);
}

void
sl_remote_get_stats(sl_remote *r, sl_remote_stats *out)
{
	pthread_mutex_lock(&r->mu);
	*out = r->stats;
	pthread_mutex_unlock(&r->mu);
	out->connected = atomic_load(&r->connected);
}

/* ---- in a handler ---- */

const char *
sl_remote_tenant(const sl_remote_call *c)
{
	sl_remote *r = c->r;
	if (r->tenant_req != c->req) {
		r->tenant_o   = mp_get(c->req, "tenant");
		r->tenant_req = c->req;
	}
	return lazy_str(c, &c->tenant, r->tenant_o);
}

const char *
sl_remote_key(const sl_remote_call *c)
{
	return c->r->is_filter ? NULL : lazy_str(c, &c->key, c->key_o);
}

uint32_t
sl_remote_attempt(const sl_remote_call *c)
{
	return c->attempt;
}

const char *
sl_remote_retry_reason(const sl_remote_call *c)
{
	return lazy_str(c, &c->reason, mp_get(c->retry_o, "reason"));
}

const char *
sl_remote_event_type(const sl_remote_call *c)
{
	return lazy_str(c, &c->type, mp_get(ev_obj(c), "type"));
}

const char *
sl_remote_event_stream(const sl_remote_call *c)
{
	return lazy_str(c, &c->stream, mp_get(ev_obj(c), "stream"));
}

uint64_t
sl_remote_event_position(const sl_remote_call *c)
{
	uint64_t p = 0;
	mp_get_u64(ev_obj(c), "position", &p);
	return p;
}

/* JSON text of o; "{}" when absent (a malformed call's event lacks
 * fields, or is not there at all). */
static char *
json_or_empty(const msgpack_object *o)
{
	return o != NULL ? mp_to_json_text(o) : strdup("{}");
}

const sl_read_event *
sl_remote_event(sl_remote_call *c)
{
	if (c->ev_built)
		return &c->ev;
	const msgpack_object *m = ev_obj(c);
	sl_read_event        *e = &c->ev;
	uint64_t              u = 0;
	int64_t               i = 0;
	bool                  b = false;
	c->ev_built             = true;
	mp_get_u64(m, "position", &e->position);
	mp_get_u64(m, "revision", &e->revision);
	if (mp_get_u64(m, "generation", &u) == SL_OK)
		e->generation = (uint32_t) u;
	if (mp_get_i64(m, "occurred", &i) == SL_OK)
		e->occurred_ns = i;
	if (mp_get_bool(m, "public", &b) == SL_OK)
		e->is_public = b;
	e->tenant         = obj_strdup(mp_get(m, "tenant"));
	e->stream         = obj_strdup(mp_get(m, "stream"));
	e->id             = obj_strdup(mp_get(m, "id"));
	e->type           = obj_strdup(mp_get(m, "type"));
	e->correlation_id = obj_strdup(mp_get(m, "correlation_id"));
	e->causation_id   = obj_strdup(mp_get(m, "causation_id"));
	e->metadata_json  = json_or_empty(mp_get(m, "metadata"));
	e->content_json   = json_or_empty(mp_get(m, "content"));
	e->json           = json_or_empty(m);
	return e;
}

/* The value at a dotted path of the content ("$metadata." walks the
 * metadata); NULL if absent or nil. */
static const msgpack_object *
value_at(const sl_remote_call *c, const char *path)
{
	const msgpack_object *o      = mp_get(ev_obj(c), "content");
	static const char     meta[] = "$metadata.";
	if (path == NULL)
		return NULL;
	if (strncmp(path, meta, sizeof(meta) - 1) == 0) {
		o = mp_get(ev_obj(c), "metadata");
		path += sizeof(meta) - 1;
	}
	while (o != NULL && *path != '\0') {
		size_t n   = strcspn(path, ".");
		char  *key = strndup(path, n);
		if (key == NULL)
			return NULL;
		o = mp_get(o, key);
		free(key);
		path += path[n] == '.' ? n + 1 : n;
	}
	return o != NULL && o->type != MSGPACK_OBJECT_NIL ? o : NULL;
}

/* The code of a typed lookup: SL_ENOTFOUND when nothing was found,
 * SL_EINVAL when it is of another type, else SL_OK. */
static int
lookup_rc(bool found, bool type_ok)
{
	return !found ? SL_ENOTFOUND : type_ok ? SL_OK : SL_EINVAL;
}

/* The value at path (value_at) in *o, and lookup_rc of it being of type. */
static int
value_typed(const sl_remote_call *c, const char *path,
    msgpack_object_type type, const msgpack_object **o)
{
	*o = value_at(c, path);
	return lookup_rc(*o != NULL, *o != NULL && (*o)->type == type);
}

int
sl_remote_get_str(sl_remote_call *c, const char *path, const char **out)
{
	const msgpack_object *o;
	int rc = value_typed(c, path, MSGPACK_OBJECT_STR, &o);
	if (rc != SL_OK)
		return rc;
	*out = scratch(c, mp_strdup(o));
	return *out != NULL ? SL_OK : SL_ENOMEM;
}

int
sl_remote_get_i64(sl_remote_call *c, const char *path, int64_t *out)
{
	const msgpack_object *o = value_at(c, path);
	if (o == NULL)
		return SL_ENOTFOUND;
	return mp_as_i64(o, out) ? SL_OK : SL_EINVAL;
}

int
sl_remote_get_f64(sl_remote_call *c, const char *path, double *out)
{
	const msgpack_object *o = value_at(c, path);
	if (o == NULL)
		return SL_ENOTFOUND;
	switch (o->type) {
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		*out = o->via.f64;
		return SL_OK;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		*out = (double) o->via.u64;
		return SL_OK;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		*out = (double) o->via.i64;
		return SL_OK;
	default:
		return SL_EINVAL;
	}
}

int
sl_remote_get_bool(sl_remote_call *c, const char *path, bool *out)
{
	const msgpack_object *o;
	int rc = value_typed(c, path, MSGPACK_OBJECT_BOOLEAN, &o);
	if (rc == SL_OK)
		*out = o->via.boolean;
	return rc;
}

/* The state as an editable JSON object (from the call's on first use). */
static json_t *
state(sl_remote_call *c)
{
	if (c->r->is_filter)
		return NULL;
	if (c->state == NULL && c->state_raw != NULL) {
		/* set as msgpack, edited now through JSON */
		msgpack_zone   z;
		msgpack_object o;
		size_t         off = 0;
		if (!msgpack_zone_init(&z, 1024))
			return NULL;
		if (msgpack_unpack(c->state_raw, c->state_raw_len, &off, &z, &o)
		    == MSGPACK_UNPACK_SUCCESS)
			c->state = mp_to_json(&o);
		msgpack_zone_destroy(&z);
		if (c->state == NULL)
			return NULL;
		free(c->state_raw);
		c->state_raw = NULL;
	}
	if (c->state == NULL) {
		c->state = c->state_in != NULL
		        && c->state_in->type == MSGPACK_OBJECT_MAP
		    ? mp_to_json(c->state_in)
		    : json_object();
	}
	return c->state;
}

static json_t *
state_value(sl_remote_call *c, const char *key)
{
	json_t *s = state(c);
	json_t *v = s != NULL && key != NULL ? json_object_get(s, key) : NULL;
	return v != NULL && !json_is_null(v) ? v : NULL;
}

int
sl_remote_state_str(sl_remote_call *c, const char *key, const char **out)
{
	json_t *v  = state_value(c, key);
	int     rc = lookup_rc(v != NULL, json_is_string(v));
	if (rc == SL_OK)
		*out = json_string_value(v);
	return rc;
}

int
sl_remote_state_i64(sl_remote_call *c, const char *key, int64_t *out)
{
	json_t *v  = state_value(c, key);
	int     rc = lookup_rc(v != NULL, json_is_integer(v));
	if (rc == SL_OK)
		*out = (int64_t) json_integer_value(v);
	return rc;
}

int
sl_remote_state_f64(sl_remote_call *c, const char *key, double *out)
{
	json_t *v  = state_value(c, key);
	int     rc = lookup_rc(v != NULL, json_is_number(v));
	if (rc == SL_OK)
		*out = json_number_value(v);
	return rc;
}

int
sl_remote_state_bool(sl_remote_call *c, const char *key, bool *out)
{
	json_t *v  = state_value(c, key);
	int     rc = lookup_rc(v != NULL, json_is_boolean(v));
	if (rc == SL_OK)
		*out = json_is_true(v);
	return rc;
}

/* Set key to v (takes v). */
static int
state_set(sl_remote_call *c, const char *key, json_t *v)
{
	json_t *s = state(c);
	if (s == NULL || key == NULL) {
		json_decref(v);
		return SL_EINVAL;
	}
	if (v == NULL)
		return SL_ENOMEM;
	return json_object_set_new(s, key, v) == 0 ? SL_OK : SL_ENOMEM;
}

int
sl_remote_set_str(sl_remote_call *c, const char *key, const char *val)
{
	return val != NULL ? state_set(c, key, json_string(val)) : SL_EINVAL;
}

int
sl_remote_set_i64(sl_remote_call *c, const char *key, int64_t val)
{
	return state_set(c, key, json_integer((json_int_t) val));
}

int
sl_remote_set_f64(sl_remote_call *c, const char *key, double val)
{
	return state_set(c, key, json_real(val));
}

int
sl_remote_set_bool(sl_remote_call *c, const char *key, bool val)
{
	return state_set(c, key, json_boolean(val));
}

int
sl_remote_remove(sl_remote_call *c, const char *key)
{
	json_t *s = state(c);
	if (s == NULL || key == NULL)
		return SL_EINVAL;
	json_object_del(s, key);
	return SL_OK;
}

const char *
sl_remote_state_json(sl_remote_call *c)
{
	json_t *s = state(c);
	if (s == NULL)
		return NULL;
	free(c->state_text);
	c->state_text = json_dumps(s, JSON_COMPACT);
	return c->state_text;
}

int
sl_remote_set_state_json(sl_remote_call *c, const char *json)
{
	json_error_t je;
	if (c->r->is_filter || json == NULL)
		return SL_EINVAL;
	json_t *v = json_loads(json, 0, &je);
	if (v == NULL || !json_is_object(v)) {
		json_decref(v);
		return SL_EINVAL;
	}
	if (c->state != NULL)
		json_decref(c->state);
	c->state = v;
	free(c->state_raw);
	c->state_raw = NULL;
	return SL_OK;
}

/* ---- raw msgpack ---- */

int
sl_remote_event_msgpack(sl_remote_call *c, const void **out, size_t *len)
{
	if (c == NULL || c->event == NULL || out == NULL || len == NULL)
		return SL_EINVAL;
	if (c->ev_raw != NULL) {
		*out = c->ev_raw;
		*len = c->ev_raw_len;
		return SL_OK;
	}
	msgpack_sbuffer *sb = &c->r->ev_bytes;
	if (!c->ev_packed) {
		msgpack_packer pk;
		msgpack_sbuffer_clear(sb);
		msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
		if (msgpack_pack_object(&pk, *ev_obj(c)) != 0)
			return SL_ENOMEM;
		c->ev_packed = true;
	}
	*out = sb->data;
	*len = sb->size;
	return SL_OK;
}

int
sl_remote_state_msgpack(sl_remote_call *c, const void **out, size_t *len)
{
	if (c == NULL || c->r->is_filter || out == NULL || len == NULL)
		return SL_EINVAL;
	if (c->state_raw != NULL) {
		*out = c->state_raw;
		*len = c->state_raw_len;
		return SL_OK;
	}
	if (c->state == NULL && c->state_in_raw != NULL) {
		*out = c->state_in_raw;
		*len = c->state_in_raw_len;
		return SL_OK;
	}
	msgpack_packer   pk;
	msgpack_sbuffer *sb = &c->r->st_bytes;
	msgpack_sbuffer_clear(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	pack_state(c, &pk);
	if (sb->data == NULL)
		return SL_ENOMEM;
	*out = sb->data;
	*len = sb->size;
	return SL_OK;
}

int
sl_remote_set_state_msgpack(sl_remote_call *c, const void *data, size_t len)
{
	if (c == NULL || c->r->is_filter || data == NULL || len == 0)
		return SL_EINVAL;
	/* one whole map, nothing after it (the daemon checks it again) */
	size_t at = 0;
	if (!raw_is_map(data, len) || !mpraw_skip(data, len, &at) || at != len)
		return SL_EINVAL;
	char *copy = malloc(len);
	if (copy == NULL)
		return SL_ENOMEM;
	memcpy(copy, data, len);
	free(c->state_raw);
	c->state_raw     = copy;
	c->state_raw_len = len;
	if (c->state != NULL) {
		json_decref(c->state);
		c->state = NULL;
	}
	return SL_OK;
}

sl_remote_result
sl_remote_fail(sl_remote_call *c, bool retry, uint32_t retry_after_ms,
    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->fail_reason, sizeof(c->fail_reason), fmt, ap);
	va_end(ap);
	c->failed_set    = true;
	c->fail_retry    = retry;
	c->fail_after_ms = retry_after_ms;
	return SL_REMOTE_FAILED;
}

sl_remote_result
sl_remote_include(sl_remote_call *c, const char *partition)
{
	if (partition != NULL && partition[0] != '\0'
	    && strlen(partition) <= REMOTE_MAX_PARTITION) {
		snprintf(c->partition, sizeof(c->partition), "%s", partition);
		c->partition_set = true;
	} else if (partition != NULL) {
		return sl_remote_fail(c, true, 0,
		    "partition of %zu bytes (1..%d allowed)",
		    strlen(partition), REMOTE_MAX_PARTITION);
	}
	return SL_REMOTE_INCLUDED;
}
