/*
 * The API's per-call buffers on the durable write path (issue 17): each
 * context keeps one msgpack zone for its requests (api_call_zone) and a
 * reply goes out in its request's message. Proves, with sync on (the
 * writer and the syncer answer), that replies and stored data stay right
 * while requests of very different sizes take turns on the same contexts:
 * one-event and 100-event commits (the latter decode past the zone's
 * first chunk), refused commits (EREVISION with actual_revision),
 * malformed requests (EPROTO, then the context serves on), deletions, and
 * reads, from several clients at once; then every stream is read back.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <sluice/client.h>

#include "api_fixture.h"

#define N_CLIENTS 4
#define N_ROUNDS  60
#define BIG       100 /* events in a big commit */

typedef struct worker {
	int      id;
	uint64_t next_rev; /* of its stream */
} worker;

/* Content of event rev of client id's stream: big ones pad to ~1 KiB. */
static void
content_of(char *out, size_t len, int id, uint64_t rev, bool big)
{
	char pad[1100];
	size_t n = big ? 1000 : 8;
	memset(pad, 'a' + (int) (rev % 26), n);
	pad[n] = '\0';
	snprintf(out, len, "{\"w\":%d,\"rev\":%" PRIu64 ",\"pad\":\"%s\"}", id,
	    rev, pad);
}

static void
stream_of(char *out, size_t len, int id)
{
	snprintf(out, len, "reuse-%d", id);
}

static void
commit_n(sl_client *c, worker *w, size_t n)
{
	static __thread char contents[BIG][1200];
	sl_new_event         ev[BIG];
	sl_commit_result     res;
	char                 stream[32];

	stream_of(stream, sizeof(stream), w->id);
	for (size_t i = 0; i < n; i++) {
		content_of(contents[i], sizeof(contents[i]), w->id,
		    w->next_rev + i, n > 1);
		ev[i] = (sl_new_event) { .type = "Reused",
			.content_json = contents[i] };
	}
	CHECK_EQ(sl_client_commit(c, FX_TENANT, stream,
	             w->next_rev == 0 ? SL_EXPECT_NO_STREAM : w->next_rev - 1,
	             ev, n, &res),
	    SL_OK);
	CHECK_EQ(res.first_revision, w->next_rev);
	CHECK_EQ(res.count, n);
	CHECK_EQ(res.last_position, res.first_position + n - 1);
	w->next_rev += n;
}

static void *
run_worker(void *arg)
{
	worker          *w = arg;
	sl_client       *c;
	char             stream[32], tmp[48];
	sl_commit_result res;

	CHECK_EQ(sl_client_open(fx_url, 10000, &c), SL_OK);
	stream_of(stream, sizeof(stream), w->id);
	for (int r = 0; r < N_ROUNDS; r++) {
		commit_n(c, w, 1);
		commit_n(c, w, BIG);

		/* a stale expected revision: refused, with the actual one */
		sl_new_event e = { .type = "Reused", .content_json = "{}" };
		CHECK_EQ(sl_client_commit(
		             c, FX_TENANT, stream, 0, &e, 1, &res),
		    SL_EREVISION);
		CHECK_EQ(res.actual_revision, w->next_rev - 1);

		/* not msgpack at all, and a map without an op: EPROTO, and
		 * the next request on the context is served */
		void  *reply = NULL;
		size_t rlen  = 0;
		CHECK_EQ(sl_client_request(c, "\xc1\xc1\xc1", 3, &reply, &rlen),
		    SL_EPROTO);
		sl_client_free(reply);
		reply = NULL;
		CHECK_EQ(sl_client_request(c, "\x81\xa1v\x01", 4, &reply, &rlen),
		    SL_EPROTO);
		sl_client_free(reply);

		/* a deletion's reply, packed like a commit's */
		snprintf(tmp, sizeof(tmp), "reuse-tmp-%d-%d", w->id, r);
		CHECK_EQ(sl_client_commit(c, FX_TENANT, tmp,
		             SL_EXPECT_NO_STREAM, &e, 1, &res),
		    SL_OK);
		sl_delete_result dr;
		CHECK_EQ(sl_client_delete_stream(c, FX_TENANT, tmp, 0, &dr),
		    SL_OK);
		CHECK_EQ(dr.revision, 0);
		CHECK_EQ(dr.truncate_before, 1);
		CHECK(dr.position > res.first_position);

		/* a read between the writes: the last event, as committed */
		sl_read_result rd;
		char           want[1200];
		CHECK_EQ(sl_client_read_stream(
		             c, FX_TENANT, stream, w->next_rev - 1, 10, &rd),
		    SL_OK);
		CHECK_EQ(rd.n_events, 1);
		content_of(want, sizeof(want), w->id, w->next_rev - 1, true);
		CHECK_STREQ(rd.events[0].content_json, want);
		sl_read_result_free(&rd);
	}
	sl_client_close(c);
	return NULL;
}

int
main(void)
{
	pthread_t t[N_CLIENTS];
	worker    w[N_CLIENTS];

	fx_sync = true;
	fx_start(NULL);
	for (int i = 0; i < N_CLIENTS; i++) {
		w[i] = (worker) { .id = i };
		CHECK_EQ(pthread_create(&t[i], NULL, run_worker, &w[i]), 0);
	}
	for (int i = 0; i < N_CLIENTS; i++)
		CHECK_EQ(pthread_join(t[i], NULL), 0);

	/* every stream whole, in order, each event as committed */
	sl_client *c;
	CHECK_EQ(sl_client_open(fx_url, 10000, &c), SL_OK);
	for (int i = 0; i < N_CLIENTS; i++) {
		char     stream[32], want[1200];
		uint64_t rev = 0;
		stream_of(stream, sizeof(stream), i);
		while (rev < w[i].next_rev) {
			sl_read_result rd;
			CHECK_EQ(sl_client_read_stream(
			             c, FX_TENANT, stream, rev, 1000, &rd),
			    SL_OK);
			CHECK(rd.n_events > 0);
			for (size_t k = 0; k < rd.n_events; k++, rev++) {
				CHECK_EQ(rd.events[k].revision, rev);
				/* each round: one small event, then BIG */
				content_of(want, sizeof(want), i, rev,
				    rev % (BIG + 1) != 0);
				CHECK_STREQ(rd.events[k].content_json, want);
			}
			sl_read_result_free(&rd);
		}
		CHECK_EQ(rev, (uint64_t) N_ROUNDS * (BIG + 1));
	}
	sl_client_close(c);
	fx_stop();
	printf("api_commit_reuse_test: ok\n");
	return 0;
}
