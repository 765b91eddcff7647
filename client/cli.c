/*
 * The `sluice` command: commit, delete-stream, read (the log, a stream, a
 * filter's stream), get-one, get-all, query (one-time, or transient with
 * --follow), status, subscribe and the operator commands (reset, retry,
 * pause, resume, start, stop) against a running sluiced, through the
 * client library; JSON out on stdout. `spec` runs a projection against a
 * spec file in process, without a daemon (spec.c).
 * The endpoint comes from --url, $SLUICE_URL or the config file's
 * endpoints.api; TLS (a tls+tcp:// endpoint) from --tls-* or $SLUICE_TLS_*.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include <sluice/client.h>
#include <sluice/subscribe.h>

#include "auth.h"
#include "config.h"
#include "cli_help.h"
#include "spec.h"

enum {
	EXIT_USAGE = 1, /* bad arguments or input */
	EXIT_REPLY = 2, /* the daemon answered with an error */
	EXIT_NET   = 3, /* cannot reach the daemon, or it timed out */
	/* (4: spec, a difference) the daemon's log of record (PostgreSQL)
	 * cannot be reached: nothing written, retry later */
	EXIT_UNAVAILABLE = 5,
};

/* Options of all commands; which apply is checked per command. */
typedef struct opts {
	const char *url, *config, *timeout, *token, *token_file;
	const char *tls_ca, *tls_cert, *tls_key, *tls_server_name;
	const char *tenant, *stream, *expect, *type, *metadata, *correlation;
	const char *from, *max, *from_revision, *projection;
	const char *count, *idle_ms, *pub_url;
	const char *filter, *partition, *key, *truncate_before;
	const char *js_host, *plugin, *js;
	const char *command; /* the command's name (argv) */
	bool        is_public, batch, follow, resolve_links, wait;
	const char *pos[4];
	int         n_pos;
} opts;

static int open_client(const opts *o, uint64_t timeout, sl_client **out);
static int fail(int status, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(int status, int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "sluice: %s: ", sl_errname(code));
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return status;
}

static int usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static int
usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "sluice: EINVAL: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(sluice --help for usage)\n");
	return EXIT_USAGE;
}

/* The exit status for a failed client call. */
static int
call_failed(sl_client *c, int rc)
{
	int status = (rc == SL_ENET || rc == SL_ETIMEDOUT || rc == SL_ECLOSED)
	    ? EXIT_NET
	    : rc == SL_EUNAVAILABLE ? EXIT_UNAVAILABLE
	                            : EXIT_REPLY;
	return fail(status, rc, "%s", sl_client_last_error(c));
}

static bool
parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (s == NULL || s[0] < '0' || s[0] > '9')
		return false;
	errno = 0;
	*out  = strtoull(s, &end, 10);
	return errno == 0 && *end == '\0';
}

/* Read a whole file (or stdin for NULL / "-") into a string; its length
 * (which a NUL byte in it does not end) in *len_out when not NULL. */
static char *
read_all_n(const char *path, size_t *len_out)
{
	FILE  *f   = (path == NULL || strcmp(path, "-") == 0) ? stdin
	                                                      : fopen(path, "r");
	char  *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (f == NULL)
		return NULL;
	for (;;) {
		if (cap - len < 4096) {
			char *p = realloc(buf, cap = cap * 2 + 8192);
			if (p == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = p;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
	}
	if (buf != NULL) {
		if (ferror(f)) {
			free(buf);
			buf = NULL;
		} else {
			buf[len] = '\0';
			if (len_out != NULL)
				*len_out = len;
		}
	}
	if (f != stdin)
		fclose(f);
	return buf;
}

static char *
read_all(const char *path)
{
	return read_all_n(path, NULL);
}

/* ---- timestamps: RFC 3339 UTC next to nanoseconds ---- */

/* Nanoseconds since the epoch between 2000 and 2200: a wall-clock time
 * (monotonic ones, e.g. since boot, are far smaller). */
static bool
wall_ns(long long ns)
{
	return ns >= 946684800000000000LL && ns < 7258118400000000000LL;
}

/* ns as "2026-12-07T02:04:38.633211456Z" into out (size >= 40). */
static void
rfc3339(long long ns, char *out, size_t size)
{
	time_t    sec = (time_t) (ns / 1000000000LL);
	struct tm tm;
	gmtime_r(&sec, &tm);
	snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, ns % 1000000000LL);
}

/* Beside each wall-clock nanosecond field of j ("occurred", "*_ns"), its
 * RFC 3339 UTC string: "occurred_utc", "registered_at_utc". */
static void
add_utc(json_t *j)
{
	if (json_is_array(j)) {
		for (size_t i = 0; i < json_array_size(j); i++)
			add_utc(json_array_get(j, i));
		return;
	}
	if (!json_is_object(j))
		return;
	const char *key;
	json_t     *v;
	void       *tmp;
	json_t     *add = json_object();
	json_object_foreach_safe(j, tmp, key, v)
	{
		size_t kl = strlen(key);
		bool   ns = strcmp(key, "occurred") == 0
		    || (kl > 3 && strcmp(key + kl - 3, "_ns") == 0);
		if (ns && json_is_integer(v) && wall_ns(json_integer_value(v))) {
			char name[256], when[48];
			snprintf(name, sizeof(name), "%.*s_utc",
			    (int) (strcmp(key, "occurred") == 0 ? kl : kl - 3),
			    key);
			rfc3339(json_integer_value(v), when, sizeof(when));
			json_object_set_new(add, name, json_string(when));
		} else {
			add_utc(v);
		}
	}
	json_object_update(j, add);
	json_decref(add);
}

/* An event's JSON line (as the client library gives it: the wire form's
 * keys in order, "occurred" before metadata and content, so the first
 * "occurred" key is the event's) with "occurred_utc" after it. */
static int
print_event(const char *json)
{
	const char *k = strstr(json, "\"occurred\":");
	if (k == NULL)
		return puts(json);
	const char *num = k + 11;
	char       *end;
	long long   ns = strtoll(num, &end, 10);
	if (end == num || !wall_ns(ns))
		return puts(json);
	char when[48];
	rfc3339(ns, when, sizeof(when));
	return printf("%.*s,\"occurred_utc\":\"%s\"%s\n",
	    (int) (end - json), json, when, end);
}

static void
print_json(json_t *j, size_t flags)
{
	add_utc(j);
	char *s = json_dumps(j, flags | JSON_ENCODE_ANY);
	if (s != NULL) {
		puts(s);
		free(s);
	}
}

/* ---- argument parsing ---- */

typedef struct optdef {
	const char *name;
	size_t      off;    /* of the const char * field, or of the bool */
	bool        flag;   /* takes no value */
	bool        global; /* goes with every command, also before it */
} optdef;

#define OPT(n, f)                                                             \
	{                                                                     \
		n, offsetof(opts, f), false, false                            \
	}
#define FLAG(n, f)                                                            \
	{                                                                     \
		n, offsetof(opts, f), true, false                             \
	}
#define GLOBAL(n, f)                                                          \
	{                                                                     \
		n, offsetof(opts, f), false, true                             \
	}

static const optdef optdefs[] = {
	GLOBAL("url", url),
	GLOBAL("config", config),
	GLOBAL("timeout", timeout),
	GLOBAL("token", token),
	GLOBAL("token-file", token_file),
	GLOBAL("tls-ca", tls_ca),
	GLOBAL("tls-cert", tls_cert),
	GLOBAL("tls-key", tls_key),
	GLOBAL("tls-server-name", tls_server_name),
	OPT("tenant", tenant),
	OPT("stream", stream),
	OPT("expect", expect),
	OPT("type", type),
	OPT("metadata", metadata),
	OPT("correlation-id", correlation),
	OPT("from", from),
	OPT("max", max),
	OPT("from-revision", from_revision),
	OPT("projection", projection),
	OPT("count", count),
	OPT("idle-ms", idle_ms),
	OPT("pub-url", pub_url),
	OPT("filter", filter),
	OPT("partition", partition),
	OPT("key", key),
	OPT("truncate-before", truncate_before),
	OPT("js-host", js_host),
	OPT("plugin", plugin),
	OPT("js", js),
	FLAG("public", is_public),
	FLAG("batch", batch),
	FLAG("follow", follow),
	FLAG("resolve-links", resolve_links),
	FLAG("wait", wait),
};

/*
 * Parse --name VALUE / --name=VALUE / --flag and positionals from argv[i]
 * on. With globals_only, stop at the first positional (the command).
 * @return the index reached, or -1 after printing a usage error.
 */
static int
parse_args(int argc, char **argv, int i, bool globals_only, opts *o)
{
	for (; i < argc; i++) {
		const char *a = argv[i], *eq;
		size_t      n;
		size_t      k;

		if (strcmp(a, "--") == 0) {
			for (i++; i < argc && !globals_only; i++) {
				if (o->n_pos == 4) {
					usage_error("too many arguments");
					return -1;
				}
				o->pos[o->n_pos++] = argv[i];
			}
			return i;
		}
		if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
			if (globals_only)
				return i;
			if (o->n_pos == 4) {
				usage_error("too many arguments: '%s'", a);
				return -1;
			}
			o->pos[o->n_pos++] = a;
			continue;
		}
		a += 2;
		eq = strchr(a, '=');
		n  = eq != NULL ? (size_t) (eq - a) : strlen(a);
		for (k = 0; k < sizeof(optdefs) / sizeof(optdefs[0]); k++)
			if (strlen(optdefs[k].name) == n
			    && strncmp(optdefs[k].name, a, n) == 0)
				break;
		/* The global options are also accepted after the
		 * command; whether a command takes the others is checked
		 * once they are all parsed (options_belong). */
		if (k == sizeof(optdefs) / sizeof(optdefs[0])
		    || (globals_only && !optdefs[k].global)) {
			usage_error("unknown option '%s'%s", argv[i],
			    globals_only ? " before the command" : "");
			return -1;
		}
		if (optdefs[k].flag) {
			if (eq != NULL) {
				usage_error("option '--%s' takes no value",
				    optdefs[k].name);
				return -1;
			}
			*(bool *) ((char *) o + optdefs[k].off) = true;
			continue;
		}
		if (eq == NULL && i + 1 >= argc) {
			usage_error(
			    "option '--%s' needs a value", optdefs[k].name);
			return -1;
		}
		*(const char **) ((char *) o + optdefs[k].off)
		    = eq != NULL ? eq + 1 : argv[++i];
	}
	return i;
}

/* Every option given that is not global must be one of the command's.
 * @return 0, or EXIT_USAGE after printing which does not belong. */
static int
options_belong(const opts *o, const cli_help *h)
{
	for (size_t k = 0; k < sizeof(optdefs) / sizeof(optdefs[0]); k++) {
		const optdef *d = &optdefs[k];
		const char   *f = (const char *) o + d->off;
		bool set = d->flag ? *(const bool *) f
		                   : *(const char *const *) f != NULL;
		if (set && !d->global && !cli_help_allows(h, d->name)) {
			fprintf(stderr,
			    "sluice: EINVAL: option '--%s' does not go with "
			    "%s\n(sluice help %s for its options)\n",
			    d->name, h->name, h->name);
			return EXIT_USAGE;
		}
	}
	return 0;
}

/* ---- endpoint ---- */

static int
find_url(const opts *o, char **url)
{
	const char *path = o->config;
	sl_config  *cfg;
	char        err[512];

	*url = NULL;
	if (o->url != NULL) {
		*url = strdup(o->url);
		return 0;
	}
	if (getenv("SLUICE_URL") != NULL && getenv("SLUICE_URL")[0] != '\0') {
		*url = strdup(getenv("SLUICE_URL"));
		return 0;
	}
	if (path == NULL && access("resources.yaml", F_OK) == 0)
		path = "resources.yaml";
	if (path == NULL)
		return usage_error("no endpoint: give --url URL, set "
		                   "SLUICE_URL, or --config FILE");
	if (config_load(path, &cfg, err, sizeof(err)) != 0)
		return fail(EXIT_USAGE, SL_ECONFIG, "%s", err);
	*url = strdup(cfg->api_url);
	config_free(cfg);
	return 0;
}

/* A flag, else the environment variable; NULL if neither (or ""). */
static const char *
opt_or_env(const char *opt, const char *env)
{
	const char *v = opt != NULL ? opt : getenv(env);
	return v != NULL && v[0] != '\0' ? v : NULL;
}

/* The TLS options of --tls-* or $SLUICE_TLS_*; false if there are none. */
static bool
find_tls(const opts *o, sl_tls_options *t)
{
	memset(t, 0, sizeof(*t));
	t->ca_file      = opt_or_env(o->tls_ca, "SLUICE_TLS_CA");
	t->cert_file    = opt_or_env(o->tls_cert, "SLUICE_TLS_CERT");
	t->key_file     = opt_or_env(o->tls_key, "SLUICE_TLS_KEY");
	t->server_name  = opt_or_env(o->tls_server_name,
	     "SLUICE_TLS_SERVER_NAME");
	t->key_password = opt_or_env(NULL, "SLUICE_TLS_KEY_PASSWORD");
	return t->ca_file != NULL || t->cert_file != NULL
	    || t->key_file != NULL || t->server_name != NULL;
}

/* ---- the token (docs/security.md) ---- */

/* The first line of text, without its line end. */
static void
first_line(char *text)
{
	text[strcspn(text, "\r\n")] = '\0';
}

/* --token, else --token-file's first line, else $SLUICE_TOKEN; NULL if
 * none. *out malloc'ed. */
static int
find_token(const opts *o, char **out)
{
	*out = NULL;
	if (o->token != NULL && o->token_file != NULL)
		return usage_error(
		    "--token and --token-file exclude each other");
	if (o->token != NULL)
		*out = strdup(o->token);
	else if (o->token_file != NULL) {
		if ((*out = read_all(o->token_file)) == NULL)
			return fail(EXIT_USAGE, SL_EINVAL,
			    "cannot read the token file %s: %s", o->token_file,
			    strerror(errno));
		first_line(*out);
	} else if (getenv("SLUICE_TOKEN") != NULL)
		*out = strdup(getenv("SLUICE_TOKEN"));
	else
		return 0;
	if (*out == NULL)
		return fail(EXIT_USAGE, SL_ENOMEM, "out of memory");
	if ((*out)[0] == '\0') {
		free(*out);
		*out = NULL;
		return usage_error("the token is empty");
	}
	return 0;
}

/* auth hash-token [TOKEN | -] | auth new-token: no daemon needed. */
static int
cmd_auth(const opts *o)
{
	char hex[65], *tok = NULL;
	bool fresh = o->n_pos == 1 && strcmp(o->pos[0], "new-token") == 0;
	if (!fresh
	    && (o->n_pos < 1 || o->n_pos > 2
	        || strcmp(o->pos[0], "hash-token") != 0))
		return usage_error("auth takes hash-token [TOKEN | -] or "
		                   "new-token");
	if (fresh) {
		unsigned char rnd[32];
		FILE         *f = fopen("/dev/urandom", "rb");
		size_t n = f != NULL ? fread(rnd, 1, sizeof(rnd), f) : 0;
		if (f != NULL)
			fclose(f);
		if (n != sizeof(rnd))
			return fail(EXIT_USAGE, SL_EINTERNAL,
			    "cannot read /dev/urandom");
		if ((tok = malloc(4 + 2 * sizeof(rnd) + 1)) == NULL)
			return fail(EXIT_USAGE, SL_ENOMEM, "out of memory");
		strcpy(tok, "slt_");
		for (size_t i = 0; i < sizeof(rnd); i++)
			sprintf(tok + 4 + 2 * i, "%02x", rnd[i]);
	} else if (o->n_pos == 2 && strcmp(o->pos[1], "-") != 0) {
		tok = strdup(o->pos[1]);
	} else if ((tok = read_all(NULL)) != NULL) {
		first_line(tok);
	}
	if (tok == NULL || tok[0] == '\0') {
		free(tok);
		return usage_error("auth hash-token: the token is empty");
	}
	auth_hash_hex(tok, strlen(tok), hex);
	if (fresh)
		printf(
		    "{\"token\":\"%s\",\"token_sha256\":\"%s\"}\n", tok, hex);
	else
		printf("%s\n", hex);
	free(tok);
	return 0;
}

/* ---- commands ---- */

static const char *
tenant_of(const opts *o)
{
	const char *t
	    = o->tenant != NULL ? o->tenant : getenv("SLUICE_TENANT");
	return t != NULL && t[0] != '\0' ? t : NULL;
}

/* Check a JSON object text; returns it compact (malloc'ed) or NULL. */
static char *
json_object_text(const char *text, const char *what, int *status)
{
	/* a key twice would reach the daemon once (jansson keeps the
	 * last): refused, as the daemon refuses it */
	json_error_t je;
	json_t      *j
	    = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
	char        *s;

	if (j == NULL) {
		*status = fail(EXIT_USAGE, SL_EINVAL,
		    "%s is not JSON: line %d, column %d: %s", what, je.line,
		    je.column, je.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		*status = fail(
		    EXIT_USAGE, SL_EINVAL, "%s must be a JSON object", what);
		return NULL;
	}
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return s;
}

/* --expect: any (default), none, or a revision; false for anything else. */
static bool
parse_expect(const opts *o, bool none_ok, uint64_t *expected)
{
	*expected = SL_EXPECT_ANY;
	if (o->expect == NULL || strcmp(o->expect, "any") == 0)
		return true;
	if (strcmp(o->expect, "none") == 0
	    || strcmp(o->expect, "no_stream") == 0) {
		*expected = SL_EXPECT_NO_STREAM;
		return none_ok;
	}
	return parse_u64(o->expect, expected)
	    && *expected < SL_EXPECT_NO_STREAM;
}

/*
 * commit --batch's input: a JSON array of events, or JSON Lines (one event
 * object per line; blank lines skipped). Each event is {"type": string,
 * "content": {...}, "metadata": {...}?, "public": bool?,
 * "correlation_id": string?}, checked by the caller.
 * @return a non-empty array, or NULL with *status set (the error printed,
 * naming the line).
 */
static json_t *
parse_batch(const char *input, int *status)
{
	json_error_t je;
	const char  *p = input + strspn(input, " \t\r\n");
	json_t      *batch;
	if (*p == '[') {
		batch = json_loads(input, JSON_REJECT_DUPLICATES, &je);
		if (batch == NULL) {
			*status = fail(EXIT_USAGE, SL_EINVAL,
			    "batch: line %d, column %d: %s", je.line,
			    je.column, je.text);
			return NULL;
		}
	} else {
		batch    = json_array();
		int line = 1;
		for (const char *l = input; batch != NULL && *l != '\0';
		     line++) {
			size_t len = strcspn(l, "\n");
			if (strspn(l, " \t\r") < len) {
				json_t *ev = json_loadb(
				    l, len, JSON_REJECT_DUPLICATES, &je);
				if (ev == NULL) {
					*status = fail(EXIT_USAGE, SL_EINVAL,
					    "batch: line %d, column %d: %s",
					    line, je.column, je.text);
					json_decref(batch);
					return NULL;
				}
				json_array_append_new(batch, ev);
			}
			l += len + (l[len] == '\n');
		}
	}
	if (batch == NULL || !json_is_array(batch)
	    || json_array_size(batch) == 0) {
		*status = fail(EXIT_USAGE, SL_EINVAL,
		    "batch must be a non-empty JSON array, or JSON Lines of "
		    "one event object each");
		json_decref(batch);
		return NULL;
	}
	return batch;
}

static int
cmd_commit(sl_client *c, const opts *o)
{
	const char      *tenant   = tenant_of(o);
	uint64_t         expected = SL_EXPECT_ANY;
	sl_new_event    *evs      = NULL;
	char           **texts    = NULL; /* compact JSON texts to free */
	size_t           n = 0, n_texts = 0;
	sl_commit_result res;
	char            *input = NULL;
	const char      *arg;
	json_t          *batch  = NULL;
	int              status = 0, rc;

	if (tenant == NULL || o->stream == NULL)
		return usage_error("commit needs --tenant and --stream");
	if (!parse_expect(o, true, &expected))
		return usage_error("--expect takes any, none or a revision, "
		                   "not '%s'",
		    o->expect);
	if (o->n_pos > 1)
		return usage_error("commit takes one content argument");
	if (!o->batch && o->type == NULL)
		return usage_error("commit needs --type (or --batch)");

	arg = o->n_pos == 1 ? o->pos[0] : NULL;
	if (o->batch || arg == NULL || strcmp(arg, "-") == 0) {
		input = read_all(arg);
		if (input == NULL)
			return fail(EXIT_USAGE, SL_EINVAL,
			    "cannot read %s: %s",
			    arg != NULL && strcmp(arg, "-") != 0 ? arg
			                                         : "stdin",
			    strerror(errno));
	} else {
		input = strdup(arg); /* the argument is the content itself */
	}
	if (o->batch) {
		if ((batch = parse_batch(input, &status)) == NULL)
			goto out;
		n = json_array_size(batch);
	} else {
		n = 1;
	}

	evs   = calloc(n, sizeof(*evs));
	texts = calloc(2 * n, sizeof(*texts));
	if (evs == NULL || texts == NULL || input == NULL) {
		status = fail(EXIT_USAGE, SL_ENOMEM, "out of memory");
		goto out;
	}
	if (!o->batch) {
		evs[0].type = o->type;
		if ((texts[n_texts++]
		        = json_object_text(input, "content", &status))
		    == NULL)
			goto out;
		evs[0].content_json = texts[n_texts - 1];
		if (o->metadata != NULL) {
			if ((texts[n_texts++] = json_object_text(
			         o->metadata, "--metadata", &status))
			    == NULL)
				goto out;
			evs[0].metadata_json = texts[n_texts - 1];
		}
		evs[0].is_public      = o->is_public;
		evs[0].correlation_id = o->correlation;
	} else {
		for (size_t i = 0; i < n; i++) {
			json_t *it = json_array_get(batch, i);
			json_t *ty = json_object_get(it, "type");
			json_t *co = json_object_get(it, "content");
			json_t *me = json_object_get(it, "metadata");
			json_t *pu = json_object_get(it, "public");
			json_t *ci = json_object_get(it, "correlation_id");
			if (!json_is_object(it) || !json_is_string(ty)
			    || !json_is_object(co)
			    || (me != NULL && !json_is_object(me))
			    || (pu != NULL && !json_is_boolean(pu))
			    || (ci != NULL && !json_is_string(ci))) {
				status = fail(EXIT_USAGE, SL_EINVAL,
				    "batch[%zu] must be {\"type\":string,"
				    "\"content\":{...},\"metadata\":{...}?,"
				    "\"public\":bool?,\"correlation_id\":"
				    "string?}",
				    i);
				goto out;
			}
			evs[i].type         = json_string_value(ty);
			texts[n_texts++]    = json_dumps(co, JSON_COMPACT);
			evs[i].content_json = texts[n_texts - 1];
			if (me != NULL) {
				texts[n_texts++]
				    = json_dumps(me, JSON_COMPACT);
				evs[i].metadata_json = texts[n_texts - 1];
			}
			evs[i].is_public = pu != NULL && json_is_true(pu);
			evs[i].correlation_id
			    = ci != NULL ? json_string_value(ci) : NULL;
		}
	}

	/* On EREVISION the daemon's message names the actual revision. */
	rc = sl_client_commit(c, tenant, o->stream, expected, evs, n, &res);
	if (rc != SL_OK) {
		status = call_failed(c, rc);
	} else {
		printf("{\"first_position\":%" PRIu64
		       ",\"last_position\":%" PRIu64
		       ",\"first_revision\":%" PRIu64 ",\"count\":%" PRIu64
		       "}\n",
		    res.first_position, res.last_position, res.first_revision,
		    res.count);
	}
out:
	for (size_t i = 0; texts != NULL && i < n_texts; i++)
		free(texts[i]);
	free(texts);
	free(evs);
	free(input);
	json_decref(batch);
	return status;
}

/* delete-stream: a soft delete, or with --truncate-before a
 * truncate-before. */
static int
cmd_delete_stream(sl_client *c, const opts *o)
{
	const char      *tenant = tenant_of(o);
	uint64_t         expected, before = 0;
	sl_delete_result res;
	int              rc;

	if (tenant == NULL || o->stream == NULL)
		return usage_error(
		    "delete-stream needs --tenant and --stream");
	if (o->n_pos > 0)
		return usage_error(
		    "delete-stream takes no argument '%s'", o->pos[0]);
	/* "none" would expect a stream without events: nothing to delete */
	if (!parse_expect(o, false, &expected))
		return usage_error("--expect takes any or the stream's last "
		                   "revision, not '%s'",
		    o->expect);
	if (o->truncate_before != NULL
	    && !parse_u64(o->truncate_before, &before))
		return usage_error("--truncate-before takes a revision, not "
		                   "'%s'",
		    o->truncate_before);
	rc = o->truncate_before != NULL
	    ? sl_client_truncate_stream(
	        c, tenant, o->stream, expected, before, &res)
	    : sl_client_delete_stream(c, tenant, o->stream, expected, &res);
	if (rc != SL_OK)
		return call_failed(c, rc);
	printf("{\"position\":%" PRIu64 ",\"revision\":%" PRIu64
	       ",\"truncate_before\":%" PRIu64 "}\n",
	    res.position, res.revision, res.truncate_before);
	return 0;
}

/* read --filter: a filter's stream, one JSON line per event. */
static int
cmd_read_filter(sl_client *c, const opts *o)
{
	const char *tenant = tenant_of(o);
	uint64_t    from = 0, max = 0, left;
	int         rc;

	if (tenant == NULL)
		return usage_error("--filter needs --tenant");
	if (o->stream != NULL || o->from_revision != NULL)
		return usage_error(
		    "--filter reads a filter's stream: it takes "
		    "no --stream or --from-revision");
	if (o->partition != NULL && o->partition[0] == '\0')
		return usage_error("--partition must not be empty");
	if (o->from != NULL && !parse_u64(o->from, &from))
		return usage_error(
		    "--from takes a stream position, not '%s'", o->from);
	if (o->max != NULL && (!parse_u64(o->max, &max) || max == 0))
		return usage_error(
		    "--max takes a positive number, not '%s'", o->max);
	left = o->max != NULL ? max : UINT64_MAX;

	while (left > 0) {
		sl_filter_page p;
		size_t         ask = left > SIZE_MAX ? 0 : (size_t) left;
		rc                 = sl_client_read_filter(
		                    c, tenant, o->filter, o->partition, from, ask, &p);
		if (rc != SL_OK)
			return call_failed(c, rc);
		for (size_t i = 0; i < p.n_events && left > 0; i++, left--)
			print_event(p.events[i].event.json);
		from = p.next;
		if (p.n_events == 0 || !p.more) {
			sl_filter_page_free(&p);
			break;
		}
		sl_filter_page_free(&p);
	}
	if (fflush(stdout) != 0)
		return fail(EXIT_USAGE, SL_EINVAL, "cannot write the output");
	return 0;
}

static int
cmd_read(sl_client *c, const opts *o)
{
	const char *tenant = o->stream != NULL ? tenant_of(o) : NULL;
	uint64_t    from = 0, max = 0, left;
	bool        by_stream = o->stream != NULL;
	int         rc;

	if (o->n_pos > 0)
		return usage_error("read takes no argument '%s'", o->pos[0]);
	if (o->filter != NULL && o->resolve_links)
		return usage_error(
		    "--resolve-links reads the log or a stream, "
		    "not a filter's stream");
	if (o->filter != NULL)
		return cmd_read_filter(c, o);
	if (o->partition != NULL)
		return usage_error("--partition needs --filter");
	if (by_stream && tenant == NULL)
		return usage_error("--stream needs --tenant");
	if (o->from_revision != NULL && !by_stream)
		return usage_error("--from-revision needs --tenant and "
		                   "--stream");
	if (by_stream && o->from != NULL)
		return usage_error("use --from-revision to read a stream");
	if ((o->from != NULL && !parse_u64(o->from, &from))
	    || (o->from_revision != NULL
	        && !parse_u64(o->from_revision, &from)))
		return usage_error("--from takes a number");
	if (o->max != NULL && (!parse_u64(o->max, &max) || max == 0))
		return usage_error(
		    "--max takes a positive number, not '%s'", o->max);
	left = o->max != NULL ? max : UINT64_MAX;

	while (left > 0) {
		sl_read_result r;
		sl_read_opts   ro;
		memset(&ro, 0, sizeof(ro));
		ro.tenant        = tenant;
		ro.stream        = by_stream ? o->stream : NULL;
		ro.from          = from;
		ro.max           = left > SIZE_MAX ? 0 : (size_t) left;
		ro.resolve_links = o->resolve_links;
		rc               = sl_client_read_ex(c, &ro, &r);
		if (rc != SL_OK)
			return call_failed(c, rc);
		for (size_t i = 0; i < r.n_events && left > 0; i++, left--)
			print_event(r.events[i].json);
		/* A log page may be empty while next moves past the events
		 * of deleted streams: only a read that moves no further, or
		 * reaches the head, ends the log. */
		bool end = by_stream ? r.n_events == 0
		                     : r.next <= from || r.next >= r.head;
		from     = r.next;
		if (end) {
			sl_read_result_free(&r);
			break;
		}
		sl_read_result_free(&r);
	}
	if (fflush(stdout) != 0)
		return fail(EXIT_USAGE, SL_EINVAL, "cannot write the output");
	return 0;
}

static int
cmd_get_one(sl_client *c, const opts *o)
{
	const char  *tenant = tenant_of(o);
	char        *state;
	json_t      *j;
	json_error_t je;
	bool         found;
	int          rc;

	if (tenant == NULL || o->projection == NULL || o->n_pos != 1)
		return usage_error("get-one needs --tenant, --projection and "
		                   "a KEY");
	rc = sl_client_get_one(
	    c, tenant, o->projection, o->pos[0], &state, &found);
	if (rc != SL_OK)
		return call_failed(c, rc);
	j = json_loads(state, 0, &je);
	sl_client_free(state);
	if (j == NULL)
		return fail(EXIT_REPLY, SL_EPROTO, "bad state in the reply");
	/* a key with no read model answers the initial state: found says
	 * which it is */
	j = json_pack(
	    "{s:s, s:b, s:o}", "key", o->pos[0], "found", found, "state", j);
	if (j == NULL)
		return fail(EXIT_USAGE, SL_EINVAL,
		    "cannot print the read model (is KEY UTF-8?)");
	print_json(j, JSON_INDENT(2));
	json_decref(j);
	return 0;
}

static int
cmd_get_all(sl_client *c, const opts *o)
{
	const char *tenant = tenant_of(o);
	json_t     *all;
	char       *after = NULL;
	int         rc, status = 0;

	if (tenant == NULL || o->projection == NULL)
		return usage_error("get-all needs --tenant and --projection");
	if (o->n_pos > 0)
		return usage_error(
		    "get-all takes no argument '%s'", o->pos[0]);
	all = json_array();
	for (;;) {
		sl_read_models page;
		rc = sl_client_get_all(
		    c, tenant, o->projection, after, 0, &page);
		if (rc != SL_OK) {
			status = call_failed(c, rc);
			break;
		}
		for (size_t i = 0; i < page.n_items; i++) {
			json_error_t je;
			json_t      *st
			    = json_loads(page.items[i].state_json, 0, &je);
			json_array_append_new(all,
			    json_pack("{s:s,s:o*}", "key", page.items[i].key,
			        "state", st));
		}
		free(after);
		after = page.n_items > 0 && page.more
		    ? strdup(page.items[page.n_items - 1].key)
		    : NULL;
		sl_read_models_free(&page);
		if (after == NULL)
			break;
	}
	free(after);
	if (status == 0)
		print_json(all, JSON_INDENT(2));
	json_decref(all);
	return status;
}

/*
 * Beside each failing unit's next_try (ms since the epoch), the same time
 * for people: "next_try_utc": "2026-11-25T15:20:00.123Z".
 */
static void
status_add_times(json_t *st)
{
	size_t  i, k;
	json_t *p, *f;

	json_array_foreach(json_object_get(st, "processors"), i, p)
	{
		json_array_foreach(json_object_get(p, "failing"), k, f)
		{
			json_t   *nt = json_object_get(f, "next_try");
			char      buf[64];
			struct tm tm;
			time_t    secs;

			if (!json_is_integer(nt))
				continue;
			secs = (time_t) (json_integer_value(nt) / 1000);
			if (gmtime_r(&secs, &tm) == NULL)
				continue;
			size_t n = strftime(
			    buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
			snprintf(buf + n, sizeof(buf) - n, ".%03dZ",
			    (int) (json_integer_value(nt) % 1000));
			json_object_set_new(
			    f, "next_try_utc", json_string(buf));
		}
	}
}

static int
cmd_status(sl_client *c, const opts *o)
{
	char        *text;
	json_t      *j;
	json_error_t je;
	int          rc;

	if (o->n_pos > 0)
		return usage_error("status takes no argument '%s'", o->pos[0]);
	rc = sl_client_status(c, &text);
	if (rc != SL_OK)
		return call_failed(c, rc);
	j = json_loads(text, 0, &je);
	sl_client_free(text);
	if (j == NULL)
		return fail(EXIT_REPLY, SL_EPROTO, "bad status reply");
	status_add_times(j);
	print_json(j, JSON_INDENT(2));
	json_decref(j);
	return 0;
}

/* The plugin files, their versions, load times and errors. */
static int
cmd_plugins(sl_client *c, const opts *o)
{
	char        *text;
	json_t      *j;
	json_error_t je;
	int          rc;

	if (o->n_pos > 0)
		return usage_error(
		    "plugins takes no argument '%s'", o->pos[0]);
	rc = sl_client_plugins(c, &text);
	if (rc != SL_OK)
		return call_failed(c, rc);
	j = json_loads(text, 0, &je);
	sl_client_free(text);
	if (j == NULL)
		return fail(EXIT_REPLY, SL_EPROTO, "bad plugins reply");
	print_json(j, JSON_INDENT(2));
	json_decref(j);
	return 0;
}

/* reset|retry|pause|resume|start|stop ID [--tenant T]: an operator
 * command. */
/* ---- --wait: until the processors caught up, with progress ---- */

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A progress line on stderr (a terminal's): what / target, the rate of
 * done events in elapsed_ms, the time left at that rate, and the state
 * in brackets when given. */
static void
show_progress(const char *prefix, const char *what, long long pos,
    long long target, long long done, int64_t elapsed_ms, const char *state)
{
	double rate = elapsed_ms > 0 ? (double) done * 1000.0 / (double) elapsed_ms
	                             : 0;
	char   eta[32] = "-";
	if (rate > 0)
		snprintf(eta, sizeof(eta), "%.0f s", (double) (target - pos) / rate);
	fprintf(stderr, "\r%s%s: %lld / %lld (%.0f%%), %.0f events/s, ETA %s%s%s%s   ",
	    prefix, what, pos, target,
	    target > 0 ? 100.0 * (double) pos / (double) target : 100.0, rate, eta,
	    state != NULL ? " [" : "", state != NULL ? state : "",
	    state != NULL ? "]" : "");
	fflush(stderr);
}

/* The processors (and emitting runs) of id (an id or a name), of tenant
 * or of all, in a status reply: their lowest position, whether any
 * rebuilds or is paused, and how many there are. */
typedef struct procs_seen {
	size_t     n;
	json_int_t min_pos;
	bool       rebuilding, paused;
	char       state[32];
} procs_seen;

static void
procs_of(json_t *st, const char *id, const char *tenant, procs_seen *out)
{
	static const char *const lists[] = { "processors",
		"emitting_projections" };
	memset(out, 0, sizeof(*out));
	for (size_t l = 0; l < 2; l++) {
		json_t *arr = json_object_get(st, lists[l]);
		for (size_t i = 0; i < json_array_size(arr); i++) {
			json_t     *p  = json_array_get(arr, i);
			const char *pi = json_string_value(
			    json_object_get(p, "projection"));
			const char *pn
			    = json_string_value(json_object_get(p, "name"));
			const char *pt
			    = json_string_value(json_object_get(p, "tenant"));
			if (!((pi != NULL && strcmp(pi, id) == 0)
			        || (pn != NULL && strcmp(pn, id) == 0))
			    || (tenant != NULL
			        && (pt == NULL || strcmp(pt, tenant) != 0)))
				continue;
			json_int_t pos = json_integer_value(
			    json_object_get(p, "position"));
			if (out->n == 0 || pos < out->min_pos)
				out->min_pos = pos;
			out->rebuilding
			    |= json_is_true(json_object_get(p, "rebuilding"));
			out->paused
			    |= json_is_true(json_object_get(p, "paused"));
			const char *state
			    = json_string_value(json_object_get(p, "status"));
			if (state != NULL)
				snprintf(out->state, sizeof(out->state), "%s",
				    state);
			out->n++;
		}
	}
}

/*
 * After reset, start, resume or retry --wait: wait until every processor
 * of id has reached the log's head as it was when the wait began. On a
 * terminal, a progress line on stderr (position / head, events/s, ETA);
 * always a final JSON line on stdout.
 */
static int
wait_caught_up(sl_client *c, const char *id, const char *tenant)
{
	bool       tty = isatty(STDOUT_FILENO) && isatty(STDERR_FILENO);
	int64_t    t0 = now_ms(), shown = 0;
	json_int_t target = -1, start = -1;
	procs_seen ps;
	for (;;) {
		char *text = NULL;
		int   rc   = sl_client_status(c, &text);
		if (rc != SL_OK)
			return call_failed(c, rc);
		json_t *st = json_loads(text, 0, NULL);
		sl_client_free(text);
		if (st == NULL)
			return fail(EXIT_REPLY, SL_EPROTO, "status is not JSON");
		if (target < 0)
			target = json_integer_value(json_object_get(st, "head"));
		procs_of(st, id, tenant, &ps);
		json_decref(st);
		if (ps.n == 0)
			return fail(EXIT_REPLY, SL_ENOTFOUND,
			    "no processor of '%s'%s%s to wait for", id,
			    tenant != NULL ? " in tenant " : "",
			    tenant != NULL ? tenant : "");
		if (start < 0)
			start = ps.min_pos;
		if (!ps.rebuilding && ps.min_pos >= target)
			break;
		if (ps.paused)
			return fail(EXIT_REPLY, SL_EINVAL,
			    "'%s' is paused at %lld of %lld: resume it", id,
			    (long long) ps.min_pos, (long long) target);
		int64_t el = now_ms() - t0;
		if (tty && now_ms() - shown >= 200) {
			show_progress("", id, ps.min_pos, target, ps.min_pos - start,
			    el, ps.state);
			shown = now_ms();
		}
		nanosleep(&(struct timespec) { 0, 50 * 1000 * 1000 }, NULL);
	}
	double secs = (double) (now_ms() - t0) / 1000.0;
	if (tty)
		fprintf(stderr, "\r%s: caught up at %lld in %.1f s%30s\n", id,
		    (long long) ps.min_pos, secs, "");
	json_t *j = json_pack("{s:s,s:I,s:I,s:I,s:f,s:f}", "waited", id,
	    "position", ps.min_pos, "head", target, "processors",
	    (json_int_t) ps.n, "seconds", secs, "events_per_sec",
	    secs > 0 ? (double) (ps.min_pos - start) / secs : 0.0);
	if (j == NULL)
		return fail(EXIT_USAGE, SL_ENOMEM, "out of memory");
	print_json(j, JSON_COMPACT);
	json_decref(j);
	return fflush(stdout) == 0 ? 0
	                           : fail(EXIT_USAGE, SL_EINVAL,
	                                 "cannot write the output");
}

static int
cmd_command(sl_client *c, const opts *o)
{
	const char *tenant = tenant_of(o);
	size_t      n      = 0;
	json_t     *j;
	int         rc;

	if (o->n_pos != 1)
		return usage_error("%s needs one projection or filter id or "
		                   "name (and takes --tenant T)",
		    o->command);
	bool wait_ok = strcmp(o->command, "reset") == 0
	    || strcmp(o->command, "start") == 0
	    || strcmp(o->command, "resume") == 0
	    || strcmp(o->command, "retry") == 0;
	if (o->wait && !wait_ok)
		return usage_error("--wait goes with reset, start, resume and "
		                   "retry, not %s",
		    o->command);
	rc = sl_client_command(c, o->command, o->pos[0], tenant, &n);
	if (rc != SL_OK)
		return call_failed(c, rc);
	j = json_pack("{s:s,s:s,s:s?,s:I}", "command", o->command, "id",
	    o->pos[0], "tenant", tenant, "processors", (json_int_t) n);
	if (j == NULL)
		return fail(EXIT_USAGE, SL_ENOMEM, "out of memory");
	print_json(j, JSON_COMPACT);
	json_decref(j);
	if (fflush(stdout) != 0)
		return fail(EXIT_USAGE, SL_EINVAL, "cannot write the output");
	return o->wait ? wait_caught_up(c, o->pos[0], tenant) : 0;
}

/* ---- query ---- */

/* query --js: the script and the name it is sent under. */
typedef struct query_script {
	const char *file; /* NULL: no --js */
	char       *text;
	size_t      len;
} query_script;

/* {position, [head,] states: [{key, state, result?}]} of a query. */
static json_t *
query_json(const sl_query_result *r, bool with_head)
{
	json_t *sts = json_array(), *j;

	for (size_t i = 0; sts != NULL && i < r->n_states; i++) {
		const sl_query_state *q   = &r->states[i];
		json_t               *st  = json_loads(q->state_json, 0, NULL);
		json_t               *res = q->result_json != NULL
		                  ? json_loads(q->result_json, 0, NULL)
		                  : NULL;
		json_array_append_new(sts,
		    json_pack("{s:s,s:o*,s:o*}", "key", q->key, "state", st,
		        "result", res));
	}
	j = json_pack(
	    "{s:I,s:o*}", "position", (json_int_t) r->position, "states", sts);
	if (j != NULL && with_head)
		json_object_set_new(j, "head", json_integer(r->head));
	return j;
}

/* A failed query; with --js the message names the script's file (most
 * of the daemon's reasons about the script name it already). */
static int
query_failed(sl_client *c, int rc, const query_script *js)
{
	const char *msg = sl_client_last_error(c);
	int status = (rc == SL_ENET || rc == SL_ETIMEDOUT || rc == SL_ECLOSED)
	    ? EXIT_NET
	    : rc == SL_EUNAVAILABLE ? EXIT_UNAVAILABLE
	                            : EXIT_REPLY;

	if (js == NULL || js->file == NULL
	    || strstr(msg, js->file) != NULL)
		return call_failed(c, rc);
	if (rc == SL_ETOOBIG)
		return fail(status, rc,
		    "%s: the script is %zu bytes: %s (the daemon's "
		    "limits.max_request_bytes bounds a request)",
		    js->file, js->len, msg);
	return fail(status, rc, "%s: %s", js->file, msg);
}

/*
 * query --js FILE: read the script, named for FILE's basename ("query.js"
 * for stdin). A script that cannot fit one request is refused here: the
 * daemon answers a request over its limit, but one more than twice that
 * size is dropped by the transport without a word (docs/protocol.md).
 */
static int
query_read_script(sl_client *c, const opts *o, query_script *js)
{
	const char *slash = strrchr(o->js, '/');
	char       *st    = NULL;

	js->file = strcmp(o->js, "-") == 0 ? "query.js"
	    : slash != NULL                ? slash + 1
	                                   : o->js;
	js->text = read_all_n(o->js, &js->len);
	if (js->text == NULL)
		return fail(EXIT_USAGE, SL_EINVAL, "cannot read %s: %s", o->js,
		    strerror(errno));
	if (js->len > 1024 && sl_client_status(c, &st) == SL_OK) {
		json_t *j   = json_loads(st, 0, NULL);
		json_t *max = json_object_get(
		    json_object_get(j, "api"), "max_request_bytes");
		/* room for the request's other fields */
		if (json_is_integer(max)
		    && (json_int_t) js->len + 1024 > json_integer_value(max)) {
			int status = fail(EXIT_REPLY, SL_ETOOBIG,
			    "%s: the script is %zu bytes: over the daemon's "
			    "request size limit of %lld bytes "
			    "(limits.max_request_bytes)",
			    js->file, js->len,
			    (long long) json_integer_value(max));
			json_decref(j);
			sl_client_free(st);
			free(js->text);
			js->text = NULL;
			return status;
		}
		json_decref(j);
		sl_client_free(st);
	}
	return 0;
}

static volatile sig_atomic_t query_stop;

static void
query_on_signal(int sig)
{
	(void) sig;
	query_stop = 1;
}

/*
 * query --follow: a transient run, polled; prints the states whenever
 * they change, until SIGINT / SIGTERM, then closes the run (closing the
 * connection would end it too, but a clean close says so at once).
 */
static int
query_follow(
    sl_client *c, const char *tenant, const opts *o, const query_script *js)
{
	struct sigaction sa;
	uint64_t         handle;
	char            *last = NULL;
	int              rc, status = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = query_on_signal; /* no SA_RESTART: sleeps end */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	rc = js->file != NULL
	    ? sl_client_query_js_start(
	        c, tenant, js->file, js->text, js->len, &handle)
	    : sl_client_query_start(c, tenant, o->pos[0], &handle);
	if (rc != SL_OK)
		return query_failed(c, rc, js);
	while (!query_stop) {
		sl_query_result r;
		struct timespec ts = { 0, 200 * 1000000L };
		json_t         *sts;
		char           *now;

		rc = sl_client_query_poll(c, handle, o->key, &r);
		if (rc != SL_OK) {
			status = call_failed(c, rc);
			break;
		}
		json_t *j = query_json(&r, true);
		sl_query_result_free(&r);
		if (j == NULL) {
			status = fail(EXIT_USAGE, SL_ENOMEM, "out of memory");
			break;
		}
		sts = json_object_get(j, "states");
		now = json_dumps(sts, JSON_COMPACT | JSON_SORT_KEYS);
		if (now != NULL && (last == NULL || strcmp(now, last) != 0)) {
			print_json(j, JSON_COMPACT);
			if (fflush(stdout) != 0) {
				status = fail(EXIT_USAGE, SL_EINVAL,
				    "cannot write the output");
				free(now);
				json_decref(j);
				break;
			}
			free(last);
			last = now;
		} else {
			free(now);
		}
		json_decref(j);
		if (!query_stop)
			nanosleep(&ts, NULL);
	}
	free(last);
	rc = sl_client_query_close(c, handle);
	if (rc != SL_OK && rc != SL_ENOTFOUND && status == 0)
		status = call_failed(c, rc);
	return status;
}

/* query ID [--tenant T] [--key K] [--follow] */
/* A one-time query, on a thread of its own when its progress is shown. */
typedef struct query_job {
	sl_client       *c;
	const char      *tenant;
	const opts      *o;
	query_script    *js;
	sl_query_result *r;
	int              rc;
	bool             done; /* atomic */
} query_job;

static void *
query_run(void *arg)
{
	query_job *q = arg;
	q->rc        = q->js->file != NULL
	           ? sl_client_query_js(q->c, q->tenant, q->js->file,
	               q->js->text, q->js->len, q->o->key, q->r)
	           : sl_client_query(
	               q->c, q->tenant, q->o->pos[0], q->o->key, q->r);
	__atomic_store_n(&q->done, true, __ATOMIC_RELEASE);
	return NULL;
}

/* On a terminal: the query on a thread, and a progress line (position /
 * head, events/s, ETA) from status' "queries" on a second connection. */
static int
query_with_progress(query_job *q)
{
	pthread_t  th;
	sl_client *sc = NULL;
	if (pthread_create(&th, NULL, query_run, q) != 0) {
		query_run(q);
		return q->rc;
	}
	bool    shown = false;
	int64_t t0    = now_ms();
	if (open_client(q->o, 5000, &sc) != 0)
		sc = NULL;
	while (!__atomic_load_n(&q->done, __ATOMIC_ACQUIRE)) {
		nanosleep(&(struct timespec) { 0, 200 * 1000 * 1000 }, NULL);
		char *text = NULL;
		if (sc == NULL || __atomic_load_n(&q->done, __ATOMIC_ACQUIRE)
		    || sl_client_status(sc, &text) != SL_OK)
			continue;
		json_t *st = json_loads(text, 0, NULL);
		sl_client_free(text);
		json_t *qs = json_object_get(st, "queries"), *e;
		size_t  i;
		json_array_foreach(qs, i, e)
		{
			const char *t = json_string_value(json_object_get(e, "tenant"));
			const char *n = json_string_value(json_object_get(e, "name"));
			const char *id
			    = json_string_value(json_object_get(e, "projection"));
			if (t == NULL || strcmp(t, q->tenant) != 0
			    || (q->js->file == NULL
			        && !((n != NULL && strcmp(n, q->o->pos[0]) == 0)
			            || (id != NULL
			                && strcmp(id, q->o->pos[0]) == 0))))
				continue;
			json_int_t pos = json_integer_value(json_object_get(e, "position"));
			json_int_t head = json_integer_value(json_object_get(e, "head"));
			show_progress("query ", n != NULL ? n : "?", pos, head,
			    pos, now_ms() - t0, NULL);
			shown = true;
			break;
		}
		json_decref(st);
	}
	pthread_join(th, NULL);
	if (shown)
		fprintf(stderr, "\r%70s\r", "");
	if (sc != NULL)
		sl_client_close(sc);
	return q->rc;
}

static int
cmd_query(sl_client *c, const opts *o)
{
	const char     *tenant = tenant_of(o);
	sl_query_result r;
	query_script    js = { NULL, NULL, 0 };
	json_t         *j;
	int             rc, status;

	if (o->js != NULL && o->n_pos != 0)
		return usage_error("query takes a projection id or name, or "
		                   "--js FILE, not both");
	if (o->js == NULL && o->n_pos != 1)
		return usage_error("query needs one projection id or name");
	if (tenant == NULL)
		return usage_error("query needs --tenant");
	if (o->key != NULL && o->key[0] == '\0')
		return usage_error("--key must not be empty");
	if (o->js != NULL && (status = query_read_script(c, o, &js)) != 0)
		return status;
	if (o->follow) {
		status = query_follow(c, tenant, o, &js);
		free(js.text);
		return status;
	}
	query_job job = { c, tenant, o, &js, &r, SL_OK, false };
	if (isatty(STDOUT_FILENO) && isatty(STDERR_FILENO))
		rc = query_with_progress(&job);
	else
		rc = (query_run(&job), job.rc);
	free(js.text);
	if (rc != SL_OK)
		return query_failed(c, rc, &js);
	j = query_json(&r, false);
	sl_query_result_free(&r);
	if (j == NULL)
		return fail(EXIT_USAGE, SL_ENOMEM, "out of memory");
	print_json(j, JSON_INDENT(2));
	json_decref(j);
	if (fflush(stdout) != 0)
		return fail(EXIT_USAGE, SL_EINVAL, "cannot write the output");
	return 0;
}

/* One event of a subscription: a JSON line, out at once (a pipe reader
 * follows live). Stops after --count events. */
typedef struct sub_print {
	uint64_t left; /* UINT64_MAX: no --count */
	bool     write_failed;
} sub_print;

static int
sub_print_event(void *arg, const sl_read_event *ev)
{
	sub_print *p = arg;

	if (print_event(ev->json) < 0 || fflush(stdout) != 0) {
		p->write_failed = true;
		return 1;
	}
	if (p->left != UINT64_MAX && --p->left == 0)
		return 1;
	return 0;
}

static int
cmd_subscribe(sl_client *c, const opts *o)
{
	sl_subscribe_opts so;
	sub_print         p         = { UINT64_MAX, false };
	bool              by_stream = o->stream != NULL;
	bool              by_filter = o->filter != NULL;
	uint64_t          from = 0, idle = 0;
	int               rc;

	memset(&so, 0, sizeof(so));
	if (o->n_pos > 0)
		return usage_error(
		    "subscribe takes no argument '%s'", o->pos[0]);
	if (o->partition != NULL && !by_filter)
		return usage_error(
		    "--partition needs --filter (and --tenant)");
	if (by_filter && by_stream)
		return usage_error("--filter and --stream exclude each other");
	if (by_filter && tenant_of(o) == NULL)
		return usage_error("--filter needs --tenant");
	if (o->partition != NULL && o->partition[0] == '\0')
		return usage_error("--partition must not be empty");
	if (by_filter && o->from_revision != NULL)
		return usage_error("use --from (a stream position) to follow "
		                   "a filter");
	if (by_stream && tenant_of(o) == NULL)
		return usage_error("--stream needs --tenant");
	if (o->tenant != NULL && !by_stream && !by_filter)
		return usage_error(
		    "--tenant needs --stream or --filter: subscribe follows "
		    "one stream, a filter's stream, or the whole log");
	if (o->from_revision != NULL && !by_stream)
		return usage_error("--from-revision needs --tenant and "
		                   "--stream");
	if (by_stream && o->from != NULL)
		return usage_error("use --from-revision to follow a stream");
	if ((o->from != NULL && !parse_u64(o->from, &from))
	    || (o->from_revision != NULL
	        && !parse_u64(o->from_revision, &from)))
		return usage_error("--from takes a number");
	if (o->count != NULL
	    && (!parse_u64(o->count, &p.left) || p.left == 0
	        || p.left == UINT64_MAX))
		return usage_error(
		    "--count takes a positive number, not '%s'", o->count);
	if (o->idle_ms != NULL
	    && (!parse_u64(o->idle_ms, &idle) || idle == 0
	        || idle > INT32_MAX))
		return usage_error(
		    "--idle-ms takes milliseconds, not '%s'", o->idle_ms);
	so.tenant    = by_stream || by_filter ? tenant_of(o) : NULL;
	so.stream    = o->stream;
	so.filter    = o->filter;
	so.partition = o->partition;
	so.from      = from;
	so.pub_url   = o->pub_url;
	so.idle_ms   = (int) idle;
	rc           = sl_client_subscribe(c, &so, sub_print_event, &p);
	if (p.write_failed)
		return fail(EXIT_USAGE, SL_EINVAL, "cannot write the output");
	if (rc == SL_ETIMEDOUT && idle > 0)
		return 0; /* --idle-ms: quiet for that long is the end */
	if (rc != SL_OK)
		return call_failed(c, rc);
	return 0;
}

/* spec runs without a daemon: only its own options apply. */
static int
cmd_spec(const opts *o)
{
	if (o->n_pos != 1)
		return usage_error("spec takes one spec file");
	return spec_run(o->pos[0], o->plugin, o->projection, o->js_host);
}

/* A client of o's daemon: the URL, TLS options and token the options
 * (or the environment, or the config file) give. @return 0, or the exit
 * status after saying why. */
static int
open_client(const opts *o, uint64_t timeout, sl_client **out)
{
	char *token, *url;
	int   status, rc;
	if ((status = find_token(o, &token)) != 0)
		return status;
	if ((status = find_url(o, &url)) != 0) {
		free(token);
		return status;
	}
	if (url == NULL) {
		free(token);
		return fail(EXIT_USAGE, SL_ENOMEM, "out of memory");
	}
	sl_tls_options tls;
	bool           has_tls = find_tls(o, &tls);
	rc = sl_client_open_tls(url, (int) timeout, has_tls ? &tls : NULL, out);
	free(url);
	if (rc == SL_OK && token != NULL
	    && (rc = sl_client_set_token(*out, token)) != SL_OK)
		sl_client_close(*out);
	free(token);
	if (rc != SL_OK)
		return fail(rc == SL_EINVAL ? EXIT_USAGE : EXIT_NET, rc, "%s",
		    sl_client_open_error());
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(sl_client *, const opts *);
	} cmds[] = {
		{ "commit", cmd_commit },
		{ "delete-stream", cmd_delete_stream },
		{ "read", cmd_read },
		{ "get-one", cmd_get_one },
		{ "get-all", cmd_get_all },
		{ "status", cmd_status },
		{ "plugins", cmd_plugins },
		{ "subscribe", cmd_subscribe },
		{ "reset", cmd_command },
		{ "retry", cmd_command },
		{ "pause", cmd_command },
		{ "resume", cmd_command },
		{ "start", cmd_command },
		{ "stop", cmd_command },
		{ "query", cmd_query },
		/* in process, no daemon: cmd_spec */
		{ "spec", NULL },
	};
	opts       o;
	uint64_t   timeout = 10000;
	sl_client *c;
	int        i, k, status;

	memset(&o, 0, sizeof(o));
	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("sluice %s\n", SLUICE_VERSION);
		return 0;
	}
	/* sluice help [COMMAND], sluice [COMMAND] --help */
	const cli_help *h = NULL;
	bool            want_help = false;
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			want_help = true;
		else if (h == NULL && argv[i][0] != '-'
		    && (i == 1 || argv[i - 1][0] != '-'
		        || strchr(argv[i - 1], '=') != NULL))
			h = cli_help_find(argv[i]);
	}
	if (argc >= 2 && strcmp(argv[1], "help") == 0) {
		if (argc == 2) {
			cli_help_all(stdout);
			return 0;
		}
		if ((h = cli_help_find(argv[2])) == NULL)
			return usage_error("no command '%s'", argv[2]);
		cli_help_one(stdout, h);
		return 0;
	}
	if (want_help) {
		if (h != NULL)
			cli_help_one(stdout, h);
		else
			cli_help_all(stdout);
		return 0;
	}
	if ((i = parse_args(argc, argv, 1, true, &o)) < 0)
		return EXIT_USAGE;
	if (i >= argc) {
		cli_help_all(stderr);
		return EXIT_USAGE;
	}
	for (k = 0; k < (int) (sizeof(cmds) / sizeof(cmds[0])); k++)
		if (strcmp(argv[i], cmds[k].name) == 0)
			break;
	if (strcmp(argv[i], "auth") == 0) {
		o.command = "auth";
		if (parse_args(argc, argv, i + 1, false, &o) < 0)
			return EXIT_USAGE;
		if ((status = options_belong(&o, cli_help_find("auth"))) != 0)
			return status;
		return cmd_auth(&o);
	}
	if (k == (int) (sizeof(cmds) / sizeof(cmds[0])))
		return usage_error("unknown command '%s'", argv[i]);
	o.command = cmds[k].name;
	if (parse_args(argc, argv, i + 1, false, &o) < 0)
		return EXIT_USAGE;
	if ((status = options_belong(&o, cli_help_find(o.command))) != 0)
		return status;
	if (cmds[k].fn == NULL)
		return cmd_spec(&o);
	/* A one-time query answers within the daemon's
	 * limits.query_timeout_ms (10 s unless configured): wait longer. */
	if (strcmp(o.command, "query") == 0)
		timeout = 120000;
	if (o.timeout != NULL
	    && (!parse_u64(o.timeout, &timeout) || timeout > INT32_MAX))
		return usage_error(
		    "--timeout takes milliseconds, not '%s'", o.timeout);

	if ((status = open_client(&o, timeout, &c)) != 0)
		return status;
	status = cmds[k].fn(c, &o);
	sl_client_close(c);
	return status;
}
