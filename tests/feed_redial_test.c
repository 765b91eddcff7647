/*
 * A stream subscription gets back to a restarted daemon although the daemon
 * died while the subscription was dialling it. A SIGKILLed sluiced's
 * listening socket goes a few ms after its connections, so a client that
 * redials at once connects and then loses the connection before the SP
 * handshake; NNG 1.5.2's dialer takes that (NNG_ECLOSED) for its own close
 * and never dials again. Here a stand-in for the dying daemon listens on
 * the endpoints in trapped[] (main) and drops every connection that way
 * until the real daemon is back: the subscription must then get all its
 * events, and get them live again, not only by reading.
 */
#include <inttypes.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <sluice/subscribe.h>

#include "feed_testutil.h"

#define STREAM        "s-1"
#define N_BEFORE      5
#define N_AFTER       15
#define TRAP_MS       3000
#define COMMIT_GAP_MS 200
#define DONE_MAX_MS   20000

static int  go_pipe[2];
static char out_path[4300];

/* ---- the subscriber (forked before this process touches NNG) ---- */

typedef struct subarg {
	FILE              *f;
	sl_subscribe_stats st;
	uint64_t           live_before;
} subarg;

/* One line per event: its revision, and L (live feed) or R (a read). */
static int
on_event(void *arg, const sl_read_event *ev)
{
	subarg *a    = arg;
	bool    live = a->st.from_live > a->live_before;

	a->live_before = a->st.from_live;
	fprintf(a->f, "%" PRIu64 " %c\n", ev->revision, live ? 'L' : 'R');
	fflush(a->f);
	return 0;
}

static int
subscriber_main(void *arg)
{
	static subarg     a;
	sl_subscribe_opts o;
	sl_client        *c;
	char              go;
	int               rc;

	(void) arg;
	close(go_pipe[1]);
	if (read(go_pipe[0], &go, 1) < 0) /* EOF is the go */
		return 2;
	if ((a.f = fopen(out_path, "w")) == NULL)
		return 2;
	while (sl_client_open(ft_api_url, 1000, &c) != SL_OK)
		dt_sleep_ms(20);
	memset(&o, 0, sizeof(o));
	o.tenant  = FT_TENANT;
	o.stream  = STREAM;
	o.pub_url = ft_pub_url;
	o.stats   = &a.st;
	rc        = sl_client_subscribe(c, &o, on_event, &a);
	fprintf(stderr, "subscriber returned %s: %s\n", sl_errname(rc),
	    sl_client_last_error(c));
	return 3;
}

/* ---- the dying daemon's stand-in ---- */

/* A plain listener on the ipc:// path of url that accepts nothing. */
static int
trap_listen(const char *url)
{
	const char        *path = url + strlen("ipc://");
	struct sockaddr_un sa;
	int                fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	CHECK(strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path));
	unlink(path); /* the killed daemon's */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0);
	CHECK(bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0);
	CHECK(listen(fd, 16) == 0);
	return fd;
}

/*
 * For ms: whenever a connection reaches one of the listeners, close that
 * listener with the connection still waiting in its backlog (as a dying
 * daemon's goes), which hangs up on the dialer before the handshake; a new
 * listener takes its place. dropped[i] counts the connections dropped so
 * on urls[i].
 */
static void
trap_dialers(const char *const *urls, size_t n, int ms, unsigned *dropped)
{
	struct pollfd p[4];
	int64_t       end = dt_now_ms() + ms, now;

	CHECK(n <= sizeof(p) / sizeof(p[0]));
	for (size_t i = 0; i < n; i++) {
		p[i].fd     = trap_listen(urls[i]);
		p[i].events = POLLIN;
		dropped[i]  = 0;
	}
	while ((now = dt_now_ms()) < end) {
		if (poll(p, n, (int) (end - now)) <= 0)
			continue;
		for (size_t i = 0; i < n; i++) {
			if (p[i].revents == 0)
				continue;
			close(p[i].fd);
			dropped[i]++;
			p[i].fd = trap_listen(urls[i]);
		}
	}
	for (size_t i = 0; i < n; i++) {
		close(p[i].fd);
		unlink(urls[i] + strlen("ipc://"));
	}
}

/* ---- checks ---- */

static void
commit_one(sl_client *c, unsigned seq)
{
	char         text[64];
	sl_new_event ev = { .type = "Tick", .content_json = text };

	snprintf(text, sizeof(text), "{\"seq\":%u}", seq);
	CHECK_EQ(sl_client_commit(
	             c, FT_TENANT, STREAM, SL_EXPECT_ANY, &ev, 1, NULL),
	    SL_OK);
}

/* The subscriber's lines so far: how (L or R) each revision came, in
 * order; fails the test on a revision out of place. */
static size_t
load_lines(char *how, size_t cap)
{
	FILE              *f = fopen(out_path, "r");
	char               buf[128];
	size_t             n = 0;
	unsigned long long rev;
	char               c;

	if (f == NULL)
		return 0;
	while (n < cap && fgets(buf, sizeof(buf), f) != NULL
	    && sscanf(buf, "%llu %c", &rev, &c) == 2) {
		if (rev != n)
			FT_FAIL("event %zu of the subscription is revision "
			        "%llu",
			    n, rev);
		how[n++] = c;
	}
	fclose(f);
	return n;
}

static void
wait_lines(pid_t sub, size_t want, char *how)
{
	int64_t end = dt_now_ms() + DONE_MAX_MS;
	size_t  n;
	int     st;

	while ((n = load_lines(how, N_BEFORE + N_AFTER + 1)) < want) {
		if (dt_waitpid(sub, &st, WNOHANG) == sub)
			FT_FAIL("the subscriber exited (status 0x%x) after "
			        "%zu of %zu events",
			    st, n, want);
		if (dt_now_ms() > end)
			FT_FAIL(
			    "the subscriber has %zu of %zu events after %d "
			    "ms: it did not get back to the daemon",
			    n, want, DONE_MAX_MS);
		dt_sleep_ms(20);
	}
	if (n > want)
		FT_FAIL("the subscriber has %zu events, %zu were committed", n,
		    want);
}

int
main(void)
{
	/* The endpoints whose dialers the dying daemon catches. */
	const char *const trapped[] = { ft_pub_url, ft_api_url };
	const size_t      n_trapped = sizeof(trapped) / sizeof(trapped[0]);
	unsigned          dropped[sizeof(trapped) / sizeof(trapped[0])];
	char              how[N_BEFORE + N_AFTER + 1];
	sl_client        *c;
	pid_t             sub;
	unsigned          live = 0;

	ft_setup(NULL);
	snprintf(out_path, sizeof(out_path), "%s/sub-stream", tu_tmpdir());
	CHECK(pipe2(go_pipe, O_CLOEXEC) == 0); /* not into sluiced */
	sub = ft_fork(subscriber_main, NULL);
	close(go_pipe[0]);

	ft_daemon_start();
	ft_daemon_wait_ready();
	close(go_pipe[1]); /* go */
	CHECK_EQ(sl_client_open(ft_api_url, 5000, &c), SL_OK);
	for (unsigned i = 0; i < N_BEFORE; i++)
		commit_one(c, i);
	wait_lines(sub, N_BEFORE, how);
	sl_client_close(c);

	ft_daemon_kill();
	trap_dialers(trapped, n_trapped, TRAP_MS, dropped);
	for (size_t i = 0; i < n_trapped; i++) {
		fprintf(stderr,
		    "the dying daemon's stand-in dropped %u connections to "
		    "%s\n",
		    dropped[i], trapped[i]);
		if (dropped[i] == 0)
			FT_FAIL("the subscription did not dial %s in %d ms",
			    trapped[i], TRAP_MS);
	}
	ft_daemon_start();
	ft_daemon_wait_ready();

	CHECK_EQ(sl_client_open(ft_api_url, 5000, &c), SL_OK);
	for (unsigned i = 0; i < N_AFTER; i++) {
		commit_one(c, N_BEFORE + i);
		dt_sleep_ms(COMMIT_GAP_MS);
	}
	sl_client_close(c);
	wait_lines(sub, N_BEFORE + N_AFTER, how);
	for (size_t i = N_BEFORE; i < N_BEFORE + N_AFTER; i++)
		live += how[i] == 'L';
	fprintf(stderr, "after the restart: %u of %d events live\n", live,
	    N_AFTER);
	if (live == 0)
		FT_FAIL("all %d events after the restart came by reading: the "
		        "feed was never dialled again",
		    N_AFTER);

	kill(sub, SIGKILL);
	dt_waitpid(sub, NULL, 0);
	ft_forget(sub);
	ft_daemon_stop();
	return 0;
}
