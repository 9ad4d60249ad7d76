// SPDX-License-Identifier: MIT
/*
 * zublk_io_copy() in the modes with a daemon buffer per request (copy,
 * user-copy): a straight copy between the target's memory and that buffer,
 * made by the kernel, so memory that is gone fails the copy instead of
 * killing the daemon; and zublk_backing_copy() in those modes, which reads
 * and writes a mapped file into and out of that buffer.  Last, how a
 * backing file takes a WRITE_ZEROES (zublk_backing_zero_mode()).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include "zublk.h"
#include "../../lib/internal.h"
#include "test.h"

#define PAGE 4096

struct fixture {
	struct zublk_dev dev;
	struct zublk_queue q;
	struct zublk_io io;
	struct zublk_queue_stats stats;
	unsigned char buf[2 * PAGE];
};

/* A copy-mode device's request @op of two pages, its buffer filled with 0xbb. */
static void setup(struct fixture *f, uint8_t op)
{
	memset(f, 0, sizeof(*f));
	f->dev.mode = ZUBLK_MODE_COPY;
	f->q.dev = &f->dev;
	f->q.stats = &f->stats;
	f->io.op = op;
	f->io.len = sizeof(f->buf);
	f->io.buf = f->buf;
	memset(f->buf, 0xbb, sizeof(f->buf));
}

TEST(a_read_copies_into_the_request_buffer_at_its_offset_and_nowhere_else)
{
	struct fixture f;
	unsigned char mem[PAGE];

	setup(&f, UBLK_IO_OP_READ);
	memset(mem, 0x5a, sizeof(mem));
	CHECK_EQ(zublk_io_copy(&f.q, &f.io, PAGE, mem, PAGE), 0);
	CHECK_EQ(f.buf[PAGE - 1], 0xbb);
	CHECK_EQ(f.buf[PAGE], 0x5a);
	CHECK_EQ(f.buf[2 * PAGE - 1], 0x5a);
}

TEST(a_write_copies_out_of_the_request_buffer)
{
	struct fixture f;
	unsigned char mem[PAGE];

	setup(&f, UBLK_IO_OP_WRITE);
	memset(mem, 0, sizeof(mem));
	f.buf[100] = 0x11;
	f.buf[100 + 511] = 0x22;
	CHECK_EQ(zublk_io_copy(&f.q, &f.io, 100, mem, 512), 0);
	CHECK_EQ(mem[0], 0x11);
	CHECK_EQ(mem[511], 0x22);
	CHECK_EQ(mem[512], 0);
}

TEST(a_copy_past_the_request_or_of_nothing_is_refused)
{
	struct fixture f;
	unsigned char mem[PAGE];

	setup(&f, UBLK_IO_OP_READ);
	CHECK_EQ(zublk_io_copy(&f.q, &f.io, PAGE + 1, mem, PAGE), -EOPNOTSUPP);
	CHECK_EQ(zublk_io_copy(&f.q, &f.io, 0, mem, 0), -EOPNOTSUPP);
	setup(&f, UBLK_IO_OP_FLUSH);
	CHECK_EQ(zublk_io_copy(&f.q, &f.io, 0, mem, 512), -EOPNOTSUPP);
}

TEST(without_a_buffer_or_user_copy_there_is_no_copy)
{
	struct fixture f;
	unsigned char mem[PAGE];

	setup(&f, UBLK_IO_OP_READ);
	f.io.buf = NULL;
	f.dev.mode = ZUBLK_MODE_ZERO_COPY;
	CHECK(!zublk_io_can_copy(&f.q, &f.io));
	CHECK_EQ(zublk_io_copy(&f.q, &f.io, 0, mem, 512), -EOPNOTSUPP);
}

TEST(a_requests_metadata_is_meta_size_per_interval_and_only_with_the_flag)
{
	struct fixture f;
	unsigned char mem[64];

	setup(&f, UBLK_IO_OP_WRITE);
	f.dev.geom.integrity = (struct zublk_integrity){ .meta_size = 8, .interval_shift = 9 };
	CHECK_EQ(zublk_io_meta_len(&f.q, &f.io), 0);
	CHECK_EQ(zublk_io_meta_copy(&f.q, &f.io, 0, mem, 8), -EINVAL);
	f.io.flags |= UBLK_IO_F_INTEGRITY;
	CHECK_EQ(zublk_io_meta_len(&f.q, &f.io), 2 * PAGE / 512 * 8);
	f.dev.geom.integrity.interval_shift = 12;
	f.dev.geom.integrity.meta_size = 16;
	CHECK_EQ(zublk_io_meta_len(&f.q, &f.io), 2 * 16);
	/* Nothing, or past the metadata: refused before any system call. */
	CHECK_EQ(zublk_io_meta_copy(&f.q, &f.io, 0, mem, 0), -EINVAL);
	CHECK_EQ(zublk_io_meta_copy(&f.q, &f.io, 16, mem, 17), -EINVAL);
	f.io.op = UBLK_IO_OP_FLUSH;
	CHECK_EQ(zublk_io_meta_copy(&f.q, &f.io, 0, mem, 8), -EINVAL);
}

/* What a file in memory truncated under the device leaves mapped: SIGBUS to touch. */
static unsigned char *gone_mapping(void)
{
	int fd = memfd_create("zublk-test", 0);
	unsigned char *m;

	if (fd < 0 || ftruncate(fd, PAGE) < 0)
		return NULL;
	m = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (ftruncate(fd, 0) < 0 && m != MAP_FAILED) {
		munmap(m, PAGE);
		m = MAP_FAILED;
	}
	close(fd);
	return m == MAP_FAILED ? NULL : m;
}

TEST(memory_gone_under_a_copy_fails_it_with_efault_both_ways)
{
	struct fixture f;
	unsigned char *gone = gone_mapping();
	void *none = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	REQUIRE(gone != NULL && none != MAP_FAILED);
	setup(&f, UBLK_IO_OP_READ);
	CHECK_EQ(zublk_io_copy(&f.q, &f.io, 0, gone, PAGE), -EFAULT);
	CHECK_EQ(zublk_io_copy(&f.q, &f.io, 0, none, PAGE), -EFAULT);
	CHECK_EQ(f.buf[0], 0xbb);
	setup(&f, UBLK_IO_OP_WRITE);
	CHECK_EQ(zublk_io_copy(&f.q, &f.io, 0, gone, PAGE), -EFAULT);
	CHECK_EQ(zublk_io_copy(&f.q, &f.io, 0, none, PAGE), -EFAULT);
	munmap(gone, PAGE);
	munmap(none, PAGE);
}

/*
 * zublk_backing_copy() in the copy modes: pread()/pwrite() on the mapped
 * file into or out of the request's buffer.  @path: a file of 4 pages in
 * /dev/shm, opened and mapped into @b; false when there is no tmpfs.
 */
static bool shm_backing(char *path, struct zublk_backing *b)
{
	if (shm_file(path, 4 * PAGE))
		return false;
	if (zublk_backing_open(b, "test", path, false, -1)) {
		unlink(path);
		return false;
	}
	if (!b->in_memory || zublk_backing_map(b, b->size)) {
		zublk_backing_close(b);
		unlink(path);
		return false;
	}
	return true;
}

TEST(copy_mode_reads_and_writes_the_mapped_file_through_the_buffer)
{
	char path[] = "/dev/shm/zublk-unit-XXXXXX";
	struct zublk_backing b;
	struct fixture f;
	unsigned char page[PAGE];

	if (!shm_backing(path, &b)) {
		printf("#   SKIP: no /dev/shm to make a tmpfs file in\n");
		return;
	}
	/* A WRITE of the buffer's second page lands at the file's page 2 only. */
	setup(&f, UBLK_IO_OP_WRITE);
	memset(f.buf + PAGE, 0x77, PAGE);
	CHECK_EQ(zublk_backing_copy(&f.q, &f.io, &b, 2 * PAGE, PAGE, PAGE), 0);
	CHECK_EQ(pread(b.fd, page, PAGE, 2 * PAGE), PAGE);
	CHECK_EQ(page[0], 0x77);
	CHECK_EQ(page[PAGE - 1], 0x77);
	CHECK_EQ(pread(b.fd, page, PAGE, PAGE), PAGE);
	CHECK_EQ(page[PAGE - 1], 0);

	/* A READ over a hole and the written page: zeros, then the data. */
	setup(&f, UBLK_IO_OP_READ);
	CHECK_EQ(zublk_backing_copy(&f.q, &f.io, &b, PAGE, 0, 2 * PAGE), 0);
	CHECK_EQ(f.buf[0], 0);
	CHECK_EQ(f.buf[PAGE - 1], 0);
	CHECK_EQ(f.buf[PAGE], 0x77);
	CHECK_EQ(f.buf[2 * PAGE - 1], 0x77);

	/* Past the mapping: the usual way, and the copies counter does not move. */
	CHECK_EQ(f.stats.copies, 1);
	CHECK_EQ(zublk_backing_copy(&f.q, &f.io, &b, 3 * PAGE, 0, 2 * PAGE), -ERANGE);
	CHECK_EQ(f.stats.copies, 1);

	/* The file shrank under the device: a short read fails the copy. */
	CHECK_EQ(ftruncate(b.fd, PAGE), 0);
	memset(f.buf, 0xbb, sizeof(f.buf));
	CHECK(zublk_backing_copy(&f.q, &f.io, &b, 2 * PAGE, 0, PAGE) < 0);

	/* Given up (its file is being swapped out): no copy any more. */
	zublk_backing_unmap(&b);
	setup(&f, UBLK_IO_OP_WRITE);
	CHECK_EQ(zublk_backing_copy(&f.q, &f.io, &b, 0, 0, PAGE), -ERANGE);
	zublk_backing_close(&b);
	unlink(path);
}

/*
 * zublk_backing_zero_mode(): a WRITE_ZEROES that says NOUNMAP keeps its
 * blocks (a zeroed range) until the file system refuses one, as tmpfs
 * does; then it, and every later one, punches a hole.
 */
TEST(write_zeroes_keep_blocks_with_nounmap_until_the_file_system_refuses)
{
	char path[] = "/dev/shm/zublk-unit-XXXXXX";
	const int punch = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	const int range = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
	struct zublk_backing b;
	int res;

	if (!shm_backing(path, &b)) {
		printf("#   SKIP: no /dev/shm to make a tmpfs file in\n");
		return;
	}
	CHECK_EQ(zublk_backing_zero_mode(&b, false), punch);
	CHECK_EQ(zublk_backing_zero_mode(&b, true), range);
	/* Another error is the request's, not a refusal. */
	CHECK(!zublk_backing_zero_refused(&b, -EIO));
	CHECK_EQ(zublk_backing_zero_mode(&b, true), range);
	res = fallocate(b.fd, range, 0, PAGE) ? -errno : 0;
	if (res == 0) {
		printf("#   SKIP: this kernel's tmpfs has zeroed ranges\n");
		zublk_backing_close(&b);
		unlink(path);
		return;
	}
	CHECK_EQ(res, -EOPNOTSUPP);
	CHECK(zublk_backing_zero_refused(&b, res));
	CHECK_EQ(zublk_backing_zero_mode(&b, true), punch);
	CHECK_EQ(fallocate(b.fd, zublk_backing_zero_mode(&b, true), 0, PAGE), 0);
	zublk_backing_close(&b);
	unlink(path);
}

/*
 * A block device takes a zeroed range, NOUNMAP or not (a punched hole fails
 * where it cannot unmap), and its -EOPNOTSUPP is the request's answer, not
 * a refusal that turns later ones into holes.
 */
TEST(write_zeroes_on_a_block_device_are_a_zeroed_range)
{
	const int range = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
	struct zublk_backing b = { .fd = -1, .bdev = true };

	CHECK_EQ(zublk_backing_zero_mode(&b, false), range);
	CHECK_EQ(zublk_backing_zero_mode(&b, true), range);
	CHECK(!zublk_backing_zero_refused(&b, -EOPNOTSUPP));
	CHECK(!b.no_zero_range);
	CHECK_EQ(zublk_backing_zero_mode(&b, true), range);
}
