/* SPDX-License-Identifier: MIT */
/*
 * A tiny header-only test framework for the host unit tests.
 *
 *   TEST(a_read_past_the_end_is_rejected)
 *   {
 *           CHECK_EQ(zublk_io_validate(...), -EINVAL);
 *   }
 *
 * Every TEST registers itself; the main() below runs them in source order
 * and prints one line per test, "ok - NAME" or "not ok - NAME" (NAME with
 * spaces for underscores), diagnostics as "# ..." lines, and exits 1 if any
 * failed.  Arguments, if given, pick tests by name.
 *
 * Each test runs in a child process: a crash or a sanitizer report fails
 * that test only, the rest still run, and LeakSanitizer's exit-time check
 * runs per test, so a leak is pinned on the test that made it.
 * TEST_NOFORK=1 runs everything in one process (for a debugger).
 *
 * CHECK* record a failure and go on; REQUIRE stops the test, for when the
 * rest would only crash.
 */
#ifndef ZUBLK_TEST_H
#define ZUBLK_TEST_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST_MAX 512
#define TEST_UNUSED __attribute__((unused))
/* A child exits with this when a CHECK failed, to tell it from a sanitizer's exit. */
#define TEST_EXIT_CHECK 3

struct test_case {
	const char *name;
	void (*fn)(void);
	int line;
};

static struct test_case test_cases[TEST_MAX];
static int test_nr;
static int test_failed;		/* CHECKs failed in the current test */

static void test_register(const char *name, void (*fn)(void), int line)
{
	if (test_nr == TEST_MAX) {
		fprintf(stderr, "test.h: more than %d tests, raise TEST_MAX\n", TEST_MAX);
		exit(2);
	}
	test_cases[test_nr++] = (struct test_case){ name, fn, line };
}

#define TEST(name)                                                             \
	static void test_fn_##name(void);                                      \
	__attribute__((constructor)) static void test_reg_##name(void)         \
	{                                                                      \
		test_register(#name, test_fn_##name, __LINE__);                \
	}                                                                      \
	static void test_fn_##name(void)

/* A file of @size bytes in @path (a mkstemp template); -1 when none. */
static TEST_UNUSED int shm_file(char *path, off_t size)
{
	int fd = mkstemp(path);

	if (fd < 0)
		return -1;
	if (ftruncate(fd, size)) {
		close(fd);
		unlink(path);
		return -1;
	}
	close(fd);
	return 0;
}

static TEST_UNUSED void test_fail_where(const char *file, int line)
{
	test_failed++;
	printf("#   %s:%d: ", file, line);
}

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			test_fail_where(__FILE__, __LINE__);                   \
			printf("CHECK(%s) failed\n", #cond);                   \
		}                                                              \
	} while (0)

/* Stops the test: the code after it would crash on what it checks. */
#define REQUIRE(cond)                                                          \
	do {                                                                   \
		if (!(cond)) {                                                 \
			test_fail_where(__FILE__, __LINE__);                   \
			printf("REQUIRE(%s) failed\n", #cond);                 \
			return;                                                \
		}                                                              \
	} while (0)

static void test_print_int(intmax_t v, bool is_signed)
{
	if (is_signed && v < 0)
		printf("%jd", v);
	else
		printf("%ju (0x%jx)", (uintmax_t)v, (uintmax_t)v);
}

/*
 * Compares the values, not C's conversions of them: -1 never equals
 * UINT64_MAX here, and no -Wsign-compare noise for a literal on one side.
 */
static TEST_UNUSED void test_check_eq(const char *file, int line, const char *ea, const char *eb,
				      intmax_t a, bool sa, intmax_t b, bool sb)
{
	bool eq;

	if (sa == sb)
		eq = a == b;
	else if (sa)
		eq = a >= 0 && (uintmax_t)a == (uintmax_t)b;
	else
		eq = b >= 0 && (uintmax_t)a == (uintmax_t)b;
	if (eq)
		return;
	test_fail_where(file, line);
	printf("CHECK_EQ(%s, %s) failed: ", ea, eb);
	test_print_int(a, sa);
	printf(" != ");
	test_print_int(b, sb);
	printf("\n");
}

/* Whether integer expression @x has a signed type (x is not evaluated). */
#define TEST_SIGNED(x)                                                         \
	_Generic((x),                                                          \
		bool: false,                                                   \
		unsigned char: false,                                          \
		unsigned short: false,                                         \
		unsigned int: false,                                           \
		unsigned long: false,                                          \
		unsigned long long: false,                                     \
		default: true)

/* Integers of any type; each side is evaluated once. */
#define CHECK_EQ(a, b)                                                         \
	test_check_eq(__FILE__, __LINE__, #a, #b, (intmax_t)(a), TEST_SIGNED(a), \
		      (intmax_t)(b), TEST_SIGNED(b))

static TEST_UNUSED void test_check_str(const char *file, int line, const char *ea, const char *eb,
			   const char *a, const char *b)
{
	if (a == b || (a && b && !strcmp(a, b)))
		return;
	test_fail_where(file, line);
	printf("CHECK_STREQ(%s, %s) failed: ", ea, eb);
	printf(a ? "\"%s\"" : "%s", a ? a : "NULL");
	printf(" != ");
	printf(b ? "\"%s\"\n" : "%s\n", b ? b : "NULL");
}

/* Strings; NULL equals only NULL. */
#define CHECK_STREQ(a, b) test_check_str(__FILE__, __LINE__, #a, #b, (a), (b))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static void test_print_name(const char *name)
{
	for (; *name; name++)
		putchar(*name == '_' ? ' ' : *name);
}

static bool test_selected(const char *name, int argc, char **argv)
{
	if (argc < 2)
		return true;
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], name))
			return true;
	return false;
}

static int test_cmp_line(const void *a, const void *b)
{
	return ((const struct test_case *)a)->line - ((const struct test_case *)b)->line;
}

/* Runs one test; returns true when it passed. */
static bool test_run_one(const struct test_case *t, bool nofork)
{
	int status;
	pid_t pid;

	test_failed = 0;
	if (nofork) {
		t->fn();
		return test_failed == 0;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		perror("fork");
		exit(2);
	}
	if (pid == 0) {
		t->fn();
		fflush(NULL);
		/* exit(), not _exit(): LeakSanitizer checks at exit. */
		exit(test_failed ? TEST_EXIT_CHECK : 0);
	}
	if (waitpid(pid, &status, 0) < 0) {
		perror("waitpid");
		exit(2);
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return true;
	if (WIFSIGNALED(status))
		printf("#   killed by signal %d (%s)\n", WTERMSIG(status),
		       strsignal(WTERMSIG(status)));
	else if (WEXITSTATUS(status) != TEST_EXIT_CHECK)
		printf("#   exited with status %d (a sanitizer report above?)\n",
		       WEXITSTATUS(status));
	return false;
}

int main(int argc, char **argv)
{
	bool nofork = getenv("TEST_NOFORK") && strcmp(getenv("TEST_NOFORK"), "0");
	int passed = 0, failed = 0;

	/* Diagnostics and sanitizer reports (stderr) interleave in order. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* Constructors need not run in source order; the output should. */
	qsort(test_cases, (size_t)test_nr, sizeof(test_cases[0]), test_cmp_line);
	for (int i = 0; i < test_nr; i++) {
		const struct test_case *t = &test_cases[i];
		bool ok;

		if (!test_selected(t->name, argc, argv))
			continue;
		ok = test_run_one(t, nofork);
		printf("%s - ", ok ? "ok" : "not ok");
		test_print_name(t->name);
		printf("\n");
		if (ok)
			passed++;
		else
			failed++;
	}
	printf("# %d passed, %d failed\n", passed, failed);
	if (passed + failed == 0)
		return 1;
	return failed ? 1 : 0;
}

#endif
