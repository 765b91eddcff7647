/*
 * One-time and transient queries of JavaScript projections that are not
 * loaded (issue 16: `sluice query --js FILE`), against sluiced as a process
 * whose plugin directory holds one accounts.js (tenant demo):
 *  - a one-time query over committed events answers the states computed
 *    by hand here (foreachStream, one root state, a result transform's
 *    results beside the states, no result stream written), --key one key
 *    (and {} for a key without a state), through the CLI and the C
 *    client;
 *  - --follow prints the states, again when a commit changes them, and
 *    ends on SIGINT closing its run; a SIGKILLed --follow's run ends with
 *    its connection; the library's start / poll / close;
 *  - a syntax error, a throw at load, a throw on an event and a loop (the
 *    CPU budget) are clear errors (file:line where the engine knows it)
 *    with exit 2, and the daemon keeps serving;
 *  - a script over limits.max_request_bytes (64 KiB here) is refused by
 *    the CLI before it is sent and by the daemon when sent;
 *  - a script declaring emits is refused, an undeclared emit fails the
 *    query; neither writes to the log;
 *  - a slow query runs while status, commits and another script's query
 *    are answered;
 *  - a loaded accounts.js (another text) keeps its read models and its
 *    own answers while scripts named accounts.js are queried;
 *  - after every query, the script's private copies (of the script and of
 *    js_host.so) are gone from the plugin cache.
 */
#include <dirent.h>

#include "emit_testutil.h"

#define TENANT  "demo"
#define WAIT_MS 30000

#include "cli_testutil.h"

static char scripts[4200]; /* <tmp>/scripts */
static char cache[4200];   /* the daemon's plugin cache */
static int  loaded_copies; /* in it for the loaded accounts.js */

/* ---- scripts, events, the cache ---- */

/* Write <tmp>/scripts/name; its path in path. */
static void
script(char *path, size_t cap, const char *name, const char *text)
{
	CHECK(snprintf(path, cap, "%s/%s", scripts, name) < (int) cap);
	tu_write_file(path, text);
}

static long long
head(void)
{
	json_t   *st = et_status();
	long long h  = jint(st, "head");
	json_decref(st);
	return h;
}

/* Private copies in the plugin cache (loaded_copies of them are the
 * loaded accounts.js's, the others a query's). */
static int
copies(void)
{
	DIR           *d = opendir(cache);
	struct dirent *de;
	int            n = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Wait until the cache holds no query's copy (they go after its reply,
 * as the thread that ran it lets go). */
static void
wait_no_copies(const char *after)
{
	int64_t end = dt_now_ms() + WAIT_MS;
	while (copies() != loaded_copies) {
		if (dt_now_ms() > end)
			FT_FAIL("%d private copies left in %s after %s",
			    copies() - loaded_copies, cache, after);
		dt_sleep_ms(20);
	}
}

/* ---- the scripts ---- */

static const char accounts_js[]
    = "// one state per account stream\n"
      "fromCategory('acc').foreachStream().when({\n"
      "  $init: function () { return { balance: 0, ops: 0 }; },\n"
      "  AccountOpened: function (s, e) { s.name = e.data.name; },\n"
      "  Deposited: function (s, e) { s.balance += e.data.amount; "
      "s.ops++; },\n"
      "  Withdrawn: function (s, e) { s.balance -= e.data.amount; "
      "s.ops++; }\n"
      "});\n";

static const char count_js[]
    = "fromAll().when({\n"
      "  $init: function () { return { n: 0, types: {} }; },\n"
      "  $any: function (s, e) {\n"
      "    s.n++; s.types[e.eventType] = (s.types[e.eventType] || 0) + 1;\n"
      "  }\n"
      "});\n";

/* The accounts.js loaded from plugin_dir: another text, the same name
 * (and so the same id) as the queries' accounts.js. */
static const char loaded_js[]
    = "fromCategory('acc').foreachStream().when({\n"
      "  $init: function () { return { opened: 0 }; },\n"
      "  AccountOpened: function (s, e) { s.opened++; }\n"
      "});\n";

/* The demo events, and what accounts_js and count_js make of them, by
 * hand. */
static void
commit_demo(void)
{
	commit("acc-1", "AccountOpened", "{\"name\":\"Ann\"}");
	commit("acc-1", "Deposited", "{\"amount\":100}");
	commit("acc-2", "AccountOpened", "{\"name\":\"Bob\"}");
	commit("acc-1", "Withdrawn", "{\"amount\":30}");
	commit("acc-2", "Deposited", "{\"amount\":50}");
	commit("other-1", "Noise", "{}");
}

#define ACC1 "{\"balance\":70,\"ops\":2,\"name\":\"Ann\"}"
#define ACC2 "{\"balance\":50,\"ops\":1,\"name\":\"Bob\"}"
#define ACC3 "{\"balance\":0,\"ops\":0,\"name\":\"Cy\"}"

static json_t *
expect_accounts(bool with_acc3)
{
	json_t *a = json_pack("[{s:s,s:o},{s:s,s:o}]", "key", "acc-1", "state",
	    json_loads(ACC1, 0, NULL), "key", "acc-2", "state",
	    json_loads(ACC2, 0, NULL));
	CHECK(a != NULL);
	if (with_acc3)
		json_array_append_new(a,
		    json_pack("{s:s,s:o}", "key", "acc-3", "state",
		        json_loads(ACC3, 0, NULL)));
	return a;
}

static void
check_states(json_t *got, json_t *want, const char *what)
{
	if (!json_equal(got, want)) {
		fprintf(stderr, "want: %s\n", dump(want));
		FT_FAIL("%s: states differ: %s", what, dump(got));
	}
}

/* ---- the parts ---- */

static void
check_one_time(void)
{
	char    acc[4400], cnt[4400];
	json_t *q, *want;

	script(acc, sizeof(acc), "accounts.js", accounts_js);
	script(cnt, sizeof(cnt), "count.js", count_js);

	CHECK_EQ(SL("query", "--js", acc, "--tenant", TENANT), 0);
	q    = out_json();
	want = expect_accounts(false);
	check_states(json_object_get(q, "states"), want, "query --js");
	CHECK_EQ(jint(q, "position"), head());
	json_decref(want);
	json_decref(q);
	wait_no_copies("a one-time query");

	/* one state (key root), every event of the tenant */
	CHECK_EQ(SL("query", "--js", cnt, "--tenant", TENANT), 0);
	q    = out_json();
	want = json_pack("[{s:s,s:{s:i,s:{s:i,s:i,s:i,s:i}}}]", "key", "root",
	    "state", "n", 6, "types", "AccountOpened", 2, "Deposited", 2,
	    "Withdrawn", 1, "Noise", 1);
	CHECK(want != NULL);
	check_states(json_object_get(q, "states"), want, "count.js");
	json_decref(want);
	json_decref(q);

	/* --key: that key; a key without a state: the initial state {} */
	CHECK_EQ(
	    SL("query", "--js", acc, "--tenant", TENANT, "--key", "acc-2"), 0);
	q    = out_json();
	want = json_pack(
	    "[{s:s,s:o}]", "key", "acc-2", "state", json_loads(ACC2, 0, NULL));
	check_states(json_object_get(q, "states"), want, "--key acc-2");
	json_decref(want);
	json_decref(q);
	CHECK_EQ(
	    SL("query", "--js", acc, "--tenant", TENANT, "--key", "acc-9"), 0);
	q    = out_json();
	want = json_pack("[{s:s,s:{}}]", "key", "acc-9", "state");
	check_states(json_object_get(q, "states"), want, "--key acc-9");
	json_decref(want);
	json_decref(q);

	/* a result transform: each state's result beside it */
	{
		char res[4400];
		script(res, sizeof(res), "result.js",
		    "fromCategory('acc').foreachStream().when({\n"
		    "  $init: function () { return { b: 0 }; },\n"
		    "  Deposited: function (s, e) { s.b += e.data.amount; }\n"
		    "}).transformBy(function (s) { return { twice: 2 * s.b }; "
		    "})"
		    ".outputState();\n");
		long long h0 = head();
		CHECK_EQ(SL("query", "--js", res, "--tenant", TENANT), 0);
		CHECK_EQ(head(), h0); /* no result stream written */
		q    = out_json();
		want = json_pack(
		    "[{s:s,s:{s:i},s:{s:i}},{s:s,s:{s:i},s:{s:i}}]", "key",
		    "acc-1", "state", "b", 100, "result", "twice", 200, "key",
		    "acc-2", "state", "b", 50, "result", "twice", 100);
		CHECK(want != NULL);
		check_states(json_object_get(q, "states"), want, "result.js");
		json_decref(want);
		json_decref(q);
	}

	/* from stdin: named query.js */
	{
		pid_t pid, parent = getpid();
		int   st;
		fflush(NULL);
		pid = fork();
		CHECK(pid >= 0);
		if (pid == 0) {
			dt_child_setup(parent);
			int i = open(acc, O_RDONLY);
			int o = open(
			    out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
			if (i < 0 || o < 0)
				_exit(126);
			dup2(i, 0);
			dup2(o, 1);
			execl(ft_sluice, "sluice", "--url", ft_api_url,
			    "query", "--js", "-", "--tenant", TENANT,
			    (char *) NULL);
			_exit(127);
		}
		CHECK(dt_wait_exit(pid, WAIT_MS, &st));
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		et_load_file(out_path, out, sizeof(out));
		q    = out_json();
		want = expect_accounts(false);
		check_states(json_object_get(q, "states"), want, "--js -");
		json_decref(want);
		json_decref(q);
	}

	/* the C client */
	{
		sl_query_result r;
		CHECK_EQ(sl_client_query_js(et_cl, TENANT, acc, accounts_js,
		             strlen(accounts_js), "acc-1", &r),
		    SL_OK);
		CHECK_EQ(r.n_states, 1);
		CHECK_STREQ(r.states[0].key, "acc-1");
		json_t *s = json_loads(r.states[0].state_json, 0, NULL);
		json_t *w = json_loads(ACC1, 0, NULL);
		CHECK(json_equal(s, w));
		CHECK(r.states[0].result_json == NULL);
		CHECK_EQ((long long) r.position, head());
		json_decref(s);
		json_decref(w);
		sl_query_result_free(&r);
	}

	/* usage */
	CHECK_EQ(SL("query", "accounts", "--js", acc, "--tenant", TENANT), 1);
	CHECK(strstr(err, "not both") != NULL);
	CHECK_EQ(SL("query", "--js", acc), 1);
	CHECK_EQ(
	    SL("query", "--js", "/nonexistent/x.js", "--tenant", TENANT), 1);
	CHECK(strstr(err, "cannot read") != NULL);
	wait_no_copies("the one-time queries");
	fprintf(stderr, "one-time --js queries: states as computed\n");
}

/* Wait until the last --follow line's states equal want. */
static void
follow_until(pid_t pid, const char *path, json_t *want, const char *what)
{
	json_t *last = NULL;
	int64_t end  = dt_now_ms() + WAIT_MS;
	int     st;
	char    errp[4400];

	snprintf(errp, sizeof(errp), "%s.err", path);
	for (;;) {
		if (follow_lines(path, &last) > 0
		    && json_equal(json_object_get(last, "states"), want))
			break;
		if (dt_wait_exit(pid, 0, &st)) {
			et_load_file(errp, err, sizeof(err));
			FT_FAIL(
			    "query --js --follow ended: 0x%x: %s", st, err);
		}
		if (dt_now_ms() > end)
			FT_FAIL("query --js --follow did not print %s in %d "
			        "ms: %s",
			    what, WAIT_MS,
			    last != NULL ? dump(last) : "nothing");
		dt_sleep_ms(20);
	}
	CHECK(jint(last, "head") >= jint(last, "position"));
	json_decref(last);
}

static void
check_follow(void)
{
	char    acc[4400], path[4300], errp[4400];
	json_t *want;
	pid_t   pid;
	int     st;

	script(acc, sizeof(acc), "accounts.js", accounts_js);
	snprintf(path, sizeof(path), "%s/follow.out", tu_tmpdir());
	snprintf(errp, sizeof(errp), "%s.err", path);
	pid  = spawn_bg(path, "query", "--js", acc, "--tenant", TENANT,
	     "--follow", (const char *) NULL);
	want = expect_accounts(false);
	follow_until(pid, path, want, "the committed states");
	json_decref(want);
	CHECK_EQ(transients(), 1);
	CHECK(copies() > loaded_copies); /* the run holds its script */
	commit("acc-3", "AccountOpened", "{\"name\":\"Cy\"}");
	want = expect_accounts(true);
	follow_until(pid, path, want, "the new account");
	json_decref(want);
	CHECK(kill(pid, SIGINT) == 0);
	if (!dt_wait_exit(pid, 10000, &st))
		FT_FAIL("query --js --follow did not end on SIGINT");
	et_load_file(errp, err, sizeof(err));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		FT_FAIL("query --js --follow ended with 0x%x: %s", st, err);
	CHECK_EQ(transients(), 0);
	wait_no_copies("a --follow closed on SIGINT");
	fprintf(stderr,
	    "query --js --follow: the change seen, closed on "
	    "SIGINT, script unloaded\n");

	/* a client that dies: its run and its script go with it */
	pid = spawn_bg(path, "query", "--js", acc, "--tenant", TENANT,
	    "--follow", (const char *) NULL);
	wait_transients(1, "after a --js --follow started");
	CHECK(kill(pid, SIGKILL) == 0);
	CHECK(dt_waitpid(pid, NULL, 0) == pid);
	wait_transients(0, "after its client was SIGKILLed");
	wait_no_copies("a SIGKILLed --follow");

	/* the library: start, poll (all, one key), close */
	{
		sl_query_result r;
		uint64_t        h;
		int64_t         end = dt_now_ms() + WAIT_MS;
		CHECK_EQ(sl_client_query_js_start(et_cl, TENANT, "accounts.js",
		             accounts_js, strlen(accounts_js), &h),
		    SL_OK);
		for (;;) {
			CHECK_EQ(
			    sl_client_query_poll(et_cl, h, NULL, &r), SL_OK);
			bool done = r.position == r.head && r.n_states == 3;
			sl_query_result_free(&r);
			if (done)
				break;
			if (dt_now_ms() > end)
				FT_FAIL("transient run %" PRIu64
				        " not caught up",
				    h);
			dt_sleep_ms(20);
		}
		CHECK_EQ(sl_client_query_poll(et_cl, h, "acc-3", &r), SL_OK);
		CHECK_EQ(r.n_states, 1);
		CHECK(strstr(r.states[0].state_json, "Cy") != NULL);
		sl_query_result_free(&r);
		CHECK_EQ(sl_client_query_close(et_cl, h), SL_OK);
		CHECK_EQ(
		    sl_client_query_poll(et_cl, h, NULL, &r), SL_ENOTFOUND);
		wait_no_copies("a closed transient run");
	}
	fprintf(stderr,
	    "a SIGKILLed --follow's run ended; library "
	    "start / poll / close\n");
}

/* The query of name (text) fails: exit 2, stderr has code and each of
 * the needles, nothing on stdout; the daemon still answers. */
static void
check_refused(const char *name, const char *text, const char *code,
    const char *needle1, const char *needle2)
{
	char path[4400];

	script(path, sizeof(path), name, text);
	CHECK_EQ(SL("query", "--js", path, "--tenant", TENANT), 2);
	if (strstr(err, code) == NULL || strstr(err, needle1) == NULL
	    || (needle2 != NULL && strstr(err, needle2) == NULL))
		FT_FAIL("%s: expected %s, '%s'%s%s: %s", name, code, needle1,
		    needle2 != NULL ? ", " : "",
		    needle2 != NULL ? needle2 : "", err);
	CHECK(out[0] == '\0');
	fprintf(stderr, "%s: %s", name, err);
	json_decref(et_status()); /* still serving */
}

static void
check_failures(void)
{
	long long h = head();

	/* at load */
	check_refused("syntax.js",
	    "fromAll().when({\n"
	    "  $any: function (s, e) { s.x = ; }\n"
	    "});\n",
	    "EPLUGIN", "syntax.js:2", "SyntaxError");
	check_refused("throws_top.js",
	    "var x = 1;\n"
	    "throw new Error('not today');\n",
	    "EPLUGIN", "throws_top.js:2", "not today");
	/* on an event */
	check_refused("throws.js",
	    "fromCategory('acc').foreachStream().when({\n"
	    "  Deposited: function (s, e) {\n"
	    "    if (e.data.amount > 60) throw new Error('too much');\n"
	    "  }\n"
	    "});\n",
	    "EPLUGIN", "throws.js:3", "too much");
	check_refused("loop.js",
	    "fromAll().when({\n"
	    "  $any: function (s, e) { for (;;) {} }\n"
	    "});\n",
	    "EPLUGIN", "loop.js", "CPU budget");
	/* emits: refused at load; an undeclared emit fails the query */
	check_refused("emits.js",
	    "options({ emits: ['audit-*'] });\n"
	    "fromCategory('acc').foreachStream().when({\n"
	    "  Deposited: function (s, e) {\n"
	    "    emit('audit-' + e.streamId, 'Seen', { a: 1 });\n"
	    "  }\n"
	    "});\n",
	    "EPLUGIN", "emits.js", "declares the streams it emits to");
	check_refused("emit_undeclared.js",
	    "fromCategory('acc').foreachStream().when({\n"
	    "  Deposited: function (s, e) {\n"
	    "    linkTo('audit-all', e);\n"
	    "  }\n"
	    "});\n",
	    "EPLUGIN", "emit_undeclared.js", "refused");
	check_refused("empty.js", "", "EPLUGIN", "empty.js", NULL);
	/* not a .js name (the library sends the basename); a NUL byte */
	{
		sl_query_result r;
		CHECK_EQ(sl_client_query_js(et_cl, TENANT, "nul.js",
		             "fromAll()\0;", 11, NULL, &r),
		    SL_EINVAL);
		CHECK(strstr(sl_client_last_error(et_cl),
		          "nul.js: the script "
		          "holds a NUL byte")
		    != NULL);
		CHECK_EQ(sl_client_query_js(et_cl, TENANT, "dir/q.txt",
		             count_js, strlen(count_js), NULL, &r),
		    SL_EINVAL);
		CHECK(strstr(sl_client_last_error(et_cl), ".js") != NULL);
	}
	CHECK_EQ(head(), h); /* nothing was written */
	wait_no_copies("the refused scripts");
}

static void
check_too_big(void)
{
	size_t n   = 200 * 1024;
	char  *big = malloc(n + 1), path[4400];

	CHECK(big != NULL);
	/* a valid script padded with a comment */
	memset(big, ' ', n);
	memcpy(big, "// pad", 6);
	big[n - 1] = '\n';
	big[n]     = '\0';
	memcpy(big + n - sizeof(count_js), count_js, sizeof(count_js) - 1);
	script(path, sizeof(path), "big.js", big);
	/* the CLI knows the limit (status): refused before it is sent */
	CHECK_EQ(SL("query", "--js", path, "--tenant", TENANT), 2);
	if (strstr(err, "ETOOBIG") == NULL || strstr(err, "big.js") == NULL
	    || strstr(err, "max_request_bytes") == NULL)
		FT_FAIL("big.js: %s", err);
	fprintf(stderr, "big.js: %s", err);
	/* sent anyway (between the limit and twice it): the daemon refuses */
	{
		sl_query_result r;
		size_t          m = 100 * 1024;
		memcpy(big + m - sizeof(count_js), count_js,
		    sizeof(count_js) - 1);
		big[m - 1] = '\n';
		CHECK_EQ(sl_client_query_js(
		             et_cl, TENANT, "big.js", big, m, NULL, &r),
		    SL_ETOOBIG);
		fprintf(stderr, "100 KiB through the library: %s\n",
		    sl_client_last_error(et_cl));
	}
	free(big);
	json_decref(et_status());
}

/* A slow query (about 2 s) runs while fast requests and another script's
 * query are answered. */
/* The loaded accounts.js: its read models and its one-time query are
 * its own, whatever scripts of its name were queried. */
static void
check_loaded_untouched(void)
{
	json_t *want = json_pack("[{s:s,s:{s:i}},{s:s,s:{s:i}},{s:s,s:{s:i}}]",
	    "key", "acc-1", "state", "opened", 1, "key", "acc-2", "state",
	    "opened", 1, "key", "acc-3", "state", "opened", 1);
	json_t *j, *st, *p;
	size_t  i;
	int     n = 0;

	CHECK(want != NULL);
	et_wait_caught_up(TENANT, "", "accounts", NULL, WAIT_MS);
	CHECK_EQ(
	    SL("get-all", "--tenant", TENANT, "--projection", "accounts"), 0);
	j = out_json();
	check_states(j, want, "the loaded accounts.js's read models");
	json_decref(j);
	CHECK_EQ(SL("query", "accounts", "--tenant", TENANT), 0);
	j = out_json();
	check_states(json_object_get(j, "states"), want,
	    "a query of the loaded accounts.js");
	json_decref(j);
	json_decref(want);
	/* listed once, as the plugin_dir file's */
	st = et_status();
	json_array_foreach(json_object_get(st, "projections"), i, p)
	{
		n += strcmp(jstr(p, "name"), "accounts") == 0;
	}
	CHECK_EQ(n, 1);
	json_decref(st);
	fprintf(stderr, "the loaded accounts.js kept its own states\n");
}

static void
check_serving_meanwhile(void)
{
	char    slow[4400], path[4300], errp[4400];
	pid_t   pid;
	int64_t worst  = 0, t0;
	int     n_fast = 0, st;

	for (int i = 0; i < 40; i++)
		commit("tick-1", "Tick", "{}");
	script(slow, sizeof(slow), "slow.js",
	    "fromStream('tick-1').when({\n"
	    "  $init: function () { return { n: 0 }; },\n"
	    "  $any: function (s, e) {\n"
	    "    var t = Date.now(); while (Date.now() - t < 50) {}\n"
	    "    s.n++;\n"
	    "  }\n"
	    "});\n");
	snprintf(path, sizeof(path), "%s/slow.out", tu_tmpdir());
	snprintf(errp, sizeof(errp), "%s.err", path);
	t0  = dt_now_ms();
	pid = spawn_bg(path, "query", "--js", slow, "--tenant", TENANT,
	    (const char *) NULL);
	dt_sleep_ms(300); /* it runs */
	while (!dt_wait_exit(pid, 0, &st)) {
		int64_t a = dt_now_ms();
		json_decref(et_status());
		commit("other-2", "Noise", "{}");
		int64_t d = dt_now_ms() - a;
		worst     = d > worst ? d : worst;
		if (n_fast++ == 3) {
			sl_query_result r;
			CHECK_EQ(
			    sl_client_query_js(et_cl, TENANT, "acc.js",
			        accounts_js, strlen(accounts_js), "acc-1", &r),
			    SL_OK);
			CHECK_EQ(r.n_states, 1);
			sl_query_result_free(&r);
		}
		if (dt_now_ms() - t0 > WAIT_MS) {
			kill(pid, SIGKILL);
			dt_waitpid(pid, NULL, 0);
			FT_FAIL("the slow query did not end");
		}
		dt_sleep_ms(50);
	}
	et_load_file(path, out, sizeof(out));
	et_load_file(errp, err, sizeof(err));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		FT_FAIL("slow.js: 0x%x: %s", st, err);
	json_t *q = out_json();
	json_t *want
	    = json_pack("[{s:s,s:{s:i}}]", "key", "root", "state", "n", 40);
	check_states(json_object_get(q, "states"), want, "slow.js");
	json_decref(want);
	json_decref(q);
	if (n_fast < 5 || worst > 1000)
		FT_FAIL("while slow.js ran: %d status + commit pairs, the "
		        "slowest %lld ms",
		    n_fast, (long long) worst);
	wait_no_copies("the slow query");
	fprintf(stderr,
	    "slow.js ran %lld ms; meanwhile %d status + commit pairs (the "
	    "slowest %lld ms) and a second script's query\n",
	    (long long) (dt_now_ms() - t0), n_fast, (long long) worst);
}

int
main(void)
{
	const char *dir;

	ft_setup(NULL);
	dir = tu_tmpdir();
	snprintf(out_path, sizeof(out_path), "%s/stdout.txt", dir);
	snprintf(err_path, sizeof(err_path), "%s/stderr.txt", dir);
	snprintf(scripts, sizeof(scripts), "%s/scripts", dir);
	snprintf(cache, sizeof(cache), "%s/data/plugin-cache", dir);
	CHECK(mkdir(scripts, 0755) == 0);
	CHECK(access(ft_sluice, X_OK) == 0);
	et_write_config("data", et_plugin_dir(), TENANT,
	    "event_store:\n"
	    "  sync: false\n"
	    "start_standard_projections: false\n"
	    "limits:\n"
	    "  max_request_bytes: 64KiB\n");
	{
		char path[4400];
		snprintf(
		    path, sizeof(path), "%s/accounts.js", et_plugin_dir());
		dt_put_file(path, NULL, loaded_js, strlen(loaded_js));
	}
	et_daemon_up(10000);
	loaded_copies = copies();
	CHECK_EQ(loaded_copies, 2); /* the script and js_host.so */
	commit_demo();

	check_one_time();
	check_failures();
	check_too_big();
	check_follow();
	check_loaded_untouched();
	check_serving_meanwhile();
	CHECK_EQ(copies(), loaded_copies);

	et_daemon_down();
	return 0;
}
