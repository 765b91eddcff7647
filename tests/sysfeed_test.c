/*
 * The system projections' shared reader (runtime/processing/sysfeed.c)
 * over a real log in LMDB: two tenants' events interleaved (categories,
 * none, correlation ids, a client's own link event), read for one tenant.
 * Walked by the five projections in step, chunk by chunk: each chunk is
 * read once, a walk shows only that tenant's events, every one of them,
 * and each projection's link is what the decoded event calls for (worked
 * out here from ev_decode, independently of sysproj.c's decision), and
 * every byte of the log passed is counted once, the other tenant's too
 * (a checkpoint's unhandled bytes threshold). Then
 * the window: behind it, another definition, far ahead of a projection
 * still walking it; and the five walking at once from five threads.
 */
#include <inttypes.h>
#include <pthread.h>

#include "store_testutil.h"
#include "sysfeed.h"
#include "sysproj.h"

#define N_COMMITS 5000 /* of 5 events: 25,000, half of them t1's */
#define PER       5

static store   *s;
static uint64_t head;

/* ---- the log ---- */

/* A client's own "$>" in an ordinary stream (content "3@acc-7"). */
static void
commit_link_event(const char *tenant)
{
	static const char text[] = "3@acc-7";
	msgpack_object    str    = { .type = MSGPACK_OBJECT_STR };
	store_commit      c;
	ev_new            e;
	str.via.str.ptr  = text;
	str.via.str.size = sizeof(text) - 1;
	memset(&e, 0, sizeof(e));
	e.type       = EV_LINK_TYPE;
	e.type_len   = 2;
	e.generation = 1;
	ev_uuid_generate(e.id);
	e.causation_id = "";
	e.content      = &str;
	tev_commit_init(&c, tenant, "lnk-1", 5, STORE_EXPECT_ANY, &e, 1);
	CHECK_EQ(store_commit_wait(s, &c), SL_OK);
}

/* A stream of t1 whose category (250 bytes) makes "$category-<it>"
 * longer than a stream id may be: not decided in place for
 * $stream_by_category (its on() logs and skips it). */
static char long_stream[260];

static void
commit_long_category(void)
{
	tev          t;
	store_commit c;
	memset(long_stream, 'a', 250);
	memcpy(long_stream + 250, "-1", 3);
	tev_init(&t, "Opened", "{}");
	tev_commit_init(&c, "t1", long_stream, strlen(long_stream),
	    STORE_EXPECT_ANY, &t.e, 1);
	CHECK_EQ(store_commit_wait(s, &c), SL_OK);
	tev_free(&t);
}

static void
fill_log(void)
{
	for (int k = 0; k < N_COMMITS; k++) {
		const char *tenant = k % 2 == 0 ? "t1" : "t2";
		char        stream[32], corr[16];
		snprintf(stream, sizeof(stream), "%s%d",
		    k % 3 == 0       ? "cust-"
		        : k % 3 == 1 ? "acc-"
		                     : "nocat",
		    (k / 6) % 50);
		snprintf(corr, sizeof(corr), "c%d", k % 5);
		tev    t[PER];
		ev_new e[PER];
		for (int j = 0; j < PER; j++) {
			tev_init(&t[j], j == 0 ? "Opened" : "Deposited",
			    "{\"n\":1}");
			e[j] = t[j].e;
			/* every fifth commit correlated by metadata; the
			 * others by the event's own correlation id only */
			if (k % 5 != 4) {
				e[j].correlation_id  = corr;
				e[j].correlation_len = strlen(corr);
			}
		}
		msgpack_sbuffer  meta;
		msgpack_packer   pk;
		msgpack_unpacked mu;
		size_t           off = 0;
		msgpack_sbuffer_init(&meta);
		msgpack_packer_init(&pk, &meta, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, 1);
		msgpack_pack_str(&pk, 14);
		msgpack_pack_str_body(&pk, "$correlationId", 14);
		msgpack_pack_str(&pk, strlen(corr));
		msgpack_pack_str_body(&pk, corr, strlen(corr));
		msgpack_unpacked_init(&mu);
		CHECK(msgpack_unpack_next(&mu, meta.data, meta.size, &off)
		    == MSGPACK_UNPACK_SUCCESS);
		for (int j = 0; j < PER; j++)
			if (k % 5 == 4)
				e[j].metadata = &mu.data;
		store_commit c;
		tev_commit_init(&c, tenant, stream, strlen(stream),
		    STORE_EXPECT_ANY, e, PER);
		CHECK_EQ(store_commit_wait(s, &c), SL_OK);
		for (int j = 0; j < PER; j++)
			tev_free(&t[j]);
		msgpack_unpacked_destroy(&mu);
		msgpack_sbuffer_destroy(&meta);
		if (k == N_COMMITS / 2) {
			commit_link_event("t1");
			commit_link_event("t2");
			commit_long_category();
		}
	}
	head = store_next_position(s);
}

/* ---- what each projection links, from the decoded events ---- */

typedef struct want {
	uint64_t position;
	char     stream[SYSPROJ_COUNT][300]; /* "" no link */
	char     target[SYSPROJ_COUNT][300]; /* "rev@stream" */
	bool     slow[SYSPROJ_COUNT];        /* for the decoder */
} want;

static want    *wants;
static size_t   n_wants;
static uint64_t log_bytes; /* of every record, both tenants' */

static int
expect_cb(void *arg, uint64_t position, const void *data, size_t len)
{
	msgpack_zone *z = arg;
	ev_view       v;
	msgpack_zone_clear(z);
	CHECK_EQ(ev_decode(data, len, position, z, &v), SL_OK);
	log_bytes += len;
	if (strcmp(v.tenant, "t1") != 0)
		return 0;
	want *w = &wants[n_wants++];
	memset(w, 0, sizeof(*w));
	w->position = position;
	char cat[SL_MAX_ID_LEN + 1];
	bool link = strcmp(v.type, "$>") == 0;
	bool has
	    = sysproj_category(v.stream, "-", false, cat, sizeof(cat)) > 0;
	/* $by_category: a link event to its target */
	if (has) {
		snprintf(w->stream[0], 300, "$ce-%s", cat);
		if (link)
			snprintf(w->target[0], 300, "%.*s",
			    (int) v.content.via.str.size,
			    v.content.via.str.ptr);
		else
			snprintf(w->target[0], 300, "%" PRIu64 "@%s",
			    v.revision, v.stream);
	}
	char self[300];
	snprintf(self, sizeof(self), "%" PRIu64 "@%s", v.revision, v.stream);
	if (!link) {
		snprintf(w->stream[1], 300, "$et-%s", v.type);
		snprintf(w->target[1], 300, "%s", self);
	}
	/* $by_correlation_id: metadata's $correlationId */
	for (uint32_t i = 0; !link && i < v.metadata.via.map.size; i++) {
		const msgpack_object_kv *kv = &v.metadata.via.map.ptr[i];
		if (kv->key.via.str.size == 14
		    && memcmp(kv->key.via.str.ptr, "$correlationId", 14)
		        == 0) {
			snprintf(w->stream[2], 300, "$bc-%.*s",
			    (int) kv->val.via.str.size, kv->val.via.str.ptr);
			snprintf(w->target[2], 300, "%s", self);
		}
	}
	if (v.revision == 0 && has && strlen(cat) + 10 > SL_MAX_ID_LEN)
		w->slow[3] = true; /* "$category-" + cat: too long */
	else if (v.revision == 0 && has) {
		snprintf(w->stream[3], 300, "$category-%s", cat);
		snprintf(w->target[3], 300, "%s", self);
	}
	if (v.revision == 0) {
		snprintf(w->stream[4], 300, "$streams");
		snprintf(w->target[4], 300, "%s", self);
	}
	return 0;
}

static void
expect_all(void)
{
	msgpack_zone z;
	CHECK(msgpack_zone_init(&z, 4096));
	wants = calloc(head, sizeof(*wants));
	CHECK(wants != NULL);
	CHECK_EQ(store_scan(s, 0, head, expect_cb, &z, NULL), SL_OK);
	msgpack_zone_destroy(&z);
	CHECK(n_wants > N_COMMITS * PER / 2); /* t1's, and its link */
}

/* ---- walks ---- */

/* What one projection's walks showed, checked against wants as they go. */
typedef struct seen {
	size_t   i;  /* the projection */
	size_t   at; /* the next want */
	uint64_t links;
	uint64_t bytes; /* of the log passed, as the walks count them */
	uint64_t slow;  /* events left to the decoder */
	bool     skip;  /* may skip wants (a thread behind the window) */
} seen;

static int
seen_cb(void *arg, const sysfeed_event *e)
{
	seen *sn = arg;
	while (sn->skip && sn->at < n_wants
	    && wants[sn->at].position < e->position)
		sn->at++;
	if (sn->at >= n_wants || wants[sn->at].position != e->position) {
		fprintf(stderr,
		    "projection %zu: walked position %" PRIu64
		    ", want %" PRIu64 " (a t1 event)\n",
		    sn->i, e->position,
		    sn->at < n_wants ? wants[sn->at].position : 0);
		exit(1);
	}
	const want *w = &wants[sn->at++];
	CHECK(!e->own);
	CHECK_EQ(e->slow, w->slow[sn->i]);
	sn->bytes += e->bytes;
	if (e->slow) {
		sn->slow++;
		return 0;
	}
	CHECK(e->corr != NULL && e->id != NULL);
	if (w->stream[sn->i][0] == '\0') {
		CHECK(e->stream == NULL);
		return 0;
	}
	char target[300];
	CHECK(e->stream != NULL);
	snprintf(target, sizeof(target), "%" PRIu64 "@%.*s", e->revision,
	    (int) e->target_len, e->target);
	if (strcmp(e->stream, w->stream[sn->i]) != 0
	    || strcmp(target, w->target[sn->i]) != 0) {
		fprintf(stderr,
		    "projection %zu at %" PRIu64 ": link %s -> %s, want %s "
		    "-> %s\n",
		    sn->i, e->position, e->stream, target, w->stream[sn->i],
		    w->target[sn->i]);
		exit(1);
	}
	sn->links++;
	return 0;
}

/* The five in step, chunk by chunk from 0: each chunk is read once. */
static void
walk_in_step(void)
{
	sysfeed *f = sysfeed_get(s, "t1");
	CHECK(f != NULL);
	CHECK(sysfeed_get(s, "t1") == f); /* one per tenant */
	sysfeed_put(f);
	seen     sn[SYSPROJ_COUNT];
	uint64_t pos = 0, chunks = 0, lo, hi, reads;
	for (size_t i = 0; i < SYSPROJ_COUNT; i++)
		sn[i] = (seen) { .i = i };
	while (pos < head) {
		uint64_t next[SYSPROJ_COUNT], tail;
		for (size_t i = 0; i < SYSPROJ_COUNT; i++)
			CHECK_EQ(
			    sysfeed_walk(f, i, sysproj_def(i)->def_hash, pos,
			        UINT64_MAX, seen_cb, &sn[i], &next[i], &tail),
			    SL_OK);
		for (size_t i = 1; i < SYSPROJ_COUNT; i++)
			CHECK_EQ(next[i], next[0]);
		sn[0].bytes += tail; /* the other tenant's at the end */
		CHECK(next[0] > pos && next[0] - pos <= SYSFEED_SPAN);
		pos = next[0];
		chunks++;
		sysfeed_window(f, &lo, &hi, &reads);
		CHECK_EQ(reads, chunks);
		CHECK(hi == pos && hi - lo <= SYSFEED_CHUNKS * SYSFEED_SPAN);
	}
	for (size_t i = 0; i < SYSPROJ_COUNT; i++)
		CHECK_EQ(sn[i].at, n_wants); /* every t1 event, in order */
	/* every byte of the log passed counted once (the unhandled bytes
	 * threshold of a checkpoint), the other tenant's too */
	CHECK_EQ(sn[0].bytes, log_bytes);
	/* the one too long for $stream_by_category, and only there */
	for (size_t i = 0; i < SYSPROJ_COUNT; i++)
		CHECK_EQ(sn[i].slow, i == 3 ? 1 : 0);
	/* $by_category and $by_event_type link nearly every event */
	CHECK(sn[0].links > n_wants / 2 && sn[1].links == n_wants - 1);
	CHECK(chunks >= head / SYSFEED_SPAN);

	/* behind the window: the log is for the caller to read */
	uint64_t next, tail;
	seen     x = { .i = 0 };
	CHECK(lo > 0);
	CHECK_EQ(sysfeed_walk(f, 0, sysproj_def(0)->def_hash, lo - 1,
	             UINT64_MAX, seen_cb, &x, &next, &tail),
	    SL_ENOTFOUND);
	/* another definition (a changed configuration) */
	CHECK_EQ(sysfeed_walk(f, 1, sysproj_def(1)->def_hash + 1, lo,
	             UINT64_MAX, seen_cb, &x, &next, &tail),
	    SL_ENOTFOUND);
	/* far ahead of the window while the others walk it: not restarted
	 * (the position is past the log's end: nothing to read anyway) */
	CHECK_EQ(
	    sysfeed_walk(f, 4, sysproj_def(4)->def_hash, hi + 3 * SYSFEED_SPAN,
	        UINT64_MAX, seen_cb, &x, &next, &tail),
	    SL_ENOTFOUND);
	uint64_t lo2, hi2;
	sysfeed_window(f, &lo2, &hi2, &reads);
	CHECK(lo2 == lo && hi2 == hi);
	sysfeed_put(f);
}

/* ---- the five at once ---- */

typedef struct runner {
	pthread_t thr;
	sysfeed  *f;
	seen      sn;
	uint64_t  behind; /* walks that found themselves behind */
} runner;

static void *
run_one(void *arg)
{
	runner  *r   = arg;
	uint64_t pos = 0;
	while (pos < head) {
		uint64_t next, tail, lo, hi, reads;
		int      rc = sysfeed_walk(r->f, r->sn.i,
		         sysproj_def(r->sn.i)->def_hash, pos, pos + 1000, seen_cb,
		         &r->sn, &next, &tail);
		if (rc == SL_OK) {
			pos = next;
			continue;
		}
		CHECK_EQ(rc, SL_ENOTFOUND);
		/* as a processor reads the log itself: on to the window */
		r->behind++;
		sysfeed_window(r->f, &lo, &hi, &reads);
		CHECK(lo > pos);
		pos = lo;
	}
	return NULL;
}

static void
walk_at_once(void)
{
	runner r[SYSPROJ_COUNT];
	for (size_t i = 0; i < SYSPROJ_COUNT; i++) {
		r[i] = (runner) { .f = sysfeed_get(s, "t1"),
			.sn          = { .i = i, .skip = true } };
		CHECK(r[i].f != NULL);
	}
	for (size_t i = 0; i < SYSPROJ_COUNT; i++)
		CHECK_EQ(pthread_create(&r[i].thr, NULL, run_one, &r[i]), 0);
	uint64_t behind = 0;
	for (size_t i = 0; i < SYSPROJ_COUNT; i++) {
		CHECK_EQ(pthread_join(r[i].thr, NULL), 0);
		behind += r[i].behind;
	}
	uint64_t lo, hi, reads;
	sysfeed_window(r[0].f, &lo, &hi, &reads);
	CHECK_EQ(hi, head);
	/* a fresh reader (the last one went with its last user): each
	 * chunk read about once, not once per projection */
	CHECK(reads <= 2 * (head / SYSFEED_SPAN + 2));
	printf("sysfeed_test: five threads: %" PRIu64
	       " chunk reads in all, %" PRIu64 " walks behind\n",
	    reads, behind);
	for (size_t i = 0; i < SYSPROJ_COUNT; i++)
		sysfeed_put(r[i].f);
}

/* Tenant t2's reader shows t2's events only (and t1's none). */
static int
t2_cb(void *arg, const sysfeed_event *e)
{
	(void) arg;
	for (size_t k = 0; k < n_wants; k++)
		CHECK(wants[k].position != e->position);
	return 0;
}

static int
stop_cb(void *arg, const sysfeed_event *e)
{
	*(uint64_t *) arg = e->position;
	return 7;
}

static void
other_tenant(void)
{
	sysfeed *f = sysfeed_get(s, "t2");
	uint64_t next, tail, first = UINT64_MAX;
	CHECK(f != NULL);
	CHECK_EQ(sysfeed_walk(f, 1, sysproj_def(1)->def_hash, 0, UINT64_MAX,
	             t2_cb, NULL, &next, &tail),
	    SL_OK);
	CHECK(next > 0);
	/* a callback's stop is the walk's result */
	CHECK_EQ(sysfeed_walk(f, 1, sysproj_def(1)->def_hash, 0, UINT64_MAX,
	             stop_cb, &first, &next, &tail),
	    7);
	CHECK_EQ(first, 5); /* t1's first commit is 0..4 */
	sysfeed_put(f);
}

int
main(void)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/events", tu_tmpdir());
	CHECK_EQ(store_open(path, 256u << 20, false, &s), SL_OK);
	CHECK_EQ(sysproj_init(NULL), SL_OK);
	fill_log();
	expect_all();
	walk_in_step();
	walk_at_once();
	other_tenant();
	free(wants);
	sysproj_fini();
	store_close(s);
	printf("sysfeed_test: ok (%" PRIu64 " events, %zu of t1)\n", head,
	    n_wants);
	return 0;
}
