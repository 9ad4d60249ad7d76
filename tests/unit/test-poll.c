// SPDX-License-Identifier: MIT
/*
 * Adaptive polling: a queue looks for work before sleeping while most of
 * its looks find some, stops when they miss, and probes to start again.
 */
#include "zublk.h"
#include "../../lib/internal.h"
#include "test.h"

/* How many of @turns times running out of work the queue would look. */
static unsigned looks_in(struct zublk_poll_auto *pa, unsigned turns, bool hit)
{
	unsigned looks = 0;

	for (unsigned i = 0; i < turns; i++) {
		if (!zublk_poll_auto_want(pa))
			continue;
		looks++;
		zublk_poll_auto_note(pa, hit);
	}
	return looks;
}

TEST(a_queue_whose_looks_find_work_keeps_looking)
{
	struct zublk_poll_auto pa = { .hits = 256 };

	CHECK_EQ(looks_in(&pa, 1000, true), 1000);
	CHECK_EQ(pa.hits, 256);
}

TEST(looks_that_miss_stop_the_polling_within_a_few_turns)
{
	struct zublk_poll_auto pa = { .hits = 256 };
	unsigned first = looks_in(&pa, 16, false);

	CHECK(first >= 2 && first <= 4);
	CHECK(pa.hits < ZUBLK_POLL_WANT);
	/* From then on only the probes look: one turn in ZUBLK_POLL_PROBE. */
	CHECK_EQ(looks_in(&pa, 16 * ZUBLK_POLL_PROBE, false), 16);
}

TEST(probes_that_hit_bring_the_polling_back)
{
	struct zublk_poll_auto pa = { .hits = 0 };
	unsigned turns = 0;

	while (!(pa.hits >= ZUBLK_POLL_WANT) && turns < 1000) {
		if (zublk_poll_auto_want(&pa))
			zublk_poll_auto_note(&pa, true);
		turns++;
	}
	CHECK(pa.hits >= ZUBLK_POLL_WANT);
	/* 11 hits from nothing, each found by a probe. */
	CHECK(turns <= 12 * ZUBLK_POLL_PROBE);
	CHECK_EQ(looks_in(&pa, 100, true), 100);
}

TEST(the_share_of_hits_stays_within_0_and_256)
{
	struct zublk_poll_auto pa = { .hits = 256 };

	for (unsigned i = 0; i < 100; i++)
		zublk_poll_auto_note(&pa, false);
	CHECK_EQ(pa.hits, 0);
	for (unsigned i = 0; i < 100; i++)
		zublk_poll_auto_note(&pa, true);
	CHECK_EQ(pa.hits, 256);
}

TEST(half_the_looks_hitting_is_not_enough_to_keep_looking)
{
	struct zublk_poll_auto pa = { .hits = 256 };
	unsigned looks = 0;

	for (unsigned i = 0; i < 1600; i++) {
		if (!zublk_poll_auto_want(&pa))
			continue;
		zublk_poll_auto_note(&pa, looks++ % 2 == 0);
	}
	/* Mostly probes: far fewer looks than turns. */
	CHECK(looks < 1600 / 4);
}
