/*
 * A plugin built for ABI 1.2 (tests/plugins/legacy_flat.c) stores the very
 * bytes a 1.2 host stored: the real processor folds its events over a real
 * log into a real read-model store, and each stored state equals, byte for
 * byte, the state the 1.2 host (before the state became a document)
 * wrote for the same events. The expected bytes were recorded from that
 * host. They cover the flat setters, keys with dots, nil and removed
 * fields, a nested initial state kept as it was, and the 1.0 path rules
 * of content_str / metadata_str.
 */
#include "projection_testutil.h"

#define PROJ "5d0c7a3e-91b2-4c6f-8e1a-0b9d2f3c4a51"

/* The stored state of key as lower-case hex (malloc'ed). */
static char *
stored_hex(rmstore *rm, const char *key)
{
	char  *data;
	size_t len;
	CHECK_EQ(rm_get(rm, PROJ, key, strlen(key), &data, &len), SL_OK);
	char *hex = malloc(len * 2 + 1);
	CHECK(hex != NULL);
	for (size_t i = 0; i < len; i++)
		snprintf(hex + 2 * i, 3, "%02x", (unsigned char) data[i]);
	hex[len * 2] = '\0';
	free(data);
	return hex;
}

static void
check_bytes(rmstore *rm, const char *key, const char *want)
{
	char *hex = stored_hex(rm, key);
	if (strcmp(hex, want) != 0) {
		fprintf(stderr,
		    "state of %s changed:\n  stored %s\n  1.2    %s\n", key,
		    hex, want);
		exit(1);
	}
	free(hex);
}

/* Recorded from the ABI 1.2 host for the events below. */
static const char want_flat1[]
    = "8ea16e03a66e657374656481a1789401cb4004000000000000a17381a179c0a4"
      "746d703290a3612e62a176a5726174696fcb3fe8000000000000a46576656ec2"
      "a5782e792e7ad2ffd23940aa726d5f6d697373696e6702ab636f6e74656e7420"
      "612e62a66e6573746564af636f6e74656e7420746167735b305da76c69746572"
      "616cae636f6e74656e74206c6973742e30a472632032ac6d6574616461746120"
      "6d2e6ba26d6bb0636f6e74656e745f693634206c69737401a4636f7079a176";
static const char want_flat2[]
    = "8ea16e01a66e657374656481a1789401cb4004000000000000a17381a179c0a4"
      "746d703290a3612e62a176a5726174696fcb3fd0000000000000a46576656ec2"
      "a5782e792e7ad2fff0bdc0aa726d5f6d697373696e6702ab636f6e74656e7420"
      "612e62a66e6573746564af636f6e74656e7420746167735b305da76c69746572"
      "616cae636f6e74656e74206c6973742e30a472632032ac6d6574616461746120"
      "6d2e6ba26d6bb0636f6e74656e745f693634206c69737401a4636f7079a176";

int
main(void)
{
	pt_env e;
	pt_env_open(&e, "legacy", SL_TEST_PLUGIN_DIR "/legacy_flat.so");
	const proj_def *def = pt_find(e.r, "legacy_flat");
	CHECK_EQ(def->p->abi_version, (1u << 16) | 2u);

	static const char content[]
	    = "{\"s\":\"v\",\"a.b\":\"flat\",\"a\":{\"b\":\"nested\"},"
	      "\"tags[0]\":\"literal\",\"list\":[\"x\",2]}";
	static const char meta[] = "{\"m\":{\"k\":\"mk\"},\"m.k\":\"dotted\","
	                           "\"n\":7}";
	pt_event          evs[3];
	for (int i = 0; i < 3; i++) {
		evs[i] = (pt_event) { .type = "Flat" };
		snprintf(evs[i].json, sizeof(evs[i].json), "%s", content);
	}
	pt_commit_meta(e.s, "t1", "flat-1", evs, 3, false, meta);
	pt_commit_meta(e.s, "t1", "flat-2", evs, 1, false, meta);
	uint64_t head = store_next_position(e.s);

	processor *p;
	CHECK_EQ(proc_start(e.s, e.rm, "t1", def, 16, &p), SL_OK);
	proc_status st = pt_wait_position(p, head, PT_WAIT_MS);
	CHECK_EQ(st.events_handled, 4);
	CHECK_EQ(st.n_failing, 0);
	proc_stop(p);

	check_bytes(e.rm, "flat-1", want_flat1);
	check_bytes(e.rm, "flat-2", want_flat2);
	pt_env_close(&e);
	return 0;
}
