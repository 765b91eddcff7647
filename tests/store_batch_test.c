/*
 * Group commit in the event log: a commit's events are atomic and
 * consecutive; concurrent committers get gap-free positions and contiguous
 * stream revisions in fewer write transactions than commits; a commit
 * refused inside a group (wrong revision, map full) leaves the others of
 * the group committed and itself leaves no trace.
 */
#include <inttypes.h>
#include <pthread.h>

#include "store_testutil.h"

#define N_THREADS 8
#define N_COMMITS 200 /* per thread */
#define BURST     10  /* commits a thread has in flight at once */
#define N_STREAMS 3   /* per thread, plus one shared stream */

static ev_new evs[5];

static void
commit_init(store_commit *c, const char *tenant, const char *stream,
    uint64_t expected, size_t n)
{
	tev_commit_init(c, tenant, stream, strlen(stream), expected, evs, n);
}

/* ---- scanning back what was written ---- */

typedef struct seen {
	char     stream[64];
	uint64_t revision;
	uint64_t position;
} seen;

typedef struct collect {
	seen        *items;
	size_t       n, cap;
	msgpack_zone zone;
} collect;

static int
collect_cb(void *arg, uint64_t position, const void *data, size_t len)
{
	collect *col = arg;
	ev_view  v;

	msgpack_zone_clear(&col->zone);
	CHECK_EQ(ev_decode(data, len, position, &col->zone, &v), SL_OK);
	if (col->n == col->cap) {
		col->cap   = col->cap ? col->cap * 2 : 64;
		col->items = realloc(col->items, col->cap * sizeof(seen));
		CHECK(col->items != NULL);
	}
	snprintf(col->items[col->n].stream, sizeof(col->items[0].stream), "%s",
	    v.stream);
	col->items[col->n].revision = v.revision;
	col->items[col->n].position = position;
	col->n++;
	return 0;
}

static void
collect_init(collect *col)
{
	memset(col, 0, sizeof(*col));
	CHECK(msgpack_zone_init(&col->zone, 4096));
}

static void
collect_free(collect *col)
{
	msgpack_zone_destroy(&col->zone);
	free(col->items);
}

/* ---- 1. one commit is one consecutive, atomic batch ---- */

static void
test_batch(store *s)
{
	store_commit c;
	collect      col;
	uint64_t     start = store_next_position(s), next;

	commit_init(&c, "t", "batch-1", STORE_EXPECT_NO_STREAM, 5);
	CHECK_EQ(store_commit_wait(s, &c), SL_OK);
	CHECK_EQ(c.first_position, start);
	CHECK_EQ(c.first_revision, 0);
	CHECK_EQ(store_next_position(s), start + 5);

	collect_init(&col);
	CHECK_EQ(store_scan(s, start, 100, collect_cb, &col, &next), SL_OK);
	CHECK_EQ(next, start + 5);
	CHECK_EQ(col.n, 5);
	for (size_t i = 0; i < 5; i++) {
		CHECK_EQ(col.items[i].position, start + i);
		CHECK_EQ(col.items[i].revision, i);
		CHECK_STREQ(col.items[i].stream, "batch-1");
	}
	collect_free(&col);
}

/* ---- 2. concurrent committers ---- */

typedef struct burst {
	pthread_mutex_t mu;
	pthread_cond_t  cv;
	int             pending;
	int             failed;
} burst;

static void
burst_done(store_commit *c, void *arg)
{
	burst *b = arg;

	pthread_mutex_lock(&b->mu);
	if (c->rc != SL_OK) {
		fprintf(stderr, "commit to %.*s failed: %d %s\n",
		    (int) c->stream_len, c->stream, c->rc, c->message);
		b->failed++;
	}
	b->pending--;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

typedef struct worker {
	store   *s;
	int      id;
	char     streams[N_STREAMS][32];
	uint64_t next_rev[N_STREAMS]; /* this thread owns these streams */
	uint64_t events;
	int      failed;
} worker;

/*
 * Each thread keeps BURST commits in flight: commits to its own streams
 * carry the exact expected revision (the queue is FIFO, so it can be
 * computed ahead), commits to the shared stream expect any revision.
 */
static void *
worker_main(void *arg)
{
	worker      *w = arg;
	store_commit cs[BURST];
	burst        b;

	pthread_mutex_init(&b.mu, NULL);
	pthread_cond_init(&b.cv, NULL);
	b.failed = 0;
	for (int k = 0; k < N_COMMITS; k += BURST) {
		b.pending = BURST;
		for (int j = 0; j < BURST; j++) {
			int    i = k + j;
			size_t n = 1 + (size_t) (i % 3);

			if (i % 4 == 3) {
				commit_init(&cs[j], "t", "shared",
				    STORE_EXPECT_ANY, n);
			} else {
				int      sidx = i % N_STREAMS;
				uint64_t exp  = w->next_rev[sidx] == 0
				     ? STORE_EXPECT_NO_STREAM
				     : w->next_rev[sidx] - 1;

				commit_init(
				    &cs[j], "t", w->streams[sidx], exp, n);
				w->next_rev[sidx] += n;
			}
			cs[j].done = burst_done;
			cs[j].arg  = &b;
			w->events += n;
			CHECK_EQ(store_submit(w->s, &cs[j]), SL_OK);
		}
		pthread_mutex_lock(&b.mu);
		while (b.pending > 0)
			pthread_cond_wait(&b.cv, &b.mu);
		pthread_mutex_unlock(&b.mu);
	}
	w->failed = b.failed;
	pthread_cond_destroy(&b.cv);
	pthread_mutex_destroy(&b.mu);
	return NULL;
}

typedef struct head {
	char     stream[64];
	uint64_t next;
} head;

static void
test_concurrent(store *s)
{
	pthread_t th[N_THREADS];
	worker    w[N_THREADS];
	uint64_t  start = store_next_position(s);
	uint64_t  txn0 = store_txn_count(s), total = 0, txns, next;
	head      heads[N_THREADS * N_STREAMS + 2];
	size_t    n_heads = 0;
	collect   col;

	memset(w, 0, sizeof(w));
	for (int i = 0; i < N_THREADS; i++) {
		w[i].s  = s;
		w[i].id = i;
		for (int j = 0; j < N_STREAMS; j++)
			snprintf(w[i].streams[j], sizeof(w[i].streams[j]),
			    "w%d-s%d", i, j);
		CHECK(pthread_create(&th[i], NULL, worker_main, &w[i]) == 0);
	}
	for (int i = 0; i < N_THREADS; i++) {
		CHECK(pthread_join(th[i], NULL) == 0);
		CHECK_EQ(w[i].failed, 0);
		total += w[i].events;
	}
	txns = store_txn_count(s) - txn0;
	printf("concurrent: %d commits, %" PRIu64 " events, %" PRIu64
	       " write transactions\n",
	    N_THREADS * N_COMMITS, total, txns);
	/* Grouping happened: fewer transactions than commits. */
	CHECK(txns < (uint64_t) N_THREADS * N_COMMITS);
	CHECK(txns > 0);
	CHECK_EQ(store_next_position(s), start + total);

	/* Every position from start on is present, in order, once. */
	collect_init(&col);
	CHECK_EQ(
	    store_scan(s, start, SIZE_MAX, collect_cb, &col, &next), SL_OK);
	CHECK_EQ(col.n, total);
	CHECK_EQ(next, start + total);
	for (size_t i = 0; i < col.n; i++) {
		size_t h;

		CHECK_EQ(col.items[i].position, start + i);
		/* Each stream's revisions come in order with no gap. */
		for (h = 0; h < n_heads; h++)
			if (strcmp(heads[h].stream, col.items[i].stream) == 0)
				break;
		if (h == n_heads) {
			CHECK(n_heads < sizeof(heads) / sizeof(heads[0]));
			snprintf(heads[h].stream, sizeof(heads[h].stream),
			    "%s", col.items[i].stream);
			heads[h].next = 0;
			n_heads++;
		}
		CHECK_EQ(col.items[i].revision, heads[h].next);
		heads[h].next++;
	}
	CHECK_EQ(n_heads, N_THREADS * N_STREAMS + 1);
	for (int i = 0; i < N_THREADS; i++)
		for (int j = 0; j < N_STREAMS; j++) {
			uint64_t nr;

			CHECK_EQ(store_stream_next_revision(
			             s, "t", w[i].streams[j], &nr),
			    SL_OK);
			CHECK_EQ(nr, w[i].next_rev[j]);
		}
	collect_free(&col);
}

/* ---- 3. a refused commit inside a group ---- */

/* The gate (store_testutil.h) holds the writer in the first commit's
 * done() until the group behind it is queued. */
static void
gate_count(store_commit *c, void *arg)
{
	gate *g = arg;

	(void) c;
	pthread_mutex_lock(&g->mu);
	g->finished++;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

/* Queue cs[1..n) behind cs[0] as one group; wait for all. */
static void
run_group(store *s, store_commit *cs, int n)
{
	gate g;

	memset(&g, 0, sizeof(g));
	pthread_mutex_init(&g.mu, NULL);
	pthread_cond_init(&g.cv, NULL);
	cs[0].done = gate_hold;
	cs[0].arg  = &g;
	CHECK_EQ(store_submit(s, &cs[0]), SL_OK);
	pthread_mutex_lock(&g.mu);
	while (!g.in_done)
		pthread_cond_wait(&g.cv, &g.mu);
	pthread_mutex_unlock(&g.mu);
	for (int i = 1; i < n; i++) {
		cs[i].done = gate_count;
		cs[i].arg  = &g;
		CHECK_EQ(store_submit(s, &cs[i]), SL_OK);
	}
	pthread_mutex_lock(&g.mu);
	g.released = true;
	pthread_cond_broadcast(&g.cv);
	while (g.finished < n)
		pthread_cond_wait(&g.cv, &g.mu);
	pthread_mutex_unlock(&g.mu);
	pthread_cond_destroy(&g.cv);
	pthread_mutex_destroy(&g.mu);
}

static int
count_cb(void *arg, uint64_t position, const void *data, size_t len)
{
	(void) position;
	(void) data;
	(void) len;
	(*(int *) arg)++;
	return 0;
}

static void
test_refused_in_group(store *s)
{
	store_commit cs[5];
	uint64_t     txn0, pos, nr;
	int          n = 0;

	commit_init(&cs[0], "t", "gate", STORE_EXPECT_ANY, 1);
	commit_init(&cs[1], "t", "g-x", STORE_EXPECT_NO_STREAM, 1);
	/* sees cs[1]'s event in the same transaction: refused */
	commit_init(&cs[2], "t", "g-x", STORE_EXPECT_NO_STREAM, 3);
	commit_init(&cs[3], "t", "g-y", STORE_EXPECT_ANY, 2);
	/* expects exactly what cs[1] wrote: accepted */
	commit_init(&cs[4], "t", "g-x", 0, 1);
	txn0 = store_txn_count(s);
	pos  = store_next_position(s);
	run_group(s, cs, 5);

	CHECK_EQ(cs[0].rc, SL_OK);
	CHECK_EQ(cs[0].first_position, pos);
	CHECK_EQ(cs[1].rc, SL_OK);
	CHECK_EQ(cs[1].first_position, pos + 1);
	CHECK_EQ(cs[2].rc, SL_EREVISION);
	CHECK_EQ(cs[2].stream_revision, 0);
	CHECK_EQ(cs[3].rc, SL_OK);
	CHECK_EQ(cs[3].first_position, pos + 2);
	CHECK_EQ(cs[4].rc, SL_OK);
	CHECK_EQ(cs[4].first_position, pos + 4);
	CHECK_EQ(cs[4].first_revision, 1);
	/* the gate's transaction plus exactly one for the group */
	CHECK_EQ(store_txn_count(s), txn0 + 2);
	CHECK_EQ(store_next_position(s), pos + 5);
	CHECK_EQ(store_stream_next_revision(s, "t", "g-x", &nr), SL_OK);
	CHECK_EQ(nr, 2);
	CHECK_EQ(
	    store_scan_stream(s, "t", "g-x", 0, 100, count_cb, &n), SL_OK);
	CHECK_EQ(n, 2);
}

/* A commit that does not fit the map fails alone with SL_EFULL. */
static void
test_full_in_group(void)
{
	char             path[4200];
	store           *s;
	store_commit     cs[4];
	msgpack_sbuffer  big;
	msgpack_unpacked up;
	ev_new           huge;
	size_t           bin = 4u << 20;
	uint64_t         pos, txn0, nr;
	int              n = 0;

	/* one event with 4 MiB of content, for a 2 MiB map */
	huge         = evs[0];
	huge.content = tev_padded(&big, &up, bin);

	snprintf(path, sizeof(path), "%s/small", tu_tmpdir());
	CHECK_EQ(store_open(path, 2u << 20, false, &s), SL_OK);
	commit_init(&cs[0], "t", "gate", STORE_EXPECT_ANY, 1);
	commit_init(&cs[1], "t", "f-a", STORE_EXPECT_ANY, 2);
	commit_init(&cs[2], "t", "f-big", STORE_EXPECT_ANY, 1);
	cs[2].events = &huge;
	commit_init(&cs[3], "t", "f-b", STORE_EXPECT_ANY, 2);
	pos  = store_next_position(s);
	txn0 = store_txn_count(s);
	run_group(s, cs, 4);
	CHECK_EQ(cs[1].rc, SL_OK);
	CHECK_EQ(cs[2].rc, SL_EFULL);
	CHECK(cs[2].message[0] != '\0');
	CHECK_EQ(cs[3].rc, SL_OK);
	CHECK_EQ(cs[3].first_position, pos + 3);
	CHECK_EQ(store_txn_count(s), txn0 + 2);
	CHECK_EQ(store_next_position(s), pos + 5);
	CHECK_EQ(store_stream_next_revision(s, "t", "f-big", &nr), SL_OK);
	CHECK_EQ(nr, 0);
	CHECK_EQ(
	    store_scan_stream(s, "t", "f-big", 0, 10, count_cb, &n), SL_OK);
	CHECK_EQ(n, 0);
	CHECK_EQ(store_scan(s, 0, 100, count_cb, &n, NULL), SL_OK);
	CHECK_EQ(n, 5);

	/* the store goes on after a full-map refusal */
	commit_init(&cs[1], "t", "f-a", 1, 1);
	CHECK_EQ(store_commit_wait(s, &cs[1]), SL_OK);
	CHECK_EQ(cs[1].first_position, pos + 5);
	CHECK_EQ(cs[1].first_revision, 2);
	store_close(s);

	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&big);
}

int
main(void)
{
	char   path[4200];
	store *s;
	tev    t[5];

	for (int i = 0; i < 5; i++) {
		tev_init(&t[i], "Tick", "{\"i\":1,\"s\":\"x\"}");
		evs[i] = t[i].e;
	}
	snprintf(path, sizeof(path), "%s/log", tu_tmpdir());
	CHECK_EQ(store_open(path, 256u << 20, true, &s), SL_OK);
	test_batch(s);
	test_concurrent(s);
	test_refused_in_group(s);
	store_close(s);
	test_full_in_group();
	for (int i = 0; i < 5; i++)
		tev_free(&t[i]);
	return 0;
}
