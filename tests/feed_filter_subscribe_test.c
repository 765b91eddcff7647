/*
 * sl_client_subscribe on a filter's stream (opts.filter, opts.partition):
 * the account_filters plugin's "customer events" (partitioned by customer)
 * on a real runtime. Subscriptions start after some events exist, with a
 * tiny receive queue and a slow callback (the feed drops), while a
 * committer adds a few thousand events and the runtime is restarted in the
 * middle (fx_stop, fx_start_yaml on the same dir):
 *   - the whole stream from 0 and one partition from 0 each get exactly the
 *     entries read_filter returns, in order, once, with their stream
 *     positions (sl_subscribe_filter_event, and "stream_position" in json);
 *   - a reset of the filter (a new generation) ends a whole-stream
 *     subscription with SL_ECLOSED and its documented message, while the
 *     partition subscription goes on without a duplicate;
 *   - malformed options are refused clearly: filter without tenant,
 *     partition without filter, filter with stream, empty partition, a
 *     partition of an unpartitioned filter, an unknown filter.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <sluice/client.h>
#include <sluice/subscribe.h>

#include "api_fixture.h"
#include "daemon_testutil.h"

#define CUSTOMER_EVENTS "a468a0ac-3f00-4a28-ac0e-e4a0e8400cb3"
#define T_EVENTS        "67e19a59-fde4-445e-9080-d11446024b91"
#define N_CUSTOMERS     4
#define N_BEFORE        400  /* committed before the subscriptions start */
#define N_PHASE         1200 /* committed before and after the restart */
#define N_AFTER_RESET   200
#define N_TOTAL         (N_BEFORE + 2 * N_PHASE + N_AFTER_RESET)
#define PARTITION       "cust-2"

static char yaml[8192];
static int  committed; /* events committed so far (main thread) */
/* Open while the runtime runs: NNG 1.5.2 can hang in nng_close when
 * sockets close at once (nanomsg/nng#1543), so the committer's socket
 * closes apart from the subscriptions'. */
static sl_client *committer;

static void
start(void)
{
	fx_start_yaml(yaml);
	CHECK_EQ(sl_client_open(fx_url, 10000, &committer), SL_OK);
}

static void
stop(void)
{
	sl_client_close(committer);
	committer = NULL;
	fx_stop();
}

/* Commit n events (batches of 10, pace_ms apart), customers round
 * robin. */
static void
commit_events(int n, int pace_ms)
{
	sl_client *cl = committer;
	while (n > 0) {
		sl_new_event ev[10];
		char         json[10][160], stream[32];
		int          k = n < 10 ? n : 10;
		memset(ev, 0, sizeof(ev));
		snprintf(stream, sizeof(stream), "acc-%d", committed % 13);
		for (int i = 0; i < k; i++) {
			int x = committed + i;
			snprintf(json[i], sizeof(json[i]),
			    "{\"customer_id\":\"cust-%d\",\"account_id\":"
			    "\"%s\",\"amount\":%d}",
			    x % N_CUSTOMERS, stream, x);
			ev[i].type         = "DebitPerformed";
			ev[i].content_json = json[i];
		}
		sl_commit_result res;
		CHECK_EQ(sl_client_commit(cl, FX_TENANT, stream, SL_EXPECT_ANY,
		             ev, k, &res),
		    SL_OK);
		committed += k;
		n -= k;
		if (pace_ms > 0)
			dt_sleep_ms(pace_ms);
	}
}

/* Events of the partition among the first n committed. */
static size_t
partition_count(int n)
{
	size_t c = 0;
	for (int x = 0; x < n; x++)
		c += x % N_CUSTOMERS == 2;
	return c;
}

/* read_filter from 0 to the end: log positions in stream order. */
static size_t
read_all(sl_client *cl, const char *partition, uint64_t *pos, size_t cap,
    uint64_t *gen)
{
	size_t   n    = 0;
	uint64_t from = 0;
	for (;;) {
		sl_filter_page pg;
		CHECK_EQ(sl_client_read_filter(cl, FX_TENANT, CUSTOMER_EVENTS,
		             partition, from, 0, &pg),
		    SL_OK);
		for (size_t i = 0; i < pg.n_events; i++) {
			CHECK(n < cap);
			CHECK_EQ(pg.events[i].stream_position, from + i);
			pos[n++] = pg.events[i].event.position;
		}
		if (gen != NULL)
			*gen = pg.generation;
		from      = pg.next;
		bool more = pg.more;
		sl_filter_page_free(&pg);
		if (!more)
			return n;
	}
}

/* Wait until the filter's stream (generation >= min_gen) holds want
 * entries. */
static void
wait_stream(size_t want, uint64_t min_gen)
{
	static uint64_t pos[N_TOTAL + 16];
	sl_client      *cl;
	CHECK_EQ(sl_client_open(fx_url, 10000, &cl), SL_OK);
	for (int64_t end = dt_now_ms() + 60000;; dt_sleep_ms(20)) {
		uint64_t gen = 0;
		size_t   n   = read_all(cl, NULL, pos, N_TOTAL + 16, &gen);
		if (n == want && gen >= min_gen)
			break;
		if (dt_now_ms() > end) {
			fprintf(stderr,
			    "stream has %zu of %zu (gen %" PRIu64 ")\n", n,
			    want, gen);
			exit(1);
		}
	}
	sl_client_close(cl);
}

/* One subscription in a thread. */
typedef struct follower {
	const char        *name;
	sl_subscribe_opts  o;
	sl_subscribe_stats st;
	_Atomic size_t     target; /* stop after this many; 0: never */
	uint64_t           pos[N_TOTAL + 16];  /* log positions delivered */
	uint64_t           spos[N_TOTAL + 16]; /* their stream positions */
	_Atomic size_t     n;
	int                slow_us; /* pause in the callback */
	int                rc;
	char               err[512];
	pthread_t          thr;
} follower;

static int
on_event(void *arg, const sl_read_event *ev)
{
	follower              *f  = arg;
	const sl_filter_event *fe = sl_subscribe_filter_event(ev);
	size_t                 n  = atomic_load(&f->n);
	char                   want[64];

	CHECK(n < N_TOTAL + 16);
	CHECK(fe->partition != NULL);
	if (f->o.partition != NULL)
		CHECK_STREQ(fe->partition, f->o.partition);
	/* the json is the event as read_filter gives it: its position in
	 * what is followed, no partition_position */
	snprintf(want, sizeof(want), "\"stream_position\":%" PRIu64 ",",
	    fe->stream_position);
	if (strstr(ev->json, want) == NULL
	    || strstr(ev->json, "partition_position") != NULL) {
		fprintf(stderr, "%s: event %zu: %s lacks %s\n", f->name, n,
		    ev->json, want);
		exit(1);
	}
	f->pos[n]  = ev->position;
	f->spos[n] = fe->stream_position;
	atomic_store(&f->n, n + 1);
	if (f->slow_us > 0 && n % 4 == 0)
		dt_sleep_ms(f->slow_us * 4 / 1000);
	size_t t = atomic_load(&f->target);
	return t != 0 && n + 1 >= t;
}

static void *
follow_main(void *arg)
{
	follower  *f = arg;
	sl_client *cl;
	CHECK_EQ(sl_client_open(fx_url, 5000, &cl), SL_OK);
	f->o.stats = &f->st;
	f->rc      = sl_client_subscribe(cl, &f->o, on_event, f);
	snprintf(f->err, sizeof(f->err), "%s", sl_client_last_error(cl));
	sl_client_close(cl);
	return NULL;
}

static void
follow_start(follower *f, const char *name, const char *filter,
    const char *partition, size_t target, int slow_us)
{
	memset(f, 0, sizeof(*f));
	f->name        = name;
	f->o.tenant    = FX_TENANT;
	f->o.filter    = filter;
	f->o.partition = partition;
	f->o.from      = 0;
	f->o.pub_url   = fx_pub_url;
	f->o.recv_buf  = 2;
	f->o.idle_ms   = 60000;
	f->slow_us     = slow_us;
	atomic_store(&f->target, target);
	CHECK(pthread_create(&f->thr, NULL, follow_main, f) == 0);
}

static void
follow_join(follower *f)
{
	CHECK(pthread_join(f->thr, NULL) == 0);
	printf("%s: %s (%s), %zu delivered: %" PRIu64 " live, %" PRIu64
	       " read, %" PRIu64 " gap fills, %" PRIu64 " duplicates, %" PRIu64
	       " reads, %" PRIu64 " retries\n",
	    f->name, sl_errname(f->rc), f->err, atomic_load(&f->n),
	    f->st.from_live, f->st.from_reads, f->st.gap_fills,
	    f->st.duplicates, f->st.reads, f->st.retries);
}

/* What f delivered is exactly read_filter's stream (or partition). */
static void
check_equal(follower *f, const char *partition, size_t want)
{
	static uint64_t rd[N_TOTAL + 16];
	sl_client      *cl;
	CHECK_EQ(sl_client_open(fx_url, 10000, &cl), SL_OK);
	size_t n = read_all(cl, partition, rd, N_TOTAL + 16, NULL);
	sl_client_close(cl);
	CHECK_EQ(n, want);
	CHECK_EQ(atomic_load(&f->n), want);
	for (size_t i = 0; i < n; i++) {
		if (f->pos[i] != rd[i] || f->spos[i] != i) {
			fprintf(stderr,
			    "%s: event %zu: position %" PRIu64
			    " stream position %" PRIu64
			    ", read_filter has %" PRIu64 "\n",
			    f->name, i, f->pos[i], f->spos[i], rd[i]);
			exit(1);
		}
	}
}

static int
nop(void *arg, const sl_read_event *ev)
{
	(void) arg;
	(void) ev;
	return 1;
}

/* A subscription with these options fails with code, its message
 * containing what. */
static void
refused(sl_client *cl, const char *tenant, const char *stream,
    const char *filter, const char *partition, int code, const char *what)
{
	sl_subscribe_opts o;
	memset(&o, 0, sizeof(o));
	o.tenant        = tenant;
	o.stream        = stream;
	o.filter        = filter;
	o.partition     = partition;
	o.pub_url       = fx_pub_url;
	o.idle_ms       = 10000;
	o.retry_ms      = 5000;
	int         rc  = sl_client_subscribe(cl, &o, nop, NULL);
	const char *msg = sl_client_last_error(cl);
	if (rc != code || strstr(msg, what) == NULL) {
		fprintf(stderr,
		    "refused(%s, %s, %s, %s): %s '%s', want %s '...%s...'\n",
		    tenant, stream, filter, partition, sl_errname(rc), msg,
		    sl_errname(code), what);
		exit(1);
	}
	printf("refused: %s: %s\n", sl_errname(rc), msg);
}

int
main(void)
{
	char dir[4300], src[4400], dst[4400];

	/* account_filters and the unpartitioned test filter */
	snprintf(dir, sizeof(dir), "%s/plugins", tu_tmpdir());
	CHECK(mkdir(dir, 0755) == 0);
	snprintf(src, sizeof(src), "%s/account_filters.so", SL_PLUGIN_DIR);
	snprintf(dst, sizeof(dst), "%s/account_filters.so", dir);
	dt_install(src, NULL, dst);
	snprintf(src, sizeof(src), "%s/filter_unpartitioned.so",
	    SL_TEST_PLUGIN_DIR);
	snprintf(dst, sizeof(dst), "%s/filter_unpartitioned.so", dir);
	dt_install(src, NULL, dst);
	snprintf(yaml, sizeof(yaml),
	    "plugin_dir: plugins\n"
	    "hot_reload: false\n"
	    "tenants: [{id: " FX_TENANT "}]\n"
	    "limits: {max_read_events: 50}\n");
	start();

	/* malformed options */
	sl_client *cl;
	CHECK_EQ(sl_client_open(fx_url, 5000, &cl), SL_OK);
	refused(cl, NULL, NULL, CUSTOMER_EVENTS, NULL, SL_EINVAL,
	    "needs its tenant");
	refused(cl, FX_TENANT, NULL, NULL, PARTITION, SL_EINVAL,
	    "partition needs its filter");
	refused(cl, NULL, NULL, NULL, PARTITION, SL_EINVAL,
	    "partition needs its filter");
	refused(cl, FX_TENANT, "acc-1", CUSTOMER_EVENTS, NULL, SL_EINVAL,
	    "exclude each other");
	refused(cl, FX_TENANT, NULL, CUSTOMER_EVENTS, "", SL_EINVAL,
	    "partition must be");
	refused(
	    cl, FX_TENANT, NULL, T_EVENTS, "x", SL_EINVAL, "unpartitioned");
	refused(cl, FX_TENANT, NULL, "t_events", "x", SL_EINVAL,
	    "filter 't_events' is unpartitioned: it has no partition");
	refused(cl, FX_TENANT, NULL, "no such filter", NULL, SL_ENOTFOUND, "");
	sl_client_close(cl);

	/* some history first */
	commit_events(N_BEFORE, 0);
	wait_stream(N_BEFORE, 1);

	static follower whole, part, whole2;
	size_t          want_whole = N_BEFORE + 2 * N_PHASE;
	size_t          want_part  = partition_count(N_TOTAL);
	follow_start(&whole, "whole", CUSTOMER_EVENTS, NULL, want_whole, 1000);
	/* by name: the subscription looks up the id for the feed's topic */
	follow_start(
	    &part, "partition", "customer events", PARTITION, want_part, 1000);

	commit_events(N_PHASE, 15);
	dt_sleep_ms(300);
	stop();            /* the daemon restarts under the subscriptions */
	dt_sleep_ms(1500); /* longer than a silence (the feed is redialled) */
	start();
	commit_events(N_PHASE, 15);

	follow_join(&whole);
	CHECK_EQ(whole.rc, SL_OK);
	check_equal(&whole, NULL, want_whole);
	CHECK(whole.st.gap_fills > 0); /* the restart, at least */

	/* a second whole-stream subscription, then the filter is reset: it
	 * ends rather than mix two generations' orders */
	follow_start(&whole2, "whole2", CUSTOMER_EVENTS, NULL, 0, 0);
	for (int64_t end = dt_now_ms() + 60000;
	     atomic_load(&whole2.n) < want_whole; dt_sleep_ms(10))
		CHECK(dt_now_ms() < end);
	CHECK_EQ(sl_client_open(fx_url, 5000, &cl), SL_OK);
	size_t nproc = 0;
	CHECK_EQ(
	    sl_client_command(cl, "reset", CUSTOMER_EVENTS, FX_TENANT, &nproc),
	    SL_OK);
	CHECK(nproc > 0);
	sl_client_close(cl);
	wait_stream(want_whole, 2);
	commit_events(N_AFTER_RESET, 15);
	wait_stream(N_TOTAL, 2);

	follow_join(&whole2);
	CHECK_EQ(whole2.rc, SL_ECLOSED);
	CHECK(
	    strstr(whole2.err, "the filter's stream was rebuilt (generation ")
	    != NULL);
	CHECK(strstr(whole2.err, "): subscribe again from 0") != NULL);
	CHECK(atomic_load(&whole2.n) >= want_whole);
	for (size_t i = 0; i < want_whole; i++)
		CHECK_EQ(whole2.pos[i], whole.pos[i]);

	/* the partition went on through the new generation, once each */
	follow_join(&part);
	CHECK_EQ(part.rc, SL_OK);
	check_equal(&part, PARTITION, want_part);
	for (size_t i = 1; i < want_part; i++)
		CHECK(part.pos[i] > part.pos[i - 1]);

	/* a whole-stream subscription of the new generation from 0 */
	static follower whole3;
	follow_start(&whole3, "whole3", CUSTOMER_EVENTS, NULL, N_TOTAL, 0);
	follow_join(&whole3);
	CHECK_EQ(whole3.rc, SL_OK);
	check_equal(&whole3, NULL, N_TOTAL);

	stop();
	printf("feed_filter_subscribe_test: ok (%zu whole, %zu %s)\n",
	    want_whole, want_part, PARTITION);
	return 0;
}
