/*
 * Proves that every kind of bad plugin is refused with the right code and a
 * message naming the file and the reason, that refusals are kept for status,
 * and that the projections already loaded stay registered and usable. For
 * filters (ABI 1.1): bad filter descriptors are refused naming the filter,
 * good ones load with their kind, and their definition hash is stable for
 * the same file and changes with the declared version.
 */
#include <dirent.h>
#include <sys/stat.h>

#include "daemon_testutil.h"
#include "host.h"
#include "json.h"
#include "log.h"
#include "plugins.h"

#define AD_ID "8a2f3c1e-5b7d-4e9a-9c11-2d4e6f8a0b13"
/* the test filter plugins' ids (see tests/plugins/) */
#define FLAKY_ID        "cece5212-dc74-4a93-89b5-f4231e294470"
#define FLAKY_COUNTS_ID "2f9fbf60-9be2-4ce9-9afc-e3c231f6116a"
#define T_EVENTS_ID     "67e19a59-fde4-445e-9080-d11446024b91"
#define CUSTOMER_ID     "a468a0ac-3f00-4a28-ac0e-e4a0e8400cb3"
#define OPENINGS_ID     "76b549ab-de36-4185-8ed1-2a92ed32b7b0"
/* bad_occurred.c's projection */
#define OCC_ID "0cc0e4ed-0000-4000-8000-00000000000c"

#define STR_(x)  #x
#define STR(x)   STR_(x)
#define HOST_ABI "host ABI " STR(SL_ABI_MAJOR) "." STR(SL_ABI_MINOR)

static char cache[4096];

/* Files in dir whose names start with prefix (NULL: all but . and ..). */
static int
count_files(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	CHECK(d != NULL);
	int            n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0
		    || strcmp(de->d_name, "..") == 0)
			continue;
		if (prefix == NULL
		    || strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			n++;
	}
	closedir(d);
	return n;
}

/* The status entry for a file, by path. */
static plugin_info
info_for(registry *r, const char *path)
{
	plugin_info info;
	for (size_t i = 0; i < registry_plugin_count(r); i++) {
		registry_plugin_info(r, i, &info);
		if (strcmp(info.file, path) == 0)
			return info;
	}
	fprintf(stderr, "no plugin_info for %s\n", path);
	exit(1);
}

/* Fold one DebitPerformed into a fresh initial state: proves d is usable. */
static void
check_usable(const proj_def *d, int64_t amount)
{
	char            json[64];
	char            jerr[128];
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	snprintf(json, sizeof(json), "{\"amount\":%lld}", (long long) amount);
	CHECK_EQ(json_text_to_mp(json, 1, &pk, jerr, sizeof(jerr)), SL_OK);
	msgpack_unpacked up;
	msgpack_unpacked_init(&up);
	CHECK(msgpack_unpack_next(&up, sb.data, sb.size, NULL)
	    == MSGPACK_UNPACK_SUCCESS);

	ev_view v;
	memset(&v, 0, sizeof(v));
	v.tenant         = "t";
	v.stream         = "acc-0001";
	v.type           = "DebitPerformed";
	v.generation     = 1;
	v.correlation_id = "";
	v.causation_id   = "";
	v.metadata.type  = MSGPACK_OBJECT_NIL;
	v.content        = up.data;
	sl_event ev      = { .v = &v, .partition = "acc-0001" };

	sl_state st;
	state_init(&st);
	CHECK_EQ(state_load(&st, d->initial, d->initial_len), SL_OK);
	sl_context ctx;
	memset(&ctx, 0, sizeof(ctx));
	host_scratch_reset();
	CHECK_EQ(d->p->on(d->p->user, &ev, "acc-0001", &st, &ctx), SL_REPLACE);
	CHECK(!ctx.failed);
	int64_t bal = 0;
	CHECK_EQ(host_api()->state_i64(&st, "balance", &bal), SL_OK);
	CHECK_EQ(bal, amount);
	state_free(&st);
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
}

typedef struct {
	const char *file;    /* in the test plugin dir */
	int         code;    /* expected from registry_load_file */
	const char *reason;  /* a part of the message */
	const char *reason2; /* another part, or NULL */
	bool        named;   /* plugin_info.name is known */
} negative;

static const negative negatives[] = {
	{ "bad_abi.so", SL_EVERSION, "ABI version 2.0 is not supported",
	    HOST_ABI, false },
	{ "short_struct.so", SL_EVERSION, "struct_size 8 is smaller",
	    "sl_plugin_desc", false },
	{ "no_symbol.so", SL_EPLUGIN, "does not export sluice_plugin_init",
	    NULL, false },
	{ "missing_on.so", SL_EPLUGIN,
	    "projection 'no_handler' (0b6c2d7e-3f41-4a58-9c6d-7e8f90a1b2c3) "
	    "in plugin 'missing_on': required callback 'on' is missing",
	    NULL, true },
	{ "init_fails.so", SL_EPLUGIN, "sluice_plugin_init() failed",
	    "EPLUGIN", false },
	{ "bad_def.so", SL_EPLUGIN, "initial state is not a JSON object",
	    "'bad_initial_state'", true },
	{ "unresolved.so", SL_EPLUGIN, "dlopen failed",
	    "sluice_test_function_that_does_not_exist", false },
	{ "dup_id.so", SL_EEXIST,
	    "id already loaded by projection "
	    "'account_details'",
	    "dup_account_details", true },
	/* an occurred key selector's pattern that makes no keys */
	{ "occurred_unknown.so", SL_EPLUGIN,
	    "projection 'ticks_per_day' (" OCC_ID ") in plugin "
	    "'bad_occurred': selector for 'Tick': occurred key pattern "
	    "'%Y-%Q' '%Q' is not a strftime conversion",
	    NULL, true },
	{ "occurred_constant.so", SL_EPLUGIN,
	    "projection 'ticks_per_day' (" OCC_ID ")",
	    "pattern 'daily' gives the same key 'daily' for every time",
	    true },
	{ "occurred_unfinished.so", SL_EPLUGIN,
	    "projection 'ticks_per_day' (" OCC_ID ")",
	    "pattern '%Y-%m-%' ends in an unfinished conversion '%'", true },
	{ "occurred_utc.so", SL_EPLUGIN,
	    "projection 'ticks_per_day' (" OCC_ID ")",
	    "pattern '%Z %z' gives the same key 'GMT +0000' for every time",
	    true },
	{ "occurred_emod.so", SL_EPLUGIN,
	    "projection 'ticks_per_day' (" OCC_ID ")",
	    "pattern '%Eq' '%Eq' is not a strftime conversion", true },
};

static void
test_refusals(void)
{
	registry *r;
	char      ad[4096], err[1024];
	snprintf(cache, sizeof(cache), "%s/cache/sub", tu_tmpdir());
	/* a copy left by an earlier run goes; other files stay */
	char stale[4200], keep[4200];
	snprintf(stale, sizeof(stale), "%s/cache", tu_tmpdir());
	CHECK(mkdir(stale, 0755) == 0);
	CHECK(mkdir(cache, 0755) == 0);
	snprintf(stale, sizeof(stale), "%s/account_details.17.so", cache);
	snprintf(keep, sizeof(keep), "%s/notes.txt", cache);
	tu_write_file(stale, "old");
	tu_write_file(keep, "keep");
	CHECK_EQ(registry_create(cache, &r), SL_OK);
	CHECK(access(stale, F_OK) != 0);
	CHECK(access(keep, F_OK) == 0);
	CHECK(unlink(keep) == 0);

	snprintf(ad, sizeof(ad), "%s/account_details.so", SL_PLUGIN_DIR);
	CHECK_EQ(registry_load_file(r, ad, err, sizeof(err)), SL_OK);
	CHECK_EQ(registry_projection_count(r), 1);
	CHECK_EQ(registry_plugin_count(r), 1);
	CHECK_EQ(count_files(cache, "account_details."), 1);
	const proj_def *d = registry_find(r, AD_ID, strlen(AD_ID));
	CHECK(d != NULL);
	CHECK(registry_find(r, "account_details", 15) == d);
	CHECK(
	    registry_find(r, "8A2F3C1E-5B7D-4E9A-9C11-2D4E6F8A0B13", 36) == d);
	CHECK(registry_find(r, "account_detail", 14) == NULL);
	CHECK(registry_projection(r, 0) == d);
	CHECK(registry_projection(r, 1) == NULL);
	CHECK_STREQ(d->scope, "00000000-0000-0000-0000-000000000000");
	uint64_t hash = d->def_hash;
	check_usable(d, 5);

	for (size_t i = 0; i < sizeof(negatives) / sizeof(negatives[0]); i++) {
		const negative *n = &negatives[i];
		char            path[4096];
		snprintf(
		    path, sizeof(path), "%s/%s", SL_TEST_PLUGIN_DIR, n->file);
		size_t nplug = registry_plugin_count(r);
		memset(err, 0, sizeof(err));
		int rc = registry_load_file(r, path, err, sizeof(err));
		if (rc != n->code || strstr(err, path) != err
		    || strstr(err, n->reason) == NULL
		    || (n->reason2 != NULL
		        && strstr(err, n->reason2) == NULL)) {
			fprintf(stderr, "%s: rc %d (want %d), message: %s\n",
			    n->file, rc, n->code, err);
			exit(1);
		}
		/* kept for status, loaded=false, with the same message */
		CHECK_EQ(registry_plugin_count(r), nplug + 1);
		plugin_info info = info_for(r, path);
		CHECK(!info.loaded);
		CHECK_STREQ(info.error, err);
		CHECK_EQ(info.n_projections, 0);
		CHECK(n->named ? info.name != NULL : info.name == NULL);
		/* nothing changed for the loaded projection */
		CHECK_EQ(registry_projection_count(r), 1);
		CHECK(registry_find(r, AD_ID, 36) == d);
		CHECK(registry_find(r, "account_details", 15) == d);
		CHECK(d->def_hash == hash);
		check_usable(d, (int64_t) i + 1);
		/* the refused plugin's private copy is gone */
		CHECK_EQ(count_files(cache, NULL), 1);

		/* a second attempt replaces the entry, it does not add one */
		CHECK_EQ(registry_load_file(r, path, NULL, 0), n->code);
		CHECK_EQ(registry_plugin_count(r), nplug + 1);
	}

	/* the same projection with a good pattern loads */
	{
		char         path[4096];
		proj_change *changes;
		size_t       n_changes;
		snprintf(path, sizeof(path), "%s/occurred_good.so",
		    SL_TEST_PLUGIN_DIR);
		CHECK_EQ(registry_load_file(r, path, err, sizeof(err)), SL_OK);
		CHECK(registry_find(r, OCC_ID, 36) != NULL);
		CHECK_EQ(registry_projection_count(r), 2);
		CHECK_EQ(registry_unload_file(r, path, &changes, &n_changes),
		    SL_OK);
		CHECK_EQ(n_changes, 1);
		free(changes);
	}

	/* a missing file is refused like the others */
	char missing[4096];
	snprintf(missing, sizeof(missing), "%s/nope.so", tu_tmpdir());
	CHECK_EQ(registry_load_file(r, missing, err, sizeof(err)), SL_EPLUGIN);
	CHECK(strstr(err, missing) == err && strstr(err, "cannot open"));
	CHECK(!info_for(r, missing).loaded);

	/* loading a loaded file again is refused and changes nothing */
	size_t nplug = registry_plugin_count(r);
	CHECK_EQ(registry_load_file(r, ad, err, sizeof(err)), SL_EEXIST);
	CHECK(strstr(err, ad) == err && strstr(err, "already loaded"));
	CHECK_EQ(registry_plugin_count(r), nplug);
	plugin_info info = info_for(r, ad);
	CHECK(info.loaded);
	CHECK(info.error == NULL);
	CHECK_STREQ(info.name, "account_details");
	CHECK_STREQ(info.version, "1.0.0");
	CHECK_EQ(info.n_projections, 1);
	CHECK(info.loaded_at_ns > 0);
	check_usable(d, 7);

	/* NULL arguments */
	CHECK_EQ(registry_load_file(NULL, ad, err, sizeof(err)), SL_EINVAL);
	CHECK_EQ(registry_load_file(r, NULL, err, sizeof(err)), SL_EINVAL);
	CHECK(registry_find(r, NULL, 0) == NULL);

	registry_destroy(r);
	CHECK_EQ(count_files(cache, NULL), 0); /* copies deleted on unload */
}

/* Which occurred key patterns make keys (def_time_pattern_ok). */
static void
test_time_patterns(void)
{
	static const char *const good[]
	    = { "%Y-%m-%d", "%G-W%V", "%s", "%-d.%-m.%Y", "%10Y", "%EY", "%Od",
		      "day %j %%", "%p", "%C", "%H:%M", "%a" };
	static const struct {
		const char *pattern, *why;
	} bad[] = {
		{ "", "is empty" },
		{ "%Q", "'%Q' is not a strftime conversion" },
		{ "%Y%", "ends in an unfinished conversion '%'" },
		{ "%Y-%_", "ends in an unfinished conversion '%_'" },
		{ "%Oq", "'%Oq' is not a strftime conversion" },
		{ "%EH", "'%EH' is not a strftime conversion" },
		{ "%+", "'%+' is not a strftime conversion" },
		{ "all", "gives the same key 'all' for every time" },
		{ "%%%n%t", "for every time" },
		{ "%Z", "gives the same key 'GMT' for every time" },
		{ "%600Y", "gives an empty key or one longer than 511 bytes" },
	};
	char why[200];
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!def_time_pattern_ok(good[i], why, sizeof(why))) {
			fprintf(stderr, "'%s' refused: %s\n", good[i], why);
			exit(1);
		}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		if (def_time_pattern_ok(bad[i].pattern, why, sizeof(why))
		    || strstr(why, bad[i].why) == NULL) {
			fprintf(stderr, "'%s': want refused (%s), got %s\n",
			    bad[i].pattern, bad[i].why, why);
			exit(1);
		}
	}
}

/* A directory of good and bad plugins: the good ones load. */
static void
test_load_dir(void)
{
	char dir[4096], cdir[4096], path[4200], target[4200];
	snprintf(dir, sizeof(dir), "%s/plugdir", tu_tmpdir());
	snprintf(cdir, sizeof(cdir), "%s/cache2", tu_tmpdir());
	CHECK(mkdir(dir, 0755) == 0);
	static const char *const files[]
	    = { "account_details.so", "bad_abi.so", "fail_on_type.so",
		      "missing_on.so", "two_projections.so", "unresolved.so" };
	for (size_t i = 0; i < 6; i++) {
		snprintf(target, sizeof(target), "%s/%s",
		    i == 0 ? SL_PLUGIN_DIR : SL_TEST_PLUGIN_DIR, files[i]);
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		CHECK(symlink(target, path) == 0);
	}
	/* not plugins: another suffix, and a directory named *.so */
	snprintf(path, sizeof(path), "%s/readme.txt", dir);
	tu_write_file(path, "not a plugin");
	snprintf(path, sizeof(path), "%s/subdir.so", dir);
	CHECK(mkdir(path, 0755) == 0);

	registry *r;
	CHECK_EQ(registry_create(cdir, &r), SL_OK);
	CHECK_EQ(registry_load_dir(r, dir), SL_OK);
	CHECK_EQ(registry_plugin_count(r), 6);
	for (size_t i = 0; i < 6; i++) {
		plugin_info info;
		registry_plugin_info(r, i, &info);
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		CHECK_STREQ(info.file, path); /* sorted by name */
		bool good = i == 0 || i == 2 || i == 4;
		CHECK(info.loaded == good);
		CHECK(good ? info.error == NULL
		           : strstr(info.error, path) == info.error);
	}
	CHECK_EQ(registry_projection_count(r), 4);
	CHECK_EQ(count_files(cdir, NULL), 3);

	const proj_def *totals = registry_find(r, "all_totals", 10);
	const proj_def *cust   = registry_find(r, "customers_per_stream", 20);
	const proj_def *fot    = registry_find(r, "fail_on_type", 12);
	CHECK(totals != NULL && cust != NULL && fot != NULL);
	CHECK_STREQ(totals->id, "3c4d5e6f-7081-4293-a4b5-c6d7e8f90a1b");
	CHECK_STREQ(cust->scope, "11111111-2222-4333-8444-555555555555");
	CHECK_EQ(totals->p->selectors[0].key, SL_KEY_STATIC);
	CHECK_STREQ(totals->p->selectors[0].arg, "all");
	CHECK(totals->owner == cust->owner);
	CHECK(totals->def_hash != cust->def_hash);
	/* the same definition hashes the same in another registry */
	CHECK(registry_find(r, "account_details", 15) != NULL);
	check_usable(registry_find(r, "account_details", 15), 3);

	/* an unreadable directory is an error; nothing changes */
	snprintf(path, sizeof(path), "%s/no-such-dir", tu_tmpdir());
	CHECK_EQ(registry_load_dir(r, path), SL_ENOTFOUND);
	CHECK_EQ(registry_plugin_count(r), 6);
	CHECK_EQ(registry_projection_count(r), 4);

	registry_destroy(r);
	CHECK_EQ(count_files(cdir, NULL), 0);
}

/* Two registries load the same file: same definition hash, two copies. */
static void
test_hash_stable(void)
{
	char      c1[4096], c2[4096], ad[4096];
	registry *a, *b;
	snprintf(c1, sizeof(c1), "%s/c-a", tu_tmpdir());
	snprintf(c2, sizeof(c2), "%s/c-b", tu_tmpdir());
	snprintf(ad, sizeof(ad), "%s/account_details.so", SL_PLUGIN_DIR);
	CHECK_EQ(registry_create(c1, &a), SL_OK);
	CHECK_EQ(registry_create(c2, &b), SL_OK);
	CHECK_EQ(registry_load_file(a, ad, NULL, 0), SL_OK);
	CHECK_EQ(registry_load_file(b, ad, NULL, 0), SL_OK);
	const proj_def *da = registry_find(a, AD_ID, 36);
	const proj_def *db = registry_find(b, AD_ID, 36);
	CHECK(da != NULL && db != NULL && da != db);
	CHECK(da->def_hash == db->def_hash);
	CHECK(da->def_hash != 0);
	CHECK_EQ(da->initial_len, db->initial_len);
	CHECK(memcmp(da->initial, db->initial, da->initial_len) == 0);
	registry_destroy(b);
	check_usable(da, 11); /* unloading b's copy leaves a's code alone */
	registry_destroy(a);

	CHECK_EQ(registry_create(NULL, &a), SL_EINVAL);
	CHECK_EQ(registry_create("/proc/no/such/dir", &a), SL_ECONFIG);
}

/* ---- filters (ABI 1.1) ---- */

/* One event for a filter callback (content from JSON). */
typedef struct {
	msgpack_sbuffer  sb;
	msgpack_unpacked up;
	ev_view          v;
	sl_event         ev;
} tev;

static void
tev_make(tev *t, const char *type, const char *stream, const char *json)
{
	char           jerr[128];
	msgpack_packer pk;
	memset(t, 0, sizeof(*t));
	msgpack_sbuffer_init(&t->sb);
	msgpack_packer_init(&pk, &t->sb, msgpack_sbuffer_write);
	CHECK_EQ(json_text_to_mp(json, 1, &pk, jerr, sizeof(jerr)), SL_OK);
	msgpack_unpacked_init(&t->up);
	CHECK(msgpack_unpack_next(&t->up, t->sb.data, t->sb.size, NULL)
	    == MSGPACK_UNPACK_SUCCESS);
	t->v.position       = 1;
	t->v.tenant         = "t";
	t->v.stream         = stream;
	t->v.type           = type;
	t->v.generation     = 1;
	t->v.correlation_id = "";
	t->v.causation_id   = "";
	t->v.metadata.type  = MSGPACK_OBJECT_NIL;
	t->v.content        = t->up.data;
	t->ev.v             = &t->v;
	t->ev.partition     = stream;
}

static void
tev_free(tev *t)
{
	msgpack_unpacked_destroy(&t->up);
	msgpack_sbuffer_destroy(&t->sb);
}

/* Run the "flaky" filter on a plain Tick: proves d is usable. */
static void
check_filter_usable(const proj_def *d)
{
	tev t;
	tev_make(&t, "Tick", "s-1", "{}");
	sl_context ctx;
	memset(&ctx, 0, sizeof(ctx));
	const char *part = NULL;
	host_scratch_reset();
	CHECK(d->f != NULL && d->p == NULL);
	CHECK_EQ(d->f->filter(d->f->user, &t.ev, &part, &ctx), SL_INCLUDED);
	CHECK_STREQ(part, "s-1");
	CHECK(!ctx.failed);
	tev_free(&t);
}

static const proj_def *
must_find(registry *r, const char *id_or_name)
{
	const proj_def *d = registry_find(r, id_or_name, strlen(id_or_name));
	if (d == NULL) {
		fprintf(stderr, "not found: %s\n", id_or_name);
		exit(1);
	}
	return d;
}

static void
load_ok(registry *r, const char *dir, const char *file)
{
	char path[4096], err[1024];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	int rc = registry_load_file(r, path, err, sizeof(err));
	if (rc != SL_OK) {
		fprintf(stderr, "%s: rc %d: %s\n", file, rc, err);
		exit(1);
	}
}

static const negative filter_negatives[] = {
	{ "filter_no_callback.so", SL_EPLUGIN,
	    "filter 'no_callback' (64bc1346-be16-4b5e-8d21-d6fa83aea9f1) in "
	    "plugin 'bad_filter_no_callback': required callback 'filter' is "
	    "missing",
	    NULL, true },
	{ "filter_bad_kind.so", SL_EPLUGIN,
	    "filter 'bad_kind' (92d8fa3c-d261-4e84-84d9-58b0cbc82a6e) in "
	    "plugin 'bad_filter_bad_kind': unknown kind 7",
	    "partitioned 2", true },
	{ "filter_bad_id.so", SL_EPLUGIN,
	    "filter #0 in plugin 'bad_filter_bad_id': id 'not-a-uuid' is not "
	    "a UUID",
	    NULL, true },
	{ "filter_dup_id.so", SL_EEXIST,
	    "filter 'dup_filter' (c243c492-fbe7-4026-8d44-1f0ccd510544) in "
	    "plugin 'bad_filter_dup_filter': id is used twice in this plugin",
	    "(also by projection 'dup_projection')", true },
	{ "filter_clash.so", SL_EEXIST,
	    "filter 'clash' (8a2f3c1e-5b7d-4e9a-9c11-2d4e6f8a0b13) in plugin "
	    "'bad_filter_clash': id already loaded by projection "
	    "'account_details' from ",
	    "/account_details.so", true },
	{ "filter_null_array.so", SL_EPLUGIN,
	    "plugin 'bad_filter_null_array': 1 filters declared but the array "
	    "is NULL",
	    NULL, true },
	{ "filter_short_struct.so", SL_EVERSION,
	    "filter #0 in plugin 'bad_filter_short': struct_size 16 is "
	    "smaller than sl_filter of ABI 1.1",
	    NULL, true },
};

/* Bad filter descriptors are refused; what is loaded keeps running. */
static void
test_filter_refusals(void)
{
	char      c[4096], err[1024];
	registry *r;
	snprintf(c, sizeof(c), "%s/cache-f", tu_tmpdir());
	CHECK_EQ(registry_create(c, &r), SL_OK);
	load_ok(r, SL_PLUGIN_DIR, "account_details.so");
	load_ok(r, SL_PLUGIN_DIR, "account_filters.so");
	load_ok(r, SL_TEST_PLUGIN_DIR, "filter_flaky.so");
	load_ok(r, SL_TEST_PLUGIN_DIR, "filter_unpartitioned.so");
	CHECK_EQ(registry_projection_count(r), 6);
	const char     *ids[] = { AD_ID, CUSTOMER_ID, OPENINGS_ID, FLAKY_ID,
		    FLAKY_COUNTS_ID, T_EVENTS_ID };
	const proj_def *defs[6];
	uint64_t        hashes[6];
	for (size_t k = 0; k < 6; k++) {
		defs[k]   = must_find(r, ids[k]);
		hashes[k] = defs[k]->def_hash;
	}

	for (size_t i = 0;
	     i < sizeof(filter_negatives) / sizeof(filter_negatives[0]); i++) {
		const negative *n = &filter_negatives[i];
		char            path[4096];
		snprintf(
		    path, sizeof(path), "%s/%s", SL_TEST_PLUGIN_DIR, n->file);
		size_t nplug = registry_plugin_count(r);
		memset(err, 0, sizeof(err));
		int rc = registry_load_file(r, path, err, sizeof(err));
		if (rc != n->code || strstr(err, path) != err
		    || strstr(err, n->reason) == NULL
		    || (n->reason2 != NULL
		        && strstr(err, n->reason2) == NULL)) {
			fprintf(stderr, "%s: rc %d (want %d), message: %s\n",
			    n->file, rc, n->code, err);
			exit(1);
		}
		CHECK_EQ(registry_plugin_count(r), nplug + 1);
		plugin_info info = info_for(r, path);
		CHECK(!info.loaded);
		CHECK_STREQ(info.error, err);
		CHECK_EQ(info.n_projections, 0);
		CHECK_EQ(info.n_filters, 0);
		CHECK(info.name != NULL);
		/* the registry keeps serving what it had */
		CHECK_EQ(registry_projection_count(r), 6);
		for (size_t k = 0; k < 6; k++) {
			CHECK(registry_find(r, ids[k], 36) == defs[k]);
			CHECK(defs[k]->def_hash == hashes[k]);
		}
		check_usable(defs[0], 2);
		check_filter_usable(defs[3]);
		/* four private copies: the refused one is gone */
		CHECK_EQ(count_files(c, NULL), 4);
		CHECK_EQ(registry_load_file(r, path, NULL, 0), n->code);
	}
	/* nothing of a refused plugin is found, not even its good parts */
	CHECK(registry_find(r, "64bc1346-be16-4b5e-8d21-d6fa83aea9f1", 36)
	    == NULL);
	CHECK(registry_find(r, "dup_projection", 14) == NULL);

	/* a descriptor of ABI 1.0 size: its filters fields are not read */
	char path[4096];
	snprintf(
	    path, sizeof(path), "%s/filter_old_desc.so", SL_TEST_PLUGIN_DIR);
	CHECK_EQ(registry_load_file(r, path, err, sizeof(err)), SL_OK);
	plugin_info info = info_for(r, path);
	CHECK(info.loaded);
	CHECK_EQ(info.n_projections, 1);
	CHECK_EQ(info.n_filters, 0);
	CHECK_EQ(registry_projection_count(r), 7);
	CHECK(!def_is_filter(must_find(r, "old_desc")));
	CHECK(registry_find(r, "no_callback", 11) == NULL);
	registry_destroy(r);
	CHECK_EQ(count_files(c, NULL), 0);

	/* the other way round: a projection whose id a filter has */
	CHECK_EQ(registry_create(c, &r), SL_OK);
	load_ok(r, SL_TEST_PLUGIN_DIR, "filter_clash.so");
	const proj_def *clash = must_find(r, "clash");
	CHECK(def_is_filter(clash));
	snprintf(path, sizeof(path), "%s/account_details.so", SL_PLUGIN_DIR);
	CHECK_EQ(registry_load_file(r, path, err, sizeof(err)), SL_EEXIST);
	CHECK(strstr(err,
	          "projection 'account_details' (" AD_ID
	          ") in plugin 'account_details': id already loaded "
	          "by filter 'clash' from ")
	    != NULL);
	CHECK(registry_find(r, AD_ID, 36) == clash);
	registry_destroy(r);
}

/* The definition hashes of filter_flaky's filter and projection. */
static void
flaky_hashes(registry *r, uint64_t *filter, uint64_t *projection)
{
	const proj_def *f = must_find(r, FLAKY_ID);
	const proj_def *p = must_find(r, FLAKY_COUNTS_ID);
	CHECK(def_is_filter(f) && !def_is_filter(p));
	*filter     = f->def_hash;
	*projection = p->def_hash;
}

/* Good filter plugins load with their kinds; hashes are stable. */
static void
test_filter_load(void)
{
	char      c1[4096], c2[4096];
	registry *a, *b;
	snprintf(c1, sizeof(c1), "%s/cache-fa", tu_tmpdir());
	snprintf(c2, sizeof(c2), "%s/cache-fb", tu_tmpdir());
	CHECK_EQ(registry_create(c1, &a), SL_OK);
	CHECK_EQ(registry_create(c2, &b), SL_OK);
	static const char *const files[] = { "filter_flaky.so",
		"filter_unpartitioned.so", "account_filters.so" };
	for (size_t i = 0; i < 3; i++) {
		const char *dir = i == 2 ? SL_PLUGIN_DIR : SL_TEST_PLUGIN_DIR;
		load_ok(a, dir, files[i]);
		load_ok(b, dir, files[i]);
	}
	CHECK_EQ(registry_projection_count(a), 5);

	/* plugin_info counts projections and filters apart */
	static const size_t want_p[] = { 1, 0, 0 }, want_f[] = { 1, 1, 2 };
	for (size_t i = 0; i < 3; i++) {
		plugin_info info;
		registry_plugin_info(a, i, &info);
		CHECK(info.loaded);
		CHECK_EQ(info.n_projections, want_p[i]);
		CHECK_EQ(info.n_filters, want_f[i]);
	}

	static const struct {
		const char *id, *name;
		int         filter_kind; /* 0: a projection */
	} want[] = {
		{ FLAKY_ID, "flaky", SL_FILTER_PARTITIONED },
		{ FLAKY_COUNTS_ID, "flaky_counts", 0 },
		{ T_EVENTS_ID, "t_events", SL_FILTER_UNPARTITIONED },
		{ CUSTOMER_ID, "customer events", SL_FILTER_PARTITIONED },
		{ OPENINGS_ID, "public account openings", SL_FILTER_PUBLIC },
	};
	const proj_def *da[5];
	for (size_t i = 0; i < 5; i++) {
		const proj_def *d = must_find(a, want[i].id);
		da[i]             = d;
		CHECK(must_find(a, want[i].name) == d);
		CHECK_STREQ(d->id, want[i].id);
		CHECK_STREQ(d->name, want[i].name);
		CHECK_STREQ(d->scope, "00000000-0000-0000-0000-000000000000");
		CHECK_EQ(d->version, 1);
		CHECK(d->def_hash != 0);
		if (want[i].filter_kind != 0) {
			CHECK(def_is_filter(d));
			CHECK_EQ(d->kind, DEF_FILTER);
			CHECK_EQ(d->filter_kind, want[i].filter_kind);
			CHECK(d->f != NULL && d->f->filter != NULL);
			CHECK(d->p == NULL);
			CHECK(d->initial == NULL && d->initial_len == 0);
		} else {
			CHECK(!def_is_filter(d));
			CHECK_EQ(d->kind, DEF_PROJECTION);
			CHECK(d->p != NULL && d->f == NULL);
		}
		/* the same file in another registry: the same hash */
		const proj_def *db = must_find(b, want[i].id);
		CHECK(db != d);
		CHECK(db->def_hash == d->def_hash);
		for (size_t k = 0; k < i; k++)
			CHECK(da[k]->def_hash != d->def_hash);
	}
	CHECK(da[0]->owner == da[1]->owner);
	check_filter_usable(da[0]);
	registry_destroy(b);
	check_filter_usable(da[0]); /* b's unload leaves a's code alone */
	registry_destroy(a);

	/* a version bump changes the hash; the same definition restores it */
	char dir[4096], file[4200], tmp[4200];
	snprintf(dir, sizeof(dir), "%s/flaky-dir", tu_tmpdir());
	snprintf(file, sizeof(file), "%s/flaky.so", dir);
	snprintf(tmp, sizeof(tmp), "%s/.flaky.so.tmp", dir);
	CHECK(mkdir(dir, 0755) == 0);
	dt_install(SL_TEST_PLUGIN_DIR "/filter_flaky.so", tmp, file);
	CHECK_EQ(registry_create(c1, &a), SL_OK);
	CHECK_EQ(registry_load_file(a, file, NULL, 0), SL_OK);
	uint64_t f1, p1, f2, p2, f3, p3;
	flaky_hashes(a, &f1, &p1);
	const proj_def *old_f = must_find(a, FLAKY_ID);
	const proj_def *old_p = must_find(a, FLAKY_COUNTS_ID);
	proj_def_hold(old_f); /* as a processor running it would */

	dt_install(SL_TEST_PLUGIN_DIR "/filter_flaky_v2.so", tmp, file);
	proj_change *ch;
	size_t       n;
	char         err[1024];
	CHECK_EQ(
	    registry_reload_file(a, file, &ch, &n, err, sizeof(err)), SL_OK);
	CHECK_EQ(n, 2);
	for (size_t i = 0; i < n; i++) {
		CHECK(ch[i].old_def != NULL && ch[i].new_def != NULL);
		CHECK_STREQ(ch[i].old_def->id, ch[i].new_def->id);
		CHECK_EQ(ch[i].old_def->kind, ch[i].new_def->kind);
		CHECK(ch[i].old_def->def_hash != ch[i].new_def->def_hash);
		CHECK_EQ(ch[i].new_def->version, 2);
	}
	free(ch);
	flaky_hashes(a, &f2, &p2);
	CHECK(f2 != f1 && p2 != p1);
	CHECK_EQ(must_find(a, FLAKY_ID)->filter_kind, SL_FILTER_PARTITIONED);
	check_filter_usable(must_find(a, FLAKY_ID));
	/* the held old version still runs; its last release closes it */
	check_filter_usable(old_f);
	proj_def_release(old_f);
	CHECK(old_f->f == NULL && old_f->p == NULL);
	CHECK(old_p->p == NULL && old_p->f == NULL);
	CHECK(old_f->def_hash == f1); /* the retired def keeps its hash */

	dt_install(SL_TEST_PLUGIN_DIR "/filter_flaky.so", tmp, file);
	CHECK_EQ(
	    registry_reload_file(a, file, &ch, &n, err, sizeof(err)), SL_OK);
	CHECK_EQ(n, 2);
	free(ch);
	flaky_hashes(a, &f3, &p3);
	CHECK(f3 == f1 && p3 == p1);
	registry_destroy(a);
}

int
main(void)
{
	log_set_level(-1); /* the refusals are expected; keep ctest quiet */
	test_refusals();
	test_time_patterns();
	test_load_dir();
	test_hash_stable();
	test_filter_refusals();
	test_filter_load();
	printf("plugin_load_errors_test: ok\n");
	return 0;
}
