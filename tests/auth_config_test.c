/*
 * The auth: section of resources.yaml (docs/security.md): what loads, every
 * kind of bad entry refused with the file, line:col and key, tcp listeners
 * without auth: refused unless insecure: true; and the credential checks
 * (auth.h): SHA-256 against the FIPS 180-2 vectors, lookup by token,
 * roles, tenants.
 */
#include "auth.h"
#include "config_testutil.h"

/* SHA-256("abc") and of the empty string, FIPS 180-2 / NIST vectors */
#define H_ABC                                                                 \
	"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define H_EMPTY                                                               \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define H_448                                                                 \
	"248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"

#define TENANTS "tenants: [{id: t1}, {id: t2}]\n"

static void
test_sha256(void)
{
	char hex[65];
	auth_hash_hex("abc", 3, hex);
	CHECK_STREQ(hex, H_ABC);
	auth_hash_hex("", 0, hex);
	CHECK_STREQ(hex, H_EMPTY);
	const char *m
	    = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	auth_hash_hex(m, strlen(m), hex);
	CHECK_STREQ(hex, H_448);
}

static void
test_loads(void)
{
	/* no auth: today's behaviour, on ipc */
	sl_config *cfg = ct_load_ok(TENANTS);
	CHECK(!cfg->auth_on);
	CHECK(!cfg->insecure);
	CHECK_EQ(cfg->n_creds, 0);
	config_free(cfg);

	cfg = ct_load_ok(TENANTS "endpoints: {api: 'tcp://127.0.0.1:5555'}\n"
	                         "auth:\n"
	                         "  tokens:\n"
	                         "  - name: reader\n"
	                         "    token_sha256: " H_ABC "\n"
	                         "    tenants: [t2]\n"
	                         "    roles: [read]\n"
	                         "  - name: ops\n"
	                         "    token_sha256: " H_448 "\n"
	                         "    tenants: \"*\"\n"
	                         "    roles: [operate, write]\n"
	                         "    max_registrations: 3\n"
	                         "    max_connections: 5\n"
	                         "  - name: root\n"
	                         "    token_sha256: " H_EMPTY "\n"
	                         "    roles: [admin]\n"
	                         "  subjects:\n"
	                         "  - name: mtls-client\n"
	                         "    subject: CN=reporting,O=Example\n"
	                         "    tenants: [t1]\n"
	                         "    roles: [read, register]\n");
	CHECK(cfg->auth_on);
	CHECK_EQ(cfg->n_creds, 4);
	const cfg_cred *r = auth_identify(cfg, "abc", 3);
	CHECK(r != NULL && strcmp(r->name, "reader") == 0);
	CHECK(auth_has_role(r, CFG_ROLE_READ));
	CHECK(!auth_has_role(r, CFG_ROLE_WRITE));
	CHECK(!auth_has_role(r, CFG_ROLE_ADMIN));
	CHECK(auth_tenant_ok(r, "t2", 2));
	CHECK(!auth_tenant_ok(r, "t1", 2));
	CHECK(!auth_tenant_ok(r, "t", 1));
	CHECK(!auth_all_tenants(r));
	CHECK_EQ(r->max_registrations, 16); /* the default */
	const cfg_cred *o = auth_identify(cfg,
	    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56);
	CHECK(o != NULL && strcmp(o->name, "ops") == 0);
	CHECK(auth_has_role(o, CFG_ROLE_OPERATE | CFG_ROLE_WRITE));
	CHECK(!auth_has_role(o, CFG_ROLE_READ));
	CHECK(auth_tenant_ok(o, "t1", 2) && auth_tenant_ok(o, "t2", 2));
	CHECK_EQ(o->max_registrations, 3);
	CHECK_EQ(o->max_connections, 5);
	CHECK_EQ(r->max_connections, 0); /* the default: no cap of its own */
	/* an empty token names nobody, even when a hash of "" is listed */
	CHECK(auth_identify(cfg, "", 0) == NULL);
	CHECK(auth_identify(cfg, "abd", 3) == NULL);
	CHECK(auth_identify(cfg, "ab", 2) == NULL);
	/* a subject entry is no token */
	const cfg_cred *s
	    = auth_identify_subject(cfg, "CN=reporting,O=Example");
	CHECK(s != NULL && strcmp(s->name, "mtls-client") == 0);
	CHECK(!s->has_token);
	CHECK(auth_has_role(s, CFG_ROLE_REGISTER));
	CHECK(auth_identify_subject(cfg, "CN=reporting") == NULL);
	/* auth off: everything */
	CHECK(auth_has_role(NULL, CFG_ROLE_ADMIN));
	CHECK(auth_tenant_ok(NULL, "any", 3));
	/* the ops' roles */
	CHECK_EQ(auth_op_role("commit", 6), CFG_ROLE_WRITE);
	CHECK_EQ(auth_op_role("delete_stream", 13), CFG_ROLE_WRITE);
	CHECK_EQ(auth_op_role("query", 5), CFG_ROLE_READ);
	CHECK_EQ(auth_op_role("stop", 4), CFG_ROLE_OPERATE);
	CHECK_EQ(auth_op_role("register", 8), CFG_ROLE_REGISTER);
	CHECK_EQ(auth_op_role("status", 6), 0);
	CHECK_EQ(auth_op_role("commi", 5), 0);
	config_free(cfg);

	/* upper-case hex is the same hash */
	cfg = ct_load_ok(
	    TENANTS "auth:\n  tokens:\n  - {name: a, "
	            "token_sha256: "
	            "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9"
	            "CB410FF61F20015AD, tenants: [t1], roles: "
	            "[read]}\n");
	CHECK(auth_identify(cfg, "abc", 3) != NULL);
	config_free(cfg);

	/* tcp and tls+tcp without auth: said explicitly */
	cfg = ct_load_ok(TENANTS "insecure: true\n"
	                         "endpoints: {api: 'tcp://127.0.0.1:1', pub: "
	                         "'tcp://127.0.0.1:2'}\n"
	                         "remote: {endpoint: 'tcp://127.0.0.1:0'}\n");
	CHECK(cfg->insecure && !cfg->auth_on);
	config_free(cfg);
}

#define ONE_TOKEN(fields)                                                     \
	TENANTS "auth:\n  tokens:\n  - name: a\n    token_sha256: " H_ABC     \
	        "\n" fields

static void
test_refusals(void)
{
	/* the network without auth */
	ct_expect_err(TENANTS "endpoints:\n  api: tcp://127.0.0.1:5555\n",
	    "3:8",
	    "key 'endpoints.api': tcp://127.0.0.1:5555 listens on the "
	    "network, and there is no 'auth:' section");
	ct_expect_err(TENANTS "endpoints:\n  pub: tcp://127.0.0.1:5555\n",
	    "3:8", "say 'insecure: true'");
	ct_expect_err(TENANTS "insecure: false\nremote:\n  endpoint: "
	                      "tcp://127.0.0.1:0\n",
	    "4:13", "key 'remote.endpoint'");
	/* with auth the API may listen on tcp, a registration's socket
	 * not (its events and session would travel in clear text);
	 * tls+tcp:// is fine (config_tls_test) */
	ct_expect_err(
	    ONE_TOKEN(
	        "    tenants: [t1]\n    roles: [read]\n") "remote:\n  "
	                                                  "endpoint: "
	                                                  "tcp://"
	                                                  "127.0.0.1:0\n",
	    "9:13",
	    "carries a registration's events and session in clear text");
	/* the admin page serves the API over WebSocket */
	ct_expect_err(TENANTS "endpoints:\n  admin: http://127.0.0.1:1/admin\n",
	    "3:10",
	    "key 'endpoints.admin': http://127.0.0.1:1/admin serves the API "
	    "(the admin page's) on the network, and there is no 'auth:'");
	sl_config *ok = ct_load_ok(
	    ONE_TOKEN("    tenants: [t1]\n    roles: [read]\n")
	    "endpoints:\n  admin: http://127.0.0.1:1/admin\n");
	config_free(ok);
	/* metrics show counts and names, no data: no auth needed */
	ok = ct_load_ok(TENANTS "endpoints:\n  metrics: http://127.0.0.1:1/m\n");
	config_free(ok);
	ct_expect_err(TENANTS "insecure: yes\n", "2:11",
	    "key 'insecure': expected true or false");

	/* the section */
	ct_expect_err(TENANTS "auth: {}\n", "1:1",
	    "key 'auth': needs at least one credential");
	ct_expect_err(TENANTS "auth:\n  tokens: []\n", "1:1",
	    "needs at least one credential");
	ct_expect_err(
	    TENANTS "auth:\n  users: []\n", "3:3", "unknown key 'auth.users'");
	ct_expect_err(TENANTS "auth:\n  tokens: {name: a}\n", "3:11",
	    "key 'auth.tokens': expected a sequence");

	/* the hash */
	ct_expect_err(TENANTS "auth:\n  tokens:\n  - name: a\n    "
	                      "token_sha256: secret\n    tenants: [t1]\n"
	                      "    roles: [read]\n",
	    "5:19", "must be the token's SHA-256 as 64 hex digits");
	ct_expect_err(TENANTS "auth:\n  tokens:\n  - name: a\n    "
	                      "token_sha256: " H_ABC "0\n    tenants: [t1]\n"
	                      "    roles: [read]\n",
	    "5:19", "is 65 bytes, max 64");
	ct_expect_err(TENANTS
	    "auth:\n  tokens:\n  - name: a\n    "
	    "token_sha256: "
	    "xa7816bf8f01cfea414140de5dae2223b00361a396177a9c"
	    "b410ff61f20015ad\n    tenants: [t1]\n"
	    "    roles: [read]\n",
	    "5:19", "64 hex digits");
	ct_expect_err(TENANTS "auth:\n  tokens:\n  - name: a\n    "
	                      "tenants: [t1]\n    roles: [read]\n",
	    "4:5", "needs 'name', 'token_sha256' and 'roles'");
	ct_expect_err(ONE_TOKEN("    subject: CN=x\n    tenants: [t1]\n"
	                        "    roles: [read]\n"),
	    "6:14",
	    "key 'auth.tokens[0].subject': not allowed in auth.tokens");
	ct_expect_err(ONE_TOKEN("    tenants: [t1]\n    roles: [read]\n"
	                        "  - name: b\n    token_sha256: " H_ABC "\n"
	                        "    tenants: [t1]\n    roles: [read]\n"),
	    "9:19", "the same token as credential 'a'");
	ct_expect_err(ONE_TOKEN("    tenants: [t1]\n    roles: [read]\n"
	                        "  - name: a\n    token_sha256: " H_448 "\n"
	                        "    tenants: [t1]\n    roles: [read]\n"),
	    "8:11", "credential 'a' is named twice");

	/* roles */
	ct_expect_err(
	    ONE_TOKEN("    tenants: [t1]\n    roles: [read, root]\n"), "7:19",
	    "expected a role: read, write, operate, register or admin, got "
	    "'root'");
	ct_expect_err(ONE_TOKEN("    tenants: [t1]\n    roles: []\n"), "7:12",
	    "needs at least one role");
	ct_expect_err(ONE_TOKEN("    tenants: [t1]\n    roles: read\n"),
	    "7:12", "expected a sequence");
	ct_expect_err(
	    ONE_TOKEN("    tenants: [t1]\n    roles: [read, read]\n"), "7:19",
	    "role 'read' is given twice");

	/* tenants */
	ct_expect_err(ONE_TOKEN("    tenants: [t3]\n    roles: [read]\n"),
	    "6:15",
	    "key 'auth.tokens[0].tenants': no tenant 't3' in 'tenants'");
	ct_expect_err(ONE_TOKEN("    tenants: all\n    roles: [read]\n"),
	    "6:14",
	    "expected \"*\" (every tenant) or a sequence of tenant ids, got "
	    "'all'");
	ct_expect_err(ONE_TOKEN("    tenants: {t1: yes}\n    roles: [read]\n"),
	    "6:14", "got a mapping");
	ct_expect_err(ONE_TOKEN("    tenants: []\n    roles: [read]\n"),
	    "6:14", "needs at least one tenant");
	ct_expect_err(ONE_TOKEN("    tenants: [t1, t1]\n    roles: [read]\n"),
	    "6:19", "tenant 't1' is given twice");
	ct_expect_err(ONE_TOKEN("    roles: [read]\n"), "4:5",
	    "key 'auth.tokens[0]': needs 'tenants'");
	ct_expect_err(ONE_TOKEN("    tenants: [t1]\n    roles: [admin]\n"),
	    "6:14", "an admin has every tenant");
	ct_expect_err(ONE_TOKEN("    tenants: [t1]\n    roles: [read]\n"
	                        "    max_registrations: -1\n"),
	    "8:24", "out of range 0..4096");

	/* subjects */
	ct_expect_err(TENANTS "auth:\n  subjects:\n  - name: s\n    "
	                      "token_sha256: " H_ABC "\n    tenants: [t1]\n"
	                      "    roles: [read]\n",
	    "4:5", "needs 'name', 'subject' and 'roles'");
}

int
main(void)
{
	test_sha256();
	test_loads();
	test_refusals();
	return 0;
}
