/*
 * The existing scenarios against the PostgreSQL log, on three sluiced
 * nodes sharing one database (the test's own cluster): writers commit
 * Account Details events through two nodes while the third is SIGKILLed
 * twice in the middle of its processing and started again. It proves:
 *   - the filters of the example plugins (account_filters: "customer
 *     events", partitioned, and "public account openings", public) and an
 *     unpartitioned one (t_events) write identical filter streams on
 *     every node, whole and per partition, each event included once;
 *   - the node killed during processing folds its read models exactly
 *     once: the Account Details read models of all three nodes are equal
 *     and add up to what the acknowledged commits add up to.
 */
#include <signal.h>

#define TENANT     "t1"
#define PROJECTION "account_details"

#include "pg_nodes_testutil.h"

#define N_NODES    3
#define N_ACCOUNTS 12 /* per writer */
#define N_DEBITS   12 /* per account, each with a Tick in its batch */
#define CUSTOMERS  3

#define CUSTOMER_EVENTS "a468a0ac-3f00-4a28-ac0e-e4a0e8400cb3"
#define PUBLIC_OPENINGS "76b549ab-de36-4185-8ed1-2a92ed32b7b0"
#define T_EVENTS        "67e19a59-fde4-445e-9080-d11446024b91"

static node        nodes[N_NODES];
static const char *conninfo;

static void
cleanup(void)
{
	nodes_kill(nodes, N_NODES);
}

typedef struct writer {
	node           *n;
	int             id;
	int64_t         amount;
	size_t          n_public, n_account_events, n_ticks;
	int             done; /* accounts finished, under mu */
	char            err[256];
	pthread_mutex_t mu;
} writer;

static void *
writer_main(void *arg)
{
	writer          *w = arg;
	sl_client       *cl;
	sl_commit_result res;
	char             stream[32], open[160], debit[96];

	if (sl_client_open(w->n->url, 20000, &cl) != SL_OK) {
		snprintf(w->err, sizeof(w->err), "open");
		return NULL;
	}
	for (int k = 0; k < N_ACCOUNTS; k++) {
		int cust = k % CUSTOMERS;
		snprintf(stream, sizeof(stream), "acc-%d-%d", w->id, k);
		snprintf(open, sizeof(open),
		    "{\"account_id\":\"%s\",\"name\":\"n%d\","
		    "\"customer_id\":\"cust-%d\"}",
		    stream, k, cust);
		sl_new_event ev[2] = { { .type = "DebitAccountOpened",
		    .content_json              = open,
		    .is_public                 = k % 2 == 0 } };
		int          rc    = sl_client_commit(
		                cl, TENANT, stream, SL_EXPECT_NO_STREAM, ev, 1, &res);
		for (int d = 0; rc == SL_OK && d < N_DEBITS; d++) {
			int amount = w->id * 1000 + k * 10 + d + 1;
			snprintf(debit, sizeof(debit),
			    "{\"amount\":%d,\"customer_id\":\"cust-%d\"}",
			    amount, cust);
			ev[0] = (sl_new_event) { .type = "DebitPerformed",
				.content_json          = debit };
			ev[1] = (sl_new_event) { .type = "Tick",
				.content_json          = "{}" };
			rc    = sl_client_commit(
			       cl, TENANT, stream, (uint64_t) d * 2, ev, 2, &res);
			if (rc == SL_OK)
				w->amount += amount;
		}
		if (rc != SL_OK) {
			snprintf(w->err, sizeof(w->err), "%s: %s: %s", stream,
			    sl_errname(rc), sl_client_last_error(cl));
			break;
		}
		w->n_public += k % 2 == 0;
		w->n_account_events += 1 + N_DEBITS;
		w->n_ticks += N_DEBITS;
		pthread_mutex_lock(&w->mu);
		w->done++;
		pthread_mutex_unlock(&w->mu);
	}
	sl_client_close(cl);
	return NULL;
}

static int
writer_done(writer *w)
{
	pthread_mutex_lock(&w->mu);
	int d = w->done;
	pthread_mutex_unlock(&w->mu);
	return d;
}

/* A filter's whole stream (or one partition's) on node n as text: one
 * line per entry, "stream position, log position, partition"; its
 * entries' count in *count. */
static char *
filter_stream(
    node *n, const char *filter, const char *partition, size_t *count)
{
	size_t cap = 1 << 16, len = 0;
	char  *text = malloc(cap);
	CHECK(text != NULL);
	text[0] = '\0';
	*count  = 0;
	for (uint64_t from = 0;;) {
		sl_filter_page p;
		int            rc = sl_client_read_filter(
		               n->cl, TENANT, filter, partition, from, 500, &p);
		if (rc != SL_OK)
			FAIL(n, "read_filter %s: %s", filter, sl_errname(rc));
		for (size_t i = 0; i < p.n_events; i++) {
			if (len + 128 > cap) {
				cap *= 2;
				CHECK((text = realloc(text, cap)) != NULL);
			}
			len += (size_t) snprintf(text + len, cap - len,
			    "%" PRIu64 " %" PRIu64 " %s\n",
			    p.events[i].stream_position,
			    p.events[i].event.position,
			    p.events[i].partition != NULL
			        ? p.events[i].partition
			        : "-");
		}
		*count += p.n_events;
		from      = p.next;
		bool more = p.more;
		sl_filter_page_free(&p);
		if (!more)
			break;
	}
	return text;
}

/* The filter's stream (whole, or a partition) equal on every node, with
 * want entries (its processors caught up within PGN_WAIT_MS). */
static void
check_filter(const char *filter, const char *partition, size_t want)
{
	int64_t end = dt_now_ms() + PGN_WAIT_MS;
	for (;;) {
		size_t c0, ci = want;
		char  *s0 = filter_stream(&nodes[0], filter, partition, &c0);
		bool   ok = c0 == want;
		int    i;
		for (i = 1; ok && i < N_NODES; i++) {
			char *si
			    = filter_stream(&nodes[i], filter, partition, &ci);
			ok = ci == want && strcmp(s0, si) == 0;
			if (!ok && dt_now_ms() > end)
				FAIL(&nodes[i],
				    "filter %s%s%s: %zu entries, want %zu, or "
				    "they differ from node a's (%zu):\n%s\n"
				    "----\n%s",
				    filter, partition ? " partition " : "",
				    partition ? partition : "", ci, want, c0,
				    si, s0);
			free(si);
		}
		free(s0);
		if (ok)
			return;
		if (dt_now_ms() > end)
			FAIL(&nodes[0], "filter %s: %zu entries, want %zu",
			    filter, c0, want);
		dt_sleep_ms(50);
	}
}

int
main(void)
{
	char              out[4096], plugins[2200], so[2400];
	const char *const libs[][2] = {
		{ SL_PLUGIN_DIR, "account_details.so" },
		{ SL_PLUGIN_DIR, "account_filters.so" },
		{ SL_TEST_PLUGIN_DIR, "filter_unpartitioned.so" },
	};

	snprintf(pgn_dir, sizeof(pgn_dir), "%.2000s", tu_tmpdir());
	conninfo = pgt_start(pgn_dir);
	atexit(cleanup); /* runs first: daemons before the cluster */
	snprintf(plugins, sizeof(plugins), "%s/plugins", pgn_dir);
	CHECK(mkdir(plugins, 0700) == 0);
	for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++) {
		char src[2400];
		snprintf(src, sizeof(src), "%s/%s", libs[i][0], libs[i][1]);
		snprintf(so, sizeof(so), "%s/%s", plugins, libs[i][1]);
		CHECK(symlink(src, so) == 0);
	}
	for (int i = 0; i < N_NODES; i++) {
		char name[8];
		snprintf(name, sizeof(name), "%c", 'a' + i);
		node_config_ex(
		    &nodes[i], name, conninfo, plugins, "64MiB", "");
	}
	CHECK_EQ(pgt_sh(out, sizeof(out), "%s/sluiced --init-db -c %s",
	             SL_BUILD_DIR, nodes[0].cfg),
	    0);
	for (int i = 0; i < N_NODES; i++)
		node_start(&nodes[i]);

	/* writers on a and b; c is killed twice while it processes */
	writer    w[2];
	pthread_t th[2];
	memset(w, 0, sizeof(w));
	for (int i = 0; i < 2; i++) {
		w[i].n  = &nodes[i];
		w[i].id = i;
		pthread_mutex_init(&w[i].mu, NULL);
		CHECK(pthread_create(&th[i], NULL, writer_main, &w[i]) == 0);
	}
	node *c = &nodes[2];
	for (int round = 1; round <= 2; round++) {
		int64_t end = dt_now_ms() + PGN_WAIT_MS;
		while (writer_done(&w[0]) < round * N_ACCOUNTS / 3) {
			if (w[0].err[0] != '\0' || dt_now_ms() > end)
				FAIL(&nodes[0], "writer: %s", w[0].err);
			dt_sleep_ms(10);
		}
		sl_client_close(c->cl);
		c->cl = NULL;
		CHECK(kill(c->pid, SIGKILL) == 0);
		dt_kill_and_reap(&c->pid);
		node_start(c);
	}
	int64_t amount   = 0;
	size_t  n_public = 0, n_account = 0, n_ticks = 0;
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		if (w[i].err[0] != '\0')
			FAIL(w[i].n, "writer %d: %s", i, w[i].err);
		amount += w[i].amount;
		n_public += w[i].n_public;
		n_account += w[i].n_account_events;
		n_ticks += w[i].n_ticks;
		pthread_mutex_destroy(&w[i].mu);
	}

	uint64_t head = pgn_db_head(conninfo);
	CHECK_EQ(head, n_account + n_ticks);
	for (int i = 0; i < N_NODES; i++)
		wait_head(&nodes[i], head);
	compare_logs_n(nodes, N_NODES, head, true);
	wait_read_models_n(nodes, N_NODES, amount);
	check_filter(CUSTOMER_EVENTS, NULL, n_account);
	for (int k = 0; k < CUSTOMERS; k++) {
		char cust[16];
		snprintf(cust, sizeof(cust), "cust-%d", k);
		/* accounts k, k + 3, ... of both writers */
		size_t accounts = 2
		    * (size_t) ((N_ACCOUNTS - k + CUSTOMERS - 1) / CUSTOMERS);
		check_filter(CUSTOMER_EVENTS, cust, accounts * (1 + N_DEBITS));
	}
	check_filter(PUBLIC_OPENINGS, NULL, n_public);
	check_filter(PUBLIC_OPENINGS, "acc-1-2", 1);
	check_filter(T_EVENTS, NULL, n_ticks);
	printf("pg_scenarios_test: %" PRIu64 " events, %zu in the customer "
	       "events filter, %zu public openings, %zu ticks; node c "
	       "killed twice\n",
	    head, n_account, n_public, n_ticks);
	for (int i = 0; i < N_NODES; i++)
		node_stop(&nodes[i]);
	printf("pg_scenarios_test: ok\n");
	return 0;
}
