// SPDX-License-Identifier: MIT
/*
 * Backings: opening a file or block device for a target and finding its
 * shape; mapping a file in memory to copy requests straight into it.
 *
 * A target's backing changing while the device runs: the fd behind a
 * fixed-file index, and the options a recovery would start it with.  Both
 * under the state lock, so a state file is never written from half of it.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "internal.h"

int zublk_dev_set_file(struct zublk_dev *dev, int idx, int fd)
{
	if (idx < 1 || (unsigned)idx >= dev->nr_files || fd < 0)
		return -EINVAL;
	pthread_mutex_lock(&dev->state_lock);
	dev->files[idx] = fd;
	zublk_files_identity(dev, dev->files_id, sizeof(dev->files_id));
	pthread_mutex_unlock(&dev->state_lock);
	return 0;
}

int zublk_dev_file_counts(struct zublk_dev *dev, int idx, bool counts)
{
	if (idx < 1 || (unsigned)idx >= dev->nr_files)
		return -EINVAL;
	pthread_mutex_lock(&dev->state_lock);
	if (dev->file_kind[idx] != (counts ? FILE_WHOLE : FILE_LEFT)) {
		dev->file_kind[idx] = counts ? FILE_WHOLE : FILE_LEFT;
		zublk_files_identity(dev, dev->files_id, sizeof(dev->files_id));
	}
	pthread_mutex_unlock(&dev->state_lock);
	return 0;
}

static void opt_remove(struct zublk_opts *o, unsigned i)
{
	free(o->v[i].key);
	free(o->v[i].val);
	memmove(&o->v[i], &o->v[i + 1], (o->nr - i - 1) * sizeof(o->v[0]));
	o->nr--;
}

static int opt_append(struct zublk_opts *o, const char *key, const char *val)
{
	struct zublk_opt *v = realloc(o->v, (o->nr + 1) * sizeof(*v));
	char *k, *vv;

	if (!v)
		return -ENOMEM;
	o->v = v;
	k = strdup(key);
	vv = strdup(val);
	if (!k || !vv) {
		free(k);
		free(vv);
		return -ENOMEM;
	}
	o->v[o->nr++] = (struct zublk_opt){ .key = k, .val = vv, .used = true };
	return 0;
}

int zublk_dev_set_opt(struct zublk_dev *dev, const char *key, unsigned nth, const char *val)
{
	struct zublk_opts *o = dev->opts;
	unsigned seen = 0;
	int ret = 0;

	if (!o || !key || !*key || strchr(key, '='))
		return -EINVAL;
	pthread_mutex_lock(&dev->state_lock);
	for (unsigned i = 0; i < o->nr; i++) {
		char *copy;

		if (strcmp(o->v[i].key, key) || seen++ != nth)
			continue;
		if (!val) {
			opt_remove(o, i);
			goto out;
		}
		copy = strdup(val);
		if (!copy) {
			ret = -ENOMEM;
			goto out;
		}
		free(o->v[i].val);
		o->v[i].val = copy;
		goto out;
	}
	if (val && seen == nth)
		ret = opt_append(o, key, val);
	else if (val)
		ret = -ERANGE;
out:
	pthread_mutex_unlock(&dev->state_lock);
	return ret;
}

/* ------------------------------------------------------------ opening */

/* A number from a block device's queue/ in sysfs; 0 if it cannot be read. */
static unsigned long long bdev_queue_attr(dev_t rdev, const char *name)
{
	char path[128];
	unsigned long long v = 0;
	FILE *f;

	/* A partition has no queue/ of its own: its disk's is one up. */
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/partition", major(rdev), minor(rdev));
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/%squeue/%s", major(rdev),
		 minor(rdev), access(path, F_OK) ? "" : "../", name);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

int zublk_dio_align(int fd, const char *what, const char *path, unsigned *block,
		    unsigned *mem)
{
	struct statx stx;

	*block = *mem = 512;
	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) ||
	    !(stx.stx_mask & STATX_DIOALIGN))
		return 0;
	if (!stx.stx_dio_offset_align) {
		zublk_log(ZUBLK_LOG_ERR, "%s '%s': O_DIRECT is not supported there "
			  "(use buffered=1)", what, path);
		return -EINVAL;
	}
	if (stx.stx_dio_offset_align > *block)
		*block = stx.stx_dio_offset_align;
	if (*block > 4096 || (*block & (*block - 1))) {
		zublk_log(ZUBLK_LOG_ERR, "%s '%s': an O_DIRECT alignment of %u bytes: "
			  "use buffered=1", what, path, *block);
		return -EINVAL;
	}
	/* Each segment a whole block: O_DIRECT checks segment lengths too. */
	*mem = stx.stx_dio_mem_align > *block ? stx.stx_dio_mem_align : *block;
	return 0;
}

/* Logs its own error. */
static int backing_shape(struct zublk_backing *b, const struct stat *st, const char *what,
			 const char *path)
{
	if (S_ISBLK(st->st_mode)) {
		int lbs = 512, pbs = 512;
		unsigned long long dma, page = (unsigned long long)sysconf(_SC_PAGESIZE);

		b->bdev = true;
		if (ioctl(b->fd, BLKGETSIZE64, &b->size) || ioctl(b->fd, BLKSSZGET, &lbs) ||
		    ioctl(b->fd, BLKPBSZGET, &pbs)) {
			int ret = -errno;

			zublk_log(ZUBLK_LOG_ERR, "%s '%s': %s", what, path, strerror(-ret));
			return ret;
		}
		b->lbs_shift = (unsigned)__builtin_ctz((unsigned)lbs);
		b->pbs_shift = (unsigned)__builtin_ctz((unsigned)pbs);
		b->can_discard = bdev_queue_attr(st->st_rdev, "discard_max_bytes") > 0;
		b->can_zero = true;
		/*
		 * O_DIRECT to it needs memory aligned so: ask the same of our
		 * requests, as far as the driver takes (2^n - 1, below a page).
		 */
		dma = bdev_queue_attr(st->st_rdev, "dma_alignment");
		if (dma > 511 && !(dma & (dma + 1)))
			b->dma_alignment = (uint32_t)(dma < page ? dma : page - 1);
		/*
		 * Each segment a whole block, as for a file: older kernels' O_DIRECT
		 * checks segment lengths against the logical block too.
		 */
		if (lbs > 512 && (unsigned long long)lbs <= page &&
		    b->dma_alignment < (uint32_t)lbs - 1)
			b->dma_alignment = (uint32_t)lbs - 1;
		return 0;
	}
	unsigned lbs = 512, mem = 512;

	b->size = (uint64_t)st->st_size;
	/* O_DIRECT needs the file system's alignment as our block size. */
	if (!b->buffered) {
		int ret = zublk_dio_align(b->fd, what, path, &lbs, &mem);

		if (ret)
			return ret;
	}
	if (mem > 512)
		b->dma_alignment = mem - 1;
	b->lbs_shift = (unsigned)__builtin_ctz(lbs);
	b->pbs_shift = st->st_blksize >= 4096 ? 12 : b->lbs_shift;
	/* Past the end with KEEP_SIZE: changes nothing, tells if it works. */
	b->can_discard = b->can_zero =
		fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)b->size,
			  lbs) == 0;
	return 0;
}

bool zublk_path_in_memory(const char *path)
{
	struct statfs sfs;

	return !statfs(path, &sfs) && (sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC);
}

int zublk_backing_open(struct zublk_backing *b, const char *what, const char *path, bool ro,
		       int buffered)
{
	struct stat st;
	int ret;

	memset(b, 0, sizeof(*b));
	b->fd = -1;
	if (!path || !*path) {
		zublk_log(ZUBLK_LOG_ERR, "%s '': an empty path", what);
		return -EINVAL;
	}
	b->fd = zublk_open_nowait(path, ro ? O_RDONLY : O_RDWR, 0);
	if (b->fd < 0 || fstat(b->fd, &st))
		goto err_errno;
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		zublk_log(ZUBLK_LOG_ERR, "%s '%s': not a regular file or block device", what,
			  path);
		ret = -EINVAL;
		goto err;
	}
	b->in_memory = S_ISREG(st.st_mode) && zublk_path_in_memory(path);
	b->buffered = buffered < 0 ? b->in_memory : buffered;
	if (fcntl(b->fd, F_SETFL, b->buffered ? 0 : O_DIRECT)) {
		ret = -errno;
		if (ret == -EINVAL && !b->buffered)
			zublk_log(ZUBLK_LOG_ERR,
				  "%s '%s': O_DIRECT is not supported there (use buffered=1)",
				  what, path);
		else
			zublk_log(ZUBLK_LOG_ERR, "%s '%s': %s", what, path, strerror(-ret));
		goto err;
	}
	ret = backing_shape(b, &st, what, path);
	if (ret)
		goto err; /* said */
	if (b->size < (1ULL << b->lbs_shift)) {
		zublk_log(ZUBLK_LOG_ERR, "%s '%s': too small (%llu bytes)", what, path,
			  (unsigned long long)b->size);
		ret = -EINVAL;
		goto err;
	}
	return 0;

err_errno:
	ret = -errno;
	zublk_log(ZUBLK_LOG_ERR, "%s '%s': %s", what, path, strerror(-ret));
err:
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
	return ret;
}

/* ------------------------------------------------- the mapped file */

#define MEM_PAGE 4096ULL
/* Address space kept free past the file's end, so it can grow in place. */
#define MEM_GROW_ROOM (1ULL << 40)

struct zublk_mem {
	uint8_t *base;			/* reserved: [base, base + reserved) */
	uint64_t reserved;
	_Atomic uint64_t len;		/* mapped (a page multiple) */
	int prot;
	/*
	 * Bit per page: known to hold a page.  Reading a hole through the
	 * mapping would allocate a page to read zeros, so a READ touches only
	 * pages known here (or found by mincore()).  Stale bits only cost
	 * memory, never data: a hole reads as zeros either way.
	 */
	_Atomic uint64_t *present;
	size_t present_bytes;
	/*
	 * The file, ours until zublk_backing_close(): the copy modes read and
	 * write it with pread()/pwrite() straight into the request's buffer,
	 * which beats copying through the mapping with process_vm_readv() /
	 * writev() (8-9 us vs 15-18 us for 4 KiB in the project's VM, both
	 * safe where a plain memcpy() from the mapping could take a SIGBUS).
	 * A dup, so that a target swapping b->fd does not pull it from under
	 * a copy in flight.
	 */
	int fd;
};

static uint64_t mem_round(uint64_t v)
{
	return (v + MEM_PAGE - 1) & ~(MEM_PAGE - 1);
}

int zublk_backing_map(struct zublk_backing *b, uint64_t size)
{
	struct zublk_mem *m = b->mem;
	uint64_t want = mem_round(size), have;
	void *p;

	if (!b->in_memory || b->fd < 0)
		return -EOPNOTSUPP;
	if (!m) {
		uint64_t reserved = want + MEM_GROW_ROOM;

		m = calloc(1, sizeof(*m));
		if (!m)
			return -ENOMEM;
		m->fd = fcntl(b->fd, F_DUPFD_CLOEXEC, 0);
		if (m->fd < 0) {
			free(m);
			return -errno;
		}
		p = mmap(NULL, reserved, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			 -1, 0);
		if (p == MAP_FAILED)
			goto err_free;
		m->base = p;
		m->reserved = reserved;
		/* One bit a page over the whole reservation; untouched parts cost nothing. */
		m->present_bytes = (size_t)(reserved / MEM_PAGE / 8);
		p = mmap(NULL, m->present_bytes, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED)
			goto err_unmap;
		m->present = p;
		b->copy_max = ZUBLK_BACKING_COPY_MAX;
		m->prot = PROT_READ | ((fcntl(b->fd, F_GETFL) & O_ACCMODE) == O_RDONLY
					       ? 0 : PROT_WRITE);
		b->mem = m;
	}
	have = atomic_load(&m->len);
	if (want <= have)
		return 0;
	if (want > m->reserved)
		return -E2BIG;
	/* Over our own reservation, so no one else's mapping can be there. */
	p = mmap(m->base + have, want - have, m->prot, MAP_SHARED | MAP_FIXED, b->fd,
		 (off_t)have);
	if (p == MAP_FAILED)
		return -errno;
	atomic_store(&m->len, want);
	return 0;

err_unmap:
	munmap(m->base, m->reserved);
err_free:
	close(m->fd);
	free(m);
	return -ENOMEM;
}

static void mem_unmap(struct zublk_mem *m)
{
	munmap(m->present, m->present_bytes);
	munmap(m->base, m->reserved);
	close(m->fd);
	free(m);
}

void zublk_backing_close(struct zublk_backing *b)
{
	if (b->mem)
		mem_unmap(b->mem);
	b->mem = NULL;
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
}

static bool mem_test(struct zublk_mem *m, uint64_t pg)
{
	return atomic_load_explicit(&m->present[pg / 64], memory_order_relaxed) &
	       (1ULL << (pg % 64));
}

static void mem_mark(struct zublk_mem *m, uint64_t first, uint64_t last, bool set)
{
	for (uint64_t pg = first; pg <= last; pg++) {
		if (set)
			atomic_fetch_or_explicit(&m->present[pg / 64], 1ULL << (pg % 64),
						 memory_order_relaxed);
		else
			atomic_fetch_and_explicit(&m->present[pg / 64], ~(1ULL << (pg % 64)),
						  memory_order_relaxed);
	}
}

/* Do pages first..last all hold a page?  Asks mincore() about unknown ones. */
static bool mem_present(struct zublk_mem *m, uint64_t first, uint64_t last)
{
	unsigned char vec[256];
	uint64_t pg = first;

	while (pg <= last && mem_test(m, pg))
		pg++;
	while (pg <= last) {
		uint64_t n = last - pg + 1 < sizeof(vec) ? last - pg + 1 : sizeof(vec);

		if (mincore(m->base + pg * MEM_PAGE, n * MEM_PAGE, vec))
			return false;
		for (uint64_t i = 0; i < n; i++) {
			if (!(vec[i] & 1))
				return false;
			mem_mark(m, pg + i, pg + i, true);
		}
		pg += n;
	}
	return true;
}

/*
 * The copy modes: the file straight into or out of the request's buffer.
 * A hole reads as zeros without taking memory.  A copy that raced with
 * zublk_backing_unmap() may have gone to the file being swapped out: it
 * fails, and the target redoes it the usual way.
 */
static int file_copy(struct zublk_mem *m, struct zublk_io *io, uint64_t off, uint32_t io_off,
		     uint32_t len)
{
	ssize_t n;

	if (io->op == UBLK_IO_OP_READ)
		n = pread(m->fd, (uint8_t *)io->buf + io_off, len, (off_t)off);
	else if (io->op == UBLK_IO_OP_WRITE)
		n = pwrite(m->fd, (uint8_t *)io->buf + io_off, len, (off_t)off);
	else
		return -EOPNOTSUPP;
	if (n != (ssize_t)len)
		return n < 0 ? -errno : -EIO; /* the file shrank */
	if (off + len > atomic_load(&m->len))
		return -ESTALE;
	return 0;
}

int zublk_backing_copy(struct zublk_queue *q, struct zublk_io *io, struct zublk_backing *b,
		       uint64_t off, uint32_t io_off, uint32_t len)
{
	struct zublk_mem *m = b->mem;
	uint64_t first, last;
	int ret;

	if (!m || !zublk_io_can_copy(q, io) || len == 0 || (uint64_t)io_off + len > io->len)
		return -EOPNOTSUPP;
	if (len > b->copy_max)
		return -E2BIG;
	if (off + len > atomic_load_explicit(&m->len, memory_order_acquire))
		return -ERANGE;
	first = off / MEM_PAGE;
	last = (off + len - 1) / MEM_PAGE;
	if (io->buf)
		ret = file_copy(m, io, off, io_off, len);
	else if (io->op == UBLK_IO_OP_READ && !mem_present(m, first, last))
		return -ENODATA;
	else
		ret = zublk_io_copy(q, io, io_off, m->base + off, len);
	if (ret)
		return ret;
	if (io->op == UBLK_IO_OP_WRITE)
		mem_mark(m, first, last, true);
	atomic_fetch_add_explicit(&q->stats->copies, 1, memory_order_relaxed);
	return 0;
}

void zublk_backing_unmap(struct zublk_backing *b)
{
	struct zublk_mem *m = b->mem;
	uint64_t len;

	if (!m)
		return;
	len = atomic_exchange(&m->len, 0);
	if (len)
		mmap(m->base, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
			 MAP_FIXED, -1, 0);
}

bool zublk_backing_is_mapped(const struct zublk_backing *b)
{
	return b->mem && atomic_load(&b->mem->len) > 0;
}

int zublk_backing_zero_mode(const struct zublk_backing *b, bool nounmap)
{
	if (b->bdev || (nounmap && !__atomic_load_n(&b->no_zero_range, __ATOMIC_RELAXED)))
		return FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
	return FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
}

bool zublk_backing_zero_refused(struct zublk_backing *b, int res)
{
	if (res != -EOPNOTSUPP || b->bdev)
		return false;
	__atomic_store_n(&b->no_zero_range, true, __ATOMIC_RELAXED);
	return true;
}

void zublk_backing_forget(struct zublk_backing *b, uint64_t off, uint64_t len)
{
	struct zublk_mem *m = b->mem;
	uint64_t len_mapped;

	if (!m || len == 0)
		return;
	len_mapped = atomic_load(&m->len);
	if (off >= len_mapped)
		return;
	if (len > len_mapped - off)
		len = len_mapped - off;
	mem_mark(m, off / MEM_PAGE, (off + len - 1) / MEM_PAGE, false);
}
