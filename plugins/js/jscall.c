/*
 * The JavaScript host's side of a call: the globals a script sees
 * (fromAll() ... options(), emit, linkTo, linkStreamTo, log), the event
 * object handed to a handler, and the sl_projection callbacks (on,
 * created, deleted, result) that move a key's state between the host's
 * document (as JSON text, through sl_host_api) and a JS object.
 */
#include <stdio.h>
#include <string.h>

#include "jsproj_internal.h"

/*
 * What the definition functions record, in __sl (jsproj.c reads it), and
 * the dispatch: the handler of the event's type, else $any; a handler
 * returning undefined keeps the state it was given (and changed).
 */
static const char prelude_js[]
    = "var __sl = { sources: null, handlers: null, foreachStream: false,\n"
      "  partitionBy: null, outputState: false, transforms: [], options: {},\n"
      "  resultStream: null, partitionPattern: null };\n"
      "(function (g) {\n"

      "  function q() { return {\n"
      "    when: function (h) {\n"
      "      if (typeof h !== 'object' || h === null)\n"
      "        throw new TypeError('when() takes an object of handlers');\n"
      "      __sl.handlers = h; return this; },\n"
      "    foreachStream: function () { __sl.foreachStream = true; return "
      "this; },\n"
      "    partitionBy: function (f) {\n"
      "      if (typeof f !== 'function')\n"
      "        throw new TypeError('partitionBy() takes a function');\n"
      "      __sl.partitionBy = f; return this; },\n"
      "    outputState: function () { __sl.outputState = true; return this; "
      "},\n"
      "    transformBy: function (f) { return step(this, f, false, "
      "'transformBy'); },\n"
      "    filterBy: function (f) { return step(this, f, true, 'filterBy'); "
      "},\n"
      "    outputTo: function (r, p) {\n"
      "      if (typeof r !== 'string' || r === '')\n"
      "        throw new TypeError('outputTo() takes a stream name');\n"
      "      if (p !== undefined && p !== null && typeof p !== 'string')\n"
      "        throw new TypeError('outputTo(): the pattern is a string');\n"
      "      __sl.outputState = true; __sl.resultStream = r;\n"
      "      if (typeof p === 'string') __sl.partitionPattern = p; }\n"
      "  }; }\n"
      "  function step(q, f, filter, what) {\n"
      "    if (typeof f !== 'function')\n"
      "      throw new TypeError(what + '() takes a function');\n"
      "    __sl.transforms.push({ f: f, filter: filter });\n"
      "    __sl.outputState = true; return q; }\n"
      "  function from(src) {\n"
      "    if (__sl.sources !== null)\n"
      "      throw new Error('a projection reads from one from...() only');\n"
      "    __sl.sources = src; return q(); }\n"
      "  function name(s, f) {\n"
      "    if (typeof s !== 'string' || s === '')\n"
      "      throw new TypeError(f + '() takes a non-empty string');\n"
      "    return s; }\n"
      "  g.fromAll = function () { return from([]); };\n"
      "  g.fromStream = function (s) {\n"
      "    return from([{ kind: 2, name: name(s, 'fromStream') }]); };\n"
      "  g.fromStreams = function (a) {\n"
      "    var l = Array.isArray(a) ? a : "
      "Array.prototype.slice.call(arguments);\n"
      "    if (l.length === 0) throw new TypeError('fromStreams() takes "
      "streams');\n"
      "    return from(l.map(function (s) {\n"
      "      return { kind: 2, name: name(s, 'fromStreams') }; })); };\n"
      "  g.fromCategory = function (c) {\n"
      "    return from([{ kind: 4, name: name(c, 'fromCategory') }]); };\n"
      "  g.fromCategories = function (a) {\n"
      "    var l = Array.isArray(a) ? a : "
      "Array.prototype.slice.call(arguments);\n"
      "    if (l.length === 0) throw new TypeError('fromCategories() takes "
      "categories');\n"
      "    return from(l.map(function (c) {\n"
      "      return { kind: 4, name: name(c, 'fromCategories') }; })); };\n"
      "  g.options = function (o) {\n"
      "    if (typeof o !== 'object' || o === null)\n"
      "      throw new TypeError('options() takes an object');\n"
      "    __sl.options = o; };\n"
      "})(this);\n"
      "function __sl_on(s, e) {\n"
      "  var h = __sl.handlers, f = h[e.eventType];\n"
      "  if (typeof f !== 'function' || e.eventType.charAt(0) === '$') f = "
      "h.$any;\n"
      "  var r = f(s, e);\n"
      "  return r === undefined ? s : r;\n"
      "}\n"
      "function __sl_init(e, sh) {\n"
      "  var h = __sl.handlers, s = h.$init ? h.$init() : {};\n"
      "  if (sh !== undefined) s = [s, sh];\n"
      "  if (h.$created && s !== null && typeof s === 'object') {\n"
      "    var r = h.$created(s, e);\n"
      "    if (r !== undefined) s = r;\n"
      "  }\n"
      "  return s;\n"
      "}\n"
      "function __sl_init_shared() {\n"
      "  var h = __sl.handlers;\n"
      "  return h.$initShared ? h.$initShared() : {};\n"
      "}\n"
      "function __sl_result(s) {\n"
      "  var t = __sl.transforms;\n"
      "  for (var i = 0; i < t.length; i++) {\n"
      "    if (t[i].filter) { if (!t[i].f(s)) return null; }\n"
      "    else s = t[i].f(s);\n"
      "    if (s === null || s === undefined) return null;\n"
      "  }\n"
      "  return s;\n"
      "}\n"
      "function __sl_deleted(s, e) {\n"
      "  var r = __sl.handlers.$deleted(s, e, true);\n"
      "  return r === undefined ? s : r;\n"
      "}\n";

/* ---- natives ---- */

/* Throw from a native, naming the line of the script that called it. */
static duk_ret_t
native_error(duk_context *ctx, const char *fmt, const char *a, int code)
{
	char    msg[400];
	jscall *c    = jsheap_call();
	int     line = 0;
	snprintf(msg, sizeof(msg), fmt, a, code);
	duk_inspect_callstack_entry(ctx, -2); /* the caller of the native */
	if (duk_is_object(ctx, -1)) {
		duk_get_prop_string(ctx, -1, "lineNumber");
		line = duk_get_int(ctx, -1);
		duk_pop(ctx);
	}
	duk_pop(ctx);
	duk_push_error_object(ctx, DUK_ERR_ERROR, "%s", msg);
	char where[300];
	snprintf(where, sizeof(where), "%s:%d", c ? c->p->file : "?", line);
	duk_push_string(ctx, where);
	duk_put_prop_string(ctx, -2, "__sl_where");
	return duk_throw(ctx);
}

static jscall *
native_call(duk_context *ctx, const char *what)
{
	jscall *c = jsheap_call();
	if (c == NULL || c->ctx == NULL) {
		native_error(ctx, "%s() is only for handlers", what, 0);
		return NULL;
	}
	return c;
}

/* An event to stream through the host (emit, copyTo); a refusal throws
 * "<what> '<stream>' refused (error N)". */
static duk_ret_t
emit_event(duk_context *ctx, jscall *c, const char *what, const char *stream,
    const char *type, const char *body, const char *meta)
{
	jsheap_guard_begin();
	int rc = c->p->host->emit_meta(c->ctx, stream, type, body, meta);
	jsheap_guard_end();
	if (rc != SL_OK) {
		char msg[400];
		snprintf(msg, sizeof(msg), "%s '%s' refused (error %d)", what,
		    stream, rc);
		return native_error(ctx, "%s", msg, 0);
	}
	return 0;
}

/* emit(stream, eventType, body, metadata) */
static duk_ret_t
n_emit(duk_context *ctx)
{
	jscall     *c      = native_call(ctx, "emit");
	const char *stream = duk_to_string(ctx, 0);
	const char *type   = duk_to_string(ctx, 1);
	if (duk_is_undefined(ctx, 2))
		duk_push_object(ctx), duk_replace(ctx, 2);
	const char *body = duk_json_encode(ctx, 2);
	const char *meta = NULL;
	if (!duk_is_undefined(ctx, 3) && !duk_is_null(ctx, 3))
		meta = duk_json_encode(ctx, 3);
	return emit_event(ctx, c, "emit to", stream, type, body, meta);
}

/* Copy the properties of the object at obj into the one at to, but those
 * whose name starts with '$' (keep_corr: except "$correlationId"). */
static void
merge_meta(duk_context *ctx, duk_idx_t to, duk_idx_t obj, bool keep_corr)
{
	to  = duk_normalize_index(ctx, to);
	obj = duk_normalize_index(ctx, obj);
	if (!duk_is_object(ctx, obj) || duk_is_array(ctx, obj))
		return;
	duk_enum(ctx, obj, DUK_ENUM_OWN_PROPERTIES_ONLY);
	while (duk_next(ctx, -1, 1)) {
		const char *k = duk_get_string(ctx, -2);
		if (k != NULL
		    && (k[0] != '$'
		        || (keep_corr && strcmp(k, "$correlationId") == 0)))
			duk_put_prop_string(ctx, to, k);
		else
			duk_pop(ctx);
		duk_pop(ctx);
	}
	duk_pop(ctx);
}

/*
 * copyTo(stream, e, metadata): a copy of e (its type and body) written to
 * stream, as EventStoreDB's prelude does: the metadata is e's (without
 * '$' names but $correlationId) and then the given one's (without '$'
 * names).
 */
static duk_ret_t
n_copy_to(duk_context *ctx)
{
	jscall     *c      = native_call(ctx, "copyTo");
	const char *stream = duk_to_string(ctx, 0);
	if (!duk_is_object(ctx, 1))
		return native_error(
		    ctx, "copyTo('%s', e): e is not an event", stream, 0);
	duk_get_prop_string(ctx, 1, "eventType");
	const char *type = duk_get_string(ctx, -1);
	duk_get_prop_string(ctx, 1, "bodyRaw");
	const char *body = duk_get_string(ctx, -1);
	if (type == NULL || type[0] == '\0' || body == NULL)
		return native_error(ctx,
		    "copyTo('%s', e): e has no eventType or bodyRaw", stream,
		    0);
	duk_push_object(ctx);
	duk_get_prop_string(ctx, 1, "metadata");
	merge_meta(ctx, -2, -1, true);
	duk_pop(ctx);
	merge_meta(ctx, -1, 2, false);
	const char *meta = duk_json_encode(ctx, -1);
	return emit_event(ctx, c, "copyTo", stream, type, body, meta);
}

/* linkTo(stream, event): the event being handled */
static duk_ret_t
n_link_to(duk_context *ctx)
{
	jscall     *c      = native_call(ctx, "linkTo");
	const char *stream = duk_to_string(ctx, 0);
	duk_get_prop_string(ctx, 1, "sequenceNumber");
	double seq = duk_get_number_default(ctx, -1, -1);
	duk_get_prop_string(ctx, 1, "streamId");
	const char *sid = duk_get_string_default(ctx, -1, "");
	if (strcmp(sid, c->p->host->event_stream(c->ev)) != 0
	    || seq != (double) c->p->host->event_revision(c->ev))
		return native_error(ctx,
		    "linkTo('%s', e) links only the event being handled",
		    stream, 0);
	jsheap_guard_begin();
	int rc = c->p->host->link_to(c->ctx, stream, c->ev);
	jsheap_guard_end();
	if (rc != SL_OK)
		return native_error(
		    ctx, "linkTo '%s' refused (error %d)", stream, rc);
	return 0;
}

/* linkStreamTo(stream, linkedStream) */
static duk_ret_t
n_link_stream_to(duk_context *ctx)
{
	jscall     *c      = native_call(ctx, "linkStreamTo");
	const char *stream = duk_to_string(ctx, 0);
	const char *linked = duk_to_string(ctx, 1);
	jsheap_guard_begin();
	int rc = c->p->host->link_stream_to(c->ctx, stream, linked);
	jsheap_guard_end();
	if (rc != SL_OK)
		return native_error(
		    ctx, "linkStreamTo '%s' refused (error %d)", stream, rc);
	return 0;
}

/* log(...): one line through the host */
static duk_ret_t
n_log(duk_context *ctx)
{
	jscall   *c = jsheap_call();
	duk_idx_t n = duk_get_top(ctx);
	duk_push_string(ctx, " ");
	duk_insert(ctx, 0);
	duk_join(ctx, n);
	if (c != NULL) {
		char line[1024];
		snprintf(line, sizeof(line), "%s: %s", c->p->file,
		    duk_get_string(ctx, -1));
		jsheap_guard_begin();
		c->p->host->log(SL_LOG_INFO, line);
		jsheap_guard_end();
	}
	return 0;
}

void
jscall_define_globals(duk_context *ctx)
{
	static const duk_function_list_entry fns[] = {
		{ "emit", n_emit, 4 },
		{ "linkTo", n_link_to, 3 },
		{ "copyTo", n_copy_to, 3 },
		{ "linkStreamTo", n_link_stream_to, 3 },
		{ "log", n_log, DUK_VARARGS },
		{ NULL, NULL, 0 },
	};
	duk_push_global_object(ctx);
	duk_put_function_list(ctx, -1, fns);
	duk_pop(ctx);
	duk_push_string(ctx, "<sluice prelude>");
	duk_compile_lstring_filename(
	    ctx, 0, prelude_js, sizeof(prelude_js) - 1);
	duk_call(ctx, 0);
	duk_pop(ctx);
}

/* ---- the callbacks ---- */

enum which { ON, CREATED, DELETED };

typedef struct statecall {
	enum which      which;
	jsproj         *p;
	const sl_event *ev;
	const char     *stream; /* DELETED */
	const char     *key;
	sl_state       *st;
	sl_context     *ctx;
	char            why[512]; /* a host-side failure, or "" */
} statecall;

/* e: the event object a handler gets (EventStoreDB's names). */
static int
push_event(duk_context *ctx, statecall *a)
{
	const sl_host_api *H = a->p->host;
	const char        *json;
	duk_push_object(ctx);
	duk_push_string(ctx, H->event_type(a->ev));
	duk_put_prop_string(ctx, -2, "eventType");
	duk_push_string(ctx, H->event_stream(a->ev));
	duk_put_prop_string(ctx, -2, "streamId");
	duk_push_number(ctx, (double) H->event_revision(a->ev));
	duk_put_prop_string(ctx, -2, "sequenceNumber");
	if (a->key != NULL) { /* NULL: partitionBy() is finding it */
		duk_push_string(ctx, a->key);
		duk_put_prop_string(ctx, -2, "partition");
	}
	duk_push_string(ctx, H->event_id(a->ev));
	duk_put_prop_string(ctx, -2, "eventId");
	duk_push_true(ctx);
	duk_put_prop_string(ctx, -2, "isJson");
	if (H->event_get_json(a->ev, SL_CONTENT, "", &json) != SL_OK) {
		snprintf(a->why, sizeof(a->why), "%s: cannot read the content",
		    a->p->file);
		return -1;
	}
	duk_push_string(ctx, json);
	duk_dup_top(ctx);
	duk_put_prop_string(ctx, -3, "bodyRaw");
	duk_json_decode(ctx, -1);
	duk_dup_top(ctx);
	duk_put_prop_string(ctx, -3, "data");
	duk_put_prop_string(ctx, -2, "body");
	if (H->event_get_json(a->ev, SL_METADATA, "", &json) == SL_OK) {
		duk_push_string(ctx, json);
		duk_json_decode(ctx, -1);
		duk_put_prop_string(ctx, -2, "metadata");
	}
	/* a link event ($includeLinks): its own metadata as linkMetadata
	 * too; null for other events */
	const char *type = H->event_type(a->ev);
	if ((strcmp(type, "$>") == 0 || strcmp(type, "$@") == 0)
	    && H->event_get_json(a->ev, SL_METADATA, "", &json) == SL_OK) {
		duk_push_string(ctx, json);
		duk_json_decode(ctx, -1);
	} else
		duk_push_null(ctx);
	duk_put_prop_string(ctx, -2, "linkMetadata");
	return 0;
}

static const char *
kind_of(duk_context *ctx, duk_idx_t i)
{
	if (duk_is_array(ctx, i))
		return "an array";
	if (duk_is_null(ctx, i))
		return "null";
	if (duk_is_function(ctx, i))
		return "a function";
	switch (duk_get_type(ctx, i)) {
	case DUK_TYPE_UNDEFINED:
		return "undefined";
	case DUK_TYPE_BOOLEAN:
		return "a boolean";
	case DUK_TYPE_NUMBER:
		return "a number";
	case DUK_TYPE_STRING:
		return "a string";
	default:
		return "not an object";
	}
}

/* Store the object at idx as st (the key's state, or the shared one);
 * what names it in the reason. 0, or -1 with a->why set. */
static int
put_state(duk_context *ctx, duk_idx_t idx, statecall *a, sl_state *st,
    const char *what)
{
	const sl_host_api *H = a->p->host;
	if (!duk_is_object(ctx, idx) || duk_is_array(ctx, idx)
	    || duk_is_function(ctx, idx)) {
		snprintf(a->why, sizeof(a->why),
		    "%s: %s gave %s as %s'%s': a state is an object",
		    a->p->file,
		    a->which == CREATED       ? "$init"
		        : a->which == DELETED ? "$deleted"
		                              : H->event_type(a->ev),
		    kind_of(ctx, idx), what, a->key);
		return -1;
	}
	duk_dup(ctx, idx);
	const char *out = duk_json_encode(ctx, -1);
	int         rc  = H->state_put_json(st, "", out);
	duk_pop(ctx);
	if (rc != SL_OK) {
		snprintf(a->why, sizeof(a->why),
		    "%s: %s'%s' was refused (error %d: too big or too deep?)",
		    a->p->file, what, a->key, rc);
		return -1;
	}
	return 0;
}

/* Push the host document st decoded; 0, or -1 with a->why set. */
static int
push_doc(duk_context *ctx, statecall *a, const sl_state *st)
{
	const char *json;
	if (a->p->host->state_get_json(st, "", &json) != SL_OK) {
		snprintf(a->why, sizeof(a->why), "%s: cannot read the state",
		    a->p->file);
		return -1;
	}
	duk_push_string(ctx, json);
	duk_json_decode(ctx, -1);
	return 0;
}

static duk_ret_t
state_body(duk_context *ctx, void *arg)
{
	statecall         *a  = arg;
	const sl_host_api *H  = a->p->host;
	sl_state          *sh = NULL;
	const char        *fn = a->which == ON ? "__sl_on"
	           : a->which == CREATED       ? "__sl_init"
	                                       : "__sl_deleted";
	/* bi-state ($initShared): handlers and $deleted get [state,
	 * shared] */
	if (a->p->bistate) {
		sh = H->shared_state(a->ctx);
		if (sh == NULL) {
			snprintf(a->why, sizeof(a->why),
			    "%s: no shared state here ($initShared is for "
			    "a running projection)",
			    a->p->file);
			return 0;
		}
	}
	duk_get_global_string(ctx, fn);
	if (a->which != CREATED) {
		if (sh != NULL)
			duk_push_array(ctx);
		if (push_doc(ctx, a, a->st) != 0)
			return 0;
		if (sh != NULL) {
			duk_put_prop_index(ctx, -2, 0);
			if (push_doc(ctx, a, sh) != 0)
				return 0;
			duk_put_prop_index(ctx, -2, 1);
		}
	}
	if (a->which == DELETED) {
		duk_push_object(ctx);
		duk_push_string(ctx, a->stream);
		duk_put_prop_string(ctx, -2, "streamId");
		duk_push_string(ctx, a->key);
		duk_put_prop_string(ctx, -2, "partition");
	} else if (push_event(ctx, a) != 0)
		return 0;
	duk_idx_t nargs = a->which == CREATED ? 1 : 2;
	if (a->which == CREATED && sh != NULL) {
		if (push_doc(ctx, a, sh) != 0)
			return 0;
		nargs = 2;
	}
	jsheap_script_begin();
	duk_call(ctx, nargs);
	jsheap_script_end();
	if (sh == NULL) {
		put_state(ctx, -1, a, a->st, "the state of ");
		return 0;
	}
	if (!duk_is_array(ctx, -1) || duk_get_length(ctx, -1) != 2) {
		snprintf(a->why, sizeof(a->why),
		    "%s: %s gave %s for '%s' where a bi-state projection "
		    "keeps [state, shared]",
		    a->p->file,
		    a->which == CREATED       ? "$init"
		        : a->which == DELETED ? "$deleted"
		                              : H->event_type(a->ev),
		    kind_of(ctx, -1), a->key);
		return 0;
	}
	duk_get_prop_index(ctx, -1, 0);
	duk_get_prop_index(ctx, -2, 1);
	if (put_state(ctx, -2, a, a->st, "the state of ") == 0)
		put_state(ctx, -1, a, sh, "the shared state at ");
	return 0;
}

static sl_outcome
run_state(statecall *a, sl_context *ctx)
{
	jsproj *p = a->p;
	char    why[512];
	a->why[0] = '\0';
	a->ctx    = ctx;
	jsheap *h = jsheap_take(p, why, sizeof(why));
	if (h == NULL)
		return p->host->fail_with(ctx, why, false, 0);
	jscall call = { p, a->ev, ctx };
	bool   dead;
	int rc = jsheap_run(h, state_body, a, &call, &dead, why, sizeof(why));
	if (dead)
		jsheap_drop(h);
	else
		jsheap_give(h);
	/* a script's failure is in its code: a retry gives the same, so the
	 * key waits for an operator (`sluice retry` after a fix) */
	if (rc != SL_OK)
		return p->host->fail_with(ctx, why, false, 0);
	if (a->why[0] != '\0')
		return p->host->fail_with(ctx, a->why, false, 0);
	return SL_REPLACE;
}

sl_outcome
jscall_on(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	statecall a
	    = { .which = ON, .p = user, .ev = ev, .key = key, .st = st };
	return run_state(&a, ctx);
}

sl_outcome
jscall_created(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	statecall a
	    = { .which = CREATED, .p = user, .ev = ev, .key = key, .st = st };
	return run_state(&a, ctx);
}

sl_outcome
jscall_deleted(void *user, const char *stream, const char *key, sl_state *st,
    sl_context *ctx)
{
	statecall a = { .which = DELETED,
		.p             = user,
		.stream        = stream,
		.key           = key,
		.st            = st };
	return run_state(&a, ctx);
}

typedef struct keycall {
	statecall sc; /* the event (key NULL) and why */
	char     *buf;
	size_t    len;
	bool      skip; /* partitionBy gave null or undefined */
} keycall;

static duk_ret_t
key_body(duk_context *ctx, void *arg)
{
	keycall *k = arg;
	duk_get_global_string(ctx, "__sl");
	duk_get_prop_string(ctx, -1, "partitionBy");
	if (push_event(ctx, &k->sc) != 0)
		return 0;
	jsheap_script_begin();
	duk_call(ctx, 1);
	jsheap_script_end();
	if (duk_is_null_or_undefined(ctx, -1)) {
		k->skip = true;
		return 0;
	}
	if (!duk_is_string(ctx, -1) && !duk_is_number(ctx, -1)) {
		snprintf(k->sc.why, sizeof(k->sc.why),
		    "%s: partitionBy gave %s for %s: a key is a string",
		    k->sc.p->file, kind_of(ctx, -1),
		    k->sc.p->host->event_type(k->sc.ev));
		return 0;
	}
	const char *key = duk_to_string(ctx, -1);
	size_t      n   = strlen(key);
	if (n == 0 || n >= k->len)
		snprintf(k->sc.why, sizeof(k->sc.why),
		    "%s: partitionBy gave %s key for %s", k->sc.p->file,
		    n == 0 ? "an empty" : "a too long",
		    k->sc.p->host->event_type(k->sc.ev));
	else
		memcpy(k->buf, key, n + 1);
	return 0;
}

/* partitionBy(f): sl_projection.key. */
int
jscall_key(void *user, const sl_event *ev, char *buf, size_t len)
{
	jsproj *p = user;
	keycall k = {
		.sc = { .which = ON, .p = p, .ev = ev }, .buf = buf, .len = len
	};
	char    why[512];
	jsheap *h = jsheap_take(p, why, sizeof(why));
	if (h == NULL) {
		snprintf(buf, len, "%s", why);
		return SL_EPLUGIN;
	}
	jscall call = { p, ev, NULL };
	bool   dead;
	int rc = jsheap_run(h, key_body, &k, &call, &dead, why, sizeof(why));
	if (dead)
		jsheap_drop(h);
	else
		jsheap_give(h);
	if (rc == SL_OK && k.sc.why[0] != '\0') {
		snprintf(why, sizeof(why), "%s", k.sc.why);
		rc = SL_EPLUGIN;
	}
	if (rc != SL_OK) {
		snprintf(buf, len, "%s", why);
		return SL_EPLUGIN;
	}
	return k.skip ? SL_ENOTFOUND : SL_OK;
}

typedef struct resultcall {
	jsproj         *p;
	const char     *key;
	const sl_state *state;
	sl_state       *result;
	bool            none;     /* filtered out, or a null result */
	char            why[512]; /* a host-side failure, or "" */
} resultcall;

static duk_ret_t
result_body(duk_context *ctx, void *arg)
{
	resultcall        *a = arg;
	const sl_host_api *H = a->p->host;
	const char        *json;
	duk_get_global_string(ctx, "__sl_result");
	if (H->state_get_json(a->state, "", &json) != SL_OK) {
		snprintf(a->why, sizeof(a->why), "%s: cannot read the state",
		    a->p->file);
		return 0;
	}
	duk_push_string(ctx, json);
	duk_json_decode(ctx, -1);
	jsheap_script_begin();
	duk_call(ctx, 1);
	jsheap_script_end();
	if (duk_is_null_or_undefined(ctx, -1)) {
		a->none = true;
		return 0;
	}
	if (!duk_is_object(ctx, -1) || duk_is_array(ctx, -1)
	    || duk_is_function(ctx, -1)) {
		snprintf(a->why, sizeof(a->why),
		    "%s: transformBy gave %s as the result of '%s': a result "
		    "is an object",
		    a->p->file, kind_of(ctx, -1), a->key);
		return 0;
	}
	int rc = H->state_put_json(a->result, "", duk_json_encode(ctx, -1));
	if (rc != SL_OK)
		snprintf(a->why, sizeof(a->why),
		    "%s: the result of '%s' was refused (error %d: too big "
		    "or too deep?)",
		    a->p->file, a->key, rc);
	return 0;
}

/*
 * outputState(), transformBy(), filterBy(): the result is the state put
 * through the chain of transforms and filters in their order; a filter
 * that says no, or a transform giving null, means no result (the host
 * writes ResultRemoved after one). A script's failure is SL_FAIL with
 * why ("file:line: Error: ..."): sl_projection.result_reason hands it to
 * the host, which fails the key with it.
 */
sl_outcome
jscall_result_reason(void *user, const char *key, const sl_state *state,
    sl_state *result, char *why, size_t whylen)
{
	jsproj     *p = user;
	const char *json;
	if (p->n_transforms == 0) {
		if (p->host->state_get_json(state, "", &json) != SL_OK
		    || p->host->state_put_json(result, "", json) != SL_OK)
			return SL_DELETE;
		return SL_REPLACE;
	}
	/* the host asks for the result before a key's first event too, of
	 * the initial state {}: a key not created yet has no result (its
	 * script's transforms expect what $init gives) */
	size_t n;
	if (p->host->state_len(state, "", &n) == SL_OK && n == 0)
		return SL_DELETE;
	resultcall a
	    = { .p = p, .key = key, .state = state, .result = result };
	jsheap *h = jsheap_take(p, why, whylen);
	if (h == NULL)
		return SL_FAIL;
	jscall call = { p, NULL, NULL };
	bool   dead;
	int    rc = jsheap_run(h, result_body, &a, &call, &dead, why, whylen);
	if (dead)
		jsheap_drop(h);
	else
		jsheap_give(h);
	if (rc == SL_OK && a.why[0] != '\0') {
		snprintf(why, whylen, "%s", a.why);
		rc = SL_EPLUGIN;
	}
	if (rc != SL_OK)
		return SL_FAIL;
	return a.none ? SL_DELETE : SL_REPLACE;
}

/* The result transform for a host without result_reason: the script's
 * reason only in the log, the key fails as "... returned 2". */
sl_outcome
jscall_result(
    void *user, const char *key, const sl_state *state, sl_state *result)
{
	jsproj    *p        = user;
	char       why[512] = "";
	sl_outcome o
	    = jscall_result_reason(user, key, state, result, why, sizeof(why));
	if (o == SL_FAIL) {
		char line[600];
		snprintf(line, sizeof(line), "%s (key '%s')", why, key);
		p->host->log(SL_LOG_ERROR, line);
	}
	return o;
}
