/*
 * Shared by the tests that call the host table directly (host_state_test,
 * host_document_test): msgpack documents from JSON, events built around
 * them as a processor hands them to a plugin, and packed states.
 */
#ifndef SL_HOST_TESTUTIL_H
#define SL_HOST_TESTUTIL_H

#include "host.h"
#include "json.h"
#include "testutil.h"

/* ---- building msgpack and events ---- */

typedef struct {
	msgpack_sbuffer  sb;
	msgpack_unpacked up;
} mp_doc;

/* Parse JSON (an object) into a msgpack document. */
__attribute__((unused)) static void
mpdoc_json(mp_doc *d, const char *json)
{
	char           jerr[256];
	msgpack_packer pk;
	msgpack_sbuffer_init(&d->sb);
	msgpack_packer_init(&pk, &d->sb, msgpack_sbuffer_write);
	if (json_text_to_mp(json, 1, &pk, jerr, sizeof(jerr)) != SL_OK) {
		fprintf(stderr, "bad test JSON %s: %s\n", json, jerr);
		exit(1);
	}
	msgpack_unpacked_init(&d->up);
	CHECK(msgpack_unpack_next(&d->up, d->sb.data, d->sb.size, NULL)
	    == MSGPACK_UNPACK_SUCCESS);
}

/* Decode the bytes already in d->sb. */
__attribute__((unused)) static void
mpdoc_decode(mp_doc *d)
{
	msgpack_unpacked_init(&d->up);
	CHECK(msgpack_unpack_next(&d->up, d->sb.data, d->sb.size, NULL)
	    == MSGPACK_UNPACK_SUCCESS);
}

__attribute__((unused)) static void
mpdoc_free(mp_doc *d)
{
	msgpack_unpacked_destroy(&d->up);
	msgpack_sbuffer_destroy(&d->sb);
}

typedef struct {
	mp_doc   content, metadata;
	ev_view  v;
	sl_event ev;
} test_event;

/* An event of type on stream at pos, content and metadata from JSON. */
__attribute__((unused)) static void
event_make_meta(test_event *t, uint64_t pos, const char *type,
    const char *stream, const char *content_json, const char *metadata_json)
{
	memset(t, 0, sizeof(*t));
	mpdoc_json(&t->content, content_json);
	mpdoc_json(&t->metadata, metadata_json);
	t->v.position       = pos;
	t->v.tenant         = "demo";
	t->v.stream         = stream;
	t->v.revision       = pos;
	t->v.type           = type;
	t->v.generation     = 1;
	t->v.occurred_ns    = 1700000000000000000LL;
	t->v.correlation_id = "corr-1";
	t->v.causation_id   = "";
	t->v.is_public      = false;
	t->v.content        = t->content.up.data;
	t->v.metadata       = t->metadata.up.data;
	snprintf(t->v.id_text, sizeof(t->v.id_text),
	    "00000000-0000-4000-8000-%012llu", (unsigned long long) pos);
	t->ev.v         = &t->v;
	t->ev.partition = stream; /* the log's partition is the stream id */
}

/* event_make_meta with the metadata {"source":"host_state_test"}. */
__attribute__((unused)) static void
event_make(test_event *t, uint64_t pos, const char *type, const char *stream,
    const char *content_json)
{
	event_make_meta(t, pos, type, stream, content_json,
	    "{\"source\":\"host_state_test\"}");
}

__attribute__((unused)) static void
event_free(test_event *t)
{
	mpdoc_free(&t->content);
	mpdoc_free(&t->metadata);
}

__attribute__((unused)) static void
pack_key(msgpack_packer *pk, const char *k)
{
	msgpack_pack_str(pk, strlen(k));
	msgpack_pack_str_body(pk, k, strlen(k));
}

/* Pack a state and return the bytes (caller destroys sb). */
__attribute__((unused)) static void
pack_state(const sl_state *st, msgpack_sbuffer *sb)
{
	msgpack_packer pk;
	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	state_pack(st, &pk);
}

#endif
