/*
 * Shopping cart: the example of an ABI 1.3 projection whose read model is a
 * document (docs/plugins.md walks through it). One read model per cart (the
 * stream id), holding the customer (copied whole from the event), the
 * lines (an array of maps, kept in sku order), the coupons (a map whose
 * keys may contain dots) and the totals, recomputed by iterating both:
 *
 *   {"cart":"cart-7","status":"open","customer":{"id":"c-1","name":"Ann"},
 *    "lines":[{"sku":"apple.green","name":"Green apple","qty":3,
 *              "unit_price":50,"amount":150}],
 *    "coupons":{"SPRING.10":10},
 *    "totals":{"lines":1,"items":3,"amount":150,"discount":15,"due":135},
 *    "events":3,"channel":"web","opened_by":42}
 *
 * Events (content; metadata where read):
 *   CartOpened     {"customer":{...}}; metadata channel (string) and
 *                  user.id (integer)
 *   ItemAdded      {"sku","name","qty","unit_price",...}: a new line is the
 *                  content as it is; a known sku adds to its qty
 *   ItemRemoved    {"sku","qty"}: the line goes when its qty reaches 0
 *   CouponApplied  {"code","percent"}: the discount adds the percents
 *   CartCheckedOut {}: the cart is closed; later events change nothing
 * Money is in cents (integers).
 */
#include <stdio.h>
#include <string.h>

#include <sluice/plugin.h>

#define PROJECTION_ID "c4a7e2d0-5f3b-4e8a-9b61-2f0d8c3e7a15"
#define VERSION       1

static const char initial_state[]
    = "{\"cart\":\"\",\"status\":\"open\",\"customer\":null,\"lines\":[],"
      "\"coupons\":{},\"totals\":{\"lines\":0,\"items\":0,\"amount\":0,"
      "\"discount\":0,\"due\":0},\"events\":0}";

static const sl_selector selectors[] = {
	{ "CartOpened", SL_KEY_EVENT_SOURCE, NULL },
	{ "ItemAdded", SL_KEY_EVENT_SOURCE, NULL },
	{ "ItemRemoved", SL_KEY_EVENT_SOURCE, NULL },
	{ "CouponApplied", SL_KEY_EVENT_SOURCE, NULL },
	{ "CartCheckedOut", SL_KEY_EVENT_SOURCE, NULL },
};

/* ---- lines: "lines[i].field" ---- */

static int64_t
line_i64(const sl_state *st, size_t i, const char *field)
{
	char path[64];
	snprintf(path, sizeof(path), "lines[%zu].%s", i, field);
	return sl_st_i64(st, path, 0);
}

static int
line_set_i64(sl_state *st, size_t i, const char *field, int64_t v)
{
	char path[64];
	snprintf(path, sizeof(path), "lines[%zu].%s", i, field);
	return sl_st_set_i64(st, path, v);
}

/* The index of sku's line; when there is none (*found false), the index
 * where it goes to keep the lines in sku order. */
static size_t
find_line(const sl_state *st, const char *sku, bool *found)
{
	size_t n = sl_st_len(st, "lines");
	for (size_t i = 0; i < n; i++) {
		char path[64];
		snprintf(path, sizeof(path), "lines[%zu].sku", i);
		const char *s = sl_st_str(st, path);
		int         c = strcmp(s != NULL ? s : "", sku);
		if (c >= 0) {
			*found = c == 0;
			return i;
		}
	}
	*found = false;
	return n;
}

/* ---- the events ---- */

static int
cart_opened(const sl_event *ev, sl_state *st)
{
	/* a subtree of the content, copied whole */
	int rc = sl_st_set_json(
	    st, "customer", sl_ev_json(ev, SL_CONTENT, "customer"));
	/* metadata: a string and an integer */
	const char *channel = sl_ev_str(ev, SL_METADATA, "channel");
	int64_t     user;
	if (rc == SL_OK && channel != NULL)
		rc = sl_st_set_str(st, "channel", channel);
	if (rc == SL_OK
	    && sl_ev_i64(ev, SL_METADATA, "user.id", &user) == SL_OK)
		rc = sl_st_set_i64(st, "opened_by", user);
	return rc;
}

static int
item_added(const sl_event *ev, sl_state *st)
{
	const char *sku = sl_ev_str(ev, SL_CONTENT, "sku");
	int64_t     qty, price;
	bool        found;
	if (sku == NULL || sl_ev_i64(ev, SL_CONTENT, "qty", &qty) != SL_OK
	    || sl_ev_i64(ev, SL_CONTENT, "unit_price", &price) != SL_OK
	    || qty <= 0)
		return SL_EINVAL;
	size_t i = find_line(st, sku, &found);
	if (found)
		return line_set_i64(
		    st, i, "qty", line_i64(st, i, "qty") + qty);
	/* a new line: the event's content as it is, inserted in sku order */
	return sl_st_insert(st, "lines", i, sl_ev_json(ev, SL_CONTENT, ""));
}

static int
item_removed(const sl_event *ev, sl_state *st)
{
	const char *sku = sl_ev_str(ev, SL_CONTENT, "sku");
	int64_t     qty;
	bool        found;
	if (sku == NULL || sl_ev_i64(ev, SL_CONTENT, "qty", &qty) != SL_OK)
		return SL_EINVAL;
	size_t i = find_line(st, sku, &found);
	if (!found)
		return SL_OK; /* nothing of it in the cart */
	int64_t left = line_i64(st, i, "qty") - qty;
	return left > 0 ? line_set_i64(st, i, "qty", left)
	                : sl_st_array_remove(st, "lines", i);
}

static int
coupon_applied(const sl_event *ev, sl_state *st)
{
	const char *code = sl_ev_str(ev, SL_CONTENT, "code");
	int64_t     percent;
	char        path[SL_PATH_MAX];
	if (code == NULL
	    || sl_ev_i64(ev, SL_CONTENT, "percent", &percent) != SL_OK)
		return SL_EINVAL;
	/* "SPRING.10" is one key: sl_path_key writes coupons["SPRING.10"] */
	int rc = sl_path_key(path, sizeof(path), "coupons", code);
	return rc == SL_OK ? sl_st_set_i64(st, path, percent) : rc;
}

/* Line amounts and totals, from the lines and coupons as they are now. */
static int
update_totals(sl_state *st)
{
	int64_t items = 0, amount = 0, percent = 0;
	size_t  n  = sl_st_len(st, "lines");
	int     rc = SL_OK;
	for (size_t i = 0; i < n && rc == SL_OK; i++) {
		int64_t qty = line_i64(st, i, "qty");
		int64_t sum = qty * line_i64(st, i, "unit_price");
		rc          = line_set_i64(st, i, "amount", sum);
		items += qty;
		amount += sum;
	}
	/* a map's keys, in the order they were first set */
	size_t nc = sl_st_len(st, "coupons");
	for (size_t c = 0; c < nc && rc == SL_OK; c++) {
		char path[SL_PATH_MAX];
		rc = sl_path_key(path, sizeof(path), "coupons",
		    sl_st_key(st, "coupons", c));
		if (rc == SL_OK)
			percent += sl_st_i64(st, path, 0);
	}
	int64_t discount = amount * (percent < 100 ? percent : 100) / 100;
	if (rc == SL_OK)
		rc = sl_st_set_i64(st, "totals.lines", (int64_t) n);
	if (rc == SL_OK)
		rc = sl_st_set_i64(st, "totals.items", items);
	if (rc == SL_OK)
		rc = sl_st_set_i64(st, "totals.amount", amount);
	if (rc == SL_OK)
		rc = sl_st_set_i64(st, "totals.discount", discount);
	if (rc == SL_OK)
		rc = sl_st_set_i64(st, "totals.due", amount - discount);
	return rc;
}

static sl_outcome
on_event(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	const char *type   = sl_ev_type(ev);
	const char *status = sl_st_str(st, "status");
	int         rc     = SL_OK;

	if (status != NULL && strcmp(status, "checked_out") == 0)
		return SL_REPLACE; /* a closed cart does not change */
	rc = sl_st_set_str(st, "cart", key);
	if (rc == SL_OK && strcmp(type, "CartOpened") == 0)
		rc = cart_opened(ev, st);
	else if (rc == SL_OK && strcmp(type, "ItemAdded") == 0)
		rc = item_added(ev, st);
	else if (rc == SL_OK && strcmp(type, "ItemRemoved") == 0)
		rc = item_removed(ev, st);
	else if (rc == SL_OK && strcmp(type, "CouponApplied") == 0)
		rc = coupon_applied(ev, st);
	else if (rc == SL_OK && strcmp(type, "CartCheckedOut") == 0)
		rc = sl_st_set_str(st, "status", "checked_out");
	if (rc == SL_OK)
		rc = update_totals(st);
	if (rc == SL_OK)
		rc = sl_st_set_i64(
		    st, "events", sl_st_i64(st, "events", 0) + 1);
	if (rc != SL_OK)
		/* the same event would fail again: wait for an operator */
		return sl_fail_with(ctx, false, 0,
		    "%s at position %llu: error %d (see sluice/errors.h)",
		    type, (unsigned long long) sl_ev_position(ev), rc);
	return SL_REPLACE;
}

static const sl_projection cart = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = SL_ABI_VERSION,
	.id                 = PROJECTION_ID,
	.name               = "cart",
	.version            = VERSION,
	.initial_state_json = initial_state,
	.selectors          = selectors,
	.n_selectors        = sizeof(selectors) / sizeof(selectors[0]),
	.on                 = on_event,
};

static const sl_projection *const projections[] = { &cart };

static const sl_plugin_desc descriptor = {
	.struct_size   = sizeof(sl_plugin_desc),
	.abi_version   = SL_ABI_VERSION,
	.name          = "cart",
	.version       = "1.0.0",
	.projections   = projections,
	.n_projections = 1,
};

SL_EXPORT int
sluice_plugin_init(const sl_host_api *host, const sl_plugin_desc **out)
{
	int rc = sl_bind(host);
	if (rc != SL_OK)
		return rc;
	/* the document calls came with 1.3: refuse an older host */
	if (host->struct_size < sizeof(sl_host_api))
		return SL_EVERSION;
	*out = &descriptor;
	return SL_OK;
}
