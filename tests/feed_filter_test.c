/*
 * Filter streams on the live feed, as a plain NNG subscriber sees them: the
 * account_filters plugin's "customer events" (partitioned by customer) and
 * "public account openings" (public events only) on a real runtime. A
 * subscription to one partition's topic gets exactly that partition's
 * entries, with gap-free partition positions; the whole stream's prefix
 * gets every entry with gap-free stream positions; both equal what
 * read_filter returns.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>

#include <sluice/client.h>

#include "api_fixture.h"
#include "feed.h"
#include "mp.h"

#define CUSTOMER_EVENTS "a468a0ac-3f00-4a28-ac0e-e4a0e8400cb3"
#define PUBLIC_OPENINGS "76b549ab-de36-4185-8ed1-2a92ed32b7b0"
#define N_CUSTOMERS     4
#define N_EVENTS        120

static nng_socket
raw_sub(const char *topic)
{
	nng_socket s;
	CHECK(nng_sub0_open(&s) == 0);
	CHECK(nng_socket_set_int(s, NNG_OPT_RECVBUF, 1024) == 0);
	CHECK(nng_socket_set(s, NNG_OPT_SUB_SUBSCRIBE, topic, strlen(topic))
	    == 0);
	CHECK(nng_socket_set(s, NNG_OPT_SUB_SUBSCRIBE, FEED_TOPIC_HEAD, 2)
	    == 0);
	CHECK(nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 5000) == 0);
	CHECK(nng_dial(s, fx_pub_url, NULL, NNG_FLAG_NONBLOCK) == 0);
	/* connected once a head message arrives */
	for (;;) {
		nng_msg *m;
		CHECK(nng_recvmsg(s, &m, 0) == 0);
		bool head = nng_msg_len(m) >= 2
		    && memcmp(nng_msg_body(m), FEED_TOPIC_HEAD, 2) == 0;
		nng_msg_free(m);
		if (head)
			break;
	}
	return s;
}

typedef struct got {
	uint64_t pos[N_EVENTS * 2];   /* log positions, in arrival order */
	uint64_t spos[N_EVENTS * 2];  /* stream (or partition) positions */
	size_t   n;
} got;

/* Receive filter messages until want entries arrived; check topics. */
static void
receive(nng_socket s, const char *topic_prefix, const char *partition,
    const char *pos_key, size_t want, got *g)
{
	size_t tlen = strlen(topic_prefix);
	while (g->n < want) {
		nng_msg *m;
		int      rv = nng_recvmsg(s, &m, 0);
		if (rv != 0) {
			fprintf(stderr, "feed_filter_test: %zu of %zu entries "
			                "on %s, then %s\n",
			    g->n, want, topic_prefix, nng_strerror(rv));
			exit(1);
		}
		const char *body = nng_msg_body(m);
		size_t      len  = nng_msg_len(m);
		const char *nl   = memchr(body, '\n', len);
		CHECK(nl != NULL);
		if (len >= 2 && memcmp(body, FEED_TOPIC_HEAD, 2) == 0) {
			nng_msg_free(m);
			continue;
		}
		if ((size_t) (nl - body) + 1 < tlen
		    || memcmp(body, topic_prefix, tlen) != 0) {
			fprintf(stderr, "feed_filter_test: topic '%.*s' on a "
			                "subscription to '%s'\n",
			    (int) (nl - body), body, topic_prefix);
			exit(1);
		}
		msgpack_zone     z;
		msgpack_object   root;
		size_t           off = 0;
		CHECK(msgpack_zone_init(&z, 4096));
		CHECK(msgpack_unpack(nl + 1, len - (size_t) (nl + 1 - body),
		          &off, &z, &root)
		    == MSGPACK_UNPACK_SUCCESS);
		CHECK(root.type == MSGPACK_OBJECT_ARRAY);
		for (uint32_t i = 0; i < root.via.array.size; i++) {
			const msgpack_object *e = &root.via.array.ptr[i];
			uint64_t              p, sp, gen;
			const char           *part;
			size_t                plen;
			CHECK(mp_get_u64(e, "position", &p) == SL_OK);
			CHECK(mp_get_u64(e, pos_key, &sp) == SL_OK);
			CHECK(mp_get_u64(e, "stream_generation", &gen) == SL_OK);
			CHECK_EQ(gen, 1);
			CHECK(mp_get_str(e, "partition", &part, &plen) == SL_OK);
			if (partition != NULL)
				CHECK(plen == strlen(partition)
				    && memcmp(part, partition, plen) == 0);
			CHECK(g->n < N_EVENTS * 2);
			g->pos[g->n]  = p;
			g->spos[g->n] = sp;
			g->n++;
		}
		msgpack_zone_destroy(&z);
		nng_msg_free(m);
	}
}

/* The same stream through read_filter: positions in stream order. */
static size_t
read_all(sl_client *cl, const char *filter, const char *partition,
    uint64_t *pos, size_t cap)
{
	size_t   n    = 0;
	uint64_t from = 0;
	for (;;) {
		sl_filter_page pg;
		CHECK_EQ(sl_client_read_filter(
		             cl, FX_TENANT, filter, partition, from, 0, &pg),
		    SL_OK);
		for (size_t i = 0; i < pg.n_events; i++) {
			CHECK(n < cap);
			CHECK_EQ(pg.events[i].stream_position, from + i);
			pos[n++] = pg.events[i].event.position;
		}
		from = pg.next;
		bool more = pg.more;
		sl_filter_page_free(&pg);
		if (!more)
			return n;
	}
}

int
main(void)
{
	char yaml[4600];
	snprintf(yaml, sizeof(yaml),
	    "plugin_dir: %s\n"
	    "tenants: [{id: " FX_TENANT "}]\n",
	    SL_PLUGIN_DIR);
	fx_start_yaml(yaml);

	nng_socket whole = raw_sub("f/" FX_TENANT "/" CUSTOMER_EVENTS "/");
	nng_socket one = raw_sub("f/" FX_TENANT "/" CUSTOMER_EVENTS "/cust-2\n");
	nng_socket pub = raw_sub("f/" FX_TENANT "/" PUBLIC_OPENINGS "/");

	sl_client *cl;
	CHECK_EQ(sl_client_open(fx_url, 5000, &cl), SL_OK);
	size_t want_one = 0, want_pub = 0;
	for (int i = 0; i < N_EVENTS; i++) {
		char         stream[32], json[160];
		int          c  = i % N_CUSTOMERS;
		bool         op = i % 10 == 0;
		sl_new_event ev;
		memset(&ev, 0, sizeof(ev));
		snprintf(stream, sizeof(stream), "acc-%d", i % 7);
		snprintf(json, sizeof(json),
		    "{\"customer_id\":\"cust-%d\",\"account_id\":\"acc-%d\","
		    "\"amount\":%d}",
		    c, i % 7, i);
		ev.type         = op ? "DebitAccountOpened" : "DebitPerformed";
		ev.content_json = json;
		ev.is_public    = op && i % 20 == 0;
		want_one += c == 2;
		want_pub += ev.is_public;
		sl_commit_result res;
		CHECK_EQ(sl_client_commit(cl, FX_TENANT, stream, SL_EXPECT_ANY,
		             &ev, 1, &res),
		    SL_OK);
	}

	static got gw, g1, gp;
	receive(whole, "f/" FX_TENANT "/" CUSTOMER_EVENTS "/", NULL,
	    "stream_position", N_EVENTS, &gw);
	receive(one, "f/" FX_TENANT "/" CUSTOMER_EVENTS "/cust-2\n", "cust-2",
	    "partition_position", want_one, &g1);
	receive(pub, "f/" FX_TENANT "/" PUBLIC_OPENINGS "/", NULL,
	    "stream_position", want_pub, &gp);

	/* what the feed carried, in order and gap-free, equals the reads */
	static uint64_t rd[N_EVENTS];
	CHECK_EQ(read_all(cl, CUSTOMER_EVENTS, NULL, rd, N_EVENTS), N_EVENTS);
	for (size_t i = 0; i < gw.n; i++) {
		CHECK_EQ(gw.spos[i], i);
		CHECK_EQ(gw.pos[i], rd[i]);
	}
	CHECK_EQ(read_all(cl, CUSTOMER_EVENTS, "cust-2", rd, N_EVENTS),
	    want_one);
	for (size_t i = 0; i < g1.n; i++) {
		CHECK_EQ(g1.spos[i], i);
		CHECK_EQ(g1.pos[i], rd[i]);
	}
	CHECK_EQ(read_all(cl, PUBLIC_OPENINGS, NULL, rd, N_EVENTS), want_pub);
	for (size_t i = 0; i < gp.n; i++) {
		CHECK_EQ(gp.spos[i], i);
		CHECK_EQ(gp.pos[i], rd[i]);
	}

	sl_client_close(cl);
	nng_close(whole);
	nng_close(one);
	nng_close(pub);
	fx_stop();
	printf("feed_filter_test: ok (%zu whole, %zu cust-2, %zu public)\n",
	    gw.n, g1.n, gp.n);
	return 0;
}
