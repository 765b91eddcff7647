/*
 * Every sl_err code has a distinct, non-empty message and symbolic name, and
 * unknown codes get the documented fallbacks instead of NULL.
 */
#include <sluice/errors.h>

#include "testutil.h"

int
main(void)
{
	for (int a = 0; a < SL_ERR_COUNT; a++) {
		const char *s = sl_strerror(a), *n = sl_errname(a);

		CHECK(s != NULL && s[0] != '\0');
		CHECK(n != NULL && n[0] != '\0');
		CHECK(strcmp(s, "unknown error") != 0);
		CHECK(strcmp(n, "EUNKNOWN") != 0);
		for (int b = 0; b < a; b++) {
			CHECK(strcmp(s, sl_strerror(b)) != 0);
			CHECK(strcmp(n, sl_errname(b)) != 0);
		}
	}
	CHECK_STREQ(sl_errname(SL_OK), "OK");
	CHECK_STREQ(sl_errname(SL_EREVISION), "EREVISION");
	CHECK_STREQ(sl_errname(SL_EINTERNAL), "EINTERNAL");

	CHECK_STREQ(sl_strerror(SL_ERR_COUNT), "unknown error");
	CHECK_STREQ(sl_strerror(-1), "unknown error");
	CHECK_STREQ(sl_strerror(1000000), "unknown error");
	CHECK_STREQ(sl_errname(SL_ERR_COUNT), "EUNKNOWN");
	CHECK_STREQ(sl_errname(-42), "EUNKNOWN");
	return 0;
}
