/* testlib.h - a minimal test harness: CHECK records a failure and goes on; each test
 * executable ends with "N passed, N failed" and exits non-zero on any failure. */
#ifndef SEGSPOOL_TESTLIB_H
#define SEGSPOOL_TESTLIB_H

#include <stdio.h>
#include <string.h>
#include <stdlib.h>

static int tl_passed, tl_failed;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (cond) {                                                                        \
			tl_passed++;                                                               \
		} else {                                                                           \
			tl_failed++;                                                               \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
		}                                                                                  \
	} while (0)

#define CHECK_INT(a, b)                                                                            \
	do {                                                                                       \
		long long tl_a = (long long)(a), tl_b = (long long)(b);                            \
		if (tl_a == tl_b) {                                                                \
			tl_passed++;                                                               \
		} else {                                                                           \
			tl_failed++;                                                               \
			fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__,  \
			        #a, tl_a, tl_b);                                                   \
		}                                                                                  \
	} while (0)

#define CHECK_STR(a, b)                                                                            \
	do {                                                                                       \
		const char *tl_a = (a), *tl_b = (b);                                               \
		if (tl_a && tl_b && strcmp(tl_a, tl_b) == 0) {                                     \
			tl_passed++;                                                               \
		} else {                                                                           \
			tl_failed++;                                                               \
			fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__,        \
			        __LINE__, #a, tl_a ? tl_a : "(null)", tl_b ? tl_b : "(null)");     \
		}                                                                                  \
	} while (0)

#define TEST(name) static void name(void)
#define RUN(name)                                                                                  \
	do {                                                                                       \
		int tl_before = tl_failed;                                                         \
		name();                                                                            \
		fprintf(stderr, "%s %s\n", tl_failed == tl_before ? "ok  " : "FAIL", #name);       \
	} while (0)

static inline int tl_finish(void)
{
	printf("%d passed, %d failed\n", tl_passed, tl_failed);
	return tl_failed ? 1 : 0;
}

#endif
