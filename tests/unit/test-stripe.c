// SPDX-License-Identifier: MIT
/*
 * The stripe (RAID0) mapping: chunk checks, device size, splitting a
 * request at chunk edges, and the per-member range of a discard, each
 * checked against a sector-by-sector reference.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../../targets/raid.h"
#include "test.h"

/* The reference: where device byte @off lives. */
static void ref_map(const struct stripe_layout *l, uint64_t off, unsigned *member,
		    uint64_t *member_off)
{
	uint64_t chunk = 1ULL << l->chunk_shift, cno = off / chunk;

	*member = (unsigned)(cno % l->nr);
	*member_off = cno / l->nr * chunk + off % chunk;
}

/* A small deterministic generator, so a failure repeats. */
static uint64_t rnd_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

TEST(chunk_must_be_a_power_of_two_from_4k_to_1g)
{
	CHECK_EQ(stripe_chunk_check(4096), 0);
	CHECK_EQ(stripe_chunk_check(64 << 10), 0);
	CHECK_EQ(stripe_chunk_check(1ULL << 30), 0);
	CHECK_EQ(stripe_chunk_check(0), -EINVAL);
	CHECK_EQ(stripe_chunk_check(512), -EINVAL);
	CHECK_EQ(stripe_chunk_check(2048), -EINVAL);
	CHECK_EQ(stripe_chunk_check(48 << 10), -EINVAL);
	CHECK_EQ(stripe_chunk_check(4097), -EINVAL);
	CHECK_EQ(stripe_chunk_check(1ULL << 31), -EINVAL);
	CHECK_EQ(stripe_chunk_check(UINT64_MAX), -EINVAL);
}

TEST(size_is_members_times_the_smallest_rounded_down_to_the_chunk)
{
	struct stripe_layout l = { .nr = 3, .chunk_shift = 16 };
	uint64_t sizes[] = { 10ULL << 20, (4ULL << 20) + 65535, 8ULL << 20 };
	uint64_t two[] = { 1ULL << 30, 1ULL << 30 };
	uint64_t tiny[] = { 1ULL << 30, 4096 };

	CHECK_EQ(stripe_size(&l, sizes), 3 * (4ULL << 20));
	l.nr = 2;
	CHECK_EQ(stripe_size(&l, two), 2ULL << 30);
	/* Smaller than a chunk: nothing is usable. */
	CHECK_EQ(stripe_size(&l, tiny), 0);
	/* Overflow is zero, not a wrapped small size. */
	uint64_t huge[] = { UINT64_MAX, UINT64_MAX };
	CHECK_EQ(stripe_size(&l, huge), 0);
}

TEST(a_request_inside_one_chunk_is_one_piece)
{
	struct stripe_layout l = { .nr = 2, .chunk_shift = 16 };
	struct stripe_piece p;

	CHECK_EQ(stripe_nr_pieces(&l, 0, 4096), 1);
	CHECK_EQ(stripe_nr_pieces(&l, 0, 65536), 1);
	stripe_piece(&l, 65536 + 512, 4096, 0, &p);
	CHECK_EQ(p.member, 1);
	CHECK_EQ(p.member_off, 512);
	CHECK_EQ(p.io_off, 0);
	CHECK_EQ(p.len, 4096);
	/* Row 1 of member 0 starts at 64k on the member. */
	stripe_piece(&l, 2 * 65536, 512, 0, &p);
	CHECK_EQ(p.member, 0);
	CHECK_EQ(p.member_off, 65536);
}

TEST(a_request_across_a_chunk_edge_splits_there)
{
	struct stripe_layout l = { .nr = 2, .chunk_shift = 16 };
	struct stripe_piece p;

	/* 60k..68k: 4k at the end of member 0's chunk, 4k at member 1's start. */
	REQUIRE(stripe_nr_pieces(&l, 60 << 10, 8 << 10) == 2);
	stripe_piece(&l, 60 << 10, 8 << 10, 0, &p);
	CHECK_EQ(p.member, 0);
	CHECK_EQ(p.member_off, 60 << 10);
	CHECK_EQ(p.io_off, 0);
	CHECK_EQ(p.len, 4 << 10);
	stripe_piece(&l, 60 << 10, 8 << 10, 1, &p);
	CHECK_EQ(p.member, 1);
	CHECK_EQ(p.member_off, 0);
	CHECK_EQ(p.io_off, 4 << 10);
	CHECK_EQ(p.len, 4 << 10);
}

TEST(a_1m_request_on_three_members_with_4k_chunks_wraps_rows)
{
	struct stripe_layout l = { .nr = 3, .chunk_shift = 12 };
	uint64_t off = 512 * 7, len = 1 << 20;
	unsigned n = stripe_nr_pieces(&l, off, len);
	struct stripe_piece p;

	/* Starts mid-chunk: 256 chunks' worth touches 257 chunks. */
	CHECK_EQ(n, 257);
	stripe_piece(&l, off, len, 0, &p);
	CHECK_EQ(p.len, 4096 - 512 * 7);
	stripe_piece(&l, off, len, n - 1, &p);
	CHECK_EQ(p.len, 512 * 7);
	CHECK_EQ(p.io_off + p.len, len);
	/* Chunk 256 is member 1, row 85. */
	CHECK_EQ(p.member, 256 % 3);
	CHECK_EQ(p.member_off, 85 * 4096);
}

/* Every piece is inside one chunk, they tile the request, and map like the reference. */
static void check_pieces(const struct stripe_layout *l, uint64_t off, uint64_t len)
{
	unsigned n = stripe_nr_pieces(l, off, len);
	uint64_t chunk = 1ULL << l->chunk_shift, next = 0;

	for (unsigned i = 0; i < n; i++) {
		struct stripe_piece p;
		unsigned rm;
		uint64_t roff, dev = off;

		stripe_piece(l, off, len, i, &p);
		CHECK_EQ(p.io_off, next);
		CHECK(p.len > 0);
		CHECK(p.len <= chunk);
		dev = off + p.io_off;
		/* Inside one chunk: first and last byte in the same one. */
		CHECK_EQ(dev / chunk, (dev + p.len - 1) / chunk);
		ref_map(l, dev, &rm, &roff);
		CHECK_EQ(p.member, rm);
		CHECK_EQ(p.member_off, roff);
		ref_map(l, dev + p.len - 1, &rm, &roff);
		CHECK_EQ(p.member_off + p.len - 1, roff);
		next = p.io_off + p.len;
		if (test_failed) {
			printf("#   nr %u chunk %llu off %llu len %llu piece %u\n", l->nr,
			       (unsigned long long)chunk, (unsigned long long)off,
			       (unsigned long long)len, i);
			return;
		}
	}
	CHECK_EQ(next, len);
}

TEST(random_requests_tile_and_map_like_the_reference)
{
	static const unsigned nrs[] = { 2, 3, 4, 5, 8 };
	static const unsigned shifts[] = { 12, 13, 16, 20 };

	for (unsigned a = 0; a < ARRAY_SIZE(nrs); a++) {
		for (unsigned b = 0; b < ARRAY_SIZE(shifts); b++) {
			struct stripe_layout l = { .nr = nrs[a], .chunk_shift = shifts[b] };

			for (int k = 0; k < 300 && !test_failed; k++) {
				uint64_t off = (rnd() % (1ULL << 30)) & ~511ULL;
				uint64_t len = ((rnd() % (1 << 20)) & ~511ULL) + 512;

				check_pieces(&l, off, len);
			}
		}
	}
	/* Far out: offsets past 4 GiB on the device and on the members. */
	struct stripe_layout l = { .nr = 3, .chunk_shift = 16 };
	check_pieces(&l, (7ULL << 40) + 65536 - 512, 1 << 20);
}

/* The member range of [off, off + len) against a sector-by-sector walk. */
static void check_member_range(const struct stripe_layout *l, uint64_t off, uint64_t len)
{
	for (unsigned k = 0; k < l->nr; k++) {
		uint64_t start, end, lo = UINT64_MAX, hi = 0, count = 0;

		stripe_member_range(l, off, len, k, &start, &end);
		for (uint64_t s = off; s < off + len; s += 512) {
			unsigned m;
			uint64_t mo;

			ref_map(l, s, &m, &mo);
			if (m != k)
				continue;
			count += 512;
			if (mo < lo)
				lo = mo;
			if (mo + 512 > hi)
				hi = mo + 512;
		}
		CHECK(start <= end);
		if (count == 0) {
			CHECK_EQ(start, end);
		} else {
			CHECK_EQ(start, lo);
			CHECK_EQ(end, hi);
			/* Contiguous: as many bytes as the range is long. */
			CHECK_EQ(count, hi - lo);
		}
		if (test_failed) {
			printf("#   nr %u chunk %u off %llu len %llu member %u\n", l->nr,
			       1U << l->chunk_shift, (unsigned long long)off,
			       (unsigned long long)len, k);
			return;
		}
	}
}

TEST(a_discard_is_one_contiguous_range_per_member)
{
	static const unsigned nrs[] = { 2, 3, 7 };

	for (unsigned a = 0; a < ARRAY_SIZE(nrs); a++) {
		struct stripe_layout l = { .nr = nrs[a], .chunk_shift = 12 };

		for (int k = 0; k < 200 && !test_failed; k++) {
			uint64_t off = (rnd() % (64ULL << 20)) & ~511ULL;
			uint64_t len = ((rnd() % (256 << 10)) & ~511ULL) + 512;

			check_member_range(&l, off, len);
		}
	}
}

TEST(a_discard_inside_one_chunk_touches_one_member)
{
	struct stripe_layout l = { .nr = 4, .chunk_shift = 16 };
	uint64_t s, e;

	stripe_member_range(&l, 5 * 65536 + 4096, 8192, 1, &s, &e);
	CHECK_EQ(s, 65536 + 4096);
	CHECK_EQ(e, 65536 + 4096 + 8192);
	for (unsigned k = 0; k < 4; k++) {
		if (k == 1)
			continue;
		stripe_member_range(&l, 5 * 65536 + 4096, 8192, k, &s, &e);
		CHECK_EQ(s, e);
	}
}

TEST(an_8g_discard_of_a_whole_2_member_device_is_4g_on_each)
{
	struct stripe_layout l = { .nr = 2, .chunk_shift = 16 };
	uint64_t s, e;

	for (unsigned k = 0; k < 2; k++) {
		stripe_member_range(&l, 0, 8ULL << 30, k, &s, &e);
		CHECK_EQ(s, 0);
		CHECK_EQ(e, 4ULL << 30);
	}
	/* From mid-chunk on member 1: member 0 starts a row later. */
	stripe_member_range(&l, 65536 + 100 * 512, 8ULL << 30, 0, &s, &e);
	CHECK_EQ(s, 65536);
	stripe_member_range(&l, 65536 + 100 * 512, 8ULL << 30, 1, &s, &e);
	CHECK_EQ(s, 100 * 512);
	CHECK_EQ(e - s, 4ULL << 30);
	stripe_member_range(&l, 65536 + 100 * 512, 8ULL << 30, 0, &s, &e);
	CHECK_EQ(e - s, 4ULL << 30);
}

TEST(members_are_the_same_storage_by_file_not_by_name)
{
	char dir[] = "/tmp/zublk-same.XXXXXX", a[64], b[64], link_[64];
	int fa, fa2, fb, fl;

	REQUIRE(mkdtemp(dir));
	snprintf(a, sizeof(a), "%s/a", dir);
	snprintf(b, sizeof(b), "%s/b", dir);
	snprintf(link_, sizeof(link_), "%s/l", dir);
	fa = open(a, O_RDWR | O_CREAT, 0600);
	fb = open(b, O_RDWR | O_CREAT, 0600);
	REQUIRE(fa >= 0 && fb >= 0);
	REQUIRE(link(a, link_) == 0);
	fa2 = open(a, O_RDONLY);
	fl = open(link_, O_RDONLY);
	REQUIRE(fa2 >= 0 && fl >= 0);
	CHECK(raid_same_storage(fa, fa2));
	CHECK(raid_same_storage(fa, fl));
	CHECK(!raid_same_storage(fa, fb));
	/* Neither is a block device, so no loop device's file is asked for. */
	CHECK(!raid_same_storage(fb, fl));
	close(fa);
	close(fa2);
	close(fb);
	close(fl);
	unlink(a);
	unlink(b);
	unlink(link_);
	rmdir(dir);
}
