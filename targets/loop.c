// SPDX-License-Identifier: MIT
/*
 * loop: a regular file or a block device.  O_DIRECT unless buffered=1.
 * FLUSH -> fdatasync, FUA -> RWF_DSYNC (in the core), DISCARD -> punch hole
 * (block discard on a block device), WRITE_ZEROES -> punch hole, or zero
 * range when the request says NOUNMAP (keep the blocks allocated) and the
 * file system has zero range; a block device always zeroes out.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "zublk.h"

enum {
	LOOP_RW,
	LOOP_FLUSH,
	LOOP_DISCARD,
	LOOP_ZERO_RANGE,	/* FALLOC_FL_ZERO_RANGE */
	LOOP_ZERO_PUNCH,	/* FALLOC_FL_PUNCH_HOLE */
};

struct loop_dev {
	int fd;
	int idx;		/* fixed file index */
	bool bdev;
	_Atomic bool no_zero_range;	/* the file system said EOPNOTSUPP once */
};

/* Per tag: bytes done so far, for resubmitting a short read or write. */
struct loop_queue {
	uint32_t *done;
};

static bool probe_punch_hole(int fd, uint64_t size, unsigned bs)
{
	/* Past the end with KEEP_SIZE: changes nothing, tells if it is supported. */
	return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)size, bs) == 0;
}

static bool bdev_can_discard(dev_t rdev)
{
	char path[96];
	unsigned long long max = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/queue/discard_max_bytes",
		 major(rdev), minor(rdev));
	f = fopen(path, "re");
	if (!f)
		return false;
	if (fscanf(f, "%llu", &max) != 1)
		max = 0;
	fclose(f);
	return max > 0;
}

static int loop_geom(struct loop_dev *ld, const char *file, bool buffered,
		     struct zublk_target_geom *g)
{
	struct stat st;

	if (fstat(ld->fd, &st)) {
		int ret = -errno;

		zublk_log(ZUBLK_LOG_ERR, "backing file '%s': %s", file, strerror(-ret));
		return ret;
	}
	g->caps = ZUBLK_CAP_FLUSH | ZUBLK_CAP_FUA;
	if (S_ISBLK(st.st_mode)) {
		int lbs = 512, pbs = 512;

		ld->bdev = true;
		if (ioctl(ld->fd, BLKGETSIZE64, &g->size) || ioctl(ld->fd, BLKSSZGET, &lbs) ||
		    ioctl(ld->fd, BLKPBSZGET, &pbs)) {
			int ret = -errno;

			zublk_log(ZUBLK_LOG_ERR, "backing device '%s': %s", file, strerror(-ret));
			return ret;
		}
		g->logical_bs_shift = (unsigned)__builtin_ctz((unsigned)lbs);
		g->physical_bs_shift = (unsigned)__builtin_ctz((unsigned)pbs);
		g->caps |= ZUBLK_CAP_WRITE_ZEROES;
		if (bdev_can_discard(st.st_rdev))
			g->caps |= ZUBLK_CAP_DISCARD;
	} else if (S_ISREG(st.st_mode)) {
		unsigned lbs = 512;
		struct statx stx;

		g->size = (uint64_t)st.st_size;
		/* O_DIRECT needs the file system's alignment as our block size. */
		if (!buffered && !statx(ld->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) &&
		    (stx.stx_mask & STATX_DIOALIGN)) {
			while (lbs < stx.stx_dio_offset_align && lbs < 4096)
				lbs <<= 1;
			if (stx.stx_dio_mem_align > 512)
				g->dma_alignment = stx.stx_dio_mem_align - 1;
		}
		g->logical_bs_shift = (unsigned)__builtin_ctz(lbs);
		g->physical_bs_shift = st.st_blksize >= 4096 ? 12 : g->logical_bs_shift;
		if (probe_punch_hole(ld->fd, g->size, lbs))
			g->caps |= ZUBLK_CAP_DISCARD | ZUBLK_CAP_WRITE_ZEROES;
	} else {
		zublk_log(ZUBLK_LOG_ERR, "backing file '%s': not a regular file or block device",
			  file);
		return -EINVAL;
	}
	if (g->size < (1ULL << g->logical_bs_shift)) {
		zublk_log(ZUBLK_LOG_ERR, "backing file '%s': too small (%llu bytes)", file,
			  (unsigned long long)g->size);
		return -EINVAL;
	}
	return 0;
}

static int loop_init(struct zublk_dev *dev, struct zublk_opts *opts,
		     struct zublk_target_geom *geom)
{
	const char *file = zublk_opts_get(opts, "file");
	bool buffered, ro = false;
	int want_buffered;
	struct loop_dev *ld;
	int ret, flags;

	if (!file || !*file) {
		zublk_log(ZUBLK_LOG_ERR, "target loop: needs file=PATH (or -f PATH)");
		return -EINVAL;
	}
	if (zublk_opts_get_tristate(opts, "buffered", &want_buffered)) {
		zublk_log(ZUBLK_LOG_ERR, "buffered '%s': not 0 or 1", zublk_opts_get(opts, "buffered"));
		return -EINVAL;
	}
	if (zublk_opts_get_bool(opts, "ro", &ro)) {
		zublk_log(ZUBLK_LOG_ERR, "ro '%s': not 0 or 1", zublk_opts_get(opts, "ro"));
		return -EINVAL;
	}
	buffered = want_buffered < 0 ? zublk_backing_in_memory(file) : want_buffered;
	ld = calloc(1, sizeof(*ld));
	if (!ld)
		return -ENOMEM;
	flags = (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC | (buffered ? 0 : O_DIRECT);
	ld->fd = open(file, flags);
	if (ld->fd < 0) {
		ret = -errno;
		if (ret == -EINVAL && !buffered)
			zublk_log(ZUBLK_LOG_ERR,
				  "backing file '%s': O_DIRECT is not supported there (use buffered=1)",
				  file);
		else
			zublk_log(ZUBLK_LOG_ERR, "backing file '%s': %s", file, strerror(-ret));
		goto err_free;
	}
	ret = loop_geom(ld, file, buffered, geom);
	if (ret)
		goto err_close;
	if (ro)
		geom->caps = ZUBLK_CAP_READ_ONLY;
	ld->idx = zublk_dev_add_file(dev, ld->fd);
	if (ld->idx < 0) {
		ret = ld->idx;
		goto err_close;
	}
	zublk_dev_set_priv(dev, ld);
	return 0;

err_close:
	close(ld->fd);
err_free:
	free(ld);
	return ret;
}

static void loop_exit(struct zublk_dev *dev)
{
	struct loop_dev *ld = zublk_dev_priv(dev);

	if (!ld)
		return;
	close(ld->fd);
	free(ld);
}

/* Grow a regular backing file to fit; never shrink it (the data stays). */
static int loop_resize(struct zublk_dev *dev, uint64_t size)
{
	struct loop_dev *ld = zublk_dev_priv(dev);
	uint64_t have = 0;
	struct stat st;

	if (fstat(ld->fd, &st))
		return -errno;
	if (ld->bdev) {
		if (ioctl(ld->fd, BLKGETSIZE64, &have))
			return -errno;
		if (size > have) {
			zublk_log(ZUBLK_LOG_ERR, "resize: the backing device has only %llu bytes",
				  (unsigned long long)have);
			return -ENOSPC;
		}
		return 0;
	}
	if (size > (uint64_t)st.st_size && ftruncate(ld->fd, (off_t)size)) {
		int ret = -errno;

		zublk_log(ZUBLK_LOG_ERR, "resize: growing the backing file: %s", strerror(-ret));
		return ret;
	}
	return 0;
}

static int loop_queue_init(struct zublk_queue *q)
{
	struct loop_queue *lq = calloc(1, sizeof(*lq));

	if (!lq)
		return -ENOMEM;
	lq->done = calloc(ZUBLK_MAX_QUEUE_DEPTH, sizeof(*lq->done));
	if (!lq->done) {
		free(lq);
		return -ENOMEM;
	}
	zublk_queue_set_priv(q, lq);
	return 0;
}

static void loop_queue_exit(struct zublk_queue *q)
{
	struct loop_queue *lq = zublk_queue_priv(q);

	if (!lq)
		return;
	free(lq->done);
	free(lq);
}

static int loop_fallocate(struct zublk_queue *q, struct zublk_io *io, int mode, unsigned sub)
{
	struct loop_dev *ld = zublk_dev_priv(zublk_queue_dev(q));
	struct io_uring_sqe *sqe = zublk_queue_get_sqe(q);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_fallocate(sqe, ld->idx, mode, (off_t)io->offset, (off_t)io->len);
	sqe->flags |= IOSQE_FIXED_FILE;
	zublk_io_sqe_mark(q, io, sqe, sub);
	return 0;
}

static int loop_zero(struct zublk_queue *q, struct zublk_io *io)
{
	struct loop_dev *ld = zublk_dev_priv(zublk_queue_dev(q));

	/* NOUNMAP is a wish, not a promise: a hole reads back as zeros too. */
	if (!ld->bdev && (ld->no_zero_range || !(io->flags & UBLK_IO_F_NOUNMAP)))
		return loop_fallocate(q, io, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				      LOOP_ZERO_PUNCH);
	return loop_fallocate(q, io, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
			      LOOP_ZERO_RANGE);
}

static int loop_queue_io(struct zublk_queue *q, struct zublk_io *io)
{
	struct loop_dev *ld = zublk_dev_priv(zublk_queue_dev(q));
	struct loop_queue *lq = zublk_queue_priv(q);
	struct io_uring_sqe *sqe;

	switch (io->op) {
	case UBLK_IO_OP_READ:
	case UBLK_IO_OP_WRITE:
		lq->done[io->tag] = 0;
		return zublk_io_prep_rw(q, io, io->op == UBLK_IO_OP_WRITE, ld->idx, io->offset, 0,
					(uint32_t)io->len, LOOP_RW);
	case UBLK_IO_OP_FLUSH:
		sqe = zublk_queue_get_sqe(q);
		if (!sqe)
			return -EBUSY;
		io_uring_prep_fsync(sqe, ld->idx, IORING_FSYNC_DATASYNC);
		sqe->flags |= IOSQE_FIXED_FILE;
		zublk_io_sqe_mark(q, io, sqe, LOOP_FLUSH);
		return 0;
	case UBLK_IO_OP_DISCARD:
		if (ld->bdev) {
			sqe = zublk_queue_get_sqe(q);
			if (!sqe)
				return -EBUSY;
			io_uring_prep_cmd_discard(sqe, ld->idx, io->offset, io->len);
			sqe->flags |= IOSQE_FIXED_FILE;
			zublk_io_sqe_mark(q, io, sqe, LOOP_DISCARD);
			return 0;
		}
		return loop_fallocate(q, io, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				      LOOP_DISCARD);
	case UBLK_IO_OP_WRITE_ZEROES:
		return loop_zero(q, io);
	default:
		return -EOPNOTSUPP;
	}
}

static void loop_rw_done(struct zublk_queue *q, struct zublk_io *io, int res)
{
	struct loop_dev *ld = zublk_dev_priv(zublk_queue_dev(q));
	struct loop_queue *lq = zublk_queue_priv(q);
	uint32_t done;
	int ret;

	if (res <= 0) {
		/* 0 bytes: the backing shrank under us. */
		zublk_io_complete(q, io, res < 0 ? res : -EIO);
		return;
	}
	done = lq->done[io->tag] += (uint32_t)res;
	if (done >= io->len) {
		zublk_io_complete(q, io, (int)io->len);
		return;
	}
	/* Short read or write: go on with the rest. */
	ret = zublk_io_prep_rw(q, io, io->op == UBLK_IO_OP_WRITE, ld->idx, io->offset + done,
			       done, (uint32_t)io->len - done, LOOP_RW);
	if (ret)
		zublk_io_complete(q, io, ret);
}

static void loop_io_done(struct zublk_queue *q, struct zublk_io *io, unsigned sub, int res)
{
	struct loop_dev *ld = zublk_dev_priv(zublk_queue_dev(q));
	int ret;

	switch (sub) {
	case LOOP_RW:
		loop_rw_done(q, io, res);
		return;
	case LOOP_ZERO_RANGE:
		if (res == -EOPNOTSUPP && !ld->bdev) {
			ld->no_zero_range = true;
			ret = loop_zero(q, io);
			if (ret)
				zublk_io_complete(q, io, ret);
			return;
		}
		break;
	}
	zublk_io_complete(q, io, res < 0 ? res : 0);
}

const struct zublk_target_ops zublk_loop_ops = {
	.name = "loop",
	.summary = "a regular file or block device",
	.usage = "file=PATH (or -f PATH)  buffered=0|1 (default: O_DIRECT, buffered on tmpfs)  ro=0|1",
	.modes = ZUBLK_MODES_ALL,
	.init = loop_init,
	.exit = loop_exit,
	.queue_init = loop_queue_init,
	.queue_exit = loop_queue_exit,
	.queue_io = loop_queue_io,
	.io_done = loop_io_done,
	.resize = loop_resize,
};
