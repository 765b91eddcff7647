/*
 * Shared by the live feed tests that run sluiced as a process: a config in
 * the test's temp dir, start / kill / stop the daemon, wait until it
 * answers, and children that die with the test.
 */
#ifndef SL_FEED_TESTUTIL_H
#define SL_FEED_TESTUTIL_H

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

#include <sluice/client.h>

#include "daemon_testutil.h"

#define FT_TENANT       "t1"
#define FT_READY_MAX_MS 15000
#define FT_STOP_MAX_MS  10000

static char  ft_cfg_path[4200];
static char  ft_log_path[4200];
static char  ft_api_url[4200];
static char  ft_pub_url[4200];
static char  ft_sluiced[4200];
static char  ft_sluice[4200];
static pid_t ft_daemon = -1;
static pid_t ft_test_pid;
static pid_t ft_children[8];

/* Fail the test, showing the daemon's log. */
#define FT_FAIL(...) DT_FAIL_LOG(ft_log_path, __VA_ARGS__)

/* atexit: runs before tu_tmpdir's removal (registered after it). */
__attribute__((unused)) static void
ft_cleanup(void)
{
	if (getpid() != ft_test_pid)
		return;
	for (size_t i = 0; i < sizeof(ft_children) / sizeof(pid_t); i++)
		dt_kill_and_reap(&ft_children[i]);
	dt_kill_and_reap(&ft_daemon);
}

/* Fork a child running fn(arg) and exiting with its result; it is killed
 * at exit if still running. */
__attribute__((unused)) static pid_t
ft_fork(int (*fn)(void *), void *arg)
{
	pid_t  parent = getpid(), pid;
	size_t slot;

	for (slot = 0; slot < sizeof(ft_children) / sizeof(pid_t); slot++)
		if (ft_children[slot] <= 0)
			break;
	CHECK(slot < sizeof(ft_children) / sizeof(pid_t));
	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		dt_child_setup(parent);
		_exit(fn(arg));
	}
	ft_children[slot] = pid;
	return pid;
}

/* Forget a child that was reaped. */
__attribute__((unused)) static void
ft_forget(pid_t pid)
{
	for (size_t i = 0; i < sizeof(ft_children) / sizeof(pid_t); i++)
		if (ft_children[i] == pid)
			ft_children[i] = -1;
}

/* Set the paths and write resources.yaml; extra_yaml is appended. */
__attribute__((unused)) static void
ft_setup(const char *extra_yaml)
{
	const char *dir = tu_tmpdir();
	char        text[16384];

	ft_test_pid = getpid();
	for (size_t i = 0; i < sizeof(ft_children) / sizeof(pid_t); i++)
		ft_children[i] = -1;
	snprintf(ft_sluiced, sizeof(ft_sluiced), "%s/sluiced", SL_BUILD_DIR);
	snprintf(ft_sluice, sizeof(ft_sluice), "%s/sluice", SL_BUILD_DIR);
	CHECK(access(ft_sluiced, X_OK) == 0);
	snprintf(ft_cfg_path, sizeof(ft_cfg_path), "%s/resources.yaml", dir);
	snprintf(ft_log_path, sizeof(ft_log_path), "%s/sluiced.log", dir);
	snprintf(ft_api_url, sizeof(ft_api_url), "ipc://%s/api.ipc", dir);
	snprintf(ft_pub_url, sizeof(ft_pub_url), "ipc://%s/pub.ipc", dir);
	snprintf(text, sizeof(text),
	    "data_dir: %s/data\n"
	    "plugin_dir: %s/no-plugins\n"
	    "log_level: info\n"
	    "endpoints:\n"
	    "  api: %s\n"
	    "  pub: %s\n"
	    "tenants:\n"
	    "  - id: " FT_TENANT "\n"
	    "  - id: t2\n"
	    "%s",
	    dir, dir, ft_api_url, ft_pub_url,
	    extra_yaml != NULL ? extra_yaml : "");
	tu_write_file(ft_cfg_path, text);
	snprintf(text, sizeof(text), "%s/no-plugins", dir);
	CHECK(mkdir(text, 0755) == 0);
	atexit(ft_cleanup); /* after tu_tmpdir's: runs before the removal */
}

__attribute__((unused)) static void
ft_daemon_start(void)
{
	ft_daemon = dt_daemon_spawn(ft_cfg_path, ft_log_path);
}

/* Poll status until the daemon answers. */
__attribute__((unused)) static void
ft_daemon_wait_ready(void)
{
	int64_t end = dt_now_ms() + FT_READY_MAX_MS;
	for (;;) {
		sl_client *c;
		int        status;
		if (dt_waitpid(ft_daemon, &status, WNOHANG) == ft_daemon) {
			ft_daemon = -1;
			FT_FAIL(
			    "sluiced exited on its own: status 0x%x", status);
		}
		if (sl_client_open(ft_api_url, 1000, &c) == SL_OK) {
			char *json = NULL;
			int   rc   = sl_client_status(c, &json);
			sl_client_free(json);
			sl_client_close(c);
			if (rc == SL_OK)
				return;
		}
		if (dt_now_ms() > end)
			FT_FAIL("sluiced did not answer within %d ms",
			    FT_READY_MAX_MS);
		dt_sleep_ms(20);
	}
}

__attribute__((unused)) static void
ft_daemon_kill(void)
{
	int status;
	CHECK(ft_daemon > 0);
	CHECK(kill(ft_daemon, SIGKILL) == 0);
	CHECK(dt_waitpid(ft_daemon, &status, 0) == ft_daemon);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	ft_daemon = -1;
}

/* SIGTERM; the daemon must exit 0. */
__attribute__((unused)) static void
ft_daemon_stop(void)
{
	int status;
	CHECK(ft_daemon > 0);
	CHECK(kill(ft_daemon, SIGTERM) == 0);
	if (!dt_wait_exit(ft_daemon, FT_STOP_MAX_MS, &status))
		FT_FAIL("sluiced did not stop within %d ms of SIGTERM",
		    FT_STOP_MAX_MS);
	ft_daemon = -1;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		FT_FAIL(
		    "sluiced exited with status 0x%x after SIGTERM", status);
}

#endif
