/* test_ratelimit - token buckets driven by a simulated clock. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ratelimit.h"
#include "testlib.h"

#define T0 1795662000000LL

/* drain - takes every token the bucket allows in [from, until), stepping 1 ms, and
 * records when; returns how many were taken. */
static int drain(struct rl_bucket *b, int64_t from, int64_t until, int64_t *when, int max)
{
	int n = 0;
	for (int64_t t = from; t < until; t++) {
		while (rl_wait_ms(b, t) == 0 && n < max) {
			rl_take(b, t);
			if (when)
				when[n] = t;
			n++;
		}
	}
	return n;
}

TEST(ten_per_second)
{
	struct ratelimit *rl = rl_new();
	struct rl_bucket *b = rl_bucket_get(rl, "ws:default", 10, 1, T0);
	int64_t when[32];
	/*
	 * Burst 1 at 10/s: the bucket starts with its one token, then one more every 100 ms.
	 * In [T0, T0 + 1000) that is exactly 10 takes, at T0, T0+100, ..., T0+900; the 11th
	 * token arrives at T0 + 1000, outside the interval.
	 */
	int n = drain(b, T0, T0 + 1000, when, 32);
	CHECK_INT(n, 10);
	for (int i = 0; i < n && i < 10; i++)
		CHECK_INT(when[i], T0 + 100 * i);
	CHECK_INT(rl_wait_ms(b, T0 + 950), 50);
	CHECK_INT(rl_wait_ms(b, T0 + 1000), 0);
	/* the same over a long run: 10 a second, with no drift from refill arithmetic */
	n = drain(b, T0 + 1000, T0 + 61000, NULL, 1000);
	CHECK_INT(n, 600);
	rl_free(rl);
}

TEST(burst_then_rate)
{
	struct ratelimit *rl = rl_new();
	/* 3 per second with a burst of 5: five at once, then one every 333.3 ms */
	struct rl_bucket *b = rl_bucket_get(rl, "k", 3, 5, T0);
	int64_t when[16];
	int n = drain(b, T0, T0 + 1001, when, 16);
	CHECK_INT(n, 8);
	for (int i = 0; i < 5; i++)
		CHECK_INT(when[i], T0);
	CHECK_INT(when[5], T0 + 334);
	CHECK_INT(when[6], T0 + 667);
	CHECK_INT(when[7], T0 + 1000);
	/* idle for a minute: refills to the burst, not beyond */
	CHECK_INT(drain(b, T0 + 61000, T0 + 61001, NULL, 100), 5);
	rl_free(rl);
}

TEST(hold)
{
	struct ratelimit *rl = rl_new();
	struct rl_bucket *b = rl_bucket_get(rl, "ws:default", 10, 10, T0);
	struct rl_bucket *other = rl_bucket_get(rl, "ws:other", 10, 10, T0);
	rl_take(b, T0);
	rl_hold(b, T0 + 5000);
	/* the whole bucket waits, although it had 9 tokens */
	CHECK_INT(rl_wait_ms(b, T0), 5000);
	CHECK_INT(rl_wait_ms(b, T0 + 4999), 1);
	CHECK_INT(rl_wait_ms(b, T0 + 5000), 0);
	/* a shorter hold does not cut a longer one short */
	rl_hold(b, T0 + 2000);
	CHECK_INT(rl_wait_ms(b, T0 + 3000), 2000);
	/* another bucket is not held */
	CHECK_INT(rl_wait_ms(other, T0), 0);
	/* a short hold: the emptied tokens decide (one token = 100 ms at 10/s) */
	struct rl_bucket *c = rl_bucket_get(rl, "short", 10, 10, T0);
	rl_take(c, T0);
	rl_hold(c, T0 + 30);
	CHECK_INT(rl_wait_ms(c, T0), 100);
	CHECK_INT(rl_wait_ms(c, T0 + 100), 0);
	rl_free(rl);
}

TEST(observe)
{
	struct ratelimit *rl = rl_new();
	struct rl_bucket *b = rl_bucket_get(rl, "ws:default", 10, 20, T0);
	/* the server counts others' requests too: fewer remaining lowers our tokens */
	rl_observe(b, 3, T0 + 60000, T0);
	double tokens;
	int64_t updated, hold;
	rl_bucket_state(b, &tokens, &updated, &hold);
	CHECK(tokens == 3.0);
	CHECK_INT(updated, T0);
	CHECK_INT(drain(b, T0, T0 + 1, NULL, 100), 3);
	/* more remaining than we hold does not raise them */
	rl_observe(b, 50, T0 + 60000, T0);
	rl_bucket_state(b, &tokens, &updated, &hold);
	CHECK(tokens == 0.0);
	/* unknown remaining (-1) changes nothing */
	rl_observe(b, -1, 0, T0 + 100);
	CHECK_INT(rl_wait_ms(b, T0 + 100), 0);
	/* nothing remaining: held until the reset */
	rl_observe(b, 0, T0 + 30000, T0 + 100);
	CHECK_INT(rl_wait_ms(b, T0 + 100), 29900);
	CHECK_INT(rl_wait_ms(b, T0 + 30000), 0);
	/* nothing remaining with an unknown or past reset: empty, but no hold */
	struct rl_bucket *c = rl_bucket_get(rl, "c", 10, 5, T0);
	rl_observe(c, 0, 0, T0);
	CHECK_INT(rl_wait_ms(c, T0), 100);
	rl_observe(c, 0, T0 - 5, T0);
	rl_bucket_state(c, &tokens, &updated, &hold);
	CHECK_INT(hold, 0);
	rl_free(rl);
}

TEST(restore)
{
	struct ratelimit *rl = rl_new();
	/* restored before the configuration gives the rates: an empty bucket stays empty */
	rl_restore(rl, "ws:default", 0, T0, T0 + 2000);
	struct rl_bucket *b = rl_bucket_get(rl, "ws:default", 10, 50, T0);
	double tokens;
	int64_t updated, hold;
	rl_bucket_state(b, &tokens, &updated, &hold);
	CHECK(tokens == 0.0);
	CHECK_INT(hold, T0 + 2000);
	CHECK_INT(rl_wait_ms(b, T0), 2000);
	/* after the hold, the 2 s of refill have put 20 tokens in, not the burst of 50 */
	CHECK_INT(drain(b, T0 + 2000, T0 + 2001, NULL, 100), 20);

	/* time the daemon was down still refills, up to the burst */
	rl_restore(rl, "slow", 0.5, T0 - 1000, 0);
	struct rl_bucket *s = rl_bucket_get(rl, "slow", 1, 5, T0);
	CHECK_INT(rl_wait_ms(s, T0), 0);
	rl_take(s, T0);
	CHECK_INT(rl_wait_ms(s, T0), 500);

	/* a saved state from a later clock does not stall the bucket */
	rl_restore(rl, "future", 0, T0 + 3600000, 0);
	struct rl_bucket *f = rl_bucket_get(rl, "future", 10, 5, T0);
	CHECK_INT(rl_wait_ms(f, T0), 100);
	CHECK_INT(rl_wait_ms(f, T0 + 100), 0);

	/* restoring a configured bucket clamps to its burst */
	rl_restore(rl, "slow", 100, T0, 0);
	rl_bucket_state(s, &tokens, &updated, &hold);
	CHECK(tokens == 5.0);

	/* a state round-trips through a second limiter */
	struct ratelimit *again = rl_new();
	rl_bucket_state(b, &tokens, &updated, &hold);
	rl_restore(again, rl_bucket_key(b), tokens, updated, hold);
	struct rl_bucket *b2 = rl_bucket_get(again, "ws:default", 10, 50, updated);
	double tokens2;
	int64_t updated2, hold2;
	rl_bucket_state(b2, &tokens2, &updated2, &hold2);
	CHECK(tokens2 == tokens);
	CHECK_INT(updated2, updated);
	CHECK_INT(hold2, hold);
	rl_free(again);
	rl_free(rl);
}

TEST(rates_change)
{
	struct ratelimit *rl = rl_new();
	struct rl_bucket *b = rl_bucket_get(rl, "k", 10, 10, T0);
	/* same key, same bucket; the new burst clamps the tokens */
	CHECK(rl_bucket_get(rl, "k", 1, 2, T0) == b);
	CHECK_INT(drain(b, T0, T0 + 1, NULL, 100), 2);
	CHECK_INT(rl_wait_ms(b, T0), 1000);
	/* a burst below one token is raised to one, or nothing would ever pass */
	struct rl_bucket *z = rl_bucket_get(rl, "z", 5, 0, T0);
	CHECK_INT(drain(z, T0, T0 + 1000, NULL, 100), 5);
	rl_free(rl);
}

TEST(unlimited)
{
	struct ratelimit *rl = rl_new();
	struct rl_bucket *b = rl_bucket_get(rl, "free", 0, 0, T0);
	for (int i = 0; i < 10000; i++) {
		if (rl_wait_ms(b, T0) != 0)
			break;
		rl_take(b, T0);
	}
	CHECK_INT(rl_wait_ms(b, T0), 0);
	/* the server's hold still applies: a 429 means stop, whatever we configured */
	rl_hold(b, T0 + 700);
	CHECK_INT(rl_wait_ms(b, T0), 700);
	CHECK_INT(rl_wait_ms(b, T0 + 700), 0);
	/* given a rate later, it starts full */
	rl_bucket_get(rl, "free", 1, 3, T0 + 700);
	CHECK_INT(drain(b, T0 + 700, T0 + 701, NULL, 100), 3);
	rl_free(rl);
}

TEST(parse_rate)
{
	double r = 0;
	CHECK_INT(rl_parse_rate("100/s", &r), 0);
	CHECK(r == 100.0);
	CHECK_INT(rl_parse_rate("100/sec", &r), 0);
	CHECK(r == 100.0);
	CHECK_INT(rl_parse_rate("5/min", &r), 0);
	CHECK(r == 5.0 / 60.0);
	CHECK_INT(rl_parse_rate("60/m", &r), 0);
	CHECK(r == 1.0);
	CHECK_INT(rl_parse_rate("3600/h", &r), 0);
	CHECK(r == 1.0);
	CHECK_INT(rl_parse_rate("20", &r), 0);
	CHECK(r == 20.0);
	CHECK_INT(rl_parse_rate("0.5/s", &r), 0);
	CHECK(r == 0.5);
	r = -7;
	static const char *const bad[] = {
	    "0",    "0/s",  "0.0/min", "-5/s",  "-5",    "abc",
	    "",     "/s",   "5/",      "5/day", "5/S",   " 5/s",
	    "5 /s", "5/s ", "+5/s",    "inf",   "nan",   "0x10",
	    "1e3",  "5//s", ".5/s",    "5.",    "5/s/s", "99999999999999999999999999999999999/s",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = rl_parse_rate(bad[i], &r);
		if (rc != -1)
			fprintf(stderr, "accepted \"%s\"\n", bad[i]);
		CHECK_INT(rc, -1);
	}
	CHECK(r == -7.0);
	CHECK_INT(rl_parse_rate(NULL, &r), -1);
}

struct visit {
	int count;
	long long key_sum;
};

/* count_bucket - rl_foreach callback: counts buckets and sums the numbers in their keys. */
static void count_bucket(const struct rl_bucket *b, void *arg)
{
	struct visit *v = arg;
	int k = 0;
	v->count++;
	if (sscanf(rl_bucket_key(b), "ws:%d", &k) == 1)
		v->key_sum += k;
}

TEST(many_keys)
{
	struct ratelimit *rl = rl_new();
	struct rl_bucket *first[1000];
	char key[32];
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "ws:%d", i);
		first[i] = rl_bucket_get(rl, key, i + 1, 1, T0);
		rl_take(first[i], T0);
	}
	/* lookups after the table grew find the same buckets, with their own state */
	int same = 0, own_rate = 0;
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "ws:%d", i);
		struct rl_bucket *b = rl_bucket_get(rl, key, i + 1, 1, T0);
		same += b == first[i];
		own_rate += rl_wait_ms(b, T0) == (1000 + i) / (i + 1);
		CHECK_STR(rl_bucket_key(b), key);
	}
	CHECK_INT(same, 1000);
	CHECK_INT(own_rate, 1000);
	struct visit v = {0, 0};
	rl_foreach(rl, count_bucket, &v);
	CHECK_INT(v.count, 1000);
	CHECK_INT(v.key_sum, 999 * 1000 / 2);
	rl_free(rl);
	rl_free(NULL);
}

TEST(reset_header)
{
	/* Segment sends an HTTP date */
	CHECK_INT(rl_reset_ms("Thu, 26 Nov 2026 03:01:00 GMT", T0), T0 + 60000);
	/* a large count is epoch seconds, a small one seconds from now */
	CHECK_INT(rl_reset_ms("1795662060", T0), T0 + 60000);
	CHECK_INT(rl_reset_ms("30", T0), T0 + 30000);
	CHECK_INT(rl_reset_ms("1000000000", T0), T0 + 1000000000000LL);
	/* past any date: saturates instead of overflowing */
	CHECK_INT(rl_reset_ms("9223372036854775", T0), 9223372036854775000LL);
	CHECK_INT(rl_reset_ms("9223372036854776", T0), INT64_MAX);
	CHECK_INT(rl_reset_ms("99999999999999999999999", T0), INT64_MAX);
	CHECK_INT(rl_reset_ms("0", T0), 0);
	CHECK_INT(rl_reset_ms("-5", T0), 0);
	CHECK_INT(rl_reset_ms("12s", T0), 0);
	CHECK_INT(rl_reset_ms("", T0), 0);
	CHECK_INT(rl_reset_ms(NULL, T0), 0);
}

TEST(cap_wait)
{
	struct ratelimit *rl = rl_new();
	struct rl_bucket *b = rl_bucket_get(rl, "ws:default", 10, 10, T0);
	struct rl_bucket *other = rl_bucket_get(rl, "ws:other", 10, 10, T0);
	int warn = -1;
	const int64_t hour = 3600000, year = 8760 * hour;
	/* within the cap: as asked, nothing to say */
	CHECK_INT(rl_cap_wait(b, hour, hour, T0, &warn), hour);
	CHECK_INT(warn, 0);
	CHECK_INT(rl_cap_wait(b, 0, hour, T0, &warn), 0);
	CHECK_INT(warn, 0);
	/* past it: cut, and said once for the hold, not for every job that meets it */
	CHECK_INT(rl_cap_wait(b, year, hour, T0, &warn), hour);
	CHECK_INT(warn, 1);
	CHECK_INT(rl_cap_wait(b, year, hour, T0 + 10, &warn), hour);
	CHECK_INT(warn, 0);
	CHECK_INT(rl_cap_wait(b, hour + 1, hour, T0 + hour - 1, &warn), hour);
	CHECK_INT(warn, 0);
	/* another bucket has its own hold */
	CHECK_INT(rl_cap_wait(other, year, hour, T0 + 10, &warn), hour);
	CHECK_INT(warn, 1);
	/* the answer at T0 + 1h - 1 renewed it until T0 + 2h - 1 (and this one to T0 + 3h - 2):
	 * from then on it is a new hold */
	CHECK_INT(rl_cap_wait(b, year, hour, T0 + 2 * hour - 2, &warn), hour);
	CHECK_INT(warn, 0);
	CHECK_INT(rl_cap_wait(b, year, hour, T0 + 3 * hour - 2, &warn), hour);
	CHECK_INT(warn, 1);
	/* no cap */
	CHECK_INT(rl_cap_wait(b, year, 0, T0, &warn), year);
	CHECK_INT(warn, 0);
	/* near the end of time */
	CHECK_INT(rl_cap_wait(b, INT64_MAX, hour, INT64_MAX - 5, &warn), hour);
	CHECK_INT(warn, 1);
	rl_free(rl);
}

TEST(floor_429)
{
	struct ratelimit *rl = rl_new();
	struct rl_bucket *b = rl_bucket_get(rl, "ws:default", 0, 10, T0);
	struct rl_bucket *other = rl_bucket_get(rl, "ws:other", 0, 10, T0);
	const int64_t hour = 3600000;
	/* 1 s, doubling while each retry after the hold meets another 429 */
	static const int64_t floors[] = {1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000};
	int64_t t = T0;
	for (size_t i = 0; i < sizeof(floors) / sizeof(floors[0]); i++) {
		CHECK_INT(rl_note_429(b, t, hour), floors[i]);
		rl_hold(b, t + floors[i]);
		t += floors[i];
	}
	/* another bucket counts its own */
	CHECK_INT(rl_note_429(other, t, hour), 1000);
	/* an answer that is not a 429: the next 429 starts again from a second */
	rl_note_answer(b);
	CHECK_INT(rl_note_429(b, t + 10, hour), 1000);
	/* a first 429 during another hold (X-RateLimit-Reset's) is still the first */
	struct rl_bucket *c = rl_bucket_get(rl, "c", 0, 10, T0);
	rl_hold(c, T0 + 30000);
	CHECK_INT(rl_note_429(c, T0, hour), 1000);
	rl_free(rl);
}

TEST(floor_429_in_flight)
{
	struct ratelimit *rl = rl_new();
	struct rl_bucket *b = rl_bucket_get(rl, "ws:default", 0, 10, T0);
	/* sixteen requests in flight together, all answered 429: one overload, one count */
	CHECK_INT(rl_note_429(b, T0, 3600000), 1000);
	rl_hold(b, T0 + 1000);
	for (int i = 1; i < 16; i++)
		CHECK_INT(rl_note_429(b, T0 + i, 3600000), 1000);
	/* the retries after the hold meet 429s too: the first grows the floor, once */
	CHECK_INT(rl_note_429(b, T0 + 1000, 3600000), 2000);
	rl_hold(b, T0 + 3000);
	for (int i = 1; i < 16; i++)
		CHECK_INT(rl_note_429(b, T0 + 1000 + i, 3600000), 2000);
	rl_free(rl);
}

TEST(floor_429_cap)
{
	struct ratelimit *rl = rl_new();
	struct rl_bucket *b = rl_bucket_get(rl, "ws:default", 0, 10, T0);
	/* a max_server_wait under 60 s caps the floor instead */
	int64_t t = T0, f = 0;
	for (int i = 0; i < 10; i++, t += 10000)
		f = rl_note_429(b, t, 5000);
	CHECK_INT(f, 5000);
	/* and one under a second caps even the first */
	struct rl_bucket *c = rl_bucket_get(rl, "c", 0, 10, T0);
	CHECK_INT(rl_note_429(c, T0, 500), 500);
	/* a long run of 429s does not overflow */
	for (int i = 0; i < 100000; i++, t += 10)
		f = rl_note_429(b, t, 3600000);
	CHECK_INT(f, 60000);
	rl_free(rl);
}

TEST(hold_clamp)
{
	const int64_t hour = 3600000;
	CHECK_INT(rl_hold_clamp(0, T0, hour), 0);
	CHECK_INT(rl_hold_clamp(T0 - 5, T0, hour), T0 - 5);
	CHECK_INT(rl_hold_clamp(T0 + hour, T0, hour), T0 + hour);
	CHECK_INT(rl_hold_clamp(T0 + 8760 * hour, T0, hour), T0 + hour);
	CHECK_INT(rl_hold_clamp(INT64_MAX, T0, hour), T0 + hour);
	CHECK_INT(rl_hold_clamp(INT64_MAX, T0, 0), INT64_MAX);
	CHECK_INT(rl_hold_clamp(INT64_MAX, INT64_MAX - 10, hour), INT64_MAX);
}

/* endpoint_burst - a tenth of the minute's allowance goes at once, in whole requests, and
 * never less than one. */
TEST(endpoint_burst)
{
	CHECK(rl_endpoint_burst(60) == 6);
	CHECK(rl_endpoint_burst(65) == 6);
	CHECK(rl_endpoint_burst(600) == 60);
	CHECK(rl_endpoint_burst(20) == 2);
	CHECK(rl_endpoint_burst(15) == 1);
	CHECK(rl_endpoint_burst(5) == 1);
	CHECK(rl_endpoint_burst(1) == 1);
}

int main(void)
{
	RUN(ten_per_second);
	RUN(burst_then_rate);
	RUN(hold);
	RUN(observe);
	RUN(restore);
	RUN(rates_change);
	RUN(unlimited);
	RUN(parse_rate);
	RUN(many_keys);
	RUN(reset_header);
	RUN(cap_wait);
	RUN(floor_429);
	RUN(floor_429_in_flight);
	RUN(floor_429_cap);
	RUN(hold_clamp);
	RUN(endpoint_burst);
	return tl_finish();
}
