// SPDX-License-Identifier: MIT
/* zublk list: what the kernel knows of each device, and what its daemon serves. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

struct dev_view {
	unsigned id;
	struct ublksrv_ctrl_dev_info info;
	struct ublk_params params;
	bool have_params;
	struct zublk_state st;
	bool have_state;
	struct zublk_counters cnt;
	bool have_cnt;
};

/*
 * Root listing a user's device: its state is in that user's directory, the
 * usual $XDG_RUNTIME_DIR (/run/user/UID) or the fallback in /tmp, and is
 * taken only from a directory the user owns.
 */
static void load_users(struct dev_view *v)
{
	char dirs[2][64];

	snprintf(dirs[0], sizeof(dirs[0]), "/run/user/%u/zublk", v->info.owner_uid);
	snprintf(dirs[1], sizeof(dirs[1]), ZUBLK_USER_STATE_DIR_TMP, v->info.owner_uid);
	for (unsigned i = 0; i < 2 && !v->have_state; i++) {
		struct stat st;

		if (lstat(dirs[i], &st) || !S_ISDIR(st.st_mode) || st.st_uid != v->info.owner_uid)
			continue;
		v->have_state = zublk_state_load(dirs[i], v->id, &v->st) == 0 && v->st.id == v->id;
		v->have_cnt = v->have_state && zublk_stats_read(dirs[i], v->id, &v->cnt) == 0;
	}
}

static int load(struct zublk_ctrl *c, unsigned id, struct dev_view *v)
{
	int ret;

	memset(v, 0, sizeof(*v));
	v->id = id;
	ret = zublk_ctrl_get_info(c, id, &v->info);
	if (ret)
		return ret;
	v->have_params = zublk_ctrl_get_params(c, id, &v->params) == 0;
	v->have_state = zublk_state_load(zublk_state_dir(), id, &v->st) == 0 && v->st.id == id;
	v->have_cnt = zublk_stats_read(zublk_state_dir(), id, &v->cnt) == 0;
	if (!v->have_state && geteuid() == 0 && (v->info.flags & UBLK_F_UNPRIVILEGED_DEV))
		load_users(v);
	return 0;
}

static uint64_t size_of(const struct dev_view *v)
{
	if (v->have_params)
		return v->params.basic.dev_sectors << 9;
	return v->have_state ? v->st.size : 0;
}

static const char *mode_of(const struct dev_view *v)
{
	uint64_t f = v->info.flags;

	if (v->have_state)
		return v->st.mode;
	if (f & UBLK_F_AUTO_BUF_REG)
		return "auto-zero-copy";
	if (f & UBLK_F_SUPPORT_ZERO_COPY)
		return "zero-copy";
	if (f & UBLK_F_USER_COPY)
		return "user-copy";
	return "copy";
}

static void human(uint64_t b, char *buf, size_t len)
{
	static const char units[] = "BKMGTP";
	double v = (double)b;
	unsigned u = 0;

	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, u ? "%.1f%c" : "%.0f%c", v, units[u]);
}

/* The options, one per line in the state, as a JSON array of "key=value". */
static void print_options_json(const struct dev_view *v)
{
	char buf[sizeof(v->st.options)], *save = NULL;
	bool first = true;

	snprintf(buf, sizeof(buf), "%s", v->have_state ? v->st.options : "");
	putchar('[');
	for (char *o = strtok_r(buf, "\n", &save); o; o = strtok_r(NULL, "\n", &save)) {
		printf("%s", first ? "" : ", ");
		zublk_json_str(stdout, o);
		first = false;
	}
	putchar(']');
}

static void print_json(const struct dev_view *v, bool first)
{
	bool f1 = true;

	printf("%s\n  {\"id\": %u, \"state\": \"%s\", \"target\": ", first ? "" : ",", v->id,
	       zublk_state_name(v->info.state));
	zublk_json_str(stdout, v->have_state ? v->st.target : "unknown");
	printf(", \"mode\": \"%s\", \"queues\": %u, \"depth\": %u, \"max_io\": %u, "
	       "\"size\": %llu, \"block_device\": \"/dev/ublkb%u\", "
	       "\"char_device\": \"/dev/ublkc%u\", \"daemon_pid\": %d, \"owner_uid\": %u, "
	       "\"owner_gid\": %u, \"options\": ",
	       mode_of(v), v->info.nr_hw_queues, v->info.queue_depth, v->info.max_io_buf_bytes,
	       (unsigned long long)size_of(v), v->id, v->id, v->info.ublksrv_pid,
	       v->info.owner_uid, v->info.owner_gid);
	print_options_json(v);
	if (v->have_params && v->params.devt.disk_major)
		printf(", \"devt\": \"%u:%u\", \"char_devt\": \"%u:%u\"",
		       v->params.devt.disk_major, v->params.devt.disk_minor,
		       v->params.devt.char_major, v->params.devt.char_minor);
	printf(", \"flags\": [");
	for (unsigned bit = 0; bit < 64; bit++) {
		const char *name = zublk_feature_name(bit);

		if (!(v->info.flags & (1ULL << bit)))
			continue;
		printf("%s\"%s\"", f1 ? "" : ", ", name ? name : "UNKNOWN");
		f1 = false;
	}
	printf("]");
	if (v->have_state) {
		unsigned p = v->st.poll_us;

		printf(", \"threads\": %u, \"pin_queues\": %s, \"poll\": \"%s\", \"poll_us\": %u",
		       v->st.threads, v->st.pin_queues ? "true" : "false",
		       p == ZUBLK_POLL_AUTO ? "auto" : p == ZUBLK_POLL_OFF ? "off" : "fixed",
		       p == ZUBLK_POLL_AUTO ? ZUBLK_POLL_AUTO_US : p == ZUBLK_POLL_OFF ? 0 : p);
	}
	if (v->have_state && v->st.shmem[0]) {
		char buf[sizeof(v->st.shmem)];
		const char *path[ZUBLK_MAX_SHMEM];
		int index[ZUBLK_MAX_SHMEM], n;
		bool ro[ZUBLK_MAX_SHMEM];

		snprintf(buf, sizeof(buf), "%s", v->st.shmem);
		n = cli_state_shmem(buf, NULL, index, path, ro, NULL);
		printf(", \"shmem\": [");
		for (int i = 0; i < n; i++) {
			printf("%s{\"index\": %d, \"file\": ", i ? ", " : "", index[i]);
			zublk_json_str(stdout, path[i]);
			printf(", \"read_only\": %s}", ro[i] ? "true" : "false");
		}
		putchar(']');
	}
	if (v->have_state && v->st.extra[0])
		printf(", %s", v->st.extra);
	if (v->have_cnt)
		printf(", \"counters\": {\"ios\": %llu, \"submits\": %llu, \"enters\": %llu, "
		       "\"errors\": %llu, \"sleeps\": %llu, \"polls\": %llu, \"idle_ns\": %llu, "
		       "\"shmem_ios\": %llu, \"copies\": %llu, \"hand_regs\": %llu}",
		       (unsigned long long)v->cnt.ios, (unsigned long long)v->cnt.submits,
		       (unsigned long long)v->cnt.enters, (unsigned long long)v->cnt.errors,
		       (unsigned long long)v->cnt.sleeps, (unsigned long long)v->cnt.polls,
		       (unsigned long long)v->cnt.idle_ns, (unsigned long long)v->cnt.shmem_ios,
		       (unsigned long long)v->cnt.copies, (unsigned long long)v->cnt.hand_regs);
	printf("}");
}

static void print_row(const struct dev_view *v)
{
	char sz[32], opts[sizeof(v->st.options)];

	snprintf(opts, sizeof(opts), "%s", v->have_state ? v->st.options : "");
	for (char *p = opts; *p; p++)
		if (*p == '\n')
			*p = ' ';

	human(size_of(v), sz, sizeof(sz));
	printf("%-4u %-9s %-7s %-15s %6u %6u %8s  /dev/ublkb%-4u %7d  %s\n", v->id,
	       zublk_state_name(v->info.state), v->have_state ? v->st.target : "-", mode_of(v),
	       v->info.nr_hw_queues, v->info.queue_depth, sz, v->id, v->info.ublksrv_pid,
	       opts);
}

/* What comes before the first device: "[" or the table's header. */
static void begin_output(bool json)
{
	if (json)
		printf("[");
	else
		printf("%-4s %-9s %-7s %-15s %6s %6s %8s  %-15s %7s  %s\n", "ID", "STATE",
		       "TARGET", "MODE", "QUEUES", "DEPTH", "SIZE", "DEVICE", "PID", "OPTIONS");
}

int cmd_list(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "number", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ 0 },
	};
	unsigned ids[1024], id = 0;
	bool json = false, have_id = false, first = true, seen[256] = { false };
	struct zublk_ctrl *c;
	int opt, n;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "n:j", lopts, NULL)) != -1) {
		if (opt == 'n' && cli_twice("list", argv, opt, seen))
			return 1;
		switch (opt) {
		case 'n':
			if (cli_parse_id("list", optarg, &id))
				return 1;
			have_id = true;
			break;
		case 'j':
			json = true;
			break;
		default:
			cli_bad_opt("list", argv, lopts, opt);
			return 1;
		}
	}
	if (optind < argc) {
		cli_err("list", "argument '%s': unexpected", argv[optind]);
		return 1;
	}
	if (cli_ctrl_open("list", &c))
		return 1;
	if (have_id) {
		ids[0] = id;
		n = 1;
	} else {
		n = cli_list_ids(ids, 1024);
	}
	for (int i = 0; i < n; i++) {
		struct dev_view v;
		int err = load(c, ids[i], &v);

		if (err && have_id) {
			/* Nothing on stdout, the one line on stderr. */
			cli_err("list", "device %u: %s", ids[i],
				err == -ENODEV ? "no such device" : strerror(-err));
			zublk_ctrl_close(c);
			return 1;
		}
		if (err)
			continue; /* it vanished between readdir and the query */
		if (first)
			begin_output(json);
		if (json)
			print_json(&v, first);
		else
			print_row(&v);
		first = false;
	}
	if (first) /* no device: an empty list */
		begin_output(json);
	if (json)
		printf("%s]\n", first ? "" : "\n");
	zublk_ctrl_close(c);
	return 0;
}
