// SPDX-License-Identifier: MIT
/*
 * stripe (RAID0): chunk-sized pieces spread round robin over 2..N members
 * (regular files or block devices).  A read or write is split at chunk
 * edges into sub-range ops on the request's one buffer (registered once in
 * the zero-copy modes), FLUSH goes to every member, DISCARD and
 * WRITE_ZEROES become one contiguous range per member.  The mapping is pure
 * (targets/raid.c, tests/unit/test-stripe.c).  Members in memory (tmpfs)
 * are mapped, and a read or write whose members all are is copied piece
 * by piece in the queue thread (as loop does), in every data mode.
 */
#include <errno.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "raid.h"

#define STRIPE_DEF_CHUNK (64ULL << 10)
#define STRIPE_MAX_MEMBERS 32
/*
 * sub: a piece index, or STRIPE_SUB_MEMBER | member for flush/discard/zero
 * (with STRIPE_SUB_ZRANGE: a zeroed range, whose refusal by a file
 * member's file system is done again as a punched hole).
 */
#define STRIPE_SUB_MEMBER 0x8000U
#define STRIPE_SUB_ZRANGE 0x4000U
#define STRIPE_SUB_K(sub) ((sub) & ~(STRIPE_SUB_MEMBER | STRIPE_SUB_ZRANGE))

struct stripe_dev {
	struct stripe_layout l;
	unsigned nr;
	bool mapped;		/* every member is: zublk_backing_copy() */
	struct raid_member m[STRIPE_MAX_MEMBERS];
};

struct stripe_tag {
	unsigned pending;	/* pieces in flight */
	int err;		/* first error */
	uint32_t *done;		/* bytes done per piece; only after a short IO */
	bool done_used;
};

struct stripe_queue {
	struct stripe_tag *tags;
	unsigned depth;
	unsigned max_pieces;
};

static int stripe_parse(struct zublk_opts *opts, uint64_t *chunk, int *buffered,
			int *map, unsigned *nr)
{
	const char *s;

	*nr = zublk_opts_count(opts, "file");
	if (*nr < 2) {
		zublk_log(ZUBLK_LOG_ERR,
			  "stripe: needs 2 or more members (file=PATH file=PATH ...), got %u",
			  *nr);
		return -EINVAL;
	}
	if (*nr > STRIPE_MAX_MEMBERS) {
		zublk_log(ZUBLK_LOG_ERR, "stripe: %u members: at most %u", *nr,
			  STRIPE_MAX_MEMBERS);
		return -EINVAL;
	}
	s = zublk_opts_get(opts, "chunk");
	*chunk = STRIPE_DEF_CHUNK;
	if (s && (zublk_parse_size(s, chunk) || stripe_chunk_check(*chunk))) {
		zublk_log(ZUBLK_LOG_ERR, "stripe: chunk '%s': not a power of two from 4k to 1G",
			  s);
		return -EINVAL;
	}
	if (zublk_opts_get_tristate(opts, "buffered", buffered)) {
		zublk_log(ZUBLK_LOG_ERR, "stripe: buffered '%s': not 0 or 1",
			  zublk_opts_get(opts, "buffered"));
		return -EINVAL;
	}
	if (zublk_opts_get_tristate(opts, "map", map)) {
		zublk_log(ZUBLK_LOG_ERR, "stripe: map '%s': not 0 or 1", zublk_opts_get(opts, "map"));
		return -EINVAL;
	}
	return 0;
}

/* map=1 wants every member in memory; by default they are mapped when they all are. */
static int stripe_map(struct stripe_dev *sd, int map)
{
	int ret;

	if (map == 0)
		return 0;
	for (unsigned i = 0; i < sd->nr; i++) {
		if (sd->m[i].b.in_memory)
			continue;
		if (map < 0)
			return 0;
		zublk_log(ZUBLK_LOG_ERR, "stripe: map=1: member '%s' is not in memory (tmpfs, ramfs)",
			  sd->m[i].path);
		return -EINVAL;
	}
	for (unsigned i = 0; i < sd->nr; i++) {
		ret = zublk_backing_map(&sd->m[i].b, sd->m[i].b.size);
		if (ret) {
			zublk_log(ZUBLK_LOG_ERR, "stripe: member '%s': mapping it: %s",
				  sd->m[i].path, strerror(-ret));
			return ret;
		}
	}
	sd->mapped = true;
	return 0;
}

/* Same block size everywhere, no member twice, each at least one chunk. */
static int stripe_check_members(struct stripe_dev *sd, uint64_t chunk)
{
	struct raid_member *m = sd->m;

	for (unsigned i = 0; i < sd->nr; i++) {
		if (m[i].b.lbs_shift != m[0].b.lbs_shift) {
			zublk_log(ZUBLK_LOG_ERR,
				  "stripe: member '%s' has %u-byte blocks but '%s' has %u-byte blocks",
				  m[i].path, 1U << m[i].b.lbs_shift, m[0].path,
				  1U << m[0].b.lbs_shift);
			return -EINVAL;
		}
		if (m[i].b.size < chunk) {
			zublk_log(ZUBLK_LOG_ERR,
				  "stripe: member '%s': %llu bytes, smaller than one %llu-byte chunk",
				  m[i].path, (unsigned long long)m[i].b.size,
				  (unsigned long long)chunk);
			return -EINVAL;
		}
		for (unsigned j = 0; j < i; j++) {
			if (raid_same_storage(m[i].b.fd, m[j].b.fd)) {
				zublk_log(ZUBLK_LOG_ERR, "stripe: member '%s': the same as '%s'",
					  m[i].path, m[j].path);
				return -EINVAL;
			}
		}
	}
	return 0;
}

static void stripe_free(struct stripe_dev *sd)
{
	for (unsigned i = 0; i < sd->nr; i++)
		raid_member_close(&sd->m[i]);
	free(sd);
}

static int stripe_init(struct zublk_dev *dev, struct zublk_opts *opts,
		       struct zublk_target_geom *geom)
{
	uint64_t chunk, sizes[STRIPE_MAX_MEMBERS];
	bool discard = true, zero = true;
	int buffered = -1, map = -1;
	struct stripe_dev *sd;
	unsigned nr;
	int ret;

	ret = stripe_parse(opts, &chunk, &buffered, &map, &nr);
	if (ret)
		return ret;
	sd = calloc(1, sizeof(*sd));
	if (!sd)
		return -ENOMEM;
	sd->l.chunk_shift = (unsigned)__builtin_ctzll(chunk);
	sd->l.nr = nr;
	for (unsigned i = 0; i < nr; i++) {
		ret = raid_member_open("stripe: member", zublk_opts_get_nth(opts, "file", i), buffered,
				       &sd->m[i]);
		if (ret)
			goto err;
		sd->nr++;
	}
	ret = stripe_check_members(sd, chunk);
	if (ret)
		goto err;
	ret = stripe_map(sd, map);
	if (ret)
		goto err;
	geom->want_copy = sd->mapped;
	geom->copies_all = sd->mapped;

	geom->logical_bs_shift = sd->m[0].b.lbs_shift;
	geom->physical_bs_shift = sd->m[0].b.pbs_shift;
	geom->caps = ZUBLK_CAP_FLUSH | ZUBLK_CAP_FUA;
	for (unsigned i = 0; i < nr; i++) {
		struct raid_member *m = &sd->m[i];

		sizes[i] = m->b.size;
		raid_member_fold(m, geom, &discard, &zero);
		m->idx = zublk_dev_add_file(dev, m->b.fd);
		if (m->idx < 0) {
			ret = m->idx;
			zublk_log(ZUBLK_LOG_ERR, "stripe: member '%s': %s", m->path,
				  strerror(-ret));
			goto err;
		}
	}
	if (discard)
		geom->caps |= ZUBLK_CAP_DISCARD;
	if (zero)
		geom->caps |= ZUBLK_CAP_WRITE_ZEROES;
	geom->size = stripe_size(&sd->l, sizes);
	zublk_dev_set_priv(dev, sd);
	return 0;
err:
	stripe_free(sd);
	return ret;
}

static void stripe_exit(struct zublk_dev *dev)
{
	struct stripe_dev *sd = zublk_dev_priv(dev);

	if (sd)
		stripe_free(sd);
	zublk_dev_set_priv(dev, NULL);
}

static int stripe_queue_init(struct zublk_queue *q)
{
	struct zublk_dev *dev = zublk_queue_dev(q);
	struct stripe_dev *sd = zublk_dev_priv(dev);
	struct stripe_queue *sq = calloc(1, sizeof(*sq));

	if (!sq)
		return -ENOMEM;
	sq->depth = zublk_dev_info(dev)->queue_depth;
	/* One more than fits when the request does not start on a chunk edge. */
	sq->max_pieces = (zublk_dev_info(dev)->max_io_buf_bytes >> sd->l.chunk_shift) + 2;
	sq->tags = calloc(sq->depth, sizeof(*sq->tags));
	if (!sq->tags) {
		free(sq);
		return -ENOMEM;
	}
	zublk_queue_set_priv(q, sq);
	return 0;
}

static void stripe_queue_exit(struct zublk_queue *q)
{
	struct stripe_queue *sq = zublk_queue_priv(q);

	if (!sq)
		return;
	for (unsigned t = 0; t < sq->depth; t++)
		free(sq->tags[t].done);
	free(sq->tags);
	free(sq);
	zublk_queue_set_priv(q, NULL);
}

/* Every piece copied straight to or from the mapped members; false: do it all again. */
static bool stripe_copy(struct zublk_queue *q, struct zublk_io *io, struct stripe_dev *sd,
			unsigned n)
{
	struct stripe_piece p;

	if (!sd->mapped)
		return false;
	for (unsigned i = 0; i < n; i++) {
		stripe_piece(&sd->l, io->offset, io->len, i, &p);
		if (zublk_backing_copy(q, io, &sd->m[p.member].b, p.member_off, p.io_off, p.len))
			return false;
	}
	return true;
}

static int stripe_rw(struct zublk_queue *q, struct zublk_io *io, struct stripe_tag *t)
{
	struct stripe_dev *sd = zublk_dev_priv(zublk_queue_dev(q));
	bool write = io->op == UBLK_IO_OP_WRITE;
	unsigned n = stripe_nr_pieces(&sd->l, io->offset, io->len);
	struct stripe_piece p;
	int ret;

	if (stripe_copy(q, io, sd, n)) {
		zublk_io_complete(q, io, (int)io->len);
		return 0;
	}
	for (unsigned i = 0; i < n; i++) {
		stripe_piece(&sd->l, io->offset, io->len, i, &p);
		ret = zublk_io_prep_rw(q, io, write, sd->m[p.member].idx, p.member_off, p.io_off,
				       p.len, i);
		if (ret) {
			/* Nothing queued: the core fails it; else the last CQE does. */
			if (!t->pending)
				return ret;
			t->err = ret;
			break;
		}
		t->pending++;
	}
	return 0;
}

static int stripe_member_op(struct zublk_queue *q, struct zublk_io *io, unsigned k,
			    uint64_t start, uint64_t len)
{
	struct stripe_dev *sd = zublk_dev_priv(zublk_queue_dev(q));
	struct raid_member *m = &sd->m[k];
	struct io_uring_sqe *sqe = zublk_queue_get_sqe(q);
	int mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	unsigned sub = STRIPE_SUB_MEMBER | k;

	if (!sqe)
		return -EBUSY;
	switch (io->op) {
	case UBLK_IO_OP_FLUSH:
		io_uring_prep_fsync(sqe, m->idx, IORING_FSYNC_DATASYNC);
		break;
	case UBLK_IO_OP_DISCARD:
		if (m->b.bdev) {
			io_uring_prep_cmd_discard(sqe, m->idx, start, len);
			break;
		}
		io_uring_prep_fallocate(sqe, m->idx, mode, (off_t)start, (off_t)len);
		break;
	default: /* WRITE_ZEROES */
		mode = zublk_backing_zero_mode(&m->b, io->flags & UBLK_IO_F_NOUNMAP);
		if (mode & FALLOC_FL_ZERO_RANGE)
			sub |= STRIPE_SUB_ZRANGE;
		io_uring_prep_fallocate(sqe, m->idx, mode, (off_t)start, (off_t)len);
		break;
	}
	sqe->flags |= IOSQE_FIXED_FILE;
	zublk_io_sqe_mark(q, io, sqe, sub);
	return 0;
}

/* FLUSH to every member; DISCARD / WRITE_ZEROES to each member's part. */
static int stripe_each_member(struct zublk_queue *q, struct zublk_io *io, struct stripe_tag *t)
{
	struct stripe_dev *sd = zublk_dev_priv(zublk_queue_dev(q));
	uint64_t start = 0, end = 0;
	int ret;

	for (unsigned k = 0; k < sd->nr; k++) {
		if (io->op != UBLK_IO_OP_FLUSH) {
			stripe_member_range(&sd->l, io->offset, io->len, k, &start, &end);
			if (start == end)
				continue;
		}
		ret = stripe_member_op(q, io, k, start, end - start);
		if (ret) {
			if (!t->pending)
				return ret;
			t->err = ret;
			break;
		}
		t->pending++;
	}
	if (!t->pending)
		zublk_io_complete(q, io, 0);
	return 0;
}

static int stripe_queue_io(struct zublk_queue *q, struct zublk_io *io)
{
	struct stripe_queue *sq = zublk_queue_priv(q);
	struct stripe_tag *t = &sq->tags[io->tag];

	t->pending = 0;
	t->err = 0;
	if (t->done_used) {
		memset(t->done, 0, sq->max_pieces * sizeof(*t->done));
		t->done_used = false;
	}
	switch (io->op) {
	case UBLK_IO_OP_READ:
	case UBLK_IO_OP_WRITE:
		return stripe_rw(q, io, t);
	case UBLK_IO_OP_FLUSH:
	case UBLK_IO_OP_DISCARD:
	case UBLK_IO_OP_WRITE_ZEROES:
		return stripe_each_member(q, io, t);
	default:
		return -EOPNOTSUPP;
	}
}

/* A piece came back short: go on with its rest.  0, or -errno. */
static int stripe_short(struct zublk_queue *q, struct zublk_io *io, struct stripe_tag *t,
			unsigned i, uint32_t res)
{
	struct stripe_queue *sq = zublk_queue_priv(q);
	struct stripe_dev *sd = zublk_dev_priv(zublk_queue_dev(q));
	struct stripe_piece p;
	uint32_t done;

	stripe_piece(&sd->l, io->offset, io->len, i, &p);
	if (!t->done) {
		t->done = calloc(sq->max_pieces, sizeof(*t->done));
		if (!t->done)
			return -ENOMEM;
	}
	t->done_used = true;
	done = t->done[i] += res;
	if (done >= p.len)
		return 1;
	return zublk_io_prep_rw(q, io, io->op == UBLK_IO_OP_WRITE, sd->m[p.member].idx,
				p.member_off + done, p.io_off + done, p.len - done, i);
}

static void stripe_io_done(struct zublk_queue *q, struct zublk_io *io, unsigned sub, int res)
{
	struct stripe_queue *sq = zublk_queue_priv(q);
	struct stripe_dev *sd = zublk_dev_priv(zublk_queue_dev(q));
	struct stripe_tag *t = &sq->tags[io->tag];

	if ((sub & STRIPE_SUB_MEMBER) && io->op != UBLK_IO_OP_FLUSH) {
		uint64_t start, end;
		unsigned k = STRIPE_SUB_K(sub);

		stripe_member_range(&sd->l, io->offset, io->len, k, &start, &end);
		zublk_backing_forget(&sd->m[k].b, start, end - start);
		/* Its file system has no zeroed range: a punched hole, still pending. */
		if ((sub & STRIPE_SUB_ZRANGE) && zublk_backing_zero_refused(&sd->m[k].b, res)) {
			res = stripe_member_op(q, io, k, start, end - start);
			if (!res)
				return;
		}
	}
	if (res < 0) {
		if (!t->err)
			t->err = res;
	} else if (!(sub & STRIPE_SUB_MEMBER) && !t->err) {
		struct stripe_piece p;
		int ret;

		stripe_piece(&sd->l, io->offset, io->len, sub, &p);
		/* 0 bytes: the member shrank under us. */
		if (res == 0) {
			t->err = -EIO;
		} else if ((uint32_t)res < p.len || (t->done_used && t->done[sub])) {
			ret = stripe_short(q, io, t, sub, (uint32_t)res);
			if (ret == 0)
				return; /* still pending */
			if (ret < 0)
				t->err = ret;
		}
	}
	if (--t->pending)
		return;
	if (t->err)
		zublk_io_complete(q, io, t->err);
	else
		zublk_io_complete(q, io, (sub & STRIPE_SUB_MEMBER) ? 0 : (int)io->len);
}

const struct zublk_target_ops zublk_stripe_ops = {
	.name = "stripe",
	.summary = "RAID0: chunks striped over 2 or more files or block devices",
	.usage = "file=PATH file=PATH [file=PATH ...]  chunk=SIZE (power of two, 4k..1G; "
		 "default 64k)  buffered=0|1 (default: O_DIRECT, buffered on tmpfs)  map=0|1 "
		 "(default: 1 when every member is on tmpfs)",
	.modes = ZUBLK_MODES_ALL,
	.init = stripe_init,
	.exit = stripe_exit,
	.queue_init = stripe_queue_init,
	.queue_exit = stripe_queue_exit,
	.queue_io = stripe_queue_io,
	.io_done = stripe_io_done,
};
