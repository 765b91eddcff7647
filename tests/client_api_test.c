/*
 * Proves the client library against a real runtime: commits with each kind
 * of expected revision (a mismatch writes nothing), log and stream reads,
 * read models through the account_details plugin, status, concurrent
 * clients, and a shutdown with requests in flight.
 */
#include <pthread.h>
#include <spawn.h>
#include <stdbool.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <jansson.h>

#include <msgpack.h>
#include <sluice/client.h>

#include "api_fixture.h"
#include "json.h"

extern char **environ;

static uint64_t
log_head(sl_client *c)
{
	sl_read_result r;
	uint64_t       h;

	CHECK_EQ(sl_client_read(c, 0, 1, &r), SL_OK);
	h = r.head;
	sl_read_result_free(&r);
	return h;
}

static int
commit1(sl_client *c, const char *stream, uint64_t expected, const char *type,
    const char *content, sl_commit_result *res)
{
	sl_new_event e = { .type = type, .content_json = content };
	return sl_client_commit(c, FX_TENANT, stream, expected, &e, 1, res);
}

/* Wait until every processor's position equals the head (<= 10 s). */
static json_t *
wait_caught_up(sl_client *c)
{
	for (int i = 0; i < 1000; i++) {
		char        *text;
		json_t      *st, *procs, *p;
		size_t       k;
		bool         all = true;
		json_error_t je;

		CHECK_EQ(sl_client_status(c, &text), SL_OK);
		st = json_loads(text, 0, &je);
		sl_client_free(text);
		CHECK(st != NULL);
		procs = json_object_get(st, "processors");
		CHECK(json_is_array(procs) && json_array_size(procs) >= 1);
		json_array_foreach(procs, k, p)
		{
			if (json_integer_value(json_object_get(p, "position"))
			    != json_integer_value(json_object_get(st, "head")))
				all = false;
		}
		if (all)
			return st;
		json_decref(st);
		nanosleep(&(struct timespec) { 0, 10 * 1000 * 1000 }, NULL);
	}
	fprintf(stderr, "processors did not catch up\n");
	exit(1);
}

typedef struct worker {
	int  id;
	int  n_ok;
	int  last_rc;
	bool until_error;
} worker;

static void *
commit_worker(void *arg)
{
	worker    *w = arg;
	sl_client *c;
	char       stream[32];

	CHECK_EQ(sl_client_open(fx_url, 2000, &c), SL_OK);
	snprintf(stream, sizeof(stream), "w-%d", w->id);
	for (int i = 0; w->until_error || i < 25; i++) {
		sl_new_event evs[2] = {
			{ .type = "Tick", .content_json = "{\"n\":1}" },
			{ .type            = "Tick",
			    .content_json  = "{\"n\":2}",
			    .metadata_json = "{\"by\":\"worker\"}" },
		};
		/* each commit names the revision the last one left */
		uint64_t expected = w->until_error ? SL_EXPECT_ANY
		    : i == 0                       ? SL_EXPECT_NO_STREAM
		                                   : (uint64_t) (2 * i - 1);
		w->last_rc        = sl_client_commit(
		           c, FX_TENANT, stream, expected, evs, 2, NULL);
		if (w->last_rc != SL_OK)
			break;
		__atomic_add_fetch(&w->n_ok, 1, __ATOMIC_SEQ_CST);
	}
	sl_client_close(c);
	return NULL;
}

/* A client commits a link event ("$>", content "<revision>@<stream>", as
 * EventStoreDB's clients do): read back as a link, resolved to acc-1's
 * first event, dangling when the target is not there; a malformed link
 * is refused with nothing written, as is a string for another type. */
static void
check_link_commits(sl_client *c)
{
	sl_commit_result res;
	sl_new_event     links[2] = {
                { .type = "$>", .content_json = "\"0@acc-1\"",
		    .metadata_json = "{\"why\":\"first\"}" },
                { .type = "$>", .content_json = "\"7@nowhere\"" },
	};
	CHECK_EQ(sl_client_commit(
	             c, FX_TENANT, "links", SL_EXPECT_ANY, links, 2, &res),
	    SL_OK);
	uint64_t       head = res.first_position + 2;
	sl_read_result r;
	sl_read_opts   o = { .tenant = FX_TENANT, .stream = "links" };
	CHECK_EQ(sl_client_read_ex(c, &o, &r), SL_OK);
	CHECK_EQ(r.n_events, 2);
	CHECK_STREQ(r.events[0].type, "$>");
	CHECK_STREQ(r.events[0].content_json, "\"0@acc-1\"");
	sl_read_result_free(&r);
	o.resolve_links = true;
	CHECK_EQ(sl_client_read_ex(c, &o, &r), SL_OK);
	CHECK_EQ(r.n_events, 2);
	CHECK(r.events[0].is_link && !r.events[0].unresolved);
	CHECK_STREQ(r.events[0].stream, "acc-1");
	CHECK_EQ(r.events[0].revision, 0);
	CHECK_STREQ(r.events[0].link_stream, "links");
	CHECK(r.events[1].unresolved);
	sl_read_result_free(&r);
	static const char *const bad[]
	    = { "\"acc-1\"", "\"x@acc-1\"", "\"01@acc-1\"", "\"0@\"" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		sl_new_event e = { .type = "$>", .content_json = bad[i] };
		CHECK_EQ(sl_client_commit(
		             c, FX_TENANT, "links", SL_EXPECT_ANY, &e, 1, NULL),
		    SL_EINVAL);
		CHECK(strstr(sl_client_last_error(c), "<revision>@<stream>")
		    != NULL);
	}
	sl_new_event e = { .type = "Note", .content_json = "\"0@acc-1\"" };
	CHECK_EQ(sl_client_commit(
	             c, FX_TENANT, "links", SL_EXPECT_ANY, &e, 1, NULL),
	    SL_EINVAL);
	/* nothing of the refused ones was written */
	json_t *st = wait_caught_up(c);
	CHECK_EQ((uint64_t) json_integer_value(json_object_get(st, "head")),
	    head);
	json_decref(st);
}

/* get_all_mp: the same pages as get_all, each state the msgpack whose
 * JSON text get_all answers; paging and errors alike. */
static void
check_get_all_mp(sl_client *c)
{
	sl_read_models    js;
	sl_read_models_mp mp;
	CHECK_EQ(sl_client_get_all(c, FX_TENANT, FX_PROJECTION, NULL, 0, &js),
	    SL_OK);
	CHECK_EQ(
	    sl_client_get_all_mp(c, FX_TENANT, FX_PROJECTION, NULL, 0, &mp),
	    SL_OK);
	CHECK(mp.n_items == js.n_items && mp.n_items == 3);
	CHECK(mp.more == js.more);
	for (size_t i = 0; i < mp.n_items; i++) {
		CHECK_STREQ(mp.items[i].key, js.items[i].key);
		fx_check_state_json(mp.items[i].state, mp.items[i].state_len,
		    js.items[i].state_json);
	}
	sl_read_models_free(&js);
	sl_read_models_mp_free(&mp);
	CHECK_EQ(
	    sl_client_get_all_mp(c, FX_TENANT, FX_PROJECTION, NULL, 2, &mp),
	    SL_OK);
	CHECK(mp.n_items == 2 && mp.more);
	CHECK_STREQ(mp.items[1].key, "acc-2");
	sl_read_models_mp_free(&mp);
	CHECK_EQ(sl_client_get_all_mp(c, "nobody", FX_PROJECTION, NULL, 0, &mp),
	    SL_ENOTFOUND);
	CHECK(mp.n_items == 0 && mp.items == NULL && mp.buf == NULL);
	sl_read_models_mp_free(&mp);
}

/*
 * Load mode (run by the shutdown check): three clients commit until the
 * daemon goes away; print how many events were acknowledged. Ends with
 * _exit: the point is the daemon's shutdown, not this process's.
 */
static int
load_main(const char *url)
{
	pthread_t th[3];
	worker    w[3];
	uint64_t  acked = 0;

	snprintf(fx_url, sizeof(fx_url), "%s", url);
	for (int i = 0; i < 3; i++) {
		w[i] = (worker) { .id = 10 + i, .until_error = true };
		CHECK_EQ(
		    pthread_create(&th[i], NULL, commit_worker, &w[i]), 0);
	}
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(pthread_join(th[i], NULL), 0);
		CHECK(w[i].last_rc == SL_ETIMEDOUT || w[i].last_rc == SL_ENET
		    || w[i].last_rc == SL_ECLOSED);
		acked += 2 * (uint64_t) w[i].n_ok;
	}
	printf("%llu\n", (unsigned long long) acked);
	fflush(stdout);
	_exit(0);
}

int
main(int argc, char **argv)
{
	sl_client       *c;
	sl_commit_result res;
	sl_read_result   rr;
	sl_read_models   rms;
	char            *state;
	bool             found = true;
	uint64_t         h;
	json_t          *st, *j;
	json_error_t     je;

	if (argc == 3 && strcmp(argv[1], "--load") == 0)
		return load_main(argv[2]);
	fx_start("limits:\n  max_read_events: 3\n");

	CHECK_EQ(sl_client_open("ipc:///nonexistent/dir/api.ipc", 500, &c),
	    SL_ENET);
	CHECK(c == NULL);
	CHECK(strstr(sl_client_open_error(), "nonexistent") != NULL);
	CHECK_EQ(sl_client_open("bogus://x", 500, &c), SL_EINVAL);

	CHECK_EQ(sl_client_open(fx_url, 5000, &c), SL_OK);

	/* --- expected revision: no_stream, exact, any, and mismatches --- */
	CHECK_EQ(commit1(c, "acc-1", SL_EXPECT_NO_STREAM, "DebitAccountOpened",
	             "{\"account_id\":\"acc-1\",\"name\":\"Everyday\"}", &res),
	    SL_OK);
	CHECK_EQ(res.first_position, 0);
	CHECK_EQ(res.last_position, 0);
	CHECK_EQ(res.first_revision, 0);
	CHECK_EQ(res.count, 1);

	CHECK_EQ(commit1(c, "acc-1", SL_EXPECT_NO_STREAM, "DebitAccountOpened",
	             "{\"account_id\":\"acc-1\"}", &res),
	    SL_EREVISION);
	CHECK_EQ(res.actual_revision, 0);
	CHECK(strlen(sl_client_last_error(c)) > 0);
	CHECK_EQ(log_head(c), 1);

	CHECK_EQ(
	    commit1(c, "acc-1", 5, "DebitPerformed", "{\"amount\":1}", &res),
	    SL_EREVISION);
	CHECK_EQ(res.actual_revision, 0);
	CHECK_EQ(
	    commit1(c, "acc-2", 0, "DebitPerformed", "{\"amount\":1}", &res),
	    SL_EREVISION);
	CHECK(res.actual_revision == SL_EXPECT_NO_STREAM);
	CHECK_EQ(log_head(c), 1);

	{
		sl_new_event two[2] = {
			{ .type             = "DebitPerformed",
			    .content_json   = "{\"amount\":1200}",
			    .is_public      = true,
			    .correlation_id = "corr-1" },
			{ .type = "WithdrawalPerformed",
			    .content_json
			    = "{\"account_id\":\"acc-1\",\"amount\":250}" },
		};
		CHECK_EQ(
		    sl_client_commit(c, FX_TENANT, "acc-1", 0, two, 2, &res),
		    SL_OK);
		CHECK_EQ(res.first_position, 1);
		CHECK_EQ(res.last_position, 2);
		CHECK_EQ(res.first_revision, 1);
		CHECK_EQ(res.count, 2);
	}
	CHECK_EQ(commit1(c, "cust-1", SL_EXPECT_ANY, "CustomerRegistered",
	             "{\"customer_id\":\"cust-1\",\"name\":\"Ann\","
	             "\"account\":{\"id\":\"acc-1\"}}",
	             &res),
	    SL_OK);
	CHECK_EQ(res.first_position, 3);
	CHECK_EQ(commit1(c, "acc-1", SL_EXPECT_ANY, "DebitPerformed",
	             "{\"amount\":50}", &res),
	    SL_OK);
	CHECK_EQ(res.first_revision, 3);

	/* client-side refusals send nothing */
	CHECK_EQ(
	    commit1(c, "acc-1", SL_EXPECT_ANY, "T", "[1,2]", &res), SL_EINVAL);
	CHECK_EQ(
	    commit1(c, "acc-1", SL_EXPECT_ANY, "T", "{bad", &res), SL_EINVAL);
	CHECK(strstr(sl_client_last_error(c), "content") != NULL);
	/* server-side refusals */
	CHECK_EQ(sl_client_commit(c, "nobody", "s", SL_EXPECT_ANY,
	             &(sl_new_event) { .type = "T", .content_json = "{}" }, 1,
	             &res),
	    SL_ENOTFOUND);
	CHECK_EQ(log_head(c), 5);

	/* --- read the log, paged by max_read_events (3) --- */
	CHECK_EQ(sl_client_read(c, 0, 0, &rr), SL_OK);
	CHECK_EQ(rr.n_events, 3);
	CHECK_EQ(rr.next, 3);
	CHECK_EQ(rr.head, 5);
	CHECK_EQ(rr.events[0].position, 0);
	CHECK_STREQ(rr.events[0].tenant, FX_TENANT);
	CHECK_STREQ(rr.events[0].stream, "acc-1");
	CHECK_STREQ(rr.events[0].type, "DebitAccountOpened");
	CHECK_EQ(strlen(rr.events[0].id), 36);
	CHECK_STREQ(rr.events[0].correlation_id, rr.events[0].id);
	CHECK_STREQ(rr.events[1].correlation_id, "corr-1");
	CHECK(rr.events[1].is_public);
	CHECK(!rr.events[2].is_public);
	CHECK_EQ(rr.events[1].generation, 1);
	CHECK(rr.events[1].occurred_ns > 1700000000LL * 1000000000LL);
	CHECK_STREQ(rr.events[1].content_json, "{\"amount\":1200}");
	CHECK_STREQ(rr.events[1].metadata_json, "{}");
	j = json_loads(rr.events[2].json, 0, &je);
	CHECK(j != NULL);
	CHECK_EQ(json_integer_value(json_object_get(j, "revision")), 2);
	CHECK_STREQ(json_string_value(json_object_get(j, "type")),
	    "WithdrawalPerformed");
	json_decref(j);
	sl_read_result_free(&rr);
	CHECK_EQ(sl_client_read(c, 3, 100, &rr), SL_OK);
	CHECK_EQ(rr.n_events, 2);
	CHECK_EQ(rr.next, 5);
	CHECK_EQ(rr.head, 5);
	sl_read_result_free(&rr);
	CHECK_EQ(sl_client_read(c, 5, 100, &rr), SL_OK);
	CHECK_EQ(rr.n_events, 0);
	CHECK_EQ(rr.next, 5);
	sl_read_result_free(&rr);

	/* --- read one stream --- */
	CHECK_EQ(
	    sl_client_read_stream(c, FX_TENANT, "acc-1", 1, 0, &rr), SL_OK);
	CHECK_EQ(rr.n_events, 3);
	CHECK_EQ(rr.events[0].revision, 1);
	CHECK_EQ(rr.events[2].revision, 3);
	CHECK_EQ(rr.events[2].position, 4);
	CHECK_EQ(rr.next, 4);
	sl_read_result_free(&rr);
	CHECK_EQ(
	    sl_client_read_stream(c, FX_TENANT, "acc-1", 4, 0, &rr), SL_OK);
	CHECK_EQ(rr.n_events, 0);
	sl_read_result_free(&rr);
	CHECK_EQ(
	    sl_client_read_stream(c, FX_TENANT, "nope", 0, 0, &rr), SL_OK);
	CHECK_EQ(rr.n_events, 0);
	sl_read_result_free(&rr);
	CHECK_EQ(sl_client_read_stream(c, "nobody", "acc-1", 0, 0, &rr),
	    SL_ENOTFOUND);

	/* --- read models, after the processor caught up --- */
	st = wait_caught_up(c);
	json_decref(st);
	CHECK_EQ(sl_client_get_one(
	             c, FX_TENANT, FX_PROJECTION, "acc-1", &state, &found),
	    SL_OK);
	CHECK(found);
	j = json_loads(state, 0, &je);
	CHECK(j != NULL);
	CHECK_STREQ(json_string_value(json_object_get(j, "name")), "Everyday");
	CHECK_EQ(json_integer_value(json_object_get(j, "balance")),
	    1200 - 250 + 50);
	json_decref(j);
	sl_client_free(state);

	CHECK_EQ(sl_client_get_one(
	             c, FX_TENANT, FX_PROJECTION, "acc-404", &state, &found),
	    SL_OK);
	CHECK(!found);
	{
		/* the initial state: what the registry holds for the def */
		const proj_def *d = registry_find(
		    fx_rt->plugins, FX_PROJECTION, strlen(FX_PROJECTION));
		msgpack_zone   z;
		msgpack_object o;
		size_t         off = 0;
		char          *want;
		CHECK(d != NULL);
		msgpack_zone_init(&z, 1024);
		CHECK_EQ(
		    msgpack_unpack(d->initial, d->initial_len, &off, &z, &o),
		    MSGPACK_UNPACK_SUCCESS);
		want = mp_to_json_text(&o);
		CHECK_STREQ(state, want);
		free(want);
		msgpack_zone_destroy(&z);
		/* the projection by id works as well as by name */
		sl_client_free(state);
		CHECK_EQ(sl_client_get_one(
		             c, FX_TENANT, d->id, "acc-1", &state, &found),
		    SL_OK);
		CHECK(found);
	}
	sl_client_free(state);
	CHECK_EQ(
	    sl_client_get_one(c, FX_TENANT, "nope", "acc-1", &state, NULL),
	    SL_ENOTFOUND);
	CHECK(state == NULL);

	/* get_all: acc-1 and more accounts, paged */
	CHECK_EQ(commit1(c, "acc-2", SL_EXPECT_NO_STREAM, "DebitAccountOpened",
	             "{\"account_id\":\"acc-2\",\"name\":\"Savings\"}", &res),
	    SL_OK);
	CHECK_EQ(commit1(c, "acc-3", SL_EXPECT_NO_STREAM, "DebitAccountOpened",
	             "{\"account_id\":\"acc-3\",\"name\":\"Holiday\"}", &res),
	    SL_OK);
	st = wait_caught_up(c);
	json_decref(st);
	CHECK_EQ(sl_client_get_all(c, FX_TENANT, FX_PROJECTION, NULL, 2, &rms),
	    SL_OK);
	CHECK_EQ(rms.n_items, 2);
	CHECK(rms.more);
	CHECK_STREQ(rms.items[0].key, "acc-1");
	CHECK_STREQ(rms.items[1].key, "acc-2");
	CHECK(strstr(rms.items[1].state_json, "Savings") != NULL);
	sl_read_models_free(&rms);
	CHECK_EQ(
	    sl_client_get_all(c, FX_TENANT, FX_PROJECTION, "acc-2", 0, &rms),
	    SL_OK);
	CHECK_EQ(rms.n_items, 1);
	CHECK(!rms.more);
	CHECK_STREQ(rms.items[0].key, "acc-3");
	sl_read_models_free(&rms);
	CHECK_EQ(sl_client_get_all(c, "nobody", FX_PROJECTION, NULL, 0, &rms),
	    SL_ENOTFOUND);
	check_get_all_mp(c);

	/* --- status --- */
	st = wait_caught_up(c);
	h  = (uint64_t) json_integer_value(json_object_get(st, "head"));
	CHECK_EQ(h, 7);
	CHECK(json_integer_value(json_object_get(st, "uptime_ms")) >= 0);
	CHECK_STREQ(json_string_value(
	                json_array_get(json_object_get(st, "tenants"), 0)),
	    FX_TENANT);
	{
		json_t *pl = json_object_get(st, "plugins"), *p, *pr;
		size_t  k;
		bool    seen = false;
		json_array_foreach(pl, k, p)
		{
			if (strstr(
			        json_string_value(json_object_get(p, "file")),
			        "account_details")
			    != NULL) {
				seen = true;
				CHECK(json_is_true(
				    json_object_get(p, "loaded")));
				CHECK(
				    json_is_null(json_object_get(p, "error")));
				CHECK(json_integer_value(
				          json_object_get(p, "projections"))
				    >= 1);
			}
		}
		CHECK(seen);
		pr = json_array_get(json_object_get(st, "processors"), 0);
		CHECK_STREQ(json_string_value(json_object_get(pr, "tenant")),
		    FX_TENANT);
		CHECK_STREQ(json_string_value(json_object_get(pr, "name")),
		    FX_PROJECTION);
		CHECK(json_is_string(json_object_get(pr, "state")));
		CHECK(json_is_string(json_object_get(pr, "projection")));
		CHECK_EQ(
		    json_integer_value(json_object_get(pr, "attempts")), 0);
	}
	json_decref(st);

	/* --- the raw request: bytes in, bytes out, codes mapped --- */
	{
		void  *rep;
		size_t len;
		CHECK_EQ(sl_client_request(
		             c, "\x82\xa1v\x01\xa2op\xa4nope", 12, &rep, &len),
		    SL_EUNKNOWNOP);
		CHECK(rep != NULL && len > 0);
		CHECK(strstr(sl_client_last_error(c), "nope") != NULL);
		sl_client_free(rep);
		CHECK_EQ(sl_client_request(c, "\x82\xa1v\x01\xa2op\xa6status",
		             14, &rep, &len),
		    SL_OK);
		CHECK(len > 20);
		sl_client_free(rep);
		CHECK_STREQ(sl_client_last_error(c), "");
	}

	/* --- concurrent clients: expected revisions hold under load --- */
	{
		pthread_t th[4];
		worker    w[4];
		for (int i = 0; i < 4; i++) {
			w[i] = (worker) { .id = i };
			CHECK_EQ(
			    pthread_create(&th[i], NULL, commit_worker, &w[i]),
			    0);
		}
		for (int i = 0; i < 4; i++) {
			CHECK_EQ(pthread_join(th[i], NULL), 0);
			CHECK_EQ(w[i].last_rc, SL_OK);
			CHECK_EQ(w[i].n_ok, 25);
		}
		CHECK_EQ(log_head(c), h + 4 * 25 * 2);
	}
	check_link_commits(c);
	sl_client_close(c);

	/* --- shutdown with commits in flight: a separate process (this
	 * test in load mode) commits in a loop while the runtime stops; every
	 * call ends, the stop does not hang, and every commit the load was
	 * told is done is in the log --- */
	{
		char  store_path[4200], buf[64] = "", exe[4096] = "";
		char *argv[] = { "client_api_test", "--load", fx_url, NULL };
		int   fds[2];
		pid_t pid;
		uint64_t before = store_next_position(fx_rt->store), acked;
		int64_t  t0;
		store   *st2;
		posix_spawn_file_actions_t fa;

		snprintf(
		    store_path, sizeof(store_path), "%s", fx_cfg->store_path);
		CHECK_EQ(pipe(fds), 0);
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
		posix_spawn_file_actions_addclose(&fa, fds[0]);
		/* the path, not /proc/self/exe: under valgrind that is
		 * valgrind */
		CHECK(readlink("/proc/self/exe", exe, sizeof(exe) - 1) > 0);
		CHECK_EQ(posix_spawn(&pid, exe, &fa, NULL, argv, environ), 0);
		posix_spawn_file_actions_destroy(&fa);
		close(fds[1]);
		for (int i = 0;
		     store_next_position(fx_rt->store) < before + 30; i++) {
			CHECK(i < 10000); /* 10 s */
			nanosleep(&(struct timespec) { 0, 1000 * 1000 }, NULL);
		}
		t0 = ev_now_ns();
		fx_stop();
		/* bounded even when NNG wedges (server.c) */
		CHECK(ev_now_ns() - t0 < 5 * 1000000000LL);
		CHECK(read(fds[0], buf, sizeof(buf) - 1) > 0);
		close(fds[0]);
		CHECK_EQ(waitpid(pid, NULL, 0), pid);
		acked = strtoull(buf, NULL, 10);
		CHECK(acked >= 30);
		CHECK_EQ(store_open(store_path, 64 << 20, false, &st2), SL_OK);
		CHECK(store_next_position(st2) >= before + acked);
		store_close(st2);
	}
	return 0;
}
