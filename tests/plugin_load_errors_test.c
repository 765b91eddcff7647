/*
 * Proves that every kind of bad plugin is refused with the right code and a
 * message naming the file and the reason, that refusals are kept for status,
 * and that the projections already loaded stay registered and usable.
 */
#include <dirent.h>
#include <sys/stat.h>

#include "host.h"
#include "json.h"
#include "log.h"
#include "plugins.h"
#include "testutil.h"

#define AD_ID "8a2f3c1e-5b7d-4e9a-9c11-2d4e6f8a0b13"

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
	sl_event ev      = { &v, "acc-0001" };

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
	    "host ABI 1.0", false },
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

int
main(void)
{
	log_set_level(-1); /* the refusals are expected; keep ctest quiet */
	test_refusals();
	test_load_dir();
	test_hash_stable();
	printf("plugin_load_errors_test: ok\n");
	return 0;
}
