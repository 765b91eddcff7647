/*
 * Maps packed before their length is known (proto/mp.h mp_map_*): the
 * count written at the end matches the pairs packed, nested maps close on
 * their own, the bytes unpack as ordinary msgpack; and the raw walk
 * (proto/mpraw.h mpraw_map / mpraw_array / mpraw_skip) steps through them
 * as msgpack-c reads them, refusing every truncation.
 */
#include <stdio.h>
#include <string.h>

#include <msgpack.h>

#include "mp.h"
#include "mpraw.h"
#include "testutil.h"

static msgpack_object
unpack(msgpack_sbuffer *sb, msgpack_unpacked *u)
{
	size_t off = 0;
	msgpack_unpacked_init(u);
	CHECK(msgpack_unpack_next(u, sb->data, sb->size, &off)
	    == MSGPACK_UNPACK_SUCCESS);
	CHECK_EQ(off, sb->size);
	return u->data;
}


/* A random value of every kind msgpack has, nested up to depth. */
static void
pack_random(msgpack_packer *pk, int depth)
{
	static const size_t lens[] = { 0, 1, 31, 32, 255, 256, 65535, 65536 };
	char                buf[70000];
	int                 k = rand() % (depth > 0 ? 14 : 12);
	size_t              n = lens[rand() % 8];
	memset(buf, 'x', sizeof(buf));
	switch (k) {
	case 0: msgpack_pack_nil(pk); break;
	case 1: rand() % 2 ? msgpack_pack_true(pk) : msgpack_pack_false(pk); break;
	case 2: msgpack_pack_uint64(pk, (uint64_t) rand() << (rand() % 40)); break;
	case 3: msgpack_pack_int64(pk, -((int64_t) rand() << (rand() % 32))); break;
	case 4: msgpack_pack_float(pk, 1.5f); break;
	case 5: msgpack_pack_double(pk, -2.25); break;
	case 6: msgpack_pack_str_with_body(pk, buf, n); break;
	case 7: msgpack_pack_bin_with_body(pk, buf, n); break;
	case 8: msgpack_pack_ext_with_body(pk, buf, (size_t) 1 << (rand() % 5), 3); break;
	case 9: msgpack_pack_ext_with_body(pk, buf, n, 5); break;
	case 10: msgpack_pack_uint8(pk, (uint8_t) rand()); break;
	case 11: msgpack_pack_int16(pk, (int16_t) -rand()); break;
	case 12: {
		int m = rand() % (rand() % 4 ? 4 : 40);
		msgpack_pack_array(pk, (size_t) m);
		for (int i = 0; i < m; i++)
			pack_random(pk, depth - 1);
		break;
	}
	default: {
		int m = rand() % (rand() % 4 ? 4 : 20);
		msgpack_pack_map(pk, (size_t) m);
		for (int i = 0; i < 2 * m; i++)
			pack_random(pk, depth - 1);
		break;
	}
	}
}

int
main(void)
{
	msgpack_sbuffer  sb;
	msgpack_packer   pk;
	msgpack_unpacked u;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

	/* empty */
	mp_map m;
	mp_map_open(&m, &pk);
	mp_map_close(&m);
	msgpack_object o = unpack(&sb, &u);
	CHECK(o.type == MSGPACK_OBJECT_MAP);
	CHECK_EQ(o.via.map.size, 0);
	msgpack_unpacked_destroy(&u);

	/* a reply with 40 pairs of every kind and a nested map */
	msgpack_sbuffer_clear(&sb);
	mp_reply_ok_open(&m, &pk);
	char key[16];
	for (int i = 0; i < 35; i++) {
		snprintf(key, sizeof(key), "k%02d", i);
		mp_map_u64(&m, key, (uint64_t) i);
	}
	mp_map_str(&m, "s", "text");
	mp_map_str(&m, "nil", NULL);
	mp_map_i64(&m, "neg", -5);
	mp_map_bool(&m, "b", true);
	mp_map_double(&m, "d", 1.5);
	mp_map inner;
	mp_map_key(&m, "inner");
	mp_map_open(&inner, &pk);
	mp_map_u64(&inner, "x", 1);
	mp_map_close(&inner);
	mp_map_close(&m);
	o = unpack(&sb, &u);
	CHECK(o.type == MSGPACK_OBJECT_MAP);
	CHECK_EQ(o.via.map.size, 2 + 35 + 5 + 1);
	uint64_t v;
	CHECK_EQ(mp_get_u64(&o, "v", &v), 0);
	CHECK_EQ(v, SL_PROTOCOL_VERSION);
	CHECK_EQ(mp_get_u64(&o, "k34", &v), 0);
	CHECK_EQ(v, 34);
	int64_t n;
	CHECK_EQ(mp_get_i64(&o, "neg", &n), 0);
	CHECK_EQ(n, -5);
	const msgpack_object *in;
	CHECK_EQ(mp_get_map(&o, "inner", &in), 0);
	CHECK_EQ(in->via.map.size, 1);
	CHECK(mp_get(&o, "nil")->type == MSGPACK_OBJECT_NIL);
	msgpack_unpacked_destroy(&u);

	/* a get_all reply: an array of 300 postponed maps */
	msgpack_sbuffer_clear(&sb);
	mp_reply_ok_open(&m, &pk);
	mp_map_key(&m, "items");
	msgpack_pack_array(&pk, 300);
	for (int i = 0; i < 300; i++) {
		mp_map it;
		mp_map_open(&it, &pk);
		snprintf(key, sizeof(key), "key-%03d", i);
		mp_map_str(&it, "key", key);
		mp_map_key(&it, "state");
		msgpack_pack_map(&pk, 3);
		mp_pack_kv_u64(&pk, "n", (uint64_t) i * 1000003u);
		mp_pack_kv_str(&pk, "s", i % 2 ? "a string of some length" : "");
		mp_pack_cstr(&pk, "l");
		msgpack_pack_array(&pk, 2);
		msgpack_pack_double(&pk, -1.25);
		msgpack_pack_nil(&pk);
		mp_map_close(&it);
	}
	mp_map_bool(&m, "more", false);
	mp_map_close(&m);
	o = unpack(&sb, &u);
	const msgpack_object *items;
	CHECK_EQ(mp_get_array(&o, "items", &items), 0);
	CHECK_EQ(items->via.array.size, 300);
	const char *ks;
	size_t      kn;
	CHECK_EQ(mp_get_str(&items->via.array.ptr[299], "key", &ks, &kn), 0);
	CHECK(kn == 7 && memcmp(ks, "key-299", 7) == 0);
	msgpack_unpacked_destroy(&u);

	/* the raw walk: the same shape, and every prefix refused */
	size_t   at = 0;
	uint64_t pairs, n_items;
	CHECK(mpraw_map(sb.data, sb.size, &at, &pairs));
	CHECK_EQ(pairs, 4);
	CHECK(!mpraw_array(sb.data, sb.size, &(size_t) { 0 }, &n_items));
	for (int i = 0; i < 2; i++) /* v, ok */
		CHECK(mpraw_skip(sb.data, sb.size, &at)
		    && mpraw_skip(sb.data, sb.size, &at));
	CHECK(mpraw_skip(sb.data, sb.size, &at)); /* "items" */
	CHECK(mpraw_array(sb.data, sb.size, &at, &n_items));
	CHECK_EQ(n_items, 300);
	for (uint64_t i = 0; i < n_items; i++)
		CHECK(mpraw_skip(sb.data, sb.size, &at));
	bool b = true;
	CHECK(mpraw_skip(sb.data, sb.size, &at)); /* "more" */
	CHECK(mpraw_bool((const unsigned char *) sb.data + at, 1, &b) && !b);
	CHECK(mpraw_skip(sb.data, sb.size, &at));
	CHECK_EQ(at, sb.size);
	CHECK(!mpraw_bool((const unsigned char *) "\xc0", 1, &b));
	for (size_t len = 0; len < sb.size; len++) {
		size_t a = 0;
		CHECK(!mpraw_skip(sb.data, len, &a));
		CHECK_EQ(a, 0);
	}
	/* a container whose count cannot fit in what is left */
	CHECK(!mpraw_map("\xdf\x00\x01\x00\x00\x01", 6, &(size_t) { 0 },
	    &pairs));
	CHECK(!mpraw_array("\xdd\x00\x00\x00\x03\x01\x02", 7,
	    &(size_t) { 0 }, &n_items));
	CHECK(mpraw_array("\xdd\x00\x00\x00\x02\x01\x02", 7,
	    &(size_t) { 0 }, &n_items));
	CHECK_EQ(n_items, 2);

	/* mpraw_skip lands where msgpack-c does, on values of every kind,
	 * and refuses every shorter length of the smaller ones */
	srand(5);
	for (int r = 0; r < 2000; r++) {
		msgpack_sbuffer_clear(&sb);
		pack_random(&pk, 3);
		pack_random(&pk, 3); /* a second value after the first */
		size_t           end1 = 0, a = 0;
		msgpack_unpacked one;
		msgpack_unpacked_init(&one);
		CHECK(msgpack_unpack_next(&one, sb.data, sb.size, &end1)
		    == MSGPACK_UNPACK_SUCCESS);
		msgpack_unpacked_destroy(&one);
		CHECK(mpraw_skip(sb.data, sb.size, &a));
		CHECK_EQ(a, end1);
		CHECK(mpraw_skip(sb.data, sb.size, &a));
		CHECK_EQ(a, sb.size);
		for (size_t len = 0; sb.size < 4096 && len < end1; len++) {
			size_t b = 0;
			CHECK(!mpraw_skip(sb.data, len, &b));
		}
	}

	msgpack_sbuffer_destroy(&sb);
	printf("mp_map_test: ok\n");
	return 0;
}
