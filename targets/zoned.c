// SPDX-License-Identifier: MIT
/*
 * zoned: a host-managed zoned device, one regular file per zone in a
 * directory, laid out as the kernel's zoned loop driver (zloop) lays it out,
 * so one directory serves either: cnv-NNNNNN for a conventional zone (a file
 * of the zone's size), seq-NNNNNN for a sequential one, whose file size is
 * its write pointer.  A reset truncates the file to nothing, a finish to the
 * zone's size; the zones' state survives a restart and a recovery (an open
 * zone comes back closed).
 *
 * Every write to a sequential zone is checked against the write pointer
 * and the open and active limits under one lock, and moves it at once, so
 * zone appends on several queues get places of their own; a write that
 * fails puts the pointer back where the file ends.  Reads past the write
 * pointer return zeros.  FLUSH syncs the zones written since the last one.
 *
 * Zone files in memory (tmpfs): io_uring cannot read or write those without
 * blocking and hands each request to a worker thread, so a request of up
 * to copy_max bytes is copied in the queue thread instead, pread()/pwrite()
 * between the file and the request's buffer (user-copy), or through a
 * bounce buffer and the driver's user copy (zero-copy): a copy or two
 * instead of a handoff to another thread and back.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/blkzoned.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "zublk.h"

#define ZONED_DEF_SIZE (16ULL << 30)
#define ZONED_DEF_ZONE_SIZE (256ULL << 20)
#define ZONED_DEF_CONV 8U
#define ZONED_MAX_ZONES 65536U
/*
 * Zone files in memory: requests up to this long are copied in the queue
 * thread.  Measured (bench/notes.md, zero-copy): 3.7x at 4k QD1 and 1.5x at
 * 4k QD32 over io_uring's worker, but 0.71x at 128k, where the bounce
 * buffer's second copy costs more than the handoff.
 */
#define ZONED_DEF_COPY_MAX (64U << 10)

/* A READ's or WRITE's sub; a FLUSH's fsyncs carry their zone's number. */
enum { ZN_RW };

struct zone {
	uint64_t wp;		/* sequential: bytes written (and reserved) */
	uint8_t cond;		/* BLK_ZONE_COND_* */
	bool dirty;		/* written since the last FLUSH */
	uint32_t syncing;	/* FLUSHes' fsyncs of it in flight */
	bool resync;		/* a write failed: take wp from the file once none is out */
	bool finished;		/* FINISHed while full with writes out: stays full */
	uint32_t writing;	/* writes reserved and not yet done */
};

struct zoned_dev {
	char *dir;
	uint64_t zone_size;
	uint64_t zone_cap;		/* a sequential zone's writable bytes */
	unsigned nr_zones, nr_conv;
	unsigned max_open, max_active;
	unsigned nr_open, nr_active;	/* implicitly + explicitly open; + closed */
	unsigned nr_dirty;		/* zones written since the last FLUSH */
	unsigned nr_syncing;		/* zones with fsyncs in flight */
	bool buffered;
	uint32_t copy_max;		/* in memory: requests copied in the queue thread */
	int first_idx;			/* fixed-file index of zone 0 */
	int *fds;
	bool *made;			/* zone files this add created */
	bool over_limit;		/* finish zones past max_active at the first queue_init */
	struct zone *zones;
	void *zeros;			/* ZUBLK_MAX_MAX_IO_BYTES of the zero page */
	pthread_mutex_t lock;
};

/* Per tag: the transfer under way. */
struct zoned_tag {
	uint32_t done;		/* bytes moved so far */
	uint32_t want;		/* bytes to move by file IO; a read's rest is zeros */
	uint32_t pending;	/* a FLUSH's syncs out */
	int error;		/* a FLUSH's first error */
};

struct zoned_queue {
	struct zoned_tag *tags;
	uint8_t *bounce;		/* zero-copy straight copies: copy_max bytes */
	struct blk_zone *report;
	size_t report_len;
};

/* Zones below nr_conv are conventional. */
static bool is_conv(const struct zoned_dev *zd, unsigned zno)
{
	return zno < zd->nr_conv;
}

static struct zoned_tag *tag_of(struct zublk_queue *q, const struct zublk_io *io)
{
	return &((struct zoned_queue *)zublk_queue_priv(q))->tags[io->tag];
}

/* Zone @zno was written, reset or finished: the next FLUSH syncs it.  Lock held. */
static void mark_dirty(struct zoned_dev *zd, unsigned zno)
{
	zd->nr_dirty += !zd->zones[zno].dirty;
	zd->zones[zno].dirty = true;
}

static bool is_open(uint8_t cond)
{
	return cond == BLK_ZONE_COND_IMP_OPEN || cond == BLK_ZONE_COND_EXP_OPEN;
}

static bool is_active(uint8_t cond)
{
	return is_open(cond) || cond == BLK_ZONE_COND_CLOSED;
}

/* Move @z to @cond, keeping the open and active counts.  Lock held. */
static void set_cond(struct zoned_dev *zd, struct zone *z, uint8_t cond)
{
	zd->nr_open -= is_open(z->cond);
	zd->nr_active -= is_active(z->cond);
	z->cond = cond;
	zd->nr_open += is_open(cond);
	zd->nr_active += is_active(cond);
}

/* The condition a sequential zone's write pointer alone gives it. */
static uint8_t cond_of_wp(const struct zoned_dev *zd, uint64_t wp)
{
	if (wp == 0)
		return BLK_ZONE_COND_EMPTY;
	return wp >= zd->zone_cap ? BLK_ZONE_COND_FULL : BLK_ZONE_COND_CLOSED;
}

/*
 * Make room for one more open zone (and active, when @need_active): close
 * an implicitly open zone if the open limit is reached, one with no write
 * in flight if there is one (as a device does, for an implicit or an
 * explicit open).  Lock held.  -ETOOMANYREFS / -EOVERFLOW are the block
 * layer's "open / active zones exceeded".
 */
static int open_room(struct zoned_dev *zd, bool need_active)
{
	struct zone *busy = NULL;

	if (need_active && zd->max_active && zd->nr_active >= zd->max_active)
		return -EOVERFLOW;
	if (!zd->max_open || zd->nr_open < zd->max_open)
		return 0;
	for (unsigned i = zd->nr_conv; i < zd->nr_zones; i++) {
		struct zone *z = &zd->zones[i];

		if (z->cond != BLK_ZONE_COND_IMP_OPEN)
			continue;
		if (!z->writing) {
			set_cond(zd, z, BLK_ZONE_COND_CLOSED);
			return 0;
		}
		busy = busy ? busy : z;
	}
	if (!busy)
		return -ETOOMANYREFS;
	set_cond(zd, busy, BLK_ZONE_COND_CLOSED);
	return 0;
}

/*
 * A sequential zone's file of @size bytes, cut to whole blocks: a write
 * that failed half-way (a full file system) leaves a tail that was never
 * acknowledged, and a write pointer there could take no more writes.
 * Returns the size, -errno.
 */
static int64_t whole_blocks(struct zoned_dev *zd, unsigned zno, uint64_t size)
{
	if (!(size & 4095))
		return (int64_t)size;
	zublk_log(ZUBLK_LOG_WARN, "zone %u: its file ends %llu bytes into a block: cut there",
		  zno, (unsigned long long)(size & 4095));
	if (ftruncate(zd->fds[zno], (off_t)(size & ~4095ULL)))
		return -errno;
	return (int64_t)(size & ~4095ULL);
}

static int zone_truncate(struct zoned_dev *zd, unsigned zno, uint64_t len)
{
	if (ftruncate(zd->fds[zno], (off_t)len)) {
		int ret = -errno;

		zublk_log(ZUBLK_LOG_WARN, "zone %u: truncating its file: %s", zno, strerror(-ret));
		return ret;
	}
	mark_dirty(zd, zno);
	return 0;
}

/*
 * Zone @zno full (@full: zeros up to its capacity, as a finish leaves it)
 * or empty (its file cut to nothing, as a reset leaves it).  Lock held.
 */
static int zone_end(struct zoned_dev *zd, unsigned zno, bool full)
{
	uint64_t wp = full ? zd->zone_cap : 0;
	int ret = zone_truncate(zd, zno, wp);

	if (ret)
		return ret;
	zd->zones[zno].wp = wp;
	set_cond(zd, &zd->zones[zno], full ? BLK_ZONE_COND_FULL : BLK_ZONE_COND_EMPTY);
	return 0;
}

/* Take a write pointer from the zone's file (its size).  Lock held. */
static void zone_resync(struct zoned_dev *zd, unsigned zno)
{
	struct zone *z = &zd->zones[zno];
	struct stat st;
	int64_t size;
	uint8_t cond;
	bool refill;

	z->resync = false;
	if (fstat(zd->fds[zno], &st) || (size = whole_blocks(zd, zno, (uint64_t)st.st_size)) < 0) {
		zublk_log(ZUBLK_LOG_ERR, "zone %u: %s", zno, strerror(errno));
		return;
	}
	z->wp = (uint64_t)size < zd->zone_cap ? (uint64_t)size : zd->zone_cap;
	cond = cond_of_wp(zd, z->wp);
	/* An open zone that is not empty or full stays open. */
	if (cond == BLK_ZONE_COND_CLOSED && is_open(z->cond))
		cond = z->cond;
	/*
	 * Full when its write was admitted, and the host finished it since (a
	 * finished zone does not go back to empty or active without a reset),
	 * or the active slot it gave up is taken now: finished again (zeros up
	 * to its capacity), not active past the limit.
	 */
	refill = cond != BLK_ZONE_COND_FULL && z->cond == BLK_ZONE_COND_FULL &&
		 (z->finished ||
		  (is_active(cond) && zd->max_active && zd->nr_active >= zd->max_active));
	z->finished = false;
	if (refill && !zone_end(zd, zno, true)) {
		zublk_log(ZUBLK_LOG_WARN, "zone %u: a write to its end failed after it was "
			  "finished, or with no zone free to become active: finished again", zno);
		return;
	}
	set_cond(zd, z, cond);
}

/* ------------------------------------------------------------------ init */

static int zone_path(const struct zoned_dev *zd, unsigned zno, bool conv, char *buf,
		     size_t len)
{
	int n = snprintf(buf, len, "%s/%s-%06u", zd->dir, conv ? "cnv" : "seq", zno);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/*
 * Zone files of the other kind, or past the last zone: a different layout.
 * A zone's file missing where later zones have theirs (a larger size adds
 * zones at the end, never in between), or at all for a recovery (the
 * directory not mounted, a mistyped path): the device's zones are not
 * all there, and an empty file in the place of one would lose its data.
 */
static int check_layout(struct zoned_dev *zd, bool recovering)
{
	DIR *d = opendir(zd->dir);
	bool *have = calloc(zd->nr_zones, sizeof(*have));
	unsigned last = 0, n = 0;
	struct dirent *e;
	int ret = 0;

	if (!d || !have) {
		ret = d ? -ENOMEM : -errno;
		zublk_log(ZUBLK_LOG_ERR, "dir '%s': %s", zd->dir, strerror(-ret));
		goto out;
	}
	while (!ret && (e = readdir(d))) {
		unsigned zno;
		char kind[4], end, name[32];

		if (sscanf(e->d_name, "%3[a-z]-%u%c", kind, &zno, &end) != 2 ||
		    (strcmp(kind, "cnv") && strcmp(kind, "seq")))
			continue;
		if (zno >= zd->nr_zones) {
			zublk_log(ZUBLK_LOG_ERR, "dir '%s': holds zone file %s, past the %u zones "
				  "size and zone_size give", zd->dir, e->d_name, zd->nr_zones);
			ret = -EINVAL;
		} else if ((zno < zd->nr_conv) != !strcmp(kind, "cnv")) {
			zublk_log(ZUBLK_LOG_ERR, "dir '%s': holds %s, but conv_zones=%u makes zone "
				  "%u %s", zd->dir, e->d_name, zd->nr_conv, zno,
				  zno < zd->nr_conv ? "conventional" : "sequential");
			ret = -EINVAL;
		} else {
			snprintf(name, sizeof(name), "%s-%06u", kind, zno);
			if (!strcmp(name, e->d_name) && !have[zno]) {
				have[zno] = true;
				n++;
				last = zno > last ? zno : last;
			}
		}
	}
	for (unsigned zno = 0; !ret && n && zno < (recovering ? zd->nr_zones : last); zno++) {
		if (have[zno])
			continue;
		zublk_log(ZUBLK_LOG_ERR, "dir '%s': zone %u's file %s-%06u is missing%s", zd->dir,
			  zno, is_conv(zd, zno) ? "cnv" : "seq", zno,
			  recovering ? ": a recovery needs every zone's file the device had"
				     : ", and later zones' are there (restore it, or remove the "
				       "zone files to start afresh)");
		ret = -ENOENT;
	}
	if (!ret && !n && recovering) {
		zublk_log(ZUBLK_LOG_ERR, "dir '%s': holds no zone files: a recovery needs every "
			  "zone's file the device had (is its file system mounted?)", zd->dir);
		ret = -ENOENT;
	}
out:
	if (d)
		closedir(d);
	free(have);
	return ret;
}

static int open_zone(struct zoned_dev *zd, unsigned zno)
{
	struct zone *z = &zd->zones[zno];
	int flags = O_RDWR | O_CLOEXEC | (zd->buffered ? 0 : O_DIRECT);
	char path[PATH_MAX];
	struct stat st;
	int fd, ret;

	ret = zone_path(zd, zno, is_conv(zd, zno), path, sizeof(path));
	if (ret) {
		zublk_log(ZUBLK_LOG_ERR, "dir '%s': path too long", zd->dir);
		return ret;
	}
	fd = open(path, flags | O_CREAT | O_EXCL, 0600);
	zd->made[zno] = fd >= 0;
	if (fd < 0 && errno == EEXIST)
		fd = zublk_open_nowait(path, flags, 0);
	if (fd < 0) {
		ret = -errno;
		zublk_log(ZUBLK_LOG_ERR, "zone file '%s': %s%s", path, strerror(-ret),
			  ret == -EINVAL && !zd->buffered ? " (no O_DIRECT here: buffered=1)" : "");
		return ret;
	}
	zd->fds[zno] = fd;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		zublk_log(ZUBLK_LOG_ERR, "zone file '%s': not a regular file", path);
		return -EINVAL;
	}
	/* A conventional zone's file holds the zone; a sequential one's, its capacity. */
	uint64_t room = is_conv(zd, zno) ? zd->zone_size : zd->zone_cap;

	if ((uint64_t)st.st_size > room) {
		zublk_log(ZUBLK_LOG_ERR, "zone file '%s': %lld bytes, more than the zone's %s %llu",
			  path, (long long)st.st_size, is_conv(zd, zno) ? "size" : "capacity",
			  (unsigned long long)room);
		return -EINVAL;
	}
	if (is_conv(zd, zno)) {
		/* A conventional zone is all there, holes read as zeros. */
		if ((uint64_t)st.st_size < zd->zone_size && ftruncate(fd, (off_t)zd->zone_size)) {
			ret = -errno;
			zublk_log(ZUBLK_LOG_ERR, "zone file '%s': %s", path, strerror(-ret));
			return ret;
		}
		z->cond = BLK_ZONE_COND_NOT_WP;
		return 0;
	}
	int64_t size = whole_blocks(zd, zno, (uint64_t)st.st_size);

	if (size < 0) {
		zublk_log(ZUBLK_LOG_ERR, "zone file '%s': %s", path, strerror((int)-size));
		return (int)size;
	}
	z->wp = (uint64_t)size;
	set_cond(zd, z, cond_of_wp(zd, z->wp));
	return 0;
}

/*
 * More zones active than max_active: a write that filled a zone gave its
 * active slot away when it was admitted, and the daemon ended before it
 * landed (or the limit is lower than the last time).  The fullest zones
 * are finished (zeros up to their capacity), as zone_resync() does while
 * the device runs.
 */
static int finish_over_limit(struct zoned_dev *zd)
{
	while (zd->max_active && zd->nr_active > zd->max_active) {
		unsigned best = zd->nr_zones;

		for (unsigned i = 0; i < zd->nr_zones; i++)
			if (is_active(zd->zones[i].cond) &&
			    (best == zd->nr_zones || zd->zones[i].wp > zd->zones[best].wp))
				best = i;
		unsigned was = zd->nr_active;
		int ret = zone_end(zd, best, true);

		if (ret)
			return ret;
		zublk_log(ZUBLK_LOG_WARN, "zone %u: %u zones active, more than max_active=%u: "
			  "finished", best, was, zd->max_active);
	}
	return 0;
}

/* Enough descriptors for a file per zone. */
static int fd_room(unsigned need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return -errno;
	if (rl.rlim_cur >= need + 64)
		return 0;
	if (rl.rlim_max < need + 64) {
		zublk_log(ZUBLK_LOG_ERR, "target zoned: %u zone files, but only %llu open files "
			  "allowed (ulimit -n)", need, (unsigned long long)rl.rlim_max);
		return -EMFILE;
	}
	rl.rlim_cur = rl.rlim_max;
	return setrlimit(RLIMIT_NOFILE, &rl) ? -errno : 0;
}

/* An add refused: the zone files it created go (what was there stays). */
static void unmake(struct zoned_dev *zd)
{
	char path[PATH_MAX];

	for (unsigned i = 0; zd->made && i < zd->nr_zones; i++)
		if (zd->made[i] && !zone_path(zd, i, is_conv(zd, i), path, sizeof(path)))
			unlink(path);
}

static void zoned_free(struct zoned_dev *zd)
{
	if (zd->fds)
		for (unsigned i = 0; i < zd->nr_zones; i++)
			if (zd->fds[i] >= 0)
				close(zd->fds[i]);
	if (zd->zeros)
		munmap(zd->zeros, ZUBLK_MAX_MAX_IO_BYTES);
	pthread_mutex_destroy(&zd->lock);
	free(zd->fds);
	free(zd->made);
	free(zd->zones);
	free(zd->dir);
	free(zd);
}

static int get_count(struct zublk_opts *opts, const char *key, unsigned max, unsigned *out)
{
	const char *v = zublk_opts_get(opts, key);

	if (v && zublk_parse_uint(v, 0, max, out)) {
		zublk_log(ZUBLK_LOG_ERR, "%s '%s': not a count from 0 to %u", key, v, max);
		return -EINVAL;
	}
	return 0;
}

static int zoned_opts(struct zoned_dev *zd, struct zublk_opts *opts, const struct zublk_dev *dev,
		      uint64_t *size)
{
	const char *dir = zublk_opts_get(opts, "dir");
	uint64_t copy_max;
	int buffered = -1;
	bool in_memory;
	struct stat st;

	if (!dir || !*dir) {
		zublk_log(ZUBLK_LOG_ERR, "target zoned: needs dir=PATH (a directory for the zone "
			  "files)");
		return -EINVAL;
	}
	if (stat(dir, &st)) {
		zublk_log(ZUBLK_LOG_ERR, "dir '%s': %s", dir, strerror(errno));
		return -EINVAL;
	}
	if (!S_ISDIR(st.st_mode)) {
		zublk_log(ZUBLK_LOG_ERR, "dir '%s': not a directory", dir);
		return -ENOTDIR;
	}
	zd->dir = strdup(dir);
	if (!zd->dir)
		return -ENOMEM;
	if (zublk_opts_get_size(opts, "size", size) || *size == 0) {
		zublk_log(ZUBLK_LOG_ERR, "size '%s': not a size (e.g. 4G)",
			  zublk_opts_get(opts, "size"));
		return -EINVAL;
	}
	if (zublk_opts_get_size(opts, "zone_size", &zd->zone_size) || zd->zone_size < (1 << 20) ||
	    (zd->zone_size & (zd->zone_size - 1)) || zd->zone_size > (1ULL << 40)) {
		zublk_log(ZUBLK_LOG_ERR, "zone_size '%s': not a power of two from 1M to 1T",
			  zublk_opts_get(opts, "zone_size"));
		return -EINVAL;
	}
	const char *dflt_zs = zublk_opts_get(opts, "zone_size") ? "" : " (the default)";

	if (*size % zd->zone_size) {
		zublk_log(ZUBLK_LOG_ERR, "size %llu: not a multiple of zone_size %llu%s",
			  (unsigned long long)*size, (unsigned long long)zd->zone_size, dflt_zs);
		return -EINVAL;
	}
	if (*size / zd->zone_size > ZONED_MAX_ZONES) {
		zublk_log(ZUBLK_LOG_ERR, "size %llu: more than %u zones of zone_size %llu%s",
			  (unsigned long long)*size, ZONED_MAX_ZONES,
			  (unsigned long long)zd->zone_size, dflt_zs);
		return -EINVAL;
	}
	zd->nr_zones = (unsigned)(*size / zd->zone_size);
	zd->zone_cap = zd->zone_size;
	if (zublk_opts_get_size(opts, "zone_capacity", &zd->zone_cap) || !zd->zone_cap ||
	    zd->zone_cap > zd->zone_size || (zd->zone_cap & 4095)) {
		zublk_log(ZUBLK_LOG_ERR, "zone_capacity '%s': not a multiple of 4096 up to "
			  "zone_size %llu", zublk_opts_get(opts, "zone_capacity"),
			  (unsigned long long)zd->zone_size);
		return -EINVAL;
	}
	if (get_count(opts, "conv_zones", ZONED_MAX_ZONES, &zd->nr_conv) ||
	    get_count(opts, "max_open", ZONED_MAX_ZONES, &zd->max_open) ||
	    get_count(opts, "max_active", ZONED_MAX_ZONES, &zd->max_active))
		return -EINVAL;
	if (zd->nr_conv >= zd->nr_zones) {
		zublk_log(ZUBLK_LOG_ERR, "conv_zones %u%s: leaves none of the %u zones sequential",
			  zd->nr_conv, zublk_opts_get(opts, "conv_zones") ? "" : " (the default)",
			  zd->nr_zones);
		return -EINVAL;
	}
	if (zd->max_open > zd->nr_zones - zd->nr_conv ||
	    zd->max_active > zd->nr_zones - zd->nr_conv ||
	    (zd->max_active && zd->max_open > zd->max_active)) {
		zublk_log(ZUBLK_LOG_ERR, "max_open %u, max_active %u: more than the %u sequential "
			  "zones, or more open than active", zd->max_open, zd->max_active,
			  zd->nr_zones - zd->nr_conv);
		return -EINVAL;
	}
	if (zublk_opts_get_tristate(opts, "buffered", &buffered)) {
		zublk_log(ZUBLK_LOG_ERR, "buffered '%s': not 0 or 1",
			  zublk_opts_get(opts, "buffered"));
		return -EINVAL;
	}
	in_memory = zublk_path_in_memory(dir);
	/* In memory O_DIRECT bypasses no cache and only costs (as loop decides). */
	zd->buffered = buffered < 0 ? in_memory : buffered;
	copy_max = in_memory && zd->buffered ? ZONED_DEF_COPY_MAX : 0;
	if (zublk_opts_get_size(opts, "copy_max", &copy_max) || copy_max > ZUBLK_MAX_MAX_IO_BYTES) {
		zublk_log(ZUBLK_LOG_ERR, "copy_max '%s': not a size up to 32M",
			  zublk_opts_get(opts, "copy_max"));
		return -EINVAL;
	}
	if (!zd->buffered && copy_max &&
	    zublk_dev_opt_unused(dev, opts, "copy_max",
				 "only with buffered zone files (buffered=0%s)",
				 buffered < 0 ? ", the default outside memory" : ""))
		return -EINVAL;
	zd->copy_max = zd->buffered ? (uint32_t)copy_max : 0;
	return 0;
}

static int zoned_init(struct zublk_dev *dev, struct zublk_opts *opts,
		      struct zublk_target_geom *geom)
{
	uint64_t size = ZONED_DEF_SIZE;
	unsigned dma_mem = 512;
	struct zoned_dev *zd = calloc(1, sizeof(*zd));
	int ret;

	if (!zd)
		return -ENOMEM;
	pthread_mutex_init(&zd->lock, NULL);
	zd->zone_size = ZONED_DEF_ZONE_SIZE;
	zd->nr_conv = ZONED_DEF_CONV;
	ret = zoned_opts(zd, opts, dev, &size);
	if (ret)
		goto err;
	ret = fd_room(zd->nr_zones);
	if (ret)
		goto err;
	ret = check_layout(zd, zublk_dev_recovering(dev));
	if (ret)
		goto err;
	zd->fds = malloc(zd->nr_zones * sizeof(*zd->fds));
	zd->made = calloc(zd->nr_zones, sizeof(*zd->made));
	zd->zones = calloc(zd->nr_zones, sizeof(*zd->zones));
	if (!zd->fds || !zd->made || !zd->zones) {
		ret = -ENOMEM;
		goto err;
	}
	for (unsigned i = 0; i < zd->nr_zones; i++)
		zd->fds[i] = -1;
	for (unsigned i = 0; i < zd->nr_zones; i++) {
		ret = open_zone(zd, i);
		if (ret)
			goto err;
	}
	/*
	 * O_DIRECT's alignment there, as its file system says, is the device's
	 * (as loop's: whole blocks per segment too).  Nothing refused here: a
	 * file system that says none served before, and so does it now.
	 */
	if (!zd->buffered) {
		struct statx stx;

		if (!statx(zd->fds[0], "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) &&
		    (stx.stx_mask & STATX_DIOALIGN)) {
			dma_mem = stx.stx_dio_mem_align > stx.stx_dio_offset_align
					  ? stx.stx_dio_mem_align : stx.stx_dio_offset_align;
			dma_mem = dma_mem < 512 ? 512 : dma_mem > 4096 ? 4096 : dma_mem;
		}
	}
	/*
	 * Finished at the first queue_init, once the options are all taken (a
	 * refused add finishes no zone).  Not for a new daemon whose requests the
	 * driver reissues: the write that filled a zone comes again and lands
	 * (finished, the zone would refuse it).
	 */
	zd->over_limit = !zublk_dev_recovering(dev) ||
			 !(zublk_dev_info(dev)->flags & UBLK_F_USER_RECOVERY_REISSUE);
	/* Every page of it is the shared zero page: no memory taken. */
	zd->zeros = mmap(NULL, ZUBLK_MAX_MAX_IO_BYTES, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
			 -1, 0);
	if (zd->zeros == MAP_FAILED) {
		zd->zeros = NULL;
		ret = -ENOMEM;
		goto err;
	}
	zd->first_idx = zublk_dev_add_files(dev, zd->fds, zd->nr_zones);
	if (zd->first_idx < 0) {
		ret = zd->first_idx;
		zublk_log(ZUBLK_LOG_ERR, "target zoned: registering %u zone files: %s", zd->nr_zones,
			  strerror(-ret));
		goto err;
	}
	geom->dma_alignment = dma_mem - 1;
	geom->size = size;
	geom->logical_bs_shift = 12;
	geom->physical_bs_shift = 12;
	geom->caps = ZUBLK_CAP_ZONED | ZUBLK_CAP_FLUSH | ZUBLK_CAP_FUA;
	geom->zone_size = zd->zone_size;
	geom->max_open_zones = zd->max_open;
	geom->max_active_zones = zd->max_active;
	/* Reports and reads past the write pointer are copied in. */
	geom->want_copy = true;
	zublk_dev_set_priv(dev, zd);
	return 0;
err:
	unmake(zd);
	zoned_free(zd);
	return ret;
}

static void zoned_exit(struct zublk_dev *dev)
{
	struct zoned_dev *zd = zublk_dev_priv(dev);

	if (!zd)
		return;
	if (!zublk_dev_started(dev))
		unmake(zd);
	zoned_free(zd);
}

static int zoned_queue_init(struct zublk_queue *q)
{
	struct zublk_dev *dev = zublk_queue_dev(q);
	struct zoned_dev *zd = zublk_dev_priv(dev);
	struct zoned_queue *zq = calloc(1, sizeof(*zq));
	uint32_t max_io = zublk_dev_info(dev)->max_io_buf_bytes;
	int ret;

	if (!zq)
		return -ENOMEM;
	pthread_mutex_lock(&zd->lock);
	ret = zd->over_limit ? finish_over_limit(zd) : 0;
	zd->over_limit = false;
	pthread_mutex_unlock(&zd->lock);
	if (ret) {
		free(zq);
		return ret;
	}
	zq->tags = calloc(ZUBLK_MAX_QUEUE_DEPTH, sizeof(*zq->tags));
	/* The user-copy mode copies straight into the daemon's buffer. */
	if (zq->tags && zd->copy_max && zublk_dev_mode(dev) != ZUBLK_MODE_USER_COPY) {
		zq->bounce = malloc(zd->copy_max < max_io ? zd->copy_max : max_io);
		if (!zq->bounce) {
			free(zq->tags);
			zq->tags = NULL;
		}
	}
	if (!zq->tags) {
		free(zq);
		return -ENOMEM;
	}
	zublk_queue_set_priv(q, zq);
	return 0;
}

static void zoned_queue_exit(struct zublk_queue *q)
{
	struct zoned_queue *zq = zublk_queue_priv(q);

	if (!zq)
		return;
	free(zq->tags);
	free(zq->bounce);
	free(zq->report);
	free(zq);
}

/* ------------------------------------------------------------------- IO */

/* A read's file bytes are in @io's data up to @from: zeros for the rest, and done. */
static void read_finish(struct zublk_queue *q, struct zublk_io *io, struct zoned_dev *zd,
			uint32_t from)
{
	int ret = 0;

	if (from < io->len)
		ret = zublk_io_copy(q, io, from, zd->zeros, (uint32_t)io->len - from);
	zublk_io_complete(q, io, ret ? ret : (int)io->len);
}

/*
 * A zone file in memory: move the transfer's bytes left now, in this
 * thread.  True when all of them moved; false leaves the rest to io_uring
 * (t->done says how far it got).
 */
static bool copy_now(struct zublk_queue *q, struct zublk_io *io, struct zoned_dev *zd,
		     unsigned zno, uint64_t zoff, bool write)
{
	struct zoned_queue *zq = zublk_queue_priv(q);
	struct zoned_tag *t = &zq->tags[io->tag];
	uint32_t len = t->want - t->done;
	int fd = zd->fds[zno];
	uint8_t *mem = io->buf ? (uint8_t *)io->buf + t->done : zq->bounce;
	ssize_t n;

	if (len == 0 || len > zd->copy_max || (io->flags & UBLK_IO_F_SHMEM_ZC) ||
	    (!io->buf && (!zq->bounce || !zublk_io_can_copy(q, io))))
		return false;
	if (write) {
		if (!io->buf && zublk_io_copy(q, io, t->done, mem, len))
			return false;
		struct iovec iov = { mem, len };

		n = pwritev2(fd, &iov, 1, (off_t)(zoff + t->done),
			     (io->flags & UBLK_IO_F_FUA) ? RWF_DSYNC : 0);
	} else {
		n = pread(fd, mem, len, (off_t)(zoff + t->done));
		if (n > 0 && !io->buf && zublk_io_copy(q, io, t->done, mem, (uint32_t)n))
			return false;
	}
	if (n > 0)
		t->done += (uint32_t)n;
	/* A read that ends short of what it wanted: the file ends there (zeros). */
	if (!write && n >= 0 && !is_conv(zd, zno))
		t->want = t->done;
	return t->done == t->want;
}

static int submit_rw(struct zublk_queue *q, struct zublk_io *io, struct zoned_dev *zd,
		     unsigned zno, uint64_t zoff, bool write)
{
	struct zoned_tag *t = tag_of(q, io);

	return zublk_io_prep_rw(q, io, write, zd->first_idx + (int)zno, zoff + t->done, t->done,
				t->want - t->done, ZN_RW);
}

static int zoned_read(struct zublk_queue *q, struct zublk_io *io, struct zoned_dev *zd,
		      unsigned zno, uint64_t zoff)
{
	struct zoned_tag *t = tag_of(q, io);
	struct zone *z = &zd->zones[zno];
	uint64_t wp = zd->zone_size;

	if (!is_conv(zd, zno)) {
		pthread_mutex_lock(&zd->lock);
		wp = z->wp;
		pthread_mutex_unlock(&zd->lock);
	}
	t->done = 0;
	t->want = wp > zoff ? (uint32_t)(wp - zoff < io->len ? wp - zoff : io->len) : 0;
	if (t->want == 0 || copy_now(q, io, zd, zno, zoff, false)) {
		read_finish(q, io, zd, t->want);
		return 0;
	}
	if (t->done == 0 && t->want == io->len)
		return zublk_io_prep_rw_commit(q, io, false, zd->first_idx + (int)zno, zoff, 0,
					       t->want, ZN_RW);
	return submit_rw(q, io, zd, zno, zoff, false);
}

/*
 * A WRITE at @zoff of a sequential zone, or a ZONE_APPEND (at its write
 * pointer): check it, open the zone, move the pointer.  Lock held.
 * Returns where in the zone the data goes, or -errno.
 */
static int64_t seq_write_admit(struct zoned_dev *zd, struct zone *z, uint64_t zoff,
			       uint64_t len, bool append)
{
	int ret;

	if (z->cond == BLK_ZONE_COND_FULL)
		return -EIO;
	if (append)
		zoff = z->wp;
	if (zoff != z->wp || len > zd->zone_cap - zoff)
		return -EIO;
	if (z->cond == BLK_ZONE_COND_EMPTY || z->cond == BLK_ZONE_COND_CLOSED) {
		ret = open_room(zd, z->cond == BLK_ZONE_COND_EMPTY);
		if (ret)
			return ret;
		set_cond(zd, z, BLK_ZONE_COND_IMP_OPEN);
	}
	z->wp += len;
	z->writing++;
	if (z->wp == zd->zone_cap)
		set_cond(zd, z, BLK_ZONE_COND_FULL);
	return (int64_t)zoff;
}

/* A zone's write is over (@ok: all of it written). */
static void write_end(struct zoned_dev *zd, unsigned zno, bool ok)
{
	struct zone *z = &zd->zones[zno];

	pthread_mutex_lock(&zd->lock);
	mark_dirty(zd, zno);
	if (!is_conv(zd, zno)) {
		z->writing--;
		if (!ok)
			z->resync = true;
		if (z->resync && !z->writing)
			zone_resync(zd, zno);
		if (!z->writing)
			z->finished = false;
	}
	pthread_mutex_unlock(&zd->lock);
}

static int zoned_write(struct zublk_queue *q, struct zublk_io *io, struct zoned_dev *zd,
		       unsigned zno, uint64_t zoff)
{
	struct zoned_tag *t = tag_of(q, io);
	struct zone *z = &zd->zones[zno];
	int ret;

	t->done = 0;
	t->want = (uint32_t)io->len;
	if (!is_conv(zd, zno)) {
		int64_t at;

		pthread_mutex_lock(&zd->lock);
		at = seq_write_admit(zd, z, zoff, io->len, io->op == UBLK_IO_OP_ZONE_APPEND);
		pthread_mutex_unlock(&zd->lock);
		if (at < 0)
			return (int)at;
		zoff = (uint64_t)at;
		io->append_sector = ((uint64_t)zno * zd->zone_size + zoff) >> 9;
	} else if (io->op == UBLK_IO_OP_ZONE_APPEND) {
		return -EIO;
	}
	if (copy_now(q, io, zd, zno, zoff, true)) {
		write_end(zd, zno, true);
		zublk_io_complete(q, io, (int)io->len);
		return 0;
	}
	ret = submit_rw(q, io, zd, zno, zoff, true);
	if (ret && !is_conv(zd, zno)) {
		pthread_mutex_lock(&zd->lock);
		z->writing--;
		z->resync = true;
		if (!z->writing)
			zone_resync(zd, zno);
		pthread_mutex_unlock(&zd->lock);
	}
	return ret;
}

/* Reset (@finish false) or finish a sequential zone.  Lock held. */
static int zone_set_wp(struct zoned_dev *zd, unsigned zno, bool finish)
{
	struct zone *z = &zd->zones[zno];
	uint64_t wp = finish ? zd->zone_cap : 0;
	int ret;

	/*
	 * There already, or full by writes still out (one may have failed:
	 * resync): a write still out may yet fail, and the zone is finished
	 * again once the last one ends.
	 */
	if ((z->wp == wp && !z->resync) || (finish && z->cond == BLK_ZONE_COND_FULL && z->writing)) {
		z->finished = finish && z->writing;
		/* An empty zone opened explicitly is closed by its reset. */
		set_cond(zd, z, finish ? BLK_ZONE_COND_FULL : BLK_ZONE_COND_EMPTY);
		return 0;
	}
	if (z->writing)
		return -EBUSY;
	ret = zone_end(zd, zno, finish);
	if (ret)
		zone_resync(zd, zno);
	return ret;
}

/* OPEN, CLOSE, FINISH, RESET of the zone at @io's offset.  Lock held. */
static int zone_mgmt(struct zoned_dev *zd, struct zublk_io *io, unsigned zno)
{
	struct zone *z = &zd->zones[zno];
	int ret;

	if (is_conv(zd, zno) || io->offset % zd->zone_size)
		return -EIO;
	switch (io->op) {
	case UBLK_IO_OP_ZONE_OPEN:
		if (z->cond == BLK_ZONE_COND_EXP_OPEN || z->cond == BLK_ZONE_COND_FULL)
			return 0;
		if (z->cond != BLK_ZONE_COND_IMP_OPEN) {
			ret = open_room(zd, z->cond == BLK_ZONE_COND_EMPTY);
			if (ret)
				return ret;
		}
		set_cond(zd, z, BLK_ZONE_COND_EXP_OPEN);
		return 0;
	case UBLK_IO_OP_ZONE_CLOSE:
		if (is_open(z->cond))
			set_cond(zd, z, z->wp ? BLK_ZONE_COND_CLOSED : BLK_ZONE_COND_EMPTY);
		return 0;
	case UBLK_IO_OP_ZONE_FINISH:
		return zone_set_wp(zd, zno, true);
	default:
		return zone_set_wp(zd, zno, false);
	}
}

static int zoned_report(struct zublk_queue *q, struct zublk_io *io, struct zoned_dev *zd,
			unsigned zno)
{
	struct zoned_queue *zq = zublk_queue_priv(q);
	unsigned nr = (unsigned)(io->len / sizeof(struct blk_zone));
	uint64_t zsec = zd->zone_size >> 9;
	unsigned n = 0;
	int ret;

	/* From the zone that holds @io->offset (blkzone report -o takes any sector). */
	if (zq->report_len < io->len) {
		struct blk_zone *r = realloc(zq->report, io->len);

		if (!r)
			return -ENOMEM;
		zq->report = r;
		zq->report_len = io->len;
	}
	memset(zq->report, 0, io->len);
	pthread_mutex_lock(&zd->lock);
	for (; n < nr && zno + n < zd->nr_zones; n++) {
		const struct zone *z = &zd->zones[zno + n];
		struct blk_zone *r = &zq->report[n];

		r->start = (zno + n) * zsec;
		r->len = zsec;
		r->capacity = is_conv(zd, zno + n) ? zsec : zd->zone_cap >> 9;
		r->cond = z->cond;
		if (is_conv(zd, zno + n)) {
			r->type = BLK_ZONE_TYPE_CONVENTIONAL;
			r->wp = r->start + zsec;
		} else {
			r->type = BLK_ZONE_TYPE_SEQWRITE_REQ;
			r->wp = z->cond == BLK_ZONE_COND_FULL ? r->start + zsec
							      : r->start + (z->wp >> 9);
		}
	}
	pthread_mutex_unlock(&zd->lock);
	ret = zublk_io_copy(q, io, 0, zq->report, (uint32_t)io->len);
	if (ret)
		return ret;
	zublk_io_complete(q, io, (int)io->len);
	return 0;
}

/*
 * Sync every zone written since the last FLUSH, and every zone whose sync
 * another FLUSH has in flight (this one must not be done before that is):
 * one look at the counts when there are none, one lock round over the
 * zones when there are.
 */
static int zoned_flush(struct zublk_queue *q, struct zublk_io *io, struct zoned_dev *zd)
{
	struct zoned_tag *t = tag_of(q, io);

	t->pending = 0;
	t->error = 0;
	pthread_mutex_lock(&zd->lock);
	for (unsigned i = 0, left = zd->nr_dirty + zd->nr_syncing; i < zd->nr_zones && left; i++) {
		struct zone *z = &zd->zones[i];
		struct io_uring_sqe *sqe;

		if (!z->dirty && !z->syncing)
			continue;
		left -= z->dirty + !!z->syncing;
		sqe = zublk_queue_get_sqe(q);
		if (!sqe) {
			t->error = -EBUSY;
			break;
		}
		zd->nr_dirty -= z->dirty;
		z->dirty = false;
		zd->nr_syncing += !z->syncing++;
		io_uring_prep_fsync(sqe, zd->first_idx + (int)i, IORING_FSYNC_DATASYNC);
		sqe->flags |= IOSQE_FIXED_FILE;
		zublk_io_sqe_mark(q, io, sqe, i);
		t->pending++;
	}
	pthread_mutex_unlock(&zd->lock);
	if (!t->pending)
		zublk_io_complete(q, io, t->error);
	return 0;
}

static int zoned_queue_io(struct zublk_queue *q, struct zublk_io *io)
{
	struct zoned_dev *zd = zublk_dev_priv(zublk_queue_dev(q));
	unsigned zno = (unsigned)(io->offset / zd->zone_size);
	uint64_t zoff = io->offset % zd->zone_size;
	int ret;

	if (zno >= zd->nr_zones && io->op != UBLK_IO_OP_FLUSH &&
	    io->op != UBLK_IO_OP_ZONE_RESET_ALL)
		return -EINVAL;
	switch (io->op) {
	case UBLK_IO_OP_READ:
	case UBLK_IO_OP_WRITE:
	case UBLK_IO_OP_ZONE_APPEND:
		/* The block layer splits requests at zone boundaries. */
		if (io->len > zd->zone_size - zoff)
			return -EIO;
		if (io->op == UBLK_IO_OP_READ)
			return zoned_read(q, io, zd, zno, zoff);
		return zoned_write(q, io, zd, zno, zoff);
	case UBLK_IO_OP_FLUSH:
		return zoned_flush(q, io, zd);
	case UBLK_IO_OP_REPORT_ZONES:
		return zoned_report(q, io, zd, zno);
	case UBLK_IO_OP_ZONE_RESET_ALL:
		ret = 0;
		pthread_mutex_lock(&zd->lock);
		for (unsigned i = zd->nr_conv; i < zd->nr_zones && !ret; i++)
			ret = zone_set_wp(zd, i, false);
		pthread_mutex_unlock(&zd->lock);
		break;
	case UBLK_IO_OP_ZONE_OPEN:
	case UBLK_IO_OP_ZONE_CLOSE:
	case UBLK_IO_OP_ZONE_FINISH:
	case UBLK_IO_OP_ZONE_RESET:
		pthread_mutex_lock(&zd->lock);
		ret = zone_mgmt(zd, io, zno);
		pthread_mutex_unlock(&zd->lock);
		break;
	default:
		return -EOPNOTSUPP;
	}
	zublk_io_complete(q, io, ret);
	return 0;
}

static void rw_done(struct zublk_queue *q, struct zublk_io *io, struct zoned_dev *zd,
		    struct zoned_tag *t, int res)
{
	unsigned zno = (unsigned)(io->offset / zd->zone_size);
	uint64_t zoff = io->offset % zd->zone_size;
	bool write = io->op != UBLK_IO_OP_READ;
	int ret;

	if (write && io->op == UBLK_IO_OP_ZONE_APPEND)
		zoff = (io->append_sector << 9) - (uint64_t)zno * zd->zone_size;
	if (res > 0)
		t->done += (uint32_t)res;
	if (!write && res == 0 && !is_conv(zd, zno)) {
		/* The zone's file ends short of where its write pointer was: zeros. */
		t->want = t->done;
	} else if (res <= 0) {
		if (write)
			write_end(zd, zno, false);
		zublk_io_complete(q, io, res < 0 ? res : -EIO);
		return;
	}
	if (t->done < t->want) {
		ret = submit_rw(q, io, zd, zno, zoff, write);
		if (!ret)
			return;
		if (write)
			write_end(zd, zno, false);
		zublk_io_complete(q, io, ret);
		return;
	}
	if (write) {
		write_end(zd, zno, true);
		zublk_io_complete(q, io, (int)io->len);
		return;
	}
	read_finish(q, io, zd, t->want);
}

static void zoned_io_done(struct zublk_queue *q, struct zublk_io *io, unsigned sub, int res)
{
	struct zoned_dev *zd = zublk_dev_priv(zublk_queue_dev(q));
	struct zoned_tag *t = tag_of(q, io);

	if (io->op != UBLK_IO_OP_FLUSH) {
		rw_done(q, io, zd, t, res);
		return;
	}
	/* The fsync of zone @sub. */
	pthread_mutex_lock(&zd->lock);
	zd->nr_syncing -= !--zd->zones[sub].syncing;
	/* Not known to be on disk: the next FLUSH syncs it again. */
	if (res < 0)
		mark_dirty(zd, sub);
	pthread_mutex_unlock(&zd->lock);
	if (res < 0 && !t->error)
		t->error = res;
	if (--t->pending == 0)
		zublk_io_complete(q, io, t->error);
}

/* The device's shape; its zones' state is what a zone report gives. */
static void zoned_status(struct zublk_dev *dev, FILE *json)
{
	struct zoned_dev *zd = zublk_dev_priv(dev);

	if (!zd)
		return;
	fprintf(json, ",\"dir\":");
	zublk_json_str(json, zd->dir);
	fprintf(json, ",\"zone_size\":%llu,\"zone_capacity\":%llu,\"zones\":%u,\"conv_zones\":%u,"
		"\"max_open\":%u,\"max_active\":%u,\"buffered\":%s,\"copy_max\":%u",
		(unsigned long long)zd->zone_size, (unsigned long long)zd->zone_cap, zd->nr_zones,
		zd->nr_conv, zd->max_open, zd->max_active, zd->buffered ? "true" : "false",
		zd->copy_max);
}

const struct zublk_target_ops zublk_zoned_ops = {
	.name = "zoned",
	.summary = "a host-managed zoned device, a file per zone (zloop's layout)",
	.usage = "dir=PATH  size=SIZE (default 16G)  zone_size=SIZE (default 256M)  "
		 "zone_capacity=SIZE (default: zone_size)  "
		 "conv_zones=N (default 8)  max_open=N  max_active=N (default 0: no limit)  "
		 "buffered=0|1 (default: O_DIRECT, buffered on tmpfs)  "
		 "copy_max=SIZE (tmpfs: requests copied in the queue thread; default 64k)",
	.modes = ZUBLK_MODE_BIT(ZUBLK_MODE_USER_COPY) | ZUBLK_MODE_BIT(ZUBLK_MODE_ZERO_COPY),
	.prefer_modes = ZUBLK_MODE_BIT(ZUBLK_MODE_ZERO_COPY),
	.init = zoned_init,
	.exit = zoned_exit,
	.queue_init = zoned_queue_init,
	.queue_exit = zoned_queue_exit,
	.queue_io = zoned_queue_io,
	.io_done = zoned_io_done,
	.status = zoned_status,
};
