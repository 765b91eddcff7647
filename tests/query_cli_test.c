/*
 * The CLI's issue 8 commands against sluiced as a process (tenant demo,
 * the build's account_details plugin):
 *  - `sluice query <account_details id> --tenant demo` (a one-time query)
 *    prints the states get-all prints, at the head; --key one key (the
 *    initial state for a key without one); an unknown id, name or tenant
 *    is a clear error with a non-zero exit, a missing --tenant a usage
 *    error;
 *  - `sluice query ... --follow` (transient) prints the states, again when
 *    an event changes them, and ends cleanly on SIGINT, closing its run;
 *    a --follow SIGKILLed takes its run with it (the connection ends);
 *  - `sluice stop` / `start` pause and resume a projection;
 *  - `sluice start '$by_category'` starts the system projection and
 *    `sluice read --stream '$ce-acc' --resolve-links` prints the account
 *    events it linked, in log order, each with its link.
 */
#include "emit_testutil.h"

#define TENANT  "demo"
#define PROJ_ID "8a2f3c1e-5b7d-4e9a-9c11-2d4e6f8a0b13"
#define PROJ    "account_details"
#define WAIT_MS 30000
#define CT_TRANSIENT_NAME PROJ

#include "cli_testutil.h"

/* ---- daemon ---- */

/* Wait until PROJ is at the head (and not paused). */
static void
wait_head(void)
{
	et_wait_caught_up(TENANT, PROJ_ID, PROJ, NULL, WAIT_MS);
}

static void
commit_demo(void)
{
	commit("acc-0001", "DebitAccountOpened",
	    "{\"account_id\":\"acc-0001\",\"customer_id\":\"cust-01\","
	    "\"name\":\"Everyday\"}");
	commit("acc-0002", "DebitAccountOpened",
	    "{\"account_id\":\"acc-0002\",\"customer_id\":\"cust-02\","
	    "\"name\":\"Savings\"}");
	commit("cust-01", "CustomerRegistered",
	    "{\"customer_id\":\"cust-01\",\"name\":\"Ann Smith\","
	    "\"account\":{\"id\":\"acc-0001\"}}");
	commit("cust-02", "CustomerRegistered",
	    "{\"customer_id\":\"cust-02\",\"name\":\"Ravi Patel\","
	    "\"account\":{\"id\":\"acc-0002\"}}");
	commit("acc-0001", "DebitPerformed",
	    "{\"customer_id\":\"cust-01\",\"amount\":1200}");
	commit("acc-0001", "WithdrawalPerformed",
	    "{\"account_id\":\"acc-0001\",\"customer_id\":\"cust-01\","
	    "\"amount\":250}");
	commit("acc-0002", "DebitPerformed",
	    "{\"customer_id\":\"cust-02\",\"amount\":5000}");
}

/* ---- the parts ---- */

/* The states of a query's output as get-all prints them: [{key, state}]
 * (account_details has no result transform: no "result" may appear). */
static json_t *
states_of(json_t *q)
{
	json_t *sts = json_object_get(q, "states"), *s;
	size_t  i;
	if (!json_is_array(sts))
		FT_FAIL("no states array: %s", dump(q));
	json_array_foreach(sts, i, s)
	{
		if (json_object_get(s, "result") != NULL)
			FT_FAIL(
			    "a result without a transform: %s", dump(s));
	}
	return sts;
}

static void
check_one_time(void)
{
	json_t *all, *q, *one, *want;
	char    head_text[32];

	CHECK_EQ(SL("get-all", "--tenant", TENANT, "--projection", PROJ), 0);
	all = out_json();
	CHECK_EQ(json_array_size(all), 2);

	/* by id and by name: equal to get-all, at the head */
	CHECK_EQ(SL("query", PROJ_ID, "--tenant", TENANT), 0);
	q = out_json();
	if (!json_equal(states_of(q), all))
		FT_FAIL("query %s differs from get-all:\n%s\n%s", PROJ_ID,
		    dump(states_of(q)), dump(all));
	{
		json_t *st = et_status();
		snprintf(
		    head_text, sizeof(head_text), "%lld", jint(st, "head"));
		CHECK_EQ(jint(q, "position"), jint(st, "head"));
		json_decref(st);
	}
	json_decref(q);
	CHECK_EQ(SL("query", PROJ, "--tenant", TENANT), 0);
	q = out_json();
	CHECK(json_equal(states_of(q), all));
	json_decref(q);

	/* --key: that key only, as get-one has it */
	CHECK_EQ(
	    SL("query", PROJ_ID, "--tenant", TENANT, "--key", "acc-0001"), 0);
	q = out_json();
	CHECK_EQ(json_array_size(states_of(q)), 1);
	CHECK_EQ(SL("get-one", "--tenant", TENANT, "--projection", PROJ,
	             "acc-0001"),
	    0);
	one  = out_json(); /* get-one: {key, found, state} */
	want = json_array_get(states_of(q), 0);
	CHECK_STREQ(jstr(want, "key"), "acc-0001");
	CHECK_STREQ(jstr(one, "key"), "acc-0001");
	CHECK(json_is_true(json_object_get(one, "found")));
	if (!json_equal(json_object_get(want, "state"),
	        json_object_get(one, "state"))) {
		fprintf(stderr, "query --key: %s\n", dump(want));
		FT_FAIL("differs from get-one: %s", dump(one));
	}
	json_decref(one);
	json_decref(q);
	/* a key without a read model: its initial state */
	CHECK_EQ(
	    SL("query", PROJ_ID, "--tenant", TENANT, "--key", "acc-9999"), 0);
	q = out_json();
	CHECK_EQ(SL("get-one", "--tenant", TENANT, "--projection", PROJ,
	             "acc-9999"),
	    0);
	one = out_json();
	CHECK(json_is_false(json_object_get(one, "found")));
	CHECK_EQ(json_array_size(states_of(q)), 1);
	CHECK(json_equal(
	    json_object_get(json_array_get(states_of(q), 0), "state"),
	    json_object_get(one, "state")));
	json_decref(one);
	json_decref(q);
	json_decref(all);
	fprintf(
	    stderr, "query (one-time) equals get-all at head %s\n", head_text);

	/* errors: clear, non-zero, nothing on stdout */
	CHECK_EQ(SL("query", "00000000-dead-beef-0000-000000000000",
	             "--tenant", TENANT),
	    2);
	CHECK(strstr(err, "ENOTFOUND") != NULL);
	CHECK(out[0] == '\0');
	fprintf(stderr, "unknown id: %s", err);
	CHECK_EQ(SL("query", "no_such_projection", "--tenant", TENANT), 2);
	CHECK(strstr(err, "ENOTFOUND") != NULL);
	CHECK_EQ(SL("query", PROJ_ID, "--tenant", "nobody"), 2);
	CHECK(strstr(err, "ENOTFOUND") != NULL);
	CHECK_EQ(SL("query", PROJ_ID), 1); /* no --tenant */
	CHECK(strstr(err, "--tenant") != NULL);
	CHECK_EQ(SL("query", "--tenant", TENANT), 1); /* no id */
	CHECK_EQ(SL("query", PROJ_ID, "--tenant", TENANT, "--key", ""), 1);
}

static void
check_follow(void)
{
	char    path[4300], errp[4400];
	pid_t   pid;
	json_t *last = NULL, *s, *all;
	int64_t end;
	int     st;
	size_t  n, i;
	bool    seen = false;

	snprintf(path, sizeof(path), "%s/follow.out", tu_tmpdir());
	snprintf(errp, sizeof(errp), "%s.err", path);
	/* the read models (caught up): what the run must come to */
	CHECK_EQ(SL("get-all", "--tenant", TENANT, "--projection", PROJ), 0);
	all = out_json();
	pid = spawn_bg(path, "query", PROJ, "--tenant", TENANT, "--follow",
	    (const char *) NULL);
	/* the run starts from position 0: its first lines may show fewer
	 * states (a line per change); it comes to the read models' */
	end = dt_now_ms() + WAIT_MS;
	for (;;) {
		n = follow_lines(path, &last);
		if (n > 0 && json_equal(json_object_get(last, "states"), all))
			break;
		if (dt_wait_exit(pid, 0, &st)) {
			et_load_file(errp, err, sizeof(err));
			FT_FAIL("query --follow ended: 0x%x: %s", st, err);
		}
		if (dt_now_ms() > end)
			FT_FAIL("query --follow did not come to get-all's "
			        "states in %d ms: %s",
			    WAIT_MS, last != NULL ? dump(last) : "nothing");
		dt_sleep_ms(20);
	}
	json_decref(all);
	CHECK(jint(last, "head") >= jint(last, "position"));
	/* a change: a third account */
	commit("acc-0003", "DebitAccountOpened",
	    "{\"account_id\":\"acc-0003\",\"customer_id\":\"cust-03\","
	    "\"name\":\"Holiday\"}");
	while (!seen) {
		follow_lines(path, &last);
		json_array_foreach(json_object_get(last, "states"), i, s)
		{
			seen |= strcmp(jstr(s, "key"), "acc-0003") == 0;
		}
		if (!seen && dt_now_ms() > end)
			FT_FAIL("query --follow did not print the change: %s",
			    dump(last));
		if (!seen)
			dt_sleep_ms(20);
	}
	n = follow_lines(path, NULL);
	CHECK(n >= 2);
	/* no change, no new line */
	dt_sleep_ms(600);
	CHECK_EQ(follow_lines(path, NULL), n);
	CHECK_EQ(transients(), 1);
	CHECK(kill(pid, SIGINT) == 0);
	if (!dt_wait_exit(pid, 10000, &st))
		FT_FAIL("query --follow did not end on SIGINT");
	et_load_file(errp, err, sizeof(err));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		FT_FAIL("query --follow ended with 0x%x: %s", st, err);
	/* it closed its run */
	CHECK_EQ(transients(), 0);
	json_decref(last);
	fprintf(stderr, "query --follow: %zu lines, ended on SIGINT\n", n);

	/* a client that dies without closing: its run ends with its
	 * connection */
	pid = spawn_bg(path, "query", PROJ, "--tenant", TENANT, "--follow",
	    (const char *) NULL);
	wait_transients(1, "after a --follow started");
	CHECK(kill(pid, SIGKILL) == 0);
	CHECK(dt_waitpid(pid, NULL, 0) == pid);
	wait_transients(0, "after its client was SIGKILLed");
	fprintf(stderr, "a SIGKILLed --follow's run ended with it\n");
}

/* The library's transient calls: start, poll (all, one key), close; a
 * closed handle is ENOTFOUND. */
static void
check_transient_api(void)
{
	sl_query_result r;
	uint64_t        h;
	int64_t         end = dt_now_ms() + WAIT_MS;
	int             rc;

	CHECK_EQ(sl_client_query_start(et_cl, TENANT, PROJ_ID, &h), SL_OK);
	CHECK(h != 0);
	for (;;) {
		CHECK_EQ(sl_client_query_poll(et_cl, h, NULL, &r), SL_OK);
		bool done = r.position == r.head && r.n_states == 3;
		sl_query_result_free(&r);
		if (done)
			break;
		if (dt_now_ms() > end)
			FT_FAIL("transient run %" PRIu64 " not caught up", h);
		dt_sleep_ms(20);
	}
	CHECK_EQ(sl_client_query_poll(et_cl, h, "acc-0003", &r), SL_OK);
	CHECK_EQ(r.n_states, 1);
	CHECK_STREQ(r.states[0].key, "acc-0003");
	CHECK(strstr(r.states[0].state_json, "Holiday") != NULL);
	CHECK(r.states[0].result_json == NULL);
	sl_query_result_free(&r);
	CHECK_EQ(sl_client_query_close(et_cl, h), SL_OK);
	rc = sl_client_query_poll(et_cl, h, NULL, &r);
	if (rc != SL_ENOTFOUND)
		FT_FAIL("poll of a closed run: %s (%s)", sl_errname(rc),
		    sl_client_last_error(et_cl));
	CHECK_EQ(r.n_states, 0);
	CHECK_EQ(sl_client_query_close(et_cl, h), SL_ENOTFOUND);
	CHECK_EQ(
	    sl_client_query_start(et_cl, TENANT, "no_such", &h), SL_ENOTFOUND);
	CHECK_EQ(sl_client_query(et_cl, TENANT, NULL, NULL, &r), SL_EINVAL);
	fprintf(
	    stderr, "transient start / poll / close through the library\n");
}

static void
check_start_stop(void)
{
	json_t *j, *st, *p;

	CHECK_EQ(SL("stop", PROJ, "--tenant", TENANT), 0);
	j = out_json();
	CHECK(jint(j, "processors") >= 1);
	json_decref(j);
	st = et_status();
	p  = et_proj_entry(st, TENANT, PROJ_ID, PROJ);
	CHECK(p != NULL);
	if (!json_is_true(json_object_get(p, "paused"))
	    && strcmp(jstr(p, "status"), "stopped") != 0)
		FT_FAIL(
		    "stopped projection not shown stopped: %s", dump(p));
	json_decref(st);
	commit("acc-0002", "WithdrawalPerformed",
	    "{\"account_id\":\"acc-0002\",\"customer_id\":\"cust-02\","
	    "\"amount\":100}");
	dt_sleep_ms(300);
	st = et_status();
	p  = et_proj_entry(st, TENANT, PROJ_ID, PROJ);
	CHECK(jint(p, "position") < jint(st, "head"));
	json_decref(st);
	CHECK_EQ(SL("start", PROJ, "--tenant", TENANT), 0);
	wait_head();
	CHECK_EQ(SL("stop", "no_such_projection", "--tenant", TENANT), 2);
	CHECK(strstr(err, "ENOTFOUND") != NULL);
	fprintf(stderr, "stop / start: paused and resumed\n");
}

/* $by_category started by the CLI; $ce-acc read with links resolved. */
static void
check_category_links(void)
{
	uint64_t       want[64];
	size_t         n_want = 0, n = 0;
	char          *line, *save   = NULL;
	int64_t        end;
	sl_read_result r;

	CHECK(sl_client_read(et_cl, 0, 0, &r) == SL_OK);
	for (size_t i = 0; i < r.n_events; i++)
		if (strncmp(r.events[i].stream, "acc-", 4) == 0)
			want[n_want++] = r.events[i].position;
	CHECK(r.next == r.head);
	sl_read_result_free(&r);

	CHECK_EQ(SL("start", "$by_category", "--tenant", TENANT), 0);
	end = dt_now_ms() + WAIT_MS;
	for (;;) {
		CHECK_EQ(SL("read", "--tenant", TENANT, "--stream", "$ce-acc",
		             "--resolve-links"),
		    0);
		n = 0;
		for (const char *c = out; *c != '\0'; c++)
			n += *c == '\n';
		if (n == n_want)
			break;
		if (dt_now_ms() > end)
			FT_FAIL("$ce-acc has %zu events, expected %zu: %s", n,
			    n_want, out);
		dt_sleep_ms(50);
	}
	n = 0;
	for (line = strtok_r(out, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save), n++) {
		json_t *e = json_loads(line, 0, NULL), *l;
		CHECK(e != NULL);
		l = json_object_get(e, "link");
		if (jint(e, "position") != (long long) want[n]
		    || strncmp(jstr(e, "stream"), "acc-", 4) != 0
		    || !json_is_object(l)
		    || strcmp(jstr(l, "stream"), "$ce-acc") != 0
		    || jint(l, "revision") != (long long) n)
			FT_FAIL("$ce-acc[%zu] resolved should be position "
			        "%" PRIu64 " with its link: %s",
			    n, want[n], line);
		json_decref(e);
	}
	/* unresolved: the link events themselves */
	CHECK_EQ(SL("read", "--tenant", TENANT, "--stream", "$ce-acc", "--max",
	             "1"),
	    0);
	CHECK(strstr(out, "\"$>\"") != NULL);
	CHECK_EQ(
	    SL("read", "--tenant", TENANT, "--filter", "x", "--resolve-links"),
	    1);
	CHECK_EQ(SL("stop", "$by_category", "--tenant", TENANT), 0);
	fprintf(stderr, "$ce-acc: %zu links resolved through the CLI\n", n);
}

int
main(void)
{
	const char *dir;

	ft_setup(NULL);
	dir = tu_tmpdir();
	snprintf(out_path, sizeof(out_path), "%s/stdout.txt", dir);
	snprintf(err_path, sizeof(err_path), "%s/stderr.txt", dir);
	CHECK(access(ft_sluice, X_OK) == 0);
	et_write_config("data", SL_PLUGIN_DIR, TENANT,
	    "event_store:\n"
	    "  sync: false\n"
	    "start_standard_projections: false\n");
	et_daemon_up(10000);
	commit_demo();
	wait_head();

	check_one_time();
	check_follow();
	check_transient_api();
	check_start_stop();
	check_category_links();

	et_daemon_down();
	return 0;
}
