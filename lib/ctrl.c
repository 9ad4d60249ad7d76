// SPDX-License-Identifier: MIT
/*
 * The control device: every command is an io_uring URING_CMD (SQE128) on
 * /dev/ublk-control with an ioctl-encoded opcode.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define CTRL_DEV "/dev/ublk-control"
#define CTRL_DEF_TIMEOUT_MS 30000

struct zublk_ctrl {
	int fd;
	struct io_uring ring;
	unsigned timeout_ms;
	uint64_t seq;		/* user_data of the last command sent */
	/* Payloads of commands that timed out, freed when their CQE comes. */
	struct {
		uint64_t seq;
		void *buf;
	} late[8];
	unsigned nr_late;
	/*
	 * A device a user added (UBLK_F_UNPRIVILEGED_DEV) takes its char
	 * device's path in front of every command's payload, from anyone; a
	 * root's device takes none.  What GET_DEV_INFO2 or ADD_DEV last said
	 * of device @known_id; for another, only a user's devices are within
	 * reach of a user.
	 */
	int known_id;		/* -1: none */
	bool known_unpriv;
};

/* The path slot in front of a payload: 8-byte aligned for what follows. */
#define CTRL_PATH_SLOT 32

int zublk_ctrl_open(struct zublk_ctrl **out)
{
	struct zublk_ctrl *c = calloc(1, sizeof(*c));
	int ret;

	if (!c)
		return -ENOMEM;
	c->timeout_ms = CTRL_DEF_TIMEOUT_MS;
	c->known_id = -1;
	c->fd = open(CTRL_DEV, O_RDWR | O_CLOEXEC);
	if (c->fd < 0) {
		ret = -errno;
		goto err_free;
	}
	ret = io_uring_queue_init(4, &c->ring, IORING_SETUP_SQE128);
	if (ret < 0)
		goto err_close;
	*out = c;
	return 0;

err_close:
	close(c->fd);
err_free:
	free(c);
	return ret;
}

void zublk_ctrl_close(struct zublk_ctrl *c)
{
	if (!c)
		return;
	io_uring_queue_exit(&c->ring);
	close(c->fd);
	free(c);
}

void zublk_ctrl_set_timeout(struct zublk_ctrl *c, unsigned ms)
{
	c->timeout_ms = ms;
}

/* The CQE tagged @seq, skipping late answers to commands that timed out. */
static int ctrl_wait(struct zublk_ctrl *c, uint64_t seq, int *res)
{
	struct __kernel_timespec ts = {
		.tv_sec = c->timeout_ms / 1000,
		.tv_nsec = (long long)(c->timeout_ms % 1000) * 1000000LL,
	};
	struct io_uring_cqe *cqe;
	int ret;

	for (;;) {
		do {
			ret = c->timeout_ms ? io_uring_wait_cqe_timeout(&c->ring, &cqe, &ts)
					    : io_uring_wait_cqe(&c->ring, &cqe);
		} while (ret == -EINTR);
		if (ret == -ETIME)
			return -ETIMEDOUT;
		if (ret < 0)
			return ret;
		if (cqe->user_data == seq)
			break;
		/* The late answer to a command that timed out: its payload is free. */
		for (unsigned i = 0; i < c->nr_late; i++) {
			if (c->late[i].seq == cqe->user_data) {
				free(c->late[i].buf);
				c->late[i] = c->late[--c->nr_late];
				break;
			}
		}
		io_uring_cqe_seen(&c->ring, cqe);
	}
	*res = cqe->res;
	io_uring_cqe_seen(&c->ring, cqe);
	return 0;
}

/*
 * The driver runs control commands from io_uring's worker threads (it
 * refuses the non-blocking first try), so the submitter only waits for the
 * CQE, and that wait is bounded: START_DEV, DEL_DEV and QUIESCE can block
 * in the kernel for as long as a daemon misbehaves.  A command still there
 * at the timeout cannot be called back (it may wait on a lock no signal
 * ends) and reads or writes its payload whenever it runs: so the payload
 * goes through a buffer of the command's own, left to it on a timeout and
 * freed when its late CQE is seen (never, if the ring closes first: a few
 * bytes, rather than a write into a caller's stack long gone).
 * With @path (a user's device), that buffer starts with the char device's
 * path, as the driver asks there.
 */
static int ctrl_cmd_as(struct zublk_ctrl *c, unsigned op, struct ublksrv_ctrl_cmd *cmd,
		       bool path)
{
	struct ublksrv_ctrl_cmd with = *cmd;
	unsigned pre = path ? CTRL_PATH_SLOT : 0;
	struct io_uring_sqe *sqe;
	char *buf = NULL;
	int ret, res;

	if (cmd->len > UINT16_MAX - pre)
		return -E2BIG;
	if (pre + cmd->len) {
		buf = calloc(1, pre + cmd->len);
		if (!buf)
			return -ENOMEM;
		if (pre)
			snprintf(buf, pre, "/dev/ublkc%u", cmd->dev_id);
		if (cmd->len)
			memcpy(buf + pre, (void *)(uintptr_t)cmd->addr, cmd->len);
		with.addr = (uintptr_t)buf;
		with.len = (__u16)(pre + cmd->len);
		with.dev_path_len = (__u16)pre;
	}
	sqe = io_uring_get_sqe(&c->ring);
	if (!sqe) {
		free(buf);
		return -EBUSY;
	}
	io_uring_prep_uring_cmd(sqe, op, c->fd);
	memcpy(sqe->cmd, &with, sizeof(with));
	io_uring_sqe_set_data64(sqe, ++c->seq);
	ret = io_uring_submit(&c->ring);
	if (ret < 0) {
		free(buf);
		return ret;
	}
	ret = ctrl_wait(c, c->seq, &res);
	if (ret) {
		/* @buf is the command's still: freed if its CQE comes, else left. */
		if (buf && c->nr_late < sizeof(c->late) / sizeof(c->late[0]))
			c->late[c->nr_late++] = (typeof(c->late[0])){ c->seq, buf };
		return ret;
	}
	if (cmd->len)
		memcpy((void *)(uintptr_t)cmd->addr, buf + pre, cmd->len);
	free(buf);
	return res;
}

static int ctrl_cmd(struct zublk_ctrl *c, unsigned op, struct ublksrv_ctrl_cmd *cmd)
{
	return ctrl_cmd_as(c, op, cmd, false);
}

static struct ublksrv_ctrl_cmd cmd_for(unsigned dev_id)
{
	return (struct ublksrv_ctrl_cmd){ .dev_id = dev_id, .queue_id = (__u16)-1 };
}

static void note_flags(struct zublk_ctrl *c, unsigned dev_id, uint64_t flags)
{
	c->known_id = (int)dev_id;
	c->known_unpriv = flags & UBLK_F_UNPRIVILEGED_DEV;
}

bool zublk_ctrl_unprivileged(const struct zublk_ctrl *c, unsigned dev_id)
{
	return c->known_id == (int)dev_id ? c->known_unpriv : geteuid() != 0;
}

/* A command on an existing device: with the path when the device is a user's. */
static int ctrl_dev_cmd(struct zublk_ctrl *c, unsigned op, struct ublksrv_ctrl_cmd *cmd)
{
	return ctrl_cmd_as(c, op, cmd, zublk_ctrl_unprivileged(c, cmd->dev_id));
}

int zublk_ctrl_get_features(struct zublk_ctrl *c, uint64_t *features)
{
	struct ublksrv_ctrl_cmd cmd = cmd_for(0);
	const char *mask = getenv("ZUBLK_FEATURE_MASK");
	int ret;

	cmd.addr = (uintptr_t)features;
	cmd.len = sizeof(*features);
	ret = ctrl_cmd(c, UBLK_U_CMD_GET_FEATURES, &cmd);
	/* For tests: pretend the kernel lacks the bits cleared in the mask. */
	if (ret == 0 && mask && *mask)
		*features &= strtoull(mask, NULL, 0);
	return ret;
}

int zublk_ctrl_add_dev(struct zublk_ctrl *c, struct ublksrv_ctrl_dev_info *info)
{
	struct ublksrv_ctrl_cmd cmd = cmd_for(info->dev_id);

	int ret;

	cmd.addr = (uintptr_t)info;
	cmd.len = sizeof(*info);
	ret = ctrl_cmd(c, UBLK_U_CMD_ADD_DEV, &cmd);
	if (!ret)
		note_flags(c, info->dev_id, info->flags);
	return ret;
}

int zublk_ctrl_del_dev(struct zublk_ctrl *c, unsigned dev_id, bool wait)
{
	struct ublksrv_ctrl_cmd cmd = cmd_for(dev_id);

	/* The driver takes no DEL_DEV_ASYNC for a user's device. */
	if (zublk_ctrl_unprivileged(c, dev_id))
		wait = true;
	return ctrl_dev_cmd(c, wait ? UBLK_U_CMD_DEL_DEV : UBLK_U_CMD_DEL_DEV_ASYNC, &cmd);
}

int zublk_ctrl_start_dev(struct zublk_ctrl *c, unsigned dev_id, int daemon_pid)
{
	struct ublksrv_ctrl_cmd cmd = cmd_for(dev_id);

	cmd.data[0] = (uint64_t)daemon_pid;
	return ctrl_dev_cmd(c, UBLK_U_CMD_START_DEV, &cmd);
}

int zublk_ctrl_stop_dev(struct zublk_ctrl *c, unsigned dev_id)
{
	struct ublksrv_ctrl_cmd cmd = cmd_for(dev_id);

	return ctrl_dev_cmd(c, UBLK_U_CMD_STOP_DEV, &cmd);
}

int zublk_ctrl_try_stop_dev(struct zublk_ctrl *c, unsigned dev_id)
{
	struct ublksrv_ctrl_cmd cmd = cmd_for(dev_id);

	return ctrl_dev_cmd(c, UBLK_U_CMD_TRY_STOP_DEV, &cmd);
}

int zublk_ctrl_get_info(struct zublk_ctrl *c, unsigned dev_id,
			struct ublksrv_ctrl_dev_info *info)
{
	struct ublksrv_ctrl_cmd cmd = cmd_for(dev_id);
	int ret;

	/* GET_DEV_INFO2 always takes the char device path, whoever's the device is. */
	cmd.addr = (uintptr_t)info;
	cmd.len = sizeof(*info);
	ret = ctrl_cmd_as(c, UBLK_U_CMD_GET_DEV_INFO2, &cmd, true);
	if (ret == 0)
		note_flags(c, dev_id, info->flags);
	return ret;
}

int zublk_ctrl_set_params(struct zublk_ctrl *c, unsigned dev_id,
			  const struct ublk_params *p)
{
	struct ublksrv_ctrl_cmd cmd = cmd_for(dev_id);
	struct ublk_params copy = *p;

	copy.len = sizeof(copy);
	cmd.addr = (uintptr_t)&copy;
	cmd.len = sizeof(copy);
	return ctrl_dev_cmd(c, UBLK_U_CMD_SET_PARAMS, &cmd);
}

int zublk_ctrl_get_params(struct zublk_ctrl *c, unsigned dev_id, struct ublk_params *p)
{
	struct ublksrv_ctrl_cmd cmd = cmd_for(dev_id);

	memset(p, 0, sizeof(*p));
	p->len = sizeof(*p);
	p->types = UBLK_PARAM_TYPE_BASIC | UBLK_PARAM_TYPE_DISCARD | UBLK_PARAM_TYPE_DEVT |
		   UBLK_PARAM_TYPE_DMA_ALIGN | UBLK_PARAM_TYPE_SEGMENT;
	cmd.addr = (uintptr_t)p;
	cmd.len = sizeof(*p);
	return ctrl_dev_cmd(c, UBLK_U_CMD_GET_PARAMS, &cmd);
}

int zublk_ctrl_get_queue_affinity(struct zublk_ctrl *c, unsigned dev_id, unsigned q_id,
				  void *cpuset, size_t size)
{
	struct ublksrv_ctrl_cmd cmd = cmd_for(dev_id);

	cmd.queue_id = (__u16)q_id;
	cmd.addr = (uintptr_t)cpuset;
	cmd.len = (__u16)size;
	cmd.data[0] = q_id;
	return ctrl_dev_cmd(c, UBLK_U_CMD_GET_QUEUE_AFFINITY, &cmd);
}

int zublk_ctrl_start_recovery(struct zublk_ctrl *c, unsigned dev_id)
{
	struct ublksrv_ctrl_cmd cmd = cmd_for(dev_id);

	return ctrl_dev_cmd(c, UBLK_U_CMD_START_USER_RECOVERY, &cmd);
}

int zublk_ctrl_end_recovery(struct zublk_ctrl *c, unsigned dev_id, int daemon_pid)
{
	struct ublksrv_ctrl_cmd cmd = cmd_for(dev_id);

	cmd.data[0] = (uint64_t)daemon_pid;
	return ctrl_dev_cmd(c, UBLK_U_CMD_END_USER_RECOVERY, &cmd);
}

int zublk_ctrl_update_size(struct zublk_ctrl *c, unsigned dev_id, uint64_t sectors)
{
	struct ublksrv_ctrl_cmd cmd = cmd_for(dev_id);

	cmd.data[0] = sectors;
	return ctrl_dev_cmd(c, UBLK_U_CMD_UPDATE_SIZE, &cmd);
}

int zublk_ctrl_reg_buf(struct zublk_ctrl *c, unsigned dev_id, void *addr, uint64_t len,
		       uint32_t flags)
{
	struct ublksrv_ctrl_cmd cmd = cmd_for(dev_id);
	struct ublk_shmem_buf_reg reg = { .addr = (uintptr_t)addr, .len = len, .flags = flags };

	cmd.addr = (uintptr_t)&reg;
	cmd.len = sizeof(reg);
	return ctrl_dev_cmd(c, UBLK_U_CMD_REG_BUF, &cmd);
}

int zublk_ctrl_quiesce_dev(struct zublk_ctrl *c, unsigned dev_id, unsigned timeout_ms)
{
	struct ublksrv_ctrl_cmd cmd = cmd_for(dev_id);

	cmd.data[0] = timeout_ms;
	return ctrl_dev_cmd(c, UBLK_U_CMD_QUIESCE_DEV, &cmd);
}

int zublk_ctrl_msg_ring(struct zublk_ctrl *c, int ring_fd, uint64_t user_data)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&c->ring);
	int ret, res;

	if (!sqe)
		return -EBUSY;
	io_uring_prep_msg_ring(sqe, ring_fd, 0, user_data, 0);
	io_uring_sqe_set_data64(sqe, ++c->seq);
	ret = io_uring_submit(&c->ring);
	if (ret < 0)
		return ret;
	ret = ctrl_wait(c, c->seq, &res);
	return ret ? ret : res;
}
