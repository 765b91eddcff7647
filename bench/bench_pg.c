/*
 * PostgreSQL's own limit for the event log (issue 20, docs/postgresql.md):
 * a raw libpq program appending events the way the planned backend is to:
 * per transaction, the head row's lock (the next positions), the stream
 * heads, the events' encoded records (372 bytes, as bench_lmdb), committed
 * durably (synchronous_commit on). C clients (threads, one connection
 * each, a stream of their own), B events per transaction.
 *
 *   bench_pg append --conninfo STR --clients C --batch B --seconds S
 *   bench_pg init --conninfo STR      (creates the tables, empties them)
 *
 * Prints "key value" lines (eps, txn_per_s, p50_us, p99_us).
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "common.h"

#define RECORD_BYTES 372

static const char *conninfo;
static int         n_clients = 1, batch = 1;
static double      seconds   = 5;

static PGconn *
connect_db(void)
{
	PGconn *db = PQconnectdb(conninfo);
	if (PQstatus(db) != CONNECTION_OK)
		bench_die("postgresql: %s", PQerrorMessage(db));
	return db;
}

static void
exec_ok(PGconn *db, const char *sql)
{
	PGresult *r = PQexec(db, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK
	    && PQresultStatus(r) != PGRES_TUPLES_OK)
		bench_die("postgresql: %s: %s", sql, PQerrorMessage(db));
	PQclear(r);
}

static void
init_db(void)
{
	PGconn *db = connect_db();
	exec_ok(db, "SET client_min_messages = warning");
	exec_ok(db,
	    "DROP TABLE IF EXISTS sl_events, sl_streams, sl_head;"
	    "CREATE TABLE sl_head (one int PRIMARY KEY CHECK (one = 1), "
	    "  next bigint NOT NULL);"
	    "INSERT INTO sl_head VALUES (1, 0);"
	    "CREATE TABLE sl_streams (tenant text, stream text, "
	    "  next_revision bigint NOT NULL, PRIMARY KEY (tenant, stream));"
	    "CREATE TABLE sl_events (position bigint PRIMARY KEY, "
	    "  tenant text NOT NULL, stream text NOT NULL, "
	    "  revision bigint NOT NULL, record bytea NOT NULL)");
	PQfinish(db);
}

typedef struct client {
	int        id;
	uint64_t   events, txns;
	bench_lat  lat;
	pthread_t  th;
	uint64_t   end_ns;
} client;

/* One transaction: B events of this client's stream. */
static void
append_batch(PGconn *db, client *cl, uint64_t *rev, char *record)
{
	char first_s[32], n_s[16], rev_s[32], stream[32];
	snprintf(n_s, sizeof(n_s), "%d", batch);
	snprintf(stream, sizeof(stream), "bench-%d", cl->id);
	exec_ok(db, "BEGIN");
	const char *hp[1] = { n_s };
	PGresult   *r     = PQexecParams(db,
	          "UPDATE sl_head SET next = next + $1::bigint WHERE one = 1 "
	                "RETURNING next - $1::bigint",
	          1, NULL, hp, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		bench_die("postgresql: head: %s", PQerrorMessage(db));
	snprintf(first_s, sizeof(first_s), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	snprintf(rev_s, sizeof(rev_s), "%" PRIu64, *rev);
	/* the batch's rows in one statement: positions and revisions from
	 * generate_series, the same record bytes for each */
	const char *ep[5]  = { first_s, n_s, stream, rev_s, record };
	int         len[5] = { 0, 0, 0, 0, RECORD_BYTES };
	int         fmt[5] = { 0, 0, 0, 0, 1 };
	r                  = PQexecParams(db,
	                     "INSERT INTO sl_events "
	                                      "SELECT $1::bigint + g, 't', $3, $4::bigint + g, $5::bytea "
	                                      "FROM generate_series(0, $2::int - 1) AS g",
	                     5, NULL, ep, len, fmt, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		bench_die("postgresql: insert: %s", PQerrorMessage(db));
	PQclear(r);
	char next_rev[32];
	snprintf(next_rev, sizeof(next_rev), "%" PRIu64, *rev + (uint64_t) batch);
	const char *sp[2] = { stream, next_rev };
	r                 = PQexecParams(db,
	                    "INSERT INTO sl_streams VALUES ('t', $1, $2::bigint) "
	                                    "ON CONFLICT (tenant, stream) DO UPDATE "
	                                    "SET next_revision = EXCLUDED.next_revision",
	                    2, NULL, sp, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		bench_die("postgresql: stream head: %s", PQerrorMessage(db));
	PQclear(r);
	exec_ok(db, "COMMIT");
	*rev += (uint64_t) batch;
}

static void *
client_main(void *arg)
{
	client *cl = arg;
	PGconn *db = connect_db();
	char    record[RECORD_BYTES];
	for (int i = 0; i < RECORD_BYTES; i++)
		record[i] = (char) ('a' + (i * 7 + cl->id) % 26);
	uint64_t rev = 0;
	while (bench_now_ns() < cl->end_ns) {
		uint64_t t0 = bench_now_ns();
		append_batch(db, cl, &rev, record);
		bench_lat_add(&cl->lat, bench_now_ns() - t0);
		cl->events += (uint64_t) batch;
		cl->txns++;
	}
	PQfinish(db);
	return NULL;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: bench_pg init --conninfo STR\n"
	    "       bench_pg append --conninfo STR [--clients C] [--batch B] "
	    "[--seconds S]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "conninfo", required_argument, NULL, 'c' },
		{ "clients", required_argument, NULL, 'n' },
		{ "batch", required_argument, NULL, 'b' },
		{ "seconds", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	if (argc < 2)
		usage();
	const char *mode = argv[1];
	int         o;
	optind = 2;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'c': conninfo = optarg; break;
		case 'n': n_clients = atoi(optarg); break;
		case 'b': batch = atoi(optarg); break;
		case 's': seconds = atof(optarg); break;
		default: usage();
		}
	}
	if (conninfo == NULL || n_clients < 1 || batch < 1 || seconds <= 0)
		usage();
	if (strcmp(mode, "init") == 0) {
		init_db();
		return 0;
	}
	if (strcmp(mode, "append") != 0)
		usage();
	init_db();
	client  *cls = calloc((size_t) n_clients, sizeof(*cls));
	uint64_t t0  = bench_now_ns();
	uint64_t end = t0 + (uint64_t) (seconds * 1e9);
	for (int i = 0; i < n_clients; i++) {
		cls[i].id     = i;
		cls[i].end_ns = end;
		if (pthread_create(&cls[i].th, NULL, client_main, &cls[i]) != 0)
			bench_die("pthread_create");
	}
	uint64_t  events = 0, txns = 0;
	bench_lat all    = { 0 };
	for (int i = 0; i < n_clients; i++) {
		pthread_join(cls[i].th, NULL);
		events += cls[i].events;
		txns += cls[i].txns;
		for (size_t k = 0; k < cls[i].lat.n; k++)
			bench_lat_add(&all, cls[i].lat.v[k]);
		bench_lat_free(&cls[i].lat);
	}
	double el = (double) (bench_now_ns() - t0) / 1e9;
	bench_out("eps", (double) events / el);
	bench_out("txn_per_s", (double) txns / el);
	bench_out("p50_us", (double) bench_lat_pct(&all, 50) / 1000.0);
	bench_out("p99_us", (double) bench_lat_pct(&all, 99) / 1000.0);
	bench_lat_free(&all);
	free(cls);
	return 0;
}
