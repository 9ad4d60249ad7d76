// SPDX-License-Identifier: MIT
/* zublk: the command a person types. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

void cli_err(const char *verb, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "zublk: %s: ", verb);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* "--name" of the long option whose value is @c, or "-c". */
static const char *opt_name(const struct option *lopts, int c, char *buf, size_t len)
{
	for (; lopts && lopts->name; lopts++)
		if (lopts->val == c && !lopts->flag) {
			snprintf(buf, len, "--%s", lopts->name);
			return buf;
		}
	snprintf(buf, len, "-%c", c);
	return buf;
}

void cli_bad_opt(const char *verb, char **argv, const struct option *lopts, int c)
{
	const char *w = argv[optind - 1];
	char buf[64];

	if (c != '?') {
		cli_err(verb, "option '%s': not an option of %s",
			opt_name(lopts, c, buf, sizeof(buf)), verb);
		return;
	}
	/*
	 * An unknown long option, or a long one missing its value: the word
	 * itself (up to '=').  Else a short one (optopt), which may sit in a
	 * cluster ("-xj") that the previous word does not name.
	 */
	if (!strncmp(w, "--", 2)) {
		size_t n = strcspn(w + 2, "=");
		bool same = !optopt;

		for (const struct option *o = lopts; o && o->name && !same; o++)
			same = o->val == optopt && n <= strlen(o->name) && !strncmp(o->name, w + 2, n);
		if (same) {
			cli_err(verb, "option '%.*s': unknown or missing its value", (int)n + 2, w);
			return;
		}
	}
	if (optopt && optopt > ' ' && optopt < 127)
		cli_err(verb, "option '-%c': unknown or missing its value", optopt);
	else
		cli_err(verb, "option '%s': unknown or missing its value", w);
}

bool cli_twice(const char *verb, char **argv, int c, bool *seen)
{
	/* The word of the option as given: before its value when that is a word of its own. */
	const char *w = argv[optind - 1];

	if (c < 0 || c > 255)
		return false;
	if (!seen[c]) {
		seen[c] = true;
		return false;
	}
	if (optarg == w && optind >= 2)
		w = argv[optind - 2];
	if (!strncmp(w, "--", 2))
		cli_err(verb, "option '%.*s': given more than once", (int)strcspn(w, "="), w);
	else
		cli_err(verb, "option '-%c': given more than once", c);
	return true;
}

int cli_check_text(const char *verb, const char *what, const char *s)
{
	for (const char *p = s; *p; p++) {
		unsigned char ch = (unsigned char)*p;

		if (ch >= 0x20 && ch != 0x7f)
			continue;
		cli_err(verb, "%s '%.*s...': a control character (0x%02x) in it", what,
			(int)(p - s), s, ch);
		return -1;
	}
	return 0;
}

int cli_ctrl_open(const char *verb, struct zublk_ctrl **c)
{
	int ret = zublk_ctrl_open(c);

	if (ret)
		cli_err(verb, "/dev/ublk-control: %s%s", strerror(-ret),
			ret == -ENOENT ? " (is the ublk_drv module loaded?)" : "");
	return ret;
}

int cli_ctl_request(const char *verb, unsigned id, int argc, char **argv, char *reply,
		    size_t len)
{
	char path[64], dev[32];
	int ret = zublk_ctl_request(zublk_state_dir(), id, argc, argv, reply, len);
	size_t n;

	if (!ret)
		return 0;
	snprintf(path, sizeof(path), "/sys/class/ublk-char/ublkc%u", id);
	n = (size_t)snprintf(dev, sizeof(dev), "device %u: ", id);
	/* No daemon listens: say whether there is a device at all. */
	if ((ret == -ENOENT || ret == -ECONNREFUSED) && access(path, F_OK))
		cli_err(verb, "%sno such device", dev);
	else if (!strncmp(reply, dev, n)) /* the daemon's own error names the device */
		cli_err(verb, "%s", reply);
	else
		cli_err(verb, "%s%s", dev, reply[0] ? reply : strerror(-ret));
	return ret;
}

int cli_parse_id(const char *verb, const char *s, unsigned *id)
{
	if (zublk_parse_uint(s, 0, CLI_MAX_ID, id)) {
		cli_err(verb, "device id '%s': not a number from 0 to %u", s ? s : "", CLI_MAX_ID);
		return -EINVAL;
	}
	return 0;
}

void cmd_help(FILE *f)
{
	const struct zublk_target_ops *const *t = zublk_targets();

	fprintf(f,
		"usage: zublk COMMAND [OPTIONS]\n"
		"\n"
		"  add -t TARGET [-n ID] [-q QUEUES] [-d DEPTH] [--max-io SIZE]\n"
		"      [--mode copy|user-copy|zero-copy|auto-zero-copy] [--keep-scheduler]\n"
		"      [--recovery off|reissue|fail-io] [--no-part-scan] [--pin-queues]\n"
		"      [--poll-us auto|off|USECS] [--threads N] [--batch] [--shmem FILE ...]\n"
		"      [--timeout SECS] [-f FILE] [key=value ...]\n"
		"                      serve a new device; prints /dev/ublkbN once it is live\n"
		"  del -n ID | --all [--async] [--timeout SECS]\n"
		"                      delete devices and stop their daemons\n"
		"  recover -n ID [--timeout SECS]\n"
		"                      a new daemon takes over a device whose daemon died\n"
		"  upgrade -n ID [--binary PATH] [--timeout SECS]\n"
		"                      quiesce, replace the daemon (by PATH's), no IO error\n"
		"  resize -n ID SIZE   grow (or shrink) a live device\n"
		"  stop [--safe] -n ID [--timeout SECS]\n"
		"                      stop and delete; --safe refuses while it is open\n"
		"  mirror replace -n ID LEG FILE | mirror fail -n ID LEG\n"
		"                      put FILE in place of a mirror leg (rebuilt while IO\n"
		"                      goes on), or fail a leg\n"
		"  list [-n ID] [--json]\n"
		"                      the devices, their targets, modes and counters\n"
		"  features            what the running ublk driver supports\n"
		"  udev-owner NAME     for udev: the owner of a device a user added\n"
		"  help                this text\n"
		"  --version           the version\n"
		"\n"
		"targets:\n");
	for (; *t; t++)
		fprintf(f, "  %-6s %s\n         %s\n", (*t)->name, (*t)->summary, (*t)->usage);
	fprintf(f, "\nSee zublk(8) and zublk-TARGET(8).\n");
}

int main(int argc, char **argv)
{
	const char *verb = argc > 1 ? argv[1] : NULL;

	if (!verb) {
		cmd_help(stderr);
		return 2;
	}
	if (!strcmp(verb, "add"))
		return cmd_add(argc - 1, argv + 1);
	if (!strcmp(verb, "del"))
		return cmd_del(argc - 1, argv + 1);
	if (!strcmp(verb, "list"))
		return cmd_list(argc - 1, argv + 1);
	if (!strcmp(verb, "features"))
		return cmd_features(argc - 1, argv + 1);
	if (!strcmp(verb, "recover"))
		return cmd_recover(argc - 1, argv + 1);
	if (!strcmp(verb, "upgrade"))
		return cmd_upgrade(argc - 1, argv + 1);
	if (!strcmp(verb, "resize"))
		return cmd_resize(argc - 1, argv + 1);
	if (!strcmp(verb, "stop"))
		return cmd_stop(argc - 1, argv + 1);
	if (!strcmp(verb, "mirror"))
		return cmd_mirror(argc - 1, argv + 1);
	if (!strcmp(verb, "udev-owner"))
		return cmd_udev_owner(argc - 1, argv + 1);
	bool help = !strcmp(verb, "help") || !strcmp(verb, "--help") || !strcmp(verb, "-h");
	bool version = !strcmp(verb, "--version") || !strcmp(verb, "version");

	if ((help || version) && argc > 2) {
		fprintf(stderr, "zublk: %s: argument '%s': unexpected\n", verb, argv[2]);
		return 2;
	}
	if (help) {
		cmd_help(stdout);
		return 0;
	}
	if (version) {
		printf("zublk %s\n", ZUBLK_VERSION);
		return 0;
	}
	fprintf(stderr, "zublk: unknown command '%s' (try 'zublk help')\n", verb);
	return 2;
}
