/*
 * The event log across a close and reopen (positions, stream heads and
 * event contents survive; new commits continue the sequence), store_wait
 * waking on a commit and timing out without one, and scans from the middle
 * of the log and of a stream.
 */
#include <pthread.h>
#include <time.h>

#include <mp.h>

#include "store_testutil.h"

/* A fixed time, generation 2, correlation and causation, public: every
 * field of the event survives the reopen. */
static void
tev_init_full(tev *t, const char *type, const char *content_json)
{
	tev_init(t, type, content_json);
	t->e.generation      = 2;
	t->e.occurred_ns     = 1700000000000000000LL;
	t->e.correlation_id  = "corr";
	t->e.correlation_len = 4;
	t->e.causation_id    = "cause";
	t->e.causation_len   = 5;
	t->e.is_public       = true;
}

#define N_EV 6
static tev         tevs[N_EV];
static ev_new      evs[N_EV];
static const char *contents[N_EV] = {
	"{\"n\":0}",
	"{\"n\":1,\"nested\":{\"a\":[1,2,{\"b\":\"c\"}]}}",
	"{\"n\":2,\"f\":2.5}",
	"{\"n\":3,\"s\":\"\\u00fcber\"}",
	"{\"n\":4,\"neg\":-7}",
	"{\"n\":5,\"t\":true,\"z\":null}",
};

static void
commit(store *s, const char *stream, size_t first, size_t n)
{
	store_commit c;

	tev_commit_init(&c, "ten", stream, strlen(stream), STORE_EXPECT_ANY,
	    &evs[first], n);
	CHECK_EQ(store_commit_wait(s, &c), SL_OK);
}

/* What a scan saw: position, stream, revision, index of the content. */
typedef struct seen {
	uint64_t position;
	char     stream[32];
	uint64_t revision;
	int      n;
} seen;

typedef struct collect {
	seen         items[64];
	size_t       count;
	int          stop_after; /* return 7 after this many; 0 = never */
	msgpack_zone zone;
} collect;

static int
collect_cb(void *arg, uint64_t position, const void *data, size_t len)
{
	collect              *col = arg;
	ev_view               v;
	seen                 *it;
	char                 *json;
	const msgpack_object *n;
	int                   idx;

	msgpack_zone_clear(&col->zone);
	CHECK_EQ(ev_decode(data, len, position, &col->zone, &v), SL_OK);
	CHECK(col->count < 64);
	n = mp_get(&v.content, "n");
	CHECK(n != NULL && n->type == MSGPACK_OBJECT_POSITIVE_INTEGER);
	idx = (int) n->via.u64;
	/* Every field came back as written. */
	CHECK_STREQ(v.tenant, "ten");
	CHECK_STREQ(v.type, "Thing");
	CHECK_EQ(v.generation, 2);
	CHECK_EQ(v.occurred_ns, 1700000000000000000LL);
	CHECK_STREQ(v.correlation_id, "corr");
	CHECK_STREQ(v.causation_id, "cause");
	CHECK(v.is_public);
	CHECK(memcmp(v.id, evs[idx].id, 16) == 0);
	json = mp_to_json_text(&v.content);
	{
		char *want = mp_to_json_text(evs[idx].content);

		CHECK_STREQ(json, want);
		free(want);
	}
	free(json);

	it           = &col->items[col->count++];
	it->position = position;
	it->revision = v.revision;
	it->n        = idx;
	snprintf(it->stream, sizeof(it->stream), "%s", v.stream);
	if (col->stop_after > 0 && (int) col->count == col->stop_after)
		return 7;
	return 0;
}

static void
collect_init(collect *col)
{
	memset(col, 0, sizeof(*col));
	CHECK(msgpack_zone_init(&col->zone, 1024));
}

/* The log as written below: (stream, revision, content index). */
static const struct {
	const char *stream;
	uint64_t    revision;
	int         n;
} expect[] = {
	{ "a", 0, 0 }, { "a", 1, 1 }, { "b", 0, 2 }, { "a", 2, 3 },
	{ "a", 3, 4 }, { "c", 0, 5 },
	{ "b", 1, 0 }, /* written after the reopen */
};

/* The log holds total events; the first n are expect[0..n). */
static void
check_log(store *s, size_t n, size_t total)
{
	collect  col;
	uint64_t next;

	collect_init(&col);
	CHECK_EQ(store_scan(s, 0, 1000, collect_cb, &col, &next), SL_OK);
	CHECK_EQ(col.count, total);
	CHECK_EQ(next, total);
	for (size_t i = 0; i < n; i++) {
		CHECK_EQ(col.items[i].position, i);
		CHECK_STREQ(col.items[i].stream, expect[i].stream);
		CHECK_EQ(col.items[i].revision, expect[i].revision);
		CHECK_EQ(col.items[i].n, expect[i].n);
	}
	msgpack_zone_destroy(&col.zone);
}

static void
check_head(store *s, const char *stream, uint64_t want)
{
	uint64_t nr;

	CHECK_EQ(store_stream_next_revision(s, "ten", stream, &nr), SL_OK);
	CHECK_EQ(nr, want);
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct waiter {
	store   *s;
	uint64_t known;
	int      timeout_ms;
	uint64_t got;
	int64_t  took_ms;
} waiter;

static void *
waiter_main(void *arg)
{
	waiter *w  = arg;
	int64_t t0 = now_ms();

	w->got     = store_wait(w->s, w->known, w->timeout_ms);
	w->took_ms = now_ms() - t0;
	return NULL;
}

static void
test_wait(store *s)
{
	pthread_t th;
	waiter    w;
	uint64_t  pos = store_next_position(s);
	int64_t   t0;

	/* Already past: returns at once. */
	CHECK_EQ(store_wait(s, pos - 1, 5000), pos);

	/* No commit: times out after about the timeout. */
	t0 = now_ms();
	CHECK_EQ(store_wait(s, pos, 100), pos);
	CHECK(now_ms() - t0 >= 90);
	CHECK(now_ms() - t0 < 3000);

	/* A commit wakes a waiter long before its timeout. */
	w = (waiter) { s, pos, 10000, 0, 0 };
	CHECK(pthread_create(&th, NULL, waiter_main, &w) == 0);
	usleep(50 * 1000);
	commit(s, "d", 0, 1);
	CHECK(pthread_join(th, NULL) == 0);
	CHECK_EQ(w.got, pos + 1);
	CHECK(w.took_ms < 5000);

	/* store_wake_all wakes a waiter that waits forever. */
	w = (waiter) { s, pos + 1, -1, 0, 0 };
	CHECK(pthread_create(&th, NULL, waiter_main, &w) == 0);
	usleep(50 * 1000);
	store_wake_all(s);
	CHECK(pthread_join(th, NULL) == 0);
	CHECK_EQ(w.got, pos + 1);
}

static void
test_scans(store *s)
{
	collect  col;
	uint64_t next;
	int      rc;

	/* from the middle of the log */
	collect_init(&col);
	CHECK_EQ(store_scan(s, 3, 1000, collect_cb, &col, &next), SL_OK);
	CHECK_EQ(col.count, 4);
	CHECK_EQ(col.items[0].position, 3);
	CHECK_EQ(col.items[0].n, expect[3].n);
	CHECK_EQ(next, 7);

	/* at most max events */
	col.count = 0;
	CHECK_EQ(store_scan(s, 1, 2, collect_cb, &col, &next), SL_OK);
	CHECK_EQ(col.count, 2);
	CHECK_EQ(col.items[1].position, 2);
	CHECK_EQ(next, 3);

	/* the callback stops the scan with its own value */
	col.count      = 0;
	col.stop_after = 1;
	rc             = store_scan(s, 4, 100, collect_cb, &col, &next);
	CHECK_EQ(rc, 7);
	CHECK_EQ(col.count, 1);
	CHECK_EQ(next, 5);
	col.stop_after = 0;

	/* past the end: nothing, next stays */
	col.count = 0;
	CHECK_EQ(store_scan(s, 50, 100, collect_cb, &col, &next), SL_OK);
	CHECK_EQ(col.count, 0);
	CHECK_EQ(next, 50);

	/* stream "a" from revision 2: revisions 2, 3 at positions 3, 4 */
	col.count = 0;
	CHECK_EQ(
	    store_scan_stream(s, "ten", "a", 2, 100, collect_cb, &col), SL_OK);
	CHECK_EQ(col.count, 2);
	CHECK_EQ(col.items[0].revision, 2);
	CHECK_EQ(col.items[0].position, 3);
	CHECK_EQ(col.items[1].revision, 3);
	CHECK_EQ(col.items[1].position, 4);

	/* max applies to stream scans too */
	col.count = 0;
	CHECK_EQ(
	    store_scan_stream(s, "ten", "a", 0, 3, collect_cb, &col), SL_OK);
	CHECK_EQ(col.count, 3);

	/* the whole of stream "b", across the reopen */
	col.count = 0;
	CHECK_EQ(
	    store_scan_stream(s, "ten", "b", 0, 100, collect_cb, &col), SL_OK);
	CHECK_EQ(col.count, 2);
	CHECK_EQ(col.items[1].position, 6);

	/* unknown stream or tenant: no calls */
	col.count = 0;
	CHECK_EQ(store_scan_stream(s, "ten", "nope", 0, 100, collect_cb, &col),
	    SL_OK);
	CHECK_EQ(store_scan_stream(s, "other", "a", 0, 100, collect_cb, &col),
	    SL_OK);
	CHECK_EQ(col.count, 0);
	msgpack_zone_destroy(&col.zone);
}

int
main(void)
{
	char   path[4200];
	store *s;

	for (int i = 0; i < N_EV; i++) {
		tev_init_full(&tevs[i], "Thing", contents[i]);
		evs[i] = tevs[i].e;
	}
	snprintf(path, sizeof(path), "%s/log", tu_tmpdir());

	CHECK_EQ(store_open(path, 16u << 20, true, &s), SL_OK);
	commit(s, "a", 0, 2);
	commit(s, "b", 2, 1);
	commit(s, "a", 3, 2);
	commit(s, "c", 5, 1);
	check_log(s, 6, 6);
	store_close(s);

	CHECK_EQ(store_open(path, 16u << 20, true, &s), SL_OK);
	CHECK_EQ(store_next_position(s), 6);
	check_head(s, "a", 4);
	check_head(s, "b", 1);
	check_head(s, "c", 1);
	check_head(s, "d", 0);
	check_log(s, 6, 6);
	/* new commits continue the sequence and the stream */
	commit(s, "b", 0, 1);
	CHECK_EQ(store_next_position(s), 7);
	check_head(s, "b", 2);
	check_log(s, 7, 7);
	test_scans(s);
	/* "bb" shares a prefix with "b" but is another stream */
	commit(s, "bb", 1, 1);
	check_head(s, "bb", 1);
	check_head(s, "b", 2);
	{
		collect col;

		collect_init(&col);
		CHECK_EQ(
		    store_scan_stream(s, "ten", "b", 0, 100, collect_cb, &col),
		    SL_OK);
		CHECK_EQ(col.count, 2);
		msgpack_zone_destroy(&col.zone);
	}
	test_wait(s);
	store_close(s);

	/* reopened once more, everything from both sessions is there */
	CHECK_EQ(store_open(path, 16u << 20, false, &s), SL_OK);
	CHECK_EQ(store_next_position(s), 9);
	check_log(s, 7, 9);
	check_head(s, "bb", 1);
	check_head(s, "d", 1);
	store_close(s);

	for (int i = 0; i < N_EV; i++)
		tev_free(&tevs[i]);
	return 0;
}
