// SPDX-License-Identifier: MIT
/*
 * null: no backing.  Writes are dropped; reads return zeros, never stale
 * memory: in the zero-copy modes a read of up to copy_max bytes gets them
 * copied from a zero mapping by the driver's user copy, in the queue thread
 * (the commit follows at once); a longer one gets /dev/zero read into the
 * request's own pages.  A read in shared memory (--shmem) gets them by
 * pread() of /dev/zero up to copy_max, read by io_uring beyond, never by
 * memset(): those pages are the application's.
 * fill=none leaves a read's pages as they are (what null_blk does): every
 * request is then one round trip, no data touched.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "zublk.h"

#define NULL_DEF_SIZE (256ULL << 30)
/*
 * Below this a user copy of zeros beats registering the request's pages and
 * reading /dev/zero into them (bench/notes.md).
 */
#define NULL_DEF_COPY_MAX (64U << 10)

struct null_dev {
	int zero_fd;
	int zero_idx;
	bool fill;
	uint32_t copy_max;	/* reads up to this long: zeros by user copy */
	void *zeros;		/* copy_max bytes of the zero page, read-only */
};

static int null_init(struct zublk_dev *dev, struct zublk_opts *opts,
		     struct zublk_target_geom *geom)
{
	uint64_t size = NULL_DEF_SIZE, bs = 512, copy_max = NULL_DEF_COPY_MAX;
	const char *fill = zublk_opts_get(opts, "fill");
	struct null_dev *nd;
	int ret;

	if (zublk_opts_get_size(opts, "size", &size) || size == 0) {
		zublk_log(ZUBLK_LOG_ERR, "size '%s': not a size (e.g. 4096, 64M, 2G)",
			  zublk_opts_get(opts, "size"));
		return -EINVAL;
	}
	if (zublk_opts_get_size(opts, "bs", &bs) || (bs != 512 && bs != 1024 && bs != 2048 &&
						     bs != 4096)) {
		zublk_log(ZUBLK_LOG_ERR, "bs '%s': block size must be 512, 1024, 2048 or 4096",
			  zublk_opts_get(opts, "bs"));
		return -EINVAL;
	}
	if (fill && strcmp(fill, "zero") && strcmp(fill, "none")) {
		zublk_log(ZUBLK_LOG_ERR, "fill '%s': not zero or none", fill);
		return -EINVAL;
	}
	if (zublk_opts_get_size(opts, "copy_max", &copy_max) || copy_max > ZUBLK_MAX_MAX_IO_BYTES) {
		zublk_log(ZUBLK_LOG_ERR, "copy_max '%s': not a size up to 32M",
			  zublk_opts_get(opts, "copy_max"));
		return -EINVAL;
	}
	if (fill && !strcmp(fill, "none") && zublk_opts_get(opts, "copy_max") && copy_max &&
	    zublk_dev_opt_unused(dev, opts, "copy_max", "reads are not filled with fill=none"))
		return -EINVAL;
	nd = calloc(1, sizeof(*nd));
	if (!nd)
		return -ENOMEM;
	nd->fill = !fill || !strcmp(fill, "zero");
	if (nd->fill && copy_max) {
		/* Every page of it is the shared zero page: no memory taken. */
		nd->zeros = mmap(NULL, copy_max, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (nd->zeros == MAP_FAILED) {
			nd->zeros = NULL;
			ret = -ENOMEM;
			goto err_free;
		}
		nd->copy_max = (uint32_t)copy_max;
	}
	nd->zero_fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	if (nd->zero_fd < 0) {
		ret = -errno;
		zublk_log(ZUBLK_LOG_ERR, "/dev/zero: %s", strerror(-ret));
		goto err_unmap;
	}
	nd->zero_idx = zublk_dev_add_file(dev, nd->zero_fd);
	if (nd->zero_idx < 0) {
		ret = nd->zero_idx;
		goto err_close;
	}
	geom->size = size;
	geom->want_copy = nd->copy_max > 0;
	geom->logical_bs_shift = (unsigned)__builtin_ctzll(bs);
	geom->physical_bs_shift = 12;
	geom->caps = ZUBLK_CAP_FLUSH | ZUBLK_CAP_DISCARD | ZUBLK_CAP_WRITE_ZEROES;
	zublk_dev_set_priv(dev, nd);
	return 0;

err_close:
	close(nd->zero_fd);
err_unmap:
	if (nd->zeros)
		munmap(nd->zeros, nd->copy_max);
err_free:
	free(nd);
	return ret;
}

static void null_exit(struct zublk_dev *dev)
{
	struct null_dev *nd = zublk_dev_priv(dev);

	if (!nd)
		return;
	close(nd->zero_fd);
	if (nd->zeros)
		munmap(nd->zeros, nd->copy_max);
	free(nd);
}

static int null_queue_io(struct zublk_queue *q, struct zublk_io *io)
{
	struct null_dev *nd = zublk_dev_priv(zublk_queue_dev(q));

	if (io->op != UBLK_IO_OP_READ || !nd->fill) {
		bool data = io->op == UBLK_IO_OP_WRITE || io->op == UBLK_IO_OP_READ;

		zublk_io_complete(q, io, data ? (int)io->len : 0);
		return 0;
	}
	if (io->buf && !(io->flags & UBLK_IO_F_SHMEM_ZC)) {
		memset(io->buf, 0, io->len);
		zublk_io_complete(q, io, (int)io->len);
		return 0;
	}
	if (io->buf && io->len <= nd->copy_max) {
		/*
		 * The application's pages (shared memory): a system call,
		 * which fails where memset() would fault.  A pread() of
		 * /dev/zero costs less than zublk_io_copy()'s pinning.
		 */
		size_t done = 0;
		ssize_t n = 0;

		/* Short when a signal comes between pages: go on. */
		while (done < io->len &&
		       (n = pread(nd->zero_fd, (char *)io->buf + done, io->len - done, 0)) > 0)
			done += (size_t)n;
		zublk_io_complete(q, io, done == io->len ? (int)done : n < 0 ? -errno : -EIO);
		return 0;
	}
	if (io->len <= nd->copy_max && !zublk_io_copy(q, io, 0, nd->zeros, (uint32_t)io->len)) {
		zublk_io_complete(q, io, (int)io->len);
		return 0;
	}
	return zublk_io_prep_rw_commit(q, io, false, nd->zero_idx, 0, 0, (uint32_t)io->len, 0);
}

/*
 * A /dev/zero read may stop short (it yields the CPU between pages, and a
 * nonblocking attempt then returns what it did): go on with the rest.  @sub
 * carries how far the read had got, in 512-byte sectors.
 */
static void null_io_done(struct zublk_queue *q, struct zublk_io *io, unsigned sub, int res)
{
	struct null_dev *nd = zublk_dev_priv(zublk_queue_dev(q));
	uint64_t done;
	int ret;

	if (res <= 0) {
		zublk_io_complete(q, io, res < 0 ? res : -EIO);
		return;
	}
	done = ((uint64_t)sub << 9) + (uint64_t)res;
	if (done > io->len || done % 512) {
		zublk_io_complete(q, io, -EIO);
		return;
	}
	if (done == io->len) {
		zublk_io_complete(q, io, (int)io->len);
		return;
	}
	ret = zublk_io_prep_rw_commit(q, io, false, nd->zero_idx, 0, (uint32_t)done,
				      (uint32_t)(io->len - done), (unsigned)(done >> 9));
	if (ret)
		zublk_io_complete(q, io, ret);
}

const struct zublk_target_ops zublk_null_ops = {
	.name = "null",
	.summary = "no backing: writes are dropped, reads return zeros",
	.usage = "size=SIZE (default 256G)  bs=512|1024|2048|4096 (default 512)  "
		 "fill=zero|none (reads: zeros, or the pages left as they are; default zero)  "
		 "copy_max=SIZE (zero-copy modes: reads up to SIZE get their zeros by user copy; "
		 "default 64k, 0: never)",
	.modes = ZUBLK_MODES_ALL,
	/*
	 * Zero copy registers a request's buffer only when a read needs it;
	 * auto buffer registration registers every request's, writes too,
	 * which null never looks at (bench/results: 512k writes 0.98 vs 0.67
	 * x null_blk).
	 */
	.prefer_modes = ZUBLK_MODE_BIT(ZUBLK_MODE_ZERO_COPY),
	.init = null_init,
	.exit = null_exit,
	.queue_io = null_queue_io,
	.io_done = null_io_done,
};
