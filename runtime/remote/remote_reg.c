/*
 * Remote processors, the registrations (docs/remote.md): op "register"
 * checked into a remote_spec, a definition (a proj_def the processors run
 * like a plugin's) per content, a registration's socket and URL, takeover
 * of an id whose client is gone, and what status shows. The calls on a
 * registration's connection are remote.c's.
 */
#include "remote.h"

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
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include <sluice/errors.h>

#include "event.h"
#include "listen.h"
#include "log.h"
#include "mp.h"
#include "remote_internal.h"
#include "server.h"


/* Remote call latency buckets, ns: 100 µs .. 10 s (metrics). */
static const uint64_t remote_latency_bounds[] = { 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000, 25000000, 50000000, 100000000,
	250000000, 500000000, 1000000000, 5000000000, 10000000000 };
static const char zero_uuid[] = "00000000-0000-0000-0000-000000000000";

/* ---- small helpers ---- */

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

/* The definition's hash, as a plugin's with the same content would
 * have (plugins.h), so a switch between them keeps what was built. */
static uint64_t
spec_hash(const remote_spec *s)
{
	if (s->kind == DEF_FILTER)
		return defhash_filter(s->id, s->scope, s->fkind, s->version);
	return defhash_projection(s->id, s->scope, s->version, s->initial,
	    s->initial_len, s->sels, s->n_sels);
}

/* ---- registration requests ---- */

void
remote_spec_set_owner(remote_spec *s, const char *owner, uint32_t max)
{
	snprintf(s->owner, sizeof(s->owner), "%s", owner);
	s->owner_max    = max;
	s->owner_capped = true;
}

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
		char why[200];
		if (sel->key == SL_KEY_OCCURRED
		    && !def_time_pattern_ok(sel->arg, why, sizeof(why)))
			return fail_msg(err, errlen, SL_EINVAL,
			    "field 'selectors[%u].arg': occurred key pattern "
			    "'%.64s' %s",
			    i, sel->arg, why);
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
		    "version, %d or %d)",
		    REMOTE_PROTOCOL_MIN, REMOTE_PROTOCOL);
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return fail_msg(err, errlen, SL_EPROTO,
		    "field 'protocol' must be a non-negative integer");
	if (o->via.u64 < REMOTE_PROTOCOL_MIN || o->via.u64 > REMOTE_PROTOCOL)
		return fail_msg(err, errlen, SL_EVERSION,
		    "remote protocol version %" PRIu64
		    " is not supported (this runtime speaks %d and %d)",
		    o->via.u64, REMOTE_PROTOCOL_MIN, REMOTE_PROTOCOL);

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return fail_msg(err, errlen, SL_ENOMEM, "out of memory");
	s->protocol = (uint32_t) o->via.u64;
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
	if (!ev_uuid_canon(o->via.str.ptr, o->via.str.size, s->id)) {
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
	} else if (!ev_uuid_canon(o->via.str.ptr, o->via.str.size, s->scope)) {
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
		/* read as 1.2: the whole log (sources are not registered) */
		d->filt.abi_version = (SL_ABI_MAJOR << 16) | 2;
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
	/* read as 1.2: the whole log (sources are not registered) */
	d->proj.abi_version = (SL_ABI_MAJOR << 16) | 2;
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

/* ---- registrations ---- */

/*
 * An ipc:// socket file left by a process that died is removed; one a live
 * process answers on is kept (listening then fails with the reason). The
 * API server does the same for its endpoint (runtime/net/server.c).
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
	if ((rv = net_listen(rp->sock, url, l)) != 0) {
		return fail_msg(err, errlen,
		    rv == NNG_ENOMEM ? SL_ENOMEM : SL_ENET,
		    "cannot listen on %s: %s", url, nng_strerror(rv));
	}
	if (strncmp(base, "tcp://", 6) == 0
	    || strncmp(base, "tls+tcp://", 10) == 0) {
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
		/* A message still on a stopped aio is ours: NNG 1.5.2 leaves
		 * it there, running no callback, when a send begins on an aio
		 * already stopped, or when a closing context hands back a send
		 * it had queued (slot_cb, when it runs, takes its message off
		 * the aio). Without this, LeakSanitizer found a call or ping
		 * message left over at exit after a client died mid-send. */
		nng_msg *left = nng_aio_get_msg(rp->slots[i]->aio);
		if (left != NULL)
			nng_msg_free(left);
		nng_aio_free(rp->slots[i]->aio);
		remote_ablock_free(rp->slots[i]->blk);
		free(rp->slots[i]->run_len);
		free(rp->slots[i]);
	}
	if (rp->timer != NULL)
		nng_aio_free(rp->timer);
	/* callers a processor did not close (it should have) */
	for (remote_caller *c = rp->callers, *next; c != NULL; c = next) {
		next = c->next;
		remote_caller_free(c);
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
	hist_init(&rp->call_latency, remote_latency_bounds,
	    sizeof(remote_latency_bounds) / sizeof(remote_latency_bounds[0]));
	rp->window       = rs->cfg.window;
	rp->protocol     = spec->protocol;
	rp->batch        = spec->protocol >= 2 ? rs->cfg.batch : 1;
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
	nng_pipe_notify(rp->sock, NNG_PIPE_EV_ADD_PRE, remote_pipe_cb, rp);
	nng_pipe_notify(rp->sock, NNG_PIPE_EV_ADD_POST, remote_pipe_cb, rp);
	nng_pipe_notify(rp->sock, NNG_PIPE_EV_REM_POST, remote_pipe_cb, rp);
	if (nng_aio_alloc(&rp->timer, remote_timer_cb, rp) != 0
	    || (rp->ping = remote_slot_alloc(rp)) == NULL
	    || !remote_slot_track(rp, rp->ping)) {
		if (rp->ping != NULL && rp->n_slots == 0) {
			nng_aio_free(rp->ping->aio);
			free(rp->ping);
		}
		rp_free(rp);
		return fail_msg(err, errlen, SL_ENOMEM, "out of memory");
	}
	rp->ping->is_ping = true;
	if (rs->cfg.prove_clients) {
		slot *h = remote_slot_alloc(rp);
		if (h == NULL || !remote_slot_track(rp, h)) {
			if (h != NULL) {
				nng_aio_free(h->aio);
				free(h);
			}
			rp_free(rp);
			return fail_msg(
			    err, errlen, SL_ENOMEM, "out of memory");
		}
		h->is_hello = true;
		rp->hello   = h;
	}
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
	rp->gone_since_ms    = mono_ns() / 1000000;
	nng_sleep_aio(remote_tick_ms(rp), rp->timer);
	*out = rp;
	return SL_OK;
}

int
remotes_create(const remote_config *cfg, remotes **out)
{
	*out = NULL;
	if (cfg == NULL || cfg->endpoint == NULL || cfg->window < 1
	    || cfg->batch < 1 || cfg->batch > 1024 || cfg->keepalive_ms < 1
	    || cfg->timeout_ms < 1 || cfg->max_registrations < 1
	    || (strncmp(cfg->endpoint, "ipc://", 6) != 0
	        && strncmp(cfg->endpoint, "inproc://", 9) != 0
	        && strncmp(cfg->endpoint, "tcp://", 6) != 0
	        && strncmp(cfg->endpoint, "tls+tcp://", 10) != 0))
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
		remote_abort_all(rp, ABORT_CLOSED);
	}
}

static void *
rp_free_main(void *arg)
{
	rp_free(arg);
	return NULL;
}

void
remotes_destroy(remotes *rs)
{
	if (rs == NULL)
		return;
	remotes_shutdown(rs);
	/* Each close may wait for NNG (server_close_socket's bound): all at
	 * once, so that the stop takes one such wait, not one per
	 * registration. A registration whose thread cannot start is freed
	 * here. */
	pthread_t *th = calloc(rs->n_regs ? rs->n_regs : 1, sizeof(*th));
	bool      *up = calloc(rs->n_regs ? rs->n_regs : 1, sizeof(*up));
	for (size_t i = 0; i < rs->n_regs; i++) {
		if (th != NULL && up != NULL
		    && pthread_create(&th[i], NULL, rp_free_main, rs->regs[i])
		        == 0)
			up[i] = true;
		else
			rp_free(rs->regs[i]);
	}
	for (size_t i = 0; i < rs->n_regs; i++)
		if (up != NULL && up[i])
			pthread_join(th[i], NULL);
	free(th);
	free(up);
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
		size_t held = 0;
		for (size_t i = 0; spec->owner_capped && i < rs->n_regs; i++)
			held += strcmp(rs->regs[i]->owner, spec->owner) == 0;
		if (spec->owner_capped && held >= spec->owner_max) {
			rc = fail_msg(err, errlen, SL_ETOOBIG,
			    "credential '%s' holds %zu registrations (its "
			    "max_registrations)",
			    spec->owner, held);
			goto out;
		}
		if (rs->n_regs >= rs->cfg.max_registrations) {
			rc = fail_msg(err, errlen, SL_ETOOBIG,
			    "remote.max_registrations (%u) reached",
			    rs->cfg.max_registrations);
			goto out;
		}
		if ((rc = rp_new(rs, spec, &rp, err, errlen)) != SL_OK)
			goto out;
		snprintf(rp->owner, sizeof(rp->owner), "%s", spec->owner);
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
		if (strcmp(rp->owner, spec->owner) != 0) {
			rc = fail_msg(err, errlen, SL_EACCES,
			    "%s %s is registered by another credential: only "
			    "that one may take it over",
			    kind_word(rp->kind), rp->id);
			goto out;
		}
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
		rp->session  = new_session();
		rp->protocol = spec->protocol; /* the new client's */
		rp->batch    = spec->protocol >= 2 ? rs->cfg.batch : 1;
		if (nd != NULL) {
			nd->next = old;
			rp->cur  = nd;
		}
		rp->registrations++;
		rp->registered_at_ns = ev_now_ns();
		rp->gone_since_ms    = mono_ns() / 1000000; /* time anew */
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
	out->session  = rp->session;
	out->protocol = rp->protocol;
	out->batch    = rp->batch;
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
		if (proj_def_has_id(&rs->regs[i]->cur->def, id_or_name, len))
			d = &rs->regs[i]->cur->def;
	for (size_t i = 0; d == NULL && i < rs->n_regs; i++)
		if (proj_def_has_name(&rs->regs[i]->cur->def, id_or_name, len))
			d = &rs->regs[i]->cur->def;
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

/* What status shows of rp (rs->mu held). */
static void
rp_info(remote_proc *rp, remote_info *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&rp->mu);
	out->def       = &rp->cur->def;
	out->connected = rp->connected;
	out->session   = rp->session;
	snprintf(out->url, sizeof(out->url), "%s", rp->url);
	snprintf(out->client, sizeof(out->client), "%s", rp->client);
	out->in_flight        = rp->busy_calls;
	out->calls            = rp->calls;
	out->failed_calls     = rp->failed_calls;
	hist_read(&rp->call_latency, &out->call_latency);
	out->connects         = rp->connects;
	out->registrations    = rp->registrations;
	out->registered_at_ns = rp->registered_at_ns;
	out->changed_at_ns    = rp->changed_at_ns;
	snprintf(
	    out->last_error, sizeof(out->last_error), "%s", rp->last_error);
	out->window       = rp->window;
	out->keepalive_ms = rp->keepalive_ms;
	out->timeout_ms   = rp->timeout_ms;
	out->protocol     = rp->protocol;
	out->batch        = rp->batch;
	snprintf(out->owner, sizeof(out->owner), "%s", rp->owner);
	pthread_mutex_unlock(&rp->mu);
}

int
remotes_list(remotes *rs, remote_info **out, size_t *n)
{
	*out = NULL;
	*n   = 0;
	if (rs == NULL)
		return SL_OK;
	pthread_mutex_lock(&rs->mu);
	if (rs->n_regs > 0) {
		*out = malloc(rs->n_regs * sizeof(**out));
		if (*out == NULL) {
			pthread_mutex_unlock(&rs->mu);
			return SL_ENOMEM;
		}
		for (size_t i = 0; i < rs->n_regs; i++)
			rp_info(rs->regs[i], &(*out)[i]);
		*n = rs->n_regs;
	}
	pthread_mutex_unlock(&rs->mu);
	return SL_OK;
}

/* ---- expiry (remote.registration_expiry_ms) ---- */

/* Whether rp's client has been gone for gone_ms at now (rp->mu held). */
static bool
rp_expired(const remote_proc *rp, uint32_t gone_ms, int64_t now)
{
	return !rp->closing && !rp->has_pipe
	    && now - rp->gone_since_ms >= (int64_t) gone_ms;
}

size_t
remotes_expired(remotes *rs, uint32_t gone_ms, char (*ids)[37], size_t max)
{
	size_t  n   = 0;
	int64_t now = mono_ns() / 1000000;
	if (rs == NULL || gone_ms == 0)
		return 0;
	pthread_mutex_lock(&rs->mu);
	for (size_t i = 0; !rs->closing && i < rs->n_regs && n < max; i++) {
		remote_proc *rp = rs->regs[i];
		pthread_mutex_lock(&rp->mu);
		if (rp_expired(rp, gone_ms, now))
			memcpy(ids[n++], rp->id, sizeof(rp->id));
		pthread_mutex_unlock(&rp->mu);
	}
	pthread_mutex_unlock(&rs->mu);
	return n;
}

remote_proc *
remotes_unlink(remotes *rs, const char *id, uint32_t gone_ms)
{
	remote_proc *rp  = NULL;
	int64_t      now = mono_ns() / 1000000;
	pthread_mutex_lock(&rs->mu);
	for (size_t i = 0; !rs->closing && i < rs->n_regs; i++) {
		if (strcmp(rs->regs[i]->id, id) != 0)
			continue;
		remote_proc *r = rs->regs[i];
		pthread_mutex_lock(&r->mu);
		bool gone = rp_expired(r, gone_ms, now);
		if (gone) {
			/* no connection is taken from now on, and every wait
			 * for one ends */
			r->closing = true;
			r->wake_gen++;
			pthread_cond_broadcast(&r->cv);
			for (remote_caller *c = r->callers; c != NULL;
			     c                = c->next)
                                pthread_cond_broadcast(&c->cv);
		}
		pthread_mutex_unlock(&r->mu);
		if (gone) {
			log_info("remote",
			    "%s %s (%s): its client has been gone for %" PRId64
			    " ms (remote.registration_expiry_ms %u): the "
			    "registration expires, its processors stop and "
			    "its slot is free",
			    kind_word(r->kind), r->id, r->cur->def.name,
			    now - r->gone_since_ms, gone_ms);
			memmove(&rs->regs[i], &rs->regs[i + 1],
			    (rs->n_regs - i - 1) * sizeof(*rs->regs));
			rs->regs[--rs->n_regs] = NULL;
			rp                     = r;
		}
		break;
	}
	pthread_mutex_unlock(&rs->mu);
	if (rp != NULL) {
		/* its URL goes: an ipc socket file is removed */
		if (rp->listening)
			nng_listener_close(rp->listener);
		rp->listening = false;
		remote_abort_all(rp, ABORT_CLOSED);
	}
	return rp;
}

const char *
remote_proc_id(const remote_proc *rp)
{
	return rp->id;
}

void
remote_proc_free(remote_proc *rp)
{
	rp_free(rp);
}
