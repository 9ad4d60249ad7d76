// SPDX-License-Identifier: MIT
/*
 * Adaptive polling: a queue looks for work before sleeping while most of
 * its looks find some, stops when they miss, and probes to start again.
 */
#include "zublk.h"
#include "../../lib/internal.h"
#include "test.h"

/*
 * One time the queue runs out of work: it looks if it wants to, and sleeps
 * unless the look found work.  Returns whether it looked.
 */
static bool out_of_work(struct zublk_poll_auto *pa, bool hit)
{
	bool look = zublk_poll_auto_want(pa);

	if (look)
		zublk_poll_auto_note(pa, hit);
	if (!look || !hit)
		zublk_poll_auto_slept(pa);
	return look;
}

/* How many of @turns times running out of work the queue would look. */
static unsigned looks_in(struct zublk_poll_auto *pa, unsigned turns, bool hit)
{
	unsigned looks = 0;

	for (unsigned i = 0; i < turns; i++)
		looks += out_of_work(pa, hit);
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
	/* Polling stopped long ago: the next probe is some sleeps away. */
	struct zublk_poll_auto pa = { .hits = 0, .turn = 5 };
	unsigned turns = 0;

	while (!(pa.hits >= ZUBLK_POLL_WANT) && turns < 1000) {
		out_of_work(&pa, true);
		turns++;
	}
	CHECK(pa.hits >= ZUBLK_POLL_WANT);
	/*
	 * 10 hits from nothing: the first probe after 11 sleeps, and a probe
	 * that finds work leaves the next one due, so the rest follow at once.
	 */
	CHECK_EQ(turns, 11 + 10);
	CHECK_EQ(looks_in(&pa, 100, true), 100);
}

/*
 * A --batch queue commits in a turn of its own, whose commit completes as
 * it is submitted: that turn neither looks nor sleeps.  A probe falling on
 * it must stay due, or a queue whose turns alternate never probes at all.
 */
TEST(a_turn_that_neither_looks_nor_sleeps_leaves_the_probe_due)
{
	struct zublk_poll_auto pa = { .hits = 0 };
	unsigned looks = 0;

	for (unsigned i = 0; i < 40 * ZUBLK_POLL_PROBE; i++) {
		/* The commit's turn: completions before any look. */
		(void)zublk_poll_auto_want(&pa);
		/* The next: nothing to commit, out of work; looks find none. */
		looks += out_of_work(&pa, false);
	}
	CHECK_EQ(looks, 40);
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
		bool hit = looks % 2 == 0;

		looks += out_of_work(&pa, hit);
	}
	/* Mostly probes: far fewer looks than turns. */
	CHECK(looks < 1600 / 4);
}
