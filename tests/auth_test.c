/*
 * Authentication, roles and tenant scoping (issue 18, docs/security.md)
 * through a real sluiced and the C client: every op against every role,
 * allowed and refused, on the caller's tenant and on another; the log
 * read, status, the subscriber (no live feed under auth) and remote
 * registrations scoped to the caller's tenants; a takeover by another
 * credential refused; one credential's registrations used up do not block
 * another's; a wrong token tells nothing of which tenants exist; and a tcp
 * listener without auth: refused unless insecure: true.
 */
#include <inttypes.h>

#include <sluice/client.h>
#include <sluice/subscribe.h>

#include "auth.h"
#include "remote_testutil.h"

/* the CLI as a process (cli_testutil.h) */
#define TENANT  "t1"
#define WAIT_MS 20000
#include "emit_testutil.h"
#include "cli_testutil.h"

#include <nng/protocol/pubsub0/sub.h>

#define PROJ "account_details"
#define FILT "a468a0ac-3f00-4a28-ac0e-e4a0e8400cb3" /* account_filters */

/* The credentials: name, token, tenants, roles (YAML). */
typedef struct cred {
	const char *name, *tenants, *roles, *extra;
	sl_client  *c;
} cred;

enum {
	ADMIN,
	READER,
	WRITER,
	OPERATOR,
	REGISTRAR,
	REGISTRAR_B,
	ALLREAD,
	WRITER2,
	LIMITED,
	NOTOKEN,
	BADTOKEN,
	N_CREDS
};

static cred creds[N_CREDS] = {
	[ADMIN]     = { "admin", NULL, "[admin]", "", NULL },
	[READER]    = { "reader", "[t1]", "[read]", "", NULL },
	[WRITER]    = { "writer", "[t1]", "[write]", "", NULL },
	[OPERATOR]  = { "operator", "[t1]", "[operate]", "", NULL },
	[REGISTRAR] = { "registrar", "[t1]", "[register]",
	    "    max_registrations: 2\n", NULL },
	[REGISTRAR_B]
	= { "registrar-b", "[t1]", "[register, read]", "", NULL },
	[ALLREAD] = { "all-reader", "\"*\"", "[read]", "", NULL },
	[WRITER2] = { "writer2", "[t2]", "[write, read]", "", NULL },
	[LIMITED]
	= { "limited", "[t1]", "[read]", "    max_connections: 2\n", NULL },
	[NOTOKEN]  = { NULL, NULL, NULL, NULL, NULL },
	[BADTOKEN] = { NULL, NULL, NULL, NULL, NULL },
};

static char dir[4096], cfg_path[4200], log_path[4200], url[4200];

static void
token_of(int i, char *out, size_t len)
{
	snprintf(out, len, "token-of-%s-%d", creds[i].name, i * 7919);
}

/* resources.yaml with two tenants and every credential above. */
static void
write_config(void)
{
	char   text[16384];
	size_t n = dt_config_head(
	    text, sizeof(text), dir, SL_PLUGIN_DIR, url, "64MiB");
	n += (size_t) snprintf(text + n, sizeof(text) - n,
	    "tenants:\n"
	    "  - {id: t1, read_models: {map_size: 16MiB}}\n"
	    "  - {id: t2, read_models: {map_size: 16MiB}}\n"
	    "auth:\n"
	    "  tokens:\n");
	for (int i = 0; i < NOTOKEN; i++) {
		char tok[128], hex[65];
		token_of(i, tok, sizeof(tok));
		auth_hash_hex(tok, strlen(tok), hex);
		n += (size_t) snprintf(text + n, sizeof(text) - n,
		    "  - name: %s\n"
		    "    token_sha256: %s\n"
		    "%s%s%s"
		    "    roles: %s\n"
		    "%s",
		    creds[i].name, hex,
		    creds[i].tenants ? "    tenants: " : "",
		    creds[i].tenants ? creds[i].tenants : "",
		    creds[i].tenants ? "\n" : "", creds[i].roles,
		    creds[i].extra);
		CHECK(n < sizeof(text));
	}
	tu_write_file(cfg_path, text);
}

static void
open_clients(void)
{
	int64_t end = dt_now_ms() + 20000;
	for (int i = 0; i < N_CREDS; i++) {
		char tok[128];
		/* the first waits for the daemon to listen */
		while (sl_client_open(url, 20000, &creds[i].c) != SL_OK) {
			if (dt_now_ms() > end)
				DT_FAIL_LOG(log_path, "cannot connect");
			dt_sleep_ms(20);
		}
		if (i == NOTOKEN)
			continue;
		if (i == BADTOKEN)
			snprintf(tok, sizeof(tok), "token-of-admin-0x");
		else
			token_of(i, tok, sizeof(tok));
		CHECK_EQ(sl_client_set_token(creds[i].c, tok), SL_OK);
	}
}

/* A request's code and message (into msg). */
static int
req(int who, const char *json, char *msg, size_t len)
{
	json_t *rep = NULL;
	int     rc  = ru_request(creds[who].c, json, &rep);
	if (msg != NULL) {
		const char *m
		    = json_string_value(json_object_get(rep, "message"));
		snprintf(msg, len, "%s", m != NULL ? m : "");
	}
	json_decref(rep);
	return rc;
}

/* Commit one event to tenant's stream as who; must succeed. */
static void
commit_as(int who, const char *tenant, const char *stream)
{
	char json[512];
	snprintf(json, sizeof(json),
	    "{\"v\":1,\"op\":\"commit\",\"tenant\":\"%s\",\"stream\":\"%s\","
	    "\"events\":[{\"type\":\"X\",\"content\":{}}]}",
	    tenant, stream);
	CHECK_EQ(req(who, json, NULL, 0), SL_OK);
}

static void read_log_tenants(int who, int *n1, int *n2);

/* ---- the table: every op, every role, own tenant and another ---- */

typedef struct op_case {
	const char *op;
	unsigned    role;   /* CFG_ROLE_*; 0: any valid credential */
	bool        tenant; /* takes a tenant (%s in fmt) */
	const char *fmt;
} op_case;

static const op_case ops[] = {
	{ "commit", CFG_ROLE_WRITE, true,
	    "{\"v\":1,\"op\":\"commit\",\"tenant\":\"%s\",\"stream\":"
	    "\"acc-%d\",\"events\":[{\"type\":\"DebitAccountOpened\","
	    "\"content\":{\"account_id\":\"a\"}}]}" },
	{ "delete_stream", CFG_ROLE_WRITE, true,
	    "{\"v\":1,\"op\":\"delete_stream\",\"tenant\":\"%s\",\"stream\":"
	    "\"nothing-%d\"}" },
	{ "read", CFG_ROLE_READ, true,
	    "{\"v\":1,\"op\":\"read\",\"tenant\":\"%s\",\"stream\":\"acc-%"
	    "d\"}" },
	{ "read_filter", CFG_ROLE_READ, true,
	    "{\"v\":1,\"op\":\"read_filter\",\"tenant\":\"%s\",\"filter\":"
	    "\"" FILT "\",\"max\":%d}" },
	{ "get_one", CFG_ROLE_READ, true,
	    "{\"v\":1,\"op\":\"get_one\",\"tenant\":\"%s\",\"projection\":"
	    "\"" PROJ "\",\"key\":\"k%d\"}" },
	{ "get_all", CFG_ROLE_READ, true,
	    "{\"v\":1,\"op\":\"get_all\",\"tenant\":\"%s\",\"projection\":"
	    "\"" PROJ "\",\"limit\":%d}" },
	{ "query", CFG_ROLE_READ, true,
	    "{\"v\":1,\"op\":\"query\",\"tenant\":\"%s\",\"id\":\"" PROJ
	    "\",\"key\":\"k%d\"}" },
	{ "reset", CFG_ROLE_OPERATE, true,
	    "{\"v\":1,\"op\":\"reset\",\"tenant\":\"%s\",\"id\":\"" PROJ
	    "\",\"x\":%d}" },
	{ "retry", CFG_ROLE_OPERATE, true,
	    "{\"v\":1,\"op\":\"retry\",\"tenant\":\"%s\",\"id\":\"" PROJ
	    "\",\"x\":%d}" },
	{ "pause", CFG_ROLE_OPERATE, true,
	    "{\"v\":1,\"op\":\"pause\",\"tenant\":\"%s\",\"id\":\"" PROJ
	    "\",\"x\":%d}" },
	{ "resume", CFG_ROLE_OPERATE, true,
	    "{\"v\":1,\"op\":\"resume\",\"tenant\":\"%s\",\"id\":\"" PROJ
	    "\",\"x\":%d}" },
	{ "stop", CFG_ROLE_OPERATE, true,
	    "{\"v\":1,\"op\":\"stop\",\"tenant\":\"%s\",\"id\":\"" PROJ
	    "\",\"x\":%d}" },
	{ "start", CFG_ROLE_OPERATE, true,
	    "{\"v\":1,\"op\":\"start\",\"tenant\":\"%s\",\"id\":\"" PROJ
	    "\",\"x\":%d}" },
	{ "register", CFG_ROLE_REGISTER, false,
	    "{\"v\":1,\"op\":\"register\",\"protocol\":1,\"kind\":\"filter\","
	    "\"id\":\"%08d-2222-4333-8444-555555555555\",\"name\":\"f\","
	    "\"filter_kind\":\"unpartitioned\"}" },
	{ "status", 0, false, "{\"v\":1,\"op\":\"status\",\"x\":%d}" },
	{ "plugins", 0, false, "{\"v\":1,\"op\":\"plugins\",\"x\":%d}" },
};

/* What the config says the credential may do. */
static bool
may(int who, const op_case *oc, const char *tenant)
{
	if (who == NOTOKEN || who == BADTOKEN)
		return false;
	bool admin = strstr(creds[who].roles, "admin") != NULL;
	bool role  = oc->role == 0 || admin
	    || strstr(creds[who].roles, auth_role_name(oc->role)) != NULL;
	bool ten = !oc->tenant || admin
	    || strcmp(creds[who].tenants, "\"*\"") == 0
	    || strstr(creds[who].tenants, tenant) != NULL;
	return role && ten;
}

static void
check_table(void)
{
	static const char *const tenants[] = { "t1", "t2" };
	int                      n = 0, refusals = 0, commits = 0;
	for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++)
		for (int who = 0; who < N_CREDS; who++)
			for (int t = 0; t < (ops[k].tenant ? 2 : 1); t++) {
				char json[1024], msg[600];
				int  seq = 1 + n++;
				if (ops[k].tenant)
					snprintf(json, sizeof(json),
					    ops[k].fmt, tenants[t], seq);
				else
					snprintf(json, sizeof(json),
					    ops[k].fmt, seq);
				int  rc   = req(who, json, msg, sizeof(msg));
				bool want = may(who, &ops[k], tenants[t]);
				commits += want
				    && strcmp(ops[k].op, "commit") == 0;
				/* allowed: never EACCES; the op's own
				 * answer otherwise (delete_stream of
				 * nothing is ENOTFOUND) */
				bool ok = want ? rc == SL_OK
				        || (rc == SL_ENOTFOUND
				            && strcmp(
				                   ops[k].op, "delete_stream")
				                == 0)
				               : rc == SL_EACCES;
				if (!ok)
					DT_FAIL_LOG(log_path,
					    "op %s by %s on %s: got %d (%s), "
					    "want %s",
					    ops[k].op,
					    creds[who].name ? creds[who].name
					                    : "(no/bad token)",
					    ops[k].tenant ? tenants[t] : "-",
					    rc, msg,
					    want ? "allowed" : "EACCES");
				if (rc == SL_EACCES) {
					refusals++;
					/* names the op, and the tenant */
					char want_op[64];
					snprintf(want_op, sizeof(want_op),
					    "op '%s'", ops[k].op);
					CHECK(strstr(msg, want_op) != NULL);
					if (ops[k].tenant)
						CHECK(strstr(msg, tenants[t])
						    != NULL);
				}
			}
	fprintf(stderr, "table: %d cases, %d refused\n", n, refusals);
	CHECK(refusals > n / 2);
	/* a refused request wrote nothing: the log holds the allowed
	 * commits' events only */
	int n1, n2;
	read_log_tenants(ADMIN, &n1, &n2);
	CHECK(commits > 0);
	CHECK_EQ(n1 + n2, commits);
}

/* ---- scoping ---- */

/* The tenants of every event of the whole log a credential reads. */
static void
read_log_tenants(int who, int *n1, int *n2)
{
	sl_read_result res;
	uint64_t       from = 0;
	*n1 = *n2 = 0;
	for (;;) {
		CHECK_EQ(
		    sl_client_read(creds[who].c, from, 1000, &res), SL_OK);
		for (size_t i = 0; i < res.n_events; i++) {
			if (strcmp(res.events[i].tenant, "t1") == 0)
				(*n1)++;
			else if (strcmp(res.events[i].tenant, "t2") == 0)
				(*n2)++;
		}
		from      = res.next;
		bool done = res.next >= res.head;
		sl_read_result_free(&res);
		if (done)
			break;
	}
}

static int
count_sub(void *arg, const sl_read_event *ev)
{
	int *n = arg;
	CHECK_STREQ(ev->tenant, "t1"); /* never another tenant's */
	return ++n[0] >= n[1] ? 1 : 0;
}

static void
check_scoping(void)
{
	char msg[600], m2[600];
	int  n1, n2;

	/* the log without a tenant: the caller's tenants' events only */
	commit_as(WRITER2, "t2", "other-0");
	commit_as(WRITER2, "t2", "other-1");
	commit_as(WRITER2, "t2", "other-2");
	read_log_tenants(READER, &n1, &n2);
	CHECK(n1 > 0);
	CHECK_EQ(n2, 0);
	int a1, a2;
	read_log_tenants(ADMIN, &a1, &a2);
	CHECK_EQ(a1, n1);
	CHECK(a2 >= 3);
	read_log_tenants(ALLREAD, &n1, &n2);
	CHECK_EQ(n1, a1);
	CHECK_EQ(n2, a2);

	/* status: the caller's tenants and their processors */
	json_t *st = ru_status(creds[READER].c), *p;
	size_t  i;
	CHECK_EQ(json_array_size(json_object_get(st, "tenants")), 1);
	CHECK_STREQ(json_string_value(
	                json_array_get(json_object_get(st, "tenants"), 0)),
	    "t1");
	CHECK(json_array_size(json_object_get(st, "processors")) > 0);
	json_array_foreach(json_object_get(st, "processors"), i, p)
	    CHECK_STREQ(json_string_value(json_object_get(p, "tenant")), "t1");
	json_array_foreach(json_object_get(st, "emitting_projections"), i, p)
	    CHECK_STREQ(json_string_value(json_object_get(p, "tenant")), "t1");
	CHECK(json_is_null(json_object_get(st, "pub"))); /* no feed */
	CHECK_STREQ(json_string_value(json_object_get(
	                json_object_get(st, "caller"), "credential")),
	    "reader");
	json_decref(st);
	st = ru_status(creds[ADMIN].c);
	CHECK_EQ(json_array_size(json_object_get(st, "tenants")), 2);
	json_decref(st);

	/* a wrong token, and a credential without the tenant, tell
	 * nothing of which tenants exist: the same refusal for t2 (there)
	 * and for nosuch (not there) */
	CHECK_EQ(req(BADTOKEN,
	             "{\"v\":1,\"op\":\"get_one\",\"tenant\":\"t2\","
	             "\"projection\":\"" PROJ "\",\"key\":\"k\"}",
	             msg, sizeof(msg)),
	    SL_EACCES);
	CHECK_EQ(req(BADTOKEN,
	             "{\"v\":1,\"op\":\"get_one\",\"tenant\":\"t9\","
	             "\"projection\":\"" PROJ "\",\"key\":\"k\"}",
	             m2, sizeof(m2)),
	    SL_EACCES);
	memcpy(strstr(msg, "t2"), "tX", 2), memcpy(strstr(m2, "t9"), "tX", 2);
	CHECK_STREQ(msg, m2);
	CHECK(strstr(msg, "not valid") != NULL);
	CHECK_EQ(req(READER,
	             "{\"v\":1,\"op\":\"read\",\"tenant\":\"t2\",\"stream\":"
	             "\"other-0\"}",
	             msg, sizeof(msg)),
	    SL_EACCES);
	CHECK_EQ(req(READER,
	             "{\"v\":1,\"op\":\"read\",\"tenant\":\"t9\",\"stream\":"
	             "\"other-0\"}",
	             m2, sizeof(m2)),
	    SL_EACCES);
	memcpy(strstr(msg, "t2"), "tX", 2), memcpy(strstr(m2, "t9"), "tX", 2);
	CHECK_STREQ(msg, m2);
	/* an admin (every tenant) learns that t9 is none */
	CHECK_EQ(req(ADMIN,
	             "{\"v\":1,\"op\":\"read\",\"tenant\":\"t9\",\"stream\":"
	             "\"s\"}",
	             NULL, 0),
	    SL_ENOTFOUND);

	/* commands without a tenant act on the caller's tenants only */
	CHECK_EQ(
	    req(OPERATOR, "{\"v\":1,\"op\":\"pause\",\"id\":\"" PROJ "\"}",
	        msg, sizeof(msg)),
	    SL_OK);
	st = ru_status(creds[ADMIN].c);
	json_array_foreach(json_object_get(st, "processors"), i, p)
	{
		const char *t
		    = json_string_value(json_object_get(p, "tenant"));
		if (strcmp(json_string_value(json_object_get(p, "name")), PROJ)
		    == 0)
			CHECK_EQ(json_is_true(json_object_get(p, "paused")),
			    strcmp(t, "t1") == 0);
	}
	json_decref(st);
	CHECK_EQ(
	    req(OPERATOR, "{\"v\":1,\"op\":\"resume\",\"id\":\"" PROJ "\"}",
	        NULL, 0),
	    SL_OK);

	/* the subscriber: no feed under auth; it follows by reads and gets
	 * the caller's tenants' events only */
	int               got[2] = { 0, 0 };
	sl_subscribe_opts so;
	memset(&so, 0, sizeof(so));
	so.idle_ms = 10000;
	read_log_tenants(READER, &n1, &n2);
	got[1] = n1 + 2;
	commit_as(WRITER2, "t2", "late");
	commit_as(WRITER, "t1", "late-0");
	commit_as(WRITER, "t1", "late-1");
	CHECK_EQ(
	    sl_client_subscribe(creds[READER].c, &so, count_sub, got), SL_OK);
	CHECK_EQ(got[0], got[1]);
	/* and the pub endpoint is not there to dial */
	nng_socket sub;
	char       pub[4200];
	snprintf(pub, sizeof(pub), "ipc://%s/pub.ipc", dir);
	CHECK_EQ(nng_sub0_open(&sub), 0);
	CHECK(nng_dial(sub, pub, NULL, 0) != 0);
	nng_close(sub);
}

/* ---- remote registrations ---- */

static int
reg(int who, const char *id, char *msg, size_t len)
{
	char json[512];
	snprintf(json, sizeof(json),
	    "{\"v\":1,\"op\":\"register\",\"protocol\":1,\"kind\":\"filter\","
	    "\"id\":\"%s\",\"name\":\"scoped\","
	    "\"filter_kind\":\"unpartitioned\"}",
	    id);
	return req(who, json, msg, len);
}

static void
check_registrations(void)
{
	static const struct {
		int         who;
		const char *id; /* its first 8 hex digits, the rest as A */
		int         code;
		const char *want; /* in the message, or NULL */
	} steps[] = {
		/* the table registered one for REGISTRAR: one more, full */
		{ REGISTRAR, "a0000000", SL_OK, NULL },
		{ REGISTRAR, "a0000001", SL_ETOOBIG, "credential 'registrar'" },
		/* another credential is not blocked by it */
		{ REGISTRAR_B, "b0000000", SL_OK, NULL },
		/* a takeover (the client never came) needs the same
		 * credential, an admin's too */
		{ REGISTRAR_B, "a0000000", SL_EACCES, "another credential" },
		{ ADMIN, "a0000000", SL_EACCES, "another credential" },
		{ REGISTRAR, "a0000000", SL_OK, NULL },
	};
	for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		char msg[600], id[64];
		snprintf(id, sizeof(id), "%s-2222-4333-8444-555555555555",
		    steps[k].id);
		int rc = reg(steps[k].who, id, msg, sizeof(msg));
		if (rc != steps[k].code
		    || (steps[k].want != NULL
		        && strstr(msg, steps[k].want) == NULL))
			DT_FAIL_LOG(log_path,
			    "registration step %zu: %d (%s), want %d (%s)", k,
			    rc, msg, steps[k].code,
			    steps[k].want ? steps[k].want : "");
	}
	/* its processors run for the registrar's tenant only */
	json_t *st = ru_status(creds[ADMIN].c), *p;
	size_t  i, n = 0;
	json_array_foreach(json_object_get(st, "processors"), i, p)
	{
		if (strcmp(json_string_value(json_object_get(p, "projection")),
		        "a0000000-2222-4333-8444-555555555555")
		    == 0) {
			CHECK_STREQ(
			    json_string_value(json_object_get(p, "tenant")),
			    "t1");
			n++;
		}
	}
	CHECK_EQ(n, 1);
	json_decref(st);
	/* status shows a credential its own registrations only */
	st = ru_status(creds[REGISTRAR_B].c);
	CHECK(ru_remote(st, "b0000000-2222-4333-8444-555555555555") != NULL);
	CHECK_STREQ(json_string_value(json_object_get(
	                ru_remote(st, "b0000000-2222-4333-8444-555555555555"),
	                "credential")),
	    "registrar-b");
	CHECK(ru_remote(st, "a0000000-2222-4333-8444-555555555555") == NULL);
	json_decref(st);
}

/* ---- connections per credential ---- */

static void
check_connections(void)
{
	char       tok[128];
	sl_client *x[2], *y;
	json_t    *rep = NULL;
	token_of(LIMITED, tok, sizeof(tok));
	for (int i = 0; i < 2; i++) {
		CHECK_EQ(sl_client_open(url, 20000, &x[i]), SL_OK);
		CHECK_EQ(sl_client_set_token(x[i], tok), SL_OK);
	}
	/* its first connection (the table's) and one more: served */
	CHECK_EQ(ru_request(x[0], "{\"v\":1,\"op\":\"status\"}", NULL), SL_OK);
	/* a third: refused, and nothing else is */
	CHECK_EQ(
	    ru_request(x[1], "{\"v\":1,\"op\":\"status\"}", &rep), SL_ETOOBIG);
	CHECK(strstr(json_string_value(json_object_get(rep, "message")),
	          "credential 'limited' has its max_connections (2) open")
	    != NULL);
	json_decref(rep);
	CHECK_EQ(req(LIMITED, "{\"v\":1,\"op\":\"status\"}", NULL, 0), SL_OK);
	/* another credential's new connection is not blocked by it */
	token_of(READER, tok, sizeof(tok));
	CHECK_EQ(sl_client_open(url, 20000, &y), SL_OK);
	CHECK_EQ(sl_client_set_token(y, tok), SL_OK);
	CHECK_EQ(ru_request(y, "{\"v\":1,\"op\":\"status\"}", NULL), SL_OK);
	sl_client_close(y);
	/* one closed: the third is served */
	sl_client_close(creds[LIMITED].c);
	creds[LIMITED].c = NULL;
	int64_t end      = dt_now_ms() + 5000;
	while (
	    ru_request(x[1], "{\"v\":1,\"op\":\"status\"}", NULL) != SL_OK) {
		if (dt_now_ms() > end)
			DT_FAIL_LOG(log_path,
			    "a closed connection still counts for its "
			    "credential");
		dt_sleep_ms(20);
	}
	sl_client_close(x[0]);
	sl_client_close(x[1]);
}

/* ---- the CLI: --token, --token-file, SLUICE_TOKEN, auth ---- */

static void
check_cli(void)
{
	char tok[128], file[4300];
	snprintf(ft_api_url, sizeof(ft_api_url), "%s", url);
	snprintf(ft_sluice, sizeof(ft_sluice), "%s/sluice", SL_BUILD_DIR);
	snprintf(ft_log_path, sizeof(ft_log_path), "%s", log_path);
	snprintf(out_path, sizeof(out_path), "%s/cli.out", dir);
	snprintf(err_path, sizeof(err_path), "%s/cli.err", dir);
	unsetenv("SLUICE_TOKEN");

	/* no token: the daemon's refusal, exit 2 */
	CHECK_EQ(SL("status"), 2);
	CHECK(
	    strstr(err, "EACCES") != NULL || strstr(err, "no token") != NULL);
	token_of(READER, tok, sizeof(tok));
	CHECK_EQ(SL("--token", tok, "status"), 0);
	json_t *st = out_json();
	CHECK_STREQ(json_string_value(json_object_get(
	                json_object_get(st, "caller"), "credential")),
	    "reader");
	json_decref(st);
	/* the token as a file's first line */
	snprintf(file, sizeof(file), "%s/reader.token", dir);
	char line[160];
	snprintf(line, sizeof(line), "%s\n", tok);
	tu_write_file(file, line);
	CHECK_EQ(SL("read", "--tenant", "t1", "--stream", "late-0",
	             "--token-file", file),
	    0);
	CHECK_EQ(SL("read", "--tenant", "t2", "--stream", "late",
	             "--token-file", file),
	    2);
	CHECK(strstr(err, "op 'read' on tenant 't2' refused") != NULL);
	/* from the environment */
	setenv("SLUICE_TOKEN", tok, 1);
	CHECK_EQ(
	    SL("get-one", "--tenant", "t1", "--projection", PROJ, "k"), 0);
	CHECK_EQ(SL("pause", PROJ, "--tenant", "t1"), 2);
	CHECK(strstr(err, "lacks role 'operate'") != NULL);
	unsetenv("SLUICE_TOKEN");
	CHECK_EQ(SL("--token", tok, "--token-file", file, "status"), 1);
	/* tokens and their hashes, no daemon needed */
	CHECK_EQ(SL("auth", "hash-token", "abc"), 0);
	CHECK_STREQ(out,
	    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb4"
	    "10ff61f20015ad\n");
	CHECK_EQ(SL("auth", "new-token"), 0);
	json_t     *nt = out_json();
	const char *t  = json_string_value(json_object_get(nt, "token"));
	char        hex[65];
	CHECK(t != NULL && strlen(t) >= 32);
	auth_hash_hex(t, strlen(t), hex);
	CHECK_STREQ(
	    json_string_value(json_object_get(nt, "token_sha256")), hex);
	json_decref(nt);
	CHECK_EQ(SL("auth", "hash-token", ""), 1);
}

/* ---- the Python client: token=, $SLUICE_TOKEN ---- */

static void
check_python(void)
{
	char reader[128], registrar[128], pylog[4300];
	int  status;
	token_of(READER, reader, sizeof(reader));
	token_of(REGISTRAR_B, registrar, sizeof(registrar));
	snprintf(pylog, sizeof(pylog), "%s/python.log", dir);
	setenv("PYTHONPATH", SL_SOURCE_DIR "/client/python", 1);
	char *const argv[]
	    = { "python3", "-B", SL_SOURCE_DIR "/tests/auth_python.py", url,
		      reader, registrar, NULL };
	pid_t pid = dt_spawn_logged(pylog, SL_PYTHON3, argv);
	if (!dt_wait_exit(pid, 30000, &status)) {
		dt_kill_and_reap(&pid);
		DT_FAIL_LOG(pylog, "the Python client did not finish");
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		DT_FAIL_LOG(pylog, "the Python client's checks failed");
}

/* ---- tcp without auth ---- */

static void
check_tcp_refused(void)
{
	char text[8192], tcp_url[64], sub_dir[4200], cfg2[4300], log2[4300];
	int  status;
	snprintf(sub_dir, sizeof(sub_dir), "%s/open", dir);
	CHECK_EQ(mkdir(sub_dir, 0700), 0);
	snprintf(cfg2, sizeof(cfg2), "%s/resources.yaml", sub_dir);
	snprintf(log2, sizeof(log2), "%s/sluiced.log", sub_dir);
	snprintf(tcp_url, sizeof(tcp_url), "tcp://127.0.0.1:%d",
	    20000 + (int) (getpid() % 20000));
	size_t n = dt_config_head(
	    text, sizeof(text), sub_dir, SL_PLUGIN_DIR, tcp_url, "16MiB");
	snprintf(text + n, sizeof(text) - n, "tenants: [{id: t1}]\n");
	tu_write_file(cfg2, text);
	pid_t pid = dt_daemon_spawn(cfg2, log2);
	CHECK(dt_wait_exit(pid, 20000, &status));
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) != 0);
	size_t len;
	char  *out = dt_slurp(log2, &len);
	if (strstr(out, "key 'endpoints.api'") == NULL
	    || strstr(out, "insecure: true") == NULL)
		DT_FAIL_LOG(log2, "no clear refusal of the tcp listener");
	free(out);
	/* said explicitly: it runs */
	snprintf(text + n, sizeof(text) - n,
	    "tenants: [{id: t1}]\ninsecure: true\n");
	tu_write_file(cfg2, text);
	pid          = dt_daemon_spawn(cfg2, log2);
	sl_client *c = NULL;
	if (!dt_wait_answer(tcp_url, &c, 20000))
		DT_FAIL_LOG(log2, "the insecure daemon does not answer");
	sl_client_close(c);
	kill(pid, SIGTERM);
	CHECK(dt_wait_exit(pid, 20000, &status));
}

int
main(void)
{
	char scratch[4200];
	dt_test_paths(dir, cfg_path, log_path, url);
	(void) scratch;
	write_config();
	int64_t t0  = dt_now_ms();
	pid_t   pid = dt_daemon_spawn(cfg_path, log_path);
	open_clients();
	if (!dt_wait_answer(url, &creds[ADMIN].c, 20000))
		DT_FAIL_LOG(log_path, "the daemon does not answer");

	check_table();
	check_scoping();
	check_registrations();
	check_connections();
	check_cli();
	check_python();

	/* refusals are logged, at most 10 lines a second: the table's
	 * hundreds in a few seconds are not all there, and the next second's
	 * first refusal says how many were left out */
	dt_sleep_ms(1100);
	CHECK_EQ(
	    req(NOTOKEN, "{\"v\":1,\"op\":\"status\"}", NULL, 0), SL_EACCES);
	/* a tenant with a line end cannot write a line of its own */
	CHECK_EQ(req(READER,
	             "{\"v\":1,\"op\":\"get_one\",\"tenant\":\"x\\nFAKE "
	             "line\",\"projection\":\"" PROJ "\",\"key\":\"k\"}",
	             NULL, 0),
	    SL_EACCES);
	dt_sleep_ms(200); /* the log line is written after the reply */
	size_t len, lines = 0;
	char  *logtext = dt_slurp(log_path, &len);
	for (char *q = logtext; (q = strstr(q, "refused (")) != NULL; q++)
		lines++;
	if (strstr(logtext,
	        "refused (no credential): op 'status' refused: "
	        "no token")
	        == NULL
	    || strstr(logtext, "more refusals not logged") == NULL
	    || strstr(logtext, "tenant 'x?FAKE line'") == NULL
	    || strstr(logtext, "\nFAKE line") != NULL
	    || lines > 10 * (size_t) ((dt_now_ms() - t0) / 1000 + 2)
	    || lines < 11)
		DT_FAIL_LOG(log_path,
		    "refusals not logged as they should be "
		    "(%zu lines)",
		    lines);
	free(logtext);

	/* SIGHUP with a changed auth: named as needing a restart; the
	 * running credentials stay as they were */
	write_config();
	FILE *cf = fopen(cfg_path, "a");
	CHECK(cf != NULL);
	fprintf(cf, "  - {name: late, token_sha256: %064d, roles: [admin]}\n",
	    0);
	fclose(cf);
	kill(pid, SIGHUP);
	int64_t until = dt_now_ms() + 10000;
	for (;;) {
		char *lt = dt_slurp(log_path, &len);
		bool  seen = strstr(lt, "auth / insecure changed: it takes "
		                        "effect at the next start")
		    != NULL;
		free(lt);
		if (seen)
			break;
		if (dt_now_ms() > until)
			DT_FAIL_LOG(log_path, "SIGHUP did not name the auth change");
		dt_sleep_ms(50);
	}
	CHECK_EQ(req(READER, "{\"v\":1,\"op\":\"status\"}", NULL, 0), SL_OK);

	for (int i = 0; i < N_CREDS; i++)
		sl_client_close(creds[i].c);
	kill(pid, SIGTERM);
	int status;
	if (!dt_wait_exit(pid, 30000, &status))
		dt_kill_and_reap(&pid);

	check_tcp_refused();
	return 0;
}
