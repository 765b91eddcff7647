/*
 * Maps packed before their length is known (proto/mp.h mp_map_*): the
 * count written at the end matches the pairs packed, nested maps close
 * on their own, and the bytes unpack as ordinary msgpack maps.
 */
#include <stdio.h>
#include <string.h>

#include <msgpack.h>

#include "mp.h"
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

	msgpack_sbuffer_destroy(&sb);
	printf("mp_map_test: ok\n");
	return 0;
}
