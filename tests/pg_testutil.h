/*
 * A throwaway PostgreSQL cluster for the tests of the PostgreSQL event log
 * (docs/postgresql.md): scripts/pg_cluster.sh in the test's temp dir,
 * stopped at exit whatever happens, SQL through libpq, and programs run
 * with their output captured.
 */
#ifndef SL_PG_TESTUTIL_H
#define SL_PG_TESTUTIL_H

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "testutil.h"

/* ctest's SKIP_RETURN_CODE of these tests */
#define PGT_SKIP 77

static char  pgt_dir_[4200];
/* the replicas (pgt_add_replica): [1] in dir/replica, [2] in
 * dir/replica2; "" until made ([0]: unused, the primary is pgt_dir_) */
static char  pgt_replica_dir_[3][4300];
static char  pgt_conninfo_[512];
static char  pgt_replica_conninfo_[3][512];
static bool  pgt_stopped_; /* the primary's processes are SIGSTOPped */
static bool  pgt_running_;
static pid_t pgt_owner_;

/* Run a shell command line (printf-style), stdout and stderr into out
 * (outlen bytes, NUL-terminated). @return its exit status, -1 if it
 * could not run or died of a signal. */
__attribute__((unused, format(printf, 3, 4))) static int
pgt_sh(char *out, size_t outlen, const char *fmt, ...)
{
	char    cmd[8192];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(cmd, sizeof(cmd) - 8, fmt, ap);
	va_end(ap);
	CHECK(n > 0 && (size_t) n < sizeof(cmd) - 8);
	strcat(cmd, " 2>&1");
	fflush(NULL);
	FILE *f = popen(cmd, "r");
	if (f == NULL)
		return -1;
	size_t len = 0, got;
	char   scratch[4096];
	while ((got = fread(len + 1 < outlen ? out + len : scratch, 1,
	            len + 1 < outlen ? outlen - len - 1 : sizeof(scratch), f))
	    > 0)
		if (len + 1 < outlen)
			len += got;
	if (outlen > 0)
		out[len] = '\0';
	int st = pclose(f);
	return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

__attribute__((unused)) static void
pgt_stop(void)
{
	char out[4096];
	if (!pgt_running_ || getpid() != pgt_owner_)
		return;
	pgt_running_ = false;
	if (pgt_sh(out, sizeof(out), "%s/scripts/pg_cluster.sh stop %s",
	        SL_SOURCE_DIR, pgt_dir_)
	    != 0)
		fprintf(stderr, "pg_cluster.sh stop: %s\n", out);
}

/* Send sig to the test's primary server: the postmaster and every
 * process of it (SIGSTOP: a server that hangs with its connections
 * open; SIGCONT lets it go on). */
__attribute__((unused)) static void
pgt_signal_server(int sig)
{
	char  path[4400], line[32];
	FILE *f;
	snprintf(path, sizeof(path), "%s/pg/postmaster.pid", pgt_dir_);
	CHECK((f = fopen(path, "r")) != NULL);
	CHECK(fgets(line, sizeof(line), f) != NULL);
	fclose(f);
	pid_t pm = (pid_t) atoi(line);
	CHECK(pm > 0);
	snprintf(path, sizeof(path), "ps -o pid= --ppid %d", (int) pm);
	CHECK((f = popen(path, "r")) != NULL);
	if (sig == SIGSTOP)
		CHECK(kill(pm, sig) == 0); /* no new backends meanwhile */
	while (fgets(line, sizeof(line), f) != NULL)
		if (atoi(line) > 0)
			kill((pid_t) atoi(line), sig);
	pclose(f);
	if (sig != SIGSTOP)
		CHECK(kill(pm, sig) == 0);
	pgt_stopped_ = sig == SIGSTOP;
}

/* Stop (fast) whichever of the test's clusters still runs: at exit. */
static void
pgt_stop_all(void)
{
	char out[4096], pidf[4400];
	if (getpid() != pgt_owner_)
		return;
	if (pgt_stopped_) /* a stopped server does not shut down */
		pgt_signal_server(SIGCONT);
	snprintf(pidf, sizeof(pidf), "%s/pg/postmaster.pid", pgt_dir_);
	if (access(pidf, F_OK) == 0)
		pgt_stop();
	for (int i = 1; i < 3; i++) {
		snprintf(pidf, sizeof(pidf), "%s/pg/postmaster.pid",
		    pgt_replica_dir_[i]);
		if (pgt_replica_dir_[i][0] != '\0' && access(pidf, F_OK) == 0
		    && pgt_sh(out, sizeof(out),
		           "%s/scripts/pg_cluster.sh stop %s", SL_SOURCE_DIR,
		           pgt_replica_dir_[i])
		        != 0)
			fprintf(stderr, "pg_cluster.sh stop: %s\n", out);
	}
}

static void
pgt_on_signal(int sig)
{
	(void) sig;
	exit(1); /* atexit: the cluster stops */
}

/* Start the cluster again on its port (after pgt_stop). */
__attribute__((unused)) static void
pgt_restart(void)
{
	char out[4096];
	int  rc = pgt_sh(out, sizeof(out), "%s/scripts/pg_cluster.sh start %s",
	     SL_SOURCE_DIR, pgt_dir_);
	if (rc != 0) {
		fprintf(stderr, "pg_cluster.sh start: %s\n", out);
		exit(1);
	}
	pgt_running_ = true;
}

/*
 * A child that outlives a crash of the test: it waits for the test to end
 * (its pipe's write end closes with the test, however it dies: a failed
 * CHECK, SIGSEGV, ctest's SIGKILL) and stops the cluster then, so that no
 * server is left behind, and removes its files if they are still there.
 */
static void
pgt_watchdog(void)
{
	int fds[2];
	CHECK(pipe2(fds, O_CLOEXEC) == 0); /* not in the servers */
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid > 0) {
		close(fds[0]); /* the write end stays open in the test only */
		return;
	}
	int nul = open("/dev/null", O_RDWR);
	dup2(nul, STDIN_FILENO);
	dup2(nul, STDOUT_FILENO); /* ctest waits for its pipes to close */
	dup2(nul, STDERR_FILENO);
	close(fds[1]);
	setsid(); /* not in the test's process group: ctest kills that */
	char c;
	while (read(fds[0], &c, 1) < 0 && errno == EINTR)
		;
	if (access(pgt_dir_, F_OK) == 0) {
		char cmd[8800];
		/* the replicas, if any, live in pgt_dir_/replica*; a stopped
		 * (SIGSTOP) server is let go on first */
		snprintf(cmd, sizeof(cmd),
		    "for d in %s %s/replica*; do [ -f $d/pg/postmaster.pid ] && "
		    "{ p=$(head -1 $d/pg/postmaster.pid); kill -CONT $p "
		    "$(ps -o pid= --ppid $p) 2>/dev/null; "
		    "%s/scripts/pg_cluster.sh stop $d; }; done",
		    pgt_dir_, pgt_dir_, SL_SOURCE_DIR);
		if (system(cmd) != 0) {
			/* nothing to stop */
		}
		tu_rmrf(pgt_dir_); /* the big part of what is left */
	}
	_exit(0);
}

/* The conninfo line in out (a warning of a PostgreSQL program may come
 * before it), copied to conninfo (len bytes); exits when there is none. */
__attribute__((unused)) static void
pgt_take_conninfo(char *out, char *conninfo, size_t len)
{
	char *line = strstr(out, "host=");
	while (line != NULL && line != out && line[-1] != '\n')
		line = strstr(line + 1, "host=");
	if (line == NULL) {
		fprintf(stderr, "pg_cluster.sh printed no conninfo: %s\n", out);
		exit(1);
	}
	char *nl = strchr(line, '\n');
	if (nl != NULL)
		*nl = '\0';
	snprintf(conninfo, len, "%.500s", line);
}

/*
 * A cluster in dir/pg-cluster, stopped at exit (register after tu_tmpdir,
 * so that it stops before the directory goes), and by a watchdog child
 * when the test dies without its atexit handlers. Without PostgreSQL's
 * server programs the test is skipped: exit PGT_SKIP, saying why.
 * @return the libpq conninfo of its database "postgres".
 */
__attribute__((unused)) static const char *
pgt_start(const char *dir)
{
	glob_t g;
	char   out[4096];
	if (glob("/usr/lib/postgresql/*/bin/pg_ctl", 0, NULL, &g) != 0) {
		printf("SKIP: no PostgreSQL server programs (initdb, pg_ctl "
		       "under /usr/lib/postgresql/*/bin): scripts/setup.sh "
		       "installs them\n");
		exit(PGT_SKIP);
	}
	globfree(&g);
	snprintf(pgt_dir_, sizeof(pgt_dir_), "%s/pg-cluster", dir);
	pgt_owner_ = getpid();
	pgt_watchdog();
	atexit(pgt_stop_all);
	signal(SIGTERM, pgt_on_signal);
	signal(SIGINT, pgt_on_signal);
	int rc = pgt_sh(out, sizeof(out), "%s/scripts/pg_cluster.sh start %s",
	    SL_SOURCE_DIR, pgt_dir_);
	pgt_running_ = true; /* also half started: stop tries */
	if (rc != 0) {
		fprintf(stderr, "pg_cluster.sh start: %s\n", out);
		exit(1);
	}
	pgt_take_conninfo(out, pgt_conninfo_, sizeof(pgt_conninfo_));
	return pgt_conninfo_;
}

/* Run sql on the database at conninfo; with out, the first value of its
 * first row (outlen bytes; "" when none). Fails the test on an error. */
__attribute__((unused)) static void
pgt_sql(const char *conninfo, const char *sql, char *out, size_t outlen)
{
	PGconn *db = PQconnectdb(conninfo);
	if (PQstatus(db) != CONNECTION_OK) {
		fprintf(stderr, "pgt_sql: %s", PQerrorMessage(db));
		exit(1);
	}
	PGresult *r = PQexec(db, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK
	    && PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "pgt_sql: %s: %s", sql, PQerrorMessage(db));
		exit(1);
	}
	if (out != NULL)
		snprintf(out, outlen, "%s",
		    PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	PQfinish(db);
}

/*
 * Replica id (1 or 2) of cluster of (0: the primary, or a replica made
 * before): streaming (pg_basebackup -R), in pgt_dir_/replica (id 1) or
 * pgt_dir_/replica2, stopped at exit like the primary. With sync, the
 * cluster it replicates waits for it to flush each commit before it
 * answers (synchronous_standby_names), so that what was acknowledged
 * survives a failover; without, it is asynchronous. @return its conninfo.
 */
__attribute__((unused)) static const char *
pgt_add_replica(int id, int of, bool sync)
{
	char        out[4096];
	const char *of_dir  = of == 0 ? pgt_dir_ : pgt_replica_dir_[of];
	const char *of_conn = of == 0 ? pgt_conninfo_ : pgt_replica_conninfo_[of];
	CHECK(id >= 1 && id < 3 && of >= 0 && of < 3 && of != id);
	snprintf(pgt_replica_dir_[id], sizeof(pgt_replica_dir_[id]),
	    "%.4200s/replica%s", pgt_dir_, id == 1 ? "" : "2");
	int rc = pgt_sh(out, sizeof(out),
	    "%s/scripts/pg_cluster.sh replica %s %s", SL_SOURCE_DIR,
	    pgt_replica_dir_[id], of_dir);
	if (rc != 0) {
		fprintf(stderr, "pg_cluster.sh replica: %s\n", out);
		exit(1);
	}
	pgt_take_conninfo(out, pgt_replica_conninfo_[id],
	    sizeof(pgt_replica_conninfo_[id]));
	if (sync) {
		pgt_sql(of_conn,
		    "ALTER SYSTEM SET synchronous_standby_names = 'replica'",
		    NULL, 0);
		pgt_sql(of_conn, "SELECT pg_reload_conf()", NULL, 0);
		/* until the primary counts it as its synchronous standby */
		for (int i = 0;; i++) {
			char v[32];
			pgt_sql(of_conn,
			    "SELECT count(*) FROM pg_stat_replication WHERE "
			    "sync_state = 'sync'",
			    v, sizeof(v));
			if (strcmp(v, "1") == 0)
				break;
			CHECK(i < 300);
			usleep(20 * 1000);
		}
	}
	return pgt_replica_conninfo_[id];
}

/* Replica 1 of the primary (pgt_add_replica). */
__attribute__((unused)) static const char *
pgt_replica(bool sync)
{
	return pgt_add_replica(1, 0, sync);
}

/* pg_cluster.sh cmd (start, kill, promote, stop) on cluster id (0: the
 * primary; a replica's id); fails the test when it fails. */
__attribute__((unused)) static void
pgt_cluster(const char *cmd, int id)
{
	char out[4096];
	if (pgt_sh(out, sizeof(out), "%s/scripts/pg_cluster.sh %s %s",
	        SL_SOURCE_DIR, cmd, id == 0 ? pgt_dir_ : pgt_replica_dir_[id])
	    != 0) {
		fprintf(stderr, "pg_cluster.sh %s: %s\n", cmd, out);
		exit(1);
	}
	if (id == 0)
		pgt_running_ = strcmp(cmd, "start") == 0;
}

#endif
