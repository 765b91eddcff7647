/*
 * Proves the filter stream index of runtime/models/readmodels.c on a real LMDB
 * env: appends across partitions and transactions number the whole stream
 * and each partition from 0 without gaps (found by cursor seeks, nothing
 * kept in memory), whole and partition reads from a position with max,
 * next and more, bad partitions refused without a change, and generations:
 * reads see the active one until rm_active_write switches them.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <sluice/errors.h>

#include "readmodels.h"
#include "testutil.h"

#define FILTER "0c1d2e3f-4a5b-4c6d-8e7f-901a2b3c4d5e"
#define OTHER  "99999999-8888-4777-8666-555555555555"
#define NAME   RM_FILTER_PREFIX FILTER

/* What a read visited. */
typedef struct entry {
	uint64_t stream_pos, log_pos;
	char     partition[300];
	size_t   plen;
} entry;

typedef struct seen {
	entry  e[64];
	size_t n;
	size_t stop_after; /* 0: never stop */
} seen;

static int
collect(void *arg, uint64_t stream_pos, uint64_t log_pos, uint64_t other_pos,
    const char *partition, size_t plen)
{
	(void) other_pos;
	seen *s = arg;
	CHECK(s->n < 64);
	CHECK(plen < sizeof(s->e[0].partition));
	s->e[s->n].stream_pos = stream_pos;
	s->e[s->n].log_pos    = log_pos;
	memcpy(s->e[s->n].partition, partition, plen);
	s->e[s->n].partition[plen] = '\0';
	s->e[s->n].plen            = plen;
	s->n++;
	return s->stop_after > 0 && s->n == s->stop_after ? 7 : 0;
}

/* Read into s (reset first); returns the read's result. */
static int
rd(rmstore *rm, const char *filter, const char *partition, uint64_t from,
    size_t max, seen *s, uint64_t *next, bool *more)
{
	size_t stop = s->stop_after;
	memset(s, 0, sizeof(*s));
	s->stop_after = stop;
	return rm_stream_read(rm, filter, partition,
	    partition != NULL ? strlen(partition) : 0, from, max, collect, s,
	    next, more, NULL);
}

static void
check_entry(const entry *e, uint64_t stream_pos, uint64_t log_pos,
    const char *partition)
{
	CHECK_EQ(e->stream_pos, stream_pos);
	CHECK_EQ(e->log_pos, log_pos);
	CHECK_STREQ(e->partition, partition);
}

/* Append in its own txn; returns the result, *pos the whole position. */
static int
append1(rmstore *rm, MDB_dbi dbi, const char *partition, size_t plen,
    uint64_t log_pos, uint64_t *pos)
{
	MDB_txn *txn;
	CHECK_EQ(mdb_txn_begin(rm_env(rm), NULL, 0, &txn), 0);
	int rc = rm_stream_append(rm, txn, dbi, partition, plen, log_pos, pos);
	if (rc == SL_OK)
		CHECK_EQ(mdb_txn_commit(txn), 0);
	else
		mdb_txn_abort(txn);
	return rc;
}

static void
check_gen1_whole(rmstore *rm)
{
	seen     s = { .stop_after = 0 };
	uint64_t next;
	bool     more;

	CHECK_EQ(rd(rm, FILTER, NULL, 0, 0, &s, &next, &more), SL_OK);
	CHECK_EQ(s.n, 8);
	check_entry(&s.e[0], 0, 3, "a");
	check_entry(&s.e[1], 1, 5, "b");
	check_entry(&s.e[2], 2, 8, "a");
	check_entry(&s.e[3], 3, 9, "c");
	check_entry(&s.e[4], 4, 12, "a");
	check_entry(&s.e[5], 5, 20, "b");
	check_entry(&s.e[6], 6, 21, "ab");
	check_entry(&s.e[7], 7, 22, "a");
	CHECK_EQ(next, 8);
	CHECK(!more);
}

int
main(void)
{
	char     path[4200];
	rmstore *rm;
	MDB_dbi  dbi, dbi2;
	MDB_txn *txn;
	seen     s = { .stop_after = 0 };
	uint64_t pos, next;
	bool     more;
	char     long_part[300];

	snprintf(path, sizeof(path), "%s/rm", tu_tmpdir());
	CHECK_EQ(rm_open(path, 16u << 20, false, &rm), SL_OK);

	/* A filter that never wrote reads as an empty stream. */
	CHECK_EQ(rd(rm, FILTER, NULL, 5, 0, &s, &next, &more), SL_OK);
	CHECK_EQ(s.n, 0);
	CHECK_EQ(next, 5);
	CHECK(!more);
	CHECK_EQ(rd(rm, FILTER, "a", 0, 0, &s, &next, &more), SL_OK);
	CHECK_EQ(s.n, 0);
	CHECK_EQ(next, 0);

	/* Generation 1: five appends in one txn, across partitions. */
	CHECK_EQ(rm_gen_dbi(rm, NAME, 1, true, &dbi), SL_OK);
	CHECK_EQ(mdb_txn_begin(rm_env(rm), NULL, 0, &txn), 0);
	{
		static const struct {
			const char *p;
			uint64_t    log;
		} in[] = { { "a", 3 }, { "b", 5 }, { "a", 8 }, { "c", 9 },
			{ "a", 12 } };
		for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
			CHECK_EQ(rm_stream_append(rm, txn, dbi, in[i].p,
			             strlen(in[i].p), in[i].log, &pos),
			    SL_OK);
			CHECK_EQ(pos, i);
		}
	}
	CHECK_EQ(rm_active_write(rm, txn, NAME, 1), SL_OK);
	CHECK_EQ(mdb_txn_commit(txn), 0);

	/* Later txns go on where the db says (no counter in memory), also
	 * with "ab" sorting right after "a"'s range and "c" last in the db. */
	CHECK_EQ(append1(rm, dbi, "b", 1, 20, &pos), SL_OK);
	CHECK_EQ(pos, 5);
	CHECK_EQ(append1(rm, dbi, "ab", 2, 21, &pos), SL_OK);
	CHECK_EQ(pos, 6);
	CHECK_EQ(append1(rm, dbi, "a", 1, 22, NULL), SL_OK);
	check_gen1_whole(rm);

	/* Partitions count on their own from 0. */
	CHECK_EQ(rd(rm, FILTER, "a", 0, 0, &s, &next, &more), SL_OK);
	CHECK_EQ(s.n, 4);
	check_entry(&s.e[0], 0, 3, "a");
	check_entry(&s.e[1], 1, 8, "a");
	check_entry(&s.e[2], 2, 12, "a");
	check_entry(&s.e[3], 3, 22, "a");
	CHECK_EQ(next, 4);
	CHECK(!more);
	CHECK_EQ(rd(rm, FILTER, "ab", 0, 0, &s, &next, &more), SL_OK);
	CHECK_EQ(s.n, 1);
	check_entry(&s.e[0], 0, 21, "ab");
	CHECK_EQ(rd(rm, FILTER, "b", 0, 0, &s, &next, &more), SL_OK);
	CHECK_EQ(s.n, 2);
	check_entry(&s.e[1], 1, 20, "b");
	CHECK_EQ(rd(rm, FILTER, "c", 0, 0, &s, &next, &more), SL_OK);
	CHECK_EQ(s.n, 1);
	check_entry(&s.e[0], 0, 9, "c");
	CHECK_EQ(append1(rm, dbi, "c", 1, 30, &pos), SL_OK); /* last range */
	CHECK_EQ(pos, 8);
	CHECK_EQ(rd(rm, FILTER, "c", 1, 0, &s, &next, &more), SL_OK);
	CHECK_EQ(s.n, 1);
	check_entry(&s.e[0], 1, 30, "c");
	CHECK_EQ(next, 2);
	CHECK_EQ(rd(rm, FILTER, "zz", 0, 0, &s, &next, &more), SL_OK);
	CHECK_EQ(s.n, 0);
	CHECK_EQ(next, 0);

	/* From a position, with max: next and more. */
	CHECK_EQ(rd(rm, FILTER, NULL, 2, 2, &s, &next, &more), SL_OK);
	CHECK_EQ(s.n, 2);
	check_entry(&s.e[0], 2, 8, "a");
	check_entry(&s.e[1], 3, 9, "c");
	CHECK_EQ(next, 4);
	CHECK(more);
	CHECK_EQ(rd(rm, FILTER, NULL, 7, 2, &s, &next, &more), SL_OK);
	CHECK_EQ(s.n, 2);
	CHECK_EQ(next, 9);
	CHECK(!more); /* exactly max left: nothing remains */
	CHECK_EQ(rd(rm, FILTER, NULL, 9, 0, &s, &next, &more), SL_OK);
	CHECK_EQ(s.n, 0);
	CHECK_EQ(next, 9);
	CHECK_EQ(rd(rm, FILTER, NULL, 1000, 0, &s, &next, &more), SL_OK);
	CHECK_EQ(next, 1000);
	CHECK_EQ(rd(rm, FILTER, "a", 1, 1, &s, &next, &more), SL_OK);
	CHECK_EQ(s.n, 1);
	check_entry(&s.e[0], 1, 8, "a");
	CHECK_EQ(next, 2);
	CHECK(more);

	/* fn stops the read: its value comes back, next is past the entry
	 * it saw, more says entries remain. */
	s.stop_after = 2;
	CHECK_EQ(rd(rm, FILTER, NULL, 0, 0, &s, &next, &more), 7);
	CHECK_EQ(s.n, 2);
	CHECK_EQ(next, 2);
	CHECK(more);
	CHECK_EQ(rd(rm, FILTER, "c", 0, 0, &s, &next, &more), 7);
	CHECK_EQ(next, 2);
	CHECK(!more);
	s.stop_after = 0;

	/* Bad partitions are refused and change nothing. */
	memset(long_part, 'x', sizeof(long_part));
	CHECK_EQ(append1(rm, dbi, "", 0, 40, &pos), SL_EINVAL);
	CHECK_EQ(append1(rm, dbi, long_part, 256, 40, &pos), SL_EINVAL);
	CHECK_EQ(append1(rm, dbi, "a\0b", 3, 40, &pos), SL_EINVAL);
	CHECK_EQ(rd(rm, FILTER, NULL, 0, 0, &s, &next, &more), SL_OK);
	CHECK_EQ(s.n, 9);
	CHECK_EQ(rd(rm, FILTER, "a", 0, 0, &s, &next, &more), SL_OK);
	CHECK_EQ(s.n, 4);
	CHECK_EQ(
	    rm_stream_read(rm, FILTER, "", 0, 0, 0, collect, &s, &next, &more, NULL),
	    SL_EINVAL);
	CHECK_EQ(rm_stream_read(rm, FILTER, long_part, 256, 0, 0, collect, &s,
	             &next, &more, NULL),
	    SL_EINVAL);
	CHECK_EQ(rm_stream_read(
	             rm, FILTER, "a\0b", 3, 0, 0, collect, &s, &next, &more, NULL),
	    SL_EINVAL);
	/* 255 bytes is the longest partition. */
	CHECK_EQ(append1(rm, dbi, long_part, 255, 41, &pos), SL_OK);
	CHECK_EQ(pos, 9);
	long_part[255] = '\0';
	CHECK_EQ(rd(rm, FILTER, long_part, 0, 0, &s, &next, &more), SL_OK);
	CHECK_EQ(s.n, 1);
	CHECK_EQ(s.e[0].plen, 255);
	CHECK_EQ(s.e[0].log_pos, 41);
	CHECK_EQ(rd(rm, FILTER, NULL, 9, 0, &s, &next, &more), SL_OK);
	CHECK_EQ(s.n, 1);
	CHECK_EQ(s.e[0].plen, 255);

	/* Another filter's stream is its own (unpartitioned: whole only). */
	CHECK_EQ(rd(rm, OTHER, NULL, 0, 0, &s, &next, &more), SL_OK);
	CHECK_EQ(s.n, 0);
	{
		MDB_dbi odbi;
		CHECK_EQ(
		    rm_gen_dbi(rm, RM_FILTER_PREFIX OTHER, 1, true, &odbi),
		    SL_OK);
		CHECK_EQ(mdb_txn_begin(rm_env(rm), NULL, 0, &txn), 0);
		CHECK_EQ(
		    rm_stream_append(rm, txn, odbi, NULL, 0, 3, &pos), SL_OK);
		CHECK_EQ(pos, 0);
		CHECK_EQ(
		    rm_stream_append(rm, txn, odbi, NULL, 0, 4, &pos), SL_OK);
		CHECK_EQ(pos, 1);
		CHECK_EQ(rm_active_write(rm, txn, RM_FILTER_PREFIX OTHER, 1),
		    SL_OK);
		CHECK_EQ(mdb_txn_commit(txn), 0);
	}
	CHECK_EQ(rd(rm, OTHER, NULL, 0, 0, &s, &next, &more), SL_OK);
	CHECK_EQ(s.n, 2);
	check_entry(&s.e[0], 0, 3, "");
	check_entry(&s.e[1], 1, 4, "");
	CHECK_EQ(s.e[1].plen, 0);
	CHECK_EQ(rd(rm, FILTER, NULL, 0, 0, &s, &next, &more), SL_OK);
	CHECK_EQ(s.n, 10);

	/* Generation 2 fills the other db; reads keep seeing generation 1
	 * until the active record switches. */
	CHECK_EQ(rm_gen_dbi(rm, NAME, 2, true, &dbi2), SL_OK);
	CHECK(dbi2 != dbi);
	CHECK_EQ(mdb_txn_begin(rm_env(rm), NULL, 0, &txn), 0);
	CHECK_EQ(rm_stream_append(rm, txn, dbi2, "z", 1, 100, &pos), SL_OK);
	CHECK_EQ(pos, 0); /* a new generation counts from 0 */
	CHECK_EQ(rm_stream_append(rm, txn, dbi2, "a", 1, 101, &pos), SL_OK);
	CHECK_EQ(pos, 1);
	CHECK_EQ(mdb_txn_commit(txn), 0);
	CHECK_EQ(rd(rm, FILTER, NULL, 0, 0, &s, &next, &more), SL_OK);
	CHECK_EQ(s.n, 10);
	check_entry(&s.e[0], 0, 3, "a");
	CHECK_EQ(rd(rm, FILTER, "z", 0, 0, &s, &next, &more), SL_OK);
	CHECK_EQ(s.n, 0);

	CHECK_EQ(mdb_txn_begin(rm_env(rm), NULL, 0, &txn), 0);
	CHECK_EQ(rm_active_write(rm, txn, NAME, 2), SL_OK);
	CHECK_EQ(rm_gen_clear(rm, txn, NAME, 1), SL_OK);
	CHECK_EQ(mdb_txn_commit(txn), 0);
	CHECK_EQ(rd(rm, FILTER, NULL, 0, 0, &s, &next, &more), SL_OK);
	CHECK_EQ(s.n, 2);
	check_entry(&s.e[0], 0, 100, "z");
	check_entry(&s.e[1], 1, 101, "a");
	CHECK_EQ(next, 2);
	CHECK_EQ(rd(rm, FILTER, "a", 0, 0, &s, &next, &more), SL_OK);
	CHECK_EQ(s.n, 1);
	check_entry(&s.e[0], 0, 101, "a");

	/* Reopened, the store serves the same generation and appends go on. */
	rm_close(rm);
	CHECK_EQ(rm_open(path, 16u << 20, false, &rm), SL_OK);
	CHECK_EQ(rd(rm, FILTER, NULL, 0, 0, &s, &next, &more), SL_OK);
	CHECK_EQ(s.n, 2);
	check_entry(&s.e[1], 1, 101, "a");
	CHECK_EQ(rm_gen_dbi(rm, NAME, 2, false, &dbi2), SL_OK);
	CHECK_EQ(append1(rm, dbi2, "a", 1, 102, &pos), SL_OK);
	CHECK_EQ(pos, 2);
	CHECK_EQ(rd(rm, FILTER, "a", 0, 0, &s, &next, &more), SL_OK);
	CHECK_EQ(s.n, 2);
	check_entry(&s.e[1], 1, 102, "a");
	CHECK_EQ(rd(rm, OTHER, NULL, 0, 0, &s, &next, &more), SL_OK);
	CHECK_EQ(s.n, 2);
	rm_close(rm);

	printf("filter_stream_store_test: ok\n");
	return 0;
}
