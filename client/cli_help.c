/*
 * The CLI's help: per command, its synopsis, the options it takes (an
 * option of another command is an error) and what it does and prints.
 */
#include "cli_help.h"

#include <stdio.h>
#include <string.h>

/* clang-format off */
static const cli_help helps[] = {
{ "commit",
  "commit --tenant T --stream S [--expect any|none|N] --type TYPE\n"
  "       [--public] [--metadata JSON] [--correlation-id ID]\n"
  "       [CONTENT_JSON | -]\n"
  "commit --tenant T --stream S [--expect any|none|N] --batch [FILE | -]\n",
  "tenant stream expect type public metadata correlation-id batch",
  "Commits one event (its content as the argument, or - for stdin), or\n"
  "with --batch the events read from FILE (or stdin): a JSON array, or\n"
  "JSON Lines (one event per line), each event {\"type\": T,\n"
  "\"content\": {...}, \"metadata\": {...}?, \"public\": bool?,\n"
  "\"correlation_id\": ID?}; all of them commit in one transaction, or\n"
  "none (an error names the line). --expect: any (the default), none\n"
  "(the stream must not exist) or the stream's last revision. Prints\n"
  "{first_position, last_position, first_revision, count}.\n" },
{ "delete-stream",
  "delete-stream --tenant T --stream S [--expect any|N]\n"
  "       [--truncate-before R]\n",
  "tenant stream expect truncate-before",
  "Soft-deletes a stream: reads no longer show its events (they stay in\n"
  "the log); a later commit continues its revisions (--expect the last\n"
  "one). With --truncate-before R it hides only the revisions below R.\n"
  "Prints {position (of the $streamDeleted or $streamTruncated event in\n"
  "stream $deleted), revision (the stream's last), truncate_before}.\n" },
{ "read",
  "read [--from P] [--max N] [--tenant T --stream S [--from-revision R]]\n"
  "       [--resolve-links]\n"
  "read --filter ID_OR_NAME --tenant T [--partition P] [--from N]\n"
  "       [--max N]\n",
  "from max tenant stream from-revision resolve-links filter partition",
  "Prints the log from position P (or a stream from revision R), one\n"
  "JSON line per event, with occurred_utc beside occurred.\n"
  "--resolve-links answers each link event (type \"$>\", as the system\n"
  "projections write into $ce-..., $et-... streams) as the event it\n"
  "points at, with \"link\": {position, stream, revision} of the link\n"
  "itself (\"unresolved\": true if its target is gone). --filter prints\n"
  "a filter's stream (or one --partition of it) from stream position N\n"
  "on, each line with its stream_position (and partition).\n" },
{ "get-one",
  "get-one --tenant T --projection ID_OR_NAME KEY\n",
  "tenant projection",
  "Prints {key, found, state}: found is false when KEY has no read\n"
  "model, and state is then the projection's initial state. KEY\n"
  "'$shared' reads a bi-state projection's shared state.\n" },
{ "get-all",
  "get-all --tenant T --projection ID_OR_NAME\n",
  "tenant projection",
  "Prints every read model of the projection: [{key, state}], in key\n"
  "order.\n" },
{ "query",
  "query ID_OR_NAME --tenant T [--key K] [--follow]\n"
  "query --js FILE --tenant T [--key K] [--follow]\n",
  "tenant key follow js",
  "Runs a projection over the tenant's log once, to its head, and prints\n"
  "{position, states: [{key, state, result?}]} (with --key only that\n"
  "key). --follow runs it as a transient projection instead: it prints\n"
  "{position, head, states} as one JSON line whenever the states change,\n"
  "until SIGINT or SIGTERM, then ends the run. The daemon stops a\n"
  "one-time query after limits.query_timeout_ms (10 s); query waits\n"
  "120 s for its answer unless --timeout says otherwise. With --js FILE\n"
  "(- for stdin) the projection is a JavaScript file that is not loaded\n"
  "(docs/javascript.md, Queries): the daemon loads it for this query\n"
  "only, named for FILE, and unloads it afterwards; a script that does\n"
  "not load (\"file.js:3: SyntaxError: ...\") or declares emits is\n"
  "refused, exit 2. The script must fit one request\n"
  "(limits.max_request_bytes, 4 MiB by default). On a terminal a\n"
  "one-time query shows its progress (position / head, events/s, ETA,\n"
  "from status' queries) while it runs.\n" },
{ "status",
  "status\n",
  "",
  "Prints the daemon's state: the log's head, the API's connections,\n"
  "tenants, plugins, projections, remote processors, and each\n"
  "processor's position, failing partitions (reason, attempts, next\n"
  "try), mode, status (running, stopped, faulted, waiting: with\n"
  "status_reason), progress and buffer; *_utc beside each *_ns time.\n" },
{ "plugins",
  "plugins\n",
  "",
  "Prints the plugin files, their versions, load times and errors.\n" },
{ "subscribe",
  "subscribe [--from P | --tenant T --stream S [--from-revision R]]\n"
  "       [--count N] [--idle-ms MS] [--pub-url URL]\n"
  "subscribe --tenant T --filter ID_OR_NAME [--partition P] [--from N]\n"
  "       [--count N] [--idle-ms MS] [--pub-url URL]\n",
  "from tenant stream from-revision count idle-ms pub-url filter "
  "partition",
  "Prints the events from P (or revision R) on, then follows the live\n"
  "feed (the daemon's status names it; or --pub-url), one JSON line per\n"
  "event, each exactly once, also across daemon restarts. It ends after\n"
  "N events (--count) or MS quiet milliseconds (--idle-ms). With\n"
  "--filter it follows a filter's stream (or one --partition of it) from\n"
  "stream position N, each line with its stream_position; a rebuilt\n"
  "whole stream ends it (ECLOSED: subscribe again from 0).\n" },
#define WAIT_TEXT                                                          \
  " --wait then waits until they reach the log's head as it was, with\n"  \
  "a progress line on a terminal (position / head, events/s, ETA) and a\n" \
  "final JSON line {waited, position, head, processors, seconds,\n"        \
  "events_per_sec}.\n"
#define OPERATOR(name, what, wait, opts, more)                             \
{ name, name " ID_OR_NAME [--tenant T]" wait "\n", opts,                   \
  what " the processors of a projection or filter, of one tenant\n"       \
  "(--tenant) or of all." more }
OPERATOR("reset", "Rebuilds from position 0", " [--wait]", "tenant wait",
         WAIT_TEXT),
OPERATOR("retry", "Retries the failing events now, of", " [--wait]",
         "tenant wait", WAIT_TEXT),
OPERATOR("pause", "Stops processing (kept across restarts), of", "",
         "tenant", "\n"),
OPERATOR("resume", "Goes on processing, after pause, of", " [--wait]",
         "tenant wait", WAIT_TEXT),
OPERATOR("start", "EventStoreDB's name for resume (also for the system\n"
         "projections: sluice start '$by_category'), of", " [--wait]",
         "tenant wait", WAIT_TEXT),
OPERATOR("stop", "EventStoreDB's name for pause, of", "", "tenant", "\n"),
#undef OPERATOR
#undef WAIT_TEXT
{ "spec",
  "spec FILE [--plugin FILE] [--projection NAME] [--js-host PATH]\n",
  "plugin projection js-host",
  "Runs a projection (a .js, or a .so's projection NAME) over the events\n"
  "of an EventStoreDB-style spec file in this process (no daemon: a\n"
  "temporary log) and compares the states, results and emitted streams\n"
  "with the spec's output; it prints each difference and exits 4 on one,\n"
  "1 on a bad spec or a projection that does not load, 0 when all match\n"
  "(docs/javascript.md, Specs). --plugin runs FILE (a .js or .so)\n"
  "instead of the spec's \"projection\".\n" },
{ "auth",
  "auth hash-token [TOKEN | -]\n"
  "auth new-token\n",
  "",
  "Tokens for a daemon with an auth: section (docs/security.md), no\n"
  "daemon needed. new-token prints {token, token_sha256}: a random token\n"
  "(32 random bytes) and the SHA-256 to put in resources.yaml as\n"
  "auth.tokens[].token_sha256. hash-token prints the token_sha256 of\n"
  "TOKEN, or of the first line of stdin (without TOKEN, or with -, which\n"
  "keeps the token out of the process list).\n" },
};
/* clang-format on */

#define N_HELPS (sizeof(helps) / sizeof(helps[0]))

static const char globals[]
    = "Options of every command: --url URL, --config FILE, --timeout MS,\n"
      "--token TOKEN, --token-file FILE, --tls-ca FILE, --tls-cert FILE,\n"
      "--tls-key FILE, --tls-server-name NAME.\n"
      "The endpoint is --url, else $SLUICE_URL, else endpoints.api of the\n"
      "config file (--config, default ./resources.yaml). $SLUICE_TENANT\n"
      "can stand in for --tenant. A daemon with an auth: section wants a\n"
      "token in every request (docs/security.md): --token, else the first\n"
      "line of --token-file, else $SLUICE_TOKEN. Exit status: 0 ok, 1\n"
      "usage, 2 error reply (EACCES: the token may not), 3 cannot reach\n"
      "the daemon (spec: 4, a difference), 5 EUNAVAILABLE (the daemon's\n"
      "PostgreSQL log cannot be reached: nothing written, retry).\n"
      "TLS, for a tls+tcp:// endpoint (docs/security.md): --tls-ca FILE\n"
      "(the CA of the daemon's certificate; required), --tls-server-name\n"
      "NAME (default: the URL's host), and for mutual TLS --tls-cert FILE\n"
      "--tls-key FILE; or $SLUICE_TLS_CA, $SLUICE_TLS_SERVER_NAME,\n"
      "$SLUICE_TLS_CERT, $SLUICE_TLS_KEY. An encrypted key's password is\n"
      "read from $SLUICE_TLS_KEY_PASSWORD only (ps shows flags).\n";

const cli_help *
cli_help_find(const char *name)
{
	for (size_t i = 0; i < N_HELPS; i++)
		if (strcmp(helps[i].name, name) == 0)
			return &helps[i];
	return NULL;
}

bool
cli_help_allows(const cli_help *h, const char *option)
{
	size_t n = strlen(option);
	for (const char *p = h->options; *p != '\0';) {
		size_t w = strcspn(p, " ");
		if (w == n && strncmp(p, option, n) == 0)
			return true;
		p += w;
		p += strspn(p, " ");
	}
	return false;
}

/* A synopsis' lines: each form's first line after lead, its
 * continuation lines (indented in the text) after two spaces. */
static void
print_synopsis(FILE *f, const cli_help *h, const char *lead)
{
	for (const char *line = h->synopsis; *line != '\0';) {
		size_t len = strcspn(line, "\n");
		fprintf(f, "%s%.*s\n", line[0] == ' ' ? "  " : lead, (int) len,
		    line);
		line += len + (line[len] == '\n');
	}
}

void
cli_help_all(FILE *f)
{
	fputs("usage: sluice [--url URL] [--config FILE] [--timeout MS]\n"
	      "              [--token TOKEN | --token-file FILE] [--tls-* ...]\n"
	      "              COMMAND ...\n"
	      "       sluice --version\n"
	      "       sluice help COMMAND   (or sluice COMMAND --help)\n\n",
	    f);
	for (size_t i = 0; i < N_HELPS; i++)
		print_synopsis(f, &helps[i], "  ");
	fputc('\n', f);
	fputs(globals, f);
	fputs("sluice help COMMAND: what a command does and prints.\n", f);
}

void
cli_help_one(FILE *f, const cli_help *h)
{
	fputs("usage (and --url URL, --config FILE, --timeout MS, --token "
	      "TOKEN,\n--token-file FILE):\n",
	    f);
	print_synopsis(f, h, "  sluice ");
	fputc('\n', f);
	fputs(h->text, f);
	fputc('\n', f);
	fputs(globals, f);
}
