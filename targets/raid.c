// SPDX-License-Identifier: MIT
/*
 * Shared by stripe and mirror: opening a member (a regular file or a block
 * device), and the pure stripe and mirror math (unit-tested).
 */
#include <errno.h>
#include <limits.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "raid.h"

int raid_member_open(const char *what, const char *path, int buffered,
		     struct raid_member *m)
{
	int ret;

	memset(m, 0, sizeof(*m));
	m->b.fd = -1;
	m->idx = -1;
	ret = zublk_backing_open(&m->b, what, path, false, buffered);
	if (ret)
		return ret;
	m->path = strdup(path);
	if (!m->path) {
		zublk_backing_close(&m->b);
		return -ENOMEM;
	}
	return 0;
}

void raid_member_fold(const struct raid_member *m, struct zublk_target_geom *g, bool *discard,
		      bool *zero)
{
	if (m->b.pbs_shift > g->physical_bs_shift)
		g->physical_bs_shift = m->b.pbs_shift;
	if (m->b.dma_alignment > g->dma_alignment)
		g->dma_alignment = m->b.dma_alignment;
	*discard &= m->b.can_discard;
	*zero &= m->b.can_zero;
}

void raid_member_close(struct raid_member *m)
{
	zublk_backing_close(&m->b);
	free(m->path);
	m->path = NULL;
}

/*
 * Where a member's data lives: bytes [off, off + len) (len 0: to the end)
 * of a file (dev, ino) or of a whole block device (dev).
 */
struct raid_extent {
	bool file;
	dev_t dev;
	ino_t ino;
	uint64_t off, len;
};

/* The first line of sysfs file @dir/@name into @buf; false if none. */
static bool sysfs_line(const char *dir, const char *name, char *buf, size_t len)
{
	char path[PATH_MAX + 64];
	FILE *f;
	bool ok;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "re");
	if (!f)
		return false;
	ok = fgets(buf, (int)len, f) != NULL;
	fclose(f);
	if (ok)
		buf[strcspn(buf, "\n")] = '\0';
	return ok;
}

static uint64_t sysfs_u64(const char *dir, const char *name)
{
	char buf[32];

	return sysfs_line(dir, name, buf, sizeof(buf)) ? strtoull(buf, NULL, 10) : 0;
}

/*
 * @fd's extent: a partition is a range of its disk, and a loop device (or
 * a partition of one) a range of the file it serves.  The loop driver says
 * which file by device and inode (its sysfs backing_file is a path, which
 * reads otherwise in another mount namespace, as our daemon's).  What
 * sysfs does not say stays the device itself (device-mapper is not looked
 * through).
 */
static void raid_extent_of(int fd, const struct stat *st, struct raid_extent *e)
{
	char link[64], dir[PATH_MAX], up[PATH_MAX + 8], buf[64];
	struct loop_info64 li;
	unsigned ma, mi;

	*e = (struct raid_extent){ .file = !S_ISBLK(st->st_mode), .dev = st->st_dev,
				   .ino = st->st_ino };
	if (e->file)
		return;
	e->dev = st->st_rdev;
	e->ino = 0;
	snprintf(link, sizeof(link), "/sys/dev/block/%u:%u", major(st->st_rdev),
		 minor(st->st_rdev));
	if (!realpath(link, dir))
		return;
	if (sysfs_line(dir, "partition", buf, sizeof(buf))) {
		snprintf(up, sizeof(up), "%s/..", dir);
		if (!sysfs_line(up, "dev", buf, sizeof(buf)) || sscanf(buf, "%u:%u", &ma, &mi) != 2 ||
		    !realpath(up, dir))
			return;
		e->dev = makedev(ma, mi);
		e->off = sysfs_u64(link, "start") * 512;
		e->len = sysfs_u64(link, "size") * 512;
	}
	/* A loop device's partition answers for its loop device. */
	snprintf(up, sizeof(up), "%s/loop", dir);
	if (access(up, F_OK) || ioctl(fd, LOOP_GET_STATUS64, &li))
		return;
	e->file = true;
	e->dev = (dev_t)li.lo_device;
	e->ino = (ino_t)li.lo_inode;
	e->off += li.lo_offset;
	if (!e->len)
		e->len = li.lo_sizelimit;
}

bool raid_same_storage(int a, int b)
{
	struct raid_extent ea, eb;
	struct stat sa, sb;
	uint64_t enda, endb;

	if (fstat(a, &sa) || fstat(b, &sb))
		return false;
	raid_extent_of(a, &sa, &ea);
	raid_extent_of(b, &sb, &eb);
	if (ea.file != eb.file || ea.dev != eb.dev || ea.ino != eb.ino)
		return false;
	enda = ea.len ? ea.off + ea.len : UINT64_MAX;
	endb = eb.len ? eb.off + eb.len : UINT64_MAX;
	return ea.off < endb && eb.off < enda;
}

/* --------------------------------------------------------------- stripe */

int stripe_chunk_check(uint64_t chunk)
{
	if (chunk < STRIPE_MIN_CHUNK || chunk > STRIPE_MAX_CHUNK || (chunk & (chunk - 1)))
		return -EINVAL;
	return 0;
}

uint64_t stripe_size(const struct stripe_layout *l, const uint64_t *member_sizes)
{
	uint64_t min = UINT64_MAX;

	for (unsigned i = 0; i < l->nr; i++)
		if (member_sizes[i] < min)
			min = member_sizes[i];
	min &= ~((1ULL << l->chunk_shift) - 1);
	if (l->nr && min > UINT64_MAX / l->nr)
		return 0;
	return min * l->nr;
}

unsigned stripe_nr_pieces(const struct stripe_layout *l, uint64_t off, uint64_t len)
{
	return (unsigned)(((off + len - 1) >> l->chunk_shift) - (off >> l->chunk_shift) + 1);
}

void stripe_piece(const struct stripe_layout *l, uint64_t off, uint64_t len, unsigned i,
		  struct stripe_piece *p)
{
	uint64_t chunk = 1ULL << l->chunk_shift, mask = chunk - 1;
	uint64_t first = chunk - (off & mask), io_off, plen, dev_off, cno;

	if (i == 0) {
		io_off = 0;
		plen = first < len ? first : len;
	} else {
		io_off = first + (uint64_t)(i - 1) * chunk;
		plen = len - io_off < chunk ? len - io_off : chunk;
	}
	dev_off = off + io_off;
	cno = dev_off >> l->chunk_shift;
	p->member = (unsigned)(cno % l->nr);
	p->member_off = ((cno / l->nr) << l->chunk_shift) + (dev_off & mask);
	p->io_off = (uint32_t)io_off;
	p->len = (uint32_t)plen;
}

/* Bytes of @member's space that come before device offset @off. */
static uint64_t stripe_member_pos(const struct stripe_layout *l, uint64_t off,
				  unsigned member)
{
	uint64_t cno = off >> l->chunk_shift, row = cno / l->nr;
	unsigned m = (unsigned)(cno % l->nr);
	uint64_t pos = row << l->chunk_shift;

	if (member < m)
		pos += 1ULL << l->chunk_shift;
	else if (member == m)
		pos += off & ((1ULL << l->chunk_shift) - 1);
	return pos;
}

void stripe_member_range(const struct stripe_layout *l, uint64_t off, uint64_t len,
			 unsigned member, uint64_t *start, uint64_t *end)
{
	*start = stripe_member_pos(l, off, member);
	*end = stripe_member_pos(l, off + len, member);
}

/* --------------------------------------------------------------- mirror */

int mirror_pick_leg(uint32_t ok_mask, uint32_t tried, const unsigned *inflight, unsigned nr,
		    unsigned hint)
{
	int best = -1;

	if (nr == 0)
		return -1;
	for (unsigned k = 0; k < nr; k++) {
		unsigned i = (hint + k) % nr;

		if (!(ok_mask & MIRROR_LEG(i)) || (tried & MIRROR_LEG(i)))
			continue;
		if (best < 0 || inflight[i] < inflight[best])
			best = (int)i;
	}
	return best;
}

uint32_t mirror_fail_leg(uint32_t word, unsigned leg, bool *failed)
{
	uint32_t ok = MIRROR_OK(word), rb = MIRROR_RB(word), bit = MIRROR_LEG(leg);

	*failed = false;
	if (rb & bit) {
		rb &= ~bit;
		*failed = true;
	} else if ((ok & bit) && (ok & ~bit)) {
		ok &= ~bit;
		*failed = true;
	}
	return ok | rb << 16;
}

int mirror_parse_failed(const char *s, unsigned nr, uint32_t *failed)
{
	*failed = 0;
	if (!s || !*s)
		return 0;
	for (const char *p = s; *p;) {
		char *end;
		unsigned long v;

		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = strtoul(p, &end, 10);
		if (v >= nr || v >= MIRROR_MAX_LEGS || (*end && *end != ',') ||
		    (*end == ',' && !end[1]))
			return -EINVAL;
		*failed |= MIRROR_LEG(v);
		p = *end ? end + 1 : end;
	}
	return 0;
}

const char *mirror_leg_state_name(uint32_t word, unsigned leg)
{
	if (MIRROR_OK(word) & MIRROR_LEG(leg))
		return "ok";
	if (MIRROR_RB(word) & MIRROR_LEG(leg))
		return "rebuilding";
	return "failed";
}
