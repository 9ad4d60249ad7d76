// SPDX-License-Identifier: MIT
/* Device lifecycle: create (target init, ADD_DEV, SET_PARAMS), start, stop. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define DEF_MAX_DISCARD_SECTORS (16U << 20) /* 8 GiB: lets a discard exceed 2 GiB */

int zublk_dev_config_check(const struct zublk_dev_config *cfg, unsigned nr_cpus)
{
	unsigned max_q = nr_cpus < UBLK_MAX_NR_QUEUES ? nr_cpus : UBLK_MAX_NR_QUEUES;
	unsigned nr_q = cfg->nr_queues ? cfg->nr_queues : 1;

	if (cfg->nr_queues > max_q) {
		zublk_err("queues %u: out of range 1..%u (one per CPU at most)", cfg->nr_queues,
			  max_q);
		return -EINVAL;
	}
	if (cfg->queue_depth > ZUBLK_MAX_QUEUE_DEPTH) {
		zublk_err("depth %u: out of range 1..%u", cfg->queue_depth,
			  ZUBLK_MAX_QUEUE_DEPTH);
		return -EINVAL;
	}
	if (cfg->max_io_bytes &&
	    (cfg->max_io_bytes < 4096 || cfg->max_io_bytes > ZUBLK_MAX_MAX_IO_BYTES ||
	     cfg->max_io_bytes % 4096)) {
		zublk_err("max IO size %u: must be a multiple of 4096 from 4096 to %u",
			  cfg->max_io_bytes, ZUBLK_MAX_MAX_IO_BYTES);
		return -EINVAL;
	}
	if ((unsigned)cfg->mode >= ZUBLK_MODE_NR)
		return -EINVAL;
	if (cfg->poll_us > ZUBLK_POLL_MAX_US && cfg->poll_us != ZUBLK_POLL_OFF) {
		zublk_err("poll %u us: out of range 1..%u", cfg->poll_us, ZUBLK_POLL_MAX_US);
		return -EINVAL;
	}
	if (cfg->nr_threads > nr_q) {
		zublk_err("threads %u: out of range 1..%u (one per queue at most)",
			  cfg->nr_threads, nr_q);
		return -EINVAL;
	}
	if (cfg->nr_shmem > ZUBLK_MAX_SHMEM) {
		zublk_err("--shmem: %u files, at most %u", cfg->nr_shmem, ZUBLK_MAX_SHMEM);
		return -EINVAL;
	}
	if (cfg->batch && cfg->nr_threads && cfg->nr_threads != nr_q) {
		zublk_err("threads %u: batch IO takes a thread per queue", cfg->nr_threads);
		return -EINVAL;
	}
	return 0;
}

unsigned zublk_threads_for(unsigned nr_queues, unsigned depth, unsigned want, unsigned nr_cpus)
{
	unsigned per, cap;

	if (nr_queues <= 1)
		return 1;
	if (!want)
		want = nr_queues < nr_cpus ? nr_queues : (nr_queues + 1) / 2;
	if (want > nr_queues)
		want = nr_queues;
	per = (nr_queues + want - 1) / want;
	cap = depth ? ZUBLK_MAX_THREAD_TAGS / depth : per;
	if (per > cap)
		per = cap ? cap : 1;
	return (nr_queues + per - 1) / per;
}

/* Room for @nr more registered files. */
static int files_grow(struct zublk_dev *dev, unsigned nr)
{
	unsigned cap = dev->files_cap ? dev->files_cap : 8;
	uint8_t *kind;
	int *files;

	if (nr > ZUBLK_MAX_FILES - dev->nr_files)
		return -EMFILE;
	if (dev->nr_files + nr <= dev->files_cap)
		return 0;
	while (cap < dev->nr_files + nr)
		cap *= 2;
	files = realloc(dev->files, cap * sizeof(*files));
	if (!files)
		return -ENOMEM;
	dev->files = files;
	kind = realloc(dev->file_kind, cap * sizeof(*kind));
	if (!kind)
		return -ENOMEM;
	dev->file_kind = kind;
	dev->files_cap = cap;
	return 0;
}

static int add_file(struct zublk_dev *dev, int fd, enum file_kind kind)
{
	int ret = files_grow(dev, 1);

	if (ret)
		return ret;
	dev->files[dev->nr_files] = fd;
	dev->file_kind[dev->nr_files] = (uint8_t)kind;
	return (int)dev->nr_files++;
}

int zublk_dev_add_file(struct zublk_dev *dev, int fd)
{
	return add_file(dev, fd, FILE_WHOLE);
}

int zublk_dev_add_file_growing(struct zublk_dev *dev, int fd)
{
	return add_file(dev, fd, FILE_GROWS);
}

int zublk_dev_add_files(struct zublk_dev *dev, const int *fds, unsigned nr)
{
	unsigned first = dev->nr_files;
	int ret;

	if (nr == 0)
		return -EINVAL;
	ret = files_grow(dev, nr);
	if (ret)
		return ret;
	for (unsigned i = 0; i < nr; i++) {
		dev->files[first + i] = fds[i];
		dev->file_kind[first + i] = FILE_ANON;
	}
	dev->nr_files += nr;
	return (int)first;
}

static const char *missing_feature(uint64_t need, uint64_t have)
{
	for (unsigned bit = 0; bit < 64; bit++)
		if ((need & (1ULL << bit)) && !(have & (1ULL << bit)))
			return zublk_feature_name(bit);
	return "?";
}

/* 0 if the kernel offers every UBLK_F_* bit in @need; else one error naming @what and the bit. */
static int kernel_has(const struct zublk_dev *dev, uint64_t need, const char *what)
{
	if ((dev->features & need) == need)
		return 0;
	zublk_err("%s: the running kernel lacks UBLK_F_%s", what,
		  missing_feature(need, dev->features));
	return -EOPNOTSUPP;
}

/* Add the UBLK_F_* bits @need, which @what asks for, to @flags; fail if the kernel lacks one. */
static int want_flags(struct zublk_dev *dev, uint64_t *flags, uint64_t need, const char *what)
{
	int ret = kernel_has(dev, need, what);

	if (!ret)
		*flags |= need;
	return ret;
}

static int pick_mode(struct zublk_dev *dev)
{
	const struct zublk_target_ops *ops = dev->ops;
	enum zublk_mode m = dev->cfg.mode;

	if (m == ZUBLK_MODE_DEFAULT) {
		dev->mode = zublk_mode_best(dev->features, ops->modes & ops->prefer_modes);
		if (dev->mode == ZUBLK_MODE_DEFAULT)
			dev->mode = zublk_mode_best(dev->features, ops->modes);
		if (dev->mode == ZUBLK_MODE_DEFAULT && dev->unpriv) {
			zublk_err("target %s: cannot serve a device added by a user other than root "
				  "(it needs user copy or zero copy, which the driver keeps from users)",
				  ops->name);
			return -EPERM;
		}
		if (dev->mode == ZUBLK_MODE_DEFAULT) {
			zublk_err("target %s: no data mode it supports is offered by this kernel",
				  ops->name);
			return -EOPNOTSUPP;
		}
		return 0;
	}
	if (!(ops->modes & ZUBLK_MODE_BIT(m))) {
		zublk_err("mode %s: not supported by target %s", zublk_mode_name(m), ops->name);
		return -EOPNOTSUPP;
	}
	if (dev->unpriv && m != ZUBLK_MODE_COPY) {
		zublk_err("mode %s: a device added by a user other than root can only copy (the "
			  "driver keeps user copy and zero copy from it)", zublk_mode_name(m));
		return -EPERM;
	}
	char what[48];

	snprintf(what, sizeof(what), "mode %s", zublk_mode_name(m));
	if (kernel_has(dev, zublk_mode_flags(m), what))
		return -EOPNOTSUPP;
	dev->mode = m;
	return 0;
}

/* Bytes of PI a checksum type puts in each interval's metadata; -1: not a type. */
static int pi_tuple_size(unsigned csum)
{
	switch (csum) {
	case LBMD_PI_CSUM_NONE:
		return 0;
	case LBMD_PI_CSUM_IP:
	case LBMD_PI_CSUM_CRC16_T10DIF:
		return 8;
	case LBMD_PI_CSUM_CRC64_NVME:
		return 16;
	default:
		return -1;
	}
}

int zublk_integrity_check_mode(const struct zublk_dev *dev)
{
	/* The driver hands metadata over only by user copy. */
	if (dev->unpriv) {
		zublk_err("integrity metadata: not for a device added by a user other than root "
			  "(the driver hands it over only by user copy, which it keeps from users)");
		return -EPERM;
	}
	if (dev->mode != ZUBLK_MODE_COPY)
		return 0;
	zublk_err("mode copy: no integrity metadata there (the driver hands it over only by user "
		  "copy): use another --mode");
	return -EINVAL;
}

static int check_integrity(struct zublk_dev *dev)
{
	struct zublk_integrity *in = &dev->geom.integrity;
	int tuple = pi_tuple_size(in->csum);

	if (!in->interval_shift)
		in->interval_shift = (uint8_t)dev->geom.logical_bs_shift;
	if (tuple < 0 || in->pi_offset + tuple > in->meta_size ||
	    (in->ref_tag && in->csum == LBMD_PI_CSUM_NONE) || in->interval_shift < 9 ||
	    in->interval_shift > dev->geom.logical_bs_shift) {
		zublk_err("target %s: integrity metadata of %u bytes per %u-byte interval with "
			  "checksum type %u at offset %u cannot be", dev->ops->name, in->meta_size,
			  1U << in->interval_shift, in->csum, in->pi_offset);
		return -EINVAL;
	}
	return zublk_integrity_check_mode(dev);
}

static int check_geom(struct zublk_dev *dev)
{
	struct zublk_target_geom *g = &dev->geom;

	if (!g->logical_bs_shift)
		g->logical_bs_shift = 9;
	if (g->physical_bs_shift < g->logical_bs_shift)
		g->physical_bs_shift = g->logical_bs_shift;
	if (g->logical_bs_shift < 9 || g->logical_bs_shift > 12 || g->physical_bs_shift > 16) {
		zublk_err("target %s: block size 2^%u is out of range 512..4096", dev->ops->name,
			  g->logical_bs_shift);
		return -EINVAL;
	}
	if ((g->max_segments || g->max_segment_size || g->seg_boundary_mask) &&
	    (!g->max_segments || g->max_segment_size < 4096 || g->seg_boundary_mask < 4095 ||
	     ((g->seg_boundary_mask + 1) & g->seg_boundary_mask))) {
		zublk_err("target %s: bad segment limits", dev->ops->name);
		return -EINVAL;
	}
	if (g->max_io_bytes && dev->cfg.max_io_bytes > g->max_io_bytes) {
		uint32_t fit = g->max_io_bytes & ~4095U;

		/* A recovered device keeps the request size it was added with. */
		if (dev->cfg.recover || fit < 4096) {
			zublk_err("target %s: takes requests of up to %u bytes, the device's are up "
				  "to %u", dev->ops->name, g->max_io_bytes, dev->cfg.max_io_bytes);
			return -EINVAL;
		}
		zublk_log(ZUBLK_LOG_INFO, "target %s: requests cut down to %u bytes", dev->ops->name,
			  fit);
		dev->cfg.max_io_bytes = fit;
	}
	if (g->caps & ZUBLK_CAP_ZONED) {
		if (g->zone_size < 4096 || (g->zone_size & (g->zone_size - 1)) ||
		    (g->zone_size >> 9) > UINT32_MAX || g->size % g->zone_size) {
			zublk_err("target %s: zone size %llu is not a power of two of 4096 or more "
				  "bytes that divides the size", dev->ops->name,
				  (unsigned long long)g->zone_size);
			return -EINVAL;
		}
	}
	if (g->integrity.meta_size) {
		int ret = check_integrity(dev);

		if (ret)
			return ret;
	}
	g->size &= ~((1ULL << g->logical_bs_shift) - 1);
	if (g->size == 0) {
		zublk_err("target %s: size is zero (smaller than one %u-byte block)",
			  dev->ops->name, 1U << g->logical_bs_shift);
		return -EINVAL;
	}
	return 0;
}

/* The parameters the target's geometry gives the device, in @p. */
static void params_of(const struct zublk_dev *dev, struct ublk_params *p)
{
	const struct zublk_target_geom *g = &dev->geom;

	memset(p, 0, sizeof(*p));
	p->len = sizeof(*p);
	p->types = UBLK_PARAM_TYPE_BASIC | UBLK_PARAM_TYPE_DMA_ALIGN;
	p->basic.attrs = ((g->caps & ZUBLK_CAP_FLUSH) ? UBLK_ATTR_VOLATILE_CACHE : 0) |
			 ((g->caps & ZUBLK_CAP_FUA) ? UBLK_ATTR_FUA : 0) |
			 ((g->caps & ZUBLK_CAP_READ_ONLY) ? UBLK_ATTR_READ_ONLY : 0) |
			 ((g->caps & ZUBLK_CAP_ROTATIONAL) ? UBLK_ATTR_ROTATIONAL : 0);
	p->basic.logical_bs_shift = (__u8)g->logical_bs_shift;
	p->basic.physical_bs_shift = (__u8)g->physical_bs_shift;
	p->basic.io_min_shift = (__u8)g->logical_bs_shift;
	p->basic.io_opt_shift = (__u8)g->physical_bs_shift;
	p->basic.max_sectors = dev->info.max_io_buf_bytes >> 9;
	p->basic.dev_sectors = g->size >> 9;
	p->dma.alignment = g->dma_alignment ? g->dma_alignment : 511;

	if (g->max_segments && g->max_segment_size && g->seg_boundary_mask) {
		p->types |= UBLK_PARAM_TYPE_SEGMENT;
		p->seg.seg_boundary_mask = g->seg_boundary_mask;
		p->seg.max_segment_size = g->max_segment_size;
		p->seg.max_segments = g->max_segments;
	}
	if (g->caps & ZUBLK_CAP_ZONED) {
		p->types |= UBLK_PARAM_TYPE_ZONED;
		p->basic.chunk_sectors = (__u32)(g->zone_size >> 9);
		p->zoned.max_open_zones = g->max_open_zones;
		p->zoned.max_active_zones = g->max_active_zones;
		p->zoned.max_zone_append_sectors = p->basic.max_sectors;
	}
	if (g->integrity.meta_size) {
		const struct zublk_integrity *in = &g->integrity;

		p->types |= UBLK_PARAM_TYPE_INTEGRITY;
		p->integrity.flags = LBMD_PI_CAP_INTEGRITY | (in->ref_tag ? LBMD_PI_CAP_REFTAG : 0);
		p->integrity.interval_exp = in->interval_shift;
		p->integrity.metadata_size = in->meta_size;
		p->integrity.pi_offset = in->pi_offset;
		p->integrity.csum_type = in->csum;
	}
	if (g->caps & (ZUBLK_CAP_DISCARD | ZUBLK_CAP_WRITE_ZEROES)) {
		uint32_t max = g->max_discard_sectors ? g->max_discard_sectors
						      : DEF_MAX_DISCARD_SECTORS;

		p->types |= UBLK_PARAM_TYPE_DISCARD;
		p->discard.discard_granularity =
			g->discard_granularity ? g->discard_granularity : 1U << g->logical_bs_shift;
		p->discard.max_discard_sectors = (g->caps & ZUBLK_CAP_DISCARD) ? max : 0;
		p->discard.max_write_zeroes_sectors = (g->caps & ZUBLK_CAP_WRITE_ZEROES) ? max : 0;
		p->discard.max_discard_segments = 1;
	}
}

static void build_params(struct zublk_dev *dev)
{
	params_of(dev, &dev->params);
}

/*
 * What the device (@have, the kernel's) takes from its users that the
 * target (@now, its geometry in a recovery) no longer does, or NULL: a
 * server back read-only or without trim.  Its requests would fail there.
 */
static const char *lost_promise(const struct ublk_params *have, const struct ublk_params *now)
{
	uint32_t have_dis = have->types & UBLK_PARAM_TYPE_DISCARD ? have->discard.max_discard_sectors
								 : 0;
	uint32_t have_wz = have->types & UBLK_PARAM_TYPE_DISCARD
				   ? have->discard.max_write_zeroes_sectors : 0;

	if (!(have->basic.attrs & UBLK_ATTR_READ_ONLY) && (now->basic.attrs & UBLK_ATTR_READ_ONLY))
		return "writes";
	if ((have->basic.attrs & UBLK_ATTR_VOLATILE_CACHE) &&
	    !(now->basic.attrs & UBLK_ATTR_VOLATILE_CACHE))
		return "flushes";
	if ((have->basic.attrs & UBLK_ATTR_FUA) && !(now->basic.attrs & UBLK_ATTR_FUA))
		return "FUA writes";
	if (have_dis && !now->discard.max_discard_sectors)
		return "discards";
	if (have_wz && !now->discard.max_write_zeroes_sectors)
		return "write zeroes";
	return NULL;
}

/*
 * The same for what only some requests meet (small blocks, buffers little
 * aligned): said, not refused (the device ran so before, and a refused
 * upgrade would leave it quiesced, its IO held).
 */
static void said_smaller(const struct zublk_dev *dev, const struct ublk_params *have,
			 const struct ublk_params *now)
{
	uint32_t have_dma = have->types & UBLK_PARAM_TYPE_DMA_ALIGN ? have->dma.alignment : 511;

	if (have->basic.logical_bs_shift < now->basic.logical_bs_shift)
		zublk_warn("device %u: takes %u-byte blocks, the backing now %u: smaller "
			   "requests will fail", dev->info.dev_id, 1U << have->basic.logical_bs_shift,
			   1U << now->basic.logical_bs_shift);
	if (have_dma < now->dma.alignment)
		zublk_warn("device %u: takes buffers aligned to %u bytes, the backing now needs "
			   "%u: requests in others will fail", dev->info.dev_id, have_dma + 1,
			   now->dma.alignment + 1);
}

static int open_cdev(struct zublk_dev *dev)
{
	char path[64];

	snprintf(path, sizeof(path), "/dev/ublkc%u", dev->info.dev_id);
	/*
	 * devtmpfs may show the node a moment after ADD_DEV returns; a user's
	 * device's node is root's until udev hands it over (our rule), which
	 * may take longer.
	 */
	for (int i = 0; i < 1000; i++) {
		dev->cdev_fd = open(path, O_RDWR | O_CLOEXEC);
		if (dev->cdev_fd >= 0)
			return 0;
		if (errno != ENOENT && (errno != EACCES || !dev->unpriv))
			break;
		if (i >= 100 && errno == ENOENT)
			break;
		usleep(10000);
	}
	int ret = -errno;

	if (ret == -EACCES && dev->unpriv)
		zublk_err("%s: not handed over to uid %u in 10 s (is zublk's udev rule installed? "
			  "see zublk(8), UNPRIVILEGED DEVICES)", path, (unsigned)getuid());
	else
		zublk_err("%s: %s", path, strerror(-ret));
	return ret;
}

/*
 * A user other than root adds an unprivileged device (UBLK_F_UNPRIVILEGED_DEV):
 * the driver refuses it user copy, zero copy and recovery, so those are
 * taken out of what it offers; zoned devices and integrity metadata, which
 * need user copy, go with them.
 */
#define UNPRIV_REFUSED                                                                   \
	(UBLK_F_USER_COPY | UBLK_F_SUPPORT_ZERO_COPY | UBLK_F_AUTO_BUF_REG |             \
	 UBLK_F_USER_RECOVERY | UBLK_F_USER_RECOVERY_REISSUE | UBLK_F_USER_RECOVERY_FAIL_IO | \
	 UBLK_F_QUIESCE | UBLK_F_ZONED | UBLK_F_INTEGRITY)

static int unpriv_prepare(struct zublk_dev *dev)
{
	dev->unpriv = geteuid() != 0;
	if (!dev->unpriv)
		return 0;
	if (!(dev->features & UBLK_F_UNPRIVILEGED_DEV)) {
		zublk_err("this kernel has no UBLK_F_UNPRIVILEGED_DEV: only root can add a device");
		return -EPERM;
	}
	if (dev->cfg.recover) {
		zublk_err("a device added by a user other than root cannot be recovered (the "
			  "driver stops it with its daemon)");
		return -EPERM;
	}
	if (zublk_recovery_flags(dev->cfg.recovery)) {
		zublk_err("recovery %s: a device added by a user other than root cannot have it "
			  "(use --recovery off)", zublk_recovery_name(dev->cfg.recovery));
		return -EPERM;
	}
	dev->features &= ~(uint64_t)UNPRIV_REFUSED;
	return 0;
}

static int recovery_flags(struct zublk_dev *dev, uint64_t *flags)
{
	uint64_t want = zublk_recovery_flags(dev->cfg.recovery);
	int ret = dev->cfg.no_part_scan
			  ? want_flags(dev, flags, UBLK_F_NO_AUTO_PART_SCAN, "--no-part-scan")
			  : 0;

	if (!ret)
		ret = want_flags(dev, flags, want, "--recovery");
	/* Quiesce (live upgrade) rides on recovery. */
	if (!ret && (want & UBLK_F_USER_RECOVERY))
		*flags |= dev->features & UBLK_F_QUIESCE;
	return ret;
}

/*
 * A LIVE device whose daemon is gone is on its way to QUIESCED or FAIL_IO:
 * the driver moves it from a work item that the release of /dev/ublkcN
 * schedules, and that waits for the ring's teardown to drop the buffers it
 * registered, so it may run after the process has been reaped (seen once in
 * CI, a recover run by `upgrade` found the device LIVE).  Wait, up to 10 s.
 */
static int wait_released(struct zublk_dev *dev, unsigned id)
{
	for (int i = 0; i < 1000 && dev->info.state == UBLK_S_DEV_LIVE; i++) {
		pid_t pid = dev->info.ublksrv_pid;

		/*
		 * A daemon still there is not one we wait for: its device is its
		 * own.  No pid: the 7.2 driver says -1 in that window (seen in a
		 * VM run, one upgrade in 15), on its way.
		 */
		if (pid > 0 && !zublk_pid_exited(pid))
			return 0;
		usleep(10000);
		int ret = zublk_ctrl_get_info(dev->ctrl, id, &dev->info);

		if (ret) {
			zublk_err("device %u: %s", id,
				  ret == -ENODEV ? "no such device" : strerror(-ret));
			return ret;
		}
	}
	return 0;
}

/* Recovery: the device exists; take its shape from the kernel, not from us. */
static int recover_prepare(struct zublk_dev *dev)
{
	unsigned id = (unsigned)dev->cfg.dev_id;
	enum zublk_mode m;
	int ret;

	if (dev->cfg.dev_id < 0) {
		zublk_err("recover: needs a device id");
		return -EINVAL;
	}
	ret = zublk_ctrl_get_info(dev->ctrl, id, &dev->info);
	if (ret) {
		zublk_err("device %u: %s", id,
			  ret == -ENODEV ? "no such device" : strerror(-ret));
		return ret;
	}
	if (!(dev->info.flags & UBLK_F_USER_RECOVERY)) {
		zublk_err("device %u: was added with --recovery=off", id);
		return -EINVAL;
	}
	ret = wait_released(dev, id);
	if (ret)
		return ret;
	if (dev->info.state != UBLK_S_DEV_QUIESCED && dev->info.state != UBLK_S_DEV_FAIL_IO) {
		pid_t pid = dev->info.ublksrv_pid;

		if (dev->info.state == UBLK_S_DEV_LIVE && pid > 0 && !zublk_pid_exited(pid))
			zublk_err("device %u: not waiting for recovery (state LIVE, served by "
				  "daemon %d)", id, pid);
		else if (dev->info.state == UBLK_S_DEV_LIVE)
			zublk_err("device %u: not waiting for recovery (state LIVE 10 s after its "
				  "daemon ended)", id);
		else
			zublk_err("device %u: not waiting for recovery (state %s)", id,
				  zublk_state_name(dev->info.state));
		return -EBUSY;
	}
	m = zublk_mode_from_flags(dev->info.flags);
	if (dev->cfg.mode != ZUBLK_MODE_DEFAULT && dev->cfg.mode != m) {
		zublk_err("device %u: runs in mode %s, not %s", id, zublk_mode_name(m),
			  zublk_mode_name(dev->cfg.mode));
		return -EINVAL;
	}
	dev->mode = m;
	dev->nr_queues = dev->info.nr_hw_queues;
	dev->cfg.queue_depth = dev->info.queue_depth;
	dev->cfg.max_io_bytes = dev->info.max_io_buf_bytes;
	ret = zublk_ctrl_get_params(dev->ctrl, id, &dev->params);
	if (ret) {
		zublk_err("device %u: GET_PARAMS: %s", id, strerror(-ret));
		return ret;
	}
	return 0;
}

/* The backing identity as an older zublk saved it: a mirror's failed legs counted too. */
static bool same_as_older(struct zublk_dev *dev)
{
	char all[sizeof(dev->files_id)];

	zublk_files_identity_all(dev, all, sizeof(all));
	return !strcmp(dev->cfg.expect_files, all);
}

static int recover_start(struct zublk_dev *dev)
{
	unsigned id = dev->info.dev_id;
	uint64_t have = dev->params.basic.dev_sectors << 9;
	struct ublk_params now;
	const char *lost;
	int ret;

	/* The device's size rules; a backing left bigger by a shrink is fine. */
	if (dev->geom.size < have) {
		zublk_err("device %u: the backing now gives %llu bytes, the device has %llu; "
			  "not recovering", id, (unsigned long long)dev->geom.size,
			  (unsigned long long)have);
		return -EINVAL;
	}
	dev->geom.size = have;
	atomic_store(&dev->dev_sectors, have >> 9);
	params_of(dev, &now);
	lost = lost_promise(&dev->params, &now);
	if (lost) {
		zublk_err("device %u: takes %s, which the backing no longer does; not recovering",
			  id, lost);
		return -EINVAL;
	}
	said_smaller(dev, &dev->params, &now);
	if (!!(dev->info.flags & UBLK_F_ZONED) != !!(dev->geom.caps & ZUBLK_CAP_ZONED) ||
	    ((dev->info.flags & UBLK_F_ZONED) &&
	     (uint64_t)dev->params.basic.chunk_sectors << 9 != dev->geom.zone_size)) {
		zublk_err("device %u: zones of %llu bytes, the backing has %llu; not recovering", id,
			  (unsigned long long)dev->params.basic.chunk_sectors << 9,
			  (unsigned long long)dev->geom.zone_size);
		return -EINVAL;
	}
	if (!(dev->params.types & UBLK_PARAM_TYPE_INTEGRITY) != !dev->geom.integrity.meta_size ||
	    (dev->geom.integrity.meta_size &&
	     (dev->params.integrity.metadata_size != dev->geom.integrity.meta_size ||
	      dev->params.integrity.csum_type != dev->geom.integrity.csum ||
	      dev->params.integrity.interval_exp != dev->geom.integrity.interval_shift ||
	      dev->params.integrity.pi_offset != dev->geom.integrity.pi_offset))) {
		zublk_err("device %u: its integrity metadata is not what the options give; "
			  "not recovering", id);
		return -EINVAL;
	}
	if (dev->cfg.expect_files && strcmp(dev->cfg.expect_files, dev->files_id) &&
	    !same_as_older(dev)) {
		zublk_err("device %u: the backing is not the one it was served from "
			  "(was %s, now %s); not recovering", id, dev->cfg.expect_files,
			  dev->files_id);
		return -EINVAL;
	}
	/* The old daemon may still be on its way out: EBUSY until it is gone. */
	for (int i = 0; i < 200; i++) {
		ret = zublk_ctrl_start_recovery(dev->ctrl, id);
		if (ret != -EBUSY)
			break;
		usleep(50000);
	}
	if (ret) {
		zublk_err("device %u: START_USER_RECOVERY: %s", id, strerror(-ret));
		return ret;
	}
	dev->added = true;
	return open_cdev(dev);
}

/*
 * Whether our id is still our device, not one another add took since: a
 * DEL_DEV of someone else's ends when our cdev closes, and frees the id.
 */
static bool id_still_ours(struct zublk_dev *dev)
{
	struct ublksrv_ctrl_dev_info info;

	if (!zublk_ctrl_get_info(dev->ctrl, dev->info.dev_id, &info) &&
	    info.ublksrv_pid > 0 && info.ublksrv_pid != getpid()) {
		zublk_dbg("device %u: served by pid %d now: not ours to delete", dev->info.dev_id,
			  info.ublksrv_pid);
		return false;
	}
	return true;
}

int zublk_dev_create(const struct zublk_dev_config *cfg,
		     const struct zublk_target_ops *ops, struct zublk_opts *opts,
		     struct zublk_dev **out)
{
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	struct zublk_dev *dev;
	const char *bad;
	uint64_t flags;
	int ret;

	/*
	 * What `zublk add` checked, for every caller: a larger max IO size
	 * would put a request's user-copy offsets in the next tag's.  (A
	 * recovery takes the device's queues, depth and IO size.)
	 */
	ret = cfg->recover ? 0
			   : zublk_dev_config_check(cfg, online < 1 ? UBLK_MAX_NR_QUEUES
								    : (unsigned)online);
	if (ret)
		return ret;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	dev->cfg = *cfg;
	dev->ops = ops;
	dev->opts = opts;
	dev->cdev_fd = -1;
	dev->exit_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ret = dev->exit_efd < 0 ? -errno : files_grow(dev, 1);
	if (ret) {
		if (dev->exit_efd >= 0)
			close(dev->exit_efd);
		free(dev->files);
		free(dev->file_kind);
		free(dev);
		return ret;
	}
	dev->files[0] = -1;
	dev->file_kind[0] = FILE_WHOLE;
	dev->nr_files = 1;
	dev->ctl_fd = -1;
	pthread_mutex_init(&dev->start_lock, NULL);
	pthread_cond_init(&dev->start_cond, NULL);
	pthread_mutex_init(&dev->state_lock, NULL);
	dev->nr_queues = cfg->nr_queues ? cfg->nr_queues : 1;
	if (!dev->cfg.queue_depth)
		dev->cfg.queue_depth = ZUBLK_DEF_QUEUE_DEPTH;
	if (!dev->cfg.max_io_bytes)
		dev->cfg.max_io_bytes = ZUBLK_DEF_MAX_IO_BYTES;
	snprintf(dev->state_dir, sizeof(dev->state_dir), "%s",
		 cfg->state_dir ? cfg->state_dir : zublk_state_dir());

	ret = zublk_ctrl_open(&dev->ctrl);
	if (ret) {
		zublk_err("/dev/ublk-control: %s%s", strerror(-ret),
			  ret == -ENOENT ? " (is the ublk_drv module loaded?)" : "");
		goto err_free;
	}
	ret = zublk_ctrl_get_features(dev->ctrl, &dev->features);
	if (ret) {
		zublk_err("GET_FEATURES: %s (kernel too old?)", strerror(-ret));
		goto err_ctrl;
	}
	ret = unpriv_prepare(dev);
	if (ret)
		goto err_ctrl;
	if (cfg->recover) {
		ret = recover_prepare(dev);
		if (ret)
			goto err_ctrl;
	} else {
		ret = pick_mode(dev);
		if (ret)
			goto err_ctrl;
	}

	ret = ops->init(dev, opts, &dev->geom);
	if (ret)
		goto err_ctrl;
	/* Saved by an older zublk, which took the last: so does a recovery. */
	if (opts->twice[0] && cfg->recover) {
		zublk_log(ZUBLK_LOG_WARN, "option '%s': given more than once; the last taken",
			  opts->twice);
	} else if (opts->twice[0]) {
		zublk_err("option '%s': given more than once", opts->twice);
		ret = -EINVAL;
		goto err_target;
	}
	ret = zublk_opts_check_unused(opts, &bad);
	if (ret) {
		zublk_err("option '%s': not an option of target %s", bad, ops->name);
		goto err_target;
	}
	ret = check_geom(dev);
	if (ret)
		goto err_target;
	if (!cfg->recover && cfg->mode == ZUBLK_MODE_DEFAULT && dev->geom.copies_all &&
	    dev->mode == ZUBLK_MODE_AUTO_ZERO_COPY &&
	    zublk_mode_best(dev->features, ops->modes & ZUBLK_MODE_BIT(ZUBLK_MODE_ZERO_COPY)) ==
		    ZUBLK_MODE_ZERO_COPY)
		dev->mode = ZUBLK_MODE_ZERO_COPY;
	zublk_files_identity(dev, dev->files_id, sizeof(dev->files_id));
	atomic_store(&dev->dev_sectors, dev->geom.size >> 9);

	if (cfg->recover) {
		ret = recover_start(dev);
		if (ret)
			goto err_target;
		goto stats;
	}

	dev->info.nr_hw_queues = (__u16)dev->nr_queues;
	dev->info.queue_depth = (__u16)dev->cfg.queue_depth;
	dev->info.max_io_buf_bytes = dev->cfg.max_io_bytes;
	dev->info.dev_id = cfg->dev_id < 0 ? (__u32)-1 : (__u32)cfg->dev_id;
	dev->info.ublksrv_pid = getpid();
	flags = UBLK_F_CMD_IOCTL_ENCODE | zublk_mode_flags(dev->mode) |
		(dev->features & (UBLK_F_UPDATE_SIZE | UBLK_F_SAFE_STOP_DEV));
	if (dev->geom.want_copy && zublk_mode_is_zc(dev->mode))
		flags |= dev->features & UBLK_F_USER_COPY;
	/*
	 * Auto zero copy asks for the fallback (UBLK_IO_F_NEED_REG_BUF: the
	 * driver could not register the request, we must), and the driver
	 * takes UBLK_U_IO_REGISTER_IO_BUF only from a zero-copy device.
	 */
	if (dev->mode == ZUBLK_MODE_AUTO_ZERO_COPY)
		flags |= dev->features & UBLK_F_SUPPORT_ZERO_COPY;
	ret = cfg->batch ? want_flags(dev, &flags, UBLK_F_BATCH_IO, "--batch") : 0;
	if (!ret && (dev->geom.caps & ZUBLK_CAP_ZONED))
		ret = want_flags(dev, &flags, UBLK_F_ZONED, "zoned device");
	if (!ret && cfg->nr_shmem)
		ret = want_flags(dev, &flags, UBLK_F_SHMEM_ZC, "--shmem");
	if (!ret && dev->geom.integrity.meta_size)
		ret = want_flags(dev, &flags, UBLK_F_INTEGRITY | UBLK_F_USER_COPY,
				 "integrity metadata");
	if (ret)
		goto err_target;
	ret = recovery_flags(dev, &flags);
	if (dev->unpriv)
		flags |= UBLK_F_UNPRIVILEGED_DEV;
	dev->info.flags = flags;
	if (ret)
		goto err_target;
	ret = zublk_ctrl_add_dev(dev->ctrl, &dev->info);
	if (ret) {
		if (ret == -EEXIST && cfg->dev_id >= 0)
			zublk_err("device %d: already exists", cfg->dev_id);
		else
			zublk_err("ADD_DEV: %s", strerror(-ret));
		goto err_target;
	}
	dev->added = true;
	if (cfg->added)
		cfg->added(dev->info.dev_id, cfg->added_arg);

	ret = open_cdev(dev);
	if (ret)
		goto err_del;
	build_params(dev);
	ret = zublk_ctrl_set_params(dev->ctrl, dev->info.dev_id, &dev->params);
	if (ret) {
		zublk_err("device %u: SET_PARAMS: %s", dev->info.dev_id, strerror(-ret));
		goto err_del;
	}
stats:
	/* Both come from the kernel's word on a recovery. */
	dev->can_copy = zublk_mode_is_zc(dev->mode) && (dev->info.flags & UBLK_F_USER_COPY);
	dev->batch = dev->info.flags & UBLK_F_BATCH_IO;
	/* Before START_DEV: registering on a live device freezes its queue. */
	ret = zublk_shmem_setup(dev);
	if (ret)
		goto err_del;
	ret = zublk_stats_map(dev);
	if (ret)
		goto err_del;
	*out = dev;
	return 0;

err_del:
	zublk_shmem_release(dev);
	if (dev->cdev_fd >= 0)
		close(dev->cdev_fd);
	/* A device we only came to recover stays for the next try. */
	if (!cfg->recover && id_still_ours(dev)) {
		int dr = zublk_ctrl_del_dev(dev->ctrl, dev->info.dev_id, true);

		/* A user's device whose node udev never handed over is root's to delete. */
		if (dr == -EACCES || dr == -EPERM)
			zublk_err("device %u left added: DEL_DEV: %s; root can delete it "
				  "('zublk del -n %u')", dev->info.dev_id, strerror(-dr),
				  dev->info.dev_id);
		else if (dr)
			zublk_err("device %u left added: DEL_DEV: %s", dev->info.dev_id,
				  strerror(-dr));
	}
err_target:
	if (ops->exit)
		ops->exit(dev);
err_ctrl:
	zublk_ctrl_close(dev->ctrl);
err_free:
	close(dev->exit_efd);
	free(dev->files);
	free(dev->file_kind);
	free(dev);
	return ret;
}

static void set_scheduler_none(struct zublk_dev *dev)
{
	char path[96];
	int ret;

	snprintf(path, sizeof(path), "/sys/block/ublkb%u/queue/scheduler", dev->info.dev_id);
	ret = zublk_write_file(path, "none");
	if (ret)
		zublk_warn("device %u: could not set IO scheduler none: %s", dev->info.dev_id,
			   strerror(-ret));
}

unsigned zublk_dev_inflight(const struct zublk_dev *dev)
{
	char path[64], buf[64];
	unsigned r, w;

	snprintf(path, sizeof(path), "/sys/block/ublkb%u/inflight", dev->info.dev_id);
	if (!zublk_read_text(path, buf, sizeof(buf)) || sscanf(buf, "%u %u", &r, &w) != 2)
		return 0;
	return r + w;
}

/* Make the thread serving queue @q_id leave its loop, as if it had died. */
int zublk_dev_kick_queue(struct zublk_dev *dev, unsigned q_id)
{
	struct zublk_worker *w;

	if (!dev->queues || q_id >= dev->nr_queues)
		return -EINVAL;
	w = dev->queues[q_id].w;
	if (!w || !w->thread_started || !w->ring_ok)
		return -ESRCH;
	return zublk_ctrl_msg_ring(dev->ctrl, w->ring.ring_fd, zublk_ud_pack(0, ZUBLK_UD_STOP, 0));
}

static void kick_queues(struct zublk_dev *dev)
{
	for (unsigned i = 0; dev->workers && i < dev->nr_workers; i++)
		zublk_dev_kick_queue(dev, dev->workers[i].qs[0].q_id);
}

/* Pin @w's thread to the CPUs the driver maps to its queues' hardware queues. */
static void worker_pin(struct zublk_dev *dev, struct zublk_worker *w)
{
	cpu_set_t all, set;
	int ret = 0;

	CPU_ZERO(&all);
	for (unsigned i = 0; i < w->nr_qs && !ret; i++) {
		CPU_ZERO(&set);
		ret = zublk_ctrl_get_queue_affinity(dev->ctrl, dev->info.dev_id, w->qs[i].q_id,
						    &set, sizeof(set));
		CPU_OR(&all, &all, &set);
	}
	if (!ret && CPU_COUNT(&all))
		ret = -pthread_setaffinity_np(w->thread, sizeof(all), &all);
	if (ret)
		zublk_log(ZUBLK_LOG_WARN, "thread %u: not pinned: %s", w->id, strerror(-ret));
}

int zublk_dev_start(struct zublk_dev *dev)
{
	unsigned want = dev->cfg.nr_threads, per;
	int ret = 0;

	dev->nr_cpus = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);

	/*
	 * A target that copies every request's data in its queue thread
	 * (a file in memory) costs that thread CPU by the byte: a thread per
	 * queue copies on every CPU at once (bench/notes.md).
	 */
	if (!want && dev->geom.copies_all)
		want = dev->nr_queues;
	dev->nr_workers = dev->batch ? dev->nr_queues
				     : zublk_threads_for(dev->nr_queues, dev->info.queue_depth,
							 want, dev->nr_cpus);
	per = (dev->nr_queues + dev->nr_workers - 1) / dev->nr_workers;
	dev->queues = calloc(dev->nr_queues, sizeof(*dev->queues));
	dev->workers = calloc(dev->nr_workers, sizeof(*dev->workers));
	if (!dev->queues || !dev->workers)
		return -ENOMEM;
	for (unsigned i = 0; i < dev->nr_queues; i++) {
		struct zublk_queue *q = &dev->queues[i];
		struct zublk_worker *w = &dev->workers[i / per];

		if (i % per == 0) {
			w->dev = dev;
			w->id = i / per;
			w->qs = q;
		}
		q->dev = dev;
		q->q_id = i;
		q->depth = dev->info.queue_depth;
		q->stats = &dev->stats->q[i];
		q->w = w;
		q->ring = &w->ring;
		q->slot = w->nr_qs++;
	}
	for (unsigned i = 0; i < dev->nr_workers; i++) {
		struct zublk_worker *w = &dev->workers[i];

		ret = zublk_worker_spawn(w);
		if (ret) {
			zublk_err("thread %u: %s", i, strerror(-ret));
			break;
		}
		if (dev->cfg.pin_queues)
			worker_pin(dev, w);
	}

	pthread_mutex_lock(&dev->start_lock);
	for (;;) {
		unsigned spawned = 0;

		for (unsigned i = 0; i < dev->nr_workers; i++)
			spawned += dev->workers[i].thread_started;
		if (dev->nr_workers_ready >= spawned)
			break;
		pthread_cond_wait(&dev->start_cond, &dev->start_lock);
	}
	if (!ret)
		ret = dev->queue_init_error;
	pthread_mutex_unlock(&dev->start_lock);
	if (ret)
		return ret;

	if (dev->cfg.recover) {
		ret = zublk_ctrl_end_recovery(dev->ctrl, dev->info.dev_id, getpid());
		if (ret) {
			zublk_err("device %u: END_USER_RECOVERY: %s", dev->info.dev_id,
				  strerror(-ret));
			return ret;
		}
	} else {
		ret = zublk_ctrl_start_dev(dev->ctrl, dev->info.dev_id, getpid());
		if (ret) {
			zublk_err("device %u: START_DEV: %s", dev->info.dev_id, strerror(-ret));
			return ret;
		}
		/* sysfs is root's: a user's device keeps the kernel's choice. */
		if (!dev->cfg.keep_scheduler && !dev->unpriv)
			set_scheduler_none(dev);
	}
	dev->started = true;
	zublk_ctl_listen(dev);
	if (zublk_ctrl_get_params(dev->ctrl, dev->info.dev_id, &dev->params) == 0 &&
	    zublk_ctrl_get_info(dev->ctrl, dev->info.dev_id, &dev->info) == 0)
		zublk_dev_save_state(dev);
	return 0;
}

void zublk_dev_tell_stopping(struct zublk_dev *dev)
{
	if (!atomic_exchange(&dev->told_stopping, true) && dev->ops && dev->ops->stopping)
		dev->ops->stopping(dev);
}

int zublk_dev_stop(struct zublk_dev *dev)
{
	int ret;

	/* STOP_DEV waits for the requests the target holds: tell it first. */
	zublk_dev_tell_stopping(dev);
	dev->stop_requested = true;
	ret = zublk_ctrl_stop_dev(dev->ctrl, dev->info.dev_id);

	/* A device that is already gone has stopped. */
	if (ret == -ENODEV || ret == -ENOENT)
		ret = 0;
	/*
	 * Not started, or the stop failed (it gave up waiting, say, for the
	 * requests a dead queue thread held, which only the device's release
	 * ends): the queue threads end here, so that the release comes.
	 */
	if (!dev->started || ret)
		kick_queues(dev);
	return ret;
}

int zublk_dev_wait(struct zublk_dev *dev)
{
	int err = 0;

	/* Every thread first: one still running may message another's ring. */
	for (unsigned i = 0; dev->workers && i < dev->nr_workers; i++)
		if (dev->workers[i].thread_started)
			pthread_join(dev->workers[i].thread, NULL);
	for (unsigned i = 0; dev->workers && i < dev->nr_workers; i++) {
		struct zublk_worker *w = &dev->workers[i];

		if (!w->thread_started)
			continue;
		w->thread_started = false;
		if (w->ring_ok)
			io_uring_queue_exit(&w->ring);
		w->ring_ok = false;
		if (w->error && !err)
			err = w->error;
		for (unsigned j = 0; j < w->nr_qs; j++) {
			zublk_queue_ring_gone(&w->qs[j]);
			if (w->qs[j].error && !err)
				err = w->qs[j].error;
		}
	}
	return err;
}

void zublk_dev_destroy(struct zublk_dev *dev)
{
	if (!dev)
		return;
	kick_queues(dev);
	zublk_dev_wait(dev);
	if (dev->ops->exit)
		dev->ops->exit(dev);
	/* The socket first: a new daemon may bind its own once the cdev is free. */
	zublk_ctl_close(dev);
	if (dev->cdev_fd >= 0)
		close(dev->cdev_fd);
	/*
	 * Delete what we stopped or never started; a device left to a new
	 * daemon (upgrade, recovery) keeps its state file for it.
	 */
	if (dev->added && (dev->stop_requested || (!dev->started && !dev->cfg.recover))) {
		bool ours = id_still_ours(dev);
		int ret;

		/* Before DEL_DEV frees the id: the names become the next add's. */
		zublk_state_remove(dev, ours);
		ret = ours ? zublk_ctrl_del_dev(dev->ctrl, dev->info.dev_id, true) : 0;
		if (ret && ret != -ENODEV && ret != -ENOENT)
			zublk_dbg("device %u: DEL_DEV: %s", dev->info.dev_id, strerror(-ret));
	} else {
		zublk_state_remove(dev, false);
	}
	zublk_ctrl_close(dev->ctrl);
	zublk_shmem_release(dev);
	close(dev->exit_efd);
	free(dev->queues);
	free(dev->workers);
	pthread_mutex_destroy(&dev->start_lock);
	pthread_cond_destroy(&dev->start_cond);
	pthread_mutex_destroy(&dev->state_lock);
	free(dev->files);
	free(dev->file_kind);
	free(dev);
}

void zublk_dev_release(struct zublk_dev *dev)
{
	uint64_t since = atomic_load(&dev->cancel_ns), end;
	unsigned started = 0;

	/* From the first abort, as the threads count their wait: none is kicked before. */
	end = (since ? since : zublk_now_ns()) + ZUBLK_CANCEL_WAIT_NS + 2000000000ULL;

	for (unsigned i = 0; dev->workers && i < dev->nr_workers; i++)
		started += dev->workers[i].thread_started;
	/*
	 * A quiesce (upgrade) aborts only the fetches of idle tags: each thread
	 * leaves once what it was handed is committed.  One that left first
	 * must not take the others down with requests still in hand (kicked,
	 * a thread drops them, and the next daemon does them again): they are
	 * waited for, for a while.
	 */
	while (atomic_load(&dev->cancelling) && atomic_load(&dev->nr_workers_exited) < started &&
	       zublk_now_ns() < end)
		usleep(10000);
	kick_queues(dev);
}

bool zublk_dev_awaits_recovery(struct zublk_dev *dev)
{
	struct ublksrv_ctrl_dev_info info;

	if (dev->stop_requested || !(dev->info.flags & UBLK_F_USER_RECOVERY))
		return false;
	/*
	 * Quiesced (upgrade) or not yet: our queues are gone but the driver
	 * only moves to QUIESCED once the char device is released, so LIVE
	 * with our queues aborted also means "leave it".
	 */
	if (zublk_ctrl_get_info(dev->ctrl, dev->info.dev_id, &info))
		return false;
	return info.state == UBLK_S_DEV_QUIESCED || info.state == UBLK_S_DEV_FAIL_IO ||
	       info.state == UBLK_S_DEV_LIVE;
}

int zublk_dev_resize(struct zublk_dev *dev, uint64_t size)
{
	unsigned id = dev->info.dev_id;
	uint64_t bs = 1ULL << dev->geom.logical_bs_shift;
	int ret;

	if (!(dev->info.flags & UBLK_F_UPDATE_SIZE)) {
		zublk_err("device %u: the kernel cannot resize it (no UBLK_F_UPDATE_SIZE)", id);
		return -EOPNOTSUPP;
	}
	if (!dev->ops->resize) {
		zublk_err("device %u: target %s cannot be resized", id, dev->ops->name);
		return -EOPNOTSUPP;
	}
	if (size == 0 || size % bs) {
		zublk_err("device %u: size %llu: not a multiple of the %llu-byte block", id,
			  (unsigned long long)size, (unsigned long long)bs);
		return -EINVAL;
	}
	if (size < dev->geom.size) {
		/*
		 * Shrinking: the kernel first, so that no request reaches past
		 * the new end by the time the target lets go of it.
		 */
		atomic_store(&dev->dev_sectors, size >> 9);
		ret = zublk_ctrl_update_size(dev->ctrl, id, size >> 9);
		if (!ret) {
			ret = dev->ops->resize(dev, size);
			/* As it was: the target still has the old end. */
			if (ret && zublk_ctrl_update_size(dev->ctrl, id, dev->geom.size >> 9))
				zublk_err("device %u: UPDATE_SIZE back to %llu bytes failed: the "
					  "kernel says %llu", id, (unsigned long long)dev->geom.size,
					  (unsigned long long)size);
		} else {
			zublk_err("device %u: UPDATE_SIZE: %s", id, strerror(-ret));
		}
		if (ret) {
			atomic_store(&dev->dev_sectors, dev->geom.size >> 9);
			return ret;
		}
	} else {
		ret = dev->ops->resize(dev, size);
		if (ret)
			return ret;
		/*
		 * The backing may have grown (a file): that is what a recovery
		 * finds from now on, whether or not the kernel's size follows.
		 */
		zublk_files_reidentify(dev);
		zublk_dev_save_state(dev);
		/* Accept requests up to the new end before the kernel sends any. */
		atomic_store(&dev->dev_sectors, size >> 9);
		ret = zublk_ctrl_update_size(dev->ctrl, id, size >> 9);
		if (ret) {
			atomic_store(&dev->dev_sectors, dev->geom.size >> 9);
			zublk_err("device %u: UPDATE_SIZE: %s", id, strerror(-ret));
			return ret;
		}
	}
	dev->geom.size = size;
	dev->params.basic.dev_sectors = size >> 9;
	/* A grown backing file is still ours: recovery must accept it. */
	zublk_files_reidentify(dev);
	zublk_dev_save_state(dev);
	return 0;
}

int zublk_dev_save_state(struct zublk_dev *dev)
{
	int ret;

	pthread_mutex_lock(&dev->state_lock);
	ret = zublk_state_write(dev);
	pthread_mutex_unlock(&dev->state_lock);
	return ret;
}

unsigned zublk_dev_id(const struct zublk_dev *dev)
{
	return dev->info.dev_id;
}

unsigned zublk_dev_nr_queues(const struct zublk_dev *dev)
{
	return dev->nr_queues;
}

enum zublk_mode zublk_dev_mode(const struct zublk_dev *dev)
{
	return dev->mode;
}

bool zublk_dev_recovering(const struct zublk_dev *dev)
{
	return dev->cfg.recover;
}

int zublk_dev_opt_unused(const struct zublk_dev *dev, struct zublk_opts *o, const char *key,
			 const char *fmt, ...)
{
	bool recovering = zublk_dev_recovering(dev);
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	zublk_log(recovering ? ZUBLK_LOG_WARN : ZUBLK_LOG_ERR, "%s '%s': %s%s", key,
		  zublk_opts_get(o, key), why, recovering ? "; not used" : "");
	return recovering ? 0 : -EINVAL;
}

bool zublk_dev_started(const struct zublk_dev *dev)
{
	return dev->started;
}

uint64_t zublk_dev_size(const struct zublk_dev *dev)
{
	return dev->geom.size;
}

const struct ublksrv_ctrl_dev_info *zublk_dev_info(const struct zublk_dev *dev)
{
	return &dev->info;
}

void *zublk_dev_priv(const struct zublk_dev *dev)
{
	return dev->priv;
}

void zublk_dev_set_priv(struct zublk_dev *dev, void *priv)
{
	dev->priv = priv;
}

int zublk_dev_exit_fd(const struct zublk_dev *dev)
{
	return dev->exit_efd;
}
