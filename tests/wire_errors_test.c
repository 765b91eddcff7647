/*
 * Proves that every bad request over the wire gets exactly one error reply
 * with the right code, changes nothing in the log, and that the server goes
 * on serving: a raw NNG req0 socket against a real runtime. The input
 * rules too: a NUL byte in any string of a commit is EINVAL naming the
 * field (also when the store is handed one directly), a key twice in any
 * map of any op's request is EPROTO naming the key, and the log's bytes
 * are unchanged after them.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include <sluice/errors.h>

#include "api_fixture.h"
#include "fnv.h"
#include "mp.h"
#include "store_testutil.h"

static nng_socket sock;

/* Send raw bytes; return the decoded reply (zone freed by the caller). */
static msgpack_object
roundtrip(const void *data, size_t len, msgpack_zone *zone, nng_msg **keep)
{
	nng_msg       *m;
	msgpack_object o;
	size_t         off = 0;

	CHECK_EQ(nng_msg_alloc(&m, len), 0);
	if (len > 0)
		memcpy(nng_msg_body(m), data, len);
	CHECK_EQ(nng_sendmsg(sock, m, 0), 0);
	CHECK_EQ(nng_recvmsg(sock, keep, 0), 0);
	CHECK_EQ(msgpack_unpack(
	             nng_msg_body(*keep), nng_msg_len(*keep), &off, zone, &o),
	    MSGPACK_UNPACK_SUCCESS);
	CHECK(o.type == MSGPACK_OBJECT_MAP);
	return o;
}

/* Send raw bytes, expect an error reply with this code and, unless
 * NULL, a message holding msg. */
static void
expect_error_msg(
    const void *data, size_t len, int code, const char *what, const char *msg)
{
	msgpack_zone   zone;
	nng_msg       *rep;
	msgpack_object o;
	uint64_t       v, got;
	bool           ok = true;
	const char    *s;
	size_t         n;

	msgpack_zone_init(&zone, 1024);
	o = roundtrip(data, len, &zone, &rep);
	CHECK_EQ(mp_get_u64(&o, "v", &v), 0);
	CHECK_EQ(v, 1);
	CHECK_EQ(mp_get_bool(&o, "ok", &ok), 0);
	CHECK(!ok);
	CHECK_EQ(mp_get_u64(&o, "code", &got), 0);
	if ((int) got != code) {
		mp_get_str(&o, "message", &s, &n);
		fprintf(stderr, "%s: got %s (%.*s), want %s\n", what,
		    sl_errname((int) got), (int) n, s, sl_errname(code));
		exit(1);
	}
	CHECK_EQ(mp_get_str(&o, "error", &s, &n), 0);
	CHECK(n == strlen(sl_errname(code))
	    && memcmp(s, sl_errname(code), n) == 0);
	CHECK_EQ(mp_get_str(&o, "message", &s, &n), 0);
	CHECK(n > 0);
	if (msg != NULL && memmem(s, n, msg, strlen(msg)) == NULL) {
		fprintf(stderr, "%s: message '%.*s' does not say '%s'\n", what,
		    (int) n, s, msg);
		exit(1);
	}
	nng_msg_free(rep);
	msgpack_zone_destroy(&zone);
}

static void
expect_error(const void *data, size_t len, int code, const char *what)
{
	expect_error_msg(data, len, code, what, NULL);
}

/* A request packed by the caller into sb; expect an error. */
static void
expect_packed(msgpack_sbuffer *sb, int code, const char *what)
{
	expect_error(sb->data, sb->size, code, what);
	msgpack_sbuffer_clear(sb);
}

static void
expect_packed_msg(
    msgpack_sbuffer *sb, int code, const char *what, const char *msg)
{
	expect_error_msg(sb->data, sb->size, code, what, msg);
	msgpack_sbuffer_clear(sb);
}

static uint64_t
head(void)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	msgpack_zone    zone;
	nng_msg        *rep;
	msgpack_object  o;
	uint64_t        h  = 0;
	bool            ok = false;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	mp_pack_kv_u64(&pk, "v", 1);
	mp_pack_kv_str(&pk, "op", "status");
	msgpack_zone_init(&zone, 1024);
	o = roundtrip(sb.data, sb.size, &zone, &rep);
	CHECK_EQ(mp_get_bool(&o, "ok", &ok), 0);
	CHECK(ok);
	CHECK_EQ(mp_get_u64(&o, "head", &h), 0);
	nng_msg_free(rep);
	msgpack_zone_destroy(&zone);
	msgpack_sbuffer_destroy(&sb);
	return h;
}

/* Pack {"v":1,"op":"commit","tenant":..,"stream":"s-1","events":[n x
 * {"type":"T","content":{"k":content}}]} with content a string of size
 * bytes. */
static void
pack_commit(msgpack_packer *pk, const char *tenant, size_t n, size_t size)
{
	static char big[300000];

	memset(big, 'x', sizeof(big));
	msgpack_pack_map(pk, 5);
	mp_pack_kv_u64(pk, "v", 1);
	mp_pack_kv_str(pk, "op", "commit");
	mp_pack_kv_str(pk, "tenant", tenant);
	mp_pack_kv_str(pk, "stream", "s-1");
	mp_pack_cstr(pk, "events");
	msgpack_pack_array(pk, n);
	for (size_t i = 0; i < n; i++) {
		msgpack_pack_map(pk, 2);
		mp_pack_kv_str(pk, "type", "T");
		mp_pack_cstr(pk, "content");
		msgpack_pack_map(pk, 1);
		mp_pack_cstr(pk, "k");
		mp_pack_strn(pk, big, size < sizeof(big) ? size : sizeof(big));
	}
}

static void
pack_head(msgpack_packer *pk, size_t n_fields, const char *op)
{
	msgpack_pack_map(pk, 2 + n_fields);
	mp_pack_kv_u64(pk, "v", 1);
	mp_pack_kv_str(pk, "op", op);
}

/* ---- input rules (issue 15): NUL bytes, keys twice ---- */

/* store_scan callback: the log's records into an FNV-1a hash. */
static int
digest_one(void *arg, uint64_t position, const void *data, size_t len)
{
	uint64_t *h = arg;
	*h          = fnv1a(*h, &position, sizeof(position));
	*h          = fnv1a(*h, data, len);
	return 0;
}

/* Every byte of the log, as one hash: "unchanged" means unchanged. */
static uint64_t
log_digest(void)
{
	uint64_t h = FNV1A_OFFSET;
	CHECK_EQ(store_scan(fx_rt->store, 0, SIZE_MAX, digest_one, &h, NULL),
	    SL_OK);
	return h;
}

/*
 * A commit of n events {"type":"T","content":{}} to tenant/stream (tl, sl
 * bytes); the last one has field = val (vlen bytes) too, or in place of
 * its type when field is "type".
 */
static void
pack_commit_with(msgpack_packer *pk, const char *tenant, size_t tl,
    const char *stream, size_t sl, size_t n, const char *field,
    const char *val, size_t vlen)
{
	pack_head(pk, 3, "commit");
	mp_pack_cstr(pk, "tenant");
	mp_pack_strn(pk, tenant, tl);
	mp_pack_cstr(pk, "stream");
	mp_pack_strn(pk, stream, sl);
	mp_pack_cstr(pk, "events");
	msgpack_pack_array(pk, n);
	for (size_t i = 0; i < n; i++) {
		bool last = i == n - 1 && field != NULL;
		bool type = last && strcmp(field, "type") == 0;
		msgpack_pack_map(pk, last && !type ? 3 : 2);
		mp_pack_cstr(pk, "type");
		if (type)
			mp_pack_strn(pk, val, vlen);
		else
			mp_pack_cstr(pk, "T");
		mp_pack_cstr(pk, "content");
		msgpack_pack_map(pk, 0);
		if (last && !type) {
			mp_pack_cstr(pk, field);
			mp_pack_strn(pk, val, vlen);
		}
	}
}

#define NUL_TYPE "DebitPerformed\0NotReally"
#define LEN(s)   (sizeof(s) - 1)

/* A NUL byte in any string of a commit: EINVAL naming the field. */
static void
refuse_nul_bytes(msgpack_sbuffer *sb, msgpack_packer *pk)
{
	static const char t[] = FX_TENANT;
	pack_commit_with(
	    pk, t, LEN(t), "acc-1", 5, 1, "type", NUL_TYPE, LEN(NUL_TYPE));
	expect_packed_msg(sb, SL_EINVAL, "NUL in type",
	    "events[0]: field 'type' contains a NUL byte");
	/* in a batch, after good events: none is written */
	pack_commit_with(
	    pk, t, LEN(t), "acc-1", 5, 3, "type", NUL_TYPE, LEN(NUL_TYPE));
	expect_packed_msg(sb, SL_EINVAL, "NUL in a batch's type",
	    "events[2]: field 'type' contains a NUL byte");
	pack_commit_with(
	    pk, t, LEN(t), "acc-1", 5, 2, "correlation_id", "c-1\0x", 5);
	expect_packed_msg(sb, SL_EINVAL, "NUL in correlation_id",
	    "events[1]: field 'correlation_id' contains a NUL byte");
	pack_commit_with(
	    pk, t, LEN(t), "acc-1", 5, 1, "causation_id", "\0", 1);
	expect_packed_msg(sb, SL_EINVAL, "NUL in causation_id",
	    "field 'causation_id' contains a NUL byte");
	pack_commit_with(pk, t, LEN(t), "acc-1", 5, 1, "id",
	    "8a2f3c1e-5b7d-4e9a-9c11-2d4e6f8a0b1\0", 36);
	expect_packed_msg(sb, SL_EINVAL, "NUL in id", "field 'id'");
	pack_commit_with(pk, t, LEN(t), "acc-1\0x", 7, 1, NULL, NULL, 0);
	expect_packed_msg(sb, SL_EINVAL, "NUL in stream",
	    "field 'stream' contains a NUL byte");
	pack_commit_with(pk, "acme\0x", 6, "acc-1", 5, 1, NULL, NULL, 0);
	expect_packed_msg(sb, SL_EINVAL, "NUL in tenant",
	    "field 'tenant' contains a NUL byte");

	/* the store refuses them too, from any writer in the daemon */
	tev          ev;
	store_commit c;
	tev_init(&ev, "T", "{}");
	ev.e.type     = NUL_TYPE;
	ev.e.type_len = LEN(NUL_TYPE);
	tev_commit_init(&c, FX_TENANT, "acc-1", 5, STORE_EXPECT_ANY, &ev.e, 1);
	CHECK_EQ(store_commit_wait(fx_rt->store, &c), SL_EINVAL);
	CHECK(strstr(c.message, "field 'type' contains a NUL byte") != NULL);
	ev.e.type          = "T";
	ev.e.type_len      = 1;
	ev.e.causation_id  = "x\0y";
	ev.e.causation_len = 3;
	CHECK_EQ(store_commit_wait(fx_rt->store, &c), SL_EINVAL);
	CHECK(strstr(c.message, "'causation_id' contains a NUL") != NULL);
	tev_free(&ev);
}

/* Whether account_details' processor is paused (status). */
static bool
ad_paused(void)
{
	msgpack_sbuffer       sb;
	msgpack_packer        pk;
	msgpack_zone          zone;
	nng_msg              *rep;
	const msgpack_object *procs;
	bool                  paused = false, seen = false;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	pack_head(&pk, 0, "status");
	msgpack_zone_init(&zone, 4096);
	msgpack_object o = roundtrip(sb.data, sb.size, &zone, &rep);
	CHECK_EQ(mp_get_array(&o, "processors", &procs), SL_OK);
	for (uint32_t i = 0; i < procs->via.array.size; i++) {
		const msgpack_object *p = &procs->via.array.ptr[i];
		if (!mp_str_eq(mp_get(p, "name"), FX_PROJECTION))
			continue;
		CHECK_EQ(mp_get_bool(p, "paused", &paused), SL_OK);
		seen = true;
	}
	CHECK(seen);
	nng_msg_free(rep);
	msgpack_zone_destroy(&zone);
	msgpack_sbuffer_destroy(&sb);
	return paused;
}

/* Pack keys "k0".."k<n-1>", each with its number: the pairs of a map
 * whose header the caller packed. */
static void
pack_k_keys(msgpack_packer *pk, int n)
{
	char key[16];
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		mp_pack_cstr(pk, key);
		msgpack_pack_int(pk, i);
	}
}

/* A commit to acc-1 of one event of type T whose content the caller
 * packs next. */
static void
pack_commit_content(msgpack_packer *pk)
{
	pack_head(pk, 3, "commit");
	mp_pack_kv_str(pk, "tenant", FX_TENANT);
	mp_pack_kv_str(pk, "stream", "acc-1");
	mp_pack_cstr(pk, "events");
	msgpack_pack_array(pk, 1);
	msgpack_pack_map(pk, 2);
	mp_pack_kv_str(pk, "type", "T");
	mp_pack_cstr(pk, "content");
}

/* A key twice in any map of a request, for every op: EPROTO naming it. */
static void
refuse_duplicate_keys(msgpack_sbuffer *sb, msgpack_packer *pk)
{
	static const char *const ops[]
	    = { "commit", "read", "read_filter", "get_one", "get_all",
		      "status", "plugins", "reset", "retry", "pause", "resume",
		      "start", "stop", "register", "query", "no_such_op" };
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		pack_head(pk, 2, ops[i]);
		mp_pack_kv_str(pk, "tenant", FX_TENANT);
		mp_pack_kv_str(pk, "tenant", "other");
		expect_packed_msg(sb, SL_EPROTO, ops[i],
		    "request map: key 'tenant' appears twice");
	}
	pack_head(pk, 1, "status");
	mp_pack_kv_str(pk, "op", "commit");
	expect_packed_msg(sb, SL_EPROTO, "op twice", "key 'op' appears twice");
	msgpack_pack_map(pk, 3);
	mp_pack_kv_u64(pk, "v", 1);
	mp_pack_kv_u64(pk, "v", 2);
	mp_pack_kv_str(pk, "op", "status");
	expect_packed_msg(sb, SL_EPROTO, "v twice", "key 'v' appears twice");

	/* an operator command is not taken either */
	CHECK(!ad_paused());
	pack_head(pk, 2, "pause");
	mp_pack_kv_str(pk, "projection", FX_PROJECTION);
	mp_pack_kv_str(pk, "projection", "nothing");
	expect_packed_msg(sb, SL_EPROTO, "pause, projection twice",
	    "key 'projection' appears twice");
	CHECK(!ad_paused());

	/* in an event, its content, its metadata, at any depth */
	pack_head(pk, 3, "commit");
	mp_pack_kv_str(pk, "tenant", FX_TENANT);
	mp_pack_kv_str(pk, "stream", "acc-1");
	mp_pack_cstr(pk, "events");
	msgpack_pack_array(pk, 2);
	msgpack_pack_map(pk, 2);
	mp_pack_kv_str(pk, "type", "T");
	mp_pack_cstr(pk, "content");
	msgpack_pack_map(pk, 0);
	msgpack_pack_map(pk, 3);
	mp_pack_kv_str(pk, "type", "DebitPerformed");
	mp_pack_kv_str(pk, "type", "WithdrawalPerformed");
	mp_pack_cstr(pk, "content");
	msgpack_pack_map(pk, 0);
	expect_packed_msg(sb, SL_EPROTO, "type twice",
	    "events[1]: key 'type' appears twice");

	pack_commit_content(pk);
	msgpack_pack_map(pk, 2);
	mp_pack_kv_u64(pk, "amount", 1);
	mp_pack_kv_u64(pk, "amount", 1000000);
	expect_packed_msg(sb, SL_EPROTO, "content key twice",
	    "events[0].content: key 'amount' appears twice");

	pack_commit_content(pk);
	msgpack_pack_map(pk, 1);
	mp_pack_cstr(pk, "account");
	msgpack_pack_map(pk, 2);
	mp_pack_kv_str(pk, "id", "acc-1");
	mp_pack_kv_str(pk, "id", "acc-2");
	expect_packed_msg(sb, SL_EPROTO, "nested key twice",
	    "events[0].content.account: key 'id' appears twice");

	/* a big map (sorted, not pair by pair) */
	pack_commit_content(pk);
	msgpack_pack_map(pk, 41);
	pack_k_keys(pk, 40);
	mp_pack_kv_u64(pk, "k27", 1);
	expect_packed_msg(sb, SL_EPROTO, "key twice in 41",
	    "events[0].content: key 'k27' appears twice");

	/* integer keys by their number */
	pack_commit_content(pk);
	msgpack_pack_map(pk, 2);
	msgpack_pack_uint8(pk, 7);
	msgpack_pack_nil(pk);
	msgpack_pack_uint64(pk, 7);
	msgpack_pack_nil(pk);
	expect_packed_msg(sb, SL_EPROTO, "integer key twice",
	    "events[0].content: key '7' appears twice");

	pack_head(pk, 3, "commit");
	mp_pack_kv_str(pk, "tenant", FX_TENANT);
	mp_pack_kv_str(pk, "stream", "acc-1");
	mp_pack_cstr(pk, "events");
	msgpack_pack_array(pk, 1);
	msgpack_pack_map(pk, 3);
	mp_pack_kv_str(pk, "type", "T");
	mp_pack_cstr(pk, "content");
	msgpack_pack_map(pk, 0);
	mp_pack_cstr(pk, "metadata");
	msgpack_pack_map(pk, 2);
	mp_pack_kv_str(pk, "$correlationId", "a");
	mp_pack_kv_str(pk, "$correlationId", "b");
	expect_packed_msg(sb, SL_EPROTO, "metadata key twice",
	    "events[0].metadata: key '$correlationId' appears twice");
}

/* Keys that only look alike are different keys: the commit goes in. */
static void
accept_distinct_keys(msgpack_sbuffer *sb, msgpack_packer *pk)
{
	msgpack_zone zone;
	nng_msg     *rep;
	bool         ok = false;
	pack_commit_content(pk);
	msgpack_pack_map(pk, 44);
	pack_k_keys(pk, 40);
	mp_pack_kv_u64(pk, "1", 1); /* "1" beside 1 */
	msgpack_pack_uint8(pk, 1);
	msgpack_pack_uint8(pk, 1);
	mp_pack_kv_u64(pk, "k", 1); /* "k" beside "k\0" */
	mp_pack_strn(pk, "k\0", 2);
	msgpack_pack_uint8(pk, 1);
	msgpack_zone_init(&zone, 1024);
	msgpack_object o = roundtrip(sb->data, sb->size, &zone, &rep);
	CHECK_EQ(mp_get_bool(&o, "ok", &ok), 0);
	CHECK(ok);
	nng_msg_free(rep);
	msgpack_zone_destroy(&zone);
	msgpack_sbuffer_clear(sb);
}

int
main(void)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	uint64_t        h0;

	fx_start("limits:\n"
	         "  max_request_bytes: 64KiB\n"
	         "  max_events_per_commit: 5\n"
	         "  api_workers: 4\n");

	CHECK_EQ(nng_req0_open(&sock), 0);
	CHECK_EQ(nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 5000), 0);
	CHECK_EQ(nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, 5000), 0);
	CHECK_EQ(nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ, 0), 0);
	CHECK_EQ(nng_dial(sock, fx_url, NULL, 0), 0);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

	/* a first event, so "unchanged" means something */
	pack_commit(&pk, FX_TENANT, 1, 10);
	{
		msgpack_zone zone;
		nng_msg     *rep;
		bool         ok = false;
		msgpack_zone_init(&zone, 1024);
		msgpack_object o = roundtrip(sb.data, sb.size, &zone, &rep);
		CHECK_EQ(mp_get_bool(&o, "ok", &ok), 0);
		CHECK(ok);
		nng_msg_free(rep);
		msgpack_zone_destroy(&zone);
		msgpack_sbuffer_clear(&sb);
	}
	h0 = head();
	CHECK_EQ(h0, 1);

	/* --- not msgpack at all, or not a whole message --- */
	expect_error("", 0, SL_EPROTO, "empty");
	expect_error("\xc1\xc1garbage", 9, SL_EPROTO, "garbage");
	expect_error("hello, world", 12, SL_EPROTO, "text");
	pack_head(&pk, 0, "status");
	expect_error(sb.data, sb.size - 3, SL_EPROTO, "truncated");
	msgpack_sbuffer_write(&sb, "\x01", 1);
	expect_packed(&sb, SL_EPROTO, "trailing bytes");
	expect_error("\xdd\xff\xff\xff\xff", 5, SL_EPROTO,
	    "array claiming 4G elements");
	expect_error("\xdf\x00\x10\x00\x00\xa1v\x01", 8, SL_EPROTO,
	    "map claiming 1M pairs");
	expect_error("\xdb\x00\x00\xff\xff"
	             "abc",
	    8, SL_EPROTO, "string longer than the message");
	{
		char deep[64];
		memset(deep, 0x91, 40); /* 40 nested one-element arrays */
		deep[40] = 0x01;
		expect_error(deep, 41, SL_EPROTO, "nested 40 deep");
	}

	/* --- not a request map --- */
	msgpack_pack_array(&pk, 2);
	msgpack_pack_int(&pk, 1);
	mp_pack_cstr(&pk, "status");
	expect_packed(&sb, SL_EPROTO, "array");
	msgpack_pack_map(&pk, 1);
	mp_pack_kv_str(&pk, "op", "status");
	expect_packed(&sb, SL_EPROTO, "no v");
	msgpack_pack_map(&pk, 2);
	mp_pack_kv_str(&pk, "v", "1");
	mp_pack_kv_str(&pk, "op", "status");
	expect_packed(&sb, SL_EPROTO, "v as string");
	msgpack_pack_map(&pk, 2);
	mp_pack_kv_u64(&pk, "v", 2);
	mp_pack_kv_str(&pk, "op", "status");
	expect_packed(&sb, SL_EVERSION, "v 2");
	msgpack_pack_map(&pk, 1);
	mp_pack_kv_u64(&pk, "v", 1);
	expect_packed(&sb, SL_EPROTO, "no op");
	msgpack_pack_map(&pk, 2);
	mp_pack_kv_u64(&pk, "v", 1);
	mp_pack_kv_u64(&pk, "op", 7);
	expect_packed(&sb, SL_EPROTO, "op as int");
	pack_head(&pk, 0, "stats");
	expect_packed(&sb, SL_EUNKNOWNOP, "unknown op");

	/* --- commit fields --- */
	pack_head(&pk, 3, "commit");
	mp_pack_kv_u64(&pk, "tenant", 5);
	mp_pack_kv_str(&pk, "stream", "s");
	mp_pack_cstr(&pk, "events");
	msgpack_pack_array(&pk, 0);
	expect_packed(&sb, SL_EPROTO, "tenant as int");

	pack_head(&pk, 2, "commit");
	mp_pack_kv_str(&pk, "stream", "s");
	mp_pack_cstr(&pk, "events");
	msgpack_pack_array(&pk, 0);
	expect_packed(&sb, SL_EINVAL, "no tenant");

	pack_commit(&pk, "nobody", 1, 10);
	expect_packed(&sb, SL_ENOTFOUND, "unknown tenant");

	pack_head(&pk, 3, "commit");
	mp_pack_kv_str(&pk, "tenant", FX_TENANT);
	mp_pack_kv_str(&pk, "stream", "s");
	mp_pack_kv_str(&pk, "events", "many");
	expect_packed(&sb, SL_EPROTO, "events not an array");

	pack_head(&pk, 3, "commit");
	mp_pack_kv_str(&pk, "tenant", FX_TENANT);
	mp_pack_kv_str(&pk, "stream", "s");
	mp_pack_cstr(&pk, "events");
	msgpack_pack_array(&pk, 0);
	expect_packed(&sb, SL_EINVAL, "no events");

	pack_head(&pk, 3, "commit");
	mp_pack_kv_str(&pk, "tenant", FX_TENANT);
	mp_pack_kv_str(&pk, "stream", "s");
	mp_pack_cstr(&pk, "events");
	msgpack_pack_array(&pk, 2);
	msgpack_pack_map(&pk, 2); /* a good one first: all or nothing */
	mp_pack_kv_str(&pk, "type", "T");
	mp_pack_cstr(&pk, "content");
	msgpack_pack_map(&pk, 0);
	msgpack_pack_map(&pk, 2);
	mp_pack_kv_str(&pk, "type", "T");
	mp_pack_kv_str(&pk, "content", "{}");
	expect_packed(&sb, SL_EPROTO, "content not a map");

	pack_head(&pk, 3, "commit");
	mp_pack_kv_str(&pk, "tenant", FX_TENANT);
	mp_pack_kv_str(&pk, "stream", "s");
	mp_pack_cstr(&pk, "events");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_int(&pk, 3);
	expect_packed(&sb, SL_EPROTO, "event not a map");

	pack_head(&pk, 4, "commit");
	mp_pack_kv_str(&pk, "tenant", FX_TENANT);
	mp_pack_kv_str(&pk, "stream", "s");
	mp_pack_kv_bool(&pk, "expected", true);
	mp_pack_cstr(&pk, "events");
	msgpack_pack_array(&pk, 0);
	expect_packed(&sb, SL_EPROTO, "expected as bool");

	pack_head(&pk, 4, "commit");
	mp_pack_kv_str(&pk, "tenant", FX_TENANT);
	mp_pack_kv_str(&pk, "stream", "s");
	mp_pack_kv_str(&pk, "expected", "maybe");
	mp_pack_cstr(&pk, "events");
	msgpack_pack_array(&pk, 0);
	expect_packed(&sb, SL_EPROTO, "expected as other string");

	pack_head(&pk, 3, "commit");
	mp_pack_kv_str(&pk, "tenant", FX_TENANT);
	mp_pack_kv_str(&pk, "stream", "$all");
	mp_pack_cstr(&pk, "events");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 2);
	mp_pack_kv_str(&pk, "type", "T");
	mp_pack_cstr(&pk, "content");
	msgpack_pack_map(&pk, 0);
	expect_packed(&sb, SL_EINVAL, "system stream");

	pack_commit(&pk, FX_TENANT, 6, 10);
	expect_packed(&sb, SL_ETOOBIG, "over max_events_per_commit");

	/* over max_request_bytes (64 KiB) but within NNG's 2x: a reply */
	pack_commit(&pk, FX_TENANT, 1, 100000);
	CHECK(sb.size > 65536 && sb.size < 2 * 65536);
	expect_packed(&sb, SL_ETOOBIG, "over max_request_bytes");

	/* --- other ops --- */
	pack_head(&pk, 1, "read");
	mp_pack_kv_str(&pk, "from", "0");
	expect_packed(&sb, SL_EPROTO, "read from as string");
	pack_head(&pk, 1, "read");
	mp_pack_kv_str(&pk, "tenant", FX_TENANT);
	expect_packed(&sb, SL_EINVAL, "read tenant without stream");
	pack_head(&pk, 2, "read");
	mp_pack_kv_str(&pk, "tenant", "nobody");
	mp_pack_kv_str(&pk, "stream", "s");
	expect_packed(&sb, SL_ENOTFOUND, "read unknown tenant");
	pack_head(&pk, 3, "get_one");
	mp_pack_kv_str(&pk, "tenant", FX_TENANT);
	mp_pack_kv_str(&pk, "projection", "no-such-projection");
	mp_pack_kv_str(&pk, "key", "k");
	expect_packed(&sb, SL_ENOTFOUND, "get_one unknown projection");
	pack_head(&pk, 2, "get_one");
	mp_pack_kv_str(&pk, "tenant", FX_TENANT);
	mp_pack_kv_str(&pk, "projection", FX_PROJECTION);
	expect_packed(&sb, SL_EINVAL, "get_one without key");
	pack_head(&pk, 3, "get_one");
	mp_pack_kv_str(&pk, "tenant", FX_TENANT);
	mp_pack_kv_str(&pk, "projection", FX_PROJECTION);
	mp_pack_cstr(&pk, "key");
	msgpack_pack_map(&pk, 0);
	expect_packed(&sb, SL_EPROTO, "get_one key as map");
	pack_head(&pk, 3, "get_all");
	mp_pack_kv_str(&pk, "tenant", FX_TENANT);
	mp_pack_kv_str(&pk, "projection", FX_PROJECTION);
	mp_pack_kv_i64(&pk, "limit", -1);
	expect_packed(&sb, SL_EPROTO, "get_all negative limit");

	/* nothing above was written */
	CHECK_EQ(head(), h0);

	/* --- input rules: nothing written, to the byte --- */
	{
		uint64_t d0 = log_digest();
		refuse_nul_bytes(&sb, &pk);
		refuse_duplicate_keys(&sb, &pk);
		CHECK_EQ(head(), h0);
		CHECK(log_digest() == d0);
		accept_distinct_keys(&sb, &pk);
		CHECK_EQ(head(), h0 + 1);
		h0 = head();
	}

	/* Far over the limit (more than 2x): NNG drops the connection
	 * without a reply; the client times out, reconnects, and the
	 * server still serves. */
	pack_commit(&pk, FX_TENANT, 1, 200000);
	{
		nng_msg *m, *rep = NULL;
		CHECK_EQ(nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 300), 0);
		CHECK_EQ(nng_msg_alloc(&m, sb.size), 0);
		memcpy(nng_msg_body(m), sb.data, sb.size);
		CHECK_EQ(nng_sendmsg(sock, m, 0), 0);
		CHECK_EQ(nng_recvmsg(sock, &rep, 0), NNG_ETIMEDOUT);
		CHECK_EQ(nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 5000), 0);
		msgpack_sbuffer_clear(&sb);
	}

	/* and the server goes on: a valid commit, then status */
	pack_commit(&pk, FX_TENANT, 2, 10);
	{
		msgpack_zone zone;
		nng_msg     *rep;
		bool         ok    = false;
		uint64_t     first = 99, count = 0;
		msgpack_zone_init(&zone, 1024);
		msgpack_object o = roundtrip(sb.data, sb.size, &zone, &rep);
		CHECK_EQ(mp_get_bool(&o, "ok", &ok), 0);
		CHECK(ok);
		CHECK_EQ(mp_get_u64(&o, "first_position", &first), 0);
		CHECK_EQ(mp_get_u64(&o, "count", &count), 0);
		CHECK_EQ(first, h0);
		CHECK_EQ(count, 2);
		nng_msg_free(rep);
		msgpack_zone_destroy(&zone);
		msgpack_sbuffer_clear(&sb);
	}
	CHECK_EQ(head(), h0 + 2);

	msgpack_sbuffer_destroy(&sb);
	nng_close(sock);
	fx_stop();
	return 0;
}
