/* SPDX-License-Identifier: MIT */
/*
 * libzublk: a userspace block device server library on top of the kernel's
 * ublk driver.  This is the one public header.
 *
 * Lifecycle of a device (see libzublk(3)):
 *
 *   zublk_dev_create()   target ->init() runs, ADD_DEV, SET_PARAMS
 *   zublk_dev_start()    one thread + one io_uring per queue, FETCH every tag,
 *                        START_DEV; the block device is live when it returns
 *   zublk_dev_wait()     returns when every queue has stopped (device deleted,
 *                        zublk_dev_stop() called, or the driver aborted us)
 *   zublk_dev_destroy()  target ->exit(), frees everything
 *
 * Every function returns 0 (or a count) on success and -errno on failure.
 */
#ifndef ZUBLK_H
#define ZUBLK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <liburing.h>
#include <linux/ublk_cmd.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZUBLK_VERSION "0.1.0"

#define ZUBLK_MAX_QUEUE_DEPTH 4096
#define ZUBLK_DEF_QUEUE_DEPTH 128
#define ZUBLK_DEF_MAX_IO_BYTES (1U << 20)
#define ZUBLK_MAX_MAX_IO_BYTES (1U << 25) /* UBLK_IO_BUF_BITS */
/* Root's state directory; a user's is zublk_state_dir()'s. */
#define ZUBLK_STATE_DIR "/run/zublk"
/* A user's without $XDG_RUNTIME_DIR: a format for the uid. */
#define ZUBLK_USER_STATE_DIR_TMP "/tmp/zublk-%u"
/* Shared-memory files (--shmem) a device registers at most. */
#define ZUBLK_MAX_SHMEM 8
/* zublk_dev_config.poll_us: adaptive (the default), never, or this long. */
#define ZUBLK_POLL_AUTO 0U
#define ZUBLK_POLL_OFF 0xffffffffU
#define ZUBLK_POLL_AUTO_US 100U
#define ZUBLK_POLL_MAX_US 1000000U

struct zublk_ctrl;
struct zublk_dev;
struct zublk_queue;

/* ---------------------------------------------------------------- logging */

enum zublk_log_level { ZUBLK_LOG_ERR, ZUBLK_LOG_WARN, ZUBLK_LOG_INFO, ZUBLK_LOG_DEBUG };

/* Where library messages go; default: "zublk: <msg>" on stderr (ERR/WARN). */
typedef void (*zublk_log_fn)(enum zublk_log_level level, const char *msg);
void zublk_set_log(zublk_log_fn fn);
void zublk_log(enum zublk_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t zublk_now_ns(void);
/*
 * Process @pid has exited: no such process, or one not reaped yet (a
 * zombie: an init that does not reap, as in some containers).
 */
bool zublk_pid_exited(pid_t pid);

/* ------------------------------------------------------------- data modes */

/*
 * How request data moves between the kernel and the daemon, slowest first.
 * DEFAULT picks the best mode both the running kernel and the target offer.
 */
enum zublk_mode {
	ZUBLK_MODE_DEFAULT = 0,
	ZUBLK_MODE_COPY,	   /* driver copies into per-tag daemon buffers */
	ZUBLK_MODE_USER_COPY,	   /* daemon preads/pwrites /dev/ublkcN */
	ZUBLK_MODE_ZERO_COPY,	   /* REGISTER_IO_BUF -> fixed op -> UNREGISTER */
	ZUBLK_MODE_AUTO_ZERO_COPY, /* driver registers the buffer at fetch */
	ZUBLK_MODE_NR,
};
#define ZUBLK_MODE_BIT(m) (1U << (m))
#define ZUBLK_MODES_ALL                                                         \
	(ZUBLK_MODE_BIT(ZUBLK_MODE_COPY) | ZUBLK_MODE_BIT(ZUBLK_MODE_USER_COPY) | \
	 ZUBLK_MODE_BIT(ZUBLK_MODE_ZERO_COPY) |                                  \
	 ZUBLK_MODE_BIT(ZUBLK_MODE_AUTO_ZERO_COPY))

const char *zublk_mode_name(enum zublk_mode mode);
int zublk_mode_parse(const char *s, enum zublk_mode *out);
/* UBLK_F_* flags a mode needs from the kernel. */
uint64_t zublk_mode_flags(enum zublk_mode mode);
/* The mode a device added with UBLK_F_* @flags runs in. */
enum zublk_mode zublk_mode_from_flags(uint64_t flags);
/* Best mode in @allowed (ZUBLK_MODE_BIT mask) that @features supports. */
enum zublk_mode zublk_mode_best(uint64_t features, unsigned allowed);

/* ---------------------------------------------------------------- options */

/*
 * Target options arrive as key=value words.  A key may repeat (stripe's
 * file=a file=b).  Getters mark what they read; zublk_opts_check_unused()
 * names the first option no one asked for.
 */
struct zublk_opt {
	char *key;
	char *val;
	bool used;
};

struct zublk_opts {
	unsigned nr;
	struct zublk_opt *v;
	char twice[64];		/* a key read for one value but given more than once */
};

int zublk_opts_parse(struct zublk_opts *o, int nr_words, char *const *words);
void zublk_opts_free(struct zublk_opts *o);
/*
 * Last value of @key, or NULL.  Marks every @key used; a key given more
 * than once is named in ->twice (an error once the target has read its
 * options: only zublk_opts_get_nth() reads repeated keys).
 */
const char *zublk_opts_get(struct zublk_opts *o, const char *key);
/* The @idx'th value of a repeated @key (0-based), or NULL. */
const char *zublk_opts_get_nth(struct zublk_opts *o, const char *key, unsigned idx);
unsigned zublk_opts_count(const struct zublk_opts *o, const char *key);
/* 0 with *out untouched when absent; -EINVAL on a malformed value. */
int zublk_opts_get_size(struct zublk_opts *o, const char *key, uint64_t *out);
int zublk_opts_get_bool(struct zublk_opts *o, const char *key, bool *out);
/* Like zublk_opts_get_bool(), but *out = -1 when absent, else 0 or 1. */
int zublk_opts_get_tristate(struct zublk_opts *o, const char *key, int *out);
/* -EINVAL and *bad = the key when an option was never read. */
int zublk_opts_check_unused(const struct zublk_opts *o, const char **bad);

/* "4096", "4k", "64K", "1M", "2g", "1T"; binary units. */
int zublk_parse_size(const char *s, uint64_t *out);
int zublk_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out);

/* ---------------------------------------------------------------- control */

/* The control device /dev/ublk-control with its own io_uring. */
int zublk_ctrl_open(struct zublk_ctrl **out);
void zublk_ctrl_close(struct zublk_ctrl *c);
/* Commands that can block in the kernel give up after this many ms. */
void zublk_ctrl_set_timeout(struct zublk_ctrl *c, unsigned ms);

int zublk_ctrl_get_features(struct zublk_ctrl *c, uint64_t *features);
int zublk_ctrl_add_dev(struct zublk_ctrl *c, struct ublksrv_ctrl_dev_info *info);
int zublk_ctrl_del_dev(struct zublk_ctrl *c, unsigned dev_id, bool wait);
int zublk_ctrl_start_dev(struct zublk_ctrl *c, unsigned dev_id, int daemon_pid);
int zublk_ctrl_stop_dev(struct zublk_ctrl *c, unsigned dev_id);
int zublk_ctrl_try_stop_dev(struct zublk_ctrl *c, unsigned dev_id);
int zublk_ctrl_get_info(struct zublk_ctrl *c, unsigned dev_id,
			struct ublksrv_ctrl_dev_info *info);
int zublk_ctrl_set_params(struct zublk_ctrl *c, unsigned dev_id,
			  const struct ublk_params *p);
int zublk_ctrl_get_params(struct zublk_ctrl *c, unsigned dev_id, struct ublk_params *p);
int zublk_ctrl_get_queue_affinity(struct zublk_ctrl *c, unsigned dev_id, unsigned q_id,
				  void *cpuset, size_t size);
int zublk_ctrl_start_recovery(struct zublk_ctrl *c, unsigned dev_id);
int zublk_ctrl_end_recovery(struct zublk_ctrl *c, unsigned dev_id, int daemon_pid);
int zublk_ctrl_update_size(struct zublk_ctrl *c, unsigned dev_id, uint64_t sectors);
int zublk_ctrl_quiesce_dev(struct zublk_ctrl *c, unsigned dev_id, unsigned timeout_ms);
/*
 * Whether device @dev_id is a user's (UBLK_F_UNPRIVILEGED_DEV), as far as
 * @c knows: from its last ADD_DEV or GET_DEV_INFO2 of that device, else
 * whether we are not root.  Such a device's commands carry its char
 * device's path (done here); root's devices' do not.
 */
bool zublk_ctrl_unprivileged(const struct zublk_ctrl *c, unsigned dev_id);
/*
 * UBLK_U_CMD_REG_BUF: pin @len bytes of shared memory at @addr, @flags 0 or
 * UBLK_SHMEM_BUF_READ_ONLY; the buffer's index or -errno.
 */
int zublk_ctrl_reg_buf(struct zublk_ctrl *c, unsigned dev_id, void *addr, uint64_t len,
		       uint32_t flags);

/* Name of UBLK_F_* bit @bit ("ZERO_COPY", ...), NULL for a bit we don't know. */
const char *zublk_feature_name(unsigned bit);
const char *zublk_feature_desc(unsigned bit);
/* "LIVE", "DEAD", "QUIESCED", "FAIL_IO" */
const char *zublk_state_name(unsigned state);

/* ------------------------------------------------------------- the target */

/* What a target can do beyond read and write; the core advertises these. */
enum {
	ZUBLK_CAP_FLUSH = 1U << 0,	  /* volatile write cache: FLUSH is meaningful */
	ZUBLK_CAP_FUA = 1U << 1,
	ZUBLK_CAP_DISCARD = 1U << 2,
	ZUBLK_CAP_WRITE_ZEROES = 1U << 3,
	ZUBLK_CAP_READ_ONLY = 1U << 4,
	ZUBLK_CAP_ROTATIONAL = 1U << 5,
	/*
	 * A zoned device (UBLK_F_ZONED, host managed): geom.zone_size is set,
	 * and the target serves the zone operations (UBLK_IO_OP_ZONE_*,
	 * REPORT_ZONES).  Only the user-copy and zero-copy modes can carry it.
	 */
	ZUBLK_CAP_ZONED = 1U << 6,
};

/* Filled in by the target's ->init(); the core turns it into ublk params. */
/*
 * Integrity metadata: @meta_size bytes (1..255) with each interval of
 * 2^@interval_shift data bytes (0: the logical block).  @csum is an
 * LBMD_PI_CSUM_* from linux/fs.h: with one other than NONE the block layer
 * puts protection information (PI) at @pi_offset of each interval's
 * metadata on a write and checks it on a read, and @ref_tag makes the PI's
 * reference tag the interval's number (T10 PI type 1).  The device asks the
 * driver for UBLK_F_USER_COPY too, the only way it hands metadata over, so
 * it cannot run in the copy mode; the target moves a request's metadata
 * with zublk_io_meta_copy().
 */
struct zublk_integrity {
	uint8_t meta_size;
	uint8_t pi_offset;
	uint8_t csum;
	uint8_t interval_shift;
	bool ref_tag;
};

/*
 * 0 when @dev's data mode can carry integrity metadata; else logs one line
 * naming the mode and returns -EINVAL (the copy mode: the driver hands
 * metadata over only by user copy).  The core checks it when the device is
 * created; a target that makes files for the metadata checks it first.
 */
int zublk_integrity_check_mode(const struct zublk_dev *dev);

struct zublk_target_geom {
	uint64_t size;			/* bytes, a multiple of the logical block */
	unsigned logical_bs_shift;	/* 9..12 */
	unsigned physical_bs_shift;
	unsigned caps;			/* ZUBLK_CAP_* */
	uint32_t discard_granularity;	/* bytes; 0: the logical block */
	uint32_t max_discard_sectors;	/* 0: a sane default */
	uint32_t dma_alignment;		/* bytes - 1; 0: 511 */
	/* Segment limits for a backing that has them; all 0: none. */
	uint64_t seg_boundary_mask;	/* + 1 a power of two >= 4096 */
	uint32_t max_segment_size;	/* >= 4096 */
	uint16_t max_segments;
	/*
	 * The largest request the backing takes, bytes (a network server's
	 * limit); 0: none.  The device's request size (--max-io) is cut down to
	 * it, in multiples of 4096.
	 */
	uint32_t max_io_bytes;
	/*
	 * The target copies request data itself with zublk_backing_copy() or
	 * zublk_io_copy() where it can: the core asks the driver for UBLK_F_USER_COPY next to
	 * a zero-copy mode (when the kernel has it); the copy modes copy
	 * through the daemon's buffer.
	 */
	bool want_copy;
	/*
	 * ... and copies every READ and WRITE that way (a rare fallback
	 * aside): the default mode is then zero-copy rather than
	 * auto-zero-copy, which would register every request's pages for
	 * nothing; and a device with a queue per CPU keeps a thread per queue
	 * (the copies then run on every CPU) where it would get one per two.
	 */
	bool copies_all;
	/*
	 * ZUBLK_CAP_ZONED: bytes per zone, a power of two; the size is a
	 * multiple of it.  Limits on open and active zones, 0: none.
	 */
	uint64_t zone_size;
	uint32_t max_open_zones;
	uint32_t max_active_zones;
	/* Integrity metadata with each block (UBLK_F_INTEGRITY); meta_size 0: none. */
	struct zublk_integrity integrity;
};

/*
 * A request handed to a target.  The core has validated op, range and size.
 * @buf is the daemon-side data buffer in copy and user-copy modes and NULL in
 * the zero-copy modes, where data moves only through fixed-buffer ops built
 * with zublk_io_prep_rw().  A request in shared memory (zublk_dev_config
 * .shmem; UBLK_IO_F_SHMEM_ZC in @flags) has @buf at its data in the daemon's
 * mapping of it, in every mode: the application's own pages, which another
 * process can truncate, so touch them with system calls (pread(),
 * zublk_io_copy(), zublk_io_prep_rw()), not the CPU: a vanished page then
 * fails the request where memset() would take a SIGBUS.
 *
 * On a zoned device: ZONE_APPEND carries data like a WRITE (@offset is the
 * zone's start); the target sets @append_sector to where the data went
 * before it completes the request.  REPORT_ZONES has @len = the zones asked
 * for * sizeof(struct blk_zone): the target copies that many struct
 * blk_zone (fewer: a zeroed one ends the report) into the request with
 * zublk_io_copy().  The other zone operations have @len 0.
 */
struct zublk_io {
	uint16_t tag;
	uint8_t op;		/* UBLK_IO_OP_* */
	uint32_t flags;		/* UBLK_IO_F_* (at their op_flags bit positions) */
	uint64_t offset;	/* bytes */
	uint64_t len;		/* bytes; 0 for FLUSH; > 4 GiB only for discards, write zeroes */
	void *buf;
	void *tgt_priv;		/* the target's, per tag, kept across requests */
	uint64_t append_sector;	/* ZONE_APPEND: set by the target */
	/* core-private from here on */
	int result;
	unsigned nr_inflight;	/* SQEs of this request in flight */
	uint8_t state;
	uint8_t buf_registered;
	uint8_t need_reg;
};

/*
 * The target ops table.  Threads: "main" is the thread that calls
 * zublk_dev_create/destroy; "queue" is the queue's own thread.
 */
struct zublk_target_ops {
	const char *name;		/* required */
	const char *summary;		/* required: one line for `zublk help` */
	const char *usage;		/* required: the key=value options it takes */
	unsigned modes;			/* required: ZUBLK_MODE_BIT() mask it can serve */
	/*
	 * Optional: modes to take first when none was asked for (the best of
	 * these the kernel offers), before the usual order over @modes.
	 */
	unsigned prefer_modes;

	/*
	 * Required, main thread.  Read options with zublk_opts_get*(), open the
	 * backing, fill @geom, register files with zublk_dev_add_file().
	 * An error is logged once, naming the thing and the cause.
	 */
	int (*init)(struct zublk_dev *dev, struct zublk_opts *opts,
		    struct zublk_target_geom *geom);
	/* Optional, main thread, after every queue has stopped. */
	void (*exit)(struct zublk_dev *dev);
	/* Optional, queue thread, before the first FETCH. */
	int (*queue_init)(struct zublk_queue *q);
	/* Optional, queue thread, after the last request. */
	void (*queue_exit)(struct zublk_queue *q);

	/*
	 * Required, queue thread.  Start @io: either finish it now with
	 * zublk_io_complete(), or queue SQEs (zublk_queue_get_sqe() and
	 * zublk_io_sqe_mark()) whose completions come to ->io_done().
	 * Returns 0, or -errno to fail the request (the core commits it).
	 */
	int (*queue_io)(struct zublk_queue *q, struct zublk_io *io);
	/*
	 * Required when queue_io submits SQEs, queue thread.  Called once per
	 * CQE of the request; @sub is the value given to zublk_io_sqe_mark().
	 * Call zublk_io_complete() when the request is done.
	 */
	void (*io_done)(struct zublk_queue *q, struct zublk_io *io, unsigned sub,
			int res);
	/*
	 * Optional, queue thread: the transfer that
	 * zublk_io_prep_rw_commit_note() linked to its commit moved all its
	 * bytes; @note is the target's.  The request's commit runs after this
	 * call is due, so @tag still names that request, which is no longer
	 * the target's.
	 */
	void (*io_note)(struct zublk_queue *q, unsigned tag, unsigned note);
	/*
	 * Required when the target marks SQEs with zublk_queue_sqe_mark(),
	 * queue thread: the CQE of such an op, which belongs to the queue and
	 * to no request.  The queue's thread waits for these too before it
	 * ends, unless it is told to quit (zublk_dev_release(), the device's
	 * end): ->queue_exit() and ->exit() must cope with an op whose CQE
	 * never came.  The thread then cancels the ops still in flight (its
	 * own and its requests') and waits up to a second for their
	 * completions before ->queue_exit(), so that their memory may go
	 * there; one that cannot be stopped (a read in an io-wq thread) may
	 * still run on past that, and a warning says so.
	 */
	void (*queue_done)(struct zublk_queue *q, unsigned sub, int res);

	/*
	 * Optional, main thread: the device is to become @size bytes
	 * (`zublk resize`).  Growing, before the kernel's size changes: grow
	 * the backing or check it is big enough.  Shrinking, after the
	 * kernel's size went down (no new request past @size; one already in
	 * flight may still end), and an error puts the kernel's size back.
	 * Without it, resize is refused.
	 */
	int (*resize)(struct zublk_dev *dev, uint64_t size);
	/*
	 * Optional, main thread: a runtime request for this target, e.g.
	 * `zublk mirror replace -n ID LEG FILE` arrives as argv
	 * {"replace", LEG, FILE}.  Write a one-line answer into @reply.
	 * Returns 0 or -errno.
	 */
	int (*control)(struct zublk_dev *dev, int argc, char **argv, char *reply,
		       size_t reply_len);
	/*
	 * Optional, main thread, at most once: the device is being deleted or
	 * stopped (`zublk del`, a signal to the daemon).  The kernel waits for
	 * every request the daemon holds before it tells the queues anything,
	 * so a target that holds requests for a reason of its own (a network
	 * target waiting for its server to come back) ends those waits now and
	 * completes them.  Must not block; the device's private data may be
	 * NULL (a device not yet set up).
	 */
	void (*stopping)(struct zublk_dev *dev);
	/*
	 * Optional, any thread: extra members for the state file and
	 * `list --json`, each written as `,"key":value` (any JSON value).
	 */
	void (*status)(struct zublk_dev *dev, FILE *json);
};

/* The one static table of targets (targets/registry.c). */
const struct zublk_target_ops *zublk_target_find(const char *name);
const struct zublk_target_ops *const *zublk_targets(void);

/* ---------------------------------------------------------------- devices */

enum zublk_recovery {
	ZUBLK_RECOVERY_REISSUE = 0,	/* requests wait for a new daemon, then reissue */
	ZUBLK_RECOVERY_OFF,		/* the device dies with its daemon */
	ZUBLK_RECOVERY_FAIL_IO,		/* IO fails at once until a new daemon recovers */
};
const char *zublk_recovery_name(enum zublk_recovery r);
uint64_t zublk_recovery_flags(enum zublk_recovery r);
int zublk_recovery_parse(const char *s, enum zublk_recovery *out);

struct zublk_dev_config {
	int dev_id;			/* -1: the kernel picks */
	unsigned nr_queues;		/* 1..nr_cpus; 0: 1 */
	unsigned queue_depth;		/* 1..4096; 0: ZUBLK_DEF_QUEUE_DEPTH */
	unsigned max_io_bytes;		/* 0: ZUBLK_DEF_MAX_IO_BYTES */
	enum zublk_mode mode;		/* DEFAULT: the best available */
	bool keep_scheduler;		/* leave the kernel's IO scheduler */
	const char *state_dir;		/* NULL: zublk_state_dir(); "" : none */
	enum zublk_recovery recovery;	/* what the driver does while no daemon runs */
	bool no_part_scan;		/* UBLK_F_NO_AUTO_PART_SCAN */
	/*
	 * Pin each queue thread to the CPUs whose IO it serves
	 * (GET_QUEUE_AFFINITY).  Off by default: the scheduler's placement
	 * measured better (bench/results).
	 */
	bool pin_queues;
	/*
	 * Before a queue thread sleeps, it keeps looking for new requests
	 * (reading the ring's memory, no system call) for a while: a sleeping
	 * thread costs the task that submits the next request a wakeup, and
	 * the request a reschedule.  0 (the default, ZUBLK_POLL_AUTO): up to
	 * ZUBLK_POLL_AUTO_US, and only while new work has been coming within
	 * that time (never with a queue per CPU); ZUBLK_POLL_OFF: sleep at
	 * once; anything else: look this
	 * many microseconds every time.
	 */
	unsigned poll_us;
	/*
	 * Threads serving the queues, each with one io_uring for the queues
	 * it serves (1..nr_queues).  0 (the default): zublk_threads_for().
	 */
	unsigned nr_threads;
	/*
	 * UBLK_F_BATCH_IO: tags handed over once (PREP_IO_CMDS), one multishot
	 * FETCH_IO_CMDS per queue, one COMMIT_IO_CMDS per loop turn.  On a
	 * recovery the kernel's flags decide, not this.
	 */
	bool batch;
	/*
	 * UBLK_F_SHMEM_ZC: files (tmpfs, hugetlbfs) the daemon maps shared and
	 * registers with the driver.  A request whose pages all lie in one of
	 * them (an application doing O_DIRECT I/O from its own shared mapping
	 * of the file) reaches the target with zublk_io.buf pointing at its
	 * data in the daemon's mapping and UBLK_IO_F_SHMEM_ZC in its flags: no
	 * copy, no buffer registration, in every data mode.  Other requests
	 * move as the data mode has them.  On a recovery @shmem_index is the
	 * driver's index of each (zublk_state.shmem), which outlives daemons.
	 */
	const char *shmem[ZUBLK_MAX_SHMEM];
	int shmem_index[ZUBLK_MAX_SHMEM];
	/*
	 * On a recovery, each file as it was registered: a file at that path
	 * now that is another (removed and made again) is refused, for the
	 * driver still serves the old one's pages.  All 0: not known (a state
	 * file from before), not checked.
	 */
	struct zublk_shmem_id { uint64_t dev, ino, len; } shmem_id[ZUBLK_MAX_SHMEM];
	unsigned nr_shmem;
	/*
	 * Take over the existing device @dev_id after its daemon died or was
	 * quiesced: START/END_USER_RECOVERY instead of ADD/SET_PARAMS/START.
	 * @expect_files, when set, is the backing identity the device was
	 * served with (zublk_state.files); a different backing is refused.
	 */
	bool recover;
	const char *expect_files;
	/*
	 * Optional: called on the creating thread as soon as ADD_DEV has given
	 * the device its id, before the rest of the set-up (not on a
	 * recovery), so that whoever may kill this process half-way (a
	 * time-out) knows what device to delete.
	 */
	void (*added)(unsigned dev_id, void *arg);
	void *added_arg;
};

/* Validates @cfg (ranges) without touching the kernel. */
int zublk_dev_config_check(const struct zublk_dev_config *cfg, unsigned nr_cpus);

/* Tags one thread serves at most: its ring's fixed-buffer table holds one per tag. */
#define ZUBLK_MAX_THREAD_TAGS 16384U
/*
 * How many threads serve @nr_queues queues of @depth tags on @nr_cpus CPUs:
 * @want when set (at most one per queue).  Otherwise a thread per queue
 * while CPUs are left over for the submitters, and one thread per two
 * queues when there is a queue per CPU: there no thread may look for work
 * before sleeping without taking a submitter's CPU, and one sleeping thread
 * serving two queues gathers more requests per wakeup than two; on null it
 * measured at or above the 1-queue device at 4k reads and 512k writes in
 * four boots, where a thread per queue lost a quarter at 512k writes
 * (bench/notes.md); a target that copies every request itself asks for a
 * thread per queue (zublk_dev_start(), copies_all).  Queues are spread
 * evenly, and no thread gets more than ZUBLK_MAX_THREAD_TAGS tags.
 */
unsigned zublk_threads_for(unsigned nr_queues, unsigned depth, unsigned want, unsigned nr_cpus);

int zublk_dev_create(const struct zublk_dev_config *cfg,
		     const struct zublk_target_ops *ops, struct zublk_opts *opts,
		     struct zublk_dev **out);
int zublk_dev_start(struct zublk_dev *dev);
/* Ask the queues to stop: STOP_DEV; zublk_dev_wait() then returns. */
int zublk_dev_stop(struct zublk_dev *dev);
/*
 * An eventfd that turns readable when a queue thread has ended (the device
 * was deleted or aborted): poll it, then zublk_dev_wait().
 */
int zublk_dev_exit_fd(const struct zublk_dev *dev);
/*
 * After the queues ended on their own: true when the driver holds the
 * device for a new daemon (quiesced for an upgrade, or waiting after a
 * crash), so the daemon must exit without deleting it.
 */
bool zublk_dev_awaits_recovery(struct zublk_dev *dev);
/*
 * Stop serving without stopping the device: every queue quits and the
 * driver keeps the device for a new daemon (`zublk recover`).  Of a device
 * the driver is cancelling (a quiesce), the threads first commit what they
 * hold, waited for up to 12 s.
 */
void zublk_dev_release(struct zublk_dev *dev);
/* Resize a live device: target ->resize, the core's limits, UPDATE_SIZE. */
int zublk_dev_resize(struct zublk_dev *dev, uint64_t size);
/* Rewrite the state file (thread-safe; for targets whose status changed). */
int zublk_dev_save_state(struct zublk_dev *dev);
/*
 * For targets whose backing changes while the device runs (mirror replace,
 * a failed leg).  Both are thread-safe; zublk_dev_save_state() records the
 * change for `list` and for a recovery.
 *
 * zublk_dev_set_file(): @fd now backs fixed-file index @idx (from
 * zublk_dev_add_file()), so the backing identity a recovery checks follows
 * it.  The target updates its queues' rings itself (IORING_OP_FILES_UPDATE
 * from the queue thread) and owns both fds.
 *
 * zublk_dev_set_opt(): the @nth value of option @key becomes @val (appended
 * when there are only @nth of them); a NULL @val removes it.  A recovery
 * starts the target with the options as they are then.
 */
int zublk_dev_set_file(struct zublk_dev *dev, int idx, int fd);
/*
 * Whether fixed file @idx (from zublk_dev_add_file()) counts in the backing
 * identity a recovery checks: a mirror's failed leg, which may be gone or
 * stood in for by then, does not.  Thread-safe.
 */
int zublk_dev_file_counts(struct zublk_dev *dev, int idx, bool counts);
int zublk_dev_set_opt(struct zublk_dev *dev, const char *key, unsigned nth, const char *val);

/*
 * The daemon's control socket (<state_dir>/<id>.sock): poll zublk_dev_ctl_fd()
 * for POLLIN in the main thread and call zublk_dev_ctl_serve().  Requests:
 * "resize SIZE", "target ARG..." (to ops->control), "ping", "stopping" (to
 * ops->stopping: `zublk del` says so before it deletes the device).
 */
int zublk_dev_ctl_fd(const struct zublk_dev *dev);
void zublk_dev_ctl_serve(struct zublk_dev *dev);
/* Client side: send argv to device @id's daemon; its answer into @reply. */
int zublk_ctl_request(const char *state_dir, unsigned id, int argc, char *const *argv,
		      char *reply, size_t reply_len);
/* ... and not wait for the answer (0 once it is sent, or -errno). */
int zublk_ctl_send(const char *state_dir, unsigned id, int argc, char *const *argv);

/* Waits for every queue thread; returns the first queue error, or 0. */
int zublk_dev_wait(struct zublk_dev *dev);
/* Deletes the kernel device (if still there) and frees @dev. */
void zublk_dev_destroy(struct zublk_dev *dev);

unsigned zublk_dev_id(const struct zublk_dev *dev);
/* Queues of the device (target ->init may size per-queue state by it). */
unsigned zublk_dev_nr_queues(const struct zublk_dev *dev);
enum zublk_mode zublk_dev_mode(const struct zublk_dev *dev);
/* A new daemon taking over a device (recover, upgrade): what the target would create is lost. */
bool zublk_dev_recovering(const struct zublk_dev *dev);
/*
 * Option @key was given where it does nothing (@fmt and what follows: why).
 * Refused, -EINVAL with "KEY 'VALUE': WHY" logged; on a recovery (an older
 * zublk took it and did nothing with it) a warning that ends "; not used",
 * and 0.
 */
int zublk_dev_opt_unused(const struct zublk_dev *dev, struct zublk_opts *o, const char *key,
			 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The device went live (START_DEV); false in ->exit after a refused add. */
bool zublk_dev_started(const struct zublk_dev *dev);
uint64_t zublk_dev_size(const struct zublk_dev *dev);
const struct ublksrv_ctrl_dev_info *zublk_dev_info(const struct zublk_dev *dev);
/* The target's private pointer. */
void *zublk_dev_priv(const struct zublk_dev *dev);
void zublk_dev_set_priv(struct zublk_dev *dev, void *priv);
/*
 * Register a backing fd (target ->init only).  Returns the fixed-file index
 * to use with zublk_io_prep_rw() and IOSQE_FIXED_FILE, or -errno.
 */
int zublk_dev_add_file(struct zublk_dev *dev, int fd);
/*
 * The same for a file that grows as the device is written (an image
 * format's file): a recovery checks its device and inode, not its size.
 */
int zublk_dev_add_file_growing(struct zublk_dev *dev, int fd);
/*
 * Register @nr backing fds in a row (a file per zone, say) whose sizes
 * change as the device is written, so they are not part of the backing
 * identity a recovery checks.  Returns the first one's fixed-file index
 * (the rest follow it), or -errno.
 */
int zublk_dev_add_files(struct zublk_dev *dev, const int *fds, unsigned nr);

/* ------------------------------------------------- state of served devices */

/* What a daemon records in <state_dir>/<id>.json once its device is live. */
struct zublk_state {
	unsigned id;
	char target[32];
	char mode[32];
	unsigned queues, depth, max_io, logical_block;
	uint64_t size;
	uint64_t flags;		/* UBLK_F_* the device was added with */
	int daemon_pid;
	char recovery[16];	/* "reissue", "off", "fail-io" */
	bool pin_queues;	/* zublk_dev_config's, which a recovery keeps */
	unsigned poll_us;
	unsigned threads;	/* threads serving the queues; 0: not recorded */
	char options[4096];	/* "key=value", one per line */
	char files[1024];	/* identity of each backing: "dev:ino:size ..." */
	char extra[2048];	/* the target's status members, raw JSON: "k": v, ... */
	char shmem[2048];	/* the shared-memory files, "index:path" one per line */
	char shmem_id[512];	/* and which file each is, "dev.ino.len" one per line */
};

/* Counters summed over a device's queues. */
struct zublk_counters {
	uint64_t ios;		/* requests committed */
	uint64_t submits;	/* SQEs submitted */
	uint64_t enters;	/* io_uring_enter calls */
	uint64_t errors;	/* requests committed with an error */
	uint64_t sleeps;	/* times a queue slept waiting for work */
	uint64_t polls;		/* times it looked before sleeping and found work */
	uint64_t idle_ns;	/* time its looks spent waiting for work, yields not counted */
	uint64_t shmem_ios;	/* requests whose data was in shared memory (--shmem) */
	uint64_t copies;	/* straight copies to or from a mapped file (zublk_backing_copy) */
	uint64_t hand_regs;	/* auto-zero-copy requests whose buffer the daemon registered */
};

/*
 * Where this user's devices keep their state, logs and control sockets:
 * ZUBLK_STATE_DIR for root; for another user $XDG_RUNTIME_DIR/zublk, or
 * /tmp/zublk-<uid> without it (made 0700 by the daemon).
 */
const char *zublk_state_dir(void);
int zublk_state_parse(const char *json, struct zublk_state *st);
int zublk_state_load(const char *dir, unsigned id, struct zublk_state *st);
void zublk_state_unlink(const char *dir, unsigned id);
/*
 * Device @id's log file in @dir for appending, made if need be (with the
 * directory): not in a directory not ours, not through a link, never a
 * FIFO.  The fd, or -errno.
 */
int zublk_state_log_open(const char *dir, unsigned id);
int zublk_stats_read(const char *dir, unsigned id, struct zublk_counters *sum);
/* @s as a JSON string, quotes included. */
void zublk_json_str(FILE *f, const char *s);

/* ---------------------------------------------------------------- queues */

struct zublk_dev *zublk_queue_dev(const struct zublk_queue *q);
unsigned zublk_queue_id(const struct zublk_queue *q);
void *zublk_queue_priv(const struct zublk_queue *q);
void zublk_queue_set_priv(struct zublk_queue *q, void *priv);

/* An SQE on the queue's ring; flushes the ring when full. NULL: ring broken. */
struct io_uring_sqe *zublk_queue_get_sqe(struct zublk_queue *q);

/* Tie @sqe to @io: its CQE comes to ->io_done(q, io, sub, res). */
void zublk_io_sqe_mark(struct zublk_queue *q, struct zublk_io *io,
		       struct io_uring_sqe *sqe, unsigned sub);

/*
 * Look at @io again in @ns nanoseconds: a timeout marked with @sub, whose
 * CQE (res -ETIME) comes to ->io_done().  @ts holds the time and must stay
 * valid until that CQE (the request's own state).  For a request that must
 * wait for another (a copy, a cluster being written).  0 or -EBUSY (no SQE).
 */
int zublk_io_prep_wait(struct zublk_queue *q, struct zublk_io *io,
		       struct __kernel_timespec *ts, long ns, unsigned sub);

/*
 * Tie @sqe to the queue, not to a request (work of the target's own, such
 * as a sync ahead of need): its CQE comes to ->queue_done(q, sub, res).
 * Queue thread only; @sub 0..ZUBLK_UD_SUB_MAX.
 */
void zublk_queue_sqe_mark(struct zublk_queue *q, struct io_uring_sqe *sqe, unsigned sub);

/*
 * Prepare a read (@write false) or write of @len bytes at @io_off in the
 * request's data to fixed file @file_idx at @file_off, in whatever data mode
 * the device runs: it uses the request's own pages as a fixed buffer in the
 * zero-copy modes (registering them first where needed), the daemon buffer
 * otherwise.  Marks the SQE with @sub.  Returns 0 or -errno.
 */
int zublk_io_prep_rw(struct zublk_queue *q, struct zublk_io *io, bool write,
		     int file_idx, uint64_t file_off, uint32_t io_off, uint32_t len,
		     unsigned sub);

/*
 * The same for the SQE that finishes the request (@io_off + @len ==
 * io->len): when it moves all @len bytes, the kernel commits the request
 * right after it (io->len bytes), linked to it, and neither its CQE nor
 * ->io_done() comes — one turn of the queue's loop per request instead of
 * two.  When it fails or moves fewer bytes, ->io_done() gets its result as
 * after zublk_io_prep_rw(), and the request is the target's again.  Where
 * linking is not possible (user-copy mode, --batch, other SQEs of the
 * request still in flight) it is zublk_io_prep_rw().
 */
int zublk_io_prep_rw_commit(struct zublk_queue *q, struct zublk_io *io, bool write,
			    int file_idx, uint64_t file_off, uint32_t io_off, uint32_t len,
			    unsigned sub);
/*
 * zublk_io_prep_rw_commit() that tells the target when the linked transfer
 * is done: ->io_note(q, tag, @note) (a NOP in the chain between the
 * transfer and the commit, so one CQE more and no system call).  For a
 * target that must know when a request's data stopped moving (one that
 * hands out again the blocks a request may have used).
 */
int zublk_io_prep_rw_commit_note(struct zublk_queue *q, struct zublk_io *io, bool write,
				 int file_idx, uint64_t file_off, uint32_t io_off, uint32_t len,
				 unsigned sub, unsigned note);

/*
 * For a target that puts a request's transfer inside a link chain of its
 * own (a header sent before it on a socket, say): queue now what the
 * request's data needs before any op may use it (in the zero-copy mode,
 * the registration of its pages), so that nothing else lands inside the
 * chain.  0 or -errno.
 */
int zublk_io_buf_prepare(struct zublk_queue *q, struct zublk_io *io);

/*
 * zublk_io_prep_rw() with IOSQE_* @sqe_flags added to its SQE (IOSQE_IO_LINK:
 * the chain goes on after it).  Inside a chain, call zublk_io_buf_prepare()
 * first.
 */
int zublk_io_prep_rw_flags(struct zublk_queue *q, struct zublk_io *io, bool write,
			   int file_idx, uint64_t file_off, uint32_t io_off, uint32_t len,
			   unsigned sub, unsigned sqe_flags);

/*
 * Room for @nr SQEs in a row, so that a link chain is not cut in two by
 * a submission: submits what is queued when fewer are free.  Returns how
 * many are free (fewer than @nr only when the ring is smaller).
 */
unsigned zublk_queue_sq_reserve(struct zublk_queue *q, unsigned nr);
/*
 * SQEs one request's linked chain (zublk_io_prep_rw_commit()) takes at
 * most: register, read/write, note, unregister, commit.
 */
#define ZUBLK_IO_CHAIN_SQES 5
/* Every queue's ring has room for at least this many SQEs. */
#define ZUBLK_RING_MIN_SQES 32

/*
 * From @q's thread: fixed file @idx (from zublk_dev_add_file()) of @q's
 * ring is @fd from now on (a network target's new connection).  Only this
 * ring changes; any other keeps the file it had until the device ends.
 * 0 or -errno.
 */
int zublk_queue_set_file(struct zublk_queue *q, int idx, int fd);

/* Finish @io with @res (bytes done, or -errno).  Exactly once per request. */
void zublk_io_complete(struct zublk_queue *q, struct zublk_io *io, int res);

/*
 * Copy @len bytes between daemon memory @mem and the data of request @io at
 * @io_off, at once, in the queue thread: into a READ's or REPORT_ZONES'
 * data, out of a WRITE's or ZONE_APPEND's.  In the copy and user-copy
 * modes the data is the daemon's buffer @io->buf; in the zero-copy modes,
 * the request's pages by the driver's user copy (pread/pwrite on
 * /dev/ublkcN), which the device has next to a zero-copy mode when the
 * target set geom->want_copy.  The
 * kernel copies either way: @mem that faults fails the copy (EFAULT), it
 * does not kill the daemon.  0, or -errno when the target must move the
 * data its usual way (no user copy on this device, a failed copy).
 */
int zublk_io_copy(struct zublk_queue *q, struct zublk_io *io, uint32_t io_off, void *mem,
		  uint32_t len);

/*
 * Integrity metadata of request @io (geom.integrity): its length in bytes,
 * 0 when the request carries none (UBLK_IO_F_INTEGRITY unset: not a READ
 * or WRITE, or the block layer attached none).
 */
uint32_t zublk_io_meta_len(const struct zublk_queue *q, const struct zublk_io *io);
/*
 * Copy @len bytes between daemon memory @mem and @io's metadata at @off,
 * by the driver's user copy, in every mode: out of a WRITE's, into a
 * READ's (before the request completes).  0, or -errno.
 */
int zublk_io_meta_copy(struct zublk_queue *q, struct zublk_io *io, uint32_t off, void *mem,
		       uint32_t len);
/* zublk_io_copy() has a way to copy @io's data (it may still fail). */
bool zublk_io_can_copy(const struct zublk_queue *q, const struct zublk_io *io);

/* ------------------------------------------------------------- backings */

struct zublk_mem;

/*
 * A target's backing: a regular file or a block device, opened with
 * zublk_backing_open(), which also finds its shape.
 */
struct zublk_backing {
	int fd;
	bool bdev;
	bool buffered;		/* opened without O_DIRECT */
	bool in_memory;		/* a regular file on tmpfs or ramfs */
	uint64_t size;		/* bytes */
	unsigned lbs_shift;	/* logical block */
	unsigned pbs_shift;
	uint32_t dma_alignment;	/* bytes - 1; 0: 511 */
	bool can_discard;	/* punch hole (file), block discard (device) */
	bool can_zero;		/* punch hole / zero range, zero out */
	bool no_zero_range;	/* its file system refused a zeroed range (__atomic) */
	struct zublk_mem *mem;	/* zublk_backing_map()'s mapping, or NULL */
	/*
	 * zublk_backing_copy() takes requests up to this many bytes
	 * (zublk_backing_map() sets ZUBLK_BACKING_COPY_MAX; a target may
	 * change it before the device starts).
	 */
	uint32_t copy_max;
};

/*
 * No limit by default: measured in the project's VM (bench/notes.md), the
 * straight copy beats io_uring's worker-thread handoff at every request
 * size, 4k to 512k.
 */
#define ZUBLK_BACKING_COPY_MAX ZUBLK_MAX_MAX_IO_BYTES

/*
 * Open @path read-write (read-only with @ro) and fill @b.  O_DIRECT unless
 * @buffered is 1, or -1 (not said) and the file is in memory (tmpfs,
 * ramfs), where O_DIRECT bypasses no cache and only costs; decided on the
 * opened file.  On error logs one line "<what> '<path>': <cause>" and
 * returns -errno with nothing left open.
 */
int zublk_backing_open(struct zublk_backing *b, const char *what, const char *path, bool ro,
		       int buffered);
/* Whether @path is on a file system in memory (tmpfs or ramfs). */
bool zublk_path_in_memory(const char *path);
/*
 * open(2) with O_CLOEXEC that does not wait on a FIFO named by mistake
 * (opened O_NONBLOCK, the flag cleared after): the fd, or -1 and errno.
 */
int zublk_open_nowait(const char *path, int flags, mode_t mode);
/*
 * For a regular file opened with O_DIRECT: the block its file offsets and
 * lengths must be a multiple of (@block, 512 to 4096) and the alignment its
 * memory needs (@mem, at least @block, so each segment is whole blocks), as
 * the file system reports them (512 and 512 where it reports nothing).
 * -EINVAL, with one line "<what> '<path>': <cause>" logged, when it takes
 * no O_DIRECT there or needs a block the device cannot have (above 4096,
 * or not a power of two).
 */
int zublk_dio_align(int fd, const char *what, const char *path, unsigned *block,
		    unsigned *mem);
void zublk_backing_close(struct zublk_backing *b);
/*
 * For a file in memory: map its first @size bytes shared, so requests can
 * be copied straight between the file's pages and the request's pages in
 * the queue thread (zublk_backing_copy()) instead of an io_uring read or
 * write that io_uring hands to a worker thread (tmpfs cannot do them
 * without blocking).  Call again with a larger @size after the file grew.
 * -EOPNOTSUPP when @b is not a file in memory.
 */
int zublk_backing_map(struct zublk_backing *b, uint64_t size);
/*
 * Queue thread: copy @len bytes of @io's data at @io_off to (WRITE) or
 * from (READ) the mapped backing at @off, now: in the zero-copy modes
 * between the mapping and the request (zublk_io_copy()), in the copy modes
 * by pread()/pwrite() on the file into or out of the request's buffer.
 * Returns 0 when done, or -errno when the target must move the data its
 * usual way instead: no mapping, no way to copy, more than @b->copy_max
 * bytes, in a zero-copy mode a READ of a range that holds no page yet (a
 * hole: mapping it would allocate memory to read zeros), or the copy
 * failed (the file shrank, tmpfs is full, the mapping was given up under
 * it).  Redoing the whole range the usual way is always right.
 */
int zublk_backing_copy(struct zublk_queue *q, struct zublk_io *io, struct zublk_backing *b,
		       uint64_t off, uint32_t io_off, uint32_t len);
/*
 * The fallocate() mode of a WRITE_ZEROES on @b.  A block device always
 * takes a zeroed range (a punched hole there fails where the device cannot
 * unmap).  A regular file takes a zeroed range, which keeps the blocks,
 * when the request says NOUNMAP (@nounmap) and its file system has not
 * refused one (zublk_backing_zero_refused()); else a punched hole, which
 * reads back as zeros too (NOUNMAP is a wish, not a promise).
 */
int zublk_backing_zero_mode(const struct zublk_backing *b, bool nounmap);
/*
 * A zeroed range on @b ended with @res: true when @b is a regular file
 * whose file system refused it (-EOPNOTSUPP, as tmpfs does).  Later ones
 * punch, and the target should do this one again so.  False for a block
 * device: its refusal is the request's answer.
 */
bool zublk_backing_zero_refused(struct zublk_backing *b, int res);
/* After a discard or punched hole of [@off, @off + @len) on a mapped backing. */
void zublk_backing_forget(struct zublk_backing *b, uint64_t off, uint64_t len);
/*
 * Give up the mapping while queue threads may still copy (the file behind
 * it is being swapped out): the file's pages leave the address space, which
 * stays reserved until zublk_backing_close(), so a copy racing with this
 * fails (and its target takes the io_uring way) and every later one
 * declines.
 */
void zublk_backing_unmap(struct zublk_backing *b);
/* Mapped, and not given up with zublk_backing_unmap(). */
bool zublk_backing_is_mapped(const struct zublk_backing *b);

/* ----------------------------------------------------- pure helpers (tested) */

/*
 * user_data of every SQE on a queue ring:
 *   bits  0..15  tag
 *   bits 16..23  kind (ZUBLK_UD_*)
 *   bits 24..39  target sub-op
 */
enum {
	ZUBLK_UD_CMD = 1,	/* FETCH / COMMIT_AND_FETCH */
	ZUBLK_UD_REG = 2,	/* REGISTER_IO_BUF */
	ZUBLK_UD_UNREG = 3,	/* UNREGISTER_IO_BUF */
	ZUBLK_UD_TGT = 4,	/* a target op */
	ZUBLK_UD_NOTE = 5,	/* a linked transfer's notice (->io_note) */
	ZUBLK_UD_QUEUE = 6,	/* a target op of the queue's own (->queue_done) */
};
#define ZUBLK_UD_SUB_MAX 0xffffU

static inline uint64_t zublk_ud_pack(unsigned tag, unsigned kind, unsigned sub)
{
	return (uint64_t)(tag & 0xffff) | (uint64_t)(kind & 0xff) << 16 |
	       (uint64_t)(sub & 0xffff) << 24;
}
static inline unsigned zublk_ud_tag(uint64_t ud) { return ud & 0xffff; }
static inline unsigned zublk_ud_kind(uint64_t ud) { return (ud >> 16) & 0xff; }
static inline unsigned zublk_ud_sub(uint64_t ud) { return (ud >> 24) & 0xffff; }

/* Position of (q_id, tag) data on /dev/ublkcN for user copy. */
static inline uint64_t zublk_user_copy_pos(unsigned q_id, unsigned tag)
{
	return UBLKSRV_IO_BUF_OFFSET + ((uint64_t)q_id << UBLK_QID_OFF) +
	       ((uint64_t)tag << UBLK_TAG_OFF);
}

/*
 * Check a request descriptor against the device: a known op, a range inside
 * @dev_sectors, a length within @max_io_bytes.  Returns 0 or -errno and
 * fills op, offset and len of @io.
 */
int zublk_io_validate(const struct ublksrv_io_desc *iod, uint64_t dev_sectors,
		      unsigned max_io_bytes, unsigned caps, struct zublk_io *io);

#ifdef __cplusplus
}
#endif
#endif
