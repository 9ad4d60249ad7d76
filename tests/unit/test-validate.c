// SPDX-License-Identifier: MIT
/*
 * zublk_io_validate(): the one gate between a descriptor the kernel wrote
 * and a target that trusts op, offset and len.
 */
#include <errno.h>
#include <linux/blkzoned.h>

#include "zublk.h"
#include "test.h"

#define DEV_SECTORS (1ULL << 21)	/* a 1 GiB device */
#define MAX_IO (1U << 20)		/* 1 MiB per read or write */
#define ALL_CAPS (ZUBLK_CAP_FLUSH | ZUBLK_CAP_FUA | ZUBLK_CAP_DISCARD | ZUBLK_CAP_WRITE_ZEROES)

static struct zublk_io io;

/* Validates op @op_flags at @start for @nr sectors on the 1 GiB device. */
static int check(uint32_t op_flags, uint64_t start, uint32_t nr, unsigned caps)
{
	struct ublksrv_io_desc iod = {
		.op_flags = op_flags,
		.nr_sectors = nr,
		.start_sector = start,
		.addr = 0x1000,
	};

	memset(&io, 0x5a, sizeof(io));
	return zublk_io_validate(&iod, DEV_SECTORS, MAX_IO, caps, &io);
}

TEST(a_read_inside_the_device_fills_op_offset_and_len)
{
	CHECK_EQ(check(UBLK_IO_OP_READ, 16, 8, 0), 0);
	CHECK_EQ(io.op, UBLK_IO_OP_READ);
	CHECK_EQ(io.offset, 16 * 512);
	CHECK_EQ(io.len, 8 * 512);
	CHECK_EQ(io.flags, 0);
}

TEST(a_write_inside_the_device_fills_op_offset_and_len)
{
	CHECK_EQ(check(UBLK_IO_OP_WRITE, 1000, 256, 0), 0);
	CHECK_EQ(io.op, UBLK_IO_OP_WRITE);
	CHECK_EQ(io.offset, 1000ULL * 512);
	CHECK_EQ(io.len, 256 * 512);
}

TEST(validate_leaves_tag_buf_and_target_state_alone)
{
	struct ublksrv_io_desc iod = { .op_flags = UBLK_IO_OP_READ, .nr_sectors = 1 };
	struct zublk_io mine = { .tag = 77, .buf = &mine, .tgt_priv = &iod };

	CHECK_EQ(zublk_io_validate(&iod, DEV_SECTORS, MAX_IO, 0, &mine), 0);
	CHECK_EQ(mine.tag, 77);
	CHECK(mine.buf == &mine);
	CHECK(mine.tgt_priv == &iod);
}

TEST(zero_length_reads_and_writes_are_rejected)
{
	CHECK_EQ(check(UBLK_IO_OP_READ, 0, 0, 0), -EINVAL);
	CHECK_EQ(check(UBLK_IO_OP_WRITE, 0, 0, 0), -EINVAL);
	CHECK_EQ(check(UBLK_IO_OP_DISCARD, 0, 0, ALL_CAPS), -EINVAL);
	CHECK_EQ(check(UBLK_IO_OP_WRITE_ZEROES, 0, 0, ALL_CAPS), -EINVAL);
}

TEST(the_last_sectors_of_the_device_are_readable)
{
	CHECK_EQ(check(UBLK_IO_OP_READ, DEV_SECTORS - 8, 8, 0), 0);
	CHECK_EQ(io.offset, (DEV_SECTORS - 8) * 512);
	CHECK_EQ(io.len, 8 * 512);
	CHECK_EQ(check(UBLK_IO_OP_WRITE, DEV_SECTORS - 1, 1, 0), 0);
}

TEST(a_request_crossing_the_end_is_rejected)
{
	CHECK_EQ(check(UBLK_IO_OP_READ, DEV_SECTORS - 7, 8, 0), -EINVAL);
	CHECK_EQ(check(UBLK_IO_OP_WRITE, DEV_SECTORS - 1, 2, 0), -EINVAL);
	CHECK_EQ(check(UBLK_IO_OP_DISCARD, DEV_SECTORS - 8, 16, ALL_CAPS), -EINVAL);
	CHECK_EQ(check(UBLK_IO_OP_WRITE_ZEROES, 0, (uint32_t)DEV_SECTORS + 1, ALL_CAPS),
		 -EINVAL);
}

TEST(a_request_starting_at_or_past_the_end_is_rejected)
{
	CHECK_EQ(check(UBLK_IO_OP_READ, DEV_SECTORS, 1, 0), -EINVAL);
	CHECK_EQ(check(UBLK_IO_OP_READ, DEV_SECTORS + 1, 1, 0), -EINVAL);
	CHECK_EQ(check(UBLK_IO_OP_WRITE, 1ULL << 40, 8, 0), -EINVAL);
	CHECK_EQ(check(UBLK_IO_OP_DISCARD, DEV_SECTORS + 100, 8, ALL_CAPS), -EINVAL);
}

/* start + nr must not wrap around to something that looks in range. */
TEST(a_start_sector_near_2_to_the_64_does_not_wrap_into_range)
{
	CHECK_EQ(check(UBLK_IO_OP_READ, UINT64_MAX, 8, 0), -EINVAL);
	CHECK_EQ(check(UBLK_IO_OP_READ, UINT64_MAX - 3, 8, 0), -EINVAL);
	CHECK_EQ(check(UBLK_IO_OP_WRITE, UINT64_MAX - 7, 8, 0), -EINVAL);
	CHECK_EQ(check(UBLK_IO_OP_DISCARD, UINT64_MAX - 15, 0xffffffff, ALL_CAPS), -EINVAL);
	/* start << 9 wraps too: 2^55 sectors is offset 0 in 64 bits. */
	CHECK_EQ(check(UBLK_IO_OP_READ, 1ULL << 55, 8, 0), -EINVAL);
}

TEST(reads_and_writes_up_to_max_io_pass_and_beyond_it_fail)
{
	CHECK_EQ(check(UBLK_IO_OP_READ, 0, MAX_IO >> 9, 0), 0);
	CHECK_EQ(io.len, MAX_IO);
	CHECK_EQ(check(UBLK_IO_OP_WRITE, 0, MAX_IO >> 9, 0), 0);
	CHECK_EQ(check(UBLK_IO_OP_READ, 0, (MAX_IO >> 9) + 1, 0), -EINVAL);
	CHECK_EQ(check(UBLK_IO_OP_WRITE, 0, (MAX_IO >> 9) + 1, 0), -EINVAL);
	CHECK_EQ(check(UBLK_IO_OP_READ, 0, 0xffffffff, 0), -EINVAL);
}

TEST(a_write_to_a_read_only_device_is_erofs)
{
	CHECK_EQ(check(UBLK_IO_OP_WRITE, 0, 8, ZUBLK_CAP_READ_ONLY), -EROFS);
	CHECK_EQ(check(UBLK_IO_OP_WRITE, 0, 8, ZUBLK_CAP_READ_ONLY | ALL_CAPS), -EROFS);
	CHECK_EQ(check(UBLK_IO_OP_DISCARD, 0, 8, ZUBLK_CAP_READ_ONLY | ALL_CAPS), -EROFS);
	CHECK_EQ(check(UBLK_IO_OP_WRITE_ZEROES, 0, 8, ZUBLK_CAP_READ_ONLY | ALL_CAPS), -EROFS);
	/* Reading it is what it is for. */
	CHECK_EQ(check(UBLK_IO_OP_READ, 0, 8, ZUBLK_CAP_READ_ONLY), 0);
	CHECK_EQ(check(UBLK_IO_OP_FLUSH, 0, 0, ZUBLK_CAP_READ_ONLY), 0);
}

TEST(discard_and_write_zeroes_need_their_caps)
{
	CHECK_EQ(check(UBLK_IO_OP_DISCARD, 0, 8, 0), -EOPNOTSUPP);
	CHECK_EQ(check(UBLK_IO_OP_DISCARD, 0, 8, ZUBLK_CAP_WRITE_ZEROES), -EOPNOTSUPP);
	CHECK_EQ(check(UBLK_IO_OP_WRITE_ZEROES, 0, 8, 0), -EOPNOTSUPP);
	CHECK_EQ(check(UBLK_IO_OP_WRITE_ZEROES, 0, 8, ZUBLK_CAP_DISCARD), -EOPNOTSUPP);

	CHECK_EQ(check(UBLK_IO_OP_DISCARD, 64, 8, ZUBLK_CAP_DISCARD), 0);
	CHECK_EQ(io.op, UBLK_IO_OP_DISCARD);
	CHECK_EQ(io.offset, 64 * 512);
	CHECK_EQ(io.len, 8 * 512);
	CHECK_EQ(check(UBLK_IO_OP_WRITE_ZEROES, 64, 8, ZUBLK_CAP_WRITE_ZEROES), 0);
	CHECK_EQ(io.op, UBLK_IO_OP_WRITE_ZEROES);
	CHECK_EQ(io.len, 8 * 512);
}

/* max_io bounds the data buffer; a discard has none. */
TEST(a_discard_larger_than_max_io_and_4_gib_keeps_its_64_bit_len)
{
	struct ublksrv_io_desc iod = {
		.op_flags = UBLK_IO_OP_DISCARD,
		.nr_sectors = 0xffffffff,
		.start_sector = 8,
	};
	struct zublk_io big;

	CHECK_EQ(zublk_io_validate(&iod, 1ULL << 40, MAX_IO, ZUBLK_CAP_DISCARD, &big), 0);
	CHECK_EQ(big.len, 0xffffffffULL << 9);
	CHECK_EQ(big.offset, 8 * 512);

	iod.op_flags = UBLK_IO_OP_WRITE_ZEROES;
	iod.nr_sectors = 16U << 20;	/* 8 GiB */
	CHECK_EQ(zublk_io_validate(&iod, 1ULL << 40, MAX_IO, ZUBLK_CAP_WRITE_ZEROES, &big), 0);
	CHECK_EQ(big.len, 8ULL << 30);
}

TEST(a_flush_of_zero_sectors_is_fine_with_or_without_the_cap)
{
	CHECK_EQ(check(UBLK_IO_OP_FLUSH, 0, 0, ZUBLK_CAP_FLUSH), 0);
	CHECK_EQ(io.op, UBLK_IO_OP_FLUSH);
	CHECK_EQ(io.len, 0);
	CHECK_EQ(check(UBLK_IO_OP_FLUSH, 0, 0, 0), 0);
	CHECK_EQ(io.len, 0);
}

TEST(unknown_ops_and_zoned_ops_on_a_device_not_zoned_are_eopnotsupp)
{
	static const uint8_t ops[] = {
		UBLK_IO_OP_WRITE_SAME, UBLK_IO_OP_ZONE_OPEN, UBLK_IO_OP_ZONE_CLOSE,
		UBLK_IO_OP_ZONE_FINISH, UBLK_IO_OP_ZONE_APPEND, UBLK_IO_OP_ZONE_RESET_ALL,
		UBLK_IO_OP_ZONE_RESET, UBLK_IO_OP_REPORT_ZONES, 6, 99, 0xff,
	};

	for (unsigned i = 0; i < ARRAY_SIZE(ops); i++) {
		int ret = check(ops[i], 0, 8, ALL_CAPS);

		CHECK_EQ(ret, -EOPNOTSUPP);
		if (ret != -EOPNOTSUPP)
			printf("#   for op %u\n", ops[i]);
		CHECK_EQ(io.op, ops[i]);
	}
}

TEST(zoned_ops_pass_on_a_zoned_device)
{
	static const uint8_t mgmt[] = {
		UBLK_IO_OP_ZONE_OPEN, UBLK_IO_OP_ZONE_CLOSE, UBLK_IO_OP_ZONE_FINISH,
		UBLK_IO_OP_ZONE_RESET, UBLK_IO_OP_ZONE_RESET_ALL,
	};

	for (unsigned i = 0; i < ARRAY_SIZE(mgmt); i++) {
		CHECK_EQ(check(mgmt[i], 2048, 0, ZUBLK_CAP_ZONED), 0);
		CHECK_EQ(io.len, 0);
		CHECK_EQ(io.offset, 2048 * 512);
		CHECK_EQ(check(mgmt[i], 2048, 0, ZUBLK_CAP_ZONED | ZUBLK_CAP_READ_ONLY), -EROFS);
	}
	CHECK_EQ(check(UBLK_IO_OP_ZONE_RESET, DEV_SECTORS, 0, ZUBLK_CAP_ZONED), -EINVAL);
	CHECK_EQ(check(UBLK_IO_OP_ZONE_RESET_ALL, 0, 0, ZUBLK_CAP_ZONED), 0);

	CHECK_EQ(check(UBLK_IO_OP_ZONE_APPEND, 4096, 8, ZUBLK_CAP_ZONED), 0);
	CHECK_EQ(io.len, 4096);
	CHECK_EQ(check(UBLK_IO_OP_ZONE_APPEND, 4096, 0, ZUBLK_CAP_ZONED), -EINVAL);
	CHECK_EQ(check(UBLK_IO_OP_ZONE_APPEND, 4096, (MAX_IO >> 9) + 1, ZUBLK_CAP_ZONED), -EINVAL);
	CHECK_EQ(check(UBLK_IO_OP_ZONE_APPEND, 4096, 8, ZUBLK_CAP_ZONED | ZUBLK_CAP_READ_ONLY),
		 -EROFS);
}

TEST(a_zone_report_is_as_long_as_the_zones_asked_for)
{
	/* nr_sectors is nr_zones for a report */
	CHECK_EQ(check(UBLK_IO_OP_REPORT_ZONES, 0, 16, ZUBLK_CAP_ZONED), 0);
	CHECK_EQ(io.len, 16 * sizeof(struct blk_zone));
	CHECK_EQ(check(UBLK_IO_OP_REPORT_ZONES, 0, 0, ZUBLK_CAP_ZONED), -EINVAL);
	CHECK_EQ(check(UBLK_IO_OP_REPORT_ZONES, DEV_SECTORS, 1, ZUBLK_CAP_ZONED), -EINVAL);
	CHECK_EQ(check(UBLK_IO_OP_REPORT_ZONES, 0, MAX_IO / sizeof(struct blk_zone) + 1,
		       ZUBLK_CAP_ZONED), -EINVAL);
	CHECK_EQ(check(UBLK_IO_OP_REPORT_ZONES, 0, 1, ZUBLK_CAP_ZONED | ZUBLK_CAP_READ_ONLY), 0);
}

TEST(request_flags_stay_at_their_op_flags_bit_positions)
{
	CHECK_EQ(check(UBLK_IO_OP_WRITE | UBLK_IO_F_FUA, 0, 8, ALL_CAPS), 0);
	CHECK_EQ(io.op, UBLK_IO_OP_WRITE);
	CHECK_EQ(io.flags, UBLK_IO_F_FUA);
	CHECK(io.flags & UBLK_IO_F_FUA);

	CHECK_EQ(check(UBLK_IO_OP_WRITE_ZEROES | UBLK_IO_F_NOUNMAP, 0, 8, ALL_CAPS), 0);
	CHECK_EQ(io.op, UBLK_IO_OP_WRITE_ZEROES);
	CHECK_EQ(io.flags, UBLK_IO_F_NOUNMAP);

	CHECK_EQ(check(UBLK_IO_OP_READ | UBLK_IO_F_FAILFAST_DEV | UBLK_IO_F_NEED_REG_BUF, 0, 8, 0),
		 0);
	CHECK_EQ(io.op, UBLK_IO_OP_READ);
	CHECK_EQ(io.flags, UBLK_IO_F_FAILFAST_DEV | UBLK_IO_F_NEED_REG_BUF);
	/* The op byte never shows up among the flags. */
	CHECK_EQ(io.flags & 0xff, 0);
}

TEST(a_flag_bit_never_changes_the_op)
{
	/* 0xffffff00: every flag bit set; the op is still a plain read. */
	CHECK_EQ(check(0xffffff00U | UBLK_IO_OP_READ, 0, 8, 0), 0);
	CHECK_EQ(io.op, UBLK_IO_OP_READ);
	CHECK_EQ(io.flags, 0xffffff00U);
	CHECK_EQ(io.len, 8 * 512);
}
