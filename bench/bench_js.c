/*
 * The JavaScript engines for issue 16, in process, no daemon: the same two
 * ES5 projections (a counter, Account Details) run in Duktape and in MuJS
 * over N generated events, and the same folds in plain C for the ratio.
 * It also runs a small ES5.1 conformance script in each engine.
 *
 * Three ways a host can hand events to a script, each measured:
 *   rt     state as JSON text per key outside the engine (what a host
 *          storing documents does when it keeps nothing in the engine):
 *          JSON.parse(state), JSON.parse(event), call, JSON.stringify
 *   json   state kept as an engine object per key between events; the
 *          event handed as JSON text and parsed by the engine's JSON.parse
 *   obj    state kept in the engine; the event built as an object by the
 *          host through the engine's C API (from already decoded fields)
 * The C baseline does rt and json with jansson (parse the event and, for
 * rt, the state; dump the state) and keeps C structs for "obj".
 *
 * Output: "key value" lines (bench_out), events/s, median of --runs.
 */
#include <duktape.h>
#include <jansson.h>
#include <mujs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

enum { EV_OPENED, EV_DEPOSITED, EV_WITHDRAWN, EV_COUNTED };
static const char *const type_names[]
    = { "AccountOpened", "Deposited", "Withdrawn", "Counted" };

typedef struct bev {
	int   type;
	int   acct; /* the key: account index (counting: 0) */
	int   amount;
	int   seq;
	char  stream[32];
	char *json; /* {"eventType","streamId","sequenceNumber","data"} */
} bev;

/* ---- the scripts (ES5) ---- */

/* The host glue every mode shares: a dispatcher as a projection host
 * would have it (handler by type, else $any; undefined keeps the state). */
static const char glue_js[]
    = "var states = {};\n"
      "function handle(s, e) {\n"
      "  var h = proj[e.eventType] || proj.$any;\n"
      "  if (!h) return s;\n"
      "  var r = h(s, e);\n"
      "  return r === undefined ? s : r;\n"
      "}\n"
      "function init() { return proj.$init ? proj.$init() : {}; }\n"
      "function step_rt(st, ev) {\n"
      "  var s = st === null ? init() : JSON.parse(st);\n"
      "  return JSON.stringify(handle(s, JSON.parse(ev)));\n"
      "}\n"
      "function step_obj(key, e) {\n"
      "  var s = states[key];\n"
      "  if (s === undefined) s = init();\n"
      "  states[key] = handle(s, e);\n"
      "}\n"
      "function step_json(key, ev) { step_obj(key, JSON.parse(ev)); }\n"
      "function get_state(key) { return JSON.stringify(states[key]); }\n";

static const char count_js[]
    = "var proj = {\n"
      "  $init: function () { return { count: 0 }; },\n"
      "  $any: function (s, e) { s.count += 1; }\n"
      "};\n";

static const char account_js[]
    = "var proj = {\n"
      "  $init: function () { return { balance: 0, ops: 0 }; },\n"
      "  AccountOpened: function (s, e) {\n"
      "    s.account = e.data.account; s.name = e.data.name;\n"
      "    s.open = true; s.balance = 0;\n"
      "  },\n"
      "  Deposited: function (s, e) { s.balance += e.data.amount; s.ops++; "
      "},\n"
      "  Withdrawn: function (s, e) {\n"
      "    if (s.balance >= e.data.amount) s.balance -= e.data.amount;\n"
      "    else s.rejected = (s.rejected || 0) + 1;\n"
      "    s.ops++;\n"
      "  }\n"
      "};\n";

/* Each test returns true or throws; the result is one line per test. */
static const char conform_js[]
    = "var conform_result = (function () {\n"
      "var t = {\n"
      " json: function () { var o = "
      "JSON.parse('{\"a\":[1,2,{\"b\":null}],\"c\":\"x\\\\u00e9\"}');"
      "   return JSON.stringify(o) === "
      "'{\"a\":[1,2,{\"b\":null}],\"c\":\"x\\u00e9\"}'"
      "     && JSON.stringify({u: undefined, d: 1}) === '{\"d\":1}'; },\n"
      " json_reviver_indent: function () { return JSON.parse('{\"a\":1}', "
      "function (k, v) {"
      "   return k === 'a' ? v + 1 : v; }).a === 2 && JSON.stringify([1], "
      "null, 1) === '[\\n 1\\n]'; },\n"
      " array_iter: function () { var a = [1, 2, 3], s = 0; "
      "a.forEach(function (x) { s += x; });"
      "   return s === 6 && a.map(function (x) { return x * 2; })[2] === 6"
      "     && a.filter(function (x) { return x > 1; }).length === 2"
      "     && a.reduce(function (p, x) { return p + x; }, 0) === 6"
      "     && a.reduceRight(function (p, x) { return p + x; }) === 6"
      "     && a.some(function (x) { return x === 2; }) && a.every(function "
      "(x) { return x > 0; })"
      "     && a.indexOf(3) === 2 && a.lastIndexOf(1) === 0 && "
      "Array.isArray(a); },\n"
      " object: function () { var o = Object.create({p: 1}); o.q = 2;"
      "   Object.defineProperty(o, 'h', {value: 3, enumerable: false});"
      "   var f = Object.freeze({z: 1});"
      "   return Object.keys(o).join() === 'q' && "
      "Object.getOwnPropertyNames(o).length === 2"
      "     && o.p === 1 && Object.isFrozen(f) && Object.getPrototypeOf(o).p "
      "=== 1; },\n"
      " getters: function () { var o = { _v: 1, get v() { return this._v * "
      "10; },"
      "   set v(x) { this._v = x; } }; o.v = 4; return o.v === 40; },\n"
      " strict: function () { 'use strict'; var thisv = (function () { return "
      "this; })();"
      "   var threw = false; try { undeclared_x = 1; } catch (e) { threw = e "
      "instanceof ReferenceError; }"
      "   return thisv === undefined && threw; },\n"
      " date: function () { var d = new Date(Date.UTC(2024, 1, 29, 12, 30, "
      "0));"
      "   return d.toISOString() === '2024-02-29T12:30:00.000Z' && typeof "
      "Date.now() === 'number'"
      "     && new Date('2024-02-29T12:30:00Z').getTime() === d.getTime()"
      "     && JSON.stringify(d) === '\"2024-02-29T12:30:00.000Z\"'; },\n"
      " string: function () { return '  x '.trim() === 'x' && "
      "'a,b'.split(',').length === 2"
      "   && 'abc'.charAt(1) === 'b' && 'x'.concat('y') === 'xy'; },\n"
      " annexb_substr: function () { return 'abc'.substr(1, 1) === 'b'; },\n"
      " bind: function () { var f = function (a, b) { return this.k + a + b; "
      "}.bind({k: 1}, 2);"
      "   return f(3) === 6; },\n"
      " regexp: function () { var m = /(\\d+)-(\\w+)/.exec('acc 42-xyz');"
      "   return m[1] === '42' && 'a1b2'.replace(/\\d/g, '#') === 'a#b#'; },\n"
      " numbers: function () { return (1.005).toFixed(1) === '1.0' && "
      "parseInt('ff', 16) === 255"
      "   && (255).toString(16) === 'ff' && isNaN(NaN) && Math.max(1, 3) === "
      "3; },\n"
      " errors: function () { try { null.x; } catch (e) { return e instanceof "
      "TypeError; } },\n"
      " es2015_arrow_let: function () { return eval('(function(){ let a = "
      "[1].map(x => x + 1); return a[0]; })()') === 2; },\n"
      " es2015_template: function () { return eval('`a${1}`') === 'a1'; }\n"
      "};\n"
      "var out = [];\n"
      "for (var k in t) { var r; try { r = t[k]() ? 'ok' : 'wrong'; }"
      "  catch (e) { r = 'throws ' + String(e).split('\\n')[0]; } out.push(k "
      "+ ': ' + r); }\n"
      "return out.join('\\n');\n"
      "})()";

/* ---- events ---- */

static void
gen_events(bev *evs, size_t n, size_t accounts, bool counting)
{
	int     *seq = calloc(accounts, sizeof(int));
	uint32_t r   = 12345;
	for (size_t i = 0; i < n; i++) {
		bev *e  = &evs[i];
		r       = r * 1103515245u + 12345u;
		e->acct = counting ? 0 : (int) ((r >> 8) % accounts);
		e->seq  = seq[e->acct]++;
		if (counting)
			e->type = EV_COUNTED;
		else if (e->seq == 0)
			e->type = EV_OPENED;
		else
			e->type = (r >> 20) % 3 ? EV_DEPOSITED : EV_WITHDRAWN;
		e->amount = (int) ((r >> 4) % 500) + 1;
		snprintf(e->stream, sizeof(e->stream), "%s-%d",
		    counting ? "counter" : "account", e->acct);
		char data[128];
		if (e->type == EV_OPENED)
			snprintf(data, sizeof(data),
			    "{\"account\":\"%s\",\"name\":\"Account %d\"}",
			    e->stream, e->acct);
		else
			snprintf(
			    data, sizeof(data), "{\"amount\":%d}", e->amount);
		size_t len = strlen(data) + 160;
		e->json    = malloc(len);
		snprintf(e->json, len,
		    "{\"eventType\":\"%s\",\"streamId\":\"%s\","
		    "\"sequenceNumber\":%d,\"data\":%s}",
		    type_names[e->type], e->stream, e->seq, data);
	}
	free(seq);
}

/* A key's state as JSON text (mode rt), owned here. */
static void
set_text(char **slot, const char *s)
{
	size_t len = strlen(s) + 1;
	*slot      = realloc(*slot, len);
	memcpy(*slot, s, len);
}

/* ---- Duktape ---- */

static void
duk_fatal_cb(void *udata, const char *msg)
{
	(void) udata;
	bench_die("duktape fatal: %s", msg);
}

static duk_context *
duk_open(const char *proj)
{
	duk_context *ctx
	    = duk_create_heap(NULL, NULL, NULL, NULL, duk_fatal_cb);
	if (duk_peval_string(ctx, proj) != 0
	    || duk_peval_string(ctx, glue_js) != 0)
		bench_die("duktape: %s", duk_safe_to_string(ctx, -1));
	duk_pop(ctx);
	return ctx;
}

static void
duk_call_or_die(duk_context *ctx, int nargs)
{
	if (duk_pcall(ctx, nargs) != DUK_EXEC_SUCCESS)
		bench_die("duktape: %s", duk_safe_to_string(ctx, -1));
}

static void
duk_push_event(duk_context *ctx, const bev *e)
{
	duk_push_object(ctx);
	duk_push_string(ctx, type_names[e->type]);
	duk_put_prop_string(ctx, -2, "eventType");
	duk_push_string(ctx, e->stream);
	duk_put_prop_string(ctx, -2, "streamId");
	duk_push_int(ctx, e->seq);
	duk_put_prop_string(ctx, -2, "sequenceNumber");
	duk_push_object(ctx);
	if (e->type == EV_OPENED) {
		duk_push_string(ctx, e->stream);
		duk_put_prop_string(ctx, -2, "account");
		duk_push_sprintf(ctx, "Account %d", e->acct);
		duk_put_prop_string(ctx, -2, "name");
	} else {
		duk_push_int(ctx, e->amount);
		duk_put_prop_string(ctx, -2, "amount");
	}
	duk_put_prop_string(ctx, -2, "data");
}

/* Runs one mode; returns the ns taken, and the state of key 0 in *st0. */
static uint64_t
run_duk(const char *proj, const char *mode, const bev *evs, size_t n,
    size_t keys, char **st0)
{
	duk_context *ctx   = duk_open(proj);
	char       **texts = calloc(keys, sizeof(char *));
	uint64_t     t0    = bench_now_ns();
	for (size_t i = 0; i < n; i++) {
		const bev *e = &evs[i];
		if (mode[0] == 'r') {
			duk_get_global_string(ctx, "step_rt");
			if (texts[e->acct])
				duk_push_string(ctx, texts[e->acct]);
			else
				duk_push_null(ctx);
			duk_push_string(ctx, e->json);
			duk_call_or_die(ctx, 2);
			set_text(&texts[e->acct], duk_get_string(ctx, -1));
		} else if (mode[0] == 'j') {
			duk_get_global_string(ctx, "step_json");
			duk_push_int(ctx, e->acct);
			duk_push_string(ctx, e->json);
			duk_call_or_die(ctx, 2);
		} else {
			duk_get_global_string(ctx, "step_obj");
			duk_push_int(ctx, e->acct);
			duk_push_event(ctx, e);
			duk_call_or_die(ctx, 2);
		}
		duk_pop(ctx);
	}
	uint64_t ns = bench_now_ns() - t0;
	if (mode[0] == 'r') {
		*st0 = texts[0] ? strdup(texts[0]) : NULL;
	} else {
		duk_get_global_string(ctx, "get_state");
		duk_push_int(ctx, 0);
		duk_call_or_die(ctx, 1);
		*st0 = strdup(duk_get_string(ctx, -1));
		duk_pop(ctx);
	}
	for (size_t k = 0; k < keys; k++)
		free(texts[k]);
	free(texts);
	duk_destroy_heap(ctx);
	return ns;
}

/* ---- MuJS ---- */

static js_State *
mujs_open(const char *proj)
{
	js_State *J = js_newstate(NULL, NULL, 0);
	if (js_dostring(J, proj) != 0 || js_dostring(J, glue_js) != 0)
		bench_die("mujs: cannot load the script");
	return J;
}

static void
mujs_call_or_die(js_State *J, int nargs)
{
	if (js_pcall(J, nargs) != 0)
		bench_die("mujs: %s", js_trystring(J, -1, "?"));
}

static void
mujs_push_event(js_State *J, const bev *e)
{
	js_newobject(J);
	js_pushstring(J, type_names[e->type]);
	js_setproperty(J, -2, "eventType");
	js_pushstring(J, e->stream);
	js_setproperty(J, -2, "streamId");
	js_pushnumber(J, e->seq);
	js_setproperty(J, -2, "sequenceNumber");
	js_newobject(J);
	if (e->type == EV_OPENED) {
		char name[32];
		snprintf(name, sizeof(name), "Account %d", e->acct);
		js_pushstring(J, e->stream);
		js_setproperty(J, -2, "account");
		js_pushstring(J, name);
		js_setproperty(J, -2, "name");
	} else {
		js_pushnumber(J, e->amount);
		js_setproperty(J, -2, "amount");
	}
	js_setproperty(J, -2, "data");
}

static uint64_t
run_mujs(const char *proj, const char *mode, const bev *evs, size_t n,
    size_t keys, char **st0)
{
	js_State *J     = mujs_open(proj);
	char    **texts = calloc(keys, sizeof(char *));
	uint64_t  t0    = bench_now_ns();
	for (size_t i = 0; i < n; i++) {
		const bev *e = &evs[i];
		if (mode[0] == 'r') {
			js_getglobal(J, "step_rt");
			js_pushundefined(J); /* this */
			if (texts[e->acct])
				js_pushstring(J, texts[e->acct]);
			else
				js_pushnull(J);
			js_pushstring(J, e->json);
			mujs_call_or_die(J, 2);
			set_text(&texts[e->acct], js_tostring(J, -1));
		} else if (mode[0] == 'j') {
			js_getglobal(J, "step_json");
			js_pushundefined(J);
			js_pushnumber(J, e->acct);
			js_pushstring(J, e->json);
			mujs_call_or_die(J, 2);
		} else {
			js_getglobal(J, "step_obj");
			js_pushundefined(J);
			js_pushnumber(J, e->acct);
			mujs_push_event(J, e);
			mujs_call_or_die(J, 2);
		}
		js_pop(J, 1);
	}
	uint64_t ns = bench_now_ns() - t0;
	if (mode[0] == 'r') {
		*st0 = texts[0] ? strdup(texts[0]) : NULL;
	} else {
		js_getglobal(J, "get_state");
		js_pushundefined(J);
		js_pushnumber(J, 0);
		mujs_call_or_die(J, 1);
		*st0 = strdup(js_tostring(J, -1));
		js_pop(J, 1);
	}
	for (size_t k = 0; k < keys; k++)
		free(texts[k]);
	free(texts);
	js_freestate(J);
	return ns;
}

/* ---- plain C ---- */

typedef struct cstate {
	bool    opened, open;
	char    account[32], name[32];
	int64_t balance, ops, rejected, count;
} cstate;

static void
c_fold(
    cstate *s, int type, const char *account, const char *name, int64_t amount)
{
	switch (type) {
	case EV_COUNTED:
		s->count++;
		break;
	case EV_OPENED:
		snprintf(s->account, sizeof(s->account), "%s", account);
		snprintf(s->name, sizeof(s->name), "%s", name);
		s->open = s->opened = true;
		s->balance          = 0;
		break;
	case EV_DEPOSITED:
		s->balance += amount;
		s->ops++;
		break;
	default:
		if (s->balance >= amount)
			s->balance -= amount;
		else
			s->rejected++;
		s->ops++;
	}
}

static int
type_of(const char *t)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(t, type_names[i]) == 0)
			return i;
	return -1;
}

/* The event as a host would hand it to a C fold: parsed from JSON. */
static void
c_event(
    const char *json, int *type, char *account, char *name, int64_t *amount)
{
	json_t *ev   = json_loads(json, 0, NULL);
	json_t *data = json_object_get(ev, "data");
	*type = type_of(json_string_value(json_object_get(ev, "eventType")));
	const char *a  = json_string_value(json_object_get(data, "account"));
	const char *nm = json_string_value(json_object_get(data, "name"));
	snprintf(account, 32, "%s", a ? a : "");
	snprintf(name, 32, "%s", nm ? nm : "");
	*amount = json_integer_value(json_object_get(data, "amount"));
	json_decref(ev);
}

static json_t *
c_state_json(const cstate *s, bool counting)
{
	if (counting)
		return json_pack("{sI}", "count", (json_int_t) s->count);
	json_t *o = json_pack("{sIsI}", "balance", (json_int_t) s->balance,
	    "ops", (json_int_t) s->ops);
	if (s->opened) {
		json_object_set_new(o, "account", json_string(s->account));
		json_object_set_new(o, "name", json_string(s->name));
		json_object_set_new(o, "open", json_true());
	}
	if (s->rejected)
		json_object_set_new(o, "rejected", json_integer(s->rejected));
	return o;
}

static void
c_state_load(cstate *s, const char *text)
{
	memset(s, 0, sizeof(*s));
	if (!text)
		return;
	json_t *o      = json_loads(text, 0, NULL);
	s->count       = json_integer_value(json_object_get(o, "count"));
	s->balance     = json_integer_value(json_object_get(o, "balance"));
	s->ops         = json_integer_value(json_object_get(o, "ops"));
	s->rejected    = json_integer_value(json_object_get(o, "rejected"));
	const char *a  = json_string_value(json_object_get(o, "account"));
	const char *nm = json_string_value(json_object_get(o, "name"));
	if (a) {
		s->opened = s->open = true;
		snprintf(s->account, sizeof(s->account), "%s", a);
		snprintf(s->name, sizeof(s->name), "%s", nm ? nm : "");
	}
	json_decref(o);
}

static uint64_t
run_c(bool counting, const char *mode, const bev *evs, size_t n, size_t keys,
    char **st0)
{
	cstate  *states = calloc(keys, sizeof(cstate));
	char   **texts  = calloc(keys, sizeof(char *));
	uint64_t t0     = bench_now_ns();
	for (size_t i = 0; i < n; i++) {
		const bev *e = &evs[i];
		int        type;
		char       account[32], name[32];
		int64_t    amount;
		if (mode[0] == 'o') {
			/* decoded fields, state kept as a struct */
			snprintf(name, sizeof(name), "Account %d", e->acct);
			c_fold(&states[e->acct], e->type, e->stream, name,
			    e->amount);
			continue;
		}
		c_event(e->json, &type, account, name, &amount);
		if (mode[0] == 'j') {
			c_fold(&states[e->acct], type, account, name, amount);
			continue;
		}
		cstate s;
		c_state_load(&s, texts[e->acct]);
		c_fold(&s, type, account, name, amount);
		json_t *o    = c_state_json(&s, counting);
		char   *text = json_dumps(o, JSON_COMPACT);
		free(texts[e->acct]);
		texts[e->acct] = text;
		json_decref(o);
	}
	uint64_t ns = bench_now_ns() - t0;
	if (mode[0] == 'r') {
		*st0 = texts[0] ? strdup(texts[0]) : NULL;
	} else {
		json_t *o = c_state_json(&states[0], counting);
		*st0      = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(o);
	}
	for (size_t k = 0; k < keys; k++)
		free(texts[k]);
	free(texts);
	free(states);
	return ns;
}

/* ---- main ---- */

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
	return x < y ? -1 : x > y;
}

/* The balance of a state's JSON text, to check every engine folded the
 * same (key order differs between engines and jansson). */
static long long
num_of(const char *json, const char *key)
{
	char pat[40];
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	const char *p = json ? strstr(json, pat) : NULL;
	return p ? atoll(p + strlen(pat)) : -1;
}

int
main(int argc, char **argv)
{
	size_t n = 200000, runs = 5, accounts = 1000;
	bool   conform = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--events") == 0 && i + 1 < argc)
			n = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
			runs = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--conformance") == 0)
			conform = true;
		else
			bench_die("usage: bench_js [--events N] [--runs R] "
			          "[--conformance]");
	}
	if (runs == 0 || runs > 99 || n == 0)
		bench_die("bench_js: bad --events or --runs");

	if (conform) {
		duk_context *ctx
		    = duk_create_heap(NULL, NULL, NULL, NULL, duk_fatal_cb);
		if (duk_peval_string(ctx, conform_js) != 0)
			bench_die("duktape: %s", duk_safe_to_string(ctx, -1));
		duk_pop(ctx);
		duk_get_global_string(ctx, "conform_result");
		printf("# duktape %ld\n%s\n", (long) DUK_VERSION,
		    duk_get_string(ctx, -1));
		duk_destroy_heap(ctx);
		js_State *J = js_newstate(NULL, NULL, 0);
		if (js_dostring(J, conform_js) != 0)
			bench_die("mujs: cannot run the conformance script");
		js_getglobal(J, "conform_result");
		printf("# mujs 1.3.2\n%s\n", js_tostring(J, -1));
		js_freestate(J);
		return 0;
	}

	static const char *const modes[] = { "rt", "json", "obj" };
	for (int p = 0; p < 2; p++) {
		bool        counting = p == 0;
		const char *pname    = counting ? "count" : "account";
		size_t      keys     = counting ? 1 : accounts;
		bev        *evs      = calloc(n, sizeof(bev));
		gen_events(evs, n, keys, counting);
		char proj[2048];
		snprintf(proj, sizeof(proj), "%s",
		    counting ? count_js : account_js);
		for (int m = 0; m < 3; m++) {
			const char *engines[] = { "c", "duktape", "mujs" };
			double      rate[3];
			long long   check[3];
			for (int en = 0; en < 3; en++) {
				uint64_t t[99];
				char    *st0 = NULL;
				for (size_t r = 0; r < runs; r++) {
					free(st0);
					st0  = NULL;
					t[r] = en == 0
					    ? run_c(counting, modes[m], evs, n,
					        keys, &st0)
					    : en == 1
					    ? run_duk(proj, modes[m], evs, n,
					        keys, &st0)
					    : run_mujs(proj, modes[m], evs, n,
					        keys, &st0);
				}
				qsort(t, runs, sizeof(t[0]), cmp_u64);
				rate[en]
				    = (double) n * 1e9 / (double) t[runs / 2];
				check[en] = num_of(
				    st0, counting ? "count" : "balance");
				free(st0);
				bench_outf(rate[en], "%s_%s_%s_events_per_s",
				    pname, modes[m], engines[en]);
			}
			if (check[0] != check[1] || check[0] != check[2])
				bench_die("%s %s: states differ: c %lld, "
				          "duktape %lld, mujs %lld",
				    pname, modes[m], check[0], check[1],
				    check[2]);
			bench_outf(rate[1] / rate[0], "%s_%s_duktape_per_c",
			    pname, modes[m]);
			bench_outf(rate[2] / rate[0], "%s_%s_mujs_per_c",
			    pname, modes[m]);
		}
		for (size_t i = 0; i < n; i++)
			free(evs[i].json);
		free(evs);
	}
	return 0;
}
