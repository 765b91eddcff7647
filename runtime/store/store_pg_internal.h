/*
 * The PostgreSQL backend's insides, shared by store_pg.c (schema, the
 * commits' groups, the follower), store_pg_lease.c (the leases) and
 * store_pg_emit.c (an emitting projection's batch under its lease). Not
 * for other parts of the runtime.
 */
#ifndef SL_STORE_PG_INTERNAL_H
#define SL_STORE_PG_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <msgpack.h>

#include "store_internal.h"

#define PG_ERR 512

struct pg_leases;

typedef struct pgb {
	store          *s;
	char           *url;
	int             timeout_ms; /* event_store.timeout_ms: a round trip */
	PGconn         *wconn; /* the writer's; NULL when down */
	int             wpid;  /* its server process, and its client port */
	int             wport; /* (-1: a unix socket), for the doubt look-up */
	bool            wdown; /* the writer logged the outage already */
	msgpack_sbuffer enc;   /* the writer's records */

	pthread_t       th;      /* the follower */
	int             kick_fd; /* eventfd: the writer committed; or stop */
	bool            stop;    /* under mu */
	pthread_mutex_t mu;
	char            fatal[PG_ERR]; /* under mu: the mirror is not this
	                                  database's; nothing is written */
	/* leases (store_pg_lease.c): what this node asked for and holds */
	struct pg_leases *leases;
} pgb;

/* A stream of the group: its revision as the transaction goes. */
typedef struct pg_stream {
	const char *tenant, *stream;
	size_t      tenant_len, stream_len;
	uint64_t    next;    /* next revision */
	uint64_t    tb;      /* truncate_before: first revision shown */
	bool        changed; /* to write back */
	const char *owner;   /* an emit's: the stream's writer from now */
	bool        owned;   /* sl_streams.owner was another's (emit) */
} pg_stream;

/* One row the group writes: an event of a commit, or a deletion's
 * notification; its record in the writer's buffer. */
typedef struct pg_row {
	uint64_t    position, revision;
	const char *tenant, *stream;
	size_t      tenant_len, stream_len;
	uint8_t     id[16];
	size_t      off, len; /* the record, in b->enc */
} pg_row;

typedef struct pg_group {
	pgb           *b;
	store_commit **v;
	size_t         n;
	pg_stream     *st;
	size_t         n_st;
	size_t         n_events; /* of the whole group */
	uint64_t       head;     /* sl_head.next at the lock */
	uint64_t       end;      /* after the accepted commits */
	pg_row        *rows;     /* what the group writes, in position order */
	size_t         n_rows;
	size_t         sent; /* queries in the pipeline since its sync */
	bool           lost; /* the session ended (FATAL, shutdown, 08xxx) */
	bool           ack_now; /* committed, the mirror failed: ack anyway */
	uint64_t  mirror_next;  /* the mirror's head when the gap was read */
	PGresult *gap;          /* rows between the mirror's head and g.head */
	char      err[PG_ERR];
} pg_group;

/* ---- store_pg.c ---- */

/* PostgreSQL's message (what: prefix) as one line into err. */
void pg_msg(char *err, size_t errlen, const char *what, const char *msg);
/* Connect to url; NULL with err set when the database does not answer
 * (timeout_ms: event_store.timeout_ms, for the connection's defaults). */
PGconn *pg_connect(const char *url, int timeout_ms, char *err, size_t errlen);
bool    pg_ok(const PGresult *r);
/* A database at this build's schema version: SL_OK, SL_ECONFIG, ...  */
int pg_check_schema(PGconn *db, char *err, size_t errlen);
/* The writer's connection, (re)made when needed. */
bool pg_writer_conn(pgb *b, char *err, size_t errlen);
/* Queue a statement in the writer's pipeline; sync and read results. */
bool pg_send(pg_group *g, const char *sql, int n, const char *const *pv,
    const int *pl, const int *pf, int binary);
bool pg_sync(pg_group *g, PGresult **keep, size_t n_keep, const char *what);
/* Under the head lock: the database's head (g->head) behind this node's
 * mirror means the database lost events the mirror holds (a failover to
 * a replica that had not received them): commits are refused from now,
 * g->err says why. @return whether it is so. */
bool pg_head_behind(pg_group *g);
/* The transaction failed before COMMIT: the connection dropped. */
void pg_txn_failed(pg_group *g);
/* The rows between the mirror's head and sl_head (from: 24 bytes). */
bool pg_send_gap(pg_group *g, char *from);
/* The changed streams' revisions (with owner: and owner, an emit's). */
bool pg_send_streams_update(pg_group *g, bool owner);
/* The INSERTs of g->rows. */
bool pg_send_events(pg_group *g);
/* After COMMIT: the gap and g->rows into the mirror. */
void pg_mirror_group(pg_group *g);
int  pg_stream_cmp(const void *x, const void *y);
/* A text[] literal of the hex of the streams' (or tenants') ids. */
char *hex_array(const pg_stream *st, size_t n, bool stream);

/* ---- store_pg_lease.c ---- */

/* Set up b's leases (lease_ms: a dead holder's leases move within it);
 * the thread starts with the first lease asked for. SL_OK, SL_ENOMEM. */
int pg_leases_init(pgb *b, uint32_t lease_ms);
/* Stop the thread, release what this node holds, free. */
void     pg_leases_fini(pgb *b);
int      pg_lease_want(void *ctx, const char *tenant, const char *owner);
uint64_t pg_lease_get(void *ctx, const char *tenant, const char *owner,
    char *holder, size_t hlen);
/* This node's holder id (the lease rows' holder). */
const char *pg_lease_me(pgb *b);
/* The lease's row must be renewed to last this long (ms). */
uint32_t pg_lease_ttl_ms(pgb *b);
/* The writer found the lease lost (or the outcome of its batch unknown):
 * this node holds it no more; it takes it again (a new epoch, the owner's
 * records loaded afresh) when it is free. */
void pg_lease_drop(pgb *b, const char *tenant, const char *owner);

/* ---- store_pg_emit.c ---- */

/* The backend's write_emit. */
void pg_write_emit(void *ctx, store_emit *e);

#endif
