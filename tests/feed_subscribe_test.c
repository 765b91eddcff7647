/*
 * The live feed in one process (a real runtime, real NNG sockets on ipc://
 * in the temp dir): the message format and topics as a plain NNG
 * subscriber sees them, subscriptions by position and by stream revision
 * (history, live, gaps filled by reading), and the errors a subscription
 * answers with.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/req.h>

#include <sluice/client.h>
#include <sluice/subscribe.h>

#include "config.h"
#include "feed.h"
#include "mp.h"
#include "runtime.h"
#include "api_fixture.h"
#include "daemon_testutil.h"

static void
start_runtime(void)
{
	char path[4300];

	/* an empty plugin directory: the feed needs no projection */
	snprintf(path, sizeof(path), "%s/plugins", tu_tmpdir());
	CHECK(mkdir(path, 0755) == 0);
	fx_start_yaml("plugin_dir: plugins\n"
	              "tenants: [{id: t1}, {id: t2}]\n"
	              "limits: {max_read_events: 7}\n");
}

static uint64_t
commit_n(sl_client *c, const char *tenant, const char *stream, int n,
    const char *tag)
{
	sl_new_event     evs[64];
	char             texts[64][96];
	sl_commit_result res;

	CHECK(n > 0 && n <= 64);
	for (int i = 0; i < n; i++) {
		snprintf(texts[i], sizeof(texts[i]),
		    "{\"tag\":\"%s\",\"i\":%d}", tag, i);
		memset(&evs[i], 0, sizeof(evs[i]));
		evs[i].type         = "Tagged";
		evs[i].content_json = texts[i];
	}
	CHECK_EQ(sl_client_commit(
	             c, tenant, stream, SL_EXPECT_ANY, evs, (size_t) n, &res),
	    SL_OK);
	return res.first_position;
}

/* ---- the topic ---- */

static void
test_topic(void)
{
	char   buf[64];
	size_t n;

	n = feed_topic(buf, sizeof(buf), "t1", 2, "acc-1", 5, 1);
	CHECK_EQ(n, 11);
	CHECK(memcmp(buf, "e/t1/acc-1\n", 11) == 0);
	n = feed_topic(buf, sizeof(buf), "t1", 2, "a%b\nc/d\x7f", 8, 1);
	CHECK_EQ(n, 20);
	CHECK(memcmp(buf, "e/t1/a%25b%0Ac/d%7F\n", 20) == 0);
	n = feed_topic(buf, sizeof(buf), "t1", 2, "acc", 3, 0);
	CHECK_EQ(n, 8);
	CHECK(memcmp(buf, "e/t1/acc", 8) == 0);
	/* Too small: the full length, nothing written past the end. */
	memset(buf, 'x', sizeof(buf));
	CHECK_EQ(feed_topic(buf, 4, "t1", 2, "acc-1", 5, 1), 11);
	CHECK(memcmp(buf, "e/t1x", 5) == 0);
}

/* ---- the feed as a plain NNG subscriber sees it ---- */

static nng_socket
raw_sub(const char *topic, size_t len)
{
	nng_socket s;
	CHECK(nng_sub0_open(&s) == 0);
	CHECK(nng_socket_set(s, NNG_OPT_SUB_SUBSCRIBE, topic, len) == 0);
	CHECK(nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 3000) == 0);
	CHECK(nng_dial(s, fx_pub_url, NULL, 0) == 0);
	return s;
}

/* Wait until the socket gets a head message: then it is connected. */
static void
wait_connected(nng_socket s)
{
	nng_msg *m;
	CHECK(
	    nng_socket_set(s, NNG_OPT_SUB_SUBSCRIBE, FEED_TOPIC_HEAD, 2) == 0);
	for (;;) {
		CHECK(nng_recvmsg(s, &m, 0) == 0);
		bool head = nng_msg_len(m) >= 2
		    && memcmp(nng_msg_body(m), FEED_TOPIC_HEAD, 2) == 0;
		nng_msg_free(m);
		if (head)
			break;
	}
	CHECK(nng_socket_set(s, NNG_OPT_SUB_UNSUBSCRIBE, FEED_TOPIC_HEAD, 2)
	    == 0);
}

typedef struct feed_msg {
	nng_msg       *msg;
	char           topic[256];
	msgpack_zone   zone;
	msgpack_object body;
} feed_msg;

static void
recv_feed(nng_socket s, feed_msg *fm)
{
	size_t off;

	CHECK(nng_recvmsg(s, &fm->msg, 0) == 0);
	const char *b  = nng_msg_body(fm->msg);
	size_t      n  = nng_msg_len(fm->msg);
	const char *nl = memchr(b, '\n', n);
	CHECK(nl != NULL);
	off = (size_t) (nl - b) + 1;
	CHECK(off < sizeof(fm->topic));
	memcpy(fm->topic, b, off);
	fm->topic[off] = '\0';
	CHECK(msgpack_zone_init(&fm->zone, 1024));
	CHECK_EQ(msgpack_unpack(b, n, &off, &fm->zone, &fm->body),
	    MSGPACK_UNPACK_SUCCESS);
	CHECK_EQ(off, n); /* one msgpack object, nothing after it */
}

static void
feed_msg_free(feed_msg *fm)
{
	msgpack_zone_destroy(&fm->zone);
	nng_msg_free(fm->msg);
}

static void
check_event(const msgpack_object *e, uint64_t pos, const char *tenant,
    const char *stream, uint64_t rev)
{
	uint64_t              u;
	const msgpack_object *content;

	CHECK(e->type == MSGPACK_OBJECT_MAP);
	CHECK_EQ(mp_get_u64(e, "position", &u), SL_OK);
	CHECK_EQ(u, pos);
	CHECK_EQ(mp_get_u64(e, "revision", &u), SL_OK);
	CHECK_EQ(u, rev);
	CHECK(mp_str_eq(mp_get(e, "tenant"), tenant));
	CHECK(mp_str_eq(mp_get(e, "stream"), stream));
	CHECK(mp_str_eq(mp_get(e, "type"), "Tagged"));
	CHECK_EQ(mp_get_map(e, "content", &content), SL_OK);
	CHECK(mp_get(content, "tag") != NULL);
	CHECK(mp_get(e, "id") != NULL && mp_get(e, "occurred") != NULL);
}

static void
test_raw_feed(sl_client *c)
{
	static const char weird[] = "we%ird\nname";
	char              wtopic[64];
	size_t            wlen;
	feed_msg          fm;
	nng_socket        one, tenant, w, head;
	uint64_t          base, u;
	nng_msg          *m;

	wlen = feed_topic(
	    wtopic, sizeof(wtopic), "t1", 2, weird, strlen(weird), 1);
	one    = raw_sub("e/t1/acc-1\n", 11);
	tenant = raw_sub("e/t1/", 5);
	w      = raw_sub(wtopic, wlen);
	head   = raw_sub(FEED_TOPIC_HEAD, 2);
	wait_connected(one);
	wait_connected(tenant);
	wait_connected(w);

	base = commit_n(c, "t1", "acc-1", 3, "a");
	CHECK_EQ(commit_n(c, "t1", "acc-10", 1, "b"), base + 3);
	CHECK_EQ(commit_n(c, "t2", "acc-1", 1, "c"), base + 4);
	CHECK_EQ(commit_n(c, "t1", "acc-1", 1, "d"), base + 5);
	CHECK_EQ(commit_n(c, "t1", weird, 2, "e"), base + 6);

	/* One stream: its commits, one message each, an array of events. */
	recv_feed(one, &fm);
	CHECK_STREQ(fm.topic, "e/t1/acc-1\n");
	CHECK(fm.body.type == MSGPACK_OBJECT_ARRAY);
	CHECK_EQ(fm.body.via.array.size, 3);
	for (uint32_t i = 0; i < 3; i++)
		check_event(
		    &fm.body.via.array.ptr[i], base + i, "t1", "acc-1", i);
	feed_msg_free(&fm);
	recv_feed(one, &fm);
	CHECK_EQ(fm.body.via.array.size, 1);
	check_event(&fm.body.via.array.ptr[0], base + 5, "t1", "acc-1", 3);
	feed_msg_free(&fm);
	/* Not acc-10 (a longer id with the same start), not tenant t2. */
	CHECK(nng_socket_set_ms(one, NNG_OPT_RECVTIMEO, 300) == 0);
	CHECK(nng_recvmsg(one, &m, 0) == NNG_ETIMEDOUT);

	/* A tenant: its streams in log order. */
	recv_feed(tenant, &fm);
	CHECK_STREQ(fm.topic, "e/t1/acc-1\n");
	feed_msg_free(&fm);
	recv_feed(tenant, &fm);
	CHECK_STREQ(fm.topic, "e/t1/acc-10\n");
	check_event(&fm.body.via.array.ptr[0], base + 3, "t1", "acc-10", 0);
	feed_msg_free(&fm);
	recv_feed(tenant, &fm);
	CHECK_STREQ(fm.topic, "e/t1/acc-1\n");
	feed_msg_free(&fm);
	recv_feed(tenant, &fm);
	CHECK_STREQ(fm.topic, "e/t1/we%25ird%0Aname\n");
	feed_msg_free(&fm);

	/* A stream id with '%' and a newline: escaped in the topic only. */
	recv_feed(w, &fm);
	CHECK_EQ(fm.body.via.array.size, 2);
	check_event(&fm.body.via.array.ptr[1], base + 7, "t1", weird, 1);
	feed_msg_free(&fm);

	/* The head message: {"head": the next position}, a few per second. */
	int64_t t0 = dt_now_ms();
	for (;;) {
		recv_feed(head, &fm);
		CHECK_STREQ(fm.topic, "h\n");
		CHECK(fm.body.type == MSGPACK_OBJECT_MAP);
		CHECK_EQ(mp_get_u64(&fm.body, "head", &u), SL_OK);
		feed_msg_free(&fm);
		if (u == base + 8)
			break;
		CHECK(u < base + 8);
		CHECK(dt_now_ms() - t0 < 3000);
	}
	nng_close(one);
	nng_close(tenant);
	nng_close(w);
	nng_close(head);
}

/* ---- subscriptions through the library ---- */

typedef struct subctx {
	sl_subscribe_opts  o;
	sl_subscribe_stats st;
	int                rc;
	atomic_ullong      want; /* stop after this many events */
	uint64_t           got;
	uint64_t           keys[4096]; /* position or revision, in order */
	char               tags[4096][8];
	uint64_t           live_seen; /* st.from_live at the last event */
	atomic_bool stall_armed;      /* stall at the next live burst event */
	bool        stalled;
	atomic_bool live; /* an event came from the live feed */
	pthread_t   thr;
} subctx;

static int
on_event(void *arg, const sl_read_event *ev)
{
	subctx *s = arg;

	CHECK(s->got < 4096);
	s->keys[s->got] = s->o.tenant != NULL ? ev->revision : ev->position;
	const char *t   = strstr(ev->content_json, "\"tag\"");
	CHECK(t != NULL);
	t = strchr(t + 5, '"');
	CHECK(t != NULL);
	snprintf(s->tags[s->got], sizeof(s->tags[0]), "%.*s",
	    (int) strcspn(t + 1, "\""), t + 1);
	s->got++;
	bool is_live = s->st.from_live > s->live_seen;
	s->live_seen = s->st.from_live;
	if (is_live)
		atomic_store(&s->live, true);
	if (is_live && !s->stalled && atomic_load(&s->stall_armed)
	    && strcmp(s->tags[s->got - 1], "burst") == 0) {
		s->stalled = true;
		dt_sleep_ms(400); /* a stuck application: the feed drops */
	}
	return s->got >= atomic_load(&s->want);
}

static void *
sub_thread(void *arg)
{
	subctx    *s = arg;
	sl_client *c;

	CHECK_EQ(sl_client_open(fx_url, 5000, &c), SL_OK);
	s->o.stats = &s->st;
	s->rc      = sl_client_subscribe(c, &s->o, on_event, s);
	sl_client_close(c);
	return NULL;
}

static void
sub_start(subctx *s)
{
	atomic_init(&s->live, false);
	atomic_init(&s->stall_armed, false);
	if (atomic_load(&s->want) == 0)
		atomic_init(&s->want, UINT64_MAX);
	CHECK(pthread_create(&s->thr, NULL, sub_thread, s) == 0);
}

/* History from a position, then live events, all in order. */
static void
test_log_subscription(sl_client *c)
{
	subctx  *s    = calloc(1, sizeof(*s));
	uint64_t head = commit_n(c, "t1", "x", 1, "h") + 1;
	uint64_t from = head - 5;

	CHECK(s != NULL);
	s->o.from    = from;
	s->o.pub_url = fx_pub_url;
	s->o.idle_ms = 10000;
	s->want      = 5 + 40;
	sub_start(s);
	/* Live: commit until the subscriber has seen one live event, then
	 * the rest; history pages are of 7 events (max_read_events). */
	int n = 0;
	while (!atomic_load(&s->live) && n < 30) {
		commit_n(c, n % 2 ? "t2" : "t1", "y", 1, "l");
		n++;
		dt_sleep_ms(50);
	}
	CHECK(atomic_load(&s->live));
	while (n < 40) {
		commit_n(c, "t1", "z", 1, "m");
		n++;
	}
	CHECK(pthread_join(s->thr, NULL) == 0);
	CHECK_EQ(s->rc, SL_OK);
	CHECK_EQ(s->got, 45);
	for (uint64_t i = 0; i < s->got; i++)
		CHECK_EQ(s->keys[i], from + i);
	CHECK_EQ(s->st.delivered, 45);
	CHECK(s->st.from_reads >= 5);
	CHECK(s->st.from_live > 0);
	CHECK_EQ(s->st.from_live + s->st.from_reads, 45);
	fprintf(stderr,
	    "log subscription: %" PRIu64 " live, %" PRIu64 " read, %" PRIu64
	    " gap fills\n",
	    s->st.from_live, s->st.from_reads, s->st.gap_fills);
	free(s);
}

/*
 * One stream from a revision while other streams and tenants move: only
 * its events, by revision, exactly once; a stuck callback loses live
 * messages (a receive queue of one) and the gap is filled by reading.
 */
static void
test_stream_subscription(sl_client *c)
{
	subctx *s = calloc(1, sizeof(*s));
	int     n = 0;

	CHECK(s != NULL);
	/* History: revisions 0..9 of s1, with other streams between. */
	for (int i = 0; i < 10; i++) {
		commit_n(c, "t1", "s1", 1, "old");
		commit_n(c, "t1", "s1-other", 2, "no");
		commit_n(c, "t2", "s1", 1, "no");
	}
	s->o.tenant   = "t1";
	s->o.stream   = "s1";
	s->o.from     = 4;
	s->o.pub_url  = fx_pub_url;
	s->o.recv_buf = 1;
	s->o.idle_ms  = 10000;
	sub_start(s);
	/* Live: single events, slowly, until one came from the feed. */
	while (!atomic_load(&s->live) && n < 100) {
		commit_n(c, "t1", "s1", 1, "warm");
		commit_n(c, "t1", "s0", 1, "no");
		n++;
		dt_sleep_ms(30);
	}
	CHECK(atomic_load(&s->live));
	/* The burst: the first of it that comes live stalls the callback
	 * while the rest is committed, 2 ms apart. */
	atomic_store(&s->want, 6 + (uint64_t) n + 30);
	atomic_store(&s->stall_armed, true);
	for (int i = 0; i < 30; i++) {
		commit_n(c, "t1", "s1", 1, "burst");
		commit_n(c, "t2", "s1", 1, "no");
		dt_sleep_ms(2);
	}
	CHECK(pthread_join(s->thr, NULL) == 0);
	CHECK_EQ(s->rc, SL_OK);
	CHECK_EQ(s->got, 6 + (uint64_t) n + 30);
	for (uint64_t i = 0; i < s->got; i++) {
		CHECK_EQ(s->keys[i], 4 + i);
		CHECK(strcmp(s->tags[i], "no") != 0);
	}
	fprintf(stderr,
	    "stream subscription: %" PRIu64 " live, %" PRIu64 " read, %" PRIu64
	    " gap fills, %" PRIu64 " duplicates, %" PRIu64 " reads\n",
	    s->st.from_live, s->st.from_reads, s->st.gap_fills,
	    s->st.duplicates, s->st.reads);
	CHECK(s->stalled);
	CHECK(s->st.gap_fills >= 1); /* the stall lost messages */
	free(s);
}

static int
count_event(void *arg, const sl_read_event *ev)
{
	(void) ev;
	(*(uint64_t *) arg)++;
	return 0;
}

/* Bad subscriptions are refused with a code and change nothing. */
static void
test_errors(sl_client *c)
{
	sl_subscribe_opts o;
	uint64_t          n = 0, head = store_next_position(fx_rt->store);
	nng_socket        req;
	nng_msg          *m;

	memset(&o, 0, sizeof(o));
	o.pub_url = fx_pub_url;
	o.tenant  = "t1"; /* no stream */
	CHECK_EQ(sl_client_subscribe(c, &o, count_event, &n), SL_EINVAL);
	CHECK(strstr(sl_client_last_error(c), "stream") != NULL);
	o.tenant = NULL;
	o.stream = "s1"; /* no tenant */
	CHECK_EQ(sl_client_subscribe(c, &o, count_event, &n), SL_EINVAL);

	o.tenant = "nope"; /* the read's error reply */
	CHECK_EQ(sl_client_subscribe(c, &o, count_event, &n), SL_ENOTFOUND);
	CHECK(strstr(sl_client_last_error(c), "nope") != NULL);
	o.tenant  = "t1";
	o.stream  = "never"; /* a stream with no events: not an error */
	o.idle_ms = 300;
	CHECK_EQ(sl_client_subscribe(c, &o, count_event, &n), SL_ETIMEDOUT);

	o.tenant  = NULL;
	o.stream  = NULL;
	o.pub_url = "bogus://x";
	CHECK_EQ(sl_client_subscribe(c, &o, count_event, &n), SL_EINVAL);
	CHECK(strstr(sl_client_last_error(c), "bogus") != NULL);
	CHECK_EQ(sl_client_subscribe(c, &o, NULL, &n), SL_EINVAL);
	CHECK_EQ(n, 0);

	/* Idle: the whole log is delivered, then nothing comes. No fx_pub_url:
	 * the daemon's status names its feed. */
	o.pub_url = NULL;
	o.idle_ms = 300;
	CHECK_EQ(sl_client_subscribe(c, &o, count_event, &n), SL_ETIMEDOUT);
	CHECK_EQ(n, head);
	CHECK(strstr(sl_client_last_error(c), "no event") != NULL);
	o.pub_url = fx_pub_url;

	/* Someone speaking req/rep to the pub endpoint: the handshake is
	 * refused, the request never answered; the feed goes on. */
	CHECK(nng_req0_open(&req) == 0);
	CHECK(nng_socket_set_ms(req, NNG_OPT_RECVTIMEO, 300) == 0);
	CHECK(nng_socket_set_ms(req, NNG_OPT_SENDTIMEO, 300) == 0);
	CHECK(nng_dial(req, fx_pub_url, NULL, NNG_FLAG_NONBLOCK) == 0);
	CHECK(nng_msg_alloc(&m, 0) == 0);
	CHECK(nng_msg_append(m, "junk", 4) == 0);
	if (nng_sendmsg(req, m, 0) != 0) {
		nng_msg_free(m); /* never connected: the pub refused it */
	} else {
		CHECK(nng_recvmsg(req, &m, 0) == NNG_ETIMEDOUT);
	}
	nng_close(req);

	CHECK_EQ(
	    store_next_position(fx_rt->store), head); /* nothing written */
	n         = 0;
	o.from    = head;
	o.idle_ms = 300;
	commit_n(c, "t1", "after", 1, "ok");
	CHECK_EQ(sl_client_subscribe(c, &o, count_event, &n), SL_ETIMEDOUT);
	CHECK_EQ(n, 1);
}

/*
 * Start argv[0] with stdout to out_path. The child dies with this process
 * (PR_SET_PDEATHSIG), so a test killed by its timeout leaves nothing
 * behind. Only async-signal-safe calls run between fork and exec: this
 * process has threads (the runtime, NNG).
 */
static pid_t
spawn_to_file(const char *const *argv, const char *out_path)
{
	pid_t parent = getpid();
	int   fd
	    = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	pid_t pid;

	CHECK(fd >= 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		dup2(fd, STDOUT_FILENO);
		execv(argv[0], (char *const *) argv);
		_exit(127);
	}
	close(fd);
	return pid;
}

/* Run `sluice --url API ARGS...`; its stdout (malloc'ed) in *out. Returns
 * the exit status. */
static int
run_cli(char **out, const char *const *args)
{
	char        bin[4300], path[4300];
	const char *argv[32] = { bin, "--url", fx_url };
	pid_t       pid;
	int         st, n = 3;
	FILE       *f;
	long        len;

	snprintf(bin, sizeof(bin), "%s/sluice", SL_BUILD_DIR);
	snprintf(path, sizeof(path), "%s/cli.out", tu_tmpdir());
	while (*args != NULL && n < 31)
		argv[n++] = *args++;
	argv[n] = NULL;
	pid     = spawn_to_file(argv, path);
	for (int64_t end = dt_now_ms() + 20000;
	     waitpid(pid, &st, WNOHANG) != pid; dt_sleep_ms(10)) {
		if (dt_now_ms()
		    > end) { /* hangs: fail, leaving nothing behind */
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			fprintf(stderr, "sluice %s did not end\n", argv[3]);
			exit(1);
		}
	}
	CHECK(WIFEXITED(st));
	f = fopen(path, "r");
	CHECK(f != NULL);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	*out = calloc(1, (size_t) len + 1);
	CHECK(*out != NULL);
	CHECK(fread(*out, 1, (size_t) len, f) == (size_t) len);
	fclose(f);
	return WEXITSTATUS(st);
}

/* Count lines and check the n-th line's "key": value in order. */
static void
check_lines(const char *out, const char *key, uint64_t first, size_t n)
{
	size_t      i = 0;
	const char *p = out;
	char        pat[64];

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	for (; *p != '\0'; i++) {
		const char *nl = strchr(p, '\n'), *k = strstr(p, pat);
		CHECK(nl != NULL && k != NULL && k < nl);
		CHECK_EQ(strtoull(k + strlen(pat), NULL, 10), first + i);
		p = nl + 1;
	}
	CHECK_EQ(i, n);
}

/* `sluice subscribe`: the events as JSON lines; bad arguments refused. */
static void
test_cli(sl_client *c)
{
	uint64_t head = store_next_position(fx_rt->store);
	char    *out;

	CHECK_EQ(run_cli(&out,
	             (const char *[]) {
	                 "subscribe", "--from", "2", "--count", "3", NULL }),
	    0);
	check_lines(out, "position", 2, 3);
	free(out);
	CHECK_EQ(
	    run_cli(&out,
	        (const char *[]) { "subscribe", "--tenant", "t1", "--stream",
	            "s1", "--from-revision", "5", "--count", "2", NULL }),
	    0);
	check_lines(out, "revision", 5, 2);
	free(out);
	/* --idle-ms: everything from head - 4, then the end after quiet. */
	char from[32];
	snprintf(from, sizeof(from), "%" PRIu64, head - 4);
	CHECK_EQ(run_cli(&out,
	             (const char *[]) { "subscribe", "--from", from,
	                 "--idle-ms", "300", "--pub-url", fx_pub_url, NULL }),
	    0);
	check_lines(out, "position", head - 4, 4);
	free(out);

	/* Refused: usage (1), error reply (2); nothing printed or written. */
	static const char *const bad[][8] = {
		{ "subscribe", "--tenant", "t1", NULL },
		{ "subscribe", "--from", "x", NULL },
		{ "subscribe", "--count", "0", NULL },
		{ "subscribe", "--from-revision", "1", NULL },
		{ "subscribe", "--tenant", "t1", "--stream", "s1", "--from",
		    "1", NULL },
		{ "subscribe", "extra", NULL },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_EQ(run_cli(&out, (const char *const *) bad[i]), 1);
		CHECK_STREQ(out, "");
		free(out);
	}
	CHECK_EQ(run_cli(&out,
	             (const char *[]) { "subscribe", "--tenant", "nope",
	                 "--stream", "s1", NULL }),
	    2);
	CHECK_STREQ(out, "");
	free(out);
	CHECK_EQ(store_next_position(fx_rt->store), head);
	(void) c;
}

int
main(void)
{
	sl_client *c;

	test_topic();
	start_runtime();
	CHECK_EQ(sl_client_open(fx_url, 5000, &c), SL_OK);
	test_raw_feed(c);
	test_log_subscription(c);
	test_stream_subscription(c);
	test_errors(c);
	test_cli(c);
	sl_client_close(c);
	fx_stop();
	return 0;
}
