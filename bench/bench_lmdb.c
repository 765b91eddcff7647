/*
 * The storage limit: the same work the event log and a projection do,
 * with no runtime around it. "append" writes the append workload's events,
 * encoded with the runtime's own ev_encode (identical bytes), into an LMDB
 * "log" database with MDB_APPEND, S events per transaction ("--sync 2":
 * one sync per transaction instead of LMDB's two); "journal" appends the
 * same records to a plain file with one fdatasync per S (what a commit
 * journal in front of LMDB would pay); "scanfold" scans a log written by
 * sluiced, decodes each event with ev_decode and folds Account Details
 * into an in-memory hash map.
 * Prints "key value" lines for bench/run.sh.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lmdb.h>
#include <msgpack.h>

#include <sluice/errors.h>

#include "common.h"
#include "event.h"
#include "json.h"
#include "mp.h"
#include "workload.h"

#define CHECK_MDB(call)                                                       \
	do {                                                                  \
		int rc_ = (call);                                             \
		if (rc_ != 0)                                                 \
			bench_die("%s: %s", #call, mdb_strerror(rc_));        \
	} while (0)

static void
be64(uint64_t v, unsigned char out[8])
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		out[i] = (unsigned char) v;
}

/* ---- append ---- */

enum { STREAMS = 64 };

/*
 * "journal": the same records appended to a file of their own, txn_size
 * per write and one fdatasync per write, the file written with zeros
 * beforehand (so that a sync writes no file size or block map): the
 * cost of one durable group in an append-only commit journal, the one
 * sync per commit that SQLite's WAL pays.
 */
static void
journal_append(const char *dir, int txn_size, const msgpack_sbuffer *rec,
    int n_rec, double seconds, bench_lat *lat, uint64_t *pos, uint64_t *bytes)
{
	enum { PREALLOC = 32 << 20 };
	char   path[1100];
	size_t cap = (size_t) txn_size * 512, off = 0;
	char  *buf = malloc(cap), *zero = calloc(1, 1 << 20);
	if (buf == NULL || zero == NULL)
		bench_die("out of memory");
	snprintf(path, sizeof(path), "%s/journal", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		bench_die("open %s: %s", path, strerror(errno));
	for (off_t o = 0; o < PREALLOC; o += 1 << 20)
		if (pwrite(fd, zero, 1 << 20, o) != 1 << 20)
			bench_die("journal: prealloc: %s", strerror(errno));
	if (fsync(fd) != 0)
		bench_die("journal: fsync: %s", strerror(errno));
	uint64_t start = bench_now_ns();
	uint64_t end   = start + (uint64_t) (seconds * 1e9);
	for (uint64_t now = start; now < end;) {
		size_t n = 0;
		for (int i = 0; i < txn_size; i++, (*pos)++) {
			const msgpack_sbuffer *r
			    = &rec[*pos % (uint64_t) n_rec];
			memcpy(buf + n, r->data, r->size);
			n += r->size;
		}
		if (off + n > PREALLOC)
			off = 0; /* wrap: the zeros are written already */
		if (pwrite(fd, buf, n, (off_t) off) != (ssize_t) n
		    || fdatasync(fd) != 0)
			bench_die("journal: %s", strerror(errno));
		off += n;
		*bytes += n;
		uint64_t t = bench_now_ns();
		bench_lat_add(lat, t - now);
		now = t;
	}
	close(fd);
	free(buf);
	free(zero);
}

static int
cmd_append(
    const char *dir, int txn_size, int sync, double seconds, bool journal)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi  dbi;
	bench_rmrf(dir);
	bench_mkdirs(dir);
	CHECK_MDB(mdb_env_create(&env));
	CHECK_MDB(mdb_env_set_maxdbs(env, 4));
	CHECK_MDB(mdb_env_set_mapsize(env, (size_t) 16 << 30));
	/* The flags the event log opens with. sync 2: MDB_NOMETASYNC, one
	 * sync per transaction (its meta page is durable only after the
	 * next one's): what a commit costs when something else carries the
	 * second sync. */
	CHECK_MDB(mdb_env_open(env, dir,
	    MDB_NOTLS
	        | (sync == 0        ? MDB_NOSYNC
	                : sync == 2 ? MDB_NOMETASYNC
	                            : 0),
	    0644));
	CHECK_MDB(mdb_txn_begin(env, NULL, 0, &txn));
	CHECK_MDB(mdb_dbi_open(txn, "log", MDB_CREATE, &dbi));
	CHECK_MDB(mdb_txn_commit(txn));

	/* The contents as the daemon holds them: JSON packed by the same
	 * code the client library uses. */
	enum { RING = 256 };
	msgpack_sbuffer cbuf[RING];
	msgpack_object  content[RING];
	msgpack_zone   *zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
	char            text[512], err[128], stream[STREAMS][32];
	for (int i = 0; i < STREAMS; i++)
		snprintf(stream[i], sizeof(stream[i]), "w0-s%d", i);
	for (int i = 0; i < RING; i++) {
		msgpack_packer pk;
		size_t         off = 0;
		msgpack_sbuffer_init(&cbuf[i]);
		msgpack_packer_init(&pk, &cbuf[i], msgpack_sbuffer_write);
		wl_append_content(
		    text, sizeof(text), stream[i % STREAMS], (uint64_t) i);
		if (json_text_to_mp(text, 1, &pk, err, sizeof(err)) != SL_OK)
			bench_die("content: %s", err);
		if (msgpack_unpack(
		        cbuf[i].data, cbuf[i].size, &off, zone, &content[i])
		    != MSGPACK_UNPACK_SUCCESS)
			bench_die("content: unpack");
	}
	/* Encoded before the clock starts: the limit is the storage work.
	 * (The daemon also encodes, and generates ids, per event.) */
	enum { RECS = 4096 };
	uint64_t        rev[STREAMS] = { 0 };
	msgpack_sbuffer rec[RECS];
	for (int i = 0; i < RECS; i++) {
		msgpack_packer pk;
		int            s = i % STREAMS;
		ev_new         e = { .type    = WL_APPEND_TYPE,
			        .type_len     = strlen(WL_APPEND_TYPE),
			        .generation   = 1,
			        .occurred_ns  = ev_now_ns(),
			        .causation_id = "",
			        .content      = &content[i % RING] };
		ev_uuid_generate(e.id);
		msgpack_sbuffer_init(&rec[i]);
		msgpack_packer_init(&pk, &rec[i], msgpack_sbuffer_write);
		if (ev_encode(&pk, WL_TENANT, strlen(WL_TENANT), stream[s],
		        strlen(stream[s]), rev[s]++, &e)
		    != SL_OK)
			bench_die("ev_encode");
	}

	bench_lat lat = { 0 };
	uint64_t  pos = 0, bytes = 0;
	uint64_t  start = bench_now_ns();
	uint64_t  end   = start + (uint64_t) (seconds * 1e9);
	if (journal) {
		journal_append(
		    dir, txn_size, rec, RECS, seconds, &lat, &pos, &bytes);
		goto report;
	}
	for (uint64_t now = start; now < end;) {
		CHECK_MDB(mdb_txn_begin(env, NULL, 0, &txn));
		for (int i = 0; i < txn_size; i++, pos++) {
			const msgpack_sbuffer *r = &rec[pos % RECS];
			unsigned char          k[8];
			be64(pos, k);
			MDB_val key = { 8, k }, val = { r->size, r->data };
			CHECK_MDB(mdb_put(txn, dbi, &key, &val, MDB_APPEND));
			bytes += r->size;
		}
		CHECK_MDB(mdb_txn_commit(txn));
		uint64_t t = bench_now_ns();
		bench_lat_add(&lat, t - now);
		now = t;
	}
report:;
	double secs = (double) (bench_now_ns() - start) / 1e9;
	bench_out("eps", (double) pos / secs);
	bench_out("txn_per_s", (double) lat.n / secs);
	bench_out("txn_p50_us", (double) bench_lat_pct(&lat, 50) / 1e3);
	bench_out("record_bytes", (double) bytes / (double) pos);
	bench_lat_free(&lat);
	for (int i = 0; i < RECS; i++)
		msgpack_sbuffer_destroy(&rec[i]);
	for (int i = 0; i < RING; i++)
		msgpack_sbuffer_destroy(&cbuf[i]);
	msgpack_zone_free(zone);
	mdb_env_close(env);
	bench_rmrf(dir);
	return 0;
}

/* ---- scan, decode, fold ---- */

/* An Account Details read model kept as a C struct: the fastest a fold
 * can hold its state. */
typedef struct account {
	char   *key; /* NULL: free slot */
	char    account_id[32];
	char    type[8];
	char    customer[64];
	char    name[64];
	int64_t balance;
} account;

typedef struct accounts {
	account *slot;
	size_t   cap, n;
} accounts;

static uint64_t
hash_str(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603u; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char) s[i]) * 1099511628211u;
	return h;
}

static account *
accounts_get(accounts *m, const char *key, size_t n)
{
	if ((m->n + 1) * 2 > m->cap) {
		accounts big
		    = { calloc(m->cap * 2, sizeof(account)), m->cap * 2, 0 };
		if (big.slot == NULL)
			bench_die("out of memory");
		for (size_t i = 0; i < m->cap; i++) {
			if (m->slot[i].key == NULL)
				continue;
			size_t j
			    = hash_str(m->slot[i].key, strlen(m->slot[i].key))
			    & (big.cap - 1);
			while (big.slot[j].key != NULL)
				j = (j + 1) & (big.cap - 1);
			big.slot[j] = m->slot[i];
			big.n++;
		}
		free(m->slot);
		*m = big;
	}
	size_t j = hash_str(key, n) & (m->cap - 1);
	while (m->slot[j].key != NULL) {
		if (strncmp(m->slot[j].key, key, n) == 0
		    && m->slot[j].key[n] == '\0')
			return &m->slot[j];
		j = (j + 1) & (m->cap - 1);
	}
	account *a = &m->slot[j];
	memset(a, 0, sizeof(*a));
	a->key = strndup(key, n);
	m->n++;
	snprintf(a->account_id, sizeof(a->account_id), "%.*s", (int) n, key);
	return a;
}

static void
copy_str(const msgpack_object *map, const char *k, char *dst, size_t len)
{
	const char *s;
	size_t      n;
	if (mp_get_str(map, k, &s, &n) == SL_OK)
		snprintf(dst, len, "%.*s", (int) n, s);
}

static int
cmd_scanfold(const char *dir, uint64_t max)
{
	MDB_env    *env;
	MDB_txn    *txn;
	MDB_dbi     dbi;
	MDB_cursor *cur;
	CHECK_MDB(mdb_env_create(&env));
	CHECK_MDB(mdb_env_set_maxdbs(env, 8));
	CHECK_MDB(mdb_env_set_mapsize(env, (size_t) 16 << 30));
	CHECK_MDB(mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0644));
	CHECK_MDB(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn));
	CHECK_MDB(mdb_dbi_open(txn, "log", 0, &dbi));
	CHECK_MDB(mdb_cursor_open(txn, dbi, &cur));

	accounts      m    = { calloc(1024, sizeof(account)), 1024, 0 };
	msgpack_zone *zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
	MDB_val       k, v;
	uint64_t      n = 0, selected = 0;
	uint64_t      start = bench_now_ns();
	for (int rc                 = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	     rc == 0 && n < max; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		ev_view ev;
		msgpack_zone_clear(zone);
		if (ev_decode(v.mv_data, v.mv_size, n, zone, &ev) != SL_OK)
			bench_die("ev_decode at %" PRIu64, n);
		n++;
		const msgpack_object *c = &ev.content;
		const char           *key;
		size_t                klen;
		int64_t               amount = 0;
		/* The projection's selectors: stream, account.id, partition
		 * (= stream) and account_id. */
		if (strcmp(ev.type, "DebitAccountOpened") == 0) {
			account *a
			    = accounts_get(&m, ev.stream, strlen(ev.stream));
			copy_str(c, "account_id", a->account_id,
			    sizeof(a->account_id));
			snprintf(a->type, sizeof(a->type), "debit");
			copy_str(c, "name", a->name, sizeof(a->name));
		} else if (strcmp(ev.type, "CustomerRegistered") == 0) {
			const msgpack_object *acc;
			if (mp_get_map(c, "account", &acc) != SL_OK
			    || mp_get_str(acc, "id", &key, &klen) != SL_OK)
				continue;
			account *a = accounts_get(&m, key, klen);
			copy_str(c, "name", a->customer, sizeof(a->customer));
		} else if (strcmp(ev.type, "DebitPerformed") == 0) {
			account *a
			    = accounts_get(&m, ev.stream, strlen(ev.stream));
			if (mp_get_i64(c, "amount", &amount) == SL_OK)
				a->balance += amount;
		} else if (strcmp(ev.type, "WithdrawalPerformed") == 0) {
			if (mp_get_str(c, "account_id", &key, &klen) != SL_OK)
				continue;
			account *a = accounts_get(&m, key, klen);
			if (mp_get_i64(c, "amount", &amount) == SL_OK)
				a->balance -= amount;
		} else {
			continue;
		}
		selected++;
	}
	double secs = (double) (bench_now_ns() - start) / 1e9;
	if (n < max && max != UINT64_MAX)
		bench_die("scanfold: log holds %" PRIu64
		          " events, wanted %" PRIu64,
		    n, max);
	bench_out("events", (double) n);
	bench_out("eps", (double) n / secs);
	bench_out("models", (double) m.n);
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	for (size_t i = 0; i < m.cap; i++)
		free(m.slot[i].key);
	free(m.slot);
	msgpack_zone_free(zone);
	(void) selected;
	return 0;
}

int
main(int argc, char **argv)
{
	const char                *dir = NULL;
	int                        txn = 1, sync = 1;
	double                     seconds = 1;
	uint64_t                   max     = UINT64_MAX;
	static const struct option lo[]    = {
		   { "dir", required_argument, NULL, 'd' },
		   { "txn", required_argument, NULL, 't' },
		   { "sync", required_argument, NULL, 's' },
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
			dir = optarg;
			break;
		case 't':
			txn = atoi(optarg);
			break;
		case 's':
			sync = atoi(optarg);
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
	if (dir == NULL || txn < 1)
		goto usage;
	if (strcmp(argv[1], "append") == 0)
		return cmd_append(dir, txn, sync, seconds, false);
	if (strcmp(argv[1], "journal") == 0)
		return cmd_append(dir, txn, 1, seconds, true);
	if (strcmp(argv[1], "scanfold") == 0)
		return cmd_scanfold(dir, max);
usage:
	fprintf(stderr,
	    "usage: bench_lmdb append --dir D --txn N --sync 0|1|2 --seconds "
	    "S\n"
	    "       (2: MDB_NOMETASYNC, one sync per transaction)\n"
	    "       bench_lmdb journal --dir D --txn N --seconds S\n"
	    "       (the records appended to a file, one fdatasync per txn)\n"
	    "       bench_lmdb scanfold --dir LOGDIR [--max N]\n");
	return 2;
}
