// SPDX-License-Identifier: MIT
/*
 * The verbs that act on a live device: recover (a new daemon takes over),
 * upgrade (quiesce, let the old daemon go, recover with a new binary),
 * resize, stop.  Every wait is bounded.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

#define LIFE_DEF_TIMEOUT_S 60

/* -n ID [--timeout S] and, for some verbs, one more flag; returns the optind. */
struct life_args {
	unsigned id;
	bool have_id;
	unsigned timeout_s;
	bool safe;
	const char *binary;
};

static int parse_life(const char *verb, int argc, char **argv, struct life_args *a)
{
	static const struct option lopts[] = {
		{ "number", required_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "safe", no_argument, NULL, 'S' },
		{ "binary", required_argument, NULL, 'B' },
		{ 0 },
	};
	bool seen[256] = { false };
	int c;

	memset(a, 0, sizeof(*a));
	a->timeout_s = LIFE_DEF_TIMEOUT_S;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "n:", lopts, NULL)) != -1) {
		if ((c == 'n' || c == 'T' || c == 'B') && cli_twice(verb, argv, c, seen))
			return -1;
		switch (c) {
		case 'n':
			if (cli_parse_id(verb, optarg, &a->id))
				return -1;
			a->have_id = true;
			break;
		case 'T':
			/* resize's answer comes over the daemon's socket, in its own time. */
			if (!strcmp(verb, "resize"))
				goto bad;
			if (zublk_parse_uint(optarg, 1, 3600, &a->timeout_s)) {
				cli_err(verb, "timeout '%s': must be 1..3600 seconds", optarg);
				return -1;
			}
			break;
		case 'S':
			if (strcmp(verb, "stop"))
				goto bad;
			a->safe = true;
			break;
		case 'B':
			if (strcmp(verb, "upgrade"))
				goto bad;
			a->binary = optarg;
			break;
		default:
bad:
			cli_bad_opt(verb, argv, lopts, c);
			return -1;
		}
	}
	if (!a->have_id) {
		cli_err(verb, "say which device: -n ID");
		return -1;
	}
	return optind;
}

static int load_state(const char *verb, unsigned id, struct zublk_state *st)
{
	int ret = zublk_state_load(zublk_state_dir(), id, st);

	if (ret) {
		cli_err(verb, "device %u: no state in %s/%u.json: %s", id, zublk_state_dir(), id,
			ret == -ENOENT ? "not served by zublk, or its state was lost"
			: ret == -E2BIG ? "its options are longer than a state can hold"
					: strerror(-ret));
		return ret;
	}
	return 0;
}

/* The state file's options, one per line, as target options again. */
static int state_opts(struct zublk_state *st, struct zublk_opts *opts)
{
	char *words[256], *save = NULL;
	int n = 0;

	for (char *w = strtok_r(st->options, "\n", &save); w; w = strtok_r(NULL, "\n", &save)) {
		if (n == 256)
			return -E2BIG;
		words[n++] = w;
	}
	return zublk_opts_parse(opts, n, words);
}

int cli_state_shmem(char *lines, char *id_lines, int index[ZUBLK_MAX_SHMEM],
		    const char *path[ZUBLK_MAX_SHMEM], bool read_only[ZUBLK_MAX_SHMEM],
		    struct zublk_shmem_id id[ZUBLK_MAX_SHMEM])
{
	char *save = NULL;
	int n = 0, m = 0;

	for (char *l = strtok_r(lines, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char *colon = strchr(l, ':');
		unsigned idx;

		if (!colon || n == ZUBLK_MAX_SHMEM)
			return -EINVAL;
		*colon = '\0';
		read_only[n] = colon > l && colon[-1] == 'r';
		if (read_only[n])
			colon[-1] = '\0';
		if (zublk_parse_uint(l, 0, 0xffff, &idx))
			return -EINVAL;
		index[n] = (int)idx;
		if (id)
			id[n] = (struct zublk_shmem_id){ 0 };
		path[n++] = colon + 1;
	}
	/* Which file each was: not in a state file from before. */
	save = NULL;
	for (char *l = id && id_lines ? strtok_r(id_lines, "\n", &save) : NULL; l;
	     l = strtok_r(NULL, "\n", &save)) {
		if (m == n || sscanf(l, "%" SCNu64 ".%" SCNu64 ".%" SCNu64, &id[m].dev,
				     &id[m].ino, &id[m].len) != 3)
			return -EINVAL;
		m++;
	}
	return n;
}

int cmd_recover(int argc, char **argv)
{
	struct zublk_dev_config cfg = { 0 };
	const struct zublk_target_ops *ops;
	bool shmem_ro[ZUBLK_MAX_SHMEM];
	struct zublk_state st;
	struct zublk_opts opts;
	struct life_args a;
	int ret;

	ret = parse_life("recover", argc, argv, &a);
	if (ret < 0)
		return 1;
	if (ret < argc) {
		cli_err("recover", "argument '%s': unexpected", argv[ret]);
		return 1;
	}
	if (load_state("recover", a.id, &st))
		return 1;
	ops = zublk_target_find(st.target);
	if (!ops) {
		cli_err("recover", "device %u: target '%s' is not known to this zublk", a.id,
			st.target);
		return 1;
	}
	if (state_opts(&st, &opts)) {
		cli_err("recover", "device %u: cannot parse its options", a.id);
		return 1;
	}
	cfg.dev_id = (int)a.id;
	cfg.recover = true;
	cfg.expect_files = st.files[0] ? st.files : NULL;
	cfg.pin_queues = st.pin_queues;
	cfg.poll_us = st.poll_us;
	cfg.nr_threads = st.threads <= st.queues ? st.threads : 0;
	/* The new daemon finds out again which files it may only read. */
	ret = cli_state_shmem(st.shmem, st.shmem_id, cfg.shmem_index, cfg.shmem, shmem_ro,
			      cfg.shmem_id);
	if (ret < 0) {
		cli_err("recover", "device %u: cannot parse its shared-memory files", a.id);
		return 1;
	}
	cfg.nr_shmem = (unsigned)ret;
	if (zublk_mode_parse(st.mode, &cfg.mode))
		cfg.mode = ZUBLK_MODE_DEFAULT;
	ret = cli_spawn_daemon("recover", &cfg, ops, &opts, a.timeout_s);
	zublk_opts_free(&opts);
	return ret;
}

int cmd_upgrade(int argc, char **argv)
{
	struct ublksrv_ctrl_dev_info info;
	struct zublk_ctrl *c;
	struct zublk_state st;
	struct life_args a;
	char self[PATH_MAX], id[16], tmo[16];
	sigset_t hold, old_mask;
	bool held = false;
	const char *binary;
	pid_t child;
	int ret, status;

	ret = parse_life("upgrade", argc, argv, &a);
	if (ret < 0)
		return 1;
	if (ret < argc) {
		cli_err("upgrade", "argument '%s': unexpected", argv[ret]);
		return 1;
	}
	binary = a.binary;
	if (!binary) {
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

		if (n <= 0) {
			cli_err("upgrade", "cannot find my own binary: %s", strerror(errno));
			return 1;
		}
		self[n] = '\0';
		binary = self;
	}
	if (access(binary, X_OK)) {
		cli_err("upgrade", "binary '%s': %s", binary, strerror(errno));
		return 1;
	}
	if (load_state("upgrade", a.id, &st) || cli_ctrl_open("upgrade", &c))
		return 1;
	ret = zublk_ctrl_get_info(c, a.id, &info);
	if (ret) {
		cli_err("upgrade", "device %u: %s", a.id,
			ret == -ENODEV ? "no such device" : strerror(-ret));
		goto err;
	}
	if (!(info.flags & UBLK_F_QUIESCE)) {
		cli_err("upgrade", "device %u: added without quiesce support (--recovery=off, "
			"or an older kernel): cannot upgrade live", a.id);
		goto err;
	}
	/*
	 * Between the old daemon's exit and the new one's start the driver
	 * fails IO on a fail-io device (t-upgrade): no live upgrade where it
	 * cannot keep its promise of no IO error.
	 */
	if (info.flags & UBLK_F_USER_RECOVERY_FAIL_IO) {
		cli_err("upgrade", "device %u: --recovery fail-io: the driver fails IO while no "
			"daemon serves it, so an upgrade would fail requests (reissue upgrades)",
			a.id);
		goto err;
	}
	if ((info.flags & UBLK_F_BATCH_IO) && !(info.flags & UBLK_F_USER_RECOVERY_REISSUE)) {
		cli_err("upgrade", "device %u: --batch without --recovery reissue: cannot "
			"upgrade live", a.id);
		goto err;
	}
	if (info.state != UBLK_S_DEV_LIVE) {
		cli_err("upgrade", "device %u: state %s, not LIVE", a.id,
			zublk_state_name(info.state));
		goto err;
	}
	/*
	 * The state file must be the serving daemon's: a stale one (the id
	 * since taken by a device another server serves) would have us stop
	 * that server's daemon for a recovery that cannot take its place.
	 */
	if ((st.daemon_pid > 0 && info.ublksrv_pid > 0 && st.daemon_pid != info.ublksrv_pid) ||
	    st.queues != info.nr_hw_queues || st.depth != info.queue_depth) {
		cli_err("upgrade", "device %u: served by daemon %d (%u queue(s) of depth %u), but "
			"%s/%u.json is of daemon %d (%u of %u): a stale state, not upgraded", a.id,
			info.ublksrv_pid, info.nr_hw_queues, info.queue_depth, zublk_state_dir(),
			a.id, st.daemon_pid, st.queues, st.depth);
		goto err;
	}
	/*
	 * From here on the device is (or may be) left without a daemon until
	 * the recover below: a signal (Ctrl-C, a SIGTERM, the terminal gone)
	 * waits for it rather than leave the device quiesced or its IO held.
	 * The recover itself takes them as it always does.
	 */
	sigemptyset(&hold);
	sigaddset(&hold, SIGINT);
	sigaddset(&hold, SIGTERM);
	sigaddset(&hold, SIGHUP);
	sigaddset(&hold, SIGQUIT);
	sigprocmask(SIG_BLOCK, &hold, &old_mask);
	held = true;
	if (info.flags & UBLK_F_BATCH_IO) {
		/*
		 * A --batch device's quiesce failed requests under load in this
		 * kernel (the driver ends the one fetch at once): the old daemon
		 * is killed instead, and the driver hands what it held to the
		 * new one (reissue), as after any kill -9.
		 */
		pid_t pid = cli_daemon_pid(a.id, info.ublksrv_pid);

		if (pid <= 0 || kill(pid, SIGKILL)) {
			cli_err("upgrade", "device %u: its daemon %d is not running", a.id,
				info.ublksrv_pid);
			goto err;
		}
		goto gone;
	}
	/*
	 * Quiesce: the driver holds new requests, aborts the old daemon's
	 * commands (it exits and leaves the device), and waits for a new one.
	 */
	/* The driver's wait ends first: its answer, not our timeout, says what happened. */
	zublk_ctrl_set_timeout(c, a.timeout_s * 1000 + 5000);
	ret = zublk_ctrl_quiesce_dev(c, a.id, a.timeout_s * 1000);
	if (ret == -EBUSY || ret == -ETIMEDOUT) {
		/* The driver may go on holding new requests, the old daemon runs on. */
		cli_err("upgrade", "device %u: QUIESCE_DEV: %s within %u s; if IO waits now, "
			"kill daemon %d and run 'zublk recover -n %u' (its requests go again)",
			a.id, strerror(-ret), a.timeout_s, info.ublksrv_pid, a.id);
		goto err;
	}
	if (ret) {
		cli_err("upgrade", "device %u: QUIESCE_DEV: %s", a.id, strerror(-ret));
		goto err;
	}
gone:
	if (!cli_wait_daemon_gone(info.ublksrv_pid, a.timeout_s)) {
		cli_err("upgrade", "device %u: the old daemon %d did not exit; the device is "
			"quiesced: run 'zublk recover -n %u' once it is gone", a.id,
			info.ublksrv_pid, a.id);
		goto err;
	}
	/*
	 * The driver may leave LIVE a little after the old daemon's pid is
	 * gone; recover waits for that (the library's wait_released()).
	 */
	zublk_ctrl_close(c);

	snprintf(id, sizeof(id), "%u", a.id);
	snprintf(tmo, sizeof(tmo), "%u", a.timeout_s);
	fflush(NULL);
	child = fork();
	if (child < 0) {
		cli_err("upgrade", "fork: %s; the device waits for 'zublk recover -n %u'",
			strerror(errno), a.id);
		sigprocmask(SIG_SETMASK, &old_mask, NULL);
		return 1;
	}
	if (child == 0) {
		sigprocmask(SIG_SETMASK, &old_mask, NULL);
		execl(binary, binary, "recover", "-n", id, "--timeout", tmo, (char *)NULL);
		cli_err("upgrade", "running '%s': %s", binary, strerror(errno));
		_exit(127);
	}
	ret = waitpid(child, &status, 0) < 0 || !WIFEXITED(status) ? 1 : WEXITSTATUS(status);
	/* The device is served again: a signal held meanwhile takes effect now. */
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	return ret;
err:
	zublk_ctrl_close(c);
	if (held)
		sigprocmask(SIG_SETMASK, &old_mask, NULL);
	return 1;
}

int cmd_resize(int argc, char **argv)
{
	struct life_args a;
	char reply[1024];
	char *req[2];
	uint64_t size;
	int ret;

	ret = parse_life("resize", argc, argv, &a);
	if (ret < 0)
		return 1;
	if (ret != argc - 1) {
		cli_err("resize", "say the new size: zublk resize -n ID SIZE");
		return 1;
	}
	if (zublk_parse_size(argv[ret], &size) || !size) {
		cli_err("resize", "size '%s': not a size (e.g. 2G)", argv[ret]);
		return 1;
	}
	req[0] = "resize";
	req[1] = argv[ret];
	if (cli_ctl_request("resize", a.id, 2, req, reply, sizeof(reply)))
		return 1;
	printf("%s\n", reply);
	return 0;
}

int cmd_stop(int argc, char **argv)
{
	struct ublksrv_ctrl_dev_info info;
	struct zublk_ctrl *c;
	struct life_args a;
	pid_t pid;
	int ret;

	ret = parse_life("stop", argc, argv, &a);
	if (ret < 0)
		return 1;
	if (ret < argc) {
		cli_err("stop", "argument '%s': unexpected", argv[ret]);
		return 1;
	}
	if (cli_ctrl_open("stop", &c))
		return 1;
	ret = zublk_ctrl_get_info(c, a.id, &info);
	if (ret) {
		cli_err("stop", "device %u: %s", a.id,
			ret == -ENODEV ? "no such device" : strerror(-ret));
		goto out;
	}
	if (a.safe && !(info.flags & UBLK_F_SAFE_STOP_DEV)) {
		cli_err("stop", "device %u: added without UBLK_F_SAFE_STOP_DEV (kernel too old)",
			a.id);
		ret = -EOPNOTSUPP;
		goto out;
	}
	zublk_ctrl_set_timeout(c, a.timeout_s * 1000);
	/* Before the stop, while a live daemon surely holds /dev/ublkcN. */
	pid = cli_daemon_pid(a.id, info.ublksrv_pid);
	if (!a.safe)
		cli_tell_stopping(a.id, pid);
	/* TRY_STOP_DEV refuses while anyone holds the device open. */
	ret = a.safe ? zublk_ctrl_try_stop_dev(c, a.id) : zublk_ctrl_stop_dev(c, a.id);
	if (ret == -EBUSY) {
		char who[CLI_HOLDER_MAX];

		if (cli_find_holder(a.id, who, sizeof(who)))
			cli_err("stop", "device %u: busy: /dev/ublkb%u %s (nothing was stopped)",
				a.id, a.id, who);
		else
			cli_err("stop", "device %u: busy: open or mounted (nothing was stopped)",
				a.id);
		goto out;
	}
	if (ret) {
		cli_err("stop", "device %u: %s", a.id, strerror(-ret));
		goto out;
	}
	/* The daemon sees its queues aborted and deletes the device. */
	bool gone = cli_wait_daemon_gone(pid, a.timeout_s);
	int was = info.ublksrv_pid;

	ret = zublk_ctrl_get_info(c, a.id, &info);
	/* Gone: its daemon deleted it (and another add may have taken the id since). */
	if (ret == -ENODEV || ret == -ENOENT || (!ret && info.ublksrv_pid > 0 &&
						 info.ublksrv_pid != was))
		ret = 0;
	else
		ret = cli_del_dev("stop", c, a.id, a.timeout_s, false);
	/* Deleted, but a daemon that outlived the wait is still an error. */
	if (!gone && !cli_wait_daemon_gone(pid, 1)) {
		cli_err("stop", "device %u: daemon %d still running", a.id, (int)pid);
		ret = -ESRCH;
	}
out:
	zublk_ctrl_close(c);
	return ret ? 1 : 0;
}
