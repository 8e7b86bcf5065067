/* ratelimit.c - token buckets keyed by name, in an open-addressing hash table.
 *
 * Pure: every function that needs the time takes it as now_ms. Tokens refill
 * continuously at rate_per_sec up to burst; rl_wait_ms reads the bucket without changing
 * it, so asking often does not accumulate rounding error.
 *
 * Decisions the header leaves open:
 *  - a hold applies to unlimited buckets too: a 429 from the server stops the requests
 *    whatever our own configuration thought the limit was;
 *  - a burst below 1 is raised to 1, or the bucket could never hand out a token;
 *  - rl_take may drive tokens below 0 when called out of turn: the debt is repaid by
 *    refilling before the next token is handed out;
 *  - a time earlier than the bucket's last update (a clock step back) refills nothing
 *    and restarts the refill from that time;
 *  - rl_hold has no clock: it empties the tokens as of the bucket's last update, and they
 *    refill during the hold (the server's window resets too), so a hold longer than one
 *    token's interval ends with a token ready.
 */
#include "ratelimit.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* slack for floating-point refill sums that land a hair under a whole token */
#define TOKEN_EPSILON 1e-6
/* longest wait reported: keeps the double-to-integer conversion defined */
#define WAIT_MAX_MS 1e15
/* the first 429 on a bucket waits at least this; each further one in a row doubles it */
#define FLOOR_429_MS 1000
/* the doubling stops here (or at max_server_wait, when that is lower) */
#define FLOOR_429_MAX_MS 60000

struct rl_bucket {
	char *key;
	double rate;   /* tokens per second; <= 0 unlimited */
	double burst;  /* most tokens held */
	double tokens; /* as of updated_ms */
	int64_t updated_ms;
	int64_t hold_until_ms;
	int configured;          /* 0 after rl_restore until rl_bucket_get gives its rates */
	int n429;                /* 429s in a row on this bucket, since its last other answer */
	int64_t warned_until_ms; /* a cut server wait was reported for the hold up to here */
};

struct ratelimit {
	struct rl_bucket **slots; /* buckets are separate allocations: pointers stay valid */
	size_t cap;               /* a power of two */
	size_t count;
};

/* rl_new - an empty set of buckets. */
struct ratelimit *rl_new(void)
{
	struct ratelimit *rl = xmalloc(sizeof(*rl));
	rl->cap = 16;
	rl->count = 0;
	rl->slots = xcalloc(rl->cap, sizeof(*rl->slots));
	return rl;
}

/* rl_free - frees the table and every bucket in it. */
void rl_free(struct ratelimit *rl)
{
	if (!rl)
		return;
	for (size_t i = 0; i < rl->cap; i++) {
		if (rl->slots[i]) {
			free(rl->slots[i]->key);
			free(rl->slots[i]);
		}
	}
	free(rl->slots);
	free(rl);
}

/* slot_of - the slot holding key, or the empty slot where it belongs. */
static size_t slot_of(const struct ratelimit *rl, const char *key)
{
	size_t mask = rl->cap - 1;
	size_t i = (size_t)fnv1a64(key, FNV1A64_INIT) & mask;
	while (rl->slots[i] && strcmp(rl->slots[i]->key, key) != 0)
		i = (i + 1) & mask;
	return i;
}

/* grow - doubles the table; linear probing stays short below half full. */
static void grow(struct ratelimit *rl)
{
	struct rl_bucket **old = rl->slots;
	size_t old_cap = rl->cap;
	rl->cap *= 2;
	rl->slots = xcalloc(rl->cap, sizeof(*rl->slots));
	for (size_t i = 0; i < old_cap; i++)
		if (old[i])
			rl->slots[slot_of(rl, old[i]->key)] = old[i];
	free(old);
}

/* find_or_add - the bucket of key; a new one is zeroed, unconfigured, and *created set. */
static struct rl_bucket *find_or_add(struct ratelimit *rl, const char *key, int *created)
{
	size_t i = slot_of(rl, key);
	*created = 0;
	if (rl->slots[i])
		return rl->slots[i];
	if ((rl->count + 1) * 2 > rl->cap) {
		grow(rl);
		i = slot_of(rl, key);
	}
	struct rl_bucket *b = xcalloc(1, sizeof(*b));
	b->key = xstrdup(key);
	rl->slots[i] = b;
	rl->count++;
	*created = 1;
	return b;
}

/* tokens_at - what the bucket holds at now_ms, without changing it. */
static double tokens_at(const struct rl_bucket *b, int64_t now_ms)
{
	double t = b->tokens;
	if (b->rate > 0 && now_ms > b->updated_ms) {
		t += (double)(now_ms - b->updated_ms) * b->rate / 1000.0;
		if (t > b->burst)
			t = b->burst;
	}
	return t;
}

/* rebase - a clock that went back (or a state saved under another clock) restarts the
 * refill from now instead of stalling the bucket until the old time comes round again. */
static void rebase(struct rl_bucket *b, int64_t now_ms)
{
	if (now_ms < b->updated_ms)
		b->updated_ms = now_ms;
}

/* refill - brings tokens and updated_ms forward to now_ms. */
static void refill(struct rl_bucket *b, int64_t now_ms)
{
	rebase(b, now_ms);
	b->tokens = tokens_at(b, now_ms);
	b->updated_ms = now_ms;
}

/* set_rates - the configured rate and burst; tokens never exceed the burst. */
static void set_rates(struct rl_bucket *b, double rate_per_sec, double burst)
{
	b->rate = rate_per_sec;
	b->burst = burst < 1 ? 1 : burst;
	if (b->tokens > b->burst)
		b->tokens = b->burst;
}

/* rl_bucket_get - the bucket of key, created full, or updated to the given rates. */
struct rl_bucket *rl_bucket_get(struct ratelimit *rl, const char *key, double rate_per_sec,
                                double burst, int64_t now_ms)
{
	int created;
	struct rl_bucket *b = find_or_add(rl, key, &created);
	if (created) {
		set_rates(b, rate_per_sec, burst);
		b->tokens = b->burst;
		b->updated_ms = now_ms;
	} else if (!b->configured) {
		/* restored from the store: its tokens stand, or a restart would be a burst */
		set_rates(b, rate_per_sec, burst);
		refill(b, now_ms);
	} else {
		int was_unlimited = b->rate <= 0;
		refill(b, now_ms);
		set_rates(b, rate_per_sec, burst);
		/* an unlimited bucket kept no count; it starts full, like a new one */
		if (was_unlimited && b->rate > 0) {
			b->tokens = b->burst;
			b->updated_ms = now_ms;
		}
	}
	b->configured = 1;
	return b;
}

/* rl_wait_ms - 0 if a request may go now, else the ms until the hold ends and a token is in. */
int64_t rl_wait_ms(struct rl_bucket *b, int64_t now_ms)
{
	int64_t hold = b->hold_until_ms > now_ms ? b->hold_until_ms - now_ms : 0;
	rebase(b, now_ms);
	if (b->rate <= 0)
		return hold;
	double missing = 1.0 - tokens_at(b, now_ms);
	if (missing <= TOKEN_EPSILON)
		return hold;
	double ms = missing * 1000.0 / b->rate;
	if (ms > WAIT_MAX_MS)
		ms = WAIT_MAX_MS;
	/* round up, but not past a whole ms that the epsilon already covers */
	int64_t wait = (int64_t)ms;
	if ((double)wait < ms - TOKEN_EPSILON)
		wait++;
	if (wait < 1)
		wait = 1;
	return wait > hold ? wait : hold;
}

/* rl_take - spends one token. */
void rl_take(struct rl_bucket *b, int64_t now_ms)
{
	if (b->rate <= 0)
		return;
	refill(b, now_ms);
	b->tokens -= 1.0;
	/* a sum a hair under a whole token counted as one: do not carry the crumb as debt */
	if (b->tokens < 0 && b->tokens > -TOKEN_EPSILON)
		b->tokens = 0;
}

/* rl_hold - nothing passes before until_ms; a shorter hold never cuts a longer one short. */
void rl_hold(struct rl_bucket *b, int64_t until_ms)
{
	b->tokens = 0;
	if (until_ms > b->hold_until_ms)
		b->hold_until_ms = until_ms;
}

/* rl_observe - takes the server's count, which other clients of the token share. */
void rl_observe(struct rl_bucket *b, int64_t remaining, int64_t reset_ms, int64_t now_ms)
{
	refill(b, now_ms);
	if (remaining == 0 && reset_ms > now_ms) {
		rl_hold(b, reset_ms);
		return;
	}
	if (remaining >= 0 && (double)remaining < b->tokens)
		b->tokens = (double)remaining;
}

/* rl_reset_ms - X-RateLimit-Reset: an HTTP date (Segment), epoch seconds, or seconds
 * from now (a count too small to be an epoch time); 0 when absent or unreadable. */
int64_t rl_reset_ms(const char *v, int64_t now_ms)
{
	int64_t ms;
	if (!v || !*v)
		return 0;
	if (parse_http_date(v, &ms) == 0)
		return ms;
	char *end;
	long long n = strtoll(v, &end, 10);
	if (*end || n <= 0)
		return 0;
	/* a count past any date saturates (strtoll gives LLONG_MAX for one past its range) */
	if (n > INT64_MAX / 1000)
		return INT64_MAX;
	if (n > 1000000000LL)
		return (int64_t)n * 1000;
	return now_ms + (int64_t)n * 1000;
}

/* rl_cap_wait - the server's wait, cut to max_ms; *warn once per hold of the bucket. */
int64_t rl_cap_wait(struct rl_bucket *b, int64_t wait_ms, int64_t max_ms, int64_t now_ms, int *warn)
{
	*warn = 0;
	if (max_ms <= 0 || wait_ms <= max_ms)
		return wait_ms;
	/* the other jobs that meet this hold, and the answers that renew it, say nothing more */
	if (now_ms >= b->warned_until_ms)
		*warn = 1;
	if (now_ms > INT64_MAX - max_ms)
		b->warned_until_ms = INT64_MAX;
	else if (now_ms + max_ms > b->warned_until_ms)
		b->warned_until_ms = now_ms + max_ms;
	return max_ms;
}

/* rl_note_429 - counts a 429; the least it waits, 1 s doubling per 429 in a row, up to
 * 60 s or max_ms, whichever is lower. The 429s of requests that were in flight together
 * answer one overload: one that comes while the hold of an earlier one lasts (or any
 * other hold) is not counted again, so the floor grows only when a wait did not help. */
int64_t rl_note_429(struct rl_bucket *b, int64_t now_ms, int64_t max_ms)
{
	int64_t cap = max_ms > 0 && max_ms < FLOOR_429_MAX_MS ? max_ms : FLOOR_429_MAX_MS;
	if ((b->n429 == 0 || now_ms >= b->hold_until_ms) && b->n429 < INT32_MAX)
		b->n429++;
	int64_t floor = FLOOR_429_MS;
	for (int i = 1; i < b->n429 && floor < cap; i++)
		floor *= 2;
	return floor < cap ? floor : cap;
}

/* rl_note_answer - any answer but a 429: the next 429 starts from the first floor again. */
void rl_note_answer(struct rl_bucket *b)
{
	b->n429 = 0;
}

/* rl_hold_clamp - a hold ending no later than now + max_ms (max_ms 0 or less: as it is). */
int64_t rl_hold_clamp(int64_t hold_until_ms, int64_t now_ms, int64_t max_ms)
{
	if (max_ms <= 0 || now_ms > INT64_MAX - max_ms)
		return hold_until_ms;
	return hold_until_ms > now_ms + max_ms ? now_ms + max_ms : hold_until_ms;
}

/* rl_bucket_key - the bucket's name. */
const char *rl_bucket_key(const struct rl_bucket *b)
{
	return b->key;
}

/* rl_bucket_state - what rl_restore needs to carry the bucket over a restart. */
void rl_bucket_state(const struct rl_bucket *b, double *tokens, int64_t *updated_ms,
                     int64_t *hold_until_ms)
{
	*tokens = b->tokens;
	*updated_ms = b->updated_ms;
	*hold_until_ms = b->hold_until_ms;
}

/* rl_restore - a saved state, before or after rl_bucket_get has given the rates. */
void rl_restore(struct ratelimit *rl, const char *key, double tokens, int64_t updated_ms,
                int64_t hold_until_ms)
{
	int created;
	struct rl_bucket *b = find_or_add(rl, key, &created);
	b->tokens = tokens;
	b->updated_ms = updated_ms;
	b->hold_until_ms = hold_until_ms;
	if (b->configured && b->tokens > b->burst)
		b->tokens = b->burst;
}

/* rl_foreach - calls fn for every bucket, in no particular order. */
void rl_foreach(struct ratelimit *rl, rl_bucket_fn fn, void *arg)
{
	for (size_t i = 0; i < rl->cap; i++)
		if (rl->slots[i])
			fn(rl->slots[i], arg);
}

/* parse_count - a positive decimal "20" or "0.5"; returns the end, or NULL. */
static const char *parse_count(const char *s, double *out)
{
	const char *p = s;
	int digits = 0;
	while (*p >= '0' && *p <= '9') {
		p++;
		digits++;
	}
	if (*p == '.') {
		p++;
		/* "5." is not a number anyone means to write */
		if (*p < '0' || *p > '9')
			return NULL;
		while (*p >= '0' && *p <= '9') {
			p++;
			digits++;
		}
	}
	/* a leading digit rules out strtod's own extras: signs, spaces, "inf", hex */
	if (!digits || *s < '0' || *s > '9' || p - s > 32)
		return NULL;
	*out = strtod(s, NULL);
	if (!(*out > 0))
		return NULL;
	return p;
}

/* period_seconds - the length of "s", "sec", "m", "min", "h", ... in seconds, or 0. */
static double period_seconds(const char *unit)
{
	static const struct {
		const char *name;
		double seconds;
	} units[] = {
	    {"s", 1},       {"sec", 1},  {"second", 1}, {"m", 60},      {"min", 60},
	    {"minute", 60}, {"h", 3600}, {"hr", 3600},  {"hour", 3600},
	};
	for (size_t i = 0; i < ARRAY_SIZE(units); i++)
		if (strcmp(unit, units[i].name) == 0)
			return units[i].seconds;
	return 0;
}

/* rl_endpoint_burst - a tenth of a minute's allowance, at least one; see ratelimit.h. */
double rl_endpoint_burst(int rate_per_min)
{
	return rate_per_min / 10 > 1 ? rate_per_min / 10 : 1;
}

/* rl_parse_rate - "100/s", "5/min", "60/m", "3600/h" or "20" (per second) to per second. */
int rl_parse_rate(const char *s, double *per_sec)
{
	double count;
	if (!s)
		return -1;
	const char *p = parse_count(s, &count);
	if (!p)
		return -1;
	if (*p == '\0') {
		*per_sec = count;
		return 0;
	}
	if (*p != '/')
		return -1;
	double period = period_seconds(p + 1);
	if (period <= 0)
		return -1;
	*per_sec = count / period;
	return 0;
}
