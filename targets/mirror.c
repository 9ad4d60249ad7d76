// SPDX-License-Identifier: MIT
/*
 * mirror (RAID1): 2..16 legs (regular files or block devices) holding the
 * same bytes.
 *
 * Writes, discards, write zeroes and flushes go to every leg that is in
 * sync or being rebuilt, all from the request's one buffer, and complete
 * when every leg has answered: fine if an in-sync leg has the data.  Reads
 * go to the in-sync leg with the fewest requests in flight on this queue;
 * a leg that fails a read or a write is failed (never the last in-sync one:
 * its errors reach the application), and a failed read is retried on the
 * next leg.  A failure is recorded in the options (failed=LIST, size=) and
 * the state file, so a recovery keeps it, before any write that missed the
 * leg is done.
 *
 * `replace LEG FILE` (zublk mirror replace) puts a new leg in place and a
 * manager thread copies the data over in 1 MiB windows while IO goes on.
 * Writes reach the new leg from the moment it is in place; a window is
 * copied only while no write overlapping it is in flight, and copied again
 * if one started meanwhile.  After MIRROR_HOLD_AFTER copies or 100 ms,
 * new writes into it wait (a timeout, looked at again every millisecond)
 * until it is copied, so a window written without pause cannot keep the
 * leg out of sync.  Queue threads publish each write's range in a per-tag
 * slot (atomics; the manager scans them), so the data path takes no lock.
 * A queue takes up a replaced leg's new fd in its own ring with
 * IORING_OP_FILES_UPDATE ahead of the first op it sends there.
 *
 * Legs that are files in memory (tmpfs) are mapped (map=1, the default for
 * them), and reads and writes are copied straight between the request (or,
 * in the copy modes, its buffer) and the leg's pages (zublk_backing_copy(),
 * as loop and stripe do); whatever that cannot take goes the io_uring way.  A
 * replaced leg gives up its mapping (zublk_backing_unmap()) before its fd
 * changes: its new file goes the io_uring way.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "raid.h"

#define MIRROR_WINDOW (1ULL << 20)
#define MIRROR_NO_WINDOW UINT64_MAX
#define MIRROR_SAVE_EVERY_NS 1000000000LL	/* rebuild progress to the state file */
/* A window copied this many times, or not copied this long, is held. */
#define MIRROR_HOLD_AFTER 3
#define MIRROR_HOLD_AFTER_NS 100000000LL
#define MIRROR_HOLD_NS 1000000			/* how often a waiting write looks again */

/*
 * sub: gen << 11 | kind << 8 | leg (ZRANGE: a WRITE_ZEROES as a zeroed
 * range on a file leg, else OTHER; gen: the low bits of the leg's fd
 * generation the op went out with, or a FILES_UPDATE takes up)
 */
enum {
	MIRROR_SUB_DATA = 0,
	MIRROR_SUB_OTHER = 1,
	MIRROR_SUB_FILES = 2,
	MIRROR_SUB_HOLD = 3,
	MIRROR_SUB_ZRANGE = 4,
};
#define MIRROR_SUB(kind, leg) ((unsigned)(kind) << 8 | (leg))
#define MIRROR_SUB_KIND(sub) (((sub) >> 8) & 7)
/*
 * An op on a leg carries the low bits of the fd generation its ring had
 * for the leg: a result from a replaced leg's old file (the op went out
 * before the replace, or after a FILES_UPDATE that failed) says nothing of
 * the new file, and fails no leg.
 */
#define MIRROR_ZGEN(gen) ((unsigned)(gen) & 0x1f)
#define MIRROR_SUB_G(kind, gen, leg) MIRROR_SUB((kind) | MIRROR_ZGEN(gen) << 3, leg)
#define MIRROR_SUB_ZGEN(sub) ((sub) >> 11)

struct mirror_leg {
	struct raid_member m;		/* m.idx never changes; m.b.fd is the main thread's */
	char *_Atomic path;		/* what status shows; old ones kept till exit */
	_Atomic int fd;			/* what the queues should have at m.idx */
	_Atomic unsigned gen;		/* bumped when fd changes */
	_Atomic unsigned taking;	/* queues' FILES_UPDATEs in flight (they read an fd) */
	_Atomic bool bdev;
	_Atomic uint64_t errors;
};

/* What a write-like request in flight covers; scanned by the rebuild. */
struct mirror_slot {
	_Atomic uint64_t start, end;
	_Atomic bool active;
};

struct mirror_tag {
	unsigned pending;		/* data/other ops in flight */
	int err;			/* first leg error */
	uint32_t good;			/* legs that did it all */
	uint32_t tried;			/* read: legs tried */
	uint32_t rdone;			/* read: bytes done */
	uint32_t done[MIRROR_MAX_LEGS];	/* write: bytes done per leg */
	bool tracked;			/* slot active */
	struct __kernel_timespec hold;	/* a held write's wait: read when submitted */
};

struct mirror_queue {
	struct mirror_tag *tags;
	struct mirror_slot *slots;	/* owned by the device, freed at exit */
	unsigned depth;
	unsigned hint;
	unsigned inflight[MIRROR_MAX_LEGS];
	unsigned gen[MIRROR_MAX_LEGS];	/* leg fd generation our ring has */
	int fds[MIRROR_MAX_LEGS];	/* FILES_UPDATE reads these */
	bool bdev[MIRROR_MAX_LEGS];	/* of the file our ring has */
	bool no_zero_range[MIRROR_MAX_LEGS];	/* that file refused a zeroed range */
};

struct mirror_dev {
	struct zublk_dev *dev;
	unsigned nr;
	struct mirror_leg leg[MIRROR_MAX_LEGS];
	_Atomic uint32_t state;		/* MIRROR_OK / MIRROR_RB halves */
	uint64_t size;
	unsigned lbs_shift;
	unsigned caps;
	uint32_t dma_alignment;
	int buffered;	/* -1: O_DIRECT unless in memory */
	int map;	/* -1: map the legs in memory */

	struct mirror_slot *_Atomic *slots;	/* [UBLK_MAX_NR_QUEUES] */
	_Atomic uint64_t window;		/* rebuild window index, or NO_WINDOW */
	_Atomic uint64_t win_hits;		/* writes that saw it overlap */
	_Atomic bool win_hold;			/* writes into the window wait */

	pthread_t manager;
	bool manager_started;
	int efd;				/* wakes the manager */
	_Atomic bool stop;
	_Atomic bool persist_req;
	pthread_mutex_t persist_lock;
	_Atomic uint32_t saved_ok;		/* legs in sync as the state file last said */

	uint64_t rb_rate;			/* bytes/s at most; 0: no limit */
	int64_t rb_start_ns;
	_Atomic int rb_leg;			/* -1: no rebuild */
	_Atomic int rb_src;
	_Atomic uint64_t rb_pos;
	void *rb_buf;

	char *old_paths[64];			/* replaced path strings, freed at exit */
	int old_fds[64];			/* replaced fds a queue may still take up: closed at exit */
	unsigned nr_old_paths, nr_old_fds;
};

static void mirror_wake(struct mirror_dev *md)
{
	eventfd_write(md->efd, 1);
}

static void mirror_request_persist(struct mirror_dev *md)
{
	atomic_store(&md->persist_req, true);
	mirror_wake(md);
}

/* Any thread: leg @leg gave @res for @what.  Fails it unless it is the last. */
static void mirror_fail(struct mirror_dev *md, unsigned leg, int res, const char *what)
{
	uint32_t old = atomic_load(&md->state), new;
	bool failed;

	atomic_fetch_add_explicit(&md->leg[leg].errors, 1, memory_order_relaxed);
	do {
		new = mirror_fail_leg(old, leg, &failed);
		if (!failed)
			return;
	} while (!atomic_compare_exchange_weak(&md->state, &old, new));
	zublk_log(ZUBLK_LOG_WARN, "mirror: leg %u '%s' failed (%s: %s): %u of %u legs in sync",
		  leg, atomic_load(&md->leg[leg].path), what, strerror(res < 0 ? -res : EIO),
		  __builtin_popcount(MIRROR_OK(new)), md->nr);
	mirror_request_persist(md);
}

/* ------------------------------------------------------------ persistence */

/* failed=LIST and size= in the options, then the state file. */
static void mirror_persist(struct mirror_dev *md)
{
	uint32_t w;
	char list[64] = "", size[32];
	size_t n = 0;

	pthread_mutex_lock(&md->persist_lock);
	w = atomic_load(&md->state);
	for (unsigned i = 0; i < md->nr; i++) {
		if (MIRROR_OK(w) & MIRROR_LEG(i))
			continue;
		n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%u", n ? "," : "", i);
	}
	zublk_dev_set_opt(md->dev, "failed", 0, n ? list : NULL);
	/* A recovery checks the legs in sync only: a failed one may be gone by then. */
	for (unsigned i = 0; i < md->nr; i++)
		zublk_dev_file_counts(md->dev, md->leg[i].m.idx, MIRROR_OK(w) & MIRROR_LEG(i));
	/* A recovery must come back at this size whatever legs it finds. */
	snprintf(size, sizeof(size), "%llu", (unsigned long long)md->size);
	zublk_dev_set_opt(md->dev, "size", 0, size);
	zublk_dev_save_state(md->dev);
	/* Even if that failed (it said so): a write must not try again and again. */
	atomic_store(&md->saved_ok, MIRROR_OK(w));
	pthread_mutex_unlock(&md->persist_lock);
}

/* ---------------------------------------------------------------- rebuild */

static bool mirror_write_in_flight(struct mirror_dev *md, uint64_t start, uint64_t len)
{
	const struct ublksrv_ctrl_dev_info *info = zublk_dev_info(md->dev);

	for (unsigned q = 0; q < info->nr_hw_queues && q < UBLK_MAX_NR_QUEUES; q++) {
		struct mirror_slot *s = atomic_load(&md->slots[q]);

		for (unsigned t = 0; s && t < info->queue_depth; t++) {
			if (!atomic_load(&s[t].active))
				continue;
			if (raid_overlap(start, len, atomic_load_explicit(&s[t].start,
									  memory_order_relaxed),
					 atomic_load_explicit(&s[t].end, memory_order_relaxed) -
						 atomic_load_explicit(&s[t].start,
								      memory_order_relaxed)))
				return true;
		}
	}
	return false;
}

static void mirror_nap(long ns)
{
	struct timespec ts = { 0, ns };

	nanosleep(&ts, NULL);
}

static int mirror_pio(int fd, bool write, void *buf, uint64_t len, uint64_t off)
{
	uint64_t done = 0;

	while (done < len) {
		ssize_t n = write ? pwrite(fd, (char *)buf + done, len - done, (off_t)(off + done))
				  : pread(fd, (char *)buf + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		done += (uint64_t)n;
	}
	return 0;
}

/* Copy [pos, pos + len) from an in-sync leg to @leg.  0, or -errno: give up. */
static int mirror_copy(struct mirror_dev *md, unsigned leg, uint64_t pos, uint64_t len)
{
	static const unsigned idle[MIRROR_MAX_LEGS];

	for (;;) {
		uint32_t w = atomic_load(&md->state);
		int src = mirror_pick_leg(MIRROR_OK(w), 0, idle, md->nr, 0);
		int ret;

		if (src < 0)
			return -EIO;
		atomic_store(&md->rb_src, src);
		ret = mirror_pio(atomic_load(&md->leg[src].fd), false, md->rb_buf, len, pos);
		if (ret) {
			mirror_fail(md, (unsigned)src, ret, "rebuild read");
			/* Still in sync: it was the last one, and it cannot be read. */
			if (MIRROR_OK(atomic_load(&md->state)) & MIRROR_LEG(src)) {
				zublk_log(ZUBLK_LOG_ERR, "mirror: rebuild of leg %u: reading %llu "
					  "bytes at %llu of leg %u '%s', the last in sync: %s",
					  leg, (unsigned long long)len, (unsigned long long)pos,
					  src, atomic_load(&md->leg[src].path), strerror(-ret));
				return ret;
			}
			continue;
		}
		ret = mirror_pio(atomic_load(&md->leg[leg].fd), true, md->rb_buf, len, pos);
		if (ret)
			mirror_fail(md, leg, ret, "rebuild write");
		return ret;
	}
}

static void mirror_rebuild_end(struct mirror_dev *md, unsigned leg, bool ok)
{
	uint32_t old = atomic_load(&md->state), new;

	atomic_store(&md->window, MIRROR_NO_WINDOW);
	if (ok) {
		do {
			if (!(MIRROR_RB(old) & MIRROR_LEG(leg))) {
				ok = false;
				break;
			}
			new = (MIRROR_OK(old) | MIRROR_LEG(leg)) |
			      (MIRROR_RB(old) & ~MIRROR_LEG(leg)) << 16;
		} while (!atomic_compare_exchange_weak(&md->state, &old, new));
	} else {
		bool failed;

		do {
			new = mirror_fail_leg(old, leg, &failed);
		} while (failed && !atomic_compare_exchange_weak(&md->state, &old, new));
	}
	atomic_store(&md->rb_leg, -1);
	if (ok)
		zublk_log(ZUBLK_LOG_WARN, "mirror: leg %u '%s' rebuilt: in sync", leg,
			  atomic_load(&md->leg[leg].path));
	else
		zublk_log(ZUBLK_LOG_WARN, "mirror: leg %u '%s': rebuild stopped at %llu of %llu bytes",
			  leg, atomic_load(&md->leg[leg].path),
			  (unsigned long long)atomic_load(&md->rb_pos),
			  (unsigned long long)md->size);
	mirror_persist(md);
}

/* One window of the rebuild of leg @leg. */
static void mirror_rebuild_step(struct mirror_dev *md, unsigned leg)
{
	uint64_t pos = atomic_load(&md->rb_pos), len;
	int64_t hold_at;

	if (!(MIRROR_RB(atomic_load(&md->state)) & MIRROR_LEG(leg))) {
		mirror_rebuild_end(md, leg, false);
		return;
	}
	if (pos >= md->size) {
		/* Durable before it counts as in sync (a flush may have been answered meanwhile). */
		int fd = atomic_load(&md->leg[leg].fd);

		if (fdatasync(fd)) {
			mirror_fail(md, leg, -errno, "rebuild sync");
			mirror_rebuild_end(md, leg, false);
			return;
		}
		mirror_rebuild_end(md, leg, true);
		return;
	}
	len = md->size - pos < MIRROR_WINDOW ? md->size - pos : MIRROR_WINDOW;
	atomic_store(&md->window, pos / MIRROR_WINDOW);
	hold_at = (int64_t)zublk_now_ns() + MIRROR_HOLD_AFTER_NS;
	for (unsigned copies = 0;; copies++) {
		uint64_t hits;

		/*
		 * Written again and again: new writes into it wait.  Stored
		 * before the slots are read, as a write publishes its slot
		 * before it reads this: one of the two sees the other.
		 */
		if (copies == MIRROR_HOLD_AFTER || (int64_t)zublk_now_ns() > hold_at)
			atomic_store(&md->win_hold, true);
		hits = atomic_load(&md->win_hits);
		while (mirror_write_in_flight(md, pos, len)) {
			if (atomic_load(&md->stop))
				goto out;
			if ((int64_t)zublk_now_ns() > hold_at)
				atomic_store(&md->win_hold, true);
			mirror_nap(20000);
		}
		if (mirror_copy(md, leg, pos, len)) {
			mirror_rebuild_end(md, leg, false);
			goto out;
		}
		/* No write into it began or ran meanwhile: the copy stands. */
		if (atomic_load(&md->win_hits) == hits && !mirror_write_in_flight(md, pos, len))
			break;
		if (atomic_load(&md->stop))
			goto out;
	}
	atomic_store(&md->win_hold, false);
	atomic_store(&md->rb_pos, pos + len);
	if (md->rb_rate) {
		/* Where the rate limit wants us: wait for it. */
		int64_t due = md->rb_start_ns +
			      (int64_t)((pos + len) * 1000000000.0 / (double)md->rb_rate);
		int64_t now = (int64_t)zublk_now_ns();

		while (due > now && !atomic_load(&md->stop)) {
			mirror_nap(due - now > 100000000 ? 100000000 : (long)(due - now));
			now = (int64_t)zublk_now_ns();
		}
	}
	return;
out:
	atomic_store(&md->win_hold, false);
}

/* Persists what queue threads report, runs rebuilds. */
static void *mirror_manager(void *arg)
{
	struct mirror_dev *md = arg;
	int64_t last_save = (int64_t)zublk_now_ns();

	prctl(PR_SET_NAME, "zublk-mirror");
	while (!atomic_load(&md->stop)) {
		int leg = atomic_load(&md->rb_leg);
		struct pollfd pfd = { .fd = md->efd, .events = POLLIN };
		eventfd_t v;

		if (atomic_exchange(&md->persist_req, false))
			mirror_persist(md);
		if (leg >= 0) {
			mirror_rebuild_step(md, (unsigned)leg);
			if ((int64_t)zublk_now_ns() - last_save > MIRROR_SAVE_EVERY_NS) {
				/* Not between a persist's failed= and its legs' identity. */
				pthread_mutex_lock(&md->persist_lock);
				zublk_dev_save_state(md->dev);
				pthread_mutex_unlock(&md->persist_lock);
				last_save = (int64_t)zublk_now_ns();
			}
			continue;
		}
		if (poll(&pfd, 1, -1) > 0)
			eventfd_read(md->efd, &v);
	}
	return NULL;
}

/* ------------------------------------------------------------------ init */

/* A leg known to be failed may be gone: stand in /dev/null for it. */
static int mirror_open_failed_leg(const char *path, int buffered, struct raid_member *m)
{
	struct stat st;
	bool there = !stat(path, &st) && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode));

	/* raid_member_open() says why one that is there cannot be opened. */
	if (there && !raid_member_open("mirror: leg", path, buffered, m))
		return 0;
	memset(m, 0, sizeof(*m));
	m->path = strdup(path);
	m->b.fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (!m->path || m->b.fd < 0) {
		raid_member_close(m);
		return -ENOMEM;
	}
	zublk_log(ZUBLK_LOG_WARN, "mirror: failed leg '%s' %s; it needs a replace", path,
		  there ? "cannot be opened" : "is not there");
	return 0;
}

static void mirror_free(struct mirror_dev *md)
{
	for (unsigned i = 0; i < md->nr; i++)
		raid_member_close(&md->leg[i].m);
	for (unsigned i = 0; i < md->nr_old_paths; i++)
		free(md->old_paths[i]);
	for (unsigned i = 0; i < md->nr_old_fds; i++)
		close(md->old_fds[i]);
	if (md->slots) {
		for (unsigned q = 0; q < UBLK_MAX_NR_QUEUES; q++)
			free(atomic_load(&md->slots[q]));
		free((void *)md->slots);
	}
	if (md->efd >= 0)
		close(md->efd);
	free(md->rb_buf);
	pthread_mutex_destroy(&md->persist_lock);
	free(md);
}

static int mirror_parse(struct mirror_dev *md, struct zublk_opts *opts, uint32_t *failed,
			uint64_t *size)
{
	const char *s;
	unsigned nr = zublk_opts_count(opts, "file");

	if (nr < 2) {
		zublk_log(ZUBLK_LOG_ERR,
			  "mirror: needs 2 or more legs (file=PATH file=PATH ...), got %u", nr);
		return -EINVAL;
	}
	if (nr > MIRROR_MAX_LEGS) {
		zublk_log(ZUBLK_LOG_ERR, "mirror: %u legs: at most %u", nr, MIRROR_MAX_LEGS);
		return -EINVAL;
	}
	md->nr = nr;
	if (zublk_opts_get_tristate(opts, "map", &md->map)) {
		zublk_log(ZUBLK_LOG_ERR, "mirror: map '%s': not 0 or 1", zublk_opts_get(opts, "map"));
		return -EINVAL;
	}
	if (zublk_opts_get_tristate(opts, "buffered", &md->buffered)) {
		zublk_log(ZUBLK_LOG_ERR, "mirror: buffered '%s': not 0 or 1",
			  zublk_opts_get(opts, "buffered"));
		return -EINVAL;
	}
	s = zublk_opts_get(opts, "failed");
	if (zublk_opts_count(opts, "failed") > 1 || mirror_parse_failed(s, nr, failed)) {
		zublk_log(ZUBLK_LOG_ERR, "mirror: failed '%s': not a list of leg numbers 0..%u",
			  s, nr - 1);
		return -EINVAL;
	}
	if (*failed == MIRROR_LEG(nr) - 1) {
		zublk_log(ZUBLK_LOG_ERR, "mirror: failed '%s': no leg would be left in sync", s);
		return -EINVAL;
	}
	if (zublk_opts_get_size(opts, "rebuild_rate", &md->rb_rate)) {
		zublk_log(ZUBLK_LOG_ERR, "mirror: rebuild_rate '%s': not a size (bytes per second)",
			  zublk_opts_get(opts, "rebuild_rate"));
		return -EINVAL;
	}
	*size = 0;
	s = zublk_opts_get(opts, "size");
	if (s && (zublk_parse_size(s, size) || *size == 0)) {
		zublk_log(ZUBLK_LOG_ERR, "mirror: size '%s': not a size", s);
		return -EINVAL;
	}
	return 0;
}

static int mirror_open_legs(struct mirror_dev *md, struct zublk_opts *opts, uint32_t failed)
{
	int ret;

	for (unsigned i = 0; i < md->nr; i++) {
		const char *path = zublk_opts_get_nth(opts, "file", i);
		struct mirror_leg *l = &md->leg[i];

		if (failed & MIRROR_LEG(i))
			ret = mirror_open_failed_leg(path, md->buffered, &l->m);
		else
			ret = raid_member_open("mirror: leg", path, md->buffered, &l->m);
		if (ret)
			return ret; /* mirror_free() closes what was opened */
		atomic_init(&l->path, l->m.path);
		atomic_init(&l->fd, l->m.b.fd);
		atomic_init(&l->bdev, l->m.b.bdev);
	}
	return 0;
}

/*
 * Map the legs that are files in memory (map=1: every leg must be); true in
 * *mapped when one is.
 */
static int mirror_map(struct mirror_dev *md, bool *mapped)
{
	*mapped = false;
	if (md->map == 0)
		return 0;
	for (unsigned i = 0; i < md->nr; i++) {
		struct raid_member *m = &md->leg[i].m;
		int ret;

		if (!m->b.size)
			continue; /* a stand-in for a failed leg */
		if (!m->b.in_memory) {
			if (md->map < 0)
				continue;
			zublk_log(ZUBLK_LOG_ERR,
				  "mirror: map=1: leg '%s' is not in memory (tmpfs, ramfs)", m->path);
			return -EINVAL;
		}
		ret = zublk_backing_map(&m->b, m->b.size);
		if (ret) {
			zublk_log(ZUBLK_LOG_ERR, "mirror: leg '%s': mapping it: %s", m->path,
				  strerror(-ret));
			return ret;
		}
		*mapped = true;
	}
	return 0;
}

/* Block sizes agree, no leg twice; the size every in-sync leg can hold. */
static int mirror_check_legs(struct mirror_dev *md, uint32_t failed, uint64_t want)
{
	struct raid_member *first = NULL;
	uint64_t min = UINT64_MAX;

	for (unsigned i = 0; i < md->nr; i++) {
		struct raid_member *m = &md->leg[i].m;

		if (!m->b.size)
			continue; /* a stand-in for a failed leg */
		if (!first)
			first = m;
		if (m->b.lbs_shift != first->b.lbs_shift) {
			zublk_log(ZUBLK_LOG_ERR,
				  "mirror: leg '%s' has %u-byte blocks but '%s' has %u-byte blocks",
				  m->path, 1U << m->b.lbs_shift, first->path, 1U << first->b.lbs_shift);
			return -EINVAL;
		}
		for (unsigned j = 0; j < i; j++) {
			if (md->leg[j].m.b.size && raid_same_storage(m->b.fd, md->leg[j].m.b.fd)) {
				zublk_log(ZUBLK_LOG_ERR, "mirror: leg '%s': the same as '%s'",
					  m->path, md->leg[j].m.path);
				return -EINVAL;
			}
		}
		if (!(failed & MIRROR_LEG(i)) && m->b.size < min)
			min = m->b.size;
	}
	md->lbs_shift = first->b.lbs_shift;
	min &= ~((1ULL << md->lbs_shift) - 1);
	if (want) {
		if (want > min || want & ((1ULL << md->lbs_shift) - 1)) {
			zublk_log(ZUBLK_LOG_ERR,
				  "mirror: size %llu: the legs hold %llu bytes in %u-byte blocks",
				  (unsigned long long)want, (unsigned long long)min,
				  1U << md->lbs_shift);
			return -EINVAL;
		}
		min = want;
	}
	md->size = min;
	return 0;
}

static int mirror_init(struct zublk_dev *dev, struct zublk_opts *opts,
		       struct zublk_target_geom *geom)
{
	struct mirror_dev *md;
	uint32_t failed = 0;
	uint64_t want;
	bool discard = true, zero = true, mapped;
	int ret;

	md = calloc(1, sizeof(*md));
	if (!md)
		return -ENOMEM;
	md->dev = dev;
	md->efd = -1;
	for (unsigned i = 0; i < MIRROR_MAX_LEGS; i++)
		md->leg[i].m.b.fd = -1;
	pthread_mutex_init(&md->persist_lock, NULL);
	atomic_init(&md->rb_leg, -1);
	atomic_init(&md->window, MIRROR_NO_WINDOW);
	ret = mirror_parse(md, opts, &failed, &want);
	if (ret)
		goto err;
	ret = mirror_open_legs(md, opts, failed);
	if (ret)
		goto err;
	ret = mirror_check_legs(md, failed, want);
	if (!ret)
		ret = mirror_map(md, &mapped);
	if (ret)
		goto err;

	geom->size = md->size;
	geom->logical_bs_shift = md->lbs_shift;
	geom->physical_bs_shift = md->lbs_shift;
	geom->want_copy = mapped;
	geom->copies_all = mapped;
	for (unsigned i = 0; i < md->nr; i++)
		if (md->leg[i].m.b.size && !zublk_backing_is_mapped(&md->leg[i].m.b))
			geom->copies_all = false;
	for (unsigned i = 0; i < md->nr; i++) {
		struct raid_member *m = &md->leg[i].m;

		m->idx = zublk_dev_add_file(dev, m->b.fd);
		if (m->idx < 0) {
			ret = m->idx;
			zublk_log(ZUBLK_LOG_ERR, "mirror: leg '%s': %s", m->path, strerror(-ret));
			goto err;
		}
		/* As mirror_persist() has it: a failed leg is no part of the identity. */
		if (failed & MIRROR_LEG(i))
			zublk_dev_file_counts(dev, m->idx, false);
		if (!m->b.size)
			continue;
		raid_member_fold(m, geom, &discard, &zero);
	}
	geom->caps = ZUBLK_CAP_FLUSH | ZUBLK_CAP_FUA | (discard ? ZUBLK_CAP_DISCARD : 0) |
		     (zero ? ZUBLK_CAP_WRITE_ZEROES : 0);
	md->caps = geom->caps;
	md->dma_alignment = geom->dma_alignment;
	atomic_init(&md->state, (MIRROR_LEG(md->nr) - 1) & ~failed);
	/* The options say failed=LIST, and the state file at start has them. */
	atomic_init(&md->saved_ok, MIRROR_OK(atomic_load(&md->state)));

	md->slots = calloc(UBLK_MAX_NR_QUEUES, sizeof(*md->slots));
	md->efd = eventfd(0, EFD_CLOEXEC);
	if (!md->slots || md->efd < 0 ||
	    posix_memalign(&md->rb_buf, 4096, MIRROR_WINDOW)) {
		ret = -ENOMEM;
		goto err;
	}
	ret = -pthread_create(&md->manager, NULL, mirror_manager, md);
	if (ret) {
		zublk_log(ZUBLK_LOG_ERR, "mirror: thread: %s", strerror(-ret));
		goto err;
	}
	md->manager_started = true;
	zublk_dev_set_priv(dev, md);
	return 0;
err:
	mirror_free(md);
	return ret;
}

static void mirror_exit(struct zublk_dev *dev)
{
	struct mirror_dev *md = zublk_dev_priv(dev);

	if (!md)
		return;
	if (md->manager_started) {
		atomic_store(&md->stop, true);
		mirror_wake(md);
		pthread_join(md->manager, NULL);
	}
	mirror_free(md);
	zublk_dev_set_priv(dev, NULL);
}

static int mirror_queue_init(struct zublk_queue *q)
{
	struct zublk_dev *dev = zublk_queue_dev(q);
	struct mirror_dev *md = zublk_dev_priv(dev);
	struct mirror_queue *mq = calloc(1, sizeof(*mq));
	unsigned qid = zublk_queue_id(q);

	if (!mq)
		return -ENOMEM;
	mq->depth = zublk_dev_info(dev)->queue_depth;
	mq->tags = calloc(mq->depth, sizeof(*mq->tags));
	mq->slots = calloc(mq->depth, sizeof(*mq->slots));
	if (!mq->tags || !mq->slots || qid >= UBLK_MAX_NR_QUEUES) {
		free(mq->tags);
		free(mq->slots);
		free(mq);
		return -ENOMEM;
	}
	/* The ring was set up with the fds registered at init. */
	for (unsigned i = 0; i < md->nr; i++) {
		mq->gen[i] = 0;
		mq->bdev[i] = md->leg[i].m.b.bdev;
	}
	/* A queue restarted in this process would leave the old slots: keep one. */
	free(atomic_exchange(&md->slots[qid], mq->slots));
	zublk_queue_set_priv(q, mq);
	return 0;
}

static void mirror_queue_exit(struct zublk_queue *q)
{
	struct mirror_queue *mq = zublk_queue_priv(q);

	if (!mq)
		return;
	/* The slots stay for the manager until mirror_exit(). */
	free(mq->tags);
	free(mq);
	zublk_queue_set_priv(q, NULL);
}

/* ------------------------------------------------------------- data path */

/*
 * Before the first op of this queue to leg @leg after a replace: point our
 * ring's fixed file at the new fd.  It runs when submitted, ahead of the
 * ops queued after it.
 */
static int mirror_sync_leg(struct zublk_queue *q, unsigned leg)
{
	struct mirror_dev *md = zublk_dev_priv(zublk_queue_dev(q));
	struct mirror_queue *mq = zublk_queue_priv(q);
	struct mirror_leg *l = &md->leg[leg];
	unsigned gen = atomic_load_explicit(&l->gen, memory_order_acquire);
	struct io_uring_sqe *sqe;

	if (gen == mq->gen[leg])
		return 0;
	sqe = zublk_queue_get_sqe(q);
	if (!sqe)
		return -EBUSY;
	/* Counted before the fd is read: a replace closes the old fd only at 0. */
	atomic_fetch_add(&l->taking, 1);
	mq->fds[leg] = atomic_load(&l->fd);
	mq->bdev[leg] = atomic_load(&l->bdev);
	mq->no_zero_range[leg] = false;
	io_uring_prep_files_update(sqe, &mq->fds[leg], 1, l->m.idx);
	/* The queue's op, not @io's: its CQE comes even if @io ends first. */
	zublk_queue_sqe_mark(q, sqe, MIRROR_SUB_G(MIRROR_SUB_FILES, gen, leg));
	mq->gen[leg] = gen;
	return 0;
}

static int mirror_issue_data(struct zublk_queue *q, struct zublk_io *io, unsigned leg,
			     bool write, uint32_t done)
{
	struct mirror_dev *md = zublk_dev_priv(zublk_queue_dev(q));
	struct mirror_queue *mq = zublk_queue_priv(q);
	struct mirror_tag *t = &mq->tags[io->tag];
	int ret = mirror_sync_leg(q, leg);

	/*
	 * A read: the leg was in sync when it was picked, but a replace may
	 * have come since (the new fd, seen above, is not copied yet).  The
	 * replace takes the leg out of sync before it changes the fd.
	 */
	if (!ret && !write &&
	    !(MIRROR_OK(atomic_load_explicit(&md->state, memory_order_acquire)) & MIRROR_LEG(leg)))
		ret = -ESTALE;
	if (!ret)
		ret = zublk_io_prep_rw(q, io, write, md->leg[leg].m.idx, io->offset + done, done,
				       (uint32_t)io->len - done,
				       MIRROR_SUB_G(MIRROR_SUB_DATA, mq->gen[leg], leg));
	if (ret)
		return ret;
	t->pending++;
	mq->inflight[leg]++;
	return 0;
}

/* Flush, discard or write zeroes on leg @leg; @punch: write zeroes as a punched hole. */
static int mirror_issue_other(struct zublk_queue *q, struct zublk_io *io, unsigned leg,
			      bool punch)
{
	struct mirror_dev *md = zublk_dev_priv(zublk_queue_dev(q));
	struct mirror_queue *mq = zublk_queue_priv(q);
	int idx = md->leg[leg].m.idx, mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	unsigned kind = MIRROR_SUB_OTHER;
	struct io_uring_sqe *sqe;
	int ret = mirror_sync_leg(q, leg);

	if (ret)
		return ret;
	sqe = zublk_queue_get_sqe(q);
	if (!sqe)
		return -EBUSY;
	switch (io->op) {
	case UBLK_IO_OP_FLUSH:
		io_uring_prep_fsync(sqe, idx, IORING_FSYNC_DATASYNC);
		break;
	case UBLK_IO_OP_DISCARD:
		if (mq->bdev[leg]) {
			io_uring_prep_cmd_discard(sqe, idx, io->offset, io->len);
			break;
		}
		io_uring_prep_fallocate(sqe, idx, mode, (off_t)io->offset, (off_t)io->len);
		break;
	default: /*
		  * WRITE_ZEROES: zublk_backing_zero_mode()'s rule, with the
		  * refusal kept per queue for the file its ring has.
		  */
		if (mq->bdev[leg] ||
		    (!punch && (io->flags & UBLK_IO_F_NOUNMAP) && !mq->no_zero_range[leg])) {
			mode = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
			if (!mq->bdev[leg])
				kind = MIRROR_SUB_ZRANGE;
		}
		io_uring_prep_fallocate(sqe, idx, mode, (off_t)io->offset, (off_t)io->len);
		break;
	}
	sqe->flags |= IOSQE_FIXED_FILE;
	zublk_io_sqe_mark(q, io, sqe, MIRROR_SUB_G(kind, mq->gen[leg], leg));
	mq->tags[io->tag].pending++;
	mq->inflight[leg]++;
	return 0;
}

/* Next leg for a read; the core fails the request when none is left. */
static int mirror_read(struct zublk_queue *q, struct zublk_io *io, struct mirror_tag *t)
{
	struct mirror_dev *md = zublk_dev_priv(zublk_queue_dev(q));
	struct mirror_queue *mq = zublk_queue_priv(q);

	for (;;) {
		uint32_t w = atomic_load_explicit(&md->state, memory_order_acquire);
		int leg = mirror_pick_leg(MIRROR_OK(w), t->tried, mq->inflight, md->nr, mq->hint++);
		int ret;

		if (leg < 0)
			return t->err ? t->err : -EIO;
		t->tried |= MIRROR_LEG(leg);
		if (!zublk_backing_copy(q, io, &md->leg[leg].m.b, io->offset + t->rdone, t->rdone,
					(uint32_t)io->len - t->rdone)) {
			zublk_io_complete(q, io, (int)io->len);
			return 0;
		}
		ret = mirror_issue_data(q, io, (unsigned)leg, false, t->rdone);
		if (ret != -ESTALE)
			return ret;
		/* Replaced since picked: another leg. */
	}
}

/*
 * A write-like request: publish its range (a store the rebuild sees, then
 * a look at the rebuild window), only then read which legs to write.
 * False: the window it overlaps is held, and it must wait (untracked);
 * never with @may_wait false.
 */
static bool mirror_track(struct mirror_dev *md, struct mirror_queue *mq, struct zublk_io *io,
			 struct mirror_tag *t, bool may_wait)
{
	struct mirror_slot *s = &mq->slots[io->tag];
	uint64_t win;

	atomic_store_explicit(&s->start, io->offset, memory_order_relaxed);
	atomic_store_explicit(&s->end, io->offset + io->len, memory_order_relaxed);
	atomic_store(&s->active, true);
	t->tracked = true;
	win = atomic_load(&md->window);
	if (win == MIRROR_NO_WINDOW ||
	    !raid_overlap(io->offset, io->len, win * MIRROR_WINDOW, MIRROR_WINDOW))
		return true;
	if (may_wait && atomic_load(&md->win_hold)) {
		atomic_store(&s->active, false);
		t->tracked = false;
		return false;
	}
	atomic_fetch_add(&md->win_hits, 1);
	return true;
}

static void mirror_untrack(struct mirror_queue *mq, struct zublk_io *io, struct mirror_tag *t)
{
	if (!t->tracked)
		return;
	atomic_store_explicit(&mq->slots[io->tag].active, false, memory_order_release);
	t->tracked = false;
}

/* Every leg has answered: done when a leg that is in sync now has it. */
static void mirror_write_finish(struct zublk_queue *q, struct zublk_io *io, struct mirror_tag *t)
{
	struct mirror_dev *md = zublk_dev_priv(zublk_queue_dev(q));
	uint32_t ok;

	mirror_untrack(zublk_queue_priv(q), io, t);
	ok = MIRROR_OK(atomic_load(&md->state));
	if (!(t->good & ok)) {
		zublk_io_complete(q, io, t->err ? t->err : -EIO);
		return;
	}
	/*
	 * A leg out of sync that the state file still calls in sync (this
	 * write may have missed it): say so before the write is done, or a
	 * recovery after a crash would read that leg's old data.
	 */
	if (atomic_load(&md->saved_ok) & ~ok)
		mirror_persist(md);
	zublk_io_complete(q, io, io->op == UBLK_IO_OP_WRITE ? (int)io->len : 0);
}

static int mirror_write(struct zublk_queue *q, struct zublk_io *io, struct mirror_tag *t)
{
	struct mirror_dev *md = zublk_dev_priv(zublk_queue_dev(q));
	uint32_t w = atomic_load(&md->state);
	uint32_t legs = MIRROR_OK(w) | MIRROR_RB(w);
	unsigned want = (1 + ZUBLK_IO_CHAIN_SQES) * (unsigned)__builtin_popcount(legs);
	int ret;

	/*
	 * Room first for each leg's SQEs (a FILES_UPDATE and a chain), as far
	 * as the smallest ring has: a leg in sync that misses a write is
	 * failed below, and a ring whose submission fails is no leg's fault.
	 */
	want = want < ZUBLK_RING_MIN_SQES ? want : ZUBLK_RING_MIN_SQES;
	if (zublk_queue_sq_reserve(q, want) < want)
		return -EBUSY;
	for (unsigned leg = 0; leg < md->nr; leg++) {
		if (!(legs & MIRROR_LEG(leg)))
			continue;
		if (io->op == UBLK_IO_OP_WRITE &&
		    !zublk_backing_copy(q, io, &md->leg[leg].m.b, io->offset, 0,
					(uint32_t)io->len)) {
			t->good |= MIRROR_LEG(leg);
			continue;
		}
		if (io->op == UBLK_IO_OP_WRITE)
			ret = mirror_issue_data(q, io, leg, true, 0);
		else
			ret = mirror_issue_other(q, io, leg, false);
		if (ret) {
			/* A leg in sync that misses a write is out of sync. */
			mirror_fail(md, leg, ret, "queueing");
			if (!t->err)
				t->err = ret;
		}
	}
	if (t->pending)
		return 0;
	if (!t->good)
		return t->err ? t->err : -EIO;
	/* Every leg copied straight. */
	mirror_write_finish(q, io, t);
	return 0;
}

/* A write into a held window: look again in a millisecond. */
static int mirror_hold(struct zublk_queue *q, struct zublk_io *io, struct mirror_tag *t)
{
	int ret = zublk_io_prep_wait(q, io, &t->hold, MIRROR_HOLD_NS,
				     MIRROR_SUB(MIRROR_SUB_HOLD, 0));

	if (!ret)
		t->pending++;
	return ret;
}

static int mirror_start_write(struct zublk_queue *q, struct zublk_io *io, struct mirror_tag *t)
{
	struct mirror_dev *md = zublk_dev_priv(zublk_queue_dev(q));
	struct mirror_queue *mq = zublk_queue_priv(q);
	int ret;

	if (io->op != UBLK_IO_OP_FLUSH && !mirror_track(md, mq, io, t, true)) {
		if (!mirror_hold(q, io, t))
			return 0;
		/*
		 * No SQE for its wait: it goes now, tracked, as a write the
		 * rebuild did not hold (the window is copied again).
		 */
		mirror_track(md, mq, io, t, false);
	}
	ret = mirror_write(q, io, t);
	if (ret)
		mirror_untrack(mq, io, t);
	return ret;
}

static int mirror_queue_io(struct zublk_queue *q, struct zublk_io *io)
{
	struct mirror_queue *mq = zublk_queue_priv(q);
	struct mirror_tag *t = &mq->tags[io->tag];

	t->pending = 0;
	t->err = 0;
	t->good = 0;
	t->tried = 0;
	t->rdone = 0;
	memset(t->done, 0, sizeof(t->done));
	switch (io->op) {
	case UBLK_IO_OP_READ:
		return mirror_read(q, io, t);
	case UBLK_IO_OP_WRITE:
	case UBLK_IO_OP_DISCARD:
	case UBLK_IO_OP_WRITE_ZEROES:
	case UBLK_IO_OP_FLUSH:
		return mirror_start_write(q, io, t);
	default:
		return -EOPNOTSUPP;
	}
}

/* @sub's op on leg @leg ran on the file the leg has now (MIRROR_SUB_G). */
static bool mirror_sub_current(struct zublk_queue *q, unsigned sub, unsigned leg)
{
	struct mirror_dev *md = zublk_dev_priv(zublk_queue_dev(q));
	struct mirror_queue *mq = zublk_queue_priv(q);
	unsigned g = MIRROR_SUB_ZGEN(sub);

	return g == MIRROR_ZGEN(mq->gen[leg]) &&
	       g == MIRROR_ZGEN(atomic_load_explicit(&md->leg[leg].gen, memory_order_acquire));
}

static void mirror_read_done(struct zublk_queue *q, struct zublk_io *io, struct mirror_tag *t,
			     unsigned sub, unsigned leg, int res)
{
	struct mirror_dev *md = zublk_dev_priv(zublk_queue_dev(q));
	int ret;

	if (!mirror_sub_current(q, sub, leg)) {
		/* The leg's old file: its data or error is not the leg's; another leg. */
		ret = mirror_read(q, io, t);
	} else if (res > 0) {
		t->rdone += (uint32_t)res;
		if (t->rdone >= io->len) {
			zublk_io_complete(q, io, (int)io->len);
			return;
		}
		/* Short: the rest from the same leg (or another, if it was replaced). */
		ret = mirror_issue_data(q, io, leg, false, t->rdone);
		if (ret == -ESTALE)
			ret = mirror_read(q, io, t);
	} else {
		res = res ? res : -EIO;
		mirror_fail(md, leg, res, "read");
		if (!t->err)
			t->err = res;
		ret = mirror_read(q, io, t);
	}
	if (ret)
		zublk_io_complete(q, io, ret);
}

/*
 * @leg's op of write-like @io is over: a range it discarded or zeroed (or
 * maybe, on an error) is no longer known to hold pages; the request ends
 * with its last op.
 */
static void mirror_write_leg_end(struct zublk_queue *q, struct zublk_io *io,
				 struct mirror_tag *t, unsigned kind, unsigned leg)
{
	struct mirror_dev *md = zublk_dev_priv(zublk_queue_dev(q));

	if (kind != MIRROR_SUB_DATA && io->op != UBLK_IO_OP_FLUSH)
		zublk_backing_forget(&md->leg[leg].m.b, io->offset, io->len);
	if (!t->pending)
		mirror_write_finish(q, io, t);
}

static void mirror_write_done(struct zublk_queue *q, struct zublk_io *io, struct mirror_tag *t,
			      unsigned sub, unsigned leg, int res)
{
	struct mirror_dev *md = zublk_dev_priv(zublk_queue_dev(q));
	struct mirror_queue *mq = zublk_queue_priv(q);
	unsigned kind = MIRROR_SUB_KIND(sub);

	if (!mirror_sub_current(q, sub, leg)) {
		/*
		 * The leg's old file (replaced since, or a FILES_UPDATE that
		 * failed): neither done nor failed on the leg, which the
		 * replace took out of sync (or the failed update failed).
		 */
		mirror_write_leg_end(q, io, t, kind, leg);
		return;
	}
	/*
	 * Its file system has no zeroed range (tmpfs): a punched hole instead,
	 * this time and from now on.
	 */
	if (kind == MIRROR_SUB_ZRANGE && res == -EOPNOTSUPP) {
		mq->no_zero_range[leg] = true;
		res = mirror_issue_other(q, io, leg, true);
		if (!res)
			return;
	}
	if (kind == MIRROR_SUB_DATA && res > 0) {
		t->done[leg] += (uint32_t)res;
		/* Short: the rest to the same leg. */
		if (t->done[leg] < io->len && !mirror_issue_data(q, io, leg, true, t->done[leg]))
			return;
		if (t->done[leg] < io->len)
			res = -EIO;
	}
	if (res < 0 || (kind == MIRROR_SUB_DATA && res == 0)) {
		res = res ? res : -EIO;
		mirror_fail(md, leg, res, io->op == UBLK_IO_OP_WRITE   ? "write"
					  : io->op == UBLK_IO_OP_FLUSH ? "flush"
								       : "discard");
		if (!t->err)
			t->err = res;
	} else {
		t->good |= MIRROR_LEG(leg);
	}
	mirror_write_leg_end(q, io, t, kind, leg);
}

/* A FILES_UPDATE of mirror_sync_leg() is back. */
static void mirror_queue_done(struct zublk_queue *q, unsigned sub, int res)
{
	struct mirror_dev *md = zublk_dev_priv(zublk_queue_dev(q));
	struct mirror_queue *mq = zublk_queue_priv(q);
	unsigned leg = sub & 0xff;

	if (MIRROR_SUB_KIND(sub) != MIRROR_SUB_FILES || leg >= md->nr)
		return;
	atomic_fetch_sub(&md->leg[leg].taking, 1);
	if (res < 0) {
		/* Not taken up: no more IO there. */
		zublk_log(ZUBLK_LOG_WARN, "mirror: queue %u: taking up leg %u: %s",
			  zublk_queue_id(q), leg, strerror(-res));
		/* Unless a later one went out since: this ring has the older file. */
		if (mq && MIRROR_ZGEN(mq->gen[leg]) == MIRROR_SUB_ZGEN(sub))
			mq->gen[leg]--;
		mirror_fail(md, leg, res, "files update");
	}
}

static void mirror_io_done(struct zublk_queue *q, struct zublk_io *io, unsigned sub, int res)
{
	struct mirror_queue *mq = zublk_queue_priv(q);
	struct mirror_tag *t = &mq->tags[io->tag];
	unsigned kind = MIRROR_SUB_KIND(sub), leg = sub & 0xff;
	int ret;

	t->pending--;
	if (kind == MIRROR_SUB_HOLD) {
		/* The wait is over (or cancelled): look at the window again. */
		ret = mirror_start_write(q, io, t);
		if (ret)
			zublk_io_complete(q, io, ret);
		return;
	}
	mq->inflight[leg]--;
	if (io->op == UBLK_IO_OP_READ)
		mirror_read_done(q, io, t, sub, leg, res);
	else
		mirror_write_done(q, io, t, sub, leg, res);
}

/* --------------------------------------------------------------- control */

static int mirror_leg_arg(struct mirror_dev *md, const char *s)
{
	unsigned v;

	/* A number (digits only), else a leg's path. */
	if (*s && strspn(s, "0123456789") == strlen(s))
		return zublk_parse_uint(s, 0, md->nr - 1, &v) ? -1 : (int)v;
	for (unsigned i = 0; i < md->nr; i++)
		if (!strcmp(atomic_load(&md->leg[i].path), s))
			return (int)i;
	return -1;
}

static int mirror_ctl_fail(struct mirror_dev *md, unsigned leg, char *reply, size_t len)
{
	uint32_t old = atomic_load(&md->state), new;
	bool failed;

	do {
		new = mirror_fail_leg(old, leg, &failed);
		if (!failed) {
			snprintf(reply, len, "mirror: leg %u: %s", leg,
				 (MIRROR_OK(old) & MIRROR_LEG(leg)) ? "the last one in sync"
								     : "already failed");
			return -EBUSY;
		}
	} while (!atomic_compare_exchange_weak(&md->state, &old, new));
	zublk_log(ZUBLK_LOG_WARN, "mirror: leg %u '%s' failed by request", leg,
		  atomic_load(&md->leg[leg].path));
	mirror_persist(md);
	snprintf(reply, len, "mirror: leg %u failed", leg);
	return 0;
}

/* The new leg must fit where the old one was. */
static int mirror_check_new_leg(struct mirror_dev *md, unsigned leg, struct raid_member *m,
				char *reply, size_t len)
{
	if (m->b.lbs_shift != md->lbs_shift) {
		snprintf(reply, len, "mirror: '%s' has %u-byte blocks but the mirror has %u-byte blocks",
			 m->path, 1U << m->b.lbs_shift, 1U << md->lbs_shift);
		return -EINVAL;
	}
	if (m->b.size < md->size) {
		snprintf(reply, len, "mirror: '%s' has %llu bytes, the mirror needs %llu", m->path,
			 (unsigned long long)m->b.size, (unsigned long long)md->size);
		return -ENOSPC;
	}
	if (((md->caps & ZUBLK_CAP_DISCARD) && !m->b.can_discard) ||
	    ((md->caps & ZUBLK_CAP_WRITE_ZEROES) && !m->b.can_zero)) {
		snprintf(reply, len, "mirror: '%s' cannot discard, the other legs can", m->path);
		return -EINVAL;
	}
	if (m->b.dma_alignment > md->dma_alignment) {
		snprintf(reply, len, "mirror: '%s' needs %u-byte aligned memory, the device has %u",
			 m->path, m->b.dma_alignment + 1, md->dma_alignment + 1);
		return -EINVAL;
	}
	for (unsigned i = 0; i < md->nr; i++) {
		if (i != leg && raid_same_storage(m->b.fd, atomic_load(&md->leg[i].fd))) {
			snprintf(reply, len, "mirror: '%s' is leg %u already", m->path, i);
			return -EINVAL;
		}
	}
	return 0;
}

/*
 * A replaced leg's old fd: a queue that read it for its FILES_UPDATE must
 * have had that done first (the kernel then holds the file), or the
 * number could name another file by then.  Such updates end in
 * microseconds; one that does not keeps the fd open till exit.
 */
static void mirror_close_old_fd(struct mirror_dev *md, struct mirror_leg *l, int fd)
{
	for (int i = 0; i < 1000 && atomic_load(&l->taking); i++)
		mirror_nap(1000000);
	if (!atomic_load(&l->taking))
		close(fd);
	else
		md->old_fds[md->nr_old_fds++] = fd;
}

static int mirror_ctl_replace(struct mirror_dev *md, unsigned leg, const char *path,
			      char *reply, size_t len)
{
	struct mirror_leg *l = &md->leg[leg];
	struct raid_member m;
	uint32_t old, new;
	int ret, old_fd;

	if (atomic_load(&md->rb_leg) >= 0) {
		snprintf(reply, len, "mirror: leg %d is being rebuilt; replace after that",
			 atomic_load(&md->rb_leg));
		return -EBUSY;
	}
	if (md->nr_old_paths == sizeof(md->old_paths) / sizeof(md->old_paths[0])) {
		snprintf(reply, len, "mirror: too many replaces in this daemon's life");
		return -ENOSPC;
	}
	if (path[0] != '/') {
		snprintf(reply, len, "mirror: '%s': not an absolute path", path);
		return -EINVAL;
	}
	ret = raid_member_open("mirror: leg", path, md->buffered, &m);
	if (ret) {
		snprintf(reply, len, "mirror: '%s': %s", path, strerror(-ret));
		return ret;
	}
	ret = mirror_check_new_leg(md, leg, &m, reply, len);
	if (ret)
		goto err;
	/* Out of service first: no read goes there from now on. */
	old = atomic_load(&md->state);
	do {
		if (MIRROR_OK(old) == MIRROR_LEG(leg)) {
			snprintf(reply, len, "mirror: leg %u is the only one in sync", leg);
			ret = -EBUSY;
			goto err;
		}
		new = old & ~(MIRROR_LEG(leg) | MIRROR_LEG(leg) << 16);
	} while (!atomic_compare_exchange_weak(&md->state, &old, new));
	/*
	 * Readers are gone from it; writers of requests already started may
	 * still be at the old file through their ring, which keeps it open.
	 * Copies into its mapping stop here (the new file is not mapped).
	 */
	zublk_backing_unmap(&l->m.b);
	old_fd = l->m.b.fd;
	md->old_paths[md->nr_old_paths++] = l->m.path;
	l->m.path = m.path;
	l->m.b.fd = m.b.fd;
	l->m.b.size = m.b.size;
	l->m.b.bdev = m.b.bdev;
	atomic_store(&l->path, m.path);
	atomic_store(&l->fd, m.b.fd);
	atomic_store(&l->bdev, m.b.bdev);
	atomic_fetch_add_explicit(&l->gen, 1, memory_order_release);
	atomic_store(&l->errors, 0);
	zublk_dev_set_file(md->dev, l->m.idx, m.b.fd);
	zublk_dev_set_opt(md->dev, "file", leg, path);
	mirror_close_old_fd(md, l, old_fd);

	atomic_store(&md->rb_pos, 0);
	md->rb_start_ns = (int64_t)zublk_now_ns();
	/* Writes take it in from here; the rebuild starts after (it looks at rb_leg). */
	atomic_fetch_or(&md->state, MIRROR_LEG(leg) << 16);
	atomic_store(&md->rb_leg, (int)leg);
	mirror_persist(md);
	mirror_wake(md);
	snprintf(reply, len, "mirror: leg %u is now '%s', rebuilding", leg, path);
	return 0;
err:
	raid_member_close(&m);
	return ret;
}

static int mirror_control(struct zublk_dev *dev, int argc, char **argv, char *reply,
			  size_t reply_len)
{
	struct mirror_dev *md = zublk_dev_priv(dev);
	int leg;

	if (argc < 1) {
		snprintf(reply, reply_len, "mirror: requests: replace LEG FILE, fail LEG");
		return -EINVAL;
	}
	if ((!strcmp(argv[0], "replace") && argc != 3) || (!strcmp(argv[0], "fail") && argc != 2)) {
		snprintf(reply, reply_len, "mirror: usage: replace LEG FILE | fail LEG");
		return -EINVAL;
	}
	if (strcmp(argv[0], "replace") && strcmp(argv[0], "fail")) {
		snprintf(reply, reply_len, "mirror: request '%s': unknown (replace, fail)",
			 argv[0]);
		return -EINVAL;
	}
	leg = mirror_leg_arg(md, argv[1]);
	if (leg < 0) {
		snprintf(reply, reply_len, "mirror: leg '%s': no such leg (0..%u or its path)",
			 argv[1], md->nr - 1);
		return -EINVAL;
	}
	if (!strcmp(argv[0], "fail"))
		return mirror_ctl_fail(md, (unsigned)leg, reply, reply_len);
	return mirror_ctl_replace(md, (unsigned)leg, argv[2], reply, reply_len);
}

static void mirror_status(struct zublk_dev *dev, FILE *f)
{
	struct mirror_dev *md = zublk_dev_priv(dev);
	uint32_t w;
	int rb;

	if (!md)
		return;
	w = atomic_load(&md->state);
	rb = atomic_load(&md->rb_leg);
	fprintf(f, ",\"legs\":[");
	for (unsigned i = 0; i < md->nr; i++) {
		fprintf(f, "%s{\"leg\":%u,\"file\":", i ? "," : "", i);
		zublk_json_str(f, atomic_load(&md->leg[i].path));
		fprintf(f, ",\"state\":\"%s\",\"errors\":%llu,\"mapped\":%s}",
			mirror_leg_state_name(w, i),
			(unsigned long long)atomic_load(&md->leg[i].errors),
			zublk_backing_is_mapped(&md->leg[i].m.b) ? "true" : "false");
	}
	fprintf(f, "],\"in_sync\":%u,\"degraded\":%s", __builtin_popcount(MIRROR_OK(w)),
		MIRROR_OK(w) == MIRROR_LEG(md->nr) - 1 ? "false" : "true");
	if (rb >= 0) {
		uint64_t pos = atomic_load(&md->rb_pos);

		fprintf(f, ",\"rebuild\":{\"leg\":%d,\"done\":%llu,\"total\":%llu,\"percent\":%u}",
			rb, (unsigned long long)pos, (unsigned long long)md->size,
			(unsigned)(md->size ? pos * 100 / md->size : 100));
	} else {
		fprintf(f, ",\"rebuild\":null");
	}
}

const struct zublk_target_ops zublk_mirror_ops = {
	.name = "mirror",
	.summary = "RAID1: the same data on 2 or more files or block devices",
	.usage = "file=PATH file=PATH [file=PATH ...]  buffered=0|1 (default: O_DIRECT, buffered on tmpfs)  "
		 "failed=LIST (legs out of sync; zublk keeps it)  size=SIZE (default: the "
		 "smallest leg)  rebuild_rate=SIZE (bytes/s a rebuild copies at most; default: "
		 "no limit)  map=0|1 (default: 1 for the legs in memory)",
	.modes = ZUBLK_MODES_ALL,
	.init = mirror_init,
	.exit = mirror_exit,
	.queue_init = mirror_queue_init,
	.queue_exit = mirror_queue_exit,
	.queue_io = mirror_queue_io,
	.io_done = mirror_io_done,
	.queue_done = mirror_queue_done,
	.control = mirror_control,
	.status = mirror_status,
};
