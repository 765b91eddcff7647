/*
 * Credentials (auth.h): tokens hashed with SHA-256 (mbedtls's
 * libmbedcrypto, which NNG's TLS transport pulls in too), looked up in
 * constant time; roles and tenants checked for each op; refusals logged
 * with a rate limit.
 */
#include "auth.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <mbedtls/sha256.h>
#include <mbedtls/version.h>

#include "log.h"

void
auth_sha256(const void *data, size_t len, uint8_t out[32])
{
#if MBEDTLS_VERSION_MAJOR >= 3
	mbedtls_sha256(data, len, out, 0);
#else
	mbedtls_sha256_ret(data, len, out, 0);
#endif
}

void
auth_hash_hex(const char *token, size_t len, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t           h[32];
	auth_sha256(token, len, h);
	for (int i = 0; i < 32; i++) {
		out[2 * i]     = hex[h[i] >> 4];
		out[2 * i + 1] = hex[h[i] & 15];
	}
	out[64] = '\0';
}

const cfg_cred *
auth_identify(const sl_config *cfg, const char *token, size_t len)
{
	uint8_t         h[32];
	const cfg_cred *found = NULL;
	if (token == NULL || len == 0)
		return NULL;
	auth_sha256(token, len, h);
	/* every entry, every byte: no early exit */
	for (size_t i = 0; i < cfg->n_creds; i++) {
		const cfg_cred *c    = &cfg->creds[i];
		uint8_t         diff = c->has_token ? 0 : 1;
		for (int k = 0; k < 32; k++)
			diff |= (uint8_t) (c->token_hash[k] ^ h[k]);
		if (diff == 0)
			found = c;
	}
	return found;
}

const cfg_cred *
auth_identify_subject(const sl_config *cfg, const char *subject)
{
	if (subject == NULL)
		return NULL;
	for (size_t i = 0; i < cfg->n_creds; i++)
		if (cfg->creds[i].subject != NULL
		    && strcmp(cfg->creds[i].subject, subject) == 0)
			return &cfg->creds[i];
	return NULL;
}

bool
auth_has_role(const cfg_cred *c, unsigned role)
{
	return c == NULL || role == 0 || (c->roles & CFG_ROLE_ADMIN) != 0
	    || (c->roles & role) == role;
}

bool
auth_all_tenants(const cfg_cred *c)
{
	return c == NULL || c->all_tenants;
}

bool
auth_tenant_ok(const cfg_cred *c, const char *tenant, size_t len)
{
	if (auth_all_tenants(c))
		return true;
	for (size_t i = 0; i < c->n_tenants; i++)
		if (strlen(c->tenants[i]) == len
		    && memcmp(c->tenants[i], tenant, len) == 0)
			return true;
	return false;
}

const char *
auth_role_name(unsigned role)
{
	switch (role) {
	case CFG_ROLE_READ:
		return "read";
	case CFG_ROLE_WRITE:
		return "write";
	case CFG_ROLE_OPERATE:
		return "operate";
	case CFG_ROLE_REGISTER:
		return "register";
	case CFG_ROLE_ADMIN:
		return "admin";
	default:
		return "none";
	}
}

unsigned
auth_op_role(const char *op, size_t len)
{
	static const struct {
		const char *op;
		unsigned    role;
	} ops[] = {
		{ "commit", CFG_ROLE_WRITE },
		{ "delete_stream", CFG_ROLE_WRITE },
		{ "read", CFG_ROLE_READ },
		{ "read_filter", CFG_ROLE_READ },
		{ "get_one", CFG_ROLE_READ },
		{ "get_all", CFG_ROLE_READ },
		{ "query", CFG_ROLE_READ },
		{ "reset", CFG_ROLE_OPERATE },
		{ "retry", CFG_ROLE_OPERATE },
		{ "pause", CFG_ROLE_OPERATE },
		{ "resume", CFG_ROLE_OPERATE },
		{ "start", CFG_ROLE_OPERATE },
		{ "stop", CFG_ROLE_OPERATE },
		{ "register", CFG_ROLE_REGISTER },
	};
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (strlen(ops[i].op) == len
		    && memcmp(ops[i].op, op, len) == 0)
			return ops[i].role;
	return 0;
}

/* ---- the refusal log, at most AUTH_LOG_PER_SEC lines a second ---- */

#define AUTH_LOG_PER_SEC 10

static pthread_mutex_t auth_log_mu = PTHREAD_MUTEX_INITIALIZER;
static time_t          auth_log_sec;
static unsigned        auth_log_lines;
static unsigned long   auth_log_dropped;

void
auth_log_refusal(const char *who, const char *what)
{
	struct timespec now;
	unsigned long   dropped = 0;
	bool            show;
	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&auth_log_mu);
	if (now.tv_sec != auth_log_sec) {
		dropped          = auth_log_dropped;
		auth_log_dropped = 0;
		auth_log_lines   = 0;
		auth_log_sec     = now.tv_sec;
	}
	show = auth_log_lines < AUTH_LOG_PER_SEC;
	if (show)
		auth_log_lines++;
	else
		auth_log_dropped++;
	pthread_mutex_unlock(&auth_log_mu);
	if (dropped > 0)
		log_warn("auth", "%lu more refusals not logged", dropped);
	if (!show)
		return;
	/* what echoes the request (its tenant, its op): no control bytes,
	 * so a request cannot write a line of its own into the log */
	char line[512];
	snprintf(line, sizeof(line), "%s", what);
	for (char *c = line; *c != '\0'; c++)
		if ((unsigned char) *c < 0x20 || *c == 0x7f)
			*c = '?';
	log_warn("auth", "refused (%s%s%s): %s",
	    who != NULL ? "credential '" : "no credential",
	    who != NULL ? who : "", who != NULL ? "'" : "", line);
}
