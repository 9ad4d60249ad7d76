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
 *
 * Integrity metadata (meta=FILE): a file of meta_size bytes per logical
 * block, kept buffered and moved in the queue thread (a few bytes a block).
 * It holds each byte inverted, so that a hole, where a block was never
 * written or was discarded, reads as all ones: PI the block layer does not
 * check (an application tag of 0xffff).  Creating it is a truncate, and a
 * DISCARD or WRITE_ZEROES punches the blocks' metadata out with their data.
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
#include <sys/xattr.h>
#include <unistd.h>

#include "zublk.h"

enum {
	LOOP_RW,
	LOOP_FLUSH,
	LOOP_DISCARD,
	LOOP_ZERO_RANGE,	/* FALLOC_FL_ZERO_RANGE */
	LOOP_ZERO_PUNCH,	/* FALLOC_FL_PUNCH_HOLE */
	LOOP_META_FLUSH,	/* the metadata file's fdatasync */
};

struct loop_dev {
	struct zublk_backing b;
	int idx;		/* fixed file index */
	int meta_fd;		/* integrity metadata, -1: none */
	char *meta;		/* its path */
	bool meta_created;	/* by this add: removed if the add is refused */
	struct zublk_integrity in;
};

/*
 * Per tag: bytes done so far, for resubmitting a short read or write; a
 * FLUSH's syncs out.  The metadata of the request at hand.
 */
struct loop_queue {
	uint32_t *done;
	int *error;		/* a FLUSH's first error */
	uint8_t *meta;
	uint32_t meta_cap;
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

/* ------------------------------------------------- integrity metadata */

static const struct {
	const char *name;
	uint8_t csum;
	uint8_t tuple;		/* bytes of PI */
} pi_types[] = {
	{ "crc16", LBMD_PI_CSUM_CRC16_T10DIF, 8 },
	{ "crc64", LBMD_PI_CSUM_CRC64_NVME, 16 },
	{ "ip", LBMD_PI_CSUM_IP, 8 },
	{ "none", LBMD_PI_CSUM_NONE, 0 },
};

static const char *pi_name(uint8_t csum)
{
	for (size_t i = 0; i < sizeof(pi_types) / sizeof(pi_types[0]); i++)
		if (pi_types[i].csum == csum)
			return pi_types[i].name;
	return "?";
}

/* meta=PATH [meta_size=N] [pi=crc16|crc64|ip|none] [pi_offset=N] */
static int meta_opts(struct loop_dev *ld, struct zublk_opts *opts)
{
	const char *meta = zublk_opts_get(opts, "meta");
	const char *pi = zublk_opts_get(opts, "pi");
	const char *msize = zublk_opts_get(opts, "meta_size");
	const char *moff = zublk_opts_get(opts, "pi_offset");
	unsigned size = 0, off = 0;
	size_t t = 0;

	if (pi) {
		while (t < sizeof(pi_types) / sizeof(pi_types[0]) && strcmp(pi, pi_types[t].name))
			t++;
		if (t == sizeof(pi_types) / sizeof(pi_types[0])) {
			zublk_log(ZUBLK_LOG_ERR, "pi '%s': not crc16, crc64, ip or none", pi);
			return -EINVAL;
		}
	}
	if (msize && zublk_parse_uint(msize, 1, 255, &size)) {
		zublk_log(ZUBLK_LOG_ERR, "meta_size '%s': not a number of bytes 1..255", msize);
		return -EINVAL;
	}
	if (moff && zublk_parse_uint(moff, 0, 254, &off)) {
		zublk_log(ZUBLK_LOG_ERR, "pi_offset '%s': not a number of bytes 0..254", moff);
		return -EINVAL;
	}
	if (!meta || !*meta) {
		if (pi || msize || moff) {
			zublk_log(ZUBLK_LOG_ERR, "%s: integrity options need meta=PATH, the file "
				  "that keeps the metadata", pi ? "pi" : msize ? "meta_size" : "pi_offset");
			return -EINVAL;
		}
		return 0;
	}
	if (!size)
		size = pi_types[t].tuple > 8 ? pi_types[t].tuple : 8;
	if (off + pi_types[t].tuple > size) {
		zublk_log(ZUBLK_LOG_ERR, "pi=%s: %u bytes of PI at offset %u do not fit in "
			  "meta_size=%u", pi_types[t].name, pi_types[t].tuple, off, size);
		return -EINVAL;
	}
	ld->in.meta_size = (uint8_t)size;
	ld->in.pi_offset = (uint8_t)off;
	ld->in.csum = pi_types[t].csum;
	ld->in.ref_tag = pi_types[t].csum != LBMD_PI_CSUM_NONE;
	ld->meta = strdup(meta);
	return ld->meta ? 0 : -ENOMEM;
}

/* Bytes of metadata for @len bytes of data from @off: where and how many. */
static uint64_t meta_pos(const struct loop_dev *ld, uint64_t off)
{
	return (off >> ld->in.interval_shift) * ld->in.meta_size;
}

/*
 * The layout the metadata file was written in, kept with it (an extended
 * attribute): another block size or other integrity options would read
 * every block's metadata wrong, and each read would fail.  A file without
 * one takes ours; a file system without extended attributes keeps none.
 */
#define META_XATTR "user.zublk.integrity"

static int meta_layout(struct loop_dev *ld, bool ro)
{
	char want[96], have[96];
	ssize_t n;

	snprintf(want, sizeof(want), "interval=%u meta_size=%u pi=%s pi_offset=%u",
		 1U << ld->in.interval_shift, ld->in.meta_size, pi_name(ld->in.csum),
		 ld->in.pi_offset);
	n = fgetxattr(ld->meta_fd, META_XATTR, have, sizeof(have) - 1);
	if (n >= 0) {
		have[n] = '\0';
		if (strcmp(have, want)) {
			zublk_log(ZUBLK_LOG_ERR, "metadata file '%s': written as %s, not %s",
				  ld->meta, have, want);
			return -EINVAL;
		}
		return 0;
	}
	if (errno != ENODATA || ro)
		return 0;
	if (fsetxattr(ld->meta_fd, META_XATTR, want, strlen(want), XATTR_CREATE) &&
	    errno != ENOTSUP && errno != EEXIST)
		zublk_log(ZUBLK_LOG_WARN, "metadata file '%s': keeping its layout: %s", ld->meta,
			  strerror(errno));
	return 0;
}

/*
 * Open (or, with @create, create: *@created) the metadata file, long
 * enough for the device.
 */
static int meta_open(struct loop_dev *ld, bool ro, bool create, bool *created)
{
	uint64_t need = meta_pos(ld, ld->b.size);
	struct stat st;
	int ret;

	create = create && !ro;
	*created = create && stat(ld->meta, &st) && errno == ENOENT;
	ld->meta_fd = zublk_open_nowait(ld->meta, (ro ? O_RDONLY : O_RDWR) | (create ? O_CREAT : 0),
				       0600);
	if (ld->meta_fd < 0) {
		ret = -errno;
		zublk_log(ZUBLK_LOG_ERR, "metadata file '%s': %s", ld->meta, strerror(-ret));
		return ret;
	}
	if (fstat(ld->meta_fd, &st) || !S_ISREG(st.st_mode)) {
		zublk_log(ZUBLK_LOG_ERR, "metadata file '%s': not a regular file", ld->meta);
		return -EINVAL;
	}
	ret = meta_layout(ld, ro);
	if (ret)
		return ret;
	if ((uint64_t)st.st_size >= need)
		return 0;
	/* Grown with a hole: blocks without metadata (all ones once inverted). */
	if (ro || ftruncate(ld->meta_fd, (off_t)need)) {
		ret = ro ? -EINVAL : -errno;
		zublk_log(ZUBLK_LOG_ERR, "metadata file '%s': %lld bytes, the device needs %llu%s%s",
			  ld->meta, (long long)st.st_size, (unsigned long long)need,
			  ro ? "" : ": ", ro ? "" : strerror(-ret));
		return ret;
	}
	return 0;
}

static void invert(uint8_t *p, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)~p[i];
}

/* Move a READ's or WRITE's metadata, in the queue thread.  0 or -errno. */
static int meta_rw(struct zublk_queue *q, struct zublk_io *io, struct loop_dev *ld)
{
	struct loop_queue *lq = zublk_queue_priv(q);
	uint32_t len = zublk_io_meta_len(q, io);
	off_t pos = (off_t)meta_pos(ld, io->offset);
	ssize_t n;
	int ret;

	if (!len)
		return 0;
	if (len > lq->meta_cap) {
		uint8_t *m = realloc(lq->meta, len);

		if (!m)
			return -ENOMEM;
		lq->meta = m;
		lq->meta_cap = len;
	}
	if (io->op == UBLK_IO_OP_WRITE) {
		ret = zublk_io_meta_copy(q, io, 0, lq->meta, len);
		if (ret)
			return ret;
		invert(lq->meta, len);
		struct iovec iov = { lq->meta, len };

		n = pwritev2(ld->meta_fd, &iov, 1, pos,
			     (io->flags & UBLK_IO_F_FUA) ? RWF_DSYNC : 0);
		return n == (ssize_t)len ? 0 : n < 0 ? -errno : -EIO;
	}
	n = pread(ld->meta_fd, lq->meta, len, pos);
	if (n < 0)
		return -errno;
	/* Past the file's end: no metadata, as in a hole. */
	memset(lq->meta + n, 0, len - (uint32_t)n);
	invert(lq->meta, len);
	return zublk_io_meta_copy(q, io, 0, lq->meta, len);
}

/* A DISCARD or WRITE_ZEROES: the blocks' metadata goes too. */
static int meta_punch(struct loop_dev *ld, const struct zublk_io *io)
{
	uint64_t pos = meta_pos(ld, io->offset), len = meta_pos(ld, io->len);

	if (fallocate(ld->meta_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)pos,
		      (off_t)len))
		return -errno;
	return 0;
}

static int loop_init(struct zublk_dev *dev, struct zublk_opts *opts,
		     struct zublk_target_geom *geom)
{
	const char *file = zublk_opts_get(opts, "file");
	int want_buffered, want_map;
	uint64_t map_max = ZUBLK_BACKING_COPY_MAX;
	struct loop_dev *ld;
	bool ro = false, created = false;
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
	ld->meta_fd = -1;
	ret = meta_opts(ld, opts);
	if (ret)
		goto err_free;
	ret = zublk_backing_open(&ld->b, "backing file", file, ro, want_buffered);
	if (ret)
		goto err_free;
	if (want_map == 1 && !ld->b.in_memory) {
		zublk_log(ZUBLK_LOG_ERR, "map=1: backing file '%s' is not in memory (tmpfs, ramfs)",
			  file);
		ret = -EINVAL;
		goto err_close;
	}
	if ((want_map == 0 || !ld->b.in_memory) && zublk_opts_get(opts, "map_max") &&
	    zublk_dev_opt_unused(dev, opts, "map_max",
				 "only for a backing file mapped in memory (tmpfs, ramfs; not with map=0)")) {
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
	if (ld->meta) {
		/* Refused before the file is made (the core would refuse it after). */
		ret = zublk_integrity_check_mode(dev);
		if (ret)
			goto err_close;
		ld->in.interval_shift = (uint8_t)geom->logical_bs_shift;
		/* A recovery wants the metadata it had: a new file would check no block. */
		ret = meta_open(ld, ro, !zublk_dev_recovering(dev), &created);
		if (ret)
			goto err_close;
		ld->meta_created = created;
		geom->integrity = ld->in;
	}
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
	if (created)
		unlink(ld->meta);
	if (ld->meta_fd >= 0)
		close(ld->meta_fd);
	free(ld->meta);
	free(ld);
	return ret;
}

static void loop_exit(struct zublk_dev *dev)
{
	struct loop_dev *ld = zublk_dev_priv(dev);

	if (!ld)
		return;
	zublk_backing_close(&ld->b);
	if (ld->meta_fd >= 0)
		close(ld->meta_fd);
	/* An add refused after this init leaves no metadata file it made. */
	if (ld->meta_created && !zublk_dev_started(dev))
		unlink(ld->meta);
	free(ld->meta);
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
	if (ld->meta_fd >= 0) {
		uint64_t need = meta_pos(ld, size);

		if (fstat(ld->meta_fd, &st))
			return -errno;
		if (need > (uint64_t)st.st_size && ftruncate(ld->meta_fd, (off_t)need)) {
			int ret = -errno;

			zublk_log(ZUBLK_LOG_ERR, "resize: growing the metadata file: %s",
				  strerror(-ret));
			return ret;
		}
	}
	return 0;
}

static int loop_queue_init(struct zublk_queue *q)
{
	struct loop_queue *lq = calloc(1, sizeof(*lq));

	if (!lq)
		return -ENOMEM;
	lq->done = calloc(ZUBLK_MAX_QUEUE_DEPTH, sizeof(*lq->done));
	lq->error = calloc(ZUBLK_MAX_QUEUE_DEPTH, sizeof(*lq->error));
	if (!lq->done || !lq->error) {
		free(lq->done);
		free(lq->error);
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
	free(lq->error);
	free(lq->meta);
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

	int mode = zublk_backing_zero_mode(&ld->b, io->flags & UBLK_IO_F_NOUNMAP);

	return loop_fallocate(q, io, mode,
			      (mode & FALLOC_FL_ZERO_RANGE) ? LOOP_ZERO_RANGE : LOOP_ZERO_PUNCH);
}

static int loop_queue_io(struct zublk_queue *q, struct zublk_io *io)
{
	struct loop_dev *ld = zublk_dev_priv(zublk_queue_dev(q));
	struct loop_queue *lq = zublk_queue_priv(q);
	struct io_uring_sqe *sqe;
	int ret;

	/* A DISCARD or WRITE_ZEROES takes its blocks' metadata with it. */
	if (ld->meta_fd >= 0 &&
	    (io->op == UBLK_IO_OP_DISCARD || io->op == UBLK_IO_OP_WRITE_ZEROES)) {
		ret = meta_punch(ld, io);
		if (ret)
			return ret;
	}
	switch (io->op) {
	case UBLK_IO_OP_READ:
	case UBLK_IO_OP_WRITE:
		if (ld->meta_fd >= 0) {
			ret = meta_rw(q, io, ld);
			if (ret)
				return ret;
		}
		if (ld->b.mem && !zublk_backing_copy(q, io, &ld->b, io->offset, 0, (uint32_t)io->len)) {
			zublk_io_complete(q, io, (int)io->len);
			return 0;
		}
		lq->done[io->tag] = 0;
		return zublk_io_prep_rw_commit(q, io, io->op == UBLK_IO_OP_WRITE, ld->idx,
					       io->offset, 0, (uint32_t)io->len, LOOP_RW);
	case UBLK_IO_OP_FLUSH:
		lq->done[io->tag] = 0;
		lq->error[io->tag] = 0;
		if (ld->meta_fd >= 0) {
			sqe = zublk_queue_get_sqe(q);
			if (!sqe)
				return -EBUSY;
			io_uring_prep_fsync(sqe, ld->meta_fd, IORING_FSYNC_DATASYNC);
			zublk_io_sqe_mark(q, io, sqe, LOOP_META_FLUSH);
			lq->done[io->tag]++;
		}
		sqe = zublk_queue_get_sqe(q);
		if (!sqe) {
			/* The metadata's sync, if any, is out: it ends the request. */
			lq->error[io->tag] = -EBUSY;
			return lq->done[io->tag] ? 0 : -EBUSY;
		}
		io_uring_prep_fsync(sqe, ld->idx, IORING_FSYNC_DATASYNC);
		sqe->flags |= IOSQE_FIXED_FILE;
		zublk_io_sqe_mark(q, io, sqe, LOOP_FLUSH);
		lq->done[io->tag]++;
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

	struct loop_queue *lq = zublk_queue_priv(q);

	switch (sub) {
	case LOOP_RW:
		loop_rw_done(q, io, res);
		return;
	case LOOP_FLUSH:
	case LOOP_META_FLUSH:
		if (res < 0 && !lq->error[io->tag])
			lq->error[io->tag] = res;
		if (--lq->done[io->tag] == 0)
			zublk_io_complete(q, io, lq->error[io->tag]);
		return;
	case LOOP_ZERO_RANGE:
		if (zublk_backing_zero_refused(&ld->b, res)) {
			ret = loop_zero(q, io);
			if (ret)
				zublk_io_complete(q, io, ret);
			return;
		}
		break;
	}
	zublk_backing_forget(&ld->b, io->offset, io->len);
	zublk_io_complete(q, io, res < 0 ? res : 0);
}

static void loop_status(struct zublk_dev *dev, FILE *json)
{
	struct loop_dev *ld = zublk_dev_priv(dev);

	fprintf(json, ",\"buffered\":%s,\"mapped\":%s", ld && ld->b.buffered ? "true" : "false",
		ld && zublk_backing_is_mapped(&ld->b) ? "true" : "false");
	if (!ld || !ld->meta)
		return;
	fprintf(json, ",\"meta\":");
	zublk_json_str(json, ld->meta);
	fprintf(json, ",\"meta_size\":%u,\"pi\":\"%s\",\"pi_offset\":%u", ld->in.meta_size,
		pi_name(ld->in.csum), ld->in.pi_offset);
}

const struct zublk_target_ops zublk_loop_ops = {
	.name = "loop",
	.summary = "a regular file or block device",
	.usage = "file=PATH (or -f PATH)  buffered=0|1 (default: O_DIRECT, buffered on tmpfs)  "
		 "map=0|1 (default: 1 on tmpfs)  map_max=SIZE (default: no limit)  ro=0|1  "
		 "meta=PATH (integrity metadata)  meta_size=N (default 8)  "
		 "pi=crc16|crc64|ip|none (default crc16)  pi_offset=N (default 0)",
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
