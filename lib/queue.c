// SPDX-License-Identifier: MIT
/*
 * One thread and one io_uring per queue.  The thread owns all of the
 * queue's state: no locks on the data path.  Each turn of the loop reaps
 * every completion, then makes one io_uring_enter that both submits what
 * the completions queued and waits for more.
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
	unsigned want = depth * 4, n = 32;

	while (n < want && n < 16384)
		n <<= 1;
	return n;
}

/* Pages for the daemon-side buffers of copy and user-copy modes. */
#define FIXED_BUF_LIMIT (256UL << 20)

static int queue_setup(struct zublk_queue *q)
{
	struct zublk_dev *dev = q->dev;
	struct io_uring_params p = { 0 };
	size_t desc_off;
	int ret;

	/*
	 * TASKRUN_FLAG: the kernel raises IORING_SQ_TASKRUN in the ring's
	 * memory when it queues task work for us (a new request, a target's
	 * completion), which is what queue_poll() watches.
	 */
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
		  IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
	p.cq_entries = ring_entries(q->depth) * 2;
	ret = io_uring_queue_init_params(ring_entries(q->depth), &q->ring, &p);
	if (ret < 0) {
		zublk_err("queue %u: io_uring setup failed: %s", q->q_id, strerror(-ret));
		return ret;
	}
	q->ring_ok = true;

	dev->files[0] = dev->cdev_fd;
	ret = io_uring_register_files(&q->ring, dev->files, dev->nr_files);
	if (ret < 0) {
		zublk_err("queue %u: registering files failed: %s", q->q_id, strerror(-ret));
		return ret;
	}

	desc_off = UBLKSRV_CMD_BUF_OFFSET +
		   q->q_id * page_round(UBLK_MAX_QUEUE_DEPTH * sizeof(struct ublksrv_io_desc));
	q->iods_len = page_round(q->depth * sizeof(struct ublksrv_io_desc));
	q->iods = mmap(NULL, q->iods_len, PROT_READ, MAP_SHARED | MAP_POPULATE, dev->cdev_fd,
		       (off_t)desc_off);
	if (q->iods == MAP_FAILED) {
		ret = -errno;
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
		/*
		 * Fixed buffers save pinning pages on every backing IO, but they
		 * pin the whole area up front: only when that is modest.
		 */
		if (total <= FIXED_BUF_LIMIT) {
			struct iovec *iov = calloc(q->depth, sizeof(*iov));

			if (!iov)
				return -ENOMEM;
			for (unsigned i = 0; i < q->depth; i++) {
				iov[i].iov_base = q->bufs + i * q->buf_stride;
				iov[i].iov_len = q->buf_stride;
			}
			q->fixed_bufs = io_uring_register_buffers(&q->ring, iov, q->depth) == 0;
			free(iov);
		}
	} else {
		ret = io_uring_register_buffers_sparse(&q->ring, q->depth);
		if (ret < 0) {
			zublk_err("queue %u: sparse buffer table failed: %s", q->q_id,
				  strerror(-ret));
			return ret;
		}
	}

	for (unsigned t = 0; t < q->depth; t++) {
		q->ios[t].tag = (uint16_t)t;
		if (q->bufs)
			q->ios[t].buf = q->bufs + t * q->buf_stride;
	}
	return dev->batch ? zublk_batch_setup(q) : 0;
}

/*
 * Everything but the ring: the ring is closed after the thread is joined, so
 * a stop message sent to it late finds a ring, not a recycled fd.
 */
static void queue_teardown(struct zublk_queue *q)
{
	if (q->bufs)
		munmap(q->bufs, q->buf_stride * q->depth);
	q->bufs = NULL;
	if (q->iods)
		munmap((void *)q->iods, q->iods_len);
	q->iods = NULL;
	free(q->ios);
	q->ios = NULL;
	zublk_batch_teardown(q);
}

static void queue_ready(struct zublk_queue *q, int err)
{
	struct zublk_dev *dev = q->dev;

	pthread_mutex_lock(&dev->start_lock);
	dev->nr_queues_ready++;
	if (err && !dev->queue_init_error)
		dev->queue_init_error = err;
	pthread_cond_broadcast(&dev->start_cond);
	pthread_mutex_unlock(&dev->start_lock);
}

static void handle_cqe(struct zublk_queue *q, const struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	unsigned tag = zublk_ud_tag(ud), kind = zublk_ud_kind(ud);
	struct zublk_io *io;

	if (kind == ZUBLK_UD_STOP) {
		q->stopping = true;
		return;
	}
	if (kind == ZUBLK_UD_BFETCH || kind == ZUBLK_UD_BCOMMIT) {
		zublk_batch_cqe(q, cqe, kind, zublk_ud_sub(ud));
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
	io->state = IO_EXITED;
	q->nr_live--;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* Completions to reap, or task work the kernel runs at our next enter. */
static bool queue_work_pending(struct zublk_queue *q)
{
	unsigned flags = IO_URING_READ_ONCE(*q->ring.sq.kflags);

	return io_uring_cq_ready(&q->ring) ||
	       (flags & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW));
}

/* How long to look for work before sleeping this time (0: don't). */
static uint64_t poll_window(struct zublk_queue *q)
{
	if (q->poll_auto && !zublk_poll_auto_want(&q->pa))
		return 0;
	return q->poll_ns;
}

/* While polling, give the CPU to whoever else wants it this often. */
#define POLL_YIELD_NS 20000ULL

/*
 * Before sleeping, look for work for up to @window ns: a queue that sleeps
 * costs whoever submits the next request a wakeup, and that request an
 * interrupt and a reschedule, which can cost more than serving it.  The
 * look reads the ring's memory; only one that finds task work enters the
 * kernel.  Returns true when completions are ready.
 */
static bool queue_poll(struct zublk_queue *q, uint64_t window)
{
	uint64_t start = now_ns(), now = start, yield_at = start + POLL_YIELD_NS;

	for (;;) {
		if (queue_work_pending(q)) {
			if (!io_uring_cq_ready(&q->ring))
				zublk_queue_count_enter(q, io_uring_get_events(&q->ring));
			if (io_uring_cq_ready(&q->ring)) {
				zublk_poll_auto_note(&q->pa, true);
				atomic_fetch_add_explicit(&q->stats->polls, 1,
							  memory_order_relaxed);
				return true;
			}
		}
		now = now_ns();
		if (now - start >= window) {
			zublk_poll_auto_note(&q->pa, false);
			return false;
		}
		if (now >= yield_at) {
			/* A task that shares our CPU (fio, say) runs now, not at the next tick. */
			sched_yield();
			yield_at = now + POLL_YIELD_NS;
		}
		cpu_relax();
	}
}

static void queue_loop(struct zublk_queue *q)
{
	while ((q->nr_live > 0 || q->nr_target_inflight > 0) && !q->stopping) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		uint64_t window = poll_window(q);
		int ret = 0;

		if (window) {
			if (q->dev->batch)
				zublk_batch_flush(q);
			zublk_queue_count_enter(q, io_uring_submit(&q->ring));
			/* Completions the submission itself made are not new work. */
			if (io_uring_cq_ready(&q->ring) || queue_poll(q, window))
				goto reap;
		}
		if (q->dev->batch && zublk_batch_flush(q)) {
			/*
			 * The commit completes as it is submitted: wait for its CQE
			 * and for new work, not to be woken by the commit alone.
			 * The timeout only matters when the driver refused part of
			 * it (those requests go again on the next turn).
			 */
			struct __kernel_timespec ts = { .tv_sec = 1 };

			ret = io_uring_submit_and_wait_timeout(&q->ring, &cqe, 2, &ts, NULL);
			if (ret == -ETIME)
				ret = 0;
		} else {
			ret = io_uring_submit_and_wait(&q->ring, 1);
		}
		zublk_queue_count_enter(q, ret);
		atomic_fetch_add_explicit(&q->stats->sleeps, 1, memory_order_relaxed);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
			zublk_err("queue %u: io_uring_enter failed: %s", q->q_id,
				  strerror(-ret));
			q->error = ret;
			break;
		}
reap:
		io_uring_for_each_cqe(&q->ring, head, cqe) {
			handle_cqe(q, cqe);
			n++;
		}
		io_uring_cq_advance(&q->ring, n);
	}
}

static void *queue_thread(void *arg)
{
	struct zublk_queue *q = arg;
	struct zublk_dev *dev = q->dev;
	char name[16];
	sigset_t all;
	int ret;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	snprintf(name, sizeof(name), "zublk-q%u", q->q_id);
	prctl(PR_SET_NAME, name);
	/*
	 * Memory reclaim may write back through our own device: a queue
	 * thread that blocked on it would deadlock.  Needs CAP_SYS_RESOURCE.
	 */
	prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0);
	q->tid = gettid();

	/*
	 * With a queue thread per CPU, every CPU a submitter runs on has one,
	 * and a looking thread keeps the submitter off its CPU: adaptive
	 * polling measured 0.67-0.94x sleeping at once at 4k with 2 queues,
	 * 2 jobs on 2 CPUs (bench/notes.md).  It looks only where CPUs are
	 * left over.
	 */
	q->poll_auto = dev->cfg.poll_us == ZUBLK_POLL_AUTO &&
		       dev->nr_queues < (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	if (q->poll_auto)
		q->poll_ns = (uint64_t)ZUBLK_POLL_AUTO_US * 1000;
	else if (dev->cfg.poll_us != ZUBLK_POLL_OFF)
		q->poll_ns = (uint64_t)dev->cfg.poll_us * 1000;
	q->pa.hits = 256; /* start out polling */
	ret = queue_setup(q);
	if (!ret && dev->ops->queue_init)
		ret = dev->ops->queue_init(q);
	if (!ret && dev->batch) {
		ret = zublk_batch_start(q);
		if (ret)
			zublk_err("queue %u: handing the tags to the driver failed: %s",
				  q->q_id, strerror(-ret));
	} else if (!ret) {
		for (unsigned t = 0; t < q->depth && !ret; t++)
			ret = zublk_queue_fetch(q, &q->ios[t], false);
		q->nr_live = q->depth;
		if (!ret) {
			ret = io_uring_submit(&q->ring);
			ret = ret < 0 ? ret : 0;
		}
		if (ret)
			zublk_err("queue %u: submitting the fetch commands failed: %s",
				  q->q_id, strerror(-ret));
	}
	queue_ready(q, ret);
	if (!ret)
		queue_loop(q);
	else
		q->error = ret;
	if (dev->ops->queue_exit && q->ios)
		dev->ops->queue_exit(q);
	queue_teardown(q);
	/* Wake whoever waits on zublk_dev_exit_fd(). */
	eventfd_write(dev->exit_efd, 1);
	return NULL;
}

int zublk_queue_spawn(struct zublk_dev *dev, struct zublk_queue *q)
{
	int ret = pthread_create(&q->thread, NULL, queue_thread, q);

	if (ret)
		return -ret;
	q->thread_started = true;
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
