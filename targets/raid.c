// SPDX-License-Identifier: MIT
/*
 * Shared by stripe and mirror: opening a member (a regular file or a block
 * device), and the pure stripe and mirror math (unit-tested).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "raid.h"

static bool raid_bdev_can_discard(dev_t rdev)
{
	char path[96];
	unsigned long long max = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/queue/discard_max_bytes",
		 major(rdev), minor(rdev));
	f = fopen(path, "re");
	if (!f)
		return false;
	if (fscanf(f, "%llu", &max) != 1)
		max = 0;
	fclose(f);
	return max > 0;
}

static int raid_member_geom(const char *what, struct raid_member *m, bool buffered)
{
	struct stat st;
	int ret;

	if (fstat(m->fd, &st))
		goto err_errno;
	if (S_ISBLK(st.st_mode)) {
		int lbs = 512, pbs = 512;

		m->bdev = true;
		if (ioctl(m->fd, BLKGETSIZE64, &m->size) || ioctl(m->fd, BLKSSZGET, &lbs) ||
		    ioctl(m->fd, BLKPBSZGET, &pbs))
			goto err_errno;
		m->lbs_shift = (unsigned)__builtin_ctz((unsigned)lbs);
		m->pbs_shift = (unsigned)__builtin_ctz((unsigned)pbs);
		m->can_discard = raid_bdev_can_discard(st.st_rdev);
		m->can_zero = true;
	} else if (S_ISREG(st.st_mode)) {
		unsigned lbs = 512;
		struct statx stx;

		m->size = (uint64_t)st.st_size;
		/* O_DIRECT needs the file system's alignment as our block size. */
		if (!buffered && !statx(m->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) &&
		    (stx.stx_mask & STATX_DIOALIGN)) {
			while (lbs < stx.stx_dio_offset_align && lbs < 4096)
				lbs <<= 1;
			if (stx.stx_dio_mem_align > 512)
				m->dma_alignment = stx.stx_dio_mem_align - 1;
		}
		m->lbs_shift = (unsigned)__builtin_ctz(lbs);
		m->pbs_shift = st.st_blksize >= 4096 ? 12 : m->lbs_shift;
		/* Past the end with KEEP_SIZE: changes nothing, tells if it works. */
		m->can_discard = m->can_zero =
			fallocate(m->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				  (off_t)m->size, 1 << m->lbs_shift) == 0;
	} else {
		zublk_log(ZUBLK_LOG_ERR, "%s '%s': not a regular file or block device",
			  what, m->path);
		return -EINVAL;
	}
	if (m->size < (1ULL << m->lbs_shift)) {
		zublk_log(ZUBLK_LOG_ERR, "%s '%s': too small (%llu bytes)", what,
			  m->path, (unsigned long long)m->size);
		return -EINVAL;
	}
	return 0;

err_errno:
	ret = -errno;
	zublk_log(ZUBLK_LOG_ERR, "%s '%s': %s", what, m->path, strerror(-ret));
	return ret;
}

int raid_member_open(const char *what, const char *path, int want_buffered,
		     struct raid_member *m)
{
	bool buffered = want_buffered < 0 ? zublk_backing_in_memory(path) : want_buffered;
	int ret;

	memset(m, 0, sizeof(*m));
	m->fd = -1;
	m->idx = -1;
	if (!path || !*path) {
		zublk_log(ZUBLK_LOG_ERR, "%s '': an empty path", what);
		return -EINVAL;
	}
	m->path = strdup(path);
	if (!m->path)
		return -ENOMEM;
	m->fd = open(path, O_RDWR | O_CLOEXEC | (buffered ? 0 : O_DIRECT));
	if (m->fd < 0) {
		ret = -errno;
		if (ret == -EINVAL && !buffered)
			zublk_log(ZUBLK_LOG_ERR,
				  "%s '%s': O_DIRECT is not supported there (use buffered=1)",
				  what, path);
		else
			zublk_log(ZUBLK_LOG_ERR, "%s '%s': %s", what, path,
				  strerror(-ret));
		goto err;
	}
	ret = raid_member_geom(what, m, buffered);
	if (ret)
		goto err;
	return 0;
err:
	raid_member_close(m);
	return ret;
}

void raid_member_close(struct raid_member *m)
{
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
	free(m->path);
	m->path = NULL;
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
