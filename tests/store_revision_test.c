/*
 * Optimistic concurrency in the event log: expected revision any, no-stream
 * and exact. A wrong expectation is refused with SL_EREVISION and the
 * stream's actual last revision, and writes nothing at all.
 */
#include "store_testutil.h"

static ev_new evs[4];

static int
commit(store *s, const char *tenant, const char *stream, size_t stream_len,
    uint64_t expected, size_t n, store_commit *c)
{
	tev_commit_init(c, tenant, stream, stream_len, expected, evs, n);
	return store_commit_wait(s, c);
}

static int
count_cb(void *arg, uint64_t position, const void *data, size_t len)
{
	(void) position;
	(void) data;
	(void) len;
	(*(int *) arg)++;
	return 0;
}

static int
stream_count(store *s, const char *tenant, const char *stream)
{
	int n = 0;

	CHECK_EQ(store_scan_stream(s, tenant, stream, 0, 1000, count_cb, &n),
	    SL_OK);
	return n;
}

/* Everything a refused commit must leave alone. */
typedef struct snapshot {
	uint64_t next_position;
	uint64_t txn_count;
	uint64_t head;
	int      events;
} snapshot;

static snapshot
snap(store *s, const char *tenant, const char *stream)
{
	snapshot sn;

	sn.next_position = store_next_position(s);
	sn.txn_count     = store_txn_count(s);
	CHECK_EQ(
	    store_stream_next_revision(s, tenant, stream, &sn.head), SL_OK);
	sn.events = stream_count(s, tenant, stream);
	return sn;
}

static void
check_unchanged(
    store *s, const char *tenant, const char *stream, snapshot before)
{
	snapshot now = snap(s, tenant, stream);

	CHECK_EQ(now.next_position, before.next_position);
	CHECK_EQ(now.txn_count, before.txn_count);
	CHECK_EQ(now.head, before.head);
	CHECK_EQ(now.events, before.events);
	int total = 0;
	CHECK_EQ(store_scan(s, 0, 100000, count_cb, &total, NULL), SL_OK);
	CHECK_EQ(total, before.next_position);
}

int
main(void)
{
	char         path[4200], longid[SL_MAX_ID_LEN + 2];
	store       *s;
	store_commit c;
	snapshot     sn;
	tev          t[4];
	uint64_t     head;

	for (int i = 0; i < 4; i++) {
		tev_init(&t[i], "Deposited", "{\"amount\":10,\"n\":[1,2]}");
		evs[i] = t[i].e;
	}
	snprintf(path, sizeof(path), "%s/log", tu_tmpdir());
	CHECK_EQ(store_open(path, 64u << 20, true, &s), SL_OK);

	/* no-stream on a new stream: revisions 0 and 1 at positions 0, 1 */
	CHECK_EQ(
	    commit(s, "t1", "acc-1", 5, STORE_EXPECT_NO_STREAM, 2, &c), SL_OK);
	CHECK_EQ(c.first_position, 0);
	CHECK_EQ(c.first_revision, 0);
	CHECK_EQ(store_next_position(s), 2);

	/* no-stream on an existing stream: refused, actual revision 1 */
	sn = snap(s, "t1", "acc-1");
	CHECK_EQ(commit(s, "t1", "acc-1", 5, STORE_EXPECT_NO_STREAM, 1, &c),
	    SL_EREVISION);
	CHECK_EQ(c.stream_revision, 1);
	CHECK(c.message[0] != '\0');
	check_unchanged(s, "t1", "acc-1", sn);

	/* exact but stale (0) and exact from the future (5): refused */
	CHECK_EQ(commit(s, "t1", "acc-1", 5, 0, 3, &c), SL_EREVISION);
	CHECK_EQ(c.stream_revision, 1);
	check_unchanged(s, "t1", "acc-1", sn);
	CHECK_EQ(commit(s, "t1", "acc-1", 5, 5, 1, &c), SL_EREVISION);
	CHECK_EQ(c.stream_revision, 1);
	check_unchanged(s, "t1", "acc-1", sn);

	/* exact = revision of the last event: accepted */
	CHECK_EQ(commit(s, "t1", "acc-1", 5, 1, 1, &c), SL_OK);
	CHECK_EQ(c.first_position, 2);
	CHECK_EQ(c.first_revision, 2);
	/* any: always accepted */
	CHECK_EQ(commit(s, "t1", "acc-1", 5, STORE_EXPECT_ANY, 2, &c), SL_OK);
	CHECK_EQ(c.first_position, 3);
	CHECK_EQ(c.first_revision, 3);
	CHECK_EQ(store_stream_next_revision(s, "t1", "acc-1", &head), SL_OK);
	CHECK_EQ(head, 5);

	/* a new stream with an exact revision: refused, "no stream" */
	sn = snap(s, "t1", "acc-2");
	CHECK_EQ(sn.head, 0);
	CHECK_EQ(commit(s, "t1", "acc-2", 5, 0, 1, &c), SL_EREVISION);
	CHECK_EQ(c.stream_revision, STORE_EXPECT_NO_STREAM);
	check_unchanged(s, "t1", "acc-2", sn);
	CHECK_EQ(commit(s, "t1", "acc-2", 5, STORE_EXPECT_ANY, 1, &c), SL_OK);
	CHECK_EQ(c.first_position, 5);
	CHECK_EQ(c.first_revision, 0);

	/* the same stream id in another tenant is another stream */
	CHECK_EQ(
	    commit(s, "t2", "acc-1", 5, STORE_EXPECT_NO_STREAM, 1, &c), SL_OK);
	CHECK_EQ(c.first_revision, 0);
	CHECK_EQ(stream_count(s, "t1", "acc-1"), 5);
	CHECK_EQ(stream_count(s, "t2", "acc-1"), 1);

	/* bad ids: SL_EINVAL and nothing written */
	sn = snap(s, "t1", "acc-1");
	CHECK_EQ(commit(s, "t1", "", 0, STORE_EXPECT_ANY, 1, &c), SL_EINVAL);
	CHECK_EQ(
	    commit(s, "t1", "a\0b", 3, STORE_EXPECT_ANY, 1, &c), SL_EINVAL);
	memset(longid, 'x', sizeof(longid));
	longid[SL_MAX_ID_LEN + 1] = '\0';
	CHECK_EQ(commit(s, "t1", longid, SL_MAX_ID_LEN + 1, STORE_EXPECT_ANY,
	             1, &c),
	    SL_EINVAL);
	CHECK(strstr(c.message, "bytes") != NULL);
	CHECK_EQ(
	    commit(s, "", "acc-1", 5, STORE_EXPECT_ANY, 1, &c), SL_EINVAL);
	check_unchanged(s, "t1", "acc-1", sn);
	/* an id of exactly the limit is fine */
	CHECK_EQ(
	    commit(s, "t1", longid, SL_MAX_ID_LEN, STORE_EXPECT_ANY, 1, &c),
	    SL_OK);

	/* an empty batch is refused before it is queued */
	sn = snap(s, "t1", "acc-1");
	CHECK_EQ(
	    commit(s, "t1", "acc-1", 5, STORE_EXPECT_ANY, 0, &c), SL_EINVAL);
	check_unchanged(s, "t1", "acc-1", sn);

	store_close(s);
	for (int i = 0; i < 4; i++)
		tev_free(&t[i]);
	return 0;
}
