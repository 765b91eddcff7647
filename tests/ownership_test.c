/*
 * Stream ownership end to end (issue 8), sluiced as a process with the
 * e2e_* plugins:
 *  1. a client commit into a stream e2e_emitter declares ("ledger-x") or
 *     wrote ("ledger-account-1") is refused with EOWNED naming it, and
 *     nothing is written; '$' streams ($ce-, $et-, $streams, a result
 *     stream) are refused for clients;
 *  2. e2e_conflict, declaring the same "ledger-*", is refused at load
 *     with a status error naming both projections, and e2e_emitter goes on;
 *  3. with e2e_emitter's plugin removed (restart without it), what it
 *     wrote stays owned: a client commit there is still EOWNED, and
 *     e2e_conflict, now loaded, faults with EOWNED in its status when it
 *     tries to write there: nothing of it mixes into the streams.
 */
#include "emit_testutil.h"

#define TENANT      FT_TENANT
#define EMITTER_ID  ET_EMITTER_ID
#define EMITTER     ET_EMITTER
#define CONFLICT_ID "e2e0e2e0-0002-4000-8000-000000000002"
#define CONFLICT    "e2e_conflict"
#define WAIT_MS     30000
#define N_OPENED    3

static char emitter_so[4400], conflict_so[4400];

/* e2e_emitter's or e2e_conflict's entry in status, or NULL. */
static json_t *
proj_entry(json_t *st, const char *id, const char *name)
{
	return et_proj_entry(st, TENANT, id, name);
}

/* The status entry of a plugin file (by its file name's end). */
static json_t *
plugin_entry(json_t *st, const char *so)
{
	size_t  i;
	json_t *p;

	json_array_foreach(json_object_get(st, "plugins"), i, p)
	{
		const char *f = jstr(p, "file");
		size_t      n = strlen(f), m = strlen(so);
		if (n >= m && strcmp(f + n - m, so) == 0)
			return p;
	}
	return NULL;
}

/* Wait until e2e_emitter has nothing left to handle. */
static void
wait_emitter(void)
{
	et_wait_caught_up(
	    TENANT, EMITTER_ID, EMITTER, et_emitter_handles, WAIT_MS);
}

static uint64_t
head(void)
{
	json_t   *st = et_status();
	long long h  = jint(st, "head");
	json_decref(st);
	CHECK(h >= 0);
	return (uint64_t) h;
}

/* Events of a stream of TENANT. */
static size_t
stream_len(const char *stream)
{
	sl_read_result r;
	size_t         n;
	int rc = sl_client_read_stream(et_cl, TENANT, stream, 0, 0, &r);
	if (rc != SL_OK)
		FT_FAIL("read %s: %s: %s", stream, sl_errname(rc),
		    sl_client_last_error(et_cl));
	n = r.n_events;
	sl_read_result_free(&r);
	return n;
}

static int
commit_one(const char *stream, const char *type)
{
	sl_new_event ev = { .type = type, .content_json = "{\"a\":1}" };
	return sl_client_commit(
	    et_cl, TENANT, stream, SL_EXPECT_ANY, &ev, 1, NULL);
}

/* A client commit into an owned stream: EOWNED naming the owner, and
 * nothing written. */
static void
check_owned(const char *stream)
{
	uint64_t    h   = head();
	size_t      n   = stream_len(stream);
	int         rc  = commit_one(stream, "Intruder");
	const char *msg = sl_client_last_error(et_cl);

	if (rc != SL_EOWNED)
		FT_FAIL("commit to %s: %s (%s), expected EOWNED", stream,
		    sl_errname(rc), msg);
	if (strstr(msg, EMITTER) == NULL && strstr(msg, EMITTER_ID) == NULL)
		FT_FAIL("the EOWNED message does not name the owner: %s", msg);
	fprintf(stderr, "commit to %s: EOWNED: %s\n", stream, msg);
	CHECK_EQ(head(), h);
	CHECK_EQ(stream_len(stream), n);
}

static void
check_system_refused(const char *stream)
{
	uint64_t h  = head();
	int      rc = commit_one(stream, "Intruder");

	if (rc == SL_OK)
		FT_FAIL("a client could write to %s", stream);
	CHECK(rc == SL_EINVAL || rc == SL_EOWNED);
	CHECK_EQ(head(), h);
	if (stream_len(stream) != 0)
		FT_FAIL("%s has events (the client's?); status: %s", stream,
		    dump(et_status()));
}

int
main(void)
{
	uint64_t h;
	int64_t  end;

	ft_setup(NULL);
	et_write_config("data", et_plugin_dir(), TENANT,
	    "run_projections: all\n"
	    "start_standard_projections: false\n");
	et_install_plugin(EMITTER, emitter_so, sizeof(emitter_so));

	/* 1. e2e_emitter writes ledger-account-1; clients may not. */
	et_daemon_up(10000);
	for (int i = 0; i < N_OPENED; i++)
		CHECK_EQ(commit_one("account-1",
		             i == 0 ? "AccountOpened" : "Deposited"),
		    SL_OK);
	wait_emitter();
	CHECK_EQ(stream_len("ledger-account-1"), N_OPENED);
	CHECK_EQ(stream_len("ledger-all"), N_OPENED);
	check_owned("ledger-x");         /* declared, never written */
	check_owned("ledger-account-1"); /* written */
	check_owned("ledger-all");
	check_system_refused("$ce-account");
	check_system_refused("$et-Deposited");
	check_system_refused("$streams");
	check_system_refused("$projections-" EMITTER "-account-9-result");
	/* the CLI says EOWNED, exits 2 (an error reply), writes nothing */
	{
		char cmd[16384], errf[4400], msg[2048];
		snprintf(errf, sizeof(errf), "%s/cli.err", tu_tmpdir());
		snprintf(cmd, sizeof(cmd),
		    "'%s' --url '%s' commit --tenant " TENANT
		    " --stream ledger-x --type Intruder '{}' >/dev/null "
		    "2>'%s'",
		    ft_sluice, ft_api_url, errf);
		h      = head();
		int st = system(cmd);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2);
		CHECK(access(errf, R_OK) == 0);
		et_load_file(errf, msg, sizeof(msg));
		if (strstr(msg, "EOWNED") == NULL
		    || strstr(msg, EMITTER) == NULL)
			FT_FAIL("sluice commit into ledger-x: %s", msg);
		CHECK_EQ(head(), h);
		fprintf(stderr, "%s", msg);
	}
	/* a stream nobody declares stays open to clients */
	CHECK_EQ(commit_one("ledgers", "Free"), SL_OK);

	/* 2. A second projection declaring ledger-* is refused at load. */
	et_install_plugin(CONFLICT, conflict_so, sizeof(conflict_so));
	end = dt_now_ms() + WAIT_MS;
	for (;;) {
		json_t *st      = et_status(),
		       *p       = plugin_entry(st, "/e2e_conflict.so");
		const char *err = p != NULL ? jstr(p, "error") : "";
		if (err[0] != '\0') {
			if ((strstr(err, CONFLICT) == NULL
			        && strstr(err, CONFLICT_ID) == NULL)
			    || (strstr(err, EMITTER) == NULL
			        && strstr(err, EMITTER_ID) == NULL))
				FT_FAIL("the refusal does not name both "
				        "projections: %s",
				    err);
			if (json_is_true(json_object_get(p, "loaded")))
				FT_FAIL("e2e_conflict refused but loaded: %s",
				    dump(p));
			if (proj_entry(st, CONFLICT_ID, CONFLICT) != NULL)
				FT_FAIL("a refused projection runs: %s",
				    dump(st));
			fprintf(stderr, "e2e_conflict refused: %s\n", err);
			json_decref(st);
			break;
		}
		if (dt_now_ms() > end)
			FT_FAIL("e2e_conflict not refused within %d ms: %s",
			    WAIT_MS, dump(st));
		json_decref(st);
		dt_sleep_ms(50);
	}
	/* e2e_emitter goes on */
	CHECK_EQ(commit_one("account-1", "Deposited"), SL_OK);
	wait_emitter();
	CHECK_EQ(stream_len("ledger-account-1"), N_OPENED + 1);
	CHECK(unlink(conflict_so) == 0);
	et_daemon_down();

	/* 3. e2e_emitter removed: what it wrote stays its own. */
	CHECK(unlink(emitter_so) == 0);
	et_daemon_up(10000);
	check_owned("ledger-account-1");
	check_owned("ledger-all");
	h = head();
	et_install_plugin(CONFLICT, conflict_so, sizeof(conflict_so));
	end = dt_now_ms() + WAIT_MS;
	for (;;) {
		json_t *st      = et_status(),
		       *p       = proj_entry(st, CONFLICT_ID, CONFLICT);
		const char *why = p != NULL ? jstr(p, "status_reason") : "";
		if (p != NULL
		    && strcmp(jstr(p, "status"), "faulted") == 0) {
			/* the code's name, or its message naming the
			 * owner (the batch was refused by the store) */
			if (strstr(why, "EOWNED") == NULL
			    && (strstr(why, "owned by") == NULL
			        || strstr(why, EMITTER_ID) == NULL))
				FT_FAIL("faulted without EOWNED in the "
				        "reason: %s",
				    dump(p));
			fprintf(stderr, "e2e_conflict faulted: %s\n", why);
			json_decref(st);
			break;
		}
		if (p != NULL && jint(p, "position") == jint(st, "head")
		    && jint(st, "head") > 0)
			FT_FAIL("e2e_conflict ran through without a fault: "
			        "%s",
			    dump(p));
		if (dt_now_ms() > end)
			FT_FAIL("e2e_conflict did not fault within %d ms: %s",
			    WAIT_MS, dump(st));
		json_decref(st);
		dt_sleep_ms(50);
	}
	/* nothing of it was written, nothing mixed into the streams */
	CHECK_EQ(head(), h);
	CHECK_EQ(stream_len("ledger-account-1"), N_OPENED + 1);
	CHECK_EQ(stream_len("ledger-all"), N_OPENED + 1);
	/* and it stays faulted across a restart, still writing nothing */
	et_daemon_down();
	et_daemon_up(10000);
	end = dt_now_ms() + WAIT_MS;
	for (;;) {
		json_t *st   = et_status(),
		       *p    = proj_entry(st, CONFLICT_ID, CONFLICT);
		bool faulted = p != NULL
		    && strcmp(jstr(p, "status"), "faulted") == 0;
		if (!faulted && dt_now_ms() > end)
			FT_FAIL("e2e_conflict not faulted after a restart: "
			        "%s",
			    dump(st));
		json_decref(st);
		if (faulted)
			break;
		dt_sleep_ms(50);
	}
	CHECK_EQ(head(), h);
	et_daemon_down();
	return 0;
}
