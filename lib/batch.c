// SPDX-License-Identifier: MIT
/*
 * UBLK_F_BATCH_IO (--batch): requests arrive and leave in batches.
 *
 * Instead of one FETCH/COMMIT_AND_FETCH command per tag, a queue hands all
 * its tags to the driver once (PREP_IO_CMDS), keeps one multishot
 * FETCH_IO_CMDS armed, whose every CQE delivers a list of new requests' tags
 * in a provided buffer, and commits the requests finished in one turn of its
 * loop with one COMMIT_IO_CMDS (an array of {tag, buffer index, result}).
 * Targets see no difference: the requests are the same zublk_io.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

/* io_uring's multishot uring_cmd (6.18); liburing's copy of the uapi may predate it. */
#ifndef IORING_URING_CMD_MULTISHOT
#define IORING_URING_CMD_MULTISHOT (1U << 1)
#endif

/* Tags one fetch buffer holds; the driver hands out at most this many a CQE. */
#define BATCH_TAGS_PER_BUF 256U
#define BATCH_BGID 0

/*
 * One element of PREP_IO_CMDS / COMMIT_IO_CMDS: the header, then the
 * buffer's address in the copy mode, then a zoned device's zone append
 * sector, each only where the device has it.
 */
struct batch_elem {
	struct ublk_elem_header h;
	uint64_t extra[2];
};

static bool batch_zoned(const struct zublk_queue *q)
{
	return q->dev->info.flags & UBLK_F_ZONED;
}

static unsigned batch_elem_bytes(const struct zublk_queue *q)
{
	return 8 + 8 * (q->dev->mode == ZUBLK_MODE_COPY) + 8 * batch_zoned(q);
}

static uint16_t batch_flags(const struct zublk_queue *q)
{
	uint16_t zoned = batch_zoned(q) ? UBLK_BATCH_F_HAS_ZONE_LBA : 0;

	switch (q->dev->mode) {
	case ZUBLK_MODE_COPY:
		return zoned | UBLK_BATCH_F_HAS_BUF_ADDR;
	case ZUBLK_MODE_AUTO_ZERO_COPY:
		return zoned | UBLK_BATCH_F_AUTO_BUF_REG_FALLBACK;
	default:
		return zoned;
	}
}

static void batch_elem_fill(const struct zublk_queue *q, void *slot, const struct zublk_io *io)
{
	struct batch_elem e = {
		.h = { .tag = io->tag, .buf_index = zublk_io_buf_index(q, io), .result = io->result },
	};
	unsigned n = 0;

	if (q->dev->mode == ZUBLK_MODE_COPY)
		e.extra[n++] = (uintptr_t)zublk_tag_buf(q, io->tag);
	if (batch_zoned(q))
		e.extra[n++] = io->append_sector;
	memcpy(slot, &e, batch_elem_bytes(q));
}

/* Commit slot @slot's element array: room for a whole queue's requests. */
static char *batch_slot(const struct zublk_queue *q, unsigned slot)
{
	return q->batch.elems + (size_t)slot * q->depth * sizeof(struct batch_elem);
}

static unsigned pow2_at_least(unsigned n)
{
	unsigned p = 1;

	while (p < n)
		p <<= 1;
	return p;
}

int zublk_batch_setup(struct zublk_queue *q)
{
	unsigned per_buf = q->depth < BATCH_TAGS_PER_BUF ? q->depth : BATCH_TAGS_PER_BUF;
	int ret = 0;

	/*
	 * Every CQE takes a whole buffer and holds at least one tag, and a tag
	 * comes back only after its commit: depth buffers never run out.
	 */
	q->batch.nr_bufs = pow2_at_least(q->depth);
	q->batch.buf_len = per_buf * sizeof(uint16_t);
	q->batch.bufs = calloc(q->batch.nr_bufs, q->batch.buf_len);
	q->batch.elems = calloc(ZUBLK_BATCH_COMMIT_BUFS,
				(size_t)q->depth * sizeof(struct batch_elem));
	if (!q->batch.bufs || !q->batch.elems)
		return -ENOMEM;
	q->batch.br = io_uring_setup_buf_ring(q->ring, q->batch.nr_bufs, BATCH_BGID, 0, &ret);
	if (!q->batch.br) {
		zublk_err("queue %u: provided buffer ring: %s", q->q_id, strerror(-ret));
		return ret ? ret : -ENOMEM;
	}
	for (unsigned i = 0; i < q->batch.nr_bufs; i++)
		io_uring_buf_ring_add(q->batch.br, q->batch.bufs + (size_t)i * q->batch.buf_len,
				      q->batch.buf_len, (unsigned short)i,
				      io_uring_buf_ring_mask(q->batch.nr_bufs), (int)i);
	io_uring_buf_ring_advance(q->batch.br, (int)q->batch.nr_bufs);
	return 0;
}

void zublk_batch_teardown(struct zublk_queue *q)
{
	free(q->batch.bufs);
	q->batch.bufs = NULL;
	free(q->batch.elems);
	q->batch.elems = NULL;
}

/* After the ring is gone: the buffer ring's memory (liburing mmapped it). */
void zublk_batch_ring_gone(struct zublk_queue *q)
{
	if (q->batch.br)
		munmap(q->batch.br, (size_t)q->batch.nr_bufs * sizeof(struct io_uring_buf));
	q->batch.br = NULL;
}

static struct io_uring_sqe *batch_cmd(struct zublk_queue *q, unsigned op, unsigned nr,
				      unsigned elem_bytes, uint16_t flags, uint64_t ud)
{
	struct io_uring_sqe *sqe = zublk_queue_get_sqe(q);
	struct ublk_batch_io *cmd;

	if (!sqe)
		return NULL;
	io_uring_prep_uring_cmd(sqe, op, 0);
	sqe->flags |= IOSQE_FIXED_FILE;
	cmd = (struct ublk_batch_io *)sqe->cmd;
	memset(cmd, 0, sizeof(*cmd));
	cmd->q_id = (__u16)q->q_id;
	cmd->flags = flags;
	cmd->nr_elem = (__u16)nr;
	cmd->elem_bytes = (__u8)elem_bytes;
	io_uring_sqe_set_data64(sqe, ud);
	return sqe;
}

static int batch_arm_fetch(struct zublk_queue *q)
{
	struct io_uring_sqe *sqe = batch_cmd(q, UBLK_U_IO_FETCH_IO_CMDS, q->depth,
					     sizeof(uint16_t), 0,
					     zublk_queue_ud(q, 0, ZUBLK_UD_BFETCH, 0));

	if (!sqe)
		return -EBUSY;
	sqe->uring_cmd_flags = IORING_URING_CMD_MULTISHOT;
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BATCH_BGID;
	return 0;
}

/*
 * Hand every tag to the driver (PREP_IO_CMDS, waited for here: the device
 * starts only when every queue has), then arm the fetch.
 */
int zublk_batch_start(struct zublk_queue *q)
{
	unsigned eb = batch_elem_bytes(q);
	char *elems = batch_slot(q, 0);
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	int ret;

	for (unsigned t = 0; t < q->depth; t++) {
		q->ios[t].result = 0;
		q->ios[t].state = IO_IDLE;
		batch_elem_fill(q, elems + (size_t)t * eb, &q->ios[t]);
	}
	sqe = batch_cmd(q, UBLK_U_IO_PREP_IO_CMDS, q->depth, eb, batch_flags(q),
			zublk_queue_ud(q, 0, ZUBLK_UD_BCOMMIT, ZUBLK_UD_SUB_MAX));
	if (!sqe)
		return -EBUSY;
	sqe->addr = (uintptr_t)elems;
	ret = io_uring_submit_and_wait(q->ring, 1);
	zublk_queue_count_enter(q, ret);
	if (ret < 0)
		return ret;
	ret = io_uring_peek_cqe(q->ring, &cqe);
	if (ret)
		return ret;
	ret = cqe->res;
	io_uring_cqe_seen(q->ring, cqe);
	if (ret < 0) {
		zublk_err("queue %u: PREP_IO_CMDS: %s", q->q_id, strerror(-ret));
		return ret;
	}
	q->nr_live = 1; /* the fetch: until the driver aborts it */
	ret = batch_arm_fetch(q);
	if (!ret) {
		ret = io_uring_submit(q->ring);
		zublk_queue_count_enter(q, ret);
		ret = ret < 0 ? ret : 0;
	}
	return ret;
}

/* A finished request: into this turn's commit. */
void zublk_batch_commit(struct zublk_queue *q, struct zublk_io *io)
{
	unsigned eb = batch_elem_bytes(q);
	char *buf = batch_slot(q, q->batch.cur);

	io->state = IO_IDLE;
	batch_elem_fill(q, buf + (size_t)q->batch.nr_pending * eb, io);
	q->batch.nr_pending++;
}

/* The commit slot after the current one, which takes the next commit. */
static inline unsigned batch_next_slot(const struct zublk_queue *q)
{
	return (q->batch.cur + 1) % ZUBLK_BATCH_COMMIT_BUFS;
}

/* Whether that slot is free to take it. */
static inline bool batch_next_slot_free(const struct zublk_queue *q)
{
	return !(q->batch.busy & (1U << batch_next_slot(q)));
}

/*
 * Before the loop enters the kernel: one COMMIT_IO_CMDS for what this turn
 * finished.  The element array stays put until its CQE (sub = its slot).
 * Returns the commands queued (0 or 1).
 */
unsigned zublk_batch_flush(struct zublk_queue *q)
{
	struct io_uring_sqe *sqe;

	if (!q->batch.nr_pending)
		return 0;
	/* Every slot still in flight: commit on the next turn. */
	if (!batch_next_slot_free(q))
		return 0;
	sqe = batch_cmd(q, UBLK_U_IO_COMMIT_IO_CMDS, q->batch.nr_pending, batch_elem_bytes(q),
			batch_flags(q), zublk_queue_ud(q, 0, ZUBLK_UD_BCOMMIT, q->batch.cur));
	if (!sqe)
		return 0;
	sqe->addr = (uintptr_t)batch_slot(q, q->batch.cur);
	q->batch.sent[q->batch.cur] = q->batch.nr_pending;
	q->batch.busy |= 1U << q->batch.cur;
	q->batch.cur = batch_next_slot(q);
	q->batch.nr_pending = 0;
	return 1;
}

/* A commit's CQE: @res bytes of elements taken, or -errno for none. */
static void batch_commit_done(struct zublk_queue *q, unsigned slot, int res)
{
	unsigned eb = batch_elem_bytes(q), sent, took;
	const char *buf;

	if (slot >= ZUBLK_BATCH_COMMIT_BUFS)
		return;
	sent = q->batch.sent[slot];
	took = res < 0 ? 0 : (unsigned)res / eb;
	q->batch.busy &= ~(1U << slot);
	q->batch.refusals = took ? 0 : q->batch.refusals + 1;
	if (took >= sent)
		return;
	buf = batch_slot(q, slot);
	if (res >= 0 && !took)
		res = -EPROTO; /* nothing taken, no reason given */
	/*
	 * The driver stops at the first element it refuses (a bug on one side
	 * or the other), and says why only when that is the first: a part
	 * taken, the rest goes again, the refused one first; the first
	 * refused is dropped.  -EBUSY: the tag is not ours to commit, so that
	 * loses nothing.  Anything else (the command as a whole refused, or a
	 * tag it holds that can never be committed now) would leave a request
	 * that never ends, and with it the device's deletion: the queue ends
	 * instead, and the driver fails that one when the daemon lets the
	 * device go.  The rest go again even when the queue or its fetch has
	 * ended (a quiesce, a stop): the driver takes commits until the device
	 * is let go, and one not sent would hold its request, and a STOP_DEV
	 * that waits for it, until then.  Each round takes one at least or
	 * drops one; and a second refusal in a row other than -EBUSY (a tag's
	 * own verdict) drops them all (a driver that takes no command would
	 * cost a round and a line per element).
	 */
	{
		char *to = batch_slot(q, q->batch.cur);
		unsigned from = took;

		if (res < 0) {
			struct ublk_elem_header h;

			memcpy(&h, buf, sizeof(h));
			zublk_err("queue %u: COMMIT_IO_CMDS refused tag %u: %s%s", q->q_id, h.tag,
				  strerror(-res), res == -EBUSY ? "" : "; the queue ends");
			if (res != -EBUSY) {
				q->error = res;
				q->nr_live = 0;
			}
			from = res != -EBUSY && q->batch.refusals >= 2 ? sent : 1;
			if (from == sent && sent > 1)
				zublk_err("queue %u: COMMIT_IO_CMDS refused twice in a row: %u "
					  "commits dropped", q->q_id, sent - 1);
		}
		unsigned n = sent - from;

		if (!n)
			return;
		/* Each tag once: more than the depth would be one twice (the driver's bug). */
		if (q->batch.nr_pending + n > q->depth) {
			zublk_err("queue %u: %u commits owed with a depth of %u; the queue ends",
				  q->q_id, q->batch.nr_pending + n, q->depth);
			q->error = -EPROTO;
			q->nr_live = 0;
			return;
		}
		/* First in the next command: the driver stops at a refusal. */
		memmove(to + (size_t)n * eb, to, (size_t)q->batch.nr_pending * eb);
		memcpy(to, buf + (size_t)from * eb, (size_t)n * eb);
		q->batch.nr_pending += n;
	}
}

/*
 * Finished requests wait for a commit that found no SQE (not for a commit
 * slot, whose CQE will come): the loop must come back for them.
 */
bool zublk_batch_stuck(const struct zublk_queue *q)
{
	return q->batch.nr_pending && batch_next_slot_free(q);
}

/*
 * The driver handed us a request we have not committed yet, or a commit is
 * in flight: after the fetch ends (a quiesce, a stop) these are still owed.
 */
bool zublk_batch_owes(const struct zublk_queue *q)
{
	if (q->batch.nr_pending || q->batch.busy)
		return true;
	for (unsigned t = 0; t < q->depth; t++)
		if (q->ios[t].state != IO_IDLE)
			return true;
	return false;
}

/*
 * The fetch ended for want of a tag buffer, which cannot happen while every
 * buffer taken comes back with its CQE (nr_bufs >= depth): the driver took
 * one for a CQE it could not post (the CQ full) and ended the fetch.  No
 * fetch is out now and every CQE before this one has been seen, so each
 * buffer not in the ring is lost: back it goes, or each such loss would
 * bring the queue nearer to a fetch that ends at once for ever.
 */
static void batch_bufs_mend(struct zublk_queue *q)
{
	unsigned nr = q->batch.nr_bufs, mask = io_uring_buf_ring_mask(nr), back = 0;
	uint16_t head, tail = q->batch.br->tail;
	bool *in;

	if (io_uring_buf_ring_head(q->ring, BATCH_BGID, &head) ||
	    (uint16_t)(tail - head) >= nr)
		return;
	in = calloc(nr, sizeof(*in));
	if (!in)
		return;
	for (uint16_t i = head; i != tail; i++) {
		unsigned bid = q->batch.br->bufs[i & mask].bid;

		if (bid < nr)
			in[bid] = true;
	}
	for (unsigned bid = 0; bid < nr; bid++) {
		if (in[bid])
			continue;
		io_uring_buf_ring_add(q->batch.br, q->batch.bufs + (size_t)bid * q->batch.buf_len,
				      q->batch.buf_len, (unsigned short)bid, mask, (int)back++);
	}
	io_uring_buf_ring_advance(q->batch.br, (int)back);
	free(in);
	zublk_warn("queue %u: %u tag buffers lost by the fetch put back", q->q_id, back);
}

/* A fetch CQE: the tags of new requests, in buffer @bid. */
static void batch_fetch_done(struct zublk_queue *q, const struct io_uring_cqe *cqe)
{
	bool more = cqe->flags & IORING_CQE_F_MORE;
	int res = cqe->res;

	if (cqe->flags & IORING_CQE_F_BUFFER) {
		unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
		uint16_t *tags = (uint16_t *)(q->batch.bufs + (size_t)bid * q->batch.buf_len);
		unsigned n = res > 0 ? (unsigned)res / sizeof(uint16_t) : 0;

		if (n)
			q->batch.fetch_fails = 0;

		for (unsigned i = 0; i < n && bid < q->batch.nr_bufs; i++) {
			unsigned tag = tags[i];

			if (tag >= q->depth || q->ios[tag].state != IO_IDLE) {
				zublk_err("queue %u: fetched tag %u that is not waiting", q->q_id,
					  tag);
				continue;
			}
			zublk_io_start(q, &q->ios[tag]);
		}
		if (bid < q->batch.nr_bufs) {
			io_uring_buf_ring_add(q->batch.br,
					      q->batch.bufs + (size_t)bid * q->batch.buf_len,
					      q->batch.buf_len, (unsigned short)bid,
					      io_uring_buf_ring_mask(q->batch.nr_bufs), 0);
			io_uring_buf_ring_advance(q->batch.br, 1);
		}
	}
	if (more)
		return;
	if (res == UBLK_IO_RES_ABORT || q->w->stopping) {
		/* The device is going away: no more requests. */
		q->nr_live = 0;
		return;
	}
	/*
	 * Out of tag buffers: any the driver lost are put back (those of this
	 * turn's tags are back already).  Another error that keeps coming
	 * would spin here for ever.
	 */
	if (res == -ENOBUFS && !(cqe->flags & IORING_CQE_F_BUFFER))
		batch_bufs_mend(q);
	if (res >= 0 || res == -ENOBUFS) {
		q->batch.fetch_fails = 0;
	} else if (++q->batch.fetch_fails >= ZUBLK_BATCH_FETCH_TRIES) {
		zublk_err("queue %u: FETCH_IO_CMDS failed %u times in a row: %s; the queue ends",
			  q->q_id, q->batch.fetch_fails, strerror(-res));
		q->error = res;
		q->nr_live = 0;
		return;
	} else {
		zublk_warn("queue %u: FETCH_IO_CMDS ended: %s; fetching again", q->q_id,
			   strerror(-res));
	}
	if (batch_arm_fetch(q)) {
		zublk_err("queue %u: no SQE to fetch again", q->q_id);
		q->error = -EBUSY;
		q->nr_live = 0;
	}
}

void zublk_batch_cqe(struct zublk_queue *q, const struct io_uring_cqe *cqe, unsigned kind,
		     unsigned sub)
{
	if (kind == ZUBLK_UD_BFETCH)
		batch_fetch_done(q, cqe);
	else
		batch_commit_done(q, sub, cqe->res);
}
