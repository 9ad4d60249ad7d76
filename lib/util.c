// SPDX-License-Identifier: MIT
/* Logging, the clock, names of modes, features and states. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

uint64_t zublk_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

bool zublk_read_text(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return true;
}

/* The first @len - 1 bytes of /proc/@pid/@what in @buf; false if unreadable. */
static bool proc_read(pid_t pid, const char *what, char *buf, size_t len)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%ld/%s", (long)pid, what);
	return zublk_read_text(path, buf, len);
}

bool zublk_pid_exited(pid_t pid)
{
	char buf[1024], *p;

	if (kill(pid, 0) && errno == ESRCH)
		return true;
	/* Unreadable (/proc hidden): there, as kill says. */
	if (!proc_read(pid, "stat", buf, sizeof(buf)))
		return kill(pid, 0) && errno == ESRCH;
	/* The state follows the name, which may hold ')' itself: the last one. */
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || (p[2] != 'Z' && p[2] != 'X'))
		return false;
	/*
	 * A leader that is a zombie while other threads of it still exit (one
	 * in the middle of IO to its backing, which it still holds) has not.
	 */
	if (!proc_read(pid, "status", buf, sizeof(buf)) || !(p = strstr(buf, "\nThreads:")))
		return true;
	return strtol(p + 9, NULL, 10) <= 1;
}

static void default_log(enum zublk_log_level level, const char *msg)
{
	if (level <= ZUBLK_LOG_WARN)
		fprintf(stderr, "zublk: %s\n", msg);
}

static zublk_log_fn log_fn = default_log;
/* The last error each thread logged, for answers over the control socket. */
static __thread char last_error[512];

void zublk_last_error_clear(void)
{
	last_error[0] = '\0';
}

const char *zublk_last_error_or(const char *fallback)
{
	return last_error[0] ? last_error : fallback;
}

void zublk_set_log(zublk_log_fn fn)
{
	log_fn = fn ? fn : default_log;
}

void zublk_log(enum zublk_log_level level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (level == ZUBLK_LOG_ERR) {
		size_t n = strnlen(msg, sizeof(last_error) - 1);

		memcpy(last_error, msg, n);
		last_error[n] = '\0';
	}
	log_fn(level, msg);
}

static const char *const mode_names[ZUBLK_MODE_NR] = {
	[ZUBLK_MODE_DEFAULT] = "default",
	[ZUBLK_MODE_COPY] = "copy",
	[ZUBLK_MODE_USER_COPY] = "user-copy",
	[ZUBLK_MODE_ZERO_COPY] = "zero-copy",
	[ZUBLK_MODE_AUTO_ZERO_COPY] = "auto-zero-copy",
};

const char *zublk_mode_name(enum zublk_mode mode)
{
	if ((unsigned)mode >= ZUBLK_MODE_NR)
		return "?";
	return mode_names[mode];
}

int zublk_mode_parse(const char *s, enum zublk_mode *out)
{
	for (unsigned m = 0; m < ZUBLK_MODE_NR; m++) {
		if (!strcmp(s, mode_names[m])) {
			*out = (enum zublk_mode)m;
			return 0;
		}
	}
	return -EINVAL;
}

uint64_t zublk_mode_flags(enum zublk_mode mode)
{
	switch (mode) {
	case ZUBLK_MODE_USER_COPY:
		return UBLK_F_USER_COPY;
	case ZUBLK_MODE_ZERO_COPY:
		return UBLK_F_SUPPORT_ZERO_COPY;
	case ZUBLK_MODE_AUTO_ZERO_COPY:
		return UBLK_F_AUTO_BUF_REG;
	default:
		return 0;
	}
}

enum zublk_mode zublk_mode_from_flags(uint64_t flags)
{
	if (flags & UBLK_F_AUTO_BUF_REG)
		return ZUBLK_MODE_AUTO_ZERO_COPY;
	if (flags & UBLK_F_SUPPORT_ZERO_COPY)
		return ZUBLK_MODE_ZERO_COPY;
	if (flags & UBLK_F_USER_COPY)
		return ZUBLK_MODE_USER_COPY;
	return ZUBLK_MODE_COPY;
}

static const char *const recovery_names[] = {
	[ZUBLK_RECOVERY_REISSUE] = "reissue",
	[ZUBLK_RECOVERY_OFF] = "off",
	[ZUBLK_RECOVERY_FAIL_IO] = "fail-io",
};

const char *zublk_recovery_name(enum zublk_recovery r)
{
	if ((unsigned)r >= sizeof(recovery_names) / sizeof(recovery_names[0]))
		return "?";
	return recovery_names[r];
}

int zublk_recovery_parse(const char *s, enum zublk_recovery *out)
{
	for (unsigned r = 0; r < sizeof(recovery_names) / sizeof(recovery_names[0]); r++) {
		if (!strcmp(s, recovery_names[r])) {
			*out = (enum zublk_recovery)r;
			return 0;
		}
	}
	return -EINVAL;
}

uint64_t zublk_recovery_flags(enum zublk_recovery r)
{
	switch (r) {
	case ZUBLK_RECOVERY_REISSUE:
		return UBLK_F_USER_RECOVERY | UBLK_F_USER_RECOVERY_REISSUE;
	case ZUBLK_RECOVERY_FAIL_IO:
		return UBLK_F_USER_RECOVERY | UBLK_F_USER_RECOVERY_FAIL_IO;
	default:
		return 0;
	}
}

enum zublk_mode zublk_mode_best(uint64_t features, unsigned allowed)
{
	static const enum zublk_mode pref[] = {
		ZUBLK_MODE_AUTO_ZERO_COPY, ZUBLK_MODE_ZERO_COPY,
		ZUBLK_MODE_USER_COPY, ZUBLK_MODE_COPY,
	};

	for (unsigned i = 0; i < sizeof(pref) / sizeof(pref[0]); i++) {
		uint64_t need = zublk_mode_flags(pref[i]);

		if ((allowed & ZUBLK_MODE_BIT(pref[i])) && (features & need) == need)
			return pref[i];
	}
	return ZUBLK_MODE_DEFAULT;
}

static const struct {
	const char *name;
	const char *desc;
} features[] = {
	[0] = { "ZERO_COPY", "request pages as io_uring fixed buffers (REGISTER_IO_BUF)" },
	[1] = { "URING_CMD_COMP_IN_TASK", "complete commands in task context (always on)" },
	[2] = { "NEED_GET_DATA", "daemon supplies the write buffer in a second step" },
	[3] = { "USER_RECOVERY", "a new daemon can take over a device after a crash" },
	[4] = { "USER_RECOVERY_REISSUE", "requests in flight at a crash are reissued" },
	[5] = { "UNPRIVILEGED_DEV", "devices owned by unprivileged users" },
	[6] = { "CMD_IOCTL_ENCODE", "ioctl-encoded command opcodes" },
	[7] = { "USER_COPY", "data copied by pread/pwrite on /dev/ublkcN" },
	[8] = { "ZONED", "zoned block devices" },
	[9] = { "USER_RECOVERY_FAIL_IO", "fail IO at once while no daemon runs" },
	[10] = { "UPDATE_SIZE", "resize a live device (UPDATE_SIZE)" },
	[11] = { "AUTO_BUF_REG", "request buffer registered automatically at fetch" },
	[12] = { "QUIESCE", "quiesce a device for a live upgrade" },
	[13] = { "PER_IO_DAEMON", "any thread may serve any tag" },
	[14] = { "BUF_REG_OFF_DAEMON", "buffer registration from any thread" },
	[15] = { "BATCH_IO", "batched fetch and commit commands" },
	[16] = { "INTEGRITY", "integrity (PI) metadata" },
	[17] = { "SAFE_STOP_DEV", "stop only while nobody holds the device open" },
	[18] = { "NO_AUTO_PART_SCAN", "no partition scan at start" },
	[19] = { "SHMEM_ZC", "zero copy through registered shared memory" },
};

const char *zublk_feature_name(unsigned bit)
{
	if (bit >= sizeof(features) / sizeof(features[0]))
		return NULL;
	return features[bit].name;
}

const char *zublk_feature_desc(unsigned bit)
{
	if (bit >= sizeof(features) / sizeof(features[0]))
		return NULL;
	return features[bit].desc;
}

const char *zublk_state_name(unsigned state)
{
	switch (state) {
	case UBLK_S_DEV_DEAD:
		return "DEAD";
	case UBLK_S_DEV_LIVE:
		return "LIVE";
	case UBLK_S_DEV_QUIESCED:
		return "QUIESCED";
	case UBLK_S_DEV_FAIL_IO:
		return "FAIL_IO";
	default:
		return "UNKNOWN";
	}
}

int zublk_open_nowait(const char *path, int flags, mode_t mode)
{
	int fd = open(path, flags | O_NONBLOCK | O_CLOEXEC, mode), fl, err;

	/* A file under another's lease (an NFS or SMB export's): waited for, as open(2) does. */
	if (fd < 0 && errno == EWOULDBLOCK)
		fd = open(path, flags | O_CLOEXEC, mode);
	if (fd < 0)
		return -1;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK)) {
		err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

int zublk_write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;
	int err = 0;

	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	if (n < 0)
		err = -errno;
	close(fd);
	return err;
}
