/*
 * The live feed with a foreign subscriber: nngcat (Debian nng-utils), given
 * only the pub endpoint and a topic, as the README shows it. It must get
 * exactly the messages of its stream, each a topic line and one msgpack
 * array of wire events, that any msgpack library can read.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <msgpack.h>

#include <sluice/client.h>

#include "config.h"
#include "mp.h"
#include "runtime.h"
#include "api_fixture.h"
#include "daemon_testutil.h"

static pid_t cat_pid = -1;
static pid_t test_pid;

static void
cleanup(void)
{
	if (getpid() == test_pid)
		dt_kill_and_reap(&cat_pid);
}

/*
 * Start argv[0] with stdout to out_path. The child dies with this process
 * (PR_SET_PDEATHSIG), so a test killed by its timeout leaves nothing
 * behind. Only async-signal-safe calls run between fork and exec: this
 * process has threads (the runtime, NNG).
 */
static pid_t
spawn_to_file(const char *const *argv, const char *out_path)
{
	pid_t parent = getpid();
	int   fd
	    = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	pid_t pid;

	CHECK(fd >= 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		dt_child_setup(parent);
		dup2(fd, STDOUT_FILENO);
		execv(argv[0], (char *const *) argv);
		_exit(127);
	}
	close(fd);
	return pid;
}

static const char *
find_nngcat(void)
{
	static const char *paths[]
	    = { "/usr/bin/nngcat", "/usr/local/bin/nngcat" };
	for (size_t i = 0; i < 2; i++)
		if (access(paths[i], X_OK) == 0)
			return paths[i];
	return NULL;
}

static void
start_runtime(void)
{
	char path[4300];

	/* an empty plugin directory: the feed needs no projection */
	snprintf(path, sizeof(path), "%s/plugins", tu_tmpdir());
	CHECK(mkdir(path, 0755) == 0);
	fx_start_yaml("plugin_dir: plugins\n"
	              "tenants: [{id: t1}, {id: t2}]\n");
}

static void
commit(sl_client *c, const char *tenant, const char *stream, int n,
    const char *tag)
{
	sl_new_event evs[8];
	char         texts[8][64];

	for (int i = 0; i < n; i++) {
		snprintf(texts[i], sizeof(texts[i]),
		    "{\"tag\":\"%s\",\"i\":%d}", tag, i);
		memset(&evs[i], 0, sizeof(evs[i]));
		evs[i].type         = "Tagged";
		evs[i].content_json = texts[i];
	}
	CHECK_EQ(sl_client_commit(
	             c, tenant, stream, SL_EXPECT_ANY, evs, (size_t) n, NULL),
	    SL_OK);
}

static long
file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long) st.st_size : 0;
}

int
main(void)
{
	const char *nngcat = find_nngcat();
	char        out[4300], topic[] = "e/t1/acc-1\n";
	sl_client  *c;
	int         status, pings = 0;

	if (nngcat == NULL) {
		fprintf(stderr,
		    "nngcat is not installed (Debian package "
		    "nng-utils; scripts/setup.sh installs it)\n");
		return 1;
	}
	test_pid = getpid();
	start_runtime();
	atexit(cleanup); /* before the temp dir's removal */
	CHECK_EQ(sl_client_open(fx_url, 5000, &c), SL_OK);

	/* The README's command, with --raw output to a file and an end
	 * after 2 s without messages. */
	snprintf(out, sizeof(out), "%s/nngcat.out", tu_tmpdir());
	char *argv[] = { (char *) nngcat, "--sub", "--dial", fx_pub_url,
		"--subscribe", topic, "--raw", "--recv-timeout", "2", NULL };
	cat_pid      = spawn_to_file((const char *const *) argv, out);

	/* Until nngcat is connected, pings into its stream (pub/sub only
	 * delivers to connected subscribers). */
	int64_t end = dt_now_ms() + 10000;
	while (file_size(out) == 0) {
		CHECK(dt_now_ms() < end);
		commit(c, "t1", "acc-1", 1, "ping");
		pings++;
		dt_sleep_ms(50);
	}
	dt_sleep_ms(100); /* the last pings arrive */
	commit(c, "t1", "acc-1", 3, "a");
	commit(c, "t1", "acc-10", 1, "no"); /* same start, other stream */
	commit(c, "t2", "acc-1", 1, "no");  /* same stream, other tenant */
	commit(c, "t1", "acc-1", 2, "b");

	/* nngcat ends 2 s after the last message. */
	end = dt_now_ms() + 10000;
	while (waitpid(cat_pid, &status, WNOHANG) == 0) {
		CHECK(dt_now_ms() < end);
		dt_sleep_ms(50);
	}
	cat_pid = -1;

	/* Parse: topic line, msgpack array; again and again. */
	size_t   len, off = 0;
	char    *buf      = dt_slurp(out, &len);
	uint64_t next_rev = 0, n_msgs = 0, n_pings_seen = 0;
	char     tags[16][8];
	size_t   n_tags = 0;
	bool     first  = true;
	while (off < len) {
		msgpack_zone   zone;
		msgpack_object o;
		const char    *nl = memchr(buf + off, '\n', len - off);
		CHECK(nl != NULL);
		CHECK_EQ((size_t) (nl - (buf + off)) + 1, strlen(topic));
		CHECK(memcmp(buf + off, topic, strlen(topic)) == 0);
		off = (size_t) (nl - buf) + 1;
		CHECK(msgpack_zone_init(&zone, 1024));
		/* EXTRA_BYTES: the next message follows. */
		msgpack_unpack_return ur
		    = msgpack_unpack(buf, len, &off, &zone, &o);
		CHECK(ur == MSGPACK_UNPACK_SUCCESS
		    || ur == MSGPACK_UNPACK_EXTRA_BYTES);
		CHECK(o.type == MSGPACK_OBJECT_ARRAY && o.via.array.size > 0);
		for (uint32_t i = 0; i < o.via.array.size; i++) {
			const msgpack_object *e = &o.via.array.ptr[i], *ct;
			const char           *tag;
			size_t                tl;
			uint64_t              rev;
			CHECK(mp_str_eq(mp_get(e, "tenant"), "t1"));
			CHECK(mp_str_eq(mp_get(e, "stream"), "acc-1"));
			CHECK_EQ(mp_get_u64(e, "revision", &rev), SL_OK);
			/* In order from the first message nngcat got (the
			 * pings before it was connected are not sent to it).
			 */
			if (first)
				next_rev = rev;
			first = false;
			CHECK_EQ(rev, next_rev);
			next_rev++;
			CHECK_EQ(mp_get_map(e, "content", &ct), SL_OK);
			CHECK_EQ(mp_get_str(ct, "tag", &tag, &tl), SL_OK);
			if (tl == 4 && memcmp(tag, "ping", 4) == 0) {
				n_pings_seen++;
			} else {
				CHECK(n_tags < 16);
				snprintf(tags[n_tags++], sizeof(tags[0]),
				    "%.*s", (int) tl, tag);
			}
		}
		msgpack_zone_destroy(&zone);
		n_msgs++;
	}
	free(buf);
	/* One message per commit: the pings seen, then "a"*3, then "b"*2. */
	CHECK(n_pings_seen >= 1);
	CHECK_EQ(n_msgs, n_pings_seen + 2);
	CHECK_EQ(n_tags, 5);
	for (size_t i = 0; i < 5; i++)
		CHECK_STREQ(tags[i], i < 3 ? "a" : "b");
	CHECK_EQ(next_rev, (uint64_t) pings + 5);
	fprintf(stderr,
	    "nngcat received %" PRIu64 " messages: %" PRIu64
	    " of %d pings, then the 5 events of its stream only\n",
	    n_msgs, n_pings_seen, pings);

	sl_client_close(c);
	fx_stop();
	return 0;
}
