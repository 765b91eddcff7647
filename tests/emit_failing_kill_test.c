/*
 * An emitting projection's failing key across SIGKILL (issue 14), sluiced
 * as a process with tests/plugins/e2e_emitter.c: an event of account-1 that
 * fails and says "do not retry" marks account-1 failing (status: running,
 * "1 partition failing", failing[] names it at that event) while the other
 * accounts' Ledger events and links go on to the head and account-1's
 * later events wait. sluiced is SIGKILLed; after the start the unit is
 * still listed (it is in the checkpoint record), account-1 still waits and
 * the others go on; `retry` then catches account-1 up: every account's
 * ledger holds one Ledger per source event in revision order, ledger-all
 * one link per source event, in log order per account.
 */
#include "emit_testutil.h"

#define TENANT     FT_TENANT
#define N_ACCOUNTS 3
#define BAD        1 /* account-1 fails */
#define WAIT_MS    30000

static char so[4400];
/* per account: the source events committed (revisions 0..n-1) */
static int n_src[N_ACCOUNTS];

static void
commit(int a, const char *type, const char *json)
{
	char             stream[32];
	sl_new_event     ev = { .type = type, .content_json = json };
	sl_commit_result res;
	snprintf(stream, sizeof(stream), "account-%d", a);
	int rc = sl_client_commit(
	    et_cl, TENANT, stream, SL_EXPECT_ANY, &ev, 1, &res);
	if (rc != SL_OK)
		FT_FAIL("commit to %s: %s: %s", stream, sl_errname(rc),
		    sl_client_last_error(et_cl));
	n_src[a]++;
}

static void
commit_all(const char *type)
{
	for (int a = 0; a < N_ACCOUNTS; a++)
		commit(a, type, "{}");
}

/* The entry of e2e_emitter (borrowed from st). */
static json_t *
entry(json_t *st)
{
	json_t *p = et_proj_entry(st, TENANT, ET_EMITTER_ID, ET_EMITTER);
	if (p == NULL)
		FT_FAIL("e2e_emitter not in status: %s", dump(st));
	return p;
}

/* Ledger events of account a, each checked: revisions 0, 1, ... */
static int
ledger_len(int a)
{
	char           stream[32];
	sl_read_result r;
	snprintf(stream, sizeof(stream), "ledger-account-%d", a);
	int rc = sl_client_read_stream(et_cl, TENANT, stream, 0, 0, &r);
	if (rc != SL_OK && rc != SL_ENOTFOUND)
		FT_FAIL("read %s: %s", stream, sl_errname(rc));
	int n = rc == SL_OK ? (int) r.n_events : 0;
	for (int i = 0; i < n; i++) {
		json_t *j = json_loads(r.events[i].content_json, 0, NULL);
		if (j == NULL || jint(j, "revision") != i)
			FT_FAIL("%s entry %d: %s", stream, i,
			    r.events[i].content_json);
		json_decref(j);
	}
	if (rc == SL_OK)
		sl_read_result_free(&r);
	return n;
}

/* Wait until the ledgers hold want[a] events and n keys are failing. */
static void
wait_ledgers(const int *want, long long n_failing, const char *when)
{
	int64_t end = dt_now_ms() + WAIT_MS;
	for (;;) {
		json_t *st = et_status();
		json_t *p  = entry(st);
		bool    ok = jint(p, "failing_count") == n_failing
		    && strcmp(jstr(p, "status"), "running") == 0;
		for (int a = 0; a < N_ACCOUNTS && ok; a++)
			ok = ledger_len(a) == want[a];
		if (ok) {
			json_decref(st);
			return;
		}
		if (dt_now_ms() > end)
			FT_FAIL("%s: ledgers not as wanted (%d %d %d): %s",
			    when, want[0], want[1], want[2], dump(p));
		json_decref(st);
		dt_sleep_ms(20);
	}
}

/* account-1 is the one failing unit, at bad_pos, not retried. */
static void
check_unit(uint64_t bad_pos)
{
	json_t *st = et_status();
	json_t *p  = entry(st);
	json_t *f  = json_array_get(json_object_get(p, "failing"), 0);
	if (jint(p, "failing_count") != 1 || f == NULL
	    || strcmp(jstr(f, "partition"), "account-1") != 0
	    || jint(f, "position") != (long long) bad_pos
	    || !json_is_false(json_object_get(f, "retry"))
	    || !json_is_null(json_object_get(f, "next_try"))
	    || strstr(jstr(f, "reason"), "refused: fail_times") == NULL
	    || strstr(jstr(p, "status_reason"), "1 partition failing")
	        == NULL)
		FT_FAIL("want account-1 failing at %" PRIu64 ": %s", bad_pos,
		    dump(p));
	json_decref(st);
}

int
main(void)
{
	int want[N_ACCOUNTS];

	ft_setup(NULL);
	et_write_config("data", et_plugin_dir(), TENANT,
	    "run_projections: all\n"
	    "start_standard_projections: false\n");
	et_install_plugin(ET_EMITTER, so, sizeof(so));
	et_daemon_up(10000);

	commit_all("AccountOpened");
	commit_all("Deposited");
	for (int a = 0; a < N_ACCOUNTS; a++)
		want[a] = n_src[a];
	wait_ledgers(want, 0, "the first events");

	/* account-1 fails, not retried; the others go on, its later
	 * events wait */
	sl_commit_result res;
	sl_new_event     bad = { .type = "Deposited",
		    .content_json      = "{\"fail_times\":1,\"hard\":true}" };
	CHECK_EQ(sl_client_commit(
	             et_cl, TENANT, "account-1", SL_EXPECT_ANY, &bad, 1, &res),
	    SL_OK);
	n_src[BAD]++;
	uint64_t bad_pos = res.first_position;
	commit_all("Deposited");
	commit_all("Deposited");
	for (int a = 0; a < N_ACCOUNTS; a++)
		want[a] = a == BAD ? 2 : n_src[a];
	wait_ledgers(want, 1, "account-1 failing");
	check_unit(bad_pos);

	/* SIGKILL: the unit is in the checkpoint record */
	et_daemon_kill();
	et_daemon_up(10000);
	commit_all("Deposited");
	for (int a = 0; a < N_ACCOUNTS; a++)
		want[a] = a == BAD ? 2 : n_src[a];
	wait_ledgers(want, 1, "after the kill");
	dt_sleep_ms(300);
	check_unit(bad_pos);
	CHECK_EQ(ledger_len(BAD), 2);

	/* the operator's retry: account-1 catches up */
	size_t n  = 0;
	int    rc = sl_client_command(et_cl, "retry", ET_EMITTER, TENANT, &n);
	if (rc != SL_OK)
		FT_FAIL("retry: %s: %s", sl_errname(rc),
		    sl_client_last_error(et_cl));
	for (int a = 0; a < N_ACCOUNTS; a++)
		want[a] = n_src[a];
	wait_ledgers(want, 0, "after the retry");
	et_wait_caught_up(
	    TENANT, ET_EMITTER_ID, ET_EMITTER, et_emitter_handles, WAIT_MS);

	/* ledger-all: one link per source event, in order per account */
	sl_read_result r;
	CHECK_EQ(sl_client_read_stream(et_cl, TENANT, "ledger-all", 0, 0, &r),
	    SL_OK);
	int total = 0, seen[N_ACCOUNTS] = { 0 };
	for (int a = 0; a < N_ACCOUNTS; a++)
		total += n_src[a];
	CHECK_EQ((int) r.n_events, total);
	for (size_t i = 0; i < r.n_events; i++) {
		int      a   = -1;
		unsigned rev = 0;
		if (sscanf(r.events[i].content_json, "\"%u@account-%d\"", &rev,
		        &a)
		        != 2
		    || a < 0 || a >= N_ACCOUNTS || (int) rev != seen[a])
			FT_FAIL("ledger-all entry %zu: %s", i,
			    r.events[i].content_json);
		seen[a]++;
	}
	sl_read_result_free(&r);

	/* and after a restart nothing fails any more */
	et_daemon_down();
	et_daemon_up(10000);
	for (int a = 0; a < N_ACCOUNTS; a++)
		want[a] = n_src[a];
	wait_ledgers(want, 0, "after a restart");
	et_daemon_down();
	printf("emit_failing_kill_test: ok\n");
	return 0;
}
