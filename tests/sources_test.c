/*
 * ABI 1.3 sources (issue 15): each projection of tests/plugins/sources.c
 * counts the events it gets per stream; the real processor folds a real
 * log holding other streams, another tenant, a system stream and link
 * events (written as an emitting projection writes them, through
 * store_emit) into a real read-model store. Each projection gets exactly
 * the events of its sources: system streams and links only when it asks
 * (and then resolves the links to their targets), none before 1.3 is
 * refused them; the filter reading a prefix indexes only its streams; a
 * plugin with a bad source is refused at load.
 */
#include "projection_testutil.h"

#define PFX "50c0e5e5-0000-4000-8000-0000000000"

static int64_t
count_of(rmstore *rm, const char *proj, const char *stream)
{
	char  *data;
	size_t len;
	int    rc = rm_get(rm, proj, stream, strlen(stream), &data, &len);
	if (rc == SL_ENOTFOUND)
		return 0;
	CHECK_EQ(rc, SL_OK);
	msgpack_unpacked u;
	int64_t          n = 0;
	CHECK(mp_get_i64(pt_decode(&u, data, len), "n", &n) == SL_OK);
	msgpack_unpacked_destroy(&u);
	free(data);
	return n;
}

/* Run the projection (by name) to the head; its per-stream counts. */
static void
fold(pt_env *e, const char *name, uint64_t head)
{
	processor *p;
	CHECK_EQ(proc_start(e->s, e->rm, "t1", pt_find(e->r, name), 64, &p),
	    SL_OK);
	proc_status st = pt_wait_position(p, head, PT_WAIT_MS);
	CHECK_EQ(st.n_failing, 0);
	proc_stop(p);
}

/* rm_stream_fn: counts the entries. */
static int
entry_cb(void *arg, uint64_t stream_pos, uint64_t log_pos, uint64_t other_pos,
    const char *partition, size_t plen)
{
	(void) stream_pos;
	(void) log_pos;
	(void) other_pos;
	(void) partition;
	(void) plen;
	(*(size_t *) arg)++;
	return 0;
}

typedef struct want {
	const char *stream;
	int64_t     n;
} want;

static const char *const streams[] = { "account-1", "account-2",
	"accounting-1", "acc-3", "order-1", "$ce-account", "$misc" };

static void
expect(rmstore *rm, const char *id, const want *w, size_t nw)
{
	for (size_t i = 0; i < sizeof(streams) / sizeof(streams[0]); i++) {
		int64_t n = 0;
		for (size_t k = 0; k < nw; k++)
			if (strcmp(w[k].stream, streams[i]) == 0)
				n = w[k].n;
		int64_t got = count_of(rm, id, streams[i]);
		if (got != n) {
			fprintf(stderr, "%s: stream %s: %lld events, want %lld\n",
			    id, streams[i], (long long) got, (long long) n);
			exit(1);
		}
	}
}

/* A system stream and two links, as an emitting projection writes them. */
static void
write_system(store *s)
{
	msgpack_zone z;
	CHECK(msgpack_zone_init(&z, 1024));
	msgpack_object links[2], tick = pt_json_obj(&z, "{}");
	const char    *text[2] = { "0@account-1", "1@account-1" };
	store_append   a[3];
	memset(a, 0, sizeof(a));
	for (int i = 0; i < 3; i++) {
		a[i].ev.generation   = 1;
		a[i].ev.causation_id = "";
		a[i].ev.occurred_ns  = ev_now_ns();
		ev_uuid_generate(a[i].ev.id);
	}
	for (int i = 0; i < 2; i++) {
		links[i].type         = MSGPACK_OBJECT_STR;
		links[i].via.str.ptr  = text[i];
		links[i].via.str.size = (uint32_t) strlen(text[i]);
		a[i].stream           = "$ce-account";
		a[i].ev.type          = EV_LINK_TYPE;
		a[i].ev.type_len      = strlen(EV_LINK_TYPE);
		a[i].ev.content       = &links[i];
	}
	a[2].stream      = "$misc";
	a[2].ev.type     = "Tick";
	a[2].ev.type_len = 4;
	a[2].ev.content  = &tick;
	store_emit em;
	memset(&em, 0, sizeof(em));
	em.tenant    = "t1";
	em.owner     = "e0000000-0000-4000-8000-0000000000aa";
	em.appends   = a;
	em.n_appends = 3;
	CHECK_EQ(store_emit_wait(s, &em), SL_OK);
	msgpack_zone_destroy(&z);
}

static void
commit(store *s, const char *tenant, const char *stream, const char *type,
    int n)
{
	for (int i = 0; i < n; i++)
		pt_commit1(s, tenant, stream, type, "{}");
}

int
main(void)
{
	pt_env e;
	pt_env_open(&e, "sources", SL_TEST_PLUGIN_DIR "/sources.so");
	commit(e.s, "t1", "account-1", "Deposited", 2);
	commit(e.s, "t1", "account-1", "Withdrawn", 1);
	commit(e.s, "t1", "account-2", "Deposited", 2);
	commit(e.s, "t1", "accounting-1", "Deposited", 1);
	commit(e.s, "t1", "acc-3", "Deposited", 1);
	commit(e.s, "t1", "order-1", "Placed", 2);
	commit(e.s, "t2", "account-1", "Deposited", 5); /* another tenant */
	write_system(e.s);
	commit(e.s, "t1", "account-1", "Deposited", 1);
	uint64_t head = store_next_position(e.s);

	const want all[] = { { "account-1", 4 }, { "account-2", 2 },
		{ "accounting-1", 1 }, { "acc-3", 1 }, { "order-1", 2 } };
	const want sys[] = { { "account-1", 4 }, { "account-2", 2 },
		{ "accounting-1", 1 }, { "acc-3", 1 }, { "order-1", 2 },
		{ "$ce-account", 2 }, { "$misc", 1 } };
	const want one[]  = { { "account-1", 4 } };
	const want pfx[]  = { { "account-1", 4 }, { "account-2", 2 },
		 { "accounting-1", 1 }, { "acc-3", 1 } };
	const want cat[]  = { { "account-1", 4 }, { "account-2", 2 } };
	const want deps[] = { { "account-1", 3 }, { "account-2", 2 } };
	const want two[]  = { { "order-1", 2 }, { "$misc", 1 } };

	/* 1.3 without sources: the whole tenant log, no system streams, no
	 * links */
	fold(&e, "all", head);
	expect(e.rm, PFX "01", all, 5);
	/* asking for both: they come, and the links resolve */
	fold(&e, "links_all", head);
	expect(e.rm, PFX "02", sys, 7);
	CHECK_EQ(pt_state_i64(e.rm, PFX "02", "$ce-account", "resolved"), 2);
	fold(&e, "one_stream", head);
	expect(e.rm, PFX "03", one, 1);
	fold(&e, "prefix", head);
	expect(e.rm, PFX "04", pfx, 4);
	fold(&e, "category", head);
	expect(e.rm, PFX "05", cat, 2);
	fold(&e, "category_deposits", head);
	expect(e.rm, PFX "06", deps, 2);
	/* a source naming a '$' stream reads it */
	fold(&e, "two_streams", head);
	expect(e.rm, PFX "07", two, 2);
	/* built for 1.2: everything of the tenant, as before */
	fold(&e, "legacy_all", head);
	expect(e.rm, PFX "09", sys, 7);

	/* the filter reading "order-" indexes only order-1's two events */
	processor *f;
	CHECK_EQ(proc_start(e.s, e.rm, "t1", pt_find(e.r, "orders"), 64, &f),
	    SL_OK);
	pt_wait_position(f, head, PT_WAIT_MS);
	proc_stop(f);
	uint64_t next;
	bool     more;
	size_t   n_at = 0;
	CHECK_EQ(rm_stream_read(e.rm, PFX "f1", NULL, 0, 0, 0, entry_cb,
	             &n_at, &next, &more, NULL),
	    SL_OK);
	CHECK_EQ(next, 2);
	CHECK_EQ(n_at, 2);
	pt_env_close(&e);

	/* a bad source refuses the plugin, saying which */
	const char *why[] = { "sources[0] has an unknown kind",
		"sources[0] has no name" };
	for (int b = 1; b <= 2; b++) {
		char      dir[4200], so[4200], err[512];
		registry *r;
		snprintf(dir, sizeof(dir), "%s/cache-bad%d", tu_tmpdir(), b);
		CHECK_EQ(registry_create(dir, &r), SL_OK);
		snprintf(so, sizeof(so), "%s/sources_bad%d.so",
		    SL_TEST_PLUGIN_DIR, b);
		CHECK_EQ(registry_load_file(r, so, err, sizeof(err)), SL_EPLUGIN);
		if (strstr(err, why[b - 1]) == NULL)
		{
			fprintf(stderr, "sources_bad%d: %s\n", b, err);
			exit(1);
		}
		registry_destroy(r);
	}
	printf("sources_test: ok\n");
	return 0;
}
