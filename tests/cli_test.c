/*
 * Proves the `sluice` CLI end to end: the built binary against a real
 * runtime for commit (one event, batch, stdin; JSON with a key twice
 * refused), read (log, stream, paging), get-one (found or not), get-all
 * and status, the endpoint lookup (--url, SLUICE_URL, --config) and the
 * exit statuses 1, 2 and 3.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <pty.h>
#include <sys/wait.h>
#include <time.h>

#include <jansson.h>

#include "api_fixture.h"

static char out[1 << 16]; /* stdout of the last run */
static char err[4096];    /* stderr of the last run */
static char err_path[4200];

/* Append arg to cmd, single-quoted for /bin/sh. */
static void
add_arg(char *cmd, size_t cap, const char *arg)
{
	size_t n = strlen(cmd);

	CHECK(n + 4 * strlen(arg) + 4 < cap);
	cmd[n++] = ' ';
	cmd[n++] = '\'';
	for (const char *p = arg; *p != '\0'; p++) {
		if (*p == '\'') {
			memcpy(cmd + n, "'\\''", 4);
			n += 4;
		} else {
			cmd[n++] = *p;
		}
	}
	cmd[n++] = '\'';
	cmd[n]   = '\0';
}

/*
 * Run `[env] sluice ARGS... [< stdin_file]`, NULL-terminated args; fill
 * out and err; return the exit status.
 */
static int
run(const char *env, const char *stdin_file, ...)
{
	char        cmd[1 << 15];
	va_list     ap;
	const char *a;
	FILE       *p, *f;
	size_t      n;
	int         st;

	snprintf(cmd, sizeof(cmd), "%s %s/sluice", env != NULL ? env : "",
	    SL_BUILD_DIR);
	va_start(ap, stdin_file);
	while ((a = va_arg(ap, const char *)) != NULL)
		add_arg(cmd, sizeof(cmd), a);
	va_end(ap);
	n = strlen(cmd);
	snprintf(cmd + n, sizeof(cmd) - n, " 2>'%s' <%s", err_path,
	    stdin_file != NULL ? stdin_file : "/dev/null");
	p = popen(cmd, "r");
	CHECK(p != NULL);
	n      = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	st     = pclose(p);
	f      = fopen(err_path, "r");
	CHECK(f != NULL);
	n      = fread(err, 1, sizeof(err) - 1, f);
	err[n] = '\0';
	fclose(f);
	CHECK(WIFEXITED(st));
	return WEXITSTATUS(st);
}

#define SL(...) run(NULL, NULL, "--url", fx_url, __VA_ARGS__, NULL)

/* Run sluice with a terminal (a pty) as stdout and stderr, NULL-ended
 * args; what it wrote there into out; its exit status. */
static int
run_tty(const char *first, ...)
{
	const char *argv[32] = { "sluice" };
	int         argc     = 1;
	va_list     ap;
	va_start(ap, first);
	for (const char *a = first; a != NULL && argc < 31;
	     a = va_arg(ap, const char *))
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	int   master;
	pid_t pid = forkpty(&master, NULL, NULL, NULL);
	CHECK(pid >= 0);
	if (pid == 0) {
		execv(SL_BUILD_DIR "/sluice", (char *const *) argv);
		_exit(127);
	}
	size_t n = 0;
	for (;;) {
		ssize_t r = read(master, out + n, sizeof(out) - 1 - n);
		if (r <= 0) /* EIO once the child closed the pty */
			break;
		n += (size_t) r;
	}
	out[n] = '\0';
	close(master);
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static json_t *
out_json(void)
{
	json_error_t je;
	json_t      *j = json_loads(out, 0, &je);
	if (j == NULL) {
		fprintf(stderr, "not JSON (%s): %s\n", je.text, out);
		exit(1);
	}
	return j;
}

static int
count_lines(const char *s)
{
	int n = 0;
	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

static json_int_t
geti(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

int
main(void)
{
	char        env[4400], path[4200];
	json_t     *j, *e;
	json_int_t  head;
	const char *dir;

	/* max_read_events 2 makes read and get-all page */
	fx_start("limits:\n  max_read_events: 2\n");
	dir = tu_tmpdir();
	snprintf(err_path, sizeof(err_path), "%s/stderr.txt", dir);

	/* --- commit: argument, stdin, batch --- */
	CHECK_EQ(SL("commit", "--tenant", FX_TENANT, "--stream", "acc-1",
	             "--expect", "none", "--type", "DebitAccountOpened",
	             "{\"account_id\":\"acc-1\",\"name\":\"Everyday\"}"),
	    0);
	j = out_json();
	CHECK_EQ(geti(j, "first_position"), 0);
	CHECK_EQ(geti(j, "last_position"), 0);
	CHECK_EQ(geti(j, "first_revision"), 0);
	CHECK_EQ(geti(j, "count"), 1);
	json_decref(j);

	snprintf(path, sizeof(path), "%s/content.json", dir);
	tu_write_file(path, "{\"amount\": 1200}\n");
	CHECK_EQ(run(NULL, path, "--url", fx_url, "commit", "--tenant",
	             FX_TENANT, "--stream", "acc-1", "--expect", "0", "--type",
	             "DebitPerformed", "--public", "--metadata",
	             "{\"source\":\"test\"}", "--correlation-id", "c-42", "-",
	             NULL),
	    0);
	j = out_json();
	CHECK_EQ(geti(j, "first_position"), 1);
	CHECK_EQ(geti(j, "first_revision"), 1);
	json_decref(j);

	snprintf(path, sizeof(path), "%s/batch.json", dir);
	tu_write_file(path,
	    "[{\"type\":\"WithdrawalPerformed\",\"content\":"
	    "{\"account_id\":\"acc-1\",\"amount\":250}},"
	    " {\"type\":\"CustomerRegistered\",\"public\":true,\"content\":"
	    "{\"customer_id\":\"c-1\",\"name\":\"Ann Smith\","
	    "\"account\":{\"id\":\"acc-1\"}},\"metadata\":{\"m\":1}}]");
	CHECK_EQ(SL("commit", "--tenant", FX_TENANT, "--stream", "acc-1",
	             "--expect", "1", "--batch", path),
	    0);
	j = out_json();
	CHECK_EQ(geti(j, "first_position"), 2);
	CHECK_EQ(geti(j, "last_position"), 3);
	CHECK_EQ(geti(j, "count"), 2);
	json_decref(j);

	/* SLUICE_TENANT stands in for --tenant; SLUICE_URL for --url */
	snprintf(env, sizeof(env), "SLUICE_URL='%s' SLUICE_TENANT=%s", fx_url,
	    FX_TENANT);
	CHECK_EQ(run(env, NULL, "commit", "--stream", "acc-2", "--type",
	             "DebitAccountOpened",
	             "{\"account_id\":\"acc-2\",\"name\":\"Savings\"}", NULL),
	    0);
	/* --config finds endpoints.api */
	CHECK_EQ(
	    run(NULL, NULL, "--config", fx_config_path, "commit", "--tenant",
	        FX_TENANT, "--stream", "acc-3", "--type", "DebitAccountOpened",
	        "{\"account_id\":\"acc-3\",\"name\":\"Holiday\"}", NULL),
	    0);
	head = 6;

	/* --- errors: 2 for an error reply, nothing written --- */
	CHECK_EQ(SL("commit", "--tenant", FX_TENANT, "--stream", "acc-1",
	             "--expect", "none", "--type", "DebitAccountOpened", "{}"),
	    2);
	CHECK(strncmp(err, "sluice: EREVISION: ", 19) == 0);
	CHECK(strstr(err, "3") != NULL); /* the stream's last revision */
	CHECK_EQ(SL("commit", "--tenant", "nobody", "--stream", "s", "--type",
	             "T", "{}"),
	    2);
	CHECK(strncmp(err, "sluice: ENOTFOUND: ", 19) == 0);
	CHECK_EQ(
	    SL("get-one", "--tenant", FX_TENANT, "--projection", "nope", "k"),
	    2);
	CHECK(strncmp(err, "sluice: ENOTFOUND: ", 19) == 0);
	/* 1 for usage errors, checked before anything is sent */
	CHECK_EQ(SL("frobnicate"), 1);
	CHECK(strstr(err, "unknown command") != NULL);
	/* an option of another command is an error, naming both */
	CHECK_EQ(SL("get-one", "--tenant", FX_TENANT, "--projection",
	             FX_PROJECTION, "--stream", "acc-1", "acc-1"),
	    1);
	CHECK(strstr(err, "option '--stream' does not go with get-one")
	    != NULL);
	CHECK_EQ(SL("status", "--follow"), 1);
	CHECK(strstr(err, "'--follow' does not go with status") != NULL);
	/* help: a command's own options only; the whole list; --version */
	CHECK_EQ(run(NULL, NULL, "help", "get-one", NULL), 0);
	CHECK(strstr(out, "sluice get-one --tenant T --projection") != NULL);
	CHECK(strstr(out, "commit") == NULL && strstr(out, "--batch") == NULL);
	CHECK_EQ(run(NULL, NULL, "delete-stream", "--help", NULL), 0);
	CHECK(strstr(out, "--truncate-before R") != NULL);
	CHECK(strstr(out, "get-one") == NULL);
	CHECK_EQ(run(NULL, NULL, "--help", NULL), 0);
	CHECK(strstr(out, "  get-one") != NULL && strstr(out, "  commit"));
	CHECK_EQ(run(NULL, NULL, "help", "nope", NULL), 1);
	CHECK_EQ(run(NULL, NULL, "--version", NULL), 0);
	CHECK(strncmp(out, "sluice ", 7) == 0);
	CHECK_EQ(SL("commit", "--tenant", FX_TENANT, "--stream", "s", "--type",
	             "T", "[1]"),
	    1);
	CHECK(strncmp(err, "sluice: EINVAL: ", 16) == 0);
	CHECK_EQ(SL("commit", "--tenant", FX_TENANT, "--stream", "s", "--type",
	             "T", "--expect", "soon", "{}"),
	    1);
	/* a key twice in JSON input: refused here, as the daemon refuses
	 * it in msgpack (jansson would keep the last) */
	CHECK_EQ(
	    SL("commit", "--tenant", FX_TENANT, "--stream", "acc-1", "--type",
	        "DebitPerformed", "{\"amount\":1,\"amount\":1000000}"),
	    1);
	CHECK(strncmp(err, "sluice: EINVAL: ", 16) == 0);
	CHECK(strstr(err, "duplicate") != NULL && strstr(err, "amount"));
	CHECK_EQ(
	    SL("commit", "--tenant", FX_TENANT, "--stream", "acc-1", "--type",
	        "DebitPerformed", "--metadata", "{\"m\":1,\"m\":2}", "{}"),
	    1);
	CHECK(strstr(err, "duplicate") != NULL);
	snprintf(path, sizeof(path), "%s/dup-batch.json", dir);
	tu_write_file(path,
	    "[{\"type\":\"DebitPerformed\",\"content\":{\"amount\":5}},"
	    " {\"type\":\"DebitPerformed\",\"type\":\"X\",\"content\":{}}]");
	CHECK_EQ(SL("commit", "--tenant", FX_TENANT, "--stream", "acc-1",
	             "--batch", path),
	    1);
	CHECK(strstr(err, "duplicate") != NULL && strstr(err, "type"));
	CHECK_EQ(SL("get-one", "--tenant", FX_TENANT), 1);
	CHECK_EQ(SL("read", "--bogus"), 1);
	CHECK_EQ(
	    run("SLUICE_URL=", NULL, "status", NULL), 1); /* no endpoint */
	/* 3 when the daemon cannot be reached */
	snprintf(path, sizeof(path), "ipc://%s/nobody-here.ipc", dir);
	CHECK_EQ(
	    run(NULL, NULL, "--url", path, "--timeout", "500", "status", NULL),
	    3);
	CHECK(strncmp(err, "sluice: ENET: ", 14) == 0);

	/* --- read: the whole log (paged by 2), a stream, --max --- */
	CHECK_EQ(SL("read"), 0);
	CHECK_EQ(count_lines(out), head);
	{
		json_error_t je;
		char        *line = out, *nl;
		int          i    = 0;
		for (; (nl = strchr(line, '\n')) != NULL; line = nl + 1, i++) {
			*nl = '\0';
			e   = json_loads(line, 0, &je);
			CHECK(e != NULL);
			CHECK_EQ(geti(e, "position"), i);
			CHECK(json_is_string(json_object_get(e, "id")));
			CHECK(json_is_object(json_object_get(e, "content")));
			CHECK(json_is_object(json_object_get(e, "metadata")));
			/* RFC 3339 UTC beside the nanoseconds, the same time */
			{
				const char *utc = json_string_value(
				    json_object_get(e, "occurred_utc"));
				json_int_t ns = geti(e, "occurred");
				struct tm  tm;
				time_t     sec = (time_t) (ns / 1000000000);
				char       want[48];
				CHECK(utc != NULL);
				gmtime_r(&sec, &tm);
				strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%S",
				    &tm);
				CHECK(strncmp(utc, want, strlen(want)) == 0);
				CHECK_EQ(strlen(utc), 30);
				CHECK_EQ(atoll(utc + 20), ns % 1000000000);
				CHECK(utc[29] == 'Z');
			}
			if (i == 1) {
				CHECK(json_is_true(
				    json_object_get(e, "public")));
				CHECK_STREQ(json_string_value(json_object_get(
				                e, "correlation_id")),
				    "c-42");
				CHECK_STREQ(json_string_value(json_object_get(
				                json_object_get(e, "metadata"),
				                "source")),
				    "test");
				CHECK_EQ(geti(json_object_get(e, "content"),
				             "amount"),
				    1200);
			}
			json_decref(e);
		}
	}
	CHECK_EQ(SL("read", "--from", "4"), 0);
	CHECK_EQ(count_lines(out), 2);
	CHECK_EQ(SL("read", "--max", "3"), 0);
	CHECK_EQ(count_lines(out), 3);
	CHECK_EQ(SL("read", "--tenant", FX_TENANT, "--stream", "acc-1"), 0);
	CHECK_EQ(count_lines(out), 4);
	CHECK_EQ(SL("read", "--tenant", FX_TENANT, "--stream", "acc-1",
	             "--from-revision", "3"),
	    0);
	CHECK_EQ(count_lines(out), 1);
	CHECK(strstr(out, "\"revision\":3") != NULL
	    || strstr(out, "\"revision\": 3") != NULL);

	/* --- read models, once the processor caught up --- */
	for (int i = 0;; i++) {
		CHECK_EQ(SL("status"), 0);
		j = out_json();
		e = json_array_get(json_object_get(j, "processors"), 0);
		if (e != NULL && geti(e, "position") == geti(j, "head")) {
			CHECK_EQ(geti(j, "head"), head);
			json_decref(j);
			break;
		}
		json_decref(j);
		CHECK(i < 500);
		nanosleep(&(struct timespec) { 0, 20 * 1000 * 1000 }, NULL);
	}
	/* get-one: {key, found, state} */
	CHECK_EQ(SL("get-one", "--tenant", FX_TENANT, "--projection",
	             FX_PROJECTION, "acc-1"),
	    0);
	j = out_json();
	CHECK_STREQ(json_string_value(json_object_get(j, "key")), "acc-1");
	CHECK(json_is_true(json_object_get(j, "found")));
	e = json_object_get(j, "state");
	CHECK_EQ(geti(e, "balance"), 950);
	CHECK_STREQ(
	    json_string_value(json_object_get(e, "customer")), "Ann Smith");
	json_decref(j);
	CHECK_EQ(SL("get-one", "--tenant", FX_TENANT, "--projection",
	             FX_PROJECTION, "acc-999"),
	    0);
	j = out_json();
	CHECK_STREQ(json_string_value(json_object_get(j, "key")), "acc-999");
	CHECK(json_is_false(json_object_get(j, "found")));
	e = json_object_get(j, "state");
	CHECK_EQ(geti(e, "balance"), 0); /* the initial state */
	CHECK_STREQ(json_string_value(json_object_get(e, "account_id")), "");
	json_decref(j);

	CHECK_EQ(SL("get-all", "--tenant", FX_TENANT, "--projection",
	             FX_PROJECTION),
	    0);
	j = out_json();
	CHECK(json_is_array(j));
	CHECK_EQ(json_array_size(j), 3);
	CHECK_STREQ(
	    json_string_value(json_object_get(json_array_get(j, 0), "key")),
	    "acc-1");
	CHECK_STREQ(
	    json_string_value(json_object_get(json_array_get(j, 2), "key")),
	    "acc-3");
	CHECK_STREQ(
	    json_string_value(json_object_get(
	        json_object_get(json_array_get(j, 1), "state"), "name")),
	    "Savings");
	json_decref(j);

	CHECK_EQ(SL("status"), 0);
	j = out_json();
	CHECK_EQ(geti(j, "head"), head);
	CHECK(json_is_array(json_object_get(j, "plugins")));
	CHECK(strstr(out, "account_details") != NULL);
	CHECK(json_object_get(j, "v") == NULL);
	json_decref(j);

	/* reset --wait: the command's line, then the wait's once the
	 * rebuild reached the head; no progress line off a terminal */
	CHECK_EQ(SL("reset", FX_PROJECTION, "--tenant", FX_TENANT, "--wait"),
	    0);
	CHECK_EQ(count_lines(out), 2);
	CHECK(err[0] == '\0');
	{
		char *second = strchr(out, '\n') + 1;
		json_t *w    = json_loads(second, 0, NULL);
		CHECK(w != NULL);
		CHECK_STREQ(json_string_value(json_object_get(w, "waited")),
		    FX_PROJECTION);
		CHECK_EQ(geti(w, "head"), head);
		CHECK_EQ(geti(w, "position"), head);
		CHECK_EQ(geti(w, "processors"), 1);
		json_decref(w);
	}
	CHECK_EQ(SL("get-one", "--tenant", FX_TENANT, "--projection",
	             FX_PROJECTION, "acc-1"),
	    0);
	CHECK(strstr(out, "\"found\": true") != NULL);
	/* on a terminal, a progress line ends "caught up" */
	CHECK_EQ(run_tty("--url", fx_url, "reset", FX_PROJECTION, "--tenant",
	             FX_TENANT, "--wait", NULL),
	    0);
	CHECK(strstr(out, FX_PROJECTION ": caught up at ") != NULL);
	CHECK(strstr(out, "\"waited\"") != NULL);
	/* a one-time query on a terminal: a progress line while it runs
	 * (each event ~60 ms of the script, so it runs for a while) */
	snprintf(path, sizeof(path), "%s/slow_count.js", dir);
	tu_write_file(path,
	    "fromAll().when({\n"
	    "  $init: function () { return { n: 0 }; },\n"
	    "  $any: function (s, e) {\n"
	    "    var t = Date.now(); while (Date.now() - t < 60) {}\n"
	    "    s.n += 1;\n"
	    "  }\n"
	    "});\n");
	CHECK_EQ(run_tty("--url", fx_url, "query", "--js", path, "--tenant",
	             FX_TENANT, NULL),
	    0);
	CHECK(strstr(out, "query slow_count") != NULL);
	CHECK(strstr(out, "events/s, ETA") != NULL);
	CHECK(strstr(out, "\"states\"") != NULL);
	CHECK_EQ(SL("pause", FX_PROJECTION, "--wait"), 1);
	CHECK(strstr(err, "'--wait' does not go with pause") != NULL);

	/* the log is what the successful commits wrote, nothing more */
	CHECK_EQ(SL("read"), 0);
	CHECK_EQ(count_lines(out), head);

	/* commit --batch as JSON Lines: a bad line is named, nothing is
	 * written; good lines (a blank one skipped) commit together */
	snprintf(path, sizeof(path), "%s/batch.jsonl", dir);
	tu_write_file(path,
	    "{\"type\":\"DebitPerformed\",\"content\":{\"amount\":5}}\n"
	    "{\"type\":\"DebitPerformed\",\"content\":{\"amount\":\n");
	CHECK_EQ(SL("commit", "--tenant", FX_TENANT, "--stream", "jl",
	             "--batch", path),
	    1);
	CHECK(strstr(err, "batch: line 2,") != NULL);
	tu_write_file(path,
	    "{\"type\":\"DebitPerformed\",\"content\":{\"amount\":5}}\n"
	    "\n"
	    "{\"type\":\"DebitPerformed\",\"content\":{\"amount\":6},"
	    "\"public\":true}\n");
	CHECK_EQ(SL("commit", "--tenant", FX_TENANT, "--stream", "jl",
	             "--expect", "none", "--batch", path),
	    0);
	j = out_json();
	CHECK_EQ(geti(j, "first_position"), head);
	CHECK_EQ(geti(j, "count"), 2);
	json_decref(j);
	CHECK_EQ(SL("read", "--tenant", FX_TENANT, "--stream", "jl"), 0);
	CHECK_EQ(count_lines(out), 2);
	CHECK(strstr(out, "\"amount\":6") != NULL);

	fx_stop();
	return 0;
}
