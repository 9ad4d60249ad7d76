// SPDX-License-Identifier: MIT
/*
 * Shared-memory zero copy (UBLK_F_SHMEM_ZC).  The daemon maps each --shmem
 * file shared and registers the mapping with the driver, which pins its pages
 * and, for every request whose pages lie in one registered buffer, in order,
 * hands over the buffer's index and the data's offset in it instead of
 * copying or lending the pages: an application doing O_DIRECT I/O from its
 * own shared mapping of the same file (a memfd it passed on, a file in
 * /dev/shm or on hugetlbfs) meets the daemon in the same memory.
 *
 * A file the daemon may not write (a memfd sealed against writing, a file
 * it can open only for reading) is mapped read-only and registered with
 * UBLK_SHMEM_BUF_READ_ONLY: the driver pins its pages without write access
 * and meets only writes to the device in it, never reads.
 *
 * The registrations belong to the device, not to the daemon: they stay
 * until the device is deleted, so a recovering daemon maps the files again
 * and takes the indexes from the state file.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* The driver's limit on one buffer: 4 GiB. */
#define SHMEM_MAX_LEN (1ULL << 32)

/* A memfd sealed against writing: its pages can be mapped only for reading. */
static bool write_sealed(int fd)
{
	int seals = fcntl(fd, F_GET_SEALS);

	return seals > 0 && (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE));
}

int zublk_shmem_map(const char *path, struct zublk_shmem *s)
{
	long page = sysconf(_SC_PAGESIZE);
	bool ro = false;
	struct stat st;
	void *p;
	int fd, ret = 0;

	fd = zublk_open_nowait(path, O_RDWR, 0);
	if (fd < 0 && (errno == EACCES || errno == EPERM || errno == EROFS)) {
		fd = zublk_open_nowait(path, O_RDONLY, 0);
		ro = true;
	}
	if (fd < 0) {
		ret = -errno;
		zublk_err("--shmem %s: %s", path, strerror(-ret));
		return ret;
	}
	if (fstat(fd, &st)) {
		ret = -errno;
		zublk_err("--shmem %s: %s", path, strerror(-ret));
	} else if (!S_ISREG(st.st_mode)) {
		ret = -EINVAL;
		zublk_err("--shmem %s: not a regular file (a file on tmpfs or hugetlbfs)", path);
	} else if (st.st_size <= 0 || st.st_size % page || (uint64_t)st.st_size > SHMEM_MAX_LEN) {
		ret = -EINVAL;
		zublk_err("--shmem %s: size %lld: must be a multiple of %ld bytes, up to 4G",
			  path, (long long)st.st_size, page);
	}
	if (ret) {
		close(fd);
		return ret;
	}
	ro = ro || write_sealed(fd);
	p = mmap(NULL, (size_t)st.st_size, ro ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED,
		 fd, 0);
	if (p == MAP_FAILED)
		ret = -errno;
	close(fd);
	if (ret) {
		zublk_err("--shmem %s: mmap: %s", path, strerror(-ret));
		return ret;
	}
	s->base = p;
	s->len = (uint64_t)st.st_size;
	s->dev = (uint64_t)st.st_dev;
	s->ino = (uint64_t)st.st_ino;
	s->index = -1;
	s->read_only = ro;
	return 0;
}

int zublk_shmem_setup(struct zublk_dev *dev)
{
	const struct zublk_dev_config *cfg = &dev->cfg;
	int ret;

	for (unsigned i = 0; i < cfg->nr_shmem; i++) {
		struct zublk_shmem *s = &dev->shm[i];

		ret = zublk_shmem_map(cfg->shmem[i], s);
		if (ret)
			return ret;
		dev->nr_shm = i + 1;
		if (cfg->recover) {
			const struct zublk_shmem_id *id = &cfg->shmem_id[i];

			/* Still registered: the driver keeps it for the device's life. */
			s->index = cfg->shmem_index[i];
			if (id->ino && (id->dev != s->dev || id->ino != s->ino)) {
				zublk_err("--shmem %s: not the file the device registered (made again "
					  "since?): the driver serves the old one's pages; delete the "
					  "device and add it again", cfg->shmem[i]);
				return -ESTALE;
			}
			if (id->ino && id->len != s->len) {
				zublk_err("--shmem %s: %llu bytes now, %llu when the device registered "
					  "it: the driver serves those pages; give it that size back, "
					  "or delete the device and add it again", cfg->shmem[i],
					  (unsigned long long)s->len, (unsigned long long)id->len);
				return -ESTALE;
			}
			continue;
		}
		ret = zublk_ctrl_reg_buf(dev->ctrl, dev->info.dev_id, s->base, s->len,
					 s->read_only ? UBLK_SHMEM_BUF_READ_ONLY : 0);
		if (ret < 0) {
			zublk_err("--shmem %s: UBLK_U_CMD_REG_BUF: %s%s", cfg->shmem[i],
				  strerror(-ret),
				  ret == -EEXIST ? " (its pages are registered already: the "
						   "same file twice?)"
						 : "");
			return ret;
		}
		s->index = ret;
	}
	return 0;
}

void zublk_shmem_release(struct zublk_dev *dev)
{
	for (unsigned i = 0; i < dev->nr_shm; i++)
		munmap(dev->shm[i].base, dev->shm[i].len);
	dev->nr_shm = 0;
}

void *zublk_shmem_resolve(const struct zublk_dev *dev, uint64_t addr, uint64_t len, bool into)
{
	int index = (int)ublk_shmem_zc_index(addr);
	uint64_t off = ublk_shmem_zc_offset(addr);

	for (unsigned i = 0; i < dev->nr_shm; i++) {
		const struct zublk_shmem *s = &dev->shm[i];

		if (s->index == index)
			return off <= s->len && len <= s->len - off && !(into && s->read_only)
				       ? s->base + off
				       : NULL;
	}
	return NULL;
}
