/*
 * Account Details, remotely: the projection of plugins/account_details.c
 * (same selectors, initial state and fold), run in this process through the
 * remote client library (include/sluice/remote.h) instead of as a plugin.
 * The daemon keeps its log, checkpoints, retries and read models; this
 * program only answers its calls. Under its own id and name
 * ("remote_account_details"), so it runs beside the plugin and builds the
 * same read models.
 *
 *   remote_account_details [--url URL | --config FILE] [--id UUID]
 *                          [--name NAME] [--quiet]
 *
 * Stops on SIGINT or SIGTERM. Registers again by itself when the daemon
 * restarts.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sluice/remote.h>

#include "config.h"

#define DEFAULT_ID   "c5a0e7d2-4b1f-4c3e-8d2a-6f9b0e1d2c34"
#define DEFAULT_NAME "remote_account_details"
/* Bump when the fold changes meaning: the daemon rebuilds the read
 * models from the start of the log. */
#define VERSION 1

/* The plugin's initial state, selectors and fold, word for word. */
static const char initial_state[] = "{\"account_id\":\"\",\"type\":\"\","
                                    "\"customer\":\"\",\"name\":\"\","
                                    "\"balance\":0}";

static const sl_remote_selector selectors[] = {
	{ "DebitAccountOpened", SL_REMOTE_KEY_EVENT_SOURCE, NULL },
	{ "CustomerRegistered", SL_REMOTE_KEY_PROPERTY, "account.id" },
	{ "DebitPerformed", SL_REMOTE_KEY_PARTITION, NULL },
	{ "WithdrawalPerformed", SL_REMOTE_KEY_PROPERTY, "account_id" },
};

static int
is(const char *type, const char *name)
{
	return strcmp(type, name) == 0;
}

/* Copy a content string into the state when the event has it. */
static int
copy_str(sl_remote_call *c, const char *path, const char *key)
{
	const char *s;
	return sl_remote_get_str(c, path, &s) == SL_OK
	    ? sl_remote_set_str(c, key, s)
	    : SL_OK;
}

static sl_remote_result
on_event(void *user, sl_remote_call *c)
{
	(void) user;
	const char *type = sl_remote_event_type(c);
	const char *key  = sl_remote_key(c);
	const char *cur  = NULL;
	int         rc   = SL_OK;

	/* Every event for this key belongs to account <key>, whichever
	 * event arrives first. */
	if (sl_remote_state_str(c, "account_id", &cur) != SL_OK
	    || cur[0] == '\0')
		rc = sl_remote_set_str(c, "account_id", key);

	if (rc == SL_OK && is(type, "DebitAccountOpened")) {
		rc = copy_str(c, "account_id", "account_id");
		if (rc == SL_OK)
			rc = sl_remote_set_str(c, "type", "debit");
		if (rc == SL_OK)
			rc = copy_str(c, "name", "name");
	} else if (rc == SL_OK && is(type, "CustomerRegistered")) {
		rc = copy_str(c, "name", "customer");
	} else if (rc == SL_OK
	    && (is(type, "DebitPerformed")
	        || is(type, "WithdrawalPerformed"))) {
		int64_t amount, balance = 0;
		int     arc = sl_remote_get_i64(c, "amount", &amount);
		if (arc != SL_OK)
			return sl_remote_fail(c, true, 0,
			    "%s at position %llu: %s", type,
			    (unsigned long long) sl_remote_event_position(c),
			    arc == SL_ENOTFOUND
			        ? "content has no 'amount'"
			        : "'amount' is not an integer");
		sl_remote_state_i64(c, "balance", &balance);
		if (is(type, "WithdrawalPerformed")
		        ? __builtin_sub_overflow(balance, amount, &balance)
		        : __builtin_add_overflow(balance, amount, &balance))
			return sl_remote_fail(c, true, 0,
			    "%s at position %llu: balance overflows", type,
			    (unsigned long long) sl_remote_event_position(c));
		rc = sl_remote_set_i64(c, "balance", balance);
	}
	if (rc != SL_OK)
		return sl_remote_fail(c, true, 0,
		    "%s: cannot update the state (error %d)", type, rc);
	return SL_REMOTE_REPLACE;
}

static sl_remote *running;

static void
on_signal(int sig)
{
	(void) sig;
	sl_remote_stop(running);
}

static void
log_stderr(void *user, int level, const char *msg)
{
	static const char *const names[]
	    = { "error", "warn", "info", "debug" };
	if (level > *(int *) user)
		return;
	fprintf(stderr, "remote_account_details: %s: %s\n",
	    level >= 0 && level <= 3 ? names[level] : "?", msg);
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: remote_account_details [--url URL | --config FILE] "
	    "[--id UUID] [--name NAME] [--protocol 1|2] [--quiet]\n"
	    "       [--tls-ca FILE] [--tls-server-name NAME] "
	    "[--tls-cert FILE --tls-key FILE]\n"
	    "The endpoint is --url, else $SLUICE_URL, else endpoints.api of "
	    "the\nconfig file (--config, default ./resources.yaml). A daemon "
	    "with auth: takes\nthe token from $SLUICE_TOKEN. TLS (tls+tcp://) "
	    "as the sluice CLI:\n--tls-* or $SLUICE_TLS_CA, _SERVER_NAME, "
	    "_CERT, _KEY, _KEY_PASSWORD.\n");
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "config", required_argument, NULL, 'c' },
		{ "id", required_argument, NULL, 'i' },
		{ "name", required_argument, NULL, 'n' },
		{ "protocol", required_argument, NULL, 'p' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "tls-ca", required_argument, NULL, 'A' },
		{ "tls-server-name", required_argument, NULL, 'S' },
		{ "tls-cert", required_argument, NULL, 'C' },
		{ "tls-key", required_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *url = NULL, *config = NULL;
	const char *id = DEFAULT_ID, *name = DEFAULT_NAME;
	int         level    = SL_REMOTE_LOG_INFO, opt;
	uint32_t    protocol = 0; /* the library's default: 2 */
	char       *cfg_url  = NULL;
	/* TLS: the flags, else the environment (as the CLI's) */
	sl_tls_options tls = {
		.ca_file      = getenv("SLUICE_TLS_CA"),
		.server_name  = getenv("SLUICE_TLS_SERVER_NAME"),
		.cert_file    = getenv("SLUICE_TLS_CERT"),
		.key_file     = getenv("SLUICE_TLS_KEY"),
		.key_password = getenv("SLUICE_TLS_KEY_PASSWORD"),
	};

	while ((opt = getopt_long(argc, argv, "u:c:i:n:p:qh", longopts, NULL))
	    != -1) {
		switch (opt) {
		case 'u':
			url = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'i':
			id = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 'p':
			protocol = (uint32_t) strtoul(optarg, NULL, 10);
			break;
		case 'q':
			level = SL_REMOTE_LOG_WARN;
			break;
		case 'A':
			tls.ca_file = optarg;
			break;
		case 'S':
			tls.server_name = optarg;
			break;
		case 'C':
			tls.cert_file = optarg;
			break;
		case 'K':
			tls.key_file = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (url == NULL && getenv("SLUICE_URL") != NULL
	    && getenv("SLUICE_URL")[0] != '\0')
		url = getenv("SLUICE_URL");
	if (url == NULL) {
		sl_config *cfg;
		char       err[512];
		if (config == NULL)
			config = "resources.yaml";
		if (config_load(config, &cfg, err, sizeof(err)) != 0) {
			fprintf(stderr, "remote_account_details: %s\n", err);
			return 1;
		}
		url = cfg_url = strdup(cfg->api_url);
		config_free(cfg);
	}

	sl_remote_projection def = {
		.id                 = id,
		.scope              = NULL,
		.name               = name,
		.version            = VERSION,
		.initial_state_json = initial_state,
		.selectors          = selectors,
		.n_selectors        = sizeof(selectors) / sizeof(selectors[0]),
		.on                 = on_event,
		.user               = NULL,
	};
	/* a daemon with auth: wants a token (docs/security.md) */
	sl_remote_options opts = { .log = log_stderr,
		.log_user               = &level,
		.protocol               = protocol,
		.token                  = getenv("SLUICE_TOKEN"),
		.tls                    = &tls };
	sl_remote *r;
	int        rc = sl_remote_register_projection(url, &def, &opts, &r);
	if (rc != SL_OK) {
		fprintf(stderr, "remote_account_details: %s: %s\n",
		    sl_errname(rc), sl_remote_open_error());
		free(cfg_url);
		return 2;
	}
	running = r;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (level >= SL_REMOTE_LOG_INFO)
		fprintf(stderr,
		    "remote_account_details: projection '%s' (%s) registered "
		    "with %s\n",
		    name, id, url);
	rc = sl_remote_run(r);
	sl_remote_close(r);
	free(cfg_url);
	if (rc != SL_OK) {
		fprintf(stderr, "remote_account_details: stopped: %s\n",
		    sl_errname(rc));
		return 2;
	}
	return 0;
}
