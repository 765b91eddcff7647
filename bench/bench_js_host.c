/*
 * JavaScript projections against the same projections in C (issue 16),
 * in process over the real processor: a log of N Account Details events
 * (1,000 account streams) is written here, then each projection folds it
 * from position 0 into a fresh read-model store; the time to the head.
 * The JS ones are bench/js's scripts, served by js_host.so; the C ones are
 * bench_js_plugin.so. Output: "key value" lines, medians of --runs.
 *
 *   bench_js_host --tmp DIR [--events N] [--runs R]
 */
#include <getopt.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <msgpack.h>

#include "common.h"
#include "plugins.h"
#include "projection.h"
#include "readmodels.h"
#include "store.h"

#define TENANT   "bench"
#define ACCOUNTS 1000
#define BATCH    1000

static const char *const names[]
    = { "c_count", "js_count", "c_accounts", "js_accounts" };

static void
pack_content(msgpack_zone *z, msgpack_object *o, int type, int acct, int amt)
{
	msgpack_sbuffer sb;
	msgpack_packer  pk;
	char            name[32];
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	if (type == 0) {
		snprintf(name, sizeof(name), "Account %d", acct);
		msgpack_pack_str_with_body(&pk, "name", 4);
		msgpack_pack_str_with_body(&pk, name, strlen(name));
	} else {
		msgpack_pack_str_with_body(&pk, "amount", 6);
		msgpack_pack_int(&pk, amt);
	}
	char *copy = msgpack_zone_malloc(z, sb.size);
	memcpy(copy, sb.data, sb.size);
	size_t off = 0;
	if (msgpack_unpack(copy, sb.size, &off, z, o)
	    != MSGPACK_UNPACK_SUCCESS)
		bench_die("cannot unpack a content");
	msgpack_sbuffer_destroy(&sb);
}

static atomic_size_t committed;

static void
commit_done(store_commit *c, void *arg)
{
	(void) arg;
	if (c->rc != SL_OK)
		bench_die("commit refused: %d %s", c->rc, c->message);
	atomic_fetch_add(&committed, 1);
}

/* Write n events: each account opened first, then deposits and
 * withdrawals, in batches of single-event commits. */
static void
write_log(store *s, size_t n)
{
	static const char *const types[]
	    = { "AccountOpened", "Deposited", "Withdrawn" };
	static ev_new       ev[BATCH];
	static store_commit c[BATCH];
	static char         streams[BATCH][32];
	bool                opened[ACCOUNTS] = { false };
	uint32_t            r                = 12345;
	for (size_t done = 0; done < n;) {
		size_t       k = n - done < BATCH ? n - done : BATCH;
		msgpack_zone z;
		msgpack_zone_init(&z, 1 << 16);
		atomic_store(&committed, 0);
		for (size_t i = 0; i < k; i++) {
			r        = r * 1103515245u + 12345u;
			int acct = (int) ((r >> 8) % ACCOUNTS);
			int type = !opened[acct] ? 0 : (r >> 20) % 3 ? 1 : 2;
			opened[acct] = true;
			msgpack_object *o
			    = msgpack_zone_malloc(&z, sizeof(*o));
			pack_content(
			    &z, o, type, acct, (int) ((r >> 4) % 500) + 1);
			memset(&ev[i], 0, sizeof(ev[i]));
			ev[i].type       = types[type];
			ev[i].type_len   = strlen(types[type]);
			ev[i].generation = 1;
			ev_uuid_generate(ev[i].id);
			ev[i].occurred_ns     = ev_now_ns();
			ev[i].correlation_id  = "bench";
			ev[i].correlation_len = 5;
			ev[i].causation_id    = "";
			ev[i].content         = o;
			snprintf(streams[i], sizeof(streams[i]), "account-%d",
			    acct);
			memset(&c[i], 0, sizeof(c[i]));
			c[i].tenant     = TENANT;
			c[i].tenant_len = strlen(TENANT);
			c[i].stream     = streams[i];
			c[i].stream_len = strlen(streams[i]);
			c[i].expected   = STORE_EXPECT_ANY;
			c[i].events     = &ev[i];
			c[i].n_events   = 1;
			c[i].done       = commit_done;
			if (store_submit(s, &c[i]) != SL_OK)
				bench_die("cannot submit");
		}
		while (atomic_load(&committed) < k)
			bench_sleep_ns(200000);
		/* every commit of the batch is done: the zone can go */
		msgpack_zone_destroy(&z);
		done += k;
	}
}

static const proj_def *
find(registry *r, const char *name)
{
	const proj_def *d = registry_find(r, name, strlen(name));
	if (d == NULL)
		bench_die("no projection %s loaded", name);
	return d;
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *) a, y = *(const double *) b;
	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	const char                *tmp  = NULL;
	size_t                     n    = 200000;
	int                        runs = 3, c;
	static const struct option opts[]
	    = { { "tmp", 1, NULL, 't' }, { "events", 1, NULL, 'n' },
		      { "runs", 1, NULL, 'r' }, { NULL, 0, NULL, 0 } };
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 't')
			tmp = optarg;
		else if (c == 'n')
			n = strtoull(optarg, NULL, 10);
		else if (c == 'r')
			runs = atoi(optarg);
		else
			bench_die(
			    "usage: bench_js_host --tmp DIR [--events N] "
			    "[--runs R]");
	}
	if (tmp == NULL || n == 0 || runs < 1 || runs > 15)
		bench_die("usage: bench_js_host --tmp DIR [--events N] "
		          "[--runs R]");
	store    *s;
	registry *r;
	char      path[4200], err[512];
	snprintf(path, sizeof(path), "%s/log", tmp);
	mkdir(path, 0700);
	if (store_open(path, (size_t) 4 << 30, false, &s) != SL_OK)
		bench_die("cannot open the log %s", path);
	if (store_next_position(s) == 0)
		write_log(s, n);
	setenv("SLUICE_JS_DIR", SL_SOURCE_DIR "/bench/js", 1);
	snprintf(path, sizeof(path), "%s/plugin-cache", tmp);
	if (registry_create(path, &r) != SL_OK
	    || registry_load_file(r,
	           SL_BUILD_DIR "/bench/plugins/bench_js_plugin.so", err,
	           sizeof(err))
	        != SL_OK
	    || registry_load_file(
	           r, SL_BUILD_DIR "/examples/js_host.so", err, sizeof(err))
	        != SL_OK)
		bench_die("cannot load the plugins: %s", err);
	uint64_t head = store_next_position(s);
	bench_out("events", (double) head);
	double eps[4];
	for (size_t i = 0; i < 4; i++) {
		double secs[15];
		for (int k = 0; k < runs; k++) {
			rmstore    *rm;
			processor  *p;
			proc_status st;
			snprintf(path, sizeof(path), "%s/rm-%s-%d", tmp,
			    names[i], k);
			mkdir(path, 0700);
			if (rm_open(path, (size_t) 4 << 30, false, &rm)
			    != SL_OK)
				bench_die("cannot open %s", path);
			uint64_t t0 = bench_now_ns();
			if (proc_start(
			        s, rm, TENANT, find(r, names[i]), 1000, &p)
			    != SL_OK)
				bench_die("cannot start %s", names[i]);
			for (;;) {
				proc_get_status(p, &st);
				if (st.position >= head)
					break;
				if (st.n_failing > 0
				    || st.state == PROC_FAILING)
					bench_die("%s fails: %s", names[i],
					    st.reason);
				bench_sleep_ns(1000000);
			}
			secs[k] = (double) (bench_now_ns() - t0) / 1e9;
			proc_stop(p);
			rm_close(rm);
		}
		qsort(secs, (size_t) runs, sizeof(double), cmp_d);
		eps[i] = (double) head / secs[runs / 2];
		bench_outf(secs[runs / 2], "%s.seconds", names[i]);
		bench_outf(eps[i], "%s.events_per_s", names[i]);
	}
	bench_out("count.js_per_c", eps[1] / eps[0]);
	bench_out("accounts.js_per_c", eps[3] / eps[2]);
	registry_destroy(r);
	store_close(s);
	return 0;
}
