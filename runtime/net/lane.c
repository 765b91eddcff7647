/*
 * Lanes (lane.h): a ring of queued items under one mutex and a cond var
 * the workers wait on. Pushes come from NNG's callback threads and never
 * wait for anything but the mutex, which nothing holds for long.
 */
#include "lane.h"

#include <pthread.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/errors.h>

#include "log.h"

struct lane {
	char            name[32];
	lane_fn         fn;
	void           *arg;
	int             nice;
	pthread_mutex_t mu;
	pthread_cond_t  cv;
	/* n items from ring[head]; cap may wait beyond the idle workers,
	 * so the ring holds cap + workers */
	void     **ring;
	uint32_t   cap, size, head, n;
	bool       stopping;
	uint32_t   busy;
	uint64_t   done, refused;
	pthread_t *threads;
	uint32_t   n_threads;
};

static void *
lane_worker(void *p)
{
	lane *l = p;

	/* Linux: a thread's own nice value (setpriority on its tid) */
	if (l->nice != 0) {
		int base = getpriority(PRIO_PROCESS, 0);
		if (setpriority(PRIO_PROCESS, (id_t) gettid(), base + l->nice)
		    != 0)
			log_warn("lane",
			    "%s: cannot lower the workers' "
			    "priority",
			    l->name);
	}
	pthread_mutex_lock(&l->mu);
	for (;;) {
		while (l->n == 0 && !l->stopping)
			pthread_cond_wait(&l->cv, &l->mu);
		if (l->n == 0)
			break; /* stopping, and nothing left */
		void *item = l->ring[l->head];
		l->head    = (l->head + 1) % l->size;
		l->n--;
		l->busy++;
		pthread_mutex_unlock(&l->mu);
		l->fn(l->arg, item);
		pthread_mutex_lock(&l->mu);
		l->busy--;
		l->done++;
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

static void
lane_free(lane *l)
{
	pthread_cond_destroy(&l->cv);
	pthread_mutex_destroy(&l->mu);
	free(l->threads);
	free(l->ring);
	free(l);
}

int
lane_start(const char *name, uint32_t workers, uint32_t capacity, int nice,
    lane_fn fn, void *arg, lane **out)
{
	lane *l;

	*out = NULL;
	if (workers == 0 || capacity == 0 || fn == NULL)
		return SL_EINVAL;
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return SL_ENOMEM;
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->fn      = fn;
	l->nice    = nice;
	l->arg     = arg;
	l->cap     = capacity;
	l->size    = capacity + workers;
	l->ring    = calloc(l->size, sizeof(*l->ring));
	l->threads = calloc(workers, sizeof(*l->threads));
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
	if (l->ring == NULL || l->threads == NULL) {
		lane_free(l);
		return SL_ENOMEM;
	}
	for (; l->n_threads < workers; l->n_threads++) {
		pthread_t *t = &l->threads[l->n_threads];
		if (pthread_create(t, NULL, lane_worker, l) != 0) {
			log_error("lane", "%s: cannot start worker %u", name,
			    l->n_threads);
			lane_stop(l);
			return SL_ENOMEM;
		}
		char tn[16];
		snprintf(tn, sizeof(tn), "%.12s-%u", name, l->n_threads);
		pthread_setname_np(*t, tn);
	}
	*out = l;
	return SL_OK;
}

bool
lane_push(lane *l, void *item)
{
	bool ok;

	pthread_mutex_lock(&l->mu);
	/* an idle worker that has not woken yet takes one item: only
	 * what waits beyond the idle workers counts against capacity */
	ok = !l->stopping && l->n < l->cap + (l->n_threads - l->busy);
	if (ok) {
		l->ring[(l->head + l->n) % l->size] = item;
		l->n++;
		pthread_cond_signal(&l->cv);
	} else {
		l->refused++;
	}
	pthread_mutex_unlock(&l->mu);
	return ok;
}

void
lane_stats_get(lane *l, lane_stats *out)
{
	pthread_mutex_lock(&l->mu);
	out->workers  = l->n_threads;
	out->busy     = l->busy;
	out->queued   = l->n;
	out->capacity = l->cap;
	out->done     = l->done;
	out->refused  = l->refused;
	pthread_mutex_unlock(&l->mu);
}

void
lane_stop(lane *l)
{
	if (l == NULL)
		return;
	pthread_mutex_lock(&l->mu);
	l->stopping = true;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
	for (uint32_t i = 0; i < l->n_threads; i++)
		pthread_join(l->threads[i], NULL);
	lane_free(l);
}
