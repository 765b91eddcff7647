/*
 * sl_client_commit_mp, the binary commit (issue 17 item 1: no JSON on the
 * client's binary path), against a real runtime:
 *  1. events committed with msgpack content and metadata read back equal
 *     (type, content, metadata, public flag, correlation id) to the same
 *     events committed as JSON with sl_client_commit; a link's content as
 *     its "<revision>@<stream>" str; positions and revisions as committed;
 *  2. expected revisions: a mismatch is SL_EREVISION with the actual
 *     revision, nothing written;
 *  3. bad bytes: content missing, empty, truncated, with bytes after the
 *     value, an array, a str outside a link, nested past
 *     SL_COMMIT_MP_MAX_DEPTH, a lying map header, metadata that is no
 *     map, no type: each SL_EINVAL naming the event and field, nothing
 *     sent (the log's head unchanged), and the client and the daemon go
 *     on serving.
 */
#include <stdbool.h>
#include <string.h>

#include <msgpack.h>
#include <sluice/client.h>

#include "api_fixture.h"

static uint64_t
log_head(sl_client *c)
{
	sl_read_result r;
	CHECK_EQ(sl_client_read(c, 0, 1, &r), SL_OK);
	uint64_t h = r.head;
	sl_read_result_free(&r);
	return h;
}

/* msgpack of a JSON object text (as the JSON commit would send it). */
static void
mp_of(msgpack_sbuffer *sb, const char *json)
{
	msgpack_packer pk;
	char           err[200];
	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	if (json_text_to_mp(json, 1, &pk, err, sizeof(err)) != SL_OK) {
		fprintf(stderr, "%s: %s\n", json, err);
		CHECK(!"json_text_to_mp");
	}
}

static const char *contents[] = {
	"{\"n\":1,\"s\":\"one\",\"nested\":{\"a\":[1,2,{\"b\":null}],\"f\":1.5}}",
	"{\"n\":-70000,\"big\":9007199254740993,\"t\":true}",
	"{}",
};
static const char *metas[] = { NULL, "{\"who\":\"me\",\"k\":[1]}", "{}" };

static void
same_events(const sl_read_result *a, const sl_read_result *b)
{
	CHECK_EQ(a->n_events, b->n_events);
	for (size_t i = 0; i < a->n_events; i++) {
		const sl_read_event *x = &a->events[i], *y = &b->events[i];
		CHECK(strcmp(x->type, y->type) == 0);
		CHECK(strcmp(x->content_json, y->content_json) == 0);
		CHECK(strcmp(x->metadata_json, y->metadata_json) == 0);
		CHECK_EQ(x->is_public, y->is_public);
		CHECK_EQ(x->revision, y->revision);
		CHECK((x->correlation_id == NULL) == (y->correlation_id == NULL));
		if (x->correlation_id != NULL && strcmp(x->correlation_id, x->id)
		        != 0) /* a given one, not the default (the event id) */
			CHECK(strcmp(x->correlation_id, y->correlation_id) == 0);
	}
}

/* One event of bad bytes: SL_EINVAL naming want, nothing sent. */
static void
refused(sl_client *c, sl_new_event_mp e, const char *want)
{
	uint64_t h = log_head(c);
	CHECK_EQ(sl_client_commit_mp(c, FX_TENANT, "bad", SL_EXPECT_ANY, &e, 1,
	             NULL),
	    SL_EINVAL);
	if (strstr(sl_client_last_error(c), want) == NULL) {
		fprintf(stderr, "error '%s' does not name '%s'\n",
		    sl_client_last_error(c), want);
		CHECK(!"error text");
	}
	CHECK_EQ(log_head(c), h);
}

int
main(void)
{
	sl_client       *c;
	sl_commit_result res;
	msgpack_sbuffer  cs[3], ms[3];

	fx_start("");
	CHECK_EQ(sl_client_open(fx_url, 5000, &c), SL_OK);

	/* 1. the same events as JSON and as msgpack */
	sl_new_event    ej[4];
	sl_new_event_mp em[4];
	for (int i = 0; i < 3; i++) {
		mp_of(&cs[i], contents[i]);
		if (metas[i] != NULL)
			mp_of(&ms[i], metas[i]);
		ej[i] = (sl_new_event) { .type = i == 1 ? "Second" : "First",
			.content_json               = contents[i],
			.metadata_json              = metas[i],
			.is_public                  = i == 2,
			.correlation_id             = i == 1 ? "corr-7" : NULL };
		em[i] = (sl_new_event_mp) { .type = ej[i].type,
			.content                  = cs[i].data,
			.content_len              = cs[i].size,
			.metadata     = metas[i] != NULL ? ms[i].data : NULL,
			.metadata_len = metas[i] != NULL ? ms[i].size : 0,
			.is_public    = ej[i].is_public,
			.correlation_id = ej[i].correlation_id };
	}
	/* a link to the JSON stream's first event, as its target text */
	static const char link_mp[] = "\xa8" "0@s-json";
	ej[3] = (sl_new_event) { .type = "$>", .content_json = "\"0@s-json\"" };
	em[3] = (sl_new_event_mp) { .type = "$>",
		.content                  = link_mp,
		.content_len              = sizeof(link_mp) - 1 };
	CHECK_EQ(sl_client_commit(c, FX_TENANT, "s-json", SL_EXPECT_NO_STREAM,
	             ej, 4, &res),
	    SL_OK);
	CHECK_EQ(res.count, 4);
	uint64_t json_first = res.first_position;
	CHECK_EQ(sl_client_commit_mp(c, FX_TENANT, "s-mp", SL_EXPECT_NO_STREAM,
	             em, 4, &res),
	    SL_OK);
	CHECK_EQ(res.count, 4);
	CHECK_EQ(res.first_position, json_first + 4);
	CHECK_EQ(res.last_position, json_first + 7);
	CHECK_EQ(res.first_revision, 0);
	sl_read_result a, b;
	CHECK_EQ(sl_client_read_stream(c, FX_TENANT, "s-json", 0, 10, &a),
	    SL_OK);
	CHECK_EQ(sl_client_read_stream(c, FX_TENANT, "s-mp", 0, 10, &b), SL_OK);
	CHECK_EQ(a.n_events, 4);
	same_events(&a, &b);
	CHECK(strstr(b.events[0].content_json, "\"nested\"") != NULL);
	CHECK(strcmp(b.events[1].correlation_id, "corr-7") == 0);
	CHECK(strcmp(b.events[3].content_json, "\"0@s-json\"") == 0);
	sl_read_result_free(&a);
	sl_read_result_free(&b);

	/* 2. expected revisions */
	CHECK_EQ(sl_client_commit_mp(c, FX_TENANT, "s-mp", 3, em, 1, &res),
	    SL_OK);
	CHECK_EQ(res.first_revision, 4);
	uint64_t h = log_head(c);
	CHECK_EQ(sl_client_commit_mp(c, FX_TENANT, "s-mp", 2, em, 1, &res),
	    SL_EREVISION);
	CHECK_EQ(res.actual_revision, 4);
	CHECK_EQ(sl_client_commit_mp(c, FX_TENANT, "s-mp", SL_EXPECT_NO_STREAM,
	             em, 1, &res),
	    SL_EREVISION);
	CHECK_EQ(log_head(c), h);

	/* 3. bad bytes */
	sl_new_event_mp ok = em[0];
	sl_new_event_mp e  = ok;
	e.content          = NULL;
	refused(c, e, "events[0].content: no bytes");
	e.content     = cs[0].data;
	e.content_len = 0;
	refused(c, e, "events[0].content: no bytes");
	e.content_len = cs[0].size - 1;
	refused(c, e, "events[0].content: truncated");
	static const char two[] = "\x80\x80"; /* {} then a second {} */
	e.content               = two;
	e.content_len           = 2;
	refused(c, e, "events[0].content:");
	static const char arr[] = "\x92\x01\x02";
	e.content               = arr;
	e.content_len           = 3;
	refused(c, e, "events[0].content: must be a msgpack map");
	e.content     = link_mp; /* a str, but not a link event */
	e.content_len = sizeof(link_mp) - 1;
	refused(c, e, "must be a msgpack map");
	/* {"a":{"a":... 40 deep */
	unsigned char deep[200];
	size_t        dn = 0;
	for (int i = 0; i < 40; i++) {
		deep[dn++] = 0x81;
		deep[dn++] = 0xa1;
		deep[dn++] = 'a';
	}
	deep[dn++]    = 0x01;
	e.content     = deep;
	e.content_len = dn;
	refused(c, e, "events[0].content:");
	/* a map32 claiming 2^32-1 pairs in 6 bytes */
	static const char liar[] = "\xdf\xff\xff\xff\xff\x01";
	e.content                = liar;
	e.content_len            = 6;
	refused(c, e, "events[0].content:");
	e              = ok;
	e.metadata     = arr;
	e.metadata_len = 3;
	refused(c, e, "events[0].metadata: must be a msgpack map");
	e      = ok;
	e.type = NULL;
	refused(c, e, "events[0]: type is required");
	/* the second event of two is the bad one: nothing of either sent */
	sl_new_event_mp pair[2] = { ok, ok };
	pair[1].content_len     = 1;
	h                       = log_head(c);
	CHECK_EQ(sl_client_commit_mp(c, FX_TENANT, "bad", SL_EXPECT_ANY, pair,
	             2, NULL),
	    SL_EINVAL);
	CHECK(strstr(sl_client_last_error(c), "events[1].content") != NULL);
	CHECK_EQ(log_head(c), h);
	CHECK_EQ(sl_client_commit_mp(NULL, FX_TENANT, "x", SL_EXPECT_ANY, em, 1,
	             NULL),
	    SL_EINVAL);
	CHECK_EQ(sl_client_commit_mp(c, FX_TENANT, "x", SL_EXPECT_ANY, em, 0,
	             NULL),
	    SL_EINVAL);

	/* the daemon checks what it is sent too: an unknown tenant */
	CHECK_EQ(sl_client_commit_mp(c, "nobody", "x", SL_EXPECT_ANY, em, 1,
	             NULL),
	    SL_ENOTFOUND);
	/* and serves on */
	CHECK_EQ(sl_client_commit_mp(c, FX_TENANT, "after", SL_EXPECT_NO_STREAM,
	             em, 3, &res),
	    SL_OK);
	CHECK_EQ(res.count, 3);

	for (int i = 0; i < 3; i++) {
		msgpack_sbuffer_destroy(&cs[i]);
		if (metas[i] != NULL)
			msgpack_sbuffer_destroy(&ms[i]);
	}
	sl_client_close(c);
	fx_stop();
	printf("client_commit_mp_test: ok\n");
	return 0;
}
