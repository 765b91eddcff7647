/*
 * A fuzz target for what every request goes through before its op: the
 * bounded msgpack check, the decode, the duplicate-key check, and the
 * auth checks on its token, op and tenant (runtime/net/auth.c). Built with
 * clang and -DSLUICE_FUZZ=ON it is a libFuzzer target (fuzz/run.sh runs
 * it); in every other build main() runs it over seeds and 20,000
 * deterministic mutations of them (tests: auth_fuzz_test).
 * Invariants: only the exact tokens identify their credentials, never a
 * prefix, an extension or another byte; nothing crashes or leaks.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <sluice/errors.h>

#include "auth.h"
#include "mp.h"
#include "mpraw.h"

static sl_config cfg;
static cfg_cred  creds[2];
static char     *t1_only[] = { "t1" };

static void
setup(void)
{
	creds[0].name = "alpha";
	auth_sha256("alpha-token", 11, creds[0].token_hash);
	creds[0].has_token = true;
	creds[0].roles     = CFG_ROLE_READ;
	creds[0].tenants   = t1_only;
	creds[0].n_tenants = 1;
	creds[1].name      = "root";
	auth_sha256("root-token", 10, creds[1].token_hash);
	creds[1].has_token   = true;
	creds[1].roles       = CFG_ROLE_ADMIN;
	creds[1].all_tenants = true;
	cfg.auth_on          = true;
	cfg.creds            = creds;
	cfg.n_creds          = 2;
}

static void
check_request(const msgpack_object *root)
{
	const msgpack_object *tok = mp_get(root, "token");
	const msgpack_object *op  = mp_get(root, "op");
	const msgpack_object *t   = mp_get(root, "tenant");
	const cfg_cred       *c   = NULL;
	if (tok != NULL && tok->type == MSGPACK_OBJECT_STR) {
		c = auth_identify(&cfg, tok->via.str.ptr, tok->via.str.size);
		const char *want = c == &creds[0] ? "alpha-token"
		    : c == &creds[1]              ? "root-token"
		                                  : NULL;
		if (c != NULL
		    && (tok->via.str.size != strlen(want)
		        || memcmp(tok->via.str.ptr, want, strlen(want)) != 0))
			abort(); /* identified by another token */
	}
	if (op != NULL && op->type == MSGPACK_OBJECT_STR) {
		unsigned role = auth_op_role(op->via.str.ptr, op->via.str.size);
		bool     may  = auth_has_role(c, role);
		if (c == &creds[0] && role == CFG_ROLE_WRITE && may)
			abort(); /* a reader may write */
	}
	if (t != NULL && t->type == MSGPACK_OBJECT_STR) {
		bool ok = auth_tenant_ok(c, t->via.str.ptr, t->via.str.size);
		if (c == &creds[0] && ok
		    && (t->via.str.size != 2 || memcmp(t->via.str.ptr, "t1", 2)))
			abort(); /* another tenant let through */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool    ready;
	char           err[320];
	size_t         off = 0;
	msgpack_object root;
	if (!ready) {
		setup();
		ready = true;
	}
	if (size == 0 || !mpraw_check(data, size, 32, "request map", err,
	                     sizeof(err)))
		return 0;
	msgpack_zone *z = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
	if (z == NULL)
		return 0;
	if (msgpack_unpack((const char *) data, size, &off, z, &root)
	        == MSGPACK_UNPACK_SUCCESS
	    && root.type == MSGPACK_OBJECT_MAP
	    && mp_check_unique_keys(&root, "request map", err, sizeof(err))
	        == SL_OK)
		check_request(&root);
	msgpack_zone_free(z);
	return 0;
}

#ifndef SLUICE_FUZZING
/* A request map {v: 1, op, token, tenant} packed into sb. */
static void
seed(msgpack_sbuffer *sb, const char *op, const char *token,
    const char *tenant)
{
	msgpack_packer pk;
	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 4);
	mp_pack_kv_u64(&pk, "v", 1);
	mp_pack_kv_str(&pk, "op", op);
	mp_pack_kv_str(&pk, "token", token);
	mp_pack_kv_str(&pk, "tenant", tenant);
}

int
main(void)
{
	static const char *const seeds[][3] = {
		{ "read", "alpha-token", "t1" },
		{ "commit", "alpha-token", "t2" },
		{ "reset", "root-token", "t9" },
		{ "status", "alpha-tokem", "t1" },
		{ "register", "root-toke", "t1" },
	};
	uint64_t x = 0x9e3779b97f4a7c15ull;
	size_t   runs = 0;
	for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
		msgpack_sbuffer sb;
		seed(&sb, seeds[s][0], seeds[s][1], seeds[s][2]);
		LLVMFuzzerTestOneInput((const uint8_t *) sb.data, sb.size);
		for (int i = 0; i < 4000; i++, runs++) {
			unsigned char buf[256];
			size_t        n = sb.size < sizeof(buf) ? sb.size : sizeof(buf);
			memcpy(buf, sb.data, n);
			/* flip, set or drop a few bytes (xorshift64) */
			for (int k = 0; k < 1 + i % 4; k++) {
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				size_t at = (size_t) (x % n);
				switch ((x >> 32) % 3) {
				case 0: buf[at] ^= (unsigned char) (x >> 40); break;
				case 1: buf[at] = (unsigned char) (x >> 48); break;
				default: n = at + 1; break;
				}
			}
			LLVMFuzzerTestOneInput(buf, n);
		}
		msgpack_sbuffer_destroy(&sb);
	}
	printf("auth_fuzz: %zu mutated requests\n", runs);
	return 0;
}
#endif
