/*
 * The daemon as a process, killed mid-flow: writer processes commit Account
 * Details events through the `sluice` CLI while sluiced is SIGKILLed and
 * restarted; then every acknowledged event must be in the log exactly once
 * at its acknowledged position, and every read model must equal a fold of
 * the log recomputed here, independently of the plugin.
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

#include "daemon_testutil.h"

#define N_WRITERS      4
#define N_ACCOUNTS     40
#define N_CUSTOMERS    20
#define N_KILLS        4
#define ACKS_PER_ROUND 120 /* acknowledged commits before each kill / stop */
#define ROUND_MAX_MS   12000
#define READY_MAX_MS   15000
#define CATCHUP_MAX_MS 15000
#define STOP_MAX_MS    10000
#define PROJECTION     "account_details"
#define TENANT         "t1"

static char   cfg_path[4200];
static char   daemon_log[4200];
static char   url[4200];
static char   sluiced_bin[4200];
static char   sluice_bin[4200];
static pid_t  daemon_pid = -1;
static pid_t  writer_pids[N_WRITERS];
static pid_t  test_pid;
static size_t daemon_starts;

/* ---- time and processes ---- */

/* atexit: runs before tu_tmpdir's removal (registered after it). Only the
 * test process itself cleans up; forked children leave with _exit. */
static void
cleanup(void)
{
	if (getpid() != test_pid)
		return;
	for (int i = 0; i < N_WRITERS; i++)
		dt_kill_and_reap(&writer_pids[i]);
	dt_kill_and_reap(&daemon_pid);
}

/* Fail the test (from the test process only), showing the daemon's log. */
#define FAIL(...) DT_FAIL_LOG(daemon_log, __VA_ARGS__)

/*
 * Run argv (a program path and its arguments), capturing stdout into a
 * malloc'ed string (*out, caller frees; may be NULL when not wanted).
 * stderr goes to errfd, or stays the caller's when errfd < 0.
 * @return the wait status, or -1 if the process could not be started.
 */
static int
run(char *const argv[], int errfd, char **out)
{
	pid_t  parent = getpid();
	int    fds[2];
	pid_t  pid;
	char  *buf = NULL;
	size_t len = 0, cap = 0;
	int    status;

	if (pipe2(fds, O_CLOEXEC) != 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		dt_child_setup(parent);
		dup2(fds[1], STDOUT_FILENO);
		if (errfd >= 0)
			dup2(errfd, STDERR_FILENO);
		execv(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	for (;;) {
		if (cap - len < 4096) {
			cap = cap == 0 ? 65536 : cap * 2;
			buf = realloc(buf, cap);
			if (buf == NULL)
				abort();
		}
		ssize_t n = read(fds[0], buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t) n;
	}
	close(fds[0]);
	buf[len] = '\0';
	if (dt_waitpid(pid, &status, 0) != pid)
		status = -1;
	if (out != NULL)
		*out = buf;
	else
		free(buf);
	return status;
}

static bool
exited_ok(int status)
{
	return status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* ---- the daemon ---- */

static void
daemon_start(void)
{
	daemon_pid = dt_daemon_spawn(cfg_path, daemon_log);
	daemon_starts++;
}

/* Fail if the daemon is gone although nobody stopped it. */
static void
daemon_check_alive(void)
{
	int status;
	if (dt_waitpid(daemon_pid, &status, WNOHANG) == daemon_pid) {
		daemon_pid = -1;
		FAIL("sluiced (start %zu) exited on its own: status 0x%x",
		    daemon_starts, status);
	}
}

/* Poll `sluice status` until it answers, within READY_MAX_MS. */
static void
daemon_wait_ready(void)
{
	int64_t end    = dt_now_ms() + READY_MAX_MS;
	int     nul    = open("/dev/null", O_WRONLY | O_CLOEXEC);
	char   *argv[] = { sluice_bin, "--url", url, "--timeout", "1000",
		  "status", NULL };
	CHECK(nul >= 0);
	for (;;) {
		daemon_check_alive();
		if (exited_ok(run(argv, nul, NULL)))
			break;
		if (dt_now_ms() > end)
			FAIL("sluiced did not answer `sluice status` within "
			     "%d ms",
			    READY_MAX_MS);
		dt_sleep_ms(50);
	}
	close(nul);
}

/* ---- the writers ---- */

static volatile sig_atomic_t writer_stop;

static void
on_stop(int sig)
{
	(void) sig;
	writer_stop = 1;
}

static void
ack_path(int w, char *buf, size_t len)
{
	snprintf(buf, len, "%s/acks-%d", tu_tmpdir(), w);
}

/*
 * One writer process: commits events one CLI process at a time until told
 * to stop, and appends "<marker> <first_position>" for every acknowledged
 * commit (exit 0 and a reply with first_position). Failed commits are not
 * retried with the same marker: the next attempt is a new event.
 */
static void
writer_main(int w)
{
	char     path[4300], errpath[4300];
	uint64_t seed  = 0x9e3779b97f4a7c15ULL * (uint64_t) (w + 1);
	unsigned acked = 0, seq_total = 0, failed[256] = { 0 };

	ack_path(w, path, sizeof(path));
	snprintf(errpath, sizeof(errpath), "%s/cli-err-%d", tu_tmpdir(), w);
	int ackfd
	    = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	int errfd
	    = open(errpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (ackfd < 0 || errfd < 0)
		_exit(2);

	for (unsigned seq = 0; !writer_stop; seq++, seq_total++) {
		char        marker[64], stream[64], content[512];
		char        acc[32], cust[32];
		const char *type;

		snprintf(marker, sizeof(marker), "w%d-%u", w, seq);
		snprintf(
		    acc, sizeof(acc), "acc-%04u", dt_rnd(&seed) % N_ACCOUNTS);
		snprintf(cust, sizeof(cust), "cust-%02u",
		    dt_rnd(&seed) % N_CUSTOMERS);
		uint32_t pick   = dt_rnd(&seed) % 100;
		uint32_t amount = 1 + dt_rnd(&seed) % 1000;
		if (pick < 12) {
			type = "DebitAccountOpened";
			snprintf(stream, sizeof(stream), "%s", acc);
			snprintf(content, sizeof(content),
			    "{\"account_id\":\"%s\",\"name\":\"Account %s\","
			    "\"m\":\"%s\"}",
			    acc, marker, marker);
		} else if (pick < 27) {
			type = "CustomerRegistered";
			snprintf(stream, sizeof(stream), "%s", cust);
			snprintf(content, sizeof(content),
			    "{\"customer_id\":\"%s\",\"name\":\"Customer %s\","
			    "\"account\":{\"id\":\"%s\"},\"m\":\"%s\"}",
			    cust, marker, acc, marker);
		} else if (pick < 70) {
			type = "DebitPerformed";
			snprintf(stream, sizeof(stream), "%s", acc);
			snprintf(content, sizeof(content),
			    "{\"amount\":%u,\"m\":\"%s\"}", amount, marker);
		} else {
			type = "WithdrawalPerformed";
			snprintf(stream, sizeof(stream), "%s", acc);
			snprintf(content, sizeof(content),
			    "{\"account_id\":\"%s\",\"amount\":%u,"
			    "\"m\":\"%s\"}",
			    acc, amount, marker);
		}

		char *argv[] = { sluice_bin, "--url", url, "--timeout", "3000",
			"commit", "--tenant", TENANT, "--stream", stream,
			"--type", (char *) type, content, NULL };
		char *out    = NULL;
		int   status = run(argv, errfd, &out);
		if (exited_ok(status)) {
			/* Acknowledged: the reply must say where. */
			json_t *j = json_loads(out, 0, NULL);
			json_t *p = json_object_get(j, "first_position");
			json_t *c = json_object_get(j, "count");
			char    line[128];
			int     n;
			if (json_is_integer(p) && json_integer_value(p) >= 0
			    && (c == NULL || json_integer_value(c) == 1))
				n = snprintf(line, sizeof(line), "%s %lld\n",
				    marker, (long long) json_integer_value(p));
			else
				n = snprintf(line, sizeof(line),
				    "%s BADREPLY\n", marker);
			if (write(ackfd, line, (size_t) n) != n)
				_exit(2);
			json_decref(j);
			acked++;
		} else {
			int code = status >= 0 && WIFEXITED(status)
			    ? WEXITSTATUS(status)
			    : 255;
			failed[code & 255]++;
			dt_sleep_ms(
			    20); /* the daemon is likely down: no hot spin */
		}
		free(out);
	}
	fprintf(stderr,
	    "writer %d: %u acknowledged; failed: exit 1 %u, 2 %u, 3 %u, "
	    "other %u\n",
	    w, acked, failed[1], failed[2], failed[3],
	    seq_total - acked - failed[1] - failed[2] - failed[3]);
	close(ackfd);
	close(errfd);
	_exit(failed[1] == 0 ? 0 : 3); /* usage errors mean a bad test */
}

static void
writers_start(void)
{
	pid_t parent = getpid();
	for (int w = 0; w < N_WRITERS; w++) {
		pid_t pid = fork();
		CHECK(pid >= 0);
		if (pid == 0) {
			dt_child_setup(parent);
			writer_main(w);
		}
		writer_pids[w] = pid;
	}
}

static size_t
total_acks(void)
{
	size_t n = 0;
	for (int w = 0; w < N_WRITERS; w++) {
		char path[4300];
		ack_path(w, path, sizeof(path));
		n += dt_count_lines(path);
	}
	return n;
}

/* Let the writers run until `more` further commits are acknowledged. */
static void
writers_progress(size_t more)
{
	size_t  target = total_acks() + more;
	int64_t end    = dt_now_ms() + ROUND_MAX_MS;
	while (total_acks() < target) {
		daemon_check_alive();
		if (dt_now_ms() > end)
			FAIL("writers made no progress: %zu of %zu acks after "
			     "%d ms",
			    total_acks(), target, ROUND_MAX_MS);
		dt_sleep_ms(20);
	}
}

static void
writers_stop(void)
{
	for (int w = 0; w < N_WRITERS; w++)
		kill(writer_pids[w], SIGUSR1);
	for (int w = 0; w < N_WRITERS; w++) {
		int status;
		if (!dt_wait_exit(writer_pids[w], STOP_MAX_MS, &status))
			FAIL("writer %d did not stop within %d ms", w,
			    STOP_MAX_MS);
		writer_pids[w] = -1;
		if (!exited_ok(status)) {
			char errpath[4300];
			snprintf(errpath, sizeof(errpath), "%s/cli-err-%d",
			    tu_tmpdir(), w);
			dt_dump_file(errpath, "writer's CLI errors");
			FAIL("writer %d failed: status 0x%x", w, status);
		}
	}
}

/* ---- the log ---- */

typedef struct logev {
	char   *stream;
	char   *type;
	char   *marker;
	json_t *content; /* owned */
} logev;

static logev *events;
static size_t n_events;

static const char *
str_of(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Read the whole log with `sluice read` and check its shape. */
static void
read_log(void)
{
	char *argv[] = { sluice_bin, "--url", url, "read", NULL };
	char *out    = NULL;
	int   status = run(argv, -1, &out);
	if (!exited_ok(status))
		FAIL("`sluice read` failed: status 0x%x", status);

	size_t cap = 1024;
	events     = calloc(cap, sizeof(*events));
	CHECK(events != NULL);
	char *save = NULL;
	for (char *line = strtok_r(out, "\n", &save); line != NULL;
	     line       = strtok_r(NULL, "\n", &save)) {
		json_error_t jerr;
		json_t      *j = json_loads(line, 0, &jerr);
		if (j == NULL)
			FAIL("`sluice read` line %zu is not JSON (%s): %.200s",
			    n_events, jerr.text, line);
		json_t     *pos     = json_object_get(j, "position");
		json_t     *content = json_object_get(j, "content");
		const char *stream  = str_of(j, "stream");
		const char *type    = str_of(j, "type");
		const char *tenant  = str_of(j, "tenant");
		if (!json_is_integer(pos)
		    || json_integer_value(pos) != (json_int_t) n_events)
			FAIL("log positions not gap-free: line %zu has "
			     "position %s",
			    n_events, json_dumps(pos, JSON_ENCODE_ANY));
		if (stream == NULL || type == NULL || tenant == NULL
		    || !json_is_object(content))
			FAIL("event %zu lacks stream/type/tenant/content: "
			     "%.300s",
			    n_events, line);
		if (strcmp(tenant, TENANT) != 0)
			FAIL("event %zu has tenant '%s'", n_events, tenant);
		const char *m = str_of(content, "m");
		if (m == NULL)
			FAIL(
			    "event %zu has no marker: %.300s", n_events, line);
		if (n_events == cap) {
			cap *= 2;
			events = realloc(events, cap * sizeof(*events));
			CHECK(events != NULL);
		}
		events[n_events].stream  = strdup(stream);
		events[n_events].type    = strdup(type);
		events[n_events].marker  = strdup(m);
		events[n_events].content = json_incref(content);
		n_events++;
		json_decref(j);
	}
	free(out);
	if (n_events == 0)
		FAIL("the log is empty");
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Exactly-once: no marker twice in the log; every acknowledged marker at
 * its acknowledged position. */
static void
check_acks(size_t *acked_out)
{
	char **sorted = malloc(n_events * sizeof(*sorted));
	CHECK(sorted != NULL);
	for (size_t i = 0; i < n_events; i++)
		sorted[i] = events[i].marker;
	qsort(sorted, n_events, sizeof(*sorted), cmp_str);
	for (size_t i = 1; i < n_events; i++)
		if (strcmp(sorted[i - 1], sorted[i]) == 0)
			FAIL("marker %s is in the log twice (a commit was "
			     "applied twice)",
			    sorted[i]);
	free(sorted);

	size_t acked = 0;
	for (int w = 0; w < N_WRITERS; w++) {
		char  path[4300], line[256];
		FILE *f;
		ack_path(w, path, sizeof(path));
		f = fopen(path, "r");
		CHECK(f != NULL);
		while (fgets(line, sizeof(line), f) != NULL) {
			char               marker[128], posstr[64];
			unsigned long long pos;
			if (sscanf(line, "%127s %63s", marker, posstr) != 2)
				FAIL("bad ack line: %s", line);
			if (strcmp(posstr, "BADREPLY") == 0)
				FAIL("commit %s exited 0 without a valid "
				     "{\"first_position\",\"count\":1} reply",
				    marker);
			pos = strtoull(posstr, NULL, 10);
			if (pos >= n_events)
				FAIL("acknowledged %s at position %llu, but "
				     "the "
				     "log has only %zu events",
				    marker, pos, n_events);
			if (strcmp(events[pos].marker, marker) != 0)
				FAIL("acknowledged %s at position %llu, but "
				     "the "
				     "log has %s there",
				    marker, pos, events[pos].marker);
			acked++;
		}
		fclose(f);
	}
	*acked_out = acked;
}

/* Per-stream revisions count from 0 without gaps (as read back). */
static void
check_revisions(void)
{
	char *argv[] = { sluice_bin, "--url", url, "read", "--tenant", TENANT,
		"--stream", "acc-0000", NULL };
	char *out    = NULL;
	int   status = run(argv, -1, &out);
	if (!exited_ok(status))
		FAIL("`sluice read --stream acc-0000` failed: 0x%x", status);
	size_t expect = 0;
	for (size_t i = 0; i < n_events; i++)
		expect += strcmp(events[i].stream, "acc-0000") == 0;
	size_t n    = 0;
	char  *save = NULL;
	for (char *line = strtok_r(out, "\n", &save); line != NULL;
	     line       = strtok_r(NULL, "\n", &save)) {
		json_t *j   = json_loads(line, 0, NULL);
		json_t *rev = json_object_get(j, "revision");
		if (!json_is_integer(rev)
		    || json_integer_value(rev) != (json_int_t) n)
			FAIL("stream acc-0000: event %zu has revision %s", n,
			    line);
		json_decref(j);
		n++;
	}
	if (n != expect)
		FAIL("stream acc-0000 has %zu events, the log %zu", n, expect);
	free(out);
}

/* ---- the independent fold ---- */

typedef struct account {
	char      key[64];
	char      account_id[64];
	char      type[16];
	char      customer[96];
	char      name[96];
	long long balance;
} account;

static account models[256];
static size_t  n_models;

static account *
model_for(const char *key)
{
	for (size_t i = 0; i < n_models; i++)
		if (strcmp(models[i].key, key) == 0)
			return &models[i];
	CHECK(n_models < sizeof(models) / sizeof(models[0]));
	account *a = &models[n_models++];
	memset(a, 0, sizeof(*a));
	snprintf(a->key, sizeof(a->key), "%s", key);
	return a;
}

static void
set_str(char *dst, size_t len, const char *src)
{
	if (src != NULL)
		snprintf(dst, len, "%s", src);
}

/* Account Details as its documentation describes it, folded from the log. */
static void
recompute(void)
{
	for (size_t i = 0; i < n_events; i++) {
		logev      *e = &events[i];
		const char *key;
		if (strcmp(e->type, "CustomerRegistered") == 0)
			key = str_of(
			    json_object_get(e->content, "account"), "id");
		else if (strcmp(e->type, "WithdrawalPerformed") == 0)
			key = str_of(e->content, "account_id");
		else
			key = e->stream; /* event source id = partition */
		CHECK(key != NULL);
		account *a = model_for(key);
		if (a->account_id[0] == '\0')
			set_str(a->account_id, sizeof(a->account_id), key);
		if (strcmp(e->type, "DebitAccountOpened") == 0) {
			set_str(a->account_id, sizeof(a->account_id),
			    str_of(e->content, "account_id"));
			set_str(a->type, sizeof(a->type), "debit");
			set_str(a->name, sizeof(a->name),
			    str_of(e->content, "name"));
		} else if (strcmp(e->type, "CustomerRegistered") == 0) {
			set_str(a->customer, sizeof(a->customer),
			    str_of(e->content, "name"));
		} else {
			json_t *amt = json_object_get(e->content, "amount");
			CHECK(json_is_integer(amt));
			if (strcmp(e->type, "DebitPerformed") == 0)
				a->balance += json_integer_value(amt);
			else
				a->balance -= json_integer_value(amt);
		}
	}
}

/* ---- waiting for the processor, comparing read models ---- */

/* Does object o name the projection (directly or in a nested object)? */
static bool
names_projection(json_t *o)
{
	for (void *it = json_object_iter(o); it != NULL;
	     it       = json_object_iter_next(o, it)) {
		json_t *v = json_object_iter_value(it);
		if (json_is_string(v)
		    && strcmp(json_string_value(v), PROJECTION) == 0)
			return true;
		if (json_is_object(v) && names_projection(v))
			return true;
	}
	return false;
}

/* Find the account_details processor's "position" anywhere in status. */
static bool
find_proc_position(json_t *j, long long *pos)
{
	if (json_is_object(j)) {
		json_t *p = json_object_get(j, "position");
		if (json_is_integer(p) && names_projection(j)) {
			*pos = json_integer_value(p);
			return true;
		}
		for (void *it = json_object_iter(j); it != NULL;
		     it       = json_object_iter_next(j, it))
                        if (find_proc_position(
			              json_object_iter_value(it), pos))
                                return true;
	} else if (json_is_array(j)) {
		for (size_t i = 0; i < json_array_size(j); i++)
			if (find_proc_position(json_array_get(j, i), pos))
				return true;
	}
	return false;
}

/* The log's head (the next position to write) as status reports it. */
static bool
find_head(json_t *j, long long *head)
{
	if (!json_is_object(j))
		return false;
	json_t *h = json_object_get(j, "head");
	if (json_is_integer(h)) {
		*head = json_integer_value(h);
		return true;
	}
	for (void *it = json_object_iter(j); it != NULL;
	     it       = json_object_iter_next(j, it))
                if (find_head(json_object_iter_value(it), head))
                        return true;
	return false;
}

/* Wait until status shows the processor's checkpoint at the head (the next
 * position to handle == the number of events in the log). */
static void
wait_caught_up(void)
{
	int64_t end    = dt_now_ms() + CATCHUP_MAX_MS;
	char   *argv[] = { sluice_bin, "--url", url, "status", NULL };
	char   *out    = NULL;
	for (;;) {
		long long pos = -1, head = -1;
		int       status;
		free(out);
		out    = NULL;
		status = run(argv, -1, &out);
		if (!exited_ok(status))
			FAIL("`sluice status` failed: 0x%x", status);
		json_t *j = json_loads(out, 0, NULL);
		if (j == NULL)
			FAIL("`sluice status` printed no JSON: %.500s", out);
		bool have_pos  = find_proc_position(j, &pos);
		bool have_head = find_head(j, &head);
		json_decref(j);
		/* Nothing commits any more: the head is the log's length. */
		if (have_head && head != (long long) n_events)
			FAIL("status shows head %lld, but `sluice read` gave "
			     "%zu events: %s",
			    head, n_events, out);
		if (have_pos && have_head && pos == head)
			break;
		if (dt_now_ms() > end)
			FAIL(
			    "processor %s did not reach the head (%zu events; "
			    "status: position %lld, head %lld) within %d ms; "
			    "last status: %s",
			    PROJECTION, n_events, have_pos ? pos : -1LL,
			    have_head ? head : -1LL, CATCHUP_MAX_MS, out);
		dt_sleep_ms(50);
	}
	free(out);
}

static void
compare_read_models(void)
{
	char *argv[] = { sluice_bin, "--url", url, "get-all", "--tenant",
		TENANT, "--projection", PROJECTION, NULL };
	char *out    = NULL;
	int   status = run(argv, -1, &out);
	if (!exited_ok(status))
		FAIL("`sluice get-all` failed: 0x%x", status);
	json_error_t jerr;
	json_t      *all = json_loads(out, 0, &jerr);
	if (!json_is_array(all))
		FAIL("get-all printed no JSON array (%s): %.500s", jerr.text,
		    out);

	bool        seen[256] = { false };
	const char *prev      = NULL;
	for (size_t i = 0; i < json_array_size(all); i++) {
		json_t     *item = json_array_get(all, i);
		const char *key  = str_of(item, "key");
		json_t     *st   = json_object_get(item, "state");
		if (key == NULL || !json_is_object(st))
			FAIL(
			    "get-all item %zu is not {key,state}: %s", i, out);
		if (prev != NULL && strcmp(prev, key) >= 0)
			FAIL("get-all keys not in order: '%s' then '%s'", prev,
			    key);
		prev       = key;
		account *a = NULL;
		for (size_t k = 0; k < n_models; k++)
			if (strcmp(models[k].key, key) == 0)
				a = &models[k];
		if (a == NULL)
			FAIL("read model '%s' exists but the log never names "
			     "it",
			    key);
		seen[a - models] = true;

		const char *fields[][2] = {
			{ "account_id", a->account_id },
			{ "type", a->type },
			{ "customer", a->customer },
			{ "name", a->name },
		};
		for (size_t f = 0; f < 4; f++) {
			const char *got = str_of(st, fields[f][0]);
			if (got == NULL || strcmp(got, fields[f][1]) != 0)
				FAIL("read model '%s': %s is \"%s\", the log "
				     "says \"%s\"",
				    key, fields[f][0], got ? got : "(missing)",
				    fields[f][1]);
		}
		json_t *bal = json_object_get(st, "balance");
		if (!json_is_integer(bal)
		    || json_integer_value(bal) != a->balance)
			FAIL("read model '%s': balance is %s, the log says "
			     "%lld",
			    key, json_dumps(bal, JSON_ENCODE_ANY), a->balance);
		if (json_object_size(st) != 5)
			FAIL("read model '%s' has %zu fields, expected 5", key,
			    json_object_size(st));
	}
	for (size_t k = 0; k < n_models; k++)
		if (!seen[k])
			FAIL("read model '%s' is missing from get-all",
			    models[k].key);
	json_decref(all);
	free(out);
}

/* ---- the test ---- */

static void
write_config(void)
{
	const char *dir = tu_tmpdir();
	char        text[16384];
	snprintf(cfg_path, sizeof(cfg_path), "%s/resources.yaml", dir);
	snprintf(daemon_log, sizeof(daemon_log), "%s/sluiced.log", dir);
	snprintf(url, sizeof(url), "ipc://%s/api.ipc", dir);
	snprintf(text, sizeof(text),
	    "data_dir: %s/data\n"
	    "plugin_dir: %s\n"
	    "log_level: info\n"
	    "endpoints:\n"
	    "  api: %s\n"
	    "  pub: ipc://%s/pub.ipc\n"
	    "event_store:\n"
	    "  map_size: 64MiB\n"
	    "  sync: true\n"
	    "tenants:\n"
	    "  - id: " TENANT "\n"
	    "    read_models:\n"
	    "      map_size: 16MiB\n"
	    "limits:\n"
	    "  max_read_events: 25\n"
	    "processing:\n"
	    "  batch: 50\n",
	    dir, SL_PLUGIN_DIR, url, dir);
	tu_write_file(cfg_path, text);
}

int
main(void)
{
	struct sigaction sa;
	int              status;
	int64_t          t0 = dt_now_ms();

	test_pid = getpid();
	snprintf(sluiced_bin, sizeof(sluiced_bin), "%s/sluiced", SL_BUILD_DIR);
	snprintf(sluice_bin, sizeof(sluice_bin), "%s/sluice", SL_BUILD_DIR);
	CHECK(access(sluiced_bin, X_OK) == 0);
	CHECK(access(sluice_bin, X_OK) == 0);
	for (int w = 0; w < N_WRITERS; w++)
		writer_pids[w] = -1;
	write_config();
	atexit(cleanup); /* after tu_tmpdir's: runs before the removal */

	/* The writers' stop signal, set before fork so it is never missed. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sa.sa_flags   = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);

	daemon_start();
	daemon_wait_ready();
	writers_start();

	for (int k = 0; k < N_KILLS; k++) {
		writers_progress(ACKS_PER_ROUND);
		daemon_check_alive();
		/* Mid-flow: writers have commits in flight right now. */
		CHECK(kill(daemon_pid, SIGKILL) == 0);
		CHECK(dt_waitpid(daemon_pid, &status, 0) == daemon_pid);
		daemon_pid = -1;
		CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
		fprintf(stderr,
		    "killed sluiced after %zu acknowledged "
		    "commits\n",
		    total_acks());
		dt_sleep_ms(300); /* writers see it down */
		daemon_start();
		daemon_wait_ready();
	}
	writers_progress(ACKS_PER_ROUND);
	writers_stop();

	read_log();
	size_t acked = 0;
	check_acks(&acked);
	check_revisions();
	recompute();
	wait_caught_up();
	compare_read_models();

	/* A clean stop: SIGTERM, exit status 0. */
	CHECK(kill(daemon_pid, SIGTERM) == 0);
	if (!dt_wait_exit(daemon_pid, STOP_MAX_MS, &status))
		FAIL("sluiced did not stop within %d ms of SIGTERM",
		    STOP_MAX_MS);
	daemon_pid = -1;
	if (!exited_ok(status))
		FAIL("sluiced exited with status 0x%x after SIGTERM", status);

	fprintf(stderr,
	    "ok: %zu events in the log, %zu acknowledged, %zu committed "
	    "without acknowledgement, %zu read models, %d kills, %lld ms\n",
	    n_events, acked, n_events - acked, n_models, N_KILLS,
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
