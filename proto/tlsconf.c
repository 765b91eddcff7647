/*
 * TLS configurations from PEM files, for the daemon's tls+tcp:// listeners
 * and the client library's dialers (tls.h). The files are parsed here with
 * mbedtls first, so that a bad one is named ("not a PEM certificate", "the
 * key does not match the certificate") instead of NNG's bare EINVAL; the
 * engine NNG runs them with is in tlsengine.c.
 */
#include "tlsconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/pkcs5.h>
#include <mbedtls/x509_crt.h>

#include <sluice/errors.h>

/* A PEM file larger than this is not one we mean (a CA bundle is ~200 KiB). */
#define TLS_PEM_MAX (4u << 20)

bool
sl_tls_url(const char *url)
{
	return url != NULL && strncmp(url, "tls+tcp://", 10) == 0;
}

/* The whole file, NUL-terminated (mbedtls wants the NUL counted). */
static int
pem_read(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
	FILE       *f = fopen(path, "rb");
	struct stat st;
	*out = NULL;
	if (f == NULL) {
		snprintf(
		    err, errlen, "cannot open %s: %s", path, strerror(errno));
		return SL_ECONFIG;
	}
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)
	    || st.st_size > (off_t) TLS_PEM_MAX) {
		snprintf(err, errlen,
		    "%s: not a regular file of at most %u "
		    "bytes",
		    path, TLS_PEM_MAX);
		fclose(f);
		return SL_ECONFIG;
	}
	char *b = malloc((size_t) st.st_size + 1);
	if (b == NULL) {
		fclose(f);
		return SL_ENOMEM;
	}
	size_t n   = fread(b, 1, (size_t) st.st_size, f);
	int    bad = ferror(f), e = errno;
	fclose(f);
	if (bad) {
		free(b);
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(e));
		return SL_ECONFIG;
	}
	b[n] = '\0';
	if (strlen(b) != n || strstr(b, "-----BEGIN ") == NULL) {
		free(b);
		snprintf(
		    err, errlen, "%s: not a PEM file (no '-----BEGIN')", path);
		return SL_ECONFIG;
	}
	*out = b;
	*len = n + 1;
	return SL_OK;
}

static const char *
mbed_err(int rc, char *buf, size_t len)
{
	mbedtls_strerror(rc, buf, len);
	return buf;
}

/* Certificates of a PEM file: at least one, all parsed. */
static int
pem_certs(const char *path, const char *pem, size_t len, mbedtls_x509_crt *crt,
    char *err, size_t errlen)
{
	char m[128];
	int rc = mbedtls_x509_crt_parse(crt, (const unsigned char *) pem, len);
	if (rc < 0 || crt->version == 0) {
		snprintf(err, errlen, "%s: not a PEM certificate: %s", path,
		    rc < 0 ? mbed_err(rc, m, sizeof(m)) : "none found");
		return SL_ECONFIG;
	}
	if (rc > 0) {
		snprintf(err, errlen,
		    "%s: %d of its certificates do not "
		    "parse",
		    path, rc);
		return SL_ECONFIG;
	}
	return SL_OK;
}

/* The key of key_file, and that it belongs to the certificate. what: the
 * key to blame. */
static int
pem_key(const char *path, const char *pem, size_t len, const char *pass,
    const mbedtls_x509_crt *crt, const char **what, char *err, size_t errlen)
{
	mbedtls_pk_context pk;
	char               m[128];
	int                rc;
	mbedtls_pk_init(&pk);
	rc = mbedtls_pk_parse_key(&pk, (const unsigned char *) pem, len,
	    (const unsigned char *) pass, pass != NULL ? strlen(pass) : 0);
	if (rc == MBEDTLS_ERR_PK_PASSWORD_REQUIRED) {
		*what = "key_password";
		snprintf(err, errlen, "%s is encrypted: a password is needed",
		    path);
	} else if (rc == MBEDTLS_ERR_PK_PASSWORD_MISMATCH) {
		*what = "key_password";
		snprintf(err, errlen, "the password does not open %s", path);
	} else if (rc == MBEDTLS_ERR_PKCS5_FEATURE_UNAVAILABLE) {
		snprintf(err, errlen,
		    "%s is encrypted in a way mbedtls 2.28 cannot read "
		    "(OpenSSL 3's default, PKCS#8 with AES): write it as a "
		    "traditional encrypted PEM key ('openssl ec -aes256' or "
		    "'openssl rsa -aes256')",
		    path);
	} else if (rc != 0) {
		snprintf(err, errlen, "%s: not a PEM private key: %s", path,
		    mbed_err(rc, m, sizeof(m)));
	} else if (mbedtls_pk_check_pair(&crt->pk, &pk) != 0) {
		rc = -1;
		snprintf(
		    err, errlen, "%s is not the key of the certificate", path);
	}
	mbedtls_pk_free(&pk);
	return rc == 0 ? SL_OK : SL_ECONFIG;
}

/* Our certificate and key into cfg (checked first). */
static int
own_cert(nng_tls_config *cfg, const char *cert_file, const char *key_file,
    const char *pass, const char **what, char *err, size_t errlen)
{
	char            *cert = NULL, *key = NULL;
	size_t           clen = 0, klen = 0;
	mbedtls_x509_crt crt;
	int              rc, rv;
	mbedtls_x509_crt_init(&crt);
	*what = "cert_file";
	if ((rc = pem_read(cert_file, &cert, &clen, err, errlen)) == SL_OK
	    && (rc = pem_certs(cert_file, cert, clen, &crt, err, errlen))
	        == SL_OK) {
		*what = "key_file";
		if ((rc = pem_read(key_file, &key, &klen, err, errlen))
		    == SL_OK)
			rc = pem_key(key_file, key, klen, pass, &crt, what,
			    err, errlen);
	}
	if (rc == SL_OK && cfg != NULL
	    && (rv = nng_tls_config_own_cert(cfg, cert, key, pass)) != 0) {
		snprintf(err, errlen, "%s, %s: %s", cert_file, key_file,
		    nng_strerror(rv));
		rc = rv == NNG_ENOMEM ? SL_ENOMEM : SL_ECONFIG;
	}
	mbedtls_x509_crt_free(&crt);
	free(cert);
	if (key != NULL) {
		memset(key, 0, klen);
		free(key);
	}
	return rc;
}

static int
ca_chain(nng_tls_config *cfg, const char *ca_file, char *err, size_t errlen)
{
	char            *ca = NULL;
	size_t           len;
	mbedtls_x509_crt crt;
	int              rc, rv;
	mbedtls_x509_crt_init(&crt);
	if ((rc = pem_read(ca_file, &ca, &len, err, errlen)) == SL_OK)
		rc = pem_certs(ca_file, ca, len, &crt, err, errlen);
	if (rc == SL_OK && cfg != NULL
	    && (rv = nng_tls_config_ca_chain(cfg, ca, NULL)) != 0) {
		snprintf(err, errlen, "%s: %s", ca_file, nng_strerror(rv));
		rc = rv == NNG_ENOMEM ? SL_ENOMEM : SL_ECONFIG;
	}
	mbedtls_x509_crt_free(&crt);
	free(ca);
	return rc;
}

int
sl_tls_server_config(const sl_tls_server *s, nng_tls_config **out,
    const char **what, char *err, size_t errlen)
{
	nng_tls_config *cfg = NULL;
	struct stat     st;
	int             rc, rv;
	const char     *dummy;
	if (what == NULL)
		what = &dummy;
	if (out != NULL)
		*out = NULL;
	/* A key every local user can read is no secret: refused (a group
	 * may read it, for an access group). */
	*what = "key_file";
	if (stat(s->key_file, &st) == 0 && (st.st_mode & S_IROTH) != 0) {
		snprintf(err, errlen,
		    "%s is readable by every user (mode %04o): chmod o-r "
		    "(0600, or 0640 for a group)",
		    s->key_file, (unsigned) (st.st_mode & 07777));
		return SL_ECONFIG;
	}
	if (out != NULL
	    && (rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_SERVER)) != 0) {
		snprintf(err, errlen, "cannot make a TLS configuration: %s",
		    nng_strerror(rv));
		return rv == NNG_ENOMEM ? SL_ENOMEM : SL_ECONFIG;
	}
	rc = own_cert(cfg, s->cert_file, s->key_file, s->key_password, what,
	    err, errlen);
	if (rc == SL_OK && s->ca_file != NULL) {
		*what = "ca_file";
		rc    = ca_chain(cfg, s->ca_file, err, errlen);
	}
	if (rc == SL_OK && cfg != NULL
	    && (rv = nng_tls_config_auth_mode(
	            cfg, (nng_tls_auth_mode) s->verify))
	        != 0) {
		snprintf(err, errlen, "cannot set the client verification: %s",
		    nng_strerror(rv));
		rc = SL_ECONFIG;
	}
	if (rc != SL_OK) {
		if (cfg != NULL)
			nng_tls_config_free(cfg);
		return rc;
	}
	if (out != NULL)
		*out = cfg;
	return SL_OK;
}

/* The host of a tls+tcp://HOST:PORT URL ("[::1]" without brackets). */
static void
url_host(const char *url, char *buf, size_t len)
{
	const char *h = url + 10, *e;
	if (*h == '[') {
		h++;
		e = strchr(h, ']');
	} else {
		e = strrchr(h, ':');
	}
	size_t n = e != NULL ? (size_t) (e - h) : strlen(h);
	if (n >= len)
		n = len - 1;
	memcpy(buf, h, n);
	buf[n] = '\0';
}

int
sl_tls_client_config(const sl_tls_options *o, const char *url,
    nng_tls_config **out, char *err, size_t errlen)
{
	nng_tls_config *cfg = NULL;
	const char     *what;
	char            host[256];
	int             rc = SL_OK, rv;
	*out               = NULL;
	if (o == NULL || o->ca_file == NULL || o->ca_file[0] == '\0') {
		snprintf(err, errlen,
		    "%s needs the CA that signed the daemon's certificate "
		    "(a TLS CA file: --tls-ca, SLUICE_TLS_CA, "
		    "sl_tls_options.ca_file)",
		    url);
		return SL_EINVAL;
	}
	if ((o->cert_file == NULL) != (o->key_file == NULL)) {
		snprintf(err, errlen,
		    "a client certificate needs its key and a key its "
		    "certificate (both or neither)");
		return SL_EINVAL;
	}
	if ((rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT)) != 0) {
		snprintf(err, errlen, "cannot make a TLS configuration: %s",
		    nng_strerror(rv));
		return rv == NNG_ENOMEM ? SL_ENOMEM : SL_EINVAL;
	}
	url_host(url, host, sizeof(host));
	if ((rv = nng_tls_config_server_name(cfg,
	         o->server_name != NULL && o->server_name[0] != '\0'
	             ? o->server_name
	             : host))
	        != 0
	    || (rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED))
	        != 0) {
		snprintf(
		    err, errlen, "cannot set up TLS: %s", nng_strerror(rv));
		rc = rv == NNG_ENOMEM ? SL_ENOMEM : SL_EINVAL;
	}
	if (rc == SL_OK)
		rc = ca_chain(cfg, o->ca_file, err, errlen);
	if (rc == SL_OK && o->cert_file != NULL)
		rc = own_cert(cfg, o->cert_file, o->key_file, o->key_password,
		    &what, err, errlen);
	if (rc != SL_OK) {
		nng_tls_config_free(cfg);
		return rc == SL_ECONFIG ? SL_EINVAL : rc;
	}
	*out = cfg;
	return SL_OK;
}

void
sl_tls_options_free(sl_tls_options *o)
{
	free((char *) o->ca_file);
	free((char *) o->server_name);
	free((char *) o->cert_file);
	free((char *) o->key_file);
	if (o->key_password != NULL) {
		memset((char *) o->key_password, 0, strlen(o->key_password));
		free((char *) o->key_password);
	}
	memset(o, 0, sizeof(*o));
}

bool
sl_tls_options_copy(sl_tls_options *dst, const sl_tls_options *src)
{
	const char  *in[5]  = { src->ca_file, src->server_name, src->cert_file,
		  src->key_file, src->key_password };
	const char **out[5] = { &dst->ca_file, &dst->server_name,
		&dst->cert_file, &dst->key_file, &dst->key_password };
	bool         ok     = true;
	for (int i = 0; i < 5; i++)
		if (in[i] != NULL && (*out[i] = strdup(in[i])) == NULL)
			ok = false;
	if (!ok)
		sl_tls_options_free(dst);
	return ok;
}

int
sl_tls_dial(nng_socket s, const char *url, nng_tls_config *tls, int flags,
    nng_dialer *out)
{
	nng_dialer d;
	int        rv;
	if (tls == NULL)
		return nng_dial(s, url, out, flags);
	if ((rv = nng_dialer_create(&d, s, url)) != 0)
		return rv;
	if ((rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tls)) != 0
	    || (rv = nng_dialer_start(d, flags)) != 0) {
		nng_dialer_close(d);
		return rv;
	}
	if (out != NULL)
		*out = d;
	return 0;
}
