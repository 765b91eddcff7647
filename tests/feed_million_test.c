/*
 * The live feed under load, across processes: this process commits
 * 1,000,000 events in batches through the client library while a
 * subscriber process, started late with a tiny receive queue, follows the
 * log from position 0 and must get every event exactly once and in order.
 * A stuck subscriber (a sub socket that never reads) is connected the whole
 * time: it must slow neither the commits nor the other subscriber.
 * Prints the end-to-end rate and the subscriber's gap-fill count.
 */
#include <inttypes.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>

#include <sluice/subscribe.h>

#include "feed_testutil.h"

#define N_EVENTS        1000000ULL
#define BATCH           1000
#define N_STREAMS       64
#define LATE_START      200000ULL /* events committed before the subscriber */
#define PACED_TAIL      100000ULL /* the last events, committed slowly */
#define SUB_RECV_BUF    4         /* messages: drops are certain */
#define SUB_MAX_MS      240000
#define SUB_STALLS      3
#define SUB_STALL_MS    1000
#define SUB_STALL_EVERY 15000

typedef struct sub_result {
	uint64_t           expected; /* the next position to come */
	int64_t            started_ms, done_ms, live_from_ms;
	uint64_t           next_stall; /* live events before the next stall */
	int                n_stalls;
	sl_subscribe_stats st;
	char               error[256];
} sub_result;

static int go_pipe[2];

static int
on_event(void *arg, const sl_read_event *ev)
{
	sub_result        *r = arg;
	unsigned long long n;

	if (ev->position != r->expected) {
		snprintf(r->error, sizeof(r->error),
		    "got position %" PRIu64 ", expected %" PRIu64,
		    ev->position, r->expected);
		return 1;
	}
	if (sscanf(ev->content_json, "{\"n\": %llu}", &n) != 1
	    && sscanf(ev->content_json, "{\"n\":%llu}", &n) != 1) {
		snprintf(r->error, sizeof(r->error),
		    "position %" PRIu64 ": content %s", ev->position,
		    ev->content_json);
		return 1;
	}
	if (n != ev->position || strcmp(ev->tenant, FT_TENANT) != 0) {
		snprintf(r->error, sizeof(r->error),
		    "position %" PRIu64 " carries n=%llu of tenant %s",
		    ev->position, n, ev->tenant);
		return 1;
	}
	if (r->st.from_live > 0 && r->live_from_ms == 0)
		r->live_from_ms = dt_now_ms();
	/* Once live, play a stuck application now and then: the feed goes
	 * on without it, drops what its queues cannot hold, and the gap is
	 * filled by reading. */
	if (r->st.from_live >= r->next_stall && r->n_stalls < SUB_STALLS) {
		dt_sleep_ms(SUB_STALL_MS);
		r->n_stalls++;
		r->next_stall = r->st.from_live + SUB_STALL_EVERY;
	}
	r->expected++;
	if (r->expected == N_EVENTS) {
		r->done_ms = dt_now_ms();
		return 1;
	}
	return 0;
}

/* The subscriber process: forked before this process touches NNG (NNG's
 * threads do not survive a fork), it waits for the go and then follows the
 * log from position 0. */
static int
subscriber_main(void *arg)
{
	sub_result        r;
	sl_subscribe_opts o;
	sl_client        *c;
	char              go, path[4300];
	FILE             *f;
	int               rc;

	(void) arg;
	close(go_pipe[1]);
	if (read(go_pipe[0], &go, 1) != 1)
		return 2;
	memset(&r, 0, sizeof(r));
	memset(&o, 0, sizeof(o));
	r.next_stall = 1;
	r.started_ms = dt_now_ms();
	if (sl_client_open(ft_api_url, 10000, &c) != SL_OK) {
		fprintf(stderr, "subscriber: %s\n", sl_client_open_error());
		return 3;
	}
	o.from = 0;
	/* pub_url NULL: the daemon's status names the feed. */
	o.recv_buf = SUB_RECV_BUF;
	o.idle_ms  = 30000;
	o.stats    = &r.st;
	rc         = sl_client_subscribe(c, &o, on_event, &r);
	if (rc != SL_OK)
		snprintf(r.error, sizeof(r.error), "subscribe: %s: %s",
		    sl_errname(rc), sl_client_last_error(c));
	sl_client_close(c);

	snprintf(path, sizeof(path), "%s/sub-result", tu_tmpdir());
	f = fopen(path, "w");
	if (f == NULL)
		return 4;
	fprintf(f,
	    "%" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
	    " %" PRIu64 " %" PRIu64 " %lld %lld\n%s\n",
	    r.expected, r.st.delivered, r.st.from_live, r.st.from_reads,
	    r.st.gap_fills, r.st.duplicates, r.st.reads,
	    (long long) (r.done_ms - r.started_ms),
	    (long long) (r.live_from_ms ? r.done_ms - r.live_from_ms : -1),
	    r.error);
	fclose(f);
	return r.error[0] == '\0' && r.expected == N_EVENTS ? 0 : 1;
}

typedef enum { BULK, MIXED, PACED } pace;

/*
 * Commit [from, to) with content {"n": position}. BULK: batches of BATCH.
 * MIXED: batches of 1, 10, 100 and 1000 events in turn, so that the
 * subscriber sees single events and bursts far larger than its queue.
 * PACED: batches of 1, 10 and 100 with a pause of 1 ms after each commit,
 * slower than the subscriber reads, so that it catches up and follows the
 * live feed.
 */
static void
commit_range(sl_client *c, uint64_t from, uint64_t to, char (*texts)[32],
    sl_new_event *evs, pace how)
{
	static const size_t mixed[] = { 1, 10, 100, 1000 };
	static const size_t paced[] = { 1, 10, 100, 1 };
	size_t              turn    = 0;
	uint64_t            n;

	for (uint64_t i = from; i < to; i += n) {
		sl_commit_result res;
		char             stream[32];
		int              rc;

		n = how == BULK    ? BATCH
		    : how == MIXED ? mixed[turn++ % 4]
		                   : paced[turn++ % 4];
		if (n > to - i)
			n = to - i;

		for (size_t k = 0; k < n; k++)
			snprintf(texts[k], 32, "{\"n\":%" PRIu64 "}", i + k);
		snprintf(
		    stream, sizeof(stream), "s-%" PRIu64, (i / 7) % N_STREAMS);
		rc = sl_client_commit(c, FT_TENANT, stream, SL_EXPECT_ANY, evs,
		    (size_t) n, &res);
		if (rc != SL_OK)
			FT_FAIL("commit at %" PRIu64 ": %s: %s", i,
			    sl_errname(rc), sl_client_last_error(c));
		if (res.first_position != i)
			FT_FAIL("commit at %" PRIu64 " landed at %" PRIu64, i,
			    res.first_position);
		if (how == PACED)
			dt_sleep_ms(1);
	}
}

int
main(void)
{
	static char         texts[BATCH][32];
	static sl_new_event evs[BATCH];
	sl_client          *c;
	nng_socket          stuck;
	pid_t               sub_pid;
	int                 status;
	int64_t             t0, t_late, t_fast, t_end;
	char                path[4300];

	ft_setup("event_store:\n"
	         "  map_size: 2GiB\n"
	         "  sync: false\n"
	         "limits:\n"
	         "  max_read_events: 1000\n");
	CHECK(pipe2(go_pipe, O_CLOEXEC) == 0); /* not into sluiced */
	sub_pid = ft_fork(subscriber_main, NULL);
	close(go_pipe[0]);

	ft_daemon_start();
	ft_daemon_wait_ready();
	CHECK(sl_client_open(ft_api_url, 30000, &c) == SL_OK);
	for (size_t k = 0; k < BATCH; k++) {
		evs[k].type         = "Counted";
		evs[k].content_json = texts[k];
	}

	/* The stuck subscriber: everything, a queue of one, never read. */
	CHECK(nng_sub0_open(&stuck) == 0);
	CHECK(nng_socket_set_int(stuck, NNG_OPT_RECVBUF, 1) == 0);
	CHECK(nng_socket_set(stuck, NNG_OPT_SUB_SUBSCRIBE, "", 0) == 0);
	CHECK(nng_dial(stuck, ft_pub_url, NULL, 0) == 0);

	t0 = dt_now_ms();
	commit_range(c, 0, LATE_START, texts, evs, BULK);
	t_late = dt_now_ms();
	CHECK(write(go_pipe[1], "g", 1) == 1); /* the subscriber starts */
	close(go_pipe[1]);
	commit_range(c, LATE_START, N_EVENTS - PACED_TAIL, texts, evs, MIXED);
	t_fast = dt_now_ms();
	commit_range(c, N_EVENTS - PACED_TAIL, N_EVENTS, texts, evs, PACED);
	t_end = dt_now_ms();
	fprintf(stderr,
	    "committed %llu events in %lld ms: %.0f/s before the subscriber "
	    "started, %.0f/s while it ran, then %.0f/s paced\n",
	    (unsigned long long) N_EVENTS, (long long) (t_end - t0),
	    LATE_START * 1000.0 / (double) (t_late - t0 + 1),
	    (N_EVENTS - LATE_START - PACED_TAIL) * 1000.0
	        / (double) (t_fast - t_late + 1),
	    PACED_TAIL * 1000.0 / (double) (t_end - t_fast + 1));

	if (!dt_wait_exit(sub_pid, SUB_MAX_MS, &status))
		FT_FAIL(
		    "the subscriber did not finish within %d ms", SUB_MAX_MS);
	ft_forget(sub_pid);

	snprintf(path, sizeof(path), "%s/sub-result", tu_tmpdir());
	FILE *f = fopen(path, "r");
	if (f == NULL)
		FT_FAIL("the subscriber left no result (status 0x%x)", status);
	unsigned long long expected, delivered, live, reads_ev, gaps, dups,
	    reads;
	long long ms, live_ms;
	char      err[300] = "";
	CHECK(fscanf(f, "%llu %llu %llu %llu %llu %llu %llu %lld %lld\n",
	          &expected, &delivered, &live, &reads_ev, &gaps, &dups,
	          &reads, &ms, &live_ms)
	    == 9);
	if (fgets(err, sizeof(err), f) == NULL)
		err[0] = '\0';
	fclose(f);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		FT_FAIL(
		    "the subscriber failed (status 0x%x): %s", status, err);
	CHECK_EQ(expected, N_EVENTS);
	CHECK_EQ(delivered, N_EVENTS);
	CHECK_EQ(live + reads_ev, N_EVENTS);
	fprintf(stderr,
	    "subscriber: %llu events exactly once and in order in %lld ms "
	    "(%.0f events/s end to end); %llu live, %llu read, %llu gap "
	    "fills, %llu duplicates dropped, %llu read requests\n",
	    delivered, ms, delivered * 1000.0 / (double) (ms + 1), live,
	    reads_ev, gaps, dups, reads);

	/* The stuck subscriber still holds a message; nothing waited on it. */
	nng_msg *m;
	CHECK(nng_socket_set_ms(stuck, NNG_OPT_RECVTIMEO, 2000) == 0);
	CHECK(nng_recvmsg(stuck, &m, 0) == 0);
	nng_msg_free(m);
	nng_close(stuck);

	sl_client_close(c);
	ft_daemon_stop();
	return 0;
}
