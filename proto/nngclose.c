/* A bounded nng_close: see nngclose.h. */
#include "nngclose.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

typedef struct closer {
	nng_socket      sock;
	pthread_mutex_t mtx;
	pthread_cond_t  cv;
	bool            done;
	bool            abandoned; /* the waiter gave up; the helper frees */
} closer;

static void
closer_free(closer *c)
{
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mtx);
	free(c);
}

static void *
closer_main(void *arg)
{
	closer *c = arg;
	bool    abandoned;

	nng_close(c->sock);
	pthread_mutex_lock(&c->mtx);
	c->done   = true;
	abandoned = c->abandoned;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mtx);
	if (abandoned)
		closer_free(c);
	return NULL;
}

bool
sl_nng_close_bounded(nng_socket sock, int ms)
{
	closer         *c = calloc(1, sizeof(*c));
	pthread_t       th;
	struct timespec deadline;
	bool            done;

	if (c == NULL) {
		nng_close(sock);
		return true;
	}
	c->sock = sock;
	pthread_mutex_init(&c->mtx, NULL);
	pthread_cond_init(&c->cv, NULL);
	if (pthread_create(&th, NULL, closer_main, c) != 0) {
		closer_free(c);
		nng_close(sock);
		return true;
	}
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += ms / 1000;
	deadline.tv_nsec += (long) (ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&c->mtx);
	while (!c->done
	    && pthread_cond_timedwait(&c->cv, &c->mtx, &deadline) != ETIMEDOUT)
		;
	done = c->done;
	if (!done)
		c->abandoned = true;
	pthread_mutex_unlock(&c->mtx);
	if (done) {
		pthread_join(th, NULL);
		closer_free(c);
		return true;
	}
	pthread_detach(th);
	return false;
}
