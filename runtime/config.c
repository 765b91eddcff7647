/*
 * resources.yaml -> sl_config. The daemon calls config_load once at start;
 * every problem is reported as "file:line:col: ..." with the key path, and
 * the path defaults that hang off data_dir are filled in after parsing.
 */
#include "config.h"
#include "event.h"
#include "log.h"
#include "tlsconf.h"

#include <sluice/errors.h>

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#define CFG_IPC_PATH_MAX 107 /* sizeof(sockaddr_un.sun_path) - 1 */
#define CFG_ID_MAX       256
#define CFG_KEY_MAX      512 /* key paths in messages; longer ones are cut */
#define KIB              ((size_t) 1 << 10)
#define MIB              ((size_t) 1 << 20)
#define GIB              ((size_t) 1 << 30)

typedef struct cfgp {
	const char      *file;
	yaml_document_t *doc;
	yaml_node_t     *root;
	char            *err;
	size_t           errlen;
} cfgp;

/* The schema: each mapping is a table of keys; a leaf's checked value goes
 * to slots[slot], so the file is walked once, in file order. */
enum {
	K_PATH,
	K_URL,
	K_ID,
	K_LEVEL,
	K_BOOL,
	K_INT,
	K_SIZE,
	K_MAP,
	K_SEQ,
	K_STR,  /* a non-empty string of lo..hi bytes */
	K_RUN,  /* run_projections: one of run_words (dflt: an index) */
	K_TAKE, /* by_category.take: first or last */
	K_MODE, /* a projection's mode: one of mode_words */
	K_PERM, /* file permission bits in octal, 0..0777 ("0660") */
	K_GROUP, /* a group name (or number) that exists on this host */
	K_NODE,  /* any node: its parser checks it (auth's tenants) */
	K_ISO,   /* a plugin's isolation: one of iso_words */
	K_VERIFY, /* tls.verify_clients: one of verify_words */
	K_BACKEND /* event_store.backend: one of backend_words */
};

typedef struct cfg_key {
	const char           *name;
	int                   kind;
	int                   slot;
	size_t                lo, hi; /* K_INT, K_SIZE, K_STR (bytes); K_SIZE
	                                 hi 0: no maximum */
	size_t                dflt;   /* K_LEVEL, K_BOOL, K_INT, K_SIZE */
	const struct cfg_key *sub;    /* K_MAP */
} cfg_key;

typedef struct slot {
	yaml_node_t *node; /* NULL: not in the file */
	size_t       num;  /* K_LEVEL, K_BOOL, K_INT, K_SIZE */
} slot;

/* Slots of the top level, and of one tenant. */
enum {
	S_DATA,
	S_PLUGINS,
	S_LEVEL,
	S_API,
	S_PUB,
	S_SPATH,
	S_SMAP,
	S_SYNC,
	S_BACKEND,
	S_SURL,
	S_STIMEOUT,
	S_LEASEMS,
	S_TENANTS,
	S_MAXREQ,
	S_MAXEV,
	S_MAXREAD,
	S_WORKERS,
	S_SLOWWORKERS,
	S_APIQUEUE,
	S_QUERYMS,
	S_HANDLERMS,
	S_SHUTDOWNMS,
	S_IDLEMS,
	S_MAXCONN,
	S_BATCH,
	S_HOTRELOAD,
	S_QUIETMS,
	S_REMURL,
	S_REMKEEP,
	S_REMTIMEOUT,
	S_REMWINDOW,
	S_REMBATCH,
	S_REMMAX,
	S_REMEXPIRY,
	S_RUNPROJ,
	S_STARTSTD,
	S_GROUP,
	S_SOCKMODE,
	S_CATSEP,
	S_CATTAKE,
	S_CORRPROP,
	S_TLSCERT,
	S_TLSKEY,
	S_TLSPASS,
	S_TLSCA,
	S_TLSVERIFY,
	S_AUTHTOKENS,
	S_AUTHSUBJECTS,
	S_INSECURE,
	S_METRICS,
	S_ADMIN,
	S_SET, /* the six projection_settings, in SETTING_KEYS order */
	S_PROJS = S_SET + 6,
	S_PLUGLIST,
	S_FEEDS,
	S_N
};
enum { T_ID, T_PATH, T_MAP, T_N };
/* Slots of one auth.tokens / auth.subjects entry. */
enum {
	C_NAME,
	C_TOKEN,
	C_SUBJECT,
	C_TENANTS,
	C_ROLES,
	C_MAXREG,
	C_MAXCONN,
	C_N
};
/* Slots of one `projections:` entry. */
enum { P_NAME, P_MODE, P_SET, P_N = P_SET + 6 };
/* Slots of one `plugins:` entry. */
enum { G_FILE, G_ISO, G_N };
/* Slots of one endpoints.feeds entry. */
enum { F_TENANT, F_URL, F_N };

/* Words of the word kinds, indexed by the value they stand for. */
static const char *const run_words[]  = { "none", "system", "all", NULL };
static const char *const take_words[] = { "first", "last", NULL };
static const char *const mode_words[]
    = { "continuous", "one_time", "transient", NULL };
static const char *const iso_words[] = { "in_process", "process", NULL };
/* indexed by NNG_TLS_AUTH_MODE_* */
static const char *const verify_words[]
    = { "none", "optional", "required", NULL };
/* indexed by cfg_backend */
static const char *const backend_words[] = { "lmdb", "postgresql", NULL };

/*
 * EventStoreDB's projection settings (ProjectionConsts.cs; see
 * docs/projections.md), for projection_settings: and each projections:
 * entry; b is the first of six consecutive slots. Unhandled bytes default
 * to ESDB's 10 * 1000 * 1000 (its docs say 10 MiB; the source wins).
 */
/* clang-format off */
#define SETTING_KEYS(b)                                                       \
	{ "checkpoint_after_ms", K_INT, (b) + 0, 0, 3600000, 0, NULL },       \
	{ "checkpoint_handled_threshold", K_INT, (b) + 1, 1, 1000000, 4000,   \
	    NULL },                                                           \
	{ "checkpoint_unhandled_bytes_threshold", K_SIZE, (b) + 2, KIB, GIB,  \
	    10 * 1000 * 1000, NULL },                                         \
	{ "pending_events_threshold", K_INT, (b) + 3, 1, 1000000, 5000,       \
	    NULL },                                                           \
	{ "max_write_batch_length", K_INT, (b) + 4, 1, 100000, 500, NULL },   \
	{ "max_allowed_writes_in_flight", K_INT, (b) + 5, 0, 1024, 0, NULL }
/* clang-format on */

static const cfg_key endpoint_keys[] = {
	{ "api", K_URL, S_API, 0, 0, 0, NULL },
	{ "pub", K_URL, S_PUB, 0, 0, 0, NULL },
	{ "metrics", K_STR, S_METRICS, 0, 1024, 0, NULL },
	{ "admin", K_STR, S_ADMIN, 0, 1024, 0, NULL },
	/* per-tenant feeds under auth (parse_feeds) */
	{ "feeds", K_SEQ, S_FEEDS, 0, 0, 0, NULL },
	{ NULL, 0, 0, 0, 0, 0, NULL },
};

/* One endpoints.feeds entry: a tenant's own live feed. */
static const cfg_key feed_keys[] = {
	{ "tenant", K_STR, F_TENANT, 1, CFG_ID_MAX, 0, NULL },
	{ "url", K_URL, F_URL, 0, 0, 0, NULL },
	{ NULL, 0, 0, 0, 0, 0, NULL },
};

static const cfg_key store_keys[] = {
	{ "path", K_PATH, S_SPATH, 0, 0, 0, NULL },
	{ "map_size", K_SIZE, S_SMAP, MIB, 0, GIB, NULL },
	{ "sync", K_BOOL, S_SYNC, 0, 0, true, NULL },
	/* the log of record (docs/postgresql.md); checked in parse_backend */
	{ "backend", K_BACKEND, S_BACKEND, 0, 0, CFG_BACKEND_LMDB, NULL },
	{ "url", K_STR, S_SURL, 1, 4096, 0, NULL },
	/* the longest a group's round trip to PostgreSQL may take */
	{ "timeout_ms", K_INT, S_STIMEOUT, 100, 600000, 5000, NULL },
	/* how long a dead node's leases take to move (docs/postgresql.md) */
	{ "lease_ms", K_INT, S_LEASEMS, 300, 600000, 10000, NULL },
	{ NULL, 0, 0, 0, 0, 0, NULL },
};

static const cfg_key limit_keys[] = {
	{ "max_request_bytes", K_SIZE, S_MAXREQ, KIB, GIB, 4 * MIB, NULL },
	{ "max_events_per_commit", K_INT, S_MAXEV, 1, 1000000, 10000, NULL },
	{ "max_read_events", K_INT, S_MAXREAD, 1, 100000, 1000, NULL },
	{ "api_workers", K_INT, S_WORKERS, 1, 256, 16, NULL },
	{ "api_slow_workers", K_INT, S_SLOWWORKERS, 1, 64, 4, NULL },
	{ "api_queue", K_INT, S_APIQUEUE, 1, 4096, 64, NULL },
	{ "query_timeout_ms", K_INT, S_QUERYMS, 100, 3600000, 10000, NULL },
	{ "handler_timeout_ms", K_INT, S_HANDLERMS, 10, 86400000, 30000,
	    NULL },
	{ "shutdown_timeout_ms", K_INT, S_SHUTDOWNMS, 100, 600000, 10000,
	    NULL },
	/* 0: off; otherwise at least 100 ms (checked in load) */
	{ "idle_timeout_ms", K_INT, S_IDLEMS, 0, 86400000, 600000, NULL },
	{ "max_connections", K_INT, S_MAXCONN, 1, 65536, 1024, NULL },
	{ NULL, 0, 0, 0, 0, 0, NULL },
};

static const cfg_key processing_keys[] = {
	{ "batch", K_INT, S_BATCH, 1, 1000000, 16000, NULL },
	{ NULL, 0, 0, 0, 0, 0, NULL },
};

/* Remote processors (docs/remote.md); the endpoint defaults in resolve(). */
static const cfg_key remote_keys[] = {
	{ "endpoint", K_URL, S_REMURL, 0, 0, 0, NULL },
	{ "keepalive_ms", K_INT, S_REMKEEP, 10, 600000, 1000, NULL },
	{ "timeout_ms", K_INT, S_REMTIMEOUT, 10, 3600000, 5000, NULL },
	{ "window", K_INT, S_REMWINDOW, 1, 1024, 32, NULL },
	{ "batch", K_INT, S_REMBATCH, 1, 1024, 256, NULL },
	{ "max_registrations", K_INT, S_REMMAX, 1, 4096, 64, NULL },
	/* 0: never; otherwise at least 100 ms (checked in load) */
	{ "registration_expiry_ms", K_INT, S_REMEXPIRY, 0, 2592000000, 600000,
	    NULL },
	{ NULL, 0, 0, 0, 0, 0, NULL },
};

/* Who may read the data and connect (docs/security.md). */
static const cfg_key access_keys[] = {
	{ "group", K_GROUP, S_GROUP, 0, 0, 0, NULL },
	{ "socket_mode", K_PERM, S_SOCKMODE, 0, 0, 0660, NULL },
	{ NULL, 0, 0, 0, 0, 0, NULL },
};

/* TLS of the tls+tcp:// endpoints (docs/security.md); files are relative
 * to the config file's directory and checked in parse_tls. */
static const cfg_key tls_keys[] = {
	{ "cert_file", K_PATH, S_TLSCERT, 0, 0, 0, NULL },
	{ "key_file", K_PATH, S_TLSKEY, 0, 0, 0, NULL },
	{ "key_password", K_STR, S_TLSPASS, 1, 1024, 0, NULL },
	{ "ca_file", K_PATH, S_TLSCA, 0, 0, 0, NULL },
	{ "verify_clients", K_VERIFY, S_TLSVERIFY, 0, 0, 0, NULL },
	{ NULL, 0, 0, 0, 0, 0, NULL },
};

/* Authentication (docs/security.md): credentials by token or by TLS
 * client certificate subject; parse_auth checks each entry. */
static const cfg_key auth_keys[] = {
	{ "tokens", K_SEQ, S_AUTHTOKENS, 0, 0, 0, NULL },
	{ "subjects", K_SEQ, S_AUTHSUBJECTS, 0, 0, 0, NULL },
	{ NULL, 0, 0, 0, 0, 0, NULL },
};

static const cfg_key cred_keys[] = {
	{ "name", K_STR, C_NAME, 1, 64, 0, NULL },
	{ "token_sha256", K_STR, C_TOKEN, 1, 64, 0, NULL },
	{ "subject", K_STR, C_SUBJECT, 1, 1024, 0, NULL },
	{ "tenants", K_NODE, C_TENANTS, 0, 0, 0, NULL },
	{ "roles", K_SEQ, C_ROLES, 0, 0, 0, NULL },
	{ "max_registrations", K_INT, C_MAXREG, 0, 4096, 16, NULL },
	/* 0: only limits.max_connections bounds them */
	{ "max_connections", K_INT, C_MAXCONN, 0, 65536, 0, NULL },
	{ NULL, 0, 0, 0, 0, 0, NULL },
};

/* EventStoreDB's projection model (docs/projections.md). */
static const cfg_key category_keys[] = {
	{ "separator", K_STR, S_CATSEP, 1, 16, 0, NULL },
	{ "take", K_TAKE, S_CATTAKE, 0, 0, 0, NULL },
	{ NULL, 0, 0, 0, 0, 0, NULL },
};

static const cfg_key correlation_keys[] = {
	{ "property", K_STR, S_CORRPROP, 1, 256, 0, NULL },
	{ NULL, 0, 0, 0, 0, 0, NULL },
};

static const cfg_key sysproj_keys[] = {
	{ "by_category", K_MAP, 0, 0, 0, 0, category_keys },
	{ "by_correlation_id", K_MAP, 0, 0, 0, 0, correlation_keys },
	{ NULL, 0, 0, 0, 0, 0, NULL },
};

static const cfg_key setting_keys[] = {
	SETTING_KEYS(S_SET),
	{ NULL, 0, 0, 0, 0, 0, NULL },
};

/* One `projections:` entry: which projection, its mode, its settings
 * (those not given are projection_settings'). */
static const cfg_key projection_keys[] = {
	{ "name", K_STR, P_NAME, 1, 256, 0, NULL },
	{ "mode", K_MODE, P_MODE, 0, 0, CFG_MODE_CONTINUOUS, NULL },
	SETTING_KEYS(P_SET),
	{ NULL, 0, 0, 0, 0, 0, NULL },
};

/* Paths default in resolve(), once the config file's directory is known. */
static const cfg_key top_keys[] = {
	{ "data_dir", K_PATH, S_DATA, 0, 0, 0, NULL },
	{ "plugin_dir", K_PATH, S_PLUGINS, 0, 0, 0, NULL },
	{ "hot_reload", K_BOOL, S_HOTRELOAD, 0, 0, true, NULL },
	/* how long a changed plugin file must be left alone before it is
	 * loaded; a file written in place is refused (not an ELF object
	 * yet) until its writes stop, so this only spares those retries */
	{ "hot_reload_quiet_ms", K_INT, S_QUIETMS, 1, 60000, 150, NULL },
	{ "log_level", K_LEVEL, S_LEVEL, 0, 0, SL_LOG_INFO, NULL },
	{ "endpoints", K_MAP, 0, 0, 0, 0, endpoint_keys },
	{ "event_store", K_MAP, 0, 0, 0, 0, store_keys },
	{ "tenants", K_SEQ, S_TENANTS, 0, 0, 0, NULL },
	{ "limits", K_MAP, 0, 0, 0, 0, limit_keys },
	{ "processing", K_MAP, 0, 0, 0, 0, processing_keys },
	{ "remote", K_MAP, 0, 0, 0, 0, remote_keys },
	{ "access", K_MAP, 0, 0, 0, 0, access_keys },
	{ "tls", K_MAP, 0, 0, 0, 0, tls_keys },
	{ "auth", K_MAP, 0, 0, 0, 0, auth_keys },
	/* tcp listeners without auth: (docs/security.md) */
	{ "insecure", K_BOOL, S_INSECURE, 0, 0, false, NULL },
	{ "run_projections", K_RUN, S_RUNPROJ, 0, 0, CFG_RUN_ALL, NULL },
	{ "start_standard_projections", K_BOOL, S_STARTSTD, 0, 0, false,
	    NULL },
	{ "system_projections", K_MAP, 0, 0, 0, 0, sysproj_keys },
	{ "projection_settings", K_MAP, 0, 0, 0, 0, setting_keys },
	{ "projections", K_SEQ, S_PROJS, 0, 0, 0, NULL },
	{ "plugins", K_SEQ, S_PLUGLIST, 0, 0, 0, NULL },
	{ NULL, 0, 0, 0, 0, 0, NULL },
};

/* One `plugins:` entry: a file of plugin_dir and how it runs. */
static const cfg_key plugin_keys[] = {
	{ "file", K_STR, G_FILE, 1, 255, 0, NULL },
	{ "isolation", K_ISO, G_ISO, 0, 0, CFG_ISOLATION_IN_PROCESS, NULL },
	{ NULL, 0, 0, 0, 0, 0, NULL },
};

static const cfg_key rm_keys[] = {
	{ "path", K_PATH, T_PATH, 0, 0, 0, NULL },
	{ "map_size", K_SIZE, T_MAP, MIB, 0, 256 * MIB, NULL },
	{ NULL, 0, 0, 0, 0, 0, NULL },
};

static const cfg_key tenant_keys[] = {
	{ "id", K_ID, T_ID, 0, 0, 0, NULL },
	{ "read_models", K_MAP, 0, 0, 0, 0, rm_keys },
	{ NULL, 0, 0, 0, 0, 0, NULL },
};

/* By kind: what the message says was expected. */
static const char *const expected[] = { "a scalar", "a scalar", "a scalar",
	"one of error, warn, info, debug", "true or false", "an integer",
	("a size (a byte count, or a number with K, KiB, M, MiB, G, GiB, T "
	 "or TiB)"),
	"a mapping", "a sequence", "a non-empty string",
	"one of none, system, all", "first or last",
	"one of continuous, one_time, transient",
	"permission bits in octal, 0000..0777 (\"0660\")",
	"a group name or number", "a value",
	"one of in_process, process", "one of none, optional, required",
	"one of lmdb, postgresql" };

static const char *const *
words_of(int kind)
{
	return kind == K_RUN ? run_words
	    : kind == K_TAKE ? take_words
	    : kind == K_ISO  ? iso_words
	    : kind == K_MODE    ? mode_words
	    : kind == K_BACKEND ? backend_words
	                        : verify_words;
}

static int fail(cfgp *p, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(cfgp *p, yaml_mark_t m, const char *fmt, ...)
{
	if (p->errlen == 0)
		return SL_ECONFIG;
	int n = snprintf(p->err, p->errlen, "%s:%zu:%zu: ", p->file,
	    m.line + 1, m.column + 1);
	if (n >= 0 && (size_t) n < p->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(p->err + n, p->errlen - (size_t) n, fmt, ap);
		va_end(ap);
	}
	return SL_ECONFIG;
}

static int
nomem(cfgp *p)
{
	if (p->errlen > 0)
		snprintf(p->err, p->errlen, "%s: out of memory", p->file);
	return SL_ENOMEM;
}

static const char *
text(const yaml_node_t *n)
{
	return (const char *) n->data.scalar.value;
}

/* For "expected X, got Y": the kind of node, or the scalar quoted. */
static int
want(cfgp *p, const yaml_node_t *n, const char *path, const char *what)
{
	char        buf[80];
	const char *got = buf;
	if (n->type == YAML_MAPPING_NODE)
		got = "a mapping";
	else if (n->type == YAML_SEQUENCE_NODE)
		got = "a sequence";
	else if (n->data.scalar.length == 0)
		got = "an empty value";
	else
		snprintf(buf, sizeof(buf), "'%.64s%s'", text(n),
		    n->data.scalar.length > 64 ? "..." : "");
	if (*path == '\0')
		return fail(p, n->start_mark,
		    "expected %s at the top level, got %s", what, got);
	return fail(p, n->start_mark, "key '%s': expected %s, got %s", path,
	    what, got);
}

/* 0 on success, -1 bad text, -2 too large for size_t. */
static int
size_parse(const char *s, size_t *out)
{
	static const struct {
		const char *name;
		unsigned    shift;
	} suffixes[] = { { "", 0 }, { "K", 10 }, { "KiB", 10 }, { "M", 20 },
		{ "MiB", 20 }, { "G", 30 }, { "GiB", 30 }, { "T", 40 },
		{ "TiB", 40 } };
	size_t v     = 0;
	bool   big   = false;
	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		size_t d = (size_t) (*s - '0');
		if (v > (SIZE_MAX - d) / 10)
			big = true;
		else
			v = v * 10 + d;
	}
	if (*s == ' ') /* "64 MiB" reads naturally; allow one space */
		s++;
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		if (strcmp(s, suffixes[i].name) != 0)
			continue;
		if (i == 0 && s[-1] == ' ')
			return -1;
		if (big || v > (SIZE_MAX >> suffixes[i].shift))
			return -2;
		*out = v << suffixes[i].shift;
		return 0;
	}
	return -1;
}

int
config_parse_size(const char *text, size_t *out)
{
	size_t v;
	if (size_parse(text, &v) != 0)
		return -1;
	*out = v;
	return 0;
}

/* A size as the user would write it: "1MiB", "1536KiB", "1000". */
static const char *
fmt_size(size_t v, char *buf, size_t len)
{
	static const char *const names[] = { "", "KiB", "MiB", "GiB", "TiB" };
	unsigned                 i       = 0;
	while (i < 4 && v != 0 && v % 1024 == 0) {
		v /= 1024;
		i++;
	}
	snprintf(buf, len, "%zu%s", v, names[i]);
	return buf;
}

/* An NNG URL we can listen on: a known scheme, an address, and an ipc path
 * that fits in sockaddr_un. hint explains where a default came from. */
static int
check_endpoint(
    cfgp *p, yaml_mark_t m, const char *key, const char *url, const char *hint)
{
	static const char *const schemes[]
	    = { "ipc://", "tcp://", "inproc://", "tls+tcp://" };
	size_t n = 0;
	for (size_t i = 0; i < 4 && n == 0; i++)
		if (strncmp(url, schemes[i], strlen(schemes[i])) == 0)
			n = strlen(schemes[i]);
	if (n == 0)
		return fail(p, m,
		    "key '%s': '%s' must start with ipc://, tcp://, "
		    "tls+tcp:// or inproc://",
		    key, url);
	if (url[n] == '\0')
		return fail(p, m, "key '%s': '%s' has no address", key, url);
	if (n == 6 && url[0] == 'i' && strlen(url + n) > CFG_IPC_PATH_MAX)
		return fail(p, m,
		    "key '%s': ipc path too long (%zu bytes, max %d): %s%s",
		    key, strlen(url + n), CFG_IPC_PATH_MAX, url + n, hint);
	return SL_OK;
}

/* An HTTP URL NNG's server can serve: http://HOST:PORT/PATH. */
static int
check_http(cfgp *p, yaml_mark_t m, const char *key, const char *url)
{
	const char *host = url + 7, *colon, *slash;
	if (strncmp(url, "http://", 7) != 0)
		return fail(p, m, "key '%s': '%s' must start with http://", key,
		    url);
	slash = strchr(host, '/');
	colon = strchr(host, ':');
	if (slash == NULL || slash[1] == '\0')
		return fail(p, m,
		    "key '%s': '%s' has no path (e.g. http://127.0.0.1:9464"
		    "/metrics)",
		    key, url);
	if (colon == NULL || colon > slash || colon == host
	    || colon + 1 == slash)
		return fail(p, m, "key '%s': '%s' needs a host and a port", key,
		    url);
	for (const char *c = colon + 1; c < slash; c++)
		if (*c < '0' || *c > '9')
			return fail(p, m, "key '%s': '%s': the port is not a "
			                  "number",
			    key, url);
	return SL_OK;
}

/*
 * remote.endpoint is the base of one URL per registration (runtime/remote/remote.c):
 * ipc://PATH gives PATH-<n>.ipc, which must still fit in sockaddr_un;
 * inproc://NAME gives NAME-<n>; tcp://HOST:0 gives a port per registration,
 * so the port must be 0.
 */
static int
check_remote_endpoint(
    cfgp *p, yaml_mark_t m, const char *url, const char *hint)
{
	static const char suffix[] = "-4294967295.ipc"; /* the longest */
	int rc = check_endpoint(p, m, "remote.endpoint", url, hint);
	if (rc != SL_OK)
		return rc;
	if (strncmp(url, "ipc://", 6) == 0
	    && strlen(url + 6) + sizeof(suffix) - 1 > CFG_IPC_PATH_MAX)
		return fail(p, m,
		    "key 'remote.endpoint': ipc path too long for the "
		    "registrations' sockets (%s-<n>.ipc must fit in %d "
		    "bytes): %s%s",
		    url + 6, CFG_IPC_PATH_MAX, url + 6, hint);
	if (strncmp(url, "tcp://", 6) == 0 || sl_tls_url(url)) {
		const char *host = strstr(url, "://") + 3;
		const char *port = strrchr(host, ':');
		const char *rb   = strrchr(host, ']');
		if (port == NULL || (rb != NULL && port < rb)
		    || strcmp(port + 1, "0") != 0)
			return fail(p, m,
			    "key 'remote.endpoint': '%s' must have port 0 "
			    "(tcp://HOST:0 or tls+tcp://HOST:0): each "
			    "registration listens on a "
			    "port of its own, named in the register reply",
			    url);
	}
	return SL_OK;
}

static int
check_id(cfgp *p, yaml_node_t *n, const char *path, const char *id)
{
	size_t len = strlen(id);
	if (len > CFG_ID_MAX)
		return fail(p, n->start_mark,
		    "key '%s': tenant id is %zu bytes, max %d", path, len,
		    CFG_ID_MAX);
	if (strspn(id,
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	        "0123456789._-")
	    != len)
		return fail(p, n->start_mark,
		    "key '%s': tenant id '%s' may only contain A-Z a-z 0-9 . "
		    "_ -",
		    path, id);
	/* The id names a directory under data_dir by default. */
	if (strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
		return fail(p, n->start_mark,
		    "key '%s': tenant id '%s' is not allowed", path, id);
	return SL_OK;
}

/* Check one leaf value against its key's kind; numbers go to *num. */
static int
leaf(cfgp *p, yaml_node_t *n, const char *path, const cfg_key *k, size_t *num)
{
	if (n->type != YAML_SCALAR_NODE)
		return want(p, n, path, expected[k->kind]);
	const char *s = text(n), *d = s + (*s == '-' || *s == '+');
	char        a[32], b[32];
	int         rc;
	long long   ll;
	switch (k->kind) {
	case K_PATH:
	case K_URL:
	case K_ID:
		if (*s == '\0')
			return fail(p, n->start_mark,
			    "key '%s': must not be empty", path);
		if (strlen(s) != n->data.scalar.length)
			return fail(p, n->start_mark,
			    "key '%s': must not contain a NUL byte", path);
		if (k->kind == K_URL)
			return check_endpoint(p, n->start_mark, path, s, "");
		return k->kind == K_ID ? check_id(p, n, path, s) : SL_OK;
	case K_STR:
		if (n->data.scalar.length == 0)
			return fail(p, n->start_mark,
			    "key '%s': must not be empty", path);
		if (strlen(s) != n->data.scalar.length)
			return fail(p, n->start_mark,
			    "key '%s': must not contain a NUL byte", path);
		if (n->data.scalar.length > k->hi)
			return fail(p, n->start_mark,
			    "key '%s': is %zu bytes, max %zu", path,
			    n->data.scalar.length, k->hi);
		return SL_OK;
	case K_RUN:
	case K_TAKE:
	case K_MODE:
	case K_ISO:
	case K_VERIFY:
	case K_BACKEND:
		for (size_t i = 0; words_of(k->kind)[i] != NULL; i++)
			if (strcmp(s, words_of(k->kind)[i]) == 0) {
				*num = i;
				return SL_OK;
			}
		return want(p, n, path, expected[k->kind]);
	case K_PERM:
		if (*s != '0' || strlen(s) > 4 || strlen(s) < 2
		    || strspn(s, "01234567") != strlen(s))
			return want(p, n, path, expected[k->kind]);
		*num = (size_t) strtoul(s, NULL, 8);
		if ((*num & 0600) != 0600)
			return fail(p, n->start_mark,
			    "key '%s': %s must let the daemon's user read and "
			    "write (0600)",
			    path, s);
		return SL_OK;
	case K_GROUP: {
		if (*s == '\0' || strlen(s) != n->data.scalar.length)
			return want(p, n, path, expected[k->kind]);
		struct group  gr, *g = NULL;
		char          buf[4096];
		unsigned long id;
		char         *end;
		if (getgrnam_r(s, &gr, buf, sizeof(buf), &g) == 0 && g != NULL)
			*num = (size_t) g->gr_gid;
		else if ((id = strtoul(s, &end, 10), *end == '\0')
		    && *s >= '0' && *s <= '9' && id < (unsigned long) INT32_MAX)
			*num = (size_t) id;
		else
			return fail(p, n->start_mark,
			    "key '%s': no group '%s' on this host", path, s);
		return SL_OK;
	}
	case K_LEVEL:
		if ((rc = log_level_parse(s)) < 0)
			return want(p, n, path, expected[k->kind]);
		*num = (size_t) rc;
		return SL_OK;
	case K_BOOL:
		if (strcmp(s, "true") != 0 && strcmp(s, "false") != 0)
			return want(p, n, path, expected[k->kind]);
		*num = s[0] == 't';
		return SL_OK;
	case K_INT:
		if (*d == '\0' || strspn(d, "0123456789") != strlen(d))
			return want(p, n, path, expected[k->kind]);
		errno = 0;
		ll    = strtoll(s, NULL, 10);
		if (errno == ERANGE || ll < (long long) k->lo
		    || ll > (long long) k->hi)
			return fail(p, n->start_mark,
			    "key '%s': %s is out of range %zu..%zu", path, s,
			    k->lo, k->hi);
		*num = (size_t) ll;
		return SL_OK;
	default: /* K_SIZE */
		if ((rc = size_parse(s, num)) == -1)
			return want(p, n, path, expected[k->kind]);
		if (rc == -2)
			return fail(p, n->start_mark,
			    "key '%s': %s is too large", path, s);
		if (*num < k->lo && k->hi == 0)
			return fail(p, n->start_mark,
			    "key '%s': %s is below the minimum %s", path, s,
			    fmt_size(k->lo, a, sizeof(a)));
		if (*num < k->lo || (k->hi != 0 && *num > k->hi))
			return fail(p, n->start_mark,
			    "key '%s': %s is out of range %s..%s", path, s,
			    fmt_size(k->lo, a, sizeof(a)),
			    fmt_size(k->hi, b, sizeof(b)));
		return SL_OK;
	}
}

static void
set_defaults(const cfg_key *k, slot *slots)
{
	for (; k->name != NULL; k++)
		if (k->kind == K_MAP)
			set_defaults(k->sub, slots);
		else
			slots[k->slot].num = k->dflt;
}

/*
 * Check that n is a mapping of unique scalar keys out of keys, check each
 * value and record it in slots; descend into nested mappings.
 */
static int
walk(cfgp *p, yaml_node_t *n, const char *path, const cfg_key *keys,
    slot *slots)
{
	if (n->type != YAML_MAPPING_NODE)
		return want(p, n, path, "a mapping");
	yaml_node_pair_t *first = n->data.mapping.pairs.start;
	for (yaml_node_pair_t *pr = first; pr < n->data.mapping.pairs.top;
	     pr++) {
		yaml_node_t *kn = yaml_document_get_node(p->doc, pr->key);
		yaml_node_t *v  = yaml_document_get_node(p->doc, pr->value);
		char         kp[CFG_KEY_MAX];
		int          rc;
		if (kn->type != YAML_SCALAR_NODE)
			return fail(p, kn->start_mark,
			    "%s%s%smapping keys must be scalars",
			    *path ? "key '" : "", path, *path ? "': " : "");
		snprintf(kp, sizeof(kp), "%s%s%.200s", path, *path ? "." : "",
		    text(kn));
		for (yaml_node_pair_t *q = first; q < pr; q++) {
			yaml_node_t *qk
			    = yaml_document_get_node(p->doc, q->key);
			if (qk->type == YAML_SCALAR_NODE
			    && qk->data.scalar.length == kn->data.scalar.length
			    && memcmp(
			           text(qk), text(kn), kn->data.scalar.length)
			        == 0)
				return fail(p, kn->start_mark,
				    "duplicate key '%s' (first at line %zu)",
				    kp, qk->start_mark.line + 1);
		}
		const cfg_key *k = keys;
		while (k->name != NULL
		    && (strlen(k->name) != kn->data.scalar.length
		        || strcmp(k->name, text(kn)) != 0))
			k++;
		if (k->name == NULL)
			return fail(p, kn->start_mark, "unknown key '%s'", kp);
		if (k->kind == K_MAP)
			rc = walk(p, v, kp, k->sub, slots);
		else if (k->kind == K_NODE)
			rc = SL_OK;
		else if (k->kind == K_SEQ)
			rc = v->type == YAML_SEQUENCE_NODE
			    ? SL_OK
			    : want(p, v, kp, expected[K_SEQ]);
		else
			rc = leaf(p, v, kp, k, &slots[k->slot].num);
		if (rc != SL_OK)
			return rc;
		if (k->kind != K_MAP)
			slots[k->slot].node = v;
	}
	return SL_OK;
}

/* Drop empty and "." components; ".." is kept (symlinks make it lexical
 * resolution wrong). */
static void
path_norm(char *s)
{
	char       *w = s;
	const char *r = s;
	if (*s == '/')
		*w++ = '/';
	while (*r != '\0') {
		while (*r == '/')
			r++;
		const char *e = r;
		while (*e != '\0' && *e != '/')
			e++;
		size_t n = (size_t) (e - r);
		if (n > 0 && !(n == 1 && *r == '.')) {
			if (w > s && w[-1] != '/')
				*w++ = '/';
			memmove(w, r, n);
			w += n;
		}
		r = e;
	}
	if (w == s)
		*w++ = '.';
	*w = '\0';
}

/* rel against base (absolute); NULL when out of memory. */
static char *
path_join(const char *base, const char *rel)
{
	char *s;
	if (rel[0] == '/')
		s = strdup(rel);
	else if (asprintf(&s, "%s/%s", base, rel) < 0)
		s = NULL;
	if (s != NULL)
		path_norm(s);
	return s;
}

/* One tenant: a unique id, a read model store in a directory of its own. */
/* One entry of a list (tenants:, projections:, ...): item i of the
 * sequence, with its slots (slots_per of them for each entry). */
typedef int (*item_fn)(
    cfgp *p, yaml_node_t *n, size_t i, sl_config *cfg, slot *slots);

/* The number of entries of a sequence. */
static size_t
list_len(const yaml_node_t *seq)
{
	return (size_t) (seq->data.sequence.items.top
	    - seq->data.sequence.items.start);
}

/* Each entry of the sequence seq through fn (the caller allocated what
 * fn fills, list_len entries). */
static int
parse_items(
    cfgp *p, yaml_node_t *seq, sl_config *cfg, size_t slots_per, item_fn fn)
{
	yaml_node_item_t *items = seq->data.sequence.items.start;
	size_t            count = list_len(seq);
	slot             *ss    = calloc(count * slots_per, sizeof(*ss));
	int               rc    = ss == NULL ? nomem(p) : SL_OK;
	for (size_t i = 0; i < count && rc == SL_OK; i++)
		rc = fn(
		    p, yaml_document_get_node(p->doc, items[i]), i, cfg, ss);
	free(ss);
	return rc;
}

static int
parse_tenant(cfgp *p, yaml_node_t *t, size_t i, sl_config *cfg, slot *ts)
{
	slot       *s  = ts + i * T_N;
	cfg_tenant *ct = &cfg->tenants[i];
	char        path[32], dflt[CFG_ID_MAX + 16];
	int         rc;
	snprintf(path, sizeof(path), "tenants[%zu]", i);
	set_defaults(tenant_keys, s);
	if ((rc = walk(p, t, path, tenant_keys, s)) != SL_OK)
		return rc;
	yaml_node_t *id = s[T_ID].node, *pn = s[T_PATH].node;
	if (id == NULL)
		return fail(
		    p, t->start_mark, "missing required key '%s.id'", path);
	for (size_t j = 0; j < i; j++)
		if (strcmp(cfg->tenants[j].id, text(id)) == 0)
			return fail(p, id->start_mark,
			    "key '%s.id': duplicate tenant id '%s' (first at "
			    "tenants[%zu], line %zu)",
			    path, text(id), j,
			    ts[j * T_N + T_ID].node->start_mark.line + 1);
	if ((ct->id = strdup(text(id))) == NULL)
		return nomem(p);
	cfg->n_tenants  = i + 1;
	ct->rm_map_size = s[T_MAP].num;
	snprintf(dflt, sizeof(dflt), "tenants/%s", ct->id);
	if ((ct->rm_path = path_join(cfg->data_dir, pn ? text(pn) : dflt))
	    == NULL)
		return nomem(p);

	/* Two LMDB environments in one directory would be one. */
	yaml_mark_t m = (pn ? pn : id)->start_mark;
	if (strcmp(ct->rm_path, cfg->store_path) == 0)
		return fail(p, m,
		    "key '%s.read_models.path': %s is also the event store's "
		    "directory",
		    path, ct->rm_path);
	for (size_t j = 0; j < i; j++)
		if (strcmp(ct->rm_path, cfg->tenants[j].rm_path) == 0)
			return fail(p, m,
			    "key '%s.read_models.path': %s is also "
			    "tenants[%zu]'s directory",
			    path, ct->rm_path, j);
	return SL_OK;
}

static int
parse_tenants(cfgp *p, yaml_node_t *seq, sl_config *cfg)
{
	size_t n = list_len(seq);
	if (n == 0)
		return fail(p, seq->start_mark,
		    "key 'tenants': needs at least one tenant");
	if ((cfg->tenants = calloc(n, sizeof(*cfg->tenants))) == NULL)
		return nomem(p);
	return parse_items(p, seq, cfg, T_N, parse_tenant);
}

/* tls: files, relative to the config file's directory cdir. */
static int
tls_paths(sl_config *cfg, slot *s, const char *cdir)
{
	char      **dst[4] = { &cfg->tls.cert_file, &cfg->tls.key_file,
		     &cfg->tls.ca_file, &cfg->tls.key_password };
	const int   src[4] = { S_TLSCERT, S_TLSKEY, S_TLSCA, S_TLSPASS };
	for (int i = 0; i < 4; i++) {
		yaml_node_t *n = s[src[i]].node;
		if (n == NULL)
			continue;
		*dst[i] = i < 3 ? path_join(cdir, text(n)) : strdup(text(n));
		if (*dst[i] == NULL)
			return SL_ENOMEM;
	}
	return SL_OK;
}

/*
 * The tls: section: a tls+tcp:// endpoint needs it; it needs a certificate
 * and its key, and a CA to verify clients with; every file must be there,
 * readable and right (checked by the same code that loads them).
 */
static int
parse_tls(cfgp *p, sl_config *cfg, slot *s)
{
	const char  *keys[3] = { "endpoints.api", "endpoints.pub",
		 "remote.endpoint" };
	const char  *urls[3] = { cfg->api_url, cfg->pub_url, cfg->remote_url };
	yaml_node_t *nodes[3] = { s[S_API].node, s[S_PUB].node,
		s[S_REMURL].node };
	bool         any = false;
	for (int i = 0; i < 5; i++)
		any = any || s[S_TLSCERT + i].node != NULL;
	for (int i = 0; i < 3 && !any; i++)
		if (sl_tls_url(urls[i]))
			return fail(p, nodes[i]->start_mark,
			    "key '%s': %s needs a 'tls:' section (cert_file, "
			    "key_file) with the daemon's certificate",
			    keys[i], urls[i]);
	if (!any)
		return SL_OK;
	cfg->tls.verify = (int) s[S_TLSVERIFY].num;
	if (s[S_TLSVERIFY].node == NULL && cfg->tls.ca_file != NULL)
		cfg->tls.verify = NNG_TLS_AUTH_MODE_REQUIRED;
	yaml_node_t *first = NULL; /* the section's first key, for a mark */
	for (int i = 0; i < 5; i++)
		if (s[S_TLSCERT + i].node != NULL
		    && (first == NULL
		        || s[S_TLSCERT + i].node->start_mark.index
		            < first->start_mark.index))
			first = s[S_TLSCERT + i].node;
	if (cfg->tls.cert_file == NULL || cfg->tls.key_file == NULL)
		return fail(p, first->start_mark,
		    "missing required key 'tls.%s' (the daemon's certificate "
		    "and its private key, PEM files)",
		    cfg->tls.cert_file == NULL ? "cert_file" : "key_file");
	if (cfg->tls.verify != NNG_TLS_AUTH_MODE_NONE
	    && cfg->tls.ca_file == NULL)
		return fail(p, s[S_TLSVERIFY].node->start_mark,
		    "key 'tls.verify_clients': %s needs 'tls.ca_file' (the CA "
		    "that signs the clients' certificates)",
		    verify_words[cfg->tls.verify]);
	sl_tls_server ts;
	config_tls_server(cfg, &ts);
	const char *what = "cert_file";
	char        msg[384];
	int         rc = sl_tls_server_config(&ts, NULL, &what, msg,
	            sizeof(msg));
	if (rc == SL_ENOMEM)
		return nomem(p);
	if (rc == SL_OK)
		return SL_OK;
	int slot = strcmp(what, "key_file") == 0 ? S_TLSKEY
	    : strcmp(what, "key_password") == 0  ? S_TLSPASS
	    : strcmp(what, "ca_file") == 0       ? S_TLSCA
	                                         : S_TLSCERT;
	/* a key that needs a password with none given: blame key_file */
	yaml_node_t *n = s[slot].node != NULL ? s[slot].node : s[S_TLSKEY].node;
	return fail(p, n->start_mark, "key 'tls.%s': %s",
	    n == s[slot].node ? what : "key_file", msg);
}

void
config_tls_server(const sl_config *cfg, struct sl_tls_server *out)
{
	*out = (sl_tls_server) {
		.cert_file    = cfg->tls.cert_file,
		.key_file     = cfg->tls.key_file,
		.key_password = cfg->tls.key_password,
		.ca_file      = cfg->tls.ca_file,
		.verify       = cfg->tls.verify,
	};
}

/* Paths and endpoints, whose defaults hang off data_dir. */
static int
resolve(cfgp *p, sl_config *cfg, slot *s)
{
	char *cwd = NULL, *abs = NULL;
	if (p->file[0] != '/' && (cwd = getcwd(NULL, 0)) == NULL) {
		snprintf(p->err, p->errlen,
		    "%s: cannot get the current directory: %s", p->file,
		    strerror(errno));
		return SL_ECONFIG;
	}
	abs = path_join(cwd, p->file);
	free(cwd);
	if (abs == NULL)
		return nomem(p);
	*strrchr(abs, '/') = '\0'; /* the config file's directory */
	const char *cdir   = abs[0] != '\0' ? abs : "/";
	cfg->data_dir
	    = path_join(cdir, s[S_DATA].node ? text(s[S_DATA].node) : "data");
	cfg->plugin_dir = path_join(
	    cdir, s[S_PLUGINS].node ? text(s[S_PLUGINS].node) : "plugins");
	int trc = tls_paths(cfg, s, cdir);
	free(abs);
	if (trc != SL_OK)
		return nomem(p);
	if (cfg->data_dir == NULL || cfg->plugin_dir == NULL
	    || (cfg->store_path = path_join(cfg->data_dir,
	            s[S_SPATH].node ? text(s[S_SPATH].node) : "events"))
	        == NULL)
		return nomem(p);

	/* Defaults derived from data_dir are blamed on data_dir. */
	yaml_mark_t dm
	    = (s[S_DATA].node ? s[S_DATA].node : p->root)->start_mark;
	const char *names[2] = { "api", "pub" };
	char      **urls[2]  = { &cfg->api_url, &cfg->pub_url };
	for (int i = 0; i < 2; i++) {
		yaml_node_t *n = s[S_API + i].node;
		char         key[16], hint[64];
		snprintf(key, sizeof(key), "endpoints.%s", names[i]);
		snprintf(hint, sizeof(hint),
		    " (the default under data_dir; set %s)", key);
		if (n != NULL)
			*urls[i] = strdup(text(n));
		else if (asprintf(urls[i], "ipc://%s/%s.ipc", cfg->data_dir,
		             names[i])
		    < 0)
			*urls[i] = NULL;
		if (*urls[i] == NULL)
			return nomem(p);
		int rc = n != NULL
		    ? SL_OK
		    : check_endpoint(p, dm, key, *urls[i], hint);
		if (rc != SL_OK)
			return rc;
	}
	if (strcmp(cfg->api_url, cfg->pub_url) == 0)
		return fail(p, s[S_PUB].node ? s[S_PUB].node->start_mark : dm,
		    "key 'endpoints.pub': same address as endpoints.api (%s)",
		    cfg->pub_url);

	/* the HTTP endpoints: metrics and the admin page (one listener
	 * when they share HOST:PORT) */
	const char *hkeys[2] = { "endpoints.metrics", "endpoints.admin" };
	char      **hurls[2] = { &cfg->metrics_url, &cfg->admin_url };
	for (int i = 0; i < 2; i++) {
		yaml_node_t *hn = s[S_METRICS + i].node;
		if (hn == NULL)
			continue;
		int rc = check_http(p, hn->start_mark, hkeys[i], text(hn));
		if (rc != SL_OK)
			return rc;
		if ((*hurls[i] = strdup(text(hn))) == NULL)
			return nomem(p);
	}

	yaml_node_t *rn = s[S_REMURL].node;
	if (rn != NULL)
		cfg->remote_url = strdup(text(rn));
	else if (asprintf(&cfg->remote_url, "ipc://%s/remote", cfg->data_dir)
	    < 0)
		cfg->remote_url = NULL;
	if (cfg->remote_url == NULL)
		return nomem(p);
	/* The default is not checked for length: a data_dir that fits
	 * api.ipc but not remote-<n>.ipc must not stop a daemon that has
	 * no remote clients; a registration then fails with the reason. */
	return rn != NULL
	    ? check_remote_endpoint(p, rn->start_mark, cfg->remote_url, "")
	    : SL_OK;
}

/* The six settings from slots b.., in SETTING_KEYS order. */
static void
settings_get(const slot *s, proj_settings *out)
{
	out->checkpoint_after_ms                  = (uint32_t) s[0].num;
	out->checkpoint_handled_threshold         = (uint32_t) s[1].num;
	out->checkpoint_unhandled_bytes_threshold = s[2].num;
	out->pending_events_threshold             = (uint32_t) s[3].num;
	out->max_write_batch_length               = (uint32_t) s[4].num;
	out->max_allowed_writes_in_flight         = (uint32_t) s[5].num;
}

static void
settings_put(const proj_settings *in, slot *s)
{
	s[0].num = in->checkpoint_after_ms;
	s[1].num = in->checkpoint_handled_threshold;
	s[2].num = in->checkpoint_unhandled_bytes_threshold;
	s[3].num = in->pending_events_threshold;
	s[4].num = in->max_write_batch_length;
	s[5].num = in->max_allowed_writes_in_flight;
}

/*
 * The system projections' names and fixed ids (runtime/processing/sysproj.h; config.c
 * does not link sysproj.c, so that the config tests stay small).
 */
static const char *const sys_names[] = { "$by_category", "$by_event_type",
	"$by_correlation_id", "$stream_by_category", "$streams" };

/* "00000000-0000-0000-0000-00000000000N", N = 1..5: a system projection. */
static bool
is_sys_id(const char *s)
{
	static const char zero[] = "00000000-0000-0000-0000-00000000000";
	return strncmp(s, zero, sizeof(zero) - 1) == 0
	    && s[sizeof(zero) - 1] >= '1' && s[sizeof(zero) - 1] <= '5'
	    && s[sizeof(zero)] == '\0';
}

/* One `projections:` entry; ps: the slots of the entries before it. */
static int
parse_projection(cfgp *p, yaml_node_t *n, size_t i, sl_config *cfg, slot *ps)
{
	slot           *s  = ps + i * P_N;
	cfg_projection *cp = &cfg->projections[i];
	char            path[40];
	int             rc;
	snprintf(path, sizeof(path), "projections[%zu]", i);
	set_defaults(projection_keys, s);
	settings_put(&cfg->proj_defaults, s + P_SET);
	if ((rc = walk(p, n, path, projection_keys, s)) != SL_OK)
		return rc;
	yaml_node_t *nn = s[P_NAME].node;
	if (nn == NULL)
		return fail(
		    p, n->start_mark, "missing required key '%s.name'", path);
	if ((cp->name = strdup(text(nn))) == NULL)
		return nomem(p);
	cfg->n_projections = i + 1;
	if (ev_uuid_canon(cp->name, strlen(cp->name), NULL)) /* ids are matched as canonical lower case */
		for (char *c = cp->name; *c != '\0'; c++)
			*c = (char) tolower((unsigned char) *c);
	cp->mode = (cfg_mode) s[P_MODE].num;
	settings_get(s + P_SET, &cp->set);

	for (size_t j = 0; j < i; j++)
		if (strcmp(cfg->projections[j].name, cp->name) == 0)
			return fail(p, nn->start_mark,
			    "key '%s.name': duplicate projection '%s' "
			    "(first at projections[%zu], line %zu)",
			    path, text(nn), j,
			    ps[j * P_N + P_NAME].node->start_mark.line + 1);
	bool sys = is_sys_id(cp->name);
	if (cp->name[0] == '$') {
		size_t k = 0;
		while (k < 5 && strcmp(sys_names[k], cp->name) != 0)
			k++;
		if (k == 5)
			return fail(p, nn->start_mark,
			    "key '%s.name': no system projection is named "
			    "'%s' (names starting with '$' are reserved for "
			    "$by_category, $by_event_type, "
			    "$by_correlation_id, $stream_by_category and "
			    "$streams)",
			    path, text(nn));
		sys = true;
	}
	/* As in EventStoreDB, the system projections are continuous. */
	if (sys && cp->mode != CFG_MODE_CONTINUOUS)
		return fail(p, s[P_MODE].node->start_mark,
		    "key '%s.mode': system projection '%s' runs "
		    "continuously only (as in EventStoreDB)",
		    path, text(nn));
	return SL_OK;
}

static int
parse_projections(cfgp *p, yaml_node_t *seq, sl_config *cfg)
{
	size_t n = list_len(seq);
	if (n == 0)
		return SL_OK;
	if ((cfg->projections = calloc(n, sizeof(*cfg->projections))) == NULL)
		return nomem(p);
	return parse_items(p, seq, cfg, P_N, parse_projection);
}

/* ---- auth: (docs/security.md) ---- */

static const char *const role_words[]
    = { "read", "write", "operate", "register", "admin", NULL };

static int
hex_digit(char c)
{
	return c >= '0' && c <= '9' ? c - '0'
	    : c >= 'a' && c <= 'f'  ? c - 'a' + 10
	    : c >= 'A' && c <= 'F'  ? c - 'A' + 10
	                            : -1;
}

/* roles: a non-empty sequence of role_words, each once. */
static int
parse_roles(cfgp *p, yaml_node_t *seq, const char *path, unsigned *out)
{
	yaml_node_item_t *it = seq->data.sequence.items.start;
	*out                 = 0;
	if (it == seq->data.sequence.items.top)
		return fail(p, seq->start_mark,
		    "key '%s.roles': needs at least one role (read, write, "
		    "operate, register, admin)",
		    path);
	for (; it < seq->data.sequence.items.top; it++) {
		yaml_node_t *n = yaml_document_get_node(p->doc, *it);
		size_t       i = 0;
		while (n->type == YAML_SCALAR_NODE && role_words[i] != NULL
		    && strcmp(text(n), role_words[i]) != 0)
			i++;
		if (n->type != YAML_SCALAR_NODE || role_words[i] == NULL)
			return want(p, n, path,
			    "a role: read, write, operate, register or admin");
		if (*out & (1u << i))
			return fail(p, n->start_mark,
			    "key '%s.roles': role '%s' is given twice", path,
			    role_words[i]);
		*out |= 1u << i;
	}
	return SL_OK;
}

/* tenants: "*" or a sequence of ids of tenants:, each once. */
static int
parse_cred_tenants(cfgp *p, yaml_node_t *n, const char *path,
    const sl_config *cfg, cfg_cred *c)
{
	static const char what[]
	    = "\"*\" (every tenant) or a sequence of tenant ids";
	if (n->type == YAML_SCALAR_NODE) {
		if (strcmp(text(n), "*") != 0)
			return want(p, n, path, what);
		c->all_tenants = true;
		return SL_OK;
	}
	if (n->type != YAML_SEQUENCE_NODE)
		return want(p, n, path, what);
	yaml_node_item_t *it    = n->data.sequence.items.start;
	size_t            count = (size_t) (n->data.sequence.items.top - it);
	if (count == 0)
		return fail(p, n->start_mark,
		    "key '%s': needs at least one tenant (or \"*\")", path);
	if ((c->tenants = calloc(count, sizeof(*c->tenants))) == NULL)
		return nomem(p);
	for (size_t i = 0; i < count; i++) {
		yaml_node_t *t  = yaml_document_get_node(p->doc, it[i]);
		bool         ok = false;
		if (t->type != YAML_SCALAR_NODE)
			return want(p, t, path, "a tenant id");
		for (size_t j = 0; j < cfg->n_tenants && !ok; j++)
			ok = strcmp(cfg->tenants[j].id, text(t)) == 0;
		if (!ok)
			return fail(p, t->start_mark,
			    "key '%s': no tenant '%s' in 'tenants' (or \"*\" "
			    "for every tenant)",
			    path, text(t));
		for (size_t j = 0; j < c->n_tenants; j++)
			if (strcmp(c->tenants[j], text(t)) == 0)
				return fail(p, t->start_mark,
				    "key '%s': tenant '%s' is given twice",
				    path, text(t));
		if ((c->tenants[c->n_tenants] = strdup(text(t))) == NULL)
			return nomem(p);
		c->n_tenants++;
	}
	return SL_OK;
}

/* One auth.tokens (subject false) or auth.subjects entry. */
static int
parse_cred(cfgp *p, yaml_node_t *n, const char *list, size_t i, bool subject,
    sl_config *cfg, cfg_cred *c)
{
	slot s[C_N];
	char path[48];
	int  rc;
	memset(s, 0, sizeof(s));
	snprintf(path, sizeof(path), "auth.%s[%zu]", list, i);
	set_defaults(cred_keys, s);
	if ((rc = walk(p, n, path, cred_keys, s)) != SL_OK)
		return rc;
	const char  *need  = subject ? "subject" : "token_sha256";
	yaml_node_t *other = subject ? s[C_TOKEN].node : s[C_SUBJECT].node;
	if (s[C_NAME].node == NULL
	    || s[subject ? C_SUBJECT : C_TOKEN].node == NULL
	    || s[C_ROLES].node == NULL)
		return fail(p, n->start_mark,
		    "key '%s': needs 'name', '%s' and 'roles'", path, need);
	if (other != NULL)
		return fail(p, other->start_mark,
		    "key '%s.%s': not allowed in auth.%s (only '%s')", path,
		    subject ? "token_sha256" : "subject", list, need);
	const char *name = text(s[C_NAME].node);
	for (size_t j = 0; j < cfg->n_creds; j++)
		if (strcmp(cfg->creds[j].name, name) == 0)
			return fail(p, s[C_NAME].node->start_mark,
			    "key '%s.name': credential '%s' is named twice",
			    path, name);
	if ((c->name = strdup(name)) == NULL)
		return nomem(p);
	cfg->n_creds++; /* from here config_free frees it */
	if (!subject) {
		const char *h = text(s[C_TOKEN].node);
		if (strlen(h) != 64
		    || strspn(h, "0123456789abcdefABCDEF") != 64)
			return fail(p, s[C_TOKEN].node->start_mark,
			    "key '%s.token_sha256': must be the token's "
			    "SHA-256 as 64 hex digits (sluice auth "
			    "hash-token makes it; never the token itself)",
			    path);
		for (size_t k = 0; k < 32; k++)
			c->token_hash[k] = (uint8_t) (hex_digit(h[2 * k]) * 16
			    + hex_digit(h[2 * k + 1]));
		c->has_token = true;
		for (size_t j = 0; j + 1 < cfg->n_creds; j++)
			if (cfg->creds[j].has_token
			    && memcmp(
			           cfg->creds[j].token_hash, c->token_hash, 32)
			        == 0)
				return fail(p, s[C_TOKEN].node->start_mark,
				    "key '%s.token_sha256': the same token as "
				    "credential '%s'",
				    path, cfg->creds[j].name);
	} else if ((c->subject = strdup(text(s[C_SUBJECT].node))) == NULL)
		return nomem(p);
	if ((rc = parse_roles(p, s[C_ROLES].node, path, &c->roles)) != SL_OK)
		return rc;
	c->max_registrations = (uint32_t) s[C_MAXREG].num;
	c->max_connections   = (uint32_t) s[C_MAXCONN].num;
	if (c->roles & CFG_ROLE_ADMIN) {
		yaml_node_t *t = s[C_TENANTS].node;
		if (t != NULL
		    && (t->type != YAML_SCALAR_NODE
		        || strcmp(text(t), "*") != 0))
			return fail(p, t->start_mark,
			    "key '%s.tenants': an admin has every tenant: "
			    "leave it out or give \"*\"",
			    path);
		c->all_tenants = true;
		return SL_OK;
	}
	if (s[C_TENANTS].node == NULL)
		return fail(p, n->start_mark,
		    "key '%s': needs 'tenants' (a list of tenant ids, or "
		    "\"*\")",
		    path);
	snprintf(path + strlen(path), sizeof(path) - strlen(path), ".tenants");
	return parse_cred_tenants(p, s[C_TENANTS].node, path, cfg, c);
}

/* Whether the file has an auth: key (auth: {} holds no leaf to show it). */
static bool
auth_given(cfgp *p)
{
	yaml_node_pair_t *pr = p->root->data.mapping.pairs.start;
	for (; pr < p->root->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = yaml_document_get_node(p->doc, pr->key);
		if (k->type == YAML_SCALAR_NODE
		    && strcmp(text(k), "auth") == 0)
			return true;
	}
	return false;
}

/* auth: given means every request needs a credential. */
static int
parse_auth(cfgp *p, sl_config *cfg, slot *s)
{
	yaml_node_t *lists[2]
	    = { s[S_AUTHTOKENS].node, s[S_AUTHSUBJECTS].node };
	size_t total = 0;
	for (int l = 0; l < 2; l++)
		if (lists[l] != NULL)
			total += (size_t) (lists[l]->data.sequence.items.top
			    - lists[l]->data.sequence.items.start);
	if (total == 0)
		return fail(p, p->root->start_mark,
		    "key 'auth': needs at least one credential in "
		    "auth.tokens (or auth.subjects)");
	if ((cfg->creds = calloc(total, sizeof(*cfg->creds))) == NULL)
		return nomem(p);
	cfg->auth_on = true;
	for (int l = 0; l < 2; l++) {
		if (lists[l] == NULL)
			continue;
		yaml_node_item_t *it = lists[l]->data.sequence.items.start;
		for (size_t i = 0; it + i < lists[l]->data.sequence.items.top;
		     i++) {
			int rc = parse_cred(p,
			    yaml_document_get_node(p->doc, it[i]),
			    l == 0 ? "tokens" : "subjects", i, l == 1, cfg,
			    &cfg->creds[cfg->n_creds]);
			if (rc != SL_OK)
				return rc;
		}
	}
	return SL_OK;
}

/* A tcp listener (api, pub, remote) and the admin page (the API over
 * WebSocket) are open to the network: only with auth:, or when the file
 * says insecure: true. A registration's socket (remote.endpoint) carries
 * events to whoever dials it first without auth, and in clear text on
 * tcp://: with auth only tls+tcp:// goes without insecure: true. */
static int
check_network(cfgp *p, const sl_config *cfg, const slot *s)
{
	const char *urls[4]
	    = { cfg->api_url, cfg->pub_url, cfg->remote_url, cfg->admin_url };
	const char *keys[4] = { "endpoints.api", "endpoints.pub",
		"remote.endpoint", "endpoints.admin" };
	const int   slots[4] = { S_API, S_PUB, S_REMURL, S_ADMIN };
	if (cfg->insecure)
		return SL_OK;
	for (int i = 0; i < 4; i++) {
		bool net = urls[i] != NULL
		    && (strncmp(urls[i], "tcp://", 6) == 0
		        || strncmp(urls[i], "tls+tcp://", 10) == 0
		        || i == 3);
		if (!net || (cfg->auth_on && i != 2))
			continue;
		yaml_node_t *n = s[slots[i]].node;
		yaml_mark_t  m = n != NULL ? n->start_mark : p->root->start_mark;
		/* under auth a registration's client proves it registered
		 * (hello): on tls+tcp:// nobody else reads its traffic */
		if (i == 2 && cfg->auth_on && sl_tls_url(urls[i]))
			continue;
		if (i == 2 && cfg->auth_on)
			return fail(p, m,
			    "key '%s': %s carries a registration's events and "
			    "session in clear text on the network: use ipc:// "
			    "(the default) or tls+tcp://, or say 'insecure: "
			    "true' (docs/security.md)",
			    keys[i], urls[i]);
		if (i == 2)
			return fail(p, m,
			    "key '%s': %s listens on the network and hands a "
			    "registration's events to whoever dials it first "
			    "(without 'auth:' no client proves it "
			    "registered): "
			    "use ipc:// (the default), or say 'insecure: "
			    "true' "
			    "(docs/security.md)",
			    keys[i], urls[i]);
		return fail(p, m,
		    "key '%s': %s %s on the network, and there is no 'auth:' "
		    "section: add one (docs/security.md), or say 'insecure: "
		    "true' to let anyone who can connect do anything",
		    keys[i], urls[i],
		    i == 3 ? "serves the API (the admin page's)" : "listens");
	}
	return SL_OK;
}

/* run_projections, system_projections, projection_settings, projections. */
static int
parse_projection_model(cfgp *p, sl_config *cfg, slot *s)
{
	cfg->run_projections            = (cfg_run) s[S_RUNPROJ].num;
	cfg->start_standard_projections = s[S_STARTSTD].num != 0;
	cfg->category_last              = s[S_CATTAKE].num != 0;
	cfg->category_separator
	    = strdup(s[S_CATSEP].node ? text(s[S_CATSEP].node) : "-");
	cfg->correlation_property = strdup(
	    s[S_CORRPROP].node ? text(s[S_CORRPROP].node) : "$correlationId");
	if (cfg->category_separator == NULL
	    || cfg->correlation_property == NULL)
		return nomem(p);
	settings_get(s + S_SET, &cfg->proj_defaults);
	return s[S_PROJS].node != NULL
	    ? parse_projections(p, s[S_PROJS].node, cfg)
	    : SL_OK;
}

/* One `plugins:` entry; gs: the slots of the entries before it. */
static int
parse_plugin(cfgp *p, yaml_node_t *n, size_t i, sl_config *cfg, slot *gs)
{
	slot       *s  = gs + i * G_N;
	cfg_plugin *cp = &cfg->plugins[i];
	char        path[40];
	int         rc;
	snprintf(path, sizeof(path), "plugins[%zu]", i);
	set_defaults(plugin_keys, s);
	if ((rc = walk(p, n, path, plugin_keys, s)) != SL_OK)
		return rc;
	yaml_node_t *fn = s[G_FILE].node;
	if (fn == NULL)
		return fail(
		    p, n->start_mark, "missing required key '%s.file'", path);
	const char *f   = text(fn);
	size_t      len = strlen(f);
	if (strchr(f, '/') != NULL || len < 4 || strcmp(f + len - 3, ".so") != 0)
		return fail(p, fn->start_mark,
		    "key '%s.file': '%s' is not the name of a .so file in "
		    "plugin_dir (no '/')",
		    path, f);
	if ((cp->file = strdup(f)) == NULL)
		return nomem(p);
	cp->isolation   = (cfg_isolation) s[G_ISO].num;
	cfg->n_plugins = i + 1;
	for (size_t j = 0; j < i; j++)
		if (strcmp(cfg->plugins[j].file, cp->file) == 0)
			return fail(p, fn->start_mark,
			    "key '%s.file': duplicate plugin '%s' (first at "
			    "plugins[%zu], line %zu)",
			    path, f, j,
			    gs[j * G_N + G_FILE].node->start_mark.line + 1);
	return SL_OK;
}

static int
parse_plugins(cfgp *p, yaml_node_t *seq, sl_config *cfg)
{
	size_t n = list_len(seq);
	if (n == 0)
		return SL_OK;
	if ((cfg->plugins = calloc(n, sizeof(*cfg->plugins))) == NULL)
		return nomem(p);
	return parse_items(p, seq, cfg, G_N, parse_plugin);
}

/*
 * One endpoints.feeds entry: a tenant of tenants:, once; a tls+tcp:// URL
 * of its own. A connection is let in by its verified client certificate
 * (auth.subjects), so the daemon needs auth: and a CA to verify with.
 */
static int
parse_feed(cfgp *p, yaml_node_t *n, size_t i, sl_config *cfg, slot *fs)
{
	slot     *s  = fs + i * F_N;
	cfg_feed *cf = &cfg->feeds[i];
	char      path[40];
	int       rc;
	snprintf(path, sizeof(path), "endpoints.feeds[%zu]", i);
	set_defaults(feed_keys, s);
	if ((rc = walk(p, n, path, feed_keys, s)) != SL_OK)
		return rc;
	yaml_node_t *tn = s[F_TENANT].node, *un = s[F_URL].node;
	if (tn == NULL || un == NULL)
		return fail(p, n->start_mark, "missing required key '%s.%s'",
		    path, tn == NULL ? "tenant" : "url");
	const char *t = text(tn), *u = text(un);
	size_t      k = 0;
	while (k < cfg->n_tenants && strcmp(cfg->tenants[k].id, t) != 0)
		k++;
	if (k == cfg->n_tenants)
		return fail(p, tn->start_mark,
		    "key '%s.tenant': '%s' is not a tenant of 'tenants:'",
		    path, t);
	if (!cfg->auth_on)
		return fail(p, n->start_mark,
		    "key '%s': a tenant's feed admits connections by their "
		    "credential: it needs an 'auth:' section (without one, "
		    "endpoints.pub carries every tenant's events)",
		    path);
	if (!sl_tls_url(u) || cfg->tls.ca_file == NULL
	    || cfg->tls.verify == NNG_TLS_AUTH_MODE_NONE)
		return fail(p, un->start_mark,
		    "key '%s.url': %s: a tenant's feed admits a connection "
		    "by its verified TLS client certificate (auth.subjects): "
		    "it must be tls+tcp://, with tls.ca_file and "
		    "tls.verify_clients optional or required",
		    path, u);
	if (strcmp(u, cfg->api_url) == 0 || strcmp(u, cfg->pub_url) == 0)
		return fail(p, un->start_mark,
		    "key '%s.url': same address as endpoints.%s (%s)", path,
		    strcmp(u, cfg->api_url) == 0 ? "api" : "pub", u);
	cfg->n_feeds = i + 1;
	if ((cf->tenant = strdup(t)) == NULL || (cf->url = strdup(u)) == NULL)
		return nomem(p);
	for (size_t j = 0; j < i; j++) {
		if (strcmp(cfg->feeds[j].tenant, t) == 0)
			return fail(p, tn->start_mark,
			    "key '%s.tenant': tenant '%s' has a feed already "
			    "(endpoints.feeds[%zu])",
			    path, t, j);
		if (strcmp(cfg->feeds[j].url, u) == 0)
			return fail(p, un->start_mark,
			    "key '%s.url': same address as "
			    "endpoints.feeds[%zu] (%s)",
			    path, j, u);
	}
	return SL_OK;
}

static int
parse_feeds(cfgp *p, yaml_node_t *seq, sl_config *cfg)
{
	size_t n = list_len(seq);
	if (n == 0)
		return SL_OK;
	if ((cfg->feeds = calloc(n, sizeof(*cfg->feeds))) == NULL)
		return nomem(p);
	return parse_items(p, seq, cfg, F_N, parse_feed);
}

/* event_store.backend, url, timeout_ms and lease_ms. What writes to the
 * log from inside the runtime (emitting and system projections) runs
 * under a lease on one node of several (docs/postgresql.md). */
static int
parse_backend(cfgp *p, sl_config *cfg, slot *s)
{
	cfg->store_backend  = (cfg_backend) s[S_BACKEND].num;
	cfg->store_lease_ms = (uint32_t) s[S_LEASEMS].num;
	if (cfg->store_backend == CFG_BACKEND_LMDB) {
		if (s[S_SURL].node != NULL)
			return fail(p, s[S_SURL].node->start_mark,
			    "key 'event_store.url': only for 'backend: "
			    "postgresql' (the backend is lmdb)");
		if (s[S_STIMEOUT].node != NULL)
			return fail(p, s[S_STIMEOUT].node->start_mark,
			    "key 'event_store.timeout_ms': only for 'backend: "
			    "postgresql' (the backend is lmdb)");
		if (s[S_LEASEMS].node != NULL)
			return fail(p, s[S_LEASEMS].node->start_mark,
			    "key 'event_store.lease_ms': only for 'backend: "
			    "postgresql' (the backend is lmdb: one node, no "
			    "leases)");
		return SL_OK;
	}
	if (s[S_SURL].node == NULL)
		return fail(p, s[S_BACKEND].node->start_mark,
		    "key 'event_store.backend': postgresql needs "
		    "'event_store.url' (e.g. postgresql://sluice@db/sluice)");
	if ((cfg->store_url = strdup(text(s[S_SURL].node))) == NULL)
		return nomem(p);
	cfg->store_timeout_ms = (int) s[S_STIMEOUT].num;
	return SL_OK;
}

static int
parse_root(cfgp *p, sl_config *cfg)
{
	slot s[S_N];
	int  rc;
	memset(s, 0, sizeof(s));
	set_defaults(top_keys, s);
	if ((rc = walk(p, p->root, "", top_keys, s)) != SL_OK)
		return rc;
	if (s[S_TENANTS].node == NULL)
		return fail(
		    p, p->root->start_mark, "missing required key 'tenants'");
	cfg->log_level                = (int) s[S_LEVEL].num;
	cfg->store_map_size           = s[S_SMAP].num;
	cfg->store_sync               = s[S_SYNC].num != 0;
	if ((rc = parse_backend(p, cfg, s)) != SL_OK)
		return rc;
	cfg->max_request_bytes        = s[S_MAXREQ].num;
	cfg->max_events_per_commit    = s[S_MAXEV].num;
	cfg->max_read_events          = s[S_MAXREAD].num;
	cfg->api_workers              = (uint32_t) s[S_WORKERS].num;
	cfg->api_slow_workers         = (uint32_t) s[S_SLOWWORKERS].num;
	cfg->api_queue                = (uint32_t) s[S_APIQUEUE].num;
	cfg->query_timeout_ms         = (uint32_t) s[S_QUERYMS].num;
	cfg->handler_timeout_ms       = (uint32_t) s[S_HANDLERMS].num;
	cfg->shutdown_timeout_ms      = (uint32_t) s[S_SHUTDOWNMS].num;
	if (s[S_IDLEMS].num != 0 && s[S_IDLEMS].num < 100)
		return fail(p, s[S_IDLEMS].node->start_mark,
		    "key 'limits.idle_timeout_ms': %zu is too short: 0 (no "
		    "timeout) or 100..86400000",
		    s[S_IDLEMS].num);
	cfg->idle_timeout_ms          = (uint32_t) s[S_IDLEMS].num;
	cfg->max_connections          = (uint32_t) s[S_MAXCONN].num;
	cfg->checkpoint_batch         = (uint32_t) s[S_BATCH].num;
	cfg->hot_reload               = s[S_HOTRELOAD].num != 0;
	cfg->hot_reload_quiet_ms      = (uint32_t) s[S_QUIETMS].num;
	cfg->remote_keepalive_ms      = (uint32_t) s[S_REMKEEP].num;
	cfg->remote_timeout_ms        = (uint32_t) s[S_REMTIMEOUT].num;
	cfg->remote_window            = (uint32_t) s[S_REMWINDOW].num;
	cfg->remote_batch             = (uint32_t) s[S_REMBATCH].num;
	cfg->remote_max_registrations = (uint32_t) s[S_REMMAX].num;
	if (s[S_REMEXPIRY].num != 0 && s[S_REMEXPIRY].num < 100)
		return fail(p, s[S_REMEXPIRY].node->start_mark,
		    "key 'remote.registration_expiry_ms': %zu is too short: "
		    "0 (never) or 100..2592000000",
		    s[S_REMEXPIRY].num);
	cfg->remote_expiry_ms = (uint32_t) s[S_REMEXPIRY].num;
	cfg->access_gid  = s[S_GROUP].node != NULL ? (long) s[S_GROUP].num : -1;
	cfg->socket_mode = (uint32_t) s[S_SOCKMODE].num;
	if ((rc = resolve(p, cfg, s)) != SL_OK
	    || (rc = parse_tls(p, cfg, s)) != SL_OK)
		return rc;
	if ((rc = parse_tenants(p, s[S_TENANTS].node, cfg)) != SL_OK)
		return rc;
	cfg->insecure = s[S_INSECURE].num != 0;
	if ((s[S_AUTHTOKENS].node != NULL || s[S_AUTHSUBJECTS].node != NULL
	        || auth_given(p))
	    && (rc = parse_auth(p, cfg, s)) != SL_OK)
		return rc;
	if ((rc = check_network(p, cfg, s)) != SL_OK)
		return rc;
	if (s[S_FEEDS].node != NULL
	    && (rc = parse_feeds(p, s[S_FEEDS].node, cfg)) != SL_OK)
		return rc;
	if (s[S_PLUGLIST].node != NULL
	    && (rc = parse_plugins(p, s[S_PLUGLIST].node, cfg)) != SL_OK)
		return rc;
	return parse_projection_model(p, cfg, s);
}

/* "line:col" of a byte offset, for reader errors that carry no mark. */
static yaml_mark_t
offset_mark(const char *buf, size_t off)
{
	yaml_mark_t m = { off, 0, 0 };
	for (size_t i = 0; i < off; i++) {
		m.column++;
		if (buf[i] == '\n') {
			m.line++;
			m.column = 0;
		}
	}
	return m;
}

static int
syntax_error(cfgp *p, yaml_parser_t *ps, const char *buf)
{
	if (ps->error == YAML_MEMORY_ERROR)
		return nomem(p);
	if (ps->error == YAML_READER_ERROR)
		return fail(p, offset_mark(buf, ps->problem_offset),
		    "YAML syntax error: %s",
		    ps->problem ? ps->problem : "unreadable input");
	if (ps->context != NULL)
		return fail(p, ps->problem_mark,
		    "YAML syntax error: %s (%s at line %zu)",
		    ps->problem ? ps->problem : "?", ps->context,
		    ps->context_mark.line + 1);
	return fail(p, ps->problem_mark, "YAML syntax error: %s",
	    ps->problem ? ps->problem : "?");
}

static int
read_file(cfgp *p, char **buf, size_t *len)
{
	FILE *f = fopen(p->file, "rb");
	if (f == NULL) {
		snprintf(p->err, p->errlen, "%s: cannot open: %s", p->file,
		    strerror(errno));
		return SL_ECONFIG;
	}
	size_t cap = 4096, n = 0;
	char  *b = malloc(cap);
	while (b != NULL) {
		n += fread(b + n, 1, cap - n, f);
		if (n < cap)
			break;
		char *nb = realloc(b, cap *= 2);
		if (nb == NULL)
			free(b);
		b = nb;
	}
	int bad = ferror(f), e = errno;
	fclose(f);
	if (b == NULL)
		return nomem(p);
	if (bad) {
		free(b);
		snprintf(p->err, p->errlen, "%s: cannot read: %s", p->file,
		    strerror(e));
		return SL_ECONFIG;
	}
	*buf = b;
	*len = n;
	return SL_OK;
}

/* One non-empty document; a second one would be silently ignored. */
static int
check_document(cfgp *p, yaml_parser_t *ps, const char *buf)
{
	yaml_node_t    *r = p->root;
	yaml_document_t extra;
	yaml_mark_t     start = { 0, 0, 0 };
	if (r == NULL
	    || (r->type == YAML_SCALAR_NODE && r->data.scalar.length == 0
	        && r->data.scalar.style == YAML_PLAIN_SCALAR_STYLE))
		return fail(p, start,
		    "the file is empty (expected a mapping with 'tenants')");
	if (!yaml_parser_load(ps, &extra))
		return syntax_error(p, ps, buf);
	r      = yaml_document_get_root_node(&extra);
	int rc = SL_OK;
	if (r != NULL)
		rc = fail(
		    p, r->start_mark, "only one YAML document is allowed");
	yaml_document_delete(&extra);
	return rc;
}

int
config_load(const char *path, sl_config **out, char *err, size_t errlen)
{
	char            nobuf[1];
	yaml_document_t doc;
	yaml_parser_t   ps;
	cfgp            p = { .file = path,
		           .doc     = &doc,
		           .err     = err ? err : nobuf,
		           .errlen  = err ? errlen : 0 };
	char           *buf;
	size_t          len;
	sl_config      *cfg = NULL;
	int             rc;

	*out = NULL;
	if (p.errlen > 0)
		p.err[0] = '\0';
	if ((rc = read_file(&p, &buf, &len)) != SL_OK)
		return rc;
	if (!yaml_parser_initialize(&ps)) {
		free(buf);
		return nomem(&p);
	}
	yaml_parser_set_input_string(&ps, (const unsigned char *) buf, len);
	if (!yaml_parser_load(&ps, &doc)) {
		rc = syntax_error(&p, &ps, buf);
		yaml_parser_delete(&ps);
		free(buf);
		return rc;
	}
	p.root = yaml_document_get_root_node(&doc);
	rc     = check_document(&p, &ps, buf);
	if (rc == SL_OK && (cfg = calloc(1, sizeof(*cfg))) == NULL)
		rc = nomem(&p);
	if (rc == SL_OK && (cfg->file = strdup(path)) == NULL)
		rc = nomem(&p);
	if (rc == SL_OK)
		rc = parse_root(&p, cfg);
	yaml_document_delete(&doc);
	yaml_parser_delete(&ps);
	free(buf);
	if (rc != SL_OK) {
		config_free(cfg);
		return rc;
	}
	*out = cfg;
	return SL_OK;
}

void
config_free(sl_config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < cfg->n_tenants; i++) {
		free(cfg->tenants[i].id);
		free(cfg->tenants[i].rm_path);
	}
	free(cfg->tenants);
	for (size_t i = 0; i < cfg->n_creds; i++) {
		for (size_t j = 0; j < cfg->creds[i].n_tenants; j++)
			free(cfg->creds[i].tenants[j]);
		free(cfg->creds[i].tenants);
		free(cfg->creds[i].name);
		free(cfg->creds[i].subject);
	}
	free(cfg->creds);
	free(cfg->file);
	free(cfg->data_dir);
	free(cfg->plugin_dir);
	free(cfg->api_url);
	free(cfg->pub_url);
	free(cfg->metrics_url);
	free(cfg->admin_url);
	for (size_t i = 0; i < cfg->n_feeds; i++) {
		free(cfg->feeds[i].tenant);
		free(cfg->feeds[i].url);
	}
	free(cfg->feeds);
	free(cfg->remote_url);
	free(cfg->store_path);
	free(cfg->store_url);
	free(cfg->tls.cert_file);
	free(cfg->tls.key_file);
	free(cfg->tls.ca_file);
	if (cfg->tls.key_password != NULL) {
		memset(cfg->tls.key_password, 0, strlen(cfg->tls.key_password));
		free(cfg->tls.key_password);
	}
	free(cfg->category_separator);
	free(cfg->correlation_property);
	for (size_t i = 0; i < cfg->n_projections; i++)
		free(cfg->projections[i].name);
	free(cfg->projections);
	for (size_t i = 0; i < cfg->n_plugins; i++)
		free(cfg->plugins[i].file);
	free(cfg->plugins);
	free(cfg);
}

const proj_settings *
config_projection(
    const sl_config *cfg, const char *id, const char *name, cfg_mode *mode)
{
	/* ProjectionConsts.cs, for callers without a config (tests) */
	static const proj_settings dflt
	    = { 0, 4000, 10 * 1000 * 1000, 5000, 500, 0 };
	const cfg_projection *hit = NULL;
	size_t                n   = cfg != NULL ? cfg->n_projections : 0;
	/* an entry naming the id wins over one naming the name */
	for (size_t i = 0; i < n && hit == NULL && id != NULL; i++)
		if (strcasecmp(cfg->projections[i].name, id) == 0)
			hit = &cfg->projections[i];
	for (size_t i = 0; i < n && hit == NULL && name != NULL; i++)
		if (strcmp(cfg->projections[i].name, name) == 0)
			hit = &cfg->projections[i];
	if (mode != NULL)
		*mode = hit != NULL ? hit->mode : CFG_MODE_CONTINUOUS;
	if (hit != NULL)
		return &hit->set;
	return cfg != NULL ? &cfg->proj_defaults : &dflt;
}
