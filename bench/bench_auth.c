/*
 * What authentication costs a request (issue 18, docs/security.md): three
 * sluiced processes on one machine, without auth:, with one credential and
 * with 100, each asked by one client for 1-event commits (sync false) and
 * stream reads in rounds that alternate between them; per round the auth
 * / no-auth time per request. Prints "key value" lines; not part of
 * run.sh. Usage: bench_auth --sluiced PATH --dir DIR [--runs R] [--n N]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/client.h>

#include "auth.h"
#include "common.h"
#include "daemon.h"
#include "workload.h"

#define MODES 3
static const char *const mode_name[MODES] = { "none", "auth1", "auth100" };

/* Append an auth: section of n credentials; the last one's token is
 * the client's (the lookup compares with every one anyway). */
static void
add_auth(bench_daemon *d, int n)
{
	FILE *f = fopen(d->cfg, "a");
	if (f == NULL)
		bench_die("open %s", d->cfg);
	fprintf(f, "auth:\n  tokens:\n");
	for (int i = 0; i < n; i++) {
		char tok[64], hex[65];
		snprintf(
		    tok, sizeof(tok), "bench-token-%04d-xxxxxxxxxxxxxxxx", i);
		auth_hash_hex(tok, strlen(tok), hex);
		fprintf(f,
		    "  - name: c%d\n    token_sha256: %s\n    tenants: "
		    "[" WL_TENANT "]\n    roles: [read, write]\n",
		    i, hex);
		if (i == n - 1)
			snprintf(d->token, sizeof(d->token), "%s", tok);
	}
	fclose(f);
}

/* ns per request of n commits, then of n reads */
static void
round_trip(sl_client *c, int n, double *commit_ns, double *read_ns)
{
	sl_new_event   ev = { .type = "Bench", .content_json = "{\"n\":1}" };
	sl_read_result res;
	uint64_t       t0 = bench_now_ns();
	for (int i = 0; i < n; i++)
		if (sl_client_commit(c, WL_TENANT, "auth-bench", SL_EXPECT_ANY,
		        &ev, 1, NULL)
		    != SL_OK)
			bench_die("commit: %s", sl_client_last_error(c));
	uint64_t t1 = bench_now_ns();
	for (int i = 0; i < n; i++) {
		if (sl_client_read_stream(
		        c, WL_TENANT, "auth-bench", (uint64_t) i, 1, &res)
		    != SL_OK)
			bench_die("read: %s", sl_client_last_error(c));
		sl_read_result_free(&res);
	}
	uint64_t t2 = bench_now_ns();
	*commit_ns  = (double) (t1 - t0) / n;
	*read_ns    = (double) (t2 - t1) / n;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *) a, y = *(const double *) b;
	return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
	qsort(v, (size_t) n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int
main(int argc, char **argv)
{
	static const struct option lo[]    = { { "sluiced", 1, NULL, 's' },
		   { "dir", 1, NULL, 'd' }, { "runs", 1, NULL, 'r' },
		   { "n", 1, NULL, 'n' }, { NULL, 0, NULL, 0 } };
	const char                *sluiced = NULL, *dir = NULL;
	int                        runs = 7, n = 2000, ch;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (ch == 's')
			sluiced = optarg;
		else if (ch == 'd')
			dir = optarg;
		else if (ch == 'r')
			runs = atoi(optarg);
		else if (ch == 'n')
			n = atoi(optarg);
		else
			sluiced = NULL, dir = NULL;
	}
	if (sluiced == NULL || dir == NULL || runs < 1 || runs > 100
	    || n < 1) {
		fprintf(stderr,
		    "usage: bench_auth --sluiced PATH --dir DIR "
		    "[--runs R] [--n N]\n");
		return 1;
	}
	bench_handle_signals();
	bench_daemon d[MODES];
	sl_client   *c[MODES];
	for (int m = 0; m < MODES; m++) {
		char sub[1100];
		snprintf(sub, sizeof(sub), "%s/%s", dir, mode_name[m]);
		bench_mkdirs(sub);
		daemon_init(&d[m], sluiced, sub, false);
		if (m > 0)
			add_auth(&d[m], m == 1 ? 1 : 100);
		daemon_start(&d[m]);
		c[m] = daemon_client(&d[m]);
		double a, b;
		round_trip(c[m], n / 4 + 1, &a, &b); /* warm-up */
	}
	double cns[MODES][100], rns[MODES][100];
	double cratio[MODES][100], rratio[MODES][100];
	for (int r = 0; r < runs; r++) {
		/* alternate the order too, so no daemon always goes first */
		for (int k = 0; k < MODES; k++) {
			int m = (r % 2 == 0) ? k : MODES - 1 - k;
			round_trip(c[m], n, &cns[m][r], &rns[m][r]);
		}
		for (int m = 1; m < MODES; m++) {
			cratio[m][r] = cns[m][r] / cns[0][r];
			rratio[m][r] = rns[m][r] / rns[0][r];
		}
	}
	bench_out("auth_runs", runs);
	bench_out("auth_requests_per_round", n);
	for (int m = 0; m < MODES; m++) {
		bench_outf(median(cns[m], runs) / 1000.0, "auth_%s_commit_us",
		    mode_name[m]);
		bench_outf(median(rns[m], runs) / 1000.0, "auth_%s_read_us",
		    mode_name[m]);
		if (m > 0) {
			bench_outf(median(cratio[m], runs),
			    "auth_%s_commit_ratio", mode_name[m]);
			bench_outf(median(rratio[m], runs),
			    "auth_%s_read_ratio", mode_name[m]);
		}
	}
	/* the lookup alone, in this process: 100 credentials */
	{
		sl_config cfg;
		cfg_cred  creds[100];
		memset(&cfg, 0, sizeof(cfg));
		memset(creds, 0, sizeof(creds));
		for (int i = 0; i < 100; i++) {
			char tok[64];
			snprintf(tok, sizeof(tok), "t%d", i);
			auth_sha256(tok, strlen(tok), creds[i].token_hash);
			creds[i].has_token = true;
		}
		cfg.creds    = creds;
		cfg.n_creds  = 100;
		uint64_t t0  = bench_now_ns();
		int      hit = 0;
		for (int i = 0; i < 200000; i++)
			hit += auth_identify(&cfg, "t99", 3) != NULL;
		bench_out("auth_identify_100_ns",
		    (double) (bench_now_ns() - t0) / 200000);
		if (hit != 200000)
			bench_die("lookup failed");
	}
	for (int m = 0; m < MODES; m++) {
		sl_client_close(c[m]);
		daemon_stop(&d[m]);
	}
	return 0;
}
