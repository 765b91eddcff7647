/*
 * Measures (prints, asserts no timing) how long a hot reload takes in a
 * runtime with 100,000 events in the log: from the new .so being renamed
 * into the plugin directory to the processor running it, for a code-only
 * change (same definition: continue) and for a changed definition (rebuild
 * of every read model from position 0, then the switch-over). Checks that
 * the rebuilt read models are the new version's.
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "log.h"
#include "daemon_testutil.h"
#include "projection_testutil.h"
#include "runtime.h"

#define N_EVENTS   100000
#define PER_COMMIT 1000
#define N_ACC      500
#define WAIT_MS    120000

static char plugin_path[4200];

static void
install(const char *src)
{
	dt_install(src, NULL, plugin_path);
}

static processor *
proc_of(runtime *rt, const char *name)
{
	for (size_t i = 0; i < rt->n_procs; i++) {
		proc_status st;
		proc_get_status(rt->procs[i], &st);
		if (strcmp(st.def->name, name) == 0)
			return rt->procs[i];
	}
	return NULL;
}

/* Wait until the processor runs a definition other than `old` (and, for a
 * rebuild, has switched queries to a new generation) and is live at head. */
static proc_status
wait_switched(
    runtime *rt, const proj_def *old, uint64_t gen_before, bool rebuild)
{
	int64_t end = pt_now_ms() + WAIT_MS;
	for (;;) {
		processor  *p = proc_of(rt, "account_details");
		proc_status st;
		proc_get_status(p, &st);
		uint64_t head = store_next_position(rt->store);
		if (st.def != old && !st.rebuilding && st.state == PROC_LIVE
		    && st.position >= head
		    && (!rebuild || st.generation > gen_before))
			return st;
		CHECK(pt_now_ms() < end);
		pt_sleep_ms(1);
	}
}

int
main(void)
{
	char        path[4200], err[1024];
	const char *dir = tu_tmpdir();
	log_set_level(SL_LOG_WARN);

	snprintf(path, sizeof(path), "%s/plugins", dir);
	CHECK(mkdir(path, 0755) == 0);
	snprintf(plugin_path, sizeof(plugin_path),
	    "%s/plugins/account_details.so", dir);
	install(SL_PLUGIN_DIR "/account_details.so");
	snprintf(path, sizeof(path), "%s/resources.yaml", dir);
	char text[20000];
	snprintf(text, sizeof(text),
	    "data_dir: %s/data\nplugin_dir: %s/plugins\n"
	    "endpoints:\n  api: ipc://%s/api.ipc\n  pub: ipc://%s/pub.ipc\n"
	    "tenants:\n  - id: t1\n",
	    dir, dir, dir, dir);
	tu_write_file(path, text);
	sl_config *cfg;
	CHECK_EQ(config_load(path, &cfg, err, sizeof(err)), SL_OK);
	runtime *rt;
	CHECK_EQ(runtime_start(cfg, &rt), SL_OK);

	/* 100,000 Account Details events, 1,000 per commit */
	pt_event *evs = calloc(PER_COMMIT, sizeof(*evs));
	CHECK(evs != NULL);
	int64_t t = pt_now_ms();
	for (int c = 0; c < N_EVENTS / PER_COMMIT; c++) {
		char stream[32];
		snprintf(stream, sizeof(stream), "acc-%04d", c % N_ACC);
		for (int i = 0; i < PER_COMMIT; i++) {
			if (i == 0) {
				evs[i].type = "DebitAccountOpened";
				snprintf(evs[i].json, sizeof(evs[i].json),
				    "{\"account_id\":\"%s\",\"name\":\"n%d\"}",
				    stream, c);
			} else {
				evs[i].type = "DebitPerformed";
				snprintf(evs[i].json, sizeof(evs[i].json),
				    "{\"amount\":%d}", 1 + (i % 7));
			}
		}
		pt_commit(rt->store, "t1", stream, evs, PER_COMMIT);
	}
	free(evs);
	int64_t     committed = pt_now_ms() - t;
	processor  *p         = proc_of(rt, "account_details");
	proc_status st        = pt_wait_position(p, N_EVENTS, WAIT_MS);
	int64_t     built     = pt_now_ms() - t;

	/* code only: v2 continues from the checkpoint */
	const proj_def *old = st.def;
	t                   = pt_now_ms();
	install(SL_TEST_PLUGIN_DIR "/account_details_v2.so");
	st                  = wait_switched(rt, old, st.generation, false);
	int64_t continue_ms = pt_now_ms() - t;
	CHECK_EQ(st.generation, 1);

	/* changed definition: v3 rebuilds 100,000 events */
	old               = st.def;
	uint64_t gen      = st.generation;
	uint64_t handled0 = st.events_handled;
	t                 = pt_now_ms();
	install(SL_TEST_PLUGIN_DIR "/account_details_v3.so");
	st                 = wait_switched(rt, old, gen, true);
	int64_t rebuild_ms = pt_now_ms() - t;
	CHECK_EQ(st.generation, gen + 1);
	CHECK_EQ(st.events_handled - handled0, N_EVENTS);

	/* the served read models are v3's: balance in cents */
	rt_tenant *tn = runtime_tenant(rt, "t1", 2);
	CHECK(tn != NULL);
	/* acc-0000 got commits 0, 500, ...: 200 commits of 999 debits */
	int64_t want = 0;
	for (int c = 0; c < N_EVENTS / PER_COMMIT; c += N_ACC)
		for (int i = 1; i < PER_COMMIT; i++)
			want += 1 + (i % 7);
	CHECK_EQ(pt_state_i64(tn->rm, "8a2f3c1e-5b7d-4e9a-9c11-2d4e6f8a0b13",
	             "acc-0000", "balance"),
	    want * 100);

	printf(
	    "hot reload with %d events in the log (batch %u, sync %s):\n"
	    "  commit %d events: %lld ms; first build done %lld ms after the "
	    "first commit\n"
	    "  same definition (continue): new code running %lld ms "
	    "after the file was in place\n"
	    "  changed definition (rebuild): %lld ms from the file in "
	    "place to all read models rebuilt and served\n",
	    N_EVENTS, cfg->checkpoint_batch, cfg->store_sync ? "on" : "off",
	    N_EVENTS, (long long) committed, (long long) built,
	    (long long) continue_ms, (long long) rebuild_ms);
	runtime_stop(rt);
	config_free(cfg);
	return 0;
}
