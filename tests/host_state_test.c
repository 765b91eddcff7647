/*
 * Proves the host side of the plugin ABI: read model states round-trip
 * through msgpack (raw nested values included), the state and content
 * getters return what plugin.h promises, fail_with records the retry
 * decision (delay capped at 24 h), the Account Details example folds its
 * four event types into the expected read model, and the example and test
 * filters include, partition and fail as their files say.
 */
#include <limits.h>
#include <pthread.h>

#include "doc.h"
#include "host_testutil.h"
#include "log.h"
#include "mpraw.h"
#include "plugins.h"

static const sl_host_api *H;

/* ---- state ---- */

static void
test_state_round_trip(void)
{
	/* every kind of value, packed the way state_pack packs them */
	msgpack_sbuffer in;
	msgpack_packer  pk;
	msgpack_sbuffer_init(&in);
	msgpack_packer_init(&pk, &in, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 10);
	pack_key(&pk, "s");
	msgpack_pack_str(&pk, 5);
	msgpack_pack_str_body(&pk, "hello", 5);
	pack_key(&pk, "neg");
	msgpack_pack_int64(&pk, -5);
	pack_key(&pk, "pos");
	msgpack_pack_int64(&pk, 1234567890123LL);
	pack_key(&pk, "f");
	msgpack_pack_double(&pk, 1.5);
	pack_key(&pk, "b");
	msgpack_pack_true(&pk);
	pack_key(&pk, "n");
	msgpack_pack_nil(&pk);
	pack_key(&pk, "nested"); /* raw: {"a":[1,"two",{"x":true}]} */
	msgpack_pack_map(&pk, 1);
	pack_key(&pk, "a");
	msgpack_pack_array(&pk, 3);
	msgpack_pack_int64(&pk, 1);
	msgpack_pack_str(&pk, 3);
	msgpack_pack_str_body(&pk, "two", 3);
	msgpack_pack_map(&pk, 1);
	pack_key(&pk, "x");
	msgpack_pack_true(&pk);
	pack_key(&pk, "bin"); /* raw */
	msgpack_pack_bin(&pk, 3);
	msgpack_pack_bin_body(&pk, "\x00\x01\x02", 3);
	pack_key(&pk, "huge"); /* above INT64_MAX: kept exact as raw */
	msgpack_pack_uint64(&pk, UINT64_MAX);
	pack_key(&pk, "zero_bytes"); /* a string with a NUL inside */
	msgpack_pack_str(&pk, 3);
	msgpack_pack_str_body(&pk, "a\0b", 3);

	sl_state st;
	state_init(&st);
	CHECK_EQ(state_load(&st, in.data, in.size), SL_OK);
	CHECK_EQ(st.root.u.m.n, 10);

	const char *s;
	int64_t     i;
	double      f;
	bool        b;
	CHECK_EQ(H->state_str(&st, "s", &s), SL_OK);
	CHECK_STREQ(s, "hello");
	CHECK_EQ(H->state_i64(&st, "neg", &i), SL_OK);
	CHECK_EQ(i, -5);
	CHECK_EQ(H->state_i64(&st, "pos", &i), SL_OK);
	CHECK_EQ(i, 1234567890123LL);
	CHECK_EQ(H->state_f64(&st, "f", &f), SL_OK);
	CHECK(f == 1.5);
	CHECK_EQ(H->state_f64(&st, "pos", &f), SL_OK); /* ints read as f64 */
	CHECK(f == 1234567890123.0);
	CHECK_EQ(H->state_bool(&st, "b", &b), SL_OK);
	CHECK(b);
	/* raw and nil fields exist but have no scalar type */
	CHECK_EQ(H->state_str(&st, "nested", &s), SL_EINVAL);
	CHECK_EQ(H->state_i64(&st, "huge", &i), SL_EINVAL);
	CHECK_EQ(H->state_bool(&st, "n", &b), SL_EINVAL);
	CHECK_EQ(st.root.u.m.e[6].val.kind, DOC_RAW);
	CHECK_EQ(st.root.u.m.e[7].val.kind, DOC_RAW);
	CHECK_EQ(st.root.u.m.e[8].val.kind, DOC_RAW);
	CHECK_EQ(st.root.u.m.e[9].val.kind, DOC_STR);
	CHECK_EQ(st.root.u.m.e[9].val.u.s.len, 3);

	/* pack gives back the very same bytes */
	msgpack_sbuffer out;
	pack_state(&st, &out);
	CHECK_EQ(out.size, in.size);
	CHECK(memcmp(out.data, in.data, in.size) == 0);
	msgpack_sbuffer_destroy(&out);

	/* bad input is refused and leaves the state as it was */
	static const char not_map[]  = { (char) 0x93, 1, 2, 3 };
	static const char trailing[] = { (char) 0x80, (char) 0xc0 };
	static const char int_key[]  = { (char) 0x81, 1, 2 };
	static const char cut[]      = { (char) 0x82, (char) 0xa1, 'a' };
	CHECK_EQ(state_load(&st, not_map, sizeof(not_map)), SL_EPROTO);
	CHECK_EQ(state_load(&st, trailing, sizeof(trailing)), SL_EPROTO);
	CHECK_EQ(state_load(&st, int_key, sizeof(int_key)), SL_EPROTO);
	CHECK_EQ(state_load(&st, cut, sizeof(cut)), SL_EPROTO);
	CHECK_EQ(state_load(&st, "", 0), SL_EPROTO);
	CHECK_EQ(state_load(NULL, in.data, in.size), SL_EINVAL);
	pack_state(&st, &out);
	CHECK_EQ(out.size, in.size);
	CHECK(memcmp(out.data, in.data, in.size) == 0);
	msgpack_sbuffer_destroy(&out);

	/* an empty map empties the state */
	static const char empty[] = { (char) 0x80 };
	CHECK_EQ(state_load(&st, empty, 1), SL_OK);
	CHECK_EQ(st.root.u.m.n, 0);
	state_free(&st);
	state_free(&st); /* idempotent */
	msgpack_sbuffer_destroy(&in);
}

/* Keys of a packed state, in order, joined with ','. */
static void
state_keys(const sl_state *st, char *buf, size_t len)
{
	mp_doc d;
	pack_state(st, &d.sb);
	mpdoc_decode(&d);
	CHECK_EQ(d.up.data.type, MSGPACK_OBJECT_MAP);
	buf[0] = '\0';
	for (uint32_t i = 0; i < d.up.data.via.map.size; i++) {
		const msgpack_object *k = &d.up.data.via.map.ptr[i].key;
		size_t                n = strlen(buf);
		snprintf(buf + n, len - n, "%s%.*s", i > 0 ? "," : "",
		    (int) k->via.str.size, k->via.str.ptr);
	}
	mpdoc_free(&d);
}

static void
test_state_setters(void)
{
	sl_state st;
	char     keys[256];
	state_init(&st);
	const char *s;
	int64_t     i;
	double      f;
	bool        b;

	CHECK_EQ(H->state_set_str(&st, "name", "Ann"), SL_OK);
	CHECK_EQ(H->state_set_i64(&st, "balance", 10), SL_OK);
	CHECK_EQ(H->state_set_f64(&st, "rate", 0.25), SL_OK);
	CHECK_EQ(H->state_set_bool(&st, "open", true), SL_OK);
	CHECK_EQ(H->state_set_nil(&st, "closed_at"), SL_OK);
	state_keys(&st, keys, sizeof(keys));
	CHECK_STREQ(keys, "name,balance,rate,open,closed_at");

	/* replacing keeps the position; the type may change */
	CHECK_EQ(H->state_set_str(&st, "balance", "ten"), SL_OK);
	CHECK_EQ(H->state_i64(&st, "balance", &i), SL_EINVAL);
	CHECK_EQ(H->state_str(&st, "balance", &s), SL_OK);
	CHECK_STREQ(s, "ten");
	CHECK_EQ(H->state_set_i64(&st, "balance", -7), SL_OK);
	CHECK_EQ(H->state_i64(&st, "balance", &i), SL_OK);
	CHECK_EQ(i, -7);
	state_keys(&st, keys, sizeof(keys));
	CHECK_STREQ(keys, "name,balance,rate,open,closed_at");

	/* a value read from the state can be written back to it */
	CHECK_EQ(H->state_str(&st, "name", &s), SL_OK);
	CHECK_EQ(H->state_set_str(&st, "name", s), SL_OK);
	CHECK_EQ(H->state_str(&st, "name", &s), SL_OK);
	CHECK_STREQ(s, "Ann");

	CHECK_EQ(H->state_f64(&st, "rate", &f), SL_OK);
	CHECK(f == 0.25);
	CHECK_EQ(H->state_bool(&st, "open", &b), SL_OK);
	CHECK(b);
	CHECK_EQ(H->state_str(&st, "closed_at", &s), SL_EINVAL); /* nil */
	CHECK_EQ(H->state_str(&st, "missing", &s), SL_ENOTFOUND);
	CHECK_EQ(H->state_i64(&st, "missing", &i), SL_ENOTFOUND);
	CHECK_EQ(H->state_f64(&st, "name", &f), SL_EINVAL);
	CHECK_EQ(H->state_bool(&st, "name", &b), SL_EINVAL);

	/* remove keeps the order of the rest */
	CHECK_EQ(H->state_remove(&st, "rate"), SL_OK);
	CHECK_EQ(H->state_remove(&st, "rate"), SL_ENOTFOUND);
	CHECK_EQ(H->state_f64(&st, "rate", &f), SL_ENOTFOUND);
	state_keys(&st, keys, sizeof(keys));
	CHECK_STREQ(keys, "name,balance,open,closed_at");
	CHECK_EQ(H->state_set_i64(&st, "rate", 3), SL_OK);
	state_keys(&st, keys, sizeof(keys));
	CHECK_STREQ(keys, "name,balance,open,closed_at,rate");

	/* many fields (grows the array) */
	for (int k = 0; k < 100; k++) {
		char key[16];
		snprintf(key, sizeof(key), "k%d", k);
		CHECK_EQ(H->state_set_i64(&st, key, k), SL_OK);
	}
	CHECK_EQ(st.root.u.m.n, 105);
	CHECK_EQ(H->state_i64(&st, "k99", &i), SL_OK);
	CHECK_EQ(i, 99);

	/* NULL arguments are refused, never a crash */
	CHECK_EQ(H->state_str(NULL, "name", &s), SL_EINVAL);
	CHECK_EQ(H->state_str(&st, NULL, &s), SL_EINVAL);
	CHECK_EQ(H->state_str(&st, "name", NULL), SL_EINVAL);
	CHECK_EQ(H->state_i64(&st, "balance", NULL), SL_EINVAL);
	CHECK_EQ(H->state_f64(NULL, "rate", &f), SL_EINVAL);
	CHECK_EQ(H->state_bool(&st, NULL, &b), SL_EINVAL);
	CHECK_EQ(H->state_set_str(&st, "name", NULL), SL_EINVAL);
	CHECK_EQ(H->state_set_str(&st, NULL, "x"), SL_EINVAL);
	CHECK_EQ(H->state_set_str(NULL, "name", "x"), SL_EINVAL);
	CHECK_EQ(H->state_set_i64(NULL, "x", 1), SL_EINVAL);
	CHECK_EQ(H->state_set_f64(&st, NULL, 1.0), SL_EINVAL);
	CHECK_EQ(H->state_set_bool(&st, "", true), SL_EINVAL);
	CHECK_EQ(H->state_set_nil(NULL, "x"), SL_EINVAL);
	CHECK_EQ(H->state_remove(&st, NULL), SL_EINVAL);
	CHECK_EQ(H->state_remove(NULL, "x"), SL_EINVAL);
	CHECK_EQ(st.root.u.m.n, 105);

	/* the state packs and loads back to the same values */
	msgpack_sbuffer sb;
	pack_state(&st, &sb);
	sl_state st2;
	state_init(&st2);
	CHECK_EQ(state_load(&st2, sb.data, sb.size), SL_OK);
	CHECK_EQ(st2.root.u.m.n, 105);
	CHECK_EQ(H->state_str(&st2, "name", &s), SL_OK);
	CHECK_STREQ(s, "Ann");
	CHECK_EQ(H->state_f64(&st2, "rate", &f), SL_OK);
	CHECK(f == 3.0);
	msgpack_sbuffer_destroy(&sb);
	state_free(&st2);
	state_free(&st);
}

/* ---- paths, event fields, content ---- */

static bool
str_is(const msgpack_object *o, const char *s)
{
	return o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s)
	    && memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

static void
test_host_path(void)
{
	mp_doc d;
	mpdoc_json(&d,
	    "{\"account\":{\"id\":\"acc-1\",\"owner\":{\"name\":"
	    "\"Ann\"}},\"list\":[1,2],\"a.b\":1,\"x\":5}");
	const msgpack_object *m = &d.up.data, *o;
	o                       = host_path(m, "account.id");
	CHECK(o != NULL && str_is(o, "acc-1"));
	o = host_path(m, "account.owner.name");
	CHECK(o != NULL && o->type == MSGPACK_OBJECT_STR);
	o = host_path(m, "account");
	CHECK(o != NULL && o->type == MSGPACK_OBJECT_MAP);
	o = host_path(m, "list");
	CHECK(o != NULL && o->type == MSGPACK_OBJECT_ARRAY);
	CHECK(host_path(m, "list.0") == NULL); /* arrays are not walked */
	CHECK(host_path(m, "x.y") == NULL);    /* through a non-map */
	CHECK(host_path(m, "account.nope") == NULL);
	CHECK(host_path(m, "acc") == NULL); /* no prefix match */
	CHECK(host_path(m, "account.") == NULL);
	CHECK(host_path(m, ".account") == NULL);
	CHECK(host_path(m, "account..id") == NULL);
	CHECK(host_path(m, "") == NULL);
	CHECK(host_path(m, NULL) == NULL);
	CHECK(host_path(NULL, "x") == NULL);
	CHECK(host_path(&m->via.map.ptr[1].val, "x") == NULL); /* not a map */
	mpdoc_free(&d);
}

static void
test_event_getters(void)
{
	test_event t;
	event_make(&t, 42, "DebitPerformed", "acc-0001",
	    "{\"amount\":100,\"neg\":-3,\"ratio\":0.5,\"flag\":true,"
	    "\"account\":{\"id\":\"acc-0001\"},\"name\":\"Ann\",\"nil\":"
	    "null}");
	const sl_event *ev = &t.ev;

	CHECK_STREQ(H->event_type(ev), "DebitPerformed");
	CHECK_EQ(H->event_generation(ev), 1);
	CHECK_STREQ(H->event_tenant(ev), "demo");
	CHECK_STREQ(H->event_stream(ev), "acc-0001");
	CHECK_STREQ(H->event_partition(ev), "acc-0001");
	CHECK_EQ(H->event_position(ev), 42);
	CHECK_EQ(H->event_revision(ev), 42);
	CHECK_EQ(H->event_occurred(ev), 1700000000000000000LL);
	CHECK(!H->event_public(ev));
	CHECK_STREQ(H->event_id(ev), "00000000-0000-4000-8000-000000000042");
	CHECK_STREQ(H->event_correlation_id(ev), "corr-1");
	CHECK_STREQ(H->event_causation_id(ev), "");
	t.ev.partition = "p-7";
	CHECK_STREQ(H->event_partition(ev), "p-7");
	t.ev.partition = NULL; /* none: the stream */
	CHECK_STREQ(H->event_partition(ev), "acc-0001");
	/* a NULL event reads as empty, never a crash */
	CHECK_STREQ(H->event_type(NULL), "");
	CHECK_STREQ(H->event_partition(NULL), "");
	CHECK_STREQ(H->event_id(NULL), "");
	CHECK_EQ(H->event_position(NULL), 0);

	const char *s;
	int64_t     i;
	double      f;
	bool        b;
	host_scratch_reset();
	CHECK_EQ(H->content_str(ev, "account.id", &s), SL_OK);
	CHECK_STREQ(s, "acc-0001");
	const char *first = s;
	CHECK_EQ(H->content_str(ev, "name", &s), SL_OK);
	CHECK_STREQ(s, "Ann");
	CHECK_STREQ(first, "acc-0001"); /* still valid */
	CHECK_EQ(H->content_str(ev, "amount", &s), SL_EINVAL);
	CHECK_EQ(H->content_str(ev, "nil", &s), SL_EINVAL);
	CHECK_EQ(H->content_str(ev, "missing", &s), SL_ENOTFOUND);
	CHECK_EQ(H->content_str(ev, "name.x", &s), SL_ENOTFOUND);
	CHECK_EQ(H->content_i64(ev, "amount", &i), SL_OK);
	CHECK_EQ(i, 100);
	CHECK_EQ(H->content_i64(ev, "neg", &i), SL_OK);
	CHECK_EQ(i, -3);
	CHECK_EQ(H->content_i64(ev, "ratio", &i), SL_EINVAL);
	CHECK_EQ(H->content_i64(ev, "name", &i), SL_EINVAL);
	CHECK_EQ(H->content_i64(ev, "nope", &i), SL_ENOTFOUND);
	CHECK_EQ(H->content_f64(ev, "ratio", &f), SL_OK);
	CHECK(f == 0.5);
	CHECK_EQ(H->content_f64(ev, "amount", &f), SL_OK);
	CHECK(f == 100.0);
	CHECK_EQ(H->content_f64(ev, "neg", &f), SL_OK);
	CHECK(f == -3.0);
	CHECK_EQ(H->content_f64(ev, "flag", &f), SL_EINVAL);
	CHECK_EQ(H->content_bool(ev, "flag", &b), SL_OK);
	CHECK(b);
	CHECK_EQ(H->content_bool(ev, "amount", &b), SL_EINVAL);
	CHECK_EQ(H->content_bool(ev, "nope", &b), SL_ENOTFOUND);
	CHECK_EQ(H->metadata_str(ev, "source", &s), SL_OK);
	CHECK_STREQ(s, "host_state_test");
	CHECK_EQ(H->metadata_str(ev, "name", &s), SL_ENOTFOUND);
	/* NULL arguments */
	CHECK_EQ(H->content_str(NULL, "name", &s), SL_EINVAL);
	CHECK_EQ(H->content_str(ev, NULL, &s), SL_EINVAL);
	CHECK_EQ(H->content_str(ev, "name", NULL), SL_EINVAL);
	CHECK_EQ(H->content_i64(ev, "amount", NULL), SL_EINVAL);
	CHECK_EQ(H->content_f64(NULL, "amount", &f), SL_EINVAL);
	CHECK_EQ(H->content_bool(ev, NULL, &b), SL_EINVAL);
	CHECK_EQ(H->metadata_str(ev, "source", NULL), SL_EINVAL);
	sl_event no_view = { .v = NULL };
	CHECK_EQ(H->content_i64(&no_view, "amount", &i), SL_EINVAL);
	event_free(&t);

	/* strings bigger than the per-thread arena, and many of them, all
	 * stay valid until the reset */
	char big[20001];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	char json[20100];
	snprintf(
	    json, sizeof(json), "{\"big\":\"%s\",\"small\":\"abc\"}", big);
	event_make(&t, 43, "Big", "s", json);
	const char *ptrs[300];
	for (int k = 0; k < 300; k++) {
		CHECK_EQ(
		    H->content_str(&t.ev, k % 2 ? "big" : "small", &ptrs[k]),
		    SL_OK);
	}
	for (int k = 0; k < 300; k++)
		CHECK_STREQ(ptrs[k], k % 2 ? big : "abc");
	host_scratch_reset();
	host_scratch_reset();
	event_free(&t);
}

/* A thread that exits without a reset: its scratch blocks must be freed
 * (LeakSanitizer reports them otherwise), and it never sees another
 * thread's strings. */
static void *
scratch_thread(void *arg)
{
	test_event *t = arg;
	const char *s = NULL;
	for (int k = 0; k < 10; k++)
		CHECK_EQ(H->content_str(&t->ev, "big", &s), SL_OK);
	CHECK_EQ(strlen(s), 20000);
	return (void *) s;
}

static void
test_scratch_threads(void)
{
	char *json = malloc(20100);
	CHECK(json != NULL);
	snprintf(json, 20100, "{\"big\":\"%020000d\"}", 0);
	test_event t;
	event_make(&t, 44, "Big", "s", json);
	const char *mine;
	host_scratch_reset();
	CHECK_EQ(H->content_str(&t.ev, "big", &mine), SL_OK);
	pthread_t th[2];
	void     *theirs[2];
	for (int k = 0; k < 2; k++)
		CHECK(pthread_create(&th[k], NULL, scratch_thread, &t) == 0);
	for (int k = 0; k < 2; k++) {
		CHECK(pthread_join(th[k], &theirs[k]) == 0);
		CHECK(theirs[k] != mine);
	}
	CHECK_EQ(strlen(mine), 20000); /* untouched by the other threads */
	host_scratch_reset();
	event_free(&t);
	free(json);
}

static void
test_context(void)
{
	sl_context ctx;
	memset(&ctx, 0, sizeof(ctx));
	CHECK_EQ(H->retry_attempt(&ctx), 0);
	CHECK_STREQ(H->retry_reason(&ctx), "");
	ctx.attempt     = 3;
	ctx.last_reason = "refused: Tick";
	CHECK_EQ(H->retry_attempt(&ctx), 3);
	CHECK_STREQ(H->retry_reason(&ctx), "refused: Tick");
	char why[] = "bad amount";
	CHECK_EQ(H->fail(&ctx, why), SL_FAIL);
	why[0] = 'X'; /* the host copied it */
	CHECK(ctx.failed);
	CHECK_STREQ(ctx.reason, "bad amount");
	/* the previous reason handed back, even from ctx's own buffer */
	CHECK_EQ(H->fail(&ctx, ctx.reason), SL_FAIL);
	CHECK_STREQ(ctx.reason, "bad amount");
	CHECK_EQ(H->fail(&ctx, ctx.reason + 4), SL_FAIL);
	CHECK_STREQ(ctx.reason, "amount");
	/* long reasons are cut, not overflowed */
	char long_why[2000];
	memset(long_why, 'r', sizeof(long_why) - 1);
	long_why[sizeof(long_why) - 1] = '\0';
	CHECK_EQ(H->fail(&ctx, long_why), SL_FAIL);
	CHECK_EQ(strlen(ctx.reason), sizeof(ctx.reason) - 1);
	CHECK_EQ(H->fail(&ctx, NULL), SL_FAIL);
	CHECK(ctx.reason[0] != '\0');
	CHECK_EQ(H->fail(NULL, "x"), SL_FAIL);
	CHECK_EQ(H->retry_attempt(NULL), 0);
	CHECK_STREQ(H->retry_reason(NULL), "");
	H->log(SL_LOG_DEBUG, "host_state_test: log through the host table");
	H->log(SL_LOG_DEBUG, NULL);
}

/* fail_with (ABI 1.1): the retry decision and the delay, capped at 24 h */
static void
test_fail_with(void)
{
	CHECK(H->struct_size
	    >= offsetof(sl_host_api, fail_with) + sizeof(H->fail_with));
	CHECK(H->fail_with != NULL);
	CHECK_EQ((int) SL_FAIL, (int) SL_FAILED);
	CHECK_EQ(HOST_RETRY_AFTER_MAX_MS, 24u * 3600u * 1000u);
	sl_context ctx;
	memset(&ctx, 0, sizeof(ctx));
	char why[] = "try later";
	CHECK_EQ(H->fail_with(&ctx, why, true, 1500), SL_FAIL);
	why[0] = 'X'; /* the host copied it */
	CHECK(ctx.failed);
	CHECK_STREQ(ctx.reason, "try later");
	CHECK(!ctx.no_retry);
	CHECK_EQ(ctx.retry_after_ms, 1500);
	/* 0: the host's own growing delay */
	CHECK_EQ(H->fail_with(&ctx, "again", true, 0), SL_FAIL);
	CHECK(!ctx.no_retry);
	CHECK_EQ(ctx.retry_after_ms, 0);
	/* the cap: 24 h exactly is kept, anything longer is cut to it */
	CHECK_EQ(H->fail_with(&ctx, "a day", true, HOST_RETRY_AFTER_MAX_MS),
	    SL_FAIL);
	CHECK_EQ(ctx.retry_after_ms, HOST_RETRY_AFTER_MAX_MS);
	CHECK_EQ(
	    H->fail_with(&ctx, "longer", true, HOST_RETRY_AFTER_MAX_MS + 1),
	    SL_FAIL);
	CHECK_EQ(ctx.retry_after_ms, HOST_RETRY_AFTER_MAX_MS);
	CHECK_EQ(H->fail_with(&ctx, "forever", true, UINT32_MAX), SL_FAIL);
	CHECK_EQ(ctx.retry_after_ms, HOST_RETRY_AFTER_MAX_MS);
	/* retry false: no delay; waits for an operator */
	CHECK_EQ(H->fail_with(&ctx, "broken for good", false, 5000), SL_FAIL);
	CHECK(ctx.failed);
	CHECK(ctx.no_retry);
	CHECK_EQ(ctx.retry_after_ms, 0);
	CHECK_STREQ(ctx.reason, "broken for good");
	/* the last call wins: fail is retry=true with the host's delay */
	CHECK_EQ(H->fail(&ctx, "plain"), SL_FAIL);
	CHECK(!ctx.no_retry);
	CHECK_EQ(ctx.retry_after_ms, 0);
	CHECK_STREQ(ctx.reason, "plain");
	/* reasons: its own buffer handed back, NULL, too long */
	CHECK_EQ(H->fail_with(&ctx, ctx.reason + 2, false, 0), SL_FAIL);
	CHECK_STREQ(ctx.reason, "ain");
	CHECK(ctx.no_retry);
	CHECK_EQ(H->fail_with(&ctx, NULL, true, 10), SL_FAIL);
	CHECK(ctx.reason[0] != '\0');
	CHECK(!ctx.no_retry);
	CHECK_EQ(ctx.retry_after_ms, 10);
	char long_why[2000];
	memset(long_why, 'r', sizeof(long_why) - 1);
	long_why[sizeof(long_why) - 1] = '\0';
	CHECK_EQ(H->fail_with(&ctx, long_why, true, 1), SL_FAIL);
	CHECK_EQ(strlen(ctx.reason), sizeof(ctx.reason) - 1);
	CHECK_EQ(H->fail_with(NULL, "x", false, 1), SL_FAIL);
}

/* ---- the Account Details example ---- */

/* The key the runtime's key selector would find for this event. */
static const char *
select_key(const proj_def *d, const test_event *t)
{
	for (size_t i = 0; i < d->p->n_selectors; i++) {
		const sl_selector *s = &d->p->selectors[i];
		if (strcmp(s->event_type, t->v.type) != 0)
			continue;
		switch (s->key) {
		case SL_KEY_EVENT_SOURCE:
			return t->v.stream;
		case SL_KEY_PARTITION:
			return t->ev.partition;
		case SL_KEY_PROPERTY: {
			static char           buf[256];
			const msgpack_object *o
			    = host_path(&t->v.content, s->arg);
			CHECK(o != NULL && o->type == MSGPACK_OBJECT_STR);
			snprintf(buf, sizeof(buf), "%.*s",
			    (int) o->via.str.size, o->via.str.ptr);
			return buf;
		}
		default:
			CHECK(!"unexpected key kind");
		}
	}
	fprintf(stderr, "no selector for %s\n", t->v.type);
	exit(1);
}

static sl_outcome
fold(const proj_def *d, const test_event *t, sl_state *st, sl_context *ctx)
{
	const char *key = select_key(d, t);
	CHECK_STREQ(key, "acc-0001");
	memset(ctx, 0, sizeof(*ctx));
	host_scratch_reset();
	return d->p->on(d->p->user, &t->ev, key, st, ctx);
}

static void
test_account_details(void)
{
	char      cache[8192], path[8192];
	registry *r;
	snprintf(cache, sizeof(cache), "%s/cache", tu_tmpdir());
	snprintf(path, sizeof(path), "%s/account_details.so", SL_PLUGIN_DIR);
	CHECK_EQ(registry_create(cache, &r), SL_OK);
	CHECK_EQ(registry_load_file(r, path, NULL, 0), SL_OK);
	const proj_def *d = registry_find(r, "account_details", 15);
	CHECK(d != NULL);
	CHECK_STREQ(d->id, "8a2f3c1e-5b7d-4e9a-9c11-2d4e6f8a0b13");
	CHECK_EQ(d->p->version, 1);
	CHECK_EQ(d->p->n_selectors, 4);

	/* the initial state */
	sl_state    st;
	const char *s;
	int64_t     i;
	char        keys[256];
	state_init(&st);
	CHECK_EQ(state_load(&st, d->initial, d->initial_len), SL_OK);
	state_keys(&st, keys, sizeof(keys));
	CHECK_STREQ(keys, "account_id,type,customer,name,balance");
	CHECK_EQ(H->state_i64(&st, "balance", &i), SL_OK);
	CHECK_EQ(i, 0);

	test_event e1, e2, e3, e4;
	event_make(&e1, 1, "DebitAccountOpened", "acc-0001",
	    "{\"account_id\":\"acc-0001\",\"name\":\"Savings\"}");
	event_make(&e2, 2, "CustomerRegistered", "cust-01",
	    "{\"customer_id\":\"cust-01\",\"name\":\"Ann Smith\","
	    "\"account\":{\"id\":\"acc-0001\"}}");
	event_make(&e3, 3, "DebitPerformed", "acc-0001", "{\"amount\":100}");
	event_make(&e4, 4, "WithdrawalPerformed", "acc-0001",
	    "{\"account_id\":\"acc-0001\",\"amount\":40}");
	sl_context ctx;
	CHECK_EQ(fold(d, &e1, &st, &ctx), SL_REPLACE);
	CHECK_EQ(fold(d, &e2, &st, &ctx), SL_REPLACE);
	CHECK_EQ(fold(d, &e3, &st, &ctx), SL_REPLACE);
	CHECK_EQ(fold(d, &e4, &st, &ctx), SL_REPLACE);
	CHECK(!ctx.failed);

	CHECK_EQ(H->state_str(&st, "account_id", &s), SL_OK);
	CHECK_STREQ(s, "acc-0001");
	CHECK_EQ(H->state_str(&st, "type", &s), SL_OK);
	CHECK_STREQ(s, "debit");
	CHECK_EQ(H->state_str(&st, "customer", &s), SL_OK);
	CHECK_STREQ(s, "Ann Smith");
	CHECK_EQ(H->state_str(&st, "name", &s), SL_OK);
	CHECK_STREQ(s, "Savings");
	CHECK_EQ(H->state_i64(&st, "balance", &i), SL_OK);
	CHECK_EQ(i, 60);
	state_keys(&st, keys, sizeof(keys));
	CHECK_STREQ(keys, "account_id,type,customer,name,balance");

	/* a bad amount is a failure with a clear reason; balance unchanged */
	test_event bad;
	event_make(
	    &bad, 5, "DebitPerformed", "acc-0001", "{\"amount\":\"lots\"}");
	CHECK_EQ(fold(d, &bad, &st, &ctx), SL_FAIL);
	CHECK(ctx.failed);
	CHECK(strstr(ctx.reason, "DebitPerformed") != NULL);
	CHECK(strstr(ctx.reason, "'amount' is not an integer") != NULL);
	event_free(&bad);
	event_make(&bad, 6, "WithdrawalPerformed", "acc-0001",
	    "{\"account_id\":\"acc-0001\"}");
	CHECK_EQ(fold(d, &bad, &st, &ctx), SL_FAIL);
	CHECK(strstr(ctx.reason, "no 'amount'") != NULL);
	CHECK(strstr(ctx.reason, "position 6") != NULL);
	event_free(&bad);
	CHECK_EQ(H->state_i64(&st, "balance", &i), SL_OK);
	CHECK_EQ(i, 60);

	/* the folded state survives a pack/load round trip */
	msgpack_sbuffer sb;
	pack_state(&st, &sb);
	sl_state st2;
	state_init(&st2);
	CHECK_EQ(state_load(&st2, sb.data, sb.size), SL_OK);
	CHECK_EQ(H->state_i64(&st2, "balance", &i), SL_OK);
	CHECK_EQ(i, 60);
	CHECK_EQ(H->state_str(&st2, "customer", &s), SL_OK);
	CHECK_STREQ(s, "Ann Smith");
	state_free(&st2);
	msgpack_sbuffer_destroy(&sb);

	/* events in another order build the same read model */
	state_free(&st);
	CHECK_EQ(state_load(&st, d->initial, d->initial_len), SL_OK);
	CHECK_EQ(fold(d, &e3, &st, &ctx), SL_REPLACE);
	CHECK_EQ(fold(d, &e2, &st, &ctx), SL_REPLACE);
	CHECK_EQ(fold(d, &e4, &st, &ctx), SL_REPLACE);
	CHECK_EQ(fold(d, &e1, &st, &ctx), SL_REPLACE);
	CHECK_EQ(H->state_str(&st, "account_id", &s), SL_OK);
	CHECK_STREQ(s, "acc-0001");
	CHECK_EQ(H->state_str(&st, "customer", &s), SL_OK);
	CHECK_STREQ(s, "Ann Smith");
	CHECK_EQ(H->state_i64(&st, "balance", &i), SL_OK);
	CHECK_EQ(i, 60);

	state_free(&st);
	event_free(&e1);
	event_free(&e2);
	event_free(&e3);
	event_free(&e4);
	registry_destroy(r);
}

/* ---- the filter plugins (ABI 1.1) ---- */

/* Call filter d on t at this retry attempt; *part as the callback left it
 * (valid until the next host_scratch_reset). */
static sl_verdict
run_filter(const proj_def *d, const test_event *t, uint32_t attempt,
    const char **part, sl_context *ctx)
{
	CHECK(def_is_filter(d) && d->f != NULL && d->p == NULL);
	memset(ctx, 0, sizeof(*ctx));
	ctx->attempt = attempt;
	*part        = NULL;
	host_scratch_reset();
	return d->f->filter(d->f->user, &t->ev, part, ctx);
}

static registry *
load_plugin(const char *dir, const char *file, const char *cache_name)
{
	char      cache[8192], path[8192];
	registry *r;
	snprintf(cache, sizeof(cache), "%s/%s", tu_tmpdir(), cache_name);
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	CHECK_EQ(registry_create(cache, &r), SL_OK);
	CHECK_EQ(registry_load_file(r, path, NULL, 0), SL_OK);
	return r;
}

static void
test_account_filters(void)
{
	registry *r
	    = load_plugin(SL_PLUGIN_DIR, "account_filters.so", "cache-af");
	const proj_def *cust = registry_find(r, "customer events", 15);
	const proj_def *open = registry_find(r, "public account openings", 23);
	CHECK(cust != NULL && open != NULL);
	CHECK_STREQ(cust->id, "a468a0ac-3f00-4a28-ac0e-e4a0e8400cb3");
	CHECK_STREQ(open->id, "76b549ab-de36-4185-8ed1-2a92ed32b7b0");
	CHECK_EQ(cust->filter_kind, SL_FILTER_PARTITIONED);
	CHECK_EQ(open->filter_kind, SL_FILTER_PUBLIC);

	sl_context  ctx;
	const char *part;
	test_event  t;
	/* the four account event types, by the customer id in the content */
	event_make(&t, 1, "CustomerRegistered", "cust-01",
	    "{\"customer_id\":\"cust-01\",\"name\":\"Ann Smith\","
	    "\"account\":{\"id\":\"acc-0001\"}}");
	CHECK_EQ(run_filter(cust, &t, 0, &part, &ctx), SL_INCLUDED);
	CHECK_STREQ(part, "cust-01");
	CHECK(!ctx.failed);
	event_free(&t);
	event_make(&t, 2, "DebitAccountOpened", "acc-0001",
	    "{\"account_id\":\"acc-0001\",\"customer_id\":\"cust-01\"}");
	CHECK_EQ(run_filter(cust, &t, 0, &part, &ctx), SL_INCLUDED);
	CHECK_STREQ(part, "cust-01");
	/* the public filter: the account id, from the content */
	CHECK_EQ(run_filter(open, &t, 0, &part, &ctx), SL_INCLUDED);
	CHECK_STREQ(part, "acc-0001");
	event_free(&t);
	/* ... or the stream when the content has none */
	event_make(&t, 3, "DebitAccountOpened", "acc-0042", "{}");
	CHECK_EQ(run_filter(open, &t, 0, &part, &ctx), SL_INCLUDED);
	CHECK_STREQ(part, "acc-0042");
	CHECK(!ctx.failed);
	event_free(&t);
	/* no customer id: a failure not to retry, naming the event */
	event_make(&t, 4, "DebitPerformed", "acc-0001", "{\"amount\":1200}");
	CHECK_EQ(run_filter(cust, &t, 0, &part, &ctx), SL_FAILED);
	CHECK(ctx.failed && ctx.no_retry);
	CHECK_EQ(ctx.retry_after_ms, 0);
	CHECK_STREQ(ctx.reason,
	    "DebitPerformed at position 4: content has no 'customer_id'");
	CHECK_EQ(run_filter(open, &t, 0, &part, &ctx), SL_EXCLUDED);
	CHECK(!ctx.failed && part == NULL);
	event_free(&t);
	event_make(&t, 5, "WithdrawalPerformed", "acc-0001",
	    "{\"customer_id\":7,\"amount\":5}");
	CHECK_EQ(run_filter(cust, &t, 2, &part, &ctx), SL_FAILED);
	CHECK(ctx.no_retry);
	CHECK(strstr(ctx.reason, "'customer_id' is not a string") != NULL);
	event_free(&t);
	event_make(&t, 6, "WithdrawalPerformed", "acc-0001",
	    "{\"customer_id\":\"\",\"amount\":5}");
	CHECK_EQ(run_filter(cust, &t, 0, &part, &ctx), SL_FAILED);
	CHECK(strstr(ctx.reason, "'customer_id' is empty") != NULL);
	event_free(&t);
	/* other types are not looked at */
	event_make(&t, 7, "Tick", "s-1", "{}");
	CHECK_EQ(run_filter(cust, &t, 0, &part, &ctx), SL_EXCLUDED);
	CHECK_EQ(run_filter(open, &t, 0, &part, &ctx), SL_EXCLUDED);
	CHECK(!ctx.failed && part == NULL);
	event_free(&t);
	registry_destroy(r);
}

/* filter_flaky and filter_unpartitioned (tests/plugins/flaky_fail.h) */
static void
test_flaky_filters(void)
{
	registry *r
	    = load_plugin(SL_TEST_PLUGIN_DIR, "filter_flaky.so", "cache-ff");
	registry *u = load_plugin(
	    SL_TEST_PLUGIN_DIR, "filter_unpartitioned.so", "cache-fu");
	const proj_def *flaky  = registry_find(r, "flaky", 5);
	const proj_def *counts = registry_find(r, "flaky_counts", 12);
	const proj_def *tev    = registry_find(u, "t_events", 8);
	CHECK(flaky != NULL && counts != NULL && tev != NULL);
	CHECK_EQ(flaky->filter_kind, SL_FILTER_PARTITIONED);
	CHECK_EQ(tev->filter_kind, SL_FILTER_UNPARTITIONED);

	sl_context  ctx;
	const char *part;
	test_event  t;
	/* fail_times 2: attempts 0 and 1 fail, attempt 2 passes */
	event_make(&t, 1, "Tick", "s-1", "{\"fail_times\":2}");
	for (uint32_t a = 0; a < 2; a++) {
		char want[64];
		snprintf(want, sizeof(want), "flaky attempt %u", a);
		CHECK_EQ(run_filter(flaky, &t, a, &part, &ctx), SL_FAILED);
		CHECK_STREQ(ctx.reason, want);
		CHECK(!ctx.no_retry);
		CHECK_EQ(ctx.retry_after_ms, 0);
		CHECK_EQ(run_filter(tev, &t, a, &part, &ctx), SL_FAILED);
		CHECK_STREQ(ctx.reason, want);
	}
	CHECK_EQ(run_filter(flaky, &t, 2, &part, &ctx), SL_INCLUDED);
	CHECK_STREQ(part, "s-1");
	CHECK(!ctx.failed);
	part = "untouched";
	memset(&ctx, 0, sizeof(ctx));
	ctx.attempt = 2;
	host_scratch_reset();
	CHECK_EQ(
	    tev->f->filter(tev->f->user, &t.ev, &part, &ctx), SL_INCLUDED);
	CHECK_STREQ(part, "untouched"); /* unpartitioned: never set */

	/* the projection: same rule, then counts and records the attempt */
	sl_state st;
	int64_t  i;
	state_init(&st);
	CHECK_EQ(state_load(&st, counts->initial, counts->initial_len), SL_OK);
	memset(&ctx, 0, sizeof(ctx));
	ctx.attempt = 1;
	host_scratch_reset();
	CHECK_EQ(
	    counts->p->on(counts->p->user, &t.ev, "s-1", &st, &ctx), SL_FAIL);
	CHECK_STREQ(ctx.reason, "flaky attempt 1");
	memset(&ctx, 0, sizeof(ctx));
	ctx.attempt = 2;
	host_scratch_reset();
	CHECK_EQ(counts->p->on(counts->p->user, &t.ev, "s-1", &st, &ctx),
	    SL_REPLACE);
	CHECK_EQ(H->state_i64(&st, "n", &i), SL_OK);
	CHECK_EQ(i, 1);
	CHECK_EQ(H->state_i64(&st, "last_attempt", &i), SL_OK);
	CHECK_EQ(i, 2);
	event_free(&t);

	/* retry_after_ms goes through fail_with, capped by the host */
	event_make(&t, 2, "Tock", "s-2",
	    "{\"fail_times\":1,\"retry_after_ms\":1500}");
	CHECK_EQ(run_filter(flaky, &t, 0, &part, &ctx), SL_FAILED);
	CHECK(!ctx.no_retry);
	CHECK_EQ(ctx.retry_after_ms, 1500);
	CHECK_EQ(run_filter(flaky, &t, 1, &part, &ctx), SL_INCLUDED);
	CHECK_STREQ(part, "s-2");
	event_free(&t);
	event_make(&t, 3, "Tock", "s-2",
	    "{\"fail_times\":1,\"retry_after_ms\":999999999999}");
	CHECK_EQ(run_filter(tev, &t, 0, &part, &ctx), SL_FAILED);
	CHECK_EQ(ctx.retry_after_ms, HOST_RETRY_AFTER_MAX_MS);
	event_free(&t);

	/* fatal: retry=false on any attempt, in all three */
	event_make(&t, 4, "Tick", "s-1", "{\"fatal\":true,\"fail_times\":0}");
	CHECK_EQ(run_filter(flaky, &t, 9, &part, &ctx), SL_FAILED);
	CHECK(ctx.no_retry);
	CHECK_STREQ(ctx.reason, "fatal: Tick at position 4");
	CHECK_EQ(run_filter(tev, &t, 0, &part, &ctx), SL_FAILED);
	CHECK(ctx.no_retry);
	memset(&ctx, 0, sizeof(ctx));
	host_scratch_reset();
	CHECK_EQ(
	    counts->p->on(counts->p->user, &t.ev, "s-1", &st, &ctx), SL_FAIL);
	CHECK(ctx.no_retry);
	CHECK_EQ(H->state_i64(&st, "n", &i), SL_OK);
	CHECK_EQ(i, 1);
	event_free(&t);

	/* other types: excluded, but the failure rules apply to them too */
	event_make(&t, 5, "Other", "s-3", "{}");
	CHECK_EQ(run_filter(flaky, &t, 0, &part, &ctx), SL_EXCLUDED);
	CHECK_EQ(run_filter(tev, &t, 0, &part, &ctx), SL_EXCLUDED);
	CHECK(!ctx.failed);
	event_free(&t);
	event_make(&t, 6, "Other", "s-3", "{\"fail_times\":1}");
	CHECK_EQ(run_filter(flaky, &t, 0, &part, &ctx), SL_FAILED);
	CHECK_EQ(run_filter(flaky, &t, 1, &part, &ctx), SL_EXCLUDED);
	event_free(&t);

	state_free(&st);
	registry_destroy(r);
	registry_destroy(u);
}

/* ---- state_load against msgpack-c ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t
rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void
put_be(msgpack_sbuffer *b, uint8_t type, uint64_t v, int n)
{
	unsigned char x[9];
	x[0] = type;
	for (int i = 0; i < n; i++)
		x[1 + i] = (unsigned char) (v >> (8 * (n - 1 - i)));
	msgpack_sbuffer_write(b, (const char *) x, (size_t) n + 1);
}

/* A random value in every encoding msgpack allows, canonical or not
 * (an int16 holding 5, a str16 of 3 bytes, a float32 ...). */
static void
gen_value(msgpack_sbuffer *b, msgpack_packer *pk, int depth)
{
	int64_t  i;
	uint64_t u;
	char     s[40];
	int      k, n = (int) (rnd() % 12);
	switch (depth < 3 ? (int) (rnd() % 16) : (int) (rnd() % 13)) {
	case 0:
		msgpack_pack_nil(pk);
		break;
	case 1:
		rnd() & 1 ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
		break;
	case 2: /* a small value in a wider encoding than needed */
		i = (int64_t) (rnd() % 200) - 100;
		k = (int) (rnd() % 4);
		put_be(b, (uint8_t) (0xd0 + k), (uint64_t) i, 1 << k);
		break;
	case 3:
		msgpack_pack_int64(pk, (int64_t) rnd());
		break;
	case 4:
		/* above INT64_MAX half the time */
		msgpack_pack_uint64(pk, rnd());
		break;
	case 5:
		k = (int) (rnd() % 4);
		put_be(b, (uint8_t) (0xcc + k), rnd() % 256, 1 << k);
		break;
	case 6:
		msgpack_pack_float(pk, (float) (rnd() % 1000) / 7.0f);
		break;
	case 7:
		msgpack_pack_double(pk, (double) (int64_t) rnd() / 3.0);
		break;
	case 8:
		snprintf(s, sizeof(s), "%.*s", n, "abcdefghijklmnop");
		msgpack_pack_str(pk, (size_t) n);
		msgpack_pack_str_body(pk, s, (size_t) n);
		break;
	case 9: /* str16 for a short string */
		put_be(b, 0xda, (uint64_t) n, 2);
		msgpack_sbuffer_write(b, "0123456789abcdef", (size_t) n);
		break;
	case 10:
		msgpack_pack_bin(pk, (size_t) n);
		msgpack_pack_bin_body(pk, "0123456789abcdef", (size_t) n);
		break;
	case 11:
		msgpack_pack_ext(pk, (size_t) n, 7);
		msgpack_pack_ext_body(pk, "0123456789abcdef", (size_t) n);
		break;
	case 12:
		u = rnd() % 128;
		msgpack_pack_fix_uint8(pk, (uint8_t) u);
		break;
	case 13:
	case 14:
		msgpack_pack_map(pk, (size_t) n % 4);
		for (k = 0; k < n % 4; k++) {
			snprintf(s, sizeof(s), "k%d", k);
			msgpack_pack_str(pk, strlen(s));
			msgpack_pack_str_body(pk, s, strlen(s));
			gen_value(b, pk, depth + 1);
		}
		break;
	default:
		msgpack_pack_array(pk, (size_t) n % 4);
		for (k = 0; k < n % 4; k++)
			gen_value(b, pk, depth + 1);
	}
}

/* What state_load did before it read the bytes itself: msgpack-c's
 * objects, then doc_from_mp per top-level value. */
static int
reference_load(sl_state *st, const void *data, size_t len)
{
	msgpack_unpacked up;
	size_t           off = 0;
	int              rc  = SL_OK;
	char             err[100];
	/* as everything from outside: a lying header would make msgpack-c
	 * allocate what it claims (ASan stops at 128 GiB) */
	if (!mpraw_check(data, len, 64, "state", err, sizeof(err)))
		return SL_EPROTO;
	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, data, len, &off) != MSGPACK_UNPACK_SUCCESS
	    || off != len || up.data.type != MSGPACK_OBJECT_MAP) {
		msgpack_unpacked_destroy(&up);
		return SL_EPROTO;
	}
	for (uint32_t i = 0; i < up.data.via.map.size && rc == SL_OK; i++) {
		const msgpack_object_kv *kv = &up.data.via.map.ptr[i];
		doc_node                 v;
		if (kv->key.type != MSGPACK_OBJECT_STR)
			rc = SL_EPROTO;
		else if ((rc = doc_from_mp(&kv->val, &v)) == SL_OK)
			rc = doc_root_set(
			    st, kv->key.via.str.ptr, kv->key.via.str.size, &v);
	}
	msgpack_unpacked_destroy(&up);
	return rc;
}

/* Both states packed and unpacked again compare equal as msgpack values
 * (bytes may differ: a nested map kept as read vs packed anew). */
static bool
same_state(const sl_state *a, const sl_state *b)
{
	msgpack_sbuffer x, y;
	msgpack_packer  px, py;
	msgpack_sbuffer_init(&x);
	msgpack_sbuffer_init(&y);
	msgpack_packer_init(&px, &x, msgpack_sbuffer_write);
	msgpack_packer_init(&py, &y, msgpack_sbuffer_write);
	state_pack(a, &px);
	state_pack(b, &py);
	msgpack_unpacked ux, uy;
	msgpack_unpacked_init(&ux);
	msgpack_unpacked_init(&uy);
	bool eq = msgpack_unpack_next(&ux, x.data, x.size, NULL)
	        == MSGPACK_UNPACK_SUCCESS
	    && msgpack_unpack_next(&uy, y.data, y.size, NULL)
	        == MSGPACK_UNPACK_SUCCESS
	    && msgpack_object_equal(ux.data, uy.data);
	msgpack_unpacked_destroy(&ux);
	msgpack_unpacked_destroy(&uy);
	msgpack_sbuffer_destroy(&x);
	msgpack_sbuffer_destroy(&y);
	return eq;
}

/* state_pack_sbuffer writes the very bytes msgpack-c's packer does. */
static void
check_pack_same(const sl_state *st)
{
	msgpack_sbuffer a, b;
	msgpack_packer  pk;
	msgpack_sbuffer_init(&a);
	msgpack_sbuffer_init(&b);
	msgpack_packer_init(&pk, &a, msgpack_sbuffer_write);
	state_pack(st, &pk);
	CHECK_EQ(state_pack_sbuffer(st, &b), SL_OK);
	CHECK(a.size == b.size && memcmp(a.data, b.data, a.size) == 0);
	CHECK(b.size <= doc_size(&st->root));
	msgpack_sbuffer_destroy(&a);
	msgpack_sbuffer_destroy(&b);
}

/* Every width of integer, string, map and array header at its bounds,
 * packed by state_pack_sbuffer and by msgpack-c. */
static void
test_pack_bounds(void)
{
	static const int64_t ints[]
	    = { INT64_MIN, -(1LL << 31) - 1, -(1LL << 31), -32769, -32768,
		      -129, -128, -33, -32, -1, 0, 1, 127, 128, 255, 256,
		      65535, 65536, (1LL << 32) - 1, 1LL << 32, INT64_MAX };
	static const size_t lens[]  = { 0, 31, 32, 255, 256, 65535, 65536 };
	static const size_t items[] = { 15, 16, 65536 };
	size_t              n_ints  = sizeof(ints) / sizeof(ints[0]);
	sl_state            st;
	char                key[16];
	state_init(&st);
	char *big = malloc(65537);
	CHECK(big != NULL);
	memset(big, 'x', 65536);
	for (size_t i = 0; i < n_ints; i++) { /* 21 keys: a map16 */
		doc_node v = { .kind = DOC_I64, .u.i = ints[i] };
		snprintf(key, sizeof(key), "i%zu", i);
		CHECK_EQ(doc_root_set(&st, key, strlen(key), &v), SL_OK);
	}
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		doc_node v;
		snprintf(key, sizeof(key), "s%zu", i);
		CHECK_EQ(doc_str(&v, big, lens[i]), SL_OK);
		CHECK_EQ(doc_root_set(&st, key, strlen(key), &v), SL_OK);
	}
	for (size_t i = 0; i < 3; i++) { /* arrays of 15, 16, 65536 */
		doc_node a = { .kind = DOC_ARR };
		for (size_t k = 0; k < items[i]; k++) {
			doc_node v
			    = { .kind = DOC_F64, .u.f = (double) k / 3 };
			CHECK_EQ(doc_arr_insert(&a, a.u.a.n, &v), SL_OK);
		}
		snprintf(key, sizeof(key), "a%zu", i);
		CHECK_EQ(doc_root_set(&st, key, strlen(key), &a), SL_OK);
	}
	doc_node m = { .kind = DOC_MAP }; /* a nested map of 16 */
	for (int k = 0; k < 16; k++) {
		doc_node v
		    = { .kind = k % 2 ? DOC_NIL : DOC_BOOL, .u.b = k % 4 };
		snprintf(key, sizeof(key), "m%d", k);
		CHECK_EQ(doc_map_add(&m, key, strlen(key), &v), SL_OK);
	}
	CHECK_EQ(doc_root_set(&st, "map", 3, &m), SL_OK);
	doc_node v = { .kind = DOC_I64, .u.i = 7 }; /* a key of 32 bytes */
	CHECK_EQ(doc_root_set(&st, big, 32, &v), SL_OK);
	check_pack_same(&st);
	state_free(&st);
	free(big);
}

/* state_load reads the bytes itself: on 20,000 random states (every
 * encoding, nested values, keys given twice), each truncated and each with
 * a byte changed, it accepts what msgpack-c accepted, with the same value,
 * and refuses what it refused (st unchanged then). */
static void
test_state_load_differential(void)
{
	int accepted = 0, refused = 0;
	for (int iter = 0; iter < 20000; iter++) {
		msgpack_sbuffer b;
		msgpack_packer  pk;
		msgpack_sbuffer_init(&b);
		msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
		int n = (int) (rnd() % 7);
		if (rnd() % 3 == 0)
			put_be(&b, 0xde, (uint64_t) n, 2); /* map16 */
		else
			msgpack_pack_map(&pk, (size_t) n);
		for (int k = 0; k < n; k++) {
			char key[8];
			snprintf(key, sizeof(key), "k%d", (int) (rnd() % 5));
			msgpack_pack_str(&pk, strlen(key));
			msgpack_pack_str_body(&pk, key, strlen(key));
			gen_value(&b, &pk, 0);
		}
		for (int variant = 0; variant < 3; variant++) {
			unsigned char *d   = malloc(b.size + 1);
			size_t         len = b.size;
			CHECK(d != NULL);
			memcpy(d, b.data, b.size);
			if (variant == 1 && len > 0)
				len = rnd() % len; /* truncated */
			if (variant == 2 && len > 0)
				d[rnd() % len] = (unsigned char) rnd();
			sl_state got, want;
			state_init(&got);
			state_init(&want);
			int rg = state_load(&got, d, len);
			int rw = reference_load(&want, d, len);
			if (rw == SL_OK) {
				CHECK_EQ(rg, SL_OK);
				CHECK(same_state(&got, &want));
				check_pack_same(&got);
				check_pack_same(&want);
				accepted++;
			} else {
				CHECK(rg != SL_OK);
				CHECK(got.root.u.m.n == 0); /* unchanged */
				refused++;
			}
			state_free(&got);
			state_free(&want);
			free(d);
		}
		msgpack_sbuffer_destroy(&b);
	}
	CHECK(accepted > 20000 && refused > 15000);
}

int
main(void)
{
	H = host_api();
	CHECK(H->struct_size == sizeof(sl_host_api));
	CHECK(H->abi_version == SL_ABI_VERSION);
	test_state_round_trip();
	test_state_load_differential();
	test_pack_bounds();
	test_state_setters();
	test_host_path();
	test_event_getters();
	test_scratch_threads();
	test_context();
	test_fail_with();
	test_account_details();
	test_account_filters();
	test_flaky_filters();
	printf("host_state_test: ok\n");
	return 0;
}
