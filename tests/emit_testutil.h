/*
 * Shared by the issue 8 tests that run sluiced as a process and speak to it
 * through the client library (emitting projections, stream ownership,
 * back-pressure, the CLI, system projections): a config with a plugin
 * directory of the test's own, the daemon brought up with a client
 * (et_cl) and down, status as JSON, a projection's entry and position in
 * it, and whether the log still holds anything for a projection to handle.
 */
#ifndef SL_EMIT_TESTUTIL_H
#define SL_EMIT_TESTUTIL_H

#include <inttypes.h>
#include <stdarg.h>

#include <jansson.h>

#include "json_testutil.h"

#include "feed_testutil.h"

/* tests/plugins/e2e_emitter.c: per AccountOpened / Deposited a Ledger
 * event into ledger-<stream> and a link into ledger-all. */
#define ET_EMITTER    "e2e_emitter"
#define ET_EMITTER_ID "e2e0e2e0-0001-4000-8000-000000000001"

/* The client of the running daemon, between et_daemon_up and _down. */
__attribute__((unused)) static sl_client *et_cl;
/* <tmp>/plugins once et_plugin_dir made it. */
__attribute__((unused)) static char et_plugins[4300];

/* ---- the daemon ---- */

/* The test's own plugin directory, <tmp>/plugins (made on the first
 * call). */
__attribute__((unused)) static const char *
et_plugin_dir(void)
{
	if (et_plugins[0] == '\0') {
		snprintf(
		    et_plugins, sizeof(et_plugins), "%s/plugins", tu_tmpdir());
		CHECK(mkdir(et_plugins, 0755) == 0);
	}
	return et_plugins;
}

/* Install the test plugin name (the build's test-plugins/name/name.so)
 * into et_plugin_dir(); its path there in so. */
__attribute__((unused)) static void
et_install_plugin(const char *name, char *so, size_t cap)
{
	char src[4096];

	snprintf(
	    src, sizeof(src), "%s/%s/%s.so", SL_TEST_PLUGIN_DIR, name, name);
	CHECK(
	    snprintf(so, cap, "%s/%s.so", et_plugin_dir(), name) < (int) cap);
	dt_install(src, NULL, so);
}

/* Write ft_cfg_path (after ft_setup): data in <tmp>/data_sub, plugins
 * from plugin_dir, one tenant, then the rest of the YAML (printf
 * style: event_store, run_projections ...). */
static void et_write_config(const char *data_sub, const char *plugin_dir,
    const char *tenant, const char *rest_fmt, ...)
    __attribute__((format(printf, 4, 5), unused));

static void
et_write_config(const char *data_sub, const char *plugin_dir,
    const char *tenant, const char *rest_fmt, ...)
{
	char    text[32768], rest[16384];
	int     n;
	va_list ap;

	va_start(ap, rest_fmt);
	n = vsnprintf(rest, sizeof(rest), rest_fmt, ap);
	va_end(ap);
	CHECK(n >= 0 && (size_t) n < sizeof(rest));
	n = snprintf(text, sizeof(text),
	    "data_dir: %s/%s\n"
	    "plugin_dir: %s\n"
	    "log_level: info\n"
	    "endpoints:\n"
	    "  api: %s\n"
	    "  pub: %s\n"
	    "tenants:\n"
	    "  - id: %s\n"
	    "%s",
	    tu_tmpdir(), data_sub, plugin_dir, ft_api_url, ft_pub_url, tenant,
	    rest);
	CHECK(n >= 0 && (size_t) n < sizeof(text));
	tu_write_file(ft_cfg_path, text);
}

/* Start sluiced, wait until it answers, open et_cl (requests wait up to
 * req_ms). */
__attribute__((unused)) static void
et_daemon_up(int req_ms)
{
	ft_daemon_start();
	ft_daemon_wait_ready();
	CHECK(sl_client_open(ft_api_url, req_ms, &et_cl) == SL_OK);
}

/* Close et_cl, stop sluiced (SIGTERM; it must exit 0). */
__attribute__((unused)) static void
et_daemon_down(void)
{
	sl_client_close(et_cl);
	et_cl = NULL;
	ft_daemon_stop();
}

/* Close et_cl, SIGKILL sluiced. */
__attribute__((unused)) static void
et_daemon_kill(void)
{
	sl_client_close(et_cl);
	et_cl = NULL;
	ft_daemon_kill();
}

/* ---- status ---- */

/* The daemon's status (caller decrefs). */
__attribute__((unused)) static json_t *
et_status(void)
{
	char   *text = NULL;
	json_t *j;
	int     rc = sl_client_status(et_cl, &text);

	if (rc != SL_OK)
		FT_FAIL("status: %s: %s", sl_errname(rc),
		    sl_client_last_error(et_cl));
	if ((j = json_loads(text, 0, NULL)) == NULL)
		FT_FAIL("status is not JSON: %.300s", text);
	sl_client_free(text);
	return j;
}


/* The entry of a projection (by id or name) of tenant in status, borrowed
 * from st, or NULL. */
__attribute__((unused)) static json_t *
et_proj_entry(json_t *st, const char *tenant, const char *id, const char *name)
{
	/* emitting projections have their own list; processors theirs */
	static const char *const lists[]
	    = { "emitting_projections", "processors" };
	size_t  i;
	json_t *p;

	for (size_t l = 0; l < 2; l++) {
		json_array_foreach(json_object_get(st, lists[l]), i, p)
		{
			if ((strcmp(jstr(p, "projection"), id) == 0
			        || strcmp(jstr(p, "name"), name) == 0)
			    && strcmp(jstr(p, "tenant"), tenant) == 0)
				return p;
		}
	}
	return NULL;
}

/* A projection's position (-1 when it is not in status) and the head;
 * fails the test if it faulted. @return whether it is in status. */
__attribute__((unused)) static bool
et_proj_position(const char *tenant, const char *id, const char *name,
    long long *pos, long long *head)
{
	json_t *st = et_status(), *p = et_proj_entry(st, tenant, id, name);

	if (p != NULL && strcmp(jstr(p, "status"), "faulted") == 0)
		FT_FAIL("%s faulted: %s", name, dump(p));
	*pos  = p != NULL ? jint(p, "position") : -1;
	*head = jint(st, "head");
	json_decref(st);
	return p != NULL;
}

/* ---- caught up ---- */

/* What tests/plugins/e2e_emitter.c handles (in FT_TENANT). */
__attribute__((unused)) static bool
et_emitter_handles(const sl_read_event *e)
{
	return strcmp(e->tenant, FT_TENANT) == 0
	    && (strcmp(e->type, "AccountOpened") == 0
	        || strcmp(e->type, "Deposited") == 0);
}

/*
 * Whether the log from position from to to holds no event handled (as the
 * projection decides). Its checkpoint (status "position") is committed
 * with what it handled, and a tail of events it skips (its own emitted
 * ones, say) need not move it: caught up is "nothing left to handle", not
 * only position == head.
 */
__attribute__((unused)) static bool
et_nothing_to_handle(
    long long from, long long to, bool (*handled)(const sl_read_event *))
{
	uint64_t at = (uint64_t) from;

	while (at < (uint64_t) to) {
		sl_read_result r;
		bool           none = true;
		int            rc   = sl_client_read(et_cl, at, 0, &r);
		if (rc != SL_OK)
			FT_FAIL("read the log at %" PRIu64 ": %s: %s", at,
			    sl_errname(rc), sl_client_last_error(et_cl));
		for (size_t i = 0; i < r.n_events; i++)
			if (r.events[i].position < (uint64_t) to
			    && handled(&r.events[i]))
				none = false;
		at = r.n_events == 0 ? (uint64_t) to : r.next;
		sl_read_result_free(&r);
		if (!none)
			return false;
	}
	return true;
}

/* Wait up to ms until the projection is caught up: nothing left to handle
 * (handled NULL: at the head); fails if it faulted. */
__attribute__((unused)) static void
et_wait_caught_up(const char *tenant, const char *id, const char *name,
    bool (*handled)(const sl_read_event *), int ms)
{
	int64_t   end = dt_now_ms() + ms;
	long long pos, head;

	for (;;) {
		bool ok = et_proj_position(tenant, id, name, &pos, &head)
		    && (handled == NULL
		            ? pos == head
		            : et_nothing_to_handle(pos, head, handled));
		if (ok)
			return;
		if (dt_now_ms() > end) {
			json_t *st = et_status();
			FT_FAIL("%s not caught up within %d ms: %s", name, ms,
			    dump(st));
		}
		dt_sleep_ms(20);
	}
}

/* ---- the CLI ---- */

/* Start sluice --url <the daemon's> ARGS... (ap: NULL-terminated) as a
 * child that dies with the test, stdin from /dev/null, stdout to path,
 * stderr to errp: its pid. */
__attribute__((unused)) static pid_t
et_spawn_cli(const char *path, const char *errp, va_list ap)
{
	const char *argv[32];
	int         n      = 0;
	pid_t       parent = getpid(), pid;
	const char *a;

	argv[n++] = "sluice";
	argv[n++] = "--url";
	argv[n++] = ft_api_url;
	while ((a = va_arg(ap, const char *)) != NULL) {
		CHECK(n < 31);
		argv[n++] = a;
	}
	argv[n] = NULL;
	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		dt_child_setup(parent);
		int o = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int i = open("/dev/null", O_RDONLY);
		if (o < 0 || e < 0 || i < 0)
			_exit(126);
		dup2(i, 0);
		dup2(o, 1);
		dup2(e, 2);
		execv(ft_sluice, (char *const *) argv);
		_exit(127);
	}
	return pid;
}

/* ---- files ---- */

/* The text of a file (truncated to cap - 1), "" if it cannot be read. */
__attribute__((unused)) static void
et_load_file(const char *path, char *buf, size_t cap)
{
	FILE  *f = fopen(path, "r");
	size_t n = 0;
	if (f != NULL) {
		n = fread(buf, 1, cap - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
}

#endif
