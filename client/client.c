/*
 * The C client library (include/sluice/client.h): packs requests of the
 * wire protocol (docs/protocol.md), sends them on an NNG req0 socket, and
 * turns replies back into C structs with JSON text for content and states.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include <sluice/client.h>

#include "nngclose.h"
#include "client_internal.h"
#include "tlsconf.h"
#include "json.h"
#include "mp.h"
#include "mpraw.h"

/* How long closing a socket may take (see nngclose.h). */
#define CLIENT_CLOSE_MS 2000

struct sl_client {
	nng_socket      sock;
	nng_dialer      dialer;
	char           *url;   /* to dial again, see client_redial */
	char           *token; /* sent in every request (sl_client_set_token) */
	nng_tls_config *tls;   /* tls+tcp:// only */
	/* the options, copied: a subscription's feed dials with them */
	sl_tls_options tls_opts;
	bool           has_tls;
	char           err[512];
};

/* The deepest nesting a reply checked before decoding may have. */
#define CLIENT_REPLY_MAX_DEPTH 64

/* A decoded reply: objects in zone, strings pointing into msg. */
typedef struct reply {
	nng_msg       *msg;
	msgpack_zone  *zone;
	msgpack_object root;
} reply;

static _Thread_local char open_err[256];

void
client_seterr(sl_client *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
}

static int
client_nng_err(int rv)
{
	switch (rv) {
	case 0:
		return SL_OK;
	case NNG_ETIMEDOUT:
		return SL_ETIMEDOUT;
	case NNG_ENOMEM:
		return SL_ENOMEM;
	case NNG_EADDRINVAL:
	case NNG_ENOTSUP:
	case NNG_EINVAL:
		return SL_EINVAL;
	default:
		return SL_ENET;
	}
}

const sl_tls_options *
client_tls_options(const sl_client *c)
{
	return c->has_tls ? &c->tls_opts : NULL;
}

const char *
client_tls_hint(const char *url, int rv)
{
	if (!sl_tls_url(url))
		return "";
	if (rv == NNG_EPEERAUTH)
		return " (TLS: the daemon's certificate is not signed by the "
		       "CA given, or does not carry the server name)";
	if (rv == NNG_ECRYPTO || rv == NNG_ECLOSED || rv == NNG_ECONNSHUT)
		return " (the TLS handshake failed: a wrong CA or server "
		       "name, or the daemon wants a client certificate it "
		       "can verify)";
	return "";
}

static void
client_free(sl_client *c)
{
	if (c->tls != NULL)
		nng_tls_config_free(c->tls);
	sl_tls_options_free(&c->tls_opts);
	free(c->url);
	free(c->token);
	free(c);
}

int
sl_client_open(const char *url, int timeout_ms, sl_client **out)
{
	return sl_client_open_tls(url, timeout_ms, NULL, out);
}

int
sl_client_open_tls(const char *url, int timeout_ms,
    const sl_tls_options *tls, sl_client **out)
{
	sl_client   *c;
	nng_duration to = timeout_ms > 0 ? timeout_ms : NNG_DURATION_INFINITE;
	int          rv, rc;

	open_err[0] = '\0';
	if (out == NULL)
		return SL_EINVAL;
	*out = NULL;
	if (url == NULL || url[0] == '\0') {
		snprintf(open_err, sizeof(open_err), "no endpoint given");
		return SL_EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL || (c->url = strdup(url)) == NULL) {
		free(c);
		return SL_ENOMEM;
	}
	if (tls != NULL) {
		if (!sl_tls_options_copy(&c->tls_opts, tls)) {
			client_free(c);
			return SL_ENOMEM;
		}
		c->has_tls = true;
	}
	if (sl_tls_url(url)
	    && (rc = sl_tls_client_config(
	            tls, url, &c->tls, open_err, sizeof(open_err)))
	        != SL_OK) {
		client_free(c);
		return rc;
	}
	if ((rv = nng_req0_open(&c->sock)) != 0) {
		snprintf(open_err, sizeof(open_err), "cannot open socket: %s",
		    nng_strerror(rv));
		client_free(c);
		return client_nng_err(rv);
	}
	/* Replies (a page of events) may be far larger than NNG's 1 MiB
	 * default; the daemon bounds them. Never resend by timer: a commit
	 * sent twice could be written twice. */
	nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, 0);
	nng_socket_set_ms(c->sock, NNG_OPT_RECVTIMEO, to);
	nng_socket_set_ms(c->sock, NNG_OPT_SENDTIMEO, to);
	nng_socket_set_ms(
	    c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	/* A blocking dial: a daemon that is not there is an error now. */
	if ((rv = sl_tls_dial(c->sock, url, c->tls, 0, &c->dialer)) != 0) {
		snprintf(open_err, sizeof(open_err),
		    "cannot connect to %s: %s%s", url, nng_strerror(rv),
		    client_tls_hint(url, rv));
		/* bounded: a failed TLS dial leaves NNG's reaper busy, and
		 * NNG 1.5.2 can hang in nng_close (nngclose.h) */
		sl_nng_close_bounded(c->sock, CLIENT_CLOSE_MS);
		client_free(c);
		return client_nng_err(rv);
	}
	*out = c;
	return SL_OK;
}

const char *
sl_client_open_error(void)
{
	return open_err;
}

void
sl_client_close(sl_client *c)
{
	if (c == NULL)
		return;
	/* NNG 1.5.2 can hang in nng_close (nngclose.h): never for long */
	sl_nng_close_bounded(c->sock, CLIENT_CLOSE_MS);
	client_free(c);
}

int
sl_client_set_token(sl_client *c, const char *token)
{
	char *t = NULL;
	if (c == NULL || (token != NULL && token[0] == '\0'))
		return SL_EINVAL;
	if (token != NULL && (t = strdup(token)) == NULL)
		return SL_ENOMEM;
	free(c->token);
	c->token = t;
	return SL_OK;
}

/* Headers mpraw_map_find may walk looking for a token already there. */
#define CLIENT_TOKEN_BUDGET 4096

/*
 * req with "token" added to its map: a new map header, the same pairs,
 * then the token. false (send req as it is): no token set, req is not a
 * map (the daemon answers EPROTO), or it carries a token of its own.
 */
static bool
client_add_token(
    const sl_client *c, const void *req, size_t len, msgpack_sbuffer *out)
{
	const unsigned char *p = req;
	const unsigned char *v;
	size_t               vlen, hl;
	uint32_t             n;
	msgpack_packer       pk;

	if (c->token == NULL || len == 0)
		return false;
	if (p[0] >= 0x80 && p[0] <= 0x8f) {
		n  = p[0] & 0x0f;
		hl = 1;
	} else if (p[0] == 0xde && len >= 3) {
		n  = (uint32_t) p[1] << 8 | p[2];
		hl = 3;
	} else if (p[0] == 0xdf && len >= 5) {
		n = (uint32_t) p[1] << 24 | (uint32_t) p[2] << 16
		    | (uint32_t) p[3] << 8 | p[4];
		hl = 5;
	} else {
		return false;
	}
	if (n == UINT32_MAX
	    || mpraw_map_find(
	           req, len, "token", CLIENT_TOKEN_BUDGET, &v, &vlen)
	        != 0)
		return false;
	msgpack_sbuffer_init(out);
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, n + 1);
	msgpack_sbuffer_write(out, (const char *) p + hl, len - hl);
	mp_pack_kv_str(&pk, "token", c->token);
	return true;
}

const char *
sl_client_last_error(const sl_client *c)
{
	return c != NULL ? c->err : "no client";
}

void
client_set_error(sl_client *c, const char *msg)
{
	if (c != NULL)
		snprintf(c->err, sizeof(c->err), "%s", msg);
}

void
sl_client_free(void *p)
{
	free(p);
}

static void
reply_free(reply *r)
{
	if (r->zone != NULL)
		msgpack_zone_free(r->zone);
	if (r->msg != NULL)
		nng_msg_free(r->msg);
	memset(r, 0, sizeof(*r));
}

/*
 * A request could not be sent within the timeout: there is no connection,
 * and the dialer may be dead. Dial anew with a new dialer, in the
 * background (the next request waits for it). In NNG 1.5.2 a connection
 * attempt that reaches a listener which goes away before the SP handshake
 * ends in NNG_ECLOSED, which the dialer takes for its own close ("no
 * further action"): it never dials again. A SIGKILLed daemon does that, as
 * its listening socket is released a few ms after its connections and a
 * quick redial gets in (tests/feed_redial_test.c).
 */
static void
client_redial(sl_client *c)
{
	nng_dialer_close(c->dialer);
	if (sl_tls_dial(c->sock, c->url, c->tls, NNG_FLAG_NONBLOCK, &c->dialer)
	    != 0)
		c->dialer = (nng_dialer) NNG_DIALER_INITIALIZER;
}

int
client_roundtrip(sl_client *c, const void *req, size_t len, nng_msg **out)
{
	nng_msg *m;
	int      rv;

	*out = NULL;
	msgpack_sbuffer withtok;
	bool            tok = client_add_token(c, req, len, &withtok);
	if (tok) {
		req = withtok.data;
		len = withtok.size;
	}
	rv = nng_msg_alloc(&m, len);
	if (rv == 0 && len > 0)
		memcpy(nng_msg_body(m), req, len);
	if (tok)
		msgpack_sbuffer_destroy(&withtok);
	if (rv != 0) {
		client_seterr(c, "out of memory");
		return SL_ENOMEM;
	}
	if ((rv = nng_sendmsg(c->sock, m, 0)) != 0) {
		nng_msg_free(m);
		if (rv == NNG_ETIMEDOUT)
			client_redial(c);
		client_seterr(
		    c, "cannot send the request: %s", nng_strerror(rv));
		return client_nng_err(rv);
	}
	if ((rv = nng_recvmsg(c->sock, out, 0)) != 0) {
		client_seterr(c, "no reply: %s", nng_strerror(rv));
		return client_nng_err(rv);
	}
	return SL_OK;
}

/*
 * Decode a reply and check its envelope. On an error reply, the code is
 * returned, the message kept in c->err, and rep stays decoded (extra
 * fields such as actual_revision). On other failures rep is freed.
 */
static int
client_decode(sl_client *c, nng_msg *msg, reply *rep)
{
	const msgpack_object *ok, *v;
	size_t                off = 0;
	uint64_t              code;
	const char           *s;
	size_t                len;

	memset(rep, 0, sizeof(*rep));
	rep->msg  = msg;
	rep->zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
	if (rep->zone == NULL) {
		reply_free(rep);
		client_seterr(c, "out of memory");
		return SL_ENOMEM;
	}
	if (msgpack_unpack(nng_msg_body(msg), nng_msg_len(msg), &off,
	        rep->zone, &rep->root)
	        != MSGPACK_UNPACK_SUCCESS
	    || rep->root.type != MSGPACK_OBJECT_MAP) {
		reply_free(rep);
		client_seterr(c, "the reply is not a msgpack map");
		return SL_EPROTO;
	}
	v = mp_get(&rep->root, "v");
	if (v == NULL || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER
	    || v->via.u64 != SL_PROTOCOL_VERSION) {
		reply_free(rep);
		client_seterr(c, "the reply is not protocol version %d",
		    SL_PROTOCOL_VERSION);
		return SL_EVERSION;
	}
	ok = mp_get(&rep->root, "ok");
	if (ok == NULL || ok->type != MSGPACK_OBJECT_BOOLEAN) {
		reply_free(rep);
		client_seterr(c, "the reply has no 'ok' field");
		return SL_EPROTO;
	}
	if (ok->via.boolean)
		return SL_OK;
	if (mp_get_u64(&rep->root, "code", &code) != SL_OK || code == 0
	    || code > INT32_MAX) {
		reply_free(rep);
		client_seterr(c, "the error reply has no valid 'code'");
		return SL_EPROTO;
	}
	if (mp_get_str(&rep->root, "message", &s, &len) == SL_OK)
		client_seterr(c, "%.*s", (int) len, s);
	else
		client_seterr(c, "%s", sl_strerror((int) code));
	return (int) code;
}

int
client_reply_error(sl_client *c, nng_msg *msg)
{
	reply rep;
	char  err[200];
	/* a reply already found malformed: msgpack-c would allocate what a
	 * lying header claims before finding it short */
	if (!mpraw_check(nng_msg_body(msg), nng_msg_len(msg),
	        CLIENT_REPLY_MAX_DEPTH, "reply", err, sizeof(err))) {
		client_seterr(c, "the reply is malformed: %s", err);
		nng_msg_free(msg);
		return SL_EPROTO;
	}
	int rc = client_decode(c, msg, &rep);
	if (rc == SL_OK) {
		client_seterr(c, "the reply is malformed");
		rc = SL_EPROTO;
	}
	if (rep.msg != NULL)
		reply_free(&rep);
	return rc;
}

/* Send a packed request; on SL_OK rep holds the decoded ok reply. */
static int
client_call(sl_client *c, const msgpack_sbuffer *req, reply *rep)
{
	nng_msg *msg;
	int      rc;

	memset(rep, 0, sizeof(*rep));
	rc = client_roundtrip(c, req->data, req->size, &msg);
	if (rc != SL_OK)
		return rc;
	return client_decode(c, msg, rep);
}

int
sl_client_request(sl_client *c, const void *req, size_t req_len,
    void **reply_out, size_t *reply_len)
{
	nng_msg *msg;
	reply    rep;
	int      rc;

	if (c == NULL || reply_out == NULL || reply_len == NULL
	    || (req == NULL && req_len > 0))
		return SL_EINVAL;
	c->err[0]  = '\0';
	*reply_out = NULL;
	*reply_len = 0;
	rc         = client_roundtrip(c, req, req_len, &msg);
	if (rc != SL_OK)
		return rc;
	*reply_out = malloc(nng_msg_len(msg) > 0 ? nng_msg_len(msg) : 1);
	if (*reply_out == NULL) {
		nng_msg_free(msg);
		client_seterr(c, "out of memory");
		return SL_ENOMEM;
	}
	memcpy(*reply_out, nng_msg_body(msg), nng_msg_len(msg));
	*reply_len = nng_msg_len(msg);
	rc         = client_decode(c, msg, &rep);
	if (rep.msg != NULL)
		reply_free(&rep);
	return rc;
}

void
client_begin(
    msgpack_sbuffer *sb, msgpack_packer *pk, const char *op, size_t n_fields)
{
	msgpack_sbuffer_init(sb);
	msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(pk, 2 + n_fields);
	mp_pack_kv_u64(pk, "v", SL_PROTOCOL_VERSION);
	mp_pack_kv_str(pk, "op", op);
}

static uint64_t
reply_u64(const reply *rep, const char *key)
{
	uint64_t v = 0;
	mp_get_u64(&rep->root, key, &v);
	return v;
}

static void
pack_expected(msgpack_packer *pk, uint64_t expected)
{
	if (expected == SL_EXPECT_ANY)
		mp_pack_kv_str(pk, "expected", "any");
	else if (expected == SL_EXPECT_NO_STREAM)
		mp_pack_kv_str(pk, "expected", "no_stream");
	else
		mp_pack_kv_u64(pk, "expected", expected);
}

/* The actual revision an EREVISION reply carries. */
static uint64_t
reply_actual_revision(const reply *rep)
{
	const msgpack_object *a = mp_get(&rep->root, "actual_revision");

	return a != NULL && a->type == MSGPACK_OBJECT_POSITIVE_INTEGER
	    ? a->via.u64
	    : SL_EXPECT_NO_STREAM;
}

/* The start of a commit request, up to the events array's header (what
 * both ways of committing share); false (c's error set) on bad input. */
static bool
commit_begin(sl_client *c, msgpack_sbuffer *sb, msgpack_packer *pk,
    const char *tenant, const char *stream, uint64_t expected,
    const void *events, size_t n, sl_commit_result *result)
{
	c->err[0] = '\0';
	if (result != NULL) {
		memset(result, 0, sizeof(*result));
		result->actual_revision = SL_EXPECT_ANY;
	}
	if (tenant == NULL || stream == NULL || events == NULL || n == 0) {
		client_seterr(c,
		    "tenant, stream and at least one event are "
		    "required");
		return false;
	}
	client_begin(sb, pk, "commit", 4);
	mp_pack_kv_str(pk, "tenant", tenant);
	mp_pack_kv_str(pk, "stream", stream);
	pack_expected(pk, expected);
	mp_pack_cstr(pk, "events");
	msgpack_pack_array(pk, n);
	return true;
}

/* One event's map header and the fields both ways write first. */
static void
commit_event_head(msgpack_packer *pk, const char *type, bool is_public,
    bool metadata, const char *correlation_id)
{
	msgpack_pack_map(pk, 3 + metadata + (correlation_id != NULL));
	mp_pack_kv_str(pk, "type", type);
	mp_pack_kv_bool(pk, "public", is_public);
	mp_pack_cstr(pk, "content");
}

/* Send a built commit request and read its reply into result. */
static int
commit_send(sl_client *c, msgpack_sbuffer *sb, sl_commit_result *result)
{
	reply rep;
	int   rc = client_call(c, sb, &rep);
	msgpack_sbuffer_destroy(sb);
	if (rc == SL_OK && result != NULL) {
		result->first_position = reply_u64(&rep, "first_position");
		result->last_position  = reply_u64(&rep, "last_position");
		result->first_revision = reply_u64(&rep, "first_revision");
		result->count          = reply_u64(&rep, "count");
	} else if (rc == SL_EREVISION && result != NULL) {
		result->actual_revision = reply_actual_revision(&rep);
	}
	if (rep.msg != NULL)
		reply_free(&rep);
	return rc;
}

int
sl_client_commit(sl_client *c, const char *tenant, const char *stream,
    uint64_t expected, const sl_new_event *events, size_t n,
    sl_commit_result *result)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	char            err[256];

	if (c == NULL)
		return SL_EINVAL;
	if (!commit_begin(c, &sb, &pk, tenant, stream, expected, events, n,
	        result))
		return SL_EINVAL;
	for (size_t i = 0; i < n; i++) {
		const sl_new_event *e = &events[i];
		if (e->type == NULL || e->content_json == NULL) {
			client_seterr(c,
			    "events[%zu]: type and content are "
			    "required",
			    i);
			msgpack_sbuffer_destroy(&sb);
			return SL_EINVAL;
		}
		commit_event_head(&pk, e->type, e->is_public,
		    e->metadata_json != NULL, e->correlation_id);
		/* a link event's content may be its "<revision>@<stream>" */
		if (json_text_to_mp(e->content_json,
		        strcmp(e->type, "$>") != 0, &pk, err, sizeof(err))
		    != SL_OK) {
			client_seterr(c, "events[%zu].content: %s", i, err);
			msgpack_sbuffer_destroy(&sb);
			return SL_EINVAL;
		}
		if (e->metadata_json != NULL) {
			mp_pack_cstr(&pk, "metadata");
			if (json_text_to_mp(
			        e->metadata_json, 1, &pk, err, sizeof(err))
			    != SL_OK) {
				client_seterr(
				    c, "events[%zu].metadata: %s", i, err);
				msgpack_sbuffer_destroy(&sb);
				return SL_EINVAL;
			}
		}
		if (e->correlation_id != NULL)
			mp_pack_kv_str(
			    &pk, "correlation_id", e->correlation_id);
	}
	return commit_send(c, &sb, result);
}

/* Whether p[0..len) is exactly one msgpack map (or, with str_ok, a str)
 * nested at most SL_COMMIT_MP_MAX_DEPTH deep; why not in err. */
static bool
commit_mp_value(const void *p, size_t len, bool str_ok, char *err,
    size_t errlen)
{
	if (p == NULL || len == 0) {
		snprintf(err, errlen, "no bytes");
		return false;
	}
	if (!mpraw_check(p, len, SL_COMMIT_MP_MAX_DEPTH, "value", err, errlen))
		return false;
	unsigned char b = *(const unsigned char *) p;
	bool map = (b & 0xf0) == 0x80 || b == 0xde || b == 0xdf;
	bool str = (b & 0xe0) == 0xa0 || (b >= 0xd9 && b <= 0xdb);
	if (map || (str_ok && str))
		return true;
	snprintf(err, errlen, "must be a msgpack map%s",
	    str_ok ? " or the link's \"<revision>@<stream>\" str" : "");
	return false;
}

int
sl_client_commit_mp(sl_client *c, const char *tenant, const char *stream,
    uint64_t expected, const sl_new_event_mp *events, size_t n,
    sl_commit_result *result)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	char            err[256];

	if (c == NULL)
		return SL_EINVAL;
	if (!commit_begin(c, &sb, &pk, tenant, stream, expected, events, n,
	        result))
		return SL_EINVAL;
	for (size_t i = 0; i < n; i++) {
		const sl_new_event_mp *e   = &events[i];
		const char            *bad = NULL;
		if (e->type == NULL) {
			client_seterr(c, "events[%zu]: type is required", i);
			msgpack_sbuffer_destroy(&sb);
			return SL_EINVAL;
		}
		if (!commit_mp_value(e->content, e->content_len,
		        strcmp(e->type, "$>") == 0, err, sizeof(err)))
			bad = "content";
		else if (e->metadata != NULL
		    && !commit_mp_value(e->metadata, e->metadata_len, false,
		        err, sizeof(err)))
			bad = "metadata";
		if (bad != NULL) {
			client_seterr(c, "events[%zu].%s: %s", i, bad, err);
			msgpack_sbuffer_destroy(&sb);
			return SL_EINVAL;
		}
		commit_event_head(&pk, e->type, e->is_public,
		    e->metadata != NULL, e->correlation_id);
		msgpack_sbuffer_write(&sb, e->content, e->content_len);
		if (e->metadata != NULL) {
			mp_pack_cstr(&pk, "metadata");
			msgpack_sbuffer_write(&sb, e->metadata, e->metadata_len);
		}
		if (e->correlation_id != NULL)
			mp_pack_kv_str(
			    &pk, "correlation_id", e->correlation_id);
	}
	return commit_send(c, &sb, result);
}

/* delete_stream: a soft delete, or with truncate a truncate-before. */
static int
client_delete(sl_client *c, const char *tenant, const char *stream,
    uint64_t expected, bool truncate, uint64_t before,
    sl_delete_result *result)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	reply           rep;
	int             rc;

	if (c == NULL)
		return SL_EINVAL;
	c->err[0] = '\0';
	if (result != NULL) {
		memset(result, 0, sizeof(*result));
		result->actual_revision = SL_EXPECT_ANY;
	}
	if (tenant == NULL || stream == NULL) {
		client_seterr(c, "tenant and stream are required");
		return SL_EINVAL;
	}
	client_begin(&sb, &pk, "delete_stream", 3 + truncate);
	mp_pack_kv_str(&pk, "tenant", tenant);
	mp_pack_kv_str(&pk, "stream", stream);
	pack_expected(&pk, expected);
	if (truncate)
		mp_pack_kv_u64(&pk, "truncate_before", before);
	rc = client_call(c, &sb, &rep);
	msgpack_sbuffer_destroy(&sb);
	if (rc == SL_OK && result != NULL) {
		result->position        = reply_u64(&rep, "position");
		result->revision        = reply_u64(&rep, "revision");
		result->truncate_before = reply_u64(&rep, "truncate_before");
	} else if (rc == SL_EREVISION && result != NULL) {
		result->actual_revision = reply_actual_revision(&rep);
	}
	if (rep.msg != NULL)
		reply_free(&rep);
	return rc;
}

int
sl_client_delete_stream(sl_client *c, const char *tenant, const char *stream,
    uint64_t expected, sl_delete_result *result)
{
	return client_delete(c, tenant, stream, expected, false, 0, result);
}

int
sl_client_truncate_stream(sl_client *c, const char *tenant, const char *stream,
    uint64_t expected, uint64_t before, sl_delete_result *result)
{
	return client_delete(
	    c, tenant, stream, expected, true, before, result);
}

/* ---- reads ---- */

static char *
field_strdup(const msgpack_object *m, const char *key)
{
	const msgpack_object *o = mp_get(m, key);
	return o != NULL && o->type == MSGPACK_OBJECT_STR ? mp_strdup(o)
	                                                  : NULL;
}

static char *
field_json(const msgpack_object *m, const char *key)
{
	const msgpack_object *o = mp_get(m, key);
	msgpack_object        empty;

	if (o == NULL) {
		memset(&empty, 0, sizeof(empty));
		empty.type = MSGPACK_OBJECT_MAP;
		o          = &empty;
	}
	return mp_to_json_text(o);
}

/*
 * The array under key in a reply, and a zeroed vector of as many elements
 * of size elem in *items (malloc'ed, caller frees; NULL when empty).
 * Errors are set on c.
 */
static int
reply_array(sl_client *c, const reply *rep, const char *key,
    const msgpack_object **arr, size_t elem, void **items)
{
	if (mp_get_array(&rep->root, key, arr) != SL_OK) {
		client_seterr(c, "the reply has no '%s' array", key);
		return SL_EPROTO;
	}
	if ((*arr)->via.array.size > 0) {
		*items = calloc((*arr)->via.array.size, elem);
		if (*items == NULL) {
			client_seterr(c, "out of memory");
			return SL_ENOMEM;
		}
	}
	return SL_OK;
}

static int
parse_event(const msgpack_object *m, sl_read_event *e)
{
	const msgpack_object *l;
	uint64_t              u = 0;
	int64_t               i = 0;
	bool                  b = false;

	if (m->type != MSGPACK_OBJECT_MAP
	    || mp_get_u64(m, "position", &e->position) != SL_OK)
		return SL_EPROTO;
	mp_get_u64(m, "revision", &e->revision);
	if (mp_get_u64(m, "generation", &u) == SL_OK)
		e->generation = (uint32_t) u;
	if (mp_get_i64(m, "occurred", &i) == SL_OK)
		e->occurred_ns = i;
	if (mp_get_bool(m, "public", &b) == SL_OK)
		e->is_public = b;
	e->tenant         = field_strdup(m, "tenant");
	e->stream         = field_strdup(m, "stream");
	e->id             = field_strdup(m, "id");
	e->type           = field_strdup(m, "type");
	e->correlation_id = field_strdup(m, "correlation_id");
	e->causation_id   = field_strdup(m, "causation_id");
	e->metadata_json  = field_json(m, "metadata");
	e->content_json   = field_json(m, "content");
	e->json           = mp_to_json_text(m);
	if (e->tenant == NULL || e->stream == NULL || e->id == NULL
	    || e->type == NULL || e->metadata_json == NULL
	    || e->content_json == NULL || e->json == NULL)
		return SL_EPROTO;
	if (e->correlation_id == NULL)
		e->correlation_id = strdup("");
	if (e->causation_id == NULL)
		e->causation_id = strdup("");
	if (e->correlation_id == NULL || e->causation_id == NULL)
		return SL_ENOMEM;
	if (mp_get_bool(m, "unresolved", &b) == SL_OK)
		e->unresolved = b;
	if ((l = mp_get(m, "link")) != NULL) {
		if (l->type != MSGPACK_OBJECT_MAP
		    || mp_get_u64(l, "position", &e->link_position) != SL_OK
		    || mp_get_u64(l, "revision", &e->link_revision) != SL_OK
		    || (e->link_stream = field_strdup(l, "stream")) == NULL)
			return SL_EPROTO;
		e->is_link = true;
	}
	return SL_OK;
}

void
client_event_free(sl_read_event *e)
{
	free(e->tenant);
	free(e->stream);
	free(e->id);
	free(e->type);
	free(e->correlation_id);
	free(e->causation_id);
	free(e->metadata_json);
	free(e->content_json);
	free(e->json);
	free(e->link_stream);
	memset(e, 0, sizeof(*e));
}

void
sl_read_result_free(sl_read_result *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n_events; i++)
		client_event_free(&r->events[i]);
	free(r->events);
	memset(r, 0, sizeof(*r));
}

static int
client_read(sl_client *c, msgpack_sbuffer *sb, sl_read_result *out)
{
	reply                 rep;
	const msgpack_object *evs;
	int                   rc = client_call(c, sb, &rep);

	msgpack_sbuffer_destroy(sb);
	if (rc != SL_OK)
		goto out;
	rc = reply_array(c, &rep, "events", &evs, sizeof(*out->events),
	    (void **) &out->events);
	if (rc != SL_OK)
		goto out;
	out->next = reply_u64(&rep, "next");
	out->head = reply_u64(&rep, "head");
	for (uint32_t i = 0; i < evs->via.array.size; i++) {
		out->n_events++;
		rc = parse_event(&evs->via.array.ptr[i], &out->events[i]);
		if (rc != SL_OK) {
			client_seterr(
			    c, "events[%u] of the reply is malformed", i);
			goto out;
		}
	}
out:
	if (rc != SL_OK)
		sl_read_result_free(out);
	if (rep.msg != NULL)
		reply_free(&rep);
	return rc;
}

int
sl_client_read(sl_client *c, uint64_t from, size_t max, sl_read_result *out)
{
	sl_read_opts o = { .from = from, .max = max };

	return sl_client_read_ex(c, &o, out);
}

int
sl_client_read_stream(sl_client *c, const char *tenant, const char *stream,
    uint64_t from_revision, size_t max, sl_read_result *out)
{
	sl_read_opts o = { .tenant = tenant,
		.stream            = stream,
		.from              = from_revision,
		.max               = max };

	if (c != NULL && out != NULL && (tenant == NULL || stream == NULL)) {
		memset(out, 0, sizeof(*out));
		client_seterr(c, "tenant and stream are required");
		return SL_EINVAL;
	}
	return sl_client_read_ex(c, &o, out);
}

int
sl_client_read_ex(sl_client *c, const sl_read_opts *opts, sl_read_result *out)
{
	return client_read_opts(c, opts, false, out);
}

int
client_read_opts(
    sl_client *c, const sl_read_opts *opts, bool gap, sl_read_result *out)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	bool            by_stream;

	if (c == NULL || opts == NULL || out == NULL)
		return SL_EINVAL;
	c->err[0] = '\0';
	memset(out, 0, sizeof(*out));
	if ((opts->tenant == NULL) != (opts->stream == NULL)) {
		client_seterr(c, "a stream read needs both tenant and stream");
		return SL_EINVAL;
	}
	by_stream = opts->stream != NULL;
	/* resolve_links only when asked: a daemon before it reads as ever */
	client_begin(&sb, &pk, "read",
	    2 + 2 * by_stream + opts->resolve_links + gap);
	if (by_stream) {
		mp_pack_kv_str(&pk, "tenant", opts->tenant);
		mp_pack_kv_str(&pk, "stream", opts->stream);
		mp_pack_kv_u64(&pk, "from_revision", opts->from);
	} else {
		mp_pack_kv_u64(&pk, "from", opts->from);
	}
	mp_pack_kv_u64(&pk, "max", opts->max);
	if (opts->resolve_links)
		mp_pack_kv_bool(&pk, "resolve_links", true);
	if (gap)
		mp_pack_kv_bool(&pk, "gap", true);
	return client_read(c, &sb, out);
}

/* ---- filter streams ---- */

void
sl_filter_page_free(sl_filter_page *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n_events; i++) {
		client_event_free(&p->events[i].event);
		free(p->events[i].partition);
	}
	free(p->events);
	memset(p, 0, sizeof(*p));
}

int
sl_client_read_filter(sl_client *c, const char *tenant, const char *filter,
    const char *partition, uint64_t from, size_t max, sl_filter_page *out)
{
	return client_read_filter_gap(
	    c, tenant, filter, partition, from, max, false, out);
}

int
client_read_filter_gap(sl_client *c, const char *tenant, const char *filter,
    const char *partition, uint64_t from, size_t max, bool gap,
    sl_filter_page *out)
{
	msgpack_sbuffer       sb;
	msgpack_packer        pk;
	reply                 rep;
	const msgpack_object *evs;
	bool                  more = false;
	int                   rc;

	if (c == NULL || out == NULL)
		return SL_EINVAL;
	c->err[0] = '\0';
	memset(out, 0, sizeof(*out));
	if (tenant == NULL || filter == NULL) {
		client_seterr(c, "tenant and filter are required");
		return SL_EINVAL;
	}
	if (partition != NULL && partition[0] == '\0') {
		client_seterr(c, "partition must not be empty");
		return SL_EINVAL;
	}
	client_begin(
	    &sb, &pk, "read_filter", 4 + (partition != NULL) + gap);
	mp_pack_kv_str(&pk, "tenant", tenant);
	mp_pack_kv_str(&pk, "filter", filter);
	if (partition != NULL)
		mp_pack_kv_str(&pk, "partition", partition);
	mp_pack_kv_u64(&pk, "from", from);
	mp_pack_kv_u64(&pk, "max", max);
	if (gap)
		mp_pack_kv_bool(&pk, "gap", true);
	rc = client_call(c, &sb, &rep);
	msgpack_sbuffer_destroy(&sb);
	if (rc != SL_OK)
		goto out;
	rc = reply_array(c, &rep, "events", &evs, sizeof(*out->events),
	    (void **) &out->events);
	if (rc != SL_OK)
		goto out;
	out->next = reply_u64(&rep, "next");
	mp_get_bool(&rep.root, "more", &more);
	out->more       = more;
	out->generation = reply_u64(&rep, "stream_generation");
	for (uint32_t i = 0; i < evs->via.array.size; i++) {
		const msgpack_object *m = &evs->via.array.ptr[i];
		sl_filter_event      *e = &out->events[i];
		out->n_events++;
		rc = parse_event(m, &e->event);
		if (rc == SL_OK
		    && mp_get_u64(m, "stream_position", &e->stream_position)
		        != SL_OK)
			rc = SL_EPROTO;
		if (rc == SL_OK && mp_get(m, "partition") != NULL
		    && (e->partition = field_strdup(m, "partition")) == NULL)
			rc = SL_EPROTO;
		if (rc != SL_OK) {
			client_seterr(
			    c, "events[%u] of the reply is malformed", i);
			goto out;
		}
	}
out:
	if (rc != SL_OK)
		sl_filter_page_free(out);
	if (rep.msg != NULL)
		reply_free(&rep);
	return rc;
}

/* ---- operator commands ---- */

int
sl_client_command(sl_client *c, const char *op, const char *id,
    const char *tenant, size_t *n_processors)
{
	static const char *const ops[]
	    = { "reset", "retry", "pause", "resume", "start", "stop" };
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	reply           rep;
	bool            known = false;
	int             rc;

	if (c == NULL)
		return SL_EINVAL;
	c->err[0] = '\0';
	if (n_processors != NULL)
		*n_processors = 0;
	for (size_t i = 0; op != NULL && i < sizeof(ops) / sizeof(ops[0]); i++)
		known = known || strcmp(op, ops[i]) == 0;
	if (!known) {
		client_seterr(c,
		    "unknown command '%s' (reset, retry, pause, resume, "
		    "start or stop)",
		    op != NULL ? op : "(null)");
		return SL_EINVAL;
	}
	if (id == NULL) {
		client_seterr(c, "a projection or filter id is required");
		return SL_EINVAL;
	}
	client_begin(&sb, &pk, op, 1 + (tenant != NULL));
	mp_pack_kv_str(&pk, "id", id);
	if (tenant != NULL)
		mp_pack_kv_str(&pk, "tenant", tenant);
	rc = client_call(c, &sb, &rep);
	msgpack_sbuffer_destroy(&sb);
	if (rc == SL_OK && n_processors != NULL)
		*n_processors = (size_t) reply_u64(&rep, "processors");
	if (rep.msg != NULL)
		reply_free(&rep);
	return rc;
}

/* ---- read models ---- */

int
sl_client_get_one(sl_client *c, const char *tenant, const char *projection,
    const char *key, char **state_json, bool *found)
{
	msgpack_sbuffer       sb;
	msgpack_packer        pk;
	reply                 rep;
	const msgpack_object *st;
	bool                  f = false;
	int                   rc;

	if (c == NULL || state_json == NULL)
		return SL_EINVAL;
	c->err[0]   = '\0';
	*state_json = NULL;
	if (tenant == NULL || projection == NULL || key == NULL) {
		client_seterr(c, "tenant, projection and key are required");
		return SL_EINVAL;
	}
	client_begin(&sb, &pk, "get_one", 3);
	mp_pack_kv_str(&pk, "tenant", tenant);
	mp_pack_kv_str(&pk, "projection", projection);
	mp_pack_kv_str(&pk, "key", key);
	rc = client_call(c, &sb, &rep);
	msgpack_sbuffer_destroy(&sb);
	if (rc == SL_OK) {
		mp_get_bool(&rep.root, "found", &f);
		if (mp_get_map(&rep.root, "state", &st) != SL_OK) {
			client_seterr(c, "the reply has no 'state' map");
			rc = SL_EPROTO;
		} else if ((*state_json = mp_to_json_text(st)) == NULL) {
			client_seterr(c, "out of memory");
			rc = SL_ENOMEM;
		}
	}
	if (found != NULL)
		*found = rc == SL_OK && f;
	if (rep.msg != NULL)
		reply_free(&rep);
	return rc;
}

/* ---- queries ---- */

void
sl_query_result_free(sl_query_result *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n_states; i++) {
		free(r->states[i].key);
		free(r->states[i].state_json);
		free(r->states[i].result_json);
	}
	free(r->states);
	memset(r, 0, sizeof(*r));
}

/* A query reply: {position, head?, states: [{key, state, result?}]}. */
static int
query_parse(sl_client *c, const reply *rep, sl_query_result *out)
{
	const msgpack_object *sts;
	int                   rc;

	rc = reply_array(c, rep, "states", &sts, sizeof(*out->states),
	    (void **) &out->states);
	if (rc != SL_OK)
		return rc;
	if (mp_get_u64(&rep->root, "position", &out->position) != SL_OK) {
		client_seterr(c, "the reply has no 'position'");
		return SL_EPROTO;
	}
	if (mp_get_u64(&rep->root, "head", &out->head) != SL_OK)
		out->head = out->position; /* one-time: ran to the head */
	for (uint32_t i = 0; i < sts->via.array.size; i++) {
		const msgpack_object *it = &sts->via.array.ptr[i], *st, *res;
		sl_query_state       *q  = &out->states[i];
		out->n_states++;
		q->key = field_strdup(it, "key");
		res    = mp_get(it, "result");
		if (q->key == NULL || mp_get_map(it, "state", &st) != SL_OK
		    || (q->state_json = mp_to_json_text(st)) == NULL
		    || (res != NULL && res->type != MSGPACK_OBJECT_NIL
		        && (res->type != MSGPACK_OBJECT_MAP
		            || (q->result_json = mp_to_json_text(res))
		                == NULL))) {
			client_seterr(
			    c, "states[%u] of the reply is malformed", i);
			return SL_EPROTO;
		}
	}
	return SL_OK;
}

/* Send a query request; parse states into out when given, else hand the
 * handle (start) back. */
static int
query_call(
    sl_client *c, msgpack_sbuffer *sb, sl_query_result *out, uint64_t *handle)
{
	reply rep;
	int   rc = client_call(c, sb, &rep);

	msgpack_sbuffer_destroy(sb);
	if (rc == SL_OK && out != NULL)
		rc = query_parse(c, &rep, out);
	if (rc == SL_OK && handle != NULL
	    && mp_get_u64(&rep.root, "handle", handle) != SL_OK) {
		client_seterr(c, "the reply has no 'handle'");
		rc = SL_EPROTO;
	}
	if (rc != SL_OK && out != NULL)
		sl_query_result_free(out);
	if (rep.msg != NULL)
		reply_free(&rep);
	return rc;
}

int
sl_client_query(sl_client *c, const char *tenant, const char *projection,
    const char *key, sl_query_result *out)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;

	if (c == NULL || out == NULL)
		return SL_EINVAL;
	c->err[0] = '\0';
	memset(out, 0, sizeof(*out));
	if (tenant == NULL || projection == NULL) {
		client_seterr(c, "tenant and projection are required");
		return SL_EINVAL;
	}
	client_begin(&sb, &pk, "query", 3 + (key != NULL));
	mp_pack_kv_str(&pk, "id", projection);
	mp_pack_kv_str(&pk, "tenant", tenant);
	mp_pack_kv_str(&pk, "mode", "one_time");
	if (key != NULL)
		mp_pack_kv_str(&pk, "key", key);
	return query_call(c, &sb, out, NULL);
}

int
sl_client_query_start(
    sl_client *c, const char *tenant, const char *projection, uint64_t *handle)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;

	if (c == NULL || handle == NULL)
		return SL_EINVAL;
	c->err[0] = '\0';
	*handle   = 0;
	if (tenant == NULL || projection == NULL) {
		client_seterr(c, "tenant and projection are required");
		return SL_EINVAL;
	}
	client_begin(&sb, &pk, "query", 3);
	mp_pack_kv_str(&pk, "id", projection);
	mp_pack_kv_str(&pk, "tenant", tenant);
	mp_pack_kv_str(&pk, "mode", "transient");
	return query_call(c, &sb, NULL, handle);
}

/* The script fields of a query: {js, file} (file: its basename). */
static int
query_script_begin(sl_client *c, msgpack_sbuffer *sb, msgpack_packer *pk,
    const char *tenant, const char *file, const char *script,
    size_t script_len, const char *mode, bool has_key)
{
	const char *base;

	if (tenant == NULL || (script == NULL && script_len > 0)) {
		client_seterr(c, "tenant and the script are required");
		return SL_EINVAL;
	}
	if (file == NULL)
		file = "query.js";
	base = strrchr(file, '/');
	base = base != NULL ? base + 1 : file;
	client_begin(sb, pk, "query", 4 + has_key);
	mp_pack_cstr(pk, "js");
	mp_pack_strn(pk, script != NULL ? script : "", script_len);
	mp_pack_kv_str(pk, "file", base);
	mp_pack_kv_str(pk, "tenant", tenant);
	mp_pack_kv_str(pk, "mode", mode);
	return SL_OK;
}

int
sl_client_query_js(sl_client *c, const char *tenant, const char *file,
    const char *script, size_t script_len, const char *key,
    sl_query_result *out)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	int             rc;

	if (c == NULL || out == NULL)
		return SL_EINVAL;
	c->err[0] = '\0';
	memset(out, 0, sizeof(*out));
	rc = query_script_begin(c, &sb, &pk, tenant, file, script, script_len,
	    "one_time", key != NULL);
	if (rc != SL_OK)
		return rc;
	if (key != NULL)
		mp_pack_kv_str(&pk, "key", key);
	return query_call(c, &sb, out, NULL);
}

int
sl_client_query_js_start(sl_client *c, const char *tenant, const char *file,
    const char *script, size_t script_len, uint64_t *handle)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	int             rc;

	if (c == NULL || handle == NULL)
		return SL_EINVAL;
	c->err[0] = '\0';
	*handle   = 0;
	rc        = query_script_begin(
	           c, &sb, &pk, tenant, file, script, script_len, "transient", false);
	if (rc != SL_OK)
		return rc;
	return query_call(c, &sb, NULL, handle);
}

int
sl_client_query_poll(
    sl_client *c, uint64_t handle, const char *key, sl_query_result *out)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;

	if (c == NULL || out == NULL)
		return SL_EINVAL;
	c->err[0] = '\0';
	memset(out, 0, sizeof(*out));
	client_begin(&sb, &pk, "query", 2 + (key != NULL));
	mp_pack_kv_str(&pk, "mode", "transient");
	mp_pack_kv_u64(&pk, "handle", handle);
	if (key != NULL)
		mp_pack_kv_str(&pk, "key", key);
	return query_call(c, &sb, out, NULL);
}

int
sl_client_query_close(sl_client *c, uint64_t handle)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;

	if (c == NULL)
		return SL_EINVAL;
	c->err[0] = '\0';
	client_begin(&sb, &pk, "query", 3);
	mp_pack_kv_str(&pk, "mode", "transient");
	mp_pack_kv_u64(&pk, "handle", handle);
	mp_pack_kv_bool(&pk, "close", true);
	return query_call(c, &sb, NULL, NULL);
}

/* An op without fields whose reply is handed out as JSON (status,
 * plugins). */
static int
json_op(sl_client *c, const char *op, char **json)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	reply           rep;
	json_t         *j;
	int             rc;

	if (c == NULL || json == NULL)
		return SL_EINVAL;
	c->err[0] = '\0';
	*json     = NULL;
	client_begin(&sb, &pk, op, 0);
	rc = client_call(c, &sb, &rep);
	msgpack_sbuffer_destroy(&sb);
	if (rc != SL_OK)
		goto out;
	j = mp_to_json(&rep.root);
	if (j != NULL) {
		json_object_del(j, "v");
		json_object_del(j, "ok");
		*json = json_dumps(j, JSON_COMPACT);
		json_decref(j);
	}
	if (*json == NULL) {
		client_seterr(c, "out of memory");
		rc = SL_ENOMEM;
	}
out:
	if (rep.msg != NULL)
		reply_free(&rep);
	return rc;
}

int
sl_client_status(sl_client *c, char **json)
{
	return json_op(c, "status", json);
}

int
sl_client_plugins(sl_client *c, char **json)
{
	return json_op(c, "plugins", json);
}
