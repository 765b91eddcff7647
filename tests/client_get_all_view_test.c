/*
 * Proves sl_client_get_all_view (client/getall.c) against a real runtime
 * and against replies no daemon sends: the view's keys and states are
 * get_all_mp's bytes and get_all's JSON; it pages with after/after_len;
 * limit 0 is 1,000, a larger one up to SL_GET_ALL_MAX_LIMIT; errors leave
 * the page empty; a state_bytes that is no bool is refused. A rep socket
 * on ipc:// then answers every truncation of real replies (states as maps,
 * as a daemon before state_bytes sends them, and inside bins), items
 * without a key or a state map (or a bin holding one), trailing bytes, an
 * error reply, another version and random corruptions: each is an error
 * code (or a page whose bytes all lie in the reply), never a crash, and
 * the client serves on.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include <sluice/client.h>

#include "api_fixture.h"
#include "json.h"
#include "mp.h"
#include "server.h"

/* More than one largest page, so the cap shows. */
#define N_MODELS (SL_GET_ALL_MAX_LIMIT + 50)

/* ---- against the runtime ---- */

static void
commit_accounts(sl_client *c, int n)
{
	char stream[32], content[96];
	for (int i = 0; i < n; i++) {
		sl_commit_result res;
		snprintf(stream, sizeof(stream), "acc-%05d", i);
		snprintf(content, sizeof(content),
		    "{\"account_id\":\"%s\",\"name\":\"Account %d\"}", stream,
		    i);
		sl_new_event e
		    = { .type = "DebitAccountOpened", .content_json = content };
		CHECK_EQ(sl_client_commit(c, FX_TENANT, stream,
		             SL_EXPECT_NO_STREAM, &e, 1, &res),
		    SL_OK);
	}
}

/* Page through every read model with the view; their number. */
static size_t
count_view(sl_client *c, size_t limit, size_t *pages)
{
	size_t n = 0;
	char   last[64];
	size_t last_len = 0;
	bool   first    = true, more;
	*pages          = 0;
	do {
		sl_read_models_view v;
		CHECK_EQ(sl_client_get_all_view(c, FX_TENANT, FX_PROJECTION,
		             first ? NULL : last, last_len, limit, &v),
		    SL_OK);
		(*pages)++;
		for (size_t i = 0; i < v.n_items; i++) {
			const sl_read_model_view *m = &v.items[i];
			/* strictly after the previous key, bytewise */
			if (!first || i > 0) {
				size_t k = m->key_len < last_len ? m->key_len
				                                 : last_len;
				int    d = memcmp(m->key, last, k);
				CHECK(d > 0 || (d == 0 && m->key_len > last_len));
			}
			CHECK(m->key_len < sizeof(last));
			memcpy(last, m->key, m->key_len);
			last_len = m->key_len;
			first    = false;
		}
		n += v.n_items;
		more = v.more;
		CHECK(v.n_items > 0 || !more);
		sl_read_models_view_free(&v);
	} while (more);
	return n;
}

/* The view, get_all_mp and get_all agree on one page. */
static void
check_same_page(sl_client *c, const char *after, size_t limit)
{
	sl_read_models_view v;
	sl_read_models_mp   mp;
	sl_read_models      js;
	CHECK_EQ(sl_client_get_all_view(c, FX_TENANT, FX_PROJECTION, after,
	             after != NULL ? strlen(after) : 0, limit, &v),
	    SL_OK);
	CHECK_EQ(sl_client_get_all_mp(
	             c, FX_TENANT, FX_PROJECTION, after, limit, &mp),
	    SL_OK);
	CHECK_EQ(
	    sl_client_get_all(c, FX_TENANT, FX_PROJECTION, after, limit, &js),
	    SL_OK);
	CHECK(v.n_items > 0);
	CHECK_EQ(v.n_items, mp.n_items);
	CHECK_EQ(v.n_items, js.n_items);
	CHECK(v.more == mp.more && v.more == js.more);
	for (size_t i = 0; i < v.n_items; i++) {
		const sl_read_model_view *m = &v.items[i];
		CHECK_EQ(m->key_len, strlen(mp.items[i].key));
		CHECK(memcmp(m->key, mp.items[i].key, m->key_len) == 0);
		CHECK_STREQ(mp.items[i].key, js.items[i].key);
		CHECK_EQ(m->state_len, mp.items[i].state_len);
		CHECK(memcmp(m->state, mp.items[i].state, m->state_len) == 0);
		fx_check_state_json(
		    m->state, m->state_len, js.items[i].state_json);
	}
	sl_read_models_view_free(&v);
	sl_read_models_mp_free(&mp);
	sl_read_models_free(&js);
	CHECK(v.items == NULL && v.reply == NULL && v.n_items == 0);
}

static void
check_runtime(sl_client *c)
{
	sl_read_models_view v;
	size_t              pages;

	commit_accounts(c, N_MODELS);
	/* the projection catches up: every model listed (a loaded machine
	 * may take long: the limit is time, not tries) */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	time_t end = ts.tv_sec + 120;
	for (;;) {
		size_t n = count_view(c, SL_GET_ALL_MAX_LIMIT, &pages);
		if (n == N_MODELS)
			break;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		if (ts.tv_sec > end)
			fprintf(stderr, "caught up to %zu of %d models\n", n,
			    N_MODELS);
		CHECK(ts.tv_sec <= end);
		struct timespec nap = { 0, 10 * 1000000L };
		nanosleep(&nap, NULL);
	}
	CHECK_EQ(pages, 2);
	CHECK_EQ(count_view(c, 0, &pages), N_MODELS); /* 0: pages of 1,000 */
	CHECK_EQ(pages, (N_MODELS + 999) / 1000);
	CHECK_EQ(count_view(c, 333, &pages), N_MODELS);
	CHECK_EQ(pages, (N_MODELS + 332) / 333);

	/* above the cap: the largest page, and more */
	CHECK_EQ(sl_client_get_all_view(c, FX_TENANT, FX_PROJECTION, NULL, 0,
	             5 * SL_GET_ALL_MAX_LIMIT, &v),
	    SL_OK);
	CHECK_EQ(v.n_items, SL_GET_ALL_MAX_LIMIT);
	CHECK(v.more);
	CHECK(v.items[0].key_len == 9
	    && memcmp(v.items[0].key, "acc-00000", 9) == 0);
	sl_read_models_view_free(&v);
	/* get_all (JSON) takes a page over 1,000 too */
	sl_read_models js;
	CHECK_EQ(sl_client_get_all(
	             c, FX_TENANT, FX_PROJECTION, "acc-00049", 20000, &js),
	    SL_OK);
	CHECK_EQ(js.n_items, SL_GET_ALL_MAX_LIMIT);
	CHECK(!js.more);
	CHECK_STREQ(js.items[0].key, "acc-00050");
	sl_read_models_free(&js);

	check_same_page(c, NULL, 0);
	check_same_page(c, "acc-09990", 25);
	check_same_page(c, NULL, 3);

	/* after the last key: an empty page */
	CHECK_EQ(sl_client_get_all_view(c, FX_TENANT, FX_PROJECTION,
	             "acc-99999", 9, 0, &v),
	    SL_OK);
	CHECK(v.n_items == 0 && !v.more);
	sl_read_models_view_free(&v);

	/* errors: the page stays empty */
	memset(&v, 0xab, sizeof(v));
	CHECK_EQ(sl_client_get_all_view(
	             c, "nobody", FX_PROJECTION, NULL, 0, 0, &v),
	    SL_ENOTFOUND);
	CHECK(v.items == NULL && v.reply == NULL && v.n_items == 0);
	CHECK_EQ(sl_client_get_all_view(c, FX_TENANT, "nope", NULL, 0, 0, &v),
	    SL_ENOTFOUND);
	CHECK(strlen(sl_client_last_error(c)) > 0);
	CHECK_EQ(sl_client_get_all_view(c, NULL, FX_PROJECTION, NULL, 0, 0, &v),
	    SL_EINVAL);
	CHECK_EQ(sl_client_get_all_view(
	             c, FX_TENANT, FX_PROJECTION, NULL, 0, 0, NULL),
	    SL_EINVAL);
	sl_read_models_view_free(NULL);
}

/* ---- replies no daemon sends ---- */

typedef struct fake {
	nng_socket      sock;
	pthread_t       th;
	pthread_mutex_t mu;
	unsigned char  *reply;
	size_t          len;
	atomic_bool     stop;
} fake;

static void *
fake_main(void *arg)
{
	fake *f = arg;
	while (!atomic_load(&f->stop)) {
		nng_msg *m;
		if (nng_recvmsg(f->sock, &m, 0) != 0)
			continue;
		pthread_mutex_lock(&f->mu);
		CHECK(nng_msg_realloc(m, f->len) == 0);
		if (f->len > 0)
			memcpy(nng_msg_body(m), f->reply, f->len);
		pthread_mutex_unlock(&f->mu);
		if (nng_sendmsg(f->sock, m, 0) != 0)
			nng_msg_free(m);
	}
	return NULL;
}

static void
fake_set(fake *f, const void *p, size_t len)
{
	pthread_mutex_lock(&f->mu);
	free(f->reply);
	f->reply = malloc(len > 0 ? len : 1);
	CHECK(f->reply != NULL);
	memcpy(f->reply, p, len);
	f->len = len;
	pthread_mutex_unlock(&f->mu);
}

/* The view of reply[0..len): its code; on SL_OK every item's bytes are
 * read (the sanitizers see a pointer outside the reply) and checked to lie
 * in it. */
static int
view_of(fake *f, sl_client *c, const void *reply, size_t len, size_t *n)
{
	sl_read_models_view v;
	fake_set(f, reply, len);
	int rc = sl_client_get_all_view(
	    c, FX_TENANT, FX_PROJECTION, NULL, 0, 0, &v);
	*n = v.n_items;
	if (rc != SL_OK) {
		CHECK(v.items == NULL && v.reply == NULL && v.n_items == 0);
		CHECK(strlen(sl_client_last_error(c)) > 0);
		return rc;
	}
	const char *body = nng_msg_body(v.reply);
	size_t      blen = nng_msg_len(v.reply);
	unsigned    sum  = 0;
	for (size_t i = 0; i < v.n_items; i++) {
		const sl_read_model_view *m = &v.items[i];
		const char               *s = m->state;
		CHECK(m->key >= body && m->key + m->key_len <= body + blen);
		CHECK(s >= body && s + m->state_len <= body + blen);
		CHECK(m->state_len > 0);
		for (size_t k = 0; k < m->key_len; k++)
			sum += (unsigned char) m->key[k];
		for (size_t k = 0; k < m->state_len; k++)
			sum += (unsigned char) s[k];
	}
	(void) sum;
	sl_read_models_view_free(&v);
	return rc;
}

/* A reply packed by hand: items as given (raw msgpack), then more. */
static void
pack_page(msgpack_sbuffer *sb, uint64_t v, const char *items_raw,
    size_t items_len, uint32_t n_items)
{
	msgpack_packer pk;
	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 4);
	mp_pack_kv_u64(&pk, "v", v);
	mp_pack_kv_bool(&pk, "ok", true);
	mp_pack_cstr(&pk, "items");
	msgpack_pack_array(&pk, n_items);
	msgpack_sbuffer_write(sb, items_raw, items_len);
	mp_pack_kv_bool(&pk, "more", false);
}

/* A get_all reply of three as its bytes; state_bytes NULL: not asked,
 * else its value as JSON-ish text ("true", or a string to be refused:
 * then NULL and SL_EPROTO). */
static void *
raw_page(sl_client *real, const char *state_bytes, size_t *len)
{
	msgpack_sbuffer req;
	msgpack_packer  pk;
	void           *reply = NULL;
	msgpack_sbuffer_init(&req);
	msgpack_packer_init(&pk, &req, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 5 + (state_bytes != NULL));
	mp_pack_kv_u64(&pk, "v", SL_PROTOCOL_VERSION);
	mp_pack_kv_str(&pk, "op", "get_all");
	mp_pack_kv_str(&pk, "tenant", FX_TENANT);
	mp_pack_kv_str(&pk, "projection", FX_PROJECTION);
	mp_pack_kv_u64(&pk, "limit", 3);
	if (state_bytes != NULL && strcmp(state_bytes, "true") == 0)
		mp_pack_kv_bool(&pk, "state_bytes", true);
	else if (state_bytes != NULL)
		mp_pack_kv_str(&pk, "state_bytes", state_bytes);
	int rc = sl_client_request(real, req.data, req.size, &reply, len);
	msgpack_sbuffer_destroy(&req);
	if (state_bytes != NULL && strcmp(state_bytes, "true") != 0) {
		/* the request is refused, the reply says why */
		CHECK_EQ(rc, SL_EPROTO);
		CHECK(strstr(sl_client_last_error(real), "state_bytes") != NULL);
		sl_client_free(reply);
		return NULL;
	}
	CHECK_EQ(rc, SL_OK);
	return reply;
}

static void
check_malformed(sl_client *real)
{
	char url[4300];
	snprintf(url, sizeof(url), "ipc://%s/fake.ipc", tu_tmpdir());

	/* real pages of three, as the daemon sends them: states as maps
	 * (a daemon before state_bytes) and inside bins */
	msgpack_packer pk;
	size_t         glen, blen;
	void          *good  = raw_page(real, NULL, &glen);
	void          *gbin  = raw_page(real, "true", &blen);
	CHECK(blen > glen); /* a bin header per state */
	CHECK(raw_page(real, "\"yes\"", &(size_t) { 0 }) == NULL);

	fake f = { 0 };
	pthread_mutex_init(&f.mu, NULL);
	atomic_init(&f.stop, false);
	CHECK(nng_rep0_open(&f.sock) == 0);
	nng_socket_set_ms(f.sock, NNG_OPT_RECVTIMEO, 20);
	CHECK(nng_listen(f.sock, url, NULL, 0) == 0);
	CHECK(pthread_create(&f.th, NULL, fake_main, &f) == 0);
	sl_client *c;
	CHECK_EQ(sl_client_open(url, 5000, &c), SL_OK);

	size_t n;
	CHECK_EQ(view_of(&f, c, good, glen, &n), SL_OK);
	CHECK_EQ(n, 3);
	CHECK_EQ(view_of(&f, c, gbin, blen, &n), SL_OK);
	CHECK_EQ(n, 3);
	/* every truncation, of both */
	for (size_t len = 0; len < glen; len++)
		CHECK_EQ(view_of(&f, c, good, len, &n), SL_EPROTO);
	for (size_t len = 0; len < blen; len++)
		CHECK_EQ(view_of(&f, c, gbin, len, &n), SL_EPROTO);
	/* a byte after the reply */
	unsigned char *longer = malloc(glen + 1);
	CHECK(longer != NULL);
	memcpy(longer, good, glen);
	longer[glen] = 0xc0;
	CHECK_EQ(view_of(&f, c, longer, glen + 1, &n), SL_EPROTO);
	CHECK(strstr(sl_client_last_error(c), "after the reply") != NULL);
	free(longer);

	/* items that are not {key: str, state: map} */
	static const struct {
		const char *raw;
		size_t      len;
		uint32_t    n;
		const char *what;
	} bad[] = {
#define RAW(s) s, sizeof(s) - 1
		{ RAW("\x81\xa5state\x80"), 1, "no key" },
		{ RAW("\x81\xa3key\xa1k"), 1, "no state" },
		{ RAW("\x82\xa3key\x01\xa5state\x80"), 1,
		    "a key that is no string" },
		{ RAW("\x82\xa3key\xa1k\xa5state\xa1x"), 1,
		    "a state that is no map" },
		{ RAW("\x82\xa3key\xa1k\xa5state\x91\x80"), 1,
		    "a state array" },
		{ RAW("\x92\x01\x02"), 1, "an item that is no map" },
		{ RAW("\x82\xa3key\xa1k\xa5state\x80"), 2,
		    "fewer items than said" },
		{ RAW("\x82\xa3key\xa1k\xa5state\xc4\x00"), 1,
		    "an empty bin" },
		{ RAW("\x82\xa3key\xa1k\xa5state\xc4\x01\x01"), 1,
		    "a bin without a map" },
		{ RAW("\x82\xa3key\xa1k\xa5state\xc4\x03\x81\x01"), 1,
		    "a bin longer than the reply" },
		{ RAW("\x82\xa3key\xa1k\xa5state\xc7\x01\x01\x80"), 1,
		    "an ext" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		msgpack_sbuffer sb;
		pack_page(&sb, SL_PROTOCOL_VERSION, bad[i].raw, bad[i].len,
		    bad[i].n);
		int rc = view_of(&f, c, sb.data, sb.size, &n);
		if (rc != SL_EPROTO)
			fprintf(stderr, "%s: %d\n", bad[i].what, rc);
		CHECK_EQ(rc, SL_EPROTO);
		msgpack_sbuffer_destroy(&sb);
	}
	/* the same item well formed, with a field more (result): read;
	 * a state in a bin of each size */
	{
		msgpack_sbuffer sb;
		pack_page(&sb, SL_PROTOCOL_VERSION,
		    RAW("\x83\xa3key\xa1k\xa5state\xc5\x00\x03\x81\x01"
		        "\x02\xa6result\x80"),
		    1);
		CHECK_EQ(view_of(&f, c, sb.data, sb.size, &n), SL_OK);
		CHECK_EQ(n, 1);
		msgpack_sbuffer_destroy(&sb);
		pack_page(&sb, SL_PROTOCOL_VERSION,
		    RAW("\x82\xa3key\xa1k\xa5state\xc6\x00\x00\x00\x01"
		        "\x80"),
		    1);
		CHECK_EQ(view_of(&f, c, sb.data, sb.size, &n), SL_OK);
		CHECK_EQ(n, 1);
		msgpack_sbuffer_destroy(&sb);
		pack_page(&sb, SL_PROTOCOL_VERSION,
		    RAW("\x83\xa3key\xa1k\xa5state\x81\xa1x\x01\xa6result"
		        "\x80"),
		    1);
		CHECK_EQ(view_of(&f, c, sb.data, sb.size, &n), SL_OK);
		CHECK_EQ(n, 1);
		msgpack_sbuffer_destroy(&sb);
		/* another protocol version */
		pack_page(&sb, 7, "", 0, 0);
		CHECK_EQ(view_of(&f, c, sb.data, sb.size, &n), SL_EVERSION);
		msgpack_sbuffer_destroy(&sb);
		/* no items at all */
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		mp_reply_ok(&pk, 1);
		mp_pack_kv_bool(&pk, "more", false);
		CHECK_EQ(view_of(&f, c, sb.data, sb.size, &n), SL_EPROTO);
		CHECK(strstr(sl_client_last_error(c), "items") != NULL);
		/* an error reply: its code and message */
		msgpack_sbuffer_clear(&sb);
		mp_reply_err(&pk, SL_ENOTFOUND, "no such projection here");
		CHECK_EQ(view_of(&f, c, sb.data, sb.size, &n), SL_ENOTFOUND);
		CHECK_STREQ(
		    sl_client_last_error(c), "no such projection here");
		msgpack_sbuffer_destroy(&sb);
	}
	/* the copying variants refuse a truncation the same way */
	fake_set(&f, good, glen - 3);
	sl_read_models_mp mp;
	sl_read_models    js;
	CHECK_EQ(sl_client_get_all_mp(c, FX_TENANT, FX_PROJECTION, NULL, 0, &mp),
	    SL_EPROTO);
	CHECK(mp.items == NULL && mp.buf == NULL && mp.n_items == 0);
	CHECK_EQ(sl_client_get_all(c, FX_TENANT, FX_PROJECTION, NULL, 0, &js),
	    SL_EPROTO);
	CHECK(js.items == NULL && js.n_items == 0);

	/* random corruptions of the good replies: a code or a sound page */
	unsigned char *bytes = malloc(blen);
	CHECK(bytes != NULL);
	srand(17);
	for (int form = 0; form < 2; form++) {
		const void *src = form == 0 ? good : gbin;
		size_t      len = form == 0 ? glen : blen, ok = 0;
		for (int i = 0; i < 3000; i++) {
			memcpy(bytes, src, len);
			for (int k = 0, nk = 1 + rand() % 3; k < nk; k++)
				bytes[(size_t) rand() % len]
				    = (unsigned char) rand();
			int rc = view_of(&f, c, bytes, len, &n);
			CHECK(rc == SL_OK || rc == SL_EPROTO
			    || rc == SL_EVERSION || rc > 0);
			ok += rc == SL_OK;
		}
		CHECK(ok > 0 && ok < 3000);
	}
	free(bytes);

	/* and the client serves on */
	CHECK_EQ(view_of(&f, c, good, glen, &n), SL_OK);
	CHECK_EQ(n, 3);
	sl_client_close(c);
	atomic_store(&f.stop, true);
	pthread_join(f.th, NULL);
	server_close_socket(f.sock);
	pthread_mutex_destroy(&f.mu);
	free(f.reply);
	sl_client_free(good);
	sl_client_free(gbin);
}

int
main(void)
{
	sl_client *c;

	fx_start(NULL);
	CHECK_EQ(sl_client_open(fx_url, 10000, &c), SL_OK);
	check_runtime(c);
	check_malformed(c);
	/* the runtime served on through all of it */
	check_same_page(c, NULL, 10);
	sl_client_close(c);
	fx_stop();
	printf("client_get_all_view_test: ok\n");
	return 0;
}
