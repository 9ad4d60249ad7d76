// SPDX-License-Identifier: MIT
/*
 * zublk add: check the arguments, start a per-device daemon, and return
 * once /dev/ublkbN is live.  The daemon reports over a pipe:
 *   "P <pid>"   its pid          "I <id>"    the device id, once added
 *   "E <msg>"   an error line    "R <path>"  the device is live
 * If it fails or goes quiet past the timeout, or add is interrupted, add
 * stops it, deletes any device it made, prints its error and exits non-zero.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define ADD_DEF_TIMEOUT_S 60

static int report_fd = -1;

static void report(const char *tag, const char *msg)
{
	char line[1200];
	int n;

	if (report_fd < 0)
		return;
	n = snprintf(line, sizeof(line) - 1, "%s %s", tag, msg);
	if (n < 0)
		return;
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	/* One line, whatever @msg quotes: `zublk add` reads a line's first letter. */
	for (int i = 0; i < n; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = '?';
	line[n++] = '\n';
	if (write(report_fd, line, (size_t)n) < 0)
		report_fd = -1;
}

/* In the daemon: errors go to `zublk add` until the device is live. */
static void daemon_log(enum zublk_log_level level, const char *msg)
{
	if (level <= ZUBLK_LOG_ERR && report_fd >= 0) {
		report("E", msg);
		return;
	}
	if (level <= ZUBLK_LOG_WARN) {
		time_t now = time(NULL);
		char ts[32];

		strftime(ts, sizeof(ts), "%F %T", localtime(&now));
		fprintf(stderr, "%s zublk[%d]: %s\n", ts, (int)getpid(), msg);
	}
}

static void redirect_log(const char *state_dir, unsigned id)
{
	int fd;

	/* Never keep the caller's stderr: `$(zublk add ... 2>&1)` would wait on us. */
	fd = state_dir[0] ? zublk_state_log_open(state_dir, id) : -1;
	if (fd < 0)
		fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	dup2(fd, STDERR_FILENO);
	close(fd);
}

/* The daemon's main thread: serve until the device goes or we are told to stop. */
static int serve(struct zublk_dev *dev, int sfd)
{
	struct pollfd pfd[3] = {
		{ .fd = sfd, .events = POLLIN },
		{ .fd = zublk_dev_exit_fd(dev), .events = POLLIN },
		{ .fd = zublk_dev_ctl_fd(dev), .events = POLLIN },
	};

	for (;;) {
		if (pfd[2].revents & POLLIN)
			zublk_dev_ctl_serve(dev);
		if (poll(pfd, pfd[2].fd >= 0 ? 3 : 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == sizeof(si))
				zublk_log(ZUBLK_LOG_WARN, "device %u: signal %u: stopping",
					  zublk_dev_id(dev), si.ssi_signo);
			zublk_dev_stop(dev);
		}
		if (pfd[1].revents & POLLIN)
			break;
	}
	/*
	 * The queues ended without a stop from us: the driver either holds the
	 * device for a new daemon (upgrade, recovery: leave it) or lost a queue
	 * (the device is unusable: bring the rest down and delete it).
	 */
	if (zublk_dev_awaits_recovery(dev)) {
		zublk_log(ZUBLK_LOG_WARN, "device %u: queues released; left for recovery",
			  zublk_dev_id(dev));
		zublk_dev_release(dev);
		return zublk_dev_wait(dev);
	}
	zublk_dev_stop(dev);
	return zublk_dev_wait(dev);
}

/*
 * The namespace copy holds every mount the caller had, ublk file systems
 * included (`zublk recover` of a mounted device): detach those here, or
 * this daemon would pin its own device's superblock.
 */
static void drop_ublk_mounts(void)
{
	char line[4096], *points[256];
	int n = 0;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f) && n < 256) {
		char *sep = strstr(line, " - "), mnt[1024], fstype[64], src[1024];

		if (!sep || sscanf(line, "%*s %*s %*s %*s %1023s", mnt) != 1 ||
		    sscanf(sep + 3, "%63s %1023s", fstype, src) != 2)
			continue;
		if (!strncmp(src, "/dev/ublkb", 10))
			points[n++] = strdup(mnt);
	}
	fclose(f);
	/* Last mounted first, so stacked mounts come off top down. */
	while (n-- > 0) {
		if (points[n])
			umount2(points[n], MNT_DETACH);
		free(points[n]);
	}
}

/* The id as soon as the kernel gives it: a time-out after it deletes the device. */
static void report_id(unsigned dev_id, void *arg)
{
	char msg[16];

	(void)arg;
	snprintf(msg, sizeof(msg), "%u", dev_id);
	report("I", msg);
}

static void run_daemon(const struct zublk_dev_config *config, const struct zublk_target_ops *ops,
		       struct zublk_opts *opts, int pipe_fd)
{
	struct zublk_dev_config c = *config, *cfg = &c;
	struct zublk_dev *dev;
	char msg[64];
	sigset_t set;
	int sfd, null_fd, ret;

	report_fd = pipe_fd;
	zublk_set_log(daemon_log);
	snprintf(msg, sizeof(msg), "%d", (int)getpid());
	report("P", msg);

	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null_fd >= 0) {
		dup2(null_fd, STDIN_FILENO);
		dup2(null_fd, STDOUT_FILENO);
		close(null_fd);
	}
	/* Queue threads inherit this mask; the main thread takes signals by fd. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	/*
	 * Our own mount namespace: a mount of our device made elsewhere never
	 * pins us, and one made by us (none today) never outlives us.
	 */
	if (unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0)
		drop_ublk_mounts();

	c.added = report_id;
	ret = zublk_dev_create(cfg, ops, opts, &dev);
	if (ret)
		_exit(1);
	/* Again for a recovery, which adds nothing. */
	report_id(zublk_dev_id(dev), NULL);
	ret = zublk_dev_start(dev);
	if (ret) {
		zublk_dev_destroy(dev);
		_exit(1);
	}
	snprintf(msg, sizeof(msg), "/dev/ublkb%u", zublk_dev_id(dev));
	redirect_log(cfg->state_dir ? cfg->state_dir : zublk_state_dir(), zublk_dev_id(dev));
	report("R", msg);
	close(report_fd);
	report_fd = -1;

	ret = serve(dev, sfd);
	zublk_dev_destroy(dev);
	_exit(ret ? 1 : 0);
}

/*
 * Kill what the daemon left: the process, then the device.  A daemon in
 * the middle of START_DEV must not die: the driver's partition scan waits
 * there for reads the daemon serves, its exit waits for START_DEV, and
 * both hang in the kernel for good.  So a new device's daemon is asked to
 * stop (SIGTERM: once START_DEV is back it stops and deletes the device
 * itself), and killed only if it has not in 30 s.  A recovering daemon
 * starts nothing; it is killed at once and the device left for another
 * try (a stop would delete it).
 */
static void cleanup_failed(pid_t pid, long id, bool recovering)
{
	struct ublksrv_ctrl_dev_info info;
	struct zublk_ctrl *c;

	if (pid > 0) {
		if (!recovering)
			kill(pid, SIGTERM);
		if (recovering || !cli_wait_daemon_gone(pid, 30))
			kill(pid, SIGKILL);
		cli_wait_daemon_gone(pid, 5);
	}
	/*
	 * Only a device our daemon added and left: one that stopped deleted
	 * its own, and the driver gives its id to the next add at once.
	 */
	if (id < 0 || zublk_ctrl_open(&c))
		return;
	zublk_ctrl_set_timeout(c, 20000);
	if (!zublk_ctrl_get_info(c, (unsigned)id, &info) &&
	    (pid <= 0 || info.ublksrv_pid == pid)) {
		zublk_ctrl_del_dev(c, (unsigned)id, false);
		zublk_state_unlink(zublk_state_dir(), (unsigned)id);
	}
	zublk_ctrl_close(c);
}

/* The user gave up (@sig): the daemon and the device it made go. */
static int interrupted(const char *verb, int sig, pid_t pid, long id, bool recovering)
{
	const char *name = sig == SIGINT    ? "SIGINT"
			   : sig == SIGTERM ? "SIGTERM"
			   : sig == SIGQUIT ? "SIGQUIT"
					    : "SIGHUP";

	cleanup_failed(pid, recovering ? -1 : id, recovering);
	if (recovering)
		cli_err(verb, "interrupted (%s): the daemon is stopped; the device waits for "
			"the next recover", name);
	else if (id >= 0)
		cli_err(verb, "interrupted (%s): the daemon is stopped and the device deleted",
			name);
	else
		cli_err(verb, "interrupted (%s): the daemon is stopped", name);
	return 128 + sig;
}

/*
 * Read the daemon's reports on @fd until it says ready, fails, goes quiet
 * past @timeout_s, or a signal comes on @sfd (the user gave up: its pid,
 * reported first thing, and a new device's id, right after ADD_DEV, are
 * waited for, 5 s at most).
 */
static int wait_daemon(const char *verb, int fd, int sfd, unsigned timeout_s, bool recovering)
{
	double deadline = cli_now_s() + timeout_s;
	char buf[4096], errs[4096] = "";
	size_t have = 0, nerr = 0;
	pid_t pid = -1;
	long id = -1;
	int sig = 0;

	for (;;) {
		struct pollfd pfd[2] = { { .fd = fd, .events = POLLIN },
					 { .fd = sfd, .events = POLLIN } };
		double left = deadline - cli_now_s();
		ssize_t n;
		char *nl;

		/* A new device's id comes right after ADD_DEV: wait for it too. */
		if (sig && pid > 0 && (id >= 0 || recovering))
			return interrupted(verb, sig, pid, id, recovering);
		if (left <= 0) {
			if (sig)
				return interrupted(verb, sig, pid, id, recovering);
			cleanup_failed(pid, recovering ? -1 : id, recovering);
			if (nerr)
				fputs(errs, stderr);
			cli_err(verb, "the device did not come up within %u s", timeout_s);
			return 1;
		}
		if (poll(pfd, sfd >= 0 && !sig ? 2 : 1, (int)(left * 1000) + 1) <= 0)
			continue;
		if (!sig && sfd >= 0 && (pfd[1].revents & POLLIN)) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				sig = (int)si.ssi_signo;
				if (deadline > cli_now_s() + 5)
					deadline = cli_now_s() + 5;
			}
			continue;
		}
		if (!(pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		n = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (n <= 0) {
			/* The daemon is gone without saying ready. */
			/* A device we came to recover is left for the next try. */
			if (sig)
				return interrupted(verb, sig, pid, id, recovering);
			cleanup_failed(pid, recovering ? -1 : id, recovering);
			if (nerr)
				fputs(errs, stderr);
			else
				cli_err(verb, "the daemon exited before the device was live");
			return 1;
		}
		have += (size_t)n;
		buf[have] = '\0';
		while ((nl = strchr(buf, '\n'))) {
			*nl = '\0';
			if (buf[0] == 'P')
				pid = (pid_t)atoi(buf + 2);
			else if (buf[0] == 'I')
				id = atol(buf + 2);
			else if (buf[0] == 'E')
				nerr += (size_t)snprintf(errs + nerr, sizeof(errs) - nerr,
							 "zublk: %s: %s\n", verb, buf + 2);
			else if (buf[0] == 'R' && sig) {
				return interrupted(verb, sig, pid, id, recovering);
			} else if (buf[0] == 'R') {
				printf("%s\n", buf + 2);
				return 0;
			}
			if (nerr >= sizeof(errs))
				nerr = sizeof(errs) - 1;
			have -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, have + 1);
		}
	}
}

/*
 * The pipe's ends and the signalfd closed, the caller's mask back.  A
 * signal still pending came once the outcome was settled: it is dropped
 * (the signalfd is non-blocking).
 */
static void spawn_end(int p0, int p1, int sfd, const sigset_t *old)
{
	struct signalfd_siginfo si;

	close(p0);
	if (p1 >= 0)
		close(p1);
	if (sfd < 0)
		return;
	while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		;
	close(sfd);
	sigprocmask(SIG_SETMASK, old, NULL);
}

int cli_spawn_daemon(const char *verb, const struct zublk_dev_config *cfg,
		     const struct zublk_target_ops *ops, struct zublk_opts *opts,
		     unsigned timeout_s)
{
	static const int give_up[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	sigset_t sigs, old;
	pid_t child;
	int p[2], sfd, ret;

	if (pipe2(p, O_CLOEXEC)) {
		cli_err(verb, "pipe: %s", strerror(errno));
		return 1;
	}
	/*
	 * Ctrl-C, Ctrl-\, a hang-up or a kill while the device comes up: the
	 * user gave up, so the daemon and its device go too (it has no terminal
	 * to hear them), rather than a device coming up with nobody told.  Not a
	 * signal our caller ignores (nohup, a shell's background job): blocked,
	 * it would reach the signalfd all the same.
	 */
	sigemptyset(&sigs);
	for (unsigned i = 0; i < sizeof(give_up) / sizeof(give_up[0]); i++) {
		struct sigaction sa;

		if (sigaction(give_up[i], NULL, &sa) || sa.sa_handler != SIG_IGN)
			sigaddset(&sigs, give_up[i]);
	}
	sigprocmask(SIG_BLOCK, &sigs, &old);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		sigprocmask(SIG_SETMASK, &old, NULL);
	fflush(NULL);
	child = fork();
	if (child < 0) {
		cli_err(verb, "fork: %s", strerror(errno));
		spawn_end(p[0], p[1], sfd, &old);
		return 1;
	}
	if (child == 0) {
		/* Detach twice so the daemon is nobody's child and has no terminal. */
		sigprocmask(SIG_SETMASK, &old, NULL);
		if (sfd >= 0)
			close(sfd);
		close(p[0]);
		setsid();
		if (fork() != 0)
			_exit(0);
		run_daemon(cfg, ops, opts, p[1]);
	}
	close(p[1]);
	waitpid(child, NULL, 0);
	ret = wait_daemon(verb, p[0], sfd, timeout_s, cfg->recover);
	spawn_end(p[0], -1, sfd, &old);
	return ret;
}

/*
 * Relative backing paths (file=, zoned's dir=, nbd's socket=, loop's meta=)
 * would break for the daemon and for recovery.
 */
static int absolute_file_opts(struct zublk_opts *o)
{
	for (unsigned i = 0; i < o->nr; i++) {
		const char *key = o->v[i].key;
		bool created = !strcmp(key, "meta");
		char *abs, cwd[PATH_MAX];

		if ((strcmp(key, "file") && strcmp(key, "dir") && strcmp(key, "socket") &&
		     !created) || o->v[i].val[0] == '/')
			continue;
		abs = realpath(o->v[i].val, NULL);
		/* A file the target creates: under the working directory. */
		if (!abs && created && getcwd(cwd, sizeof(cwd)) &&
		    asprintf(&abs, "%s/%s", cwd, o->v[i].val) < 0)
			abs = NULL;
		if (!abs)
			continue; /* the target names the missing file */
		free(o->v[i].val);
		o->v[i].val = abs;
	}
	return 0;
}

static const struct option add_opts[] = {
	{ "target", required_argument, NULL, 't' },
	{ "number", required_argument, NULL, 'n' },
	{ "queues", required_argument, NULL, 'q' },
	{ "depth", required_argument, NULL, 'd' },
	{ "file", required_argument, NULL, 'f' },
	{ "mode", required_argument, NULL, 'm' },
	{ "max-io", required_argument, NULL, 'M' },
	{ "keep-scheduler", no_argument, NULL, 'K' },
	{ "timeout", required_argument, NULL, 'T' },
	{ "recovery", required_argument, NULL, 'R' },
	{ "no-part-scan", no_argument, NULL, 'P' },
	{ "pin-queues", no_argument, NULL, 'A' },
	{ "poll-us", required_argument, NULL, 'U' },
	{ "batch", no_argument, NULL, 'B' },
	{ "threads", required_argument, NULL, 'N' },
	{ "shmem", required_argument, NULL, 'S' },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

/* The library's lines before the daemon runs: "zublk: add: ...". */
static void add_log(enum zublk_log_level level, const char *msg)
{
	if (level <= ZUBLK_LOG_WARN)
		cli_err("add", "%s", msg);
}

static bool add_opts_take_value(int c)
{
	for (const struct option *o = add_opts; o->name; o++)
		if (o->val == c)
			return o->has_arg == required_argument;
	return false;
}

/* The options as a recovery reads them back: one per line, 256 at most. */
static bool state_fits(char **words, int n)
{
	size_t len = 0;

	for (int i = 0; i < n; i++)
		len += strlen(words[i]) + 1;
	if (n <= 256 && len <= sizeof(((struct zublk_state *)0)->options))
		return true;
	cli_err("add", "options: %d, %zu bytes in all: more than a recovery can read back "
		"(256, %zu bytes)", n, len, sizeof(((struct zublk_state *)0)->options));
	return false;
}

/* The --shmem files as a recovery reads them back, each "65535r:" before its path. */
static bool shmem_fits(const struct zublk_dev_config *cfg)
{
	size_t len = 0, room = sizeof(((struct zublk_state *)0)->shmem);

	for (unsigned i = 0; i < cfg->nr_shmem; i++)
		len += 7 + strlen(cfg->shmem[i]) + 1;
	if (len <= room)
		return true;
	cli_err("add", "--shmem: %u files, their names too long for a recovery to read back "
		"(%zu bytes, %zu at most)", cfg->nr_shmem, len, room);
	return false;
}

int cmd_add(int argc, char **argv)
{
	struct zublk_dev_config cfg = { .dev_id = -1, .nr_queues = 1,
					.queue_depth = ZUBLK_DEF_QUEUE_DEPTH };
	const struct zublk_target_ops *ops = NULL;
	const char *tname = NULL;
	char **words = calloc((size_t)argc + 1, sizeof(char *));
	char *file_word = NULL;
	unsigned timeout_s = ADD_DEF_TIMEOUT_S, nr_cpus = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	struct zublk_opts opts;
	int nwords = 0, c, ret;
	bool recovery_set = false, seen[256] = { false };
	uint64_t max_io;

	if (!words)
		return 1;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "t:n:q:d:f:m:h", add_opts, NULL)) != -1) {
		unsigned v;

		/* One value each; --shmem repeats, flags may. */
		if (c != '?' && c != 'S' && add_opts_take_value(c) && cli_twice("add", argv, c, seen))
			return 1;

		switch (c) {
		case 't':
			tname = optarg;
			break;
		case 'n':
			if (cli_parse_id("add", optarg, &v))
				return 1;
			cfg.dev_id = (int)v;
			break;
		case 'q':
			if (zublk_parse_uint(optarg, 1, nr_cpus, &v)) {
				cli_err("add", "queues '%s': must be 1..%u (the number of CPUs)",
					optarg, nr_cpus);
				return 1;
			}
			cfg.nr_queues = v;
			break;
		case 'd':
			if (zublk_parse_uint(optarg, 1, ZUBLK_MAX_QUEUE_DEPTH, &v)) {
				cli_err("add", "depth '%s': must be 1..%u", optarg,
					ZUBLK_MAX_QUEUE_DEPTH);
				return 1;
			}
			cfg.queue_depth = v;
			break;
		case 'f':
			if (cli_check_text("add", "-f", optarg))
				return 1;
			if (asprintf(&file_word, "file=%s", optarg) < 0)
				return 1;
			break;
		case 'm':
			if (zublk_mode_parse(optarg, &cfg.mode)) {
				cli_err("add", "mode '%s': not one of copy, user-copy, zero-copy, "
					"auto-zero-copy", optarg);
				return 1;
			}
			break;
		case 'M':
			if (zublk_parse_size(optarg, &max_io) || max_io < 4096 ||
			    max_io > ZUBLK_MAX_MAX_IO_BYTES || max_io % 4096) {
				cli_err("add", "max-io '%s': must be a multiple of 4k from 4k to 32M",
					optarg);
				return 1;
			}
			cfg.max_io_bytes = (unsigned)max_io;
			break;
		case 'K':
			cfg.keep_scheduler = true;
			break;
		case 'R':
			recovery_set = true;
			if (zublk_recovery_parse(optarg, &cfg.recovery)) {
				cli_err("add", "recovery '%s': not one of off, reissue, fail-io",
					optarg);
				return 1;
			}
			break;
		case 'P':
			cfg.no_part_scan = true;
			break;
		case 'A':
			cfg.pin_queues = true;
			break;
		case 'B':
			cfg.batch = true;
			break;
		case 'N':
			if (zublk_parse_uint(optarg, 1, nr_cpus, &v)) {
				cli_err("add", "threads '%s': must be 1..%u (one per queue at most)",
					optarg, nr_cpus);
				return 1;
			}
			cfg.nr_threads = v;
			break;
		case 'U':
			if (!strcmp(optarg, "auto")) {
				cfg.poll_us = ZUBLK_POLL_AUTO;
			} else if (!strcmp(optarg, "off")) {
				cfg.poll_us = ZUBLK_POLL_OFF;
			} else if (zublk_parse_uint(optarg, 0, ZUBLK_POLL_MAX_US, &cfg.poll_us)) {
				cli_err("add",
					"poll-us '%s': must be auto, off or 0..1000000 microseconds",
					optarg);
				return 1;
			} else if (cfg.poll_us == 0) {
				cfg.poll_us = ZUBLK_POLL_OFF;
			}
			break;
		case 'T':
			if (zublk_parse_uint(optarg, 1, 3600, &timeout_s)) {
				cli_err("add", "timeout '%s': must be 1..3600 seconds", optarg);
				return 1;
			}
			break;
		case 'S': {
			/*
			 * Absolute for the state file, symlinks kept: a memfd's
			 * /proc/PID/fd/N points nowhere realpath() can follow.
			 * The daemon names a file that is not there.
			 */
			char *path = optarg[0] == '/' ? NULL : realpath(optarg, NULL);

			if (cli_check_text("add", "--shmem", optarg)) {
				free(path);
				return 1;
			}
			if (cfg.nr_shmem == ZUBLK_MAX_SHMEM) {
				cli_err("add", "--shmem %s: at most %u files", optarg,
					ZUBLK_MAX_SHMEM);
				free(path);
				return 1;
			}
			cfg.shmem[cfg.nr_shmem++] = path ? path : optarg; /* for the daemon's life */
			break;
		}
		case 'h':
			cmd_help(stdout);
			return 0;
		default:
			cli_bad_opt("add", argv, add_opts, c);
			return 1;
		}
	}
	if (!tname) {
		cli_err("add", "no target: say -t null or -t loop");
		return 1;
	}
	/* A user's device dies with its daemon: the driver keeps no recovery for it. */
	if (geteuid() != 0 && !recovery_set)
		cfg.recovery = ZUBLK_RECOVERY_OFF;
	ops = zublk_target_find(tname);
	if (!ops) {
		cli_err("add", "target '%s': unknown (try 'zublk help')", tname);
		return 1;
	}
	for (int i = optind; i < argc; i++) {
		if (cli_check_text("add", "option", argv[i]))
			return 1;
		if (!strchr(argv[i], '=') || argv[i][0] == '=') {
			cli_err("add", "argument '%s': not an option (options are key=value)",
				argv[i]);
			return 1;
		}
		words[nwords++] = argv[i];
	}
	if (file_word) {
		for (int i = 0; i < nwords; i++)
			if (!strncmp(words[i], "file=", 5)) {
				cli_err("add", "-f and file= both given: say the file once");
				return 1;
			}
		words[nwords++] = file_word;
	}
	if (!state_fits(words, nwords) || !shmem_fits(&cfg))
		return 1;
	if (zublk_opts_parse(&opts, nwords, words)) {
		cli_err("add", "cannot parse the target options");
		return 1;
	}
	absolute_file_opts(&opts);
	zublk_set_log(add_log);
	ret = zublk_dev_config_check(&cfg, nr_cpus);
	zublk_set_log(NULL);
	if (ret)
		return 1;

	ret = cli_spawn_daemon("add", &cfg, ops, &opts, timeout_s);
	zublk_opts_free(&opts);
	free(file_word);
	free(words);
	return ret;
}
