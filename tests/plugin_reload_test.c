/*
 * Proves the registry's reload and unload: a new version replaces the
 * projections of its file and reports what changed (same definition,
 * changed, added, dropped); an old version stays loaded, its code usable,
 * while someone holds it and is closed (copy removed) when the last hold
 * goes; a failed reload leaves the running version and shows the file and
 * the reason until a good build arrives; dropped projections are still
 * found; and readers on other threads never see a torn registry.
 */
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include <dirent.h>

#include "host.h"
#include "json.h"
#include "log.h"
#include "plugins.h"
#include "daemon_testutil.h"

#define AD_ID "8a2f3c1e-5b7d-4e9a-9c11-2d4e6f8a0b13"
#define EV_ID "5d1e7a90-2c3b-4f6d-8e9a-0b1c2d3e4f50"

static char dir[4096], cache[4096], file[4200], tmp[4200];

static int
count_files(const char *d)
{
	DIR *dd = opendir(d);
	CHECK(dd != NULL);
	int            n = 0;
	struct dirent *de;
	while ((de = readdir(dd)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(dd);
	return n;
}

/* Put src at `file` the way a careful build does: write, then rename. */
static void
install(const char *src)
{
	dt_install(src, tmp, file);
}

/* Fold one DebitPerformed {"amount": 1} with d: the balance it gives. */
static int64_t
fold_one(const proj_def *d)
{
	char            jerr[128];
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	CHECK_EQ(json_text_to_mp("{\"amount\":1}", 1, &pk, jerr, sizeof(jerr)),
	    SL_OK);
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
	CHECK(d->p != NULL);
	CHECK_EQ(d->p->on(d->p->user, &ev, "acc-0001", &st, &ctx), SL_REPLACE);
	int64_t bal = 0;
	CHECK_EQ(host_api()->state_i64(&st, "balance", &bal), SL_OK);
	state_free(&st);
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
	return bal;
}

static plugin_info
info0(registry *r)
{
	plugin_info info;
	CHECK_EQ(registry_plugin_count(r), 1);
	registry_plugin_info(r, 0, &info);
	CHECK_STREQ(info.file, file);
	return info;
}

static const proj_change *
change_for(const proj_change *c, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++) {
		const proj_def *d = c[i].new_def ? c[i].new_def : c[i].old_def;
		if (strcmp(d->id, id) == 0)
			return &c[i];
	}
	fprintf(stderr, "no change for %s\n", id);
	exit(1);
}

/* ---- readers on another thread ---- */

static atomic_bool readers_stop;
static atomic_long reads;

static void *
reader(void *arg)
{
	registry *r = arg;
	while (!atomic_load(&readers_stop)) {
		const proj_def *d = registry_find(r, "account_details", 15);
		CHECK(d != NULL); /* never missing during a reload */
		CHECK_STREQ(d->id, AD_ID);
		CHECK(d->initial_len > 0 && d->name[0] == 'a');
		size_t n = registry_plugin_count(r);
		for (size_t i = 0; i < n + 1; i++) {
			plugin_info pi;
			registry_plugin_info(r, i, &pi);
			if (pi.file != NULL)
				CHECK(strlen(pi.file) > 0);
			if (pi.error != NULL)
				CHECK(strlen(pi.error) > 0);
			if (pi.name != NULL)
				CHECK(strlen(pi.name) > 0);
		}
		for (size_t i = 0; i < registry_projection_count(r) + 1; i++) {
			const proj_def *p = registry_projection(r, i);
			if (p != NULL)
				CHECK(strlen(p->id) == 36);
		}
		atomic_fetch_add(&reads, 1);
	}
	return NULL;
}

int
main(void)
{
	char         err[1024];
	registry    *r;
	proj_change *c;
	size_t       n;
	log_set_level(-1);
	snprintf(dir, sizeof(dir), "%s/plugins", tu_tmpdir());
	snprintf(cache, sizeof(cache), "%s/cache", tu_tmpdir());
	snprintf(file, sizeof(file), "%s/account_details.so", dir);
	snprintf(tmp, sizeof(tmp), "%s/.account_details.so.tmp", dir);
	CHECK(mkdir(dir, 0755) == 0);

	install(SL_PLUGIN_DIR "/account_details.so");
	CHECK_EQ(registry_create(cache, &r), SL_OK);
	CHECK_EQ(registry_load_dir(r, dir), SL_OK);
	const proj_def *d1 = registry_find(r, AD_ID, 36);
	CHECK(d1 != NULL);
	CHECK_EQ(fold_one(d1), 1);
	CHECK_EQ(info0(r).loads, 1);

	pthread_t rd[2];
	for (int i = 0; i < 2; i++)
		CHECK(pthread_create(&rd[i], NULL, reader, r) == 0);

	/* v2: same definition, new code. A processor holds v1 meanwhile. */
	proj_def_hold(d1);
	install(SL_TEST_PLUGIN_DIR "/account_details_v2.so");
	CHECK_EQ(
	    registry_reload_file(r, file, &c, &n, err, sizeof(err)), SL_OK);
	CHECK_EQ(n, 1);
	CHECK(c[0].old_def == d1);
	const proj_def *d2 = c[0].new_def;
	CHECK(d2 != NULL && d2 != d1);
	CHECK(d2->def_hash == d1->def_hash);
	free(c);
	CHECK(registry_find(r, "account_details", 15) == d2);
	CHECK(registry_projection(r, 0) == d2);
	CHECK_EQ(fold_one(d2), 100); /* cents */
	CHECK_EQ(fold_one(d1), 1);   /* v1's code still runs for its holder */
	plugin_info info = info0(r);
	CHECK_STREQ(info.version, "2.0.0");
	CHECK_EQ(info.loads, 2);
	CHECK_EQ(info.versions_open, 2);
	CHECK(info.error == NULL);
	CHECK_EQ(count_files(cache), 2);
	proj_def_release(d1); /* the last hold: v1 closes */
	CHECK_EQ(info0(r).versions_open, 1);
	CHECK_EQ(count_files(cache), 1);
	CHECK(d1->p == NULL); /* no pointer into unloaded code */
	CHECK_STREQ(d1->name, "account_details"); /* the rest stays */

	/* v3: changed definition, and a projection added */
	install(SL_TEST_PLUGIN_DIR "/account_details_v3.so");
	CHECK_EQ(
	    registry_reload_file(r, file, &c, &n, err, sizeof(err)), SL_OK);
	CHECK_EQ(n, 2);
	const proj_change *ad = change_for(c, n, AD_ID);
	const proj_change *ev = change_for(c, n, EV_ID);
	CHECK(ad->old_def == d2 && ad->new_def != NULL);
	CHECK(ad->new_def->def_hash != d2->def_hash);
	CHECK(ev->old_def == NULL && ev->new_def != NULL);
	const proj_def *d3 = ad->new_def, *e3 = ev->new_def;
	free(c);
	CHECK_EQ(registry_projection_count(r), 2);
	CHECK(registry_find(r, "account_events", 14) == e3);
	CHECK(d2->p == NULL); /* nobody held v2 */
	CHECK_EQ(count_files(cache), 1);

	/* broken builds: garbage, an unresolved symbol, an id clash with
	 * another file. Each leaves v3 running and shows the reason. */
	static const struct {
		const char *src; /* NULL: garbage bytes */
		int         code;
		const char *why;
	} broken[] = {
		{ NULL, SL_EPLUGIN, "not an ELF file" },
		{ SL_TEST_PLUGIN_DIR "/unresolved.so", SL_EPLUGIN,
		    "dlopen failed" },
		{ SL_TEST_PLUGIN_DIR "/no_symbol.so", SL_EPLUGIN,
		    "does not export sluice_plugin_init" },
		{ SL_TEST_PLUGIN_DIR "/bad_abi.so", SL_EVERSION,
		    "ABI version 2.0 is not supported" },
		{ SL_TEST_PLUGIN_DIR "/bad_def.so", SL_EPLUGIN,
		    "initial state is not a JSON object" },
	};
	for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
		if (broken[i].src == NULL)
			tu_write_file(file, "this is not a shared object\n");
		else
			install(broken[i].src);
		CHECK_EQ(
		    registry_reload_file(r, file, &c, &n, err, sizeof(err)),
		    broken[i].code);
		CHECK(c == NULL && n == 0);
		CHECK(strstr(err, file) == err);
		CHECK(strstr(err, broken[i].why) != NULL);
		info = info0(r);
		CHECK(info.loaded);
		CHECK_STREQ(info.version, "3.0.0");
		CHECK_STREQ(info.error, err);
		CHECK(info.error_at_ns > 0);
		CHECK_EQ(info.loads, 3);
		CHECK_EQ(info.versions_open, 1);
		CHECK(registry_find(r, AD_ID, 36) == d3);
		CHECK(registry_find(r, "account_events", 14) == e3);
		CHECK_EQ(registry_projection_count(r), 2);
		CHECK(d3->p != NULL);
		CHECK_EQ(count_files(cache), 1); /* refused copies removed */
	}
	/* a refusal from outside (the watcher) shows the same way */
	registry_set_error(r, file, "still being written");
	info = info0(r);
	CHECK(info.loaded && strstr(info.error, "still being written"));

	/* the running bytes again: nothing reloads, the error clears */
	install(SL_TEST_PLUGIN_DIR "/account_details_v3.so");
	CHECK_EQ(
	    registry_reload_file(r, file, &c, &n, err, sizeof(err)), SL_OK);
	CHECK(c == NULL && n == 0);
	info = info0(r);
	CHECK(info.error == NULL && info.error_at_ns == 0);
	CHECK_EQ(info.loads, 3);
	CHECK(registry_find(r, AD_ID, 36) == d3);

	/* another file claiming account_details' id is refused */
	{
		char other[4200];
		snprintf(other, sizeof(other), "%s/dup_id.so", dir);
		CHECK(symlink(SL_TEST_PLUGIN_DIR "/dup_id.so", other) == 0);
		CHECK_EQ(
		    registry_reload_file(r, other, &c, &n, err, sizeof(err)),
		    SL_EEXIST);
		CHECK(strstr(err, "id already loaded") != NULL);
		CHECK_EQ(registry_plugin_count(r), 2);
		CHECK(registry_find(r, AD_ID, 36) == d3);
		/* its file goes away: the refused entry leaves the list */
		CHECK(unlink(other) == 0);
		CHECK_EQ(registry_unload_file(r, other, &c, &n), SL_OK);
		CHECK(c == NULL && n == 0);
		CHECK_EQ(registry_plugin_count(r), 1);
		CHECK_EQ(registry_unload_file(r, other, &c, &n), SL_ENOTFOUND);
	}

	/* back to v1: account_events is dropped but still found */
	proj_def_hold(e3);
	install(SL_PLUGIN_DIR "/account_details.so");
	CHECK_EQ(
	    registry_reload_file(r, file, &c, &n, err, sizeof(err)), SL_OK);
	CHECK_EQ(n, 2);
	ev = change_for(c, n, EV_ID);
	CHECK(ev->old_def == e3 && ev->new_def == NULL);
	ad = change_for(c, n, AD_ID);
	CHECK(ad->new_def->def_hash == d1->def_hash);
	const proj_def *d4 = ad->new_def;
	free(c);
	CHECK_EQ(registry_projection_count(r), 1);
	CHECK(registry_find(r, "account_events", 14) == e3);
	CHECK(registry_find(r, EV_ID, 36) == e3);
	CHECK_EQ(info0(r).versions_open, 2); /* v3, held through e3 */
	proj_def_release(e3);
	CHECK_EQ(info0(r).versions_open, 1);
	CHECK(registry_find(r, "account_events", 14) == e3); /* still */

	/* v3 again brings account_events back as current */
	install(SL_TEST_PLUGIN_DIR "/account_details_v3.so");
	CHECK_EQ(
	    registry_reload_file(r, file, &c, &n, err, sizeof(err)), SL_OK);
	ev = change_for(c, n, EV_ID);
	CHECK(ev->old_def == NULL && ev->new_def != NULL);
	CHECK(ev->new_def->def_hash == e3->def_hash);
	CHECK(registry_find(r, "account_events", 14) == ev->new_def);
	free(c);

	/* the file is removed: unloaded, its projections still found */
	CHECK(unlink(file) == 0);
	CHECK_EQ(registry_unload_file(r, file, &c, &n), SL_OK);
	CHECK_EQ(n, 2);
	CHECK(c[0].new_def == NULL && c[1].new_def == NULL);
	free(c);
	CHECK_EQ(registry_plugin_count(r), 0);
	CHECK_EQ(registry_projection_count(r), 0);
	CHECK(registry_find(r, "account_details", 15) != NULL);
	CHECK(registry_find(r, "account_details", 15) != d4);
	CHECK(registry_find(r, "account_events", 14) != NULL);
	CHECK_EQ(count_files(cache), 0);

	/* On a loaded machine the readers may not have been scheduled yet:
	 * give them up to 5 s to show they ran beside the reloads. */
	for (int i = 0; i < 500 && atomic_load(&reads) == 0; i++)
		nanosleep(&(struct timespec) { 0, 10 * 1000 * 1000 }, NULL);
	atomic_store(&readers_stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(rd[i], NULL);
	CHECK(atomic_load(&reads) > 0);
	registry_destroy(r);
	CHECK_EQ(count_files(cache), 0);
	printf("plugin_reload_test: ok (%ld concurrent reads)\n",
	    (long) atomic_load(&reads));
	return 0;
}
