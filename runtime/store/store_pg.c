/*
 * The event log on PostgreSQL (store_pg.h, docs/postgresql.md): the
 * schema (--init-db), the writer's group as one transaction behind the
 * head row's lock, and the follower that mirrors the log into LMDB.
 */
#include "store_pg.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sluice/errors.h>

#include "event.h"
#include "log.h"
#include "monotime.h"
#include "store_internal.h"

/* Rows per INSERT statement (6 parameters each, of PostgreSQL's 65535)
 * and per page the follower reads. */
#define PG_ROWS_PER_STMT 1000
#define PG_PAGE          1000
#define PG_POLL_MS       100
#define PG_ERR           512

/* The schema, one step per version (sl_schema.version counts them). */
static const char *const migrations[STORE_PG_SCHEMA_VERSION] = {
	/* 1: the log (records as ev_encode writes them), the streams'
	 * revisions, the head row whose lock orders every append */
	"CREATE TABLE sl_head (one int PRIMARY KEY CHECK (one = 1), "
	"  next bigint NOT NULL);"
	"INSERT INTO sl_head VALUES (1, 0);"
	"CREATE TABLE sl_streams (tenant bytea NOT NULL, stream bytea NOT "
	"  NULL, next_revision bigint NOT NULL, owner text, "
	"  truncate_before bigint NOT NULL DEFAULT 0, "
	"  PRIMARY KEY (tenant, stream));"
	"CREATE TABLE sl_events (position bigint PRIMARY KEY, "
	"  event_id uuid NOT NULL UNIQUE, tenant bytea NOT NULL, "
	"  stream bytea NOT NULL, revision bigint NOT NULL, "
	"  record bytea NOT NULL, UNIQUE (tenant, stream, revision))",
};

/* Any number, the same in every sluiced: --init-db runs one at a time. */
#define PG_INIT_LOCK 0x536c756963650001LL

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
} pgb;

/* PostgreSQL's message without its trailing newline. */
static void
pg_msg(char *err, size_t errlen, const char *what, const char *msg)
{
	size_t n;
	snprintf(err, errlen, "%s%s%s", what, *what ? ": " : "",
	    msg != NULL && *msg ? msg : "no message");
	for (char *c = err; *c != '\0'; c++)
		if (*c == '\n' || *c == '\t')
			*c = ' '; /* one log line */
	n = strlen(err);
	while (n > 0 && err[n - 1] == ' ')
		err[--n] = '\0';
}

static void
pg_quiet(void *arg, const char *message)
{
	(void) arg;
	(void) message;
}

/*
 * Connect to url; NULL with err set when the database does not answer.
 * Defaults first, so that the URL's own settings win: TCP keepalives, so
 * that a host that went away is noticed on an idle connection too (about
 * 5 + 3 x 2 s), and a TCP user timeout of timeout_ms for data the server
 * never acknowledges. A server that hangs but whose kernel answers (a
 * stopped process) is what the round trips' own timeout is for
 * (pg_wait_ready). timeout_ms 0 (--init-db): a connect_timeout of 5 s,
 * the system's TCP user timeout.
 */
static PGconn *
pg_connect(const char *url, int timeout_ms, char *err, size_t errlen)
{
	char        user_timeout[16], conn_timeout[16];
	const char *kw[] = { "connect_timeout", "application_name",
		"keepalives", "keepalives_idle", "keepalives_interval",
		"keepalives_count", "tcp_user_timeout", "dbname", NULL };
	const char *val[] = { conn_timeout, "sluiced", "1", "5", "2", "3",
		user_timeout, url, NULL };
	/* libpq's connect_timeout is in whole seconds, at least 2 */
	int secs = (timeout_ms + 999) / 1000;
	snprintf(conn_timeout, sizeof(conn_timeout), "%d",
	    timeout_ms == 0 ? 5 : secs < 2 ? 2 : secs);
	snprintf(user_timeout, sizeof(user_timeout), "%d", timeout_ms);
	PGconn *db = PQconnectdbParams(kw, val, 1);

	if (db == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (PQstatus(db) != CONNECTION_OK) {
		pg_msg(err, errlen, "cannot connect", PQerrorMessage(db));
		PQfinish(db);
		return NULL;
	}
	PQsetNoticeProcessor(db, pg_quiet, NULL); /* not on stderr */
	return db;
}

/*
 * Wait until what was sent on db (non-blocking) is flushed and a result
 * can be read without blocking, until deadline (mono_ns). @return true;
 * false when the connection failed or the deadline passed (err says
 * which): a server that hangs with its connection open (stopped, or its
 * host gone without a word) costs at most the deadline.
 */
static bool
pg_wait_ready(PGconn *db, int64_t deadline, char *err, size_t errlen)
{
	for (;;) {
		int f = PQflush(db); /* 0: all sent; 1: not yet; -1 */
		if (f < 0) {
			pg_msg(err, errlen, "send", PQerrorMessage(db));
			return false;
		}
		if (f == 0 && !PQisBusy(db))
			return true;
		int64_t left = (deadline - mono_ns()) / 1000000;
		if (left <= 0) {
			snprintf(err, errlen,
			    "PostgreSQL did not answer in time "
			    "(event_store.timeout_ms)");
			return false;
		}
		struct pollfd pf
		    = { PQsocket(db), (short) (POLLIN | (f ? POLLOUT : 0)), 0 };
		if (pf.fd < 0) {
			pg_msg(err, errlen, "connection", PQerrorMessage(db));
			return false;
		}
		if (poll(&pf, 1, left > 1000 ? 1000 : (int) left) < 0
		    && errno != EINTR) {
			snprintf(err, errlen, "poll: %s", strerror(errno));
			return false;
		}
		if ((pf.revents & (POLLIN | POLLERR | POLLHUP))
		    && !PQconsumeInput(db)) {
			pg_msg(err, errlen, "receive", PQerrorMessage(db));
			return false;
		}
	}
}

/*
 * One statement on db (non-blocking, not in pipeline mode) within
 * timeout_ms: its result, or NULL with err set (no answer in time, or
 * the connection failed; the caller drops the connection). The caller
 * clears the result; a statement's error is in it.
 */
static PGresult *
pg_exec_timed(PGconn *db, int timeout_ms, const char *sql, int n,
    const char *const *pv, int binary, char *err, size_t errlen)
{
	int64_t   deadline = mono_ns() + (int64_t) timeout_ms * 1000000;
	PGresult *res      = NULL, *r;

	if (!PQsendQueryParams(db, sql, n, NULL, pv, NULL, NULL, binary)) {
		pg_msg(err, errlen, "send", PQerrorMessage(db));
		return NULL;
	}
	for (;;) {
		if (!pg_wait_ready(db, deadline, err, errlen)) {
			PQclear(res);
			return NULL;
		}
		if ((r = PQgetResult(db)) == NULL)
			break;
		if (res == NULL)
			res = r; /* the statement's; the rest are ends */
		else
			PQclear(r);
	}
	if (res == NULL)
		pg_msg(err, errlen, "no result", PQerrorMessage(db));
	return res;
}

static bool
pg_ok(const PGresult *r)
{
	ExecStatusType st = PQresultStatus(r);
	return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/* The schema's version: SL_OK with *version (0: no schema), or
 * SL_ESTORAGE with err. */
static int
pg_schema_version(PGconn *db, int *version, char *err, size_t errlen)
{
	PGresult *r = PQexec(db,
	    "SELECT version FROM sl_schema WHERE to_regclass('sl_schema') "
	    "IS NOT NULL");
	*version    = 0;
	if (!pg_ok(r)) {
		const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		if (state != NULL && strcmp(state, "42P01") == 0) {
			PQclear(r); /* no sl_schema */
			return SL_OK;
		}
		pg_msg(err, errlen, "read sl_schema", PQerrorMessage(db));
		PQclear(r);
		return SL_ESTORAGE;
	}
	if (PQntuples(r) > 0)
		*version = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	return SL_OK;
}

/* A database this build can use: SL_OK; SL_ECONFIG (no schema, or
 * another version); SL_ESTORAGE. err says which. */
static int
pg_check_schema(PGconn *db, char *err, size_t errlen)
{
	int v, rc = pg_schema_version(db, &v, err, errlen);
	if (rc != SL_OK)
		return rc;
	if (v == STORE_PG_SCHEMA_VERSION)
		return SL_OK;
	if (v == 0)
		snprintf(err, errlen,
		    "the database has no Sluice schema: run sluiced --init-db "
		    "-c FILE");
	else if (v < STORE_PG_SCHEMA_VERSION)
		snprintf(err, errlen,
		    "the database's schema is version %d, this sluiced needs "
		    "%d: run sluiced --init-db -c FILE to migrate it",
		    v, STORE_PG_SCHEMA_VERSION);
	else
		snprintf(err, errlen,
		    "the database's schema is version %d, newer than this "
		    "sluiced knows (%d): upgrade sluiced",
		    v, STORE_PG_SCHEMA_VERSION);
	return SL_ECONFIG;
}

int
store_pg_init_db(const char *url, char *err, size_t errlen)
{
	char      buf[160];
	int       v, rc;
	PGresult *r;
	PGconn   *db = pg_connect(url, 0, err, errlen);

	if (db == NULL)
		return SL_EUNAVAILABLE;
	snprintf(buf, sizeof(buf), "SELECT pg_advisory_xact_lock(%lld)",
	    PG_INIT_LOCK);
	r  = PQexec(db, "SET client_min_messages = warning; BEGIN");
	rc = pg_ok(r) ? SL_OK : SL_ESTORAGE;
	PQclear(r);
	if (rc == SL_OK) {
		r  = PQexec(db, buf);
		rc = pg_ok(r) ? SL_OK : SL_ESTORAGE;
		PQclear(r);
	}
	if (rc == SL_OK) {
		r  = PQexec(db,
		     "CREATE TABLE IF NOT EXISTS sl_schema (one int PRIMARY "
		      "KEY "
		      "CHECK (one = 1), version int NOT NULL)");
		rc = pg_ok(r) ? SL_OK : SL_ESTORAGE;
		PQclear(r);
	}
	if (rc != SL_OK) {
		pg_msg(err, errlen, "create sl_schema", PQerrorMessage(db));
		goto out;
	}
	if ((rc = pg_schema_version(db, &v, err, errlen)) != SL_OK)
		goto out;
	if (v > STORE_PG_SCHEMA_VERSION) {
		snprintf(err, errlen,
		    "the database's schema is version %d, newer than this "
		    "sluiced knows (%d): nothing changed; upgrade sluiced",
		    v, STORE_PG_SCHEMA_VERSION);
		rc = SL_EVERSION;
		goto out;
	}
	for (int i = v; i < STORE_PG_SCHEMA_VERSION; i++) {
		r = PQexec(db, migrations[i]);
		if (!pg_ok(r)) {
			char what[64];
			snprintf(what, sizeof(what), "migration to version %d",
			    i + 1);
			pg_msg(err, errlen, what, PQerrorMessage(db));
			PQclear(r);
			rc = SL_ESTORAGE;
			goto out;
		}
		PQclear(r);
	}
	snprintf(buf, sizeof(buf),
	    "INSERT INTO sl_schema VALUES (1, %d) ON CONFLICT (one) DO UPDATE "
	    "SET version = EXCLUDED.version",
	    STORE_PG_SCHEMA_VERSION);
	r = PQexec(db, buf);
	if (pg_ok(r)) {
		PQclear(r);
		r = PQexec(db, "COMMIT");
	}
	if (!pg_ok(r) || strcmp(PQcmdStatus(r), "COMMIT") != 0) {
		pg_msg(err, errlen, "commit", PQerrorMessage(db));
		rc = SL_ESTORAGE;
	} else if (v == STORE_PG_SCHEMA_VERSION) {
		snprintf(err, errlen, "schema version %d: up to date", v);
	} else {
		snprintf(err, errlen, "schema version %d (was %d)",
		    STORE_PG_SCHEMA_VERSION, v);
	}
	PQclear(r);
out:
	PQfinish(db); /* an open transaction rolls back */
	return rc;
}

/* ---- the mirror's check ---- */

/* The mirror's last event must be the database's at its position: a
 * mirror made from another database (or one the database lost) is
 * refused, never mixed. SL_OK; SL_ECONFIG (err says why); SL_ESTORAGE
 * (the database failed: err). */
static int
pg_check_mirror(pgb *b, PGconn *db, char *err, size_t errlen)
{
	uint64_t      next = store_next_position(b->s);
	store_reader *rd;
	const void   *data;
	size_t        len;
	char          pos[24];
	const char   *pv[1] = { pos };
	int           rc;

	if (next == 0)
		return SL_OK;
	snprintf(pos, sizeof(pos), "%" PRIu64, next - 1);
	PGresult *r = PQexecParams(db,
	    "SELECT record FROM sl_events WHERE position = $1::bigint", 1,
	    NULL, pv, NULL, NULL, 1);
	if (!pg_ok(r)) {
		pg_msg(err, errlen, "read sl_events", PQerrorMessage(db));
		PQclear(r);
		return SL_ESTORAGE;
	}
	if (PQntuples(r) == 0) {
		snprintf(err, errlen,
		    "the event log mirror holds position %s, the database "
		    "does not: the database lost events this node mirrored "
		    "(a failover to a replica that had not received them?) "
		    "or the mirror was made from another database (move "
		    "event_store.path away to rebuild it from this one)",
		    pos);
		PQclear(r);
		return SL_ECONFIG;
	}
	if ((rc = store_reader_open(b->s, &rd)) != SL_OK) {
		snprintf(err, errlen, "cannot read the mirror");
		PQclear(r);
		return SL_ESTORAGE;
	}
	rc = store_reader_get(rd, next - 1, &data, &len);
	if (rc == SL_OK
	    && ((size_t) PQgetlength(r, 0, 0) != len
	        || memcmp(PQgetvalue(r, 0, 0), data, len) != 0)) {
		snprintf(err, errlen,
		    "the event log mirror's event at position %s is not the "
		    "database's: the mirror was made from another database "
		    "(move event_store.path away to rebuild it from this one)",
		    pos);
		rc = SL_ECONFIG;
	} else if (rc != SL_OK) {
		snprintf(err, errlen, "cannot read the mirror");
		rc = SL_ESTORAGE;
	}
	store_reader_close(rd);
	PQclear(r);
	return rc;
}

static void
pg_set_fatal(pgb *b, const char *msg)
{
	pthread_mutex_lock(&b->mu);
	if (b->fatal[0] == '\0') {
		snprintf(b->fatal, sizeof(b->fatal), "%s", msg);
		log_error("store", "postgresql: %s; commits are refused", msg);
	}
	pthread_mutex_unlock(&b->mu);
}

/* ---- the writer: one group, one transaction ---- */

/* A stream of the group: its revision as the transaction goes. */
typedef struct pg_stream {
	const char *tenant, *stream;
	size_t      tenant_len, stream_len;
	uint64_t    next;    /* next revision */
	uint64_t    tb;      /* truncate_before: first revision shown */
	bool        changed; /* to write back */
} pg_stream;

static int
bytes_cmp(const char *a, size_t al, const char *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);
	return c != 0 ? c : (al > bl) - (al < bl);
}

static int
pg_stream_cmp(const void *x, const void *y)
{
	const pg_stream *a = x, *b = y;
	int c = bytes_cmp(a->tenant, a->tenant_len, b->tenant, b->tenant_len);
	return c != 0
	    ? c
	    : bytes_cmp(a->stream, a->stream_len, b->stream, b->stream_len);
}

static pg_stream *
pg_stream_get(pg_stream *st, size_t n, const char *tenant, size_t tl,
    const char *stream, size_t sl)
{
	pg_stream key = { tenant, stream, tl, sl, 0, 0, false };
	return bsearch(&key, st, n, sizeof(*st), pg_stream_cmp);
}

static pg_stream *
pg_stream_find(pg_stream *st, size_t n, const store_commit *c)
{
	return pg_stream_get(
	    st, n, c->tenant, c->tenant_len, c->stream, c->stream_len);
}

static const char deleted_stream[] = STORE_DELETED_STREAM;

/* One row the group writes: an event of a commit, or a deletion's
 * notification; its record in the writer's buffer. */
typedef struct pg_row {
	uint64_t    position, revision;
	const char *tenant, *stream;
	size_t      tenant_len, stream_len;
	uint8_t     id[16];
	size_t      off, len; /* the record, in b->enc */
} pg_row;

/* A set of event ids (open addressing): those the log holds and those
 * the group writes. */
typedef struct idset {
	uint8_t (*v)[16];
	bool  *used;
	size_t cap;
} idset;

static bool
idset_init(idset *h, size_t n)
{
	h->cap = 16;
	while (h->cap < 2 * n)
		h->cap *= 2;
	h->v    = malloc(h->cap * 16);
	h->used = calloc(h->cap, sizeof(bool));
	return h->v != NULL && h->used != NULL;
}

static void
idset_free(idset *h)
{
	free(h->v);
	free(h->used);
}

/* Whether id is in the set; add it when add. */
static bool
idset_has(idset *h, const uint8_t id[16], bool add)
{
	uint64_t x;
	memcpy(&x, id, 8);
	for (size_t i = (size_t) (x * 0x9E3779B97F4A7C15ULL) & (h->cap - 1);;
	     i        = (i + 1) & (h->cap - 1)) {
		if (!h->used[i]) {
			if (add) {
				h->used[i] = true;
				memcpy(h->v[i], id, 16);
			}
			return false;
		}
		if (memcmp(h->v[i], id, 16) == 0)
			return true;
	}
}

/* A text[] literal of the hex of field(i) for i < n: {6162,...}, for
 * decode(x, 'hex') (bytea arrays in text need quoting; hex does not). */
static char *
hex_array(const pg_stream *st, size_t n, bool stream)
{
	static const char hx[] = "0123456789abcdef";
	size_t            len  = 3;
	for (size_t i = 0; i < n; i++)
		len += 2 * (stream ? st[i].stream_len : st[i].tenant_len) + 1;
	char *a = malloc(len), *p = a;
	if (a == NULL)
		return NULL;
	*p++ = '{';
	for (size_t i = 0; i < n; i++) {
		const char *v = stream ? st[i].stream : st[i].tenant;
		size_t      l = stream ? st[i].stream_len : st[i].tenant_len;
		if (i > 0)
			*p++ = ',';
		for (size_t j = 0; j < l; j++) {
			*p++ = hx[(uint8_t) v[j] >> 4];
			*p++ = hx[(uint8_t) v[j] & 15];
		}
	}
	*p++ = '}';
	*p   = '\0';
	return a;
}

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

/* Fail every commit of the group that is still SL_OK. */
static void
pg_fail_all(pg_group *g, int code, const char *msg)
{
	for (size_t i = 0; i < g->n; i++)
		if (g->v[i]->rc == SL_OK)
			store_fail(g->v[i], code, "%s", msg);
}

/*
 * The writer's statements go in pipelines (libpq's pipeline mode): the
 * reads under the locks in one round trip, the writes in one, COMMIT
 * alone. A failed statement or a lost connection ends the transaction:
 * the connection is dropped (the server rolls back what it had, nothing
 * having been committed) and made again for the next group.
 */
static bool
pg_send(pg_group *g, const char *sql, int n, const char *const *pv,
    const int *pl, const int *pf, int binary)
{
	if (!PQsendQueryParams(g->b->wconn, sql, n, NULL, pv, pl, pf, binary))
		return false;
	g->sent++;
	return true;
}

/* Whether an error ended the session, not just the statement: the
 * server going down (57P01..57P03), a connection failure (class 08), any
 * FATAL. Then what the database did is its to tell, not this result's. */
static bool
pg_session_lost(const PGresult *r)
{
	const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	if (PQresultStatus(r) == PGRES_FATAL_ERROR && state == NULL)
		return true; /* libpq's own: the connection failed */
	return (sev != NULL
	           && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0))
	    || (state != NULL
	        && (strncmp(state, "08", 2) == 0
	            || strncmp(state, "57P", 3) == 0));
}

/* Sync the pipeline and read the results of what was sent: the first
 * n_keep into keep[] (the caller clears them; NULL where none came).
 * @return whether every statement succeeded; else g->err says why. */
static bool
pg_sync(pg_group *g, PGresult **keep, size_t n_keep, const char *what)
{
	PGconn *db = g->b->wconn;
	bool    ok = PQpipelineSync(db) == 1;
	/* one round trip: the server answers within the timeout or the
	 * session is taken as lost (a COMMIT then is looked up) */
	int64_t deadline = mono_ns() + (int64_t) g->b->timeout_ms * 1000000;
	char    late[PG_ERR];

	/* anything but a plain statement error (a result saying ERROR) is
	 * taken as the session lost: libpq may not know it yet */
	g->lost   = !ok;
	g->err[0] = '\0';
	for (size_t i = 0; i < n_keep; i++)
		keep[i] = NULL;
	late[0] = '\0';
	for (size_t i = 0; ok && i < g->sent; i++) {
		if (!pg_wait_ready(db, deadline, late, sizeof(late))) {
			ok      = false;
			g->lost = true;
			break;
		}
		PGresult *r = PQgetResult(db);
		if (r == NULL) {
			ok      = false;
			g->lost = true;
			break;
		}
		if (!pg_ok(r)) {
			ok = false;
			if (pg_session_lost(r))
				g->lost = true;
			if (g->err[0] == '\0')
				pg_msg(g->err, sizeof(g->err), what,
				    PQresultErrorMessage(r));
		}
		if (i < n_keep)
			keep[i] = r;
		else
			PQclear(r);
		if (!pg_wait_ready(db, deadline, late, sizeof(late))) {
			ok      = false;
			g->lost = true;
			break;
		}
		PGresult *end = PQgetResult(db); /* each query's end */
		if (end != NULL) {
			PQclear(end);
			ok      = false;
			g->lost = true;
		}
	}
	g->sent = 0;
	if (ok && !pg_wait_ready(db, deadline, late, sizeof(late))) {
		ok      = false;
		g->lost = true;
	}
	if (ok) {
		PGresult *r = PQgetResult(db);
		ok = r != NULL && PQresultStatus(r) == PGRES_PIPELINE_SYNC;
		g->lost = !ok;
		PQclear(r);
	}
	if (!ok && g->err[0] == '\0')
		pg_msg(g->err, sizeof(g->err), what,
		    late[0] != '\0' ? late : PQerrorMessage(db));
	return ok;
}

/* The transaction failed before COMMIT: nothing was written. A lost
 * connection is EUNAVAILABLE, anything else ESTORAGE (logged). */
static void
pg_txn_failed(pg_group *g)
{
	if (g->lost || PQstatus(g->b->wconn) != CONNECTION_OK) {
		pg_fail_all(g, SL_EUNAVAILABLE, g->err);
	} else {
		log_error("store", "postgresql: %s", g->err);
		pg_fail_all(g, SL_ESTORAGE, g->err);
	}
	PQfinish(g->b->wconn); /* rolls back on the server */
	g->b->wconn = NULL;
}

/* The group's streams, sorted and unique (their rows are locked in this
 * order), and their query. */
static bool
pg_send_streams(pg_group *g)
{
	size_t k = 0, m = 0;
	char  *ta, *sa;

	g->st = calloc(2 * g->n, sizeof(*g->st));
	if (g->st == NULL)
		return false;
	for (size_t i = 0; i < g->n; i++) {
		const store_commit *c = g->v[i];
		g->st[m++] = (pg_stream) { c->tenant, c->stream, c->tenant_len,
			c->stream_len, 0, 0, false };
		if (c->trunc != STORE_TRUNC_NONE) /* its notification's too */
			g->st[m++] = (pg_stream) { c->tenant, deleted_stream,
				c->tenant_len, sizeof(deleted_stream) - 1, 0,
				0, false };
	}
	qsort(g->st, m, sizeof(*g->st), pg_stream_cmp);
	for (size_t i = 0; i < m; i++)
		if (k == 0 || pg_stream_cmp(&g->st[k - 1], &g->st[i]) != 0)
			g->st[k++] = g->st[i];
	g->n_st           = k;
	ta                = hex_array(g->st, k, false);
	sa                = hex_array(g->st, k, true);
	const char *pv[2] = { ta, sa };
	bool        ok    = ta != NULL && sa != NULL
	    && pg_send(g,
	        "SELECT tenant, stream, next_revision, truncate_before FROM "
	        "sl_streams WHERE (tenant, stream) IN (SELECT decode(t, "
	        "'hex'), decode(s, 'hex') FROM unnest($1::text[], "
	        "$2::text[]) AS u(t, s)) ORDER BY tenant, stream FOR UPDATE",
	        2, pv, NULL, NULL, 1);
	free(ta);
	free(sa);
	return ok;
}

static void
pg_apply_streams(pg_group *g, const PGresult *r)
{
	for (int i = 0; i < PQntuples(r); i++) {
		pg_stream *st = pg_stream_get(g->st, g->n_st,
		    PQgetvalue(r, i, 0), (size_t) PQgetlength(r, i, 0),
		    PQgetvalue(r, i, 1), (size_t) PQgetlength(r, i, 1));
		if (st == NULL || PQgetlength(r, i, 2) != 8
		    || PQgetlength(r, i, 3) != 8)
			continue;
		st->next
		    = store_get_be64((const uint8_t *) PQgetvalue(r, i, 2));
		st->tb = store_get_be64((const uint8_t *) PQgetvalue(r, i, 3));
	}
}

/* The query for the group's event ids that the log holds already. */
static bool
pg_send_ids(pg_group *g)
{
	char  *a   = malloc(g->n_events * 37 + 3);
	size_t len = 0;
	if (a == NULL)
		return false;
	a[len++] = '{';
	for (size_t i = 0; i < g->n; i++)
		for (size_t j = 0; j < g->v[i]->n_events; j++) {
			if (len > 1)
				a[len++] = ',';
			ev_uuid_text(g->v[i]->events[j].id, a + len);
			len += 36;
		}
	a[len++]          = '}';
	a[len]            = '\0';
	const char *pv[1] = { a };
	bool        ok    = pg_send(g,
	              "SELECT event_id FROM sl_events WHERE event_id = "
	                        "ANY($1::uuid[])",
	              1, pv, NULL, NULL, 1);
	free(a);
	return ok;
}

/*
 * Under the head lock every position below the head is committed: the
 * ones this node's mirror lacks (other nodes' commits the follower has
 * not appended yet, PG_PAGE at most) are read with the group's reads, so
 * that the writer can append them with the group's own after COMMIT and
 * acknowledge at once, without a round trip through the follower (nor a
 * wait for it should the database go away right after the COMMIT).
 */
static bool
pg_send_gap(pg_group *g, char *from)
{
	const char *pv[1] = { from };
	g->mirror_next    = store_next_position(g->b->s);
	snprintf(from, 24, "%" PRIu64, g->mirror_next);
	return pg_send(g,
	    "SELECT position, record FROM sl_events WHERE position >= "
	    "$1::bigint AND position < (SELECT next FROM sl_head WHERE one = "
	    "1) ORDER BY position LIMIT " /* PG_PAGE + 1 */ "1001",
	    1, pv, NULL, NULL, 1);
}

/* Encode commit c's events at positions from g->end, revisions from
 * next: SL_OK, or c's rc (its records dropped from b->enc). */
static int
pg_encode(pg_group *g, store_commit *c, uint64_t next)
{
	msgpack_packer pk;
	size_t         start = g->b->enc.size, rows = g->n_rows;

	msgpack_packer_init(&pk, &g->b->enc, msgpack_sbuffer_write);
	for (size_t i = 0; i < c->n_events; i++) {
		size_t off = g->b->enc.size;
		int    rc = ev_encode(&pk, c->tenant, c->tenant_len, c->stream,
		       c->stream_len, next + i, &c->events[i]);
		if (rc != SL_OK) {
			const char *nul = ev_new_nul_field(&c->events[i]);
			g->b->enc.size  = start;
			g->n_rows       = rows;
			if (nul != NULL)
				return store_fail(c, rc,
				    "events[%zu]: field '%s' contains a NUL "
				    "byte",
				    i, nul);
			return store_fail(
			    c, rc, "events[%zu] cannot be encoded", i);
		}
		pg_row *row = &g->rows[g->n_rows++];
		*row        = (pg_row) { .position = g->end + i,
			       .revision           = next + i,
			       .tenant             = c->tenant,
			       .stream             = c->stream,
			       .tenant_len         = c->tenant_len,
			       .stream_len         = c->stream_len,
			       .off                = off,
			       .len                = g->b->enc.size - off };
		memcpy(row->id, c->events[i].id, 16);
	}
	return SL_OK;
}

/* A deletion (c->trunc), its revision checked: the stream's new mark and
 * the notification, the next revision of the tenant's STORE_DELETED_STREAM,
 * as store_write_delete writes them; the mirror takes the mark from the
 * notification (store_mirror_delete). */
static void
pg_delete(pg_group *g, store_commit *c, pg_stream *st)
{
	pg_stream *ds = pg_stream_get(g->st, g->n_st, c->tenant, c->tenant_len,
	    deleted_stream, sizeof(deleted_stream) - 1);
	size_t     off = g->b->enc.size;
	pg_row    *row = &g->rows[g->n_rows];
	uint64_t   tb;

	if (store_delete_mark(c, st->next, st->tb, &tb) != SL_OK)
		return;
	if (store_delete_encode(&g->b->enc, c, st->next, tb, ds->next, row->id)
	    != SL_OK) {
		g->b->enc.size = off;
		return;
	}
	row->position   = g->end;
	row->revision   = ds->next;
	row->tenant     = c->tenant;
	row->tenant_len = c->tenant_len;
	row->stream     = deleted_stream;
	row->stream_len = sizeof(deleted_stream) - 1;
	row->off        = off;
	row->len        = g->b->enc.size - off;
	g->n_rows++;
	c->first_position  = g->end;
	c->first_revision  = ds->next;
	c->stream_revision = st->next - 1;
	c->truncate_before = tb;
	st->tb             = tb;
	st->changed        = true;
	ds->next++;
	ds->changed = true;
	g->end++;
}

/* Revision checks and event ids, in the group's order, as the LMDB
 * writer does them: each commit sees the ones accepted before it. */
static void
pg_assign(pg_group *g, idset *h)
{
	g->end = g->head;
	for (size_t i = 0; i < g->n; i++) {
		store_commit *c  = g->v[i];
		pg_stream    *st = pg_stream_find(g->st, g->n_st, c);
		size_t        j;

		if (store_check_expected(c, st->next) != SL_OK)
			continue;
		if (c->trunc != STORE_TRUNC_NONE) {
			pg_delete(g, c, st);
			continue;
		}
		for (j = 0; j < c->n_events; j++) {
			if (!idset_has(h, c->events[j].id, false))
				continue;
			char id[37];
			ev_uuid_text(c->events[j].id, id);
			store_fail(c, SL_EEXIST,
			    "events[%zu]: event id %s is in the log already",
			    j, id);
			break;
		}
		if (j < c->n_events)
			continue;
		/* its ids join the set; one already there is a repeat inside
		 * this commit (the ones added before it stay: a later commit
		 * of the group repeating them is refused too) */
		for (j = 0; j < c->n_events; j++)
			if (idset_has(h, c->events[j].id, true))
				break;
		if (j < c->n_events) {
			store_fail(c, SL_EEXIST,
			    "events[%zu]: its event id is repeated in the "
			    "commit",
			    j);
			continue;
		}
		if (pg_encode(g, c, st->next) != SL_OK)
			continue;
		c->first_position = g->end;
		c->first_revision = st->next;
		g->end += c->n_events;
		st->next += c->n_events;
		st->changed = true;
	}
}

/* Send the INSERTs of the accepted events, PG_ROWS_PER_STMT rows each. */
static bool
pg_send_events(pg_group *g)
{
	size_t       per = 6, max = PG_ROWS_PER_STMT;
	const char **pv = malloc(max * per * sizeof(*pv));
	int         *pl = malloc(max * per * sizeof(*pl));
	int         *pf = malloc(max * per * sizeof(*pf));
	char(*num)[24]  = malloc(max * 2 * sizeof(*num));
	char(*ids)[37]  = malloc(max * sizeof(*ids));
	char *sql       = malloc(128 + max * 90);
	bool  ok        = pv && pl && pf && num && ids && sql;

	for (size_t at = 0; ok && at < g->n_rows; at += max) {
		size_t n   = g->n_rows - at < max ? g->n_rows - at : max;
		size_t len = (size_t) sprintf(sql,
		    "INSERT INTO sl_events (position, event_id, tenant, "
		    "stream, "
		    "revision, record) VALUES ");
		for (size_t i = 0; i < n; i++) {
			size_t        e = at + i, p = i * per;
			const pg_row *w = &g->rows[e];
			len += (size_t) sprintf(sql + len,
			    "%s($%zu::bigint,$%zu::uuid,$%zu,$%zu,$%zu::"
			    "bigint,"
			    "$%zu)",
			    i ? "," : "", p + 1, p + 2, p + 3, p + 4, p + 5,
			    p + 6);
			snprintf(num[2 * i], 24, "%" PRIu64, w->position);
			snprintf(num[2 * i + 1], 24, "%" PRIu64, w->revision);
			ev_uuid_text(w->id, ids[i]);
			pv[p]     = num[2 * i];
			pv[p + 1] = ids[i];
			pv[p + 2] = w->tenant;
			pv[p + 3] = w->stream;
			pv[p + 4] = num[2 * i + 1];
			pv[p + 5] = g->b->enc.data + w->off;
			pl[p]     = 0;
			pl[p + 1] = 0;
			pl[p + 2] = (int) w->tenant_len;
			pl[p + 3] = (int) w->stream_len;
			pl[p + 4] = 0;
			pl[p + 5] = (int) w->len;
			pf[p] = pf[p + 1] = pf[p + 4] = 0;
			pf[p + 2] = pf[p + 3] = pf[p + 5] = 1;
		}
		ok = pg_send(g, sql, (int) (n * per), pv, pl, pf, 0);
	}
	free(pv);
	free(pl);
	free(pf);
	free(num);
	free(ids);
	free(sql);
	return ok;
}

/* Send the changed streams' next revisions. */
static bool
pg_send_streams_update(pg_group *g)
{
	size_t       max = PG_ROWS_PER_STMT, k = 0;
	const char **pv = malloc(max * 3 * sizeof(*pv));
	int         *pl = malloc(max * 3 * sizeof(*pl));
	int         *pf = malloc(max * 4 * sizeof(*pf));
	char(*num)[24]  = malloc(max * 2 * sizeof(*num));
	char *sql       = malloc(256 + max * 64);
	bool  ok        = pv && pl && pf && num && sql;

	while (ok && k < g->n_st) {
		size_t n   = 0;
		size_t len = (size_t) sprintf(sql,
		    "INSERT INTO sl_streams (tenant, stream, next_revision, "
		    "truncate_before) VALUES ");
		for (; k < g->n_st && n < max; k++) {
			pg_stream *st = &g->st[k];
			if (!st->changed)
				continue;
			size_t p = n * 4;
			len += (size_t) sprintf(sql + len,
			    "%s($%zu,$%zu,$%zu::bigint,$%zu::bigint)",
			    n ? "," : "", p + 1, p + 2, p + 3, p + 4);
			snprintf(num[2 * n], 24, "%" PRIu64, st->next);
			snprintf(num[2 * n + 1], 24, "%" PRIu64, st->tb);
			pv[p]     = st->tenant;
			pv[p + 1] = st->stream;
			pv[p + 2] = num[2 * n];
			pv[p + 3] = num[2 * n + 1];
			pl[p]     = (int) st->tenant_len;
			pl[p + 1] = (int) st->stream_len;
			pl[p + 2] = pl[p + 3] = 0;
			pf[p] = pf[p + 1] = 1;
			pf[p + 2] = pf[p + 3] = 0;
			n++;
		}
		if (n == 0)
			break;
		sprintf(sql + len,
		    " ON CONFLICT (tenant, stream) DO UPDATE SET "
		    "next_revision = EXCLUDED.next_revision, "
		    "truncate_before = EXCLUDED.truncate_before");
		ok = pg_send(g, sql, (int) (n * 4), pv, pl, pf, 0);
	}
	free(pv);
	free(pl);
	free(pf);
	free(num);
	free(sql);
	return ok;
}

/* After COMMIT: the gap and the group's rows into the mirror, which
 * acknowledges the commits. When the mirror moved otherwise meanwhile
 * (the follower) the rows it holds are skipped; when it lacks more than
 * the gap, the follower appends them all and the commits wait for it. */
static void
pg_mirror_group(pg_group *g)
{
	size_t     n_gap = g->gap != NULL ? (size_t) PQntuples(g->gap) : 0;
	store_row *rows  = malloc((n_gap + g->n_rows) * sizeof(*rows));
	uint64_t   one   = 1;
	size_t     k     = 0;

	if (rows != NULL) {
		for (size_t i = 0; i < n_gap; i++) {
			if (PQgetlength(g->gap, (int) i, 0) != 8)
				break;
			rows[k].position = store_get_be64(
			    (const uint8_t *) PQgetvalue(g->gap, (int) i, 0));
			rows[k].data = PQgetvalue(g->gap, (int) i, 1);
			rows[k].len = (size_t) PQgetlength(g->gap, (int) i, 1);
			k++;
		}
		for (size_t e = 0; e < g->n_rows; e++) {
			rows[k].position = g->rows[e].position;
			rows[k].data     = g->b->enc.data + g->rows[e].off;
			rows[k].len      = g->rows[e].len;
			k++;
		}
		int rc = store_mirror_append(g->b->s, rows, k, true);
		if (rc != SL_OK && rc != SL_ENOTFOUND) {
			/* committed, which is what the ack promises; the
			 * follower retries the mirror */
			log_error("store",
			    "postgresql: positions %" PRIu64 "..%" PRIu64
			    " are committed but this node's mirror cannot "
			    "take "
			    "them (%s): acknowledged without it",
			    g->head, g->end - 1, sl_strerror(rc));
			g->ack_now = true;
		}
		free(rows);
	}
	/* the follower checks (and appends what the writer could not) */
	if (write(g->b->kick_fd, &one, sizeof(one)) < 0)
		log_debug("store", "follower kick: %s", strerror(errno));
}

/* The writer's connection, once checked: non-blocking (its round trips
 * wait in pg_wait_ready), and what names its session on the server for
 * the doubt look-up: the server process and this end's TCP port. */
static int
pg_writer_setup(pgb *b)
{
	struct sockaddr_storage ss;
	socklen_t               sl = sizeof(ss);

	if (PQsetnonblocking(b->wconn, 1) != 0)
		return SL_ESTORAGE;
	b->wpid  = PQbackendPID(b->wconn);
	b->wport = -1;
	if (getsockname(PQsocket(b->wconn), (struct sockaddr *) &ss, &sl) == 0) {
		if (ss.ss_family == AF_INET)
			b->wport = ntohs(((struct sockaddr_in *) &ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			b->wport
			    = ntohs(((struct sockaddr_in6 *) &ss)->sin6_port);
	}
	return SL_OK;
}

/* The writer's connection, (re)made when needed. */
static bool
pg_writer_conn(pgb *b, char *err, size_t errlen)
{
	if (b->wconn != NULL && PQstatus(b->wconn) == CONNECTION_OK)
		return true;
	if (b->wconn != NULL)
		PQfinish(b->wconn);
	b->wconn = pg_connect(b->url, b->timeout_ms, err, errlen);
	if (b->wconn != NULL) {
		int rc = pg_check_schema(b->wconn, err, errlen);
		if (rc == SL_OK) /* the database may have lost a tail */
			rc = pg_check_mirror(b, b->wconn, err, errlen);
		if (rc == SL_ECONFIG && strstr(err, "mirror") != NULL)
			pg_set_fatal(b, err);
		if (rc == SL_OK)
			rc = pg_writer_setup(b);
		if (rc != SL_OK) {
			PQfinish(b->wconn);
			b->wconn = NULL;
		}
	}
	if (b->wconn == NULL) {
		if (!b->wdown)
			log_warn("store",
			    "postgresql: %s; commits answer EUNAVAILABLE "
			    "until "
			    "it answers",
			    err);
		b->wdown = true;
		return false;
	}
	if (b->wdown)
		log_info("store", "postgresql: the writer is connected again");
	b->wdown = false;
	return true;
}

/*
 * The old session's server process may still be alive with the COMMIT in
 * its input (a server that hung, then resumed; a network that lost only
 * the answer): it could commit after a look-up said it did not. So it is
 * ended first, and waited for (pg_terminate_backend with a timeout), on
 * the new connection: named by its process id and its client's port (a
 * process id alone may be another session's after a restart or on
 * another server). @return whether it is gone (or was already).
 */
static bool
pg_end_old_session(pgb *b, int pid, int port)
{
	char        spid[16], sport[16], wait[16], err[PG_ERR];
	const char *pv[3] = { spid, sport, wait };

	snprintf(spid, sizeof(spid), "%d", pid);
	snprintf(sport, sizeof(sport), "%d", port);
	snprintf(wait, sizeof(wait), "%d", b->timeout_ms);
	PGresult *r = pg_exec_timed(b->wconn, b->timeout_ms * 2,
	    "SELECT pg_terminate_backend(pid, $3::bigint) FROM "
	    "pg_stat_activity WHERE pid = $1::int AND coalesce(client_port, "
	    "-1) = $2::int AND usename = current_user",
	    3, pv, 0, err, sizeof(err));
	bool gone = r != NULL && pg_ok(r)
	    && (PQntuples(r) == 0 || strcmp(PQgetvalue(r, 0, 0), "t") == 0);
	if (r == NULL || !pg_ok(r)) {
		if (r != NULL)
			pg_msg(err, sizeof(err), "", PQresultErrorMessage(r));
		log_warn("store", "postgresql: ending the old session: %s", err);
	}
	if (r == NULL) {
		PQfinish(b->wconn);
		b->wconn = NULL;
	}
	PQclear(r);
	return gone;
}

/*
 * The connection broke (or the server stopped answering) while COMMIT
 * was on its way: the transaction may or may not have committed. On a
 * new connection, end the old session (pg_end_old_session), then ask
 * whether the group's first row (an event, or a deletion's notification)
 * is in the log (its id is unique there), as often as it takes; only a
 * daemon that stops before the database answers gives up, saying so.
 * @return whether the group was written.
 */
static bool
pg_resolve_doubt(pg_group *g)
{
	char id[37], err[PG_ERR];
	ev_uuid_text(g->rows[0].id, id); /* at g->head */
	log_warn("store",
	    "postgresql: connection lost during COMMIT of positions %" PRIu64
	    "..%" PRIu64 "; looking up event %s",
	    g->head, g->end - 1, id);
	int old_pid = g->b->wpid, old_port = g->b->wport;
	PQfinish(g->b->wconn);
	g->b->wconn = NULL;
	for (int tries = 0;; tries++) {
		if (tries > 0) {
			if (store_closing(g->b->s)) {
				snprintf(g->err, sizeof(g->err),
				    "connection lost during COMMIT and the "
				    "daemon stopped before PostgreSQL "
				    "answered: "
				    "outcome unknown, look up event id %s",
				    id);
				return false;
			}
			usleep(200 * 1000);
		}
		if (!pg_writer_conn(g->b, err, sizeof(err))) {
			/* the commits queued behind this one need not wait */
			store_fail_queued(g->b->s, SL_EUNAVAILABLE, err);
			continue;
		}
		if (!pg_end_old_session(g->b, old_pid, old_port))
			continue;
		const char *pv[1] = { id };
		PGresult   *r     = pg_exec_timed(g->b->wconn,
		          g->b->timeout_ms,
		          "SELECT position FROM sl_events WHERE event_id = $1::uuid",
		          1, pv, 0, err, sizeof(err));
		if (r == NULL || !pg_ok(r)) {
			if (r == NULL) {
				PQfinish(g->b->wconn);
				g->b->wconn = NULL;
			}
			PQclear(r);
			continue;
		}
		bool written = PQntuples(r) > 0
		    && strtoull(PQgetvalue(r, 0, 0), NULL, 10)
		        == g->rows[0].position;
		PQclear(r);
		log_warn("store", "postgresql: event %s is %s", id,
		    written ? "in the log: the group committed"
		            : "not in the log: the group did not commit");
		snprintf(g->err, sizeof(g->err),
		    "connection lost during COMMIT: it did not commit");
		return written;
	}
}

/* Phase one, under the head row's lock: the streams' revisions, the
 * event ids known already and the mirror's gap, in one round trip. */
static bool
pg_read_locked(pg_group *g, idset *h)
{
	PGresult *r[5];
	char      from[24];
	bool      ok;

	/* The head row first, always: every appender on every node waits
	 * here, so positions are handed out in commit order. */
	ok = pg_send(g, "BEGIN", 0, NULL, NULL, NULL, 0)
	    && pg_send(g, "SELECT next FROM sl_head WHERE one = 1 FOR UPDATE",
	        0, NULL, NULL, NULL, 0)
	    && pg_send_streams(g) && pg_send_ids(g) && pg_send_gap(g, from);
	if (!ok) {
		pg_msg(g->err, sizeof(g->err), "send",
		    PQerrorMessage(g->b->wconn));
		return false;
	}
	ok = pg_sync(g, r, 5, "read under the head lock");
	if (ok && PQntuples(r[1]) != 1) {
		snprintf(g->err, sizeof(g->err), "sl_head has no row");
		ok = false;
	}
	if (ok) {
		g->head = strtoull(PQgetvalue(r[1], 0, 0), NULL, 10);
		if (g->head < g->mirror_next) {
			/* never positions the mirror holds other events at */
			char msg[PG_ERR];
			snprintf(msg, sizeof(msg),
			    "the database's head is %" PRIu64 ", this node's "
			    "mirror holds up to %" PRIu64 ": the database lost "
			    "events this node mirrored (a failover to a replica "
			    "that had not received them?)",
			    g->head, g->mirror_next);
			pg_set_fatal(g->b, msg);
			snprintf(g->err, sizeof(g->err), "%s", msg);
			ok = false;
		}
	}
	if (ok) {
		pg_apply_streams(g, r[2]);
		for (int i = 0; i < PQntuples(r[3]); i++)
			if (PQgetlength(r[3], i, 0) == 16)
				idset_has(h,
				    (const uint8_t *) PQgetvalue(r[3], i, 0),
				    true);
		/* the whole gap, or the follower fills it */
		if (g->mirror_next < g->head
		    && (uint64_t) PQntuples(r[4])
		        == g->head - g->mirror_next) {
			g->gap = r[4];
			r[4]   = NULL;
		}
	}
	for (int i = 0; i < 5; i++)
		PQclear(r[i]);
	return ok;
}

static bool
pg_write_group(void *ctx, store_commit **v, size_t n)
{
	pgb      *b   = ctx;
	pg_group  g   = { .b = b, .v = v, .n = n };
	idset     ids = { 0 };
	PGresult *r   = NULL;
	char      sql[160];
	bool      committed;

	pthread_mutex_lock(&b->mu);
	if (b->fatal[0] != '\0') {
		snprintf(g.err, sizeof(g.err), "%s", b->fatal);
		pthread_mutex_unlock(&b->mu);
		pg_fail_all(&g, SL_ESTORAGE, g.err);
		return false;
	}
	pthread_mutex_unlock(&b->mu);
	for (size_t i = 0; i < n; i++)
		g.n_events += v[i]->n_events;
	if (!pg_writer_conn(b, g.err, sizeof(g.err))) {
		pg_fail_all(&g, SL_EUNAVAILABLE, g.err);
		return false;
	}
	/* an event a row, a deletion its notification */
	g.rows = malloc((g.n_events + n) * sizeof(*g.rows));
	if (g.rows == NULL || !idset_init(&ids, g.n_events)) {
		pg_fail_all(&g, SL_ENOMEM, "out of memory");
		goto out;
	}
	msgpack_sbuffer_clear(&b->enc);
	if (!PQenterPipelineMode(b->wconn)) {
		pg_msg(g.err, sizeof(g.err), "pipeline mode",
		    PQerrorMessage(b->wconn));
		pg_txn_failed(&g);
		goto out;
	}
	if (!pg_read_locked(&g, &ids)) {
		pg_txn_failed(&g);
		goto out;
	}
	pg_assign(&g, &ids);
	if (g.end == g.head) { /* every commit refused */
		if (!pg_send(&g, "ROLLBACK", 0, NULL, NULL, NULL, 0)
		    || !pg_sync(&g, NULL, 0, "rollback")
		    || !PQexitPipelineMode(b->wconn)) {
			PQfinish(b->wconn);
			b->wconn = NULL;
		}
		goto out;
	}
	/* Phase two: the writes, in one round trip. */
	snprintf(sql, sizeof(sql),
	    "UPDATE sl_head SET next = %" PRIu64 " WHERE one = 1", g.end);
	char notify[64];
	snprintf(
	    notify, sizeof(notify), "NOTIFY sl_log, '%" PRIu64 "'", g.end);
	if (!pg_send_events(&g) || !pg_send_streams_update(&g)
	    || !pg_send(&g, sql, 0, NULL, NULL, NULL, 0)
	    || !pg_send(&g, notify, 0, NULL, NULL, NULL, 0)) {
		pg_msg(g.err, sizeof(g.err), "send", PQerrorMessage(b->wconn));
		pg_txn_failed(&g);
		goto out;
	}
	if (!pg_sync(&g, NULL, 0, "write")) {
		pg_txn_failed(&g);
		goto out;
	}
	/* Phase three: COMMIT alone, so that only a connection lost here
	 * leaves a doubt. */
	committed = pg_send(&g, "COMMIT", 0, NULL, NULL, NULL, 0)
	    && pg_sync(&g, &r, 1, "commit")
	    && strcmp(PQcmdStatus(r), "COMMIT") == 0;
	PQclear(r);
	if (!committed && (g.lost || PQstatus(b->wconn) != CONNECTION_OK)) {
		committed = pg_resolve_doubt(&g);
		if (!committed)
			pg_fail_all(&g, SL_EUNAVAILABLE, g.err);
	} else if (!committed) {
		pg_txn_failed(&g);
	} else if (!PQexitPipelineMode(b->wconn)) {
		PQfinish(b->wconn); /* committed; a fresh one next time */
		b->wconn = NULL;
	}
	if (committed)
		pg_mirror_group(&g);
out:
	PQclear(g.gap);
	idset_free(&ids);
	free(g.st);
	free(g.rows);
	return g.ack_now;
}

/* ---- the follower ---- */

/* Append what the database holds from the mirror's head, a page at a
 * time. @return rows appended (PG_PAGE: there may be more), -1 when the
 * connection failed, -2 when the mirror cannot take them (fatal), -3
 * when LMDB failed (full, or an I/O error: retried more slowly). */
static int
pg_follow_page(pgb *b, PGconn *db)
{
	char        pos[24];
	const char *pv[1] = { pos };
	store_row   rows[PG_PAGE];
	uint64_t    next = store_next_position(b->s);
	int         n, rc;

	snprintf(pos, sizeof(pos), "%" PRIu64, next);
	char      msg[PG_ERR];
	PGresult *r = pg_exec_timed(db, b->timeout_ms,
	    "SELECT position, record FROM sl_events WHERE position >= "
	    "$1::bigint ORDER BY position LIMIT " /* PG_PAGE */ "1000",
	    1, pv, 1, msg, sizeof(msg));
	if (r == NULL || !pg_ok(r)) {
		if (r != NULL)
			pg_msg(msg, sizeof(msg), "follow",
			    PQresultErrorMessage(r));
		log_warn("store", "postgresql: %s", msg);
		PQclear(r);
		return -1;
	}
	n = PQntuples(r);
	for (int i = 0; i < n; i++) {
		if (PQgetlength(r, i, 0) != 8) {
			PQclear(r);
			return -1;
		}
		rows[i].position
		    = store_get_be64((const uint8_t *) PQgetvalue(r, i, 0));
		rows[i].data = PQgetvalue(r, i, 1);
		rows[i].len  = (size_t) PQgetlength(r, i, 1);
	}
	rc = store_mirror_append(b->s, rows, (size_t) n, false);
	PQclear(r);
	if (rc == SL_EINTERNAL || rc == SL_ENOTFOUND) {
		pg_set_fatal(b,
		    "the database's log cannot be mirrored here (a gap, or a "
		    "record that is no event; see the log)");
		return -2;
	}
	if (rc != SL_OK) {
		log_error("store", "mirror: %s: retrying in a second",
		    sl_strerror(rc));
		return -3;
	}
	return n;
}

static bool
pg_stopping(pgb *b)
{
	pthread_mutex_lock(&b->mu);
	bool stop = b->stop;
	pthread_mutex_unlock(&b->mu);
	return stop;
}

/* Wait up to ms for a notification, the writer's kick or stop. @return
 * false when the connection failed. */
static bool
pg_follow_wait(pgb *b, PGconn *db, int ms)
{
	struct pollfd pf[2] = { { b->kick_fd, POLLIN, 0 },
		{ db != NULL ? PQsocket(db) : -1, POLLIN, 0 } };
	if (poll(pf, db != NULL ? 2 : 1, ms) < 0 && errno != EINTR)
		return true;
	if (pf[0].revents & POLLIN) {
		uint64_t x;
		if (read(b->kick_fd, &x, sizeof(x)) < 0)
			(void) 0; /* EAGAIN: someone drained it */
	}
	if (db != NULL && (pf[1].revents & (POLLIN | POLLERR | POLLHUP))) {
		if (!PQconsumeInput(db))
			return false;
		PGnotify *nt;
		while ((nt = PQnotifies(db)) != NULL)
			PQfreemem(nt);
	}
	return true;
}

static PGconn *
pg_follow_connect(pgb *b, bool *down)
{
	char    err[PG_ERR];
	PGconn *db = pg_connect(b->url, b->timeout_ms, err, sizeof(err));
	int     rc = SL_ESTORAGE;

	if (db != NULL) {
		rc = pg_check_schema(db, err, sizeof(err));
		if (rc == SL_OK)
			rc = pg_check_mirror(b, db, err, sizeof(err));
		if (rc == SL_OK) {
			PGresult *r = PQexec(db, "LISTEN sl_log");
			if (!pg_ok(r) || PQsetnonblocking(db, 1) != 0) {
				pg_msg(err, sizeof(err), "listen",
				    PQerrorMessage(db));
				rc = SL_ESTORAGE;
			}
			PQclear(r);
		}
	}
	if (rc == SL_ECONFIG && strstr(err, "mirror") != NULL)
		pg_set_fatal(b, err);
	if (rc != SL_OK) {
		if (db != NULL)
			PQfinish(db);
		if (!*down)
			log_warn("store",
			    "postgresql: the follower waits: %s "
			    "(the mirror serves reads)",
			    err);
		*down = true;
		return NULL;
	}
	if (*down)
		log_info("store",
		    "postgresql: the follower is connected again at position "
		    "%" PRIu64,
		    store_next_position(b->s));
	*down = false;
	return db;
}

static void *
pg_follower_main(void *arg)
{
	pgb    *b    = arg;
	PGconn *db   = NULL;
	bool    down = false;

	while (!pg_stopping(b)) {
		pthread_mutex_lock(&b->mu);
		bool fatal = b->fatal[0] != '\0';
		pthread_mutex_unlock(&b->mu);
		if (fatal) { /* nothing more is mirrored; wait for stop */
			pg_follow_wait(b, NULL, 1000);
			continue;
		}
		if (db == NULL && (db = pg_follow_connect(b, &down)) == NULL) {
			pg_follow_wait(b, NULL, PG_POLL_MS);
			continue;
		}
		int n = pg_follow_page(b, db);
		if (n == PG_PAGE)
			continue;
		if (n == -3) {
			pg_follow_wait(b, NULL, 1000);
			continue;
		}
		if (n == -1 || PQstatus(db) != CONNECTION_OK) {
			PQfinish(db);
			db   = NULL;
			down = false; /* say it once more */
			pg_follow_wait(
			    b, NULL, PG_POLL_MS); /* not a busy loop */
			continue;
		}
		if (n >= 0 && !pg_follow_wait(b, db, PG_POLL_MS)) {
			PQfinish(db);
			db = NULL;
		}
	}
	if (db != NULL)
		PQfinish(db);
	return NULL;
}

static void
pgb_free(pgb *b)
{
	if (b->wconn != NULL)
		PQfinish(b->wconn);
	close(b->kick_fd);
	pthread_mutex_destroy(&b->mu);
	msgpack_sbuffer_destroy(&b->enc);
	free(b->url);
	free(b);
}

static void
pg_close(void *ctx)
{
	pgb     *b   = ctx;
	uint64_t one = 1;

	pthread_mutex_lock(&b->mu);
	b->stop = true;
	pthread_mutex_unlock(&b->mu);
	if (write(b->kick_fd, &one, sizeof(one)) < 0)
		log_debug("store", "follower stop: %s", strerror(errno));
	pthread_join(b->th, NULL);
	pgb_free(b);
}

static const store_backend pg_backend = {
	.name        = "postgresql",
	.write_group = pg_write_group,
	.close       = pg_close,
};

int
store_pg_attach(store *s, const char *url, int timeout_ms)
{
	char err[PG_ERR];
	pgb *b = calloc(1, sizeof(*b));

	if (b == NULL || (b->url = strdup(url)) == NULL) {
		free(b);
		return SL_ENOMEM;
	}
	b->s          = s;
	b->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
	b->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->kick_fd < 0) {
		free(b->url);
		free(b);
		return SL_ENOMEM;
	}
	msgpack_sbuffer_init(&b->enc);
	pthread_mutex_init(&b->mu, NULL);
	/* A database that answers is checked now, so that a wrong one
	 * stops the daemon at its start rather than at its first commit. */
	b->wconn = pg_connect(url, timeout_ms, err, sizeof(err));
	if (b->wconn != NULL) {
		int rc = pg_check_schema(b->wconn, err, sizeof(err));
		if (rc == SL_OK)
			rc = pg_check_mirror(b, b->wconn, err, sizeof(err));
		if (rc == SL_OK)
			rc = pg_writer_setup(b);
		if (rc != SL_OK) {
			log_error("store", "postgresql: %s", err);
			pgb_free(b);
			return rc == SL_ECONFIG ? SL_ECONFIG : SL_ESTORAGE;
		}
		log_info("store",
		    "postgresql: the log of record (schema %d); this node's "
		    "mirror is at position %" PRIu64,
		    STORE_PG_SCHEMA_VERSION, store_next_position(s));
	} else {
		log_warn("store",
		    "postgresql: %s; the mirror serves reads and commits "
		    "answer EUNAVAILABLE until it answers",
		    err);
		b->wdown = true;
	}
	if (pthread_create(&b->th, NULL, pg_follower_main, b) != 0) {
		pgb_free(b);
		return SL_ENOMEM;
	}
	store_set_backend(s, &pg_backend, b);
	return SL_OK;
}
