/*
 * The baseline a user would pick instead: SQLite in WAL mode
 * (synchronous=FULL for durable, NORMAL otherwise) holding the same events
 * with a stream index and stream heads, and a hand-written Account Details
 * projector in C that reads the events in order and upserts one row per
 * account, with its checkpoint in the same transaction.
 *
 *   append   one writer commits batches of B append-workload events
 *   import   copy the first N events of a sluiced log into the database
 *   project  run the projector from position 0 to the end
 *
 * Prints "key value" lines for bench/run.sh.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lmdb.h>
#include <msgpack.h>
#include <sqlite3.h>

#include <sluice/errors.h>

#include "common.h"
#include "event.h"
#include "json.h"
#include "mp.h"
#include "workload.h"

static sqlite3 *db;

static void
sql(const char *text)
{
	char *err = NULL;
	if (sqlite3_exec(db, text, NULL, NULL, &err) != SQLITE_OK)
		bench_die("sqlite: %s: %s", text, err);
}

static sqlite3_stmt *
prep(const char *text)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, text, -1, &st, NULL) != SQLITE_OK)
		bench_die("sqlite: %s: %s", text, sqlite3_errmsg(db));
	return st;
}

static void
step_done(sqlite3_stmt *st)
{
	if (sqlite3_step(st) != SQLITE_DONE)
		bench_die("sqlite: %s", sqlite3_errmsg(db));
	sqlite3_reset(st);
}

static void
open_db(const char *path, const char *sync)
{
	char pragma[128];
	if (sqlite3_open(path, &db) != SQLITE_OK)
		bench_die("sqlite: open %s", path);
	sql("PRAGMA journal_mode=WAL");
	snprintf(pragma, sizeof(pragma), "PRAGMA synchronous=%s", sync);
	sql(pragma);
	sql("CREATE TABLE IF NOT EXISTS events ("
	    " position INTEGER PRIMARY KEY, tenant TEXT NOT NULL,"
	    " stream TEXT NOT NULL, revision INTEGER NOT NULL, id BLOB,"
	    " type TEXT NOT NULL, generation INTEGER, occurred INTEGER,"
	    " correlation TEXT, causation TEXT, public INTEGER,"
	    " metadata BLOB, content BLOB,"
	    " UNIQUE (tenant, stream, revision))");
	sql("CREATE TABLE IF NOT EXISTS heads (tenant TEXT, stream TEXT,"
	    " next INTEGER, PRIMARY KEY (tenant, stream)) WITHOUT ROWID");
}

/* ---- append ---- */

static int
cmd_append(const char *path, const char *sync, int batch, double seconds)
{
	remove(path);
	char wal[1200];
	snprintf(wal, sizeof(wal), "%s-wal", path);
	remove(wal);
	snprintf(wal, sizeof(wal), "%s-shm", path);
	remove(wal);
	open_db(path, sync);

	enum { RING = 256, STREAMS = 64 };
	msgpack_sbuffer content[RING];
	char            text[512], err[128], stream[STREAMS][32];
	for (int i = 0; i < STREAMS; i++)
		snprintf(stream[i], sizeof(stream[i]), "w0-s%d", i);
	for (int i = 0; i < RING; i++) {
		msgpack_packer pk;
		msgpack_sbuffer_init(&content[i]);
		msgpack_packer_init(&pk, &content[i], msgpack_sbuffer_write);
		wl_append_content(
		    text, sizeof(text), stream[i % STREAMS], (uint64_t) i);
		if (json_text_to_mp(text, 1, &pk, err, sizeof(err)) != SL_OK)
			bench_die("content: %s", err);
	}
	static const unsigned char empty_map = 0x80;

	sqlite3_stmt *head
	    = prep("SELECT next FROM heads WHERE tenant = ?1 AND stream = ?2");
	sqlite3_stmt *put = prep("INSERT OR REPLACE INTO heads VALUES "
	                         "(?1, ?2, ?3)");
	sqlite3_stmt *ins = prep(
	    "INSERT INTO events (tenant, stream, revision, id, type,"
	    " generation, occurred, correlation, causation, public,"
	    " metadata, content) VALUES (?1,?2,?3,?4,?5,1,?6,?7,'',0,?8,?9)");
	bench_lat lat   = { 0 };
	uint64_t  n     = 0;
	uint64_t  start = bench_now_ns();
	uint64_t  end   = start + (uint64_t) (seconds * 1e9);
	for (uint64_t k = 0, now = start; now < end; k++) {
		const char *s = stream[k % STREAMS];
		sql("BEGIN IMMEDIATE");
		sqlite3_bind_text(head, 1, WL_TENANT, -1, SQLITE_STATIC);
		sqlite3_bind_text(head, 2, s, -1, SQLITE_STATIC);
		int64_t rev = 0;
		if (sqlite3_step(head) == SQLITE_ROW)
			rev = sqlite3_column_int64(head, 0);
		sqlite3_reset(head);
		for (int i = 0; i < batch; i++, n++) {
			uint8_t id[16];
			char    idtext[37];
			ev_uuid_generate(id);
			ev_uuid_text(id, idtext);
			const msgpack_sbuffer *c = &content[n % RING];
			sqlite3_bind_text(
			    ins, 1, WL_TENANT, -1, SQLITE_STATIC);
			sqlite3_bind_text(ins, 2, s, -1, SQLITE_STATIC);
			sqlite3_bind_int64(ins, 3, rev++);
			sqlite3_bind_blob(ins, 4, id, 16, SQLITE_TRANSIENT);
			sqlite3_bind_text(
			    ins, 5, WL_APPEND_TYPE, -1, SQLITE_STATIC);
			sqlite3_bind_int64(ins, 6, ev_now_ns());
			sqlite3_bind_text(
			    ins, 7, idtext, 36, SQLITE_TRANSIENT);
			sqlite3_bind_blob(
			    ins, 8, &empty_map, 1, SQLITE_STATIC);
			sqlite3_bind_blob(
			    ins, 9, c->data, (int) c->size, SQLITE_STATIC);
			step_done(ins);
		}
		sqlite3_bind_text(put, 1, WL_TENANT, -1, SQLITE_STATIC);
		sqlite3_bind_text(put, 2, s, -1, SQLITE_STATIC);
		sqlite3_bind_int64(put, 3, rev);
		step_done(put);
		sql("COMMIT");
		uint64_t t = bench_now_ns();
		bench_lat_add(&lat, t - now);
		now = t;
	}
	double secs = (double) (bench_now_ns() - start) / 1e9;
	bench_out("eps", (double) n / secs);
	bench_out("p50_us", (double) bench_lat_pct(&lat, 50) / 1e3);
	bench_out("p99_us", (double) bench_lat_pct(&lat, 99) / 1e3);
	bench_lat_free(&lat);
	sqlite3_finalize(head);
	sqlite3_finalize(put);
	sqlite3_finalize(ins);
	sqlite3_close(db);
	for (int i = 0; i < RING; i++)
		msgpack_sbuffer_destroy(&content[i]);
	return 0;
}

/* ---- import a sluiced log ---- */

static int
cmd_import(const char *path, const char *log, uint64_t max)
{
	MDB_env    *env;
	MDB_txn    *txn;
	MDB_dbi     dbi;
	MDB_cursor *cur;
	if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 8) != 0
	    || mdb_env_set_mapsize(env, (size_t) 16 << 30) != 0
	    || mdb_env_open(env, log, MDB_RDONLY | MDB_NOTLS, 0644) != 0
	    || mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0
	    || mdb_dbi_open(txn, "log", 0, &dbi) != 0
	    || mdb_cursor_open(txn, dbi, &cur) != 0)
		bench_die("open log %s", log);

	open_db(path, "OFF"); /* importing is not measured */
	sqlite3_int64 have = 0;
	sqlite3_stmt *cnt  = prep("SELECT count(*) FROM events");
	if (sqlite3_step(cnt) == SQLITE_ROW)
		have = sqlite3_column_int64(cnt, 0);
	sqlite3_finalize(cnt);

	sqlite3_stmt *ins = prep(
	    "INSERT INTO events (position, tenant, stream, revision, id,"
	    " type, generation, occurred, correlation, causation, public,"
	    " metadata, content) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,"
	    "?12,?13)");
	msgpack_zone   *zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	MDB_val  k, v;
	uint64_t n = 0;
	sql("BEGIN");
	for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	     rc == 0 && n < max;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT), n++) {
		if ((sqlite3_int64) n < have)
			continue; /* already imported */
		ev_view ev;
		msgpack_zone_clear(zone);
		if (ev_decode(v.mv_data, v.mv_size, n, zone, &ev) != SL_OK)
			bench_die("ev_decode at %" PRIu64, n);
		sqlite3_bind_int64(ins, 1, (sqlite3_int64) n);
		sqlite3_bind_text(ins, 2, ev.tenant, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 3, ev.stream, -1, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 4, (sqlite3_int64) ev.revision);
		sqlite3_bind_blob(ins, 5, ev.id, 16, SQLITE_STATIC);
		sqlite3_bind_text(ins, 6, ev.type, -1, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 7, ev.generation);
		sqlite3_bind_int64(ins, 8, ev.occurred_ns);
		sqlite3_bind_text(
		    ins, 9, ev.correlation_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 10, ev.causation_id, -1, SQLITE_STATIC);
		sqlite3_bind_int(ins, 11, ev.is_public);
		sb.size = 0;
		msgpack_pack_object(&pk, ev.metadata);
		size_t mlen = sb.size;
		msgpack_pack_object(&pk, ev.content);
		sqlite3_bind_blob(ins, 12, sb.data, (int) mlen, SQLITE_STATIC);
		sqlite3_bind_blob(ins, 13, sb.data + mlen,
		    (int) (sb.size - mlen), SQLITE_STATIC);
		step_done(ins);
		if (n % 10000 == 9999) {
			sql("COMMIT");
			sql("BEGIN");
		}
	}
	sql("COMMIT");
	sqlite3_finalize(ins);
	sql("PRAGMA wal_checkpoint(TRUNCATE)");
	sqlite3_close(db);
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	msgpack_sbuffer_destroy(&sb);
	msgpack_zone_free(zone);
	if (n < max && max != UINT64_MAX)
		bench_die("import: log holds %" PRIu64
		          " events, wanted %" PRIu64,
		    n, max);
	struct stat st;
	if (stat(path, &st) == 0)
		bench_out("bytes_per_event",
		    (double) st.st_blocks * 512.0 / (double) n);
	return 0;
}

/* ---- the projector ---- */

static void
bind_str(sqlite3_stmt *st, int i, const msgpack_object *map, const char *k)
{
	const char *s;
	size_t      n;
	if (mp_get_str(map, k, &s, &n) == SL_OK)
		sqlite3_bind_text(st, i, s, (int) n, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

static int
cmd_project(const char *path, const char *sync, int batch)
{
	open_db(path, sync);
	/* From position 0 with no read models, like the Sluice catch-up. */
	sql("DROP TABLE IF EXISTS accounts");
	sql("DROP TABLE IF EXISTS checkpoints");
	sql("CREATE TABLE accounts (key TEXT PRIMARY KEY, account_id TEXT,"
	    " type TEXT DEFAULT '', customer TEXT DEFAULT '',"
	    " name TEXT DEFAULT '', balance INTEGER DEFAULT 0) WITHOUT ROWID");
	sql("CREATE TABLE checkpoints (projection TEXT PRIMARY KEY,"
	    " position INTEGER)");
	sql("INSERT INTO checkpoints VALUES ('account_details', 0)");
	sql("PRAGMA wal_checkpoint(TRUNCATE)");

	sqlite3_stmt *rd
	    = prep("SELECT position, type, stream, content FROM events"
	           " WHERE position >= ?1 ORDER BY position LIMIT ?2");
	/* One upsert per event type: the fold of plugins/account_details.c
	 * (a new row's account_id is its key). */
	sqlite3_stmt *opened
	    = prep("INSERT INTO accounts (key, account_id, type, name)"
	           " VALUES (?1, coalesce(?2, ?1), 'debit', coalesce(?3, ''))"
	           " ON CONFLICT (key) DO UPDATE SET account_id ="
	           " coalesce(?2, account_id), type = 'debit',"
	           " name = coalesce(?3, name)");
	sqlite3_stmt *customer
	    = prep("INSERT INTO accounts (key, account_id, customer)"
	           " VALUES (?1, ?1, coalesce(?2, ''))"
	           " ON CONFLICT (key) DO UPDATE SET customer ="
	           " coalesce(?2, customer)");
	sqlite3_stmt *money
	    = prep("INSERT INTO accounts (key, account_id, balance)"
	           " VALUES (?1, ?1, ?2)"
	           " ON CONFLICT (key) DO UPDATE SET balance = balance + ?2");
	sqlite3_stmt *cp   = prep("UPDATE checkpoints SET position = ?1"
	                            " WHERE projection = 'account_details'");
	msgpack_zone *zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
	uint64_t      pos = 0, n = 0;
	uint64_t      start = bench_now_ns();
	for (;;) {
		sql("BEGIN IMMEDIATE");
		sqlite3_bind_int64(rd, 1, (sqlite3_int64) pos);
		sqlite3_bind_int(rd, 2, batch);
		int got = 0;
		while (sqlite3_step(rd) == SQLITE_ROW) {
			got++;
			pos = (uint64_t) sqlite3_column_int64(rd, 0) + 1;
			const char *type
			    = (const char *) sqlite3_column_text(rd, 1);
			const char *stream
			    = (const char *) sqlite3_column_text(rd, 2);
			const void *cdata = sqlite3_column_blob(rd, 3);
			size_t clen = (size_t) sqlite3_column_bytes(rd, 3);
			msgpack_object c;
			size_t         off = 0;
			msgpack_zone_clear(zone);
			if (msgpack_unpack(cdata, clen, &off, zone, &c)
			    != MSGPACK_UNPACK_SUCCESS)
				bench_die("content at %" PRIu64, pos - 1);
			int64_t amount;
			if (strcmp(type, "DebitAccountOpened") == 0) {
				sqlite3_bind_text(
				    opened, 1, stream, -1, SQLITE_STATIC);
				bind_str(opened, 2, &c, "account_id");
				bind_str(opened, 3, &c, "name");
				step_done(opened);
			} else if (strcmp(type, "CustomerRegistered") == 0) {
				const msgpack_object *acc;
				const char           *key;
				size_t                klen;
				if (mp_get_map(&c, "account", &acc) != SL_OK
				    || mp_get_str(acc, "id", &key, &klen)
				        != SL_OK)
					continue;
				sqlite3_bind_text(customer, 1, key, (int) klen,
				    SQLITE_STATIC);
				bind_str(customer, 2, &c, "name");
				step_done(customer);
			} else if (strcmp(type, "DebitPerformed") == 0) {
				if (mp_get_i64(&c, "amount", &amount) != SL_OK)
					continue;
				sqlite3_bind_text(
				    money, 1, stream, -1, SQLITE_STATIC);
				sqlite3_bind_int64(money, 2, amount);
				step_done(money);
			} else if (strcmp(type, "WithdrawalPerformed") == 0) {
				const char *key;
				size_t      klen;
				if (mp_get_i64(&c, "amount", &amount) != SL_OK
				    || mp_get_str(
				           &c, "account_id", &key, &klen)
				        != SL_OK)
					continue;
				sqlite3_bind_text(
				    money, 1, key, (int) klen, SQLITE_STATIC);
				sqlite3_bind_int64(money, 2, -amount);
				step_done(money);
			}
		}
		sqlite3_reset(rd);
		n += (uint64_t) got;
		sqlite3_bind_int64(cp, 1, (sqlite3_int64) pos);
		step_done(cp);
		sql("COMMIT");
		if (got < batch)
			break;
	}
	double        secs   = (double) (bench_now_ns() - start) / 1e9;
	sqlite3_int64 models = 0;
	sqlite3_stmt *cnt    = prep("SELECT count(*) FROM accounts");
	if (sqlite3_step(cnt) == SQLITE_ROW)
		models = sqlite3_column_int64(cnt, 0);
	sqlite3_finalize(cnt);
	bench_out("events", (double) n);
	bench_out("eps", (double) n / secs);
	bench_out("models", (double) models);
	sqlite3_finalize(rd);
	sqlite3_finalize(opened);
	sqlite3_finalize(customer);
	sqlite3_finalize(money);
	sqlite3_finalize(cp);
	sqlite3_close(db);
	msgpack_zone_free(zone);
	return 0;
}

int
main(int argc, char **argv)
{
	const char                *path = NULL, *log = NULL, *sync = "FULL";
	int                        batch   = 1;
	double                     seconds = 1;
	uint64_t                   max     = UINT64_MAX;
	static const struct option lo[]    = {
		   { "db", required_argument, NULL, 'd' },
		   { "log", required_argument, NULL, 'l' },
		   { "sync", required_argument, NULL, 's' },
		   { "batch", required_argument, NULL, 'b' },
		   { "seconds", required_argument, NULL, 'S' },
		   { "max", required_argument, NULL, 'm' },
		   { NULL, 0, NULL, 0 },
	};
	if (argc < 2)
		goto usage;
	optind = 2;
	int ch;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'd':
			path = optarg;
			break;
		case 'l':
			log = optarg;
			break;
		case 's':
			sync = optarg;
			break;
		case 'b':
			batch = atoi(optarg);
			break;
		case 'S':
			seconds = atof(optarg);
			break;
		case 'm':
			max = strtoull(optarg, NULL, 10);
			break;
		default:
			goto usage;
		}
	}
	if (path == NULL || batch < 1
	    || (strcmp(sync, "FULL") != 0 && strcmp(sync, "NORMAL") != 0))
		goto usage;
	if (strcmp(argv[1], "append") == 0)
		return cmd_append(path, sync, batch, seconds);
	if (strcmp(argv[1], "import") == 0 && log != NULL)
		return cmd_import(path, log, max);
	if (strcmp(argv[1], "project") == 0)
		return cmd_project(path, sync, batch);
usage:
	fprintf(stderr,
	    "usage: bench_sqlite append --db F --sync FULL|NORMAL --batch B "
	    "--seconds S\n"
	    "       bench_sqlite import --db F --log LOGDIR [--max N]\n"
	    "       bench_sqlite project --db F --sync FULL|NORMAL "
	    "[--batch 1000]\n");
	return 2;
}
