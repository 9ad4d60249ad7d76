// SPDX-License-Identifier: MIT
/*
 * A target's backing changing while the device runs: the fd behind a
 * fixed-file index, and the options a recovery would start it with.  Both
 * under the state lock, so a state file is never written from half of it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int zublk_dev_set_file(struct zublk_dev *dev, int idx, int fd)
{
	if (idx < 1 || (unsigned)idx >= dev->nr_files || fd < 0)
		return -EINVAL;
	pthread_mutex_lock(&dev->state_lock);
	dev->files[idx] = fd;
	zublk_files_identity(dev, dev->files_id, sizeof(dev->files_id));
	pthread_mutex_unlock(&dev->state_lock);
	return 0;
}

static void opt_remove(struct zublk_opts *o, unsigned i)
{
	free(o->v[i].key);
	free(o->v[i].val);
	memmove(&o->v[i], &o->v[i + 1], (o->nr - i - 1) * sizeof(o->v[0]));
	o->nr--;
}

static int opt_append(struct zublk_opts *o, const char *key, const char *val)
{
	struct zublk_opt *v = realloc(o->v, (o->nr + 1) * sizeof(*v));
	char *k, *vv;

	if (!v)
		return -ENOMEM;
	o->v = v;
	k = strdup(key);
	vv = strdup(val);
	if (!k || !vv) {
		free(k);
		free(vv);
		return -ENOMEM;
	}
	o->v[o->nr++] = (struct zublk_opt){ .key = k, .val = vv, .used = true };
	return 0;
}

int zublk_dev_set_opt(struct zublk_dev *dev, const char *key, unsigned nth, const char *val)
{
	struct zublk_opts *o = dev->opts;
	unsigned seen = 0;
	int ret = 0;

	if (!o || !key || !*key || strchr(key, '='))
		return -EINVAL;
	pthread_mutex_lock(&dev->state_lock);
	for (unsigned i = 0; i < o->nr; i++) {
		char *copy;

		if (strcmp(o->v[i].key, key) || seen++ != nth)
			continue;
		if (!val) {
			opt_remove(o, i);
			goto out;
		}
		copy = strdup(val);
		if (!copy) {
			ret = -ENOMEM;
			goto out;
		}
		free(o->v[i].val);
		o->v[i].val = copy;
		goto out;
	}
	if (val && seen == nth)
		ret = opt_append(o, key, val);
	else if (val)
		ret = -ERANGE;
out:
	pthread_mutex_unlock(&dev->state_lock);
	return ret;
}
