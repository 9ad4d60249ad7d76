// SPDX-License-Identifier: MIT
/* zublk: the command a person types. */
#include <errno.h>
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
		"  recover -n ID       a new daemon takes over a device whose daemon died\n"
		"  upgrade -n ID [--binary PATH]\n"
		"                      quiesce, replace the daemon (by PATH's), no IO error\n"
		"  resize -n ID SIZE   grow (or shrink) a live device\n"
		"  stop [--safe] -n ID stop and delete; --safe refuses while it is open\n"
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
	if (!strcmp(verb, "help") || !strcmp(verb, "--help") || !strcmp(verb, "-h")) {
		cmd_help(stdout);
		return 0;
	}
	if (!strcmp(verb, "--version") || !strcmp(verb, "version")) {
		printf("zublk %s\n", ZUBLK_VERSION);
		return 0;
	}
	fprintf(stderr, "zublk: unknown command '%s' (try 'zublk help')\n", verb);
	return 2;
}
