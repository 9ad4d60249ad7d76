// SPDX-License-Identifier: MIT
/* key=value target options and number parsing: pure, unit-tested. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int zublk_parse_size(const char *s, uint64_t *out)
{
	unsigned shift = 0;
	unsigned long long v;
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	/* Hex with 0x; otherwise decimal, never octal: "010" is ten. */
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		if (!isxdigit((unsigned char)s[2]))
			return -EINVAL;
		v = strtoull(s + 2, &end, 16);
	} else {
		v = strtoull(s, &end, 10);
	}
	if (errno)
		return -EINVAL;
	switch (*end) {
	case '\0':
		break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default:
		return -EINVAL;
	}
	/* Accept "64KiB" and "64KB" as well as "64K". */
	if (shift && (*end == 'i' || *end == 'I'))
		end++;
	if (shift && (*end == 'b' || *end == 'B'))
		end++;
	if (*end)
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

int zublk_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
	unsigned long v;
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*out = (unsigned)v;
	return 0;
}

int zublk_opts_parse(struct zublk_opts *o, int nr_words, char *const *words)
{
	o->nr = 0;
	o->v = NULL;
	o->twice[0] = 0;
	if (nr_words <= 0)
		return 0;
	o->v = calloc((size_t)nr_words, sizeof(*o->v));
	if (!o->v)
		return -ENOMEM;
	for (int i = 0; i < nr_words; i++) {
		const char *eq = strchr(words[i], '=');
		struct zublk_opt *opt = &o->v[o->nr];

		if (!eq || eq == words[i]) {
			zublk_opts_free(o);
			return -EINVAL;
		}
		opt->key = strndup(words[i], (size_t)(eq - words[i]));
		opt->val = strdup(eq + 1);
		o->nr++;
		if (!opt->key || !opt->val) {
			zublk_opts_free(o);
			return -ENOMEM;
		}
	}
	return 0;
}

void zublk_opts_free(struct zublk_opts *o)
{
	for (unsigned i = 0; i < o->nr; i++) {
		free(o->v[i].key);
		free(o->v[i].val);
	}
	free(o->v);
	o->v = NULL;
	o->nr = 0;
}

const char *zublk_opts_get(struct zublk_opts *o, const char *key)
{
	const char *val = NULL;

	for (unsigned i = 0; i < o->nr; i++) {
		if (strcmp(o->v[i].key, key))
			continue;
		o->v[i].used = true;
		if (val && !o->twice[0])
			snprintf(o->twice, sizeof(o->twice), "%s", key);
		val = o->v[i].val;
	}
	return val;
}

const char *zublk_opts_get_nth(struct zublk_opts *o, const char *key, unsigned idx)
{
	for (unsigned i = 0; i < o->nr; i++) {
		if (strcmp(o->v[i].key, key))
			continue;
		o->v[i].used = true;
		if (idx-- == 0)
			return o->v[i].val;
	}
	return NULL;
}

unsigned zublk_opts_count(const struct zublk_opts *o, const char *key)
{
	unsigned n = 0;

	for (unsigned i = 0; i < o->nr; i++)
		n += !strcmp(o->v[i].key, key);
	return n;
}

int zublk_opts_get_size(struct zublk_opts *o, const char *key, uint64_t *out)
{
	const char *v = zublk_opts_get(o, key);

	if (!v)
		return 0;
	return zublk_parse_size(v, out);
}

int zublk_opts_get_tristate(struct zublk_opts *o, const char *key, int *out)
{
	bool b = false;
	int ret;

	*out = -1;
	if (!zublk_opts_get(o, key))
		return 0;
	ret = zublk_opts_get_bool(o, key, &b);
	if (!ret)
		*out = b;
	return ret;
}

int zublk_opts_get_bool(struct zublk_opts *o, const char *key, bool *out)
{
	const char *v = zublk_opts_get(o, key);
	static const char *const yes[] = { "1", "yes", "on", "true" };
	static const char *const no[] = { "0", "no", "off", "false" };

	if (!v)
		return 0;
	for (unsigned i = 0; i < 4; i++) {
		if (!strcasecmp(v, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(v, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

int zublk_opts_check_unused(const struct zublk_opts *o, const char **bad)
{
	for (unsigned i = 0; i < o->nr; i++) {
		if (!o->v[i].used) {
			*bad = o->v[i].key;
			return -EINVAL;
		}
	}
	return 0;
}
