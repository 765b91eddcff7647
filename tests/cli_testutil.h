/*
 * The `sluice` CLI run as a process by the query tests (query_cli_test,
 * query_js_test): its output, a run to its end or in the background,
 * its --follow lines, commits and the transient runs status shows.
 * Include after emit_testutil.h, with TENANT and WAIT_MS defined; a test
 * that counts the transient runs of one projection only defines
 * CT_TRANSIENT_NAME as its name.
 */
#ifndef SL_CLI_TESTUTIL_H
#define SL_CLI_TESTUTIL_H

static char out[1 << 18]; /* stdout of the last run */
static char err[8192];    /* stderr of the last run */
static char out_path[4200], err_path[4200];

/* Start the CLI with stdout to path, stderr to path.err: its pid. */
__attribute__((unused)) static pid_t
spawn_bg(const char *path, ...)
{
	va_list ap;
	pid_t   pid;
	char    errp[4400];

	snprintf(errp, sizeof(errp), "%s.err", path);
	va_start(ap, path);
	pid = et_spawn_cli(path, errp, ap);
	va_end(ap);
	return pid;
}

/* Wait for a CLI run; out and err filled from path (and path.err). */
__attribute__((unused)) static int
finish(pid_t pid, const char *path, const char *errp)
{
	int st;

	if (!dt_wait_exit(pid, WAIT_MS, &st)) {
		kill(pid, SIGKILL);
		dt_waitpid(pid, NULL, 0);
		FT_FAIL("sluice did not finish within %d ms", WAIT_MS);
	}
	et_load_file(path, out, sizeof(out));
	et_load_file(errp, err, sizeof(err));
	CHECK(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* Run the CLI to its end; out and err filled; its exit status. */
__attribute__((unused)) static int
run(const char *first, ...)
{
	va_list ap;
	pid_t   pid;

	(void) first;
	va_start(ap, first);
	pid = et_spawn_cli(out_path, err_path, ap);
	va_end(ap);
	return finish(pid, out_path, err_path);
}

#define SL(...) run(NULL, __VA_ARGS__, (const char *) NULL)

__attribute__((unused)) static json_t *
out_json(void)
{
	json_error_t je;
	json_t      *j = json_loads(out, 0, &je);
	if (j == NULL)
		FT_FAIL("not JSON (%s): %s (stderr: %s)", je.text, out, err);
	return j;
}

__attribute__((unused)) static void
commit(const char *stream, const char *type, const char *content)
{
	sl_new_event ev = { .type = type, .content_json = content };
	int          rc = sl_client_commit(
	             et_cl, TENANT, stream, SL_EXPECT_ANY, &ev, 1, NULL);
	if (rc != SL_OK)
		FT_FAIL("commit: %s: %s", sl_errname(rc),
		    sl_client_last_error(et_cl));
}

/* Lines in the follow output so far; the last one parsed into *last. */
__attribute__((unused)) static size_t
follow_lines(const char *path, json_t **last)
{
	char   buf[1 << 16];
	size_t n = 0;
	char  *line, *save = NULL;

	et_load_file(path, buf, sizeof(buf));
	for (line = strtok_r(buf, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		json_t *j = json_loads(line, 0, NULL);
		if (j == NULL)
			FT_FAIL("a --follow line is not JSON: %s", line);
		if (last != NULL) {
			json_decref(*last);
			*last = j;
		} else {
			json_decref(j);
		}
		n++;
	}
	return n;
}

/* Transient runs in status (emitting_projections), of
 * CT_TRANSIENT_NAME only when it is defined. */
__attribute__((unused)) static int
transients(void)
{
	json_t *st = et_status(), *p;
	size_t  i;
	int     n = 0;

	json_array_foreach(json_object_get(st, "emitting_projections"), i, p)
	{
#ifdef CT_TRANSIENT_NAME
		if (strcmp(jstr(p, "name"), CT_TRANSIENT_NAME) != 0)
			continue;
#endif
		n += json_is_true(json_object_get(p, "transient"));
	}
	json_decref(st);
	return n;
}

/* Wait until n transient runs are in status. */
__attribute__((unused)) static void
wait_transients(int n, const char *why)
{
	int64_t end = dt_now_ms() + WAIT_MS;
	int     now;
	while ((now = transients()) != n) {
		if (dt_now_ms() > end)
			FT_FAIL("%d transient runs in status, not %d, %s", now,
			    n, why);
		dt_sleep_ms(20);
	}
}

#endif
