/*
 * Test plugin built as a plugin of ABI 1.2 (it declares 1.2 and uses only
 * the calls 1.2 had): every flat state setter and getter, keys with dots
 * ("a.b" is one top-level key), and the 1.0 content and metadata getters on
 * paths whose meaning the 1.3 path syntax would change ("tags[0]" is a key,
 * "list.0" does not index). What it stores must stay byte for byte what a
 * 1.2 host stored (state_legacy_bytes_test).
 */
#include <stdio.h>

#include <sluice/plugin.h>

#define ABI_1_2 ((uint32_t) ((1u << 16) | 2u))

static const sl_host_api *H;

static const sl_selector selectors[] = {
	{ "Flat", SL_KEY_EVENT_SOURCE, NULL },
};

/* A getter's string, or its error code as text. */
static const char *
got(int rc, const char *s, char buf[32])
{
	if (rc == SL_OK)
		return s;
	snprintf(buf, 32, "rc %d", rc);
	return buf;
}

static sl_outcome
on_event(void *user, const sl_event *ev, const char *key, sl_state *st,
    sl_context *ctx)
{
	(void) user;
	(void) key;
	int64_t     n = 0;
	const char *s = NULL;
	char        buf[32];
	int         rc = SL_OK;

	(void) H->state_i64(st, "n", &n);
	n++;
	rc |= H->state_set_i64(st, "n", n);
	rc |= H->state_set_str(st, "a.b", sl_get_str(ev, "s"));
	rc |= H->state_set_f64(st, "ratio", (double) n / 4.0);
	rc |= H->state_set_bool(st, "even", n % 2 == 0);
	rc |= H->state_set_i64(st, "x.y.z", -n * 1000000);
	if (n == 2)
		rc |= H->state_set_nil(st, "gone");
	if (n == 3)
		rc |= H->state_remove(st, "gone");
	rc |= H->state_set_i64(st, "rm_missing", H->state_remove(st, "tmp"));

	/* 1.0 content and metadata paths, as 1.2 read them */
	int r = H->content_str(ev, "a.b", &s);
	rc |= H->state_set_str(st, "content a.b", got(r, s, buf));
	r = H->content_str(ev, "tags[0]", &s);
	rc |= H->state_set_str(st, "content tags[0]", got(r, s, buf));
	r = H->content_str(ev, "list.0", &s);
	rc |= H->state_set_str(st, "content list.0", got(r, s, buf));
	r = H->metadata_str(ev, "m.k", &s);
	rc |= H->state_set_str(st, "metadata m.k", got(r, s, buf));
	int64_t i = 0;
	r         = H->content_i64(ev, "list", &i);
	rc |= H->state_set_i64(st, "content_i64 list", r);

	/* a string read from the state, written back under another key */
	if (H->state_str(st, "a.b", &s) == SL_OK)
		rc |= H->state_set_str(st, "copy", s);
	if (rc != SL_OK)
		return H->fail(ctx, "cannot update the state");
	return SL_REPLACE;
}

static const sl_projection legacy_flat = {
	.struct_size        = sizeof(sl_projection),
	.abi_version        = ABI_1_2,
	.id                 = "5d0c7a3e-91b2-4c6f-8e1a-0b9d2f3c4a51",
	.name               = "legacy_flat",
	.version            = 1,
	.initial_state_json = "{\"n\":0,\"nested\":{\"x\":[1,2.5,\"s\","
	                      "{\"y\":null}]},\"tmp2\":[]}",
	.selectors          = selectors,
	.n_selectors        = 1,
	.on                 = on_event,
};

static const sl_projection *const projections[] = { &legacy_flat };

static const sl_plugin_desc descriptor = {
	.struct_size   = sizeof(sl_plugin_desc),
	.abi_version   = ABI_1_2,
	.name          = "legacy_flat",
	.version       = "1.2.0",
	.projections   = projections,
	.n_projections = 1,
};

SL_EXPORT int
sluice_plugin_init(const sl_host_api *host, const sl_plugin_desc **out)
{
	int rc = sl_bind(host);
	if (rc != SL_OK)
		return rc;
	H    = host;
	*out = &descriptor;
	return SL_OK;
}
