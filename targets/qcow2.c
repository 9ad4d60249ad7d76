// SPDX-License-Identifier: MIT
/*
 * qcow2: a qcow2 image (version 2 or 3, as qemu-img makes them), with its
 * chain of backing files (qcow2 or raw).
 *
 * Data moves by fixed-buffer reads and writes of the request's own pages
 * (zublk_io_prep_rw()) wherever a cluster is allocated; zeros, compressed
 * clusters and the parts of a new cluster a write does not cover go through
 * the daemon (zublk_io_copy(), pread/pwrite).  The metadata (L1 table,
 * cached L2 tables, refcount table and blocks) is kept in memory and written
 * through to the image before a request completes, so a new daemon
 * (recover, upgrade) finds everything the old one did.
 *
 * A write to a cluster that is not allocated (or is compressed, or zero, or
 * shared) gets a new cluster appended to the image: its refcount and the
 * rest of the cluster (from the backing, zeros, or the old data) are written
 * at once, the request's data by io_uring; then one fdatasync (shared by
 * every request of the queue whose data is down by then), and only then
 * the L2 entry.  A write into a cluster that reads zeros (nothing under it,
 * in a file) skips that fdatasync: it takes a cluster from a reserve
 * appended ahead, a run whose refcounts and the file's new size were synced
 * once for all of it (the next run's sync runs on a queue's ring while
 * this one is used), and a cluster there reads zeros until the data is
 * down (on a file system that shows no stale blocks after a crash: ext4's
 * default data=ordered, XFS, btrfs).  A power loss can so leak clusters
 * (those being written, and the unused part of the reserve) but never
 * leave an L2 entry pointing at a cluster with refcount 0, or at anything
 * but the data written or what the guest cluster read before.
 * Clusters no longer referenced (discard, write zeroes, a rewritten
 * compressed cluster) have their refcounts dropped at the next FLUSH (after
 * its fdatasync made the L2 change durable) and at exit, and are punched
 * out of the file.
 * A freed cluster is handed out again (before the end of the file grows)
 * once every read or write that mapped before it was freed is done.
 *
 * Several queue threads share one image: one mutex guards the metadata.  A
 * write to a cluster whose allocation by another request is still in
 * flight waits (a short io_uring timeout, then it looks again).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "zublk.h"

#define QCOW2_MAGIC 0x514649fbU	/* "QFI\xfb" */
#define QCOW2_MAX_CHAIN 16
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21

#define L1E_OFFSET_MASK 0x00fffffffffffe00ULL
#define L2E_OFFSET_MASK 0x00fffffffffffe00ULL
#define OFLAG_COPIED (1ULL << 63)
#define OFLAG_COMPRESSED (1ULL << 62)
#define OFLAG_ZERO 1ULL

#define INCOMPAT_DIRTY (1ULL << 0)
#define INCOMPAT_CORRUPT (1ULL << 1)
#define INCOMPAT_DATA_FILE (1ULL << 2)
#define INCOMPAT_COMPRESSION (1ULL << 3)
#define INCOMPAT_EXTL2 (1ULL << 4)

#define EXT_END 0
#define EXT_BACKING_FORMAT 0xe2792acaU

/* The header fields this target reads or writes, by their offsets. */
#define HDR_REFCOUNT_TABLE 48	/* u64 offset, then u32 clusters at 56 */
#define HDR_AUTOCLEAR 88

/* A request's sub values (zublk_io_sqe_mark()). */
enum { SUB_DATA, SUB_FSYNC, SUB_RETRY, SUB_FLUSH };
/*
 * The queue's own op (zublk_queue_sqe_mark()): the sync of the reserve's
 * next run, its sub value the run's number (q2_img.ahead_gen) in 16 bits.
 */
#define QSUB_GEN_MASK ZUBLK_UD_SUB_MAX
#define RETRY_NS 50000

/* A growing array of cluster numbers. */
struct u64s {
	uint64_t *v;
	size_t n, max;
};

struct q2_dev;

struct q2_img {
	char *path;
	int fd;
	int dfd;			/* buffered=0: the same file with O_DIRECT, else -1 */
	int idx;			/* fixed file (dfd if there is one): the data's */
	bool raw;			/* a raw backing file */
	bool ro;
	bool in_memory;
	bool bdev;			/* on a block device: file_end is its size */
	uint64_t bdev_size;		/* that device's size in bytes */
	uint64_t size;			/* virtual size (raw: the file's) */
	unsigned version;
	bool zstd;			/* compressed clusters are zstd's (else deflate's) */
	uint32_t nr_snapshots;		/* internal ones */
	uint64_t snap_offset;		/* their table */
	uint64_t autoclear;		/* the header's autoclear features, cleared once served */
	const struct q2_img *child;	/* the image whose backing this is, or NULL */
	unsigned cluster_bits;
	uint64_t cs;			/* cluster size */
	unsigned l2_bits;		/* log2 of entries per L2 table */
	unsigned rc_bits;		/* bits per refcount */
	unsigned rb_bits;		/* log2 of refcounts per refcount block */
	uint64_t rc_max;
	unsigned csize_shift;		/* compressed descriptors */
	uint32_t l1_size;
	uint64_t l1_offset;
	uint64_t *l1;			/* host order */
	uint64_t rt_offset;
	uint32_t rt_clusters;
	uint64_t rt_entries;
	uint64_t *rt;			/* host order */
	uint8_t **rb;			/* refcount blocks read so far, by table index */
	/* L2 cache: slots of tables (on-disk byte order), by L1 index. */
	unsigned nr_slots;
	int32_t *l1_slot;		/* -1: not cached */
	struct l2_slot {
		int64_t l1_idx;
		uint64_t stamp;
		uint64_t *tab;
		bool corrupt;		/* names metadata or past the end: its IO fails */
	} *slots;
	uint64_t stamp;
	uint64_t next_cluster;		/* where the next cluster is appended */
	uint64_t file_end;		/* bytes the file is known to have */
	/*
	 * A file in memory (tmpfs) is mapped, and data runs are copied in
	 * the queue thread (zublk_backing_copy()) rather than handed to
	 * io_uring, which would give each to a worker thread.
	 */
	struct zublk_backing b;
	struct q2_img *backing;
	/*
	 * The top image's clusters this daemon freed (refcount 0, punched out,
	 * so they read zeros; on a block device write_new() writes the zeros),
	 * oldest first, each with the mapping number (q2_dev.seq) at its
	 * freeing: a cluster is handed out again only once every read or write
	 * that mapped before it was freed is done.
	 */
	struct q2_dev *dev;		/* the top image's device; NULL for a backing */
	struct u64s reuse, reuse_seq;
	size_t reuse_head;
	/* Runs of clusters free (refcount 0, punched) when the image was opened. */
	struct q2_run {
		uint64_t c, n;
	} *free_runs;
	size_t nr_free_runs, free_head;
	/*
	 * Clusters [res_next, res_end), appended with refcount 1 and synced
	 * with the file's new size: for writes into clusters that read zeros
	 * when no freed cluster is ready (see write_new()), whose L2 entries
	 * so need no fdatasync of their own.  The next run, [ahead,
	 * ahead_end), is appended as this one is first used, and its
	 * fdatasync runs on a queue's ring meanwhile (ahead_ready when it is
	 * back; ahead_gen numbers the runs, so that a sync's completion
	 * finds its own).  What is left of both goes back at exit.
	 */
	uint64_t res_next, res_end;
	uint64_t ahead, ahead_end;
	unsigned ahead_gen;
	bool ahead_ready;
	unsigned res_scale;		/* runs are this many times the first one's size */
	unsigned ahead_errs;		/* sync_errors when the next run was made */
	int sync_err;			/* a failed sync's error, for the next FLUSH (atomic) */
	/*
	 * Failed syncs so far, any (atomic).  The file tells of a failed
	 * writeback once, to whichever sync comes first: a run of the
	 * reserve is trusted only if none failed since it was made.
	 */
	unsigned sync_errors;
};

/* One line naming the image and what is wrong with it. */
#define BAD(img, ...)                                                             \
	do {                                                                      \
		char m_[256];                                                     \
		snprintf(m_, sizeof(m_), __VA_ARGS__);                            \
		zublk_log(ZUBLK_LOG_ERR, "qcow2: '%s': %s", (img)->path, m_); \
	} while (0)

struct q2_dev {
	pthread_mutex_t lock;
	struct q2_img *top;
	/* Guest clusters of the top image whose new cluster is being written. */
	struct u64s pending;
	/* Host clusters (top image) to drop at the next flush. */
	struct u64s frees;
	int zero_idx;			/* /dev/zero, for zero-copy without user copy */
	int zero_fd;
	bool direct;			/* buffered=0 (open_direct()) */
	unsigned align;			/* the device's logical block, bytes */
	/* Mappings of reads and writes, numbered; each queue's tags hold theirs. */
	uint64_t seq;
	uint64_t exited_min;		/* the oldest a queue that ended still held */
	struct q2_queue **queues;
	unsigned nr_queues;
	/* A shrink's new end: a write, discard or write zeroes past it fails. */
	uint64_t limit;
};

struct q2_alloc {
	uint64_t guest;			/* guest cluster */
	uint64_t host;			/* new host cluster offset */
	uint64_t old;			/* the L2 entry it replaces */
	bool reserved;			/* from the reserve: no fdatasync before its L2 entry */
};

struct q2_tag {
	struct zublk_io *io;
	/*
	 * The q2_dev.seq of this request's mapping while its data ops may be
	 * in flight, else 0 (atomic: other queues read it; this queue's
	 * thread alone writes it).  A data op linked to its commit tells its
	 * end by ->io_note().
	 */
	uint64_t seq;
	unsigned inflight;
	int err;
	uint64_t expect, done;		/* bytes of the data ops */
	unsigned nr_allocs;
	struct q2_alloc *allocs;
	struct u64s frees;		/* a FLUSH's share of the frees */
	struct __kernel_timespec ts;
};

struct q2_queue {
	struct q2_tag *tags;
	unsigned depth;
	/*
	 * One fdatasync for every request whose new clusters' data is down by
	 * the time it starts: the tags it covers, and those waiting for the next.
	 */
	bool syncing;
	uint16_t *batch, *wait;
	unsigned nr_batch, nr_wait;
	uint8_t *cbuf;			/* an inflated cluster (the chain's largest) */
	uint8_t *zbuf;			/* a compressed cluster's bytes */
	uint8_t *cow;			/* a new cluster's old content (the top's size) */
	uint8_t *zeros;
	size_t zeros_len;
	z_stream zs;
	bool zs_ready;
	ZSTD_DCtx *zd;			/* for a zstd image's clusters, made at the first */
};

static uint64_t be64(const void *p)
{
	const uint8_t *b = p;
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

static uint32_t be32(const void *p)
{
	const uint8_t *b = p;

	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static void put_be64(void *p, uint64_t v)
{
	uint8_t *b = p;

	for (int i = 7; i >= 0; i--, v >>= 8)
		b[i] = (uint8_t)v;
}

static void put_be32(void *p, uint32_t v)
{
	uint8_t *b = p;

	b[0] = (uint8_t)(v >> 24);
	b[1] = (uint8_t)(v >> 16);
	b[2] = (uint8_t)(v >> 8);
	b[3] = (uint8_t)v;
}

/* pread/pwrite all of it: 0, or -errno (-EIO for a short one). */
static int pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	ssize_t n = pread(fd, buf, len, (off_t)off);

	if (n == (ssize_t)len)
		return 0;
	return n < 0 ? -errno : -EIO;
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	ssize_t n = pwrite(fd, buf, len, (off_t)off);

	if (n == (ssize_t)len)
		return 0;
	return n < 0 ? -errno : -ENOSPC;
}

/* A sync failed with @err; @keep: the next FLUSH fails too. */
static void sync_failed(struct q2_img *img, int err, bool keep)
{
	if (keep)
		__atomic_store_n(&img->sync_err, err, __ATOMIC_RELAXED);
	__atomic_add_fetch(&img->sync_errors, 1, __ATOMIC_RELAXED);
}

/* No sync failed since @errs was read off sync_errors. */
static bool no_sync_failed(struct q2_img *img, unsigned errs)
{
	return __atomic_load_n(&img->sync_errors, __ATOMIC_RELAXED) == errs;
}

static int q2_sync(struct q2_img *img)
{
	int err;

	if (img->in_memory || !fdatasync(img->fd))
		return 0;
	/*
	 * The file tells of a failed writeback once: whatever sync hears of
	 * it (a new table's, the reserve's), the next FLUSH fails too.
	 */
	err = -errno;
	sync_failed(img, err, true);
	return err;
}

/* L1 entries for @size bytes (no overflow near 2^64). */
static uint64_t l1_entries_for(const struct q2_img *img, uint64_t size)
{
	uint64_t span = img->cs * (img->cs / 8);

	return size / span + (size % span != 0);
}

/* ------------------------------------------------------------ refcounts */

static int rb_load(struct q2_img *img, uint64_t rt_idx, uint8_t **out)
{
	uint8_t *b;
	int ret;

	if (img->rb[rt_idx] || !img->rt[rt_idx]) {
		*out = img->rb[rt_idx];
		return 0;
	}
	b = malloc(img->cs);
	if (!b)
		return -ENOMEM;
	ret = pread_all(img->fd, b, img->cs, img->rt[rt_idx]);
	if (ret) {
		free(b);
		zublk_log(ZUBLK_LOG_ERR, "qcow2: '%s': reading a refcount block: %s", img->path,
			  strerror(-ret));
		return ret;
	}
	img->rb[rt_idx] = b;
	*out = b;
	return 0;
}

static uint64_t rb_get(const struct q2_img *img, const uint8_t *b, uint64_t i)
{
	switch (img->rc_bits) {
	case 64:
		return be64(b + i * 8);
	case 32:
		return be32(b + i * 4);
	case 16:
		return (uint64_t)b[i * 2] << 8 | b[i * 2 + 1];
	case 8:
		return b[i];
	default: {
		unsigned per = 8 / img->rc_bits, sh = (unsigned)(i % per) * img->rc_bits;

		return (b[i / per] >> sh) & (uint8_t)img->rc_max;
	}
	}
}

/* Set entry @i of block @b; the bytes that changed are at *@at, *@len. */
static void rb_put(const struct q2_img *img, uint8_t *b, uint64_t i, uint64_t v, size_t *at,
		   size_t *len)
{
	switch (img->rc_bits) {
	case 64:
		put_be64(b + i * 8, v);
		*at = i * 8, *len = 8;
		return;
	case 32:
		put_be32(b + i * 4, (uint32_t)v);
		*at = i * 4, *len = 4;
		return;
	case 16:
		b[i * 2] = (uint8_t)(v >> 8);
		b[i * 2 + 1] = (uint8_t)v;
		*at = i * 2, *len = 2;
		return;
	case 8:
		b[i] = (uint8_t)v;
		*at = i, *len = 1;
		return;
	default: {
		unsigned per = 8 / img->rc_bits, sh = (unsigned)(i % per) * img->rc_bits;
		uint8_t m = (uint8_t)(img->rc_max << sh);

		b[i / per] = (uint8_t)((b[i / per] & ~m) | ((v << sh) & m));
		*at = i / per, *len = 1;
		return;
	}
	}
}

static int rc_get(struct q2_img *img, uint64_t c, uint64_t *v)
{
	uint64_t rt_idx = c >> img->rb_bits;
	uint8_t *b;
	int ret;

	*v = 0;
	if (rt_idx >= img->rt_entries)
		return 0;
	ret = rb_load(img, rt_idx, &b);
	if (ret || !b)
		return ret;
	*v = rb_get(img, b, c & ((1ULL << img->rb_bits) - 1));
	return 0;
}

static int rc_set(struct q2_img *img, uint64_t c, uint64_t v);

/* Make the file at least @end bytes long (only ever longer: see file_end). */
static int grow_file(struct q2_img *img, uint64_t end)
{
	if (end <= img->file_end)
		return 0;
	if (img->bdev)
		return -ENOSPC;
	if (ftruncate(img->fd, (off_t)end))
		return -errno;
	img->file_end = end;
	/* Not mapped that far: its copies go to io_uring. */
	if (img->b.mem)
		zublk_backing_map(&img->b, end);
	return 0;
}

static uint64_t oldest_mapping(struct q2_dev *d);
static int u64s_push(struct u64s *a, uint64_t v);
static int frees_add(struct q2_dev *d, uint64_t c);

/* The oldest cluster this daemon freed can be handed out again. */
static bool reuse_ready(struct q2_img *img)
{
	return img->reuse_head < img->reuse.n &&
	       img->reuse_seq.v[img->reuse_head] < oldest_mapping(img->dev);
}

/* take_cluster() has one inside the file (freed, or free at open). */
static bool cluster_to_reuse(struct q2_img *img)
{
	return reuse_ready(img) || img->free_head < img->nr_free_runs;
}

/*
 * A free cluster, its refcount not yet set: one freed earlier whose last
 * possible user is gone, else the next at the end of the image.
 */
static int take_cluster(struct q2_img *img, uint64_t *c)
{
	uint64_t v;
	int ret;

	while (reuse_ready(img)) {
		*c = img->reuse.v[img->reuse_head++];
		if (img->reuse_head == img->reuse.n)
			img->reuse_head = img->reuse.n = img->reuse_seq.n = 0;
		ret = rc_get(img, *c, &v);
		if (ret)
			return ret;
		/*
		 * Punched again: a write that was in flight at its freeing may
		 * have landed since (on a block device write_new() writes the
		 * zeros).
		 */
		if (v == 0 && (img->bdev ||
			       !fallocate(img->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					  (off_t)(*c << img->cluster_bits), (off_t)img->cs))) {
			if (img->b.mem)
				zublk_backing_forget(&img->b, *c << img->cluster_bits, img->cs);
			return 0;
		}
	}
	while (img->free_head < img->nr_free_runs) {
		struct q2_run *r = &img->free_runs[img->free_head];

		*c = r->c++;
		if (--r->n == 0)
			img->free_head++;
		ret = rc_get(img, *c, &v);
		if (ret || v == 0)
			return ret;
	}
	for (;;) {
		*c = img->next_cluster++;
		ret = rc_get(img, *c, &v);
		if (ret)
			return ret;
		if (v == 0) {
			ret = grow_file(img, (*c + 1) << img->cluster_bits);
			if (ret)
				img->next_cluster--; /* a block device's end */
			return ret;
		}
	}
}

/*
 * A bigger refcount table for @need entries: the new table, and new blocks
 * for whatever part of it and of themselves no block covers yet, go at the
 * end of the file, are written and synced, and only then does the header
 * point at them.
 */
static int rt_grow(struct q2_img *img, uint64_t need)
{
	uint64_t per_cl = img->cs / 8, entries = img->rt_entries, start = img->next_cluster;
	uint64_t old_off = img->rt_offset, old_cl = img->rt_clusters, nb, tc, first, last;
	uint64_t max_entries = (8ULL << 20) / 8, *rt = NULL;
	uint8_t **rb = NULL, *buf = NULL, hdr[12];
	int ret = 0;

	/*
	 * Blocks go at start, the table after them: enough blocks to cover
	 * themselves and the table, and a table with room for them all (no
	 * larger than an open accepts).
	 */
	for (;;) {
		entries = entries * 2 > need + 1 ? entries * 2 : need + 1;
		entries = (entries + per_cl - 1) / per_cl * per_cl;
		if (entries > max_entries)
			entries = max_entries / per_cl * per_cl;
		tc = entries / per_cl;
		nb = 0;
		for (;;) {
			uint64_t want = 0;

			first = start >> img->rb_bits;
			last = (start + nb + tc - 1) >> img->rb_bits;
			for (uint64_t i = first; i <= last; i++)
				if (i >= img->rt_entries || !img->rt[i])
					want++;
			if (want <= nb)
				break;
			nb = want;
		}
		if (last < entries && need < entries)
			break;
		if (entries == max_entries / per_cl * per_cl) {
			ret = -EFBIG;
			goto out;
		}
	}
	/* The blocks in the range that exist, read now: the new arrays share them. */
	for (uint64_t i = first; i <= last && i < img->rt_entries; i++) {
		uint8_t *blk;

		ret = rb_load(img, i, &blk);
		if (ret)
			goto out;
	}
	rt = calloc(entries, sizeof(*rt));
	rb = calloc(entries, sizeof(*rb));
	buf = calloc(1, img->cs);
	if (!rt || !rb || !buf) {
		ret = -ENOMEM;
		goto out;
	}
	memcpy(rt, img->rt, img->rt_entries * sizeof(*rt));
	memcpy(rb, img->rb, img->rt_entries * sizeof(*rb));
	for (uint64_t i = first, b = start; i <= last; i++) {
		if (rt[i])
			continue;
		rb[i] = calloc(1, img->cs);
		if (!rb[i]) {
			ret = -ENOMEM;
			goto out;
		}
		rt[i] = b++ << img->cluster_bits;
	}
	ret = grow_file(img, (start + nb + tc) << img->cluster_bits);
	if (ret)
		goto out; /* a block device's end: nothing written */
	/* Whatever happens now, these clusters are not handed out again. */
	img->next_cluster = start + nb + tc;
	/*
	 * Every new cluster counts once.  An old block changed here is
	 * written at once: a failure after it leaks clusters, nothing more.
	 */
	for (uint64_t c = start; !ret && c < start + nb + tc; c++) {
		size_t at, len;

		rb_put(img, rb[c >> img->rb_bits], c & ((1ULL << img->rb_bits) - 1), 1, &at, &len);
	}
	for (uint64_t i = first; !ret && i <= last; i++)
		ret = pwrite_all(img->fd, rb[i], img->cs, rt[i]);
	for (uint64_t i = 0; !ret && i < entries; i++) {
		put_be64(buf + (i % per_cl) * 8, rt[i]);
		if ((i + 1) % per_cl == 0)
			ret = pwrite_all(img->fd, buf, img->cs,
					 (start + nb + i / per_cl) << img->cluster_bits);
	}
	if (!ret)
		ret = q2_sync(img);
	if (ret)
		goto out;
	put_be64(hdr, (start + nb) << img->cluster_bits);
	put_be32(hdr + 8, (uint32_t)tc);
	ret = pwrite_all(img->fd, hdr, sizeof(hdr), HDR_REFCOUNT_TABLE);
	if (!ret)
		ret = q2_sync(img);
	if (ret)
		goto out;
	/* The header points at the new table: it is the one from now on. */
	free(img->rt), free(img->rb);
	img->rt = rt, img->rb = rb, rt = NULL, rb = NULL;
	img->rt_entries = entries;
	img->rt_offset = (start + nb) << img->cluster_bits;
	img->rt_clusters = (uint32_t)tc;
	/* The old table's clusters are free now. */
	for (uint64_t c = old_off >> img->cluster_bits;
	     !ret && c < (old_off >> img->cluster_bits) + old_cl; c++)
		ret = rc_set(img, c, 0);
out:
	if (rb) /* not installed: the new blocks go, the old ones stay the image's */
		for (uint64_t i = first; i <= last && i < entries; i++)
			if (i >= img->rt_entries || !img->rt[i])
				free(rb[i]);
	free(rt), free(rb), free(buf);
	if (ret)
		zublk_log(ZUBLK_LOG_ERR, "qcow2: '%s': growing the refcount table: %s", img->path,
			  strerror(-ret));
	return ret;
}

/*
 * A new metadata cluster at @at: its contents @buf written and synced, and
 * only then the 8-byte entry @entry that points at it, at @slot.
 */
static int write_then_link(struct q2_img *img, const void *buf, uint64_t at, uint64_t entry,
			   uint64_t slot)
{
	uint8_t ent[8];
	int ret = pwrite_all(img->fd, buf, img->cs, at);

	if (!ret)
		ret = q2_sync(img);
	if (ret)
		return ret;
	put_be64(ent, entry);
	return pwrite_all(img->fd, ent, 8, slot);
}

/* A new refcount block for table index @rt_idx (with its own refcount, wherever that is). */
static int rb_create(struct q2_img *img, uint64_t rt_idx)
{
	uint64_t c;
	uint8_t *b;
	int ret;

	ret = take_cluster(img, &c);
	if (ret)
		return ret;
	b = calloc(1, img->cs);
	if (!b)
		return -ENOMEM;
	if ((c >> img->rb_bits) == rt_idx) {
		size_t at, len;

		rb_put(img, b, c & ((1ULL << img->rb_bits) - 1), 1, &at, &len);
	} else {
		ret = rc_set(img, c, 1);
	}
	if (!ret)
		ret = write_then_link(img, b, c << img->cluster_bits, c << img->cluster_bits,
				      img->rt_offset + rt_idx * 8);
	if (ret) {
		free(b);
		return ret;
	}
	img->rt[rt_idx] = c << img->cluster_bits;
	img->rb[rt_idx] = b;
	return 0;
}

static int rc_set(struct q2_img *img, uint64_t c, uint64_t v)
{
	uint64_t rt_idx = c >> img->rb_bits;
	size_t at, len;
	uint8_t *b;
	int ret;

	if (rt_idx >= img->rt_entries) {
		ret = rt_grow(img, rt_idx);
		if (ret)
			return ret;
	}
	ret = rb_load(img, rt_idx, &b);
	if (ret)
		return ret;
	if (!b) {
		ret = rb_create(img, rt_idx);
		if (ret)
			return ret;
		b = img->rb[rt_idx];
	}
	rb_put(img, b, c & ((1ULL << img->rb_bits) - 1), v, &at, &len);
	return pwrite_all(img->fd, b + at, len, img->rt[rt_idx] + at);
}

/*
 * The clusters inside the file that are free when it is opened (a discard
 * by an earlier daemon, or by qemu), punched out so that they read zeros as
 * a new cluster does, for take_cluster() to hand out.  One that cannot be
 * punched is left alone.
 */
static int find_free(struct q2_img *img)
{
	uint64_t end = img->bdev ? img->next_cluster : img->file_end >> img->cluster_bits, v;
	size_t max = 0;

	for (uint64_t c = 0, c0; c < end; c++) {
		int ret = rc_get(img, c, &v);

		if (ret)
			return ret;
		if (v)
			continue;
		for (c0 = c; c + 1 < end; c++) {
			ret = rc_get(img, c + 1, &v);
			if (ret)
				return ret;
			if (v)
				break;
		}
		if (fallocate(img->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)(c0 << img->cluster_bits),
			      (off_t)((c - c0 + 1) << img->cluster_bits)) && !img->bdev)
			continue;
		if (img->b.mem)
			zublk_backing_forget(&img->b, c0 << img->cluster_bits,
					     (c - c0 + 1) << img->cluster_bits);
		if (img->nr_free_runs == max) {
			struct q2_run *p;

			max = max ? 2 * max : 16;
			p = realloc(img->free_runs, max * sizeof(*p));
			if (!p)
				return -ENOMEM;
			img->free_runs = p;
		}
		img->free_runs[img->nr_free_runs++] = (struct q2_run){ .c = c0, .n = c - c0 + 1 };
	}
	return 0;
}

/* A new cluster, refcount 1 on the file: its offset in *@off. */
static int alloc_cluster(struct q2_img *img, uint64_t *off)
{
	uint64_t c;
	int ret = take_cluster(img, &c);

	if (!ret)
		ret = rc_set(img, c, 1);
	*off = c << img->cluster_bits;
	return ret;
}

/* @n new clusters in a row, refcount 1 each on the file: the first's offset in *@off. */
static int alloc_run(struct q2_img *img, uint64_t n, uint64_t *off)
{
	uint64_t c0, v;
	int ret;

	for (c0 = img->next_cluster;;) {
		uint64_t c;

		for (c = c0; c < c0 + n; c++) {
			ret = rc_get(img, c, &v);
			if (ret)
				return ret;
			if (v)
				break;
		}
		if (c == c0 + n)
			break;
		c0 = c + 1;
	}
	ret = grow_file(img, (c0 + n) << img->cluster_bits);
	if (!ret)
		img->next_cluster = c0 + n;
	for (uint64_t c = c0; !ret && c < c0 + n; c++)
		ret = rc_set(img, c, 1);
	*off = c0 << img->cluster_bits;
	return ret;
}

/*
 * A run of the reserve: 2M of clusters, 2 to 64 of them; up to 8 times
 * that once writes outran the syncs (take_reserved()).
 */
#define RESERVE_BYTES (2ULL << 20)
#define RESERVE_MIN 2
#define RESERVE_MAX 64
#define RESERVE_SCALE_MAX 8

static uint64_t reserve_clusters(const struct q2_img *img)
{
	uint64_t n = RESERVE_BYTES >> img->cluster_bits;

	n = n < RESERVE_MIN ? RESERVE_MIN : n > RESERVE_MAX ? RESERVE_MAX : n;
	return n * (img->res_scale ? img->res_scale : 1);
}

/* Clusters [@c, @c + @n) of the reserve, never handed out, are free again: no L2 entry names them. */
static int run_give_back(struct q2_img *img, uint64_t c, uint64_t n)
{
	int ret = 0;

	for (uint64_t i = c; !ret && i < c + n; i++)
		ret = rc_set(img, i, 0); /* on failure the rest leaks: refcount 1, unused */
	return ret;
}

/*
 * Sync the run [@c, @c + @n), made when sync_errors read @errs: 0 once it
 * is durable and no sync failed since it was made (the file tells only one
 * sync of a failed writeback, and that one may not have been this).
 * Otherwise the run is given back and the error returned.
 */
static int run_sync(struct q2_img *img, uint64_t c, uint64_t n, unsigned errs)
{
	int ret = q2_sync(img);

	if (!ret && !no_sync_failed(img, errs))
		ret = -EIO;
	if (ret)
		run_give_back(img, c, n);
	return ret;
}

/*
 * The reserve is in use: append the next run now and have @q's ring sync
 * it, so that no write waits for that sync (a whole run's writes give it
 * time).  Without an SQE it is synced here.  A run that fails to be made
 * leaks what it set (refcounts, never an L2 entry); one whose sync fails
 * is given back.
 */
static void reserve_ahead(struct zublk_queue *q, struct q2_img *img)
{
	uint64_t n = reserve_clusters(img), at;
	struct io_uring_sqe *sqe;
	unsigned errs;

	if (img->ahead_end)
		return;
	errs = __atomic_load_n(&img->sync_errors, __ATOMIC_RELAXED);
	if (alloc_run(img, n, &at))
		return;
	img->ahead_gen++;
	img->ahead_errs = errs;
	sqe = zublk_queue_get_sqe(q);
	if (!sqe) {
		if (run_sync(img, at >> img->cluster_bits, n, errs))
			return;
		img->ahead_ready = true;
	} else {
		io_uring_prep_fsync(sqe, img->idx, IORING_FSYNC_DATASYNC);
		sqe->flags |= IOSQE_FIXED_FILE;
		zublk_queue_sqe_mark(q, sqe, img->ahead_gen & QSUB_GEN_MASK);
		img->ahead_ready = false;
	}
	img->ahead = at >> img->cluster_bits;
	img->ahead_end = img->ahead + n;
}

/*
 * A new cluster for a write into a guest cluster that read zeros: from the
 * reserve.  Its refcount is 1 and durable, and it reads zeros (the file's
 * end grew over it), so the write's L2 entry can follow its data without a
 * sync of its own.  The first run is made (and synced) here; the next ones
 * ahead of need.  A next run whose sync is not back yet when it is needed
 * is synced here (as if it had not been made ahead), and the runs after it
 * are made twice as big, so that their syncs have the time.
 */
static int take_reserved(struct zublk_queue *q, struct q2_img *img, uint64_t *off)
{
	if (img->res_next == img->res_end && img->ahead_end) {
		if (!img->ahead_ready) {
			int ret = run_sync(img, img->ahead, img->ahead_end - img->ahead,
					   img->ahead_errs);

			if (ret) {
				img->ahead = img->ahead_end = 0;
				return ret;
			}
			img->ahead_ready = true;
			if (img->res_scale < RESERVE_SCALE_MAX)
				img->res_scale = img->res_scale ? 2 * img->res_scale : 2;
		}
		img->res_next = img->ahead;
		img->res_end = img->ahead_end;
		img->ahead = img->ahead_end = 0;
	}
	if (img->res_next == img->res_end) {
		uint64_t n = reserve_clusters(img), at;
		unsigned errs = __atomic_load_n(&img->sync_errors, __ATOMIC_RELAXED);
		int ret = alloc_run(img, n, &at);

		/* One not made leaks what it set (refcounts, never an L2 entry); one not synced goes back. */
		if (!ret)
			ret = run_sync(img, at >> img->cluster_bits, n, errs);
		if (ret)
			return ret;
		img->res_next = at >> img->cluster_bits;
		img->res_end = img->res_next + n;
	}
	*off = img->res_next++ << img->cluster_bits;
	reserve_ahead(q, img);
	return 0;
}

/* Run @gen's fdatasync is back (the image's lock held). */
static void ahead_synced(struct q2_img *img, unsigned gen, int res)
{
	if (res < 0) {
		sync_failed(img, res, true);
		zublk_log(ZUBLK_LOG_WARN, "qcow2: '%s': syncing new clusters: %s", img->path,
			  strerror(-res));
	}
	/* Not the next run's (that one was synced when needed, and is in use): nothing more. */
	if (!img->ahead_end || img->ahead_ready || gen != (img->ahead_gen & QSUB_GEN_MASK))
		return;
	/* Its sync, and none failed meanwhile (another may have heard of its failure). */
	if (res >= 0 && no_sync_failed(img, img->ahead_errs)) {
		img->ahead_ready = true;
		return;
	}
	run_give_back(img, img->ahead, img->ahead_end - img->ahead);
	img->ahead = img->ahead_end = 0;
}

/*
 * The reserve's unused clusters (and the next run's) are free again; the
 * file ends before them if they end it.
 */
static int reserve_give_back(struct q2_img *img)
{
	uint64_t end = img->file_end >> img->cluster_bits, cut = end;
	int ret = run_give_back(img, img->res_next, img->res_end - img->res_next);

	if (!ret)
		ret = run_give_back(img, img->ahead, img->ahead_end - img->ahead);
	/* The runs at the end of the file, nothing after them (the next run is the later one). */
	if (img->ahead < img->ahead_end && img->ahead_end == cut)
		cut = img->ahead;
	if (img->res_next < img->res_end && img->res_end == cut)
		cut = img->res_next;
	/* Their refcounts durable first: no counted cluster past the end. */
	if (!ret && cut < end && end << img->cluster_bits == img->file_end &&
	    img->next_cluster == end && !q2_sync(img) &&
	    !ftruncate(img->fd, (off_t)(cut << img->cluster_bits))) {
		img->file_end = cut << img->cluster_bits;
		img->next_cluster = cut;
	}
	img->res_next = img->res_end = 0;
	img->ahead = img->ahead_end = 0;
	return ret;
}

/* Drop one reference to host cluster @c; at 0 its space goes back to the file system. */
static int rc_drop(struct q2_img *img, uint64_t c)
{
	uint64_t v;
	int ret = rc_get(img, c, &v);

	if (ret)
		return ret;
	if (v == 0) {
		zublk_log(ZUBLK_LOG_WARN, "qcow2: '%s': cluster %llu freed twice", img->path,
			  (unsigned long long)c);
		return 0;
	}
	ret = rc_set(img, c, v - 1);
	if (!ret && v == 1) {
		bool punched = !fallocate(img->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					  (off_t)(c << img->cluster_bits), (off_t)img->cs);

		if (img->b.mem)
			zublk_backing_forget(&img->b, c << img->cluster_bits, img->cs);
		/* Reused if it reads zeros, as a file's new cluster does (see write_new()). */
		if ((punched || img->bdev) && img->dev && !u64s_push(&img->reuse, c) &&
		    u64s_push(&img->reuse_seq, img->dev->seq))
			img->reuse.n--;
	}
	return ret;
}

/* ------------------------------------------------------------ L1 / L2 */

/*
 * Why a cluster at @off that an L2 table at @l2_off (or the L1 table, @l2_off
 * 0) names cannot hold data, or NULL: not a cluster's start, or the
 * header's, the L1 or refcount table's, the table's own, or past the
 * file's end.  A write in place there would overwrite the image's metadata
 * (or be cut off by the next cluster appended).  Refcount blocks and other
 * tables are not looked for.
 */
static const char *not_data(const struct q2_img *img, uint64_t off, uint64_t l2_off)
{
	uint64_t cs = img->cs, l1_end = img->l1_offset + (uint64_t)img->l1_size * 8;
	uint64_t rt_end = img->rt_offset + (uint64_t)img->rt_clusters * cs;

	if (off & (cs - 1))
		return "not a cluster's start";
	if (off < cs)
		return "the header's cluster";
	if (off + cs > img->l1_offset && off < l1_end)
		return "in the L1 table";
	if (img->rt_clusters && off + cs > img->rt_offset && off < rt_end)
		return "in the refcount table";
	if (off == l2_off)
		return "the L2 table itself";
	if (off >= img->file_end)
		return "past the file's end";
	return NULL;
}

/* A table just read, or its place: -EIO with one line if it names no data. */
static int l2_check(const struct q2_img *img, uint64_t l1_idx, uint64_t off, const uint64_t *tab)
{
	uint64_t per = 1ULL << img->l2_bits;
	const char *why = tab ? NULL : not_data(img, off, 0);

	for (uint64_t i = 0; tab && !why && i < per; i++) {
		uint64_t e = be64toh(tab[i]);

		if (e & OFLAG_COMPRESSED || !(e & L2E_OFFSET_MASK))
			continue;
		why = not_data(img, e & L2E_OFFSET_MASK, off);
		if (why) {
			BAD(img, "the L2 entry of guest offset %llu names host offset %llu, %s: "
				 "a corrupt image, IO to guest offsets %llu-%llu fails",
			    (unsigned long long)((l1_idx * per + i) * img->cs),
			    (unsigned long long)(e & L2E_OFFSET_MASK), why,
			    (unsigned long long)(l1_idx * per * img->cs),
			    (unsigned long long)((l1_idx + 1) * per * img->cs - 1));
			return -EIO;
		}
	}
	if (why) {
		BAD(img, "the L2 table of guest offsets %llu-%llu is at host offset %llu, %s: "
			 "a corrupt image, IO there fails",
		    (unsigned long long)(l1_idx * per * img->cs),
		    (unsigned long long)((l1_idx + 1) * per * img->cs - 1),
		    (unsigned long long)off, why);
		return -EIO;
	}
	return 0;
}

static int l2_table(struct q2_img *img, uint64_t l1_idx, uint64_t **tab)
{
	struct l2_slot *s;
	unsigned victim = 0;
	uint64_t off = img->l1[l1_idx] & L1E_OFFSET_MASK;
	int ret;

	*tab = NULL;
	if (!off)
		return 0;
	if (img->l1_slot[l1_idx] >= 0) {
		s = &img->slots[img->l1_slot[l1_idx]];
		s->stamp = ++img->stamp;
		if (s->corrupt)
			return -EIO;
		*tab = s->tab;
		return 0;
	}
	for (unsigned i = 0; i < img->nr_slots; i++) {
		if (img->slots[i].l1_idx < 0) {
			victim = i;
			break;
		}
		if (img->slots[i].stamp < img->slots[victim].stamp)
			victim = i;
	}
	s = &img->slots[victim];
	if (!s->tab) {
		s->tab = malloc(img->cs);
		if (!s->tab)
			return -ENOMEM;
	}
	if (s->l1_idx >= 0)
		img->l1_slot[s->l1_idx] = -1;
	s->l1_idx = -1;
	s->corrupt = l2_check(img, l1_idx, off, NULL) != 0;
	if (!s->corrupt) {
		ret = pread_all(img->fd, s->tab, img->cs, off);
		if (ret) {
			zublk_log(ZUBLK_LOG_ERR, "qcow2: '%s': reading an L2 table at %llu: %s",
				  img->path, (unsigned long long)off, strerror(-ret));
			return ret;
		}
		s->corrupt = l2_check(img, l1_idx, off, s->tab) != 0;
	}
	/* Kept, said once: its IO fails until it is pushed out. */
	s->l1_idx = (int64_t)l1_idx;
	s->stamp = ++img->stamp;
	img->l1_slot[l1_idx] = (int32_t)victim;
	if (s->corrupt)
		return -EIO;
	*tab = s->tab;
	return 0;
}

/* The L2 entry of guest cluster @g (0 where no table). */
static int l2_get(struct q2_img *img, uint64_t g, uint64_t *e)
{
	uint64_t *tab;
	int ret = l2_table(img, g >> img->l2_bits, &tab);

	*e = 0;
	if (!ret && tab)
		*e = be64(&tab[g & ((1ULL << img->l2_bits) - 1)]);
	return ret;
}

/*
 * The L2 table of @l1_idx is shared with an internal snapshot (its L1 entry
 * lacks COPIED): the active layer takes a copy of its own, written and
 * synced before the L1 entry points at it, and lets go of the old one at
 * the next flush (its refcount, 2 or more, goes down by one once the new
 * link is durable: a crash before leaves a leak, never a loss).  The data
 * clusters keep their counts: the snapshot still reaches them through the
 * old table, the active layer through the copy, whose entries keep their
 * COPIED bits clear, so a write there takes a new cluster (write_new()).
 * The cache slot stays: the copy says what the old table did.
 */
static int l2_unshare(struct q2_img *img, uint64_t l1_idx)
{
	uint64_t old = img->l1[l1_idx] & L1E_OFFSET_MASK, rc, off, *tab;
	void *copy;
	int ret = rc_get(img, old >> img->cluster_bits, &rc);

	if (ret)
		return ret;
	if (rc < 2 || !img->dev) {
		zublk_log(ZUBLK_LOG_ERR, "qcow2: '%s': the L2 table at %llu lacks COPIED but has "
			  "refcount %llu (qemu-img check -r all mends it)", img->path,
			  (unsigned long long)old, (unsigned long long)rc);
		return -EIO;
	}
	ret = l2_table(img, l1_idx, &tab);
	if (ret)
		return ret;
	copy = malloc(img->cs);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, tab, img->cs);
	ret = alloc_cluster(img, &off);
	if (!ret)
		ret = write_then_link(img, copy, off, off | OFLAG_COPIED,
				      img->l1_offset + l1_idx * 8);
	free(copy);
	if (ret)
		return ret;
	img->l1[l1_idx] = off | OFLAG_COPIED;
	return frees_add(img->dev, old >> img->cluster_bits);
}

/* Guest cluster @g's L1 entry has a table of its own (a new one is written, synced, linked). */
static int l2_ensure(struct q2_img *img, uint64_t g)
{
	uint64_t l1_idx = g >> img->l2_bits, off;
	void *z;
	int ret;

	if (img->l1[l1_idx] & L1E_OFFSET_MASK)
		return img->l1[l1_idx] & OFLAG_COPIED ? 0 : l2_unshare(img, l1_idx);
	ret = alloc_cluster(img, &off);
	if (ret)
		return ret;
	z = calloc(1, img->cs);
	if (!z)
		return -ENOMEM;
	ret = write_then_link(img, z, off, off | OFLAG_COPIED, img->l1_offset + l1_idx * 8);
	free(z);
	if (!ret)
		img->l1[l1_idx] = off | OFLAG_COPIED;
	return ret;
}

static int l2_set(struct q2_img *img, uint64_t g, uint64_t e)
{
	uint64_t *tab, old, i = g & ((1ULL << img->l2_bits) - 1);
	int ret = l2_table(img, g >> img->l2_bits, &tab);

	if (ret)
		return ret;
	if (!tab)
		return -EIO;
	old = tab[i];
	put_be64(&tab[i], e);
	ret = pwrite_all(img->fd, &tab[i], 8, (img->l1[g >> img->l2_bits] & L1E_OFFSET_MASK) + i * 8);
	if (ret)
		tab[i] = old;	/* the cache says what the file does */
	return ret;
}

/* --------------------------------------------------------------- frees */

static int u64s_push(struct u64s *a, uint64_t v)
{
	if (a->n == a->max) {
		size_t m = a->max ? a->max * 2 : 64;
		uint64_t *p = realloc(a->v, m * sizeof(*p));

		if (!p)
			return -ENOMEM;
		a->v = p, a->max = m;
	}
	a->v[a->n++] = v;
	return 0;
}

static int frees_add(struct q2_dev *d, uint64_t c)
{
	return u64s_push(&d->frees, c);
}

/* The host clusters entry @e of the top image holds, to drop later. */
static int frees_add_entry(struct q2_dev *d, uint64_t e)
{
	struct q2_img *img = d->top;
	int ret = 0;

	if (e & OFLAG_COMPRESSED) {
		uint64_t off = e & ((1ULL << img->csize_shift) - 1);
		uint64_t nsec = ((e & ~(3ULL << 62)) >> img->csize_shift) + 1;
		uint64_t start = off & ~511ULL, end = start + nsec * 512;

		for (uint64_t c = start >> img->cluster_bits; !ret && c <= (end - 1) >> img->cluster_bits;
		     c++)
			ret = frees_add(d, c);
		return ret;
	}
	if (e & L2E_OFFSET_MASK)
		ret = frees_add(d, (e & L2E_OFFSET_MASK) >> img->cluster_bits);
	return ret;
}

static void frees_drop(struct q2_dev *d, const uint64_t *f, size_t n)
{
	/* One that fails stays counted: a leak, never a loss. */
	for (size_t i = 0; i < n; i++)
		rc_drop(d->top, f[i]);
}

/* The oldest mapping a tag of a running queue still holds (UINT64_MAX: none). */
static uint64_t oldest_tag_mapping(const struct q2_dev *d)
{
	uint64_t min = UINT64_MAX;

	for (unsigned i = 0; i < d->nr_queues; i++) {
		struct q2_queue *qq = d->queues[i];

		for (unsigned j = 0; qq && j < qq->depth; j++) {
			uint64_t v = __atomic_load_n(&qq->tags[j].seq, __ATOMIC_ACQUIRE);

			if (v && v < min)
				min = v;
		}
	}
	return min;
}

/* The number of the oldest mapping a request may still be using (under the lock). */
static uint64_t oldest_mapping(struct q2_dev *d)
{
	uint64_t min = oldest_tag_mapping(d);

	return d->exited_min < min ? d->exited_min : min;
}

static void seq_clear(struct q2_tag *t)
{
	__atomic_store_n(&t->seq, 0, __ATOMIC_RELEASE);
}

/* -------------------------------------------------------- reading data */

/*
 * A zstd cluster, @n bytes in qq->zbuf, into qq->cbuf.  Its length is known
 * only to the sector, so what follows its frame may be anything: the
 * stream is read until the cluster is whole.
 */
static int read_zstd(struct q2_queue *qq, struct q2_img *img, size_t n, uint64_t off)
{
	ZSTD_inBuffer in = { qq->zbuf, n, 0 };
	ZSTD_outBuffer out = { qq->cbuf, img->cs, 0 };
	size_t r = 1;

	if (!qq->zd && !(qq->zd = ZSTD_createDCtx()))
		return -ENOMEM;
	ZSTD_DCtx_reset(qq->zd, ZSTD_reset_session_only);
	while (out.pos < out.size) {
		size_t before = in.pos + out.pos;

		r = ZSTD_decompressStream(qq->zd, &out, &in);
		if (ZSTD_isError(r) || in.pos + out.pos == before)
			break;
	}
	/* The cluster whole and the frame ended with it (0): not less, not more. */
	if (out.pos != out.size || r != 0) {
		zublk_log(ZUBLK_LOG_ERR, "qcow2: '%s': a zstd cluster at %llu does not decompress",
			  img->path, (unsigned long long)off);
		return -EIO;
	}
	return 0;
}

/* Inflate the compressed cluster of entry @e of @img into qq->cbuf. */
static int read_compressed(struct q2_queue *qq, struct q2_img *img, uint64_t e)
{
	uint64_t off = e & ((1ULL << img->csize_shift) - 1);
	uint64_t nsec = ((e & ~(3ULL << 62)) >> img->csize_shift) + 1;
	size_t len = nsec * 512 - (off & 511);
	ssize_t n;
	int zr;

	if (len > 2 * img->cs)
		return -EIO;
	n = pread(img->fd, qq->zbuf, len, (off_t)off);
	if (n <= 0)
		return n < 0 ? -errno : -EIO;
	if (img->zstd)
		return read_zstd(qq, img, (size_t)n, off);
	if (!qq->zs_ready) {
		if (inflateInit2(&qq->zs, -12) != Z_OK)
			return -ENOMEM;
		qq->zs_ready = true;
	} else if (inflateReset2(&qq->zs, -12) != Z_OK) {
		return -EIO;
	}
	qq->zs.next_in = qq->zbuf;
	qq->zs.avail_in = (uInt)n;
	qq->zs.next_out = qq->cbuf;
	qq->zs.avail_out = (uInt)img->cs;
	zr = inflate(&qq->zs, Z_FINISH);
	if ((zr != Z_STREAM_END && zr != Z_BUF_ERROR) || qq->zs.avail_out != 0) {
		zublk_log(ZUBLK_LOG_ERR, "qcow2: '%s': a compressed cluster at %llu does not inflate",
			  img->path, (unsigned long long)off);
		return -EIO;
	}
	return 0;
}

/*
 * Read [@off, @off + @len) of @img's guest data into @buf, now (the old
 * content of a cluster a write replaces), cluster by cluster of @img: a
 * backing's clusters may be smaller than the image's.
 */
static int read_sync(struct q2_queue *qq, struct q2_img *img, uint64_t off, uint8_t *buf,
		     uint64_t len)
{
	uint64_t e, in, n;
	int ret;

	if (!img || off >= img->size) {
		memset(buf, 0, len);
		return 0;
	}
	if (off + len > img->size) {
		memset(buf + (img->size - off), 0, off + len - img->size);
		len = img->size - off;
	}
	if (img->raw)
		return pread_all(img->fd, buf, len, off);
	for (; len; off += n, buf += n, len -= n) {
		in = off & (img->cs - 1);
		n = img->cs - in < len ? img->cs - in : len;
		ret = l2_get(img, off >> img->cluster_bits, &e);
		if (ret)
			return ret;
		if (e & OFLAG_COMPRESSED) {
			ret = read_compressed(qq, img, e);
			if (!ret)
				memcpy(buf, qq->cbuf + in, n);
		} else if (img->version >= 3 && (e & OFLAG_ZERO)) {
			memset(buf, 0, n);
		} else if (e & L2E_OFFSET_MASK) {
			ret = pread_all(img->fd, buf, n, (e & L2E_OFFSET_MASK) + in);
		} else {
			ret = read_sync(qq, img->backing, off, buf, n);
		}
		if (ret)
			return ret;
	}
	return 0;
}

/* ------------------------------------------------------ request pieces */

/* A run of data to move by io_uring, grown while the next piece follows on. */
struct run {
	struct q2_img *img;		/* NULL: /dev/zero */
	int idx;
	uint64_t file_off;
	uint32_t io_off, len;
};

/* The run copied now, for a mapped file; false: it goes to io_uring. */
static bool run_copy(struct zublk_queue *q, struct zublk_io *io, struct run *r)
{
	if (!r->len || !r->img || !r->img->b.mem ||
	    zublk_backing_copy(q, io, &r->img->b, r->file_off, r->io_off, r->len))
		return false;
	r->len = 0;
	return true;
}

static int run_flush(struct zublk_queue *q, struct zublk_io *io, struct run *r, bool write)
{
	struct q2_tag *t = &((struct q2_queue *)zublk_queue_priv(q))->tags[io->tag];
	int ret;

	if (!r->len || run_copy(q, io, r))
		return 0;
	ret = zublk_io_prep_rw(q, io, write, r->idx, r->file_off, r->io_off, r->len, SUB_DATA);
	if (ret)
		return ret;
	t->inflight++;
	t->expect += r->len;
	r->len = 0;
	return 0;
}

static int run_add(struct zublk_queue *q, struct zublk_io *io, struct run *r, bool write,
		   struct q2_img *img, uint64_t file_off, uint32_t io_off, uint32_t len)
{
	struct q2_dev *d = zublk_dev_priv(zublk_queue_dev(q));
	int ret;

	if (r->len && r->img == img && r->file_off + r->len == file_off &&
	    r->io_off + r->len == io_off) {
		r->len += len;
		return 0;
	}
	ret = run_flush(q, io, r, write);
	if (ret)
		return ret;
	*r = (struct run){ .img = img, .idx = img ? img->idx : d->zero_idx, .file_off = file_off,
			   .io_off = io_off, .len = len };
	return 0;
}

/* Zeros into a read's data at @io_off. */
static int fill_zeros(struct zublk_queue *q, struct zublk_io *io, struct run *r,
		      uint32_t io_off, uint32_t len)
{
	struct q2_queue *qq = zublk_queue_priv(q);

	if (!zublk_io_can_copy(q, io))
		return run_add(q, io, r, false, NULL, 0, io_off, len);
	while (len) {
		uint32_t n = len < qq->zeros_len ? len : (uint32_t)qq->zeros_len;
		int ret = zublk_io_copy(q, io, io_off, qq->zeros, n);

		if (ret)
			return ret;
		io_off += n, len -= n;
	}
	return 0;
}

/* Where [@off, @off + @len) of @img's data is, for a read into @io at @io_off. */
static int map_read(struct zublk_queue *q, struct zublk_io *io, struct run *r, struct q2_img *img,
		    uint64_t off, uint32_t io_off, uint32_t len)
{
	struct q2_queue *qq = zublk_queue_priv(q);
	struct q2_dev *d = zublk_dev_priv(zublk_queue_dev(q));
	uint64_t e, in;
	int ret;

	if (!img || off >= img->size)
		return fill_zeros(q, io, r, io_off, len);
	if (off + len > img->size) {
		uint32_t in_img = (uint32_t)(img->size - off);
		/* With O_DIRECT, a last piece shorter than a block is read buffered. */
		uint32_t tail = img->dfd >= 0 ? in_img & (d->align - 1) : 0;

		ret = map_read(q, io, r, img, off, io_off, in_img - tail);
		if (!ret && tail) {
			ret = read_sync(qq, img, off + in_img - tail, qq->cow, tail);
			if (!ret)
				ret = zublk_io_copy(q, io, io_off + in_img - tail, qq->cow, tail);
		}
		if (!ret)
			ret = fill_zeros(q, io, r, io_off + in_img, len - in_img);
		return ret;
	}
	if (img->raw)
		return run_add(q, io, r, false, img, off, io_off, len);
	while (len) {
		uint32_t n;

		in = off & (img->cs - 1);
		n = (uint32_t)(img->cs - in < len ? img->cs - in : len);
		ret = l2_get(img, off >> img->cluster_bits, &e);
		if (ret)
			return ret;
		if (e & OFLAG_COMPRESSED) {
			ret = read_compressed(qq, img, e);
			if (!ret)
				ret = zublk_io_copy(q, io, io_off, qq->cbuf + in, n);
		} else if (img->version >= 3 && (e & OFLAG_ZERO)) {
			ret = fill_zeros(q, io, r, io_off, n);
		} else if (e & L2E_OFFSET_MASK) {
			ret = run_add(q, io, r, false, img, (e & L2E_OFFSET_MASK) + in, io_off, n);
		} else {
			ret = map_read(q, io, r, img->backing, off, io_off, n);
		}
		if (ret)
			return ret;
		off += n, io_off += n, len -= n;
	}
	return 0;
}

static bool is_pending(const struct q2_dev *d, uint64_t g)
{
	for (size_t i = 0; i < d->pending.n; i++)
		if (d->pending.v[i] == g)
			return true;
	return false;
}

static void pending_del(struct q2_dev *d, uint64_t g)
{
	for (size_t i = 0; i < d->pending.n; i++) {
		if (d->pending.v[i] == g) {
			d->pending.v[i] = d->pending.v[--d->pending.n];
			return;
		}
	}
}

/* Past the end a shrink is taking the image to (the kernel sent it before). */
static bool past_limit(const struct q2_dev *d, const struct zublk_io *io)
{
	return io->offset + io->len > d->limit;
}

/* Another request is still writing a new cluster in [@off, @off + @len). */
static bool busy(const struct q2_dev *d, uint64_t off, uint64_t len)
{
	const struct q2_img *img = d->top;

	if (!d->pending.n)
		return false;
	for (uint64_t g = off >> img->cluster_bits; g <= (off + len - 1) >> img->cluster_bits; g++)
		if (is_pending(d, g))
			return true;
	return false;
}

static int retry_later(struct zublk_queue *q, struct zublk_io *io, struct q2_tag *t)
{
	int ret = zublk_io_prep_wait(q, io, &t->ts, RETRY_NS, SUB_RETRY);

	if (!ret)
		t->inflight++;
	return ret;
}

/* Entry @e names a data cluster of the top image's own, written in place. */
static bool own_cluster(uint64_t e)
{
	return (e & L2E_OFFSET_MASK) && (e & OFLAG_COPIED) && !(e & (OFLAG_COMPRESSED | OFLAG_ZERO));
}

/* Entry @e of @img reads as zeros, with nothing under it showing through. */
static bool zero_entry(const struct q2_img *img, uint64_t e)
{
	if (e & OFLAG_COMPRESSED)
		return false;
	if (img->version >= 3 && (e & OFLAG_ZERO))
		return true;
	return !(e & L2E_OFFSET_MASK) && !img->backing;
}

/*
 * A write's piece in guest cluster @g, [@in, @in + @n) of it, whose cluster
 * must be new: take one, write its refcount and the rest of the cluster now,
 * and note the L2 entry to write once the data is down.
 */
static int write_new(struct zublk_queue *q, struct q2_tag *t, uint64_t g, uint64_t e,
		     uint64_t in, uint64_t n, uint64_t *host)
{
	struct q2_queue *qq = zublk_queue_priv(q);
	struct q2_dev *d = zublk_dev_priv(zublk_queue_dev(q));
	struct q2_img *img = d->top;
	uint64_t off = g << img->cluster_bits, cs = img->cs;
	int ret;

	/* It read zeros, and a new cluster of a file does too: nothing to copy in. */
	bool zeros = zero_entry(img, e) && !img->bdev;
	/* ... and none to reuse (the file would grow): a reserved cluster. */
	bool reserved = zeros && !img->in_memory && !cluster_to_reuse(img);

	ret = l2_ensure(img, g);
	if (!ret && reserved && take_reserved(q, img, host))
		reserved = false; /* no reserve: a cluster the usual way */
	if (!ret && !reserved)
		ret = alloc_cluster(img, host);
	if (ret)
		return ret;
	ret = u64s_push(&d->pending, g);
	if (ret)
		return ret;
	t->allocs[t->nr_allocs++] =
		(struct q2_alloc){ .guest = g, .host = *host, .old = e, .reserved = reserved };
	if (in == 0 && n == cs)
		return 0;
	/*
	 * The rest of the cluster as it read before.  A new cluster of a
	 * file reads zeros already (past the end, or punched); one of a
	 * block device holds whatever was there.
	 */
	if (zeros)
		return 0;
	if (zero_entry(img, e)) {
		memset(qq->cow, 0, cs);
	} else if (e & OFLAG_COMPRESSED) {
		ret = read_compressed(qq, img, e);
		if (ret)
			return ret;
		memcpy(qq->cow, qq->cbuf, cs);
	} else if (e & L2E_OFFSET_MASK) {
		ret = pread_all(img->fd, qq->cow, cs, e & L2E_OFFSET_MASK);
	} else {
		ret = read_sync(qq, img->backing, off, qq->cow, cs);
	}
	if (ret)
		return ret;
	if (in)
		ret = pwrite_all(img->fd, qq->cow, in, *host);
	if (!ret && in + n < cs)
		ret = pwrite_all(img->fd, qq->cow + in + n, cs - in - n, *host + in + n);
	return ret;
}

static int q2_write(struct zublk_queue *q, struct zublk_io *io, struct q2_tag *t, struct run *r)
{
	struct q2_dev *d = zublk_dev_priv(zublk_queue_dev(q));
	struct q2_img *img = d->top;
	uint64_t off = io->offset, e, host;
	uint32_t io_off = 0, len = io->len;
	int ret = 0;

	while (len) {
		uint64_t g = off >> img->cluster_bits, in = off & (img->cs - 1);
		uint32_t n = (uint32_t)(img->cs - in < len ? img->cs - in : len);

		ret = l2_get(img, g, &e);
		if (ret)
			break;
		if (own_cluster(e))
			host = e & L2E_OFFSET_MASK;
		else if ((ret = write_new(q, t, g, e, in, n, &host)))
			break;
		ret = run_add(q, io, r, true, img, host + in, io_off, n);
		if (ret)
			break;
		off += n, io_off += n, len -= n;
	}
	return ret;
}

/*
 * Zeros over [@at, @at + @len) of the top image's file, its blocks kept
 * where the file system can (a zeroed range), else written.
 */
static int zero_host(struct q2_queue *qq, struct q2_img *img, uint64_t at, uint64_t len)
{
	if (!img->in_memory &&
	    !fallocate(img->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)at, (off_t)len))
		return 0;
	/* Data, written as data is: with O_DIRECT, no page of it left dirty. */
	while (len) {
		size_t n = len < qq->zeros_len ? len : qq->zeros_len;
		int ret = pwrite_all(img->dfd >= 0 ? img->dfd : img->fd, qq->zeros, n, at);

		if (ret)
			return ret;
		at += n, len -= n;
	}
	return 0;
}

/* How table_clear() treats an entry that is not its new value already. */
enum clear_how {
	CLEAR_ZEROS,	/* entries that read zeros and hold no cluster stay */
	CLEAR_KEEP,	/* every entry that reads zeros stays, with its cluster, and the
			 * image's own data clusters stay and are zeroed in place */
	CLEAR_ALL,	/* every entry becomes the new value (a shrink) */
};

/*
 * An entry table_clear() does nothing with: not a cluster of the image's
 * own to zero in place (CLEAR_KEEP), and the new value already, or zeros
 * with nothing to free or a cluster kept.
 */
static bool clear_keeps(const struct q2_img *img, uint64_t e, uint64_t ne, enum clear_how how)
{
	if (how == CLEAR_KEEP && own_cluster(e))
		return false;
	return e == ne || (how != CLEAR_ALL && zero_entry(img, e) &&
			   (how == CLEAR_KEEP || !(e & L2E_OFFSET_MASK)));
}

/*
 * Entries [@from, @to) of the cached L2 table of @l1_idx become @ne, their
 * clusters to be dropped at the next flush: changed in the cache, then the
 * changed span written in one go.  On error the cache is dropped (it may no
 * longer say what the file does) and the frees forgotten.  @qq: the queue
 * whose zeros CLEAR_KEEP writes (else unused).
 */
static int table_clear(struct q2_dev *d, struct q2_queue *qq, uint64_t l1_idx, uint64_t from,
		       uint64_t to, uint64_t ne, enum clear_how how)
{
	struct q2_img *img = d->top;
	uint64_t lo = to, hi = 0, e, *tab;
	uint64_t run_at = 0, run_len = 0; /* host bytes to zero in place */
	size_t nr_frees = d->frees.n;
	int ret = l2_table(img, l1_idx, &tab);

	if (!ret && !tab)
		ret = -EIO;
	for (uint64_t i = from; !ret && i < to; i++) {
		e = be64(&tab[i]);
		if (how == CLEAR_KEEP && own_cluster(e)) {
			uint64_t h = e & L2E_OFFSET_MASK;

			if (run_len && run_at + run_len != h) {
				ret = zero_host(qq, img, run_at, run_len);
				run_len = 0;
			}
			if (!run_len)
				run_at = h;
			run_len += img->cs;
			continue;
		}
		if (clear_keeps(img, e, ne, how))
			continue;
		put_be64(&tab[i], ne);
		ret = frees_add_entry(d, e);
		lo = i < lo ? i : lo;
		hi = i;
	}
	if (!ret && run_len)
		ret = zero_host(qq, img, run_at, run_len);
	if (!ret && lo <= hi)
		ret = pwrite_all(img->fd, &tab[lo], (hi - lo + 1) * 8,
				 (img->l1[l1_idx] & L1E_OFFSET_MASK) + lo * 8);
	if (ret) {
		if (img->l1_slot[l1_idx] >= 0)
			img->slots[img->l1_slot[l1_idx]].l1_idx = -1;
		img->l1_slot[l1_idx] = -1;
		d->frees.n = nr_frees;
	}
	return ret;
}

/*
 * Whole guest clusters [@first, @end) read zeros afterwards: a zero cluster
 * in a v3 image over a backing, else unallocated, their clusters dropped at
 * the next flush.  With @keep (a WRITE_ZEROES that says NOUNMAP), a data
 * cluster of the image's own stays and is zeroed in place.
 */
static int zero_clusters(struct q2_dev *d, struct q2_queue *qq, uint64_t first, uint64_t end,
			 bool keep)
{
	struct q2_img *img = d->top;
	uint64_t per = 1ULL << img->l2_bits, ne = img->backing ? OFLAG_ZERO : 0, *tab;
	enum clear_how how = keep ? CLEAR_KEEP : CLEAR_ZEROS;
	int ret = 0;

	for (uint64_t g = first, next; g < end && !ret; g = next) {
		uint64_t l1_idx = g >> img->l2_bits, from = g & (per - 1), to, i;

		next = (l1_idx + 1) << img->l2_bits;
		if (next > end)
			next = end;
		to = ((next - 1) & (per - 1)) + 1;
		if (!(img->l1[l1_idx] & L1E_OFFSET_MASK)) {
			if (!img->backing)
				continue; /* no table: unallocated already */
		} else if (!(img->l1[l1_idx] & OFLAG_COPIED)) {
			/* A table a snapshot shares is copied only to change it. */
			ret = l2_table(img, l1_idx, &tab);
			for (i = from; !ret && i < to; i++)
				if (!clear_keeps(img, be64(&tab[i]), ne, how))
					break;
			if (ret || i == to)
				continue;
		}
		ret = l2_ensure(img, g);
		if (!ret)
			ret = table_clear(d, qq, l1_idx, from, to, ne, how);
	}
	return ret;
}

/* DISCARD: whole clusters read zeros afterwards (a v2 image over a backing: none). */
static int q2_discard(struct zublk_queue *q, struct zublk_io *io)
{
	struct q2_dev *d = zublk_dev_priv(zublk_queue_dev(q));
	struct q2_img *img = d->top;

	if (img->backing && img->version < 3)
		return 0;
	return zero_clusters(d, NULL, (io->offset + img->cs - 1) >> img->cluster_bits,
			     (io->offset + io->len) >> img->cluster_bits, false);
}

/*
 * WRITE_ZEROES: whole clusters as DISCARD leaves them (NOUNMAP: the image's
 * own data clusters zeroed in place); a cluster only partly in the range is
 * zeroed in place if it is the image's own, else it gets a new cluster as a
 * write would, whose part in the range reads zeros (a block device's: written).
 */
static int zero_part(struct zublk_queue *q, struct q2_tag *t, uint64_t g, uint64_t in,
		     uint64_t n)
{
	struct q2_dev *d = zublk_dev_priv(zublk_queue_dev(q));
	struct q2_img *img = d->top;
	uint64_t e, host;
	int ret = l2_get(img, g, &e);

	if (ret || zero_entry(img, e))
		return ret;
	if (own_cluster(e))
		return zero_host(zublk_queue_priv(q), img, (e & L2E_OFFSET_MASK) + in, n);
	ret = write_new(q, t, g, e, in, n, &host);
	/* A file's new cluster reads zeros there already; a block device's does not. */
	if (!ret && img->bdev)
		ret = zero_host(zublk_queue_priv(q), img, host + in, n);
	return ret;
}

static int q2_write_zeroes(struct zublk_queue *q, struct zublk_io *io, struct q2_tag *t)
{
	struct q2_dev *d = zublk_dev_priv(zublk_queue_dev(q));
	struct q2_img *img = d->top;
	uint64_t cs = img->cs, off = io->offset, end = off + io->len;
	uint64_t first = (off + cs - 1) >> img->cluster_bits, last = end >> img->cluster_bits;
	int ret = 0;

	if (first > last)
		return zero_part(q, t, last, off & (cs - 1), io->len);
	if (off & (cs - 1))
		ret = zero_part(q, t, first - 1, off & (cs - 1), cs - (off & (cs - 1)));
	if (!ret && (end & (cs - 1)))
		ret = zero_part(q, t, last, 0, end & (cs - 1));
	if (!ret)
		ret = zero_clusters(d, zublk_queue_priv(q), first, last,
				    io->flags & UBLK_IO_F_NOUNMAP);
	return ret;
}

/*
 * Make the L1 table cover @size bytes: a larger one where it needs one,
 * written and synced at the end of the file, then the header's L1 fields
 * in one write, synced; then the old table's clusters go.  The header's
 * size stays: a table larger than the image needs is valid.
 */
static int l1_cover(struct q2_img *img, uint64_t size)
{
	uint64_t need = l1_entries_for(img, size), l1_off, n;
	uint64_t old_off = img->l1_offset, old_n = (img->l1_size * 8ULL + img->cs - 1) / img->cs;
	uint8_t hdr[12];
	uint64_t *l1;
	int32_t *slot;
	uint8_t *buf;
	int ret;

	if (need > (32U << 20) / 8)
		return -EFBIG;
	if (need <= img->l1_size)
		return 0;
	n = (need * 8 + img->cs - 1) / img->cs;
	l1 = realloc(img->l1, need * sizeof(*l1));
	if (l1)
		img->l1 = l1;
	slot = realloc(img->l1_slot, need * sizeof(*slot));
	if (slot)
		img->l1_slot = slot;
	buf = calloc(n, img->cs);
	if (!l1 || !slot || !buf) {
		free(buf);
		return -ENOMEM;
	}
	for (uint64_t i = 0; i < img->l1_size; i++)
		put_be64(buf + i * 8, img->l1[i]);
	ret = alloc_run(img, n, &l1_off);
	if (!ret)
		ret = pwrite_all(img->fd, buf, n * img->cs, l1_off);
	free(buf);
	if (!ret)
		ret = q2_sync(img);
	if (ret)
		return ret;
	/* l1_size, l1_table_offset: bytes 36..47. */
	put_be32(hdr, (uint32_t)need);
	put_be64(hdr + 4, l1_off);
	ret = pwrite_all(img->fd, hdr, sizeof(hdr), 36);
	if (!ret)
		ret = q2_sync(img);
	if (ret)
		return ret;
	for (uint64_t i = img->l1_size; i < need; i++) {
		img->l1[i] = 0;
		img->l1_slot[i] = -1;
	}
	img->l1_size = (uint32_t)need;
	img->l1_offset = l1_off;
	for (uint64_t c = old_off >> img->cluster_bits;
	     !ret && old_n && c < (old_off >> img->cluster_bits) + old_n; c++)
		ret = rc_drop(img, c);
	return ret;
}

static int q2_shrink(struct q2_dev *d, uint64_t size);

/*
 * Grow the image to @size bytes: its L1 table made to cover it, then guest
 * clusters from the old end up to @zero_to become zero clusters, synced, so
 * that a longer backing file's data never shows there (as qemu-img resize
 * does); then the header's size, synced.  On error the size stays, and
 * what was zeroed past it is let go again.
 */
static int q2_grow(struct q2_dev *d, uint64_t size, uint64_t zero_to)
{
	struct q2_img *img = d->top;
	uint64_t old = img->size;
	uint8_t hdr[8];
	int ret = l1_cover(img, size);

	if (ret)
		return ret;
	if (zero_to > old) {
		ret = zero_clusters(d, NULL, old >> img->cluster_bits,
				    (zero_to + img->cs - 1) >> img->cluster_bits, false);
		if (!ret)
			ret = q2_sync(img);
		if (ret) {
			q2_shrink(d, old);
			return ret;
		}
	}
	put_be64(hdr, size);
	ret = pwrite_all(img->fd, hdr, sizeof(hdr), 24);
	if (!ret)
		ret = q2_sync(img);
	if (ret)
		return ret;
	img->size = size;
	return 0;
}

/*
 * Shrink to @size (the device is that small already): the header's size
 * first, then every guest cluster past it lets go of its clusters, which
 * are dropped at the next flush as a discard's are (an L2 table wholly past
 * it goes too), and the image's own cluster across the end has its part
 * past it zeroed.  The L1 table keeps its size.  An error after the header
 * leaves clusters past the end (a warning): the shrink itself stands.
 */
static int q2_shrink(struct q2_dev *d, uint64_t size)
{
	struct q2_img *img = d->top;
	uint64_t per = 1ULL << img->l2_bits, end = (uint64_t)img->l1_size << img->l2_bits;
	uint64_t tail = size & (img->cs - 1), e;
	uint8_t hdr[8] = { 0 };
	int ret;

	put_be64(hdr, size);
	ret = pwrite_all(img->fd, hdr, 8, 24);
	if (!ret)
		ret = q2_sync(img);
	if (ret)
		return ret;
	img->size = size;
	memset(hdr, 0, sizeof(hdr));
	if (tail && !(ret = l2_get(img, size >> img->cluster_bits, &e)) && own_cluster(e)) {
		uint8_t *z = calloc(1, img->cs - tail);

		ret = z ? pwrite_all(img->fd, z, img->cs - tail, (e & L2E_OFFSET_MASK) + tail)
			: -ENOMEM;
		free(z);
	}
	for (uint64_t g = (size + img->cs - 1) >> img->cluster_bits; !ret && g < end;) {
		uint64_t l1_idx = g >> img->l2_bits, *tab;

		if (!(img->l1[l1_idx] & L1E_OFFSET_MASK)) {
			g = (l1_idx + 1) * per;
			continue;
		}
		if (g & (per - 1)) {
			ret = table_clear(d, NULL, l1_idx, g & (per - 1), per, 0, CLEAR_ALL);
			g = (l1_idx + 1) * per;
			continue;
		}
		/* A table wholly past the end: unlinked, then its clusters and itself freed. */
		ret = l2_table(img, l1_idx, &tab);
		if (!ret)
			ret = pwrite_all(img->fd, hdr, 8, img->l1_offset + l1_idx * 8);
		if (ret)
			break;
		for (uint64_t i = 0; !ret && i < per; i++)
			ret = frees_add_entry(d, be64(&tab[i]));
		if (!ret)
			ret = frees_add(d, (img->l1[l1_idx] & L1E_OFFSET_MASK) >> img->cluster_bits);
		img->l1[l1_idx] = 0;
		if (img->l1_slot[l1_idx] >= 0)
			img->slots[img->l1_slot[l1_idx]].l1_idx = -1;
		img->l1_slot[l1_idx] = -1;
		g += per;
	}
	if (!ret)
		ret = q2_sync(img);
	if (ret)
		zublk_log(ZUBLK_LOG_WARN, "qcow2: '%s': shrunk to %llu bytes, but clusters past "
			  "the end stay (%s)", img->path, (unsigned long long)size, strerror(-ret));
	return 0;
}

/* A write that took a new cluster at or past guest cluster @g is not done yet. */
static bool pending_from(const struct q2_dev *d, uint64_t g)
{
	for (size_t i = 0; i < d->pending.n; i++)
		if (d->pending.v[i] >= g)
			return true;
	return false;
}

static int q2_resize(struct zublk_dev *dev, uint64_t size)
{
	struct q2_dev *d = zublk_dev_priv(dev);
	struct q2_img *img = d->top;
	uint64_t seq, zero_to;
	int ret;

	if (img->ro) {
		BAD(img, "served read-only (ro=1): not resized");
		return -EROFS;
	}
	if (img->nr_snapshots) {
		BAD(img, "has %u internal snapshots, sized as it is: not resized (qemu-img "
		    "snapshot -d removes them)", img->nr_snapshots);
		return -EOPNOTSUPP;
	}
	/*
	 * Past the old end the image has no entries: reads there would go to
	 * a longer backing file, whose data would show through where zeros
	 * belong.  Those clusters become zero clusters (as qemu-img resize
	 * does), which a version 2 image has not, nor a cluster across the
	 * old end (part of it the backing's, part zeros).
	 */
	zero_to = size > img->size && img->backing ? img->backing->size : 0;
	zero_to = zero_to < size ? zero_to : size;
	if (zero_to > img->size && (img->version < 3 || (img->size & (img->cs - 1)))) {
		BAD(img, "not grown past %llu bytes: its backing file holds data up to %llu, "
		    "which would show through (%s)", (unsigned long long)img->size,
		    (unsigned long long)img->backing->size,
		    img->version < 3 ? "a version 2 image has no zero clusters"
				     : "the old end is not on a cluster");
		return -EINVAL;
	}
	pthread_mutex_lock(&d->lock);
	if (size >= img->size) {
		ret = q2_grow(d, size, zero_to);
		if (!ret)
			d->limit = UINT64_MAX;
		pthread_mutex_unlock(&d->lock);
		if (ret)
			BAD(img, "growing it to %llu bytes: %s", (unsigned long long)size,
			    strerror(-ret));
		return ret;
	}
	/*
	 * The kernel sends nothing past @size now.  What it sent before fails
	 * from here on, and every request that mapped before (a write taking
	 * clusters past it, or one landing in the cluster across it) ends first.
	 */
	d->limit = size;
	seq = d->seq;
	for (unsigned i = 0; pending_from(d, size >> img->cluster_bits) ||
			     oldest_tag_mapping(d) <= seq; i++) {
		pthread_mutex_unlock(&d->lock);
		if (i == 10000) {
			pthread_mutex_lock(&d->lock);
			d->limit = UINT64_MAX;
			pthread_mutex_unlock(&d->lock);
			BAD(img, "shrinking it to %llu bytes: requests in flight did not end "
			    "in 10 s", (unsigned long long)size);
			return -EBUSY;
		}
		usleep(1000);
		pthread_mutex_lock(&d->lock);
	}
	ret = q2_shrink(d, size);
	if (ret)
		d->limit = UINT64_MAX;
	pthread_mutex_unlock(&d->lock);
	if (ret)
		BAD(img, "shrinking it to %llu bytes: %s", (unsigned long long)size, strerror(-ret));
	return ret;
}

static void q2_commit(struct zublk_queue *q, struct zublk_io *io, struct q2_tag *t)
{
	struct q2_dev *d = zublk_dev_priv(zublk_queue_dev(q));
	int ret = t->err;

	pthread_mutex_lock(&d->lock);
	for (unsigned i = 0; i < t->nr_allocs; i++) {
		struct q2_alloc *a = &t->allocs[i];

		if (!ret)
			ret = l2_set(d->top, a->guest, a->host | OFLAG_COPIED);
		/* Written or not, the old clusters go (else the new one: a leak at worst). */
		if (!ret)
			frees_add_entry(d, a->old);
		else
			frees_add(d, a->host >> d->top->cluster_bits);
		pending_del(d, a->guest);
	}
	t->nr_allocs = 0;
	pthread_mutex_unlock(&d->lock);
	zublk_io_complete(q, io, ret ? ret : io->op == UBLK_IO_OP_WRITE_ZEROES ? 0 : (int)io->len);
}

/* A FLUSH that made nothing durable: its frees wait for the next one. */
static void sync_frees_back(struct q2_dev *d, struct q2_tag *t)
{
	pthread_mutex_lock(&d->lock);
	for (size_t i = 0; i < t->frees.n; i++)
		frees_add(d, t->frees.v[i]);
	pthread_mutex_unlock(&d->lock);
	free(t->frees.v);
	t->frees = (struct u64s){ 0 };
}

static int q2_flush(struct zublk_queue *q, struct zublk_io *io, struct q2_tag *t)
{
	struct q2_dev *d = zublk_dev_priv(zublk_queue_dev(q));
	struct io_uring_sqe *sqe;

	/* The frees known now are safe to do once this flush made their L2 entries durable. */
	pthread_mutex_lock(&d->lock);
	free(t->frees.v);
	t->frees = d->frees;
	d->frees = (struct u64s){ 0 };
	pthread_mutex_unlock(&d->lock);
	sqe = zublk_queue_get_sqe(q);
	if (!sqe) {
		sync_frees_back(d, t);
		return -EBUSY;
	}
	io_uring_prep_fsync(sqe, d->top->idx, IORING_FSYNC_DATASYNC);
	sqe->flags |= IOSQE_FIXED_FILE;
	zublk_io_sqe_mark(q, io, sqe, SUB_FLUSH);
	t->inflight++;
	return 0;
}

static void commit_synced(struct zublk_queue *q, struct zublk_io *io, struct q2_tag *t);

static int q2_rw(struct zublk_queue *q, struct zublk_io *io, struct q2_tag *t)
{
	struct q2_dev *d = zublk_dev_priv(zublk_queue_dev(q));
	bool write = io->op == UBLK_IO_OP_WRITE;
	struct run r = { 0 };
	int ret;

	pthread_mutex_lock(&d->lock);
	if (write && past_limit(d, io)) {
		pthread_mutex_unlock(&d->lock);
		return -EIO;
	}
	if (write && busy(d, io->offset, io->len)) {
		pthread_mutex_unlock(&d->lock);
		return retry_later(q, io, t);
	}
	__atomic_store_n(&t->seq, ++d->seq, __ATOMIC_RELEASE);
	if (write)
		ret = q2_write(q, io, t, &r);
	else
		ret = map_read(q, io, &r, d->top, io->offset, 0, io->len);
	pthread_mutex_unlock(&d->lock);
	if (!ret && !t->inflight && !t->nr_allocs && r.len == io->len && !run_copy(q, io, &r)) {
		/* One run, nothing else: the request ends with it. */
		ret = zublk_io_prep_rw_commit_note(q, io, write, r.idx, r.file_off, 0, r.len,
						   SUB_DATA, (unsigned)t->seq);
		if (!ret) {
			t->inflight++;
			t->expect += r.len;
			return 0;
		}
	}
	if (!ret)
		ret = run_flush(q, io, &r, write);
	if (!t->inflight)
		seq_clear(t); /* nothing of it in flight */
	if (ret) {
		t->err = ret;
		if (t->inflight)
			return 0;
		if (t->nr_allocs) {
			q2_commit(q, io, t);
			return 0;
		}
		return ret;
	}
	if (!t->inflight) {
		/* Every run copied: new clusters still want their data down first. */
		if (t->nr_allocs)
			commit_synced(q, io, t);
		else
			q2_commit(q, io, t);
	}
	return 0;
}

static int q2_queue_io(struct zublk_queue *q, struct zublk_io *io)
{
	struct q2_queue *qq = zublk_queue_priv(q);
	struct q2_dev *d = zublk_dev_priv(zublk_queue_dev(q));
	struct q2_tag *t = &qq->tags[io->tag];
	int ret;

	t->io = io;
	seq_clear(t); /* the tag's last request is done */
	t->inflight = 0;
	t->err = 0;
	t->nr_allocs = 0;
	t->expect = t->done = 0;
	switch (io->op) {
	case UBLK_IO_OP_READ:
	case UBLK_IO_OP_WRITE:
		return q2_rw(q, io, t);
	case UBLK_IO_OP_FLUSH:
		return q2_flush(q, io, t);
	case UBLK_IO_OP_DISCARD:
		pthread_mutex_lock(&d->lock);
		if (past_limit(d, io)) {
			pthread_mutex_unlock(&d->lock);
			return -EIO;
		}
		if (busy(d, io->offset, io->len)) {
			pthread_mutex_unlock(&d->lock);
			return retry_later(q, io, t);
		}
		ret = q2_discard(q, io);
		pthread_mutex_unlock(&d->lock);
		if (!ret)
			zublk_io_complete(q, io, 0);
		return ret;
	case UBLK_IO_OP_WRITE_ZEROES:
		pthread_mutex_lock(&d->lock);
		if (past_limit(d, io)) {
			pthread_mutex_unlock(&d->lock);
			return -EIO;
		}
		if (busy(d, io->offset, io->len)) {
			pthread_mutex_unlock(&d->lock);
			return retry_later(q, io, t);
		}
		ret = q2_write_zeroes(q, io, t);
		pthread_mutex_unlock(&d->lock);
		if (!t->nr_allocs) {
			if (!ret)
				zublk_io_complete(q, io, 0);
			return ret;
		}
		t->err = ret;
		commit_synced(q, io, t);
		return 0;
	default:
		return -EOPNOTSUPP;
	}
}

static void sync_done(struct zublk_queue *q, int res);

/* An fdatasync for the waiting requests; without an SQE, one now. */
static void sync_start(struct zublk_queue *q)
{
	struct q2_queue *qq = zublk_queue_priv(q);
	struct q2_dev *d = zublk_dev_priv(zublk_queue_dev(q));
	struct io_uring_sqe *sqe = zublk_queue_get_sqe(q);
	struct q2_tag *owner;
	uint16_t *swap = qq->batch;

	qq->batch = qq->wait, qq->nr_batch = qq->nr_wait;
	qq->wait = swap, qq->nr_wait = 0;
	if (!sqe) {
		qq->syncing = true;
		sync_done(q, q2_sync(d->top));
		return;
	}
	owner = &qq->tags[qq->batch[0]];
	io_uring_prep_fsync(sqe, d->top->idx, IORING_FSYNC_DATASYNC);
	sqe->flags |= IOSQE_FIXED_FILE;
	zublk_io_sqe_mark(q, owner->io, sqe, SUB_FSYNC);
	owner->inflight++;
	qq->syncing = true;
}

/* The fdatasync is back: its requests' L2 entries now, then the next batch's sync. */
static void sync_done(struct zublk_queue *q, int res)
{
	struct q2_queue *qq = zublk_queue_priv(q);
	struct q2_dev *d = zublk_dev_priv(zublk_queue_dev(q));

	if (res < 0)
		sync_failed(d->top, res, true);

	for (unsigned i = 0; i < qq->nr_batch; i++) {
		struct q2_tag *t = &qq->tags[qq->batch[i]];

		if (res < 0 && !t->err)
			t->err = res;
		q2_commit(q, t->io, t);
	}
	qq->nr_batch = 0;
	qq->syncing = false;
	if (qq->nr_wait)
		sync_start(q);
}

/* Every new cluster of @t came from the reserve: nothing to sync for it. */
static bool all_reserved(const struct q2_tag *t)
{
	for (unsigned i = 0; i < t->nr_allocs; i++)
		if (!t->allocs[i].reserved)
			return false;
	return true;
}

/*
 * New clusters: their data and refcounts are down before any L2 entry names
 * them (a reserved one's refcount is, and it reads zeros until its data is).
 */
static void commit_synced(struct zublk_queue *q, struct zublk_io *io, struct q2_tag *t)
{
	struct q2_queue *qq = zublk_queue_priv(q);
	struct q2_dev *d = zublk_dev_priv(zublk_queue_dev(q));

	if (!t->err && !d->top->in_memory && !all_reserved(t)) {
		qq->wait[qq->nr_wait++] = io->tag;
		if (!qq->syncing)
			sync_start(q);
		return;
	}
	q2_commit(q, io, t);
}

/* The queue's own op is back: the next run of the reserve is synced. */
static void q2_queue_done(struct zublk_queue *q, unsigned sub, int res)
{
	struct q2_dev *d = zublk_dev_priv(zublk_queue_dev(q));

	pthread_mutex_lock(&d->lock);
	ahead_synced(d->top, sub & QSUB_GEN_MASK, res);
	pthread_mutex_unlock(&d->lock);
}

/* A transfer linked to its commit is done: the request's mapping is no longer used. */
static void q2_io_note(struct zublk_queue *q, unsigned tag, unsigned note)
{
	struct q2_queue *qq = zublk_queue_priv(q);
	struct q2_tag *t = &qq->tags[tag];

	if ((t->seq & ZUBLK_UD_SUB_MAX) == note)
		seq_clear(t);
}

static void q2_io_done(struct zublk_queue *q, struct zublk_io *io, unsigned sub, int res)
{
	struct q2_queue *qq = zublk_queue_priv(q);
	struct q2_dev *d = zublk_dev_priv(zublk_queue_dev(q));
	struct q2_tag *t = &qq->tags[io->tag];
	int ret;

	t->inflight--;
	switch (sub) {
	case SUB_RETRY:
		ret = q2_queue_io(q, io);
		if (ret)
			zublk_io_complete(q, io, ret);
		return;
	case SUB_FLUSH:
		if (res < 0)
			sync_failed(d->top, res, false); /* the guest hears of it now */
		ret = __atomic_exchange_n(&d->top->sync_err, 0, __ATOMIC_RELAXED);
		if (res >= 0 && ret)
			res = ret;
		if (res >= 0) {
			pthread_mutex_lock(&d->lock);
			frees_drop(d, t->frees.v, t->frees.n);
			pthread_mutex_unlock(&d->lock);
			free(t->frees.v);
			t->frees = (struct u64s){ 0 };
		} else {
			sync_frees_back(d, t);
		}
		zublk_io_complete(q, io, res < 0 ? res : 0);
		return;
	case SUB_FSYNC:
		sync_done(q, res);
		return;
	default:
		if (res < 0 && !t->err)
			t->err = res;
		else if (res > 0)
			t->done += (uint64_t)res;
		break;
	}
	if (t->inflight)
		return;
	seq_clear(t);
	/* Short: the image (or a backing) shrank under us. */
	if (!t->err && t->done != t->expect)
		t->err = -EIO;
	if (!t->nr_allocs) {
		zublk_io_complete(q, io, t->err ? t->err : (int)io->len);
		return;
	}
	commit_synced(q, io, t);
}

/* --------------------------------------------------------------- opening */

/*
 * The image locks qemu takes, so that qemu and zublk keep out of each
 * other's images: a shared OFD lock on byte 100 + N for each permission N a
 * user holds, and on byte 200 + N for each it does not let others have.
 */
#define QLOCK_READ 100		/* consistent read */
#define QLOCK_WRITE 101
#define QLOCK_DENY_WRITE 201

static bool locked_by_other(int fd, off_t at)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = at, .l_len = 1 };

	return !fcntl(fd, F_OFD_GETLK, &fl) && fl.l_type != F_UNLCK;
}

static int lock_byte(int fd, off_t at)
{
	struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = at, .l_len = 1 };

	return fcntl(fd, F_OFD_SETLK, &fl) ? -errno : 0;
}

/* Read (and write, unless @img->ro) it, and let nobody else write it. */
static int img_lock(struct q2_img *img)
{
	int ret;

	if (locked_by_other(img->fd, QLOCK_WRITE) ||
	    (!img->ro && locked_by_other(img->fd, QLOCK_DENY_WRITE))) {
		BAD(img, "in use: another process (qemu?) holds its %s lock",
		    locked_by_other(img->fd, QLOCK_WRITE) ? "write" : "no-writers");
		return -EBUSY;
	}
	ret = lock_byte(img->fd, QLOCK_READ);
	if (!ret && !img->ro)
		ret = lock_byte(img->fd, QLOCK_WRITE);
	if (!ret)
		ret = lock_byte(img->fd, QLOCK_DENY_WRITE);
	if (ret)
		BAD(img, "locking it: %s", strerror(-ret));
	return ret;
}

static void img_close(struct q2_img *img)
{
	while (img) {
		struct q2_img *b = img->backing;

		/* Its mapping only: the fd is ours. */
		img->b.fd = -1;
		zublk_backing_close(&img->b);
		if (img->fd >= 0)
			close(img->fd);
		if (img->dfd >= 0)
			close(img->dfd);
		if (img->rb)
			for (uint64_t i = 0; i < img->rt_entries; i++)
				free(img->rb[i]);
		if (img->slots)
			for (unsigned i = 0; i < img->nr_slots; i++)
				free(img->slots[i].tab);
		free(img->slots), free(img->l1_slot), free(img->rb), free(img->rt), free(img->l1);
		free(img->reuse.v), free(img->reuse_seq.v), free(img->free_runs);
		free(img->path);
		free(img);
		img = b;
	}
}

static int img_open(const char *path, const struct q2_img *child, unsigned depth,
		    const char *fmt, bool ro, struct q2_img **out);

/* The backing file's name and format from the header and its extensions. */
static int read_backing(struct q2_img *img, const uint8_t *h, uint32_t hlen, char **name,
			char **fmt)
{
	uint64_t boff = be64(h + 8), off = hlen;
	uint32_t blen = be32(h + 16);
	uint8_t eh[8];
	int ret;

	*name = *fmt = NULL;
	if (!boff)
		return 0;
	if (blen == 0 || blen > 1023) {
		BAD(img, "backing file name of %u bytes", blen);
		return -EINVAL;
	}
	*name = calloc(1, blen + 1);
	if (!*name)
		return -ENOMEM;
	ret = pread_all(img->fd, *name, blen, boff);
	if (ret) {
		BAD(img, "reading the backing file name: %s", strerror(-ret));
		return ret;
	}
	/* Header extensions: type, length, data padded to 8. */
	for (unsigned i = 0; i < 64 && off + 8 <= img->cs; i++) {
		uint32_t type, len;

		if (pread_all(img->fd, eh, 8, off))
			break;
		type = be32(eh), len = be32(eh + 4);
		if (type == EXT_END)
			break;
		if (type == EXT_BACKING_FORMAT && len && len < 64 && !*fmt) {
			*fmt = calloc(1, len + 1);
			if (!*fmt)
				return -ENOMEM;
			ret = pread_all(img->fd, *fmt, len, off + 8);
			if (ret) {
				BAD(img, "reading the backing format: %s", strerror(-ret));
				return ret;
			}
		}
		off += 8 + ((uint64_t)len + 7) / 8 * 8;
	}
	return 0;
}

static int open_backing(struct q2_img *img, const char *name, const char *fmt, unsigned depth)
{
	char *full = NULL, *slash;
	int ret;

	if (name[0] == '/' || !(slash = strrchr(img->path, '/'))) {
		full = strdup(name);
	} else if (asprintf(&full, "%.*s/%s", (int)(slash - img->path), img->path, name) < 0) {
		full = NULL;
	}
	if (!full)
		return -ENOMEM;
	if (fmt && strcmp(fmt, "raw") && strcmp(fmt, "qcow2")) {
		BAD(img, "backing file '%s' of format '%s': only qcow2 and raw", full, fmt);
		free(full);
		return -EINVAL;
	}
	if (depth + 1 >= QCOW2_MAX_CHAIN) {
		BAD(img, "a chain of more than %d backing files", QCOW2_MAX_CHAIN - 1);
		free(full);
		return -ELOOP;
	}
	ret = img_open(full, img, depth + 1, fmt, true, &img->backing);
	free(full);
	return ret;
}

static int check_features(struct q2_img *img, const uint8_t *h, uint32_t hlen)
{
	uint64_t inc = be64(h + 72), known = INCOMPAT_DIRTY | INCOMPAT_CORRUPT |
		INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2;
	unsigned ct;

	if (inc & INCOMPAT_CORRUPT) {
		BAD(img, "marked corrupt: run qemu-img check -r all on it first");
		return -EUCLEAN;
	}
	if ((inc & INCOMPAT_DIRTY) && !img->ro) {
		BAD(img, "dirty (its refcounts may be wrong): run qemu-img check -r all on it first");
		return -EUCLEAN;
	}
	if (inc & INCOMPAT_DATA_FILE) {
		BAD(img, "an external data file: not supported");
		return -EOPNOTSUPP;
	}
	if (inc & INCOMPAT_EXTL2) {
		BAD(img, "extended L2 entries (subclusters): not supported");
		return -EOPNOTSUPP;
	}
	ct = hlen > 104 ? h[104] : 0;
	if (ct > 1) {
		BAD(img, "compression type %u: not zlib (0) or zstd (1)", ct);
		return -EOPNOTSUPP;
	}
	/* Set with a type other than zlib, and only then (as qemu checks). */
	if (!!(inc & INCOMPAT_COMPRESSION) != (ct != 0)) {
		BAD(img, "compression type %u with its incompatible bit %s: corrupt header", ct,
		    inc & INCOMPAT_COMPRESSION ? "set" : "clear");
		return -EUCLEAN;
	}
	img->zstd = ct == 1;
	if (inc & ~known) {
		BAD(img, "incompatible features 0x%llx: not supported",
		    (unsigned long long)(inc & ~known));
		return -EOPNOTSUPP;
	}
	return 0;
}

static int read_header(struct q2_img *img, uint8_t *h, uint32_t *hlen)
{
	uint32_t cb;
	int ret;

	ret = pread_all(img->fd, h, 104, 0);
	if (ret || be32(h) != QCOW2_MAGIC) {
		BAD(img, "not a qcow2 image");
		return -EINVAL;
	}
	img->version = be32(h + 4);
	if (img->version != 2 && img->version != 3) {
		BAD(img, "qcow2 version %u: only 2 and 3", img->version);
		return -EOPNOTSUPP;
	}
	cb = be32(h + 20);
	if (cb < QCOW2_MIN_CLUSTER_BITS || cb > QCOW2_MAX_CLUSTER_BITS) {
		BAD(img, "cluster bits %u: not 9..21", cb);
		return -EINVAL;
	}
	img->cluster_bits = cb;
	img->cs = 1ULL << cb;
	*hlen = 72;
	if (img->version == 3) {
		*hlen = be32(h + 100);
		if (*hlen < 104 || *hlen > img->cs) {
			BAD(img, "header length %u", *hlen);
			return -EINVAL;
		}
		if (*hlen > 104 && pread_all(img->fd, h + 104, 8, 104)) {
			BAD(img, "short header");
			return -EINVAL;
		}
	}
	if (be32(h + 32)) {
		BAD(img, "encrypted (method %u): not supported", be32(h + 32));
		return -EOPNOTSUPP;
	}
	if (img->version == 3)
		return check_features(img, h, *hlen);
	return 0;
}

/*
 * An image on a block device ends where the device does; clusters are
 * appended after the last one with a reference (as qemu takes the first
 * free one, the rest of the device holds whatever it held before).
 */
static int bdev_end(struct q2_img *img)
{
	uint64_t last = 0, v;

	img->file_end = img->bdev_size & ~(img->cs - 1);
	for (uint64_t i = img->rt_entries; i-- > 0 && !last;) {
		uint64_t per = 1ULL << img->rb_bits;

		if (!img->rt[i])
			continue;
		for (uint64_t c = (i + 1) * per; c-- > i * per;) {
			int ret = rc_get(img, c, &v);

			if (ret)
				return ret;
			if (v) {
				last = c + 1;
				break;
			}
		}
	}
	if (last << img->cluster_bits > img->file_end) {
		BAD(img, "clusters in use up to %llu, past the device's end (%llu)",
		    (unsigned long long)(last << img->cluster_bits),
		    (unsigned long long)img->bdev_size);
		return -EINVAL;
	}
	img->next_cluster = last ? last : 1;
	return 0;
}

/*
 * The L1 table of @n entries at @off read (in host order) and made the
 * image's, with an empty L2 cache sized for it: up to 32M of tables, at
 * least 16.  What the image had before is freed; on error it stays.
 */
static int l1_load(struct q2_img *img, uint64_t off, uint32_t n)
{
	unsigned nr_slots = (unsigned)((32ULL << 20) / img->cs);
	uint64_t *l1 = calloc(n ? n : 1, 8);
	int32_t *slot = malloc((n ? n : 1) * sizeof(*slot));
	struct l2_slot *slots;
	int ret;

	nr_slots = nr_slots < 16 ? 16 : nr_slots;
	nr_slots = nr_slots > n ? (n ? n : 1) : nr_slots;
	slots = calloc(nr_slots, sizeof(*slots));
	ret = l1 && slot && slots ? pread_all(img->fd, l1, (size_t)n * 8, off) : -ENOMEM;
	if (ret) {
		free(l1), free(slot), free(slots);
		return ret;
	}
	slot[0] = -1;
	for (uint32_t i = 0; i < n; i++) {
		l1[i] = be64(&l1[i]);
		slot[i] = -1;
	}
	for (unsigned i = 0; i < nr_slots; i++)
		slots[i].l1_idx = -1;
	for (unsigned i = 0; i < img->nr_slots; i++)
		free(img->slots[i].tab);
	free(img->l1), free(img->l1_slot), free(img->slots);
	img->l1 = l1, img->l1_slot = slot, img->slots = slots, img->nr_slots = nr_slots;
	img->l1_size = n, img->l1_offset = off;
	return 0;
}

static int read_tables(struct q2_img *img, const uint8_t *h)
{
	uint64_t per_l2 = img->cs / 8, need;
	struct stat st;
	int ret;

	img->size = be64(h + 24);
	img->l1_size = be32(h + 36);
	img->l1_offset = be64(h + 40);
	img->rt_offset = be64(h + 48);
	img->rt_clusters = be32(h + 56);
	img->l2_bits = img->cluster_bits - 3;
	if (img->version == 3 && be32(h + 96) > 6) {
		BAD(img, "refcount order %u: not 0..6", be32(h + 96));
		return -EINVAL;
	}
	img->rc_bits = 1U << (img->version == 3 ? be32(h + 96) : 4);
	img->rc_max = img->rc_bits == 64 ? UINT64_MAX : (1ULL << img->rc_bits) - 1;
	img->rb_bits = img->cluster_bits + 3 - __builtin_ctz(img->rc_bits);
	img->csize_shift = 62 - (img->cluster_bits - 8);
	need = l1_entries_for(img, img->size);
	if (img->l1_size < need || img->l1_size > (32U << 20) / 8) {
		BAD(img, "an L1 table of %u entries for %llu bytes", img->l1_size,
		    (unsigned long long)img->size);
		return -EINVAL;
	}
	if ((img->l1_offset | img->rt_offset) & (img->cs - 1) || !img->rt_clusters ||
	    img->rt_clusters > (8U << 20) / img->cs + 1) {
		BAD(img, "misplaced tables (L1 at %llu, refcounts at %llu, %u clusters)",
		    (unsigned long long)img->l1_offset, (unsigned long long)img->rt_offset,
		    img->rt_clusters);
		return -EINVAL;
	}
	img->rt_entries = (uint64_t)img->rt_clusters * per_l2;
	img->rt = calloc(img->rt_entries, 8);
	img->rb = calloc(img->rt_entries, sizeof(*img->rb));
	if (!img->rt || !img->rb)
		return -ENOMEM;
	ret = l1_load(img, img->l1_offset, img->l1_size);
	if (!ret)
		ret = pread_all(img->fd, img->rt, img->rt_entries * 8, img->rt_offset);
	if (ret) {
		if (ret != -ENOMEM)
			BAD(img, "reading its tables: %s", strerror(-ret));
		return ret;
	}
	for (uint64_t i = 0; i < img->rt_entries; i++) {
		img->rt[i] = be64(&img->rt[i]);
		if (img->rt[i] & (img->cs - 1)) {
			BAD(img, "a refcount block at %llu, not on a cluster",
			    (unsigned long long)img->rt[i]);
			return -EINVAL;
		}
	}
	if (img->bdev)
		return bdev_end(img);
	if (fstat(img->fd, &st))
		return -errno;
	img->file_end = (uint64_t)st.st_size;
	img->next_cluster = ((uint64_t)st.st_size + img->cs - 1) >> img->cluster_bits;
	return 0;
}

/*
 * Clear the autoclear bits: what they promise (bitmaps in step) a writer
 * that knows nothing of them breaks.  The last step of the set-up: a
 * refused image is not changed.
 */
static int clear_autoclear(struct q2_img *img)
{
	uint8_t z[8] = { 0 };
	int ret;

	if (img->ro || img->version < 3 || !img->autoclear)
		return 0;
	ret = pwrite_all(img->fd, z, 8, HDR_AUTOCLEAR);
	if (!ret)
		ret = q2_sync(img);
	if (ret)
		BAD(img, "clearing its autoclear features: %s", strerror(-ret));
	return ret;
}

/* A file in memory is mapped (its data copied in the queue thread); others are not. */
static void img_map(struct q2_img *img)
{
	img->b.fd = img->fd;
	img->b.in_memory = img->in_memory;
	if (img->in_memory)
		zublk_backing_map(&img->b, img->raw ? img->size : img->file_end);
}

static int img_open(const char *path, const struct q2_img *child, unsigned depth,
		    const char *fmt, bool ro, struct q2_img **out)
{
	struct q2_img *img = calloc(1, sizeof(*img));
	uint8_t h[112] = { 0 };
	char *bname = NULL, *bfmt = NULL;
	struct stat st;
	uint32_t hlen;
	int ret;

	if (!img)
		return -ENOMEM;
	img->ro = ro;
	img->dfd = -1;
	img->child = child;
	img->path = strdup(path);
	img->fd = zublk_open_nowait(path, ro ? O_RDONLY : O_RDWR, 0);
	if (!img->path || img->fd < 0) {
		ret = img->path ? -errno : -ENOMEM;
		if (child)
			zublk_log(ZUBLK_LOG_ERR, "qcow2: '%s': backing file '%s': %s", child->path,
				  path, strerror(-ret));
		else if (img->path)
			BAD(img, "%s", strerror(-ret));
		goto err;
	}
	if (fstat(img->fd, &st)) {
		ret = -errno;
		BAD(img, "%s", strerror(-ret));
		goto err;
	}
	img->bdev = S_ISBLK(st.st_mode);
	if (img->bdev) {
		off_t end = lseek(img->fd, 0, SEEK_END);

		if (end < 0) {
			ret = -errno;
			BAD(img, "its size: %s", strerror(-ret));
			goto err;
		}
		img->bdev_size = (uint64_t)end;
	}
	/* A chain that comes back to one of its images (its locks would be ours). */
	for (const struct q2_img *c = child; c; c = c->child) {
		struct stat cs;

		if (!fstat(c->fd, &cs) && cs.st_dev == st.st_dev && cs.st_ino == st.st_ino) {
			zublk_log(ZUBLK_LOG_ERR,
				  "qcow2: '%s': backing file '%s': the same file as '%s' "
				  "(a loop in the backing chain)", child->path, path, c->path);
			ret = -ELOOP;
			goto err;
		}
	}
	/* /dev is a tmpfs too: only a regular file is in memory. */
	img->in_memory = S_ISREG(st.st_mode) && zublk_path_in_memory(path);
	ret = img_lock(img);
	if (ret)
		goto err;
	if ((fmt && !strcmp(fmt, "raw")) ||
	    (!fmt && depth > 0 && (pread_all(img->fd, h, 4, 0) || be32(h) != QCOW2_MAGIC))) {
		img->raw = true;
		img->size = img->bdev ? img->bdev_size : (uint64_t)st.st_size;
		img_map(img);
		*out = img;
		return 0;
	}
	ret = read_header(img, h, &hlen);
	if (!ret)
		ret = read_tables(img, h);
	if (ret)
		goto err;
	img->nr_snapshots = be32(h + 60);
	img->snap_offset = be64(h + 64);
	ret = read_backing(img, h, hlen, &bname, &bfmt);
	if (!ret && bname)
		ret = open_backing(img, bname, bfmt, depth);
	img->autoclear = be64(h + HDR_AUTOCLEAR);
	free(bname), free(bfmt);
	if (ret)
		goto err;
	img_map(img);
	*out = img;
	return 0;
err:
	img_close(img);
	return ret;
}

/* What use_snapshot() takes of a snapshot table entry. */
struct q2_snap {
	uint64_t l1_off, size;
	uint32_t l1_size;
};

/*
 * The entry of the snapshot table whose id (@by_id) or name is @name: 1 and
 * @out filled, 0 if none, or -errno (a table not as the spec says).
 */
static int snap_find(struct q2_img *img, const char *name, bool by_id, struct q2_snap *out)
{
	uint64_t off = img->snap_offset, end = img->file_end;
	uint32_t extra;
	uint16_t id_len, name_len;
	uint8_t e[40], x[16];
	char *id, *nm; /* the entry's id and name, each NUL-ended */
	bool found;
	int ret;

	for (uint32_t i = 0; i < img->nr_snapshots; i++) {
		/* qemu's bounds: 64 MiB of table, 1 KiB of extra data per entry. */
		if (off - img->snap_offset > (64ULL << 20) || end < sizeof(e) ||
		    off > end - sizeof(e))
			return -EINVAL;
		ret = pread_all(img->fd, e, sizeof(e), off);
		if (ret)
			return ret;
		extra = be32(e + 36);
		id_len = (uint16_t)(e[12] << 8 | e[13]), name_len = (uint16_t)(e[14] << 8 | e[15]);
		if (extra > 1024 || off + sizeof(e) + extra + id_len + name_len > end)
			return -EINVAL;
		memset(x, 0, sizeof(x));
		id = calloc(1, (size_t)id_len + name_len + 2);
		if (!id)
			return -ENOMEM;
		nm = id + id_len + 1;
		ret = pread_all(img->fd, x, extra < sizeof(x) ? extra : sizeof(x), off + sizeof(e));
		if (!ret)
			ret = pread_all(img->fd, id, id_len, off + sizeof(e) + extra);
		if (!ret)
			ret = pread_all(img->fd, nm, name_len, off + sizeof(e) + extra + id_len);
		found = !ret && !strcmp(by_id ? id : nm, name);
		free(id);
		if (ret)
			return ret;
		if (found) {
			out->l1_off = be64(e), out->l1_size = be32(e + 8);
			/* The disk size when it was taken; else the header's. */
			out->size = extra >= 16 ? be64(x + 8) : img->size;
			return 1;
		}
		off = (off + sizeof(e) + extra + id_len + name_len + 7) & ~7ULL;
	}
	return 0;
}

/*
 * snapshot=NAME (with ro=1): the internal snapshot whose id or else name
 * is @name (qemu's order) is served instead of the active layer: its L1
 * table and its disk size take the place of the header's (the refcounts,
 * the backing file and everything else are the image's).
 */
static int use_snapshot(struct q2_img *img, const char *name)
{
	struct q2_snap sn;
	int ret = -EINVAL;

	if (img->nr_snapshots <= 65536 && !(img->snap_offset & (img->cs - 1))) {
		ret = snap_find(img, name, true, &sn);
		if (!ret)
			ret = snap_find(img, name, false, &sn);
	}
	if (ret < 0) {
		BAD(img, "its snapshot table (%u entries at %llu) is corrupt: %s",
		    img->nr_snapshots, (unsigned long long)img->snap_offset, strerror(-ret));
		return ret;
	}
	if (!ret) {
		BAD(img, "no internal snapshot named '%s' (qemu-img snapshot -l lists them)", name);
		return -ENOENT;
	}
	if (sn.l1_off & (img->cs - 1) || sn.l1_size > (32U << 20) / 8 ||
	    sn.l1_size < l1_entries_for(img, sn.size) || sn.l1_off > img->file_end ||
	    (uint64_t)sn.l1_size * 8 > img->file_end - sn.l1_off) {
		BAD(img, "snapshot '%s': an L1 table of %u entries at %llu for %llu bytes", name,
		    sn.l1_size, (unsigned long long)sn.l1_off, (unsigned long long)sn.size);
		return -EINVAL;
	}
	ret = l1_load(img, sn.l1_off, sn.l1_size);
	if (ret) {
		if (ret != -ENOMEM)
			BAD(img, "snapshot '%s': reading its L1 table: %s", name, strerror(-ret));
		return ret;
	}
	img->size = sn.size;
	return 0;
}

/*
 * buffered=0: each image and backing file not in memory gets a second
 * descriptor with O_DIRECT, for the data runs (io_uring); the tables,
 * compressed clusters and the parts of a new cluster stay buffered on the
 * first (the kernel keeps the two coherent: a direct read or write writes
 * back and drops the cached pages it covers).  The device's logical block
 * is then the largest O_DIRECT alignment of the chain, which every qcow2
 * cluster size of it must reach.
 */
static int open_direct(struct q2_dev *d, struct zublk_target_geom *geom)
{
	unsigned long page = (unsigned long)sysconf(_SC_PAGESIZE);
	unsigned align = 512, mem_align = 512;

	for (struct q2_img *img = d->top; img; img = img->backing) {
		struct stat a, b;
		unsigned block, mem;
		int ret;

		if (img->in_memory)
			continue; /* O_DIRECT there only costs (as loop decides) */
		img->dfd = open(img->path, (img->ro ? O_RDONLY : O_RDWR) | O_DIRECT | O_CLOEXEC);
		if (img->dfd < 0) {
			ret = -errno;

			BAD(img, "%s", ret == -EINVAL ? "O_DIRECT is not supported there (use "
				"buffered=1)" : strerror(-ret));
			return ret;
		}
		if (fstat(img->fd, &a) || fstat(img->dfd, &b) || a.st_dev != b.st_dev ||
		    a.st_ino != b.st_ino) {
			BAD(img, "replaced while it was being opened");
			return -ESTALE;
		}
		ret = zublk_dio_align(img->dfd, "qcow2:", img->path, &block, &mem);
		if (ret)
			return ret;
		if (block > align)
			align = block;
		if (mem > mem_align)
			mem_align = mem;
	}
	for (struct q2_img *img = d->top; img; img = img->backing)
		if (!img->raw && img->cs < align) {
			BAD(img, "clusters of %llu bytes, below the O_DIRECT alignment of %u: use "
				 "buffered=1", (unsigned long long)img->cs, align);
			return -EINVAL;
		}
	/*
	 * The image's tables are written buffered: a page of the file that
	 * held a table and data both could be written back with old data
	 * over a direct write.
	 */
	if (d->top->dfd >= 0 && d->top->cs < page) {
		BAD(d->top, "clusters of %llu bytes, below a page (%lu): use buffered=1",
		    (unsigned long long)d->top->cs, page);
		return -EINVAL;
	}
	geom->logical_bs_shift = (unsigned)__builtin_ctz(align);
	d->align = align;
	if (geom->physical_bs_shift < geom->logical_bs_shift)
		geom->physical_bs_shift = geom->logical_bs_shift;
	/* Segments of a whole block each, in memory the files can take. */
	if (mem_align < align)
		mem_align = align;
	if (mem_align > 512)
		geom->dma_alignment = mem_align - 1;
	d->direct = d->top->dfd >= 0;
	return 0;
}

static void q2_free(struct q2_dev *d)
{
	img_close(d->top);
	if (d->zero_fd >= 0)
		close(d->zero_fd);
	pthread_mutex_destroy(&d->lock);
	free(d->pending.v), free(d->frees.v), free(d->queues);
	free(d);
}

static int q2_init(struct zublk_dev *dev, struct zublk_opts *opts, struct zublk_target_geom *geom)
{
	const char *file = zublk_opts_get(opts, "file"), *snap = zublk_opts_get(opts, "snapshot");
	struct q2_dev *d;
	bool ro = false, buffered = true;
	int ret;

	if (!file || !*file) {
		zublk_log(ZUBLK_LOG_ERR, "target qcow2: needs file=PATH (or -f PATH)");
		return -EINVAL;
	}
	if (zublk_opts_get_bool(opts, "ro", &ro)) {
		zublk_log(ZUBLK_LOG_ERR, "ro '%s': not 0 or 1", zublk_opts_get(opts, "ro"));
		return -EINVAL;
	}
	if (zublk_opts_get_bool(opts, "buffered", &buffered)) {
		zublk_log(ZUBLK_LOG_ERR, "buffered '%s': not 0 or 1",
			  zublk_opts_get(opts, "buffered"));
		return -EINVAL;
	}
	if (snap && (!*snap || !ro)) {
		zublk_log(ZUBLK_LOG_ERR, "snapshot '%s': %s", snap,
			  *snap ? "an internal snapshot is served read-only: add ro=1"
				: "needs a name or id");
		return -EINVAL;
	}
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->zero_fd = -1;
	d->exited_min = UINT64_MAX;
	d->limit = UINT64_MAX;
	pthread_mutex_init(&d->lock, NULL);
	ret = img_open(file, NULL, 0, "qcow2", ro, &d->top);
	if (ret)
		goto err;
	d->top->dev = d;
	if (snap) {
		ret = use_snapshot(d->top, snap);
		if (ret)
			goto err;
	}
	if (d->top->size < 512) {
		BAD(d->top, "a virtual size of %llu bytes", (unsigned long long)d->top->size);
		ret = -EINVAL;
		goto err;
	}
	geom->logical_bs_shift = 9;
	geom->physical_bs_shift = d->top->cluster_bits < 12 ? d->top->cluster_bits : 12;
	if (!buffered) {
		ret = open_direct(d, geom);
		if (ret)
			goto err;
	}
	geom->size = d->top->size & ~((1ULL << geom->logical_bs_shift) - 1);
	d->zero_fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	if (d->zero_fd < 0) {
		ret = -errno;
		goto err;
	}
	for (struct q2_img *img = d->top; img; img = img->backing) {
		int fd = img->dfd >= 0 ? img->dfd : img->fd;

		img->idx = img == d->top ? zublk_dev_add_file_growing(dev, fd)
					 : zublk_dev_add_file(dev, fd);
		if (img->idx < 0) {
			ret = img->idx;
			goto err;
		}
	}
	d->zero_idx = zublk_dev_add_file(dev, d->zero_fd);
	if (d->zero_idx < 0) {
		ret = d->zero_idx;
		goto err;
	}
	geom->caps = ZUBLK_CAP_FLUSH;
	/*
	 * A v2 image over a backing has no zero clusters: its discard does
	 * nothing, and write zeroes are left to the kernel (plain writes).
	 */
	geom->caps |= ro ? ZUBLK_CAP_READ_ONLY : ZUBLK_CAP_DISCARD;
	if (!ro && (d->top->version >= 3 || !d->top->backing))
		geom->caps |= ZUBLK_CAP_WRITE_ZEROES;
	geom->discard_granularity = (uint32_t)d->top->cs;
	geom->want_copy = true;
	/* Last of what may refuse the image: it punches the free clusters out. */
	if (!ro) {
		ret = find_free(d->top);
		if (ret) {
			BAD(d->top, "reading its refcounts: %s", strerror(-ret));
			goto err;
		}
	}
	ret = clear_autoclear(d->top);
	if (ret)
		goto err;
	zublk_dev_set_priv(dev, d);
	return 0;
err:
	q2_free(d);
	return ret;
}

static void q2_exit(struct zublk_dev *dev)
{
	struct q2_dev *d = zublk_dev_priv(dev);

	if (!d)
		return;
	if (!d->top->ro)
		reserve_give_back(d->top);
	/* What is unreferenced is dropped once the L2 entries that let go of it are durable. */
	if (d->frees.n && !d->top->ro && !q2_sync(d->top))
		frees_drop(d, d->frees.v, d->frees.n);
	if (!d->top->ro)
		q2_sync(d->top);
	q2_free(d);
	zublk_dev_set_priv(dev, NULL);
}

static int q2_queue_init(struct zublk_queue *q)
{
	struct zublk_dev *dev = zublk_queue_dev(q);
	struct q2_dev *d = zublk_dev_priv(dev);
	const struct ublksrv_ctrl_dev_info *info = zublk_dev_info(dev);
	unsigned per_io = (unsigned)((info->max_io_buf_bytes >> d->top->cluster_bits) + 2);
	uint64_t cs_max = 0;
	struct q2_queue *qq = calloc(1, sizeof(*qq));

	if (!qq)
		return -ENOMEM;
	for (struct q2_img *img = d->top; img; img = img->backing)
		if (!img->raw && img->cs > cs_max)
			cs_max = img->cs;
	qq->depth = info->queue_depth;
	qq->tags = calloc(qq->depth, sizeof(*qq->tags));
	qq->batch = calloc(qq->depth, sizeof(*qq->batch));
	qq->wait = calloc(qq->depth, sizeof(*qq->wait));
	qq->cbuf = malloc(cs_max);
	qq->zbuf = malloc(2 * cs_max);
	qq->cow = malloc(d->top->cs);
	qq->zeros_len = 64 << 10;
	if (posix_memalign((void **)&qq->zeros, 4096, qq->zeros_len))
		qq->zeros = NULL;
	else
		memset(qq->zeros, 0, qq->zeros_len);
	zublk_queue_set_priv(q, qq);
	if (!qq->tags || !qq->batch || !qq->wait || !qq->cbuf || !qq->zbuf || !qq->cow ||
	    !qq->zeros)
		return -ENOMEM;
	for (unsigned i = 0; i < qq->depth; i++) {
		qq->tags[i].allocs = calloc(per_io, sizeof(struct q2_alloc));
		if (!qq->tags[i].allocs)
			return -ENOMEM;
	}
	/* Its tags' mappings count for every queue's cluster reuse (oldest_mapping()). */
	pthread_mutex_lock(&d->lock);
	if (!d->queues) {
		d->queues = calloc(info->nr_hw_queues, sizeof(*d->queues));
		d->nr_queues = d->queues ? info->nr_hw_queues : 0;
	}
	if (zublk_queue_id(q) < d->nr_queues)
		d->queues[zublk_queue_id(q)] = qq;
	pthread_mutex_unlock(&d->lock);
	return d->queues ? 0 : -ENOMEM;
}

static void q2_queue_exit(struct zublk_queue *q)
{
	struct q2_queue *qq = zublk_queue_priv(q);
	struct q2_dev *d = zublk_dev_priv(zublk_queue_dev(q));

	if (!qq)
		return;
	if (d) {
		pthread_mutex_lock(&d->lock);
		if (zublk_queue_id(q) < d->nr_queues && d->queues[zublk_queue_id(q)] == qq) {
			/* A transfer it leaves behind (a linked one) still counts. */
			for (unsigned j = 0; qq->tags && j < qq->depth; j++)
				if (qq->tags[j].seq && qq->tags[j].seq < d->exited_min)
					d->exited_min = qq->tags[j].seq;
			d->queues[zublk_queue_id(q)] = NULL;
		}
		pthread_mutex_unlock(&d->lock);
	}
	for (unsigned i = 0; qq->tags && i < qq->depth; i++) {
		free(qq->tags[i].allocs);
		free(qq->tags[i].frees.v);
	}
	if (qq->zs_ready)
		inflateEnd(&qq->zs);
	ZSTD_freeDCtx(qq->zd);
	free(qq->tags), free(qq->batch), free(qq->wait);
	free(qq->cbuf), free(qq->zbuf), free(qq->cow), free(qq->zeros);
	free(qq);
	zublk_queue_set_priv(q, NULL);
}

static void q2_status(struct zublk_dev *dev, FILE *json)
{
	struct q2_dev *d = zublk_dev_priv(dev);

	fprintf(json, ",\"buffered\":%s", d && d->direct ? "false" : "true");
	if (d)
		fprintf(json, ",\"snapshots\":%u", d->top->nr_snapshots);
}

const struct zublk_target_ops zublk_qcow2_ops = {
	.name = "qcow2",
	.summary = "a qcow2 image (v2, v3) with its backing chain (qcow2 or raw)",
	.usage = "file=PATH (or -f PATH)  ro=0|1  buffered=0|1 (default 1; 0: O_DIRECT for the "
		 "data)  snapshot=NAME (an internal snapshot's name or id, with ro=1)",
	.modes = ZUBLK_MODES_ALL,
	.init = q2_init,
	.exit = q2_exit,
	.queue_init = q2_queue_init,
	.queue_exit = q2_queue_exit,
	.queue_io = q2_queue_io,
	.io_done = q2_io_done,
	.io_note = q2_io_note,
	.queue_done = q2_queue_done,
	.resize = q2_resize,
	.status = q2_status,
};
