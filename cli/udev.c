// SPDX-License-Identifier: MIT
/*
 * zublk udev-owner NAME: for udev (udev/90-zublk.rules), the owner of the
 * device behind node NAME (ublkcN or ublkbN) when a user other than root
 * added it (UBLK_F_UNPRIVILEGED_DEV), as ZUBLK_OWNER=uid and
 * ZUBLK_GROUP=gid lines for IMPORT{program}; nothing for root's devices.
 */
#include <string.h>

#include "cli.h"

int cmd_udev_owner(int argc, char **argv)
{
	struct ublksrv_ctrl_dev_info info;
	struct zublk_ctrl *c;
	unsigned id;
	int ret;

	if (argc != 2 || (strncmp(argv[1], "ublkc", 5) && strncmp(argv[1], "ublkb", 5)) ||
	    zublk_parse_uint(argv[1] + 5, 0, CLI_MAX_ID, &id)) {
		cli_err("udev-owner", "needs one node name, ublkcN or ublkbN");
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
