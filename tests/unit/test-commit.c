// SPDX-License-Identifier: MIT
/*
 * The commit of a request whose last transfer went out with the commit
 * linked after it (zublk_io_prep_rw_commit()): transfer, unregistration
 * of the request's pages, commit.  When the unregistration itself fails,
 * io_uring cancels the commit behind it without a CQE (it failed with
 * IOSQE_CQE_SKIP_SUCCESS): the request must be committed from that failure,
 * once; a cancelled unregistration (a failed transfer before it) commits
 * nothing.  A real ring on the host, never submitted: the test reads the
 * SQE that was queued.
 */
#include <errno.h>
#include <liburing.h>

#include "zublk.h"
#include "../../lib/internal.h"
#include "test.h"

struct fixture {
	struct io_uring ring;
	struct zublk_dev dev;
	struct zublk_queue q;
	struct zublk_io io;
	struct zublk_queue_stats stats;
};

/* A zero-copy read of 8k on tag 3, its transfer + unregistration + commit in flight. */
static int setup(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	if (io_uring_queue_init(8, &f->ring, 0))
		return -1;
	f->dev.mode = ZUBLK_MODE_ZERO_COPY;
	f->q.dev = &f->dev;
	f->q.ring = &f->ring;
	f->q.stats = &f->stats;
	f->io.tag = 3;
	f->io.op = UBLK_IO_OP_READ;
	f->io.len = 8192;
	f->io.result = 8192;
	f->io.need_reg = 1;
	f->io.buf_registered = 1;
	f->io.state = IO_LINKED;
	atomic_store(&f->stats.ios, 1); /* counted when the chain went out */
	return 0;
}

/* The SQEs queued and not submitted. */
static unsigned queued(struct fixture *f)
{
	return io_uring_sq_ready(&f->ring);
}

TEST(a_failed_unregistration_in_the_chain_commits_the_request_once)
{
	struct fixture f;
	const struct ublksrv_io_cmd *cmd;

	REQUIRE(setup(&f) == 0);
	zublk_io_cqe(&f.q, &f.io, ZUBLK_UD_UNREG, 0, -EINVAL);
	CHECK_EQ(queued(&f), 1);
	cmd = (const struct ublksrv_io_cmd *)f.ring.sq.sqes[0].cmd;
	CHECK_EQ(f.ring.sq.sqes[0].cmd_op, UBLK_U_IO_COMMIT_AND_FETCH_REQ);
	CHECK_EQ(cmd->tag, 3);
	CHECK_EQ(cmd->result, 8192);
	CHECK_EQ(f.io.state, IO_IDLE);
	CHECK_EQ(f.io.buf_registered, 0);
	CHECK_EQ(atomic_load(&f.stats.ios), 1);
	io_uring_queue_exit(&f.ring);
}

TEST(a_cancelled_unregistration_commits_nothing)
{
	struct fixture f;

	REQUIRE(setup(&f) == 0);
	zublk_io_cqe(&f.q, &f.io, ZUBLK_UD_UNREG, 0, -ECANCELED);
	CHECK_EQ(queued(&f), 0);
	CHECK_EQ(f.io.state, IO_LINKED);
	io_uring_queue_exit(&f.ring);
}

TEST(an_unregistration_failing_outside_a_chain_commits_nothing_more)
{
	struct fixture f;

	REQUIRE(setup(&f) == 0);
	f.io.state = IO_IDLE; /* committed already: commit() queued it unlinked */
	f.io.buf_registered = 0;
	zublk_io_cqe(&f.q, &f.io, ZUBLK_UD_UNREG, 0, -EINVAL);
	CHECK_EQ(queued(&f), 0);
	CHECK_EQ(f.io.state, IO_IDLE);
	io_uring_queue_exit(&f.ring);
}
