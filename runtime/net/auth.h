/*
 * Who is calling, and what they may do (docs/security.md): a request's
 * token is hashed and found among the credentials of resources.yaml's
 * auth: section; each op then checks the credential's roles and tenants.
 * With no auth: section every caller may do everything (the ipc sockets'
 * modes decide who can connect at all).
 */
#ifndef SL_AUTH_H
#define SL_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/** SHA-256 of data into out (32 bytes). */
void auth_sha256(const void *data, size_t len, uint8_t out[32]);
/** The token's SHA-256 as 64 lower-case hex digits and a NUL (what
 * auth.tokens[].token_sha256 holds). */
void auth_hash_hex(const char *token, size_t len, char out[65]);

/**
 * The credential whose token this is, or NULL. Hashes the token and
 * compares the hash with every credential's in constant time (the time
 * does not tell how much of a hash matched, or which entry).
 * @return borrowed from cfg, valid while cfg lives.
 */
const cfg_cred *auth_identify(
    const sl_config *cfg, const char *token, size_t len);

/** The credential whose TLS client certificate subject this is (an
 * auth.subjects entry), or NULL: for mutual TLS endpoints. */
const cfg_cred *auth_identify_subject(
    const sl_config *cfg, const char *subject);

/** Whether c has role (a CFG_ROLE_*; admin has them all). NULL (auth
 * off): true. */
bool auth_has_role(const cfg_cred *c, unsigned role);
/** Whether c may use tenant (len bytes). NULL (auth off): true. */
bool auth_tenant_ok(const cfg_cred *c, const char *tenant, size_t len);
/** Whether c sees every tenant (admin, tenants: "*", or auth off). */
bool auth_all_tenants(const cfg_cred *c);
/** A role's word, as resources.yaml spells it ("read", ...). */
const char *auth_role_name(unsigned role);
/** The role an op needs; 0 for those any credential may use (status,
 * plugins); 0 too for an unknown op (refused EUNKNOWNOP anyway). */
unsigned auth_op_role(const char *op, size_t len);

/**
 * Log a refusal (warn), at most 10 lines a second and then one line with
 * the number left out, so a client hammering with a bad token cannot
 * flood the log. who: the credential's name, or NULL.
 */
void auth_log_refusal(const char *who, const char *what);

#endif
