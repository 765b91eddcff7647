/*
 * Leases on the PostgreSQL log (docs/postgresql.md, "Leases"): what writes
 * to the log from inside the runtime (an emitting or system projection of
 * a tenant) runs on one node at a time, the one whose row in sl_leases
 * names it. A thread per node takes free leases, renews its own and gives
 * them up at its stop; the writer's transactions check them
 * (store_pg_emit.c).
 *
 * Times, with L = event_store.lease_ms: a row lasts L/2 past its last
 * renewal; its holder renews it every L/8 (four tries before it lapses)
 * and every other node tries to take it every L/8, so a holder that died
 * loses it within L/2 + L/8 plus a round trip, well inside L. The row's
 * times are the database's (clock_timestamp()): the nodes' clocks do not
 * matter.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sluice/errors.h>

#include "event.h"
#include "log.h"
#include "monotime.h"
#include "store_pg_internal.h"

#define PG_HOLDER_MAX 96

typedef struct pg_lease {
	char    *tenant, *owner;
	uint64_t epoch;      /* held and loaded: its token; 0: not held */
	int64_t  renewed_ns; /* monotonic: when the last renewal was sent */
	bool     drop;       /* given up by the writer: take it again */
	char     holder[PG_HOLDER_MAX]; /* as last seen */
} pg_lease;

struct pg_leases {
	pgb            *b;
	pthread_mutex_t mu;
	pthread_cond_t  cv; /* the thread: a lease asked for, or stop */
	pg_lease       *v;
	size_t          n, cap;
	char            me[PG_HOLDER_MAX];
	uint32_t        ms;
	bool            stop, running, kick;
	pthread_t       th;
	PGconn         *db; /* the thread's */
};

/* The row's life past a renewal, and how often the thread looks. */
static uint32_t
ttl_ms(const struct pg_leases *l)
{
	return l->ms / 2;
}

static uint32_t
tick_ms(const struct pg_leases *l)
{
	return l->ms / 8;
}

uint32_t
pg_lease_ttl_ms(pgb *b)
{
	return ttl_ms(b->leases);
}

const char *
pg_lease_me(pgb *b)
{
	return b->leases->me;
}

/* The lease of (tenant, owner); under mu. */
static pg_lease *
lease_find(struct pg_leases *l, const char *tenant, const char *owner)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i].tenant, tenant) == 0
		    && strcmp(l->v[i].owner, owner) == 0)
			return &l->v[i];
	return NULL;
}

int
pg_leases_init(pgb *b, uint32_t lease_ms)
{
	struct pg_leases *l = calloc(1, sizeof(*l));
	char              host[64];
	uint8_t           id[16];
	if (l == NULL)
		return SL_ENOMEM;
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "node");
	host[sizeof(host) - 1] = '\0';
	ev_uuid_generate(id);
	/* unique per process: a restarted node waits for its old leases
	 * to expire like any other node */
	snprintf(l->me, sizeof(l->me), "%s:%d:%02x%02x%02x%02x", host,
	    (int) getpid(), id[0], id[1], id[2], id[3]);
	l->b  = b;
	l->ms = lease_ms >= 300 ? lease_ms : 300;
	pthread_mutex_init(&l->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cv, &ca);
	pthread_condattr_destroy(&ca);
	b->leases = l;
	return SL_OK;
}

/* ---- the thread's statements ---- */

/* Hold the lease (tenant, owner) longer: whether the row still names
 * this node with the token; -1 when the connection failed. */
static int
lease_renew(
    struct pg_leases *l, const char *tenant, const char *owner, uint64_t token)
{
	char        ttl[16], tok[24];
	const char *pv[5] = { tenant, owner, l->me, tok, ttl };
	int         pl[5] = { (int) strlen(tenant), 0, 0, 0, 0 };
	int         pf[5] = { 1, 0, 0, 0, 0 };
	snprintf(ttl, sizeof(ttl), "%" PRIu32, ttl_ms(l));
	snprintf(tok, sizeof(tok), "%" PRIu64, token);
	PGresult *r  = PQexecParams(l->db,
	     "UPDATE sl_leases SET expires_at = clock_timestamp() + "
	      "$5::bigint * interval '1 millisecond' WHERE tenant = $1 AND "
	      "owner = $2 AND holder = $3 AND token = $4::bigint",
	     5, NULL, pv, pl, pf, 0);
	int       rc = !pg_ok(r) ? -1 : atoi(PQcmdTuples(r)) == 1;
	PQclear(r);
	return rc;
}

/*
 * Take the lease when it is free (no row, or expired) or this node's own
 * (given up by the writer: a new token all the same). *token gets the
 * new token; holder, who holds it when it is not free. 1 taken, 0 not,
 * -1 the connection failed.
 */
static int
lease_take(struct pg_leases *l, const char *tenant, const char *owner,
    uint64_t *token, char *holder, size_t hlen)
{
	char        ttl[16];
	const char *pv[4] = { tenant, owner, l->me, ttl };
	int         pl[4] = { (int) strlen(tenant), 0, 0, 0 };
	int         pf[4] = { 1, 0, 0, 0 };
	snprintf(ttl, sizeof(ttl), "%" PRIu32, ttl_ms(l));
	PGresult *r = PQexecParams(l->db,
	    "INSERT INTO sl_leases AS l (tenant, owner, holder, token, "
	    "expires_at) VALUES ($1, $2, $3, 1, clock_timestamp() + "
	    "$4::bigint * interval '1 millisecond') ON CONFLICT (tenant, "
	    "owner) DO UPDATE SET holder = EXCLUDED.holder, token = l.token "
	    "+ 1, expires_at = EXCLUDED.expires_at WHERE l.expires_at <= "
	    "clock_timestamp() OR l.holder = EXCLUDED.holder RETURNING token",
	    4, NULL, pv, pl, pf, 0);
	if (!pg_ok(r)) {
		PQclear(r);
		return -1;
	}
	if (PQntuples(r) == 1) {
		*token = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
		return 1;
	}
	PQclear(r);
	r = PQexecParams(l->db,
	    "SELECT holder FROM sl_leases WHERE tenant = $1 AND owner = $2", 2,
	    NULL, pv, pl, pf, 0);
	if (!pg_ok(r)) {
		PQclear(r);
		return -1;
	}
	snprintf(
	    holder, hlen, "%s", PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	return 0;
}

/* The owner's states and checkpoint from the database into the mirror's
 * env, as they are now that this node holds the lease (an old holder's
 * transaction committed before the lease row moved, or not at all).
 * SL_OK; SL_EUNAVAILABLE (the connection); SL_ESTORAGE. */
static int
lease_load(struct pg_leases *l, const char *tenant, const char *owner)
{
	const char *pv[2] = { tenant, owner };
	int         pl[2] = { (int) strlen(tenant), 0 };
	int         pf[2] = { 1, 0 };
	PGresult   *st    = PQexecParams(l->db,
	         "SELECT key, val FROM sl_pstate WHERE tenant = $1 AND owner = $2",
	         2, NULL, pv, pl, pf, 1);
	PGresult   *ck    = pg_ok(st)
	         ? PQexecParams(l->db,
	             "SELECT checkpoint FROM sl_pcheck WHERE tenant = $1 "
	                  "AND owner = $2",
	             2, NULL, pv, pl, pf, 1)
	         : NULL;
	int         rc    = SL_OK;
	if (!pg_ok(st) || !pg_ok(ck)) {
		rc = PQstatus(l->db) == CONNECTION_OK ? SL_ESTORAGE
		                                      : SL_EUNAVAILABLE;
		goto out;
	}
	size_t    n  = (size_t) PQntuples(st);
	store_kv *kv = calloc(n + 1, sizeof(*kv));
	if (kv == NULL) {
		rc = SL_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		kv[i].key     = PQgetvalue(st, (int) i, 0);
		kv[i].key_len = (size_t) PQgetlength(st, (int) i, 0);
		kv[i].val     = PQgetvalue(st, (int) i, 1);
		kv[i].val_len = (size_t) PQgetlength(st, (int) i, 1);
	}
	bool has = PQntuples(ck) == 1;
	int  mrc = store_owner_load(l->b->s, tenant, owner, kv, n,
            has ? PQgetvalue(ck, 0, 0) : NULL,
            has ? (size_t) PQgetlength(ck, 0, 0) : 0);
	free(kv);
	if (mrc != 0) {
		log_error("store", "lease %s/%s: cannot load its records: %s",
		    tenant, owner, sl_strerror(store_map_err(mrc)));
		rc = SL_ESTORAGE;
	}
out:
	PQclear(st);
	PQclear(ck);
	return rc;
}

/* Give every lease this node holds up at once (its stop): the other
 * nodes take them at their next look instead of after the row's time. */
static void
lease_release_all(struct pg_leases *l)
{
	const char *pv[1] = { l->me };
	PGresult   *r     = PQexecParams(l->db,
	          "UPDATE sl_leases SET expires_at = clock_timestamp() WHERE "
	                "holder = $1",
	          1, NULL, pv, NULL, NULL, 0);
	if (pg_ok(r) && atoi(PQcmdTuples(r)) > 0)
		log_info(
		    "store", "postgresql: %s leases given up", PQcmdTuples(r));
	PQclear(r);
}

/* One look at lease i: renew it, or take it. false: the connection
 * failed. */
static bool
lease_look(struct pg_leases *l, size_t i)
{
	char     tenant[SL_MAX_ID_LEN + 1], owner[SL_MAX_ID_LEN + 1];
	char     holder[PG_HOLDER_MAX] = "";
	uint64_t epoch, token = 0;
	bool     drop;
	pthread_mutex_lock(&l->mu);
	snprintf(tenant, sizeof(tenant), "%s", l->v[i].tenant);
	snprintf(owner, sizeof(owner), "%s", l->v[i].owner);
	epoch = l->v[i].epoch;
	drop  = l->v[i].drop;
	pthread_mutex_unlock(&l->mu);
	int64_t sent = mono_ns();
	if (epoch != 0 && !drop) {
		int rc = lease_renew(l, tenant, owner, epoch);
		if (rc < 0)
			return false;
		pthread_mutex_lock(&l->mu);
		pg_lease *x = &l->v[i];
		if (rc == 1 && x->epoch == epoch) {
			x->renewed_ns = sent;
		} else if (rc == 0 && x->epoch == epoch) {
			x->epoch = 0;
			log_warn("store",
			    "lease %s/%s: lost (another node took it): "
			    "standing down",
			    tenant, owner);
		}
		pthread_mutex_unlock(&l->mu);
		return true;
	}
	int rc = lease_take(l, tenant, owner, &token, holder, sizeof(holder));
	if (rc < 0)
		return false;
	if (rc == 1) {
		int lr = lease_load(l, tenant, owner);
		if (lr != SL_OK) {
			/* taken but not loaded: not held; taken again */
			return lr != SL_EUNAVAILABLE;
		}
		log_info("store",
		    "lease %s/%s: taken by this node (%s, epoch %" PRIu64
		    "): running it from its checkpoint in the database",
		    tenant, owner, l->me, token);
	}
	pthread_mutex_lock(&l->mu);
	pg_lease *x = &l->v[i];
	if (rc == 1) {
		x->epoch      = token;
		x->renewed_ns = sent;
		x->drop       = false;
		snprintf(x->holder, sizeof(x->holder), "%s", l->me);
	} else {
		snprintf(x->holder, sizeof(x->holder), "%s", holder);
	}
	pthread_mutex_unlock(&l->mu);
	return true;
}

/* The leases whose renewal is overdue stop counting as held here (the
 * database's row expires no earlier): the thread lost its connection. */
static void
lease_expire_local(struct pg_leases *l)
{
	int64_t now = mono_ns();
	pthread_mutex_lock(&l->mu);
	for (size_t i = 0; i < l->n; i++) {
		pg_lease *x = &l->v[i];
		if (x->epoch != 0
		    && now - x->renewed_ns >= (int64_t) ttl_ms(l) * 1000000) {
			x->epoch = 0;
			log_warn("store",
			    "lease %s/%s: not renewed for %" PRIu32
			    " ms (the database does not answer): standing "
			    "down",
			    x->tenant, x->owner, ttl_ms(l));
		}
	}
	pthread_mutex_unlock(&l->mu);
}

static void *
lease_main(void *arg)
{
	struct pg_leases *l    = arg;
	bool              down = false;
	pthread_mutex_lock(&l->mu);
	while (!l->stop) {
		pthread_mutex_unlock(&l->mu);
		if (l->db == NULL) {
			char err[PG_ERR];
			l->db = pg_connect(
			    l->b->url, l->b->timeout_ms, err, sizeof(err));
			if (l->db != NULL
			    && pg_check_schema(l->db, err, sizeof(err))
			        != SL_OK) {
				PQfinish(l->db);
				l->db = NULL;
			}
			if (l->db == NULL && !down)
				log_warn(
				    "store", "postgresql: leases: %s", err);
			down = l->db == NULL;
		}
		if (l->db != NULL) {
			pthread_mutex_lock(&l->mu);
			size_t n = l->n;
			pthread_mutex_unlock(&l->mu);
			for (size_t i = 0; i < n; i++)
				if (!lease_look(l, i)) {
					PQfinish(l->db);
					l->db = NULL;
					break;
				}
		}
		lease_expire_local(l);
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		int64_t ns = until.tv_nsec + (int64_t) tick_ms(l) * 1000000;
		until.tv_sec += (time_t) (ns / 1000000000);
		until.tv_nsec = (long) (ns % 1000000000);
		pthread_mutex_lock(&l->mu);
		while (!l->stop && !l->kick)
			if (pthread_cond_timedwait(&l->cv, &l->mu, &until)
			    == ETIMEDOUT)
				break;
		l->kick = false;
	}
	pthread_mutex_unlock(&l->mu);
	if (l->db == NULL) {
		char err[PG_ERR];
		l->db = pg_connect(
		    l->b->url, l->b->timeout_ms, err, sizeof(err));
	}
	if (l->db != NULL) {
		lease_release_all(l);
		PQfinish(l->db);
		l->db = NULL;
	}
	return NULL;
}

void
pg_leases_fini(pgb *b)
{
	struct pg_leases *l = b->leases;
	if (l == NULL)
		return;
	pthread_mutex_lock(&l->mu);
	l->stop      = true;
	bool running = l->running;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
	if (running)
		pthread_join(l->th, NULL);
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].tenant);
		free(l->v[i].owner);
	}
	free(l->v);
	pthread_cond_destroy(&l->cv);
	pthread_mutex_destroy(&l->mu);
	free(l);
	b->leases = NULL;
}

int
pg_lease_want(void *ctx, const char *tenant, const char *owner)
{
	pgb              *b  = ctx;
	struct pg_leases *l  = b->leases;
	int               rc = SL_OK;
	if (strlen(tenant) > SL_MAX_ID_LEN || strlen(owner) > SL_MAX_ID_LEN)
		return SL_EINVAL;
	pthread_mutex_lock(&l->mu);
	if (lease_find(l, tenant, owner) != NULL || l->stop)
		goto out;
	if (l->n == l->cap) {
		size_t    cap = l->cap ? 2 * l->cap : 16;
		pg_lease *nv  = realloc(l->v, cap * sizeof(*nv));
		if (nv == NULL) {
			rc = SL_ENOMEM;
			goto out;
		}
		l->v   = nv;
		l->cap = cap;
	}
	pg_lease *x = &l->v[l->n];
	memset(x, 0, sizeof(*x));
	x->tenant = strdup(tenant);
	x->owner  = strdup(owner);
	if (x->tenant == NULL || x->owner == NULL) {
		free(x->tenant);
		free(x->owner);
		rc = SL_ENOMEM;
		goto out;
	}
	l->n++;
	if (!l->running) {
		if (pthread_create(&l->th, NULL, lease_main, l) != 0) {
			rc = SL_ENOMEM;
			goto out;
		}
		l->running = true;
	}
	l->kick = true;
	pthread_cond_broadcast(&l->cv);
out:
	pthread_mutex_unlock(&l->mu);
	return rc;
}

uint64_t
pg_lease_get(void *ctx, const char *tenant, const char *owner, char *holder,
    size_t hlen)
{
	pgb              *b     = ctx;
	struct pg_leases *l     = b->leases;
	uint64_t          epoch = 0;
	pthread_mutex_lock(&l->mu);
	pg_lease *x = lease_find(l, tenant, owner);
	if (x != NULL) {
		epoch = x->drop ? 0 : x->epoch;
		if (holder != NULL && hlen > 0)
			snprintf(holder, hlen, "%s", x->holder);
	}
	pthread_mutex_unlock(&l->mu);
	return epoch;
}

void
pg_lease_drop(pgb *b, const char *tenant, const char *owner)
{
	struct pg_leases *l = b->leases;
	pthread_mutex_lock(&l->mu);
	pg_lease *x = lease_find(l, tenant, owner);
	if (x != NULL && x->epoch != 0) {
		x->epoch     = 0;
		x->drop      = true;
		x->holder[0] = '\0';
		l->kick      = true;
		pthread_cond_broadcast(&l->cv);
	}
	pthread_mutex_unlock(&l->mu);
}
