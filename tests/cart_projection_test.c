/*
 * The shopping cart of docs/plugins.md (plugins/cart.c, ABI 1.3: a read
 * model with nested maps, an array of maps and totals) in a real sluiced
 * over real LMDB stores: random cart events with nested content and
 * metadata that is not all strings are committed through the client, and
 * every read model, read with get_one and paged with get_all, equals a
 * recomputation done here with jansson. Then `reset`: the rebuilt
 * generation equals it again; a key with no events answers the initial
 * state.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <sluice/client.h>

#include "daemon_testutil.h"
#include "json_testutil.h"

#define TENANT  "shop"
#define PROJ_ID "c4a7e2d0-5f3b-4e8a-9b61-2f0d8c3e7a15"
#define N_CARTS 12
#define N_STEPS 240
#define WAIT_MS 30000

static char       dir[4096], cfg_path[4200], daemon_log[4200], url[4200];
static pid_t      daemon_pid = -1;
static sl_client *cl;

#define FAIL(...) DT_FAIL_LOG(daemon_log, __VA_ARGS__)

static void
cleanup(void)
{
	if (cl != NULL)
		sl_client_close(cl);
	cl = NULL;
	dt_kill_and_reap(&daemon_pid);
}

/* ---- the recomputation (what the cart projection should hold) ---- */

static const struct {
	const char *sku, *name;
	int         price;
} skus[] = {
	{ "apple.green", "Green apple", 50 },
	{ "apple.red", "Red apple", 45 },
	{ "bread", "Bread", 250 },
	{ "milk-1l", "Milk 1 l", 120 },
	{ "tea[green]", "Green tea", 399 },
	{ "z\"quoted\\", "A \"quoted\" name", 7 },
};
#define N_SKUS (sizeof(skus) / sizeof(skus[0]))

static const struct {
	const char *code;
	int         percent;
} coupons[] = { { "SPRING.10", 10 }, { "VIP", 25 }, { "a.b[c]", 5 } };

typedef struct cart {
	char    id[16];
	json_t *st; /* the expected read model */
	bool    opened;
} cart;

static json_t *
initial_state(void)
{
	return json_pack("{s:s,s:s,s:n,s:[],s:{},s:{s:i,s:i,s:i,s:i,s:i},s:i}",
	    "cart", "", "status", "open", "customer", "lines", "coupons",
	    "totals", "lines", 0, "items", 0, "amount", 0, "discount", 0,
	    "due", 0, "events", 0);
}

static long long
jget(json_t *o, const char *key)
{
	return (long long) json_integer_value(json_object_get(o, key));
}

/* The line of sku, or where it goes in sku order (*found false). */
static size_t
find_line(json_t *lines, const char *sku, bool *found)
{
	size_t i;
	for (i = 0; i < json_array_size(lines); i++) {
		int c = strcmp(jstr(json_array_get(lines, i), "sku"), sku);
		if (c >= 0) {
			*found = c == 0;
			return i;
		}
	}
	*found = false;
	return i;
}

/* Fold one event (content and metadata as JSON) into the expected cart. */
static void
fold(cart *c, const char *type, json_t *content, json_t *meta)
{
	json_t *st = c->st, *lines = json_object_get(st, "lines");
	if (strcmp(jstr(st, "status"), "checked_out") == 0)
		return;
	json_object_set_new(st, "cart", json_string(c->id));
	if (strcmp(type, "CartOpened") == 0) {
		json_object_set(
		    st, "customer", json_object_get(content, "customer"));
		json_object_set(
		    st, "channel", json_object_get(meta, "channel"));
		json_object_set(st, "opened_by",
		    json_object_get(json_object_get(meta, "user"), "id"));
	} else if (strcmp(type, "ItemAdded") == 0) {
		bool   found;
		size_t i = find_line(lines, jstr(content, "sku"), &found);
		if (found) {
			json_t *l = json_array_get(lines, i);
			json_object_set_new(l, "qty",
			    json_integer(
			        jget(l, "qty") + jget(content, "qty")));
		} else {
			json_array_insert_new(
			    lines, i, json_deep_copy(content));
		}
	} else if (strcmp(type, "ItemRemoved") == 0) {
		bool   found;
		size_t i = find_line(lines, jstr(content, "sku"), &found);
		if (found) {
			json_t   *l    = json_array_get(lines, i);
			long long left = jget(l, "qty") - jget(content, "qty");
			if (left > 0)
				json_object_set_new(
				    l, "qty", json_integer(left));
			else
				json_array_remove(lines, i);
		}
	} else if (strcmp(type, "CouponApplied") == 0) {
		json_object_set(json_object_get(st, "coupons"),
		    jstr(content, "code"),
		    json_object_get(content, "percent"));
	} else if (strcmp(type, "CartCheckedOut") == 0) {
		json_object_set_new(st, "status", json_string("checked_out"));
	}
	long long items = 0, amount = 0, percent = 0;
	size_t    i;
	json_t   *l;
	json_array_foreach(lines, i, l)
	{
		long long sum = jget(l, "qty") * jget(l, "unit_price");
		json_object_set_new(l, "amount", json_integer(sum));
		items += jget(l, "qty");
		amount += sum;
	}
	const char *code;
	json_t     *pct;
	json_object_foreach(json_object_get(st, "coupons"), code, pct) percent
	    += json_integer_value(pct);
	long long discount = amount * (percent < 100 ? percent : 100) / 100;
	json_t   *totals   = json_object_get(st, "totals");
	json_object_set_new(totals, "lines",
	    json_integer((json_int_t) json_array_size(lines)));
	json_object_set_new(totals, "items", json_integer(items));
	json_object_set_new(totals, "amount", json_integer(amount));
	json_object_set_new(totals, "discount", json_integer(discount));
	json_object_set_new(totals, "due", json_integer(amount - discount));
	json_object_set_new(
	    st, "events", json_integer(jget(st, "events") + 1));
}

/* Commit one event to cart c and fold it into the expectation. */
static void
commit(cart *c, const char *type, json_t *content, json_t *meta)
{
	char *ctext = json_dumps(content, JSON_COMPACT);
	char *mtext = json_dumps(meta, JSON_COMPACT);
	CHECK(ctext != NULL && mtext != NULL);
	sl_new_event ev
	    = { .type = type, .content_json = ctext, .metadata_json = mtext };
	int rc
	    = sl_client_commit(cl, TENANT, c->id, SL_EXPECT_ANY, &ev, 1, NULL);
	if (rc != SL_OK)
		FAIL("commit %s to %s: %s", type, c->id, sl_errname(rc));
	fold(c, type, content, meta);
	free(ctext);
	free(mtext);
	json_decref(content);
	json_decref(meta);
}

/* One random step: a cart's next event (its first opens it). */
static void
step(cart *carts, uint64_t *rng, int n)
{
	cart *c = &carts[dt_rnd(rng) % N_CARTS];
	/* metadata that is not all strings: numbers, a bool, a map */
	json_t *meta = json_pack("{s:i,s:b,s:{s:s}}", "seq", n, "trusted",
	    n % 3 == 0, "source", "app", "cart_projection_test");
	if (!c->opened) {
		c->opened = true;
		json_object_set_new(
		    meta, "channel", json_string(n % 2 == 0 ? "web" : "app"));
		json_object_set_new(
		    meta, "user", json_pack("{s:i}", "id", 1000 + n));
		commit(c, "CartOpened",
		    json_pack("{s:{s:s,s:s,s:{s:s}}}", "customer", "id", c->id,
		        "name", "Ann \"A.\" Smith", "address", "city", "Oslo"),
		    meta);
		return;
	}
	unsigned kind = dt_rnd(rng) % 20;
	size_t   s    = dt_rnd(rng) % N_SKUS;
	if (kind < 10)
		commit(c, "ItemAdded",
		    json_pack("{s:s,s:s,s:i,s:i,s:[s,i]}", "sku", skus[s].sku,
		        "name", skus[s].name, "qty",
		        1 + (int) (dt_rnd(rng) % 3), "unit_price",
		        skus[s].price, "tags", "grocery", n),
		    meta);
	else if (kind < 15)
		commit(c, "ItemRemoved",
		    json_pack("{s:s,s:i}", "sku", skus[s].sku, "qty",
		        1 + (int) (dt_rnd(rng) % 2)),
		    meta);
	else if (kind < 19) {
		size_t k = dt_rnd(rng) % 3;
		commit(c, "CouponApplied",
		    json_pack("{s:s,s:i}", "code", coupons[k].code, "percent",
		        coupons[k].percent + (int) (dt_rnd(rng) % 2)),
		    meta);
	} else {
		commit(c, "CartCheckedOut", json_object(), meta);
	}
}

/* ---- the daemon ---- */

static void
start(void)
{
	daemon_pid = dt_daemon_spawn(cfg_path, daemon_log);
	if (!dt_wait_answer(url, &cl, WAIT_MS))
		FAIL("sluiced did not answer within %d ms", WAIT_MS);
}

/* Wait until the cart processor has handled the whole log (in generation
 * gen or later, not rebuilding, nothing failing); its generation. */
static long long
wait_live(long long gen)
{
	int64_t end = dt_now_ms() + WAIT_MS;
	for (;;) {
		char *text = NULL;
		int   rc   = sl_client_status(cl, &text);
		if (rc != SL_OK)
			FAIL("status: %s", sl_errname(rc));
		json_t *st = json_loads(text, 0, NULL);
		sl_client_free(text);
		CHECK(st != NULL);
		long long head = jint(st, "head"), got = -1;
		size_t    i;
		json_t   *p;
		json_array_foreach(json_object_get(st, "processors"), i, p)
		{
			if (strcmp(jstr(p, "projection"), PROJ_ID) != 0)
				continue;
			if (jint(p, "failing_count") != 0)
				FAIL("the cart projection fails: %s", dump(p));
			if (jint(p, "position") == head
			    && jint(p, "generation") >= gen
			    && !json_is_true(json_object_get(p, "rebuilding")))
				got = jint(p, "generation");
		}
		json_decref(st);
		if (got >= 0)
			return got;
		if (dt_now_ms() > end)
			FAIL("the cart projection did not reach the head");
		dt_sleep_ms(5);
	}
}

/* The read model text must equal the expectation. */
static void
expect(const char *key, const char *state_json, json_t *want)
{
	json_t *got = json_loads(state_json, 0, NULL);
	if (got == NULL || !json_equal(got, want)) {
		char *w = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS);
		FAIL("read model %s is\n  %s\nrecomputed\n  %s", key,
		    got != NULL ? dump(got) : state_json, w);
	}
	json_decref(got);
}

static void
compare(cart *carts)
{
	size_t opened = 0;
	for (int k = 0; k < N_CARTS; k++) {
		char *text  = NULL;
		bool  found = false;
		CHECK_EQ(sl_client_get_one(
		             cl, TENANT, "cart", carts[k].id, &text, &found),
		    SL_OK);
		CHECK(found == carts[k].opened);
		expect(carts[k].id, text, carts[k].st);
		sl_client_free(text);
		opened += carts[k].opened;
	}
	/* every read model, in pages of 5 */
	size_t seen      = 0;
	char   after[64] = "";
	for (;;) {
		sl_read_models m;
		CHECK_EQ(sl_client_get_all(cl, TENANT, PROJ_ID,
		             after[0] != '\0' ? after : NULL, 5, &m),
		    SL_OK);
		for (size_t i = 0; i < m.n_items; i++) {
			int k = -1;
			CHECK(sscanf(m.items[i].key, "cart-%d", &k) == 1);
			CHECK(k >= 0 && k < N_CARTS && carts[k].opened);
			expect(m.items[i].key, m.items[i].state_json,
			    carts[k].st);
			snprintf(after, sizeof(after), "%s", m.items[i].key);
			seen++;
		}
		bool more = m.more;
		sl_read_models_free(&m);
		if (!more)
			break;
	}
	CHECK_EQ(seen, opened);
}

int
main(void)
{
	char plugins[4300], text[8192], dst[4400];
	dt_test_paths(dir, cfg_path, daemon_log, url);
	snprintf(plugins, sizeof(plugins), "%s/plugins", dir);
	CHECK(mkdir(plugins, 0755) == 0);
	snprintf(dst, sizeof(dst), "%s/cart.so", plugins);
	dt_install(SL_BUILD_DIR "/examples/cart.so", NULL, dst);
	size_t head
	    = dt_config_head(text, sizeof(text), dir, plugins, url, "64MiB");
	snprintf(text + head, sizeof(text) - head,
	    "tenants:\n"
	    "  - id: " TENANT "\n"
	    "    read_models:\n"
	    "      map_size: 64MiB\n");
	tu_write_file(cfg_path, text);
	atexit(cleanup);
	start();

	cart     carts[N_CARTS];
	uint64_t rng = 0x15ca27;
	for (int k = 0; k < N_CARTS; k++) {
		snprintf(carts[k].id, sizeof(carts[k].id), "cart-%02d", k);
		carts[k].st     = initial_state();
		carts[k].opened = false;
	}
	for (int n = 0; n < N_STEPS; n++)
		step(carts, &rng, n);
	/* the events cover what the paths must get right: coupon codes and
	 * skus with dots, brackets and quotes, closed carts */
	int dotted = 0, odd_sku = 0, closed = 0;
	for (int k = 0; k < N_CARTS; k++) {
		json_t *st = carts[k].st, *l;
		size_t  i;
		dotted += json_object_get(
		              json_object_get(st, "coupons"), "SPRING.10")
		    != NULL;
		json_array_foreach(json_object_get(st, "lines"), i, l) odd_sku
		    += strpbrk(jstr(l, "sku"), "[\"") != NULL;
		closed += strcmp(jstr(st, "status"), "checked_out") == 0;
	}
	CHECK(dotted > 0 && odd_sku > 0 && closed > 0);
	long long gen = wait_live(0);
	compare(carts);

	/* a key without events answers the initial state */
	char   *missing = NULL;
	bool    found   = true;
	json_t *init    = initial_state();
	CHECK_EQ(sl_client_get_one(
	             cl, TENANT, "cart", "cart-none", &missing, &found),
	    SL_OK);
	CHECK(!found);
	expect("cart-none", missing, init);
	sl_client_free(missing);
	json_decref(init);

	/* reset: the rebuilt generation is the same */
	size_t n;
	CHECK_EQ(sl_client_command(cl, "reset", PROJ_ID, TENANT, &n), SL_OK);
	CHECK_EQ(n, 1);
	long long gen2 = wait_live(gen + 1);
	compare(carts);
	fprintf(stderr,
	    "%d events over %d carts, generation %lld rebuilt "
	    "as %lld: equal to the recomputation\n",
	    N_STEPS, N_CARTS, gen, gen2);

	for (int k = 0; k < N_CARTS; k++)
		json_decref(carts[k].st);
	cleanup();
	printf("cart_projection_test: ok\n");
	return 0;
}
