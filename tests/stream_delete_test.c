/*
 * Stream deletion end to end: sluiced as a process (durable commits on),
 * with e2e_emitter owning its ledger streams, through the client library,
 * raw requests and the CLI.
 *  1. A soft delete hides a stream's events from stream reads, log reads
 *     (in pages of 3) and the catch-up of log and stream subscriptions,
 *     while positions stay as they were; a wrong expected revision is
 *     EREVISION with the actual one; the $streamDeleted notification in
 *     $deleted has its documented shape; a commit after the delete
 *     continues the revisions and only the new events show.
 *  2. Truncate-before, and its $streamTruncated notification.
 *  3. A stream the emitter owns: EOWNED naming it, nothing written.
 *  4. Every bad input over the wire: its code, and nothing changed.
 *  5. sluice delete-stream and read.
 *  6. SIGKILL right after a delete's ack, then a SIGTERM restart: all
 *     kept.
 */
#include <sluice/subscribe.h>

#include "emit_testutil.h"
#include "mp.h"

#define TENANT  FT_TENANT
#define OTHER   "t2"
#define WAIT_MS 30000

static char emitter_so[4400];

/* ---- small helpers ---- */

static void
commit_n(const char *tenant, const char *stream, uint64_t expected,
    const char *type, int n, int want, sl_commit_result *res)
{
	sl_new_event ev[8];
	int          rc;

	CHECK(n > 0 && n <= 8);
	for (int i = 0; i < n; i++) {
		memset(&ev[i], 0, sizeof(ev[i]));
		ev[i].type         = type;
		ev[i].content_json = "{\"a\":1}";
	}
	rc = sl_client_commit(et_cl, tenant, stream, expected, ev, n, res);
	if (rc != want)
		FT_FAIL("commit %s/%s: %s (%s), want %s", tenant, stream,
		    sl_errname(rc), sl_client_last_error(et_cl),
		    sl_errname(want));
}

/* The revisions a stream read from `from` shows (paged to the end). */
static size_t
stream_revs(const char *tenant, const char *stream, uint64_t from,
    uint64_t *revs, size_t max)
{
	size_t n = 0;

	for (;;) {
		sl_read_result r;
		int            rc = sl_client_read_stream(
                    et_cl, tenant, stream, from, 0, &r);

		if (rc != SL_OK)
			FT_FAIL("read %s/%s: %s: %s", tenant, stream,
			    sl_errname(rc), sl_client_last_error(et_cl));
		for (size_t i = 0; i < r.n_events; i++) {
			CHECK_STREQ(r.events[i].stream, stream);
			if (n < max)
				revs[n] = r.events[i].revision;
			n++;
		}
		from = r.next;
		if (r.n_events == 0) {
			sl_read_result_free(&r);
			return n;
		}
		sl_read_result_free(&r);
	}
}

/* One line per event: position, tenant, stream, revision, type. */
static void
line_append(char **text, size_t *len, const sl_read_event *e)
{
	char line[1024];
	int  n = snprintf(line, sizeof(line), "%" PRIu64 " %s %s %" PRIu64
	                                      " %s\n",
	     e->position, e->tenant, e->stream, e->revision, e->type);

	CHECK(n > 0 && (size_t) n < sizeof(line));
	*text = realloc(*text, *len + (size_t) n + 1);
	CHECK(*text != NULL);
	memcpy(*text + *len, line, (size_t) n + 1);
	*len += (size_t) n;
}

/* The whole log as reads show it, paged as a client must: until next
 * reaches the head or moves no further (malloc'ed text). */
static char *
visible_log(size_t *count)
{
	char    *text = strdup("");
	size_t   len = 0, n = 0;
	uint64_t from = 0;

	for (;;) {
		sl_read_result r;
		int            rc = sl_client_read(et_cl, from, 0, &r);
		bool           end;

		if (rc != SL_OK)
			FT_FAIL("read the log at %" PRIu64 ": %s: %s", from,
			    sl_errname(rc), sl_client_last_error(et_cl));
		for (size_t i = 0; i < r.n_events; i++) {
			CHECK(r.events[i].position >= from);
			line_append(&text, &len, &r.events[i]);
			n++;
		}
		end  = r.next <= from || r.next >= r.head;
		from = r.next;
		sl_read_result_free(&r);
		if (end)
			break;
	}
	if (count != NULL)
		*count = n;
	return text;
}

static uint64_t
head(void)
{
	sl_read_result r;
	uint64_t       h;

	CHECK_EQ(sl_client_read(et_cl, 0, 1, &r), SL_OK);
	h = r.head;
	sl_read_result_free(&r);
	return h;
}

/* What a refused request must leave as it was: the head, the log as
 * reads show it, and the streams it names. */
static char *
snapshot(void)
{
	static const char *const streams[][2] = { { TENANT, "acc-1" },
		{ TENANT, "notes" }, { TENANT, "gone-1" },
		{ TENANT, "$deleted" }, { OTHER, "$deleted" },
		{ OTHER, "notes" }, { TENANT, "ledger-acc-1" } };
	char                    *text = visible_log(NULL), buf[128];
	size_t                   len  = strlen(text);

	snprintf(buf, sizeof(buf), "head %" PRIu64 "\n", head());
	text = realloc(text, len + strlen(buf) + 1);
	CHECK(text != NULL);
	strcpy(text + len, buf);
	len += strlen(buf);
	for (size_t i = 0; i < sizeof(streams) / sizeof(streams[0]); i++) {
		uint64_t revs[64];
		size_t   n = stream_revs(
                    streams[i][0], streams[i][1], 0, revs, 64);
		snprintf(buf, sizeof(buf), "%s/%s: %zu from %" PRIu64 "\n",
		    streams[i][0], streams[i][1], n, n > 0 ? revs[0] : 0);
		text = realloc(text, len + strlen(buf) + 1);
		CHECK(text != NULL);
		strcpy(text + len, buf);
		len += strlen(buf);
	}
	return text;
}

/* The last event of a tenant's $deleted stream: its position, type and
 * content must be these. */
static void
check_notice(const char *tenant, uint64_t pos, uint64_t drev,
    const char *type, const char *stream, uint64_t rev, uint64_t tb)
{
	sl_read_result r;
	char           want[512];
	json_t        *got, *exp;

	CHECK_EQ(sl_client_read_stream(et_cl, tenant, "$deleted", drev, 0, &r),
	    SL_OK);
	if (r.n_events != 1)
		FT_FAIL("$deleted of %s from %" PRIu64 ": %zu events", tenant,
		    drev, r.n_events);
	CHECK_EQ(r.events[0].position, pos);
	CHECK_EQ(r.events[0].revision, drev);
	CHECK_STREQ(r.events[0].tenant, tenant);
	CHECK_STREQ(r.events[0].stream, "$deleted");
	CHECK_STREQ(r.events[0].type, type);
	CHECK_STREQ(r.events[0].metadata_json, "{}");
	snprintf(want, sizeof(want),
	    "{\"stream\":\"%s\",\"revision\":%" PRIu64
	    ",\"truncate_before\":%" PRIu64 "}",
	    stream, rev, tb);
	got = json_loads(r.events[0].content_json, 0, NULL);
	exp = json_loads(want, 0, NULL);
	CHECK(got != NULL && exp != NULL);
	if (!json_equal(got, exp))
		FT_FAIL("notification content %s, want %s",
		    r.events[0].content_json, want);
	json_decref(got);
	json_decref(exp);
	sl_read_result_free(&r);
}

static void
wait_emitter(void)
{
	et_wait_caught_up(
	    TENANT, ET_EMITTER_ID, ET_EMITTER, et_emitter_handles, WAIT_MS);
}

/* ---- subscriptions ---- */

typedef struct subcol {
	char    *text;
	size_t   len;
	uint64_t stop_pos; /* log: stop at this position */
	uint64_t stop_rev; /* stream: stop at this revision */
	bool     by_stream;
} subcol;

static int
sub_cb(void *arg, const sl_read_event *ev)
{
	subcol *s = arg;

	line_append(&s->text, &s->len, ev);
	return s->by_stream ? ev->revision >= s->stop_rev
	                    : ev->position >= s->stop_pos;
}

/* Subscribe (log when stream is NULL) from `from` until stop; the lines
 * delivered (malloc'ed). */
static char *
subscribe(const char *stream, uint64_t from, uint64_t stop)
{
	sl_client        *c;
	sl_subscribe_opts o;
	subcol            s = { strdup(""), 0, stop, stop, stream != NULL };
	int               rc;

	CHECK_EQ(sl_client_open(ft_api_url, 5000, &c), SL_OK);
	memset(&o, 0, sizeof(o));
	o.tenant  = stream != NULL ? TENANT : NULL;
	o.stream  = stream;
	o.from    = from;
	o.pub_url = ft_pub_url;
	o.idle_ms = 5000;
	rc        = sl_client_subscribe(c, &o, sub_cb, &s);
	if (rc != SL_OK)
		FT_FAIL("subscribe %s: %s: %s (got %s)",
		    stream != NULL ? stream : "log", sl_errname(rc),
		    sl_client_last_error(c), s.text);
	sl_client_close(c);
	return s.text;
}

/* ---- 1. soft delete ---- */

static void
test_soft_delete(void)
{
	sl_delete_result d;
	sl_commit_result cr;
	uint64_t         revs[16], h, last;
	size_t           n_before, n_after;
	char            *before, *after, *log, *sub;

	commit_n(TENANT, "acc-1", SL_EXPECT_NO_STREAM, "AccountOpened", 1,
	    SL_OK, NULL);
	commit_n(TENANT, "notes", SL_EXPECT_ANY, "Note", 4, SL_OK, NULL);
	commit_n(TENANT, "acc-1", 0, "Deposited", 2, SL_OK, NULL);
	commit_n(OTHER, "acc-1", SL_EXPECT_ANY, "Note", 1, SL_OK, NULL);
	wait_emitter();
	CHECK_EQ(stream_revs(TENANT, "ledger-acc-1", 0, revs, 16), 3);
	before = visible_log(&n_before);

	/* a wrong expected revision: EREVISION with the actual one */
	CHECK_EQ(sl_client_delete_stream(et_cl, TENANT, "acc-1", 1, &d),
	    SL_EREVISION);
	CHECK_EQ(d.actual_revision, 2);
	CHECK(strstr(sl_client_last_error(et_cl), "revision 2") != NULL);
	after = visible_log(NULL);
	CHECK_STREQ(after, before);
	free(after);

	h = head();
	CHECK_EQ(sl_client_delete_stream(et_cl, TENANT, "acc-1", 2, &d),
	    SL_OK);
	CHECK_EQ(d.position, h);
	CHECK_EQ(d.revision, 2);
	CHECK_EQ(d.truncate_before, 3);
	CHECK_EQ(d.actual_revision, SL_EXPECT_ANY);
	CHECK_EQ(head(), h + 1);
	check_notice(TENANT, h, 0, "$streamDeleted", "acc-1", 2, 3);

	/* hidden from stream reads, from any revision */
	CHECK_EQ(stream_revs(TENANT, "acc-1", 0, revs, 16), 0);
	CHECK_EQ(stream_revs(TENANT, "acc-1", 2, revs, 16), 0);
	/* and from the log; the rest (the other tenant's acc-1, what the
	 * emitter wrote) still shows; the notification is added */
	after = visible_log(&n_after);
	CHECK_EQ(n_after, n_before - 3 + 1);
	CHECK(strstr(after, " t1 acc-1 ") == NULL);
	CHECK(strstr(after, " t2 acc-1 0 Note") != NULL);
	CHECK(strstr(after, " t1 ledger-acc-1 2 ") != NULL);
	CHECK(strstr(after, " t1 $deleted 0 $streamDeleted") != NULL);
	/* the ledger events were emitted for the deleted ones: the
	 * projection is not told (its handler for deletions is to come) */

	/* a log subscription's catch-up from 0 (pages of 3) shows what the
	 * reads show, in order, each once */
	sub = subscribe(NULL, 0, h);
	CHECK_STREQ(sub, after);
	free(sub);
	free(after);

	/* after the delete the stream expects its last revision */
	commit_n(TENANT, "acc-1", SL_EXPECT_NO_STREAM, "Deposited", 1,
	    SL_EREVISION, &cr);
	CHECK_EQ(cr.actual_revision, 2);
	commit_n(TENANT, "acc-1", 2, "Deposited", 1, SL_OK, &cr);
	CHECK_EQ(cr.first_revision, 3);
	CHECK_EQ(stream_revs(TENANT, "acc-1", 0, revs, 16), 1);
	CHECK_EQ(revs[0], 3);
	log = visible_log(NULL);
	CHECK(strstr(log, " t1 acc-1 3 Deposited") != NULL);
	CHECK(strstr(log, " t1 acc-1 2 ") == NULL);
	free(log);
	/* a stream subscription from revision 0 starts at revision 3 */
	sub = subscribe("acc-1", 0, 3);
	last = cr.first_position;
	{
		char want[256];
		snprintf(want, sizeof(want),
		    "%" PRIu64 " t1 acc-1 3 Deposited\n", last);
		CHECK_STREQ(sub, want);
	}
	free(sub);
	wait_emitter();
	free(before);
}

/* ---- 2. truncate-before ---- */

static void
test_truncate(void)
{
	sl_delete_result d;
	uint64_t         revs[16], h = head();
	char            *log;

	CHECK_EQ(sl_client_truncate_stream(
	             et_cl, TENANT, "notes", SL_EXPECT_ANY, 2, &d),
	    SL_OK);
	CHECK_EQ(d.position, h);
	CHECK_EQ(d.revision, 3);
	CHECK_EQ(d.truncate_before, 2);
	check_notice(TENANT, h, 1, "$streamTruncated", "notes", 3, 2);
	CHECK_EQ(stream_revs(TENANT, "notes", 0, revs, 16), 2);
	CHECK_EQ(revs[0], 2);
	CHECK_EQ(revs[1], 3);
	log = visible_log(NULL);
	CHECK(strstr(log, " t1 notes 1 ") == NULL);
	CHECK(strstr(log, " t1 notes 2 Note") != NULL);
	free(log);

	/* a stream deleted with nothing after it, for the refusals */
	commit_n(TENANT, "gone-1", SL_EXPECT_ANY, "Note", 2, SL_OK, NULL);
	CHECK_EQ(sl_client_delete_stream(
	             et_cl, TENANT, "gone-1", SL_EXPECT_ANY, &d),
	    SL_OK);
	CHECK_EQ(d.truncate_before, 2);
}

/* ---- 3. owned streams ---- */

static void
test_owned(void)
{
	char            *before = snapshot(), *after;
	sl_delete_result d;
	const char      *msg;

	CHECK_EQ(sl_client_delete_stream(
	             et_cl, TENANT, "ledger-acc-1", SL_EXPECT_ANY, &d),
	    SL_EOWNED);
	msg = sl_client_last_error(et_cl);
	if (strstr(msg, ET_EMITTER) == NULL)
		FT_FAIL("EOWNED does not name the owner: %s", msg);
	CHECK_EQ(sl_client_truncate_stream(
	             et_cl, TENANT, "ledger-all", SL_EXPECT_ANY, 1, &d),
	    SL_EOWNED);
	/* declared, never written: a stream without events, but owned */
	CHECK_EQ(sl_client_delete_stream(
	             et_cl, TENANT, "ledger-x", SL_EXPECT_ANY, &d),
	    SL_EOWNED);
	after = snapshot();
	CHECK_STREQ(after, before);
	free(before);
	free(after);
}

/* ---- 4. refused requests ---- */

static void
req_begin(msgpack_sbuffer *sb, msgpack_packer *pk, uint32_t n_fields)
{
	msgpack_sbuffer_init(sb);
	msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(pk, 2 + n_fields);
	mp_pack_kv_u64(pk, "v", 1);
	mp_pack_kv_str(pk, "op", "delete_stream");
}

static void
kv_strn(msgpack_packer *pk, const char *key, const char *s, size_t n)
{
	mp_pack_cstr(pk, key);
	mp_pack_strn(pk, s, n);
}

/* Send the packed request: refused with code, a message holding msg, and
 * nothing changed. */
static void
refused(msgpack_sbuffer *sb, int code, const char *msg, const char *what)
{
	char       *before = snapshot(), *after;
	void       *rep    = NULL;
	size_t      len    = 0;
	int         rc     = sl_client_request(et_cl, sb->data, sb->size, &rep,
	                 &len);
	const char *m      = sl_client_last_error(et_cl);

	if (rc != code || (msg != NULL && strstr(m, msg) == NULL))
		FT_FAIL("%s: %s (%s), want %s saying '%s'", what,
		    sl_errname(rc), m, sl_errname(code), msg ? msg : "");
	fprintf(stderr, "%s: %s: %s\n", what, sl_errname(rc), m);
	sl_client_free(rep);
	msgpack_sbuffer_destroy(sb);
	after = snapshot();
	if (strcmp(after, before) != 0)
		FT_FAIL("%s changed the store:\n%s\n---\n%s", what, before,
		    after);
	free(before);
	free(after);
}

/* {tenant, stream} and, unless NULL, key = a value packed by the case. */
static void
req_ts(msgpack_sbuffer *sb, msgpack_packer *pk, const char *tenant,
    size_t tl, const char *stream, size_t sl, uint32_t n_more)
{
	req_begin(sb, pk, 2 + n_more);
	kv_strn(pk, "tenant", tenant, tl);
	kv_strn(pk, "stream", stream, sl);
}

#define S(x) x, strlen(x)

static void
test_refused(void)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	char            big[300];

	/* the fields: missing, wrong types, empty, NUL, too long */
	req_begin(&sb, &pk, 1);
	kv_strn(&pk, "tenant", S(TENANT));
	refused(&sb, SL_EINVAL, "'stream' is missing", "no stream");
	req_begin(&sb, &pk, 1);
	kv_strn(&pk, "stream", S("notes"));
	refused(&sb, SL_EINVAL, "'tenant' is missing", "no tenant");
	req_begin(&sb, &pk, 2);
	kv_strn(&pk, "tenant", S(TENANT));
	mp_pack_cstr(&pk, "stream");
	msgpack_pack_int(&pk, 7);
	refused(&sb, SL_EPROTO, "'stream' must be a string", "stream 7");
	req_ts(&sb, &pk, S(TENANT), S(""), 0);
	refused(&sb, SL_EINVAL, "must not be empty", "empty stream");
	req_ts(&sb, &pk, S(TENANT), "notes\0x", 7, 0);
	refused(&sb, SL_EINVAL, "NUL", "NUL in the stream");
	req_ts(&sb, &pk, "t1\0x", 4, S("notes"), 0);
	refused(&sb, SL_EINVAL, "NUL", "NUL in the tenant");
	memset(big, 'n', sizeof(big));
	req_ts(&sb, &pk, S(TENANT), big, sizeof(big), 0);
	refused(&sb, SL_ETOOBIG, "limit 256", "a 300-byte stream");

	/* streams that are not there, or not this tenant's */
	req_ts(&sb, &pk, S(TENANT), S("nope"), 0);
	refused(&sb, SL_ENOTFOUND, "has no events", "a missing stream");
	req_ts(&sb, &pk, S(OTHER), S("notes"), 0);
	refused(&sb, SL_ENOTFOUND, "has no events", "another tenant's");
	req_ts(&sb, &pk, S("t9"), S("notes"), 0);
	refused(&sb, SL_ENOTFOUND, "unknown tenant", "an unknown tenant");
	req_ts(&sb, &pk, S(TENANT), S("gone-1"), 0);
	refused(&sb, SL_ENOTFOUND, "is deleted", "deleted already");

	/* system streams */
	req_ts(&sb, &pk, S(TENANT), S("$deleted"), 0);
	refused(&sb, SL_EINVAL, "system stream", "$deleted");
	req_ts(&sb, &pk, S(TENANT), S("$ce-acc"), 0);
	refused(&sb, SL_EINVAL, "system stream", "$ce-acc");

	/* revisions: negative, absurd, wrong types, outside the stream */
	req_ts(&sb, &pk, S(TENANT), S("notes"), 1);
	mp_pack_cstr(&pk, "expected");
	msgpack_pack_int(&pk, -1);
	refused(&sb, SL_EPROTO, "'expected'", "expected -1");
	req_ts(&sb, &pk, S(TENANT), S("notes"), 1);
	kv_strn(&pk, "expected", S("latest"));
	refused(&sb, SL_EPROTO, "'expected'", "expected latest");
	req_ts(&sb, &pk, S(TENANT), S("notes"), 1);
	mp_pack_kv_u64(&pk, "expected", UINT64_MAX);
	refused(&sb, SL_EINVAL, "out of range", "expected 2^64-1");
	req_ts(&sb, &pk, S(TENANT), S("notes"), 1);
	mp_pack_kv_u64(&pk, "expected", 2);
	refused(&sb, SL_EREVISION, "revision 3", "expected 2 (at 3)");
	req_ts(&sb, &pk, S(TENANT), S("notes"), 1);
	mp_pack_cstr(&pk, "truncate_before");
	msgpack_pack_int(&pk, -2);
	refused(&sb, SL_EPROTO, "'truncate_before'", "truncate_before -2");
	req_ts(&sb, &pk, S(TENANT), S("notes"), 1);
	kv_strn(&pk, "truncate_before", S("3"));
	refused(&sb, SL_EPROTO, "'truncate_before'", "truncate_before \"3\"");
	req_ts(&sb, &pk, S(TENANT), S("notes"), 1);
	mp_pack_kv_u64(&pk, "truncate_before", 0);
	refused(&sb, SL_EINVAL, "1..4", "truncate_before 0");
	req_ts(&sb, &pk, S(TENANT), S("notes"), 1);
	mp_pack_kv_u64(&pk, "truncate_before", 5);
	refused(&sb, SL_EINVAL, "1..4", "truncate_before 5");
	req_ts(&sb, &pk, S(TENANT), S("notes"), 1);
	mp_pack_kv_u64(&pk, "truncate_before", UINT64_MAX);
	refused(&sb, SL_EINVAL, "1..4", "truncate_before 2^64-1");
	req_ts(&sb, &pk, S(TENANT), S("notes"), 1);
	mp_pack_kv_u64(&pk, "truncate_before", 2);
	refused(&sb, SL_EINVAL, "already", "truncate_before 2 again");
	/* a key twice (the input rules) */
	req_ts(&sb, &pk, S(TENANT), S("notes"), 1);
	kv_strn(&pk, "stream", S("acc-1"));
	refused(&sb, SL_EPROTO, "twice", "stream twice");
}

/* ---- 5. the CLI ---- */

/* Run `sluice --url U args`, stdout and stderr into files; exit status. */
static int
cli(const char *args, char *out, size_t out_cap, char *err, size_t err_cap)
{
	char cmd[32768], outf[4400], errf[4400];
	int  st;

	snprintf(outf, sizeof(outf), "%s/cli.out", tu_tmpdir());
	snprintf(errf, sizeof(errf), "%s/cli.err", tu_tmpdir());
	snprintf(cmd, sizeof(cmd), "'%s' --url '%s' %s >'%s' 2>'%s'",
	    ft_sluice, ft_api_url, args, outf, errf);
	st = system(cmd);
	CHECK(WIFEXITED(st));
	et_load_file(outf, out, out_cap);
	et_load_file(errf, err, err_cap);
	return WEXITSTATUS(st);
}

static void
test_cli(void)
{
	char     out[65536], err[4096], want[256], *log, *before;
	uint64_t h;
	size_t   n_log, n_lines = 0;

	commit_n(TENANT, "cli-1", SL_EXPECT_ANY, "Note", 2, SL_OK, NULL);
	h = head();
	CHECK_EQ(cli("delete-stream --tenant " TENANT
	             " --stream cli-1 --expect 0",
	             out, sizeof(out), err, sizeof(err)),
	    2);
	CHECK(strstr(err, "EREVISION") != NULL);
	CHECK_EQ(cli("delete-stream --tenant " TENANT
	             " --stream cli-1 --truncate-before 1 --expect 1",
	             out, sizeof(out), err, sizeof(err)),
	    0);
	snprintf(want, sizeof(want),
	    "{\"position\":%" PRIu64 ",\"revision\":1,\"truncate_before\":1}\n",
	    h);
	CHECK_STREQ(out, want);
	CHECK_EQ(cli("delete-stream --tenant " TENANT " --stream cli-1", out,
	             sizeof(out), err, sizeof(err)),
	    0);
	snprintf(want, sizeof(want),
	    "{\"position\":%" PRIu64 ",\"revision\":1,\"truncate_before\":2}\n",
	    h + 1);
	CHECK_STREQ(out, want);
	CHECK_EQ(cli("read --tenant " TENANT " --stream cli-1", out,
	             sizeof(out), err, sizeof(err)),
	    0);
	CHECK_STREQ(out, "");

	/* `read` pages past what is hidden: the visible log, line by line */
	log = visible_log(&n_log);
	CHECK_EQ(cli("read --from 0 --max 100000", out, sizeof(out), err,
	             sizeof(err)),
	    0);
	for (const char *p = out; *p != '\0'; p++)
		n_lines += *p == '\n';
	CHECK_EQ(n_lines, n_log);
	CHECK(strstr(out, "\"tenant\":\"t1\",\"stream\":\"cli-1\"") == NULL);
	CHECK(strstr(out, "\"stream\":\"cli-1\",\"revision\":1,"
	                  "\"truncate_before\":2") != NULL);
	free(log);

	/* usage errors (exit 1) and refusals (exit 2) change nothing */
	before = snapshot();
	CHECK_EQ(cli("delete-stream --tenant " TENANT
	             " --stream notes --truncate-before -1",
	             out, sizeof(out), err, sizeof(err)),
	    1);
	CHECK_EQ(cli("delete-stream --tenant " TENANT
	             " --stream notes --expect none",
	             out, sizeof(out), err, sizeof(err)),
	    1);
	CHECK_EQ(cli("delete-stream --tenant " TENANT, out, sizeof(out), err,
	             sizeof(err)),
	    1);
	CHECK_EQ(cli("delete-stream --tenant " TENANT " --stream '$deleted'",
	             out, sizeof(out), err, sizeof(err)),
	    2);
	CHECK(strstr(err, "EINVAL") != NULL);
	CHECK_EQ(cli("delete-stream --tenant " TENANT " --stream ledger-all",
	             out, sizeof(out), err, sizeof(err)),
	    2);
	CHECK(strstr(err, "EOWNED") != NULL);
	log = snapshot();
	CHECK_STREQ(log, before);
	free(log);
	free(before);
}

/* ---- 6. durability ---- */

static void
test_kill_restart(void)
{
	sl_delete_result d;
	sl_commit_result cr;
	uint64_t         revs[8], dnext;
	char            *before, *after;

	commit_n(TENANT, "k-1", SL_EXPECT_ANY, "Note", 2, SL_OK, NULL);
	dnext = stream_revs(TENANT, "$deleted", 0, revs, 8);
	CHECK_EQ(sl_client_delete_stream(et_cl, TENANT, "k-1", 1, &d), SL_OK);
	et_daemon_kill(); /* right after the ack */

	et_daemon_up(10000);
	CHECK_EQ(stream_revs(TENANT, "k-1", 0, revs, 8), 0);
	check_notice(TENANT, d.position, dnext, "$streamDeleted", "k-1", 1, 2);
	CHECK_EQ(head(), d.position + 1);
	commit_n(TENANT, "k-1", 1, "Note", 1, SL_OK, &cr);
	CHECK_EQ(cr.first_revision, 2);
	wait_emitter();

	/* a stop and start keeps every mark */
	before = snapshot();
	et_daemon_down();
	et_daemon_up(10000);
	after = snapshot();
	CHECK_STREQ(after, before);
	CHECK_EQ(stream_revs(TENANT, "acc-1", 0, revs, 8), 1);
	CHECK_EQ(revs[0], 3);
	free(before);
	free(after);
}

int
main(void)
{
	ft_setup(NULL);
	et_write_config("data", et_plugin_dir(), TENANT,
	    "  - id: " OTHER "\n"
	    "run_projections: all\n"
	    "start_standard_projections: false\n"
	    "limits:\n"
	    "  max_read_events: 3\n");
	et_install_plugin(ET_EMITTER, emitter_so, sizeof(emitter_so));
	et_daemon_up(10000);

	test_soft_delete();
	test_truncate();
	test_owned();
	test_refused();
	test_cli();
	test_kill_restart();

	et_daemon_down();
	return 0;
}
