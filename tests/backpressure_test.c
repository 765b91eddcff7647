/*
 * Back-pressure end to end (issues 8 and 14): 1,000,000 events in the
 * log, then sluiced runs e2e_slow (every event, ~15 us busy each, a Tick
 * per 100,000 to "ticks"). The processor reads the log as its handler
 * goes (no queue of read events: buffered_events is always 0) and stores
 * a batch at least every 100 ms, so while it catches up its checkpoint
 * moves steadily, state "catching_up", and the daemon's anonymous memory
 * (RssAnon) after the 1M stays within 32 MiB of what it was at 100k
 * handled. At the end every event is handled (its checkpoint at the
 * head, or past every event it counts: only its own ticks may follow) and
 * "ticks" holds exactly 10 Ticks.
 */
#include "emit_testutil.h"

#define TENANT     FT_TENANT
#define PROJ_ID    "e2e0e2e0-0003-4000-8000-000000000003"
#define PROJ       "e2e_slow"
#define N_EVENTS   1000000ULL
#define BATCH      1000
#define N_STREAMS  64
#define BASE_AT    100000 /* handled events when memory is first taken */
/* Growth allowed from 100k to 1M handled. Under ASan freed blocks wait in
 * its quarantine (256 MiB by default) before they are reused, so RSS
 * climbs for a while whatever the daemon does; the bound there still
 * catches growth with the event count (1M buffered events would be about
 * 400 MiB). */
#if defined(__SANITIZE_ADDRESS__)
#define MEM_BOUND (128LL * 1024 * 1024)
#else
#define MEM_BOUND (32LL * 1024 * 1024)
#endif
#define SLOW_NS    "15000"
#define RUN_MAX_MS 240000

/* What e2e_slow counts. */
static bool
handled_by_projection(const sl_read_event *e)
{
	return strcmp(e->tenant, TENANT) == 0 && e->stream[0] != '$'
	    && strcmp(e->stream, "ticks") != 0;
}

/* RssAnon of pid in bytes (/proc/PID/status), -1 if unknown. */
static long long
rss_anon(pid_t pid)
{
	char      path[64], line[256];
	long long kb = -1;
	FILE     *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "RssAnon: %lld kB", &kb) == 1)
			break;
	fclose(f);
	return kb < 0 ? -1 : kb * 1024;
}

static void
commit_million(void)
{
	static char         texts[BATCH][32];
	static sl_new_event evs[BATCH];
	int64_t             t0 = dt_now_ms();

	for (uint64_t i = 0; i < N_EVENTS; i += BATCH) {
		sl_commit_result res;
		char             stream[32];
		int              rc;
		for (size_t k = 0; k < BATCH; k++) {
			snprintf(texts[k], 32, "{\"n\":%" PRIu64 "}", i + k);
			evs[k] = (sl_new_event) { .type = "E",
				.content_json           = texts[k] };
		}
		snprintf(stream, sizeof(stream), "s-%" PRIu64,
		    (i / BATCH) % N_STREAMS);
		rc = sl_client_commit(
		    et_cl, TENANT, stream, SL_EXPECT_ANY, evs, BATCH, &res);
		if (rc != SL_OK)
			FT_FAIL("commit at %" PRIu64 ": %s: %s", i,
			    sl_errname(rc), sl_client_last_error(et_cl));
		CHECK_EQ(res.first_position, i);
	}
	fprintf(stderr, "committed %llu events in %lld ms\n",
	    (unsigned long long) N_EVENTS, (long long) (dt_now_ms() - t0));
}

int
main(void)
{
	char      so[4400];
	long long base_mem = -1, max_mem = -1, last_pos = -1;
	long long max_buffered = 0, n_samples = 0, n_moving = 0;
	int64_t   t0, end;
	json_t   *st, *p;

	ft_setup(NULL);
	et_write_config("data", et_plugin_dir(), TENANT,
	    "event_store:\n"
	    "  map_size: 2GiB\n"
	    "  sync: false\n"
	    "start_standard_projections: false\n");

	/* 1M events, no plugin yet */
	et_daemon_up(30000);
	commit_million();
	et_daemon_down();

	/* e2e_slow catches up over them */
	et_install_plugin(PROJ, so, sizeof(so));
	if (getenv("E2E_SLOW_NS") == NULL)
		CHECK(setenv("E2E_SLOW_NS", SLOW_NS, 1) == 0);
	et_daemon_up(30000);
	t0  = dt_now_ms();
	end = t0 + RUN_MAX_MS;
	for (;;) {
		long long pos, head, buf, mem;
		st = et_status();
		p  = et_proj_entry(st, TENANT, PROJ_ID, PROJ);
		if (p == NULL) {
			if (dt_now_ms() - t0 > 30000)
				FT_FAIL(
				    "no %s in status: %s", PROJ, dump(st));
			json_decref(st);
			dt_sleep_ms(20);
			continue;
		}
		if (strcmp(jstr(p, "status"), "faulted") == 0)
			FT_FAIL("%s faulted: %s", PROJ, dump(p));
		pos  = jint(p, "position");
		head = jint(st, "head");
		buf  = jint(p, "buffered_events");
		mem  = rss_anon(ft_daemon);
		n_samples++;
		if (buf < 0)
			FT_FAIL(
			    "no buffered_events in status: %s", dump(p));
		if (buf != 0)
			FT_FAIL("buffered_events %lld: the processor holds "
			        "no queue: %s",
			    buf, dump(p));
		if (buf > max_buffered)
			max_buffered = buf;
		/* catching up: the checkpoint moves between samples */
		if (pos > last_pos && last_pos > 0 && pos < (long long) N_EVENTS) {
			if (strcmp(jstr(p, "state"), "catching_up") != 0)
				FT_FAIL("moving below the head but not "
				        "catching_up: %s",
				    dump(p));
			n_moving++;
		}
		if (base_mem < 0 && pos >= BASE_AT && mem > 0) {
			base_mem = mem;
			fprintf(stderr, "at %lld handled: RssAnon %lld KiB\n",
			    pos, mem / 1024);
		}
		if (base_mem >= 0 && mem > max_mem)
			max_mem = mem;
		if (pos >= (long long) N_EVENTS && pos == last_pos
		    && et_nothing_to_handle(pos, head, handled_by_projection))
			break; /* caught up, and stays there */
		last_pos = pos;
		if (dt_now_ms() > end)
			FT_FAIL("not caught up within %d ms: %s", RUN_MAX_MS,
			    dump(p));
		json_decref(st);
		dt_sleep_ms(100);
	}
	fprintf(stderr,
	    "handled %lld events in %lld ms (%.0f events/s in status); "
	    "%lld samples, the checkpoint moved in %lld, buffered at most "
	    "%lld; RssAnon %lld KiB at %d, at most %lld KiB after\n",
	    jint(p, "position"), (long long) (dt_now_ms() - t0),
	    json_number_value(json_object_get(p, "events_per_sec")), n_samples,
	    n_moving, max_buffered, base_mem / 1024, BASE_AT, max_mem / 1024);
	json_decref(st);

	if (n_moving < 3)
		FT_FAIL("the checkpoint moved in %lld of %lld samples only",
		    n_moving, n_samples);
	if (base_mem < 0)
		FT_FAIL("no RssAnon sample at %d handled", BASE_AT);
	if (max_mem - base_mem > MEM_BOUND)
		FT_FAIL("RssAnon grew by %lld KiB (from %lld KiB at %d "
		        "handled): more than %lld KiB",
		    (max_mem - base_mem) / 1024, base_mem / 1024, BASE_AT,
		    MEM_BOUND / 1024);

	/* ten ticks, at 100k, 200k ... 1M; the state counted every event */
	{
		sl_read_result r;
		char          *state = NULL;
		json_t        *j;
		CHECK(sl_client_read_stream(et_cl, TENANT, "ticks", 0, 0, &r)
		    == SL_OK);
		if (r.n_events != 10)
			FT_FAIL("ticks has %zu events, not 10", r.n_events);
		for (size_t i = 0; i < r.n_events; i++) {
			j = json_loads(r.events[i].content_json, 0, NULL);
			CHECK(j != NULL);
			CHECK_STREQ(r.events[i].type, "Tick");
			CHECK_EQ(
			    jint(j, "count"), (long long) (i + 1) * 100000);
			json_decref(j);
		}
		sl_read_result_free(&r);
		CHECK(
		    sl_client_get_one(et_cl, TENANT, PROJ, "all", &state, NULL)
		    == SL_OK);
		j = json_loads(state, 0, NULL);
		CHECK(j != NULL);
		CHECK_EQ(jint(j, "count"), (long long) N_EVENTS);
		json_decref(j);
		sl_client_free(state);
	}
	et_daemon_down();
	return 0;
}
