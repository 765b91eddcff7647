/*
 * Helpers for plugin authors (declared at the end of sluice/plugin.h). This
 * file is compiled into each plugin, never into the host: every plugin keeps
 * its own hidden copy of the bound host table.
 */
#include <stdarg.h>
#include <stdio.h>

#include <sluice/plugin.h>

/* The fields an ABI 1.0 plugin uses; a smaller host table is refused. */
#define HOST_V1_SIZE (offsetof(sl_host_api, fail) + sizeof(void *))
/* A host table this big has fail_with (ABI 1.1). */
#define HOST_V11_SIZE (offsetof(sl_host_api, fail_with) + sizeof(void *))

static const sl_host_api *bound;

int
sl_bind(const sl_host_api *host)
{
	if (host == NULL)
		return SL_EINVAL;
	if (SL_ABI_MAJOR_OF(host->abi_version) != SL_ABI_MAJOR
	    || host->struct_size < HOST_V1_SIZE)
		return SL_EVERSION;
	bound = host;
	return SL_OK;
}

const sl_host_api *
sl_host(void)
{
	return bound;
}

const char *
sl_ev_type(const sl_event *ev)
{
	return bound != NULL ? bound->event_type(ev) : "";
}

const char *
sl_ev_stream(const sl_event *ev)
{
	return bound != NULL ? bound->event_stream(ev) : "";
}

uint64_t
sl_ev_position(const sl_event *ev)
{
	return bound != NULL ? bound->event_position(ev) : 0;
}

const char *
sl_get_str(const sl_event *ev, const char *path)
{
	const char *s = NULL;
	if (bound == NULL || bound->content_str(ev, path, &s) != SL_OK)
		return NULL;
	return s;
}

int
sl_get_i64(const sl_event *ev, const char *path, int64_t *out)
{
	if (bound == NULL)
		return SL_EINVAL;
	return bound->content_i64(ev, path, out);
}

int64_t
sl_state_i64(const sl_state *st, const char *key, int64_t dflt)
{
	int64_t v;
	if (bound == NULL || bound->state_i64(st, key, &v) != SL_OK)
		return dflt;
	return v;
}

const char *
sl_state_str(const sl_state *st, const char *key)
{
	const char *s = NULL;
	if (bound == NULL || bound->state_str(st, key, &s) != SL_OK)
		return NULL;
	return s;
}

int
sl_set_str(sl_state *st, const char *key, const char *val)
{
	if (bound == NULL)
		return SL_EINVAL;
	return bound->state_set_str(st, key, val);
}

int
sl_set_i64(sl_state *st, const char *key, int64_t val)
{
	if (bound == NULL)
		return SL_EINVAL;
	return bound->state_set_i64(st, key, val);
}

sl_outcome
sl_failf(sl_context *ctx, const char *fmt, ...)
{
	char    buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (bound == NULL)
		return SL_FAIL;
	return bound->fail(ctx, buf);
}

sl_outcome
sl_fail_with(
    sl_context *ctx, bool retry, uint32_t retry_after_ms, const char *fmt, ...)
{
	char    buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (bound == NULL)
		return SL_FAIL;
	if (bound->struct_size < HOST_V11_SIZE || bound->fail_with == NULL)
		return bound->fail(ctx, buf); /* a 1.0 host: always retried */
	return bound->fail_with(ctx, buf, retry, retry_after_ms);
}

void
sl_logf(int level, const char *fmt, ...)
{
	char    buf[1024];
	va_list ap;
	if (bound == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	bound->log(level, buf);
}
