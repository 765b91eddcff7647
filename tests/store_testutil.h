/*
 * Shared by the event log tests: a test event built from JSON content (its
 * msgpack buffers owned by the tev until tev_free) and a store_commit
 * filled in for one stream.
 */
#ifndef SL_STORE_TESTUTIL_H
#define SL_STORE_TESTUTIL_H

#include <json.h>
#include <pthread.h>
#include <stdbool.h>
#include <sluice/errors.h>
#include <store.h>

#include "testutil.h"

/* A test event: its content lives in sb/up until tev_free. */
typedef struct tev {
	msgpack_sbuffer  sb;
	msgpack_unpacked up;
	ev_new           e;
} tev;

/* Generation 1, a fresh id, occurred now, no correlation or causation. */
__attribute__((unused)) static void
tev_init(tev *t, const char *type, const char *content_json)
{
	msgpack_packer pk;
	char           err[128];
	size_t         off = 0;

	msgpack_sbuffer_init(&t->sb);
	msgpack_packer_init(&pk, &t->sb, msgpack_sbuffer_write);
	CHECK_EQ(
	    json_text_to_mp(content_json, 1, &pk, err, sizeof(err)), SL_OK);
	msgpack_unpacked_init(&t->up);
	CHECK(msgpack_unpack_next(&t->up, t->sb.data, t->sb.size, &off)
	    == MSGPACK_UNPACK_SUCCESS);
	memset(&t->e, 0, sizeof(t->e));
	t->e.type       = type;
	t->e.type_len   = strlen(type);
	t->e.generation = 1;
	ev_uuid_generate(t->e.id);
	t->e.occurred_ns  = ev_now_ns();
	t->e.causation_id = "";
	t->e.content      = &t->up.data;
}

__attribute__((unused)) static void
tev_free(tev *t)
{
	msgpack_unpacked_destroy(&t->up);
	msgpack_sbuffer_destroy(&t->sb);
}

/* A commit of events[0..n) to tenant/stream (events not copied). */
__attribute__((unused)) static void
tev_commit_init(store_commit *c, const char *tenant, const char *stream,
    size_t stream_len, uint64_t expected, ev_new *events, size_t n)
{
	memset(c, 0, sizeof(*c));
	c->tenant     = tenant;
	c->tenant_len = strlen(tenant);
	c->stream     = stream;
	c->stream_len = stream_len;
	c->expected   = expected;
	c->events     = events;
	c->n_events   = n;
}

/*
 * A gate for group commit tests: a first commit's done() (gate_hold) holds
 * the writer until the test has queued the group behind it (released), so
 * that group is certainly one transaction.
 */
typedef struct gate {
	pthread_mutex_t mu;
	pthread_cond_t  cv;
	bool            in_done;
	bool            released;
	int             finished;
} gate;

__attribute__((unused)) static void
gate_hold(store_commit *c, void *arg)
{
	gate *g = arg;

	CHECK_EQ(c->rc, SL_OK);
	pthread_mutex_lock(&g->mu);
	g->in_done = true;
	pthread_cond_broadcast(&g->cv);
	while (!g->released)
		pthread_cond_wait(&g->cv, &g->mu);
	g->finished++;
	pthread_mutex_unlock(&g->mu);
}

/* A content map {"pad": bin zero bytes}, packed into big and unpacked
 * into up (the caller destroys both); returns the map. */
__attribute__((unused)) static const msgpack_object *
tev_padded(msgpack_sbuffer *big, msgpack_unpacked *up, size_t bin)
{
	msgpack_packer pk;
	size_t         off = 0;
	char          *pad = calloc(1, bin);

	CHECK(pad != NULL);
	msgpack_sbuffer_init(big);
	msgpack_packer_init(&pk, big, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str_with_body(&pk, "pad", 3);
	msgpack_pack_bin_with_body(&pk, pad, bin);
	free(pad);
	msgpack_unpacked_init(up);
	CHECK(msgpack_unpack_next(up, big->data, big->size, &off)
	    == MSGPACK_UNPACK_SUCCESS);
	return &up->data;
}

#endif
