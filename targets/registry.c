// SPDX-License-Identifier: MIT
/* The one static table of targets. */
#include <string.h>

#include "zublk.h"

extern const struct zublk_target_ops zublk_null_ops;
extern const struct zublk_target_ops zublk_loop_ops;
extern const struct zublk_target_ops zublk_stripe_ops;
extern const struct zublk_target_ops zublk_mirror_ops;
extern const struct zublk_target_ops zublk_nbd_ops;
extern const struct zublk_target_ops zublk_zoned_ops;
extern const struct zublk_target_ops zublk_qcow2_ops;

static const struct zublk_target_ops *const targets[] = {
	&zublk_null_ops,
	&zublk_loop_ops,
	&zublk_stripe_ops,
	&zublk_mirror_ops,
	&zublk_nbd_ops,
	&zublk_zoned_ops,
	&zublk_qcow2_ops,
	NULL,
};

const struct zublk_target_ops *const *zublk_targets(void)
{
	return targets;
}

const struct zublk_target_ops *zublk_target_find(const char *name)
{
	for (unsigned i = 0; targets[i]; i++)
		if (!strcmp(targets[i]->name, name))
			return targets[i];
	return NULL;
}
