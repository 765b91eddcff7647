/*
 * An out-of-tree client, built against an installed Sluice (pkg-config
 * sluice-client, or find_package(Sluice)) by tests/install_test.sh:
 * commits an account's events and waits for the account_details read
 * model to show its balance.
 *   usage: oot_client URL TENANT ACCOUNT
 * Prints the read model's JSON; exit 0 when its balance is 1150.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sluice/client.h>

int
main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: oot_client URL TENANT ACCOUNT\n");
		return 1;
	}
	const char *tenant = argv[2], *acc = argv[3];
	sl_client  *c;
	if (sl_client_open(argv[1], 5000, &c) != SL_OK) {
		fprintf(stderr, "oot_client: %s\n", sl_client_open_error());
		return 1;
	}
	char opened[256], debit[256], withdrawal[256];
	snprintf(opened, sizeof(opened),
	    "{\"account_id\":\"%s\",\"customer_id\":\"c1\",\"name\":\"x\"}", acc);
	snprintf(debit, sizeof(debit),
	    "{\"customer_id\":\"c1\",\"amount\":1200}");
	snprintf(withdrawal, sizeof(withdrawal),
	    "{\"account_id\":\"%s\",\"customer_id\":\"c1\",\"amount\":50}", acc);
	sl_new_event evs[3] = {
		{ .type = "DebitAccountOpened", .content_json = opened },
		{ .type = "DebitPerformed", .content_json = debit },
		{ .type = "WithdrawalPerformed", .content_json = withdrawal },
	};
	sl_commit_result res;
	int rc = sl_client_commit(c, tenant, acc, SL_EXPECT_NO_STREAM, evs, 3,
	    &res);
	if (rc != SL_OK) {
		fprintf(stderr, "oot_client: commit: %s\n", sl_strerror(rc));
		sl_client_close(c);
		return 1;
	}
	/* the projection folds asynchronously: wait up to 10 s */
	int ok = 1;
	for (int i = 0; i < 200 && ok != 0; i++) {
		char *state = NULL;
		bool  found = false;
		rc = sl_client_get_one(
		    c, tenant, "account_details", acc, &state, &found);
		if (rc == SL_OK && found && strstr(state, "\"balance\":1150")) {
			printf("%s\n", state);
			ok = 0;
		}
		sl_client_free(state);
		if (ok != 0) {
			struct timespec ts = { 0, 50 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
	}
	if (ok != 0)
		fprintf(stderr, "oot_client: no balance 1150 for %s (rc %s)\n",
		    acc, sl_strerror(rc));
	sl_client_close(c);
	return ok;
}
