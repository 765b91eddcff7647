/*
 * libFuzzer target: the API's request path, whole. A real runtime runs in
 * this process (a temp dir, one tenant, the build's account_details
 * plugin) and every input is sent as one request over a real NNG req
 * socket; the reply must come (a hang is a failure) and must be a
 * well-formed envelope: {v: 1, ok: true, ...} or {v: 1, ok: false, code,
 * error, message}. ASan and UBSan watch the daemon's code meanwhile.
 *   fuzz/run.sh builds it with clang and runs it briefly (scripts/test.sh).
 */
#include <stdint.h>
#include <stdlib.h>

#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "api_fixture.h"
#include "mp.h"
#include "mpraw.h"

static nng_socket req;

/* What no reply may look like: report and abort, libFuzzer keeps the
 * input. */
static void
bad_reply(const char *why)
{
	fprintf(stderr, "fuzz_api: %s\n", why);
	abort();
}

static void
check_reply(const void *data, size_t len)
{
	char            err[256];
	msgpack_zone   *zone = msgpack_zone_new(4096);
	msgpack_object  root;
	size_t          off = 0;
	int64_t         v;
	bool            ok;
	const char     *s;
	size_t          n;
	if (zone == NULL)
		abort();
	if (!mpraw_check(data, len, 64, "reply", err, sizeof(err)))
		bad_reply(err);
	if (msgpack_unpack(data, len, &off, zone, &root)
	        != MSGPACK_UNPACK_SUCCESS
	    || off != len || root.type != MSGPACK_OBJECT_MAP)
		bad_reply("the reply is not one msgpack map");
	if (mp_get_i64(&root, "v", &v) != SL_OK || v != 1)
		bad_reply("the reply has no v: 1");
	if (mp_get_bool(&root, "ok", &ok) != SL_OK)
		bad_reply("the reply has no ok");
	if (!ok
	    && (mp_get_i64(&root, "code", &v) != SL_OK || v <= 0
	        || mp_get_str(&root, "error", &s, &n) != SL_OK || n == 0
	        || mp_get_str(&root, "message", &s, &n) != SL_OK))
		bad_reply("an error reply without code, error and message");
	msgpack_zone_free(zone);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void) argc;
	(void) argv;
	/* a request of up to 64 KiB gets its own reply; libFuzzer's
	 * -max_len stays below */
	fx_start("limits:\n  max_request_bytes: 64KiB\n"
	         "  query_timeout_ms: 2000\n");
	if (nng_req0_open(&req) != 0 || nng_dial(req, fx_url, NULL, 0) != 0)
		abort();
	nng_socket_set_ms(req, NNG_OPT_RECVTIMEO, 30000);
	nng_socket_set_ms(req, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	nng_msg *m;
	if (len > 65536)
		return 0;
	if (nng_msg_alloc(&m, len) != 0)
		abort();
	if (len > 0)
		memcpy(nng_msg_body(m), data, len);
	if (nng_sendmsg(req, m, 0) != 0)
		bad_reply("cannot send");
	int rv = nng_recvmsg(req, &m, 0);
	if (rv != 0)
		bad_reply(rv == NNG_ETIMEDOUT ? "no reply within 30 s"
		                              : nng_strerror(rv));
	check_reply(nng_msg_body(m), nng_msg_len(m));
	nng_msg_free(m);
	return 0;
}
