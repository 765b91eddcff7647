/*
 * The event codec and JSON edges: stored encode/decode round trip of every
 * field, ev_parse_new defaults and each refusal, the wire form's names, the
 * reply envelope, and JSON <-> msgpack conversion with error positions.
 */
#include <pthread.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include <event.h>
#include <json.h>
#include <mp.h>
#include <mpraw.h>
#include <sluice/errors.h>

#include <uuid/uuid.h>

#include "testutil.h"

/* A packed buffer plus its unpacked root, freed together. */
typedef struct packed {
	msgpack_sbuffer  sb;
	msgpack_packer   pk;
	msgpack_unpacked up;
} packed;

static void
packed_init(packed *p)
{
	msgpack_sbuffer_init(&p->sb);
	msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
	msgpack_unpacked_init(&p->up);
}

static const msgpack_object *
packed_root(packed *p)
{
	size_t off = 0;

	CHECK(msgpack_unpack_next(&p->up, p->sb.data, p->sb.size, &off)
	    == MSGPACK_UNPACK_SUCCESS);
	CHECK_EQ(off, p->sb.size);
	return &p->up.data;
}

static void
packed_free(packed *p)
{
	msgpack_unpacked_destroy(&p->up);
	msgpack_sbuffer_destroy(&p->sb);
}

/* Build a msgpack object from JSON text (tests write events as JSON). */
static const msgpack_object *
from_json(packed *p, const char *json)
{
	char err[128];

	packed_init(p);
	CHECK_EQ(json_text_to_mp(json, 0, &p->pk, err, sizeof(err)), SL_OK);
	return packed_root(p);
}

static void
check_json_eq(const msgpack_object *o, const char *json)
{
	char   *text = mp_to_json_text(o);
	json_t *a, *b;

	CHECK(text != NULL);
	a = json_loads(text, JSON_DECODE_ANY, NULL);
	b = json_loads(json, JSON_DECODE_ANY, NULL);
	CHECK(a != NULL && b != NULL);
	if (!json_equal(a, b)) {
		fprintf(stderr, "got %s\nwant %s\n", text, json);
		CHECK(0);
	}
	json_decref(a);
	json_decref(b);
	free(text);
}

static void
test_round_trip(void)
{
	const char           *content = "{\"name\":\"Ada\",\"balance\":-12,"
	                                "\"rate\":0.25,\"tags\":[\"a\",{\"deep\":[1,2,"
	                                "{\"x\":null}]}],\"ok\":true}";
	packed                in, st;
	ev_new                e;
	ev_view               v;
	msgpack_zone          zone;
	char                  err[128];
	char                  json[1024];
	const msgpack_object *o;

	snprintf(json, sizeof(json),
	    "{\"type\":\"AccountOpened\",\"generation\":3,"
	    "\"id\":\"0f8fad5b-d9cb-469f-a165-70867728950e\","
	    "\"occurred\":1700000000123456789,\"correlation_id\":\"corr-1\","
	    "\"causation_id\":\"cause-1\",\"public\":true,"
	    "\"metadata\":{\"user\":\"u1\"},\"content\":%s}",
	    content);
	o = from_json(&in, json);
	CHECK_EQ(ev_parse_new(o, &e, err, sizeof(err)), SL_OK);

	packed_init(&st);
	CHECK_EQ(
	    ev_encode(&st.pk, "tenant-a", 8, "account-456", 11, 7, &e), SL_OK);
	CHECK(msgpack_zone_init(&zone, 1024));
	CHECK_EQ(ev_decode(st.sb.data, st.sb.size, 42, &zone, &v), SL_OK);
	CHECK_EQ(v.position, 42);
	CHECK_STREQ(v.tenant, "tenant-a");
	CHECK_STREQ(v.stream, "account-456");
	CHECK_EQ(v.revision, 7);
	CHECK_STREQ(v.id_text, "0f8fad5b-d9cb-469f-a165-70867728950e");
	CHECK(memcmp(v.id, e.id, 16) == 0);
	CHECK_STREQ(v.type, "AccountOpened");
	CHECK_EQ(v.generation, 3);
	CHECK_EQ(v.occurred_ns, 1700000000123456789LL);
	CHECK_STREQ(v.correlation_id, "corr-1");
	CHECK_STREQ(v.causation_id, "cause-1");
	CHECK(v.is_public);
	check_json_eq(&v.metadata, "{\"user\":\"u1\"}");
	check_json_eq(&v.content, content);

	/* ev_peek reads whose event it is without decoding the rest */
	{
		ev_head  h;
		uint64_t revs[] = { 7, 300, 70000, (uint64_t) 1 << 40 };

		CHECK_EQ(ev_peek(st.sb.data, st.sb.size, &h), SL_OK);
		CHECK(
		    h.tenant_len == 8 && memcmp(h.tenant, "tenant-a", 8) == 0);
		CHECK(h.stream_len == 11
		    && memcmp(h.stream, "account-456", 11) == 0);
		CHECK_EQ(h.revision, 7);
		CHECK(h.type_len == 13
		    && memcmp(h.type, "AccountOpened", 13) == 0);
		/* cut anywhere in its first fields: refused */
		for (size_t n = 0; n < 1 + 9 + 12 + 1 + 18 + 14; n++)
			CHECK_EQ(ev_peek(st.sb.data, n, &h), SL_EPROTO);
		/* every width of the revision */
		for (size_t k = 0; k < sizeof(revs) / sizeof(revs[0]); k++) {
			msgpack_sbuffer_clear(&st.sb);
			CHECK_EQ(
			    ev_encode(&st.pk, "t", 1, "s", 1, revs[k], &e),
			    SL_OK);
			CHECK_EQ(ev_peek(st.sb.data, st.sb.size, &h), SL_OK);
			CHECK_EQ(h.revision, revs[k]);
			CHECK_EQ(ev_peek(st.sb.data, 6, &h), SL_EPROTO);
		}
		CHECK_EQ(ev_peek("\x93\xa1t\xa1s\x01", 7, &h), SL_EPROTO);
		CHECK_EQ(ev_peek("\x9c\x01\xa1s\x01", 5, &h), SL_EPROTO);
		CHECK_EQ(ev_peek("\x9c\xa1t\xa1s\xa1r", 7, &h), SL_EPROTO);
		msgpack_sbuffer_clear(&st.sb);
		CHECK_EQ(
		    ev_encode(&st.pk, "tenant-a", 8, "account-456", 11, 7, &e),
		    SL_OK);
	}

	/* A truncated or garbled record is refused, not misread. */
	CHECK_EQ(
	    ev_decode(st.sb.data, st.sb.size - 1, 0, &zone, &v), SL_EPROTO);
	CHECK_EQ(ev_decode("\x93\x01\x02\x03", 4, 0, &zone, &v), SL_EPROTO);

	/* Negative occurred times survive too. */
	e.occurred_ns = -5;
	msgpack_sbuffer_clear(&st.sb);
	CHECK_EQ(ev_encode(&st.pk, "t", 1, "s", 1, 0, &e), SL_OK);
	CHECK_EQ(ev_decode(st.sb.data, st.sb.size, 0, &zone, &v), SL_OK);
	CHECK_EQ(v.occurred_ns, -5);

	msgpack_zone_destroy(&zone);
	packed_free(&st);
	packed_free(&in);
}

static void
test_defaults_and_wire(void)
{
	packed                in, st, w;
	ev_new                e;
	ev_view               v;
	msgpack_zone          zone;
	char                  err[128];
	uint8_t               zero[16] = { 0 };
	int64_t               before   = ev_now_ns(), after;
	const msgpack_object *o, *wire;
	const char           *s;
	size_t                n;
	uint64_t              u;
	bool                  b;

	o = from_json(&in, "{\"type\":\"T\",\"content\":{}}");
	CHECK_EQ(ev_parse_new(o, &e, err, sizeof(err)), SL_OK);
	after = ev_now_ns();
	CHECK_EQ(e.generation, 1);
	CHECK(memcmp(e.id, zero, 16) != 0);
	CHECK(e.occurred_ns >= before && e.occurred_ns <= after);
	CHECK(e.metadata == NULL);
	CHECK(!e.is_public);
	CHECK_EQ(e.causation_len, 0);

	packed_init(&st);
	CHECK_EQ(ev_encode(&st.pk, "t", 1, "s-1", 3, 0, &e), SL_OK);
	CHECK(msgpack_zone_init(&zone, 256));
	CHECK_EQ(ev_decode(st.sb.data, st.sb.size, 9, &zone, &v), SL_OK);
	/* The correlation id defaults to the event's own id. */
	CHECK_STREQ(v.correlation_id, v.id_text);
	CHECK_STREQ(v.causation_id, "");
	CHECK_EQ(v.metadata.type, MSGPACK_OBJECT_MAP);
	CHECK_EQ(v.metadata.via.map.size, 0);
	CHECK_EQ(v.content.via.map.size, 0);

	/* Generated ids differ. */
	{
		ev_new e2;

		CHECK_EQ(ev_parse_new(o, &e2, err, sizeof(err)), SL_OK);
		CHECK(memcmp(e.id, e2.id, 16) != 0);
	}

	packed_init(&w);
	ev_pack_wire(&w.pk, &v);
	wire = packed_root(&w);
	CHECK_EQ(wire->type, MSGPACK_OBJECT_MAP);
	CHECK_EQ(wire->via.map.size, 13);
	CHECK_EQ(mp_get_u64(wire, "position", &u), SL_OK);
	CHECK_EQ(u, 9);
	CHECK_EQ(mp_get_str(wire, "tenant", &s, &n), SL_OK);
	CHECK(n == 1 && s[0] == 't');
	CHECK_EQ(mp_get_str(wire, "stream", &s, &n), SL_OK);
	CHECK(n == 3 && memcmp(s, "s-1", 3) == 0);
	CHECK_EQ(mp_get_u64(wire, "revision", &u), SL_OK);
	CHECK_EQ(u, 0);
	CHECK_EQ(mp_get_str(wire, "id", &s, &n), SL_OK);
	CHECK(n == 36 && memcmp(s, v.id_text, 36) == 0);
	CHECK_EQ(mp_get_str(wire, "type", &s, &n), SL_OK);
	CHECK_EQ(mp_get_u64(wire, "generation", &u), SL_OK);
	CHECK_EQ(u, 1);
	CHECK(mp_get(wire, "occurred") != NULL);
	CHECK_EQ(mp_get_str(wire, "correlation_id", &s, &n), SL_OK);
	CHECK_EQ(mp_get_str(wire, "causation_id", &s, &n), SL_OK);
	CHECK_EQ(mp_get_bool(wire, "public", &b), SL_OK);
	CHECK(!b);
	CHECK(mp_get(wire, "metadata") != NULL);
	CHECK(mp_get(wire, "content") != NULL);
	/* Typed getters: absent vs wrong type. */
	CHECK_EQ(mp_get_u64(wire, "nope", &u), SL_ENOTFOUND);
	CHECK_EQ(mp_get_u64(wire, "type", &u), SL_EPROTO);
	CHECK_EQ(mp_get_bool(wire, "revision", &b), SL_EPROTO);

	packed_free(&w);
	msgpack_zone_destroy(&zone);
	packed_free(&st);
	packed_free(&in);
}

static void
expect_refused(const char *json, int code, const char *needle)
{
	packed                in;
	ev_new                e;
	char                  err[256];
	const msgpack_object *o = from_json(&in, json);

	err[0] = '\0';
	CHECK_EQ(ev_parse_new(o, &e, err, sizeof(err)), code);
	if (strstr(err, needle) == NULL) {
		fprintf(stderr, "message \"%s\" lacks \"%s\"\n", err, needle);
		CHECK(0);
	}
	packed_free(&in);
}

static void
test_parse_errors(void)
{
	char   buf[2048];
	packed big;
	ev_new e;
	char   err[256];

	expect_refused("{\"content\":{}}", SL_EINVAL, "type");
	expect_refused("{\"type\":\"T\"}", SL_EINVAL, "content");
	expect_refused("{\"type\":\"\",\"content\":{}}", SL_EINVAL, "type");
	expect_refused(
	    "{\"type\":\"T\",\"content\":[1]}", SL_EPROTO, "content");
	expect_refused(
	    "{\"type\":\"T\",\"content\":\"x\"}", SL_EPROTO, "content");
	expect_refused("{\"type\":5,\"content\":{}}", SL_EPROTO, "type");
	expect_refused("{\"type\":\"T\",\"content\":{},\"generation\":\"2\"}",
	    SL_EPROTO, "generation");
	expect_refused("{\"type\":\"T\",\"content\":{},\"generation\":0}",
	    SL_EINVAL, "generation");
	expect_refused("{\"type\":\"T\",\"content\":{},\"public\":1}",
	    SL_EPROTO, "public");
	expect_refused("{\"type\":\"T\",\"content\":{},\"metadata\":[]}",
	    SL_EPROTO, "metadata");
	expect_refused("{\"type\":\"T\",\"content\":{},\"occurred\":\"now\"}",
	    SL_EPROTO, "occurred");
	expect_refused("{\"type\":\"T\",\"content\":{},\"id\":\"not-a-uuid\"}",
	    SL_EINVAL, "id");
	expect_refused(
	    "{\"type\":\"T\",\"content\":{},\"id\":7}", SL_EPROTO, "id");
	expect_refused("{\"type\":\"T\",\"content\":{},\"correlation_id\":1}",
	    SL_EPROTO, "correlation_id");
	expect_refused("[1,2]", SL_EPROTO, "map");

	/* Ids up to the limit pass; one byte more is refused. */
	snprintf(buf, sizeof(buf), "{\"type\":\"%0*d\",\"content\":{}}",
	    SL_MAX_ID_LEN, 0);
	{
		packed                in;
		const msgpack_object *o = from_json(&in, buf);

		CHECK_EQ(ev_parse_new(o, &e, err, sizeof(err)), SL_OK);
		CHECK_EQ(e.type_len, SL_MAX_ID_LEN);
		packed_free(&in);
	}
	snprintf(buf, sizeof(buf), "{\"type\":\"%0*d\",\"content\":{}}",
	    SL_MAX_ID_LEN + 1, 0);
	expect_refused(buf, SL_ETOOBIG, "type");
	snprintf(buf, sizeof(buf),
	    "{\"type\":\"T\",\"content\":{},\"causation_id\":\"%0*d\"}",
	    SL_MAX_ID_LEN + 1, 0);
	expect_refused(buf, SL_ETOOBIG, "causation_id");

	/* Content over SL_MAX_EVENT_BYTES is refused with SL_ETOOBIG. */
	packed_init(&big);
	{
		size_t n   = SL_MAX_EVENT_BYTES;
		char  *pad = calloc(1, n);

		CHECK(pad != NULL);
		msgpack_pack_map(&big.pk, 2);
		mp_pack_kv_str(&big.pk, "type", "T");
		mp_pack_cstr(&big.pk, "content");
		msgpack_pack_map(&big.pk, 1);
		mp_pack_cstr(&big.pk, "pad");
		msgpack_pack_bin(&big.pk, n);
		msgpack_pack_bin_body(&big.pk, pad, n);
		free(pad);
	}
	CHECK_EQ(
	    ev_parse_new(packed_root(&big), &e, err, sizeof(err)), SL_ETOOBIG);
	CHECK(strstr(err, "limit") != NULL);
	packed_free(&big);
}

static void
json_round_trip(const char *json)
{
	packed                p;
	const msgpack_object *o = from_json(&p, json);

	check_json_eq(o, json);
	packed_free(&p);
}

static void
test_json(void)
{
	packed                p;
	char                  err[256];
	const msgpack_object *o;

	json_round_trip("{\"a\":{\"b\":{\"c\":[1,[2,[3]],{}]}},\"e\":[]}");
	json_round_trip("[1,-1,0,9223372036854775807,-9223372036854775807]");
	json_round_trip("{\"f\":1.5,\"g\":-0.001,\"h\":1e300,\"i\":3.0}");
	json_round_trip("{\"u\":\"gr\\u00fc\\u00dfe \\u65e5\\u672c "
	                "\\ud83d\\ude00\",\"t\":true,\"f\":false,\"n\":null}");
	json_round_trip("\"just a string\"");

	/* Ints stay ints and reals stay floats through msgpack. */
	o = from_json(&p, "{\"i\":3,\"r\":3.0,\"n\":-3}");
	CHECK_EQ(mp_get(o, "i")->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	CHECK_EQ(mp_get(o, "r")->type, MSGPACK_OBJECT_FLOAT64);
	CHECK_EQ(mp_get(o, "n")->type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
	CHECK_EQ(mp_get(o, "n")->via.i64, -3);
	packed_free(&p);

	/* Unicode bytes arrive in msgpack as UTF-8. */
	o = from_json(&p, "{\"s\":\"\\u00e9\"}");
	CHECK_EQ(mp_get(o, "s")->via.str.size, 2);
	CHECK(memcmp(mp_get(o, "s")->via.str.ptr, "\xc3\xa9", 2) == 0);
	packed_free(&p);

	/* Invalid JSON: SL_EINVAL with the line and column. */
	packed_init(&p);
	CHECK_EQ(json_text_to_mp(
	             "{\n  \"a\": 1,\n  \"b\": }", 0, &p.pk, err, sizeof(err)),
	    SL_EINVAL);
	CHECK(strstr(err, "line 3") != NULL);
	CHECK(strstr(err, "column") != NULL);
	CHECK_EQ(p.sb.size, 0);
	CHECK_EQ(
	    json_text_to_mp("[1,2]", 1, &p.pk, err, sizeof(err)), SL_EINVAL);
	CHECK(strstr(err, "object") != NULL);
	CHECK_EQ(p.sb.size, 0);
	CHECK_EQ(
	    json_text_to_mp("{\"a\":1,\"a\":2}", 1, &p.pk, err, sizeof(err)),
	    SL_EINVAL);
	CHECK_EQ(p.sb.size, 0);
	packed_free(&p);

	/* msgpack-only values still render as JSON. */
	packed_init(&p);
	msgpack_pack_map(&p.pk, 3);
	msgpack_pack_uint64(&p.pk, 5); /* non-string key */
	msgpack_pack_bin(&p.pk, 2);
	msgpack_pack_bin_body(&p.pk, "\x01\xff", 2);
	mp_pack_cstr(&p.pk, "bad");
	mp_pack_strn(&p.pk, "a\xff", 2);
	mp_pack_cstr(&p.pk, "big");
	msgpack_pack_uint64(&p.pk, UINT64_MAX);
	o = packed_root(&p);
	{
		char *t = mp_to_json_text(o);

		CHECK(t != NULL);
		CHECK(strstr(t, "\"5\":\"01ff\"") != NULL);
		CHECK(strstr(t, "\"bad\":\"a\xef\xbf\xbd\"") != NULL);
		free(t);
	}
	packed_free(&p);
}

static void
test_envelope(void)
{
	packed                p;
	uint64_t              u;
	bool                  b;
	const char           *s;
	size_t                n;
	const msgpack_object *o;

	packed_init(&p);
	mp_reply_ok(&p.pk, 1);
	mp_pack_kv_u64(&p.pk, "count", 3);
	o = packed_root(&p);
	CHECK_EQ(o->via.map.size, 3);
	CHECK_EQ(mp_get_u64(o, "v", &u), SL_OK);
	CHECK_EQ(u, SL_PROTOCOL_VERSION);
	CHECK_EQ(mp_get_bool(o, "ok", &b), SL_OK);
	CHECK(b);
	packed_free(&p);

	packed_init(&p);
	mp_reply_err(&p.pk, SL_EREVISION, "stream is at 4");
	o = packed_root(&p);
	CHECK_EQ(o->via.map.size, 5);
	CHECK_EQ(mp_get_bool(o, "ok", &b), SL_OK);
	CHECK(!b);
	CHECK_EQ(mp_get_u64(o, "code", &u), SL_OK);
	CHECK_EQ(u, SL_EREVISION);
	CHECK_EQ(mp_get_str(o, "error", &s, &n), SL_OK);
	CHECK(n == 9 && memcmp(s, "EREVISION", 9) == 0);
	CHECK_EQ(mp_get_str(o, "message", &s, &n), SL_OK);
	CHECK(n == 14 && memcmp(s, "stream is at 4", 14) == 0);
	packed_free(&p);
}

/* ---- msgpack to JSON text: the direct writer equals jansson's ---- */

static uint64_t jrng = 88172645463325252ULL;

static uint64_t
jrand(void)
{
	jrng ^= jrng << 13;
	jrng ^= jrng >> 7;
	jrng ^= jrng << 17;
	return jrng;
}

/* A random value (depth levels at most) packed into pk. */
static void
pack_random(msgpack_packer *pk, int depth)
{
	static const char *const strs[] = { "", "a", "key", "a.b", "\"q\"",
		"back\\slash", "tab\there", "nl\n", "\x01\x1f\x7f", "/slash",
		"caf\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
		"\xff\xfe bad", "\xc3", "long string of some length ......" };
	static const double reals[] = { 0.0, -0.0, 0.5, 1.0, -1.5, 1e20, 1e-5,
		1.5e300, 123456789.123, 3.141592653589793, 1e21, 2.5e-310,
		100.0, 1e100 };
	unsigned k = (unsigned) (jrand() % (depth > 0 ? 11 : 8));
	switch (k) {
	case 0: msgpack_pack_nil(pk); break;
	case 1: jrand() & 1 ? msgpack_pack_true(pk) : msgpack_pack_false(pk); break;
	case 2: msgpack_pack_int64(pk, (int64_t) jrand()); break;
	case 3: msgpack_pack_uint64(pk, jrand()); break;
	case 4: msgpack_pack_double(pk, reals[jrand() % 14]); break;
	case 5: msgpack_pack_float(pk, (float) reals[jrand() % 14]); break;
	case 6: {
		const char *t = strs[jrand() % 16];
		msgpack_pack_str_with_body(pk, t, strlen(t));
		break;
	}
	case 7: msgpack_pack_bin_with_body(pk, "\x00\xab\x10", 3); break;
	case 8: {
		uint32_t n = (uint32_t) (jrand() % 5);
		msgpack_pack_array(pk, n);
		for (uint32_t i = 0; i < n; i++)
			pack_random(pk, depth - 1);
		break;
	}
	default: { /* maps: string keys (maybe twice), sometimes others */
		uint32_t n = (uint32_t) (jrand() % (k == 10 ? 80 : 6));
		msgpack_pack_map(pk, n);
		for (uint32_t i = 0; i < n; i++) {
			if (jrand() % 9 == 0)
				msgpack_pack_int64(pk, (int64_t) (jrand() % 5));
			else {
				char key[16];
				int  kl = snprintf(key, sizeof(key), "k%u",
				     (unsigned) (jrand() % (n + 3)));
				msgpack_pack_str_with_body(pk, key, (size_t) kl);
			}
			pack_random(pk, depth - 1);
		}
	}
	}
}

/* A map of n random values keyed "<prefix>0".. packed into pk. */
static void
pack_random_map(msgpack_packer *pk, char prefix, uint32_t n, int depth)
{
	msgpack_pack_map(pk, n);
	for (uint32_t i = 0; i < n; i++) {
		char k[16];
		snprintf(k, sizeof(k), "%c%u", prefix, i);
		mp_pack_cstr(pk, k);
		pack_random(pk, depth);
	}
}

/* e: an event of type with content (metadata none), its other fields
 * random: generations and times of every size, negative ones too. */
static void
random_event(ev_new *e, const char *type, const msgpack_object *content)
{
	memset(e, 0, sizeof(*e));
	e->type            = type;
	e->type_len        = strlen(type);
	e->generation      = (uint32_t) (jrand() >> (jrand() % 64));
	e->occurred_ns     = (int64_t) jrand() >> (jrand() % 64);
	e->correlation_id  = "corr";
	e->correlation_len = 4;
	e->causation_id    = jrand() & 1 ? "" : "cause";
	e->causation_len   = strlen(e->causation_id);
	e->is_public       = jrand() & 1;
	e->content         = content;
	for (int i = 0; i < 16; i++)
		e->id[i] = (uint8_t) jrand();
}

static void
test_json_text(void)
{
	for (int round = 0; round < 20000; round++) {
		msgpack_sbuffer sb;
		msgpack_packer  pk;
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		pack_random(&pk, 3);
		msgpack_unpacked u;
		size_t           off = 0;
		msgpack_unpacked_init(&u);
		CHECK(msgpack_unpack_next(&u, sb.data, sb.size, &off)
		    == MSGPACK_UNPACK_SUCCESS);
		char *a = mp_to_json_text(&u.data);
		char *b = mp_to_json_text_jansson(&u.data);
		if (a == NULL || b == NULL) {
			fprintf(stderr, "round %d: direct %s, jansson %s\n",
			    round, a ? a : "NULL", b ? b : "NULL");
			exit(1);
		}
		if (strcmp(a, b) != 0) {
			fprintf(stderr, "round %d:\n direct  %s\n jansson %s\n",
			    round, a, b);
			exit(1);
		}
		free(a);
		free(b);
		msgpack_unpacked_destroy(&u);
		msgpack_sbuffer_destroy(&sb);
	}
}

/* ---- a stored event straight to the wire (ev_pack_wire_raw) ---- */

/* Random events (random metadata and content, links, revisions,
 * generations and times of every size, negative ones too) give the same
 * wire bytes from ev_pack_wire_raw as from ev_decode + ev_pack_wire_extra,
 * extra pairs after both; a truncated record is refused. ev_from_wire
 * reads the wire bytes back to the same event. */
static void
test_wire_raw(void)
{
	static const char *const types[] = { "Deposited", "$>", "$@", "" };
	for (int round = 0; round < 20000; round++) {
		packed md, ct;
		packed_init(&md);
		packed_init(&ct);
		const char *type = types[jrand() % 3];
		bool        link = strcmp(type, "Deposited") != 0;
		/* metadata: a map; content: a map, or a link's str */
		pack_random_map(&md.pk, 'm', (uint32_t) (jrand() % 4), 2);
		if (link && jrand() % 4 != 0)
			mp_pack_cstr(&ct.pk, "12@account-7");
		else
			pack_random_map(
			    &ct.pk, 'c', (uint32_t) (jrand() % 6), 3);
		const msgpack_object *meta = packed_root(&md);
		ev_new                e;
		random_event(&e, type, packed_root(&ct));
		e.metadata   = jrand() % 5 == 0 ? NULL : meta;
		uint64_t rev = jrand() >> (jrand() % 64);
		packed   st;
		packed_init(&st);
		CHECK_EQ(ev_encode(&st.pk, "tenant-a", 8, "account-456", 11, rev,
		             &e),
		    SL_OK);
		uint64_t        pos = jrand() >> (jrand() % 64);
		msgpack_sbuffer a, b;
		msgpack_packer  apk, bpk;
		msgpack_sbuffer_init(&a);
		msgpack_sbuffer_init(&b);
		msgpack_packer_init(&apk, &a, msgpack_sbuffer_write);
		msgpack_packer_init(&bpk, &b, msgpack_sbuffer_write);
		msgpack_zone zone;
		ev_view      v;
		CHECK(msgpack_zone_init(&zone, 1024));
		CHECK_EQ(ev_decode(st.sb.data, st.sb.size, pos, &zone, &v), SL_OK);
		ev_pack_wire_extra(&apk, &v, 1);
		CHECK_EQ(ev_pack_wire_raw(&bpk, st.sb.data, st.sb.size, pos, 1),
		    SL_OK);
		mp_pack_kv_u64(&apk, "x", 1);
		mp_pack_kv_u64(&bpk, "x", 1);
		if (a.size != b.size || memcmp(a.data, b.data, a.size) != 0) {
			fprintf(stderr, "round %d: the raw wire bytes differ\n",
			    round);
			exit(1);
		}
		/* from the decode's own reading in place (the remote path's
		 * events): the same bytes, with and without the id's text */
		{
			msgpack_zone   dz;
			ev_view        dv;
			ev_raw         dr;
			bool           peeked;
			unsigned char *o
			    = malloc(EV_WIRE_RAW_BOUND(st.sb.size) + 16);
			CHECK(o != NULL && msgpack_zone_init(&dz, 1024));
			CHECK_EQ(ev_decode_raw(st.sb.data, st.sb.size, pos,
			             &dz, &dv, &dr, &peeked),
			    SL_OK);
			CHECK(peeked);
			for (int t = 0; t < 2; t++) {
				size_t n = ev_wire_peeked(
				    &dr, pos, 1, t ? dv.id_text : NULL, o);
				o[n++] = 0xa1; /* "x": 1, as above */
				o[n++] = 'x';
				o[n++] = 0x01;
				if (n != a.size || memcmp(o, a.data, n) != 0) {
					fprintf(stderr,
					    "round %d: the peeked wire bytes "
					    "differ\n",
					    round);
					exit(1);
				}
			}
			free(o);
			msgpack_zone_destroy(&dz);
		}
		/* read back from the wire (a remote call's event, for
		 * sluice-host): the same view, so the same bytes again; an
		 * unknown key ("x") skipped, a cut map refused */
		msgpack_zone    wzone;
		ev_view         w;
		msgpack_sbuffer c;
		msgpack_packer  cpk2;
		CHECK(msgpack_zone_init(&wzone, 1024));
		msgpack_sbuffer_init(&c);
		msgpack_packer_init(&cpk2, &c, msgpack_sbuffer_write);
		CHECK_EQ(ev_from_wire(a.data, a.size, &wzone, &w), SL_OK);
		ev_pack_wire_extra(&cpk2, &w, 1);
		mp_pack_kv_u64(&cpk2, "x", 1);
		if (c.size != a.size || memcmp(a.data, c.data, a.size) != 0) {
			fprintf(stderr, "round %d: read back from the wire, "
			                "the event differs\n",
			    round);
			exit(1);
		}
		CHECK_EQ(ev_from_wire(a.data, (size_t) (jrand() % a.size),
		             &wzone, &w),
		    SL_EPROTO);
		msgpack_zone_destroy(&wzone);
		msgpack_sbuffer_destroy(&c);
		/* a cut record: refused, nothing packed */
		size_t cut = (size_t) (jrand() % st.sb.size);
		size_t was = b.size;
		CHECK_EQ(ev_pack_wire_raw(&bpk, st.sb.data, cut, pos, 0),
		    SL_EPROTO);
		CHECK_EQ(b.size, was);
		msgpack_zone_destroy(&zone);
		msgpack_sbuffer_destroy(&a);
		msgpack_sbuffer_destroy(&b);
		packed_free(&st);
		packed_free(&md);
		packed_free(&ct);
	}
}

/* ---- the stored record without msgpack-c's packer (ev_encode_sbuf) ---- */

/* A string of n random bytes (no NUL) in buf. */
static const char *
random_text(char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (char) (1 + jrand() % 255);
	return buf;
}

/* A length of every str header's size: fix, str8, str16, str32 edges. */
static size_t
random_len(void)
{
	static const size_t lens[] = { 0, 1, 5, 31, 32, 36, 200, 255, 256,
		1000, 65535, 65536, 70000 };
	return lens[jrand() % 13];
}

/* Random events (every field at every size, metadata none, empty or
 * random, content a map or a link's str, defaulted correlation and
 * causation ids) give the same stored bytes from ev_encode_sbuf as from
 * ev_encode, appended after bytes already in the buffer, from a buffer
 * empty or small; what ev_encode refuses, ev_encode_sbuf refuses and
 * leaves the buffer as it was. */
static void
test_encode_sbuf(void)
{
	static const char *const types[] = { "Deposited", "$>", "$@", "" };
	static char              tb[70000], sb2[70000], cb[70000], kb[70000];
	for (int round = 0; round < 20000; round++) {
		packed md, ct;
		packed_init(&md);
		packed_init(&ct);
		const char *type = types[jrand() % 4];
		bool link = strcmp(type, "$>") == 0 || strcmp(type, "$@") == 0;
		pack_random_map(&md.pk, 'm', (uint32_t) (jrand() % 4), 2);
		if (link && jrand() % 4 != 0) {
			size_t n = random_len();
			msgpack_pack_str_with_body(
			    &ct.pk, random_text(cb, n), n);
		} else if (jrand() % 6 == 0) {
			/* refused unless a link: content a str */
			msgpack_pack_str_with_body(&ct.pk, "12@a", 4);
		} else {
			pack_random_map(
			    &ct.pk, 'c', (uint32_t) (jrand() % 6), 3);
		}
		const msgpack_object *meta = packed_root(&md);
		ev_new                e;
		random_event(&e, type, packed_root(&ct));
		e.metadata = jrand() % 3 == 0 ? NULL : meta;
		switch (jrand() % 4) {
		case 0:
			e.correlation_id = NULL;
			break;
		case 1:
			e.correlation_len = random_len();
			e.correlation_id  = random_text(kb, e.correlation_len);
			break;
		default:
			break;
		}
		if (jrand() % 3 == 0)
			e.causation_id = NULL;
		else if (jrand() % 3 == 0) {
			e.causation_len = random_len();
			e.causation_id  = random_text(sb2, e.causation_len);
		}
		size_t      tl = random_len(), sl = jrand() % 300;
		const char *tenant = random_text(tb, tl);
		char        stream[300];
		random_text(stream, sl);
		if (jrand() % 50 == 0) /* a NUL: refused */
			stream[jrand() % (sl + 1) % 300] = '\0';
		uint64_t rev = jrand() >> (jrand() % 64);

		msgpack_sbuffer a, b;
		msgpack_packer  apk;
		msgpack_sbuffer_init(&a);
		msgpack_sbuffer_init(&b);
		msgpack_packer_init(&apk, &a, msgpack_sbuffer_write);
		/* bytes already there, sometimes */
		size_t pre = jrand() % 3 == 0 ? (size_t) (jrand() % 9000) : 0;
		if (pre > 0) {
			msgpack_sbuffer_write(&a, tb, pre);
			msgpack_sbuffer_write(&b, tb, pre);
		}
		int ra = ev_encode(
		    &apk, tl ? tenant : NULL, tl, stream, sl, rev, &e);
		int rb = ev_encode_sbuf(
		    &b, tl ? tenant : NULL, tl, stream, sl, rev, &e);
		if (ra != rb || a.size != b.size
		    || (a.size > 0 && memcmp(a.data, b.data, a.size) != 0)) {
			fprintf(stderr,
			    "round %d: ev_encode %d (%zu bytes), "
			    "ev_encode_sbuf %d (%zu bytes)\n",
			    round, ra, a.size, rb, b.size);
			exit(1);
		}
		if (ra != SL_OK)
			CHECK_EQ(b.size, pre);
		msgpack_sbuffer_destroy(&a);
		msgpack_sbuffer_destroy(&b);
		packed_free(&md);
		packed_free(&ct);
	}
}

/* ---- events decoded without msgpack-c (mpraw_object, ev_decode) ---- */

/* Random msgpack bytes of every type byte (signed encodings of values
 * >= 0, ext, float32, str/bin/array/map at each width), depth levels of
 * nesting at most, appended to sb. */
static void
raw_random(msgpack_sbuffer *sb, int depth)
{
	unsigned char b[16];
	uint8_t       t = (uint8_t) jrand();
	if (depth <= 0 && ((t >= 0x80 && t <= 0x9f) || (t >= 0xdc && t <= 0xdf)))
		t = 0x01;
	if (t == 0xc1)
		t = 0xc0;
	uint64_t v = jrand();
	size_t   n;
	b[0] = t;
	if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
		msgpack_sbuffer_write(sb, (char *) b, 1);
		return;
	}
	if ((t >= 0x80 && t <= 0x9f) || (t >= 0xdc && t <= 0xdf)) {
		n = jrand() % 4;
		size_t h = 1;
		if (t >= 0x80 && t <= 0x9f)
			b[0] = (uint8_t) ((t & 0xf0) | n);
		else if (t == 0xdc || t == 0xde)
			b[1] = 0, b[2] = (uint8_t) n, h = 3;
		else
			b[1] = b[2] = b[3] = 0, b[4] = (uint8_t) n, h = 5;
		msgpack_sbuffer_write(sb, (char *) b, h);
		bool map = (t >= 0x80 && t <= 0x8f) || t == 0xde || t == 0xdf;
		for (size_t i = 0; i < (map ? 2 * n : n); i++)
			raw_random(sb, depth - 1);
		return;
	}
	/* scalars with a body: a length field (str, bin, ext) or fixed */
	size_t lenb = 0, body = 0;
	if (t >= 0xa0 && t <= 0xbf)
		body = t & 0x1f;
	else if (t == 0xc4 || t == 0xd9)
		lenb = 1;
	else if (t == 0xc5 || t == 0xda)
		lenb = 2;
	else if (t == 0xc6 || t == 0xdb)
		lenb = 4;
	else if (t >= 0xc7 && t <= 0xc9)
		lenb = (size_t) 1 << (t - 0xc7);
	else if (t == 0xca)
		body = 4;
	else if (t == 0xcb)
		body = 8;
	else if (t >= 0xcc && t <= 0xcf)
		body = (size_t) 1 << (t - 0xcc);
	else if (t >= 0xd0 && t <= 0xd3)
		body = (size_t) 1 << (t - 0xd0);
	else if (t >= 0xd4 && t <= 0xd8)
		body = 1 + ((size_t) 1 << (t - 0xd4));
	size_t h = 1;
	if (lenb > 0) {
		size_t l = jrand() % 7;
		for (size_t i = 0; i < lenb; i++)
			b[h++] = (uint8_t) (i + 1 == lenb ? l : 0);
		body = l + (t >= 0xc7 && t <= 0xc9 ? 1 : 0);
	}
	msgpack_sbuffer_write(sb, (char *) b, h);
	for (size_t i = 0; i < body; i++) {
		unsigned char c = (unsigned char) (v >> (8 * (i % 8)));
		msgpack_sbuffer_write(sb, (char *) &c, 1);
	}
}

/* Whether two objects are the same, types, bits and pointers too (but
 * an empty string's, bin's or ext's). */
static bool
obj_same(const msgpack_object *a, const msgpack_object *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case MSGPACK_OBJECT_NIL:
		return true;
	case MSGPACK_OBJECT_BOOLEAN:
		return a->via.boolean == b->via.boolean;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return a->via.u64 == b->via.u64;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return memcmp(&a->via.f64, &b->via.f64, sizeof(double)) == 0;
	case MSGPACK_OBJECT_STR:
	case MSGPACK_OBJECT_BIN:
		/* an empty one's pointer is never read */
		return a->via.str.size == b->via.str.size
		    && (a->via.str.size == 0 || a->via.str.ptr == b->via.str.ptr);
	case MSGPACK_OBJECT_EXT:
		return a->via.ext.type == b->via.ext.type
		    && a->via.ext.size == b->via.ext.size
		    && (a->via.ext.size == 0 || a->via.ext.ptr == b->via.ext.ptr);
	case MSGPACK_OBJECT_ARRAY:
		if (a->via.array.size != b->via.array.size)
			return false;
		for (uint32_t i = 0; i < a->via.array.size; i++)
			if (!obj_same(&a->via.array.ptr[i], &b->via.array.ptr[i]))
				return false;
		return true;
	case MSGPACK_OBJECT_MAP:
		if (a->via.map.size != b->via.map.size)
			return false;
		for (uint32_t i = 0; i < a->via.map.size; i++)
			if (!obj_same(&a->via.map.ptr[i].key, &b->via.map.ptr[i].key)
			    || !obj_same(&a->via.map.ptr[i].val,
			        &b->via.map.ptr[i].val))
				return false;
		return true;
	}
	return false;
}

/* mpraw_object against msgpack_unpack on random values of every type
 * byte, cut short, with a byte changed or one appended: whatever it takes
 * msgpack-c takes as the same object; whatever msgpack-c takes whole
 * within MPRAW_OBJECT_DEPTH, it takes (so the fast path is the usual
 * one); nesting past the depth goes to msgpack-c. */
static void
test_object_raw(void)
{
	size_t took = 0, deep = 0;
	for (int round = 0; round < 60000; round++) {
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		if (round % 500 == 0) { /* nesting around the depth limit */
			int d = MPRAW_OBJECT_DEPTH - 2 + (int) (jrand() % 5);
			for (int i = 0; i < d; i++)
				msgpack_sbuffer_write(&sb, "\x91", 1);
			msgpack_sbuffer_write(&sb, "\x01", 1);
		} else {
			raw_random(&sb, (int) (jrand() % 4));
		}
		switch (jrand() % 4) {
		case 0: /* cut short */
			if (sb.size > 1)
				sb.size = (size_t) (jrand() % sb.size);
			break;
		case 1: /* one byte changed */
			sb.data[jrand() % sb.size] = (char) jrand();
			break;
		case 2: /* a byte after the value */
			msgpack_sbuffer_write(&sb, "\x00", 1);
			break;
		default:
			break;
		}
		msgpack_zone z1, z2;
		CHECK(msgpack_zone_init(&z1, 256));
		CHECK(msgpack_zone_init(&z2, 256));
		msgpack_object a, b;
		size_t         off = 0;
		bool           mine = mpraw_object(sb.data, sb.size, &z1, &a);
		/* msgpack-c only on bytes whose counts the bytes can hold (as
		 * the daemon does): it would allocate what a lying count
		 * claims first, which ASan refuses */
		char                  why[64];
		msgpack_unpack_return ur = MSGPACK_UNPACK_PARSE_ERROR;
		if (mpraw_check(sb.data, sb.size, 32, "value", why, sizeof(why)))
			ur = msgpack_unpack(sb.data, sb.size, &off, &z2, &b);
		bool theirs = ur == MSGPACK_UNPACK_SUCCESS && off == sb.size;
		if (mine && (!theirs || !obj_same(&a, &b))) {
			fprintf(stderr, "round %d: mpraw_object took what "
			                "msgpack-c reads otherwise (%d, %zu of %zu):",
			    round, (int) ur, off, sb.size);
			for (size_t i = 0; i < sb.size; i++)
				fprintf(stderr, " %02x", (uint8_t) sb.data[i]);
			fprintf(stderr, "\n");
			exit(1);
		}
		size_t deep_at = 0;
		int    levels  = 0;
		while (deep_at < sb.size && (uint8_t) sb.data[deep_at] == 0x91)
			levels++, deep_at++;
		if (theirs && !mine && levels <= MPRAW_OBJECT_DEPTH
		    && round % 500 != 0) {
			fprintf(stderr, "round %d: mpraw_object refused what "
			                "msgpack-c reads\n", round);
			exit(1);
		}
		if (round % 500 == 0 && theirs) {
			CHECK_EQ(mine, levels <= MPRAW_OBJECT_DEPTH);
			deep++;
		}
		took += mine;
		msgpack_zone_destroy(&z1);
		msgpack_zone_destroy(&z2);
		msgpack_sbuffer_destroy(&sb);
	}
	/* most values are whole (a quarter are untouched) */
	CHECK(took > 15000);
	CHECK(deep > 20);
}

/* ev_decode against its msgpack-c reference (ev_decode_mp) on random
 * records, cut, changed and extended: the same answer and, when both
 * decode, the same view. */
static void
test_decode_fast(void)
{
	size_t same_ok = 0;
	for (int round = 0; round < 20000; round++) {
		packed ct;
		packed_init(&ct);
		pack_random_map(&ct.pk, 'c', (uint32_t) (jrand() % 5), 2);
		const msgpack_object *content = packed_root(&ct);
		ev_new                e;
		random_event(
		    &e, jrand() % 3 == 0 ? "$>" : "Deposited", content);
		packed st;
		packed_init(&st);
		CHECK_EQ(ev_encode(&st.pk, "tenant-a", 8, "account-1", 9,
		             jrand() >> (jrand() % 64), &e),
		    SL_OK);
		switch (jrand() % 4) {
		case 0:
			st.sb.size = (size_t) (jrand() % st.sb.size);
			break;
		case 1:
			st.sb.data[jrand() % st.sb.size] = (char) jrand();
			break;
		case 2:
			msgpack_sbuffer_write(&st.sb, "\xc0", 1);
			break;
		default:
			break;
		}
		/* a record changed into one with a lying count: msgpack-c
		 * (the fallback) would allocate what it claims, which ASan
		 * refuses; stored records are sluiced's own */
		char why[64];
		if (!mpraw_check(st.sb.data, st.sb.size, 32, "record", why,
		        sizeof(why))) {
			packed_free(&st);
			packed_free(&ct);
			continue;
		}
		msgpack_zone z1, z2;
		ev_view      a, b;
		CHECK(msgpack_zone_init(&z1, 1024));
		CHECK(msgpack_zone_init(&z2, 1024));
		int ra = ev_decode(st.sb.data, st.sb.size, 7, &z1, &a);
		int rb = ev_decode_mp(st.sb.data, st.sb.size, 7, &z2, &b);
		if (ra != rb) {
			fprintf(stderr, "round %d: ev_decode %d, msgpack-c %d\n",
			    round, ra, rb);
			exit(1);
		}
		if (ra == SL_OK) {
			CHECK_EQ(a.position, b.position);
			CHECK_STREQ(a.tenant, b.tenant);
			CHECK_STREQ(a.stream, b.stream);
			CHECK_EQ(a.revision, b.revision);
			CHECK(memcmp(a.id, b.id, 16) == 0);
			CHECK_STREQ(a.id_text, b.id_text);
			CHECK_STREQ(a.type, b.type);
			CHECK_EQ(a.generation, b.generation);
			CHECK_EQ(a.occurred_ns, b.occurred_ns);
			CHECK_STREQ(a.correlation_id, b.correlation_id);
			CHECK_STREQ(a.causation_id, b.causation_id);
			CHECK_EQ(a.is_public, b.is_public);
			CHECK(obj_same(&a.metadata, &b.metadata));
			CHECK(obj_same(&a.content, &b.content));
			same_ok++;
		}
		msgpack_zone_destroy(&z1);
		msgpack_zone_destroy(&z2);
		packed_free(&st);
		packed_free(&ct);
	}
	CHECK(same_ok > 5000);
	/* ev_uuid_text is libuuid's text */
	for (int i = 0; i < 10000; i++) {
		uint8_t id[16];
		char    mine[37], theirs[37];
		for (int k = 0; k < 16; k++)
			id[k] = (uint8_t) jrand();
		ev_uuid_text(id, mine);
		uuid_unparse_lower(id, theirs);
		CHECK_STREQ(mine, theirs);
	}
}

/* ---- event ids (ev_uuid_generate) ---- */

#define IDS_PER_THREAD 100000

static int
cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, 16);
}

static void *
make_ids(void *arg)
{
	uint8_t(*ids)[16] = arg;
	for (size_t i = 0; i < IDS_PER_THREAD; i++)
		ev_uuid_generate(ids[i]);
	return NULL;
}

/* Version 4 and the RFC 4122 variant on every id; no id twice across
 * two threads; a forked child does not repeat its parent's next ids. */
static void
test_uuid_generate(void)
{
	uint8_t(*ids)[16] = malloc(3 * IDS_PER_THREAD * 16);
	CHECK(ids != NULL);
	pthread_t t;
	CHECK(pthread_create(&t, NULL, make_ids, ids + IDS_PER_THREAD) == 0);
	make_ids(ids);
	CHECK(pthread_join(t, NULL) == 0);

	int fd[2];
	CHECK(pipe(fd) == 0);
	pid_t child = fork();
	CHECK(child >= 0);
	if (child == 0) { /* the child's next ids, to the parent */
		uint8_t id[16];
		for (size_t i = 0; i < IDS_PER_THREAD / 2; i++) {
			ev_uuid_generate(id);
			if (write(fd[1], id, 16) != 16)
				_exit(1);
		}
		_exit(0);
	}
	close(fd[1]);
	size_t base = 2 * IDS_PER_THREAD;
	for (size_t i = 0; i < IDS_PER_THREAD / 2; i++)
		ev_uuid_generate(ids[base + i]); /* the parent's next ones */
	size_t got = 0;
	while (got < (IDS_PER_THREAD / 2) * 16) {
		ssize_t n = read(fd[0], (uint8_t *) ids[base + IDS_PER_THREAD / 2]
		        + got,
		    (IDS_PER_THREAD / 2) * 16 - got);
		CHECK(n > 0);
		got += (size_t) n;
	}
	close(fd[0]);
	int st;
	CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st)
	    && WEXITSTATUS(st) == 0);

	size_t n = 3 * IDS_PER_THREAD;
	for (size_t i = 0; i < n; i++) {
		CHECK_EQ(ids[i][6] >> 4, 4);
		CHECK_EQ(ids[i][8] >> 6, 2);
	}
	qsort(ids, n, 16, cmp_id);
	for (size_t i = 1; i < n; i++)
		CHECK(memcmp(ids[i - 1], ids[i], 16) != 0);
	/* and the text form parses back */
	char text[37];
	uint8_t back[16];
	ev_uuid_text(ids[0], text);
	CHECK_EQ(ev_uuid_parse(text, 36, back), SL_OK);
	CHECK(memcmp(back, ids[0], 16) == 0);
	/* the text is libuuid's, byte for byte (ev_uuid_text writes it
	 * without libuuid): every generated id, and the extremes */
	char lib[37];
	memset(ids[0], 0x00, 16);
	memset(ids[1], 0xff, 16);
	for (size_t i = 0; i < n; i++) {
		ev_uuid_text(ids[i], text);
		uuid_unparse_lower(ids[i], lib);
		CHECK_STREQ(text, lib);
	}
	free(ids);
}

/* An event on the wire whose content nests deeper than mpraw_object
 * takes (MPRAW_OBJECT_DEPTH): ev_from_wire reads it through msgpack-c;
 * deeper than msgpack-c takes (32), it is refused. */
static void
test_wire_deep(void)
{
	static const int depths[] = { MPRAW_OBJECT_DEPTH + 2, 40 };
	for (size_t t = 0; t < sizeof(depths) / sizeof(depths[0]); t++) {
		int             depth = depths[t];
		msgpack_sbuffer a;
		msgpack_packer  pk;
		msgpack_sbuffer_init(&a);
		msgpack_packer_init(&pk, &a, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, 13);
		mp_pack_kv_u64(&pk, "position", 9);
		mp_pack_kv_str(&pk, "tenant", "t");
		mp_pack_kv_str(&pk, "stream", "s");
		mp_pack_kv_u64(&pk, "revision", 1);
		mp_pack_kv_str(
		    &pk, "id", "00112233-4455-6677-8899-aabbccddeeff");
		mp_pack_kv_str(&pk, "type", "T");
		mp_pack_kv_u64(&pk, "generation", 0);
		mp_pack_kv_i64(&pk, "occurred", 5);
		mp_pack_kv_str(&pk, "correlation_id", "");
		mp_pack_kv_str(&pk, "causation_id", "");
		mp_pack_kv_bool(&pk, "public", false);
		mp_pack_cstr(&pk, "metadata");
		msgpack_pack_map(&pk, 0);
		mp_pack_cstr(&pk, "content");
		for (int d = 0; d < depth; d++) {
			msgpack_pack_map(&pk, 1);
			mp_pack_cstr(&pk, "k");
		}
		msgpack_pack_uint32(&pk, 7);
		msgpack_zone zone;
		ev_view      w;
		CHECK(msgpack_zone_init(&zone, 1024));
		int rc = ev_from_wire(a.data, a.size, &zone, &w);
		if (depth > 32) {
			CHECK_EQ(rc, SL_EPROTO);
		} else {
			CHECK_EQ(rc, SL_OK);
			const msgpack_object *o = &w.content;
			for (int d = 0; d < depth; d++) {
				CHECK(o->type == MSGPACK_OBJECT_MAP
				    && o->via.map.size == 1);
				o = &o->via.map.ptr[0].val;
			}
			CHECK(o->type == MSGPACK_OBJECT_POSITIVE_INTEGER
			    && o->via.u64 == 7);
		}
		msgpack_zone_destroy(&zone);
		msgpack_sbuffer_destroy(&a);
	}
}

/* ev_from_wire takes the keys in any order, and unknown ones: an event
 * packed with its keys reversed and an unknown key first reads as the
 * same event as in ev_pack_wire's order. */
static void
test_wire_order(void)
{
	static const char *const keys[13]
	    = { "position", "tenant", "stream", "revision", "id", "type",
		      "generation", "occurred", "correlation_id",
		      "causation_id", "public", "metadata", "content" };
	msgpack_sbuffer rev, again;
	msgpack_packer  pk, apk;
	msgpack_sbuffer_init(&rev);
	msgpack_sbuffer_init(&again);
	msgpack_packer_init(&pk, &rev, msgpack_sbuffer_write);
	msgpack_packer_init(&apk, &again, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 14);
	mp_pack_kv_str(&pk, "positio", "not a key of the event");
	for (int k = 12; k >= 0; k--) {
		mp_pack_cstr(&pk, keys[k]);
		switch (k) {
		case 0:
			msgpack_pack_uint64(&pk, 77);
			break;
		case 1:
			mp_pack_cstr(&pk, "tn");
			break;
		case 2:
			mp_pack_cstr(&pk, "acc-1");
			break;
		case 3:
			msgpack_pack_uint64(&pk, 3);
			break;
		case 4:
			mp_pack_cstr(
			    &pk, "00112233-4455-6677-8899-aabbccddeeff");
			break;
		case 5:
			mp_pack_cstr(&pk, "Opened");
			break;
		case 6:
			msgpack_pack_uint64(&pk, 2);
			break;
		case 7:
			msgpack_pack_int64(&pk, -5);
			break;
		case 8:
			mp_pack_cstr(&pk, "corr");
			break;
		case 9:
			mp_pack_cstr(&pk, "caus");
			break;
		case 10:
			msgpack_pack_true(&pk);
			break;
		case 11:
			msgpack_pack_map(&pk, 1);
			mp_pack_kv_u64(&pk, "m", 1);
			break;
		default:
			msgpack_pack_map(&pk, 1);
			mp_pack_kv_str(&pk, "account_id", "acc-1");
		}
	}
	msgpack_zone zone;
	ev_view      w;
	CHECK(msgpack_zone_init(&zone, 1024));
	CHECK_EQ(ev_from_wire(rev.data, rev.size, &zone, &w), SL_OK);
	CHECK_EQ(w.position, 77);
	CHECK_STREQ(w.tenant, "tn");
	CHECK_STREQ(w.stream, "acc-1");
	CHECK_EQ(w.revision, 3);
	CHECK_STREQ(w.id_text, "00112233-4455-6677-8899-aabbccddeeff");
	CHECK_STREQ(w.type, "Opened");
	CHECK_EQ(w.generation, 2);
	CHECK_EQ(w.occurred_ns, -5);
	CHECK_STREQ(w.correlation_id, "corr");
	CHECK_STREQ(w.causation_id, "caus");
	CHECK(w.is_public);
	CHECK(w.metadata.type == MSGPACK_OBJECT_MAP
	    && w.metadata.via.map.size == 1);
	CHECK(w.content.type == MSGPACK_OBJECT_MAP
	    && w.content.via.map.size == 1);
	/* in ev_pack_wire's order: read the same */
	ev_pack_wire(&apk, &w);
	msgpack_zone    z2;
	ev_view         w2;
	msgpack_sbuffer b2;
	msgpack_packer  bpk;
	msgpack_sbuffer_init(&b2);
	msgpack_packer_init(&bpk, &b2, msgpack_sbuffer_write);
	CHECK(msgpack_zone_init(&z2, 1024));
	CHECK_EQ(ev_from_wire(again.data, again.size, &z2, &w2), SL_OK);
	ev_pack_wire(&bpk, &w2);
	CHECK(b2.size == again.size
	    && memcmp(b2.data, again.data, b2.size) == 0);
	msgpack_zone_destroy(&z2);
	msgpack_zone_destroy(&zone);
	msgpack_sbuffer_destroy(&b2);
	msgpack_sbuffer_destroy(&rev);
	msgpack_sbuffer_destroy(&again);
}

int
main(void)
{
	test_round_trip();
	test_defaults_and_wire();
	test_parse_errors();
	test_json();
	test_envelope();
	test_uuid_generate();
	test_json_text();
	test_wire_raw();
	test_encode_sbuf();
	test_wire_deep();
	test_wire_order();
	test_object_raw();
	test_decode_fast();
	return 0;
}
