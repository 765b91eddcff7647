/*
 * Certificates for the TLS tests, made in the test's temp dir by the
 * openssl command (EC P-256 keys: quick): a CA, the daemon's certificate
 * for "localhost" and "127.0.0.1" (as DNS names too: mbedtls 2.28 matches
 * no IP address entries), a client certificate "alice" of that CA, and
 * another CA with its own client "mallory", which the first does not
 * know; also the daemon's key encrypted with the password "s3cret" (as
 * mbedtls 2.28 reads it, and as OpenSSL 3 writes it by default, which
 * mbedtls cannot read).
 */
#ifndef SL_TLS_TESTUTIL_H
#define SL_TLS_TESTUTIL_H

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

static char tt_pki_[4200]; /* where tt_make_pki made them */

/* The path of one of tt_make_pki's files (one of 8 buffers in turn: as
 * many may be used at once). */
__attribute__((unused)) static const char *
tt_pki(const char *name)
{
	static char buf[8][4400];
	static int  i;
	char       *b = buf[i++ % 8];
	snprintf(b, sizeof(buf[0]), "%s/%s", tt_pki_, name);
	return b;
}

/* Make the files under dir/pki (ca.crt, server.crt, server.key,
 * server-enc.key, client.crt, client.key, other-ca.crt, other.crt,
 * other.key, bad.pem). Skips the whole test (exit 77 is not used by our
 * ctest: it fails) when openssl is missing. */
__attribute__((unused)) static void
tt_make_pki(const char *dir, char pki[4200])
{
	char cmd[16384];
	snprintf(pki, 4200, "%s/pki", dir);
	snprintf(tt_pki_, sizeof(tt_pki_), "%s", pki);
	snprintf(cmd, sizeof(cmd),
	    "set -e; mkdir -p '%s'; cd '%s'; umask 077\n"
	    "K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'\n"
	    "openssl req -x509 $K -keyout ca.key -out ca.crt -days 2 "
	    "  -subj '/O=Sluice tests/CN=Sluice Test CA' 2>/dev/null\n"
	    "openssl req -x509 $K -keyout other-ca.key -out other-ca.crt "
	    "  -days 2 -subj '/CN=Other CA' 2>/dev/null\n"
	    "printf 'subjectAltName=DNS:localhost,DNS:127.0.0.1,"
	    "IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > server.ext\n"
	    "printf 'extendedKeyUsage=clientAuth\\n' > client.ext\n"
	    "openssl req $K -keyout server.key -out server.csr "
	    "  -subj '/CN=localhost' 2>/dev/null\n"
	    "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key "
	    "  -CAcreateserial -days 2 -extfile server.ext -out server.crt "
	    "  2>/dev/null\n"
	    "openssl req $K -keyout client.key -out client.csr "
	    "  -subj '/O=Sluice tests/CN=alice' 2>/dev/null\n"
	    "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key "
	    "  -CAcreateserial -days 2 -extfile client.ext -out client.crt "
	    "  2>/dev/null\n"
	    "openssl req $K -keyout other.key -out other.csr "
	    "  -subj '/CN=mallory' 2>/dev/null\n"
	    "openssl x509 -req -in other.csr -CA other-ca.crt "
	    "  -CAkey other-ca.key -CAcreateserial -days 2 "
	    "  -extfile client.ext -out other.crt 2>/dev/null\n"
	    /* the traditional encrypted PEM: what mbedtls 2.28 reads
	     * (OpenSSL 3's default, PKCS#8 with AES, it does not) */
	    "openssl ec -in server.key -aes256 -passout pass:s3cret "
	    "  -out server-enc.key 2>/dev/null\n"
	    "openssl pkcs8 -topk8 -in server.key -v2 aes-256-cbc "
	    "  -passout pass:s3cret -out server-sha256.key\n"
	    "printf -- '-----BEGIN CERTIFICATE-----\\nnot base64\\n"
	    "-----END CERTIFICATE-----\\n' > bad.pem\n",
	    pki, pki);
	if (system("command -v openssl >/dev/null") != 0) {
		fprintf(stderr,
		    "FAIL: the openssl command is needed "
		    "(scripts/setup.sh installs it)\n");
		exit(1);
	}
	CHECK(system(cmd) == 0);
}

#ifdef SLUICE_CLIENT_H /* for the tests that use the client library */
/* Commit one event (content: JSON object text) to tenant's stream. */
__attribute__((unused)) static int
tt_commit(sl_client *c, const char *tenant, const char *stream,
    const char *type, const char *content)
{
	sl_new_event ev = { .type = type, .content_json = content };
	return sl_client_commit(
	    c, tenant, stream, SL_EXPECT_ANY, &ev, 1, NULL);
}
#endif

/* A TCP port free on 127.0.0.1 now (bound and released). */
__attribute__((unused)) static int
tt_free_port(void)
{
	struct sockaddr_in a   = { .sin_family = AF_INET };
	socklen_t          len = sizeof(a);
	int                fd  = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(bind(fd, (struct sockaddr *) &a, sizeof(a)) == 0);
	CHECK(getsockname(fd, (struct sockaddr *) &a, &len) == 0);
	close(fd);
	return ntohs(a.sin_port);
}

#endif
