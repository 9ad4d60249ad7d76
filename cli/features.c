// SPDX-License-Identifier: MIT
/* zublk features: every UBLK_F_* bit the running driver reports, by name. */
#include <string.h>

#include "cli.h"

int cmd_features(int argc, char **argv)
{
	struct zublk_ctrl *c;
	uint64_t f = 0;
	int ret;

	(void)argv;
	if (argc > 1) {
		cli_err("features", "argument '%s': unexpected", argv[1]);
		return 1;
	}
	if (cli_ctrl_open("features", &c))
		return 1;
	ret = zublk_ctrl_get_features(c, &f);
	zublk_ctrl_close(c);
	if (ret) {
		cli_err("features", "GET_FEATURES: %s", strerror(-ret));
		return 1;
	}
	printf("ublk driver features 0x%llx:\n", (unsigned long long)f);
	for (unsigned bit = 0; bit < 64; bit++) {
		const char *name = zublk_feature_name(bit);

		if (!(f & (1ULL << bit)))
			continue;
		if (name)
			printf("  %-24s %s\n", name, zublk_feature_desc(bit));
		else
			printf("  unknown bit %u\n", bit);
	}
	printf("data modes:");
	for (unsigned m = ZUBLK_MODE_COPY; m < ZUBLK_MODE_NR; m++) {
		uint64_t need = zublk_mode_flags((enum zublk_mode)m);

		if ((f & need) == need)
			printf(" %s", zublk_mode_name((enum zublk_mode)m));
	}
	printf("\ndefault mode: %s\n",
	       zublk_mode_name(zublk_mode_best(f, ZUBLK_MODES_ALL)));
	return 0;
}
