/*
 * The durable log's pipelined acknowledgements (store.c,
 * store_finish_group): with sync on, a group's meta page is synced by the
 * next group's commit or by the syncer thread, so the writer runs ahead of
 * what is durable. What must hold all the same: a commit is acknowledged
 * only after store_next_position() has passed its events, scans never
 * show an event beyond the published position (a group still waiting for
 * its sync), groups are acknowledged in the order they were written,
 * positions stay gap-free, a refused commit in the middle leaves no
 * trace, and everything acknowledged is there after a reopen.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>

#include "store_testutil.h"

#define N_THREADS 8
#define N_COMMITS 150 /* per thread */
#define BURST     8   /* commits a thread has in flight at once */

static ev_new evs[3];

typedef struct acker {
	store          *s;
	pthread_mutex_t mu;
	pthread_cond_t  cv;
	int             left; /* commits of the burst not done */
	atomic_int      refused;
} acker;

/* Shared by every thread's commits: acknowledgements are in position
 * order across groups, and only after the head passed them. */
static pthread_mutex_t order_mu  = PTHREAD_MUTEX_INITIALIZER;
static uint64_t        order_end = 0; /* end of the last acked group */
static atomic_int      order_bad = 0;

static void
on_done(store_commit *c, void *arg)
{
	acker *a = arg;

	if (c->rc == SL_OK) {
		uint64_t end = c->first_position + c->n_events;
		/* the head is published before the acknowledgement */
		if (store_next_position(a->s) < end)
			atomic_fetch_add(&order_bad, 1);
		/* acknowledged in position order: groups in the order
		 * they were written, a group's commits in its order */
		pthread_mutex_lock(&order_mu);
		if (end <= order_end)
			atomic_fetch_add(&order_bad, 1);
		order_end = end;
		pthread_mutex_unlock(&order_mu);
	} else {
		CHECK_EQ(c->rc, SL_EREVISION);
		atomic_fetch_add(&a->refused, 1);
	}
	pthread_mutex_lock(&a->mu);
	a->left--;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

typedef struct worker {
	pthread_t t;
	int       index;
	store    *s;
	uint64_t  events; /* acknowledged */
} worker;

static void *
worker_main(void *arg)
{
	worker      *w = arg;
	acker        a;
	store_commit c[BURST];
	char         stream[BURST][32];

	memset(&a, 0, sizeof(a));
	a.s = w->s;
	pthread_mutex_init(&a.mu, NULL);
	pthread_cond_init(&a.cv, NULL);
	for (int k = 0; k < N_COMMITS; k += BURST) {
		a.left = BURST;
		for (int i = 0; i < BURST; i++) {
			size_t n = (size_t) (k + i) % 3 + 1;
			/* every 5th commit expects a revision its stream
			 * never has: refused inside some group */
			uint64_t exp
			    = (k + i) % 5 == 4 ? 1000000 : STORE_EXPECT_ANY;
			snprintf(stream[i], sizeof(stream[i]), "w%d-%d",
			    w->index, i);
			tev_commit_init(&c[i], "ten", stream[i],
			    strlen(stream[i]), exp, evs, n);
			c[i].done = on_done;
			c[i].arg  = &a;
			CHECK_EQ(store_submit(w->s, &c[i]), SL_OK);
		}
		pthread_mutex_lock(&a.mu);
		while (a.left > 0)
			pthread_cond_wait(&a.cv, &a.mu);
		pthread_mutex_unlock(&a.mu);
		for (int i = 0; i < BURST; i++)
			if (c[i].rc == SL_OK)
				w->events += c[i].n_events;
	}
	CHECK_EQ(atomic_load(&a.refused), N_COMMITS / 5);
	pthread_cond_destroy(&a.cv);
	pthread_mutex_destroy(&a.mu);
	return NULL;
}

/* ---- a reader that must never see past the published head ---- */

typedef struct scanner {
	pthread_t   t;
	store      *s;
	atomic_bool stop;
	uint64_t    max_seen;
	uint64_t    scans, beyond;
} scanner;

static int
scan_cb(void *arg, uint64_t position, const void *data, size_t len)
{
	scanner *sc = arg;

	(void) data;
	(void) len;
	if (position + 1 > sc->max_seen)
		sc->max_seen = position + 1;
	return 0;
}

static void *
scanner_main(void *arg)
{
	scanner *sc = arg;

	while (!atomic_load(&sc->stop)) {
		uint64_t from = store_next_position(sc->s);
		from          = from > 50 ? from - 50 : 0;
		sc->max_seen  = 0;
		CHECK_EQ(
		    store_scan(sc->s, from, 1000, scan_cb, sc, NULL), SL_OK);
		/* published before the scan ended, or the scan showed an
		 * event whose transaction was not durable yet */
		if (sc->max_seen > store_next_position(sc->s))
			sc->beyond++;
		sc->scans++;
	}
	return NULL;
}

static int
count_cb(void *arg, uint64_t position, const void *data, size_t len)
{
	uint64_t *next = arg;

	(void) data;
	(void) len;
	CHECK_EQ(position, *next); /* gap-free from 0 */
	(*next)++;
	return 0;
}

int
main(void)
{
	char     path[4200];
	store   *s;
	tev      t[3];
	worker   w[N_THREADS];
	scanner  sc;
	uint64_t total = 0, next = 0;

	for (int i = 0; i < 3; i++) {
		tev_init(&t[i], "Tick", "{\"i\":1}");
		evs[i] = t[i].e;
	}
	snprintf(path, sizeof(path), "%s/log", tu_tmpdir());
	CHECK_EQ(store_open(path, 64u << 20, true, &s), SL_OK);

	memset(&sc, 0, sizeof(sc));
	sc.s = s;
	CHECK(pthread_create(&sc.t, NULL, scanner_main, &sc) == 0);
	for (int i = 0; i < N_THREADS; i++) {
		w[i] = (worker) { .index = i, .s = s };
		CHECK(pthread_create(&w[i].t, NULL, worker_main, &w[i]) == 0);
	}
	for (int i = 0; i < N_THREADS; i++) {
		pthread_join(w[i].t, NULL);
		total += w[i].events;
	}
	atomic_store(&sc.stop, true);
	pthread_join(sc.t, NULL);

	CHECK_EQ(atomic_load(&order_bad), 0);
	CHECK(sc.scans > 0);
	CHECK_EQ(sc.beyond, 0);
	CHECK_EQ(store_next_position(s), total);
	/* still group commit: fewer transactions than commits */
	CHECK(store_txn_count(s) < (uint64_t) N_THREADS * N_COMMITS * 4 / 5);
	fprintf(stderr,
	    "%" PRIu64 " events in %" PRIu64 " transactions, %" PRIu64
	    " scans\n",
	    total, store_txn_count(s), sc.scans);
	store_close(s);

	/* everything acknowledged is there, gap-free, after a reopen */
	CHECK_EQ(store_open(path, 64u << 20, true, &s), SL_OK);
	CHECK_EQ(store_next_position(s), total);
	CHECK_EQ(store_scan(s, 0, total + 10, count_cb, &next, NULL), SL_OK);
	CHECK_EQ(next, total);
	store_close(s);
	for (int i = 0; i < 3; i++)
		tev_free(&t[i]);
	return 0;
}
