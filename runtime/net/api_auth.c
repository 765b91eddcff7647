/*
 * The API's side of authentication (docs/security.md): every request of a
 * daemon with an auth: section carries a token; the caller it names must
 * have the op's role, and each op checks the tenants it touches with
 * api_may_tenant. A refusal is EACCES naming the op (and the tenant), the
 * same whether the tenant exists or not, and is logged (auth.c limits the
 * rate).
 */
#include "api_internal.h"

#include <stdio.h>
#include <string.h>

#include <sluice/errors.h>

#include "mp.h"

/* " on tenant 'T'" when the request names one (as it is: an unknown one
 * is shown as well as a known one, so the text tells nothing). */
static void
api_tenant_part(request *r, char *buf, size_t len)
{
	const msgpack_object *t = api_field(&r->root, "tenant");
	buf[0]                  = '\0';
	if (t != NULL && t->type == MSGPACK_OBJECT_STR)
		snprintf(buf, len, " on tenant '%.*s'",
		    (int) (t->via.str.size > 64 ? 64 : t->via.str.size),
		    t->via.str.ptr);
}

static int
api_refuse(request *r, const char *why)
{
	char tenant[96], msg[400];
	api_tenant_part(r, tenant, sizeof(tenant));
	snprintf(
	    msg, sizeof(msg), "op '%s'%s refused: %s", r->op, tenant, why);
	auth_log_refusal(r->cred != NULL ? r->cred->name : NULL, msg);
	api_fail(r, SL_EACCES, "%s", msg);
	return SL_EACCES;
}

/*
 * The connection counts against the credential's max_connections from its
 * first request with it on (the server tags it; the tag goes when it
 * closes). One over: ETOOBIG, and the connection may try again later.
 */
static int
api_count_connection(request *r)
{
	const sl_config *cfg  = r->rt->cfg;
	uint32_t         pipe = api_call_pipe(r->call);
	char             why[200];
	if (r->cred->max_connections == 0 || r->rt->srv == NULL || pipe == 0)
		return SL_OK;
	uint32_t tag = (uint32_t) (r->cred - cfg->creds) + 1;
	if (server_pipe_tag(r->rt->srv, pipe, tag, r->cred->max_connections)
	    != SL_EFULL)
		return SL_OK;
	snprintf(why, sizeof(why),
	    "op '%s' refused: credential '%s' has its max_connections (%u) "
	    "open; close one",
	    r->op, r->cred->name, r->cred->max_connections);
	auth_log_refusal(r->cred->name, why);
	api_fail(r, SL_ETOOBIG, "%s", why);
	return SL_ETOOBIG;
}

int
api_authenticate(request *r, const char *op, size_t op_len)
{
	const msgpack_object *tok;
	unsigned              role;
	char                  why[160];

	size_t n = op_len < sizeof(r->op) ? op_len : sizeof(r->op) - 1;
	memcpy(r->op, op, n);
	r->op[n] = '\0';
	if (!r->rt->cfg->auth_on)
		return SL_OK;
	/* Mutual TLS (auth.subjects): a request without a token on a
	 * connection with a client certificate the CA verified is its
	 * subject's (auth_identify_subject; the subject as the daemon logs
	 * it, "O=..., CN=..."). A token, when given, decides. */
	tok = api_field(&r->root, "token");
	if (tok == NULL || tok->type != MSGPACK_OBJECT_STR
	    || tok->via.str.size == 0) {
		sl_tls_peer_info pi;
		int              v = api_call_peer(r->call, &pi);
		if (v == 1
		    && (r->cred = auth_identify_subject(r->rt->cfg, pi.subject))
		        == NULL) {
			snprintf(why, sizeof(why),
			    "no token, and no auth.subjects entry for the "
			    "client certificate \"%.80s\"",
			    pi.subject);
			return api_refuse(r, why);
		}
		if (v == 0)
			return api_refuse(r,
			    "no token, and no client certificate the CA "
			    "verified (field 'token', a string, or a "
			    "certificate of an auth.subjects entry)");
		if (v < 0)
			return api_refuse(r, "no token (this daemon requires "
			                     "field 'token', a string)");
	} else {
		r->cred = auth_identify(
		    r->rt->cfg, tok->via.str.ptr, tok->via.str.size);
		if (r->cred == NULL)
			return api_refuse(r, "the token is not valid");
	}
	role = auth_op_role(op, op_len);
	if (!auth_has_role(r->cred, role)) {
		snprintf(why, sizeof(why), "credential '%s' lacks role '%s'",
		    r->cred->name, auth_role_name(role));
		return api_refuse(r, why);
	}
	return api_count_connection(r);
}

bool
api_may_tenant(request *r, const char *tenant, size_t len)
{
	char why[400];
	if (auth_tenant_ok(r->cred, tenant, len))
		return true;
	snprintf(why, sizeof(why),
	    "op '%s' on tenant '%.*s' refused: credential '%s' may not use "
	    "that tenant",
	    r->op, (int) (len > 64 ? 64 : len), tenant, r->cred->name);
	auth_log_refusal(r->cred->name, why);
	api_fail(r, SL_EACCES, "%s", why);
	return false;
}

bool
api_cred_tenant(const request *r, const char *tenant)
{
	return tenant != NULL
	    && auth_tenant_ok(r->cred, tenant, strlen(tenant));
}
