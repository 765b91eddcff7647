/*
 * Subscriptions across daemon crashes: a committer process commits without
 * pause while sluiced is SIGKILLed and restarted several times; subscriber
 * processes (the library following the log, the library following one
 * stream, and the `sluice subscribe` CLI) must each end up with exactly
 * the events of the log, in order, none lost, none twice.
 */
#include <inttypes.h>

#include <jansson.h>

#include <sluice/subscribe.h>

#include "feed_testutil.h"

#define N_KILLS     3
#define RUN_MS      400 /* commits between kills */
#define DONE_MAX_MS 30000
#define STREAM      "k-0"
#define MAX_EVENTS  400000

typedef struct line {
	uint64_t key; /* position, or revision for the stream subscriber */
	char     id[40];
} line;

static int go_pipe[2];

/* ---- children (forked before this process touches NNG) ---- */

static void
wait_go(void)
{
	char go;
	close(go_pipe[1]);
	if (read(go_pipe[0], &go, 1) < 0) /* EOF is the go */
		_exit(2);
	close(go_pipe[0]);
}

/* Commit without pause, batches of 1..20 events, across the kills. */
static int
committer_main(void *arg)
{
	static sl_new_event evs[20];
	static char         texts[20][64];
	sl_client          *c   = NULL;
	unsigned            seq = 0;

	(void) arg;
	wait_go();
	for (int i = 0; i < 20; i++) {
		evs[i].type         = "Tick";
		evs[i].content_json = texts[i];
	}
	for (;;) {
		if (c == NULL
		    && sl_client_open(ft_api_url, 2000, &c) != SL_OK) {
			dt_sleep_ms(20);
			continue;
		}
		size_t n = 1 + seq % 20;
		for (size_t i = 0; i < n; i++)
			snprintf(
			    texts[i], sizeof(texts[i]), "{\"seq\":%u}", seq);
		if (sl_client_commit(c, FT_TENANT, seq % 3 ? "k-1" : STREAM,
		        SL_EXPECT_ANY, evs, n, NULL)
		    != SL_OK)
			dt_sleep_ms(20); /* down: do not spin */
		seq++;
	}
	return 0;
}

typedef struct subarg {
	const char        *tenant, *stream;
	char               out[4300];
	FILE              *f;
	sl_subscribe_stats st;
} subarg;

static int
write_line(void *arg, const sl_read_event *ev)
{
	subarg *a = arg;
	fprintf(a->f, "%" PRIu64 " %s\n",
	    a->stream != NULL ? ev->revision : ev->position, ev->id);
	fflush(a->f);
	/* Now and then, how the events came (the test prints the last). */
	if (a->st.delivered % 256 == 0) {
		char  path[4400];
		FILE *f;
		snprintf(path, sizeof(path), "%s.stats", a->out);
		if ((f = fopen(path, "w")) != NULL) {
			fprintf(f,
			    "%" PRIu64 " live, %" PRIu64 " read, %" PRIu64
			    " gap fills, %" PRIu64 " retried reads",
			    a->st.from_live, a->st.from_reads, a->st.gap_fills,
			    a->st.retries);
			fclose(f);
		}
	}
	return 0;
}

/* Follow from 0 forever (retrying while the daemon is down), one line
 * per event; the test kills it when it has seen enough. */
static int
subscriber_main(void *arg)
{
	subarg           *a = arg;
	sl_subscribe_opts o;
	sl_client        *c;
	char              trace[4400];
	int               rc;

	wait_go();
	a->f = fopen(a->out, "w");
	if (a->f == NULL)
		return 2;
	/* The subscription's trace, shown if it stalls (show_trace). */
	snprintf(trace, sizeof(trace), "%s.trace", a->out);
	setenv("SLUICE_SUB_DEBUG", trace, 1);
	while (sl_client_open(ft_api_url, 2000, &c) != SL_OK)
		dt_sleep_ms(20);
	memset(&o, 0, sizeof(o));
	o.tenant   = a->tenant;
	o.stream   = a->stream;
	o.pub_url  = ft_pub_url;
	o.recv_buf = 16;
	o.stats    = &a->st;
	rc         = sl_client_subscribe(c, &o, write_line, a);
	fprintf(stderr, "subscriber returned %s: %s\n", sl_errname(rc),
	    sl_client_last_error(c));
	return 3;
}

/* `sluice subscribe --from 0` with its output in a file (it finds the
 * feed through the daemon's status). */
static int
cli_main(void *arg)
{
	const char *out = arg;
	char        trace[4400];
	int         fd;

	wait_go();
	snprintf(trace, sizeof(trace), "%s.trace", out);
	setenv("SLUICE_SUB_DEBUG", trace, 1);
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return 2;
	dup2(fd, STDOUT_FILENO);
	execl(ft_sluice, ft_sluice, "--url", ft_api_url, "--timeout", "2000",
	    "subscribe", "--from", "0", (char *) NULL);
	return 127;
}

/* ---- checks ---- */

static line *
load_lines(const char *path, size_t *n)
{
	FILE *f = fopen(path, "r");
	line *v = calloc(MAX_EVENTS, sizeof(*v));
	char  buf[4096];

	CHECK(v != NULL);
	*n = 0;
	if (f == NULL)
		return v;
	while (fgets(buf, sizeof(buf), f) != NULL && *n < MAX_EVENTS) {
		unsigned long long k;
		if (buf[0] == '{') { /* the CLI's JSON line */
			json_t *j   = json_loads(buf, 0, NULL);
			json_t *pos = json_object_get(j, "position");
			json_t *id  = json_object_get(j, "id");
			bool ok = json_is_integer(pos) && json_is_string(id);
			if (ok) {
				v[*n].key = (uint64_t) json_integer_value(pos);
				snprintf(v[*n].id, sizeof(v[*n].id), "%s",
				    json_string_value(id));
				(*n)++;
			}
			json_decref(j);
			if (!ok)
				break; /* a line being written */
			continue;
		}
		if (sscanf(buf, "%llu %39s", &k, v[*n].id) != 2)
			break; /* a line being written */
		v[*n].key = k;
		(*n)++;
	}
	fclose(f);
	return v;
}

/* The log (or one stream) as read back: positions/revisions and ids. */
static line *
read_back(sl_client *c, const char *stream, size_t *n)
{
	line    *v    = calloc(MAX_EVENTS, sizeof(*v));
	uint64_t from = 0;

	CHECK(v != NULL);
	*n = 0;
	for (;;) {
		sl_read_result r;
		int            rc = stream != NULL
		               ? sl_client_read_stream(c, FT_TENANT, stream, from, 0, &r)
		               : sl_client_read(c, from, 0, &r);
		CHECK_EQ(rc, SL_OK);
		for (size_t i = 0; i < r.n_events; i++) {
			CHECK(*n < MAX_EVENTS);
			v[*n].key = stream != NULL ? r.events[i].revision
			                           : r.events[i].position;
			snprintf(
			    v[*n].id, sizeof(v[*n].id), "%s", r.events[i].id);
			(*n)++;
		}
		bool done
		    = r.n_events == 0 || (stream == NULL && r.next >= r.head);
		from = r.next;
		sl_read_result_free(&r);
		if (done)
			return v;
	}
}

/* The end of a subscriber's trace (SLUICE_SUB_DEBUG), if it wrote one. */
static void
show_trace(const char *out)
{
	char   path[4400];
	char  *text;
	size_t len, at, lines = 0;

	snprintf(path, sizeof(path), "%s.trace", out);
	if (access(path, R_OK) != 0)
		return;
	text = dt_slurp(path, &len);
	for (at = len; at > 0; at--)
		if (text[at - 1] == '\n' && ++lines > 120)
			break;
	fprintf(
	    stderr, "---- end of %s ----\n%s---- end ----\n", path, text + at);
	free(text);
}

/* Wait until the subscriber's file has `want` lines, give it a moment to
 * show any extra (doubled) event, stop it and compare with the log. */
static void
check_subscriber(const char *name, pid_t pid, const char *path,
    const line *want, size_t n_want)
{
	int64_t end = dt_now_ms() + DONE_MAX_MS;
	size_t  n;
	line   *got;

	for (;;) {
		got = load_lines(path, &n);
		if (n >= n_want)
			break;
		free(got);
		int st;
		if (dt_waitpid(pid, &st, WNOHANG) == pid) {
			show_trace(path);
			FT_FAIL("%s exited early (status 0x%x) after %zu of "
			        "%zu events",
			    name, st, n, n_want);
		}
		if (dt_now_ms() > end) {
			show_trace(path);
			char  stats[256] = "", spath[4400];
			FILE *sf;
			snprintf(spath, sizeof(spath), "%s.stats", path);
			if ((sf = fopen(spath, "r")) != NULL) {
				if (fgets(stats, sizeof(stats), sf) == NULL)
					stats[0] = '\0';
				fclose(sf);
			}
			FT_FAIL("%s has %zu of %zu events after %d ms (%s)",
			    name, n, n_want, DONE_MAX_MS, stats);
		}
		dt_sleep_ms(50);
	}
	free(got);
	dt_sleep_ms(500);
	kill(pid, SIGKILL);
	dt_waitpid(pid, NULL, 0);
	ft_forget(pid);
	got = load_lines(path, &n);
	if (n != n_want)
		FT_FAIL("%s got %zu events, the log has %zu", name, n, n_want);
	for (size_t i = 0; i < n; i++)
		if (got[i].key != want[i].key
		    || strcmp(got[i].id, want[i].id) != 0)
			FT_FAIL("%s: event %zu is %" PRIu64 " %s, the log has "
			        "%" PRIu64 " %s",
			    name, i, got[i].key, got[i].id, want[i].key,
			    want[i].id);
	char stats[256] = "", spath[4400];
	snprintf(spath, sizeof(spath), "%s.stats", path);
	FILE *sf = fopen(spath, "r");
	if (sf != NULL) {
		if (fgets(stats, sizeof(stats), sf) == NULL)
			stats[0] = '\0';
		fclose(sf);
	}
	fprintf(stderr, "%s: %zu events, exactly the log's, in order (%s)\n",
	    name, n, stats);
	free(got);
}

int
main(void)
{
	subarg     log_sub = { .tenant = NULL };
	subarg     str_sub = { .tenant = FT_TENANT, .stream = STREAM };
	pid_t      committer, p_log, p_str, p_cli;
	char       cli_out[4300];
	sl_client *c;
	size_t     n_log, n_str;

	ft_setup("event_store:\n"
	         "  map_size: 256MiB\n"
	         "  sync: false\n"
	         "limits:\n"
	         "  max_read_events: 100\n");
	snprintf(log_sub.out, sizeof(log_sub.out), "%s/sub-log", tu_tmpdir());
	snprintf(
	    str_sub.out, sizeof(str_sub.out), "%s/sub-stream", tu_tmpdir());
	snprintf(cli_out, sizeof(cli_out), "%s/sub-cli", tu_tmpdir());
	CHECK(pipe2(go_pipe, O_CLOEXEC) == 0); /* not into sluiced */
	committer = ft_fork(committer_main, NULL);
	p_log     = ft_fork(subscriber_main, &log_sub);
	p_str     = ft_fork(subscriber_main, &str_sub);
	p_cli     = ft_fork(cli_main, cli_out);
	close(go_pipe[0]);

	ft_daemon_start();
	ft_daemon_wait_ready();
	close(go_pipe[1]); /* go: EOF releases every child */
	/* Every subscriber under way before the first kill (`sluice` needs
	 * the daemon when it starts). */
	const char *outs[] = { log_sub.out, str_sub.out, cli_out };
	for (size_t i = 0; i < 3; i++) {
		int64_t end = dt_now_ms() + DONE_MAX_MS;
		size_t  n   = 0;
		while (n == 0) {
			free(load_lines(outs[i], &n));
			if (dt_now_ms() > end)
				FT_FAIL("no event in %s after %d ms", outs[i],
				    DONE_MAX_MS);
			dt_sleep_ms(20);
		}
	}

	for (int k = 0; k < N_KILLS; k++) {
		dt_sleep_ms(RUN_MS);
		ft_daemon_kill();
		fprintf(stderr, "killed sluiced (%d)\n", k + 1);
		dt_sleep_ms(100 + 100 * k);
		ft_daemon_start();
		ft_daemon_wait_ready();
	}
	dt_sleep_ms(RUN_MS);
	kill(committer, SIGKILL);
	dt_waitpid(committer, NULL, 0);
	ft_forget(committer);

	CHECK_EQ(sl_client_open(ft_api_url, 5000, &c), SL_OK);
	line *all = read_back(c, NULL, &n_log);
	line *one = read_back(c, STREAM, &n_str);
	fprintf(stderr, "the log holds %zu events, stream %s %zu\n", n_log,
	    STREAM, n_str);
	CHECK(n_log > 0 && n_str > 0);
	for (size_t i = 0; i < n_log; i++)
		CHECK_EQ(all[i].key, i);
	check_subscriber("log subscriber", p_log, log_sub.out, all, n_log);
	check_subscriber("stream subscriber", p_str, str_sub.out, one, n_str);
	check_subscriber("sluice subscribe", p_cli, cli_out, all, n_log);
	free(all);
	free(one);
	sl_client_close(c);
	ft_daemon_stop();
	return 0;
}
