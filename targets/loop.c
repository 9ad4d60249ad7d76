// SPDX-License-Identifier: MIT
/*
 * loop: a regular file or a block device.  O_DIRECT unless buffered=1.
 * A file in memory (tmpfs) is opened buffered and mapped: a READ or WRITE
 * of up to map_max bytes is copied straight between the request (in the
 * copy modes, its buffer) and the file's pages in the queue thread
 * (zublk_backing_copy()), one copy as the kernel's loop makes (the copy
 * modes add the driver's own), without io_uring's worker thread; whatever
 * that cannot take (a larger request, a hole in the zero-copy modes, a
 * failed copy) goes the io_uring way.
 * FLUSH -> fdatasync, FUA -> RWF_DSYNC (in the core), DISCARD -> punch hole
 * (block discard on a block device), WRITE_ZEROES -> punch hole, or zero
 * range when the request says NOUNMAP (keep the blocks allocated) and the
 * file system has zero range; a block device always zeroes out.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
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
	struct zublk_backing b;
	int idx;		/* fixed file index */
	_Atomic bool no_zero_range;	/* the file system said EOPNOTSUPP once */
};

/* Per tag: bytes done so far, for resubmitting a short read or write. */
struct loop_queue {
	uint32_t *done;
};

static void loop_geom(const struct zublk_backing *b, struct zublk_target_geom *g)
{
	g->size = b->size;
	g->logical_bs_shift = b->lbs_shift;
	g->physical_bs_shift = b->pbs_shift;
	g->dma_alignment = b->dma_alignment;
	g->caps = ZUBLK_CAP_FLUSH | ZUBLK_CAP_FUA;
	if (b->can_discard)
		g->caps |= ZUBLK_CAP_DISCARD;
	if (b->can_zero)
		g->caps |= ZUBLK_CAP_WRITE_ZEROES;
	g->want_copy = b->mem != NULL;
	g->copies_all = b->mem && b->copy_max >= ZUBLK_MAX_MAX_IO_BYTES;
}

static int loop_init(struct zublk_dev *dev, struct zublk_opts *opts,
		     struct zublk_target_geom *geom)
{
	const char *file = zublk_opts_get(opts, "file");
	int want_buffered, want_map;
	uint64_t map_max = ZUBLK_BACKING_COPY_MAX;
	struct loop_dev *ld;
	bool ro = false;
	int ret;

	if (!file || !*file) {
		zublk_log(ZUBLK_LOG_ERR, "target loop: needs file=PATH (or -f PATH)");
		return -EINVAL;
	}
	if (zublk_opts_get_tristate(opts, "buffered", &want_buffered)) {
		zublk_log(ZUBLK_LOG_ERR, "buffered '%s': not 0 or 1", zublk_opts_get(opts, "buffered"));
		return -EINVAL;
	}
	if (zublk_opts_get_tristate(opts, "map", &want_map)) {
		zublk_log(ZUBLK_LOG_ERR, "map '%s': not 0 or 1", zublk_opts_get(opts, "map"));
		return -EINVAL;
	}
	if (zublk_opts_get_size(opts, "map_max", &map_max) || map_max > ZUBLK_MAX_MAX_IO_BYTES) {
		zublk_log(ZUBLK_LOG_ERR, "map_max '%s': not a size up to 32M",
			  zublk_opts_get(opts, "map_max"));
		return -EINVAL;
	}
	if (zublk_opts_get_bool(opts, "ro", &ro)) {
		zublk_log(ZUBLK_LOG_ERR, "ro '%s': not 0 or 1", zublk_opts_get(opts, "ro"));
		return -EINVAL;
	}
	ld = calloc(1, sizeof(*ld));
	if (!ld)
		return -ENOMEM;
	ret = zublk_backing_open(&ld->b, "backing file", file, ro, want_buffered);
	if (ret)
		goto err_free;
	if (want_map == 1 && !ld->b.in_memory) {
		zublk_log(ZUBLK_LOG_ERR, "map=1: backing file '%s' is not in memory (tmpfs, ramfs)",
			  file);
		ret = -EINVAL;
		goto err_close;
	}
	if (want_map != 0 && ld->b.in_memory) {
		ret = zublk_backing_map(&ld->b, ld->b.size);
		if (ret) {
			zublk_log(ZUBLK_LOG_ERR, "backing file '%s': mapping it: %s", file,
				  strerror(-ret));
			goto err_close;
		}
		ld->b.copy_max = (uint32_t)map_max;
	}
	loop_geom(&ld->b, geom);
	if (ro)
		geom->caps = ZUBLK_CAP_READ_ONLY;
	ld->idx = zublk_dev_add_file(dev, ld->b.fd);
	if (ld->idx < 0) {
		ret = ld->idx;
		goto err_close;
	}
	zublk_dev_set_priv(dev, ld);
	return 0;

err_close:
	zublk_backing_close(&ld->b);
err_free:
	free(ld);
	return ret;
}

static void loop_exit(struct zublk_dev *dev)
{
	struct loop_dev *ld = zublk_dev_priv(dev);

	if (!ld)
		return;
	zublk_backing_close(&ld->b);
	free(ld);
}

/* Grow a regular backing file to fit; never shrink it (the data stays). */
static int loop_resize(struct zublk_dev *dev, uint64_t size)
{
	struct loop_dev *ld = zublk_dev_priv(dev);
	uint64_t have = 0;
	struct stat st;

	if (fstat(ld->b.fd, &st))
		return -errno;
	if (ld->b.bdev) {
		if (ioctl(ld->b.fd, BLKGETSIZE64, &have))
			return -errno;
		if (size > have) {
			zublk_log(ZUBLK_LOG_ERR, "resize: the backing device has only %llu bytes",
				  (unsigned long long)have);
			return -ENOSPC;
		}
		return 0;
	}
	if (size > (uint64_t)st.st_size && ftruncate(ld->b.fd, (off_t)size)) {
		int ret = -errno;

		zublk_log(ZUBLK_LOG_ERR, "resize: growing the backing file: %s", strerror(-ret));
		return ret;
	}
	/* Past what can be mapped, requests there go the io_uring way. */
	if (ld->b.mem)
		zublk_backing_map(&ld->b, size);
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
	if (!ld->b.bdev && (ld->no_zero_range || !(io->flags & UBLK_IO_F_NOUNMAP)))
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
		if (ld->b.mem && !zublk_backing_copy(q, io, &ld->b, io->offset, 0, (uint32_t)io->len)) {
			zublk_io_complete(q, io, (int)io->len);
			return 0;
		}
		lq->done[io->tag] = 0;
		return zublk_io_prep_rw_commit(q, io, io->op == UBLK_IO_OP_WRITE, ld->idx,
					       io->offset, 0, (uint32_t)io->len, LOOP_RW);
	case UBLK_IO_OP_FLUSH:
		sqe = zublk_queue_get_sqe(q);
		if (!sqe)
			return -EBUSY;
		io_uring_prep_fsync(sqe, ld->idx, IORING_FSYNC_DATASYNC);
		sqe->flags |= IOSQE_FIXED_FILE;
		zublk_io_sqe_mark(q, io, sqe, LOOP_FLUSH);
		return 0;
	case UBLK_IO_OP_DISCARD:
		if (ld->b.bdev) {
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
	ret = zublk_io_prep_rw_commit(q, io, io->op == UBLK_IO_OP_WRITE, ld->idx,
				      io->offset + done, done, (uint32_t)io->len - done, LOOP_RW);
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
		if (res == -EOPNOTSUPP && !ld->b.bdev) {
			ld->no_zero_range = true;
			ret = loop_zero(q, io);
			if (ret)
				zublk_io_complete(q, io, ret);
			return;
		}
		break;
	}
	if (sub != LOOP_FLUSH)
		zublk_backing_forget(&ld->b, io->offset, io->len);
	zublk_io_complete(q, io, res < 0 ? res : 0);
}

static void loop_status(struct zublk_dev *dev, FILE *json)
{
	struct loop_dev *ld = zublk_dev_priv(dev);

	fprintf(json, ",\"buffered\":%s,\"mapped\":%s", ld && ld->b.buffered ? "true" : "false",
		ld && zublk_backing_is_mapped(&ld->b) ? "true" : "false");
}

const struct zublk_target_ops zublk_loop_ops = {
	.name = "loop",
	.summary = "a regular file or block device",
	.usage = "file=PATH (or -f PATH)  buffered=0|1 (default: O_DIRECT, buffered on tmpfs)  "
		 "map=0|1 (default: 1 on tmpfs)  map_max=SIZE (default: no limit)  ro=0|1",
	.modes = ZUBLK_MODES_ALL,
	.init = loop_init,
	.exit = loop_exit,
	.queue_init = loop_queue_init,
	.queue_exit = loop_queue_exit,
	.queue_io = loop_queue_io,
	.io_done = loop_io_done,
	.resize = loop_resize,
	.status = loop_status,
};
