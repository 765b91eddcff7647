/*
 * Hot reload with the daemon as a process: a writer process commits Account
 * Details events through the client library and a reader process asks
 * get_one without pause, while the test swaps the plugin file under the
 * running sluiced: code-only changes, changed definitions (a rebuild, and a
 * projection added then dropped then back), a garbage file, a half-written
 * file, and a build with an unresolved symbol. Afterwards every read model
 * equals a fold of the log with the final version (recomputed here), every
 * acknowledged event is in the log once at its position and no event is
 * there twice, and no get_one ever failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sluice/client.h>

#include "daemon_testutil.h"

#define TENANT      "t1"
#define N_ACCOUNTS  40
#define N_CUSTOMERS 20
#define STEP_ACKS   60    /* commits acknowledged between two swaps */
#define WAIT_MS     20000 /* any one condition */
#define AD          "account_details"
#define AE          "account_events"

static char  dir[4096];
static char  cfg_path[4200], daemon_log[4200], url[4200], plugin[4200];
static char  acks_path[4200], reader_path[4200], writer_path[4200];
static pid_t daemon_pid = -1, writer_pid = -1, reader_pid = -1;
static pid_t test_pid;

/* ---- time and processes ---- */

static void
cleanup(void)
{
	if (getpid() != test_pid)
		return;
	dt_kill_and_reap(&writer_pid);
	dt_kill_and_reap(&reader_pid);
	dt_kill_and_reap(&daemon_pid);
}

#define FAIL(...) DT_FAIL_LOG(daemon_log, __VA_ARGS__)

static volatile sig_atomic_t child_stop;

static void
on_stop(int sig)
{
	(void) sig;
	child_stop = 1;
}

/* ---- plugin files ---- */

/* Swap the plugin file as a build would: write "<plugin>.tmp", rename. */
static void
install(const char *src)
{
	dt_install(src, NULL, plugin);
}

/* ---- status ---- */

static sl_client *ctl; /* the test's own connection */

static json_t *
status(void)
{
	char *text = NULL;
	int   rc   = sl_client_status(ctl, &text);
	if (rc != SL_OK)
		FAIL("status: %s %s", sl_errname(rc),
		    sl_client_last_error(ctl));
	json_t *j = json_loads(text, 0, NULL);
	CHECK(j != NULL);
	sl_client_free(text);
	return j;
}

static json_t *
plugin_entry(json_t *st)
{
	size_t  i;
	json_t *p;
	json_array_foreach(json_object_get(st, "plugins"), i, p)
	{
		if (strcmp(
		        json_string_value(json_object_get(p, "file")), plugin)
		    == 0)
			return p;
	}
	return NULL;
}

/* Wait until the plugin file runs `version` and shows `error_part` (NULL:
 * no error). @return ms waited. */
static int64_t
wait_plugin(const char *version, const char *error_part)
{
	int64_t t0 = dt_now_ms(), end = t0 + WAIT_MS;
	for (;;) {
		json_t *st = status();
		json_t *p  = plugin_entry(st);
		bool    ok = false;
		if (p != NULL && json_is_true(json_object_get(p, "loaded"))) {
			const char *v
			    = json_string_value(json_object_get(p, "version"));
			const char *e
			    = json_string_value(json_object_get(p, "error"));
			ok = v != NULL && strcmp(v, version) == 0
			    && (error_part == NULL
			            ? e == NULL
			            : e != NULL && strstr(e, error_part));
		}
		json_decref(st);
		if (ok)
			return dt_now_ms() - t0;
		if (dt_now_ms() > end) {
			json_t *s2 = status();
			char   *d  = json_dumps(s2, JSON_INDENT(1));
			FAIL("plugin did not reach version %s with error '%s' "
			     "within %d ms; status:\n%s",
			    version, error_part ? error_part : "(none)",
			    WAIT_MS, d);
		}
		dt_sleep_ms(10);
	}
}

/* A processor's entry, or NULL. */
static json_t *
proc_entry(json_t *st, const char *name)
{
	size_t  i;
	json_t *p;
	json_array_foreach(json_object_get(st, "processors"), i, p)
	{
		const char *n = json_string_value(json_object_get(p, "name"));
		if (n != NULL && strcmp(n, name) == 0)
			return p;
	}
	return NULL;
}

static const char *
proc_state(json_t *st, const char *name)
{
	json_t *p = proc_entry(st, name);
	return p != NULL ? json_string_value(json_object_get(p, "state"))
	                 : NULL;
}

/* Wait until a processor is in `state`. */
static void
wait_proc_state(const char *name, const char *state)
{
	int64_t end = dt_now_ms() + WAIT_MS;
	for (;;) {
		json_t     *st = status();
		const char *s  = proc_state(st, name);
		bool        ok = s != NULL && strcmp(s, state) == 0;
		json_decref(st);
		if (ok)
			return;
		if (dt_now_ms() > end)
			FAIL("processor %s not %s within %d ms", name, state,
			    WAIT_MS);
		dt_sleep_ms(10);
	}
}

/* The `plugins` op through the client library, or the `sluice plugins`
 * command's output (via_cli); the entry of the plugin file. */
static json_t *
plugins_entry(bool via_cli, json_t **all)
{
	char *text = NULL;
	if (via_cli) {
		int   fds[2];
		pid_t parent = getpid();
		CHECK(pipe(fds) == 0);
		pid_t pid = fork();
		CHECK(pid >= 0);
		if (pid == 0) { /* exec at once: no NNG in the child */
			dt_child_setup(parent);
			dup2(fds[1], STDOUT_FILENO);
			execl(SL_BUILD_DIR "/sluice", "sluice", "--url", url,
			    "plugins", (char *) NULL);
			_exit(127);
		}
		close(fds[1]);
		size_t len = 0, cap = 1 << 16;
		text = malloc(cap);
		CHECK(text != NULL);
		ssize_t n;
		while ((n = read(fds[0], text + len, cap - len - 1)) > 0)
			len += (size_t) n;
		text[len] = '\0';
		close(fds[0]);
		int st;
		CHECK(dt_waitpid(pid, &st, 0) == pid);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			FAIL("sluice plugins exited with 0x%x", st);
	} else {
		int rc = sl_client_plugins(ctl, &text);
		if (rc != SL_OK)
			FAIL("plugins: %s", sl_errname(rc));
	}
	json_t *j = json_loads(text, 0, NULL);
	CHECK(j != NULL);
	if (via_cli)
		free(text);
	else
		sl_client_free(text);
	size_t  i;
	json_t *p, *found = NULL;
	json_array_foreach(json_object_get(j, "plugins"), i, p)
	{
		if (strcmp(
		        json_string_value(json_object_get(p, "file")), plugin)
		    == 0)
			found = p;
	}
	CHECK(found != NULL);
	*all = j;
	return found;
}

/* ---- the writer ---- */

/*
 * Commits one event per commit until told to stop; appends
 * "<marker> <position>" for every acknowledged commit, and at the end
 * "<acknowledged> <failed>". A commit that fails is not retried under the
 * same marker (none may fail: the daemon must keep answering).
 */
static void
writer_main(void)
{
	sl_client *c;
	uint64_t   seed   = 0x2545f4914f6cdd1dULL;
	unsigned   failed = 0, acked = 0;
	FILE      *acks = fopen(acks_path, "a");
	/* 15 s: a durable commit on a disk shared with other jobs can take
	 * seconds; the test is about the daemon answering at all. */
	if (acks == NULL || sl_client_open(url, 15000, &c) != SL_OK)
		_exit(2);
	setvbuf(acks, NULL, _IOLBF, 0);
	for (unsigned seq = 0; !child_stop; seq++) {
		char         marker[32], stream[32], acc[32], cust[32];
		char         content[512];
		sl_new_event e = { 0 };
		snprintf(marker, sizeof(marker), "m%u", seq);
		snprintf(
		    acc, sizeof(acc), "acc-%04u", dt_rnd(&seed) % N_ACCOUNTS);
		snprintf(cust, sizeof(cust), "cust-%02u",
		    dt_rnd(&seed) % N_CUSTOMERS);
		uint32_t pick   = dt_rnd(&seed) % 100,
		         amount = 1 + dt_rnd(&seed) % 999;
		snprintf(stream, sizeof(stream), "%s", acc);
		if (pick < 12) {
			e.type = "DebitAccountOpened";
			snprintf(content, sizeof(content),
			    "{\"account_id\":\"%s\",\"name\":\"Account %s\","
			    "\"m\":\"%s\"}",
			    acc, marker, marker);
		} else if (pick < 27) {
			e.type = "CustomerRegistered";
			snprintf(stream, sizeof(stream), "%s", cust);
			snprintf(content, sizeof(content),
			    "{\"customer_id\":\"%s\",\"name\":\"Customer %s\","
			    "\"account\":{\"id\":\"%s\"},\"m\":\"%s\"}",
			    cust, marker, acc, marker);
		} else if (pick < 70) {
			e.type = "DebitPerformed";
			snprintf(content, sizeof(content),
			    "{\"amount\":%u,\"m\":\"%s\"}", amount, marker);
		} else {
			e.type = "WithdrawalPerformed";
			snprintf(content, sizeof(content),
			    "{\"account_id\":\"%s\",\"amount\":%u,"
			    "\"m\":\"%s\"}",
			    acc, amount, marker);
		}
		e.content_json = content;
		sl_commit_result res;
		int              rc = sl_client_commit(
		                 c, TENANT, stream, SL_EXPECT_ANY, &e, 1, &res);
		if (rc == SL_OK) {
			fprintf(acks, "%s %llu\n", marker,
			    (unsigned long long) res.first_position);
			acked++;
		} else {
			failed++;
			dt_sleep_ms(5);
		}
	}
	fclose(acks);
	FILE *f = fopen(writer_path, "w");
	if (f == NULL)
		_exit(2);
	fprintf(f, "%u %u\n", acked, failed);
	fclose(f);
	sl_client_close(c);
	_exit(0);
}

/* ---- the reader ---- */

/*
 * Asks get_one for random accounts without pause until told to stop, and
 * a get_all page now and then; writes "<reads> <failures> <max ms>".
 */
static void
reader_main(void)
{
	sl_client *c;
	uint64_t   seed  = 0x9e3779b97f4a7c15ULL;
	long       reads = 0, failures = 0;
	int64_t    worst = 0;
	if (sl_client_open(url, 15000, &c) != SL_OK)
		_exit(2);
	while (!child_stop) {
		char    key[32];
		char   *state = NULL;
		int64_t t0    = dt_now_ms();
		int     rc;
		snprintf(
		    key, sizeof(key), "acc-%04u", dt_rnd(&seed) % N_ACCOUNTS);
		if (reads % 50 == 49) {
			sl_read_models m;
			rc = sl_client_get_all(c, TENANT, AD, NULL, 100, &m);
			if (rc == SL_OK)
				sl_read_models_free(&m);
		} else {
			rc = sl_client_get_one(
			    c, TENANT, AD, key, &state, NULL);
			if (rc == SL_OK && (state == NULL || state[0] != '{'))
				rc = SL_EPROTO;
			sl_client_free(state);
		}
		int64_t took = dt_now_ms() - t0;
		if (took > worst)
			worst = took;
		reads++;
		if (rc != SL_OK) {
			failures++;
			fprintf(stderr, "reader: %s: %s\n", sl_errname(rc),
			    sl_client_last_error(c));
		}
	}
	FILE *f = fopen(reader_path, "w");
	if (f == NULL)
		_exit(2);
	fprintf(f, "%ld %ld %lld\n", reads, failures, (long long) worst);
	fclose(f);
	sl_client_close(c);
	_exit(0);
}

/* NNG does not survive fork: the writer and the reader are this program
 * again, exec'ed with their role and the test directory. */
static pid_t
spawn(const char *role)
{
	pid_t parent = getpid();
	pid_t pid    = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		dt_child_setup(parent);
		execl("/proc/self/exe", "hot_reload_test", role, dir,
		    (char *) NULL);
		_exit(127);
	}
	return pid;
}

static void
stop_child(pid_t *pid, const char *what)
{
	int status;
	CHECK(kill(*pid, SIGUSR1) == 0);
	CHECK(dt_waitpid(*pid, &status, 0) == *pid);
	*pid = -1;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		FAIL("%s exited with status 0x%x", what, status);
}

static size_t
count_acks(void)
{
	return dt_count_lines(acks_path);
}

static void
wait_acks(size_t more)
{
	size_t  target = count_acks() + more;
	int64_t end    = dt_now_ms() + WAIT_MS;
	while (count_acks() < target) {
		if (dt_now_ms() > end)
			FAIL("the writer stalled at %zu acknowledged commits",
			    count_acks());
		int status;
		if (dt_waitpid(daemon_pid, &status, WNOHANG) == daemon_pid) {
			daemon_pid = -1;
			FAIL("sluiced exited: status 0x%x", status);
		}
		dt_sleep_ms(10);
	}
}

/* ---- the log and the recomputation ---- */

typedef struct logev {
	char   *stream;
	char   *type;
	char   *marker;
	json_t *content;
} logev;

static logev *events;
static size_t n_events;

static void
read_log(void)
{
	uint64_t from = 0;
	for (;;) {
		sl_read_result res;
		int            rc = sl_client_read(ctl, from, 0, &res);
		if (rc != SL_OK)
			FAIL("read from %llu: %s", (unsigned long long) from,
			    sl_errname(rc));
		for (size_t i = 0; i < res.n_events; i++) {
			sl_read_event *e = &res.events[i];
			if (e->position != n_events)
				FAIL("log position %llu where %zu was due",
				    (unsigned long long) e->position,
				    n_events);
			events = realloc(
			    events, (n_events + 1) * sizeof(*events));
			CHECK(events != NULL);
			logev *l   = &events[n_events++];
			l->stream  = strdup(e->stream);
			l->type    = strdup(e->type);
			l->content = json_loads(e->content_json, 0, NULL);
			CHECK(l->content != NULL);
			const char *m = json_string_value(
			    json_object_get(l->content, "m"));
			CHECK(m != NULL);
			l->marker = strdup(m);
		}
		from     = res.next;
		bool end = res.next >= res.head && res.n_events == 0;
		sl_read_result_free(&res);
		if (end)
			break;
	}
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Every acknowledged marker at its position; no marker twice. */
static size_t
check_log(void)
{
	FILE              *f = fopen(acks_path, "r");
	char               marker[64];
	unsigned long long pos;
	size_t             acked = 0;
	CHECK(f != NULL);
	while (fscanf(f, "%63s %llu", marker, &pos) == 2) {
		if (pos >= n_events)
			FAIL("acknowledged %s at %llu, the log ends at %zu",
			    marker, pos, n_events);
		if (strcmp(events[pos].marker, marker) != 0)
			FAIL("acknowledged %s at %llu, the log has %s there",
			    marker, pos, events[pos].marker);
		acked++;
	}
	fclose(f);
	char **m = malloc((n_events + 1) * sizeof(*m));
	CHECK(m != NULL);
	for (size_t i = 0; i < n_events; i++)
		m[i] = events[i].marker;
	qsort(m, n_events, sizeof(*m), cmp_str);
	for (size_t i = 1; i < n_events; i++)
		if (strcmp(m[i - 1], m[i]) == 0)
			FAIL("event %s is in the log twice", m[i]);
	free(m);
	return acked;
}

typedef struct account {
	char      key[32];
	char      account_id[64], type[16], customer[96], name[96];
	long long balance; /* account_details v3: cents */
	long long n_money; /* account_events */
	long long moved;
	bool      details, money;
} account;

static account models[N_ACCOUNTS];

static account *
model_for(const char *key)
{
	for (int i = 0; i < N_ACCOUNTS; i++)
		if (strcmp(models[i].key, key) == 0)
			return &models[i];
	FAIL("no account %s", key);
}

static void
copy(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src != NULL ? src : "");
}

/* The fold of the final version (account_details_v3.so) over the log. */
static void
recompute(void)
{
	for (int i = 0; i < N_ACCOUNTS; i++)
		snprintf(models[i].key, sizeof(models[i].key), "acc-%04d", i);
	for (size_t i = 0; i < n_events; i++) {
		logev      *e = &events[i];
		json_t     *c = e->content;
		const char *key;
		if (strcmp(e->type, "CustomerRegistered") == 0)
			key = json_string_value(json_object_get(
			    json_object_get(c, "account"), "id"));
		else if (strcmp(e->type, "WithdrawalPerformed") == 0)
			key = json_string_value(
			    json_object_get(c, "account_id"));
		else
			key = e->stream;
		account *a = model_for(key);
		if (!a->details)
			copy(a->account_id, sizeof(a->account_id), key);
		a->details = true;
		if (strcmp(e->type, "DebitAccountOpened") == 0) {
			copy(a->account_id, sizeof(a->account_id),
			    json_string_value(
			        json_object_get(c, "account_id")));
			copy(a->type, sizeof(a->type), "debit");
			copy(a->name, sizeof(a->name),
			    json_string_value(json_object_get(c, "name")));
		} else if (strcmp(e->type, "CustomerRegistered") == 0) {
			copy(a->customer, sizeof(a->customer),
			    json_string_value(json_object_get(c, "name")));
		} else {
			long long amt
			    = json_integer_value(json_object_get(c, "amount"));
			bool w = strcmp(e->type, "WithdrawalPerformed") == 0;
			a->balance += (w ? -amt : amt) * 100;
			a->n_money++;
			a->moved += amt;
			a->money = true;
		}
	}
}

static const char *
field_str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s != NULL ? s : "(missing)";
}

/* Compare both projections' read models with the recomputation; false
 * (with why) on the first difference. */
static bool
read_models_match(char *why, size_t len)
{
	for (int pass = 0; pass < 2; pass++) {
		const char    *proj = pass == 0 ? AD : AE;
		sl_read_models m;
		int rc = sl_client_get_all(ctl, TENANT, proj, NULL, 1000, &m);
		if (rc != SL_OK) {
			snprintf(
			    why, len, "get_all %s: %s", proj, sl_errname(rc));
			return false;
		}
		size_t expected = 0;
		for (int i = 0; i < N_ACCOUNTS; i++)
			expected
			    += pass == 0 ? models[i].details : models[i].money;
		bool ok = m.n_items == expected && !m.more;
		if (!ok)
			snprintf(why, len, "%s: %zu read models, expected %zu",
			    proj, m.n_items, expected);
		for (size_t i = 0; ok && i < m.n_items; i++) {
			account *a = model_for(m.items[i].key);
			json_t  *st
			    = json_loads(m.items[i].state_json, 0, NULL);
			CHECK(st != NULL);
			if (pass == 0) {
				json_t *bal = json_object_get(st, "balance");
				ok          = json_object_size(st) == 5
				    && strcmp(field_str(st, "account_id"),
				           a->account_id)
				        == 0
				    && strcmp(field_str(st, "type"), a->type)
				        == 0
				    && strcmp(field_str(st, "customer"),
				           a->customer)
				        == 0
				    && strcmp(field_str(st, "name"), a->name)
				        == 0
				    && json_integer_value(bal) == a->balance;
				if (!ok)
					snprintf(why, len,
					    "%s %s: %s; recomputed balance "
					    "%lld",
					    proj, a->key,
					    m.items[i].state_json, a->balance);
			} else {
				ok = json_integer_value(
				         json_object_get(st, "events"))
				        == a->n_money
				    && json_integer_value(
				           json_object_get(st, "moved"))
				        == a->moved;
				if (!ok)
					snprintf(why, len,
					    "%s %s: %s; recomputed %lld "
					    "events, "
					    "%lld moved",
					    proj, a->key,
					    m.items[i].state_json, a->n_money,
					    a->moved);
			}
			json_decref(st);
		}
		sl_read_models_free(&m);
		if (!ok)
			return false;
	}
	return true;
}

/* ---- the test ---- */

static void
set_paths(const char *d)
{
	snprintf(dir, sizeof(dir), "%s", d);
	snprintf(cfg_path, sizeof(cfg_path), "%s/resources.yaml", dir);
	snprintf(daemon_log, sizeof(daemon_log), "%s/sluiced.log", dir);
	snprintf(url, sizeof(url), "ipc://%s/api.ipc", dir);
	snprintf(acks_path, sizeof(acks_path), "%s/acks", dir);
	snprintf(reader_path, sizeof(reader_path), "%s/reader", dir);
	snprintf(writer_path, sizeof(writer_path), "%s/writer", dir);
	snprintf(plugin, sizeof(plugin), "%s/plugins/account_details.so", dir);
}

static void
write_config(void)
{
	char text[20000];
	set_paths(tu_tmpdir());
	snprintf(text, sizeof(text),
	    "data_dir: %s/data\n"
	    "plugin_dir: %s/plugins\n"
	    "log_level: info\n"
	    "endpoints:\n"
	    "  api: %s\n"
	    "  pub: ipc://%s/pub.ipc\n"
	    "event_store:\n"
	    "  map_size: 64MiB\n"
	    "tenants:\n"
	    "  - id: " TENANT "\n"
	    "    read_models:\n"
	    "      map_size: 32MiB\n"
	    "limits:\n"
	    "  max_read_events: 500\n"
	    "processing:\n"
	    "  batch: 100\n",
	    dir, dir, url, dir);
	tu_write_file(cfg_path, text);
}

static void
daemon_start(void)
{
	daemon_pid  = dt_daemon_spawn(cfg_path, daemon_log);
	int64_t end = dt_now_ms() + WAIT_MS;
	while (sl_client_open(url, 2000, &ctl) != SL_OK) {
		if (dt_now_ms() > end)
			FAIL("sluiced did not open %s", url);
		dt_sleep_ms(20);
	}
	for (;;) { /* connected; wait for the first answer */
		char *t = NULL;
		if (sl_client_status(ctl, &t) == SL_OK) {
			sl_client_free(t);
			break;
		}
		if (dt_now_ms() > end)
			FAIL("sluiced does not answer status");
		dt_sleep_ms(20);
	}
}

int
main(int argc, char **argv)
{
	struct sigaction sa;
	int              wstatus;
	int64_t          t0 = dt_now_ms();
	char             why[1024];

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
	if (argc == 3) { /* a child role (see spawn) */
		set_paths(argv[2]);
		if (strcmp(argv[1], "writer") == 0)
			writer_main();
		if (strcmp(argv[1], "reader") == 0)
			reader_main();
		return 2;
	}
	test_pid = getpid();
	write_config();
	atexit(cleanup);

	char pdir[4200];
	snprintf(pdir, sizeof(pdir), "%s/plugins", dir);
	CHECK(mkdir(pdir, 0755) == 0);
	install(SL_PLUGIN_DIR "/account_details.so");
	daemon_start();
	wait_plugin("1.0.0", NULL);
	writer_pid = spawn("writer");
	reader_pid = spawn("reader");
	wait_acks(STEP_ACKS);

	/* 1. Same definition, other code (balance in cents): continues. */
	install(SL_TEST_PLUGIN_DIR "/account_details_v2.so");
	fprintf(stderr, "v2 (same definition) running after %lld ms\n",
	    (long long) wait_plugin("2.0.0", NULL));
	wait_acks(STEP_ACKS);

	/* 2. Changed definition + a new projection: rebuild, start. */
	install(SL_TEST_PLUGIN_DIR "/account_details_v3.so");
	fprintf(stderr, "v3 (changed definition) running after %lld ms\n",
	    (long long) wait_plugin("3.0.0", NULL));
	wait_proc_state(AE, "live");
	wait_acks(STEP_ACKS);

	/* 3. Garbage where the plugin was: refused, v3 keeps running. */
	{
		const char junk[] = "this is not a shared object\n";
		dt_put_file(plugin, NULL, junk, sizeof(junk) - 1);
		wait_plugin("3.0.0", "not an ELF file");
		/* `plugins` (op and command) shows the running build, its
		 * projections and the refused one's reason */
		for (int cli = 0; cli < 2; cli++) {
			json_t *all, *p = plugins_entry(cli, &all);
			CHECK(json_is_true(json_object_get(p, "loaded")));
			CHECK(strcmp(json_string_value(
			                 json_object_get(p, "version")),
			          "3.0.0")
			    == 0);
			CHECK(json_integer_value(json_object_get(p, "loads"))
			    == 3);
			CHECK(json_integer_value(
			          json_object_get(p, "loaded_at_ns"))
			    > 0);
			CHECK(strstr(json_string_value(
			                 json_object_get(p, "error")),
			          "not an ELF file")
			    != NULL);
			CHECK(json_integer_value(
			          json_object_get(p, "error_at_ns"))
			    > 0);
			json_t *pr = json_object_get(p, "projections");
			CHECK(json_array_size(pr) == 2);
			CHECK(json_integer_value(json_object_get(
			          json_array_get(pr, 0), "version"))
			    == 3);
			json_decref(all);
		}
		wait_acks(STEP_ACKS);
	}

	/* 4. v1 written in place in pieces, closed after each, with pauses
	 * longer than the watcher's quiet time: every prefix is refused as
	 * incomplete; the whole file loads. v1 drops account_events. */
	{
		size_t len;
		char *so = dt_slurp(SL_PLUGIN_DIR "/account_details.so", &len);
		int   fd = open(plugin, O_WRONLY | O_TRUNC);
		CHECK(fd >= 0);
		CHECK(close(fd) == 0);
		size_t cuts[] = { len / 3, 2 * len / 3, len - 1, len };
		size_t done   = 0;
		for (size_t i = 0; i < 4; i++) {
			fd = open(plugin, O_WRONLY | O_APPEND);
			CHECK(fd >= 0);
			CHECK(write(fd, so + done, cuts[i] - done)
			    == (ssize_t) (cuts[i] - done));
			CHECK(close(fd) == 0);
			done = cuts[i];
			if (i < 3) {
				wait_plugin("3.0.0", "incomplete");
				dt_sleep_ms(250);
			}
		}
		free(so);
		fprintf(stderr,
		    "v1 (completed in place) running after %lld "
		    "ms\n",
		    (long long) wait_plugin("1.0.0", NULL));
		wait_proc_state(AE, "stopped");
		wait_acks(STEP_ACKS);
	}

	/* account_events is dropped, and its read models still served */
	{
		sl_read_models m;
		int rc = sl_client_get_all(ctl, TENANT, AE, NULL, 1000, &m);
		if (rc != SL_OK || m.n_items == 0)
			FAIL("get_all %s after the drop: %s, %zu items", AE,
			    sl_errname(rc), rc == SL_OK ? m.n_items : 0);
		sl_read_models_free(&m);
	}

	/* 5. A build with an unresolved symbol: refused by dlopen. */
	install(SL_TEST_PLUGIN_DIR "/unresolved.so");
	wait_plugin("1.0.0", "dlopen failed");
	wait_acks(STEP_ACKS);

	/* 6. v2 again (same definition as v1), then 7. v3, the final one:
	 * account_details rebuilt once more, account_events back from its
	 * checkpoint. */
	install(SL_TEST_PLUGIN_DIR "/account_details_v2.so");
	wait_plugin("2.0.0", NULL);
	wait_acks(STEP_ACKS);
	install(SL_TEST_PLUGIN_DIR "/account_details_v3.so");
	int64_t t_final = wait_plugin("3.0.0", NULL);
	wait_acks(STEP_ACKS);

	stop_child(&writer_pid, "the writer");
	unsigned w_acked = 0, w_failed = 1;
	FILE    *wf = fopen(writer_path, "r");
	CHECK(wf != NULL);
	CHECK(fscanf(wf, "%u %u", &w_acked, &w_failed) == 2);
	fclose(wf);
	if (w_failed != 0)
		FAIL("%u commits failed during the reloads", w_failed);
	read_log();
	size_t acked = check_log();
	recompute();
	/* the last rebuild may still be catching up: poll until equal */
	int64_t end = dt_now_ms() + WAIT_MS;
	while (!read_models_match(why, sizeof(why))) {
		if (dt_now_ms() > end)
			FAIL("read models differ from the recomputation: %s",
			    why);
		dt_sleep_ms(20);
	}
	{
		json_t *st = status();
		CHECK_EQ(json_integer_value(json_object_get(st, "head")),
		    (long long) n_events);
		CHECK(strcmp(proc_state(st, AD), "live") == 0);
		CHECK(strcmp(proc_state(st, AE), "live") == 0);
		json_decref(st);
	}

	stop_child(&reader_pid, "the reader");
	long      reads = 0, failures = -1;
	long long worst = 0;
	FILE     *f     = fopen(reader_path, "r");
	CHECK(f != NULL);
	CHECK(fscanf(f, "%ld %ld %lld", &reads, &failures, &worst) == 3);
	fclose(f);
	if (failures != 0)
		FAIL("%ld of %ld queries failed during the reloads", failures,
		    reads);
	CHECK(reads > 0);

	sl_client_close(ctl);
	CHECK(kill(daemon_pid, SIGTERM) == 0);
	CHECK(dt_waitpid(daemon_pid, &wstatus, 0) == daemon_pid);
	daemon_pid = -1;
	if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0)
		FAIL("sluiced exited with status 0x%x after SIGTERM", wstatus);

	fprintf(stderr,
	    "ok: %zu events (%zu acknowledged, 0 commits failed), 7 swaps, "
	    "%ld queries answered during them (0 failed, slowest %lld ms), "
	    "final version running %lld ms after its file was in place, "
	    "%lld ms in all\n",
	    n_events, acked, reads, worst, (long long) t_final,
	    (long long) (dt_now_ms() - t0));
	for (size_t i = 0; i < n_events; i++) {
		free(events[i].stream);
		free(events[i].type);
		free(events[i].marker);
		json_decref(events[i].content);
	}
	free(events);
	return 0;
}
