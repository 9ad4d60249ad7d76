// SPDX-License-Identifier: MIT
/*
 * One request's way through the core: validate, hand to the target, move
 * data in the device's data mode, commit exactly once.
 */
#include <errno.h>
#include <linux/blkzoned.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"

_Static_assert(ZUBLK_UD_SUB_MAX == 0xffff, "sub-op ids are the 16 bits 24..39 of user_data");
_Static_assert(sizeof(struct ublksrv_io_cmd) <= 16, "an io command fits a 64-byte SQE");

int zublk_io_validate(const struct ublksrv_io_desc *iod, uint64_t dev_sectors,
		      unsigned max_io_bytes, unsigned caps, struct zublk_io *io)
{
	uint8_t op = (uint8_t)(iod->op_flags & 0xff);
	uint64_t start = iod->start_sector, nr = iod->nr_sectors;

	io->op = op;
	io->flags = iod->op_flags & ~0xffU;
	io->offset = start << 9;
	io->len = 0;

	switch (op) {
	case UBLK_IO_OP_FLUSH:
		return 0;
	case UBLK_IO_OP_ZONE_APPEND:
		if (!(caps & ZUBLK_CAP_ZONED))
			return -EOPNOTSUPP;
		/* fall through */
	case UBLK_IO_OP_WRITE:
		if (caps & ZUBLK_CAP_READ_ONLY)
			return -EROFS;
		/* fall through */
	case UBLK_IO_OP_READ:
		if (nr == 0 || nr > (max_io_bytes >> 9))
			return -EINVAL;
		break;
	case UBLK_IO_OP_ZONE_OPEN:
	case UBLK_IO_OP_ZONE_CLOSE:
	case UBLK_IO_OP_ZONE_FINISH:
	case UBLK_IO_OP_ZONE_RESET:
	case UBLK_IO_OP_ZONE_RESET_ALL:
		if (!(caps & ZUBLK_CAP_ZONED))
			return -EOPNOTSUPP;
		if (caps & ZUBLK_CAP_READ_ONLY)
			return -EROFS;
		if (op != UBLK_IO_OP_ZONE_RESET_ALL && start >= dev_sectors)
			return -EINVAL;
		return 0;
	case UBLK_IO_OP_REPORT_ZONES:
		if (!(caps & ZUBLK_CAP_ZONED))
			return -EOPNOTSUPP;
		/* nr_sectors is nr_zones here */
		if (start >= dev_sectors || iod->nr_zones == 0 ||
		    (uint64_t)iod->nr_zones * sizeof(struct blk_zone) > max_io_bytes)
			return -EINVAL;
		io->len = (uint64_t)iod->nr_zones * sizeof(struct blk_zone);
		return 0;
	case UBLK_IO_OP_DISCARD:
		if (!(caps & ZUBLK_CAP_DISCARD))
			return -EOPNOTSUPP;
		if (nr == 0)
			return -EINVAL;
		break;
	case UBLK_IO_OP_WRITE_ZEROES:
		if (!(caps & ZUBLK_CAP_WRITE_ZEROES))
			return -EOPNOTSUPP;
		if (nr == 0)
			return -EINVAL;
		break;
	default:
		return -EOPNOTSUPP;
	}
	if (start > dev_sectors || nr > dev_sectors - start)
		return -EINVAL;
	if ((op == UBLK_IO_OP_DISCARD || op == UBLK_IO_OP_WRITE_ZEROES) &&
	    (caps & ZUBLK_CAP_READ_ONLY))
		return -EROFS;
	io->len = nr << 9;
	return 0;
}

struct io_uring_sqe *zublk_queue_get_sqe(struct zublk_queue *q)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(q->ring);

	if (sqe)
		return sqe;
	/* The SQ ring is full: push what is there and try once more. */
	zublk_queue_count_enter(q, io_uring_submit(q->ring));
	return io_uring_get_sqe(q->ring);
}

void zublk_io_sqe_mark(struct zublk_queue *q, struct zublk_io *io,
		       struct io_uring_sqe *sqe, unsigned sub)
{
	io_uring_sqe_set_data64(sqe, zublk_queue_ud(q, io->tag, ZUBLK_UD_TGT, sub));
	io->nr_inflight++;
	q->nr_target_inflight++;
}

int zublk_io_prep_wait(struct zublk_queue *q, struct zublk_io *io,
		       struct __kernel_timespec *ts, long ns, unsigned sub)
{
	struct io_uring_sqe *sqe = zublk_queue_get_sqe(q);

	if (!sqe)
		return -EBUSY;
	ts->tv_sec = ns / 1000000000L;
	ts->tv_nsec = ns % 1000000000L;
	io_uring_prep_timeout(sqe, ts, 0, 0);
	zublk_io_sqe_mark(q, io, sqe, sub);
	return 0;
}

void zublk_queue_sqe_mark(struct zublk_queue *q, struct io_uring_sqe *sqe, unsigned sub)
{
	io_uring_sqe_set_data64(sqe, zublk_queue_ud(q, 0, ZUBLK_UD_QUEUE, sub));
	q->nr_target_inflight++;
}

/* A uring_cmd on /dev/ublkcN (fixed file 0) for (q, tag). */
static struct io_uring_sqe *prep_io_cmd(struct zublk_queue *q, unsigned tag, unsigned op,
					unsigned kind)
{
	struct io_uring_sqe *sqe = zublk_queue_get_sqe(q);
	struct ublksrv_io_cmd *cmd;

	if (!sqe)
		return NULL;
	io_uring_prep_uring_cmd(sqe, op, 0);
	sqe->flags |= IOSQE_FIXED_FILE;
	cmd = (struct ublksrv_io_cmd *)sqe->cmd;
	memset(cmd, 0, sizeof(*cmd));
	cmd->q_id = (__u16)q->q_id;
	cmd->tag = (__u16)tag;
	io_uring_sqe_set_data64(sqe, zublk_queue_ud(q, tag, kind, 0));
	return sqe;
}

static struct io_uring_sqe *prep_buf_reg(struct zublk_queue *q, struct zublk_io *io, bool reg)
{
	struct io_uring_sqe *sqe =
		prep_io_cmd(q, io->tag, reg ? UBLK_U_IO_REGISTER_IO_BUF : UBLK_U_IO_UNREGISTER_IO_BUF,
			    reg ? ZUBLK_UD_REG : ZUBLK_UD_UNREG);
	struct ublksrv_io_cmd *cmd;

	if (!sqe)
		return NULL;
	cmd = (struct ublksrv_io_cmd *)sqe->cmd;
	cmd->addr = zublk_io_buf_index(q, io); /* our slot in the sparse buffer table */
	/*
	 * Registration completes inline when the SQE is issued, and SQEs are
	 * issued in ring order, so the ops queued after it see the buffer.
	 * Only a failure posts a CQE.
	 */
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	return sqe;
}

int zublk_queue_fetch(struct zublk_queue *q, struct zublk_io *io, bool commit)
{
	struct zublk_dev *dev = q->dev;
	struct io_uring_sqe *sqe;
	struct ublksrv_io_cmd *cmd;

	sqe = prep_io_cmd(q, io->tag, commit ? UBLK_U_IO_COMMIT_AND_FETCH_REQ : UBLK_U_IO_FETCH_REQ,
			  ZUBLK_UD_CMD);
	if (!sqe)
		return -EBUSY;
	cmd = (struct ublksrv_io_cmd *)sqe->cmd;
	cmd->result = commit ? io->result : 0;
	/* Where a zone append's data went (zoned needs user or zero copy: addr is free). */
	if (commit && io->op == UBLK_IO_OP_ZONE_APPEND)
		cmd->zone_append_lba = io->append_sector;
	if (dev->mode == ZUBLK_MODE_COPY)
		cmd->addr = (uintptr_t)zublk_tag_buf(q, io->tag);
	if (dev->mode == ZUBLK_MODE_AUTO_ZERO_COPY) {
		struct ublk_auto_buf_reg reg = {
			.index = zublk_io_buf_index(q, io),
			.flags = UBLK_AUTO_BUF_REG_FALLBACK,
		};

		sqe->addr = ublk_auto_buf_reg_to_sqe_addr(&reg);
	}
	io->state = IO_IDLE;
	return 0;
}

/* Zero-copy mode: the request's pages registered ahead of the ops that use them. */
int zublk_io_buf_prepare(struct zublk_queue *q, struct zublk_io *io)
{
	if (!zublk_mode_is_zc(q->dev->mode) || !io->need_reg || io->buf_registered)
		return 0;
	if (!prep_buf_reg(q, io, true))
		return -EBUSY;
	io->buf_registered = 1;
	return 0;
}

/* The read or write SQE of zublk_io_prep_rw(), not yet marked. */
static struct io_uring_sqe *prep_rw_sqe(struct zublk_queue *q, struct zublk_io *io, bool write,
					int file_idx, uint64_t file_off, uint32_t io_off,
					uint32_t len)
{
	struct io_uring_sqe *sqe;
	bool zc = zublk_mode_is_zc(q->dev->mode);
	int op;

	if (zublk_io_buf_prepare(q, io))
		return NULL;
	sqe = zublk_queue_get_sqe(q);
	if (!sqe)
		return NULL;
	if (io->flags & UBLK_IO_F_SHMEM_ZC) {
		/* Shared memory: the data is at @buf, in no fixed buffer. */
		op = write ? IORING_OP_WRITE : IORING_OP_READ;
		io_uring_prep_rw(op, sqe, file_idx, (char *)io->buf + io_off, len, file_off);
	} else if (zc) {
		/* A registered request buffer starts at address 0. */
		op = write ? IORING_OP_WRITE_FIXED : IORING_OP_READ_FIXED;
		io_uring_prep_rw(op, sqe, file_idx, (void *)(uintptr_t)io_off, len, file_off);
		sqe->buf_index = zublk_io_buf_index(q, io);
	} else if (q->fixed_bufs) {
		op = write ? IORING_OP_WRITE_FIXED : IORING_OP_READ_FIXED;
		io_uring_prep_rw(op, sqe, file_idx, (char *)io->buf + io_off, len, file_off);
		sqe->buf_index = zublk_io_buf_index(q, io);
	} else {
		op = write ? IORING_OP_WRITE : IORING_OP_READ;
		io_uring_prep_rw(op, sqe, file_idx, (char *)io->buf + io_off, len, file_off);
	}
	sqe->flags |= IOSQE_FIXED_FILE;
	/* FUA for every target that writes through here. */
	if (write && (io->op == UBLK_IO_OP_WRITE || io->op == UBLK_IO_OP_ZONE_APPEND) &&
	    (io->flags & UBLK_IO_F_FUA))
		sqe->rw_flags = RWF_DSYNC;
	return sqe;
}

int zublk_io_prep_rw_flags(struct zublk_queue *q, struct zublk_io *io, bool write,
			   int file_idx, uint64_t file_off, uint32_t io_off, uint32_t len,
			   unsigned sub, unsigned sqe_flags)
{
	struct io_uring_sqe *sqe;

	if ((uint64_t)io_off + len > io->len || file_idx < 0)
		return -EINVAL;
	sqe = prep_rw_sqe(q, io, write, file_idx, file_off, io_off, len);
	if (!sqe)
		return -EBUSY;
	sqe->flags |= (uint8_t)sqe_flags;
	zublk_io_sqe_mark(q, io, sqe, sub);
	return 0;
}

int zublk_io_prep_rw(struct zublk_queue *q, struct zublk_io *io, bool write,
		     int file_idx, uint64_t file_off, uint32_t io_off, uint32_t len,
		     unsigned sub)
{
	return zublk_io_prep_rw_flags(q, io, write, file_idx, file_off, io_off, len, sub, 0);
}

unsigned zublk_queue_sq_reserve(struct zublk_queue *q, unsigned nr)
{
	if (io_uring_sq_space_left(q->ring) < nr)
		zublk_queue_count_enter(q, io_uring_submit(q->ring));
	return io_uring_sq_space_left(q->ring);
}

int zublk_queue_set_file(struct zublk_queue *q, int idx, int fd)
{
	int ret;

	if (idx < 1 || (unsigned)idx >= q->dev->nr_files || fd < 0)
		return -EINVAL;
	ret = io_uring_register_files_update(q->ring, (unsigned)idx, &fd, 1);
	return ret < 0 ? ret : 0;
}

static int prep_rw_commit(struct zublk_queue *q, struct zublk_io *io, bool write, int file_idx,
			  uint64_t file_off, uint32_t io_off, uint32_t len, unsigned sub,
			  bool note, unsigned note_val)
{
	struct zublk_dev *dev = q->dev;
	struct io_uring_sqe *sqe;

	if ((uint64_t)io_off + len != io->len || file_idx < 0 || len == 0 ||
	    (io->op != UBLK_IO_OP_READ && io->op != UBLK_IO_OP_WRITE &&
	     io->op != UBLK_IO_OP_ZONE_APPEND) || io->len > INT32_MAX)
		return -EINVAL;
	/*
	 * Nor while the driver cancels (a quiesce): a linked commit that
	 * succeeds posts nothing, and the thread, unable to tell it from a
	 * transfer still running, could leave before it, which cancels it.
	 */
	if (dev->batch || dev->mode == ZUBLK_MODE_USER_COPY || io->nr_inflight ||
	    io->state != IO_ACTIVE ||
	    atomic_load_explicit(&dev->cancelling, memory_order_relaxed))
		return zublk_io_prep_rw(q, io, write, file_idx, file_off, io_off, len, sub);
	/* A link cut in two by a submission would commit before the data moved. */
	if (io_uring_sq_space_left(q->ring) < ZUBLK_IO_CHAIN_SQES)
		zublk_queue_count_enter(q, io_uring_submit(q->ring));
	if (io_uring_sq_space_left(q->ring) < ZUBLK_IO_CHAIN_SQES)
		return zublk_io_prep_rw(q, io, write, file_idx, file_off, io_off, len, sub);

	sqe = prep_rw_sqe(q, io, write, file_idx, file_off, io_off, len);
	if (!sqe)
		return -EBUSY;
	/*
	 * A short or failed transfer fails the link: its CQE comes (to
	 * zublk_io_cqe(), as IO_LINKED) and the unregistration and commit
	 * after it are cancelled without CQEs of their own.
	 */
	sqe->flags |= IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;
	io_uring_sqe_set_data64(sqe, zublk_queue_ud(q, io->tag, ZUBLK_UD_TGT, sub));
	if (note) {
		/* Its CQE is posted before the link goes on to the commit. */
		struct io_uring_sqe *nop = io_uring_get_sqe(q->ring);

		if (nop) {	/* there is room: checked above */
			io_uring_prep_nop(nop);
			nop->flags |= IOSQE_IO_LINK;
			io_uring_sqe_set_data64(nop, zublk_queue_ud(q, io->tag, ZUBLK_UD_NOTE,
								    note_val));
		}
	}
	if (io->buf_registered && io->need_reg) {
		struct io_uring_sqe *unreg = prep_buf_reg(q, io, false);

		if (unreg)	/* there is room: checked above */
			unreg->flags |= IOSQE_IO_LINK;
	}
	io->result = (int)io->len;
	zublk_queue_fetch(q, io, true);
	/* Counted now: success brings no CQE; a failed link takes it back. */
	atomic_fetch_add_explicit(&q->stats->ios, 1, memory_order_relaxed);
	io->state = IO_LINKED;
	return 0;
}

int zublk_io_prep_rw_commit(struct zublk_queue *q, struct zublk_io *io, bool write,
			    int file_idx, uint64_t file_off, uint32_t io_off, uint32_t len,
			    unsigned sub)
{
	return prep_rw_commit(q, io, write, file_idx, file_off, io_off, len, sub, false, 0);
}

int zublk_io_prep_rw_commit_note(struct zublk_queue *q, struct zublk_io *io, bool write,
				 int file_idx, uint64_t file_off, uint32_t io_off, uint32_t len,
				 unsigned sub, unsigned note)
{
	return prep_rw_commit(q, io, write, file_idx, file_off, io_off, len, sub, true,
			      note & ZUBLK_UD_SUB_MAX);
}

/*
 * A done request's SQEs: its pages' unregistration, then COMMIT_AND_FETCH
 * (--batch: its place in the turn's COMMIT_IO_CMDS).
 */
static int send_commit(struct zublk_queue *q, struct zublk_io *io)
{
	if (io->buf_registered && io->need_reg && !prep_buf_reg(q, io, false))
		return -EBUSY;
	io->buf_registered = 0;
	if (q->dev->batch) {
		zublk_batch_commit(q, io);
		return 0;
	}
	return zublk_queue_fetch(q, io, true);
}

static void commit(struct zublk_queue *q, struct zublk_io *io)
{
	struct zublk_dev *dev = q->dev;
	int res = io->result;

	/* More than was asked (a target's bug): the request's length, copied and said. */
	if (res > 0 && io->op == UBLK_IO_OP_READ && (uint64_t)res > io->len)
		res = (int)io->len;
	if (res > 0 && dev->mode == ZUBLK_MODE_USER_COPY && !(io->flags & UBLK_IO_F_SHMEM_ZC) &&
	    (io->op == UBLK_IO_OP_READ || io->op == UBLK_IO_OP_REPORT_ZONES)) {
		ssize_t n = pwrite(dev->cdev_fd, io->buf, (size_t)res,
				   (off_t)zublk_user_copy_pos(q->q_id, io->tag));
		if (n != res) {
			zublk_err("queue %u tag %u: user copy to the request failed: %s",
				  q->q_id, io->tag, n < 0 ? strerror(errno) : "short copy");
			res = -EIO;
		}
	}
	if (res >= 0 && io->op == UBLK_IO_OP_REPORT_ZONES) {
		/*
		 * The driver's report buffer can be longer than the zones it
		 * asked for; older drivers end only as many bytes as we say
		 * (and reissue the rest), the 7.2 one the whole request.  Say
		 * more than any: the driver cuts it to the request.
		 */
		res = INT32_MAX;
	} else if (res == 0 && io->op == UBLK_IO_OP_WRITE && io->len) {
		/* The driver requeues a write that wrote nothing: for ever. */
		res = -EIO;
	} else if (res > 0 && io->op != UBLK_IO_OP_READ && io->op != UBLK_IO_OP_WRITE) {
		res = 0; /* a byte count of a big discard would read as an error */
	} else if (res > 0 && (uint64_t)res > io->len) {
		res = (int)io->len; /* a WRITE's */
	}
	io->result = res;
	atomic_fetch_add_explicit(&q->stats->ios, 1, memory_order_relaxed);
	if (res < 0)
		atomic_fetch_add_explicit(&q->stats->errors, 1, memory_order_relaxed);
	if (send_commit(q, io)) {
		/* The SQ is full and submitting failed: the loop's next turn sends it. */
		zublk_warn("queue %u tag %u: no SQE for the commit; sending it next turn",
			   q->q_id, io->tag);
		io->state = IO_UNSENT;
		q->nr_unsent++;
	}
}

/* Commits that found no SQE, sent again; returns how many still wait. */
unsigned zublk_queue_resend(struct zublk_queue *q)
{
	for (unsigned t = 0; q->nr_unsent && t < q->depth; t++) {
		struct zublk_io *io = &q->ios[t];

		if (io->state != IO_UNSENT || send_commit(q, io))
			continue;
		q->nr_unsent--;
	}
	return q->nr_unsent;
}

/*
 * Copy and user-copy modes: the request's data is the daemon's buffer
 * @io->buf.  The kernel copies (process_vm_readv/writev on ourselves), so
 * that @mem going away under us (a file in memory truncated, or full on a
 * write) fails the copy with EFAULT where memcpy() would take a SIGBUS.
 */
static int buf_copy(struct zublk_io *io, uint32_t io_off, void *mem, uint32_t len)
{
	struct iovec buf = { (char *)io->buf + io_off, len }, other = { mem, len };
	ssize_t n;

	if (io->op == UBLK_IO_OP_READ || io->op == UBLK_IO_OP_REPORT_ZONES)
		n = process_vm_readv(getpid(), &buf, 1, &other, 1, 0);
	else if (io->op == UBLK_IO_OP_WRITE || io->op == UBLK_IO_OP_ZONE_APPEND)
		n = process_vm_writev(getpid(), &buf, 1, &other, 1, 0);
	else
		return -EOPNOTSUPP;
	if (n != (ssize_t)len)
		return n < 0 ? -errno : -EFAULT;
	return 0;
}

bool zublk_io_can_copy(const struct zublk_queue *q, const struct zublk_io *io)
{
	return io->buf || q->dev->can_copy;
}

int zublk_io_copy(struct zublk_queue *q, struct zublk_io *io, uint32_t io_off, void *mem,
		  uint32_t len)
{
	struct zublk_dev *dev = q->dev;
	off_t pos = (off_t)(zublk_user_copy_pos(q->q_id, io->tag) + io_off);
	ssize_t n;

	if (!zublk_io_can_copy(q, io) || len == 0 || (uint64_t)io_off + len > io->len)
		return -EOPNOTSUPP;
	if (io->buf)
		return buf_copy(io, io_off, mem, len);
	/* A WRITE's data comes from the request: read it from /dev/ublkcN. */
	if (io->op == UBLK_IO_OP_WRITE || io->op == UBLK_IO_OP_ZONE_APPEND)
		n = pread(dev->cdev_fd, mem, len, pos);
	else if (io->op == UBLK_IO_OP_READ || io->op == UBLK_IO_OP_REPORT_ZONES)
		n = pwrite(dev->cdev_fd, mem, len, pos);
	else
		return -EOPNOTSUPP;
	if (n != (ssize_t)len)
		return n < 0 ? -errno : -EFAULT;
	return 0;
}

uint32_t zublk_io_meta_len(const struct zublk_queue *q, const struct zublk_io *io)
{
	const struct zublk_integrity *in = &q->dev->geom.integrity;

	if (!(io->flags & UBLK_IO_F_INTEGRITY) || !in->meta_size)
		return 0;
	return (uint32_t)(io->len >> in->interval_shift) * in->meta_size;
}

int zublk_io_meta_copy(struct zublk_queue *q, struct zublk_io *io, uint32_t off, void *mem,
		       uint32_t len)
{
	off_t pos = (off_t)((zublk_user_copy_pos(q->q_id, io->tag) + off) |
			    UBLKSRV_IO_INTEGRITY_FLAG);
	ssize_t n;

	if (len == 0 || (uint64_t)off + len > zublk_io_meta_len(q, io))
		return -EINVAL;
	/* A WRITE's metadata comes from the request; a READ's goes to it. */
	if (io->op == UBLK_IO_OP_WRITE)
		n = pread(q->dev->cdev_fd, mem, len, pos);
	else if (io->op == UBLK_IO_OP_READ)
		n = pwrite(q->dev->cdev_fd, mem, len, pos);
	else
		return -EINVAL;
	if (n != (ssize_t)len)
		return n < 0 ? -errno : -EFAULT;
	return 0;
}

void zublk_io_complete(struct zublk_queue *q, struct zublk_io *io, int res)
{
	if (io->state != IO_ACTIVE) {
		zublk_err("queue %u tag %u: completed twice (bug in target %s)", q->q_id,
			  io->tag, q->dev->ops->name);
		return;
	}
	io->state = IO_DONE;
	io->result = res;
	/* The buffer stays in use until the target's last SQE has completed. */
	if (io->nr_inflight == 0)
		commit(q, io);
}

void zublk_io_start(struct zublk_queue *q, struct zublk_io *io)
{
	struct zublk_dev *dev = q->dev;
	const struct ublksrv_io_desc *iod = &q->iods[io->tag];
	int ret;

	io->state = IO_ACTIVE;
	io->result = 0;
	io->append_sector = 0;
	io->nr_inflight = 0;
	io->buf_registered = 0;
	io->need_reg = dev->mode == ZUBLK_MODE_ZERO_COPY;
	io->buf = zublk_tag_buf(q, io->tag);
	if (dev->mode == ZUBLK_MODE_AUTO_ZERO_COPY) {
		/* The driver could not register it for us: do it by hand. */
		io->need_reg = !!(iod->op_flags & UBLK_IO_F_NEED_REG_BUF);
		io->buf_registered = !io->need_reg;
	}

	ret = zublk_io_validate(iod,
				atomic_load_explicit(&dev->dev_sectors, memory_order_relaxed),
				dev->info.max_io_buf_bytes,
				dev->geom.caps, io);
	if (!ret && (io->flags & UBLK_IO_F_SHMEM_ZC)) {
		/*
		 * The data is in shared memory: nothing to copy or register
		 * (an automatic registration goes with the commit).
		 */
		io->buf = zublk_shmem_resolve(dev, iod->addr, io->len,
					      io->op == UBLK_IO_OP_READ);
		io->need_reg = 0;
		if (!io->buf) {
			zublk_warn("queue %u tag %u: op %u of %llu bytes at %u in shared memory %u: "
				   "not in memory we registered, or into memory mapped read-only",
				   q->q_id, io->tag, iod->op_flags & 0xff, (unsigned long long)io->len,
				   ublk_shmem_zc_offset(iod->addr), ublk_shmem_zc_index(iod->addr));
			zublk_io_complete(q, io, -EIO);
			return;
		}
		atomic_fetch_add_explicit(&q->stats->shmem_ios, 1, memory_order_relaxed);
	}
	if (!ret && dev->mode == ZUBLK_MODE_AUTO_ZERO_COPY && io->need_reg)
		atomic_fetch_add_explicit(&q->stats->hand_regs, 1, memory_order_relaxed);
	if (ret) {
		zublk_warn("queue %u tag %u: bad request op %u sector %llu count %u: %s",
			   q->q_id, io->tag, iod->op_flags & 0xff,
			   (unsigned long long)iod->start_sector, iod->nr_sectors, strerror(-ret));
		zublk_io_complete(q, io, ret);
		return;
	}
	if ((io->op == UBLK_IO_OP_WRITE || io->op == UBLK_IO_OP_ZONE_APPEND) &&
	    dev->mode == ZUBLK_MODE_USER_COPY && !(io->flags & UBLK_IO_F_SHMEM_ZC)) {
		ssize_t n = pread(dev->cdev_fd, io->buf, io->len,
				  (off_t)zublk_user_copy_pos(q->q_id, io->tag));
		if (n != (ssize_t)io->len) {
			zublk_err("queue %u tag %u: user copy from the request failed: %s",
				  q->q_id, io->tag, n < 0 ? strerror(errno) : "short copy");
			zublk_io_complete(q, io, -EIO);
			return;
		}
	}
	ret = dev->ops->queue_io(q, io);
	if (ret < 0 && io->state == IO_ACTIVE)
		zublk_io_complete(q, io, ret);
}

/* A CQE of a target SQE, a failed buffer (un)registration or a command. */
void zublk_io_cqe(struct zublk_queue *q, struct zublk_io *io, unsigned kind, unsigned sub,
		  int res)
{
	switch (kind) {
	case ZUBLK_UD_TGT:
		if (io->state == IO_LINKED) {
			/*
			 * The linked transfer fell short or failed: nothing after
			 * it ran (the buffer is still registered), the request is
			 * the target's again.
			 */
			atomic_fetch_sub_explicit(&q->stats->ios, 1, memory_order_relaxed);
			io->state = IO_ACTIVE;
			io->result = 0;
		} else {
			io->nr_inflight--;
			q->nr_target_inflight--;
		}
		if (io->state == IO_ACTIVE)
			q->dev->ops->io_done(q, io, sub, res);
		if (io->state == IO_DONE && io->nr_inflight == 0)
			commit(q, io);
		break;
	case ZUBLK_UD_REG:
		/* Only failures post a CQE; the ops that used it fail too. */
		zublk_err("queue %u tag %u: registering the request buffer failed: %s",
			  q->q_id, io->tag, strerror(-res));
		io->buf_registered = 0;
		break;
	case ZUBLK_UD_NOTE:
		/* Cancelled behind a transfer that failed: io_done has that. */
		if (res >= 0 && q->dev->ops->io_note)
			q->dev->ops->io_note(q, io->tag, sub);
		break;
	case ZUBLK_UD_UNREG:
		if (res == -ECANCELED)
			break; /* behind a linked transfer that failed */
		zublk_err("queue %u tag %u: unregistering the request buffer failed: %s",
			  q->q_id, io->tag, strerror(-res));
		if (io->state == IO_LINKED) {
			/*
			 * Its transfer was whole, and the commit linked after it
			 * was cancelled without a CQE (it failed with
			 * CQE_SKIP_SUCCESS): commit now, once.
			 */
			io->buf_registered = 0;
			atomic_fetch_sub_explicit(&q->stats->ios, 1, memory_order_relaxed);
			io->state = IO_DONE;
			commit(q, io);
		}
		break;
	}
}
