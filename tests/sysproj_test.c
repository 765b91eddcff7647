/*
 * The five system projections as EventStoreDB documents them, run by a real
 * sluiced over a mixed log committed through the client library: several
 * categories, event types and correlation ids, streams with one event and
 * with many, ids without a category or with the separator at 0, and the
 * projections' own '$' output streams (clients cannot write '$' streams),
 * which must never be linked again. The expected output streams are
 * written out by hand below ("revision@stream" link contents, in order)
 * and compared with `read`, then with `read` resolving the links to the
 * events committed. Also: `stop` / `start` of $by_event_type (it stays
 * behind while stopped, then catches up), and a second daemon with
 * start_standard_projections false (all five stopped until started), take:
 * last, separator "." and by_correlation_id property "$myCorrelationId";
 * that daemon's data again with take: first (the category streams are
 * rebuilt, the others kept); and a daemon beside the emitting plugin
 * e2e_emitter, whose links in an ordinary stream $by_category links to
 * their targets. First, sysproj_category (the category cut) and the
 * definitions.
 */
#include "emit_testutil.h"
#include "sysproj.h"

#define TENANT  FT_TENANT
#define WAIT_MS 30000
#define REQ_MS  10000
#define MAXL    12

/* ---- unit: the category cut, the definitions ---- */

static void
category_is(const char *stream, const char *sep, bool last, const char *want)
{
	char out[64] = "unchanged";
	int  n       = sysproj_category(stream, sep, last, out, sizeof(out));
	if (want == NULL ? n != 0
	                 : n != (int) strlen(want) || strcmp(out, want) != 0) {
		fprintf(stderr,
		    "sysproj_category('%s', '%s', %s) = %d '%s', want '%s'\n",
		    stream, sep, last ? "last" : "first", n, n > 0 ? out : "",
		    want != NULL ? want : "(none)");
		exit(1);
	}
}

static void
unit_category(void)
{
	static const struct {
		const char *stream, *sep;
		bool        last;
		const char *want; /* NULL: no category */
	} cases[] = {
		{ "account-1", "-", false, "account" },
		{ "account-1", "-", true, "account" },
		{ "a-b-c", "-", false, "a" },
		{ "a-b-c", "-", true, "a-b" },
		{ "shopping-cart-1", "-", true, "shopping-cart" },
		{ "nocategory", "-", false, NULL },
		{ "nocategory", "-", true, NULL },
		/* separator at position 0: no category (ESDB: index > 0) */
		{ "-lead", "-", false, NULL },
		{ "-lead", "-", true, NULL },
		{ "-a-b", "-", true, "-a" }, /* the last one is not at 0 */
		{ "trail-", "-", false, "trail" },
		{ "x--y", "-", true, "x-" },
		/* system streams have none */
		{ "$ce-account", "-", false, NULL },
		{ "$streams", "-", true, NULL },
		/* other and longer separators */
		{ "shop.cart.1", ".", true, "shop.cart" },
		{ "shop.cart.1", ".", false, "shop" },
		{ "a::b::c", "::", false, "a" },
		{ "a::b::c", "::", true, "a::b" },
		{ "a:b", "::", false, NULL },
		{ "::b", "::", false, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		category_is(cases[i].stream, cases[i].sep, cases[i].last,
		    cases[i].want);
	/* too small an output buffer */
	char tiny[4];
	CHECK_EQ(
	    sysproj_category("account-1", "-", false, tiny, sizeof(tiny)), -1);
	CHECK_EQ(sysproj_category("abc-1", "-", false, tiny, sizeof(tiny)), 3);
	CHECK_STREQ(tiny, "abc");
}

static void
unit_defs(void)
{
	static const char *const names[] = { "$by_category", "$by_event_type",
		"$by_correlation_id", "$stream_by_category", "$streams" };
	uint64_t  h0[SYSPROJ_COUNT], h1[SYSPROJ_COUNT], h2[SYSPROJ_COUNT];
	sl_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.category_separator   = "-";
	cfg.correlation_property = "$correlationId";
	CHECK_EQ(sysproj_init(&cfg), SL_OK);
	CHECK_EQ(sysproj_count(), SYSPROJ_COUNT);
	for (size_t i = 0; i < SYSPROJ_COUNT; i++) {
		const proj_def *d = sysproj_def(i);
		char            id[37];
		snprintf(id, sizeof(id),
		    "00000000-0000-0000-0000-00000000000%zu", i + 1);
		CHECK(d != NULL);
		CHECK_STREQ(d->id, id);
		CHECK_STREQ(d->name, names[i]);
		CHECK_STREQ(d->p->name, names[i]);
		CHECK(sysproj_is_system(d));
		CHECK_EQ(d->kind, DEF_PROJECTION);
		CHECK(d->owner == NULL && d->ver == NULL && d->f == NULL);
		CHECK_EQ(d->initial_len, 1);
		CHECK_EQ((unsigned char) d->initial[0], 0x80); /* {} */
		CHECK_EQ(d->p->n_selectors, 1);
		CHECK_STREQ(d->p->selectors[0].event_type, "$any");
		CHECK_EQ(d->p->selectors[0].key, SL_KEY_STATIC);
		CHECK_STREQ(d->p->selectors[0].arg, "");
		CHECK(d->p->on != NULL);
		/* read as 1.2 definitions: the whole log, links included */
		CHECK_EQ(d->p->abi_version, (uint32_t) (SL_ABI_MAJOR << 16 | 2));
		h0[i] = d->def_hash;
	}
	CHECK(sysproj_def(SYSPROJ_COUNT) == NULL);

	/* the configuration is part of the definitions that use it */
	cfg.category_last = true;
	CHECK_EQ(sysproj_init(&cfg), SL_OK);
	for (size_t i = 0; i < SYSPROJ_COUNT; i++)
		h1[i] = sysproj_def(i)->def_hash;
	cfg.category_last        = false;
	cfg.category_separator   = ".";
	cfg.correlation_property = "$myCorrelationId";
	CHECK_EQ(sysproj_init(&cfg), SL_OK);
	for (size_t i = 0; i < SYSPROJ_COUNT; i++)
		h2[i] = sysproj_def(i)->def_hash;
	CHECK(h1[0] != h0[0] && h2[0] != h0[0] && h2[0] != h1[0]);
	CHECK(h1[3] != h0[3] && h2[3] != h0[3] && h2[3] != h1[3]);
	CHECK(h1[2] == h0[2] && h2[2] != h0[2]);
	CHECK(h1[1] == h0[1] && h2[1] == h0[1]);
	CHECK(h1[4] == h0[4] && h2[4] == h0[4]);
	/* the same configuration, the same hashes */
	cfg.category_separator   = "-";
	cfg.correlation_property = "$correlationId";
	CHECK_EQ(sysproj_init(&cfg), SL_OK);
	for (size_t i = 0; i < SYSPROJ_COUNT; i++)
		CHECK(sysproj_def(i)->def_hash == h0[i]);
	sysproj_fini();
	CHECK_EQ(sysproj_count(), 0);
}

/* ---- the daemon ---- */

/* name's entry for tenant in status (emitting_projections, or another
 * array of entries with a position). */
static json_t *
entry(json_t *st, const char *name, const char *tenant)
{
	static const char *const arrays[]
	    = { "emitting_projections", "processors", "projections" };
	for (size_t a = 0; a < 3; a++) {
		size_t  i;
		json_t *p;
		json_array_foreach(json_object_get(st, arrays[a]), i, p)
		{
			if (strcmp(jstr(p, "name"), name) != 0)
				continue;
			if (json_object_get(p, "tenant") != NULL
			    && strcmp(jstr(p, "tenant"), tenant) != 0)
				continue;
			if (json_object_get(p, "position") != NULL)
				return p;
		}
	}
	return NULL;
}

static const char *const sys_names[] = { "$by_category", "$by_event_type",
	"$by_correlation_id", "$stream_by_category", "$streams" };

/* The log position after the last event committed for t1 / t2. */
static uint64_t next_pos[2];

static uint64_t *
tenant_next(const char *tenant)
{
	return &next_pos[strcmp(tenant, TENANT) == 0 ? 0 : 1];
}

/*
 * Wait until each system projection of tenant (only that one when only is
 * not NULL) has handled every event committed for the tenant (and, if
 * want_status, shows that status); a faulted one fails the test. The test
 * does not wait for position == head: what follows the tenant's last
 * event is links in '$' streams and the other tenant's events, which a
 * projection skips, and the engine may keep its checkpoint before skipped
 * events until there is something to write.
 */
static void
wait_caught_up(const char *tenant, const char *only, const char *want_status)
{
	int64_t end = dt_now_ms() + WAIT_MS;
	for (;;) {
		json_t *st   = et_status();
		bool    done = true;
		for (size_t i = 0; i < 5; i++) {
			if (only != NULL && strcmp(only, sys_names[i]) != 0)
				continue;
			json_t *p = entry(st, sys_names[i], tenant);
			if (p == NULL) {
				done = false;
				continue;
			}
			if (strcmp(jstr(p, "status"), "faulted") == 0)
				FT_FAIL("%s (%s) faulted: %s", sys_names[i],
				    tenant, json_dumps(p, JSON_COMPACT));
			if (jint(p, "position")
			        < (long long) *tenant_next(tenant)
			    || jint(p, "position") > jint(st, "head")
			    || (want_status != NULL
			        && strcmp(jstr(p, "status"), want_status)
			            != 0))
				done = false;
		}
		if (done) {
			json_decref(st);
			return;
		}
		if (dt_now_ms() > end)
			FT_FAIL("the system projections of %s did not catch "
			        "up within %d ms: %s",
			    tenant, WAIT_MS, json_dumps(st, JSON_COMPACT));
		json_decref(st);
		dt_sleep_ms(20);
	}
}

/* Wait until name (tenant) shows status want; its position. */
static long long
wait_status(const char *name, const char *tenant, const char *want)
{
	int64_t end = dt_now_ms() + WAIT_MS;
	for (;;) {
		json_t   *st  = et_status();
		json_t   *p   = entry(st, name, tenant);
		long long pos = p != NULL ? jint(p, "position") : -1;
		if (p != NULL && strcmp(jstr(p, "status"), want) == 0) {
			json_decref(st);
			return pos;
		}
		if (dt_now_ms() > end)
			FT_FAIL("%s (%s) did not become %s: %s", name, tenant,
			    want, json_dumps(st, JSON_COMPACT));
		json_decref(st);
		dt_sleep_ms(20);
	}
}

static void
command(const char *op, const char *name, const char *tenant)
{
	size_t n  = 0;
	int    rc = sl_client_command(et_cl, op, name, tenant, &n);
	if (rc != SL_OK || n < 1)
		FT_FAIL("%s %s (%s): %s: %s (%zu processors)", op, name,
		    tenant, sl_errname(rc), sl_client_last_error(et_cl), n);
}

/* ft_setup's empty plugin directory. */
static const char *
no_plugins(void)
{
	static char path[4200];
	snprintf(path, sizeof(path), "%s/no-plugins", tu_tmpdir());
	return path;
}

/* ---- the log ---- */

/* One event to commit; with_next: in one commit with the next entry. */
typedef struct log_ev {
	const char *tenant;
	const char *stream;
	const char *type;
	const char *metadata; /* JSON, or NULL */
	bool        with_next;
} log_ev;

#define CORR(x) "{\"$correlationId\":\"" x "\"}"

/* The mixed log of the first daemon, in commit order. */
static const log_ev log1[] = {
	{ TENANT, "account-1", "AccountOpened", CORR("corr-A"), true },
	{ TENANT, "account-1", "Deposited", CORR("corr-A"), false },
	{ TENANT, "account-2", "AccountOpened", CORR("corr-B"), false },
	{ "t2", "other-1", "Note", CORR("corr-A"), false },
	{ TENANT, "order-7", "OrderPlaced", CORR("corr-A"), false },
	{ TENANT, "nocategory", "Note", NULL, false },
	/* a correlation id that is not a string: not correlated */
	{ TENANT, "a-b-c", "Deposited", "{\"$correlationId\":42}", false },
	/* another property: not correlated by default */
	{ TENANT, "account-1", "Withdrawn", "{\"$myCorrelationId\":\"my-1\"}",
	    false },
	{ TENANT, "-lead", "Note", "{\"other\":\"x\"}", false },
	{ TENANT, "a-b-c", "Note", CORR("corr-B"), false },
	{ TENANT, "trail-", "OrderPlaced", NULL, false },
	/* an empty correlation id: not correlated */
	{ TENANT, "account-2", "Deposited", CORR(""), true },
	{ TENANT, "account-2", "Deposited", CORR("corr-B"), true },
	{ TENANT, "account-2", "Deposited", CORR("corr-B"), false },
};

/* The second daemon's: separator ".", take: last, $myCorrelationId. */
#define MYCORR(x) "{\"$myCorrelationId\":\"" x "\"}"
static const log_ev log2[] = {
	{ TENANT, "shop.cart.1", "ItemAdded", MYCORR("m1"), true },
	{ TENANT, "shop.cart.1", "ItemAdded",
	    "{\"$myCorrelationId\":\"m1\",\"$correlationId\":\"corr-A\"}",
	    false },
	{ TENANT, "acct.9", "Opened", MYCORR("m2"), false },
	{ TENANT, "a.b.c", "Note", NULL, false },
	{ TENANT, "a-b-c", "Note", "{\"$myCorrelationId\":7}", false },
	{ TENANT, ".dot", "Note", CORR("corr-A"), false },
	{ TENANT, "shop.cart.2", "ItemAdded", MYCORR("m2"), false },
};

static void
commit_log(const log_ev *log, size_t n)
{
	sl_new_event evs[8];
	char         content[8][64];
	size_t       k = 0;
	for (size_t i = 0; i < n; i++) {
		snprintf(content[k], sizeof(content[k]), "{\"i\":%zu}", i);
		evs[k] = (sl_new_event) { .type = log[i].type,
			.content_json           = content[k],
			.metadata_json          = log[i].metadata };
		k++;
		if (log[i].with_next)
			continue;
		sl_commit_result res;
		int rc = sl_client_commit(et_cl, log[i].tenant, log[i].stream,
		    SL_EXPECT_ANY, evs, k, &res);
		if (rc != SL_OK)
			FT_FAIL("commit to %s: %s: %s", log[i].stream,
			    sl_errname(rc), sl_client_last_error(et_cl));
		CHECK_EQ(res.count, k);
		k                           = 0;
		*tenant_next(log[i].tenant) = res.last_position + 1;
	}
}

/* The type of revision rev of stream in log (NULL: no such event). */
static const char *
log_type(const log_ev *log, size_t n, const char *tenant, const char *stream,
    uint64_t rev)
{
	uint64_t r = 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(log[i].tenant, tenant) == 0
		    && strcmp(log[i].stream, stream) == 0 && r++ == rev)
			return log[i].type;
	return NULL;
}

/* ---- the expected output streams, written out by hand ---- */

typedef struct expect {
	const char *tenant;
	const char *stream;
	const char *links[MAXL]; /* "revision@stream", in order; NULL ends */
} expect;

static const expect expect1[] = {
	/* $by_category: first '-' */
	{ TENANT, "$ce-account",
	    { "0@account-1", "1@account-1", "0@account-2", "2@account-1",
	        "1@account-2", "2@account-2", "3@account-2" } },
	{ TENANT, "$ce-order", { "0@order-7" } },
	{ TENANT, "$ce-a", { "0@a-b-c", "1@a-b-c" } },
	{ TENANT, "$ce-trail", { "0@trail-" } },
	{ TENANT, "$ce-nocategory", { NULL } },
	{ TENANT, "$ce-", { NULL } },
	{ TENANT, "$ce-a-b", { NULL } },   /* that is take: last */
	{ TENANT, "$ce-other", { NULL } }, /* t2's */
	{ TENANT, "$ce-$ce", { NULL } },
	/* $by_event_type */
	{ TENANT, "$et-AccountOpened", { "0@account-1", "0@account-2" } },
	{ TENANT, "$et-Deposited",
	    { "1@account-1", "0@a-b-c", "1@account-2", "2@account-2",
	        "3@account-2" } },
	{ TENANT, "$et-OrderPlaced", { "0@order-7", "0@trail-" } },
	{ TENANT, "$et-Note", { "0@nocategory", "0@-lead", "1@a-b-c" } },
	{ TENANT, "$et-Withdrawn", { "2@account-1" } },
	{ TENANT, "$et-$>", { NULL } }, /* links are never linked */
	/* $by_correlation_id: metadata $correlationId, strings only */
	{ TENANT, "$bc-corr-A",
	    { "0@account-1", "1@account-1", "0@order-7" } },
	{ TENANT, "$bc-corr-B",
	    { "0@account-2", "1@a-b-c", "2@account-2", "3@account-2" } },
	{ TENANT, "$bc-42", { NULL } },
	{ TENANT, "$bc-my-1", { NULL } },
	{ TENANT, "$bc-", { NULL } },
	/* $stream_by_category: each stream's first event */
	{ TENANT, "$category-account", { "0@account-1", "0@account-2" } },
	{ TENANT, "$category-order", { "0@order-7" } },
	{ TENANT, "$category-a", { "0@a-b-c" } },
	{ TENANT, "$category-trail", { "0@trail-" } },
	{ TENANT, "$category-nocategory", { NULL } },
	/* $streams: every stream's first event, no '$' stream */
	{ TENANT, "$streams",
	    { "0@account-1", "0@account-2", "0@order-7", "0@nocategory",
	        "0@a-b-c", "0@-lead", "0@trail-" } },
	/* tenant t2 has its own */
	{ "t2", "$streams", { "0@other-1" } },
	{ "t2", "$ce-other", { "0@other-1" } },
	{ "t2", "$et-Note", { "0@other-1" } },
	{ "t2", "$bc-corr-A", { "0@other-1" } },
	{ "t2", "$category-other", { "0@other-1" } },
	{ "t2", "$ce-account", { NULL } },
};

static const expect expect2[] = {
	/* $by_category: last '.' */
	{ TENANT, "$ce-shop.cart",
	    { "0@shop.cart.1", "1@shop.cart.1", "0@shop.cart.2" } },
	{ TENANT, "$ce-acct", { "0@acct.9" } },
	{ TENANT, "$ce-a.b", { "0@a.b.c" } },
	{ TENANT, "$ce-shop", { NULL } }, /* that is take: first */
	{ TENANT, "$ce-a", { NULL } },
	{ TENANT, "$ce-", { NULL } },
	/* $by_event_type: unchanged by the configuration */
	{ TENANT, "$et-ItemAdded",
	    { "0@shop.cart.1", "1@shop.cart.1", "0@shop.cart.2" } },
	{ TENANT, "$et-Note", { "0@a.b.c", "0@a-b-c", "0@.dot" } },
	{ TENANT, "$et-Opened", { "0@acct.9" } },
	/* $by_correlation_id: metadata $myCorrelationId */
	{ TENANT, "$bc-m1", { "0@shop.cart.1", "1@shop.cart.1" } },
	{ TENANT, "$bc-m2", { "0@acct.9", "0@shop.cart.2" } },
	{ TENANT, "$bc-corr-A", { NULL } },
	{ TENANT, "$bc-7", { NULL } },
	/* $stream_by_category: last '.' */
	{ TENANT, "$category-shop.cart",
	    { "0@shop.cart.1", "0@shop.cart.2" } },
	{ TENANT, "$category-acct", { "0@acct.9" } },
	{ TENANT, "$category-a.b", { "0@a.b.c" } },
	{ TENANT, "$category-shop", { NULL } },
	{ TENANT, "$streams",
	    { "0@shop.cart.1", "0@acct.9", "0@a.b.c", "0@a-b-c", "0@.dot",
	        "0@shop.cart.2" } },
};

/* Read a whole stream (resolving links or not); an unknown one is empty. */
static void
read_stream(
    const char *tenant, const char *stream, bool resolve, sl_read_result *out)
{
	sl_read_opts o
	    = { .tenant = tenant, .stream = stream, .resolve_links = resolve };
	int rc = sl_client_read_ex(et_cl, &o, out);
	if (rc == SL_ENOTFOUND) {
		memset(out, 0, sizeof(*out));
		return;
	}
	if (rc != SL_OK)
		FT_FAIL("read %s/%s: %s: %s", tenant, stream, sl_errname(rc),
		    sl_client_last_error(et_cl));
}

/* A link's content ("N@stream"), from the content's JSON (a string). */
static char *
link_text(const sl_read_event *e)
{
	json_t *j = json_loads(e->content_json, JSON_DECODE_ANY, NULL);
	char *s = j != NULL && json_is_string(j) ? strdup(json_string_value(j))
	                                         : NULL;
	json_decref(j);
	return s;
}

/* x's links must be at revisions base, base + 1, ... of the stream (a
 * stream written again after a reset keeps counting, as ESDB's truncate
 * before). */
static void
check_stream_from(
    const expect *x, uint64_t base, const log_ev *log, size_t n_log)
{
	sl_read_result r;
	size_t         n = 0;
	while (n < MAXL && x->links[n] != NULL)
		n++;

	/* as written: link events, in order */
	read_stream(x->tenant, x->stream, false, &r);
	bool ok = r.n_events == n;
	for (size_t i = 0; ok && i < n; i++) {
		char *t = link_text(&r.events[i]);
		ok      = strcmp(r.events[i].type, "$>") == 0 && t != NULL
		    && strcmp(t, x->links[i]) == 0
		    && strcmp(r.events[i].stream, x->stream) == 0
		    && r.events[i].revision == base + i;
		free(t);
	}
	if (!ok) {
		fprintf(
		    stderr, "%s/%s: want %zu links:", x->tenant, x->stream, n);
		for (size_t i = 0; i < n; i++)
			fprintf(stderr, " %s", x->links[i]);
		fprintf(stderr, "\ngot %zu events:\n", r.n_events);
		for (size_t i = 0; i < r.n_events; i++)
			fprintf(stderr, "  %s\n", r.events[i].json);
		FT_FAIL("%s/%s differs", x->tenant, x->stream);
	}
	sl_read_result_free(&r);

	/* resolved: the events linked, each with where its link is */
	read_stream(x->tenant, x->stream, true, &r);
	CHECK_EQ(r.n_events, n);
	for (size_t i = 0; i < n; i++) {
		sl_read_event *e = &r.events[i];
		char           want[300];
		const char    *at   = strchr(x->links[i], '@');
		const char    *type = log_type(log, n_log, x->tenant, at + 1,
		       strtoull(x->links[i], NULL, 10));
		snprintf(want, sizeof(want), "%" PRIu64 "@%s", e->revision,
		    e->stream);
		if (!e->is_link || e->unresolved
		    || strcmp(want, x->links[i]) != 0 || type == NULL
		    || strcmp(e->type, type) != 0
		    || strcmp(e->tenant, x->tenant) != 0
		    || e->link_stream == NULL
		    || strcmp(e->link_stream, x->stream) != 0
		    || e->link_revision != base + i)
			FT_FAIL("%s/%s resolved [%zu]: want %s (%s), got "
			        "%s (link %s %d %s@%" PRIu64 ")",
			    x->tenant, x->stream, i, x->links[i],
			    type != NULL ? type : "?", e->json,
			    e->is_link ? "yes" : "no", e->unresolved,
			    e->link_stream ? e->link_stream : "-",
			    e->link_revision);
	}
	sl_read_result_free(&r);
}

static void
check_stream(const expect *x, const log_ev *log, size_t n_log)
{
	check_stream_from(x, 0, log, n_log);
}

static void
check_all(const expect *xs, size_t n, const log_ev *log, size_t n_log)
{
	for (size_t i = 0; i < n; i++)
		check_stream(&xs[i], log, n_log);
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* The first daemon: defaults, standard projections started. */
static void
first_daemon(void)
{
	static log_ev more[COUNT(log1) + 1];
	et_daemon_up(REQ_MS);
	commit_log(log1, COUNT(log1));
	wait_caught_up(TENANT, NULL, "running");
	wait_caught_up("t2", NULL, "running");
	check_all(expect1, COUNT(expect1), log1, COUNT(log1));

	/* stop: $by_event_type stays where it is while the others go on */
	command("stop", "$by_event_type", TENANT);
	/* (it may still commit the checkpoint of what it handled before) */
	wait_status("$by_event_type", TENANT, "stopped");
	memcpy(more, log1, sizeof(log1));
	more[COUNT(log1)] = (log_ev) { TENANT, "account-3", "Closed",
		CORR("corr-A"), false };
	commit_log(&more[COUNT(log1)], 1);
	wait_caught_up(TENANT, "$by_category", "running");
	wait_caught_up(TENANT, "$streams", "running");
	dt_sleep_ms(200); /* it would have moved by now */
	/* position: the next to handle; the Closed event is the last */
	long long stopped_at
	    = wait_status("$by_event_type", TENANT, "stopped");
	CHECK(stopped_at < (long long) *tenant_next(TENANT));
	expect x = { TENANT, "$et-Closed", { NULL } };
	check_stream(&x, more, COUNT(more));
	expect c = { TENANT, "$category-account",
		{ "0@account-1", "0@account-2", "0@account-3" } };
	check_stream(&c, more, COUNT(more));

	/* start: it catches up */
	command("start", "$by_event_type", TENANT);
	wait_caught_up(TENANT, "$by_event_type", "running");
	x.links[0] = "0@account-3";
	check_stream(&x, more, COUNT(more));
	expect d = { TENANT, "$et-Deposited",
		{ "1@account-1", "0@a-b-c", "1@account-2", "2@account-2",
		    "3@account-2" } };
	check_stream(&d, more, COUNT(more));
	et_daemon_down();
}

/* The second: stopped until started; take last, ".", $myCorrelationId. */
static void
second_daemon(void)
{
	et_write_config("data2", no_plugins(), TENANT,
	    "run_projections: system\n"
	    "start_standard_projections: false\n"
	    "system_projections:\n"
	    "  by_category: {separator: \".\", take: last}\n"
	    "  by_correlation_id: {property: $myCorrelationId}\n");
	et_daemon_up(REQ_MS);
	commit_log(log2, COUNT(log2));
	/* as EventStoreDB: present, but stopped */
	for (size_t i = 0; i < 5; i++)
		wait_status(sys_names[i], TENANT, "stopped");
	long long at[5];
	for (size_t i = 0; i < 5; i++)
		at[i] = wait_status(sys_names[i], TENANT, "stopped");
	dt_sleep_ms(200);
	for (size_t i = 0; i < 5; i++) {
		CHECK(at[i] < (long long) *tenant_next(TENANT));
		CHECK_EQ(wait_status(sys_names[i], TENANT, "stopped"), at[i]);
	}
	expect none = { TENANT, "$streams", { NULL } };
	check_stream(&none, log2, COUNT(log2));
	for (size_t i = 0; i < 5; i++)
		command("start", sys_names[i], TENANT);
	wait_caught_up(TENANT, NULL, "running");
	check_all(expect2, COUNT(expect2), log2, COUNT(log2));
	et_daemon_down();
}

/* The second daemon's data again with take: first: the configuration is
 * part of $by_category's and $stream_by_category's definitions, so their
 * streams are removed (soft delete) and written anew; the others keep
 * theirs. */
static const expect expect3[] = {
	{ TENANT, "$ce-shop",
	    { "0@shop.cart.1", "1@shop.cart.1", "0@shop.cart.2" } },
	{ TENANT, "$ce-a", { "0@a.b.c" } },
	{ TENANT, "$ce-shop.cart", { NULL } },
	{ TENANT, "$ce-a.b", { NULL } },
	{ TENANT, "$category-shop", { "0@shop.cart.1", "0@shop.cart.2" } },
	{ TENANT, "$category-a", { "0@a.b.c" } },
	{ TENANT, "$category-shop.cart", { NULL } },
	{ TENANT, "$category-a.b", { NULL } },
	/* unchanged: not rebuilt */
	{ TENANT, "$bc-m1", { "0@shop.cart.1", "1@shop.cart.1" } },
	{ TENANT, "$et-Opened", { "0@acct.9" } },
	{ TENANT, "$streams",
	    { "0@shop.cart.1", "0@acct.9", "0@a.b.c", "0@a-b-c", "0@.dot",
	        "0@shop.cart.2" } },
};

static void
wait_stream_len(const char *tenant, const char *stream, size_t n)
{
	int64_t end = dt_now_ms() + WAIT_MS;
	for (;;) {
		sl_read_result r;
		read_stream(tenant, stream, false, &r);
		size_t got = r.n_events;
		sl_read_result_free(&r);
		if (got >= n)
			return;
		if (dt_now_ms() > end)
			FT_FAIL("%s/%s has %zu events, want %zu (not rebuilt)",
			    tenant, stream, got, n);
		dt_sleep_ms(20);
	}
}

static void
third_daemon(void)
{
	et_write_config("data2", no_plugins(), TENANT,
	    "start_standard_projections: true\n"
	    "system_projections:\n"
	    "  by_category: {separator: \".\", take: first}\n"
	    "  by_correlation_id: {property: $myCorrelationId}\n");
	et_daemon_up(REQ_MS);
	wait_caught_up(TENANT, NULL, "running");
	/* the rebuilt ones are caught up once the links of the last event
	 * (shop.cart.2) are there: links commit with the checkpoint */
	wait_stream_len(TENANT, "$ce-shop", 3);
	wait_stream_len(TENANT, "$category-shop", 2);
	wait_caught_up(TENANT, NULL, "running");
	check_all(expect3, COUNT(expect3), log2, COUNT(log2));
	/* written again: their revisions go on from where they were */
	expect acct = { TENANT, "$ce-acct", { "0@acct.9" } };
	check_stream_from(&acct, 1, log2, COUNT(log2));
	expect cacct = { TENANT, "$category-acct", { "0@acct.9" } };
	check_stream_from(&cacct, 1, log2, COUNT(log2));
	et_daemon_down();
}

/*
 * With an emitting plugin projection (e2e_emitter: per AccountOpened /
 * Deposited a "Ledger" event into ledger-<stream> and a link into
 * ledger-all): its Ledger events are indexed like any event; the links it
 * wrote into ledger-all (an ordinary stream) are linked by $by_category to
 * their targets, skipped by $by_event_type and $by_correlation_id, and
 * taken as they are (revision 0) by $stream_by_category and $streams.
 * Commits wait for e2e_emitter, so that the log's order is known.
 */
static const log_ev log4[] = {
	{ TENANT, "account-1", "AccountOpened", CORR("c4"), true },
	{ TENANT, "account-1", "Deposited", CORR("c4"), false },
	{ TENANT, "account-2", "AccountOpened", NULL, false },
	{ TENANT, "other-1", "Note", NULL, false },
};

/* Every event of the streams the checks resolve to, in revision order:
 * log4 and what e2e_emitter wrote. */
static const log_ev known4[] = {
	{ TENANT, "account-1", "AccountOpened", NULL, false },
	{ TENANT, "account-1", "Deposited", NULL, false },
	{ TENANT, "account-2", "AccountOpened", NULL, false },
	{ TENANT, "other-1", "Note", NULL, false },
	{ TENANT, "ledger-account-1", "Ledger", NULL, false },
	{ TENANT, "ledger-account-1", "Ledger", NULL, false },
	{ TENANT, "ledger-account-2", "Ledger", NULL, false },
	{ TENANT, "ledger-all", "$>", NULL, false },
	{ TENANT, "ledger-all", "$>", NULL, false },
	{ TENANT, "ledger-all", "$>", NULL, false },
};

static const expect expect4[] = {
	{ TENANT, "ledger-all",
	    { "0@account-1", "1@account-1", "0@account-2" } },
	/* Ledger events and, for each link in ledger-all, its target */
	{ TENANT, "$ce-ledger",
	    { "0@ledger-account-1", "0@account-1", "1@ledger-account-1",
	        "1@account-1", "0@ledger-account-2", "0@account-2" } },
	{ TENANT, "$ce-account",
	    { "0@account-1", "1@account-1", "0@account-2" } },
	{ TENANT, "$et-Ledger",
	    { "0@ledger-account-1", "1@ledger-account-1",
	        "0@ledger-account-2" } },
	{ TENANT, "$et-$>", { NULL } },
	{ TENANT, "$et-AccountOpened", { "0@account-1", "0@account-2" } },
	{ TENANT, "$bc-c4", { "0@account-1", "1@account-1" } },
	{ TENANT, "$category-ledger",
	    { "0@ledger-account-1", "0@ledger-all", "0@ledger-account-2" } },
	{ TENANT, "$category-account", { "0@account-1", "0@account-2" } },
	{ TENANT, "$streams",
	    { "0@account-1", "0@ledger-account-1", "0@ledger-all",
	        "0@account-2", "0@ledger-account-2", "0@other-1" } },
};

static void
fourth_daemon(void)
{
	et_write_config("data4", SL_TEST_PLUGIN_DIR "/" ET_EMITTER, TENANT,
	    "start_standard_projections: true\n");
	et_daemon_up(REQ_MS);
	commit_log(&log4[0], 2);
	wait_stream_len(TENANT, "ledger-all", 2);
	commit_log(&log4[2], 1);
	wait_stream_len(TENANT, "ledger-all", 3);
	commit_log(&log4[3], 1);
	wait_caught_up(TENANT, NULL, "running");
	check_all(expect4, COUNT(expect4), known4, COUNT(known4));
	et_daemon_down();
}

/*
 * The shared reader (runtime/processing/sysfeed.c) in the daemon: two
 * tenants' events interleaved, enough of them to move its window many
 * times; sluiced SIGKILLed while the five of both tenants catch up, then
 * $by_category of TENANT reset while the others run and more events
 * come. Every stream of both tenants then holds each event's link exactly
 * once, in log order, and nothing of the other tenant's.
 */
#define BIG_COMMITS 2000 /* of BIG_PER events, alternating tenants */
#define BIG_PER     10

/* What was committed, in log order. */
typedef struct big_ev {
	int      tenant; /* 0: TENANT, 1: t2 */
	char     stream[16];
	uint64_t rev;
	int      corr;
} big_ev;

static big_ev  *big;
static size_t   n_big;
static uint64_t big_heads[2][80]; /* next revision per stream */

/* Commits k0 .. k1 - 1 of the big log; the stream of commit k is acc-n
 * or cust-n of its tenant, correlation g0..g2. */
static void
commit_big(int k0, int k1)
{
	for (int k = k0; k < k1; k++) {
		int          t = k % 2, n = (k / 2) % 80;
		const char  *tenant = t == 0 ? TENANT : "t2";
		char         stream[16], meta[64];
		sl_new_event evs[BIG_PER];
		snprintf(stream, sizeof(stream), "%s-%d",
		    n < 40 ? "acc" : "cust", n % 40);
		snprintf(meta, sizeof(meta), CORR("g%d"), k % 3);
		for (int j = 0; j < BIG_PER; j++) {
			evs[j] = (sl_new_event) {
				.type          = big_heads[t][n] + (uint64_t) j == 0
				             ? "Opened"
				             : "Deposited",
				.content_json  = "{\"n\":1}",
				.metadata_json = meta,
			};
			big_ev *b = &big[n_big++];
			b->tenant = t;
			snprintf(b->stream, sizeof(b->stream), "%s", stream);
			b->rev  = big_heads[t][n] + (uint64_t) j;
			b->corr = k % 3;
		}
		sl_commit_result res;
		int rc = sl_client_commit(et_cl, tenant, stream,
		    SL_EXPECT_ANY, evs, BIG_PER, &res);
		if (rc != SL_OK)
			FT_FAIL("commit to %s: %s: %s", stream, sl_errname(rc),
			    sl_client_last_error(et_cl));
		big_heads[t][n] += BIG_PER;
		*tenant_next(tenant) = res.last_position + 1;
	}
}

/* Whether event b of the big log goes into stream (of its tenant). */
static bool
big_in(const big_ev *b, const char *stream)
{
	char cat[8], name[40];
	snprintf(cat, sizeof(cat), "%.*s", (int) strcspn(b->stream, "-"),
	    b->stream);
	if (strncmp(stream, "$ce-", 4) == 0)
		return strcmp(stream + 4, cat) == 0;
	if (strncmp(stream, "$et-", 4) == 0)
		return strcmp(stream + 4, b->rev == 0 ? "Opened" : "Deposited")
		    == 0;
	snprintf(name, sizeof(name), "$bc-g%d", b->corr);
	if (strncmp(stream, "$bc-", 4) == 0)
		return strcmp(stream, name) == 0;
	if (strncmp(stream, "$category-", 10) == 0)
		return b->rev == 0 && strcmp(stream + 10, cat) == 0;
	return b->rev == 0; /* $streams */
}

/* Stream (of tenant t) holds exactly the links the big log calls for,
 * in order, at consecutive revisions (from 0 unless reset). */
static void
check_big_stream(int t, const char *stream, bool reset)
{
	const char *tenant = t == 0 ? TENANT : "t2";
	size_t      at = 0, got = 0;
	uint64_t    from = 0, first = 0;
	for (;;) {
		sl_read_result r;
		sl_read_opts   o = { .tenant = tenant, .stream = stream,
			  .from                = from };
		int rc = sl_client_read_ex(et_cl, &o, &r);
		if (rc != SL_OK)
			FT_FAIL("read %s/%s: %s: %s", tenant, stream,
			    sl_errname(rc), sl_client_last_error(et_cl));
		for (size_t i = 0; i < r.n_events; i++, got++) {
			while (at < n_big
			    && (big[at].tenant != t || !big_in(&big[at], stream)))
				at++;
			char  want[64];
			char *text = link_text(&r.events[i]);
			if (got == 0)
				first = r.events[i].revision;
			if (at < n_big)
				snprintf(want, sizeof(want), "%" PRIu64 "@%s",
				    big[at].rev, big[at].stream);
			if (at >= n_big || text == NULL
			    || strcmp(text, want) != 0
			    || r.events[i].revision != first + got
			    || (!reset && first != 0))
				FT_FAIL("%s/%s [%zu] at revision %" PRIu64
				        ": %s, want %s",
				    tenant, stream, got, r.events[i].revision,
				    text != NULL ? text : "?",
				    at < n_big ? want : "(no more)");
			free(text);
			at++;
		}
		size_t n = r.n_events;
		from     = r.next;
		sl_read_result_free(&r);
		if (n == 0)
			break;
	}
	while (at < n_big && (big[at].tenant != t || !big_in(&big[at], stream)))
		at++;
	if (at < n_big)
		FT_FAIL("%s/%s: %zu links, missing %" PRIu64 "@%s and after",
		    tenant, stream, got, big[at].rev, big[at].stream);
	if (got == 0)
		FT_FAIL("%s/%s is empty", tenant, stream);
}

static void
start_all(void)
{
	for (int t = 0; t < 2; t++)
		for (size_t i = 0; i < 5; i++)
			command("start", sys_names[i], t == 0 ? TENANT : "t2");
}

static void
fifth_daemon(void)
{
	memset(next_pos, 0, sizeof(next_pos));
	big = calloc((BIG_COMMITS + BIG_COMMITS / 4) * BIG_PER, sizeof(*big));
	CHECK(big != NULL);
	et_write_config("data5", no_plugins(), TENANT,
	    "  - id: t2\n"
	    "start_standard_projections: false\n");
	et_daemon_up(REQ_MS);
	commit_big(0, BIG_COMMITS);
	/* killed while two of them catch up, 0, 15 and 40 ms after they
	 * were started (whether that is before, during or after, the
	 * restart must hold) */
	static const int delays[] = { 0, 15, 40 };
	for (size_t k = 0; k < sizeof(delays) / sizeof(delays[0]); k++) {
		command("start", "$by_event_type", TENANT);
		command("start", "$by_category", TENANT);
		dt_sleep_ms(delays[k]);
		json_t *st = et_status();
		json_t *p  = entry(st, "$by_event_type", TENANT);
		printf("sysproj_test: killed with $by_event_type of %s at "
		       "%lld (its last event: %" PRIu64 ")\n",
		    TENANT, p != NULL ? jint(p, "position") : -1LL,
		    *tenant_next(TENANT) - 1);
		json_decref(st);
		et_daemon_kill();
		et_daemon_up(REQ_MS);
	}
	start_all(); /* if they were killed before storing the start */
	wait_caught_up(TENANT, NULL, "running");
	wait_caught_up("t2", NULL, "running");

	/* a reset of one while the others run and events come */
	commit_big(BIG_COMMITS, BIG_COMMITS + BIG_COMMITS / 8);
	command("reset", "$by_category", TENANT);
	commit_big(BIG_COMMITS + BIG_COMMITS / 8,
	    BIG_COMMITS + BIG_COMMITS / 4);
	wait_caught_up(TENANT, NULL, "running");
	wait_caught_up("t2", NULL, "running");
	static const char *const streams[]
	    = { "$ce-acc", "$ce-cust", "$et-Opened", "$et-Deposited",
		      "$bc-g0", "$bc-g1", "$bc-g2", "$category-acc",
		      "$category-cust", "$streams" };
	for (int t = 0; t < 2; t++)
		for (size_t i = 0; i < sizeof(streams) / sizeof(streams[0]);
		     i++)
			check_big_stream(t, streams[i],
			    t == 0 && strncmp(streams[i], "$ce-", 4) == 0);

	/* a category of 250 bytes: "$category-<it>" would be longer than a
	 * stream id may be, so $stream_by_category skips that link with a
	 * warning (the event goes to its on(), not decided in place); the
	 * five go on and the others link it */
	static char   longs[260], ce[300], l0[300];
	static log_ev one[1];
	memset(longs, 'a', 250);
	memcpy(longs + 250, "-1", 3);
	one[0] = (log_ev) { TENANT, longs, "Opened", NULL, false };
	commit_log(one, 1);
	wait_caught_up(TENANT, NULL, "running");
	snprintf(ce, sizeof(ce), "$ce-%.250s", longs);
	snprintf(l0, sizeof(l0), "0@%s", longs);
	expect x = { TENANT, ce, { l0 } };
	check_stream(&x, one, 1);
	et_daemon_down();
	free(big);
}

int
main(void)
{
	unit_category();
	unit_defs();
	ft_setup("start_standard_projections: true\n");
	first_daemon();
	second_daemon();
	third_daemon();
	fourth_daemon();
	fifth_daemon();
	printf("sysproj_test: ok\n");
	return 0;
}
