/* SPDX-License-Identifier: MIT */
#ifndef ZUBLK_INTERNAL_H
#define ZUBLK_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "zublk.h"

/* Registered files of a device, the control device's included. */
#define ZUBLK_MAX_FILES (1U << 17)

_Static_assert(UBLK_MAX_QUEUE_DEPTH <= 0x10000, "tag must fit the 16 user_data bits");
_Static_assert(ZUBLK_MAX_QUEUE_DEPTH == UBLK_MAX_QUEUE_DEPTH,
	       "our depth limit is the driver's");

/* user_data kind of the message that stops a queue (see zublk_dev_destroy). */
#define ZUBLK_UD_STOP 0x7f
/* ... and of the one that wakes a thread to look at the device's state. */
#define ZUBLK_UD_WAKE 0x7e
/* --batch: the multishot FETCH_IO_CMDS, and PREP/COMMIT_IO_CMDS (sub: slot). */
#define ZUBLK_UD_BFETCH 0x10
#define ZUBLK_UD_BCOMMIT 0x11
/* Commit element arrays per queue: one per loop turn until its CQE. */
#define ZUBLK_BATCH_COMMIT_BUFS 8
/* A fetch that fails this many times in a row, bringing no tag, ends the queue. */
#define ZUBLK_BATCH_FETCH_TRIES 100

/* Per-request state, in zublk_io.state. */
enum {
	IO_IDLE = 0,		/* FETCH or COMMIT_AND_FETCH in flight */
	IO_ACTIVE,		/* the target owns it */
	IO_DONE,		/* target finished; waiting for its SQEs */
	IO_EXITED,		/* aborted by the driver; no command in flight */
	IO_LINKED,		/* its last SQE, with the commit linked after it, in flight */
	IO_UNSENT,		/* done, but its commit found no SQE: sent on the next turn */
};

/* Counters one queue thread bumps; readers see them through the stats file. */
struct zublk_queue_stats {
	_Atomic uint64_t ios;		/* requests committed */
	_Atomic uint64_t submits;	/* SQEs submitted */
	_Atomic uint64_t enters;	/* io_uring_enter calls */
	_Atomic uint64_t errors;	/* requests committed with an error */
	_Atomic uint64_t sleeps;	/* waits in io_uring_enter for new work */
	_Atomic uint64_t polls;		/* looks before sleeping that found work */
	_Atomic uint64_t idle_ns;	/* time spent looking, work not there yet */
	_Atomic uint64_t shmem_ios;	/* requests whose data was in shared memory */
	_Atomic uint64_t copies;	/* straight copies to or from a mapped file */
	_Atomic uint64_t hand_regs;	/* auto-zero-copy requests the driver left unregistered */
};

/* Layout of ZUBLK_STATE_DIR/<id>.stats, mmapped by daemon and readers. */
#define ZUBLK_STATS_MAGIC 0x7a75626c6b535435ULL /* "zublkST5" */
struct zublk_stats_file {
	uint64_t magic;
	uint32_t nr_queues;
	uint32_t pad;
	struct zublk_queue_stats q[];
};

/*
 * Adaptive polling (zublk_dev_config.poll_us == ZUBLK_POLL_AUTO): a queue
 * looks for work before it sleeps while most of its looks find some.
 * @hits is the running share of looks that did, in 1/256ths, 1/8 per
 * outcome; every ZUBLK_POLL_PROBE-th time the queue runs out of work and
 * sleeps (@turn) it looks anyway, so that polling resumes once work comes
 * fast again.  Only a sleep moves @turn on: a turn that finds completions
 * before it would look or sleep (a batched commit's, made as it is
 * submitted) leaves a due probe due.  A device with a queue per CPU does
 * not look at all (worker_thread()).
 */
struct zublk_poll_auto {
	unsigned hits;
	unsigned turn;
};
#define ZUBLK_POLL_PROBE 16
#define ZUBLK_POLL_WANT 192 /* 3/4 of the looks */

static inline bool zublk_poll_auto_want(const struct zublk_poll_auto *pa)
{
	return pa->hits >= ZUBLK_POLL_WANT || pa->turn % ZUBLK_POLL_PROBE == 0;
}

static inline void zublk_poll_auto_slept(struct zublk_poll_auto *pa)
{
	pa->turn++;
}

static inline void zublk_poll_auto_note(struct zublk_poll_auto *pa, bool hit)
{
	if (hit)
		pa->hits += (256 - pa->hits + 7) / 8;
	else
		pa->hits -= (pa->hits + 7) / 8;
}

/*
 * A thread with one io_uring, serving one or more queues of a device (see
 * zublk_threads_for()): the ring, the look-before-sleeping and the loop are
 * the thread's; requests, descriptors and target state are the queue's.
 */
struct zublk_worker {
	struct zublk_dev *dev;
	unsigned id;
	struct zublk_queue *qs;			/* its queues: dev->queues[first ...] */
	unsigned nr_qs;
	pthread_t thread;
	bool thread_started;
	struct io_uring ring;
	/* Read by the other threads (worker_note_cancel()): closed only after all are joined. */
	_Atomic bool ring_ok;
	bool stopping;
	uint64_t settled_since_ns;		/* cancelling: all ours committed since */
	bool wake_owed;				/* cancelling: other threads to wake, from wake_next */
	unsigned wake_next;
	int error;				/* first fatal error */
	uint64_t poll_ns;			/* look for work this long before sleeping */
	bool poll_auto;				/* ... only while looks find work */
	struct zublk_poll_auto pa;		/* poll_auto's record */
};

struct zublk_queue {
	struct zublk_dev *dev;
	unsigned q_id;
	unsigned depth;
	struct zublk_worker *w;			/* the thread serving it */
	struct io_uring *ring;			/* its worker's */
	unsigned slot;				/* index among the worker's queues */
	unsigned buf_base;			/* its tags' first fixed-buffer index */
	const struct ublksrv_io_desc *iods;	/* mmapped from /dev/ublkcN */
	size_t iods_len;
	char *bufs;				/* copy and user-copy modes */
	size_t buf_stride;
	bool fixed_bufs;			/* bufs registered as fixed buffers */
	unsigned nr_live;			/* tags not yet EXITED */
	unsigned nr_target_inflight;
	unsigned nr_unsent;			/* tags IO_UNSENT */
	int error;				/* first fatal error */
	void *priv;
	struct zublk_queue_stats *stats;
	struct zublk_io *ios;
	struct {				/* --batch (batch.c) */
		struct io_uring_buf_ring *br;	/* where the fetch puts tags */
		char *bufs;
		unsigned nr_bufs, buf_len;
		char *elems;			/* [ZUBLK_BATCH_COMMIT_BUFS][depth] */
		unsigned cur;			/* slot being filled */
		unsigned nr_pending;		/* elements in it */
		unsigned busy;			/* slots whose commit is in flight */
		unsigned sent[ZUBLK_BATCH_COMMIT_BUFS];
		unsigned fetch_fails;		/* fetches ended in error in a row */
		unsigned refusals;		/* commits that took nothing, in a row */
	} batch;
};

/*
 * A registered file's part in the backing identity a recovery checks:
 * device, inode and size; device and inode only (a file that grows as the
 * device is written); nothing (a socket, a file per zone; a mirror's failed
 * leg, FILE_LEFT, which older zublks counted whole).
 */
enum file_kind { FILE_WHOLE, FILE_GROWS, FILE_ANON, FILE_LEFT };

struct zublk_dev {
	struct zublk_ctrl *ctrl;
	struct ublksrv_ctrl_dev_info info;
	struct ublk_params params;
	const struct zublk_target_ops *ops;
	struct zublk_target_geom geom;
	struct zublk_dev_config cfg;
	struct zublk_opts *opts;
	enum zublk_mode mode;
	uint64_t features;
	int cdev_fd;
	bool can_copy;				/* the driver's user copy, zero-copy modes */
	bool batch;				/* UBLK_F_BATCH_IO */
	int *files;				/* [0] is cdev_fd */
	/* What of each file is the backing identity (enum file_kind). */
	uint8_t *file_kind;
	unsigned nr_files, files_cap;
	unsigned nr_queues;
	struct zublk_queue *queues;
	unsigned nr_workers;			/* threads serving the queues */
	unsigned nr_cpus;			/* online when it started */
	struct zublk_worker *workers;
	void *priv;
	bool unpriv;				/* added by a user, not root */
	bool added;
	bool started;
	char state_dir[256];
	struct zublk_stats_file *stats;
	size_t stats_len;
	pthread_mutex_t start_lock;
	pthread_cond_t start_cond;
	unsigned nr_workers_ready;
	int queue_init_error;
	int exit_efd;				/* readable once a queue has exited */
	atomic_uint nr_workers_exited;		/* threads whose loop has ended */
	_Atomic uint64_t dev_sectors;		/* what requests are checked against */
	bool stop_requested;			/* zublk_dev_stop() was called */
	_Atomic bool told_stopping;		/* ops->stopping was called */
	atomic_bool cancelling;			/* the driver aborted a command of ours */
	_Atomic uint64_t cancel_ns;		/* when that was first seen */
	int ctl_fd;				/* listening control socket, or -1 */
	ino_t ctl_ino;				/* its file's inode: ours to unlink */
	pthread_mutex_t state_lock;		/* state file writers */
	char files_id[1024];			/* backing identity, "dev:ino:size ..." */
	struct zublk_shmem {			/* cfg.shmem, mapped and registered */
		int index;			/* the driver's */
		char *base;
		uint64_t len;
		uint64_t dev, ino;		/* the file's */
		bool read_only;			/* mapped and registered so */
	} shm[ZUBLK_MAX_SHMEM];
	unsigned nr_shm;
};

/* Tag @tag's own buffer in the copy modes, NULL in the zero-copy ones. */
static inline void *zublk_tag_buf(const struct zublk_queue *q, unsigned tag)
{
	return q->bufs ? q->bufs + (size_t)tag * q->buf_stride : NULL;
}

/* The request's own pages serve as the data buffer. */
static inline bool zublk_mode_is_zc(enum zublk_mode m)
{
	return m == ZUBLK_MODE_ZERO_COPY || m == ZUBLK_MODE_AUTO_ZERO_COPY;
}

/*
 * user_data bits 40..55 of an SQE on a shared ring: the queue's slot in
 * its worker (zublk_ud_pack() fills bits 0..39).
 */
#define ZUBLK_UD_SLOT_SHIFT 40
static inline uint64_t zublk_queue_ud(const struct zublk_queue *q, unsigned tag, unsigned kind,
				      unsigned sub)
{
	return zublk_ud_pack(tag, kind, sub) | (uint64_t)(q->slot & 0xffff) << ZUBLK_UD_SLOT_SHIFT;
}
static inline unsigned zublk_ud_slot(uint64_t ud) { return (ud >> ZUBLK_UD_SLOT_SHIFT) & 0xffff; }

/* @io's slot in its worker ring's fixed-buffer table. */
static inline __u16 zublk_io_buf_index(const struct zublk_queue *q, const struct zublk_io *io)
{
	return (__u16)(q->buf_base + io->tag);
}

/* One io_uring_enter of queue @q that submitted @ret SQEs (or failed). */
static inline void zublk_queue_count_enter(struct zublk_queue *q, int ret)
{
	atomic_fetch_add_explicit(&q->stats->enters, 1, memory_order_relaxed);
	if (ret > 0)
		atomic_fetch_add_explicit(&q->stats->submits, (uint64_t)ret, memory_order_relaxed);
}

/* queue.c */
int zublk_worker_spawn(struct zublk_worker *w);
void zublk_queue_ring_gone(struct zublk_queue *q);

/* io.c */
int zublk_queue_fetch(struct zublk_queue *q, struct zublk_io *io, bool commit);
unsigned zublk_queue_resend(struct zublk_queue *q);
void zublk_io_start(struct zublk_queue *q, struct zublk_io *io);
void zublk_io_cqe(struct zublk_queue *q, struct zublk_io *io, unsigned kind, unsigned sub,
		  int res);

/* batch.c */
int zublk_batch_setup(struct zublk_queue *q);
int zublk_batch_start(struct zublk_queue *q);
void zublk_batch_teardown(struct zublk_queue *q);
void zublk_batch_ring_gone(struct zublk_queue *q);
bool zublk_batch_stuck(const struct zublk_queue *q);
bool zublk_batch_owes(const struct zublk_queue *q);
void zublk_batch_commit(struct zublk_queue *q, struct zublk_io *io);
unsigned zublk_batch_flush(struct zublk_queue *q);
void zublk_batch_cqe(struct zublk_queue *q, const struct io_uring_cqe *cqe, unsigned kind,
		     unsigned sub);

/* ctrl.c: post a CQE with @user_data on another ring */
int zublk_ctrl_msg_ring(struct zublk_ctrl *c, int ring_fd, uint64_t user_data);

/* state.c */
int zublk_state_write(struct zublk_dev *dev);
void zublk_files_identity(struct zublk_dev *dev, char *buf, size_t len);
/* The same with FILE_LEFT files counted whole (a state file of an older zublk). */
void zublk_files_identity_all(struct zublk_dev *dev, char *buf, size_t len);
/* dev->files_id rebuilt from the files as they are now, under the state lock. */
void zublk_files_reidentify(struct zublk_dev *dev);
/* Make the state directory (0700 for a user); -EPERM when it is not ours. */
int zublk_state_dir_make(const char *dir);
int zublk_state_dir_trusted(const char *dir);

/* dev.c */
int zublk_dev_kick_queue(struct zublk_dev *dev, unsigned q_id);
/* Tell the target the device is being deleted or stopped (ops->stopping), once. */
void zublk_dev_tell_stopping(struct zublk_dev *dev);

/* shmem.c: map cfg.shmem and register it (a recovery finds it registered); unmap */
int zublk_shmem_setup(struct zublk_dev *dev);
void zublk_shmem_release(struct zublk_dev *dev);
/*
 * Map @path shared into @s: read-only (s->read_only) when the daemon may not
 * write it (a write-sealed memfd, a file it can only open for reading).
 */
int zublk_shmem_map(const char *path, struct zublk_shmem *s);
/*
 * The daemon's address of a request's UBLK_IO_F_SHMEM_ZC @addr, NULL if none
 * is known or the request (@into: it writes into the memory) needs to write
 * memory mapped read-only.
 */
void *zublk_shmem_resolve(const struct zublk_dev *dev, uint64_t addr, uint64_t len, bool into);

/* ctl.c */
int zublk_ctl_listen(struct zublk_dev *dev);
void zublk_ctl_close(struct zublk_dev *dev);
int zublk_stats_map(struct zublk_dev *dev);
void zublk_state_remove(struct zublk_dev *dev, bool unlink_files);
/*
 * Requests the driver handed out on @dev and has not had back (sysfs's
 * inflight; a quiesced device dispatches no more), 0 if it cannot be read.
 */
unsigned zublk_dev_inflight(const struct zublk_dev *dev);
/*
 * How long after the first abort a cancelling (quiesced) device's threads
 * wait for its requests out (zublk_dev_release() waits 2 s longer).
 */
#define ZUBLK_CANCEL_WAIT_NS (10ULL * 1000000000ULL)

/* util */
/* The first @len - 1 bytes of the file at @path in @buf, terminated; false if unreadable. */
bool zublk_read_text(const char *path, char *buf, size_t len);
void zublk_last_error_clear(void);
const char *zublk_last_error_or(const char *fallback);
int zublk_write_file(const char *path, const char *text);

#define zublk_err(...) zublk_log(ZUBLK_LOG_ERR, __VA_ARGS__)
#define zublk_warn(...) zublk_log(ZUBLK_LOG_WARN, __VA_ARGS__)
#define zublk_info(...) zublk_log(ZUBLK_LOG_INFO, __VA_ARGS__)
#define zublk_dbg(...) zublk_log(ZUBLK_LOG_DEBUG, __VA_ARGS__)

#endif
