// SPDX-License-Identifier: MIT
/*
 * zublk udev-owner NAME: for udev (udev/90-zublk.rules), the owner of the
 * device behind node NAME (ublkcN, ublkbN or a partition's ublkbNpM) when
 * a user other than root added it (UBLK_F_UNPRIVILEGED_DEV), as ZUBLK_OWNER=uid and
 * ZUBLK_GROUP=gid lines for IMPORT{program}; nothing for root's devices.
 */
#include <string.h>

#include "cli.h"

/* N of "ublkcN", "ublkbN" or a partition's "ublkbNpM" (its device's); false if none. */
static bool node_id(const char *name, unsigned *id)
{
	const char *part;
	char num[16];
	size_t n;

	if (strncmp(name, "ublkc", 5) && strncmp(name, "ublkb", 5))
		return false;
	n = strspn(name + 5, "0123456789");
	if (!n || n >= sizeof(num))
		return false;
	part = name + 5 + n;
	if (*part && (name[4] != 'b' || part[0] != 'p' || !part[1] ||
		      strspn(part + 1, "0123456789") != strlen(part + 1)))
		return false;
	memcpy(num, name + 5, n);
	num[n] = '\0';
	return !zublk_parse_uint(num, 0, CLI_MAX_ID, id);
}

int cmd_udev_owner(int argc, char **argv)
{
	struct ublksrv_ctrl_dev_info info;
	struct zublk_ctrl *c;
	unsigned id;
	int ret;

	if (argc != 2 || !node_id(argv[1], &id)) {
		cli_err("udev-owner", "needs one node name, ublkcN, ublkbN or ublkbNpM");
		return 2;
	}
	if (cli_ctrl_open("udev-owner", &c))
		return 1;
	ret = zublk_ctrl_get_info(c, id, &info);
	zublk_ctrl_close(c);
	if (ret) {
		cli_err("udev-owner", "device %u: %s", id, strerror(-ret));
		return 1;
	}
	if (info.flags & UBLK_F_UNPRIVILEGED_DEV)
		printf("ZUBLK_OWNER=%u\nZUBLK_GROUP=%u\n", info.owner_uid, info.owner_gid);
	return 0;
}
