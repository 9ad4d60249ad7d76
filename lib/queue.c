// SPDX-License-Identifier: MIT
/*
 * A thread and one io_uring per worker, serving one queue or several
 * (zublk_threads_for()).  The thread owns all of its queues' state: no
 * locks on the data path.  Each turn of the loop reaps every completion,
 * then makes one io_uring_enter that both submits what the completions
 * queued and waits for more.  An SQE's user_data names the queue's slot in
 * the worker; a queue's tags take the fixed-buffer indices from its
 * buf_base on.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static size_t page_round(size_t n)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	return (n + page - 1) & ~(page - 1);
}

static unsigned ring_entries(unsigned depth)
{
	/* FETCH + register + target op + unregister per tag, with headroom. */
	unsigned want = depth * 4, n = ZUBLK_RING_MIN_SQES;

	while (n < want && n < 16384)
		n <<= 1;
	return n;
}

/* Pages for the daemon-side buffers of copy and user-copy modes. */
#define FIXED_BUF_LIMIT (256UL << 20)

/* The worker's ring and the files every queue of the device uses. */
static int worker_ring_setup(struct zublk_worker *w)
{
	struct zublk_dev *dev = w->dev;
	struct io_uring_params p = { 0 };
	unsigned tags = 0;
	int ret;

	for (unsigned i = 0; i < w->nr_qs; i++)
		tags += w->qs[i].depth;
	/*
	 * TASKRUN_FLAG: the kernel raises IORING_SQ_TASKRUN in the ring's
	 * memory when it queues task work for us (a new request, a target's
	 * completion), which is what worker_poll() watches.
	 */
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
		  IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
	p.cq_entries = ring_entries(tags) * 2;
	ret = io_uring_queue_init_params(ring_entries(tags), &w->ring, &p);
	if (ret < 0) {
		zublk_err("thread %u: io_uring setup failed: %s", w->id, strerror(-ret));
		return ret;
	}
	w->ring_ok = true;

	dev->files[0] = dev->cdev_fd;
	ret = io_uring_register_files(&w->ring, dev->files, dev->nr_files);
	if (ret < 0) {
		zublk_err("thread %u: registering files failed: %s", w->id, strerror(-ret));
		return ret;
	}
	return 0;
}

static int queue_setup(struct zublk_queue *q)
{
	struct zublk_dev *dev = q->dev;
	size_t desc_off;

	desc_off = UBLKSRV_CMD_BUF_OFFSET +
		   q->q_id * page_round(UBLK_MAX_QUEUE_DEPTH * sizeof(struct ublksrv_io_desc));
	q->iods_len = page_round(q->depth * sizeof(struct ublksrv_io_desc));
	q->iods = mmap(NULL, q->iods_len, PROT_READ, MAP_SHARED | MAP_POPULATE, dev->cdev_fd,
		       (off_t)desc_off);
	if (q->iods == MAP_FAILED) {
		int ret = -errno;

		q->iods = NULL;
		zublk_err("queue %u: mapping the request descriptors failed: %s", q->q_id,
			  strerror(-ret));
		return ret;
	}

	q->ios = calloc(q->depth, sizeof(*q->ios));
	if (!q->ios)
		return -ENOMEM;

	if (dev->mode == ZUBLK_MODE_COPY || dev->mode == ZUBLK_MODE_USER_COPY) {
		size_t total;

		q->buf_stride = page_round(dev->info.max_io_buf_bytes);
		total = q->buf_stride * q->depth;
		q->bufs = mmap(NULL, total, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (q->bufs == MAP_FAILED) {
			q->bufs = NULL;
			zublk_err("queue %u: no memory for %zu bytes of buffers", q->q_id, total);
			return -ENOMEM;
		}
	}

	/* zublk_io_start() points each request's buf (zublk_tag_buf(), or shared memory). */
	for (unsigned t = 0; t < q->depth; t++)
		q->ios[t].tag = (uint16_t)t;
	return dev->batch ? zublk_batch_setup(q) : 0;
}

/*
 * The fixed-buffer table of the worker's ring, a slot per tag of each of
 * its queues: the request buffers in the zero-copy modes, the daemon's own
 * in the copy modes (when they are modest: fixed buffers save pinning pages
 * on every backing IO, but pin the whole area up front).
 */
static int worker_bufs_setup(struct zublk_worker *w)
{
	struct zublk_dev *dev = w->dev;
	unsigned tags = 0;
	size_t total = 0;
	struct iovec *iov;
	int ret;

	for (unsigned i = 0; i < w->nr_qs; i++) {
		w->qs[i].buf_base = tags;
		tags += w->qs[i].depth;
		total += w->qs[i].buf_stride * w->qs[i].depth;
	}
	if (zublk_mode_is_zc(dev->mode)) {
		ret = io_uring_register_buffers_sparse(&w->ring, tags);
		if (ret < 0)
			zublk_err("thread %u: sparse buffer table failed: %s", w->id,
				  strerror(-ret));
		return ret < 0 ? ret : 0;
	}
	if (total > FIXED_BUF_LIMIT)
		return 0;
	iov = calloc(tags, sizeof(*iov));
	if (!iov)
		return -ENOMEM;
	for (unsigned i = 0; i < w->nr_qs; i++) {
		struct zublk_queue *q = &w->qs[i];

		for (unsigned t = 0; t < q->depth; t++) {
			iov[q->buf_base + t].iov_base = q->bufs + t * q->buf_stride;
			iov[q->buf_base + t].iov_len = q->buf_stride;
		}
	}
	if (io_uring_register_buffers(&w->ring, iov, tags) == 0)
		for (unsigned i = 0; i < w->nr_qs; i++)
			w->qs[i].fixed_bufs = true;
	free(iov);
	return 0;
}

/*
 * Everything but the ring and the memory the driver writes into through
 * it: the ring is closed after the thread is joined, so a stop message sent
 * to it late finds a ring, not a recycled fd.
 */
static void queue_teardown(struct zublk_queue *q)
{
	if (q->iods)
		munmap((void *)q->iods, q->iods_len);
	q->iods = NULL;
	free(q->ios);
	q->ios = NULL;
}

/*
 * After the worker's ring is closed.  Until then a request that came
 * after the thread's last turn can still be dispatched from the ring's
 * task work as the thread exits: the driver copies a write's data into
 * the daemon buffers and, with --batch, tag numbers into the fetch
 * buffers.
 */
void zublk_queue_ring_gone(struct zublk_queue *q)
{
	if (q->bufs)
		munmap(q->bufs, q->buf_stride * q->depth);
	q->bufs = NULL;
	zublk_batch_ring_gone(q);
	zublk_batch_teardown(q);
}

static void worker_ready(struct zublk_worker *w, int err)
{
	struct zublk_dev *dev = w->dev;

	pthread_mutex_lock(&dev->start_lock);
	dev->nr_workers_ready++;
	if (err && !dev->queue_init_error)
		dev->queue_init_error = err;
	pthread_cond_broadcast(&dev->start_cond);
	pthread_mutex_unlock(&dev->start_lock);
}

/* The wake-ups @w owes the other threads; one that finds no SQE goes on next turn. */
static void worker_wake_others(struct zublk_worker *w)
{
	struct zublk_dev *dev = w->dev;
	uint64_t ud = zublk_ud_pack(0, ZUBLK_UD_WAKE, 0);

	for (; w->wake_owed && w->wake_next < dev->nr_workers; w->wake_next++) {
		struct zublk_worker *o = &dev->workers[w->wake_next];
		struct io_uring_sqe *sqe;

		if (o == w || !o->ring_ok)
			continue;
		sqe = zublk_queue_get_sqe(&w->qs[0]);	/* the worker's ring */
		if (!sqe)
			return;
		io_uring_prep_msg_ring(sqe, o->ring.ring_fd, 0, ud, 0);
		io_uring_sqe_set_data64(sqe, ud);
		sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	}
	w->wake_owed = false;
}

/*
 * The driver aborted a command of ours: it is cancelling the device's
 * commands (a quiesce for an upgrade, a stop).  The device's other threads
 * may sleep with nothing coming to wake them: tell them.
 */
static void worker_note_cancel(struct zublk_worker *w)
{
	struct zublk_dev *dev = w->dev;
	uint64_t none = 0;

	/* The time first: a thread that sees cancelling counts its wait from it. */
	atomic_compare_exchange_strong(&dev->cancel_ns, &none, zublk_now_ns());
	if (atomic_exchange(&dev->cancelling, true))
		return;
	w->wake_owed = true;
	worker_wake_others(w);
}

static void handle_cqe(struct zublk_worker *w, const struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	unsigned tag = zublk_ud_tag(ud), kind = zublk_ud_kind(ud), slot = zublk_ud_slot(ud);
	struct zublk_queue *q;
	struct zublk_io *io;

	if (kind == ZUBLK_UD_STOP) {
		w->stopping = true;
		return;
	}
	if (kind == ZUBLK_UD_WAKE)
		return;
	if (slot >= w->nr_qs) {
		zublk_err("thread %u: completion for queue slot %u of %u", w->id, slot, w->nr_qs);
		return;
	}
	q = &w->qs[slot];
	if (kind == ZUBLK_UD_BFETCH || kind == ZUBLK_UD_BCOMMIT) {
		zublk_batch_cqe(q, cqe, kind, zublk_ud_sub(ud));
		return;
	}
	if (kind == ZUBLK_UD_QUEUE) {
		q->nr_target_inflight--;
		if (q->dev->ops->queue_done)
			q->dev->ops->queue_done(q, zublk_ud_sub(ud), cqe->res);
		return;
	}
	if (tag >= q->depth) {
		zublk_err("queue %u: completion for tag %u beyond depth %u", q->q_id, tag,
			  q->depth);
		return;
	}
	io = &q->ios[tag];
	if (kind != ZUBLK_UD_CMD) {
		zublk_io_cqe(q, io, kind, zublk_ud_sub(ud), cqe->res);
		return;
	}
	if (cqe->res == UBLK_IO_RES_OK) {
		zublk_io_start(q, io);
		return;
	}
	/* A commit linked behind a transfer that failed: the request is ours. */
	if (cqe->res == -ECANCELED && (io->state == IO_ACTIVE || io->state == IO_DONE))
		return;
	/* ABORT: the device is going away; anything else is a bug somewhere. */
	if (cqe->res != UBLK_IO_RES_ABORT)
		zublk_err("queue %u tag %u: fetch/commit failed: %s", q->q_id, tag,
			  strerror(-cqe->res));
	else
		worker_note_cancel(w);
	io->state = IO_EXITED;
	q->nr_live--;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* The worker's own counters (enters, sleeps, polls) go to its first queue's. */
static void worker_count_enter(struct zublk_worker *w, int ret)
{
	zublk_queue_count_enter(&w->qs[0], ret);
}

/* The ring asks for an enter: task work to run, or a CQ overflow to flush. */
static bool worker_ring_asks(struct zublk_worker *w)
{
	return IO_URING_READ_ONCE(*w->ring.sq.kflags) &
	       (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW);
}

/*
 * Submit what is queued.  liburing enters the kernel only with SQEs to hand
 * over or when the ring asks for it: count only those calls, so that
 * enters/IO is what the kernel saw.
 */
static void worker_submit(struct zublk_worker *w)
{
	bool enters = io_uring_sq_ready(&w->ring) || worker_ring_asks(w);
	int ret = io_uring_submit(&w->ring);

	if (enters)
		worker_count_enter(w, ret);
}

/* Completions to reap, or task work the kernel runs at our next enter. */
static bool worker_work_pending(struct zublk_worker *w)
{
	return io_uring_cq_ready(&w->ring) || worker_ring_asks(w);
}

/* How long to look for work before sleeping this time (0: don't). */
static uint64_t poll_window(struct zublk_worker *w)
{
	if (w->poll_auto && !zublk_poll_auto_want(&w->pa))
		return 0;
	return w->poll_ns;
}

/* While polling, give the CPU to whoever else wants it this often. */
#define POLL_YIELD_NS 20000ULL

/*
 * Before sleeping, look for work for up to @window ns: a thread that sleeps
 * costs whoever submits the next request a wakeup, and that request an
 * interrupt and a reschedule, which can cost more than serving it.  The
 * look reads the ring's memory; only one that finds task work enters the
 * kernel.  Returns true when completions are ready.  The time it waited
 * (not the time it gave away by yielding) goes to the idle_ns counter:
 * CPU the daemon used but no request needed.
 */
static bool worker_poll(struct zublk_worker *w, uint64_t window)
{
	uint64_t start = zublk_now_ns(), now = start, yield_at = start + POLL_YIELD_NS, yielded = 0;
	bool found;

	for (;;) {
		if (worker_work_pending(w)) {
			if (!io_uring_cq_ready(&w->ring))
				worker_count_enter(w, io_uring_get_events(&w->ring));
			if (io_uring_cq_ready(&w->ring)) {
				found = true;
				break;
			}
		}
		now = zublk_now_ns();
		if (now - start >= window) {
			found = false;
			break;
		}
		if (now >= yield_at) {
			/* A task that shares our CPU (fio, say) runs now, not at the next tick. */
			uint64_t t;

			sched_yield();
			t = zublk_now_ns();
			yielded += t - now;
			now = t;
			yield_at = now + POLL_YIELD_NS;
		}
		cpu_relax();
	}
	zublk_poll_auto_note(&w->pa, found);
	if (found)
		atomic_fetch_add_explicit(&w->qs[0].stats->polls, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&w->qs[0].stats->idle_ns, now - start - yielded,
				  memory_order_relaxed);
	return found;
}

/*
 * A queue still has a command or a target op in flight.  With --batch the
 * driver ends the one fetch at once when it quiesces or stops the device,
 * with requests still ours: those are still owed their commit (an upgrade
 * promises no IO error), and the commits queued for them.
 */
static bool worker_busy(const struct zublk_worker *w)
{
	for (unsigned i = 0; i < w->nr_qs; i++)
		if (w->qs[i].nr_live > 0 || w->qs[i].nr_target_inflight > 0)
			return true;
	return w->dev->batch && zublk_batch_owes(&w->qs[0]);
}

/*
 * Every request @w was handed is committed and no target op is in flight.
 * While the driver cancels, that is all we owe it: a commit that reached
 * the driver after it aborted the idle commands re-arms a fetch that nobody
 * aborts (it holds new requests back meanwhile), and waiting for that abort
 * would keep the device from ever being released.
 */
static bool worker_settled(const struct zublk_worker *w)
{
	if (w->dev->batch)
		return false;
	for (unsigned i = 0; i < w->nr_qs; i++) {
		const struct zublk_queue *q = &w->qs[i];

		if (q->nr_target_inflight)
			return false;
		for (unsigned t = 0; t < q->depth; t++)
			if (q->ios[t].state == IO_ACTIVE || q->ios[t].state == IO_DONE ||
			    q->ios[t].state == IO_UNSENT)
				return false;
	}
	return true;
}

/* Whether a tag of @w went out in a linked chain (its commit posts nothing). */
static bool worker_has_linked(const struct zublk_worker *w)
{
	for (unsigned i = 0; i < w->nr_qs; i++)
		for (unsigned t = 0; t < w->qs[i].depth; t++)
			if (w->qs[i].ios[t].state == IO_LINKED)
				return true;
	return false;
}

/*
 * How long a cancelled worker, settled, waits for the rest of its aborts
 * before it leaves them to its ring's exit (which cancels every command
 * still armed).  It also covers a commit linked behind a transfer still
 * running: leaving first would cancel that commit, and the driver would
 * hand the request to the next daemon (or fail it, with fail-io).
 */
#define CANCEL_GRACE_NS 1000000000ULL

/* Whether to leave now; *bounded: the device is cancelling, wait briefly. */
static bool worker_cancel_done(struct zublk_worker *w, bool *bounded)
{
	uint64_t now, since;

	*bounded = false;
	if (!atomic_load_explicit(&w->dev->cancelling, memory_order_relaxed))
		return false;
	if (w->wake_owed)
		worker_wake_others(w);
	if (!worker_settled(w)) {
		w->settled_since_ns = 0;
		return false;
	}
	now = zublk_now_ns();
	if (!w->settled_since_ns)
		w->settled_since_ns = now;
	*bounded = true;
	if (now - w->settled_since_ns < CANCEL_GRACE_NS)
		return false;
	/*
	 * A linked chain's commit posts nothing, so a tag of one looks settled
	 * whether its transfer is done or still runs; leaving while it runs
	 * cancels the commit behind it (the next daemon does the request
	 * again).  A quiesce (no stop told) dispatches nothing more: while the
	 * device still has requests out, the thread waits for them, for a while.
	 */
	since = atomic_load(&w->dev->cancel_ns);
	if (atomic_load(&w->dev->told_stopping) || w->dev->stop_requested ||
	    now - (since ? since : now) >= ZUBLK_CANCEL_WAIT_NS || !worker_has_linked(w))
		return true;
	return zublk_dev_inflight(w->dev) == 0;
}

/* Submit, and wait up to @ts for @nr completions; running out of time is no error. */
static int worker_wait_timeout(struct zublk_worker *w, unsigned nr, struct __kernel_timespec ts)
{
	struct io_uring_cqe *cqe;
	int ret = io_uring_submit_and_wait_timeout(&w->ring, &cqe, nr, &ts, NULL);

	return ret == -ETIME ? 0 : ret;
}

/* --batch: a worker serves one queue (zublk_dev_config_check()). */
static unsigned worker_batch_flush(struct zublk_worker *w)
{
	return w->dev->batch ? zublk_batch_flush(&w->qs[0]) : 0;
}

/* Commits that found no SQE last turn, sent again; true if some still wait. */
static bool worker_resend(struct zublk_worker *w)
{
	unsigned left = 0;

	for (unsigned i = 0; i < w->nr_qs; i++)
		if (w->qs[i].nr_unsent)
			left += zublk_queue_resend(&w->qs[i]);
	return left > 0;
}

static void worker_loop(struct zublk_worker *w)
{
	while (worker_busy(w) && !w->stopping) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		uint64_t window;
		bool bounded, unsent = worker_resend(w);
		int ret = 0;

		if (worker_cancel_done(w, &bounded)) {
			worker_submit(w);
			break;
		}
		window = bounded ? 0 : poll_window(w);
		if (window) {
			worker_batch_flush(w);
			worker_submit(w);
			/* Completions the submission itself made are not new work. */
			if (io_uring_cq_ready(&w->ring) || worker_poll(w, window))
				goto reap;
		}
		if (worker_batch_flush(w)) {
			/*
			 * The commit completes as it is submitted: wait for its CQE
			 * and for new work, not to be woken by the commit alone.
			 * The timeout only matters when the driver refused part of
			 * it (those requests go again on the next turn).
			 */
			ret = worker_wait_timeout(w, 2, (struct __kernel_timespec){ .tv_sec = 1 });
		} else if (bounded) {
			/* Cancelling: look at the clock again (worker_cancel_done()). */
			ret = worker_wait_timeout(w, 1,
						  (struct __kernel_timespec){ .tv_nsec = 100000000 });
		} else if (unsent || (w->dev->batch && zublk_batch_stuck(&w->qs[0]))) {
			/* No room for a commit: this submits, and the next turn tries again. */
			ret = worker_wait_timeout(w, 1,
						  (struct __kernel_timespec){ .tv_nsec = 1000000 });
		} else {
			ret = io_uring_submit_and_wait(&w->ring, 1);
		}
		worker_count_enter(w, ret);
		atomic_fetch_add_explicit(&w->qs[0].stats->sleeps, 1, memory_order_relaxed);
		zublk_poll_auto_slept(&w->pa);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
			zublk_err("thread %u: io_uring_enter failed: %s", w->id, strerror(-ret));
			w->error = ret;
			break;
		}
reap:
		io_uring_for_each_cqe(&w->ring, head, cqe) {
			handle_cqe(w, cqe);
			n++;
		}
		io_uring_cq_advance(&w->ring, n);
	}
}

/* Target ops (a request's or the queue's own) in flight on @w's queues. */
static unsigned worker_ops_inflight(const struct zublk_worker *w)
{
	unsigned n = 0;

	for (unsigned i = 0; i < w->nr_qs; i++)
		n += w->qs[i].nr_target_inflight;
	return n;
}

/* A CQE while leaving: one target op fewer in flight; nothing is handled. */
static void worker_forget_cqe(struct zublk_worker *w, const struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	unsigned tag = zublk_ud_tag(ud), kind = zublk_ud_kind(ud), slot = zublk_ud_slot(ud);
	struct zublk_queue *q;

	if (slot >= w->nr_qs)
		return;
	q = &w->qs[slot];
	if (kind == ZUBLK_UD_QUEUE && q->nr_target_inflight) {
		q->nr_target_inflight--;
	} else if (kind == ZUBLK_UD_TGT && tag < q->depth && q->ios[tag].state != IO_LINKED &&
		   q->ios[tag].nr_inflight && q->nr_target_inflight) {
		q->ios[tag].nr_inflight--;
		q->nr_target_inflight--;
	}
}

/*
 * Told to quit (a release, a kick) with target ops still in flight: end
 * them before the target frees what they use (->queue_exit) and the queue
 * its buffers, or a receive that completes later writes into freed memory.
 * The cancel stops what it can (not the driver's commands: the ring's end
 * takes those); then their completions are awaited, up to a second, for
 * ops that run on (a read in an io-wq thread, one the block layer has).
 */
static void worker_cancel_ops(struct zublk_worker *w)
{
	struct io_uring_sync_cancel_reg reg = {
		.flags = IORING_ASYNC_CANCEL_ANY,
		.fd = -1,
		.timeout = { .tv_sec = -1, .tv_nsec = -1 },
	};
	uint64_t end = zublk_now_ns() + 1000000000ULL;

	if (!w->ring_ok || !worker_ops_inflight(w))
		return;
	io_uring_register_sync_cancel(&w->ring, &reg);
	while (worker_ops_inflight(w) && zublk_now_ns() < end) {
		struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 100000000 };
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		int ret = io_uring_wait_cqe_timeout(&w->ring, &cqe, &ts);

		if (ret < 0 && ret != -ETIME && ret != -EINTR)
			break;
		io_uring_for_each_cqe(&w->ring, head, cqe) {
			worker_forget_cqe(w, cqe);
			n++;
		}
		io_uring_cq_advance(&w->ring, n);
	}
	if (worker_ops_inflight(w))
		zublk_warn("thread %u: %u target ops still in flight as it ends", w->id,
			   worker_ops_inflight(w));
}

/* Hand every tag of @q to the driver. */
static int queue_fetch_all(struct zublk_queue *q)
{
	int ret = 0;

	if (q->dev->batch) {
		ret = zublk_batch_start(q);
		if (ret)
			zublk_err("queue %u: handing the tags to the driver failed: %s",
				  q->q_id, strerror(-ret));
		return ret;
	}
	for (unsigned t = 0; t < q->depth && !ret; t++)
		ret = zublk_queue_fetch(q, &q->ios[t], false);
	q->nr_live = q->depth;
	if (!ret) {
		ret = io_uring_submit(q->ring);
		ret = ret < 0 ? ret : 0;
	}
	if (ret)
		zublk_err("queue %u: submitting the fetch commands failed: %s", q->q_id,
			  strerror(-ret));
	return ret;
}

static int worker_setup(struct zublk_worker *w)
{
	struct zublk_dev *dev = w->dev;
	unsigned i;
	int ret = worker_ring_setup(w);

	for (i = 0; i < w->nr_qs && !ret; i++)
		ret = queue_setup(&w->qs[i]);
	if (!ret)
		ret = worker_bufs_setup(w);
	for (i = 0; i < w->nr_qs && !ret; i++)
		if (dev->ops->queue_init)
			ret = dev->ops->queue_init(&w->qs[i]);
	for (i = 0; i < w->nr_qs && !ret; i++)
		ret = queue_fetch_all(&w->qs[i]);
	return ret;
}

static void *worker_thread(void *arg)
{
	struct zublk_worker *w = arg;
	struct zublk_dev *dev = w->dev;
	char name[16];
	sigset_t all;
	int ret;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	if (w->nr_qs == 1)
		snprintf(name, sizeof(name), "zublk-q%u", w->qs[0].q_id);
	else
		snprintf(name, sizeof(name), "zublk-q%u-%u", w->qs[0].q_id,
			 w->qs[w->nr_qs - 1].q_id);
	prctl(PR_SET_NAME, name);
	/*
	 * Memory reclaim may write back through our own device: a queue
	 * thread that blocked on it would deadlock.  Needs CAP_SYS_RESOURCE.
	 */
	prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0);

	/*
	 * A device with a queue per CPU expects a submitter on every CPU,
	 * and a looking thread keeps one of them off its CPU: with 2 queues
	 * and 2 jobs on 2 CPUs, one thread serving both queues measured
	 * 1.02-1.11x the 1-queue device when it sleeps at once, 0.96-1.08x
	 * when it looks, and a thread per queue that looks 0.67-0.94x one
	 * that sleeps (bench/notes.md).  It looks only where the device
	 * leaves CPUs over.
	 */
	w->poll_auto = dev->cfg.poll_us == ZUBLK_POLL_AUTO && dev->nr_queues < dev->nr_cpus;
	if (w->poll_auto)
		w->poll_ns = (uint64_t)ZUBLK_POLL_AUTO_US * 1000;
	else if (dev->cfg.poll_us != ZUBLK_POLL_OFF)
		w->poll_ns = (uint64_t)dev->cfg.poll_us * 1000;
	w->pa.hits = 256; /* start out polling */
	ret = worker_setup(w);
	worker_ready(w, ret);
	if (!ret) {
		worker_loop(w);
		/*
		 * What the last turn queued goes out: another thread's wake-up,
		 * and the commits of requests the target finished (the driver
		 * takes a finished commit in any state).  Then, if the loop ended
		 * early (told to stop, or its ring failed), the target's ops
		 * still in flight are ended before ->queue_exit frees what
		 * they use.
		 */
		worker_resend(w);
		worker_batch_flush(w);
		worker_submit(w);
		if (w->stopping || w->error)
			worker_cancel_ops(w);
	} else {
		w->error = ret;
	}
	for (unsigned i = 0; i < w->nr_qs; i++) {
		struct zublk_queue *q = &w->qs[i];

		if (dev->ops->queue_exit && q->ios)
			dev->ops->queue_exit(q);
		queue_teardown(q);
	}
	/* Wake whoever waits on zublk_dev_exit_fd(). */
	atomic_fetch_add(&dev->nr_workers_exited, 1);
	eventfd_write(dev->exit_efd, 1);
	return NULL;
}

int zublk_worker_spawn(struct zublk_worker *w)
{
	int ret = pthread_create(&w->thread, NULL, worker_thread, w);

	if (ret)
		return -ret;
	w->thread_started = true;
	return 0;
}

struct zublk_dev *zublk_queue_dev(const struct zublk_queue *q)
{
	return q->dev;
}

unsigned zublk_queue_id(const struct zublk_queue *q)
{
	return q->q_id;
}

void *zublk_queue_priv(const struct zublk_queue *q)
{
	return q->priv;
}

void zublk_queue_set_priv(struct zublk_queue *q, void *priv)
{
	q->priv = priv;
}
