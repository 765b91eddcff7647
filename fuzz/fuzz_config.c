/*
 * libFuzzer target: resources.yaml. Any bytes either load (and free) or
 * are refused with SL_ECONFIG and a message naming where; nothing else,
 * nothing created on the way.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sluice/errors.h>

#include "config.h"

static char path[4096];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void) argc;
	(void) argv;
	char dir[] = "/tmp/sl_fuzz_config.XXXXXX";
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(path, sizeof(path), "%s/resources.yaml", dir);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0)
		abort();
	sl_config *cfg = NULL;
	char       err[1024] = "";
	int        rc = config_load(path, &cfg, err, sizeof(err));
	if (rc == SL_OK) {
		config_free(cfg);
	} else if (rc != SL_ECONFIG && rc != SL_ENOMEM) {
		fprintf(stderr, "fuzz_config: config_load returned %d\n", rc);
		abort();
	} else if (rc == SL_ECONFIG && err[0] == '\0') {
		fprintf(stderr, "fuzz_config: refused without a message\n");
		abort();
	}
	return 0;
}
