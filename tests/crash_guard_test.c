/*
 * Crash and hang containment, with the daemon as a process under
 * `sluiced --supervise` and real plugins (tests/plugins/crash_on_boom.c):
 *   proj_segv, proj_abort: a projection that segfaults / aborts on one
 *     event of one key; filter_segv: a partitioned filter that segfaults on
 *     one event of one source stream. The daemon restarts once and stays
 *     up; status names the unit and the event with "crashed while handling
 *     event N (signal S)", not retried; every other key's read model (or
 *     partition) is exact, and the crashed key keeps its events before the
 *     crash. A fixed build of the plugin (same ids and definitions) and
 *     `retry` then make everything equal a recomputation from the log.
 *   key_segv: a projection whose key function (ABI 1.3) segfaults: as
 *     proj_segv, the failing unit the event's stream's without a key,
 *     "(no key) stream s-N", and after the fix the retry finds the keys;
 *   emitter_segv: an emitting projection that segfaults: as proj_segv,
 *     its key is marked failing at that event (not retried) and every
 *     other key goes on, status "running" with "1 partition failing";
 *     fixed build + retry.
 *   stuck: a projection handler that never returns shows "stuck" with the
 *     event; SIGTERM ends the daemon within the stop's bound (nothing of
 *     the stuck batch committed); after a start the stuck key waits
 *     (marked failing) and every other key goes on; fixed build + retry.
 * Usage: crash_guard_test proj_segv|proj_abort|filter_segv|key_segv|emitter_segv|
 *        stuck
 */
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sluice/client.h>

#include "daemon_testutil.h"
#include "json_testutil.h"

#define TENANT     "t1"
#define N_STREAMS  5
#define BAD_STREAM 2 /* the stream whose event crashes (or loops) */
#define PROJ_NAME  "crash_counts"
#define FILT_NAME  "crash_filter"
#define EMIT_NAME  "crash_emitter"
#define SIDE_NAME  "side_counts" /* crash_counts' neighbour: never fails */
#define WAIT_MS    15000
#define TIMEOUT_MS 3000
#define MAX_EVENTS 256

static char       dir[4096];
static char       cfg_path[4200], daemon_log[4200], url[4200];
static char       plugin_dir[4128], plugin[4200];
static pid_t      sup_pid = -1; /* the supervisor */
static pid_t      test_pid;
static sl_client *cl;
static bool       is_filter, is_stuck, is_emitter;
/* key_segv: the crash is in the projection's key function (ABI 1.3), so
 * the failing unit is the event's stream's, keyless */
static bool        in_key;
static const char *bad_build, *signal_name;
/* The streams' ids: "<prefix><number>", a prefix per case so that the
 * crashed unit's id the guard records is 3 to 43 bytes long across the
 * cases (its copy takes a different way below 8, 16 and above 32). */
static const char *stream_prefix = "s-";

/* Stream s's id into buf. */
static void
stream_id(char *buf, size_t size, int s)
{
	snprintf(buf, size, "%s%d", stream_prefix, s);
}

/* The number of the stream whose id is id, or -1. */
static int
stream_num(const char *id)
{
	size_t n = strlen(stream_prefix);
	int    s = -1;
	if (strncmp(id, stream_prefix, n) != 0 || sscanf(id + n, "%d", &s) != 1)
		return -1;
	return s;
}

/* What the log holds (one tenant): per event its stream, i and whether it
 * is the bad one. */
static struct {
	uint64_t pos;
	int      stream;
	int      i;
	bool     bad;
} evs[MAX_EVENTS];
static uint64_t n_evs;
static uint64_t log_end; /* after the last event committed here */
static uint64_t bad_pos = UINT64_MAX;

#define FAIL(...) DT_FAIL_LOG(daemon_log, __VA_ARGS__)

static void
cleanup(void)
{
	if (getpid() != test_pid)
		return;
	if (cl != NULL)
		sl_client_close(cl);
	/* the supervisor's child dies with it (PR_SET_PDEATHSIG) */
	dt_kill_and_reap(&sup_pid);
}

/* ---- the daemon ---- */

static pid_t
spawn_supervised(void)
{
	return dt_daemon_spawn_ex(cfg_path, daemon_log, true);
}

static void
check_alive(void)
{
	int status;
	if (sup_pid > 0 && dt_waitpid(sup_pid, &status, WNOHANG) == sup_pid) {
		sup_pid = -1;
		FAIL("the supervisor exited on its own: status 0x%x", status);
	}
}

/* The status (NULL while the daemon does not answer: connecting). */
static json_t *
status_try(void)
{
	char *text = NULL;
	if (cl == NULL && sl_client_open(url, TIMEOUT_MS, &cl) != SL_OK)
		return NULL;
	if (sl_client_status(cl, &text) != SL_OK)
		return NULL;
	json_t *j = json_loads(text, 0, NULL);
	sl_client_free(text);
	return j;
}

static void
daemon_start(void)
{
	sup_pid     = spawn_supervised();
	int64_t end = dt_now_ms() + WAIT_MS;
	for (;;) {
		check_alive();
		json_t *j = status_try();
		if (j != NULL) {
			json_decref(j);
			return;
		}
		if (dt_now_ms() > end)
			FAIL("sluiced did not answer status within %d ms",
			    WAIT_MS);
		dt_sleep_ms(20);
	}
}

/* SIGTERM to the supervisor; @return the exit status, *ms how long. */
static int
daemon_stop(int64_t *ms)
{
	int     status;
	int64_t t0 = dt_now_ms();
	sl_client_close(cl);
	cl = NULL;
	CHECK(kill(sup_pid, SIGTERM) == 0);
	if (!dt_wait_exit(sup_pid, 20000, &status))
		FAIL("sluiced did not stop within 20 s of SIGTERM");
	sup_pid = -1;
	*ms     = dt_now_ms() - t0;
	if (!WIFEXITED(status))
		FAIL("the supervisor died of signal %d", WTERMSIG(status));
	return WEXITSTATUS(status);
}

/* Lines of the daemon's log holding s. */
static int
log_count(const char *s)
{
	FILE *f = fopen(daemon_log, "r");
	char  line[4096];
	int   n = 0;
	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		n += strstr(line, s) != NULL;
	fclose(f);
	return n;
}

/* ---- status ---- */

static const char *
our_name(void)
{
	return is_filter ? FILT_NAME : is_emitter ? EMIT_NAME : PROJ_NAME;
}

/* Our processor (or emitting run) in a status (NULL: not there yet). */
static json_t *
our_proc(json_t *st)
{
	size_t  i;
	json_t *p;
	json_array_foreach(json_object_get(st,
	                       is_emitter ? "emitting_projections"
	                                  : "processors"),
	    i, p)
	{
		if (strcmp(jstr(p, "name"), our_name()) == 0)
			return p;
	}
	return NULL;
}

typedef bool (*status_pred)(json_t *st, json_t *p);

/* Wait until pred holds for our processor; @return the status (decref). */
static json_t *
wait_status(const char *what, status_pred pred)
{
	int64_t end = dt_now_ms() + WAIT_MS;
	json_t *last = NULL;
	for (;;) {
		check_alive();
		json_t *st = status_try();
		if (st != NULL) {
			json_t *p = our_proc(st);
			if (p != NULL && pred(st, p)) {
				json_decref(last);
				return st;
			}
			json_decref(last);
			last = st;
		}
		if (dt_now_ms() > end)
			FAIL("%s: not within %d ms; last status: %s", what,
			    WAIT_MS, dump(last));
		dt_sleep_ms(20);
	}
}

/* At the head, live, with n failing units. */
static int want_failing;
static bool
caught_up(json_t *st, json_t *p)
{
	if (is_emitter) /* it writes to the log too */
		return jint(p, "position") == jint(st, "head")
		    && jint(st, "head") >= (long long) log_end
		    && jint(p, "failing_count") == want_failing
		    && strcmp(jstr(p, "status"), "running") == 0;
	return jint(p, "position") == jint(st, "head")
	    && jint(st, "head") == (long long) log_end
	    && jint(p, "failing_count") == want_failing
	    && strcmp(jstr(p, "state"), "live") == 0;
}

static bool
has_failing(json_t *st, json_t *p)
{
	(void) st;
	return jint(p, "failing_count") == 1;
}

static bool
is_stuck_at(json_t *st, json_t *p)
{
	(void) st;
	return strcmp(jstr(p, "state"), "stuck") == 0;
}

/* The neighbour projection has every event (stuck: while crash_counts
 * is stuck: no write transaction or lock is held for a plugin call). */
static void
check_side(const char *when)
{
	int64_t end = dt_now_ms() + WAIT_MS;
	for (;;) {
		json_t *st = status_try();
		json_t *p  = NULL;
		size_t  i;
		json_t *q;
		json_array_foreach(json_object_get(st, "processors"), i, q)
		{
			if (strcmp(jstr(q, "name"), SIDE_NAME) == 0)
				p = q;
		}
		bool ok = p != NULL && jint(p, "position") == (long long) log_end
		    && jint(p, "failing_count") == 0;
		if (!ok && dt_now_ms() > end)
			FAIL("%s: %s not at %" PRIu64 ": %s", when, SIDE_NAME,
			    log_end, dump(st));
		json_decref(st);
		if (ok)
			break;
		dt_sleep_ms(20);
	}
	sl_read_models m;
	if (sl_client_get_all(cl, TENANT, SIDE_NAME, NULL, 0, &m) != SL_OK
	    || m.n_items != N_STREAMS)
		FAIL("%s: %s: not %d read models", when, SIDE_NAME, N_STREAMS);
	for (size_t k = 0; k < m.n_items; k++) {
		int s = stream_num(m.items[k].key);
		CHECK(s >= 0);
		long long n = 0, sum = 0;
		for (uint64_t e = 0; e < n_evs; e++)
			if (evs[e].stream == s) {
				n++;
				sum += evs[e].i;
			}
		json_t *j = json_loads(m.items[k].state_json, 0, NULL);
		if (j == NULL || jint(j, "n") != n || jint(j, "sum") != sum)
			FAIL("%s: %s %s is %s, want n %lld sum %lld", when,
			    SIDE_NAME, m.items[k].key, m.items[k].state_json,
			    n, sum);
		json_decref(j);
	}
	sl_read_models_free(&m);
}

/* The failing unit is the bad stream at the bad event, with the reason
 * (an emitting projection too: its key, while the others go on, status
 * "running"). */
static void
check_failing_unit(json_t *p, const char *reason_has)
{
	if (is_emitter
	    && (strcmp(jstr(p, "status"), "running") != 0
	        || strstr(jstr(p, "status_reason"), "1 partition failing")
	            == NULL))
		FAIL("want running with 1 partition failing: %s", dump(p));
	json_t *f = json_array_get(json_object_get(p, "failing"), 0);
	char    id[64], stream[96];
	stream_id(id, sizeof(id), BAD_STREAM);
	snprintf(stream, sizeof(stream), "%s%s",
	    in_key ? "(no key) stream " : "", id);
	if (f == NULL || strcmp(jstr(f, "partition"), stream) != 0
	    || jint(f, "position") != (long long) bad_pos
	    || !json_is_false(json_object_get(f, "retry"))
	    || strstr(jstr(f, "reason"), reason_has) == NULL)
		FAIL("failing unit: want %s at %" PRIu64 " not retried, "
		     "reason with '%s': %s",
		    stream, bad_pos, reason_has, dump(p));
}

/* ---- the log ---- */

static uint64_t stream_revs[N_STREAMS]; /* events committed per stream */

/* After the daemon is back: the positions of the n events of stream s
 * committed last (revisions from stream_revs[s]). */
static int
find_commit(int s, int n, sl_commit_result *res)
{
	char    stream[64];
	int64_t end = dt_now_ms() + WAIT_MS;
	stream_id(stream, sizeof(stream), s);
	for (;;) {
		json_t *st = status_try();
		json_decref(st);
		sl_read_result r;
		memset(&r, 0, sizeof(r));
		if (st != NULL
		    && sl_client_read_stream(cl, TENANT, stream,
		           stream_revs[s], 0, &r) == SL_OK) {
			int rc = r.n_events == (size_t) n ? SL_OK : SL_ENOTFOUND;
			if (rc == SL_OK) {
				res->first_position = r.events[0].position;
				res->count          = r.n_events;
			}
			sl_read_result_free(&r);
			return rc;
		}
		check_alive();
		if (dt_now_ms() > end)
			FAIL("the commit to %s is not readable after %d ms",
			    stream, WAIT_MS);
		dt_sleep_ms(20);
	}
}

/* One commit to stream s of n Tick events; the k-th is the bad one when
 * bad_k == k (content "boom":1 or "loop":1). */
static void
commit(int s, int n, int bad_k)
{
	sl_new_event     ev[16];
	char             content[16][96];
	char             stream[64];
	sl_commit_result res;
	CHECK(n <= 16 && n_evs + (uint64_t) n <= MAX_EVENTS);
	stream_id(stream, sizeof(stream), s);
	for (int k = 0; k < n; k++) {
		int i = (int) n_evs + k + 1;
		snprintf(content[k], sizeof(content[k]), "{\"i\":%d%s}", i,
		    k != bad_k         ? ""
		        : is_stuck     ? ",\"loop\":1"
		                       : ",\"boom\":1");
		memset(&ev[k], 0, sizeof(ev[k]));
		ev[k].type         = "Tick";
		ev[k].content_json = content[k];
		evs[n_evs + (uint64_t) k].stream = s;
		evs[n_evs + (uint64_t) k].i      = i;
		evs[n_evs + (uint64_t) k].bad    = k == bad_k;
	}
	int rc = sl_client_commit(
	    cl, TENANT, stream, SL_EXPECT_ANY, ev, (size_t) n, &res);
	if (rc == SL_ENET && bad_k >= 0 && !is_stuck) {
		/* the crash came before the reply: the commit is in the log
		 * (a durable write precedes processing); find it there */
		rc = find_commit(s, n, &res);
	}
	stream_revs[s] += (uint64_t) n;
	/* only an emitting projection writes to the log besides us */
	if (rc != SL_OK || res.count != (uint64_t) n
	    || (!is_emitter && res.first_position != log_end))
		FAIL("commit to %s: %s: %s (first %" PRIu64 ", want %" PRIu64
		     ")",
		    stream, sl_errname(rc), sl_client_last_error(cl),
		    res.first_position, log_end);
	for (int k = 0; k < n; k++) {
		evs[n_evs + (uint64_t) k].pos = res.first_position + (uint64_t) k;
		if (k == bad_k)
			bad_pos = res.first_position + (uint64_t) k;
	}
	n_evs += (uint64_t) n;
	log_end = res.first_position + (uint64_t) n;
}

/* Commits to every stream but the bad one. */
static void
commit_others(int n)
{
	for (int s = 0; s < N_STREAMS; s++)
		if (s != BAD_STREAM)
			commit(s, n, -1);
}

/* ---- what the read models / partitions must be ---- */

/* Whether our k-th event is in stream s's read model (partition): all of
 * them, or those the crash lets through (the bad stream's before the bad
 * event: every kind waits per key). */
static bool
counted(uint64_t k, int s, bool all)
{
	return evs[k].stream == s
	    && (all || s != BAD_STREAM || evs[k].pos < bad_pos);
}

/* The read models against the log: NULL, or what differs (static). */
static const char *
diff_projection(bool all)
{
	static char    why[1024];
	sl_read_models m;
	int rc = sl_client_get_all(cl, TENANT, our_name(), NULL, 0, &m);
	if (rc != SL_OK) {
		snprintf(why, sizeof(why), "get_all: %s: %s", sl_errname(rc),
		    sl_client_last_error(cl));
		return why;
	}
	why[0] = '\0';
	if (m.n_items != N_STREAMS)
		snprintf(why, sizeof(why), "%zu read models, want %d",
		    m.n_items, N_STREAMS);
	for (size_t k = 0; k < m.n_items && why[0] == '\0'; k++) {
		int s = stream_num(m.items[k].key);
		if (s < 0 || s >= N_STREAMS) {
			snprintf(why, sizeof(why), "unexpected key %s",
			    m.items[k].key);
			break;
		}
		long long n = 0, sum = 0;
		for (uint64_t e = 0; e < n_evs; e++)
			if (counted(e, s, all)) {
				n++;
				sum += evs[e].i;
			}
		json_t *st = json_loads(m.items[k].state_json, 0, NULL);
		if (st == NULL || jint(st, "n") != n || jint(st, "sum") != sum)
			snprintf(why, sizeof(why),
			    "%s is %s, the log says {\"n\":%lld,\"sum\":%lld}",
			    m.items[k].key, m.items[k].state_json, n, sum);
		json_decref(st);
	}
	sl_read_models_free(&m);
	return why[0] != '\0' ? why : NULL;
}

/* An emitting projection commits through the log's writer: what it
 * handled before its fault may show a moment later. */
static void
check_projection(const char *when, bool all)
{
	int64_t     end = dt_now_ms() + (is_emitter ? WAIT_MS : 0);
	const char *why;
	while ((why = diff_projection(all)) != NULL && dt_now_ms() < end)
		dt_sleep_ms(20);
	if (why != NULL)
		FAIL("%s: %s", when, why);
}

static void
check_filter(const char *when, bool all)
{
	for (int s = 0; s < N_STREAMS; s++) {
		char           part[64];
		sl_filter_page pg;
		stream_id(part, sizeof(part), s);
		int rc = sl_client_read_filter(
		    cl, TENANT, FILT_NAME, part, 0, 0, &pg);
		if (rc != SL_OK)
			FAIL("%s: read_filter %s: %s: %s", when, part,
			    sl_errname(rc), sl_client_last_error(cl));
		size_t k = 0;
		for (uint64_t e = 0; e < n_evs; e++) {
			if (!counted(e, s, all))
				continue;
			if (k >= pg.n_events
			    || pg.events[k].event.position != evs[e].pos)
				FAIL("%s: partition %s entry %zu: want "
				     "position %" PRIu64 " (has %zu entries)",
				    when, part, k, evs[e].pos, pg.n_events);
			k++;
		}
		if (k != pg.n_events || pg.more)
			FAIL("%s: partition %s has %zu entries, want %zu",
			    when, part, pg.n_events, k);
		sl_filter_page_free(&pg);
	}
}

static void
check_models(const char *when, bool all)
{
	if (is_filter)
		check_filter(when, all);
	else
		check_projection(when, all);
}

/* ---- the plugin ---- */

static void
install(const char *build)
{
	char src[4200];
	snprintf(src, sizeof(src), "%s/%s.so", SL_TEST_PLUGIN_DIR, build);
	dt_install(src, NULL, plugin);
}

static const char *want_version;
static bool
runs_version(json_t *st, json_t *p)
{
	(void) p;
	size_t  i;
	json_t *pl;
	json_array_foreach(json_object_get(st, "plugins"), i, pl)
	{
		if (strcmp(jstr(pl, "file"), plugin) == 0
		    && json_is_true(json_object_get(pl, "loaded"))
		    && strcmp(jstr(pl, "version"), want_version) == 0)
			return true;
	}
	return false;
}

/* The fixed build, then retry: everything equals a recomputation. */
static void
fix_and_retry(void)
{
	install(is_filter        ? "crash_filter_fixed"
	        : is_emitter ? "crash_emit_fixed"
	        : in_key     ? "crash_key_fixed"
	                     : "crash_proj_fixed");
	want_version = "1.0.0";
	json_decref(wait_status("the fixed build loaded", runs_version));
	/* the same definition: no rebuild, the unit still waits */
	json_t *st = wait_status("still failing", has_failing);
	json_decref(st);
	size_t n  = 0;
	int    rc = sl_client_command(cl, "retry", our_name(), TENANT, &n);
	if (rc != SL_OK)
		FAIL("retry: %s: %s", sl_errname(rc), sl_client_last_error(cl));
	want_failing = 0;
	json_decref(wait_status("caught up after the retry", caught_up));
	check_models("after the fixed build and retry", true);
}

/* ---- the cases ---- */

static void
write_config(void)
{
	char text[20000];
	dt_test_paths(dir, cfg_path, daemon_log, url);
	snprintf(plugin_dir, sizeof(plugin_dir), "%s/plugins", dir);
	snprintf(plugin, sizeof(plugin), "%s/crash.so", plugin_dir);
	CHECK(mkdir(plugin_dir, 0755) == 0);
	size_t n = dt_config_head(
	    text, sizeof(text), dir, plugin_dir, url, "64MiB");
	snprintf(text + n, sizeof(text) - n,
	    "hot_reload: true\n"
	    "limits:\n"
	    "  handler_timeout_ms: 300\n"
	    "tenants:\n"
	    "  - id: " TENANT "\n"
	    "    read_models:\n"
	    "      map_size: 64MiB\n");
	tu_write_file(cfg_path, text);
}

static void
crash_case(void)
{
	char reason[128];
	install(bad_build);
	daemon_start();
	want_failing = 0;
	commit_others(3);
	commit(BAD_STREAM, 3, -1);
	json_decref(wait_status("the first events handled", caught_up));

	/* one commit: two events of the bad stream before the bad one, in
	 * the batch that crashes (not committed), one after it */
	commit(BAD_STREAM, 4, 2);
	snprintf(reason, sizeof(reason),
	    "crashed while handling event %" PRIu64 " (signal %s)", bad_pos,
	    signal_name);
	json_t *st = wait_status("the crash marked", has_failing);
	check_failing_unit(our_proc(st), reason);
	json_decref(st);
	if (log_count("died of signal") != 1)
		FAIL("want one restart after the crash, the log has %d",
		    log_count("died of signal"));
	if (log_count("the next start marks its unit failing") != 1)
		FAIL("no line from the fatal-signal handler");

	/* the daemon goes on: more events for every stream */
	commit_others(3);
	commit(BAD_STREAM, 2, -1);
	want_failing = 1;
	json_decref(wait_status("caught up with the unit failing", caught_up));
	check_models("with the crashed key waiting", false);
	if (!is_filter && !is_emitter)
		check_side("after the crash");
	if (log_count("died of signal") != 1)
		FAIL("the daemon crashed again (%d restarts)",
		    log_count("died of signal"));

	fix_and_retry();
	if (log_count("died of signal") != 1)
		FAIL("the daemon crashed again after the fix");
	int64_t ms;
	int     code = daemon_stop(&ms);
	if (code != 0)
		FAIL("exit status %d after SIGTERM", code);
}

static void
stuck_case(void)
{
	install("crash_proj_loop");
	daemon_start();
	want_failing = 0;
	commit_others(2);
	commit(BAD_STREAM, 2, -1);
	json_decref(wait_status("the first events handled", caught_up));
	uint64_t before = log_end;

	commit(BAD_STREAM, 3, 1);
	commit_others(2); /* behind the stuck batch */
	json_t *st = wait_status("stuck shown", is_stuck_at);
	json_t *p  = our_proc(st);
	if (jint(p, "stuck_position") != (long long) bad_pos
	    || jint(p, "position") != (long long) before)
		FAIL("stuck: want stuck_position %" PRIu64
		     ", position %" PRIu64 ": %s",
		    bad_pos, before, dump(p));
	char want[64];
	snprintf(want, sizeof(want), "stuck on event %" PRIu64, bad_pos);
	if (strstr(jstr(p, "status_reason"), want) == NULL)
		FAIL("status_reason without '%s': %s", want, dump(p));
	json_decref(st);
	check_side("while crash_counts is stuck");

	/* the stop is bounded (limits.shutdown_timeout_ms, 10 s) */
	int64_t ms;
	int     code = daemon_stop(&ms);
	if (ms > 12000)
		FAIL("SIGTERM took %" PRId64 " ms with a stuck handler", ms);
	if (code != 1)
		FAIL("exit status %d after an abandoning stop, want 1", code);
	if (log_count("abandoned, its batch is not committed") != 1)
		FAIL("the abandoned call is not logged");

	/* next start: the stuck key waits, the others go on */
	daemon_start();
	want_failing = 1;
	json_decref(wait_status("caught up after the stop", caught_up));
	st = wait_status("the stuck unit marked", has_failing);
	check_failing_unit(our_proc(st), "stuck handling event");
	json_decref(st);
	check_models("after the abandoning stop", false);
	fix_and_retry();
	code = daemon_stop(&ms);
	if (code != 0)
		FAIL("exit status %d after SIGTERM", code);
}

int
main(int argc, char **argv)
{
	const char *c = argc > 1 ? argv[1] : "proj_segv";
	test_pid      = getpid();
	CHECK(access(SL_BUILD_DIR "/sluiced", X_OK) == 0);
	if (strcmp(c, "proj_segv") == 0) {
		bad_build   = "crash_proj_segv";
		signal_name = "SIGSEGV";
	} else if (strcmp(c, "proj_abort") == 0) {
		bad_build     = "crash_proj_abort";
		signal_name   = "SIGABRT";
		stream_prefix = "stream-of-";
	} else if (strcmp(c, "filter_segv") == 0) {
		is_filter     = true;
		bad_build     = "crash_filter_segv";
		signal_name   = "SIGSEGV";
		stream_prefix = "a-stream-whose-id-has-";
	} else if (strcmp(c, "key_segv") == 0) {
		in_key        = true;
		bad_build     = "crash_key_segv";
		signal_name   = "SIGSEGV";
		stream_prefix = "a-stream-whose-id-is-longer-than-32-bytes-";
	} else if (strcmp(c, "emitter_segv") == 0) {
		is_emitter    = true;
		bad_build     = "crash_emit_segv";
		signal_name   = "SIGSEGV";
		stream_prefix = "emitting-stream-";
	} else if (strcmp(c, "stuck") == 0) {
		is_stuck = true;
	} else {
		fprintf(stderr, "unknown case %s\n", c);
		return 2;
	}
	write_config();
	atexit(cleanup); /* after tu_tmpdir's: runs before the removal */
	int64_t t0 = dt_now_ms();
	if (is_stuck)
		stuck_case();
	else
		crash_case();
	if (getenv("SL_TEST_VERBOSE") != NULL)
		dt_dump_file(daemon_log, "sluiced log");
	printf("crash_guard_test %s: ok (%" PRId64 " ms)\n", c,
	    dt_now_ms() - t0);
	return 0;
}
