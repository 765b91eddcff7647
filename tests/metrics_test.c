/*
 * The Prometheus endpoint (issue 19 item 4) of a real sluiced with
 * endpoints.metrics on http://127.0.0.1:0/metrics (the port it took is in
 * its log), read over plain TCP sockets:
 *  1. after 3 commits of 5 events: sluice_commits_total 3,
 *     sluice_events_appended_total 5, the commit latency histogram counts
 *     3 with cumulative buckets ending at +Inf = count, and account_details'
 *     position reaches the head with a lag of 0 events;
 *  2. with account_details paused, 2 more events: its lag is 2 events and
 *     more than 0 seconds; resumed, back to 0;
 *  3. the text is well formed: every sample's family has HELP and TYPE
 *     before it, once, names are [a-zA-Z_:][a-zA-Z0-9_:]*, counters end in
 *     _total, values are numbers;
 *  4. bad requests: an unknown path is 404, POST is 405, a garbage request
 *     gets 400 or a closed connection, and the daemon keeps serving both
 *     the metrics and the API;
 *  5. a remote projection (the C remote library, in this process): its
 *     calls' latency histogram counts its answered calls;
 *  6. a remote projection failing an event twice, then taking it: its
 *     handler failures count 2 and its retries 2;
 *  7. a subscriber with a one-message queue asleep in its callback while
 *     200 commits go by: the feed drops for it, it reads what it missed
 *     (marked as gap reads) and the daemon counts those reads and the
 *     events they brought back; every event still arrives once, in order;
 *  8. the feed sends nothing while nobody is connected: no event counted
 *     as published before the first subscriber, none once the last one
 *     left (commits go on), and a raw sub0 connecting then gets the next
 *     commits and heads, counted again.
 */
#include <inttypes.h>
#include <pthread.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>

#include <sluice/client.h>
#include <sluice/remote.h>
#include <sluice/subscribe.h>

#include "daemon_testutil.h"
#include "nngclose.h"

static char  dir[4096], cfg[4200], logf[4200], api[4200];
static char  host[64];
static int   port;
static pid_t daemon_pid = -1;

#define PROJ "account_details"

static void
cleanup(void)
{
	dt_kill_and_reap(&daemon_pid);
}

/* Send req over a new TCP connection to the endpoint; the whole answer
 * (until the daemon closes) into a malloc'ed string. */
static char *
http(const char *req, size_t req_len)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
		.sin_port                    = htons((uint16_t) port) };
	CHECK(inet_pton(AF_INET, host, &a.sin_addr) == 1);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0);
	CHECK(connect(fd, (struct sockaddr *) &a, sizeof(a)) == 0);
	CHECK(write(fd, req, req_len) == (ssize_t) req_len);
	size_t cap = 65536, len = 0;
	char  *buf = malloc(cap);
	CHECK(buf != NULL);
	int64_t end = dt_now_ms() + 10000;
	for (;;) {
		struct pollfd p    = { .fd = fd, .events = POLLIN };
		int64_t       left = end - dt_now_ms();
		if (left <= 0 || poll(&p, 1, (int) left) <= 0)
			break;
		if (len + 4096 > cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			CHECK(buf != NULL);
		}
		ssize_t n = read(fd, buf + len, cap - len - 1);
		if (n <= 0)
			break;
		len += (size_t) n;
	}
	close(fd);
	buf[len] = '\0';
	return buf;
}

static char *
get(const char *path)
{
	char req[512];
	int  n = snprintf(req, sizeof(req),
	     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n",
	     path, host, port);
	return http(req, (size_t) n);
}

/* The body of a 200 answer to GET /metrics. */
static char *
scrape(void)
{
	char *r = get("/metrics");
	CHECK(strncmp(r, "HTTP/1.1 200", 12) == 0);
	CHECK(strstr(r, "Content-Type: text/plain; version=0.0.4") != NULL);
	char *body = strstr(r, "\r\n\r\n");
	CHECK(body != NULL);
	memmove(r, body + 4, strlen(body + 4) + 1);
	return r;
}

/* The value of the sample whose line starts with prefix (name and
 * labels, up to the space); -1 when there is none. */
static double
sample(const char *text, const char *prefix)
{
	size_t      n = strlen(prefix);
	const char *p = text;
	while ((p = strstr(p, prefix)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		p += n;
	}
	return -1;
}

static double
proc_sample(const char *text, const char *metric)
{
	char prefix[512];
	snprintf(prefix, sizeof(prefix),
	    "%s{tenant=\"t1\",name=\"" PROJ
	    "\",projection=\"8a2f3c1e-5b7d-4e9a-9c11-2d4e6f8a0b13\","
	    "kind=\"projection\"}",
	    metric);
	return sample(text, prefix);
}

/* Scrape until metric of account_details is v (at most 10 s). */
static char *
wait_proc(const char *metric, double v)
{
	int64_t end = dt_now_ms() + 10000;
	for (;;) {
		char *t = scrape();
		if (proc_sample(t, metric) == v || dt_now_ms() > end)
			return t;
		free(t);
		dt_sleep_ms(50);
	}
}

static bool
name_ok(const char *s, size_t n)
{
	if (n == 0 || !(isalpha((unsigned char) s[0]) || s[0] == '_'
	                   || s[0] == ':'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!(isalnum((unsigned char) s[i]) || s[i] == '_'
		        || s[i] == ':'))
			return false;
	return true;
}

/* Test 3: the exposition format's rules that a scraper relies on. */
static void
check_format(char *text)
{
	char  families[256][96];
	char  types[256][16];
	int   n_fam = 0, n_samples = 0;
	char *save  = NULL;
	char  copy_of_help[96] = "";
	for (char *line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char name[96];
		if (strncmp(line, "# HELP ", 7) == 0) {
			CHECK(sscanf(line + 7, "%95s", copy_of_help) == 1);
			continue;
		}
		if (strncmp(line, "# TYPE ", 7) == 0) {
			char type[16];
			CHECK(sscanf(line + 7, "%95s %15s", name, type) == 2);
			CHECK_STREQ(name, copy_of_help); /* HELP just before */
			for (int i = 0; i < n_fam; i++)
				CHECK(strcmp(families[i], name) != 0);
			CHECK(strcmp(type, "counter") == 0
			    || strcmp(type, "gauge") == 0
			    || strcmp(type, "histogram") == 0);
			if (strcmp(type, "counter") == 0) {
				size_t l = strlen(name);
				CHECK(l > 6 && strcmp(name + l - 6, "_total") == 0);
			}
			CHECK(n_fam < 256);
			snprintf(families[n_fam], sizeof(families[0]), "%s", name);
			snprintf(types[n_fam++], sizeof(types[0]), "%s", type);
			continue;
		}
		CHECK(line[0] != '#');
		size_t nl = strcspn(line, "{ ");
		CHECK(name_ok(line, nl));
		/* the sample belongs to the last family (histogram: its
		 * _bucket, _sum, _count) */
		CHECK(n_fam > 0);
		const char *fam = families[n_fam - 1];
		size_t      fl  = strlen(fam);
		CHECK(strncmp(line, fam, fl) == 0);
		CHECK(nl == fl
		    || (strcmp(types[n_fam - 1], "histogram") == 0
		        && (strncmp(line + fl, "_bucket", 7) == 0
		            || strncmp(line + fl, "_sum", 4) == 0
		            || strncmp(line + fl, "_count", 6) == 0)));
		const char *v = strrchr(line, ' ');
		CHECK(v != NULL);
		char *end;
		strtod(v + 1, &end);
		CHECK(*end == '\0');
		n_samples++;
	}
	CHECK(n_fam >= 20);
	CHECK(n_samples >= 40);
}

static void
commit(sl_client *c, const char *stream, int n)
{
	sl_new_event ev[3];
	char         content[3][160];
	for (int i = 0; i < n; i++) {
		snprintf(content[i], sizeof(content[i]),
		    "{\"account_id\":\"%s\",\"customer_id\":\"c\",\"amount\":1}",
		    stream);
		ev[i] = (sl_new_event) { .type = i == 0 ? "DebitAccountOpened"
			                                : "DebitPerformed",
			.content_json               = content[i] };
	}
	CHECK_EQ(sl_client_commit(c, "t1", stream, SL_EXPECT_ANY, ev,
	             (size_t) n, NULL),
	    SL_OK);
}

/* 5: a remote projection counting events per stream */
static sl_remote_result
on_remote(void *user, sl_remote_call *call)
{
	(void) user;
	(void) call;
	return SL_REMOTE_REPLACE;
}

static void
check_remote_latency(sl_client *c)
{
	static const sl_remote_selector sel[] = {
		{ "RemoteProbe", SL_REMOTE_KEY_EVENT_SOURCE, NULL },
	};
	sl_remote_projection def = {
		.id          = "5c8d1c4e-0a7b-4f6e-9d2a-3b4c5d6e7f80",
		.name        = "remote_probe",
		.version     = 1,
		.selectors   = sel,
		.n_selectors = 1,
		.on          = on_remote,
	};
	sl_remote *r;
	CHECK_EQ(sl_remote_register_projection(api, &def, NULL, &r), SL_OK);
	CHECK_EQ(sl_remote_start(r), SL_OK);
	for (int i = 0; i < 5; i++) {
		sl_new_event ev = { .type = "RemoteProbe",
			.content_json   = "{\"n\":1}" };
		CHECK_EQ(sl_client_commit(c, "t1", "probe", SL_EXPECT_ANY, &ev,
		             1, NULL),
		    SL_OK);
	}
	static const char count[]
	    = "sluice_remote_call_duration_seconds_count{id=\"5c8d1c4e-0a7b-"
	      "4f6e-9d2a-3b4c5d6e7f80\",name=\"remote_probe\"}";
	int64_t end = dt_now_ms() + 15000;
	double  n   = -1;
	while (dt_now_ms() < end) {
		char *t = scrape();
		n       = sample(t, count);
		free(t);
		if (n >= 1)
			break;
		dt_sleep_ms(50);
	}
	CHECK(n >= 1);
	char *t = scrape();
	CHECK(sample(t, "sluice_remote_calls_total{id=\"5c8d1c4e-0a7b-4f6e-"
	                "9d2a-3b4c5d6e7f80\",name=\"remote_probe\"}")
	    >= n);
	check_format(t);
	free(t);
	sl_remote_stop(r);
	sl_remote_close(r);
}

/* 6: fails each event twice, then takes it */
static sl_remote_result
on_flaky(void *user, sl_remote_call *call)
{
	(void) user;
	if (sl_remote_attempt(call) < 2) /* failed attempts so far */
		return sl_remote_fail(call, true, 10, "not yet (attempt %u)",
		    sl_remote_attempt(call));
	return SL_REMOTE_REPLACE;
}

/* The sample of metric for remote_flaky. */
static double
flaky_sample(const char *text, const char *metric)
{
	char prefix[512];
	snprintf(prefix, sizeof(prefix),
	    "%s{tenant=\"t1\",name=\"remote_flaky\",projection=\"6d9e2d5f-"
	    "1b8c-4a7f-8e3b-4c5d6e7f8091\",kind=\"projection\"}",
	    metric);
	return sample(text, prefix);
}

static void
check_failures_and_retries(sl_client *c)
{
	static const sl_remote_selector sel[] = {
		{ "FlakyProbe", SL_REMOTE_KEY_EVENT_SOURCE, NULL },
	};
	sl_remote_projection def = {
		.id          = "6d9e2d5f-1b8c-4a7f-8e3b-4c5d6e7f8091",
		.name        = "remote_flaky",
		.version     = 1,
		.selectors   = sel,
		.n_selectors = 1,
		.on          = on_flaky,
	};
	sl_remote *r;
	CHECK_EQ(sl_remote_register_projection(api, &def, NULL, &r), SL_OK);
	CHECK_EQ(sl_remote_start(r), SL_OK);
	sl_new_event ev = { .type = "FlakyProbe", .content_json = "{}" };
	CHECK_EQ(
	    sl_client_commit(c, "t1", "flaky", SL_EXPECT_ANY, &ev, 1, NULL),
	    SL_OK);
	double  failures = -1, retries = -1, failing = -1;
	int64_t end      = dt_now_ms() + 20000;
	while (dt_now_ms() < end) {
		char *t  = scrape();
		failures = flaky_sample(
		    t, "sluice_processor_handler_failures_total");
		retries = flaky_sample(t, "sluice_processor_retries_total");
		failing = flaky_sample(t, "sluice_processor_failing_units");
		free(t);
		if (retries >= 2 && failing == 0)
			break;
		dt_sleep_ms(50);
	}
	CHECK(failures == 2);
	CHECK(retries == 2); /* the second and the third attempt */
	CHECK(failing == 0);
	sl_remote_stop(r);
	sl_remote_close(r);
}

/* 7: a slow subscriber */
typedef struct {
	sl_client         *c;
	uint64_t           from, until, next;
	bool               in_order;
	int                rc;
	sl_subscribe_stats st;
} slow_sub;

static int
on_slow_event(void *arg, const sl_read_event *ev)
{
	slow_sub *s = arg;
	if (ev->position != s->next)
		s->in_order = false;
	s->next = ev->position + 1;
	if (ev->position == s->from)
		dt_sleep_ms(1500); /* the commits go by meanwhile */
	return s->next >= s->until;
}

static void *
slow_run(void *arg)
{
	slow_sub         *s = arg;
	sl_subscribe_opts o = { .from = s->from,
		.recv_buf             = 1,
		.idle_ms              = 30000,
		.stats                = &s->st };
	s->rc = sl_client_subscribe(s->c, &o, on_slow_event, s);
	return NULL;
}

static void
check_feed_gaps(sl_client *c)
{
	enum { N = 200 };
	slow_sub s = { .in_order = true };
	char *t = scrape();
	CHECK(sample(t, "sluice_feed_gap_reads_total") == 0);
	CHECK(sample(t, "sluice_feed_dropped_events_total") == 0);
	s.from = (uint64_t) sample(t, "sluice_log_head_position");
	free(t);
	s.next  = s.from;
	s.until = s.from + N + 1;
	CHECK_EQ(sl_client_open(api, 10000, &s.c), SL_OK);
	pthread_t th;
	CHECK(pthread_create(&th, NULL, slow_run, &s) == 0);
	/* the first event after the subscription is live (its history read
	 * found nothing yet) */
	dt_sleep_ms(500);
	for (int i = 0; i <= N; i++) {
		char         content[80];
		snprintf(content, sizeof(content), "{\"n\":%d}", i);
		sl_new_event ev = { .type = "SlowProbe", .content_json = content };
		CHECK_EQ(sl_client_commit(c, "t1", "slow", SL_EXPECT_ANY, &ev,
		             1, NULL),
		    SL_OK);
	}
	CHECK(pthread_join(th, NULL) == 0);
	sl_client_close(s.c);
	CHECK_EQ(s.rc, SL_OK);
	CHECK(s.in_order);
	CHECK(s.next == s.until);
	CHECK(s.st.delivered == N + 1);
	CHECK(s.st.gap_fills >= 1);
	CHECK(s.st.from_reads >= 1);
	t = scrape();
	double reads = sample(t, "sluice_feed_gap_reads_total");
	double lost  = sample(t, "sluice_feed_dropped_events_total");
	free(t);
	printf("metrics_test: slow subscriber: %" PRIu64
	       " events from the feed, %" PRIu64 " read back in %" PRIu64
	       " gap fills; daemon counted %.0f gap reads, %.0f events\n",
	    s.st.from_live, s.st.from_reads, s.st.gap_fills, reads, lost);
	CHECK(reads >= (double) s.st.gap_fills);
	CHECK(lost >= (double) s.st.from_reads);
	CHECK(lost <= N + 1);
}

static double
feed_sent(void)
{
	char  *t = scrape();
	double v = sample(t, "sluice_feed_messages_total");
	free(t);
	CHECK(v >= 0);
	return v;
}

/* 8: nothing published for nobody */
static void
check_feed_idle(sl_client *c)
{
	/* the last subscriber's connection goes away after its close
	 * returned: commit until a commit is no longer published */
	double  before, now = feed_sent();
	int64_t end = dt_now_ms() + 15000;
	do {
		before = now;
		commit(c, "idle", 1);
		dt_sleep_ms(150);
		now = feed_sent();
		if (dt_now_ms() > end)
			DT_FAIL_LOG(logf, "the feed goes on publishing with "
			                  "nobody connected");
	} while (now != before);
	for (int i = 0; i < 20; i++)
		commit(c, "idle", 2);
	dt_sleep_ms(300);
	CHECK(feed_sent() == now);

	/* a raw subscriber: its first head, then the next commits live */
	nng_socket s;
	char       url[4300];
	snprintf(url, sizeof(url), "ipc://%s/pub.ipc", dir);
	CHECK(nng_sub0_open(&s) == 0);
	CHECK(nng_socket_set(s, NNG_OPT_SUB_SUBSCRIBE, "", 0) == 0);
	CHECK(nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 200) == 0);
	CHECK(nng_dial(s, url, NULL, 0) == 0);
	int     heads = 0, events = 0;
	nng_msg *m;
	end = dt_now_ms() + 10000;
	while (heads == 0) {
		if (nng_recvmsg(s, &m, 0) == 0) {
			heads += memcmp(nng_msg_body(m), "h\n", 2) == 0;
			nng_msg_free(m);
		}
		CHECK(dt_now_ms() < end);
	}
	for (int i = 0; i < 3; i++)
		commit(c, "idle", 1);
	while (events < 3 && dt_now_ms() < end) {
		if (nng_recvmsg(s, &m, 0) != 0)
			continue;
		/* "e/t1/idle\n" + an array of the stream's events: commits
		 * read together come as one message */
		const char *b = nng_msg_body(m);
		size_t      n = nng_msg_len(m);
		if (n > 10 && memcmp(b, "e/t1/idle\n", 10) == 0) {
			msgpack_unpacked u;
			msgpack_unpacked_init(&u);
			CHECK(msgpack_unpack_next(&u, b + 10, n - 10, NULL)
			    == MSGPACK_UNPACK_SUCCESS);
			CHECK(u.data.type == MSGPACK_OBJECT_ARRAY);
			events += (int) u.data.via.array.size;
			msgpack_unpacked_destroy(&u);
		}
		nng_msg_free(m);
	}
	CHECK_EQ(events, 3);
	CHECK(feed_sent() == now + 3);
	/* NNG 1.5.2 can hang for good closing a socket whose peer is
	 * sending (proto/nngclose.h): bounded, as the daemon's closes */
	sl_nng_close_bounded(s, 2000);
	printf("metrics_test: idle feed: %.0f events published, none while "
	       "nobody was connected, 3 to a new subscriber\n", now + 3);
}

int
main(void)
{
	dt_test_paths(dir, cfg, logf, api);
	atexit(cleanup);
	char   text[4096];
	size_t n = dt_config_head(
	    text, sizeof(text), dir, SL_PLUGIN_DIR, api, "64MiB");
	/* endpoints: comes before event_store: in the head: metrics goes
	 * under it */
	char *ev = strstr(text, "event_store:\n");
	CHECK(ev != NULL);
	char moved[4096];
	snprintf(moved, sizeof(moved), "%.*s  metrics: "
	                               "http://127.0.0.1:0/metrics\n%.*s"
	                               "tenants:\n  - id: t1\n",
	    (int) (ev - text), text, (int) (text + n - ev), ev);
	tu_write_file(cfg, moved);
	daemon_pid = dt_daemon_spawn(cfg, logf);
	sl_client *c = NULL;
	CHECK(dt_wait_answer(api, &c, 15000));

	/* the port it took, from its log (the API answers from before
	 * the metrics endpoint is up: wait for its line) */
	CHECK(dt_wait_file_has(logf, "serving metrics on http://", 15000));
	size_t len;
	char  *log = dt_slurp(logf, &len);
	CHECK(log != NULL);
	char *at = strstr(log, "serving metrics on http://");
	CHECK(at != NULL);
	CHECK(sscanf(at + 26, "%63[0-9.]:%d/metrics", host, &port) == 2);
	free(log);

	/* 1. counters and histograms */
	commit(c, "acc-1", 3);
	commit(c, "acc-2", 1);
	commit(c, "acc-3", 1);
	char *t = wait_proc("sluice_processor_position", 5);
	CHECK(proc_sample(t, "sluice_processor_position") == 5);
	CHECK(proc_sample(t, "sluice_processor_lag_events") == 0);
	CHECK(proc_sample(t, "sluice_processor_lag_seconds") == 0);
	CHECK(sample(t, "sluice_commits_total") == 3);
	CHECK(sample(t, "sluice_events_appended_total") == 5);
	CHECK(sample(t, "sluice_log_head_position") == 5);
	CHECK(sample(t, "sluice_commit_duration_seconds_count") == 3);
	CHECK(sample(t, "sluice_commit_duration_seconds_bucket{le=\"+Inf\"}") == 3);
	CHECK(sample(t, "sluice_commit_duration_seconds_sum") > 0);
	CHECK(sample(t, "sluice_group_commit_events_sum") == 5);
	/* 8. no subscriber yet: nothing published */
	CHECK(sample(t, "sluice_feed_messages_total") == 0);
	/* the build's plugin_dir: account_details.so, account_filters.so */
	CHECK(sample(t, "sluice_plugin_loads_total") == 2);
	CHECK(sample(t, "sluice_plugin_load_errors_total") == 0);
	CHECK(sample(t, "sluice_lmdb_map_used_bytes{environment=\"events\","
	                "tenant=\"\"}")
	    > 0);
	CHECK(sample(t, "sluice_lmdb_map_size_bytes{environment="
	                   "\"events\",tenant=\"\"}") == 64.0 * 1024 * 1024);
	/* cumulative buckets */
	double      last = 0;
	const char *p    = t;
	while ((p = strstr(p, "sluice_commit_duration_seconds_bucket{"))
	    != NULL) {
		double v = strtod(strchr(p, ' ') + 1, NULL);
		CHECK(v >= last);
		last = v;
		p++;
	}
	CHECK(last == 3);

	/* 3. the format */
	check_format(t);
	free(t);

	/* 2. lag while paused */
	CHECK_EQ(sl_client_command(c, "pause", PROJ, "t1", NULL), SL_OK);
	dt_sleep_ms(50);
	commit(c, "acc-4", 2);
	t = wait_proc("sluice_processor_lag_events", 2);
	CHECK(proc_sample(t, "sluice_processor_lag_events") == 2);
	CHECK(proc_sample(t, "sluice_processor_lag_seconds") > 0);
	CHECK(proc_sample(t, "sluice_processor_paused") == 1);
	free(t);
	CHECK_EQ(sl_client_command(c, "resume", PROJ, "t1", NULL), SL_OK);
	t = wait_proc("sluice_processor_lag_events", 0);
	CHECK(proc_sample(t, "sluice_processor_lag_events") == 0);
	CHECK(proc_sample(t, "sluice_processor_position") == 7);
	free(t);

	/* 4. bad requests */
	char *r = get("/nope");
	CHECK(strncmp(r, "HTTP/1.1 404", 12) == 0);
	free(r);
	static const char post[] = "POST /metrics HTTP/1.1\r\nHost: x\r\n"
	                           "Content-Length: 0\r\nConnection: close"
	                           "\r\n\r\n";
	r = http(post, sizeof(post) - 1);
	CHECK(strncmp(r, "HTTP/1.1 405", 12) == 0);
	free(r);
	static const char junk[] = "\x01\x02 not http at all\r\n\r\n\r\n";
	r = http(junk, sizeof(junk) - 1);
	CHECK(r[0] == '\0' || strncmp(r, "HTTP/1.1 400", 12) == 0);
	free(r);
	t = scrape();
	CHECK(sample(t, "sluice_commits_total") == 4);
	free(t);
	commit(c, "acc-5", 1);

	/* 5. a remote processor's calls */
	check_remote_latency(c);
	/* 6. failures and retries */
	check_failures_and_retries(c);
	/* 7. the feed's drops, as its subscribers find them */
	check_feed_gaps(c);
	/* 8. nothing published once the last subscriber left */
	check_feed_idle(c);
	sl_client_close(c);

	dt_daemon_stop(&daemon_pid, 20000);
	printf("metrics_test: ok\n");
	return 0;
}
