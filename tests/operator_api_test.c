/*
 * Proves the operator commands (reset, retry, pause, resume), read_filter
 * and the status fields of failing partitions against a real runtime (two
 * tenants, the build's plugins): every malformed or unknown request gets
 * its error reply, changes nothing and the daemon goes on serving; the
 * client library and the CLI refuse bad arguments before sending.
 *
 * The functional checks need pieces that landed beside this test (see
 * the two switches below).
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <jansson.h>
#include <msgpack.h>

#include <sluice/client.h>

#include "api_fixture.h"
#include "mp.h"

/*
 * TODO(lead): check_filter_defs() needs plugins.c to load filters (the
 * build's account_filters plugin in SL_PLUGIN_DIR): read_filter of an
 * empty stream, get_one/get_all refusing a filter, partition checks,
 * status kinds. Passes against the loader in the working tree; set to 0
 * to commit this test before it.
 */
#define HAVE_FILTER_DEFS 1
/*
 * TODO(lead): check_processor() needs projection.c to run filters and take
 * commands (proc_command, proc_get_failing): streams filled, failing
 * partitions, pause/resume/retry/reset acting. Written against your
 * processor while it was in progress, and passes against it (the
 * semantics it assumes are commented at each check). Set to 0 to commit
 * this test before the processor.
 */
#define HAVE_PROCESSOR 1

#define TENANT2       "beta"
#define PROJECTION_ID "8a2f3c1e-5b7d-4e9a-9c11-2d4e6f8a0b13"
/* plugins/account_filters.c */
#define CUSTOMER_EVENTS    "customer events" /* partitioned */
#define CUSTOMER_EVENTS_ID "a468a0ac-3f00-4a28-ac0e-e4a0e8400cb3"
#define PUBLIC_OPENINGS_ID "76b549ab-de36-4185-8ed1-2a92ed32b7b0"

static sl_client *cl;

/* ---- raw requests ---- */

typedef struct req {
	msgpack_sbuffer sb;
	msgpack_packer  pk;
} req;

/* Start a request map {v, op, ...n_fields more pairs packed by the caller}. */
static msgpack_packer *
req_begin(req *q, const char *op, size_t n_fields)
{
	msgpack_sbuffer_init(&q->sb);
	msgpack_packer_init(&q->pk, &q->sb, msgpack_sbuffer_write);
	msgpack_pack_map(&q->pk, 2 + n_fields);
	mp_pack_kv_u64(&q->pk, "v", SL_PROTOCOL_VERSION);
	mp_pack_kv_str(&q->pk, "op", op);
	return &q->pk;
}

/* Send it; expect the code `want` (SL_OK: an ok reply). */
static void
req_expect(req *q, int want, const char *what)
{
	void  *reply = NULL;
	size_t len   = 0;
	int rc = sl_client_request(cl, q->sb.data, q->sb.size, &reply, &len);

	msgpack_sbuffer_destroy(&q->sb);
	if (rc != want) {
		fprintf(stderr, "%s: got %s (%s), want %s\n", what,
		    sl_errname(rc), sl_client_last_error(cl),
		    sl_errname(want));
		exit(1);
	}
	CHECK(reply != NULL); /* the daemon answered */
	if (want != SL_OK)
		CHECK(strlen(sl_client_last_error(cl)) > 0);
	sl_client_free(reply);
}

/* ---- status ---- */

static json_t *
status(void)
{
	char        *text;
	json_t      *j;
	json_error_t je;

	CHECK_EQ(sl_client_status(cl, &text), SL_OK);
	j = json_loads(text, 0, &je);
	sl_client_free(text);
	CHECK(j != NULL);
	return j;
}

static uint64_t
head(void)
{
	json_t  *j = status();
	uint64_t h = (uint64_t) json_integer_value(json_object_get(j, "head"));
	json_decref(j);
	return h;
}

/* The status map of the processor of id (projection id) for tenant. */
static json_t *
proc_of(json_t *st, const char *tenant, const char *id)
{
	size_t  i;
	json_t *p;

	json_array_foreach(json_object_get(st, "processors"), i, p)
	{
		if (strcmp(json_string_value(json_object_get(p, "tenant")),
		        tenant)
		        == 0
		    && strcmp(
		           json_string_value(json_object_get(p, "projection")),
		           id)
		        == 0)
			return p;
	}
	return NULL;
}

/* Nothing an operator could have changed did change: no processor is
 * paused, the log is where it was. */
static void
check_untouched(uint64_t want_head)
{
	json_t *st = status();
	size_t  i;
	json_t *p;

	CHECK_EQ(json_integer_value(json_object_get(st, "head")), want_head);
	json_array_foreach(json_object_get(st, "processors"), i, p)
	{
		CHECK(json_is_false(json_object_get(p, "paused")));
		CHECK(strcmp(json_string_value(json_object_get(p, "state")),
		          "paused")
		    != 0);
	}
	json_decref(st);
}

/*
 * Wait until the position of every processor (of id, or all when NULL)
 * equals the head (<= 10 s).
 */
static void
wait_caught_up(const char *id)
{
	for (int i = 0; i < 1000; i++) {
		json_t *st  = status();
		bool    all = true;
		size_t  k;
		json_t *p;
		json_array_foreach(json_object_get(st, "processors"), k, p)
		{
			if (id != NULL
			    && strcmp(json_string_value(
			                  json_object_get(p, "projection")),
			           id)
			        != 0)
				continue;
			if (json_integer_value(json_object_get(p, "position"))
			    != json_integer_value(json_object_get(st, "head")))
				all = false;
		}
		json_decref(st);
		if (all)
			return;
		nanosleep(&(struct timespec) { 0, 10 * 1000 * 1000 }, NULL);
	}
	fprintf(stderr, "processors did not catch up\n");
	exit(1);
}

static int
commit1(const char *tenant, const char *stream, const char *type,
    const char *content)
{
	sl_new_event e = { .type = type, .content_json = content };
	return sl_client_commit(
	    cl, tenant, stream, SL_EXPECT_ANY, &e, 1, NULL);
}

/* ---- the CLI ---- */

static char cli_out[1 << 16];

/* Run `sluice --url URL ARGS...` (NULL-terminated; args need no
 * quoting); stdout in cli_out, stderr to err_path; the exit status. */
static int
cli(const char *first, ...)
{
	char        cmd[8192], err_path[4200];
	va_list     ap;
	const char *a;
	FILE       *p;
	size_t      n;
	int         st;

	snprintf(err_path, sizeof(err_path), "%s/cli.err", tu_tmpdir());
	snprintf(
	    cmd, sizeof(cmd), "%s/sluice --url '%s'", SL_BUILD_DIR, fx_url);
	va_start(ap, first);
	for (a = first; a != NULL; a = va_arg(ap, const char *)) {
		n = strlen(cmd);
		snprintf(cmd + n, sizeof(cmd) - n, " '%s'", a);
	}
	va_end(ap);
	n = strlen(cmd);
	snprintf(cmd + n, sizeof(cmd) - n, " 2>'%s' </dev/null", err_path);
	p = popen(cmd, "r");
	CHECK(p != NULL);
	n          = fread(cli_out, 1, sizeof(cli_out) - 1, p);
	cli_out[n] = '\0';
	st         = pclose(p);
	CHECK(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* ---- the checks ---- */

static const char *const ops[] = { "reset", "retry", "pause", "resume" };

/* Malformed and unknown operator commands: error replies, no change. */
static void
check_command_errors(void)
{
	uint64_t h = head();
	char     long_id[300];
	req      q;

	memset(long_id, 'x', sizeof(long_id));
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		const char *op = ops[i];

		req_begin(&q, op, 0);
		req_expect(&q, SL_EINVAL, "command without id");
		CHECK(strstr(sl_client_last_error(cl), "'id'") != NULL);

		mp_pack_kv_u64(req_begin(&q, op, 1), "id", 7);
		req_expect(&q, SL_EPROTO, "id as a number");
		CHECK(strstr(sl_client_last_error(cl), "'id'") != NULL);

		mp_pack_kv_str(req_begin(&q, op, 1), "id", "");
		req_expect(&q, SL_EINVAL, "empty id");

		mp_pack_cstr(req_begin(&q, op, 1), "id");
		mp_pack_strn(&q.pk, long_id, sizeof(long_id));
		req_expect(&q, SL_ETOOBIG, "id over 256 bytes");

		mp_pack_kv_str(req_begin(&q, op, 1), "id", "no-such-thing");
		req_expect(&q, SL_ENOTFOUND, "unknown id");
		CHECK(
		    strstr(sl_client_last_error(cl), "no-such-thing") != NULL);

		mp_pack_kv_str(req_begin(&q, op, 2), "id", FX_PROJECTION);
		mp_pack_kv_u64(&q.pk, "tenant", 1);
		req_expect(&q, SL_EPROTO, "tenant as a number");

		mp_pack_kv_str(req_begin(&q, op, 2), "id", FX_PROJECTION);
		mp_pack_kv_str(&q.pk, "tenant", "nobody");
		req_expect(&q, SL_ENOTFOUND, "unknown tenant");
		CHECK(strstr(sl_client_last_error(cl), "nobody") != NULL);

		mp_pack_kv_str(req_begin(&q, op, 2), "id", FX_PROJECTION);
		mp_pack_kv_str(&q.pk, "tenant", "");
		req_expect(&q, SL_EINVAL, "empty tenant");

		/* unknown id with a known tenant: the id is the problem */
		mp_pack_kv_str(req_begin(&q, op, 2), "id", "nope");
		mp_pack_kv_str(&q.pk, "tenant", FX_TENANT);
		req_expect(&q, SL_ENOTFOUND, "unknown id, known tenant");
	}
	/* not an op */
	mp_pack_kv_str(req_begin(&q, "restart", 1), "id", FX_PROJECTION);
	req_expect(&q, SL_EUNKNOWNOP, "unknown op");

	/* the client library refuses before sending */
	{
		size_t n = 99;
		CHECK_EQ(
		    sl_client_command(cl, "explode", FX_PROJECTION, NULL, &n),
		    SL_EINVAL);
		CHECK_EQ(n, 0);
		CHECK(strstr(sl_client_last_error(cl), "explode") != NULL);
		CHECK_EQ(sl_client_command(cl, NULL, FX_PROJECTION, NULL, &n),
		    SL_EINVAL);
		CHECK_EQ(
		    sl_client_command(cl, "pause", NULL, NULL, &n), SL_EINVAL);
		CHECK_EQ(
		    sl_client_command(cl, "pause", "no-such-thing", NULL, &n),
		    SL_ENOTFOUND);
		CHECK_EQ(sl_client_command(
		             cl, "resume", FX_PROJECTION, "nobody", &n),
		    SL_ENOTFOUND);
		CHECK_EQ(n, 0);
	}
	check_untouched(h);
}

/* read_filter errors that need no filter definition. */
static void
check_read_filter_errors(void)
{
	uint64_t       h = head();
	sl_filter_page pg;
	req            q;

	mp_pack_kv_str(req_begin(&q, "read_filter", 1), "filter", "x");
	req_expect(&q, SL_EINVAL, "read_filter without tenant");

	mp_pack_kv_str(req_begin(&q, "read_filter", 2), "filter", "x");
	mp_pack_kv_str(&q.pk, "tenant", "nobody");
	req_expect(&q, SL_ENOTFOUND, "read_filter of an unknown tenant");

	mp_pack_kv_str(req_begin(&q, "read_filter", 1), "tenant", FX_TENANT);
	req_expect(&q, SL_EINVAL, "read_filter without filter");
	CHECK(strstr(sl_client_last_error(cl), "'filter'") != NULL);

	mp_pack_kv_str(req_begin(&q, "read_filter", 2), "tenant", FX_TENANT);
	mp_pack_kv_u64(&q.pk, "filter", 3);
	req_expect(&q, SL_EPROTO, "filter as a number");

	mp_pack_kv_str(req_begin(&q, "read_filter", 2), "tenant", FX_TENANT);
	mp_pack_kv_str(&q.pk, "filter", "no-such-filter");
	req_expect(&q, SL_ENOTFOUND, "unknown filter");
	CHECK(strstr(sl_client_last_error(cl), "no-such-filter") != NULL);

	/* a projection named as the filter, by name and by id */
	mp_pack_kv_str(req_begin(&q, "read_filter", 2), "tenant", FX_TENANT);
	mp_pack_kv_str(&q.pk, "filter", FX_PROJECTION);
	req_expect(&q, SL_EINVAL, "projection name as filter");
	CHECK(strstr(sl_client_last_error(cl), "is a projection") != NULL);
	mp_pack_kv_str(req_begin(&q, "read_filter", 2), "tenant", FX_TENANT);
	mp_pack_kv_str(&q.pk, "filter", PROJECTION_ID);
	req_expect(&q, SL_EINVAL, "projection id as filter");

	/* wrong types */
	mp_pack_kv_str(req_begin(&q, "read_filter", 3), "tenant", FX_TENANT);
	mp_pack_kv_str(&q.pk, "filter", FX_PROJECTION);
	mp_pack_kv_u64(&q.pk, "partition", 12);
	req_expect(&q, SL_EPROTO, "partition as a number");
	CHECK(strstr(sl_client_last_error(cl), "'partition'") != NULL);
	mp_pack_kv_str(req_begin(&q, "read_filter", 3), "tenant", FX_TENANT);
	mp_pack_kv_str(&q.pk, "filter", CUSTOMER_EVENTS);
	mp_pack_kv_bool(&q.pk, "partition", true);
	req_expect(&q, SL_EPROTO, "partition as a bool");
	mp_pack_kv_str(req_begin(&q, "read_filter", 3), "tenant", FX_TENANT);
	mp_pack_kv_str(&q.pk, "filter", CUSTOMER_EVENTS);
	mp_pack_kv_str(&q.pk, "from", "0");
	req_expect(&q, SL_EPROTO, "from as a string");
	mp_pack_kv_str(req_begin(&q, "read_filter", 3), "tenant", FX_TENANT);
	mp_pack_kv_str(&q.pk, "filter", CUSTOMER_EVENTS);
	mp_pack_kv_i64(&q.pk, "max", -1);
	req_expect(&q, SL_EPROTO, "negative max");

	/* the client library */
	CHECK_EQ(
	    sl_client_read_filter(cl, NULL, CUSTOMER_EVENTS, NULL, 0, 0, &pg),
	    SL_EINVAL);
	CHECK_EQ(sl_client_read_filter(cl, FX_TENANT, NULL, NULL, 0, 0, &pg),
	    SL_EINVAL);
	CHECK_EQ(sl_client_read_filter(
	             cl, FX_TENANT, CUSTOMER_EVENTS, "", 0, 0, &pg),
	    SL_EINVAL);
	CHECK_EQ(sl_client_read_filter(
	             cl, FX_TENANT, FX_PROJECTION, NULL, 0, 0, &pg),
	    SL_EINVAL);
	CHECK_EQ(pg.n_events, 0);
	CHECK(pg.events == NULL);
	CHECK_EQ(sl_client_read_filter(
	             cl, "nobody", CUSTOMER_EVENTS, NULL, 0, 0, &pg),
	    SL_ENOTFOUND);
	check_untouched(h);
}

/* What status shows now: kinds, paused, failing. */
static void
check_status_fields(void)
{
	json_t *st = status(), *p;
	size_t  i, n_proj = 0;

	json_array_foreach(json_object_get(st, "projections"), i, p)
	{
		const char *kind
		    = json_string_value(json_object_get(p, "kind"));
		CHECK(kind != NULL);
		if (strcmp(kind, "projection") == 0)
			n_proj++;
		else
			CHECK_STREQ(kind, "filter");
	}
	CHECK(n_proj >= 1);
	p = proc_of(st, FX_TENANT, PROJECTION_ID);
	CHECK(p != NULL);
	CHECK_STREQ(
	    json_string_value(json_object_get(p, "kind")), "projection");
	CHECK(json_object_get(p, "filter_kind") == NULL);
	CHECK(json_is_false(json_object_get(p, "paused")));
	CHECK_EQ(json_integer_value(json_object_get(p, "failing_count")), 0);
	CHECK(json_is_array(json_object_get(p, "failing")));
	CHECK_EQ(json_array_size(json_object_get(p, "failing")), 0);
	/* the fields that were there before */
	CHECK(json_is_integer(json_object_get(p, "position")));
	CHECK(json_is_integer(json_object_get(p, "served_position")));
	CHECK(json_is_string(json_object_get(p, "state")));
	CHECK(proc_of(st, TENANT2, PROJECTION_ID) != NULL);
	json_decref(st);
}

/* The CLI: usage errors (1) before sending, error replies (2). */
static void
check_cli_errors(void)
{
	uint64_t h = head();

	CHECK_EQ(cli("read", "--filter", CUSTOMER_EVENTS, NULL), 1);
	CHECK_EQ(cli("read", "--partition", "p", NULL), 1);
	CHECK_EQ(cli("read", "--filter", CUSTOMER_EVENTS, "--tenant",
	             FX_TENANT, "--stream", "s", NULL),
	    1);
	CHECK_EQ(cli("read", "--filter", CUSTOMER_EVENTS, "--tenant",
	             FX_TENANT, "--from", "x", NULL),
	    1);
	CHECK_EQ(cli("pause", NULL), 1);
	CHECK_EQ(cli("pause", "a", "b", NULL), 1);
	CHECK_EQ(cli("read", "--filter", "no-such-filter", "--tenant",
	             FX_TENANT, NULL),
	    2);
	CHECK_EQ(cli("read", "--filter", FX_PROJECTION, "--tenant", FX_TENANT,
	             NULL),
	    2);
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		CHECK_EQ(cli(ops[i], "no-such-thing", NULL), 2);
		CHECK_EQ(
		    cli(ops[i], FX_PROJECTION, "--tenant", "nobody", NULL), 2);
	}
	CHECK_EQ(cli("status", NULL), 0);
	CHECK(strstr(cli_out, "\"failing\"") != NULL);
	check_untouched(h);
}

/* Needs HAVE_FILTER_DEFS: the filter definitions, no processor. */
static void
check_filter_defs(void)
{
	sl_filter_page pg;
	sl_read_models rms;
	char          *state = NULL;
	char           long_part[300];
	req            q;
	json_t        *st, *p;

	/* an empty stream (or whatever is there) reads fine */
	CHECK_EQ(sl_client_read_filter(
	             cl, FX_TENANT, CUSTOMER_EVENTS, NULL, 1000000, 0, &pg),
	    SL_OK);
	CHECK_EQ(pg.n_events, 0);
	CHECK_EQ(pg.next, 1000000);
	CHECK(!pg.more);
	sl_filter_page_free(&pg);
	CHECK_EQ(sl_client_read_filter(cl, FX_TENANT, CUSTOMER_EVENTS_ID,
	             "nobody-yet", 0, 0, &pg),
	    SL_OK);
	CHECK_EQ(pg.n_events, 0);
	sl_filter_page_free(&pg);

	/* a filter is no projection */
	CHECK_EQ(sl_client_get_one(
	             cl, FX_TENANT, CUSTOMER_EVENTS, "k", &state, NULL),
	    SL_EINVAL);
	CHECK(strstr(sl_client_last_error(cl), "is a filter") != NULL);
	CHECK(state == NULL);
	CHECK_EQ(sl_client_get_all(
	             cl, FX_TENANT, CUSTOMER_EVENTS_ID, NULL, 0, &rms),
	    SL_EINVAL);
	CHECK(strstr(sl_client_last_error(cl), "is a filter") != NULL);

	/* bad partitions */
	memset(long_part, 'p', sizeof(long_part));
	mp_pack_kv_str(req_begin(&q, "read_filter", 3), "tenant", FX_TENANT);
	mp_pack_kv_str(&q.pk, "filter", CUSTOMER_EVENTS);
	mp_pack_kv_str(&q.pk, "partition", "");
	req_expect(&q, SL_EINVAL, "empty partition");
	mp_pack_kv_str(req_begin(&q, "read_filter", 3), "tenant", FX_TENANT);
	mp_pack_kv_str(&q.pk, "filter", CUSTOMER_EVENTS);
	mp_pack_cstr(&q.pk, "partition");
	mp_pack_strn(&q.pk, long_part, 256);
	req_expect(&q, SL_ETOOBIG, "partition of 256 bytes");
	mp_pack_kv_str(req_begin(&q, "read_filter", 3), "tenant", FX_TENANT);
	mp_pack_kv_str(&q.pk, "filter", CUSTOMER_EVENTS);
	mp_pack_cstr(&q.pk, "partition");
	mp_pack_strn(&q.pk, "a\0b", 3);
	req_expect(&q, SL_EINVAL, "partition with a NUL");
	mp_pack_kv_str(req_begin(&q, "read_filter", 3), "tenant", FX_TENANT);
	mp_pack_kv_str(&q.pk, "filter", CUSTOMER_EVENTS);
	mp_pack_cstr(&q.pk, "partition");
	mp_pack_strn(&q.pk, long_part, 255);
	req_expect(&q, SL_OK, "partition of 255 bytes");

	/* status names kinds */
	st = status();
	p  = proc_of(st, FX_TENANT, CUSTOMER_EVENTS_ID);
	CHECK(p != NULL);
	CHECK_STREQ(json_string_value(json_object_get(p, "kind")), "filter");
	CHECK_STREQ(json_string_value(json_object_get(p, "filter_kind")),
	    "partitioned");
	p = proc_of(st, TENANT2, PUBLIC_OPENINGS_ID);
	CHECK(p != NULL);
	CHECK_STREQ(
	    json_string_value(json_object_get(p, "filter_kind")), "public");
	json_decref(st);
}

/* Needs HAVE_PROCESSOR (and HAVE_FILTER_DEFS). */
static void
check_processor(void)
{
	sl_filter_page pg;
	size_t         n = 0;
	json_t        *st, *p, *f, *j;
	json_error_t   je;
	uint64_t       pos;

	/* streams: cust-1 and cust-2 interleaved, one excluded event */
	CHECK_EQ(commit1(FX_TENANT, "acc-1", "DebitAccountOpened",
	             "{\"customer_id\":\"cust-1\",\"account_id\":\"acc-1\"}"),
	    SL_OK);
	CHECK_EQ(commit1(FX_TENANT, "acc-2", "DebitAccountOpened",
	             "{\"customer_id\":\"cust-2\",\"account_id\":\"acc-2\"}"),
	    SL_OK);
	CHECK_EQ(commit1(FX_TENANT, "x", "Unrelated", "{}"), SL_OK);
	CHECK_EQ(commit1(FX_TENANT, "acc-1", "DebitPerformed",
	             "{\"customer_id\":\"cust-1\",\"amount\":5}"),
	    SL_OK);
	CHECK_EQ(commit1(TENANT2, "acc-9", "DebitAccountOpened",
	             "{\"customer_id\":\"cust-9\"}"),
	    SL_OK);
	wait_caught_up(NULL);

	/* main committed cust-0's event first */
	CHECK_EQ(sl_client_read_filter(
	             cl, FX_TENANT, CUSTOMER_EVENTS, NULL, 0, 0, &pg),
	    SL_OK);
	CHECK_EQ(pg.n_events, 4);
	CHECK_EQ(pg.next, 4);
	CHECK(!pg.more);
	for (size_t i = 0; i < 4; i++)
		CHECK_EQ(pg.events[i].stream_position, i);
	CHECK_STREQ(pg.events[0].partition, "cust-0");
	CHECK_STREQ(pg.events[1].partition, "cust-1");
	CHECK_STREQ(pg.events[2].partition, "cust-2");
	CHECK_STREQ(pg.events[3].partition, "cust-1");
	CHECK_STREQ(pg.events[3].event.type, "DebitPerformed");
	CHECK_STREQ(pg.events[0].event.tenant, FX_TENANT);
	j = json_loads(pg.events[2].event.json, 0, &je);
	CHECK(j != NULL);
	CHECK_EQ(json_integer_value(json_object_get(j, "stream_position")), 2);
	CHECK_STREQ(
	    json_string_value(json_object_get(j, "partition")), "cust-2");
	json_decref(j);
	sl_filter_page_free(&pg);

	/* one partition, paged */
	CHECK_EQ(sl_client_read_filter(
	             cl, FX_TENANT, CUSTOMER_EVENTS, "cust-1", 0, 1, &pg),
	    SL_OK);
	CHECK_EQ(pg.n_events, 1);
	CHECK_EQ(pg.next, 1);
	CHECK(pg.more);
	sl_filter_page_free(&pg);
	CHECK_EQ(sl_client_read_filter(
	             cl, FX_TENANT, CUSTOMER_EVENTS, "cust-1", 1, 0, &pg),
	    SL_OK);
	CHECK_EQ(pg.n_events, 1);
	CHECK_EQ(pg.events[0].stream_position, 1);
	CHECK_STREQ(pg.events[0].event.type, "DebitPerformed");
	CHECK(!pg.more);
	sl_filter_page_free(&pg);
	/* tenants have their own streams */
	CHECK_EQ(sl_client_read_filter(
	             cl, TENANT2, CUSTOMER_EVENTS, NULL, 0, 0, &pg),
	    SL_OK);
	CHECK_EQ(pg.n_events, 1);
	CHECK_STREQ(pg.events[0].partition, "cust-9");
	CHECK_EQ(pg.generation, 1); /* the first generation of the stream */
	sl_filter_page_free(&pg);
	/* the CLI prints one line per event, with its stream position */
	CHECK_EQ(cli("read", "--filter", CUSTOMER_EVENTS, "--tenant",
	             FX_TENANT, "--partition", "cust-1", NULL),
	    0);
	CHECK(strstr(cli_out, "\"stream_position\":1") != NULL);

	/* pause: every tenant's processor; nothing moves; resume goes on */
	CHECK_EQ(
	    sl_client_command(cl, "pause", FX_PROJECTION, NULL, &n), SL_OK);
	CHECK_EQ(n, 2);
	CHECK_EQ(commit1(FX_TENANT, "acc-5", "DebitAccountOpened",
	             "{\"customer_id\":\"cust-5\",\"account_id\":\"acc-5\"}"),
	    SL_OK);
	nanosleep(&(struct timespec) { 0, 200 * 1000 * 1000 }, NULL);
	st = status();
	p  = proc_of(st, FX_TENANT, PROJECTION_ID);
	CHECK(json_is_true(json_object_get(p, "paused")));
	CHECK_STREQ(json_string_value(json_object_get(p, "state")), "paused");
	CHECK(json_integer_value(json_object_get(p, "position"))
	    < json_integer_value(json_object_get(st, "head")));
	CHECK(json_is_true(
	    json_object_get(proc_of(st, TENANT2, PROJECTION_ID), "paused")));
	json_decref(st);
	CHECK_EQ(cli("resume", FX_PROJECTION, "--tenant", FX_TENANT, NULL), 0);
	CHECK(strstr(cli_out, "\"processors\":1") != NULL);
	CHECK_EQ(sl_client_command(cl, "resume", PROJECTION_ID, TENANT2, &n),
	    SL_OK);
	CHECK_EQ(n, 1);

	/* reset: the stream is rebuilt from 0 and served once the rebuild
	 * caught up (the old one until then): cust-0, cust-1, cust-2, cust-1,
	 * cust-5. (Before the failing event below: a rebuild waits for
	 * every failing unit, and acc-3's never stops failing.) */
	CHECK_EQ(
	    sl_client_command(cl, "reset", CUSTOMER_EVENTS, FX_TENANT, &n),
	    SL_OK);
	CHECK_EQ(n, 1);
	for (int i = 0;; i++) {
		json_t *pp;
		bool    done;
		st   = status();
		pp   = proc_of(st, FX_TENANT, CUSTOMER_EVENTS_ID);
		done = json_is_false(json_object_get(pp, "rebuilding"))
		    && json_integer_value(json_object_get(pp, "position"))
		        == json_integer_value(json_object_get(st, "head"));
		json_decref(st);
		CHECK_EQ(sl_client_read_filter(
		             cl, FX_TENANT, CUSTOMER_EVENTS, NULL, 0, 0, &pg),
		    SL_OK);
		n = pg.n_events;
		CHECK(n >= 4); /* the old stream, or the rebuilt one */
		CHECK_STREQ(pg.events[0].partition, "cust-0");
		sl_filter_page_free(&pg);
		if (done && n == 5)
			break;
		CHECK(i < 1000);
		nanosleep(&(struct timespec) { 0, 10 * 1000 * 1000 }, NULL);
	}

	/* a failing partition: acc-3's event has no customer_id (the plugin
	 * says retry=false); acc-4 goes on */
	CHECK_EQ(
	    commit1(FX_TENANT, "acc-3", "DebitPerformed", "{\"amount\":1}"),
	    SL_OK);
	pos = head() - 1;
	CHECK_EQ(commit1(FX_TENANT, "acc-4", "DebitAccountOpened",
	             "{\"customer_id\":\"cust-4\"}"),
	    SL_OK);
	for (int i = 0;; i++) {
		CHECK_EQ(sl_client_read_filter(cl, FX_TENANT, CUSTOMER_EVENTS,
		             "cust-4", 0, 0, &pg),
		    SL_OK);
		n = pg.n_events;
		sl_filter_page_free(&pg);
		if (n == 1)
			break;
		CHECK(i < 1000);
		nanosleep(&(struct timespec) { 0, 10 * 1000 * 1000 }, NULL);
	}
	st = status();
	p  = proc_of(st, FX_TENANT, CUSTOMER_EVENTS_ID);
	CHECK(p != NULL);
	CHECK_EQ(json_integer_value(json_object_get(p, "failing_count")), 1);
	f = json_array_get(json_object_get(p, "failing"), 0);
	CHECK(f != NULL);
	CHECK_STREQ(
	    json_string_value(json_object_get(f, "partition")), "acc-3");
	CHECK_EQ(json_integer_value(json_object_get(f, "position")), pos);
	CHECK(json_integer_value(json_object_get(f, "attempts")) >= 1);
	CHECK(json_is_false(json_object_get(f, "retry")));
	CHECK(json_is_null(json_object_get(f, "next_try")));
	CHECK(strstr(json_string_value(json_object_get(f, "reason")),
	          "customer_id")
	    != NULL);
	json_decref(st);
	CHECK_EQ(cli("status", NULL), 0);
	CHECK(strstr(cli_out, "acc-3") != NULL);

	/* retry: the event is tried again now, and fails again (events
	 * never change) */
	CHECK_EQ(
	    sl_client_command(cl, "retry", CUSTOMER_EVENTS, FX_TENANT, &n),
	    SL_OK);
	CHECK_EQ(n, 1);
	for (int i = 0;; i++) {
		json_int_t attempts;
		st = status();
		f  = json_array_get(
		     json_object_get(
		         proc_of(st, FX_TENANT, CUSTOMER_EVENTS_ID), "failing"),
		     0);
		attempts = json_integer_value(json_object_get(f, "attempts"));
		json_decref(st);
		if (attempts >= 2)
			break;
		CHECK(i < 1000);
		nanosleep(&(struct timespec) { 0, 10 * 1000 * 1000 }, NULL);
	}
}

int
main(void)
{
	char tail[8192];

	snprintf(tail, sizeof(tail),
	    "plugin_dir: %s\n"
	    "tenants:\n"
	    "  - id: " FX_TENANT "\n"
	    "    read_models:\n"
	    "      map_size: 64MiB\n"
	    "  - id: " TENANT2 "\n"
	    "    read_models:\n"
	    "      map_size: 64MiB\n",
	    SL_PLUGIN_DIR);
	fx_start_yaml(tail);
	CHECK_EQ(sl_client_open(fx_url, 15000, &cl), SL_OK);

	CHECK_EQ(commit1(FX_TENANT, "acc-0", "DebitAccountOpened",
	             "{\"customer_id\":\"cust-0\",\"account_id\":\"acc-0\"}"),
	    SL_OK);
	check_command_errors();
	check_read_filter_errors();
	check_status_fields();
	check_cli_errors();
	if (HAVE_FILTER_DEFS)
		check_filter_defs();
	else
		printf("operator_api_test: filter definition checks off "
		       "(HAVE_FILTER_DEFS 0)\n");
	if (HAVE_FILTER_DEFS && HAVE_PROCESSOR)
		check_processor();
	else
		printf("operator_api_test: processor checks off "
		       "(HAVE_PROCESSOR 0)\n");

	/* the daemon still serves, and commits */
	CHECK_EQ(commit1(FX_TENANT, "acc-0", "DebitPerformed",
	             "{\"customer_id\":\"cust-0\",\"amount\":1}"),
	    SL_OK);
	wait_caught_up(PROJECTION_ID);
	sl_client_close(cl);
	fx_stop();
	printf("operator_api_test: ok\n");
	return 0;
}
