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

/*
 * A commit that finds no SQE: the SQ is full and submitting fails (here a
 * ring not yet enabled, IORING_SETUP_R_DISABLED).  The request waits as
 * IO_UNSENT and the loop's next turn sends it, once.
 */
struct full_fixture {
	struct io_uring ring;
	struct zublk_dev dev;
	struct zublk_queue q;
	struct zublk_io ios[4];
	struct zublk_queue_stats stats;
};

static int setup_full(struct full_fixture *f, bool registered)
{
	memset(f, 0, sizeof(*f));
	if (io_uring_queue_init(4, &f->ring, IORING_SETUP_R_DISABLED))
		return -1;
	while (io_uring_get_sqe(&f->ring))
		;
	f->dev.mode = registered ? ZUBLK_MODE_ZERO_COPY : ZUBLK_MODE_USER_COPY;
	f->q.dev = &f->dev;
	f->q.ring = &f->ring;
	f->q.stats = &f->stats;
	f->q.ios = f->ios;
	f->q.depth = 4;
	for (unsigned t = 0; t < 4; t++)
		f->ios[t].tag = (uint16_t)t;
	f->ios[2].op = UBLK_IO_OP_WRITE;
	f->ios[2].len = 4096;
	f->ios[2].need_reg = registered;
	f->ios[2].buf_registered = registered;
	f->ios[2].state = IO_ACTIVE;
	return 0;
}

/* The ring enabled and its NOPs gone: room again. */
static int make_room(struct full_fixture *f)
{
	if (io_uring_enable_rings(&f->ring) < 0 || io_uring_submit(&f->ring) != 4)
		return -1;
	return 0;
}

/* The @i-th SQE queued since make_room(). */
static const struct io_uring_sqe *sqe_at(struct full_fixture *f, unsigned i)
{
	return &f->ring.sq.sqes[(f->ring.sq.sqe_tail - io_uring_sq_ready(&f->ring) + i) &
				f->ring.sq.ring_mask];
}

TEST(a_commit_without_an_sqe_is_sent_on_the_next_turn_once)
{
	struct full_fixture f;
	const struct ublksrv_io_cmd *cmd;

	REQUIRE(setup_full(&f, false) == 0);
	zublk_io_complete(&f.q, &f.ios[2], 4096);
	CHECK_EQ(f.ios[2].state, IO_UNSENT);
	CHECK_EQ(f.q.nr_unsent, 1);
	CHECK_EQ(atomic_load(&f.stats.ios), 1);
	/* Still no room: it keeps waiting. */
	CHECK_EQ(zublk_queue_resend(&f.q), 1);
	CHECK_EQ(f.ios[2].state, IO_UNSENT);
	REQUIRE(make_room(&f) == 0);
	CHECK_EQ(zublk_queue_resend(&f.q), 0);
	CHECK_EQ(io_uring_sq_ready(&f.ring), 1);
	CHECK_EQ(sqe_at(&f, 0)->cmd_op, UBLK_U_IO_COMMIT_AND_FETCH_REQ);
	cmd = (const struct ublksrv_io_cmd *)sqe_at(&f, 0)->cmd;
	CHECK_EQ(cmd->tag, 2);
	CHECK_EQ(cmd->result, 4096);
	CHECK_EQ(f.ios[2].state, IO_IDLE);
	CHECK_EQ(f.q.nr_unsent, 0);
	/* Sent: never again. */
	CHECK_EQ(zublk_queue_resend(&f.q), 0);
	CHECK_EQ(io_uring_sq_ready(&f.ring), 1);
	CHECK_EQ(atomic_load(&f.stats.ios), 1);
	io_uring_queue_exit(&f.ring);
}

TEST(a_write_that_wrote_nothing_commits_an_error_not_zero)
{
	struct full_fixture f;
	const struct ublksrv_io_cmd *cmd;

	REQUIRE(setup_full(&f, false) == 0);
	REQUIRE(make_room(&f) == 0);
	/* The driver would requeue a 0-byte write for ever. */
	zublk_io_complete(&f.q, &f.ios[2], 0);
	CHECK_EQ(f.ios[2].state, IO_IDLE);
	REQUIRE(io_uring_sq_ready(&f.ring) == 1);
	cmd = (const struct ublksrv_io_cmd *)sqe_at(&f, 0)->cmd;
	CHECK_EQ(cmd->result, -EIO);
	CHECK_EQ(atomic_load(&f.stats.errors), 1);
	io_uring_queue_exit(&f.ring);
}

TEST(an_unsent_commit_unregisters_the_pages_first)
{
	struct full_fixture f;

	REQUIRE(setup_full(&f, true) == 0);
	zublk_io_complete(&f.q, &f.ios[2], 4096);
	CHECK_EQ(f.ios[2].state, IO_UNSENT);
	/* The pages are still registered: the unregistration goes too. */
	CHECK_EQ(f.ios[2].buf_registered, 1);
	REQUIRE(make_room(&f) == 0);
	CHECK_EQ(zublk_queue_resend(&f.q), 0);
	CHECK_EQ(io_uring_sq_ready(&f.ring), 2);
	CHECK_EQ(sqe_at(&f, 0)->cmd_op, UBLK_U_IO_UNREGISTER_IO_BUF);
	CHECK_EQ(sqe_at(&f, 1)->cmd_op, UBLK_U_IO_COMMIT_AND_FETCH_REQ);
	CHECK_EQ(f.ios[2].buf_registered, 0);
	CHECK_EQ(f.ios[2].state, IO_IDLE);
	io_uring_queue_exit(&f.ring);
}

/*
 * A request that waits for another (zublk_io_prep_wait()): one timeout for
 * the request, its time as asked, whose CQE comes back to the request as
 * the target's, with its sub.  Submitted for real: the host runs timeouts.
 */
TEST(a_wait_comes_back_to_the_request_after_its_time)
{
	struct fixture f;
	struct __kernel_timespec ts = { .tv_sec = 7, .tv_nsec = 7 };
	struct io_uring_cqe *cqe;
	const struct io_uring_sqe *sqe;

	REQUIRE(setup(&f) == 0);
	f.io.nr_inflight = 0;
	CHECK_EQ(zublk_io_prep_wait(&f.q, &f.io, &ts, 1500000000L, 42), 0);
	REQUIRE(queued(&f) == 1);
	sqe = &f.ring.sq.sqes[0];
	CHECK_EQ(sqe->opcode, IORING_OP_TIMEOUT);
	CHECK_EQ(sqe->addr, (uint64_t)(uintptr_t)&ts);
	CHECK_EQ(ts.tv_sec, 1);
	CHECK_EQ(ts.tv_nsec, 500000000);
	CHECK_EQ(f.io.nr_inflight, 1);
	CHECK_EQ(f.q.nr_target_inflight, 1);
	/* A short one, submitted: it ends with -ETIME, tagged for the request. */
	CHECK_EQ(zublk_io_prep_wait(&f.q, &f.io, &ts, 1000000L, 42), 0);
	REQUIRE(io_uring_submit(&f.ring) == 2);
	REQUIRE(io_uring_wait_cqe(&f.ring, &cqe) == 0);
	CHECK_EQ(cqe->res, -ETIME);
	CHECK_EQ(zublk_ud_tag(cqe->user_data), 3);
	CHECK_EQ(zublk_ud_kind(cqe->user_data), ZUBLK_UD_TGT);
	CHECK_EQ(zublk_ud_sub(cqe->user_data), 42);
	io_uring_cqe_seen(&f.ring, cqe);
	io_uring_queue_exit(&f.ring);
}

/*
 * User copy: a READ the target ends with more bytes than were asked (its
 * bug) copies the request's length into the request, not more (the
 * driver would refuse the longer copy), and commits that length.  A file
 * stands in for /dev/ublkcN.
 */
TEST(a_user_copy_read_said_longer_copies_and_commits_its_length)
{
	struct fixture f;
	static char buf[16384];
	const struct ublksrv_io_cmd *cmd;
	struct stat st;
	FILE *tmp = tmpfile();

	REQUIRE(tmp);
	REQUIRE(setup(&f) == 0);
	f.dev.mode = ZUBLK_MODE_USER_COPY;
	f.dev.cdev_fd = fileno(tmp);
	f.io.need_reg = 0;
	f.io.buf_registered = 0;
	f.io.buf = buf;
	f.io.state = IO_ACTIVE;
	f.io.len = 4096;
	zublk_io_complete(&f.q, &f.io, 12288);
	REQUIRE(queued(&f) == 1);
	cmd = (const struct ublksrv_io_cmd *)f.ring.sq.sqes[0].cmd;
	CHECK_EQ(cmd->result, 4096);
	REQUIRE(fstat(fileno(tmp), &st) == 0);
	CHECK_EQ((uint64_t)st.st_size, zublk_user_copy_pos(0, 3) + 4096);
	fclose(tmp);
	io_uring_queue_exit(&f.ring);
}
