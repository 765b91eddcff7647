/*
 * Proves the ABI 1.3 document calls through the real host table: the path
 * syntax (indexes, negative indexes, quoted keys with dots), building a
 * state of nested maps and arrays and reading it back by path, by
 * iteration and whole (JSON, msgpack), every error leaving the state as it
 * was, the depth and size limits, raw parts of a loaded state opened only
 * when walked into (and packed back unchanged), events with nested content
 * and non-string metadata read by path and whole, the 1.0 calls keeping
 * their meaning beside the new ones, and the sl_ helpers (also on an older
 * host table, where they say SL_EVERSION).
 */
#include "docpath.h"
#include "host_testutil.h"

static const sl_host_api *H;

/* ---- paths ---- */

/* Parse text, expecting n segments; the segments' text joined with '|',
 * indexes as #N, into out. */
static void
parsed(const char *text, size_t n, const char *want)
{
	dpath p;
	char  got[2048] = "";
	CHECK_EQ(dpath_parse(text, &p), SL_OK);
	CHECK_EQ(p.n, n);
	for (size_t i = 0; i < p.n; i++) {
		size_t l = strlen(got);
		if (p.seg[i].is_index)
			snprintf(got + l, sizeof(got) - l, "%s#%lld",
			    i > 0 ? "|" : "", (long long) p.seg[i].index);
		else
			snprintf(got + l, sizeof(got) - l, "%s%.*s",
			    i > 0 ? "|" : "", (int) p.seg[i].klen,
			    p.seg[i].key);
	}
	CHECK_STREQ(got, want);
}

static void
test_paths(void)
{
	dpath p;
	parsed("", 0, "");
	parsed(NULL, 0, "");
	parsed("name", 1, "name");
	parsed("customer.name", 2, "customer|name");
	parsed("lines[0].sku", 3, "lines|#0|sku");
	parsed("lines[-1]", 2, "lines|#-1");
	parsed("m[2][3]", 3, "m|#2|#3");
	parsed("[\"a.b\"]", 1, "a.b");
	parsed("coupons[\"SPRING.10\"].pct", 3, "coupons|SPRING.10|pct");
	parsed("[\"q\\\"\\\\x\"]", 1, "q\"\\x");
	parsed("[\"\"]", 1, "");
	parsed("a]b\"c", 1, "a]b\"c"); /* only '.' and '[' end a plain key */
	parsed("[7]", 1, "#7");

	static const char *const bad[] = { ".a", "a.", "a..b", "a.[0]", "a[",
		"a[]", "a[x]", "a[1", "a[0]b", "a[\"x", "a[\"x\"",
		"a[\"\\q\"]", "a[--1]", "a[1234567890123456789]", "a[ 1]" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (dpath_parse(bad[i], &p) != SL_EINVAL) {
			fprintf(stderr, "path '%s' was not refused\n", bad[i]);
			exit(1);
		}
	}
	/* 16 steps are allowed, 17 are too deep; SL_PATH_MAX bytes */
	char deep[128] = "a";
	for (int i = 1; i < SL_DOC_MAX_DEPTH; i++)
		strcat(deep, ".a");
	CHECK_EQ(dpath_parse(deep, &p), SL_OK);
	CHECK_EQ(p.n, SL_DOC_MAX_DEPTH);
	strcat(deep, ".a");
	CHECK_EQ(dpath_parse(deep, &p), SL_ETOOBIG);
	char long_path[SL_PATH_MAX + 2];
	memset(long_path, 'k', sizeof(long_path));
	long_path[SL_PATH_MAX] = '\0';
	CHECK_EQ(dpath_parse(long_path, &p), SL_OK);
	long_path[SL_PATH_MAX]     = 'k';
	long_path[SL_PATH_MAX + 1] = '\0';
	CHECK_EQ(dpath_parse(long_path, &p), SL_ETOOBIG);

	size_t k;
	CHECK(dpath_item(0, 3, &k) && k == 0);
	CHECK(dpath_item(-1, 3, &k) && k == 2);
	CHECK(dpath_item(-3, 3, &k) && k == 0);
	CHECK(!dpath_item(-4, 3, &k));
	CHECK(!dpath_item(3, 3, &k));
	CHECK(!dpath_item(0, 0, &k));
}

/* ---- states ---- */

/* The packed state must fit the size the state counts. */
static void
check_bound(const sl_state *st)
{
	msgpack_sbuffer sb;
	pack_state(st, &sb);
	CHECK(st->bytes >= sb.size);
	msgpack_sbuffer_destroy(&sb);
}

/* The whole state as JSON must be want. */
static void
expect_json(const sl_state *st, const char *want)
{
	const char *j = NULL;
	CHECK_EQ(H->state_get_json(st, "", &j), SL_OK);
	if (strcmp(j, want) != 0) {
		fprintf(stderr, "state is %s\n   wanted %s\n", j, want);
		exit(1);
	}
	check_bound(st);
}

#define CART                                                                  \
	"{\"cart\":\"c-1\",\"totals\":{\"items\":3},\"lines\":[{\"sku\":"     \
	"\"a\",\"qty\":1},{\"sku\":\"b\",\"qty\":2}]}"

static void
test_state_build(void)
{
	sl_state    st;
	const char *s;
	int64_t     i;
	double      f;
	bool        b;
	size_t      n;
	sl_kind     k;
	state_init(&st);

	CHECK_EQ(H->state_put_str(&st, "cart", "c-1"), SL_OK);
	CHECK_EQ(H->state_put_i64(&st, "totals.items", 3), SL_OK);
	CHECK_EQ(
	    H->state_array_append(&st, "lines", "{\"sku\":\"b\"}"), SL_OK);
	CHECK_EQ(
	    H->state_array_insert(&st, "lines", 0, "{\"sku\":\"a\"}"), SL_OK);
	CHECK_EQ(H->state_put_i64(&st, "lines[0].qty", 1), SL_OK);
	CHECK_EQ(H->state_put_i64(&st, "lines[-1].qty", 2), SL_OK);
	expect_json(&st, CART);

	/* reading by path */
	CHECK_EQ(H->state_get_str(&st, "lines[1].sku", &s), SL_OK);
	CHECK_STREQ(s, "b");
	CHECK_EQ(H->state_get_i64(&st, "lines[-2].qty", &i), SL_OK);
	CHECK_EQ(i, 1);
	CHECK_EQ(H->state_get_f64(&st, "totals.items", &f), SL_OK);
	CHECK(f == 3.0);
	CHECK_EQ(H->state_kind(&st, "lines", &k), SL_OK);
	CHECK_EQ(k, SL_KIND_ARRAY);
	CHECK_EQ(H->state_kind(&st, "lines[0]", &k), SL_OK);
	CHECK_EQ(k, SL_KIND_MAP);
	CHECK_EQ(H->state_kind(&st, "", &k), SL_OK);
	CHECK_EQ(k, SL_KIND_MAP);
	CHECK_EQ(H->state_len(&st, "lines", &n), SL_OK);
	CHECK_EQ(n, 2);
	CHECK_EQ(H->state_len(&st, "", &n), SL_OK);
	CHECK_EQ(n, 3);
	CHECK_EQ(H->state_get_json(&st, "lines[1]", &s), SL_OK);
	CHECK_STREQ(s, "{\"sku\":\"b\",\"qty\":2}");

	/* iteration: the top map's keys in insertion order, then items */
	char keys[128] = "";
	for (size_t x = 0; H->state_key(&st, "", x, &s) == SL_OK; x++)
		snprintf(keys + strlen(keys), sizeof(keys) - strlen(keys),
		    "%s%s", x > 0 ? "," : "", s);
	CHECK_STREQ(keys, "cart,totals,lines");
	int64_t qty = 0;
	CHECK_EQ(H->state_len(&st, "lines", &n), SL_OK);
	for (size_t x = 0; x < n; x++) {
		char path[64];
		snprintf(path, sizeof(path), "lines[%zu].qty", x);
		CHECK_EQ(H->state_get_i64(&st, path, &i), SL_OK);
		qty += i;
	}
	CHECK_EQ(qty, 3);

	/* the whole state as msgpack is what the processor stores */
	const void     *mp;
	size_t          mlen;
	msgpack_sbuffer sb;
	CHECK_EQ(H->state_get_msgpack(&st, "", &mp, &mlen), SL_OK);
	pack_state(&st, &sb);
	CHECK_EQ(mlen, sb.size);
	CHECK(memcmp(mp, sb.data, mlen) == 0);

	/* every refused call leaves the state as it was */
	static const char nul_key[]
	    = { (char) 0x81, (char) 0xa2, 'a', 0, (char) 0x01 };
	static const char int_key[] = { (char) 0x81, 0x01, 0x02 };
	static const char dup_key[]
	    = { (char) 0x82, (char) 0xa1, 'a', 1, (char) 0xa1, 'a', 2 };
	static const char trailing[] = { (char) 0x80, (char) 0xc0 };
	CHECK_EQ(H->state_put_str(&st, "cart.id", "x"), SL_EINVAL);
	CHECK_EQ(H->state_put_i64(&st, "lines[5].qty", 1), SL_ENOTFOUND);
	CHECK_EQ(H->state_put_i64(&st, "lines.qty", 1), SL_EINVAL);
	CHECK_EQ(H->state_put_i64(&st, "new[0].qty", 1), SL_ENOTFOUND);
	CHECK_EQ(H->state_put_i64(&st, "new.deeper[0]", 1), SL_ENOTFOUND);
	CHECK_EQ(H->state_put_i64(&st, "lines[0]x", 1), SL_EINVAL);
	CHECK_EQ(H->state_put_i64(&st, "", 1), SL_EINVAL);
	CHECK_EQ(H->state_put_str(&st, "x", NULL), SL_EINVAL);
	CHECK_EQ(H->state_put_str(NULL, "x", "y"), SL_EINVAL);
	CHECK_EQ(H->state_put_json(&st, "x", "{bad"), SL_EINVAL);
	CHECK_EQ(H->state_put_json(&st, "x", "{\"a\":1,\"a\":2}"), SL_EINVAL);
	CHECK_EQ(H->state_put_json(&st, "x", "1 2"), SL_EINVAL);
	CHECK_EQ(H->state_put_json(&st, "x", NULL), SL_EINVAL);
	CHECK_EQ(H->state_put_json(&st, "", "[1]"), SL_EINVAL);
	CHECK_EQ(H->state_put_msgpack(&st, "x", trailing, 2), SL_EINVAL);
	CHECK_EQ(H->state_put_msgpack(&st, "x", int_key, 3), SL_EINVAL);
	CHECK_EQ(H->state_put_msgpack(&st, "x", dup_key, 7), SL_EINVAL);
	CHECK_EQ(H->state_put_msgpack(&st, "x", nul_key, 5), SL_EINVAL);
	CHECK_EQ(H->state_put_msgpack(&st, "x", dup_key, 0), SL_EINVAL);
	CHECK_EQ(H->state_put_msgpack(&st, "x", NULL, 1), SL_EINVAL);
	CHECK_EQ(H->state_array_append(&st, "cart", "1"), SL_EINVAL);
	CHECK_EQ(H->state_array_append(&st, "lines", "{"), SL_EINVAL);
	CHECK_EQ(H->state_array_insert(&st, "lines", 3, "1"), SL_ENOTFOUND);
	CHECK_EQ(H->state_array_insert(&st, "none", 1, "1"), SL_ENOTFOUND);
	CHECK_EQ(H->state_array_remove(&st, "lines", 2), SL_ENOTFOUND);
	CHECK_EQ(H->state_array_remove(&st, "cart", 0), SL_EINVAL);
	CHECK_EQ(H->state_array_remove(&st, "none", 0), SL_ENOTFOUND);
	CHECK_EQ(H->state_delete(&st, "none"), SL_ENOTFOUND);
	CHECK_EQ(H->state_delete(&st, "cart.x"), SL_ENOTFOUND);
	CHECK_EQ(H->state_delete(&st, "lines[2]"), SL_ENOTFOUND);
	CHECK_EQ(H->state_delete(&st, ""), SL_EINVAL);
	CHECK_EQ(H->state_delete(&st, "a..b"), SL_EINVAL);
	expect_json(&st, CART);

	/* getters: absent, through another kind, of another kind */
	CHECK_EQ(H->state_get_str(&st, "nope", &s), SL_ENOTFOUND);
	CHECK_EQ(H->state_get_str(&st, "cart.x", &s), SL_ENOTFOUND);
	CHECK_EQ(H->state_get_str(&st, "lines[2].sku", &s), SL_ENOTFOUND);
	CHECK_EQ(H->state_get_str(&st, "lines.sku", &s), SL_ENOTFOUND);
	CHECK_EQ(H->state_get_i64(&st, "cart", &i), SL_EINVAL);
	CHECK_EQ(H->state_get_bool(&st, "cart", &b), SL_EINVAL);
	CHECK_EQ(H->state_get_f64(&st, "lines", &f), SL_EINVAL);
	CHECK_EQ(H->state_len(&st, "cart", &n), SL_EINVAL);
	CHECK_EQ(H->state_key(&st, "lines", 0, &s), SL_EINVAL);
	CHECK_EQ(H->state_key(&st, "", 3, &s), SL_ENOTFOUND);
	CHECK_EQ(H->state_get_str(&st, "a[", &s), SL_EINVAL);
	CHECK_EQ(H->state_get_str(&st, "cart", NULL), SL_EINVAL);
	CHECK_EQ(H->state_kind(NULL, "cart", &k), SL_EINVAL);

	/* a string stays valid while other values change */
	CHECK_EQ(H->state_get_str(&st, "cart", &s), SL_OK);
	CHECK_EQ(H->state_put_bool(&st, "open", true), SL_OK);
	CHECK_EQ(H->state_put_f64(&st, "totals.amount", 2.5), SL_OK);
	CHECK_EQ(H->state_put_nil(&st, "note"), SL_OK);
	CHECK_STREQ(s, "c-1");
	CHECK_EQ(H->state_get_bool(&st, "open", &b), SL_OK);
	CHECK(b);

	/* removing: a map key, an array item (the rest move down) */
	CHECK_EQ(H->state_delete(&st, "lines[0]"), SL_OK);
	CHECK_EQ(H->state_get_str(&st, "lines[0].sku", &s), SL_OK);
	CHECK_STREQ(s, "b");
	CHECK_EQ(H->state_array_remove(&st, "lines", 0), SL_OK);
	CHECK_EQ(H->state_len(&st, "lines", &n), SL_OK);
	CHECK_EQ(n, 0);
	CHECK_EQ(H->state_delete(&st, "note"), SL_OK);
	CHECK_EQ(H->state_delete(&st, "totals.items"), SL_OK);
	expect_json(&st,
	    "{\"cart\":\"c-1\",\"totals\":{\"amount\":2.5},\"lines\":[],"
	    "\"open\":true}");

	/* subtrees from JSON and msgpack; the whole state replaced */
	CHECK_EQ(H->state_put_json(&st, "lines", "[{\"sku\":\"z\"},3,null]"),
	    SL_OK);
	CHECK_EQ(H->state_put_json(&st, "totals", "7"), SL_OK);
	CHECK_EQ(H->state_get_msgpack(&st, "lines[0]", &mp, &mlen), SL_OK);
	CHECK_EQ(H->state_put_msgpack(&st, "copy", mp, mlen), SL_OK);
	expect_json(&st,
	    "{\"cart\":\"c-1\",\"totals\":7,\"lines\":[{\"sku\":\"z\"},3,"
	    "null],\"open\":true,\"copy\":{\"sku\":\"z\"}}");
	CHECK_EQ(H->state_put_json(&st, "", "{\"fresh\":[1,2]}"), SL_OK);
	expect_json(&st, "{\"fresh\":[1,2]}");
	CHECK_EQ(H->state_put_msgpack(&st, "", sb.data, sb.size), SL_OK);
	expect_json(&st, CART);
	msgpack_sbuffer_destroy(&sb);

	/* 1.0 keys are top-level keys as they are: ["a.b"] in 1.3 */
	CHECK_EQ(H->state_set_str(&st, "a.b", "flat"), SL_OK);
	CHECK_EQ(H->state_get_str(&st, "[\"a.b\"]", &s), SL_OK);
	CHECK_STREQ(s, "flat");
	CHECK_EQ(H->state_get_str(&st, "a.b", &s), SL_ENOTFOUND);
	CHECK_EQ(H->state_put_i64(&st, "[\"x.y\"]", 5), SL_OK);
	CHECK_EQ(H->state_i64(&st, "x.y", &i), SL_OK);
	CHECK_EQ(i, 5);
	CHECK_EQ(H->state_str(&st, "lines", &s), SL_EINVAL); /* an array */
	CHECK_EQ(H->state_remove(&st, "[\"x.y\"]"), SL_ENOTFOUND);
	CHECK_EQ(H->state_remove(&st, "x.y"), SL_OK);
	CHECK_EQ(H->state_remove(&st, "a.b"), SL_OK);
	expect_json(&st, CART);
	state_free(&st);
}

/* A value nested d maps deep, as JSON: {"a":{"a":...1...}}. */
static char *
nested_json(int d)
{
	char *s = malloc((size_t) d * 6 + 2);
	CHECK(s != NULL);
	s[0] = '\0';
	for (int i = 0; i < d; i++)
		strcat(s, "{\"a\":");
	strcat(s, "1");
	for (int i = 0; i < d; i++)
		strcat(s, "}");
	return s;
}

static void
test_limits(void)
{
	sl_state st;
	state_init(&st);
	/* depth: the state's own map counts as one */
	char *ok   = nested_json(SL_DOC_MAX_DEPTH);
	char *deep = nested_json(SL_DOC_MAX_DEPTH + 1);
	CHECK_EQ(H->state_put_json(&st, "", ok), SL_OK);
	CHECK_EQ(H->state_put_json(&st, "", deep), SL_ETOOBIG);
	CHECK_EQ(H->state_put_json(&st, "b", ok), SL_ETOOBIG);
	free(ok);
	free(deep);
	ok = nested_json(SL_DOC_MAX_DEPTH - 1);
	CHECK_EQ(H->state_put_json(&st, "", "{}"), SL_OK);
	CHECK_EQ(H->state_put_json(&st, "b", ok), SL_OK);
	CHECK_EQ(H->state_array_append(&st, "c", ok), SL_ETOOBIG);
	free(ok);
	/* a path of 16 steps creates 15 maps; a scalar fits at the end */
	char path[128] = "p";
	for (int i = 1; i < SL_DOC_MAX_DEPTH; i++)
		strcat(path, ".p");
	CHECK_EQ(H->state_put_i64(&st, path, 1), SL_OK);
	CHECK_EQ(H->state_put_json(&st, path, "{}"), SL_ETOOBIG);
	CHECK_EQ(H->state_array_append(&st, path, "1"), SL_ETOOBIG);
	strcat(path, ".p");
	CHECK_EQ(H->state_put_i64(&st, path, 1), SL_ETOOBIG);
	/* msgpack nested deeper than msgpack-c decodes */
	char mp[40];
	memset(mp, 0x91, sizeof(mp)); /* [[[[...]]]] */
	mp[sizeof(mp) - 1] = (char) 0xc0;
	CHECK_EQ(H->state_put_msgpack(&st, "m", mp, sizeof(mp)), SL_ETOOBIG);

	/* size: SL_STATE_MAX_BYTES, counted as the state changes */
	CHECK_EQ(H->state_put_json(&st, "", "{}"), SL_OK);
	size_t big_len = 3u << 20;
	char  *big     = malloc(big_len + 1);
	CHECK(big != NULL);
	memset(big, 'x', big_len);
	big[big_len] = '\0';
	CHECK_EQ(H->state_put_str(&st, "big", big), SL_OK);
	big[1u << 20] = '\0';
	CHECK_EQ(H->state_put_str(&st, "more", big), SL_ETOOBIG);
	CHECK_EQ(H->state_array_append(&st, "list", "\"x\""), SL_OK);
	/* replacing big with a smaller value makes room */
	CHECK_EQ(H->state_put_str(&st, "big", big), SL_OK);
	CHECK_EQ(H->state_put_str(&st, "more", big), SL_OK);
	CHECK_EQ(H->state_put_str(&st, "more2", big), SL_OK);
	CHECK_EQ(H->state_put_str(&st, "more3", big), SL_ETOOBIG);
	CHECK_EQ(H->state_array_append(&st, "list", "\"x\""), SL_OK);
	size_t n;
	CHECK_EQ(H->state_len(&st, "", &n), SL_OK);
	CHECK_EQ(n, 4);
	check_bound(&st);
	/* JSON text longer than the limit is refused before it is parsed */
	char *text = malloc(SL_STATE_MAX_BYTES + 8);
	CHECK(text != NULL);
	memset(text, ' ', SL_STATE_MAX_BYTES + 7);
	text[0]                      = '1';
	text[SL_STATE_MAX_BYTES + 7] = '\0';
	CHECK_EQ(H->state_put_json(&st, "t", text), SL_ETOOBIG);
	free(text);
	/* the 1.0 setters are not limited, as before 1.3 */
	CHECK_EQ(H->state_set_str(&st, "more4", big), SL_OK);
	CHECK_EQ(H->state_set_str(&st, "more5", big), SL_OK);
	free(big);
	check_bound(&st);
	state_free(&st);
}

/* ---- a loaded state: raw parts, opened only when walked into ---- */

static void
test_loaded_raw(void)
{
	/* as a 1.2 host stored it: nested values kept encoded */
	msgpack_sbuffer in;
	msgpack_packer  pk;
	msgpack_sbuffer_init(&in);
	msgpack_packer_init(&pk, &in, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 6);
	pack_key(&pk, "nested");
	msgpack_pack_map(&pk, 2);
	pack_key(&pk, "a");
	msgpack_pack_array(&pk, 3);
	msgpack_pack_int64(&pk, 1);
	msgpack_pack_double(&pk, 2.5);
	msgpack_pack_map(&pk, 1);
	pack_key(&pk, "x");
	msgpack_pack_true(&pk);
	pack_key(&pk, "b");
	msgpack_pack_str(&pk, 3);
	msgpack_pack_str_body(&pk, "two", 3);
	pack_key(&pk, "bin");
	msgpack_pack_bin(&pk, 2);
	msgpack_pack_bin_body(&pk, "\x01\x02", 2);
	pack_key(&pk, "huge");
	msgpack_pack_uint64(&pk, UINT64_MAX);
	pack_key(&pk, "intkeys"); /* a map a path cannot walk */
	msgpack_pack_map(&pk, 1);
	msgpack_pack_int64(&pk, 7);
	msgpack_pack_nil(&pk);
	pack_key(&pk, "f32"); /* another encoder's float32, in a raw part */
	msgpack_pack_array(&pk, 1);
	msgpack_pack_float(&pk, 0.5f);
	pack_key(&pk, "n");
	msgpack_pack_int64(&pk, 1);

	sl_state st;
	state_init(&st);
	CHECK_EQ(state_load(&st, in.data, in.size), SL_OK);
	CHECK_EQ(st.root.u.m.e[0].val.kind, DOC_RAW);

	/* reading the top level only: nothing is opened */
	sl_kind     k;
	const char *s;
	int64_t     i;
	double      f;
	size_t      n;
	CHECK_EQ(H->state_kind(&st, "nested", &k), SL_OK);
	CHECK_EQ(k, SL_KIND_MAP);
	CHECK_EQ(H->state_kind(&st, "bin", &k), SL_OK);
	CHECK_EQ(k, SL_KIND_BIN);
	CHECK_EQ(H->state_kind(&st, "huge", &k), SL_OK);
	CHECK_EQ(k, SL_KIND_INT);
	CHECK_EQ(H->state_get_i64(&st, "huge", &i), SL_EINVAL);
	CHECK_EQ(H->state_get_f64(&st, "huge", &f), SL_OK);
	CHECK(f == (double) UINT64_MAX);
	CHECK_EQ(H->state_get_json(&st, "intkeys", &s), SL_OK);
	CHECK_STREQ(s, "{\"7\":null}");
	CHECK_EQ(st.root.u.m.e[0].val.kind, DOC_RAW);

	/* walking in opens what it passes, and packs the same bytes back
	 * while nothing changed; the part not walked (f32) stays as it was */
	CHECK_EQ(H->state_get_str(&st, "nested.b", &s), SL_OK);
	CHECK_STREQ(s, "two");
	CHECK_EQ(st.root.u.m.e[0].val.kind, DOC_MAP);
	CHECK_EQ(H->state_len(&st, "nested.a", &n), SL_OK);
	CHECK_EQ(n, 3);
	CHECK_EQ(H->state_kind(&st, "nested.a[2].x", &k), SL_OK);
	CHECK_EQ(k, SL_KIND_BOOL);
	msgpack_sbuffer out;
	pack_state(&st, &out);
	CHECK_EQ(out.size, in.size);
	CHECK(memcmp(out.data, in.data, in.size) == 0);
	msgpack_sbuffer_destroy(&out);
	check_bound(&st);
	CHECK_EQ(H->state_get_str(&st, "intkeys.x", &s), SL_ENOTFOUND);
	CHECK_EQ(H->state_len(&st, "intkeys", &n), SL_EINVAL);
	CHECK_EQ(H->state_put_i64(&st, "intkeys.x", 1), SL_EINVAL);

	/* a change deep inside keeps everything else */
	CHECK_EQ(H->state_put_i64(&st, "nested.a[2].y", 2), SL_OK);
	CHECK_EQ(H->state_get_json(&st, "nested", &s), SL_OK);
	CHECK_STREQ(s, "{\"a\":[1,2.5,{\"x\":true,\"y\":2}],\"b\":\"two\"}");
	check_bound(&st);
	/* and loads back */
	sl_state st2;
	state_init(&st2);
	pack_state(&st, &out);
	CHECK_EQ(state_load(&st2, out.data, out.size), SL_OK);
	CHECK_EQ(H->state_get_i64(&st2, "nested.a[2].y", &i), SL_OK);
	CHECK_EQ(i, 2);
	msgpack_sbuffer_destroy(&out);
	state_free(&st2);
	state_free(&st);
	msgpack_sbuffer_destroy(&in);
}

/* ---- events ---- */

#define CONTENT                                                               \
	"{\"cart\":\"c-1\",\"lines\":[{\"sku\":\"apple.green\",\"qty\":2,"    \
	"\"price\":{\"amount\":150,\"currency\":\"EUR\"}}],\"tags\":[\"x\","  \
	"\"y\"],\"a.b\":\"dotted\",\"empty\":{},\"ratio\":0.25}"
#define METADATA                                                              \
	"{\"user\":{\"id\":42,\"roles\":[\"admin\"]},\"trusted\":true,"       \
	"\"score\":-1.5,\"seq\":7,\"note\":null,\"channel\":\"web\"}"

static void
test_events(void)
{
	test_event t;
	event_make_meta(&t, 9, "ItemAdded", "cart-1", CONTENT, METADATA);
	const sl_event *ev = &t.ev;
	const char     *s;
	const void     *mp;
	size_t          n;
	int64_t         i;
	double          f;
	bool            b;
	sl_kind         k;
	host_scratch_reset();

	/* whole, as JSON and msgpack */
	CHECK_EQ(H->event_get_json(ev, SL_CONTENT, "", &s), SL_OK);
	CHECK_STREQ(s, CONTENT);
	CHECK_EQ(H->event_get_json(ev, SL_METADATA, NULL, &s), SL_OK);
	CHECK_STREQ(s, METADATA);
	CHECK_EQ(H->event_get_msgpack(ev, SL_CONTENT, "", &mp, &n), SL_OK);
	CHECK_EQ(n, t.content.sb.size);
	CHECK(memcmp(mp, t.content.sb.data, n) == 0);
	CHECK_EQ(H->event_get_msgpack(ev, SL_METADATA, "", &mp, &n), SL_OK);
	CHECK_EQ(n, t.metadata.sb.size);
	CHECK(memcmp(mp, t.metadata.sb.data, n) == 0);
	CHECK_EQ(
	    H->event_get_json(ev, SL_CONTENT, "lines[0].price", &s), SL_OK);
	CHECK_STREQ(s, "{\"amount\":150,\"currency\":\"EUR\"}");

	/* metadata that is not a string */
	CHECK_EQ(H->event_get_i64(ev, SL_METADATA, "user.id", &i), SL_OK);
	CHECK_EQ(i, 42);
	CHECK_EQ(H->event_get_i64(ev, SL_METADATA, "seq", &i), SL_OK);
	CHECK_EQ(i, 7);
	CHECK_EQ(H->event_get_bool(ev, SL_METADATA, "trusted", &b), SL_OK);
	CHECK(b);
	CHECK_EQ(H->event_get_f64(ev, SL_METADATA, "score", &f), SL_OK);
	CHECK(f == -1.5);
	CHECK_EQ(H->event_get_f64(ev, SL_METADATA, "seq", &f), SL_OK);
	CHECK(f == 7.0);
	CHECK_EQ(H->event_kind(ev, SL_METADATA, "note", &k), SL_OK);
	CHECK_EQ(k, SL_KIND_NIL);
	CHECK_EQ(
	    H->event_get_str(ev, SL_METADATA, "user.roles[0]", &s), SL_OK);
	CHECK_STREQ(s, "admin");
	CHECK_EQ(H->event_get_str(ev, SL_METADATA, "channel", &s), SL_OK);
	CHECK_STREQ(s, "web");
	CHECK_EQ(H->event_get_str(ev, SL_METADATA, "seq", &s), SL_EINVAL);
	CHECK_EQ(H->event_get_i64(ev, SL_METADATA, "score", &i), SL_EINVAL);
	CHECK_EQ(H->event_get_bool(ev, SL_METADATA, "seq", &b), SL_EINVAL);

	/* content paths: indexes, a key with a dot, kinds, lengths, keys */
	CHECK_EQ(H->event_get_i64(ev, SL_CONTENT, "lines[0].price.amount", &i),
	    SL_OK);
	CHECK_EQ(i, 150);
	CHECK_EQ(H->event_get_str(ev, SL_CONTENT, "lines[-1].sku", &s), SL_OK);
	CHECK_STREQ(s, "apple.green");
	CHECK_EQ(H->event_get_str(ev, SL_CONTENT, "[\"a.b\"]", &s), SL_OK);
	CHECK_STREQ(s, "dotted");
	CHECK_EQ(H->event_get_str(ev, SL_CONTENT, "a.b", &s), SL_ENOTFOUND);
	CHECK_EQ(H->event_get_str(ev, SL_CONTENT, "tags[1]", &s), SL_OK);
	CHECK_STREQ(s, "y");
	CHECK_EQ(
	    H->event_get_str(ev, SL_CONTENT, "tags[2]", &s), SL_ENOTFOUND);
	CHECK_EQ(H->event_get_str(ev, SL_CONTENT, "tags.0", &s), SL_ENOTFOUND);
	CHECK_EQ(
	    H->event_get_str(ev, SL_CONTENT, "cart[0]", &s), SL_ENOTFOUND);
	CHECK_EQ(H->event_get_f64(ev, SL_CONTENT, "ratio", &f), SL_OK);
	CHECK(f == 0.25);
	CHECK_EQ(H->event_len(ev, SL_CONTENT, "lines", &n), SL_OK);
	CHECK_EQ(n, 1);
	CHECK_EQ(H->event_len(ev, SL_CONTENT, "empty", &n), SL_OK);
	CHECK_EQ(n, 0);
	CHECK_EQ(H->event_len(ev, SL_CONTENT, "", &n), SL_OK);
	CHECK_EQ(n, 6);
	CHECK_EQ(H->event_len(ev, SL_CONTENT, "cart", &n), SL_EINVAL);
	CHECK_EQ(H->event_kind(ev, SL_CONTENT, "lines[0]", &k), SL_OK);
	CHECK_EQ(k, SL_KIND_MAP);
	CHECK_EQ(H->event_kind(ev, SL_CONTENT, "tags", &k), SL_OK);
	CHECK_EQ(k, SL_KIND_ARRAY);
	CHECK_EQ(H->event_key(ev, SL_CONTENT, "", 3, &s), SL_OK);
	CHECK_STREQ(s, "a.b");
	CHECK_EQ(H->event_key(ev, SL_CONTENT, "lines[0].price", 1, &s), SL_OK);
	CHECK_STREQ(s, "currency");
	CHECK_EQ(H->event_key(ev, SL_CONTENT, "", 6, &s), SL_ENOTFOUND);
	CHECK_EQ(H->event_key(ev, SL_CONTENT, "tags", 0, &s), SL_EINVAL);
	/* bad arguments */
	CHECK_EQ(H->event_get_str(ev, (sl_part) 2, "cart", &s), SL_EINVAL);
	CHECK_EQ(H->event_get_str(ev, SL_CONTENT, "cart", NULL), SL_EINVAL);
	CHECK_EQ(H->event_get_str(NULL, SL_CONTENT, "cart", &s), SL_EINVAL);
	CHECK_EQ(H->event_get_str(ev, SL_CONTENT, "lines[", &s), SL_EINVAL);
	CHECK_EQ(
	    H->event_get_msgpack(ev, SL_CONTENT, "", &mp, NULL), SL_EINVAL);

	/* the 1.0 getters keep their 1.0 paths */
	CHECK_EQ(H->content_str(ev, "a.b", &s), SL_ENOTFOUND);
	CHECK_EQ(H->content_str(ev, "lines.0", &s), SL_ENOTFOUND);
	CHECK_EQ(H->metadata_str(ev, "user.id", &s), SL_EINVAL);
	CHECK_EQ(H->metadata_str(ev, "channel", &s), SL_OK);
	CHECK_STREQ(s, "web");

	/* what a state's JSON getter handed out lives on while the event is
	 * read in the same callback */
	sl_state st;
	state_init(&st);
	CHECK_EQ(H->state_put_json(&st, "", "{\"k\":\"v\"}"), SL_OK);
	host_scratch_reset();
	const char *j;
	CHECK_EQ(H->state_get_json(&st, "", &j), SL_OK);
	CHECK_EQ(H->event_get_json(ev, SL_CONTENT, "", &s), SL_OK);
	CHECK_STREQ(j, "{\"k\":\"v\"}");
	state_free(&st);
	event_free(&t);

	/* a link's content is a string */
	event_make(&t, 10, "$>", "$ce-cart", "{}");
	msgpack_sbuffer_destroy(&t.content.sb);
	msgpack_unpacked_destroy(&t.content.up);
	msgpack_sbuffer_init(&t.content.sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &t.content.sb, msgpack_sbuffer_write);
	msgpack_pack_str(&pk, 8);
	msgpack_pack_str_body(&pk, "9@cart-1", 8);
	mpdoc_decode(&t.content);
	t.v.content = t.content.up.data;
	CHECK_EQ(H->event_get_json(&t.ev, SL_CONTENT, "", &s), SL_OK);
	CHECK_STREQ(s, "\"9@cart-1\"");
	CHECK_EQ(H->event_kind(&t.ev, SL_CONTENT, "", &k), SL_OK);
	CHECK_EQ(k, SL_KIND_STR);
	CHECK_EQ(H->event_get_str(&t.ev, SL_CONTENT, "x", &s), SL_ENOTFOUND);
	event_free(&t);
	host_scratch_reset();
}

/* ---- the sl_ helpers (plugin-api/, linked here as into a plugin) ---- */

static void
test_helpers(void)
{
	test_event t;
	sl_state   st;
	char       path[64];
	CHECK_EQ(sl_bind(H), SL_OK);
	event_make_meta(&t, 3, "ItemAdded", "cart-1", CONTENT, METADATA);
	state_init(&st);

	CHECK_EQ(sl_ev_kind(&t.ev, SL_CONTENT, "lines"), SL_KIND_ARRAY);
	CHECK_EQ(sl_ev_kind(&t.ev, SL_CONTENT, "nope"), SL_KIND_NONE);
	CHECK_EQ(sl_ev_len(&t.ev, SL_CONTENT, "tags"), 2);
	CHECK_STREQ(sl_ev_key(&t.ev, SL_METADATA, "", 0), "user");
	CHECK_STREQ(
	    sl_ev_str(&t.ev, SL_CONTENT, "lines[0].sku"), "apple.green");
	CHECK(sl_ev_str(&t.ev, SL_CONTENT, "nope") == NULL);
	int64_t i;
	double  f;
	bool    b;
	CHECK_EQ(sl_ev_i64(&t.ev, SL_METADATA, "user.id", &i), SL_OK);
	CHECK_EQ(i, 42);
	CHECK_EQ(sl_ev_f64(&t.ev, SL_METADATA, "score", &f), SL_OK);
	CHECK_EQ(sl_ev_bool(&t.ev, SL_METADATA, "trusted", &b), SL_OK);
	CHECK_STREQ(sl_ev_json(&t.ev, SL_CONTENT, "tags"), "[\"x\",\"y\"]");
	const void *mp;
	size_t      n;
	CHECK_EQ(sl_ev_msgpack(&t.ev, SL_CONTENT, "lines[0]", &mp, &n), SL_OK);

	CHECK_EQ(sl_st_set_msgpack(&st, "line", mp, n), SL_OK);
	CHECK_EQ(
	    sl_st_set_json(&st, "tags", sl_ev_json(&t.ev, SL_CONTENT, "tags")),
	    SL_OK);
	CHECK_EQ(sl_st_set_str(&st, "s", "v"), SL_OK);
	CHECK_EQ(sl_st_set_i64(&st, "n.i", 4), SL_OK);
	CHECK_EQ(sl_st_set_f64(&st, "n.f", 0.5), SL_OK);
	CHECK_EQ(sl_st_set_bool(&st, "n.b", true), SL_OK);
	CHECK_EQ(sl_st_set_nil(&st, "n.z"), SL_OK);
	CHECK_EQ(sl_st_append(&st, "tags", "\"z\""), SL_OK);
	CHECK_EQ(sl_st_insert(&st, "tags", 0, "\"w\""), SL_OK);
	CHECK_EQ(sl_st_array_remove(&st, "tags", 1), SL_OK);
	CHECK_EQ(
	    sl_path_key(path, sizeof(path), "coupons", "SPRING.10"), SL_OK);
	CHECK_STREQ(path, "coupons[\"SPRING.10\"]");
	CHECK_EQ(sl_st_set_i64(&st, path, 10), SL_OK);
	CHECK_EQ(sl_st_i64(&st, path, 0), 10);
	CHECK_EQ(sl_st_kind(&st, "line.price"), SL_KIND_MAP);
	CHECK_EQ(sl_st_len(&st, "tags"), 3);
	CHECK_EQ(sl_st_len(&st, "s"), 0);
	CHECK_STREQ(sl_st_key(&st, "n", 2), "b");
	CHECK_STREQ(sl_st_str(&st, "tags[-1]"), "z");
	CHECK_EQ(sl_st_i64(&st, "n.i", 0), 4);
	CHECK_EQ(sl_st_i64(&st, "s", -1), -1);
	CHECK(sl_st_f64(&st, "n.f", 0) == 0.5);
	CHECK(sl_st_bool(&st, "n.b", false));
	CHECK_EQ(sl_st_remove(&st, "n.z"), SL_OK);
	CHECK_EQ(sl_st_msgpack(&st, "s", &mp, &n), SL_OK);
	CHECK_EQ(n, 2);
	CHECK_STREQ(sl_st_json(&st, ""),
	    "{\"line\":{\"sku\":\"apple.green\",\"qty\":2,\"price\":{"
	    "\"amount\":150,\"currency\":\"EUR\"}},\"tags\":[\"w\",\"y\","
	    "\"z\"],\"s\":\"v\",\"n\":{\"i\":4,\"f\":0.5,\"b\":true},"
	    "\"coupons\":{\"SPRING.10\":10}}");
	/* the 1.0 one that was missing */
	CHECK_EQ(sl_set_i64(&st, "flat", 1), SL_OK);
	CHECK_EQ(sl_state_remove(&st, "flat"), SL_OK);
	CHECK_EQ(sl_state_remove(&st, "flat"), SL_ENOTFOUND);

	/* sl_path_key: plain, quoted, escaped, too long */
	CHECK_EQ(sl_path_key(path, sizeof(path), NULL, "a"), SL_OK);
	CHECK_STREQ(path, "a");
	CHECK_EQ(sl_path_key(path, sizeof(path), "x[0]", "b"), SL_OK);
	CHECK_STREQ(path, "x[0].b");
	CHECK_EQ(sl_path_key(path, sizeof(path), "", "q\"\\[1]"), SL_OK);
	CHECK_STREQ(path, "[\"q\\\"\\\\[1]\"]");
	CHECK_EQ(sl_st_set_i64(&st, path, 1), SL_OK);
	CHECK_STREQ(sl_st_key(&st, "", 5), "q\"\\[1]");
	CHECK_EQ(sl_path_key(path, sizeof(path), "", ""), SL_OK);
	CHECK_STREQ(path, "[\"\"]");
	CHECK_EQ(sl_path_key(path, 5, "abc", "def"), SL_ETOOBIG);
	CHECK_STREQ(path, "");
	CHECK_EQ(sl_path_key(path, 8, "abc", "def"), SL_OK);
	CHECK_EQ(sl_path_key(NULL, 8, "abc", "def"), SL_EINVAL);

	/* on a host table of ABI 1.2 the 1.3 helpers say so */
	sl_host_api old = *H;
	old.struct_size = (uint32_t) offsetof(sl_host_api, event_kind);
	old.abi_version = (1u << 16) | 2u;
	CHECK_EQ(sl_bind(&old), SL_OK);
	CHECK_EQ(sl_st_set_i64(&st, "x", 1), SL_EVERSION);
	CHECK_EQ(sl_st_i64(&st, "n.i", -1), -1);
	CHECK(sl_st_json(&st, "") == NULL);
	CHECK_EQ(sl_ev_kind(&t.ev, SL_CONTENT, ""), SL_KIND_NONE);
	CHECK_EQ(sl_ev_i64(&t.ev, SL_METADATA, "seq", &i), SL_EVERSION);
	CHECK_EQ(sl_set_i64(&st, "flat", 2), SL_OK); /* 1.0 ones work */
	CHECK_EQ(sl_bind(H), SL_OK);
	state_free(&st);
	event_free(&t);
	host_scratch_reset();
}

int
main(void)
{
	H = host_api();
	CHECK(H->struct_size == sizeof(sl_host_api));
	CHECK(H->abi_version == SL_ABI_VERSION);
	CHECK_EQ(SL_ABI_MINOR, 3);
	test_paths();
	test_state_build();
	test_limits();
	test_loaded_raw();
	test_events();
	test_helpers();
	fprintf(stderr, "host_document_test: ok\n");
	return 0;
}
