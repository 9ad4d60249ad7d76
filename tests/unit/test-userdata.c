// SPDX-License-Identifier: MIT
/*
 * The SQE user_data encoding every queue ring relies on, and where user-copy
 * mode finds a request's data on /dev/ublkcN.
 */
#include "zublk.h"
#include "../../lib/internal.h"
#include "test.h"

static const unsigned tags[] = { 0, 1, 2, 127, 4095, 4096, 0x8000, 65534, 65535 };
static const unsigned kinds[] = { 0, ZUBLK_UD_CMD, ZUBLK_UD_REG, ZUBLK_UD_UNREG,
				  ZUBLK_UD_TGT, ZUBLK_UD_NOTE, ZUBLK_UD_QUEUE, 0x7f, 0x80, 0xff };
static const unsigned subs[] = { 0, 1, 2, 0x00ff, 0x0100, 0x1234, 0x8000, 0xfffe,
				 ZUBLK_UD_SUB_MAX };

TEST(tag_kind_and_sub_round_trip_over_their_whole_ranges)
{
	for (unsigned i = 0; i < ARRAY_SIZE(tags); i++)
		for (unsigned k = 0; k < ARRAY_SIZE(kinds); k++)
			for (unsigned s = 0; s < ARRAY_SIZE(subs); s++) {
				uint64_t ud = zublk_ud_pack(tags[i], kinds[k], subs[s]);

				if (zublk_ud_tag(ud) == tags[i] && zublk_ud_kind(ud) == kinds[k] &&
				    zublk_ud_sub(ud) == subs[s])
					continue;
				CHECK_EQ(zublk_ud_tag(ud), tags[i]);
				CHECK_EQ(zublk_ud_kind(ud), kinds[k]);
				CHECK_EQ(zublk_ud_sub(ud), subs[s]);
				return;	/* one report is enough */
			}
}

TEST(a_full_field_does_not_bleed_into_its_neighbours)
{
	uint64_t ud;

	ud = zublk_ud_pack(0xffff, 0, 0);
	CHECK_EQ(zublk_ud_tag(ud), 0xffff);
	CHECK_EQ(zublk_ud_kind(ud), 0);
	CHECK_EQ(zublk_ud_sub(ud), 0);

	ud = zublk_ud_pack(0, 0xff, 0);
	CHECK_EQ(zublk_ud_tag(ud), 0);
	CHECK_EQ(zublk_ud_kind(ud), 0xff);
	CHECK_EQ(zublk_ud_sub(ud), 0);

	ud = zublk_ud_pack(0, 0, 0xffff);
	CHECK_EQ(zublk_ud_tag(ud), 0);
	CHECK_EQ(zublk_ud_kind(ud), 0);
	CHECK_EQ(zublk_ud_sub(ud), 0xffff);
}

TEST(the_fields_sit_at_the_documented_bits_and_nothing_above_bit_39)
{
	CHECK_EQ(zublk_ud_pack(0xffff, 0, 0), 0xffffULL);
	CHECK_EQ(zublk_ud_pack(0, 0xff, 0), 0xffULL << 16);
	CHECK_EQ(zublk_ud_pack(0, 0, 0xffff), 0xffffULL << 24);
	CHECK_EQ(zublk_ud_pack(0xffff, 0xff, 0xffff), (1ULL << 40) - 1);
	CHECK_EQ(zublk_ud_pack(0, 0, 0), 0);
}

/* An oversized argument is cut to its field, never spilled into the next. */
TEST(oversized_arguments_are_masked_to_their_field)
{
	uint64_t ud = zublk_ud_pack(0x1ffff, 0x1ff, 0x1ffff);

	CHECK_EQ(zublk_ud_tag(ud), 0xffff);
	CHECK_EQ(zublk_ud_kind(ud), 0xff);
	CHECK_EQ(zublk_ud_sub(ud), 0xffff);
	CHECK_EQ(ud >> 40, 0);

	ud = zublk_ud_pack(0x10000, ZUBLK_UD_TGT, 0x10000);
	CHECK_EQ(zublk_ud_tag(ud), 0);
	CHECK_EQ(zublk_ud_kind(ud), ZUBLK_UD_TGT);
	CHECK_EQ(zublk_ud_sub(ud), 0);
}

TEST(the_readers_ignore_bits_above_the_fields)
{
	uint64_t ud = zublk_ud_pack(42, ZUBLK_UD_REG, 7) | (0xffffffULL << 40);

	CHECK_EQ(zublk_ud_tag(ud), 42);
	CHECK_EQ(zublk_ud_kind(ud), ZUBLK_UD_REG);
	CHECK_EQ(zublk_ud_sub(ud), 7);
}

TEST(user_copy_pos_is_the_kernels_formula)
{
	static const unsigned qs[] = { 0, 1, 7, UBLK_MAX_NR_QUEUES - 1 };

	CHECK_EQ(zublk_user_copy_pos(0, 0), (uint64_t)UBLKSRV_IO_BUF_OFFSET);
	for (unsigned i = 0; i < ARRAY_SIZE(qs); i++)
		for (unsigned t = 0; t < ARRAY_SIZE(tags); t++) {
			uint64_t want = UBLKSRV_IO_BUF_OFFSET +
					((uint64_t)qs[i] << UBLK_QID_OFF) +
					((uint64_t)tags[t] << UBLK_TAG_OFF);

			CHECK_EQ(zublk_user_copy_pos(qs[i], tags[t]), want);
		}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Each (queue, tag) owns a window of 1 << UBLK_IO_BUF_BITS bytes, enough for
 * the largest request; two windows must never overlap, or one request's
 * pread would see another's data.
 */
TEST(each_queue_and_tag_owns_a_distinct_non_overlapping_window)
{
	static const unsigned qs[] = { 0, 1, 2, 3, 255, UBLK_MAX_NR_QUEUES - 1 };
	static const unsigned ts[] = { 0, 1, 2, 3, 127, 128, 4094, ZUBLK_MAX_QUEUE_DEPTH - 1 };
	const uint64_t win = 1ULL << UBLK_IO_BUF_BITS;
	uint64_t pos[ARRAY_SIZE(qs) * ARRAY_SIZE(ts)];
	unsigned n = 0;

	CHECK(ZUBLK_MAX_MAX_IO_BYTES <= win);
	for (unsigned i = 0; i < ARRAY_SIZE(qs); i++)
		for (unsigned t = 0; t < ARRAY_SIZE(ts); t++)
			pos[n++] = zublk_user_copy_pos(qs[i], ts[t]);
	qsort(pos, n, sizeof(pos[0]), cmp_u64);
	for (unsigned i = 1; i < n; i++) {
		CHECK(pos[i] != pos[i - 1]);
		CHECK(pos[i] >= pos[i - 1] + win);
	}
	/* Every window lies above the command area and within a positive off_t. */
	CHECK(pos[0] >= UBLKSRV_IO_BUF_OFFSET);
	CHECK(pos[n - 1] + win - 1 <= (uint64_t)INT64_MAX);
}

TEST(neighbouring_tags_are_one_window_apart_and_queues_one_tag_space_apart)
{
	const uint64_t win = 1ULL << UBLK_IO_BUF_BITS;

	CHECK_EQ(zublk_user_copy_pos(0, 1) - zublk_user_copy_pos(0, 0), win);
	CHECK_EQ(zublk_user_copy_pos(3, 101) - zublk_user_copy_pos(3, 100), win);
	/* The last tag of queue q ends where queue q + 1 begins, never past it. */
	CHECK(zublk_user_copy_pos(0, (1U << UBLK_TAG_BITS) - 1) + win <= zublk_user_copy_pos(1, 0));
	CHECK_EQ(zublk_user_copy_pos(1, 0) - zublk_user_copy_pos(0, 0), 1ULL << UBLK_QID_OFF);
}

TEST(a_queues_slot_on_a_shared_ring_rides_above_bit_39_and_leaves_the_rest)
{
	static const unsigned slots[] = { 0, 1, 2, 255, 4095, 0xffff };

	for (unsigned i = 0; i < ARRAY_SIZE(slots); i++) {
		struct zublk_queue q = { .slot = slots[i] };
		uint64_t ud = zublk_queue_ud(&q, 4095, ZUBLK_UD_TGT, ZUBLK_UD_SUB_MAX);

		CHECK_EQ(zublk_ud_slot(ud), slots[i]);
		CHECK_EQ(zublk_ud_tag(ud), 4095);
		CHECK_EQ(zublk_ud_kind(ud), ZUBLK_UD_TGT);
		CHECK_EQ(zublk_ud_sub(ud), ZUBLK_UD_SUB_MAX);
		CHECK_EQ(ud >> 56, 0);
	}
	/* A message from outside (the stop) says slot 0. */
	CHECK_EQ(zublk_ud_slot(zublk_ud_pack(0, ZUBLK_UD_STOP, 0)), 0);
}
