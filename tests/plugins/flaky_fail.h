/*
 * The failure rules shared by the test plugins filter_flaky and
 * filter_unpartitioned (and filter_flaky's projection), read from the content
 * of every event their callbacks see:
 *   "fatal": true          fail with retry=false (fail_with), reason
 *                          "fatal: <type> at position <pos>"
 *   "fail_times": N        fail while N > the retry attempt, reason
 *                          "flaky attempt <attempt>" (so N failures, then
 *                          success on attempt N)
 *   "retry_after_ms": M    with fail_times: fail through fail_with(retry
 *                          true, M) instead of fail (host's growing delay)
 * "fatal" wins over "fail_times". FLAKY_DELAY_US in the daemon's
 * environment makes every call busy for that long first (a rebuild that
 * lasts long enough to be interrupted).
 */
#ifndef SL_TEST_FLAKY_FAIL_H
#define SL_TEST_FLAKY_FAIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <sluice/plugin.h>

static void
flaky_delay(void)
{
	static long delay_us = -1;
	if (delay_us < 0) {
		const char *env = getenv("FLAKY_DELAY_US");
		delay_us        = env != NULL ? atol(env) : 0;
		if (delay_us < 0)
			delay_us = 0;
	}
	if (delay_us == 0)
		return;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	do
		clock_gettime(CLOCK_MONOTONIC, &b);
	while ((b.tv_sec - a.tv_sec) * 1000000L
	        + (b.tv_nsec - a.tv_nsec) / 1000L
	    < delay_us);
}

/* Whether ev fails on this attempt; if so the failure is recorded in ctx. */
static bool
flaky_fails(const sl_event *ev, sl_context *ctx)
{
	const sl_host_api *host  = sl_host();
	flaky_delay();
	bool               fatal = false;
	if (host->content_bool(ev, "fatal", &fatal) == SL_OK && fatal) {
		sl_fail_with(ctx, false, 0, "fatal: %s at position %llu",
		    sl_ev_type(ev), (unsigned long long) sl_ev_position(ev));
		return true;
	}
	int64_t  times   = 0;
	uint32_t attempt = host->retry_attempt(ctx);
	if (host->content_i64(ev, "fail_times", &times) != SL_OK
	    || times <= (int64_t) attempt)
		return false;
	int64_t after = 0;
	if (host->content_i64(ev, "retry_after_ms", &after) == SL_OK
	    && after > 0)
		sl_fail_with(ctx, true,
		    after > (int64_t) UINT32_MAX ? UINT32_MAX
		                                 : (uint32_t) after,
		    "flaky attempt %u", attempt);
	else
		sl_failf(ctx, "flaky attempt %u", attempt);
	return true;
}

#endif
