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
static char  pgt_conninfo_[512];
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
		snprintf(cmd, sizeof(cmd),
		    "[ -f %s/pg/postmaster.pid ] && %s/scripts/pg_cluster.sh "
		    "stop %s",
		    pgt_dir_, SL_SOURCE_DIR, pgt_dir_);
		if (system(cmd) != 0) {
			/* nothing to stop */
		}
		tu_rmrf(pgt_dir_); /* the big part of what is left */
	}
	_exit(0);
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
	atexit(pgt_stop);
	signal(SIGTERM, pgt_on_signal);
	signal(SIGINT, pgt_on_signal);
	int rc = pgt_sh(out, sizeof(out), "%s/scripts/pg_cluster.sh start %s",
	    SL_SOURCE_DIR, pgt_dir_);
	pgt_running_ = true; /* also half started: stop tries */
	if (rc != 0) {
		fprintf(stderr, "pg_cluster.sh start: %s\n", out);
		exit(1);
	}
	/* the conninfo line (a warning of a PostgreSQL program may come
	 * before it) */
	char *line = strstr(out, "host=");
	while (line != NULL && line != out && line[-1] != '\n')
		line = strstr(line + 1, "host=");
	if (line == NULL) {
		fprintf(stderr, "pg_cluster.sh start printed no conninfo: %s\n",
		    out);
		exit(1);
	}
	char *nl = strchr(line, '\n');
	if (nl != NULL)
		*nl = '\0';
	snprintf(pgt_conninfo_, sizeof(pgt_conninfo_), "%.500s", line);
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

#endif
