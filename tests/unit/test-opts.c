// SPDX-License-Identifier: MIT
/* Number parsing, key=value target options and the data mode helpers. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "zublk.h"
#include "test.h"

/* ------------------------------------------------------- zublk_parse_size */

/* Parses @s expecting success; returns the value (or a poison on failure). */
static uint64_t size_of(const char *s)
{
	uint64_t v = 0xdeadbeef;
	int ret = zublk_parse_size(s, &v);

	if (ret) {
		printf("#   zublk_parse_size(\"%s\") = %d\n", s, ret);
		test_failed++;
	}
	return v;
}

/* A bad size fails and leaves *out alone: callers keep their default. */
static bool size_rejected(const char *s)
{
	uint64_t v = 0x5a5a;
	int ret = zublk_parse_size(s, &v);

	if (ret >= 0 || v != 0x5a5a) {
		printf("#   zublk_parse_size(\"%s\") = %d, value %" PRIu64 "\n", s ? s : "NULL",
		       ret, v);
		return false;
	}
	return true;
}

TEST(a_plain_number_is_bytes)
{
	CHECK_EQ(size_of("0"), 0);
	CHECK_EQ(size_of("1"), 1);
	CHECK_EQ(size_of("4096"), 4096);
	CHECK_EQ(size_of("1073741824"), 1ULL << 30);
}

TEST(unit_suffixes_are_binary_and_case_blind)
{
	CHECK_EQ(size_of("4k"), 4096);
	CHECK_EQ(size_of("64K"), 64 << 10);
	CHECK_EQ(size_of("1m"), 1 << 20);
	CHECK_EQ(size_of("1M"), 1 << 20);
	CHECK_EQ(size_of("2g"), 2ULL << 30);
	CHECK_EQ(size_of("2G"), 2ULL << 30);
	CHECK_EQ(size_of("1t"), 1ULL << 40);
	CHECK_EQ(size_of("1T"), 1ULL << 40);
	CHECK_EQ(size_of("0K"), 0);
}

TEST(kib_and_kb_spellings_mean_the_same_as_k)
{
	CHECK_EQ(size_of("64KiB"), 64 << 10);
	CHECK_EQ(size_of("64KB"), 64 << 10);
	CHECK_EQ(size_of("64kb"), 64 << 10);
	CHECK_EQ(size_of("1MiB"), 1 << 20);
	CHECK_EQ(size_of("3GiB"), 3ULL << 30);
	CHECK_EQ(size_of("1TB"), 1ULL << 40);
}

TEST(hex_sizes_work_with_and_without_a_unit)
{
	CHECK_EQ(size_of("0x1000"), 4096);
	CHECK_EQ(size_of("0X10"), 16);
	CHECK_EQ(size_of("0x10k"), 16 << 10);
	CHECK_EQ(size_of("0xffffffffffffffff"), UINT64_MAX);
}

/*
 * Nobody writes sizes in octal: "010" is ten (or an error), never eight,
 * and "08" must not be refused while "010" is accepted.
 */
TEST(a_leading_zero_does_not_make_a_size_octal)
{
	uint64_t v = 0;
	int ret = zublk_parse_size("010", &v);

	CHECK(ret < 0 || v == 10);
	if (ret == 0 && v != 10)
		printf("#   \"010\" parsed as %" PRIu64 "\n", v);
	ret = zublk_parse_size("0100M", &v);
	CHECK(ret < 0 || v == 100ULL << 20);
	v = 0;
	CHECK_EQ(zublk_parse_size("08", &v) == 0, zublk_parse_size("010", &v) == 0);
}

TEST(junk_and_empty_sizes_are_rejected)
{
	static const char *const bad[] = {
		"", "k", "K", "KiB", "x", "4x", "4kk", "4 k", " 4", "4k ", "4\n",
		"1.5M", "4iB", "4B", "4b", "4KiBB", "4KBi", "4Ki B", "0x", "0xg",
		"1e3", "4k4", "--1", "4,096",
	};

	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++)
		CHECK(size_rejected(bad[i]));
	CHECK(size_rejected(NULL));
}

TEST(negative_and_signed_sizes_are_rejected)
{
	CHECK(size_rejected("-1"));
	CHECK(size_rejected("-4k"));
	CHECK(size_rejected("+1"));
	CHECK(size_rejected("-0"));
}

TEST(sizes_past_64_bits_are_rejected_not_wrapped)
{
	CHECK_EQ(size_of("18446744073709551615"), UINT64_MAX);
	CHECK(size_rejected("18446744073709551616"));
	CHECK(size_rejected("99999999999999999999999"));
	CHECK(size_rejected("0x10000000000000000"));
	/* The unit shift is where a wrap would hide. */
	CHECK_EQ(size_of("16777215T"), 16777215ULL << 40);
	CHECK(size_rejected("16777216T"));
	CHECK(size_rejected("17179869184G"));
	CHECK(size_rejected("18014398509481984K"));
	CHECK_EQ(size_of("18014398509481983K"), 18014398509481983ULL << 10);
}

/* ------------------------------------------------------- zublk_parse_uint */

TEST(uint_inside_its_range_is_accepted_at_both_ends)
{
	unsigned v = 0;

	CHECK_EQ(zublk_parse_uint("1", 1, 10, &v), 0);
	CHECK_EQ(v, 1);
	CHECK_EQ(zublk_parse_uint("10", 1, 10, &v), 0);
	CHECK_EQ(v, 10);
	CHECK_EQ(zublk_parse_uint("0", 0, 0, &v), 0);
	CHECK_EQ(v, 0);
	CHECK_EQ(zublk_parse_uint("4294967295", 0, UINT_MAX, &v), 0);
	CHECK_EQ(v, UINT_MAX);
}

TEST(uint_outside_its_range_is_erange_and_untouched)
{
	unsigned v = 77;

	CHECK_EQ(zublk_parse_uint("0", 1, 10, &v), -ERANGE);
	CHECK_EQ(zublk_parse_uint("11", 1, 10, &v), -ERANGE);
	CHECK_EQ(zublk_parse_uint("4097", 1, 4096, &v), -ERANGE);
	CHECK(zublk_parse_uint("4294967296", 0, UINT_MAX, &v) < 0);
	CHECK(zublk_parse_uint("99999999999999999999999", 0, UINT_MAX, &v) < 0);
	CHECK_EQ(v, 77);
}

TEST(uint_junk_is_rejected)
{
	static const char *const bad[] = { "", "-1", "+1", " 1", "1 ", "1x", "0x10", "1k", "a" };
	unsigned v = 77;

	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		int ret = zublk_parse_uint(bad[i], 0, UINT_MAX, &v);

		CHECK_EQ(ret, -EINVAL);
		if (ret != -EINVAL)
			printf("#   for \"%s\"\n", bad[i]);
	}
	CHECK_EQ(zublk_parse_uint(NULL, 0, UINT_MAX, &v), -EINVAL);
	CHECK_EQ(v, 77);
}

/* ------------------------------------------------------- zublk_opts_parse */

static int parse(struct zublk_opts *o, int n, const char *const *words)
{
	return zublk_opts_parse(o, n, (char *const *)words);
}

TEST(key_value_words_become_options_in_order)
{
	const char *w[] = { "file=/tmp/a.img", "buffered=1", "ro=" };
	struct zublk_opts o;

	REQUIRE(parse(&o, 3, w) == 0);
	REQUIRE(o.nr == 3);
	CHECK_STREQ(o.v[0].key, "file");
	CHECK_STREQ(o.v[0].val, "/tmp/a.img");
	CHECK_STREQ(o.v[1].key, "buffered");
	CHECK_STREQ(o.v[1].val, "1");
	CHECK_STREQ(o.v[2].key, "ro");
	CHECK_STREQ(o.v[2].val, "");
	for (unsigned i = 0; i < o.nr; i++)
		CHECK(!o.v[i].used);
	zublk_opts_free(&o);
	CHECK_EQ(o.nr, 0);
	CHECK(o.v == NULL);
}

TEST(no_words_is_an_empty_option_set)
{
	struct zublk_opts o = { .nr = 5 };
	const char *bad = NULL;

	CHECK_EQ(zublk_opts_parse(&o, 0, NULL), 0);
	CHECK_EQ(o.nr, 0);
	CHECK(zublk_opts_get(&o, "file") == NULL);
	CHECK_EQ(zublk_opts_check_unused(&o, &bad), 0);
	zublk_opts_free(&o);
}

TEST(a_value_may_contain_an_equals_sign)
{
	const char *w[] = { "opt=a=b", "x==" };
	struct zublk_opts o;

	REQUIRE(parse(&o, 2, w) == 0);
	CHECK_STREQ(zublk_opts_get(&o, "opt"), "a=b");
	CHECK_STREQ(zublk_opts_get(&o, "x"), "=");
	zublk_opts_free(&o);
}

TEST(a_word_without_a_key_or_an_equals_sign_is_rejected)
{
	const char *no_key[] = { "size=1G", "=value" };
	const char *no_eq[] = { "size=1G", "novalue" };
	const char *only_eq[] = { "=" };
	struct zublk_opts o;

	/* The words parsed before the bad one must not leak (LSan watches). */
	CHECK_EQ(parse(&o, 2, no_key), -EINVAL);
	CHECK_EQ(o.nr, 0);
	CHECK(o.v == NULL);
	CHECK_EQ(parse(&o, 2, no_eq), -EINVAL);
	CHECK_EQ(o.nr, 0);
	CHECK_EQ(parse(&o, 1, only_eq), -EINVAL);
	CHECK_EQ(o.nr, 0);
}

/* --------------------------------------------------- getters and check_unused */

TEST(a_key_read_for_one_value_but_given_twice_is_named)
{
	const char *w[] = { "file=a", "size=1", "file=b", "file=c" };
	struct zublk_opts o;
	const char *bad = NULL;

	REQUIRE(parse(&o, 4, w) == 0);
	CHECK_STREQ(o.twice, "");
	/* Repeated keys are read with get_nth: not an error. */
	CHECK_STREQ(zublk_opts_get_nth(&o, "file", 2), "c");
	CHECK_STREQ(zublk_opts_get(&o, "size"), "1");
	CHECK_STREQ(o.twice, "");
	/* get takes the last and names the key. */
	CHECK_STREQ(zublk_opts_get(&o, "file"), "c");
	CHECK_STREQ(o.twice, "file");
	CHECK_EQ(zublk_opts_check_unused(&o, &bad), 0);
	zublk_opts_free(&o);

	REQUIRE(parse(&o, 4, w) == 0);
	CHECK_STREQ(zublk_opts_get(&o, "file"), "c");
	/* get marks every copy: none of the three is "unused" now. */
	CHECK_EQ(zublk_opts_check_unused(&o, &bad), -EINVAL);
	CHECK_STREQ(bad, "size");
	CHECK(o.v[0].used && o.v[2].used && o.v[3].used);
	zublk_opts_free(&o);
}

TEST(getting_an_absent_key_is_null_and_marks_nothing)
{
	const char *w[] = { "file=a" };
	struct zublk_opts o;

	REQUIRE(parse(&o, 1, w) == 0);
	CHECK(zublk_opts_get(&o, "fil") == NULL);
	CHECK(zublk_opts_get(&o, "file=a") == NULL);
	CHECK(zublk_opts_get(&o, "") == NULL);
	CHECK(!o.v[0].used);
	zublk_opts_free(&o);
}

TEST(nth_walks_the_copies_of_a_key_in_order)
{
	const char *w[] = { "file=a", "size=1", "file=b", "file=c" };
	struct zublk_opts o;
	const char *bad = NULL;

	REQUIRE(parse(&o, 4, w) == 0);
	CHECK_EQ(zublk_opts_count(&o, "file"), 3);
	CHECK_EQ(zublk_opts_count(&o, "size"), 1);
	CHECK_EQ(zublk_opts_count(&o, "bs"), 0);
	/* count is a look, not a read. */
	CHECK(!o.v[0].used && !o.v[1].used);
	CHECK_STREQ(zublk_opts_get_nth(&o, "file", 0), "a");
	CHECK_STREQ(zublk_opts_get_nth(&o, "file", 1), "b");
	CHECK_STREQ(zublk_opts_get_nth(&o, "file", 2), "c");
	CHECK(zublk_opts_get_nth(&o, "file", 3) == NULL);
	CHECK(zublk_opts_get_nth(&o, "bs", 0) == NULL);
	CHECK(o.v[0].used && o.v[2].used && o.v[3].used);
	CHECK_EQ(zublk_opts_check_unused(&o, &bad), -EINVAL);
	CHECK_STREQ(bad, "size");
	CHECK_STREQ(zublk_opts_get_nth(&o, "size", 0), "1");
	CHECK_EQ(zublk_opts_check_unused(&o, &bad), 0);
	zublk_opts_free(&o);
}

TEST(check_unused_names_the_first_key_nobody_read)
{
	const char *w[] = { "a=1", "b=2", "c=3" };
	struct zublk_opts o;
	const char *bad = NULL;

	REQUIRE(parse(&o, 3, w) == 0);
	CHECK_EQ(zublk_opts_check_unused(&o, &bad), -EINVAL);
	CHECK_STREQ(bad, "a");
	zublk_opts_get(&o, "b");
	CHECK_EQ(zublk_opts_check_unused(&o, &bad), -EINVAL);
	CHECK_STREQ(bad, "a");
	zublk_opts_get(&o, "a");
	CHECK_EQ(zublk_opts_check_unused(&o, &bad), -EINVAL);
	CHECK_STREQ(bad, "c");
	zublk_opts_get(&o, "c");
	bad = NULL;
	CHECK_EQ(zublk_opts_check_unused(&o, &bad), 0);
	CHECK(bad == NULL);
	zublk_opts_free(&o);
}

TEST(get_size_reads_a_good_size_and_refuses_a_bad_one)
{
	const char *w[] = { "size=1G", "bs=4k", "max=huge", "neg=-1" };
	struct zublk_opts o;
	uint64_t v = 123;

	REQUIRE(parse(&o, 4, w) == 0);
	CHECK_EQ(zublk_opts_get_size(&o, "size", &v), 0);
	CHECK_EQ(v, 1ULL << 30);
	CHECK_EQ(zublk_opts_get_size(&o, "bs", &v), 0);
	CHECK_EQ(v, 4096);
	v = 123;
	CHECK_EQ(zublk_opts_get_size(&o, "max", &v), -EINVAL);
	CHECK_EQ(v, 123);
	CHECK(zublk_opts_get_size(&o, "neg", &v) < 0);
	CHECK_EQ(v, 123);
	/* Absent: success, and the caller's default stays. */
	CHECK_EQ(zublk_opts_get_size(&o, "other", &v), 0);
	CHECK_EQ(v, 123);
	/* A bad value was still read: the error is "bad value", not "unknown key". */
	CHECK(o.v[2].used && o.v[3].used);
	zublk_opts_free(&o);
}

TEST(get_bool_knows_the_usual_spellings_in_any_case)
{
	static const char *const yes[] = { "1", "yes", "on", "true", "TRUE", "Yes", "On" };
	static const char *const no[] = { "0", "no", "off", "false", "FALSE", "No", "OFF" };
	struct zublk_opts o;

	for (unsigned i = 0; i < ARRAY_SIZE(yes); i++) {
		char word[32];
		char *w[] = { word };
		bool b = false;

		snprintf(word, sizeof(word), "x=%s", yes[i]);
		REQUIRE(zublk_opts_parse(&o, 1, w) == 0);
		CHECK_EQ(zublk_opts_get_bool(&o, "x", &b), 0);
		CHECK(b);
		zublk_opts_free(&o);
	}
	for (unsigned i = 0; i < ARRAY_SIZE(no); i++) {
		char word[32];
		char *w[] = { word };
		bool b = true;

		snprintf(word, sizeof(word), "x=%s", no[i]);
		REQUIRE(zublk_opts_parse(&o, 1, w) == 0);
		CHECK_EQ(zublk_opts_get_bool(&o, "x", &b), 0);
		CHECK(!b);
		zublk_opts_free(&o);
	}
}

TEST(get_bool_refuses_other_words_and_keeps_the_default)
{
	static const char *const bad[] = { "", "2", "y", "n", "yess", "1 ", "-1", "enable" };
	struct zublk_opts o;

	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		char word[32];
		char *w[] = { word };
		bool b = true;

		snprintf(word, sizeof(word), "x=%s", bad[i]);
		REQUIRE(zublk_opts_parse(&o, 1, w) == 0);
		CHECK_EQ(zublk_opts_get_bool(&o, "x", &b), -EINVAL);
		CHECK(b);
		zublk_opts_free(&o);
	}
	REQUIRE(zublk_opts_parse(&o, 0, NULL) == 0);
	{
		bool b = true;

		CHECK_EQ(zublk_opts_get_bool(&o, "x", &b), 0);
		CHECK(b);
	}
	zublk_opts_free(&o);
}


TEST(tristate_is_minus_one_when_absent_else_the_bool)
{
	char w0[] = "a=1", w1[] = "b=off", w2[] = "c=maybe";
	char *w[] = { w0, w1, w2 };
	struct zublk_opts o;
	int v = 7;

	REQUIRE(zublk_opts_parse(&o, 3, w) == 0);
	CHECK_EQ(zublk_opts_get_tristate(&o, "a", &v), 0);
	CHECK_EQ(v, 1);
	CHECK_EQ(zublk_opts_get_tristate(&o, "b", &v), 0);
	CHECK_EQ(v, 0);
	CHECK_EQ(zublk_opts_get_tristate(&o, "none", &v), 0);
	CHECK_EQ(v, -1);
	CHECK_EQ(zublk_opts_get_tristate(&o, "c", &v), -EINVAL);
	zublk_opts_free(&o);
}

TEST(backing_open_finds_a_tmpfs_file_in_memory_and_opens_it_buffered)
{
	char path[] = "/dev/shm/zublk-unit-XXXXXX";
	struct zublk_backing b;

	if (shm_file(path, 1 << 20)) {
		printf("#   SKIP: no /dev/shm to make a tmpfs file in\n");
		return;
	}
	REQUIRE(zublk_backing_open(&b, "test", path, false, -1) == 0);
	CHECK(b.in_memory);
	CHECK(b.buffered);
	CHECK(!b.bdev);
	CHECK_EQ(b.size, 1 << 20);
	CHECK_EQ(fcntl(b.fd, F_GETFL) & O_DIRECT, 0);
	zublk_backing_close(&b);
	CHECK_EQ(b.fd, -1);
	REQUIRE(zublk_backing_open(&b, "test", path, true, 1) == 0);
	CHECK_EQ(fcntl(b.fd, F_GETFL) & O_ACCMODE, O_RDONLY);
	zublk_backing_close(&b);
	unlink(path);
}

TEST(backing_open_refuses_what_is_not_a_file_or_block_device)
{
	char path[] = "/dev/shm/zublk-unit-XXXXXX";
	struct zublk_backing b;

	CHECK_EQ(zublk_backing_open(&b, "test", "/dev/shm", false, -1), -EISDIR);
	CHECK_EQ(zublk_backing_open(&b, "test", "/dev/shm", true, -1), -EINVAL);
	CHECK_EQ(b.fd, -1);
	CHECK_EQ(zublk_backing_open(&b, "test", "/dev/null", false, -1), -EINVAL);
	CHECK_EQ(zublk_backing_open(&b, "test", "/nonexistent/zublk", false, -1), -ENOENT);
	CHECK_EQ(zublk_backing_open(&b, "test", "", false, -1), -EINVAL);
	if (shm_file(path, 100))
		return;
	CHECK_EQ(zublk_backing_open(&b, "test", path, false, -1), -EINVAL); /* < a block */
	CHECK_EQ(b.fd, -1);
	unlink(path);
}

/* Is @path mapped into this process? */
static bool maps_name(const char *path)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, path) != NULL;
	fclose(f);
	return found;
}

TEST(backing_map_shares_the_file_and_grows_in_place)
{
	char path[] = "/dev/shm/zublk-unit-XXXXXX";
	char file[] = "/var/tmp/zublk-unit-XXXXXX";
	struct zublk_backing b;
	int fd;

	if (shm_file(path, 8192)) {
		printf("#   SKIP: no /dev/shm to make a tmpfs file in\n");
		return;
	}
	REQUIRE(zublk_backing_open(&b, "test", path, false, -1) == 0);
	CHECK(b.mem == NULL);
	CHECK_EQ(zublk_backing_map(&b, b.size), 0);
	REQUIRE(b.mem != NULL);
	CHECK_EQ(zublk_backing_map(&b, b.size), 0); /* again: nothing to do */
	CHECK_EQ(ftruncate(b.fd, 1 << 20), 0);
	CHECK_EQ(zublk_backing_map(&b, 1 << 20), 0);
	zublk_backing_forget(&b, 0, 1 << 20);
	CHECK(zublk_backing_is_mapped(&b));
	CHECK(maps_name(path));
	/* Given up: the file leaves the address space, the reservation stays. */
	zublk_backing_unmap(&b);
	CHECK(!zublk_backing_is_mapped(&b));
	CHECK(!maps_name(path));
	REQUIRE(b.mem != NULL);
	zublk_backing_unmap(&b); /* again: nothing to do */
	zublk_backing_close(&b);
	CHECK(b.mem == NULL);
	unlink(path);

	/* A file on a disk file system is not mapped. */
	fd = mkstemp(file);
	if (fd < 0)
		return;
	CHECK_EQ(ftruncate(fd, 8192), 0);
	close(fd);
	if (zublk_backing_open(&b, "test", file, false, 1) == 0) {
		CHECK(!b.in_memory);
		CHECK_EQ(zublk_backing_map(&b, b.size), -EOPNOTSUPP);
		zublk_backing_close(&b);
	}
	unlink(file);
}
/* ------------------------------------------------------------- data modes */

TEST(every_mode_name_parses_back_to_its_mode)
{
	for (unsigned m = 0; m < ZUBLK_MODE_NR; m++) {
		enum zublk_mode out = ZUBLK_MODE_NR;
		const char *name = zublk_mode_name((enum zublk_mode)m);

		REQUIRE(name != NULL);
		CHECK_EQ(zublk_mode_parse(name, &out), 0);
		CHECK_EQ(out, (enum zublk_mode)m);
	}
	CHECK_STREQ(zublk_mode_name(ZUBLK_MODE_COPY), "copy");
	CHECK_STREQ(zublk_mode_name(ZUBLK_MODE_USER_COPY), "user-copy");
	CHECK_STREQ(zublk_mode_name(ZUBLK_MODE_ZERO_COPY), "zero-copy");
	CHECK_STREQ(zublk_mode_name(ZUBLK_MODE_AUTO_ZERO_COPY), "auto-zero-copy");
}

TEST(unknown_mode_names_are_rejected)
{
	static const char *const bad[] = { "", "zerocopy", "zero_copy", "Copy", "copy ",
					   "auto", "?" };
	enum zublk_mode out = ZUBLK_MODE_COPY;

	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++)
		CHECK_EQ(zublk_mode_parse(bad[i], &out), -EINVAL);
	CHECK_EQ(out, ZUBLK_MODE_COPY);
	/* An out-of-range mode still has a printable name. */
	CHECK(zublk_mode_name(ZUBLK_MODE_NR) != NULL);
	CHECK(zublk_mode_name((enum zublk_mode)-1) != NULL);
}

TEST(each_mode_needs_exactly_its_kernel_feature)
{
	CHECK_EQ(zublk_mode_flags(ZUBLK_MODE_DEFAULT), 0);
	CHECK_EQ(zublk_mode_flags(ZUBLK_MODE_COPY), 0);
	CHECK_EQ(zublk_mode_flags(ZUBLK_MODE_USER_COPY), UBLK_F_USER_COPY);
	CHECK_EQ(zublk_mode_flags(ZUBLK_MODE_ZERO_COPY), UBLK_F_SUPPORT_ZERO_COPY);
	CHECK_EQ(zublk_mode_flags(ZUBLK_MODE_AUTO_ZERO_COPY), UBLK_F_AUTO_BUF_REG);
	CHECK_EQ(zublk_mode_flags(ZUBLK_MODE_NR), 0);
}

#define ALL_MODE_FEATURES (UBLK_F_USER_COPY | UBLK_F_SUPPORT_ZERO_COPY | UBLK_F_AUTO_BUF_REG)
#define B(m) ZUBLK_MODE_BIT(ZUBLK_MODE_##m)

TEST(best_mode_prefers_auto_zero_copy_then_zero_copy_then_user_copy_then_copy)
{
	CHECK_EQ(zublk_mode_best(ALL_MODE_FEATURES, ZUBLK_MODES_ALL), ZUBLK_MODE_AUTO_ZERO_COPY);
	CHECK_EQ(zublk_mode_best(UBLK_F_SUPPORT_ZERO_COPY | UBLK_F_USER_COPY, ZUBLK_MODES_ALL),
		 ZUBLK_MODE_ZERO_COPY);
	CHECK_EQ(zublk_mode_best(UBLK_F_USER_COPY, ZUBLK_MODES_ALL), ZUBLK_MODE_USER_COPY);
	CHECK_EQ(zublk_mode_best(0, ZUBLK_MODES_ALL), ZUBLK_MODE_COPY);
	CHECK_EQ(zublk_mode_best(UBLK_F_AUTO_BUF_REG, ZUBLK_MODES_ALL), ZUBLK_MODE_AUTO_ZERO_COPY);
}

TEST(best_mode_ignores_feature_bits_that_are_not_about_data)
{
	uint64_t others = ~(uint64_t)ALL_MODE_FEATURES;

	CHECK_EQ(zublk_mode_best(others, ZUBLK_MODES_ALL), ZUBLK_MODE_COPY);
	CHECK_EQ(zublk_mode_best(others | UBLK_F_USER_COPY, ZUBLK_MODES_ALL),
		 ZUBLK_MODE_USER_COPY);
}

TEST(best_mode_stays_within_what_the_target_allows)
{
	CHECK_EQ(zublk_mode_best(ALL_MODE_FEATURES, B(COPY) | B(USER_COPY)), ZUBLK_MODE_USER_COPY);
	CHECK_EQ(zublk_mode_best(ALL_MODE_FEATURES, B(ZERO_COPY)), ZUBLK_MODE_ZERO_COPY);
	CHECK_EQ(zublk_mode_best(ALL_MODE_FEATURES, B(COPY)), ZUBLK_MODE_COPY);
	CHECK_EQ(zublk_mode_best(ALL_MODE_FEATURES, B(COPY) | B(ZERO_COPY)), ZUBLK_MODE_ZERO_COPY);
	CHECK_EQ(zublk_mode_best(UBLK_F_AUTO_BUF_REG, B(ZERO_COPY) | B(COPY)), ZUBLK_MODE_COPY);
	CHECK_EQ(zublk_mode_best(UBLK_F_SUPPORT_ZERO_COPY, B(AUTO_ZERO_COPY) | B(USER_COPY)),
		 ZUBLK_MODE_DEFAULT);
}

TEST(best_mode_is_default_when_nothing_fits)
{
	CHECK_EQ(zublk_mode_best(ALL_MODE_FEATURES, 0), ZUBLK_MODE_DEFAULT);
	CHECK_EQ(zublk_mode_best(0, B(USER_COPY)), ZUBLK_MODE_DEFAULT);
	CHECK_EQ(zublk_mode_best(0, B(ZERO_COPY) | B(AUTO_ZERO_COPY)), ZUBLK_MODE_DEFAULT);
	/* DEFAULT is a request, not a mode a target can serve. */
	CHECK_EQ(zublk_mode_best(ALL_MODE_FEATURES, B(DEFAULT)), ZUBLK_MODE_DEFAULT);
}
