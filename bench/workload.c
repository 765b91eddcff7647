/*
 * Generated events (see workload.h). Deterministic for a given seed, so a
 * run's data can be regenerated; the sizes match the issue's ~300-byte
 * append events and the README's Account Details events.
 */
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "workload.h"

void
wl_append_content(char *buf, size_t len, const char *stream, uint64_t seq)
{
	/* 240 characters of memo make the msgpack content ~300 bytes. */
	static const char memo[] = "Monthly settlement of the account: "
	                           "interest, fees and transfers booked "
	                           "in one line so that the event carries "
	                           "a realistic payload of a few hundred "
	                           "bytes, as business events usually do. "
	                           "Reference 0123456789 ABCDEFGHIJ xyz.";
	snprintf(buf, len,
	    "{\"account_id\":\"%s\",\"amount\":%llu,\"currency\":\"EUR\","
	    "\"seq\":%llu,\"memo\":\"%s\"}",
	    stream, (unsigned long long) (seq % 100000 + 1),
	    (unsigned long long) seq, memo);
}

void
wl_account_id(char *buf, size_t len, uint32_t a)
{
	snprintf(buf, len, "acc-%06u", a);
}

void
wl_open(wl_event *e, uint32_t a)
{
	e->type = "DebitAccountOpened";
	wl_account_id(e->stream, sizeof(e->stream), a);
	snprintf(e->content, sizeof(e->content),
	    "{\"account_id\":\"%s\",\"name\":\"Everyday %u\"}", e->stream, a);
}

void
wl_customer(wl_event *e, uint32_t a)
{
	char acc[32];
	wl_account_id(acc, sizeof(acc), a);
	e->type = "CustomerRegistered";
	snprintf(e->stream, sizeof(e->stream), "cust-%06u", a);
	snprintf(e->content, sizeof(e->content),
	    "{\"customer_id\":\"%s\",\"name\":\"Customer %u\","
	    "\"account\":{\"id\":\"%s\"}}",
	    e->stream, a, acc);
}

void
wl_money(wl_event *e, uint32_t a, uint64_t *rng)
{
	uint64_t r = bench_rand(rng);
	wl_account_id(e->stream, sizeof(e->stream), a);
	if (r % 3 != 0) {
		e->type = "DebitPerformed";
		snprintf(e->content, sizeof(e->content), "{\"amount\":%llu}",
		    (unsigned long long) (r >> 8) % 1000 + 1);
	} else {
		e->type = "WithdrawalPerformed";
		snprintf(e->content, sizeof(e->content),
		    "{\"account_id\":\"%s\",\"amount\":%llu}", e->stream,
		    (unsigned long long) (r >> 8) % 500 + 1);
	}
}
