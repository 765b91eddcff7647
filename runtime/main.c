/*
 * sluiced: the daemon. Loads resources.yaml, takes the data directory's
 * lock, starts the runtime and serves until SIGINT or SIGTERM, then stops
 * everything cleanly. SIGHUP reads the file again (runtime_reconfigure).
 * Exit status: 0 stopped, 1 cannot start, 2 usage or configuration
 * (sluiced(8)).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef SL_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include <sluice/errors.h>

#include "config.h"
#include "fsutil.h"
#include "guard.h"
#include "listen.h"
#include "log.h"
#include "runtime.h"
#include "store_pg.h"
#include "supervise.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.1.0"
#endif

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: sluiced [-c|--config FILE] [--check-config] [--init-db] "
	    "[--supervise] [--log-format text|json] [--version] "
	    "[-h|--help]\n"
	    "  -c, --config FILE  configuration (default ./resources.yaml)\n"
	    "      --check-config load and check the configuration, then "
	    "exit\n"
	    "      --init-db      create or migrate the schema of the "
	    "PostgreSQL\n"
	    "                     event log (event_store.url), then exit\n"
	    "      --supervise    run the daemon as a child and start it "
	    "again when\n"
	    "                     it dies of a signal (SIGTERM/SIGINT are "
	    "passed on)\n"
	    "      --log-format F text (the default) or json: one JSON "
	    "object per\n"
	    "                     log line {ts, level, subsys, msg}\n"
	    "      --version      print the version and exit\n"
	    "  -h, --help         this help\n");
}

/*
 * One daemon per data directory: an flock held for the process's life (the
 * kernel drops it when the process dies, even on SIGKILL).
 * @return the lock's fd, or -1 with a message printed.
 */
static int
lock_data_dir(const char *data_dir)
{
	char path[4096];
	if (snprintf(path, sizeof(path), "%s/sluiced.lock", data_dir)
	    >= (int) sizeof(path)) {
		fprintf(stderr, "sluiced: data_dir path too long\n");
		return -1;
	}
	/* mkdir -p: the lock comes before runtime_start creates the rest */
	if (fs_mkdirs(data_dir) != 0) {
		fprintf(stderr, "sluiced: cannot create data_dir %s: %s\n",
		    data_dir, strerror(errno));
		return -1;
	}
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "sluiced: cannot open %s: %s\n", path,
		    strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EWOULDBLOCK)
			fprintf(stderr,
			    "sluiced: another sluiced is already running on "
			    "data_dir %s (lock %s is held)\n",
			    data_dir, path);
		else
			fprintf(stderr, "sluiced: cannot lock %s: %s\n", path,
			    strerror(errno));
		close(fd);
		return -1;
	}
	/* The pid, for people; the lock itself is what counts. */
	char pid[32];
	int  n = snprintf(pid, sizeof(pid), "%ld\n", (long) getpid());
	if (ftruncate(fd, 0) == 0 && write(fd, pid, (size_t) n) < 0) {
		/* informational only */
	}
	return fd;
}

/*
 * Every connection, LMDB environment, plugin copy and watch takes a file
 * descriptor: the soft limit (often 1024) goes up to the hard one, so that
 * many clients or half-open connections do not starve hot reload and the
 * stores first.
 */
static void
raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rlim_t was = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
		log_info("main", "open files limit raised from %llu to %llu",
		    (unsigned long long) was, (unsigned long long) rl.rlim_cur);
}

/*
 * systemd (Type=notify): READY, RELOADING, STOPPING and the watchdog's
 * WATCHDOG=1, when the daemon runs under it ($NOTIFY_SOCKET); nothing
 * otherwise, or when built without libsystemd.
 */
static void
notify(const char *state)
{
#ifdef SL_HAVE_SYSTEMD
	sd_notify(0, state);
#else
	(void) state;
#endif
}

static void
notify_ready(const sl_config *cfg)
{
#ifdef SL_HAVE_SYSTEMD
	sd_notifyf(0, "READY=1\nSTATUS=serving %s", cfg->api_url);
#else
	(void) cfg;
#endif
}

/* The watchdog's period (half of WatchdogSec), or -1 without one. */
static int64_t
watchdog_ms(void)
{
#ifdef SL_HAVE_SYSTEMD
	uint64_t usec = 0;
	if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
		return (int64_t) (usec / 2000);
#endif
	return -1;
}

/* SIGHUP: load the file again; what it changes that can change now is
 * applied, the rest logged. A file that does not load changes nothing. */
static void
reconfigure(const char *file, runtime *rt)
{
	sl_config *n;
	char       err[1024];
	notify("RELOADING=1");
	log_info("main", "SIGHUP received: reading %s again", file);
	int rc = config_load(file, &n, err, sizeof(err));
	if (rc != SL_OK) {
		log_error("main", "%s: nothing changed: %s", file,
		    rc == SL_ECONFIG ? err : sl_strerror(rc));
	} else {
		runtime_reconfigure(rt, n);
		config_free(n);
	}
	notify("READY=1");
}

/* Serve until SIGTERM or SIGINT (returned); SIGHUP reconfigures, and the
 * systemd watchdog is fed on the way. */
static int
wait_stop(const sigset_t *set, const char *file, runtime *rt)
{
	int64_t wd = watchdog_ms();
	for (;;) {
		int sig;
		if (wd > 0) {
			struct timespec ts = { (time_t) (wd / 1000),
				(long) (wd % 1000) * 1000000L };
			sig = sigtimedwait(set, NULL, &ts);
			if (sig < 0) {
				if (errno == EAGAIN)
					notify("WATCHDOG=1");
				continue;
			}
		} else if (sigwait(set, &sig) != 0) {
			continue;
		}
		if (sig == SIGHUP)
			reconfigure(file, rt);
		else
			return sig;
	}
}

/* sluiced --init-db: the PostgreSQL schema (docs/postgresql.md). Exit
 * status 0 done (or nothing to do), 1 the database refused or did not
 * answer, 2 a configuration without the PostgreSQL backend. */
static int
run_init_db(const char *file, const sl_config *cfg)
{
	char err[512];

	if (cfg->store_backend != CFG_BACKEND_POSTGRESQL) {
		fprintf(stderr,
		    "sluiced: %s: --init-db is for 'event_store.backend: "
		    "postgresql' (this event store is LMDB, made when the "
		    "daemon starts)\n",
		    file);
		return 2;
	}
	int rc = store_pg_init_db(cfg->store_url, err, sizeof(err));
	if (rc != SL_OK) {
		fprintf(stderr, "sluiced: --init-db: %s: %s\n",
		    sl_errname(rc), err);
		return 1;
	}
	printf("sluiced: --init-db: %s\n", err);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *file  = "resources.yaml";
	bool        check = false, supervised = false;
	bool        init_db = false;
	enum {
		OPT_CHECK = 256,
		OPT_VERSION,
		OPT_SUPERVISE,
		OPT_LOGFMT,
		OPT_INITDB
	};
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, OPT_CHECK },
		{ "init-db", no_argument, NULL, OPT_INITDB },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "supervise", no_argument, NULL, OPT_SUPERVISE },
		{ "log-format", required_argument, NULL, OPT_LOGFMT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			file = optarg;
			break;
		case OPT_CHECK:
			check = true;
			break;
		case OPT_INITDB:
			init_db = true;
			break;
		case OPT_SUPERVISE:
			supervised = true;
			break;
		case OPT_LOGFMT: {
			int f = log_format_parse(optarg);
			if (f < 0) {
				fprintf(stderr,
				    "sluiced: --log-format takes text or json, "
				    "not '%s'\n",
				    optarg);
				return 2;
			}
			log_set_format(f);
			break;
		}
		case OPT_VERSION:
			printf("sluiced %s\n", SLUICE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sluiced: unexpected argument '%s'\n",
		    argv[optind]);
		usage(stderr);
		return 2;
	}

	/* before any thread: the supervisor forks the daemon */
	if (supervised && !check && !init_db) {
		int code = supervise();
		if (code >= 0)
			return code;
	}

	sl_config *cfg;
	char       err[1024];
	int        rc = config_load(file, &cfg, err, sizeof(err));
	if (rc != SL_OK) {
		fprintf(stderr, "sluiced: %s\n",
		    rc == SL_ECONFIG ? err : sl_strerror(rc));
		return 2;
	}
	if (init_db) {
		int code = run_init_db(file, cfg);
		config_free(cfg);
		return code;
	}
	if (check) {
		printf("%s: configuration OK (%zu tenant%s)\n", file,
		    cfg->n_tenants, cfg->n_tenants == 1 ? "" : "s");
		config_free(cfg);
		return 0;
	}
	log_set_level(cfg->log_level);
	raise_fd_limit();

	/* before anything is created: modes and group (docs/security.md) */
	fs_access_init(cfg->access_gid);
	net_access_init(cfg->socket_mode, cfg->access_gid);
	int lock_fd = lock_data_dir(cfg->data_dir);
	if (lock_fd < 0) {
		config_free(cfg);
		return 1;
	}
	/* the daemon's user's only, or its access group's: also what an
	 * older version, a looser umask or another group made */
	if (fs_secure_tree(cfg->data_dir) != 0)
		log_warn("main", "cannot restrict the modes under data_dir %s: %s",
		    cfg->data_dir, strerror(errno));

	/* Block the stop signals in every thread (threads inherit the mask),
	 * and take them synchronously with sigwait below. */
	sigset_t stop_set;
	sigemptyset(&stop_set);
	sigaddset(&stop_set, SIGINT);
	sigaddset(&stop_set, SIGTERM);
	sigaddset(&stop_set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stop_set, NULL);
	signal(SIGPIPE, SIG_IGN);

	runtime *rt;
	runtime_set_pg_backend(store_pg_attach);
	if ((rc = runtime_start(cfg, &rt)) != SL_OK) {
		fprintf(
		    stderr, "sluiced: cannot start: %s\n", sl_strerror(rc));
		close(lock_fd);
		config_free(cfg);
		return 1;
	}
	log_info("main",
	    "sluiced ready api=%s head=%" PRIu64
	    " tenants=%zu projections=%zu",
	    cfg->api_url, store_next_position(rt->store), rt->n_tenants,
	    registry_projection_count(rt->plugins));

	notify_ready(cfg);
	int sig = wait_stop(&stop_set, file, rt);
	log_info("main", "%s received, stopping", strsignal(sig));
	notify("STOPPING=1");
	guard_stop_within(cfg->shutdown_timeout_ms);
	runtime_stop(rt);
	log_info("main", "stopped");
	close(lock_fd);
	config_free(cfg);
	return 0;
}
