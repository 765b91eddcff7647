/*
 * Files and sockets (issue 18 item 1, docs/security.md): under umask 000,
 * a daemon's data directory tree is its user's only (directories 0700,
 * files 0600) and its ipc sockets 0660; another user (nobody, when the
 * test runs as root) can neither connect nor read the log. Restarted with
 * `access: {group: nogroup, socket_mode: "0666"}` on the same data, the
 * tree moves to that group (directories 02750, files 0640, LMDB lock
 * files 0660) and the sockets to 0666: then nobody (in group nogroup) can
 * connect and read, which shows that the first refusals came from the
 * modes. A bad access section is refused at load.
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <grp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <sluice/client.h>

#include "daemon_testutil.h"

#define NOBODY 65534

static char dir[4096], cfg[4200], logf[4200], api[4400], sock[4300];
static char run_dir[4200], data[4200];
static long want_gid; /* -1: the daemon's own */
static int  n_checked;

/* Every directory, regular file and socket under data has the modes of
 * the access settings. */
static int
check_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void) f;
	mode_t      m    = st->st_mode & 07777;
	const char *base = strrchr(path, '/') + 1;
	mode_t      want;
	if (flag == FTW_D)
		want = want_gid < 0 ? 0700 : 02750;
	else if (S_ISSOCK(st->st_mode))
		want = want_gid < 0 ? 0660 : 0666;
	else if (S_ISREG(st->st_mode))
		want = want_gid < 0                    ? 0600
		    : strcmp(base, "lock.mdb") == 0 ? 0660
		                                     : 0640;
	else
		return 0;
	if (m != want) {
		fprintf(stderr, "%s: mode %04o, wanted %04o\n", path,
		    (unsigned) m, (unsigned) want);
		exit(1);
	}
	if (want_gid >= 0 && (long) st->st_gid != want_gid) {
		fprintf(stderr, "%s: group %ld, wanted %ld\n", path,
		    (long) st->st_gid, want_gid);
		exit(1);
	}
	n_checked++;
	return 0;
}

static void
check_tree(void)
{
	n_checked = 0;
	CHECK(nftw(data, check_one, 16, FTW_PHYS) == 0);
	CHECK(n_checked >= 6); /* data, the log's env and files, a tenant's */
}

static void
check_sock(const char *path, mode_t want)
{
	struct stat st;
	CHECK(stat(path, &st) == 0);
	CHECK(S_ISSOCK(st.st_mode));
	if ((st.st_mode & 07777) != want) {
		fprintf(stderr, "%s: mode %04o, wanted %04o\n", path,
		    (unsigned) (st.st_mode & 07777), (unsigned) want);
		exit(1);
	}
}

/* As user and group nobody/nogroup (no other groups): connect to the API
 * socket, open the log's data file. @return errno of each (0: it worked),
 * as connect_err * 1000 + open_err. */
static int
as_nobody(const char *log_file)
{
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		if (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0
		    || setuid(NOBODY) != 0)
			_exit(255);
		int ce = 0, oe = 0;
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);
		struct sockaddr_un a;
		memset(&a, 0, sizeof(a));
		a.sun_family = AF_UNIX;
		CHECK(strlen(sock) < sizeof(a.sun_path));
		memcpy(a.sun_path, sock, strlen(sock) + 1);
		if (fd < 0 || connect(fd, (struct sockaddr *) &a, sizeof(a)) != 0)
			ce = errno;
		int lf = open(log_file, O_RDONLY);
		if (lf < 0)
			oe = errno;
		_exit(ce > 254 || oe > 254 ? 254 : (ce != 0) * 2 + (oe != 0));
	}
	int status;
	CHECK(dt_waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) != 255);
	return WEXITSTATUS(status);
}

static void
write_config(const char *access)
{
	char   text[8192];
	size_t n = dt_config_head(
	    text, sizeof(text), dir, SL_BUILD_DIR "/plugins", api, "64MiB");
	snprintf(text + n, sizeof(text) - n,
	    "start_standard_projections: true\n"
	    "tenants:\n"
	    "  - id: t1\n"
	    "%s",
	    access);
	/* the pub socket beside the API's, outside data_dir */
	char *pub = strstr(text, "pub: ipc://");
	CHECK(pub != NULL);
	char fixed[8192];
	snprintf(fixed, sizeof(fixed), "%.*spub: ipc://%s/pub.ipc%s",
	    (int) (pub - text), text, run_dir, strchr(pub, '\n'));
	dt_write_bytes(cfg, fixed, strlen(fixed));
}

static pid_t
start(void)
{
	pid_t      pid = dt_daemon_spawn(cfg, logf);
	sl_client *c   = NULL;
	if (!dt_wait_answer(api, &c, 20000)) {
		dt_dump_file(logf, "sluiced.log");
		fprintf(stderr, "the daemon did not answer\n");
		exit(1);
	}
	sl_new_event ev = { .type = "Ping", .content_json = "{}" };
	CHECK_EQ(sl_client_commit(c, "t1", "s-1", SL_EXPECT_ANY, &ev, 1, NULL),
	    SL_OK);
	sl_client_close(c);
	return pid;
}

static void
stop(pid_t *pid)
{
	kill(*pid, SIGTERM);
	int st;
	CHECK(dt_wait_exit(*pid, 20000, &st));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	*pid = 0;
}

/* The daemon's soft open files limit is want (from /proc/PID/limits). */
static void
check_fd_limit(pid_t pid, rlim_t want)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/limits", (int) pid);
	FILE *f = fopen(path, "r"); /* /proc files have no size: read lines */
	CHECK(f != NULL);
	unsigned long long soft  = 0;
	bool               found = false;
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = strncmp(line, "Max open files", 14) == 0
		    && sscanf(line + 14, "%llu", &soft) == 1;
	fclose(f);
	CHECK(found);
	if (want != RLIM_INFINITY && soft != (unsigned long long) want) {
		fprintf(stderr, "open files limit %llu, wanted %llu\n", soft,
		    (unsigned long long) want);
		exit(1);
	}
}

/* A bad access: section: sluiced --check-config refuses it, naming the
 * key. */
static void
refused(const char *access, const char *why)
{
	write_config(access);
	char cmd[9000], out[4300];
	snprintf(out, sizeof(out), "%s/check.out", dir);
	snprintf(cmd, sizeof(cmd), "%s/sluiced --check-config -c %s > %s 2>&1",
	    SL_BUILD_DIR, cfg, out);
	int rc = system(cmd);
	CHECK(rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
	size_t len;
	char  *text = dt_slurp(out, &len);
	if (strstr(text, why) == NULL) {
		fprintf(stderr, "wanted '%s' in: %s\n", why, text);
		exit(1);
	}
	free(text);
}

int
main(void)
{
	char url[4400], log_file[4300];
	dt_test_paths(dir, cfg, logf, url);
	/* others may walk to run/ (where the sockets are), not into data/ */
	CHECK(chmod(dir, 0755) == 0);
	snprintf(run_dir, sizeof(run_dir), "%s/run", dir);
	CHECK(mkdir(run_dir, 0755) == 0);
	snprintf(sock, sizeof(sock), "%s/api.ipc", run_dir);
	snprintf(api, sizeof(api), "ipc://%s", sock);
	snprintf(data, sizeof(data), "%s/data", dir);
	snprintf(log_file, sizeof(log_file), "%s/events/data.mdb", data);
	umask(0); /* the worst a daemon may be started with */

	refused("access:\n  socket_mode: \"660\"\n", "access.socket_mode");
	refused("access:\n  socket_mode: \"0460\"\n",
	    "must let the daemon's user read and write");
	refused("access:\n  group: no-such-group-here\n",
	    "no group 'no-such-group-here'");

	/* the defaults; started with a low open files limit, which the
	 * daemon raises to the hard one */
	write_config("");
	struct rlimit rl, low;
	CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
	low          = rl;
	low.rlim_cur = rl.rlim_max > 256 ? 256 : rl.rlim_max;
	CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
	pid_t pid = start();
	CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
	check_fd_limit(pid, low.rlim_max);
	want_gid  = -1;
	check_tree();
	check_sock(sock, 0660);
	snprintf(url, sizeof(url), "%s/pub.ipc", run_dir);
	check_sock(url, 0660);
	bool root = geteuid() == 0;
	if (root)
		CHECK_EQ(as_nobody(log_file), 3); /* neither works */
	stop(&pid);

	/* a group for read-only tools, a wider socket mode */
	struct group *g = getgrgid(NOBODY);
	if (g == NULL) {
		printf("access_test: ok (skipped the group part: no group "
		       "%d)\n",
		    NOBODY);
		return 0;
	}
	char access[300];
	snprintf(access, sizeof(access),
	    "access:\n  group: %s\n  socket_mode: \"0666\"\n", g->gr_name);
	write_config(access);
	pid      = start();
	want_gid = NOBODY;
	check_tree();
	check_sock(sock, 0666);
	if (root)
		CHECK_EQ(as_nobody(log_file), 0); /* both work now */
	stop(&pid);
	if (!root)
		printf("access_test: ok (as another user: skipped, the test "
		       "does not run as root)\n");
	else
		printf("access_test: ok\n");
	return 0;
}
