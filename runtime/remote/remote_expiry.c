/*
 * The expiry of remote registrations whose client is gone (remote_expiry.h):
 * unlink (status, the caps and a takeover no longer see it), stop its
 * processors (under the registration lock, so that the id registered again
 * gets new ones only once the old ones stopped), then wait for the readers
 * that may hold its definitions or processors, and free.
 */
#include "remote_expiry.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/errors.h>

#include "grace.h"
#include "monotime.h"
#include "runtime.h"

/* Registrations taken out at one look (the rest at the next). */
#define EXPIRY_BATCH 16

/* An expired registration and its stopped processors, not freed yet. */
typedef struct retired {
	remote_proc    *rp;
	processor     **procs;
	size_t          n;
	struct retired *next;
} retired;

struct rt_expiry {
	runtime        *rt;
	uint32_t        gone_ms;
	pthread_t       thr;
	bool            up;
	atomic_bool     stop;
	pthread_mutex_t mu; /* cv; retired */
	pthread_cond_t  cv;
	retired        *retired; /* waiting for readers (given up at stop) */
	atomic_ulong    count;
};

static void
retired_free(retired *r)
{
	for (size_t i = 0; i < r->n; i++)
		proc_destroy(r->procs[i]);
	free(r->procs);
	remote_proc_free(r->rp);
	free(r);
}

/* Expire registration id if its client is still gone. */
static void
expire_one(rt_expiry *x, const char *id)
{
	runtime *rt = x->rt;
	retired *r  = calloc(1, sizeof(*r));
	/* at most one processor per tenant */
	if (r != NULL)
		r->procs = calloc(rt->n_tenants + 1, sizeof(*r->procs));
	if (r == NULL || r->procs == NULL) {
		free(r);
		return; /* tried again at the next look */
	}
	pthread_mutex_lock(&rt->register_mu);
	r->rp = remotes_unlink(rt->remotes, id, x->gone_ms);
	if (r->rp == NULL) { /* its client came back meanwhile */
		pthread_mutex_unlock(&rt->register_mu);
		free(r->procs);
		free(r);
		return;
	}
	/* Its processors out of procs: readers copy procs under procs_mu
	 * (runtime_procs), so none finds them after this. */
	pthread_mutex_lock(&rt->procs_mu);
	size_t kept = 0;
	for (size_t i = 0; i < rt->n_procs; i++) {
		processor *p = rt->procs[i];
		if (r->n < rt->n_tenants
		    && strcmp(proc_projection_id(p), id) == 0)
			r->procs[r->n++] = p;
		else
			rt->procs[kept++] = p;
	}
	for (size_t i = kept; i < rt->n_procs; i++)
		rt->procs[i] = NULL;
	__atomic_store_n(&rt->n_procs, kept, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&rt->procs_mu);
	for (size_t i = 0; i < r->n; i++)
		proc_stop_signal(r->procs[i]); /* all at once, then each */
	for (size_t i = 0; i < r->n; i++)
		proc_join(r->procs[i]);
	pthread_mutex_unlock(&rt->register_mu);
	atomic_fetch_add(&x->count, 1);

	pthread_mutex_lock(&x->mu);
	r->next    = x->retired;
	x->retired = r;
	pthread_mutex_unlock(&x->mu);
	/* Readers that found it before the unlink leave; at stop this is
	 * given up and expiry_free frees it. */
	if (!grace_wait(&rt->grace, &x->stop))
		return;
	pthread_mutex_lock(&x->mu);
	retired **pp = &x->retired;
	while (*pp != r)
		pp = &(*pp)->next;
	*pp = r->next;
	pthread_mutex_unlock(&x->mu);
	retired_free(r);
}

static void *
expiry_main(void *arg)
{
	rt_expiry *x = arg;
	/* look a few times per expiry time: 25 ms .. 1 s */
	int64_t tick = x->gone_ms / 4;
	tick         = tick < 25 ? 25 : tick > 1000 ? 1000 : tick;
	pthread_mutex_lock(&x->mu);
	while (!atomic_load(&x->stop)) {
		struct timespec ts;
		abs_deadline(&ts, mono_ns() + tick * 1000000);
		pthread_cond_timedwait(&x->cv, &x->mu, &ts);
		if (atomic_load(&x->stop))
			break;
		pthread_mutex_unlock(&x->mu);
		char   ids[EXPIRY_BATCH][37];
		size_t n = remotes_expired(
		    x->rt->remotes, x->gone_ms, ids, EXPIRY_BATCH);
		for (size_t i = 0; i < n && !atomic_load(&x->stop); i++)
			expire_one(x, ids[i]);
		pthread_mutex_lock(&x->mu);
	}
	pthread_mutex_unlock(&x->mu);
	return NULL;
}

int
expiry_start(runtime *rt, uint32_t gone_ms, rt_expiry **out)
{
	*out = NULL;
	if (gone_ms == 0)
		return SL_OK;
	rt_expiry *x = calloc(1, sizeof(*x));
	if (x == NULL)
		return SL_ENOMEM;
	x->rt      = rt;
	x->gone_ms = gone_ms;
	atomic_init(&x->stop, false);
	atomic_init(&x->count, 0);
	pthread_mutex_init(&x->mu, NULL);
	cond_init_mono(&x->cv);
	if (pthread_create(&x->thr, NULL, expiry_main, x) != 0) {
		pthread_cond_destroy(&x->cv);
		pthread_mutex_destroy(&x->mu);
		free(x);
		return SL_EINTERNAL;
	}
	x->up = true;
	*out  = x;
	return SL_OK;
}

void
expiry_stop(rt_expiry *x)
{
	if (x == NULL || !x->up)
		return;
	pthread_mutex_lock(&x->mu);
	atomic_store(&x->stop, true);
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
	pthread_join(x->thr, NULL);
	x->up = false;
}

void
expiry_free(rt_expiry *x)
{
	if (x == NULL)
		return;
	expiry_stop(x);
	for (retired *r = x->retired, *next; r != NULL; r = next) {
		next = r->next;
		retired_free(r);
	}
	pthread_cond_destroy(&x->cv);
	pthread_mutex_destroy(&x->mu);
	free(x);
}

uint64_t
expiry_count(const rt_expiry *x)
{
	return x != NULL ? atomic_load(&x->count) : 0;
}
