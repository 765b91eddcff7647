/*
 * Remote processors (docs/remote.md): registrations made over the API (op
 * "register") and the reverse calls the processors make to the clients.
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
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include <sluice/errors.h>

#include "event.h"
#include "log.h"
#include "mp.h"
#include "server.h"

/* The remote protocol version a register request names (field protocol). */
#define REMOTE_PROTOCOL 1
/* Answers over this size fail the call; over twice it NNG drops the
 * connection (its receive limit). */
#define REMOTE_MAX_ANSWER    (16u << 20)
#define REMOTE_MAX_SELECTORS 1024
#define REMOTE_MAX_NAME      256 /* name, event types */
#define REMOTE_MAX_ARG       1024 /* a selector's property path, key or pattern */
#define REMOTE_MAX_PARTITION 255
#define REMOTE_MAX_DEPTH     32 /* nesting in an answer */

static const char zero_uuid[] = "00000000-0000-0000-0000-000000000000";

/* ---- types ---- */

/* A registration's definition: the proj_def processors run and the
 * host-owned vtable it points to (selectors, initial state; no callback). */
typedef struct rdef {
	proj_def      def; /* first: processors get &rdef->def */
	sl_projection proj;
	sl_filter     filt;
	sl_selector  *sels; /* event_type and arg malloc'ed */
	size_t        n_sels;
	struct rdef  *next; /* every definition of the registration */
} rdef;

enum { ABORT_NONE = 0, ABORT_DISCONNECTED = 1, ABORT_CLOSED = 2 };

typedef struct answer {
	remote_resp    resp;
	struct answer *next;
} answer;

/* One NNG context and its aio: carries one call (or the ping) at a time. */
typedef struct slot {
	remote_proc   *rp;
	nng_ctx        ctx;
	nng_aio       *aio;
	remote_caller *owner; /* the caller of the call it carries */
	struct answer *ans;   /* its answer's node, allocated with the call */
	bool           is_ping;
	bool           busy;
	bool           recv_phase; /* sent; waiting for the answer */
	int            abort;      /* ABORT_*: why it is being cancelled */
	uint64_t       call;
	int64_t        deadline_ms; /* monotonic */
	def_kind       kind;        /* of the registration */
	sl_filter_kind fkind;       /* filters: partitioned answers */
} slot;

struct remote_caller {
	remote_proc   *rp;
	pthread_cond_t cv;
	answer        *head, *tail; /* answers not yet collected */
	size_t         in_flight;   /* started, not collected */
	size_t         busy_slots;  /* slots carrying its calls */
	bool           closing;
	remote_caller *next;
	/* the processor thread's own, for packing calls */
	msgpack_zone    zone;
	msgpack_sbuffer buf;
	msgpack_packer  pk;
};

struct remote_proc {
	remotes        *rs;
	char            id[37];
	def_kind        kind;
	rdef           *cur; /* current definition; older ones via next */
	uint32_t        window, keepalive_ms, timeout_ms;
	nng_socket      sock;
	nng_listener    listener; /* the current URL's */
	bool            listening;
	char            url[320];
	uint64_t        session;
	pthread_mutex_t mu;
	pthread_cond_t  cv;       /* connected, closing or wake_gen changed */
	bool            has_pipe; /* a pipe was accepted (maybe not added) */
	bool            connected;
	bool            closing;
	nng_pipe        pipe;
	char            client[160];
	uint64_t        wake_gen;
	uint64_t        next_call;
	int64_t         last_activity_ms; /* monotonic: last send or answer */
	slot          **slots; /* every slot, for aborts and teardown */
	size_t          n_slots, cap_slots;
	slot          **free_slots;
	size_t          n_free;
	slot           *ping;
	size_t          busy_calls; /* slots carrying calls (not the ping) */
	nng_aio        *timer;
	remote_caller  *callers;
	/* status */
	uint64_t calls, failed_calls;
	uint32_t connects, registrations;
	int64_t  registered_at_ns, changed_at_ns;
	char     last_error[256];
};

struct remotes {
	remote_config   cfg; /* endpoint malloc'ed */
	pthread_mutex_t mu;
	remote_proc   **regs; /* max_registrations slots, never moved */
	size_t          n_regs;
	uint32_t        next_n; /* URL numbers: 1, 2, ... per listener */
	bool            closing;
};

struct remote_spec {
	def_kind       kind;
	sl_filter_kind fkind;
	char           id[37];
	char           scope[37];
	char          *name;
	uint32_t       version;
	char          *initial; /* projections: msgpack map */
	size_t         initial_len;
	sl_selector   *sels;
	size_t         n_sels;
};

/* ---- small helpers ---- */

static int64_t
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
cond_init_mono(pthread_cond_t *cv)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
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

static int fail_msg(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
fail_msg(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;
	if (errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* Canonical lower-case form of a UUID text (8-4-4-4-12 hex). */
static bool
uuid_canon(const char *s, size_t len, char out[37])
{
	if (s == NULL || len != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		unsigned char c = (unsigned char) s[i];
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return false;
		} else if (!isxdigit(c)) {
			return false;
		}
		out[i] = (char) tolower(c);
	}
	out[36] = '\0';
	return true;
}

static char *
strndup_obj(const msgpack_object *o)
{
	char *s = malloc(o->via.str.size + 1);
	if (s == NULL)
		return NULL;
	memcpy(s, o->via.str.ptr, o->via.str.size);
	s[o->via.str.size] = '\0';
	return s;
}

/* How much of a bad string value a message quotes. */
#define SHOWN(o) ((int) ((o)->via.str.size > 64 ? 64 : (o)->via.str.size))

static const char *
kind_word(def_kind k)
{
	return k == DEF_FILTER ? "filter" : "projection";
}

/* ---- definition hash: the same bytes as runtime/plugins.c hashes ----
 *
 * FNV-1a 64 over the definition, exactly as plugins.c computes def_hash and
 * filter_hash, so a registration and a plugin with the same content get
 * the same hash (and a switch between them keeps what was built). It only
 * must stay stable for the same content and change with it.
 */

typedef struct {
	uint64_t h;
} fnv;

static void
fnv_bytes(fnv *f, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		f->h ^= b[i];
		f->h *= 0x100000001b3ULL;
	}
}

static void
fnv_str(fnv *f, const char *s)
{
	if (s == NULL) {
		unsigned char ff = 0xff;
		fnv_bytes(f, &ff, 1);
		return;
	}
	fnv_bytes(f, s, strlen(s) + 1);
}

static void
fnv_u64(fnv *f, uint64_t v)
{
	unsigned char b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char) (v >> (8 * i));
	fnv_bytes(f, b, 8);
}

static uint64_t
spec_hash(const remote_spec *s)
{
	fnv f = { 0xcbf29ce484222325ULL };
	if (s->kind == DEF_FILTER) {
		fnv_str(&f, "$filter");
		fnv_str(&f, s->id);
		fnv_str(&f, s->scope);
		fnv_u64(&f, (uint64_t) s->fkind);
		fnv_u64(&f, s->version);
		return f.h;
	}
	fnv_str(&f, s->id);
	fnv_str(&f, s->scope);
	fnv_u64(&f, s->version);
	fnv_u64(&f, s->initial_len);
	fnv_bytes(&f, s->initial, s->initial_len);
	fnv_u64(&f, s->n_sels);
	for (size_t i = 0; i < s->n_sels; i++) {
		fnv_str(&f, s->sels[i].event_type);
		fnv_u64(&f, (uint64_t) s->sels[i].key);
		fnv_str(&f, s->sels[i].arg);
	}
	return f.h;
}

/* ---- bounded msgpack check (answers come from another process) ---- */

static uint64_t
be_uint(const unsigned char *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/*
 * One msgpack object, nothing after it; every length within the bytes,
 * every container count coverable by them, nesting bounded: msgpack-c
 * would otherwise allocate what a lying header claims. (The API checks its
 * requests the same way, runtime/api.c.)
 */
static bool
mp_bounded(const unsigned char *p, size_t len, const char **why)
{
	uint64_t pending[REMOTE_MAX_DEPTH + 1];
	int      depth = 0;
	size_t   i     = 0;
	pending[0]     = 1;
	while (depth >= 0) {
		if (pending[depth] == 0) {
			depth--;
			continue;
		}
		if (i >= len) {
			*why = "truncated msgpack";
			return false;
		}
		pending[depth]--;
		uint8_t  b = p[i++];
		uint64_t n = 0, skip = 0;
		int      kind = 0; /* 0 scalar, 1 array, 2 map */
		if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2
		    || b == 0xc3) {
			skip = 0;
		} else if (b >= 0x80 && b <= 0x8f) {
			kind = 2, n = b & 0x0f;
		} else if (b >= 0x90 && b <= 0x9f) {
			kind = 1, n = b & 0x0f;
		} else if (b >= 0xa0 && b <= 0xbf) {
			skip = b & 0x1f;
		} else if (b == 0xc1) {
			*why = "invalid msgpack byte 0xc1";
			return false;
		} else {
			/* 0xc4.. : length bytes, or fixed sizes */
			static const uint8_t lenbytes[]
			    = { 1, 2, 4, 1, 2, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
				      0, 0, 0, 0, 0, 1, 2, 4, 2, 4, 2, 4 };
			static const uint8_t fixed[]
			    = { 0, 0, 0, 0, 0, 0, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8,
				      2, 3, 5, 9, 17, 0, 0, 0, 0, 0, 0, 0 };
			unsigned k = b - 0xc4;
			if (lenbytes[k] > 0) {
				if (len - i < lenbytes[k]) {
					*why = "truncated msgpack";
					return false;
				}
				n = be_uint(p + i, lenbytes[k]);
				i += lenbytes[k];
			}
			if (b == 0xdc || b == 0xdd)
				kind = 1;
			else if (b == 0xde || b == 0xdf)
				kind = 2;
			else if (b >= 0xc7 && b <= 0xc9)
				skip = n + 1;
			else if (lenbytes[k] > 0)
				skip = n;
			else
				skip = fixed[k];
		}
		if (kind == 0) {
			if (len - i < skip) {
				*why = "truncated msgpack";
				return false;
			}
			i += skip;
			continue;
		}
		if (kind == 2)
			n *= 2;
		if (n > len - i) {
			*why = "a msgpack container claims more elements than "
			       "the message holds";
			return false;
		}
		if (n > 0) {
			if (depth == REMOTE_MAX_DEPTH) {
				*why = "msgpack nested too deep";
				return false;
			}
			pending[++depth] = n;
		}
	}
	if (i != len) {
		*why = "bytes after the answer map";
		return false;
	}
	return true;
}

/* ---- registration requests ---- */

void
remote_spec_free(remote_spec *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n_sels; i++) {
		free((char *) s->sels[i].event_type);
		free((char *) s->sels[i].arg);
	}
	free(s->sels);
	free(s->name);
	free(s->initial);
	free(s);
}

/* A field that counts as absent when missing or nil. */
static const msgpack_object *
field(const msgpack_object *m, const char *key)
{
	const msgpack_object *o = mp_get(m, key);
	return o == NULL || o->type == MSGPACK_OBJECT_NIL ? NULL : o;
}

/* A string field of 1..max bytes without NUL. */
static int
str_field(const msgpack_object *m, const char *key, const char *label,
    bool required, size_t max, const msgpack_object **out, char *err,
    size_t errlen)
{
	const msgpack_object *o = field(m, key);
	*out                    = NULL;
	if (o == NULL)
		return required ? fail_msg(err, errlen, SL_EINVAL,
		           "field '%s' is missing", label)
		                : SL_OK;
	if (o->type != MSGPACK_OBJECT_STR)
		return fail_msg(err, errlen, SL_EPROTO,
		    "field '%s' must be a string", label);
	if (o->via.str.size == 0)
		return fail_msg(err, errlen, SL_EINVAL,
		    "field '%s' must not be empty", label);
	if (o->via.str.size > max)
		return fail_msg(err, errlen, SL_ETOOBIG,
		    "field '%s' is %u bytes (limit %zu)", label,
		    o->via.str.size, max);
	if (memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL)
		return fail_msg(err, errlen, SL_EINVAL,
		    "field '%s' contains a NUL byte", label);
	*out = o;
	return SL_OK;
}

static const struct {
	const char *name;
	sl_key_kind key;
} key_names[] = {
	{ "event_source", SL_KEY_EVENT_SOURCE },
	{ "partition", SL_KEY_PARTITION },
	{ "property", SL_KEY_PROPERTY },
	{ "static", SL_KEY_STATIC },
	{ "occurred", SL_KEY_OCCURRED },
};

static int
parse_selectors(
    const msgpack_object *req, remote_spec *s, char *err, size_t errlen)
{
	const msgpack_object *a = field(req, "selectors");
	if (a == NULL)
		return fail_msg(err, errlen, SL_EINVAL,
		    "field 'selectors' is missing (a projection needs at "
		    "least one)");
	if (a->type != MSGPACK_OBJECT_ARRAY)
		return fail_msg(err, errlen, SL_EPROTO,
		    "field 'selectors' must be an array");
	if (a->via.array.size == 0)
		return fail_msg(err, errlen, SL_EINVAL,
		    "field 'selectors' is empty (a projection needs at least "
		    "one)");
	if (a->via.array.size > REMOTE_MAX_SELECTORS)
		return fail_msg(err, errlen, SL_ETOOBIG,
		    "field 'selectors' holds %u selectors (limit %d)",
		    a->via.array.size, REMOTE_MAX_SELECTORS);
	s->sels = calloc(a->via.array.size, sizeof(*s->sels));
	if (s->sels == NULL)
		return fail_msg(err, errlen, SL_ENOMEM, "out of memory");
	for (uint32_t i = 0; i < a->via.array.size; i++) {
		const msgpack_object *m   = &a->via.array.ptr[i], *t, *k, *arg;
		sl_selector          *sel = &s->sels[i];
		char                  label[64];
		int                   rc;
		if (m->type != MSGPACK_OBJECT_MAP)
			return fail_msg(err, errlen, SL_EPROTO,
			    "field 'selectors[%u]' must be a map", i);
		snprintf(label, sizeof(label), "selectors[%u].type", i);
		if ((rc = str_field(m, "type", label, true, REMOTE_MAX_NAME,
		         &t, err, errlen))
		    != SL_OK)
			return rc;
		snprintf(label, sizeof(label), "selectors[%u].key", i);
		if ((rc = str_field(
		         m, "key", label, true, SIZE_MAX, &k, err, errlen))
		    != SL_OK)
			return rc;
		snprintf(label, sizeof(label), "selectors[%u].arg", i);
		if ((rc = str_field(m, "arg", label, false, REMOTE_MAX_ARG,
		         &arg, err, errlen))
		    != SL_OK)
			return rc;
		sel->key = 0;
		for (size_t j = 0;
		     j < sizeof(key_names) / sizeof(key_names[0]); j++)
			if (mp_str_eq(k, key_names[j].name))
				sel->key = key_names[j].key;
		if (sel->key == 0)
			return fail_msg(err, errlen, SL_EINVAL,
			    "field 'selectors[%u].key': unknown key selector "
			    "'%.*s' (event_source, partition, property, "
			    "static "
			    "or occurred)",
			    i, SHOWN(k), k->via.str.ptr);
		bool needs_arg = sel->key == SL_KEY_PROPERTY
		    || sel->key == SL_KEY_STATIC
		    || sel->key == SL_KEY_OCCURRED;
		if (needs_arg && arg == NULL)
			return fail_msg(err, errlen, SL_EINVAL,
			    "field 'selectors[%u].arg' is missing (a %s key "
			    "selector needs %s)",
			    i, key_names[sel->key - 1].name,
			    sel->key == SL_KEY_PROPERTY ? "a property path"
			        : sel->key == SL_KEY_STATIC
			        ? "the static key"
			        : "a time pattern");
		for (uint32_t j = 0; j < i; j++)
			if (strlen(s->sels[j].event_type) == t->via.str.size
			    && memcmp(s->sels[j].event_type, t->via.str.ptr,
			           t->via.str.size)
			        == 0)
				return fail_msg(err, errlen, SL_EINVAL,
				    "field 'selectors[%u].type': event type "
				    "'%s' is selected twice (selectors %u and "
				    "%u)",
				    i, s->sels[j].event_type, j, i);
		/* An arg of a selector that takes none is ignored (not
		 * hashed), so it cannot make two equal definitions differ. */
		sel->event_type = strndup_obj(t);
		sel->arg        = needs_arg ? strndup_obj(arg) : NULL;
		s->n_sels       = i + 1;
		if (sel->event_type == NULL || (needs_arg && sel->arg == NULL))
			return fail_msg(
			    err, errlen, SL_ENOMEM, "out of memory");
	}
	return SL_OK;
}

int
remote_spec_parse(
    const msgpack_object *req, remote_spec **out, char *err, size_t errlen)
{
	const msgpack_object *o;
	remote_spec          *s;
	int                   rc;
	*out = NULL;
	if (errlen > 0)
		err[0] = '\0';

	/* The protocol first: a later version may change everything else. */
	o = field(req, "protocol");
	if (o == NULL)
		return fail_msg(err, errlen, SL_EINVAL,
		    "field 'protocol' is missing (the remote protocol "
		    "version, %d)",
		    REMOTE_PROTOCOL);
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return fail_msg(err, errlen, SL_EPROTO,
		    "field 'protocol' must be a non-negative integer");
	if (o->via.u64 != REMOTE_PROTOCOL)
		return fail_msg(err, errlen, SL_EVERSION,
		    "remote protocol version %" PRIu64
		    " is not supported (this runtime speaks %d)",
		    o->via.u64, REMOTE_PROTOCOL);

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return fail_msg(err, errlen, SL_ENOMEM, "out of memory");
	if ((rc = str_field(
	         req, "kind", "kind", true, SIZE_MAX, &o, err, errlen))
	    != SL_OK)
		goto fail;
	if (mp_str_eq(o, "projection")) {
		s->kind = DEF_PROJECTION;
	} else if (mp_str_eq(o, "filter")) {
		s->kind = DEF_FILTER;
	} else {
		rc = fail_msg(err, errlen, SL_EINVAL,
		    "field 'kind': unknown kind '%.*s' (projection or filter)",
		    SHOWN(o), o->via.str.ptr);
		goto fail;
	}
	if ((rc = str_field(req, "id", "id", true, SIZE_MAX, &o, err, errlen))
	    != SL_OK)
		goto fail;
	if (!uuid_canon(o->via.str.ptr, o->via.str.size, s->id)) {
		rc = fail_msg(err, errlen, SL_EINVAL,
		    "field 'id': '%.*s' is not a UUID", (int) o->via.str.size,
		    o->via.str.ptr);
		goto fail;
	}
	if ((rc = str_field(
	         req, "scope", "scope", false, SIZE_MAX, &o, err, errlen))
	    != SL_OK)
		goto fail;
	if (o == NULL) {
		memcpy(s->scope, zero_uuid, sizeof(zero_uuid));
	} else if (!uuid_canon(o->via.str.ptr, o->via.str.size, s->scope)) {
		rc = fail_msg(err, errlen, SL_EINVAL,
		    "field 'scope': '%.*s' is not a UUID", SHOWN(o),
		    o->via.str.ptr);
		goto fail;
	}
	if ((rc = str_field(
	         req, "name", "name", true, REMOTE_MAX_NAME, &o, err, errlen))
	    != SL_OK)
		goto fail;
	if ((s->name = strndup_obj(o)) == NULL) {
		rc = fail_msg(err, errlen, SL_ENOMEM, "out of memory");
		goto fail;
	}
	s->version = 1;
	if ((o = field(req, "version")) != NULL) {
		if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
			rc = fail_msg(err, errlen, SL_EPROTO,
			    "field 'version' must be a non-negative integer");
			goto fail;
		}
		if (o->via.u64 > UINT32_MAX) {
			rc = fail_msg(err, errlen, SL_EINVAL,
			    "field 'version': %" PRIu64 " is over 4294967295",
			    o->via.u64);
			goto fail;
		}
		s->version = (uint32_t) o->via.u64;
	}

	if (s->kind == DEF_FILTER) {
		if ((rc = str_field(req, "filter_kind", "filter_kind", true,
		         SIZE_MAX, &o, err, errlen))
		    != SL_OK)
			goto fail;
		if (mp_str_eq(o, "unpartitioned")) {
			s->fkind = SL_FILTER_UNPARTITIONED;
		} else if (mp_str_eq(o, "partitioned")) {
			s->fkind = SL_FILTER_PARTITIONED;
		} else if (mp_str_eq(o, "public")) {
			s->fkind = SL_FILTER_PUBLIC;
		} else {
			rc = fail_msg(err, errlen, SL_EINVAL,
			    "field 'filter_kind': unknown filter kind '%.*s' "
			    "(unpartitioned, partitioned or public)",
			    SHOWN(o), o->via.str.ptr);
			goto fail;
		}
		*out = s;
		return SL_OK;
	}

	/* The initial state is packed again, so that the same content
	 * always gives the same bytes (and hash), however it was encoded. */
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if ((o = field(req, "initial_state")) == NULL) {
		msgpack_pack_map(&pk, 0);
	} else if (o->type != MSGPACK_OBJECT_MAP) {
		msgpack_sbuffer_destroy(&sb);
		rc = fail_msg(err, errlen, SL_EPROTO,
		    "field 'initial_state' must be a map");
		goto fail;
	} else {
		msgpack_pack_object(&pk, *o);
	}
	if (sb.data == NULL) {
		rc = fail_msg(err, errlen, SL_ENOMEM, "out of memory");
		goto fail;
	}
	s->initial     = sb.data; /* the sbuffer's malloc'ed bytes */
	s->initial_len = sb.size;
	if ((rc = parse_selectors(req, s, err, errlen)) != SL_OK)
		goto fail;
	*out = s;
	return SL_OK;
fail:
	remote_spec_free(s);
	return rc;
}

/* ---- definitions ---- */

static void
rdef_free(rdef *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->n_sels; i++) {
		free((char *) d->sels[i].event_type);
		free((char *) d->sels[i].arg);
	}
	free(d->sels);
	free(d->def.initial);
	free((char *) d->def.name);
	free(d);
}

/* A new definition from a spec (copies everything). */
static rdef *
rdef_new(const remote_spec *s, remote_proc *rp)
{
	rdef *d = calloc(1, sizeof(*d));
	if (d == NULL)
		return NULL;
	d->def.kind        = s->kind;
	d->def.remote      = rp;
	d->def.version     = s->version;
	d->def.filter_kind = s->fkind;
	memcpy(d->def.id, s->id, sizeof(d->def.id));
	memcpy(d->def.scope, s->scope, sizeof(d->def.scope));
	d->def.name     = strdup(s->name);
	d->def.def_hash = spec_hash(s);
	if (d->def.name == NULL)
		goto fail;
	if (s->kind == DEF_FILTER) {
		d->filt.struct_size = sizeof(d->filt);
		d->filt.abi_version = SL_ABI_VERSION;
		d->filt.id          = d->def.id;
		d->filt.scope       = d->def.scope;
		d->filt.name        = d->def.name;
		d->filt.version     = s->version;
		d->filt.kind        = s->fkind;
		d->def.f            = &d->filt; /* filter callback NULL */
		return d;
	}
	d->def.initial = malloc(s->initial_len);
	d->sels        = calloc(s->n_sels, sizeof(*d->sels));
	if (d->def.initial == NULL || d->sels == NULL)
		goto fail;
	memcpy(d->def.initial, s->initial, s->initial_len);
	d->def.initial_len = s->initial_len;
	for (size_t i = 0; i < s->n_sels; i++) {
		d->sels[i].key        = s->sels[i].key;
		d->sels[i].event_type = strdup(s->sels[i].event_type);
		d->sels[i].arg
		    = s->sels[i].arg != NULL ? strdup(s->sels[i].arg) : NULL;
		d->n_sels = i + 1;
		if (d->sels[i].event_type == NULL
		    || (s->sels[i].arg != NULL && d->sels[i].arg == NULL))
			goto fail;
	}
	d->proj.struct_size = sizeof(d->proj);
	d->proj.abi_version = SL_ABI_VERSION;
	d->proj.id          = d->def.id;
	d->proj.scope       = d->def.scope;
	d->proj.name        = d->def.name;
	d->proj.version     = s->version;
	d->proj.selectors   = d->sels;
	d->proj.n_selectors = d->n_sels;
	d->def.p            = &d->proj; /* on NULL: the calls go remote */
	return d;
fail:
	rdef_free(d);
	return NULL;
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

/* Decode the answer to slot s's call into r (r->call is set).
 * @return false when it was malformed (r: REMOTE_FAILED, retry). */
static bool
decode_answer(const slot *s, const void *body, size_t len, remote_resp *r)
{
	const char           *why = NULL;
	msgpack_zone          zone;
	msgpack_object        root;
	const msgpack_object *o, *outcome;
	size_t                off          = 0;
	bool                  client_fails = false; /* outcome "failed" */

	if (len == 0) {
		malformed(r, "empty message");
		return false;
	}
	if (len > REMOTE_MAX_ANSWER) {
		malformed(r, "%zu bytes, over the limit of %u", len,
		    REMOTE_MAX_ANSWER);
		return false;
	}
	if (!mp_bounded(body, len, &why)) {
		malformed(r, "%s", why);
		return false;
	}
	if (!msgpack_zone_init(&zone, 4096)) {
		malformed(r, "out of memory");
		return false;
	}
	if (msgpack_unpack(body, len, &off, &zone, &root)
	        != MSGPACK_UNPACK_SUCCESS
	    || root.type != MSGPACK_OBJECT_MAP) {
		malformed(r, "not a msgpack map");
		goto out;
	}
	o = field(&root, "call");
	if (o == NULL || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
		malformed(r, "field 'call' is missing or not an integer");
		goto out;
	}
	if (o->via.u64 != s->call) {
		malformed(r,
		    "field 'call' is %" PRIu64 ", the call was %" PRIu64,
		    o->via.u64, s->call);
		goto out;
	}
	outcome = field(&root, "outcome");
	if (outcome == NULL || outcome->type != MSGPACK_OBJECT_STR) {
		malformed(r, "field 'outcome' is missing or not a string");
		goto out;
	}
	if (s->is_ping) {
		if (!outcome_is(outcome, "pong"))
			malformed(r, "a ping is answered with outcome 'pong'");
		else
			r->outcome = REMOTE_REPLACE; /* unused: alive */
		goto out;
	}
	if (outcome_is(outcome, "failed")) {
		const msgpack_object *reason = field(&root, "reason");
		const msgpack_object *retry  = field(&root, "retry");
		const msgpack_object *after  = field(&root, "retry_after_ms");
		if ((reason != NULL && reason->type != MSGPACK_OBJECT_STR)
		    || (retry != NULL && retry->type != MSGPACK_OBJECT_BOOLEAN)
		    || (after != NULL
		        && after->type != MSGPACK_OBJECT_POSITIVE_INTEGER)) {
			malformed(r,
			    "a failure has reason (string), retry (bool) and "
			    "retry_after_ms (uint)");
			goto out;
		}
		client_fails      = true;
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
		goto out;
	}
	if (s->kind == DEF_PROJECTION) {
		if (outcome_is(outcome, "delete")) {
			r->outcome = REMOTE_DELETE;
		} else if (outcome_is(outcome, "replace")) {
			o = field(&root, "state");
			if (o == NULL || o->type != MSGPACK_OBJECT_MAP) {
				malformed(r,
				    "outcome 'replace' needs a 'state' map");
				goto out;
			}
			msgpack_sbuffer sb;
			msgpack_packer  pk;
			msgpack_sbuffer_init(&sb);
			msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
			msgpack_pack_object(&pk, *o);
			if (sb.data == NULL) {
				malformed(r, "out of memory");
				goto out;
			}
			r->outcome   = REMOTE_REPLACE;
			r->state     = sb.data;
			r->state_len = sb.size;
		} else {
			malformed(r,
			    "outcome '%.*s' does not answer a projection call "
			    "(replace, delete or failed)",
			    (int) (outcome->via.str.size > 64
			            ? 64
			            : outcome->via.str.size),
			    outcome->via.str.ptr);
		}
		goto out;
	}
	if (outcome_is(outcome, "excluded")) {
		r->outcome = REMOTE_EXCLUDED;
	} else if (outcome_is(outcome, "included")) {
		r->outcome = REMOTE_INCLUDED;
		if (s->fkind == SL_FILTER_UNPARTITIONED)
			goto out; /* a partition is ignored */
		o = field(&root, "partition");
		if (o == NULL || o->type != MSGPACK_OBJECT_STR
		    || o->via.str.size == 0) {
			malformed(r,
			    "a partitioned filter's 'included' needs a "
			    "'partition' string");
		} else if (o->via.str.size > REMOTE_MAX_PARTITION) {
			malformed(r, "partition of %u bytes (limit %d)",
			    o->via.str.size, REMOTE_MAX_PARTITION);
		} else if (memchr(o->via.str.ptr, '\0', o->via.str.size)
		    != NULL) {
			malformed(r, "partition contains a NUL byte");
		} else {
			memcpy(r->partition, o->via.str.ptr, o->via.str.size);
			r->partition[o->via.str.size] = '\0';
		}
	} else {
		malformed(r,
		    "outcome '%.*s' does not answer a filter call (included, "
		    "excluded or failed)",
		    (int) (outcome->via.str.size > 64 ? 64
		                                      : outcome->via.str.size),
		    outcome->via.str.ptr);
	}
out:
	msgpack_zone_destroy(&zone);
	return r->outcome != REMOTE_FAILED || client_fails;
}

/* ---- slots: one call at a time on an NNG context ---- */

static void slot_cb(void *arg);

static slot *
slot_alloc(remote_proc *rp)
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
static bool
slot_track(remote_proc *rp, slot *s)
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
static void
abort_all(remote_proc *rp, int why)
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
		answer        *a = s->ans;
		if (!wellformed
		    || (msg == NULL && r.outcome == REMOTE_FAILED)) {
			rp->failed_calls++;
			set_last_error(
			    rp, "call %" PRIu64 ": %s", r.call, r.reason);
			log_debug("remote", "%s call %" PRIu64 ": %s", rp->id,
			    r.call, r.reason);
		}
		a->resp = r;
		a->next = NULL;
		if (c->tail != NULL)
			c->tail->next = a;
		else
			c->head = a;
		c->tail = a;
		c->busy_slots--;
		rp->busy_calls--;
		pthread_cond_broadcast(&c->cv);
		s->owner                     = NULL;
		s->ans                       = NULL;
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

/*
 * One client at a time, on the current URL only: a pipe from an older
 * listener (a client whose registration was taken over) or a second one
 * is closed before the socket sees it.
 */
static void
pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
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
		if (was)
			log_info("remote", "%s %s: client connected (%s)",
			    kind_word(rp->kind), rp->id, client);
		break;
	case NNG_PIPE_EV_REM_POST:
		pthread_mutex_lock(&rp->mu);
		if (rp->has_pipe && nng_pipe_id(rp->pipe) == nng_pipe_id(p)) {
			was               = rp->connected;
			rp->has_pipe      = false;
			rp->connected     = false;
			rp->changed_at_ns = ev_now_ns();
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
			abort_all(rp, ABORT_DISCONNECTED);
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
static nng_duration
tick_ms(const remote_proc *rp)
{
	uint32_t t = rp->keepalive_ms / 2;
	return t < 5 ? 5 : t > 1000 ? 1000 : (nng_duration) t;
}

static void
timer_cb(void *arg)
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
		msgpack_sbuffer sb;
		msgpack_packer  pk;
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, 3);
		mp_pack_kv_u64(&pk, "call", s->call);
		mp_pack_kv_u64(&pk, "session", session);
		mp_pack_kv_str(&pk, "op", "ping");
		if (sb.data != NULL && nng_msg_alloc(&msg, sb.size) == 0)
			memcpy(nng_msg_body(msg), sb.data, sb.size);
		msgpack_sbuffer_destroy(&sb);
		if (msg != NULL) {
			slot_send(s, msg, rp->timeout_ms);
		} else {
			pthread_mutex_lock(&rp->mu);
			s->busy = false;
			pthread_mutex_unlock(&rp->mu);
		}
	}
	nng_sleep_aio(tick_ms(rp), rp->timer);
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

static void
caller_free(remote_caller *c)
{
	for (answer *a = c->head, *next; a != NULL; a = next) {
		next = a->next;
		remote_resp_free(&a->resp);
		free(a);
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
	c->closing  = true;
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
	caller_free(c);
}

/* Queue an answer the runtime makes itself (with rp->mu). */
static void
queue_answer(remote_caller *c, answer *a)
{
	a->next = NULL;
	if (c->tail != NULL)
		c->tail->next = a;
	else
		c->head = a;
	c->tail = a;
	c->in_flight++;
	pthread_cond_broadcast(&c->cv);
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
	msgpack_zone_clear(&c->zone);
	if (ev_decode(req->event, req->event_len, req->position, &c->zone, &ev)
	    != SL_OK)
		return false;
	msgpack_pack_map(pk, kind == DEF_PROJECTION ? 8 : 6);
	mp_pack_kv_u64(pk, "call", id);
	mp_pack_kv_u64(pk, "session", session);
	mp_pack_kv_str(
	    pk, "op", kind == DEF_PROJECTION ? "project" : "filter");
	mp_pack_kv_str(pk, "tenant", req->tenant);
	mp_pack_cstr(pk, "event");
	ev_pack_wire(pk, &ev); /* as the API's read op shows it */
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

int
remote_call_start(remote_caller *c, const remote_req *req, uint64_t *call)
{
	remote_proc *rp = c->rp;
	nng_msg     *msg;
	slot        *s;

	pthread_mutex_lock(&rp->mu);
	if (rp->closing || !rp->connected || c->closing) {
		pthread_mutex_unlock(&rp->mu);
		return SL_ECLOSED;
	}
	if (c->in_flight >= rp->window) {
		pthread_mutex_unlock(&rp->mu);
		return SL_EFULL;
	}
	uint64_t       id      = ++rp->next_call;
	uint64_t       session = rp->session;
	sl_filter_kind fkind   = rp->cur->def.filter_kind;
	pthread_mutex_unlock(&rp->mu);

	answer *a = calloc(1, sizeof(*a));
	if (a == NULL)
		return SL_ENOMEM;
	if (!pack_call(c, req, id, session, rp->kind)) {
		/* A record the log cannot decode: no client can help. */
		a->resp.call    = id;
		a->resp.outcome = REMOTE_FAILED;
		a->resp.retry   = false;
		resp_reason(&a->resp,
		    "the event at position %" PRIu64
		    " cannot be decoded from the log",
		    req->position);
		pthread_mutex_lock(&rp->mu);
		queue_answer(c, a);
		pthread_mutex_unlock(&rp->mu);
		*call = id;
		return SL_OK;
	}
	if (nng_msg_alloc(&msg, c->buf.size) != 0) {
		free(a);
		return SL_ENOMEM;
	}
	memcpy(nng_msg_body(msg), c->buf.data, c->buf.size);

	pthread_mutex_lock(&rp->mu);
	s = rp->n_free > 0 ? rp->free_slots[--rp->n_free] : NULL;
	pthread_mutex_unlock(&rp->mu);
	if (s == NULL) {
		s = slot_alloc(rp);
		pthread_mutex_lock(&rp->mu);
		bool ok = s != NULL && slot_track(rp, s);
		pthread_mutex_unlock(&rp->mu);
		if (!ok) {
			if (s != NULL) {
				nng_ctx_close(s->ctx);
				nng_aio_free(s->aio);
				free(s);
			}
			nng_msg_free(msg);
			free(a);
			return SL_ENOMEM;
		}
	}
	pthread_mutex_lock(&rp->mu);
	if (rp->closing || !rp->connected || c->closing) {
		/* gone meanwhile: nothing sent */
		rp->free_slots[rp->n_free++] = s;
		pthread_mutex_unlock(&rp->mu);
		nng_msg_free(msg);
		free(a);
		return SL_ECLOSED;
	}
	s->busy              = true;
	s->recv_phase        = false;
	s->abort             = ABORT_NONE;
	s->owner             = c;
	s->ans               = a;
	s->call              = id;
	s->kind              = rp->kind;
	s->fkind             = fkind;
	s->deadline_ms       = mono_ms() + rp->timeout_ms;
	rp->last_activity_ms = mono_ms();
	rp->calls++;
	rp->busy_calls++;
	c->busy_slots++;
	c->in_flight++;
	uint32_t timeout = rp->timeout_ms;
	pthread_mutex_unlock(&rp->mu);
	slot_send(s, msg, timeout);
	*call = id;
	return SL_OK;
}

int
remote_call_next(remote_caller *c, int timeout_ms, remote_resp *out)
{
	remote_proc *rp       = c->rp;
	int64_t      deadline = mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	answer      *a;

	pthread_mutex_lock(&rp->mu);
	while ((a = c->head) == NULL) {
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
	c->head = a->next;
	if (c->head == NULL)
		c->tail = NULL;
	c->in_flight--;
	pthread_mutex_unlock(&rp->mu);
	*out = a->resp;
	free(a);
	return SL_OK;
}

size_t
remote_calls_in_flight(const remote_caller *c)
{
	remote_proc *rp = c->rp;
	pthread_mutex_lock(&rp->mu);
	size_t n = c->in_flight;
	pthread_mutex_unlock(&rp->mu);
	return n;
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

/* ---- registrations ---- */

/*
 * An ipc:// socket file left by a process that died is removed; one a live
 * process answers on is kept (listening then fails with the reason). The
 * API server does the same for its endpoint (runtime/server.c).
 */
static void
clear_stale_ipc(const char *url)
{
	struct stat        st;
	struct sockaddr_un sa;
	const char        *path = url + 6;
	if (strncmp(url, "ipc://", 6) != 0 || lstat(path, &st) != 0
	    || !S_ISSOCK(st.st_mode) || strlen(path) >= sizeof(sa.sun_path))
		return;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	int rc = connect(fd, (struct sockaddr *) &sa, sizeof(sa));
	close(fd);
	if (rc != 0 && errno == ECONNREFUSED)
		unlink(path);
}

/* A new listener for rp at the next URL of the endpoint (rs->mu held). */
static int
rp_listen(remotes *rs, remote_proc *rp, nng_listener *l, char *url,
    size_t url_len, char *err, size_t errlen)
{
	const char *base = rs->cfg.endpoint;
	uint32_t    n    = ++rs->next_n;
	int         rv, port = 0;

	if (strncmp(base, "ipc://", 6) == 0) {
		snprintf(url, url_len, "%s-%u.ipc", base, n);
		if (strlen(url + 6)
		    >= sizeof(((struct sockaddr_un *) 0)->sun_path))
			return fail_msg(err, errlen, SL_ENET,
			    "cannot listen on %s: the ipc path is too long "
			    "(set remote.endpoint to a shorter path)",
			    url);
		clear_stale_ipc(url);
	} else if (strncmp(base, "inproc://", 9) == 0) {
		snprintf(url, url_len, "%s-%u", base, n);
	} else {
		snprintf(url, url_len, "%s", base);
	}
	if ((rv = nng_listener_create(l, rp->sock, url)) != 0
	    || (rv = nng_listener_start(*l, 0)) != 0) {
		if (rv != 0 && nng_listener_id(*l) > 0)
			nng_listener_close(*l);
		return fail_msg(err, errlen,
		    rv == NNG_ENOMEM ? SL_ENOMEM : SL_ENET,
		    "cannot listen on %s: %s", url, nng_strerror(rv));
	}
	if (strncmp(base, "tcp://", 6) == 0) {
		/* port 0 in the endpoint: the port the system chose */
		const char *colon = strrchr(base, ':');
		if (nng_listener_get_int(*l, NNG_OPT_TCP_BOUND_PORT, &port)
		    != 0) {
			nng_listener_close(*l);
			return fail_msg(err, errlen, SL_ENET,
			    "cannot read the port bound for %s", base);
		}
		snprintf(
		    url, url_len, "%.*s:%d", (int) (colon - base), base, port);
	}
	return SL_OK;
}

/* A session id: random, 1 .. 2^53 - 1 (exact in every language's
 * numbers), so a client can tell a call of its registration. */
static uint64_t
new_session(void)
{
	uint8_t  b[16];
	uint64_t v = 0;
	ev_uuid_generate(b);
	for (int i = 0; i < 8; i++)
		v = (v << 8) | b[i];
	v &= (1ULL << 53) - 1;
	return v != 0 ? v : 1;
}

/* Tear a registration down: nothing of it runs afterwards. */
static void
rp_free(remote_proc *rp)
{
	if (rp == NULL)
		return;
	pthread_mutex_lock(&rp->mu);
	rp->closing = true;
	pthread_mutex_unlock(&rp->mu);
	if (rp->timer != NULL)
		nng_aio_stop(rp->timer);
	for (size_t i = 0; i < rp->n_slots; i++)
		nng_aio_stop(rp->slots[i]->aio);
	if (rp->listening)
		nng_listener_close(rp->listener);
	if (nng_socket_id(rp->sock) > 0)
		server_close_socket(rp->sock); /* closes the contexts */
	for (size_t i = 0; i < rp->n_slots; i++) {
		nng_aio_free(rp->slots[i]->aio);
		free(rp->slots[i]->ans);
		free(rp->slots[i]);
	}
	if (rp->timer != NULL)
		nng_aio_free(rp->timer);
	/* callers a processor did not close (it should have) */
	for (remote_caller *c = rp->callers, *next; c != NULL; c = next) {
		next = c->next;
		caller_free(c);
	}
	for (rdef *d = rp->cur, *next; d != NULL; d = next) {
		next = d->next;
		rdef_free(d);
	}
	free(rp->slots);
	free(rp->free_slots);
	pthread_cond_destroy(&rp->cv);
	pthread_mutex_destroy(&rp->mu);
	free(rp);
}

/* A new registration (rs->mu held). */
static int
rp_new(remotes *rs, const remote_spec *spec, remote_proc **out, char *err,
    size_t errlen)
{
	remote_proc *rp = calloc(1, sizeof(*rp));
	int          rv;
	*out = NULL;
	if (rp == NULL)
		return fail_msg(err, errlen, SL_ENOMEM, "out of memory");
	rp->rs           = rs;
	rp->kind         = spec->kind;
	rp->window       = rs->cfg.window;
	rp->keepalive_ms = rs->cfg.keepalive_ms;
	rp->timeout_ms   = rs->cfg.timeout_ms;
	memcpy(rp->id, spec->id, sizeof(rp->id));
	pthread_mutex_init(&rp->mu, NULL);
	cond_init_mono(&rp->cv);
	if ((rp->cur = rdef_new(spec, rp)) == NULL) {
		rp_free(rp);
		return fail_msg(err, errlen, SL_ENOMEM, "out of memory");
	}
	if ((rv = nng_req0_open(&rp->sock)) != 0) {
		rp_free(rp);
		return fail_msg(err, errlen, SL_ENET,
		    "cannot open a req0 socket: %s", nng_strerror(rv));
	}
	/* Twice the answer limit: answers in between fail the call with a
	 * reason; beyond it NNG drops the connection. */
	nng_socket_set_size(
	    rp->sock, NNG_OPT_RECVMAXSZ, 2 * (size_t) REMOTE_MAX_ANSWER);
	nng_socket_set_ms(
	    rp->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_pipe_notify(rp->sock, NNG_PIPE_EV_ADD_PRE, pipe_cb, rp);
	nng_pipe_notify(rp->sock, NNG_PIPE_EV_ADD_POST, pipe_cb, rp);
	nng_pipe_notify(rp->sock, NNG_PIPE_EV_REM_POST, pipe_cb, rp);
	if (nng_aio_alloc(&rp->timer, timer_cb, rp) != 0
	    || (rp->ping = slot_alloc(rp)) == NULL
	    || !slot_track(rp, rp->ping)) {
		if (rp->ping != NULL && rp->n_slots == 0) {
			nng_aio_free(rp->ping->aio);
			free(rp->ping);
		}
		rp_free(rp);
		return fail_msg(err, errlen, SL_ENOMEM, "out of memory");
	}
	rp->ping->is_ping = true;
	int rc            = rp_listen(
	               rs, rp, &rp->listener, rp->url, sizeof(rp->url), err, errlen);
	if (rc != SL_OK) {
		rp_free(rp);
		return rc;
	}
	rp->listening        = true;
	rp->session          = new_session();
	rp->registrations    = 1;
	rp->registered_at_ns = ev_now_ns();
	nng_sleep_aio(tick_ms(rp), rp->timer);
	*out = rp;
	return SL_OK;
}

int
remotes_create(const remote_config *cfg, remotes **out)
{
	*out = NULL;
	if (cfg == NULL || cfg->endpoint == NULL || cfg->window < 1
	    || cfg->keepalive_ms < 1 || cfg->timeout_ms < 1
	    || cfg->max_registrations < 1
	    || (strncmp(cfg->endpoint, "ipc://", 6) != 0
	        && strncmp(cfg->endpoint, "inproc://", 9) != 0
	        && strncmp(cfg->endpoint, "tcp://", 6) != 0))
		return SL_EINVAL;
	remotes *rs = calloc(1, sizeof(*rs));
	if (rs == NULL)
		return SL_ENOMEM;
	rs->cfg          = *cfg;
	rs->cfg.endpoint = strdup(cfg->endpoint);
	rs->regs         = calloc(cfg->max_registrations, sizeof(*rs->regs));
	if (rs->cfg.endpoint == NULL || rs->regs == NULL) {
		free((char *) rs->cfg.endpoint);
		free(rs->regs);
		free(rs);
		return SL_ENOMEM;
	}
	pthread_mutex_init(&rs->mu, NULL);
	*out = rs;
	return SL_OK;
}

void
remotes_shutdown(remotes *rs)
{
	if (rs == NULL)
		return;
	pthread_mutex_lock(&rs->mu);
	rs->closing = true;
	size_t n    = rs->n_regs;
	pthread_mutex_unlock(&rs->mu);
	for (size_t i = 0; i < n; i++) {
		remote_proc *rp = rs->regs[i];
		pthread_mutex_lock(&rp->mu);
		rp->closing = true;
		rp->wake_gen++;
		pthread_cond_broadcast(&rp->cv);
		for (remote_caller *c = rp->callers; c != NULL; c = c->next)
			pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&rp->mu);
		abort_all(rp, ABORT_CLOSED);
	}
}

void
remotes_destroy(remotes *rs)
{
	if (rs == NULL)
		return;
	remotes_shutdown(rs);
	for (size_t i = 0; i < rs->n_regs; i++)
		rp_free(rs->regs[i]);
	free(rs->regs);
	free((char *) rs->cfg.endpoint);
	pthread_mutex_destroy(&rs->mu);
	free(rs);
}

static remote_proc *
find_id(remotes *rs, const char *id)
{
	for (size_t i = 0; i < rs->n_regs; i++)
		if (strcmp(rs->regs[i]->id, id) == 0)
			return rs->regs[i];
	return NULL;
}

int
remote_register(remotes *rs, const remote_spec *spec, registry *plugins,
    remote_reg_result *out, char *err, size_t errlen)
{
	remote_proc *rp;
	int          rc = SL_OK;

	memset(out, 0, sizeof(*out));
	if (errlen > 0)
		err[0] = '\0';
	pthread_mutex_lock(&rs->mu);
	if (rs->closing) {
		rc = fail_msg(
		    err, errlen, SL_ECLOSED, "the runtime is shutting down");
		goto out;
	}
	const proj_def *pd = registry_find(plugins, spec->id, 36);
	if (pd != NULL && strcmp(pd->id, spec->id) == 0) {
		rc = fail_msg(err, errlen, SL_EEXIST,
		    "id %s is taken by %s '%s' of a plugin", spec->id,
		    kind_word(pd->kind), pd->name);
		goto out;
	}
	if ((rp = find_id(rs, spec->id)) == NULL) {
		if (rs->n_regs >= rs->cfg.max_registrations) {
			rc = fail_msg(err, errlen, SL_ETOOBIG,
			    "remote.max_registrations (%u) reached",
			    rs->cfg.max_registrations);
			goto out;
		}
		if ((rc = rp_new(rs, spec, &rp, err, errlen)) != SL_OK)
			goto out;
		rs->regs[rs->n_regs++] = rp;
		out->kind              = REMOTE_REG_NEW;
		out->def               = &rp->cur->def;
		out->old_def           = NULL;
		log_info("remote",
		    "%s %s (%s) registered: its client dials %s",
		    kind_word(rp->kind), rp->id, spec->name, rp->url);
	} else {
		/* A takeover: only of an id whose client is gone. */
		nng_listener l;
		char         url[sizeof(rp->url)];
		rdef        *old = rp->cur, *nd = NULL;
		uint64_t     h = spec_hash(spec);
		if (rp->kind != spec->kind) {
			rc = fail_msg(err, errlen, SL_EEXIST,
			    "id %s is registered as a %s ('%s'); a %s cannot "
			    "take it over",
			    spec->id, kind_word(rp->kind), old->def.name,
			    kind_word(spec->kind));
			goto out;
		}
		pthread_mutex_lock(&rp->mu);
		bool busy = rp->has_pipe;
		char client[sizeof(rp->client)];
		snprintf(client, sizeof(client), "%s", rp->client);
		pthread_mutex_unlock(&rp->mu);
		if (busy) {
			rc = fail_msg(err, errlen, SL_EEXIST,
			    "%s %s ('%s') is registered by a client that is "
			    "connected (%s)",
			    kind_word(rp->kind), rp->id, old->def.name,
			    client[0] != '\0' ? client : "connecting");
			goto out;
		}
		if (h != old->def.def_hash
		    || strcmp(spec->name, old->def.name) != 0) {
			if ((nd = rdef_new(spec, rp)) == NULL) {
				rc = fail_msg(
				    err, errlen, SL_ENOMEM, "out of memory");
				goto out;
			}
		}
		if ((rc = rp_listen(rs, rp, &l, url, sizeof(url), err, errlen))
		    != SL_OK) {
			rdef_free(nd);
			goto out;
		}
		pthread_mutex_lock(&rp->mu);
		if (rp->has_pipe) {
			/* a client came in meanwhile: it keeps the id */
			pthread_mutex_unlock(&rp->mu);
			nng_listener_close(l);
			rdef_free(nd);
			rc = fail_msg(err, errlen, SL_EEXIST,
			    "%s %s ('%s') is registered by a client that just "
			    "connected",
			    kind_word(rp->kind), rp->id, old->def.name);
			goto out;
		}
		nng_listener old_l = rp->listener;
		rp->listener       = l;
		snprintf(rp->url, sizeof(rp->url), "%s", url);
		rp->session = new_session();
		if (nd != NULL) {
			nd->next = old;
			rp->cur  = nd;
		}
		rp->registrations++;
		rp->registered_at_ns = ev_now_ns();
		rp->last_error[0]    = '\0';
		pthread_mutex_unlock(&rp->mu);
		nng_listener_close(old_l); /* its late dialers go nowhere */
		out->kind    = h != old->def.def_hash ? REMOTE_REG_CHANGED
		                                      : REMOTE_REG_SAME;
		out->def     = &rp->cur->def;
		out->old_def = &old->def;
		log_info("remote",
		    "%s %s (%s) registered again (%s): its client dials %s",
		    kind_word(rp->kind), rp->id, spec->name,
		    out->kind == REMOTE_REG_CHANGED
		        ? "definition changed: rebuilt from position 0"
		        : "same definition: continues from the checkpoint",
		    url);
	}
	pthread_mutex_lock(&rp->mu);
	snprintf(out->url, sizeof(out->url), "%s", rp->url);
	out->session = rp->session;
	pthread_mutex_unlock(&rp->mu);
	out->window       = rp->window;
	out->keepalive_ms = rp->keepalive_ms;
	out->timeout_ms   = rp->timeout_ms;
out:
	pthread_mutex_unlock(&rs->mu);
	return rc;
}

const proj_def *
remotes_find(remotes *rs, const char *id_or_name, size_t len)
{
	const proj_def *d = NULL;
	if (rs == NULL || id_or_name == NULL)
		return NULL;
	pthread_mutex_lock(&rs->mu);
	for (size_t i = 0; d == NULL && i < rs->n_regs; i++)
		if (len == 36
		    && strncasecmp(rs->regs[i]->id, id_or_name, 36) == 0)
			d = &rs->regs[i]->cur->def;
	for (size_t i = 0; d == NULL && i < rs->n_regs; i++) {
		const char *name = rs->regs[i]->cur->def.name;
		if (strlen(name) == len && memcmp(name, id_or_name, len) == 0)
			d = &rs->regs[i]->cur->def;
	}
	pthread_mutex_unlock(&rs->mu);
	return d;
}

size_t
remotes_count(remotes *rs)
{
	if (rs == NULL)
		return 0;
	pthread_mutex_lock(&rs->mu);
	size_t n = rs->n_regs;
	pthread_mutex_unlock(&rs->mu);
	return n;
}

bool
remotes_info(remotes *rs, size_t i, remote_info *out)
{
	memset(out, 0, sizeof(*out));
	if (rs == NULL)
		return false;
	pthread_mutex_lock(&rs->mu);
	if (i >= rs->n_regs) {
		pthread_mutex_unlock(&rs->mu);
		return false;
	}
	remote_proc *rp = rs->regs[i];
	pthread_mutex_lock(&rp->mu);
	out->def       = &rp->cur->def;
	out->connected = rp->connected;
	out->session   = rp->session;
	snprintf(out->url, sizeof(out->url), "%s", rp->url);
	snprintf(out->client, sizeof(out->client), "%s", rp->client);
	out->in_flight        = rp->busy_calls;
	out->calls            = rp->calls;
	out->failed_calls     = rp->failed_calls;
	out->connects         = rp->connects;
	out->registrations    = rp->registrations;
	out->registered_at_ns = rp->registered_at_ns;
	out->changed_at_ns    = rp->changed_at_ns;
	snprintf(
	    out->last_error, sizeof(out->last_error), "%s", rp->last_error);
	out->window       = rp->window;
	out->keepalive_ms = rp->keepalive_ms;
	out->timeout_ms   = rp->timeout_ms;
	pthread_mutex_unlock(&rp->mu);
	pthread_mutex_unlock(&rs->mu);
	return true;
}
