// SPDX-License-Identifier: MIT
/*
 * zublk mirror: run-time requests to a mirror device's daemon over its
 * control socket ("target" requests, answered by the target's ->control):
 *   zublk mirror replace -n ID LEG FILE
 *   zublk mirror fail -n ID LEG
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* The daemon does not share our working directory: FILE goes absolute. */
static char *absolute(const char *path)
{
	char cwd[PATH_MAX], *abs;

	if (path[0] == '/')
		return strdup(path);
	abs = realpath(path, NULL);
	if (abs)
		return abs;
	if (!getcwd(cwd, sizeof(cwd)))
		return strdup(path);
	if (asprintf(&abs, "%s/%s", cwd, path) < 0)
		return NULL;
	return abs;
}

int cmd_mirror(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "number", required_argument, NULL, 'n' },
		{ 0 },
	};
	const char *sub = argc > 1 ? argv[1] : NULL;
	char reply[1024], *req[4], *file = NULL;
	unsigned id = 0, want;
	bool seen[256] = { false };
	int c, ret, nreq;

	if (!sub || (strcmp(sub, "replace") && strcmp(sub, "fail"))) {
		cli_err("mirror", "say what: zublk mirror replace -n ID LEG FILE | "
			"zublk mirror fail -n ID LEG");
		return 1;
	}
	argc--;
	argv++;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+n:", lopts, NULL)) != -1) {
		if (c != 'n') {
			cli_bad_opt("mirror", argv, lopts, c);
			return 1;
		}
		if (cli_twice("mirror", argv, c, seen) || cli_parse_id("mirror", optarg, &id))
			return 1;
	}
	want = !strcmp(sub, "replace") ? 2 : 1;
	if (!seen['n'] || (unsigned)(argc - optind) != want) {
		cli_err("mirror", "usage: zublk mirror %s -n ID LEG%s", sub,
			want == 2 ? " FILE" : "");
		return 1;
	}
	for (int i = optind; i < argc; i++)
		if (cli_check_text("mirror", i == optind ? "leg" : "file", argv[i]))
			return 1;
	req[0] = "target";
	req[1] = (char *)sub;
	req[2] = argv[optind];
	nreq = 3;
	if (want == 2) {
		file = absolute(argv[optind + 1]);
		if (!file) {
			cli_err("mirror", "out of memory");
			return 1;
		}
		req[nreq++] = file;
	}
	ret = cli_ctl_request("mirror", id, nreq, req, reply, sizeof(reply));
	free(file);
	if (ret)
		return 1;
	printf("%s\n", reply);
	return 0;
}
