/*
 * The API's lane classifier (api_classify, runtime/net/api.c) on raw request
 * bytes: fast ops fast, slow ops slow, get_all by its limit, an op hidden
 * behind big values slow, garbage fast (its error reply is quick). And the
 * bounded raw-msgpack checker both the API and the remote calls use
 * (proto/mpraw.c): what it refuses, with which message.
 */
#include <stdio.h>
#include <string.h>

#include <msgpack.h>

#include "api.h"
#include "mpraw.h"
#include "testutil.h"

static msgpack_sbuffer sb;
static msgpack_packer  pk;

static void
begin(size_t n_pairs)
{
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_map(&pk, n_pairs);
}

static void
kv_str(const char *k, const char *v)
{
	msgpack_pack_str_with_body(&pk, k, strlen(k));
	msgpack_pack_str_with_body(&pk, v, strlen(v));
}

static void
kv_u64(const char *k, uint64_t v)
{
	msgpack_pack_str_with_body(&pk, k, strlen(k));
	msgpack_pack_uint64(&pk, v);
}

/* {"v":1, "op":op} */
static server_lane
op_lane(const char *op)
{
	begin(2);
	kv_u64("v", 1);
	kv_str("op", op);
	return api_classify(sb.data, sb.size);
}

/* {"v":1, "op":"get_all", "limit":limit} (no limit when limit < 0) */
static server_lane
get_all_lane(long long limit)
{
	begin(limit < 0 ? 4 : 5);
	kv_u64("v", 1);
	kv_str("op", "get_all");
	kv_str("tenant", "acme");
	kv_str("projection", "account_details");
	if (limit >= 0)
		kv_u64("limit", (uint64_t) limit);
	return api_classify(sb.data, sb.size);
}

static void
test_ops(void)
{
	static const char *const fast[] = { "read", "read_filter",
		"get_one", "status", "plugins", "no_such_op", NULL };
	static const char *const slow[] = { "query", "reset", "retry", "pause",
		"resume", "start", "stop", "register", NULL };
	for (size_t i = 0; fast[i] != NULL; i++)
		CHECK_EQ(op_lane(fast[i]), SERVER_LANE_FAST);
	for (size_t i = 0; slow[i] != NULL; i++)
		CHECK_EQ(op_lane(slow[i]), SERVER_LANE_SLOW);
	/* small commits and deletions: on the receive thread */
	CHECK_EQ(op_lane("commit"), SERVER_LANE_INLINE);
	CHECK_EQ(op_lane("delete_stream"), SERVER_LANE_INLINE);
	CHECK_EQ(op_lane("commi"), SERVER_LANE_FAST);
	/* a prefix or a longer name is another op */
	CHECK_EQ(op_lane("quer"), SERVER_LANE_FAST);
	CHECK_EQ(op_lane("queryx"), SERVER_LANE_FAST);

	CHECK_EQ(get_all_lane(-1), SERVER_LANE_SLOW); /* the default 1000 */
	CHECK_EQ(get_all_lane(0), SERVER_LANE_SLOW);  /* 0: the default */
	CHECK_EQ(get_all_lane(1), SERVER_LANE_FAST);
	CHECK_EQ(get_all_lane(API_FAST_GET_ALL), SERVER_LANE_FAST);
	CHECK_EQ(get_all_lane(API_FAST_GET_ALL + 1), SERVER_LANE_SLOW);
	CHECK_EQ(get_all_lane(1000000), SERVER_LANE_SLOW);

	/* op last, behind small values: found */
	begin(3);
	kv_u64("v", 1);
	kv_str("tenant", "acme");
	kv_str("op", "query");
	CHECK_EQ(api_classify(sb.data, sb.size), SERVER_LANE_SLOW);
	/* a commit whose events come before its op: the walk runs out of
	 * budget, so it cannot tell: slow (it cannot starve fast ones) */
	begin(3);
	kv_u64("v", 1);
	msgpack_pack_str_with_body(&pk, "events", 6);
	msgpack_pack_array(&pk, 100);
	for (int i = 0; i < 100; i++) {
		msgpack_pack_map(&pk, 1);
		kv_str("type", "E");
	}
	kv_str("op", "commit");
	CHECK_EQ(api_classify(sb.data, sb.size), SERVER_LANE_SLOW);
	/* ... but a big string is skipped in one step (a commit over the
	 * inline size goes to the fast lane's workers) */
	begin(3);
	kv_u64("v", 1);
	static char big[100000];
	memset(big, 'x', sizeof(big) - 1);
	kv_str("content", big);
	kv_str("op", "commit");
	CHECK_EQ(api_classify(sb.data, sb.size), SERVER_LANE_FAST);
}

static void
test_garbage(void)
{
	/* nothing, not msgpack, not a map, no op, op not a string,
	 * truncated: all fast (answered EPROTO at once) */
	CHECK_EQ(api_classify("", 0), SERVER_LANE_FAST);
	CHECK_EQ(api_classify("\xc1\xc1", 2), SERVER_LANE_FAST);
	CHECK_EQ(api_classify("\x93\x01\x02\x03", 4), SERVER_LANE_FAST);
	begin(1);
	kv_u64("v", 1);
	CHECK_EQ(api_classify(sb.data, sb.size), SERVER_LANE_FAST);
	begin(2);
	kv_u64("v", 1);
	kv_u64("op", 7);
	CHECK_EQ(api_classify(sb.data, sb.size), SERVER_LANE_FAST);
	op_lane("query");
	CHECK_EQ(api_classify(sb.data, sb.size - 3), SERVER_LANE_FAST);
	/* a map claiming 2^32-1 pairs in 5 bytes */
	CHECK_EQ(api_classify("\xdf\xff\xff\xff\xff", 5), SERVER_LANE_FAST);
}

static void
check_refused(const void *p, size_t len, const char *why)
{
	char err[160] = "";
	CHECK(!mpraw_check(p, len, 32, "request map", err, sizeof(err)));
	if (strstr(err, why) == NULL) {
		fprintf(stderr, "expected '%s' in '%s'\n", why, err);
		CHECK(0);
	}
}

static void
test_check(void)
{
	char err[160];
	op_lane("status");
	CHECK(mpraw_check(
	    sb.data, sb.size, 32, "request map", err, sizeof(err)));
	check_refused(sb.data, sb.size - 1, "truncated msgpack at byte");
	check_refused(
	    "\x81\xc1\x01", 3, "invalid msgpack byte 0xc1 at byte 1");
	check_refused("\xdd\xff\xff\xff\xff\x01", 6,
	    "msgpack array at byte 5 claims more elements");
	check_refused("\x81\x01\x02\x03", 4, "1 bytes after the request map");
	check_refused("\xdb\xff\xff\xff\xff", 5, "truncated msgpack");
	/* 40 nested arrays */
	unsigned char deep[41];
	memset(deep, 0x91, 40);
	deep[40] = 0x01;
	check_refused(deep, sizeof(deep), "msgpack nested deeper than 32");
	CHECK(mpraw_check(
	    deep + 10, sizeof(deep) - 10, 32, "x", err, sizeof(err)));
}

int
main(void)
{
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	test_ops();
	test_garbage();
	test_check();
	msgpack_sbuffer_destroy(&sb);
	fprintf(stderr, "api_classify_test: ok\n");
	return 0;
}
