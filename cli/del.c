// SPDX-License-Identifier: MIT
/* zublk del: delete devices; every wait is bounded. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define DEL_DEF_TIMEOUT_S 30

static int cmp_uint(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

	return x < y ? -1 : x > y;
}

int cli_list_ids(unsigned *ids, int max)
{
	DIR *d = opendir("/sys/class/ublk-char");
	struct dirent *de;
	int n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)) && n < max) {
		unsigned id;

		if (strncmp(de->d_name, "ublkc", 5) || zublk_parse_uint(de->d_name + 5, 0,
									 UINT32_MAX - 1, &id))
			continue;
		ids[n++] = id;
	}
	closedir(d);
	qsort(ids, (size_t)n, sizeof(*ids), cmp_uint);
	return n;
}

/* The first line of file @path, without its newline, in @buf; false if it cannot be opened. */
static bool read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");

	if (!f)
		return false;
	if (!fgets(buf, (int)len, f))
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	return true;
}

/* The name of process @pid (/proc/PID/comm); false if it is gone. */
static bool pid_comm(long pid, char *comm, size_t len)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
	return read_line(path, comm, len);
}

static bool pid_is_daemon(pid_t pid)
{
	static char own[32];	/* ours does not change: read once */
	char comm[32];

	if (pid <= 0 || kill(pid, 0) || zublk_pid_exited(pid))
		return false;
	/* Unreadable (/proc hidden, or it went just now): there while kill says so. */
	if (!pid_comm(pid, comm, sizeof(comm)))
		return kill(pid, 0) == 0;
	/* Our daemon's main thread keeps the command's name: ours, or zublk's. */
	if (!strncmp(comm, "zublk", 5))
		return true;
	if (!own[0] && !pid_comm(getpid(), own, sizeof(own)))
		return false;
	return !strcmp(comm, own);
}

pid_t cli_daemon_pid(unsigned id, pid_t pid)
{
	char path[64];
	struct stat want;
	struct dirent *e;
	bool found = false;
	DIR *d;

	if (pid <= 0)
		return 0;
	/*
	 * By device number, not name: the daemon lives in a mount namespace
	 * of its own, where its fds' names need not read as ours.
	 */
	snprintf(path, sizeof(path), "/dev/ublkc%u", id);
	if (stat(path, &want) || !S_ISCHR(want.st_mode))
		return pid;
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return errno == ENOENT ? 0 : pid;
	while (!found && (e = readdir(d))) {
		char fd_path[64 + 256];
		struct stat st;

		snprintf(fd_path, sizeof(fd_path), "%s/%s", path, e->d_name);
		found = !stat(fd_path, &st) && S_ISCHR(st.st_mode) && st.st_rdev == want.st_rdev;
	}
	closedir(d);
	return found ? pid : 0;
}

/* @dev is /dev/ublkb@id or one of its partitions, /dev/ublkb@idpN. */
static bool is_ublkb(const char *dev, const char *want, size_t n)
{
	return !strncmp(dev, want, n) &&
	       (dev[n] == '\0' || dev[n] == ' ' || (dev[n] == 'p' && dev[n + 1] >= '1' &&
						     dev[n + 1] <= '9'));
}

/* A mount of /dev/ublkb@id or a partition of it, as "is mounted at DIR" in @buf. */
static bool find_mount(const char *want, size_t n, char *buf, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096], dir[1024], src[1024];
	bool found = false;

	while (f && !found && fgets(line, sizeof(line), f)) {
		const char *sep = strstr(line, " - ");

		/* ID PARENT MAJ:MIN ROOT DIR ... - FSTYPE SOURCE OPTIONS */
		found = sep && sscanf(line, "%*s %*s %*s %*s %1023s", dir) == 1 &&
			sscanf(sep + 3, "%*s %1023s", src) == 1 && is_ublkb(src, want, n);
	}
	if (f)
		fclose(f);
	if (found)
		snprintf(buf, len, "is mounted at %s", dir);
	return found;
}

/*
 * A block device stacked on /dev/ublkb@id or a partition of it (an md array,
 * a dm target: the kernel holds the device for it, so no process shows), as
 * "is used by md0" or "is used by dm-0 (NAME)" in @buf: its slaves/ entry in
 * /sys/block outlives the ublk disk's own sysfs directory.
 */
static bool find_stacked(const char *want, size_t n, char *buf, size_t len)
{
	DIR *blk = opendir("/sys/block"), *slaves;
	struct dirent *b, *s;
	char path[600], name[128] = "";
	bool found = false;

	while (blk && !found && (b = readdir(blk))) {
		if (b->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/block/%s/slaves", b->d_name);
		slaves = opendir(path);
		while (slaves && !found && (s = readdir(slaves)))
			found = is_ublkb(s->d_name, want, n);
		if (slaves)
			closedir(slaves);
		if (!found)
			continue;
		snprintf(path, sizeof(path), "/sys/block/%s/dm/name", b->d_name);
		if (read_line(path, name, sizeof(name)) && name[0])
			snprintf(buf, len, "is used by %s (%s)", b->d_name, name);
		else
			snprintf(buf, len, "is used by %s", b->d_name);
	}
	if (blk)
		closedir(blk);
	return found;
}

/* The node may be gone already: a timed-out delete has removed the disk. */
bool cli_find_holder(unsigned id, char *buf, size_t len)
{
	char want[32], path[600], link[64], comm[32];
	size_t n = (size_t)snprintf(want, sizeof(want), "/dev/ublkb%u", id);
	DIR *proc, *fds;
	struct dirent *p, *fd;
	bool found = false;

	/* slaves/ names the disk without its /dev/. */
	if (find_mount(want, n, buf, len) ||
	    find_stacked(want + strlen("/dev/"), n - strlen("/dev/"), buf, len))
		return true;
	proc = opendir("/proc");
	while (proc && !found && (p = readdir(proc))) {
		if (p->d_name[0] < '1' || p->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/fd", p->d_name);
		fds = opendir(path);
		while (fds && !found && (fd = readdir(fds))) {
			ssize_t l;

			snprintf(path, sizeof(path), "/proc/%s/fd/%s", p->d_name, fd->d_name);
			l = readlink(path, link, sizeof(link) - 1);
			if (l < (ssize_t)n)
				continue;
			link[l] = '\0';
			found = is_ublkb(link, want, n);
		}
		if (fds)
			closedir(fds);
		if (!found)
			continue;
		if (!pid_comm(strtol(p->d_name, NULL, 10), comm, sizeof(comm)))
			comm[0] = '\0';
		snprintf(buf, len, "is still open by pid %s (%s)", p->d_name, comm);
	}
	if (proc)
		closedir(proc);
	return found;
}

double cli_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

bool cli_wait_daemon_gone(pid_t pid, unsigned timeout_s)
{
	double deadline = cli_now_s() + timeout_s;

	while (pid_is_daemon(pid) && cli_now_s() < deadline)
		usleep(20000);
	return !pid_is_daemon(pid);
}

void cli_tell_stopping(unsigned id, pid_t pid)
{
	/*
	 * STOP_DEV and DEL_DEV wait for the requests the daemon holds: one
	 * whose target waits for something that may not come (a server coming
	 * back) must hear of it first.  No daemon answering is no error here.
	 */
	if (pid > 0)
		zublk_ctl_send(zublk_state_dir(), id, 1, (char *[]){ "stopping" });
}

int cli_del_dev(const char *verb, struct zublk_ctrl *c, unsigned id, unsigned timeout_s,
		bool async)
{
	struct ublksrv_ctrl_dev_info info;
	double start = cli_now_s();
	unsigned left;
	pid_t pid;
	int ret;

	ret = zublk_ctrl_get_info(c, id, &info);
	if (ret) {
		cli_err(verb, "device %u: %s", id,
			ret == -ENODEV || ret == -ENOENT ? "no such device" : strerror(-ret));
		return ret;
	}
	pid = cli_daemon_pid(id, info.ublksrv_pid);
	cli_tell_stopping(id, pid);
	/*
	 * DEL_DEV stops the disk (the daemon's queues are aborted and it
	 * exits) and, unless async, waits until the daemon has let go of it.
	 */
	zublk_ctrl_set_timeout(c, timeout_s * 1000);
	if (async && zublk_ctrl_unprivileged(c, id))
		cli_err(verb, "device %u: a user's device has no --async (the driver refuses "
			"it): waiting", id);
	ret = zublk_ctrl_del_dev(c, id, !async);
	if (ret == -ETIMEDOUT) {
		char who[CLI_HOLDER_MAX];

		/* Stopped, it waits only to be released: its state files are done with. */
		if (zublk_ctrl_get_info(c, id, &info) || info.state == UBLK_S_DEV_DEAD)
			zublk_state_unlink(zublk_state_dir(), id);
		if (cli_find_holder(id, who, sizeof(who)))
			cli_err(verb, "device %u: deleting timed out: /dev/ublkb%u %s; "
				"the device goes when it is let go", id, id, who);
		else
			cli_err(verb, "device %u: deleting timed out", id);
		return ret;
	}
	if (ret && ret != -ENODEV) {
		cli_err(verb, "device %u: %s", id, strerror(-ret));
		return ret;
	}
	zublk_state_unlink(zublk_state_dir(), id);
	if (async)
		return 0;
	left = timeout_s > cli_now_s() - start ? timeout_s - (unsigned)(cli_now_s() - start) : 1;
	if (!cli_wait_daemon_gone(pid, left)) {
		cli_err(verb, "device %u: daemon %d did not exit in %u s; killed it", id, (int)pid,
			timeout_s);
		kill(pid, SIGKILL);
		return -ETIMEDOUT;
	}
	return 0;
}

int cmd_del(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "number", required_argument, NULL, 'n' },
		{ "all", no_argument, NULL, 'a' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "async", no_argument, NULL, 'A' },
		{ 0 },
	};
	unsigned ids[1024], timeout_s = DEL_DEF_TIMEOUT_S, id = 0;
	bool all = false, have_id = false, async = false, seen[256] = { false };
	struct zublk_ctrl *c;
	int c_, n, failed = 0;

	optind = 1;
	opterr = 0;
	while ((c_ = getopt_long(argc, argv, "n:a", lopts, NULL)) != -1) {
		if ((c_ == 'n' || c_ == 'T') && cli_twice("del", argv, c_, seen))
			return 1;
		switch (c_) {
		case 'n':
			if (cli_parse_id("del", optarg, &id))
				return 1;
			have_id = true;
			break;
		case 'a':
			all = true;
			break;
		case 'A':
			async = true;
			break;
		case 'T':
			if (zublk_parse_uint(optarg, 1, 3600, &timeout_s)) {
				cli_err("del", "timeout '%s': must be 1..3600 seconds", optarg);
				return 1;
			}
			break;
		default:
			cli_bad_opt("del", argv, lopts, c_);
			return 1;
		}
	}
	if (optind < argc) {
		cli_err("del", "argument '%s': unexpected", argv[optind]);
		return 1;
	}
	if (all == have_id) {
		cli_err("del", "say which: -n ID or --all");
		return 1;
	}
	if (cli_ctrl_open("del", &c))
		return 1;
	if (have_id) {
		failed = cli_del_dev("del", c, id, timeout_s, async) != 0;
	} else {
		n = cli_list_ids(ids, 1024);
		for (int i = 0; i < n; i++)
			failed |= cli_del_dev("del", c, ids[i], timeout_s, async) != 0;
	}
	zublk_ctrl_close(c);
	return failed;
}
